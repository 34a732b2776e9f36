//! CPU pinning: keeping a process on chosen CPUs (Linux only).
//!
//! Several nodes on one machine (a `cluster up` lab, or a host that runs
//! more than one node) share its cores. Left to the scheduler, a node that
//! wakes often runs on whichever core is free, and its keyspace and
//! connection state follow it from cache to cache. Pinned, each node keeps
//! its core's caches warm: a 3-node region sharing 2 cores with its client
//! wrote 9–11 % faster with 64 requests in flight and 19–29 % with 16 when
//! the nodes and the client were pinned (BENCHMARKS.md, "Pinned
//! processes"). Like Redis's `server_cpulist`, it is off unless asked for.
//!
//! A CPU list is written as the kernel writes `Cpus_allowed_list`: CPU
//! numbers and ranges separated by commas (`0`, `0,2`, `1-3,6`).

use std::fmt;
use std::str::FromStr;

/// The highest CPU number a list may name, plus one (the kernel's
/// `CPU_SETSIZE`).
pub const CPUS_MAX: usize = 1024;

/// A non-empty set of CPU numbers, in increasing order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuList(Vec<usize>);

/// What can go wrong when reading a CPU list or pinning to it.
#[derive(Debug, thiserror::Error)]
pub enum AffinityError {
    /// The list does not parse.
    #[error("bad CPU list {text:?}: {reason} (write CPUs and ranges like 0,2-3)")]
    Bad {
        /// The list as given.
        text: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The list names CPUs this process may not run on.
    #[error("{} not available to this process (it may run on CPUs {allowed})", cpus_are(.missing))]
    NotAllowed {
        /// The CPUs of the list that are not available.
        missing: CpuList,
        /// The CPUs this process may run on.
        allowed: CpuList,
    },
    /// Pinning is implemented for Linux only.
    #[error("CPU pinning is only supported on Linux")]
    Unsupported,
    /// The kernel refused to give or set the CPU affinity.
    #[error("CPU affinity: {0}")]
    Os(#[from] std::io::Error),
}

/// "CPU 3 is" or "CPUs 3,5 are".
fn cpus_are(cpus: &CpuList) -> String {
    match cpus.0.len() {
        1 => format!("CPU {cpus} is"),
        _ => format!("CPUs {cpus} are"),
    }
}

impl CpuList {
    /// The list of these CPUs (sorted, duplicates dropped); `None` when
    /// empty or when one is not below [`CPUS_MAX`].
    pub fn new(cpus: impl IntoIterator<Item = usize>) -> Option<CpuList> {
        let mut cpus: Vec<usize> = cpus.into_iter().collect();
        cpus.sort_unstable();
        cpus.dedup();
        (!cpus.is_empty() && cpus.iter().all(|&c| c < CPUS_MAX)).then_some(CpuList(cpus))
    }

    /// The CPU numbers, in increasing order.
    pub fn cpus(&self) -> &[usize] {
        &self.0
    }

    /// The `i`-th CPU of the list, counting round: how `cluster up
    /// --pin-cpus` spreads its nodes.
    pub fn nth_round(&self, i: usize) -> usize {
        self.0[i % self.0.len()]
    }
}

impl FromStr for CpuList {
    type Err = AffinityError;

    fn from_str(text: &str) -> Result<CpuList, AffinityError> {
        let bad = |reason: String| AffinityError::Bad {
            text: text.to_owned(),
            reason,
        };
        let number = |s: &str| -> Result<usize, AffinityError> {
            let n: usize = s
                .trim()
                .parse()
                .map_err(|_| bad(format!("{:?} is not a CPU number", s.trim())))?;
            if n >= CPUS_MAX {
                return Err(bad(format!("CPU {n} is not below {CPUS_MAX}")));
            }
            Ok(n)
        };
        let mut cpus = Vec::new();
        for part in text.split(',') {
            match part.split_once('-') {
                Some((first, last)) => {
                    let (first, last) = (number(first)?, number(last)?);
                    if first > last {
                        return Err(bad(format!("the range {first}-{last} is backwards")));
                    }
                    cpus.extend(first..=last);
                }
                None => cpus.push(number(part)?),
            }
        }
        CpuList::new(cpus).ok_or_else(|| bad("no CPU".into()))
    }
}

impl fmt::Display for CpuList {
    /// Ranges where the CPUs are consecutive, as the kernel writes them:
    /// `0-3,6`, `0-1`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut i = 0;
        while i < self.0.len() {
            let mut j = i;
            while j + 1 < self.0.len() && self.0[j + 1] == self.0[j] + 1 {
                j += 1;
            }
            if i > 0 {
                f.write_str(",")?;
            }
            if i == j {
                write!(f, "{}", self.0[i])?;
            } else {
                write!(f, "{}-{}", self.0[i], self.0[j])?;
            }
            i = j + 1;
        }
        Ok(())
    }
}

/// The CPUs the calling thread may run on.
#[cfg(target_os = "linux")]
pub fn allowed_cpus() -> Result<CpuList, AffinityError> {
    // SAFETY: `set` is a plain bit set the kernel fills in; its size is
    // passed along.
    let set = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        set
    };
    // SAFETY: `CPU_ISSET` reads a bit below `CPU_SETSIZE` of an initialized set.
    let cpus = (0..CPUS_MAX).filter(|&c| unsafe { libc::CPU_ISSET(c, &set) });
    CpuList::new(cpus).ok_or_else(|| std::io::Error::other("the kernel gave no CPU").into())
}

