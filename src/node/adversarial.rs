//! The node under adversarial input.
//!
//! A region of four nodes (N = 3) and another region of three run as real
//! [`Node`]s; every message between them goes through the wire encoding,
//! as in production. One node, the target, is fed random sequences of
//! well-typed but hostile input: every kind of peer message, with deltas
//! and states of every CRDT kind for keys that hold other kinds, extreme
//! counters, sequence numbers and clocks, from known nodes, unknown
//! replica ids and itself; acknowledgements and replies naming operations
//! it never started, already finished, or of another kind; messages
//! damaged on the wire that still decode; client requests with empty or
//! oversized keys and values, `u64::MAX` times to live and `i64::MIN`/`MAX`
//! increments; its own messages to the others delivered late, twice, out
//! of order or never; and its clock going backwards or leaping far ahead.
//!
//! After each sequence no node has panicked, and the region still serves:
//! a write of a fresh key through the target reaches its quorum and a
//! quorum read of it gives the value back, both for a key the target
//! replicates and for one it forwards.
//!
//! Raise the number of cases with `PROPTEST_CASES`.

use super::{bundle_sends, Action, ClientId, Input, Node, NodeConfig};
use crate::protocol::frame::{self, encode_into};
use crate::protocol::samples::{apply_damage, damage, Damage, Gen};
use crate::protocol::{Command, PeerMsg, Reply, Request, Response};
use crate::topology::{ReadConsistency, Topology, WriteConsistency};
use crdt_types::{
    Bytes, Causal, CausalContext, Counter, Delta, Dot, DotFun, Expiry, ExpiryEntry, Hlc,
    LwwRegister, MvRegister, Record, ReplicaId, Stamped, TypedStore,
};
use proptest::prelude::*;
use std::collections::VecDeque;
use std::sync::Arc;

const START_MS: u64 = 1_800_000_000_000;
const KEY_BYTES_MAX: usize = 64;
const VALUE_BYTES_MAX: usize = 4096;
/// The client the target serves; the final check uses another.
const CLIENT: ClientId = 1;
const CHECK_CLIENT: ClientId = 2;

/// Region `r` of four nodes (the target is `r1`), region `s` of three.
fn topology() -> Topology {
    let mut text = format!(
        "[cluster]\nname = \"adversarial\"\nreplication_factor = 3\n\
         write_consistency = \"quorum\"\n\n[limits]\nkey_bytes_max = {KEY_BYTES_MAX}\n\
         value_bytes_max = {VALUE_BYTES_MAX}\nframe_bytes_max = 8192\n"
    );
    for (r, (region, nodes)) in [("r", 4), ("s", 3)].into_iter().enumerate() {
        text.push_str(&format!("\n[[region]]\nname = \"{region}\"\n"));
        for i in 1..=nodes {
            text.push_str(&format!(
                "\n[[region.node]]\nid = \"{region}{i}\"\n\
                 client_addr = \"127.0.0.1:9{r}{i}1\"\npeer_addr = \"127.0.0.1:9{r}{i}2\"\n"
            ));
        }
    }
    Topology::parse(&text, "adversarial.toml").expect("the test topology is valid")
}

/// A message as the wire carries it: encoded, then decoded (`None` when
/// the bytes do not decode, as a peer stream would refuse them).
fn over_the_wire(msg: &PeerMsg, damages: &[Damage]) -> Option<PeerMsg> {
    let mut framed = Vec::new();
    encode_into(msg, &mut framed, usize::MAX).expect("peer messages encode");
    let mut body = framed.split_off(frame::LENGTH_PREFIX_LEN);
    let original = body.clone();
    for d in damages {
        body = apply_damage(body, d, std::slice::from_ref(&original));
    }
    frame::decode(&body).ok()
}

