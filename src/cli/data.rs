//! Data commands over the client SDK, and the readiness probe that pings
//! each region of a starting cluster.
//!
//! This is the only part of the command line that talks to nodes: parsing
//! (`command.rs`), the choice of region and certificate (`target.rs`) and
//! printing (`format.rs`) are pure and live elsewhere.

use super::cluster::{ListeningProbe, NodeEntry, ReadinessProbe};
use super::target::Target;
use crate::client::{Client, ClientError, ClientOptions, Routing};
use crate::protocol::{Answer, Command};
use crate::topology::Topology;
use std::collections::HashSet;
use std::path::PathBuf;

/// Connects to the target's region and runs `commands` one after another;
/// their answers in order, or the first error (the commands before it have
/// run).
pub async fn execute(target: Target, commands: &[Command]) -> Result<Vec<Answer>, Failed> {
    let failed = |done: usize| move |error| Failed { done, error };
    let mut options = ClientOptions::new(target.topology, target.region, target.cert_dir);
    options.client_name = target.client_name;
    options.write = target.write;
    options.read = target.read;
    // A client per command line: a home node would buy nothing, and by key
    // a read finds the replica that coordinated an earlier command line's
    // write.
    options.routing = Routing::Primary;
    let client = Client::connect(options).await.map_err(failed(0))?;
    let mut answers = Vec::with_capacity(commands.len());
    for command in commands {
        let answer = client.execute(command.clone()).await;
        answers.push(answer.map_err(failed(answers.len()))?);
    }
    Ok(answers)
}

/// A command line that failed: its first `done` commands were carried out,
/// the next one failed with `error`, and the rest were not sent.
#[derive(Debug)]
pub struct Failed {
    /// Commands carried out before the failure.
    pub done: usize,
    /// Why the next one failed.
    pub error: ClientError,
}

/// Ready when the node listens (see [`ListeningProbe`]) and its region
/// answers a ping through the client SDK with the `cli` certificate.
#[derive(Debug)]
pub struct PingProbe {
    topology: Topology,
    cert_dir: PathBuf,
    regions_answering: HashSet<String>,
}

impl PingProbe {
    /// A probe of the cluster `topology`, authenticated by the `cli`
    /// certificate in `cert_dir`.
    pub fn new(topology: Topology, cert_dir: PathBuf) -> Self {
        PingProbe {
            topology,
            cert_dir,
            regions_answering: HashSet::new(),
        }
    }
}

impl ReadinessProbe for PingProbe {
    async fn is_ready(&mut self, node: &NodeEntry) -> bool {
        if !ListeningProbe::check(node) {
            return false;
        }
        if self.regions_answering.contains(&node.region) {
            return true;
        }
        let options = ClientOptions::new(
            self.topology.clone(),
            node.region.clone(),
            self.cert_dir.clone(),
        );
        let answered = match Client::connect(options).await {
            Ok(client) => client.execute(Command::Ping).await.is_ok(),
            Err(_) => false,
        };
        if answered {
            self.regions_answering.insert(node.region.clone());
        }
        answered
    }
}
