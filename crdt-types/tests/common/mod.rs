//! Shared machinery for the crdt-types test suites.
//!
//! - [`Op`]: one user operation (a write at a map path, an expiry change or
//!   a delete), generated at random and applied through the crate's
//!   delta-mutators by [`Subject::run`].
//! - [`Model`]: a reference model of the documented semantics, written in
//!   terms of events rather than lattices: a write is visible at a replica
//!   when the replica received it and no event it received observed it.
//! - [`run_history`]: random multi-replica histories (operations, single
//!   deltas delivered out of order or twice, delta-interval syncs, full-state
//!   joins) that check every replica against the model after every step.
//!
//! Test code only: it panics freely and favours clarity over speed.
#![allow(dead_code)]

use crdt_types::{
    Bytes, Causal, CausalContext, Counter, Delta, DotStore, Expiry, ExpiryEntry, Hlc, HlcClock,
    Kind, LwwRegister, MvRegister, OrMap, OrSet, Record, ReplicaId, TypedStore, WrongType,
};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// Proptest configuration: `default_cases` cases unless `PROPTEST_CASES` is set.
pub fn config(default_cases: u32) -> ProptestConfig {
    if std::env::var_os("PROPTEST_CASES").is_some() {
        ProptestConfig::default()
    } else {
        ProptestConfig::with_cases(default_cases)
    }
}

// ---------------------------------------------------------------------------
// Operations

/// The operation at the end of a map path.
#[derive(Clone, Debug)]
pub enum Leaf {
    /// LWW register set; the HLC is taken from the replica's clock at this physical time.
    RegSet { physical_ms: u64, value: Bytes },
    /// Multi-value register set.
    MvSet(Bytes),
    /// Counter increment (negative: decrement).
    Incr(i64),
    /// Set add.
    SetAdd(Bytes),
    /// Set remove.
    SetRemove(Bytes),
    /// Removal of a field of the map at the path.
    FieldRemove(Bytes),
}

impl Leaf {
    /// The type the operation works on.
    pub fn kind(&self) -> Kind {
        match self {
            Leaf::RegSet { .. } => Kind::Register,
            Leaf::MvSet(_) => Kind::MvRegister,
            Leaf::Incr(_) => Kind::Counter,
            Leaf::SetAdd(_) | Leaf::SetRemove(_) => Kind::Set,
            Leaf::FieldRemove(_) => Kind::Map,
        }
    }
}

/// One user operation on one replica's copy of a value.
#[derive(Clone, Debug)]
pub enum Op {
    /// `leaf` on the value at `path` (map fields from the top).
    Data { path: Vec<Bytes>, leaf: Leaf },
    /// Expire at a deadline (ms).
    ExpireAt(u64),
    /// Remove the deadline.
    Persist,
    /// Delete everything observed (`Causal::clear`).
    Clear,
}

fn pick(options: &'static [&'static str]) -> impl Strategy<Value = Bytes> + Clone {
    prop::sample::select(options).prop_map(Bytes::from)
}

/// Register and MV-register values.
pub fn value() -> impl Strategy<Value = Bytes> + Clone {
    pick(&["a", "b", "c", "d"])
}

/// Set members.
pub fn member() -> impl Strategy<Value = Bytes> + Clone {
    pick(&["x", "y", "z"])
}

/// Map fields: few, so that types and updates collide.
pub fn field() -> impl Strategy<Value = Bytes> + Clone {
    pick(&["f", "g"])
}

/// Physical times: a narrow range, so HLC ties between replicas happen.
pub fn physical_ms() -> impl Strategy<Value = u64> + Clone {
    0u64..40
}

pub fn leaf_reg() -> BoxedStrategy<Leaf> {
    (physical_ms(), value())
        .prop_map(|(physical_ms, value)| Leaf::RegSet { physical_ms, value })
        .boxed()
}
pub fn leaf_mv() -> BoxedStrategy<Leaf> {
    value().prop_map(Leaf::MvSet).boxed()
}
pub fn leaf_incr() -> BoxedStrategy<Leaf> {
    (-5i64..=10).prop_map(Leaf::Incr).boxed()
}
pub fn leaf_set() -> BoxedStrategy<Leaf> {
    prop_oneof![3 => member().prop_map(Leaf::SetAdd), 2 => member().prop_map(Leaf::SetRemove)]
        .boxed()
}

/// Any leaf of a data type (not a field removal).
pub fn leaf_value() -> BoxedStrategy<Leaf> {
    prop_oneof![leaf_reg(), leaf_mv(), leaf_incr(), leaf_set()].boxed()
}

fn data(path: Vec<Bytes>, leaf: Leaf) -> Op {
    Op::Data { path, leaf }
}

/// Operations of one plain type at the top, plus deletes.
pub fn plain_ops(leaf: BoxedStrategy<Leaf>) -> BoxedStrategy<Op> {
    prop_oneof![8 => leaf.prop_map(|l| data(vec![], l)), 1 => Just(Op::Clear)].boxed()
}

