//! Replication between regions: delta-interval anti-entropy over one link
//! per remote region, and digest comparison to repair what deltas missed.
//!
//! Every write this node coordinates is queued, numbered, on the link to each
//! other region. Batches of queued deltas (joined per key) go to a gateway
//! node of that region, which applies each to its key's replicas there and
//! acknowledges the sequence number it has taken in; unacknowledged deltas
//! are sent again after a timeout, to the next gateway if the first stays
//! silent. Deltas that arrive from another region are never shipped on, so
//! no region is sent back what it sent (regions form a full mesh).
//!
//! The buffer per link is bounded. When it overflows the oldest deltas are
//! dropped, and the periodic digest comparison repairs what they carried:
//! each node compares, with one other node at a time (of its own region or
//! another), digests of the keys both hold in 4,096 hash buckets, and the
//! two exchange the states of the keys in the buckets that differ — traffic
//! that grows with the divergence, not with the data. Inside a region this
//! is the anti-entropy that repairs what hints and read repair missed (a
//! coordinator that crashed with undelivered hints, say).

use super::{Node, Pending, Remote};
use crate::protocol::PeerMsg;
use crdt_types::{Bytes, Causal, Delta, Record, ReplicaId};
use std::collections::{BTreeMap, VecDeque};

/// Hash buckets compared by digests.
pub const DIGEST_BUCKETS: usize = 4096;
/// Buckets compared per digest round: a round encodes and hashes only the
/// keys of a quarter of the hash space, so that a node holding many keys
/// does not stall its requests while it computes digests. Rounds come four
/// times as often as `digest_interval_ms`, so a whole comparison with one
/// peer still takes one interval. (Every round still hashes every key to
/// find its slice; finer slices made that scan dominate.)
pub const DIGEST_SLICE_BUCKETS: usize = 1024;

/// How many write timeouts a replica has to acknowledge its share of a
/// batch from another region before its keys get hints. Nobody waits on it
/// but the sending region's window, and hints carry whole states, so it is
/// patient.
pub const GEO_SPREAD_TIMEOUTS: u64 = 4;

/// Settled ranges kept above a gap per sending node (a sender keeps at most
/// `geo_window_batches` batches unacknowledged, so more only come from a
/// misbehaving peer).
pub const GEO_AHEAD_MAX: usize = 256;

/// Per sending node of another region: what it sent that is settled here.
#[derive(Debug, Default)]
pub(super) struct Received {
    /// The sender's life the numbers are of (see `PeerMsg::GeoBatch`).
    session: u64,
    /// Every sequence number below this is settled.
    prefix: u64,
    /// Settled ranges above the prefix, `first_seq -> next_seq`.
    ahead: BTreeMap<u64, u64>,
}

impl Received {
    /// Records `first..next` as settled; returns the new prefix. At most
    /// [`GEO_AHEAD_MAX`] ranges wait above a gap: past that the highest is
    /// forgotten (its sender resends it after the gap).
    fn settle(&mut self, first: u64, next: u64) -> u64 {
        if next > self.prefix {
            let e = self.ahead.entry(first.max(self.prefix)).or_insert(next);
            *e = (*e).max(next);
            while self.ahead.len() > GEO_AHEAD_MAX {
                self.ahead.pop_last();
            }
        }
        while let Some((&first, &next)) = self.ahead.first_key_value() {
            if first > self.prefix {
                break;
            }
            self.ahead.pop_first();
            self.prefix = self.prefix.max(next);
        }
        self.prefix
    }
}

/// A batch from another region being spread to the replicas here.
#[derive(Debug)]
pub(super) struct Receipt {
    from: ReplicaId,
    session: u64,
    first_seq: u64,
    next_seq: u64,
    /// Replicas that have neither acknowledged their share nor timed out.
    unsettled: usize,
}

/// One queued delta.
#[derive(Debug)]
struct Queued {
    seq: u64,
    key: Bytes,
    delta: Delta<Record>,
    bytes: usize,
    queued_ms: u64,
}

