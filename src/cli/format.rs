//! How the `meridian` binary prints answers, in the manner of redis-cli:
//! `OK`, `(nil)`, `(integer) 5`, `"value"` quoted with escapes, numbered
//! lists, `(empty array)`, and `(error) <message>` for failures.
//!
//! Formatting is pure: it turns an [`Answer`] into text and never prints.
//! Values are shown exactly as redis-cli shows them (printable ASCII as is;
//! `\n`, `\t`, `"`, `\\` and the like escaped; any other byte as `\xhh`), so
//! what is printed always tells the bytes stored.

use super::command::cursor;
use crate::client::ClientError;
use crate::keyspace::{FieldValue, Ttl};
use crate::protocol::{Answer, Command, Reply};
use crdt_types::Kind;
use std::fmt::{self, Write as _};

/// The text of `answer` to `command`, one line per `\n`, without a final
/// newline. With `verbose`, a write's answer is followed by how many
/// replicas had applied it when the node answered and how many its write
/// consistency needed: `(acked by 2 replicas, 2 needed)`. A node answers as
/// soon as enough replicas have applied a write, so the two numbers are
/// usually equal; the key's other replicas apply it afterwards.
///
/// ```
/// use meridian::cli::format::answer;
/// use meridian::protocol::{Answer, Command, Reply};
///
/// let set = Command::Set { key: "k".into(), value: "v".into(), ttl_ms: None };
/// let ok = Answer { reply: Reply::Ok, replicas_acked: 2, replicas_needed: 2 };
/// assert_eq!(answer(&set, &ok, false), "OK");
/// assert_eq!(answer(&set, &ok, true), "OK\n(acked by 2 replicas, 2 needed)");
/// ```
pub fn answer(command: &Command, answer: &Answer, verbose: bool) -> String {
    let mut text = reply(&answer.reply);
    if verbose && command.is_write() {
        text.push('\n');
        text.push_str(&acks(answer));
    }
    text
}

/// The bytes of `answer` as `redis-cli --raw` prints them: values as
/// stored (no quotes, no escapes), integers as bare numbers, a missing
/// value as an empty line, one item per line for a list (a map's fields
/// and values alternate, nested values flattened), and then a newline, so
/// that an empty list, like a missing value, is an empty line. Nothing
/// else: `-v`'s acknowledgements ([`acks`]) are not among these bytes.
///
/// ```
/// use meridian::cli::format::raw_answer;
/// use meridian::protocol::{Answer, Reply};
///
/// let value = Answer { reply: Reply::Value("a\"b\n".into()), replicas_acked: 1, replicas_needed: 1 };
/// assert_eq!(raw_answer(&value), b"a\"b\n\n");
/// let nil = Answer { reply: Reply::Nil, ..value.clone() };
/// assert_eq!(raw_answer(&nil), b"\n");
/// let none = Answer { reply: Reply::Values(vec![]), ..value };
/// assert_eq!(raw_answer(&none), b"\n");
/// ```
pub fn raw_answer(answer: &Answer) -> Vec<u8> {
    let mut out = Vec::new();
    raw_reply(&answer.reply, &mut out);
    out.push(b'\n');
    out
}

/// Appends each item of `items` as `item` writes it, with a newline
/// between two items (none after the last), as redis-cli joins the
/// elements of an array: an empty list writes nothing, and one nested in
/// another leaves an empty line.
fn raw_items<T>(items: &[T], out: &mut Vec<u8>, mut item: impl FnMut(&T, &mut Vec<u8>)) {
    for (i, one) in items.iter().enumerate() {
        if i > 0 {
            out.push(b'\n');
        }
        item(one, out);
    }
}

