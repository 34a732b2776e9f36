//! The `meridian` binary as users run it: help, exit codes, certificate
//! commands, usage errors and topology errors, which need no cluster; and,
//! at the end, the data command forms checked against one region started by
//! the real `cluster up` (the harness of `common/mod.rs`).

#[cfg(target_os = "linux")]
mod common;

use std::path::Path;
use std::process::{Command, Output};

fn meridian(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_meridian"))
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .output()
        .expect("the meridian binary runs")
}

/// Runs `meridian ARGS` in `dir` with `input` as its stdin.
fn meridian_with_stdin(dir: &Path, args: &[&str], input: &[u8]) -> Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_meridian"))
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the meridian binary runs");
    let mut stdin = child.stdin.take().expect("a piped stdin");
    // A command that does not read stdin may exit before it is written.
    let _ = stdin.write_all(input);
    drop(stdin);
    child.wait_with_output().expect("the meridian binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[track_caller]
fn assert_exit(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        stdout(output),
        stderr(output)
    );
}

#[test]
fn help_lists_the_subcommands_and_the_data_commands() {
    let dir = tempfile::tempdir().unwrap();
    let output = meridian(dir.path(), &["--help"]);
    assert_exit(&output, 0);
    let help = stdout(&output);
    for word in [
        "serve",
        "certs",
        "cluster",
        "--topology <FILE>",
        "--state-dir <DIR>",
        "--consistency <LEVEL>",
        "--cert-dir <DIR>",
        "--client <NAME>",
        "set KEY VALUE [--ex SECONDS | --px MS]",
        "hincrby KEY FIELD N",
        "ttl KEY",
    ] {
        assert!(help.contains(word), "{word:?} missing from:\n{help}");
    }
    let output = meridian(dir.path(), &["cluster", "--help"]);
    assert_exit(&output, 0);
    for word in ["up", "down", "kill", "status"] {
        assert!(stdout(&output).contains(word), "{word}");
    }
    // The top-level help sets the options of commands that act as a client
    // apart, after the others; a command's help lists only those it takes.
    for (command, taken, refused) in [
        (
            &["--help"][..],
            &[
                "--consistency <LEVEL>",
                "--read <LEVEL>",
                "--raw ",
                "  -x ",
                "--client <NAME>",
            ][..],
            &[][..],
        ),
        (
            &["bench", "--help"],
            &["--consistency <LEVEL>", "--read <LEVEL>", "--client <NAME>"],
            &["--raw ", "  -x "],
        ),
    ] {
        let output = meridian(dir.path(), command);
        assert_exit(&output, 0);
        let help = stdout(&output);
        let (own, client) = help
            .split_once("Client options:")
            .unwrap_or_else(|| panic!("no client options heading in:\n{help}"));
        assert!(own.contains("--state-dir"), "{help}");
        for option in taken {
            assert!(
                client.contains(option) && !own.contains(option),
                "{option} in:\n{help}"
            );
        }
        for option in refused {
            assert!(!help.contains(option), "{option} in:\n{help}");
        }
    }
    let output = meridian(dir.path(), &["cluster", "up", "--help"]);
    assert!(
        !stdout(&output).contains("Client options"),
        "{}",
        stdout(&output)
    );
    // Likewise the options that say where the cluster is.
    for (command, taken, refused) in [
        (
            &["--help"][..],
            &["--topology <FILE>", "--region <R>", "--cert-dir <DIR>"][..],
            &[][..],
        ),
        (
            &["cluster", "up", "--help"],
            &["[TOPOLOGY]"],
            &["--region <R>", "--cert-dir <DIR>"],
        ),
        (
            &["cluster", "down", "--help"],
            &[],
            &["--topology <FILE>", "--region <R>", "--cert-dir <DIR>"],
        ),
        (
            &["serve", "--help"],
            &["--topology <FILE>", "--cert-dir <DIR>"],
            &["--region <R>"],
        ),
        (
            &["status", "--help"],
            &["--topology <FILE>", "--region <R>", "--cert-dir <DIR>"],
            &[],
        ),
    ] {
        let output = meridian(dir.path(), command);
        assert_exit(&output, 0);
        let help = stdout(&output);
        for option in taken {
            assert!(help.contains(option), "{option} not in:\n{help}");
        }
        for option in refused {
            assert!(!help.contains(option), "{option} in:\n{help}");
        }
        assert!(help.contains("--state-dir <DIR>"), "{help}");
    }
}

#[test]
fn a_data_command_with_bad_arguments_is_a_usage_error_with_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let output = meridian(dir.path(), &["incrby", "hits", "ten"]);
    assert_exit(&output, 2);
    assert_eq!(
        stderr(&output),
        "(error) N must be an integer in the 64-bit signed range, not 'ten'\n\
         usage: meridian incrby KEY N\n"
    );
    assert_eq!(stdout(&output), "");

    let output = meridian(dir.path(), &["get"]);
    assert_exit(&output, 2);
    assert!(stderr(&output).starts_with("(error) wrong number of arguments for 'get'"));

    let output = meridian(dir.path(), &["frobnicate", "k"]);
    assert_exit(&output, 2);
    assert!(stderr(&output).contains("unknown command 'frobnicate'"));
}

#[test]
fn a_bad_global_option_is_a_usage_error_with_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let output = meridian(dir.path(), &["--consistency", "most", "get", "k"]);
    assert_exit(&output, 2);
    assert!(stderr(&output).contains("possible values: one, quorum, all"));
}

