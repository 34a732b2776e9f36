//! Dot stores: the building blocks of causal CRDTs.
//!
//! A dot store holds dots (events) and, paired with a [`CausalContext`] of
//! every dot seen, tells what is present (dots in the store) and what was
//! removed (dots seen but absent). Joining two pairs keeps the dots both have
//! plus the dots one side has that the other has not seen.
//!
//! - [`DotSet`]: a set of dots (an OR-set element's adds).
//! - [`DotFun`]: dot → immutable value (registers, counters).
//! - [`DotMap`]: key → nested dot store (sets, maps).
//!
//! Joins come in two modes ([`JoinMode`]). A *full* join visits every entry
//! of both sides. A *sparse* join visits only the keys listed by the
//! incoming side, which is correct for deltas made by this crate's mutators:
//! a delta's context only holds dots of keys the delta lists (removals list
//! their keys with bottom stores). That makes joining an element delta into a
//! collection O(log n) instead of O(n).

use crate::{CausalContext, Dot};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Debug;

/// How a join treats entries. See the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinMode {
    /// The incoming side lists every key its context touches: visit only those.
    pub sparse: bool,
    /// The receiving side is a delta group: keep listed keys whose store became bottom.
    pub keep_bottom: bool,
}

impl JoinMode {
    /// Joining a whole state into a state.
    pub const FULL: JoinMode = JoinMode {
        sparse: false,
        keep_bottom: false,
    };
    /// Joining a delta into a state.
    pub const DELTA: JoinMode = JoinMode {
        sparse: true,
        keep_bottom: false,
    };
    /// Joining a delta into a delta group.
    pub const GROUP: JoinMode = JoinMode {
        sparse: true,
        keep_bottom: true,
    };
}

/// A store of dots. `join` must be commutative, associative and idempotent
/// for pairs `(store, context)` in which every dot of the store is in the
/// context.
pub trait DotStore: Clone + Default + PartialEq + Debug {
    /// True when the store holds no dot.
    fn is_bottom(&self) -> bool;
    /// Calls `f` on every dot in the store.
    fn for_each_dot(&self, f: &mut dyn FnMut(Dot));
    /// Joins `(other, other_ctx)` into `(self, ctx)`; the caller joins the contexts afterwards.
    fn join(
        &mut self,
        ctx: &CausalContext,
        other: &Self,
        other_ctx: &CausalContext,
        mode: JoinMode,
    );
    /// The same keys as `self` with bottom stores: the store part of a delta
    /// that removes everything in `self` and lists what it removes.
    fn removal(&self) -> Self;
    /// Heap bytes held, for memory accounting.
    fn heap_bytes(&self) -> usize;
    /// Heap bytes held under the keys `listing` lists (all of them for a
    /// store without keys): what joining a delta with that listing can
    /// change, so memory can be accounted in O(delta) rather than O(state).
    fn heap_bytes_within(&self, listing: &Self) -> usize {
        let _ = listing;
        self.heap_bytes()
    }
    /// Every dot of the store, collected.
    fn dots(&self) -> Vec<Dot> {
        let mut out = Vec::new();
        self.for_each_dot(&mut |d| out.push(d));
        out
    }
}

/// A set of dots, sorted.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(try_from = "Vec<Dot>")]
pub struct DotSet(Vec<Dot>);

impl TryFrom<Vec<Dot>> for DotSet {
    type Error = crate::InvalidState;
    fn try_from(v: Vec<Dot>) -> Result<Self, Self::Error> {
        if v.windows(2).any(|w| w[0] >= w[1]) || v.iter().any(|d| d.seq == 0) {
            return Err(crate::InvalidState("dot set not sorted, unique and from 1"));
        }
        Ok(DotSet(v))
    }
}

impl Debug for DotSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl DotSet {
    /// A set of one dot.
    pub fn single(dot: Dot) -> Self {
        DotSet(vec![dot])
    }

    /// The dots, sorted.
    pub fn as_slice(&self) -> &[Dot] {
        &self.0
    }
}

