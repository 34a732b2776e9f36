//! Meridian: a geo-replicated cache and key-value store whose values are
//! delta-state CRDTs.
//!
//! - [`topology`]: the cluster's regions, nodes, limits and WAN links, read
//!   from a `regions/*.toml` file and validated.
//! - [`placement`]: the consistent-hash ring of each region, which gives
//!   every key its preference list of replicas; shared by clients and nodes.

pub mod placement;
pub mod topology;
