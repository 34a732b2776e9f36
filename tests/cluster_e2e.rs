//! End to end through the `meridian` binary: `cluster up` starts real
//! nodes, data commands run with no flags at all (they find the cluster
//! through `.meridian/cluster.json`), a node is killed, and `cluster down`
//! stops everything. The harness is in `common/mod.rs`.

#![cfg(target_os = "linux")]

mod common;

use common::{topology, Lab};
use std::path::Path;
use std::time::{Duration, Instant};

/// Two regions (`east`, `west`) of three nodes each, N = 3, linked by the
/// WAN emulator with no added latency.
fn two_regions() -> String {
    topology(&["east", "west"], &[])
}

/// Polls `meridian ARGS` until it prints `expected`.
fn eventually(lab: &Lab, args: &[&str], expected: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut last = String::new();
    while Instant::now() < deadline {
        let output = lab.meridian(args);
        last = String::from_utf8_lossy(&output.stdout).into_owned();
        if last == expected {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("meridian {args:?} still prints {last:?}, not {expected:?}");
}

#[test]
fn data_commands_answer_like_redis_cli_against_a_local_cluster() {
    let lab = Lab::start(two_regions);
    assert_eq!(lab.ok(&["ping"]), "PONG\n");

    // Registers.
    assert_eq!(lab.ok(&["set", "hello", "world"]), "OK\n");
    assert_eq!(lab.ok(&["get", "hello"]), "\"world\"\n");
    assert_eq!(lab.ok(&["get", "missing"]), "(nil)\n");
    assert_eq!(lab.ok(&["set", "bin", "a\nb\u{7f}"]), "OK\n");
    assert_eq!(lab.ok(&["get", "bin"]), "\"a\\nb\\x7f\"\n");
    assert_eq!(lab.ok(&["type", "hello"]), "register\n");

    // Counters.
    assert_eq!(lab.ok(&["incr", "visits"]), "(integer) 1\n");
    assert_eq!(lab.ok(&["incrby", "visits", "10"]), "(integer) 11\n");
    assert_eq!(lab.ok(&["decr", "visits"]), "(integer) 10\n");
    assert_eq!(lab.ok(&["decrby", "visits", "-5"]), "(integer) 15\n");
    assert_eq!(lab.ok(&["get", "visits"]), "\"15\"\n");
    assert_eq!(lab.ok(&["type", "visits"]), "counter\n");

    // Sets, listed in byte order.
    assert_eq!(
        lab.ok(&["sadd", "colors", "red", "green", "blue"]),
        "(integer) 3\n"
    );
    assert_eq!(
        lab.ok(&["smembers", "colors"]),
        "1) \"blue\"\n2) \"green\"\n3) \"red\"\n"
    );
    assert_eq!(lab.ok(&["sismember", "colors", "red"]), "(integer) 1\n");
    assert_eq!(lab.ok(&["srem", "colors", "red"]), "(integer) 1\n");
    assert_eq!(lab.ok(&["scard", "colors"]), "(integer) 2\n");
    assert_eq!(lab.ok(&["smembers", "none"]), "(empty array)\n");
    assert_eq!(lab.ok(&["type", "colors"]), "set\n");

    // Maps.
    assert_eq!(lab.ok(&["hset", "user", "name", "ada"]), "(integer) 1\n");
    assert_eq!(lab.ok(&["hincrby", "user", "logins", "3"]), "(integer) 3\n");
    assert_eq!(lab.ok(&["hget", "user", "name"]), "\"ada\"\n");
    assert_eq!(lab.ok(&["hget", "user", "logins"]), "\"3\"\n");
    assert_eq!(
        lab.ok(&["hgetall", "user"]),
        "1) \"logins\"\n2) \"3\"\n3) \"name\"\n4) \"ada\"\n"
    );
    assert_eq!(lab.ok(&["hlen", "user"]), "(integer) 2\n");
    // Several fields go one command each: an error names the field it
    // stopped at and what was done before it.
    let stopped = lab.fails(&["hset", "user", "city", "paris", "logins", "x", "lang", "fr"]);
    assert_eq!(
        stopped,
        "(error) WRONGTYPE operation against a map field holding a counter, wanted a register\n\
         (at field \"logins\": 1 of the line's 3 fields was done before it, the rest not sent)\n"
    );
    assert_eq!(lab.ok(&["hget", "user", "city"]), "\"paris\"\n");
    assert_eq!(lab.ok(&["hget", "user", "lang"]), "(nil)\n");
    assert_eq!(lab.ok(&["hdel", "user", "city"]), "(integer) 1\n");
    assert_eq!(lab.ok(&["hdel", "user", "logins"]), "(integer) 1\n");
    assert_eq!(lab.ok(&["type", "user"]), "map\n");

    // Multi-value registers.
    assert_eq!(lab.ok(&["mvset", "doc", "v1"]), "OK\n");
    assert_eq!(lab.ok(&["mvget", "doc"]), "1) \"v1\"\n");

    // Expiry.
    assert_eq!(lab.ok(&["set", "session", "s", "--ex", "100"]), "OK\n");
    assert_eq!(lab.ok(&["ttl", "session"]), "(integer) 100\n");
    assert_eq!(lab.ok(&["persist", "session"]), "(integer) 1\n");
    assert_eq!(lab.ok(&["ttl", "session"]), "(integer) -1\n");
    assert_eq!(lab.ok(&["ttl", "missing"]), "(integer) -2\n");
    assert_eq!(lab.ok(&["type", "missing"]), "none\n");

    // Type errors are errors: exit 1, `(error) WRONGTYPE ...` on stderr.
    let wrong = lab.fails(&["incr", "hello"]);
    assert!(wrong.starts_with("(error) WRONGTYPE"), "{wrong}");

    // Acknowledgements are shown only when asked for.
    let verbose = lab.ok(&["-v", "set", "k", "v"]);
    assert!(
        verbose.starts_with("OK\n(acked by ") && verbose.ends_with(" replicas, 2 needed)\n"),
        "{verbose}"
    );
    assert_eq!(
        lab.ok(&["-v", "--consistency", "all", "set", "k", "v2"]),
        "OK\n(acked by 3 replicas, 3 needed)\n"
    );
    assert_eq!(lab.ok(&["--read", "quorum", "get", "k"]), "\"v2\"\n");

    // Deletion.
    assert_eq!(lab.ok(&["del", "bin"]), "(integer) 1\n");
    assert_eq!(lab.ok(&["get", "bin"]), "(nil)\n");

    // Another region sees the writes once they are shipped.
    eventually(&lab, &["--region", "west", "get", "hello"], "\"world\"\n");

    // With --seed the topology comes from a node, not from a file: the
    // first seed that answers (any node, of any region).
    let topology = lab.topology();
    let west_2 = topology.node("west-2").unwrap().client_addr.to_string();
    let nobody = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    assert_eq!(
        lab.ok(&["--seed", &nobody, "--seed", &west_2, "get", "hello"]),
        "\"world\"\n"
    );
    let unreachable = lab.fails(&["--seed", &nobody, "get", "hello"]);
    assert!(
        unreachable.contains("no seed answered with the topology") && unreachable.contains(&nobody),
        "{unreachable}"
    );
    for args in [
        &["--seed", &west_2, "--topology", "lab.toml", "get", "hello"][..],
        &["--seed", &west_2, "--topology", "lab.toml", "status"],
        &["--seed", &west_2, "cluster", "status"],
    ] {
        let refused = lab.meridian(args);
        assert_eq!(refused.status.code(), Some(2), "{args:?}");
        let why = String::from_utf8_lossy(&refused.stderr);
        assert!(
            why.contains("use one") || why.contains("--seed is for data commands"),
            "{why}"
        );
    }
    // A node's peer address is no seed, and the error says what to use.
    let peer = topology.node("west-2").unwrap().peer_addr.to_string();
    let wrong_port = lab.fails(&["--seed", &peer, "get", "hello"]);
    assert!(
        wrong_port.contains("clients use its client address"),
        "{wrong_port}"
    );
    // Without certificates there is nothing to present to a seed.
    let no_certs = lab.fails(&["--state-dir", "nowhere", "--seed", &west_2, "get", "hello"]);
    assert!(no_certs.contains("pass --cert-dir DIR"), "{no_certs}");
    // A seed may be a name.
    let by_name = west_2.replace("127.0.0.1", "localhost");
    assert_eq!(lab.ok(&["--seed", &by_name, "get", "hello"]), "\"world\"\n");
    let bad = lab.fails(&["--seed", "no-such-host.invalid:7101", "get", "hello"]);
    assert!(
        bad.contains("cannot resolve seed \"no-such-host.invalid:7101\""),
        "{bad}"
    );

    // A client certificate never issued: the error says how to issue it.
    let unknown = lab.fails(&["--client", "bob", "get", "hello"]);
    assert!(
        unknown.contains(
            "no certificate for client bob in .meridian/certs: issue one with \
             `meridian --cert-dir .meridian/certs certs client bob`"
        ),
        "{unknown}"
    );
    lab.ok(&["--cert-dir", ".meridian/certs", "certs", "client", "bob"]);
    assert_eq!(lab.ok(&["--client", "bob", "get", "hello"]), "\"world\"\n");

    // A second cluster in the same directory is refused.
    let second = lab.fails(&["cluster", "up", "lab.toml"]);
    assert!(second.contains("already running"), "{second}");
}

#[test]
fn a_killed_node_is_reported_not_restarted_and_down_stops_the_rest() {
    let mut lab = Lab::start(two_regions);
    let victim = lab.cluster_file().node("east-2").unwrap().pid.unwrap();

    assert_eq!(
        lab.ok(&["cluster", "kill", "east-2"]),
        format!("killed east-2 (pid {victim}) with SIGKILL\n")
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while lab.cluster_file().node("east-2").unwrap().pid.is_some() {
        assert!(Instant::now() < deadline, "the kill was never recorded");
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = lab.ok(&["cluster", "status"]);
    assert!(status.contains("5 of 6 nodes running"), "{status}");
    assert!(
        status.contains("down, was killed by signal 9 (SIGKILL)"),
        "{status}"
    );

    // Two of three replicas remain: quorum writes succeed, `all` cannot.
    assert_eq!(lab.ok(&["set", "after", "kill"]), "OK\n");
    assert_eq!(lab.ok(&["get", "after"]), "\"kill\"\n");
    let all = lab.fails(&["--consistency", "all", "set", "strict", "v"]);
    assert!(all.starts_with("(error) "), "{all}");

    let pids: Vec<u32> = lab
        .cluster_file()
        .nodes
        .iter()
        .filter_map(|n| n.pid)
        .collect();
    assert_eq!(pids.len(), 5);
    let down = lab.ok(&["cluster", "down"]);
    assert!(down.starts_with("cluster stopped"), "{down}");

    let output = lab.stop_supervisor();
    assert!(output.status.success(), "cluster up: {}", output.status);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "node east-2 (pid {victim}) was killed by signal 9 (SIGKILL); it is not restarted"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("meridian: cluster stopped"), "{stderr}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains(" set hello world"), "{stdout}");
    assert!(!Path::new(&lab.state_dir().join("cluster.json")).exists());
    for pid in pids {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "node process {pid} still runs"
        );
    }
}

/// The `Cpus_allowed_list` of process `pid` (as the kernel writes it).
fn cpus_allowed(pid: u32) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .unwrap();
    line.trim().to_owned()
}

#[test]
fn cluster_up_pins_each_node_to_a_cpu_in_turn() {
    let allowed: meridian::affinity::CpuList = cpus_allowed(std::process::id()).parse().unwrap();
    let lab = Lab::start_with(|| topology(&["east"], &[]), &["--pin-cpus"]);
    let file = lab.cluster_file();
    assert_eq!(file.nodes.len(), 3);
    for (i, node) in file.nodes.iter().enumerate() {
        let pinned = cpus_allowed(node.pid.unwrap());
        assert_eq!(pinned, allowed.nth_round(i).to_string(), "{}", node.id);
    }
    assert_eq!(lab.ok(&["set", "pinned", "yes"]), "OK\n");
    assert_eq!(lab.ok(&["get", "pinned"]), "\"yes\"\n");

    // A node given a CPU this machine does not let it use says so, naming
    // the ones it may use, and does not start.
    let absent = (0..meridian::affinity::CPUS_MAX)
        .find(|c| !allowed.cpus().contains(c))
        .unwrap()
        .to_string();
    let args = [
        "--topology",
        "lab.toml",
        "serve",
        "--node",
        "east-1",
        "--cpus",
        &absent,
    ];
    let refused = lab.fails(&args);
    assert!(
        refused.contains(&format!(
            "CPU {absent} is not available to this process (it may run on CPUs {allowed})"
        )),
        "{refused}"
    );
    let bench = lab.fails(&["bench", "--requests", "1", "--cpus", &absent]);
    assert!(
        bench.contains("is not available to this process"),
        "{bench}"
    );

    // A list after a space is read as the topology: the error says how to
    // write it.
    let spaced = lab.fails(&["--state-dir", "other", "cluster", "up", "--pin-cpus", "0-1"]);
    assert!(
        spaced.contains("no topology file 0-1: to pin the nodes to CPUs 0-1, write --pin-cpus=0-1"),
        "{spaced}"
    );
}

#[test]
fn reload_has_nodes_reread_their_topology_file_and_refuse_an_older_one() {
    let lab = Lab::start(|| topology(&["east"], &[]));
    assert_eq!(
        lab.ok(&["reload"]),
        "east-1: topology version 0\neast-2: topology version 0\neast-3: topology version 0\n"
    );

    // The nodes run the state directory's copy: a newer version of it is
    // taken by the node asked, and only by it.
    let copy = lab.state_dir().join("topology.toml");
    let text = std::fs::read_to_string(&copy).unwrap();
    assert!(!text.contains("version ="), "{text}");
    let newer = text.replacen("[cluster]\n", "[cluster]\nversion = 1\n", 1);
    std::fs::write(&copy, newer).unwrap();
    assert_eq!(
        lab.ok(&["reload", "east-2"]),
        "east-2: topology version 1\n"
    );
    let status = lab.ok(&["status"]);
    assert!(status.contains("behind"), "{status}");

    // An older file is refused, and said so, and the node keeps its version.
    std::fs::write(&copy, &text).unwrap();
    let output = lab.meridian(&["reload", "east-2"]);
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.starts_with("east-2: not reloaded: "), "{stdout}");
    assert!(stdout.contains("older"), "{stdout}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("1 of 1 nodes did not reload"), "{stderr}");

    let unknown = lab.fails(&["reload", "nowhere-9"]);
    assert!(unknown.contains("no node nowhere-9 in"), "{unknown}");
}

/// Client requests each node of `lab` has served, by node id.
fn requests_by_node(lab: &Lab) -> std::collections::BTreeMap<String, u64> {
    let status: serde_json::Value = serde_json::from_str(&lab.ok(&["status", "--json"])).unwrap();
    status["regions"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["nodes"].as_array().unwrap())
        .map(|n| {
            let id = n["id"].as_str().unwrap().to_owned();
            (id, n["requests"].as_u64().unwrap())
        })
        .collect()
}

#[test]
fn bench_home_sends_the_reads_to_the_chosen_node() {
    let lab = Lab::start(|| topology(&["east"], &[]));
    let before = requests_by_node(&lab);
    let args = [
        "bench",
        "--ops",
        "get",
        "--keys",
        "100",
        "--requests",
        "2000",
        "--home",
        "east-2",
    ];
    let report = lab.ok(&args);
    assert!(
        report.contains(
            "\nroute read-home (writes home while fewer than 16 are there), home east-2\n"
        ),
        "{report}"
    );
    let after = requests_by_node(&lab);
    let served = |id: &str| after[id] - before[id];
    // Every node holds every key (N = 3), so all 2,000 gets go to the home;
    // the others see only their share of the preload's 100 writes, pings
    // and status requests.
    assert!(served("east-2") >= 2000, "{before:?} → {after:?}");
    for other in ["east-1", "east-3"] {
        assert!(served(other) < 200, "{other}: {before:?} → {after:?}");
    }

    // With --route home the writes go there too.
    let before = requests_by_node(&lab);
    let args = [
        "bench",
        "--ops",
        "set",
        "--keys",
        "100",
        "--requests",
        "1000",
        "--route",
        "home",
        "--home",
        "east-3",
    ];
    let report = lab.ok(&args);
    assert!(report.contains("\nroute home, home east-3\n"), "{report}");
    let after = requests_by_node(&lab);
    assert!(
        after["east-3"] - before["east-3"] >= 1000,
        "{before:?} → {after:?}"
    );

    // A node of no region of the client, and --home where every request
    // goes by key, are refused.
    for connections in ["1", "3"] {
        let args = [
            "bench",
            "--requests",
            "1",
            "--connections",
            connections,
            "--home",
            "west-1",
        ];
        let unknown = lab.fails(&args);
        assert!(
            unknown.contains(
                "--home west-1 is not a node of region east (its nodes: east-1, east-2, east-3)"
            ),
            "{unknown}"
        );
    }
    // Options that contradict each other are a usage error (exit 2).
    let primary = lab.meridian(&[
        "bench",
        "--requests",
        "1",
        "--route",
        "primary",
        "--home",
        "east-1",
    ]);
    assert_eq!(primary.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&primary.stderr);
    assert!(
        stderr.contains("--home needs --route read-home or home"),
        "{stderr}"
    );
}

#[test]
fn a_restarted_node_resets_the_connections_of_its_earlier_life_at_once() {
    use meridian::client::{Client, ClientOptions, Command};
    use std::time::{Duration, Instant};
    let lab = Lab::start(|| common::topology(&["east"], &[]));
    let topology = lab.topology();
    let runtime = common::runtime();
    runtime.block_on(async {
        let mut options = ClientOptions::new(topology, "east", lab.state_dir().join("certs"));
        // Far longer than the bound below: an answer within the bound
        // cannot come from waiting the attempt out.
        options.request_timeout = Duration::from_secs(15);
        let client = Client::connect(options).await.unwrap();
        client.execute_on("east-1", Command::Ping).await.unwrap();
        lab.ok(&["cluster", "kill", "east-1"]);
        lab.ok(&["cluster", "restart", "east-1"]);
        // The client's connection is to the killed life and looks alive
        // (its idle timeout is far off). The new life answers its packets
        // with a stateless reset the client recognises, so the client
        // learns at once and dials the new life.
        let started = Instant::now();
        loop {
            if client.execute_on("east-1", Command::Ping).await.is_ok() {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "no answer from the restarted node in {:?}",
                started.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the first answer of the restarted node took {:?}",
            started.elapsed()
        );
    });
}

#[test]
fn a_node_restarted_after_a_peer_restarted_catches_up_at_once() {
    use meridian::client::{Client, ClientOptions, Command, ReadConsistency, Reply};
    use meridian::crdt::Bytes;
    let lab = Lab::start(|| common::topology(&["east"], &[]));
    let topology = lab.topology();
    let runtime = common::runtime();
    // east-1 starts a new life, and east-2 dies right after: east-1 may
    // never hear east-2's earlier life.
    lab.ok(&["cluster", "restart", "east-1"]);
    lab.ok(&["cluster", "kill", "east-2"]);
    runtime.block_on(async {
        let options = ClientOptions::new(topology, "east", lab.state_dir().join("certs"));
        let client = Client::connect(options).await.unwrap();
        // 10 KiB each: what the others send east-2 meanwhile passes the
        // 1 MiB a QUIC stream may have unacknowledged, so their writers
        // wait on the dead connection's flow control.
        let value = "v".repeat(10 << 10);
        for i in 0..300 {
            client
                .register(format!("r-{i}").as_str())
                .set(value.as_str())
                .await
                .unwrap();
        }
        // The others' connections to east-2's killed life go on sending
        // into the void, and QUIC backs their retransmissions off: after
        // ten seconds of that, the next packet (which the new life would
        // answer with a stateless reset) is seconds away.
        tokio::time::sleep(Duration::from_secs(10)).await;
        lab.ok(&["cluster", "restart", "east-2"]);
        // The new life's streams name a new life, so the others drop their
        // connections to the old one at once (east-1's may have heard no
        // life at all: east-2 was killed right after east-1 dialled it),
        // and what they owe it arrives well before the 20 s idle timeout
        // and before the stateless resets: 0.3-0.5 s when measured (1.0-1.1
        // s with both cores kept busy by other processes). With only the
        // resets (and with a check that missed writers blocked on flow
        // control) east-2 still lacked keys at the bound.
        let client = client.with_read(ReadConsistency::One);
        let started = Instant::now();
        loop {
            let keys = match client.execute_on("east-2", Command::Status).await {
                Ok(answer) => match answer.reply {
                    Reply::Status(status) => status.keys,
                    other => panic!("a status request answered {other:?}"),
                },
                Err(_) => 0, // not serving yet
            };
            if keys == 300 {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(4),
                "east-2 holds {keys} of 300 keys after {:?}\n{}",
                started.elapsed(),
                lab.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for i in 0..300 {
            let command = Command::Get {
                key: Bytes::from(format!("r-{i}").as_str()),
            };
            let answer = client.execute_on("east-2", command).await.unwrap();
            assert_eq!(answer.reply, Reply::Value(Bytes::from(value.as_str())));
        }
    });
    // And that is what ended them (a stateless reset could end one that
    // sent a packet in the moment before east-2's first stream arrived).
    let dropped = ["east-1", "east-3"].into_iter().filter(|node| {
        let log = std::fs::read_to_string(lab.state_dir().join(format!("logs/{node}.log")))
            .unwrap_or_default();
        log.lines()
            .any(|l| l.contains("the peer started anew; dialling it again") && l.contains("east-2"))
    });
    assert!(dropped.count() >= 1, "{}", lab.logs());
}

/// Sends `signal` to process `pid` with kill(1).
fn signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {signal} {pid}");
}

#[test]
fn requests_waiting_on_a_frozen_node_fail_over_once_it_is_quiet_for_the_silence_timeout() {
    use meridian::client::{
        Client, ClientError, ClientOptions, Routing, WriteConsistency, SILENCE_TIMEOUT_DEFAULT,
    };
    use meridian::placement::Placement;
    let lab = Lab::start(|| common::topology(&["east"], &[]));
    let topology = lab.topology();
    let frozen = lab
        .cluster_file()
        .node("east-1")
        .and_then(|n| n.pid)
        .unwrap();
    let placement = Placement::new(&topology);
    let east_1 = topology.node("east-1").unwrap().replica;
    let keys: Vec<String> = (0..)
        .map(|i| format!("frozen-{i}"))
        .filter(|k| placement.preference_list("east", k.as_bytes()).unwrap()[0] == east_1)
        .take(21)
        .collect();
    let runtime = common::runtime();
    runtime.block_on(async {
        let mut options =
            ClientOptions::new(topology.clone(), "east", lab.state_dir().join("certs"));
        // Far longer than the bound below: requests that fail over within
        // it did not wait their timeouts out (the silence timeout is 2 s).
        options.request_timeout = Duration::from_secs(20);
        options.routing = Routing::Primary;
        assert_eq!(options.silence_timeout, SILENCE_TIMEOUT_DEFAULT);
        let client = Client::connect(options).await.unwrap();
        // Every replica holds them before the first one is frozen.
        let everywhere = client.with_write(WriteConsistency::All);
        for key in &keys[1..] {
            everywhere.register(key.as_str()).set("v").await.unwrap();
        }

        // Stopped, east-1 keeps its sockets and connections but answers
        // nothing, as a node that hangs or whose machine froze.
        signal(frozen, "-STOP");
        let started = Instant::now();
        let mut calls = tokio::task::JoinSet::new();
        for key in &keys[1..11] {
            let (client, key) = (client.clone(), key.clone());
            calls.spawn(async move {
                let got = client.register(key.as_str()).get().await;
                assert_eq!(got.unwrap().as_deref(), Some(&b"v"[..]), "{key}");
            });
        }
        for key in &keys[11..] {
            let (client, key) = (client.clone(), key.clone());
            calls.spawn(async move {
                client.register(key.as_str()).set("w").await.unwrap();
            });
        }
        // An increment is never sent twice: it fails, naming the quiet
        // node, instead of waiting out its timeout.
        let counted = client.counter(keys[0].as_str()).incr(1).await;
        let quiet = started.elapsed();
        while let Some(done) = calls.join_next().await {
            done.unwrap();
        }
        let all = started.elapsed();

        // A live node that answers late is not taken for gone, however
        // short the silence timeout: a write at `all` coordinated by
        // east-2 waits its 1 s write timeout for the frozen east-1, while
        // the connection's keep-alive pings every 100 ms are acknowledged.
        let mut options =
            ClientOptions::new(topology.clone(), "east", lab.state_dir().join("certs"));
        options.request_timeout = Duration::from_secs(20);
        options.routing = Routing::Primary;
        options.silence_timeout = Duration::from_millis(400);
        let impatient = Client::connect(options).await.unwrap();
        let east_2 = topology.node("east-2").unwrap().replica;
        let slow = (0..)
            .map(|i| format!("slow-{i}"))
            .find(|k| placement.preference_list("east", k.as_bytes()).unwrap()[0] == east_2)
            .unwrap();
        let waited = impatient
            .with_write(WriteConsistency::All)
            .register(slow.as_str())
            .set("v")
            .await;
        assert_eq!(
            waited,
            Err(ClientError::QuorumNotReached {
                acked: 2,
                needed: 3
            })
        );
        assert_eq!(impatient.failovers(), 0);

        // A node that freezes after it acknowledged a request, while it
        // works on it, is found out too: the connection's keep-alive pings
        // go unanswered. The same write, and east-2 stopped 300 ms into it:
        // after the silence timeout it goes to east-3, which answers at its
        // own write timeout (1 s) that only it has the write.
        let east_2_pid = lab.cluster_file().node("east-2").and_then(|n| n.pid)
            .unwrap();
        let started = Instant::now();
        let slow_key = client
            .with_write(WriteConsistency::All)
            .register(slow.as_str());
        let write = slow_key.set("v2");
        let freeze = async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            signal(east_2_pid, "-STOP");
        };
        let (waited, ()) = tokio::join!(write, freeze);
        let mid_request = started.elapsed();
        signal(east_2_pid, "-CONT");
        signal(frozen, "-CONT");
        assert_eq!(
            waited,
            Err(ClientError::QuorumNotReached {
                acked: 1,
                needed: 3
            })
        );
        // Without the pings, the transport's own keep-alive (5 s) would
        // have come first.
        eprintln!("frozen: increment failed after {quiet:?}, all answered after {all:?}; frozen mid-request: {mid_request:?}");
        assert!(
            mid_request < Duration::from_millis(5_500),
            "the write took {mid_request:?}"
        );

        match counted {
            Err(ClientError::Connect(why)) => {
                assert!(why.contains("nothing heard for"), "{why}")
            }
            other => panic!("the increment on a frozen node gave {other:?}"),
        }
        assert!(
            quiet >= SILENCE_TIMEOUT_DEFAULT && quiet < Duration::from_secs(8),
            "the increment failed after {quiet:?}"
        );
        assert!(all < Duration::from_secs(8), "the requests took {all:?}");
        assert!(client.failovers() >= 20, "{} failovers", client.failovers());
    });
}