/// The link from this node to one remote region.
#[derive(Debug)]
pub(super) struct GeoLink {
    region: String,
    /// Which of the remote ring's nodes receives batches.
    gateway_rank: usize,
    next_seq: u64,
    /// Every seq below this was acknowledged.
    acked: u64,
    /// Every seq below this was sent at least once.
    sent: u64,
    /// When the wait for an acknowledgement started: the first batch sent
    /// with nothing outstanding, or the last acknowledgement progress.
    progress_ms: u64,
    silent_rounds: u32,
    buffer: VecDeque<Queued>,
    buffer_bytes: usize,
    dropped: u64,
    /// Queue-to-acknowledgement time of the last acknowledged delta
    /// (`None` until one was acknowledged).
    lag_ms_last: Option<u64>,
    /// When the last acknowledgement came.
    last_ack_ms: Option<u64>,
}

/// What an operator sees of one link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeoLinkStats {
    /// The remote region.
    pub region: String,
    /// Deltas queued and not yet acknowledged.
    pub backlog_deltas: usize,
    /// Their encoded size.
    pub backlog_bytes: usize,
    /// Age of the oldest unacknowledged delta (0 when none).
    pub oldest_unacked_ms: u64,
    /// Time from queueing to acknowledgement of the last acknowledged
    /// delta (`None` until one was acknowledged).
    pub lag_ms_last: Option<u64>,
    /// How long ago that acknowledgement came.
    pub last_acked_ago_ms: Option<u64>,
    /// Deltas dropped because the buffer was full (repaired by digests).
    pub dropped: u64,
}

impl GeoLink {
    pub(super) fn new(region: String, my_rank: usize) -> Self {
        GeoLink {
            region,
            gateway_rank: my_rank,
            next_seq: 0,
            acked: 0,
            sent: 0,
            progress_ms: 0,
            silent_rounds: 0,
            buffer: VecDeque::new(),
            buffer_bytes: 0,
            dropped: 0,
            lag_ms_last: None,
            last_ack_ms: None,
        }
    }
}

impl Node {
    /// Queues a delta this node coordinated for every other region.
    pub(super) fn queue_geo(&mut self, now_ms: u64, key: &Bytes, delta: &Delta<Record>) {
        if self.geo.is_empty() {
            return;
        }
        let bytes = delta.encoded_len() + key.len();
        let max = self.config.geo_buffer_max;
        for link in &mut self.geo {
            link.buffer.push_back(Queued {
                seq: link.next_seq,
                key: key.clone(),
                delta: delta.clone(),
                bytes,
                queued_ms: now_ms,
            });
            link.next_seq += 1;
            link.buffer_bytes += bytes;
            while link.buffer.len() > max {
                if let Some(q) = link.buffer.pop_front() {
                    link.buffer_bytes -= q.bytes;
                    link.dropped += 1;
                    link.acked = link.acked.max(q.seq + 1);
                    link.sent = link.sent.max(link.acked);
                    self.digest_due_ms = now_ms; // repair soon
                }
            }
        }
    }

