//! A deterministic simulator of a Meridian region: real [`Node`]s, no
//! sockets, no real time.
//!
//! Every message between nodes goes through a seeded network that delays
//! (uniform latency), drops, duplicates and — through the random delays —
//! reorders it, and that can partition nodes apart. Nodes can crash (losing
//! everything; they restart as a new incarnation) and restart. Time advances
//! from event to event, so a run from a seed replays exactly.
//!
//! Each node reads its own clock: simulated time plus an offset and a
//! drift ([`NodeClock`]), drawn from the seed by [`Sim::skew_clocks`] or set
//! per node with [`Sim::set_clock`]. A node sees only its own clock, for
//! its timers as for the HLC stamps it mints.

mod membership;

use crate::node::{Action, ClientId, Input, Node, NodeConfig};
use crate::protocol::{PeerMsg, Request, Response};
use crate::topology::Topology;
use crdt_types::ReplicaId;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

/// A small, fast, seedable generator (SplitMix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
}

/// How the simulated network misbehaves.
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// Smallest one-way delay.
    pub latency_ms_min: u64,
    /// Largest one-way delay.
    pub latency_ms_max: u64,
    /// Probability a message is lost.
    pub loss: f64,
    /// Probability a message is delivered twice.
    pub duplicate: f64,
    /// Smallest one-way delay between nodes of different regions.
    pub wan_latency_ms_min: u64,
    /// Largest one-way delay between nodes of different regions.
    pub wan_latency_ms_max: u64,
    /// A node takes in every message that reaches it in the same
    /// millisecond before its actions leave, as the network driver handles
    /// a batch of events in one pass: replicates and acks to the same peer
    /// then travel bundled (`ReplicateMany`, `AckMany`).
    pub batch_same_ms: bool,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            latency_ms_min: 1,
            latency_ms_max: 5,
            loss: 0.0,
            duplicate: 0.0,
            wan_latency_ms_min: 40,
            wan_latency_ms_max: 60,
            batch_same_ms: false,
        }
    }
}

/// A node's clock: simulated time shifted by `offset_ms` and running fast
/// (positive) or slow (negative) by `drift_ppm` parts per million since the
/// simulation started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeClock {
    /// How far ahead (positive) or behind the node's clock is at the start.
    pub offset_ms: i64,
    /// How fast it drifts, in millionths (100 = 0.1 ms per second).
    pub drift_ppm: i64,
}

/// The most a simulated clock may drift (a tenth of its rate).
pub const DRIFT_PPM_MAX: i64 = 100_000;

impl NodeClock {
    /// The node's reading at simulated time `sim_ms` of a run started at `start_ms`.
    pub fn local_ms(&self, start_ms: u64, sim_ms: u64) -> u64 {
        let elapsed = sim_ms.saturating_sub(start_ms) as i128;
        let drift = elapsed * i128::from(self.drift_ppm) / 1_000_000;
        let local = i128::from(sim_ms) + i128::from(self.offset_ms) + drift;
        local.clamp(0, i128::from(u64::MAX)) as u64
    }

    /// The first simulated time at which the node's clock reads `local_ms`
    /// or later (never before `start_ms`; `u64::MAX` stays `u64::MAX`).
    pub fn sim_ms(&self, start_ms: u64, local_ms: u64) -> u64 {
        if local_ms == u64::MAX {
            return u64::MAX;
        }
        let rate = 1_000_000 + i128::from(self.drift_ppm);
        let since = i128::from(local_ms) - i128::from(self.offset_ms) - i128::from(start_ms);
        let guess = i128::from(start_ms) + (since * 1_000_000).div_euclid(rate);
        let mut at = guess.clamp(i128::from(start_ms), i128::from(u64::MAX)) as u64;
        // Integer division may land a millisecond or two off either way.
        while self.local_ms(start_ms, at) < local_ms && at < u64::MAX {
            at += 1;
        }
        while at > start_ms && self.local_ms(start_ms, at - 1) >= local_ms {
            at -= 1;
        }
        at
    }
}

#[derive(Debug)]
enum Event {
    Peer {
        to: ReplicaId,
        from: ReplicaId,
        msg: PeerMsg,
    },
    Client {
        to: ReplicaId,
        client: ClientId,
        request: Request,
    },
}

