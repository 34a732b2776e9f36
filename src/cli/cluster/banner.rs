//! What `cluster up` prints once every node serves, and what `cluster
//! status` prints: the nodes, where things are, and commands to try.
//! Pure text from a [`ClusterFile`]; nothing is printed here.

use super::file::ClusterFile;
use std::fmt::Write as _;

/// The banner of a ready cluster. `invocation` is how the user runs the
/// command line against it (`meridian`, or `meridian --state-dir lab`).
pub fn banner(file: &ClusterFile, invocation: &str) -> String {
    let mut regions: Vec<&str> = Vec::new();
    for node in &file.nodes {
        if !regions.contains(&node.region.as_str()) {
            regions.push(&node.region);
        }
    }
    let mut text = String::new();
    let _ = writeln!(
        text,
        "Meridian cluster \"{}\" is up: {} {} in {} {} ({}).",
        file.cluster,
        file.nodes.len(),
        plural(file.nodes.len(), "node", "nodes"),
        regions.len(),
        plural(regions.len(), "region", "regions"),
        regions.join(", ")
    );
    text.push('\n');
    text.push_str(&node_table(file, |_| true));
    let state_dir = file.cert_dir.parent().map_or_else(
        || file.cert_dir.display().to_string(),
        |d| d.display().to_string(),
    );
    let _ = writeln!(text);
    let _ = writeln!(text, "Topology: {}", file.topology.display());
    let _ = writeln!(
        text,
        "State:    {state_dir} (certs/, logs/<node>.log, cluster.json)"
    );
    let _ = writeln!(text);
    let _ = writeln!(text, "Try, from another terminal in this directory:");
    let mut tries: Vec<(String, &str)> = vec![
        (format!("{invocation} set hello world"), ""),
        (format!("{invocation} get hello"), ""),
    ];
    if let Some(other) = regions.get(1) {
        tries.push((
            format!("{invocation} --region {other} get hello"),
            "read from another region",
        ));
    }
    tries.push((format!("{invocation} incr visits"), ""));
    tries.push((
        format!("{invocation} status"),
        "health, lag and backlog of every node",
    ));
    if let Some(first) = regions.first().filter(|_| regions.len() > 1) {
        tries.push((format!("{invocation} demo"), "geo-replication in a minute"));
        tries.push((
            format!("{invocation} cluster partition {first}"),
            "cut a region off the WAN",
        ));
        tries.push((format!("{invocation} cluster heal"), "and mend it"));
    }
    let first_region = regions.first().copied().unwrap_or_default();
    let in_first: Vec<&str> = file
        .nodes
        .iter()
        .filter(|n| n.region == first_region)
        .map(|n| n.id.as_str())
        .collect();
    if let Some(victim) = in_first.get(1).or(in_first.first()) {
        tries.push((
            format!("{invocation} cluster kill {victim}"),
            "kill -9 one node",
        ));
    }
    tries.push((format!("{invocation} cluster down"), "or Ctrl-C here"));
    let width = tries.iter().map(|(c, _)| c.len()).max().unwrap_or(0);
    for (command, note) in tries {
        if note.is_empty() {
            let _ = writeln!(text, "  {command}");
        } else {
            let _ = writeln!(text, "  {command:<width$}  # {note}");
        }
    }
    let _ = writeln!(text);
    text.push_str("Press Ctrl-C to stop the cluster.");
    text
}

/// The nodes of a cluster and whether each runs, as `cluster status`
/// shows them; `alive` tells whether a recorded pid still runs.
pub fn status_text(file: &ClusterFile, alive: impl Fn(u32) -> bool) -> String {
    let running = file
        .nodes
        .iter()
        .filter(|n| n.pid.is_some_and(&alive))
        .count();
    let mut text = format!(
        "Cluster \"{}\" ({}): {running} of {} nodes running{}.\n\n",
        file.cluster,
        file.topology.display(),
        file.nodes.len(),
        if file.ready { "" } else { ", still starting" },
    );
    text.push_str(&node_table(file, &alive));
    if !alive(file.supervisor_pid) {
        // Its nodes got SIGTERM with it: nothing restarts or stops them now.
        let _ = write!(
            text,
            "\nThe `cluster up` process (pid {}) is gone: `cluster down` clears what it left, then `cluster up` starts the cluster again.",
            file.supervisor_pid
        );
    }
    text.trim_end().to_owned()
}