    /// Sends what each link has to send: new deltas, or everything
    /// unacknowledged after a silence.
    pub(super) fn flush_geo(&mut self, now_ms: u64) {
        for i in 0..self.geo.len() {
            let link = &mut self.geo[i];
            if link.sent > link.acked
                && now_ms.saturating_sub(link.progress_ms) >= self.config.geo_retransmit_ms
            {
                // No answer: send everything again, from another gateway after two silences.
                link.silent_rounds += 1;
                if link.silent_rounds >= 2 {
                    link.gateway_rank += 1;
                    link.silent_rounds = 0;
                }
                link.sent = link.acked;
            }
            if link.sent >= link.next_seq {
                continue;
            }
            let window = self
                .config
                .geo_window_batches
                .saturating_mul(self.config.geo_batch_entries_max) as u64;
            if link.sent - link.acked >= window {
                continue; // wait for acknowledgements
            }
            let Some(ring) = self.placement.ring(&link.region) else {
                continue;
            };
            let nodes = ring.nodes();
            if nodes.is_empty() {
                continue;
            }
            let gateway = nodes[link.gateway_rank % nodes.len()];
            let first_seq = link.sent;
            let mut entries: BTreeMap<Bytes, Delta<Record>> = BTreeMap::new();
            let mut next_seq = first_seq;
            let mut bytes = 0;
            for q in link.buffer.iter().skip_while(|q| q.seq < first_seq) {
                if entries.len() >= self.config.geo_batch_entries_max
                    || bytes >= self.config.geo_batch_bytes_max
                {
                    break;
                }
                match entries.get_mut(&q.key) {
                    Some(d) => d.join(&q.delta),
                    None => {
                        entries.insert(q.key.clone(), q.delta.clone());
                    }
                }
                bytes += q.bytes;
                next_seq = q.seq + 1;
            }
            if next_seq == first_seq {
                continue;
            }
            if link.sent == link.acked {
                // The first batch awaiting an acknowledgement starts the
                // wait; later batches do not, or a steady flow of new ones
                // would keep a lost batch from ever being sent again.
                link.progress_ms = now_ms;
            }
            link.sent = next_seq;
            let entries = entries.into_iter().collect();
            let acked_seq = link.acked;
            self.actions.push_back(super::Action::Send {
                to: gateway,
                msg: PeerMsg::GeoBatch {
                    session: self.geo_session,
                    acked_seq,
                    first_seq,
                    next_seq,
                    entries,
                },
            });
        }
    }

    pub(super) fn on_geo_batch(
        &mut self,
        now_ms: u64,
        from: ReplicaId,
        session: u64,
        seqs: (u64, u64, u64),
        entries: Vec<(Bytes, Delta<Record>)>,
    ) {
        let (acked_seq, first_seq, next_seq) = seqs;
        let bound = self.config.geo_senders_max;
        if !self.geo_received.contains_key(&from) && self.geo_received.len() >= bound {
            self.geo_received.clear();
        }
        let received = self.geo_received.entry(from).or_default();
        if session != received.session {
            // The sender started anew and numbers from 0 again. (Any other
            // session than the last one's, not only a later one: a sender
            // whose clock was put back starts with an earlier session. A
            // late batch of a life that has ended costs its successor one
            // resend at most.)
            *received = Received {
                session,
                ..Received::default()
            };
        }
        // Everything below `acked_seq` was acknowledged by some gateway.
        received.settle(0, acked_seq);
        let receipt = self.next_receipt;
        self.next_receipt += 1;
        let shares = self.spread_deltas(now_ms, receipt, entries);
        self.geo_receipts.insert(
            receipt,
            Receipt {
                from,
                session,
                first_seq,
                next_seq,
                unsettled: shares,
            },
        );
        if shares == 0 {
            self.spread_settled(receipt);
        }
    }

    /// One replica's share of a batch from another region was acknowledged
    /// or timed out (its keys then have hints). Once every share is
    /// settled, the sender gets an acknowledgement of the gap-free prefix
    /// settled here: a slow region slows its senders instead of being
    /// flooded, and a batch after a lost one is applied (joins are
    /// idempotent) but not acknowledged until the gap is resent.
    pub(super) fn spread_settled(&mut self, receipt: u64) {
        let Some(r) = self.geo_receipts.get_mut(&receipt) else {
            return;
        };
        r.unsettled = r.unsettled.saturating_sub(1);
        if r.unsettled > 0 {
            return;
        }
        let Some(r) = self.geo_receipts.remove(&receipt) else {
            return;
        };
        let received = self.geo_received.entry(r.from).or_default();
        if received.session != r.session {
            return; // the sender started anew since: this ends nothing of its
        }
        let next_seq = received.settle(r.first_seq, r.next_seq);
        self.actions.push_back(super::Action::Send {
            to: r.from,
            msg: PeerMsg::GeoAck {
                session: r.session,
                next_seq,
            },
        });
    }

