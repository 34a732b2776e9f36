//! The WAN emulator of the local geo lab.
//!
//! Loopback has no latency and the kernel here has no `netem`, so traffic
//! between regions goes through UDP relays that add the latency, jitter and
//! loss the topology gives each region pair, and that can cut a region (or
//! one link) off. For every pair (source region, destination node in another
//! region) a relay listens on its own loopback port; nodes of the source
//! region dial that port instead of the node's peer address
//! ([`Routes`]). QUIC runs through the relay unchanged: it forwards each
//! datagram, after its delay, from a socket of its own per sender, so replies
//! find their way back.
//!
//! Partitions are kept in a small control file ([`PartitionState`]) that the
//! relays re-read every [`CONTROL_POLL_MS`], so `meridian cluster partition`
//! and `heal` act on a running lab from another shell.

mod relay;

pub use relay::{Relay, RelayStats};

use crate::topology::{Link, Topology};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// How often relays re-read the partition control file.
pub const CONTROL_POLL_MS: u64 = 100;
/// Ports a relay tries before giving up when the system keeps offering
/// ports that nodes of the topology use.
const RELAY_BIND_ATTEMPTS: usize = 8;

/// Errors of the WAN emulator.
#[derive(Debug, thiserror::Error)]
pub enum WanError {
    /// A socket could not be bound.
    #[error("cannot bind a relay socket: {0}")]
    Bind(#[source] std::io::Error),
    /// The control file could not be read or written.
    #[error("partition control file {path}: {message}")]
    Control {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A region named in a partition does not exist.
    #[error("unknown region {0:?}")]
    UnknownRegion(String),
    /// A node to relay to is not in the topology.
    #[error("unknown node {0:?}")]
    UnknownNode(String),
}

/// Which regions and links are cut.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PartitionState {
    /// Regions cut off from every other region.
    #[serde(default)]
    pub isolated: BTreeSet<String>,
    /// Single links cut, as (region, region) with the smaller name first.
    #[serde(default)]
    pub cut_links: BTreeSet<(String, String)>,
}

impl PartitionState {
    /// Whether traffic between regions `a` and `b` is cut.
    pub fn is_cut(&self, a: &str, b: &str) -> bool {
        let pair = if a <= b {
            (a.to_string(), b.to_string())
        } else {
            (b.to_string(), a.to_string())
        };
        self.isolated.contains(a) || self.isolated.contains(b) || self.cut_links.contains(&pair)
    }

    /// Reads the control file; a missing file means no partition.
    pub fn load(path: &Path) -> Result<PartitionState, WanError> {
        match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text).map_err(|e| WanError::Control {
                path: path.into(),
                message: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(PartitionState::default()),
            Err(e) => Err(WanError::Control {
                path: path.into(),
                message: e.to_string(),
            }),
        }
    }

    /// Writes the control file atomically.
    pub fn store(&self, path: &Path) -> Result<(), WanError> {
        let err = |e: String| WanError::Control {
            path: path.into(),
            message: e,
        };
        let text = toml::to_string(self).map_err(|e| err(e.to_string()))?;
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text).map_err(|e| err(e.to_string()))?;
        std::fs::rename(&tmp, path).map_err(|e| err(e.to_string()))
    }

    /// Cuts `region` off from all others, or only from `other`.
    pub fn partition(
        &mut self,
        topology: &Topology,
        region: &str,
        other: Option<&str>,
    ) -> Result<(), WanError> {
        for r in std::iter::once(region).chain(other) {
            if topology.region(r).is_none() {
                return Err(WanError::UnknownRegion(r.to_string()));
            }
        }
        match other {
            None => {
                self.isolated.insert(region.to_string());
            }
            Some(o) => {
                let pair = if region <= o {
                    (region.into(), o.into())
                } else {
                    (o.into(), region.into())
                };
                self.cut_links.insert(pair);
            }
        }
        Ok(())
    }
}

/// The current partition state, shared by every relay.
pub type SharedPartitions = Arc<RwLock<PartitionState>>;

/// Where the nodes of one region dial the nodes of other regions:
/// node id → relay address.
pub type Routes = BTreeMap<String, SocketAddr>;

/// Every relay of a lab. Dropping it stops the relays and the control
/// file poller.
pub struct WanEmulator {
    /// Every relay, with the id of the node it leads to.
    relays: Vec<(String, Relay)>,
    routes: BTreeMap<String, Routes>,
    partitions: SharedPartitions,
    control: PathBuf,
    poller: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for WanEmulator {
    fn drop(&mut self) {
        if let Some(poller) = &self.poller {
            poller.abort();
        }
    }
}

impl WanEmulator {
    /// Binds and starts a relay for every (source region, node of another
    /// region) pair of `topology`, shaped by the pair's link. `control` is the
    /// partition control file (polled while the emulator runs). Must be
    /// called inside a tokio runtime.
    pub async fn start(topology: &Topology, control: PathBuf) -> Result<WanEmulator, WanError> {
        let partitions: SharedPartitions = Arc::new(RwLock::new(PartitionState::load(&control)?));
        let mut emulator = WanEmulator {
            relays: Vec::new(),
            routes: BTreeMap::new(),
            partitions,
            control,
            poller: None,
        };
        for (_, node) in topology.nodes() {
            emulator.add_node(topology, &node.id).await?;
        }
        emulator.poller = Some(emulator.spawn_control_poller());
        Ok(emulator)
    }

