//! Deterministic simulation of membership changes inside a region (N = 3,
//! W = quorum): a 4th node joins a region of three under a write load, then
//! one of the original nodes is removed, over a lossy, duplicating network.
//! Checks that only the key copies that change owner move (each exactly
//! once, to its new owner), that quorum reads during the moves see every
//! write acknowledged before them, that every replica of every key
//! converges, that no acknowledged write is lost, and that nodes drop the
//! keys they no longer hold.
//!
//! `MERIDIAN_SIM_SEEDS=N` runs N/4 seeds (default 100, so 25); `MERIDIAN_SIM_SEED=S`
//! replays one.

use meridian::crdt::{Bytes, ReplicaId};
use meridian::node::NodeConfig;
use meridian::protocol::{Answer, Command, Reply, Request};
use meridian::sim::{check_seeds, NetConfig, Sim};
use meridian::topology::{ReadConsistency, Topology};
use std::collections::BTreeMap;

const START_MS: u64 = 1_800_000_000_000;
const KEYS: u64 = 60;

fn topology(nodes: &[u32]) -> Topology {
    let mut text = String::from(
        "[cluster]\nname = \"sim\"\nreplication_factor = 3\nwrite_consistency = \"quorum\"\n\
         [[region]]\nname = \"r\"\n",
    );
    for n in nodes {
        text.push_str(&format!(
            "[[region.node]]\nid = \"n{n}\"\nclient_addr = \"127.0.0.1:{}\"\npeer_addr = \"127.0.0.1:{}\"\n",
            9100 + n,
            9200 + n
        ));
    }
    Topology::parse(&text, "sim.toml").expect("a valid topology")
}

fn s(b: &Bytes) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn replica(t: &Topology, id: &str) -> ReplicaId {
    t.node(id).expect("a node of the topology").replica
}

/// Key copies whose owner set gains a node between `before` and `after`.
fn copies_moving(before: &Topology, after: &Topology, keys: &[String]) -> u64 {
    let (b, a) = (
        meridian::placement::Placement::new(before),
        meridian::placement::Placement::new(after),
    );
    keys.iter()
        .map(|k| {
            let old = b.preference_list("r", k.as_bytes()).unwrap();
            let new = a.preference_list("r", k.as_bytes()).unwrap();
            new.iter().filter(|r| !old.contains(r)).count() as u64
        })
        .sum()
}

struct Workload {
    commands: BTreeMap<u64, Command>,
    /// Quorum counter reads: request id → (key, sum acknowledged when sent).
    reads: BTreeMap<u64, (String, i64)>,
    /// Whether reads sent now are checked (not while a node that lost its
    /// data catches up: that is a replica lost, not a membership change).
    check_reads: bool,
    acked: BTreeMap<String, i64>,
    next_id: u64,
    /// The first quorum read that missed an acknowledged write.
    violation: Option<String>,
}

impl Workload {
    /// No command sent yet; reads are checked.
    fn new() -> Workload {
        Workload {
            commands: BTreeMap::new(),
            reads: BTreeMap::new(),
            acked: BTreeMap::new(),
            next_id: 1,
            violation: None,
            check_reads: true,
        }
    }

    fn step(&mut self, sim: &mut Sim, live: &[ReplicaId]) {
        self.collect(sim);

        for _ in 0..sim.rng().below(4) {
            let id = self.next_id;
            self.next_id += 1;
            let key = format!("c{}", sim.rng().below(KEYS));
            let to = live[sim.rng().below(live.len() as u64) as usize];
            let request = if sim.rng().chance(0.3) {
                let floor = if self.check_reads {
                    self.acked.get(&key).copied().unwrap_or(0)
                } else {
                    0
                };
                self.reads.insert(id, (key.clone(), floor));
                Request {
                    id,
                    command: Command::CounterGet {
                        key: Bytes::from(key.as_str()),
                    },
                    write: None,
                    read: Some(ReadConsistency::Quorum),
                }
            } else {
                let command = Command::IncrBy {
                    key: Bytes::from(key.as_str()),
                    by: 1 + sim.rng().below(5) as i64,
                };
                self.commands.insert(id, command.clone());
                Request {
                    id,
                    command,
                    write: None,
                    read: None,
                }
            };
            sim.client_request(to, id, request);
        }
        let until = sim.now_ms() + 10;
        sim.run_until(until);
    }

