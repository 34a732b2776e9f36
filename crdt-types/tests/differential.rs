//! Differential tests against the `crdts` crate, where semantics coincide:
//!
//! | Meridian                   | oracle                                   |
//! |----------------------------|------------------------------------------|
//! | `Counter` (no resets)      | `crdts::PNCounter`                       |
//! | `OrSet`                    | `crdts::Orswot`                          |
//! | `LwwRegister`              | `crdts::LWWReg`, marker (HLC, replica id) |
//! | `MvRegister`               | `crdts::MVReg`                           |
//!
//! Random histories on 2–4 replicas: operations, and syncs from one replica
//! to another. A sync ships either every delta the sender has applied
//! (shuffled, some twice) or the sender's whole state; the oracle always
//! merges the sender's whole state (`CvRDT::merge`). What users see must
//! agree at every replica after every step, and after a final exchange
//! every replica must show the same.
//!
//! Raise the number of cases with `PROPTEST_CASES`.

mod common;

use common::{config, member, physical_ms, value, Shuffler};
use crdt_types::{
    Bytes, Causal, Counter, Delta, DotStore, Hlc, HlcClock, LwwRegister, MvRegister, OrSet,
    ReplicaId,
};
use crdts::{CmRDT, CvRDT, LWWReg, MVReg, Orswot, PNCounter};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use std::collections::BTreeSet;
use std::fmt::Debug;

/// A Meridian type and the `crdts` type it is compared with.
trait Pair {
    type Ours: DotStore;
    type Oracle: CvRDT + Clone + Default + Debug;
    type Op: Clone + Debug;
    /// What users see, comparable across both.
    type Seen: PartialEq + Debug;
    const NAME: &'static str;
    fn op() -> BoxedStrategy<Self::Op>;
    /// Runs `op` on both sides at `replica`; returns our delta and the HLC it used, if any.
    fn run(
        ours: &mut Causal<Self::Ours>,
        oracle: &mut Self::Oracle,
        replica: ReplicaId,
        clock: &mut HlcClock,
        op: &Self::Op,
    ) -> (Delta<Self::Ours>, Option<Hlc>);
    fn seen_ours(ours: &Self::Ours) -> Self::Seen;
    fn seen_oracle(oracle: &Self::Oracle) -> Self::Seen;
}

#[derive(Clone, Debug)]
enum Step<O> {
    Op {
        at: usize,
        op: O,
    },
    /// `to` receives what `from` has: its deltas (shuffled, duplicated) or its whole state.
    Sync {
        from: usize,
        to: usize,
        seed: u64,
        whole_state: bool,
    },
}

fn steps<P: Pair>() -> impl Strategy<Value = (usize, Vec<Step<P::Op>>)> {
    let step = prop_oneof![
        3 => (any::<usize>(), P::op()).prop_map(|(at, op)| Step::Op { at, op }),
        2 => (any::<usize>(), any::<usize>(), any::<u64>(), any::<bool>())
            .prop_map(|(from, to, seed, whole_state)| Step::Sync { from, to, seed, whole_state }),
    ];
    (2usize..=4, prop::collection::vec(step, 1..48))
}

struct Node<P: Pair> {
    id: ReplicaId,
    ours: Causal<P::Ours>,
    oracle: P::Oracle,
    clock: HlcClock,
    known: BTreeSet<usize>,
}

fn compare_all<P: Pair>(nodes: &[Node<P>], after: &dyn Debug) -> Result<(), TestCaseError> {
    for n in nodes {
        prop_assert_eq!(
            P::seen_ours(n.ours.store()),
            P::seen_oracle(&n.oracle),
            "{} at {:?} differs from the oracle after {:?}\nours {:?}\noracle {:?}",
            P::NAME,
            n.id,
            after,
            n.ours,
            n.oracle
        );
    }
    Ok(())
}

fn sync<P: Pair>(
    nodes: &mut [Node<P>],
    log: &[(Delta<P::Ours>, Option<Hlc>)],
    from: usize,
    to: usize,
    seed: u64,
    whole: bool,
) {
    let sender_state = nodes[from].ours.clone();
    let sender_oracle = nodes[from].oracle.clone();
    let sent: Vec<usize> = nodes[from].known.iter().copied().collect();
    let receiver = &mut nodes[to];
    if whole {
        receiver.ours.join(&sender_state);
    } else {
        for i in Shuffler::new(seed).with_duplicates(&sent) {
            receiver.ours.apply(&log[i].0);
        }
    }
    receiver.oracle.merge(sender_oracle);
    for i in sent {
        if let Some(hlc) = log[i].1 {
            receiver
                .clock
                .observe(hlc, 0)
                .expect("clocks here accept every stamp");
        }
        receiver.known.insert(i);
    }
}