    /// Starts a relay to node `id` of `topology` from every other region
    /// (a node added to a running lab), in place of any it had (a node
    /// removed and added again under its old id, on other ports). A relay
    /// never takes a port a node of `topology` has, started or not.
    pub async fn add_node(&mut self, topology: &Topology, id: &str) -> Result<(), WanError> {
        let (Some(node), Some(dst)) = (topology.node(id), topology.region_of(id)) else {
            return Err(WanError::UnknownNode(id.to_owned()));
        };
        self.remove_node(id);
        let none = Link {
            regions: [String::new(), String::new()],
            rtt_ms: 0,
            jitter_ms: 0,
            loss: 0.0,
        };
        for src in topology.regions().iter().filter(|r| r.name != dst.name) {
            let link = topology.link(&src.name, &dst.name).unwrap_or(&none);
            let started = start_relay(
                topology,
                &src.name,
                &dst.name,
                node.peer_addr,
                link,
                &self.partitions,
            )
            .await;
            let relay = match started {
                Ok(relay) => relay,
                Err(e) => {
                    // No half-relayed node: what was started for it goes too.
                    self.remove_node(id);
                    return Err(e);
                }
            };
            self.routes
                .entry(src.name.clone())
                .or_default()
                .insert(id.to_owned(), relay.local_addr());
            self.relays.push((id.to_owned(), relay));
        }
        Ok(())
    }

    /// Stops the relays to node `id` (a node removed from the lab).
    pub fn remove_node(&mut self, id: &str) {
        self.relays.retain(|(to, _)| to != id);
        for routes in self.routes.values_mut() {
            routes.remove(id);
        }
    }

    fn spawn_control_poller(&self) -> tokio::task::JoinHandle<()> {
        let (partitions, control) = (self.partitions.clone(), self.control.clone());
        tokio::spawn(async move {
            let mut interval =
                tokio::time::interval(std::time::Duration::from_millis(CONTROL_POLL_MS));
            loop {
                interval.tick().await;
                match PartitionState::load(&control) {
                    Ok(state) => {
                        let mut current = partitions.write().unwrap_or_else(|p| p.into_inner());
                        if *current != state {
                            tracing::info!(?state, "WAN partitions changed");
                            *current = state;
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot read the partition control file"),
                }
            }
        })
    }

    /// Where nodes of `region` dial each node of the other regions.
    pub fn routes(&self, region: &str) -> Routes {
        self.routes.get(region).cloned().unwrap_or_default()
    }

    /// Every relay, for statistics.
    pub fn relays(&self) -> impl ExactSizeIterator<Item = &Relay> {
        self.relays.iter().map(|(_, relay)| relay)
    }
}

/// A relay from `src` to the node at `target` in `dst`, on a port no node of
/// `topology` has, started or not.
async fn start_relay(
    topology: &Topology,
    src: &str,
    dst: &str,
    target: SocketAddr,
    link: &Link,
    partitions: &SharedPartitions,
) -> Result<Relay, WanError> {
    for _ in 0..RELAY_BIND_ATTEMPTS {
        let relay = Relay::start(
            src.to_owned(),
            dst.to_owned(),
            target,
            link.clone(),
            partitions.clone(),
        )
        .await?;
        let local = relay.local_addr();
        if !topology
            .nodes()
            .any(|(_, n)| n.client_addr == local || n.peer_addr == local)
        {
            return Ok(relay);
        }
    }
    Err(WanError::Bind(std::io::Error::other(
        "every port the system offered belongs to a node",
    )))
}

/// Writes a route file (`node-id = "addr"` lines) for the nodes of one region.
pub fn write_routes(path: &Path, routes: &Routes) -> Result<(), WanError> {
    let text: String = routes
        .iter()
        .map(|(id, addr)| format!("{id:?} = \"{addr}\"\n"))
        .collect();
    let err = |e: std::io::Error| WanError::Control {
        path: path.into(),
        message: e.to_string(),
    };
    // Whole or not at all: running nodes read it again when they reload.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

/// Reads a route file written by [`write_routes`].
pub fn read_routes(path: &Path) -> Result<Routes, WanError> {
    let err = |m: String| WanError::Control {
        path: path.into(),
        message: m,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let table: BTreeMap<String, String> = toml::from_str(&text).map_err(|e| err(e.to_string()))?;
    table
        .into_iter()
        .map(|(id, addr)| {
            addr.parse()
                .map(|a| (id, a))
                .map_err(|e: std::net::AddrParseError| err(e.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_state_round_trips_through_its_control_file_and_names_bad_regions() {
        let topology = Topology::load("regions/local.toml").unwrap();
        let dir = std::env::temp_dir().join(format!("meridian-wan-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("partitions.toml");
        assert_eq!(
            PartitionState::load(&path).unwrap(),
            PartitionState::default()
        );
        let mut p = PartitionState::default();
        p.partition(&topology, "us-east", None).unwrap();
        p.partition(&topology, "eu-west", Some("ap-south")).unwrap();
        assert!(matches!(
            p.partition(&topology, "mars", None),
            Err(WanError::UnknownRegion(_))
        ));
        p.store(&path).unwrap();
        let back = PartitionState::load(&path).unwrap();
        assert_eq!(back, p);
        assert!(back.is_cut("ap-south", "us-east"));
        assert!(back.is_cut("ap-south", "eu-west"));
        assert!(!PartitionState::default().is_cut("ap-south", "eu-west"));
        let routes: Routes = [("n1".to_string(), "127.0.0.1:9".parse().unwrap())].into();
        write_routes(&dir.join("routes.toml"), &routes).unwrap();
        assert_eq!(read_routes(&dir.join("routes.toml")).unwrap(), routes);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
