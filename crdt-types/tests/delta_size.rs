//! The delta of a one-field map update carries the field, its value and the
//! dots it observed, never the rest of the map: its size does not grow with
//! the map.

use crdt_types::{decode, encode, Causal, Delta, Hlc, LwwRegister, OrMap, ReplicaId};

const FILLER: ReplicaId = ReplicaId(1);
const WRITER: ReplicaId = ReplicaId(2);

fn field(i: usize) -> Vec<u8> {
    format!("field:{i:08}").into_bytes()
}

/// A map of `fields` register fields, and the delta of a later update of one
/// field by another replica.
fn map_and_update(fields: usize) -> (Causal<OrMap>, Delta<OrMap>) {
    let mut map: Causal<OrMap> = Causal::new();
    for i in 0..fields {
        map.mutate(|m, c| {
            m.update::<LwwRegister>(c, &field(i), |s, c| {
                s.set(c, FILLER, Hlc::new(1_000, 0), b"filler".into())
            })
            .expect("a fresh field takes any type")
        });
    }
    let before = map.clone();
    let delta = map.mutate(|m, c| {
        m.update::<LwwRegister>(c, &field(fields / 2), |s, c| {
            s.set(c, WRITER, Hlc::new(2_000, 0), b"update".into())
        })
        .expect("every field is a register")
    });
    (before, delta)
}

#[test]
fn one_field_delta_of_a_100k_field_map_is_as_small_as_of_a_10_field_map() {
    let (_, small_delta) = map_and_update(10);
    let (big_map, big_delta) = map_and_update(100_000);
    let small_bytes = encode(&small_delta).len();
    let big_bytes = encode(&big_delta).len();

    // Only the varints of larger sequence numbers may differ (2 dots, at most
    // 2 extra bytes each for seq < 2^21).
    assert!(
        big_bytes <= small_bytes + 4,
        "delta grew with the map: {small_bytes} B for 10 fields, {big_bytes} B for 100,000"
    );
    assert!(
        small_bytes < 64,
        "a one-field delta is tens of bytes, got {small_bytes}"
    );
    let big_map_bytes = encode(&big_map).len();
    assert!(
        big_map_bytes > 1_000 * big_bytes,
        "the full map ({big_map_bytes} B) dwarfs the delta ({big_bytes} B)"
    );

    // The delta lists exactly one field and decodes to itself.
    assert_eq!(big_delta.store().len(), 1);
    assert_eq!(
        decode::<Delta<OrMap>>(&encode(&big_delta)).expect("delta decodes"),
        big_delta
    );
}

#[test]
fn applying_the_small_delta_updates_the_field_at_another_replica() {
    let (mut replica, delta) = map_and_update(1_000);
    let fields_before = replica.store().len();
    replica.apply(&delta);
    assert_eq!(replica.store().len(), fields_before);
    let value = replica
        .store()
        .get(&field(500))
        .expect("field present")
        .read::<LwwRegister>()
        .expect("a register");
    assert_eq!(
        value
            .expect("not empty")
            .get()
            .expect("has a value")
            .as_slice(),
        b"update"
    );
}