    /// Takes the responses received: acknowledged increments, and checks
    /// quorum reads.
    fn collect(&mut self, sim: &mut Sim) {
        for (id, r) in sim.take_responses() {
            let Some(Command::IncrBy { key, by }) = self.commands.get(&id) else {
                if let Some((key, floor)) = self.reads.get(&id) {
                    // A read that answers must see every write acknowledged before it.
                    if let Ok(Answer {
                        reply: Reply::Int(v),
                        ..
                    }) = &r.result
                    {
                        if v < floor && self.violation.is_none() {
                            self.violation = Some(format!(
                                "at {} ms, a quorum read of {key} saw {v}, {floor} were acknowledged before it",
                                sim.now_ms() - START_MS
                            ));
                        }
                    }
                    if let Ok(Answer {
                        reply: Reply::Nil, ..
                    }) = &r.result
                    {
                        if *floor != 0 && self.violation.is_none() {
                            self.violation = Some(format!(
                                "at {} ms, a quorum read of {key} saw nothing, {floor} were acknowledged before it",
                                sim.now_ms() - START_MS
                            ));
                        }
                    }
                }
                continue;
            };
            if r.result.is_ok() {
                *self.acked.entry(s(key)).or_default() += by;
            }
            self.commands.remove(&id);
        }
    }
}

/// Replicas that time writes out, retry hints and compare digests at the
/// pace of these tests ([`NO_DIGESTS`] leaves anti-entropy out).
fn config(digest_interval_ms: u64) -> NodeConfig {
    NodeConfig {
        write_timeout_ms: 200,
        hint_retry_ms: 100,
        digest_interval_ms,
        ..NodeConfig::default()
    }
}

/// No digest comparison during a test: what it checks must hold without
/// anti-entropy.
const NO_DIGESTS: u64 = 3_600_000;

/// A network that loses and duplicates 2 % of messages.
fn lossy_net() -> NetConfig {
    NetConfig {
        latency_ms_min: 1,
        latency_ms_max: 10,
        loss: 0.02,
        duplicate: 0.02,
        ..NetConfig::default()
    }
}

/// A network that delivers every message once, in 1–5 ms.
fn clean_net() -> NetConfig {
    NetConfig {
        latency_ms_min: 1,
        latency_ms_max: 5,
        ..NetConfig::default()
    }
}

/// Runs `sim` until every one of `members` finished its rebalance.
fn run_until_finished(sim: &mut Sim, members: &[ReplicaId]) {
    let changed_at = sim.now_ms();
    while !all_finished(sim, members) {
        assert!(
            sim.now_ms() < changed_at + 30_000,
            "the change did not finish"
        );
        let until = sim.now_ms() + 50;
        sim.run_until(until);
    }
}

fn all_finished(sim: &Sim, ids: &[ReplicaId]) -> bool {
    ids.iter()
        .all(|id| sim.node(*id).rebalance_status().finished)
}

