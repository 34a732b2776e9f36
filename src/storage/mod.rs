//! Optional persistence (`--data-dir`): a checksummed append-only log of
//! every change a node applies, plus periodic snapshots.
//!
//! The node (sans-IO) emits `Action::Persist` for each change before the
//! replies and acknowledgements that depend on it; the driver appends those
//! records, syncs the log once per batch (group commit), and only then sends
//! anything. So every write a node acknowledged, and every dot it ever sent
//! to a peer, is on disk.
//!
//! Record format (log and snapshot alike): `len: u32 LE | xxh3-64 of the
//! payload: u64 LE | payload` (postcard of [`Entry`]). On open, the log is
//! read up to the first record that is incomplete or fails its checksum;
//! that torn or corrupt tail is cut off the file with a warning naming the
//! offset and the bytes dropped — never applied. A snapshot is written to a
//! temporary file, synced and renamed, then the log starts afresh; replaying
//! a log over the snapshot it follows is harmless (joins are idempotent).

use crdt_types::{Bytes, Causal, Delta, Record};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Header of a record: length and checksum.
const HEADER_LEN: usize = 12;
/// Largest record accepted when reading (a larger length is corruption).
pub const RECORD_BYTES_MAX: usize = 256 << 20;
const SNAPSHOT_MAGIC: &[u8; 8] = b"MRDNSNP1";
const LOG_FILE: &str = "deltas.log";
const SNAPSHOT_FILE: &str = "snapshot";
const INCARNATION_FILE: &str = "incarnation";

/// One change to one key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Entry {
    /// A delta joined into the key.
    Delta {
        /// The key.
        key: Bytes,
        /// The delta.
        delta: Delta<Record>,
    },
    /// A whole state joined into the key.
    State {
        /// The key.
        key: Bytes,
        /// The state.
        state: Causal<Record>,
    },
}

/// Failures of the storage layer. Each names the file.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The snapshot is damaged (snapshots are written atomically, so this is
    /// damage after the fact; the node refuses to start rather than lose data).
    #[error("{path}: damaged snapshot: {reason}")]
    CorruptSnapshot {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// What a data directory held.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Every key's state: the snapshot joined with the log.
    pub states: HashMap<Bytes, Causal<Record>>,
    /// The node life number kept in the directory.
    pub incarnation: u32,
    /// Log records replayed.
    pub log_records: u64,
    /// Bytes cut from a torn or corrupt log tail.
    pub cut_bytes: u64,
}

/// An open data directory.
pub struct Storage {
    dir: PathBuf,
    log: BufWriter<File>,
    log_bytes: u64,
    snapshot_after_bytes: u64,
    buf: Vec<u8>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StorageError + '_ {
    move |source| StorageError::Io {
        path: path.to_owned(),
        source,
    }
}

fn put_record(out: &mut Vec<u8>, entry: &Entry) {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER_LEN]);
    // Encoding our own types into memory cannot fail.
    let payload =
        postcard::to_extend(entry, std::mem::take(out)).expect("encoding a log entry cannot fail");
    *out = payload;
    let len = (out.len() - start - HEADER_LEN) as u32;
    let sum = xxhash_rust::xxh3::xxh3_64(&out[start + HEADER_LEN..]);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + HEADER_LEN].copy_from_slice(&sum.to_le_bytes());
}

/// Reads records from `bytes` until the end or the first bad one; returns
/// the entries and the length of the good prefix.
fn read_records(bytes: &[u8]) -> (Vec<Entry>, usize) {
    let mut entries = Vec::new();
    let mut pos = 0;
    while let Some(header) = bytes.get(pos..pos + HEADER_LEN) {
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let sum = u64::from_le_bytes(header[4..12].try_into().unwrap_or([0; 8]));
        if len > RECORD_BYTES_MAX {
            break;
        }
        let Some(payload) = bytes.get(pos + HEADER_LEN..pos + HEADER_LEN + len) else {
            break;
        };
        if xxhash_rust::xxh3::xxh3_64(payload) != sum {
            break;
        }
        let Ok(entry) = postcard::from_bytes::<Entry>(payload) else {
            break;
        };
        entries.push(entry);
        pos += HEADER_LEN + len;
    }
    (entries, pos)
}

fn apply(states: &mut HashMap<Bytes, Causal<Record>>, entry: Entry) {
    match entry {
        Entry::Delta { key, delta } => states.entry(key).or_default().apply(&delta),
        Entry::State { key, state } => states.entry(key).or_default().join(&state),
    }
}

impl Storage {
    /// Opens (creating if needed) a data directory and recovers what it
    /// holds. A torn or corrupt log tail is cut and reported in
    /// [`Recovered::cut_bytes`] (and logged).
    pub fn open(dir: &Path, new_incarnation: u32) -> Result<(Storage, Recovered), StorageError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let mut recovered = Recovered::default();