impl Event {
    fn to(&self) -> ReplicaId {
        match self {
            Event::Peer { to, .. } | Event::Client { to, .. } => *to,
        }
    }
}

/// A whole region (or several) of simulated nodes. See the module docs.
pub struct Sim {
    now_ms: u64,
    rng: Rng,
    net: NetConfig,
    topology: Topology,
    config: NodeConfig,
    nodes: BTreeMap<ReplicaId, Node>,
    /// What each node persisted (with `NodeConfig::persist`), kept across crashes.
    disks: BTreeMap<ReplicaId, Vec<crate::storage::Entry>>,
    region_of: BTreeMap<ReplicaId, String>,
    incarnations: BTreeMap<ReplicaId, u32>,
    down: BTreeSet<ReplicaId>,
    /// Pairs that cannot talk (both directions), stored with the lower id first.
    cut: BTreeSet<(ReplicaId, ReplicaId)>,
    /// Each node's clock (simulated time when absent).
    clocks: BTreeMap<ReplicaId, NodeClock>,
    start_ms: u64,
    queue: BinaryHeap<Reverse<(u64, u64)>>,
    events: BTreeMap<u64, Event>,
    next_event: u64,
    responses: Vec<(ClientId, Response)>,
    /// Messages delivered, lost and duplicated so far.
    pub delivered: u64,
    /// Messages lost by the network or to a down node.
    pub lost: u64,
    /// Bundles sent (`ReplicateMany` and `AckMany` messages).
    pub bundles: u64,
}

impl Sim {
    /// Every node of `topology`, started at `start_ms`.
    pub fn new(
        topology: Topology,
        config: NodeConfig,
        net: NetConfig,
        seed: u64,
        start_ms: u64,
    ) -> Sim {
        let mut sim = Sim {
            now_ms: start_ms,
            rng: Rng::new(seed),
            net,
            config,
            nodes: BTreeMap::new(),
            disks: BTreeMap::new(),
            region_of: BTreeMap::new(),
            incarnations: BTreeMap::new(),
            down: BTreeSet::new(),
            cut: BTreeSet::new(),
            clocks: BTreeMap::new(),
            start_ms,
            queue: BinaryHeap::new(),
            events: BTreeMap::new(),
            next_event: 0,
            responses: Vec::new(),
            delivered: 0,
            lost: 0,
            bundles: 0,
            topology,
        };
        let ids: Vec<(ReplicaId, String)> = sim
            .topology
            .nodes()
            .map(|(r, n)| (n.replica, r.name.clone()))
            .collect();
        for (id, region) in ids {
            sim.region_of.insert(id, region);
            sim.boot(id);
        }
        sim
    }

    fn boot(&mut self, id: ReplicaId) {
        let disk = self.disks.get(&id).filter(|d| !d.is_empty());
        let incarnation = self.incarnations.entry(id).or_insert(0);
        // A node that comes back with its disk keeps its writer id (its dots
        // are on the disk); one that lost everything starts a new life.
        let life = match disk {
            Some(_) => incarnation.saturating_sub(1),
            None => {
                *incarnation += 1;
                *incarnation - 1
            }
        };
        let config = NodeConfig {
            incarnation: life,
            // As the driver does: each life's operation ids start from
            // the clock, so answers to an earlier life never match.
            first_op: (self.now_ms.saturating_sub(self.start_ms) << 20) + 1,
            ..self.config.clone()
        };
        let mut node =
            Node::new(&self.topology, id, config).expect("simulated nodes come from the topology");
        if let Some(disk) = disk {
            let mut states: BTreeMap<crdt_types::Bytes, crdt_types::Causal<crdt_types::Record>> =
                BTreeMap::new();
            for entry in disk {
                match entry {
                    crate::storage::Entry::Delta { key, delta } => {
                        states.entry(key.clone()).or_default().apply(delta)
                    }
                    crate::storage::Entry::State { key, state } => {
                        states.entry(key.clone()).or_default().join(state)
                    }
                }
            }
            for (key, state) in &states {
                node.restore(key, state);
            }
        }
        self.nodes.insert(id, node);
    }

