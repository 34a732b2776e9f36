//! Causal contexts: which dots a replica has seen.
//!
//! A context is a version vector (every dot `(r, 1..=n)` seen) plus a *dot
//! cloud* of dots seen out of order. Dots are folded from the cloud into the
//! vector as soon as they become contiguous, so under causal delivery the
//! cloud is empty and a context costs one entry per writing replica.
//!
//! Invariants (checked on decode): vector entries sorted by replica, unique,
//! each with `n >= 1`; cloud sorted, unique, and holding only dots the vector
//! does not cover and that are not its immediate successor; no sequence
//! number above 2^63 - 1, so minting a replica's next dot after merging a
//! decoded context can never overflow.

use crate::{Dot, ReplicaId};
use serde::{Deserialize, Serialize};

/// A version vector plus a dot cloud. See the module docs.
#[derive(Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(try_from = "RawContext")]
pub struct CausalContext {
    vv: Vec<(ReplicaId, u64)>,
    cloud: Vec<Dot>,
}

#[derive(Deserialize)]
struct RawContext {
    vv: Vec<(ReplicaId, u64)>,
    cloud: Vec<Dot>,
}

/// The largest sequence number a decoded context may hold: far beyond what
/// a replica mints, and far enough below `u64::MAX` to leave room for more.
pub(crate) const SEQ_MAX: u64 = u64::MAX >> 1;

/// A decoded value broke an invariant of its type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid CRDT state: {0}")]
pub struct InvalidState(pub &'static str);

impl TryFrom<RawContext> for CausalContext {
    type Error = InvalidState;
    fn try_from(raw: RawContext) -> Result<Self, InvalidState> {
        if raw.vv.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err(InvalidState("version vector not sorted"));
        }
        if raw.vv.iter().any(|&(_, n)| n == 0) {
            return Err(InvalidState("version vector entry of zero"));
        }
        if raw.vv.iter().any(|&(_, n)| n > SEQ_MAX) || raw.cloud.iter().any(|d| d.seq > SEQ_MAX) {
            return Err(InvalidState("sequence number out of range"));
        }
        if raw.cloud.windows(2).any(|w| w[0] >= w[1]) {
            return Err(InvalidState("dot cloud not sorted"));
        }
        let ctx = CausalContext {
            vv: raw.vv,
            cloud: raw.cloud,
        };
        for d in &ctx.cloud {
            if d.seq <= ctx.vv_get(d.replica) + 1 {
                return Err(InvalidState("dot cloud not compacted"));
            }
        }
        Ok(ctx)
    }
}

/// A context as the wire carries it, borrowed: the whole context, or a
/// delta's context without the cloud dots its store holds (decoding a delta
/// puts them back). Encodes exactly as a `CausalContext` with that cloud.
pub(crate) struct WireContext<'a> {
    ctx: &'a CausalContext,
    /// Which cloud dots to leave out, by position in the cloud.
    left_out: LeftOut,
}

enum LeftOut {
    None,
    /// Bit `i` set: leave out `cloud[i]` (clouds of at most 64 dots).
    Bits(u64),
    Flags(Vec<bool>),
}

impl<'a> WireContext<'a> {
    pub(crate) fn whole(ctx: &'a CausalContext) -> Self {
        WireContext {
            ctx,
            left_out: LeftOut::None,
        }
    }

    pub(crate) fn without_store_dots(ctx: &'a CausalContext, store: &impl crate::DotStore) -> Self {
        let cloud = &ctx.cloud;
        let left_out = if cloud.is_empty() {
            LeftOut::None
        } else if cloud.len() <= 64 {
            let mut bits = 0u64;
            store.for_each_dot(&mut |d| {
                if let Ok(i) = cloud.binary_search(&d) {
                    bits |= 1 << i;
                }
            });
            LeftOut::Bits(bits)
        } else {
            let mut flags = vec![false; cloud.len()];
            store.for_each_dot(&mut |d| {
                if let Ok(i) = cloud.binary_search(&d) {
                    flags[i] = true;
                }
            });
            LeftOut::Flags(flags)
        };
        WireContext { ctx, left_out }
    }

    fn keeps(&self, i: usize) -> bool {
        match &self.left_out {
            LeftOut::None => true,
            LeftOut::Bits(bits) => bits & (1 << i) == 0,
            LeftOut::Flags(flags) => !flags[i],
        }
    }
}