        let inc_path = dir.join(INCARNATION_FILE);
        recovered.incarnation = match std::fs::read_to_string(&inc_path) {
            Ok(text) => text.trim().parse().unwrap_or(new_incarnation),
            Err(_) => {
                std::fs::write(&inc_path, new_incarnation.to_string()).map_err(io(&inc_path))?;
                new_incarnation
            }
        };

        let snap_path = dir.join(SNAPSHOT_FILE);
        match std::fs::read(&snap_path) {
            Ok(bytes) => {
                let corrupt = |reason: &str| StorageError::CorruptSnapshot {
                    path: snap_path.clone(),
                    reason: reason.into(),
                };
                if bytes.len() < SNAPSHOT_MAGIC.len() + 8 || &bytes[..8] != SNAPSHOT_MAGIC {
                    return Err(corrupt("bad header"));
                }
                let count = u64::from_le_bytes(bytes[8..16].try_into().unwrap_or([0; 8]));
                let (entries, used) = read_records(&bytes[16..]);
                if entries.len() as u64 != count || used != bytes.len() - 16 {
                    return Err(corrupt(&format!(
                        "{} of {count} records readable",
                        entries.len()
                    )));
                }
                for e in entries {
                    apply(&mut recovered.states, e);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&snap_path)(e)),
        }

        let log_path = dir.join(LOG_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&log_path)
            .map_err(io(&log_path))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io(&log_path))?;
        let (entries, good) = read_records(&bytes);
        recovered.log_records = entries.len() as u64;
        for e in entries {
            apply(&mut recovered.states, e);
        }
        if good < bytes.len() {
            recovered.cut_bytes = (bytes.len() - good) as u64;
            tracing::warn!(
                file = %log_path.display(),
                offset = good,
                bytes = recovered.cut_bytes,
                "cut a torn or corrupt tail off the delta log; records after the offset were never acknowledged"
            );
            file.set_len(good as u64).map_err(io(&log_path))?;
            file.sync_all().map_err(io(&log_path))?;
        }
        file.seek(SeekFrom::End(0)).map_err(io(&log_path))?;
        let storage = Storage {
            dir: dir.to_owned(),
            log: BufWriter::with_capacity(1 << 20, file),
            log_bytes: good as u64,
            snapshot_after_bytes: 256 << 20,
            buf: Vec::new(),
        };
        Ok((storage, recovered))
    }

    /// Snapshot once the log has grown past `bytes`.
    pub fn set_snapshot_after_bytes(&mut self, bytes: u64) {
        self.snapshot_after_bytes = bytes;
    }

    /// Appends one change (buffered until [`Storage::sync`]).
    pub fn append(&mut self, entry: &Entry) -> Result<(), StorageError> {
        self.buf.clear();
        put_record(&mut self.buf, entry);
        self.log_bytes += self.buf.len() as u64;
        let path = self.dir.join(LOG_FILE);
        self.log.write_all(&self.buf).map_err(io(&path))
    }

    /// Makes every appended change durable.
    pub fn sync(&mut self) -> Result<(), StorageError> {
        let path = self.dir.join(LOG_FILE);
        self.log.flush().map_err(io(&path))?;
        self.log.get_ref().sync_data().map_err(io(&path))
    }

    /// Whether the log has grown enough to snapshot.
    pub fn wants_snapshot(&self) -> bool {
        self.log_bytes >= self.snapshot_after_bytes
    }

    /// Writes a snapshot of `states` (each key's, taken over) and starts a
    /// new log.
    pub fn snapshot(
        &mut self,
        states: impl Iterator<Item = (Bytes, Causal<Record>)>,
    ) -> Result<(), StorageError> {
        self.sync()?;
        let tmp = self.dir.join("snapshot.tmp");
        let mut body = Vec::new();
        let mut count = 0u64;
        for (key, state) in states {
            put_record(&mut body, &Entry::State { key, state });
            count += 1;
        }
        let mut file = File::create(&tmp).map_err(io(&tmp))?;
        file.write_all(SNAPSHOT_MAGIC).map_err(io(&tmp))?;
        file.write_all(&count.to_le_bytes()).map_err(io(&tmp))?;
        file.write_all(&body).map_err(io(&tmp))?;
        file.sync_all().map_err(io(&tmp))?;
        let snap = self.dir.join(SNAPSHOT_FILE);
        std::fs::rename(&tmp, &snap).map_err(io(&snap))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io(&self.dir))?;
        let log_path = self.dir.join(LOG_FILE);
        let log = self.log.get_mut();
        log.set_len(0).map_err(io(&log_path))?;
        log.seek(SeekFrom::Start(0)).map_err(io(&log_path))?;
        log.sync_all().map_err(io(&log_path))?;
        self.log_bytes = 0;
        Ok(())
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests;
