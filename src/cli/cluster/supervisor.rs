//! `meridian cluster up`: start every node of a topology as a child
//! process, wait until each serves, watch them, stop them all on request.
//!
//! The supervisor restarts nothing by itself: a node that dies is reported
//! (an [`Event::NodeExited`]) and recorded in `cluster.json`, and the others
//! keep running, which is what failure demos and tests want; `meridian
//! cluster restart NODE` asks it to start one again. On shutdown,
//! every live node gets SIGTERM, then SIGKILL after a grace period, and
//! `cluster.json` is removed. If the supervisor itself fails or panics, its
//! children are killed (and on Linux they also get SIGTERM if the
//! supervisor dies without cleaning up).
//!
//! With several regions, the supervisor also runs the WAN emulator before
//! it starts the nodes, and starts each node with `--peer-routes` naming
//! its region's route file, so traffic between regions crosses the relays
//! while traffic inside a region stays direct. The relays live as long as
//! `up` runs.
//!
//! It reports through [`Event`]s instead of printing, so the binary decides
//! what users see and tests can check what happened.

use super::file::{ClusterFile, NodeEntry, CLUSTER_FILE_VERSION};
use super::process::{self, Signal};
use super::readiness::ReadinessProbe;
use super::wan::LabWan;
use super::ClusterError;
use crate::affinity::CpuList;
use crate::tls::CertStore;
use crate::topology::Topology;
use std::ffi::OsString;
use std::fs::File;
use std::future::Future;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The client certificate `cluster up` issues for the command line.
pub const CLIENT_NAME: &str = "cli";
/// Most log lines quoted when a node fails to start.
pub const LOG_TAIL_LINES_MAX: usize = 12;
/// Most bytes read from the end of a log to quote its last lines.
const LOG_TAIL_BYTES_MAX: u64 = 8 << 10;
/// Longest wait for one readiness probe.
const PROBE_TIMEOUT_MS: u64 = 1_000;

/// How `cluster up` runs.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// The topology file.
    pub topology: PathBuf,
    /// Where certificates, logs and `cluster.json` go.
    pub state_dir: PathBuf,
    /// The program each node runs: the `meridian` binary.
    pub program: PathBuf,
    /// Arguments put before `serve --node ID --topology FILE --cert-dir DIR
    /// [--peer-routes FILE]` (none for `meridian`; tests run a script
    /// through `sh -c`).
    pub program_args: Vec<OsString>,
    /// Client certificates to issue besides the nodes'.
    pub client_names: Vec<String>,
    /// How long nodes may take to be ready.
    pub ready_timeout_ms: u64,
    /// How long nodes may take to stop after SIGTERM before SIGKILL.
    pub stop_grace_ms: u64,
    /// How often children and readiness are checked.
    pub poll_interval_ms: u64,
    /// With a directory, every node persists under `<dir>/<node id>`
    /// (`serve --data-dir`); without, nodes are pure in-memory caches.
    pub data_dir: Option<PathBuf>,
    /// With a list, the n-th node of the cluster runs on its n-th CPU,
    /// counting round (`serve --cpus`).
    pub cpus: Option<CpuList>,
}

impl UpOptions {
    /// Options that run `program serve ...` for every node of `topology`,
    /// with state in `state_dir`, a `cli` client certificate, a 30 s
    /// readiness timeout and a 5 s stop grace period.
    pub fn new(
        topology: impl Into<PathBuf>,
        state_dir: impl Into<PathBuf>,
        program: impl Into<PathBuf>,
    ) -> Self {
        UpOptions {
            topology: topology.into(),
            state_dir: state_dir.into(),
            program: program.into(),
            program_args: Vec::new(),
            client_names: vec![CLIENT_NAME.to_owned()],
            ready_timeout_ms: 30_000,
            stop_grace_ms: 5_000,
            poll_interval_ms: 100,
            data_dir: None,
            cpus: None,
        }
    }
}

