//! The data commands of the `meridian` binary, in the manner of redis-cli:
//! the words after the global options (`set hello world --ex 60`) become
//! a [`DataCommand`]: usually one protocol [`Command`], and for the Redis
//! forms the protocol has no single command for (`del k1 k2`, `hset h f1
//! v1 f2 v2`, `exists k1 k2`, `ping MESSAGE`) several, sent one after
//! another, and how their answers make the one printed.
//!
//! Parsing is pure: no topology, no connection. Every mistake — unknown
//! command, wrong number of arguments, an increment that is not an
//! integer — is a [`UsageError`] that names the command and shows its
//! usage line. Command names are case-insensitive; keys, values, members
//! and fields are taken as raw bytes.

use crate::keyspace::Ttl;
use crate::protocol::{Answer, Command, Reply};
use crdt_types::Bytes;
use std::ffi::{OsStr, OsString};

/// One data command: its name, its arguments and what it does. The table
/// [`COMMANDS`] drives both parsing and the help text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandSpec {
    /// The lower-case name typed on the command line.
    pub name: &'static str,
    /// The arguments, as shown in the usage line.
    pub args: &'static str,
    /// One line saying what it does.
    pub summary: &'static str,
    /// Whether it reads or writes, which decides the client options it
    /// takes (`--read`, or `--consistency` and `-v`).
    pub access: Access,
}

/// What a data command does with its keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// It names no key (`ping`).
    NoKey,
    /// It reads: `--read` says how many replicas it merges.
    Read,
    /// It writes: `--consistency` says how many replicas must apply it,
    /// and `-v` prints how many did.
    Write,
}

impl Access {
    /// What a command of this access does, as a refusal names it.
    pub fn doing(self) -> &'static str {
        match self {
            Access::NoKey => "names no key",
            Access::Read => "only reads",
            Access::Write => "writes",
        }
    }
}

impl CommandSpec {
    /// `meridian <name> <args>`.
    pub fn usage(&self) -> String {
        if self.args.is_empty() {
            format!("meridian {}", self.name)
        } else {
            format!("meridian {} {}", self.name, self.args)
        }
    }

    /// What `meridian help <name>` prints: the usage line, then the
    /// summary.
    pub fn help(&self) -> String {
        format!("usage: {}\n{}", self.usage(), self.summary)
    }
}

const fn spec(
    name: &'static str,
    args: &'static str,
    summary: &'static str,
    access: Access,
) -> CommandSpec {
    CommandSpec {
        name,
        args,
        summary,
        access,
    }
}

const fn read(name: &'static str, args: &'static str, summary: &'static str) -> CommandSpec {
    spec(name, args, summary, Access::Read)
}

const fn write(name: &'static str, args: &'static str, summary: &'static str) -> CommandSpec {
    spec(name, args, summary, Access::Write)
}

/// Every data command, in the order the help lists them.
pub const COMMANDS: &[CommandSpec] = &[
    spec(
        "ping",
        "[MESSAGE]",
        "check that the region answers (PONG, or MESSAGE)",
        Access::NoKey,
    ),
    spec(
        "echo",
        "MESSAGE",
        "MESSAGE, once the region answers a ping",
        Access::NoKey,
    ),
    write(
        "set",
        "KEY VALUE [--ex SECONDS | --px MS]",
        "write a register, optionally expiring (or at a Unix time: --exat \
         UNIX_SECONDS, --pxat UNIX_MS)",
    ),
    write(
        "mset",
        "KEY VALUE [KEY VALUE...]",
        "write several registers (a key named twice takes its last value), \
         all sent at once and not atomically; unlike Redis's MSET a key of \
         another type is not overwritten (WRONGTYPE)",
    ),
    read("get", "KEY", "read a register (or a counter, in decimal)"),
    read(
        "mget",
        "KEY...",
        "read several registers at once: their values in order, (nil) for a \
         key that does not exist or is not a register or counter",
    ),
    read(
        "strlen",
        "KEY",
        "the length of a register's value (0: no such key)",
    ),
    write(
        "del",
        "KEY...",
        "delete keys (what their replica has seen); answers how many existed. \
         Several keys are deleted one by one, not atomically",
    ),
    write("unlink", "KEY...", "the same as del"),
    read(
        "exists",
        "KEY...",
        "how many of the keys exist (a key named twice counts twice)",
    ),
    write("incr", "KEY", "add 1 to a counter"),
    write("incrby", "KEY N", "add N to a counter"),
    write("decr", "KEY", "take 1 from a counter"),
    write("decrby", "KEY N", "take N from a counter"),
    write("sadd", "KEY MEMBER...", "add members to a set"),
    write("srem", "KEY MEMBER...", "remove members from a set"),
    read("smembers", "KEY", "list a set's members"),
    read(
        "sunion",
        "KEY...",
        "the members of any of the sets, in byte order (a missing key is an \
         empty set)",
    ),
    read(
        "sinter",
        "KEY...",
        "the members of every one of the sets, in byte order",
    ),
    read(
        "sdiff",
        "KEY...",
        "the members of the first set that are in none of the others, in \
         byte order",
    ),
    read(
        "sscan",
        "KEY CURSOR [MATCH PATTERN] [COUNT N]",
        "a page of a set's members, N of them (default 10) after CURSOR (0: \
         from the first) in byte order: prints the next page's cursor (0: \
         none left), then the members (with MATCH, those of the N that match \
         the glob PATTERN, as scan's)",
    ),
    read("sismember", "KEY MEMBER", "whether MEMBER is in the set"),
    read(
        "smismember",
        "KEY MEMBER...",
        "whether each MEMBER is in the set, in order (1 or 0)",
    ),
    read("scard", "KEY", "count a set's members"),
    write(
        "hset",
        "KEY FIELD VALUE [FIELD VALUE...]",
        "write map fields; answers how many are new. Several fields are \
         written one by one, not atomically",
    ),
    read("hget", "KEY FIELD", "read a map field"),
    read(
        "hmget",
        "KEY FIELD...",
        "read several map fields at once: their values in order, (nil) for \
         a missing one (a counter field in decimal; a set or map field is \
         WRONGTYPE, as in hget)",
    ),
    read("hexists", "KEY FIELD", "whether the map has FIELD (1 or 0)"),
    write("hdel", "KEY FIELD...", "remove map fields"),
    read("hgetall", "KEY", "list a map's fields and values"),
    read("hkeys", "KEY", "list a map's fields"),
    read(
        "hvals",
        "KEY",
        "list a map's values, in the order of their fields",
    ),
    read(
        "hscan",
        "KEY CURSOR [MATCH PATTERN] [COUNT N]",
        "a page of a map's fields and values, as sscan pages a set",
    ),
    write("hincrby", "KEY FIELD N", "add N to a map field counter"),
    read("hlen", "KEY", "count a map's fields"),
    write(
        "mvset",
        "KEY VALUE",
        "write a multi-value register (keeps concurrent writes)",
    ),
    read(
        "mvget",
        "KEY",
        "read every concurrent value of a multi-value register",
    ),
    write(
        "expire",
        "KEY SECONDS",
        "expire the key SECONDS from now (0 or less: delete it now)",
    ),
    write(
        "pexpire",
        "KEY MS",
        "expire the key MS milliseconds from now (0 or less: delete it now)",
    ),
    write(
        "expireat",
        "KEY UNIX_SECONDS",
        "expire the key at a Unix time, by this machine's clock (past: \
         delete it now)",
    ),
    write(
        "pexpireat",
        "KEY UNIX_MS",
        "expire the key at a Unix time in milliseconds, as expireat",
    ),
    read(
        "ttl",
        "KEY",
        "seconds left to live (-1: never expires, -2: no such key)",
    ),
    read(
        "pttl",
        "KEY",
        "milliseconds left to live (-1: never expires, -2: no such key)",
    ),
    read(
        "expiretime",
        "KEY",
        "the Unix time the key expires at, by this machine's clock and the \
         time it has left (-1: never expires, -2: no such key)",
    ),
    read("pexpiretime", "KEY", "expiretime in milliseconds"),
    write("persist", "KEY", "remove the key's expiry"),
    spec(
        "scan",
        "CURSOR [MATCH PATTERN] [COUNT N] [TYPE TYPE]",
        "a page of the region's keys, as Redis's SCAN: start with cursor 0; \
         prints the next page's cursor (0: none left), then the keys. \
         PATTERN is a glob (* ? [a-z] [^a] \\x), TYPE a type's name, each \
         node looks at about N keys (default 10)",
        Access::NoKey,
    ),
    spec(
        "keys",
        "PATTERN",
        "every key of the region matching PATTERN (a glob, as scan's MATCH), \
         in hash order: scan run page after page, so unlike Redis's KEYS no \
         node stops for it; `meridian --raw keys` prints each page as it \
         comes (an error then ends the list part way), the shell and the \
         formatted list hold it in memory",
        Access::NoKey,
    ),
    read(
        "type",
        "KEY",
        "the key's type (register, counter, set, map, mvregister, none)",
    ),
];

/// The spec of command `name` (case-insensitive).
pub fn find(name: &str) -> Option<&'static CommandSpec> {
    COMMANDS
        .iter()
        .find(|spec| spec.name.eq_ignore_ascii_case(name))
}

/// The data commands as help text, with how to type them after
/// `meridian`.
pub fn help_text() -> String {
    let mut text = String::from("Data commands (like redis-cli; options go before the command):\n");
    text.push_str(&command_list());
    text.push_str(
        "\n`meridian help COMMAND` shows one command's usage. Every word after a command's name is\n\
         the command's own, even one that looks like an option: `meridian del -h` deletes the key -h.\n\
         `meridian` with no command is a shell: one command per line, one client kept connected.\n",
    );
    text
}

/// The data commands: one line each, usage then summary.
pub fn command_list() -> String {
    let width = COMMANDS
        .iter()
        .map(|spec| spec.name.len() + 1 + spec.args.len())
        .max()
        .unwrap_or(0);
    let mut text = String::new();
    for spec in COMMANDS {
        let call = if spec.args.is_empty() {
            spec.name.to_owned()
        } else {
            format!("{} {}", spec.name, spec.args)
        };
        let mut line = format!("  {call:<width$} ");
        for word in spec.summary.split(' ') {
            if line.len() + 1 + word.len() > HELP_WIDTH && line.trim_end().len() > width + 2 {
                text.push_str(line.trim_end());
                text.push('\n');
                line = format!("  {:width$} ", "");
            }
            line.push(' ');
            line.push_str(word);
        }
        text.push_str(&line);
        text.push('\n');
    }
    text
}

/// Help lines are wrapped to this many columns, as clap wraps its own.
const HELP_WIDTH: usize = 100;

