use super::*;
use crate::keyspace::{FieldOp, FieldValue, Ttl};
use crdt_types::{Kind, ReplicaId};

const T0: u64 = 1_800_000_000_000;

fn ks(r: u32) -> Keyspace {
    Keyspace::new(ReplicaId(r), KeyspaceConfig::default())
}

fn b(s: &str) -> Bytes {
    Bytes::from(s)
}

/// Ships a write's delta to another keyspace.
fn ship<T>(w: &Written<T>, key: &str, to: &mut Keyspace) {
    if let Some(d) = &w.delta {
        to.apply_delta(key.as_bytes(), d, T0).unwrap();
    }
}

impl Keyspace {
    /// Recomputes the memory estimate from scratch.
    fn recount_bytes(&self) -> usize {
        let mut total = 0;
        for e in &self.compact {
            total += compact_bytes(e);
        }
        for (k, l) in &self.live {
            assert_eq!(
                l.heap,
                l.state.heap_bytes(),
                "cached heap bytes of {k:?} drifted"
            );
            total += live_bytes(k, l.heap);
        }
        total
    }

    fn is_compact(&self, key: &[u8]) -> bool {
        self.compact
            .find(slot_of(key), |e| packed::key(e) == key)
            .is_some()
    }

    /// The hash order recomputed from the stored keys.
    fn recount_order(&self) -> BTreeSet<u64> {
        let compact = self.compact.iter().map(|e| key_hash(packed::key(e)));
        compact
            .chain(self.live.iter().map(|(k, _)| key_hash(k)))
            .collect()
    }

    /// The deadline index recomputed from the stored keys.
    fn recount_deadlines(&self) -> BTreeSet<(u64, Bytes)> {
        let mut out = BTreeSet::new();
        for e in &self.compact {
            if let Some(ms) = packed::view(e).deadline_ms {
                out.insert((ms, Bytes::from(packed::key(e))));
            }
        }
        for (k, l) in &self.live {
            if let Some(ms) = deadline_of(&l.state) {
                out.insert((ms, k.clone()));
            }
        }
        out
    }
}

#[test]
fn operation_of_another_type_is_refused_and_changes_nothing() {
    let mut k = ks(1);
    k.set(b"k", b("v"), None, T0).unwrap();
    let before = k.state(b"k");
    let err = k.incr_by(b"k", 1, T0).unwrap_err();
    assert_eq!(
        err,
        KeyspaceError::WrongType(WrongType {
            wanted: Kind::Counter,
            found: Kind::Register
        })
    );
    assert!(matches!(
        k.sadd(b"k", &[b("m")], T0),
        Err(KeyspaceError::WrongType(_))
    ));
    assert!(matches!(
        k.hset(b"k", b"f", b("v"), T0),
        Err(KeyspaceError::WrongType(_))
    ));
    assert!(matches!(
        k.smembers(b"k", T0),
        Err(KeyspaceError::WrongType(_))
    ));
    assert_eq!(k.state(b"k"), before);
    assert_eq!(k.get(b"k", T0).unwrap(), Some(b("v")));
}

#[test]
fn every_type_round_trips_its_operations() {
    let mut k = ks(1);
    k.set(b"reg", b("hello"), None, T0).unwrap();
    assert_eq!(k.get(b"reg", T0).unwrap(), Some(b("hello")));
    assert_eq!(k.incr_by(b"ctr", 5, T0).unwrap().reply, 5);
    assert_eq!(k.incr_by(b"ctr", -7, T0).unwrap().reply, -2);
    assert_eq!(
        k.get(b"ctr", T0).unwrap(),
        Some(b("-2")),
        "GET shows a counter in decimal"
    );
    assert_eq!(
        k.sadd(b"set", &[b("a"), b("b"), b("a")], T0).unwrap().reply,
        2
    );
    assert_eq!(k.srem(b"set", &[b("a"), b("zz")], T0).unwrap().reply, 1);
    assert_eq!(k.smembers(b"set", T0).unwrap(), vec![b("b")]);
    assert!(k.sismember(b"set", b"b", T0).unwrap());
    assert_eq!(k.scard(b"set", T0).unwrap(), 1);
    assert!(k.hset(b"map", b"f1", b("x"), T0).unwrap().reply);
    assert!(!k.hset(b"map", b"f1", b("y"), T0).unwrap().reply);
    // A field deleted, or a map expired, is new again when set.
    k.hset(b"gone", b"f", b("x"), T0).unwrap();
    k.hdel(b"gone", &[b("f")], T0).unwrap();
    assert!(k.hset(b"gone", b"f", b("x"), T0).unwrap().reply);
    k.expire_at(b"gone", T0 + 10, T0).unwrap();
    assert!(!k.hset(b"gone", b"f", b("y"), T0 + 5).unwrap().reply);
    assert!(k.hset(b"gone", b"f", b("z"), T0 + 10).unwrap().reply);
    assert_eq!(k.hincrby(b"map", b"n", 3, T0).unwrap().reply, 3);
    assert_eq!(k.hget(b"map", b"f1", T0).unwrap(), Some(b("y")));
    assert_eq!(k.hget(b"map", b"n", T0).unwrap(), Some(b("3")));
    assert_eq!(k.hlen(b"map", T0).unwrap(), 2);
    assert_eq!(
        k.hgetall(b"map", T0).unwrap(),
        vec![
            (b("f1"), FieldValue::Register(b("y"))),
            (b("n"), FieldValue::Counter(3))
        ]
    );
    assert_eq!(k.hdel(b"map", &[b("f1"), b("nope")], T0).unwrap().reply, 1);
    assert_eq!(k.hlen(b"map", T0).unwrap(), 1);
    k.mvset(b"mv", b("one"), T0).unwrap();
    assert_eq!(k.mvget(b"mv", T0).unwrap(), vec![b("one")]);
    for (key, kind) in [
        ("reg", Kind::Register),
        ("ctr", Kind::Counter),
        ("set", Kind::Set),
        ("map", Kind::Map),
        ("mv", Kind::MvRegister),
    ] {
        assert_eq!(k.type_of(key.as_bytes(), T0), Some(kind));
        assert!(k.del(key.as_bytes(), T0).unwrap().reply);
        assert_eq!(k.type_of(key.as_bytes(), T0), None);
        assert!(!k.del(key.as_bytes(), T0).unwrap().reply);
    }
    assert_eq!(k.recount_bytes(), k.bytes);
}

