//! Busy polling: keeping a tokio runtime polling its sockets for a while
//! instead of sleeping in `epoll_wait` until the next packet, and the test
//! of whether the thread has a core to spare for it.
//!
//! On a VM, waking a sleeping process costs tens of microseconds, more than
//! a request's own work. A node that has just answered a batch (see
//! `net::pacing`), or a client that has just sent a request, usually hears
//! again within that time; polling meanwhile answers sooner and saves the
//! wake-up. It only pays when the thread has a core to itself: a spinning
//! thread that keeps another from running delays what it waits for. So
//! the spinning is gated on the kernel's scheduler statistics for the
//! thread (`/proc/thread-self/schedstat`): the time it spent runnable but
//! waiting for a CPU, against the time it ran. A thread that waited at
//! most [`WAIT_PER_RUN_MAX`] of its run time over the last [`WINDOW_MS`]
//! has a core to spare. The gate closes by itself on a busy machine: a
//! spinning thread that keeps another from running waits for the CPU in
//! turn, and the next window sees it. Where the kernel gives no statistics
//! the gate stays closed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::ThreadId;
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// How often the scheduler statistics are read.
pub(crate) const WINDOW_MS: u64 = 100;
/// Waiting for a CPU up to this share of the run time counts as having a
/// core to spare. Measured on a 2-core machine: a lone node serving one
/// client waited 0.03–0.04 of its run time; each node of three sharing the
/// machine with their client 0.33–0.95.
pub(crate) const WAIT_PER_RUN_MAX: f64 = 0.15;

/// Whether the calling thread has had a core to itself lately: it waited
/// for a CPU at most [`WAIT_PER_RUN_MAX`] of its run time over the last
/// [`WINDOW_MS`], by the kernel's scheduler statistics.
#[derive(Debug)]
pub(crate) struct CpuGate {
    /// Run and wait nanoseconds at the start of the window.
    last: (u64, u64),
    /// The thread those figures are of.
    thread: ThreadId,
    next_check_ms: u64,
    spare: bool,
}

impl CpuGate {
    /// A gate for the calling thread; `None` where the kernel does not
    /// give the statistics.
    pub(crate) fn new() -> Option<CpuGate> {
        Some(CpuGate {
            last: read_schedstat()?,
            thread: std::thread::current().id(),
            next_check_ms: 0,
            spare: false,
        })
    }

    /// Whether the calling thread has a core to spare, as of the last
    /// window that ended by `now_ms` (milliseconds on any clock that does
    /// not go back). Called from another thread than the window started
    /// on, it starts a new window, closed until it ends.
    pub(crate) fn spare(&mut self, now_ms: u64) -> bool {
        let thread = std::thread::current().id();
        let moved = thread != self.thread;
        if moved || now_ms >= self.next_check_ms {
            self.next_check_ms = now_ms.saturating_add(WINDOW_MS);
            let now = read_schedstat();
            // Another thread's figures say nothing of this one's.
            self.spare = !moved && now.is_some_and(|now| has_spare(self.last, now));
            if let Some(now) = now {
                self.last = now;
            }
            self.thread = thread;
        }
        self.spare
    }
}

