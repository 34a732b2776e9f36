//! Replica identities and dots.
//!
//! A *dot* `(replica, seq)` names one update event: the `seq`-th event that
//! `replica` minted for one key. Dots are what causal contexts record and what
//! dot stores are made of. Sequence numbers start at 1.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The identity of a replica (one node of one region). Unique across the
/// whole cluster and never reused for another node.
///
/// Encoded as 4 little-endian bytes rather than a varint: ids are hashes,
/// so nearly all of them would take 5 bytes as varints, and every dot and
/// context entry on the wire names one.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ReplicaId(pub u32);

impl Serialize for ReplicaId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.to_le_bytes().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for ReplicaId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        <[u8; 4]>::deserialize(deserializer).map(|b| ReplicaId(u32::from_le_bytes(b)))
    }
}

impl fmt::Debug for ReplicaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "r{}", self.0)
    }
}

impl fmt::Display for ReplicaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// One event: the `seq`-th update minted by `replica` (for one key).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Dot {
    /// The replica that minted the event.
    pub replica: ReplicaId,
    /// Its sequence number at that replica, from 1.
    pub seq: u64,
}

impl Dot {
    /// A dot; `seq` must be at least 1.
    pub fn new(replica: ReplicaId, seq: u64) -> Self {
        debug_assert!(seq >= 1, "dot sequence numbers start at 1");
        Dot { replica, seq }
    }
}

impl fmt::Debug for Dot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.replica.0, self.seq)
    }
}
