//! Meridian: a geo-replicated cache and key-value store whose values are
//! delta-state CRDTs.
//!
//! - [`keyspace`]: keys → typed CRDT values with expiry on one replica.
//! - [`keyhash`]: the stable hash that positions keys on rings and ranges.
//! - [`topology`]: the cluster's regions, nodes, limits and WAN links, read
//!   from a `regions/*.toml` file and validated.
//! - [`placement`]: the consistent-hash ring of each region, which gives
//!   every key its preference list of replicas; shared by clients and nodes.
//! - [`node`]: the replica's logic as a sans-IO state machine.
//! - [`protocol`]: the wire messages and framing shared by clients and nodes.
//! - [`sim`]: a deterministic simulator that runs nodes with no sockets and no real time.
//! - [`storage`]: optional persistence: a checksummed delta log and snapshots.
//! - [`tls`]: the cluster CA, certificates and mutual-TLS QUIC configs.
//! - [`net`]: the only place with sockets: drives a node with tokio and quinn.
//! - [`client`]: the async Rust SDK.
//! - [`cli`]: the `meridian` command line: argument parsing, answer
//!   formatting, certificates and the local cluster supervisor.
//! - [`wan`]: the WAN emulator of the local geo lab (UDP relays with latency, loss, partitions).
//! - [`affinity`]: pinning a process to chosen CPUs (`serve --cpus`).
//!
//! The CRDT algebra itself lives in the `crdt-types` crate, re-exported as
//! [`crdt`].

pub use crdt_types as crdt;

pub mod affinity;
pub(crate) mod busy_poll;
pub mod cli;
pub mod client;
pub mod glob;
pub mod keyhash;
pub mod keyspace;
pub mod net;
pub mod node;
pub mod placement;
pub mod protocol;
pub mod sim;
pub mod storage;
pub mod tls;
pub mod topology;
pub mod wan;

/// The README's Rust examples, compiled as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