/// What happened while a cluster ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The CA, node and client certificates are in `dir`.
    CertificatesReady {
        /// The certificate directory.
        dir: PathBuf,
    },
    /// The WAN emulator runs (clusters of several regions only).
    WanReady {
        /// How many relays: one per (region, node of another region).
        relays: usize,
        /// The partition control file (`cluster partition` writes it).
        control: PathBuf,
    },
    /// Every node process was started; `cluster.json` lists them.
    Started {
        /// How many.
        nodes: usize,
        /// Where their logs are.
        logs_dir: PathBuf,
    },
    /// Every node serves.
    Ready(ClusterFile),
    /// A node exited while the cluster ran (it is not restarted).
    NodeExited {
        /// The node.
        node: String,
        /// Its process id.
        pid: u32,
        /// How it exited.
        how: String,
        /// Its log file.
        log: PathBuf,
    },
    /// Stopping: SIGTERM sent to this many nodes.
    Stopping {
        /// How many nodes were still running.
        nodes: usize,
    },
    /// A node ignored SIGTERM for the grace period and was killed.
    ForceKilled {
        /// The node.
        node: String,
        /// Its process id.
        pid: u32,
    },
    /// Every node has stopped and `cluster.json` is removed.
    Stopped,
}

/// Runs a cluster until `shutdown` completes: issues certificates, starts
/// every node, waits for `probe` to find each ready, watches them, then
/// stops them all. Returns `Ok` after a requested shutdown (also one during
/// startup), and an error if the cluster could not start or every node
/// exited.
///
/// Must run on a runtime with a time driver, and on a thread that outlives
/// the children (on Linux each child gets SIGTERM when the thread that
/// started it exits).
pub async fn up<P, S>(
    options: &UpOptions,
    probe: &mut P,
    shutdown: S,
    on_event: &mut dyn FnMut(Event),
) -> Result<(), ClusterError>
where
    P: ReadinessProbe,
    S: Future<Output = ()>,
{
    let topology = Topology::load(&options.topology)?;
    let state_dir = create_dir(&options.state_dir)?;
    // Held until `up` returns: a second `cluster up` on the same directory
    // is refused at once, before it touches certificates, logs or ports.
    let _lock = lock_state_dir(&state_dir)?;
    if let Some(running) = ClusterFile::load_if_present(&state_dir)? {
        if process::runs(running.supervisor_pid, &["cluster", "up"]) {
            return Err(ClusterError::AlreadyRunning {
                state_dir,
                pid: running.supervisor_pid,
            });
        }
        // A cluster that was killed without cleaning up: its file is stale.
        ClusterFile::remove(&state_dir)?;
    }
    let original =
        std::fs::canonicalize(&options.topology).map_err(|source| ClusterError::Path {
            path: options.topology.clone(),
            source,
        })?;
    // The nodes read the lab's own copy, which `cluster add-node` and
    // `remove-node` rewrite; the file given is never changed.
    let topology_path = state_dir.join(super::members::TOPOLOGY_COPY_NAME);
    if original != topology_path {
        if let Some(note) = write_copy(&topology, &original, &topology_path)? {
            eprintln!("{note}");
        }
    }
    super::members::clear_requests(&state_dir)?;

    let cert_dir = state_dir.join("certs");
    let node_ids: Vec<&str> = topology.nodes().map(|(_, node)| node.id.as_str()).collect();
    let client_names: Vec<&str> = options.client_names.iter().map(String::as_str).collect();
    CertStore::new(&cert_dir).ensure_cluster(&node_ids, &client_names)?;
    on_event(Event::CertificatesReady {
        dir: cert_dir.clone(),
    });

    let mut wan = LabWan::start(&topology, &state_dir).await?;
    if let Some(wan) = &wan {
        on_event(Event::WanReady {
            relays: wan.relays(),
            control: super::wan::partitions_path(&state_dir),
        });
    }

    let logs_dir = create_dir(&state_dir.join("logs"))?;
    let mut fleet = Fleet {
        state_dir: state_dir.clone(),
        file: ClusterFile {
            version: CLUSTER_FILE_VERSION,
            cluster: topology.cluster().to_owned(),
            topology: topology_path,
            cert_dir,
            supervisor_pid: std::process::id(),
            ready: false,
            nodes: Vec::with_capacity(node_ids.len()),
        },
        children: Vec::with_capacity(node_ids.len()),
        pids: Vec::with_capacity(node_ids.len()),
        saved: false,
    };
    for (region, node) in topology.nodes() {
        fleet.launch(options, wan.as_ref(), &region.name, node, &logs_dir, false)?;
    }
    fleet.save()?;
    on_event(Event::Started {
        nodes: fleet.children.len(),
        logs_dir: logs_dir.clone(),
    });

    let poll = Duration::from_millis(options.poll_interval_ms.max(1));
    let mut shutdown = std::pin::pin!(shutdown);

    // Startup: every node must become ready, and none may exit.
    let deadline = Instant::now() + Duration::from_millis(options.ready_timeout_ms);
    let mut ready = vec![false; fleet.children.len()];
    loop {
        if let Some((index, status)) = fleet.reap().into_iter().next() {
            let node = &fleet.file.nodes[index];
            let error = ClusterError::ExitedDuringStartup {
                node: node.id.clone(),
                how: process::describe(status),
                log: node.log.clone(),
                log_tail: log_tail(&node.log),
            };
            fleet.stop(options.stop_grace_ms, poll, on_event).await?;
            return Err(error);
        }
        for (index, node) in fleet.file.nodes.iter().enumerate() {
            if !ready[index] {
                let probe_timeout = Duration::from_millis(PROBE_TIMEOUT_MS);
                ready[index] = tokio::time::timeout(probe_timeout, probe.is_ready(node))
                    .await
                    .unwrap_or(false);
            }
        }
        if ready.iter().all(|&r| r) {
            break;
        }
        if Instant::now() >= deadline {
            let nodes = fleet
                .file
                .nodes
                .iter()
                .zip(&ready)
                .filter(|(_, &r)| !r)
                .map(|(node, _)| node.id.clone())
                .collect();
            fleet.stop(options.stop_grace_ms, poll, on_event).await?;
            return Err(ClusterError::NotReady {
                nodes,
                timeout_ms: options.ready_timeout_ms,
                logs_dir,
            });
        }
        tokio::select! {
            () = &mut shutdown => {
                return fleet.stop(options.stop_grace_ms, poll, on_event).await;
            }
            () = tokio::time::sleep(poll) => {}
        }
    }
    fleet.file.ready = true;
    fleet.save()?;
    on_event(Event::Ready(fleet.file.clone()));

    // Watch: report exits, restart nothing unless asked.
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            () = tokio::time::sleep(poll) => {}
        }
        fleet
            .serve_member_requests(options, wan.as_mut(), &logs_dir)
            .await?;
        let exits = fleet.reap();
        if exits.is_empty() {
            continue;
        }
        for (index, status) in exits {
            let node = &fleet.file.nodes[index];
            on_event(Event::NodeExited {
                node: node.id.clone(),
                pid: fleet.pids[index],
                how: process::describe(status),
                log: node.log.clone(),
            });
        }
        fleet.save()?;
        if fleet.file.running().next().is_none() {
            fleet.stop(options.stop_grace_ms, poll, on_event).await?;
            return Err(ClusterError::AllExited);
        }
    }
    fleet.stop(options.stop_grace_ms, poll, on_event).await
}

