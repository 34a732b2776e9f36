//! The typed operations users call, one method each, in the manner of Redis
//! commands: registers (`get`/`set`), counters (`incr_by`), sets (`sadd`...),
//! maps (`hset`...), multi-value registers (`mvset`/`mvget`), and the
//! operations of every key (`del`, `expire`, `ttl`, `persist`).

use super::{is_expired, packed, Keyspace, KeyspaceError, Txn, Written};
use crdt_types::{
    Bytes, CausalContext, Counter, Delta, Hlc, Kind, LwwRegister, MvRegister, OrMap, OrSet, Record,
    ReplicaId, TypedStore, WrongType, MAP_NESTING_MAX,
};

/// Bytes a new set member or map field is taken to add besides its own
/// length, when checking a write against the limit of a key's value.
const MEMBER_OVERHEAD_BYTES: usize = 64;

/// Bytes an item of an answer is taken to add besides its values.
const ANSWER_ITEM_BYTES: usize = 8;

/// One page of a scan through a set's members (`SSCAN`) or a map's fields
/// (`HSCAN`), in byte order of the member or field.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Page<T> {
    /// The page's members or fields.
    pub items: Vec<T>,
    /// Whether more follow: the next page starts after the last item
    /// ([`Page::after`]). Only a page with items says so.
    pub more: bool,
}

/// An item of a [`Page`]: a set's member, or a map's field and value.
pub trait PageItem {
    /// The member or field a scan orders by.
    fn name(&self) -> &Bytes;
}

impl PageItem for Bytes {
    fn name(&self) -> &Bytes {
        self
    }
}

impl PageItem for (Bytes, FieldValue) {
    fn name(&self) -> &Bytes {
        &self.0
    }
}

impl<T: PageItem> Page<T> {
    /// Where the next page starts (the last item's member or field), or
    /// `None` when the scan is done.
    pub fn after(&self) -> Option<&Bytes> {
        self.items.last().filter(|_| self.more).map(T::name)
    }
}

/// One page of a scan through a set's members or a map's fields that keeps
/// only those matching a glob pattern (`SSCAN ... MATCH`), in byte order.
/// The next page starts after the last member or field the page looked
/// at ([`Matches::after`]), which need not be one it kept.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Matches<T> {
    /// The matching members or fields.
    pub items: Vec<T>,
    /// Whether more follow.
    pub more: bool,
    /// The last member or field looked at, when the page did not keep it
    /// (when it did, it is the last item).
    pub passed: Option<Bytes>,
}

impl<T: PageItem> Matches<T> {
    /// Where the next page starts (the last member or field looked at), or
    /// `None` when the scan is done.
    pub fn after(&self) -> Option<&Bytes> {
        if !self.more {
            return None;
        }
        self.passed
            .as_ref()
            .or_else(|| self.items.last().map(T::name))
    }
}

/// A scan's page of the items matching `pattern`: looking at up to `count`
/// items (at least one), and fewer once the answer (the kept items, and
/// the last one looked at if not kept) would take more than `budget`
/// bytes, or once matching would take more than `steps_max` steps (each
/// byte of a name looked at costs the pattern's tokens and one; the first
/// item is looked at whatever it costs). `name` gives an item's member or
/// field; `keep` makes a matching item into the answer's, with its bytes
/// (`None`: the item is left out).
fn paginate_matching<'a, I: Iterator, T>(
    items: I,
    count: usize,
    budget: usize,
    (pattern, steps_max): (&crate::glob::Pattern, usize),
    name: impl Fn(&I::Item) -> &'a Bytes,
    mut keep: impl FnMut(&I::Item) -> Option<(T, usize)>,
) -> Matches<T> {
    let mut items = items.peekable();
    let mut page = Vec::new();
    let (mut used, mut looked, mut steps) = (0usize, 0usize, 0usize);
    let mut passed: Option<&'a Bytes> = None;
    let per_byte = pattern.tokens() + 1;
    while let Some(item) = items.peek() {
        let item_name = name(item);
        let cost = (item_name.len() + 1).saturating_mul(per_byte);
        if looked > 0 && steps.saturating_add(cost) > steps_max {
            break;
        }
        let kept = if pattern.matches(item_name) {
            keep(item)
        } else {
            None
        };
        // The answer if this item ends the page: a kept item is its own
        // cursor; one passed over is sent as the cursor.
        let grown = match &kept {
            Some((_, size)) => used.saturating_add(*size),
            None => used.saturating_add(item_name.len()),
        };
        if looked > 0 && grown.saturating_add(ANSWER_ITEM_BYTES) > budget {
            // Left for the next page.
            break;
        }
        looked += 1;
        steps = steps.saturating_add(cost);
        items.next();
        match kept {
            Some((t, size)) => {
                used = used.saturating_add(size).saturating_add(ANSWER_ITEM_BYTES);
                page.push(t);
                passed = None;
            }
            None => passed = Some(item_name),
        }
        if looked >= count.max(1) || steps >= steps_max || used >= budget {
            break;
        }
    }
    let more = items.peek().is_some();
    Matches {
        items: page,
        more,
        passed: passed.filter(|_| more).cloned(),
    }
}

