//! The messages of the wire protocol: client requests and responses, and
//! the messages nodes exchange.

use crate::keyspace::{FieldOp, FieldValue, KeyPage, KeyspaceError, Matches, Page, Ttl};
use crate::topology::{ReadConsistency, WriteConsistency};
use crdt_types::{Bytes, Causal, Delta, Kind, Record, ReplicaId};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// One operation a client asks for. Writes name one key; so do reads,
/// except `Ping`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Liveness check.
    Ping,
    /// The answering node's health, memory and replication state.
    Status,
    /// Read a register (or a counter in decimal).
    Get { key: Bytes },
    /// Write a register; with `ttl_ms` the key expires that long after the write.
    Set {
        key: Bytes,
        value: Bytes,
        ttl_ms: Option<u64>,
    },
    /// Delete a key (observed-remove).
    Del { key: Bytes },
    /// Add to a counter.
    IncrBy { key: Bytes, by: i64 },
    /// Read a counter.
    CounterGet { key: Bytes },
    /// Add set members.
    SAdd { key: Bytes, members: Vec<Bytes> },
    /// Remove set members.
    SRem { key: Bytes, members: Vec<Bytes> },
    /// A set's members.
    SMembers { key: Bytes },
    /// Whether a member is in a set.
    SIsMember { key: Bytes, member: Bytes },
    /// A set's size.
    SCard { key: Bytes },
    /// Write a map field as a register.
    HSet {
        key: Bytes,
        field: Bytes,
        value: Bytes,
    },
    /// Read a map field (register or counter).
    HGet { key: Bytes, field: Bytes },
    /// Remove map fields.
    HDel { key: Bytes, fields: Vec<Bytes> },
    /// Every field of a map.
    HGetAll { key: Bytes },
    /// Add to a map field as a counter.
    HIncrBy { key: Bytes, field: Bytes, by: i64 },
    /// A map's number of fields.
    HLen { key: Bytes },
    /// Apply an operation to a nested map field.
    MapApply {
        key: Bytes,
        path: Vec<Bytes>,
        op: FieldOp,
    },
    /// Read a nested map field.
    MapGet { key: Bytes, path: Vec<Bytes> },
    /// Write a multi-value register.
    MvSet { key: Bytes, value: Bytes },
    /// Read every concurrent value of a multi-value register.
    MvGet { key: Bytes },
    /// Expire the key `ttl_ms` from now.
    Expire { key: Bytes, ttl_ms: u64 },
    /// Remaining time to live.
    Ttl { key: Bytes },
    /// Remove the deadline.
    Persist { key: Bytes },
    /// The key's visible type.
    Type { key: Bytes },
    /// Re-read the node's topology file and adopt it (a node added to or
    /// removed from a region); answered `Ok`, or `BadRequest` naming why the
    /// file was refused. An administrative command of the local lab.
    ReloadTopology,
    /// The topology the node runs, as the text of its file: answered
    /// `Value`. Clients fetch it to learn the current ring.
    Topology,
    /// A page of a set's members: up to `count` (at least one) of those
    /// after `after` in byte order (`None`: from the first), answered
    /// `SetPage`.
    SScan {
        key: Bytes,
        after: Option<Bytes>,
        count: u32,
    },
    /// A page of a map's fields and values, as `SScan`; answered `MapPage`.
    HScan {
        key: Bytes,
        after: Option<Bytes>,
        count: u32,
    },
    /// A page of the keys the answering node holds, in key-hash order
    /// (`Keyspace::scan_keys`): from hash `from`, looking at up to `count`
    /// hashes, keeping those that exist, match the glob `pattern` (Redis's
    /// `MATCH`) and hold type `kind`. Answered `Keys`. A node answers from
    /// its own keys; the client merges the pages of a region's nodes.
    Scan {
        from: u64,
        count: u32,
        pattern: Option<Bytes>,
        kind: Option<Kind>,
    },
    /// A page of a set's members matching the glob `pattern` (Redis's
    /// `SSCAN ... MATCH`): of the members after `after` in byte order, up
    /// to `count` (at least one) looked at; answered `SetMatches`.
    SScanMatch {
        key: Bytes,
        after: Option<Bytes>,
        count: u32,
        pattern: Bytes,
    },
    /// A page of a map's fields and values whose field matches `pattern`,
    /// as `SScanMatch`; answered `MapMatches`.
    HScanMatch {
        key: Bytes,
        after: Option<Bytes>,
        count: u32,
        pattern: Bytes,
    },
}

