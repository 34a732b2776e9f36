//! Membership changes of a running lab, through the `meridian` binary and
//! real processes: `cluster add-node` grows a region of three under a write
//! load, `cluster remove-node` shrinks it again, and afterwards every
//! acknowledged write reads back (quorum reads) from the new membership.
//! The harness is in `common/mod.rs`.

#![cfg(target_os = "linux")]

mod common;

use common::{runtime, topology, Lab};
use meridian::client::{Client, ClientOptions, Command, Reply};
use meridian::topology::ReadConsistency;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

async fn client(lab: &Lab) -> Client {
    let mut options = ClientOptions::new(lab.topology(), "east", lab.state_dir().join("certs"));
    options.request_timeout = Duration::from_secs(5);
    Client::connect(options).await.unwrap()
}

/// Writes `<prefix>-<i>` = `v<i>` for i below `n`, each acknowledged.
fn write_keys(runtime: &tokio::runtime::Runtime, lab: &Lab, prefix: &str, n: usize) {
    runtime.block_on(async {
        let c = client(lab).await;
        for i in 0..n {
            c.register(format!("{prefix}-{i}").as_str())
                .set(format!("v{i}").as_str())
                .await
                .unwrap();
        }
    });
}

/// Writes `key-<i>` = `value-<i>` until `stop`, through a client made
/// before any change (it keeps the old topology, as a real client would
/// until it reloads), and returns the writes acknowledged at W = quorum.
fn write_load(
    options: ClientOptions,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<BTreeMap<u64, String>> {
    std::thread::spawn(move || {
        runtime().block_on(async move {
            let client = Client::connect(options).await.unwrap();
            let mut acked = BTreeMap::new();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let value = format!("value-{i}");
                if client
                    .register(format!("key-{i}").as_str())
                    .set(value.as_str())
                    .await
                    .is_ok()
                {
                    acked.insert(i, value);
                }
            }
            acked
        })
    })
}

