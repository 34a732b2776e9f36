//! Criterion benchmarks of the CRDT core: how fast a replica joins a
//! single-write delta made at another replica, and how fast states and
//! deltas encode and decode.
//!
//! Join benchmarks replay a stream of fresh deltas: a writer replica mutates
//! its own copy (untimed setup) and the receiver applies each delta in order
//! (timed). The receiver's state is never cloned inside the measurement, and
//! at the end it must equal the writer's, which checks that every delta was
//! applied. Collection benchmarks rewrite existing members or fields (or add
//! a new member and remove it again), so the collection keeps its size however
//! many iterations criterion runs.
//!
//! Run: `cargo bench -p crdt-types --bench crdt -- <filter>` (filters:
//! `join/`, `encode/`, `decode/`).

use crdt_types::{
    decode, encode, Bytes, Causal, Counter, Delta, DotStore, Hlc, LwwRegister, MvRegister, OrMap,
    OrSet, ReplicaId,
};
use criterion::measurement::WallTime;
use criterion::{
    black_box, criterion_group, criterion_main, BatchSize, BenchmarkGroup, BenchmarkId, Criterion,
    Throughput,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::time::Duration;

/// The replica that makes the deltas.
const WRITER: ReplicaId = ReplicaId(1);
/// Other replicas that wrote before the benchmark (a key written in three regions).
const OTHERS: [ReplicaId; 2] = [ReplicaId(2), ReplicaId(3)];

/// A deterministic pseudo-random sequence (xorshift64), so runs pick the same members.
struct Picker(u64);

impl Picker {
    fn next_below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

fn member(i: usize) -> Bytes {
    format!("member:{i:08}").into_bytes().into()
}

fn field(i: usize) -> Bytes {
    format!("field:{i:08}").into_bytes().into()
}

fn value(i: u64) -> Bytes {
    format!("value-{i:010}").into_bytes().into()
}

/// Times `receiver.apply(delta)` over a stream of deltas that `next` makes on `writer`.
fn bench_join_stream<S: DotStore>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    id: BenchmarkId,
    mut writer: Causal<S>,
    mut receiver: Causal<S>,
    mut next: impl FnMut(&mut Causal<S>, u64) -> Delta<S>,
) {
    assert_eq!(
        writer, receiver,
        "the receiver starts from the writer's state"
    );
    let mut write_count = 0u64;
    group.bench_function(id, |b| {
        b.iter_batched_ref(
            || {
                write_count += 1;
                next(&mut writer, write_count)
            },
            |delta| receiver.apply(delta),
            BatchSize::SmallInput,
        )
    });
    assert_eq!(
        writer, receiver,
        "the receiver applied every delta the writer made"
    );
}

/// A register written once by every replica.
fn register_state() -> Causal<LwwRegister> {
    let mut state: Causal<LwwRegister> = Causal::new();
    for (i, r) in OTHERS.iter().chain([&WRITER]).enumerate() {
        let hlc = Hlc::new(1_000 + i as u64, 0);
        let d = state.store().set(state.context(), *r, hlc, value(i as u64));
        state.apply(&d);
    }
    state
}

/// A counter incremented by every replica.
fn counter_state() -> Causal<Counter> {
    let mut state: Causal<Counter> = Causal::new();
    for r in OTHERS.iter().chain([&WRITER]) {
        let d = state.store().add(state.context(), *r, 7);
        state.apply(&d);
    }
    state
}

/// A set of `len` members, added by the writer and the other replicas in turn.
fn set_state(len: usize) -> Causal<OrSet> {
    let mut state: Causal<OrSet> = Causal::new();
    let replicas = [WRITER, OTHERS[0], OTHERS[1]];
    for i in 0..len {
        state.mutate(|s, c| s.add(c, replicas[i % 3], member(i)));
    }
    state
}

/// A map of `len` register fields, written by the writer and the other replicas in turn.
fn map_state(len: usize) -> Causal<OrMap> {
    let mut state: Causal<OrMap> = Causal::new();
    let replicas = [WRITER, OTHERS[0], OTHERS[1]];
    for i in 0..len {
        let r = replicas[i % 3];
        state.mutate(|m, c| {
            m.update::<LwwRegister>(c, &field(i), |s, c| {
                s.set(c, r, Hlc::new(1_000 + i as u64, 0), value(i as u64))
            })
            .expect("a fresh field takes any type")
        });
    }
    state
}

fn join(c: &mut Criterion) {
    let mut group = c.benchmark_group("join");
    group.throughput(Throughput::Elements(1));

    let state = register_state();
    bench_join_stream(
        &mut group,
        BenchmarkId::from_parameter("register_set"),
        state.clone(),
        state,
        |w, i| w.mutate(|s, c| s.set(c, WRITER, Hlc::new(2_000 + i, 0), value(i))),
    );

    let state = counter_state();
    bench_join_stream(
        &mut group,
        BenchmarkId::from_parameter("counter_incr"),
        state.clone(),
        state,
        |w, _| w.mutate(|s, c| s.add(c, WRITER, 1)),
    );

    let mut state: Causal<MvRegister> = Causal::new();
    for (i, r) in OTHERS.iter().enumerate() {
        state.mutate(|s, c| s.set(c, *r, value(i as u64)));
    }
    bench_join_stream(
        &mut group,
        BenchmarkId::from_parameter("mvregister_set"),
        state.clone(),
        state,
        |w, i| w.mutate(|s, c| s.set(c, WRITER, value(i))),
    );

    for len in [1_000, 100_000] {
        let state = set_state(len);
        let mut pick = Picker(0x9e37_79b9_7f4a_7c15);
        bench_join_stream(
            &mut group,
            BenchmarkId::new("set_add", len),
            state.clone(),
            state,
            |w, _| {
                let m = member(pick.next_below(len));
                w.mutate(|s, c| s.add(c, WRITER, m))
            },
        );
    }

    // Members never seen before, at random places in the key order: odd
    // writes add one, even writes remove it again, so the set keeps its size.
    for len in [1_000, 100_000] {
        let state = set_state(len);
        let mut pick = Picker(0x9e37_79b9_7f4a_7c15);
        let mut fresh = Bytes::default();
        bench_join_stream(
            &mut group,
            BenchmarkId::new("set_add_remove_new", len),
            state.clone(),
            state,
            |w, i| {
                if i % 2 == 1 {
                    let near = member(pick.next_below(len));
                    fresh = [near.as_slice(), format!("/{i}").as_bytes()]
                        .concat()
                        .into();
                    w.mutate(|s, c| s.add(c, WRITER, fresh.clone()))
                } else {
                    w.mutate(|s, _| s.remove(&fresh))
                }
            },
        );
    }

    for len in [10, 1_000, 100_000] {
        let state = map_state(len);
        let mut pick = Picker(0x9e37_79b9_7f4a_7c15);
        bench_join_stream(
            &mut group,
            BenchmarkId::new("map_field_update", len),
            state.clone(),
            state,
            |w, i| {
                let f = field(pick.next_below(len));
                w.mutate(|m, c| {
                    m.update::<LwwRegister>(c, &f, |s, c| {
                        s.set(c, WRITER, Hlc::new(2_000 + i, 0), value(i))
                    })
                    .expect("every field is a register")
                })
            },
        );
    }

    group.finish();
}

/// Benchmarks encoding and decoding `value`, reporting bytes per second.
fn bench_codec<T>(c: &mut Criterion, name: &str, value: &T)
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let bytes = encode(value);
    let decoded: T = decode(&bytes).expect("encoded bytes decode");
    assert_eq!(&decoded, value, "{name} round-trips");

    let mut group = c.benchmark_group("encode");
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function(BenchmarkId::new(name, bytes.len()), |b| {
        b.iter(|| encode(black_box(value)))
    });
    group.finish();

    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function(BenchmarkId::new(name, bytes.len()), |b| {
        b.iter(|| decode::<T>(black_box(&bytes)).expect("encoded bytes decode"))
    });
    group.finish();
}

fn codec(c: &mut Criterion) {
    bench_codec(c, "register_state", &register_state());
    bench_codec(c, "set_state_1000", &set_state(1_000));
    let mut map = map_state(1_000);
    bench_codec(c, "map_state_1000", &map);
    let delta = map.mutate(|m, c| {
        m.update::<LwwRegister>(c, &field(500), |s, c| {
            s.set(c, WRITER, Hlc::new(2_000, 0), value(1))
        })
        .expect("every field is a register")
    });
    bench_codec(c, "map_field_delta", &delta);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = join, codec
}
criterion_main!(benches);