/// The CPUs the calling thread may run on.
#[cfg(not(target_os = "linux"))]
pub fn allowed_cpus() -> Result<CpuList, AffinityError> {
    Err(AffinityError::Unsupported)
}

/// Whether the calling thread may run on every CPU of `cpus`; if not,
/// [`AffinityError::NotAllowed`] names the ones it may.
pub fn check_allowed(cpus: &CpuList) -> Result<(), AffinityError> {
    let allowed = allowed_cpus()?;
    let missing = cpus.0.iter().copied().filter(|c| !allowed.0.contains(c));
    match CpuList::new(missing) {
        Some(missing) => Err(AffinityError::NotAllowed { missing, allowed }),
        None => Ok(()),
    }
}

/// Keeps the calling thread, and every thread it starts from now on, on
/// `cpus`. Call it before starting a runtime, so its threads inherit it.
/// CPUs not available to the thread are refused with
/// [`AffinityError::NotAllowed`], naming the ones that are.
#[cfg(target_os = "linux")]
pub fn pin_current_thread(cpus: &CpuList) -> Result<(), AffinityError> {
    check_allowed(cpus)?;
    // SAFETY: as in `allowed_cpus`; every CPU is below `CPU_SETSIZE`.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &cpu in &cpus.0 {
            libc::CPU_SET(cpu, &mut set);
        }
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error().into());
        }
    }
    Ok(())
}

/// Keeps the calling thread on `cpus` (Linux only).
#[cfg(not(target_os = "linux"))]
pub fn pin_current_thread(_cpus: &CpuList) -> Result<(), AffinityError> {
    Err(AffinityError::Unsupported)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(text: &str) -> Vec<usize> {
        text.parse::<CpuList>().unwrap().cpus().to_vec()
    }

    fn refused(text: &str) -> String {
        text.parse::<CpuList>().unwrap_err().to_string()
    }

    #[test]
    fn cpu_lists_read_numbers_and_ranges_and_print_them_back() {
        assert_eq!(list("0"), [0]);
        assert_eq!(list("3,1,1"), [1, 3]);
        assert_eq!(list("1-3,6"), [1, 2, 3, 6]);
        assert_eq!(list(" 2 - 2 "), [2]);
        for text in ["0", "0-1", "0,2", "0-2", "0-2,4,6-9", "1023"] {
            assert_eq!(text.parse::<CpuList>().unwrap().to_string(), text);
        }
        assert_eq!(CpuList::new([5, 0, 1, 2]).unwrap().to_string(), "0-2,5");
    }

    #[test]
    fn bad_cpu_lists_are_refused_with_the_reason() {
        assert!(refused("").contains("\"\" is not a CPU number"));
        assert!(refused("0,,1").contains("is not a CPU number"));
        assert!(refused("a").contains("\"a\" is not a CPU number"));
        assert!(refused("-1").contains("is not a CPU number"));
        assert!(refused("3-1").contains("the range 3-1 is backwards"));
        assert!(refused("1024").contains("CPU 1024 is not below 1024"));
        assert!(refused("0-99999").contains("is not below"));
        assert_eq!(CpuList::new([]), None);
        assert_eq!(CpuList::new([CPUS_MAX]), None);
    }

    #[test]
    fn nodes_spread_round_the_list() {
        let cpus: CpuList = "0-1".parse().unwrap();
        let spread: Vec<usize> = (0..5).map(|i| cpus.nth_round(i)).collect();
        assert_eq!(spread, [0, 1, 0, 1, 0]);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_pinned_thread_and_the_threads_it_starts_run_on_its_cpus_only() {
        let allowed = allowed_cpus().unwrap();
        let first = CpuList::new([allowed.cpus()[0]]).unwrap();
        // A thread of its own, so the test's thread keeps its CPUs.
        let (own, child) = std::thread::spawn(move || {
            pin_current_thread(&first).unwrap();
            let child = std::thread::spawn(|| allowed_cpus().unwrap())
                .join()
                .unwrap();
            (allowed_cpus().unwrap(), child)
        })
        .join()
        .unwrap();
        assert_eq!(own.cpus(), [allowed.cpus()[0]]);
        assert_eq!(child.cpus(), [allowed.cpus()[0]]);

        // A CPU this process may not use is refused, naming the ones it may.
        let absent = (0..CPUS_MAX).find(|c| !allowed.cpus().contains(c)).unwrap();
        let err = std::thread::spawn(move || {
            pin_current_thread(&CpuList::new([absent]).unwrap()).unwrap_err()
        })
        .join()
        .unwrap();
        assert!(matches!(err, AffinityError::NotAllowed { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.contains(&format!("CPU {absent} is not available")),
            "{text}"
        );
        assert!(text.contains(&allowed.to_string()), "{text}");
    }
}
