//! One region's consistent-hash ring with virtual nodes.
//!
//! Each physical node (named by its [`ReplicaId`]) owns `vnodes_per_node`
//! points on a 64-bit ring. A key hashes to a position and belongs to the
//! first point at or clockwise after it; its *preference list* is the next N
//! distinct physical nodes met walking clockwise from that point, and the
//! first of them is the key's coordinator.
//!
//! The points live in a [`hashring::HashRing`], which keeps them sorted and
//! finds a key's point by binary search. It cannot walk onwards from a point
//! (its `get_with_replicas` clones the ring on every call and repeats physical
//! nodes), so whenever membership changes the ring reads the sorted order
//! once and precomputes the preference list of every segment. A lookup is then
//! one hash, one binary search and a slice: no allocation.
//!
//! Hashing is SipHash-2-4 with zero keys over explicit little-endian bytes,
//! so every process, platform and version places a key on the same nodes;
//! tests pin sample placements. This module never does I/O and never reads a
//! clock.

use crate::topology::{NODES_PER_REGION_MAX, REPLICATION_FACTOR_MAX};
use crdt_types::ReplicaId;
use hashring::{DefaultHashBuilder, HashRing};
use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};

/// Virtual nodes per physical node used by [`Placement`](super::Placement).
///
/// Over 1,000,000 keys on 5 nodes this gives a max/mean load of 1.03, and a
/// joining 6th node takes 0.178 of the keys (ideal 1/6); `tests/placement.rs`
/// asserts both figures. The spread narrows as 1/sqrt(vnodes); lookups cost
/// a binary search over `nodes × vnodes` points. Changing it moves keys: all
/// clients and nodes of a cluster must agree on it.
pub const VNODES_PER_NODE: u32 = 1024;

/// Upper bound on `vnodes_per_node`, which bounds a ring's memory.
pub const VNODES_PER_NODE_MAX: u32 = 4096;

/// A region's ring: physical nodes, their virtual points, and the
/// precomputed preference list of every segment.
///
/// ```
/// use crdt_types::ReplicaId;
/// use meridian::placement::Ring;
///
/// let ring = Ring::with_nodes(3, 256, (1..=5).map(ReplicaId));
/// let replicas = ring.preference_list(b"user:42");
/// assert_eq!(replicas.len(), 3);
/// assert_eq!(ring.coordinator(b"user:42"), Some(replicas[0]));
/// ```
#[derive(Clone)]
pub struct Ring {
    replication_factor: usize,
    vnodes_per_node: u32,
    /// Physical nodes, sorted and distinct.
    nodes: Vec<ReplicaId>,
    /// Ring position of each point, by rank (ascending).
    positions: Vec<u64>,
    /// Length of every preference list: `min(replication_factor, nodes)`.
    width: usize,
    /// Preference lists, `width` entries per point rank.
    preference: Vec<ReplicaId>,
}

/// One virtual node. Its position is the hash of `(node, vnode)`.
#[derive(Clone, Copy, Debug)]
struct Point {
    node: ReplicaId,
    vnode: u32,
}

impl Hash for Point {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let mut bytes = [0u8; 8];
        bytes[..4].copy_from_slice(&self.node.0.to_le_bytes());
        bytes[4..].copy_from_slice(&self.vnode.to_le_bytes());
        state.write(&bytes);
    }
}

/// One segment of the ring: the positions in `(start, end]` (wrapping past
/// `u64::MAX` for the first segment) and the replicas of every key in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment<'a> {
    /// Exclusive start: the position of the previous point.
    pub start: u64,
    /// Inclusive end: the position of this segment's point.
    pub end: u64,
    /// Preference list of every key whose position falls in the segment.
    pub replicas: &'a [ReplicaId],
}

