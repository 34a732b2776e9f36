//! Sloppy quorum: a write whose replica is down is stored, for that
//! replica, on a stand-in.
//!
//! When the failure detector suspects one of a key's replicas, or a replica
//! has not acknowledged a write after half the write timeout, the
//! coordinator sends that replica's copy to the next node on the region's
//! ring beyond the key's preference list (a fallback) that is not suspected
//! and not already standing in for this write. The fallback applies the
//! delta, keeps a hint naming the replica it stands in for, and
//! acknowledges; its acknowledgement counts toward W in the replica's place.
//! Once the replica answers again the fallback hands it the key's whole
//! state (the ordinary hinted handoff) and, not being a replica itself, then
//! drops the key.
//!
//! Nothing here decides correctness: a stand-in only adds a copy. A replica
//! without a stand-in still gets the coordinator's own hint, and digest
//! anti-entropy repairs whatever both miss.

use super::{Node, Pending, Remote};
use crate::protocol::PeerMsg;
use crdt_types::{Bytes, Delta, Record, ReplicaId};
use std::collections::{BTreeSet, HashMap, HashSet};

/// What the sloppy quorum keeps between events.
#[derive(Debug, Default)]
pub(super) struct StandIns {
    /// Per write in flight: its key and delta (for a late stand-in) and the
    /// `(fallback, owner)` pairs sent so far.
    writes: HashMap<u64, StandInWrite>,
    /// Writes to check for silent replicas, by `(due_ms, op)`.
    due: BTreeSet<(u64, u64)>,
    /// Keys this node holds for replicas that were down (it is not theirs).
    guests: HashSet<Bytes>,
}

#[derive(Debug)]
struct StandInWrite {
    key: Bytes,
    delta: std::sync::Arc<Delta<Record>>,
    sent: Vec<(ReplicaId, ReplicaId)>,
}

impl StandIns {
    /// The replica that `from` stands in for in write `op`, if it does.
    pub(super) fn owner(&self, op: u64, from: ReplicaId) -> Option<ReplicaId> {
        self.writes
            .get(&op)?
            .sent
            .iter()
            .find(|(fallback, _)| *fallback == from)
            .map(|(_, owner)| *owner)
    }

    /// Forgets write `op` (answered, finished or timed out).
    pub(super) fn forget(&mut self, op: u64) {
        self.writes.remove(&op);
    }

    /// When the next silent-replica check is due.
    pub(super) fn next_due_ms(&self) -> u64 {
        self.due.first().map_or(u64::MAX, |(ms, _)| *ms)
    }
}

impl Node {
    /// Keys this node holds for replicas that were down, not yet handed back.
    pub fn guests_held(&self) -> usize {
        self.stand_ins.guests.len()
    }

    /// Whether this node holds `key` for a replica that was down.
    pub fn is_guest(&self, key: &[u8]) -> bool {
        self.stand_ins.guests.contains(key)
    }

    /// Sends a write's delta to its other replicas, or to a stand-in for
    /// each one the failure detector suspects, and schedules a check for
    /// replicas that stay silent.
    pub(super) fn replicate_write(
        &mut self,
        now_ms: u64,
        op: u64,
        key: &Bytes,
        delta: Delta<Record>,
        others: Vec<ReplicaId>,
    ) {
        // One copy of the delta, shared by the sends to every replica.
        let delta = std::sync::Arc::new(delta);
        let sloppy = self.config.sloppy_quorum && self.has_fallbacks();
        if sloppy {
            self.stand_ins.writes.insert(
                op,
                StandInWrite {
                    key: key.clone(),
                    delta: std::sync::Arc::clone(&delta),
                    sent: Vec::new(),
                },
            );
            let due_ms = now_ms + self.config.write_timeout_ms / 2;
            self.stand_ins.due.insert((due_ms, op));
        }
        for to in others {
            if sloppy && !self.is_alive(to) && self.send_to_stand_in(op, to) {
                continue;
            }
            let msg = PeerMsg::Replicate {
                op,
                key: key.clone(),
                delta: std::sync::Arc::clone(&delta),
            };
            self.actions.push_back(super::Action::Send { to, msg });
        }
    }

    /// Whether the region has nodes beyond a preference list.
    fn has_fallbacks(&self) -> bool {
        self.placement
            .ring(&self.region)
            .is_some_and(|r| r.len() > r.replication_factor())
    }