/// The first items of `items` for a page: up to `count` (at least one),
/// and fewer when their answer would take more than `budget` bytes by
/// `bytes`.
fn paginate<I: Iterator, T>(
    items: I,
    count: usize,
    budget: usize,
    bytes: impl Fn(&I::Item) -> usize,
    mut keep: impl FnMut(I::Item) -> T,
) -> Page<T> {
    let mut items = items.peekable();
    let mut page = Vec::new();
    let mut used = 0usize;
    while let Some(item) = items.peek() {
        let size = bytes(item).saturating_add(ANSWER_ITEM_BYTES);
        if !page.is_empty() && (page.len() >= count || used.saturating_add(size) > budget) {
            return Page {
                items: page,
                more: true,
            };
        }
        used = used.saturating_add(size);
        if let Some(item) = items.next() {
            page.push(keep(item));
        }
    }
    Page {
        items: page,
        more: false,
    }
}

/// The remaining time to live of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Ttl {
    /// No such key (Redis answers -2).
    Missing,
    /// The key never expires (Redis answers -1).
    Persistent,
    /// Milliseconds left.
    Ms(u64),
}

/// The visible value of a map field (or of any key), by type.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum FieldValue {
    /// A register's value.
    Register(Bytes),
    /// A counter's value.
    Counter(i64),
    /// A set's members, in byte order.
    Set(Vec<Bytes>),
    /// A map's fields, in field order.
    #[serde(deserialize_with = "nested_fields")]
    Map(Vec<(Bytes, FieldValue)>),
    /// A multi-value register's concurrent values.
    MvRegister(Vec<Bytes>),
}