fn differential<P: Pair>(replicas: usize, steps: &[Step<P::Op>]) -> Result<(), TestCaseError> {
    let mut nodes: Vec<Node<P>> = (0..replicas)
        .map(|i| Node {
            id: ReplicaId(i as u32 + 1),
            ours: Causal::new(),
            oracle: P::Oracle::default(),
            clock: HlcClock::new(u64::MAX),
            known: BTreeSet::new(),
        })
        .collect();
    let mut log: Vec<(Delta<P::Ours>, Option<Hlc>)> = Vec::new();
    for step in steps {
        match step {
            Step::Op { at, op } => {
                let n = &mut nodes[at % replicas];
                let out = P::run(&mut n.ours, &mut n.oracle, n.id, &mut n.clock, op);
                n.known.insert(log.len());
                log.push(out);
            }
            Step::Sync {
                from,
                to,
                seed,
                whole_state,
            } => sync(
                &mut nodes,
                &log,
                from % replicas,
                to % replicas,
                *seed,
                *whole_state,
            ),
        }
        compare_all(&nodes, step)?;
    }
    // Quiesce: two rounds around the ring deliver everything everywhere.
    for round in 0..2 * replicas {
        let (from, to) = (round % replicas, (round + 1) % replicas);
        sync(&mut nodes, &log, from, to, round as u64, round % 2 == 0);
        compare_all(&nodes, &format!("final sync {from} -> {to}"))?;
    }
    for n in &nodes[1..] {
        prop_assert_eq!(
            &n.ours,
            &nodes[0].ours,
            "{} replicas did not converge",
            P::NAME
        );
    }
    Ok(())
}

fn sorted(values: impl IntoIterator<Item = Vec<u8>>) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = values.into_iter().collect();
    v.sort();
    v
}

// ---------------------------------------------------------------------------

struct CounterVsPnCounter;

impl Pair for CounterVsPnCounter {
    type Ours = Counter;
    type Oracle = PNCounter<u32>;
    type Op = i64;
    type Seen = i64;
    const NAME: &'static str = "Counter";
    fn op() -> BoxedStrategy<i64> {
        prop_oneof![-20i64..0, 1i64..=20].boxed()
    }
    fn run(
        ours: &mut Causal<Counter>,
        oracle: &mut PNCounter<u32>,
        r: ReplicaId,
        _: &mut HlcClock,
        n: &i64,
    ) -> (Delta<Counter>, Option<Hlc>) {
        let op = if *n > 0 {
            oracle.inc_many(r.0, n.unsigned_abs())
        } else {
            oracle.dec_many(r.0, n.unsigned_abs())
        };
        oracle.apply(op);
        (ours.mutate(|s, c| s.add(c, r, *n)), None)
    }
    fn seen_ours(ours: &Counter) -> i64 {
        ours.value()
    }
    fn seen_oracle(oracle: &PNCounter<u32>) -> i64 {
        oracle
            .read()
            .to_string()
            .parse()
            .expect("small counts fit in i64")
    }
}

struct OrSetVsOrswot;

#[derive(Clone, Debug)]
enum SetOp {
    Add(Bytes),
    Remove(Bytes),
}