#[test]
fn nested_map_fields_take_every_type_and_depth_is_bounded() {
    let mut k = ks(1);
    let path = [b("profile"), b("tags")];
    k.map_apply(b"user", &path, FieldOp::SetAdd(b("rust")), T0)
        .unwrap();
    k.map_apply(b"user", &[b("profile"), b("visits")], FieldOp::Incr(2), T0)
        .unwrap();
    assert_eq!(
        k.map_field(b"user", &path, T0).unwrap(),
        Some(FieldValue::Set(vec![b("rust")]))
    );
    let err = k
        .map_apply(b"user", &[b("profile")], FieldOp::Incr(1), T0)
        .unwrap_err();
    assert!(matches!(
        err,
        KeyspaceError::WrongType(WrongType {
            wanted: Kind::Counter,
            found: Kind::Map
        })
    ));
    // Reading through a field that is not a map is WrongType, as writing
    // through it is; a missing step is nothing.
    let through_counter = [b("profile"), b("visits"), b("x")];
    assert!(matches!(
        k.map_field(b"user", &through_counter, T0).unwrap_err(),
        KeyspaceError::WrongType(WrongType {
            wanted: Kind::Map,
            found: Kind::Counter
        })
    ));
    assert!(matches!(
        k.map_apply(b"user", &through_counter, FieldOp::Set(b("y")), T0)
            .unwrap_err(),
        KeyspaceError::WrongType(WrongType {
            wanted: Kind::Map,
            ..
        })
    ));
    assert_eq!(
        k.map_field(b"user", &[b("nobody"), b("x")], T0).unwrap(),
        None
    );
    let deep: Vec<Bytes> = (0..MAP_NESTING_MAX).map(|i| b(&i.to_string())).collect();
    assert_eq!(
        k.map_apply(b"user", &deep, FieldOp::Set(b("x")), T0)
            .unwrap_err(),
        KeyspaceError::NestingTooDeep {
            max: MAP_NESTING_MAX
        }
    );
    assert_eq!(
        k.map_apply(b"user", &[], FieldOp::Set(b("x")), T0)
            .unwrap_err(),
        KeyspaceError::NoField
    );
}

use crdt_types::MAP_NESTING_MAX;

#[test]
fn concurrent_creation_with_different_types_resolves_the_same_everywhere() {
    let (mut a, mut c) = (ks(1), ks(2));
    let wa = a.set(b"k", b("text"), None, T0).unwrap();
    let wc = c.sadd(b"k", &[b("m")], T0).unwrap();
    ship(&wa, "k", &mut c);
    ship(&wc, "k", &mut a);
    assert_eq!(a.state(b"k"), c.state(b"k"));
    // set > register in the precedence rule.
    assert_eq!(a.type_of(b"k", T0), Some(Kind::Set));
    assert_eq!(c.smembers(b"k", T0).unwrap(), vec![b("m")]);
    assert!(matches!(a.get(b"k", T0), Err(KeyspaceError::WrongType(_))));
    // The next write of the visible type drops the hidden register everywhere.
    let w = a.sadd(b"k", &[b("n")], T0).unwrap();
    ship(&w, "k", &mut c);
    assert_eq!(a.state(b"k"), c.state(b"k"));
    let state = a.state(b"k").unwrap();
    assert!(matches!(state.store().data, crdt_types::TypedStore::Set(_)));
}

#[test]
fn delete_removes_only_what_it_observed() {
    let (mut a, mut c) = (ks(1), ks(2));
    let w = a.sadd(b"s", &[b("x")], T0).unwrap();
    ship(&w, "s", &mut c);
    let del = c.del(b"s", T0).unwrap();
    let add = a.sadd(b"s", &[b("y")], T0).unwrap();
    ship(&del, "s", &mut a);
    ship(&add, "s", &mut c);
    assert_eq!(a.smembers(b"s", T0).unwrap(), vec![b("y")]);
    assert_eq!(a.state(b"s"), c.state(b"s"));
}

#[test]
fn deleted_then_reused_counter_does_not_bring_back_old_counts() {
    let (mut a, mut c) = (ks(1), ks(2));
    let w1 = a.incr_by(b"n", 5, T0).unwrap();
    let w2 = c.incr_by(b"n", 2, T0).unwrap();
    ship(&w1, "n", &mut c);
    ship(&w2, "n", &mut a);
    assert_eq!(a.counter(b"n", T0).unwrap(), Some(7));
    let del = a.del(b"n", T0).unwrap();
    let w3 = a.incr_by(b"n", 1, T0).unwrap();
    assert_eq!(w3.reply, 1);
    ship(&del, "n", &mut c);
    ship(&w3, "n", &mut c);
    assert_eq!(
        c.counter(b"n", T0).unwrap(),
        Some(1),
        "old counts stay deleted everywhere"
    );
    assert_eq!(a.state(b"n"), c.state(b"n"));
}

#[test]
fn increment_concurrent_with_delete_keeps_that_replicas_whole_contribution() {
    // A causal counter keeps one cumulative entry per replica. A delete
    // removes the entries it saw; a replica that increments concurrently
    // replaces its entry with one the delete did not see, so its whole
    // contribution since the last delete *it* saw survives.
    let (mut a, mut c) = (ks(1), ks(2));
    let w1 = a.incr_by(b"n", 5, T0).unwrap();
    let w2 = c.incr_by(b"n", 2, T0).unwrap();
    ship(&w1, "n", &mut c);
    ship(&w2, "n", &mut a);
    let del = a.del(b"n", T0).unwrap();
    let w3 = c.incr_by(b"n", 10, T0).unwrap();
    ship(&del, "n", &mut c);
    ship(&w3, "n", &mut a);
    assert_eq!(
        a.counter(b"n", T0).unwrap(),
        Some(12),
        "a's 5 is gone; c's 2 + 10 survive"
    );
    assert_eq!(a.state(b"n"), c.state(b"n"));
}

#[test]
fn counter_overflow_is_refused() {
    let mut k = ks(1);
    k.incr_by(b"n", i64::MAX, T0).unwrap();
    assert_eq!(k.incr_by(b"n", 1, T0).unwrap_err(), KeyspaceError::Overflow);
    assert_eq!(k.counter(b"n", T0).unwrap(), Some(i64::MAX));
}

#[test]
fn expired_keys_read_as_absent_and_the_sweep_deletes_them() {
    let mut k = ks(1);
    k.set(b"a", b("1"), Some(T0 + 1_000), T0).unwrap();
    k.set(b"b", b("2"), None, T0).unwrap();
    k.sadd(b"c", &[b("x")], T0).unwrap();
    k.expire_at(b"c", T0 + 2_000, T0).unwrap();
    assert_eq!(k.ttl(b"a", T0), Ttl::Ms(1_000));
    assert_eq!(k.ttl(b"b", T0), Ttl::Persistent);
    assert_eq!(k.ttl(b"zz", T0), Ttl::Missing);
    assert_eq!(k.get(b"a", T0 + 999).unwrap(), Some(b("1")));
    assert_eq!(k.get(b"a", T0 + 1_000).unwrap(), None);
    assert_eq!(k.ttl(b"a", T0 + 1_000), Ttl::Missing);
    assert_eq!(k.next_deadline_ms(), Some(T0 + 1_000));
    let swept = k.sweep_expired(T0 + 1_500, 100);
    assert_eq!(swept.len(), 1);
    assert_eq!(swept[0].key, b("a"));
    assert_eq!(k.next_deadline_ms(), Some(T0 + 2_000));
    let swept = k.sweep_expired(T0 + 5_000, 100);
    assert_eq!(swept.len(), 1);
    assert_eq!(k.scard(b"c", T0 + 5_000).unwrap(), 0);
    assert_eq!(k.get(b"b", T0 + 5_000).unwrap(), Some(b("2")));
    assert_eq!(k.next_deadline_ms(), None);
    assert_eq!(k.recount_bytes(), k.bytes);
}

#[test]
fn set_replaces_the_deadline_like_redis() {
    let mut k = ks(1);
    k.set(b"a", b("1"), Some(T0 + 1_000), T0).unwrap();
    k.set(b"a", b("2"), None, T0).unwrap();
    assert_eq!(k.ttl(b"a", T0), Ttl::Persistent);
    k.incr_by(b"n", 1, T0).unwrap();
    k.expire_at(b"n", T0 + 1_000, T0).unwrap();
    k.incr_by(b"n", 1, T0).unwrap();
    assert_eq!(
        k.ttl(b"n", T0),
        Ttl::Ms(1_000),
        "other writes keep the deadline"
    );
}

