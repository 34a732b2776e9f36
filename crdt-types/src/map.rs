//! The OR-map and the typed store it (and every key) holds.
//!
//! A [`TypedStore`] is a value of one of the data types: register, MV
//! register, counter, set or map. Two replicas may concurrently create the
//! same key or field with different types; the join keeps both (a product
//! of the types' stores, so convergence is the product lattice's) and the
//! *visible* type is the highest in this precedence:
//!
//! **map > set > counter > mvregister > register**
//!
//! The hidden data is kept only until the next write to the key or field,
//! which removes what it observed of the other types.
//!
//! [`OrMap`] maps fields to typed stores under one shared context: updating a
//! field runs the field type's own delta-mutator; removing a field removes
//! what was observed of it, so a concurrent update of the field wins.

use crate::register::delegate_dot_store;
use crate::{
    Bytes, CausalContext, Counter, Delta, Dot, DotMap, DotStore, JoinMode, LwwRegister, MvRegister,
    OrSet,
};
use serde::{Deserialize, Deserializer, Serialize};
use std::cell::Cell;
use std::fmt;

/// The data types a key or map field can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Kind {
    /// Last-writer-wins register of bytes.
    Register,
    /// Multi-value register.
    MvRegister,
    /// Counter of i64.
    Counter,
    /// Add-wins set of byte strings.
    Set,
    /// OR-map of fields to typed values.
    Map,
}

impl Kind {
    /// The lower-case name users see (`register`, `counter`...).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Register => "register",
            Kind::MvRegister => "mvregister",
            Kind::Counter => "counter",
            Kind::Set => "set",
            Kind::Map => "map",
        }
    }

    /// The name with its indefinite article, for messages: `a register`,
    /// `an mvregister`.
    pub fn with_article(self) -> &'static str {
        match self {
            Kind::Register => "a register",
            Kind::MvRegister => "an mvregister",
            Kind::Counter => "a counter",
            Kind::Set => "a set",
            Kind::Map => "a map",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An operation of one type was applied to a value of another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "WRONGTYPE operation against {} holding the wrong kind of value (wanted {wanted})",
    found.with_article()
)]
pub struct WrongType {
    /// The type the operation works on.
    pub wanted: Kind,
    /// The type the value holds.
    pub found: Kind,
}

/// A value of one of the data types (or, after concurrent creation with
/// different types, several of them). See the module docs.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum TypedStore {
    /// Nothing.
    #[default]
    Empty,
    /// A register.
    Register(LwwRegister),
    /// A multi-value register.
    MvRegister(MvRegister),
    /// A counter.
    Counter(Counter),
    /// A set.
    Set(OrSet),
    /// A map.
    Map(OrMap),
    /// Several types at once, after a concurrent type conflict.
    Mixed(Box<Mixed>),
}

/// Every type's store side by side: the product lattice behind type conflicts.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Mixed {
    /// The register part.
    pub register: LwwRegister,
    /// The MV-register part.
    pub mvregister: MvRegister,
    /// The counter part.
    pub counter: Counter,
    /// The set part.
    pub set: OrSet,
    /// The map part.
    pub map: OrMap,
}

/// A type's store as a component of [`TypedStore`].
pub trait Component: DotStore {
    /// Which type this is.
    const KIND: Kind;
    /// This type's part of `t`, if it has one.
    fn part(t: &TypedStore) -> Option<&Self>;
    /// Wraps a store of this type.
    fn wrap(self) -> TypedStore;
    /// This type's slot in a [`Mixed`].
    fn slot(m: &mut Mixed) -> &mut Self;
}

