//! Tests that keep the client messages of every protocol version from
//! [`CLIENT_VERSION_MIN`](super::frame::CLIENT_VERSION_MIN) to
//! [`PROTOCOL_VERSION`](super::frame::PROTOCOL_VERSION) encoding as they
//! did, so that a node serves clients of those versions (see there).
//!
//! Three guards:
//! - each variant of every enum a client message holds keeps its index
//!   (postcard encodes a variant as its index), checked by exhaustive
//!   matches, so a new variant does not compile until it is listed here;
//! - a sample of the client messages of each version served, every variant
//!   with distinct and extreme values, `None` and `Some`, encodes to the
//!   bytes that version's build gave (their hashes are pinned below; the
//!   oldest one's was taken from a build of that version);
//! - every reply and error says which version brought it in
//!   ([`Reply::since`]), and a node answers a client that lacks one with a
//!   `BadRequest` it can read instead.
//!
//! A new variant may go at the end of a request-side enum (`Command`,
//! `FieldOp`): older clients never send it. A new reply or error, or a new
//! variant of an enum nested in one (`FieldValue`, `Kind`, `Ttl`), must
//! also say its version in `since`. Any other change to how an existing
//! message encodes breaks the clients of the versions pinned here: raise
//! `CLIENT_VERSION_MIN` past them and drop their pins.

use super::frame::{CLIENT_VERSION_MIN, PROTOCOL_VERSION};
use super::{Answer, Command, ErrorReply, LinkStatus, NodeStatus, RebalanceStatus, Reply};
use super::{Request, Response};
use crate::keyspace::{FieldOp, FieldValue, KeyPage, Matches, Page, Ttl};
use crate::topology::{ReadConsistency, WriteConsistency};
use crdt_types::{Bytes, Kind};

/// The variant index `command` encodes with, by its name.
fn command_index(command: &Command) -> u8 {
    match command {
        Command::Ping => 0,
        Command::Status => 1,
        Command::Get { .. } => 2,
        Command::Set { .. } => 3,
        Command::Del { .. } => 4,
        Command::IncrBy { .. } => 5,
        Command::CounterGet { .. } => 6,
        Command::SAdd { .. } => 7,
        Command::SRem { .. } => 8,
        Command::SMembers { .. } => 9,
        Command::SIsMember { .. } => 10,
        Command::SCard { .. } => 11,
        Command::HSet { .. } => 12,
        Command::HGet { .. } => 13,
        Command::HDel { .. } => 14,
        Command::HGetAll { .. } => 15,
        Command::HIncrBy { .. } => 16,
        Command::HLen { .. } => 17,
        Command::MapApply { .. } => 18,
        Command::MapGet { .. } => 19,
        Command::MvSet { .. } => 20,
        Command::MvGet { .. } => 21,
        Command::Expire { .. } => 22,
        Command::Ttl { .. } => 23,
        Command::Persist { .. } => 24,
        Command::Type { .. } => 25,
        Command::ReloadTopology => 26,
        Command::Topology => 27,
        // Protocol version 9.
        Command::SScan { .. } => 28,
        Command::HScan { .. } => 29,
        // Protocol version 10.
        Command::Scan { .. } => 30,
        Command::SScanMatch { .. } => 31,
        Command::HScanMatch { .. } => 32,
    }
}

fn reply_index(reply: &Reply) -> u8 {
    match reply {
        Reply::Ok => 0,
        Reply::Pong => 1,
        Reply::Nil => 2,
        Reply::Int(_) => 3,
        Reply::Bool(_) => 4,
        Reply::Value(_) => 5,
        Reply::Values(_) => 6,
        Reply::Fields(_) => 7,
        Reply::Field(_) => 8,
        Reply::Type(_) => 9,
        Reply::Ttl(_) => 10,
        Reply::Status(_) => 11,
        // Protocol version 9.
        Reply::SetPage(_) => 12,
        Reply::MapPage(_) => 13,
        // Protocol version 10.
        Reply::Keys(_) => 14,
        Reply::SetMatches(_) => 15,
        Reply::MapMatches(_) => 16,
    }
}

