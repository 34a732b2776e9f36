//! The local cluster supervisor (`meridian cluster up | down | kill | restart`),
//! driven through the library with stand-in nodes: small shell scripts
//! that say they listen and wait for SIGTERM, or fail in chosen ways. What
//! is checked is the supervision itself: readiness, `cluster.json`,
//! reporting a killed node without restarting it, stopping cleanly, and
//! refusing a second cluster in the same state directory.

#![cfg(target_os = "linux")]

use meridian::cli::cluster::{
    self, process, ClusterError, ClusterFile, Event, ListeningProbe, Stopped, UpOptions,
};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// A node that says it listens, then waits; exits 0 on SIGTERM.
const GOOD_NODE: &str =
    r#"trap 'exit 0' TERM; echo "fake node $3 listening"; while :; do sleep 0.1; done"#;

/// Two regions of one node each.
const TOPOLOGY: &str = r#"
[cluster]
name = "supervised"
replication_factor = 1

[[region]]
name = "left"

[[region.node]]
id = "left-1"
client_addr = "127.0.0.1:19101"
peer_addr = "127.0.0.1:19111"

[[region]]
name = "right"

[[region.node]]
id = "right-1"
client_addr = "127.0.0.1:19201"
peer_addr = "127.0.0.1:19211"
"#;

struct Lab {
    dir: tempfile::TempDir,
}

impl Lab {
    fn new() -> Lab {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("topology.toml"), TOPOLOGY).unwrap();
        Lab { dir }
    }

    fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Options whose nodes run `script` under `sh -c` (with `serve --node
    /// ID ...` as its arguments, so `$3` is the node id).
    fn options(&self, script: &str) -> UpOptions {
        let mut options = UpOptions::new(
            self.dir.path().join("topology.toml"),
            self.state_dir(),
            "/bin/sh",
        );
        options.program_args = vec!["-c".into(), script.into(), "sh".into()];
        options.ready_timeout_ms = 10_000;
        options.stop_grace_ms = 2_000;
        options.poll_interval_ms = 20;
        options
    }
}

/// Waits until `cluster.json` in `state_dir` satisfies `done`.
fn wait_for_file(state_dir: &Path, done: impl Fn(&ClusterFile) -> bool) -> ClusterFile {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(file) = ClusterFile::load(state_dir) {
            if done(&file) {
                return file;
            }
        }
        assert!(Instant::now() < deadline, "cluster.json never got there");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `cluster up` with `options` while another thread plays the user
/// (`user`, given the state directory); the cluster is asked to stop when
/// the user returns. Returns what the user returned and the events.
async fn up_while<T: Send + 'static>(
    options: &UpOptions,
    user: impl FnOnce(PathBuf) -> T + Send + 'static,
) -> (T, Vec<Event>) {
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let state_dir = options.state_dir.clone();
    let user = std::thread::spawn(move || {
        let result = user(state_dir);
        stop_tx.send(()).unwrap();
        result
    });
    let mut events = Vec::new();
    cluster::up(
        options,
        &mut ListeningProbe,
        async {
            let _ = stop_rx.await;
        },
        &mut |event| events.push(event),
    )
    .await
    .unwrap();
    (user.join().unwrap(), events)
}

