//! Sample messages of every kind the wire carries, and ways to damage
//! their bytes: the material of the robustness tests of the decoders
//! (`net::wire_fuzz`) and of the node (`node::adversarial`).
//!
//! Keys come from a small shared pool, so writes of different kinds meet
//! on one key; deltas and states are made by real keyspaces of several
//! writers that also take in each other's deltas, so states mix kinds.
//! Numbers are often extreme (0, 1, 2^63, `u64::MAX`, `i64::MIN`...).

use crate::keyspace::{FieldOp, FieldValue, KeyPage, Keyspace, KeyspaceConfig, Matches, Page, Ttl};
use crate::protocol::{
    Answer, Command, ErrorReply, LinkStatus, NodeStatus, PeerMsg, RebalanceStatus, Reply, Request,
    Response,
};
use crate::sim::Rng;
use crate::topology::{ReadConsistency, WriteConsistency};
use crdt_types::{Bytes, Causal, Delta, Kind, Record, ReplicaId, MAP_NESTING_MAX};
use proptest::prelude::*;
use std::sync::Arc;

/// Builds messages from a seed (see the module docs).
pub(crate) struct Gen {
    rng: Rng,
    keyspaces: Vec<Keyspace>,
    now_ms: u64,
}

pub(crate) const NOW_MS: u64 = 1_800_000_000_000;

impl Gen {
    pub(crate) fn new(seed: u64) -> Gen {
        Gen::with_writers(seed, &[ReplicaId(1), ReplicaId(2), ReplicaId(u32::MAX)])
    }

    /// A generator whose deltas and states are written by `writers`.
    pub(crate) fn with_writers(seed: u64, writers: &[ReplicaId]) -> Gen {
        Gen {
            rng: Rng::new(seed),
            keyspaces: writers
                .iter()
                .map(|w| Keyspace::new(*w, KeyspaceConfig::default()))
                .collect(),
            now_ms: NOW_MS,
        }
    }

    pub(crate) fn below(&mut self, n: usize) -> usize {
        self.rng.below(n as u64) as usize
    }

    /// A number, often an extreme one.
    pub(crate) fn num(&mut self) -> u64 {
        match self.rng.below(7) {
            0 => 0,
            1 => 1,
            2 => u64::MAX,
            3 => 1 << 63,
            4 => self.rng.below(1_000),
            5 => u64::from(u32::MAX),
            _ => self.rng.next_u64(),
        }
    }

    pub(crate) fn int(&mut self) -> i64 {
        match self.rng.below(5) {
            0 => i64::MAX,
            1 => i64::MIN,
            2 => 0,
            3 => self.rng.below(100) as i64 - 50,
            _ => self.rng.next_u64() as i64,
        }
    }

    pub(crate) fn bytes(&mut self, max_len: usize) -> Bytes {
        let len = self.below(max_len + 1);
        (0..len)
            .map(|_| self.rng.next_u64() as u8)
            .collect::<Vec<u8>>()
            .into()
    }

    pub(crate) fn key(&mut self) -> Bytes {
        match self.rng.below(7) {
            0 => Bytes::from(""),
            1 => self.bytes(40),
            2 => self.bytes(200),
            k => Bytes::from(format!("k{k}").as_str()),
        }
    }

    pub(crate) fn bytes_list(&mut self, max: usize) -> Vec<Bytes> {
        let n = self.below(max + 1);
        (0..n).map(|_| self.bytes(12)).collect()
    }

    pub(crate) fn replica(&mut self) -> ReplicaId {
        match self.rng.below(4) {
            0 => ReplicaId(0),
            1 => ReplicaId(u32::MAX),
            _ => ReplicaId(self.rng.next_u64() as u32),
        }
    }

    /// A field path, sometimes nested as deep as maps may be.
    pub(crate) fn path(&mut self) -> Vec<Bytes> {
        let depth = if self.rng.chance(0.1) {
            MAP_NESTING_MAX - 1
        } else {
            1 + self.below(3)
        };
        (0..depth)
            .map(|i| Bytes::from(format!("f{}", i % 2).as_str()))
            .collect()
    }