#[test]
fn writing_to_an_expired_key_starts_it_afresh() {
    let mut k = ks(1);
    k.sadd(b"s", &[b("old")], T0).unwrap();
    k.expire_at(b"s", T0 + 10, T0).unwrap();
    k.sadd(b"s", &[b("new")], T0 + 20).unwrap();
    assert_eq!(k.smembers(b"s", T0 + 20).unwrap(), vec![b("new")]);
    assert_eq!(k.ttl(b"s", T0 + 20), Ttl::Persistent);
}

#[test]
fn a_set_or_map_emptied_of_its_last_member_is_gone_with_its_deadline() {
    let mut k = ks(1);
    k.sadd(b"s", &[b("a")], T0).unwrap();
    k.expire_at(b"s", T0 + 100_000, T0).unwrap();
    k.srem(b"s", &[b("a")], T0).unwrap();
    assert_eq!(k.type_of(b"s", T0), None);
    assert_eq!(k.ttl(b"s", T0), Ttl::Missing);
    assert!(!k.expire_at(b"s", T0 + 50_000, T0).unwrap().reply);
    assert!(!k.persist(b"s", T0).unwrap().reply);
    assert!(!k.del(b"s", T0).unwrap().reply);
    // Added to again, it starts afresh, without the old deadline.
    k.sadd(b"s", &[b("z")], T0).unwrap();
    assert_eq!(k.ttl(b"s", T0), Ttl::Persistent);

    k.hset(b"h", b"f", b("v"), T0).unwrap();
    k.expire_at(b"h", T0 + 100_000, T0).unwrap();
    k.hdel(b"h", &[b("f")], T0).unwrap();
    assert_eq!(k.ttl(b"h", T0), Ttl::Missing);
    k.hset(b"h", b"g", b("w"), T0).unwrap();
    assert_eq!(k.ttl(b"h", T0), Ttl::Persistent);
    assert_eq!(k.bytes, k.recount_bytes());
}

#[test]
fn a_set_or_map_cannot_grow_past_what_one_answer_carries() {
    let max = 20_000;
    let mut k = Keyspace::new(
        ReplicaId(1),
        KeyspaceConfig {
            key_value_bytes_max: max,
            ..KeyspaceConfig::default()
        },
    );
    let member = |i: usize| Bytes::from(format!("{i:0100}").as_str());
    let mut added = 0;
    let refused = loop {
        match k.sadd(b"s", &[member(added)], T0) {
            Ok(_) => added += 1,
            Err(e) => break e,
        }
        assert!(added < 1_000, "never refused");
    };
    assert!(matches!(refused, KeyspaceError::KeyValueTooLarge { max: m, .. } if m == max));
    // Refused, it changed nothing, and what is there can be read back
    // within the limit.
    assert_eq!(k.scard(b"s", T0).unwrap(), added);
    let members = k.smembers(b"s", T0).unwrap();
    assert!(members.len() > 50, "{} members", members.len());
    assert!(postcard::to_allocvec(&members).unwrap().len() < max);
    // Members already there, and removals, are still accepted.
    k.sadd(b"s", &[member(0)], T0).unwrap();
    k.srem(b"s", &[member(0)], T0).unwrap();
    k.sadd(b"s", &[member(0)], T0).unwrap();

    k.hincrby(b"h", b"count", 1, T0).unwrap();
    let mut fields = 0;
    while k
        .hset(b"h", format!("f{fields}").as_bytes(), member(fields), T0)
        .is_ok()
    {
        fields += 1;
        assert!(fields < 1_000, "never refused");
    }
    assert_eq!(k.hlen(b"h", T0).unwrap(), fields + 1);
    assert!(fields > 50, "{fields} fields");
    // At the limit, a field already there still takes what does not grow.
    assert_eq!(k.hincrby(b"h", b"count", 1, T0).unwrap().reply, 2);
    k.hset(b"h", b"f1", b("x"), T0).unwrap();
    assert_eq!(k.hget(b"h", b"f1", T0).unwrap(), Some(b("x")));
    k.hdel(b"h", &[b("f0")], T0).unwrap();
    assert_eq!(k.bytes, k.recount_bytes());

    // Small members take far more memory than answer bytes: the limit is
    // on the answer, so a set of them grows until its answer nears it.
    let mut small = 0usize;
    while k
        .sadd(b"small", &[Bytes::from(format!("{small:08}").as_str())], T0)
        .is_ok()
    {
        small += 1;
        assert!(small < 100_000, "never refused");
    }
    let answer = postcard::to_allocvec(&k.smembers(b"small", T0).unwrap())
        .unwrap()
        .len();
    assert!(answer > max / 4 && answer < max, "answer of {answer} bytes");
    // A refused write to an expired key leaves it as it was (its clearing
    // is not applied without a delta to tell the other replicas).
    k.sadd(b"old", &[b("a")], T0).unwrap();
    k.expire_at(b"old", T0 + 10, T0).unwrap();
    let before = k.state(b"old");
    let many: Vec<Bytes> = (0..300).map(member).collect();
    assert!(k.sadd(b"old", &many, T0 + 20).is_err());
    assert_eq!(k.state(b"old"), before);
}

#[test]
fn longest_deadline_wins_and_persist_beats_deadlines_across_replicas() {
    let (mut a, mut c) = (ks(1), ks(2));
    let w = a.set(b"k", b("v"), None, T0).unwrap();
    ship(&w, "k", &mut c);
    let e1 = a.expire_at(b"k", T0 + 5_000, T0).unwrap();
    let e2 = c.expire_at(b"k", T0 + 9_000, T0).unwrap();
    ship(&e1, "k", &mut c);
    ship(&e2, "k", &mut a);
    assert_eq!(a.ttl(b"k", T0), Ttl::Ms(9_000));
    assert_eq!(c.ttl(b"k", T0), Ttl::Ms(9_000));
    let p = a.persist(b"k", T0).unwrap();
    let e3 = c.expire_at(b"k", T0 + 20_000, T0).unwrap();
    ship(&p, "k", &mut c);
    ship(&e3, "k", &mut a);
    assert_eq!(a.ttl(b"k", T0), Ttl::Persistent);
    assert_eq!(a.state(b"k"), c.state(b"k"));
}

#[test]
fn remote_stamp_beyond_the_skew_bound_is_refused() {
    let (mut a, mut c) = (ks(1), ks(2));
    let w = a
        .set(b"k", b("from the future"), None, T0 + 60_000)
        .unwrap();
    let err = c
        .apply_delta(b"k", w.delta.as_ref().unwrap(), T0)
        .unwrap_err();
    assert!(matches!(err, KeyspaceError::ClockSkew(_)));
    assert_eq!(c.get(b"k", T0).unwrap(), None);
    c.apply_delta(b"k", w.delta.as_ref().unwrap(), T0 + 60_000)
        .unwrap();
    assert_eq!(c.get(b"k", T0).unwrap(), Some(b("from the future")));
}

