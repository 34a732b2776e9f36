//! `meridian status [--json]`: every node's health, keys, memory, pending
//! hints, and for each remote region the replication lag and backlog.
//!
//! Each node of the topology is asked for its [`NodeStatus`] directly
//! (`Client::execute_on`), all at once, each with a short timeout, so a
//! dead node costs one timeout and shows as `unreachable` rather than
//! failing the command. [`gather`] builds a [`ClusterReport`]; [`text`]
//! prints it for people and serde prints it as JSON for scripts (the field
//! names below are the JSON document, [`REPORT_VERSION`] its version).
//!
//! A region's replication to another region is the sum of its nodes'
//! backlogs (each node ships the writes it coordinated), the largest of
//! their lags now, and the last lag of the node acknowledged most
//! recently.

use crate::client::{Client, ClientOptions};
use crate::protocol::{Command, LinkStatus, NodeStatus, Reply};
use crate::topology::Topology;
use serde::Serialize;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

/// The version of the JSON document (`"version"`).
pub const REPORT_VERSION: u32 = 2;
/// How long a node has to answer by default.
pub const STATUS_TIMEOUT_MS: u64 = 1_000;

/// Every node of a cluster, as `meridian status` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterReport {
    /// [`REPORT_VERSION`].
    pub version: u32,
    /// The cluster's name.
    pub cluster: String,
    /// Nodes that answered.
    pub nodes_up: usize,
    /// Nodes asked.
    pub nodes_total: usize,
    /// Regions in the topology (more than `regions` holds when only some
    /// were asked, as with `--region`).
    pub regions_total: usize,
    /// The regions, in topology order.
    pub regions: Vec<RegionReport>,
}

/// One region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegionReport {
    /// The region's name.
    pub name: String,
    /// Nodes of the region that answered.
    pub nodes_up: usize,
    /// Its nodes, in topology order.
    pub nodes: Vec<NodeReport>,
    /// Replication from this region to each other region, summed over the
    /// nodes that answered (lags: the largest).
    pub replication: Vec<LinkReport>,
}

/// Whether a node answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// It answered.
    Up,
    /// It did not answer in time, or could not be reached.
    Unreachable,
}

/// One node. Figures are `null` in JSON when the node did not answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeReport {
    /// The node's id.
    pub id: String,
    /// Whether it answered.
    pub health: Health,
    /// Why it did not answer.
    pub error: Option<String>,
    /// Keys held (tombstones included).
    pub keys: Option<u64>,
    /// Estimated bytes held by keys and values.
    pub memory_bytes: Option<u64>,
    /// Hints waiting for replicas that missed writes.
    pub hints_pending: Option<u64>,
    /// Client requests served.
    pub requests: Option<u64>,
    /// Writes answered with `QuorumNotReached`.
    pub writes_short: Option<u64>,
    /// Remote updates refused (clock skew, bad key).
    pub refused: Option<u64>,
    /// The nodes of its region its failure detector suspects.
    pub suspects: Vec<String>,
    /// The version of the topology the node runs.
    pub topology_version: Option<u64>,
    /// Replication of this node's writes to each other region.
    pub replication: Vec<LinkReport>,
}

/// Replication to one remote region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinkReport {
    /// The remote region.
    pub region: String,
    /// Age of the oldest write not yet acknowledged by that region (0 when
    /// none): the replication lag now.
    pub lag_ms: u64,
    /// Time from queueing to acknowledgement of the last acknowledged write
    /// (`null` until that region acknowledged one). For a region, that of
    /// the node whose last acknowledgement is the most recent.
    pub lag_ms_last: Option<u64>,
    /// How long ago that acknowledgement came.
    pub last_acked_ago_ms: Option<u64>,
    /// Writes queued and not yet acknowledged.
    pub backlog_deltas: u64,
    /// Their encoded size.
    pub backlog_bytes: u64,
    /// Writes dropped from a full buffer (repaired by digest comparison).
    pub dropped: u64,
}

impl From<&LinkStatus> for LinkReport {
    fn from(l: &LinkStatus) -> Self {
        LinkReport {
            region: l.region.clone(),
            lag_ms: l.lag_ms,
            lag_ms_last: l.lag_ms_last,
            last_acked_ago_ms: l.last_acked_ago_ms,
            backlog_deltas: l.backlog_deltas,
            backlog_bytes: l.backlog_bytes,
            dropped: l.dropped,
        }
    }
}