/// The numbers naming operations, sequences, sessions and epochs in a message.
fn numbers(msg: &PeerMsg) -> Vec<u64> {
    match msg {
        PeerMsg::Replicate { op, .. }
        | PeerMsg::ReplicateBatch { op, .. }
        | PeerMsg::Ack { op, .. }
        | PeerMsg::Forward { op, .. }
        | PeerMsg::ForwardReply { op, .. }
        | PeerMsg::Read { op, .. }
        | PeerMsg::ReadReply { op, .. }
        | PeerMsg::Handoff { op, .. }
        | PeerMsg::DigestRequest { op, .. }
        | PeerMsg::DigestReply { op, .. }
        | PeerMsg::TransferAck { op, .. }
        | PeerMsg::HintedReplicate { op, .. } => vec![*op],
        PeerMsg::Transfer { op, epoch, .. } => vec![*op, *epoch],
        PeerMsg::GeoBatch {
            session,
            acked_seq,
            first_seq,
            next_seq,
            ..
        } => vec![*session, *acked_seq, *first_seq, *next_seq],
        PeerMsg::GeoAck { session, next_seq } => vec![*session, *next_seq],
        PeerMsg::RebalanceDone { epoch } | PeerMsg::RebalanceDoneAck { epoch, .. } => vec![*epoch],
        PeerMsg::CatchUp { session } | PeerMsg::CatchUpDone { session } => vec![*session],
        PeerMsg::ReplicateMany { items } => items.iter().map(|i| i.0).collect(),
        PeerMsg::AckMany { acks } => acks.iter().map(|a| a.0).collect(),
        PeerMsg::Repair { .. } | PeerMsg::DigestRepair { .. } | PeerMsg::Heartbeat => Vec::new(),
    }
}

/// Replaces the numbers of `msg` (see [`numbers`]) with `n`.
fn renumber(msg: &mut PeerMsg, n: u64) {
    match msg {
        PeerMsg::Replicate { op, .. }
        | PeerMsg::ReplicateBatch { op, .. }
        | PeerMsg::Ack { op, .. }
        | PeerMsg::Forward { op, .. }
        | PeerMsg::ForwardReply { op, .. }
        | PeerMsg::Read { op, .. }
        | PeerMsg::ReadReply { op, .. }
        | PeerMsg::Handoff { op, .. }
        | PeerMsg::DigestRequest { op, .. }
        | PeerMsg::DigestReply { op, .. }
        | PeerMsg::TransferAck { op, .. }
        | PeerMsg::HintedReplicate { op, .. } => *op = n,
        PeerMsg::Transfer { op, epoch, .. } => {
            *op = n;
            *epoch = n;
        }
        PeerMsg::GeoBatch {
            session,
            acked_seq,
            first_seq,
            next_seq,
            ..
        } => {
            // An odd n keeps the session, an even one starts another.
            if n & 1 == 0 {
                *session = n;
            }
            *first_seq = n;
            *next_seq = n.saturating_add(1);
            *acked_seq = (*acked_seq).min(n);
        }
        PeerMsg::GeoAck { session, next_seq } => {
            if n & 1 == 0 {
                *session = n;
            }
            *next_seq = n;
        }
        PeerMsg::RebalanceDone { epoch } | PeerMsg::RebalanceDoneAck { epoch, .. } => *epoch = n,
        PeerMsg::CatchUp { session } | PeerMsg::CatchUpDone { session } => *session = n,
        PeerMsg::ReplicateMany { items } => items.iter_mut().for_each(|i| i.0 = n),
        PeerMsg::AckMany { acks } => acks.iter_mut().for_each(|a| a.0 = n),
        PeerMsg::Repair { .. } | PeerMsg::DigestRepair { .. } | PeerMsg::Heartbeat => {}
    }
}

/// The largest sequence number a decoded context may hold.
const SEQ_MAX: u64 = u64::MAX >> 1;

