//! Membership changes inside a region: a new ring, and the key ranges that
//! change owner streamed to their new owners.
//!
//! [`Node::set_topology`] swaps the node's placement for the ring of the new
//! topology (writes and reads go by it at once) and starts a *rebalance*:
//! one pass over the keys held finds those whose new preference list has
//! replicas that were not replicas before, and for each such key one old
//! replica — the node leaving the region if it held the key, else the old
//! coordinator — streams the key's whole state to the new replicas in
//! acknowledged batches (`PeerMsg::Transfer` / `TransferAck`), a bounded
//! number in flight per target, resent when unacknowledged. Keys whose
//! replicas did not change never move.
//!
//! Until every node of the old and new rings has said it finished sending
//! (`RebalanceDone`, repeated until acknowledged), the node keeps the old
//! ring: quorum reads then ask the union of both preference lists and wait
//! for all but `N − quorum` of them, so their replies hold a read quorum of
//! each ring and see every write acknowledged under either. Only then does
//! it drop the keys it no longer replicates (except those it still owes a
//! replica a hint for, dropped once delivered). A departing node that is
//! down cannot stream: once a node suspects it, it sends its own copy of
//! every key the departed node was to send and of which it is an old
//! replica, and stops waiting for the departed node. A sender that stays but is down when the change happens
//! leaves its keys to anti-entropy (digest comparison between replicas),
//! which repairs them by the new ring.
//!
//! No I/O and no clock here either: time comes in as `now_ms`.

use super::{Action, Node, Remote};
use crate::placement::Placement;
use crate::protocol::{PeerMsg, RebalanceStatus};
use crate::topology::{ReadConsistency, Topology};
use crdt_types::{Bytes, ReplicaId};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

/// Most keys in one transfer batch.
pub const TRANSFER_BATCH_KEYS_MAX: usize = 1_024;
/// Most encoded state bytes in one transfer batch (far below the peer
/// frame limit).
pub const TRANSFER_BATCH_BYTES_MAX: usize = 512 * 1024;
/// Batches in flight to one target at a time.
pub const TRANSFER_INFLIGHT_MAX: usize = 4;
/// How long a batch waits for its acknowledgement before it is resent.
pub const TRANSFER_RETRY_MS: u64 = 2_000;
/// How often an unacknowledged `RebalanceDone` is repeated.
pub const DONE_REPEAT_MS: u64 = 500;

/// Why a topology cannot replace the node's current one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopologyChangeError {
    /// The new topology has other regions (regions cannot be added or
    /// removed while the cluster runs).
    #[error("the regions changed ({old:?} became {new:?}); only nodes of a region may change")]
    RegionsChanged {
        /// The regions before.
        old: Vec<String>,
        /// The regions after.
        new: Vec<String>,
    },
    /// The replication factor changed.
    #[error("the replication factor changed from {old} to {new}")]
    ReplicationFactorChanged {
        /// Before.
        old: usize,
        /// After.
        new: usize,
    },
    /// The offered topology is an older version than the running one (a
    /// stale copy of the file).
    #[error("the topology is version {offered}, older than the running version {running}")]
    Older {
        /// The running topology's version.
        running: u64,
        /// The offered topology's version.
        offered: u64,
    },
    /// A node kept its id but changed its replica id.
    #[error("node {0} changed its replica id")]
    ReplicaChanged(String),
}

/// A batch sent and not yet acknowledged.
#[derive(Debug)]
struct Batch {
    to: ReplicaId,
    /// Part of a catch-up stream (see [`super::catchup`]), not of the change.
    catch_up: bool,
    keys: Vec<Bytes>,
    bytes: u64,
    sent_ms: u64,
}

