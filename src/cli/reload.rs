//! `meridian reload [NODE...]`: asks running nodes to re-read their
//! topology file (the one each was started with), as `cluster add-node` and
//! `remove-node` do, for nodes run by hand with `serve --topology FILE`
//! after the file was edited. A node keeps its topology when the file's is
//! older than the one it runs, or not valid.

use std::time::Duration;

use super::args::GlobalArgs;
use super::target::Target;
use crate::client::{Client, ClientOptions};
use crate::protocol::{Command, Reply};

/// How long a node may take to answer each request.
pub const RELOAD_TIMEOUT_MS: u64 = 2_000;

/// What one node said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reloaded {
    /// The node's id.
    pub node: String,
    /// The topology version it runs now (`Err` with why it is not known,
    /// when it reloaded but its status did not come), or why it did not
    /// reload.
    pub outcome: Result<Result<u64, String>, String>,
}

/// Sends `ReloadTopology` to `nodes` (ids of the target's topology; none:
/// every node, of `--region` if given), one after another, and reads back
/// the topology version each runs.
pub async fn run(global: &GlobalArgs, nodes: &[String]) -> anyhow::Result<Vec<Reloaded>> {
    let target = Target::resolve_async(global).await?;
    let topology = &target.topology;
    let in_region = |region: &str| global.region.as_ref().is_none_or(|r| r == region);
    let ids: Vec<String> = if nodes.is_empty() {
        topology
            .nodes()
            .filter(|(region, _)| in_region(&region.name))
            .map(|(_, node)| node.id.clone())
            .collect()
    } else {
        for id in nodes {
            let Some((region, _)) = topology.nodes().find(|(_, n)| n.id == *id) else {
                let known: Vec<&str> = topology.nodes().map(|(_, n)| n.id.as_str()).collect();
                anyhow::bail!(
                    "no node {id} in {} (nodes: {})",
                    topology.origin(),
                    known.join(", ")
                );
            };
            if !in_region(&region.name) {
                anyhow::bail!("node {id} is in region {:?}, not in --region", region.name);
            }
        }
        nodes.to_vec()
    };
    let target_hint = |e: &crate::client::ClientError| target.guess_hint(e, &global.state_dir);
    let mut options = ClientOptions::new(
        topology.clone(),
        target.region.clone(),
        target.cert_dir.clone(),
    );
    options.client_name = target.client_name.clone();
    options.request_timeout = Duration::from_millis(RELOAD_TIMEOUT_MS);
    let client = Client::connect(options)
        .await
        .map_err(|e| match target_hint(&e) {
            Some(hint) => anyhow::anyhow!("{e}\n{hint}"),
            None => e.into(),
        })?;
    let mut reloaded = Vec::with_capacity(ids.len());
    for id in ids {
        let outcome = reload_one(&client, &id).await;
        reloaded.push(Reloaded { node: id, outcome });
    }
    Ok(reloaded)
}

async fn reload_one(client: &Client, id: &str) -> Result<Result<u64, String>, String> {
    let wait = Duration::from_millis(RELOAD_TIMEOUT_MS);
    let ask = |command| tokio::time::timeout(wait, client.execute_on(id, command));
    match ask(Command::ReloadTopology).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err(e.to_string()),
        Err(_) => return Err(format!("no answer within {RELOAD_TIMEOUT_MS} ms")),
    }
    Ok(match ask(Command::Status).await {
        Ok(Ok(answer)) => match answer.reply {
            Reply::Status(status) => Ok(status.topology_version),
            other => Err(format!("unexpected reply {other:?} to STATUS")),
        },
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no status within {RELOAD_TIMEOUT_MS} ms")),
    })
}

/// One line per node: `us-east-1: topology version 3`,
/// `us-east-2: reloaded (version unknown: ...)` or
/// `us-east-3: not reloaded: ...`.
pub fn text(reloaded: &[Reloaded]) -> String {
    let mut out = String::new();
    for r in reloaded {
        let line = match &r.outcome {
            Ok(Ok(version)) => format!("{}: topology version {version}", r.node),
            Ok(Err(why)) => format!("{}: reloaded (version unknown: {why})", r.node),
            Err(why) => format!("{}: not reloaded: {why}", r.node),
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_node_gets_a_line() {
        let reloaded = [
            Reloaded {
                node: "a-1".into(),
                outcome: Ok(Ok(3)),
            },
            Reloaded {
                node: "a-2".into(),
                outcome: Err("older".into()),
            },
            Reloaded {
                node: "a-3".into(),
                outcome: Ok(Err("timed out".into())),
            },
        ];
        assert_eq!(
            text(&reloaded),
            "a-1: topology version 3\na-2: not reloaded: older\n\
             a-3: reloaded (version unknown: timed out)\n"
        );
    }
}
