//! Catch-up of a node that starts: a node restarted without its data, or
//! with data that missed the writes made while it was down, asks every
//! other node of its region for the keys it replicates, and they stream
//! them in bulk instead of leaving the node to hints (a few hundred keys
//! per coordinator every half second) and digest anti-entropy (a slice of
//! the hash space every few seconds, a few thousand keys a round). It
//! costs one copy of the node's keys over the region's network per start
//! (a new cluster has nothing to send; a whole region restarted from its
//! data directories sends each key once to each of its replicas).
//!
//! The asking node sends `CatchUp { session }` to each peer of its region,
//! repeated until the peer answers `CatchUpDone` (a peer the failure
//! detector suspects is given up: anti-entropy covers what it would have
//! sent). A peer scans its keys once per session and queues, for the
//! membership-change stream ([`super::rebalance`]), each key whose
//! preference list holds the asking node and whose first other live
//! replica is itself: one sender per key while the region is up, and a
//! sender for every key when a replica is down. The stream is the same as
//! a rebalance's: acknowledged batches, a bounded number in flight, resent
//! when unacknowledged. `CatchUpDone` goes out when the last batch is
//! acknowledged.
//!
//! No I/O and no clock here either: time comes in as `now_ms`.

use super::{Action, Node};
use crate::protocol::PeerMsg;
use crdt_types::{Bytes, ReplicaId};
use std::collections::{BTreeMap, HashMap};

/// How often an unanswered `CatchUp` is repeated.
pub const CATCH_UP_REPEAT_MS: u64 = 2_000;
/// How long a suspected peer's stream may stay silent before the catch-up
/// stops waiting for it.
pub const CATCH_UP_GIVE_UP_MS: u64 = 10_000;

/// A catch-up this node asked for.
#[derive(Debug)]
pub(super) struct Asking {
    session: u64,
    /// Peers that have not said they finished, with when their stream
    /// last brought something.
    waiting: BTreeMap<ReplicaId, u64>,
    due_ms: u64,
    started_ms: u64,
}

/// A catch-up this node serves.
#[derive(Debug, Clone, Copy)]
pub(super) struct Serving {
    session: u64,
    finished: bool,
}

/// The node's catch-up, asked and served.
#[derive(Debug, Default)]
pub(super) struct CatchUps {
    /// Whether the start-up check ran.
    checked: bool,
    asking: Option<Asking>,
    serving: HashMap<ReplicaId, Serving>,
}

impl CatchUps {
    /// Forgets the catch-ups served (their queues went with a new
    /// membership); askers repeat and get a fresh scan.
    pub(super) fn forget_served(&mut self) {
        self.serving.clear();
    }
}

impl Node {
    /// Whether this node is still catching up after it started.
    pub fn catching_up(&self) -> bool {
        self.catch_ups.asking.is_some()
    }

    /// When [`Node::catch_up_tick`] has work to do.
    pub(super) fn catch_up_due_ms(&self) -> u64 {
        match &self.catch_ups.asking {
            _ if !self.catch_ups.checked => 0,
            Some(a) => a.due_ms,
            None => u64::MAX,
        }
    }

    /// Starts a catch-up on the node's first tick, and repeats
    /// unanswered requests.
    pub(super) fn catch_up_tick(&mut self, now_ms: u64) {
        if !self.catch_ups.checked {
            self.catch_ups.checked = true;
            let peers = self.region_peers();
            if !self.config.joining && !peers.is_empty() {
                let session =
                    (u64::from(self.config.incarnation) << 32) ^ now_ms ^ u64::from(self.id.0);
                tracing::info!(node = %self.id, peers = peers.len(), keys = self.keyspace.len(), "started; asking the region for its keys");
                self.catch_ups.asking = Some(Asking {
                    session,
                    waiting: peers.into_iter().map(|p| (p, now_ms)).collect(),
                    due_ms: now_ms,
                    started_ms: now_ms,
                });
            }
        }
        let Some(asking) = self.catch_ups.asking.as_mut() else {
            return;
        };
        if now_ms < asking.due_ms {
            return;
        }
        asking.due_ms = now_ms + CATCH_UP_REPEAT_MS;
        let session = asking.session;
        let waiting: Vec<(ReplicaId, u64)> =
            asking.waiting.iter().map(|(p, ms)| (*p, *ms)).collect();
        for (peer, heard_ms) in waiting {
            if !self.detector.alive(peer, now_ms)
                && now_ms.saturating_sub(heard_ms) >= CATCH_UP_GIVE_UP_MS
            {
                // Down, and its stream silent: anti-entropy repairs what it
                // would have sent. (A node busy taking in a stream may
                // suspect a sender that is only slow to be heard.)
                self.catch_up_finished_by(now_ms, peer);
                continue;
            }
            self.actions.push_back(Action::Send {
                to: peer,
                msg: PeerMsg::CatchUp { session },
            });
        }
    }