/// Operations on a value of any type: writes at the top or in nested map
/// fields (up to two levels), field removals, deletes.
pub fn typed_ops() -> BoxedStrategy<Op> {
    let path = prop::collection::vec(field(), 0..=2);
    prop_oneof![
        8 => (path.clone(), leaf_value()).prop_map(|(p, l)| data(p, l)),
        2 => (path, field()).prop_map(|(p, f)| data(p, Leaf::FieldRemove(f))),
        1 => Just(Op::Clear),
    ]
    .boxed()
}

/// Operations on a map: every write is at least one field deep.
pub fn map_ops() -> BoxedStrategy<Op> {
    let path = prop::collection::vec(field(), 1..=3);
    prop_oneof![
        8 => (path.clone(), leaf_value()).prop_map(|(p, l)| data(p, l)),
        2 => (prop::collection::vec(field(), 0..=2), field()).prop_map(|(p, f)| data(p, Leaf::FieldRemove(f))),
        1 => Just(Op::Clear),
    ]
    .boxed()
}

/// Expiry operations, plus deletes.
pub fn expiry_ops() -> BoxedStrategy<Op> {
    prop_oneof![
        4 => (1_000u64..1_010).prop_map(Op::ExpireAt),
        2 => Just(Op::Persist),
        1 => Just(Op::Clear),
    ]
    .boxed()
}

/// Operations on a key: its value and its expiry.
pub fn record_ops() -> BoxedStrategy<Op> {
    prop_oneof![4 => typed_ops(), 1 => expiry_ops()].boxed()
}

// ---------------------------------------------------------------------------
// Running operations through the crate

/// What running an operation on a replica gave.
#[derive(Debug)]
pub enum Outcome<S> {
    /// The delta the mutator returned.
    Delta(Delta<S>),
    /// The operation was refused: the value holds another type.
    WrongType(WrongType),
    /// The operation does nothing here (persist without a deadline).
    Skipped,
}

fn from_result<S>(r: Result<Delta<S>, WrongType>) -> Outcome<S> {
    match r {
        Ok(d) => Outcome::Delta(d),
        Err(e) => Outcome::WrongType(e),
    }
}

/// What a user sees of a value (and its deadline).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum View {
    Empty,
    Register(Bytes),
    /// The concurrent values, sorted.
    Mv(Vec<Bytes>),
    Counter(i64),
    Set(BTreeSet<Bytes>),
    Map(BTreeMap<Bytes, View>),
}

/// A value's view and its deadline.
pub type Seen = (View, Option<u64>);

/// A CRDT type under test: how operations map onto its mutators and what a
/// user sees of it.
pub trait Subject: DotStore + Serialize + DeserializeOwned + 'static {
    const NAME: &'static str;
    fn ops() -> BoxedStrategy<Op>;
    fn run(state: &Causal<Self>, replica: ReplicaId, hlc: Hlc, op: &Op) -> Outcome<Self>;
    fn view(state: &Causal<Self>) -> Seen;
}

/// Writes `leaf` at `path` below a typed value.
pub fn write_path(
    ts: &TypedStore,
    ctx: &CausalContext,
    replica: ReplicaId,
    hlc: Hlc,
    path: &[Bytes],
    leaf: &Leaf,
) -> Result<Delta<TypedStore>, WrongType> {
    let Some((field, rest)) = path.split_first() else {
        return write_leaf(ts, ctx, replica, hlc, leaf);
    };
    // A nested mutator cannot return its error through `write`: keep it aside.
    let mut nested = Ok(());
    let delta = ts.write::<OrMap>(ctx, |m, c| {
        update_field(m, c, replica, hlc, field, rest, leaf).unwrap_or_else(|e| {
            nested = Err(e);
            Delta::default()
        })
    })?;
    nested.map(|()| delta)
}

fn write_leaf(
    ts: &TypedStore,
    ctx: &CausalContext,
    replica: ReplicaId,
    hlc: Hlc,
    leaf: &Leaf,
) -> Result<Delta<TypedStore>, WrongType> {
    match leaf {
        Leaf::RegSet { value, .. } => {
            ts.write::<LwwRegister>(ctx, |s, c| s.set(c, replica, hlc, value.clone()))
        }
        Leaf::MvSet(v) => ts.write::<MvRegister>(ctx, |s, c| s.set(c, replica, v.clone())),
        Leaf::Incr(n) => ts.write::<Counter>(ctx, |s, c| s.add(c, replica, *n)),
        Leaf::SetAdd(m) => ts.write::<OrSet>(ctx, |s, c| s.add(c, replica, m.clone())),
        Leaf::SetRemove(m) => ts.write::<OrSet>(ctx, |s, _| s.remove(m)),
        Leaf::FieldRemove(f) => ts.write::<OrMap>(ctx, |m, _| m.remove(f)),
    }
}