fn run_seed(seed: u64, restart: bool) -> Result<(), String> {
    let three = topology(&[1, 2, 3]);
    let four = topology(&[1, 2, 3, 4]);
    let after_removal = topology(&[1, 3, 4]);
    let keys: Vec<String> = (0..KEYS).map(|k| format!("c{k}")).collect();
    let mut sim = Sim::new(three.clone(), config(300), lossy_net(), seed, START_MS);
    let (n1, n2, n3, n4) = (
        replica(&four, "n1"),
        replica(&four, "n2"),
        replica(&four, "n3"),
        replica(&four, "n4"),
    );
    let mut w = Workload::new();
    // Load, then let every write reach every replica before the join, so
    // the transfer's size is known exactly.
    while sim.now_ms() < START_MS + 1_000 {
        w.step(&mut sim, &[n1, n2, n3]);
    }
    let until = sim.now_ms() + 3_000;
    sim.run_until(until);
    let held_before: u64 = [n1, n2, n3]
        .iter()
        .map(|id| sim.node(*id).keyspace().len() as u64)
        .sum();

    // A 4th node joins, under load.
    sim.set_topology(four.clone()).map_err(|e| e.to_string())?;
    let join_at = sim.now_ms();
    let present: Vec<String> = keys
        .iter()
        .filter(|k| sim.node(n1).keyspace().state(k.as_bytes()).is_some())
        .cloned()
        .collect();
    let ideal = copies_moving(&three, &four, &present);
    let planned: u64 = [n1, n2, n3]
        .iter()
        .map(|id| sim.node(*id).rebalance_status().keys_total)
        .sum();
    if planned != ideal {
        return Err(format!(
            "join: {planned} key copies planned to move, {ideal} change owner"
        ));
    }
    if ideal * 10 > held_before * 5 {
        return Err(format!("join moves {ideal} of {held_before} key copies"));
    }
    while !all_finished(&sim, &[n1, n2, n3, n4]) {
        if sim.now_ms() > join_at + 30_000 {
            return Err("the join did not finish in 30 s".into());
        }
        w.step(&mut sim, &[n1, n2, n3, n4]);
    }
    let join_done = sim.now_ms();
    let sent: u64 = [n1, n2, n3]
        .iter()
        .map(|id| sim.node(*id).rebalance_status().keys_sent)
        .sum();
    if sent != planned {
        return Err(format!("join: {sent} of {planned} key copies acknowledged"));
    }
    // The old owners of the moved copies dropped them.
    let placement = meridian::placement::Placement::new(&four);
    let mut dropped = 0;
    for id in [n1, n2, n3] {
        dropped += sim.node(id).rebalance_status().keys_dropped;
        for key in &keys {
            let owners = placement.preference_list("r", key.as_bytes()).unwrap();
            let node = sim.node(id);
            // (A fallback of the sloppy quorum may hold it for a replica.)
            if node.keyspace().state(key.as_bytes()).is_some()
                && !owners.contains(&id)
                && !node.is_guest(key.as_bytes())
            {
                return Err(format!("after the join, {id:?} still holds {key}"));
            }
        }
    }
    // (The count differs from the moved copies: keys created during the
    // join may have reached an old owner through a quorum read's repair,
    // and a fallback of the sloppy quorum forgets what it handed back.)
    if ideal > 0 && dropped == 0 {
        return Err(format!("join: {dropped} key copies dropped, {ideal} moved"));
    }

    if restart {
        // A node crashes, losing everything, and restarts with the new
        // membership: it catches up from its peers (hints, read repair,
        // anti-entropy by the new ring) while the load goes on.
        let ids = [n1, n2, n3, n4];
        let down = ids[sim.rng().below(4) as usize];
        w.check_reads = false;
        sim.crash(down);
        let live: Vec<ReplicaId> = ids.iter().copied().filter(|id| *id != down).collect();
        let until = sim.now_ms() + 500;
        while sim.now_ms() < until {
            w.step(&mut sim, &live);
        }
        sim.restart(down);
        let until = sim.now_ms() + 3_000;
        while sim.now_ms() < until {
            w.step(&mut sim, &ids);
        }
        // Caught up by now (digest comparisons run every 300 ms here).
        w.check_reads = true;
    }

    // n2 leaves, under load: it hands its keys over, then stops.
    sim.set_topology(after_removal.clone())
        .map_err(|e| e.to_string())?;
    let leave_at = sim.now_ms();
    if !sim.node(n2).rebalance_status().leaving {
        return Err("n2 does not know it leaves".into());
    }
    while !sim.node(n2).rebalance_status().finished || !all_finished(&sim, &[n1, n3, n4]) {
        if sim.now_ms() > leave_at + 30_000 {
            let states: Vec<String> = [n1, n2, n3, n4]
                .iter()
                .map(|id| format!("{id:?}: {:?}", sim.node(*id).rebalance_status()))
                .collect();
            return Err(format!(
                "the removal did not finish in 30 s: {}",
                states.join("; ")
            ));
        }
        w.step(&mut sim, &[n1, n3, n4]);
    }
    sim.retire(n2);
    while sim.now_ms() < leave_at + 2_000 {
        w.step(&mut sim, &[n1, n3, n4]);
    }
    // Quiet: hints and anti-entropy settle the last writes.
    let until = sim.now_ms() + 10_000;
    sim.run_until(until);
    w.collect(&mut sim);

    if let Some(v) = w.violation {
        return Err(format!(
            "{v} (join at {} ms, finished at {} ms; removal at {} ms)",
            join_at - START_MS,
            join_done - START_MS,
            leave_at - START_MS
        ));
    }
    let placement = meridian::placement::Placement::new(&after_removal);
    let now = sim.now_ms();
    for key in &keys {
        let owners = placement.preference_list("r", key.as_bytes()).unwrap();
        let states: Vec<_> = owners
            .iter()
            .map(|id| sim.node(*id).keyspace().state(key.as_bytes()))
            .collect();
        if states.iter().any(|st| *st != states[0]) {
            return Err(format!("replicas of {key} diverged"));
        }
        for id in [n1, n3, n4] {
            let holds = sim.node(id).keyspace().state(key.as_bytes()).is_some();
            if holds && !owners.contains(&id) && !sim.node(id).is_guest(key.as_bytes()) {
                return Err(format!(
                    "{id:?} still holds {key}, which it no longer replicates"
                ));
            }
        }
        let acked = w.acked.get(key).copied().unwrap_or(0);
        let value = sim
            .node(owners[0])
            .keyspace()
            .counter(key.as_bytes(), now)
            .map_err(|e| e.to_string())?
            .unwrap_or(0);
        if value < acked {
            return Err(format!("counter {key}: {value}, acknowledged {acked}"));
        }
    }
    Ok(())
}

