//! `<state-dir>/cluster.json`: what `meridian cluster up` is running, so
//! other commands (and tests) can find the topology, the nodes, their
//! processes and addresses.
//!
//! `cluster up` writes it when its nodes are started, rewrites it when they
//! are all ready or when one exits, and removes it when it stops. The file
//! is replaced atomically (written to a temporary name, then renamed), so a
//! reader never sees half of it. This module reads and writes the file; it
//! never signals a process.

use serde::{Deserialize, Serialize};
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The file's name inside the state directory.
pub const CLUSTER_FILE_NAME: &str = "cluster.json";
/// The format version written in the file.
pub const CLUSTER_FILE_VERSION: u32 = 1;
/// Largest cluster file read.
pub const CLUSTER_FILE_BYTES_MAX: u64 = 4 << 20;

/// A running local cluster, as `cluster.json` records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterFile {
    /// [`CLUSTER_FILE_VERSION`].
    pub version: u32,
    /// The cluster's name, from the topology.
    pub cluster: String,
    /// The topology file, as an absolute path.
    pub topology: PathBuf,
    /// The certificate directory, as an absolute path.
    pub cert_dir: PathBuf,
    /// The process id of `meridian cluster up`, which owns the nodes.
    pub supervisor_pid: u32,
    /// Whether every node has been seen listening.
    pub ready: bool,
    /// The nodes, in topology order.
    pub nodes: Vec<NodeEntry>,
}

/// One node of a running cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeEntry {
    /// The node's id.
    pub id: String,
    /// Its region.
    pub region: String,
    /// Its process id while it runs; `None` once it has exited.
    pub pid: Option<u32>,
    /// How it exited (`was killed by signal 9 (SIGKILL)`), once it has.
    pub exit: Option<String>,
    /// How many times it has been started (1 in its first life).
    #[serde(default)]
    pub lives: u32,
    /// Where clients connect.
    pub client_addr: SocketAddr,
    /// Where other nodes connect.
    pub peer_addr: SocketAddr,
    /// Its log file, as an absolute path.
    pub log: PathBuf,
    /// The CPU it runs on (`cluster up --pin-cpus`), kept across restarts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<usize>,
}

/// A cluster file that could not be read, parsed or written.
#[derive(Debug, thiserror::Error)]
pub enum ClusterFileError {
    /// No cluster runs in this state directory.
    #[error("no cluster is running in {dir} (no {CLUSTER_FILE_NAME}; start one with `meridian cluster up`)", dir = .path.parent().unwrap_or(Path::new(".")).display())]
    Missing {
        /// The file looked for.
        path: PathBuf,
    },
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The file is not a cluster file this version understands.
    #[error("{path} is not a valid cluster file: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The file could not be written or removed.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

impl ClusterFile {
    /// Where the cluster file of `state_dir` is.
    pub fn path_in(state_dir: &Path) -> PathBuf {
        state_dir.join(CLUSTER_FILE_NAME)
    }