#[test]
fn oversized_keys_and_values_are_refused() {
    let cfg = KeyspaceConfig {
        key_bytes_max: 8,
        value_bytes_max: 16,
        ..Default::default()
    };
    let mut k = Keyspace::new(ReplicaId(1), cfg);
    assert_eq!(
        k.set(b"123456789", b("v"), None, T0).unwrap_err(),
        KeyspaceError::KeyTooLarge { len: 9, max: 8 }
    );
    assert_eq!(
        k.set(b"k", Bytes::from(vec![0u8; 17]), None, T0)
            .unwrap_err(),
        KeyspaceError::ValueTooLarge { len: 17, max: 16 }
    );
    assert!(k.is_empty());
}

#[test]
fn simple_registers_use_the_compact_form_and_memory_is_accounted() {
    let mut k = ks(1);
    for i in 0..1_000u32 {
        k.set(
            format!("key:{i:012}").as_bytes(),
            Bytes::from(vec![7u8; 64]),
            None,
            T0,
        )
        .unwrap();
    }
    let m = k.memory();
    assert_eq!(m.keys, 1_000);
    assert_eq!(m.keys_compact, 1_000);
    assert!(
        m.bytes / m.keys < 170,
        "compact register costs {} bytes",
        m.bytes / m.keys
    );
    for i in 0..1_000 {
        k.sadd(b"big", &[Bytes::from(format!("member-{i}").as_str())], T0)
            .unwrap();
    }
    let with_set = k.memory().bytes;
    assert!(k.key_bytes(b"big").unwrap() > 1_000 * 8);
    assert_eq!(k.recount_bytes(), k.bytes);
    for i in 0..500 {
        k.srem(b"big", &[Bytes::from(format!("member-{i}").as_str())], T0)
            .unwrap();
    }
    assert!(k.memory().bytes < with_set);
    assert_eq!(k.recount_bytes(), k.bytes);
}

#[test]
fn digests_agree_for_equal_contents_and_combine_over_ranges() {
    let (mut a, mut c) = (ks(1), ks(2));
    for i in 0..200 {
        let key = format!("k{i}");
        let w = a.set(key.as_bytes(), b("v"), None, T0).unwrap();
        ship(&w, &key, &mut c);
    }
    let all = 0..=u64::MAX;
    assert_eq!(a.digest(all.clone()), c.digest(all.clone()));
    let mid = u64::MAX / 2;
    assert_eq!(
        a.digest(0..=mid) ^ a.digest(mid + 1..=u64::MAX),
        a.digest(all.clone())
    );
    c.set(b"k7", b("changed"), None, T0).unwrap();
    assert_ne!(a.digest(all.clone()), c.digest(all));
    let h = crate::keyhash::key_hash(b"k7");
    assert_ne!(a.digest(h..=h), c.digest(h..=h));
    let mut n = 0;
    a.for_each_in_range(0..=mid, |k, _| {
        assert!(crate::keyhash::key_hash(k) <= mid);
        n += 1;
    });
    assert!(n > 50 && n < 150);
}

#[test]
fn digests_of_a_slice_of_buckets_equal_that_slice_of_all_digests() {
    let mut a = ks(1);
    for i in 0..2_000 {
        a.set(format!("k{i}").as_bytes(), b("v"), None, T0).unwrap();
    }
    a.sadd(b"s", &[b("x")], T0).unwrap();
    let all = a.bucket_digests(64, |_| true);
    assert!(all.iter().all(|d| *d != 0), "every bucket holds keys");
    for (first, len) in [(0, 64), (0, 16), (16, 16), (48, 16), (63, 1), (5, 7)] {
        assert_eq!(
            a.bucket_digests_in(64, first, len, |_| true),
            all[first..first + len],
            "buckets {first}..{}",
            first + len
        );
    }
    for wanted in [vec![5u32, 6], vec![0], vec![63], vec![0, 63], vec![17, 40]] {
        let mut got: Vec<Bytes> = a
            .states_in_buckets(64, &wanted, usize::MAX, usize::MAX, 0, |_| true)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        got.sort();
        let mut expected = Vec::new();
        a.for_each_in_range(0..=u64::MAX, |k, _| {
            if wanted.contains(&(super::bucket_of(k, 64) as u32)) {
                expected.push(Bytes::from(k));
            }
        });
        expected.sort();
        assert!(!expected.is_empty());
        assert_eq!(got, expected, "states of buckets {wanted:?}");
    }
    // A byte budget stops the states early, after at least one.
    let all_buckets: Vec<u32> = (0..64).collect();
    let one = a.states_in_buckets(64, &all_buckets, usize::MAX, 1, 0, |_| true);
    assert_eq!(one.len(), 1);
    // Turn after turn, every key is given.
    let few = [5u32, 6];
    let all_of_few = a.states_in_buckets(64, &few, usize::MAX, usize::MAX, 0, |_| true);
    let mut seen = std::collections::HashSet::new();
    for turn in 0..20 * all_of_few.len() as u64 {
        let one = a.states_in_buckets(64, &few, usize::MAX, 1, turn, |_| true);
        seen.insert(one[0].0.clone());
    }
    assert_eq!(seen.len(), all_of_few.len());
    assert!(seen.len() > 10);
    // Rounds at a period that is a multiple of the key count still turn.
    let n = all_of_few.len() as u64;
    let firsts: std::collections::HashSet<Bytes> = (0..50)
        .map(|round| {
            a.states_in_buckets(64, &few, usize::MAX, 1, round * n * 1_000, |_| true)[0]
                .0
                .clone()
        })
        .collect();
    assert!(firsts.len() > 10, "{} distinct", firsts.len());
    let some = a.states_in_buckets(64, &all_buckets, usize::MAX, 2_000, 0, |_| true);
    let taken: usize = some.iter().map(|(k, s)| k.len() + s.heap_bytes()).sum();
    assert!(some.len() > 1 && some.len() < 2_000, "{}", some.len());
    let last = some.last().map_or(0, |(k, s)| k.len() + s.heap_bytes());
    assert!(taken - last < 2_000, "stopped once over the budget");
    let filtered = a.bucket_digests(64, |k| k != b"s");
    assert_eq!(
        a.bucket_digests_in(64, 0, 64, |k| k != b"s"),
        filtered,
        "the filter applies"
    );
}

#[test]
fn full_state_join_converges_replicas() {
    let (mut a, mut c) = (ks(1), ks(2));
    a.sadd(b"s", &[b("x"), b("y")], T0).unwrap();
    c.sadd(b"s", &[b("z")], T0).unwrap();
    let sa = a.state(b"s").unwrap();
    let sc = c.state(b"s").unwrap();
    a.join_state(b"s", &sc, T0).unwrap();
    c.join_state(b"s", &sa, T0).unwrap();
    assert_eq!(a.smembers(b"s", T0).unwrap(), vec![b("x"), b("y"), b("z")]);
    assert_eq!(a.state(b"s"), c.state(b"s"));
    assert_eq!(a.recount_bytes(), a.bytes);
}

#[test]
fn a_field_value_nested_without_bound_is_refused_when_decoded() {
    // postcard: `Map` is variant 3, then one field with an empty name.
    let nested = |depth: usize| {
        let mut bytes = [3u8, 1, 0].repeat(depth);
        bytes.extend([1, 2]); // Counter(1)
        bytes
    };
    let shallow: FieldValue = postcard::from_bytes(&nested(3)).unwrap();
    let mut expected = FieldValue::Counter(1);
    for _ in 0..3 {
        expected = FieldValue::Map(vec![(b(""), expected)]);
    }
    assert_eq!(shallow, expected);
    // Deep enough to overflow the stack if decoding recursed unbounded.
    assert!(postcard::from_bytes::<FieldValue>(&nested(200_000)).is_err());
    assert!(postcard::from_bytes::<FieldValue>(&nested(crdt_types::MAP_NESTING_MAX + 1)).is_err());
}