impl Command {
    /// The key the command acts on (`None` for `Ping`).
    pub fn key(&self) -> Option<&Bytes> {
        use Command::*;
        match self {
            Ping | Status | ReloadTopology | Topology | Scan { .. } => None,
            Get { key }
            | Set { key, .. }
            | Del { key }
            | IncrBy { key, .. }
            | CounterGet { key }
            | SAdd { key, .. }
            | SRem { key, .. }
            | SMembers { key }
            | SIsMember { key, .. }
            | SCard { key }
            | HSet { key, .. }
            | HGet { key, .. }
            | HDel { key, .. }
            | HGetAll { key }
            | HIncrBy { key, .. }
            | HLen { key }
            | MapApply { key, .. }
            | MapGet { key, .. }
            | MvSet { key, .. }
            | MvGet { key }
            | Expire { key, .. }
            | Ttl { key }
            | Persist { key }
            | Type { key }
            | SScan { key, .. }
            | HScan { key, .. }
            | SScanMatch { key, .. }
            | HScanMatch { key, .. } => Some(key),
        }
    }

    /// Whether the command changes data (and so is replicated with W acks).
    pub fn is_write(&self) -> bool {
        use Command::*;
        matches!(
            self,
            Set { .. }
                | Del { .. }
                | IncrBy { .. }
                | SAdd { .. }
                | SRem { .. }
                | HSet { .. }
                | HDel { .. }
                | HIncrBy { .. }
                | MapApply { .. }
                | MvSet { .. }
                | Expire { .. }
                | Persist { .. }
        )
    }
}

/// A client request. The id is the client's, echoed in the response, so one
/// stream carries many requests in flight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// Chosen by the client; unique among its requests in flight on a stream.
    pub id: u64,
    /// What to do.
    pub command: Command,
    /// Write consistency; the topology's default when `None`.
    pub write: Option<WriteConsistency>,
    /// Read consistency; the topology's default when `None`.
    pub read: Option<ReadConsistency>,
}

/// A successful answer's value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// Done.
    Ok,
    /// Answer to `Ping`.
    Pong,
    /// No such key or field.
    Nil,
    /// A number.
    Int(i64),
    /// A yes or no.
    Bool(bool),
    /// One value.
    Value(Bytes),
    /// Several values (set members, MV-register values).
    Values(Vec<Bytes>),
    /// Map fields and their values.
    Fields(Vec<(Bytes, FieldValue)>),
    /// A nested field's value.
    Field(Option<FieldValue>),
    /// A key's type.
    Type(Option<Kind>),
    /// A key's time to live.
    Ttl(Ttl),
    /// A node's status.
    Status(Box<NodeStatus>),
    /// A page of a set's members.
    SetPage(Page<Bytes>),
    /// A page of a map's fields and their values.
    MapPage(Page<(Bytes, FieldValue)>),
    /// A page of a node's keys.
    Keys(KeyPage),
    /// A page of a set's members that match a pattern.
    SetMatches(Matches<Bytes>),
    /// A page of a map's fields, and their values, that match a pattern.
    MapMatches(Matches<(Bytes, FieldValue)>),
}

/// What a node reports about itself (`meridian status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// The node's replica id.
    pub replica: u32,
    /// Its region.
    pub region: String,
    /// Keys held (tombstones included).
    pub keys: u64,
    /// Estimated bytes held by keys and values.
    pub memory_bytes: u64,
    /// Hints waiting to be handed to replicas that missed writes.
    pub hints_pending: u64,
    /// Client requests served.
    pub requests: u64,
    /// Writes acknowledged at their W.
    pub writes_acked: u64,
    /// Writes answered with `QuorumNotReached`.
    pub writes_short: u64,
    /// Remote updates refused.
    pub refused: u64,
    /// Nodes of this region the failure detector suspects.
    pub peers_suspected: Vec<u32>,
    /// Replication to each other region.
    pub links: Vec<LinkStatus>,
    /// The last membership change inside the region and its key transfer.
    pub rebalance: RebalanceStatus,
    /// The version of the topology the node runs.
    pub topology_version: u64,
}

