//! `meridian` with no command: a shell like redis-cli's. Each line is a
//! data command (`set k v`, `smembers s`), run over one client that stays
//! connected between lines, and printed as the command line prints it.
//!
//! Lines split into words as redis-cli splits them ([`split_line`]), so
//! values with spaces or any bytes can be typed: `set greeting "hello
//! world"`, `set bin "\x00\xff"`, `set q 'it\'s'`. `help` lists the
//! commands, `help NAME` shows one's usage, `quit` or `exit` ends the
//! shell. A command that fails prints its error and the shell goes on.
//!
//! This module is pure apart from [`Shell::line`], which runs a command;
//! `main` reads the lines (with line editing and history on a terminal)
//! and prints.

use super::command::{self, DataCommand, UsageError};
use super::data::{self, Session};
use super::format;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

/// A line whose quotes do not split into words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    /// A quote that is never closed.
    #[error("unclosed quote (a quote cannot span lines)")]
    Unclosed,
    /// A closing quote with more of the word right after it (`"a"b`).
    #[error("a closing quote must be followed by a space or the end of the line")]
    Joined,
}

/// The words of a shell line, split as redis-cli splits them: at spaces,
/// tabs and line ends, except inside quotes.
///
/// - In double quotes, `\n`, `\r`, `\t`, `\b` and `\a` stand for their
///   control characters, `\xHH` for the byte of two hex digits, and a
///   backslash before any other character for that character (`\"`,
///   `\\`).
/// - In single quotes, only `\'` is an escape.
/// - A closing quote must end the word; quotes in the middle of a word
///   (`a"b c"`) open a quoted part of it.
///
/// Unlike redis-cli, a vertical tab or form feed also ends an unquoted
/// word, and a NUL byte is kept in its word (redis-cli ends the line
/// there).
///
/// ```
/// use meridian::cli::shell::split_line;
///
/// let words = split_line(br#"set "hello world" 'it\'s' "\x00\n""#).unwrap();
/// assert_eq!(words, [&b"set"[..], b"hello world", b"it's", b"\x00\n"]);
/// assert!(split_line(br#"set "open"#).is_err());
/// ```
pub fn split_line(line: &[u8]) -> Result<Vec<Vec<u8>>, SplitError> {
    let mut words = Vec::new();
    let mut i = 0;
    loop {
        while line.get(i).is_some_and(|c| is_space(*c)) {
            i += 1;
        }
        if i == line.len() {
            return Ok(words);
        }
        let mut word = Vec::new();
        loop {
            match line.get(i) {
                None => break,
                Some(c) if is_space(*c) => break,
                Some(b'"') => i = double_quoted(line, i + 1, &mut word)?,
                Some(b'\'') => i = single_quoted(line, i + 1, &mut word)?,
                Some(c) => {
                    word.push(*c);
                    i += 1;
                }
            }
        }
        words.push(word);
    }
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// Reads a double-quoted part from `i` (just past the opening quote) into
/// `word`; the index past the closing quote.
fn double_quoted(line: &[u8], mut i: usize, word: &mut Vec<u8>) -> Result<usize, SplitError> {
    loop {
        match *line.get(i).ok_or(SplitError::Unclosed)? {
            b'\\' => {
                let escaped = *line.get(i + 1).ok_or(SplitError::Unclosed)?;
                let hex = |at: usize| line.get(at).and_then(|c| (*c as char).to_digit(16));
                if let (b'x', Some(high), Some(low)) = (escaped, hex(i + 2), hex(i + 3)) {
                    // Two hex digits: at most 0xff.
                    word.push((high * 16 + low) as u8);
                    i += 4;
                    continue;
                }
                word.push(match escaped {
                    b'n' => b'\n',
                    b'r' => b'\r',
                    b't' => b'\t',
                    b'b' => 0x08,
                    b'a' => 0x07,
                    other => other,
                });
                i += 2;
            }
            b'"' => return closed(line, i + 1),
            c => {
                word.push(c);
                i += 1;
            }
        }
    }
}

/// Reads a single-quoted part, as [`double_quoted`] does.
fn single_quoted(line: &[u8], mut i: usize, word: &mut Vec<u8>) -> Result<usize, SplitError> {
    loop {
        match *line.get(i).ok_or(SplitError::Unclosed)? {
            b'\\' if line.get(i + 1) == Some(&b'\'') => {
                word.push(b'\'');
                i += 2;
            }
            b'\'' => return closed(line, i + 1),
            c => {
                word.push(c);
                i += 1;
            }
        }
    }
}

/// `i`, just past a closing quote, when the word ends there.
fn closed(line: &[u8], i: usize) -> Result<usize, SplitError> {
    match line.get(i) {
        None => Ok(i),
        Some(c) if is_space(*c) => Ok(i),
        Some(_) => Err(SplitError::Joined),
    }
}

/// The most times a line may repeat its command (`5 incr hits`).
pub const REPEAT_MAX: u64 = 1_000_000;

/// What a shell line asks for.
#[derive(Debug)]
pub enum Line {
    /// An empty line, or only spaces.
    Nothing,
    /// `quit` or `exit`.
    Quit,
    /// Text to print: `help` or `help NAME`.
    Help(String),
    /// A data command to run `times` times in turn (`5 incr hits`, as
    /// redis-cli repeats a command).
    Run {
        /// The command.
        command: DataCommand,
        /// At least 1.
        times: u64,
    },
    /// A line that is no command the shell runs: the `(error) ...` to print.
    Refused(String),
}

/// What `line` asks for.
///
/// ```
/// use meridian::cli::shell::{parse_line, Line};
///
/// assert!(matches!(parse_line(b"  "), Line::Nothing));
/// assert!(matches!(parse_line(b"QUIT"), Line::Quit));
/// assert!(matches!(parse_line(b"set k \"a b\""), Line::Run { times: 1, .. }));
/// assert!(matches!(parse_line(b"3 incr k"), Line::Run { times: 3, .. }));
/// assert!(matches!(parse_line(b"incrby k many"), Line::Refused(_)));
/// ```
pub fn parse_line(line: &[u8]) -> Line {
    let mut words = match split_line(line) {
        Ok(words) => words,
        Err(e) => return Line::Refused(format::error(&e)),
    };
    let mut times = 1;
    if words.len() > 1 && !words[0].is_empty() && words[0].iter().all(u8::is_ascii_digit) {
        match std::str::from_utf8(&words[0])
            .ok()
            .and_then(|n| n.parse::<u64>().ok())
        {
            Some(n @ 1..=REPEAT_MAX) => times = n,
            _ => {
                return Line::Refused(format::error(&format_args!(
                    "a command is repeated 1 to {REPEAT_MAX} times, not {}",
                    String::from_utf8_lossy(&words[0])
                )))
            }
        }
        words.remove(0);
    }
    let Some(first) = words.first() else {
        return Line::Nothing;
    };
    let name = String::from_utf8_lossy(first).to_lowercase();
    // The shell's own words, unless repeated (`2 quit` is no shell word).
    if times == 1 {
        match (name.as_str(), &words[1..]) {
            ("quit" | "exit", []) => return Line::Quit,
            ("quit" | "exit", _) => {
                return Line::Refused(format::error(&format_args!("{name} takes no arguments")))
            }
            ("help", []) => return Line::Help(help_text()),
            ("help", [topic]) => {
                let topic = String::from_utf8_lossy(topic).to_lowercase();
                return match command::find(&topic) {
                    Some(spec) => Line::Help(in_the_shell(spec.help())),
                    None if is_meridian_command(&topic) => Line::Refused(not_here(&topic)),
                    None => Line::Refused(unknown(&topic)),
                };
            }
            ("help", _) => {
                return Line::Refused(format::error(&"help takes one command's name, or none"))
            }
            _ => {}
        }
    }
    if command::find(&name).is_none() && is_meridian_command(&name) {
        return Line::Refused(not_here(&name));
    }
    let words: Vec<OsString> = words.into_iter().map(OsString::from_vec).collect();
    match command::parse(&words) {
        Ok(command) => Line::Run { command, times },
        Err(UsageError::UnknownCommand { name }) => Line::Refused(unknown(&name)),
        Err(e) => Line::Refused(in_the_shell(format::error(&e))),
    }
}

/// A usage text as the shell shows it: `usage: incrby KEY N`, without the
/// `meridian` a command line starts with.
fn in_the_shell(text: String) -> String {
    text.replace("usage: meridian ", "usage: ")
}

/// Whether `name` is a command of `meridian` itself (`cluster`, `bench`...)
/// rather than a data command.
fn is_meridian_command(name: &str) -> bool {
    super::args::Cli::clap_command()
        .get_subcommands()
        .any(|sub| sub.get_name() == name)
}

fn not_here(name: &str) -> String {
    format::error(&format_args!(
        "`{name}` is not a data command: run `meridian {name} ...` outside the shell"
    ))
}

fn unknown(name: &str) -> String {
    format::error(&format_args!(
        "unknown command '{name}' (`help` lists them)"
    ))
}

/// The shell's `help`: the data commands, then its own words.
pub fn help_text() -> String {
    format!(
        "Data commands (like redis-cli's; the options given to `meridian` hold for each):\n{}\n\
         Quote a word with spaces or other bytes: set k \"a b\\x00\". `N COMMAND ...` runs a \
         command N times.\n`help NAME` shows one command's usage; `quit` or `exit` leaves.",
        command::command_list()
    )
}

/// The words the shell itself knows, besides the data commands.
const SHELL_WORDS: [&str; 3] = ["help", "quit", "exit"];

/// Tab completion of the word under the cursor at `pos` in `line`: where
/// that word starts, and the command names it may become (the first word
/// only; in lower case, or upper case when it was typed so).
///
/// ```
/// use meridian::cli::shell::complete;
///
/// assert_eq!(complete("hi", 2), (0, vec!["hincrby".to_owned()]));
/// assert_eq!(complete("SME", 3), (0, vec!["SMEMBERS".to_owned()]));
/// assert_eq!(complete("get k", 5), (5, vec![]));
/// ```
pub fn complete(line: &str, pos: usize) -> (usize, Vec<String>) {
    let before = line.get(..pos).unwrap_or(line);
    let start = before.trim_start().len();
    let start = before.len() - start;
    let word = &before[start..];
    if word.contains(char::is_whitespace) {
        // Past the command's name: arguments are the user's own.
        return (pos, Vec::new());
    }
    let upper = word.chars().next().is_some_and(char::is_uppercase);
    let lower = word.to_lowercase();
    let names = command::COMMANDS.iter().map(|spec| spec.name);
    let candidates = names
        .chain(SHELL_WORDS)
        .filter(|name| name.starts_with(&lower))
        .map(|name| {
            if upper {
                name.to_uppercase()
            } else {
                name.to_owned()
            }
        })
        .collect();
    (start, candidates)
}

/// The usage shown after the cursor, greyed, once a line holds a data
/// command's name and nothing after it (`incrby` → ` KEY N`), as
/// redis-cli hints.
///
/// ```
/// use meridian::cli::shell::hint;
///
/// assert_eq!(hint("incrby").as_deref(), Some(" KEY N"));
/// assert_eq!(hint("INCRBY ").as_deref(), Some("KEY N"));
/// assert_eq!(hint("incrby k"), None);
/// ```
pub fn hint(line: &str) -> Option<String> {
    let typed = line.trim_start();
    let name = typed.trim_end();
    if name.is_empty() || name.contains(char::is_whitespace) {
        return None;
    }
    let spec = command::find(&name.to_lowercase())?;
    if spec.args.is_empty() {
        return None;
    }
    let space = if typed.len() > name.len() { "" } else { " " };
    Some(format!("{space}{}", spec.args))
}

/// The shell's history file, from `$MERIDIAN_HISTFILE` (`histfile`), else
/// `.meridian_history` in `home`; none when that is empty, `/dev/null`, or
/// something other than a file (a device is never rewritten).
pub fn history_file(histfile: Option<&OsStr>, home: Option<&OsStr>) -> Option<PathBuf> {
    let path = match histfile {
        Some(path) => PathBuf::from(path),
        None => Path::new(home.filter(|home| !home.is_empty())?).join(".meridian_history"),
    };
    let usable = !path.as_os_str().is_empty()
        && path != Path::new("/dev/null")
        && std::fs::metadata(&path).map_or(true, |m| m.is_file());
    usable.then_some(path)
}

/// What a line printed: text for stdout and for stderr, whether it failed,
/// and whether the shell ends.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Printed {
    /// For stdout: an answer or help.
    pub stdout: Vec<u8>,
    /// For stderr: an error (`(error) ...`), or with `--raw -v` a write's
    /// acknowledgements.
    pub stderr: Option<String>,
    /// The line was refused or its command failed.
    pub failed: bool,
    /// The line was `quit` or `exit`.
    pub quit: bool,
    /// The line was empty, or only spaces.
    pub blank: bool,
}

