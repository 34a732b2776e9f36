//! Failure detection inside a region: heartbeats and a phi-accrual
//! detector (Hayashibara et al.), in the manner of Akka and Cassandra.
//!
//! Every node sends a heartbeat to each other node of its region every
//! `heartbeat_interval_ms`. For each peer the detector keeps the last
//! inter-arrival times and computes phi, the (negative log10) likelihood
//! that a heartbeat this late still comes; a peer whose phi exceeds
//! `phi_threshold` is suspected. With the defaults (500 ms heartbeats,
//! threshold 8, at least 100 ms standard deviation) a silent peer is
//! suspected about 1.0–1.5 s after its last heartbeat; a higher threshold
//! trades slower detection for fewer false suspicions on a jittery network.
//!
//! Suspicion steers, it never decides correctness: forwarded requests go to
//! the first unsuspected replica, hints wait for a suspected replica instead
//! of being sent into the void, anti-entropy skips it, and `status` shows it.

use crdt_types::ReplicaId;
use std::collections::{BTreeMap, VecDeque};

/// Inter-arrival samples kept per peer.
const SAMPLES_MAX: usize = 64;

#[derive(Debug)]
struct Peer {
    last_ms: u64,
    intervals: VecDeque<u64>,
}

/// The detector for every peer of a region.
#[derive(Debug)]
pub(super) struct Detector {
    peers: BTreeMap<ReplicaId, Peer>,
    interval_ms: u64,
    min_std_ms: f64,
    threshold: f64,
}

impl Detector {
    /// A detector that assumes every peer was heard from at `now_ms`.
    pub(super) fn new(
        peers: impl IntoIterator<Item = ReplicaId>,
        now_ms: u64,
        interval_ms: u64,
        min_std_ms: u64,
        threshold: f64,
    ) -> Self {
        let peers = peers
            .into_iter()
            .map(|r| {
                (
                    r,
                    Peer {
                        last_ms: now_ms,
                        intervals: VecDeque::from([interval_ms]),
                    },
                )
            })
            .collect();
        Detector {
            peers,
            interval_ms,
            min_std_ms: min_std_ms as f64,
            threshold,
        }
    }

    /// Counts every peer as heard from at `now_ms` (when the node starts).
    pub(super) fn start(&mut self, now_ms: u64) {
        for p in self.peers.values_mut() {
            p.last_ms = now_ms;
        }
    }

    /// Records a heartbeat (or any message) from `peer`.
    pub(super) fn heard(&mut self, peer: ReplicaId, now_ms: u64) {
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        let gap = now_ms.saturating_sub(p.last_ms);
        if gap == 0 {
            return;
        }
        if p.intervals.len() >= SAMPLES_MAX {
            p.intervals.pop_front();
        }
        p.intervals.push_back(gap);
        p.last_ms = now_ms;
    }

    /// Phi of `peer` at `now_ms` (0 for an unknown peer).
    pub(super) fn phi(&self, peer: ReplicaId, now_ms: u64) -> f64 {
        let Some(p) = self.peers.get(&peer) else {
            return 0.0;
        };
        let n = p.intervals.len().max(1) as f64;
        let mean = p.intervals.iter().sum::<u64>() as f64 / n;
        let var = p
            .intervals
            .iter()
            .map(|&x| (x as f64 - mean).powi(2))
            .sum::<f64>()
            / n;
        let std = var.sqrt().max(self.min_std_ms);
        let t = now_ms.saturating_sub(p.last_ms) as f64;
        // Logistic approximation of the normal distribution's tail.
        let y = (t - mean) / std;
        let e = (-y * (1.5976 + 0.070566 * y * y)).exp();
        let p_later = if t > mean {
            e / (1.0 + e)
        } else {
            1.0 - 1.0 / (1.0 + e)
        };
        -p_later.max(1e-300).log10()
    }

    /// Whether `peer` is believed up.
    pub(super) fn alive(&self, peer: ReplicaId, now_ms: u64) -> bool {
        self.phi(peer, now_ms) < self.threshold
    }

    /// Makes `peers` the peers (after a membership change): new ones count
    /// as heard from at `now_ms`, departed ones are forgotten.
    pub(super) fn set_peers(&mut self, peers: impl IntoIterator<Item = ReplicaId>, now_ms: u64) {
        let interval_ms = self.interval_ms;
        let mut next = BTreeMap::new();
        for r in peers {
            let p = self.peers.remove(&r).unwrap_or(Peer {
                last_ms: now_ms,
                intervals: VecDeque::from([interval_ms]),
            });
            next.insert(r, p);
        }
        self.peers = next;
    }

    /// The peers heartbeats go to.
    pub(super) fn peers(&self) -> impl Iterator<Item = ReplicaId> + '_ {
        self.peers.keys().copied()
    }

    /// The heartbeat interval.
    pub(super) fn interval_ms(&self) -> u64 {
        self.interval_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_silent_peer_is_suspected_after_about_a_second_and_a_talking_one_never() {
        let (a, b) = (ReplicaId(1), ReplicaId(2));
        let mut d = Detector::new([a, b], 0, 500, 100, 8.0);
        let mut now = 0;
        while now < 10_000 {
            now += 500;
            d.heard(a, now);
            d.heard(b, now);
        }
        // b goes silent at 10 s; a keeps talking.
        let mut suspected_at = None;
        while now < 20_000 {
            now += 10;
            if now % 500 == 0 {
                d.heard(a, now);
            }
            assert!(d.alive(a, now), "a is suspected at {now}");
            if suspected_at.is_none() && !d.alive(b, now) {
                suspected_at = Some(now - 10_000);
            }
        }
        let after = suspected_at.expect("b is suspected");
        assert!(
            (900..=1_600).contains(&after),
            "suspected {after} ms after its last heartbeat"
        );
        d.heard(b, now);
        assert!(d.alive(b, now));
    }
}
