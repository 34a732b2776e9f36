//! The local cluster: `meridian cluster up | down | kill | status`.
//!
//! - `readiness.rs`: when a started node counts as serving.
//! - `file.rs`: `cluster.json`.
//! - `process.rs`: signals and liveness of processes by id.

mod file;
pub mod process;
mod readiness;

pub use file::{
    ClusterFile, ClusterFileError, NodeEntry, CLUSTER_FILE_BYTES_MAX, CLUSTER_FILE_NAME,
    CLUSTER_FILE_VERSION,
};
pub use readiness::{
    log_says_listening, udp_inodes_on_port, udp_port_bound_by, ListeningProbe, ReadinessProbe,
    LOG_SCAN_BYTES_MAX,
};