    pub(crate) fn field_op(&mut self) -> FieldOp {
        match self.rng.below(6) {
            0 => FieldOp::Set(self.bytes(16)),
            1 => FieldOp::Incr(self.int()),
            2 => FieldOp::SetAdd(self.bytes(8)),
            3 => FieldOp::SetRemove(self.bytes(8)),
            4 => FieldOp::MvSet(self.bytes(16)),
            _ => FieldOp::Remove,
        }
    }

    /// A delta made by a real write of some kind to some key.
    pub(crate) fn delta(&mut self) -> (Bytes, Delta<Record>) {
        for _ in 0..32 {
            self.now_ms += self.rng.below(50);
            let now = self.now_ms;
            let key = self.key();
            let w = self.below(self.keyspaces.len());
            let op = self.below(11);
            let value = self.bytes(24);
            let members = self.bytes_list(3);
            let path = self.path();
            let field_op = self.field_op();
            let by = self.int();
            let deadline = now + self.rng.below(10_000);
            let ks = &mut self.keyspaces[w];
            let delta = match op {
                0 => ks.set(&key, value, Some(deadline), now).map(|w| w.delta),
                1 => ks.set(&key, value, None, now).map(|w| w.delta),
                2 => ks.incr_by(&key, by, now).map(|w| w.delta),
                3 => ks.sadd(&key, &members, now).map(|w| w.delta),
                4 => ks.srem(&key, &members, now).map(|w| w.delta),
                5 => ks.map_apply(&key, &path, field_op, now).map(|w| w.delta),
                6 => ks.hset(&key, b"f", value, now).map(|w| w.delta),
                7 => ks.mvset(&key, value, now).map(|w| w.delta),
                8 => ks.del(&key, now).map(|w| w.delta),
                9 => ks.expire_at(&key, deadline, now).map(|w| w.delta),
                _ => ks.persist(&key, now).map(|w| w.delta),
            };
            let Ok(Some(delta)) = delta else { continue };
            // Another writer takes it in: later writes there conflict or build on it.
            if self.rng.chance(0.5) {
                let other = self.below(self.keyspaces.len());
                let _ = self.keyspaces[other].apply_delta(&key, &delta, now);
            }
            return (key, delta);
        }
        let key = Bytes::from("fallback");
        let w = self.keyspaces[0]
            .set(&key, Bytes::from("v"), None, self.now_ms)
            .expect("a set of a fresh key succeeds");
        (key, w.delta.expect("a set changes the key"))
    }

    /// A whole state of some key (written first if needed).
    pub(crate) fn state(&mut self) -> (Bytes, Causal<Record>) {
        let (key, delta) = self.delta();
        let w = self.below(self.keyspaces.len());
        let state = self.keyspaces[w]
            .state(&key)
            .unwrap_or_else(|| delta.to_state());
        (key, state)
    }

    pub(crate) fn deltas(&mut self, max: usize) -> Vec<(Bytes, Delta<Record>)> {
        let n = self.below(max + 1);
        (0..n).map(|_| self.delta()).collect()
    }

    pub(crate) fn states(&mut self, max: usize) -> Vec<(Bytes, Causal<Record>)> {
        let n = self.below(max + 1);
        (0..n).map(|_| self.state()).collect()
    }

    pub(crate) fn field_value(&mut self, depth: usize) -> FieldValue {
        let kinds = if depth + 1 < MAP_NESTING_MAX { 5 } else { 4 };
        match self.below(kinds) {
            0 => FieldValue::Register(self.bytes(16)),
            1 => FieldValue::Counter(self.int()),
            2 => FieldValue::Set(self.bytes_list(3)),
            3 => FieldValue::MvRegister(self.bytes_list(3)),
            _ => {
                let n = self.below(3);
                FieldValue::Map(
                    (0..n)
                        .map(|_| (self.bytes(6), self.field_value(depth + 1)))
                        .collect(),
                )
            }
        }
    }

