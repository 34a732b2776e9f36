//! Decoding untrusted bytes.
//!
//! States and deltas of every type, taken from random histories, are
//! encoded, then truncated and corrupted at random. `decode` must never
//! panic; whatever it accepts must be a valid value: its store's dots are
//! in its context, it re-encodes to bytes that decode to the same value,
//! and joining it with real states and deltas neither panics nor breaks
//! the join laws. Maps nested deeper than `MAP_NESTING_MAX` are rejected
//! without exhausting the stack, and equal states encode to equal bytes.
//!
//! Raise the number of cases with `PROPTEST_CASES`.

mod common;

use common::*;
use crdt_types::{
    decode, encode, Bytes, Causal, Counter, Delta, Expiry, LwwRegister, MvRegister, OrMap, OrSet,
    Record, ReplicaId, TypedStore, MAP_NESTING_MAX,
};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

/// How to damage an encoding.
#[derive(Clone, Debug)]
struct Damage {
    /// Which state or delta of the history to encode.
    pick: usize,
    /// (position, byte) overwrites.
    edits: Vec<(usize, u8)>,
    /// Keep only this many bytes (modulo length + 1), if set.
    cut: Option<usize>,
}

fn damage() -> impl Strategy<Value = Damage> {
    (
        any::<usize>(),
        // Small bytes are lengths, variant tags and sequence numbers: favour them.
        prop::collection::vec((any::<usize>(), prop_oneof![0u8..4, any::<u8>()]), 0..3),
        prop::option::weighted(0.4, any::<usize>()),
    )
        .prop_map(|(pick, edits, cut)| Damage { pick, edits, cut })
}

fn damaged(mut bytes: Vec<u8>, damage: &Damage) -> Vec<u8> {
    if !bytes.is_empty() {
        for &(pos, b) in &damage.edits {
            let len = bytes.len();
            bytes[pos % len] = b;
        }
    }
    if let Some(cut) = damage.cut {
        bytes.truncate(cut % (bytes.len() + 1));
    }
    bytes
}

fn join<S: Subject>(a: &Causal<S>, b: &Causal<S>) -> Causal<S> {
    let mut x = a.clone();
    x.join(b);
    x
}

/// Checks a state that `decode` accepted.
fn check_decoded_state<S: Subject>(x: &Causal<S>, h: &History<S>) -> Result<(), TestCaseError> {
    let (store, ctx) = x.clone().into_parts();
    prop_assert!(
        Causal::from_parts(store, ctx).is_ok(),
        "a decoded state holds a dot its context lacks"
    );
    let again = decode::<Causal<S>>(&encode(x));
    prop_assert_eq!(
        again.as_ref().ok(),
        Some(x),
        "a decoded state does not round-trip"
    );
    prop_assert_eq!(
        &join(x, x),
        x,
        "join with a decoded state is not idempotent"
    );
    let _ = S::view(x);
    for r in &h.replicas {
        let (xs, sx) = (join(x, &r.state), join(&r.state, x));
        prop_assert_eq!(&xs, &sx, "join with a decoded state is not commutative");
        prop_assert_eq!(&join(&xs, x), &xs);
        let _ = S::view(&xs);
        let shipped = decode::<Causal<S>>(&encode(&xs));
        prop_assert_eq!(
            shipped.as_ref().ok(),
            Some(&xs),
            "a merged state does not round-trip"
        );
        // The replica keeps working after merging it.
        let mut merged = r.state.clone();
        merged.join(x);
        for op in h.ops.iter().take(3) {
            if let Outcome::Delta(d) = S::run(&merged, r.id, crdt_types::Hlc::new(1, 0), op) {
                merged.apply(&d);
            }
        }
        merged.apply(&merged.clear());
        prop_assert!(merged.is_bottom());
    }
    Ok(())
}

