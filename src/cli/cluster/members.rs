//! `meridian cluster add-node REGION [--id ID]` and `cluster remove-node ID`:
//! membership changes of a running lab, and the lab's topology copy.
//!
//! `cluster up` copies its topology to `<state-dir>/topology.toml` and
//! starts every node with that copy. A membership change rewrites the copy,
//! asks the supervisor (through request files in `<state-dir>/members/`,
//! which it polls) to start or stop a process, sends `ReloadTopology` to
//! every running node so each re-reads the copy, and watches each node's
//! rebalance in `status` until every node of the region has finished:
//!
//! - add: the new node gets a certificate and free ports, starts
//!   `--joining`, and the others stream it the keys it now owns.
//! - remove: every node (the leaving one included) takes the new topology;
//!   the leaving node streams what it holds to the new owners, and only
//!   once every node finished is its process stopped.
//!
//! Nodes of other regions take the new topology too (they route deltas by
//! it), and with it the route files, which the supervisor rewrote with WAN
//! relays to an added node before starting it (and without a removed node
//! once it stopped).

use super::file::ClusterFile;
use super::process;
use super::supervisor::CLIENT_NAME;
use super::ClusterError;
use crate::client::{Client, ClientOptions};
use crate::node::membership_epoch;
use crate::protocol::{Command, RebalanceStatus, Reply};
use crate::tls::CertStore;
use crate::topology::{ReadConsistency, Topology, WriteConsistency};
use std::fmt::Write as _;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The lab's topology copy inside the state directory.
pub const TOPOLOGY_COPY_NAME: &str = "topology.toml";
/// The directory of requests to the supervisor.
pub const REQUESTS_DIR_NAME: &str = "members";
/// How long an added node may take to serve.
pub const START_TIMEOUT_MS: u64 = 30_000;
/// How often progress is polled.
pub const PROGRESS_POLL_MS: u64 = 250;
/// How long a node has to answer a status request.
pub const NODE_TIMEOUT_MS: u64 = 2_000;
/// How long a node has to answer a reload (it scans its keys to plan the
/// transfer: about a second per million keys).
pub const RELOAD_TIMEOUT_MS: u64 = 60_000;

/// A request to the supervisor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Start the node with this id (it is in the topology copy).
    Start(String),
    /// Stop the node with this id and forget it.
    Stop(String),
    /// Start the node with this id again (stopping it first if it runs).
    Restart(String),
}

fn requests_dir(state_dir: &Path) -> PathBuf {
    state_dir.join(REQUESTS_DIR_NAME)
}

fn path_error(path: &Path) -> impl FnOnce(std::io::Error) -> ClusterError + '_ {
    move |source| ClusterError::Path {
        path: path.to_owned(),
        source,
    }
}

/// Removes every pending request (a new `cluster up`).
pub fn clear_requests(state_dir: &Path) -> Result<(), ClusterError> {
    let dir = requests_dir(state_dir);
    match std::fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(path_error(&dir)(e)),
        _ => Ok(()),
    }
}

pub(super) fn put_request(state_dir: &Path, request: &Request) -> Result<(), ClusterError> {
    let dir = requests_dir(state_dir);
    std::fs::create_dir_all(&dir).map_err(path_error(&dir))?;
    let name = match request {
        Request::Start(id) => format!("start.{id}"),
        Request::Stop(id) => format!("stop.{id}"),
        Request::Restart(id) => format!("restart.{id}"),
    };
    let path = dir.join(name);
    std::fs::write(&path, b"").map_err(path_error(&path))
}

/// Takes the pending requests (the supervisor calls this as it polls).
pub fn take_requests(state_dir: &Path) -> Result<Vec<Request>, ClusterError> {
    let dir = requests_dir(state_dir);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(path_error(&dir)(e)),
    };
    let mut requests = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let request = if let Some(id) = name.strip_prefix("start.") {
            Request::Start(id.to_owned())
        } else if let Some(id) = name.strip_prefix("stop.") {
            Request::Stop(id.to_owned())
        } else if let Some(id) = name.strip_prefix("restart.") {
            Request::Restart(id.to_owned())
        } else {
            continue;
        };
        let _ = std::fs::remove_file(entry.path());
        requests.push(request);
    }
    requests.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
    Ok(requests)
}