/// The largest sequence number in the contexts of a message's deltas and states.
fn largest_seq(msg: &PeerMsg) -> u64 {
    fn of(ctx: &CausalContext) -> u64 {
        let vv = ctx.version_vector().iter().map(|(_, n)| *n);
        vv.chain(ctx.cloud().iter().map(|d| d.seq))
            .max()
            .unwrap_or(0)
    }
    let deltas = |entries: &[(Bytes, Delta<Record>)]| {
        entries
            .iter()
            .map(|(_, d)| of(d.context()))
            .max()
            .unwrap_or(0)
    };
    let states = |entries: &[(Bytes, Causal<Record>)]| {
        entries
            .iter()
            .map(|(_, s)| of(s.context()))
            .max()
            .unwrap_or(0)
    };
    match msg {
        PeerMsg::Replicate { delta, .. } => of(delta.context()),
        PeerMsg::HintedReplicate { delta, .. } => of(delta.context()),
        PeerMsg::ReplicateBatch { entries, .. } | PeerMsg::GeoBatch { entries, .. } => {
            deltas(entries)
        }
        PeerMsg::ReplicateMany { items } => items
            .iter()
            .map(|(_, _, d)| of(d.context()))
            .max()
            .unwrap_or(0),
        PeerMsg::ReadReply { state, .. } => state.as_ref().map_or(0, |s| of(s.context())),
        PeerMsg::Repair { state, .. } | PeerMsg::Handoff { state, .. } => of(state.context()),
        PeerMsg::DigestReply { states: s, .. }
        | PeerMsg::DigestRepair { states: s }
        | PeerMsg::Transfer { states: s, .. } => states(s),
        _ => 0,
    }
}

/// The region, its wire, and what the target has said.
struct Cluster {
    ids: Vec<ReplicaId>,
    nodes: Vec<Node>,
    /// The target's clock (it jumps around), and the latest it read; the
    /// others share one that only moves forward.
    target_ms: u64,
    target_max_ms: u64,
    others_ms: u64,
    /// Messages in flight: from, to, message.
    wire: VecDeque<(ReplicaId, ReplicaId, PeerMsg)>,
    /// Operation ids, sequence numbers, sessions and epochs the target used.
    seen: Vec<u64>,
    /// Requests the target's client sent (numbered from 0), and every answer.
    requests: u64,
    replies: Vec<(ClientId, Response)>,
}

impl Cluster {
    fn new() -> Cluster {
        let topology = topology();
        let mut ids: Vec<ReplicaId> = topology.nodes().map(|(_, n)| n.replica).collect();
        let target = topology.node("r1").expect("r1 exists").replica;
        ids.retain(|id| *id != target);
        ids.insert(0, target);
        let config = NodeConfig {
            write_timeout_ms: 200,
            hint_retry_ms: 100,
            digest_interval_ms: 400,
            ..NodeConfig::default()
        };
        let nodes = ids
            .iter()
            .map(|id| Node::new(&topology, *id, config.clone()).expect("a node of the topology"))
            .collect();
        let mut c = Cluster {
            ids,
            nodes,
            target_ms: START_MS,
            target_max_ms: START_MS,
            others_ms: START_MS,
            wire: VecDeque::new(),
            seen: Vec::new(),
            requests: 0,
            replies: Vec::new(),
        };
        for i in 0..c.nodes.len() {
            c.nodes[i].tick(START_MS);
            c.drain(i);
        }
        c
    }

    fn index(&self, id: ReplicaId) -> Option<usize> {
        self.ids.iter().position(|r| *r == id)
    }

    fn now(&mut self, i: usize) -> u64 {
        if i == 0 {
            self.target_max_ms = self.target_max_ms.max(self.target_ms);
            self.target_ms
        } else {
            self.others_ms
        }
    }