/// The CPU of `cpus` that the fewest of `nodes` run on (the first such in
/// the list): in turn over the list as nodes start, and a node added after
/// another left takes the CPU it freed.
fn least_used_cpu(cpus: &CpuList, nodes: &[NodeEntry]) -> usize {
    let used = |cpu: usize| nodes.iter().filter(|n| n.cpu == Some(cpu)).count();
    let mut best = cpus.cpus()[0];
    for &cpu in cpus.cpus() {
        if used(cpu) < used(best) {
            best = cpu;
        }
    }
    best
}

/// Starts `program [program_args] serve --node ID --topology FILE
/// --cert-dir DIR [--peer-routes FILE] [--data-dir DIR/ID] [--cpus CPU]` with its output written to `log`,
/// in its own process group (so a Ctrl-C at the terminal reaches only the
/// supervisor, which then stops the nodes in order).
fn spawn_node(
    options: &UpOptions,
    file: &ClusterFile,
    node_id: &str,
    routes: Option<&Path>,
    log: &Path,
    start: Start,
    cpu: Option<usize>,
) -> Result<Child, ClusterError> {
    let path_err = |source| ClusterError::Path {
        path: log.to_owned(),
        source,
    };
    // A restarted node's log continues the one of its earlier life.
    let stdout = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(start == Start::Restart)
        .truncate(start != Start::Restart)
        .open(log)
        .map_err(path_err)?;
    let stderr = stdout.try_clone().map_err(path_err)?;
    let mut command = Command::new(&options.program);
    command
        .args(&options.program_args)
        .arg("serve")
        .arg("--node")
        .arg(node_id)
        .arg("--topology")
        .arg(&file.topology)
        .arg("--cert-dir")
        .arg(&file.cert_dir);
    if let Some(routes) = routes {
        command.arg("--peer-routes").arg(routes);
    }
    if start == Start::Joining {
        command.arg("--joining");
    }
    if let Some(dir) = &options.data_dir {
        command.arg("--data-dir").arg(dir.join(node_id));
    }
    if let Some(cpu) = cpu {
        command.arg("--cpus").arg(cpu.to_string());
    }
    command.stdin(Stdio::null()).stdout(stdout).stderr(stderr);
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    #[cfg(target_os = "linux")]
    {
        let supervisor = std::process::id();
        // SAFETY: the closure runs between fork and exec and only calls
        // async-signal-safe functions (prctl, getppid).
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut command, move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The supervisor may have died before prctl took effect.
                if u32::try_from(libc::getppid()).ok() != Some(supervisor) {
                    return Err(std::io::Error::other("the supervisor has exited"));
                }
                Ok(())
            });
        }
    }
    command.spawn().map_err(|source| ClusterError::Spawn {
        node: node_id.to_owned(),
        program: options.program.clone(),
        source,
    })
}

