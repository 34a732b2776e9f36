//! Data commands over the client SDK, and the readiness probe that pings
//! each region of a starting cluster.
//!
//! This is the only part of the command line that talks to nodes: parsing
//! (`command.rs`), the choice of region and certificate (`target.rs`) and
//! printing (`format.rs`) are pure and live elsewhere.

use super::cluster::{ListeningProbe, NodeEntry, ReadinessProbe};
use super::command::{Combine, DataCommand};
use super::format;
use super::target::Target;
use crate::client::{
    too_large_to_answer, Client, ClientError, ClientOptions, FieldOp, KeyScan, Routing, ScanOptions,
};
use crate::protocol::{Answer, Command, Reply};
use crate::topology::{Limits, Topology};
use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::PathBuf;

/// Connects to the target's region and runs a command line (see
/// [`Session::run_line`]).
pub async fn execute(target: Target, command: &DataCommand) -> Result<Vec<Answer>, Failed> {
    let session = Session::connect(target)
        .await
        .map_err(|error| Failed::before(0, error))?;
    session.run_line(command).await
}

/// One client connected to the target's region, for one command line or
/// for a whole shell (`meridian` with no command).
pub struct Session {
    client: Client,
    limits: Limits,
}

impl Session {
    /// Connects to the target's region as the command line's client.
    pub async fn connect(target: Target) -> Result<Session, ClientError> {
        let limits = *target.topology.limits();
        let mut options = ClientOptions::new(target.topology, target.region, target.cert_dir);
        options.client_name = target.client_name;
        options.write = target.write;
        options.read = target.read;
        // By key: a read finds the replica that coordinated an earlier
        // command's write, whether the earlier command ran in this process
        // or in one before; a home node would buy a command line nothing.
        options.routing = Routing::Primary;
        Ok(Session {
            client: Client::connect(options).await?,
            limits,
        })
    }

    /// Runs a command line (an expiry at a Unix time taken as of sending
    /// it, see [`DataCommand::timed_at`]): its commands one after another, their answers
    /// in order, or the first error (the commands before it have run); the
    /// reads of a line printed as a list ([`Combine::Each`]) and the writes
    /// of `mset` ([`Combine::AllOk`]) all at once, or the first error in
    /// their order; for `keys`, every page of its scan as one answer. A command with a key
    /// or value over the cluster's limits is not sent (see
    /// [`check_sizes`]).
    pub async fn run_line(&self, command: &DataCommand) -> Result<Vec<Answer>, Failed> {
        // An expiry at a Unix time is taken as of now, when it is sent.
        let timed;
        let command = if command.expire_at_ms.is_some() {
            timed = command.timed_at(super::command::unix_now_ms());
            &timed
        } else {
            command
        };
        if matches!(command.combine, Combine::Each | Combine::AllOk) {
            return self.run_at_once(&command.commands).await;
        }
        let Some(options) = keys_scan(command) else {
            return self.run(&command.commands).await;
        };
        let keys = self.key_scan(options).collect().await;
        let keys = keys.map_err(|error| Failed::before(0, error))?;
        Ok(vec![Answer {
            reply: Reply::Values(keys),
            replicas_acked: 1,
            replicas_needed: 1,
        }])
    }

    /// A scan of the region's keys, to take page by page.
    pub fn key_scan(&self, options: ScanOptions) -> KeyScan {
        self.client.scan_keys(options)
    }

    /// Runs the commands of a line printed as a list (`mget`, `hmget`,
    /// `smismember`), or of `mset`, all at once: their answers in order,
    /// or the first error in that order, with how many were carried out.
    /// None is sent when one is over the limits. As Redis's `MGET`, a
    /// `get` of a key of a type that is not read as a value answers
    /// `(nil)`.
    async fn run_at_once(&self, commands: &[Command]) -> Result<Vec<Answer>, Failed> {
        for (at, command) in commands.iter().enumerate() {
            // Nothing is sent yet: as a line sent in turn, none was done.
            check_sizes(command, &self.limits).map_err(|error| Failed {
                at,
                done: 0,
                failed: 1,
                at_once: false,
                error,
            })?;
        }
        let results = self.client.execute_many(commands.iter().cloned()).await;
        gather(commands, results)
    }