impl Ring {
    /// An empty ring serving `replication_factor` replicas per key with
    /// `vnodes_per_node` points per node.
    ///
    /// # Panics
    /// If `replication_factor` is not in `1..=REPLICATION_FACTOR_MAX` or
    /// `vnodes_per_node` not in `1..=VNODES_PER_NODE_MAX`.
    pub fn new(replication_factor: usize, vnodes_per_node: u32) -> Ring {
        assert!(
            (1..=REPLICATION_FACTOR_MAX).contains(&replication_factor),
            "replication factor {replication_factor} outside 1..={REPLICATION_FACTOR_MAX}"
        );
        assert!(
            (1..=VNODES_PER_NODE_MAX).contains(&vnodes_per_node),
            "vnodes per node {vnodes_per_node} outside 1..={VNODES_PER_NODE_MAX}"
        );
        Ring {
            replication_factor,
            vnodes_per_node,
            nodes: Vec::new(),
            positions: Vec::new(),
            width: 0,
            preference: Vec::new(),
        }
    }

    /// A ring holding `nodes` (duplicates are ignored).
    ///
    /// # Panics
    /// As [`Ring::new`], and if there are more than [`NODES_PER_REGION_MAX`]
    /// distinct nodes.
    pub fn with_nodes(
        replication_factor: usize,
        vnodes_per_node: u32,
        nodes: impl IntoIterator<Item = ReplicaId>,
    ) -> Ring {
        let mut ring = Ring::new(replication_factor, vnodes_per_node);
        ring.nodes = nodes.into_iter().collect();
        ring.nodes.sort_unstable();
        ring.nodes.dedup();
        assert!(
            ring.nodes.len() <= NODES_PER_REGION_MAX,
            "{} nodes exceed the ring limit of {NODES_PER_REGION_MAX}",
            ring.nodes.len()
        );
        ring.rebuild();
        ring
    }

    /// Adds a node; returns false if it was already on the ring.
    ///
    /// Only keys whose segments the new node's points split change owner, and
    /// they move to the new node. The ring is rebuilt: O(points · log points).
    ///
    /// # Panics
    /// If the ring already holds [`NODES_PER_REGION_MAX`] nodes.
    pub fn add(&mut self, node: ReplicaId) -> bool {
        let Err(slot) = self.nodes.binary_search(&node) else {
            return false;
        };
        assert!(
            self.nodes.len() < NODES_PER_REGION_MAX,
            "ring is full ({NODES_PER_REGION_MAX} nodes)"
        );
        self.nodes.insert(slot, node);
        self.rebuild();
        true
    }

    /// Removes a node; returns false if it was not on the ring. Its keys
    /// move to the nodes that follow its points clockwise.
    pub fn remove(&mut self, node: ReplicaId) -> bool {
        let Ok(slot) = self.nodes.binary_search(&node) else {
            return false;
        };
        self.nodes.remove(slot);
        self.rebuild();
        true
    }

    /// The key's replicas in this region, coordinator first: the next
    /// `min(N, nodes)` distinct physical nodes clockwise from the key.
    /// Empty only when the ring has no node.
    pub fn preference_list(&self, key: &[u8]) -> &[ReplicaId] {
        if self.positions.is_empty() {
            return &[];
        }
        // The segment ending at the first point at or after the key's position.
        let position = Ring::position(key);
        let rank = self.positions.partition_point(|&p| p < position) % self.positions.len();
        self.segment_replicas(rank)
    }

    /// The nodes beyond the key's preference list, in clockwise order from
    /// the key: where a write goes in place of a replica that is down
    /// (sloppy quorum). Empty when every node is a replica already.
    pub fn fallbacks(&self, key: &[u8]) -> Vec<ReplicaId> {
        let replicas = self.preference_list(key);
        let wanted = self.nodes.len().saturating_sub(replicas.len());
        let mut found = Vec::with_capacity(wanted);
        if wanted == 0 {
            return found;
        }
        let position = Ring::position(key);
        let first = self.positions.partition_point(|&p| p < position);
        for step in 0..self.positions.len() {
            let rank = (first + step) % self.positions.len();
            // A segment's preference list starts with the node of its point.
            let node = self.segment_replicas(rank)[0];
            if !replicas.contains(&node) && !found.contains(&node) {
                found.push(node);
                if found.len() == wanted {
                    break;
                }
            }
        }
        found
    }

