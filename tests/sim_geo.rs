//! Deterministic simulation of three regions of three nodes (the local
//! topology) replicating to each other across a slow WAN, with a region cut
//! off while both sides keep writing.
//!
//! `MERIDIAN_SIM_SEEDS=N` runs N seeds of the random workload (default 100,
//! a fifth of which run here per test); `MERIDIAN_SIM_SEED=S` replays one.

use meridian::crdt::{Bytes, Kind, ReplicaId};
use meridian::keyspace::Ttl;
use meridian::node::NodeConfig;
use meridian::protocol::{Answer, Command, ErrorReply, Request, Response};
use meridian::sim::{check_seeds, NetConfig, Sim};
use meridian::topology::Topology;
use std::collections::{BTreeMap, BTreeSet};

const START_MS: u64 = 1_800_000_000_000;
/// Clock offsets (either way) and drift of the nodes: two clocks stay within
/// the HLC skew bound (500 ms) of each other.
const SKEW_MS_MAX: u64 = 200;
const DRIFT_PPM_MAX: u64 = 500;

fn b(s: &str) -> Bytes {
    Bytes::from(s)
}

fn config() -> NodeConfig {
    NodeConfig {
        write_timeout_ms: 300,
        hint_retry_ms: 200,
        digest_interval_ms: 1_000,
        ..NodeConfig::default()
    }
}

fn sim(seed: u64, net: NetConfig) -> Sim {
    sim_with(seed, net, config())
}

fn sim_with(seed: u64, net: NetConfig, config: NodeConfig) -> Sim {
    let topology = Topology::load("regions/local.toml").expect("regions/local.toml loads");
    let mut sim = Sim::new(topology, config, net, seed, START_MS);
    // Every node's clock is off by up to 200 ms and drifts, within the HLC bound.
    sim.skew_clocks(SKEW_MS_MAX, DRIFT_PPM_MAX);
    sim
}

/// Every key's state is identical on all nine nodes.
fn assert_identical(sim: &Sim, keys: &BTreeSet<Bytes>) -> Result<(), String> {
    let ids = sim.node_ids();
    for key in keys {
        let first = sim.node(ids[0]).keyspace().state(key);
        for id in &ids[1..] {
            if sim.node(*id).keyspace().state(key) != first {
                return Err(format!("{key:?} differs between {:?} and {:?}", ids[0], id));
            }
        }
    }
    Ok(())
}

struct Driver {
    next_id: u64,
    answers: BTreeMap<u64, Response>,
}

impl Driver {
    fn send(&mut self, sim: &mut Sim, to: ReplicaId, command: Command) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
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
        id
    }
    fn collect(&mut self, sim: &mut Sim) {
        for (client, r) in sim.take_responses() {
            self.answers.insert(client, r);
        }
    }
    fn ok(&self, id: u64) -> Option<&Answer> {
        self.answers.get(&id).and_then(|r| r.result.as_ref().ok())
    }
}