/// A node's part of a membership change inside its region: the keys it
/// streams to their new owners.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RebalanceStatus {
    /// Fingerprint of the region's membership the node runs with.
    pub epoch: u64,
    /// Key copies this node must stream to new owners.
    pub keys_total: u64,
    /// Key copies streamed and acknowledged.
    pub keys_sent: u64,
    /// Encoded state bytes of those key copies (measured when the change began).
    pub bytes_total: u64,
    /// Encoded state bytes streamed and acknowledged.
    pub bytes_sent: u64,
    /// Batches sent again after no acknowledgement came.
    pub batches_resent: u64,
    /// This node has streamed everything it had to.
    pub sending_done: bool,
    /// Every node of the region finished, and this node dropped the keys
    /// it no longer replicates.
    pub finished: bool,
    /// This node is not in the topology any more: it hands its keys over.
    pub leaving: bool,
    /// Keys dropped once the change finished.
    pub keys_dropped: u64,
}

/// Replication from a node to one other region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkStatus {
    /// The remote region.
    pub region: String,
    /// Deltas queued and not yet acknowledged.
    pub backlog_deltas: u64,
    /// Their encoded size.
    pub backlog_bytes: u64,
    /// Age of the oldest unacknowledged delta, ms (the replication lag now).
    pub lag_ms: u64,
    /// Queue-to-acknowledgement time of the last acknowledged delta, ms
    /// (`None` until one was acknowledged).
    pub lag_ms_last: Option<u64>,
    /// How long ago that acknowledgement came, ms.
    pub last_acked_ago_ms: Option<u64>,
    /// Deltas dropped from a full buffer (repaired by digests).
    pub dropped: u64,
}

/// A successful answer, with how many replicas acknowledged a write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    /// The value.
    pub reply: Reply,
    /// Replicas that applied the write (1 for reads).
    pub replicas_acked: u8,
    /// Acknowledgements the request asked for.
    pub replicas_needed: u8,
}

/// Why a request failed. Every variant is something a caller can act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ErrorReply {
    /// The key holds another type.
    #[error(
        "WRONGTYPE operation against a key holding {}, wanted {}",
        found.with_article(),
        wanted.with_article()
    )]
    WrongType { wanted: Kind, found: Kind },
    /// The key is over the size limit.
    #[error("key of {len} bytes exceeds the limit of {max} bytes")]
    KeyTooLarge { len: u64, max: u64 },
    /// A value, member or field is over the size limit.
    #[error("value of {len} bytes exceeds the limit of {max} bytes")]
    ValueTooLarge { len: u64, max: u64 },
    /// A counter would overflow.
    #[error("increment or decrement would overflow")]
    Overflow,
    /// Maps nested too deeply.
    #[error("maps nested deeper than {max} levels")]
    NestingTooDeep { max: u64 },
    /// The write was applied and kept (and will be handed off), but fewer
    /// replicas than asked acknowledged it in time.
    #[error("write reached {acked} of the {needed} replicas needed (kept, and replicated later)")]
    QuorumNotReached { acked: u8, needed: u8 },
    /// Too few replicas answered a read in time.
    #[error("read reached {replied} of the {needed} replicas needed")]
    ReadQuorumNotReached { replied: u8, needed: u8 },
    /// The request could not be served in time.
    #[error("timed out")]
    Timeout,
    /// No replica of the key could be reached.
    #[error("unavailable: {reason}")]
    Unavailable { reason: String },
    /// The request was malformed or not allowed.
    #[error("bad request: {reason}")]
    BadRequest { reason: String },
    /// A clock-skew refusal from a replica.
    #[error("refused: {reason}")]
    Refused { reason: String },
    /// A set or map would grow past the limit of one key's value.
    #[error("the key's value would take {len} bytes, over the limit of {max} bytes")]
    KeyValueTooLarge { len: u64, max: u64 },
}