macro_rules! component {
    ($t:ty, $variant:ident, $field:ident) => {
        impl Component for $t {
            const KIND: Kind = Kind::$variant;
            fn part(t: &TypedStore) -> Option<&Self> {
                match t {
                    TypedStore::$variant(s) => Some(s),
                    TypedStore::Mixed(m) => Some(&m.$field),
                    _ => None,
                }
            }
            fn wrap(self) -> TypedStore {
                TypedStore::$variant(self)
            }
            fn slot(m: &mut Mixed) -> &mut Self {
                &mut m.$field
            }
        }
    };
}
component!(LwwRegister, Register, register);
component!(MvRegister, MvRegister, mvregister);
component!(Counter, Counter, counter);
component!(OrSet, Set, set);
component!(OrMap, Map, map);

impl Mixed {
    fn parts_bottom(&self) -> [(Kind, bool); 5] {
        [
            (Kind::Map, self.map.is_bottom()),
            (Kind::Set, self.set.is_bottom()),
            (Kind::Counter, self.counter.is_bottom()),
            (Kind::MvRegister, self.mvregister.is_bottom()),
            (Kind::Register, self.register.is_bottom()),
        ]
    }

    fn absorb(&mut self, t: TypedStore) {
        match t {
            TypedStore::Empty => {}
            TypedStore::Register(s) => self.register = s,
            TypedStore::MvRegister(s) => self.mvregister = s,
            TypedStore::Counter(s) => self.counter = s,
            TypedStore::Set(s) => self.set = s,
            TypedStore::Map(s) => self.map = s,
            TypedStore::Mixed(m) => *self = *m,
        }
    }
}

impl TypedStore {
    /// The visible type: the highest non-empty one in precedence order.
    pub fn kind(&self) -> Option<Kind> {
        match self {
            TypedStore::Empty => None,
            TypedStore::Register(s) => (!s.is_bottom()).then_some(Kind::Register),
            TypedStore::MvRegister(s) => (!s.is_bottom()).then_some(Kind::MvRegister),
            TypedStore::Counter(s) => (!s.is_bottom()).then_some(Kind::Counter),
            TypedStore::Set(s) => (!s.is_bottom()).then_some(Kind::Set),
            TypedStore::Map(s) => (!s.is_bottom()).then_some(Kind::Map),
            TypedStore::Mixed(m) => m.parts_bottom().iter().find(|(_, b)| !b).map(|(k, _)| *k),
        }
    }

    /// The visible value as type `S`, or `Ok(None)` when empty.
    pub fn read<S: Component>(&self) -> Result<Option<&S>, WrongType> {
        match self.kind() {
            None => Ok(None),
            Some(k) if k == S::KIND => Ok(S::part(self)),
            Some(found) => Err(WrongType {
                wanted: S::KIND,
                found,
            }),
        }
    }

    /// Runs a mutator of type `S` on this value (its visible type must be `S`
    /// or none) and lifts the delta. On a value holding hidden data of other
    /// types after a conflict, the delta also removes what it observed of them.
    pub fn write<S: Component>(
        &self,
        ctx: &CausalContext,
        f: impl FnOnce(&S, &CausalContext) -> Delta<S>,
    ) -> Result<Delta<TypedStore>, WrongType> {
        if let Some(found) = self.kind() {
            if found != S::KIND {
                return Err(WrongType {
                    wanted: S::KIND,
                    found,
                });
            }
        }
        let bottom = S::default();
        let delta = f(S::part(self).unwrap_or(&bottom), ctx);
        Ok(match self {
            TypedStore::Mixed(m) => {
                let (store, dctx) = delta.into_parts();
                let mut removal = m.removal();
                *S::slot(&mut removal) = store;
                // Remove what we saw of the other types; this type's own
                // observed dots are the mutator's business (a counter keeps
                // other replicas' contributions).
                let mut others = (**m).clone();
                *S::slot(&mut others) = S::default();
                let mut seen = CausalContext::from_dots(others.dots());
                seen.join(&dctx);
                Delta::new(TypedStore::Mixed(Box::new(removal)), seen)
            }
            _ => delta.map(S::wrap),
        })
    }

