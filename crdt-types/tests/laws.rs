//! The lattice laws and the documented merge rules, for every type.
//!
//! Random multi-replica histories (2–4 replicas; operations, deltas
//! delivered out of order or twice, delta-interval syncs, full-state joins)
//! are checked against a reference model after every step, then the
//! replicas' final states are checked for the join laws, delta containment,
//! delivery-order independence, delta groups and canonical encoding.
//!
//! Raise the number of cases with `PROPTEST_CASES`.

mod common;

use common::*;
use crdt_types::{
    decode, encode, Bytes, Causal, Counter, Delta, Expiry, Hlc, Kind, LwwRegister, MvRegister,
    OrMap, OrSet, Record, ReplicaId, TypedStore, WrongType,
};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

/// The final-state laws, for any history of any type.
fn check_laws<S: Subject>(h: &History<S>, seed: u64) -> Result<(), TestCaseError> {
    let mut rng = Shuffler::new(seed);
    let mut states: Vec<Causal<S>> = h.replicas.iter().map(|r| r.state.clone()).collect();
    states.push(Causal::new());
    let join = |a: &Causal<S>, b: &Causal<S>| {
        let mut x = a.clone();
        x.join(b);
        x
    };

    // A counter drops a writer's older contribution once a newer one of
    // that writer is present, even where the newer one arrived through a
    // delta that skipped increments in between. Which grouping of joins
    // sees both at once depends on the order when a reset of the newer one
    // came first, so histories with increments are associative, and deltas
    // groupable, only up to a further join of the results.
    let exact = !h.ops.iter().any(|op| {
        matches!(
            op,
            Op::Data {
                leaf: Leaf::Incr(_),
                ..
            }
        )
    });

    // Join is commutative, associative and idempotent; equal results encode equally.
    for a in &states {
        prop_assert_eq!(&join(a, a), a, "join is not idempotent");
        for b in &states {
            let (ab, ba) = (join(a, b), join(b, a));
            prop_assert_eq!(&ab, &ba, "join is not commutative");
            prop_assert_eq!(encode(&ab), encode(&ba), "equal joins encode differently");
            prop_assert_eq!(&join(&ab, a), &ab, "a join does not contain its left side");
            for c in &states {
                let (left, right) = (join(&ab, c), join(a, &join(b, c)));
                if exact {
                    prop_assert_eq!(&left, &right, "join is not associative");
                } else {
                    // Grouped differently, a counter contribution may be
                    // dropped on one side only (see `exact`); joining the
                    // two results drops it on both.
                    let both = join(&left, &right);
                    prop_assert_eq!(&join(&right, &left), &both, "join is not commutative");
                    prop_assert_eq!(&join(&both, &left), &both);
                    prop_assert_eq!(&join(&both, &right), &both);
                }
            }
        }
    }

    // Every delta joins into every state as a sparse `apply` exactly as its full state would.
    for d in &h.deltas {
        let base = &states[rng.below(states.len())];
        let mut applied = base.clone();
        applied.apply(d);
        prop_assert_eq!(
            applied,
            join(base, &d.to_state()),
            "apply(delta) != join(delta as a state)"
        );
    }

    // Any subset of the deltas in any order with duplicates, then the rest,
    // equals the full-state merge of the replicas.
    let merged = h.merged();
    let all: Vec<usize> = (0..h.deltas.len()).collect();
    let (first, rest): (Vec<usize>, Vec<usize>) = all.iter().partition(|_| rng.below(2) == 0);
    let mut fresh = Causal::<S>::new();
    for i in rng
        .with_duplicates(&first)
        .into_iter()
        .chain(rng.with_duplicates(&rest))
    {
        fresh.apply(&h.deltas[i]);
    }
    prop_assert_eq!(
        &fresh,
        &merged,
        "delta delivery differs from the full-state merge"
    );
    prop_assert_eq!(encode(&fresh), encode(&merged));
    let everything = all.iter().copied().collect();
    prop_assert_eq!(
        S::view(&merged),
        h.model.seen(&everything, &Default::default()),
        "the merged state differs from the model"
    );

    // Replicas that received the same deltas are equal and encode to identical bytes.
    let mut other = Causal::<S>::new();
    for i in rng.with_duplicates(&all) {
        other.apply(&h.deltas[i]);
    }
    prop_assert_eq!(encode(&other), encode(&fresh));
    for a in &h.replicas {
        for b in &h.replicas {
            // A replica that saw a counter's newer contribution before a
            // reset of it keeps no older one; one that saw the reset first
            // may, until it joins a state that dropped it.
            if a.known == b.known && a.superseded == b.superseded {
                prop_assert_eq!(&a.state, &b.state, "replicas with the same deltas differ");
                prop_assert_eq!(encode(&a.state), encode(&b.state));
            }
        }
    }

    // Delta groups (Delta::join, in any order) apply as their deltas one by one.
    let mut order = all.clone();
    rng.shuffle(&mut order);
    for chunk in order.chunks(1 + rng.below(4)) {
        let base = &states[rng.below(states.len())];
        let mut one_by_one = base.clone();
        for &i in chunk {
            one_by_one.apply(&h.deltas[i]);
        }
        let mut shuffled = chunk.to_vec();
        rng.shuffle(&mut shuffled);
        let mut group: Delta<S> = h.deltas[shuffled[0]].clone();
        for &i in &shuffled[1..] {
            group.join(&h.deltas[i]);
        }
        let mut grouped = base.clone();
        grouped.apply(&group);
        let settled = |x: &Causal<S>| join(x, &merged);
        if exact {
            prop_assert_eq!(
                &grouped,
                &one_by_one,
                "a delta group applies differently from its deltas"
            );
        }
        prop_assert_eq!(
            settled(&grouped),
            settled(&one_by_one),
            "a delta group applies differently from its deltas"
        );
        prop_assert_eq!(
            settled(&join(base, &group.to_state())),
            settled(&one_by_one),
            "a delta group as a state differs"
        );
    }

    // States and deltas survive encoding.
    for s in &states {
        prop_assert_eq!(
            &decode::<Causal<S>>(&encode(s)).expect("own state decodes"),
            s
        );
    }
    for d in &h.deltas {
        prop_assert_eq!(
            &decode::<Delta<S>>(&encode(d)).expect("own delta decodes"),
            d
        );
    }
    Ok(())
}