/// Appends the reply's text, without a final newline.
fn raw_reply(reply: &Reply, out: &mut Vec<u8>) {
    match reply {
        Reply::Ok => out.extend_from_slice(b"OK"),
        Reply::Pong => out.extend_from_slice(b"PONG"),
        Reply::Nil | Reply::Field(None) => {}
        Reply::Int(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Reply::Bool(b) => out.push(if *b { b'1' } else { b'0' }),
        Reply::Value(value) => out.extend_from_slice(value),
        Reply::Values(values) => raw_items(values, out, |v, out| out.extend_from_slice(v)),
        Reply::Fields(fields) => raw_fields(fields, out),
        Reply::Field(Some(value)) => raw_field_value(value, out),
        Reply::Type(Some(kind)) => out.extend_from_slice(kind.name().as_bytes()),
        Reply::Type(None) => out.extend_from_slice(b"none"),
        Reply::Ttl(ttl) => out.extend_from_slice(ttl_seconds(*ttl).to_string().as_bytes()),
        Reply::Status(status) => out.extend_from_slice(node_status(status).as_bytes()),
        Reply::SetPage(page) => raw_members_page(page.after(), &page.items, out),
        Reply::SetMatches(page) => raw_members_page(page.after(), &page.items, out),
        Reply::MapPage(page) => raw_fields_page(page.after(), &page.items, out),
        Reply::MapMatches(page) => raw_fields_page(page.after(), &page.items, out),
        Reply::Keys(page) => {
            out.extend_from_slice(page.next.to_string().as_bytes());
            if !page.keys.is_empty() {
                out.push(b'\n');
                raw_items(&page.keys, out, |v, out| out.extend_from_slice(v));
            }
        }
    }
}

/// A page of a set's members ending at `after`: the cursor, then the
/// members, one a line.
fn raw_members_page(
    after: Option<&crdt_types::Bytes>,
    items: &[crdt_types::Bytes],
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(cursor(after.map(|a| &a[..])).as_bytes());
    if !items.is_empty() {
        out.push(b'\n');
        raw_items(items, out, |v, out| out.extend_from_slice(v));
    }
}

/// A page of a map's fields ending at `after`: the cursor, then the
/// fields and values.
fn raw_fields_page(
    after: Option<&crdt_types::Bytes>,
    items: &[(crdt_types::Bytes, FieldValue)],
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(cursor(after.map(|a| &a[..])).as_bytes());
    if !items.is_empty() {
        out.push(b'\n');
        raw_fields(items, out);
    }
}

/// A map's fields and values, alternating, as one list.
fn raw_fields(fields: &[(crdt_types::Bytes, FieldValue)], out: &mut Vec<u8>) {
    raw_items(fields, out, |(field, value), out| {
        out.extend_from_slice(field);
        out.push(b'\n');
        raw_field_value(value, out);
    });
}

fn raw_field_value(value: &FieldValue, out: &mut Vec<u8>) {
    match value {
        FieldValue::Register(bytes) => out.extend_from_slice(bytes),
        FieldValue::Counter(n) => out.extend_from_slice(n.to_string().as_bytes()),
        FieldValue::Set(members) | FieldValue::MvRegister(members) => {
            raw_items(members, out, |m, out| out.extend_from_slice(m))
        }
        FieldValue::Map(fields) => raw_fields(fields, out),
    }
}

/// `(acked by A replicas, W needed)` for a write's answer.
pub fn acks(answer: &Answer) -> String {
    let acked = answer.replicas_acked;
    format!(
        "(acked by {acked} replica{}, {} needed)",
        if acked == 1 { "" } else { "s" },
        answer.replicas_needed
    )
}

/// The text of one reply, as redis-cli would print it.
///
/// ```
/// use meridian::cli::format::reply;
/// use meridian::protocol::Reply;
///
/// assert_eq!(reply(&Reply::Int(5)), "(integer) 5");
/// assert_eq!(reply(&Reply::Values(vec!["a".into(), "b".into()])), "1) \"a\"\n2) \"b\"");
/// ```
pub fn reply(reply: &Reply) -> String {
    let mut lines = Vec::new();
    shape(reply).render(&mut lines);
    lines.join("\n")
}

/// Several replies as one numbered list, an item each, as redis-cli
/// prints `MGET`'s answer: a missing value is `(nil)`.
///
/// ```
/// use meridian::cli::format::replies;
/// use meridian::protocol::Reply;
///
/// assert_eq!(replies(&[Reply::Value("a".into()), Reply::Nil]), "1) \"a\"\n2) (nil)");
/// assert_eq!(replies(&[]), "(empty array)");
/// ```
pub fn replies(replies: &[Reply]) -> String {
    let mut lines = Vec::new();
    Shape::List(replies.iter().map(shape).collect()).render(&mut lines);
    lines.join("\n")
}

/// Several replies as `redis-cli --raw` prints a list of them: one line
/// each (a missing value an empty line), then a newline.
///
/// ```
/// use meridian::cli::format::raw_replies;
/// use meridian::protocol::Reply;
///
/// assert_eq!(raw_replies(&[Reply::Value("a".into()), Reply::Nil, Reply::Bool(true)]), b"a\n\n1\n");
/// ```
pub fn raw_replies(replies: &[Reply]) -> Vec<u8> {
    let mut out = Vec::new();
    raw_items(replies, &mut out, raw_reply);
    out.push(b'\n');
    out
}

/// How a reply is laid out.
fn shape(reply: &Reply) -> Shape {
    match reply {
        Reply::Ok => Shape::line("OK"),
        Reply::Pong => Shape::line("PONG"),
        Reply::Nil | Reply::Field(None) => Shape::line("(nil)"),
        Reply::Int(n) => Shape::integer(*n),
        Reply::Bool(b) => Shape::integer(i64::from(*b)),
        Reply::Value(value) => Shape::Line(quote(value)),
        Reply::Values(values) => Shape::values(values),
        Reply::Fields(fields) => Shape::fields(fields),
        Reply::Field(Some(value)) => Shape::field_value(value),
        Reply::Type(Some(kind)) => Shape::line(kind.name()),
        Reply::Type(None) => Shape::line("none"),
        Reply::Ttl(ttl) => Shape::integer(ttl_seconds(*ttl)),
        Reply::Status(status) => Shape::Line(node_status(status)),
        // As redis-cli prints SSCAN and HSCAN: the cursor, then the page.
        Reply::SetPage(page) => Shape::page(page.after(), Shape::values(&page.items)),
        Reply::SetMatches(page) => Shape::page(page.after(), Shape::values(&page.items)),
        Reply::MapPage(page) => Shape::page(page.after(), Shape::fields(&page.items)),
        Reply::MapMatches(page) => Shape::page(page.after(), Shape::fields(&page.items)),
        // As redis-cli prints SCAN: the cursor, then the keys.
        Reply::Keys(page) => Shape::List(vec![
            Shape::Line(quote(page.next.to_string().as_bytes())),
            Shape::values(&page.keys),
        ]),
    }
}

/// One node's status on one line, then one line per remote region.
pub fn node_status(s: &crate::protocol::NodeStatus) -> String {
    let mut text = format!(
        "replica {} in {}: {} keys, {} bytes, {} hints pending, {} requests, {} writes acked, {} short, {} refused, topology v{}",
        s.replica, s.region, s.keys, s.memory_bytes, s.hints_pending, s.requests, s.writes_acked, s.writes_short, s.refused, s.topology_version
    );
    if !s.peers_suspected.is_empty() {
        let _ = write!(
            text,
            "\n  suspects replicas {:?} of its region are down",
            s.peers_suspected
        );
    }
    for l in &s.links {
        let _ = write!(
            text,
            "\n  -> {}: lag {} ms (last acked {}), backlog {} deltas / {} bytes, dropped {}",
            l.region,
            l.lag_ms,
            l.lag_ms_last
                .map_or_else(|| "none yet".to_owned(), |ms| format!("{ms} ms")),
            l.backlog_deltas,
            l.backlog_bytes,
            l.dropped
        );
    }
    text
}

/// A time to live as redis-cli's `TTL` shows it: whole seconds, rounded to
/// the nearest; -2 for a missing key, -1 for a key that never expires.
pub fn ttl_seconds(ttl: Ttl) -> i64 {
    match ttl {
        Ttl::Missing => -2,
        Ttl::Persistent => -1,
        Ttl::Ms(ms) => i64::try_from(ms.saturating_add(500) / 1000).unwrap_or(i64::MAX),
    }
}

/// The line printed for a failed command: `(error) <message>`.
pub fn error(message: &dyn fmt::Display) -> String {
    format!("(error) {message}")
}

/// `(error) ...` for a failed `command`. A map command refused for a
/// type other than a map met a field of another type, not a key: the
/// message says so.
///
/// ```
/// use meridian::cli::format::command_error;
/// use meridian::client::{ClientError, Command, Kind};
///
/// let hset = Command::HSet { key: "h".into(), field: "f".into(), value: "v".into() };
/// let field = ClientError::WrongType { wanted: Kind::Register, found: Kind::Counter };
/// assert_eq!(
///     command_error(&hset, &field),
///     "(error) WRONGTYPE operation against a map field holding a counter, wanted a register"
/// );
/// let key = ClientError::WrongType { wanted: Kind::Map, found: Kind::Set };
/// assert_eq!(
///     command_error(&hset, &key),
///     "(error) WRONGTYPE operation against a key holding a set, wanted a map"
/// );
/// ```
pub fn command_error(command: &Command, e: &ClientError) -> String {
    let on_a_map = matches!(
        command,
        Command::HSet { .. }
            | Command::HGet { .. }
            | Command::HIncrBy { .. }
            | Command::MapApply { .. }
            | Command::MapGet { .. }
    );
    match e {
        ClientError::WrongType { wanted, found } if on_a_map && *wanted != Kind::Map => format!(
            "(error) WRONGTYPE operation against a map field holding {}, wanted {}",
            found.with_article(),
            wanted.with_article()
        ),
        e => error(e),
    }
}

/// The map field a command names, if it names one.
fn field_of(command: &Command) -> Option<&crdt_types::Bytes> {
    match command {
        Command::HSet { field, .. }
        | Command::HGet { field, .. }
        | Command::HIncrBy { field, .. } => Some(field),
        _ => None,
    }
}

/// What one command of a command line of several names: `field "f"` for
/// a map field, `member "m"` for a set's member, else `key "k"`.
pub fn part(command: &Command) -> String {
    if let Command::SIsMember { member, .. } = command {
        return format!("member {}", quote(member));
    }
    match (field_of(command), command.key()) {
        (Some(field), _) => format!("field {}", quote(field)),
        (None, Some(key)) => format!("key {}", quote(key)),
        (None, None) => "a command".to_owned(),
    }
}

/// `n` commands of a line whose first is `first`, named as `part` names
/// them: `3 fields`, `2 keys`.
pub fn part_count(first: &Command, n: usize) -> String {
    let noun = match (field_of(first).is_some(), n == 1) {
        (true, true) => "field",
        (true, false) => "fields",
        (false, true) => "key",
        (false, false) => "keys",
    };
    format!("{n} {noun}")
}

/// The line after the error of a command line of several commands (`del
/// k1 k2 k3`) whose command `failing` failed after `done` of its `total`
/// were carried out.
///
/// ```
/// use meridian::cli::format::partial_failure;
/// use meridian::protocol::Command;
///
/// let del = Command::Del { key: "b".into() };
/// assert_eq!(
///     partial_failure(&del, 1, 3),
///     r#"(at key "b": 1 of the line's 3 keys was done before it, the rest not sent)"#
/// );
/// ```
pub fn partial_failure(failing: &Command, done: usize, total: usize) -> String {
    format!(
        "(at {}: {done} of the line's {} {} done before it, the rest not sent)",
        part(failing),
        part_count(failing, total),
        if done == 1 { "was" } else { "were" }
    )
}

/// `bytes` in double quotes, escaped as redis-cli escapes them.
///
/// ```
/// use meridian::cli::format::quote;
///
/// assert_eq!(quote(b"hello"), r#""hello""#);
/// assert_eq!(quote(b"a\"b\n\x00\xff"), r#""a\"b\n\x00\xff""#);
/// ```
pub fn quote(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len() + 2);
    text.push('"');
    for &byte in bytes {
        match byte {
            b'\\' => text.push_str("\\\\"),
            b'"' => text.push_str("\\\""),
            b'\n' => text.push_str("\\n"),
            b'\r' => text.push_str("\\r"),
            b'\t' => text.push_str("\\t"),
            0x07 => text.push_str("\\a"),
            0x08 => text.push_str("\\b"),
            0x20..=0x7e => text.push(char::from(byte)),
            _ => {
                let _ = write!(text, "\\x{byte:02x}");
            }
        }
    }
    text.push('"');
    text
}