/// How a node process starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    /// With the cluster.
    Initial,
    /// Added to the running cluster (`serve --joining`).
    Joining,
    /// Again, after it stopped or was killed.
    Restart,
}

/// The node processes of a cluster, in topology order, with their entries
/// in `cluster.json`.
struct Fleet {
    state_dir: PathBuf,
    file: ClusterFile,
    /// `None` once reaped.
    children: Vec<Option<Child>>,
    /// The pid each node had, kept after it exits, for reports.
    pids: Vec<u32>,
    saved: bool,
}

impl Fleet {
    /// Starts the process of `node` (of `region`) and records it; returns
    /// its pid. `joining` starts it as a node added to a running cluster.
    fn launch(
        &mut self,
        options: &UpOptions,
        wan: Option<&LabWan>,
        region: &str,
        node: &crate::topology::Node,
        logs_dir: &Path,
        joining: bool,
    ) -> Result<u32, ClusterError> {
        let log = logs_dir.join(format!("{}.log", node.id));
        let routes = wan.and_then(|w| w.route_file(region));
        let start = if joining {
            Start::Joining
        } else {
            Start::Initial
        };
        let cpu = options
            .cpus
            .as_ref()
            .map(|cpus| least_used_cpu(cpus, &self.file.nodes));
        let child = spawn_node(options, &self.file, &node.id, routes, &log, start, cpu)?;
        let pid = child.id();
        self.file.nodes.push(NodeEntry {
            id: node.id.clone(),
            region: region.to_owned(),
            pid: Some(pid),
            exit: None,
            lives: 1,
            client_addr: node.client_addr,
            peer_addr: node.peer_addr,
            log,
            cpu,
        });
        self.pids.push(pid);
        self.children.push(Some(child));
        Ok(pid)
    }