#[test]
fn a_data_commands_usage_is_shown_on_request() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["help", "hset"][..],
        &["-v", "help", "hset"],
        &["help", "HSET"],
        // -x reads no stdin for help.
        &["-x", "help", "hset"],
    ] {
        let output = meridian_with_stdin(dir.path(), args, b"");
        assert_exit(&output, 0);
        assert!(
            stdout(&output).starts_with("usage: meridian hset KEY FIELD VALUE [FIELD VALUE...]\n"),
            "{args:?}: {}",
            stdout(&output)
        );
    }
    // A command with the wrong number of arguments shows its usage too.
    let output = meridian(dir.path(), &["hset"]);
    assert_exit(&output, 2);
    assert!(
        stderr(&output).ends_with("usage: meridian hset KEY FIELD VALUE [FIELD VALUE...]\n"),
        "{}",
        stderr(&output)
    );
    // The top-level help says how to ask.
    assert!(stdout(&meridian(dir.path(), &["--help"])).contains("`meridian help COMMAND`"));
    // clap's own help of a subcommand is unchanged, and an unknown name is
    // still refused.
    let output = meridian(dir.path(), &["help", "cluster"]);
    assert_exit(&output, 0);
    assert!(
        stdout(&output).contains("Usage: meridian cluster"),
        "{}",
        stdout(&output)
    );
    let output = meridian(dir.path(), &["help", "nosuch"]);
    assert_exit(&output, 2);
    // Words after the name are no help request, and no command either.
    let output = meridian(dir.path(), &["help", "del", "mykey"]);
    assert_exit(&output, 2);
    assert!(
        stderr(&output).contains("unrecognized subcommand"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn help_flags_after_a_data_commands_name_are_its_arguments() {
    // Keys named -h or --help are keys: each command goes on to look for
    // the cluster (there is none here) instead of printing its usage.
    let dir = tempfile::tempdir().unwrap();
    let no_cluster = "(error) no running cluster found in .meridian";
    for args in [
        &["del", "-h"][..],
        &["get", "--help"],
        &["ttl", "-h"],
        &["type", "--help"],
        &["incr", "--help"],
        &["set", "--help", "v"],
    ] {
        let output = meridian(dir.path(), args);
        assert_exit(&output, 1);
        assert!(
            stderr(&output).starts_with(no_cluster),
            "{args:?}: {}",
            stderr(&output)
        );
        assert_eq!(stdout(&output), "", "{args:?}");
    }
    // Nor is a last argument read from stdin ever a flag.
    for (args, input) in [
        (&["-x", "del"][..], &b"-h"[..]),
        (&["-x", "set", "--help"], b""),
    ] {
        let output = meridian_with_stdin(dir.path(), args, input);
        assert_exit(&output, 1);
        assert!(
            stderr(&output).starts_with(no_cluster),
            "{args:?}: {}",
            stderr(&output)
        );
    }
}

/// Runs `meridian ARGS` in `dir` with stdout to /dev/full, where every
/// write fails with ENOSPC.
#[cfg(target_os = "linux")]
fn meridian_to_a_full_disk(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_meridian"))
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .stdout(std::fs::File::create("/dev/full").unwrap())
        .output()
        .expect("the meridian binary runs")
}

#[cfg(target_os = "linux")]
#[test]
fn output_that_stdout_does_not_take_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    for args in [&["help", "get"][..], &["certs", "create-ca"]] {
        let output = meridian_to_a_full_disk(dir.path(), args);
        assert_exit(&output, 1);
        assert!(
            stderr(&output).starts_with("error: cannot write to stdout: No space left on device"),
            "{args:?}: {}",
            stderr(&output)
        );
    }
}

#[test]
fn certs_create_a_ca_then_node_and_client_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("pki");
    let certs_arg = certs.to_str().unwrap();

    let output = meridian(dir.path(), &["certs", "create-ca", "--dir", certs_arg]);
    assert_exit(&output, 0);
    assert!(stdout(&output).starts_with("cluster CA:\n"));
    assert!(certs.join("ca.cert.pem").is_file());
    assert!(certs.join("ca.key.pem").is_file());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(certs.join("ca.key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the CA key is private");
    }

    let output = meridian(
        dir.path(),
        &["certs", "--dir", certs_arg, "node", "us-east-1"],
    );
    assert_exit(&output, 0);
    assert!(certs.join("node-us-east-1.cert.pem").is_file());
    assert!(certs.join("node-us-east-1.key.pem").is_file());

    let output = meridian(
        dir.path(),
        &["certs", "client", "alice", "--dir", certs_arg],
    );
    assert_exit(&output, 0);
    assert!(stdout(&output).contains("client-alice.cert.pem"));
    assert!(certs.join("client-alice.key.pem").is_file());

    // The files are a working set: the library loads them back.
    let store = meridian::tls::CertStore::new(&certs);
    store.load_node_identity("us-east-1").unwrap();
    store.load_client_identity("alice").unwrap();
}

#[test]
fn certs_refuse_to_replace_a_ca_and_need_one_to_issue() {
    let dir = tempfile::tempdir().unwrap();
    let output = meridian(dir.path(), &["certs", "node", "n1"]);
    assert_exit(&output, 1);
    assert!(
        stderr(&output).contains("ca.cert.pem"),
        "{}",
        stderr(&output)
    );

    assert_exit(&meridian(dir.path(), &["certs", "create-ca"]), 0);
    let before = std::fs::read(dir.path().join(".meridian/certs/ca.key.pem")).unwrap();
    let output = meridian(dir.path(), &["certs", "create-ca"]);
    assert_exit(&output, 1);
    assert!(
        stderr(&output).starts_with("error: "),
        "{}",
        stderr(&output)
    );
    let after = std::fs::read(dir.path().join(".meridian/certs/ca.key.pem")).unwrap();
    assert_eq!(before, after, "the CA is left as it was");
}

#[test]
fn certs_default_to_the_state_dir() {
    let dir = tempfile::tempdir().unwrap();
    assert_exit(
        &meridian(dir.path(), &["--state-dir", "lab", "certs", "create-ca"]),
        0,
    );
    assert!(dir.path().join("lab/certs/ca.cert.pem").is_file());
    assert_exit(
        &meridian(
            dir.path(),
            &["--state-dir", "lab", "certs", "client", "cli"],
        ),
        0,
    );
    assert!(dir.path().join("lab/certs/client-cli.cert.pem").is_file());
}

/// A topology whose line 8 has a port that cannot be dialled.
const BAD_TOPOLOGY: &str = "[cluster]
name = \"bad\"
replication_factor = 1
[[region]]
name = \"r\"
[[region.node]]
id = \"r-1\"
client_addr = \"127.0.0.1:0\"
peer_addr = \"127.0.0.1:9001\"
";

#[test]
fn a_bad_topology_is_reported_with_its_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.toml"), BAD_TOPOLOGY).unwrap();

    let output = meridian(dir.path(), &["--topology", "bad.toml", "get", "k"]);
    assert_exit(&output, 1);
    assert!(
        stderr(&output).starts_with("(error) bad.toml:8: "),
        "{}",
        stderr(&output)
    );

    for args in [
        &["cluster", "up", "bad.toml"][..],
        &["--topology", "bad.toml", "serve", "--node", "r-1"],
    ] {
        let output = meridian(dir.path(), args);
        assert_exit(&output, 1);
        let err = stderr(&output);
        assert!(err.contains("bad.toml:8: "), "{args:?}: {err}");
        assert!(err.contains("port 0 cannot be dialled"), "{args:?}: {err}");
    }
    // Nothing was started.
    assert!(!dir.path().join(".meridian/cluster.json").exists());
}