#[test]
fn a_node_joins_and_another_leaves_under_load_without_losing_acknowledged_writes() {
    check_seeds(
        "sim_membership",
        "a_node_joins_and_another_leaves",
        0x3e3b_0000,
        4,
        |seed| run_seed(seed, false),
    );
}

#[test]
fn a_node_restarted_without_its_data_after_a_join_catches_up_and_survives_a_removal() {
    check_seeds(
        "sim_membership",
        "a_node_restarted_without_its_data",
        0x3e3c_0000,
        4,
        |seed| run_seed(seed, true),
    );
}

/// A node that is down is removed from the region (and, with `then_add`,
/// another joins before the removal finished): the keys the departed node
/// was to send are sent by the others, the changes finish, and every
/// owner holds every acknowledged write without waiting for anti-entropy.
fn run_departed_seed(seed: u64, then_add: bool) -> Result<(), String> {
    let five = topology(&[1, 2, 3, 4, 5]);
    let four = topology(&[1, 2, 3, 4]);
    let joined = topology(&[1, 2, 3, 4, 6]);
    let keys: Vec<String> = (0..KEYS).map(|k| format!("c{k}")).collect();
    // The moves alone must put every key where it belongs.
    let mut sim = Sim::new(
        five.clone(),
        config(NO_DIGESTS),
        lossy_net(),
        seed,
        START_MS,
    );
    let ids: Vec<ReplicaId> = (1..=6)
        .map(|n| {
            replica(
                &if n == 6 { joined.clone() } else { five.clone() },
                &format!("n{n}"),
            )
        })
        .collect();
    let (staying, n5, n6) = (&ids[..4], ids[4], ids[5]);
    let mut w = Workload::new();
    while sim.now_ms() < START_MS + 1_000 {
        w.step(&mut sim, &ids[..5]);
    }
    let until = sim.now_ms() + 3_000;
    sim.run_until(until);
    // n5 goes down for good; the others suspect it while the load goes on.
    sim.crash(n5);
    let until = sim.now_ms() + 3_000;
    while sim.now_ms() < until {
        w.step(&mut sim, staying);
    }
    sim.set_topology(four.clone()).map_err(|e| e.to_string())?;
    let mut members = staying.to_vec();
    let mut last = four;
    if then_add {
        w.step(&mut sim, staying);
        sim.set_topology(joined.clone())
            .map_err(|e| e.to_string())?;
        members.push(n6);
        last = joined;
    }
    let changed_at = sim.now_ms();
    while !all_finished(&sim, &members) {
        if sim.now_ms() > changed_at + 30_000 {
            let states: Vec<String> = members
                .iter()
                .map(|id| format!("{id:?}: {:?}", sim.node(*id).rebalance_status()))
                .collect();
            return Err(format!(
                "the change did not finish in 30 s: {}",
                states.join("; ")
            ));
        }
        w.step(&mut sim, &members);
    }
    sim.retire(n5);
    // Quiet: hints settle the last writes.
    let until = sim.now_ms() + 3_000;
    sim.run_until(until);
    w.collect(&mut sim);
    if let Some(v) = w.violation {
        return Err(v);
    }
    let placement = meridian::placement::Placement::new(&last);
    let now = sim.now_ms();
    for key in &keys {
        let acked = w.acked.get(key).copied().unwrap_or(0);
        for owner in placement.preference_list("r", key.as_bytes()).unwrap() {
            let value = sim
                .node(*owner)
                .keyspace()
                .counter(key.as_bytes(), now)
                .map_err(|e| e.to_string())?
                .unwrap_or(0);
            if value < acked {
                let all: Vec<String> = members
                    .iter()
                    .map(|id| {
                        format!(
                            "{id:?}={:?} hints {}",
                            sim.node(*id).keyspace().counter(key.as_bytes(), now),
                            sim.node(*id).hints_pending()
                        )
                    })
                    .collect();
                let lists: Vec<String> = [&five, &topology(&[1, 2, 3, 4]), &last]
                    .iter()
                    .map(|t| {
                        format!(
                            "{:?}",
                            meridian::placement::Placement::new(t)
                                .preference_list("r", key.as_bytes())
                                .unwrap()
                        )
                    })
                    .collect();
                return Err(format!(
                    "{owner:?}, an owner of counter {key}, holds {value}; {acked} were acknowledged; {}; ids {ids:?}; lists {lists:?}",
                    all.join(", ")
                ));
            }
        }
    }
    Ok(())
}