macro_rules! laws_for {
    ($name:ident, $t:ty) => {
        proptest! {
            #![proptest_config(config(512))]
            #[test]
            fn $name((replicas, steps) in histories::<$t>(1..36), seed in any::<u64>()) {
                let h = run_history::<$t>(replicas, &steps)?;
                check_laws(&h, seed)?;
            }
        }
    };
}

laws_for!(
    lww_register_follows_the_model_and_the_join_laws,
    LwwRegister
);
laws_for!(mv_register_follows_the_model_and_the_join_laws, MvRegister);
laws_for!(counter_follows_the_model_and_the_join_laws, Counter);
laws_for!(or_set_follows_the_model_and_the_join_laws, OrSet);
laws_for!(expiry_follows_the_model_and_the_join_laws, Expiry);
laws_for!(
    or_map_with_nested_fields_follows_the_model_and_the_join_laws,
    OrMap
);
laws_for!(
    typed_store_with_type_conflicts_follows_the_model_and_the_join_laws,
    TypedStore
);
laws_for!(record_follows_the_model_and_the_join_laws, Record);

/// Delivers every delta to every replica.
fn converge<S: Subject>(h: &mut History<S>) -> Result<(), TestCaseError> {
    let n = h.replicas.len();
    for to in 0..n {
        for which in 0..h.deltas.len() {
            h.step(&Step::Deliver { to, which })?;
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(512))]

    /// After every replica has every delta, a counter equals the sum of the
    /// increments of each replica's *run* (its increments since its own
    /// state last lost its entry to a reset) whose latest increment no
    /// reset observed. Without resets: the sum of all increments.
    #[test]
    fn converged_counter_is_the_sum_of_increment_runs_no_reset_observed(
        (replicas, steps) in histories::<Counter>(1..36)
    ) {
        let mut h = run_history::<Counter>(replicas, &steps)?;
        converge(&mut h)?;
        let events = &h.model.events;
        let resets_observed: std::collections::BTreeSet<usize> = (0..events.len())
            .filter(|&e| matches!(h.ops[e], Op::Clear))
            .flat_map(|e| events[e].observed.iter().copied())
            .collect();
        // Runs: an increment continues its replica's run when it superseded
        // (observed) that replica's previous entry.
        let mut run_of: Vec<usize> = (0..events.len()).collect();
        let mut total: std::collections::BTreeMap<usize, i64> = Default::default();
        let mut last: std::collections::BTreeMap<usize, usize> = Default::default();
        for e in 0..events.len() {
            let Op::Data { leaf: Leaf::Incr(n), .. } = h.ops[e] else { continue };
            if let Some(&prev) = events[e].observed.iter().find(|&&p| events[p].replica == events[e].replica) {
                run_of[e] = run_of[prev];
            }
            *total.entry(run_of[e]).or_default() += n;
            last.insert(run_of[e], e);
        }
        let expected: i64 = total
            .iter()
            .filter(|(run, _)| !resets_observed.contains(&last[run]))
            .map(|(_, sum)| sum)
            .sum();
        let no_resets = !h.ops.iter().any(|op| matches!(op, Op::Clear));
        for r in &h.replicas {
            prop_assert_eq!(r.state.store().value(), expected);
            if no_resets {
                let all: i64 = h.ops.iter().map(|op| match op { Op::Data { leaf: Leaf::Incr(n), .. } => *n, _ => 0 }).sum();
                prop_assert_eq!(r.state.store().value(), all);
            }
        }
    }

    /// With clocks that observe every stamp they receive and no deletes,
    /// every replica ends showing the write with the highest (HLC, replica id).
    #[test]
    fn converged_lww_register_shows_the_highest_hlc_then_replica_id(
        (replicas, steps) in histories::<LwwRegister>(1..36)
    ) {
        let steps: Vec<Step> = steps.into_iter().filter(|s| !matches!(s, Step::Op { op: Op::Clear, .. })).collect();
        let mut h = run_history::<LwwRegister>(replicas, &steps)?;
        converge(&mut h)?;
        let highest = (0..h.ops.len()).max_by_key(|&e| (h.model.events[e].hlc, h.model.events[e].replica));
        for r in &h.replicas {
            let expected = highest.map(|e| match &h.ops[e] {
                Op::Data { leaf: Leaf::RegSet { value, .. }, .. } => value.clone(),
                _ => unreachable!(),
            });
            prop_assert_eq!(r.state.store().get().cloned(), expected);
        }
    }
}

