//! The add-wins observed-remove set of byte strings.
//!
//! Each element maps to the dots of the adds that made it present; a remove
//! deletes the dots it saw, so an add concurrent with a remove survives it.
//! Removed elements leave no tombstone beyond the dots in the context.

use crate::register::delegate_dot_store;
use crate::{Bytes, CausalContext, Delta, Dot, DotMap, DotSet, DotStore, JoinMode, ReplicaId};
use serde::{Deserialize, Serialize};

/// An add-wins OR-set. See [`crate::Causal`] for an example.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OrSet(DotMap<Bytes, DotSet>);

impl OrSet {
    /// A delta that adds `member`.
    pub fn add(&self, ctx: &CausalContext, replica: ReplicaId, member: Bytes) -> Delta<Self> {
        let dot = ctx.next_dot(replica);
        let mut seen = vec![dot];
        if let Some(dots) = self.0.get(&member) {
            seen.extend_from_slice(dots.as_slice());
        }
        Delta::new(
            OrSet(DotMap::single(member, DotSet::single(dot))),
            CausalContext::from_dots(seen),
        )
    }

    /// A delta that removes `member` as observed here (a no-op delta if absent).
    pub fn remove(&self, member: &[u8]) -> Delta<Self> {
        let seen = self
            .0
            .get(member)
            .map(|d| d.as_slice().to_vec())
            .unwrap_or_default();
        Delta::new(
            OrSet(DotMap::single(member.into(), DotSet::default())),
            CausalContext::from_dots(seen),
        )
    }

    /// Whether `member` is present.
    pub fn contains(&self, member: &[u8]) -> bool {
        self.0.get(member).is_some_and(|d| !d.is_bottom())
    }

    /// The members, in byte order.
    pub fn members(&self) -> impl Iterator<Item = &Bytes> {
        self.0
            .iter()
            .filter(|(_, d)| !d.is_bottom())
            .map(|(k, _)| k)
    }

    /// The members that sort after `after` (all of them for `None`), in
    /// byte order: the pages of a scan.
    pub fn members_after<'a>(&'a self, after: Option<&'a [u8]>) -> impl Iterator<Item = &'a Bytes> {
        self.0
            .range_after(after)
            .filter(|(_, d)| !d.is_bottom())
            .map(|(k, _)| k)
    }

    /// The number of members.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there is no member.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

delegate_dot_store!(OrSet);