    /// Carries out the requests of `cluster add-node`, `remove-node` and
    /// `restart`: starts an added node (joining), stops a removed one and
    /// forgets it, or starts a node again in place.
    async fn serve_member_requests(
        &mut self,
        options: &UpOptions,
        mut wan: Option<&mut LabWan>,
        logs_dir: &Path,
    ) -> Result<(), ClusterError> {
        for request in super::members::take_requests(&self.state_dir)? {
            match request {
                super::members::Request::Restart(id) => {
                    self.restart(options, wan.as_deref(), &id).await?
                }
                super::members::Request::Start(id) => {
                    if self.file.nodes.iter().any(|n| n.id == id) {
                        continue;
                    }
                    let topology = Topology::load(&self.file.topology)?;
                    let (Some(node), Some(region)) = (topology.node(&id), topology.region_of(&id))
                    else {
                        tracing::warn!(node = %id, "asked to start a node the topology lacks");
                        continue;
                    };
                    if let Some(wan) = wan.as_deref_mut() {
                        // Before the node starts, so that the others find
                        // the routes to it when they reload the topology.
                        if let Err(e) = wan.add_node(&topology, &id).await {
                            tracing::warn!(node = %id, error = %e, "no WAN relays to an added node: other regions dial it directly");
                        }
                    }
                    let wan = wan.as_deref();
                    let pid = self.launch(options, wan, &region.name, node, logs_dir, true)?;
                    tracing::info!(node = %id, pid, "started an added node");
                    self.save()?;
                }
                super::members::Request::Stop(id) => {
                    let Some(index) = self.file.nodes.iter().position(|n| n.id == id) else {
                        continue;
                    };
                    self.stop_one(index, options.stop_grace_ms).await;
                    tracing::info!(node = %id, "stopped a removed node");
                    if let Some(wan) = wan.as_deref_mut() {
                        if let Err(e) = wan.remove_node(&id) {
                            tracing::warn!(node = %id, error = %e, "cannot rewrite the WAN routes");
                        }
                    }
                    self.file.nodes.remove(index);
                    self.children.remove(index);
                    self.pids.remove(index);
                    self.save()?;
                }
            }
        }
        Ok(())
    }

    /// Stops node `index` (SIGTERM, then SIGKILL after `grace_ms`) and reaps it.
    async fn stop_one(&mut self, index: usize, grace_ms: u64) -> Option<ExitStatus> {
        let mut child = self.children[index].take()?;
        let _ = process::send(child.id(), Signal::Term);
        let deadline = Instant::now() + Duration::from_millis(grace_ms);
        while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = child.kill();
        child.wait().ok()
    }

    /// Starts node `id` again in place (stopping it first if it runs),
    /// with the same arguments and data directory; its log continues.
    async fn restart(
        &mut self,
        options: &UpOptions,
        wan: Option<&LabWan>,
        id: &str,
    ) -> Result<(), ClusterError> {
        let Some(index) = self.file.nodes.iter().position(|n| n.id == id) else {
            tracing::warn!(node = %id, "asked to restart a node the cluster lacks");
            return Ok(());
        };
        if self.stop_one(index, options.stop_grace_ms).await.is_some() {
            tracing::info!(node = %id, "stopped for a restart");
        }
        let entry = &self.file.nodes[index];
        let routes = wan.and_then(|w| w.route_file(&entry.region));
        let log = entry.log.clone();
        let cpu = entry.cpu;
        let child = spawn_node(options, &self.file, id, routes, &log, Start::Restart, cpu)?;
        let pid = child.id();
        self.file.nodes[index].pid = Some(pid);
        self.file.nodes[index].exit = None;
        self.file.nodes[index].lives += 1;
        self.children[index] = Some(child);
        self.pids[index] = pid;
        tracing::info!(node = %id, pid, "restarted a node");
        self.save()
    }