/// Checks a delta that `decode` accepted.
fn check_decoded_delta<S: Subject>(d: &Delta<S>, h: &History<S>) -> Result<(), TestCaseError> {
    let (store, ctx) = d.clone().into_parts();
    prop_assert!(
        Causal::from_parts(store, ctx).is_ok(),
        "a decoded delta holds a dot its context lacks"
    );
    let again = decode::<Delta<S>>(&encode(d));
    prop_assert_eq!(
        again.as_ref().ok(),
        Some(d),
        "a decoded delta does not round-trip"
    );
    for r in &h.replicas {
        let mut s = r.state.clone();
        s.apply(d);
        let _ = S::view(&s);
        // Whatever it did, the replica can still ship and store its state.
        let shipped = decode::<Causal<S>>(&encode(&s));
        prop_assert_eq!(
            shipped.as_ref().ok(),
            Some(&s),
            "a state after a decoded delta does not round-trip"
        );
    }
    for other in h.deltas.iter().take(4) {
        let mut g = other.clone();
        g.join(d);
        let mut g2 = d.clone();
        g2.join(other);
        let _ = (g.to_state(), g2.to_state());
    }
    Ok(())
}

fn fuzz<S: Subject>(h: &History<S>, damage: &Damage) -> Result<(), TestCaseError> {
    let mut states: Vec<Causal<S>> = h.replicas.iter().map(|r| r.state.clone()).collect();
    states.push(h.merged());
    let mut items: Vec<Vec<u8>> = states.iter().map(encode).collect();
    items.extend(h.deltas.iter().map(encode));
    if let Some((first, rest)) = h.deltas.split_first() {
        let mut group = first.clone();
        rest.iter().for_each(|d| group.join(d));
        items.push(encode(&group));
    }
    let bytes = damaged(items[damage.pick % items.len()].clone(), damage);
    // State and delta encodings share a layout: try both readings.
    if let Ok(x) = decode::<Causal<S>>(&bytes) {
        check_decoded_state(&x, h)?;
    }
    if let Ok(d) = decode::<Delta<S>>(&bytes) {
        check_decoded_delta(&d, h)?;
    }
    Ok(())
}

/// Delivers every delta to two fresh replicas in different orders.
fn equal_states_encode_equally<S: Subject>(h: &History<S>, seed: u64) -> Result<(), TestCaseError> {
    let mut rng = Shuffler::new(seed);
    let all: Vec<usize> = (0..h.deltas.len()).collect();
    let (mut x, mut y) = (Causal::<S>::new(), Causal::<S>::new());
    for i in rng.with_duplicates(&all) {
        x.apply(&h.deltas[i]);
    }
    for i in rng.with_duplicates(&all) {
        y.apply(&h.deltas[i]);
    }
    prop_assert_eq!(&x, &y);
    prop_assert_eq!(
        encode(&x),
        encode(&y),
        "equal states encode to different bytes"
    );
    // Whole-state joins in any order give the same bytes too.
    let mut order: Vec<usize> = (0..h.replicas.len()).collect();
    rng.shuffle(&mut order);
    let mut z = Causal::<S>::new();
    for i in order {
        z.join(&h.replicas[i].state);
    }
    prop_assert_eq!(encode(&z), encode(&x));
    Ok(())
}

macro_rules! decode_tests_for {
    ($fuzz:ident, $equal:ident, $t:ty) => {
        proptest! {
            #![proptest_config(config(512))]
            #[test]
            fn $fuzz((replicas, steps) in histories::<$t>(1..24), damages in prop::collection::vec(damage(), 1..16)) {
                let h = run_history::<$t>(replicas, &steps)?;
                for damage in &damages {
                    fuzz(&h, damage)?;
                }
            }

            #[test]
            fn $equal((replicas, steps) in histories::<$t>(1..24), seed in any::<u64>()) {
                let h = run_history::<$t>(replicas, &steps)?;
                equal_states_encode_equally(&h, seed)?;
            }
        }
    };
}