/// A data command line that does not make a [`Command`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsageError {
    /// No command was given.
    #[error("no command given")]
    Empty,
    /// The first word is not a command.
    #[error("unknown command '{name}' (see `meridian --help`)")]
    UnknownCommand {
        /// The word as typed.
        name: String,
    },
    /// Too few or too many arguments.
    #[error("wrong number of arguments for '{}'\nusage: {}", .spec.name, .spec.usage())]
    WrongArity {
        /// The command.
        spec: &'static CommandSpec,
    },
    /// An argument that must be a number is not one, or is out of range.
    #[error("{what} must be {expected}, not '{value}'\nusage: {}", .spec.usage())]
    BadNumber {
        /// The command.
        spec: &'static CommandSpec,
        /// Which argument (`N`, `SECONDS`...).
        what: &'static str,
        /// What it must be.
        expected: &'static str,
        /// The argument as typed.
        value: String,
    },
    /// A number that parses but cannot be used (a decrement that would
    /// overflow, an expire time too far ahead).
    #[error("{message}\nusage: {}", .spec.usage())]
    OutOfRange {
        /// The command.
        spec: &'static CommandSpec,
        /// What is wrong, with the argument.
        message: String,
    },
    /// A client option given before the command that it would ignore
    /// (`--read` with a write, `--consistency` or `-v` with a read).
    #[error("{option} is for {users} only: '{}' {}", .spec.name, .spec.access.doing())]
    OptionNotTaken {
        /// The command.
        spec: &'static CommandSpec,
        /// The option as written (`--read`).
        option: &'static str,
        /// The commands that take it.
        users: &'static str,
    },
    /// An option the command does not take, or one given twice.
    #[error("{problem} '{option}'\nusage: {}", .spec.usage())]
    BadOption {
        /// The command.
        spec: &'static CommandSpec,
        /// The option as typed.
        option: String,
        /// What is wrong with it.
        problem: &'static str,
    },
}

/// A data command line as the protocol commands it sends, in order, and
/// how their answers combine into the one printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataCommand {
    /// The commands (never empty): sent one after another, or all at once
    /// for [`Combine::Each`] and [`Combine::AllOk`].
    pub commands: Vec<Command>,
    /// How their answers make one.
    pub combine: Combine,
    /// For an expiry at a Unix time (`expireat`, `pexpireat`, `set ...
    /// --exat`): that time, ms. The first command's time to live is taken
    /// from it by this machine's clock when the line is sent
    /// ([`DataCommand::timed_at`]); [`parse`] takes it as of parsing.
    pub expire_at_ms: Option<i128>,
}

/// How the answers of a [`DataCommand`]'s commands make the one printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Combine {
    /// The one command's answer.
    One,
    /// The sum of the integer answers: keys deleted (`del k1 k2`), fields
    /// created (`hset h f1 v1 f2 v2`).
    Sum,
    /// How many `Type` answers name a type (`exists k1 k2`).
    CountExisting,
    /// The message once the ping is answered (`ping MESSAGE`).
    Echo(Bytes),
    /// Every page of the one `Scan`, from cursor 0 to the last, as one
    /// list of keys (`keys PATTERN`).
    AllKeys,
    /// Every answer's reply, in order, as one list (`mget`, `hmget`,
    /// `smismember`). The commands only read, and are sent at once.
    Each,
    /// `OK` once every command is done (`mset`).
    AllOk,
    /// 1 if the one answer found a value, else 0 (`hexists`).
    Found,
    /// The length of the one answer's value, 0 for none (`strlen`).
    Length,
    /// The one answer's time to live in milliseconds, -1 for none, -2 for
    /// no key (`pttl`).
    Millis,
    /// The names of the one answer's map fields (`hkeys`).
    FieldNames,
    /// The values of the one answer's map fields, as one list (`hvals`).
    FieldValues,
    /// The sets of the `SMembers` answers made one (`sunion`, `sinter`,
    /// `sdiff`).
    Sets(SetOp),
    /// The Unix time the one `Ttl` answer's key expires at: this
    /// machine's clock when the answer is combined plus the key's time
    /// left, in milliseconds, or in seconds (rounded, as Redis's
    /// `EXPIRETIME`) when `seconds`; -1 for no expiry, -2 for no key
    /// (`expiretime`, `pexpiretime`).
    ExpireTime {
        /// In seconds rather than milliseconds.
        seconds: bool,
    },
}

/// How [`Combine::Sets`] makes one set of several.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetOp {
    /// Members of any of them.
    Union,
    /// Members of all of them.
    Intersection,
    /// Members of the first and none of the others.
    Difference,
}

impl SetOp {
    /// The sets `sets` made one, in byte order.
    ///
    /// ```
    /// use meridian::cli::command::SetOp;
    ///
    /// let sets = [vec!["a".into(), "b".into()], vec!["b".into(), "c".into()]];
    /// assert_eq!(SetOp::Union.apply(&sets), ["a", "b", "c"]);
    /// assert_eq!(SetOp::Intersection.apply(&sets), ["b"]);
    /// assert_eq!(SetOp::Difference.apply(&sets), ["a"]);
    /// ```
    pub fn apply(self, sets: &[Vec<Bytes>]) -> Vec<Bytes> {
        use std::collections::BTreeSet;
        let Some((first, rest)) = sets.split_first() else {
            return Vec::new();
        };
        let mut result: BTreeSet<&Bytes> = first.iter().collect();
        for set in rest {
            let set: BTreeSet<&Bytes> = set.iter().collect();
            match self {
                SetOp::Union => result.extend(set),
                SetOp::Intersection => result.retain(|m| set.contains(m)),
                SetOp::Difference => result.retain(|m| !set.contains(m)),
            }
        }
        result.into_iter().cloned().collect()
    }
}

impl DataCommand {
    fn one(command: Command) -> DataCommand {
        DataCommand {
            commands: vec![command],
            combine: Combine::One,
            expire_at_ms: None,
        }
    }

    /// The line as it is sent at `now_ms` (this machine's Unix time): an
    /// expiry at a Unix time ([`Self::expire_at_ms`]) becomes the time
    /// from `now_ms` to it, a deletion when it has passed (a key that
    /// expires at once for `set`); any other line as it is.
    ///
    /// ```
    /// use meridian::cli::command::parse_at;
    /// use meridian::protocol::Command;
    ///
    /// let line = parse_at(&["expireat", "k", "1000"], 400_000).unwrap();
    /// let later = line.timed_at(500_000);
    /// assert_eq!(later.commands, [Command::Expire { key: "k".into(), ttl_ms: 500_000 }]);
    /// assert_eq!(line.timed_at(1_000_000).commands, [Command::Del { key: "k".into() }]);
    /// ```
    pub fn timed_at(&self, now_ms: u64) -> DataCommand {
        let mut line = self.clone();
        let (Some(at_ms), Some(first)) = (self.expire_at_ms, line.commands.first_mut()) else {
            return line;
        };
        let ttl = u64::try_from(at_ms - i128::from(now_ms))
            .ok()
            .filter(|ttl| *ttl > 0);
        *first = match first.clone() {
            Command::Set { key, value, .. } => Command::Set {
                key,
                value,
                ttl_ms: Some(ttl.unwrap_or(1)),
            },
            Command::Expire { key, .. } | Command::Del { key } => match ttl {
                Some(ttl_ms) => Command::Expire { key, ttl_ms },
                None => Command::Del { key },
            },
            other => other,
        };
        line
    }

    /// The command whose kind the whole has (they are all of one kind):
    /// whether it writes decides if `-v` shows acknowledgements.
    pub fn first(&self) -> &Command {
        &self.commands[0]
    }

    /// The answer printed, from the answers of [`Self::commands`] in
    /// order. Acknowledgements are the fewest any command got. A line
    /// printed as a list of replies ([`Self::items`]) gives its first
    /// answer here.
    ///
    /// ```
    /// use meridian::cli::command::parse;
    /// use meridian::protocol::{Answer, Reply};
    ///
    /// let del = parse(&["del", "a", "b", "c"]).unwrap();
    /// let answers = [1, 0, 1].map(|n| Answer { reply: Reply::Int(n), replicas_acked: 2, replicas_needed: 2 });
    /// assert_eq!(del.combine(answers.to_vec()).reply, Reply::Int(2));
    /// ```
    pub fn combine(&self, answers: Vec<Answer>) -> Answer {
        self.combine_at(answers, unix_now_ms())
    }

    /// [`Self::combine`] at `now_ms`, this machine's Unix time, for the
    /// lines whose answer depends on it (`expiretime`).
    pub fn combine_at(&self, answers: Vec<Answer>, now_ms: u64) -> Answer {
        let acked = answers.iter().map(|a| a.replicas_acked).min().unwrap_or(0);
        let needed = answers.iter().map(|a| a.replicas_needed).max().unwrap_or(0);
        let count = |hit: fn(&Reply) -> i64| answers.iter().map(|a| hit(&a.reply)).sum();
        let one = answers.first().map(|a| &a.reply);
        let reply = match &self.combine {
            Combine::One | Combine::AllKeys | Combine::Each | Combine::FieldValues => {
                return answers.into_iter().next().unwrap_or(Answer {
                    reply: Reply::Nil,
                    replicas_acked: 0,
                    replicas_needed: 0,
                })
            }
            Combine::Sum => Reply::Int(count(|r| match r {
                Reply::Int(n) => *n,
                Reply::Bool(b) => i64::from(*b),
                _ => 0,
            })),
            Combine::CountExisting => {
                Reply::Int(count(|r| i64::from(matches!(r, Reply::Type(Some(_))))))
            }
            Combine::Echo(message) => Reply::Value(message.clone()),
            Combine::AllOk => Reply::Ok,
            Combine::Found => Reply::Int(i64::from(!matches!(
                one,
                None | Some(Reply::Nil | Reply::Field(None))
            ))),
            Combine::Length => Reply::Int(match one {
                Some(Reply::Value(value)) => i64::try_from(value.len()).unwrap_or(i64::MAX),
                _ => 0,
            }),
            Combine::ExpireTime { seconds } => Reply::Int(match one {
                Some(Reply::Ttl(Ttl::Ms(ms))) => {
                    let at = now_ms.saturating_add(*ms);
                    let at = if *seconds {
                        at.saturating_add(500) / 1000
                    } else {
                        at
                    };
                    i64::try_from(at).unwrap_or(i64::MAX)
                }
                Some(Reply::Ttl(Ttl::Persistent)) => -1,
                _ => -2,
            }),
            Combine::Millis => Reply::Int(match one {
                Some(Reply::Ttl(Ttl::Ms(ms))) => i64::try_from(*ms).unwrap_or(i64::MAX),
                Some(Reply::Ttl(Ttl::Persistent)) => -1,
                _ => -2,
            }),
            Combine::Sets(op) => {
                let sets: Vec<Vec<Bytes>> = answers
                    .iter()
                    .map(|a| match &a.reply {
                        Reply::Values(members) => members.clone(),
                        _ => Vec::new(),
                    })
                    .collect();
                Reply::Values(op.apply(&sets))
            }
            Combine::FieldNames => Reply::Values(match one {
                Some(Reply::Fields(fields)) => fields.iter().map(|(f, _)| f.clone()).collect(),
                _ => Vec::new(),
            }),
        };
        Answer {
            reply,
            replicas_acked: acked,
            replicas_needed: needed,
        }
    }
}