    /// Number of [`Command`] variants.
    pub(crate) const COMMANDS: usize = 33;

    pub(crate) fn command(&mut self, variant: usize) -> Command {
        let key = self.key();
        match variant % Self::COMMANDS {
            0 => Command::Ping,
            1 => Command::Status,
            2 => Command::Get { key },
            3 => Command::Set {
                key,
                value: self.bytes(64),
                ttl_ms: self.rng.chance(0.5).then(|| self.num()),
            },
            4 => Command::Del { key },
            5 => Command::IncrBy {
                key,
                by: self.int(),
            },
            6 => Command::CounterGet { key },
            7 => Command::SAdd {
                key,
                members: self.bytes_list(4),
            },
            8 => Command::SRem {
                key,
                members: self.bytes_list(4),
            },
            9 => Command::SMembers { key },
            10 => Command::SIsMember {
                key,
                member: self.bytes(8),
            },
            11 => Command::SCard { key },
            12 => Command::HSet {
                key,
                field: self.bytes(8),
                value: self.bytes(16),
            },
            13 => Command::HGet {
                key,
                field: self.bytes(8),
            },
            14 => Command::HDel {
                key,
                fields: self.bytes_list(3),
            },
            15 => Command::HGetAll { key },
            16 => Command::HIncrBy {
                key,
                field: self.bytes(8),
                by: self.int(),
            },
            17 => Command::HLen { key },
            18 => Command::MapApply {
                key,
                path: self.path(),
                op: self.field_op(),
            },
            19 => Command::MapGet {
                key,
                path: self.path(),
            },
            20 => Command::MvSet {
                key,
                value: self.bytes(16),
            },
            21 => Command::MvGet { key },
            22 => Command::Expire {
                key,
                ttl_ms: self.num(),
            },
            23 => Command::Ttl { key },
            24 => Command::Persist { key },
            25 => Command::Type { key },
            26 => Command::ReloadTopology,
            27 => Command::Topology,
            28 => Command::SScan {
                key,
                after: self.rng.chance(0.5).then(|| self.bytes(8)),
                count: self.num() as u32,
            },
            29 => Command::HScan {
                key,
                after: self.rng.chance(0.5).then(|| self.bytes(8)),
                count: self.num() as u32,
            },
            31 => Command::SScanMatch {
                key,
                after: self.rng.chance(0.5).then(|| self.bytes(8)),
                count: self.num() as u32,
                pattern: self.bytes(8),
            },
            32 => Command::HScanMatch {
                key,
                after: self.rng.chance(0.5).then(|| self.bytes(8)),
                count: self.num() as u32,
                pattern: self.bytes(8),
            },
            _ => Command::Scan {
                from: self.num(),
                count: self.num() as u32,
                pattern: self.rng.chance(0.5).then(|| self.bytes(8)),
                kind: self.rng.chance(0.5).then(|| self.kind()),
            },
        }
    }

    pub(crate) fn request(&mut self, variant: usize) -> Request {
        let write = [
            None,
            Some(WriteConsistency::One),
            Some(WriteConsistency::Quorum),
            Some(WriteConsistency::All),
        ][self.below(4)];
        let read = [
            None,
            Some(ReadConsistency::One),
            Some(ReadConsistency::Quorum),
        ][self.below(3)];
        Request {
            id: self.num(),
            command: self.command(variant),
            write,
            read,
        }
    }

    /// Number of [`Reply`] variants plus number of [`ErrorReply`] variants.
    pub(crate) const RESPONSES: usize = 17 + 12;

    pub(crate) fn kind(&mut self) -> Kind {
        [
            Kind::Register,
            Kind::MvRegister,
            Kind::Counter,
            Kind::Set,
            Kind::Map,
        ][self.below(5)]
    }