impl From<KeyspaceError> for ErrorReply {
    fn from(e: KeyspaceError) -> Self {
        match e {
            KeyspaceError::WrongType(w) => ErrorReply::WrongType {
                wanted: w.wanted,
                found: w.found,
            },
            KeyspaceError::KeyTooLarge { len, max } => ErrorReply::KeyTooLarge {
                len: len as u64,
                max: max as u64,
            },
            KeyspaceError::ValueTooLarge { len, max } => ErrorReply::ValueTooLarge {
                len: len as u64,
                max: max as u64,
            },
            KeyspaceError::KeyValueTooLarge { len, max } => ErrorReply::KeyValueTooLarge {
                len: len as u64,
                max: max as u64,
            },
            KeyspaceError::Overflow => ErrorReply::Overflow,
            KeyspaceError::NestingTooDeep { max } => ErrorReply::NestingTooDeep { max: max as u64 },
            e @ (KeyspaceError::NoField | KeyspaceError::PatternTooLong { .. }) => {
                ErrorReply::BadRequest {
                    reason: e.to_string(),
                }
            }
            e @ (KeyspaceError::ClockSkew(_) | KeyspaceError::SequenceTooHigh { .. }) => {
                ErrorReply::Refused {
                    reason: e.to_string(),
                }
            }
        }
    }
}

/// The answer to one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// The request's id.
    pub id: u64,
    /// The answer or the error.
    pub result: Result<Answer, ErrorReply>,
}

/// The client protocol version that brought in `kind`'s variant.
fn kind_since(kind: Kind) -> u16 {
    match kind {
        Kind::Register | Kind::MvRegister | Kind::Counter | Kind::Set | Kind::Map => 7,
    }
}

/// The client protocol version that brought in the newest variant in
/// `value` (nested values included).
fn field_value_since(value: &FieldValue) -> u16 {
    match value {
        FieldValue::Register(_)
        | FieldValue::Counter(_)
        | FieldValue::Set(_)
        | FieldValue::MvRegister(_) => 7,
        FieldValue::Map(fields) => fields_since(fields),
    }
}

fn fields_since(fields: &[(Bytes, FieldValue)]) -> u16 {
    fields
        .iter()
        .map(|(_, value)| field_value_since(value))
        .fold(7, u16::max)
}

impl Reply {
    /// The client protocol version that brought in this reply's variant,
    /// or a newer one nested in it: a node never sends it to an older
    /// client (see [`Response::for_client`]). A new variant of a reply-side
    /// enum is counted here, by an exhaustive match.
    pub fn since(&self) -> u16 {
        match self {
            Reply::Ok
            | Reply::Pong
            | Reply::Nil
            | Reply::Int(_)
            | Reply::Bool(_)
            | Reply::Value(_)
            | Reply::Values(_)
            | Reply::Field(None)
            | Reply::Type(None)
            | Reply::Status(_) => 7,
            Reply::Ttl(ttl) => match ttl {
                Ttl::Missing | Ttl::Persistent | Ttl::Ms(_) => 7,
            },
            Reply::Type(Some(kind)) => kind_since(*kind),
            Reply::Field(Some(value)) => field_value_since(value),
            Reply::Fields(fields) => fields_since(fields),
            Reply::SetPage(_) => 9,
            Reply::MapPage(page) => fields_since(&page.items).max(9),
            Reply::Keys(_) | Reply::SetMatches(_) => 10,
            Reply::MapMatches(page) => fields_since(&page.items).max(10),
        }
    }
}

