//! The local geo lab end to end: `meridian cluster up` with three regions
//! whose traffic crosses the WAN emulator, real node processes and real
//! QUIC; `cluster partition` and `heal` from another process; `status` and
//! `demo` through the binary. The harness is in `common/mod.rs`.
//!
//! Link latencies are small (20–40 ms RTT) so the tests stay short.

#![cfg(target_os = "linux")]

mod common;

use common::{topology, Lab};
use meridian::client::{Client, ClientError, ClientOptions, Command, FieldValue, Kind, Reply, Ttl};
use meridian::topology::{derived_replica_id, Topology};
use std::time::{Duration, Instant};

/// How long replicas get to converge after a heal.
const CONVERGENCE_TIMEOUT: Duration = Duration::from_secs(30);

/// Regions `east`, `west` and `south` of three nodes each (N = 3, so every
/// node holds every key), 20–40 ms apart.
fn three_regions() -> String {
    topology(
        &["east", "west", "south"],
        &[
            ("east", "west", 20),
            ("east", "south", 40),
            ("west", "south", 30),
        ],
    )
}

fn lab_topology(lab: &Lab) -> Topology {
    Topology::load(lab.dir.path().join("lab.toml")).unwrap()
}

async fn client(lab: &Lab, region: &str) -> Client {
    let options = ClientOptions::new(lab_topology(lab), region, lab.state_dir().join("certs"));
    Client::connect(options).await.unwrap()
}

/// Runs `meridian ARGS` off the async runtime's threads.
fn cli(lab: &Lab, args: &[&str]) -> String {
    tokio::task::block_in_place(|| lab.ok(args))
}