/// Writes `leaf` at `rest` below field `field` of map `m`.
pub fn update_field(
    m: &OrMap,
    ctx: &CausalContext,
    replica: ReplicaId,
    hlc: Hlc,
    field: &[u8],
    rest: &[Bytes],
    leaf: &Leaf,
) -> Result<Delta<OrMap>, WrongType> {
    if let Some((next, rest)) = rest.split_first() {
        let mut nested = Ok(());
        let delta = m.update::<OrMap>(ctx, field, |inner, c| {
            update_field(inner, c, replica, hlc, next, rest, leaf).unwrap_or_else(|e| {
                nested = Err(e);
                Delta::default()
            })
        })?;
        return nested.map(|()| delta);
    }
    match leaf {
        Leaf::RegSet { value, .. } => {
            m.update::<LwwRegister>(ctx, field, |s, c| s.set(c, replica, hlc, value.clone()))
        }
        Leaf::MvSet(v) => m.update::<MvRegister>(ctx, field, |s, c| s.set(c, replica, v.clone())),
        Leaf::Incr(n) => m.update::<Counter>(ctx, field, |s, c| s.add(c, replica, *n)),
        Leaf::SetAdd(x) => m.update::<OrSet>(ctx, field, |s, c| s.add(c, replica, x.clone())),
        Leaf::SetRemove(x) => m.update::<OrSet>(ctx, field, |s, _| s.remove(x)),
        Leaf::FieldRemove(g) => m.update::<OrMap>(ctx, field, |inner, _| inner.remove(g)),
    }
}

/// What a user sees of a typed value.
pub fn view_of(ts: &TypedStore) -> View {
    match ts.kind() {
        None => View::Empty,
        Some(Kind::Register) => view_reg(ts.read::<LwwRegister>().unwrap().unwrap()),
        Some(Kind::MvRegister) => view_mv(ts.read::<MvRegister>().unwrap().unwrap()),
        Some(Kind::Counter) => View::Counter(ts.read::<Counter>().unwrap().unwrap().value()),
        Some(Kind::Set) => view_set(ts.read::<OrSet>().unwrap().unwrap()),
        Some(Kind::Map) => view_map(ts.read::<OrMap>().unwrap().unwrap()),
    }
}

pub fn view_reg(r: &LwwRegister) -> View {
    r.get().map_or(View::Empty, |v| View::Register(v.clone()))
}

pub fn view_mv(r: &MvRegister) -> View {
    let mut values: Vec<Bytes> = r.values().cloned().collect();
    values.sort();
    if values.is_empty() {
        View::Empty
    } else {
        View::Mv(values)
    }
}

pub fn view_counter(c: &Counter) -> View {
    if c.is_bottom() {
        View::Empty
    } else {
        View::Counter(c.value())
    }
}

pub fn view_set(s: &OrSet) -> View {
    let members: BTreeSet<Bytes> = s.members().cloned().collect();
    if members.is_empty() {
        View::Empty
    } else {
        View::Set(members)
    }
}

pub fn view_map(m: &OrMap) -> View {
    let fields: BTreeMap<Bytes, View> = m.iter().map(|(f, ts)| (f.clone(), view_of(ts))).collect();
    if fields.is_empty() {
        View::Empty
    } else {
        View::Map(fields)
    }
}

fn plain<S: DotStore>(
    state: &Causal<S>,
    op: &Op,
    write: impl FnOnce(&S, &CausalContext, &Leaf) -> Delta<S>,
) -> Outcome<S> {
    match op {
        Op::Data { path, leaf } if path.is_empty() => {
            Outcome::Delta(write(state.store(), state.context(), leaf))
        }
        Op::Clear => Outcome::Delta(state.clear()),
        other => panic!("operation {other:?} does not apply to this type"),
    }
}

impl Subject for LwwRegister {
    const NAME: &'static str = "LwwRegister";
    fn ops() -> BoxedStrategy<Op> {
        plain_ops(leaf_reg())
    }
    fn run(state: &Causal<Self>, replica: ReplicaId, hlc: Hlc, op: &Op) -> Outcome<Self> {
        plain(state, op, |s, c, leaf| match leaf {
            Leaf::RegSet { value, .. } => s.set(c, replica, hlc, value.clone()),
            other => panic!("{other:?} on a register"),
        })
    }
    fn view(state: &Causal<Self>) -> Seen {
        (view_reg(state.store()), None)
    }
}

impl Subject for MvRegister {
    const NAME: &'static str = "MvRegister";
    fn ops() -> BoxedStrategy<Op> {
        plain_ops(leaf_mv())
    }
    fn run(state: &Causal<Self>, replica: ReplicaId, _: Hlc, op: &Op) -> Outcome<Self> {
        plain(state, op, |s, c, leaf| match leaf {
            Leaf::MvSet(v) => s.set(c, replica, v.clone()),
            other => panic!("{other:?} on an MV register"),
        })
    }
    fn view(state: &Causal<Self>) -> Seen {
        (view_mv(state.store()), None)
    }
}

