//! Scans of a region's keys, like Redis's `SCAN`: every node of the
//! region is asked for a page of its own keys from one position of the
//! key-hash order, and the pages are merged into one.

use std::collections::BTreeSet;

use crdt_types::{Bytes, Kind};

use super::{unexpected, Client, ClientError};
use crate::keyhash::key_hash;
use crate::keyspace::{KeyPage, KeyspaceError};
use crate::node::SCAN_PATTERN_BYTES_MAX;
use crate::protocol::{Command, Reply};

/// Hashes each node looks at for one page unless told otherwise (Redis's
/// `SCAN` default `COUNT`).
pub const SCAN_COUNT_DEFAULT: u32 = 10;

/// What a keyspace scan lists: keys matching a glob `pattern` (Redis's
/// `MATCH`: `*`, `?`, `[a-z]`, `[^a]`, `\` escapes), of type `kind`
/// (Redis's `TYPE`), about `count` per page (Redis's `COUNT`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanOptions {
    /// Only keys matching this glob; every key when `None`.
    pub pattern: Option<Bytes>,
    /// Only keys of this type; every type when `None`.
    pub kind: Option<Kind>,
    /// How many key hashes each node looks at for a page: at least one,
    /// at most [`SCAN_HASHES_MAX`](crate::node::SCAN_HASHES_MAX) (a node
    /// looks at no more, and at fewer when long keys, with or without a
    /// long pattern, or an answer's size limit stop it first). The page
    /// merges the nodes' keys up to where the first of them stopped, so
    /// before `pattern` and `kind` take their share it holds at least
    /// `count` keys while that many are left (up to about `count` × nodes
    /// / N where few keys share each stretch of the ring); keys expired or
    /// deleted are looked at too, so a page may hold fewer, or none,
    /// before the scan is over.
    pub count: u32,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            pattern: None,
            kind: None,
            count: SCAN_COUNT_DEFAULT,
        }
    }
}

impl ScanOptions {
    /// Keys matching the glob `pattern`.
    pub fn matching(pattern: impl Into<Bytes>) -> Self {
        ScanOptions {
            pattern: Some(pattern.into()),
            ..ScanOptions::default()
        }
    }
}

/// Refuses a `MATCH` pattern longer than nodes take, before it is sent,
/// with the error a node would give.
pub(crate) fn check_pattern(pattern: Option<&Bytes>) -> Result<(), ClientError> {
    match pattern {
        Some(p) if p.len() > SCAN_PATTERN_BYTES_MAX => {
            let e = KeyspaceError::PatternTooLong {
                len: p.len(),
                max: SCAN_PATTERN_BYTES_MAX,
            };
            Err(ClientError::BadRequest(e.to_string()))
        }
        _ => Ok(()),
    }
}

/// Merges the pages of several nodes, each from the same position: the
/// keys up to where the node that stopped first stopped (the others
/// looked at every hash up to there too), each once, in key-hash order;
/// and where the next page starts (0: the scan is over).
pub(crate) fn merge(pages: Vec<KeyPage>) -> KeyPage {
    // A node whose page is its last looked at every hash it holds.
    let frontier = pages.iter().map(|p| p.next).filter(|n| *n != 0).min();
    let keys: BTreeSet<(u64, Bytes)> = pages
        .into_iter()
        .flat_map(|p| p.keys)
        .map(|k| (key_hash(&k), k))
        .filter(|(h, _)| frontier.is_none_or(|f| *h < f))
        .collect();
    KeyPage {
        keys: keys.into_iter().map(|(_, k)| k).collect(),
        next: frontier.unwrap_or(0),
    }
}

impl Client {
    /// One page of a scan of the keys of the client's region, like Redis's
    /// `SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]`: start with
    /// cursor 0 and pass each page's [`KeyPage::next`] to the next call,
    /// until it is 0. The keys come in key-hash order.
    ///
    /// Every node of the region in the client's topology is asked, and
    /// their pages merged, so a key is listed once whichever replicas hold
    /// it. A key that exists for the whole scan is listed, provided a node
    /// holding it answers: the scan goes on without up to N − 1 nodes that
    /// do not answer, since a key on all its N replicas has one among the
    /// others (a write at `one` that has yet to reach the others, or a key
    /// a membership change is moving, may be missed while a node is down),
    /// and fails with [`ClientError::Unavailable`] naming them when more
    /// are missing. A key written or deleted during the scan may or may
    /// not be listed, and so may a key deleted just before it while a
    /// replica has yet to apply the deletion. A pattern longer than
    /// [`SCAN_PATTERN_BYTES_MAX`]
    /// bytes, or a count of 0, is [`ClientError::BadRequest`].
    ///
    /// ```no_run
    /// # async fn run(client: meridian::client::Client) -> Result<(), meridian::client::ClientError> {
    /// use meridian::client::ScanOptions;
    /// let options = ScanOptions::matching("user:*");
    /// let mut cursor = 0;
    /// loop {
    ///     let page = client.scan_page(cursor, &options).await?;
    ///     for key in &page.keys {
    ///         println!("{}", String::from_utf8_lossy(key));
    ///     }
    ///     if page.next == 0 {
    ///         break;
    ///     }
    ///     cursor = page.next;
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn scan_page(
        &self,
        cursor: u64,
        options: &ScanOptions,
    ) -> Result<KeyPage, ClientError> {
        if options.count == 0 {
            return Err(ClientError::BadRequest(
                "a scan's count is at least one".into(),
            ));
        }
        check_pattern(options.pattern.as_ref())?;
        let (nodes, replicas) = {
            let ring = self.inner.ring();
            let nodes: Vec<String> = ring
                .topology
                .nodes_in(&self.inner.region)
                .unwrap_or_default()
                .iter()
                .map(|n| n.id.clone())
                .collect();
            (nodes, ring.topology.replication_factor())
        };
        if nodes.is_empty() {
            return Err(ClientError::Unavailable(format!(
                "the topology has no nodes in region {:?}",
                self.inner.region
            )));
        }
        let mut unanswered: BTreeSet<String> = nodes.iter().cloned().collect();
        let mut asking = tokio::task::JoinSet::new();
        for id in nodes {
            let client = self.clone();
            let command = Command::Scan {
                from: cursor,
                count: options.count,
                pattern: options.pattern.clone(),
                kind: options.kind,
            };
            asking.spawn(async move {
                let answer = client.execute_on_if_up(&id, command).await;
                (id, answer)
            });
        }
        let mut pages = Vec::new();
        let mut missing: Vec<(String, ClientError)> = Vec::new();
        while let Some(joined) = asking.join_next().await {
            let Ok((id, answer)) = joined else { continue };
            unanswered.remove(&id);
            match answer.map(|a| a.reply) {
                Ok(Reply::Keys(page)) => pages.push(page),
                Ok(other) => missing.push((id, unexpected(other, "SCAN"))),
                Err(e) => missing.push((id, e)),
            }
        }
        // A task that did not finish (it panicked) asked nothing.
        for id in unanswered {
            let reason = ClientError::Unavailable("the request did not finish".into());
            missing.push((id, reason));
        }
        if !missing.is_empty() && (missing.len() >= replicas || pages.is_empty()) {
            missing.sort_by(|a, b| a.0.cmp(&b.0));
            let named: Vec<String> = missing
                .iter()
                .map(|(id, e)| format!("{id} ({e})"))
                .collect();
            return Err(ClientError::Unavailable(format!(
                "a scan needs all but {} of the region's nodes, and {} did not answer: {}",
                replicas - 1,
                missing.len(),
                named.join(", ")
            )));
        }
        Ok(merge(pages))
    }