/// Joins two sorted runs of dot-keyed entries under their contexts.
fn join_sorted<T: Clone + Ord>(
    ours: &mut Vec<(Dot, T)>,
    ctx: &CausalContext,
    theirs: &[(Dot, T)],
    their_ctx: &CausalContext,
) {
    if theirs.is_empty() && ours.iter().all(|(d, _)| !their_ctx.contains(*d)) {
        return;
    }
    let mut out = Vec::with_capacity(ours.len() + theirs.len());
    let mut a = std::mem::take(ours).into_iter().peekable();
    let mut b = theirs.iter().peekable();
    loop {
        match (a.peek(), b.peek()) {
            (Some((da, _)), Some((db, _))) if da == db => {
                let (d, va) = a.next().expect("peeked");
                let (_, vb) = b.next().expect("peeked");
                // A dot names one event, so values agree; if corrupt input
                // disagrees, keep the larger so every replica picks the same.
                out.push((d, if *vb > va { vb.clone() } else { va }));
            }
            (Some((da, _)), Some((db, _))) if da < db => {
                let (d, v) = a.next().expect("peeked");
                if !their_ctx.contains(d) {
                    out.push((d, v));
                }
            }
            (_, Some(_)) => {
                let (d, v) = b.next().expect("peeked");
                // Emitted only when `a` is exhausted or ahead of `d`.
                if !ctx.contains(*d) {
                    out.push((*d, v.clone()));
                }
            }
            (Some(_), None) => {
                let (d, v) = a.next().expect("peeked");
                if !their_ctx.contains(d) {
                    out.push((d, v));
                }
            }
            (None, None) => break,
        }
    }
    *ours = out;
}

impl DotStore for DotSet {
    fn is_bottom(&self) -> bool {
        self.0.is_empty()
    }
    fn for_each_dot(&self, f: &mut dyn FnMut(Dot)) {
        self.0.iter().copied().for_each(f)
    }
    fn join(&mut self, ctx: &CausalContext, other: &Self, other_ctx: &CausalContext, _: JoinMode) {
        let mut ours: Vec<(Dot, ())> = self.0.iter().map(|&d| (d, ())).collect();
        let theirs: Vec<(Dot, ())> = other.0.iter().map(|&d| (d, ())).collect();
        join_sorted(&mut ours, ctx, &theirs, other_ctx);
        self.0 = ours.into_iter().map(|(d, ())| d).collect();
    }
    fn removal(&self) -> Self {
        DotSet::default()
    }
    fn heap_bytes(&self) -> usize {
        self.0.capacity() * std::mem::size_of::<Dot>()
    }
}

/// A map from dots to immutable values, sorted by dot.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "Vec<(Dot, V)>")]
#[serde(bound(deserialize = "V: Deserialize<'de>"))]
pub struct DotFun<V>(Vec<(Dot, V)>);

impl<V> Default for DotFun<V> {
    fn default() -> Self {
        DotFun(Vec::new())
    }
}

impl<V> TryFrom<Vec<(Dot, V)>> for DotFun<V> {
    type Error = crate::InvalidState;
    fn try_from(v: Vec<(Dot, V)>) -> Result<Self, Self::Error> {
        if v.windows(2).any(|w| w[0].0 >= w[1].0) || v.iter().any(|(d, _)| d.seq == 0) {
            return Err(crate::InvalidState(
                "dot function not sorted, unique and from 1",
            ));
        }
        Ok(DotFun(v))
    }
}

impl<V: Debug> Debug for DotFun<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(d, v)| (d, v)))
            .finish()
    }
}

impl<V> DotFun<V> {
    /// A function of one dot.
    pub fn single(dot: Dot, value: V) -> Self {
        DotFun(vec![(dot, value)])
    }

    /// The entries, sorted by dot.
    pub fn entries(&self) -> &[(Dot, V)] {
        &self.0
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there is no entry.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Keeps only the newest entry of each replica.
    pub fn retain_latest_per_replica(&mut self) {
        // Sorted by dot: a replica's entries are adjacent, its newest last.
        if !self.0.windows(2).any(|w| w[0].0.replica == w[1].0.replica) {
            return;
        }
        let mut entries = std::mem::take(&mut self.0).into_iter().peekable();
        while let Some(e) = entries.next() {
            if entries.peek().is_some_and(|n| n.0.replica == e.0.replica) {
                continue;
            }
            self.0.push(e);
        }
    }
}

/// Values a [`DotFun`] can hold, with the heap bytes each keeps.
pub trait DotValue: Clone + Ord + Debug {
    /// Heap bytes held by the value itself.
    fn heap_bytes(&self) -> usize {
        0
    }
}

impl DotValue for i64 {}
impl DotValue for crate::Bytes {
    fn heap_bytes(&self) -> usize {
        self.len()
    }
}

impl<V: DotValue> DotStore for DotFun<V> {
    fn is_bottom(&self) -> bool {
        self.0.is_empty()
    }
    fn for_each_dot(&self, f: &mut dyn FnMut(Dot)) {
        self.0.iter().for_each(|(d, _)| f(*d))
    }
    fn join(&mut self, ctx: &CausalContext, other: &Self, other_ctx: &CausalContext, _: JoinMode) {
        join_sorted(&mut self.0, ctx, &other.0, other_ctx);
    }
    fn removal(&self) -> Self {
        DotFun::default()
    }
    fn heap_bytes(&self) -> usize {
        self.0.capacity() * std::mem::size_of::<(Dot, V)>()
            + self.0.iter().map(|(_, v)| v.heap_bytes()).sum::<usize>()
    }
}

/// A map from keys to nested dot stores. In a state, no key maps to a
/// bottom store; in a delta, a bottom store lists a key whose contents the
/// delta removes.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(serialize = "K: Serialize, S: Serialize"))]
#[serde(bound(deserialize = "K: Deserialize<'de> + Ord, S: Deserialize<'de>"))]
pub struct DotMap<K, S>(BTreeMap<K, S>);

impl<K, S> Default for DotMap<K, S> {
    fn default() -> Self {
        DotMap(BTreeMap::new())
    }
}

impl<K: Debug, S: Debug> Debug for DotMap<K, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.0.iter()).finish()
    }
}

