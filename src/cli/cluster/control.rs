//! `cluster down` and `cluster kill`: act on a cluster that another
//! `meridian cluster up` runs, found through its `cluster.json`.
//!
//! `down` asks the supervisor to stop (SIGTERM), which stops its nodes in
//! order and removes `cluster.json`. If the supervisor is gone (killed
//! without cleaning up) or does not stop in time, `down` stops the
//! recorded nodes itself. Every process is checked to still run the
//! command recorded for it before it is signalled.

use super::file::ClusterFile;
use super::process::{self, Signal};
use super::ClusterError;
use std::path::Path;
use std::time::{Duration, Instant};

const POLL_MS: u64 = 50;
/// Time the supervisor gets beyond the nodes' grace period to clean up.
const SUPERVISOR_SLACK_MS: u64 = 3_000;
/// How long `cluster down` waits for SIGKILLed nodes to be gone.
const KILL_WAIT_MS: u64 = 5_000;

/// How `cluster down` stopped a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stopped {
    /// Its `cluster up` process stopped it.
    BySupervisor {
        /// The supervisor's process id.
        pid: u32,
    },
    /// Its supervisor was gone or stuck; the nodes were stopped directly.
    Directly {
        /// Nodes that stopped after SIGTERM.
        terminated: Vec<String>,
        /// Nodes that needed SIGKILL.
        killed: Vec<String>,
    },
}

/// Kills node `node_id` of the cluster running in `state_dir` with SIGKILL
/// and returns its process id. The supervisor notices, reports it and
/// records it in `cluster.json`; nothing restarts it.
pub fn kill(state_dir: &Path, node_id: &str) -> Result<u32, ClusterError> {
    let file = ClusterFile::load(state_dir)?;
    let Some(node) = file.node(node_id) else {
        return Err(ClusterError::UnknownNode {
            node: node_id.to_owned(),
            known: file.nodes.iter().map(|n| n.id.clone()).collect(),
        });
    };
    let not_running = || ClusterError::NotRunning {
        node: node_id.to_owned(),
        how: node.exit.clone(),
    };
    let pid = node.pid.ok_or_else(not_running)?;
    if !process::runs(pid, &["serve", node_id]) {
        return Err(not_running());
    }
    process::send(pid, Signal::Kill).map_err(|source| ClusterError::Signal { pid, source })?;
    Ok(pid)
}

/// Restarts node `node_id` of the cluster running in `state_dir` (its
/// supervisor stops it first if it runs) with the same arguments and data
/// directory, and waits up to `timeout` until it listens again. Returns
/// the new pid.
pub fn restart(state_dir: &Path, node_id: &str, timeout: Duration) -> Result<u32, ClusterError> {
    let file = ClusterFile::load(state_dir)?;
    let Some((before, lives)) = file.node(node_id).map(|n| (n.pid, n.lives)) else {
        return Err(ClusterError::UnknownNode {
            node: node_id.to_owned(),
            known: file.nodes.iter().map(|n| n.id.clone()).collect(),
        });
    };
    if !process::is_alive(file.supervisor_pid) {
        return Err(ClusterError::Membership(format!(
            "the supervisor of the cluster in {} (pid {}) is not running",
            state_dir.display(),
            file.supervisor_pid
        )));
    }
    // The log continues across lives: the new life is ready when it binds
    // its client port or says "listening" after where the log ended.
    let log_end = file
        .node(node_id)
        .and_then(|n| std::fs::metadata(&n.log).ok())
        .map_or(0, |m| m.len());
    super::members::put_request(
        state_dir,
        &super::members::Request::Restart(node_id.to_owned()),
    )?;
    let mut started = None;
    // How the new life ended, if it did before it listened.
    let mut exited: Option<(String, std::path::PathBuf)> = None;
    let ready = wait_until(timeout, || {
        let Ok(file) = ClusterFile::load(state_dir) else {
            return false;
        };
        let Some(node) = file.node(node_id) else {
            return false;
        };
        match node.pid {
            Some(pid) if Some(pid) != before && process::runs(pid, &["serve", node_id]) => {
                started = Some(pid);
                super::readiness::udp_port_bound_by(pid, node.client_addr.port()) == Some(true)
                    || super::readiness::log_says_listening_after(&node.log, log_end)
            }
            // Started again, then gone (the supervisor has recorded how):
            // no use waiting any longer.
            None if node.lives > lives => {
                let how = node.exit.clone().unwrap_or_else(|| "exited".to_owned());
                exited = Some((how, node.log.clone()));
                true
            }
            _ => false,
        }
    });
    if let Some((how, log)) = exited {
        return Err(ClusterError::ExitedDuringStartup {
            node: node_id.to_owned(),
            how,
            log_tail: super::supervisor::log_tail(&log),
            log,
        });
    }
    match (ready, started) {
        (true, Some(pid)) => Ok(pid),
        _ => Err(ClusterError::Membership(format!(
            "node {node_id} did not listen again within {} s{}",
            timeout.as_secs(),
            started
                .map(|pid| format!(" (it runs as pid {pid}; see its log)"))
                .unwrap_or_default()
        ))),
    }
}

