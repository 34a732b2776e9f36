//! The keyspace: keys → typed CRDT values with expiry, on one replica.
//!
//! Every write returns the [`Delta`] it made, for the caller to replicate;
//! remote deltas and states are joined in with [`Keyspace::apply_delta`] and
//! [`Keyspace::join_state`]. A key's type is chosen by the first operation
//! that creates it; an operation of another type fails with
//! [`KeyspaceError::WrongType`] and changes nothing. `del` removes what this
//! replica observed. Expired keys read as absent at once (lazy expiry) and
//! are deleted by [`Keyspace::sweep_expired`] (active expiry).
//!
//! The keyspace never reads a clock: every call takes `now_ms`, the caller's
//! physical time in milliseconds since the Unix epoch. It does no I/O.

mod commands;
mod packed;

pub use commands::{FieldOp, FieldValue, Matches, Page, PageItem, Ttl};

use crate::keyhash::key_hash;
use crdt_types::{
    Bytes, Causal, ClockSkew, Delta, DotStore, Hlc, HlcClock, Kind, Record, ReplicaId, TypedStore,
    WrongType,
};
use hashbrown::HashTable;
use std::borrow::Cow;
use std::collections::BTreeSet;
use std::ops::RangeInclusive;

/// Limits and settings of a keyspace.
#[derive(Debug, Clone)]
pub struct KeyspaceConfig {
    /// The largest key accepted, in bytes.
    pub key_bytes_max: usize,
    /// The largest register value, set member or map field accepted, in bytes.
    pub value_bytes_max: usize,
    /// The largest answer one key's set or map may make, in bytes: a set or
    /// map stops growing there, so `SMembers` or `HGetAll` reads it back in
    /// one answer that fits a frame, and a scan's page stops there (its
    /// memory may take [`STATE_PER_ANSWER_MAX`] times this).
    pub key_value_bytes_max: usize,
    /// How far ahead of local time a remote HLC stamp may be.
    pub max_skew_ms: u64,
}

impl Default for KeyspaceConfig {
    fn default() -> Self {
        KeyspaceConfig {
            key_bytes_max: 16 * 1024,
            value_bytes_max: 1024 * 1024,
            key_value_bytes_max: 2 * 1024 * 1024 - 1024,
            max_skew_ms: 500,
        }
    }
}

