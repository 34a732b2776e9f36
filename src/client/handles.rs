//! Typed handles: one per data type, each offering that type's operations
//! on one key. A handle is a client and a key; making one costs a clone.
//!
//! Using an operation of one type on a key of another fails with
//! [`ClientError::WrongType`], with one exception taken from Redis:
//! [`Register::get`] reads a counter in decimal.

use std::time::Duration;

use crdt_types::Bytes;

use super::error::TOO_LARGE_VALUE;
use super::{flag, ttl_ms, unexpected, Client, ClientError};
use crate::keyspace::{FieldOp, FieldValue, Page, PageItem};
use crate::protocol::{Command, Reply};

fn count(reply: Reply, command: &str) -> Result<usize, ClientError> {
    match reply {
        Reply::Int(n) => Ok(usize::try_from(n).unwrap_or(0)),
        other => Err(unexpected(other, command)),
    }
}

fn int(reply: Reply, command: &str) -> Result<i64, ClientError> {
    match reply {
        Reply::Int(n) => Ok(n),
        other => Err(unexpected(other, command)),
    }
}

fn done(reply: Reply, command: &str) -> Result<(), ClientError> {
    match reply {
        Reply::Ok => Ok(()),
        other => Err(unexpected(other, command)),
    }
}

fn value(reply: Reply, command: &str) -> Result<Option<Bytes>, ClientError> {
    match reply {
        Reply::Value(v) => Ok(Some(v)),
        Reply::Nil => Ok(None),
        other => Err(unexpected(other, command)),
    }
}

fn values(reply: Reply, command: &str) -> Result<Vec<Bytes>, ClientError> {
    match reply {
        Reply::Values(v) => Ok(v),
        Reply::Nil => Ok(Vec::new()),
        other => Err(unexpected(other, command)),
    }
}

/// Items per page when [`Set::members`] or [`Map::get_all`] reads a value
/// too large for one answer page by page (each page is also bounded by
/// the limit of a key's value).
const SCAN_PAGE_FALLBACK: usize = 10_000;

/// Whether `e` says a key's value is too large for one answer (and so is
/// to be read page by page).
pub(crate) fn too_large_to_answer(e: &ClientError) -> bool {
    matches!(e, ClientError::TooLarge { what, .. } if *what == TOO_LARGE_VALUE)
}

/// A page size for the wire: at least one, at most `u32::MAX`.
fn page_count(count: usize) -> Result<u32, ClientError> {
    if count == 0 {
        return Err(ClientError::BadRequest(
            "a page holds at least one item".into(),
        ));
    }
    Ok(u32::try_from(count).unwrap_or(u32::MAX))
}

fn sscan(key: Bytes, after: Option<Bytes>, count: u32, pattern: Option<Bytes>) -> Command {
    match pattern {
        None => Command::SScan { key, after, count },
        Some(pattern) => Command::SScanMatch {
            key,
            after,
            count,
            pattern,
        },
    }
}

fn hscan(key: Bytes, after: Option<Bytes>, count: u32, pattern: Option<Bytes>) -> Command {
    match pattern {
        None => Command::HScan { key, after, count },
        Some(pattern) => Command::HScanMatch {
            key,
            after,
            count,
            pattern,
        },
    }
}

fn set_page(reply: Reply) -> Result<Page<Bytes>, ClientError> {
    match reply {
        Reply::SetPage(page) => Ok(page),
        other => Err(unexpected(other, "SSCAN")),
    }
}

fn map_page(reply: Reply) -> Result<Page<(Bytes, FieldValue)>, ClientError> {
    match reply {
        Reply::MapPage(page) => Ok(page),
        other => Err(unexpected(other, "HSCAN")),
    }
}

/// A page's items and where the next starts (`None`: the scan is done).
type Stretch<T> = (Vec<T>, Option<Bytes>);

fn set_stretch(reply: Reply) -> Result<Stretch<Bytes>, ClientError> {
    match reply {
        Reply::SetMatches(m) => {
            let after = m.after().cloned();
            Ok((m.items, after))
        }
        other => set_page(other).map(|page| {
            let after = page.after().cloned();
            (page.items, after)
        }),
    }
}

fn map_stretch(reply: Reply) -> Result<Stretch<(Bytes, FieldValue)>, ClientError> {
    match reply {
        Reply::MapMatches(m) => {
            let after = m.after().cloned();
            Ok((m.items, after))
        }
        other => map_page(other).map(|page| {
            let after = page.after().cloned();
            (page.items, after)
        }),
    }
}