#[test]
fn a_missing_topology_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let output = meridian(dir.path(), &["--topology", "nowhere.toml", "ping"]);
    assert_exit(&output, 1);
    assert!(
        stderr(&output).starts_with("(error) nowhere.toml: cannot read"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_data_command_without_a_cluster_says_none_runs_and_how_to_start_one() {
    let dir = tempfile::tempdir().unwrap();
    for (args, state_dir) in [
        (&["get", "k"][..], ".meridian"),
        (&["--state-dir", "lab", "ping"], "lab"),
    ] {
        let output = meridian(dir.path(), args);
        assert_exit(&output, 1);
        let err = stderr(&output);
        assert!(
            err.starts_with(&format!(
                "(error) no running cluster found in {state_dir} (no cluster.json there): "
            )),
            "{args:?}: {err}"
        );
        assert!(err.contains("meridian cluster up"), "{err}");
        assert!(
            err.contains("--state-dir") && err.contains("--topology"),
            "{err}"
        );
        assert!(!err.contains("regions/local.toml"), "{err}");
    }
    // The shell says the same before it runs a line.
    let output = meridian_with_stdin(dir.path(), &[], b"help\nping\n");
    assert_exit(&output, 1);
    assert_eq!(stdout(&output), "");
    let err = stderr(&output);
    assert!(
        err.contains("no running cluster found in .meridian") && err.contains("cluster up"),
        "{err}"
    );
}

#[test]
fn the_shell_refuses_x_which_would_read_its_lines() {
    let dir = tempfile::tempdir().unwrap();
    for args in [&["-x"][..], &["-x", "shell"]] {
        let output = meridian_with_stdin(dir.path(), args, b"get k\n");
        assert_exit(&output, 2);
        assert!(
            stderr(&output).contains("-x (the last argument from stdin) is for data commands only"),
            "{}",
            stderr(&output)
        );
    }
}

#[test]
fn a_data_command_that_guessed_the_local_topology_says_no_cluster_runs() {
    // Inside a checkout, with no cluster running, the CLI falls back on
    // regions/local.toml (nodes run by hand); when that finds nothing
    // either, the error says no cluster runs and how to start one.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("regions")).unwrap();
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/regions/local.toml"),
        dir.path().join("regions/local.toml"),
    )
    .unwrap();
    let output = meridian(dir.path(), &["--state-dir", "empty", "get", "k"]);
    assert_exit(&output, 1);
    let err = stderr(&output);
    assert!(err.starts_with("(error) TLS: "), "{err}");
    let hint = "no cluster is running in empty (no cluster.json there), so regions/local.toml \
                was tried: start one with `meridian cluster up`";
    assert!(err.contains(hint), "{err}");
    // So do status and reload.
    for command in ["status", "reload"] {
        let output = meridian(dir.path(), &["--state-dir", "empty", command]);
        assert_exit(&output, 1);
        let err = stderr(&output);
        assert!(err.starts_with("error: TLS: "), "{command}: {err}");
        assert!(err.contains(hint), "{command}: {err}");
    }
    // With certificates but no node up, status lists the nodes it could
    // not reach, then says the same.
    let certs = dir.path().join("empty/certs");
    let created = meridian(
        dir.path(),
        &["--cert-dir", certs.to_str().unwrap(), "certs", "create-ca"],
    );
    assert_exit(&created, 0);
    let issued = meridian(
        dir.path(),
        &[
            "--cert-dir",
            certs.to_str().unwrap(),
            "certs",
            "client",
            "cli",
        ],
    );
    assert_exit(&issued, 0);
    let output = meridian(dir.path(), &["--state-dir", "empty", "status"]);
    assert_exit(&output, 1);
    assert!(stdout(&output).contains("us-east-1"), "{}", stdout(&output));
    assert!(stderr(&output).contains(hint), "{}", stderr(&output));
    // JSON stays JSON on stdout.
    let output = meridian(dir.path(), &["--state-dir", "empty", "status", "--json"]);
    assert_exit(&output, 1);
    let report: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(report["nodes_up"], 0);
    assert!(stderr(&output).contains(hint), "{}", stderr(&output));
}

#[test]
fn client_options_are_refused_by_commands_that_would_ignore_them() {
    let dir = tempfile::tempdir().unwrap();
    for (args, message) in [
        (
            &["-x", "cluster", "status"][..],
            "-x (the last argument from stdin) is for data commands only",
        ),
        (
            &["--raw", "status"],
            "--raw is for data commands and the shell only",
        ),
        (
            &["-v", "cluster", "status"],
            "-v/--verbose is for writing data commands and the shell only",
        ),
        (
            &["--raw", "bench"],
            "--raw is for data commands and the shell only",
        ),
        (
            &["--read", "quorum", "status"],
            "--read is for reading data commands, the shell and bench only",
        ),
        (
            &["--consistency", "all", "cluster", "down"],
            "--consistency is for writing data commands, the shell and bench only",
        ),
        (
            &["--client", "alice", "cluster", "status"],
            "--client is for data commands, the shell, status, reload, bench and demo only",
        ),
    ] {
        let output = meridian(dir.path(), args);
        assert_exit(&output, 2);
        assert!(
            stderr(&output).contains(message),
            "{args:?}: {}",
            stderr(&output)
        );
    }
    // bench takes the consistency levels (it finds no cluster here).
    let output = meridian(
        dir.path(),
        &["--consistency", "all", "--read", "quorum", "bench"],
    );
    assert_exit(&output, 1);
    assert!(!stderr(&output).contains("only"), "{}", stderr(&output));
}

#[test]
fn data_commands_refuse_the_client_options_of_what_they_do_not_do() {
    let dir = tempfile::tempdir().unwrap();
    for (args, message) in [
        (
            &["--consistency", "all", "get", "k"][..],
            "(error) --consistency is for writing data commands, the shell and bench only: 'get' only reads\n",
        ),
        (
            &["--read", "quorum", "set", "k", "v"],
            "(error) --read is for reading data commands, the shell and bench only: 'set' writes\n",
        ),
        (
            &["--read", "one", "DEL", "k1", "k2"],
            "(error) --read is for reading data commands, the shell and bench only: 'del' writes\n",
        ),
        (
            &["-v", "get", "k"],
            "(error) -v/--verbose is for writing data commands and the shell only: 'get' only reads\n",
        ),
        (
            &["-v", "exists", "k"],
            "(error) -v/--verbose is for writing data commands and the shell only: 'exists' only reads\n",
        ),
        (
            &["--consistency", "one", "ping"],
            "(error) --consistency is for writing data commands, the shell and bench only: 'ping' names no key\n",
        ),
    ] {
        let output = meridian(dir.path(), args);
        assert_exit(&output, 2);
        assert_eq!(stderr(&output), message, "{args:?}");
    }
    // Before stdin is read.
    let output = meridian_with_stdin(dir.path(), &["-x", "--read", "quorum", "set", "k"], b"v");
    assert_exit(&output, 2);
    // What a command does take gets it past the check (to find no cluster).
    for args in [
        &["--consistency", "all", "set", "k", "v"][..],
        &["--read", "quorum", "get", "k"],
        &["-v", "del", "k"],
        &["-v", "--consistency", "one", "expire", "k", "0"],
        &["--raw", "ping"],
    ] {
        let output = meridian(dir.path(), args);
        assert_exit(&output, 1);
        assert!(
            stderr(&output).starts_with("(error) no running cluster found"),
            "{args:?}: {}",
            stderr(&output)
        );
    }
}

#[test]
fn bench_counts_below_one_are_usage_errors_said_in_words() {
    let dir = tempfile::tempdir().unwrap();
    for (args, message) in [
        (
            &["bench", "--keys", "0"][..],
            "error: invalid value '0' for '--keys <N>': expected at least 1",
        ),
        (
            &["bench", "--requests", "0"],
            "error: invalid value '0' for '--requests <N>': expected at least 1",
        ),
    ] {
        let output = meridian(dir.path(), args);
        assert_exit(&output, 2);
        assert!(
            stderr(&output).starts_with(message),
            "{args:?}: {}",
            stderr(&output)
        );
    }
    // A --home the region does not have is, like a --region the topology
    // does not have, the command's failure (exit code 1), named.
    let single = concat!(env!("CARGO_MANIFEST_DIR"), "/regions/single.toml");
    let output = meridian(
        dir.path(),
        &["--topology", single, "bench", "--home", "nosuch"],
    );
    assert_exit(&output, 1);
    assert!(
        stderr(&output).contains("--home nosuch is not a node of region local"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn cluster_up_refuses_a_cert_dir_it_would_not_use() {
    let dir = tempfile::tempdir().unwrap();
    let local = concat!(env!("CARGO_MANIFEST_DIR"), "/regions/local.toml");
    let output = meridian(dir.path(), &["--cert-dir", "pki", "cluster", "up", local]);
    assert_exit(&output, 2);
    assert!(
        stderr(&output).contains(
            "--cert-dir is for data commands, the shell, serve, certs, status, reload and bench only: \
             cluster commands keep their certificates in <state-dir>/certs (give --state-dir instead)"
        ),
        "{}",
        stderr(&output)
    );
    assert!(!dir.path().join(".meridian").exists());
}

#[test]
fn place_options_are_refused_by_commands_that_would_ignore_them() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = ": cluster commands other than up work on the cluster running in --state-dir";
    for (args, message) in [
        (
            &["--region", "eu-west", "cluster", "down"][..],
            format!("--region is for data commands, the shell, status, reload and bench only{elsewhere}"),
        ),
        (
            &["--region", "mars", "cluster", "heal"],
            format!("--region is for data commands, the shell, status, reload and bench only{elsewhere}"),
        ),
        (
            &[
                "--topology",
                "regions/single.toml",
                "cluster",
                "add-node",
                "east",
            ],
            format!(
                "--topology is for data commands, the shell, serve, cluster up, status, reload and bench \
                 only{elsewhere}"
            ),
        ),
        (
            &["--region", "east", "serve", "--node", "east-1"],
            "--region is for data commands, the shell, status, reload and bench only".to_owned(),
        ),
        (
            &["--topology", "t.toml", "demo"],
            "--topology is for data commands, the shell, serve, cluster up, status, reload and bench only"
                .to_owned(),
        ),
        (
            &["--region", "east", "certs", "create-ca"],
            "--region is for data commands, the shell, status, reload and bench only".to_owned(),
        ),
    ] {
        let output = meridian(dir.path(), args);
        assert_exit(&output, 2);
        assert!(
            stderr(&output).contains(&message),
            "{args:?}: {}",
            stderr(&output)
        );
    }
    assert!(
        !dir.path().join(".meridian").exists(),
        "nothing was created"
    );
    // The commands that take them get past the check (and find no cluster).
    for args in [
        &["--region", "east", "status"][..],
        &["--topology", "nope.toml", "--region", "east", "reload"],
        &["--topology", "nope.toml", "cluster", "up"],
        &["cluster", "up", "--topology", "nope.toml"],
        &["--seed", "127.0.0.1:1", "reload"],
        // A region given as the command's own argument is no --region.
        &["cluster", "add-node", "east"],
        &["cluster", "partition", "east", "west"],
    ] {
        let output = meridian(dir.path(), args);
        assert_exit(&output, 1);
        assert!(
            !stderr(&output).contains(" only"),
            "{args:?}: {}",
            stderr(&output)
        );
    }
    let output = meridian(
        dir.path(),
        &["--topology", "a.toml", "cluster", "up", "b.toml"],
    );
    assert_exit(&output, 1);
    assert!(
        stderr(&output).contains("two topology files, b.toml and --topology a.toml: give one"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn serve_refuses_a_node_that_is_not_in_the_topology() {
    let dir = tempfile::tempdir().unwrap();
    let local = concat!(env!("CARGO_MANIFEST_DIR"), "/regions/local.toml");
    let output = meridian(
        dir.path(),
        &["--topology", local, "serve", "--node", "mars-1"],
    );
    assert_exit(&output, 1);
    assert!(
        stderr(&output).contains("no node mars-1 in"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn cluster_commands_without_a_running_cluster_say_so() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["cluster", "status"][..],
        &["cluster", "down"],
        &["cluster", "kill", "us-east-1"],
    ] {
        let output = meridian(dir.path(), args);
        assert_exit(&output, 1);
        assert!(
            stderr(&output).contains("no cluster is running in .meridian"),
            "{args:?}: {}",
            stderr(&output)
        );
    }
}

#[test]
fn an_unknown_region_is_refused_with_the_known_ones() {
    let dir = tempfile::tempdir().unwrap();
    let local = concat!(env!("CARGO_MANIFEST_DIR"), "/regions/local.toml");
    let output = meridian(
        dir.path(),
        &["--topology", local, "--region", "mars", "ping"],
    );
    assert_exit(&output, 1);
    assert!(
        stderr(&output).contains("no region \"mars\" in")
            && stderr(&output).contains("us-east, eu-west, ap-south"),
        "{}",
        stderr(&output)
    );
}

/// Data commands against a running cluster: one region of three nodes
/// (N = 3, W = quorum), started once for every check below.
#[cfg(target_os = "linux")]
mod against_a_cluster {
    use super::common::{topology, Lab};

    fn one_region() -> String {
        topology(&["r"], &[])
    }

    #[test]
    fn data_command_forms() {
        let lab = Lab::start(one_region);
        map_counters_print_as_strings_in_hget_and_hgetall(&lab);
        verbose_writes_say_how_many_replicas_acked_and_were_needed(&lab);
        redis_forms_of_several_keys_fields_or_a_message(&lab);
        expire_in_zero_or_fewer_seconds_deletes_the_key(&lab);
        other_certificates_are_named_by_cert_dir_and_client(&lab);
        x_reads_a_value_too_long_for_a_command_line_from_stdin(&lab);
        the_shell_runs_each_line_of_stdin_and_goes_on_after_errors(&lab);
        raw_prints_values_bare_and_one_item_per_line(&lab);
        a_keys_type_is_fixed_by_its_first_write(&lab);
        keys_named_like_help_flags_are_keys(&lab);
        too_large_keys_and_values_name_their_own_limit(&lab);
        scan_pages_through_the_regions_keys(&lab);
        several_keys_or_fields_at_once_as_redis_prints_them(&lab);
    }

    /// `mset`, `mget`, `hmget`, `smismember`, `hexists`, `hkeys`, `hvals`,
    /// `strlen`, `pexpire` and `pttl` answer as redis-cli prints Redis's.
    fn several_keys_or_fields_at_once_as_redis_prints_them(lab: &Lab) {
        assert_eq!(
            lab.ok(&["-v", "mset", "multi:a", "1", "multi:b", "two", "multi:a", "3"]),
            "OK\n(acked by 2 replicas, 2 needed)\n"
        );
        assert_eq!(lab.ok(&["sadd", "multi:set", "x", "y"]), "(integer) 2\n");
        assert_eq!(lab.ok(&["incrby", "multi:n", "42"]), "(integer) 42\n");
        // A key of another type, like a missing one, is (nil), as in MGET.
        assert_eq!(
            lab.ok(&[
                "mget",
                "multi:a",
                "multi:b",
                "multi:none",
                "multi:set",
                "multi:n"
            ]),
            "1) \"3\"\n2) \"two\"\n3) (nil)\n4) (nil)\n5) \"42\"\n"
        );
        assert_eq!(
            lab.ok(&["--raw", "mget", "multi:a", "multi:none", "multi:b"]),
            "3\n\ntwo\n"
        );
        assert_eq!(
            lab.ok(&["--read", "quorum", "mget", "multi:b"]),
            "1) \"two\"\n"
        );
        assert_eq!(lab.ok(&["strlen", "multi:b"]), "(integer) 3\n");
        assert_eq!(lab.ok(&["strlen", "multi:none"]), "(integer) 0\n");
        assert_eq!(
            lab.ok(&["smismember", "multi:set", "x", "z", "y"]),
            "1) (integer) 1\n2) (integer) 0\n3) (integer) 1\n"
        );
        assert_eq!(
            lab.ok(&["--raw", "smismember", "multi:set", "z", "y"]),
            "0\n1\n"
        );
        assert_eq!(lab.ok(&["sadd", "multi:set2", "y", "z"]), "(integer) 2\n");
        assert_eq!(
            lab.ok(&["sunion", "multi:set", "multi:set2", "multi:none"]),
            "1) \"x\"\n2) \"y\"\n3) \"z\"\n"
        );
        assert_eq!(lab.ok(&["sinter", "multi:set", "multi:set2"]), "1) \"y\"\n");
        assert_eq!(
            lab.ok(&["sinter", "multi:set", "multi:none"]),
            "(empty array)\n"
        );
        assert_eq!(
            lab.ok(&["--raw", "sdiff", "multi:set2", "multi:set"]),
            "z\n"
        );
        assert!(lab.fails(&["sunion", "multi:set", "multi:b"]).starts_with(
            "(error) WRONGTYPE operation against a key holding a register, wanted a set\n"
        ));
        assert_eq!(lab.ok(&["echo", "hi there"]), "\"hi there\"\n");
        assert_eq!(lab.ok(&["set", "multi:u", "1"]), "OK\n");
        assert_eq!(
            lab.ok(&["unlink", "multi:u", "multi:none"]),
            "(integer) 1\n"
        );
        assert_eq!(
            lab.fails(&["smismember", "multi:a", "x", "y"]),
            "(error) WRONGTYPE operation against a key holding a register, wanted a set\n\
             (at member \"x\")\n"
        );

        assert_eq!(
            lab.ok(&["hset", "multi:h", "f", "v", "g", "w"]),
            "(integer) 2\n"
        );
        assert_eq!(lab.ok(&["hincrby", "multi:h", "n", "7"]), "(integer) 7\n");
        assert_eq!(
            lab.ok(&["hmget", "multi:h", "g", "none", "n"]),
            "1) \"w\"\n2) (nil)\n3) \"7\"\n"
        );
        assert_eq!(lab.ok(&["hmget", "multi:none", "f"]), "1) (nil)\n");
        assert_eq!(
            lab.fails(&["hmget", "multi:set", "f", "g"]),
            "(error) WRONGTYPE operation against a key holding a set, wanted a map\n(at field \"f\")\n"
        );
        assert_eq!(lab.ok(&["hexists", "multi:h", "n"]), "(integer) 1\n");
        assert_eq!(lab.ok(&["hexists", "multi:h", "none"]), "(integer) 0\n");
        assert_eq!(
            lab.ok(&["hkeys", "multi:h"]),
            "1) \"f\"\n2) \"g\"\n3) \"n\"\n"
        );
        assert_eq!(
            lab.ok(&["hvals", "multi:h"]),
            "1) \"v\"\n2) \"w\"\n3) \"7\"\n"
        );
        assert_eq!(lab.ok(&["--raw", "hvals", "multi:h"]), "v\nw\n7\n");
        assert_eq!(lab.ok(&["hkeys", "multi:none"]), "(empty array)\n");
        assert_eq!(lab.ok(&["hvals", "multi:none"]), "(empty array)\n");

        assert_eq!(lab.ok(&["pttl", "multi:a"]), "(integer) -1\n");
        assert_eq!(lab.ok(&["pttl", "multi:none"]), "(integer) -2\n");
        assert_eq!(lab.ok(&["pexpire", "multi:a", "600000"]), "(integer) 1\n");
        let left: i64 = lab
            .ok(&["--raw", "pttl", "multi:a"])
            .trim()
            .parse()
            .unwrap();
        assert!((590_000..=600_000).contains(&left), "{left} ms left");
        assert_eq!(lab.ok(&["pexpire", "multi:a", "0"]), "(integer) 1\n");
        assert_eq!(lab.ok(&["get", "multi:a"]), "(nil)\n");
        assert_eq!(lab.meridian(&["mset", "multi:a"]).status.code(), Some(2));

        // Expiry at a Unix time, by this machine's clock.
        let now_s = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let at = (now_s + 1_000).to_string();
        assert_eq!(lab.ok(&["set", "multi:t", "v"]), "OK\n");
        assert_eq!(lab.ok(&["expireat", "multi:t", &at]), "(integer) 1\n");
        assert_eq!(
            lab.ok(&["expiretime", "multi:t"]),
            format!("(integer) {at}\n")
        );
        assert_eq!(
            lab.ok(&["--raw", "pexpiretime", "multi:t"])
                .trim()
                .parse::<u64>()
                .unwrap()
                / 1000,
            now_s + 1_000
        );
        let ttl: u64 = lab.ok(&["--raw", "ttl", "multi:t"]).trim().parse().unwrap();
        assert!((990..=1_000).contains(&ttl), "{ttl}");
        // In the shell, each run of a repeated line reads the clock anew.
        let output = super::meridian_with_stdin(
            lab.dir.path(),
            &[],
            format!("3 expireat multi:t {at}\n2 expiretime multi:t\n").as_bytes(),
        );
        assert_eq!(
            super::stdout(&output),
            format!("(integer) 1\n(integer) 1\n(integer) 1\n(integer) {at}\n(integer) {at}\n")
        );
        assert_eq!(lab.ok(&["set", "multi:t", "w", "--exat", &at]), "OK\n");
        assert_eq!(
            lab.ok(&["expiretime", "multi:t"]),
            format!("(integer) {at}\n")
        );
        assert_eq!(lab.ok(&["expireat", "multi:t", "1"]), "(integer) 1\n");
        assert_eq!(lab.ok(&["expiretime", "multi:t"]), "(integer) -2\n");
        assert_eq!(lab.ok(&["expiretime", "multi:n"]), "(integer) -1\n");
        assert_eq!(lab.ok(&["pexpire", "multi:a", "-5"]), "(integer) 0\n");
        assert_eq!(lab.ok(&["set", "multi:a", "x"]), "OK\n");
        assert_eq!(
            lab.ok(&["-v", "pexpire", "multi:a", "-5"]),
            "(integer) 1\n(acked by 2 replicas, 2 needed)\n"
        );
        assert_eq!(lab.ok(&["exists", "multi:a"]), "(integer) 0\n");

        // Each as Redis's, in --raw too, and WRONGTYPE where Redis says it.
        assert_eq!(lab.ok(&["strlen", "multi:n"]), "(integer) 2\n");
        assert_eq!(lab.ok(&["--raw", "hmget", "multi:h", "f", "none"]), "v\n\n");
        assert_eq!(lab.ok(&["--raw", "hkeys", "multi:h"]), "f\ng\nn\n");
        let wrongtype = "(error) WRONGTYPE operation against a key holding a set, wanted";
        for args in [
            &["strlen", "multi:set"][..],
            &["hexists", "multi:set", "f"],
            &["hkeys", "multi:set"],
        ] {
            let error = lab.fails(args);
            assert!(error.starts_with(wrongtype), "{args:?}: {error}");
        }
        // An mset names the key it could not write and how many it wrote;
        // a failed read of an mget names its key.
        assert_eq!(
            lab.fails(&["mset", "multi:p1", "1", "multi:set", "2", "multi:p3", "3"]),
            "(error) WRONGTYPE operation against a key holding a set, wanted a register\n\
             (at key \"multi:set\": 2 of the line's 3 keys written, all sent at once)\n"
        );
        assert_eq!(
            lab.ok(&["mget", "multi:p1", "multi:p3"]),
            "1) \"1\"\n2) \"3\"\n"
        );
        assert_eq!(
            lab.fails(&["mset", "multi:set", "1"]),
            "(error) WRONGTYPE operation against a key holding a set, wanted a register\n"
        );
        // A line over the limits sends none of its writes.
        let long = "k".repeat(1025);
        assert_eq!(
            lab.fails(&["mset", "multi:q1", "1", &long, "2"]),
            format!(
                "(error) key of 1025 bytes exceeds the limit of 1024 bytes\n\
                 (at key \"{long}\": 0 of the line's 2 keys were done before it, the rest not sent)\n"
            )
        );
        assert_eq!(lab.ok(&["exists", "multi:q1"]), "(integer) 0\n");
        assert_eq!(
            lab.fails(&["mget", "multi:p1", &long]),
            format!(
                "(error) key of 1025 bytes exceeds the limit of 1024 bytes\n(at key \"{long}\")\n"
            )
        );
        let huge = vec![b'm'; 2_000_000];
        let output = super::meridian_with_stdin(
            lab.dir.path(),
            &["-x", "smismember", "multi:set", "x"],
            &huge,
        );
        assert_eq!(output.status.code(), Some(1));
        assert_eq!(
            super::stderr(&output),
            format!(
                "(error) value of 2000000 bytes exceeds the limit of 1048576 bytes\n(at member \"{}\")\n",
                "m".repeat(2_000_000)
            )
        );
    }

    /// `scan` prints as redis-cli prints `SCAN`: the next cursor, then the
    /// keys; its pages, cursor to cursor, hold every key once.
    fn scan_pages_through_the_regions_keys(lab: &Lab) {
        use meridian::keyhash::key_hash;
        let mut keys: Vec<String> = (0..12).map(|i| format!("scan:{i}")).collect();
        for key in &keys {
            assert_eq!(lab.ok(&["set", key, "v"]), "OK\n");
        }
        assert_eq!(lab.ok(&["incr", "scan:hits"]), "(integer) 1\n");
        keys.push("scan:hits".to_owned());
        keys.sort_by_key(|k| (key_hash(k.as_bytes()), k.clone()));
        // Thirteen keys: numbers right-aligned to "13)", under "2) ".
        let numbered: String = keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let indent = if i == 0 { "2) " } else { "   " };
                format!("{indent}{:>3} \"{k}\"\n", format!("{})", i + 1))
            })
            .collect();
        assert_eq!(
            lab.ok(&["scan", "0", "MATCH", "scan:*", "COUNT", "100000"]),
            format!("1) \"0\"\n{numbered}")
        );
        assert_eq!(
            lab.ok(&["--raw", "scan", "0", "match", "scan:*", "count", "100000"]),
            format!("0\n{}\n", keys.join("\n"))
        );
        assert_eq!(
            lab.ok(&["scan", "0", "match", "scan:*", "type", "counter", "count", "100000"]),
            "1) \"0\"\n2) 1) \"scan:hits\"\n"
        );
        assert_eq!(
            lab.ok(&["scan", "0", "match", "nothing:*", "count", "100000"]),
            "1) \"0\"\n2) (empty array)\n"
        );
        // One hash a page, cursor to cursor.
        let (mut cursor, mut seen, mut pages) = ("0".to_owned(), Vec::new(), 0);
        loop {
            let page = lab.ok(&["--raw", "scan", &cursor, "match", "scan:*", "count", "1"]);
            let mut lines = page.lines();
            cursor = lines.next().unwrap().to_owned();
            seen.extend(lines.map(str::to_owned));
            pages += 1;
            if cursor == "0" {
                break;
            }
            assert!(pages < 1_000, "the scan moves on");
        }
        assert_eq!(seen, keys);
        let refused = super::meridian(lab.dir.path(), &["--read", "quorum", "scan", "0"]);
        assert_eq!(refused.status.code(), Some(2));
        // sscan and hscan take MATCH too.
        assert_eq!(
            lab.ok(&["sadd", "sscan:set", "a1", "b1", "a2", "b2", "a3"]),
            "(integer) 5\n"
        );
        assert_eq!(
            lab.ok(&["sscan", "sscan:set", "0", "MATCH", "a*", "COUNT", "100"]),
            "1) \"0\"\n2) 1) \"a1\"\n   2) \"a2\"\n   3) \"a3\"\n"
        );
        assert_eq!(
            lab.ok(&[
                "--read",
                "quorum",
                "sscan",
                "sscan:set",
                "0",
                "match",
                "a*",
                "count",
                "100"
            ]),
            "1) \"0\"\n2) 1) \"a1\"\n   2) \"a2\"\n   3) \"a3\"\n",
            "merged from a quorum of replicas alike"
        );
        assert_eq!(
            lab.ok(&["sscan", "sscan:set", "0", "MATCH", "b*", "COUNT", "2"]),
            "1) \"x6132\"\n2) (empty array)\n",
            "looked at a1 and a2 (the set sorts a1 a2 a3 b1 b2), kept none"
        );
        assert_eq!(
            lab.ok(&["hset", "hscan:map", "fa", "1", "fb", "2"]),
            "(integer) 2\n"
        );
        assert_eq!(
            lab.ok(&["--raw", "hscan", "hscan:map", "0", "match", "*b"]),
            "0\nfb\n2\n"
        );
        // `keys` is every page of the scan at once.
        assert_eq!(
            lab.ok(&["--raw", "keys", "scan:*"]),
            format!("{}\n", keys.join("\n"))
        );
        assert_eq!(lab.ok(&["keys", "scan:hit?"]), "1) \"scan:hits\"\n");
        assert_eq!(lab.ok(&["keys", "nothing:*"]), "(empty array)\n");
        assert_eq!(lab.ok(&["--raw", "keys", "nothing:*"]), "\n");
        // More keys than a page holds (1,000 a node), printed page by page.
        let bulk: Vec<String> = (0..2_500).map(|i| format!("bulk:{i}")).collect();
        let pairs: Vec<&str> = bulk.iter().flat_map(|k| [k.as_str(), "v"]).collect();
        assert_eq!(lab.ok(&[&["mset"][..], &pairs].concat()), "OK\n");
        let mut listed: Vec<String> = lab
            .ok(&["--raw", "keys", "bulk:*"])
            .lines()
            .map(str::to_owned)
            .collect();
        assert_eq!(listed.len(), bulk.len(), "each key once");
        listed.sort();
        let mut bulk = bulk;
        bulk.sort();
        assert_eq!(listed, bulk);
    }

    /// However large, a value names the value limit and a key the key
    /// limit, not the limit of a request's frame; a line of several
    /// commands stops at the part too large.
    fn too_large_keys_and_values_name_their_own_limit(lab: &Lab) {
        let huge = vec![b'x'; 3_000_000];
        for (args, error) in [
            (
                &["-x", "set", "huge"][..],
                "(error) value of 3000000 bytes exceeds the limit of 1048576 bytes\n",
            ),
            (
                &["-x", "get"],
                "(error) key of 3000000 bytes exceeds the limit of 1024 bytes\n",
            ),
            (
                &["-x", "hset", "huge-h", "a", "1", "b"],
                "(error) value of 3000000 bytes exceeds the limit of 1048576 bytes\n\
                 (at field \"b\": 1 of the line's 2 fields was done before it, the rest not sent)\n",
            ),
        ] {
            let output = super::meridian_with_stdin(lab.dir.path(), args, &huge);
            assert_eq!(output.status.code(), Some(1), "{args:?}");
            assert_eq!(super::stderr(&output), error, "{args:?}");
        }
        assert_eq!(lab.ok(&["hgetall", "huge-h"]), "1) \"a\"\n2) \"1\"\n");
        assert_eq!(lab.ok(&["exists", "huge"]), "(integer) 0\n");
    }

    /// `del -h` deletes the key `-h`, as `redis-cli del -h` does.
    fn keys_named_like_help_flags_are_keys(lab: &Lab) {
        assert_eq!(lab.ok(&["set", "-h", "dash"]), "OK\n");
        assert_eq!(lab.ok(&["set", "--help", "dashes"]), "OK\n");
        assert_eq!(lab.ok(&["get", "-h"]), "\"dash\"\n");
        assert_eq!(lab.ok(&["type", "--help"]), "register\n");
        assert_eq!(lab.ok(&["del", "-h"]), "(integer) 1\n");
        let output = super::meridian_with_stdin(lab.dir.path(), &["-x", "del"], b"--help");
        assert_eq!(
            super::stdout(&output),
            "(integer) 1\n",
            "{}",
            super::stderr(&output)
        );
        assert_eq!(lab.ok(&["exists", "-h", "--help"]), "(integer) 0\n");
    }

    /// As the README says next to `incr`: unlike Redis, a register holding
    /// digits is no counter.
    fn a_keys_type_is_fixed_by_its_first_write(lab: &Lab) {
        assert_eq!(lab.ok(&["set", "ten", "10"]), "OK\n");
        let wrong = lab.fails(&["incr", "ten"]);
        assert!(wrong.starts_with("(error) WRONGTYPE"), "{wrong}");
        assert_eq!(lab.ok(&["incrby", "count", "10"]), "(integer) 10\n");
        assert_eq!(lab.ok(&["get", "count"]), "\"10\"\n");
        // A field of another type is named as a field, a key as a key.
        assert_eq!(lab.ok(&["hincrby", "fields", "n", "1"]), "(integer) 1\n");
        assert_eq!(
            lab.fails(&["hset", "fields", "n", "x"]).trim_end(),
            "(error) WRONGTYPE operation against a map field holding a counter, wanted a register"
        );
        assert_eq!(
            lab.fails(&["hset", "count", "f", "x"]).trim_end(),
            "(error) WRONGTYPE operation against a key holding a counter, wanted a map"
        );
    }

    /// `meridian` with no command reads data commands from stdin, one per
    /// line, split as redis-cli splits them; a line that fails prints its
    /// error and the next runs; `quit` ends it; the exit code says whether
    /// any failed.
    fn the_shell_runs_each_line_of_stdin_and_goes_on_after_errors(lab: &Lab) {
        let script = br#"set greeting "hello world"
get greeting

  sadd shell-set a "b c" 'd'
scard shell-set
incrby shell-n 4
get
flushall
hset shell-h f "x\x00y"
hget shell-h f
set q 'it\'s'
get "q
GET q
help incrby
quit
set after-quit 1
"#;
        let output = super::meridian_with_stdin(lab.dir.path(), &[], script);
        let (out, err) = (super::stdout(&output), super::stderr(&output));
        assert_eq!(
            out,
            "OK\n\"hello world\"\n(integer) 3\n(integer) 3\n(integer) 4\n(integer) 1\n\
             \"x\\x00y\"\nOK\n\"it's\"\nusage: incrby KEY N\nadd N to a counter\n",
            "{err}"
        );
        assert_eq!(
            err,
            "(error) wrong number of arguments for 'get'\nusage: get KEY\n\
             (error) unknown command 'flushall' (`help` lists them)\n\
             (error) unclosed quote (a quote cannot span lines)\n\
             error: 3 of 14 lines failed\n"
        );
        super::assert_exit(&output, 1);
        // Nothing after `quit` ran; what ran is there for other clients.
        assert_eq!(lab.ok(&["get", "after-quit"]), "(nil)\n");
        assert_eq!(lab.ok(&["scard", "shell-set"]), "(integer) 3\n");

        // Options hold for every line; no failure, exit code 0.
        let output = super::meridian_with_stdin(
            lab.dir.path(),
            &["--raw", "-v", "--consistency", "all"],
            b"get greeting\n2 incr shell-n\n",
        );
        super::assert_exit(&output, 0);
        // `N COMMAND` runs the command N times.
        assert_eq!(super::stdout(&output), "hello world\n5\n6\n");
        assert_eq!(
            super::stderr(&output),
            "(acked by 3 replicas, 3 needed)\n(acked by 3 replicas, 3 needed)\n"
        );
    }

    fn x_reads_a_value_too_long_for_a_command_line_from_stdin(lab: &Lab) {
        use std::io::Write;
        use std::process::{Command, Stdio};
        // Longer than one argument may be on Linux (128 KiB), every byte value.
        let value: Vec<u8> = (0..500_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut child = Command::new(env!("CARGO_BIN_EXE_meridian"))
            .args(["-x", "set", "big"])
            .current_dir(lab.dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&value).unwrap();
        let output = child.wait_with_output().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            "OK\n",
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(
            lab.ok(&["get", "big"]),
            format!("{}\n", meridian::cli::format::quote(&value))
        );

        // --raw gives the bytes back as stored, as `redis-cli --raw` does.
        let raw = Command::new(env!("CARGO_BIN_EXE_meridian"))
            .args(["--raw", "get", "big"])
            .current_dir(lab.dir.path())
            .output()
            .unwrap();
        assert!(
            raw.status.success(),
            "{}",
            String::from_utf8_lossy(&raw.stderr)
        );
        assert_eq!(raw.stdout.len(), value.len() + 1);
        assert_eq!(&raw.stdout[..value.len()], &value[..]);
        assert_eq!(raw.stdout.last(), Some(&b'\n'));

        answers_stdout_does_not_take_fail_unless_its_reader_left(lab);
    }

    /// An answer that cannot be written is an error (exit code 1), in
    /// either output mode; a reader that closes the pipe early (`| head`)
    /// ends the command quietly with 0.
    fn answers_stdout_does_not_take_fail_unless_its_reader_left(lab: &Lab) {
        use std::process::{Command, Stdio};
        for args in [
            &["get", "big"][..],
            &["--raw", "get", "big"],
            &["--raw", "keys", "*"],
        ] {
            let output = super::meridian_to_a_full_disk(lab.dir.path(), args);
            assert_eq!(output.status.code(), Some(1), "{args:?}");
            assert_eq!(
                super::stderr(&output),
                "(error) cannot write the answer: No space left on device (os error 28)\n",
                "{args:?}"
            );

            // 500 kB: more than a pipe holds, so the write fails once the
            // reader is gone, whenever that is.
            let mut child = Command::new(env!("CARGO_BIN_EXE_meridian"))
                .args(args)
                .current_dir(lab.dir.path())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            drop(child.stdout.take());
            let output = child.wait_with_output().unwrap();
            assert_eq!(
                (output.status.code(), super::stderr(&output).as_str()),
                (Some(0), ""),
                "{args:?}"
            );
        }
    }

    fn raw_prints_values_bare_and_one_item_per_line(lab: &Lab) {
        assert_eq!(lab.ok(&["--raw", "set", "rk", "a \"b\""]), "OK\n");
        assert_eq!(lab.ok(&["--raw", "get", "rk"]), "a \"b\"\n");
        assert_eq!(lab.ok(&["--raw", "get", "nothing-here"]), "\n");
        assert_eq!(lab.ok(&["--raw", "incrby", "rn", "7"]), "7\n");
        assert_eq!(lab.ok(&["--raw", "ttl", "rn"]), "-1\n");
        assert_eq!(lab.ok(&["--raw", "sadd", "rs", "x"]), "1\n");
        assert_eq!(lab.ok(&["--raw", "smembers", "rs"]), "x\n");
        // An empty list is an empty line, as in `redis-cli --raw`.
        assert_eq!(lab.ok(&["--raw", "smembers", "no-set"]), "\n");
        assert_eq!(lab.ok(&["--raw", "hgetall", "no-map"]), "\n");
        assert_eq!(lab.ok(&["hset", "rh", "f", "v"]), "(integer) 1\n");
        assert_eq!(lab.ok(&["hincrby", "rh", "n", "3"]), "(integer) 3\n");
        let fields = lab.ok(&["--raw", "hgetall", "rh"]);
        assert!(
            fields == "f\nv\nn\n3\n" || fields == "n\n3\nf\nv\n",
            "{fields:?}"
        );
        assert_eq!(lab.ok(&["--raw", "type", "rh"]), "map\n");
        // -v's line goes to stderr: stdout holds the answer's bytes alone.
        let verbose = lab.meridian(&["--raw", "-v", "set", "rk", "c"]);
        assert_eq!(super::stdout(&verbose), "OK\n");
        assert_eq!(super::stderr(&verbose), "(acked by 2 replicas, 2 needed)\n");
        assert!(verbose.status.success());
    }

    fn other_certificates_are_named_by_cert_dir_and_client(lab: &Lab) {
        // A client certificate issued by hand from the cluster's CA.
        let issued = lab.ok(&["certs", "client", "alice"]);
        assert!(issued.contains("client-alice.cert.pem"), "{issued}");
        assert_eq!(
            lab.ok(&["--client", "alice", "set", "who", "alice"]),
            "OK\n"
        );

        // A certificate directory of its own, as `serve --cert-dir` takes.
        let pki = lab.dir.path().join("pki");
        std::fs::create_dir(&pki).unwrap();
        for file in [
            "ca.cert.pem",
            "client-alice.cert.pem",
            "client-alice.key.pem",
        ] {
            std::fs::copy(lab.state_dir().join("certs").join(file), pki.join(file)).unwrap();
        }
        assert_eq!(
            lab.ok(&["--cert-dir", "pki", "--client", "alice", "get", "who"]),
            "\"alice\"\n"
        );

        // A certificate that is not there is named.
        let missing = lab.fails(&["--cert-dir", "pki", "get", "who"]);
        assert!(missing.contains("client-cli.cert.pem"), "{missing}");
        let missing = lab.fails(&["--client", "bob", "get", "who"]);
        assert!(missing.contains("client-bob.cert.pem"), "{missing}");
    }

    fn redis_forms_of_several_keys_fields_or_a_message(lab: &Lab) {
        assert_eq!(lab.ok(&["ping", "hello"]), "\"hello\"\n");
        assert_eq!(lab.ok(&["set", "k1", "a"]), "OK\n");
        assert_eq!(lab.ok(&["sadd", "k3", "m"]), "(integer) 1\n");
        assert_eq!(lab.ok(&["exists", "k1", "k2", "k3", "k1"]), "(integer) 3\n");
        assert_eq!(lab.ok(&["exists", "k2"]), "(integer) 0\n");
        assert_eq!(lab.ok(&["del", "k1", "k2", "k3"]), "(integer) 2\n");
        assert_eq!(lab.ok(&["exists", "k1", "k3"]), "(integer) 0\n");
        assert_eq!(
            lab.ok(&["-v", "del", "k1", "k2"]),
            "(integer) 0\n(acked by 2 replicas, 2 needed)\n"
        );

        assert_eq!(lab.ok(&["hset", "u", "a", "1", "b", "2"]), "(integer) 2\n");
        assert_eq!(lab.ok(&["hset", "u", "b", "3", "c", "4"]), "(integer) 1\n");
        assert_eq!(
            lab.ok(&["hgetall", "u"]),
            "1) \"a\"\n2) \"1\"\n3) \"b\"\n4) \"3\"\n5) \"c\"\n6) \"4\"\n"
        );
    }

    fn expire_in_zero_or_fewer_seconds_deletes_the_key(lab: &Lab) {
        for seconds in ["-5", "0"] {
            assert_eq!(lab.ok(&["set", "e", "v"]), "OK\n");
            assert_eq!(lab.ok(&["expire", "e", seconds]), "(integer) 1\n");
            assert_eq!(lab.ok(&["get", "e"]), "(nil)\n");
            assert_eq!(lab.ok(&["expire", "e", seconds]), "(integer) 0\n");
        }
    }

    fn verbose_writes_say_how_many_replicas_acked_and_were_needed(lab: &Lab) {
        assert_eq!(
            lab.ok(&["-v", "set", "k", "v"]),
            "OK\n(acked by 2 replicas, 2 needed)\n"
        );
        assert_eq!(
            lab.ok(&["-v", "--consistency", "one", "incr", "n"]),
            "(integer) 1\n(acked by 1 replica, 1 needed)\n"
        );
        assert_eq!(
            lab.ok(&["-v", "--consistency", "all", "set", "k", "w"]),
            "OK\n(acked by 3 replicas, 3 needed)\n"
        );
        // A read has no acknowledgements to print: -v is refused there.
        assert_eq!(lab.meridian(&["-v", "get", "k"]).status.code(), Some(2));
    }

    fn map_counters_print_as_strings_in_hget_and_hgetall(lab: &Lab) {
        assert_eq!(lab.ok(&["hincrby", "h", "c", "5"]), "(integer) 5\n");
        assert_eq!(lab.ok(&["hincrby", "h", "c", "5"]), "(integer) 10\n");
        assert_eq!(lab.ok(&["hget", "h", "c"]), "\"10\"\n");
        assert_eq!(lab.ok(&["hgetall", "h"]), "1) \"c\"\n2) \"10\"\n");
    }
}
