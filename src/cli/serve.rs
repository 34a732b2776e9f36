//! `meridian serve --node ID`: run one node of the topology until a
//! shutdown signal, through the network layer ([`crate::net::serve`]).
//!
//! The node's limits come from the topology, so every node of a cluster
//! enforces the same ones; everything else keeps [`NodeConfig`]'s defaults.

use crate::net::{serve, ServeOptions};
use crate::node::NodeConfig;
use crate::topology::Topology;
use std::future::Future;
use std::path::PathBuf;

/// Runs node `node_id` of `topology` with the certificates in `cert_dir`
/// (and its data in `data_dir`, if given) until `shutdown` completes.
pub async fn run(
    topology: Topology,
    node_id: String,
    cert_dir: PathBuf,
    data_dir: Option<PathBuf>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let node = node_config(&topology);
    serve(
        ServeOptions {
            topology,
            node_id,
            cert_dir,
            node,
            data_dir,
        },
        shutdown,
    )
    .await
}

/// [`NodeConfig::default`] with the key and value limits of `topology`.
fn node_config(topology: &Topology) -> NodeConfig {
    let mut config = NodeConfig::default();
    let limits = topology.limits();
    config.keyspace.key_bytes_max = limits.key_bytes_max as usize;
    config.keyspace.value_bytes_max = limits.value_bytes_max as usize;
    config
}