    /// The bottom store of the same shape as `self` (for joins against it).
    fn same_kind_bottom(&self) -> TypedStore {
        match self {
            TypedStore::Empty => TypedStore::Empty,
            TypedStore::Register(_) => TypedStore::Register(Default::default()),
            TypedStore::MvRegister(_) => TypedStore::MvRegister(Default::default()),
            TypedStore::Counter(_) => TypedStore::Counter(Default::default()),
            TypedStore::Set(_) => TypedStore::Set(Default::default()),
            TypedStore::Map(_) => TypedStore::Map(Default::default()),
            TypedStore::Mixed(_) => TypedStore::Mixed(Default::default()),
        }
    }

    /// Collapses a state to its simplest equal form: bottom → `Empty`, a
    /// mixture with one non-empty part → that part.
    fn normalize(&mut self) {
        if self.is_bottom() {
            *self = TypedStore::Empty;
            return;
        }
        if let TypedStore::Mixed(m) = self {
            let live: Vec<Kind> = m
                .parts_bottom()
                .iter()
                .filter(|(_, b)| !b)
                .map(|(k, _)| *k)
                .collect();
            if let [only] = live[..] {
                let m = std::mem::take(&mut **m);
                *self = match only {
                    Kind::Register => TypedStore::Register(m.register),
                    Kind::MvRegister => TypedStore::MvRegister(m.mvregister),
                    Kind::Counter => TypedStore::Counter(m.counter),
                    Kind::Set => TypedStore::Set(m.set),
                    Kind::Map => TypedStore::Map(m.map),
                };
            }
        }
    }

    fn to_mixed(&self) -> Mixed {
        let mut m = Mixed::default();
        m.absorb(self.clone());
        m
    }
}

impl DotStore for TypedStore {
    fn is_bottom(&self) -> bool {
        match self {
            TypedStore::Empty => true,
            TypedStore::Register(s) => s.is_bottom(),
            TypedStore::MvRegister(s) => s.is_bottom(),
            TypedStore::Counter(s) => s.is_bottom(),
            TypedStore::Set(s) => s.is_bottom(),
            TypedStore::Map(s) => s.is_bottom(),
            TypedStore::Mixed(m) => m.is_bottom(),
        }
    }

    fn for_each_dot(&self, f: &mut dyn FnMut(Dot)) {
        match self {
            TypedStore::Empty => {}
            TypedStore::Register(s) => s.for_each_dot(f),
            TypedStore::MvRegister(s) => s.for_each_dot(f),
            TypedStore::Counter(s) => s.for_each_dot(f),
            TypedStore::Set(s) => s.for_each_dot(f),
            TypedStore::Map(s) => s.for_each_dot(f),
            TypedStore::Mixed(m) => m.for_each_dot(f),
        }
    }

    fn join(
        &mut self,
        ctx: &CausalContext,
        other: &Self,
        other_ctx: &CausalContext,
        mode: JoinMode,
    ) {
        use TypedStore::*;
        if let Empty = self {
            *self = other.same_kind_bottom();
        }
        let bottom;
        let other = if let Empty = other {
            bottom = self.same_kind_bottom();
            &bottom
        } else {
            other
        };
        match (&mut *self, other) {
            (Empty, Empty) => {}
            (Register(a), Register(b)) => a.join(ctx, b, other_ctx, mode),
            (MvRegister(a), MvRegister(b)) => a.join(ctx, b, other_ctx, mode),
            (Counter(a), Counter(b)) => a.join(ctx, b, other_ctx, mode),
            (Set(a), Set(b)) => a.join(ctx, b, other_ctx, mode),
            (Map(a), Map(b)) => a.join(ctx, b, other_ctx, mode),
            (Mixed(a), Mixed(b)) => a.join(ctx, b, other_ctx, mode),
            (Mixed(a), b) => a.join(ctx, &b.to_mixed(), other_ctx, mode),
            (a, b) => {
                let mut m = a.to_mixed();
                m.join(ctx, &b.to_mixed(), other_ctx, mode);
                *a = Mixed(Box::new(m));
            }
        }
        if !mode.keep_bottom {
            self.normalize();
        }
    }