// ---------------------------------------------------------------------------
// The documented rules, one scenario each.

const A: ReplicaId = ReplicaId(1);
const B: ReplicaId = ReplicaId(2);

fn b(s: &str) -> Bytes {
    Bytes::from(s)
}

/// Two replicas exchange their deltas.
fn exchange<S: crdt_types::DotStore + serde::Serialize>(
    x: &mut Causal<S>,
    dx: &[Delta<S>],
    y: &mut Causal<S>,
    dy: &[Delta<S>],
) {
    for d in dy {
        x.apply(d);
    }
    for d in dx {
        y.apply(d);
    }
    assert_eq!(x, y, "replicas did not converge");
    assert_eq!(encode(x), encode(y));
}

#[test]
fn set_add_wins_over_concurrent_remove() {
    let mut x: Causal<OrSet> = Causal::new();
    let add = x.mutate(|s, c| s.add(c, A, b("milk")));
    let mut y = x.clone();
    let rm = y.mutate(|s, _| s.remove(b"milk"));
    let readd = x.mutate(|s, c| s.add(c, A, b("milk")));
    exchange(&mut x, &[readd], &mut y, &[rm]);
    assert!(x.store().contains(b"milk"));
    // A remove that observed every add does remove.
    let rm_all = x.mutate(|s, _| s.remove(b"milk"));
    y.apply(&rm_all);
    y.apply(&add); // a stale add delivered late stays removed
    assert!(!y.store().contains(b"milk"));
    assert_eq!(y.store().members().count(), 0);
}

