//! The command line against a real Redis: the same command lines, sent by
//! `meridian` to a region started by `cluster up` and by `redis-cli` to a
//! redis-server, print the same text, as redis-cli lays it out and with
//! `--raw`.
//!
//! It needs `redis-server` and `redis-cli` 7.0 or later on the PATH
//! (Debian's `redis-server` package, which `.ci/run` installs). Where they
//! are missing or older the test says so and passes, unless
//! `MERIDIAN_REQUIRE_REDIS` is set, as `.ci/run` sets it.

mod common;

use common::{topology, Lab};
use std::path::PathBuf;
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

/// A redis-server of its own, on a unix socket (no TCP port to race
/// for), with no persistence.
struct Redis {
    child: Child,
    dir: tempfile::TempDir,
}

/// The version `redis-server --version` prints (`v=7.0.15`), as numbers.
fn redis_version() -> Option<Vec<u32>> {
    let output = Command::new("redis-server")
        .arg("--version")
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let version = text.split_whitespace().find_map(|w| w.strip_prefix("v="))?;
    version.split('.').map(|n| n.parse().ok()).collect()
}

impl Redis {
    /// The server, once it answers a ping; `None` (said on stderr) where
    /// Redis is not installed and not required.
    fn start() -> Option<Redis> {
        let cli = Command::new("redis-cli")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        let version = redis_version();
        if !cli || version.as_ref().is_none_or(|v| v[0] < 7) {
            assert!(
                std::env::var_os("MERIDIAN_REQUIRE_REDIS").is_none(),
                "redis-server and redis-cli 7.0 or later are required \
                 (apt-get install redis-server); found server {version:?}, cli {cli}"
            );
            eprintln!("no redis-server and redis-cli 7.0 or later: nothing compared");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(dir.path().join("redis.log")).unwrap();
        let child = Command::new("redis-server")
            .args(["--port", "0", "--unixsocket"])
            .arg(dir.path().join("redis.sock"))
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("redis-server starts");
        let mut redis = Redis { child, dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        while redis.cli(false, &["ping"]).stdout != b"PONG\n" {
            let log = || std::fs::read_to_string(redis.dir.path().join("redis.log"));
            if let Ok(Some(status)) = redis.child.try_wait() {
                panic!("redis-server exited ({status}): {:?}", log());
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer: {:?}",
                log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(redis)
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("redis.sock")
    }

    /// `redis-cli ARGS`, laid out as on a terminal, or `--raw`.
    fn cli(&self, raw: bool, args: &[&str]) -> Output {
        Command::new("redis-cli")
            .arg("-s")
            .arg(self.socket())
            .arg(if raw { "--raw" } else { "--no-raw" })
            .args(args)
            .output()
            .expect("redis-cli runs")
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Both print the same, formatted and `--raw`. Meridian succeeds; so does
/// Redis (redis-cli prints Redis's errors on stdout and exits with 0).
fn same(lab: &Lab, redis: &Redis, args: &[&str]) {
    for raw in [false, true] {
        let mut ours = vec!["--raw"];
        ours.truncate(usize::from(raw));
        ours.extend_from_slice(args);
        let meridian = lab.meridian(&ours);
        assert!(
            meridian.status.success(),
            "meridian {ours:?}: {}",
            text(&meridian.stderr)
        );
        let theirs = redis.cli(raw, args);
        assert_eq!(
            text(&meridian.stdout),
            text(&theirs.stdout),
            "meridian {ours:?} against redis-cli"
        );
    }
}

/// Both print the same items, in any order (Redis keeps a set's members,
/// and its keys, in no fixed order), one a line with `--raw`.
fn same_items(lab: &Lab, redis: &Redis, args: &[&str]) {
    let sorted = |bytes: &[u8]| {
        let mut lines: Vec<String> = text(bytes).lines().map(str::to_owned).collect();
        lines.sort();
        lines
    };
    let meridian = lab.meridian(&[&["--raw"][..], args].concat());
    assert!(
        meridian.status.success(),
        "{args:?}: {}",
        text(&meridian.stderr)
    );
    assert_eq!(
        sorted(&meridian.stdout),
        sorted(&redis.cli(true, args).stdout),
        "meridian --raw {args:?} against redis-cli"
    );
}

/// Both answer an integer from `range` (a time left, which the two read
/// at moments a process start or two apart).
fn both_within(lab: &Lab, redis: &Redis, args: &[&str], range: std::ops::RangeInclusive<i64>) {
    let integer = |text: String| -> i64 {
        let n = text.trim().strip_prefix("(integer) ");
        n.and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{args:?}: {text:?}"))
    };
    let meridian = lab.meridian(args);
    assert!(
        meridian.status.success(),
        "{args:?}: {}",
        text(&meridian.stderr)
    );
    for (who, n) in [
        ("meridian", integer(text(&meridian.stdout))),
        ("redis-cli", integer(text(&redis.cli(false, args).stdout))),
    ] {
        assert!(range.contains(&n), "{who} {args:?}: {n}");
    }
}

/// Both refuse the line: Meridian as a usage error, redis-cli with Redis's
/// `ERR` (printed on stdout).
fn both_refuse(lab: &Lab, redis: &Redis, args: &[&str]) {
    let meridian = lab.meridian(args);
    assert_eq!(meridian.status.code(), Some(2), "meridian {args:?}");
    let theirs = text(&redis.cli(false, args).stdout);
    assert!(
        theirs.starts_with("(error) ERR"),
        "redis-cli {args:?}: {theirs}"
    );
}

/// Both refuse with a `WRONGTYPE` error (Redis's text after it differs:
/// Meridian names the types).
fn both_wrongtype(lab: &Lab, redis: &Redis, args: &[&str]) {
    let meridian = lab.meridian(args);
    assert_eq!(meridian.status.code(), Some(1), "meridian {args:?}");
    let ours = text(&meridian.stderr);
    let theirs = text(&redis.cli(false, args).stdout);
    for (who, said) in [("meridian", &ours), ("redis-cli", &theirs)] {
        assert!(
            said.starts_with("(error) WRONGTYPE Operation against a key")
                || said.starts_with("(error) WRONGTYPE operation against a key"),
            "{who} {args:?}: {said}"
        );
    }
}

#[test]
fn command_lines_print_what_redis_cli_prints_for_redis() {
    let Some(redis) = Redis::start() else {
        return;
    };
    let lab = Lab::start(|| topology(&["r"], &[]));
    let quoted = "a\"b\\c\n\t\r\x07\x08\x01\x7f~ z";
    let twelve: Vec<String> = (0..12).map(|i| format!("k{i:02}")).collect();
    let mut mset = vec!["mset"];
    for key in &twelve {
        mset.extend([key.as_str(), "v"]);
    }
    let mut mget = vec!["mget"];
    mget.extend(twelve.iter().map(String::as_str));
    mget.push("missing");

    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (at, at_ms) = (
        (now_s + 1_000).to_string(),
        ((now_s + 2_000) * 1_000).to_string(),
    );
    let lines: &[&[&str]] = &[
        &["ping"],
        &["ping", "hello there"],
        &["echo", "hi"],
        // Registers.
        &["set", "greeting", "hello world"],
        &["get", "greeting"],
        &["get", "missing"],
        &["set", "quoted", quoted],
        &["get", "quoted"],
        &["set", "empty", ""],
        &["get", "empty"],
        &["strlen", "greeting"],
        &["strlen", "missing"],
        &["mset", "a", "1", "b", "2", "a", "3"],
        &["mget", "a", "b", "missing", "a"],
        &mset[..],
        &mget[..],
        &["exists", "a", "b", "missing", "a"],
        &["del", "a", "missing"],
        &["unlink", "b"],
        &["exists", "a", "b"],
        // Counters.
        &["incr", "hits"],
        &["incrby", "hits", "10"],
        &["decr", "hits"],
        &["decrby", "hits", "-5"],
        &["incrby", "hits", "-20"],
        &["get", "hits"],
        &["strlen", "hits"],
        // Sets, one member at a time where Redis's order is its own.
        &["sadd", "tags", "rust"],
        &["sadd", "tags", "rust"],
        &["smembers", "tags"],
        &["sismember", "tags", "rust"],
        &["sismember", "tags", "go"],
        &["smismember", "tags", "rust", "go"],
        &["scard", "tags"],
        &["sinter", "tags", "missing"],
        &["sdiff", "missing", "tags"],
        &["smembers", "missing"],
        &["scard", "missing"],
        // Maps (hashes) whose fields come in byte order, as Redis keeps
        // a small hash's fields in the order they were added.
        &["hset", "user", "age", "7", "name", "ada"],
        &["hset", "user", "name", "grace"],
        &["hget", "user", "name"],
        &["hget", "user", "nope"],
        &["hget", "missing", "f"],
        &["hmget", "user", "name", "nope", "age"],
        &["hexists", "user", "age"],
        &["hexists", "user", "nope"],
        &["hincrby", "user", "visits", "3"],
        &["hincrby", "user", "visits", "-1"],
        &["hget", "user", "visits"],
        &["hkeys", "user"],
        &["hvals", "user"],
        &["hgetall", "user"],
        &["hlen", "user"],
        &["hdel", "user", "age", "nope"],
        &["hgetall", "user"],
        &["hgetall", "missing"],
        &["hkeys", "missing"],
        &["hlen", "missing"],
        // Expiry.
        &["expire", "greeting", "100"],
        &["persist", "greeting"],
        &["persist", "greeting"],
        &["ttl", "greeting"],
        &["pttl", "greeting"],
        &["ttl", "missing"],
        &["pttl", "missing"],
        &["expire", "missing", "10"],
        &["set", "short", "v", "EX", "100"],
        &["expire", "short", "0"],
        &["get", "short"],
        &["pexpire", "hits", "-1"],
        &["exists", "hits"],
        // At Unix times: a whole second, so the time read back is the one
        // set whatever the few milliseconds between the two clocks' reads.
        &["expireat", "greeting", &at],
        &["expiretime", "greeting"],
        &["set", "at", "v", "EXAT", &at],
        &["expiretime", "at"],
        &["pexpireat", "at", &at_ms],
        &["expiretime", "at"],
        &["expiretime", "tags"],
        &["expiretime", "missing"],
        &["pexpiretime", "missing"],
        &["expireat", "at", "1000"],
        &["exists", "at"],
        &["expireat", "missing", &at],
        &["set", "neg", "v"],
        &["expireat", "neg", "-5"],
        &["exists", "neg"],
        &["set", "past", "v", "PXAT", "1000"],
        &["exists", "past"],
        &["set", "past", "v"],
        &["pexpireat", "past", "1000"],
        &["exists", "past"],
    ];
    for args in lines {
        same(&lab, &redis, args);
    }

    // A time left, read a moment after it was set.
    for key in ["greeting", "short"] {
        // The same option twice: the second counts.
        same(&lab, &redis, &["set", key, "v", "EX", "5", "ex", "100"]);
        both_within(&lab, &redis, &["ttl", key], 98..=100);
        both_within(&lab, &redis, &["pttl", key], 97_000..=100_000);
    }
    for args in [
        &["set", "k", "v", "EXAT", "0"][..],
        &["set", "k", "v", "EX", "0"],
        &["set", "k", "v", "EX", "5", "PX", "100"],
        &["expireat", "k", "9223372036854776"],
        &["expire", "k", "soon"],
    ] {
        both_refuse(&lab, &redis, args);
    }

    // Several members, and keys, in whatever order each keeps them.
    for args in [
        &["sadd", "langs", "rust", "go", "zig"][..],
        &["sadd", "more", "go", "c"],
    ] {
        same(&lab, &redis, args);
    }
    for args in [
        &["smembers", "langs"][..],
        &["sunion", "langs", "more", "missing"],
        &["sinter", "langs", "more"],
        &["sdiff", "langs", "more"],
        &["srem", "langs", "go", "nope"],
        &["smembers", "langs"],
        &["keys", "k*"],
        &["keys", "k0[0-4]"],
        &["keys", "nothing*"],
    ] {
        same_items(&lab, &redis, args);
    }

    for args in [
        &["get", "tags"][..],
        &["mget", "tags"][..],
        &["incr", "tags"],
        &["sadd", "user", "x"],
        &["hget", "tags", "f"],
        &["hset", "tags", "f", "v"],
        &["smembers", "user"],
        &["strlen", "tags"],
        &["hkeys", "tags"],
        &["sunion", "tags", "user"],
    ] {
        // MGET answers (nil) for a key of another type, in both.
        if args[0] == "mget" {
            same(&lab, &redis, args);
        } else {
            both_wrongtype(&lab, &redis, args);
        }
    }
}
