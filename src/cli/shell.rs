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
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

/// A line whose quotes do not close, or close in the middle of a word.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unbalanced quotes: a quoted word ends with its closing quote, followed by a space or the \
     end of the line"
)]
pub struct UnbalancedQuotes;

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
/// ```
/// use meridian::cli::shell::split_line;
///
/// let words = split_line(br#"set "hello world" 'it\'s' "\x00\n""#).unwrap();
/// assert_eq!(words, [&b"set"[..], b"hello world", b"it's", b"\x00\n"]);
/// assert!(split_line(br#"set "open"#).is_err());
/// ```
pub fn split_line(line: &[u8]) -> Result<Vec<Vec<u8>>, UnbalancedQuotes> {
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
fn double_quoted(line: &[u8], mut i: usize, word: &mut Vec<u8>) -> Result<usize, UnbalancedQuotes> {
    loop {
        match *line.get(i).ok_or(UnbalancedQuotes)? {
            b'\\' => {
                let escaped = *line.get(i + 1).ok_or(UnbalancedQuotes)?;
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
fn single_quoted(line: &[u8], mut i: usize, word: &mut Vec<u8>) -> Result<usize, UnbalancedQuotes> {
    loop {
        match *line.get(i).ok_or(UnbalancedQuotes)? {
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
fn closed(line: &[u8], i: usize) -> Result<usize, UnbalancedQuotes> {
    match line.get(i) {
        None => Ok(i),
        Some(c) if is_space(*c) => Ok(i),
        Some(_) => Err(UnbalancedQuotes),
    }
}

/// The subcommands of `meridian` itself, which the shell does not run.
const NOT_IN_THE_SHELL: [&str; 7] = [
    "serve", "certs", "cluster", "bench", "status", "reload", "demo",
];

/// What a shell line asks for.
#[derive(Debug)]
pub enum Line {
    /// An empty line, or only spaces.
    Nothing,
    /// `quit` or `exit`.
    Quit,
    /// Text to print: `help` or `help NAME`.
    Help(String),
    /// A data command to run.
    Run(DataCommand),
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
/// assert!(matches!(parse_line(b"set k \"a b\""), Line::Run(_)));
/// assert!(matches!(parse_line(b"incrby k many"), Line::Refused(_)));
/// ```
pub fn parse_line(line: &[u8]) -> Line {
    let words = match split_line(line) {
        Ok(words) => words,
        Err(e) => return Line::Refused(format::error(&e)),
    };
    let Some(first) = words.first() else {
        return Line::Nothing;
    };
    let name = String::from_utf8_lossy(first).to_lowercase();
    match (name.as_str(), &words[1..]) {
        ("quit" | "exit", []) => return Line::Quit,
        ("help", []) => return Line::Help(help_text()),
        ("help", [topic]) => {
            let topic = String::from_utf8_lossy(topic);
            return match command::find(&topic) {
                Some(spec) => Line::Help(spec.help()),
                None => Line::Refused(unknown(&topic)),
            };
        }
        (name, _) if NOT_IN_THE_SHELL.contains(&name) => {
            return Line::Refused(format::error(&format_args!(
                "`{name}` is not a data command: run `meridian {name} ...` outside the shell"
            )))
        }
        _ => {}
    }
    let words: Vec<OsString> = words.into_iter().map(OsString::from_vec).collect();
    match command::parse(&words) {
        Ok(command) => Line::Run(command),
        Err(UsageError::UnknownCommand { name }) => Line::Refused(unknown(&name)),
        Err(e) => Line::Refused(format::error(&e)),
    }
}

fn unknown(name: &str) -> String {
    format::error(&format_args!(
        "unknown command '{name}' (`help` lists them)"
    ))
}

/// The shell's `help`: the data commands, then its own words.
pub fn help_text() -> String {
    format!(
        "{}\nQuote a word with spaces or other bytes: set k \"a b\\x00\". `help NAME` shows one \
         command's usage;\n`quit` or `exit` leaves.",
        command::command_list()
    )
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

    /// Carries out one line.
    pub async fn line(&self, line: &[u8]) -> Printed {
        let command = match parse_line(line) {
            Line::Nothing => return Printed::default(),
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
            Line::Run(command) => command,
        };
        match self.session.run(&command.commands).await {
            Ok(answers) => {
                let (stdout, stderr) = data::answered(&command, answers, self.raw, self.verbose);
                Printed {
                    stdout,
                    stderr,
                    ..Printed::default()
                }
            }
            Err(failed) => Printed {
                stderr: Some(data::failure(&command, &failed)),
                failed: true,
                ..Printed::default()
            },
        }
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
        for line in [
            r#"set "open"#,
            r"set 'open",
            r#""a"b"#,
            r"'a'b",
            r#"set "a\"#,
        ] {
            assert_eq!(split_line(line.as_bytes()), Err(UnbalancedQuotes), "{line}");
        }
    }

    #[test]
    fn lines_name_data_commands_help_or_quit() {
        assert!(matches!(parse_line(b""), Line::Nothing));
        assert!(matches!(parse_line(b"exit"), Line::Quit));
        assert!(matches!(parse_line(b"Quit"), Line::Quit));
        let Line::Run(command) = parse_line(br#"set "my key" "a value""#) else {
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
        assert!(text.contains("sadd"), "{text}");
    }

    #[test]
    fn refused_lines_say_why() {
        let refused = |line: &str| match parse_line(line.as_bytes()) {
            Line::Refused(message) => message,
            other => panic!("{line}: {other:?}"),
        };
        assert!(refused("flushall").contains("unknown command 'flushall' (`help` lists them)"));
        assert!(refused("help flushall").contains("unknown command 'flushall'"));
        assert!(refused("cluster down").contains("run `meridian cluster ...` outside the shell"));
        assert!(refused("get").contains("wrong number of arguments"));
        assert!(refused(r#"set k "v"#).contains("unbalanced quotes"));
        assert!(refused("quit now").contains("unknown command"));
        for message in [refused("flushall"), refused("get")] {
            assert!(message.starts_with("(error) "), "{message}");
        }
    }
}
