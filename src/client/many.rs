//! Many commands at once: [`Client::execute_many`], the way to pipeline
//! requests, and Redis's `MGET` and `MSET` on top of it.
//!
//! Each command goes to its own key's replicas, as [`Client::execute`]
//! sends it, so one call may talk to every node of the region; up to
//! [`MANY_INFLIGHT_MAX`] are in flight at once, multiplexed on the
//! client's connections. Nothing about them is atomic: each command
//! succeeds or fails on its own, and the results say which.

use std::collections::HashMap;

use super::{unexpected, Client, ClientError};
use crate::protocol::{Answer, Command, Reply};
use crdt_types::Bytes;

/// Commands of one [`Client::execute_many`] call in flight at once.
pub const MANY_INFLIGHT_MAX: usize = 64;

impl Client {
    /// Runs every command of `commands`, up to [`MANY_INFLIGHT_MAX`] at a
    /// time, each as [`Client::execute`] runs it (its key's replicas, this
    /// client's consistency, failover); their results in the order of
    /// `commands`. Commands on the same key may be carried out in any
    /// order, so send two writes to one key in turn, or with
    /// [`Client::execute`], when the order matters. Dropping the returned
    /// future cancels the commands not yet answered; some of them may
    /// have been carried out already.
    ///
    /// ```no_run
    /// use meridian::client::{Command, Reply};
    /// # async fn run(client: meridian::client::Client) -> Result<(), meridian::client::ClientError> {
    /// let hits = (0..100).map(|i| Command::IncrBy { key: format!("hits:{i}").into(), by: 1 });
    /// for result in client.execute_many(hits).await {
    ///     assert!(matches!(result?.reply, Reply::Int(_)));
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn execute_many(
        &self,
        commands: impl IntoIterator<Item = Command>,
    ) -> Vec<Result<Answer, ClientError>> {
        let mut results: Vec<Option<Result<Answer, ClientError>>> = Vec::new();
        let mut running = tokio::task::JoinSet::new();
        let mut tasks = HashMap::new();
        for command in commands {
            let index = results.len();
            results.push(None);
            if running.len() >= MANY_INFLIGHT_MAX {
                finish_one(&mut running, &mut tasks, &mut results).await;
            }
            let client = self.clone();
            let task = running.spawn(async move { (index, client.execute(command).await) });
            tasks.insert(task.id(), index);
        }
        while !running.is_empty() {
            finish_one(&mut running, &mut tasks, &mut results).await;
        }
        results
            .into_iter()
            .map(|result| {
                result.unwrap_or_else(|| {
                    Err(ClientError::Unavailable(
                        "the request did not finish".into(),
                    ))
                })
            })
            .collect()
    }

    /// The values of `keys`, in their order, as Redis's `MGET` answers
    /// them: `None` for a key that does not exist and for one of a type
    /// that is not read as a value (a set, a map, a multi-value register);
    /// a counter reads in decimal, as [`Register::get`](super::Register::get)
    /// reads it. The reads run concurrently (see
    /// [`Client::execute_many`]); any other error fails the whole call.
    ///
    /// ```no_run
    /// # async fn run(client: meridian::client::Client) -> Result<(), meridian::client::ClientError> {
    /// client.mset([("a", "1"), ("b", "2")]).await?;
    /// let values = client.mget(["a", "b", "missing"]).await?;
    /// assert_eq!(values, [Some("1".into()), Some("2".into()), None]);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn mget<K: Into<Bytes>>(
        &self,
        keys: impl IntoIterator<Item = K>,
    ) -> Result<Vec<Option<Bytes>>, ClientError> {
        let gets = keys.into_iter().map(|key| Command::Get { key: key.into() });
        self.execute_many(gets)
            .await
            .into_iter()
            .map(|result| match result.map(|answer| answer.reply) {
                Ok(Reply::Value(value)) => Ok(Some(value)),
                Ok(Reply::Nil) | Err(ClientError::WrongType { .. }) => Ok(None),
                Ok(other) => Err(unexpected(other, "GET")),
                Err(e) => Err(e),
            })
            .collect()
    }

    /// Writes each value to its key as a register, as Redis's `MSET`:
    /// when a key is named twice, its last value is the one written. The
    /// writes run concurrently (see [`Client::execute_many`]) and are not
    /// atomic: the first error is returned, and the other writes may have
    /// been carried out. Unlike Redis's `MSET`, a key of another type (a
    /// counter, set, map or multi-value register) is not overwritten: its
    /// write fails with [`ClientError::WrongType`]. A write that got fewer acknowledgements than its
    /// consistency needs fails with
    /// [`ClientError::QuorumNotReached`] but is kept and replicated later.
    pub async fn mset<K: Into<Bytes>, V: Into<Bytes>>(
        &self,
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Result<(), ClientError> {
        for result in self.execute_many(mset_commands(pairs)).await {
            match result?.reply {
                Reply::Ok => {}
                other => return Err(unexpected(other, "SET")),
            }
        }
        Ok(())
    }
}

/// The `Set` commands of an `MSET` of `pairs`: one for each key, in the
/// order of the keys' first use, with the key's last value.
///
/// ```
/// use meridian::client::{mset_commands, Command};
///
/// let sets = mset_commands([("a", "1"), ("b", "2"), ("a", "3")]);
/// let set = |key: &str, value: &str| Command::Set { key: key.into(), value: value.into(), ttl_ms: None };
/// assert_eq!(sets, [set("a", "3"), set("b", "2")]);
/// ```
pub fn mset_commands<K: Into<Bytes>, V: Into<Bytes>>(
    pairs: impl IntoIterator<Item = (K, V)>,
) -> Vec<Command> {
    let mut values: Vec<(Bytes, Bytes)> = Vec::new();
    let mut position: HashMap<Bytes, usize> = HashMap::new();
    for (key, value) in pairs {
        let (key, value) = (key.into(), value.into());
        match position.get(&key) {
            Some(&at) => values[at].1 = value,
            None => {
                position.insert(key.clone(), values.len());
                values.push((key, value));
            }
        }
    }
    let sets = values.into_iter().map(|(key, value)| Command::Set {
        key,
        value,
        ttl_ms: None,
    });
    sets.collect()
}

/// Waits for one task of `running` and files its result: a task cancelled
/// (its runtime shutting down) as `Unavailable`; a task that panicked
/// panics the caller.
async fn finish_one(
    running: &mut tokio::task::JoinSet<(usize, Result<Answer, ClientError>)>,
    tasks: &mut HashMap<tokio::task::Id, usize>,
    results: &mut [Option<Result<Answer, ClientError>>],
) {
    match running.join_next_with_id().await {
        Some(Ok((id, (index, result)))) => {
            tasks.remove(&id);
            results[index] = Some(result);
        }
        // A bug in a request is the caller's panic, not a node that is down.
        Some(Err(error)) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        Some(Err(error)) => {
            if let Some(index) = tasks.remove(&error.id()) {
                results[index] = Some(Err(ClientError::Unavailable(format!(
                    "the request did not finish: {error}"
                ))));
            }
        }
        None => {}
    }
}
