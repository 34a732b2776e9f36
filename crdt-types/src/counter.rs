//! A causal counter: increments add up, and a reset removes only the
//! increments it observed.
//!
//! Each replica keeps one live entry holding its contribution since the
//! last reset it observed; an increment replaces the replica's entry with a
//! new dot. A reset removes the entries (dots) it saw, so a deleted and then
//! reused counter starts from zero everywhere instead of bringing old counts
//! back, while increments concurrent with the reset survive it.
//!
//! A replica's newer entry carries its older one's count, and an increment's
//! delta names only the entry it replaces. A replica that missed an
//! increment in between would otherwise keep the older entry beside the
//! newer one and count it twice; the join therefore keeps only the newest
//! entry of each replica. The older entry is dead in any case once all
//! deltas are in (its successor's delta removes it), so this only drops it
//! sooner. The price: when a reset of the newer entry arrives before the
//! older entry, that replica keeps the older entry until it joins a state
//! that dropped it, so joins are associative, and delta groups equal their
//! deltas applied one by one, only up to one more join of the results.

use crate::register::delegate_dot_store;
use crate::{CausalContext, Delta, Dot, DotFun, DotStore, JoinMode, ReplicaId};
use serde::{Deserialize, Serialize};

/// A counter of `i64` (wrapping on overflow).
///
/// ```
/// use crdt_types::{Causal, Counter, ReplicaId};
/// let mut x: Causal<Counter> = Causal::new();
/// let mut y = x.clone();
/// let d1 = x.mutate(|s, c| s.add(c, ReplicaId(1), 5));
/// let d2 = y.mutate(|s, c| s.add(c, ReplicaId(2), -2));
/// x.apply(&d2);
/// y.apply(&d1);
/// assert_eq!(x.store().value(), 3);
/// assert_eq!(x, y);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Counter(DotFun<i64>);

impl Counter {
    /// A delta that adds `n` (negative to decrement) at `replica`.
    pub fn add(&self, ctx: &CausalContext, replica: ReplicaId, n: i64) -> Delta<Self> {
        let dot = ctx.next_dot(replica);
        let mut seen = vec![dot];
        let mut base = 0i64;
        for (d, v) in self.0.entries() {
            if d.replica == replica {
                base = base.wrapping_add(*v);
                seen.push(*d);
            }
        }
        Delta::new(
            Counter(DotFun::single(dot, base.wrapping_add(n))),
            CausalContext::from_dots(seen),
        )
    }

    /// The sum of every live contribution.
    pub fn value(&self) -> i64 {
        self.0
            .entries()
            .iter()
            .fold(0i64, |acc, (_, v)| acc.wrapping_add(*v))
    }

    /// Drops every entry of a replica but its newest (see the module docs).
    fn keep_newest_per_replica(&mut self) {
        self.0.retain_latest_per_replica();
    }

    /// The live contributions, one per replica in a replica's own state.
    pub fn entries(&self) -> &[(Dot, i64)] {
        self.0.entries()
    }
}

delegate_dot_store!(Counter, then Counter::keep_newest_per_replica);

impl From<DotFun<i64>> for Counter {
    fn from(f: DotFun<i64>) -> Self {
        Counter(f)
    }
}