std::thread_local! {
    static FIELD_DECODE_DEPTH: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Decodes a map's fields, refusing maps nested deeper than
/// [`MAP_NESTING_MAX`]: answers come from the network, and unbounded
/// nesting would overflow the decoder's stack.
fn nested_fields<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Vec<(Bytes, FieldValue)>, D::Error> {
    use serde::Deserialize as _;
    let depth = FIELD_DECODE_DEPTH.with(|c| c.get());
    if depth >= MAP_NESTING_MAX {
        return Err(serde::de::Error::custom("maps nested too deeply"));
    }
    FIELD_DECODE_DEPTH.with(|c| c.set(depth + 1));
    let fields = Vec::deserialize(d);
    FIELD_DECODE_DEPTH.with(|c| c.set(depth));
    fields
}

/// About how many bytes the visible value of `store` takes in an answer
/// (its values, plus a little per item, as `Response::approx_bytes`).
pub(crate) fn answer_bytes(store: &TypedStore) -> usize {
    const ITEM: usize = ANSWER_ITEM_BYTES;
    let Some(kind) = store.kind() else {
        return 0;
    };
    ITEM + match kind {
        Kind::Register => store
            .read::<LwwRegister>()
            .ok()
            .flatten()
            .and_then(LwwRegister::get)
            .map_or(0, |v| v.len()),
        Kind::Counter => ITEM,
        Kind::Set => store
            .read::<OrSet>()
            .ok()
            .flatten()
            .map_or(0, |s| s.members().map(|m| m.len() + ITEM).sum()),
        Kind::MvRegister => store
            .read::<MvRegister>()
            .ok()
            .flatten()
            .map_or(0, |r| r.values().map(|v| v.len() + ITEM).sum()),
        Kind::Map => store.read::<OrMap>().ok().flatten().map_or(0, |m| {
            m.iter()
                .map(|(k, v)| k.len() + ITEM + answer_bytes(v))
                .sum()
        }),
    }
}

impl FieldValue {
    /// The visible value of a typed store (`None` when empty).
    pub fn of(store: &TypedStore) -> Option<FieldValue> {
        let kind = store.kind()?;
        // The visible kind's part exists by construction; read() cannot fail.
        Some(match kind {
            Kind::Register => {
                FieldValue::Register(store.read::<LwwRegister>().ok()??.get()?.clone())
            }
            Kind::Counter => FieldValue::Counter(store.read::<Counter>().ok()??.value()),
            Kind::Set => FieldValue::Set(store.read::<OrSet>().ok()??.members().cloned().collect()),
            Kind::MvRegister => FieldValue::MvRegister(
                store
                    .read::<MvRegister>()
                    .ok()??
                    .values()
                    .cloned()
                    .collect(),
            ),
            Kind::Map => FieldValue::Map(
                store
                    .read::<OrMap>()
                    .ok()??
                    .iter()
                    .filter_map(|(k, v)| Some((k.clone(), Self::of(v)?)))
                    .collect(),
            ),
        })
    }
}

/// An operation on a (possibly nested) map field.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum FieldOp {
    /// Write the field as a register.
    Set(Bytes),
    /// Add to the field as a counter.
    Incr(i64),
    /// Add a member to the field as a set.
    SetAdd(Bytes),
    /// Remove a member from the field as a set.
    SetRemove(Bytes),
    /// Write the field as a multi-value register.
    MvSet(Bytes),
    /// Remove the field (observed-remove).
    Remove,
}

/// Builds the delta of `op` on the field at `path` inside `map`.
fn field_delta(
    map: &OrMap,
    ctx: &CausalContext,
    path: &[Bytes],
    op: &FieldOp,
    replica: ReplicaId,
    hlc: Hlc,
) -> Result<Delta<OrMap>, KeyspaceError> {
    let Some((field, rest)) = path.split_first() else {
        return Err(KeyspaceError::NestingTooDeep {
            max: MAP_NESTING_MAX,
        });
    };
    let empty_field = TypedStore::Empty;
    let current = map.get(field).unwrap_or(&empty_field);
    if !rest.is_empty() {
        let empty_map = OrMap::default();
        let inner = current.read::<OrMap>()?.unwrap_or(&empty_map);
        let d = field_delta(inner, ctx, rest, op, replica, hlc)?;
        return Ok(map.update::<OrMap>(ctx, field, |_, _| d)?);
    }
    Ok(match op {
        FieldOp::Set(v) => {
            map.update::<LwwRegister>(ctx, field, |r, c| r.set(c, replica, hlc, v.clone()))?
        }
        FieldOp::Incr(n) => {
            let now = current.read::<Counter>()?.map_or(0, Counter::value);
            now.checked_add(*n).ok_or(KeyspaceError::Overflow)?;
            map.update::<Counter>(ctx, field, |r, c| r.add(c, replica, *n))?
        }
        FieldOp::SetAdd(m) => {
            map.update::<OrSet>(ctx, field, |s, c| s.add(c, replica, m.clone()))?
        }
        FieldOp::SetRemove(m) => map.update::<OrSet>(ctx, field, |s, _| s.remove(m))?,
        FieldOp::MvSet(v) => {
            map.update::<MvRegister>(ctx, field, |r, c| r.set(c, replica, v.clone()))?
        }
        FieldOp::Remove => map.remove(field),
    })
}

impl Txn<'_> {
    fn expiry_ctx(&self) -> (&crdt_types::Expiry, &CausalContext) {
        (&self.record().expiry, self.state.context())
    }
}

impl Keyspace {
    fn read_value<T>(
        &self,
        key: &[u8],
        now_ms: u64,
        f: impl FnOnce(&TypedStore) -> Result<T, WrongType>,
    ) -> Result<Option<T>, KeyspaceError> {
        match self.visible(key, now_ms) {
            Some(s) => Ok(Some(f(&s.store().data)?)),
            None => Ok(None),
        }
    }

