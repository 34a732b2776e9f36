//! Deterministic simulation of skewed clocks in a region of three nodes
//! (N = 3, W = quorum). Within the HLC skew bound (500 ms) nothing is
//! refused; a node whose clock is beyond it gets its register writes
//! refused by the others with a typed, counted error, and the replicas
//! still converge once time has caught up with the stamps.
//!
//! `MERIDIAN_SIM_SEEDS=N` runs N seeds (default 100, a quarter of them
//! here); `MERIDIAN_SIM_SEED=S` replays one.

use meridian::crdt::Bytes;
use meridian::node::NodeConfig;
use meridian::protocol::{Command, ErrorReply, Reply, Request};
use meridian::sim::{check_seeds, NetConfig, NodeClock, Sim, REGION_OF_THREE};
use meridian::topology::Topology;
use std::collections::{BTreeMap, BTreeSet};

const START_MS: u64 = 1_800_000_000_000;
const KEYS: u64 = 4;

fn config() -> NodeConfig {
    NodeConfig {
        write_timeout_ms: 200,
        hint_retry_ms: 100,
        digest_interval_ms: 500,
        ..NodeConfig::default()
    }
}

/// Answers by request id.
type Answers = BTreeMap<u64, Result<Reply, ErrorReply>>;
/// Values written, per key.
type Written = BTreeMap<String, BTreeSet<String>>;

fn set(id: u64, k: u64) -> Request {
    Request {
        id,
        command: Command::Set {
            key: Bytes::from(format!("r{k}").as_str()),
            value: Bytes::from(format!("v{id}").as_str()),
            ttl_ms: None,
        },
        write: None,
        read: None,
    }
}

/// Register writes to random nodes for `ms`, then quiet for `settle_ms`.
/// Returns the answers by request id and the values written per key.
fn register_load(sim: &mut Sim, ms: u64, settle_ms: u64) -> (Answers, Written) {
    let ids = sim.node_ids();
    let mut written: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut next = 1u64;
    let until = sim.now_ms() + ms;
    while sim.now_ms() < until {
        let k = sim.rng().below(KEYS);
        let to = ids[sim.rng().below(ids.len() as u64) as usize];
        written
            .entry(format!("r{k}"))
            .or_default()
            .insert(format!("v{next}"));
        sim.client_request(to, next, set(next, k));
        next += 1;
        let step = sim.now_ms() + 5;
        sim.run_until(step);
    }
    let quiet = sim.now_ms() + settle_ms;
    sim.run_until(quiet);
    let answers = sim
        .take_responses()
        .into_iter()
        .map(|(c, r)| (c, r.result.map(|a| a.reply)))
        .collect();
    (answers, written)
}

/// Every node holds the same state of every key, and it is a written value.
fn converged(sim: &Sim, written: &Written) -> Result<(), String> {
    let ids = sim.node_ids();
    for (key, values) in written {
        let states: Vec<_> = ids
            .iter()
            .map(|id| sim.node(*id).keyspace().state(key.as_bytes()))
            .collect();
        if states.iter().any(|s| *s != states[0]) {
            return Err(format!("replicas of {key} diverged"));
        }
        let id = ids[0];
        let got = sim
            .node(id)
            .keyspace()
            .get(key.as_bytes(), sim.local_now_ms(id))
            .map_err(|e| e.to_string())?
            .map(|v| String::from_utf8_lossy(&v).into_owned());
        match got {
            Some(v) if values.contains(&v) => {}
            other => return Err(format!("{key} holds {other:?}, never written")),
        }
    }
    Ok(())
}

fn refused(sim: &Sim) -> u64 {
    sim.node_ids()
        .iter()
        .map(|id| sim.node(*id).stats().refused)
        .sum()
}