#[test]
#[allow(clippy::vec_init_then_push)] // the pushes interleave with comments naming each side
fn partitioned_region_keeps_accepting_writes_and_all_nine_nodes_converge_to_the_contract() {
    let mut sim = sim(1, NetConfig::default());
    let east = sim.nodes_of("us-east");
    let west = sim.nodes_of("eu-west");
    let mut d = Driver {
        next_id: 1,
        answers: BTreeMap::new(),
    };
    // Shared history before the cut.
    d.send(
        &mut sim,
        east[0],
        Command::SAdd {
            key: b("set"),
            members: vec![b("both"), b("contested")],
        },
    );
    d.send(
        &mut sim,
        east[0],
        Command::HSet {
            key: b("map"),
            field: b("f"),
            value: b("v0"),
        },
    );
    d.send(
        &mut sim,
        east[0],
        Command::Set {
            key: b("gone"),
            value: b("x"),
            ttl_ms: None,
        },
    );
    d.send(
        &mut sim,
        east[0],
        Command::Set {
            key: b("exp"),
            value: b("x"),
            ttl_ms: None,
        },
    );
    sim.run_until(START_MS + 2_000);

    sim.partition_region("us-east");
    let mut during = Vec::new();
    // us-east side.
    during.push(d.send(
        &mut sim,
        east[0],
        Command::IncrBy {
            key: b("ctr"),
            by: 10,
        },
    ));
    during.push(d.send(
        &mut sim,
        east[1],
        Command::IncrBy {
            key: b("ctr"),
            by: -3,
        },
    ));
    during.push(d.send(
        &mut sim,
        east[2],
        Command::SRem {
            key: b("set"),
            members: vec![b("contested")],
        },
    ));
    during.push(d.send(
        &mut sim,
        east[0],
        Command::HDel {
            key: b("map"),
            fields: vec![b("f")],
        },
    ));
    during.push(d.send(&mut sim, east[1], Command::Del { key: b("gone") }));
    during.push(d.send(
        &mut sim,
        east[2],
        Command::Expire {
            key: b("exp"),
            ttl_ms: 600_000,
        },
    ));
    during.push(d.send(
        &mut sim,
        east[0],
        Command::SAdd {
            key: b("typed"),
            members: vec![b("m")],
        },
    ));
    during.push(d.send(
        &mut sim,
        east[1],
        Command::Set {
            key: b("reg"),
            value: b("east"),
            ttl_ms: None,
        },
    ));
    // eu-west side, concurrently.
    during.push(d.send(
        &mut sim,
        west[0],
        Command::IncrBy {
            key: b("ctr"),
            by: 5,
        },
    ));
    during.push(d.send(
        &mut sim,
        west[1],
        Command::SAdd {
            key: b("set"),
            members: vec![b("contested"), b("west")],
        },
    ));
    during.push(d.send(
        &mut sim,
        west[2],
        Command::HIncrBy {
            key: b("map"),
            field: b("f2"),
            by: 7,
        },
    ));
    during.push(d.send(
        &mut sim,
        west[0],
        Command::Set {
            key: b("gone"),
            value: b("back"),
            ttl_ms: None,
        },
    ));
    during.push(d.send(
        &mut sim,
        west[1],
        Command::Expire {
            key: b("exp"),
            ttl_ms: 900_000,
        },
    ));
    during.push(d.send(
        &mut sim,
        west[2],
        Command::IncrBy {
            key: b("typed"),
            by: 1,
        },
    ));
    sim.run_until(START_MS + 2_500);
    during.push(d.send(
        &mut sim,
        west[0],
        Command::Set {
            key: b("reg"),
            value: b("west-later"),
            ttl_ms: None,
        },
    ));
    sim.run_until(START_MS + 5_000);
    d.collect(&mut sim);
    for id in &during {
        assert!(
            d.ok(*id).is_some(),
            "write {id} failed during the partition: {:?}",
            d.answers.get(id)
        );
    }
    // While cut off, us-east has not seen eu-west's increment.
    assert_eq!(
        sim.node(east[0])
            .keyspace()
            .counter(b"ctr", sim.now_ms())
            .unwrap(),
        Some(7)
    );
    assert!(sim
        .node(east[0])
        .geo_stats(sim.now_ms())
        .iter()
        .any(|l| l.backlog_deltas > 0));

    sim.heal();
    sim.run_until(START_MS + 20_000);
    let keys: BTreeSet<Bytes> = ["ctr", "set", "map", "gone", "exp", "typed", "reg"]
        .into_iter()
        .map(b)
        .collect();
    assert_identical(&sim, &keys).unwrap();
    let now = sim.now_ms();
    let ks = sim.node(sim.nodes_of("ap-south")[1]).keyspace();
    assert_eq!(ks.counter(b"ctr", now).unwrap(), Some(12), "10 - 3 + 5");
    let members: Vec<Bytes> = ks.smembers(b"set", now).unwrap();
    assert_eq!(
        members,
        vec![b("both"), b("contested"), b("west")],
        "add wins over the concurrent remove"
    );
    assert_eq!(
        ks.hget(b"map", b"f", now).unwrap(),
        None,
        "the removal saw f; nothing re-wrote it"
    );
    assert_eq!(ks.hget(b"map", b"f2", now).unwrap(), Some(b("7")));
    assert_eq!(
        ks.get(b"gone", now).unwrap(),
        Some(b("back")),
        "the delete removed only what it saw"
    );
    // eu-west's 900 s deadline beats us-east's concurrent 600 s one.
    assert!(
        matches!(ks.ttl(b"exp", now), Ttl::Ms(ms) if ms > 800_000),
        "{:?}",
        ks.ttl(b"exp", now)
    );
    assert_eq!(ks.type_of(b"typed", now), Some(Kind::Set), "set > counter");
    assert_eq!(
        ks.get(b"reg", now).unwrap(),
        Some(b("west-later")),
        "the later HLC wins"
    );
    for l in sim.node(east[0]).geo_stats(now) {
        assert_eq!(l.backlog_deltas, 0, "{l:?}");
    }
}

#[derive(Default)]
struct Ledger {
    applied: BTreeMap<String, i64>,
    written: BTreeMap<String, BTreeSet<String>>,
    commands: BTreeMap<u64, Command>,
}

