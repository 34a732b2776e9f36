//! The replica's logic as a deterministic state machine (sans-IO).
//!
//! A [`Node`] takes events — a client request, a peer message, the passage
//! of time — and returns [`Action`]s: reply to this client, send this to that
//! peer. It coordinates writes (apply locally, replicate the delta to the
//! key's other replicas, answer after W acknowledgements), forwards requests
//! for keys it does not hold, serves quorum reads with read repair, keeps
//! hints for replicas that missed a write and hands them off later, and
//! sweeps expired keys.
//!
//! It never does I/O, never reads a clock and never draws random numbers:
//! time comes in as `now_ms`, so the same code runs under tokio and quinn in
//! production and under a seeded simulator in tests.

#[cfg(test)]
mod adversarial;
mod bundle;
mod catchup;
pub(crate) mod execute;
pub use execute::{SCAN_HASHES_MAX, SCAN_PATTERN_BYTES_MAX};
mod geo;
mod membership;
mod rebalance;
mod sloppy;

pub use bundle::{bundle_sends, BUNDLE_BYTES_MAX, BUNDLE_MSGS_MAX};
pub use geo::{GeoLinkStats, DIGEST_BUCKETS};
pub use rebalance::{
    membership_epoch, TopologyChangeError, DONE_REPEAT_MS, TRANSFER_BATCH_BYTES_MAX,
    TRANSFER_BATCH_KEYS_MAX, TRANSFER_INFLIGHT_MAX, TRANSFER_RETRY_MS,
};

use crate::keyspace::{Keyspace, KeyspaceConfig};
use crate::placement::Placement;
use crate::protocol::{
    Answer, Command, ErrorReply, LinkStatus, NodeStatus, PeerMsg, Reply, Request, Response,
};
use crate::topology::{ReadConsistency, Topology, WriteConsistency};
use crdt_types::{Bytes, Causal, Delta, Record, ReplicaId};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

/// A client connection or stream, as numbered by the driver.
pub type ClientId = u64;

/// Timeouts and bounds of a node.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// How long a write waits for W acknowledgements.
    pub write_timeout_ms: u64,
    /// How long a quorum read waits for replies.
    pub read_timeout_ms: u64,
    /// How long a forwarded request waits for its answer.
    pub forward_timeout_ms: u64,
    /// How often hints are retried.
    pub hint_retry_ms: u64,
    /// Hints sent per retry round.
    pub hint_batch_max: usize,
    /// Most hints kept; past it the oldest is dropped (anti-entropy repairs it).
    pub hints_max: usize,
    /// How often expired keys are swept.
    pub sweep_interval_ms: u64,
    /// Keys expired per sweep.
    pub sweep_batch_max: usize,
    /// Most operations in flight (writes, reads, forwards); past it requests are refused.
    pub inflight_max: usize,
    /// How often queued deltas are batched to other regions.
    pub geo_batch_interval_ms: u64,
    /// Most deltas in one batch to another region.
    pub geo_batch_entries_max: usize,
    /// Most encoded bytes in one batch to another region.
    pub geo_batch_bytes_max: usize,
    /// Deltas kept per remote region; past it the oldest are dropped and
    /// digest repair takes over.
    pub geo_buffer_max: usize,
    /// How long a link waits for acknowledgement progress (counted from
    /// the first batch sent with nothing outstanding, or the last progress;
    /// new batches sent meanwhile do not restart it) before it sends
    /// everything unacknowledged again. A region acknowledges a batch once
    /// its replicas there took it (or missed it for `GEO_SPREAD_TIMEOUTS`
    /// write timeouts), so this must exceed that plus a round trip.
    pub geo_retransmit_ms: u64,
    /// Most batches sent to another region and not yet acknowledged; a
    /// region slow to take batches in slows its senders rather than being
    /// flooded.
    pub geo_window_batches: usize,
    /// Sending nodes of other regions whose link position is remembered.
    pub geo_senders_max: usize,
    /// How long a whole digest comparison with one other node (of this
    /// region or another) takes; it runs in four rounds, one slice of the
    /// hash space each, spread over the interval.
    pub digest_interval_ms: u64,
    /// Most key states sent per whole digest comparison with one node;
    /// each of its four rounds answers with at most a quarter.
    pub digest_states_max: usize,
    /// How often heartbeats go to the other nodes of the region.
    pub heartbeat_interval_ms: u64,
    /// Phi above which a silent peer is suspected (higher: slower, surer).
    pub phi_threshold: f64,
    /// Smallest standard deviation of heartbeat gaps the detector assumes.
    pub heartbeat_min_std_ms: u64,
    /// Sloppy quorum: a write whose replica is suspected (or silent for
    /// half the write timeout) is sent to a fallback node beyond the key's
    /// preference list, whose acknowledgement counts toward W.
    pub sloppy_quorum: bool,
    /// Emit `Action::Persist` for every change (a node with a data directory).
    pub persist: bool,
    /// Which life of this node this is. A node that restarts without its
    /// data must not mint dots it minted before (other replicas would take
    /// them as already seen and drop the new writes), so each life writes
    /// under its own writer id; 0 writes under the node's replica id.
    pub incarnation: u32,
    /// The keyspace's limits.
    pub keyspace: KeyspaceConfig,
    /// The node joins a running region (added by a membership change): until
    /// every other node has streamed it its keys, its quorum reads ask every
    /// replica of the key (see `node/rebalance.rs`).
    pub joining: bool,
    /// The first operation id of this life. Answers name operations by id,
    /// and a peer's answer to the node's previous life can arrive after a
    /// restart: each life must start its ids where no earlier life's reach
    /// (the driver derives it from the clock at start).
    pub first_op: u64,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            write_timeout_ms: 1_000,
            read_timeout_ms: 1_000,
            forward_timeout_ms: 2_000,
            hint_retry_ms: 500,
            hint_batch_max: 256,
            hints_max: 100_000,
            sweep_interval_ms: 100,
            sweep_batch_max: 1_000,
            inflight_max: 100_000,
            geo_batch_interval_ms: 10,
            geo_batch_entries_max: 1_024,
            geo_batch_bytes_max: 512 * 1024,
            geo_buffer_max: 100_000,
            geo_retransmit_ms: 6_000,
            geo_window_batches: 16,
            geo_senders_max: 4_096,
            digest_interval_ms: 5_000,
            digest_states_max: 2_000,
            heartbeat_interval_ms: 500,
            phi_threshold: 8.0,
            heartbeat_min_std_ms: 100,
            sloppy_quorum: true,
            persist: false,
            incarnation: 0,
            keyspace: KeyspaceConfig::default(),
            joining: false,
            first_op: 1,
        }
    }
}

/// Something that happened to the node.
#[derive(Debug, Clone)]
pub enum Input {
    /// A request from a client.
    Client { client: ClientId, request: Request },
    /// A message from another node of the region.
    Peer { from: ReplicaId, msg: PeerMsg },
}

