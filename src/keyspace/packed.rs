//! A compact in-memory form for the most common keys.
//!
//! Most keys of a cache are a register (or counter) written by one replica,
//! perhaps with a deadline. Their whole state is a dot or two plus a context
//! of one entry, so they are kept as one allocation holding the key and the
//! state in a small binary layout, instead of a key allocation, a context,
//! a dot store and a value allocation. Everything else is kept decoded.
//!
//! Layout (integers little-endian, `v` = LEB128 varint):
//! `tag:u8 | v key_len | key | replica:u32 | v ctx_seq | v value_seq |
//!  [v expiry_seq | deadline_ms:u64] | payload` where the tag holds the kind
//! (register, counter, mvregister) and whether an expiry is present, and the
//! payload is `hlc:u64 value..` (register), `i64` (counter) or `value..`
//! (mvregister). The context is exactly `{replica: ctx_seq}`.
//!
//! This module only ever reads bytes it wrote itself.

use crdt_types::{
    Bytes, Causal, CausalContext, Counter, Dot, DotFun, Expiry, ExpiryEntry, Hlc, Kind,
    LwwRegister, MvRegister, Record, ReplicaId, Stamped, TypedStore,
};

const KIND_REGISTER: u8 = 0;
const KIND_COUNTER: u8 = 1;
const KIND_MVREGISTER: u8 = 2;
const KIND_MASK: u8 = 0b11;
const HAS_EXPIRY: u8 = 0b100;

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> u8 {
        let (b, rest) = self.buf.split_first().expect("packed entry truncated");
        self.buf = rest;
        *b
    }
    fn varint(&mut self) -> u64 {
        let mut v = 0u64;
        let mut shift = 0;
        loop {
            let b = self.byte();
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return v;
            }
            shift += 7;
        }
    }
    fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        head
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take(4).try_into().expect("4 bytes"))
    }
    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take(8).try_into().expect("8 bytes"))
    }
}

/// The key stored in a packed entry.
pub(crate) fn key(entry: &[u8]) -> &[u8] {
    let mut r = Reader { buf: &entry[1..] };
    let len = r.varint() as usize;
    r.take(len)
}

/// Packs `key` and `state` if the state has the simple shape; `None` otherwise.
pub(crate) fn pack(key: &[u8], state: &Causal<Record>) -> Option<Box<[u8]>> {
    let mut out = Vec::with_capacity(key.len() + 32 + 8);
    pack_into(key, state, &mut out).then(|| out.into_boxed_slice())
}

/// Writes the packed entry of `key` and `state` into `out` (cleared first)
/// if the state has the simple shape; false (and `out` left empty)
/// otherwise.
pub(crate) fn pack_into(key: &[u8], state: &Causal<Record>, out: &mut Vec<u8>) -> bool {
    out.clear();
    let ctx = state.context();
    let [(replica, ctx_seq)] = *ctx.version_vector() else {
        return false;
    };
    if !ctx.cloud().is_empty() {
        return false;
    }
    let record = state.store();
    let expiry = match record.expiry.entries() {
        [] => None,
        [(d, ExpiryEntry::Deadline(ms))] if d.replica == replica => Some((d.seq, *ms)),
        _ => return false,
    };
    let (kind, value_seq) = match &record.data {
        TypedStore::Register(r) => match r.entries() {
            [(d, _)] if d.replica == replica => (KIND_REGISTER, d.seq),
            _ => return false,
        },
        TypedStore::Counter(c) => match c.entries() {
            [(d, _)] if d.replica == replica => (KIND_COUNTER, d.seq),
            _ => return false,
        },
        TypedStore::MvRegister(m) => match m.entries() {
            [(d, _)] if d.replica == replica => (KIND_MVREGISTER, d.seq),
            _ => return false,
        },
        _ => return false,
    };
    out.push(kind | if expiry.is_some() { HAS_EXPIRY } else { 0 });
    put_varint(out, key.len() as u64);
    out.extend_from_slice(key);
    out.extend_from_slice(&replica.0.to_le_bytes());
    put_varint(out, ctx_seq);
    put_varint(out, value_seq);
    if let Some((seq, ms)) = expiry {
        put_varint(out, seq);
        out.extend_from_slice(&ms.to_le_bytes());
    }
    match &record.data {
        TypedStore::Register(r) => {
            let s = &r.entries()[0].1;
            out.extend_from_slice(&s.hlc.as_u64().to_le_bytes());
            out.extend_from_slice(&s.value);
        }
        TypedStore::Counter(c) => out.extend_from_slice(&c.entries()[0].1.to_le_bytes()),
        TypedStore::MvRegister(m) => out.extend_from_slice(&m.entries()[0].1),
        _ => unreachable!("kind checked above"),
    }
    true
}

/// What a packed entry holds, without building the full state.
pub(crate) struct View<'a> {
    pub kind: u8,
    pub deadline_ms: Option<u64>,
    replica: ReplicaId,
    ctx_seq: u64,
    value_seq: u64,
    expiry_seq: u64,
    payload: &'a [u8],
}