impl Subject for Counter {
    const NAME: &'static str = "Counter";
    fn ops() -> BoxedStrategy<Op> {
        plain_ops(leaf_incr())
    }
    fn run(state: &Causal<Self>, replica: ReplicaId, _: Hlc, op: &Op) -> Outcome<Self> {
        plain(state, op, |s, c, leaf| match leaf {
            Leaf::Incr(n) => s.add(c, replica, *n),
            other => panic!("{other:?} on a counter"),
        })
    }
    fn view(state: &Causal<Self>) -> Seen {
        (view_counter(state.store()), None)
    }
}

impl Subject for OrSet {
    const NAME: &'static str = "OrSet";
    fn ops() -> BoxedStrategy<Op> {
        plain_ops(leaf_set())
    }
    fn run(state: &Causal<Self>, replica: ReplicaId, _: Hlc, op: &Op) -> Outcome<Self> {
        plain(state, op, |s, c, leaf| match leaf {
            Leaf::SetAdd(m) => s.add(c, replica, m.clone()),
            Leaf::SetRemove(m) => s.remove(m),
            other => panic!("{other:?} on a set"),
        })
    }
    fn view(state: &Causal<Self>) -> Seen {
        (view_set(state.store()), None)
    }
}

impl Subject for Expiry {
    const NAME: &'static str = "Expiry";
    fn ops() -> BoxedStrategy<Op> {
        expiry_ops()
    }
    fn run(state: &Causal<Self>, replica: ReplicaId, _: Hlc, op: &Op) -> Outcome<Self> {
        let (s, c) = (state.store(), state.context());
        match op {
            Op::ExpireAt(ms) => Outcome::Delta(s.expire_at(c, replica, *ms)),
            Op::Persist => s
                .persist(c, replica)
                .map_or(Outcome::Skipped, Outcome::Delta),
            Op::Clear => Outcome::Delta(state.clear()),
            other => panic!("{other:?} on an expiry"),
        }
    }
    fn view(state: &Causal<Self>) -> Seen {
        (View::Empty, state.store().deadline_ms())
    }
}

impl Subject for OrMap {
    const NAME: &'static str = "OrMap";
    fn ops() -> BoxedStrategy<Op> {
        map_ops()
    }
    fn run(state: &Causal<Self>, replica: ReplicaId, hlc: Hlc, op: &Op) -> Outcome<Self> {
        let (m, c) = (state.store(), state.context());
        match op {
            Op::Data {
                path,
                leaf: Leaf::FieldRemove(g),
            } if path.is_empty() => Outcome::Delta(m.remove(g)),
            Op::Data { path, leaf } => {
                let (field, rest) = path
                    .split_first()
                    .expect("map writes are at least one field deep");
                from_result(update_field(m, c, replica, hlc, field, rest, leaf))
            }
            Op::Clear => Outcome::Delta(state.clear()),
            other => panic!("{other:?} on a map"),
        }
    }
    fn view(state: &Causal<Self>) -> Seen {
        (view_map(state.store()), None)
    }
}

impl Subject for TypedStore {
    const NAME: &'static str = "TypedStore";
    fn ops() -> BoxedStrategy<Op> {
        typed_ops()
    }
    fn run(state: &Causal<Self>, replica: ReplicaId, hlc: Hlc, op: &Op) -> Outcome<Self> {
        match op {
            Op::Data { path, leaf } => from_result(write_path(
                state.store(),
                state.context(),
                replica,
                hlc,
                path,
                leaf,
            )),
            Op::Clear => Outcome::Delta(state.clear()),
            other => panic!("{other:?} on a typed value"),
        }
    }
    fn view(state: &Causal<Self>) -> Seen {
        (view_of(state.store()), None)
    }
}

impl Subject for Record {
    const NAME: &'static str = "Record";
    fn ops() -> BoxedStrategy<Op> {
        record_ops()
    }
    fn run(state: &Causal<Self>, replica: ReplicaId, hlc: Hlc, op: &Op) -> Outcome<Self> {
        let (r, c) = (state.store(), state.context());
        match op {
            Op::Data { path, leaf } => from_result(
                write_path(&r.data, c, replica, hlc, path, leaf).map(Record::data_delta),
            ),
            Op::ExpireAt(ms) => {
                Outcome::Delta(Record::expiry_delta(r.expiry.expire_at(c, replica, *ms)))
            }
            Op::Persist => r.expiry.persist(c, replica).map_or(Outcome::Skipped, |d| {
                Outcome::Delta(Record::expiry_delta(d))
            }),
            Op::Clear => Outcome::Delta(state.clear()),
        }
    }
    fn view(state: &Causal<Self>) -> Seen {
        (
            view_of(&state.store().data),
            state.store().expiry.deadline_ms(),
        )
    }
}

