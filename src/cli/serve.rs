//! `meridian serve --node ID`: run one node of the topology until a
//! shutdown signal, through the network layer ([`crate::net::serve`]).
//!
//! The node's limits come from the topology, so every node of a cluster
//! enforces the same ones; everything else keeps [`NodeConfig`]'s defaults.
//! With `--peer-routes FILE` (written by `cluster up`), the nodes listed in
//! the file are dialled at the addresses it gives: the local lab's WAN
//! relays for the nodes of other regions.

use crate::net::PeerRoutes;
use crate::net::{serve, ServeOptions};
use crate::node::NodeConfig;
use crate::topology::Topology;
use crate::wan::{read_routes, Routes};
use anyhow::Context;
use std::future::Future;
use std::path::{Path, PathBuf};

/// Runs node `node_id` of `topology` with the certificates in `cert_dir`
/// (its data in `data_dir`, and dialling peers through the routes in
/// `peer_routes`, if given) until `shutdown` completes; `joining` when the
/// node is added to a running region.
pub async fn run(
    topology: Topology,
    node_id: String,
    cert_dir: PathBuf,
    data_dir: Option<PathBuf>,
    peer_routes: Option<PathBuf>,
    joining: bool,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let mut node = node_config(&topology);
    node.joining = joining;
    let peer_routes = match peer_routes {
        Some(path) => PeerRoutes {
            routes: load_routes(&topology, &path)?,
            file: Some(path),
        },
        None => PeerRoutes::default(),
    };
    serve(
        ServeOptions {
            topology,
            node_id,
            cert_dir,
            node,
            data_dir,
            peer_routes,
        },
        shutdown,
    )
    .await
}

/// Reads a route file, leaving out (with a warning) the nodes `topology`
/// does not have: a node being removed keeps its routes until it has
/// handed its keys over, and a node restarted meanwhile must still start.
pub fn load_routes(topology: &Topology, path: &Path) -> anyhow::Result<Routes> {
    let mut routes =
        read_routes(path).with_context(|| format!("cannot read peer routes {}", path.display()))?;
    routes.retain(|id, _| {
        let known = topology.node(id).is_some();
        if !known {
            tracing::warn!(
                routes = %path.display(),
                node = %id,
                topology = topology.origin(),
                "peer routes name a node the topology does not have; left out"
            );
        }
        known
    });
    Ok(routes)
}

/// [`NodeConfig::default`] with the key and value limits of `topology`.
fn node_config(topology: &Topology) -> NodeConfig {
    let mut config = NodeConfig::default();
    let limits = topology.limits();
    config.keyspace.key_bytes_max = limits.key_bytes_max as usize;
    config.keyspace.value_bytes_max = limits.value_bytes_max as usize;
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_naming_unknown_nodes_leave_them_out() {
        let topology =
            Topology::load(concat!(env!("CARGO_MANIFEST_DIR"), "/regions/local.toml")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("routes.toml");
        std::fs::write(&path, "\"eu-west-1\" = \"127.0.0.1:9001\"\n").unwrap();
        let routes = load_routes(&topology, &path).unwrap();
        assert_eq!(routes["eu-west-1"], "127.0.0.1:9001".parse().unwrap());
        // A node being removed (gone from the topology, still in the
        // file): the others start all the same, without its route.
        std::fs::write(
            &path,
            "\"mars-1\" = \"127.0.0.1:9001\"\n\"eu-west-2\" = \"127.0.0.1:9002\"\n",
        )
        .unwrap();
        let routes = load_routes(&topology, &path).unwrap();
        assert_eq!(routes.keys().collect::<Vec<_>>(), ["eu-west-2"]);
        assert!(load_routes(&topology, &dir.path().join("none.toml")).is_err());
    }
}
