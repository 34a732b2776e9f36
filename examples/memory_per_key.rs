//! Memory per key: N registers of a 64-byte value under 16-byte keys.
//!
//! Prints the process's resident-set growth and the allocator's in-use bytes
//! per key (glibc `mallinfo2`), next to the keyspace's own estimate, so the
//! figure compares with Redis' `used_memory` / `used_memory_rss` growth.
//!
//! `cargo run --release --example memory_per_key -- [KEYS]` (default 1,000,000).

use meridian::crdt::{Bytes, ReplicaId};
use meridian::keyspace::{Keyspace, KeyspaceConfig};

fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn heap_in_use() -> usize {
    // SAFETY: mallinfo2 only reads the allocator's counters.
    unsafe { libc::mallinfo2().uordblks }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn heap_in_use() -> usize {
    0
}

fn main() {
    let keys: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let now_ms = 1_800_000_000_000;
    let value = Bytes::from(vec![b'x'; 64]);
    let mut ks = Keyspace::new(ReplicaId(1), KeyspaceConfig::default());
    let (rss0, heap0) = (rss_bytes(), heap_in_use());
    for i in 0..keys {
        let key = format!("key:{i:012}");
        debug_assert_eq!(key.len(), 16);
        ks.set(key.as_bytes(), value.clone(), None, now_ms)
            .expect("set within limits");
    }
    let (rss1, heap1) = (rss_bytes(), heap_in_use());
    let per = |b: usize| b as f64 / keys as f64;
    println!("keys                         {keys}");
    println!(
        "rss growth per key           {:.1} bytes",
        per(rss1.saturating_sub(rss0))
    );
    println!(
        "allocator in-use per key     {:.1} bytes",
        per(heap1.saturating_sub(heap0))
    );
    println!(
        "keyspace estimate per key    {:.1} bytes",
        per(ks.memory().bytes)
    );
    println!("keys in compact form         {}", ks.memory().keys_compact);
}