    /// Runs `commands` one after another: their answers in order, or the
    /// first error (the commands before it have run).
    pub async fn run(&self, commands: &[Command]) -> Result<Vec<Answer>, Failed> {
        let failed = |done: usize| move |error| Failed::before(done, error);
        let client = &self.client;
        let mut answers = Vec::with_capacity(commands.len());
        for command in commands {
            check_sizes(command, &self.limits).map_err(failed(answers.len()))?;
            let answer = match command {
                Command::Scan {
                    from,
                    count,
                    pattern,
                    kind,
                } => {
                    let options = ScanOptions {
                        pattern: pattern.clone(),
                        kind: *kind,
                        count: *count,
                    };
                    client.scan_page(*from, &options).await.map(|page| Answer {
                        reply: Reply::Keys(page),
                        replicas_acked: 1,
                        replicas_needed: 1,
                    })
                }
                _ => match client.execute(command.clone()).await {
                    Err(e) if too_large_to_answer(&e) => {
                        in_pages(client, command).await.unwrap_or(Err(e))
                    }
                    answer => answer,
                },
            };
            answers.push(answer.map_err(failed(answers.len()))?);
        }
        Ok(answers)
    }
}

/// What the scan of a `keys PATTERN` line ([`Combine::AllKeys`]) looks
/// for; `None` for any other line.
pub fn keys_scan(command: &DataCommand) -> Option<ScanOptions> {
    let (
        Combine::AllKeys,
        [Command::Scan {
            pattern,
            kind,
            count,
            ..
        }],
    ) = (&command.combine, command.commands.as_slice())
    else {
        return None;
    };
    Some(ScanOptions {
        pattern: pattern.clone(),
        kind: *kind,
        count: *count,
    })
}

/// The answers of a line's commands sent all at once, from their results
/// in order ([`Session::run_at_once`]): all of them, or the first error
/// with how many commands were carried out and how many failed.
fn gather(
    commands: &[Command],
    results: Vec<Result<Answer, ClientError>>,
) -> Result<Vec<Answer>, Failed> {
    let mut answers = Vec::with_capacity(results.len());
    let (mut first_error, mut failed, mut kept) = (None, 0, 0);
    for (at, (command, result)) in commands.iter().zip(results).enumerate() {
        match (command, result) {
            (Command::Get { .. }, Err(ClientError::WrongType { .. })) => answers.push(Answer {
                reply: Reply::Nil,
                replicas_acked: 1,
                replicas_needed: 1,
            }),
            (_, Ok(answer)) => answers.push(answer),
            (_, Err(error)) => {
                // Short of its acknowledgements, a write is kept all
                // the same.
                kept += usize::from(matches!(error, ClientError::QuorumNotReached { .. }));
                failed += 1;
                first_error.get_or_insert((at, error));
            }
        }
    }
    match first_error {
        None => Ok(answers),
        Some((at, error)) => Err(Failed {
            at,
            done: answers.len() + kept,
            failed,
            at_once: true,
            error,
        }),
    }
}

/// What a data command that was answered prints: the answer for stdout
/// (redis-cli's layout, or `--raw`), and with `--raw -v` a write's
/// acknowledgements for stderr, apart from the answer's bytes.
pub fn answered(
    command: &DataCommand,
    answers: Vec<Answer>,
    raw: bool,
    verbose: bool,
) -> (Vec<u8>, Option<String>) {
    let first = command.first();
    if let Some(items) = command.items(&answers) {
        // Only reads are printed as a list: no acknowledgements to show.
        return if raw {
            (format::raw_replies(&items), None)
        } else {
            let mut text = format::replies(&items);
            text.push('\n');
            (text.into_bytes(), None)
        };
    }
    let answer = command.combine(answers);
    if raw {
        let acks = (verbose && first.is_write()).then(|| format::acks(&answer));
        (format::raw_answer(&answer), acks)
    } else {
        let mut text = format::answer(first, &answer, verbose);
        text.push('\n');
        (text.into_bytes(), None)
    }
}