    fn catch_up_finished_by(&mut self, now_ms: u64, peer: ReplicaId) {
        let Some(asking) = self.catch_ups.asking.as_mut() else {
            return;
        };
        asking.waiting.remove(&peer);
        if asking.waiting.is_empty() {
            tracing::info!(
                node = %self.id,
                elapsed_ms = now_ms.saturating_sub(asking.started_ms),
                keys = self.keyspace.len(),
                "caught up with the region"
            );
            self.catch_ups.asking = None;
        }
    }

    /// A peer asks for the keys it replicates.
    pub(super) fn on_catch_up(&mut self, now_ms: u64, from: ReplicaId, session: u64) {
        let Some(ring) = self.placement.ring(&self.region) else {
            return;
        };
        if !ring.nodes().contains(&from) || from == self.id {
            return; // not a member of this region
        }
        if let Some(s) = self.catch_ups.serving.get(&from) {
            if s.session == session {
                if s.finished {
                    self.actions.push_back(Action::Send {
                        to: from,
                        msg: PeerMsg::CatchUpDone { session },
                    });
                }
                return; // in progress: the stream answers
            }
        }
        let me = self.id;
        let mut keys: Vec<(Bytes, u64)> = Vec::new();
        let mut bytes_total = 0u64;
        {
            let detector = &self.detector;
            self.keyspace.for_each_in_range(0..=u64::MAX, |key, state| {
                let list = ring.preference_list(key);
                if !list.contains(&from) {
                    return;
                }
                let sender = list
                    .iter()
                    .copied()
                    .filter(|r| *r != from)
                    .find(|r| *r == me || detector.alive(*r, now_ms));
                if sender == Some(me) {
                    let bytes = crdt_types::encode(state).len() as u64;
                    bytes_total += bytes;
                    keys.push((Bytes::from(key), bytes));
                }
            });
        }
        tracing::info!(node = %me, to = %from, keys = keys.len(), bytes_total, "catch-up: streaming keys");
        self.rebalance.queue_catch_up(from, keys);
        self.catch_ups.serving.insert(
            from,
            Serving {
                session,
                finished: false,
            },
        );
        self.pump_transfers(now_ms);
        self.check_catch_up_served(from);
    }

    /// Sends `CatchUpDone` once the stream to `to` is drained.
    pub(super) fn check_catch_up_served(&mut self, to: ReplicaId) {
        let Some(s) = self.catch_ups.serving.get_mut(&to) else {
            return;
        };
        if s.finished || !self.rebalance.drained_for(to) {
            return;
        }
        s.finished = true;
        let session = s.session;
        self.actions.push_back(Action::Send {
            to,
            msg: PeerMsg::CatchUpDone { session },
        });
    }

    /// A batch of a peer's stream arrived (it is not given up on meanwhile).
    pub(super) fn catch_up_heard(&mut self, now_ms: u64, from: ReplicaId) {
        if let Some(heard) = self
            .catch_ups
            .asking
            .as_mut()
            .and_then(|a| a.waiting.get_mut(&from))
        {
            *heard = now_ms;
        }
    }

    /// A peer finished streaming this node's keys.
    pub(super) fn on_catch_up_done(&mut self, now_ms: u64, from: ReplicaId, session: u64) {
        if self
            .catch_ups
            .asking
            .as_ref()
            .is_some_and(|a| a.session == session)
        {
            self.catch_up_finished_by(now_ms, from);
        }
    }
}