impl DataCommand {
    /// The replies a line prints as one list, an item each (`mget`,
    /// `hmget`, `smismember`: one per command; `hvals`: one per field);
    /// `None` for a line printed as one answer ([`Self::combine`]).
    ///
    /// ```
    /// use meridian::cli::command::parse;
    /// use meridian::protocol::{Answer, Reply};
    ///
    /// let mget = parse(&["mget", "a", "b"]).unwrap();
    /// let answers = [Reply::Value("1".into()), Reply::Nil]
    ///     .map(|reply| Answer { reply, replicas_acked: 1, replicas_needed: 1 });
    /// assert_eq!(mget.items(&answers), Some(vec![Reply::Value("1".into()), Reply::Nil]));
    /// assert_eq!(parse(&["get", "a"]).unwrap().items(&answers[..1]), None);
    /// ```
    pub fn items(&self, answers: &[Answer]) -> Option<Vec<Reply>> {
        match &self.combine {
            Combine::Each => Some(answers.iter().map(|a| a.reply.clone()).collect()),
            Combine::FieldValues => Some(match answers.first().map(|a| &a.reply) {
                Some(Reply::Fields(fields)) => fields
                    .iter()
                    .map(|(_, value)| Reply::Field(Some(value.clone())))
                    .collect(),
                _ => Vec::new(),
            }),
            _ => None,
        }
    }
}

/// Parses a data command line (`["set", "k", "v"]`) into the commands it
/// sends.
///
/// ```
/// use meridian::cli::command::{parse, Combine};
/// use meridian::protocol::Command;
///
/// let incr = parse(&["incrby", "hits", "-3"]).unwrap();
/// assert_eq!(incr.commands, [Command::IncrBy { key: "hits".into(), by: -3 }]);
/// assert_eq!(incr.combine, Combine::One);
/// assert!(parse(&["incrby", "hits", "many"]).is_err());
/// let del = parse(&["del", "a", "b"]).unwrap();
/// assert_eq!(del.commands, [Command::Del { key: "a".into() }, Command::Del { key: "b".into() }]);
/// assert_eq!(del.combine, Combine::Sum);
/// ```
pub fn parse<S: AsRef<OsStr>>(words: &[S]) -> Result<DataCommand, UsageError> {
    parse_at(words, unix_now_ms())
}

/// This machine's Unix time in milliseconds (0 before 1970).
pub fn unix_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// [`parse`] with the Unix time, ms, that absolute expiry times
/// (`expireat`, `set ... EXAT`) and `expiretime` are taken against.
///
/// ```
/// use meridian::cli::command::parse_at;
/// use meridian::protocol::Command;
///
/// let at = parse_at(&["expireat", "k", "1000"], 400_000).unwrap();
/// assert_eq!(at.commands, [Command::Expire { key: "k".into(), ttl_ms: 600_000 }]);
/// ```
pub fn parse_at<S: AsRef<OsStr>>(words: &[S], now_ms: u64) -> Result<DataCommand, UsageError> {
    let Some((name, args)) = words.split_first() else {
        return Err(UsageError::Empty);
    };
    let name = name.as_ref().to_string_lossy();
    let spec = find(&name).ok_or_else(|| UsageError::UnknownCommand {
        name: name.clone().into_owned(),
    })?;
    // Every word after the name is an argument, whatever it looks like:
    // `del -h` deletes the key `-h` (`meridian help del` shows the usage).
    let args: Vec<&OsStr> = args.iter().map(AsRef::as_ref).collect();
    Parser {
        spec,
        args: &args,
        now_ms,
        expire_at_ms: std::cell::Cell::new(None),
    }
    .data_command()
}

struct Parser<'a> {
    spec: &'static CommandSpec,
    args: &'a [&'a OsStr],
    /// This machine's Unix time, ms, for absolute expiry times.
    now_ms: u64,
    /// The Unix time, ms, of an expiry at a Unix time, once parsed.
    expire_at_ms: std::cell::Cell<Option<i128>>,
}