    /// Routes node `i`'s actions as the driver does (bundled), through the wire.
    fn drain(&mut self, i: usize) {
        let actions: Vec<Action> = std::iter::from_fn(|| self.nodes[i].poll_action()).collect();
        for action in bundle_sends(actions) {
            match action {
                Action::Send { to, msg } => {
                    if i == 0 {
                        self.seen.extend(numbers(&msg));
                        if self.seen.len() > 256 {
                            self.seen.drain(..128);
                        }
                    }
                    let Some(msg) = over_the_wire(&msg, &[]) else {
                        // A node that took in a dot at the largest sequence
                        // number a peer accepts mints the next one when it
                        // writes the key, and peers refuse that: the
                        // message is lost (their stream is stopped). No
                        // other message may fail to cross.
                        assert!(
                            largest_seq(&msg) > SEQ_MAX,
                            "node {i}'s message does not survive the wire: {msg:?}"
                        );
                        continue;
                    };
                    if self.index(to).is_some() {
                        self.wire.push_back((self.ids[i], to, msg));
                    }
                }
                Action::Reply { client, response } => self.replies.push((client, response)),
                Action::Persist { .. } => {}
            }
        }
    }

    fn handle(&mut self, i: usize, input: Input) {
        let now = self.now(i);
        self.nodes[i].handle(now, input);
        self.drain(i);
    }

    fn deliver(&mut self, (from, to, msg): (ReplicaId, ReplicaId, PeerMsg)) {
        if let Some(i) = self.index(to) {
            self.handle(i, Input::Peer { from, msg });
        }
    }

    fn tick(&mut self, i: usize) {
        let now = self.now(i);
        self.nodes[i].tick(now);
        self.drain(i);
    }

    /// Delivers everything in flight, and what that sends, in order.
    fn settle(&mut self) -> Result<(), TestCaseError> {
        for _ in 0..200_000 {
            let Some(m) = self.wire.pop_front() else {
                return Ok(());
            };
            self.deliver(m);
        }
        Err(TestCaseError::fail("the region never went quiet"))
    }

    /// The answer to `CHECK_CLIENT`'s request `id`, once the region settled.
    fn ask(&mut self, id: u64, command: Command) -> Result<Response, TestCaseError> {
        let request = Request {
            id,
            command,
            write: Some(WriteConsistency::Quorum),
            read: Some(ReadConsistency::Quorum),
        };
        self.handle(
            0,
            Input::Client {
                client: CHECK_CLIENT,
                request,
            },
        );
        self.settle()?;
        if !self.answered(id) {
            // Let the timeouts fire: the answer says what went wrong.
            self.target_ms += 10_000;
            self.others_ms += 10_000;
            for i in 0..self.nodes.len() {
                self.tick(i);
            }
            self.settle()?;
        }
        let answer = self
            .replies
            .iter()
            .find(|(client, r)| *client == CHECK_CLIENT && r.id == id)
            .map(|(_, r)| r.clone());
        answer.ok_or_else(|| TestCaseError::fail(format!("request {id} got no answer")))
    }

    fn answered(&self, id: u64) -> bool {
        self.replies
            .iter()
            .any(|(client, r)| *client == CHECK_CLIENT && r.id == id)
    }

