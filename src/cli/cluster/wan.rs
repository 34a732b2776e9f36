//! The WAN emulator of a local cluster: `cluster up` starts it and tells
//! each node where to dial the nodes of other regions; `cluster partition`
//! and `cluster heal` cut and mend its links from another process.
//!
//! Everything goes through two kinds of files in the state directory:
//! `routes/<region>.toml` (node id → relay address, read by `serve
//! --peer-routes`) and `partitions.toml` (which regions and links are cut,
//! re-read by the relays every [`CONTROL_POLL_MS`] ms). A cluster of one
//! region has no links, so it runs no relays.

use super::file::ClusterFile;
use super::ClusterError;
use crate::topology::Topology;
use crate::wan::{write_routes, PartitionState, WanEmulator, CONTROL_POLL_MS};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The partition control file's name inside the state directory.
pub const PARTITIONS_FILE_NAME: &str = "partitions.toml";
/// The directory of route files inside the state directory.
pub const ROUTES_DIR_NAME: &str = "routes";

/// The partition control file of `state_dir`.
pub fn partitions_path(state_dir: &Path) -> PathBuf {
    state_dir.join(PARTITIONS_FILE_NAME)
}

/// A running WAN emulator and the route file of each region.
pub(super) struct LabWan {
    /// Kept alive while the cluster runs; its relays stop when it drops.
    emulator: WanEmulator,
    route_files: BTreeMap<String, PathBuf>,
}

impl LabWan {
    /// Starts relays for every pair of regions of `topology` (none for a
    /// single region), with the partition control file of `state_dir`
    /// reset to "nothing cut", and writes the route files.
    pub(super) async fn start(
        topology: &Topology,
        state_dir: &Path,
    ) -> Result<Option<LabWan>, ClusterError> {
        let control = partitions_path(state_dir);
        if topology.regions().len() < 2 {
            // No links: a control file left by an earlier lab means nothing.
            let _ = std::fs::remove_file(&control);
            return Ok(None);
        }
        PartitionState::default().store(&control)?;
        let emulator = WanEmulator::start(topology, control).await?;
        let dir = state_dir.join(ROUTES_DIR_NAME);
        std::fs::create_dir_all(&dir).map_err(|source| ClusterError::Path {
            path: dir.clone(),
            source,
        })?;
        let mut route_files = BTreeMap::new();
        for region in topology.regions() {
            let path = dir.join(format!("{}.toml", region.name));
            write_routes(&path, &emulator.routes(&region.name))?;
            route_files.insert(region.name.clone(), path);
        }
        Ok(Some(LabWan {
            emulator,
            route_files,
        }))
    }

    /// The route file the nodes of `region` read.
    pub(super) fn route_file(&self, region: &str) -> Option<&Path> {
        self.route_files.get(region).map(PathBuf::as_path)
    }

    /// How many relays run.
    pub(super) fn relays(&self) -> usize {
        self.emulator.relays().len()
    }

    /// Starts relays to node `id` of `topology` (added to the running lab)
    /// from the other regions, and rewrites the route files: the other
    /// regions' nodes take them when they reload the topology.
    pub(super) async fn add_node(
        &mut self,
        topology: &Topology,
        id: &str,
    ) -> Result<(), ClusterError> {
        self.emulator.add_node(topology, id).await?;
        self.write_route_files()
    }

    /// Stops the relays to node `id` (removed from the lab) and rewrites
    /// the route files.
    pub(super) fn remove_node(&mut self, id: &str) -> Result<(), ClusterError> {
        self.emulator.remove_node(id);
        self.write_route_files()
    }

    fn write_route_files(&self) -> Result<(), ClusterError> {
        for (region, path) in &self.route_files {
            write_routes(path, &self.emulator.routes(region))?;
        }
        Ok(())
    }
}

/// One link between two regions and whether it is cut.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkState {
    /// The two regions, in topology order.
    pub regions: [String; 2],
    /// Whether traffic between them is dropped.
    pub cut: bool,
    /// The emulated round-trip time, if the topology gives one.
    pub rtt_ms: Option<u32>,
}

/// Every link of `topology` under `partitions`, in topology order.
pub fn link_states(topology: &Topology, partitions: &PartitionState) -> Vec<LinkState> {
    let regions = topology.regions();
    let mut links = Vec::new();
    for (i, a) in regions.iter().enumerate() {
        for b in &regions[i + 1..] {
            links.push(LinkState {
                regions: [a.name.clone(), b.name.clone()],
                cut: partitions.is_cut(&a.name, &b.name),
                rtt_ms: topology.link(&a.name, &b.name).map(|l| l.rtt_ms),
            });
        }
    }
    links
}

/// Cuts `region` off from every other region of the cluster running in
/// `state_dir`, or only from `other`, and returns every link's state.
/// The relays apply it within [`CONTROL_POLL_MS`] ms.
pub fn partition(
    state_dir: &Path,
    region: &str,
    other: Option<&str>,
) -> Result<Vec<LinkState>, ClusterError> {
    let topology = running_topology(state_dir)?;
    for name in std::iter::once(region).chain(other) {
        if topology.region(name).is_none() {
            return Err(ClusterError::UnknownRegion {
                region: name.to_owned(),
                known: topology.regions().iter().map(|r| r.name.clone()).collect(),
            });
        }
    }
    if other == Some(region) {
        return Err(ClusterError::SameRegion(region.to_owned()));
    }
    let control = partitions_path(state_dir);
    let mut state = PartitionState::load(&control)?;
    state.partition(&topology, region, other)?;
    state.store(&control)?;
    Ok(link_states(&topology, &state))
}