pub(crate) fn view(entry: &[u8]) -> View<'_> {
    let tag = entry[0];
    let mut r = Reader { buf: &entry[1..] };
    let key_len = r.varint() as usize;
    r.take(key_len);
    let replica = ReplicaId(r.u32());
    let ctx_seq = r.varint();
    let value_seq = r.varint();
    let (expiry_seq, deadline_ms) = if tag & HAS_EXPIRY != 0 {
        let seq = r.varint();
        (seq, Some(r.u64()))
    } else {
        (0, None)
    };
    View {
        kind: tag & KIND_MASK,
        deadline_ms,
        replica,
        ctx_seq,
        value_seq,
        expiry_seq,
        payload: r.buf,
    }
}

impl View<'_> {
    /// The type of the value (a compact state always holds one).
    pub fn data_kind(&self) -> Kind {
        match self.kind {
            KIND_REGISTER => Kind::Register,
            KIND_COUNTER => Kind::Counter,
            _ => Kind::MvRegister,
        }
    }

    /// The register's value, if this is a register.
    pub fn register_value(&self) -> Option<&[u8]> {
        (self.kind == KIND_REGISTER).then(|| &self.payload[8..])
    }

    /// The state this view describes.
    pub fn to_state(&self) -> Causal<Record> {
        let dot = Dot::new(self.replica, self.value_seq);
        let data = match self.kind {
            KIND_REGISTER => {
                let hlc = Hlc::from_u64(u64::from_le_bytes(
                    self.payload[..8].try_into().expect("8 bytes"),
                ));
                let value = Bytes::from(&self.payload[8..]);
                TypedStore::Register(LwwRegister::from(DotFun::single(
                    dot,
                    Stamped { hlc, value },
                )))
            }
            KIND_COUNTER => {
                let v = i64::from_le_bytes(self.payload[..8].try_into().expect("8 bytes"));
                TypedStore::Counter(Counter::from(DotFun::single(dot, v)))
            }
            KIND_MVREGISTER => TypedStore::MvRegister(MvRegister::from(DotFun::single(
                dot,
                Bytes::from(self.payload),
            ))),
            k => panic!("packed entry of unknown kind {k}"),
        };
        let expiry = match self.deadline_ms {
            Some(ms) => Expiry::from(DotFun::single(
                Dot::new(self.replica, self.expiry_seq),
                ExpiryEntry::Deadline(ms),
            )),
            None => Expiry::default(),
        };
        let ctx = CausalContext::from_version_vector([(self.replica, self.ctx_seq)]);
        Causal::from_parts(Record { data, expiry }, ctx)
            .expect("packed entries hold only dots of their context")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(state: &Causal<Record>) {
        let packed = pack(b"some-key", state).expect("simple state packs");
        assert_eq!(key(&packed), b"some-key");
        assert_eq!(&view(&packed).to_state(), state);
    }

    #[test]
    fn simple_register_counter_and_mvregister_round_trip() {
        let r = ReplicaId(0xdead_beef);
        let mut s: Causal<Record> = Causal::new();
        s.mutate(|rec, c| {
            Record::data_delta(
                rec.data
                    .write::<LwwRegister>(c, |x, c| x.set(c, r, Hlc::new(77, 3), "v".into()))
                    .unwrap(),
            )
        });
        roundtrip(&s);
        s.mutate(|rec, c| Record::expiry_delta(rec.expiry.expire_at(c, r, 123_456)));
        roundtrip(&s);
        let packed = pack(b"k", &s).unwrap();
        assert_eq!(view(&packed).register_value(), Some(&b"v"[..]));
        assert_eq!(view(&packed).deadline_ms, Some(123_456));

        let mut c: Causal<Record> = Causal::new();
        for n in [5, -9, 1 << 40] {
            c.mutate(|rec, ctx| {
                Record::data_delta(
                    rec.data
                        .write::<Counter>(ctx, |x, ctx| x.add(ctx, r, n))
                        .unwrap(),
                )
            });
        }
        roundtrip(&c);

        let mut m: Causal<Record> = Causal::new();
        m.mutate(|rec, c| {
            Record::data_delta(
                rec.data
                    .write::<MvRegister>(c, |x, c| x.set(c, r, "mv".into()))
                    .unwrap(),
            )
        });
        roundtrip(&m);
    }

    #[test]
    fn states_written_by_two_replicas_stay_unpacked() {
        let mut s: Causal<Record> = Causal::new();
        for r in [ReplicaId(1), ReplicaId(2)] {
            s.mutate(|rec, c| {
                Record::data_delta(
                    rec.data
                        .write::<LwwRegister>(c, |x, c| x.set(c, r, Hlc::new(1, 0), "v".into()))
                        .unwrap(),
                )
            });
        }
        assert!(pack(b"k", &s).is_none());
    }
}