    pub(super) fn on_geo_ack(&mut self, now_ms: u64, from: ReplicaId, session: u64, next_seq: u64) {
        if session != self.geo_session {
            return; // for batches of an earlier life of this node
        }
        let Some(region) = self.placement.region_of(from) else {
            return;
        };
        let Some(link) = self.geo.iter_mut().find(|l| l.region == region) else {
            return;
        };
        if next_seq <= link.acked || next_seq > link.next_seq {
            return;
        }
        link.acked = next_seq;
        link.sent = link.sent.max(next_seq);
        link.silent_rounds = 0;
        link.progress_ms = now_ms;
        while link.buffer.front().is_some_and(|q| q.seq < next_seq) {
            if let Some(q) = link.buffer.pop_front() {
                link.buffer_bytes -= q.bytes;
                link.lag_ms_last = Some(now_ms.saturating_sub(q.queued_ms));
                link.last_ack_ms = Some(now_ms);
            }
        }
    }

    /// Applies deltas from another region to their keys' replicas here:
    /// this node keeps each (as a replica, or holding it for the replicas),
    /// and each other replica gets its share in one message, with hinted
    /// handoff of the keys if it does not acknowledge in time.
    fn spread_deltas(
        &mut self,
        now_ms: u64,
        receipt: u64,
        entries: Vec<(Bytes, Delta<Record>)>,
    ) -> usize {
        let mut shares: BTreeMap<ReplicaId, Vec<(Bytes, Delta<Record>)>> = BTreeMap::new();
        for (key, delta) in entries {
            if !self.apply_remote(now_ms, &key, Remote::Delta(&delta)) {
                continue;
            }
            for to in self.replicas(&key) {
                if to != self.id {
                    shares
                        .entry(to)
                        .or_default()
                        .push((key.clone(), delta.clone()));
                }
            }
        }
        let count = shares.len();
        let deadline_ms = now_ms + self.config.write_timeout_ms * GEO_SPREAD_TIMEOUTS;
        for (to, entries) in shares {
            let op = self.add_pending(Pending::Spread {
                to,
                keys: entries.iter().map(|(k, _)| k.clone()).collect(),
                deadline_ms,
                receipt,
            });
            self.actions.push_back(super::Action::Send {
                to,
                msg: PeerMsg::ReplicateBatch { op, entries },
            });
        }
        count
    }

    /// Joins a state brought by a digest comparison here and, if it taught
    /// this node anything, passes the result to the key's other replicas
    /// (one repair message each, no hint: their own digest comparisons
    /// catch whatever such a message misses). Under a steady write load
    /// most mismatches are deltas still in flight, which change nothing
    /// here and cost nothing more.
    fn spread_state(&mut self, now_ms: u64, key: Bytes, state: Causal<Record>) {
        let before = self.keyspace.state(&key);
        if !self.apply_remote(now_ms, &key, Remote::State(&state)) {
            return;
        }
        let Some(after) = self.keyspace.state(&key) else {
            return;
        };
        if before.as_ref() == Some(&after) {
            return;
        }
        let me = self.id;
        for to in self.replicas(&key).into_iter().filter(|r| *r != me) {
            self.actions.push_back(super::Action::Send {
                to,
                msg: PeerMsg::Repair {
                    key: key.clone(),
                    state: after.clone(),
                },
            });
        }
    }

    /// The link statistics, one per remote region.
    pub fn geo_stats(&self, now_ms: u64) -> Vec<GeoLinkStats> {
        self.geo
            .iter()
            .map(|l| GeoLinkStats {
                region: l.region.clone(),
                backlog_deltas: l.buffer.len(),
                backlog_bytes: l.buffer_bytes,
                oldest_unacked_ms: l
                    .buffer
                    .front()
                    .map_or(0, |q| now_ms.saturating_sub(q.queued_ms)),
                lag_ms_last: l.lag_ms_last,
                last_acked_ago_ms: l.last_ack_ms.map(|t| now_ms.saturating_sub(t)),
                dropped: l.dropped,
            })
            .collect()
    }

