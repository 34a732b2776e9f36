//! Deterministic simulation of node crashes in a region of three nodes
//! (N = 3, W = quorum): with a data directory (a crash keeps the disk) and
//! without one (a crash loses everything and the node rejoins empty).
//!
//! `MERIDIAN_SIM_SEEDS=N` runs N seeds per test (default 100, a quarter of
//! them here); `MERIDIAN_SIM_SEED=S` replays one.

use meridian::crdt::Bytes;
use meridian::keyspace::ScanBudget;
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

#[derive(Clone, Copy)]
enum Disk {
    /// Nodes persist; a crash keeps the disk.
    Kept,
    /// Nodes are pure caches; a crash loses everything.
    None,
}

fn s(b: &Bytes) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn run_seed(seed: u64, disk: Disk) -> Result<(), String> {
    run_seed_with(seed, disk, false).map(|_| ())
}

/// One seed's run; with `batch`, nodes take in each millisecond's messages
/// in one pass (replicates and acks travel bundled); returns the bundles
/// sent.
fn run_seed_with(seed: u64, disk: Disk, batch: bool) -> Result<u64, String> {
    let topology = Topology::parse(REGION_OF_THREE, "sim.toml").map_err(|e| e.to_string())?;
    let config = NodeConfig {
        write_timeout_ms: 200,
        hint_retry_ms: 100,
        digest_interval_ms: 300,
        persist: matches!(disk, Disk::Kept),
        ..NodeConfig::default()
    };
    let net = NetConfig {
        latency_ms_min: 1,
        latency_ms_max: 10,
        loss: 0.02,
        duplicate: 0.02,
        batch_same_ms: batch,
        ..NetConfig::default()
    };
    let mut sim = Sim::new(topology, config, net, seed, START_MS);
    // Every node's clock is off by up to 200 ms and drifts, within the HLC bound.
    sim.skew_clocks(SKEW_MS_MAX, DRIFT_PPM_MAX);
    let ids = sim.node_ids();
    let mut commands: BTreeMap<u64, Command> = BTreeMap::new();
    let mut next_id = 1u64;
    let mut down: Option<(usize, u64)> = None;
    let mut last_crash_ms = START_MS;
    // With no disk a node must be repaired (digests) before another may
    // crash: at most W - 1 = 1 replica fails at a time.
    let crash_gap_ms = match disk {
        Disk::Kept => 300,
        Disk::None => 3_000,
    };
    while sim.now_ms() < START_MS + 6_000 {
        let now = sim.now_ms();
        match down {
            Some((i, until)) if now >= until => {
                sim.restart(ids[i]);
                down = None;
                last_crash_ms = now;
            }
            None if now >= last_crash_ms + crash_gap_ms && sim.rng().chance(0.02) => {
                let i = sim.rng().below(3) as usize;
                sim.crash(ids[i]);
                down = Some((i, now + 100 + sim.rng().below(900)));
            }
            // With disks, sometimes the whole region goes down at once (a
            // power cut) and restarts: only the data directories keep the data.
            None if matches!(disk, Disk::Kept)
                && now >= last_crash_ms + crash_gap_ms
                && sim.rng().chance(0.002) =>
            {
                for id in &ids {
                    sim.crash(*id);
                }
                let until = now + 200;
                sim.run_until(until);
                for id in &ids {
                    sim.restart(*id);
                }
                last_crash_ms = sim.now_ms();
            }
            _ => {}
        }
        for _ in 0..sim.rng().below(3) {
            let id = next_id;
            next_id += 1;
            let command = sim.counter_or_set_write(id, 3);
            commands.insert(id, command.clone());
            // Clients talk to nodes that are up (a real client fails over).
            let live: Vec<usize> = (0..3)
                .filter(|i| down.is_none_or(|(d, _)| d != *i))
                .collect();
            let to = ids[live[sim.rng().below(live.len() as u64) as usize]];
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
    }
    if let Some((i, _)) = down {
        sim.restart(ids[i]);
    }
    let until = sim.now_ms() + 10_000;
    sim.run_until(until);

    let mut acked: BTreeMap<String, i64> = BTreeMap::new();
    let mut maybe: BTreeMap<String, i64> = BTreeMap::new();
    let mut members: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let answers: BTreeMap<u64, Result<(), ErrorReply>> = sim
        .take_responses()
        .into_iter()
        .map(|(c, r)| (c, r.result.map(|_| ())))
        .collect();
    for (id, command) in &commands {
        let outcome = answers.get(id);
        match command {
            Command::IncrBy { key, by } => match outcome {
                Some(Ok(())) => *acked.entry(s(key)).or_default() += by,
                // Not acknowledged, or no answer (its node crashed): it may or may not count.
                Some(Err(ErrorReply::QuorumNotReached { .. })) | None => {
                    *maybe.entry(s(key)).or_default() += by
                }
                Some(Err(e)) => return Err(format!("increment {id} refused: {e}")),
            },
            Command::SAdd { key, members: m } => {
                if let Some(Ok(())) = outcome {
                    members.entry(s(key)).or_default().extend(m.iter().map(s));
                }
            }
            _ => {}
        }
    }
    let now = sim.now_ms();
    for k in 0..3 {
        for key in [format!("c{k}"), format!("s{k}")] {
            let states: Vec<_> = ids
                .iter()
                .map(|id| sim.node(*id).keyspace().state(key.as_bytes()))
                .collect();
            if states.iter().any(|st| *st != states[0]) {
                return Err(format!("replicas of {key} diverged"));
            }
        }
    }
    for id in &ids {
        let ks = sim.node(*id).keyspace();
        for (key, sum) in &acked {
            let value = ks
                .counter(key.as_bytes(), now)
                .map_err(|e| e.to_string())?
                .unwrap_or(0);
            let extra = maybe.get(key).copied().unwrap_or(0);
            if value < *sum || value > sum + extra {
                return Err(format!(
                    "counter {key} on {id:?}: {value}, acknowledged {sum}, unacknowledged {extra}"
                ));
            }
        }
        for (key, want) in &members {
            let got: BTreeSet<String> = ks
                .smembers(key.as_bytes(), now)
                .map_err(|e| e.to_string())?
                .iter()
                .map(s)
                .collect();
            if let Some(lost) = want.difference(&got).next() {
                return Err(format!(
                    "set {key} on {id:?}: acknowledged member {lost} lost"
                ));
            }
        }
        // A scan, page by page, finds every key a pass over the tables
        // finds, through the crashes, restores and transfers of the run.
        let mut held = BTreeSet::new();
        ks.for_each_in_range(0..=u64::MAX, |key, _| {
            if ks.visible(key, now).is_some() {
                held.insert(Bytes::from(key));
            }
        });
        let (mut scanned, mut from) = (BTreeSet::new(), 0);
        loop {
            let page = ks.scan_keys(from, ScanBudget::hashes(2), now, |_, _| true);
            for key in page.keys {
                if !scanned.insert(key.clone()) {
                    return Err(format!("scan of {id:?} listed {} twice", s(&key)));
                }
            }
            if page.next == 0 {
                break;
            }
            from = page.next;
        }
        if scanned != held {
            return Err(format!("scan of {id:?}: {scanned:?}, held {held:?}"));
        }
    }
    Ok(sim.bundles)
}

#[test]
fn crashes_with_the_data_directory_lose_no_acknowledged_write() {
    check_seeds(
        "sim_failures",
        "crashes_with_the_data_directory",
        0xfa11_0000,
        4,
        |seed| run_seed(seed, Disk::Kept),
    );
}

#[test]
fn crashes_without_disk_lose_no_acknowledged_write_while_one_replica_fails_at_a_time() {
    check_seeds(
        "sim_failures",
        "crashes_without_disk",
        0xfa11_0000,
        4,
        |seed| run_seed(seed, Disk::None),
    );
}

#[test]
fn crashes_with_bundled_replication_lose_no_acknowledged_write() {
    for (disk, name) in [(Disk::Kept, "with"), (Disk::None, "without")] {
        let mut bundles = 0;
        check_seeds(
            "sim_failures",
            "crashes_with_bundled_replication",
            0xfa11_b000,
            8,
            |seed| {
                bundles +=
                    run_seed_with(seed, disk, true).map_err(|e| format!("{name} disk: {e}"))?;
                Ok(())
            },
        );
        assert!(
            bundles > 0,
            "{name} disk: no replicate or ack was ever bundled"
        );
    }
}

/// A schedule in which a replica missed one increment of a writer (lost
/// with a crash) and then got the next one: it must count that writer once
/// (it read 309 for 270 acknowledged + 7 unacknowledged increments when it
/// kept both entries).
#[test]
fn replica_that_missed_an_increment_counts_its_writer_once() {
    run_seed(4_195_419_999, Disk::None).unwrap();
}

#[test]
fn crashed_node_is_suspected_within_about_a_second_and_trusted_again_when_back() {
    let topology = Topology::parse(REGION_OF_THREE, "sim.toml").unwrap();
    let mut sim = Sim::new(
        topology,
        NodeConfig::default(),
        NetConfig::default(),
        3,
        START_MS,
    );
    let ids = sim.node_ids();
    sim.run_until(START_MS + 10_000);
    assert!(sim.node(ids[0]).is_alive(ids[2]));
    sim.crash(ids[2]);
    let crashed_at = sim.now_ms();
    let mut detected = None;
    while sim.now_ms() < crashed_at + 5_000 {
        let until = sim.now_ms() + 10;
        sim.run_until(until);
        if detected.is_none() && !sim.node(ids[0]).is_alive(ids[2]) {
            detected = Some(sim.now_ms() - crashed_at);
        }
    }
    let detected = detected.expect("the crash is detected");
    assert!(
        (500..=2_000).contains(&detected),
        "detected after {detected} ms"
    );
    assert!(sim
        .node(ids[1])
        .status(sim.now_ms())
        .peers_suspected
        .contains(&ids[2].0));
    assert!(
        sim.node(ids[0]).is_alive(ids[1]),
        "no false suspicion of a live peer"
    );
    sim.restart(ids[2]);
    let until = sim.now_ms() + 2_000;
    sim.run_until(until);
    assert!(sim.node(ids[0]).is_alive(ids[2]));
}

/// A restarted node gets every key it replicates streamed by its peers at
/// once, with anti-entropy and hints switched off: nothing else could bring
/// back the keys it lost (restarted empty) or missed while down (restarted
/// from its disk).
#[test]
fn a_restarted_node_catches_up_by_bulk_transfer() {
    for (seed, disk) in [
        (1u64, Disk::None),
        (2, Disk::None),
        (3, Disk::Kept),
        (4, Disk::Kept),
    ] {
        let topology = Topology::parse(REGION_OF_THREE, "sim.toml").unwrap();
        let config = NodeConfig {
            digest_interval_ms: u64::MAX / 4,
            hint_retry_ms: u64::MAX / 4,
            persist: matches!(disk, Disk::Kept),
            ..NodeConfig::default()
        };
        let net = NetConfig {
            latency_ms_min: 1,
            latency_ms_max: 10,
            loss: 0.0, // with hints off, a lost write would stay on one replica
            duplicate: 0.02,
            ..NetConfig::default()
        };
        let mut sim = Sim::new(topology, config, net, seed, START_MS);
        let ids = sim.node_ids();
        let keys = 3_000u64;
        let write = |sim: &mut Sim, id: u64| {
            let command = sim.counter_or_set_write(id, keys);
            let (to, write) = if id <= keys {
                (
                    ids[(id % 3) as usize],
                    meridian::topology::WriteConsistency::All,
                )
            } else {
                (
                    ids[(id % 2) as usize],
                    meridian::topology::WriteConsistency::Quorum,
                )
            };
            sim.client_request(
                to,
                id,
                Request {
                    id,
                    command,
                    write: Some(write),
                    read: None,
                },
            );
            if id.is_multiple_of(50) {
                let until = sim.now_ms() + 5;
                sim.run_until(until);
            }
        };
        for id in 1..=keys {
            write(&mut sim, id);
        }
        let until = sim.now_ms() + 3_000;
        sim.run_until(until);
        match disk {
            Disk::None => sim.crash_losing_disk(ids[2]),
            Disk::Kept => sim.crash(ids[2]),
        }
        // Written while it is down, at quorum (the other two).
        for id in keys + 1..=2 * keys {
            write(&mut sim, id);
        }
        let until = sim.now_ms() + 3_000;
        sim.run_until(until);
        sim.restart(ids[2]);
        assert_eq!(
            sim.node(ids[2]).keyspace().is_empty(),
            matches!(disk, Disk::None)
        );
        let until = sim.now_ms() + 5_000;
        sim.run_until(until);
        let mut held = BTreeSet::new();
        for id in [ids[0], ids[1]] {
            sim.node(id)
                .keyspace()
                .for_each_in_range(0..=u64::MAX, |key, _| {
                    held.insert(key.to_vec());
                });
        }
        assert!(held.len() > 1_500);
        assert_eq!(
            sim.node(ids[2]).keyspace().len(),
            held.len(),
            "seed {seed}: the restarted node holds every key again"
        );
        assert!(!sim.node(ids[2]).catching_up(), "seed {seed}");
        let streamed: u64 = [ids[0], ids[1]]
            .iter()
            .map(|id| sim.node(*id).stats().catch_up_keys_sent)
            .sum();
        assert!(
            streamed >= held.len() as u64,
            "seed {seed}: {streamed} keys streamed"
        );
        for id in [ids[0], ids[1]] {
            sim.node(id)
                .keyspace()
                .for_each_in_range(0..=u64::MAX, |key, state| {
                    let mut theirs = sim
                        .node(ids[2])
                        .keyspace()
                        .state(key)
                        .unwrap_or_else(|| panic!("seed {seed}: key {key:?} missing"));
                    let before = theirs.clone();
                    theirs.join(state);
                    assert_eq!(theirs, before, "seed {seed}: key {key:?} is behind");
                });
        }
    }
}