impl Parser<'_> {
    /// The forms that send several commands, else the one command.
    fn data_command(&self) -> Result<DataCommand, UsageError> {
        let a = self.args;
        let each = |commands: Vec<Command>, combine| DataCommand {
            commands,
            combine,
            expire_at_ms: None,
        };
        // The sum of one answer is that answer.
        let sum = |mut commands: Vec<Command>| match commands.len() {
            1 => DataCommand::one(commands.remove(0)),
            _ => each(commands, Combine::Sum),
        };
        Ok(match self.spec.name {
            "ping" => match a {
                [] => DataCommand::one(Command::Ping),
                [message] => each(vec![Command::Ping], Combine::Echo(bytes(message))),
                _ => return Err(self.wrong_arity()),
            },
            "echo" => match a {
                [message] => each(vec![Command::Ping], Combine::Echo(bytes(message))),
                _ => return Err(self.wrong_arity()),
            },
            "sunion" | "sinter" | "sdiff" => {
                let op = match self.spec.name {
                    "sunion" => SetOp::Union,
                    "sinter" => SetOp::Intersection,
                    _ => SetOp::Difference,
                };
                let reads = self
                    .keys()?
                    .into_iter()
                    .map(|key| Command::SMembers { key });
                each(reads.collect(), Combine::Sets(op))
            }
            "del" | "unlink" => sum(self
                .keys()?
                .into_iter()
                .map(|key| Command::Del { key })
                .collect()),
            "exists" => each(
                self.keys()?
                    .into_iter()
                    .map(|key| Command::Type { key })
                    .collect(),
                Combine::CountExisting,
            ),
            "keys" => match a {
                [pattern] => each(
                    vec![Command::Scan {
                        from: 0,
                        count: crate::node::SCAN_HASHES_MAX,
                        pattern: Some(bytes(pattern)),
                        kind: None,
                    }],
                    Combine::AllKeys,
                ),
                _ => return Err(self.wrong_arity()),
            },
            "mget" => each(
                self.keys()?
                    .into_iter()
                    .map(|key| Command::Get { key })
                    .collect(),
                Combine::Each,
            ),
            "mset" => match a {
                pairs if !pairs.is_empty() && pairs.len() % 2 == 0 => {
                    // Sent at once: a key named twice is written once, with
                    // its last value, as the last write wins in Redis.
                    let pairs = pairs.chunks(2).map(|pair| (bytes(pair[0]), bytes(pair[1])));
                    each(crate::client::mset_commands(pairs), Combine::AllOk)
                }
                _ => return Err(self.wrong_arity()),
            },
            "smismember" => {
                let (key, members) = self.key_and_many()?;
                let commands = members
                    .into_iter()
                    .map(|member| Command::SIsMember {
                        key: key.clone(),
                        member,
                    })
                    .collect();
                each(commands, Combine::Each)
            }
            "hmget" => {
                let (key, fields) = self.key_and_many()?;
                let commands = fields
                    .into_iter()
                    .map(|field| Command::HGet {
                        key: key.clone(),
                        field,
                    })
                    .collect();
                each(commands, Combine::Each)
            }
            "hexists" => match a {
                [key, field] => each(
                    vec![Command::MapGet {
                        key: bytes(key),
                        path: vec![bytes(field)],
                    }],
                    Combine::Found,
                ),
                _ => return Err(self.wrong_arity()),
            },
            "strlen" => each(vec![Command::Get { key: self.key1()? }], Combine::Length),
            "pttl" => each(vec![Command::Ttl { key: self.key1()? }], Combine::Millis),
            "expiretime" | "pexpiretime" => each(
                vec![Command::Ttl { key: self.key1()? }],
                Combine::ExpireTime {
                    seconds: self.spec.name == "expiretime",
                },
            ),
            "hkeys" => each(
                vec![Command::HGetAll { key: self.key1()? }],
                Combine::FieldNames,
            ),
            "hvals" => each(
                vec![Command::HGetAll { key: self.key1()? }],
                Combine::FieldValues,
            ),
            "hset" => match a {
                [key, pairs @ ..] if !pairs.is_empty() && pairs.len() % 2 == 0 => sum(pairs
                    .chunks(2)
                    .map(|pair| Command::HSet {
                        key: bytes(key),
                        field: bytes(pair[0]),
                        value: bytes(pair[1]),
                    })
                    .collect()),
                _ => return Err(self.wrong_arity()),
            },
            _ => {
                let mut line = DataCommand::one(self.command()?);
                line.expire_at_ms = self.expire_at_ms.get();
                line
            }
        })
    }

    fn command(&self) -> Result<Command, UsageError> {
        let a = self.args;
        Ok(match self.spec.name {
            "set" => return self.set(),
            "get" => Command::Get { key: self.key1()? },
            "incr" => Command::IncrBy {
                key: self.key1()?,
                by: 1,
            },
            "decr" => Command::IncrBy {
                key: self.key1()?,
                by: -1,
            },
            "incrby" => {
                self.arity(2)?;
                Command::IncrBy {
                    key: bytes(a[0]),
                    by: self.int(a[1])?,
                }
            }
            "decrby" => {
                self.arity(2)?;
                let by = self.int(a[1])?;
                let by = by.checked_neg().ok_or_else(|| UsageError::OutOfRange {
                    spec: self.spec,
                    message: format!(
                        "decrement would overflow: -({by}) is beyond the 64-bit signed range"
                    ),
                })?;
                Command::IncrBy {
                    key: bytes(a[0]),
                    by,
                }
            }
            "sadd" => {
                let (key, members) = self.key_and_many()?;
                Command::SAdd { key, members }
            }
            "srem" => {
                let (key, members) = self.key_and_many()?;
                Command::SRem { key, members }
            }
            "smembers" => Command::SMembers { key: self.key1()? },
            "sismember" => {
                self.arity(2)?;
                Command::SIsMember {
                    key: bytes(a[0]),
                    member: bytes(a[1]),
                }
            }
            "scard" => Command::SCard { key: self.key1()? },
            "hget" => {
                self.arity(2)?;
                Command::HGet {
                    key: bytes(a[0]),
                    field: bytes(a[1]),
                }
            }
            "hdel" => {
                let (key, fields) = self.key_and_many()?;
                Command::HDel { key, fields }
            }
            "hgetall" => Command::HGetAll { key: self.key1()? },
            "hincrby" => {
                self.arity(3)?;
                Command::HIncrBy {
                    key: bytes(a[0]),
                    field: bytes(a[1]),
                    by: self.int(a[2])?,
                }
            }
            "hlen" => Command::HLen { key: self.key1()? },
            "sscan" => match self.scan()? {
                (key, after, count, None) => Command::SScan { key, after, count },
                (key, after, count, Some(pattern)) => Command::SScanMatch {
                    key,
                    after,
                    count,
                    pattern,
                },
            },
            "hscan" => match self.scan()? {
                (key, after, count, None) => Command::HScan { key, after, count },
                (key, after, count, Some(pattern)) => Command::HScanMatch {
                    key,
                    after,
                    count,
                    pattern,
                },
            },
            "mvset" => {
                self.arity(2)?;
                Command::MvSet {
                    key: bytes(a[0]),
                    value: bytes(a[1]),
                }
            }
            "mvget" => Command::MvGet { key: self.key1()? },
            "expire" => {
                self.arity(2)?;
                let key = bytes(a[0]);
                // Like Redis, a time that is not in the future deletes the key.
                match self.ttl_ms(a[1], "SECONDS", 1000)? {
                    Some(ttl_ms) => Command::Expire { key, ttl_ms },
                    None => Command::Del { key },
                }
            }
            "pexpire" => {
                self.arity(2)?;
                let key = bytes(a[0]);
                match self.ttl_ms(a[1], "MS", 1)? {
                    Some(ttl_ms) => Command::Expire { key, ttl_ms },
                    None => Command::Del { key },
                }
            }
            "expireat" | "pexpireat" => {
                self.arity(2)?;
                let key = bytes(a[0]);
                let (what, scale) = match self.spec.name {
                    "expireat" => ("UNIX_SECONDS", 1000),
                    _ => ("UNIX_MS", 1),
                };
                // Like Redis, a time that has passed deletes the key.
                match self.ttl_until(a[1], what, scale)? {
                    Some(ttl_ms) => Command::Expire { key, ttl_ms },
                    None => Command::Del { key },
                }
            }
            "ttl" => Command::Ttl { key: self.key1()? },
            "persist" => Command::Persist { key: self.key1()? },
            "type" => Command::Type { key: self.key1()? },
            "scan" => self.keyspace_scan()?,
            other => unreachable!("command {other} is in COMMANDS but has no parser"),
        })
    }

    /// `set KEY VALUE [--ex SECONDS | --px MS | --exat UNIX_SECONDS |
    /// --pxat UNIX_MS]` (also Redis's `EX`/`PX`/`EXAT`/`PXAT`).
    fn set(&self) -> Result<Command, UsageError> {
        let a = self.args;
        if a.len() < 2 {
            return Err(self.wrong_arity());
        }
        let mut ttl_ms = None;
        let mut kind = None;
        let mut rest = &a[2..];
        while let Some((option, tail)) = rest.split_first() {
            let name = option.to_string_lossy().to_ascii_lowercase();
            let name = name.strip_prefix("--").unwrap_or(&name).to_owned();
            let (what, scale, absolute) = match name.as_str() {
                "ex" => ("SECONDS", 1000, false),
                "px" => ("MS", 1, false),
                "exat" => ("UNIX_SECONDS", 1000, true),
                "pxat" => ("UNIX_MS", 1, true),
                _ => {
                    return Err(self.bad_option(option, "unknown option"));
                }
            };
            // As in Redis, the same option again replaces the first; two
            // kinds of expiry are refused.
            if kind.is_some_and(|kind| kind != name) {
                return Err(self.bad_option(option, "expiry given twice:"));
            }
            kind = Some(name);
            let Some((value, tail)) = tail.split_first() else {
                return Err(self.wrong_arity());
            };
            // Unlike expire, set takes no time in the past (Redis: "invalid
            // expire time"), however far back.
            let not_positive = || {
                self.bad_expire_time(format!(
                    "{} {} is not a positive time",
                    option.to_string_lossy(),
                    value.to_string_lossy()
                ))
            };
            if integer(value).is_some_and(|n| (i128::from(i64::MIN)..=0).contains(&n)) {
                return Err(not_positive());
            }
            ttl_ms = Some(if absolute {
                // A time already past makes a key that expires at once, as
                // in Redis.
                self.ttl_until(value, what, scale)?.unwrap_or(1)
            } else {
                self.ttl_ms(value, what, scale)?.ok_or_else(not_positive)?
            });
            rest = tail;
        }
        Ok(Command::Set {
            key: bytes(a[0]),
            value: bytes(a[1]),
            ttl_ms,
        })
    }

    /// `KEY CURSOR [MATCH PATTERN] [COUNT N]` of `sscan` and `hscan`, its
    /// options in any order, once each (also `--match` and `--count`).
    fn scan(&self) -> Result<(Bytes, Option<Bytes>, u32, Option<Bytes>), UsageError> {
        let (key, cursor, mut rest) = match self.args {
            [key, cursor, rest @ ..] => (key, cursor, rest),
            _ => return Err(self.wrong_arity()),
        };
        let after = parse_cursor(cursor).ok_or_else(|| UsageError::BadNumber {
            spec: self.spec,
            what: "CURSOR",
            expected: "0 or a cursor printed by the previous page",
            value: cursor.to_string_lossy().into_owned(),
        })?;
        let (mut count, mut pattern) = (None, None);
        while let Some((option, tail)) = rest.split_first() {
            let Some((value, tail)) = tail.split_first() else {
                return Err(match option_name(option).as_str() {
                    "match" | "count" => self.wrong_arity(),
                    _ => self.bad_option(option, "unknown option"),
                });
            };
            match option_name(option).as_str() {
                "match" if pattern.is_none() => pattern = Some(bytes(value)),
                "count" if count.is_none() => count = Some(self.count(value)?),
                "match" | "count" => return Err(self.bad_option(option, "option given twice:")),
                _ => return Err(self.bad_option(option, "unknown option")),
            }
            rest = tail;
        }
        Ok((
            bytes(key),
            after,
            count.unwrap_or(SCAN_COUNT_DEFAULT),
            pattern,
        ))
    }

    /// The `N` of `COUNT N`: a whole number from 1 to `u32::MAX`.
    fn count(&self, n: &OsStr) -> Result<u32, UsageError> {
        integer(n)
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| *n > 0)
            .ok_or_else(|| UsageError::BadNumber {
                spec: self.spec,
                what: "N",
                expected: "a whole number from 1 to 4294967295",
                value: n.to_string_lossy().into_owned(),
            })
    }

    /// `CURSOR [MATCH PATTERN] [COUNT N] [TYPE TYPE]` of `scan`, its
    /// options in any order, once each (also `--match` and the like).
    fn keyspace_scan(&self) -> Result<Command, UsageError> {
        let Some((cursor, mut rest)) = self.args.split_first() else {
            return Err(self.wrong_arity());
        };
        let from = integer(cursor)
            .and_then(|n| u64::try_from(n).ok())
            .ok_or_else(|| UsageError::BadNumber {
                spec: self.spec,
                what: "CURSOR",
                expected: "0 or a cursor printed by the previous page",
                value: cursor.to_string_lossy().into_owned(),
            })?;
        let (mut pattern, mut count, mut kind) = (None, None, None);
        while let Some((option, tail)) = rest.split_first() {
            let Some((value, tail)) = tail.split_first() else {
                return Err(match option_name(option).as_str() {
                    "match" | "count" | "type" => self.wrong_arity(),
                    _ => self.bad_option(option, "unknown option"),
                });
            };
            match option_name(option).as_str() {
                "match" if pattern.is_none() => pattern = Some(bytes(value)),
                "count" if count.is_none() => count = Some(self.count(value)?),
                "type" if kind.is_none() => {
                    kind = Some(kind_named(&value.to_string_lossy()).ok_or_else(|| {
                        UsageError::BadNumber {
                            spec: self.spec,
                            what: "TYPE",
                            expected: "register, counter, set, map or mvregister \
                                       (or Redis's string or hash)",
                            value: value.to_string_lossy().into_owned(),
                        }
                    })?)
                }
                "match" | "count" | "type" => {
                    return Err(self.bad_option(option, "option given twice:"))
                }
                _ => return Err(self.bad_option(option, "unknown option")),
            }
            rest = tail;
        }
        Ok(Command::Scan {
            from,
            count: count.unwrap_or(SCAN_COUNT_DEFAULT),
            pattern,
            kind,
        })
    }

    fn arity(&self, n: usize) -> Result<(), UsageError> {
        if self.args.len() == n {
            Ok(())
        } else {
            Err(self.wrong_arity())
        }
    }

    fn key1(&self) -> Result<Bytes, UsageError> {
        self.arity(1)?;
        Ok(bytes(self.args[0]))
    }

    fn keys(&self) -> Result<Vec<Bytes>, UsageError> {
        if self.args.is_empty() {
            return Err(self.wrong_arity());
        }
        Ok(self.args.iter().map(|key| bytes(key)).collect())
    }

    fn key_and_many(&self) -> Result<(Bytes, Vec<Bytes>), UsageError> {
        match self.args {
            [key, items @ ..] if !items.is_empty() => {
                Ok((bytes(key), items.iter().map(|item| bytes(item)).collect()))
            }
            _ => Err(self.wrong_arity()),
        }
    }

    fn int(&self, arg: &OsStr) -> Result<i64, UsageError> {
        integer(arg)
            .and_then(|n| i64::try_from(n).ok())
            .ok_or_else(|| UsageError::BadNumber {
                spec: self.spec,
                what: "N",
                expected: "an integer in the 64-bit signed range",
                value: arg.to_string_lossy().into_owned(),
            })
    }

    /// A time to live of `arg` units of `scale_ms`, in milliseconds; `None`
    /// for a time that is zero or negative. Refuses times beyond
    /// [`TTL_MS_MAX`] either way (Redis: "invalid expire time").
    fn ttl_ms(
        &self,
        arg: &OsStr,
        what: &'static str,
        scale_ms: u64,
    ) -> Result<Option<u64>, UsageError> {
        // Like Redis, a negative time below the 64-bit signed range is not
        // an integer at all; a positive one above it is too far ahead.
        let units = integer(arg)
            .filter(|n| *n >= i128::from(i64::MIN))
            .ok_or_else(|| UsageError::BadNumber {
                spec: self.spec,
                what,
                expected: "an integer in the 64-bit signed range",
                value: arg.to_string_lossy().into_owned(),
            })?;
        let max_units = TTL_MS_MAX / scale_ms;
        let too_far = |direction: &str, bound: String| {
            self.bad_expire_time(format!(
                "{} {} is too far {direction} (at {bound})",
                arg.to_string_lossy(),
                what.to_ascii_lowercase()
            ))
        };
        if units > i128::from(max_units) {
            return Err(too_far("ahead", format!("most {max_units}")));
        }
        if units < -i128::from(max_units) {
            return Err(too_far("back", format!("least -{max_units}")));
        }
        // In range, so it fits: the product is at most TTL_MS_MAX.
        Ok(u64::try_from(units)
            .ok()
            .filter(|units| *units > 0)
            .map(|units| units * scale_ms))
    }

    /// The milliseconds from now (this machine's clock) to the Unix time
    /// `arg` in units of `scale_ms`: `None` when it has passed. Refused,
    /// as Redis refuses it, when it is not an integer of the 64-bit signed
    /// range or its milliseconds are not; and when it is more than
    /// [`TTL_MS_MAX`] ahead. The time, ms, is kept for the line
    /// ([`DataCommand::expire_at_ms`]).
    fn ttl_until(
        &self,
        arg: &OsStr,
        what: &'static str,
        scale_ms: u64,
    ) -> Result<Option<u64>, UsageError> {
        let units = integer(arg)
            .filter(|n| i64::try_from(*n).is_ok())
            .ok_or_else(|| UsageError::BadNumber {
                spec: self.spec,
                what,
                expected: "an integer in the 64-bit signed range",
                value: arg.to_string_lossy().into_owned(),
            })?;
        let at_ms = units * i128::from(scale_ms);
        if i64::try_from(at_ms).is_err() {
            let max_units = i128::from(i64::MAX) / i128::from(scale_ms);
            return Err(self.bad_expire_time(format!(
                "{} {} is out of range (at most {max_units} either way)",
                arg.to_string_lossy(),
                what.to_ascii_lowercase(),
            )));
        }
        self.expire_at_ms.set(Some(at_ms));
        let ttl = at_ms - i128::from(self.now_ms);
        if ttl > i128::from(TTL_MS_MAX) {
            return Err(self.bad_expire_time(format!(
                "{} {} is too far ahead (at most {} ms from now)",
                arg.to_string_lossy(),
                what.to_ascii_lowercase(),
                TTL_MS_MAX
            )));
        }
        Ok(u64::try_from(ttl).ok().filter(|ttl| *ttl > 0))
    }

    fn bad_expire_time(&self, detail: String) -> UsageError {
        UsageError::OutOfRange {
            spec: self.spec,
            message: format!("invalid expire time in '{}': {detail}", self.spec.name),
        }
    }

    fn wrong_arity(&self) -> UsageError {
        UsageError::WrongArity { spec: self.spec }
    }

    fn bad_option(&self, option: &OsStr, problem: &'static str) -> UsageError {
        UsageError::BadOption {
            spec: self.spec,
            option: option.to_string_lossy().into_owned(),
            problem,
        }
    }
}