    /// Whether `key` is one this node and `peer` (of any region) both hold.
    fn shared_with(&self, peer: ReplicaId, key: &[u8]) -> bool {
        let Some(peer_region) = self.placement.region_of(peer) else {
            return false;
        };
        let mine = self
            .placement
            .preference_list(&self.region, key)
            .is_ok_and(|l| l.contains(&self.id));
        mine && self
            .placement
            .preference_list(peer_region, key)
            .is_ok_and(|l| l.contains(&peer))
    }

    /// States sent per digest answer: `digest_states_max` per whole
    /// comparison, shared by its rounds.
    fn digest_states_per_round(&self) -> usize {
        (self.config.digest_states_max / (DIGEST_BUCKETS / DIGEST_SLICE_BUCKETS)).max(1)
    }

    /// Starts a digest comparison with the next node of another region.
    pub(super) fn start_digest_round(&mut self) {
        // Every other node, of this region (anti-entropy between replicas)
        // and of the others (between regions), in turn.
        let me = self.id;
        let peers: Vec<ReplicaId> = self
            .placement
            .regions()
            .filter_map(|r| self.placement.ring(r))
            .flat_map(|r| r.nodes().iter().copied())
            .filter(|r| *r != me)
            .collect();
        if peers.is_empty() {
            return;
        }
        // One peer at a time, slice after slice of the hash space: a whole
        // comparison with each peer in turn.
        let slices = DIGEST_BUCKETS / DIGEST_SLICE_BUCKETS;
        let slice = self.digest_rotation % slices;
        let peer = peers[(self.digest_rotation / slices) % peers.len()];
        self.digest_rotation += 1;
        if !self.is_alive(peer) {
            return;
        }
        let first = slice * DIGEST_SLICE_BUCKETS;
        let buckets =
            self.keyspace
                .bucket_digests_in(DIGEST_BUCKETS, first, DIGEST_SLICE_BUCKETS, |k| {
                    self.shared_with(peer, k)
                });
        self.actions.push_back(super::Action::Send {
            to: peer,
            msg: PeerMsg::DigestRequest {
                op: 0,
                first: first as u32,
                buckets,
            },
        });
    }

    pub(super) fn on_digest_request(
        &mut self,
        now_ms: u64,
        from: ReplicaId,
        op: u64,
        first: u32,
        theirs: Vec<u64>,
    ) {
        let first = first as usize;
        if theirs.is_empty() || first.saturating_add(theirs.len()) > DIGEST_BUCKETS {
            self.stats.refused += 1;
            return;
        }
        let ours = self
            .keyspace
            .bucket_digests_in(DIGEST_BUCKETS, first, theirs.len(), |k| {
                self.shared_with(from, k)
            });
        let mismatched: Vec<u32> = (0..theirs.len())
            .filter(|&i| ours[i] != theirs[i])
            .map(|i| (first + i) as u32)
            .collect();
        if mismatched.is_empty() {
            return;
        }
        let states = self.keyspace.states_in_buckets(
            DIGEST_BUCKETS,
            &mismatched,
            self.digest_states_per_round(),
            self.config.geo_batch_bytes_max,
            now_ms,
            |k| self.shared_with(from, k),
        );
        self.stats.digest_buckets_repaired += mismatched.len() as u64;
        self.actions.push_back(super::Action::Send {
            to: from,
            msg: PeerMsg::DigestReply {
                op,
                mismatched,
                states,
            },
        });
    }