    /// The value of a register (or a counter's value in decimal, as Redis
    /// shows `INCR`ed keys); `None` when absent.
    pub fn get(&self, key: &[u8], now_ms: u64) -> Result<Option<Bytes>, KeyspaceError> {
        if let Some(e) = self.find_compact(key) {
            let v = packed::view(e);
            if is_expired(v.deadline_ms, now_ms) {
                return Ok(None);
            }
            if let Some(value) = v.register_value() {
                return Ok(Some(Bytes::from(value)));
            }
        }
        let v = self.read_value(key, now_ms, |d| match d.kind() {
            Some(Kind::Counter) => Ok(d
                .read::<Counter>()?
                .map(|c| Bytes::from(c.value().to_string().as_str()))),
            _ => Ok(d.read::<LwwRegister>()?.and_then(|r| r.get().cloned())),
        })?;
        Ok(v.flatten())
    }

    /// Writes a register. Like Redis `SET`, it replaces the key's deadline:
    /// with `deadline_ms` the key expires then, without it the key persists.
    pub fn set(
        &mut self,
        key: &[u8],
        value: Bytes,
        deadline_ms: Option<u64>,
        now_ms: u64,
    ) -> Result<Written<()>, KeyspaceError> {
        self.check_value(&value)?;
        let hlc = self.clock.now(now_ms);
        self.update(key, now_ms, |t| {
            let replica = t.replica;
            t.write_data::<LwwRegister>(|r, c| r.set(c, replica, hlc, value))?;
            let (expiry, ctx) = t.expiry_ctx();
            let d = match deadline_ms {
                Some(ms) => expiry.expire_at(ctx, replica, ms),
                None => Delta::new(
                    Default::default(),
                    CausalContext::from_dots(crdt_types::DotStore::dots(expiry)),
                ),
            };
            t.push(Record::expiry_delta(d));
            Ok(())
        })
    }

    /// Deletes the key: removes everything this replica observed of it.
    /// Answers whether a visible key was removed.
    pub fn del(&mut self, key: &[u8], now_ms: u64) -> Result<Written<bool>, KeyspaceError> {
        let existed = self.visible(key, now_ms).is_some();
        self.update(key, now_ms, |t| {
            let clear = t.state.clear();
            t.push(clear);
            Ok(existed)
        })
    }

    /// Adds `n` to a counter (created at 0), answering the new value.
    pub fn incr_by(
        &mut self,
        key: &[u8],
        n: i64,
        now_ms: u64,
    ) -> Result<Written<i64>, KeyspaceError> {
        self.update(key, now_ms, |t| {
            let now = t.record().data.read::<Counter>()?.map_or(0, Counter::value);
            let next = now.checked_add(n).ok_or(KeyspaceError::Overflow)?;
            let replica = t.replica;
            t.write_data::<Counter>(|c, ctx| c.add(ctx, replica, n))?;
            Ok(next)
        })
    }

    /// A counter's value.
    pub fn counter(&self, key: &[u8], now_ms: u64) -> Result<Option<i64>, KeyspaceError> {
        Ok(self
            .read_value(key, now_ms, |d| {
                Ok(d.read::<Counter>()?.map(Counter::value))
            })?
            .flatten())
    }

    /// Adds members to a set, answering how many were not present.
    pub fn sadd(
        &mut self,
        key: &[u8],
        members: &[Bytes],
        now_ms: u64,
    ) -> Result<Written<usize>, KeyspaceError> {
        for m in members {
            self.check_value(m)?;
        }
        let max = self.config.key_value_bytes_max;
        self.update(key, now_ms, |t| {
            let set = t.record().data.read::<OrSet>()?;
            let adds = members
                .iter()
                .filter(|m| !set.is_some_and(|s| s.contains(m)))
                .map(|m| m.len() + MEMBER_OVERHEAD_BYTES)
                .sum();
            t.check_growth(adds, max)?;
            let mut added = 0;
            for m in members {
                let set = t.record().data.read::<OrSet>()?;
                added += usize::from(!set.is_some_and(|s| s.contains(m)));
                let replica = t.replica;
                t.write_data::<OrSet>(|s, c| s.add(c, replica, m.clone()))?;
            }
            Ok(added)
        })
    }