/// `topology` as a topology file.
pub fn render(topology: &Topology) -> String {
    render_as(topology, topology.version())
}

/// `topology` as a topology file of version `version`.
fn render_as(topology: &Topology, version: u64) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Written by meridian (cluster up, add-node or remove-node).\n"
    );
    let _ = writeln!(
        out,
        "[cluster]\nname = {:?}\nversion = {version}",
        topology.cluster()
    );
    let _ = writeln!(
        out,
        "replication_factor = {}",
        topology.replication_factor()
    );
    let write = match topology.write_consistency() {
        WriteConsistency::One => "one",
        WriteConsistency::Quorum => "quorum",
        WriteConsistency::All => "all",
    };
    let read = match topology.read_consistency() {
        ReadConsistency::One => "one",
        ReadConsistency::Quorum => "quorum",
    };
    let _ = writeln!(
        out,
        "write_consistency = \"{write}\"\nread_consistency = \"{read}\"\n"
    );
    let l = topology.limits();
    let _ = writeln!(
        out,
        "[limits]\nkey_bytes_max = {}\nvalue_bytes_max = {}\nframe_bytes_max = {}\nstreams_per_connection_max = {}\n",
        l.key_bytes_max, l.value_bytes_max, l.frame_bytes_max, l.streams_per_connection_max
    );
    for region in topology.regions() {
        let _ = writeln!(out, "[[region]]\nname = {:?}\n", region.name);
        for node in &region.nodes {
            let _ = writeln!(out, "[[region.node]]\nid = {:?}", node.id);
            if node.replica != crate::topology::derived_replica_id(&node.id) {
                let _ = writeln!(out, "replica_id = {}", node.replica.0);
            }
            let _ = writeln!(
                out,
                "client_addr = \"{}\"\npeer_addr = \"{}\"\n",
                node.client_addr, node.peer_addr
            );
        }
    }
    for link in topology.links() {
        let _ = writeln!(
            out,
            "[[link]]\nregions = [{:?}, {:?}]\nrtt_ms = {}\njitter_ms = {}\nloss = {:?}\n",
            link.regions[0], link.regions[1], link.rtt_ms, link.jitter_ms, link.loss
        );
    }
    out
}

fn reparse(text: &str, origin: &str) -> Result<Topology, ClusterError> {
    // The text is the candidate, not the file: its line numbers would
    // point at lines the file does not have.
    Topology::parse(text, origin).map_err(|e| {
        ClusterError::Membership(format!(
            "the change would leave {origin} invalid ({}); nothing was changed",
            e.problem()
        ))
    })
}

/// `topology` with node `id` (at `client_addr` / `peer_addr`) added to
/// `region`, as the next version.
pub fn with_node(
    topology: &Topology,
    region: &str,
    id: &str,
    client_addr: SocketAddr,
    peer_addr: SocketAddr,
) -> Result<Topology, ClusterError> {
    if topology.region(region).is_none() {
        return Err(ClusterError::UnknownRegion {
            region: region.to_owned(),
            known: topology.regions().iter().map(|r| r.name.clone()).collect(),
        });
    }
    if topology.node(id).is_some() {
        return Err(ClusterError::Membership(format!(
            "node {id} is already in the cluster"
        )));
    }
    let text = render_as(topology, next_version(topology.version())?);
    let marker = format!("[[region]]\nname = {region:?}\n\n");
    let Some(at) = text.find(&marker) else {
        return Err(ClusterError::Membership(format!(
            "cannot place a node in region {region}"
        )));
    };
    let block =
        format!("[[region.node]]\nid = {id:?}\nclient_addr = \"{client_addr}\"\npeer_addr = \"{peer_addr}\"\n\n");
    // At the end of the region's nodes: before the next region or link.
    let body = at + marker.len();
    let end = ["[[region]]", "[[link]]"]
        .iter()
        .filter_map(|next| text[body..].find(next).map(|i| body + i))
        .min()
        .unwrap_or(text.len());
    let mut out = text;
    out.insert_str(end, &block);
    reparse(&out, topology.origin())
}