/// A scan through a set's members ([`Set::scan`], [`Set::scan_matching`])
/// or a map's fields ([`Map::scan`], [`Map::scan_matching`]), one request
/// per page.
#[derive(Debug)]
pub struct Scan<T> {
    client: Client,
    key: Bytes,
    page: usize,
    /// Only members or fields matching this glob.
    pattern: Option<Bytes>,
    /// Where the next page starts; `None` before the first.
    after: Option<Bytes>,
    done: bool,
    command: fn(Bytes, Option<Bytes>, u32, Option<Bytes>) -> Command,
    reply: fn(Reply) -> Result<Stretch<T>, ClientError>,
}

impl<T: PageItem> Scan<T> {
    fn new(
        client: Client,
        key: Bytes,
        page: usize,
        pattern: Option<Bytes>,
        command: fn(Bytes, Option<Bytes>, u32, Option<Bytes>) -> Command,
        reply: fn(Reply) -> Result<Stretch<T>, ClientError>,
    ) -> Self {
        Scan {
            client,
            key,
            page,
            pattern,
            after: None,
            done: false,
            command,
            reply,
        }
    }

    /// Where the next page starts (the last member or field looked at:
    /// the last item's, unless a pattern left it out), `None` before the
    /// first page and once the scan is done: with [`Set::scan_page`] or
    /// [`Map::scan_page`], a scan without a pattern can carry on later.
    pub fn after(&self) -> Option<&Bytes> {
        self.after.as_ref()
    }

    /// The next page, `None` once the scan is done. After an error, calling
    /// this again retries the same page. A scan with a pattern may give
    /// pages with no item before its last (as Redis's `SSCAN ... MATCH`).
    pub async fn next_page(&mut self) -> Result<Option<Vec<T>>, ClientError> {
        if self.done {
            return Ok(None);
        }
        let count = page_count(self.page)?;
        super::keys::check_pattern(self.pattern.as_ref())?;
        let command = (self.command)(
            self.key.clone(),
            self.after.clone(),
            count,
            self.pattern.clone(),
        );
        let (items, after) = (self.reply)(self.client.execute(command).await?.reply)?;
        self.after = after;
        self.done = self.after.is_none();
        if items.is_empty() && self.done {
            // The last page, empty (a key that is gone or empty, or no
            // match left).
            return Ok(None);
        }
        Ok(Some(items))
    }

    /// Every remaining item, in order.
    pub async fn collect(mut self) -> Result<Vec<T>, ClientError> {
        let mut all = Vec::new();
        while let Some(items) = self.next_page().await? {
            all.extend(items);
        }
        Ok(all)
    }
}

/// A last-writer-wins register of bytes.
///
/// ```no_run
/// # use std::time::Duration;
/// # async fn run(client: meridian::client::Client) -> Result<(), meridian::client::ClientError> {
/// let session = client.register("session:42");
/// session.set_with_ttl("alice", Duration::from_secs(60)).await?;
/// assert_eq!(session.get().await?.as_deref(), Some(&b"alice"[..]));
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Register {
    client: Client,
    key: Bytes,
}

impl Register {
    pub(crate) fn new(client: Client, key: Bytes) -> Self {
        Register { client, key }
    }

    /// The value, `None` if the key does not exist. On a counter it reads
    /// the counter in decimal (as Redis's `GET` of an `INCR`ed key does);
    /// on any other type it fails with [`ClientError::WrongType`].
    pub async fn get(&self) -> Result<Option<Bytes>, ClientError> {
        let command = Command::Get {
            key: self.key.clone(),
        };
        value(self.client.execute(command).await?.reply, "GET")
    }

    /// Writes the value (concurrent writes: the latest by HLC wins).
    pub async fn set(&self, value: impl Into<Bytes>) -> Result<(), ClientError> {
        self.write(value.into(), None).await
    }

