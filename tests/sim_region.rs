//! Deterministic simulation of one region of three nodes (N = 3, W = quorum)
//! under message loss, duplication, reordering and partitions.
//!
//! `MERIDIAN_SIM_SEEDS=N` runs N seeds (default 100); `MERIDIAN_SIM_SEED=S`
//! replays one seed exactly.

use meridian::crdt::Bytes;
use meridian::node::NodeConfig;
use meridian::protocol::{Command, ErrorReply, Request};
use meridian::sim::{check_seeds, NetConfig, Sim, REGION_OF_THREE};
use meridian::topology::Topology;
use std::collections::{BTreeMap, BTreeSet};

const START_MS: u64 = 1_800_000_000_000;
/// Clock offsets (either way) and drift of the nodes: two clocks stay within
/// the HLC skew bound (500 ms) of each other.
const SKEW_MS_MAX: u64 = 200;
const DRIFT_PPM_MAX: u64 = 500;

#[derive(Default)]
struct Ledger {
    /// Per counter key: increments that were applied (answered Ok or QuorumNotReached).
    applied: BTreeMap<String, i64>,
    /// Per counter key: increments acknowledged at W.
    acked: BTreeMap<String, i64>,
    /// Set members whose add was acknowledged.
    members_acked: BTreeMap<String, BTreeSet<String>>,
    /// Register values ever written.
    written: BTreeMap<String, BTreeSet<String>>,
    /// What each request was.
    requests: BTreeMap<u64, Command>,
    answered_ok: u64,
    answered_short: u64,
}

fn run_seed(seed: u64) -> Result<(), String> {
    run_seed_with(seed, false).map(|_| ())
}

/// One seed's run, with nodes taking in each millisecond's messages in one
/// pass when `batch` (so replicates and acks travel bundled); returns the
/// bundles sent.
fn run_seed_with(seed: u64, batch: bool) -> Result<u64, String> {
    let topology = Topology::parse(REGION_OF_THREE, "sim.toml").map_err(|e| e.to_string())?;
    let net = NetConfig {
        latency_ms_min: 1,
        latency_ms_max: 30,
        loss: 0.05,
        duplicate: 0.05,
        batch_same_ms: batch,
        ..NetConfig::default()
    };
    let config = NodeConfig {
        write_timeout_ms: 200,
        hint_retry_ms: 100,
        ..NodeConfig::default()
    };
    let mut sim = Sim::new(topology, config, net, seed, START_MS);
    // Every node's clock is off by up to 200 ms and drifts, within the HLC bound.
    sim.skew_clocks(SKEW_MS_MAX, DRIFT_PPM_MAX);
    let ids = sim.node_ids();
    let mut ledger = Ledger::default();
    let mut next_id = 1u64;

    // Phase 1: a random workload while the network misbehaves.
    let faults_until = START_MS + 3_000;
    while sim.now_ms() < faults_until {
        let r = sim.rng().below(100);
        if r < 3 {
            let a = ids[sim.rng().below(3) as usize];
            let b = ids[sim.rng().below(3) as usize];
            if a != b {
                sim.partition(a, b);
            }
        } else if r < 6 {
            sim.heal();
        }
        for _ in 0..sim.rng().below(4) {
            let id = next_id;
            next_id += 1;
            let k = sim.rng().below(4);
            let command = match sim.rng().below(4) {
                0 => {
                    let by = 1 + sim.rng().below(10) as i64;
                    Command::IncrBy {
                        key: Bytes::from(format!("c{k}").as_str()),
                        by,
                    }
                }
                1 => Command::SAdd {
                    key: Bytes::from(format!("s{k}").as_str()),
                    members: vec![Bytes::from(format!("m{id}").as_str())],
                },
                2 => Command::Set {
                    key: Bytes::from(format!("r{k}").as_str()),
                    value: Bytes::from(format!("v{id}").as_str()),
                    ttl_ms: None,
                },
                _ => Command::HIncrBy {
                    key: Bytes::from("h"),
                    field: Bytes::from(format!("f{k}").as_str()),
                    by: 1,
                },
            };
            if let Command::Set { key, value, .. } = &command {
                ledger.written.entry(s(key)).or_default().insert(s(value));
            }
            ledger.requests.insert(id, command.clone());
            let to = ids[sim.rng().below(3) as usize];
            sim.client_request(
                to,
                id,
                Request {
                    id,
                    command,
                    write: None,
                    read: None,
                },
            );
        }
        let until = sim.now_ms() + 10;
        sim.run_until(until);
        record(&mut sim, &mut ledger);
    }

    // Phase 2: heal and quiesce, so hints are handed off.
    sim.heal();
    let until = sim.now_ms() + 5_000;
    sim.run_until(until);
    record(&mut sim, &mut ledger);

    // Phase 3: every replica's state of every key must be the same.
    let keys: BTreeSet<Bytes> = ledger
        .requests
        .values()
        .filter_map(|c| c.key().cloned())
        .collect();
    for key in &keys {
        let states: Vec<_> = ids
            .iter()
            .map(|id| sim.node(*id).keyspace().state(key))
            .collect();
        if states.iter().any(|st| *st != states[0]) {
            return Err(format!("replicas of {key:?} diverged: {states:?}"));
        }
    }
    // Counters: every applied increment counted, acknowledged ones included.
    for (key, applied) in &ledger.applied {
        let value = sim
            .node(ids[0])
            .keyspace()
            .counter(key.as_bytes(), sim.now_ms())
            .map_err(|e| e.to_string())?;
        let acked = ledger.acked.get(key).copied().unwrap_or(0);
        if value != Some(*applied) || *applied < acked {
            return Err(format!(
                "counter {key}: value {value:?}, applied {applied}, acked {acked}"
            ));
        }
    }
    // Sets: every acknowledged add is present (nothing was removed).
    for (key, members) in &ledger.members_acked {
        let got: BTreeSet<String> = sim
            .node(ids[1])
            .keyspace()
            .smembers(key.as_bytes(), sim.now_ms())
            .map_err(|e| e.to_string())?
            .iter()
            .map(s)
            .collect();
        if let Some(missing) = members.difference(&got).next() {
            return Err(format!("set {key}: acknowledged member {missing} lost"));
        }
    }
    // Registers: the value is one that was written.
    for (key, values) in &ledger.written {
        let got = sim
            .node(ids[2])
            .keyspace()
            .get(key.as_bytes(), sim.now_ms())
            .map_err(|e| e.to_string())?;
        if !got.as_ref().is_some_and(|v| values.contains(&s(v))) {
            return Err(format!("register {key}: {got:?} was never written"));
        }
    }
    // The workload must have exercised both outcomes and the network.
    if ledger.answered_ok == 0 || sim.lost == 0 {
        return Err(format!(
            "degenerate run: {} ok answers, {} messages lost",
            ledger.answered_ok, sim.lost
        ));
    }
    let _ = ledger.answered_short;
    Ok(sim.bundles)
}