#[test]
fn compact_keys_rewritten_in_place_keep_accounting_deadlines_and_states_exact() {
    // Writes of every kind on a few keys, each rewritten hundreds of times:
    // values and sequence numbers that change a compact entry's size, large
    // values, deadlines set, moved and removed, deletes. Keys `k*` are
    // written here only, so they stay compact; keys `r*` also take another
    // replica's deltas (some with deadlines) and whole states, which makes
    // them leave the compact form. After every step the memory estimate
    // and the deadline index must equal a recount, a set must read back,
    // and a keyspace that only takes whole states must agree.
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let mut a = ks(1);
    let mut other = ks(2);
    let mut mirror = ks(3);
    let mut now = T0;
    let mut in_place = 0;
    for step in 0..6_000 {
        now += next(50);
        let remote = next(3) == 0;
        let key = format!("{}{}", if remote { 'r' } else { 'k' }, next(4));
        let k = key.as_bytes();
        let len = if next(50) == 0 {
            20_000
        } else {
            next(40) as usize
        };
        let value = Bytes::from(vec![b'a' + next(26) as u8; len]);
        let was_compact = a.is_compact(k);
        let result = match next(if remote { 15 } else { 9 }) {
            0 | 1 => a.set(k, value.clone(), None, now).map(|_| {
                assert_eq!(a.get(k, now).unwrap(), Some(value), "step {step}");
            }),
            2 => a.set(k, value, Some(now + 1 + next(200)), now).map(drop),
            3 => a.incr_by(k, next(1_000) as i64 - 500, now).map(drop),
            4 => a.mvset(k, value, now).map(drop),
            5 => a.expire_at(k, now + next(300), now).map(drop),
            6 => a.persist(k, now).map(drop),
            7 | 8 => a.del(k, now).map(drop),
            9 | 10 => {
                // Another replica's write arrives as a delta.
                let deadline = (next(2) == 0).then(|| now + 1 + next(200));
                let theirs = other.set(k, value, deadline, now).unwrap();
                a.apply_delta(k, theirs.delta.as_ref().unwrap(), now)
            }
            11 => match other.state(k) {
                Some(theirs) => a.join_state(k, &theirs, now),
                None => Ok(()),
            },
            12 => {
                // Handed back to its replicas: dropped here (and from the
                // mirror, which follows this keyspace).
                a.forget(k);
                mirror.forget(k);
                Ok(())
            }
            _ => {
                // Recovered from storage: the other replica's state stands
                // in for this one's log.
                if let Some(theirs) = other.state(k) {
                    a.restore(k, &theirs);
                }
                Ok(())
            }
        };
        if result.is_ok() && was_compact && a.is_compact(k) {
            in_place += 1;
        }
        if next(20) == 0 {
            a.sweep_expired(now, 3);
        }
        assert_eq!(a.recount_bytes(), a.bytes, "step {step}");
        assert_eq!(a.recount_deadlines(), a.deadlines, "step {step}");
        assert_eq!(a.recount_order(), a.order, "step {step}");
        if let Some(state) = a.state(k) {
            mirror.join_state(k, &state, now).unwrap();
        }
        assert_eq!(mirror.state(k), a.state(k), "step {step}");
    }
    assert!(
        in_place > 1_000,
        "only {in_place} writes rewrote a compact key"
    );
    let seq = a.state(b"k0").unwrap().context().vv_get(ReplicaId(1));
    assert!(seq > 300, "sequence numbers stayed small ({seq})");
}

#[test]
fn remote_updates_counting_past_the_sequence_limit_are_refused() {
    // A delta whose context claims writer 1 wrote 2^62 + 1 times: taken
    // in, writer 1's next write to the key would count where no replica
    // can follow it.
    let (mut a, mut c) = (ks(1), ks(2));
    let w = a.set(b"k", b("v"), None, T0).unwrap();
    let (store, mut ctx) = w.delta.unwrap().into_parts();
    ctx.join(&crdt_types::CausalContext::from_version_vector([(
        crdt_types::ReplicaId(1),
        REMOTE_SEQ_MAX + 1,
    )]));
    let high = crdt_types::Delta::new(store.clone(), ctx.clone());
    assert_eq!(
        c.apply_delta(b"k", &high, T0).unwrap_err(),
        KeyspaceError::SequenceTooHigh {
            seq: REMOTE_SEQ_MAX + 1,
            max: REMOTE_SEQ_MAX
        }
    );
    let state = crdt_types::Causal::from_parts(store, ctx).unwrap();
    assert!(matches!(
        c.join_state(b"k", &state, T0),
        Err(KeyspaceError::SequenceTooHigh { .. })
    ));
    assert_eq!(c.get(b"k", T0).unwrap(), None, "nothing taken in");
    // At the limit it is taken.
    let w = a.set(b"j", b("v"), None, T0).unwrap();
    let (store, mut ctx) = w.delta.unwrap().into_parts();
    ctx.join(&crdt_types::CausalContext::from_version_vector([(
        crdt_types::ReplicaId(1),
        REMOTE_SEQ_MAX,
    )]));
    c.apply_delta(b"j", &crdt_types::Delta::new(store, ctx), T0)
        .unwrap();
    assert_eq!(c.get(b"j", T0).unwrap(), Some(b("v")));
    // Writer 1 itself, told it wrote that often, no longer writes the key
    // (its next delta would count past what the others take in); the
    // others still do.
    a.join_state(b"j", &c.state(b"j").unwrap(), T0).unwrap();
    assert!(matches!(
        a.set(b"j", b("w"), None, T0),
        Err(KeyspaceError::SequenceTooHigh {
            max: LOCAL_SEQ_MAX,
            ..
        })
    ));
    assert_eq!(a.get(b"j", T0).unwrap(), Some(b("v")), "unchanged");
    let w = c.set(b"j", b("from 2"), None, T0 + 1).unwrap();
    a.apply_delta(b"j", w.delta.as_ref().unwrap(), T0 + 1)
        .unwrap();
    assert_eq!(a.get(b"j", T0 + 1).unwrap(), Some(b("from 2")));
}

/// Every page of a scan of `key`'s set, `count` per request.
fn sscan_all(k: &Keyspace, key: &[u8], count: usize) -> Vec<Page<Bytes>> {
    all_pages(|after| k.sscan(key, after, count, T0).unwrap())
}