    fn save(&mut self) -> Result<(), ClusterError> {
        self.file.save(&self.state_dir)?;
        self.saved = true;
        Ok(())
    }

    /// Reaps the children that have exited, records them in the file (not
    /// saved) and returns their indices and statuses.
    fn reap(&mut self) -> Vec<(usize, ExitStatus)> {
        let mut exits = Vec::new();
        for (index, slot) in self.children.iter_mut().enumerate() {
            let Some(child) = slot else { continue };
            let status = match child.try_wait() {
                Ok(Some(status)) => status,
                Ok(None) => continue,
                // Not waitable any more: count it as gone.
                Err(e) => {
                    tracing::warn!(node = %self.file.nodes[index].id, error = %e, "cannot wait for node");
                    *slot = None;
                    self.file.nodes[index].pid = None;
                    continue;
                }
            };
            *slot = None;
            let entry = &mut self.file.nodes[index];
            entry.pid = None;
            entry.exit = Some(process::describe(status));
            exits.push((index, status));
        }
        exits
    }

    /// Sends SIGTERM to every live node, waits up to `grace_ms`, kills
    /// the rest, and removes `cluster.json`.
    async fn stop(
        &mut self,
        grace_ms: u64,
        poll: Duration,
        on_event: &mut dyn FnMut(Event),
    ) -> Result<(), ClusterError> {
        let live: Vec<usize> = (0..self.children.len())
            .filter(|&i| self.children[i].is_some())
            .collect();
        on_event(Event::Stopping { nodes: live.len() });
        for &index in &live {
            if let Some(child) = &self.children[index] {
                // The child is not reaped yet, so its pid cannot be reused.
                if let Err(e) = process::send(child.id(), Signal::Term) {
                    tracing::warn!(node = %self.file.nodes[index].id, error = %e, "cannot send SIGTERM");
                }
            }
        }
        let deadline = Instant::now() + Duration::from_millis(grace_ms);
        loop {
            self.reap();
            if self.children.iter().all(Option::is_none) || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(poll.min(Duration::from_millis(50))).await;
        }
        for index in 0..self.children.len() {
            if let Some(mut child) = self.children[index].take() {
                on_event(Event::ForceKilled {
                    node: self.file.nodes[index].id.clone(),
                    pid: child.id(),
                });
                let _ = child.kill();
                let _ = child.wait();
                self.file.nodes[index].pid = None;
            }
        }
        ClusterFile::remove(&self.state_dir)?;
        self.saved = false;
        on_event(Event::Stopped);
        Ok(())
    }
}

impl Drop for Fleet {
    /// Kills whatever still runs (after an error or a panic) and removes
    /// the cluster file this fleet wrote.
    fn drop(&mut self) {
        for child in self.children.iter_mut().filter_map(Option::take) {
            let mut child = child;
            let _ = child.kill();
            let _ = child.wait();
        }
        if self.saved {
            let _ = ClusterFile::remove(&self.state_dir);
        }
    }
}

/// The file whose lock a running `cluster up` holds.
pub const LOCK_FILE_NAME: &str = "up.lock";