impl NodeReport {
    /// A node that answered with `status`.
    /// A node that answered `status`; `topology` names the peers it
    /// suspects.
    pub fn up(id: &str, status: &NodeStatus, topology: &Topology) -> NodeReport {
        let suspects = status
            .peers_suspected
            .iter()
            .map(|r| {
                topology
                    .node_by_replica(crdt_types::ReplicaId(*r))
                    .map_or_else(|| format!("replica {r}"), |n| n.id.clone())
            })
            .collect();
        NodeReport {
            id: id.to_owned(),
            health: Health::Up,
            error: None,
            keys: Some(status.keys),
            memory_bytes: Some(status.memory_bytes),
            hints_pending: Some(status.hints_pending),
            requests: Some(status.requests),
            writes_short: Some(status.writes_short),
            refused: Some(status.refused),
            suspects,
            topology_version: Some(status.topology_version),
            replication: status.links.iter().map(LinkReport::from).collect(),
        }
    }

    /// A node that did not answer, and why.
    pub fn unreachable(id: &str, error: impl Into<String>) -> NodeReport {
        NodeReport {
            id: id.to_owned(),
            health: Health::Unreachable,
            error: Some(error.into()),
            keys: None,
            memory_bytes: None,
            hints_pending: None,
            requests: None,
            writes_short: None,
            refused: None,
            suspects: Vec::new(),
            topology_version: None,
            replication: Vec::new(),
        }
    }
}

impl ClusterReport {
    /// The report of `topology` from its nodes' answers (`None`: not asked;
    /// such regions are left out), in topology order.
    pub fn build(
        topology: &Topology,
        mut answers: impl FnMut(&str) -> Option<NodeReport>,
    ) -> ClusterReport {
        let mut regions = Vec::new();
        for region in topology.regions() {
            let nodes: Vec<NodeReport> =
                region.nodes.iter().filter_map(|n| answers(&n.id)).collect();
            if nodes.is_empty() {
                continue;
            }
            let mut replication: Vec<LinkReport> = Vec::new();
            for link in nodes.iter().flat_map(|n| &n.replication) {
                match replication.iter_mut().find(|r| r.region == link.region) {
                    Some(sum) => {
                        sum.lag_ms = sum.lag_ms.max(link.lag_ms);
                        // The freshest figure, not the largest: a node
                        // that has written nothing lately keeps an old one.
                        let fresher = match (link.last_acked_ago_ms, sum.last_acked_ago_ms) {
                            (Some(a), Some(b)) => a < b,
                            (a, b) => a.is_some() && b.is_none(),
                        };
                        if fresher {
                            sum.lag_ms_last = link.lag_ms_last;
                            sum.last_acked_ago_ms = link.last_acked_ago_ms;
                        }
                        sum.backlog_deltas += link.backlog_deltas;
                        sum.backlog_bytes += link.backlog_bytes;
                        sum.dropped += link.dropped;
                    }
                    None => replication.push(link.clone()),
                }
            }
            regions.push(RegionReport {
                name: region.name.clone(),
                nodes_up: nodes.iter().filter(|n| n.health == Health::Up).count(),
                nodes,
                replication,
            });
        }
        ClusterReport {
            version: REPORT_VERSION,
            cluster: topology.cluster().to_owned(),
            nodes_up: regions.iter().map(|r| r.nodes_up).sum(),
            nodes_total: regions.iter().map(|r| r.nodes.len()).sum(),
            regions_total: topology.regions().len(),
            regions,
        }
    }

    /// The JSON document, pretty-printed.
    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    /// The total backlog, in writes, from every region to every other.
    pub fn backlog_deltas(&self) -> u64 {
        self.regions
            .iter()
            .flat_map(|r| &r.replication)
            .map(|l| l.backlog_deltas)
            .sum()
    }
}

