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
//! Whether a core is to spare is read from the kernel's scheduler
//! statistics for the node's thread (`/proc/thread-self/schedstat`): the
//! time it spent runnable but waiting for a CPU, against the time it ran.
//! A node that waited less than [`WAIT_PER_RUN_MAX`] of its run time over
//! the last [`WINDOW_MS`] answers in batches of [`SMALL_BATCH`]; otherwise,
//! or where the statistics are not available, in batches of up to
//! [`LARGE_BATCH`]. A node with a data directory always takes large
//! batches: it syncs its log once per batch, and group commit matters more
//! there than overlapping with the client.
//!
//! With a core to spare the node also stays awake for [`SPIN`] from the
//! start of each batch, polling its sockets rather than sleeping in
//! `epoll_wait`: on a VM, waking a sleeping process costs tens of
//! microseconds, more than a request's own work, and the next request of a
//! busy client usually
//! comes within that time. The spinning stops by itself on a machine
//! without CPU to spare: a spinning thread that keeps another from
//! running waits for the CPU in turn, and the next window sees it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// How long the node's runtime keeps polling its sockets from the start of
/// a batch when it has CPU to spare, instead of sleeping until the next
/// packet once the batch is done.
pub(crate) const SPIN: Duration = Duration::from_micros(100);

/// Events per batch when the node has CPU to spare.
pub(crate) const SMALL_BATCH: usize = 4;
/// Events per batch otherwise.
pub(crate) const LARGE_BATCH: usize = 256;
/// How often the scheduler statistics are read.
pub(crate) const WINDOW_MS: u64 = 100;
/// Waiting for a CPU up to this share of the run time counts as having a
/// core to spare. Measured on a 2-core machine: a lone node serving one
/// client waited 0.03–0.04 of its run time; each node of three sharing the
/// machine with their client 0.33–0.95.
pub(crate) const WAIT_PER_RUN_MAX: f64 = 0.15;

/// The batch size in force, revised every [`WINDOW_MS`], and the spinning
/// that goes with a small one.
#[derive(Debug)]
pub(crate) struct Pacing {
    /// Run and wait nanoseconds at the start of the window; `None` when
    /// the statistics cannot be read (batches stay large).
    last: Option<(u64, u64)>,
    next_check_ms: u64,
    batch: usize,
    /// Keeps the runtime polling after a batch; only for adaptive pacing.
    spin: Option<Spin>,
}

impl Pacing {
    /// Pacing that adapts to the CPU when `adaptive` (it then starts its
    /// spinning task on the current runtime), large batches otherwise.
    pub(crate) fn new(adaptive: bool) -> Self {
        let last = if adaptive { read_schedstat() } else { None };
        Pacing {
            spin: last.map(|_| Spin::start()),
            last,
            next_check_ms: 0,
            batch: LARGE_BATCH,
        }
    }

    /// Events to take in for a batch starting now, rechecking the
    /// statistics when the window is over; with a core to spare, the
    /// runtime also keeps polling for [`SPIN`] from now.
    pub(crate) fn batch(&mut self, now_ms: u64) -> usize {
        if now_ms >= self.next_check_ms {
            self.next_check_ms = now_ms + WINDOW_MS;
            if let Some(before) = self.last {
                let now = read_schedstat();
                self.batch = now.map_or(LARGE_BATCH, |now| batch_for(before, now));
                self.last = now;
            }
        }
        if self.batch == SMALL_BATCH {
            if let Some(spin) = &self.spin {
                spin.after_batch();
            }
        }
        self.batch
    }
}

