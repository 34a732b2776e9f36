//! Delta-state CRDTs with causal contexts: the pure algebra under Meridian.
//!
//! Every mutator returns a small [`Delta`]; a replica joins deltas (or whole
//! states) with `join`, which is commutative, associative and idempotent, so
//! deltas may be lost, duplicated and reordered and replicas still converge.
//!
//! - [`Hlc`] / [`HlcClock`]: hybrid logical clocks with a skew bound.
//! - [`CausalContext`]: version vector plus dot cloud.
//! - Dot stores ([`DotSet`], [`DotFun`], [`DotMap`]) and [`Causal`] pairs.
//! - Types: [`LwwRegister`], [`MvRegister`], [`Counter`] (observed reset),
//!   [`OrSet`] (add-wins), [`OrMap`] (update-wins, nested types),
//!   [`Expiry`] (longest deadline wins, persist beats deadlines), and
//!   [`Record`], a key's value plus expiry.
//!
//! This crate never does I/O, never reads a clock and never draws random
//! numbers: time and replica identities are arguments. Decoding bytes that
//! are truncated, corrupt or break an invariant returns an error.

mod bytes;
mod causal;
mod context;
mod counter;
mod dotstore;
mod expiry;
mod hlc;
mod map;
mod record;
mod register;
mod replica;
mod set;

pub use bytes::Bytes;
pub use causal::{Causal, Delta};
pub use context::{CausalContext, InvalidState};
pub use counter::Counter;
pub use dotstore::{DotFun, DotKey, DotMap, DotSet, DotStore, DotValue, JoinMode};
pub use expiry::{Expiry, ExpiryEntry};
pub use hlc::{ClockSkew, Hlc, HlcClock, PHYSICAL_MS_MAX};
pub use map::{Component, Kind, Mixed, OrMap, TypedStore, WrongType, MAP_NESTING_MAX};
pub use record::Record;
pub use register::{LwwRegister, MvRegister, Stamped};
pub use replica::{Dot, ReplicaId};
pub use set::OrSet;

/// Errors from [`decode`].
#[derive(Debug, thiserror::Error)]
#[error("cannot decode CRDT bytes: {0}")]
pub struct DecodeError(#[from] postcard::Error);

/// Encodes a value deterministically (equal values give equal bytes).
pub fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    // Serialising our types into a Vec cannot fail: no type here has a
    // serializer that errors.
    postcard::to_allocvec(value).expect("encoding CRDT state into memory cannot fail")
}

/// Decodes a value, checking its invariants. Never panics on bad input.
pub fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    Ok(postcard::from_bytes(bytes)?)
}
