//! Bytes shipped between regions per one-field update of a large map.
//!
//! Builds an OR-map of N fields (default 10,000), then makes 1,000 updates
//! of one random field each and ships their deltas the way a node does: as
//! `GeoBatch` frames of the wire protocol. Prints the bytes per update
//! (frame bytes divided by updates, one update per batch and 100 per batch),
//! the field's own bytes (field name + value + its dot and HLC), and the
//! map's full encoded size.
//!
//! `cargo run --release --example geo_bytes -- [FIELDS]`

use meridian::crdt::{encode, Bytes, ReplicaId};
use meridian::keyspace::{Keyspace, KeyspaceConfig};
use meridian::protocol::{frame, PeerMsg};

fn main() {
    let fields: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000);
    let now = 1_800_000_000_000;
    let mut ks = Keyspace::new(ReplicaId(0x1234_5678), KeyspaceConfig::default());
    let value = Bytes::from(vec![b'v'; 16]);
    for i in 0..fields {
        ks.hset(
            b"profile:42",
            format!("field:{i:06}").as_bytes(),
            value.clone(),
            now,
        )
        .unwrap();
    }
    let full = encode(&ks.state(b"profile:42").unwrap()).len();
    let mut deltas = Vec::new();
    let mut x = 0x9E37_79B9u64;
    // The sequence number of each field's current entry (one dot per write,
    // numbered from 1), to count the varint bytes the dots take.
    let mut seq_of: Vec<u64> = (1..=fields as u64).collect();
    let (mut dot_seq_bytes, mut superseded_seq_bytes) = (0usize, 0usize);
    for next_seq in fields as u64 + 1..fields as u64 + 1_001 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let i = x as usize % fields;
        let field = format!("field:{i:06}");
        let w = ks
            .hset(b"profile:42", field.as_bytes(), value.clone(), now)
            .unwrap();
        deltas.push(w.delta.expect("an update makes a delta"));
        superseded_seq_bytes += varint_len(seq_of[i]);
        dot_seq_bytes += varint_len(next_seq);
        seq_of[i] = next_seq;
    }
    let frame_len = |entries: Vec<(Bytes, _)>| {
        let mut out = Vec::new();
        let msg = PeerMsg::GeoBatch {
            // A node's life is named by the wall-clock millisecond it started.
            session: 1_800_000_000_000,
            acked_seq: 1 << 20,
            first_seq: 1 << 20,
            next_seq: (1 << 20) + 100,
            entries,
        };
        frame::encode_into(&msg, &mut out, usize::MAX).unwrap();
        out.len()
    };
    let key = Bytes::from("profile:42");
    let single: usize = deltas
        .iter()
        .map(|d| frame_len(vec![(key.clone(), d.clone())]))
        .sum::<usize>()
        / deltas.len();
    // Batches of 100 different keys' updates (a node joins same-key deltas, so
    // use distinct keys to measure the per-update cost honestly).
    let mut batched = 0;
    for chunk in deltas.chunks(100) {
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(i, d)| (Bytes::from(format!("profile:{i:02}").as_str()), d.clone()))
            .collect();
        batched += frame_len(entries);
    }
    let batched = batched as f64 / deltas.len() as f64;
    let n = deltas.len() as f64;
    let (dot_seq, superseded_seq) = (dot_seq_bytes as f64 / n, superseded_seq_bytes as f64 / n);
    let own = ("field:000000".len() + 16 + 8 /* HLC */ + 4/* replica */) as f64 + dot_seq;
    println!("map fields                        {fields}");
    println!("map full encoded size             {full} bytes");
    println!(
        "field's own bytes                 {own:.1} bytes (name 12 + value 16 + HLC 8 + replica 4 + seq {dot_seq:.1})"
    );
    let own_ctx = own + 4.0 + superseded_seq;
    println!(
        "  with the superseded entry's dot  {own_ctx:.1} bytes (replica 4 + seq {superseded_seq:.1})"
    );
    println!(
        "frame bytes per update, alone     {single} bytes ({:.2}x own, {:.2}x with the superseded dot)",
        single as f64 / own,
        single as f64 / own_ctx
    );
    println!(
        "frame bytes per update, batched   {batched:.1} bytes ({:.2}x own, {:.2}x with the superseded dot)",
        batched / own,
        batched / own_ctx
    );
}

/// Bytes of `n` as a postcard varint.
fn varint_len(n: u64) -> usize {
    (64 - n.max(1).leading_zeros() as usize).div_ceil(7)
}
