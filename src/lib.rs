//! Meridian: a geo-replicated cache and key-value store whose values are
//! delta-state CRDTs.
//!
//! - [`topology`]: the cluster's regions, nodes, limits and WAN links, read
//!   from a `regions/*.toml` file and validated.

pub mod topology;