    pub(super) fn on_digest_reply(
        &mut self,
        now_ms: u64,
        from: ReplicaId,
        mismatched: Vec<u32>,
        states: Vec<(Bytes, Causal<Record>)>,
    ) {
        let mine = self.keyspace.states_in_buckets(
            DIGEST_BUCKETS,
            &mismatched,
            self.digest_states_per_round(),
            self.config.geo_batch_bytes_max,
            now_ms,
            |k| self.shared_with(from, k),
        );
        for (key, state) in states {
            self.spread_state(now_ms, key, state);
        }
        if !mine.is_empty() {
            self.actions.push_back(super::Action::Send {
                to: from,
                msg: PeerMsg::DigestRepair { states: mine },
            });
        }
    }

    pub(super) fn on_digest_repair(&mut self, now_ms: u64, states: Vec<(Bytes, Causal<Record>)>) {
        for (key, state) in states {
            self.spread_state(now_ms, key, state);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyspace::{Keyspace, KeyspaceConfig};
    use crate::node::{Action, NodeConfig};
    use crate::topology::Topology;

    const NOW: u64 = 1_800_000_000_000;

    /// Regions `a` and `b` of three nodes each (N = 3).
    fn topology() -> Topology {
        let mut text = String::from("[cluster]\nname = \"t\"\nreplication_factor = 3\n");
        for (r, region) in ["a", "b"].iter().enumerate() {
            text.push_str(&format!("\n[[region]]\nname = \"{region}\"\n"));
            for i in 1..=3 {
                text.push_str(&format!(
                    "\n[[region.node]]\nid = \"{region}-{i}\"\n\
                     client_addr = \"127.0.0.1:9{r}0{i}\"\npeer_addr = \"127.0.0.1:9{r}1{i}\"\n"
                ));
            }
        }
        Topology::parse(&text, "t.toml").unwrap()
    }

    fn node(id: &str, config: NodeConfig) -> Node {
        let topology = topology();
        let replica = topology.node(id).unwrap().replica;
        let mut node = Node::new(&topology, replica, config).unwrap();
        node.observe_time(NOW);
        node
    }

    fn replica(id: &str) -> ReplicaId {
        topology().node(id).unwrap().replica
    }

    /// `n` one-key deltas made by some other writer.
    fn deltas(n: usize) -> Vec<(Bytes, Delta<Record>)> {
        let mut ks = Keyspace::new(ReplicaId(7), KeyspaceConfig::default());
        (0..n)
            .map(|i| {
                let key = Bytes::from(format!("k{i}").into_bytes());
                let w = ks.set(&key, Bytes::from("v"), None, NOW).unwrap();
                (key, w.delta.unwrap())
            })
            .collect()
    }

    fn sends(node: &mut Node) -> Vec<(ReplicaId, PeerMsg)> {
        let mut out = Vec::new();
        while let Some(action) = node.poll_action() {
            if let Action::Send { to, msg } = action {
                out.push((to, msg));
            }
        }
        out
    }

    #[test]
    fn batches_settled_out_of_order_are_acknowledged_as_a_gap_free_prefix() {
        let mut r = Received::default();
        assert_eq!(r.settle(4, 8), 0, "a gap below");
        assert_eq!(r.settle(8, 12), 0);
        assert_eq!(r.settle(0, 4), 12, "the gap filled: all three");
        assert_eq!(r.settle(0, 6), 12, "a resent old batch changes nothing");
        assert_eq!(r.settle(20, 24), 12);
        assert_eq!(
            r.settle(0, 22),
            24,
            "an acknowledged prefix joins the range it reaches"
        );

        let mut r = Received::default();
        for i in 1..=(GEO_AHEAD_MAX as u64 + 10) {
            r.settle(i * 2, i * 2 + 1);
        }
        assert_eq!(
            r.ahead.len(),
            GEO_AHEAD_MAX,
            "ranges above a gap are bounded"
        );
    }

    #[test]
    fn a_link_sends_no_more_than_its_window_until_acknowledgements_come() {
        let config = NodeConfig {
            geo_batch_entries_max: 4,
            geo_window_batches: 2,
            ..NodeConfig::default()
        };
        let mut a = node("a-1", config);
        for (key, delta) in deltas(20) {
            a.queue_geo(NOW, &key, &delta);
        }
        let mut sent = Vec::new();
        for round in 0..10 {
            a.flush_geo(NOW + round);
            sent.extend(sends(&mut a));
        }
        let seqs: Vec<(u64, u64)> = sent
            .iter()
            .filter_map(|(_, m)| match m {
                PeerMsg::GeoBatch {
                    first_seq,
                    next_seq,
                    ..
                } => Some((*first_seq, *next_seq)),
                _ => None,
            })
            .collect();
        assert_eq!(seqs, vec![(0, 4), (4, 8)], "two batches of four, then wait");

        let gateway = sent[0].0;
        a.on_geo_ack(NOW + 10, gateway, a.geo_session, 4);
        a.flush_geo(NOW + 11);
        let more: Vec<(u64, u64)> = sends(&mut a)
            .iter()
            .filter_map(|(_, m)| match m {
                PeerMsg::GeoBatch {
                    first_seq,
                    next_seq,
                    ..
                } => Some((*first_seq, *next_seq)),
                _ => None,
            })
            .collect();
        assert_eq!(more, vec![(8, 12)], "one acknowledged batch frees one");
    }

    #[test]
    fn deltas_from_another_region_reach_each_replica_in_one_message() {
        let mut b1 = node("b-1", NodeConfig::default());
        b1.on_geo_batch(NOW, replica("a-1"), 1, (0, 0, 10), deltas(10));
        let sent = sends(&mut b1);
        let mut batches: Vec<(ReplicaId, u64, usize)> = sent
            .iter()
            .filter_map(|(to, m)| match m {
                PeerMsg::ReplicateBatch { op, entries } => Some((*to, *op, entries.len())),
                _ => None,
            })
            .collect();
        batches.sort();
        let mut others = [replica("b-2"), replica("b-3")];
        others.sort();
        assert_eq!(
            batches.iter().map(|b| (b.0, b.2)).collect::<Vec<_>>(),
            vec![(others[0], 10), (others[1], 10)]
        );
        assert!(
            !sent
                .iter()
                .any(|(_, m)| matches!(m, PeerMsg::GeoAck { .. })),
            "acknowledged before the replicas took the batch"
        );
        assert_eq!(b1.keyspace().len(), 10, "the gateway keeps them too");

        // One replica acknowledges; the other stays silent past the
        // deadline, and each of its keys gets a hint. Then the batch is
        // settled here and acknowledged to the sender.
        let (first, op, _) = batches[0];
        b1.on_ack(op, first, true);
        assert!(sends(&mut b1).is_empty(), "one share is still unsettled");
        b1.tick(NOW + b1.config.write_timeout_ms * GEO_SPREAD_TIMEOUTS + 1);
        let hinted: Vec<ReplicaId> = b1.hints.iter().map(|(to, _)| *to).collect();
        assert_eq!(hinted.len() + b1.hints_pending() - b1.hints.len(), 10);
        assert!(hinted.iter().all(|to| *to == batches[1].0));
        assert!(sends(&mut b1).iter().any(|(to, m)| *to == replica("a-1")
            && matches!(
                m,
                PeerMsg::GeoAck {
                    session: 1,
                    next_seq: 10
                }
            )));
    }

    /// Hands `node` a batch from `from` and has every replica acknowledge
    /// its share; returns the acknowledgements `from` gets.
    fn settle_batch(
        node: &mut Node,
        from: ReplicaId,
        session: u64,
        seqs: (u64, u64, u64),
        entries: Vec<(Bytes, Delta<Record>)>,
    ) -> Vec<(u64, u64)> {
        node.on_geo_batch(NOW, from, session, seqs, entries);
        let mut acks = Vec::new();
        let mut pending = sends(node);
        while !pending.is_empty() {
            let mut next = Vec::new();
            for (to, msg) in pending {
                match msg {
                    PeerMsg::ReplicateBatch { op, .. } => {
                        node.on_ack(op, to, true);
                        next.extend(sends(node));
                    }
                    PeerMsg::GeoAck { session, next_seq } if to == from => {
                        acks.push((session, next_seq))
                    }
                    _ => {}
                }
            }
            pending = next;
        }
        acks
    }

    #[test]
    fn a_sender_that_started_anew_is_acknowledged_by_its_new_numbers() {
        let mut b1 = node("b-1", NodeConfig::default());
        let a1 = replica("a-1");
        assert_eq!(
            settle_batch(&mut b1, a1, 100, (0, 0, 10), deltas(10)),
            [(100, 10)]
        );
        // a-1 restarted: its numbers start from 0 again, in a new session.
        assert_eq!(
            settle_batch(&mut b1, a1, 200, (0, 0, 4), deltas(4)),
            [(200, 4)]
        );
        assert_eq!(
            settle_batch(&mut b1, a1, 200, (4, 4, 6), deltas(2)),
            [(200, 6)]
        );
        // A batch of the earlier life arriving late is acknowledged in its
        // own session (which the new life ignores), and the new life's next
        // batch is acknowledged by its own numbers again.
        assert_eq!(
            settle_batch(&mut b1, a1, 100, (10, 10, 12), deltas(2)),
            [(100, 12)]
        );
        assert_eq!(
            settle_batch(&mut b1, a1, 200, (6, 6, 7), deltas(1)),
            [(200, 7)]
        );
        // A life whose clock was put back names an earlier session: it is
        // a new life all the same.
        assert_eq!(
            settle_batch(&mut b1, a1, 50, (0, 0, 3), deltas(3)),
            [(50, 3)]
        );

        // On the sending side, an acknowledgement for an earlier life's
        // batches acknowledges nothing of this one's.
        let mut a = node("a-1", NodeConfig::default());
        for (key, delta) in deltas(4) {
            a.queue_geo(NOW, &key, &delta);
        }
        a.flush_geo(NOW);
        let gateway = sends(&mut a)[0].0;
        a.on_geo_ack(NOW + 1, gateway, a.geo_session - 1, 4);
        assert_eq!(a.geo_stats(NOW + 1)[0].backlog_deltas, 4);
        a.on_geo_ack(NOW + 1, gateway, a.geo_session, 4);
        assert_eq!(a.geo_stats(NOW + 1)[0].backlog_deltas, 0);
    }

    #[test]
    fn a_lost_batch_is_sent_again_while_new_ones_keep_going_out() {
        let config = NodeConfig {
            geo_batch_entries_max: 1,
            geo_window_batches: 100_000,
            ..NodeConfig::default()
        };
        let mut a = node("a-1", config);
        let retransmit_ms = a.config.geo_retransmit_ms;
        let writes = deltas((retransmit_ms / 10 + 20) as usize);
        let mut first_seqs = Vec::new();
        // A write every 10 ms, none acknowledged (the first batch was
        // lost, so the other region acknowledges no gap-free prefix).
        for (i, (key, delta)) in writes.iter().enumerate() {
            let now = NOW + 10 * i as u64;
            a.queue_geo(now, key, delta);
            a.flush_geo(now);
            for (_, msg) in sends(&mut a) {
                if let PeerMsg::GeoBatch { first_seq, .. } = msg {
                    first_seqs.push((now - NOW, first_seq));
                }
            }
        }
        let resent: Vec<u64> = first_seqs
            .iter()
            .filter(|(_, seq)| *seq == 0)
            .map(|(at, _)| *at)
            .collect();
        assert_eq!(resent.len(), 2, "sent, then sent again: {resent:?}");
        assert!(
            resent[1] >= retransmit_ms && resent[1] <= retransmit_ms + 10,
            "{resent:?}"
        );
    }
}