#[test]
fn map_field_update_wins_over_concurrent_field_remove_and_keeps_only_unobserved_data() {
    let mut x: Causal<OrMap> = Causal::new();
    x.mutate(|m, c| {
        m.update::<OrSet>(c, b"tags", |s, c| s.add(c, A, b("old")))
            .unwrap()
    });
    let mut y = x.clone();
    let rm = y.mutate(|m, _| m.remove(b"tags"));
    let upd = x.mutate(|m, c| {
        m.update::<OrSet>(c, b"tags", |s, c| s.add(c, A, b("new")))
            .unwrap()
    });
    exchange(&mut x, &[upd], &mut y, &[rm]);
    let tags = x
        .store()
        .get(b"tags")
        .expect("the update keeps the field")
        .read::<OrSet>()
        .unwrap()
        .unwrap();
    assert_eq!(
        tags.members().cloned().collect::<Vec<_>>(),
        vec![b("new")],
        "the removed member stays removed"
    );
}

#[test]
fn map_fields_merge_by_their_own_types() {
    let mut x: Causal<OrMap> = Causal::new();
    let mut y = x.clone();
    let dx = [
        x.mutate(|m, c| {
            m.update::<Counter>(c, b"hits", |s, c| s.add(c, A, 2))
                .unwrap()
        }),
        x.mutate(|m, c| {
            m.update::<OrSet>(c, b"who", |s, c| s.add(c, A, b("ann")))
                .unwrap()
        }),
    ];
    let dy = [
        y.mutate(|m, c| {
            m.update::<Counter>(c, b"hits", |s, c| s.add(c, B, 3))
                .unwrap()
        }),
        y.mutate(|m, c| {
            m.update::<OrSet>(c, b"who", |s, c| s.add(c, B, b("bob")))
                .unwrap()
        }),
    ];
    exchange(&mut x, &dx, &mut y, &dy);
    let m = x.store();
    assert_eq!(
        m.get(b"hits")
            .unwrap()
            .read::<Counter>()
            .unwrap()
            .unwrap()
            .value(),
        5
    );
    let who: Vec<Bytes> = m
        .get(b"who")
        .unwrap()
        .read::<OrSet>()
        .unwrap()
        .unwrap()
        .members()
        .cloned()
        .collect();
    assert_eq!(who, vec![b("ann"), b("bob")]);
}

#[test]
fn lww_highest_hlc_wins_and_replica_id_breaks_ties() {
    let mut x: Causal<LwwRegister> = Causal::new();
    let mut y = x.clone();
    let dx = x.mutate(|s, c| s.set(c, A, Hlc::new(100, 3), b("from a")));
    let dy = y.mutate(|s, c| s.set(c, B, Hlc::new(100, 2), b("from b")));
    exchange(&mut x, &[dx], &mut y, &[dy]);
    assert_eq!(x.store().get(), Some(&b("from a")), "higher HLC wins");

    let mut x: Causal<LwwRegister> = Causal::new();
    let mut y = x.clone();
    let dx = x.mutate(|s, c| s.set(c, A, Hlc::new(100, 0), b("from a")));
    let dy = y.mutate(|s, c| s.set(c, B, Hlc::new(100, 0), b("from b")));
    exchange(&mut x, &[dx], &mut y, &[dy]);
    assert_eq!(
        x.store().get(),
        Some(&b("from b")),
        "equal HLC: higher replica id wins"
    );
}

#[test]
fn mv_register_keeps_concurrent_values_until_a_later_write() {
    let mut x: Causal<MvRegister> = Causal::new();
    let mut y = x.clone();
    let dx = x.mutate(|s, c| s.set(c, A, b("1")));
    let dy = y.mutate(|s, c| s.set(c, B, b("2")));
    exchange(&mut x, &[dx], &mut y, &[dy]);
    assert_eq!(
        x.store().values().cloned().collect::<Vec<_>>(),
        vec![b("1"), b("2")]
    );
    let dz = x.mutate(|s, c| s.set(c, A, b("3")));
    y.apply(&dz);
    assert_eq!(
        y.store().values().cloned().collect::<Vec<_>>(),
        vec![b("3")]
    );
}

