//! Applies a stream of single-write deltas, made at a writer replica, to a
//! receiver, inside one function (`apply_all`) so a profiler can count the
//! cost of the joins alone:
//!
//! ```text
//! cargo build --release -p crdt-types --example join_stream
//! valgrind --tool=callgrind --toggle-collect='join_stream::apply_all*' \
//!     target/release/examples/join_stream map 100000
//! ```
//!
//! Arguments: the type (`register`, `counter`, `set`, `map`) and, for `set`
//! and `map`, the number of members or fields. Set members and map fields are
//! rewritten in a pseudo-random order, as in the `join/` criterion benchmarks.

use crdt_types::{
    Bytes, Causal, Counter, Delta, DotStore, Hlc, LwwRegister, OrMap, OrSet, ReplicaId,
};

/// How many deltas are applied.
const JOINS: u64 = 20_000;
const WRITER: ReplicaId = ReplicaId(1);
const REPLICAS: [ReplicaId; 3] = [ReplicaId(1), ReplicaId(2), ReplicaId(3)];

fn name(prefix: &str, i: usize) -> Bytes {
    format!("{prefix}:{i:08}").into_bytes().into()
}

fn value(i: u64) -> Bytes {
    format!("value-{i:010}").into_bytes().into()
}

/// Joins every delta into `receiver`: the only code a profiler should count.
#[inline(never)]
fn apply_all<S: DotStore>(receiver: &mut Causal<S>, deltas: &[Delta<S>]) {
    for delta in deltas {
        receiver.apply(delta);
    }
}

/// Makes `JOINS` deltas on a copy of `state` with `next`, applies them to
/// another copy and checks the copies converge.
fn run<S: DotStore>(mut writer: Causal<S>, mut next: impl FnMut(&mut Causal<S>, u64) -> Delta<S>) {
    let mut receiver = writer.clone();
    let deltas: Vec<Delta<S>> = (0..JOINS).map(|i| next(&mut writer, i)).collect();
    apply_all(&mut receiver, &deltas);
    assert_eq!(receiver, writer, "the receiver converged with the writer");
    println!("applied {JOINS} deltas");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let kind = args.get(1).map_or("map", String::as_str);
    let len: usize = args
        .get(2)
        .map_or(Ok(1_000), |s| s.parse())
        .expect("a number of members or fields");
    assert!(len > 0, "a collection of at least one member or field");
    // xorshift64: the same pseudo-random order every run.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut pick = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % len as u64) as usize
    };
    match kind {
        "register" => {
            let mut state: Causal<LwwRegister> = Causal::new();
            for (i, r) in REPLICAS.iter().enumerate() {
                state.mutate(|s, c| s.set(c, *r, Hlc::new(1_000 + i as u64, 0), value(i as u64)));
            }
            run(state, |w, i| {
                w.mutate(|s, c| s.set(c, WRITER, Hlc::new(2_000 + i, 0), value(i)))
            });
        }
        "counter" => {
            let mut state: Causal<Counter> = Causal::new();
            for r in REPLICAS {
                state.mutate(|s, c| s.add(c, r, 7));
            }
            run(state, |w, _| w.mutate(|s, c| s.add(c, WRITER, 1)));
        }
        "set" => {
            let mut state: Causal<OrSet> = Causal::new();
            for i in 0..len {
                state.mutate(|s, c| s.add(c, REPLICAS[i % 3], name("member", i)));
            }
            run(state, |w, _| {
                let m = name("member", pick());
                w.mutate(|s, c| s.add(c, WRITER, m))
            });
        }
        "map" => {
            let mut state: Causal<OrMap> = Causal::new();
            for i in 0..len {
                let r = REPLICAS[i % 3];
                state.mutate(|m, c| {
                    m.update::<LwwRegister>(c, &name("field", i), |s, c| {
                        s.set(c, r, Hlc::new(1_000 + i as u64, 0), value(i as u64))
                    })
                    .expect("a fresh field takes any type")
                });
            }
            run(state, |w, i| {
                let f = name("field", pick());
                w.mutate(|m, c| {
                    m.update::<LwwRegister>(c, &f, |s, c| {
                        s.set(c, WRITER, Hlc::new(2_000_000 + i, 0), value(i))
                    })
                    .expect("every field is a register")
                })
            });
        }
        other => panic!("unknown type {other:?}: use register, counter, set or map"),
    }
}