fn run_seed(seed: u64, config: NodeConfig) -> Result<(), String> {
    let net = NetConfig {
        loss: 0.02,
        duplicate: 0.02,
        ..NetConfig::default()
    };
    let mut sim = sim_with(seed, net, config);
    let ids = sim.node_ids();
    let regions = ["us-east", "eu-west", "ap-south"];
    let mut d = Driver {
        next_id: 1,
        answers: BTreeMap::new(),
    };
    let mut ledger = Ledger::default();
    let cut = regions[sim.rng().below(3) as usize];
    let (cut_from, cut_to) = (
        START_MS + 300 + sim.rng().below(500),
        START_MS + 1_200 + sim.rng().below(800),
    );
    while sim.now_ms() < START_MS + 2_500 {
        if sim.now_ms() >= cut_from && sim.now_ms() < cut_to {
            sim.partition_region(cut);
        } else {
            sim.heal();
        }
        for _ in 0..sim.rng().below(4) {
            let k = sim.rng().below(5);
            let n = d.next_id;
            let command = match sim.rng().below(5) {
                0 => Command::IncrBy {
                    key: b(&format!("c{k}")),
                    by: 1 + sim.rng().below(9) as i64,
                },
                1 => Command::SAdd {
                    key: b(&format!("s{k}")),
                    members: vec![b(&format!("m{}", n % 7))],
                },
                2 => Command::SRem {
                    key: b(&format!("s{k}")),
                    members: vec![b(&format!("m{}", n % 7))],
                },
                3 => Command::Set {
                    key: b(&format!("r{k}")),
                    value: b(&format!("v{n}")),
                    ttl_ms: None,
                },
                _ => Command::HIncrBy {
                    key: b("h"),
                    field: b(&format!("f{k}")),
                    by: 1,
                },
            };
            if let Command::Set { key, value, .. } = &command {
                ledger.written.entry(s(key)).or_default().insert(s(value));
            }
            let to = ids[sim.rng().below(ids.len() as u64) as usize];
            let id = d.send(&mut sim, to, command.clone());
            ledger.commands.insert(id, command);
        }
        let until = sim.now_ms() + 10;
        sim.run_until(until);
    }
    sim.heal();
    sim.run_until(START_MS + 30_000);
    d.collect(&mut sim);
    for (id, command) in &ledger.commands {
        let applied = match d.answers.get(id).map(|r| &r.result) {
            Some(Ok(_)) | Some(Err(ErrorReply::QuorumNotReached { .. })) => true,
            Some(Err(e)) => return Err(format!("request {id} ({command:?}) failed: {e}")),
            None => return Err(format!("request {id} ({command:?}) never answered")),
        };
        if let (Command::IncrBy { key, by }, true) = (command, applied) {
            *ledger.applied.entry(s(key)).or_default() += by;
        }
    }
    let keys: BTreeSet<Bytes> = ledger
        .commands
        .values()
        .filter_map(|c| c.key().cloned())
        .collect();
    assert_identical(&sim, &keys)?;
    let now = sim.now_ms();
    let ks = sim.node(ids[4]).keyspace();
    for (key, sum) in &ledger.applied {
        let got = ks.counter(key.as_bytes(), now).map_err(|e| e.to_string())?;
        if got != Some(*sum) {
            return Err(format!(
                "counter {key}: {got:?}, expected the sum of increments {sum}"
            ));
        }
    }
    for (key, values) in &ledger.written {
        let got = ks.get(key.as_bytes(), now).map_err(|e| e.to_string())?;
        if !got.as_ref().is_some_and(|v| values.contains(&s(v))) {
            return Err(format!("register {key}: {got:?} was never written"));
        }
    }
    Ok(())
}

fn s(b: &Bytes) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn random_writes_in_every_region_with_a_region_cut_off_converge_everywhere() {
    check_seeds(
        "sim_geo",
        "random_writes_in_every_region",
        0x6e0_0000,
        5,
        |seed| run_seed(seed, config()),
    );
}

#[test]
fn delta_shipping_alone_converges_without_digest_repair() {
    let config = NodeConfig {
        digest_interval_ms: u64::MAX / 4,
        ..config()
    };
    check_seeds("sim_geo", "delta_shipping_alone", 0x6e0_0000, 5, |seed| {
        run_seed(seed, config.clone())
    });
}

#[test]
fn digest_repair_alone_converges_when_every_delta_buffer_overflows() {
    // A buffer of one delta per link: almost every delta is dropped, so
    // convergence rests on the digest comparison between regions.
    let config = NodeConfig {
        geo_buffer_max: 1,
        ..config()
    };
    check_seeds("sim_geo", "digest_repair_alone", 0x6e0_0000, 5, |seed| {
        run_seed(seed, config.clone())
    });
}
