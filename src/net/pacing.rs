//! How many events the node task takes in before it answers them.
//!
//! Taking in everything that is queued and answering it in one pass makes
//! the fewest packets and wake-ups: the right choice when the node competes
//! for CPU (several nodes on one machine, or a busy one). But it serializes
//! a node and its clients: with 16 requests in flight from one client, the
//! node works through all 16 while the client waits, then the client works
//! through 16 answers while the node waits. When the node has a core to
//! itself, answering in small batches lets the client work on the first
//! answers while the node computes the next ones; on a 2-core machine that
//! took a single node from about 104k to 147k writes per second at 16 in
//! flight (`meridian bench --concurrency 16`, BENCHMARKS.md).
//!
//! Whether a core is to spare is the [`CpuGate`]'s answer for the node's
//! thread (scheduler statistics, see `busy_poll`): with one, the node
//! answers in batches of [`SMALL_BATCH`]; otherwise, or where the
//! statistics are not available, in batches of up to [`LARGE_BATCH`]. A
//! node with a data directory always takes large batches: it syncs its log
//! once per batch, and group commit matters more there than overlapping
//! with the client.
//!
//! With a core to spare the node also stays awake for [`SPIN`] from the
//! start of each batch, polling its sockets rather than sleeping in
//! `epoll_wait` ([`Spin`]): the next request of a busy client usually comes
//! within that time, sooner than a sleeping process wakes on a VM.

use std::time::Duration;

use crate::busy_poll::{CpuGate, Spin};

/// How long the node's runtime keeps polling its sockets from the start of
/// a batch when it has CPU to spare, instead of sleeping until the next
/// packet once the batch is done.
pub(crate) const SPIN: Duration = Duration::from_micros(100);

/// Events per batch when the node has CPU to spare.
pub(crate) const SMALL_BATCH: usize = 4;
/// Events per batch otherwise.
pub(crate) const LARGE_BATCH: usize = 256;

/// The batch size in force, revised with the gate, and the spinning
/// that goes with a small one.
#[derive(Debug)]
pub(crate) struct Pacing {
    /// Whether the node's thread has a core to spare; `None` when pacing
    /// is fixed or the statistics cannot be read (batches stay large).
    gate: Option<CpuGate>,
    /// Keeps the runtime polling after a batch; only for adaptive pacing.
    spin: Option<Spin>,
}

impl Pacing {
    /// Pacing that adapts to the CPU when `adaptive` (it then starts its
    /// spinning task on the current runtime), large batches otherwise.
    pub(crate) fn new(adaptive: bool) -> Self {
        let gate = if adaptive { CpuGate::new() } else { None };
        Pacing {
            spin: gate.as_ref().map(|_| Spin::start(SPIN)),
            gate,
        }
    }

    /// Events to take in for a batch starting now, rechecking the
    /// statistics when the window is over; with a core to spare, the
    /// runtime also keeps polling for [`SPIN`] from now.
    pub(crate) fn batch(&mut self, now_ms: u64) -> usize {
        if !self.gate.as_mut().is_some_and(|g| g.spare(now_ms)) {
            return LARGE_BATCH;
        }
        if let Some(spin) = &self.spin {
            spin.after_batch();
        }
        SMALL_BATCH
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn pacing_reads_this_threads_statistics_where_the_kernel_has_them() {
        let mut fixed = Pacing::new(false);
        assert!(fixed.spin.is_none());
        assert_eq!(fixed.batch(1), LARGE_BATCH);
        let mut pacing = Pacing::new(true);
        let batch = pacing.batch(1);
        assert!(batch == SMALL_BATCH || batch == LARGE_BATCH);
        if std::path::Path::new("/proc/thread-self/schedstat").exists() {
            assert!(pacing.gate.is_some());
            assert!(pacing.spin.is_some());
        } else {
            assert_eq!(batch, LARGE_BATCH);
        }
    }
}