/// Stops the cluster running in `state_dir`, waiting up to `grace` for its
/// nodes to stop after SIGTERM before killing them.
pub fn down(state_dir: &Path, grace: Duration) -> Result<Stopped, ClusterError> {
    let file = ClusterFile::load(state_dir)?;
    let supervisor = file.supervisor_pid;
    if process::runs(supervisor, &["cluster", "up"]) {
        process::send(supervisor, Signal::Term).map_err(|source| ClusterError::Signal {
            pid: supervisor,
            source,
        })?;
        let stopped = wait_until(grace + Duration::from_millis(SUPERVISOR_SLACK_MS), || {
            !process::is_alive(supervisor) && !ClusterFile::path_in(state_dir).exists()
        });
        if stopped {
            return Ok(Stopped::BySupervisor { pid: supervisor });
        }
        tracing::warn!(
            pid = supervisor,
            "the supervisor did not stop in time; stopping its nodes directly"
        );
    }

    // Only processes that still run `serve --node <id>` are ours. Each is
    // known by its id and start time from here on, so an id recycled while
    // this waits is not taken for the node.
    let live: Vec<(String, u32, Option<u64>)> = file
        .running()
        .filter_map(|node| {
            let pid = node.pid?;
            // The start time read on both sides of the check names the
            // process that passed it.
            let started = process::start_time(pid);
            let same = process::runs(pid, &["serve", &node.id])
                && process::start_time(pid) == started
                && (started.is_some() || !process::has_proc());
            same.then(|| (node.id.clone(), pid, started))
        })
        .collect();
    for (_, pid, _) in &live {
        // A process that exited meanwhile is fine.
        let _ = process::send(*pid, Signal::Term);
    }
    wait_until(grace, || {
        live.iter()
            .all(|&(_, pid, started)| !process::is_still_alive(pid, started))
    });
    let mut terminated = Vec::new();
    let mut killed = Vec::new();
    for (node, pid, started) in live {
        if process::is_still_alive(pid, started) {
            let _ = process::send(pid, Signal::Kill);
            killed.push((node, pid, started));
        } else {
            terminated.push(node);
        }
    }
    // A killed process with a large heap can take a moment to unmap it.
    wait_until(Duration::from_millis(KILL_WAIT_MS), || {
        killed
            .iter()
            .all(|&(_, pid, started)| !process::is_still_alive(pid, started))
    });
    let stuck: Vec<u32> = killed
        .iter()
        .filter(|&&(_, pid, started)| process::is_still_alive(pid, started))
        .map(|&(_, pid, _)| pid)
        .collect();
    if !stuck.is_empty() {
        return Err(ClusterError::Unkillable { pids: stuck });
    }
    ClusterFile::remove(state_dir)?;
    Ok(Stopped::Directly {
        terminated,
        killed: killed.into_iter().map(|(node, _, _)| node).collect(),
    })
}

/// Polls `done` until it holds or `timeout` passes; returns whether it held.
fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(POLL_MS));
    }
}