    /// A scan of the keys of the client's region, a page at a time (see
    /// [`Client::scan_page`]).
    ///
    /// ```no_run
    /// # async fn run(client: meridian::client::Client) -> Result<(), meridian::client::ClientError> {
    /// use meridian::client::{Kind, ScanOptions};
    /// let counters = ScanOptions { kind: Some(Kind::Counter), ..ScanOptions::default() };
    /// let keys = client.scan_keys(counters).collect().await?;
    /// println!("{} counters", keys.len());
    /// # Ok(())
    /// # }
    /// ```
    pub fn scan_keys(&self, options: ScanOptions) -> KeyScan {
        KeyScan {
            client: self.clone(),
            options,
            cursor: 0,
            done: false,
        }
    }
}

/// A scan of a region's keys ([`Client::scan_keys`]).
#[derive(Debug)]
pub struct KeyScan {
    client: Client,
    options: ScanOptions,
    cursor: u64,
    done: bool,
}

impl KeyScan {
    /// Where the next page starts (the cursor of Redis's `SCAN`); 0 before
    /// the first page and after the last.
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// The next page's keys (maybe none, as in Redis), or `None` once the
    /// scan is over. After an error the same page may be asked again.
    pub async fn next_page(&mut self) -> Result<Option<Vec<Bytes>>, ClientError> {
        if self.done {
            return Ok(None);
        }
        let page = self.client.scan_page(self.cursor, &self.options).await?;
        self.cursor = page.next;
        self.done = page.next == 0;
        Ok(Some(page.keys))
    }

    /// Every key left, in key-hash order.
    pub async fn collect(mut self) -> Result<Vec<Bytes>, ClientError> {
        let mut keys = Vec::new();
        while let Some(page) = self.next_page().await? {
            keys.extend(page);
        }
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(keys: &[&str], next: u64) -> KeyPage {
        KeyPage {
            keys: keys.iter().map(|k| Bytes::from(*k)).collect(),
            next,
        }
    }

    fn hashed(keys: &[&str]) -> Vec<Bytes> {
        let mut keys: Vec<Bytes> = keys.iter().map(|k| Bytes::from(*k)).collect();
        keys.sort_by_key(|k| (key_hash(k), k.clone()));
        keys
    }

    #[test]
    fn merged_pages_stop_where_the_first_node_stopped_and_list_each_key_once() {
        let mut by_hash = hashed(&["a", "b", "c", "d", "e", "f"]);
        let names: Vec<String> = by_hash
            .iter()
            .map(|k| String::from_utf8(k.to_vec()).unwrap())
            .collect();
        let n: Vec<&str> = names.iter().map(String::as_str).collect();
        let h = |i: usize| key_hash(n[i].as_bytes());
        // One node stopped after the second key, one after the fourth, one
        // holds only a copy of the first and ran out.
        let merged = merge(vec![
            page(&[n[0], n[1]], h(1) + 1),
            page(&[n[1], n[2], n[3]], h(3) + 1),
            page(&[n[0]], 0),
        ]);
        by_hash.truncate(2);
        assert_eq!(
            merged,
            KeyPage {
                keys: by_hash,
                next: h(1) + 1
            }
        );
        // Every node ran out: the scan is over, with all their keys.
        let all = merge(vec![page(&[n[5], n[4]], 0), page(&[n[4]], 0)]);
        assert_eq!(
            all,
            KeyPage {
                keys: hashed(&[n[4], n[5]]),
                next: 0
            }
        );
        assert_eq!(
            merge(Vec::new()),
            KeyPage {
                keys: Vec::new(),
                next: 0
            }
        );
    }
}