fn error_index(error: &ErrorReply) -> u8 {
    match error {
        ErrorReply::WrongType { .. } => 0,
        ErrorReply::KeyTooLarge { .. } => 1,
        ErrorReply::ValueTooLarge { .. } => 2,
        ErrorReply::Overflow => 3,
        ErrorReply::NestingTooDeep { .. } => 4,
        ErrorReply::QuorumNotReached { .. } => 5,
        ErrorReply::ReadQuorumNotReached { .. } => 6,
        ErrorReply::Timeout => 7,
        ErrorReply::Unavailable { .. } => 8,
        ErrorReply::BadRequest { .. } => 9,
        ErrorReply::Refused { .. } => 10,
        ErrorReply::KeyValueTooLarge { .. } => 11,
    }
}

fn field_op_index(op: &FieldOp) -> u8 {
    match op {
        FieldOp::Set(_) => 0,
        FieldOp::Incr(_) => 1,
        FieldOp::SetAdd(_) => 2,
        FieldOp::SetRemove(_) => 3,
        FieldOp::MvSet(_) => 4,
        FieldOp::Remove => 5,
    }
}

fn field_value_index(value: &FieldValue) -> u8 {
    match value {
        FieldValue::Register(_) => 0,
        FieldValue::Counter(_) => 1,
        FieldValue::Set(_) => 2,
        FieldValue::Map(_) => 3,
        FieldValue::MvRegister(_) => 4,
    }
}

fn ttl_index(ttl: &Ttl) -> u8 {
    match ttl {
        Ttl::Missing => 0,
        Ttl::Persistent => 1,
        Ttl::Ms(_) => 2,
    }
}

fn kind_index(kind: Kind) -> u8 {
    match kind {
        Kind::Register => 0,
        Kind::MvRegister => 1,
        Kind::Counter => 2,
        Kind::Set => 3,
        Kind::Map => 4,
    }
}

fn write_index(level: WriteConsistency) -> u8 {
    match level {
        WriteConsistency::One => 0,
        WriteConsistency::Quorum => 1,
        WriteConsistency::All => 2,
    }
}

fn read_index(level: ReadConsistency) -> u8 {
    match level {
        ReadConsistency::One => 0,
        ReadConsistency::Quorum => 1,
    }
}

fn b(text: &str) -> Bytes {
    Bytes::from(text.as_bytes().to_vec())
}

const FIELD_OPS: fn() -> [FieldOp; 6] = || {
    [
        FieldOp::Set(b("set")),
        FieldOp::Incr(i64::MIN),
        FieldOp::SetAdd(b("add")),
        FieldOp::SetRemove(b("rem")),
        FieldOp::MvSet(b("mv")),
        FieldOp::Remove,
    ]
};

fn field_values() -> [FieldValue; 5] {
    [
        FieldValue::Register(b("reg")),
        FieldValue::Counter(i64::MAX),
        FieldValue::Set(vec![b("m1"), b("m2")]),
        FieldValue::Map(vec![
            (b("inner"), FieldValue::Counter(-300)),
            (b("deeper"), FieldValue::Map(Vec::new())),
        ]),
        FieldValue::MvRegister(vec![b("c1"), b("c2"), b("c3")]),
    ]
}

const KINDS: [Kind; 5] = [
    Kind::Register,
    Kind::MvRegister,
    Kind::Counter,
    Kind::Set,
    Kind::Map,
];

/// Samples of each protocol version, with the version: those of version 7
/// first, then those each later version added, oldest first.
type Versions<T> = Vec<(u16, Vec<T>)>;

/// The samples of the versions up to `version`, in order.
fn up_to<T>(versions: Versions<T>, version: u16) -> impl Iterator<Item = T> {
    versions
        .into_iter()
        .filter(move |(since, _)| *since <= version)
        .flat_map(|(_, samples)| samples)
}