/// The message of a data command that failed: `(error) ...`, and for a
/// command line of several commands (`del k1 k2`, `hset k f1 v1 f2 v2`,
/// `mset k1 v1 k2 v2`) which of them were carried out; for the reads of
/// `mget` and the like, which one failed.
pub fn failure(command: &DataCommand, failed: &Failed) -> String {
    let commands = &command.commands;
    let failing = commands.get(failed.at).unwrap_or(command.first());
    let mut text = format::command_error(failing, &failed.error);
    if command.combine == Combine::Each {
        // Reads: only which one failed is said.
        let _ = write!(text, "\n(at {})", format::part(failing));
    } else if failed.at_once && commands.len() > 1 {
        // The writes of mset, sent all at once.
        let others = match failed.failed.saturating_sub(1) {
            0 => String::new(),
            n => format!(", {n} other{} failed", if n == 1 { "" } else { "s" }),
        };
        let _ = write!(
            text,
            "\n(at {}{others}: {} of the line's {} written, all sent at once)",
            format::part(failing),
            failed.done,
            format::part_count(failing, commands.len()),
        );
    } else if commands.len() > 1 {
        // One command each, in turn.
        text.push('\n');
        text.push_str(&format::partial_failure(
            failing,
            failed.done,
            commands.len(),
        ));
    }
    text
}

/// `smembers` or `hgetall` of a set or map too large for one answer, read
/// in pages as the SDK's handles read it (`None` for other commands).
async fn in_pages(client: &Client, command: &Command) -> Option<Result<Answer, ClientError>> {
    let reply = match command {
        Command::SMembers { key } => client.set(key.clone()).members().await.map(Reply::Values),
        Command::HGetAll { key } => client.map(key.clone()).get_all().await.map(Reply::Fields),
        _ => return None,
    };
    Some(reply.map(|reply| Answer {
        reply,
        replicas_acked: 1,
        replicas_needed: 1,
    }))
}

/// Refuses `command` when its key is over the cluster's key limit, or a
/// value, set member or map field it names over the value limit: the
/// error a node gives, but before the request is framed, so that one too
/// large for a frame names the limit the user went over rather than the
/// frame's. Reads are refused too, as nodes refuse a key too long for any
/// write: no such member or field can be stored.
///
/// ```
/// use meridian::cli::data::check_sizes;
/// use meridian::protocol::Command;
/// use meridian::topology::Limits;
///
/// let set = Command::Set { key: "k".into(), value: vec![b'x'; 3_000_000].into(), ttl_ms: None };
/// assert_eq!(
///     check_sizes(&set, &Limits::default()).unwrap_err().to_string(),
///     "value of 3000000 bytes exceeds the limit of 1048576 bytes"
/// );
/// ```
pub fn check_sizes(command: &Command, limits: &Limits) -> Result<(), ClientError> {
    let check = |what, bytes: &[u8], max: u32| {
        let (len, max) = (bytes.len() as u64, u64::from(max));
        if len > max {
            Err(ClientError::TooLarge { what, len, max })
        } else {
            Ok(())
        }
    };
    if let Some(key) = command.key() {
        check("key", key, limits.key_bytes_max)?;
    }
    let one = std::slice::from_ref;
    let values: &[&[crdt_types::Bytes]] = match command {
        Command::Set { value, .. } | Command::MvSet { value, .. } => &[one(value)],
        Command::SAdd { members, .. } | Command::SRem { members, .. } => &[members],
        Command::SIsMember { member, .. } => &[one(member)],
        Command::HSet { field, value, .. } => &[one(field), one(value)],
        Command::HGet { field, .. } | Command::HIncrBy { field, .. } => &[one(field)],
        Command::HDel { fields, .. } => &[fields],
        Command::MapGet { path, .. } => &[path],
        // A cursor names a member or field.
        Command::SScan { after, .. }
        | Command::HScan { after, .. }
        | Command::SScanMatch { after, .. }
        | Command::HScanMatch { after, .. } => &[after.as_slice()],
        Command::MapApply { path, op, .. } => match op {
            FieldOp::Set(v) | FieldOp::SetAdd(v) | FieldOp::SetRemove(v) | FieldOp::MvSet(v) => {
                &[path, one(v)]
            }
            FieldOp::Incr(_) | FieldOp::Remove => &[path],
        },
        _ => &[],
    };
    for value in values.iter().copied().flatten() {
        check("value", value, limits.value_bytes_max)?;
    }
    Ok(())
}