    /// Removes members from a set, answering how many were present.
    pub fn srem(
        &mut self,
        key: &[u8],
        members: &[Bytes],
        now_ms: u64,
    ) -> Result<Written<usize>, KeyspaceError> {
        self.update(key, now_ms, |t| {
            t.record().data.read::<OrSet>()?;
            let mut removed = 0;
            for m in members {
                let present = t
                    .record()
                    .data
                    .read::<OrSet>()?
                    .is_some_and(|s| s.contains(m));
                if present {
                    removed += 1;
                    t.write_data::<OrSet>(|s, _| s.remove(m))?;
                }
            }
            Ok(removed)
        })
    }

    /// A set's members, in byte order (empty when absent).
    pub fn smembers(&self, key: &[u8], now_ms: u64) -> Result<Vec<Bytes>, KeyspaceError> {
        let v = self.read_value(key, now_ms, |d| {
            Ok(d.read::<OrSet>()?.map(|s| s.members().cloned().collect()))
        })?;
        Ok(v.flatten().unwrap_or_default())
    }

    /// Whether `member` is in the set.
    pub fn sismember(&self, key: &[u8], member: &[u8], now_ms: u64) -> Result<bool, KeyspaceError> {
        let v = self.read_value(key, now_ms, |d| {
            Ok(d.read::<OrSet>()?.is_some_and(|s| s.contains(member)))
        })?;
        Ok(v.unwrap_or(false))
    }

    /// A page of a set's members: up to `count` (at least one) of those
    /// after `after` (from the first for `None`) in byte order, fewer when
    /// their answer would take more than the limit of a key's value. A scan
    /// of one keyspace that passes each page's [`Page::after`] as the next
    /// `after` sees every member present from its start to its end exactly
    /// once, however large the set; members added or removed meanwhile may
    /// or may not be seen.
    pub fn sscan(
        &self,
        key: &[u8],
        after: Option<&[u8]>,
        count: usize,
        now_ms: u64,
    ) -> Result<Page<Bytes>, KeyspaceError> {
        let budget = self.config.key_value_bytes_max;
        let v = self.read_value(key, now_ms, |d| {
            Ok(d.read::<OrSet>()?.map(|s| {
                paginate(
                    s.members_after(after),
                    count,
                    budget,
                    |m| m.len(),
                    Bytes::clone,
                )
            }))
        })?;
        Ok(v.flatten().unwrap_or(Page {
            items: Vec::new(),
            more: false,
        }))
    }

    /// A page of a set's members matching `pattern` (`SSCAN ... MATCH`):
    /// of the members after `after`, in byte order, up to `count` looked
    /// at (and fewer, as [`Keyspace::sscan`] and once matching took
    /// `steps_max` steps).
    pub fn sscan_matching(
        &self,
        key: &[u8],
        after: Option<&[u8]>,
        count: usize,
        pattern: &crate::glob::Pattern,
        steps_max: usize,
        now_ms: u64,
    ) -> Result<Matches<Bytes>, KeyspaceError> {
        let budget = self.config.key_value_bytes_max;
        let v = self.read_value(key, now_ms, |d| {
            Ok(d.read::<OrSet>()?.map(|s| {
                paginate_matching(
                    s.members_after(after),
                    count,
                    budget,
                    (pattern, steps_max),
                    |m| *m,
                    |m| Some(((*m).clone(), m.len())),
                )
            }))
        })?;
        Ok(v.flatten().unwrap_or(Matches {
            items: Vec::new(),
            more: false,
            passed: None,
        }))
    }

    /// The number of members of a set.
    pub fn scard(&self, key: &[u8], now_ms: u64) -> Result<usize, KeyspaceError> {
        let v = self.read_value(key, now_ms, |d| {
            Ok(d.read::<OrSet>()?.map_or(0, |s| s.len()))
        })?;
        Ok(v.unwrap_or(0))
    }

    /// Applies `op` to the map field at `path` (nested maps are created as
    /// needed); answers the field's counter value after `FieldOp::Incr`.
    pub fn map_apply(
        &mut self,
        key: &[u8],
        path: &[Bytes],
        op: FieldOp,
        now_ms: u64,
    ) -> Result<Written<Option<i64>>, KeyspaceError> {
        let w = self.map_write(key, path, op, now_ms)?;
        Ok(Written {
            reply: w.reply.0,
            delta: w.delta,
        })
    }