/// Every page of a scan, each asked for with where the one before ended.
fn all_pages<T: PageItem>(mut page: impl FnMut(Option<&[u8]>) -> Page<T>) -> Vec<Page<T>> {
    let mut pages: Vec<Page<T>> = Vec::new();
    loop {
        let after = pages.last().and_then(|p| p.after().cloned());
        if !pages.is_empty() && after.is_none() {
            return pages;
        }
        pages.push(page(after.as_deref()));
        assert!(pages.len() < 10_000, "the scan never ends");
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// A scan's pages, in turn, are the set's members in order, each at
    /// most `count` long, with no empty page but an empty set's: with
    /// members removed along the way too (their entries may linger).
    #[test]
    fn a_scan_of_a_set_gives_every_member_once_in_order(
        added in proptest::collection::vec(proptest::collection::vec(0u8..4, 0..4), 0..60),
        removed in proptest::collection::vec(proptest::collection::vec(0u8..4, 0..4), 0..20),
        count in 1usize..8,
    ) {
        let mut k = ks(1);
        let member = |m: &Vec<u8>| Bytes::from(m.as_slice());
        if !added.is_empty() {
            k.sadd(b"s", &added.iter().map(member).collect::<Vec<_>>(), T0).unwrap();
        }
        if !removed.is_empty() {
            k.srem(b"s", &removed.iter().map(member).collect::<Vec<_>>(), T0).unwrap();
        }
        let pages = sscan_all(&k, b"s", count);
        let members: Vec<Bytes> = pages.iter().flat_map(|p| p.items.clone()).collect();
        proptest::prop_assert_eq!(&members, &k.smembers(b"s", T0).unwrap());
        for (i, p) in pages.iter().enumerate() {
            proptest::prop_assert!(p.items.len() <= count);
            proptest::prop_assert!(!p.items.is_empty() || pages.len() == 1);
            proptest::prop_assert_eq!(p.more, i + 1 < pages.len());
        }
    }
}

#[test]
fn a_scan_of_a_map_pages_its_fields_in_order_with_their_values() {
    let mut k = ks(1);
    for i in 0..25 {
        let field = format!("f{i:02}");
        if i % 5 == 0 {
            k.hincrby(b"m", field.as_bytes(), i, T0).unwrap();
        } else {
            k.hset(b"m", field.as_bytes(), b(&format!("v{i}")), T0)
                .unwrap();
        }
    }
    k.hdel(b"m", &[b("f03"), b("f04")], T0).unwrap();
    let pages = all_pages(|after| k.hscan(b"m", after, 4, T0).unwrap());
    assert!(pages.iter().all(|p| p.items.len() <= 4));
    let seen: Vec<_> = pages.into_iter().flat_map(|p| p.items).collect();
    assert_eq!(seen, k.hgetall(b"m", T0).unwrap());
    assert_eq!(seen.len(), 23);
    assert_eq!(seen[0], (b("f00"), FieldValue::Counter(0)));
    assert_eq!(seen[1], (b("f01"), FieldValue::Register(b("v1"))));
    // A page may start after a field that is not there.
    let page = k.hscan(b"m", Some(b"f03"), 1, T0).unwrap();
    assert_eq!(page.items, vec![(b("f05"), FieldValue::Counter(5))]);
    assert!(page.more);
}

#[test]
fn a_scan_page_stops_at_the_limit_of_a_keys_value_but_takes_one_item_at_least() {
    let max = 10_000;
    let mut k = Keyspace::new(
        ReplicaId(1),
        KeyspaceConfig {
            key_value_bytes_max: max,
            ..KeyspaceConfig::default()
        },
    );
    let member = |i: usize| Bytes::from(format!("{i:01000}").as_str());
    // Another replica's state can hold more than one answer carries (the
    // merge of concurrent adds): built here by joining two keyspaces.
    let mut other = Keyspace::new(
        ReplicaId(2),
        KeyspaceConfig {
            key_value_bytes_max: max,
            ..KeyspaceConfig::default()
        },
    );
    for i in 0..8 {
        k.sadd(b"s", &[member(i)], T0).unwrap();
        other.sadd(b"s", &[member(100 + i)], T0).unwrap();
    }
    k.join_state(b"s", &other.state(b"s").unwrap(), T0).unwrap();
    assert_eq!(k.scard(b"s", T0).unwrap(), 16);
    let pages = sscan_all(&k, b"s", 1_000);
    assert!(pages.len() >= 2, "{} pages", pages.len());
    for p in &pages {
        let bytes: usize = p.items.iter().map(|m| m.len() + 8).sum();
        assert!(bytes <= max, "a page of {bytes} bytes");
    }
    let all: Vec<Bytes> = pages.into_iter().flat_map(|p| p.items).collect();
    assert_eq!(all, k.smembers(b"s", T0).unwrap());
    // A member larger than the whole budget still makes a page of one.
    let mut tiny = Keyspace::new(
        ReplicaId(1),
        KeyspaceConfig {
            key_value_bytes_max: 10,
            ..KeyspaceConfig::default()
        },
    );
    tiny.join_state(b"s", &k.state(b"s").unwrap(), T0).unwrap();
    let page = tiny.sscan(b"s", None, 5, T0).unwrap();
    assert_eq!(page.items.len(), 1);
    assert!(page.more);
}

#[test]
fn a_scan_of_a_missing_key_is_empty_and_of_another_type_is_wrongtype() {
    let mut k = ks(1);
    let empty = k.sscan(b"none", None, 10, T0).unwrap();
    assert!(empty.items.is_empty() && !empty.more);
    assert!(k.hscan(b"none", None, 10, T0).unwrap().items.is_empty());
    k.set(b"r", b("v"), None, T0).unwrap();
    assert!(matches!(
        k.sscan(b"r", None, 10, T0),
        Err(KeyspaceError::WrongType(_))
    ));
    assert!(matches!(
        k.hscan(b"r", None, 10, T0),
        Err(KeyspaceError::WrongType(_))
    ));
    // A count of zero is taken as one.
    k.sadd(b"s", &[b("a"), b("b")], T0).unwrap();
    let page = k.sscan(b"s", None, 0, T0).unwrap();
    assert_eq!(page.items, vec![b("a")]);
}

/// Pages as they go on the wire: each fits the frame the limit of a key's
/// value is derived from, and is not far below it.
#[test]
fn scan_pages_fit_a_frame_when_encoded() {
    use crate::protocol::frame::encode_into;
    use crate::protocol::{Answer, Reply, Response};
    let frame = 16 * 1024;
    let config = KeyspaceConfig {
        key_value_bytes_max: frame - crate::topology::FRAME_HEADROOM_BYTES as usize,
        ..KeyspaceConfig::default()
    };
    // Built on two replicas and joined, so the value outgrows one answer.
    let mut k = Keyspace::new(ReplicaId(1), config.clone());
    let mut other = Keyspace::new(ReplicaId(2), config);
    for i in 0..4_000u32 {
        let to = if i % 2 == 0 { &mut k } else { &mut other };
        // Each replica's adds stop at the limit: the rest are refused.
        let _ = to.sadd(b"tiny", &[Bytes::from(i.to_be_bytes().as_slice())], T0);
        let field = format!("f{i:05}");
        let _ = match i % 3 {
            0 => to
                .hincrby(b"m", field.as_bytes(), i64::from(i), T0)
                .map(|_| ()),
            1 => to.hset(b"m", field.as_bytes(), b("v"), T0).map(|_| ()),
            _ => to
                .map_apply(
                    b"m",
                    &[b(&field), b("inner")],
                    FieldOp::SetAdd(b("member")),
                    T0,
                )
                .map(|_| ()),
        };
    }
    for key in [&b"tiny"[..], b"m"] {
        k.join_state(key, &other.state(key).unwrap(), T0).unwrap();
    }
    let mut buf = Vec::new();
    let mut check = |reply: Reply| {
        buf.clear();
        let response = Response {
            id: u64::MAX,
            result: Ok(Answer {
                reply,
                replicas_acked: 3,
                replicas_needed: 3,
            }),
        };
        encode_into(&response, &mut buf, frame).expect("a page fits its frame");
        buf.len()
    };
    let sets = all_pages(|after| k.sscan(b"tiny", after, usize::MAX, T0).unwrap());
    let maps = all_pages(|after| k.hscan(b"m", after, usize::MAX, T0).unwrap());
    assert!(sets.len() > 1 && maps.len() > 1);
    let pages = sets
        .into_iter()
        .map(|p| (p.more, Reply::SetPage(p)))
        .chain(maps.into_iter().map(|p| (p.more, Reply::MapPage(p))));
    for (more, reply) in pages {
        let len = check(reply);
        // Every page but a scan's last is close to full.
        assert!(!more || len > frame / 3, "a full page of {len} bytes");
    }
    // Pages that keep matches fit too, with their cursor, whether they
    // keep every item or none.
    for glob in ["*", "no-such-*", "*0*"] {
        let pattern = crate::glob::Pattern::new(glob.as_bytes());
        let mut after: Option<Bytes> = None;
        let mut pages = 0;
        loop {
            let page = k
                .sscan_matching(
                    b"tiny",
                    after.as_deref(),
                    usize::MAX,
                    &pattern,
                    usize::MAX,
                    T0,
                )
                .unwrap();
            let next = page.after().cloned();
            check(Reply::SetMatches(page));
            pages += 1;
            match next {
                Some(a) => after = Some(a),
                None => break,
            }
        }
        assert!(pages >= 1);
        let fields = k
            .hscan_matching(b"m", None, usize::MAX, &pattern, usize::MAX, T0)
            .unwrap();
        check(Reply::MapMatches(fields));
    }
    // A page of long members, all kept or all passed over, fits.
    let long = |i: u32| Bytes::from(format!("{i:05}{}", "x".repeat(3_000)).as_str());
    let mut wide = Keyspace::new(ReplicaId(3), k.config().clone());
    for i in 0..20 {
        let _ = wide.sadd(b"wide", &[long(i)], T0);
    }
    // (The set stops growing at the limit of one key's value.)
    for glob in [&b"*"[..], b"none"] {
        let pattern = crate::glob::Pattern::new(glob);
        let page = wide
            .sscan_matching(b"wide", None, usize::MAX, &pattern, usize::MAX, T0)
            .unwrap();
        assert!(!page.more);
        check(Reply::SetMatches(page));
    }
    // Keys of up to 2 KiB, paged by bytes alone: each page fits, and a
    // page that stops for its bytes left the next hash's keys whole.
    for i in 0..300usize {
        let key = format!("{i:04}-{}", "k".repeat((i * 37) % 2_048));
        k.set(key.as_bytes(), b("v"), None, T0).unwrap();
    }
    let budget = ScanBudget {
        answer_bytes: k.config().key_value_bytes_max,
        ..ScanBudget::hashes(usize::MAX)
    };
    let (mut from, mut pages, mut listed) = (0, 0, 0);
    loop {
        let page = k.scan_keys(from, budget, T0, |_, _| true);
        listed += page.keys.len();
        let next = page.next;
        let len = check(Reply::Keys(page));
        pages += 1;
        if next == 0 {
            break;
        }
        assert!(len > frame / 2, "a full page of {len} bytes");
        from = next;
    }
    assert!(pages > 5, "{pages} pages");
    assert_eq!(listed, k.len());
}

/// Every page of a scan from the start, with `count` hashes a page.
fn scan_all(
    k: &Keyspace,
    count: usize,
    now: u64,
    want: impl Fn(&[u8], Kind) -> bool,
) -> Vec<Bytes> {
    let (mut keys, mut from, mut pages) = (Vec::new(), 0, 0);
    loop {
        let page = k.scan_keys(from, ScanBudget::hashes(count), now, &want);
        let hashes: BTreeSet<u64> = page.keys.iter().map(|k| key_hash(k)).collect();
        assert!(
            hashes.len() <= count,
            "{} hashes in a page of {count}",
            hashes.len()
        );
        keys.extend(page.keys);
        pages += 1;
        assert!(pages <= k.len() + 1, "the scan moves forward");
        if page.next == 0 {
            return keys;
        }
        assert!(page.next > from);
        from = page.next;
    }
}

#[test]
fn a_scan_lists_every_existing_key_once_in_hash_order() {
    let mut k = ks(1);
    let mut other = ks(2);
    for i in 0..300 {
        let key = format!("r{i}");
        k.set(key.as_bytes(), b("v"), None, T0).unwrap();
    }
    for i in 0..50 {
        k.incr_by(format!("c{i}").as_bytes(), 1, T0).unwrap();
        k.sadd(format!("s{i}").as_bytes(), &[b("m")], T0).unwrap();
        // Written by two replicas: kept decoded, in the other table.
        let key = format!("l{i}");
        let theirs = other.set(key.as_bytes(), b("x"), None, T0).unwrap();
        ship(&theirs, &key, &mut k);
        k.set(key.as_bytes(), b("y"), None, T0 + 1).unwrap();
    }
    assert!(k.memory().keys_compact < k.len(), "both tables hold keys");
    // Gone: deleted, expired, emptied.
    k.del(b"r0", T0).unwrap();
    k.set(b"r1", b("v"), Some(T0 + 10), T0).unwrap();
    k.srem(b"s0", &[b("m")], T0).unwrap();
    k.del(b"l0", T0).unwrap();
    let now = T0 + 20;
    let mut expected: Vec<Bytes> = (2..300)
        .map(|i| format!("r{i}"))
        .chain((0..50).map(|i| format!("c{i}")))
        .chain((1..50).map(|i| format!("s{i}")))
        .chain((1..50).map(|i| format!("l{i}")))
        .map(|s| b(&s))
        .collect();
    expected.sort_by_key(|key| (key_hash(key), key.clone()));
    for count in [1, 7, 100, 10_000] {
        assert_eq!(
            scan_all(&k, count, now, |_, _| true),
            expected,
            "count {count}"
        );
    }
    // The filter sees each key's type.
    let counters = scan_all(&k, 10, now, |_, kind| kind == Kind::Counter);
    assert_eq!(counters.len(), 50);
    assert!(counters.iter().all(|c| c.starts_with(b"c")));
    let prefixed = scan_all(&k, 10, now, |key, _| key.starts_with(b"s1"));
    assert_eq!(prefixed.len(), 11, "s1, s10..s19");
}

#[test]
fn a_scan_page_ends_at_its_count_or_its_bytes_and_a_later_page_goes_on() {
    let mut k = ks(1);
    for i in 0..100 {
        k.set(format!("key-{i:03}").as_bytes(), b("v"), None, T0)
            .unwrap();
    }
    let first = k.scan_keys(0, ScanBudget::hashes(10), T0, |_, _| true);
    assert_eq!(first.keys.len(), 10);
    assert_eq!(first.next, key_hash(first.keys.last().unwrap()) + 1);
    let rest = k.scan_keys(first.next, ScanBudget::hashes(1_000), T0, |_, _| true);
    assert_eq!(rest.keys.len(), 90);
    assert_eq!(rest.next, 0, "the last page ends the scan");
    // A byte budget ends a page early, after at least one key.
    let small = k.scan_keys(
        0,
        ScanBudget {
            answer_bytes: 1,
            ..ScanBudget::hashes(1_000)
        },
        T0,
        |_, _| true,
    );
    assert_eq!(small.keys.len(), 1);
    assert_ne!(small.next, 0);
    // A count of 0 looks at one hash all the same.
    assert_eq!(
        k.scan_keys(0, ScanBudget::hashes(0), T0, |_, _| true)
            .keys
            .len(),
        1
    );
    // Nothing past the greatest hash; an empty keyspace has no page.
    assert_eq!(
        k.scan_keys(u64::MAX, ScanBudget::hashes(10), T0, |_, _| true)
            .next,
        0
    );
    assert_eq!(
        ks(2).scan_keys(0, ScanBudget::hashes(10), T0, |_, _| true),
        KeyPage {
            keys: Vec::new(),
            next: 0
        }
    );
}

#[test]
fn keys_dropped_restored_and_moved_between_tables_keep_the_order() {
    let mut k = ks(1);
    let mut other = ks(2);
    k.set(b"a", b("v"), None, T0).unwrap();
    let theirs = other.set(b"b", b("w"), None, T0).unwrap();
    ship(&theirs, "b", &mut k);
    k.set(b"b", b("v"), None, T0 + 1).unwrap();
    assert_eq!(k.recount_order(), k.order);
    assert!(k.forget(b"a"));
    assert!(k.forget(b"b"));
    assert!(k.order.is_empty());
    k.restore(b"b", &other.state(b"b").unwrap());
    assert_eq!(k.recount_order(), k.order);
    assert_eq!(scan_all(&k, 10, T0, |_, _| true), vec![b("b")]);
    // A narrow range is found through the order, as a pass would find it.
    for i in 0..500 {
        k.set(format!("n{i}").as_bytes(), b("v"), None, T0).unwrap();
    }
    for (lo, hi) in [
        (0, u64::MAX / 8),
        (u64::MAX / 3, u64::MAX / 3 + u64::MAX / 16),
        (5, 5),
    ] {
        let mut narrow = Vec::new();
        k.for_each_in_range(lo..=hi, |key, _| narrow.push(Bytes::from(key)));
        let mut pass = Vec::new();
        k.for_each_in_range(0..=u64::MAX, |key, _| {
            if (lo..=hi).contains(&key_hash(key)) {
                pass.push(Bytes::from(key));
            }
        });
        narrow.sort();
        pass.sort();
        assert_eq!(narrow, pass);
    }
}

#[test]
fn two_keys_of_one_hash_share_an_entry_of_the_order_and_a_page() {
    // Two 16-byte keys whose XXH3-64 is the same (found by a cycle search).
    let (a, c) = (&b"9f86db37676c5a3d"[..], &b"487122c014393cb3"[..]);
    let hash = key_hash(a);
    assert_eq!(hash, key_hash(c), "an XXH3 collision");
    let mut k = ks(1);
    let mut other = ks(2);
    for i in 0..50 {
        k.set(format!("filler-{i}").as_bytes(), b("v"), None, T0)
            .unwrap();
    }
    k.set(a, b("a"), None, T0).unwrap();
    // The other key kept decoded: written by two replicas.
    let theirs = other.set(c, b("c"), None, T0).unwrap();
    k.apply_delta(c, theirs.delta.as_ref().unwrap(), T0)
        .unwrap();
    k.set(c, b("c2"), None, T0 + 1).unwrap();
    assert!(k.is_compact(a) && !k.is_compact(c));
    assert_eq!(k.order.len(), 51);
    assert_eq!(k.recount_order(), k.order);
    // One page holds both, however small.
    let page = k.scan_keys(hash, ScanBudget::hashes(1), T0, |_, _| true);
    let mut both = page.keys.clone();
    both.sort();
    assert_eq!(both, [b("487122c014393cb3"), b("9f86db37676c5a3d")]);
    assert_eq!(page.next, hash.wrapping_add(1));
    assert_eq!(scan_all(&k, 1, T0, |_, _| true).len(), 52);
    // A page whose answer has room for one key more stops before the
    // pair, and the next page holds both.
    let before = *k.order.range(..hash).next_back().unwrap();
    let mut first_key = Vec::new();
    k.for_each_of_hash(before, |key, _| first_key.push(key.len()));
    let tight = ScanBudget {
        answer_bytes: first_key[0] + ANSWER_KEY_BYTES + 1,
        ..ScanBudget::hashes(10)
    };
    let page = k.scan_keys(before, tight, T0, |_, _| true);
    assert_eq!(
        (page.keys.len(), page.next),
        (1, hash),
        "stopped before the pair"
    );
    let page = k.scan_keys(page.next, tight, T0, |_, _| true);
    assert_eq!(page.keys.len(), 2, "the pair whole, over the budget");
    assert_eq!(page.next, hash.wrapping_add(1));
    // Each found by its own lookups, in either table.
    assert_eq!(k.get(a, T0).unwrap(), Some(b("a")));
    assert_eq!(k.get(c, T0).unwrap(), Some(b("c2")));
    // One gone: the hash stays for the other.
    assert!(k.forget(a));
    assert_eq!(k.recount_order(), k.order);
    assert!(k.order.contains(&hash));
    let left = scan_all(&k, 1, T0, |key, _| !key.starts_with(b"filler"));
    assert_eq!(left, [b("487122c014393cb3")]);
    assert!(k.forget(c));
    assert!(!k.order.contains(&hash));
}

#[test]
fn sscan_and_hscan_with_a_pattern_look_at_count_items_and_keep_the_matches() {
    use crate::glob::Pattern;
    let mut k = ks(1);
    for i in 0..100 {
        let name = format!("m{i:03}");
        k.sadd(b"s", &[b(&name)], T0).unwrap();
        k.hset(b"h", name.as_bytes(), b("v"), T0).unwrap();
    }
    let pattern = Pattern::new(b"m0[1-2]?");
    let expected: Vec<Bytes> = (10..30).map(|i| b(&format!("m{i:03}"))).collect();
    let (mut found, mut after, mut pages) = (Vec::new(), None::<Bytes>, 0);
    loop {
        let page = k
            .sscan_matching(b"s", after.as_deref(), 7, &pattern, usize::MAX, T0)
            .unwrap();
        assert!(page.items.len() <= 7);
        let next = page.after().cloned();
        found.extend(page.items);
        pages += 1;
        match next {
            Some(a) => after = Some(a),
            None => break,
        }
    }
    assert_eq!(found, expected);
    assert_eq!(pages, 15, "100 members, 7 looked at a page");
    // Pages with no match still move on; a map's fields go alike.
    let first = k
        .hscan_matching(b"h", None, 5, &pattern, usize::MAX, T0)
        .unwrap();
    assert!(first.items.is_empty());
    assert_eq!(first.after(), Some(&b("m004")));
    let all = k
        .hscan_matching(b"h", None, 1_000, &pattern, usize::MAX, T0)
        .unwrap();
    assert_eq!(all.after(), None);
    let fields: Vec<Bytes> = all.items.into_iter().map(|(f, _)| f).collect();
    assert_eq!(fields, expected);
    // Matching steps end a page early, after one item at least.
    let short = k
        .sscan_matching(b"s", None, 1_000, &pattern, 1, T0)
        .unwrap();
    assert_eq!((short.items.len(), short.after()), (0, Some(&b("m000"))));
    // A missing key, or one of another type.
    let none = k
        .sscan_matching(b"nope", None, 5, &pattern, usize::MAX, T0)
        .unwrap();
    assert_eq!((none.items.len(), none.after()), (0, None));
    assert!(k
        .sscan_matching(b"h", None, 5, &pattern, usize::MAX, T0)
        .is_err());
}