/// A command line that failed: the command at `at` failed with `error`,
/// and `done` were carried out. For a line sent one after another
/// (`at_once` false) they are the commands before `at`, and the rest were
/// not sent. For one sent all at once ([`Combine::Each`],
/// [`Combine::AllOk`]) `at` is the first command in the line that
/// failed, `failed` how many did, and `done` counts the writes kept (a
/// write short of its acknowledgements is kept too).
#[derive(Debug)]
pub struct Failed {
    /// Where the (first) command that failed is in the line.
    pub at: usize,
    /// Commands carried out.
    pub done: usize,
    /// Commands that failed.
    pub failed: usize,
    /// Whether the line's commands were all sent at once.
    pub at_once: bool,
    /// Why the command at `at` failed.
    pub error: ClientError,
}

impl Failed {
    /// The command at `done` failed with `error`, after the ones before
    /// it were carried out in turn (the rest not sent).
    pub fn before(done: usize, error: ClientError) -> Failed {
        Failed {
            at: done,
            done,
            failed: 1,
            at_once: false,
            error,
        }
    }
}

/// Ready when the node listens (see [`ListeningProbe`]) and its region
/// answers a ping through the client SDK with the `cli` certificate.
#[derive(Debug)]
pub struct PingProbe {
    topology: Topology,
    cert_dir: PathBuf,
    regions_answering: HashSet<String>,
}

impl PingProbe {
    /// A probe of the cluster `topology`, authenticated by the `cli`
    /// certificate in `cert_dir`.
    pub fn new(topology: Topology, cert_dir: PathBuf) -> Self {
        PingProbe {
            topology,
            cert_dir,
            regions_answering: HashSet::new(),
        }
    }
}

