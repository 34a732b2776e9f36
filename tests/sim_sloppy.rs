//! Deterministic simulation of sloppy quorum in a region of five nodes
//! (N = 3, W = quorum): with two replicas of a key down, writes still reach
//! W through fallback nodes, which hand the keys back when the replicas
//! return and then drop them.
//!
//! `MERIDIAN_SIM_SEEDS=N` runs N seeds (default 100, a quarter of them
//! here); `MERIDIAN_SIM_SEED=S` replays one.

use meridian::crdt::Bytes;
use meridian::node::NodeConfig;
use meridian::placement::Placement;
use meridian::protocol::{Command, ErrorReply, Request};
use meridian::sim::{check_seeds, NetConfig, Sim};
use meridian::topology::Topology;
use std::collections::{BTreeMap, BTreeSet};

const START_MS: u64 = 1_800_000_000_000;
const KEYS: u64 = 12;

fn region_of_five() -> Topology {
    let mut text = String::from(
        "[cluster]\nname = \"sim\"\nreplication_factor = 3\nwrite_consistency = \"quorum\"\n\n[[region]]\nname = \"r\"\n",
    );
    for i in 1..=5 {
        text.push_str(&format!(
            "\n[[region.node]]\nid = \"n{i}\"\nclient_addr = \"127.0.0.1:{}\"\npeer_addr = \"127.0.0.1:{}\"\n",
            9100 + i,
            9110 + i
        ));
    }
    Topology::parse(&text, "five.toml").unwrap()
}

fn s(b: &Bytes) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn config(sloppy_quorum: bool) -> NodeConfig {
    NodeConfig {
        write_timeout_ms: 400,
        hint_retry_ms: 100,
        digest_interval_ms: 1_000,
        sloppy_quorum,
        ..NodeConfig::default()
    }
}

struct Outcome {
    /// Per counter key: acknowledged and unacknowledged increments.
    acked: BTreeMap<String, i64>,
    maybe: BTreeMap<String, i64>,
    /// Per set key: acknowledged members.
    members: BTreeMap<String, BTreeSet<String>>,
    writes_ok: usize,
    writes_short: usize,
}

/// Two nodes go down; writes to every key go to live nodes; the two come
/// back empty (no data directory) after the writes.
fn run(seed: u64, sloppy_quorum: bool, net: NetConfig) -> Result<(Sim, Outcome), String> {
    let topology = region_of_five();
    let mut sim = Sim::new(topology, config(sloppy_quorum), net, seed, START_MS);
    let ids = sim.node_ids();
    sim.run_until(START_MS + 3_000);
    let a = sim.rng().below(5) as usize;
    let b = (a + 1 + sim.rng().below(4) as usize) % 5;
    sim.crash(ids[a]);
    sim.crash(ids[b]);
    // Long enough for the failure detectors to suspect both.
    sim.run_until(START_MS + 6_000);
    let placement = Placement::new(&region_of_five());
    let mut commands = BTreeMap::new();
    for id in 1..=200u64 {
        let command = sim.counter_or_set_write(id, KEYS);
        commands.insert(id, command.clone());
        // Clients route to a live replica of the key, as the SDK does (a
        // request forwarded by another node may be duplicated by the
        // simulated network, and forwarding is not idempotent).
        let key = command.key().expect("writes have keys").clone();
        let replicas: Vec<_> = placement
            .preference_list("r", &key)
            .unwrap()
            .iter()
            .copied()
            .filter(|id| !sim.is_down(*id))
            .collect();
        let to = replicas[sim.rng().below(replicas.len() as u64) as usize];
        let request = Request {
            id,
            command,
            write: None,
            read: None,
        };
        sim.client_request(to, id, request);
        let until = sim.now_ms() + 5;
        sim.run_until(until);
    }
    let until = sim.now_ms() + 3_000;
    sim.run_until(until);
    let answers: BTreeMap<u64, Result<(), ErrorReply>> = sim
        .take_responses()
        .into_iter()
        .map(|(c, r)| (c, r.result.map(|_| ())))
        .collect();
    let mut out = Outcome {
        acked: BTreeMap::new(),
        maybe: BTreeMap::new(),
        members: BTreeMap::new(),
        writes_ok: 0,
        writes_short: 0,
    };
    for (id, command) in &commands {
        let outcome = answers.get(id);
        match outcome {
            Some(Ok(())) => out.writes_ok += 1,
            // A forwarded request whose messages were lost times out: unacknowledged.
            Some(Err(ErrorReply::QuorumNotReached { .. } | ErrorReply::Timeout)) | None => {
                out.writes_short += 1
            }
            Some(Err(e)) => return Err(format!("write {id} refused: {e}")),
        }
        match command {
            Command::IncrBy { key, by } => match outcome {
                Some(Ok(())) => *out.acked.entry(s(key)).or_default() += by,
                _ => *out.maybe.entry(s(key)).or_default() += by,
            },
            Command::SAdd { key, members } => {
                if let Some(Ok(())) = outcome {
                    out.members
                        .entry(s(key))
                        .or_default()
                        .extend(members.iter().map(s));
                }
            }
            _ => {}
        }
    }
    sim.restart(ids[a]);
    sim.restart(ids[b]);
    let until = sim.now_ms() + 15_000;
    sim.run_until(until);
    Ok((sim, out))
}