    /// Reads the cluster file of `state_dir`.
    pub fn load(state_dir: &Path) -> Result<ClusterFile, ClusterFileError> {
        let path = Self::path_in(state_dir);
        let text = match std::fs::read(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(ClusterFileError::Missing { path })
            }
            Err(source) => return Err(ClusterFileError::Read { path, source }),
        };
        if text.len() as u64 > CLUSTER_FILE_BYTES_MAX {
            return Err(ClusterFileError::Corrupt {
                path,
                reason: format!("larger than {CLUSTER_FILE_BYTES_MAX} bytes"),
            });
        }
        let file: ClusterFile =
            serde_json::from_slice(&text).map_err(|e| ClusterFileError::Corrupt {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        if file.version != CLUSTER_FILE_VERSION {
            return Err(ClusterFileError::Corrupt {
                path,
                reason: format!(
                    "version {} (this meridian reads version {CLUSTER_FILE_VERSION})",
                    file.version
                ),
            });
        }
        Ok(file)
    }

    /// Reads the cluster file of `state_dir`, or `None` if there is none.
    pub fn load_if_present(state_dir: &Path) -> Result<Option<ClusterFile>, ClusterFileError> {
        match Self::load(state_dir) {
            Ok(file) => Ok(Some(file)),
            Err(ClusterFileError::Missing { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes the file into `state_dir`, replacing any earlier one
    /// atomically.
    pub fn save(&self, state_dir: &Path) -> Result<(), ClusterFileError> {
        let path = Self::path_in(state_dir);
        let write_err = |source| ClusterFileError::Write {
            path: path.clone(),
            source,
        };
        let mut text = serde_json::to_vec_pretty(self).expect("a cluster file always serializes");
        text.push(b'\n');
        let tmp = state_dir.join(format!(".{CLUSTER_FILE_NAME}.tmp{}", std::process::id()));
        std::fs::write(&tmp, &text).map_err(write_err)?;
        std::fs::rename(&tmp, &path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            write_err(e)
        })
    }

    /// Removes the cluster file of `state_dir`; a missing file is fine.
    pub fn remove(state_dir: &Path) -> Result<(), ClusterFileError> {
        let path = Self::path_in(state_dir);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(ClusterFileError::Write { path, source }),
        }
    }

    /// The node called `id`.
    pub fn node(&self, id: &str) -> Option<&NodeEntry> {
        self.nodes.iter().find(|node| node.id == id)
    }

    /// The nodes still running.
    pub fn running(&self) -> impl Iterator<Item = &NodeEntry> + '_ {
        self.nodes.iter().filter(|node| node.pid.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ClusterFile {
        ClusterFile {
            version: CLUSTER_FILE_VERSION,
            cluster: "local".into(),
            topology: "/lab/regions/local.toml".into(),
            cert_dir: "/lab/.meridian/certs".into(),
            supervisor_pid: 100,
            ready: true,
            nodes: vec![
                NodeEntry {
                    id: "us-east-1".into(),
                    region: "us-east".into(),
                    pid: Some(101),
                    exit: None,
                    lives: 1,
                    client_addr: "127.0.0.1:7101".parse().unwrap(),
                    peer_addr: "127.0.0.1:7111".parse().unwrap(),
                    log: "/lab/.meridian/logs/us-east-1.log".into(),
                    cpu: None,
                },
                NodeEntry {
                    id: "us-east-2".into(),
                    region: "us-east".into(),
                    pid: None,
                    exit: Some("was killed by signal 9 (SIGKILL)".into()),
                    lives: 1,
                    client_addr: "127.0.0.1:7102".parse().unwrap(),
                    peer_addr: "127.0.0.1:7112".parse().unwrap(),
                    log: "/lab/.meridian/logs/us-east-2.log".into(),
                    cpu: None,
                },
            ],
        }
    }

    #[test]
    fn a_saved_cluster_file_loads_back_equal() {
        let dir = tempfile::tempdir().unwrap();
        sample().save(dir.path()).unwrap();
        assert_eq!(ClusterFile::load(dir.path()).unwrap(), sample());
        let loaded = ClusterFile::load(dir.path()).unwrap();
        assert_eq!(loaded.node("us-east-2").unwrap().pid, None);
        assert_eq!(
            loaded.running().map(|n| n.id.as_str()).collect::<Vec<_>>(),
            ["us-east-1"]
        );
    }

    #[test]
    fn the_file_maps_node_ids_to_pids_and_addresses_in_plain_json() {
        let dir = tempfile::tempdir().unwrap();
        sample().save(dir.path()).unwrap();
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("cluster.json")).unwrap())
                .unwrap();
        assert_eq!(json["nodes"][0]["id"], "us-east-1");
        assert_eq!(json["nodes"][0]["pid"], 101);
        assert_eq!(json["nodes"][0]["client_addr"], "127.0.0.1:7101");
        assert_eq!(json["topology"], "/lab/regions/local.toml");
    }

    #[test]
    fn a_missing_file_means_no_cluster_runs() {
        let dir = tempfile::tempdir().unwrap();
        let e = ClusterFile::load(dir.path()).unwrap_err();
        assert!(matches!(e, ClusterFileError::Missing { .. }));
        assert!(e.to_string().contains("no cluster is running"), "{e}");
        assert_eq!(ClusterFile::load_if_present(dir.path()).unwrap(), None);
        ClusterFile::remove(dir.path()).unwrap();
    }

    #[test]
    fn a_corrupt_or_foreign_version_file_is_refused_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cluster.json"), "{not json").unwrap();
        let e = ClusterFile::load(dir.path()).unwrap_err();
        assert!(matches!(e, ClusterFileError::Corrupt { .. }));
        assert!(e.to_string().contains("cluster.json"), "{e}");

        let mut other = sample();
        other.version = 99;
        other.save(dir.path()).unwrap();
        let e = ClusterFile::load(dir.path()).unwrap_err();
        assert!(e.to_string().contains("version 99"), "{e}");
    }

    #[test]
    fn remove_deletes_the_file() {
        let dir = tempfile::tempdir().unwrap();
        sample().save(dir.path()).unwrap();
        ClusterFile::remove(dir.path()).unwrap();
        assert!(!dir.path().join("cluster.json").exists());
    }
}