/// Something the node wants done. Actions come out in the order they must
/// be carried out: a `Persist` precedes the replies and messages that rely
/// on it, so a driver that syncs persisted entries before sending anything
/// never acknowledges a write it could lose.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Append this change to durable storage (only with `NodeConfig::persist`).
    Persist { entry: crate::storage::Entry },
    /// Send this response to a client.
    Reply {
        client: ClientId,
        response: Response,
    },
    /// Send this message to a peer.
    Send { to: ReplicaId, msg: PeerMsg },
}

/// Counters an operator can read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// Client requests received (including forwarded ones).
    pub requests: u64,
    /// Writes that reached their W.
    pub writes_acked: u64,
    /// Writes answered with `QuorumNotReached`.
    pub writes_short: u64,
    /// Requests forwarded to a replica of their key.
    pub forwarded: u64,
    /// Hints delivered to a replica that had missed writes.
    pub hints_delivered: u64,
    /// Hints dropped because the bound was hit.
    pub hints_dropped: u64,
    /// Hints not yet delivered (queued or sent and unacknowledged), now.
    pub hints_queued: u64,
    /// Replicas repaired by quorum reads.
    pub read_repairs: u64,
    /// Remote updates refused (clock skew, bad key).
    pub refused: u64,
    /// Hash buckets found different by digest comparisons with other regions.
    pub digest_buckets_repaired: u64,
    /// Copies of writes sent to a stand-in for a replica that was down.
    pub stand_ins_asked: u64,
    /// Writes this node held for a replica that was down (as a stand-in).
    pub stand_in_writes: u64,
    /// Keys held for other replicas dropped after their handoff.
    pub guests_released: u64,
    /// Keys streamed to replicas of this region catching up after a start.
    pub catch_up_keys_sent: u64,
}

/// How many write timeouts the replicas a write did not wait for (its
/// quorum already answered) have to acknowledge it before they get a hint.
pub const STRAGGLER_TIMEOUTS: u64 = 4;

/// Where an answer goes.
#[derive(Debug, Clone, Copy)]
enum Origin {
    Client(ClientId),
    Forwarded { from: ReplicaId, op: u64 },
}

#[derive(Debug)]
struct PendingWrite {
    origin: Origin,
    request_id: u64,
    reply: Reply,
    key: Bytes,
    waiting: Vec<ReplicaId>,
    acked: usize,
    needed: usize,
    /// The client has its answer (W reached); the rest is for hints.
    answered: bool,
    deadline_ms: u64,
}

#[derive(Debug)]
struct PendingRead {
    origin: Origin,
    request: Request,
    key: Bytes,
    /// The replicas asked; a reply from any other node does not count.
    asked: Vec<ReplicaId>,
    replied: Vec<ReplicaId>,
    /// The hash of each other replica's state as it replied (`None`: it
    /// has no such key); those whose state is the merged one need no repair.
    seen: Vec<(ReplicaId, Option<u64>)>,
    needed: usize,
    deadline_ms: u64,
}

#[derive(Debug)]
struct PendingForward {
    origin: Origin,
    request_id: u64,
    /// The node the request went to: only its reply is taken.
    to: ReplicaId,
    deadline_ms: u64,
}

#[derive(Debug)]
enum Pending {
    Write(PendingWrite),
    Read(PendingRead),
    Forward(PendingForward),
    Handoff {
        to: ReplicaId,
        key: Bytes,
        sent_ms: u64,
    },
    /// Deltas from another region sent on to replica `to` here in one
    /// message; the keys get hints if it does not acknowledge in time.
    Spread {
        to: ReplicaId,
        keys: Vec<Bytes>,
        deadline_ms: u64,
        /// The batch from another region this is part of.
        receipt: u64,
    },
}

impl Pending {
    fn deadline_ms(&self) -> Option<u64> {
        match self {
            Pending::Write(w) => Some(w.deadline_ms),
            Pending::Read(r) => Some(r.deadline_ms),
            Pending::Forward(f) => Some(f.deadline_ms),
            Pending::Handoff { .. } => None,
            Pending::Spread { deadline_ms, .. } => Some(*deadline_ms),
        }
    }
}

/// One replica of a region. See the module docs.
pub struct Node {
    id: ReplicaId,
    region: String,
    placement: Placement,
    /// The text of the topology `placement` comes from, for clients that
    /// ask (`Command::Topology`).
    topology_source: std::sync::Arc<str>,
    /// The running topology's version: an older one is refused.
    topology_version: u64,
    write_default: WriteConsistency,
    read_default: ReadConsistency,
    config: NodeConfig,
    keyspace: Keyspace,
    next_op: u64,
    pending: HashMap<u64, Pending>,
    /// Operations by deadline, for timeouts.
    deadlines: BTreeMap<(u64, u64), ()>,
    /// Replicas that missed writes of these keys, oldest first.
    hints: VecDeque<(ReplicaId, Bytes)>,
    /// The same entries, to find one in constant time (a scan of the queue
    /// made adding hints quadratic: with 100,000 of them after a partition,
    /// nodes spent minutes comparing keys).
    hinted: HashSet<(ReplicaId, Bytes)>,
    hint_due_ms: u64,
    /// Handoffs sent and not yet acknowledged (entries of `pending`), by
    /// replica and key: at most one each.
    handoffs: HashMap<(ReplicaId, Bytes), u64>,
    sweep_due_ms: u64,
    actions: VecDeque<Action>,
    stats: NodeStats,
    /// One link per other region.
    geo: Vec<geo::GeoLink>,
    /// This life of the node, as its geo batches name it: the first time
    /// it observed (0 until then), so that a restarted node's batches,
    /// numbered from 0 again, are told from its earlier life's.
    geo_session: u64,
    geo_due_ms: u64,
    /// Per sending node of another region: the gap-free prefix taken in.
    geo_received: HashMap<ReplicaId, geo::Received>,
    /// Batches from other regions whose spread inside this region is not
    /// settled yet, by receipt number.
    geo_receipts: HashMap<u64, geo::Receipt>,
    next_receipt: u64,
    digest_due_ms: u64,
    digest_rotation: usize,
    /// Whether the cluster has another node to compare digests with.
    has_peers: bool,
    detector: membership::Detector,
    heartbeat_due_ms: u64,
    /// Sloppy quorum: stand-ins asked and keys held for others.
    stand_ins: sloppy::StandIns,
    /// The latest time seen (for decisions outside `handle`/`tick`).
    now_ms: u64,
    /// The membership change in progress, if any.
    rebalance: rebalance::Rebalance,
    /// Bulk catch-up after a start, asked or served.
    catch_ups: catchup::CatchUps,
}

/// Why a node could not be built.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The replica is not in the topology.
    #[error("replica {0} is not in the topology")]
    UnknownReplica(ReplicaId),
}