// ---------------------------------------------------------------------------
// The reference model

/// Which part of a key an event writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    Data(Kind),
    Expiry,
}

/// What an event leaves behind when nothing later observed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Payload {
    /// Nothing: the event only removes what it observed.
    Remove,
    Reg(Bytes),
    Mv(Bytes),
    /// A counter entry: the replica's contribution so far.
    Count(i64),
    /// A set add (the member is in [`Event::member`]).
    Add,
    Expiry(ExpiryEntry),
}

/// One operation as the model records it.
#[derive(Clone, Debug)]
pub struct Event {
    pub replica: ReplicaId,
    pub path: Vec<Bytes>,
    pub slot: Slot,
    pub member: Option<Bytes>,
    pub payload: Payload,
    pub hlc: Hlc,
    /// The events this one supersedes or removes: those visible at its
    /// replica when it happened, as the documented rules select them.
    pub observed: BTreeSet<usize>,
}

/// What the model says an operation does.
#[derive(Debug, PartialEq, Eq)]
pub enum ModelOutcome {
    Event(usize),
    WrongType(WrongType),
    Skipped,
}

/// Events and which replica knows which.
#[derive(Clone, Debug, Default)]
pub struct Model {
    pub events: Vec<Event>,
}

fn extends(path: &[Bytes], prefix: &[Bytes]) -> bool {
    path.len() > prefix.len() && path.starts_with(prefix)
}

impl Model {
    /// The visible events for a replica that knows `known`: writes it
    /// received that no event it received observed, less the counter
    /// contributions it saw `superseded`.
    pub fn live(&self, known: &BTreeSet<usize>, superseded: &BTreeSet<usize>) -> Vec<usize> {
        let covered: BTreeSet<usize> = known
            .iter()
            .flat_map(|&e| self.events[e].observed.iter().copied())
            .collect();
        known
            .iter()
            .copied()
            .filter(|e| {
                self.events[*e].payload != Payload::Remove
                    && !covered.contains(e)
                    && !superseded.contains(e)
            })
            .collect()
    }

    /// A counter contribution is cumulative: once a replica sees a newer
    /// visible contribution of the same writer to the same counter, the
    /// older one is gone for good (it may have missed the increment in
    /// between, whose context named the older one).
    pub fn supersede(&self, known: &BTreeSet<usize>, superseded: &mut BTreeSet<usize>) {
        let mut newest: BTreeMap<(ReplicaId, &[Bytes]), usize> = BTreeMap::new();
        for e in self.live(known, superseded) {
            let ev = self.ev(e);
            if ev.slot != Slot::Data(Kind::Counter) {
                continue;
            }
            if let Some(older) = newest.insert((ev.replica, &ev.path[..]), e) {
                // `live` is in event order, so `e` is the newer.
                superseded.insert(older);
            }
        }
    }

    fn ev(&self, e: usize) -> &Event {
        &self.events[e]
    }

    /// The types holding visible data at `path` (a map when something below is visible).
    fn kinds_at(&self, live: &[usize], path: &[Bytes]) -> BTreeSet<Kind> {
        live.iter()
            .filter_map(|&e| match self.ev(e).slot {
                Slot::Data(k) if self.ev(e).path == path => Some(k),
                Slot::Data(_) if extends(&self.ev(e).path, path) => Some(Kind::Map),
                _ => None,
            })
            .collect()
    }

    /// The visible type at `path`: the highest by precedence map > set >
    /// counter > mvregister > register (which is `Kind`'s order).
    pub fn visible_kind(&self, live: &[usize], path: &[Bytes]) -> Option<Kind> {
        self.kinds_at(live, path).into_iter().max()
    }

    /// Visible data at `path` of types other than `kind`: what a write of `kind` removes.
    fn others(&self, live: &[usize], path: &[Bytes], kind: Kind) -> Vec<usize> {
        live.iter()
            .copied()
            .filter(|&e| match self.ev(e).slot {
                Slot::Data(k) => {
                    (self.ev(e).path == path && k != kind)
                        || (kind != Kind::Map && extends(&self.ev(e).path, path))
                }
                Slot::Expiry => false,
            })
            .collect()
    }