pub use crate::client::TTL_MS_MAX;

/// An option's name in lower case, without a leading `--`.
fn option_name(option: &OsStr) -> String {
    let name = option.to_string_lossy().to_ascii_lowercase();
    name.strip_prefix("--").unwrap_or(&name).to_owned()
}

/// The type named `name` (case-insensitive): Meridian's names, as `type`
/// prints them, and Redis's `string` and `hash` for a register and a map.
pub fn kind_named(name: &str) -> Option<crdt_types::Kind> {
    use crdt_types::Kind;
    let name = name.to_ascii_lowercase();
    [
        Kind::Register,
        Kind::Counter,
        Kind::Set,
        Kind::Map,
        Kind::MvRegister,
    ]
    .into_iter()
    .find(|k| k.name() == name)
    .or(match name.as_str() {
        "string" => Some(Kind::Register),
        "hash" => Some(Kind::Map),
        _ => None,
    })
}

/// Items per `sscan` or `hscan` page, and keys each node looks at for a
/// `scan` page, when no `COUNT` is given (as Redis).
pub const SCAN_COUNT_DEFAULT: u32 = crate::client::SCAN_COUNT_DEFAULT;

/// The text of a scan's cursor: `0` for the first page and after the last,
/// otherwise `x` and the hex of the member or field the page ended at.
///
/// ```
/// use meridian::cli::command::{cursor, parse_cursor};
///
/// assert_eq!(cursor(None), "0");
/// assert_eq!(cursor(Some(b"ab")), "x6162");
/// assert_eq!(parse_cursor("x6162".as_ref()), Some(Some("ab".into())));
/// assert_eq!(parse_cursor("0".as_ref()), Some(None));
/// ```
pub fn cursor(after: Option<&[u8]>) -> String {
    match after {
        None => "0".to_owned(),
        Some(bytes) => {
            let mut text = String::with_capacity(1 + 2 * bytes.len());
            text.push('x');
            for byte in bytes {
                text.push_str(&format!("{byte:02x}"));
            }
            text
        }
    }
}

/// The member or field a cursor printed by [`cursor`] names (`None` for
/// `0`, the first page); `None` when it is not a cursor.
pub fn parse_cursor(arg: &OsStr) -> Option<Option<Bytes>> {
    let text = arg.to_str()?;
    if text == "0" {
        return Some(None);
    }
    let hex = text.strip_prefix('x')?;
    if hex.len() % 2 != 0 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    Some(Some(Bytes::from(bytes)))
}

/// An integer written as Redis writes them: an optional `-` and decimal
/// digits, nothing else (no `+`, no spaces, no leading zero, no `-0`; `0`
/// itself is written `0`). Values beyond `i128` saturate, so callers
/// report them as out of range rather than as not numbers.
fn integer(arg: &OsStr) -> Option<i128> {
    let text = arg.to_str()?;
    if text == "0" {
        return Some(0);
    }
    let digits = text.strip_prefix('-').unwrap_or(text);
    if !digits.starts_with(|c: char| matches!(c, '1'..='9'))
        || !digits.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    Some(text.parse::<i128>().unwrap_or(if text.starts_with('-') {
        i128::MIN
    } else {
        i128::MAX
    }))
}

/// `words` and then `last` as one more argument, byte for byte (`-x`: the
/// last argument read from stdin).
pub fn with_last_argument(words: &[OsString], last: Vec<u8>) -> Vec<OsString> {
    let mut all = words.to_vec();
    #[cfg(unix)]
    all.push(std::os::unix::ffi::OsStringExt::from_vec(last));
    #[cfg(not(unix))]
    all.push(String::from_utf8_lossy(&last).into_owned().into());
    all
}