    pub(crate) fn status(&mut self) -> NodeStatus {
        NodeStatus {
            replica: self.num() as u32,
            region: "r".into(),
            keys: self.num(),
            memory_bytes: self.num(),
            hints_pending: self.num(),
            requests: self.num(),
            writes_acked: self.num(),
            writes_short: self.num(),
            refused: self.num(),
            peers_suspected: vec![self.num() as u32],
            links: vec![LinkStatus {
                region: "s".into(),
                backlog_deltas: self.num(),
                backlog_bytes: self.num(),
                lag_ms: self.num(),
                lag_ms_last: Some(self.num()).filter(|ms| ms % 2 == 0),
                last_acked_ago_ms: Some(self.num()).filter(|ms| ms % 3 == 0),
                dropped: self.num(),
            }],
            rebalance: RebalanceStatus {
                epoch: self.num(),
                keys_total: self.num(),
                sending_done: true,
                ..RebalanceStatus::default()
            },
            topology_version: self.num(),
        }
    }

    pub(crate) fn response(&mut self, variant: usize) -> Response {
        let reason = String::from_utf8_lossy(&self.bytes(16)).into_owned();
        let (a, b) = (self.num(), self.num());
        let (x, y) = (self.num() as u8, self.num() as u8);
        let result = match variant % Self::RESPONSES {
            0 => Ok(Reply::Ok),
            1 => Ok(Reply::Pong),
            2 => Ok(Reply::Nil),
            3 => Ok(Reply::Int(self.int())),
            4 => Ok(Reply::Bool(self.rng.chance(0.5))),
            5 => Ok(Reply::Value(self.bytes(32))),
            6 => Ok(Reply::Values(self.bytes_list(4))),
            7 => Ok(Reply::Fields(
                (0..3)
                    .map(|_| (self.bytes(6), self.field_value(1)))
                    .collect(),
            )),
            8 => Ok(Reply::Field(
                self.rng.chance(0.8).then(|| self.field_value(0)),
            )),
            9 => Ok(Reply::Type(self.rng.chance(0.8).then(|| self.kind()))),
            10 => Ok(Reply::Ttl(
                [Ttl::Missing, Ttl::Persistent, Ttl::Ms(a)][self.below(3)],
            )),
            11 => Ok(Reply::Status(Box::new(self.status()))),
            12 => Err(ErrorReply::WrongType {
                wanted: self.kind(),
                found: self.kind(),
            }),
            13 => Err(ErrorReply::KeyTooLarge { len: a, max: b }),
            14 => Err(ErrorReply::ValueTooLarge { len: a, max: b }),
            15 => Err(ErrorReply::Overflow),
            16 => Err(ErrorReply::NestingTooDeep { max: a }),
            17 => Err(ErrorReply::QuorumNotReached {
                acked: x,
                needed: y,
            }),
            18 => Err(ErrorReply::ReadQuorumNotReached {
                replied: x,
                needed: y,
            }),
            19 => Err(ErrorReply::Timeout),
            20 => Err(ErrorReply::Unavailable { reason }),
            21 => Err(ErrorReply::BadRequest { reason }),
            22 => Err(ErrorReply::Refused { reason }),
            23 => Ok(Reply::SetPage(Page {
                items: self.bytes_list(4),
                more: self.rng.chance(0.5),
            })),
            24 => Ok(Reply::MapPage(Page {
                items: (0..3)
                    .map(|_| (self.bytes(6), self.field_value(1)))
                    .collect(),
                more: self.rng.chance(0.5),
            })),
            25 => Err(ErrorReply::KeyValueTooLarge { len: a, max: b }),
            26 => Ok(Reply::SetMatches(Matches {
                items: self.bytes_list(4),
                more: self.rng.chance(0.5),
                passed: self.rng.chance(0.5).then(|| self.bytes(8)),
            })),
            27 => Ok(Reply::MapMatches(Matches {
                items: (0..3)
                    .map(|_| (self.bytes(6), self.field_value(1)))
                    .collect(),
                more: self.rng.chance(0.5),
                passed: self.rng.chance(0.5).then(|| self.bytes(8)),
            })),
            _ => Ok(Reply::Keys(KeyPage {
                keys: self.bytes_list(4),
                next: a,
            })),
        };
        Response {
            id: self.num(),
            result: result.map(|reply| Answer {
                reply,
                replicas_acked: x,
                replicas_needed: y,
            }),
        }
    }

