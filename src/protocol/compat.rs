//! Tests that keep the client messages of every protocol version from
//! [`CLIENT_VERSION_MIN`](super::frame::CLIENT_VERSION_MIN) on encoding as
//! they did, so that a node serves clients of those versions (see there).
//!
//! Two guards:
//! - each variant of the client-facing enums keeps its index (postcard
//!   encodes a variant as its index), checked by an exhaustive match, so a
//!   new variant does not compile until it is listed here, after the
//!   others;
//! - a sample of every client message made only of what version 7 had
//!   encodes to the same bytes (their hash is pinned below).
//!
//! When either fails, the change broke older clients: append the variant
//! at the end instead, or raise `CLIENT_VERSION_MIN` to the new
//! `PROTOCOL_VERSION` and pin the new hash.

use super::{Answer, Command, ErrorReply, LinkStatus, NodeStatus, RebalanceStatus, Reply};
use super::{Request, Response};
use crate::keyspace::{FieldOp, FieldValue, Page, Ttl};
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

fn b(text: &str) -> Bytes {
    Bytes::from(text.as_bytes().to_vec())
}

/// One of every command version 7 had, and those of version 9.
fn commands() -> (Vec<Command>, Vec<Command>) {
    let k = || b("k");
    let v7 = vec![
        Command::Ping,
        Command::Status,
        Command::Get { key: k() },
        Command::Set {
            key: k(),
            value: b("v"),
            ttl_ms: Some(1_000),
        },
        Command::Del { key: k() },
        Command::IncrBy { key: k(), by: -5 },
        Command::CounterGet { key: k() },
        Command::SAdd {
            key: k(),
            members: vec![b("a"), b("b")],
        },
        Command::SRem {
            key: k(),
            members: vec![b("a")],
        },
        Command::SMembers { key: k() },
        Command::SIsMember {
            key: k(),
            member: b("a"),
        },
        Command::SCard { key: k() },
        Command::HSet {
            key: k(),
            field: b("f"),
            value: b("v"),
        },
        Command::HGet {
            key: k(),
            field: b("f"),
        },
        Command::HDel {
            key: k(),
            fields: vec![b("f")],
        },
        Command::HGetAll { key: k() },
        Command::HIncrBy {
            key: k(),
            field: b("f"),
            by: 3,
        },
        Command::HLen { key: k() },
        Command::MapApply {
            key: k(),
            path: vec![b("a"), b("b")],
            op: FieldOp::SetAdd(b("m")),
        },
        Command::MapGet {
            key: k(),
            path: vec![b("a")],
        },
        Command::MvSet {
            key: k(),
            value: b("v"),
        },
        Command::MvGet { key: k() },
        Command::Expire {
            key: k(),
            ttl_ms: 60_000,
        },
        Command::Ttl { key: k() },
        Command::Persist { key: k() },
        Command::Type { key: k() },
        Command::ReloadTopology,
        Command::Topology,
    ];
    let v9 = vec![
        Command::SScan {
            key: k(),
            after: Some(b("a")),
            count: 10,
        },
        Command::HScan {
            key: k(),
            after: None,
            count: 1,
        },
    ];
    (v7, v9)
}

fn status() -> NodeStatus {
    NodeStatus {
        replica: 7,
        region: "us-east".into(),
        keys: 1,
        memory_bytes: 2,
        hints_pending: 3,
        requests: 4,
        writes_acked: 5,
        writes_short: 6,
        refused: 7,
        peers_suspected: vec![2],
        links: vec![LinkStatus {
            region: "eu-west".into(),
            backlog_deltas: 1,
            backlog_bytes: 2,
            lag_ms: 3,
            lag_ms_last: Some(4),
            last_acked_ago_ms: None,
            dropped: 5,
        }],
        rebalance: RebalanceStatus {
            epoch: 1,
            keys_total: 2,
            keys_sent: 3,
            bytes_total: 4,
            bytes_sent: 5,
            batches_resent: 6,
            sending_done: true,
            finished: false,
            leaving: true,
            keys_dropped: 8,
        },
        topology_version: 9,
    }
}