impl<K: Ord, S> DotMap<K, S> {
    /// A map of one entry.
    pub fn single(key: K, store: S) -> Self {
        DotMap(BTreeMap::from([(key, store)]))
    }

    /// The nested store of `key`.
    pub fn get<Q>(&self, key: &Q) -> Option<&S>
    where
        K: std::borrow::Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.0.get(key)
    }

    /// The entries in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &S)> {
        self.0.iter()
    }

    /// The number of keys.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there is no key.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The entries from `start` (inclusive) in key order.
    pub fn range_from<'a>(&'a self, start: &'a K) -> impl Iterator<Item = (&'a K, &'a S)> + 'a {
        self.0.range(start..)
    }

    /// The entries after `after` (exclusive; all of them for `None`) in
    /// key order.
    pub fn range_after<'a, Q>(
        &'a self,
        after: Option<&'a Q>,
    ) -> impl Iterator<Item = (&'a K, &'a S)> + 'a
    where
        K: std::borrow::Borrow<Q>,
        Q: Ord + ?Sized,
    {
        use std::ops::Bound;
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        self.0.range::<Q, _>((start, Bound::Unbounded))
    }
}

/// Keys of a [`DotMap`], with the heap bytes each keeps.
pub trait DotKey: Clone + Ord + Debug {
    /// Heap bytes held by the key itself.
    fn heap_bytes(&self) -> usize;
}

impl DotKey for crate::Bytes {
    fn heap_bytes(&self) -> usize {
        self.len()
    }
}

/// BTreeMap nodes hold up to 11 entries; this is the per-entry overhead we charge.
const BTREE_ENTRY_OVERHEAD: usize = 16;

impl<K: DotKey, S: DotStore> DotStore for DotMap<K, S> {
    fn is_bottom(&self) -> bool {
        self.0.values().all(S::is_bottom)
    }
    fn for_each_dot(&self, f: &mut dyn FnMut(Dot)) {
        self.0.values().for_each(|s| s.for_each_dot(f))
    }
    fn join(
        &mut self,
        ctx: &CausalContext,
        other: &Self,
        other_ctx: &CausalContext,
        mode: JoinMode,
    ) {
        if !mode.sparse {
            // Keys only we have lose the dots the other side has seen.
            let bottom = S::default();
            self.0.retain(|k, s| {
                if !other.0.contains_key(k) {
                    s.join(ctx, &bottom, other_ctx, mode);
                }
                mode.keep_bottom || !s.is_bottom()
            });
        }
        for (k, theirs) in &other.0 {
            match self.0.get_mut(k) {
                Some(ours) => {
                    ours.join(ctx, theirs, other_ctx, mode);
                    if !mode.keep_bottom && ours.is_bottom() {
                        self.0.remove(k);
                    }
                }
                None => {
                    let mut ours = S::default();
                    ours.join(ctx, theirs, other_ctx, mode);
                    if mode.keep_bottom || !ours.is_bottom() {
                        self.0.insert(k.clone(), ours);
                    }
                }
            }
        }
    }
    fn removal(&self) -> Self {
        DotMap(
            self.0
                .iter()
                .map(|(k, s)| (k.clone(), s.removal()))
                .collect(),
        )
    }
    fn heap_bytes(&self) -> usize {
        self.0
            .iter()
            .map(|(k, s)| {
                std::mem::size_of::<(K, S)>()
                    + BTREE_ENTRY_OVERHEAD
                    + k.heap_bytes()
                    + s.heap_bytes()
            })
            .sum()
    }
    fn heap_bytes_within(&self, listing: &Self) -> usize {
        listing
            .0
            .iter()
            .filter_map(|(k, l)| {
                let s = self.0.get(k)?;
                Some(
                    std::mem::size_of::<(K, S)>()
                        + BTREE_ENTRY_OVERHEAD
                        + k.heap_bytes()
                        + s.heap_bytes_within(l),
                )
            })
            .sum()
    }
}