/// A reply laid out as redis-cli lays it out: a line, or a numbered list
/// whose items may be lists themselves.
enum Shape {
    Line(String),
    List(Vec<Shape>),
}

impl Shape {
    fn line(text: &str) -> Shape {
        Shape::Line(text.to_owned())
    }

    fn integer(n: i64) -> Shape {
        Shape::Line(format!("(integer) {n}"))
    }

    /// A page of a set or map ending at `after`, as redis-cli prints
    /// `SSCAN` and `HSCAN`: the cursor, then the page's items.
    fn page(after: Option<&crdt_types::Bytes>, items: Shape) -> Shape {
        Shape::List(vec![
            Shape::Line(quote(cursor(after.map(|a| &a[..])).as_bytes())),
            items,
        ])
    }

    fn values(values: &[crdt_types::Bytes]) -> Shape {
        Shape::List(values.iter().map(|v| Shape::Line(quote(v))).collect())
    }

    /// Map fields as alternating field and value items, like `HGETALL`.
    fn fields(fields: &[(crdt_types::Bytes, FieldValue)]) -> Shape {
        Shape::List(
            fields
                .iter()
                .flat_map(|(field, value)| [Shape::Line(quote(field)), Shape::field_value(value)])
                .collect(),
        )
    }

    /// A field's value. A counter field prints as its decimal string, as
    /// `hget` answers it and as Redis prints a hash field.
    fn field_value(value: &FieldValue) -> Shape {
        match value {
            FieldValue::Register(bytes) => Shape::Line(quote(bytes)),
            FieldValue::Counter(n) => Shape::Line(quote(n.to_string().as_bytes())),
            FieldValue::Set(members) => Shape::values(members),
            FieldValue::MvRegister(values) => Shape::values(values),
            FieldValue::Map(fields) => Shape::fields(fields),
        }
    }