    /// Records operation `op` made by `replica` knowing `known`; on success
    /// the new event is added to `known`.
    pub fn apply(
        &mut self,
        known: &mut BTreeSet<usize>,
        superseded: &BTreeSet<usize>,
        replica: ReplicaId,
        hlc: Hlc,
        op: &Op,
    ) -> ModelOutcome {
        let live = self.live(known, superseded);
        let event = match op {
            Op::Data { path, leaf } => {
                // Every map on the way must be a map (or nothing), the leaf its own type.
                for depth in 0..=path.len() {
                    let wanted = if depth < path.len() {
                        Kind::Map
                    } else {
                        leaf.kind()
                    };
                    if let Some(found) = self.visible_kind(&live, &path[..depth]) {
                        if found != wanted {
                            return ModelOutcome::WrongType(WrongType { wanted, found });
                        }
                    }
                }
                let mut observed: BTreeSet<usize> = BTreeSet::new();
                for depth in 0..path.len() {
                    observed.extend(self.others(&live, &path[..depth], Kind::Map));
                }
                observed.extend(self.others(&live, path, leaf.kind()));
                let here = |k: Kind| -> Vec<usize> {
                    live.iter()
                        .copied()
                        .filter(|&e| self.ev(e).slot == Slot::Data(k) && self.ev(e).path == *path)
                        .collect()
                };
                let (payload, member, mine) = match leaf {
                    Leaf::RegSet { value, .. } => {
                        (Payload::Reg(value.clone()), None, here(Kind::Register))
                    }
                    Leaf::MvSet(v) => (Payload::Mv(v.clone()), None, here(Kind::MvRegister)),
                    Leaf::Incr(n) => {
                        let own: Vec<usize> = here(Kind::Counter)
                            .into_iter()
                            .filter(|&e| self.ev(e).replica == replica)
                            .collect();
                        let base = own.iter().fold(0i64, |acc, &e| match self.ev(e).payload {
                            Payload::Count(v) => acc.wrapping_add(v),
                            _ => unreachable!("counter events carry counts"),
                        });
                        (Payload::Count(base.wrapping_add(*n)), None, own)
                    }
                    Leaf::SetAdd(m) | Leaf::SetRemove(m) => {
                        let adds: Vec<usize> = here(Kind::Set)
                            .into_iter()
                            .filter(|&e| self.ev(e).member.as_ref() == Some(m))
                            .collect();
                        if matches!(leaf, Leaf::SetAdd(_)) {
                            (Payload::Add, Some(m.clone()), adds)
                        } else {
                            (Payload::Remove, None, adds)
                        }
                    }
                    Leaf::FieldRemove(g) => {
                        let mut below = path.clone();
                        below.push(g.clone());
                        let gone = live
                            .iter()
                            .copied()
                            .filter(|&e| self.ev(e).path.starts_with(&below))
                            .collect();
                        (Payload::Remove, None, gone)
                    }
                };
                observed.extend(mine);
                Event {
                    replica,
                    path: path.clone(),
                    slot: Slot::Data(leaf.kind()),
                    member,
                    payload,
                    hlc,
                    observed,
                }
            }
            Op::ExpireAt(_) | Op::Persist => {
                let expiry: BTreeSet<usize> = live
                    .iter()
                    .copied()
                    .filter(|&e| self.ev(e).slot == Slot::Expiry)
                    .collect();
                let entry = match op {
                    Op::ExpireAt(ms) => ExpiryEntry::Deadline(*ms),
                    _ if self.deadline(&live).is_none() => return ModelOutcome::Skipped,
                    _ => ExpiryEntry::Persist,
                };
                Event {
                    replica,
                    path: vec![],
                    slot: Slot::Expiry,
                    member: None,
                    payload: Payload::Expiry(entry),
                    hlc,
                    observed: expiry,
                }
            }
            Op::Clear => Event {
                replica,
                path: vec![],
                slot: Slot::Data(Kind::Map),
                member: None,
                payload: Payload::Remove,
                hlc,
                observed: live.iter().copied().collect(),
            },
        };
        self.events.push(event);
        let id = self.events.len() - 1;
        known.insert(id);
        ModelOutcome::Event(id)
    }

    /// The deadline in force: none if any visible persist, else the latest visible deadline.
    pub fn deadline(&self, live: &[usize]) -> Option<u64> {
        let mut deadline = None;
        for &e in live {
            match self.ev(e).payload {
                Payload::Expiry(ExpiryEntry::Persist) => return None,
                Payload::Expiry(ExpiryEntry::Deadline(ms)) => deadline = deadline.max(Some(ms)),
                _ => {}
            }
        }
        deadline
    }

    /// What a replica that knows `known` shows.
    pub fn seen(&self, known: &BTreeSet<usize>, superseded: &BTreeSet<usize>) -> Seen {
        let live = self.live(known, superseded);
        (self.view_at(&live, &[]), self.deadline(&live))
    }