#[test]
fn a_node_removed_while_down_has_its_keys_sent_by_the_others() {
    check_seeds(
        "sim_membership",
        "a_node_removed_while_down",
        0x3e3d_0000,
        4,
        |seed| run_departed_seed(seed, false),
    );
}

#[test]
fn a_node_added_before_the_removal_of_a_down_node_finished_gets_every_key() {
    check_seeds(
        "sim_membership",
        "a_node_added_before_the_removal_of_a_down_node",
        0x3e3e_0000,
        4,
        |seed| run_departed_seed(seed, true),
    );
}

/// A write acknowledged by a node and one other old replica only (the
/// third missed it, and the hint for it dies with the first node): the
/// first node is removed while down and two nodes join in the same change,
/// so the other old replica stops owning the key. It must send its copy
/// before it drops it: the write survives, read at quorum from the new
/// owners, with anti-entropy off.
#[test]
fn a_write_held_only_by_a_down_departed_node_and_one_that_stops_owning_the_key_survives() {
    use meridian::placement::Placement;
    use meridian::protocol::Reply;
    let five = topology(&[1, 2, 3, 4, 5]);
    let p5 = Placement::new(&five);
    // A node D and a key whose old replicas are [D, S, X] and whose new
    // ones (D gone, n6 and n7 added) leave X out.
    let mut found = None;
    'search: for d in 1..=5u32 {
        let members: Vec<u32> = (1..=7).filter(|n| *n != d).collect();
        let after = topology(&members);
        let pn = Placement::new(&after);
        let dr = replica(&five, &format!("n{d}"));
        for i in 0..10_000 {
            let key = format!("k{i}");
            let old = p5.preference_list("r", key.as_bytes()).unwrap().to_vec();
            let new = pn.preference_list("r", key.as_bytes()).unwrap().to_vec();
            if old[0] == dr && !new.contains(&old[2]) {
                found = Some((dr, key, after, old, new));
                break 'search;
            }
        }
    }
    let (d, key, after, old, new) = found.expect("such a key among 10,000");
    let (s, _x) = (old[1], old[2]);
    let config = NodeConfig {
        sloppy_quorum: false,
        ..config(NO_DIGESTS)
    };
    let mut sim = Sim::new(five.clone(), config, clean_net(), 7, START_MS);
    let until = sim.now_ms() + 2_000;
    sim.run_until(until);
    // S cannot hear D: D's write reaches X only.
    sim.partition(s, d);
    let incr = Request {
        id: 1,
        command: Command::IncrBy {
            key: Bytes::from(key.as_str()),
            by: 7,
        },
        write: None,
        read: None,
    };
    sim.client_request(d, 1, incr);
    let until = sim.now_ms() + 100;
    sim.run_until(until);
    assert!(
        sim.take_responses().iter().any(|(_, r)| r.result.is_ok()),
        "the write was not acknowledged"
    );
    // D dies with the hint it held for S, and is removed while two join.
    sim.crash(d);
    sim.heal();
    let until = sim.now_ms() + 3_000;
    sim.run_until(until);
    sim.set_topology(after.clone()).unwrap();
    let members: Vec<ReplicaId> = after.nodes().map(|(_, n)| n.replica).collect();
    run_until_finished(&mut sim, &members);
    let until = sim.now_ms() + 5_000;
    sim.run_until(until);
    let read = Request {
        id: 2,
        command: Command::CounterGet {
            key: Bytes::from(key.as_str()),
        },
        write: None,
        read: Some(ReadConsistency::Quorum),
    };
    sim.client_request(new[0], 2, read);
    let until = sim.now_ms() + 500;
    sim.run_until(until);
    let answers = sim.take_responses();
    assert!(
        answers
            .iter()
            .any(|(_, r)| matches!(&r.result, Ok(a) if a.reply == Reply::Int(7))),
        "the acknowledged increment of 7 is lost: {answers:?}"
    );
}