fn s(b: &Bytes) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn record(sim: &mut Sim, ledger: &mut Ledger) {
    for (client, response) in sim.take_responses() {
        let Some(command) = ledger.requests.get(&client).cloned() else {
            continue;
        };
        let (applied, acked) = match &response.result {
            Ok(_) => (true, true),
            Err(ErrorReply::QuorumNotReached { .. }) => (true, false),
            Err(_) => (false, false),
        };
        if acked {
            ledger.answered_ok += 1;
        } else if applied {
            ledger.answered_short += 1;
        }
        match &command {
            Command::IncrBy { key, by } if applied => {
                *ledger.applied.entry(s(key)).or_default() += by;
                if acked {
                    *ledger.acked.entry(s(key)).or_default() += by;
                }
            }
            Command::SAdd { key, members } if acked => {
                ledger
                    .members_acked
                    .entry(s(key))
                    .or_default()
                    .extend(members.iter().map(s));
            }
            _ => {}
        }
    }
}

#[test]
fn region_converges_and_keeps_acknowledged_writes_under_a_faulty_network() {
    check_seeds("sim_region", "region_converges", 0x5eed_0000, 1, run_seed);
}

#[test]
fn region_converges_with_bundled_replication_under_a_faulty_network() {
    let mut bundles = 0;
    check_seeds(
        "sim_region",
        "bundled_replication",
        0x5eed_b000,
        2,
        |seed| {
            bundles += run_seed_with(seed, true)?;
            Ok(())
        },
    );
    // The runs did exercise bundles (lost, duplicated and reordered too).
    assert!(bundles > 0, "no replicate or ack was ever bundled");
}