/// The node's part of the current membership change.
#[derive(Debug, Default)]
pub(super) struct Rebalance {
    /// Fingerprint of the region's membership (0 before any change).
    epoch: u64,
    /// The ring before the change, kept until every node finished sending.
    previous: Option<Placement>,
    /// Keys still to send, per new owner.
    queues: BTreeMap<ReplicaId, VecDeque<(Bytes, u64)>>,
    /// Keys still to send to nodes catching up (after the change's keys).
    catch_up_queues: BTreeMap<ReplicaId, VecDeque<(Bytes, u64)>>,
    /// Keys streamed to nodes catching up, over the node's life.
    pub(super) catch_up_keys_sent: u64,
    in_flight: HashMap<u64, Batch>,
    next_batch: u64,
    keys_total: u64,
    bytes_total: u64,
    keys_sent: u64,
    bytes_sent: u64,
    batches_resent: u64,
    /// Nodes whose `RebalanceDone` for `epoch` arrived.
    done_heard: BTreeSet<ReplicaId>,
    /// Nodes that must finish sending before old keys are dropped.
    done_awaited: BTreeSet<ReplicaId>,
    /// Nodes that have not yet acknowledged this node's `RebalanceDone`.
    done_unacked: BTreeSet<ReplicaId>,
    done_due_ms: u64,
    keys_dropped: u64,
    /// This node is not in the new topology: it hands its keys over and stops.
    leaving: bool,
    /// Other nodes of the rings before the change that are not in the new
    /// one: each streams the keys it was chosen to send, unless it is down.
    departing: BTreeSet<ReplicaId>,
    /// Departing nodes found down, whose keys this node's part of the
    /// change now includes (see [`Node::take_over_from`]).
    taken_over: BTreeSet<ReplicaId>,
    /// Keys this node no longer replicates, kept past a change until the
    /// replicas it owes them to have them (see [`Node::release_if_unowned`]).
    pub(super) kept: std::collections::HashSet<Bytes>,
    /// A change is in progress (set until old keys are dropped).
    active: bool,
}

impl Rebalance {
    /// The state of a node that starts with `topology`: nothing to send. A
    /// node `joining` a running region waits, as in a change, until every
    /// other node finished streaming to it.
    pub(super) fn starting(
        topology: &Topology,
        region: &str,
        me: ReplicaId,
        joining: bool,
    ) -> Self {
        let mut r = Rebalance {
            epoch: epoch_of(topology, region),
            ..Rebalance::default()
        };
        if joining {
            let others: BTreeSet<ReplicaId> = topology
                .nodes_in(region)
                .unwrap_or(&[])
                .iter()
                .map(|n| n.replica)
                .filter(|r| *r != me)
                .collect();
            r.done_awaited = others.clone();
            r.done_unacked = others;
            r.active = true;
        }
        r
    }

    /// Whether the change's keys are all sent and acknowledged.
    fn sending_done(&self) -> bool {
        self.queues.values().all(VecDeque::is_empty) && self.in_flight.values().all(|b| b.catch_up)
    }

    /// Whether anything (the change's or a catch-up's) is queued or in flight.
    fn streaming(&self) -> bool {
        !self.in_flight.is_empty()
            || self
                .queues
                .values()
                .chain(self.catch_up_queues.values())
                .any(|q| !q.is_empty())
    }

    /// Queues keys for a peer catching up (see [`super::catchup`]),
    /// replacing what an earlier catch-up of that peer still had queued.
    pub(super) fn queue_catch_up(&mut self, to: ReplicaId, keys: Vec<(Bytes, u64)>) {
        self.catch_up_queues.insert(to, keys.into());
    }

    /// Whether no catch-up key is queued or in flight to `to`.
    pub(super) fn drained_for(&self, to: ReplicaId) -> bool {
        self.catch_up_queues.get(&to).is_none_or(VecDeque::is_empty)
            && self.in_flight.values().all(|b| !(b.catch_up && b.to == to))
    }
}

/// A fingerprint of `region`'s members in `topology`: the `epoch` a node
/// reports in its [`RebalanceStatus`] once it runs with that membership.
pub fn membership_epoch(topology: &Topology, region: &str) -> u64 {
    epoch_of(topology, region)
}

/// Which old replica streams a key whose preference list goes from `old`
/// to `new` in a change to `new_members`: the node leaving the region if
/// one held the key, else the old coordinator. `None` when the key gains
/// no replica.
fn sender_of(
    old: &[ReplicaId],
    new: &[ReplicaId],
    new_members: &BTreeSet<ReplicaId>,
) -> Option<ReplicaId> {
    if new.iter().all(|r| old.contains(r)) {
        return None;
    }
    old.iter()
        .copied()
        .find(|r| !new_members.contains(r))
        .or(old.first().copied())
}

/// Whether `node` replicates `key` by its current ring.
fn owned(node: &Node, key: &[u8]) -> bool {
    node.replicas(key).contains(&node.id)
}