fn bytes(s: &str) -> meridian::client::Bytes {
    s.into()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// One field value as the assertions spell it.
fn field(v: &FieldValue) -> String {
    match v {
        FieldValue::Register(b) => format!("register {:?}", text(b)),
        FieldValue::Counter(n) => format!("counter {n}"),
        FieldValue::Set(members) => format!(
            "set {:?}",
            members.iter().map(|m| text(m)).collect::<Vec<_>>()
        ),
        FieldValue::MvRegister(values) => {
            format!(
                "mvregister {:?}",
                values.iter().map(|m| text(m)).collect::<Vec<_>>()
            )
        }
        FieldValue::Map(fields) => format!(
            "map {{{}}}",
            fields
                .iter()
                .map(|(f, v)| format!("{}: {}", text(f), field(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// What node `node` holds at `key`, as `<type> <value>; <expiry>`: read
/// from that node alone (read consistency one). Deadlines are rounded to
/// 50 s so that nodes read a few seconds apart agree.
async fn observe(client: &Client, node: &str, key: &str) -> String {
    let ask = |command: Command| async move {
        client
            .execute_on(node, command)
            .await
            .map(|answer| answer.reply)
    };
    let key_b = bytes(key);
    let described: Result<String, ClientError> = async {
        let kind = match ask(Command::Type { key: key_b.clone() }).await? {
            Reply::Type(kind) => kind,
            other => return Ok(format!("unexpected {other:?}")),
        };
        let value = match kind {
            None => return Ok("none".to_owned()),
            Some(Kind::Register) => match ask(Command::Get { key: key_b.clone() }).await? {
                Reply::Value(v) => field(&FieldValue::Register(v)),
                other => format!("unexpected {other:?}"),
            },
            Some(Kind::Counter) => match ask(Command::CounterGet { key: key_b.clone() }).await? {
                Reply::Int(n) => field(&FieldValue::Counter(n)),
                other => format!("unexpected {other:?}"),
            },
            Some(Kind::Set) => match ask(Command::SMembers { key: key_b.clone() }).await? {
                Reply::Values(v) => field(&FieldValue::Set(v)),
                other => format!("unexpected {other:?}"),
            },
            Some(Kind::MvRegister) => match ask(Command::MvGet { key: key_b.clone() }).await? {
                Reply::Values(v) => field(&FieldValue::MvRegister(v)),
                other => format!("unexpected {other:?}"),
            },
            Some(Kind::Map) => match ask(Command::HGetAll { key: key_b.clone() }).await? {
                Reply::Fields(f) => field(&FieldValue::Map(f)),
                other => format!("unexpected {other:?}"),
            },
        };
        let expiry = match ask(Command::Ttl { key: key_b.clone() }).await? {
            Reply::Ttl(Ttl::Persistent) => "persistent".to_owned(),
            Reply::Ttl(Ttl::Ms(ms)) => format!("expires in ~{} s", (ms + 25_000) / 50_000 * 50),
            Reply::Ttl(Ttl::Missing) => "gone".to_owned(),
            other => format!("unexpected {other:?}"),
        };
        Ok(format!("{value}; {expiry}"))
    }
    .await;
    described.unwrap_or_else(|e| format!("error: {e}"))
}

/// Every node's view of every key, `(key, node, view)`.
async fn observe_all(
    client: &Client,
    nodes: &[String],
    keys: &[&str],
) -> Vec<(String, String, String)> {
    let mut views = Vec::new();
    for key in keys {
        for node in nodes {
            views.push((
                key.to_string(),
                node.clone(),
                observe(client, node, key).await,
            ));
        }
    }
    views
}

/// Waits until every node's view of every key is the expected one; the
/// views that still differ when time runs out.
async fn converge(
    client: &Client,
    nodes: &[String],
    expected: &[(&str, &str)],
    timeout: Duration,
) -> (Duration, Vec<(String, String, String)>) {
    let start = Instant::now();
    let keys: Vec<&str> = expected.iter().map(|(k, _)| *k).collect();
    loop {
        let views = observe_all(client, nodes, &keys).await;
        let wrong: Vec<_> = views
            .into_iter()
            .filter(|(key, _, view)| {
                expected.iter().find(|(k, _)| k == key).map(|(_, v)| *v) != Some(view.as_str())
            })
            .collect();
        if wrong.is_empty() || start.elapsed() > timeout {
            return (start.elapsed(), wrong);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Runs `commands` in order through `client`; each command with its result.
async fn write_all(
    client: &Client,
    commands: Vec<Command>,
) -> Vec<(Command, Result<Reply, ClientError>)> {
    let mut results = Vec::new();
    for command in commands {
        let result = client.execute(command.clone()).await.map(|a| a.reply);
        results.push((command, result));
    }
    results
}

fn set(key: &str, value: &str) -> Command {
    Command::Set {
        key: bytes(key),
        value: bytes(value),
        ttl_ms: None,
    }
}

fn incr(key: &str, by: i64) -> Command {
    Command::IncrBy {
        key: bytes(key),
        by,
    }
}

fn sadd(key: &str, member: &str) -> Command {
    Command::SAdd {
        key: bytes(key),
        members: vec![bytes(member)],
    }
}

fn srem(key: &str, member: &str) -> Command {
    Command::SRem {
        key: bytes(key),
        members: vec![bytes(member)],
    }
}

fn hset(key: &str, f: &str, value: &str) -> Command {
    Command::HSet {
        key: bytes(key),
        field: bytes(f),
        value: bytes(value),
    }
}

fn hdel(key: &str, f: &str) -> Command {
    Command::HDel {
        key: bytes(key),
        fields: vec![bytes(f)],
    }
}

fn hincrby(key: &str, f: &str, by: i64) -> Command {
    Command::HIncrBy {
        key: bytes(key),
        field: bytes(f),
        by,
    }
}

fn expire(key: &str, secs: u64) -> Command {
    Command::Expire {
        key: bytes(key),
        ttl_ms: secs * 1_000,
    }
}

/// The sum of the acknowledged increments in `results` to counter `key`.
fn acknowledged_increments(results: &[(Command, Result<Reply, ClientError>)], key: &str) -> i64 {
    results
        .iter()
        .filter_map(|(command, result)| match (command, result) {
            (Command::IncrBy { key: k, by }, Ok(_)) if k.as_ref() == key.as_bytes() => Some(*by),
            _ => None,
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_cut_off_keeps_accepting_writes_and_all_nine_nodes_converge_by_the_contract() {
    let lab = Lab::start(three_regions);
    let east = client(&lab, "east").await;
    let west = client(&lab, "west").await;
    let nodes: Vec<String> = lab_topology(&lab)
        .nodes()
        .map(|(_, n)| n.id.clone())
        .collect();
    assert_eq!(nodes.len(), 9);

    // A common starting point, written in east and seen by every node.
    let before = write_all(
        &east,
        vec![
            set("reg:deleted-and-set", "v0"),
            set("reg:deleted", "v0"),
            incr("ctr", 100),
            sadd("set", "a"),
            sadd("set", "b"),
            sadd("set", "c"),
            hset("map", "name", "v0"),
            hset("map", "gone", "v0"),
            hincrby("map", "hits", 5),
            set("exp:longest", "v"),
            Command::Set {
                key: bytes("exp:persisted"),
                value: bytes("v"),
                ttl_ms: Some(300_000),
            },
        ],
    )
    .await;
    for (command, result) in &before {
        assert!(result.is_ok(), "{command:?}: {result:?}");
    }
    let start = [
        ("reg:deleted-and-set", "register \"v0\"; persistent"),
        ("reg:deleted", "register \"v0\"; persistent"),
        ("ctr", "counter 100; persistent"),
        ("set", "set [\"a\", \"b\", \"c\"]; persistent"),
        (
            "map",
            "map {gone: register \"v0\", hits: counter 5, name: register \"v0\"}; persistent",
        ),
        ("exp:longest", "register \"v\"; persistent"),
        ("exp:persisted", "register \"v\"; expires in ~300 s"),
    ];
    let (_, wrong) = converge(&east, &nodes, &start, CONVERGENCE_TIMEOUT).await;
    assert!(wrong.is_empty(), "before the cut: {wrong:#?}");

    // Cut east off from west and south.
    let cut = cli(&lab, &["cluster", "partition", "east"]);
    assert!(cut.starts_with("2 of 3 links cut"), "{cut}");
    tokio::time::sleep(Duration::from_millis(400)).await;

    // Both sides write at once: conflicting updates of every kind.
    let east_writes = vec![
        Command::Del {
            key: bytes("reg:deleted-and-set"),
        },
        Command::Del {
            key: bytes("reg:deleted"),
        },
        incr("ctr", 7),
        incr("ctr", -3),
        incr("ctr", 11),
        srem("set", "a"),
        srem("set", "b"),
        sadd("set", "c"),
        sadd("set", "d"),
        hset("map", "name", "east"),
        hincrby("map", "hits", 3),
        hincrby("map", "hits", 3),
        expire("exp:longest", 100),
        expire("exp:persisted", 100),
        set("type:set-vs-register", "r"),
        incr("type:map-vs-counter", 1),
        Command::MvSet {
            key: bytes("type:counter-vs-mv"),
            value: bytes("x"),
        },
        set("type:mv-vs-register", "r"),
        incr("ctr", -20),
        incr("ctr", 2),
    ];
    let west_writes = vec![
        set("reg:deleted-and-set", "west"),
        incr("ctr", 5),
        incr("ctr", -1),
        sadd("set", "a"),
        srem("set", "c"),
        sadd("set", "e"),
        hdel("map", "name"),
        hdel("map", "gone"),
        hincrby("map", "hits", 4),
        hincrby("map", "hits", -1),
        expire("exp:longest", 200),
        Command::Persist {
            key: bytes("exp:persisted"),
        },
        sadd("type:set-vs-register", "m"),
        hset("type:map-vs-counter", "f", "v"),
        incr("type:counter-vs-mv", 7),
        Command::MvSet {
            key: bytes("type:mv-vs-register"),
            value: bytes("x"),
        },
        incr("ctr", 30),
        incr("ctr", -4),
    ];
    let (east_results, west_results) =
        tokio::join!(write_all(&east, east_writes), write_all(&west, west_writes));
    // A last-writer-wins register written in east, then in west.
    let east_lww = write_all(&east, vec![set("reg:last-writer", "east")]).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let west_lww = write_all(&west, vec![set("reg:last-writer", "west")]).await;
    for (command, result) in east_results
        .iter()
        .chain(&west_results)
        .chain(&east_lww)
        .chain(&west_lww)
    {
        assert!(
            result.is_ok(),
            "a write failed during the partition: {command:?}: {result:?}"
        );
    }

    // While cut, the sides disagree: each reads its own writes only.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        observe(&east, "east-1", "reg:last-writer").await,
        "register \"east\"; persistent"
    );
    assert_eq!(
        observe(&west, "south-2", "reg:last-writer").await,
        "register \"west\"; persistent"
    );
    assert_eq!(
        observe(&west, "west-3", "reg:deleted").await,
        "register \"v0\"; persistent"
    );

    let healed = cli(&lab, &["cluster", "heal"]);
    assert!(healed.starts_with("Mended 2 of 3 links"), "{healed}");

    let counter = 100
        + acknowledged_increments(&east_results, "ctr")
        + acknowledged_increments(&west_results, "ctr");
    assert_eq!(counter, 100 + 7 - 3 + 11 - 20 + 2 + 5 - 1 + 30 - 4);
    let counter_view = format!("counter {counter}; persistent");
    let expected = [
        // A delete removes only what it observed: west's concurrent set survives.
        ("reg:deleted-and-set", "register \"west\"; persistent"),
        ("reg:deleted", "none"),
        // Last writer wins by HLC: west wrote 50 ms after east.
        ("reg:last-writer", "register \"west\"; persistent"),
        // Every acknowledged increment and decrement counts.
        ("ctr", counter_view.as_str()),
        // Add wins: `a` removed in east and re-added in west stays, `c`
        // removed in west and re-added in east stays; `b` is gone.
        ("set", "set [\"a\", \"c\", \"d\", \"e\"]; persistent"),
        // An update wins over a concurrent field removal; counters add up.
        (
            "map",
            "map {hits: counter 14, name: register \"east\"}; persistent",
        ),
        // The longest deadline wins; persist beats every deadline.
        ("exp:longest", "register \"v\"; expires in ~200 s"),
        ("exp:persisted", "register \"v\"; persistent"),
        // Type precedence: map > set > counter > mvregister > register.
        ("type:set-vs-register", "set [\"m\"]; persistent"),
        ("type:map-vs-counter", "map {f: register \"v\"}; persistent"),
        ("type:counter-vs-mv", "counter 7; persistent"),
        ("type:mv-vs-register", "mvregister [\"x\"]; persistent"),
    ];
    let (took, wrong) = converge(&east, &nodes, &expected, CONVERGENCE_TIMEOUT).await;
    assert!(
        wrong.is_empty(),
        "after {took:?}, these nodes hold other values: {wrong:#?}\n{}",
        lab.logs()
    );
}

/// `meridian status --json`, parsed.
fn status_json(lab: &Lab) -> serde_json::Value {
    serde_json::from_str(&cli(lab, &["status", "--json"])).unwrap()
}

/// The backlog from region `from` to region `to`, summed over `from`'s nodes.
fn backlog(status: &serde_json::Value, from: &str, to: &str) -> u64 {
    let region = status["regions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == from)
        .unwrap();
    let link = region["replication"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["region"] == to)
        .unwrap();
    link["backlog_deltas"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_and_heal_show_in_status_as_a_backlog_that_grows_then_drains() {
    let lab = Lab::start(three_regions);
    let east = client(&lab, "east").await;

    let status = status_json(&lab);
    assert_eq!(status["nodes_up"], 9, "{status:#}");
    assert_eq!(backlog(&status, "east", "west"), 0);

    // A bad region is refused and changes nothing.
    let refused = tokio::task::block_in_place(|| lab.fails(&["cluster", "partition", "mars"]));
    assert!(
        refused.contains("no region mars in the running cluster (regions: east, west, south)"),
        "{refused}"
    );

    let cut = cli(&lab, &["cluster", "partition", "east"]);
    assert_eq!(
        cut,
        "2 of 3 links cut (the relays apply changes within 100 ms):\n\
         \x20 east <-> west   cut\n\
         \x20 east <-> south  cut\n\
         \x20 west <-> south  up (30 ms RTT)\n"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;

    for i in 0..100 {
        east.register(format!("k{i}").as_str())
            .set("v")
            .await
            .unwrap();
    }
    let first = status_json(&lab);
    assert_eq!(backlog(&first, "east", "west"), 100, "{first:#}");
    assert_eq!(backlog(&first, "east", "south"), 100, "{first:#}");
    for i in 100..250 {
        east.register(format!("k{i}").as_str())
            .set("v")
            .await
            .unwrap();
    }
    let second = status_json(&lab);
    assert_eq!(backlog(&second, "east", "west"), 250, "{second:#}");
    let lag_ms = second["regions"][0]["replication"][0]["lag_ms"]
        .as_u64()
        .unwrap();
    assert!(
        lag_ms >= 100,
        "the oldest unacknowledged write is {lag_ms} ms old"
    );
    // West's own link to south is unaffected.
    assert_eq!(backlog(&second, "west", "south"), 0);

    let text = cli(&lab, &["status"]);
    assert!(
        text.starts_with("Cluster \"lab\": 9 of 9 nodes up.\n"),
        "{text}"
    );
    assert!(text.contains("250 deltas"), "{text}");

    let healed = cli(&lab, &["cluster", "heal"]);
    assert!(healed.starts_with("Mended 2 of 3 links"), "{healed}");
    let deadline = Instant::now() + CONVERGENCE_TIMEOUT;
    loop {
        let status = status_json(&lab);
        let total: u64 = ["west", "south"]
            .iter()
            .map(|to| backlog(&status, "east", to))
            .sum();
        if total == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "backlog still {total} after the heal: {status:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let west = client(&lab, "west").await;
    assert_eq!(
        west.register("k249").get().await.unwrap().as_deref(),
        Some(&b"v"[..])
    );

    // One link alone can be cut, too.
    let one = cli(&lab, &["cluster", "partition", "west", "south"]);
    assert!(one.starts_with("1 of 3 links cut"), "{one}");
    assert!(one.contains("west <-> south  cut"), "{one}");
    cli(&lab, &["cluster", "heal"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_shows_the_regions_diverge_under_a_partition_and_converge_after_heal() {
    let lab = Lab::start(three_regions);
    let output = cli(&lab, &["demo"]);
    let converged = output
        .split("6. Every region now reads the same values:")
        .nth(1)
        .unwrap_or_else(|| panic!("{output}"));
    assert!(
        output.contains("2. meridian cluster partition east"),
        "{output}"
    );
    assert!(converged.contains(":visits  18\n"), "{output}");
    assert!(converged.contains(":tags    apple cherry\n"), "{output}");
    assert!(
        converged.contains(":motd    \"written in west\"\n"),
        "{output}"
    );
    // It leaves the links healed.
    let links = cli(&lab, &["cluster", "partition", "west", "south"]);
    assert!(links.starts_with("1 of 3 links cut"), "{links}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_added_to_a_running_lab_is_cut_off_by_a_partition_like_the_others() {
    let lab = Lab::start(|| topology(&["east", "west"], &[("east", "west", 20)]));
    // An id whose replica id sorts first in east: the new node is then
    // the gateway every west node ships east's deltas to.
    let smallest = ["east-1", "east-2", "east-3"]
        .map(derived_replica_id)
        .into_iter()
        .min()
        .unwrap();
    let id = (0..)
        .map(|i| format!("east-x{i}"))
        .find(|id| derived_replica_id(id) < smallest)
        .unwrap();
    let added = cli(
        &lab,
        &[
            "cluster",
            "add-node",
            "east",
            "--id",
            &id,
            "--timeout",
            "60",
        ],
    );
    assert!(
        added.contains(&format!("starting {id} in east")) && added.contains("rebalance complete"),
        "{added}"
    );
    let running = Topology::load(lab.cluster_file().topology).unwrap();
    let certs = lab.state_dir().join("certs");
    let west = Client::connect(ClientOptions::new(running.clone(), "west", &certs))
        .await
        .unwrap();
    let east = Client::connect(ClientOptions::new(running, "east", &certs))
        .await
        .unwrap();

    cli(&lab, &["cluster", "partition", "east"]);
    // The relays read the control file every 100 ms.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let keys: Vec<String> = (0..60).map(|i| format!("cut-{i}")).collect();
    for key in &keys {
        west.register(key.as_str()).set("west").await.unwrap();
    }
    // West ships its deltas to the gateway in batches every 10 ms: they
    // would reach it within a round trip or two if west dialled it directly.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    for id in ["east-1", "east-2", "east-3", id.as_str()] {
        for key in &keys {
            let get = Command::Get {
                key: key.as_str().into(),
            };
            let answer = east.execute_on(id, get).await.unwrap();
            assert_eq!(
                answer.reply,
                Reply::Nil,
                "{key} crossed the partition to {id}"
            );
        }
    }

    cli(&lab, &["cluster", "heal"]);
    let deadline = Instant::now() + CONVERGENCE_TIMEOUT;
    for key in &keys {
        loop {
            let get = Command::Get {
                key: key.as_str().into(),
            };
            let answer = east.execute_on(&id, get).await.unwrap();
            if answer.reply == Reply::Value(bytes("west")) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{key} never reached east: {:?}",
                answer.reply
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Regions `east` and `west` of three nodes each, 20 ms apart, with small
/// limits: one answer carries at most 15 KiB of a set or map.
fn two_small_regions() -> String {
    let mut text = topology(&["east", "west"], &[("east", "west", 20)]);
    text.push_str(
        "\n[limits]\nkey_bytes_max = 256\nvalue_bytes_max = 2048\nframe_bytes_max = 16384\n",
    );
    text
}

/// Adds 1000-byte members named `prefix` and a number to set `key` (or
/// fields to map `key`) until the region refuses the next one; how many.
async fn fill(client: &Client, key: &str, prefix: &str, map: bool) -> usize {
    for i in 0.. {
        let item = format!("{prefix}{i:04}{}", "-".repeat(995));
        let added = if map {
            client.map(key).put(item.as_str(), "v").await.map(|_| ())
        } else {
            client.set(key).add(item.as_str()).await.map(|_| ())
        };
        match added {
            Ok(()) => assert!(i < 100, "never refused"),
            Err(ClientError::TooLarge {
                what: "the key's value",
                ..
            }) => return i,
            Err(e) => panic!("adding to {key}: {e}"),
        }
    }
    unreachable!()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_set_or_map_merged_past_one_answer_by_two_regions_is_read_in_pages() {
    let lab = Lab::start(two_small_regions);
    let east = client(&lab, "east").await;
    let west = client(&lab, "west").await;

    // Cut apart, each region fills the same set and map to the limit.
    let cut = cli(&lab, &["cluster", "partition", "east"]);
    assert!(cut.starts_with("1 of 1 link cut"), "{cut}");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let in_east = fill(&east, "big", "e", false).await;
    let in_west = fill(&west, "big", "w", false).await;
    let fields_east = fill(&east, "big-map", "e", true).await;
    let fields_west = fill(&west, "big-map", "w", true).await;
    assert!(
        in_east > 5 && in_west > 5,
        "{in_east} and {in_west} members"
    );
    cli(&lab, &["cluster", "heal"]);

    // Merged, the set holds both sides' members: more than one answer
    // carries.
    let total = in_east + in_west;
    let deadline = Instant::now() + CONVERGENCE_TIMEOUT;
    for client in [&east, &west] {
        let quorum = client.with_read(meridian::client::ReadConsistency::Quorum);
        loop {
            let len = quorum.set("big").len().await.unwrap();
            let fields = quorum.map("big-map").len().await.unwrap();
            if len == total && fields == fields_east + fields_west {
                break;
            }
            assert!(Instant::now() < deadline, "{len} of {total} members");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let whole = east.execute(Command::SMembers { key: bytes("big") }).await;
    assert!(
        matches!(
            whole,
            Err(ClientError::TooLarge {
                what: "the key's value",
                ..
            })
        ),
        "{whole:?}"
    );

    // The SDK reads it page by page instead, in either region.
    for client in [&east, &west] {
        let members = client.set("big").members().await.unwrap();
        assert_eq!(members.len(), total);
        assert!(members.windows(2).all(|w| w[0] < w[1]), "in order");
        let fields = client.map("big-map").get_all().await.unwrap();
        assert_eq!(fields.len(), fields_east + fields_west);
    }

    // The command line's smembers and hgetall read in pages too, and
    // sscan and hscan page as asked.
    let all = cli(&lab, &["--raw", "smembers", "big"]);
    assert_eq!(all.lines().count(), total);
    let all = cli(&lab, &["--raw", "hgetall", "big-map"]);
    assert_eq!(all.lines().count(), 2 * (fields_east + fields_west));
    let mut cursor = "0".to_owned();
    let mut listed = Vec::new();
    let mut pages = 0;
    loop {
        let out = cli(&lab, &["--raw", "sscan", "big", &cursor, "COUNT", "5"]);
        let mut lines = out.lines();
        cursor = lines.next().unwrap().to_owned();
        listed.extend(lines.map(str::to_owned));
        pages += 1;
        if cursor == "0" {
            break;
        }
        assert!(pages < 100, "the scan never ends");
    }
    assert_eq!(listed.len(), total);
    assert_eq!(pages, total.div_ceil(5));
    let formatted = cli(&lab, &["hscan", "big-map", "0", "COUNT", "2"]);
    assert!(formatted.starts_with("1) \"x65"), "{formatted}");
    assert!(formatted.contains("2) 1) \"e0000"), "{formatted}");
}