decode_tests_for!(
    damaged_lww_register_bytes_never_panic_and_decode_only_to_valid_values,
    lww_register_equal_states_encode_to_equal_bytes,
    LwwRegister
);
decode_tests_for!(
    damaged_mv_register_bytes_never_panic_and_decode_only_to_valid_values,
    mv_register_equal_states_encode_to_equal_bytes,
    MvRegister
);
decode_tests_for!(
    damaged_counter_bytes_never_panic_and_decode_only_to_valid_values,
    counter_equal_states_encode_to_equal_bytes,
    Counter
);
decode_tests_for!(
    damaged_or_set_bytes_never_panic_and_decode_only_to_valid_values,
    or_set_equal_states_encode_to_equal_bytes,
    OrSet
);
decode_tests_for!(
    damaged_expiry_bytes_never_panic_and_decode_only_to_valid_values,
    expiry_equal_states_encode_to_equal_bytes,
    Expiry
);
decode_tests_for!(
    damaged_or_map_bytes_never_panic_and_decode_only_to_valid_values,
    or_map_equal_states_encode_to_equal_bytes,
    OrMap
);
decode_tests_for!(
    damaged_typed_store_bytes_never_panic_and_decode_only_to_valid_values,
    typed_store_equal_states_encode_to_equal_bytes,
    TypedStore
);
decode_tests_for!(
    damaged_record_bytes_never_panic_and_decode_only_to_valid_values,
    record_equal_states_encode_to_equal_bytes,
    Record
);

// ---------------------------------------------------------------------------
// Nesting

/// A map whose fields nest `levels` maps deep in all (a counter at the bottom).
fn nested_map(levels: usize) -> Causal<OrMap> {
    let path: Vec<Bytes> = (0..levels)
        .map(|i| Bytes::from(format!("f{i}").as_str()))
        .collect();
    let mut x: Causal<OrMap> = Causal::new();
    x.mutate(|m, c| {
        update_field(
            m,
            c,
            ReplicaId(1),
            crdt_types::Hlc::new(1, 0),
            &path[0],
            &path[1..],
            &Leaf::Incr(1),
        )
        .unwrap()
    });
    x
}

#[test]
fn maps_nested_to_the_limit_decode_and_one_level_more_is_rejected() {
    let at_limit = nested_map(MAP_NESTING_MAX);
    assert_eq!(at_limit.store().depth(), MAP_NESTING_MAX);
    assert_eq!(
        decode::<Causal<OrMap>>(&encode(&at_limit)).unwrap(),
        at_limit
    );

    let too_deep = nested_map(MAP_NESTING_MAX + 1);
    assert_eq!(too_deep.store().depth(), MAP_NESTING_MAX + 1);
    assert!(decode::<Causal<OrMap>>(&encode(&too_deep)).is_err());
    // The same value inside a key's record counts its own map too.
    let mut r: Causal<Record> = Causal::new();
    r.join(
        &Causal::from_parts(
            Record {
                data: TypedStore::Map(at_limit.store().clone()),
                expiry: Expiry::default(),
            },
            at_limit.context().clone(),
        )
        .unwrap(),
    );
    assert_eq!(decode::<Causal<Record>>(&encode(&r)).unwrap(), r);
}

#[test]
fn hostile_deep_nesting_is_rejected_without_exhausting_the_stack() {
    // {"a": Map({"a": Map(... a million levels ...)})}: map of one entry,
    // key "a", TypedStore::Map (variant 5), again and again.
    let levels = 1_000_000;
    let mut bytes = Vec::with_capacity(4 * levels + 8);
    bytes.extend_from_slice(&[0x01, 0x01, b'a']);
    for _ in 0..levels {
        bytes.extend_from_slice(&[0x05, 0x01, 0x01, b'a']);
    }
    bytes.extend_from_slice(&[0x00, 0x00, 0x00]);
    // Run on a small stack so that unbounded recursion would fail loudly.
    let result = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(move || {
            (
                decode::<Causal<OrMap>>(&bytes).is_err(),
                decode::<Delta<OrMap>>(&bytes).is_err(),
                decode::<Causal<Record>>(&[&[0x05][..], &bytes[..]].concat()).is_err(),
            )
        })
        .unwrap()
        .join()
        .expect("decoding overflowed the stack");
    assert_eq!(result, (true, true, true));
}

// ---------------------------------------------------------------------------
// Invariants of decoded states

