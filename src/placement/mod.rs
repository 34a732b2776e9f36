//! Placement: which nodes of each region hold a key.
//!
//! A [`Placement`] is built from a [`Topology`] and holds one consistent-hash
//! [`Ring`] per region. A key's *preference list* in a region is the next N
//! distinct nodes clockwise on that region's ring; the first is the key's
//! coordinator. Clients and nodes run this same code, so a client can send a
//! request straight to a replica of its key, and every party computes the
//! same owners from the same topology.
//!
//! Placement is pure computation: it never does I/O, never reads a clock and
//! never allocates on a lookup. Membership changes ([`Placement::add_node`],
//! [`Placement::remove_node`]) rebuild one region's ring; moving the data is
//! the node's business.

mod ring;

pub use ring::{Ring, Segment, VNODES_PER_NODE, VNODES_PER_NODE_MAX};

use crate::topology::{Node, Topology, NODES_PER_REGION_MAX};
use crdt_types::ReplicaId;
use std::collections::HashMap;

/// Every region's ring, and the nodes on them.
///
/// ```
/// use meridian::placement::Placement;
/// use meridian::topology::Topology;
///
/// let topology = Topology::load(concat!(env!("CARGO_MANIFEST_DIR"), "/regions/local.toml"))?;
/// let placement = Placement::new(&topology);
///
/// let replicas = placement.preference_list("eu-west", b"user:42")?;
/// assert_eq!(replicas.len(), 3);
/// let coordinator = placement.node(replicas[0]).unwrap();
/// assert!(coordinator.id.starts_with("eu-west-"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct Placement {
    replication_factor: usize,
    regions: Vec<RegionRing>,
    members: HashMap<ReplicaId, Member>,
}

#[derive(Clone, Debug)]
struct RegionRing {
    name: String,
    ring: Ring,
}

#[derive(Clone, Debug)]
struct Member {
    node: Node,
    /// Index into `Placement::regions`.
    region: usize,
}

/// A placement request that names something unknown or breaks a limit.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    /// No region has this name.
    #[error("unknown region {0:?}")]
    UnknownRegion(String),
    /// No node has this replica id.
    #[error("unknown node with replica id {0}")]
    UnknownNode(ReplicaId),
    /// A node with this id or replica id is already placed.
    #[error("node {id:?} (replica id {replica}) conflicts with a node already placed")]
    DuplicateNode {
        /// The id of the node being added.
        id: String,
        /// Its replica id.
        replica: ReplicaId,
    },
    /// The region already has [`NODES_PER_REGION_MAX`] nodes.
    #[error("region {region:?} is full ({max} nodes)")]
    RegionFull {
        /// The region.
        region: String,
        /// The limit.
        max: usize,
    },
}

impl Placement {
    /// Rings for every region of `topology`, with [`VNODES_PER_NODE`]
    /// points per node.
    pub fn new(topology: &Topology) -> Placement {
        let replication_factor = topology.replication_factor();
        let mut members = HashMap::new();
        let regions = topology
            .regions()
            .iter()
            .enumerate()
            .map(|(index, region)| {
                for node in &region.nodes {
                    members.insert(
                        node.replica,
                        Member {
                            node: node.clone(),
                            region: index,
                        },
                    );
                }
                RegionRing {
                    name: region.name.clone(),
                    ring: Ring::with_nodes(
                        replication_factor,
                        VNODES_PER_NODE,
                        region.nodes.iter().map(|node| node.replica),
                    ),
                }
            })
            .collect();
        Placement {
            replication_factor,
            regions,
            members,
        }
    }

    /// N: how many nodes of a region hold each key.
    pub fn replication_factor(&self) -> usize {
        self.replication_factor
    }

    /// The regions' names, in topology order.
    pub fn regions(&self) -> impl Iterator<Item = &str> + '_ {
        self.regions.iter().map(|region| region.name.as_str())
    }

    /// The ring of region `region`; keep it to skip the name lookup.
    pub fn ring(&self, region: &str) -> Option<&Ring> {
        self.regions
            .iter()
            .find(|candidate| candidate.name == region)
            .map(|found| &found.ring)
    }

    /// The key's replicas in `region`, coordinator first: N distinct nodes,
    /// or all of the region's nodes if it has fewer than N.
    pub fn preference_list(
        &self,
        region: &str,
        key: &[u8],
    ) -> Result<&[ReplicaId], PlacementError> {
        self.ring(region)
            .map(|ring| ring.preference_list(key))
            .ok_or_else(|| PlacementError::UnknownRegion(region.to_owned()))
    }

    /// The key's replicas in `region` as nodes (with their addresses), in
    /// preference order.
    pub fn owners_in_region(
        &self,
        region: &str,
        key: &[u8],
    ) -> Result<impl Iterator<Item = &Node> + '_, PlacementError> {
        let replicas = self.preference_list(region, key)?;
        Ok(replicas.iter().map(|replica| &self.members[replica].node))
    }

    /// The key's replicas in every region, in topology order: where a write
    /// accepted in one region must eventually arrive.
    pub fn owners<'a>(
        &'a self,
        key: &'a [u8],
    ) -> impl Iterator<Item = (&'a str, &'a [ReplicaId])> + 'a {
        self.regions
            .iter()
            .map(move |region| (region.name.as_str(), region.ring.preference_list(key)))
    }

    /// The placed node with replica id `replica`.
    pub fn node(&self, replica: ReplicaId) -> Option<&Node> {
        self.members.get(&replica).map(|member| &member.node)
    }

    /// The region of the placed node `replica`.
    pub fn region_of(&self, replica: ReplicaId) -> Option<&str> {
        let member = self.members.get(&replica)?;
        Some(self.regions[member.region].name.as_str())
    }

    /// Puts `node` on the ring of `region`. Only keys whose owner changes
    /// move, and they move to `node`.
    pub fn add_node(&mut self, region: &str, node: Node) -> Result<(), PlacementError> {
        let index = self
            .regions
            .iter()
            .position(|candidate| candidate.name == region)
            .ok_or_else(|| PlacementError::UnknownRegion(region.to_owned()))?;
        if self.members.contains_key(&node.replica)
            || self
                .members
                .values()
                .any(|member| member.node.id == node.id)
        {
            return Err(PlacementError::DuplicateNode {
                id: node.id,
                replica: node.replica,
            });
        }
        let ring = &mut self.regions[index].ring;
        if ring.len() >= NODES_PER_REGION_MAX {
            return Err(PlacementError::RegionFull {
                region: region.to_owned(),
                max: NODES_PER_REGION_MAX,
            });
        }
        let added = ring.add(node.replica);
        assert!(added, "a node absent from the members was on a ring");
        self.members.insert(
            node.replica,
            Member {
                node,
                region: index,
            },
        );
        Ok(())
    }

    /// Takes the node `replica` off its region's ring and returns it. Its
    /// keys move to the nodes that follow it clockwise.
    pub fn remove_node(&mut self, replica: ReplicaId) -> Result<Node, PlacementError> {
        let member = self
            .members
            .remove(&replica)
            .ok_or(PlacementError::UnknownNode(replica))?;
        let removed = self.regions[member.region].ring.remove(replica);
        assert!(removed, "a placed node was missing from its ring");
        Ok(member.node)
    }
}