/// A node keeps a key it no longer replicates past a change because it
/// still owes a replica a hint for it, forgets it once the hint is
/// delivered, and replicates it again after a second change. Its new
/// writes to the key must not reuse the dots of its old ones (which the
/// other replicas would take for writes they have and discard).
#[test]
fn a_key_kept_for_a_hint_and_forgotten_later_is_written_under_a_new_writer() {
    use meridian::keyspace::FieldValue;
    use meridian::placement::Placement;
    use meridian::sim::NodeClock;
    let four = topology(&[1, 2, 3, 4]);
    let five = topology(&[1, 2, 3, 4, 5]);
    let (p4, p5) = (Placement::new(&four), Placement::new(&five));
    let n5 = replica(&five, "n5");
    // A key whose third replica M gives way to n5 in the change.
    let (key, old) = (0..10_000)
        .map(|i| format!("k{i}"))
        .find_map(|key| {
            let old = p4.preference_list("r", key.as_bytes()).unwrap().to_vec();
            let new = p5.preference_list("r", key.as_bytes()).unwrap().to_vec();
            (new.contains(&n5) && !new.contains(&old[2])).then_some((key, old))
        })
        .expect("such a key among 10,000");
    let (r, m) = (old[0], old[2]);
    let config = NodeConfig {
        sloppy_quorum: false,
        ..config(NO_DIGESTS)
    };
    let mut sim = Sim::new(four.clone(), config, clean_net(), 11, START_MS);
    let write = |sim: &mut Sim, id: u64, command: Command| {
        let request = Request {
            id,
            command,
            write: None,
            read: None,
        };
        sim.client_request(m, id, request);
        let until = sim.now_ms() + 200;
        sim.run_until(until);
        assert!(
            sim.take_responses().iter().any(|(_, r)| r.result.is_ok()),
            "write {id} was not acknowledged"
        );
    };
    // R's clock is 2 s behind: it refuses M's fresh stamps, so M keeps a
    // hint for R.
    sim.set_clock(
        r,
        NodeClock {
            offset_ms: -2_000,
            drift_ppm: 0,
        },
    );
    let until = sim.now_ms() + 2_000;
    sim.run_until(until);
    let hset = Command::HSet {
        key: Bytes::from(key.as_str()),
        field: Bytes::from("f"),
        value: Bytes::from("x"),
    };
    write(&mut sim, 1, hset);
    let incr = |by| Command::HIncrBy {
        key: Bytes::from(key.as_str()),
        field: Bytes::from("c"),
        by,
    };
    write(&mut sim, 2, incr(5));
    let until = sim.now_ms() + 1_000;
    sim.run_until(until);
    sim.set_topology(five.clone()).unwrap();
    let members: Vec<ReplicaId> = five.nodes().map(|(_, n)| n.replica).collect();
    run_until_finished(&mut sim, &members);
    // R's clock is put right: the hint is delivered and M forgets the key.
    sim.set_clock(
        r,
        NodeClock {
            offset_ms: 0,
            drift_ppm: 0,
        },
    );
    let until = sim.now_ms() + 3_000;
    sim.run_until(until);
    // n5 leaves again and M replicates the key again; cut off from n5 (the
    // key's sender), M writes before it has the key's state back.
    sim.partition(m, n5);
    sim.set_topology(four.clone()).unwrap();
    write(&mut sim, 3, incr(3));
    let until = sim.now_ms() + 1_000;
    sim.run_until(until);
    let now = sim.now_ms();
    let fields = sim.node(r).keyspace().hgetall(key.as_bytes(), now).unwrap();
    assert!(
        fields.contains(&(Bytes::from("c"), FieldValue::Counter(8))),
        "R lost an acknowledged increment: {fields:?}"
    );
    assert!(
        fields.contains(&(Bytes::from("f"), FieldValue::Register(Bytes::from("x")))),
        "R lost a field: {fields:?}"
    );
}
