//! Criterion benchmarks of the keyspace's write paths, one core, no I/O:
//! what a coordinator spends on a client's write and what a replica spends
//! joining the delta that write made, on keys that already exist.
//!
//! The keyspace holds `KEYS` registers (a 16-byte key, a 64-byte value)
//! before timing starts, and writes cycle over them, so every write
//! rewrites an existing key as a cache under load does. The replica
//! benchmark makes its deltas at a writer keyspace outside the timed part
//! (`iter_custom`) and checks afterwards that the receiver holds the
//! writer's last value of every key it touched.
//!
//! `coordinator/set_new_register` writes keys not held before, and
//! `scan/` times a page of a keyspace scan.
//!
//! Run: `cargo bench --bench keyspace` (filters: `coordinator/`,
//! `replica/`, `scan/`).

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use meridian::crdt::{Bytes, ReplicaId};
use meridian::keyspace::{Keyspace, KeyspaceConfig, ScanBudget};
use std::time::{Duration, Instant};

/// Keys written before timing starts.
const KEYS: usize = 100_000;
/// Fields of the map the `hset` benchmark writes.
const MAP_FIELDS: usize = 10_000;
/// Bytes of each value.
const VALUE_BYTES: usize = 64;
/// A fixed wall-clock time (the keyspace takes time as an input).
const NOW_MS: u64 = 1_800_000_000_000;

fn key(i: usize) -> Vec<u8> {
    format!("key:{:012}", i % KEYS).into_bytes()
}

fn value(i: usize) -> Bytes {
    let mut v = vec![b'v'; VALUE_BYTES];
    v[..8].copy_from_slice(&(i as u64).to_le_bytes());
    Bytes::from(v)
}

fn filled(replica: u32) -> Keyspace {
    let mut ks = Keyspace::new(ReplicaId(replica), KeyspaceConfig::default());
    for i in 0..KEYS {
        ks.set(&key(i), value(i), None, NOW_MS).expect("prefill");
    }
    ks
}

fn coordinator(c: &mut Criterion) {
    let mut g = c.benchmark_group("coordinator");
    g.throughput(Throughput::Elements(1));
    g.measurement_time(Duration::from_secs(3));

    let mut ks = filled(1);
    let keys: Vec<Vec<u8>> = (0..KEYS).map(key).collect();
    let mut i = 0usize;
    g.bench_function("set_existing_register", |b| {
        b.iter(|| {
            i += 1;
            let w = ks
                .set(&keys[i % KEYS], value(i), None, NOW_MS)
                .expect("set");
            black_box(w.delta)
        })
    });

    let mut ks = Keyspace::new(ReplicaId(1), KeyspaceConfig::default());
    for k in &keys {
        ks.incr_by(k, 1, NOW_MS).expect("prefill");
    }
    let mut i = 0usize;
    g.bench_function("incr_existing_counter", |b| {
        b.iter(|| {
            i += 1;
            let w = ks.incr_by(&keys[i % KEYS], 1, NOW_MS).expect("incr");
            black_box(w.delta)
        })
    });
    // A key not held before: a new table entry, and its hash in the
    // order scans walk. The keys made are dropped again untimed.
    let mut ks = filled(1);
    let mut fresh = 0usize;
    g.bench_function("set_new_register", |b| {
        b.iter_custom(|iters| {
            let made: Vec<Vec<u8>> = (0..iters)
                .map(|_| {
                    fresh += 1;
                    format!("new:{fresh:012}").into_bytes()
                })
                .collect();
            let start = Instant::now();
            for (n, k) in made.iter().enumerate() {
                black_box(ks.set(k, value(n), None, NOW_MS).expect("set").delta);
            }
            let took = start.elapsed();
            for k in &made {
                assert!(ks.forget(k));
            }
            took
        })
    });

    // As `meridian bench --ops hset` and redis-benchmark's HSET: fields of
    // one map, rewritten in turn.
    let mut ks = Keyspace::new(ReplicaId(1), KeyspaceConfig::default());
    let fields: Vec<Vec<u8>> = (0..MAP_FIELDS)
        .map(|i| format!("element:{i:06}").into_bytes())
        .collect();
    for (i, f) in fields.iter().enumerate() {
        ks.hset(b"myhash", f, value(i), NOW_MS).expect("prefill");
    }
    let mut i = 0usize;
    g.bench_function("hset_existing_field_of_a_10k_field_map", |b| {
        b.iter(|| {
            i += 1;
            let w = ks
                .hset(b"myhash", &fields[i % MAP_FIELDS], value(i), NOW_MS)
                .expect("hset");
            black_box(w.delta)
        })
    });
    g.finish();
}

/// A page of `scan` on one node: the next 100 key hashes of 100,000
/// registers, every key taken, pages in turn through the keyspace.
fn scan(c: &mut Criterion) {
    let mut g = c.benchmark_group("scan");
    g.throughput(Throughput::Elements(100));
    g.measurement_time(Duration::from_secs(3));
    let ks = filled(1);
    let mut from = 0u64;
    g.bench_function("page_of_100_of_100k_keys", |b| {
        b.iter(|| {
            let page = ks.scan_keys(from, ScanBudget::hashes(100), NOW_MS, |_, _| true);
            from = page.next;
            black_box(page.keys)
        })
    });
    g.finish();
}

fn replica(c: &mut Criterion) {
    let mut g = c.benchmark_group("replica");
    g.throughput(Throughput::Elements(1));
    g.measurement_time(Duration::from_secs(3));

    let mut writer = filled(1);
    let mut receiver = Keyspace::new(ReplicaId(2), KeyspaceConfig::default());
    for i in 0..KEYS {
        let k = key(i);
        receiver
            .join_state(&k, &writer.state(&k).expect("prefilled"), NOW_MS)
            .expect("join");
    }
    let mut i = 0usize;
    g.bench_function("apply_remote_set", |b| {
        b.iter_custom(|iters| {
            let deltas: Vec<_> = (0..iters)
                .map(|_| {
                    i += 1;
                    let k = key(i);
                    let w = writer.set(&k, value(i), None, NOW_MS).expect("set");
                    (k, w.delta.expect("a set always changes the key"))
                })
                .collect();
            let start = Instant::now();
            for (k, d) in &deltas {
                receiver.apply_delta(k, d, NOW_MS).expect("apply");
            }
            let took = start.elapsed();
            for (k, _) in deltas.iter().rev().take(KEYS) {
                assert_eq!(
                    receiver.get(k, NOW_MS).expect("get"),
                    writer.get(k, NOW_MS).expect("get"),
                    "the receiver missed a delta"
                );
            }
            took
        })
    });
    g.finish();
}

criterion_group!(benches, coordinator, replica, scan);
criterion_main!(benches);