#[test]
fn a_node_added_and_another_removed_under_load_lose_no_acknowledged_write() {
    let lab = Lab::start(|| topology(&["east"], &[]));
    let runtime = runtime();
    write_keys(&runtime, &lab, "pre", 2_000);
    let stop = Arc::new(AtomicBool::new(false));
    let options = ClientOptions::new(lab.topology(), "east", lab.state_dir().join("certs"));
    let load = write_load(options, stop.clone());
    std::thread::sleep(Duration::from_millis(300));

    let added = lab.ok(&["cluster", "add-node", "east"]);
    assert!(added.contains("starting east-4 in east"), "{added}");
    let last_block = added.rsplit("rebalance of east:").next().unwrap();
    assert!(
        added.contains("rebalance complete") && last_block.matches(" done").count() == 4,
        "add-node did not end complete:\n{added}"
    );
    assert!(lab.ok(&["cluster", "status"]).contains("east-4"));
    let copy = lab.cluster_file().topology;
    let after_add = std::fs::read_to_string(&copy).unwrap();
    assert_eq!(
        lab.topology().version(),
        1,
        "add-node writes the next version"
    );

    let removed = lab.ok(&["cluster", "remove-node", "east-2"]);
    let last_block = removed.rsplit("rebalance of east:").next().unwrap();
    assert!(
        removed.contains("rebalance complete")
            && last_block.contains("done (leaving)")
            && removed.contains("stopped east-2"),
        "remove-node did not end complete:\n{removed}"
    );
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let acked = load.join().unwrap();
    assert!(acked.len() > 50, "only {} writes acknowledged", acked.len());

    let topology = lab.topology();
    let ids: Vec<&str> = topology.nodes().map(|(_, n)| n.id.as_str()).collect();
    assert_eq!(ids, ["east-1", "east-3", "east-4"]);
    // Three nodes, N = 3: each node holds every key written before the
    // changes, the ones the removed node handed over included. Read from
    // each node alone (R = one, no repair), before quorum reads repair
    // anything and before a digest round could cover a missing hand-over.
    runtime.block_on(async {
        let c = client(&lab).await.with_read(ReadConsistency::One);
        for id in ["east-1", "east-3", "east-4"] {
            let mut missing = Vec::new();
            for i in 0..2_000 {
                let key = format!("pre-{i}");
                let command = Command::Get {
                    key: key.as_str().into(),
                };
                let answer = c.execute_on(id, command).await.unwrap();
                if answer.reply != Reply::Value(format!("v{i}").as_str().into()) {
                    missing.push(key);
                }
            }
            assert!(
                missing.is_empty(),
                "{id} lacks {} keys written before the changes: {:?}",
                missing.len(),
                &missing[..missing.len().min(5)]
            );
        }
    });
    runtime.block_on(async {
        let c = client(&lab).await.with_read(ReadConsistency::Quorum);
        for i in 0..2_000 {
            let got = c.register(format!("pre-{i}").as_str()).get().await.unwrap();
            assert_eq!(got.as_deref(), Some(format!("v{i}").as_bytes()), "pre-{i}");
        }
        for (i, value) in &acked {
            let got = c.register(format!("key-{i}").as_str()).get().await.unwrap();
            assert_eq!(got.as_deref(), Some(value.as_bytes()), "key-{i} lost");
        }
    });
    // And every node ends up with every acknowledged write.
    runtime.block_on(async {
        let c = client(&lab).await;
        let want = 2_000 + acked.len() as u64;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        for id in ["east-1", "east-3", "east-4"] {
            loop {
                let answer = c.execute_on(id, Command::Status).await.unwrap();
                let Reply::Status(status) = answer.reply else {
                    panic!("{id} answered {:?}", answer.reply)
                };
                assert!(status.rebalance.finished, "{id}: {:?}", status.rebalance);
                if status.keys >= want {
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "{id} holds {} keys, {want} were acknowledged",
                    status.keys
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    });

    // A stale copy put back is refused by the nodes, which keep the
    // current topology.
    assert_eq!(topology.version(), 2);
    let current = std::fs::read_to_string(&copy).unwrap();
    std::fs::write(&copy, &after_add).unwrap();
    runtime.block_on(async {
        let mut options =
            ClientOptions::new(topology.clone(), "east", lab.state_dir().join("certs"));
        options.request_timeout = Duration::from_secs(5);
        let c = Client::connect(options).await.unwrap();
        let refused = c
            .execute_on("east-1", Command::ReloadTopology)
            .await
            .expect_err("an older topology version");
        assert!(
            refused
                .to_string()
                .contains("version 1, older than the running version 2"),
            "{refused}"
        );
        let Reply::Value(running) = c
            .execute_on("east-1", Command::Topology)
            .await
            .unwrap()
            .reply
        else {
            panic!("no topology text")
        };
        assert_eq!(running.as_ref(), current.as_bytes());
    });
    std::fs::write(&copy, &current).unwrap();
    let status = lab.ok(&["status"]);
    assert!(
        status.contains(" v2\n")
            && !status.contains(" v1")
            && !status.contains("different topology"),
        "{status}"
    );
    eprintln!("{} writes acknowledged during the changes", acked.len());
}

#[test]
fn a_removed_node_added_again_under_its_old_id_gets_its_keys() {
    let lab = Lab::start(|| topology(&["east"], &[]));
    let runtime = runtime();
    write_keys(&runtime, &lab, "k", 500);
    let added = lab.ok(&["cluster", "add-node", "east", "--timeout", "60"]);
    assert!(added.contains("starting east-4 in east"), "{added}");
    let removed = lab.ok(&["cluster", "remove-node", "east-2", "--timeout", "60"]);
    assert!(removed.contains("stopped east-2"), "{removed}");
    // The first free id is the removed node's: it comes back on other
    // ports, and the others must dial it there, not where it used to be.
    let added = lab.ok(&["cluster", "add-node", "east", "--timeout", "60"]);
    assert!(added.contains("starting east-2 in east"), "{added}");
    assert!(
        added.contains("rebalance complete"),
        "add-node did not end complete:\n{added}"
    );
    runtime.block_on(async {
        let c = client(&lab).await.with_read(ReadConsistency::One);
        let mut missing = 0;
        for i in 0..500 {
            let command = Command::Get {
                key: format!("k-{i}").as_str().into(),
            };
            let answer = c.execute_on("east-2", command).await.unwrap();
            if answer.reply != Reply::Value(format!("v{i}").as_str().into()) {
                missing += 1;
            }
        }
        assert_eq!(missing, 0, "east-2 lacks keys after coming back");
        // And writes reach it through the others' links (four nodes,
        // N = 3: through east-1 and east-3, whose links were made before).
        c.register("after").set("x").await.unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let command = Command::Get {
                key: "after".into(),
            };
            let answer = c.execute_on("east-2", command).await.unwrap();
            if answer.reply == Reply::Value("x".into()) {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{:?}", answer.reply);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
}

#[test]
fn a_node_removed_while_down_has_its_keys_sent_by_the_others() {
    let lab = Lab::start(|| topology(&["east"], &[]));
    let runtime = runtime();
    let added = lab.ok(&["cluster", "add-node", "east", "--timeout", "60"]);
    assert!(added.contains("rebalance complete"), "{added}");
    write_keys(&runtime, &lab, "k", 300);
    lab.ok(&["cluster", "kill", "east-4"]);
    // Long enough for the others to suspect it.
    std::thread::sleep(Duration::from_secs(3));
    let removed = lab.ok(&["cluster", "remove-node", "east-4", "--timeout", "60"]);
    assert!(removed.contains("rebalance complete"), "{removed}");
    assert!(removed.contains("stopped east-4"), "{removed}");
    // Three nodes, N = 3: each holds every key, including those east-4
    // was to send, without waiting for anti-entropy.
    runtime.block_on(async {
        let c = client(&lab).await.with_read(ReadConsistency::One);
        for node in ["east-1", "east-2", "east-3"] {
            let mut missing = 0;
            for i in 0..300 {
                let command = Command::Get {
                    key: format!("k-{i}").as_str().into(),
                };
                let answer = c.execute_on(node, command).await.unwrap();
                if answer.reply != Reply::Value(format!("v{i}").as_str().into()) {
                    missing += 1;
                }
            }
            assert_eq!(missing, 0, "{node} lacks keys after the removal");
        }
    });
}

#[test]
fn a_remove_node_that_did_not_finish_is_finished_before_another_change() {
    let lab = Lab::start(|| topology(&["east"], &[]));
    let runtime = runtime();
    lab.ok(&["cluster", "add-node", "east", "--timeout", "60"]);
    write_keys(&runtime, &lab, "k", 300);
    // With east-1 down the region cannot finish (the others wait for a
    // node that stays), so the removal stops waiting: east-4 is out of
    // the topology but still runs.
    lab.ok(&["cluster", "kill", "east-1"]);
    let stopped = lab.fails(&["cluster", "remove-node", "east-4", "--timeout", "2"]);
    assert!(stopped.contains("did not finish"), "{stopped}");
    lab.ok(&["cluster", "restart", "east-1"]);
    let refused = lab.fails(&["cluster", "add-node", "east", "--timeout", "60"]);
    assert!(
        refused.contains("`cluster remove-node east-4` finishes it"),
        "{refused}"
    );
    let finished = lab.ok(&["cluster", "remove-node", "east-4", "--timeout", "60"]);
    assert!(finished.contains("stopped east-4"), "{finished}");
    let added = lab.ok(&["cluster", "add-node", "east", "--timeout", "60"]);
    assert!(added.contains("rebalance complete"), "{added}");
    runtime.block_on(async {
        let c = client(&lab).await.with_read(ReadConsistency::Quorum);
        for i in 0..300 {
            let got = c.register(format!("k-{i}").as_str()).get().await.unwrap();
            assert_eq!(got, Some(format!("v{i}").as_str().into()), "k-{i}");
        }
    });
}