impl Serialize for WireContext<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeSeq, SerializeStruct};

        struct Cloud<'b, 'a>(&'b WireContext<'a>);
        impl Serialize for Cloud<'_, '_> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let cloud = &self.0.ctx.cloud;
                let kept = (0..cloud.len()).filter(|&i| self.0.keeps(i));
                let mut seq = serializer.serialize_seq(Some(kept.clone().count()))?;
                for i in kept {
                    seq.serialize_element(&cloud[i])?;
                }
                seq.end()
            }
        }

        let mut st = serializer.serialize_struct("CausalContext", 2)?;
        st.serialize_field("vv", &self.ctx.vv)?;
        st.serialize_field("cloud", &Cloud(self))?;
        st.end()
    }
}

impl std::fmt::Debug for CausalContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{{")?;
        for (r, n) in &self.vv {
            write!(f, "{r:?}:{n} ")?;
        }
        if !self.cloud.is_empty() {
            write!(f, "cloud {:?}", self.cloud)?;
        }
        write!(f, "}}")
    }
}

impl CausalContext {
    /// The empty context.
    pub fn new() -> Self {
        Self::default()
    }

    /// A context holding exactly `dots`.
    pub fn from_dots(dots: impl IntoIterator<Item = Dot>) -> Self {
        let mut cloud: Vec<Dot> = dots.into_iter().collect();
        cloud.sort_unstable();
        cloud.dedup();
        let mut ctx = CausalContext {
            vv: Vec::new(),
            cloud,
        };
        ctx.compact();
        ctx
    }

    /// The context of every dot `(r, 1..=n)` for each `(r, n)` given.
    pub fn from_version_vector(entries: impl IntoIterator<Item = (ReplicaId, u64)>) -> Self {
        let mut ctx = CausalContext::new();
        for (r, n) in entries {
            if n > ctx.vv_get(r) {
                ctx.vv_set(r, n);
            }
        }
        ctx
    }

    /// True when no dot has been seen.
    pub fn is_empty(&self) -> bool {
        self.vv.is_empty() && self.cloud.is_empty()
    }

    /// The contiguous prefix seen of `replica`'s dots.
    pub fn vv_get(&self, replica: ReplicaId) -> u64 {
        match self.vv.binary_search_by_key(&replica, |&(r, _)| r) {
            Ok(i) => self.vv[i].1,
            Err(_) => 0,
        }
    }

    /// Whether `dot` has been seen.
    pub fn contains(&self, dot: Dot) -> bool {
        dot.seq <= self.vv_get(dot.replica) || self.cloud.binary_search(&dot).is_ok()
    }

    /// The highest sequence number seen of `replica`.
    pub fn max_seq(&self, replica: ReplicaId) -> u64 {
        let from_cloud = self
            .cloud
            .iter()
            .rev()
            .find(|d| d.replica == replica)
            .map_or(0, |d| d.seq);
        self.vv_get(replica).max(from_cloud)
    }

    /// A dot `replica` has never used: one past the highest it has seen.
    pub fn next_dot(&self, replica: ReplicaId) -> Dot {
        Dot::new(replica, self.max_seq(replica) + 1)
    }

    /// Records `dot` as seen.
    pub fn insert(&mut self, dot: Dot) {
        if self.contains(dot) {
            return;
        }
        let n = self.vv_get(dot.replica);
        if dot.seq == n + 1 {
            self.vv_set(dot.replica, dot.seq);
            // The successor may now be contiguous: fold the cloud.
            if !self.cloud.is_empty() {
                self.compact();
            }
        } else {
            let pos = self.cloud.binary_search(&dot).unwrap_err();
            self.cloud.insert(pos, dot);
        }
    }

    /// Adds every dot of `other`.
    pub fn join(&mut self, other: &CausalContext) {
        if other.is_empty() {
            return;
        }
        // Merge the vectors entry-wise (both are sorted by replica).
        if self.vv.is_empty() {
            self.vv.clone_from(&other.vv);
        } else if !other.vv.is_empty() {
            let mut merged = Vec::with_capacity(self.vv.len().max(other.vv.len()));
            let (mut i, mut j) = (0, 0);
            while i < self.vv.len() || j < other.vv.len() {
                match (self.vv.get(i), other.vv.get(j)) {
                    (Some(&(ra, na)), Some(&(rb, nb))) if ra == rb => {
                        merged.push((ra, na.max(nb)));
                        i += 1;
                        j += 1;
                    }
                    (Some(&a), Some(&b)) if a.0 < b.0 => {
                        merged.push(a);
                        i += 1;
                    }
                    (Some(_), Some(&b)) => {
                        merged.push(b);
                        j += 1;
                    }
                    (Some(&a), None) => {
                        merged.push(a);
                        i += 1;
                    }
                    (None, Some(&b)) => {
                        merged.push(b);
                        j += 1;
                    }
                    (None, None) => unreachable!(),
                }
            }
            self.vv = merged;
        }
        if !other.cloud.is_empty() || !self.cloud.is_empty() {
            let mut cloud = std::mem::take(&mut self.cloud);
            cloud.extend_from_slice(&other.cloud);
            cloud.sort_unstable();
            cloud.dedup();
            self.cloud = cloud;
            self.compact();
        }
    }

