//! The topology a running node uses to dial peers and recognise them,
//! swappable while it runs (a node added to or removed from a region).
//!
//! `Command::ReloadTopology` makes the driver re-read the node's topology
//! file, hand it to the node ([`Node::set_topology`](crate::node::Node::set_topology)),
//! and, once the node accepted it, store it here, where peer links and the
//! peer endpoint read it. Nothing else here: no I/O but the file read on a
//! reload, and no decision about data.

use std::sync::{Arc, RwLock};

use crate::node::Node;
use crate::protocol::{Answer, ErrorReply, Reply, Request, Response};
use crate::topology::{Node as NodeAddr, Topology};

/// The current topology, shared by the tasks of one node.
#[derive(Debug, Default)]
pub(crate) struct TopologyCell {
    current: RwLock<Option<Arc<Topology>>>,
}

impl TopologyCell {
    /// Makes `topology` the current one.
    pub(crate) fn set(&self, topology: Topology) {
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        *current = Some(Arc::new(topology));
    }

    /// The current topology, once set.
    pub(crate) fn get(&self) -> Option<Arc<Topology>> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The node with replica id `replica`, if the topology has it.
    pub(crate) fn node_by_replica(&self, replica: crdt_types::ReplicaId) -> Option<NodeAddr> {
        self.get()?.node_by_replica(replica).cloned()
    }

    /// The node named `id`, if the topology has it.
    pub(crate) fn node(&self, id: &str) -> Option<NodeAddr> {
        self.get()?.node(id).cloned()
    }
}

/// Answers `Command::ReloadTopology`: re-reads the file the current
/// topology came from and hands it to `node`; the cell takes it only if the
/// node accepted it.
pub(crate) fn reload(
    cell: &TopologyCell,
    node: &mut Node,
    now_ms: u64,
    request: &Request,
) -> Response {
    let result = match cell.get() {
        None => Err("the node has no topology yet".to_owned()),
        Some(current) => Topology::load(current.origin())
            .map_err(|e| e.to_string())
            .and_then(|topology| {
                node.set_topology(now_ms, &topology)
                    .map_err(|e| e.to_string())?;
                Ok(topology)
            }),
    };
    let result = match result {
        Ok(topology) => {
            tracing::info!(
                origin = topology.origin(),
                nodes = topology.nodes().count(),
                "reloaded the topology"
            );
            cell.set(topology);
            Ok(Answer {
                reply: Reply::Ok,
                replicas_acked: 1,
                replicas_needed: 1,
            })
        }
        Err(reason) => {
            tracing::warn!(%reason, "refused a topology reload");
            Err(ErrorReply::BadRequest { reason })
        }
    };
    Response {
        id: request.id,
        result,
    }
}
