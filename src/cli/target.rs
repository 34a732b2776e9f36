//! Which cluster, region and credentials a data command talks to, from the
//! global options and the running local cluster.
//!
//! With no options, a data command finds the cluster that `meridian
//! cluster up` runs in `.meridian`: its topology (from `cluster.json`,
//! else `regions/local.toml`), the first region of that topology, and the
//! `cli` client certificate in `.meridian/certs` (`--cert-dir` and
//! `--client` name others). Resolving reads files only; it never connects,
//! unless `--seed ADDR` asks for the topology from a node instead.

use super::args::{GlobalArgs, DEFAULT_TOPOLOGY};
use super::cluster::{ClusterFile, ClusterFileError};
use crate::client::ClientError;
use crate::topology::{ReadConsistency, Topology, TopologyError, WriteConsistency};
use std::path::{Path, PathBuf};

/// How long a `--seed` has to complete its handshake, then to answer.
pub const SEED_TIMEOUT_MS: u64 = 2_000;

/// Where and how a data command is sent.
#[derive(Debug, Clone)]
pub struct Target {
    /// The cluster's topology.
    pub topology: Topology,
    /// The region whose nodes serve the command.
    pub region: String,
    /// The directory with `ca.cert.pem` and the client's certificate.
    pub cert_dir: PathBuf,
    /// The client certificate's name.
    pub client_name: String,
    /// Write consistency; the topology's default when `None`.
    pub write: Option<WriteConsistency>,
    /// Read consistency; the topology's default when `None`.
    pub read: Option<ReadConsistency>,
    /// No `--topology` and no cluster running in the state directory: the
    /// topology is `regions/local.toml`, a guess that nodes run by hand.
    pub guessed: bool,
}

/// Why a data command has no target.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// The topology could not be loaded.
    #[error(transparent)]
    Topology(#[from] TopologyError),
    /// The running cluster's file is unreadable.
    #[error(transparent)]
    ClusterFile(#[from] ClusterFileError),
    /// No `--topology`, no cluster running in the state directory, and no
    /// default topology file to fall back on.
    #[error(
        "no running cluster found in {state_dir} (no cluster.json there): start one with \
         `meridian cluster up`, or pass --state-dir DIR (the running cluster's state \
         directory) or --topology FILE"
    )]
    NoCluster {
        /// The state directory searched.
        state_dir: String,
    },
    /// No `--seed` answered with the topology (or the client's own
    /// certificates could not be loaded to ask).
    #[error("{0}")]
    Seeds(ClientError),
    /// A `--seed` is not an address or a name that resolves.
    #[error("cannot resolve seed {seed:?}: {reason}")]
    BadSeed {
        /// The seed as given.
        seed: String,
        /// Why.
        reason: String,
    },
    /// `--seed` without a certificate directory to present a client
    /// certificate from.
    #[error(
        "no certificate directory {dir} to reach a seed with: pass --cert-dir DIR (the cluster \
         CA's certificate and a client certificate), or --state-dir DIR of the cluster"
    )]
    NoCertDir {
        /// The directory looked for.
        dir: String,
    },
    /// `--seed` and `--topology` name the topology twice.
    #[error("--seed and --topology both name the topology: use one")]
    SeedsAndTopology,
    /// `--region` names no region of the topology.
    #[error("no region {region:?} in {topology} (regions: {})", .known.join(", "))]
    UnknownRegion {
        /// The region asked for.
        region: String,
        /// The topology file.
        topology: String,
        /// Its regions.
        known: Vec<String>,
    },
}

impl Target {
    /// What to add to an error that `error` might owe to a guessed target:
    /// that no cluster runs in the state directory, and how to start or
    /// name one. `None` when the target was not guessed, or the error came
    /// from a node that answered.
    ///
    /// Otherwise, when the client certificate is missing from a
    /// certificate directory that holds the CA's, how to issue it.
    pub fn guess_hint(&self, error: &ClientError, state_dir: &Path) -> Option<String> {
        if let ClientError::Tls(message) = error {
            let cert = format!("client-{}.cert.pem does not exist", self.client_name);
            if message.ends_with(&cert) && self.cert_dir.join("ca.cert.pem").exists() {
                return Some(format!(
                    "no certificate for client {name} in {dir}: issue one with `meridian \
                     --cert-dir {dir} certs client {name}`",
                    name = self.client_name,
                    dir = self.cert_dir.display()
                ));
            }
        }
        // Not `Timeout`: a node that answers may say it timed out waiting
        // for its replicas.
        let unreachable = matches!(error, ClientError::Connect(_) | ClientError::Tls(_));
        (self.guessed && unreachable).then(|| {
            format!(
                "no cluster is running in {} (no cluster.json there), so {DEFAULT_TOPOLOGY} \
                 was tried: start one with `meridian cluster up`, or pass --state-dir DIR \
                 (the running cluster's state directory) or --topology FILE",
                state_dir.display()
            )
        })
    }