    fn view_at(&self, live: &[usize], path: &[Bytes]) -> View {
        let here = |k: Kind| {
            live.iter()
                .copied()
                .filter(move |&e| self.ev(e).slot == Slot::Data(k) && self.ev(e).path == path)
        };
        match self.visible_kind(live, path) {
            None => View::Empty,
            Some(Kind::Register) => {
                // Highest (HLC, replica id) wins.
                let winner = here(Kind::Register)
                    .max_by_key(|&e| (self.ev(e).hlc, self.ev(e).replica, e))
                    .unwrap();
                match &self.ev(winner).payload {
                    Payload::Reg(v) => View::Register(v.clone()),
                    _ => unreachable!(),
                }
            }
            Some(Kind::MvRegister) => {
                let mut values: Vec<Bytes> = here(Kind::MvRegister)
                    .map(|e| match &self.ev(e).payload {
                        Payload::Mv(v) => v.clone(),
                        _ => unreachable!(),
                    })
                    .collect();
                values.sort();
                View::Mv(values)
            }
            Some(Kind::Counter) => {
                View::Counter(
                    here(Kind::Counter).fold(0i64, |acc, e| match self.ev(e).payload {
                        Payload::Count(v) => acc.wrapping_add(v),
                        _ => unreachable!(),
                    }),
                )
            }
            Some(Kind::Set) => View::Set(
                here(Kind::Set)
                    .map(|e| self.ev(e).member.clone().unwrap())
                    .collect(),
            ),
            Some(Kind::Map) => {
                let fields: BTreeSet<Bytes> = live
                    .iter()
                    .filter(|&&e| {
                        matches!(self.ev(e).slot, Slot::Data(_)) && extends(&self.ev(e).path, path)
                    })
                    .map(|&e| self.ev(e).path[path.len()].clone())
                    .collect();
                View::Map(
                    fields
                        .into_iter()
                        .map(|f| {
                            let mut below = path.to_vec();
                            below.push(f.clone());
                            (f, self.view_at(live, &below))
                        })
                        .collect(),
                )
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Histories

/// A small deterministic generator for shuffles (xorshift64*).
#[derive(Clone, Debug)]
pub struct Shuffler(u64);

impl Shuffler {
    pub fn new(seed: u64) -> Self {
        Shuffler(seed | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }
    /// `items` shuffled, with about one in four repeated.
    pub fn with_duplicates<T: Clone>(&mut self, items: &[T]) -> Vec<T> {
        let mut out: Vec<T> = items.to_vec();
        for item in items {
            if self.below(4) == 0 {
                out.push(item.clone());
            }
        }
        self.shuffle(&mut out);
        out
    }
}

/// An arbitrary choice among `n` things (replicas, deltas): `pick % n`.
pub type Pick = usize;

/// One step of a history.
#[derive(Clone, Debug)]
pub enum Step {
    /// A user operation at a replica.
    Op { at: Pick, op: Op },
    /// One delta (any made so far) delivered to a replica, out of order or again.
    Deliver { to: Pick, which: Pick },
    /// Every delta `from` has applied, sent to `to` shuffled and partly duplicated.
    Sync { from: Pick, to: Pick, seed: u64 },
    /// `to` joins `from`'s whole state.
    Join { from: Pick, to: Pick },
}

pub fn steps(
    ops: BoxedStrategy<Op>,
    len: std::ops::Range<usize>,
) -> impl Strategy<Value = Vec<Step>> {
    let step = prop_oneof![
        6 => (any::<Pick>(), ops).prop_map(|(at, op)| Step::Op { at, op }),
        3 => (any::<Pick>(), any::<Pick>()).prop_map(|(to, which)| Step::Deliver { to, which }),
        1 => (any::<Pick>(), any::<Pick>(), any::<u64>()).prop_map(|(from, to, seed)| Step::Sync { from, to, seed }),
        1 => (any::<Pick>(), any::<Pick>()).prop_map(|(from, to)| Step::Join { from, to }),
    ];
    prop::collection::vec(step, len)
}

/// Replica counts and histories for `S`.
pub fn histories<S: Subject>(
    len: std::ops::Range<usize>,
) -> impl Strategy<Value = (usize, Vec<Step>)> {
    (2usize..=4, steps(S::ops(), len))
}

/// One replica of a history.
#[derive(Clone, Debug)]
pub struct Replica<S> {
    pub id: ReplicaId,
    pub state: Causal<S>,
    pub clock: HlcClock,
    /// Indexes of the deltas this replica has applied (own or received).
    pub known: BTreeSet<usize>,
    /// Counter contributions it dropped for a newer one of the same writer.
    pub superseded: BTreeSet<usize>,
}

/// The result of running a history.
#[derive(Clone, Debug)]
pub struct History<S> {
    pub replicas: Vec<Replica<S>>,
    /// Every delta made, in order; `deltas[i]` is the model's event `i`.
    pub deltas: Vec<Delta<S>>,
    /// The operation that made each delta.
    pub ops: Vec<Op>,
    pub model: Model,
}

impl<S: Subject> History<S> {
    pub fn new(replicas: usize) -> Self {
        History {
            replicas: (0..replicas)
                .map(|i| Replica {
                    id: ReplicaId(i as u32 + 1),
                    state: Causal::new(),
                    // Never rejects: the histories test ordering, not skew.
                    clock: HlcClock::new(u64::MAX),
                    known: BTreeSet::new(),
                    superseded: BTreeSet::new(),
                })
                .collect(),
            deltas: Vec::new(),
            ops: Vec::new(),
            model: Model::default(),
        }
    }

    /// The join of every replica's state.
    pub fn merged(&self) -> Causal<S> {
        let mut all = Causal::new();
        for r in &self.replicas {
            all.join(&r.state);
        }
        all
    }

    fn learn(&mut self, to: usize, which: usize) {
        let hlc = self.model.events[which].hlc;
        let r = &mut self.replicas[to];
        r.known.insert(which);
        r.clock
            .observe(hlc, 0)
            .expect("clocks in histories accept every stamp");
    }

    /// Runs one step, checking the replicas it touched against the model.
    pub fn step(&mut self, step: &Step) -> Result<(), TestCaseError> {
        let n = self.replicas.len();
        let touched = match step {
            Step::Op { at, op } => {
                let at = at % n;
                self.operate(at, op)?;
                at
            }
            Step::Deliver { to, which } => {
                if self.deltas.is_empty() {
                    return Ok(());
                }
                let (to, which) = (to % n, which % self.deltas.len());
                self.replicas[to].state.apply(&self.deltas[which]);
                self.learn(to, which);
                to
            }
            Step::Sync { from, to, seed } => {
                let (from, to) = (from % n, to % n);
                let batch: Vec<usize> = self.replicas[from].known.iter().copied().collect();
                for which in Shuffler::new(*seed).with_duplicates(&batch) {
                    self.replicas[to].state.apply(&self.deltas[which]);
                    self.learn(to, which);
                    let r = &mut self.replicas[to];
                    self.model.supersede(&r.known, &mut r.superseded);
                }
                to
            }
            Step::Join { from, to } => {
                let (from, to) = (from % n, to % n);
                let other = self.replicas[from].state.clone();
                self.replicas[to].state.join(&other);
                for which in self.replicas[from].known.clone() {
                    self.learn(to, which);
                }
                let gone = self.replicas[from].superseded.clone();
                self.replicas[to].superseded.extend(gone);
                to
            }
        };
        let r = &mut self.replicas[touched];
        self.model.supersede(&r.known, &mut r.superseded);
        let r = &self.replicas[touched];
        prop_assert_eq!(
            S::view(&r.state),
            self.model.seen(&r.known, &r.superseded),
            "{} replica {:?} differs from the model after {:?}; state {:?}",
            S::NAME,
            r.id,
            step,
            r.state
        );
        Ok(())
    }

    /// Runs `op` at replica `at`: the crate and the model must agree on
    /// whether it is allowed, and its delta must already be in the new state.
    fn operate(&mut self, at: usize, op: &Op) -> Result<(), TestCaseError> {
        let r = &mut self.replicas[at];
        let physical_ms = match op {
            Op::Data {
                leaf: Leaf::RegSet { physical_ms, .. },
                ..
            } => *physical_ms,
            _ => 0,
        };
        let hlc = r.clock.now(physical_ms);
        let outcome = S::run(&r.state, r.id, hlc, op);
        let mut known = r.known.clone();
        let expected = self.model.apply(&mut known, &r.superseded, r.id, hlc, op);
        match (outcome, expected) {
            (Outcome::Delta(d), ModelOutcome::Event(id)) => {
                prop_assert_eq!(id, self.deltas.len());
                let before = r.state.clone();
                r.state.apply(&d);
                // A delta is contained in the state it produced ...
                let mut again = r.state.clone();
                again.apply(&d);
                prop_assert_eq!(&again, &r.state, "re-applying a delta changed the state");
                let mut joined = r.state.clone();
                joined.join(&d.to_state());
                prop_assert_eq!(
                    &joined,
                    &r.state,
                    "joining a delta as a state changed the state"
                );
                // ... and the new state contains the old one.
                let mut inflated = r.state.clone();
                inflated.join(&before);
                prop_assert_eq!(&inflated, &r.state, "a mutation lost information");
                r.known = known;
                self.deltas.push(d);
                self.ops.push(op.clone());
            }
            (Outcome::WrongType(e), ModelOutcome::WrongType(m)) => prop_assert_eq!(e, m),
            (Outcome::Skipped, ModelOutcome::Skipped) => {}
            (got, want) => {
                return Err(TestCaseError::fail(format!(
                    "{} {:?} at {:?}: crate gave {:?}, model {:?}; state {:?}",
                    S::NAME,
                    op,
                    r.id,
                    got,
                    want,
                    r.state
                )))
            }
        }
        Ok(())
    }
}

/// Runs a history from scratch, checking each step against the model.
pub fn run_history<S: Subject>(
    replicas: usize,
    steps: &[Step],
) -> Result<History<S>, TestCaseError> {
    let mut h = History::<S>::new(replicas);
    for step in steps {
        h.step(step)?;
    }
    Ok(h)
}