    /// The region still serves a fresh key through the target, whether the
    /// target replicates it or forwards it.
    fn check_still_serves(&mut self) -> Result<(), TestCaseError> {
        // Every clock past the latest any node read (a node's stamps never
        // go back: peers refuse those too far ahead of their own clock),
        // late enough for every timeout to fire.
        let t = self
            .target_max_ms
            .max(self.target_ms)
            .max(self.others_ms)
            .saturating_add(60_000);
        self.target_ms = t;
        self.others_ms = t;
        self.wire.clear();
        for i in 0..self.nodes.len() {
            self.tick(i);
        }
        self.settle()?;
        let target = self.ids[0];
        let placement = self.nodes[0].placement().clone();
        let replicated = |k: &Bytes| {
            placement
                .preference_list("r", k)
                .is_ok_and(|l| l.contains(&target))
        };
        let fresh: Vec<Bytes> = (0..)
            .map(|i| Bytes::from(format!("fresh-{i}").as_str()))
            .take(64)
            .collect();
        let mine = fresh.iter().find(|k| replicated(k)).cloned();
        let theirs = fresh.iter().find(|k| !replicated(k)).cloned();
        for (n, key) in [mine, theirs].into_iter().flatten().enumerate() {
            let value = Bytes::from(format!("value-{n}").as_str());
            let set = self.ask(
                1_000 + n as u64,
                Command::Set {
                    key: key.clone(),
                    value: value.clone(),
                    ttl_ms: None,
                },
            )?;
            prop_assert!(
                matches!(&set.result, Ok(a) if a.reply == Reply::Ok && a.replicas_acked >= 2),
                "a fresh write was answered {:?}",
                set.result
            );
            let get = self.ask(2_000 + n as u64, Command::Get { key })?;
            prop_assert!(
                matches!(&get.result, Ok(a) if a.reply == Reply::Value(value)),
                "a fresh read was answered {:?}",
                get.result
            );
        }
        Ok(())
    }
}

/// Where a hostile message claims to come from.
fn sender(c: &Cluster, pick: usize) -> ReplicaId {
    let strangers = [ReplicaId(0), ReplicaId(u32::MAX), ReplicaId(12_345)];
    let n = c.ids.len() + strangers.len();
    match pick % n {
        // The target itself, the other nodes of both regions.
        i if i < c.ids.len() => c.ids[i],
        i => strangers[i - c.ids.len()],
    }
}

/// What number a hostile message names.
#[derive(Debug, Clone)]
enum Number {
    /// The one the sample drew.
    Keep,
    /// One the target used (an operation it started, perhaps finished).
    Seen(usize),
    Value(u64),
}

fn number() -> impl Strategy<Value = Number> {
    prop_oneof![
        2 => Just(Number::Keep),
        4 => any::<usize>().prop_map(Number::Seen),
        1 => prop_oneof![Just(0u64), Just(1), Just(u64::MAX), Just(1 << 63), any::<u64>()]
            .prop_map(Number::Value),
    ]
}

/// Sequence numbers for crafted dots: ordinary, at the largest a context
/// may hold, and beyond.
const SEQS: [u64; 6] = [1, 2, 1_000, u64::MAX >> 1, 1 << 63, u64::MAX];

/// A crafted delta or state with extreme dots, counters, stamps or deadlines.
#[derive(Debug, Clone)]
struct Crafted {
    shape: u8,
    writer: usize,
    seq: usize,
    value: i64,
    key: u8,
    as_state: bool,
}

fn crafted() -> impl Strategy<Value = Crafted> {
    (
        0u8..6,
        any::<usize>(),
        0..SEQS.len(),
        prop_oneof![Just(i64::MAX), Just(i64::MIN), Just(0i64), any::<i64>()],
        0u8..4,
        any::<bool>(),
    )
        .prop_map(|(shape, writer, seq, value, key, as_state)| Crafted {
            shape,
            writer,
            seq,
            value,
            key,
            as_state,
        })
}