    /// Number of [`PeerMsg`] variants.
    pub(crate) const PEER_MSGS: usize = 24;

    pub(crate) fn peer_msg(&mut self, variant: usize) -> PeerMsg {
        let op = self.num();
        match variant % Self::PEER_MSGS {
            0 => {
                let (key, delta) = self.delta();
                PeerMsg::Replicate {
                    op,
                    key,
                    delta: Arc::new(delta),
                }
            }
            1 => PeerMsg::ReplicateBatch {
                op,
                entries: self.deltas(4),
            },
            2 => PeerMsg::Ack {
                op,
                ok: self.rng.chance(0.5),
            },
            3 => {
                let v = self.below(Self::COMMANDS);
                PeerMsg::Forward {
                    op,
                    request: self.request(v),
                }
            }
            4 => {
                let v = self.below(Self::RESPONSES);
                PeerMsg::ForwardReply {
                    op,
                    response: self.response(v),
                }
            }
            5 => PeerMsg::Read {
                op,
                key: self.key(),
            },
            6 => PeerMsg::ReadReply {
                op,
                state: self.rng.chance(0.8).then(|| self.state().1),
            },
            7 => {
                let (key, state) = self.state();
                PeerMsg::Repair { key, state }
            }
            8 => {
                let (key, state) = self.state();
                PeerMsg::Handoff { op, key, state }
            }
            9 => PeerMsg::GeoBatch {
                session: self.num(),
                acked_seq: self.num(),
                first_seq: self.num(),
                next_seq: self.num(),
                entries: self.deltas(4),
            },
            10 => PeerMsg::GeoAck {
                session: self.num(),
                next_seq: self.num(),
            },
            11 => {
                let n = self.below(8);
                PeerMsg::DigestRequest {
                    op,
                    first: self.num() as u32,
                    buckets: (0..n).map(|_| self.num()).collect(),
                }
            }
            12 => {
                let n = self.below(5);
                PeerMsg::DigestReply {
                    op,
                    mismatched: (0..n).map(|_| self.num() as u32).collect(),
                    states: self.states(3),
                }
            }
            13 => PeerMsg::DigestRepair {
                states: self.states(3),
            },
            14 => PeerMsg::Heartbeat,
            15 => PeerMsg::Transfer {
                op,
                epoch: self.num(),
                states: self.states(3),
            },
            16 => PeerMsg::TransferAck {
                op,
                ok: self.rng.chance(0.5),
            },
            17 => PeerMsg::RebalanceDone { epoch: self.num() },
            18 => PeerMsg::RebalanceDoneAck {
                epoch: self.num(),
                done: self.rng.chance(0.5),
            },
            19 => {
                let (key, delta) = self.delta();
                PeerMsg::HintedReplicate {
                    op,
                    key,
                    delta,
                    owner: self.replica(),
                }
            }
            20 => PeerMsg::CatchUp {
                session: self.num(),
            },
            21 => PeerMsg::CatchUpDone {
                session: self.num(),
            },
            22 => {
                let n = 1 + self.below(4);
                PeerMsg::ReplicateMany {
                    items: (0..n)
                        .map(|_| {
                            let (key, delta) = self.delta();
                            (self.num(), key, Arc::new(delta))
                        })
                        .collect(),
                }
            }
            _ => {
                let n = self.below(6);
                PeerMsg::AckMany {
                    acks: (0..n).map(|_| (self.num(), self.rng.chance(0.5))).collect(),
                }
            }
        }
    }
}