#[test]
fn counter_increments_add_up_and_a_reset_removes_only_what_it_observed() {
    let mut x: Causal<Counter> = Causal::new();
    let mut y = x.clone();
    let dx = x.mutate(|s, c| s.add(c, A, 5));
    let dy = y.mutate(|s, c| s.add(c, B, -2));
    exchange(&mut x, &[dx], &mut y, &[dy]);
    assert_eq!(x.store().value(), 3);

    // y resets having seen only a's 5 and its own -2; z (replica 3)
    // increments concurrently for the first time: its increment survives.
    let mut z = x.clone();
    let reset = y.clear();
    y.apply(&reset);
    let dz = z.mutate(|s, c| s.add(c, ReplicaId(3), 7));
    exchange(
        &mut z,
        std::slice::from_ref(&dz),
        &mut y,
        std::slice::from_ref(&reset),
    );
    assert_eq!(y.store().value(), 7);
    // A deleted and reused counter starts from zero: old counts do not come back.
    let del = y.clear();
    y.apply(&del);
    let reuse = y.mutate(|s, c| s.add(c, A, 1));
    for d in [&reset, &dz, &del, &reuse] {
        x.apply(d);
    }
    assert_eq!(x, y);
    assert_eq!(x.store().value(), 1);
    assert_eq!(x.store().entries().len(), 1);
}

/// The causal counter keeps one entry per replica: an increment carries
/// everything its replica counted since the last reset *that replica*
/// observed. So an increment concurrent with a reset brings back the
/// incrementing replica's earlier count, which the reset had observed.
#[test]
fn counter_increment_concurrent_with_reset_carries_its_replicas_earlier_count() {
    let mut x: Causal<Counter> = Causal::new();
    x.mutate(|s, c| s.add(c, A, 10));
    let mut y = x.clone();
    let reset = y.clear();
    y.apply(&reset);
    let inc = x.mutate(|s, c| s.add(c, A, 1));
    exchange(&mut x, &[inc], &mut y, &[reset]);
    assert_eq!(x.store().value(), 11);
}

/// A replica that missed an increment still counts each writer once: the
/// newer contribution carries the missed one's count, and its context names
/// only the missed entry, so the older entry must go when the newer arrives.
#[test]
fn counter_replica_that_missed_an_increment_counts_each_writer_once() {
    let mut writer: Causal<Counter> = Causal::new();
    let mut behind = writer.clone();
    let d1 = writer.mutate(|s, c| s.add(c, A, 32));
    let _lost = writer.mutate(|s, c| s.add(c, A, 2));
    let d3 = writer.mutate(|s, c| s.add(c, A, 5));
    behind.apply(&d1);
    behind.apply(&d3);
    assert_eq!(behind.store().value(), 39);
    assert_eq!(behind.store().entries().len(), 1);
    // The same through a whole-state join of the two halves.
    let mut other: Causal<Counter> = Causal::new();
    other.apply(&d3);
    let mut first: Causal<Counter> = Causal::new();
    first.apply(&d1);
    first.join(&other);
    assert_eq!(first, behind);
    // And inside a map field.
    let mut writer: Causal<OrMap> = Causal::new();
    let mut behind = writer.clone();
    let inc = |w: &mut Causal<OrMap>, n| {
        w.mutate(|m, c| {
            m.update::<Counter>(c, b"visits", |s, c| s.add(c, A, n))
                .unwrap()
        })
    };
    let d1 = inc(&mut writer, 32);
    let _lost = inc(&mut writer, 2);
    let d3 = inc(&mut writer, 5);
    behind.apply(&d1);
    behind.apply(&d3);
    let visits = behind.store().get(b"visits").unwrap();
    assert_eq!(visits.read::<Counter>().unwrap().unwrap().value(), 39);
}

#[test]
fn expiry_longest_deadline_wins_persist_beats_deadlines_and_later_writes_supersede() {
    let mut x: Causal<Expiry> = Causal::new();
    let mut y = x.clone();
    let dx = x.mutate(|s, c| s.expire_at(c, A, 9_000));
    let dy = y.mutate(|s, c| s.expire_at(c, B, 5_000));
    exchange(&mut x, &[dx], &mut y, &[dy]);
    assert_eq!(
        x.store().deadline_ms(),
        Some(9_000),
        "the longest concurrent deadline wins"
    );

    let mut y2 = x.clone();
    let persist = x.mutate(|s, c| s.persist(c, A).expect("there is a deadline"));
    let longer = y2.mutate(|s, c| s.expire_at(c, B, 60_000));
    exchange(&mut x, &[persist], &mut y2, &[longer]);
    assert_eq!(
        x.store().deadline_ms(),
        None,
        "persist beats a concurrent deadline"
    );
    assert!(
        x.store().persist(x.context(), A).is_none(),
        "nothing left to persist"
    );

    let shorter = x.mutate(|s, c| s.expire_at(c, A, 1_000));
    y2.apply(&shorter);
    assert_eq!(
        y2.store().deadline_ms(),
        Some(1_000),
        "a later expire supersedes what it observed"
    );
}