/// One of every command version 7 had (every `FieldOp` among them), and
/// those each later version added.
fn commands() -> Versions<Command> {
    let k = |n: u32| b(&format!("key-{n}"));
    let mut v7 = vec![
        Command::Ping,
        Command::Status,
        Command::Get { key: k(1) },
        Command::Set {
            key: k(2),
            value: b("value"),
            ttl_ms: Some(u64::MAX),
        },
        Command::Set {
            key: k(3),
            value: Bytes::from(vec![0, 255, 128]),
            ttl_ms: None,
        },
        Command::Del { key: k(4) },
        Command::IncrBy {
            key: k(5),
            by: i64::MIN,
        },
        Command::CounterGet { key: k(6) },
        Command::SAdd {
            key: k(7),
            members: vec![b("a"), b("b"), Bytes::from(vec![0u8; 200])],
        },
        Command::SRem {
            key: k(8),
            members: Vec::new(),
        },
        Command::SMembers { key: k(9) },
        Command::SIsMember {
            key: k(10),
            member: b("is"),
        },
        Command::SCard { key: k(11) },
        Command::HSet {
            key: k(12),
            field: b("field"),
            value: b("hvalue"),
        },
        Command::HGet {
            key: k(13),
            field: b("hget"),
        },
        Command::HDel {
            key: k(14),
            fields: vec![b("d1"), b("d2")],
        },
        Command::HGetAll { key: k(15) },
        Command::HIncrBy {
            key: k(16),
            field: b("hincr"),
            by: i64::MAX,
        },
        Command::HLen { key: k(17) },
        Command::MapGet {
            key: k(18),
            path: vec![b("p1"), b("p2"), b("p3")],
        },
        Command::MvSet {
            key: k(19),
            value: b("mvvalue"),
        },
        Command::MvGet { key: k(20) },
        Command::Expire {
            key: k(21),
            ttl_ms: 1 << 40,
        },
        Command::Ttl { key: k(22) },
        Command::Persist { key: k(23) },
        Command::Type { key: k(24) },
        Command::ReloadTopology,
        Command::Topology,
    ];
    for (n, op) in FIELD_OPS().into_iter().enumerate() {
        v7.push(Command::MapApply {
            key: k(30 + n as u32),
            path: vec![b("path"); n],
            op,
        });
    }
    let v9 = vec![
        Command::SScan {
            key: k(40),
            after: Some(b("after")),
            count: u32::MAX,
        },
        Command::HScan {
            key: k(41),
            after: None,
            count: 1,
        },
    ];
    let v10 = vec![
        Command::Scan {
            from: u64::MAX,
            count: u32::MAX,
            pattern: Some(b("user:*")),
            kind: Some(Kind::Map),
        },
        Command::Scan {
            from: 0,
            count: 1,
            pattern: None,
            kind: None,
        },
        Command::SScanMatch {
            key: k(42),
            after: Some(b("m")),
            count: 7,
            pattern: b("a*[bc]"),
        },
        Command::HScanMatch {
            key: k(43),
            after: None,
            count: u32::MAX,
            pattern: Bytes::from(vec![0, 255]),
        },
    ];
    vec![(7, v7), (9, v9), (10, v10)]
}

fn status() -> NodeStatus {
    NodeStatus {
        replica: u32::MAX,
        region: "us-east".into(),
        keys: 1,
        memory_bytes: 2,
        hints_pending: 3,
        requests: 4,
        writes_acked: 5,
        writes_short: 6,
        refused: u64::MAX,
        peers_suspected: vec![8, 9],
        links: vec![LinkStatus {
            region: "eu-west".into(),
            backlog_deltas: 10,
            backlog_bytes: 11,
            lag_ms: 12,
            lag_ms_last: Some(13),
            last_acked_ago_ms: None,
            dropped: 14,
        }],
        rebalance: RebalanceStatus {
            epoch: 15,
            keys_total: 16,
            keys_sent: 17,
            bytes_total: 18,
            bytes_sent: 19,
            batches_resent: 20,
            sending_done: true,
            finished: false,
            leaving: false,
            keys_dropped: 21,
        },
        topology_version: 22,
    }
}