    /// [`Keyspace::map_apply`], also answering whether the field held a
    /// value before (always false for a removal, which does not look).
    fn map_write(
        &mut self,
        key: &[u8],
        path: &[Bytes],
        op: FieldOp,
        now_ms: u64,
    ) -> Result<Written<(Option<i64>, bool)>, KeyspaceError> {
        if path.is_empty() {
            return Err(KeyspaceError::NoField);
        }
        if path.len() >= MAP_NESTING_MAX {
            return Err(KeyspaceError::NestingTooDeep {
                max: MAP_NESTING_MAX,
            });
        }
        for p in path {
            self.check_value(p)?;
        }
        if let FieldOp::Set(v) | FieldOp::SetAdd(v) | FieldOp::MvSet(v) | FieldOp::SetRemove(v) =
            &op
        {
            self.check_value(v)?;
        }
        let hlc = self.clock.now(now_ms);
        let max = self.config.key_value_bytes_max;
        let value_bytes = match &op {
            FieldOp::Set(v) | FieldOp::SetAdd(v) | FieldOp::MvSet(v) => {
                v.len() + MEMBER_OVERHEAD_BYTES
            }
            _ => 0,
        };
        self.update(key, now_ms, |t| {
            let mut existed = false;
            if !matches!(op, FieldOp::Remove | FieldOp::SetRemove(_)) {
                // A new field adds its path and value; one already there
                // only what its new value has beyond the old (nothing for
                // an increment).
                let field = t
                    .record()
                    .data
                    .read::<OrMap>()
                    .ok()
                    .flatten()
                    .and_then(|m| field_at(m, path).ok().flatten());
                // As `map_field` sees it: a field with a visible value.
                existed = field.is_some_and(|f| f.kind().is_some());
                let old = field.map(answer_bytes);
                let adds = match old {
                    Some(_) if matches!(op, FieldOp::SetAdd(_)) => value_bytes,
                    Some(old) => value_bytes.saturating_sub(old + MEMBER_OVERHEAD_BYTES),
                    None => {
                        path.iter()
                            .map(|p| p.len() + MEMBER_OVERHEAD_BYTES)
                            .sum::<usize>()
                            + value_bytes
                    }
                };
                t.check_growth(adds, max)?;
            }
            let replica = t.replica;
            // Borrow the map: a large map must not be copied per write.
            let empty = OrMap::default();
            let map = t.record().data.read::<OrMap>()?.unwrap_or(&empty);
            let d = field_delta(map, t.state.context(), path, &op, replica, hlc)?;
            if matches!(op, FieldOp::Remove) && d.is_noop() {
                return Ok((None, existed));
            }
            t.write_data::<OrMap>(|_, _| d)?;
            if let FieldOp::Incr(_) = op {
                let map = t.record().data.read::<OrMap>()?;
                let value = map
                    .and_then(|m| field_at(m, path).ok().flatten())
                    .and_then(|f| f.read::<Counter>().ok()?)
                    .map(Counter::value);
                return Ok((value, existed));
            }
            Ok((None, existed))
        })
    }

    /// Writes a map field as a register; answers whether the field is new.
    pub fn hset(
        &mut self,
        key: &[u8],
        field: &[u8],
        value: Bytes,
        now_ms: u64,
    ) -> Result<Written<bool>, KeyspaceError> {
        let w = self.map_write(key, &[Bytes::from(field)], FieldOp::Set(value), now_ms)?;
        Ok(Written {
            reply: !w.reply.1,
            delta: w.delta,
        })
    }

    /// Adds to a map field as a counter; answers its new value.
    pub fn hincrby(
        &mut self,
        key: &[u8],
        field: &[u8],
        n: i64,
        now_ms: u64,
    ) -> Result<Written<i64>, KeyspaceError> {
        let w = self.map_apply(key, &[Bytes::from(field)], FieldOp::Incr(n), now_ms)?;
        Ok(Written {
            reply: w.reply.unwrap_or(0),
            delta: w.delta,
        })
    }