/// Asks every node of `topology` (of `region` only, if given) for its
/// status, at once, giving each `timeout`; authenticates with the client
/// certificate `client_name` in `cert_dir`. Never fails because of a node:
/// one that does not answer is reported unreachable.
pub async fn gather(
    topology: &Topology,
    region: Option<&str>,
    cert_dir: PathBuf,
    client_name: &str,
    timeout: Duration,
) -> Result<ClusterReport, crate::client::ClientError> {
    let first = topology
        .regions()
        .first()
        .map(|r| r.name.clone())
        .unwrap_or_default();
    let mut options = ClientOptions::new(topology.clone(), first, cert_dir);
    options.client_name = client_name.to_owned();
    options.request_timeout = timeout;
    let client = Client::connect(options).await?;
    let mut asking = tokio::task::JoinSet::new();
    // Names the peers each node suspects.
    let names = std::sync::Arc::new(topology.clone());
    for (r, node) in topology.nodes() {
        if region.is_some_and(|wanted| wanted != r.name) {
            continue;
        }
        let (client, id) = (client.clone(), node.id.clone());
        let names = names.clone();
        asking.spawn(async move {
            let asked = tokio::time::timeout(timeout, client.execute_on(&id, Command::Status));
            let report = match asked.await {
                Ok(Ok(answer)) => match answer.reply {
                    Reply::Status(status) => NodeReport::up(&id, &status, &names),
                    other => NodeReport::unreachable(&id, format!("unexpected reply {other:?}")),
                },
                Ok(Err(e)) => NodeReport::unreachable(&id, e.to_string()),
                Err(_) => NodeReport::unreachable(
                    &id,
                    format!("no answer within {} ms", timeout.as_millis()),
                ),
            };
            (id, report)
        });
    }
    let mut answers = std::collections::HashMap::new();
    while let Some(joined) = asking.join_next().await {
        if let Ok((id, report)) = joined {
            answers.insert(id, report);
        }
    }
    Ok(ClusterReport::build(topology, |id| answers.remove(id)))
}

/// What `meridian status` reports: the cluster named by the global options
/// (as for data commands: `--seed`, else `--topology`, else the running
/// cluster's), only
/// `--region` if given, with the `cli` certificate of `<state-dir>/certs`.
///
/// With it comes, when no node answered a topology guessed for want of a
/// running cluster, the hint that says so.
pub async fn for_cli(
    global: &super::args::GlobalArgs,
) -> anyhow::Result<(ClusterReport, Option<String>)> {
    let target = super::target::Target::resolve_async(global).await?;
    let region = global.region.as_deref();
    let report = gather(
        &target.topology,
        region,
        target.cert_dir.clone(),
        &target.client_name,
        Duration::from_millis(STATUS_TIMEOUT_MS),
    )
    .await
    .map_err(|e| match target.guess_hint(&e, &global.state_dir) {
        Some(hint) => anyhow::anyhow!("{e}\n{hint}"),
        None => e.into(),
    })?;
    let mut hint = None;
    if report.nodes_up == 0 {
        // Nothing answered a guessed topology: most likely no cluster runs.
        let unreachable = crate::client::ClientError::Connect("no node answered".to_owned());
        hint = target.guess_hint(&unreachable, &global.state_dir);
    }
    Ok((report, hint))
}

/// What else a node that answered reports, when there is anything: the
/// peers it suspects, writes short of W, remote updates refused.
fn notes(node: &NodeReport) -> String {
    let mut notes = Vec::new();
    if !node.suspects.is_empty() {
        notes.push(format!("suspects {}", node.suspects.join(", ")));
    }
    if let Some(n @ 1..) = node.writes_short {
        notes.push(plural(n, "write short of W", "writes short of W") + " since start");
    }
    if let Some(n @ 1..) = node.refused {
        notes.push(plural(n, "remote update refused", "remote updates refused") + " since start");
    }
    if notes.is_empty() {
        String::new()
    } else {
        format!("({})", notes.join("; "))
    }
}

/// The report as JSON (`json`) or as [`text`].
pub fn render(report: &ClusterReport, json: bool) -> String {
    if json {
        report.json()
    } else {
        text(report)
    }
}