/// A shell's client and how it prints.
pub struct Shell {
    session: Session,
    raw: bool,
    verbose: bool,
}

impl Shell {
    /// A shell over `session`, printing answers `raw` (redis-cli's
    /// `--raw`) and with `verbose` a write's acknowledgements.
    pub fn new(session: Session, raw: bool, verbose: bool) -> Self {
        Shell {
            session,
            raw,
            verbose,
        }
    }

    /// Carries out one line. A repeated command (`5 incr hits`) runs in
    /// turn, and stops at its first failure.
    pub async fn line(&self, line: &[u8]) -> Printed {
        let (command, times) = match parse_line(line) {
            Line::Nothing => {
                return Printed {
                    blank: true,
                    ..Printed::default()
                }
            }
            Line::Quit => {
                return Printed {
                    quit: true,
                    ..Printed::default()
                }
            }
            Line::Help(text) => {
                return Printed {
                    stdout: format!("{text}\n").into_bytes(),
                    ..Printed::default()
                }
            }
            Line::Refused(message) => {
                return Printed {
                    stderr: Some(message),
                    failed: true,
                    ..Printed::default()
                }
            }
            Line::Run { command, times } => (command, times),
        };
        let mut printed = Printed::default();
        let mut notes = Vec::new();
        for _ in 0..times {
            match self.session.run_line(&command).await {
                Ok(answers) => {
                    let (stdout, stderr) =
                        data::answered(&command, answers, self.raw, self.verbose);
                    printed.stdout.extend(stdout);
                    notes.extend(stderr);
                }
                Err(failed) => {
                    notes.push(data::failure(&command, &failed));
                    printed.failed = true;
                    break;
                }
            }
        }
        printed.stderr = (!notes.is_empty()).then(|| notes.join("\n"));
        printed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Command;

    fn words(line: &str) -> Vec<String> {
        split_line(line.as_bytes())
            .unwrap()
            .into_iter()
            .map(|w| String::from_utf8(w).unwrap())
            .collect()
    }

    #[test]
    fn words_split_at_spaces_tabs_and_line_ends() {
        assert_eq!(words("  set\tk  v \r\n"), ["set", "k", "v"]);
        assert!(words("").is_empty());
        assert!(words(" \t ").is_empty());
    }

    #[test]
    fn double_quotes_keep_spaces_and_read_escapes() {
        assert_eq!(words(r#"set k "a b""#), ["set", "k", "a b"]);
        assert_eq!(words(r#""a\"b" "c\\d""#), ["a\"b", "c\\d"]);
        assert_eq!(words(r#""\n\r\t\b\a""#), ["\n\r\t\u{8}\u{7}"]);
        assert_eq!(words(r#""""#), [""]);
        assert_eq!(words(r#""\q""#), ["q"]);
        // A word may have quoted parts.
        assert_eq!(words(r#"a"b c" d"#), ["ab c", "d"]);
    }

    #[test]
    fn hex_escapes_give_any_byte() {
        assert_eq!(
            split_line(br#""\x00\xfF\x41""#).unwrap(),
            [vec![0x00, 0xff, b'A']]
        );
        // Not two hex digits: the `x` itself.
        assert_eq!(words(r#""\xg1""#), ["xg1"]);
        assert_eq!(words(r#""\x4""#), ["x4"]);
    }

    #[test]
    fn single_quotes_take_everything_but_an_escaped_quote() {
        assert_eq!(words(r"'a \n b'"), [r"a \n b"]);
        assert_eq!(words(r"'it\'s'"), ["it's"]);
        assert_eq!(words(r#"'say "hi"'"#), [r#"say "hi""#]);
    }

    #[test]
    fn quotes_must_close_and_end_their_word() {
        for line in [r#"set "open"#, r"set 'open", r#"set "a\"#, "set \"a\nb"] {
            assert_eq!(
                split_line(line.as_bytes()),
                Err(SplitError::Unclosed),
                "{line}"
            );
        }
        for line in [r#""a"b"#, r"'a'b"] {
            assert_eq!(
                split_line(line.as_bytes()),
                Err(SplitError::Joined),
                "{line}"
            );
        }
    }

    #[test]
    fn lines_name_data_commands_help_or_quit() {
        assert!(matches!(parse_line(b""), Line::Nothing));
        assert!(matches!(parse_line(b"exit"), Line::Quit));
        assert!(matches!(parse_line(b"Quit"), Line::Quit));
        let Line::Run { command, times: 1 } = parse_line(br#"set "my key" "a value""#) else {
            panic!("not a command");
        };
        assert_eq!(
            command.commands,
            [Command::Set {
                key: "my key".into(),
                value: "a value".into(),
                ttl_ms: None
            }]
        );
        let Line::Help(text) = parse_line(b"help") else {
            panic!("not help");
        };
        assert!(text.contains("quit") && text.contains("smembers"), "{text}");
        let Line::Help(text) = parse_line(b"HELP sadd") else {
            panic!("not help");
        };
        assert!(text.starts_with("usage: sadd KEY MEMBER"), "{text}");
    }

    #[test]
    fn tab_completes_command_names_and_shell_words() {
        assert_eq!(
            complete("", 0).1.len(),
            command::COMMANDS.len() + SHELL_WORDS.len()
        );
        assert_eq!(
            complete("  sc", 4),
            (2, vec!["scard".to_owned(), "scan".to_owned()])
        );
        assert_eq!(
            complete("h", 1).1,
            [
                "hset", "hget", "hmget", "hexists", "hdel", "hgetall", "hkeys", "hvals", "hscan",
                "hincrby", "hlen", "help"
            ]
        );
        assert_eq!(complete("qu", 2).1, ["quit"]);
        assert!(complete("zz", 2).1.is_empty());
        // The cursor decides: at the start of `sa k` it is the name's.
        assert_eq!(complete("sa k", 2), (0, vec!["sadd".to_owned()]));
        assert_eq!(complete("sadd k", 6), (6, vec![]));
    }

    #[test]
    fn hints_show_a_commands_arguments_until_one_is_typed() {
        assert_eq!(
            hint("set").as_deref(),
            Some(" KEY VALUE [--ex SECONDS | --px MS]")
        );
        assert_eq!(hint("  Get ").as_deref(), Some("KEY"));
        assert_eq!(hint("ping").as_deref(), Some(" [MESSAGE]"));
        for line in ["", " ", "get k", "nosuch", "quit"] {
            assert_eq!(hint(line), None, "{line:?}");
        }
    }

    #[test]
    fn history_goes_to_a_file_never_a_device() {
        let dir = tempfile::tempdir().unwrap();
        let os = |s: &str| std::ffi::OsString::from(s);
        let home = os(dir.path().to_str().unwrap());
        assert_eq!(
            history_file(None, Some(&home)),
            Some(dir.path().join(".meridian_history"))
        );
        let mine = dir.path().join("mine");
        assert_eq!(
            history_file(Some(mine.as_os_str()), Some(&home)),
            Some(mine.clone())
        );
        std::fs::write(&mine, "set a 1\n").unwrap();
        assert_eq!(history_file(Some(mine.as_os_str()), None), Some(mine));
        for none in ["", "/dev/null", "/dev/zero"] {
            assert_eq!(history_file(Some(&os(none)), Some(&home)), None, "{none}");
        }
        // A directory is no file either.
        assert_eq!(history_file(Some(&home), None), None);
        assert_eq!(history_file(None, Some(&os(""))), None);
        assert_eq!(history_file(None, None), None);
    }

    #[test]
    fn a_number_first_repeats_the_command() {
        let Line::Run { command, times: 5 } = parse_line(b"5 incrby hits 2") else {
            panic!("not repeated");
        };
        assert_eq!(
            command.commands,
            [Command::IncrBy {
                key: "hits".into(),
                by: 2
            }]
        );
        // A number alone is a command's name (an unknown one).
        assert!(matches!(parse_line(b"5"), Line::Refused(m) if m.contains("unknown command '5'")));
        for line in [
            "0 incr k",
            "1000001 incr k",
            "99999999999999999999999 incr k",
        ] {
            assert!(
                matches!(parse_line(line.as_bytes()), Line::Refused(m) if m.contains("repeated 1 to 1000000 times")),
                "{line}"
            );
        }
        assert!(matches!(parse_line(b"2 get"), Line::Refused(m) if m.contains("wrong number")));
    }

    #[test]
    fn refused_lines_say_why() {
        let refused = |line: &str| match parse_line(line.as_bytes()) {
            Line::Refused(message) => message,
            other => panic!("{line}: {other:?}"),
        };
        assert!(refused("flushall").contains("unknown command 'flushall' (`help` lists them)"));
        assert!(refused("help flushall").contains("unknown command 'flushall'"));
        for line in ["cluster down", "help cluster", "bench --ops set"] {
            let name = line.split(' ').find(|w| *w != "help").unwrap();
            assert!(
                refused(line).contains(&format!("run `meridian {name} ...` outside the shell")),
                "{line}"
            );
        }
        assert!(refused("get").ends_with("wrong number of arguments for 'get'\nusage: get KEY"));
        assert!(refused(r#"set k "v"#).contains("unclosed quote"));
        assert!(refused(r#"set k "v"w"#).contains("closing quote must be followed by a space"));
        assert!(refused("quit now").contains("quit takes no arguments"));
        assert!(refused("help get set").contains("help takes one command's name"));
        for message in [refused("flushall"), refused("get")] {
            assert!(message.starts_with("(error) "), "{message}");
        }
    }
}