impl Node {
    /// The node `id` of `topology`.
    pub fn new(
        topology: &Topology,
        id: ReplicaId,
        mut config: NodeConfig,
    ) -> Result<Node, NodeError> {
        let node = topology
            .node_by_replica(id)
            .ok_or(NodeError::UnknownReplica(id))?;
        let region = topology
            .region_of(&node.id)
            .ok_or(NodeError::UnknownReplica(id))?
            .name
            .clone();
        let limits = topology.limits();
        let my_rank = topology
            .nodes_in(&region)
            .and_then(|ns| ns.iter().position(|n| n.replica == id))
            .unwrap_or(0);
        let geo = topology
            .regions()
            .iter()
            .filter(|r| r.name != region)
            .map(|r| geo::GeoLink::new(r.name.clone(), my_rank))
            .collect();
        config.keyspace.key_bytes_max = limits.key_bytes_max as usize;
        config.keyspace.value_bytes_max = limits.value_bytes_max as usize;
        // A whole set or map is read back in one answer (a scan's page is
        // bounded alike).
        config.keyspace.key_value_bytes_max = limits
            .frame_bytes_max
            .saturating_sub(crate::topology::FRAME_HEADROOM_BYTES)
            as usize;
        let detector = membership::Detector::new(
            topology
                .nodes_in(&region)
                .unwrap_or(&[])
                .iter()
                .map(|n| n.replica)
                .filter(|r| *r != id),
            0,
            config.heartbeat_interval_ms,
            config.heartbeat_min_std_ms,
            config.phi_threshold,
        );
        let rebalance = rebalance::Rebalance::starting(topology, &region, id, config.joining);
        Ok(Node {
            id,
            region,
            placement: Placement::new(topology),
            topology_source: topology.source().into(),
            topology_version: topology.version(),
            write_default: topology.write_consistency(),
            read_default: topology.read_consistency(),
            keyspace: Keyspace::new(writer_id(id, config.incarnation), config.keyspace.clone()),
            next_op: config.first_op.max(1),
            pending: HashMap::new(),
            deadlines: BTreeMap::new(),
            hints: VecDeque::new(),
            hinted: HashSet::new(),
            hint_due_ms: 0,
            handoffs: HashMap::new(),
            sweep_due_ms: 0,
            actions: VecDeque::new(),
            stats: NodeStats::default(),
            geo,
            geo_due_ms: 0,
            geo_session: 0,
            geo_received: HashMap::new(),
            geo_receipts: HashMap::new(),
            next_receipt: 0,
            digest_due_ms: 0,
            digest_rotation: id.0 as usize,
            has_peers: topology.nodes().count() > 1,
            detector,
            heartbeat_due_ms: 0,
            stand_ins: sloppy::StandIns::default(),
            now_ms: 0,
            rebalance,
            catch_ups: catchup::CatchUps::default(),
            config,
        })
    }

    /// This node's replica id.
    pub fn id(&self) -> ReplicaId {
        self.id
    }

    /// The local keyspace (for inspection and status).
    pub fn keyspace(&self) -> &Keyspace {
        &self.keyspace
    }

    /// Operator counters.
    pub fn stats(&self) -> NodeStats {
        NodeStats {
            hints_queued: self.hints_pending() as u64,
            catch_up_keys_sent: self.rebalance.catch_up_keys_sent,
            ..self.stats
        }
    }

    /// Hints not yet delivered (queued or sent and unacknowledged).
    pub fn hints_pending(&self) -> usize {
        self.hints.len() + self.handoffs.len()
    }

