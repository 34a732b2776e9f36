//! A dot store paired with its causal context: a whole CRDT state
//! ([`Causal`]) or a delta ([`Delta`]).

use crate::context::{WireContext, SEQ_MAX};
use crate::{CausalContext, DotStore, InvalidState, JoinMode};
use serde::{Deserialize, Serialize};

/// A CRDT state: a dot store and the context of every dot it has seen.
///
/// ```
/// use crdt_types::{Causal, OrSet, ReplicaId};
/// let (a, b) = (ReplicaId(1), ReplicaId(2));
/// let mut x: Causal<OrSet> = Causal::new();
/// let mut y = x.clone();
/// let add = x.mutate(|s, c| s.add(c, a, "milk".into()));
/// y.apply(&add);
/// // Concurrently: b removes milk while a adds it again. Add wins.
/// let rm = y.mutate(|s, _| s.remove(b"milk"));
/// let readd = x.mutate(|s, c| s.add(c, a, "milk".into()));
/// x.apply(&rm);
/// y.apply(&readd);
/// assert_eq!(x, y);
/// assert!(x.store().contains(b"milk"));
/// ```
#[derive(Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(try_from = "Parts<S>")]
#[serde(bound(deserialize = "S: DotStore + Deserialize<'de>"))]
pub struct Causal<S> {
    store: S,
    ctx: CausalContext,
}

/// A delta: what one or more mutations changed, small enough to ship.
///
/// A delta lists every key its context touches (removals list their keys
/// with bottom stores), so joining it into a state visits only those keys.
#[derive(Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(try_from = "Parts<S>")]
#[serde(bound(deserialize = "S: DotStore + Deserialize<'de>"))]
pub struct Delta<S> {
    store: S,
    ctx: CausalContext,
}

#[derive(Deserialize)]
struct Parts<S> {
    store: S,
    ctx: CausalContext,
}

/// What `Parts` encodes, borrowed: encoding a state or a delta copies
/// nothing.
#[derive(Serialize)]
#[serde(rename = "Parts")]
struct PartsRef<'a, S> {
    store: &'a S,
    ctx: WireContext<'a>,
}

impl<S: DotStore + Serialize> Serialize for Causal<S> {
    fn serialize<Ser: serde::Serializer>(&self, serializer: Ser) -> Result<Ser::Ok, Ser::Error> {
        PartsRef {
            store: &self.store,
            ctx: WireContext::whole(&self.ctx),
        }
        .serialize(serializer)
    }
}

impl<S: DotStore + Serialize> Serialize for Delta<S> {
    fn serialize<Ser: serde::Serializer>(&self, serializer: Ser) -> Result<Ser::Ok, Ser::Error> {
        PartsRef {
            store: &self.store,
            ctx: WireContext::without_store_dots(&self.ctx, &self.store),
        }
        .serialize(serializer)
    }
}

fn check<S: DotStore>(store: &S, ctx: &CausalContext) -> Result<(), InvalidState> {
    let mut ok = true;
    store.for_each_dot(&mut |d| ok &= ctx.contains(d));
    if ok {
        Ok(())
    } else {
        Err(InvalidState("store holds a dot its context has not seen"))
    }
}

impl<S: DotStore> TryFrom<Parts<S>> for Causal<S> {
    type Error = InvalidState;
    fn try_from(p: Parts<S>) -> Result<Self, InvalidState> {
        check(&p.store, &p.ctx)?;
        let state = Causal {
            store: p.store,
            ctx: p.ctx,
        };
        // Joins keep states in normal form (no key mapping to a bottom store,
        // no mixture of a single type), which equality, encoding and the join
        // laws rely on. Joining into bottom yields that form.
        let mut normal = Causal::new();
        normal.join(&state);
        if normal.store != state.store {
            return Err(InvalidState("state not in normal form"));
        }
        Ok(state)
    }
}

// On the wire a delta's context leaves out the out-of-order dots its store
// holds (every store dot is in the context by construction), which saves a
// dot per write; decoding puts them back. Those dots are held to the range
// a decoded context is held to: past it, the writer of the dot could not
// mint a next one.
impl<S: DotStore> TryFrom<Parts<S>> for Delta<S> {
    type Error = InvalidState;
    fn try_from(p: Parts<S>) -> Result<Self, InvalidState> {
        let mut ctx = p.ctx;
        let mut in_range = true;
        p.store.for_each_dot(&mut |d| {
            in_range &= d.seq <= SEQ_MAX;
            ctx.insert(d);
        });
        if !in_range {
            return Err(InvalidState("sequence number out of range"));
        }
        Ok(Delta {
            store: p.store,
            ctx,
        })
    }
}