/// One of every reply version 7 had (with every `FieldValue`, `Kind` and
/// `Ttl`), and those each later version added.
fn replies() -> Versions<Reply> {
    let mut v7 = vec![
        Reply::Ok,
        Reply::Pong,
        Reply::Nil,
        Reply::Int(i64::MIN),
        Reply::Bool(true),
        Reply::Bool(false),
        Reply::Value(b("v")),
        Reply::Values(vec![b("a"), b("b")]),
        Reply::Fields(
            field_values()
                .into_iter()
                .enumerate()
                .map(|(n, v)| (b(&format!("f{n}")), v))
                .collect(),
        ),
        Reply::Field(None),
        Reply::Type(None),
        Reply::Ttl(Ttl::Missing),
        Reply::Ttl(Ttl::Persistent),
        Reply::Ttl(Ttl::Ms(u64::MAX)),
        Reply::Status(Box::new(status())),
    ];
    v7.extend(field_values().into_iter().map(|v| Reply::Field(Some(v))));
    v7.extend(KINDS.map(|k| Reply::Type(Some(k))));
    let v9 = vec![
        Reply::SetPage(Page {
            items: vec![b("a"), b("z")],
            more: true,
        }),
        Reply::MapPage(Page {
            items: field_values().into_iter().map(|v| (b("page"), v)).collect(),
            more: false,
        }),
    ];
    let v10 = vec![
        Reply::Keys(KeyPage {
            keys: vec![b("k1"), Bytes::from(vec![0, 255])],
            next: u64::MAX,
        }),
        Reply::Keys(KeyPage {
            keys: Vec::new(),
            next: 0,
        }),
        Reply::SetMatches(Matches {
            items: vec![b("ab")],
            more: true,
            passed: Some(b("zz")),
        }),
        Reply::MapMatches(Matches {
            items: field_values()
                .into_iter()
                .map(|v| (b("match"), v))
                .collect(),
            more: false,
            passed: None,
        }),
    ];
    vec![(7, v7), (9, v9), (10, v10)]
}

fn errors() -> Vec<ErrorReply> {
    let mut errors: Vec<ErrorReply> = KINDS
        .iter()
        .zip(KINDS.iter().rev())
        .map(|(&wanted, &found)| ErrorReply::WrongType { wanted, found })
        .collect();
    errors.extend([
        ErrorReply::KeyTooLarge {
            len: u64::MAX,
            max: 1024,
        },
        ErrorReply::ValueTooLarge {
            len: 1 << 33,
            max: 1 << 20,
        },
        ErrorReply::Overflow,
        ErrorReply::NestingTooDeep { max: 300 },
        ErrorReply::QuorumNotReached {
            acked: 200,
            needed: 255,
        },
        ErrorReply::ReadQuorumNotReached {
            replied: 129,
            needed: 250,
        },
        ErrorReply::Timeout,
        ErrorReply::Unavailable {
            reason: "down".into(),
        },
        ErrorReply::BadRequest {
            reason: "bad".into(),
        },
        ErrorReply::Refused {
            reason: "no".into(),
        },
        ErrorReply::KeyValueTooLarge {
            len: 70_000,
            max: 65_536,
        },
    ]);
    errors
}

fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    postcard::to_allocvec(value).expect("a sample encodes")
}