impl ErrorReply {
    /// The client protocol version that brought in this error's variant,
    /// as [`Reply::since`].
    pub fn since(&self) -> u16 {
        match self {
            ErrorReply::WrongType { wanted, found } => kind_since(*wanted).max(kind_since(*found)),
            ErrorReply::KeyTooLarge { .. }
            | ErrorReply::ValueTooLarge { .. }
            | ErrorReply::Overflow
            | ErrorReply::NestingTooDeep { .. }
            | ErrorReply::QuorumNotReached { .. }
            | ErrorReply::ReadQuorumNotReached { .. }
            | ErrorReply::Timeout
            | ErrorReply::Unavailable { .. }
            | ErrorReply::BadRequest { .. }
            | ErrorReply::Refused { .. }
            | ErrorReply::KeyValueTooLarge { .. } => 7,
        }
    }
}

impl Response {
    /// The client protocol version this response needs.
    pub fn since(&self) -> u16 {
        match &self.result {
            Ok(answer) => answer.reply.since(),
            Err(e) => e.since(),
        }
    }

    /// What a client of protocol `version` is sent in place of this
    /// response when it needs a newer version (`None`: the response
    /// itself): a `BadRequest` it can read, naming the version needed.
    /// Requests of older clients never call for newer answers; this makes
    /// sure a change that would is an error the client reads, not bytes it
    /// cannot decode.
    pub fn for_client(&self, version: u16) -> Option<Response> {
        let since = self.since();
        (since > version).then(|| Response {
            id: self.id,
            result: Err(ErrorReply::BadRequest {
                reason: format!(
                    "the answer needs protocol version {since}; this client speaks {version}"
                ),
            }),
        })
    }

    /// About how many bytes the response holds (its values, plus a little
    /// per item): what a node counts against a client connection that has
    /// not read its answers yet.
    pub fn approx_bytes(&self) -> usize {
        const ITEM: usize = 8;
        fn values(v: &[Bytes]) -> usize {
            v.iter().map(|b| b.len() + ITEM).sum()
        }
        fn field(f: &FieldValue) -> usize {
            ITEM + match f {
                FieldValue::Register(b) => b.len(),
                FieldValue::Counter(_) => 0,
                FieldValue::Set(v) | FieldValue::MvRegister(v) => values(v),
                FieldValue::Map(m) => fields(m),
            }
        }
        fn fields(m: &[(Bytes, FieldValue)]) -> usize {
            m.iter().map(|(k, f)| k.len() + field(f)).sum()
        }
        let body = match &self.result {
            Ok(answer) => match &answer.reply {
                Reply::Value(b) => b.len(),
                Reply::Values(v) => values(v),
                Reply::Fields(m) => fields(m),
                Reply::SetPage(p) => values(&p.items),
                Reply::MapPage(p) => fields(&p.items),
                Reply::Keys(p) => values(&p.keys),
                Reply::SetMatches(p) => values(&p.items),
                Reply::MapMatches(p) => fields(&p.items),
                Reply::Field(Some(f)) => field(f),
                Reply::Status(_) => 1024,
                _ => 0,
            },
            Err(e) => match e {
                ErrorReply::Unavailable { reason }
                | ErrorReply::BadRequest { reason }
                | ErrorReply::Refused { reason } => reason.len(),
                _ => 0,
            },
        };
        32 + body
    }
}