#[tokio::test]
async fn up_starts_every_node_reports_a_killed_one_and_stops_the_rest_cleanly() {
    let lab = Lab::new();
    let options = lab.options(GOOD_NODE);
    let state_dir = lab.state_dir();

    // Another thread plays the user: waits for readiness, kills a node,
    // then asks the cluster to stop.
    let ((ready, survivor), events) = up_while(&options, move |state_dir| {
        let ready = wait_for_file(&state_dir, |f| f.ready);
        let pid = cluster::kill(&state_dir, "left-1").unwrap();
        assert_eq!(Some(pid), ready.node("left-1").unwrap().pid);
        let after = wait_for_file(&state_dir, |f| f.node("left-1").unwrap().pid.is_none());
        assert_eq!(
            after.node("left-1").unwrap().exit.as_deref(),
            Some("was killed by signal 9 (SIGKILL)")
        );
        // Killing it again says it is not running, and why.
        let again = cluster::kill(&state_dir, "left-1").unwrap_err();
        assert_eq!(
            again.to_string(),
            "node left-1 is not running (it was killed by signal 9 (SIGKILL))"
        );
        let unknown = cluster::kill(&state_dir, "nowhere-1").unwrap_err();
        assert!(
            matches!(unknown, ClusterError::UnknownNode { .. }),
            "{unknown}"
        );
        let survivor = after.node("right-1").unwrap().pid.unwrap();
        (ready, survivor)
    })
    .await;

    // cluster.json recorded both nodes with their addresses and logs.
    assert_eq!(ready.cluster, "supervised");
    assert_eq!(ready.supervisor_pid, std::process::id());
    let ids: Vec<&str> = ready.nodes.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(ids, ["left-1", "right-1"]);
    assert_eq!(
        ready.node("right-1").unwrap().client_addr,
        "127.0.0.1:19201".parse().unwrap()
    );
    let log = std::fs::read_to_string(&ready.node("right-1").unwrap().log).unwrap();
    assert_eq!(log.trim(), "fake node right-1 listening");

    // The killed node was reported once and not restarted; the other got
    // SIGTERM and stopped in time.
    let exited: Vec<&Event> = events
        .iter()
        .filter(|e| matches!(e, Event::NodeExited { .. }))
        .collect();
    assert_eq!(exited.len(), 1, "{events:?}");
    assert!(matches!(
        exited[0],
        Event::NodeExited { node, how, .. } if node == "left-1" && how == "was killed by signal 9 (SIGKILL)"
    ));
    assert!(events.contains(&Event::Stopping { nodes: 1 }), "{events:?}");
    assert!(!events
        .iter()
        .any(|e| matches!(e, Event::ForceKilled { .. })));
    assert_eq!(events.last(), Some(&Event::Stopped));
    assert!(!process::is_alive(survivor));
    assert!(!state_dir.join("cluster.json").exists());

    // Certificates for every node and the `cli` client were issued.
    for file in [
        "ca.cert.pem",
        "node-left-1.cert.pem",
        "node-right-1.key.pem",
        "client-cli.cert.pem",
    ] {
        assert!(state_dir.join("certs").join(file).exists(), "{file}");
    }
}

#[tokio::test]
async fn a_node_that_exits_while_starting_fails_up_with_its_log() {
    let lab = Lab::new();
    let script = r#"trap 'exit 0' TERM
if [ "$3" = right-1 ]; then echo "cannot bind 127.0.0.1:19201: address in use"; exit 3; fi
while :; do sleep 0.1; done"#;
    let mut events = Vec::new();
    let error = cluster::up(
        &lab.options(script),
        &mut ListeningProbe,
        std::future::pending(),
        &mut |event| events.push(event),
    )
    .await
    .unwrap_err();
    let ClusterError::ExitedDuringStartup {
        node,
        how,
        log_tail,
        ..
    } = &error
    else {
        panic!("unexpected error: {error}");
    };
    assert_eq!(node, "right-1");
    assert_eq!(how, "exited with code 3");
    assert!(log_tail.contains("address in use"), "{log_tail}");
    // The other node was stopped and the cluster file removed.
    assert_eq!(events.last(), Some(&Event::Stopped));
    assert!(!lab.state_dir().join("cluster.json").exists());
}

#[tokio::test]
async fn nodes_that_never_listen_fail_up_after_the_timeout() {
    let lab = Lab::new();
    let mut options = lab.options("trap 'exit 0' TERM; while :; do sleep 0.1; done");
    options.ready_timeout_ms = 300;
    let started = Instant::now();
    let error = cluster::up(
        &options,
        &mut ListeningProbe,
        std::future::pending(),
        &mut |_| {},
    )
    .await
    .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    match &error {
        ClusterError::NotReady {
            nodes, timeout_ms, ..
        } => {
            assert_eq!(nodes, &["left-1", "right-1"]);
            assert_eq!(*timeout_ms, 300);
        }
        other => panic!("unexpected error: {other}"),
    }
    assert!(error
        .to_string()
        .starts_with("nodes not ready after 300 ms: left-1, right-1"));
}