    fn removal(&self) -> Self {
        match self {
            TypedStore::Empty => TypedStore::Empty,
            TypedStore::Register(s) => TypedStore::Register(s.removal()),
            TypedStore::MvRegister(s) => TypedStore::MvRegister(s.removal()),
            TypedStore::Counter(s) => TypedStore::Counter(s.removal()),
            TypedStore::Set(s) => TypedStore::Set(s.removal()),
            TypedStore::Map(s) => TypedStore::Map(s.removal()),
            TypedStore::Mixed(m) => TypedStore::Mixed(Box::new(m.removal())),
        }
    }

    fn heap_bytes(&self) -> usize {
        match self {
            TypedStore::Empty => 0,
            TypedStore::Register(s) => s.heap_bytes(),
            TypedStore::MvRegister(s) => s.heap_bytes(),
            TypedStore::Counter(s) => s.heap_bytes(),
            TypedStore::Set(s) => s.heap_bytes(),
            TypedStore::Map(s) => s.heap_bytes(),
            TypedStore::Mixed(m) => std::mem::size_of::<Mixed>() + m.heap_bytes(),
        }
    }

    fn heap_bytes_within(&self, listing: &Self) -> usize {
        match (self, listing) {
            (TypedStore::Set(a), TypedStore::Set(b)) => a.heap_bytes_within(b),
            (TypedStore::Map(a), TypedStore::Map(b)) => a.heap_bytes_within(b),
            (TypedStore::Mixed(a), TypedStore::Mixed(b)) => {
                std::mem::size_of::<Mixed>() + a.heap_bytes_within(b)
            }
            (TypedStore::Mixed(a), b) => {
                std::mem::size_of::<Mixed>() + a.heap_bytes_within(&b.to_mixed())
            }
            // Collections not listed by a delta of another shape are untouched.
            (TypedStore::Set(_) | TypedStore::Map(_), _) => 0,
            (a, _) => a.heap_bytes(),
        }
    }
}

impl DotStore for Mixed {
    fn is_bottom(&self) -> bool {
        self.parts_bottom().iter().all(|(_, b)| *b)
    }
    fn for_each_dot(&self, f: &mut dyn FnMut(Dot)) {
        self.register.for_each_dot(f);
        self.mvregister.for_each_dot(f);
        self.counter.for_each_dot(f);
        self.set.for_each_dot(f);
        self.map.for_each_dot(f);
    }
    fn join(
        &mut self,
        ctx: &CausalContext,
        other: &Self,
        other_ctx: &CausalContext,
        mode: JoinMode,
    ) {
        self.register.join(ctx, &other.register, other_ctx, mode);
        self.mvregister
            .join(ctx, &other.mvregister, other_ctx, mode);
        self.counter.join(ctx, &other.counter, other_ctx, mode);
        self.set.join(ctx, &other.set, other_ctx, mode);
        self.map.join(ctx, &other.map, other_ctx, mode);
    }
    fn removal(&self) -> Self {
        Mixed {
            register: self.register.removal(),
            mvregister: self.mvregister.removal(),
            counter: self.counter.removal(),
            set: self.set.removal(),
            map: self.map.removal(),
        }
    }
    fn heap_bytes(&self) -> usize {
        self.register.heap_bytes()
            + self.mvregister.heap_bytes()
            + self.counter.heap_bytes()
            + self.set.heap_bytes()
            + self.map.heap_bytes()
    }
    fn heap_bytes_within(&self, l: &Self) -> usize {
        self.register.heap_bytes()
            + self.mvregister.heap_bytes()
            + self.counter.heap_bytes()
            + self.set.heap_bytes_within(&l.set)
            + self.map.heap_bytes_within(&l.map)
    }
}

/// How deeply maps may nest (also bounds recursion when decoding).
pub const MAP_NESTING_MAX: usize = 16;