/// The raw bytes of a command-line argument.
fn bytes(arg: &OsStr) -> Bytes {
    #[cfg(unix)]
    {
        std::os::unix::ffi::OsStrExt::as_bytes(arg).into()
    }
    #[cfg(not(unix))]
    {
        arg.to_string_lossy().as_bytes().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyspace::FieldValue;

    fn b(text: &str) -> Bytes {
        text.into()
    }

    /// The one command `words` send.
    fn ok(words: &[&str]) -> Command {
        let data = all(words);
        assert_eq!(data.combine, Combine::One, "{words:?}");
        let [command] = <[Command; 1]>::try_from(data.commands).unwrap();
        command
    }

    fn all(words: &[&str]) -> DataCommand {
        parse(words).unwrap_or_else(|e| panic!("{words:?}: {e}"))
    }

    fn err(words: &[&str]) -> UsageError {
        match parse(words) {
            Ok(command) => panic!("{words:?} parsed as {command:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn every_listed_command_has_a_parser() {
        for spec in COMMANDS {
            // Arity errors, never the unreachable! arm.
            let _ = parse(&[spec.name, "k", "a", "b", "c"]);
        }
    }

    #[test]
    fn keys_is_a_whole_scan_of_one_pattern() {
        let keys = all(&["KEYS", "user:*"]);
        assert_eq!(keys.combine, Combine::AllKeys);
        assert_eq!(
            keys.commands,
            [Command::Scan {
                from: 0,
                count: crate::node::SCAN_HASHES_MAX,
                pattern: Some(b("user:*")),
                kind: None,
            }]
        );
        for words in [&["keys"][..], &["keys", "a", "b"]] {
            assert!(
                matches!(err(words), UsageError::WrongArity { .. }),
                "{words:?}"
            );
        }
    }

    #[test]
    fn scan_takes_a_cursor_and_match_count_and_type_in_any_order_once_each() {
        let scan = |from, count, pattern: Option<&str>, kind| Command::Scan {
            from,
            count,
            pattern: pattern.map(b),
            kind,
        };
        assert_eq!(ok(&["scan", "0"]), scan(0, 10, None, None));
        assert_eq!(
            ok(&[
                "SCAN",
                "18446744073709551615",
                "type",
                "Hash",
                "COUNT",
                "5",
                "match",
                "u:*"
            ]),
            scan(u64::MAX, 5, Some("u:*"), Some(crdt_types::Kind::Map))
        );
        assert_eq!(
            ok(&["scan", "7", "--match", "*", "--type", "string"]),
            scan(7, 10, Some("*"), Some(crdt_types::Kind::Register))
        );
        for kind in ["register", "counter", "set", "map", "mvregister"] {
            let Command::Scan { kind: Some(k), .. } = ok(&["scan", "0", "type", kind]) else {
                panic!("{kind}");
            };
            assert_eq!(k.name(), kind);
        }
        for (words, says) in [
            (&["scan"][..], "wrong number of arguments"),
            (&["scan", "0", "count"], "wrong number of arguments"),
            (&["scan", "-1"], "CURSOR must be"),
            (&["scan", "x6162"], "CURSOR must be"),
            (&["scan", "18446744073709551616"], "CURSOR must be"),
            (&["scan", "0", "count", "0"], "N must be"),
            (&["scan", "0", "type", "list"], "TYPE must be"),
            (&["scan", "0", "limit", "5"], "unknown option 'limit'"),
            (&["scan", "0", "extra"], "unknown option 'extra'"),
            (
                &["scan", "0", "match", "a", "MATCH", "b"],
                "option given twice: 'MATCH'",
            ),
        ] {
            let e = err(words).to_string();
            assert!(e.contains(says), "{words:?}: {e}");
        }
    }

    /// The client options a command takes follow from its access: it
    /// must say what its protocol commands do.
    #[test]
    fn every_command_reads_or_writes_as_its_access_says() {
        for spec in COMMANDS {
            let words: &[&str] = match spec.name {
                "ping" => &["ping"],
                "expire" | "pexpire" | "expireat" | "pexpireat" => &[spec.name, "k", "10"],
                "set" | "mset" | "mvset" | "incrby" | "decrby" | "sadd" | "srem" | "sismember"
                | "smismember" | "hget" | "hmget" | "hexists" | "hdel" => &[spec.name, "k", "1"],
                "hset" | "hincrby" => &[spec.name, "k", "f", "1"],
                "sscan" | "hscan" => &[spec.name, "k", "0"],
                "scan" => &["scan", "0"],
                _ => &[spec.name, "k"],
            };
            for command in all(words).commands {
                assert_eq!(
                    command.is_write(),
                    spec.access == Access::Write,
                    "{}",
                    spec.name
                );
                assert_eq!(
                    command.key().is_none(),
                    spec.access == Access::NoKey,
                    "{}",
                    spec.name
                );
            }
        }
        // expire 0 deletes: a write still.
        assert!(ok(&["expire", "k", "0"]).is_write());
    }

    #[test]
    fn a_refused_option_names_what_the_command_does() {
        let refusal = |name, option, users| UsageError::OptionNotTaken {
            spec: find(name).unwrap(),
            option,
            users,
        };
        assert_eq!(
            refusal("get", "--consistency", "writing data commands and bench").to_string(),
            "--consistency is for writing data commands and bench only: 'get' only reads"
        );
        assert_eq!(
            refusal("set", "--read", "reading data commands and bench").to_string(),
            "--read is for reading data commands and bench only: 'set' writes"
        );
        assert_eq!(
            refusal("ping", "--read", "reading data commands and bench").to_string(),
            "--read is for reading data commands and bench only: 'ping' names no key"
        );
    }

    #[test]
    fn register_commands_map_to_their_protocol_commands() {
        assert_eq!(ok(&["ping"]), Command::Ping);
        assert_eq!(ok(&["get", "k"]), Command::Get { key: b("k") });
        assert_eq!(ok(&["del", "k"]), Command::Del { key: b("k") });
        assert_eq!(
            ok(&["set", "hello", "world"]),
            Command::Set {
                key: b("hello"),
                value: b("world"),
                ttl_ms: None
            }
        );
    }

    #[test]
    fn command_names_are_case_insensitive() {
        assert_eq!(ok(&["GET", "k"]), Command::Get { key: b("k") });
        assert_eq!(ok(&["SMembers", "s"]), Command::SMembers { key: b("s") });
    }

    #[test]
    fn set_takes_an_expiry_in_seconds_or_milliseconds() {
        let with_ttl = |ttl_ms| Command::Set {
            key: b("k"),
            value: b("v"),
            ttl_ms: Some(ttl_ms),
        };
        assert_eq!(ok(&["set", "k", "v", "--ex", "60"]), with_ttl(60_000));
        assert_eq!(ok(&["set", "k", "v", "--px", "1500"]), with_ttl(1_500));
        assert_eq!(ok(&["set", "k", "v", "EX", "2"]), with_ttl(2_000));
        assert_eq!(ok(&["set", "k", "v", "px", "7"]), with_ttl(7));
    }

    #[test]
    fn set_refuses_bad_expiries() {
        assert_eq!(
            err(&["set", "k", "v", "--ex", "0"]).to_string(),
            "invalid expire time in 'set': --ex 0 is not a positive time\n\
             usage: meridian set KEY VALUE [--ex SECONDS | --px MS]"
        );
        assert!(err(&["set", "k", "v", "--px", "-5"])
            .to_string()
            .starts_with("invalid expire time in 'set': --px -5 is not a positive time"));
        assert!(matches!(
            err(&["set", "k", "v", "--ex", "ten"]),
            UsageError::BadNumber {
                what: "SECONDS",
                ..
            }
        ));
        assert!(matches!(
            err(&["set", "k", "v", "PX", "+5"]),
            UsageError::BadNumber { what: "MS", .. }
        ));
        // Not clamped to the end of time: refused, as Redis refuses them.
        for (option, value) in [
            ("--ex", "18446744073709551"),
            ("EX", "9223372036854776"),
            ("--px", "9223372036854775808"),
            ("--px", "9223372036854775807"),
            ("PX", "9223372036854775001"),
            ("px", "18446744073709551615"),
            ("--ex", "99999999999999999999999999999999999999999999"),
        ] {
            let e = err(&["set", "k", "v", option, value]).to_string();
            assert!(
                e.starts_with(&format!("invalid expire time in 'set': {value} ")),
                "{option} {value}: {e}"
            );
        }
        assert_eq!(
            ok(&["set", "k", "v", "--ex", "9223372036854775"]),
            Command::Set {
                key: b("k"),
                value: b("v"),
                ttl_ms: Some(9_223_372_036_854_775_000)
            }
        );
        // One limit, in seconds or in milliseconds.
        assert_eq!(TTL_MS_MAX, 9_223_372_036_854_775_000);
        assert_eq!(
            ok(&["set", "k", "v", "--px", "9223372036854775000"]),
            Command::Set {
                key: b("k"),
                value: b("v"),
                ttl_ms: Some(TTL_MS_MAX)
            }
        );
        assert_eq!(
            err(&["set", "k", "v", "PX", "9223372036854775807"]).to_string(),
            "invalid expire time in 'set': 9223372036854775807 ms is too far ahead \
             (at most 9223372036854775000)\n\
             usage: meridian set KEY VALUE [--ex SECONDS | --px MS]"
        );
        // However far back, a time that is not ahead is refused as such.
        for value in ["-1", "-9223372036854775808"] {
            assert!(
                err(&["set", "k", "v", "EX", value])
                    .to_string()
                    .starts_with(&format!(
                        "invalid expire time in 'set': EX {value} is not a positive time"
                    )),
                "{value}"
            );
        }
        assert!(matches!(
            err(&["set", "k", "v", "--ex"]),
            UsageError::WrongArity { .. }
        ));
        assert!(matches!(
            err(&["set", "k", "v", "--ex", "1", "--px", "5"]),
            UsageError::BadOption { .. }
        ));
        // The same option again replaces the first, as in Redis.
        assert_eq!(
            ok(&["set", "k", "v", "EX", "5", "--ex", "7"]),
            Command::Set {
                key: b("k"),
                value: b("v"),
                ttl_ms: Some(7_000)
            }
        );
        let e = err(&["set", "k", "v", "--nx"]);
        assert_eq!(
            e.to_string(),
            "unknown option '--nx'\nusage: meridian set KEY VALUE [--ex SECONDS | --px MS]"
        );
    }

    #[test]
    fn counters_increment_by_one_or_by_n() {
        let incr = |by| Command::IncrBy { key: b("c"), by };
        assert_eq!(ok(&["incr", "c"]), incr(1));
        assert_eq!(ok(&["decr", "c"]), incr(-1));
        assert_eq!(ok(&["incrby", "c", "5"]), incr(5));
        assert_eq!(ok(&["incrby", "c", "-5"]), incr(-5));
        assert_eq!(ok(&["decrby", "c", "5"]), incr(-5));
        assert_eq!(ok(&["decrby", "c", "-5"]), incr(5));
    }

    #[test]
    fn non_integer_increments_are_usage_errors_naming_the_argument() {
        let e = err(&["incrby", "c", "ten"]);
        assert_eq!(
            e.to_string(),
            "N must be an integer in the 64-bit signed range, not 'ten'\n\
             usage: meridian incrby KEY N"
        );
        assert!(matches!(
            err(&["hincrby", "h", "f", "1.5"]),
            UsageError::BadNumber { what: "N", .. }
        ));
        assert!(matches!(
            err(&["incrby", "c", "9223372036854775808"]),
            UsageError::BadNumber { .. }
        ));
        // Integers are written as Redis writes them.
        for n in [
            "+5", " 5", "5 ", "0x10", "1e3", "-", "", "007", "-0", "00", "-007", "0.0",
        ] {
            assert!(
                matches!(err(&["incrby", "c", n]), UsageError::BadNumber { .. }),
                "{n:?}"
            );
        }
        assert_eq!(
            err(&["incrby", "c", "007"]).to_string(),
            "N must be an integer in the 64-bit signed range, not '007'\n\
             usage: meridian incrby KEY N"
        );
        assert_eq!(
            ok(&["incrby", "c", "0"]),
            Command::IncrBy { key: b("c"), by: 0 }
        );
        assert_eq!(
            ok(&["incrby", "c", "-10"]),
            Command::IncrBy {
                key: b("c"),
                by: -10
            }
        );
    }

    #[test]
    fn times_with_leading_zeros_or_minus_zero_are_no_integers() {
        for words in [
            &["expire", "k", "010"][..],
            &["expire", "k", "-0"],
            &["set", "k", "v", "EX", "007"],
            &["set", "k", "v", "--px", "0100"],
            &["set", "k", "v", "ex", "-0"],
        ] {
            let e = err(words);
            assert!(matches!(e, UsageError::BadNumber { .. }), "{words:?}: {e}");
            assert!(
                e.to_string()
                    .contains("must be an integer in the 64-bit signed range, not '"),
                "{words:?}: {e}"
            );
        }
        assert_eq!(ok(&["expire", "k", "0"]), Command::Del { key: b("k") });
    }

    #[test]
    fn decrby_the_smallest_integer_would_overflow() {
        // It is in range, but -i64::MIN is not.
        assert_eq!(
            err(&["decrby", "c", "-9223372036854775808"]).to_string(),
            "decrement would overflow: -(-9223372036854775808) is beyond the 64-bit signed range\n\
             usage: meridian decrby KEY N"
        );
        assert_eq!(
            ok(&["decrby", "c", "-9223372036854775807"]),
            Command::IncrBy {
                key: b("c"),
                by: i64::MAX
            }
        );
        assert_eq!(
            ok(&["incrby", "c", "-9223372036854775808"]),
            Command::IncrBy {
                key: b("c"),
                by: i64::MIN
            }
        );
    }

    #[test]
    fn wrong_arity_names_the_command_and_shows_its_usage() {
        let e = err(&["get"]);
        assert_eq!(
            e.to_string(),
            "wrong number of arguments for 'get'\nusage: meridian get KEY"
        );
        for words in [
            &["get", "a", "b"][..],
            &["set", "k"],
            &["incr"],
            &["incrby", "c"],
            &["sadd", "s"],
            &["hset", "h", "f"],
            &["hset", "h", "f", "v", "g"],
            &["hset", "h"],
            &["hget", "h"],
            &["ping", "two", "words"],
            &["del"],
            &["exists"],
            &["type"],
        ] {
            assert!(
                matches!(err(words), UsageError::WrongArity { .. }),
                "{words:?}"
            );
        }
    }

    #[test]
    fn unknown_and_empty_commands_are_usage_errors() {
        assert_eq!(
            err(&["frobnicate", "k"]),
            UsageError::UnknownCommand {
                name: "frobnicate".into()
            }
        );
        assert_eq!(parse::<&str>(&[]), Err(UsageError::Empty));
    }

    #[test]
    fn words_that_look_like_help_flags_are_keys_and_values() {
        for flag in ["-h", "--help"] {
            assert_eq!(ok(&["del", flag]), Command::Del { key: b(flag) });
            assert_eq!(ok(&["get", flag]), Command::Get { key: b(flag) });
            assert_eq!(ok(&["ttl", flag]), Command::Ttl { key: b(flag) });
            assert_eq!(ok(&["type", flag]), Command::Type { key: b(flag) });
            assert_eq!(
                ok(&["incr", flag]),
                Command::IncrBy {
                    key: b(flag),
                    by: 1
                }
            );
            assert_eq!(
                ok(&["set", "k", flag]),
                Command::Set {
                    key: b("k"),
                    value: b(flag),
                    ttl_ms: None
                }
            );
        }
        assert_eq!(all(&["ping", "--help"]).combine, Combine::Echo(b("--help")));
    }

    #[test]
    fn a_commands_help_is_its_usage_and_summary() {
        let hset = find("HSET").unwrap();
        assert_eq!(
            hset.help(),
            format!(
                "usage: meridian hset KEY FIELD VALUE [FIELD VALUE...]\n{}",
                hset.summary
            )
        );
    }

    #[test]
    fn set_and_map_commands_take_many_members_or_fields() {
        assert_eq!(
            ok(&["sadd", "s", "a", "b"]),
            Command::SAdd {
                key: b("s"),
                members: vec![b("a"), b("b")]
            }
        );
        assert_eq!(
            ok(&["srem", "s", "a"]),
            Command::SRem {
                key: b("s"),
                members: vec![b("a")]
            }
        );
        assert_eq!(
            ok(&["sismember", "s", "a"]),
            Command::SIsMember {
                key: b("s"),
                member: b("a")
            }
        );
        assert_eq!(ok(&["scard", "s"]), Command::SCard { key: b("s") });
        assert_eq!(
            ok(&["hset", "h", "f", "v"]),
            Command::HSet {
                key: b("h"),
                field: b("f"),
                value: b("v")
            }
        );
        assert_eq!(
            ok(&["hdel", "h", "f", "g"]),
            Command::HDel {
                key: b("h"),
                fields: vec![b("f"), b("g")]
            }
        );
        assert_eq!(
            ok(&["hincrby", "h", "f", "-2"]),
            Command::HIncrBy {
                key: b("h"),
                field: b("f"),
                by: -2
            }
        );
        assert_eq!(ok(&["hgetall", "h"]), Command::HGetAll { key: b("h") });
        assert_eq!(ok(&["hlen", "h"]), Command::HLen { key: b("h") });
    }

    #[test]
    fn expiry_and_multi_value_commands_map_to_their_protocol_commands() {
        assert_eq!(
            ok(&["expire", "k", "10"]),
            Command::Expire {
                key: b("k"),
                ttl_ms: 10_000
            }
        );
        assert!(matches!(
            err(&["expire", "k", "soon"]),
            UsageError::BadNumber {
                what: "SECONDS",
                ..
            }
        ));
        assert_eq!(ok(&["ttl", "k"]), Command::Ttl { key: b("k") });
        assert_eq!(ok(&["persist", "k"]), Command::Persist { key: b("k") });
        assert_eq!(ok(&["type", "k"]), Command::Type { key: b("k") });
        assert_eq!(
            ok(&["mvset", "k", "v"]),
            Command::MvSet {
                key: b("k"),
                value: b("v")
            }
        );
        assert_eq!(ok(&["mvget", "k"]), Command::MvGet { key: b("k") });
    }

    fn read(reply: Reply) -> Answer {
        Answer {
            reply,
            replicas_acked: 1,
            replicas_needed: 1,
        }
    }

    #[test]
    fn mget_hmget_and_smismember_read_each_and_print_every_reply() {
        let mget = all(&["mget", "a", "b", "a"]);
        assert_eq!(
            mget.commands,
            ["a", "b", "a"].map(|k| Command::Get { key: b(k) })
        );
        assert_eq!(mget.combine, Combine::Each);
        let answers = [read(Reply::Value(b("1"))), read(Reply::Nil)];
        assert_eq!(
            mget.items(&answers),
            Some(vec![Reply::Value(b("1")), Reply::Nil])
        );
        let hmget = all(&["hmget", "h", "f", "g"]);
        assert_eq!(
            hmget.commands,
            ["f", "g"].map(|f| Command::HGet {
                key: b("h"),
                field: b(f)
            })
        );
        assert_eq!(hmget.combine, Combine::Each);
        let smis = all(&["smismember", "s", "x", "y"]);
        assert_eq!(
            smis.commands,
            ["x", "y"].map(|m| Command::SIsMember {
                key: b("s"),
                member: b(m)
            })
        );
        assert_eq!(smis.combine, Combine::Each);
        for words in [&["mget"][..], &["hmget", "h"], &["smismember", "s"]] {
            assert!(
                matches!(err(words), UsageError::WrongArity { .. }),
                "{words:?}"
            );
        }
    }

    #[test]
    fn mset_writes_each_key_once_and_answers_ok_with_the_fewest_acks() {
        let mset = all(&["mset", "a", "1", "b", "2", "a", "3"]);
        assert_eq!(
            mset.commands,
            [("a", "3"), ("b", "2")].map(|(k, v)| Command::Set {
                key: b(k),
                value: b(v),
                ttl_ms: None
            })
        );
        let ok = |acked| Answer {
            reply: Reply::Ok,
            replicas_acked: acked,
            replicas_needed: 2,
        };
        let answer = mset.combine(vec![ok(2), ok(1)]);
        assert_eq!((answer.reply, answer.replicas_acked), (Reply::Ok, 1));
        assert_eq!(mset.items(&[ok(2)]), None);
        for words in [&["mset"][..], &["mset", "a"], &["mset", "a", "1", "b"]] {
            assert!(
                matches!(err(words), UsageError::WrongArity { .. }),
                "{words:?}"
            );
        }
    }

    #[test]
    fn set_algebra_reads_each_set_and_combines_them_in_byte_order() {
        let values = |members: &[&str]| read(Reply::Values(members.iter().map(|m| b(m)).collect()));
        let answers = vec![
            values(&["b", "a", "c"]),
            values(&["c", "d", "b"]),
            values(&[]),
        ];
        for (name, op, expected) in [
            ("sunion", SetOp::Union, &["a", "b", "c", "d"][..]),
            ("sinter", SetOp::Intersection, &[]),
            ("sdiff", SetOp::Difference, &["a"]),
        ] {
            let line = all(&[name, "x", "y", "z"]);
            assert_eq!(
                line.commands,
                ["x", "y", "z"].map(|k| Command::SMembers { key: b(k) })
            );
            assert_eq!(line.combine, Combine::Sets(op));
            let expected = Reply::Values(expected.iter().map(|m| b(m)).collect());
            assert_eq!(line.combine(answers.clone()).reply, expected, "{name}");
            assert!(matches!(err(&[name]), UsageError::WrongArity { .. }));
        }
        let two = answers[..2].to_vec();
        assert_eq!(
            all(&["sinter", "x", "y"]).combine(two.clone()).reply,
            Reply::Values(vec![b("b"), b("c")])
        );
        assert_eq!(
            all(&["sdiff", "y", "x"])
                .combine(vec![two[1].clone(), two[0].clone()])
                .reply,
            Reply::Values(vec![b("d")])
        );
        assert_eq!(
            all(&["sunion", "x"])
                .combine(vec![values(&["b", "a"])])
                .reply,
            Reply::Values(vec![b("a"), b("b")])
        );
    }

    #[test]
    fn absolute_expiry_times_are_taken_against_this_machines_clock() {
        let now = 1_700_000_000_123;
        let at = |words: &[&str]| parse_at(words, now).unwrap_or_else(|e| panic!("{words:?}: {e}"));
        let expire = |ttl_ms| Command::Expire {
            key: b("k"),
            ttl_ms,
        };
        assert_eq!(
            at(&["expireat", "k", "1700000100"]).commands,
            [expire(99_877)]
        );
        assert_eq!(
            at(&["pexpireat", "k", "1700000000124"]).commands,
            [expire(1)]
        );
        // A time that has passed deletes the key, as in Redis.
        for words in [
            &["expireat", "k", "1700000000"][..],
            &["pexpireat", "k", "1700000000123"],
            &["expireat", "k", "-5"],
        ] {
            assert_eq!(
                at(words).commands,
                [Command::Del { key: b("k") }],
                "{words:?}"
            );
        }
        let set = |ttl_ms| Command::Set {
            key: b("k"),
            value: b("v"),
            ttl_ms: Some(ttl_ms),
        };
        assert_eq!(
            at(&["set", "k", "v", "EXAT", "1700000100"]).commands,
            [set(99_877)]
        );
        assert_eq!(
            at(&["set", "k", "v", "--pxat", "1700000000200"]).commands,
            [set(77)]
        );
        // Past but positive: a key that expires at once, as in Redis.
        assert_eq!(at(&["set", "k", "v", "exat", "1"]).commands, [set(1)]);
        for words in [
            &["set", "k", "v", "EXAT", "0"][..],
            &["set", "k", "v", "EXAT", "1", "PX", "5"],
            &["expireat", "k", "soon"],
            &["expireat", "k", "9223372036854775807"],
            &["expireat", "k", "9223372036854775808"],
        ] {
            assert!(parse_at(words, now).is_err(), "{words:?}");
        }
        // Redis's range: seconds whose milliseconds are 64-bit signed.
        assert_eq!(
            at(&["expireat", "k", "9223372036854775"]).expire_at_ms,
            Some(9_223_372_036_854_775_000)
        );
        assert_eq!(
            at(&["expireat", "k", "-9223372036854775"]).commands,
            [Command::Del { key: b("k") }]
        );
        for words in [
            &["expireat", "k", "9223372036854776"][..],
            &["expireat", "k", "-9223372036854776"],
            &["expireat", "k", "-9223372036854775808"],
            &["set", "k", "v", "EXAT", "9223372036854776"],
        ] {
            assert!(
                matches!(parse_at(words, now), Err(UsageError::OutOfRange { .. })),
                "{words:?}"
            );
        }
        assert_eq!(
            at(&["pexpireat", "k", "9223372036854775807"]).expire_at_ms,
            Some(i128::from(i64::MAX))
        );
        assert_eq!(
            at(&["pexpireat", "k", "-9223372036854775808"]).commands,
            [Command::Del { key: b("k") }]
        );
        assert_eq!(at(&["set", "k", "v", "PXAT", "5"]).commands, [set(1)]);
        assert!(parse_at(&["set", "k", "v", "PXAT", "0"], now).is_err());

        // Sent later, the time left is taken as of sending.
        let line = at(&["expireat", "k", "1700000100"]);
        assert_eq!(line.expire_at_ms, Some(1_700_000_100_000));
        assert_eq!(line.timed_at(now + 877).commands, [expire(99_000)]);
        assert_eq!(
            line.timed_at(1_700_000_100_000).commands,
            [Command::Del { key: b("k") }]
        );
        let set_at = at(&["set", "k", "v", "EXAT", "1700000100"]);
        assert_eq!(set_at.timed_at(now + 877).commands, [set(99_000)]);
        assert_eq!(set_at.timed_at(u64::MAX).commands, [set(1)]);
        let plain = at(&["expire", "k", "5"]);
        assert_eq!(plain.expire_at_ms, None);
        assert_eq!(plain.timed_at(0), plain);

        // expiretime: now plus the time left, in seconds rounded as Redis's.
        let time =
            |words: &[&str], ttl| at(words).combine_at(vec![read(Reply::Ttl(ttl))], now).reply;
        assert_eq!(
            time(&["expiretime", "k"], Ttl::Ms(376)),
            Reply::Int(1_700_000_000)
        );
        assert_eq!(
            time(&["expiretime", "k"], Ttl::Ms(377)),
            Reply::Int(1_700_000_001)
        );
        assert_eq!(
            time(&["pexpiretime", "k"], Ttl::Ms(u64::MAX)),
            Reply::Int(i64::MAX)
        );
        assert_eq!(
            time(&["expiretime", "k"], Ttl::Ms(99_877)),
            Reply::Int(1_700_000_100)
        );
        assert_eq!(
            time(&["pexpiretime", "k"], Ttl::Ms(99_877)),
            Reply::Int(1_700_000_100_000)
        );
        assert_eq!(time(&["expiretime", "k"], Ttl::Persistent), Reply::Int(-1));
        assert_eq!(time(&["pexpiretime", "k"], Ttl::Missing), Reply::Int(-2));
    }

    #[test]
    fn echo_and_unlink_are_redis_s() {
        let echo = all(&["echo", "hi there"]);
        assert_eq!(echo.commands, [Command::Ping]);
        assert_eq!(
            echo.combine(vec![read(Reply::Pong)]).reply,
            Reply::Value(b("hi there"))
        );
        assert!(matches!(err(&["echo"]), UsageError::WrongArity { .. }));
        assert_eq!(all(&["unlink", "a", "b"]), all(&["del", "a", "b"]));
        assert_eq!(ok(&["unlink", "a"]), Command::Del { key: b("a") });
    }

    #[test]
    fn one_answer_commands_shape_their_reply_as_redis_does() {
        let one = |words: &[&str], reply: Reply| all(words).combine(vec![read(reply)]).reply;
        let field = |v: &str| Reply::Field(Some(FieldValue::Register(b(v))));
        assert_eq!(one(&["hexists", "h", "f"], field("v")), Reply::Int(1));
        assert_eq!(
            one(&["hexists", "h", "f"], Reply::Field(None)),
            Reply::Int(0)
        );
        assert_eq!(
            all(&["hexists", "h", "f"]).commands,
            [Command::MapGet {
                key: b("h"),
                path: vec![b("f")]
            }]
        );
        assert_eq!(
            one(&["strlen", "k"], Reply::Value(b("hello"))),
            Reply::Int(5)
        );
        assert_eq!(one(&["strlen", "k"], Reply::Nil), Reply::Int(0));
        assert_eq!(
            one(&["pttl", "k"], Reply::Ttl(Ttl::Ms(1_500))),
            Reply::Int(1_500)
        );
        assert_eq!(
            one(&["pttl", "k"], Reply::Ttl(Ttl::Persistent)),
            Reply::Int(-1)
        );
        assert_eq!(
            one(&["pttl", "k"], Reply::Ttl(Ttl::Missing)),
            Reply::Int(-2)
        );
        let fields = Reply::Fields(vec![
            (b("a"), FieldValue::Register(b("1"))),
            (b("n"), FieldValue::Counter(7)),
        ]);
        assert_eq!(
            one(&["hkeys", "h"], fields.clone()),
            Reply::Values(vec![b("a"), b("n")])
        );
        assert_eq!(
            all(&["hvals", "h"]).items(&[read(fields)]),
            Some(vec![field("1"), Reply::Field(Some(FieldValue::Counter(7)))])
        );
        assert_eq!(
            all(&["hvals", "h"]).items(&[read(Reply::Fields(vec![]))]),
            Some(vec![])
        );
        assert_eq!(
            ok(&["pexpire", "k", "1500"]),
            Command::Expire {
                key: b("k"),
                ttl_ms: 1_500
            }
        );
        assert_eq!(ok(&["pexpire", "k", "0"]), Command::Del { key: b("k") });
        assert!(matches!(
            err(&["pexpire", "k", "soon"]),
            UsageError::BadNumber { what: "MS", .. }
        ));
    }

    fn int(n: i64) -> Answer {
        Answer {
            reply: Reply::Int(n),
            replicas_acked: 2,
            replicas_needed: 2,
        }
    }

    #[test]
    fn del_of_several_keys_deletes_each_and_counts_those_that_existed() {
        let del = all(&["del", "a", "b", "c"]);
        assert_eq!(
            del.commands,
            [
                Command::Del { key: b("a") },
                Command::Del { key: b("b") },
                Command::Del { key: b("c") }
            ]
        );
        assert_eq!(del.combine, Combine::Sum);
        let mut short = int(1);
        short.replicas_acked = 1;
        assert_eq!(
            del.combine(vec![int(1), int(0), short]),
            Answer {
                reply: Reply::Int(2),
                replicas_acked: 1,
                replicas_needed: 2
            }
        );
        assert_eq!(ok(&["DEL", "k"]), Command::Del { key: b("k") });
    }

    #[test]
    fn hset_of_several_pairs_writes_each_and_counts_the_new_fields() {
        let hset = all(&["hset", "h", "a", "1", "b", "2"]);
        assert_eq!(
            hset.commands,
            [
                Command::HSet {
                    key: b("h"),
                    field: b("a"),
                    value: b("1")
                },
                Command::HSet {
                    key: b("h"),
                    field: b("b"),
                    value: b("2")
                }
            ]
        );
        assert_eq!(hset.combine(vec![int(1), int(0)]).reply, Reply::Int(1));
    }

    #[test]
    fn exists_counts_the_keys_that_have_a_type() {
        let exists = all(&["exists", "a", "b", "a"]);
        assert_eq!(exists.commands.len(), 3);
        assert_eq!(exists.commands[2], Command::Type { key: b("a") });
        assert_eq!(exists.combine, Combine::CountExisting);
        let kind = |kind| Answer {
            reply: Reply::Type(kind),
            replicas_acked: 1,
            replicas_needed: 1,
        };
        assert_eq!(
            exists
                .combine(vec![
                    kind(Some(crdt_types::Kind::Set)),
                    kind(None),
                    kind(Some(crdt_types::Kind::Set))
                ])
                .reply,
            Reply::Int(2)
        );
        assert_eq!(all(&["exists", "k"]).combine, Combine::CountExisting);
    }

    #[test]
    fn ping_with_a_message_answers_the_message() {
        let ping = all(&["ping", "hello"]);
        assert_eq!(ping.commands, [Command::Ping]);
        let pong = Answer {
            reply: Reply::Pong,
            replicas_acked: 1,
            replicas_needed: 1,
        };
        assert_eq!(ping.combine(vec![pong]).reply, Reply::Value(b("hello")));
    }

    #[test]
    fn expire_in_zero_or_fewer_seconds_deletes_the_key() {
        for seconds in ["0", "-5", "-9223372036854775"] {
            assert_eq!(
                ok(&["expire", "k", seconds]),
                Command::Del { key: b("k") },
                "{seconds}"
            );
        }
        // Below the 64-bit range it is no integer, as Redis says.
        for seconds in ["-9223372036854775809", "-99999999999999999999999"] {
            assert!(
                err(&["expire", "k", seconds])
                    .to_string()
                    .contains("an integer in the 64-bit signed range"),
                "{seconds}"
            );
        }
    }

    #[test]
    fn expire_refuses_times_too_far_back_as_redis_does() {
        // Redis: below LLONG_MIN / 1000 seconds is an invalid expire time.
        for seconds in [
            "-9223372036854775808",
            "-9223372036854775806",
            "-9223372036854776",
        ] {
            assert_eq!(
                err(&["expire", "k", seconds]).to_string(),
                format!(
                    "invalid expire time in 'expire': {seconds} seconds is too far back \
                     (at least -9223372036854775)\n\
                     usage: meridian expire KEY SECONDS"
                )
            );
        }
    }

    #[test]
    fn a_ttl_set_in_milliseconds_is_one_expire_takes_in_seconds() {
        // The longest PX, read back by ttl (rounded to whole seconds), is
        // the longest expire.
        let Command::Set {
            ttl_ms: Some(longest),
            ..
        } = ok(&["set", "k", "v", "PX", &TTL_MS_MAX.to_string()])
        else {
            panic!("no ttl")
        };
        let seconds = crate::cli::format::ttl_seconds(crate::keyspace::Ttl::Ms(longest));
        assert_eq!(
            ok(&["expire", "k", &seconds.to_string()]),
            Command::Expire {
                key: b("k"),
                ttl_ms: longest
            }
        );
        assert!(err(&["expire", "k", &(seconds + 1).to_string()])
            .to_string()
            .contains("too far ahead"));
    }

    #[test]
    fn expire_refuses_times_too_far_ahead() {
        assert_eq!(
            err(&["expire", "k", "9223372036854775806"]).to_string(),
            "invalid expire time in 'expire': 9223372036854775806 seconds is too far ahead \
             (at most 9223372036854775)\n\
             usage: meridian expire KEY SECONDS"
        );
        assert_eq!(
            ok(&["expire", "k", "9223372036854775"]),
            Command::Expire {
                key: b("k"),
                ttl_ms: 9_223_372_036_854_775_000
            }
        );
    }

    #[cfg(unix)]
    #[test]
    fn arguments_are_taken_as_raw_bytes() {
        use std::ffi::OsString;
        use std::os::unix::ffi::OsStringExt;
        let words = [
            OsString::from("set"),
            OsString::from_vec(vec![0xff, b'k']),
            OsString::from("é"),
        ];
        assert_eq!(
            parse(&words).unwrap().commands,
            [Command::Set {
                key: Bytes::from(vec![0xff, b'k']),
                value: Bytes::from("é".as_bytes()),
                ttl_ms: None
            }]
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_last_argument_from_stdin_is_taken_byte_for_byte() {
        let words = [OsString::from("set"), OsString::from("big")];
        let value = vec![0, 0xff, b'\n', b'-', b'x'];
        let all = with_last_argument(&words, value.clone());
        assert_eq!(
            parse(&all).unwrap().commands,
            [Command::Set {
                key: b("big"),
                value: Bytes::from(value),
                ttl_ms: None
            }]
        );
    }

    #[test]
    fn help_lines_are_wrapped_under_their_summary() {
        let text = help_text();
        for line in text.lines() {
            assert!(line.len() <= HELP_WIDTH, "{line}");
        }
        let del = text.lines().position(|l| l.starts_with("  del ")).unwrap();
        let next = text.lines().nth(del + 1).unwrap();
        let column = text.lines().nth(del).unwrap().find("delete").unwrap();
        assert!(next.starts_with(&" ".repeat(column)), "{next}");
        assert!(next[column..].starts_with(|c: char| c != ' '), "{next}");
    }

    #[test]
    fn help_text_lists_every_command() {
        let text = help_text();
        for spec in COMMANDS {
            assert!(text.contains(&format!("  {} ", spec.name)), "{}", spec.name);
        }
    }

    #[test]
    fn sscan_and_hscan_take_a_key_a_cursor_and_a_count() {
        assert_eq!(
            ok(&["sscan", "s", "0"]),
            Command::SScan {
                key: b("s"),
                after: None,
                count: SCAN_COUNT_DEFAULT
            }
        );
        assert_eq!(
            ok(&["SSCAN", "s", "x6162", "COUNT", "100"]),
            Command::SScan {
                key: b("s"),
                after: Some(b("ab")),
                count: 100
            }
        );
        assert_eq!(
            ok(&["hscan", "h", "x", "--count", "1"]),
            Command::HScan {
                key: b("h"),
                after: Some(b("")),
                count: 1
            }
        );
        for words in [&["sscan", "s"][..], &["sscan", "s", "0", "count"]] {
            assert!(
                matches!(err(words), UsageError::WrongArity { .. }),
                "{words:?}"
            );
        }
        for cursor in ["1", "x6", "xzz", "x+1", "x+1+f", "abc", "-0", "", "x61\n"] {
            assert!(
                matches!(
                    err(&["sscan", "s", cursor]),
                    UsageError::BadNumber { what: "CURSOR", .. }
                ),
                "{cursor:?}"
            );
        }
        for n in ["0", "-1", "4294967296", "ten"] {
            assert!(
                matches!(
                    err(&["hscan", "h", "0", "count", n]),
                    UsageError::BadNumber { what: "N", .. }
                ),
                "{n}"
            );
        }
        // MATCH, in any order with COUNT, makes the matching command.
        assert_eq!(
            ok(&["sscan", "s", "0", "match", "a*"]),
            Command::SScanMatch {
                key: b("s"),
                after: None,
                count: SCAN_COUNT_DEFAULT,
                pattern: b("a*"),
            }
        );
        assert_eq!(
            ok(&["HSCAN", "h", "x61", "COUNT", "3", "--MATCH", "f?"]),
            Command::HScanMatch {
                key: b("h"),
                after: Some(b("a")),
                count: 3,
                pattern: b("f?"),
            }
        );
        for (words, option, problem) in [
            (
                &["sscan", "s", "0", "count", "5", "COUNT", "6"][..],
                "COUNT",
                "option given twice:",
            ),
            (
                &["sscan", "s", "0", "match", "a", "match", "b"],
                "match",
                "option given twice:",
            ),
            (
                &["sscan", "s", "0", "count", "5", "type", "set"],
                "type",
                "unknown option",
            ),
        ] {
            match err(words) {
                UsageError::BadOption {
                    option: o,
                    problem: p,
                    ..
                } => assert_eq!((o.as_str(), p), (option, problem), "{words:?}"),
                e => panic!("{words:?}: {e}"),
            }
        }
    }

    #[test]
    fn a_cursor_names_any_bytes_and_reads_back() {
        for member in [&b""[..], b"a", b"\x00\xff\n", b"0", b"x"] {
            let text = cursor(Some(member));
            assert_eq!(
                parse_cursor(OsStr::new(&text)),
                Some(Some(Bytes::from(member))),
                "{text}"
            );
        }
        assert_eq!(parse_cursor(OsStr::new("0")), Some(None));
        assert_eq!(cursor(None), "0");
    }
}