/// `topology` without node `id`, as the next version.
pub fn without_node(topology: &Topology, id: &str) -> Result<Topology, ClusterError> {
    let known = || topology.nodes().map(|(_, n)| n.id.clone()).collect();
    let Some(region) = topology.region_of(id) else {
        return Err(ClusterError::UnknownNode {
            node: id.to_owned(),
            known: known(),
        });
    };
    if region.nodes.len() <= 1 {
        return Err(ClusterError::Membership(format!(
            "node {id} is the last node of region {}: remove the region instead",
            region.name
        )));
    }
    let text = render_as(topology, next_version(topology.version())?);
    let node = topology.node(id).expect("found above");
    let mut block = format!("[[region.node]]\nid = {id:?}\n");
    if node.replica != crate::topology::derived_replica_id(id) {
        let _ = writeln!(block, "replica_id = {}", node.replica.0);
    }
    let _ = write!(
        block,
        "client_addr = \"{}\"\npeer_addr = \"{}\"\n\n",
        node.client_addr, node.peer_addr
    );
    reparse(&text.replacen(&block, "", 1), topology.origin())
}

/// Writes `topology` over the file it came from (atomically).
fn save(topology: &Topology) -> Result<(), ClusterError> {
    save_as(topology, Path::new(topology.origin()), topology.version())
}

/// Writes `topology` as version `version` to `path` (atomically).
pub(super) fn save_as(topology: &Topology, path: &Path, version: u64) -> Result<(), ClusterError> {
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, render_as(topology, version)).map_err(path_error(&tmp))?;
    std::fs::rename(&tmp, path).map_err(path_error(path))
}

/// The version after `version`; TOML integers end at `i64::MAX`.
pub(super) fn next_version(version: u64) -> Result<u64, ClusterError> {
    match version.checked_add(1) {
        Some(next) if i64::try_from(next).is_ok() => Ok(next),
        _ => Err(ClusterError::Membership(format!(
            "the topology's version {version} is the largest a topology file can hold"
        ))),
    }
}

/// A free UDP port on loopback.
fn free_addr() -> Result<SocketAddr, ClusterError> {
    let socket = UdpSocket::bind("127.0.0.1:0").map_err(path_error(Path::new("127.0.0.1:0")))?;
    socket
        .local_addr()
        .map_err(path_error(Path::new("127.0.0.1:0")))
}

async fn client(topology: &Topology, cert_dir: &Path) -> Result<Client, ClusterError> {
    let region = topology
        .regions()
        .first()
        .map(|r| r.name.clone())
        .unwrap_or_default();
    let mut options = ClientOptions::new(topology.clone(), region, cert_dir);
    options.client_name = CLIENT_NAME.to_owned();
    options.request_timeout = Duration::from_millis(RELOAD_TIMEOUT_MS);
    Client::connect(options)
        .await
        .map_err(|e| ClusterError::Membership(format!("cannot reach the cluster: {e}")))
}

/// Asks every node of `topology` to reload its topology file; returns the
/// nodes that did not (with why).
async fn reload_all(client: &Client, topology: &Topology) -> Vec<String> {
    let mut failed = Vec::new();
    for (_, node) in topology.nodes() {
        let asked = tokio::time::timeout(
            Duration::from_millis(RELOAD_TIMEOUT_MS),
            client.execute_on(&node.id, Command::ReloadTopology),
        )
        .await;
        match asked {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => failed.push(format!("{}: {e}", node.id)),
            Err(_) => failed.push(format!("{}: no answer", node.id)),
        }
    }
    failed
}