/// A remove delta lists the removed member with an empty store: fine in a
/// delta, but no state looks like that.
#[test]
fn a_state_with_an_entry_left_empty_is_rejected_while_the_same_delta_decodes() {
    let mut x: Causal<OrSet> = Causal::new();
    x.mutate(|s, c| s.add(c, ReplicaId(1), Bytes::from("x")));
    let rm = x.store().remove(b"x");
    let bytes = encode(&rm);
    assert_eq!(decode::<Delta<OrSet>>(&bytes).unwrap(), rm);
    assert!(
        decode::<Causal<OrSet>>(&bytes).is_err(),
        "a state keeping an empty member was accepted"
    );

    // The same for a map field whose value is empty, and a map holding an empty map.
    let mut m: Causal<OrMap> = Causal::new();
    m.mutate(|m, c| {
        m.update::<OrMap>(c, b"f", |m, c| {
            m.update::<Counter>(c, b"g", |s, c| s.add(c, ReplicaId(1), 1))
                .unwrap()
        })
        .unwrap()
    });
    let clear = m.clear();
    assert!(decode::<Delta<OrMap>>(&encode(&clear)).is_ok());
    assert!(decode::<Causal<OrMap>>(&encode(&clear)).is_err());
}

#[test]
fn a_mixture_of_a_single_type_is_rejected_in_a_state() {
    // After a type conflict, a write of the visible type ships a mixture
    // whose hidden parts are empty: a delta, not a state.
    let mut x: Causal<TypedStore> = Causal::new();
    let mut y = x.clone();
    let dx = x.mutate(|t, c| {
        t.write::<Counter>(c, |s, c| s.add(c, ReplicaId(1), 1))
            .unwrap()
    });
    y.mutate(|t, c| {
        t.write::<OrSet>(c, |s, c| s.add(c, ReplicaId(2), Bytes::from("m")))
            .unwrap()
    });
    y.apply(&dx);
    assert!(matches!(y.store(), TypedStore::Mixed(_)));
    let w = y.mutate(|t, c| {
        t.write::<OrSet>(c, |s, c| s.add(c, ReplicaId(2), Bytes::from("n")))
            .unwrap()
    });
    assert!(matches!(y.store(), TypedStore::Set(_)));
    assert!(decode::<Delta<TypedStore>>(&encode(&w)).is_ok());
    let as_state = decode::<Causal<TypedStore>>(&encode(&w));
    assert!(
        as_state.is_err(),
        "accepted a mixture as a state: {as_state:?}"
    );
    assert_eq!(decode::<Causal<TypedStore>>(&encode(&y)).unwrap(), y);
}

/// A context claiming `seq` for replica 1, with an empty counter.
fn counter_state_seen_up_to(seq: u64) -> Vec<u8> {
    // Empty store, one version-vector entry: replica 1 (4 bytes, LE), seq.
    let mut bytes = vec![0x00, 0x01, 0x01, 0x00, 0x00, 0x00];
    let mut n = seq;
    while n >= 0x80 {
        bytes.push((n as u8) | 0x80);
        n >>= 7;
    }
    bytes.push(n as u8);
    bytes.push(0x00);
    bytes
}

#[test]
fn a_replica_keeps_minting_fresh_dots_after_merging_any_decoded_state() {
    let decoded_ok = counter_state_seen_up_to(41);
    assert_eq!(
        decode::<Causal<Counter>>(&decoded_ok)
            .unwrap()
            .context()
            .max_seq(ReplicaId(1)),
        41
    );
    for seq in [u64::MAX, u64::MAX - 1, 1 << 63] {
        match decode::<Causal<Counter>>(&counter_state_seen_up_to(seq)) {
            // Refusing a sequence number with no room left is fine ...
            Err(_) => {}
            // ... accepting it means replica 1 must still be able to write.
            Ok(peer) => {
                let mut mine: Causal<Counter> = Causal::new();
                mine.join(&peer);
                for _ in 0..3 {
                    let d = mine.mutate(|s, c| s.add(c, ReplicaId(1), 1));
                    assert!(!d.is_noop());
                }
                assert_eq!(mine.store().value(), 3, "writes after seq {seq} were lost");
            }
        }
    }
}