    /// The node that coordinates the key's writes in this region.
    pub fn coordinator(&self, key: &[u8]) -> Option<ReplicaId> {
        self.preference_list(key).first().copied()
    }

    /// Whether `node` is one of the key's replicas in this region.
    pub fn is_replica(&self, node: ReplicaId, key: &[u8]) -> bool {
        self.preference_list(key).contains(&node)
    }

    /// The key's position on the ring (the same for every region): its
    /// [`key_hash`](crate::keyhash::key_hash), so ring ranges and keyspace
    /// range digests cut the key space the same way.
    pub fn position(key: &[u8]) -> u64 {
        crate::keyhash::key_hash(key)
    }

    /// The segments of the ring in clockwise order, starting with the one that
    /// wraps past `u64::MAX`. Every position lies in exactly one segment; keys
    /// in a segment share a preference list. Rebalancing and range digests
    /// work segment by segment.
    pub fn segments(&self) -> impl Iterator<Item = Segment<'_>> + '_ {
        let last = self.positions.last().copied().unwrap_or(0);
        self.positions
            .iter()
            .enumerate()
            .map(move |(rank, &end)| Segment {
                start: if rank == 0 {
                    last
                } else {
                    self.positions[rank - 1]
                },
                end,
                replicas: self.segment_replicas(rank),
            })
    }

    /// The physical nodes on the ring, sorted.
    pub fn nodes(&self) -> &[ReplicaId] {
        &self.nodes
    }

    /// Whether `node` is on the ring.
    pub fn contains(&self, node: ReplicaId) -> bool {
        self.nodes.binary_search(&node).is_ok()
    }

    /// Number of physical nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the ring has no node.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Replicas per key the ring aims for (N).
    pub fn replication_factor(&self) -> usize {
        self.replication_factor
    }

    /// Virtual points per physical node.
    pub fn vnodes_per_node(&self) -> u32 {
        self.vnodes_per_node
    }

    fn segment_replicas(&self, rank: usize) -> &[ReplicaId] {
        let start = rank * self.width;
        &self.preference[start..start + self.width]
    }

    /// Recomputes the points, their order and every segment's preference list
    /// from `self.nodes`.
    fn rebuild(&mut self) {
        let vnodes = self.vnodes_per_node;
        let unranked: Vec<Point> = self
            .nodes
            .iter()
            .flat_map(|&node| (0..vnodes).map(move |vnode| Point { node, vnode }))
            .collect();
        let mut staging = HashRing::new();
        staging.batch_add(unranked);
        // The hashring's own order (sorted by position) defines the ranks.
        let ranked: Vec<Point> = staging.into_iter().collect();
        self.positions = ranked
            .iter()
            .map(|point| DefaultHashBuilder.hash_one(point))
            .collect();
        assert!(
            self.positions.windows(2).all(|pair| pair[0] <= pair[1]),
            "ring points out of order"
        );

        self.width = self.replication_factor.min(self.nodes.len());
        self.preference.clear();
        self.preference.reserve(ranked.len() * self.width);
        for start in 0..ranked.len() {
            let list_start = self.preference.len();
            let mut steps = 0;
            while self.preference.len() - list_start < self.width {
                assert!(steps < ranked.len(), "clockwise walk found too few nodes");
                let node = ranked[(start + steps) % ranked.len()].node;
                if !self.preference[list_start..].contains(&node) {
                    self.preference.push(node);
                }
                steps += 1;
            }
        }
    }
}

impl fmt::Debug for Ring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ring")
            .field("replication_factor", &self.replication_factor)
            .field("vnodes_per_node", &self.vnodes_per_node)
            .field("nodes", &self.nodes)
            .finish_non_exhaustive()
    }
}
