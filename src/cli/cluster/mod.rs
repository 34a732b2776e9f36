//! The local cluster: `meridian cluster up | down | kill | restart | status`.
//!
//! `cluster up` runs every node of a topology as its own OS process, a
//! child of the `cluster up` process, and supervises them: it waits until
//! each serves, reports any that dies, restarts none, and stops them all
//! cleanly on Ctrl-C or SIGTERM. Other commands find the running cluster
//! through `<state-dir>/cluster.json`. With several regions, it also runs
//! the WAN emulator ([`crate::wan`]) that carries traffic between regions,
//! and `cluster partition` / `heal` cut and mend its links.
//!
//! - `supervisor.rs`: starting, watching and stopping the node processes.
//! - `readiness.rs`: when a started node counts as serving.
//! - `control.rs`: `down`, `kill`, `restart` and `status`, from another process.
//! - `file.rs`: `cluster.json`.
//! - `members.rs`: `add-node` and `remove-node`, and the lab's topology copy.
//! - `process.rs`: signals and liveness of processes by id.
//! - `banner.rs`: what `cluster up` prints once the cluster serves.
//! - `wan.rs`: the WAN relays of `cluster up`, their route files, and
//!   `partition` / `heal` through the partition control file.
//!
//! Only the WAN relays open sockets here (they belong to the emulator, not
//! to the nodes): readiness is observed from the outside unless a probe
//! that talks to the nodes is plugged in.

mod banner;
mod control;
mod file;
pub mod members;
pub mod process;
mod readiness;
mod supervisor;
mod wan;

pub use banner::{banner, status_text};
pub use control::{down, kill, restart, Stopped};
pub use file::{
    ClusterFile, ClusterFileError, NodeEntry, CLUSTER_FILE_BYTES_MAX, CLUSTER_FILE_NAME,
    CLUSTER_FILE_VERSION,
};
pub use readiness::{
    log_says_listening, udp_inodes_on_port, udp_port_bound_by, ListeningProbe, ReadinessProbe,
    LOG_SCAN_BYTES_MAX,
};
pub use supervisor::{up, Event, UpOptions, CLIENT_NAME, LOG_TAIL_LINES_MAX};
pub use wan::{
    heal, healed_text, link_states, links, links_text, partition, partitions_path, Healed,
    LinkState, PARTITIONS_FILE_NAME, ROUTES_DIR_NAME,
};

use crate::tls::TlsError;
use crate::topology::TopologyError;
use crate::wan::WanError;
use std::path::PathBuf;

/// Why a cluster command failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The topology could not be loaded.
    #[error(transparent)]
    Topology(#[from] TopologyError),
    /// The certificates could not be created or loaded.
    #[error("certificates: {0}")]
    Certificates(#[from] TlsError),
    /// `cluster.json` could not be read or written.
    #[error(transparent)]
    File(#[from] ClusterFileError),
    /// A cluster already runs in this state directory.
    #[error(
        "a cluster is already running in {state_dir} (cluster up, pid {pid}); \
         stop it with `meridian cluster down`"
    )]
    AlreadyRunning {
        /// The state directory.
        state_dir: PathBuf,
        /// The process of that `cluster up`.
        pid: u32,
    },
    /// Another `cluster up` is starting or running in this state
    /// directory (it holds the directory's lock).
    #[error(
        "another `meridian cluster up` is using {state_dir}; stop it with \
         `meridian cluster down`, or use another --state-dir"
    )]
    StateDirInUse {
        /// The state directory.
        state_dir: PathBuf,
    },
    /// A file or directory could not be created or resolved.
    #[error("cannot use {path}: {source}")]
    Path {
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A node process could not be started.
    #[error("cannot start node {node} ({program}): {source}")]
    Spawn {
        /// The node.
        node: String,
        /// The program run.
        program: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A node exited before it was ready.
    #[error("node {node} {how} while starting; its log ({log}) ends with:\n{log_tail}")]
    ExitedDuringStartup {
        /// The node.
        node: String,
        /// How it exited.
        how: String,
        /// Its log file.
        log: PathBuf,
        /// The last lines of its log.
        log_tail: String,
    },
    /// Some nodes were not ready in time.
    #[error(
        "{} not ready after {} ms: {}; see their logs in {}",
        if .nodes.len() == 1 { "node" } else { "nodes" },
        .timeout_ms,
        .nodes.join(", "),
        .logs_dir.display()
    )]
    NotReady {
        /// The nodes that were not ready.
        nodes: Vec<String>,
        /// How long the supervisor waited.
        timeout_ms: u64,
        /// Where the logs are.
        logs_dir: PathBuf,
    },
    /// Every node has exited; nothing is left to supervise.
    #[error("every node has exited; the cluster is down")]
    AllExited,
    /// No node of the running cluster has this id.
    #[error("no node {node} in the running cluster (nodes: {})", .known.join(", "))]
    UnknownNode {
        /// The id asked for.
        node: String,
        /// The cluster's nodes.
        known: Vec<String>,
    },
    /// The node is not running.
    #[error("node {node} is not running{}", .how.as_ref().map(|how| format!(" (it {how})")).unwrap_or_default())]
    NotRunning {
        /// The node.
        node: String,
        /// How it exited, if known.
        how: Option<String>,
    },
    /// A process could not be signalled.
    #[error("cannot signal process {pid}: {source}")]
    Signal {
        /// The process.
        pid: u32,
        /// Why.
        source: std::io::Error,
    },
    /// The WAN emulator could not start, or its files could not be used.
    #[error("WAN emulator: {0}")]
    Wan(#[from] WanError),
    /// No region of the running cluster has this name.
    #[error("no region {region} in the running cluster (regions: {})", .known.join(", "))]
    UnknownRegion {
        /// The name asked for.
        region: String,
        /// The cluster's regions.
        known: Vec<String>,
    },
    /// A link from a region to itself was named.
    #[error("a region has no link to itself ({0})")]
    SameRegion(String),
    /// The running cluster has one region, hence no link to cut or heal.
    #[error("cluster {cluster} has a single region: there are no links between regions")]
    NoLinks {
        /// The cluster's name.
        cluster: String,
    },
    /// A node could not be added or removed.
    #[error("{0}")]
    Membership(String),
    /// Processes of a cluster still ran after SIGKILL.
    #[error("processes {pids:?} still run after SIGKILL")]
    Unkillable {
        /// Their ids.
        pids: Vec<u32>,
    },
}