/// One of every reply version 7 had, and those of version 9.
fn replies() -> (Vec<Reply>, Vec<Reply>) {
    let v7 = vec![
        Reply::Ok,
        Reply::Pong,
        Reply::Nil,
        Reply::Int(i64::MIN),
        Reply::Bool(true),
        Reply::Value(b("v")),
        Reply::Values(vec![b("a"), b("b")]),
        Reply::Fields(vec![
            (b("r"), FieldValue::Register(b("v"))),
            (b("c"), FieldValue::Counter(-1)),
            (b("s"), FieldValue::Set(vec![b("m")])),
            (
                b("m"),
                FieldValue::Map(vec![(b("x"), FieldValue::Counter(2))]),
            ),
            (b("mv"), FieldValue::MvRegister(vec![b("1"), b("2")])),
        ]),
        Reply::Field(None),
        Reply::Type(Some(Kind::MvRegister)),
        Reply::Ttl(Ttl::Ms(1_500)),
        Reply::Status(Box::new(status())),
    ];
    let v9 = vec![
        Reply::SetPage(Page {
            items: vec![b("a")],
            more: true,
        }),
        Reply::MapPage(Page {
            items: vec![(b("f"), FieldValue::Counter(1))],
            more: false,
        }),
    ];
    (v7, v9)
}

fn errors() -> Vec<ErrorReply> {
    vec![
        ErrorReply::WrongType {
            wanted: Kind::Counter,
            found: Kind::Set,
        },
        ErrorReply::KeyTooLarge {
            len: 2000,
            max: 1024,
        },
        ErrorReply::ValueTooLarge { len: 5, max: 4 },
        ErrorReply::Overflow,
        ErrorReply::NestingTooDeep { max: 8 },
        ErrorReply::QuorumNotReached {
            acked: 1,
            needed: 2,
        },
        ErrorReply::ReadQuorumNotReached {
            replied: 1,
            needed: 2,
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
        ErrorReply::KeyValueTooLarge { len: 9, max: 8 },
    ]
}

fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    postcard::to_allocvec(value).expect("a sample encodes")
}

#[test]
fn every_client_enum_variant_keeps_its_index() {
    let (v7, v9) = commands();
    for command in v7.iter().chain(&v9) {
        assert_eq!(encode(command)[0], command_index(command), "{command:?}");
    }
    let (v7, v9) = replies();
    for reply in v7.iter().chain(&v9) {
        assert_eq!(encode(reply)[0], reply_index(reply), "{reply:?}");
    }
    for error in errors() {
        assert_eq!(encode(&error)[0], error_index(&error), "{error:?}");
    }
    // The samples name every variant.
    assert_eq!(commands().0.len() + commands().1.len(), 30);
    assert_eq!(replies().0.len() + replies().1.len(), 14);
    assert_eq!(errors().len(), 12);
}

/// The requests and responses of an oldest client still served: every
/// version-7 command (with both consistency options and none), and every
/// version-7 reply and error in a response.
fn oldest_client_messages() -> Vec<u8> {
    let mut wire = Vec::new();
    let (commands, _) = commands();
    for (i, command) in commands.into_iter().enumerate() {
        let request = Request {
            id: i as u64 * 1_000_003,
            command,
            write: [None, Some(WriteConsistency::All)][i % 2],
            read: [Some(ReadConsistency::Quorum), None][i % 2],
        };
        wire.extend(encode(&request));
    }
    let (replies, _) = replies();
    for (i, reply) in replies.into_iter().enumerate() {
        let response = Response {
            id: u64::MAX - i as u64,
            result: Ok(Answer {
                reply,
                replicas_acked: 2,
                replicas_needed: 3,
            }),
        };
        wire.extend(encode(&response));
    }
    for (i, error) in errors().into_iter().enumerate() {
        wire.extend(encode(&Response {
            id: i as u64,
            result: Err(error),
        }));
    }
    wire
}

/// The hash of [`oldest_client_messages`] as protocol version 7 encoded
/// them.
const OLDEST_CLIENT_MESSAGES_XXH3: u64 = 9_585_002_351_149_929_312;

#[test]
fn the_oldest_client_messages_still_served_encode_as_they_did() {
    let wire = oldest_client_messages();
    assert_eq!(
        xxhash_rust::xxh3::xxh3_64(&wire),
        OLDEST_CLIENT_MESSAGES_XXH3,
        "client messages of protocol version {} changed encoding ({} bytes): raise \
         CLIENT_VERSION_MIN, or undo the change",
        super::frame::CLIENT_VERSION_MIN,
        wire.len()
    );
}
