//! Bundling the messages a node sends to the same peer in one go.
//!
//! Every replicated write costs a `Replicate` to each other replica and an
//! `Ack` back; under load a node emits many of them to the same peer in one
//! pass over its actions. [`bundle_sends`] merges them into one
//! `ReplicateMany` or `AckMany` message per peer, so the receiver decodes
//! one frame and handles one event instead of dozens. It is applied to the
//! actions of a batch of events, after the node produced them (the driver
//! does so before routing; the simulator does too, so bundles are tested
//! under its faults).
//!
//! Order is kept per peer and path: a bundle takes a message only while
//! no other message to that peer on the same path (answers travel on the
//! connection the question came on, the rest on the sender's own link)
//! was emitted in between, so a peer sees what it would have seen without
//! bundling, only in fewer frames.

use super::Action;
use crate::protocol::PeerMsg;
use crdt_types::{Bytes, Delta, Record, ReplicaId};
use std::collections::HashMap;
use std::sync::Arc;

/// Most messages merged into one bundle.
pub const BUNDLE_MSGS_MAX: usize = 256;
/// Most encoded delta and key bytes in one `ReplicateMany` (well under
/// the peer frame limit).
pub const BUNDLE_BYTES_MAX: usize = 256 << 10;

/// An open bundle: where it sits in the output and how full it is.
#[derive(Clone, Copy)]
struct Open {
    at: usize,
    msgs: usize,
    bytes: usize,
}

/// Merges the `Replicate`s (and the `Ack`s) among `actions` that go to the
/// same peer with nothing else to it on the same path in between into one
/// `ReplicateMany` (`AckMany`). Every other action keeps its place.
pub fn bundle_sends(actions: Vec<Action>) -> Vec<Action> {
    let mut out: Vec<Action> = Vec::with_capacity(actions.len());
    let mut replicates: HashMap<ReplicaId, Open> = HashMap::new();
    let mut acks: HashMap<ReplicaId, Open> = HashMap::new();
    // A write's delta goes to each replica as the same shared copy: sized
    // once, for the first of them.
    let mut last_sized: Option<(Arc<Delta<Record>>, usize)> = None;
    for action in actions {
        let (to, msg) = match action {
            Action::Send { to, msg } => (to, msg),
            other => {
                out.push(other);
                continue;
            }
        };
        match msg {
            PeerMsg::Replicate { op, key, delta } => {
                let delta_bytes = match &last_sized {
                    Some((sized, len)) if Arc::ptr_eq(sized, &delta) => *len,
                    _ => {
                        let len = delta.encoded_len();
                        last_sized = Some((Arc::clone(&delta), len));
                        len
                    }
                };
                let bytes = key.len() + delta_bytes;
                match replicates.get_mut(&to) {
                    Some(open)
                        if open.msgs < BUNDLE_MSGS_MAX
                            && open.bytes.saturating_add(bytes) <= BUNDLE_BYTES_MAX =>
                    {
                        open.msgs += 1;
                        open.bytes += bytes;
                        push_replicate(&mut out[open.at], (op, key, delta));
                    }
                    _ => {
                        replicates.insert(
                            to,
                            Open {
                                at: out.len(),
                                msgs: 1,
                                bytes,
                            },
                        );
                        out.push(Action::Send {
                            to,
                            msg: PeerMsg::Replicate { op, key, delta },
                        });
                    }
                }
            }
            PeerMsg::Ack { op, ok } => match acks.get_mut(&to) {
                Some(open) if open.msgs < BUNDLE_MSGS_MAX => {
                    open.msgs += 1;
                    push_ack(&mut out[open.at], (op, ok));
                }
                _ => {
                    acks.insert(
                        to,
                        Open {
                            at: out.len(),
                            msgs: 1,
                            bytes: 0,
                        },
                    );
                    out.push(Action::Send {
                        to,
                        msg: PeerMsg::Ack { op, ok },
                    });
                }
            },
            msg => {
                // Whatever follows on this path must come after it.
                if msg.is_answer() {
                    acks.remove(&to);
                } else {
                    replicates.remove(&to);
                }
                out.push(Action::Send { to, msg });
            }
        }
    }
    out
}

/// Adds a replicated delta to the `Replicate` or `ReplicateMany` in `slot`.
fn push_replicate(slot: &mut Action, item: (u64, Bytes, Arc<Delta<Record>>)) {
    let Action::Send { msg, .. } = slot else {
        unreachable!("an open bundle is a send");
    };
    match msg {
        PeerMsg::ReplicateMany { items } => items.push(item),
        PeerMsg::Replicate { .. } => {
            let PeerMsg::Replicate { op, key, delta } = std::mem::replace(msg, PeerMsg::Heartbeat)
            else {
                unreachable!("matched above");
            };
            *msg = PeerMsg::ReplicateMany {
                items: vec![(op, key, delta), item],
            };
        }
        _ => unreachable!("an open replicate bundle holds replicates"),
    }
}