/// Why an operation was refused. A refused operation changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyspaceError {
    /// The key holds another type.
    #[error(transparent)]
    WrongType(#[from] WrongType),
    /// The key is longer than the limit.
    #[error("key of {len} bytes exceeds the limit of {max} bytes")]
    KeyTooLarge {
        /// The key's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A value, member or field is longer than the limit.
    #[error("value of {len} bytes exceeds the limit of {max} bytes")]
    ValueTooLarge {
        /// The value's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A set or map would grow past the limit of one key's value.
    #[error("the key's value would take {len} bytes, over the limit of {max} bytes")]
    KeyValueTooLarge {
        /// The size it would take.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A counter would leave the i64 range.
    #[error("increment or decrement would overflow")]
    Overflow,
    /// A scan's `MATCH` pattern is longer than the limit.
    #[error("MATCH pattern of {len} bytes exceeds the limit of {max} bytes")]
    PatternTooLong {
        /// The pattern's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Maps nested deeper than allowed.
    #[error("maps nested deeper than {max} levels")]
    NestingTooDeep {
        /// The limit.
        max: usize,
    },
    /// A map operation named no field.
    #[error("a map operation needs a field")]
    NoField,
    /// A remote delta carried a timestamp too far in the future.
    #[error("rejected remote update: {0}")]
    ClockSkew(#[from] ClockSkew),
    /// A remote update counted a replica's writes past [`REMOTE_SEQ_MAX`],
    /// or this replica's own count of writes to the key reached
    /// [`LOCAL_SEQ_MAX`] (only a misbehaving peer brings either about).
    #[error("a write count of {seq} for the key, over the limit of {max}")]
    SequenceTooHigh {
        /// The highest write count it carried.
        seq: u64,
        /// The limit.
        max: u64,
    },
}

/// The highest write count (dot sequence number) of any replica that a
/// remote update may carry. Decoding allows up to 2^63 - 1, but a replica
/// counts on from the highest count it knows of itself, so an update near
/// that edge (only a peer that misbehaves sends one: no replica writes
/// 2^62 times) would leave it writing counts no replica can decode, and
/// the key would stop replicating from it. 2^62 leaves room for as many
/// writes again.
pub const REMOTE_SEQ_MAX: u64 = 1 << 62;

/// The highest count of its own writes to a key at which a replica still
/// writes the key: below [`REMOTE_SEQ_MAX`] by more than one write's dots,
/// so that every delta it makes stays one the others take in. A key a
/// misbehaving peer pushed past it is still written through the key's
/// other replicas.
pub const LOCAL_SEQ_MAX: u64 = REMOTE_SEQ_MAX - 1024;

/// Refuses a remote update whose context counts past [`REMOTE_SEQ_MAX`].
fn check_sequences(context: &crdt_types::CausalContext) -> Result<(), KeyspaceError> {
    let seq = context
        .version_vector()
        .iter()
        .map(|&(_, n)| n)
        .chain(context.cloud().iter().map(|d| d.seq))
        .max()
        .unwrap_or(0);
    if seq > REMOTE_SEQ_MAX {
        return Err(KeyspaceError::SequenceTooHigh {
            seq,
            max: REMOTE_SEQ_MAX,
        });
    }
    Ok(())
}

/// The result of a write: what to answer, and the delta to replicate
/// (`None` when the write changed nothing).
#[derive(Debug, Clone, PartialEq)]
pub struct Written<T> {
    /// The operation's answer.
    pub reply: T,
    /// What changed, to ship to the key's other replicas.
    pub delta: Option<Delta<Record>>,
}

/// A key and the delta of its state.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyDelta {
    /// The key.
    pub key: Bytes,
    /// The delta.
    pub delta: Delta<Record>,
}

/// Memory use, as reported to operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemoryStats {
    /// Keys held, tombstones included.
    pub keys: usize,
    /// Keys kept in the compact form.
    pub keys_compact: usize,
    /// Estimated bytes held by keys and values (allocator rounding included).
    pub bytes: usize,
}

/// Bytes charged per entry of the hash order (a B-tree of `u64`s,
/// its nodes about two thirds full).
const ORDER_ENTRY_BYTES: usize = 16;

/// Bytes counted per key of a [`KeyPage`] beyond the key itself, as an
/// answer encodes and holds it.
const ANSWER_KEY_BYTES: usize = 8;

/// Where the tables file a key of [`key_hash`] `hash`: a bijection of it
/// (so two keys share a slot hash exactly when they share a key hash),
/// mixed so that both the table's bucket (low bits) and its tag (top
/// bits) vary among the keys of one node, whose key hashes lie on a few
/// arcs of the ring and so share their top bits.
fn slot_hash(hash: u64) -> u64 {
    hash.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// [`slot_hash`] of `key`.
fn slot_of(key: &[u8]) -> u64 {
    slot_hash(key_hash(key))
}

/// How much one page of [`Keyspace::scan_keys`] may do; the page ends at
/// the first hash that spends any of them (after one hash at least).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanBudget {
    /// Key hashes looked at.
    pub hashes: usize,
    /// Bytes of the keys taken, as an answer holds them: a page that
    /// holds keys stops before a hash whose keys would go past this.
    pub answer_bytes: usize,
    /// Bytes of the keys looked at, taken or not (each counts its length
    /// and one): what matching them against a pattern costs.
    pub key_bytes: usize,
}

impl ScanBudget {
    /// A page of `hashes` hashes and nothing else to stop it.
    pub fn hashes(hashes: usize) -> ScanBudget {
        ScanBudget {
            hashes,
            answer_bytes: usize::MAX,
            key_bytes: usize::MAX,
        }
    }
}

/// A page of [`Keyspace::scan_keys`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KeyPage {
    /// The keys found, in [`key_hash`] order.
    pub keys: Vec<Bytes>,
    /// The hash the next page starts at; 0 when the scan is over (a page
    /// that ends with the greatest hash also ends the scan).
    pub next: u64,
}

/// The most scratch space kept between writes of compact keys.
const SCRATCH_KEEP_BYTES: usize = 16 << 10;

/// One replica's keys and values. See the module docs.
pub struct Keyspace {
    replica: ReplicaId,
    config: KeyspaceConfig,
    clock: HlcClock,
    /// Simple states, each one allocation holding key and state. Both
    /// tables file a key by [`slot_hash`] of its [`key_hash`], so that a
    /// key is found from its key hash alone (see `order`).
    compact: HashTable<Box<[u8]>>,
    /// Every other state, decoded. A key is in exactly one of the two tables.
    live: HashTable<(Bytes, Live)>,
    /// The [`key_hash`] of every key held (two keys of one hash share an
    /// entry): the order keyspace scans walk, and the way range queries
    /// find their keys without a pass over the tables.
    order: BTreeSet<u64>,
    /// Keys with a deadline, by deadline, for the active sweep.
    deadlines: BTreeSet<(u64, Bytes)>,
    bytes: usize,
    /// Where a compact key's new form is written before it replaces the old.
    scratch: Vec<u8>,
}

/// Bytes the allocator hands out for a request of `n` (glibc-like: 8 bytes
/// of header, 16-byte granules, 32 at least).
fn alloc_size(n: usize) -> usize {
    if n == 0 {
        0
    } else {
        ((n + 8).div_ceil(16) * 16).max(32)
    }
}

/// Hash-table bytes charged per key: the slot and its control byte at a
/// typical load factor of 7/8 · 3/4.
fn slot_bytes(slot: usize) -> usize {
    (slot + 1) * 3 / 2
}

fn compact_bytes(entry: &[u8]) -> usize {
    alloc_size(entry.len()) + slot_bytes(std::mem::size_of::<Box<[u8]>>())
}

/// A decoded state and the heap bytes it holds (kept up to date per delta,
/// so accounting a write to a large collection costs O(delta)).
struct Live {
    state: Causal<Record>,
    heap: usize,
}

fn live_bytes(key: &[u8], heap: usize) -> usize {
    alloc_size(key.len()) + heap + slot_bytes(std::mem::size_of::<(Bytes, Live)>())
}

/// Joins `d` into `state`, keeping `heap` (its heap bytes) up to date.
fn apply_accounted(state: &mut Causal<Record>, heap: &mut usize, d: &Delta<Record>) {
    let before = state.store().heap_bytes_within(d.store()) + state.context().heap_bytes();
    state.apply(d);
    let after = state.store().heap_bytes_within(d.store()) + state.context().heap_bytes();
    *heap = (*heap + after).saturating_sub(before);
}

/// A hash of a key's state as it encodes: replicas whose states of a key
/// hash alike hold the same state (read repair sends nothing to them).
pub fn state_hash(state: &Causal<Record>) -> u64 {
    xxhash_rust::xxh3::xxh3_64(&crdt_types::encode(state))
}

/// The hash of one key and its state, as digests combine them.
fn entry_hash(buf: &mut Vec<u8>, key: &[u8], state: &Causal<Record>) -> u64 {
    buf.clear();
    buf.extend_from_slice(&(key.len() as u64).to_le_bytes());
    buf.extend_from_slice(key);
    buf.extend_from_slice(&crdt_types::encode(state));
    xxhash_rust::xxh3::xxh3_64(buf)
}

/// The bucket of `key` among `buckets` (a power of two) equal hash ranges.
pub fn bucket_of(key: &[u8], buckets: usize) -> usize {
    let bits = buckets.trailing_zeros();
    if bits == 0 {
        0
    } else {
        (key_hash(key) >> (64 - bits)) as usize
    }
}

fn deadline_of(state: &Causal<Record>) -> Option<u64> {
    state.store().expiry.deadline_ms()
}

/// How many times its answer limit a key's whole state may take in memory.
pub const STATE_PER_ANSWER_MAX: usize = 8;

/// Whether a state holds a value: a key whose set or map lost its last
/// member, or that holds only a deadline or tombstones, does not exist.
fn holds_data(state: &Causal<Record>) -> bool {
    state.store().data.kind().is_some()
}

fn is_expired(deadline: Option<u64>, now_ms: u64) -> bool {
    deadline.is_some_and(|d| d <= now_ms)
}

/// The greatest HLC stamp in a value (register entries, at any depth).
fn max_hlc(store: &TypedStore) -> Option<Hlc> {
    match store {
        TypedStore::Register(r) => r.entries().iter().map(|(_, s)| s.hlc).max(),
        TypedStore::Map(m) => m.iter().filter_map(|(_, s)| max_hlc(s)).max(),
        TypedStore::Mixed(m) => {
            let reg = m.register.entries().iter().map(|(_, s)| s.hlc).max();
            reg.max(m.map.iter().filter_map(|(_, s)| max_hlc(s)).max())
        }
        _ => None,
    }
}

impl Keyspace {
    /// An empty keyspace for `replica`.
    pub fn new(replica: ReplicaId, config: KeyspaceConfig) -> Self {
        Keyspace {
            replica,
            clock: HlcClock::new(config.max_skew_ms),
            compact: HashTable::new(),
            live: HashTable::new(),
            order: BTreeSet::new(),
            deadlines: BTreeSet::new(),
            bytes: 0,
            scratch: Vec::new(),
            config,
        }
    }

    /// The replica this keyspace writes as.
    pub fn replica(&self) -> ReplicaId {
        self.replica
    }

    /// Writes from now on under `writer`: a replica that dropped keys must
    /// not mint again the dots it minted for them (replicas that kept those
    /// dots would take the new writes as seen and drop them), so it takes a
    /// writer id never used before.
    pub fn set_writer(&mut self, writer: ReplicaId) {
        self.replica = writer;
    }

    /// The limits in force.
    pub fn config(&self) -> &KeyspaceConfig {
        &self.config
    }

    /// The hybrid logical clock (for stamping and checking other messages).
    pub fn clock(&mut self) -> &mut HlcClock {
        &mut self.clock
    }

    fn find_compact(&self, key: &[u8]) -> Option<&[u8]> {
        self.compact
            .find(slot_of(key), |e| packed::key(e) == key)
            .map(|e| &e[..])
    }

    fn find_live(&self, key: &[u8]) -> Option<&Live> {
        self.live
            .find(slot_of(key), |(k, _)| k[..] == *key)
            .map(|(_, l)| l)
    }

    /// Calls `f` on every key held whose [`key_hash`] is `hash`, with its
    /// stored state.
    fn for_each_of_hash(&self, hash: u64, mut f: impl FnMut(&[u8], Cow<'_, Causal<Record>>)) {
        for e in self.compact.iter_hash(slot_hash(hash)) {
            let key = packed::key(e);
            if key_hash(key) == hash {
                f(key, Cow::Owned(packed::view(e).to_state()));
            }
        }
        for (k, l) in self.live.iter_hash(slot_hash(hash)) {
            if key_hash(k) == hash {
                f(k, Cow::Borrowed(&l.state));
            }
        }
    }

    /// Keeps `order` in step after a change to `key` that found it held
    /// or not and left it held or not.
    fn reorder(&mut self, key: &[u8], held_before: bool, held: bool) {
        if held && !held_before {
            self.order.insert(key_hash(key));
        } else if held_before && !held {
            let hash = key_hash(key);
            let mut shared = false;
            self.for_each_of_hash(hash, |_, _| shared = true);
            if !shared {
                self.order.remove(&hash);
            }
        }
    }

    /// The stored state of `key`, expired or not, tombstone or not.
    fn stored(&self, key: &[u8]) -> Option<Cow<'_, Causal<Record>>> {
        if let Some(e) = self.find_compact(key) {
            return Some(Cow::Owned(packed::view(e).to_state()));
        }
        self.find_live(key).map(|l| Cow::Borrowed(&l.state))
    }

    /// The state of `key` if it is present and not expired at `now_ms`.
    pub fn visible(&self, key: &[u8], now_ms: u64) -> Option<Cow<'_, Causal<Record>>> {
        if let Some(e) = self.find_compact(key) {
            let v = packed::view(e);
            return (!is_expired(v.deadline_ms, now_ms)).then(|| Cow::Owned(v.to_state()));
        }
        let s = &self.find_live(key)?.state;
        (holds_data(s) && !is_expired(deadline_of(s), now_ms)).then_some(Cow::Borrowed(s))
    }

    /// The whole state of `key` (tombstones included), for read repair and
    /// full-state transfer. Expired keys are returned as stored.
    pub fn state(&self, key: &[u8]) -> Option<Causal<Record>> {
        self.stored(key).map(Cow::into_owned)
    }

    /// Drops `key` and everything known of it (a copy held for another
    /// replica, handed back). True when the key was there.
    pub fn forget(&mut self, key: &[u8]) -> bool {
        let (_, _, present) = self.take(key);
        if present {
            self.reorder(key, true, false);
        }
        present
    }

    /// The visible type of `key`.
    pub fn type_of(&self, key: &[u8], now_ms: u64) -> Option<Kind> {
        self.visible(key, now_ms)
            .and_then(|s| s.store().data.kind())
    }

    /// Runs `f` on the state of `key` (a bottom state when absent) and its
    /// heap bytes, then stores what `f` left. A compact key that stays
    /// compact is rewritten in its table slot, in place when its size is
    /// unchanged: no second lookup and, most of the time, no allocation.
    fn modify<T>(&mut self, key: &[u8], f: impl FnOnce(&mut Causal<Record>, &mut usize) -> T) -> T {
        let slot = slot_of(key);
        let Ok(mut entry) = self.compact.find_entry(slot, |e| packed::key(e) == key) else {
            let (mut state, mut heap, held) = self.take_live(key);
            let out = f(&mut state, &mut heap);
            let stored = self.put(key, state, heap);
            self.reorder(key, held, stored);
            return out;
        };
        let mut state = packed::view(entry.get()).to_state();
        let before = deadline_of(&state);
        let mut heap = state.heap_bytes();
        let out = f(&mut state, &mut heap);
        let after = deadline_of(&state);
        if !state.context().is_empty() && packed::pack_into(key, &state, &mut self.scratch) {
            let slot = entry.get_mut();
            self.bytes -= compact_bytes(slot);
            if slot.len() == self.scratch.len() {
                slot.copy_from_slice(&self.scratch);
            } else {
                *slot = self.scratch.as_slice().into();
            }
            self.bytes += compact_bytes(slot);
            if self.scratch.capacity() > SCRATCH_KEEP_BYTES {
                // A large value passed through: do not hold its size for good.
                self.scratch = Vec::new();
            }
            if before != after {
                self.unindex_deadline(key, before);
                if let Some(ms) = after {
                    self.deadlines.insert((ms, Bytes::from(key)));
                }
            }
            return out;
        }
        // No longer compact (or nothing seen): stored the general way.
        let (old, _) = entry.remove();
        self.bytes -= compact_bytes(&old);
        self.unindex_deadline(key, before);
        let stored = self.put(key, state, heap);
        self.reorder(key, true, stored);
        out
    }

    /// Removes `key` from the tables, returning its state and heap bytes
    /// (a bottom state with nothing seen when the key is absent), and
    /// whether it was there.
    fn take(&mut self, key: &[u8]) -> (Causal<Record>, usize, bool) {
        let slot = slot_of(key);
        if let Ok(entry) = self.compact.find_entry(slot, |e| packed::key(e) == key) {
            let (e, _) = entry.remove();
            self.bytes -= compact_bytes(&e);
            let state = packed::view(&e).to_state();
            self.unindex_deadline(key, deadline_of(&state));
            let heap = state.heap_bytes();
            return (state, heap, true);
        }
        self.take_live(key)
    }

    /// [`Keyspace::take`] for a key known not to be compact; also says
    /// whether the key was there.
    fn take_live(&mut self, key: &[u8]) -> (Causal<Record>, usize, bool) {
        match self.live.find_entry(slot_of(key), |(k, _)| k[..] == *key) {
            Ok(entry) => {
                let ((k, live), _) = entry.remove();
                self.bytes -= live_bytes(&k, live.heap);
                self.unindex_deadline(key, deadline_of(&live.state));
                (live.state, live.heap, true)
            }
            Err(_) => (Causal::new(), 0, false),
        }
    }

    /// Stores `state` for `key` in the form that fits it; a key that has
    /// seen nothing is not stored. Whether it was. The caller keeps
    /// `order` in step ([`Keyspace::reorder`]).
    #[must_use]
    fn put(&mut self, key: &[u8], state: Causal<Record>, heap: usize) -> bool {
        if state.context().is_empty() {
            return false;
        }
        if let Some(ms) = deadline_of(&state) {
            self.deadlines.insert((ms, Bytes::from(key)));
        }
        if let Some(entry) = packed::pack(key, &state) {
            self.bytes += compact_bytes(&entry);
            self.compact
                .insert_unique(slot_of(key), entry, |e| slot_of(packed::key(e)));
        } else {
            self.bytes += live_bytes(key, heap);
            self.live.insert_unique(
                slot_of(key),
                (Bytes::from(key), Live { state, heap }),
                |(k, _)| slot_of(k),
            );
        }
        true
    }

    fn unindex_deadline(&mut self, key: &[u8], deadline: Option<u64>) {
        if let Some(ms) = deadline {
            self.deadlines.remove(&(ms, Bytes::from(key)));
        }
    }

    /// Refuses a key longer than the configured limit (reads too, so that a
    /// key that can never be written is an error rather than a miss).
    pub(crate) fn check_key(&self, key: &[u8]) -> Result<(), KeyspaceError> {
        if key.len() > self.config.key_bytes_max {
            return Err(KeyspaceError::KeyTooLarge {
                len: key.len(),
                max: self.config.key_bytes_max,
            });
        }
        Ok(())
    }

    fn check_value(&self, value: &[u8]) -> Result<(), KeyspaceError> {
        if value.len() > self.config.value_bytes_max {
            return Err(KeyspaceError::ValueTooLarge {
                len: value.len(),
                max: self.config.value_bytes_max,
            });
        }
        Ok(())
    }

    /// Runs a write on `key`. An expired key is first deleted (that deletion
    /// is part of the returned delta). `f` must validate before it mutates.
    fn update<T>(
        &mut self,
        key: &[u8],
        now_ms: u64,
        f: impl FnOnce(&mut Txn<'_>) -> Result<T, KeyspaceError>,
    ) -> Result<Written<T>, KeyspaceError> {
        self.check_key(key)?;
        let replica = self.replica;
        self.modify(key, |state, heap| {
            let seq = state.context().max_seq(replica);
            if seq >= LOCAL_SEQ_MAX {
                return Err(KeyspaceError::SequenceTooHigh {
                    seq,
                    max: LOCAL_SEQ_MAX,
                });
            }
            let mut txn = Txn {
                state,
                heap,
                delta: None,
                replica,
            };
            // An expired key, or one whose set or map was emptied (it keeps a
            // deadline that no longer belongs to anything), is gone: a write
            // starts it afresh, as Redis does.
            let deadline = deadline_of(txn.state);
            // A refused write changes nothing, that clearing included.
            let mut before = None;
            if is_expired(deadline, now_ms) || (deadline.is_some() && !holds_data(txn.state)) {
                before = Some((txn.state.clone(), *txn.heap));
                let clear = txn.state.clear();
                txn.push(clear);
            }
            let result = f(&mut txn);
            let delta = txn.delta.take();
            if let (Some((state, heap)), true) = (before, result.is_err()) {
                *txn.state = state;
                *txn.heap = heap;
            }
            result.map(|reply| Written { reply, delta })
        })
    }

    /// Joins a delta from another replica into `key`. Refused (and nothing
    /// changes) when it carries an HLC stamp beyond the skew bound.
    pub fn apply_delta(
        &mut self,
        key: &[u8],
        delta: &Delta<Record>,
        now_ms: u64,
    ) -> Result<(), KeyspaceError> {
        self.check_key(key)?;
        check_sequences(delta.context())?;
        self.observe_stamps(&delta.store().data, now_ms)?;
        self.modify(key, |state, heap| apply_accounted(state, heap, delta));
        Ok(())
    }

    /// Joins a whole state from another replica into `key` (anti-entropy,
    /// read repair, rebalancing). Refused like [`Keyspace::apply_delta`].
    pub fn join_state(
        &mut self,
        key: &[u8],
        other: &Causal<Record>,
        now_ms: u64,
    ) -> Result<(), KeyspaceError> {
        self.check_key(key)?;
        check_sequences(other.context())?;
        self.observe_stamps(&other.store().data, now_ms)?;
        self.modify(key, |state, heap| {
            state.join(other);
            *heap = state.heap_bytes();
        });
        Ok(())
    }

    /// Joins a state recovered from this node's own storage (no skew check:
    /// the stamps were accepted when first applied).
    pub fn restore(&mut self, key: &[u8], other: &Causal<Record>) {
        let (mut state, _, held) = self.take(key);
        state.join(other);
        if let Some(hlc) = max_hlc(&state.store().data) {
            // Keep the clock ahead of every restored stamp.
            let _ = self.clock.observe(hlc, hlc.physical_ms());
        }
        let heap = state.heap_bytes();
        let stored = self.put(key, state, heap);
        self.reorder(key, held, stored);
    }

    fn observe_stamps(&mut self, data: &TypedStore, now_ms: u64) -> Result<(), KeyspaceError> {
        if let Some(hlc) = max_hlc(data) {
            self.clock.observe(hlc, now_ms)?;
        }
        Ok(())
    }

    /// Deletes up to `limit` keys whose deadline has passed, returning the
    /// deletions to replicate (every replica also expires keys by itself,
    /// so a lost deletion is harmless).
    pub fn sweep_expired(&mut self, now_ms: u64, limit: usize) -> Vec<KeyDelta> {
        let due: Vec<Bytes> = self
            .deadlines
            .iter()
            .take_while(|(ms, _)| *ms <= now_ms)
            .take(limit)
            .map(|(_, k)| k.clone())
            .collect();
        let mut out = Vec::with_capacity(due.len());
        for key in due {
            if let Ok(Written {
                delta: Some(delta), ..
            }) = self.update(&key, now_ms, |_| Ok(()))
            {
                out.push(KeyDelta { key, delta });
            }
        }
        out
    }

    /// The deadline of the next key due to expire.
    pub fn next_deadline_ms(&self) -> Option<u64> {
        self.deadlines.first().map(|(ms, _)| *ms)
    }

    /// Memory use: keys held and estimated bytes.
    pub fn memory(&self) -> MemoryStats {
        MemoryStats {
            keys: self.compact.len() + self.live.len(),
            keys_compact: self.compact.len(),
            bytes: self.bytes + self.deadlines.len() * 64 + self.order.len() * ORDER_ENTRY_BYTES,
        }
    }

    /// Estimated bytes held by one key (its entry, state and table slot).
    pub fn key_bytes(&self, key: &[u8]) -> Option<usize> {
        if let Some(e) = self.find_compact(key) {
            return Some(compact_bytes(e));
        }
        self.find_live(key).map(|l| live_bytes(key, l.heap))
    }

    /// Keys held (tombstones included).
    pub fn len(&self) -> usize {
        self.compact.len() + self.live.len()
    }

    /// True when no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Calls `f` on every key whose [`key_hash`] lies in `range`, with its
    /// stored state (tombstones and expired keys included), in no particular order.
    pub fn for_each_in_range(
        &self,
        range: RangeInclusive<u64>,
        mut f: impl FnMut(&[u8], &Causal<Record>),
    ) {
        let (lo, hi) = (*range.start(), *range.end());
        if lo > hi {
            return;
        }
        // A narrow range is found through `order`; a wide one (a quarter
        // of the hashes or more) by one pass over the tables, which walks
        // memory in order.
        if hi - lo < u64::MAX / 4 {
            for &hash in self.order.range(range) {
                self.for_each_of_hash(hash, |k, s| f(k, &s));
            }
            return;
        }
        for e in &self.compact {
            let key = packed::key(e);
            if range.contains(&key_hash(key)) {
                f(key, &packed::view(e).to_state());
            }
        }
        for (k, l) in &self.live {
            if range.contains(&key_hash(k)) {
                f(k, &l.state);
            }
        }
    }

    /// A page of a scan of the keys held, in [`key_hash`] order: the keys
    /// whose hash is `from` or more, taken hash by hash until the page's
    /// [`ScanBudget`] is spent. Of those keys, the page holds the ones that
    /// exist at `now_ms` (not expired, not deleted) and that `want` accepts
    /// (given each key and its type). Two keys of one hash are always in
    /// the same page, so a page ends between hashes and [`KeyPage::next`]
    /// names the hash the next page starts at; every page but the last
    /// looks at one hash at least. Keys written or deleted between pages
    /// may or may not be listed; every key held throughout is listed once.
    pub fn scan_keys(
        &self,
        from: u64,
        budget: ScanBudget,
        now_ms: u64,
        mut want: impl FnMut(&[u8], Kind) -> bool,
    ) -> KeyPage {
        let mut keys: Vec<Bytes> = Vec::new();
        let (mut hashes, mut bytes, mut key_bytes) = (0usize, 0usize, 0usize);
        // The keys of one hash, and the bytes they add to the answer.
        let mut group: Vec<Bytes> = Vec::new();
        for &hash in self.order.range(from..) {
            group.clear();
            let mut group_bytes = 0usize;
            let mut take = |key: &[u8], kind: Option<Kind>, deadline: Option<u64>| {
                key_bytes = key_bytes.saturating_add(key.len() + 1);
                if let (Some(kind), false) = (kind, is_expired(deadline, now_ms)) {
                    if want(key, kind) {
                        group_bytes += key.len() + ANSWER_KEY_BYTES;
                        group.push(Bytes::from(key));
                    }
                }
            };
            // As `for_each_of_hash`, but a compact key is not decoded.
            for e in self.compact.iter_hash(slot_hash(hash)) {
                let key = packed::key(e);
                if key_hash(key) == hash {
                    let v = packed::view(e);
                    take(key, Some(v.data_kind()), v.deadline_ms);
                }
            }
            for (k, l) in self.live.iter_hash(slot_hash(hash)) {
                if key_hash(k) == hash {
                    take(k, l.state.store().data.kind(), deadline_of(&l.state));
                }
            }
            if !keys.is_empty() && bytes.saturating_add(group_bytes) > budget.answer_bytes {
                // Left for the next page (the hash is past `from`, so not 0).
                return KeyPage { keys, next: hash };
            }
            keys.append(&mut group);
            bytes += group_bytes;
            hashes += 1;
            if hashes >= budget.hashes
                || bytes >= budget.answer_bytes
                || key_bytes >= budget.key_bytes
            {
                // Past the last hash nothing is left: `next` is then 0.
                return KeyPage {
                    keys,
                    next: hash.wrapping_add(1),
                };
            }
        }
        KeyPage { keys, next: 0 }
    }

    /// A digest of every key in `range` and its state: the XOR of a hash of
    /// each key with its encoded state, so equal contents give equal digests
    /// whatever the order, and digests of disjoint ranges combine by XOR.
    pub fn digest(&self, range: RangeInclusive<u64>) -> u64 {
        let mut acc = 0u64;
        let mut buf = Vec::new();
        self.for_each_in_range(range, |k, s| acc ^= entry_hash(&mut buf, k, s));
        acc
    }

    /// Digests of the keys `filter` accepts, in `buckets` equal hash ranges
    /// (`buckets` a power of two): the bucket of a key is the top bits of
    /// its [`key_hash`]. Two replicas holding the same keys and states give
    /// the same digests.
    pub fn bucket_digests(
        &self,
        buckets: usize,
        mut filter: impl FnMut(&[u8]) -> bool,
    ) -> Vec<u64> {
        debug_assert!(buckets.is_power_of_two());
        let mut out = vec![0u64; buckets];
        let mut buf = Vec::new();
        self.for_each_in_range(0..=u64::MAX, |k, s| {
            if filter(k) {
                out[bucket_of(k, buckets)] ^= entry_hash(&mut buf, k, s);
            }
        });
        out
    }

    /// [`Keyspace::bucket_digests`] of the buckets `first..first + len` only:
    /// only the keys in their hash range are encoded and hashed.
    pub fn bucket_digests_in(
        &self,
        buckets: usize,
        first: usize,
        len: usize,
        mut filter: impl FnMut(&[u8]) -> bool,
    ) -> Vec<u64> {
        debug_assert!(buckets.is_power_of_two() && buckets > 1);
        debug_assert!(first + len <= buckets && len > 0);
        let shift = 64 - buckets.trailing_zeros();
        let lo = (first as u64) << shift;
        let hi = (((first + len) as u64) << shift).wrapping_sub(1);
        let hi = if first + len == buckets { u64::MAX } else { hi };
        let mut out = vec![0u64; len];
        let mut buf = Vec::new();
        self.for_each_in_range(lo..=hi, |k, s| {
            if filter(k) {
                out[bucket_of(k, buckets) - first] ^= entry_hash(&mut buf, k, s);
            }
        });
        out
    }

    /// The states of the keys `filter` accepts whose bucket is in `wanted`
    /// (see [`Keyspace::bucket_digests`]), at most `max` of them, and no
    /// more once they take `bytes_max` bytes (at least one is given), so
    /// that they fit in one message. When not all fit, which ones are given
    /// turns with `turn` (any number that changes between calls, such as
    /// the time), so that every key is given in some call.
    pub fn states_in_buckets(
        &self,
        buckets: usize,
        wanted: &[u32],
        max: usize,
        bytes_max: usize,
        turn: u64,
        mut filter: impl FnMut(&[u8]) -> bool,
    ) -> Vec<(Bytes, Causal<Record>)> {
        let (Some(&lo), Some(&hi)) = (wanted.iter().min(), wanted.iter().max()) else {
            return Vec::new();
        };
        // Only the keys in the wanted buckets' hash range are looked at.
        let shift = 64 - buckets.trailing_zeros();
        let range = if buckets <= 1 {
            0..=u64::MAX
        } else {
            let lo_hash = u64::from(lo).checked_shl(shift).unwrap_or(0);
            let hi_hash = (u64::from(hi) + 1)
                .checked_shl(shift)
                .filter(|_| (hi as usize) + 1 < buckets)
                .map_or(u64::MAX, |h| h - 1);
            lo_hash..=hi_hash
        };
        let wanted: std::collections::HashSet<u32> = wanted.iter().copied().collect();
        let mut keys = Vec::new();
        self.for_each_in_range(range, |k, _| {
            if wanted.contains(&(bucket_of(k, buckets) as u32)) && filter(k) {
                keys.push(Bytes::from(k));
            }
        });
        if keys.is_empty() {
            return Vec::new();
        }
        // Hashed, so that turns a multiple of the key count apart (rounds
        // at a fixed period) still start at different keys.
        let first = (key_hash(&turn.to_le_bytes()) % keys.len() as u64) as usize;
        keys.rotate_left(first);
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for key in keys {
            if out.len() >= max || bytes >= bytes_max {
                break;
            }
            if let Some(state) = self.state(&key) {
                bytes = bytes.saturating_add(key.len() + state.heap_bytes());
                out.push((key, state));
            }
        }
        out
    }
}

/// One write in progress on one key's state: mutations applied so far and
/// the delta group they make.
pub(crate) struct Txn<'a> {
    state: &'a mut Causal<Record>,
    heap: &'a mut usize,
    delta: Option<Delta<Record>>,
    replica: ReplicaId,
}

impl Txn<'_> {
    /// Refuses a write that would add `adds` bytes to a value whose answer
    /// may take at most `max` (checked before anything changes). The
    /// state's memory bounds its answer, so most writes pass on that alone;
    /// near the limit the answer itself is measured (small members take
    /// much more memory than answer bytes). The whole state, which nodes
    /// send each other in one message, may take at most
    /// [`STATE_PER_ANSWER_MAX`] times `max`.
    fn check_growth(&self, adds: usize, max: usize) -> Result<(), KeyspaceError> {
        let heap = self.heap.saturating_add(adds);
        if adds == 0 || heap <= max {
            return Ok(());
        }
        let len = if heap > max.saturating_mul(STATE_PER_ANSWER_MAX) {
            heap
        } else {
            commands::answer_bytes(&self.state.store().data).saturating_add(adds)
        };
        if len > max {
            return Err(KeyspaceError::KeyValueTooLarge { len, max });
        }
        Ok(())
    }

    fn push(&mut self, d: Delta<Record>) {
        if d.is_noop() {
            return;
        }
        apply_accounted(self.state, self.heap, &d);
        match &mut self.delta {
            Some(group) => group.join(&d),
            None => self.delta = Some(d),
        }
    }

    /// Runs a mutator of the key's value and records its delta.
    fn write_data<S: crdt_types::Component>(
        &mut self,
        f: impl FnOnce(&S, &crdt_types::CausalContext) -> Delta<S>,
    ) -> Result<(), KeyspaceError> {
        let d = self
            .state
            .store()
            .data
            .write::<S>(self.state.context(), f)?;
        self.push(Record::data_delta(d));
        Ok(())
    }

    fn record(&self) -> &Record {
        self.state.store()
    }
}

#[cfg(test)]
mod tests;