/// The variant of a command. Exhaustive: a new variant must be sampled too.
pub(crate) fn command_name(c: &Command) -> &'static str {
    match c {
        Command::Ping => "ping",
        Command::Status => "status",
        Command::Get { .. } => "get",
        Command::Set { .. } => "set",
        Command::Del { .. } => "del",
        Command::IncrBy { .. } => "incrby",
        Command::CounterGet { .. } => "counterget",
        Command::SAdd { .. } => "sadd",
        Command::SRem { .. } => "srem",
        Command::SMembers { .. } => "smembers",
        Command::SIsMember { .. } => "sismember",
        Command::SCard { .. } => "scard",
        Command::HSet { .. } => "hset",
        Command::HGet { .. } => "hget",
        Command::HDel { .. } => "hdel",
        Command::HGetAll { .. } => "hgetall",
        Command::HIncrBy { .. } => "hincrby",
        Command::HLen { .. } => "hlen",
        Command::MapApply { .. } => "mapapply",
        Command::MapGet { .. } => "mapget",
        Command::MvSet { .. } => "mvset",
        Command::MvGet { .. } => "mvget",
        Command::Expire { .. } => "expire",
        Command::Ttl { .. } => "ttl",
        Command::Persist { .. } => "persist",
        Command::Type { .. } => "type",
        Command::ReloadTopology => "reloadtopology",
        Command::Topology => "topology",
        Command::SScan { .. } => "sscan",
        Command::HScan { .. } => "hscan",
        Command::Scan { .. } => "scan",
        Command::SScanMatch { .. } => "sscanmatch",
        Command::HScanMatch { .. } => "hscanmatch",
    }
}

/// The variant of a response. Exhaustive, like [`command_name`].
pub(crate) fn response_name(r: &Response) -> &'static str {
    match &r.result {
        Ok(a) => match a.reply {
            Reply::Ok => "ok",
            Reply::Pong => "pong",
            Reply::Nil => "nil",
            Reply::Int(_) => "int",
            Reply::Bool(_) => "bool",
            Reply::Value(_) => "value",
            Reply::Values(_) => "values",
            Reply::Fields(_) => "fields",
            Reply::Field(_) => "field",
            Reply::Type(_) => "type",
            Reply::Ttl(_) => "ttl",
            Reply::Status(_) => "status",
            Reply::SetPage(_) => "setpage",
            Reply::MapPage(_) => "mappage",
            Reply::Keys(_) => "keys",
            Reply::SetMatches(_) => "setmatches",
            Reply::MapMatches(_) => "mapmatches",
        },
        Err(e) => match e {
            ErrorReply::WrongType { .. } => "wrongtype",
            ErrorReply::KeyTooLarge { .. } => "keytoolarge",
            ErrorReply::ValueTooLarge { .. } => "valuetoolarge",
            ErrorReply::Overflow => "overflow",
            ErrorReply::NestingTooDeep { .. } => "nestingtoodeep",
            ErrorReply::QuorumNotReached { .. } => "quorumnotreached",
            ErrorReply::ReadQuorumNotReached { .. } => "readquorumnotreached",
            ErrorReply::Timeout => "timeout",
            ErrorReply::Unavailable { .. } => "unavailable",
            ErrorReply::BadRequest { .. } => "badrequest",
            ErrorReply::Refused { .. } => "refused",
            ErrorReply::KeyValueTooLarge { .. } => "keyvaluetoolarge",
        },
    }
}