    /// Writes the value and makes the key expire `ttl` from now (a part of
    /// a millisecond counts as one). A zero `ttl`, or one past
    /// [`crate::client::TTL_MS_MAX`] ms, is `BadRequest`, as Redis
    /// refuses `SET k v PX 0`
    /// ("invalid expire time"); [`Client::expire`](crate::client::Client::expire)
    /// with no time left deletes the key instead.
    pub async fn set_with_ttl(
        &self,
        value: impl Into<Bytes>,
        ttl: Duration,
    ) -> Result<(), ClientError> {
        let ttl_ms = ttl_ms(ttl)?;
        if ttl_ms == 0 {
            return Err(ClientError::BadRequest(
                "invalid expire time: a time to live of zero".to_owned(),
            ));
        }
        self.write(value.into(), Some(ttl_ms)).await
    }

    async fn write(&self, value: Bytes, ttl_ms: Option<u64>) -> Result<(), ClientError> {
        let command = Command::Set {
            key: self.key.clone(),
            value,
            ttl_ms,
        };
        done(self.client.execute(command).await?.reply, "SET")
    }
}

/// A counter of i64: concurrent increments add up.
///
/// ```no_run
/// # async fn run(client: meridian::client::Client) -> Result<(), meridian::client::ClientError> {
/// let hits = client.counter("hits");
/// hits.incr(3).await?;
/// hits.decr(1).await?;
/// assert_eq!(hits.get().await?, 2);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Counter {
    client: Client,
    key: Bytes,
}

impl Counter {
    pub(crate) fn new(client: Client, key: Bytes) -> Self {
        Counter { client, key }
    }

    /// Adds `n`; the new value.
    pub async fn incr(&self, n: i64) -> Result<i64, ClientError> {
        let command = Command::IncrBy {
            key: self.key.clone(),
            by: n,
        };
        int(self.client.execute(command).await?.reply, "INCRBY")
    }

    /// Subtracts `n`; the new value.
    pub async fn decr(&self, n: i64) -> Result<i64, ClientError> {
        self.incr(n.checked_neg().ok_or(ClientError::Overflow)?)
            .await
    }

    /// The value; 0 if the key does not exist.
    pub async fn get(&self) -> Result<i64, ClientError> {
        let command = Command::CounterGet {
            key: self.key.clone(),
        };
        match self.client.execute(command).await?.reply {
            Reply::Int(n) => Ok(n),
            Reply::Nil => Ok(0),
            other => Err(unexpected(other, "COUNTER GET")),
        }
    }
}

/// A set of byte strings: an add wins over a concurrent remove.
///
/// ```no_run
/// # async fn run(client: meridian::client::Client) -> Result<(), meridian::client::ClientError> {
/// let tags = client.set("tags");
/// tags.add_all(["red", "green"]).await?;
/// assert!(tags.contains("red").await?);
/// assert_eq!(tags.len().await?, 2);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Set {
    client: Client,
    key: Bytes,
}

impl Set {
    pub(crate) fn new(client: Client, key: Bytes) -> Self {
        Set { client, key }
    }

    /// Adds a member; whether it was new.
    pub async fn add(&self, member: impl Into<Bytes>) -> Result<bool, ClientError> {
        Ok(self.add_all([member]).await? > 0)
    }

    /// Adds members; how many were new.
    pub async fn add_all<M: Into<Bytes>>(
        &self,
        members: impl IntoIterator<Item = M>,
    ) -> Result<usize, ClientError> {
        let command = Command::SAdd {
            key: self.key.clone(),
            members: members.into_iter().map(Into::into).collect(),
        };
        count(self.client.execute(command).await?.reply, "SADD")
    }

    /// Removes a member; whether it was there.
    pub async fn remove(&self, member: impl Into<Bytes>) -> Result<bool, ClientError> {
        let command = Command::SRem {
            key: self.key.clone(),
            members: vec![member.into()],
        };
        Ok(count(self.client.execute(command).await?.reply, "SREM")? > 0)
    }

    /// The members, in byte order. A set too large for one answer (its
    /// replicas merged concurrent adds past the limit of a key's value)
    /// is read page by page instead, as [`Set::scan`] does: several reads,
    /// so not one replica's view at one moment.
    pub async fn members(&self) -> Result<Vec<Bytes>, ClientError> {
        let command = Command::SMembers {
            key: self.key.clone(),
        };
        match self.client.execute(command).await {
            Ok(answer) => values(answer.reply, "SMEMBERS"),
            Err(e) if too_large_to_answer(&e) => self.scan(SCAN_PAGE_FALLBACK).collect().await,
            Err(e) => Err(e),
        }
    }

