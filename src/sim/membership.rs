//! Membership changes in the simulator: a node joins a region, a node
//! leaves it. The new topology reaches every running node at once (as
//! `meridian cluster add-node` and `remove-node` deliver it to every
//! process); the rebalance itself is the nodes' business.

use super::Sim;
use crate::node::{Node, NodeConfig, TopologyChangeError};
use crate::topology::Topology;
use crdt_types::ReplicaId;

impl Sim {
    /// Makes `topology` the cluster's: boots its new nodes (joining, and
    /// empty) and hands it to every running node, including those it no
    /// longer names (they hand their keys over; [`Sim::retire`] them once
    /// they are done).
    pub fn set_topology(&mut self, topology: Topology) -> Result<(), TopologyChangeError> {
        let now_ms = self.now_ms;
        let mut changed = Vec::new();
        for (id, node) in self.nodes.iter_mut() {
            if !self.down.contains(id) {
                node.set_topology(now_ms, &topology)?;
                changed.push(*id);
            }
        }
        let joining: Vec<(ReplicaId, String)> = topology
            .nodes()
            .filter(|(_, n)| !self.nodes.contains_key(&n.replica))
            .map(|(r, n)| (n.replica, r.name.clone()))
            .collect();
        self.topology = topology;
        for (id, region) in joining {
            self.region_of.insert(id, region);
            self.incarnations.insert(id, 1);
            let config = NodeConfig {
                joining: true,
                ..self.config.clone()
            };
            let node = Node::new(&self.topology, id, config)
                .expect("a joining node is in the new topology");
            self.nodes.insert(id, node);
            changed.push(id);
        }
        for id in changed {
            self.drain_actions(id);
        }
        Ok(())
    }

    /// Stops node `id` for good (a node removed from the topology, after
    /// it handed its keys over): it leaves the simulation.
    pub fn retire(&mut self, id: ReplicaId) {
        self.nodes.remove(&id);
        self.region_of.remove(&id);
        self.down.remove(&id);
        self.disks.remove(&id);
    }
}