    /// Sends write `op`'s delta to a stand-in for `owner`; false when no
    /// fallback is alive and free.
    fn send_to_stand_in(&mut self, op: u64, owner: ReplicaId) -> bool {
        let Some(write) = self.stand_ins.writes.get(&op) else {
            return false;
        };
        let candidates = self
            .placement
            .ring(&self.region)
            .map(|r| r.fallbacks(&write.key))
            .unwrap_or_default();
        let Some(fallback) = candidates.into_iter().find(|f| {
            *f != self.id
                && self.detector.alive(*f, self.now_ms)
                && !write.sent.iter().any(|(used, _)| used == f)
        }) else {
            return false;
        };
        let Some(write) = self.stand_ins.writes.get_mut(&op) else {
            return false;
        };
        write.sent.push((fallback, owner));
        let msg = PeerMsg::HintedReplicate {
            op,
            key: write.key.clone(),
            delta: Delta::clone(&write.delta),
            owner,
        };
        self.stats.stand_ins_asked += 1;
        self.actions
            .push_back(super::Action::Send { to: fallback, msg });
        true
    }

    /// Sends the copies of unanswered writes whose replicas stayed silent
    /// to stand-ins.
    pub(super) fn check_silent_replicas(&mut self, now_ms: u64) {
        while let Some(&(due_ms, op)) = self.stand_ins.due.first() {
            if due_ms > now_ms {
                break;
            }
            self.stand_ins.due.remove(&(due_ms, op));
            let silent: Vec<ReplicaId> = match self.pending.get(&op) {
                Some(Pending::Write(w)) if !w.answered => {
                    let covered = self.stand_ins.writes.get(&op);
                    w.waiting
                        .iter()
                        .copied()
                        .filter(|r| covered.is_some_and(|c| !c.sent.iter().any(|(_, o)| o == r)))
                        .collect()
                }
                _ => {
                    if !matches!(self.pending.get(&op), Some(Pending::Write(_))) {
                        self.stand_ins.forget(op);
                    }
                    continue;
                }
            };
            for owner in silent {
                self.send_to_stand_in(op, owner);
            }
        }
    }

    /// A coordinator asks this node to hold a write for `owner`.
    pub(super) fn on_hinted_replicate(
        &mut self,
        now_ms: u64,
        from: ReplicaId,
        op: u64,
        key: Bytes,
        delta: Delta<Record>,
        owner: ReplicaId,
    ) {
        let ok = self.apply_remote(now_ms, &key, Remote::Delta(&delta));
        if ok && owner != self.id {
            self.stats.stand_in_writes += 1;
            if !self.replicas(&key).contains(&self.id) {
                self.stand_ins.guests.insert(key.clone());
            }
            self.add_hint(owner, key);
        }
        self.actions.push_back(super::Action::Send {
            to: from,
            msg: PeerMsg::Ack { op, ok },
        });
    }

    /// A key recovered from storage that this node is not a replica of was
    /// held for replicas that were down: hand it to all of them again.
    pub(super) fn adopt_restored_guest(&mut self, key: &[u8]) {
        let replicas = self.replicas(key);
        if replicas.is_empty() || replicas.contains(&self.id) {
            return;
        }
        let key = Bytes::from(key);
        self.stand_ins.guests.insert(key.clone());
        for owner in replicas {
            self.add_hint(owner, key.clone());
        }
    }