#[test]
fn every_client_enum_variant_keeps_its_index() {
    for command in up_to(commands(), PROTOCOL_VERSION) {
        assert_eq!(encode(&command)[0], command_index(&command), "{command:?}");
    }
    for reply in up_to(replies(), PROTOCOL_VERSION) {
        assert_eq!(encode(&reply)[0], reply_index(&reply), "{reply:?}");
    }
    for error in errors() {
        assert_eq!(encode(&error)[0], error_index(&error), "{error:?}");
    }
    for op in FIELD_OPS() {
        assert_eq!(encode(&op)[0], field_op_index(&op), "{op:?}");
    }
    for value in field_values() {
        assert_eq!(encode(&value)[0], field_value_index(&value), "{value:?}");
    }
    for ttl in [Ttl::Missing, Ttl::Persistent, Ttl::Ms(5)] {
        assert_eq!(encode(&ttl)[0], ttl_index(&ttl), "{ttl:?}");
    }
    for kind in KINDS {
        assert_eq!(encode(&kind)[0], kind_index(kind), "{kind:?}");
    }
    for level in [
        WriteConsistency::One,
        WriteConsistency::Quorum,
        WriteConsistency::All,
    ] {
        assert_eq!(encode(&level)[0], write_index(level), "{level:?}");
    }
    for level in [ReadConsistency::One, ReadConsistency::Quorum] {
        assert_eq!(encode(&level)[0], read_index(level), "{level:?}");
    }
}