/// A task that keeps the runtime polling for a while after each call of
/// [`Spin::after_batch`]; it stops with this handle.
#[derive(Debug)]
pub(crate) struct Spin {
    wake: Arc<Notify>,
    /// What the polling waits for that arrived ([`Spin::answered`]).
    answers: Arc<AtomicU64>,
    /// Spin rounds completed (read by the tests).
    #[cfg_attr(not(test), allow(dead_code))]
    rounds: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl Spin {
    /// Starts a spinning task on the current runtime that polls for `spin`
    /// after each call of [`Spin::after_batch`], whatever happens (its
    /// caller decides when polling pays).
    pub(crate) fn start(spin: Duration) -> Self {
        Spin::start_with(spin, false, false)
    }

    /// Like [`Spin::start`], but polling only while its thread has a core
    /// to spare ([`CpuGate`]; never where the kernel does not tell), and
    /// backing off where it does not shorten waits: a round in which
    /// nothing was [`Spin::answered`] (the answer takes longer than
    /// `spin`) makes it sit out the next 1, 2, 4 … up to [`SKIP_MAX`]
    /// calls (calls made while it polls count as one); a round in which
    /// something was ends that.
    pub(crate) fn start_gated(spin: Duration) -> Self {
        Spin::start_with(spin, true, true)
    }

    fn start_with(spin: Duration, gated: bool, backs_off: bool) -> Self {
        let wake = Arc::new(Notify::new());
        let answers = Arc::new(AtomicU64::new(0));
        let rounds = Arc::new(AtomicU64::new(0));
        let (notified, answered, done) = (wake.clone(), answers.clone(), rounds.clone());
        let task = tokio::spawn(async move {
            let epoch = Instant::now();
            let mut gate = if gated { CpuGate::new() } else { None };
            let mut backoff = Backoff::default();
            loop {
                notified.notified().await;
                if backoff.sit_out() {
                    continue;
                }
                let start = Instant::now();
                if gated {
                    let now_ms =
                        u64::try_from(start.duration_since(epoch).as_millis()).unwrap_or(u64::MAX);
                    if !gate.as_mut().is_some_and(|g| g.spare(now_ms)) {
                        continue;
                    }
                }
                let seen = answered.load(Ordering::Relaxed);
                let Some(until) = start.checked_add(spin) else {
                    continue;
                };
                // Each yield lets the runtime poll its sockets without
                // blocking, run what became ready, and come back.
                while Instant::now() < until {
                    tokio::task::yield_now().await;
                }
                if backs_off {
                    backoff.after_round(answered.load(Ordering::Relaxed) != seen);
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
        });
        Spin {
            wake,
            answers,
            rounds,
            task,
        }
    }

    /// Keeps the runtime awake for the spin time from now.
    pub(crate) fn after_batch(&self) {
        self.wake.notify_one();
    }

    /// Something the polling waits for arrived.
    pub(crate) fn answered(&self) {
        self.answers.fetch_add(1, Ordering::Relaxed);
    }
}

/// Most calls a spinner sits out after rounds in which nothing arrived.
pub(crate) const SKIP_MAX: u32 = 64;

/// How many calls a spinner sits out after fruitless rounds.
#[derive(Debug, Default)]
struct Backoff {
    /// Calls to sit out after the latest fruitless round (0: none yet).
    next: u32,
    /// Calls still to sit out.
    left: u32,
}

impl Backoff {
    /// Whether to sit out this call.
    fn sit_out(&mut self) -> bool {
        if self.left == 0 {
            return false;
        }
        self.left -= 1;
        true
    }

    /// After a round: `useful` if what the polling waited for arrived.
    fn after_round(&mut self, useful: bool) {
        if useful {
            self.next = 0;
        } else {
            self.next = (self.next * 2).clamp(1, SKIP_MAX);
            self.left = self.next;
        }
    }
}

impl Drop for Spin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Whether a thread had a core to spare over a window that started at
/// `before` and ended at `after`, each (run ns, wait ns).
pub(crate) fn has_spare(before: (u64, u64), after: (u64, u64)) -> bool {
    let run = after.0.saturating_sub(before.0);
    let wait = after.1.saturating_sub(before.1);
    // A thread that did not run at all was idle: the next burst finds the
    // CPU free.
    run == 0 || (wait as f64) <= WAIT_PER_RUN_MAX * run as f64
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
    fn a_thread_that_waits_for_the_cpu_has_no_core_to_spare() {
        let start = (1_000_000, 500_000);
        // Ran 100 ms, waited 2 ms: a core to spare.
        assert!(has_spare(start, (101_000_000, 2_500_000)));
        // Ran 100 ms, waited 16 ms: just over the bound.
        assert!(!has_spare(start, (101_000_000, 16_500_000)));
        // Ran 50 ms, waited 40 ms: sharing a busy machine.
        assert!(!has_spare(start, (51_000_000, 40_500_000)));
        // Did not run at all: idle, the CPU is free.
        assert!(has_spare(start, start));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn each_call_keeps_the_runtime_polling_for_the_spin_time() {
        const SPIN: Duration = Duration::from_micros(100);
        let spin = Spin::start(SPIN);
        tokio::task::yield_now().await;
        assert_eq!(spin.rounds.load(Ordering::Relaxed), 0, "idle until called");
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

    #[test]
    fn fruitless_rounds_sit_out_more_and_more_calls() {
        let mut backoff = Backoff::default();
        assert!(!backoff.sit_out());
        backoff.after_round(false);
        assert!(backoff.sit_out());
        assert!(!backoff.sit_out());
        backoff.after_round(false);
        assert!(backoff.sit_out() && backoff.sit_out());
        assert!(!backoff.sit_out());
        for _ in 0..10 {
            backoff.after_round(false);
        }
        let mut sat_out = 0;
        while backoff.sit_out() {
            sat_out += 1;
        }
        assert_eq!(sat_out, SKIP_MAX);
        // One useful round ends it.
        backoff.after_round(true);
        assert!(!backoff.sit_out());
        backoff.after_round(false);
        assert!(backoff.sit_out());
        assert!(!backoff.sit_out());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_spinner_whose_answers_do_not_come_sits_out_calls() {
        // A long spin, so that the answer below surely comes within it.
        const SPIN: Duration = Duration::from_millis(30);
        let spin = Spin::start_with(SPIN, false, true);
        let answers = spin.answers.clone();
        let rounds = |n| {
            let spin = &spin;
            async move {
                let done = async {
                    while spin.rounds.load(Ordering::Relaxed) < n {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                };
                tokio::time::timeout(Duration::from_secs(10), done)
                    .await
                    .unwrap_or_else(|_| panic!("no spin round {n}"));
            }
        };
        // Nothing arrives: the first round spins, the next call is sat out
        // (a round started by it would have ended within the sleep).
        spin.after_batch();
        rounds(1).await;
        spin.after_batch();
        tokio::time::sleep(SPIN * 3).await;
        assert_eq!(spin.rounds.load(Ordering::Relaxed), 1, "sat out");
        // The following call spins again; an answer during it ends the
        // backoff, so the call after spins too.
        spin.after_batch();
        let bump = answers.clone();
        tokio::spawn(async move {
            tokio::task::yield_now().await;
            bump.fetch_add(1, Ordering::Relaxed);
        });
        rounds(2).await;
        spin.after_batch();
        rounds(3).await;
    }

    #[test]
    fn a_gate_moved_to_another_thread_starts_closed() {
        let Some(mut gate) = CpuGate::new() else {
            return; // no scheduler statistics here
        };
        let _ = gate.spare(0);
        std::thread::scope(|s| {
            s.spawn(|| {
                assert!(!gate.spare(1_000), "a new window on a new thread");
                assert_eq!(gate.thread, std::thread::current().id());
            });
        });
    }
}
