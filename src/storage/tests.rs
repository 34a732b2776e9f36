use super::*;
use crate::keyspace::{Keyspace, KeyspaceConfig};
use crdt_types::ReplicaId;

const NOW: u64 = 1_800_000_000_000;

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("meridian-storage-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Makes `n` writes and returns their log entries and the resulting keyspace.
fn writes(n: usize) -> (Vec<Entry>, Keyspace) {
    let mut ks = Keyspace::new(ReplicaId(7), KeyspaceConfig::default());
    let mut out = Vec::new();
    for i in 0..n {
        let key = format!("k{}", i % 13);
        let w = ks.incr_by(key.as_bytes(), i as i64, NOW).unwrap();
        out.push(Entry::Delta {
            key: Bytes::from(key.as_str()),
            delta: w.delta.unwrap(),
        });
    }
    (out, ks)
}

fn assert_matches(recovered: &Recovered, ks: &Keyspace) {
    assert_eq!(recovered.states.len(), ks.len());
    for (key, state) in &recovered.states {
        assert_eq!(Some(state), ks.state(key).as_ref(), "{key:?}");
    }
}

#[test]
fn every_synced_change_is_recovered() {
    let dir = tempdir("recover");
    let (entries, ks) = writes(200);
    let (mut st, rec) = Storage::open(&dir, 5).unwrap();
    assert!(rec.states.is_empty());
    for e in &entries {
        st.append(e).unwrap();
    }
    st.sync().unwrap();
    drop(st);
    let (_, rec) = Storage::open(&dir, 9).unwrap();
    assert_eq!(rec.incarnation, 5, "the directory keeps its node life");
    assert_eq!(rec.log_records, 200);
    assert_eq!(rec.cut_bytes, 0);
    assert_matches(&rec, &ks);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn torn_tail_is_cut_and_never_applied() {
    let dir = tempdir("torn");
    let (entries, _) = writes(50);
    let (mut st, _) = Storage::open(&dir, 1).unwrap();
    for e in &entries[..49] {
        st.append(e).unwrap();
    }
    st.sync().unwrap();
    let good_len = std::fs::metadata(dir.join(LOG_FILE)).unwrap().len();
    st.append(&entries[49]).unwrap();
    st.sync().unwrap();
    drop(st);
    // A crash in the middle of the last write: only part of it reached the disk.
    let full = std::fs::read(dir.join(LOG_FILE)).unwrap();
    std::fs::write(dir.join(LOG_FILE), &full[..full.len() - 5]).unwrap();
    let (mut st, rec) = Storage::open(&dir, 1).unwrap();
    assert_eq!(rec.log_records, 49);
    assert_eq!(rec.cut_bytes, full.len() as u64 - 5 - good_len);
    assert_eq!(
        std::fs::metadata(dir.join(LOG_FILE)).unwrap().len(),
        good_len,
        "the tail is cut off the file"
    );
    let (_, expected) = {
        let mut ks = Keyspace::new(ReplicaId(7), KeyspaceConfig::default());
        for e in &entries[..49] {
            if let Entry::Delta { key, delta } = e {
                ks.apply_delta(key, delta, NOW).unwrap();
            }
        }
        ((), ks)
    };
    assert_matches(&rec, &expected);
    // The log goes on after the cut.
    st.append(&entries[49]).unwrap();
    st.sync().unwrap();
    drop(st);
    let (_, rec) = Storage::open(&dir, 1).unwrap();
    assert_eq!((rec.log_records, rec.cut_bytes), (50, 0));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn corrupt_record_stops_replay_at_its_offset() {
    let dir = tempdir("corrupt");
    let (entries, _) = writes(30);
    let (mut st, _) = Storage::open(&dir, 1).unwrap();
    let mut offsets = Vec::new();
    for e in &entries {
        offsets.push(st.log_bytes);
        st.append(e).unwrap();
    }
    st.sync().unwrap();
    drop(st);
    let mut bytes = std::fs::read(dir.join(LOG_FILE)).unwrap();
    let victim = offsets[20] as usize + HEADER_LEN + 3;
    bytes[victim] ^= 0x40;
    std::fs::write(dir.join(LOG_FILE), &bytes).unwrap();
    let (_, rec) = Storage::open(&dir, 1).unwrap();
    assert_eq!(rec.log_records, 20);
    assert_eq!(rec.cut_bytes, bytes.len() as u64 - offsets[20]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn random_damage_never_panics_and_recovers_a_prefix() {
    let (entries, _) = writes(40);
    let mut clean = Vec::new();
    for e in &entries {
        put_record(&mut clean, e);
    }
    let mut x = 0x1234_5678_9abc_def0u64;
    for _ in 0..300 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let mut bytes = clean.clone();
        let at = (x as usize) % bytes.len();
        bytes[at] = (x >> 32) as u8;
        if x.is_multiple_of(3) {
            bytes.truncate(at);
        }
        let (got, used) = read_records(&bytes);
        assert!(used <= bytes.len());
        assert_eq!(
            &got[..],
            &entries[..got.len()],
            "a damaged log yields a clean prefix"
        );
    }
}

#[test]
fn snapshot_then_log_recovers_everything_and_restarts_the_log() {
    let dir = tempdir("snapshot");
    let (entries, ks) = writes(100);
    let (mut st, _) = Storage::open(&dir, 1).unwrap();
    for e in &entries[..60] {
        st.append(e).unwrap();
    }
    let mut half = Keyspace::new(ReplicaId(7), KeyspaceConfig::default());
    for e in &entries[..60] {
        if let Entry::Delta { key, delta } = e {
            half.apply_delta(key, delta, NOW).unwrap();
        }
    }
    let mut states = Vec::new();
    half.for_each_in_range(0..=u64::MAX, |k, s| {
        states.push((Bytes::from(k), s.clone()))
    });
    st.snapshot(states.into_iter()).unwrap();
    assert_eq!(std::fs::metadata(dir.join(LOG_FILE)).unwrap().len(), 0);
    for e in &entries[60..] {
        st.append(e).unwrap();
    }
    st.sync().unwrap();
    drop(st);
    let (_, rec) = Storage::open(&dir, 1).unwrap();
    assert_eq!(rec.log_records, 40);
    assert_matches(&rec, &ks);
    // A damaged snapshot is refused with a clear error, not silently dropped.
    let snap = dir.join(SNAPSHOT_FILE);
    let mut bytes = std::fs::read(&snap).unwrap();
    let n = bytes.len();
    bytes[n - 2] ^= 1;
    std::fs::write(&snap, &bytes).unwrap();
    let err = Storage::open(&dir, 1).err().unwrap();
    assert!(matches!(err, StorageError::CorruptSnapshot { .. }), "{err}");
    assert!(err.to_string().contains("snapshot"));
    std::fs::remove_dir_all(&dir).unwrap();
}