    /// Removes map fields; answers how many were present.
    pub fn hdel(
        &mut self,
        key: &[u8],
        fields: &[Bytes],
        now_ms: u64,
    ) -> Result<Written<usize>, KeyspaceError> {
        let mut removed = 0;
        let mut group: Option<Delta<Record>> = None;
        for f in fields {
            if self
                .map_field(key, std::slice::from_ref(f), now_ms)?
                .is_none()
            {
                continue;
            }
            removed += 1;
            if let Some(d) = self
                .map_apply(key, std::slice::from_ref(f), FieldOp::Remove, now_ms)?
                .delta
            {
                match &mut group {
                    Some(g) => g.join(&d),
                    None => group = Some(d),
                }
            }
        }
        Ok(Written {
            reply: removed,
            delta: group,
        })
    }

    /// The visible value of the map field at `path`.
    pub fn map_field(
        &self,
        key: &[u8],
        path: &[Bytes],
        now_ms: u64,
    ) -> Result<Option<FieldValue>, KeyspaceError> {
        let v = self.read_value(key, now_ms, |d| {
            Ok(match d.read::<OrMap>()? {
                Some(m) => field_at(m, path)?.and_then(FieldValue::of),
                None => None,
            })
        })?;
        Ok(v.flatten())
    }

    /// A map field's value as bytes: a register's value or a counter in
    /// decimal; other types are `WrongType`.
    pub fn hget(
        &self,
        key: &[u8],
        field: &[u8],
        now_ms: u64,
    ) -> Result<Option<Bytes>, KeyspaceError> {
        match self.map_field(key, &[Bytes::from(field)], now_ms)? {
            None => Ok(None),
            Some(FieldValue::Register(v)) => Ok(Some(v)),
            Some(FieldValue::Counter(n)) => Ok(Some(Bytes::from(n.to_string().as_str()))),
            Some(other) => Err(WrongType {
                wanted: Kind::Register,
                found: kind_of(&other),
            }
            .into()),
        }
    }