impl Crafted {
    fn message(&self, c: &Cluster) -> PeerMsg {
        let writer = sender(c, self.writer);
        let dot = Dot::new(writer, SEQS[self.seq]);
        let ctx = CausalContext::from_dots([dot]);
        let (data, expiry) = match self.shape {
            0 => (
                TypedStore::Counter(Counter::from(DotFun::single(dot, self.value))),
                Expiry::default(),
            ),
            1 => (
                TypedStore::Register(LwwRegister::from(DotFun::single(
                    dot,
                    Stamped {
                        hlc: Hlc::from_u64(self.value as u64),
                        value: Bytes::from("crafted"),
                    },
                ))),
                Expiry::default(),
            ),
            2 => (
                TypedStore::MvRegister(MvRegister::from(DotFun::single(
                    dot,
                    Bytes::from("crafted"),
                ))),
                Expiry::default(),
            ),
            3 => (
                TypedStore::Empty,
                Expiry::from(DotFun::single(
                    dot,
                    ExpiryEntry::Deadline(self.value as u64),
                )),
            ),
            4 => (
                TypedStore::Empty,
                Expiry::from(DotFun::single(dot, ExpiryEntry::Persist)),
            ),
            // A removal of everything up to the dot.
            _ => (TypedStore::Empty, Expiry::default()),
        };
        let record = Record { data, expiry };
        let key = Bytes::from(format!("k{}", 2 + self.key).as_str());
        if self.as_state {
            let ctx = CausalContext::from_version_vector([(writer, SEQS[self.seq])]);
            let state = Causal::from_parts(record, ctx).expect("the dot is in the context");
            PeerMsg::Repair { key, state }
        } else {
            PeerMsg::Replicate {
                op: 0,
                key,
                delta: Arc::new(Delta::new(record, ctx)),
            }
        }
    }
}

/// How the target's clock moves.
#[derive(Debug, Clone)]
enum Clock {
    Forward(u16),
    Back(u32),
    /// A day, a year, a century ahead, or to 2^48 ms (the most an HLC
    /// holds), 2^52 or 2^62 ms.
    Leap(u8),
}

fn clock() -> impl Strategy<Value = Clock> {
    prop_oneof![
        6 => any::<u16>().prop_map(Clock::Forward),
        2 => any::<u32>().prop_map(Clock::Back),
        1 => (0u8..6).prop_map(Clock::Leap),
    ]
}

/// One thing that happens to the target.
#[derive(Debug, Clone)]
enum Step {
    /// A client request of some command (a value over the limit when `long`).
    Client {
        variant: usize,
        seed: u64,
        long: bool,
    },
    /// A sample peer message, renumbered and damaged on the wire.
    Peer {
        from: usize,
        variant: usize,
        seed: u64,
        number: Number,
        damages: Vec<Damage>,
    },
    /// A crafted delta or state.
    Crafted {
        from: usize,
        crafted: Crafted,
    },
    /// A message in flight arrives (and stays in flight when `twice`).
    Deliver {
        pick: usize,
        twice: bool,
    },
    Lose {
        pick: usize,
    },
    Time(Clock),
    /// The other nodes' time passes.
    Others(u16),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (any::<usize>(), any::<u64>(), prop::bool::weighted(0.1))
            .prop_map(|(variant, seed, long)| Step::Client { variant, seed, long }),
        6 => (
            any::<usize>(),
            any::<usize>(),
            any::<u64>(),
            number(),
            prop::collection::vec(damage(), 0..2),
        )
            .prop_map(|(from, variant, seed, number, damages)| Step::Peer {
                from,
                variant,
                seed,
                number,
                damages,
            }),
        2 => (any::<usize>(), crafted()).prop_map(|(from, crafted)| Step::Crafted { from, crafted }),
        5 => (any::<usize>(), prop::bool::weighted(0.2))
            .prop_map(|(pick, twice)| Step::Deliver { pick, twice }),
        1 => any::<usize>().prop_map(|pick| Step::Lose { pick }),
        2 => clock().prop_map(Step::Time),
        2 => (0u16..2_000).prop_map(Step::Others),
    ]
}

/// A write whose value is one byte over the limit.
fn long_write(variant: usize, key: Bytes) -> Command {
    let long = Bytes::from(vec![b'v'; VALUE_BYTES_MAX + 1]);
    match variant % 5 {
        0 => Command::Set {
            key,
            value: long,
            ttl_ms: Some(u64::MAX),
        },
        1 => Command::HSet {
            key,
            field: long,
            value: Bytes::from("v"),
        },
        2 => Command::SAdd {
            key,
            members: vec![Bytes::from("m"), long],
        },
        3 => Command::MvSet { key, value: long },
        _ => Command::MapApply {
            key,
            path: vec![Bytes::from("f"), long],
            op: crate::keyspace::FieldOp::Incr(1),
        },
    }
}