/// The report for people: a summary line, then per region its nodes and
/// its replication to every other region.
pub fn text(report: &ClusterReport) -> String {
    let asked = if report.regions.len() < report.regions_total {
        let names: Vec<&str> = report.regions.iter().map(|r| r.name.as_str()).collect();
        format!(
            ", {} {}",
            if names.len() == 1 {
                "region"
            } else {
                "regions"
            },
            names.join(", ")
        )
    } else {
        String::new()
    };
    let mut out = format!(
        "Cluster \"{}\"{asked}: {} of {} nodes up.\n",
        report.cluster, report.nodes_up, report.nodes_total
    );
    if let Some(differ) = versions_differ(report) {
        let _ = writeln!(out, "{differ}");
    }
    for region in &report.regions {
        let _ = writeln!(
            out,
            "\n{}: {} of {} nodes up",
            region.name,
            region.nodes_up,
            region.nodes.len()
        );
        let mut rows = vec![row(&[
            "NODE", "HEALTH", "KEYS", "MEMORY", "HINTS", "TOPOLOGY", "",
        ])];
        for node in &region.nodes {
            match node.health {
                Health::Up => rows.push(vec![
                    node.id.clone(),
                    "up".into(),
                    number(node.keys),
                    node.memory_bytes.map_or_else(String::new, bytes),
                    number(node.hints_pending),
                    node.topology_version
                        .map_or_else(String::new, |v| format!("v{v}")),
                    notes(node),
                ]),
                Health::Unreachable => rows.push(vec![
                    node.id.clone(),
                    "unreachable".into(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                    format!("({})", node.error.as_deref().unwrap_or("no answer")),
                ]),
            }
        }
        out.push_str(&table(
            &rows,
            &[false, false, true, true, true, true, false],
        ));
        if region.replication.is_empty() {
            continue;
        }
        let mut rows = vec![row(&[
            "REPLICATION TO",
            "LAG",
            "LAST LAG",
            "BACKLOG",
            "DROPPED",
        ])];
        for link in &region.replication {
            rows.push(vec![
                link.region.clone(),
                format!("{} ms", link.lag_ms),
                link.lag_ms_last
                    .map_or_else(|| "-".to_owned(), |ms| format!("{ms} ms")),
                format!(
                    "{} ({})",
                    plural(link.backlog_deltas, "delta", "deltas"),
                    bytes(link.backlog_bytes)
                ),
                link.dropped.to_string(),
            ]);
        }
        out.push_str(&table(&rows, &[false, true, true, true, true]));
    }
    out.trim_end().to_owned()
}

/// A line naming which nodes run which topology version, when the nodes
/// that answered do not all run the same one (a node missed a reload).
fn versions_differ(report: &ClusterReport) -> Option<String> {
    let mut by_version: std::collections::BTreeMap<u64, Vec<&str>> = Default::default();
    for node in report.regions.iter().flat_map(|r| &r.nodes) {
        if let Some(v) = node.topology_version {
            by_version.entry(v).or_default().push(&node.id);
        }
    }
    if by_version.len() < 2 {
        return None;
    }
    let (newest, _) = by_version.last_key_value()?;
    let behind: Vec<String> = by_version
        .iter()
        .filter(|(v, _)| *v != newest)
        .flat_map(|(v, ids)| ids.iter().map(move |id| format!("{id} (v{v})")))
        .collect();
    Some(format!(
        "Nodes run different topology versions: {} behind v{newest}; they missed a \
         topology reload.",
        behind.join(", ")
    ))
}

fn row(cells: &[&str]) -> Vec<String> {
    cells.iter().map(|c| (*c).to_owned()).collect()
}

/// Rows as aligned columns (right-aligned where `right`), indented by two.
fn table(rows: &[Vec<String>], right: &[bool]) -> String {
    let mut widths = vec![0; right.len()];
    for r in rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for r in rows {
        let mut line = String::from(" ");
        for ((cell, width), right) in r.iter().zip(&widths).zip(right) {
            let pad = " ".repeat(width - cell.chars().count());
            line.push(' ');
            if *right {
                line.push_str(&pad);
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.push_str(&pad);
            }
            line.push(' ');
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    out
}

fn number(n: Option<u64>) -> String {
    n.map_or_else(String::new, |n| n.to_string())
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `512 B`, `1.5 KiB`, `12.0 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> Topology {
        Topology::load(concat!(env!("CARGO_MANIFEST_DIR"), "/regions/local.toml")).unwrap()
    }

    fn status(region: &str, keys: u64, backlog: u64, lag_ms: u64) -> NodeStatus {
        let links = ["us-east", "eu-west", "ap-south"]
            .into_iter()
            .filter(|r| *r != region)
            .map(|r| LinkStatus {
                region: r.into(),
                backlog_deltas: backlog,
                backlog_bytes: backlog * 100,
                lag_ms,
                lag_ms_last: Some(45),
                last_acked_ago_ms: Some(1_000),
                dropped: 0,
            })
            .collect();
        NodeStatus {
            replica: 1,
            region: region.into(),
            keys,
            memory_bytes: keys * 130,
            hints_pending: 0,
            requests: 10,
            writes_acked: 5,
            writes_short: 0,
            refused: 0,
            peers_suspected: Vec::new(),
            links,
            rebalance: Default::default(),
            topology_version: 2,
        }
    }

    fn report() -> ClusterReport {
        ClusterReport::build(&local(), |id| {
            let region = id.rsplit_once('-').unwrap().0;
            Some(match id {
                "us-east-1" => NodeReport::up(id, &status(region, 10, 3, 120), &local()),
                "us-east-2" => NodeReport::up(id, &status(region, 12, 4, 300), &local()),
                "us-east-3" => NodeReport::unreachable(id, "no answer within 1000 ms"),
                _ => NodeReport::up(id, &status(region, 11, 0, 0), &local()),
            })
        })
    }

    #[test]
    fn a_region_sums_its_nodes_backlogs_and_keeps_the_largest_lag() {
        let report = report();
        assert_eq!((report.nodes_up, report.nodes_total), (8, 9));
        let east = &report.regions[0];
        assert_eq!(east.nodes_up, 2);
        assert_eq!(
            east.replication[0],
            LinkReport {
                region: "eu-west".into(),
                lag_ms: 300,
                lag_ms_last: Some(45),
                last_acked_ago_ms: Some(1_000),
                backlog_deltas: 7,
                backlog_bytes: 700,
                dropped: 0,
            }
        );
        assert_eq!(report.backlog_deltas(), 14);
    }

    #[test]
    fn the_text_shows_health_figures_and_replication_per_region() {
        let text = text(&report());
        assert!(
            text.starts_with("Cluster \"local\": 8 of 9 nodes up.\n"),
            "{text}"
        );
        assert!(text.contains("\nus-east: 2 of 3 nodes up\n"), "{text}");
        assert!(
            text.contains(
                "  NODE       HEALTH       KEYS   MEMORY  HINTS  TOPOLOGY\n\
                 \x20 us-east-1  up             10  1.3 KiB      0        v2\n\
                 \x20 us-east-2  up             12  1.5 KiB      0        v2\n\
                 \x20 us-east-3  unreachable                                  (no answer within 1000 ms)\n\
                 \x20 REPLICATION TO     LAG  LAST LAG           BACKLOG  DROPPED\n\
                 \x20 eu-west         300 ms     45 ms  7 deltas (700 B)        0\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("  us-east         0 ms     45 ms  0 deltas (0 B)        0\n"),
            "{text}"
        );
        // A link that never had a write acknowledged has no last lag.
        let mut report = report();
        for link in report.regions.iter_mut().flat_map(|r| &mut r.replication) {
            link.lag_ms_last = None;
        }
        let none = super::text(&report);
        assert!(
            none.contains("  us-east         0 ms         -  0 deltas (0 B)        0\n"),
            "{none}"
        );
    }

    #[test]
    fn the_json_document_names_every_figure_and_nulls_those_of_unreachable_nodes() {
        let json: serde_json::Value = serde_json::from_str(&report().json()).unwrap();
        assert_eq!(json["version"], 2);
        assert_eq!(json["cluster"], "local");
        assert_eq!(json["nodes_up"], 8);
        let east = &json["regions"][0];
        assert_eq!(east["name"], "us-east");
        assert_eq!(east["nodes"][0]["health"], "up");
        assert_eq!(east["nodes"][0]["keys"], 10);
        assert_eq!(east["nodes"][0]["replication"][0]["region"], "eu-west");
        assert_eq!(east["nodes"][0]["replication"][0]["backlog_bytes"], 300);
        assert_eq!(east["nodes"][2]["health"], "unreachable");
        assert_eq!(east["nodes"][2]["keys"], serde_json::Value::Null);
        assert_eq!(east["replication"][1]["region"], "ap-south");
        assert_eq!(east["replication"][1]["lag_ms"], 300);
    }

    #[test]
    fn nodes_on_different_topology_versions_are_named() {
        assert!(!text(&report()).contains("different topology versions"));
        let behind = ClusterReport::build(&local(), |id| {
            let region = id.rsplit_once('-').unwrap().0;
            let mut status = status(region, 1, 0, 0);
            if id == "eu-west-3" {
                status.topology_version = 1;
            }
            Some(NodeReport::up(id, &status, &local()))
        });
        let text = text(&behind);
        assert!(
            text.contains(
                "\nNodes run different topology versions: eu-west-3 (v1) behind v2; they \
                 missed a topology reload."
            ),
            "{text}"
        );
        let line = text
            .lines()
            .find(|l| l.starts_with("  eu-west-3 "))
            .unwrap();
        assert!(line.ends_with(" v1"), "{text}");
        let json: serde_json::Value = serde_json::from_str(&behind.json()).unwrap();
        assert_eq!(json["regions"][1]["nodes"][2]["topology_version"], 1);
    }

    #[test]
    fn a_node_names_the_peers_it_suspects_and_its_short_writes_and_refusals() {
        let topology = local();
        let suspect = topology.node("us-east-3").unwrap().replica.0;
        let report = ClusterReport::build(&topology, |id| {
            let region = id.rsplit_once('-').unwrap().0;
            let mut status = status(region, 1, 0, 0);
            if id == "us-east-1" {
                status.peers_suspected = vec![suspect, 4_000_000_000];
                status.writes_short = 2;
                status.refused = 1;
            }
            Some(NodeReport::up(id, &status, &topology))
        });
        let text = text(&report);
        let line = text
            .lines()
            .find(|l| l.starts_with("  us-east-1 "))
            .unwrap();
        assert!(
            line.ends_with(
                "(suspects us-east-3, replica 4000000000; 2 writes short of W since start; \
                 1 remote update refused since start)"
            ),
            "{text}"
        );
        let quiet = text
            .lines()
            .find(|l| l.starts_with("  us-east-2 "))
            .unwrap();
        assert!(quiet.ends_with(" v2"), "{text}");
        let json: serde_json::Value = serde_json::from_str(&report.json()).unwrap();
        assert_eq!(
            json["regions"][0]["nodes"][0]["suspects"],
            serde_json::json!(["us-east-3", "replica 4000000000"])
        );
    }

    #[test]
    fn a_region_shows_the_last_lag_of_its_freshest_acknowledgement() {
        let topology = local();
        let report = ClusterReport::build(&topology, |id| {
            let region = id.rsplit_once('-').unwrap().0;
            let mut status = status(region, 1, 0, 0);
            for link in &mut status.links {
                (link.lag_ms_last, link.last_acked_ago_ms) = match id {
                    // Wrote nothing since a long partition healed.
                    "us-east-1" => (Some(12_189), Some(60_000)),
                    "us-east-2" => (Some(95), Some(400)),
                    _ => (None, None),
                };
            }
            Some(NodeReport::up(id, &status, &topology))
        });
        let east = &report.regions[0];
        assert_eq!(east.replication[0].lag_ms_last, Some(95));
        assert_eq!(east.replication[0].last_acked_ago_ms, Some(400));
        let west = &report.regions[1];
        assert_eq!(west.replication[0].lag_ms_last, None, "none acknowledged");
    }

    #[test]
    fn a_report_of_some_regions_says_which() {
        let west = ClusterReport::build(&local(), |id| {
            id.starts_with("eu-west")
                .then(|| NodeReport::up(id, &status("eu-west", 1, 0, 0), &local()))
        });
        let text = text(&west);
        assert!(
            text.starts_with("Cluster \"local\", region eu-west: 3 of 3 nodes up.\n"),
            "{text}"
        );
        assert!(super::text(&report()).starts_with("Cluster \"local\": 8 of 9"));
    }

    #[test]
    fn byte_counts_read_in_binary_units() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(12 << 20), "12.0 MiB");
    }
}
