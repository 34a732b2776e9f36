//! Meridian: a geo-replicated cache and key-value store whose values are
//! delta-state CRDTs.
//!
//! - [`keyspace`]: keys → typed CRDT values with expiry on one replica.
//! - [`keyhash`]: the stable hash that places keys.
//! - [`tls`]: the cluster CA, certificates and mutual-TLS QUIC configs.
//!
//! The CRDT algebra itself lives in the `crdt-types` crate, re-exported as
//! [`crdt`].

pub use crdt_types as crdt;

pub mod keyhash;
pub mod keyspace;
pub mod tls;