fn run(c: &mut Cluster, step: &Step) {
    let writers = [c.ids[0], c.ids[1], ReplicaId(u32::MAX)];
    match step {
        Step::Client {
            variant,
            seed,
            long,
        } => {
            let mut g = Gen::with_writers(*seed, &writers);
            let mut request = g.request(*variant);
            request.id = c.requests;
            c.requests += 1;
            if *long {
                let key = request.command.key().cloned().unwrap_or_default();
                request.command = long_write(*variant, key);
            }
            c.handle(
                0,
                Input::Client {
                    client: CLIENT,
                    request,
                },
            );
        }
        Step::Peer {
            from,
            variant,
            seed,
            number,
            damages,
        } => {
            let mut msg = Gen::with_writers(*seed, &writers).peer_msg(*variant);
            match number {
                Number::Keep => {}
                Number::Seen(i) if c.seen.is_empty() => renumber(&mut msg, *i as u64),
                Number::Seen(i) => renumber(&mut msg, c.seen[i % c.seen.len()]),
                Number::Value(n) => renumber(&mut msg, *n),
            }
            if let Some(msg) = over_the_wire(&msg, damages) {
                let from = sender(c, *from);
                c.handle(0, Input::Peer { from, msg });
            }
        }
        Step::Crafted { from, crafted } => {
            if let Some(msg) = over_the_wire(&crafted.message(c), &[]) {
                let from = sender(c, *from);
                c.handle(0, Input::Peer { from, msg });
            }
        }
        Step::Deliver { pick, twice } => {
            if c.wire.is_empty() {
                return;
            }
            let i = pick % c.wire.len();
            let m = if *twice {
                c.wire[i].clone()
            } else {
                c.wire.remove(i).expect("in range")
            };
            c.deliver(m);
        }
        Step::Lose { pick } => {
            if !c.wire.is_empty() {
                let i = pick % c.wire.len();
                c.wire.remove(i);
            }
        }
        Step::Time(clock) => {
            c.target_ms = match *clock {
                Clock::Forward(ms) => c.target_ms.saturating_add(u64::from(ms)),
                Clock::Back(ms) => c.target_ms.saturating_sub(u64::from(ms)),
                Clock::Leap(i) => match i {
                    0 => c.target_ms.saturating_add(86_400_000),
                    1 => c.target_ms.saturating_add(365 * 86_400_000),
                    2 => c.target_ms.saturating_add(36_500 * 86_400_000),
                    3 => c.target_ms.max(crdt_types::PHYSICAL_MS_MAX),
                    4 => c.target_ms.max(1 << 52),
                    _ => c.target_ms.max(1 << 62),
                },
            };
            c.tick(0);
        }
        Step::Others(ms) => {
            c.others_ms += u64::from(*ms);
            for i in 1..c.nodes.len() {
                c.tick(i);
            }
        }
    }
}

fn config(default_cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_cases);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config(48))]

    #[test]
    fn hostile_input_never_panics_a_node_and_the_region_still_serves(
        steps in prop::collection::vec(step(), 1..48)
    ) {
        let mut c = Cluster::new();
        for step in &steps {
            run(&mut c, step);
        }
        c.check_still_serves()?;
        // Every request of the target's client was answered, once (every
        // timeout has fired by now).
        let mut answers = vec![0u32; c.requests as usize];
        for (_, r) in c.replies.iter().filter(|(client, _)| *client == CLIENT) {
            prop_assert!(r.id < c.requests, "an answer to a request never made: {r:?}");
            answers[r.id as usize] += 1;
        }
        for (id, n) in answers.iter().enumerate() {
            prop_assert_eq!(*n, 1, "request {} was answered {} times", id, n);
        }
    }
}