#[tokio::test]
async fn a_node_ignoring_sigterm_is_killed_after_the_grace_period() {
    let lab = Lab::new();
    let mut options = lab.options(r#"trap '' TERM; echo listening; while :; do sleep 0.1; done"#);
    options.stop_grace_ms = 300;
    let mut events = Vec::new();
    let mut ready = false;
    cluster::up(
        &options,
        &mut ListeningProbe,
        async {
            // Stop as soon as the cluster is ready.
            while !ClusterFile::load(&lab.state_dir()).is_ok_and(|f| f.ready) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            ready = true;
        },
        &mut |event| events.push(event),
    )
    .await
    .unwrap();
    assert!(ready);
    let killed: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            Event::ForceKilled { node, .. } => Some(node.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(killed, ["left-1", "right-1"]);
}

#[tokio::test]
async fn every_node_exiting_ends_the_cluster() {
    let lab = Lab::new();
    // Each node listens, then exits by itself a moment later.
    let options = lab.options("echo listening; sleep 0.5; exit 7");
    let mut events = Vec::new();
    let error = cluster::up(
        &options,
        &mut ListeningProbe,
        std::future::pending(),
        &mut |event| events.push(event),
    )
    .await
    .unwrap_err();
    assert!(matches!(error, ClusterError::AllExited), "{error}");
    let reported = events
        .iter()
        .filter(|e| matches!(e, Event::NodeExited { how, .. } if how == "exited with code 7"))
        .count();
    assert_eq!(reported, 2, "{events:?}");
    assert!(!lab.state_dir().join("cluster.json").exists());
}

#[tokio::test]
async fn a_second_cluster_in_the_same_state_dir_is_refused_while_the_first_runs() {
    let lab = Lab::new();
    std::fs::create_dir_all(lab.state_dir()).unwrap();
    // A process whose command line reads like `... cluster up`.
    let mut supervisor = Command::new("sh")
        .args(["-c", "sleep 30", "cluster", "up"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    stale_file(&lab.state_dir(), supervisor.id(), vec![]);
    let error = cluster::up(
        &lab.options(GOOD_NODE),
        &mut ListeningProbe,
        std::future::ready(()),
        &mut |_| {},
    )
    .await
    .unwrap_err();
    supervisor.kill().unwrap();
    supervisor.wait().unwrap();
    assert!(
        matches!(error, ClusterError::AlreadyRunning { pid, .. } if pid == supervisor.id()),
        "{error}"
    );
    // Its file was left alone.
    assert!(lab.state_dir().join("cluster.json").exists());

    // Once that supervisor is gone, its file is stale and replaced.
    cluster::up(
        &lab.options(GOOD_NODE),
        &mut ListeningProbe,
        std::future::ready(()),
        &mut |_| {},
    )
    .await
    .unwrap();
    assert!(!lab.state_dir().join("cluster.json").exists());
}

#[tokio::test]
async fn a_second_cluster_up_starting_at_the_same_time_is_refused_at_once() {
    let lab = Lab::new();
    let options = lab.options(GOOD_NODE);
    let (stop_first, first_stops) = tokio::sync::oneshot::channel::<()>();
    let (first_started, started) = tokio::sync::oneshot::channel::<()>();
    let mut first_started = Some(first_started);
    let mut on_first_event = |event: Event| {
        // The second comes while the first is still starting its nodes,
        // before it has written cluster.json.
        if matches!(event, Event::CertificatesReady { .. }) {
            if let Some(tx) = first_started.take() {
                let _ = tx.send(());
            }
        }
    };
    let mut probe = ListeningProbe;
    let first = cluster::up(
        &options,
        &mut probe,
        async {
            let _ = first_stops.await;
        },
        &mut on_first_event,
    );
    let second = async {
        started.await.unwrap();
        let second = cluster::up(
            &options,
            &mut ListeningProbe,
            std::future::ready(()),
            &mut |_| {},
        )
        .await;
        stop_first.send(()).unwrap();
        second
    };
    let (first, second) = tokio::join!(first, second);
    first.unwrap();
    let second = second.unwrap_err();
    assert!(
        matches!(
            second,
            ClusterError::StateDirInUse { .. } | ClusterError::AlreadyRunning { .. }
        ),
        "{second}"
    );
    // The lock went with the first: the directory can be used again.
    cluster::up(
        &options,
        &mut ListeningProbe,
        std::future::ready(()),
        &mut |_| {},
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_state_dir_that_is_a_file_is_refused_as_such() {
    let lab = Lab::new();
    std::fs::write(lab.state_dir(), "not a directory").unwrap();
    let error = cluster::up(
        &lab.options(GOOD_NODE),
        &mut ListeningProbe,
        std::future::ready(()),
        &mut |_| {},
    )
    .await
    .unwrap_err();
    assert!(
        error.to_string().contains("is a file, not a directory"),
        "{error}"
    );
}

#[test]
fn down_without_a_supervisor_stops_the_recorded_nodes_itself() {
    let lab = Lab::new();
    std::fs::create_dir_all(lab.state_dir()).unwrap();
    let polite = fake_serve("trap 'exit 0' TERM; while :; do sleep 0.1; done", "left-1");
    let stubborn = fake_serve("trap '' TERM; while :; do sleep 0.1; done", "right-1");
    std::thread::sleep(Duration::from_millis(100));
    let dead_supervisor = {
        let mut gone = Command::new("true").spawn().unwrap();
        let pid = gone.id();
        gone.wait().unwrap();
        pid
    };
    stale_file(
        &lab.state_dir(),
        dead_supervisor,
        vec![("left-1", polite.id()), ("right-1", stubborn.id())],
    );
    let mut children = [polite, stubborn];
    // Reap the children as they die, as their parent would.
    let reaper = std::thread::spawn(move || {
        for child in &mut children {
            child.wait().unwrap();
        }
    });
    // Long enough for the polite one to finish its `sleep` and exit on a
    // busy machine.
    let stopped = cluster::down(&lab.state_dir(), Duration::from_millis(2_000)).unwrap();
    assert_eq!(
        stopped,
        Stopped::Directly {
            terminated: vec!["left-1".into()],
            killed: vec!["right-1".into()],
        }
    );
    reaper.join().unwrap();
    assert!(!lab.state_dir().join("cluster.json").exists());
}

#[test]
fn down_and_kill_without_a_cluster_say_none_runs() {
    let lab = Lab::new();
    let down = cluster::down(&lab.state_dir(), Duration::from_millis(100)).unwrap_err();
    assert!(
        down.to_string().starts_with("no cluster is running in "),
        "{down}"
    );
    let kill = cluster::kill(&lab.state_dir(), "left-1").unwrap_err();
    assert!(
        kill.to_string().starts_with("no cluster is running in "),
        "{kill}"
    );
}

/// A process whose command line reads like `meridian serve --node <id>`.
fn fake_serve(script: &str, id: &str) -> Child {
    Command::new("sh")
        .args(["-c", script, "sh", "serve", "--node", id])
        .spawn()
        .unwrap()
}

/// Writes a `cluster.json` as a supervisor `pid` with `nodes` would.
fn stale_file(state_dir: &Path, supervisor_pid: u32, nodes: Vec<(&str, u32)>) {
    let file = ClusterFile {
        version: cluster::CLUSTER_FILE_VERSION,
        cluster: "supervised".into(),
        topology: "/nowhere/topology.toml".into(),
        cert_dir: state_dir.join("certs"),
        supervisor_pid,
        ready: true,
        nodes: nodes
            .into_iter()
            .enumerate()
            .map(|(i, (id, pid))| cluster::NodeEntry {
                id: id.into(),
                region: "left".into(),
                pid: Some(pid),
                exit: None,
                lives: 1,
                client_addr: format!("127.0.0.1:{}", 19_001 + i).parse().unwrap(),
                peer_addr: format!("127.0.0.1:{}", 19_501 + i).parse().unwrap(),
                log: state_dir.join(format!("logs/{id}.log")),
                cpu: None,
            })
            .collect(),
    };
    file.save(state_dir).unwrap();
}

/// A node that says it listens and logs its arguments.
const ARGS_NODE: &str =
    r#"trap 'exit 0' TERM; echo "listening with $*"; while :; do sleep 0.1; done"#;

#[tokio::test]
async fn several_regions_get_wan_relays_and_each_node_its_regions_route_file() {
    let lab = Lab::new();
    let options = lab.options(ARGS_NODE);
    let state_dir = lab.state_dir();
    let mut events = Vec::new();
    let mut checked = false;
    cluster::up(
        &options,
        &mut ListeningProbe,
        async {
            let file = loop {
                match ClusterFile::load(&state_dir) {
                    Ok(file) if file.ready => break file,
                    _ => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            };
            let state_dir = std::fs::canonicalize(&state_dir).unwrap();
            // Nodes of `left` dial `right-1` at a relay, not at its peer address.
            let routes_file = state_dir.join("routes").join("left.toml");
            let routes = meridian::wan::read_routes(&routes_file).unwrap();
            assert_eq!(routes.keys().collect::<Vec<_>>(), ["right-1"]);
            assert_ne!(routes["right-1"], "127.0.0.1:19211".parse().unwrap());
            let log = std::fs::read_to_string(&file.node("left-1").unwrap().log).unwrap();
            assert!(
                log.contains(&format!("--peer-routes {}", routes_file.display())),
                "{log}"
            );
            // The control file the relays read starts healed and follows
            // `partition` and `heal`.
            let control = cluster::partitions_path(&state_dir);
            assert_eq!(
                meridian::wan::PartitionState::load(&control).unwrap(),
                Default::default()
            );
            let links = cluster::partition(&state_dir, "left", None).unwrap();
            assert_eq!(links.len(), 1);
            assert!(links[0].cut);
            let cut = meridian::wan::PartitionState::load(&control).unwrap();
            assert!(cut.is_cut("left", "right"));
            let unknown = cluster::partition(&state_dir, "up", Some("left")).unwrap_err();
            assert_eq!(
                unknown.to_string(),
                "no region up in the running cluster (regions: left, right)"
            );
            let healed = cluster::heal(&state_dir).unwrap();
            assert_eq!(healed.mended, 1);
            assert!(!healed.links[0].cut);
            assert_eq!(cluster::heal(&state_dir).unwrap().mended, 0);
            // A control file that does not parse is what heal repairs.
            std::fs::write(&control, "isolated = [").unwrap();
            assert_eq!(cluster::heal(&state_dir).unwrap().mended, 0);
            assert!(!meridian::wan::PartitionState::load(&control)
                .unwrap()
                .is_cut("left", "right"));
            checked = true;
        },
        &mut |event| events.push(event),
    )
    .await
    .unwrap();
    assert!(checked);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::WanReady { relays: 2, .. })),
        "{events:?}"
    );
}

#[tokio::test]
async fn a_single_region_runs_no_relays() {
    let lab = Lab::new();
    std::fs::write(
        lab.dir.path().join("topology.toml"),
        TOPOLOGY
            .split("[[region]]\nname = \"right\"")
            .next()
            .unwrap(),
    )
    .unwrap();
    let options = lab.options(ARGS_NODE);
    let state_dir = lab.state_dir();
    let mut events = Vec::new();
    let mut log = String::new();
    cluster::up(
        &options,
        &mut ListeningProbe,
        async {
            let file = loop {
                match ClusterFile::load(&state_dir) {
                    Ok(file) if file.ready => break file,
                    _ => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            };
            log = std::fs::read_to_string(&file.node("left-1").unwrap().log).unwrap();
            let e = cluster::partition(&state_dir, "left", None).unwrap_err();
            assert!(matches!(e, ClusterError::NoLinks { .. }), "{e}");
        },
        &mut |event| events.push(event),
    )
    .await
    .unwrap();
    assert!(log.contains("serve --node left-1"), "{log}");
    assert!(!log.contains("--peer-routes"), "{log}");
    assert!(!events.iter().any(|e| matches!(e, Event::WanReady { .. })));
    assert!(!state_dir.join("routes").exists());
}

#[tokio::test]
async fn up_with_a_data_dir_gives_every_node_its_own_directory() {
    let lab = Lab::new();
    let args_dir = lab.dir.path().join("args");
    std::fs::create_dir_all(&args_dir).unwrap();
    // Each fake node records its arguments, then serves.
    let script = format!(r#"echo "$@" > '{}'/"$3"; {GOOD_NODE}"#, args_dir.display());
    let mut options = lab.options(&script);
    let data_dir = lab.dir.path().join("lab-data");
    options.data_dir = Some(data_dir.clone());
    let state_dir = lab.state_dir();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let user = std::thread::spawn(move || {
        wait_for_file(&state_dir, |f| f.ready);
        stop_tx.send(()).unwrap();
    });
    cluster::up(
        &options,
        &mut ListeningProbe,
        async {
            let _ = stop_rx.await;
        },
        &mut |_| {},
    )
    .await
    .unwrap();
    user.join().unwrap();
    for id in ["left-1", "right-1"] {
        let args = std::fs::read_to_string(args_dir.join(id)).unwrap();
        let want = format!("--data-dir {}", data_dir.join(id).display());
        assert!(args.contains(&want), "{id} ran with {args}");
    }
}

#[tokio::test]
async fn restart_reports_a_node_that_exits_at_once_without_waiting_out_the_timeout() {
    let lab = Lab::new();
    // Listens in its first life; in the next it fails at once.
    let marker = lab.dir.path().join("lived");
    let script = format!(
        r#"trap 'exit 0' TERM; if [ -e "{m}-$3" ]; then echo "cannot bind"; exit 3; fi; touch "{m}-$3"; echo "fake node $3 listening"; while :; do sleep 0.1; done"#,
        m = marker.display()
    );
    let options = lab.options(&script);
    let (elapsed, _) = up_while(&options, move |state_dir| {
        wait_for_file(&state_dir, |f| f.ready);
        let started = Instant::now();
        let error = cluster::restart(&state_dir, "left-1", Duration::from_secs(30)).unwrap_err();
        match &error {
            ClusterError::ExitedDuringStartup {
                node,
                how,
                log_tail,
                ..
            } => {
                assert_eq!(node, "left-1");
                assert_eq!(how, "exited with code 3");
                assert!(log_tail.contains("cannot bind"), "{log_tail}");
            }
            other => panic!("unexpected error {other}"),
        }
        started.elapsed()
    })
    .await;
    assert!(elapsed < Duration::from_secs(20), "took {elapsed:?}");
}

#[tokio::test]
async fn restart_starts_a_killed_node_again_and_replaces_a_running_one() {
    let lab = Lab::new();
    let options = lab.options(GOOD_NODE);
    let ((left, right), events) = up_while(&options, move |state_dir| {
        let ready = wait_for_file(&state_dir, |f| f.ready);
        let first = ready.node("left-1").unwrap().pid.unwrap();
        cluster::kill(&state_dir, "left-1").unwrap();
        wait_for_file(&state_dir, |f| f.node("left-1").unwrap().pid.is_none());
        let timeout = Duration::from_secs(10);
        let second = cluster::restart(&state_dir, "left-1", timeout).unwrap();
        assert_ne!(second, first);
        assert!(process::is_alive(second));
        let file = ClusterFile::load(&state_dir).unwrap();
        let entry = file.node("left-1").unwrap();
        assert_eq!((entry.pid, entry.exit.as_deref()), (Some(second), None));
        // Its log goes on from its first life.
        let log = std::fs::read_to_string(&entry.log).unwrap();
        assert_eq!(
            log.matches("fake node left-1 listening").count(),
            2,
            "{log}"
        );
        // A running node is stopped first, then started again.
        let old = file.node("right-1").unwrap().pid.unwrap();
        let new = cluster::restart(&state_dir, "right-1", timeout).unwrap();
        assert_ne!(new, old);
        let deadline = Instant::now() + timeout;
        while process::is_alive(old) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!process::is_alive(old));
        let unknown = cluster::restart(&state_dir, "nowhere-1", timeout).unwrap_err();
        assert!(
            matches!(unknown, ClusterError::UnknownNode { .. }),
            "{unknown}"
        );
        (second, new)
    })
    .await;
    // Both restarted nodes were stopped with the cluster.
    assert!(!process::is_alive(left));
    assert!(!process::is_alive(right));
    assert_eq!(events.last(), Some(&Event::Stopped));
}