fn epoch_of(topology: &Topology, region: &str) -> u64 {
    let mut ids: Vec<u32> = topology
        .nodes_in(region)
        .unwrap_or(&[])
        .iter()
        .map(|n| n.replica.0)
        .collect();
    ids.sort_unstable();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for id in ids {
        for b in id.to_le_bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h | 1
}

impl Node {
    /// Replaces the node's topology with `topology` (a node added to or
    /// removed from a region) and starts moving the keys that change owner.
    /// A node absent from `topology` is *leaving*: it serves nothing itself
    /// (requests are forwarded), hands every key it holds to the new
    /// owners, and reports it in [`Node::rebalance_status`]; stop it once
    /// `sending_done` is true.
    ///
    /// Regions and the replication factor cannot change; such a topology is
    /// refused and the node keeps its current one.
    pub fn set_topology(
        &mut self,
        now_ms: u64,
        topology: &Topology,
    ) -> Result<(), TopologyChangeError> {
        self.observe_time(now_ms);
        if topology.version() < self.topology_version {
            return Err(TopologyChangeError::Older {
                running: self.topology_version,
                offered: topology.version(),
            });
        }
        let old_regions: Vec<String> = self.placement.regions().map(str::to_owned).collect();
        let new_regions: Vec<String> = topology.regions().iter().map(|r| r.name.clone()).collect();
        if old_regions != new_regions {
            return Err(TopologyChangeError::RegionsChanged {
                old: old_regions,
                new: new_regions,
            });
        }
        if topology.replication_factor() != self.placement.replication_factor() {
            return Err(TopologyChangeError::ReplicationFactorChanged {
                old: self.placement.replication_factor(),
                new: topology.replication_factor(),
            });
        }
        for (_, n) in topology.nodes() {
            let known = self.placement.node(n.replica).map(|p| p.id.as_str());
            let same_id_elsewhere = self
                .placement
                .regions()
                .filter_map(|r| self.placement.ring(r))
                .flat_map(|r| r.nodes().iter())
                .any(|r| *r != n.replica && self.placement.node(*r).is_some_and(|p| p.id == n.id));
            if same_id_elsewhere || known.is_some_and(|id| id != n.id) {
                return Err(TopologyChangeError::ReplicaChanged(n.id.clone()));
            }
        }
        let epoch = epoch_of(topology, &self.region);
        self.topology_source = topology.source().into();
        self.topology_version = topology.version();
        let new_placement = Placement::new(topology);
        let old_placement = std::mem::replace(&mut self.placement, new_placement);
        let members = |p: &Placement| -> BTreeSet<ReplicaId> {
            p.ring(&self.region)
                .map(|r| r.nodes().iter().copied().collect())
                .unwrap_or_default()
        };
        let old_members = members(&old_placement);
        let new_members = members(&self.placement);
        // The members of the ring before an unfinished change too: one of
        // them may still be due to send keys (see below).
        let unfinished_members = match self.rebalance.previous.as_ref() {
            Some(p) if self.rebalance.active => members(p),
            _ => BTreeSet::new(),
        };
        // Heartbeats go to old and new members alike until the change
        // finishes: a leaving node that heard nobody would suspect its
        // targets and stop streaming to them, and a departing node that is
        // down must be seen to be (its keys are then sent by others).
        self.detector.set_peers(
            new_members
                .union(&old_members)
                .chain(unfinished_members.iter())
                .copied()
                .filter(|r| *r != self.id),
            now_ms,
        );
        self.has_peers = topology.nodes().count() > 1;
        if epoch == self.rebalance.epoch {
            return Ok(()); // the same membership again (other regions may have changed)
        }
        if old_members == new_members {
            self.rebalance.epoch = epoch;
            return Ok(());
        }
        // A change while another is unfinished compares against the ring
        // before the unfinished one: its owners may not have everything yet.
        let before = match self.rebalance.previous.take() {
            Some(p) if self.rebalance.active => p,
            _ => old_placement,
        };
        let leaving = !new_members.contains(&self.id);
        let mut queues: BTreeMap<ReplicaId, VecDeque<(Bytes, u64)>> = BTreeMap::new();
        let (mut keys_total, mut bytes_total) = (0u64, 0u64);
        {
            let region = self.region.as_str();
            let me = self.id;
            let (Some(old_ring), Some(new_ring)) =
                (before.ring(region), self.placement.ring(region))
            else {
                return Ok(());
            };
            let new_members = &new_members;
            self.keyspace.for_each_in_range(0..=u64::MAX, |key, state| {
                let old = old_ring.preference_list(key);
                let new = new_ring.preference_list(key);
                if sender_of(old, new, new_members) != Some(me) {
                    return;
                }
                let bytes = crdt_types::encode(state).len() as u64;
                for to in new.iter().copied().filter(|r| !old.contains(r) && *r != me) {
                    queues
                        .entry(to)
                        .or_default()
                        .push_back((Bytes::from(key), bytes));
                    keys_total += 1;
                    bytes_total += bytes;
                }
            });
        }
        // Writes this node coordinated under the old ring that some replica
        // has not acknowledged yet (pending, or waiting as hints) may be
        // missing from the sender's copy: this node sends those keys too.
        {
            let region = self.region.as_str();
            let me = self.id;
            let unsettled: BTreeSet<Bytes> = self
                .pending
                .values()
                .filter_map(|p| match p {
                    super::Pending::Write(w) if !w.waiting.is_empty() => Some(w.key.clone()),
                    _ => None,
                })
                .chain(self.hints.iter().map(|(_, k)| k.clone()))
                .collect();
            if let (Some(old_ring), Some(new_ring)) =
                (before.ring(region), self.placement.ring(region))
            {
                for key in unsettled {
                    let old = old_ring.preference_list(&key);
                    let new = new_ring.preference_list(&key);
                    let Some(state) = self.keyspace.state(&key) else {
                        continue;
                    };
                    let bytes = crdt_types::encode(&state).len() as u64;
                    for to in new.iter().copied().filter(|r| !old.contains(r) && *r != me) {
                        let queue = queues.entry(to).or_default();
                        if !queue.iter().any(|(k, _)| *k == key) {
                            queue.push_back((key.clone(), bytes));
                            keys_total += 1;
                            bytes_total += bytes;
                        }
                    }
                }
            }
        }
        let before_members = members(&before);
        let departing: BTreeSet<ReplicaId> = before_members
            .union(&old_members)
            .copied()
            .filter(|r| *r != self.id && !new_members.contains(r))
            .collect();
        // A leaving node waits for nobody: it only hands its keys over.
        let done_awaited: BTreeSet<ReplicaId> = if leaving {
            BTreeSet::new()
        } else {
            before_members
                .union(&old_members)
                .chain(new_members.iter())
                .copied()
                .filter(|r| *r != self.id)
                .collect()
        };
        let done_unacked = new_members
            .iter()
            .copied()
            .filter(|r| *r != self.id)
            .collect();
        tracing::info!(
            node = %self.id,
            keys_total,
            bytes_total,
            leaving,
            "membership changed; rebalancing"
        );
        self.catch_ups.forget_served();
        self.rebalance = Rebalance {
            epoch,
            previous: Some(before),
            queues,
            catch_up_queues: BTreeMap::new(),
            catch_up_keys_sent: self.rebalance.catch_up_keys_sent,
            in_flight: HashMap::new(),
            next_batch: self.rebalance.next_batch,
            keys_total,
            bytes_total,
            keys_sent: 0,
            bytes_sent: 0,
            batches_resent: 0,
            done_heard: BTreeSet::new(),
            done_awaited,
            done_unacked,
            done_due_ms: now_ms,
            keys_dropped: 0,
            leaving,
            departing,
            taken_over: BTreeSet::new(),
            kept: std::mem::take(&mut self.rebalance.kept),
            active: true,
        };
        self.take_over_from_departed(now_ms);
        self.pump_transfers(now_ms);
        Ok(())
    }

    /// Takes over the keys of every departing node that is down and has
    /// not said it finished sending (see [`Node::take_over_from`]).
    fn take_over_from_departed(&mut self, now_ms: u64) {
        let r = &self.rebalance;
        if !r.active {
            return;
        }
        let down: Vec<ReplicaId> = r
            .departing
            .iter()
            .copied()
            .filter(|d| !r.taken_over.contains(d) && !r.done_heard.contains(d))
            .filter(|d| !self.detector.alive(*d, now_ms))
            .collect();
        for dead in down {
            self.take_over_from(dead);
        }
    }

    /// A departing node that is down cannot stream the keys it was chosen
    /// to send: each other old replica of such a key (a leaving one too)
    /// sends its own copy to the new owners instead. Every write
    /// acknowledged by a quorum is in one of those copies, and a node sends
    /// its copy before it can finish the change and drop the key. The
    /// departed node is no longer waited for; should it be alive after all,
    /// its keys are sent more than once, which merging absorbs.
    fn take_over_from(&mut self, dead: ReplicaId) {
        self.rebalance.taken_over.insert(dead);
        self.rebalance.done_awaited.remove(&dead);
        let region = self.region.as_str();
        let me = self.id;
        let (Some(old_ring), Some(new_ring)) = (
            self.rebalance
                .previous
                .as_ref()
                .and_then(|p| p.ring(region)),
            self.placement.ring(region),
        ) else {
            return;
        };
        let new_members: BTreeSet<ReplicaId> = new_ring.nodes().iter().copied().collect();
        let queued: BTreeSet<(ReplicaId, Bytes)> = self
            .rebalance
            .queues
            .iter()
            .flat_map(|(to, q)| q.iter().map(move |(k, _)| (*to, k.clone())))
            .collect();
        let mut added: Vec<(ReplicaId, Bytes, u64)> = Vec::new();
        self.keyspace.for_each_in_range(0..=u64::MAX, |key, state| {
            let old = old_ring.preference_list(key);
            let new = new_ring.preference_list(key);
            if sender_of(old, new, &new_members) != Some(dead) {
                return;
            }
            // Every old replica sends its copy, not one chosen among them:
            // a write acknowledged by the dead node and one other may be in
            // no other copy, and an old replica that stops owning the key
            // drops it once the change finishes.
            if !old.contains(&me) {
                return;
            }
            let mut bytes = None;
            for to in new.iter().copied().filter(|r| !old.contains(r) && *r != me) {
                if queued.contains(&(to, Bytes::from(key))) {
                    continue;
                }
                let bytes = *bytes.get_or_insert_with(|| crdt_types::encode(state).len() as u64);
                added.push((to, Bytes::from(key), bytes));
            }
        });
        tracing::info!(
            node = %self.id,
            departed = %dead,
            keys = added.len(),
            "a departing node is down; sending its keys instead"
        );
        for (to, key, bytes) in added {
            self.rebalance
                .queues
                .entry(to)
                .or_default()
                .push_back((key, bytes));
            self.rebalance.keys_total += 1;
            self.rebalance.bytes_total += bytes;
        }
    }

    /// Progress of the current (or last) membership change.
    pub fn rebalance_status(&self) -> RebalanceStatus {
        let r = &self.rebalance;
        RebalanceStatus {
            epoch: r.epoch,
            keys_total: r.keys_total,
            keys_sent: r.keys_sent,
            bytes_total: r.bytes_total,
            bytes_sent: r.bytes_sent,
            batches_resent: r.batches_resent,
            sending_done: r.sending_done(),
            finished: !r.active,
            leaving: r.leaving,
            keys_dropped: r.keys_dropped,
        }
    }

    /// The key's replicas under the ring before an unfinished change, if
    /// they differ from the current ones (for quorum reads).
    pub(super) fn replicas_during_change(
        &self,
        key: &[u8],
        current: &[ReplicaId],
    ) -> Option<(Vec<ReplicaId>, usize)> {
        if !self.rebalance.active {
            return None;
        }
        let Some(previous) = self.rebalance.previous.as_ref() else {
            // Joining: this node may lack the key, so every other current
            // replica answers (all but one of them hold each old quorum).
            return (current.len() > 1).then(|| (current.to_vec(), current.len()));
        };
        let old = previous.preference_list(&self.region, key).ok()?;
        if old.iter().all(|r| current.contains(r)) {
            return None;
        }
        let mut union = current.to_vec();
        union.extend(old.iter().copied().filter(|r| !current.contains(r)));
        // Replies from all but `spare` of the union hold a read quorum of
        // both lists.
        let spare = |n: usize| n - ReadConsistency::Quorum.replies_needed(n);
        let needed = union.len() - spare(old.len()).min(spare(current.len()));
        Some((union, needed))
    }

    /// Whether this node replicates `key`, or a membership change is still
    /// moving keys (when it may hold keys it no longer replicates).
    pub(super) fn holds_or_moving(&self, key: &[u8]) -> bool {
        self.rebalance.active || self.replicas(key).contains(&self.id)
    }

    /// When [`Node::rebalance_tick`] has work to do.
    pub(super) fn rebalance_due_ms(&self) -> u64 {
        let r = &self.rebalance;
        if !r.active && !r.streaming() {
            return u64::MAX;
        }
        let retry = r
            .in_flight
            .values()
            .map(|b| b.sent_ms + TRANSFER_RETRY_MS)
            .min()
            .unwrap_or(u64::MAX);
        retry.min(r.done_due_ms)
    }

    /// Resends stale batches, sends more, repeats `RebalanceDone`.
    pub(super) fn rebalance_tick(&mut self, now_ms: u64) {
        if !self.rebalance.active && !self.rebalance.streaming() {
            return;
        }
        let stale: Vec<u64> = self
            .rebalance
            .in_flight
            .iter()
            .filter(|(_, b)| now_ms >= b.sent_ms + TRANSFER_RETRY_MS)
            .map(|(op, _)| *op)
            .collect();
        for op in stale {
            if let Some(batch) = self.rebalance.in_flight.remove(&op) {
                self.rebalance.batches_resent += 1;
                let queues = if batch.catch_up {
                    &mut self.rebalance.catch_up_queues
                } else {
                    &mut self.rebalance.queues
                };
                let queue = queues.entry(batch.to).or_default();
                // Back to the front, in order; sizes are re-measured on sending.
                for key in batch.keys.into_iter().rev() {
                    queue.push_front((key, 0));
                }
            }
        }
        self.take_over_from_departed(now_ms);
        self.pump_transfers(now_ms);
        if now_ms >= self.rebalance.done_due_ms {
            self.rebalance.done_due_ms = now_ms + DONE_REPEAT_MS;
            if self.rebalance.sending_done() {
                let epoch = self.rebalance.epoch;
                let to: Vec<ReplicaId> = self.rebalance.done_unacked.iter().copied().collect();
                for to in to {
                    self.actions.push_back(Action::Send {
                        to,
                        msg: PeerMsg::RebalanceDone { epoch },
                    });
                }
            }
        }
        self.maybe_finish();
    }

    /// Sends batches to every target with room in its window.
    pub(super) fn pump_transfers(&mut self, now_ms: u64) {
        let targets: BTreeSet<ReplicaId> = self
            .rebalance
            .queues
            .iter()
            .chain(self.rebalance.catch_up_queues.iter())
            .filter(|(_, q)| !q.is_empty())
            .map(|(to, _)| *to)
            .collect();
        for to in targets {
            if !self.is_alive(to) {
                continue; // waits for the target to come back
            }
            loop {
                let in_flight = self
                    .rebalance
                    .in_flight
                    .values()
                    .filter(|b| b.to == to)
                    .count();
                if in_flight >= TRANSFER_INFLIGHT_MAX {
                    break;
                }
                // The change's keys first, then a catch-up's.
                let r = &mut self.rebalance;
                let (queue, catch_up) = match r.queues.get_mut(&to) {
                    Some(q) if !q.is_empty() => (q, false),
                    _ => match r.catch_up_queues.get_mut(&to) {
                        Some(q) if !q.is_empty() => (q, true),
                        _ => break,
                    },
                };
                let mut keys = Vec::new();
                let mut states = Vec::new();
                let mut bytes = 0u64;
                while keys.len() < TRANSFER_BATCH_KEYS_MAX
                    && (bytes as usize) < TRANSFER_BATCH_BYTES_MAX
                {
                    let Some((key, _)) = queue.pop_front() else {
                        break;
                    };
                    let Some(state) = self.keyspace.state(&key) else {
                        continue; // gone (nothing was ever stored): nothing to move
                    };
                    bytes += crdt_types::encode(&state).len() as u64;
                    states.push((key.clone(), state));
                    keys.push(key);
                }
                if keys.is_empty() {
                    continue;
                }
                let op = self.rebalance.next_batch;
                self.rebalance.next_batch += 1;
                self.rebalance.in_flight.insert(
                    op,
                    Batch {
                        to,
                        catch_up,
                        keys,
                        bytes,
                        sent_ms: now_ms,
                    },
                );
                self.actions.push_back(Action::Send {
                    to,
                    msg: PeerMsg::Transfer {
                        op,
                        epoch: self.rebalance.epoch,
                        states,
                    },
                });
            }
        }
    }

    /// Takes in a batch of states streamed by a rebalance.
    pub(super) fn on_transfer(
        &mut self,
        now_ms: u64,
        from: ReplicaId,
        op: u64,
        states: Vec<(Bytes, crdt_types::Causal<crdt_types::Record>)>,
    ) {
        self.catch_up_heard(now_ms, from);
        let mut ok = true;
        for (key, state) in &states {
            ok &= self.apply_remote(now_ms, key, Remote::State(state));
        }
        self.actions.push_back(Action::Send {
            to: from,
            msg: PeerMsg::TransferAck { op, ok },
        });
    }

    pub(super) fn on_transfer_ack(&mut self, now_ms: u64, from: ReplicaId, op: u64, ok: bool) {
        let Some(batch) = self.rebalance.in_flight.get(&op) else {
            return; // a duplicate, or for a batch already resent
        };
        if batch.to != from {
            return;
        }
        if !ok {
            // Refused (clock skew): resent after the retry delay.
            return;
        }
        let Some(batch) = self.rebalance.in_flight.remove(&op) else {
            return;
        };
        if batch.catch_up {
            self.rebalance.catch_up_keys_sent += batch.keys.len() as u64;
        } else {
            self.rebalance.keys_sent += batch.keys.len() as u64;
            self.rebalance.bytes_sent += batch.bytes;
        }
        self.pump_transfers(now_ms);
        self.check_catch_up_served(from);
        if self.rebalance.sending_done() {
            self.rebalance.done_due_ms = now_ms;
        }
    }

    pub(super) fn on_rebalance_done(&mut self, from: ReplicaId, epoch: u64) {
        if epoch != self.rebalance.epoch {
            return; // not (yet) the same membership: the sender repeats it
        }
        self.rebalance.done_heard.insert(from);
        // The answer says whether this node is done too, so a node with
        // nothing to send (one that started with this membership) needs no
        // repetition of its own.
        let done = !self.rebalance.active || self.rebalance.sending_done();
        self.actions.push_back(Action::Send {
            to: from,
            msg: PeerMsg::RebalanceDoneAck { epoch, done },
        });
        self.maybe_finish();
    }

    pub(super) fn on_rebalance_done_ack(&mut self, from: ReplicaId, epoch: u64, done: bool) {
        if epoch == self.rebalance.epoch {
            self.rebalance.done_unacked.remove(&from);
            if done {
                self.rebalance.done_heard.insert(from);
            }
            self.maybe_finish();
        }
    }

    /// Once every node finished sending (and heard that this one did):
    /// forget the old ring and drop the keys this node no longer replicates.
    fn maybe_finish(&mut self) {
        let r = &self.rebalance;
        if !r.active
            || !r.sending_done()
            || !r.done_unacked.is_empty()
            || !r.done_awaited.is_subset(&r.done_heard)
        {
            return;
        }
        self.rebalance.active = false;
        self.rebalance.previous = None;
        let members = self.region_peers();
        let now_ms = self.now_ms;
        self.detector.set_peers(members, now_ms);
        let mut gone = Vec::new();
        if let Some(ring) = self.placement.ring(&self.region) {
            let me = self.id;
            self.keyspace.for_each_in_range(0..=u64::MAX, |key, _| {
                if !ring.preference_list(key).contains(&me) {
                    gone.push(Bytes::from(key));
                }
            });
        }
        if self.config.persist {
            // The log still holds these keys, and a restart writes under the
            // recorded writer id: keeping them (unserved, as garbage) is what
            // keeps that writer from minting their dots again.
            gone.clear();
        }
        // Keys held for a replica that was down stay until handed back, and
        // keys a replica still has to be handed stay until it has them (a
        // hint is sent from the key's state here): see
        // [`Node::release_if_unowned`].
        let owed = self.keys_owed();
        gone.retain(|key| !self.is_guest(key));
        let (owed, gone): (Vec<Bytes>, Vec<Bytes>) =
            gone.into_iter().partition(|key| owed.contains(key));
        // Kept keys from an earlier change that this node owns again, or
        // has forgotten since, are kept no more.
        let kept = std::mem::take(&mut self.rebalance.kept);
        self.rebalance.kept = kept
            .into_iter()
            .filter(|key| self.keyspace.state(key).is_some() && !owned(self, key))
            .chain(owed)
            .collect();
        for key in &gone {
            self.keyspace.forget(key);
        }
        if !gone.is_empty() || !self.rebalance.kept.is_empty() {
            // Forgotten keys forget which dots this writer minted for them:
            // later writes go under a writer id never used before (kept
            // keys too: they are forgotten once handed over, and this node
            // mints no dots for a key it does not replicate meanwhile).
            let life = self.config.incarnation
                ^ ((self.rebalance.epoch >> 32) as u32)
                ^ (self.rebalance.epoch as u32);
            let life = if life == 0 || life == self.config.incarnation {
                life ^ 0x5bd1_e995
            } else {
                life
            };
            self.config.incarnation = life;
            self.keyspace.set_writer(super::writer_id(self.id, life));
        }
        self.rebalance.keys_dropped = gone.len() as u64;
        tracing::info!(node = %self.id, keys_dropped = gone.len(), "rebalance finished");
    }

    /// Keys some replica has yet to be handed from this node: hints,
    /// handoffs in flight, writes still waiting for an acknowledgement.
    fn keys_owed(&self) -> std::collections::HashSet<Bytes> {
        self.hinted
            .iter()
            .map(|(_, k)| k.clone())
            .chain(self.handoffs.keys().map(|(_, k)| k.clone()))
            .chain(self.pending.values().filter_map(|p| match p {
                super::Pending::Write(w) if !w.waiting.is_empty() => Some(w.key.clone()),
                _ => None,
            }))
            .collect()
    }

    /// Forgets `key` once this node neither replicates it nor owes it to a
    /// replica any more (a key kept past a rebalance for its hints).
    pub(super) fn release_if_unowned(&mut self, key: &Bytes) {
        if self.rebalance.kept.is_empty()
            || self.rebalance.active
            || !self.rebalance.kept.contains(key)
        {
            return;
        }
        // Hints and handoffs go to members of the region.
        let owed = self.detector.peers().any(|r| {
            self.hinted.contains(&(r, key.clone())) || self.handoffs.contains_key(&(r, key.clone()))
        }) || self.pending.values().any(
            |p| matches!(p, super::Pending::Write(w) if !w.waiting.is_empty() && w.key == *key),
        );
        if owed {
            return;
        }
        self.rebalance.kept.remove(key);
        if !self.replicas(key).contains(&self.id) && !self.is_guest(key) {
            self.keyspace.forget(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::NodeConfig;

    fn region(version: u64, nodes: u32) -> Topology {
        let mut text = format!(
            "[cluster]\nname = \"t\"\nversion = {version}\nreplication_factor = 3\n\n[[region]]\nname = \"r\"\n"
        );
        for i in 1..=nodes {
            text.push_str(&format!(
                "\n[[region.node]]\nid = \"n{i}\"\nclient_addr = \"127.0.0.1:{}\"\npeer_addr = \"127.0.0.1:{}\"\n",
                9400 + i,
                9500 + i
            ));
        }
        Topology::parse(&text, "t.toml").unwrap()
    }

    #[test]
    fn an_older_topology_version_is_refused_and_changes_nothing() {
        let three = region(2, 3);
        let me = three.node("n1").unwrap().replica;
        let mut node = Node::new(&three, me, NodeConfig::default()).unwrap();
        let epoch = membership_epoch(&three, "r");

        let stale = region(1, 4);
        assert!(matches!(
            node.set_topology(1_000, &stale),
            Err(TopologyChangeError::Older {
                running: 2,
                offered: 1
            })
        ));
        assert_eq!(node.topology_source.as_ref(), three.source());
        assert_eq!(node.placement.ring("r").unwrap().nodes().len(), 3);

        // The same version (files without one are all version 0) and newer
        // ones are taken; after that the one before is older.
        node.set_topology(2_000, &region(2, 3)).unwrap();
        let four = region(3, 4);
        node.set_topology(3_000, &four).unwrap();
        assert_eq!(node.placement.ring("r").unwrap().nodes().len(), 4);
        assert_ne!(membership_epoch(&four, "r"), epoch);
        assert!(matches!(
            node.set_topology(4_000, &region(2, 3)),
            Err(TopologyChangeError::Older {
                running: 3,
                offered: 2
            })
        ));
    }
}
