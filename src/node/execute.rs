//! Runs one client command against the local keyspace.

use crate::glob;
use crate::keyspace::{KeyPage, Keyspace, KeyspaceError, ScanBudget};
use crate::protocol::{Command, Reply};
use crdt_types::{Delta, Kind, Record};

/// The most key hashes a node looks at for one page of a scan, whatever
/// count was asked for: a page is work done in one turn of the node's
/// event loop, between other requests.
pub const SCAN_HASHES_MAX: u32 = 1_000;

/// The longest `MATCH` pattern a scan (`scan`, `sscan`, `hscan`) takes, in
/// bytes.
pub const SCAN_PATTERN_BYTES_MAX: usize = 256;

/// Steps of pattern matching one page of a scan may take: each byte of
/// each key (or set member, or map field) looked at costs a step per token
/// of the pattern (and one without a pattern), so a long pattern against
/// long keys makes short pages rather than a long turn of the event loop.
/// A page looks at one key, member or field whatever it costs, so it
/// makes progress: a page of `sscan`/`hscan` whose first member is a
/// value as large as the topology allows may take that length times the
/// pattern's tokens; a page of `scan` stops once past the budget, so it
/// may take one key's worth more (16 KiB × 257, about 4 million steps).
const SCAN_MATCH_STEPS_MAX: usize = 1_000_000;

/// `pattern` compiled, or refused when over [`SCAN_PATTERN_BYTES_MAX`].
fn checked_pattern(pattern: &[u8]) -> Result<glob::Pattern, KeyspaceError> {
    if pattern.len() > SCAN_PATTERN_BYTES_MAX {
        return Err(KeyspaceError::PatternTooLong {
            len: pattern.len(),
            max: SCAN_PATTERN_BYTES_MAX,
        });
    }
    Ok(glob::Pattern::new(pattern))
}

/// A page of `ks`'s keys from hash `from` (`Command::Scan`): those of
/// type `kind` (any when `None`) that match the glob `pattern` (any when
/// `None`), looking at `count` hashes (at most [`SCAN_HASHES_MAX`]), in an
/// answer no larger than a key's value may be. A pattern over
/// [`SCAN_PATTERN_BYTES_MAX`] is refused.
pub(crate) fn scan(
    ks: &Keyspace,
    from: u64,
    count: u32,
    pattern: Option<&[u8]>,
    kind: Option<Kind>,
    now_ms: u64,
) -> Result<KeyPage, KeyspaceError> {
    let pattern = pattern
        .map(checked_pattern)
        .transpose()?
        .filter(|p| !p.matches_everything());
    let steps_per_byte = pattern.as_ref().map_or(1, |p| p.tokens() + 1);
    let budget = ScanBudget {
        hashes: count.min(SCAN_HASHES_MAX) as usize,
        answer_bytes: ks.config().key_value_bytes_max,
        key_bytes: SCAN_MATCH_STEPS_MAX / steps_per_byte,
    };
    Ok(ks.scan_keys(from, budget, now_ms, |key, found| {
        kind.is_none_or(|k| k == found) && pattern.as_ref().is_none_or(|p| p.matches(key))
    }))
}