    /// Appends the shape's lines. A list's items are numbered `1)`, `2)`...
    /// right-aligned to the widest number; an item's further lines are
    /// indented under its first.
    fn render(&self, lines: &mut Vec<String>) {
        match self {
            Shape::Line(text) => lines.push(text.clone()),
            Shape::List(items) if items.is_empty() => lines.push("(empty array)".to_owned()),
            Shape::List(items) => {
                let width = items.len().to_string().len();
                for (index, item) in items.iter().enumerate() {
                    let prefix = format!("{:>width$}) ", index + 1);
                    let mut item_lines = Vec::new();
                    item.render(&mut item_lines);
                    for (n, line) in item_lines.into_iter().enumerate() {
                        if n == 0 {
                            lines.push(format!("{prefix}{line}"));
                        } else {
                            lines.push(format!("{:width$}{line}", "", width = prefix.len()));
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ErrorReply;
    use crdt_types::{Bytes, Kind};

    fn b(text: &str) -> Bytes {
        text.into()
    }

    fn read(reply: Reply) -> Answer {
        Answer {
            reply,
            replicas_acked: 1,
            replicas_needed: 1,
        }
    }

    #[test]
    fn simple_replies_print_like_redis_cli() {
        assert_eq!(reply(&Reply::Ok), "OK");
        assert_eq!(reply(&Reply::Pong), "PONG");
        assert_eq!(reply(&Reply::Nil), "(nil)");
        assert_eq!(reply(&Reply::Int(-7)), "(integer) -7");
        assert_eq!(reply(&Reply::Bool(true)), "(integer) 1");
        assert_eq!(reply(&Reply::Bool(false)), "(integer) 0");
        assert_eq!(reply(&Reply::Value(b("world"))), "\"world\"");
        assert_eq!(reply(&Reply::Field(None)), "(nil)");
    }

    #[test]
    fn values_are_quoted_with_non_printable_bytes_escaped() {
        assert_eq!(quote(b""), "\"\"");
        assert_eq!(quote(b"tab\there"), r#""tab\there""#);
        assert_eq!(quote(b"\r\x07\x08\\"), r#""\r\a\b\\""#);
        assert_eq!(quote("é".as_bytes()), r#""\xc3\xa9""#);
        assert_eq!(quote(b"\x7f \x1b"), r#""\x7f \x1b""#);
    }

    #[test]
    fn lists_are_numbered_and_empty_lists_say_so() {
        assert_eq!(
            reply(&Reply::Values(vec![b("a"), b("b\n")])),
            "1) \"a\"\n2) \"b\\n\""
        );
        assert_eq!(reply(&Reply::Values(vec![])), "(empty array)");
        assert_eq!(reply(&Reply::Fields(vec![])), "(empty array)");
    }

    #[test]
    fn list_numbers_are_right_aligned_to_the_widest() {
        let values: Vec<Bytes> = (0..10)
            .map(|i| Bytes::from(i.to_string().as_str()))
            .collect();
        let text = reply(&Reply::Values(values));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], " 1) \"0\"");
        assert_eq!(lines[9], "10) \"9\"");
    }

    /// `hget` answers a counter field with its decimal string; `hgetall`
    /// prints it the same way.
    #[test]
    fn hgetall_alternates_fields_and_values() {
        let fields = vec![
            (b("name"), FieldValue::Register(b("ada"))),
            (b("visits"), FieldValue::Counter(3)),
        ];
        assert_eq!(
            reply(&Reply::Fields(fields)),
            "1) \"name\"\n2) \"ada\"\n3) \"visits\"\n4) \"3\""
        );
    }

    #[test]
    fn nested_values_are_indented_under_their_number() {
        let fields = vec![
            (b("tags"), FieldValue::Set(vec![b("red"), b("blue")])),
            (b("empty"), FieldValue::Map(vec![])),
        ];
        assert_eq!(
            reply(&Reply::Fields(fields)),
            "1) \"tags\"\n\
             2) 1) \"red\"\n   \
                2) \"blue\"\n\
             3) \"empty\"\n\
             4) (empty array)"
        );
        assert_eq!(
            reply(&Reply::Field(Some(FieldValue::Counter(-4)))),
            "\"-4\""
        );
    }

    #[test]
    fn ttl_is_whole_seconds_with_minus_two_and_minus_one() {
        assert_eq!(reply(&Reply::Ttl(Ttl::Missing)), "(integer) -2");
        assert_eq!(reply(&Reply::Ttl(Ttl::Persistent)), "(integer) -1");
        assert_eq!(reply(&Reply::Ttl(Ttl::Ms(59_600))), "(integer) 60");
        assert_eq!(reply(&Reply::Ttl(Ttl::Ms(59_400))), "(integer) 59");
        assert_eq!(ttl_seconds(Ttl::Ms(u64::MAX)), (u64::MAX / 1000) as i64);
    }

    #[test]
    fn type_names_the_kind_or_none() {
        assert_eq!(reply(&Reply::Type(Some(Kind::Register))), "register");
        assert_eq!(reply(&Reply::Type(Some(Kind::Counter))), "counter");
        assert_eq!(reply(&Reply::Type(Some(Kind::MvRegister))), "mvregister");
        assert_eq!(reply(&Reply::Type(None)), "none");
    }

    fn raw(reply: Reply) -> String {
        String::from_utf8(raw_answer(&read(reply))).unwrap()
    }

    /// What `redis-cli --raw` prints for the same reply.
    #[test]
    fn raw_replies_print_like_redis_cli_raw() {
        assert_eq!(raw(Reply::Ok), "OK\n");
        assert_eq!(raw(Reply::Nil), "\n");
        assert_eq!(raw(Reply::Int(-7)), "-7\n");
        assert_eq!(raw(Reply::Bool(true)), "1\n");
        assert_eq!(raw(Reply::Value(b("a b"))), "a b\n");
        assert_eq!(raw(Reply::Values(vec![b("a"), b("b")])), "a\nb\n");
        assert_eq!(raw(Reply::Type(None)), "none\n");
        // An empty list is an empty line (`redis-cli --raw smembers nosuch`).
        assert_eq!(raw(Reply::Values(vec![])), "\n");
        assert_eq!(raw(Reply::Fields(vec![])), "\n");
        assert_eq!(raw(Reply::Field(Some(FieldValue::Set(vec![])))), "\n");
    }

    #[test]
    fn raw_nested_lists_are_flattened_and_an_empty_one_leaves_an_empty_line() {
        let fields = vec![
            (b("tags"), FieldValue::Set(vec![b("red"), b("blue")])),
            (b("empty"), FieldValue::Map(vec![])),
            (b("n"), FieldValue::Counter(3)),
        ];
        assert_eq!(
            raw(Reply::Fields(fields)),
            "tags\nred\nblue\nempty\n\nn\n3\n"
        );
    }

    #[test]
    fn verbose_writes_show_the_replicas_that_acknowledged() {
        let incr = Command::IncrBy { key: b("c"), by: 1 };
        let answered = Answer {
            reply: Reply::Int(5),
            replicas_acked: 2,
            replicas_needed: 2,
        };
        assert_eq!(answer(&incr, &answered, false), "(integer) 5");
        assert_eq!(
            answer(&incr, &answered, true),
            "(integer) 5\n(acked by 2 replicas, 2 needed)"
        );
        let one = Answer {
            reply: Reply::Ok,
            replicas_acked: 1,
            replicas_needed: 1,
        };
        assert_eq!(acks(&one), "(acked by 1 replica, 1 needed)");
        let all = Answer {
            reply: Reply::Ok,
            replicas_acked: 3,
            replicas_needed: 3,
        };
        assert_eq!(acks(&all), "(acked by 3 replicas, 3 needed)");
    }

    #[test]
    fn reads_show_no_acknowledgements_even_when_verbose() {
        let get = Command::Get { key: b("k") };
        assert_eq!(answer(&get, &read(Reply::Nil), true), "(nil)");
    }

    #[test]
    fn a_partial_failure_says_how_many_were_done_in_good_grammar() {
        let del = Command::Del { key: b("c") };
        assert_eq!(
            partial_failure(&del, 0, 3),
            "(at key \"c\": 0 of the line's 3 keys were done before it, the rest not sent)"
        );
        assert_eq!(
            partial_failure(&del, 1, 3),
            "(at key \"c\": 1 of the line's 3 keys was done before it, the rest not sent)"
        );
        let hset = Command::HSet {
            key: b("h"),
            field: b("g"),
            value: b("v"),
        };
        assert_eq!(
            partial_failure(&hset, 2, 4),
            "(at field \"g\": 2 of the line's 4 fields were done before it, the rest not sent)"
        );
    }

    #[test]
    fn errors_print_after_an_error_marker() {
        let wrong = ErrorReply::WrongType {
            wanted: Kind::Counter,
            found: Kind::Set,
        };
        assert_eq!(
            error(&wrong),
            "(error) WRONGTYPE operation against a key holding a set, wanted a counter"
        );
        let mv = ErrorReply::WrongType {
            wanted: Kind::Register,
            found: Kind::MvRegister,
        };
        assert_eq!(
            error(&mv),
            "(error) WRONGTYPE operation against a key holding an mvregister, wanted a register"
        );
    }

    /// As redis-cli prints `SSCAN` and `HSCAN`: the next cursor, then the
    /// page's items.
    #[test]
    fn scan_pages_print_their_cursor_then_their_items() {
        use crate::keyspace::Page;
        let page = Reply::SetPage(Page {
            items: vec![b("a"), b("bc")],
            more: true,
        });
        assert_eq!(reply(&page), "1) \"x6263\"\n2) 1) \"a\"\n   2) \"bc\"");
        assert_eq!(raw(page), "x6263\na\nbc\n");
        let last = Reply::MapPage(Page {
            items: vec![(b("f"), FieldValue::Counter(3))],
            more: false,
        });
        assert_eq!(reply(&last), "1) \"0\"\n2) 1) \"f\"\n   2) \"3\"");
        assert_eq!(raw(last), "0\nf\n3\n");
        let empty = Reply::SetPage(Page {
            items: vec![],
            more: false,
        });
        assert_eq!(reply(&empty), "1) \"0\"\n2) (empty array)");
        assert_eq!(raw(empty), "0\n");
    }
}