    /// One page of the members (`SSCAN`): up to `count` of those after
    /// `after` (from the first for `None`) in byte order, fewer when their
    /// answer would take more than the limit of a key's value;
    /// [`Page::after`] is where the following page starts, `None` at the
    /// end. An absent key is an empty set.
    ///
    /// ```no_run
    /// # async fn run(client: meridian::client::Client) -> Result<(), meridian::client::ClientError> {
    /// let tags = client.set("tags");
    /// let first = tags.scan_page(None, 100).await?;
    /// if let Some(after) = first.after() {
    ///     let second = tags.scan_page(Some(after), 100).await?;
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn scan_page(
        &self,
        after: Option<&[u8]>,
        count: usize,
    ) -> Result<Page<Bytes>, ClientError> {
        let command = sscan(
            self.key.clone(),
            after.map(Bytes::from),
            page_count(count)?,
            None,
        );
        set_page(self.client.execute(command).await?.reply)
    }

    /// The members page by page, `page` (at least one) per request, however
    /// large the set. No member is seen twice; each present from the scan's
    /// start to its end is seen once where the replicas answering hold it
    /// (read at [`ReadConsistency::Quorum`](crate::client::ReadConsistency)
    /// to be sure of writes made at quorum, at the cost of merging the
    /// whole set from each replica per page); members added or removed
    /// meanwhile may or may not be.
    ///
    /// ```no_run
    /// # async fn run(client: meridian::client::Client) -> Result<(), meridian::client::ClientError> {
    /// let mut pages = client.set("visitors").scan(1000);
    /// while let Some(members) = pages.next_page().await? {
    ///     println!("{} more visitors", members.len());
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn scan(&self, page: usize) -> Scan<Bytes> {
        Scan::new(
            self.client.clone(),
            self.key.clone(),
            page,
            None,
            sscan,
            set_stretch,
        )
    }

    /// The members matching the glob `pattern` (`SSCAN ... MATCH`, with
    /// Redis's rules, at most
    /// [`SCAN_PATTERN_BYTES_MAX`](crate::node::SCAN_PATTERN_BYTES_MAX)
    /// bytes), page by page as [`Set::scan`] gives them: each request
    /// looks at `page` members and keeps those that match, so a page may
    /// hold none before the last.
    ///
    /// ```no_run
    /// # async fn run(client: meridian::client::Client) -> Result<(), meridian::client::ClientError> {
    /// let admins = client.set("users").scan_matching("admin:*", 1000).collect().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn scan_matching(&self, pattern: impl Into<Bytes>, page: usize) -> Scan<Bytes> {
        Scan::new(
            self.client.clone(),
            self.key.clone(),
            page,
            Some(pattern.into()),
            sscan,
            set_stretch,
        )
    }

    /// Whether `member` is in the set.
    pub async fn contains(&self, member: impl Into<Bytes>) -> Result<bool, ClientError> {
        let command = Command::SIsMember {
            key: self.key.clone(),
            member: member.into(),
        };
        flag(self.client.execute(command).await?.reply, "SISMEMBER")
    }

    /// Whether each of `members` is in the set, in their order, as Redis's
    /// `SMISMEMBER`; the reads run at once (see
    /// [`Client::execute_many`]).
    ///
    /// ```no_run
    /// # async fn run(client: meridian::client::Client) -> Result<(), meridian::client::ClientError> {
    /// let tags = client.set("tags");
    /// tags.add("rust").await?;
    /// assert_eq!(tags.contains_each(["rust", "go"]).await?, [true, false]);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn contains_each<M: Into<Bytes>>(
        &self,
        members: impl IntoIterator<Item = M>,
    ) -> Result<Vec<bool>, ClientError> {
        let commands = members.into_iter().map(|member| Command::SIsMember {
            key: self.key.clone(),
            member: member.into(),
        });
        let results = self.client.execute_many(commands).await;
        results
            .into_iter()
            .map(|result| flag(result?.reply, "SISMEMBER"))
            .collect()
    }

    /// The number of members.
    pub async fn len(&self) -> Result<usize, ClientError> {
        let command = Command::SCard {
            key: self.key.clone(),
        };
        count(self.client.execute(command).await?.reply, "SCARD")
    }

    /// Whether the set has no members.
    pub async fn is_empty(&self) -> Result<bool, ClientError> {
        Ok(self.len().await? == 0)
    }
}