#[test]
fn deleting_a_record_removes_its_value_and_expiry_as_observed() {
    let mut x: Causal<Record> = Causal::new();
    x.mutate(|r, c| Record::data_delta(r.data.write::<Counter>(c, |s, c| s.add(c, A, 4)).unwrap()));
    x.mutate(|r, c| Record::expiry_delta(r.expiry.expire_at(c, A, 7_000)));
    let mut y = x.clone();
    let del = y.clear();
    y.apply(&del);
    assert!(y.is_bottom());
    let inc = x.mutate(|r, c| {
        Record::data_delta(r.data.write::<Counter>(c, |s, c| s.add(c, B, 1)).unwrap())
    });
    exchange(&mut x, &[inc], &mut y, &[del]);
    assert_eq!(
        view_of(&x.store().data),
        View::Counter(1),
        "only the unobserved increment survives the delete"
    );
    assert_eq!(x.store().expiry.deadline_ms(), None);
}

/// Makes a value of one type at a replica.
type Creator = fn(&TypedStore, &crdt_types::CausalContext, ReplicaId) -> Delta<TypedStore>;

#[test]
fn concurrent_creation_with_different_types_shows_the_highest_precedence_everywhere() {
    // map > set > counter > mvregister > register
    let creators: [(Kind, Creator); 5] = [
        (Kind::Register, |t, c, r| {
            t.write::<LwwRegister>(c, |s, c| s.set(c, r, Hlc::new(1, 0), b("v")))
                .unwrap()
        }),
        (Kind::MvRegister, |t, c, r| {
            t.write::<MvRegister>(c, |s, c| s.set(c, r, b("v")))
                .unwrap()
        }),
        (Kind::Counter, |t, c, r| {
            t.write::<Counter>(c, |s, c| s.add(c, r, 1)).unwrap()
        }),
        (Kind::Set, |t, c, r| {
            t.write::<OrSet>(c, |s, c| s.add(c, r, b("m"))).unwrap()
        }),
        (Kind::Map, |t, c, r| {
            t.write::<OrMap>(c, |m, c| {
                m.update::<Counter>(c, b"f", |s, c| s.add(c, r, 1)).unwrap()
            })
            .unwrap()
        }),
    ];
    for (i, (low, make_low)) in creators.iter().enumerate() {
        for (high, make_high) in &creators[i + 1..] {
            let mut x: Causal<TypedStore> = Causal::new();
            let mut y = x.clone();
            let dx = x.mutate(|t, c| make_low(t, c, A));
            let dy = y.mutate(|t, c| make_high(t, c, B));
            exchange(&mut x, &[dx], &mut y, &[dy]);
            assert_eq!(x.store().kind(), Some(*high), "{low} vs {high}");
            // Operations of the hidden type fail with WRONGTYPE ...
            let err = x
                .store()
                .write::<LwwRegister>(x.context(), |s, c| s.set(c, A, Hlc::new(2, 0), b("w")));
            if *high != Kind::Register {
                assert_eq!(
                    err.unwrap_err(),
                    WrongType {
                        wanted: Kind::Register,
                        found: *high
                    }
                );
            }
            // ... and a write of the visible type removes the hidden data it observed.
            let w = x.mutate(|t, c| make_high(t, c, A));
            y.apply(&w);
            assert_eq!(x, y);
            assert!(
                matches!(
                    (high, x.store()),
                    (Kind::MvRegister, TypedStore::MvRegister(_))
                        | (Kind::Counter, TypedStore::Counter(_))
                        | (Kind::Set, TypedStore::Set(_))
                        | (Kind::Map, TypedStore::Map(_))
                ),
                "hidden {low} data survived a write: {:?}",
                x.store()
            );
        }
    }
}