/// Every replica of every key holds the acknowledged writes, the replicas
/// agree, and no other node still holds a copy.
fn check(sim: &Sim, topology: &Topology, out: &Outcome) -> Result<(), String> {
    let placement = Placement::new(topology);
    let now = sim.now_ms();
    for k in 0..KEYS {
        for key in [format!("c{k}"), format!("s{k}")] {
            let replicas = placement.preference_list("r", key.as_bytes()).unwrap();
            let states: Vec<_> = replicas
                .iter()
                .map(|id| sim.node(*id).keyspace().state(key.as_bytes()))
                .collect();
            if states.iter().any(|st| *st != states[0]) {
                return Err(format!("replicas of {key} diverged"));
            }
            for id in sim.node_ids() {
                if !replicas.contains(&id)
                    && sim.node(id).keyspace().state(key.as_bytes()).is_some()
                {
                    return Err(format!("{id:?} still holds {key}, which is not its"));
                }
            }
            for id in replicas {
                let ks = sim.node(*id).keyspace();
                if let Some(sum) = out.acked.get(&key) {
                    let value = ks
                        .counter(key.as_bytes(), now)
                        .map_err(|e| e.to_string())?
                        .unwrap_or(0);
                    let extra = out.maybe.get(&key).copied().unwrap_or(0);
                    if value < *sum || value > sum + extra {
                        return Err(format!(
                            "{key} on {id:?}: {value}, acknowledged {sum}, unacknowledged {extra}"
                        ));
                    }
                }
                if let Some(want) = out.members.get(&key) {
                    let got: BTreeSet<String> = ks
                        .smembers(key.as_bytes(), now)
                        .map_err(|e| e.to_string())?
                        .iter()
                        .map(s)
                        .collect();
                    if let Some(lost) = want.difference(&got).next() {
                        return Err(format!("{key} on {id:?}: acknowledged {lost} lost"));
                    }
                }
            }
        }
    }
    Ok(())
}

#[test]
fn with_two_replicas_of_a_key_down_sloppy_quorum_acknowledges_every_write() {
    let (sim, out) = run(1, true, NetConfig::default()).unwrap();
    assert_eq!(
        (out.writes_ok, out.writes_short),
        (200, 0),
        "every write reaches W through fallbacks"
    );
    let stand_ins: u64 = sim
        .node_ids()
        .iter()
        .map(|id| sim.node(*id).stats().stand_in_writes)
        .sum();
    assert!(stand_ins > 0, "fallbacks held writes");
    check(&sim, &region_of_five(), &out).unwrap();
    for id in sim.node_ids() {
        assert_eq!(sim.node(id).guests_held(), 0, "{id:?} still holds keys");
    }
}

#[test]
fn with_two_replicas_of_a_key_down_strict_quorum_refuses_some_writes() {
    let (sim, out) = run(1, false, NetConfig::default()).unwrap();
    assert!(
        out.writes_short > 0,
        "keys with two replicas down cannot reach W without fallbacks"
    );
    // Nothing is lost either way: the short writes are kept and handed off.
    check(&sim, &region_of_five(), &out).unwrap();
}

#[test]
fn sloppy_quorum_loses_no_acknowledged_write_and_leaves_no_copy_behind_under_a_faulty_network() {
    check_seeds(
        "sim_sloppy",
        "sloppy_quorum_loses_no",
        0x510b_0000,
        4,
        |seed| {
            let net = NetConfig {
                latency_ms_min: 1,
                latency_ms_max: 10,
                loss: 0.02,
                duplicate: 0.02,
                ..NetConfig::default()
            };
            let (sim, out) = run(seed, true, net)?;
            if out.writes_ok < 150 {
                return Err(format!("only {} of 200 writes acknowledged", out.writes_ok));
            }
            check(&sim, &region_of_five(), &out)
        },
    );
}

#[test]
fn a_fallback_restarted_from_its_disk_still_hands_the_write_back() {
    let topology = region_of_five();
    let placement = Placement::new(&topology);
    let ring = placement.ring("r").unwrap();
    let key = Bytes::from("c0");
    let replicas = ring.preference_list(&key).to_vec();
    let fallbacks = ring.fallbacks(&key);
    let config = NodeConfig {
        persist: true,
        ..config(true)
    };
    let mut sim = Sim::new(topology, config, NetConfig::default(), 5, START_MS);
    sim.run_until(START_MS + 3_000);
    sim.crash(replicas[1]);
    sim.crash(replicas[2]);
    sim.run_until(START_MS + 6_000);
    let command = Command::IncrBy {
        key: key.clone(),
        by: 7,
    };
    let request = Request {
        id: 1,
        command,
        write: None,
        read: None,
    };
    sim.client_request(replicas[0], 1, request);
    sim.run_until(START_MS + 6_500);
    assert!(sim.take_responses()[0].1.result.is_ok());
    let held: Vec<_> = fallbacks
        .iter()
        .copied()
        .filter(|f| sim.node(*f).guests_held() > 0)
        .collect();
    assert!(!held.is_empty(), "a fallback holds the write");
    // The fallbacks lose their memory (and hints) but keep their disks.
    for f in &held {
        sim.crash(*f);
    }
    sim.run_until(START_MS + 7_000);
    for f in &held {
        sim.restart(*f);
    }
    sim.run_until(START_MS + 8_000);
    // The owners come back empty; the coordinator is cut off from them, so
    // only the fallbacks can bring them the write.
    for owner in &replicas[1..] {
        sim.partition(replicas[0], *owner);
        sim.restart(*owner);
    }
    sim.run_until(START_MS + 12_000);
    let now = sim.now_ms();
    for owner in &replicas[1..] {
        assert_eq!(
            sim.node(*owner).keyspace().counter(&key, now).unwrap(),
            Some(7),
            "{owner:?}"
        );
    }
    for f in &held {
        assert_eq!(sim.node(*f).guests_held(), 0, "{f:?}");
        assert_eq!(sim.node(*f).keyspace().state(&key), None, "{f:?}");
    }
}