    /// The target named by `global`: `--topology`, else the topology of the
    /// cluster running in `--state-dir`, else `regions/local.toml` when
    /// that file exists (nodes run by hand with `meridian serve`), else
    /// [`TargetError::NoCluster`];
    /// `--region`, else the topology's first region; the `--client`
    /// certificate (`cli`) in `--cert-dir` (`<state-dir>/certs`).
    pub fn resolve(global: &GlobalArgs) -> Result<Target, TargetError> {
        let running = match &global.topology {
            Some(_) => None,
            None => ClusterFile::load_if_present(&global.state_dir)?,
        };
        if global.topology.is_none() && running.is_none() && !Path::new(DEFAULT_TOPOLOGY).exists() {
            return Err(TargetError::NoCluster {
                state_dir: global.state_dir.display().to_string(),
            });
        }
        let path = global.topology_or(running.as_ref().map(|file| file.topology.as_path()));
        let topology = Topology::load(&path)?;
        let guessed = global.topology.is_none() && running.is_none();
        Target::with_topology(global, topology, guessed)
    }

    /// [`Target::resolve`], but with `--seed` addresses the topology is
    /// fetched from those nodes instead (the newest version among their
    /// answers, see [`crate::client::fetch_topology`]).
    pub async fn resolve_async(global: &GlobalArgs) -> Result<Target, TargetError> {
        if global.seeds.is_empty() {
            return Target::resolve(global);
        }
        if global.topology.is_some() {
            return Err(TargetError::SeedsAndTopology);
        }
        let cert_dir = global.cert_dir();
        if !cert_dir.is_dir() {
            return Err(TargetError::NoCertDir {
                dir: cert_dir.display().to_string(),
            });
        }
        let mut seeds = Vec::new();
        for seed in &global.seeds {
            use std::net::ToSocketAddrs as _;
            let resolved = seed.to_socket_addrs().map_err(|e| TargetError::BadSeed {
                seed: seed.clone(),
                reason: e.to_string(),
            })?;
            seeds.extend(resolved);
        }
        let topology = crate::client::fetch_topology(
            &seeds,
            cert_dir,
            global.client_name(),
            std::time::Duration::from_millis(SEED_TIMEOUT_MS),
        )
        .await
        .map_err(TargetError::Seeds)?;
        Target::with_topology(global, topology, false)
    }

    fn with_topology(
        global: &GlobalArgs,
        topology: Topology,
        guessed: bool,
    ) -> Result<Target, TargetError> {
        let region = match &global.region {
            Some(region) if topology.region(region).is_some() => region.clone(),
            Some(region) => {
                return Err(TargetError::UnknownRegion {
                    region: region.clone(),
                    topology: topology.origin().to_owned(),
                    known: topology.regions().iter().map(|r| r.name.clone()).collect(),
                })
            }
            None => topology
                .regions()
                .first()
                .map(|r| r.name.clone())
                .expect("a loaded topology has at least one region"),
        };
        Ok(Target {
            topology,
            region,
            cert_dir: global.cert_dir(),
            client_name: global.client_name().to_owned(),
            write: global.consistency,
            read: global.read,
            guessed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::args::Cli;

    fn repo_file(name: &str) -> String {
        format!("{}/{name}", env!("CARGO_MANIFEST_DIR"))
    }

    fn global(args: &[&str]) -> GlobalArgs {
        let mut all = vec!["meridian"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["get", "k"]);
        Cli::try_parse_args(all).unwrap().global
    }

    #[test]
    fn defaults_to_the_first_region_and_the_cli_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().to_str().unwrap();
        let local = repo_file("regions/local.toml");
        let target = Target::resolve(&global(&[
            "--topology",
            &local,
            "--state-dir",
            state,
            "--consistency",
            "all",
        ]))
        .unwrap();
        assert_eq!(target.region, "us-east");
        assert_eq!(target.cert_dir, dir.path().join("certs"));
        assert_eq!(target.client_name, "cli");
        assert_eq!(target.write, Some(WriteConsistency::All));
        assert_eq!(target.read, None);

        let target = Target::resolve(&global(&[
            "--topology",
            &local,
            "--cert-dir",
            "pki",
            "--client",
            "alice",
        ]))
        .unwrap();
        assert_eq!(target.cert_dir, PathBuf::from("pki"));
        assert_eq!(target.client_name, "alice");
    }

    #[test]
    fn an_unknown_region_is_refused_with_the_known_ones() {
        let local = repo_file("regions/local.toml");
        let e = Target::resolve(&global(&["--topology", &local, "--region", "mars"])).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("no region \"mars\" in {local} (regions: us-east, eu-west, ap-south)")
        );
    }

    #[test]
    fn without_topology_the_running_clusters_topology_is_used() {
        let dir = tempfile::tempdir().unwrap();
        let single = repo_file("regions/single.toml");
        let file = ClusterFile {
            version: crate::cli::cluster::CLUSTER_FILE_VERSION,
            cluster: "single".into(),
            topology: single.clone().into(),
            cert_dir: dir.path().join("certs"),
            supervisor_pid: 1,
            ready: true,
            nodes: vec![],
        };
        file.save(dir.path()).unwrap();
        let target =
            Target::resolve(&global(&["--state-dir", dir.path().to_str().unwrap()])).unwrap();
        assert_eq!(target.topology.origin(), single);
    }

    #[test]
    fn a_bad_topology_is_reported_with_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.toml");
        std::fs::write(
            &bad,
            "[cluster]\nname = \"x\"\nreplication_factor = \"three\"\n",
        )
        .unwrap();
        let e = Target::resolve(&global(&["--topology", bad.to_str().unwrap()])).unwrap_err();
        assert!(
            e.to_string().starts_with(&format!("{}:3: ", bad.display())),
            "{e}"
        );
    }
}