/// Executes `command` on `ks` at `now_ms`: the reply, and the delta to
/// replicate when the command wrote something.
pub(crate) fn execute(
    ks: &mut Keyspace,
    command: &Command,
    now_ms: u64,
) -> Result<(Reply, Option<Delta<Record>>), KeyspaceError> {
    use Command::*;
    let read = |r: Reply| Ok((r, None));
    let int = |n: usize| Reply::Int(i64::try_from(n).unwrap_or(i64::MAX));
    match command {
        Ping => read(Reply::Pong),
        // Answered by the node itself, which knows more than the keyspace.
        Status | ReloadTopology | Topology => read(Reply::Ok),
        Scan {
            from,
            count,
            pattern,
            kind,
        } => read(Reply::Keys(scan(
            ks,
            *from,
            *count,
            pattern.as_deref(),
            *kind,
            now_ms,
        )?)),
        Get { key } => read(ks.get(key, now_ms)?.map_or(Reply::Nil, Reply::Value)),
        CounterGet { key } => read(ks.counter(key, now_ms)?.map_or(Reply::Nil, Reply::Int)),
        SMembers { key } => read(Reply::Values(ks.smembers(key, now_ms)?)),
        SIsMember { key, member } => read(Reply::Bool(ks.sismember(key, member, now_ms)?)),
        SCard { key } => read(int(ks.scard(key, now_ms)?)),
        HGet { key, field } => read(
            ks.hget(key, field, now_ms)?
                .map_or(Reply::Nil, Reply::Value),
        ),
        HGetAll { key } => read(Reply::Fields(ks.hgetall(key, now_ms)?)),
        HLen { key } => read(int(ks.hlen(key, now_ms)?)),
        SScan { key, after, count } => read(Reply::SetPage(ks.sscan(
            key,
            after.as_deref(),
            *count as usize,
            now_ms,
        )?)),
        SScanMatch {
            key,
            after,
            count,
            pattern,
        } => {
            let pattern = checked_pattern(pattern)?;
            read(Reply::SetMatches(ks.sscan_matching(
                key,
                after.as_deref(),
                *count as usize,
                &pattern,
                SCAN_MATCH_STEPS_MAX,
                now_ms,
            )?))
        }
        HScanMatch {
            key,
            after,
            count,
            pattern,
        } => {
            let pattern = checked_pattern(pattern)?;
            read(Reply::MapMatches(ks.hscan_matching(
                key,
                after.as_deref(),
                *count as usize,
                &pattern,
                SCAN_MATCH_STEPS_MAX,
                now_ms,
            )?))
        }
        HScan { key, after, count } => read(Reply::MapPage(ks.hscan(
            key,
            after.as_deref(),
            *count as usize,
            now_ms,
        )?)),
        MapGet { key, path } => read(Reply::Field(ks.map_field(key, path, now_ms)?)),
        MvGet { key } => read(Reply::Values(ks.mvget(key, now_ms)?)),
        Ttl { key } => read(Reply::Ttl(ks.ttl(key, now_ms))),
        Type { key } => read(Reply::Type(ks.type_of(key, now_ms))),
        Set { key, value, ttl_ms } => {
            let deadline = ttl_ms.map(|t| now_ms.saturating_add(t));
            let w = ks.set(key, value.clone(), deadline, now_ms)?;
            Ok((Reply::Ok, w.delta))
        }
        Del { key } => {
            let w = ks.del(key, now_ms)?;
            Ok((Reply::Int(i64::from(w.reply)), w.delta))
        }
        IncrBy { key, by } => {
            let w = ks.incr_by(key, *by, now_ms)?;
            Ok((Reply::Int(w.reply), w.delta))
        }
        SAdd { key, members } => {
            let w = ks.sadd(key, members, now_ms)?;
            Ok((int(w.reply), w.delta))
        }
        SRem { key, members } => {
            let w = ks.srem(key, members, now_ms)?;
            Ok((int(w.reply), w.delta))
        }
        HSet { key, field, value } => {
            let w = ks.hset(key, field, value.clone(), now_ms)?;
            Ok((Reply::Int(i64::from(w.reply)), w.delta))
        }
        HDel { key, fields } => {
            let w = ks.hdel(key, fields, now_ms)?;
            Ok((int(w.reply), w.delta))
        }
        HIncrBy { key, field, by } => {
            let w = ks.hincrby(key, field, *by, now_ms)?;
            Ok((Reply::Int(w.reply), w.delta))
        }
        MapApply { key, path, op } => {
            let w = ks.map_apply(key, path, op.clone(), now_ms)?;
            Ok((w.reply.map_or(Reply::Ok, Reply::Int), w.delta))
        }
        MvSet { key, value } => {
            let w = ks.mvset(key, value.clone(), now_ms)?;
            Ok((Reply::Ok, w.delta))
        }
        Expire { key, ttl_ms } => {
            let w = ks.expire_at(key, now_ms.saturating_add(*ttl_ms), now_ms)?;
            Ok((Reply::Int(i64::from(w.reply)), w.delta))
        }
        Persist { key } => {
            let w = ks.persist(key, now_ms)?;
            Ok((Reply::Int(i64::from(w.reply)), w.delta))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyspace::KeyspaceConfig;
    use crdt_types::{Bytes, ReplicaId};

    const NOW: u64 = 1_800_000_000_000;

    fn page(
        ks: &mut Keyspace,
        from: u64,
        count: u32,
        pattern: Option<&str>,
        kind: Option<Kind>,
    ) -> KeyPage {
        let command = Command::Scan {
            from,
            count,
            pattern: pattern.map(Into::into),
            kind,
        };
        match execute(ks, &command, NOW) {
            Ok((Reply::Keys(page), None)) => page,
            other => panic!("{other:?}"),
        }
    }

    /// Every page, cursor to cursor.
    fn all(ks: &mut Keyspace, pattern: Option<&str>, kind: Option<Kind>) -> Vec<Bytes> {
        let (mut keys, mut from) = (Vec::new(), 0);
        loop {
            let p = page(ks, from, SCAN_HASHES_MAX, pattern, kind);
            keys.extend(p.keys);
            if p.next == 0 {
                return keys;
            }
            from = p.next;
        }
    }

    #[test]
    fn a_scan_page_filters_by_pattern_and_type_and_looks_at_a_bounded_number_of_keys() {
        let mut ks = Keyspace::new(ReplicaId(1), KeyspaceConfig::default());
        let keys = SCAN_HASHES_MAX as usize + 500;
        for i in 0..keys {
            ks.set(format!("user:{i}").as_bytes(), "v".into(), None, NOW)
                .unwrap();
        }
        ks.incr_by(b"hits", 1, NOW).unwrap();
        // However many are asked for, one page looks at no more than the cap.
        let huge = page(&mut ks, 0, u32::MAX, None, None);
        assert_eq!(huge.keys.len(), SCAN_HASHES_MAX as usize);
        assert_ne!(huge.next, 0);
        // Every key filtered out: an empty page that still moves on.
        let none = page(&mut ks, 0, 100, Some("nothing*"), None);
        assert!(none.keys.is_empty());
        assert_ne!(none.next, 0);
        assert_eq!(all(&mut ks, Some("*"), Some(Kind::Counter)), ["hits"]);
        assert_eq!(all(&mut ks, Some("h?ts"), None), ["hits"]);
        assert_eq!(
            all(&mut ks, Some("user:10?"), Some(Kind::Register)).len(),
            10
        );
        assert_eq!(all(&mut ks, None, None).len(), keys + 1);
        // A pattern over the limit is refused; one at it is taken.
        let long = |len: usize| Command::Scan {
            from: 0,
            count: 1,
            pattern: Some(vec![b'*'; len].into()),
            kind: None,
        };
        assert_eq!(
            execute(&mut ks, &long(SCAN_PATTERN_BYTES_MAX + 1), NOW),
            Err(KeyspaceError::PatternTooLong {
                len: SCAN_PATTERN_BYTES_MAX + 1,
                max: SCAN_PATTERN_BYTES_MAX
            })
        );
        assert!(execute(&mut ks, &long(SCAN_PATTERN_BYTES_MAX), NOW).is_ok());
    }

    #[test]
    fn a_long_pattern_against_long_keys_makes_short_pages() {
        let mut ks = Keyspace::new(ReplicaId(1), KeyspaceConfig::default());
        for i in 0..2_000 {
            let key = format!("{i:05}{}", "x".repeat(4_000));
            ks.set(key.as_bytes(), "v".into(), None, NOW).unwrap();
        }
        // 256 tokens a byte, 4 KB a key: about one key per page.
        let pattern = "?".repeat(SCAN_PATTERN_BYTES_MAX);
        let page = page(&mut ks, 0, SCAN_HASHES_MAX, Some(&pattern), None);
        assert!(page.keys.is_empty(), "no key is that short");
        assert_ne!(page.next, 0);
        let looked = all(&mut ks, None, None)
            .iter()
            .filter(|k| crate::keyhash::key_hash(k) < page.next)
            .count();
        assert!(
            (1..=2).contains(&looked),
            "{looked} keys looked at in one page"
        );
    }
}