impl<S: std::fmt::Debug> std::fmt::Debug for Causal<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} @ {:?}", self.store, self.ctx)
    }
}

impl<S: std::fmt::Debug> std::fmt::Debug for Delta<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Δ {:?} @ {:?}", self.store, self.ctx)
    }
}

impl<S: DotStore> Causal<S> {
    /// The bottom state: nothing seen.
    pub fn new() -> Self {
        Self::default()
    }

    /// The dot store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Every dot seen.
    pub fn context(&self) -> &CausalContext {
        &self.ctx
    }

    /// True when nothing is present (the context may remember removals).
    pub fn is_bottom(&self) -> bool {
        self.store.is_bottom()
    }

    /// Joins a whole state into this one.
    pub fn join(&mut self, other: &Causal<S>) {
        self.store
            .join(&self.ctx, &other.store, &other.ctx, JoinMode::FULL);
        self.ctx.join(&other.ctx);
    }

    /// Joins a delta into this state, visiting only the keys it lists.
    pub fn apply(&mut self, delta: &Delta<S>) {
        self.store
            .join(&self.ctx, &delta.store, &delta.ctx, JoinMode::DELTA);
        self.ctx.join(&delta.ctx);
    }

    /// Runs a delta-mutator on this state, applies its delta and returns it.
    pub fn mutate(&mut self, f: impl FnOnce(&S, &CausalContext) -> Delta<S>) -> Delta<S> {
        let delta = f(&self.store, &self.ctx);
        self.apply(&delta);
        delta
    }

    /// A delta that removes everything this state holds (observed-remove).
    pub fn clear(&self) -> Delta<S> {
        Delta::new(
            self.store.removal(),
            CausalContext::from_dots(self.store.dots()),
        )
    }

    /// Heap bytes held, for memory accounting.
    pub fn heap_bytes(&self) -> usize {
        self.store.heap_bytes() + self.ctx.heap_bytes()
    }

    /// Splits into store and context.
    pub fn into_parts(self) -> (S, CausalContext) {
        (self.store, self.ctx)
    }

    /// Builds a state from a store and a context that has seen all its dots.
    pub fn from_parts(store: S, ctx: CausalContext) -> Result<Self, InvalidState> {
        check(&store, &ctx)?;
        Ok(Causal { store, ctx })
    }
}

impl<S: DotStore> Delta<S> {
    /// A delta from its parts. Mutators are expected to list every key whose
    /// dots `ctx` holds; the dots of `store` must be in `ctx`.
    pub fn new(store: S, ctx: CausalContext) -> Self {
        debug_assert!(
            check(&store, &ctx).is_ok(),
            "delta store dot missing from its context"
        );
        Delta { store, ctx }
    }

    /// The store part.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The context part.
    pub fn context(&self) -> &CausalContext {
        &self.ctx
    }

    /// True when the delta neither adds nor removes anything.
    pub fn is_noop(&self) -> bool {
        self.ctx.is_empty()
    }

    /// Joins another delta into this one, making a delta group.
    pub fn join(&mut self, other: &Delta<S>) {
        self.store
            .join(&self.ctx, &other.store, &other.ctx, JoinMode::GROUP);
        self.ctx.join(&other.ctx);
    }

    /// Rewraps the store (for lifting a nested delta into its container).
    pub fn map<T: DotStore>(self, f: impl FnOnce(S) -> T) -> Delta<T> {
        Delta {
            store: f(self.store),
            ctx: self.ctx,
        }
    }

    /// Splits into store and context.
    pub fn into_parts(self) -> (S, CausalContext) {
        (self.store, self.ctx)
    }

    /// The delta as a state: joined into bottom.
    pub fn to_state(&self) -> Causal<S> {
        let mut c = Causal::new();
        c.apply(self);
        c
    }

    /// Encoded size in bytes (postcard), for shipping estimates.
    pub fn encoded_len(&self) -> usize
    where
        S: Serialize,
    {
        postcard::experimental::serialized_size(self).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Bytes, Dot, DotMap, DotSet, OrSet, ReplicaId};

    /// The encoding as it was when states and deltas were copied into
    /// `Parts` to be encoded: borrowing must not change a byte.
    #[derive(Serialize)]
    struct OwnedParts<S> {
        store: S,
        ctx: CausalContext,
    }

    fn owned_delta_bytes<S: DotStore + Serialize + Clone>(d: &Delta<S>) -> Vec<u8> {
        let in_store: std::collections::BTreeSet<Dot> = d.store.dots().into_iter().collect();
        let ctx = d.ctx.clone().without_cloud_dots(|x| in_store.contains(&x));
        postcard::to_allocvec(&OwnedParts {
            store: d.store.clone(),
            ctx,
        })
        .unwrap()
    }