    /// Drops the keys held for other replicas once every hint naming them
    /// has been delivered.
    pub(super) fn release_guests(&mut self) {
        if self.stand_ins.guests.is_empty() {
            return;
        }
        let in_flight: HashSet<&Bytes> = self
            .pending
            .values()
            .filter_map(|p| match p {
                Pending::Handoff { key, .. } => Some(key),
                _ => None,
            })
            .collect();
        let peers: Vec<ReplicaId> = self.detector.peers().collect();
        let done: Vec<Bytes> = self
            .stand_ins
            .guests
            .iter()
            .filter(|key| {
                !in_flight.contains(key)
                    && !peers
                        .iter()
                        .any(|p| self.hinted.contains(&(*p, (*key).clone())))
            })
            .cloned()
            .collect();
        for key in done {
            self.stand_ins.guests.remove(&key);
            if !self.replicas(&key).contains(&self.id) && self.keyspace.forget(&key) {
                self.stats.guests_released += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Action, Input, NodeConfig};
    use super::*;
    use crate::protocol::{Command, ErrorReply, Request, Response};
    use crate::topology::Topology;

    const START_MS: u64 = 1_800_000_000_000;

    fn region_of_five() -> Topology {
        let mut text = String::from(
            "[cluster]\nname = \"t\"\nreplication_factor = 3\nwrite_consistency = \"quorum\"\n\n[[region]]\nname = \"r\"\n",
        );
        for i in 1..=5 {
            text.push_str(&format!(
                "\n[[region.node]]\nid = \"n{i}\"\nclient_addr = \"127.0.0.1:{}\"\npeer_addr = \"127.0.0.1:{}\"\n",
                9200 + i,
                9300 + i
            ));
        }
        Topology::parse(&text, "five.toml").unwrap()
    }

    /// A key, its preference list and its fallbacks in the region.
    fn key_with_fallbacks(topology: &Topology) -> (Bytes, Vec<ReplicaId>, Vec<ReplicaId>) {
        let placement = crate::placement::Placement::new(topology);
        let ring = placement.ring("r").unwrap();
        let key = Bytes::from("hits");
        (
            key.clone(),
            ring.preference_list(&key).to_vec(),
            ring.fallbacks(&key),
        )
    }

    fn drain(node: &mut Node) -> Vec<Action> {
        std::iter::from_fn(|| node.poll_action()).collect()
    }

    /// `node` hears heartbeats from `talking` for five seconds; the others
    /// stay silent (and end up suspected).
    fn only_hear_from(node: &mut Node, talking: &[ReplicaId]) -> u64 {
        let mut now = START_MS;
        node.tick(now);
        while now < START_MS + 5_000 {
            now += 100;
            for from in talking {
                node.handle(
                    now,
                    Input::Peer {
                        from: *from,
                        msg: PeerMsg::Heartbeat,
                    },
                );
            }
            node.tick(now);
        }
        drain(node);
        now
    }

    fn incr(key: &Bytes) -> Input {
        Input::Client {
            client: 7,
            request: Request {
                id: 1,
                command: Command::IncrBy {
                    key: key.clone(),
                    by: 5,
                },
                write: None,
                read: None,
            },
        }
    }

    fn replies(actions: &[Action]) -> Vec<Response> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Reply { response, .. } => Some(response.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn suspected_replicas_copies_go_to_live_fallbacks_whose_acks_reach_w() {
        let topology = region_of_five();
        let (key, replicas, fallbacks) = key_with_fallbacks(&topology);
        assert_eq!((replicas.len(), fallbacks.len()), (3, 2));
        let mut node = Node::new(&topology, replicas[0], NodeConfig::default()).unwrap();
        let now = only_hear_from(&mut node, &fallbacks);
        assert!(!node.is_alive(replicas[1]) && !node.is_alive(replicas[2]));

        node.handle(now, incr(&key));
        let actions = drain(&mut node);
        let mut asked: Vec<(ReplicaId, ReplicaId, u64)> = actions
            .iter()
            .filter_map(|a| match a {
                Action::Send {
                    to,
                    msg: PeerMsg::HintedReplicate { op, owner, .. },
                } => Some((*to, *owner, *op)),
                _ => None,
            })
            .collect();
        asked.sort();
        let mut want = vec![(fallbacks[0], replicas[1]), (fallbacks[1], replicas[2])];
        want.sort();
        assert_eq!(
            asked.iter().map(|(f, o, _)| (*f, *o)).collect::<Vec<_>>(),
            want
        );
        assert!(
            !actions.iter().any(|a| matches!(
                a,
                Action::Send {
                    msg: PeerMsg::Replicate { .. },
                    ..
                }
            )),
            "nothing is sent to the suspected replicas"
        );
        assert!(replies(&actions).is_empty(), "one copy is not a quorum");

        let (fallback, _, op) = asked[0];
        node.handle(
            now + 2,
            Input::Peer {
                from: fallback,
                msg: PeerMsg::Ack { op, ok: true },
            },
        );
        let answers = replies(&drain(&mut node));
        assert_eq!(answers.len(), 1);
        let answer = answers[0].result.as_ref().expect("the write reaches W");
        assert_eq!((answer.replicas_acked, answer.replicas_needed), (2, 2));
        assert_eq!(node.stats().stand_ins_asked, 2);
    }

    #[test]
    fn without_sloppy_quorum_the_same_write_falls_short() {
        let topology = region_of_five();
        let (key, replicas, fallbacks) = key_with_fallbacks(&topology);
        let config = NodeConfig {
            sloppy_quorum: false,
            ..NodeConfig::default()
        };
        let mut node = Node::new(&topology, replicas[0], config).unwrap();
        let now = only_hear_from(&mut node, &fallbacks);
        node.handle(now, incr(&key));
        let actions = drain(&mut node);
        assert!(!actions.iter().any(|a| matches!(
            a,
            Action::Send {
                msg: PeerMsg::HintedReplicate { .. },
                ..
            }
        )));
        node.tick(now + 5_000);
        let answers = replies(&drain(&mut node));
        assert!(matches!(
            answers[0].result,
            Err(ErrorReply::QuorumNotReached {
                acked: 1,
                needed: 2
            })
        ));
    }

    #[test]
    fn a_replica_silent_for_half_the_write_timeout_gets_a_stand_in() {
        let topology = region_of_five();
        let (key, replicas, fallbacks) = key_with_fallbacks(&topology);
        let mut node = Node::new(&topology, replicas[0], NodeConfig::default()).unwrap();
        // Everybody talks: nobody is suspected, the copies go to the replicas.
        let everyone: Vec<ReplicaId> = replicas[1..].iter().chain(&fallbacks).copied().collect();
        let now = only_hear_from(&mut node, &everyone);
        node.handle(now, incr(&key));
        let first = drain(&mut node);
        assert_eq!(
            first
                .iter()
                .filter(|a| matches!(
                    a,
                    Action::Send {
                        msg: PeerMsg::Replicate { .. },
                        ..
                    }
                ))
                .count(),
            2
        );
        // Neither answers; after half the write timeout stand-ins are asked.
        node.tick(now + NodeConfig::default().write_timeout_ms / 2);
        let late = drain(&mut node);
        let owners: Vec<ReplicaId> = late
            .iter()
            .filter_map(|a| match a {
                Action::Send {
                    msg: PeerMsg::HintedReplicate { owner, .. },
                    ..
                } => Some(*owner),
                _ => None,
            })
            .collect();
        assert_eq!(owners.len(), 2, "{late:?}");
    }

    #[test]
    fn a_fallback_holds_the_write_hands_it_back_and_then_drops_it() {
        let topology = region_of_five();
        let (key, replicas, fallbacks) = key_with_fallbacks(&topology);
        let coordinator = Node::new(&topology, replicas[0], NodeConfig::default()).unwrap();
        let mut delta_node = coordinator;
        delta_node.tick(START_MS);
        delta_node.handle(START_MS, incr(&key));
        let delta = drain(&mut delta_node)
            .into_iter()
            .find_map(|a| match a {
                Action::Send {
                    msg: PeerMsg::Replicate { delta, .. },
                    ..
                } => Some(delta),
                _ => None,
            })
            .expect("the write is replicated");

        let mut fallback = Node::new(&topology, fallbacks[0], NodeConfig::default()).unwrap();
        let owner = replicas[1];
        let mut now = START_MS + 10;
        fallback.tick(now);
        drain(&mut fallback);
        fallback.handle(
            now,
            Input::Peer {
                from: replicas[0],
                msg: PeerMsg::HintedReplicate {
                    op: 9,
                    key: key.clone(),
                    delta: Delta::clone(&delta),
                    owner,
                },
            },
        );
        let acks = drain(&mut fallback);
        assert!(acks.contains(&Action::Send {
            to: replicas[0],
            msg: PeerMsg::Ack { op: 9, ok: true }
        }));
        assert_eq!(fallback.keyspace().counter(&key, now).unwrap(), Some(5));
        assert_eq!((fallback.hints_pending(), fallback.guests_held()), (1, 1));

        // The next hint round hands the whole state to the owner.
        now += NodeConfig::default().hint_retry_ms;
        fallback.tick(now);
        let handoff_op = drain(&mut fallback)
            .into_iter()
            .find_map(|a| match a {
                Action::Send {
                    to,
                    msg: PeerMsg::Handoff { op, key: k, .. },
                } if to == owner && k == key => Some(op),
                _ => None,
            })
            .expect("the key is handed to its owner");
        fallback.handle(
            now + 1,
            Input::Peer {
                from: owner,
                msg: PeerMsg::Ack {
                    op: handoff_op,
                    ok: true,
                },
            },
        );
        now += NodeConfig::default().hint_retry_ms;
        fallback.tick(now);
        assert_eq!(fallback.hints_pending(), 0);
        assert_eq!(fallback.guests_held(), 0);
        assert_eq!(
            fallback.keyspace().state(&key),
            None,
            "dropped once handed back"
        );
        assert_eq!(fallback.stats().guests_released, 1);
    }
}
