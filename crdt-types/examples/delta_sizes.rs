//! Prints the encoded size of the delta for a one-field update of an OR-map,
//! next to the map's full encoded size, for maps of 10, 1,000 and 100,000
//! fields. The delta must not grow with the map: it carries the field, its
//! new value and the few dots the update observed, never the whole map.
//!
//! Run: `cargo run --release -p crdt-types --example delta_sizes`

use crdt_types::{encode, Bytes, Causal, Hlc, LwwRegister, OrMap, ReplicaId};

/// The replica that fills the map.
const FILLER: ReplicaId = ReplicaId(1);
/// The replica that makes the measured update.
const WRITER: ReplicaId = ReplicaId(2);

fn field(i: usize) -> Vec<u8> {
    format!("field:{i:08}").into_bytes()
}

fn value(i: usize) -> Bytes {
    format!("value-{i:010}").into_bytes().into()
}

/// A map of `fields` register fields written at one replica.
fn filled_map(fields: usize) -> Causal<OrMap> {
    let mut map: Causal<OrMap> = Causal::new();
    for i in 0..fields {
        map.mutate(|m, c| {
            m.update::<LwwRegister>(c, &field(i), |s, c| {
                s.set(c, FILLER, Hlc::new(1_000 + i as u64, 0), value(i))
            })
            .expect("a fresh field takes any type")
        });
    }
    map
}

fn main() {
    println!("| fields  | full state (bytes) | one-field delta (bytes) |");
    println!("|--------:|-------------------:|------------------------:|");
    for fields in [10, 1_000, 100_000] {
        let mut map = filled_map(fields);
        let full_bytes = encode(&map).len();
        // Another replica overwrites the field the filler wrote last.
        let delta = map.mutate(|m, c| {
            m.update::<LwwRegister>(c, &field(fields - 1), |s, c| {
                s.set(c, WRITER, Hlc::new(1_000_000, 0), value(fields))
            })
            .expect("every field is a register")
        });
        let delta_bytes = encode(&delta).len();
        assert_eq!(delta_bytes, delta.encoded_len());
        println!("| {fields:>7} | {full_bytes:>18} | {delta_bytes:>23} |");
    }
}