    /// Every field of a map with its value, in field order.
    pub fn hgetall(
        &self,
        key: &[u8],
        now_ms: u64,
    ) -> Result<Vec<(Bytes, FieldValue)>, KeyspaceError> {
        let v = self.read_value(key, now_ms, |d| {
            Ok(d.read::<OrMap>()?.map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), FieldValue::of(v)?)))
                    .collect()
            }))
        })?;
        Ok(v.flatten().unwrap_or_default())
    }

    /// A page of a map's fields and their values, as [`Keyspace::sscan`]
    /// pages a set's members.
    pub fn hscan(
        &self,
        key: &[u8],
        after: Option<&[u8]>,
        count: usize,
        now_ms: u64,
    ) -> Result<Page<(Bytes, FieldValue)>, KeyspaceError> {
        let budget = self.config.key_value_bytes_max;
        let v = self.read_value(key, now_ms, |d| {
            Ok(d.read::<OrMap>()?.map(|m| {
                // As in `hgetall`, a field without a visible value is left out.
                let fields = m
                    .iter_after(after)
                    .filter_map(|(k, v)| Some((k, answer_bytes(v), FieldValue::of(v)?)));
                paginate(
                    fields,
                    count,
                    budget,
                    |(k, bytes, _)| k.len().saturating_add(*bytes),
                    |(k, _, v)| (k.clone(), v),
                )
            }))
        })?;
        Ok(v.flatten().unwrap_or(Page {
            items: Vec::new(),
            more: false,
        }))
    }

    /// A page of a map's fields and values whose field matches `pattern`
    /// (`HSCAN ... MATCH`), as [`Keyspace::sscan_matching`] pages a set.
    pub fn hscan_matching(
        &self,
        key: &[u8],
        after: Option<&[u8]>,
        count: usize,
        pattern: &crate::glob::Pattern,
        steps_max: usize,
        now_ms: u64,
    ) -> Result<Matches<(Bytes, FieldValue)>, KeyspaceError> {
        let budget = self.config.key_value_bytes_max;
        let v = self.read_value(key, now_ms, |d| {
            Ok(d.read::<OrMap>()?.map(|m| {
                // As in `hgetall`, a field without a visible value is left
                // out; a field's value is read only when its name matches.
                let fields = m.iter_after(after).filter(|(_, v)| v.kind().is_some());
                paginate_matching(
                    fields,
                    count,
                    budget,
                    (pattern, steps_max),
                    |(k, _)| *k,
                    |(k, v)| {
                        let size = k.len().saturating_add(answer_bytes(v));
                        Some(((Bytes::clone(k), FieldValue::of(v)?), size))
                    },
                )
            }))
        })?;
        Ok(v.flatten().unwrap_or(Matches {
            items: Vec::new(),
            more: false,
            passed: None,
        }))
    }

    /// The number of fields of a map.
    pub fn hlen(&self, key: &[u8], now_ms: u64) -> Result<usize, KeyspaceError> {
        Ok(self
            .read_value(key, now_ms, |d| {
                Ok(d.read::<OrMap>()?.map_or(0, |m| m.len()))
            })?
            .unwrap_or(0))
    }

    /// Writes a multi-value register, superseding every value observed.
    pub fn mvset(
        &mut self,
        key: &[u8],
        value: Bytes,
        now_ms: u64,
    ) -> Result<Written<()>, KeyspaceError> {
        self.check_value(&value)?;
        self.update(key, now_ms, |t| {
            let replica = t.replica;
            t.write_data::<MvRegister>(|r, c| r.set(c, replica, value))
        })
    }

    /// Every concurrent value of a multi-value register (empty when absent).
    pub fn mvget(&self, key: &[u8], now_ms: u64) -> Result<Vec<Bytes>, KeyspaceError> {
        let v = self.read_value(key, now_ms, |d| {
            Ok(d.read::<MvRegister>()?
                .map(|r| r.values().cloned().collect()))
        })?;
        Ok(v.flatten().unwrap_or_default())
    }

    /// Sets the key's deadline; answers false (and changes nothing) when the key is absent.
    pub fn expire_at(
        &mut self,
        key: &[u8],
        deadline_ms: u64,
        now_ms: u64,
    ) -> Result<Written<bool>, KeyspaceError> {
        if self.visible(key, now_ms).is_none() {
            return Ok(Written {
                reply: false,
                delta: None,
            });
        }
        self.update(key, now_ms, |t| {
            let (expiry, ctx) = t.expiry_ctx();
            let d = expiry.expire_at(ctx, t.replica, deadline_ms);
            t.push(Record::expiry_delta(d));
            Ok(true)
        })
    }

    /// Removes the key's deadline; answers whether it had one.
    pub fn persist(&mut self, key: &[u8], now_ms: u64) -> Result<Written<bool>, KeyspaceError> {
        if self.ttl(key, now_ms) == Ttl::Missing {
            return Ok(Written {
                reply: false,
                delta: None,
            });
        }
        self.update(key, now_ms, |t| {
            let (expiry, ctx) = t.expiry_ctx();
            match expiry.persist(ctx, t.replica) {
                Some(d) => {
                    t.push(Record::expiry_delta(d));
                    Ok(true)
                }
                None => Ok(false),
            }
        })
    }

    /// The key's remaining time to live.
    pub fn ttl(&self, key: &[u8], now_ms: u64) -> Ttl {
        match self.visible(key, now_ms) {
            None => Ttl::Missing,
            Some(s) => match s.store().expiry.deadline_ms() {
                None => Ttl::Persistent,
                Some(ms) => Ttl::Ms(ms.saturating_sub(now_ms)),
            },
        }
    }
}

/// The field at `path` in `map`; a step through a field that is not a map
/// is `WrongType`, as an update through it is.
fn field_at<'a>(map: &'a OrMap, path: &[Bytes]) -> Result<Option<&'a TypedStore>, WrongType> {
    let Some((first, rest)) = path.split_first() else {
        return Ok(None);
    };
    let Some(store) = map.get(first) else {
        return Ok(None);
    };
    if rest.is_empty() {
        return Ok(Some(store));
    }
    match store.read::<OrMap>()? {
        Some(inner) => field_at(inner, rest),
        None => Ok(None),
    }
}

fn kind_of(v: &FieldValue) -> Kind {
    match v {
        FieldValue::Register(_) => Kind::Register,
        FieldValue::Counter(_) => Kind::Counter,
        FieldValue::Set(_) => Kind::Set,
        FieldValue::Map(_) => Kind::Map,
        FieldValue::MvRegister(_) => Kind::MvRegister,
    }
}