/// The variant of a peer message. Exhaustive, like [`command_name`].
pub(crate) fn peer_msg_name(m: &PeerMsg) -> &'static str {
    match m {
        PeerMsg::Replicate { .. } => "replicate",
        PeerMsg::ReplicateBatch { .. } => "replicatebatch",
        PeerMsg::Ack { .. } => "ack",
        PeerMsg::Forward { .. } => "forward",
        PeerMsg::ForwardReply { .. } => "forwardreply",
        PeerMsg::Read { .. } => "read",
        PeerMsg::ReadReply { .. } => "readreply",
        PeerMsg::Repair { .. } => "repair",
        PeerMsg::Handoff { .. } => "handoff",
        PeerMsg::GeoBatch { .. } => "geobatch",
        PeerMsg::GeoAck { .. } => "geoack",
        PeerMsg::DigestRequest { .. } => "digestrequest",
        PeerMsg::DigestReply { .. } => "digestreply",
        PeerMsg::DigestRepair { .. } => "digestrepair",
        PeerMsg::Heartbeat => "heartbeat",
        PeerMsg::Transfer { .. } => "transfer",
        PeerMsg::TransferAck { .. } => "transferack",
        PeerMsg::RebalanceDone { .. } => "rebalancedone",
        PeerMsg::RebalanceDoneAck { .. } => "rebalancedoneack",
        PeerMsg::HintedReplicate { .. } => "hintedreplicate",
        PeerMsg::CatchUp { .. } => "catchup",
        PeerMsg::CatchUpDone { .. } => "catchupdone",
        PeerMsg::ReplicateMany { .. } => "replicatemany",
        PeerMsg::AckMany { .. } => "ackmany",
    }
}

// ---------------------------------------------------------------------------
// Damage

/// One way to damage bytes.
#[derive(Debug, Clone)]
pub(crate) enum Damage {
    Flip {
        at: usize,
        mask: u8,
    },
    Set {
        at: usize,
        byte: u8,
    },
    Truncate {
        at: usize,
    },
    Extend {
        bytes: Vec<u8>,
    },
    Insert {
        at: usize,
        bytes: Vec<u8>,
    },
    Remove {
        at: usize,
        len: usize,
    },
    /// The front of these bytes, then the back of another encoding.
    Splice {
        other: usize,
        at: usize,
        from: usize,
    },
}

pub(crate) fn damage() -> impl Strategy<Value = Damage> {
    // Small bytes are lengths, variant tags and counts; 0x80 and up
    // continue varints.
    let byte = prop_oneof![0u8..4, Just(0x80u8), Just(0xffu8), any::<u8>()];
    let bytes = prop::collection::vec(byte.clone(), 1..12);
    prop_oneof![
        3 => (any::<usize>(), 1u8..).prop_map(|(at, mask)| Damage::Flip { at, mask }),
        3 => (any::<usize>(), byte).prop_map(|(at, byte)| Damage::Set { at, byte }),
        2 => any::<usize>().prop_map(|at| Damage::Truncate { at }),
        1 => bytes.clone().prop_map(|bytes| Damage::Extend { bytes }),
        1 => (any::<usize>(), bytes).prop_map(|(at, bytes)| Damage::Insert { at, bytes }),
        1 => (any::<usize>(), 1usize..16).prop_map(|(at, len)| Damage::Remove { at, len }),
        2 => (any::<usize>(), any::<usize>(), any::<usize>())
            .prop_map(|(other, at, from)| Damage::Splice { other, at, from }),
    ]
}

pub(crate) fn apply_damage(mut bytes: Vec<u8>, damage: &Damage, others: &[Vec<u8>]) -> Vec<u8> {
    let pos = |at: usize, len: usize| at % (len + 1);
    match damage {
        Damage::Flip { at, mask } if !bytes.is_empty() => {
            let i = at % bytes.len();
            bytes[i] ^= mask;
        }
        Damage::Set { at, byte } if !bytes.is_empty() => {
            let i = at % bytes.len();
            bytes[i] = *byte;
        }
        Damage::Flip { .. } | Damage::Set { .. } => {}
        Damage::Truncate { at } => bytes.truncate(pos(*at, bytes.len())),
        Damage::Extend { bytes: more } => bytes.extend_from_slice(more),
        Damage::Insert { at, bytes: more } => {
            let i = pos(*at, bytes.len());
            bytes.splice(i..i, more.iter().copied());
        }
        Damage::Remove { at, len } => {
            let i = pos(*at, bytes.len());
            let end = (i + len).min(bytes.len());
            bytes.drain(i..end);
        }
        Damage::Splice { other, at, from } => {
            let other = &others[other % others.len()];
            bytes.truncate(pos(*at, bytes.len()));
            bytes.extend_from_slice(&other[pos(*from, other.len())..]);
        }
    }
    bytes
}