    /// Gives every node a clock drawn from the seed: an offset in
    /// `-offset_ms_max..=offset_ms_max` and a drift in
    /// `-drift_ppm_max..=drift_ppm_max` (at most [`DRIFT_PPM_MAX`]). Two
    /// clocks then differ by at most `2 * offset_ms_max` plus the drift.
    pub fn skew_clocks(&mut self, offset_ms_max: u64, drift_ppm_max: u64) {
        let drift_max = drift_ppm_max.min(DRIFT_PPM_MAX as u64);
        for id in self.node_ids() {
            let offset_ms = self.rng.below(2 * offset_ms_max + 1) as i64 - offset_ms_max as i64;
            let drift_ppm = self.rng.below(2 * drift_max + 1) as i64 - drift_max as i64;
            self.clocks.insert(
                id,
                NodeClock {
                    offset_ms,
                    drift_ppm,
                },
            );
        }
    }

    /// Sets the clock of node `id` (the drift is capped at [`DRIFT_PPM_MAX`]).
    pub fn set_clock(&mut self, id: ReplicaId, clock: NodeClock) {
        let drift_ppm = clock.drift_ppm.clamp(-DRIFT_PPM_MAX, DRIFT_PPM_MAX);
        self.clocks.insert(id, NodeClock { drift_ppm, ..clock });
    }

    /// The clock of node `id`.
    pub fn clock(&self, id: ReplicaId) -> NodeClock {
        self.clocks.get(&id).copied().unwrap_or_default()
    }

    /// What node `id`'s clock reads now (for checks at a node's own time,
    /// such as expiry).
    pub fn local_now_ms(&self, id: ReplicaId) -> u64 {
        self.clock(id).local_ms(self.start_ms, self.now_ms)
    }

    /// Simulated time, ms.
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// The random generator (for workloads, so one seed drives everything).
    pub fn rng(&mut self) -> &mut Rng {
        &mut self.rng
    }

    /// A random write for request `id` over `keys` keys of each kind:
    /// `incrby c<k> 1..=5` or `sadd s<k> m<id>`, even odds.
    pub fn counter_or_set_write(&mut self, id: u64, keys: u64) -> crate::protocol::Command {
        use crate::protocol::Command;
        use crdt_types::Bytes;
        let k = self.rng.below(keys);
        if self.rng.chance(0.5) {
            Command::IncrBy {
                key: Bytes::from(format!("c{k}").as_str()),
                by: 1 + self.rng.below(5) as i64,
            }
        } else {
            Command::SAdd {
                key: Bytes::from(format!("s{k}").as_str()),
                members: vec![Bytes::from(format!("m{id}").as_str())],
            }
        }
    }

    /// The node `id`.
    pub fn node(&self, id: ReplicaId) -> &Node {
        &self.nodes[&id]
    }

    /// Every node id.
    pub fn node_ids(&self) -> Vec<ReplicaId> {
        self.nodes.keys().copied().collect()
    }

    /// Whether `id` is down.
    pub fn is_down(&self, id: ReplicaId) -> bool {
        self.down.contains(&id)
    }

    /// Crashes `id`: it loses its memory (not its disk) and drops every
    /// message until restarted.
    pub fn crash(&mut self, id: ReplicaId) {
        self.down.insert(id);
    }

    /// Crashes `id` and destroys its disk too.
    pub fn crash_losing_disk(&mut self, id: ReplicaId) {
        self.down.insert(id);
        self.disks.remove(&id);
    }

    /// Restarts a crashed node: from its disk when the node persists (and
    /// the disk survived), else as a new, empty incarnation.
    pub fn restart(&mut self, id: ReplicaId) {
        if self.down.remove(&id) {
            self.boot(id);
        }
    }

    /// Cuts the link between `a` and `b`.
    pub fn partition(&mut self, a: ReplicaId, b: ReplicaId) {
        self.cut.insert((a.min(b), a.max(b)));
    }

    /// Cuts every link between `region` and the other regions.
    pub fn partition_region(&mut self, region: &str) {
        let inside: Vec<ReplicaId> = self
            .region_of
            .iter()
            .filter(|(_, r)| *r == region)
            .map(|(id, _)| *id)
            .collect();
        let outside: Vec<ReplicaId> = self
            .region_of
            .iter()
            .filter(|(_, r)| *r != region)
            .map(|(id, _)| *id)
            .collect();
        for a in &inside {
            for b in &outside {
                self.partition(*a, *b);
            }
        }
    }