/// The requests and responses of a client of protocol `version`: every
/// command it has, under each consistency level and none, and every reply
/// and error it reads, in a response.
fn client_messages(version: u16) -> Vec<u8> {
    let mut wire = Vec::new();
    let commands = up_to(commands(), version);
    let writes = [
        None,
        Some(WriteConsistency::One),
        Some(WriteConsistency::Quorum),
        Some(WriteConsistency::All),
    ];
    let reads = [
        None,
        Some(ReadConsistency::One),
        Some(ReadConsistency::Quorum),
    ];
    for (i, command) in commands.enumerate() {
        let request = Request {
            id: (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
            command,
            write: writes[i % writes.len()],
            read: reads[i % reads.len()],
        };
        wire.extend(encode(&request));
    }
    let replies = up_to(replies(), version);
    for (i, reply) in replies.enumerate() {
        let response = Response {
            id: u64::MAX - i as u64,
            result: Ok(Answer {
                reply,
                replicas_acked: 250 - i as u8,
                replicas_needed: 128 + i as u8,
            }),
        };
        wire.extend(encode(&response));
    }
    for (i, error) in errors().into_iter().enumerate() {
        wire.extend(encode(&Response {
            id: 1 << (i + 7),
            result: Err(error),
        }));
    }
    wire
}

/// The hash (xxh3) of [`client_messages`] of each protocol version served,
/// as that version's build encoded them, oldest first.
const PINNED: [(u16, u64); 3] = [
    (7, 15_555_325_040_342_598_198),
    (9, 849_021_891_112_607_140),
    (10, 6_096_846_762_380_997_814),
];

#[test]
fn the_client_messages_of_every_version_served_encode_as_they_did() {
    assert_eq!(
        PINNED[0].0, CLIENT_VERSION_MIN,
        "pin the oldest version served, and only the versions served"
    );
    for (version, pinned) in PINNED {
        assert!(version <= PROTOCOL_VERSION);
        let wire = client_messages(version);
        assert_eq!(
            xxhash_rust::xxh3::xxh3_64(&wire),
            pinned,
            "client messages of protocol version {version} changed encoding ({} bytes): \
             raise CLIENT_VERSION_MIN past it, or undo the change",
            wire.len()
        );
    }
}

#[test]
fn each_reply_and_error_says_the_version_that_brought_it() {
    for (version, replies) in replies() {
        for reply in replies {
            assert_eq!(reply.since(), version, "{reply:?}");
        }
    }
    for error in errors() {
        assert_eq!(error.since(), 7, "{error:?}");
    }
}

#[test]
fn an_answer_too_new_for_its_client_is_an_error_it_can_read() {
    let page = Response {
        id: 42,
        result: Ok(Answer {
            reply: Reply::SetPage(Page {
                items: vec![b("a")],
                more: false,
            }),
            replicas_acked: 1,
            replicas_needed: 1,
        }),
    };
    assert_eq!(page.for_client(9), None);
    let Some(older) = page.for_client(8) else {
        panic!("sent as it is to a version 8 client");
    };
    assert_eq!(older.id, 42);
    assert!(
        matches!(&older.result, Err(ErrorReply::BadRequest { reason }) if reason.contains("needs protocol version 9")),
        "{older:?}"
    );
    assert_eq!(older.since(), 7);
    let pong = Response {
        id: 1,
        result: Ok(Answer {
            reply: Reply::Pong,
            replicas_acked: 1,
            replicas_needed: 1,
        }),
    };
    assert_eq!(pong.for_client(CLIENT_VERSION_MIN), None);
}

/// What a node answers to every command of the oldest client served, on
/// its own key and on a key of each type: only what that version reads.
#[test]
fn the_oldest_clients_commands_are_answered_in_its_version() {
    use crate::keyspace::{Keyspace, KeyspaceConfig};
    use crdt_types::ReplicaId;
    let mut ks = Keyspace::new(ReplicaId(1), KeyspaceConfig::default());
    let now = 1_800_000_000_000;
    let typed = ["t-register", "t-counter", "t-set", "t-map", "t-mv"];
    for (key, command) in typed.iter().zip([
        Command::Set {
            key: b(""),
            value: b("v"),
            ttl_ms: None,
        },
        Command::IncrBy { key: b(""), by: 1 },
        Command::SAdd {
            key: b(""),
            members: vec![b("m")],
        },
        Command::MapApply {
            key: b(""),
            path: vec![b("n"), b("f")],
            op: FieldOp::Incr(2),
        },
        Command::MvSet {
            key: b(""),
            value: b("v"),
        },
    ]) {
        let mut command = command;
        *command_key_mut(&mut command).unwrap() = b(key);
        crate::node::execute::execute(&mut ks, &command, now).unwrap();
    }
    let v7: Vec<Command> = up_to(commands(), CLIENT_VERSION_MIN).collect();
    let mut runs = 0;
    for command in &v7 {
        let on_typed = typed.iter().map(|key| {
            let mut command = command.clone();
            if let Some(k) = command_key_mut(&mut command) {
                *k = b(key);
            }
            command
        });
        for command in std::iter::once(command.clone()).chain(on_typed) {
            let since = match crate::node::execute::execute(&mut ks, &command, now) {
                Ok((reply, _)) => reply.since(),
                Err(e) => ErrorReply::from(e).since(),
            };
            assert!(
                since <= CLIENT_VERSION_MIN,
                "{command:?} answered with version {since}"
            );
            runs += 1;
        }
    }
    assert_eq!(runs, v7.len() * 6);
}

fn command_key_mut(command: &mut Command) -> Option<&mut Bytes> {
    match command {
        Command::Get { key }
        | Command::Set { key, .. }
        | Command::Del { key }
        | Command::IncrBy { key, .. }
        | Command::CounterGet { key }
        | Command::SAdd { key, .. }
        | Command::SRem { key, .. }
        | Command::SMembers { key }
        | Command::SIsMember { key, .. }
        | Command::SCard { key }
        | Command::HSet { key, .. }
        | Command::HGet { key, .. }
        | Command::HDel { key, .. }
        | Command::HGetAll { key }
        | Command::HIncrBy { key, .. }
        | Command::HLen { key }
        | Command::MapApply { key, .. }
        | Command::MapGet { key, .. }
        | Command::MvSet { key, .. }
        | Command::MvGet { key }
        | Command::Expire { key, .. }
        | Command::Ttl { key }
        | Command::Persist { key }
        | Command::Type { key }
        | Command::SScan { key, .. }
        | Command::HScan { key, .. }
        | Command::SScanMatch { key, .. }
        | Command::HScanMatch { key, .. } => Some(key),
        Command::Ping
        | Command::Status
        | Command::ReloadTopology
        | Command::Topology
        | Command::Scan { .. } => None,
    }
}