    /// The next action to carry out, if any.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    fn observe_time(&mut self, now_ms: u64) {
        if self.now_ms == 0 {
            // Every peer counts as just heard from when the node starts.
            self.detector.start(now_ms);
        }
        if self.geo_session == 0 {
            self.geo_session = now_ms;
        }
        self.now_ms = self.now_ms.max(now_ms);
    }

    /// The other nodes of this node's region, by the current ring.
    fn region_peers(&self) -> Vec<ReplicaId> {
        self.placement
            .ring(&self.region)
            .map(|r| {
                r.nodes()
                    .iter()
                    .copied()
                    .filter(|r| *r != self.id)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether `peer` is believed up (always true for unknown peers and self).
    pub fn is_alive(&self, peer: ReplicaId) -> bool {
        self.detector.alive(peer, self.now_ms)
    }

    /// When [`Node::tick`] next has work to do.
    pub fn next_timeout_ms(&self) -> u64 {
        let op = self.deadlines.keys().next().map_or(u64::MAX, |(ms, _)| *ms);
        let hints = if self.hints.is_empty() {
            u64::MAX
        } else {
            self.hint_due_ms
        };
        let geo = if self.geo.is_empty() {
            u64::MAX
        } else {
            self.geo_due_ms
        };
        let digest = if self.has_peers {
            self.digest_due_ms
        } else {
            u64::MAX
        };
        let heartbeat = if self.has_peers {
            self.heartbeat_due_ms
        } else {
            u64::MAX
        };
        op.min(hints)
            .min(self.rebalance_due_ms())
            .min(self.catch_up_due_ms())
            .min(self.stand_ins.next_due_ms())
            .min(self.sweep_due_ms)
            .min(geo)
            .min(digest)
            .min(heartbeat)
    }

    /// Handles one event at time `now_ms`.
    pub fn handle(&mut self, now_ms: u64, input: Input) {
        self.observe_time(now_ms);
        if let Input::Peer { from, .. } = &input {
            self.detector.heard(*from, now_ms);
        }
        match input {
            Input::Client { client, request } => {
                self.on_request(now_ms, Origin::Client(client), request)
            }
            Input::Peer { from, msg } => self.on_peer(now_ms, from, msg),
        }
    }

    /// Lets time pass: times out operations, retries hints, sweeps expired keys.
    pub fn tick(&mut self, now_ms: u64) {
        self.observe_time(now_ms);
        if now_ms >= self.heartbeat_due_ms {
            self.heartbeat_due_ms = now_ms + self.detector.interval_ms();
            let peers: Vec<ReplicaId> = self.detector.peers().collect();
            for to in peers {
                self.actions.push_back(Action::Send {
                    to,
                    msg: PeerMsg::Heartbeat,
                });
            }
        }
        self.check_silent_replicas(now_ms);
        while let Some((&(ms, op), _)) = self.deadlines.first_key_value() {
            if ms > now_ms {
                break;
            }
            self.deadlines.remove(&(ms, op));
            if let Some(p) = self.pending.remove(&op) {
                self.stand_ins.forget(op);
                self.on_timeout(now_ms, p);
            }
        }
        if now_ms >= self.rebalance_due_ms() {
            self.rebalance_tick(now_ms);
        }
        if now_ms >= self.catch_up_due_ms() {
            self.catch_up_tick(now_ms);
        }
        if now_ms >= self.hint_due_ms {
            self.hint_due_ms = now_ms + self.config.hint_retry_ms;
            self.retry_hints();
            self.release_guests();
        }
        if !self.geo.is_empty() && now_ms >= self.geo_due_ms {
            self.geo_due_ms = now_ms + self.config.geo_batch_interval_ms;
            self.flush_geo(now_ms);
        }
        if self.has_peers && now_ms >= self.digest_due_ms {
            // One slice of the hash space per round: a whole comparison
            // with one peer per interval, in small steps.
            let slices = (geo::DIGEST_BUCKETS / geo::DIGEST_SLICE_BUCKETS) as u64;
            self.digest_due_ms = now_ms + (self.config.digest_interval_ms / slices).max(1);
            self.start_digest_round();
        }
        if now_ms >= self.sweep_due_ms {
            self.sweep_due_ms = now_ms + self.config.sweep_interval_ms;
            for kd in self
                .keyspace
                .sweep_expired(now_ms, self.config.sweep_batch_max)
            {
                self.replicate_quietly(&kd.key, &kd.delta);
            }
        }
    }

    fn reply(&mut self, origin: Origin, response: Response) {
        match origin {
            Origin::Client(client) => self.actions.push_back(Action::Reply { client, response }),
            Origin::Forwarded { from, op } => self.actions.push_back(Action::Send {
                to: from,
                msg: PeerMsg::ForwardReply { op, response },
            }),
        }
    }

    fn fail(&mut self, origin: Origin, id: u64, err: ErrorReply) {
        self.reply(
            origin,
            Response {
                id,
                result: Err(err),
            },
        );
    }

    fn add_pending(&mut self, p: Pending) -> u64 {
        let op = self.next_op;
        self.next_op += 1;
        if let Some(ms) = p.deadline_ms() {
            self.deadlines.insert((ms, op), ());
        }
        if let Pending::Handoff { to, key, .. } = &p {
            self.handoffs.insert((*to, key.clone()), op);
        }
        self.pending.insert(op, p);
        op
    }

    fn take_pending(&mut self, op: u64) -> Option<Pending> {
        let p = self.pending.remove(&op)?;
        self.stand_ins.forget(op);
        if let Some(ms) = p.deadline_ms() {
            self.deadlines.remove(&(ms, op));
        }
        if let Pending::Handoff { to, key, .. } = &p {
            let pair = (*to, key.clone());
            if self.handoffs.get(&pair) == Some(&op) {
                self.handoffs.remove(&pair);
            }
        }
        Some(p)
    }

    fn replicas(&self, key: &[u8]) -> Vec<ReplicaId> {
        self.placement
            .preference_list(&self.region, key)
            .map(<[_]>::to_vec)
            .unwrap_or_default()
    }

    fn on_request(&mut self, now_ms: u64, origin: Origin, request: Request) {
        self.stats.requests += 1;
        let id = request.id;
        let Some(key) = request.command.key().cloned() else {
            let reply = match request.command {
                Command::Status => Reply::Status(Box::new(self.status(now_ms))),
                Command::Topology => Reply::Value(self.topology_source.as_bytes().into()),
                Command::Scan {
                    from,
                    count,
                    ref pattern,
                    kind,
                } => {
                    let page = execute::scan(
                        &self.keyspace,
                        from,
                        count,
                        pattern.as_deref(),
                        kind,
                        now_ms,
                    );
                    match page {
                        Ok(page) => Reply::Keys(page),
                        Err(e) => return self.fail(origin, id, e.into()),
                    }
                }
                Command::ReloadTopology => {
                    // The server reads files, not the node: it answers this itself.
                    let reason = "this node cannot reload its topology".to_owned();
                    return self.fail(origin, id, ErrorReply::BadRequest { reason });
                }
                _ => Reply::Pong,
            };
            let answer = Answer {
                reply,
                replicas_acked: 1,
                replicas_needed: 1,
            };
            return self.reply(
                origin,
                Response {
                    id,
                    result: Ok(answer),
                },
            );
        };
        if let Err(e) = self.keyspace.check_key(&key) {
            return self.fail(origin, id, e.into());
        }
        if self.pending.len() >= self.config.inflight_max {
            return self.fail(
                origin,
                id,
                ErrorReply::Unavailable {
                    reason: "node overloaded".into(),
                },
            );
        }
        let replicas = self.replicas(&key);
        if !replicas.contains(&self.id) {
            if let Origin::Forwarded { .. } = origin {
                let reason = format!("node {} is not a replica of the key", self.id);
                return self.fail(origin, id, ErrorReply::Unavailable { reason });
            }
            let target = replicas
                .iter()
                .copied()
                .find(|r| self.is_alive(*r))
                .or(replicas.first().copied());
            let Some(target) = target else {
                return self.fail(
                    origin,
                    id,
                    ErrorReply::Unavailable {
                        reason: "region has no nodes".into(),
                    },
                );
            };
            self.stats.forwarded += 1;
            let deadline_ms = now_ms + self.config.forward_timeout_ms;
            let op = self.add_pending(Pending::Forward(PendingForward {
                origin,
                request_id: id,
                to: target,
                deadline_ms,
            }));
            self.actions.push_back(Action::Send {
                to: target,
                msg: PeerMsg::Forward { op, request },
            });
            return;
        }
        if request.command.is_write() {
            self.coordinate_write(now_ms, origin, request, key, replicas);
        } else if request.read.unwrap_or(self.read_default) == ReadConsistency::Quorum
            && replicas.len() > 1
        {
            // During a membership change the read also asks the old owners.
            let (replicas, needed) =
                self.replicas_during_change(&key, &replicas)
                    .unwrap_or_else(|| {
                        let needed = ReadConsistency::Quorum.replies_needed(replicas.len());
                        (replicas, needed)
                    });
            self.start_quorum_read(now_ms, origin, request, key, replicas, needed);
        } else {
            self.read_locally(now_ms, origin, &request, 1, 1);
        }
    }

    fn read_locally(
        &mut self,
        now_ms: u64,
        origin: Origin,
        request: &Request,
        replied: usize,
        needed: usize,
    ) {
        let result = execute::execute(&mut self.keyspace, &request.command, now_ms)
            .map(|(reply, _)| Answer {
                reply,
                replicas_acked: clamp_u8(replied),
                replicas_needed: clamp_u8(needed),
            })
            .map_err(ErrorReply::from);
        self.reply(
            origin,
            Response {
                id: request.id,
                result,
            },
        );
    }

    fn coordinate_write(
        &mut self,
        now_ms: u64,
        origin: Origin,
        request: Request,
        key: Bytes,
        replicas: Vec<ReplicaId>,
    ) {
        let needed = request
            .write
            .unwrap_or(self.write_default)
            .acks_needed(replicas.len())
            .max(1);
        let (reply, delta) = match execute::execute(&mut self.keyspace, &request.command, now_ms) {
            Ok(r) => r,
            Err(e) => return self.fail(origin, request.id, e.into()),
        };
        let others: Vec<ReplicaId> = replicas.iter().copied().filter(|r| *r != self.id).collect();
        if let Some(d) = &delta {
            self.persist_delta(&key, d);
            self.queue_geo(now_ms, &key, d);
        }
        let Some(delta) = delta else {
            // Nothing changed: nothing to replicate, every replica agrees already.
            let answer = Answer {
                reply,
                replicas_acked: clamp_u8(needed),
                replicas_needed: clamp_u8(needed),
            };
            return self.reply(
                origin,
                Response {
                    id: request.id,
                    result: Ok(answer),
                },
            );
        };
        let answered = needed <= 1;
        if answered {
            self.stats.writes_acked += 1;
            let answer = Answer {
                reply: reply.clone(),
                replicas_acked: 1,
                replicas_needed: 1,
            };
            self.reply(
                origin,
                Response {
                    id: request.id,
                    result: Ok(answer),
                },
            );
        }
        if others.is_empty() {
            return;
        }
        // Replicated either way; replicas that miss it get a hint.
        let op = self.add_pending(Pending::Write(PendingWrite {
            origin,
            request_id: request.id,
            reply,
            key: key.clone(),
            waiting: others.clone(),
            acked: 1,
            needed,
            answered,
            deadline_ms: now_ms + self.config.write_timeout_ms,
        }));
        self.replicate_write(now_ms, op, &key, delta, others);
    }

    fn start_quorum_read(
        &mut self,
        now_ms: u64,
        origin: Origin,
        request: Request,
        key: Bytes,
        replicas: Vec<ReplicaId>,
        needed: usize,
    ) {
        let others: Vec<ReplicaId> = replicas.into_iter().filter(|r| *r != self.id).collect();
        let op = self.add_pending(Pending::Read(PendingRead {
            origin,
            request,
            key: key.clone(),
            asked: others.clone(),
            replied: vec![self.id],
            seen: Vec::new(),
            needed,
            deadline_ms: now_ms + self.config.read_timeout_ms,
        }));
        for to in others {
            self.actions.push_back(Action::Send {
                to,
                msg: PeerMsg::Read {
                    op,
                    key: key.clone(),
                },
            });
        }
    }

    /// Applies a coordinator's delta of `key` and acknowledges operation `op`.
    fn replicate_and_ack(
        &mut self,
        now_ms: u64,
        from: ReplicaId,
        op: u64,
        key: &Bytes,
        delta: &Delta<Record>,
    ) {
        let ok = self.apply_remote(now_ms, key, Remote::Delta(delta));
        self.actions.push_back(Action::Send {
            to: from,
            msg: PeerMsg::Ack { op, ok },
        });
    }

    fn on_peer(&mut self, now_ms: u64, from: ReplicaId, msg: PeerMsg) {
        match msg {
            PeerMsg::Replicate { op, key, delta } => {
                self.replicate_and_ack(now_ms, from, op, &key, &delta)
            }
            PeerMsg::ReplicateMany { items } => {
                for (op, key, delta) in &items {
                    self.replicate_and_ack(now_ms, from, *op, key, delta);
                }
            }
            PeerMsg::AckMany { acks } => {
                for (op, ok) in acks {
                    self.on_ack(op, from, ok);
                }
            }
            PeerMsg::ReplicateBatch { op, entries } => {
                let mut ok = true;
                for (key, delta) in &entries {
                    ok &= self.apply_remote(now_ms, key, Remote::Delta(delta));
                }
                self.actions.push_back(Action::Send {
                    to: from,
                    msg: PeerMsg::Ack { op, ok },
                });
            }
            PeerMsg::Repair { key, state } => {
                // A late repair must not bring back a key this node gave away.
                if self.holds_or_moving(&key) {
                    self.apply_remote(now_ms, &key, Remote::State(&state));
                }
            }
            PeerMsg::Handoff { op, key, state } => {
                let ok = self.apply_remote(now_ms, &key, Remote::State(&state));
                self.actions.push_back(Action::Send {
                    to: from,
                    msg: PeerMsg::Ack { op, ok },
                });
            }
            PeerMsg::Ack { op, ok } => self.on_ack(op, from, ok),
            PeerMsg::Forward { op, request } => {
                self.on_request(now_ms, Origin::Forwarded { from, op }, request)
            }
            PeerMsg::ForwardReply { op, response } => {
                // Only a forward is answered this way, by the node it went
                // to: a reply naming another operation, or from another
                // node, must not take it from its waiters.
                if !matches!(self.pending.get(&op), Some(Pending::Forward(f)) if f.to == from) {
                    return;
                }
                if let Some(Pending::Forward(f)) = self.take_pending(op) {
                    self.reply(
                        f.origin,
                        Response {
                            id: f.request_id,
                            ..response
                        },
                    );
                }
            }
            PeerMsg::Read { op, key } => {
                let state = self.keyspace.state(&key);
                self.actions.push_back(Action::Send {
                    to: from,
                    msg: PeerMsg::ReadReply { op, state },
                });
            }
            PeerMsg::ReadReply { op, state } => self.on_read_reply(now_ms, op, from, state),
            PeerMsg::GeoBatch {
                session,
                acked_seq,
                first_seq,
                next_seq,
                entries,
            } => self.on_geo_batch(
                now_ms,
                from,
                session,
                (acked_seq, first_seq, next_seq),
                entries,
            ),
            PeerMsg::Heartbeat => {}
            PeerMsg::HintedReplicate {
                op,
                key,
                delta,
                owner,
            } => self.on_hinted_replicate(now_ms, from, op, key, delta, owner),
            PeerMsg::GeoAck { session, next_seq } => {
                self.on_geo_ack(now_ms, from, session, next_seq)
            }
            PeerMsg::DigestRequest { op, first, buckets } => {
                self.on_digest_request(now_ms, from, op, first, buckets)
            }
            PeerMsg::DigestReply {
                mismatched, states, ..
            } => self.on_digest_reply(now_ms, from, mismatched, states),
            PeerMsg::DigestRepair { states } => self.on_digest_repair(now_ms, states),
            PeerMsg::Transfer { op, states, .. } => self.on_transfer(now_ms, from, op, states),
            PeerMsg::TransferAck { op, ok } => self.on_transfer_ack(now_ms, from, op, ok),
            PeerMsg::RebalanceDone { epoch } => self.on_rebalance_done(from, epoch),
            PeerMsg::RebalanceDoneAck { epoch, done } => {
                self.on_rebalance_done_ack(from, epoch, done)
            }
            PeerMsg::CatchUp { session } => self.on_catch_up(now_ms, from, session),
            PeerMsg::CatchUpDone { session } => self.on_catch_up_done(now_ms, from, session),
        }
    }

    /// Applies a remote update to `key`; whether it is settled (applied, or
    /// refused for good), so that its sender may stop resending it.
    fn apply_remote(&mut self, now_ms: u64, key: &[u8], remote: Remote<'_>) -> bool {
        let result = match remote {
            Remote::Delta(d) => self.keyspace.apply_delta(key, d, now_ms),
            Remote::State(s) => self.keyspace.join_state(key, s, now_ms),
        };
        match result {
            Ok(()) => {
                if self.config.persist {
                    let key = Bytes::from(key);
                    let entry = match remote {
                        Remote::Delta(d) => crate::storage::Entry::Delta {
                            key,
                            delta: d.clone(),
                        },
                        Remote::State(s) => crate::storage::Entry::State {
                            key,
                            state: s.clone(),
                        },
                    };
                    self.actions.push_back(Action::Persist { entry });
                }
                true
            }
            Err(e) => {
                self.stats.refused += 1;
                tracing::warn!(node = %self.id, error = %e, "refused a remote update");
                // A count past the limit is refused for good: sending it
                // again (a hint, a rebalance batch) would only be refused
                // again, so it counts as settled. A stamp too far ahead is
                // taken once the clock catches up.
                matches!(e, crate::keyspace::KeyspaceError::SequenceTooHigh { .. })
            }
        }
    }

    fn persist_delta(&mut self, key: &Bytes, delta: &Delta<Record>) {
        if self.config.persist {
            let entry = crate::storage::Entry::Delta {
                key: key.clone(),
                delta: delta.clone(),
            };
            self.actions.push_back(Action::Persist { entry });
        }
    }

    /// Restores a key's state recovered from storage (before serving).
    pub fn restore(&mut self, key: &[u8], state: &Causal<Record>) {
        self.keyspace.restore(key, state);
        self.adopt_restored_guest(key);
    }

    fn on_ack(&mut self, op: u64, from: ReplicaId, ok: bool) {
        match self.pending.get_mut(&op) {
            Some(Pending::Write(w)) => {
                // A stand-in's acknowledgement counts for the replica it
                // stands in for (once: the replica's own is then ignored).
                let slot = if w.waiting.contains(&from) {
                    from
                } else {
                    self.stand_ins.owner(op, from).unwrap_or(from)
                };
                let Some(pos) = w.waiting.iter().position(|r| *r == slot) else {
                    return;
                };
                if !ok {
                    return; // stays waiting: a hint retries it after the timeout
                }
                w.waiting.swap_remove(pos);
                w.acked += 1;
                let mut answer = None;
                if !w.answered && w.acked >= w.needed {
                    w.answered = true;
                    let a = Answer {
                        reply: w.reply.clone(),
                        replicas_acked: clamp_u8(w.acked),
                        replicas_needed: clamp_u8(w.needed),
                    };
                    answer = Some((
                        w.origin,
                        Response {
                            id: w.request_id,
                            result: Ok(a),
                        },
                    ));
                }
                let finished = w.waiting.is_empty();
                let mut extend = None;
                if answer.is_some() && !finished {
                    // Answered: nobody waits for the rest, and a straggler
                    // that misses the deadline costs a whole-state handoff,
                    // so a busy replica gets longer to acknowledge.
                    let old = w.deadline_ms;
                    w.deadline_ms = self.now_ms.saturating_add(
                        self.config
                            .write_timeout_ms
                            .saturating_mul(STRAGGLER_TIMEOUTS),
                    );
                    extend = Some((old, w.deadline_ms));
                }
                if let Some((old, new)) = extend {
                    self.deadlines.remove(&(old, op));
                    self.deadlines.insert((new, op), ());
                }
                if let Some((origin, response)) = answer {
                    self.stats.writes_acked += 1;
                    self.reply(origin, response);
                }
                if finished {
                    if let Some(Pending::Write(w)) = self.take_pending(op) {
                        self.release_if_unowned(&w.key);
                    }
                }
            }
            // Refused: the keys get hints (whole states) at the deadline.
            Some(Pending::Spread { to, .. }) if *to == from && ok => {
                if let Some(Pending::Spread { receipt, .. }) = self.take_pending(op) {
                    self.spread_settled(receipt);
                }
            }
            Some(Pending::Handoff { to, .. }) if *to == from => {
                let Some(Pending::Handoff { to, key, .. }) = self.take_pending(op) else {
                    return;
                };
                if ok {
                    self.stats.hints_delivered += 1;
                    self.release_if_unowned(&key);
                } else {
                    self.add_hint(to, key);
                }
            }
            _ => {}
        }
    }

    fn on_read_reply(
        &mut self,
        now_ms: u64,
        op: u64,
        from: ReplicaId,
        state: Option<Causal<Record>>,
    ) {
        // A reply after the read completed or timed out is dropped.
        let Some(Pending::Read(r)) = self.pending.get_mut(&op) else {
            return;
        };
        if r.replied.contains(&from) || !r.asked.contains(&from) {
            return;
        }
        r.replied.push(from);
        r.seen
            .push((from, state.as_ref().map(crate::keyspace::state_hash)));
        let key = r.key.clone();
        let done = r.replied.len() >= r.needed;
        if let Some(s) = &state {
            self.apply_remote(now_ms, &key, Remote::State(s));
        }
        if !done {
            return;
        }
        let Some(Pending::Read(r)) = self.take_pending(op) else {
            return;
        };
        self.read_locally(now_ms, r.origin, &r.request, r.replied.len(), r.needed);
        // Read repair: send the merged state to the replicas that answered
        // with another state.
        if let Some(merged) = self.keyspace.state(&key) {
            let replicas = self.replicas(&key);
            let merged_hash = crate::keyspace::state_hash(&merged);
            for (to, _) in r.seen.into_iter().filter(|(x, hash)| {
                *x != self.id && replicas.contains(x) && *hash != Some(merged_hash)
            }) {
                self.stats.read_repairs += 1;
                self.actions.push_back(Action::Send {
                    to,
                    msg: PeerMsg::Repair {
                        key: key.clone(),
                        state: merged.clone(),
                    },
                });
            }
        }
    }

    fn on_timeout(&mut self, now_ms: u64, p: Pending) {
        match p {
            Pending::Write(w) => {
                if !w.answered {
                    self.stats.writes_short += 1;
                    let err = ErrorReply::QuorumNotReached {
                        acked: clamp_u8(w.acked),
                        needed: clamp_u8(w.needed),
                    };
                    self.fail(w.origin, w.request_id, err);
                }
                for to in w.waiting {
                    self.add_hint(to, w.key.clone());
                }
            }
            Pending::Read(r) => {
                let err = ErrorReply::ReadQuorumNotReached {
                    replied: clamp_u8(r.replied.len()),
                    needed: clamp_u8(r.needed),
                };
                let _ = now_ms;
                self.fail(r.origin, r.request.id, err);
            }
            Pending::Forward(f) => self.fail(f.origin, f.request_id, ErrorReply::Timeout),
            Pending::Handoff { .. } => {}
            Pending::Spread {
                to, keys, receipt, ..
            } => {
                for key in keys {
                    self.add_hint(to, key);
                }
                self.spread_settled(receipt);
            }
        }
    }

    fn add_hint(&mut self, to: ReplicaId, key: Bytes) {
        if !self.hinted.insert((to, key.clone())) {
            return;
        }
        if self.hints.len() >= self.config.hints_max {
            if let Some(oldest) = self.hints.pop_front() {
                self.hinted.remove(&oldest);
            }
            self.stats.hints_dropped += 1;
        }
        self.hints.push_back((to, key));
        debug_assert_eq!(self.hints.len(), self.hinted.len());
    }

    fn retry_hints(&mut self) {
        // A handoff is a whole state: one per replica and key is in flight
        // at a time, and it is sent again only after a long silence.
        let now_ms = self.now_ms;
        let patience_ms = self
            .config
            .hint_retry_ms
            .saturating_mul(HANDOFF_PATIENCE_ROUNDS);
        let stale: Vec<u64> = self
            .handoffs
            .values()
            .copied()
            .filter(|op| matches!(self.pending.get(op), Some(Pending::Handoff { sent_ms, .. }) if now_ms.saturating_sub(*sent_ms) >= patience_ms))
            .collect();
        for op in stale {
            if let Some(Pending::Handoff { to, key, .. }) = self.take_pending(op) {
                self.add_hint(to, key);
            }
        }
        for _ in 0..self.config.hint_batch_max.min(self.hints.len()) {
            let Some((to, key)) = self.hints.pop_front() else {
                break;
            };
            if self.handoffs.contains_key(&(to, key.clone())) || !self.is_alive(to) {
                // Wait for the handoff in flight (this newer change goes
                // next), or for a suspected replica to be heard from again
                // instead of queueing handoffs it cannot take.
                self.hints.push_back((to, key));
                continue;
            }
            self.hinted.remove(&(to, key.clone()));
            if !self.replicas(&key).contains(&to) {
                self.release_if_unowned(&key);
                continue; // no longer a replica (membership changed)
            }
            let Some(state) = self.keyspace.state(&key) else {
                continue;
            };
            let op = self.add_pending(Pending::Handoff {
                sent_ms: now_ms,
                to,
                key: key.clone(),
            });
            self.actions.push_back(Action::Send {
                to,
                msg: PeerMsg::Handoff { op, key, state },
            });
        }
    }

    /// Sends a local change (an expiry sweep) to the key's other replicas
    /// without waiting; a replica that misses it expires the key by itself.
    fn replicate_quietly(&mut self, key: &Bytes, delta: &Delta<Record>) {
        let others: Vec<ReplicaId> = self
            .replicas(key)
            .into_iter()
            .filter(|r| *r != self.id)
            .collect();
        if others.is_empty() {
            return;
        }
        let delta = std::sync::Arc::new(delta.clone());
        for to in others {
            self.actions.push_back(Action::Send {
                to,
                msg: PeerMsg::Replicate {
                    op: 0,
                    key: key.clone(),
                    delta: delta.clone(),
                },
            });
        }
    }
}

enum Remote<'a> {
    Delta(&'a Delta<Record>),
    State(&'a Causal<Record>),
}

/// Hint rounds a handoff may stay unanswered before it is sent again.
const HANDOFF_PATIENCE_ROUNDS: u64 = 4;

/// The id a node's life writes under: its replica id for incarnation 0,
/// else an FNV-1a mix of both (distinct per life with overwhelming odds).
pub fn writer_id(id: ReplicaId, incarnation: u32) -> ReplicaId {
    if incarnation == 0 {
        return id;
    }
    let mut h: u32 = 0x811c_9dc5;
    for b in
        id.0.to_le_bytes()
            .into_iter()
            .chain(incarnation.to_le_bytes())
    {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    ReplicaId(h)
}

fn clamp_u8(n: usize) -> u8 {
    u8::try_from(n).unwrap_or(u8::MAX)
}

impl Node {
    /// The region this node serves.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// What the node reports about itself.
    pub fn status(&self, now_ms: u64) -> NodeStatus {
        let memory = self.keyspace.memory();
        NodeStatus {
            replica: self.id.0,
            region: self.region.clone(),
            keys: memory.keys as u64,
            memory_bytes: memory.bytes as u64,
            hints_pending: self.hints_pending() as u64,
            requests: self.stats.requests,
            writes_acked: self.stats.writes_acked,
            writes_short: self.stats.writes_short,
            refused: self.stats.refused,
            peers_suspected: self
                .detector
                .peers()
                .filter(|p| !self.detector.alive(*p, now_ms))
                .map(|p| p.0)
                .collect(),
            links: self
                .geo_stats(now_ms)
                .into_iter()
                .map(|l| LinkStatus {
                    region: l.region,
                    backlog_deltas: l.backlog_deltas as u64,
                    backlog_bytes: l.backlog_bytes as u64,
                    lag_ms: l.oldest_unacked_ms,
                    lag_ms_last: l.lag_ms_last,
                    last_acked_ago_ms: l.last_acked_ago_ms,
                    dropped: l.dropped,
                })
                .collect(),
            rebalance: self.rebalance_status(),
            topology_version: self.topology_version,
        }
    }

    /// The placement this node routes by.
    pub fn placement(&self) -> &Placement {
        &self.placement
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::REGION_OF_THREE;

    /// Region `r` of four nodes, N = 3: each key has a node that holds no
    /// replica of it.
    fn region_of_four() -> String {
        format!(
            "{REGION_OF_THREE}\n[[region.node]]\nid = \"n4\"\n\
             client_addr = \"127.0.0.1:9104\"\npeer_addr = \"127.0.0.1:9114\"\n"
        )
    }

    const NOW_MS: u64 = 1_800_000_000_000;

    fn drain(node: &mut Node) -> Vec<Action> {
        std::iter::from_fn(|| node.poll_action()).collect()
    }

    /// Has `node` coordinate `command` at quorum: the operation its reads
    /// of the other replicas carry.
    fn start_quorum_read(node: &mut Node, command: Command) -> u64 {
        let request = Request {
            id: 7,
            command,
            write: None,
            read: Some(ReadConsistency::Quorum),
        };
        node.handle(NOW_MS, Input::Client { client: 1, request });
        drain(node)
            .into_iter()
            .find_map(|a| match a {
                Action::Send {
                    msg: PeerMsg::Read { op, .. },
                    ..
                } => Some(op),
                _ => None,
            })
            .expect("the read asks the other replicas")
    }

    /// The replicas `actions` send a read repair to, in order.
    fn repairs_in(actions: &[Action]) -> Vec<ReplicaId> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Send {
                    to,
                    msg: PeerMsg::Repair { .. },
                } => Some(*to),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_forward_reply_naming_a_pending_write_leaves_the_write_alone() {
        let topology = Topology::parse(REGION_OF_THREE, "sim.toml").unwrap();
        let ids: Vec<ReplicaId> = topology.nodes().map(|(_, n)| n.replica).collect();
        let mut node = Node::new(&topology, ids[0], NodeConfig::default()).unwrap();
        let request = Request {
            id: 7,
            command: Command::IncrBy {
                key: Bytes::from("hits"),
                by: 1,
            },
            write: Some(WriteConsistency::All),
            read: None,
        };
        node.handle(NOW_MS, Input::Client { client: 1, request });
        let op = drain(&mut node)
            .into_iter()
            .find_map(|a| match a {
                Action::Send {
                    msg: PeerMsg::Replicate { op, .. },
                    ..
                } => Some(op),
                _ => None,
            })
            .expect("the write is replicated");
        let stray = PeerMsg::ForwardReply {
            op,
            response: Response {
                id: 99,
                result: Err(ErrorReply::Timeout),
            },
        };
        node.handle(
            NOW_MS,
            Input::Peer {
                from: ids[1],
                msg: stray,
            },
        );
        assert!(drain(&mut node).is_empty(), "a stray reply is ignored");
        for from in &ids[1..] {
            let msg = PeerMsg::Ack { op, ok: true };
            node.handle(NOW_MS, Input::Peer { from: *from, msg });
        }
        let replies: Vec<Response> = drain(&mut node)
            .into_iter()
            .filter_map(|a| match a {
                Action::Reply { response, .. } => Some(response),
                _ => None,
            })
            .collect();
        assert_eq!(replies.len(), 1, "{replies:?}");
        assert_eq!(replies[0].id, 7);
        let answer = replies[0].result.as_ref().expect("the write reached W");
        assert_eq!((answer.replicas_acked, answer.replicas_needed), (3, 3));
    }

    #[test]
    fn read_replies_count_only_from_the_replicas_asked() {
        // Four nodes, N = 3: the fourth holds no replica of the key.
        let topology = Topology::parse(&region_of_four(), "sim.toml").unwrap();
        let ids: Vec<ReplicaId> = topology.nodes().map(|(_, n)| n.replica).collect();
        let key = Bytes::from("k");
        let placement = Placement::new(&topology);
        let owners = placement.preference_list("r", &key).unwrap().to_vec();
        let coordinator = owners[0];
        let stranger = *ids.iter().find(|r| !owners.contains(r)).unwrap();
        let mut node = Node::new(&topology, coordinator, NodeConfig::default()).unwrap();
        let op = start_quorum_read(&mut node, Command::Get { key: key.clone() });
        let reply = |op| PeerMsg::ReadReply { op, state: None };
        for from in [stranger, coordinator] {
            node.handle(
                NOW_MS,
                Input::Peer {
                    from,
                    msg: reply(op),
                },
            );
            let answered = drain(&mut node)
                .into_iter()
                .any(|a| matches!(a, Action::Reply { .. }));
            assert!(!answered, "a reply from a node not asked is not counted");
        }
        node.handle(
            NOW_MS,
            Input::Peer {
                from: owners[1],
                msg: reply(op),
            },
        );
        let answered = drain(&mut node)
            .into_iter()
            .any(|a| matches!(a, Action::Reply { .. }));
        assert!(
            answered,
            "one replica asked and the coordinator make a quorum"
        );
    }

    #[test]
    fn a_quorum_read_repairs_only_the_replicas_that_answered_another_state() {
        let topology = Topology::parse(&region_of_four(), "sim.toml").unwrap();
        let key = Bytes::from("k");
        let placement = Placement::new(&topology);
        let owners = placement.preference_list("r", &key).unwrap().to_vec();
        let mut node = Node::new(&topology, owners[0], NodeConfig::default()).unwrap();
        node.keyspace
            .sadd(&key, &[Bytes::from("a"), Bytes::from("b")], NOW_MS)
            .unwrap();
        let same = node.keyspace.state(&key).unwrap();
        let mut stale = crate::keyspace::Keyspace::new(ReplicaId(99), Default::default());
        stale.sadd(&key, &[Bytes::from("a")], NOW_MS).unwrap();
        let stale = stale.state(&key);
        // One read each: the replica answering the same state, one answering
        // another, one with no such key.
        for (from, state, repaired) in [
            (owners[1], Some(same), false),
            (owners[2], stale, true),
            (owners[1], None, true),
        ] {
            let op = start_quorum_read(&mut node, Command::SCard { key: key.clone() });
            let msg = PeerMsg::ReadReply { op, state };
            node.handle(NOW_MS, Input::Peer { from, msg });
            let actions = drain(&mut node);
            assert!(actions.iter().any(|a| matches!(a, Action::Reply { .. })));
            let repairs = repairs_in(&actions);
            let expected = if repaired { vec![from] } else { vec![] };
            assert_eq!(repairs, expected, "reply from {from:?}");
        }
    }

    #[test]
    fn a_replica_that_answered_the_coordinators_state_is_repaired_when_a_later_answer_changed_it() {
        // Five replicas: a quorum read waits for two other replies.
        let text = REGION_OF_THREE.replace("replication_factor = 3", "replication_factor = 5")
            + "\n[[region.node]]\nid = \"n4\"\nclient_addr = \"127.0.0.1:9104\"\npeer_addr = \"127.0.0.1:9114\"\n\
               \n[[region.node]]\nid = \"n5\"\nclient_addr = \"127.0.0.1:9105\"\npeer_addr = \"127.0.0.1:9115\"\n";
        let topology = Topology::parse(&text, "sim.toml").unwrap();
        let key = Bytes::from("k");
        let owners = Placement::new(&topology)
            .preference_list("r", &key)
            .unwrap()
            .to_vec();
        assert_eq!(owners.len(), 5);
        let mut node = Node::new(&topology, owners[0], NodeConfig::default()).unwrap();
        node.keyspace
            .sadd(&key, &[Bytes::from("a")], NOW_MS)
            .unwrap();
        let same = node.keyspace.state(&key);
        let mut other = crate::keyspace::Keyspace::new(ReplicaId(99), Default::default());
        other.sadd(&key, &[Bytes::from("b")], NOW_MS).unwrap();
        let op = start_quorum_read(&mut node, Command::SCard { key: key.clone() });
        for (from, state) in [(owners[1], same), (owners[2], other.state(&key))] {
            let msg = PeerMsg::ReadReply { op, state };
            node.handle(NOW_MS, Input::Peer { from, msg });
        }
        assert_eq!(repairs_in(&drain(&mut node)), vec![owners[1], owners[2]]);
    }

    #[test]
    fn a_forward_reply_counts_only_from_the_node_forwarded_to() {
        let topology = Topology::parse(&region_of_four(), "sim.toml").unwrap();
        let ids: Vec<ReplicaId> = topology.nodes().map(|(_, n)| n.replica).collect();
        let key = Bytes::from("k");
        let placement = Placement::new(&topology);
        let owners = placement.preference_list("r", &key).unwrap().to_vec();
        let outsider = *ids.iter().find(|r| !owners.contains(r)).unwrap();
        let mut node = Node::new(&topology, outsider, NodeConfig::default()).unwrap();
        let request = Request {
            id: 7,
            command: Command::Get { key },
            write: None,
            read: None,
        };
        node.handle(NOW_MS, Input::Client { client: 1, request });
        let (to, op) = drain(&mut node)
            .into_iter()
            .find_map(|a| match a {
                Action::Send {
                    to,
                    msg: PeerMsg::Forward { op, .. },
                } => Some((to, op)),
                _ => None,
            })
            .expect("the request is forwarded");
        let reply = |op| PeerMsg::ForwardReply {
            op,
            response: Response {
                id: 0,
                result: Ok(Answer {
                    reply: Reply::Nil,
                    replicas_acked: 1,
                    replicas_needed: 1,
                }),
            },
        };
        let other = *owners.iter().find(|r| **r != to).unwrap();
        node.handle(
            NOW_MS,
            Input::Peer {
                from: other,
                msg: reply(op),
            },
        );
        assert!(
            drain(&mut node).is_empty(),
            "only the node forwarded to answers"
        );
        node.handle(
            NOW_MS,
            Input::Peer {
                from: to,
                msg: reply(op),
            },
        );
        let replies: Vec<u64> = drain(&mut node)
            .into_iter()
            .filter_map(|a| match a {
                Action::Reply { response, .. } => Some(response.id),
                _ => None,
            })
            .collect();
        assert_eq!(replies, [7]);
    }
}