    /// Folds contiguous cloud dots into the vector and drops covered ones.
    fn compact(&mut self) {
        let cloud = std::mem::take(&mut self.cloud);
        let mut rest = Vec::new();
        // The cloud is sorted by (replica, seq): each replica's run is in order.
        for d in cloud {
            let n = self.vv_get(d.replica);
            if d.seq <= n {
                continue;
            } else if d.seq == n + 1 {
                self.vv_set(d.replica, d.seq);
            } else {
                rest.push(d);
            }
        }
        self.cloud = rest;
    }

    fn vv_set(&mut self, replica: ReplicaId, n: u64) {
        match self.vv.binary_search_by_key(&replica, |&(r, _)| r) {
            Ok(i) => self.vv[i].1 = n,
            Err(i) => self.vv.insert(i, (replica, n)),
        }
    }

    /// The version-vector part: `(replica, n)` means dots `1..=n` seen.
    pub fn version_vector(&self) -> &[(ReplicaId, u64)] {
        &self.vv
    }

    /// The same context without the out-of-order dots `drop` selects
    /// (the contiguous version vector is kept whole).
    pub fn without_cloud_dots(mut self, mut drop: impl FnMut(Dot) -> bool) -> CausalContext {
        self.cloud.retain(|d| !drop(*d));
        self
    }

    /// The dots seen out of order.
    pub fn cloud(&self) -> &[Dot] {
        &self.cloud
    }

    /// Heap bytes held (an estimate for memory accounting).
    pub fn heap_bytes(&self) -> usize {
        self.vv.capacity() * std::mem::size_of::<(ReplicaId, u64)>()
            + self.cloud.capacity() * std::mem::size_of::<Dot>()
    }

    /// Whether every dot of `self` is in `other`.
    pub fn is_subset_of(&self, other: &CausalContext) -> bool {
        self.vv.iter().all(|&(r, n)| {
            let m = other.vv_get(r);
            n <= m || (m + 1..=n).all(|s| other.contains(Dot::new(r, s)))
        }) && self.cloud.iter().all(|&d| other.contains(d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(r: u32, s: u64) -> Dot {
        Dot::new(ReplicaId(r), s)
    }

    #[test]
    fn out_of_order_dots_fold_into_the_vector_once_contiguous() {
        let mut c = CausalContext::new();
        c.insert(d(1, 3));
        c.insert(d(1, 2));
        assert_eq!(c.cloud(), &[d(1, 2), d(1, 3)]);
        c.insert(d(1, 1));
        assert!(c.cloud().is_empty());
        assert_eq!(c.version_vector(), &[(ReplicaId(1), 3)]);
        assert_eq!(c.next_dot(ReplicaId(1)), d(1, 4));
    }

    #[test]
    fn join_is_union_and_normalised() {
        let a = CausalContext::from_dots([d(1, 1), d(2, 2)]);
        let b = CausalContext::from_dots([d(2, 1), d(1, 3)]);
        let mut ab = a.clone();
        ab.join(&b);
        let mut ba = b.clone();
        ba.join(&a);
        assert_eq!(ab, ba);
        assert_eq!(ab.version_vector(), &[(ReplicaId(1), 1), (ReplicaId(2), 2)]);
        assert_eq!(ab.cloud(), &[d(1, 3)]);
        assert!(a.is_subset_of(&ab) && b.is_subset_of(&ab) && !ab.is_subset_of(&a));
    }

    #[test]
    fn decode_rejects_uncompacted_cloud() {
        let bad = RawContext {
            vv: vec![(ReplicaId(1), 1)],
            cloud: vec![d(1, 2)],
        };
        assert!(CausalContext::try_from(bad).is_err());
    }
}