/// A map of fields to nested values; each field merges by its own type,
/// and an update wins over a concurrent remove.
///
/// ```no_run
/// use meridian::client::FieldOp;
/// # async fn run(client: meridian::client::Client) -> Result<(), meridian::client::ClientError> {
/// let user = client.map("user:7");
/// user.put("name", "Ada").await?;
/// user.incr("logins", 1).await?;
/// user.apply(["prefs", "theme"], FieldOp::Set("dark".into())).await?;
/// assert_eq!(user.get("name").await?.as_deref(), Some(&b"Ada"[..]));
/// assert_eq!(user.len().await?, 3);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Map {
    client: Client,
    key: Bytes,
}

impl Map {
    pub(crate) fn new(client: Client, key: Bytes) -> Self {
        Map { client, key }
    }

    /// Writes `field` as a register; whether the field is new.
    pub async fn put(
        &self,
        field: impl Into<Bytes>,
        value: impl Into<Bytes>,
    ) -> Result<bool, ClientError> {
        let command = Command::HSet {
            key: self.key.clone(),
            field: field.into(),
            value: value.into(),
        };
        flag(self.client.execute(command).await?.reply, "HSET")
    }

    /// A register field's value (a counter field's in decimal); `None` if
    /// absent. A set or map field fails with [`ClientError::WrongType`]:
    /// read those with [`Map::get_path`].
    pub async fn get(&self, field: impl Into<Bytes>) -> Result<Option<Bytes>, ClientError> {
        let command = Command::HGet {
            key: self.key.clone(),
            field: field.into(),
        };
        value(self.client.execute(command).await?.reply, "HGET")
    }