/// One line per node: region, id, client address, state.
fn node_table(file: &ClusterFile, alive: impl Fn(u32) -> bool) -> String {
    // By region, in the order regions first appear (a node added to a
    // region later is listed with it, not last).
    let mut regions: Vec<&str> = Vec::new();
    for node in &file.nodes {
        if !regions.contains(&node.region.as_str()) {
            regions.push(&node.region);
        }
    }
    let mut nodes: Vec<_> = file.nodes.iter().collect();
    nodes.sort_by_key(|n| regions.iter().position(|r| *r == n.region));
    let rows: Vec<[String; 4]> = nodes
        .into_iter()
        .map(|node| {
            let state = match (node.pid, &node.exit) {
                (Some(pid), _) if alive(pid) => format!("pid {pid}"),
                (Some(pid), _) => format!("pid {pid}, gone"),
                (None, Some(how)) => format!("down, {how}"),
                (None, None) => "down".to_owned(),
            };
            [
                node.region.clone(),
                node.id.clone(),
                node.client_addr.to_string(),
                state,
            ]
        })
        .collect();
    let header = [
        "REGION".to_owned(),
        "NODE".to_owned(),
        "CLIENTS".to_owned(),
        "PROCESS".to_owned(),
    ];
    let mut widths = [0; 4];
    for row in std::iter::once(&header).chain(&rows) {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let mut text = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let line = format!(
            "  {:<w0$}  {:<w1$}  {:<w2$}  {}",
            row[0],
            row[1],
            row[2],
            row[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        );
        let _ = writeln!(text, "{}", line.trim_end());
    }
    text
}

fn plural<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 {
        one
    } else {
        many
    }
}

#[cfg(test)]
mod tests {
    use super::super::file::{NodeEntry, CLUSTER_FILE_VERSION};
    use super::*;

    fn node(id: &str, region: &str, port: u16, pid: Option<u32>) -> NodeEntry {
        NodeEntry {
            id: id.into(),
            region: region.into(),
            pid,
            exit: pid
                .is_none()
                .then(|| "was killed by signal 9 (SIGKILL)".to_owned()),
            lives: 1,
            client_addr: format!("127.0.0.1:{port}").parse().unwrap(),
            peer_addr: format!("127.0.0.1:{}", port + 10).parse().unwrap(),
            log: format!("/lab/.meridian/logs/{id}.log").into(),
            cpu: None,
        }
    }

    fn file() -> ClusterFile {
        ClusterFile {
            version: CLUSTER_FILE_VERSION,
            cluster: "local".into(),
            topology: "/lab/regions/local.toml".into(),
            cert_dir: "/lab/.meridian/certs".into(),
            supervisor_pid: 10,
            ready: true,
            nodes: vec![
                node("us-east-1", "us-east", 7101, Some(11)),
                node("us-east-2", "us-east", 7102, Some(12)),
                node("eu-west-1", "eu-west", 7201, None),
            ],
        }
    }

    #[test]
    fn the_banner_says_what_runs_and_how_to_connect() {
        let text = banner(&file(), "meridian");
        assert!(
            text.starts_with(
                "Meridian cluster \"local\" is up: 3 nodes in 2 regions (us-east, eu-west).\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("  us-east  us-east-1  127.0.0.1:7101  pid 11\n"),
            "{text}"
        );
        assert!(text.contains("\n  meridian set hello world\n"), "{text}");
        assert!(
            text.contains("meridian --region eu-west get hello"),
            "{text}"
        );
        assert!(text.contains("meridian cluster kill us-east-2"), "{text}");
        assert!(text.contains("\n  meridian status "), "{text}");
        assert!(text.contains("\n  meridian demo "), "{text}");
        assert!(
            text.contains("\n  meridian cluster partition us-east "),
            "{text}"
        );
        assert!(text.contains("\n  meridian cluster heal "), "{text}");
        assert!(text.contains("State:    /lab/.meridian (certs/"), "{text}");
        assert!(
            text.ends_with("Press Ctrl-C to stop the cluster."),
            "{text}"
        );
    }

    #[test]
    fn the_banner_repeats_a_non_default_state_dir_in_its_examples() {
        let text = banner(&file(), "meridian --state-dir lab");
        assert!(
            text.contains("  meridian --state-dir lab get hello\n"),
            "{text}"
        );
    }

    #[test]
    fn status_shows_running_and_exited_nodes() {
        let text = status_text(&file(), |pid| pid == 11);
        assert!(
            text.starts_with(
                "Cluster \"local\" (/lab/regions/local.toml): 1 of 3 nodes running.\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("us-east-1  127.0.0.1:7101  pid 11\n"),
            "{text}"
        );
        assert!(
            text.contains("us-east-2  127.0.0.1:7102  pid 12, gone"),
            "{text}"
        );
        assert!(
            text.contains("eu-west-1  127.0.0.1:7201  down, was killed by signal 9 (SIGKILL)"),
            "{text}"
        );
    }

    #[test]
    fn status_says_when_the_cluster_up_process_is_gone() {
        let f = file();
        let supervisor = f.supervisor_pid;
        let text = status_text(&f, |pid| pid != supervisor);
        assert!(
            text.ends_with(&format!(
                "The `cluster up` process (pid {supervisor}) is gone: `cluster down` clears what it left, then `cluster up` starts the cluster again."
            )),
            "{text}"
        );
        assert!(!status_text(&f, |_| true).contains("is gone"));
    }

    #[test]
    fn a_node_added_later_is_listed_with_its_region() {
        let mut file = file();
        file.nodes
            .push(node("us-east-4", "us-east", 7104, Some(14)));
        let text = status_text(&file, |_| true);
        let ids: Vec<&str> = text
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1))
            .filter(|w| w.contains('-') && w.ends_with(char::is_numeric))
            .collect();
        assert_eq!(
            ids,
            ["us-east-1", "us-east-2", "us-east-4", "eu-west-1"],
            "{text}"
        );
    }
}