/// What [`add_node`] and [`remove_node`] report when the rebalance is done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved {
    /// The node added or removed.
    pub node: String,
    /// Key copies streamed to new owners, over all nodes.
    pub keys: u64,
    /// Their encoded state bytes.
    pub bytes: u64,
    /// From the topology change until every node finished.
    pub elapsed_ms: u64,
}

/// Adds a node to `region` of the lab running in `state_dir` (named `id`,
/// else the region's name and the first free number), waits until it
/// serves and until every node of the region finished rebalancing, writing
/// progress to `out`.
pub async fn add_node(
    state_dir: &Path,
    region: &str,
    id: Option<&str>,
    timeout: Duration,
    out: &mut dyn std::io::Write,
) -> Result<Moved, ClusterError> {
    let file = ClusterFile::load(state_dir)?;
    supervisor_runs(state_dir, &file)?;
    let topology = Topology::load(&file.topology)?;
    unfinished_removals(&file, &topology)?;
    let id = match id {
        Some(id) => id.to_owned(),
        None => (1..)
            .map(|k| format!("{region}-{k}"))
            .find(|candidate| topology.node(candidate).is_none())
            .expect("some number is free"),
    };
    let new = with_node(&topology, region, &id, free_addr()?, free_addr()?)?;
    CertStore::new(&file.cert_dir).issue_node(&id)?;
    save(&new)?;
    put_request(state_dir, &Request::Start(id.clone()))?;
    let _ = writeln!(out, "starting {id} in {region}");
    let client = client(&new, &file.cert_dir).await?;
    let deadline = Instant::now() + Duration::from_millis(START_TIMEOUT_MS);
    loop {
        let answered = tokio::time::timeout(
            Duration::from_millis(NODE_TIMEOUT_MS),
            client.execute_on(&id, Command::Ping),
        )
        .await;
        if let Ok(Ok(_)) = answered {
            break;
        }
        // A node that exited (or a supervisor that is gone) will not serve:
        // the change is undone at once rather than at the deadline.
        let exited = ClusterFile::load(state_dir)
            .ok()
            .and_then(|f| f.node(&id).and_then(|n| n.exit.clone()));
        let failure = if let Some(how) = exited {
            Some(format!("node {id} {how} before it served"))
        } else if !process::is_alive(file.supervisor_pid) {
            Some(format!(
                "the supervisor (pid {}) stopped before {id} served",
                file.supervisor_pid
            ))
        } else if Instant::now() >= deadline {
            Some(format!(
                "node {id} did not serve within {START_TIMEOUT_MS} ms"
            ))
        } else {
            None
        };
        if let Some(failure) = failure {
            // Nobody took the new topology yet: the file goes back to the
            // old membership, under a newer version than the one written.
            save_as(
                &topology,
                Path::new(topology.origin()),
                next_version(new.version())?,
            )?;
            if process::is_alive(file.supervisor_pid) {
                stop_and_wait(state_dir, &id).await?;
            }
            let log = ClusterFile::load(state_dir)
                .ok()
                .and_then(|f| f.node(&id).map(|n| n.log.clone()))
                .unwrap_or_else(|| state_dir.join("logs"));
            return Err(ClusterError::Membership(format!(
                "{failure}; {id} is not added (see its log, {})",
                log.display()
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let started = Instant::now();
    for failure in reload_all(&client, &new).await {
        let _ = writeln!(out, "warning: reload failed on {failure}");
    }
    let (keys, bytes) = watch(state_dir, &client, &new, region, &[], timeout, out).await?;
    Ok(Moved {
        node: id,
        keys,
        bytes,
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}

/// Removes node `id` from the lab running in `state_dir`: every node takes
/// the new topology, the node hands its keys over, and once every node of
/// its region finished rebalancing its process is stopped.
pub async fn remove_node(
    state_dir: &Path,
    id: &str,
    timeout: Duration,
    out: &mut dyn std::io::Write,
) -> Result<Moved, ClusterError> {
    let file = ClusterFile::load(state_dir)?;
    supervisor_runs(state_dir, &file)?;
    let topology = Topology::load(&file.topology)?;
    if topology.node(id).is_none() {
        if let Some(entry) = file.node(id) {
            // Removed by an earlier remove-node that did not finish: the
            // others took the topology without it but still wait for it
            // (it may never finish: a node restarted since does not talk
            // to it). It is stopped; the others then find it down and send
            // its keys from their own copies.
            let region = entry.region.clone();
            let client = client(&topology, &file.cert_dir).await?;
            let started = Instant::now();
            stop_and_wait(state_dir, id).await?;
            let _ = writeln!(out, "stopped {id}; the others send its keys");
            let (keys, bytes) =
                watch(state_dir, &client, &topology, &region, &[], timeout, out).await?;
            return Ok(Moved {
                node: id.to_owned(),
                keys,
                bytes,
                elapsed_ms: started.elapsed().as_millis() as u64,
            });
        }
    }
    unfinished_removals(&file, &topology)?;
    let new = without_node(&topology, id)?;
    let region = topology
        .region_of(id)
        .map(|r| r.name.clone())
        .unwrap_or_default();
    save(&new)?;
    let client = client(&topology, &file.cert_dir).await?;
    let started = Instant::now();
    for failure in reload_all(&client, &topology).await {
        let _ = writeln!(out, "warning: reload failed on {failure}");
    }
    let (keys, bytes) = watch(state_dir, &client, &new, &region, &[id], timeout, out).await?;
    stop_and_wait(state_dir, id).await?;
    let _ = writeln!(out, "stopped {id}");
    Ok(Moved {
        node: id.to_owned(),
        keys,
        bytes,
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}

/// Asks the supervisor to stop node `id` and waits until it has (the node
/// leaves the cluster file).
async fn stop_and_wait(state_dir: &Path, id: &str) -> Result<(), ClusterError> {
    put_request(state_dir, &Request::Stop(id.to_owned()))?;
    let deadline = Instant::now() + Duration::from_millis(START_TIMEOUT_MS);
    while ClusterFile::load(state_dir)?
        .nodes
        .iter()
        .any(|n| n.id == id)
    {
        if Instant::now() >= deadline {
            return Err(ClusterError::Membership(format!(
                "the supervisor did not stop {id}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// Refuses a membership change while a node removed from the topology by
/// an earlier `remove-node` that did not finish still runs: the region's
/// nodes would wait for it in the next change too.
fn unfinished_removals(file: &ClusterFile, topology: &Topology) -> Result<(), ClusterError> {
    let left: Vec<&str> = file
        .nodes
        .iter()
        .filter(|n| topology.node(&n.id).is_none())
        .map(|n| n.id.as_str())
        .collect();
    match left.first() {
        None => Ok(()),
        Some(first) => Err(ClusterError::Membership(format!(
            "{} removed by a remove-node that did not finish, and still in the cluster; `cluster remove-node {first}` finishes it",
            left.join(", ")
        ))),
    }
}

/// Refuses a membership change when the `cluster up` process that would
/// start or stop the node is gone.
fn supervisor_runs(state_dir: &Path, file: &ClusterFile) -> Result<(), ClusterError> {
    if process::is_alive(file.supervisor_pid) {
        return Ok(());
    }
    Err(ClusterError::Membership(format!(
        "the supervisor of the cluster in {} (pid {}) is not running; `cluster down` clears its state",
        state_dir.display(),
        file.supervisor_pid
    )))
}

/// One line of the progress display.
pub fn progress_line(id: &str, status: Option<&RebalanceStatus>, epoch: u64) -> String {
    let Some(s) = status else {
        return format!("  {id:<16} unreachable");
    };
    let state = if s.epoch != epoch {
        "waiting for the new topology"
    } else if s.finished {
        "done"
    } else if s.sending_done {
        "sent; waiting for the others"
    } else {
        "streaming"
    };
    format!(
        "  {id:<16} {:>9}/{:<9} keys  {:>10}/{:<10} {}{}",
        s.keys_sent,
        s.keys_total,
        super::super::status::bytes(s.bytes_sent),
        super::super::status::bytes(s.bytes_total),
        state,
        if s.leaving { " (leaving)" } else { "" }
    )
}

/// Polls the nodes of `region` (in `topology`, plus `leaving`) until every
/// one finished rebalancing to `topology`'s membership; prints progress.
/// Returns the key copies and bytes streamed.
async fn watch(
    state_dir: &Path,
    client: &Client,
    topology: &Topology,
    region: &str,
    leaving: &[&str],
    timeout: Duration,
    out: &mut dyn std::io::Write,
) -> Result<(u64, u64), ClusterError> {
    let epoch = membership_epoch(topology, region);
    let mut ids: Vec<String> = topology
        .nodes_in(region)
        .unwrap_or(&[])
        .iter()
        .map(|n| n.id.clone())
        .collect();
    ids.extend(leaving.iter().map(|s| (*s).to_owned()));
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    loop {
        let mut statuses = Vec::new();
        for id in &ids {
            let asked = tokio::time::timeout(
                Duration::from_millis(NODE_TIMEOUT_MS),
                client.execute_on(id, Command::Status),
            )
            .await;
            statuses.push(match asked {
                Ok(Ok(answer)) => match answer.reply {
                    Reply::Status(s) => Some(s.rebalance),
                    _ => None,
                },
                _ => None,
            });
        }
        let (keys_sent, keys_total, bytes_sent, bytes_total) =
            statuses
                .iter()
                .flatten()
                .fold((0, 0, 0, 0), |(a, b, c, d), s| {
                    (
                        a + s.keys_sent,
                        b + s.keys_total,
                        c + s.bytes_sent,
                        d + s.bytes_total,
                    )
                });
        let mut block = format!(
            "rebalance of {region}: {keys_sent}/{keys_total} key copies, {}/{} streamed\n",
            super::super::status::bytes(bytes_sent),
            super::super::status::bytes(bytes_total)
        );
        for (id, status) in ids.iter().zip(&statuses) {
            block.push_str(&progress_line(id, status.as_ref(), epoch));
            block.push('\n');
        }
        if block != last {
            let _ = write!(out, "{block}");
            let _ = out.flush();
            last = block;
        }
        // A leaving node whose process has exited is down: the others send
        // the keys it was to send, and nobody waits for it. (One that only
        // answers slowly is still streaming.)
        let exited = |id: &str| {
            ClusterFile::load(state_dir)
                .ok()
                .and_then(|f| {
                    f.node(id)
                        .map(|n| n.pid.is_none_or(|pid| !process::is_alive(pid)))
                })
                .unwrap_or(false)
        };
        let done = ids.iter().zip(&statuses).all(|(id, s)| match s {
            Some(s) => s.epoch == epoch && s.finished,
            None => leaving.contains(&id.as_str()) && exited(id),
        });
        if done {
            let _ = writeln!(
                out,
                "rebalance complete: {keys_sent} key copies ({}) moved",
                super::super::status::bytes(bytes_sent)
            );
            return Ok((keys_sent, bytes_sent));
        }
        if Instant::now() >= deadline {
            return Err(ClusterError::Membership(format!(
                "the rebalance of {region} did not finish within {} s",
                timeout.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(PROGRESS_POLL_MS)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> Topology {
        Topology::load(concat!(env!("CARGO_MANIFEST_DIR"), "/regions/local.toml")).unwrap()
    }

    #[test]
    fn a_rendered_topology_parses_back_to_the_same_topology() {
        let t = local();
        let back = Topology::parse(&render(&t), t.origin()).unwrap();
        assert_eq!(back, t);
    }

    #[test]
    fn a_node_is_added_to_its_region_and_removed_again() {
        let t = local();
        let (c, p) = (
            "127.0.0.1:7901".parse().unwrap(),
            "127.0.0.1:7902".parse().unwrap(),
        );
        let added = with_node(&t, "eu-west", "eu-west-4", c, p).unwrap();
        assert_eq!(added.nodes_in("eu-west").unwrap().len(), 4);
        assert_eq!(added.region_of("eu-west-4").unwrap().name, "eu-west");
        assert_eq!(added.nodes_in("eu-west").unwrap()[3].id, "eu-west-4");
        assert_eq!(added.nodes_in("us-east").unwrap().len(), 3);
        assert_eq!(added.version(), t.version() + 1);
        let removed = without_node(&added, "eu-west-4").unwrap();
        assert_eq!(removed.version(), t.version() + 2);
        assert_eq!(removed.nodes().count(), t.nodes().count());
        assert_eq!(removed.regions(), t.regions());
        assert!(matches!(
            with_node(&t, "mars", "mars-1", c, p),
            Err(ClusterError::UnknownRegion { .. })
        ));
        assert!(matches!(
            with_node(&t, "eu-west", "eu-west-1", c, p),
            Err(ClusterError::Membership(_))
        ));
        assert!(matches!(
            without_node(&t, "nope"),
            Err(ClusterError::UnknownNode { .. })
        ));
    }

    #[test]
    fn a_change_that_would_make_an_invalid_topology_names_the_problem_and_no_line() {
        let t = local();
        let (c, p) = (
            "127.0.0.1:7901".parse().unwrap(),
            "127.0.0.1:7902".parse().unwrap(),
        );
        let origin = t.origin().to_owned();
        for refused in [
            with_node(&t, "eu-west", "Bad_Id", c, p),
            // Three nodes and N = 3: one fewer cannot hold three replicas.
            without_node(&t, "eu-west-2"),
        ] {
            match refused {
                Err(ClusterError::Membership(m)) => {
                    assert!(m.contains("nothing was changed"), "{m}");
                    assert!(!m.contains(&format!("{origin}:")), "{m}");
                }
                other => panic!("expected a refusal, got {other:?}"),
            }
        }
    }

    #[test]
    fn versions_stop_at_the_largest_a_topology_file_holds() {
        assert_eq!(next_version(0).unwrap(), 1);
        let last = i64::MAX as u64;
        assert_eq!(next_version(last - 1).unwrap(), last);
        assert!(
            matches!(next_version(last), Err(ClusterError::Membership(m)) if m.contains("largest"))
        );
        assert!(next_version(u64::MAX).is_err());
        let text = format!(
            "[cluster]\nname = \"t\"\nversion = {last}\nreplication_factor = 1\n\n[[region]]\nname = \"r\"\n\n[[region.node]]\nid = \"r-1\"\nclient_addr = \"127.0.0.1:1\"\npeer_addr = \"127.0.0.1:2\"\n"
        );
        let t = Topology::parse(&text, "t.toml").unwrap();
        assert_eq!(t.version(), last);
        let (c, p) = (
            "127.0.0.1:3".parse().unwrap(),
            "127.0.0.1:4".parse().unwrap(),
        );
        assert!(matches!(
            with_node(&t, "r", "r-2", c, p),
            Err(ClusterError::Membership(_))
        ));
    }

    #[test]
    fn requests_are_taken_once() {
        let dir = tempfile::tempdir().unwrap();
        put_request(dir.path(), &Request::Start("a-4".into())).unwrap();
        put_request(dir.path(), &Request::Stop("a-2".into())).unwrap();
        let taken = take_requests(dir.path()).unwrap();
        assert_eq!(
            taken,
            vec![Request::Start("a-4".into()), Request::Stop("a-2".into())]
        );
        assert!(take_requests(dir.path()).unwrap().is_empty());
    }
}