    #[test]
    fn a_delta_holding_a_dot_beyond_the_sequence_range_is_refused() {
        // Its writer, having joined it, could never mint another dot
        // (`next_dot` would overflow), and the state it made could not be
        // sent: its context would be refused on the other side.
        let writer = ReplicaId(1);
        for (seq, ok) in [(SEQ_MAX, true), (SEQ_MAX + 1, false), (u64::MAX, false)] {
            let dot = Dot::new(writer, seq);
            let d: Delta<DotSet> = Delta::new(DotSet::single(dot), CausalContext::from_dots([dot]));
            let decoded = crate::decode::<Delta<DotSet>>(&crate::encode(&d));
            assert_eq!(decoded.is_ok(), ok, "seq {seq}: {decoded:?}");
            if let Ok(d) = decoded {
                let mut state: Causal<DotSet> = Causal::new();
                state.apply(&d);
                assert_eq!(state.context().next_dot(writer), Dot::new(writer, seq + 1));
                assert!(crate::decode::<Causal<DotSet>>(&crate::encode(&state)).is_ok());
            }
        }
    }

    #[test]
    fn borrowed_encoding_matches_the_owned_one_and_leaves_out_store_dots() {
        let a = ReplicaId(1);
        let mut x: Causal<OrSet> = Causal::new();
        for i in 0..5u8 {
            x.mutate(|s, c| s.add(c, a, vec![i].into()));
        }
        // Removing the third member (dot a:3) and adding a sixth (dot a:6):
        // both dots are out of order for a receiver that saw nothing, so
        // both sit in the group's cloud; only a:6 is in its store.
        let mut group = x.mutate(|s, _| s.remove(&[2]));
        group.join(&x.mutate(|s, c| s.add(c, a, vec![9].into())));
        assert_eq!(group.ctx.cloud(), &[Dot::new(a, 3), Dot::new(a, 6)]);

        let bytes = postcard::to_allocvec(&group).unwrap();
        assert_eq!(bytes, owned_delta_bytes(&group));
        let mut without = group.ctx.clone();
        without = without.without_cloud_dots(|d| d == Dot::new(a, 6));
        assert_eq!(
            bytes,
            postcard::to_allocvec(&OwnedParts {
                store: group.store.clone(),
                ctx: without
            })
            .unwrap(),
            "the store's own dot is left out of the cloud on the wire"
        );
        assert_eq!(group.encoded_len(), bytes.len());
        let back: Delta<OrSet> = postcard::from_bytes(&bytes).unwrap();
        assert!(back == group, "decoding puts the left-out dot back");

        // Clouds of 64 dots (the last bit of the mask) and longer (the
        // other way of marking).
        for len in [64u64, 65, 70] {
            let mut many: Delta<DotMap<Bytes, DotSet>> = Delta::default();
            for i in 0..len {
                let d = Dot::new(a, 10 + 2 * i);
                let mut ctx = CausalContext::new();
                ctx.insert(d);
                // Every third dot is a removal's: in the context, not the store.
                let dots = if i % 3 == 0 {
                    DotSet::default()
                } else {
                    DotSet::single(d)
                };
                many.join(&Delta::new(DotMap::single(vec![i as u8].into(), dots), ctx));
            }
            assert_eq!(many.ctx.cloud().len() as u64, len);
            let bytes = postcard::to_allocvec(&many).unwrap();
            assert_eq!(bytes, owned_delta_bytes(&many), "{len} dots");
            let wire: Parts<DotMap<Bytes, DotSet>> = postcard::from_bytes(&bytes).unwrap();
            assert_eq!(
                wire.ctx.cloud().len() as u64,
                len.div_ceil(3),
                "only the removals' dots travel"
            );
            let back: Delta<DotMap<Bytes, DotSet>> = postcard::from_bytes(&bytes).unwrap();
            assert!(back == many);
        }

        // A whole state encodes its context whole, cloud dots its store
        // holds included: a state that took only the last add has a:6 in
        // both.
        let mut y: Causal<OrSet> = Causal::new();
        y.apply(&x.mutate(|s, c| s.add(c, a, vec![7].into())));
        assert_eq!(y.ctx.cloud(), &[Dot::new(a, 7)]);
        for state in [&x, &y] {
            let bytes = postcard::to_allocvec(state).unwrap();
            let owned = OwnedParts {
                store: state.store.clone(),
                ctx: state.ctx.clone(),
            };
            assert_eq!(bytes, postcard::to_allocvec(&owned).unwrap());
            let back: Causal<OrSet> = postcard::from_bytes(&bytes).unwrap();
            assert!(back == *state);
        }
    }
}
