//! When a node started by `meridian cluster up` counts as ready.
//!
//! The supervisor asks a [`ReadinessProbe`] about each running node until
//! all say yes. [`ListeningProbe`] needs nothing from the network layer: a
//! node is ready once its process holds a UDP socket on its client port
//! (read from `/proc` on Linux) or its log says it is listening. A probe
//! that pings each region through the client SDK can replace it without
//! touching the supervisor. The supervisor checks separately that the
//! process is alive; a probe only looks.

use super::file::NodeEntry;
use std::collections::HashSet;
use std::future::Future;
use std::io::Read;
use std::path::Path;

/// Largest part of a log read when looking for the word "listening".
pub const LOG_SCAN_BYTES_MAX: u64 = 256 << 10;

/// Tells whether a running node serves clients yet.
pub trait ReadinessProbe {
    /// Whether `node` (alive, with a pid) is ready. Called again, about
    /// every 100 ms, until it says yes; it should answer within that time.
    fn is_ready(&mut self, node: &NodeEntry) -> impl Future<Output = bool>;
}

/// Ready when the node's process has bound its client UDP port, or when
/// its log mentions "listening".
#[derive(Debug, Clone, Copy, Default)]
pub struct ListeningProbe;

impl ListeningProbe {
    /// The check, without the async wrapper.
    pub fn check(node: &NodeEntry) -> bool {
        let Some(pid) = node.pid else {
            return false;
        };
        udp_port_bound_by(pid, node.client_addr.port()) == Some(true)
            || log_says_listening(&node.log)
    }
}

impl ReadinessProbe for ListeningProbe {
    async fn is_ready(&mut self, node: &NodeEntry) -> bool {
        ListeningProbe::check(node)
    }
}

/// Whether process `pid` holds a UDP socket bound to `port`; `None` where
/// `/proc` does not tell.
pub fn udp_port_bound_by(pid: u32, port: u16) -> Option<bool> {
    let mut on_port = Vec::new();
    let mut any_table = false;
    for table in ["/proc/net/udp", "/proc/net/udp6"] {
        if let Ok(text) = std::fs::read_to_string(table) {
            any_table = true;
            on_port.extend(udp_inodes_on_port(&text, port));
        }
    }
    if !any_table {
        return None;
    }
    if on_port.is_empty() {
        return Some(false);
    }
    let owned = socket_inodes_of(pid)?;
    Some(on_port.iter().any(|inode| owned.contains(inode)))
}

/// The socket inodes in a `/proc/net/udp` table whose local port is `port`.
pub fn udp_inodes_on_port(table: &str, port: u16) -> Vec<u64> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local = fields.get(1)?;
            let (_, port_hex) = local.rsplit_once(':')?;
            let local_port = u16::from_str_radix(port_hex, 16).ok()?;
            let inode = fields.get(9)?.parse().ok()?;
            (local_port == port).then_some(inode)
        })
        .collect()
}

/// The inodes of the sockets process `pid` has open.
fn socket_inodes_of(pid: u32) -> Option<HashSet<u64>> {
    let entries = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    Some(
        entries
            .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
            .filter_map(|target| {
                let target = target.to_str()?;
                target
                    .strip_prefix("socket:[")?
                    .strip_suffix(']')?
                    .parse()
                    .ok()
            })
            .collect(),
    )
}

/// Whether the first [`LOG_SCAN_BYTES_MAX`] bytes of the log at `path`
/// mention "listening" (in any case).
pub fn log_says_listening(path: &Path) -> bool {
    log_says_listening_after(path, 0)
}

/// Whether the log at `path` mentions "listening" (in any case) in the
/// [`LOG_SCAN_BYTES_MAX`] bytes after byte `offset` (a restarted node's
/// log continues its earlier life's).
pub fn log_says_listening_after(path: &Path, offset: u64) -> bool {
    use std::io::{Seek, SeekFrom};
    let Ok(mut file) = std::fs::File::open(path) else {
        return false;
    };
    let mut head = Vec::new();
    if file.seek(SeekFrom::Start(offset)).is_err()
        || file
            .take(LOG_SCAN_BYTES_MAX)
            .read_to_end(&mut head)
            .is_err()
    {
        return false;
    }
    String::from_utf8_lossy(&head)
        .to_ascii_lowercase()
        .contains("listening")
}

#[cfg(test)]
mod tests {
    use super::*;

    const UDP_TABLE: &str = "\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  123: 0100007F:1BBD 00000000:0000 07 00000000:00000000 00:00000000 00000000  1000        0 45678 2 0000000000000000 0
  124: 00000000:0044 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 111 2 0000000000000000 0
";

    #[test]
    fn udp_table_rows_are_matched_by_local_port() {
        // 0x1BBD = 7101.
        assert_eq!(udp_inodes_on_port(UDP_TABLE, 7101), [45678]);
        assert_eq!(udp_inodes_on_port(UDP_TABLE, 68), [111]);
        assert!(udp_inodes_on_port(UDP_TABLE, 7102).is_empty());
        assert!(udp_inodes_on_port("garbage\nmore garbage", 7101).is_empty());
    }

    #[test]
    fn a_process_holding_the_port_is_seen_bound_and_another_is_not() {
        if !Path::new("/proc/net/udp").exists() {
            return;
        }
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = socket.local_addr().unwrap().port();
        assert_eq!(udp_port_bound_by(std::process::id(), port), Some(true));
        let free_port = {
            let other = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            other.local_addr().unwrap().port()
        };
        assert_eq!(
            udp_port_bound_by(std::process::id(), free_port),
            Some(false)
        );
        // PID 1 does not hold our socket.
        assert_ne!(udp_port_bound_by(1, port), Some(true));
    }

    #[test]
    fn a_log_mentioning_listening_means_ready() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("n.log");
        assert!(!log_says_listening(&log));
        std::fs::write(&log, "starting\n").unwrap();
        assert!(!log_says_listening(&log));
        std::fs::write(
            &log,
            "starting\nINFO Listening for clients on 127.0.0.1:7101\n",
        )
        .unwrap();
        assert!(log_says_listening(&log));
    }
}