    /// The nodes of `region`.
    pub fn nodes_of(&self, region: &str) -> Vec<ReplicaId> {
        self.region_of
            .iter()
            .filter(|(_, r)| *r == region)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Restores every link.
    pub fn heal(&mut self) {
        self.cut.clear();
    }

    fn schedule(&mut self, at_ms: u64, event: Event) {
        let seq = self.next_event;
        self.next_event += 1;
        self.events.insert(seq, event);
        self.queue.push(Reverse((at_ms, seq)));
    }

    /// Sends a client request to node `to`; it arrives after one network delay.
    pub fn client_request(&mut self, to: ReplicaId, client: ClientId, request: Request) {
        let at = self.now_ms + self.delay();
        self.schedule(
            at,
            Event::Client {
                to,
                client,
                request,
            },
        );
    }

    /// Responses received by clients so far (taken).
    pub fn take_responses(&mut self) -> Vec<(ClientId, Response)> {
        std::mem::take(&mut self.responses)
    }

    fn delay(&mut self) -> u64 {
        let span = self
            .net
            .latency_ms_max
            .saturating_sub(self.net.latency_ms_min)
            + 1;
        self.net.latency_ms_min + self.rng.below(span)
    }

    fn delay_between(&mut self, a: ReplicaId, b: ReplicaId) -> u64 {
        if self.region_of.get(&a) == self.region_of.get(&b) {
            return self.delay();
        }
        let span = self
            .net
            .wan_latency_ms_max
            .saturating_sub(self.net.wan_latency_ms_min)
            + 1;
        self.net.wan_latency_ms_min + self.rng.below(span)
    }

    fn drain_actions(&mut self, id: ReplicaId) {
        let mut actions = Vec::new();
        while let Some(action) = self.nodes.get_mut(&id).and_then(Node::poll_action) {
            actions.push(action);
        }
        // As the network driver does: one message per peer for a pass's
        // replicates and acks.
        for action in crate::node::bundle_sends(actions) {
            match action {
                Action::Persist { entry } => self.disks.entry(id).or_default().push(entry),
                // Client replies travel back without loss (the client's link is not simulated).
                Action::Reply { client, response } => self.responses.push((client, response)),
                Action::Send { to, msg } => {
                    if matches!(msg, PeerMsg::ReplicateMany { .. } | PeerMsg::AckMany { .. }) {
                        self.bundles += 1;
                    }
                    if self.cut.contains(&(id.min(to), id.max(to)))
                        || self.rng.chance(self.net.loss)
                    {
                        self.lost += 1;
                        continue;
                    }
                    let copies = if self.rng.chance(self.net.duplicate) {
                        2
                    } else {
                        1
                    };
                    for _ in 0..copies {
                        let at = self.now_ms + self.delay_between(id, to);
                        self.schedule(
                            at,
                            Event::Peer {
                                to,
                                from: id,
                                msg: msg.clone(),
                            },
                        );
                    }
                }
            }
        }
    }

    /// Runs the next event (a delivery or a node's timer). False when nothing is left before `until_ms`.
    pub fn step(&mut self, until_ms: u64) -> bool {
        let next_msg = self.queue.peek().map_or(u64::MAX, |Reverse((at, _))| *at);
        let (timer_at, timer_node) = self
            .nodes
            .iter()
            .filter(|(id, _)| !self.down.contains(id))
            .map(|(id, n)| {
                let clock = self.clocks.get(id).copied().unwrap_or_default();
                (clock.sim_ms(self.start_ms, n.next_timeout_ms()), *id)
            })
            .min()
            .unwrap_or((u64::MAX, ReplicaId(0)));
        let at = next_msg.min(timer_at).max(self.now_ms);
        if at > until_ms {
            self.now_ms = until_ms;
            return false;
        }
        self.now_ms = at;
        if timer_at <= next_msg {
            let local = self.local_at(timer_node, at);
            if let Some(n) = self.nodes.get_mut(&timer_node) {
                n.tick(local);
            }
            self.drain_actions(timer_node);
            return true;
        }
        let Some(Reverse((_, seq))) = self.queue.pop() else {
            return false;
        };
        let Some((to, true)) = self.deliver(seq, at) else {
            return true;
        };
        if self.net.batch_same_ms {
            // Everything else reaching `to` in this millisecond joins the
            // pass, in order; the rest waits its turn.
            let mut others = Vec::new();
            while let Some(&Reverse((next_at, next_seq))) = self.queue.peek() {
                if next_at != at {
                    break;
                }
                self.queue.pop();
                if self.events.get(&next_seq).map(Event::to) == Some(to) {
                    self.deliver(next_seq, at);
                } else {
                    others.push(Reverse((next_at, next_seq)));
                }
            }
            self.queue.extend(others);
        }
        self.drain_actions(to);
        true
    }

    /// Hands event `seq` to its node, or loses it to a down node; returns
    /// the node and whether it was up (`None` when the event was cancelled).
    fn deliver(&mut self, seq: u64, at: u64) -> Option<(ReplicaId, bool)> {
        let event = self.events.remove(&seq)?;
        let (to, input) = match event {
            Event::Peer { to, from, msg } => (to, Input::Peer { from, msg }),
            Event::Client {
                to,
                client,
                request,
            } => (to, Input::Client { client, request }),
        };
        if self.down.contains(&to) {
            self.lost += 1;
            return Some((to, false));
        }
        self.delivered += 1;
        let local = self.local_at(to, at);
        if let Some(n) = self.nodes.get_mut(&to) {
            n.handle(local, input);
        }
        Some((to, true))
    }

    fn local_at(&self, id: ReplicaId, sim_ms: u64) -> u64 {
        self.clock(id).local_ms(self.start_ms, sim_ms)
    }

    /// Runs every event up to `until_ms`.
    pub fn run_until(&mut self, until_ms: u64) {
        while self.step(until_ms) {}
    }
}

/// A topology of one region of three nodes (N = 3, W = quorum), for tests.
pub const REGION_OF_THREE: &str = r#"
[cluster]
name = "sim"
replication_factor = 3
write_consistency = "quorum"

[[region]]
name = "r"

[[region.node]]
id = "n1"
client_addr = "127.0.0.1:9101"
peer_addr = "127.0.0.1:9111"

[[region.node]]
id = "n2"
client_addr = "127.0.0.1:9102"
peer_addr = "127.0.0.1:9112"

[[region.node]]
id = "n3"
client_addr = "127.0.0.1:9103"
peer_addr = "127.0.0.1:9113"
"#;

/// Runs `run` on a batch of seeds and panics listing every failing seed with
/// the one command that replays it. The batch is `MERIDIAN_SIM_SEED` alone
/// when set (a replay), else `MERIDIAN_SIM_SEEDS` (default 100) divided by
/// `share` (tests that split a budget), counted up from `base`.
pub fn check_seeds(
    test_file: &str,
    test_name: &str,
    base: u64,
    share: u64,
    mut run: impl FnMut(u64) -> Result<(), String>,
) {
    let seeds: Vec<u64> = match std::env::var("MERIDIAN_SIM_SEED") {
        Ok(one) => vec![one.parse().expect("MERIDIAN_SIM_SEED is a number")],
        Err(_) => {
            let n: u64 = std::env::var("MERIDIAN_SIM_SEEDS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(100);
            (0..n.div_ceil(share.max(1))).map(|i| base + i).collect()
        }
    };
    let failures: Vec<String> = seeds
        .into_iter()
        .filter_map(|seed| {
            run(seed).err().map(|e| {
                format!("seed {seed}: {e}\n  replay: MERIDIAN_SIM_SEED={seed} cargo test --test {test_file} {test_name}")
            })
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} seeds failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_clock_reaches_every_reading_at_the_first_simulated_time_it_can() {
        let start = 1_000_000;
        for clock in [
            NodeClock::default(),
            NodeClock {
                offset_ms: 250,
                drift_ppm: 700,
            },
            NodeClock {
                offset_ms: -3_000,
                drift_ppm: -DRIFT_PPM_MAX,
            },
        ] {
            for local in (start..start + 50_000).step_by(997) {
                let at = clock.sim_ms(start, local);
                assert!(clock.local_ms(start, at) >= local, "{clock:?} {local}");
                if at > start {
                    assert!(clock.local_ms(start, at - 1) < local, "{clock:?} {local}");
                }
            }
            assert_eq!(clock.sim_ms(start, u64::MAX), u64::MAX);
        }
    }
}