thread_local! {
    static DECODE_DEPTH: Cell<usize> = const { Cell::new(0) };
}

/// An OR-map of fields to typed values. Field removal loses to a concurrent
/// update of the same field; each field merges by its own type.
///
/// ```
/// use crdt_types::{Causal, Counter, OrMap, ReplicaId};
/// let (a, b) = (ReplicaId(1), ReplicaId(2));
/// let mut x: Causal<OrMap> = Causal::new();
/// let d = x.mutate(|m, c| m.update::<Counter>(c, b"visits", |s, c| s.add(c, a, 1)).unwrap());
/// let mut y = x.clone();
/// // b removes the field while a increments it: the update wins.
/// let rm = y.mutate(|m, _| m.remove(b"visits"));
/// let inc = x.mutate(|m, c| m.update::<Counter>(c, b"visits", |s, c| s.add(c, a, 1)).unwrap());
/// x.apply(&rm);
/// y.apply(&inc);
/// assert_eq!(x, y);
/// let visits = x.store().get(b"visits").unwrap().read::<Counter>().unwrap().unwrap();
/// assert_eq!(visits.value(), 2);
/// # let _ = d;
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(transparent)]
pub struct OrMap(DotMap<Bytes, TypedStore>);

impl<'de> Deserialize<'de> for OrMap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let depth = DECODE_DEPTH.with(|c| c.get());
        if depth >= MAP_NESTING_MAX {
            return Err(serde::de::Error::custom("maps nested too deeply"));
        }
        DECODE_DEPTH.with(|c| c.set(depth + 1));
        let result = DotMap::deserialize(d).map(OrMap);
        DECODE_DEPTH.with(|c| c.set(depth));
        result
    }
}

impl OrMap {
    /// A delta that runs a mutator of type `S` on `field` (created if absent).
    pub fn update<S: Component>(
        &self,
        ctx: &CausalContext,
        field: &[u8],
        f: impl FnOnce(&S, &CausalContext) -> Delta<S>,
    ) -> Result<Delta<Self>, WrongType> {
        let current = self.0.get(field).unwrap_or(&TypedStore::Empty);
        let delta = current.write(ctx, f)?;
        Ok(delta.map(|store| OrMap(DotMap::single(field.into(), store))))
    }

    /// A delta that removes `field` as observed here.
    pub fn remove(&self, field: &[u8]) -> Delta<Self> {
        let (store, seen) = match self.0.get(field) {
            Some(s) => (s.removal(), CausalContext::from_dots(s.dots())),
            None => (TypedStore::Empty, CausalContext::new()),
        };
        Delta::new(OrMap(DotMap::single(field.into(), store)), seen)
    }

    /// The value of `field`.
    pub fn get(&self, field: &[u8]) -> Option<&TypedStore> {
        self.0.get(field).filter(|s| !s.is_bottom())
    }

    /// The fields and values, in field order.
    pub fn iter(&self) -> impl Iterator<Item = (&Bytes, &TypedStore)> {
        self.0.iter().filter(|(_, s)| !s.is_bottom())
    }

    /// The fields that sort after `after` (all of them for `None`) and
    /// their values, in field order: the pages of a scan.
    pub fn iter_after<'a>(
        &'a self,
        after: Option<&'a [u8]>,
    ) -> impl Iterator<Item = (&'a Bytes, &'a TypedStore)> {
        self.0.range_after(after).filter(|(_, s)| !s.is_bottom())
    }

    /// The number of fields.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there is no field.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How deeply maps nest inside this one (1 for a flat map).
    pub fn depth(&self) -> usize {
        1 + self
            .0
            .iter()
            .map(|(_, s)| match s {
                TypedStore::Map(m) => m.depth(),
                TypedStore::Mixed(m) => m.map.depth(),
                _ => 0,
            })
            .max()
            .unwrap_or(0)
    }
}

delegate_dot_store!(OrMap);