impl Pair for OrSetVsOrswot {
    type Ours = OrSet;
    type Oracle = Orswot<Vec<u8>, u32>;
    type Op = SetOp;
    type Seen = Vec<Vec<u8>>;
    const NAME: &'static str = "OrSet";
    fn op() -> BoxedStrategy<SetOp> {
        prop_oneof![3 => member().prop_map(SetOp::Add), 2 => member().prop_map(SetOp::Remove)]
            .boxed()
    }
    fn run(
        ours: &mut Causal<OrSet>,
        oracle: &mut Self::Oracle,
        r: ReplicaId,
        _: &mut HlcClock,
        op: &SetOp,
    ) -> (Delta<OrSet>, Option<Hlc>) {
        match op {
            SetOp::Add(m) => {
                let ctx = oracle.read_ctx().derive_add_ctx(r.0);
                oracle.apply(oracle.add(m.to_vec(), ctx));
                (ours.mutate(|s, c| s.add(c, r, m.clone())), None)
            }
            SetOp::Remove(m) => {
                let ctx = oracle.contains(&m.to_vec()).derive_rm_ctx();
                oracle.apply(oracle.rm(m.to_vec(), ctx));
                (ours.mutate(|s, _| s.remove(m)), None)
            }
        }
    }
    fn seen_ours(ours: &OrSet) -> Vec<Vec<u8>> {
        sorted(ours.members().map(|m| m.to_vec()))
    }
    fn seen_oracle(oracle: &Self::Oracle) -> Vec<Vec<u8>> {
        sorted(oracle.read().val)
    }
}

struct LwwVsLwwReg;

impl Pair for LwwVsLwwReg {
    type Ours = LwwRegister;
    /// Marker (HLC, replica id): unique, since one replica's clock never repeats.
    type Oracle = LWWReg<Option<Vec<u8>>, Option<(Hlc, u32)>>;
    type Op = (u64, Bytes);
    type Seen = Option<Vec<u8>>;
    const NAME: &'static str = "LwwRegister";
    fn op() -> BoxedStrategy<(u64, Bytes)> {
        (physical_ms(), value()).boxed()
    }
    fn run(
        ours: &mut Causal<LwwRegister>,
        oracle: &mut Self::Oracle,
        r: ReplicaId,
        clock: &mut HlcClock,
        (physical_ms, v): &(u64, Bytes),
    ) -> (Delta<LwwRegister>, Option<Hlc>) {
        let hlc = clock.now(*physical_ms);
        oracle.update(Some(v.to_vec()), Some((hlc, r.0)));
        (ours.mutate(|s, c| s.set(c, r, hlc, v.clone())), Some(hlc))
    }
    fn seen_ours(ours: &LwwRegister) -> Option<Vec<u8>> {
        ours.get().map(|v| v.to_vec())
    }
    fn seen_oracle(oracle: &Self::Oracle) -> Option<Vec<u8>> {
        oracle.val.clone()
    }
}

struct MvVsMvReg;

impl Pair for MvVsMvReg {
    type Ours = MvRegister;
    type Oracle = MVReg<Vec<u8>, u32>;
    type Op = Bytes;
    type Seen = Vec<Vec<u8>>;
    const NAME: &'static str = "MvRegister";
    fn op() -> BoxedStrategy<Bytes> {
        value().boxed()
    }
    fn run(
        ours: &mut Causal<MvRegister>,
        oracle: &mut Self::Oracle,
        r: ReplicaId,
        _: &mut HlcClock,
        v: &Bytes,
    ) -> (Delta<MvRegister>, Option<Hlc>) {
        let ctx = oracle.read_ctx().derive_add_ctx(r.0);
        oracle.apply(oracle.write(v.to_vec(), ctx));
        (ours.mutate(|s, c| s.set(c, r, v.clone())), None)
    }
    fn seen_ours(ours: &MvRegister) -> Vec<Vec<u8>> {
        sorted(ours.values().map(|v| v.to_vec()))
    }
    fn seen_oracle(oracle: &Self::Oracle) -> Vec<Vec<u8>> {
        sorted(oracle.read().val)
    }
}

proptest! {
    #![proptest_config(config(1024))]

    #[test]
    fn counter_without_resets_matches_crdts_pn_counter((replicas, steps) in steps::<CounterVsPnCounter>()) {
        differential::<CounterVsPnCounter>(replicas, &steps)?;
    }

    #[test]
    fn or_set_matches_crdts_orswot((replicas, steps) in steps::<OrSetVsOrswot>()) {
        differential::<OrSetVsOrswot>(replicas, &steps)?;
    }

    #[test]
    fn lww_register_matches_crdts_lww_reg_marked_by_hlc_and_replica((replicas, steps) in steps::<LwwVsLwwReg>()) {
        differential::<LwwVsLwwReg>(replicas, &steps)?;
    }

    #[test]
    fn mv_register_matches_crdts_mv_reg((replicas, steps) in steps::<MvVsMvReg>()) {
        differential::<MvVsMvReg>(replicas, &steps)?;
    }
}