/// What nodes of a region say to each other.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PeerMsg {
    /// Apply this delta of `key` and acknowledge operation `op`.
    Replicate {
        op: u64,
        key: Bytes,
        delta: Arc<Delta<Record>>,
    },
    /// Apply these deltas (of writes made in another region) and
    /// acknowledge operation `op` once for all of them.
    ReplicateBatch {
        op: u64,
        entries: Vec<(Bytes, Delta<Record>)>,
    },
    /// Operation `op` was applied (`ok`) or refused.
    Ack { op: u64, ok: bool },
    /// Serve this client request as a replica of its key; answer with `ForwardReply`.
    Forward { op: u64, request: Request },
    /// The answer to a forwarded request.
    ForwardReply { op: u64, response: Response },
    /// Send your state of `key` (quorum reads).
    Read { op: u64, key: Bytes },
    /// A state for a `Read` (`None` when the key is unknown).
    ReadReply {
        op: u64,
        state: Option<Causal<Record>>,
    },
    /// Join this state of `key` (read repair); no answer.
    Repair { key: Bytes, state: Causal<Record> },
    /// Join this state of `key`, which you missed writes of (hinted
    /// handoff), and acknowledge operation `op`.
    Handoff {
        op: u64,
        key: Bytes,
        state: Causal<Record>,
    },
    /// Deltas of writes made in another region, numbered `first_seq..next_seq`
    /// on the sender's link to this region; apply them to their keys'
    /// replicas here and answer `GeoAck`. Everything below `acked_seq` was
    /// acknowledged before (by this node or another gateway). `session`
    /// names the sender's life: a restarted sender numbers from 0 again.
    GeoBatch {
        session: u64,
        acked_seq: u64,
        first_seq: u64,
        next_seq: u64,
        entries: Vec<(Bytes, Delta<Record>)>,
    },
    /// Every delta numbered below `next_seq` on the link of the sender's
    /// life `session` has been taken in (the receiver acknowledges only a
    /// gap-free prefix).
    GeoAck { session: u64, next_seq: u64 },
    /// Digests of the keys both nodes hold, by hash bucket (anti-entropy
    /// between regions); answer `DigestReply`.
    /// The digests are those of buckets `first..first + buckets.len()`.
    DigestRequest {
        op: u64,
        first: u32,
        buckets: Vec<u64>,
    },
    /// The buckets whose digests differed, and this node's states of the
    /// shared keys in them; the requester answers with its own (`DigestRepair`).
    DigestReply {
        op: u64,
        mismatched: Vec<u32>,
        states: Vec<(Bytes, Causal<Record>)>,
    },
    /// States to join after a digest comparison.
    DigestRepair {
        states: Vec<(Bytes, Causal<Record>)>,
    },
    /// I am alive (failure detection inside a region).
    Heartbeat,
    /// Key states streamed to a new owner after a membership change
    /// (`epoch` names the membership); join them and answer `TransferAck`.
    Transfer {
        op: u64,
        epoch: u64,
        states: Vec<(Bytes, Causal<Record>)>,
    },
    /// Transfer batch `op` was joined (`ok`) or refused.
    TransferAck { op: u64, ok: bool },
    /// The sender streamed everything it had to for membership `epoch`;
    /// answer `RebalanceDoneAck` (repeated until answered).
    RebalanceDone { epoch: u64 },
    /// `RebalanceDone` arrived; `done` when the answering node has streamed
    /// everything too.
    RebalanceDoneAck { epoch: u64, done: bool },
    /// Sloppy quorum: apply this delta of `key` although you are not its
    /// replica, keep a hint to hand the key to `owner` (a replica that is
    /// down) once it is back, and acknowledge operation `op`.
    HintedReplicate {
        op: u64,
        key: Bytes,
        delta: Delta<Record>,
        owner: ReplicaId,
    },
    /// The sender started: stream it (`Transfer`) the keys it
    /// replicates for which you are the first live other replica, then
    /// answer `CatchUpDone` (repeated until answered; one scan per session).
    CatchUp { session: u64 },
    /// Everything for catch-up `session` was streamed and acknowledged.
    CatchUpDone { session: u64 },
    /// Several `Replicate`s in one message, handled in order: apply each
    /// delta `(op, key, delta)` and acknowledge each `op`.
    ReplicateMany {
        items: Vec<(u64, Bytes, Arc<Delta<Record>>)>,
    },
    /// Several `Ack`s `(op, ok)` in one message.
    AckMany { acks: Vec<(u64, bool)> },
}

impl PeerMsg {
    /// Whether this answers a message the peer sent (such answers travel
    /// back on the connection the question came on).
    pub fn is_answer(&self) -> bool {
        matches!(
            self,
            PeerMsg::Ack { .. }
                | PeerMsg::AckMany { .. }
                | PeerMsg::ForwardReply { .. }
                | PeerMsg::ReadReply { .. }
                | PeerMsg::GeoAck { .. }
                | PeerMsg::DigestReply { .. }
                | PeerMsg::TransferAck { .. }
                | PeerMsg::RebalanceDoneAck { .. }
        )
    }
}
