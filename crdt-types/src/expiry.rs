//! Expiry metadata: the longest deadline wins, and persist beats every
//! deadline it is concurrent with.
//!
//! Like a multi-value register, each write supersedes what it observed, so
//! a later `expire` can shorten a deadline or undo a persist; concurrent
//! writes resolve as: any persist → no deadline, else the latest deadline.

use crate::register::delegate_dot_store;
use crate::{CausalContext, Delta, Dot, DotFun, DotStore, DotValue, JoinMode, ReplicaId};
use serde::{Deserialize, Serialize};

/// One expiry write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ExpiryEntry {
    /// Expire at this time, in milliseconds since the Unix epoch.
    Deadline(u64),
    /// Never expire.
    Persist,
}

impl DotValue for ExpiryEntry {}

/// The expiry of a key.
///
/// ```
/// use crdt_types::{Causal, Expiry, ReplicaId};
/// let mut x: Causal<Expiry> = Causal::new();
/// let mut y = x.clone();
/// let a = x.mutate(|s, c| s.expire_at(c, ReplicaId(1), 5_000));
/// let b = y.mutate(|s, c| s.expire_at(c, ReplicaId(2), 9_000));
/// x.apply(&b);
/// assert_eq!(x.store().deadline_ms(), Some(9_000)); // longest wins
/// let p = y.mutate(|s, c| s.persist(c, ReplicaId(2)).unwrap());
/// x.apply(&p);
/// assert_eq!(x.store().deadline_ms(), None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Expiry(DotFun<ExpiryEntry>);

impl Expiry {
    fn write(&self, ctx: &CausalContext, replica: ReplicaId, entry: ExpiryEntry) -> Delta<Self> {
        let dot = ctx.next_dot(replica);
        let mut seen = self.0.dots();
        seen.push(dot);
        Delta::new(
            Expiry(DotFun::single(dot, entry)),
            CausalContext::from_dots(seen),
        )
    }

    /// A delta that sets the deadline (ms since the Unix epoch).
    pub fn expire_at(
        &self,
        ctx: &CausalContext,
        replica: ReplicaId,
        deadline_ms: u64,
    ) -> Delta<Self> {
        self.write(ctx, replica, ExpiryEntry::Deadline(deadline_ms))
    }

    /// A delta that removes the deadline and beats concurrent deadlines.
    /// `None` when there is no deadline to remove.
    pub fn persist(&self, ctx: &CausalContext, replica: ReplicaId) -> Option<Delta<Self>> {
        self.deadline_ms()
            .map(|_| self.write(ctx, replica, ExpiryEntry::Persist))
    }

    /// The deadline in force, if any.
    pub fn deadline_ms(&self) -> Option<u64> {
        let mut deadline = None;
        for (_, e) in self.0.entries() {
            match e {
                ExpiryEntry::Persist => return None,
                ExpiryEntry::Deadline(ms) => deadline = deadline.max(Some(*ms)),
            }
        }
        deadline
    }

    /// The entries with their dots.
    pub fn entries(&self) -> &[(Dot, ExpiryEntry)] {
        self.0.entries()
    }
}

delegate_dot_store!(Expiry);
