//! Processes by id: send a signal, tell whether one is alive, read its
//! command line, and describe how one ended.
//!
//! `cluster down` and `cluster kill` signal processes that another
//! `meridian` started, found through `cluster.json`. Before signalling, they
//! check (on Linux, through `/proc`) that the process still runs the command
//! recorded for it, so a recycled process id is never signalled. This module
//! never signals a process id of 0 or a negative one (which would reach a
//! whole process group).

use std::io;
use std::process::ExitStatus;

/// A signal this crate sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM: stop cleanly.
    Term,
    /// SIGKILL: stop now.
    Kill,
}

/// Takes an exclusive advisory lock (`flock`) on `file` without waiting:
/// `Ok(false)` when another open file holds it. The lock lasts until the
/// file is closed (at the latest when the process exits); processes this
/// one starts do not inherit it (Rust opens files close-on-exec).
#[cfg(unix)]
pub fn try_lock(file: &std::fs::File) -> io::Result<bool> {
    use std::os::fd::AsRawFd;
    // SAFETY: flock(2) on a descriptor `file` owns for the whole call.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(e)
    }
}

/// Takes an exclusive lock on `file` (always granted where there is no
/// `flock`).
#[cfg(not(unix))]
pub fn try_lock(_file: &std::fs::File) -> io::Result<bool> {
    Ok(true)
}

/// Sends `signal` to process `pid`.
#[cfg(unix)]
pub fn send(pid: u32, signal: Signal) -> io::Result<()> {
    let pid = checked_pid(pid)?;
    let signal = match signal {
        Signal::Term => libc::SIGTERM,
        Signal::Kill => libc::SIGKILL,
    };
    // SAFETY: kill(2) has no memory-safety preconditions; pid is positive.
    if unsafe { libc::kill(pid, signal) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sends `signal` to process `pid`.
#[cfg(not(unix))]
pub fn send(_pid: u32, _signal: Signal) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "signals need a Unix system",
    ))
}

/// Whether process `pid` exists and has not exited (a zombie — exited but
/// not yet reaped by its parent — counts as exited on Linux).
#[cfg(unix)]
pub fn is_alive(pid: u32) -> bool {
    let Ok(raw) = checked_pid(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists.
    let exists = unsafe { libc::kill(raw, 0) } == 0
        || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    exists && !is_zombie(pid)
}

/// Whether process `pid` exists and has not exited.
#[cfg(not(unix))]
pub fn is_alive(_pid: u32) -> bool {
    false
}

/// When process `pid` started, in clock ticks since boot, where `/proc`
/// tells. With the id it names one process for good: an id recycled for a
/// new process comes with another start time.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After `pid (comm)`, the state is field 3 and the start time field 22.
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether this system shows processes in `/proc` (Linux).
pub fn has_proc() -> bool {
    std::path::Path::new("/proc/self/stat").exists()
}

/// Whether the process that had id `pid` and started at `started` (as read
/// by [`start_time`] earlier) is still alive: false once it exited, also if
/// its id was given to another process since.
pub fn is_still_alive(pid: u32, started: Option<u64>) -> bool {
    is_alive(pid) && (started.is_none() || start_time(pid) == started)
}

#[cfg(unix)]
fn checked_pid(pid: u32) -> io::Result<libc::pid_t> {
    match libc::pid_t::try_from(pid) {
        Ok(raw) if raw > 0 => Ok(raw),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{pid} is not a process id"),
        )),
    }
}

/// Whether `/proc` shows process `pid` as a zombie.
fn is_zombie(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // `pid (comm) S ...`: the state follows the last ')', as comm may hold
    // parentheses.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .is_some_and(|state| state == "Z" || state == "X")
}

/// The command line of process `pid`, or `None` where `/proc` does not
/// tell (another system, or the process is gone).
pub fn command_line(pid: u32) -> Option<Vec<String>> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(
        raw.split(|&b| b == 0)
            .filter(|word| !word.is_empty())
            .map(|word| String::from_utf8_lossy(word).into_owned())
            .collect(),
    )
}

/// Whether process `pid` is alive and, where the system tells, runs a
/// command line containing every one of `words` (so a recycled id is not
/// mistaken for the process recorded).
pub fn runs(pid: u32, words: &[&str]) -> bool {
    if !is_alive(pid) {
        return false;
    }
    match command_line(pid) {
        // Empty for a moment right after a process starts: unknown.
        Some(line) if line.is_empty() => true,
        Some(line) => words.iter().all(|word| line.iter().any(|w| w == word)),
        None => !has_proc(),
    }
}

/// How a process ended, as a predicate: `exited with code 1`, `was killed
/// by signal 9 (SIGKILL)`.
pub fn describe(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exited with code {code}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return match signal_name(signal) {
                Some(name) => format!("was killed by signal {signal} ({name})"),
                None => format!("was killed by signal {signal}"),
            };
        }
    }
    status.to_string()
}

#[cfg(unix)]
fn signal_name(signal: i32) -> Option<&'static str> {
    Some(match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGTERM => "SIGTERM",
        _ => return None,
    })
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn a_process_is_known_by_its_id_and_start_time() {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let pid = child.id();
        let started = start_time(pid);
        assert!(started.is_some());
        assert_eq!(start_time(pid), started);
        assert!(is_still_alive(pid, started));
        // The same id with another start time is another process.
        assert!(!is_still_alive(pid, started.map(|t| t + 1)));
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(!is_still_alive(pid, started));
        assert_eq!(start_time(pid), None);
    }

    #[test]
    fn a_running_child_is_alive_and_a_killed_one_is_not() {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let pid = child.id();
        assert!(is_alive(pid));
        // The command line shows up a moment after the process starts.
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(runs(pid, &["sleep", "30"]), "{:?}", command_line(pid));
        assert!(!runs(pid, &["meridian"]));
        send(pid, Signal::Kill).unwrap();
        let status = child.wait().unwrap();
        assert_eq!(describe(status), "was killed by signal 9 (SIGKILL)");
        assert!(!is_alive(pid));
    }

    #[test]
    fn an_exited_but_unreaped_child_counts_as_dead() {
        let mut child = Command::new("true").spawn().unwrap();
        let pid = child.id();
        // Give it time to exit; it stays a zombie until waited for.
        std::thread::sleep(std::time::Duration::from_millis(200));
        if std::path::Path::new("/proc").exists() {
            assert!(!is_alive(pid));
        }
        assert_eq!(describe(child.wait().unwrap()), "exited with code 0");
    }

    #[test]
    fn process_ids_that_would_reach_a_group_are_refused() {
        assert!(send(0, Signal::Term).is_err());
        assert!(send(u32::MAX, Signal::Term).is_err());
        assert!(!is_alive(0));
    }
}