#[test]
fn a_seed_replays_exactly() {
    let run = |seed| {
        let topology = Topology::parse(REGION_OF_THREE, "sim.toml").unwrap();
        let net = NetConfig {
            latency_ms_min: 1,
            latency_ms_max: 30,
            loss: 0.1,
            duplicate: 0.1,
            ..NetConfig::default()
        };
        let mut sim = Sim::new(topology, NodeConfig::default(), net, seed, START_MS);
        sim.skew_clocks(SKEW_MS_MAX, DRIFT_PPM_MAX);
        for id in 1..200u64 {
            let to = sim.node_ids()[(id % 3) as usize];
            let command = Command::IncrBy {
                key: Bytes::from(format!("k{}", id % 7).as_str()),
                by: 1,
            };
            sim.client_request(
                to,
                id,
                Request {
                    id,
                    command,
                    write: None,
                    read: None,
                },
            );
            let until = sim.now_ms() + 3;
            sim.run_until(until);
        }
        let until = sim.now_ms() + 5_000;
        sim.run_until(until);
        let states: Vec<_> = (0..7)
            .map(|k| {
                sim.node(sim.node_ids()[0])
                    .keyspace()
                    .state(format!("k{k}").as_bytes())
            })
            .collect();
        (sim.delivered, sim.lost, states)
    };
    assert_eq!(run(42), run(42));
    assert_ne!(run(42).0, run(43).0);
}

#[test]
fn write_to_a_partitioned_replica_is_handed_off_after_the_heal() {
    let topology = Topology::parse(REGION_OF_THREE, "sim.toml").unwrap();
    let mut sim = Sim::new(
        topology,
        // No digest rounds: the hint alone must deliver the write.
        NodeConfig {
            digest_interval_ms: u64::MAX / 4,
            ..NodeConfig::default()
        },
        NetConfig::default(),
        7,
        START_MS,
    );
    let ids = sim.node_ids();
    let (a, b, c) = (ids[0], ids[1], ids[2]);
    sim.partition(a, c);
    sim.partition(b, c);
    let command = Command::Set {
        key: Bytes::from("k"),
        value: Bytes::from("v"),
        ttl_ms: None,
    };
    sim.client_request(
        a,
        1,
        Request {
            id: 1,
            command,
            write: None,
            read: None,
        },
    );
    sim.run_until(START_MS + 2_000);
    let responses = sim.take_responses();
    let answer = responses[0]
        .1
        .result
        .as_ref()
        .expect("quorum of two reached");
    assert_eq!((answer.replicas_acked, answer.replicas_needed), (2, 2));
    assert_eq!(
        sim.node(c).keyspace().get(b"k", sim.now_ms()).unwrap(),
        None
    );
    // The replica the answer did not wait for gets a few write timeouts
    // more, then a hint.
    assert_eq!(sim.node(a).hints_pending(), 0);
    sim.run_until(START_MS + 5_500);
    assert!(sim.node(a).hints_pending() > 0);
    sim.heal();
    // A handoff lost in the partition is sent again after its patience runs out.
    sim.run_until(START_MS + 11_000);
    assert_eq!(
        sim.node(c).keyspace().get(b"k", sim.now_ms()).unwrap(),
        Some(Bytes::from("v"))
    );
    assert_eq!(sim.node(a).hints_pending(), 0);
    assert!(sim.node(a).stats().hints_delivered >= 1);
}

#[test]
fn write_that_cannot_reach_w_is_kept_and_reports_acked_over_needed() {
    let topology = Topology::parse(REGION_OF_THREE, "sim.toml").unwrap();
    let mut sim = Sim::new(
        topology,
        NodeConfig::default(),
        NetConfig::default(),
        9,
        START_MS,
    );
    let ids = sim.node_ids();
    sim.crash(ids[1]);
    sim.crash(ids[2]);
    let command = Command::IncrBy {
        key: Bytes::from("n"),
        by: 5,
    };
    sim.client_request(
        ids[0],
        1,
        Request {
            id: 1,
            command,
            write: None,
            read: None,
        },
    );
    sim.run_until(START_MS + 3_000);
    let responses = sim.take_responses();
    assert_eq!(
        responses[0].1.result,
        Err(ErrorReply::QuorumNotReached {
            acked: 1,
            needed: 2
        })
    );
    assert_eq!(
        sim.node(ids[0])
            .keyspace()
            .counter(b"n", sim.now_ms())
            .unwrap(),
        Some(5)
    );
    // The replicas come back (empty): the hint brings them the write.
    sim.restart(ids[1]);
    sim.restart(ids[2]);
    sim.run_until(START_MS + 6_000);
    for id in &ids {
        assert_eq!(
            sim.node(*id)
                .keyspace()
                .counter(b"n", sim.now_ms())
                .unwrap(),
            Some(5),
            "{id:?}"
        );
    }
}
