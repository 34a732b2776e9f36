//! Last-writer-wins and multi-value registers.
//!
//! Both keep one entry per write that no later write has observed, so a
//! delete removes only what the deleting replica saw. The LWW register shows
//! the entry with the greatest `(HLC, replica id)`; the multi-value register
//! shows every concurrent entry.

use crate::{
    Bytes, CausalContext, Delta, Dot, DotFun, DotStore, DotValue, Hlc, JoinMode, ReplicaId,
};
use serde::{Deserialize, Serialize};

/// A value stamped with the HLC of its write.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Stamped {
    /// When it was written.
    pub hlc: Hlc,
    /// What was written.
    pub value: Bytes,
}

impl DotValue for Stamped {
    fn heap_bytes(&self) -> usize {
        self.value.len()
    }
}

/// A last-writer-wins register of bytes, ordered by `(HLC, replica id)`.
///
/// ```
/// use crdt_types::{Causal, Hlc, LwwRegister, ReplicaId};
/// let mut x: Causal<LwwRegister> = Causal::new();
/// let mut y = x.clone();
/// let dx = x.mutate(|s, c| s.set(c, ReplicaId(1), Hlc::new(100, 0), "early".into()));
/// let dy = y.mutate(|s, c| s.set(c, ReplicaId(2), Hlc::new(200, 0), "late".into()));
/// x.apply(&dy);
/// y.apply(&dx);
/// assert_eq!(x, y);
/// assert_eq!(x.store().get().unwrap().as_slice(), b"late");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LwwRegister(DotFun<Stamped>);

impl LwwRegister {
    /// A delta that writes `value` at `hlc`, superseding every entry observed.
    pub fn set(
        &self,
        ctx: &CausalContext,
        replica: ReplicaId,
        hlc: Hlc,
        value: Bytes,
    ) -> Delta<Self> {
        let dot = ctx.next_dot(replica);
        let mut seen = self.0.dots();
        seen.push(dot);
        Delta::new(
            LwwRegister(DotFun::single(dot, Stamped { hlc, value })),
            CausalContext::from_dots(seen),
        )
    }

    /// The winning entry: greatest `(HLC, replica id, seq)`.
    pub fn winner(&self) -> Option<(Dot, &Stamped)> {
        self.0
            .entries()
            .iter()
            .max_by_key(|(d, s)| (s.hlc, d.replica, d.seq))
            .map(|(d, s)| (*d, s))
    }

    /// The visible value.
    pub fn get(&self) -> Option<&Bytes> {
        self.winner().map(|(_, s)| &s.value)
    }

    /// Every entry, including concurrent losers kept for convergence.
    pub fn entries(&self) -> &[(Dot, Stamped)] {
        self.0.entries()
    }
}

/// A multi-value register: every concurrent write is kept until a later
/// write supersedes it.
///
/// ```
/// use crdt_types::{Causal, MvRegister, ReplicaId};
/// let mut x: Causal<MvRegister> = Causal::new();
/// let mut y = x.clone();
/// let dx = x.mutate(|s, c| s.set(c, ReplicaId(1), "a".into()));
/// let dy = y.mutate(|s, c| s.set(c, ReplicaId(2), "b".into()));
/// x.apply(&dy);
/// assert_eq!(x.store().values().count(), 2);
/// let dz = x.mutate(|s, c| s.set(c, ReplicaId(1), "c".into()));
/// y.apply(&dx);
/// y.apply(&dz);
/// assert_eq!(y.store().values().map(|v| v.as_slice()).collect::<Vec<_>>(), vec![b"c"]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MvRegister(DotFun<Bytes>);

impl MvRegister {
    /// A delta that writes `value`, superseding every value observed.
    pub fn set(&self, ctx: &CausalContext, replica: ReplicaId, value: Bytes) -> Delta<Self> {
        let dot = ctx.next_dot(replica);
        let mut seen = self.0.dots();
        seen.push(dot);
        Delta::new(
            MvRegister(DotFun::single(dot, value)),
            CausalContext::from_dots(seen),
        )
    }

    /// The concurrent values, in dot order.
    pub fn values(&self) -> impl Iterator<Item = &Bytes> {
        self.0.entries().iter().map(|(_, v)| v)
    }

    /// Every entry with its dot.
    pub fn entries(&self) -> &[(Dot, Bytes)] {
        self.0.entries()
    }
}

macro_rules! delegate_dot_store {
    // `then f`: `f(&mut self)` runs after every join.
    ($t:ty $(, then $after_join:path)?) => {
        impl DotStore for $t {
            fn is_bottom(&self) -> bool {
                self.0.is_bottom()
            }
            fn for_each_dot(&self, f: &mut dyn FnMut(Dot)) {
                self.0.for_each_dot(f)
            }
            fn join(
                &mut self,
                ctx: &CausalContext,
                other: &Self,
                other_ctx: &CausalContext,
                mode: JoinMode,
            ) {
                self.0.join(ctx, &other.0, other_ctx, mode);
                $($after_join(self);)?
            }
            fn removal(&self) -> Self {
                Self(self.0.removal())
            }
            fn heap_bytes(&self) -> usize {
                self.0.heap_bytes()
            }
            fn heap_bytes_within(&self, listing: &Self) -> usize {
                self.0.heap_bytes_within(&listing.0)
            }
        }
    };
}
pub(crate) use delegate_dot_store;

delegate_dot_store!(LwwRegister);
delegate_dot_store!(MvRegister);

impl From<DotFun<Stamped>> for LwwRegister {
    fn from(f: DotFun<Stamped>) -> Self {
        LwwRegister(f)
    }
}

impl From<DotFun<Bytes>> for MvRegister {
    fn from(f: DotFun<Bytes>) -> Self {
        MvRegister(f)
    }
}