impl ReadinessProbe for PingProbe {
    async fn is_ready(&mut self, node: &NodeEntry) -> bool {
        if !ListeningProbe::check(node) {
            return false;
        }
        if self.regions_answering.contains(&node.region) {
            return true;
        }
        let options = ClientOptions::new(
            self.topology.clone(),
            node.region.clone(),
            self.cert_dir.clone(),
        );
        let answered = match Client::connect(options).await {
            Ok(client) => client.execute(Command::Ping).await.is_ok(),
            Err(_) => false,
        };
        if answered {
            self.regions_answering.insert(node.region.clone());
        }
        answered
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::command::parse;
    use crdt_types::{Bytes, Kind};

    fn ok(reply: Reply) -> Result<Answer, ClientError> {
        Ok(Answer {
            reply,
            replicas_acked: 2,
            replicas_needed: 2,
        })
    }

    #[test]
    fn an_mset_sent_at_once_counts_the_writes_kept_and_the_others_that_failed() {
        let mset = parse(&["mset", "a", "1", "b", "2", "c", "3", "d", "4"]).unwrap();
        let wrong = || ClientError::WrongType {
            wanted: Kind::Register,
            found: Kind::Set,
        };
        let short = ClientError::QuorumNotReached {
            acked: 1,
            needed: 2,
        };
        let results = vec![ok(Reply::Ok), Err(wrong()), Err(short), Err(wrong())];
        let failed = gather(&mset.commands, results).unwrap_err();
        assert_eq!((failed.at, failed.done, failed.failed), (1, 2, 3));
        assert_eq!(
            failure(&mset, &failed),
            "(error) WRONGTYPE operation against a key holding a set, wanted a register\n\
             (at key \"b\", 2 others failed: 2 of the line's 4 keys written, all sent at once)"
        );
        let results = vec![ok(Reply::Ok), ok(Reply::Ok), ok(Reply::Ok), Err(wrong())];
        let failed = gather(&mset.commands, results).unwrap_err();
        assert_eq!(
            failure(&mset, &failed),
            "(error) WRONGTYPE operation against a key holding a set, wanted a register\n\
             (at key \"d\": 3 of the line's 4 keys written, all sent at once)"
        );
        let all = vec![ok(Reply::Ok), ok(Reply::Ok), ok(Reply::Ok), ok(Reply::Ok)];
        assert_eq!(gather(&mset.commands, all).unwrap().len(), 4);

        // One key: nothing to count.
        let one = parse(&["mset", "a", "1", "a", "2"]).unwrap();
        let failed = gather(&one.commands, vec![Err(wrong())]).unwrap_err();
        assert_eq!(
            failure(&one, &failed),
            "(error) WRONGTYPE operation against a key holding a set, wanted a register"
        );
        // Refused before it is sent: none of it was.
        let refused = Failed {
            at: 1,
            done: 0,
            failed: 1,
            at_once: false,
            error: ClientError::TooLarge {
                what: "value",
                len: 9,
                max: 8,
            },
        };
        assert_eq!(
            failure(&mset, &refused),
            "(error) value of 9 bytes exceeds the limit of 8 bytes\n\
             (at key \"b\": 0 of the line's 4 keys were done before it, the rest not sent)"
        );
    }

    #[test]
    fn an_mget_reads_a_key_of_another_type_as_nil_and_names_a_key_that_failed() {
        let mget = parse(&["mget", "a", "b", "c"]).unwrap();
        let wrong = ClientError::WrongType {
            wanted: Kind::Register,
            found: Kind::Set,
        };
        let results = vec![ok(Reply::Value("1".into())), Err(wrong), ok(Reply::Nil)];
        let answers = gather(&mget.commands, results).unwrap();
        let replies: Vec<Reply> = answers.into_iter().map(|a| a.reply).collect();
        assert_eq!(replies, [Reply::Value("1".into()), Reply::Nil, Reply::Nil]);
        let results = vec![
            ok(Reply::Nil),
            Err(ClientError::Timeout),
            Err(ClientError::Timeout),
        ];
        let failed = gather(&mget.commands, results).unwrap_err();
        assert!(
            failure(&mget, &failed).ends_with("\n(at key \"b\")"),
            "{}",
            failure(&mget, &failed)
        );
    }

    fn bytes(n: usize) -> Bytes {
        vec![b'x'; n].into()
    }

    #[test]
    fn keys_and_values_are_held_to_their_own_limits() {
        let limits = Limits::default();
        let (key_max, value_max) = (
            limits.key_bytes_max as usize,
            limits.value_bytes_max as usize,
        );
        let too_large = |command: &Command| match check_sizes(command, &limits) {
            Err(ClientError::TooLarge { what, len, max }) => Some((what, len, max)),
            Err(e) => panic!("{command:?}: {e}"),
            Ok(()) => None,
        };
        // Past the frame limit too: still the value's limit that is named.
        let huge = limits.frame_bytes_max as usize + 1;
        for n in [value_max + 1, huge] {
            let set = Command::Set {
                key: "k".into(),
                value: bytes(n),
                ttl_ms: None,
            };
            assert_eq!(too_large(&set), Some(("value", n as u64, value_max as u64)));
            let get = Command::Get { key: bytes(n) };
            assert_eq!(too_large(&get), Some(("key", n as u64, key_max as u64)));
        }
        let at_limit = Command::Set {
            key: bytes(key_max),
            value: bytes(value_max),
            ttl_ms: None,
        };
        assert_eq!(too_large(&at_limit), None);
        // Members and fields are values, in writes and reads alike.
        for command in [
            Command::SAdd {
                key: "s".into(),
                members: vec!["a".into(), bytes(huge)],
            },
            Command::SIsMember {
                key: "s".into(),
                member: bytes(huge),
            },
            Command::HSet {
                key: "h".into(),
                field: bytes(huge),
                value: "v".into(),
            },
            Command::HSet {
                key: "h".into(),
                field: "f".into(),
                value: bytes(huge),
            },
            Command::HGet {
                key: "h".into(),
                field: bytes(huge),
            },
            Command::HDel {
                key: "h".into(),
                fields: vec![bytes(huge)],
            },
        ] {
            assert_eq!(
                too_large(&command),
                Some(("value", huge as u64, value_max as u64)),
                "{command:?}"
            );
        }
        assert_eq!(too_large(&Command::Ping), None);
        // The key first, as a node checks it first.
        let both = Command::Set {
            key: bytes(key_max + 1),
            value: bytes(huge),
            ttl_ms: None,
        };
        assert_eq!(too_large(&both).map(|(what, ..)| what), Some("key"));
    }
}