/// Adds an acknowledgement to the `Ack` or `AckMany` in `slot`.
fn push_ack(slot: &mut Action, item: (u64, bool)) {
    let Action::Send { msg, .. } = slot else {
        unreachable!("an open bundle is a send");
    };
    match msg {
        PeerMsg::AckMany { acks } => acks.push(item),
        PeerMsg::Ack { op, ok } => {
            *msg = PeerMsg::AckMany {
                acks: vec![(*op, *ok), item],
            };
        }
        _ => unreachable!("an open ack bundle holds acks"),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Input, Node, NodeConfig};
    use super::*;
    use crate::keyspace::{Keyspace, KeyspaceConfig};
    use crate::protocol::{Command, Request};
    use crate::topology::{Topology, WriteConsistency};

    const NOW_MS: u64 = 1_800_000_000_000;

    fn replica(n: u32) -> ReplicaId {
        ReplicaId(n)
    }

    fn replicate(to: u32, op: u64, value_bytes: usize) -> Action {
        let key = Bytes::from(format!("k{op}").as_str());
        let mut keyspace = Keyspace::new(replica(9), KeyspaceConfig::default());
        let value = Bytes::from(vec![7; value_bytes]);
        let delta = keyspace
            .set(&key, value, None, NOW_MS)
            .unwrap()
            .delta
            .unwrap();
        Action::Send {
            to: replica(to),
            msg: PeerMsg::Replicate {
                op,
                key,
                delta: delta.into(),
            },
        }
    }

    fn ack(to: u32, op: u64) -> Action {
        Action::Send {
            to: replica(to),
            msg: PeerMsg::Ack {
                op,
                ok: op.is_multiple_of(2),
            },
        }
    }

    /// The messages of `actions`, as (peer, kind, ops) for short asserts.
    fn shape(actions: &[Action]) -> Vec<(u32, &'static str, Vec<u64>)> {
        actions
            .iter()
            .map(|a| match a {
                Action::Send { to, msg } => {
                    let (kind, ops) = match msg {
                        PeerMsg::Replicate { op, .. } => ("replicate", vec![*op]),
                        PeerMsg::ReplicateMany { items } => {
                            ("replicate-many", items.iter().map(|i| i.0).collect())
                        }
                        PeerMsg::Ack { op, .. } => ("ack", vec![*op]),
                        PeerMsg::AckMany { acks } => {
                            ("ack-many", acks.iter().map(|a| a.0).collect())
                        }
                        PeerMsg::Read { op, .. } => ("read", vec![*op]),
                        PeerMsg::ReadReply { op, .. } => ("read-reply", vec![*op]),
                        _ => ("other", vec![]),
                    };
                    (to.0, kind, ops)
                }
                _ => (0, "not-a-send", vec![]),
            })
            .collect()
    }

    #[test]
    fn replicates_and_acks_to_one_peer_become_one_message_each() {
        let actions = vec![
            replicate(2, 1, 8),
            replicate(3, 1, 8),
            ack(2, 10),
            replicate(2, 2, 8),
            ack(2, 11),
            replicate(3, 2, 8),
            replicate(2, 3, 8),
            ack(4, 12),
        ];
        assert_eq!(
            shape(&bundle_sends(actions)),
            vec![
                (2, "replicate-many", vec![1, 2, 3]),
                (3, "replicate-many", vec![1, 2]),
                (2, "ack-many", vec![10, 11]),
                (4, "ack", vec![12]),
            ]
        );
    }

    #[test]
    fn each_item_keeps_its_payload() {
        let actions = vec![
            ack(2, 10),
            ack(2, 11),
            replicate(2, 1, 3),
            replicate(2, 2, 5),
        ];
        let bundled = bundle_sends(actions.clone());
        let Action::Send {
            msg: PeerMsg::AckMany { acks },
            ..
        } = &bundled[0]
        else {
            panic!("{bundled:?}");
        };
        assert_eq!(acks, &vec![(10, true), (11, false)]);
        let Action::Send {
            msg: PeerMsg::ReplicateMany { items },
            ..
        } = &bundled[1]
        else {
            panic!("{bundled:?}");
        };
        assert_eq!(items.len(), 2);
        for ((op, key, delta), original) in items.iter().zip(&actions[2..]) {
            let Action::Send {
                msg:
                    PeerMsg::Replicate {
                        op: o,
                        key: k,
                        delta: d,
                    },
                ..
            } = original
            else {
                unreachable!()
            };
            assert_eq!((op, key, delta), (o, k, d));
        }
    }

    #[test]
    fn another_message_on_the_same_path_closes_the_bundle() {
        let read = Action::Send {
            to: replica(2),
            msg: PeerMsg::Read {
                op: 20,
                key: Bytes::from("k"),
            },
        };
        let read_reply = Action::Send {
            to: replica(2),
            msg: PeerMsg::ReadReply {
                op: 21,
                state: None,
            },
        };
        let reply = Action::Reply {
            client: 1,
            response: crate::protocol::Response {
                id: 1,
                result: Err(crate::protocol::ErrorReply::Timeout),
            },
        };
        let actions = vec![
            replicate(2, 1, 8),
            ack(2, 10),
            read_reply,
            ack(2, 11),
            replicate(2, 2, 8),
            reply,
            read,
            replicate(2, 3, 8),
            replicate(2, 4, 8),
        ];
        assert_eq!(
            shape(&bundle_sends(actions)),
            vec![
                // A reply to a client and an answer do not split replicates;
                // the read (same path) does.
                (2, "replicate-many", vec![1, 2]),
                (2, "ack", vec![10]),
                (2, "read-reply", vec![21]),
                (2, "ack", vec![11]),
                (0, "not-a-send", vec![]),
                (2, "read", vec![20]),
                (2, "replicate-many", vec![3, 4]),
            ]
        );
    }

    #[test]
    fn bundles_stop_at_their_message_and_byte_limits() {
        let many: Vec<Action> = (0..BUNDLE_MSGS_MAX as u64 + 10)
            .map(|op| replicate(2, op, 8))
            .chain((0..BUNDLE_MSGS_MAX as u64 + 1).map(|op| ack(3, op)))
            .collect();
        let sizes: Vec<(u32, &str, usize)> = shape(&bundle_sends(many))
            .into_iter()
            .map(|(to, kind, ops)| (to, kind, ops.len()))
            .collect();
        assert_eq!(
            sizes,
            vec![
                (2, "replicate-many", BUNDLE_MSGS_MAX),
                (2, "replicate-many", 10),
                (3, "ack-many", BUNDLE_MSGS_MAX),
                (3, "ack", 1),
            ]
        );

        let value = BUNDLE_BYTES_MAX / 3;
        let large: Vec<Action> = (0..5).map(|op| replicate(2, op, value)).collect();
        let bundled = bundle_sends(large);
        assert_eq!(
            shape(&bundled).into_iter().map(|s| s.2).collect::<Vec<_>>(),
            vec![vec![0, 1], vec![2, 3], vec![4]]
        );
    }

    fn drain(node: &mut Node) -> Vec<Action> {
        std::iter::from_fn(|| node.poll_action()).collect()
    }

    #[test]
    fn a_bundled_round_trip_acknowledges_every_write() {
        let topology = Topology::parse(crate::sim::REGION_OF_THREE, "sim.toml").unwrap();
        let ids: Vec<ReplicaId> = topology.regions()[0]
            .nodes
            .iter()
            .map(|n| n.replica)
            .collect();
        let config = NodeConfig::default();
        let mut nodes: Vec<Node> = ids
            .iter()
            .map(|id| Node::new(&topology, *id, config.clone()).unwrap())
            .collect();
        // 40 writes (W = all) to the first node, one pass.
        for id in 0..40u64 {
            nodes[0].handle(
                NOW_MS,
                Input::Client {
                    client: 1,
                    request: Request {
                        id,
                        command: Command::IncrBy {
                            key: Bytes::from(format!("c{id}").as_str()),
                            by: 3,
                        },
                        write: Some(WriteConsistency::All),
                        read: None,
                    },
                },
            );
        }
        let sends = bundle_sends(drain(&mut nodes[0]));
        let mut replies = Vec::new();
        let mut peer_msgs = 0;
        for action in sends {
            let Action::Send { to, msg } = action else {
                continue;
            };
            peer_msgs += 1;
            let peer = ids.iter().position(|id| *id == to).unwrap();
            nodes[peer].handle(NOW_MS, Input::Peer { from: ids[0], msg });
            let answers = bundle_sends(drain(&mut nodes[peer]));
            // Every replicate of the bundle is acknowledged in one message.
            assert_eq!(shape(&answers).len(), 1, "{:?}", shape(&answers));
            for answer in answers {
                let Action::Send { msg, .. } = answer else {
                    panic!("a replica only answers its coordinator");
                };
                nodes[0].handle(NOW_MS, Input::Peer { from: to, msg });
                replies.extend(drain(&mut nodes[0]).into_iter().filter_map(|a| match a {
                    Action::Reply { response, .. } => Some(response),
                    _ => None,
                }));
            }
        }
        // Every node replicates every key (N = 3): one bundle per peer.
        let written = replies.len();
        assert_eq!(written, 40);
        assert_eq!(peer_msgs, 2);
        for response in &replies {
            let answer = response.result.as_ref().unwrap();
            assert_eq!((answer.replicas_acked, answer.replicas_needed), (3, 3));
        }
        for node in &nodes[1..] {
            assert_eq!(node.keyspace().len(), written);
        }
    }
}