    /// The values of `fields`, in their order, as [`Map::get`] reads each
    /// (as Redis's `HMGET`); the reads run at once (see
    /// [`Client::execute_many`]).
    ///
    /// ```no_run
    /// # async fn run(client: meridian::client::Client) -> Result<(), meridian::client::ClientError> {
    /// let user = client.map("user:1");
    /// user.put("name", "ada").await?;
    /// assert_eq!(user.get_each(["name", "age"]).await?, [Some("ada".into()), None]);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get_each<F: Into<Bytes>>(
        &self,
        fields: impl IntoIterator<Item = F>,
    ) -> Result<Vec<Option<Bytes>>, ClientError> {
        let commands = fields.into_iter().map(|field| Command::HGet {
            key: self.key.clone(),
            field: field.into(),
        });
        let results = self.client.execute_many(commands).await;
        results
            .into_iter()
            .map(|result| value(result?.reply, "HGET"))
            .collect()
    }

    /// Removes `field`; whether it was there.
    pub async fn remove(&self, field: impl Into<Bytes>) -> Result<bool, ClientError> {
        let command = Command::HDel {
            key: self.key.clone(),
            fields: vec![field.into()],
        };
        Ok(count(self.client.execute(command).await?.reply, "HDEL")? > 0)
    }

    /// Adds `n` to `field` as a counter; the new value.
    pub async fn incr(&self, field: impl Into<Bytes>, n: i64) -> Result<i64, ClientError> {
        let command = Command::HIncrBy {
            key: self.key.clone(),
            field: field.into(),
            by: n,
        };
        int(self.client.execute(command).await?.reply, "HINCRBY")
    }

    /// Every field with its value, in field order. A map too large for one
    /// answer is read page by page instead, as [`Map::scan`] does.
    pub async fn get_all(&self) -> Result<Vec<(Bytes, FieldValue)>, ClientError> {
        let command = Command::HGetAll {
            key: self.key.clone(),
        };
        match self.client.execute(command).await.map(|a| a.reply) {
            Ok(Reply::Fields(fields)) => Ok(fields),
            Ok(Reply::Nil) => Ok(Vec::new()),
            Ok(other) => Err(unexpected(other, "HGETALL")),
            Err(e) if too_large_to_answer(&e) => self.scan(SCAN_PAGE_FALLBACK).collect().await,
            Err(e) => Err(e),
        }
    }

    /// One page of the fields and their values (`HSCAN`), as
    /// [`Set::scan_page`] pages a set's members.
    pub async fn scan_page(
        &self,
        after: Option<&[u8]>,
        count: usize,
    ) -> Result<Page<(Bytes, FieldValue)>, ClientError> {
        let command = hscan(
            self.key.clone(),
            after.map(Bytes::from),
            page_count(count)?,
            None,
        );
        map_page(self.client.execute(command).await?.reply)
    }

    /// The fields and their values page by page, as [`Set::scan`] pages a
    /// set's members.
    ///
    /// ```no_run
    /// # async fn run(client: meridian::client::Client) -> Result<(), meridian::client::ClientError> {
    /// let mut pages = client.map("user:42").scan(100);
    /// while let Some(fields) = pages.next_page().await? {
    ///     for (field, value) in fields {
    ///         println!("{:?} = {value:?}", field);
    ///     }
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn scan(&self, page: usize) -> Scan<(Bytes, FieldValue)> {
        Scan::new(
            self.client.clone(),
            self.key.clone(),
            page,
            None,
            hscan,
            map_stretch,
        )
    }

    /// The fields matching the glob `pattern`, with their values
    /// (`HSCAN ... MATCH`), as [`Set::scan_matching`] gives a set's
    /// members.
    pub fn scan_matching(
        &self,
        pattern: impl Into<Bytes>,
        page: usize,
    ) -> Scan<(Bytes, FieldValue)> {
        Scan::new(
            self.client.clone(),
            self.key.clone(),
            page,
            Some(pattern.into()),
            hscan,
            map_stretch,
        )
    }

    /// The number of fields.
    pub async fn len(&self) -> Result<usize, ClientError> {
        let command = Command::HLen {
            key: self.key.clone(),
        };
        count(self.client.execute(command).await?.reply, "HLEN")
    }

    /// Whether the map has no fields.
    pub async fn is_empty(&self) -> Result<bool, ClientError> {
        Ok(self.len().await? == 0)
    }

    /// Applies `op` to the nested field at `path` (inner maps are created
    /// as needed); the counter's new value after [`FieldOp::Incr`].
    pub async fn apply(
        &self,
        path: impl IntoIterator<Item = impl Into<Bytes>>,
        op: FieldOp,
    ) -> Result<Option<i64>, ClientError> {
        let command = Command::MapApply {
            key: self.key.clone(),
            path: path.into_iter().map(Into::into).collect(),
            op,
        };
        match self.client.execute(command).await?.reply {
            Reply::Ok => Ok(None),
            Reply::Int(n) => Ok(Some(n)),
            other => Err(unexpected(other, "MAP APPLY")),
        }
    }

    /// The nested field at `path`, `None` if absent; a step through a
    /// field that is not a map is [`ClientError::WrongType`], as an
    /// [`apply`](Map::apply) through it is.
    pub async fn get_path(
        &self,
        path: impl IntoIterator<Item = impl Into<Bytes>>,
    ) -> Result<Option<FieldValue>, ClientError> {
        let path: Vec<Bytes> = path.into_iter().map(Into::into).collect();
        if path.is_empty() {
            // As `apply` answers (from the node) for an empty path.
            return Err(ClientError::BadRequest(
                "a map operation needs a field".to_owned(),
            ));
        }
        let command = Command::MapGet {
            key: self.key.clone(),
            path,
        };
        match self.client.execute(command).await?.reply {
            Reply::Field(field) => Ok(field),
            Reply::Nil => Ok(None),
            other => Err(unexpected(other, "MAP GET")),
        }
    }
}

/// A multi-value register: concurrent writes are all kept until a later
/// write supersedes them.
///
/// ```no_run
/// # async fn run(client: meridian::client::Client) -> Result<(), meridian::client::ClientError> {
/// let doc = client.mvregister("doc:1");
/// doc.set("draft").await?;
/// assert_eq!(doc.get().await?.len(), 1);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct MvRegister {
    client: Client,
    key: Bytes,
}

impl MvRegister {
    pub(crate) fn new(client: Client, key: Bytes) -> Self {
        MvRegister { client, key }
    }

    /// Writes the value, superseding every value this replica has seen.
    pub async fn set(&self, value: impl Into<Bytes>) -> Result<(), ClientError> {
        let command = Command::MvSet {
            key: self.key.clone(),
            value: value.into(),
        };
        done(self.client.execute(command).await?.reply, "MVSET")
    }

    /// Every concurrent value; empty if the key does not exist.
    pub async fn get(&self) -> Result<Vec<Bytes>, ClientError> {
        let command = Command::MvGet {
            key: self.key.clone(),
        };
        values(self.client.execute(command).await?.reply, "MVGET")
    }
}