/// A task that keeps the runtime polling for [`SPIN`] after each call of
/// [`Spin::after_batch`]; it stops with this handle.
#[derive(Debug)]
pub(crate) struct Spin {
    wake: Arc<Notify>,
    /// Spin rounds completed (read by the tests).
    #[cfg_attr(not(test), allow(dead_code))]
    rounds: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl Spin {
    /// Starts the spinning task on the current runtime.
    pub(crate) fn start() -> Self {
        let wake = Arc::new(Notify::new());
        let rounds = Arc::new(AtomicU64::new(0));
        let (notified, done) = (wake.clone(), rounds.clone());
        let task = tokio::spawn(async move {
            loop {
                notified.notified().await;
                let until = Instant::now() + SPIN;
                // Each yield lets the runtime poll its sockets without
                // blocking, run what became ready, and come back.
                while Instant::now() < until {
                    tokio::task::yield_now().await;
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
        });
        Spin { wake, rounds, task }
    }

    /// Keeps the runtime awake for [`SPIN`] from now.
    pub(crate) fn after_batch(&self) {
        self.wake.notify_one();
    }
}

impl Drop for Spin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The batch size for a window that started at `before` and ended at
/// `after`, each (run ns, wait ns).
pub(crate) fn batch_for(before: (u64, u64), after: (u64, u64)) -> usize {
    let run = after.0.saturating_sub(before.0);
    let wait = after.1.saturating_sub(before.1);
    if run == 0 {
        // Idle: the next burst finds the CPU free.
        return SMALL_BATCH;
    }
    if (wait as f64) <= WAIT_PER_RUN_MAX * run as f64 {
        SMALL_BATCH
    } else {
        LARGE_BATCH
    }
}

/// Run and wait nanoseconds of the calling thread, if the kernel tells.
fn read_schedstat() -> Option<(u64, u64)> {
    parse_schedstat(&std::fs::read_to_string("/proc/thread-self/schedstat").ok()?)
}

/// Parses `schedstat`: run ns, wait ns, timeslices.
pub(crate) fn parse_schedstat(text: &str) -> Option<(u64, u64)> {
    let mut fields = text.split_ascii_whitespace();
    let run = fields.next()?.parse().ok()?;
    let wait = fields.next()?.parse().ok()?;
    Some((run, wait))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedstat_gives_run_and_wait_time() {
        assert_eq!(parse_schedstat("799504 1200 17\n"), Some((799_504, 1_200)));
        assert_eq!(parse_schedstat(""), None);
        assert_eq!(parse_schedstat("12 x 1"), None);
    }

    #[test]
    fn a_thread_that_waits_for_the_cpu_takes_large_batches() {
        let start = (1_000_000, 500_000);
        // Ran 100 ms, waited 2 ms: a core to spare.
        assert_eq!(batch_for(start, (101_000_000, 2_500_000)), SMALL_BATCH);
        // Ran 50 ms, waited 40 ms: sharing a busy machine.
        assert_eq!(batch_for(start, (51_000_000, 40_500_000)), LARGE_BATCH);
        // Did not run at all: idle, the CPU is free.
        assert_eq!(batch_for(start, start), SMALL_BATCH);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn each_batch_keeps_the_runtime_polling_for_the_spin_time() {
        let spin = Spin::start();
        tokio::task::yield_now().await;
        assert_eq!(spin.rounds.load(Ordering::Relaxed), 0, "idle until a batch");
        let start = Instant::now();
        spin.after_batch();
        // The sleep ends only once the runtime gets to its timers, after
        // the spinner has had its turns; it must have spun its full time.
        while spin.rounds.load(Ordering::Relaxed) == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert!(start.elapsed() >= SPIN);
        spin.after_batch();
        while spin.rounds.load(Ordering::Relaxed) == 1 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let task = spin.task.abort_handle();
        drop(spin);
        tokio::task::yield_now().await;
        assert!(task.is_finished(), "dropping the handle stops the task");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn pacing_reads_this_threads_statistics_where_the_kernel_has_them() {
        let mut fixed = Pacing::new(false);
        assert!(fixed.spin.is_none());
        assert_eq!(fixed.batch(1), LARGE_BATCH);
        let mut pacing = Pacing::new(true);
        let batch = pacing.batch(1);
        assert!(batch == SMALL_BATCH || batch == LARGE_BATCH);
        if std::path::Path::new("/proc/thread-self/schedstat").exists() {
            assert!(pacing.last.is_some());
            assert!(pacing.spin.is_some());
        } else {
            assert_eq!(batch, LARGE_BATCH);
        }
    }
}
