//! Stand-ins for `serve.rs` and `data.rs` while the crate has no network
//! layer (`net`) and no client SDK (`client`): the same items with the same
//! signatures, failing with [`NetworkUnavailable`] instead of serving or
//! connecting, and a readiness probe that only watches for listening
//! nodes. Once `net` and `client` are in the crate, `cli/mod.rs` declares
//! `data` and `serve` as modules and this file is deleted.

use std::fmt;

/// This build of Meridian cannot serve or reach nodes yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub struct NetworkUnavailable;

impl fmt::Display for NetworkUnavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "this build of meridian has no network layer yet; it cannot serve or reach nodes",
        )
    }
}

/// Stand-in for `serve.rs`.
pub mod serve {
    use super::NetworkUnavailable;
    use crate::topology::Topology;
    use std::future::Future;
    use std::path::PathBuf;

    /// Fails: there is no network layer to serve with.
    pub async fn run(
        _topology: Topology,
        _node_id: String,
        _cert_dir: PathBuf,
        _shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        Err(NetworkUnavailable.into())
    }
}

/// Stand-in for `data.rs`.
pub mod data {
    use super::NetworkUnavailable;
    use crate::cli::cluster::{ListeningProbe, NodeEntry, ReadinessProbe};
    use crate::cli::target::Target;
    use crate::protocol::{Answer, Command};
    use crate::topology::Topology;
    use std::path::PathBuf;

    /// Fails: there is no client SDK to connect with.
    pub async fn execute(_target: Target, _command: Command) -> Result<Answer, NetworkUnavailable> {
        Err(NetworkUnavailable)
    }

    /// A [`ListeningProbe`] until nodes can be pinged.
    #[derive(Debug)]
    pub struct PingProbe;

    impl PingProbe {
        /// The probe; the arguments are those of the pinging probe.
        pub fn new(_topology: Topology, _cert_dir: PathBuf) -> Self {
            PingProbe
        }
    }

    impl ReadinessProbe for PingProbe {
        async fn is_ready(&mut self, node: &NodeEntry) -> bool {
            ListeningProbe::check(node)
        }
    }
}