#[test]
fn clocks_skewed_within_the_bound_refuse_nothing_and_converge() {
    check_seeds(
        "sim_clock_skew",
        "clocks_skewed_within",
        0xc10c_0000,
        4,
        |seed| {
            let topology =
                Topology::parse(REGION_OF_THREE, "sim.toml").map_err(|e| e.to_string())?;
            let net = NetConfig {
                latency_ms_min: 1,
                latency_ms_max: 20,
                loss: 0.02,
                duplicate: 0.02,
                ..NetConfig::default()
            };
            let mut sim = Sim::new(topology, config(), net, seed, START_MS);
            // Offsets up to 200 ms either way and a drift of up to 1 ms/s: two
            // clocks stay within 500 ms of each other over the run.
            sim.skew_clocks(200, 1_000);
            let (answers, written) = register_load(&mut sim, 3_000, 10_000);
            if refused(&sim) != 0 {
                return Err(format!(
                    "{} updates refused within the bound",
                    refused(&sim)
                ));
            }
            if let Some((id, e)) = answers.iter().find_map(|(id, r)| match r {
                Err(e @ ErrorReply::Refused { .. }) => Some((id, e)),
                _ => None,
            }) {
                return Err(format!("write {id} refused: {e}"));
            }
            converged(&sim, &written)
        },
    );
}

#[test]
fn node_clock_ahead_beyond_the_bound_gets_its_writes_refused_counted_and_still_converges() {
    let topology = Topology::parse(REGION_OF_THREE, "sim.toml").unwrap();
    let mut sim = Sim::new(topology, config(), NetConfig::default(), 7, START_MS);
    let ids = sim.node_ids();
    let fast = ids[2];
    sim.set_clock(
        fast,
        NodeClock {
            offset_ms: 3_000,
            drift_ppm: 0,
        },
    );
    sim.run_until(START_MS + 1_000);
    sim.client_request(fast, 1, set(1, 0));
    sim.run_until(START_MS + 1_500);
    let answers = sim.take_responses();
    // The two others refuse the stamp from 3 s in the future: the write is
    // kept on the fast node but cannot reach W, and the client is told so.
    assert_eq!(
        answers[0].1.result,
        Err(ErrorReply::QuorumNotReached {
            acked: 1,
            needed: 2
        })
    );
    assert!(
        refused(&sim) >= 2,
        "refusals are counted: {}",
        refused(&sim)
    );
    for id in &ids[..2] {
        assert_eq!(sim.node(*id).keyspace().state(b"r0"), None, "{id:?}");
    }
    // A write of the same key at a correct node, later in real time, loses
    // to the fast node's stamp once that one is accepted: last writer wins
    // by HLC, and the fast node's HLC is ahead.
    sim.client_request(ids[0], 2, set(2, 0));
    // Once real time has caught up with the stamp (less the bound), the
    // hints are accepted and every replica converges.
    sim.run_until(START_MS + 10_000);
    let mut written = BTreeMap::new();
    written.insert(
        "r0".to_owned(),
        BTreeSet::from(["v1".to_owned(), "v2".to_owned()]),
    );
    converged(&sim, &written).unwrap();
    let value = sim
        .node(ids[0])
        .keyspace()
        .get(b"r0", sim.local_now_ms(ids[0]))
        .unwrap();
    assert_eq!(value, Some(Bytes::from("v1")));
}

#[test]
fn node_clock_behind_beyond_the_bound_refuses_the_others_writes_and_catches_up_later() {
    let topology = Topology::parse(REGION_OF_THREE, "sim.toml").unwrap();
    let mut sim = Sim::new(topology, config(), NetConfig::default(), 8, START_MS);
    let ids = sim.node_ids();
    let slow = ids[2];
    sim.set_clock(
        slow,
        NodeClock {
            offset_ms: -3_000,
            drift_ppm: 0,
        },
    );
    sim.run_until(START_MS + 1_000);
    sim.client_request(ids[0], 1, set(1, 0));
    sim.run_until(START_MS + 1_500);
    let answers = sim.take_responses();
    // The two correct nodes are a quorum: the write is acknowledged.
    assert!(answers[0].1.result.is_ok(), "{:?}", answers[0].1.result);
    assert!(sim.node(slow).stats().refused >= 1);
    assert_eq!(sim.node(slow).keyspace().state(b"r0"), None);
    sim.run_until(START_MS + 10_000);
    let mut written = BTreeMap::new();
    written.insert("r0".to_owned(), BTreeSet::from(["v1".to_owned()]));
    converged(&sim, &written).unwrap();
}