/// Locks the state directory for this `cluster up`, or says another one
/// holds it (if that one runs, its pid is in `cluster.json`).
fn lock_state_dir(state_dir: &Path) -> Result<File, ClusterError> {
    let path = state_dir.join(LOCK_FILE_NAME);
    let path_error = |source| ClusterError::Path {
        path: path.clone(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(path_error)?;
    if process::try_lock(&file).map_err(path_error)? {
        return Ok(file);
    }
    if let Ok(Some(running)) = ClusterFile::load_if_present(state_dir) {
        if process::runs(running.supervisor_pid, &["cluster", "up"]) {
            return Err(ClusterError::AlreadyRunning {
                state_dir: state_dir.to_owned(),
                pid: running.supervisor_pid,
            });
        }
    }
    Err(ClusterError::StateDirInUse {
        state_dir: state_dir.to_owned(),
    })
}

fn create_dir(path: &Path) -> Result<PathBuf, ClusterError> {
    let path_err = |source| ClusterError::Path {
        path: path.to_owned(),
        source,
    };
    if path.exists() && !path.is_dir() {
        return Err(path_err(std::io::Error::other(
            "it is a file, not a directory",
        )));
    }
    std::fs::create_dir_all(path).map_err(path_err)?;
    std::fs::canonicalize(path).map_err(path_err)
}

/// The last lines of the log at `path` (at most [`LOG_TAIL_LINES_MAX`]),
/// indented for quoting in an error.
pub(super) fn log_tail(path: &Path) -> String {
    let read = || -> std::io::Result<String> {
        let mut file = File::open(path)?;
        let len = file.metadata()?.len();
        file.seek(SeekFrom::Start(len.saturating_sub(LOG_TAIL_BYTES_MAX)))?;
        let mut bytes = Vec::new();
        file.take(LOG_TAIL_BYTES_MAX).read_to_end(&mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    match read() {
        Ok(text) if !text.trim().is_empty() => {
            let lines: Vec<&str> = text.lines().collect();
            let start = lines.len().saturating_sub(LOG_TAIL_LINES_MAX);
            lines[start..]
                .iter()
                .map(|line| format!("  | {line}"))
                .collect::<Vec<_>>()
                .join("\n")
        }
        Ok(_) => "  | (empty)".to_owned(),
        Err(e) => format!("  | (cannot read it: {e})"),
    }
}

/// Copies the topology file `original` (parsed: `topology`) to the lab's
/// `copy`. A previous run's copy may have reached a higher version through
/// membership changes, and a client that outlived that run keeps the
/// highest version it saw: then the copy is written as the version after
/// it, so that such a client takes this run's topology.
///
/// Returns a note when the previous copy's nodes differ from the given
/// file's (nodes added or removed by an earlier run that ended without
/// `cluster down`): this run starts from the given file's membership.
fn write_copy(
    topology: &Topology,
    original: &Path,
    copy: &Path,
) -> Result<Option<String>, ClusterError> {
    let previous = Topology::load(copy).ok();
    let note = previous
        .as_ref()
        .and_then(|p| membership_note(p, topology, original));
    let previous = previous.map(|t| t.version());
    match previous {
        Some(previous) if previous > topology.version() => {
            let next = super::members::next_version(previous)?;
            super::members::save_as(topology, copy, next)
        }
        _ => std::fs::copy(original, copy)
            .map(drop)
            .map_err(|source| ClusterError::Path {
                path: copy.to_path_buf(),
                source,
            }),
    }?;
    Ok(note)
}

/// What an earlier run's membership had that the given file's lacks, and
/// the reverse, if anything.
fn membership_note(previous: &Topology, given: &Topology, original: &Path) -> Option<String> {
    let ids = |t: &Topology| -> std::collections::BTreeSet<String> {
        t.nodes().map(|(_, n)| n.id.clone()).collect()
    };
    let (before, now) = (ids(previous), ids(given));
    if before == now {
        return None;
    }
    let added: Vec<&str> = before.difference(&now).map(String::as_str).collect();
    let removed: Vec<&str> = now.difference(&before).map(String::as_str).collect();
    let mut changes = Vec::new();
    if !added.is_empty() {
        changes.push(format!("had {} as well", added.join(", ")));
    }
    if !removed.is_empty() {
        changes.push(format!("had no {}", removed.join(", ")));
    }
    Some(format!(
        "note: the earlier cluster in this state directory {} (nodes added or removed while it ran); this one starts with the nodes of {}",
        changes.join(" and "),
        original.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_take_the_least_used_cpu_in_turn_and_keep_it() {
        let entry = |id: &str, cpu: usize| NodeEntry {
            id: id.into(),
            region: "r".into(),
            pid: Some(1),
            exit: None,
            lives: 1,
            client_addr: "127.0.0.1:1".parse().unwrap(),
            peer_addr: "127.0.0.1:2".parse().unwrap(),
            log: "/lab/n.log".into(),
            cpu: Some(cpu),
        };
        let cpus: CpuList = "2-3".parse().unwrap();
        let mut nodes = Vec::new();
        for id in ["a", "b", "c"] {
            let cpu = least_used_cpu(&cpus, &nodes);
            nodes.push(entry(id, cpu));
        }
        let placed: Vec<Option<usize>> = nodes.iter().map(|n| n.cpu).collect();
        assert_eq!(placed, [Some(2), Some(3), Some(2)]);
        // b leaves: a node added next takes the CPU it freed, not the
        // next in turn after c.
        nodes.remove(1);
        assert_eq!(least_used_cpu(&cpus, &nodes), 3);
    }

    #[test]
    fn a_copy_comes_after_the_version_a_previous_run_reached() {
        let dir = tempfile::tempdir().unwrap();
        let original = dir.path().join("given.toml");
        let copy = dir.path().join("topology.toml");
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/regions/local.toml"))
                .unwrap();
        std::fs::write(&original, &text).unwrap();
        let given = Topology::load(&original).unwrap();
        assert_eq!(given.version(), 0);

        // No previous copy, or one not ahead: copied as it is.
        assert_eq!(write_copy(&given, &original, &copy).unwrap(), None);
        assert_eq!(std::fs::read_to_string(&copy).unwrap(), text);
        assert_eq!(write_copy(&given, &original, &copy).unwrap(), None);
        assert_eq!(std::fs::read_to_string(&copy).unwrap(), text);

        // Membership changes took the copy to version 2: the next run's
        // copy is the given topology as version 3.
        let mut changed = Topology::load(&copy).unwrap();
        for _ in 0..2 {
            let next = super::super::members::next_version(changed.version()).unwrap();
            super::super::members::save_as(&changed, &copy, next).unwrap();
            changed = Topology::load(&copy).unwrap();
        }
        assert_eq!(changed.version(), 2);
        write_copy(&given, &original, &copy).unwrap();
        let written = Topology::load(&copy).unwrap();
        assert_eq!(written.version(), 3);
        assert_eq!(written.regions(), given.regions());

        // A given file at or beyond the copy's version is copied as it is.
        let ahead = text.replacen("[cluster]\n", "[cluster]\nversion = 3\n", 1);
        std::fs::write(&original, &ahead).unwrap();
        write_copy(&Topology::load(&original).unwrap(), &original, &copy).unwrap();
        assert_eq!(std::fs::read_to_string(&copy).unwrap(), ahead);

        // An earlier run that added a node: named.
        let grown = super::super::members::with_node(
            &Topology::load(&copy).unwrap(),
            "eu-west",
            "eu-west-4",
            "127.0.0.1:7901".parse().unwrap(),
            "127.0.0.1:7902".parse().unwrap(),
        )
        .unwrap();
        super::super::members::save_as(&grown, &copy, grown.version()).unwrap();
        let note = write_copy(&Topology::load(&original).unwrap(), &original, &copy)
            .unwrap()
            .expect("a note");
        assert!(note.contains("had eu-west-4 as well"), "{note}");
        assert!(note.contains("given.toml"), "{note}");
    }

    #[test]
    fn log_tail_quotes_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("n.log");
        let text: String = (1..=20).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&log, text).unwrap();
        let tail = log_tail(&log);
        assert!(tail.starts_with("  | line 9\n"), "{tail}");
        assert!(tail.ends_with("  | line 20"), "{tail}");
        assert_eq!(tail.lines().count(), LOG_TAIL_LINES_MAX);
        std::fs::write(&log, "").unwrap();
        assert_eq!(log_tail(&log), "  | (empty)");
        assert!(log_tail(&dir.path().join("none.log")).contains("cannot read"));
    }
}