/// What `heal` did: how many links were cut before it, and every link's
/// state after it.
#[derive(Debug, Clone)]
pub struct Healed {
    /// Links that were cut and are now mended.
    pub mended: usize,
    /// Every link, now all up.
    pub links: Vec<LinkState>,
}

/// Mends every link of the cluster running in `state_dir`.
pub fn heal(state_dir: &Path) -> Result<Healed, ClusterError> {
    let topology = running_topology(state_dir)?;
    let control = partitions_path(state_dir);
    // A control file that does not parse is what heal repairs: it counts
    // as nothing cut.
    let mended = PartitionState::load(&control).map_or(0, |before| {
        link_states(&topology, &before)
            .iter()
            .filter(|l| l.cut)
            .count()
    });
    let state = PartitionState::default();
    state.store(&control)?;
    Ok(Healed {
        mended,
        links: link_states(&topology, &state),
    })
}

/// What `cluster heal` prints: how many links it mended (or that none
/// was cut), then every link and its state.
pub fn healed_text(healed: &Healed) -> String {
    let links = links_text(&healed.links);
    if healed.mended == 0 {
        return links.replacen("Nothing is cut:", "Nothing was cut:", 1);
    }
    let body = links.split_once('\n').map_or("", |(_, rest)| rest);
    format!(
        "Mended {} of {} {} (the relays apply changes within {CONTROL_POLL_MS} ms); every link between regions is up:\n{body}",
        healed.mended,
        healed.links.len(),
        if healed.links.len() == 1 { "link" } else { "links" },
    )
}

/// The links of the cluster running in `state_dir`, as they are now.
pub fn links(state_dir: &Path) -> Result<Vec<LinkState>, ClusterError> {
    let topology = running_topology(state_dir)?;
    let state = PartitionState::load(&partitions_path(state_dir))?;
    Ok(link_states(&topology, &state))
}

/// The topology of the cluster running in `state_dir`, which must have
/// links to cut.
fn running_topology(state_dir: &Path) -> Result<Topology, ClusterError> {
    let file = ClusterFile::load(state_dir)?;
    let topology = Topology::load(&file.topology)?;
    if topology.regions().len() < 2 {
        return Err(ClusterError::NoLinks {
            cluster: file.cluster,
        });
    }
    Ok(topology)
}

/// What `cluster partition` and `cluster heal` print: how many links are
/// cut, then every link and its state.
pub fn links_text(links: &[LinkState]) -> String {
    let cut = links.iter().filter(|l| l.cut).count();
    let mut text = if cut == 0 {
        "Nothing is cut: every link between regions is up.\n".to_owned()
    } else {
        format!(
            "{cut} of {} {} cut (the relays apply changes within {CONTROL_POLL_MS} ms):\n",
            links.len(),
            if links.len() == 1 { "link" } else { "links" },
        )
    };
    let width = links.iter().map(|l| l.regions[0].len()).max().unwrap_or(0);
    let width_b = links.iter().map(|l| l.regions[1].len()).max().unwrap_or(0);
    for link in links {
        let state = match (link.cut, link.rtt_ms) {
            (true, _) => "cut".to_owned(),
            (false, Some(rtt)) => format!("up ({rtt} ms RTT)"),
            (false, None) => "up".to_owned(),
        };
        let _ = writeln!(
            text,
            "  {:<width$} <-> {:<width_b$}  {state}",
            link.regions[0], link.regions[1]
        );
    }
    text.trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> Topology {
        Topology::load(concat!(env!("CARGO_MANIFEST_DIR"), "/regions/local.toml")).unwrap()
    }

    #[test]
    fn isolating_a_region_cuts_its_links_and_leaves_the_others_up() {
        let mut state = PartitionState::default();
        state.partition(&local(), "us-east", None).unwrap();
        let links = link_states(&local(), &state);
        let cut: Vec<_> = links.iter().map(|l| l.cut).collect();
        assert_eq!(cut, [true, true, false]);
        assert_eq!(
            links_text(&links),
            "2 of 3 links cut (the relays apply changes within 100 ms):\n\
             \x20 us-east <-> eu-west   cut\n\
             \x20 us-east <-> ap-south  cut\n\
             \x20 eu-west <-> ap-south  up (150 ms RTT)"
        );
    }

    #[test]
    fn heal_says_how_many_links_it_mended() {
        let mut state = PartitionState::default();
        state.partition(&local(), "us-east", None).unwrap();
        let mended = link_states(&local(), &state)
            .iter()
            .filter(|l| l.cut)
            .count();
        let healed = Healed {
            mended,
            links: link_states(&local(), &PartitionState::default()),
        };
        assert_eq!(
            healed_text(&healed),
            "Mended 2 of 3 links (the relays apply changes within 100 ms); \
             every link between regions is up:\n\
             \x20 us-east <-> eu-west   up (80 ms RTT)\n\
             \x20 us-east <-> ap-south  up (200 ms RTT)\n\
             \x20 eu-west <-> ap-south  up (150 ms RTT)"
        );
        let nothing = Healed {
            mended: 0,
            ..healed
        };
        assert!(
            healed_text(&nothing)
                .starts_with("Nothing was cut: every link between regions is up.\n"),
            "{}",
            healed_text(&nothing)
        );
    }

    #[test]
    fn healed_links_say_nothing_is_cut() {
        let links = link_states(&local(), &PartitionState::default());
        let text = links_text(&links);
        assert!(
            text.starts_with("Nothing is cut: every link between regions is up.\n"),
            "{text}"
        );
        assert!(
            text.contains("us-east <-> eu-west   up (80 ms RTT)"),
            "{text}"
        );
    }
}
