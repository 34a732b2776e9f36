//! The `meridian` binary: run a node, manage certificates, run a local
//! cluster, and send data commands like redis-cli. The pieces live in
//! [`meridian::cli`]; this file parses the command line, sets up logging
//! and a runtime, and prints.

use anyhow::{bail, Context};
use meridian::affinity::{self, CpuList};
use meridian::cli::args::{self, CertsArgs, Cli, ClusterCmd, Cmd, GlobalArgs, ServeArgs};
use meridian::cli::cluster::{self, ClusterFile, Event, Stopped, UpOptions};
use meridian::cli::command;
use meridian::cli::shutdown::shutdown_signal;
use meridian::cli::target::{Target, TargetError};
use meridian::cli::{certs, data, format, serve};
use meridian::cli::{demo, reload, status};
use meridian::tls::CertStore;
use meridian::topology::Topology;
use mimalloc::MiMalloc;
use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// mimalloc instead of the system allocator: a node allocates and frees
/// small buffers for every message (frames, deltas, decoded states), and
/// glibc's malloc was a sixth of a replica's CPU under load.
#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

/// `println!` that says whether stdout took the line: `Err` of
/// [`StdoutFailed`] when it did not.
macro_rules! out {
    ($($arg:tt)*) => {
        write_stdout(format!("{}\n", format_args!($($arg)*)).as_bytes())
    };
}

/// `eprintln!` that ignores a closed stderr.
macro_rules! errln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

/// Stdout did not take what a command printed (a full disk, `> /dev/full`;
/// or a reader that went away, see [`StdoutFailed::is_closed_pipe`]).
#[derive(Debug, thiserror::Error)]
#[error("cannot write to stdout: {0}")]
struct StdoutFailed(#[source] std::io::Error);

impl StdoutFailed {
    /// The reader closed the pipe before the end (`meridian smembers s |
    /// head -1`): it took what it wanted, so the command ends quietly, with
    /// exit code 0, whatever it printed (as `--raw` or not).
    fn is_closed_pipe(&self) -> bool {
        self.0.kind() == std::io::ErrorKind::BrokenPipe
    }
}

/// Writes `bytes` to stdout and flushes it.
fn write_stdout(bytes: &[u8]) -> Result<(), StdoutFailed> {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(bytes)
        .and_then(|()| stdout.flush())
        .map_err(StdoutFailed)
}

/// The exit code once a command's output was written (or not): 0 when it
/// was, or when the reader closed the pipe; else 1, saying why on stderr
/// with `error` (which prefixes the message as the command's errors are).
fn printed(written: Result<(), StdoutFailed>, error: impl Fn(&StdoutFailed) -> String) -> ExitCode {
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is_closed_pipe() => ExitCode::SUCCESS,
        Err(e) => {
            errln!("{}", error(&e));
            ExitCode::from(EXIT_FAILED)
        }
    }
}

/// Exit code of a command that failed.
const EXIT_FAILED: u8 = 1;
/// Exit code of a command line that does not parse (as clap uses).
const EXIT_USAGE: u8 = 2;
/// How long nodes get to stop after SIGTERM before SIGKILL.
const STOP_GRACE_MS: u64 = 5_000;

fn main() -> ExitCode {
    let cli = Cli::parse_args();
    init_logging(&cli.command);
    match cli.command {
        _ if !cli.global.seeds.is_empty() && cli.global.topology.is_some() => {
            errln!("error: {}", TargetError::SeedsAndTopology);
            ExitCode::from(EXIT_USAGE)
        }
        Cmd::Data(words) => data_command(&cli.global, &words),
        Cmd::DataHelp(spec) => printed(out!("{}", spec.help()), |e| format!("error: {e}")),
        command => admin_or_usage(&cli.global, command),
    }
}

/// Runs an admin command (not a data command): a client option it would
/// ignore (`-x`, `--raw`, `-v`; `--consistency` and `--read` except for
/// `bench`; `--seed` except for `status` and `bench`; `--client` where it
/// does not connect) is a usage error there.
fn admin_or_usage(global: &GlobalArgs, command: Cmd) -> ExitCode {
    if let Some((option, users)) = unused_client_option(global, command.name()) {
        errln!("error: {option} is for {users} only");
        return ExitCode::from(EXIT_USAGE);
    }
    if let Some(refusal) = unused_place_option(global, &command) {
        errln!("error: {refusal}");
        return ExitCode::from(EXIT_USAGE);
    }
    // Options that contradict each other whatever the cluster.
    if let Cmd::Bench(args) = &command {
        if let Err(e) = args.routing() {
            errln!("error: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    }
    match admin_command(global, command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref().is_some_and(StdoutFailed::is_closed_pipe) => ExitCode::SUCCESS,
        Err(e) => {
            errln!("error: {}", meridian::cli::error_text(&e));
            ExitCode::from(EXIT_FAILED)
        }
    }
}

/// Why `command` (not a data command) refuses the first place option given
/// (`--topology`, `--region`, `--cert-dir`) that it would ignore.
fn unused_place_option(global: &GlobalArgs, command: &Cmd) -> Option<String> {
    let path = command.path();
    let taken = args::place_options_taken(&path);
    let (id, flag) = args::PLACE_OPTIONS.into_iter().find(|(id, _)| {
        let given = match *id {
            "topology" => global.topology.is_some(),
            "region" => global.region.is_some(),
            _ => global.cert_dir.is_some(),
        };
        given && !taken.contains(id)
    })?;
    let mut refusal = format!("{flag} is for {} only", args::place_option_users(id));
    if path.starts_with("cluster") {
        refusal.push_str(if id == "cert_dir" {
            ": cluster commands keep their certificates in <state-dir>/certs (give --state-dir instead)"
        } else {
            ": cluster commands other than up work on the cluster running in --state-dir"
        });
    }
    Some(refusal)
}

/// The first client option given that command `name` (`status`, or a data
/// command's name) would ignore, and the commands that take it.
fn unused_client_option(global: &GlobalArgs, name: &str) -> Option<(&'static str, &'static str)> {
    let taken = args::client_options_taken(name);
    args::CLIENT_OPTIONS_IDS
        .into_iter()
        .find(|(id, _)| args::client_option_given(global, id) && !taken.contains(id))
        .map(|(id, option)| (option, args::client_option_users(id)))
}

/// Logs go to stderr, filtered by `RUST_LOG`; by default `info` for
/// commands that run a while and `warn` for data commands, whose output is
/// the answer.
fn init_logging(command: &Cmd) {
    let default = match command {
        Cmd::Data(_)
        | Cmd::DataHelp(_)
        | Cmd::Shell
        | Cmd::Status(_)
        | Cmd::Reload { .. }
        | Cmd::Demo => "warn",
        _ => "info",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// `meridian get k` and the like: prints the answer, or `(error) ...` on
/// stderr with exit code 1 (2 for a usage error).
fn data_command(global: &GlobalArgs, words: &[OsString]) -> ExitCode {
    // A client option the command would ignore (`--read` with a write) is
    // refused before stdin is read.
    let spec = words
        .first()
        .and_then(|name| command::find(&name.to_string_lossy()));
    if let Some(spec) = spec {
        if let Some((option, users)) = unused_client_option(global, spec.name) {
            let refused = command::UsageError::OptionNotTaken {
                spec,
                option,
                users,
            };
            errln!("{}", format::error(&refused));
            return ExitCode::from(EXIT_USAGE);
        }
    }
    let with_stdin;
    let words = if global.last_from_stdin {
        let mut last = Vec::new();
        if let Err(e) = std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut last) {
            errln!("{}", format::error(&format_args!("cannot read stdin: {e}")));
            return ExitCode::from(EXIT_FAILED);
        }
        with_stdin = command::with_last_argument(words, last);
        &with_stdin
    } else {
        words
    };
    let command = match command::parse(words) {
        Ok(command) => command,
        Err(e) => {
            errln!("{}", format::error(&e));
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let runtime = match current_thread_runtime() {
        Ok(runtime) => runtime,
        Err(e) => {
            errln!("{}", format::error(&e));
            return ExitCode::from(EXIT_FAILED);
        }
    };
    let target = match runtime.block_on(Target::resolve_async(global)) {
        Ok(target) => target,
        Err(e) => {
            errln!("{}", format::error(&e));
            return ExitCode::from(EXIT_FAILED);
        }
    };
    if let Some(options) = data::keys_scan(&command).filter(|_| global.raw) {
        return runtime.block_on(raw_keys(target, &command, options, &global.state_dir));
    }
    let answered = runtime.block_on(data::execute(target.clone(), &command));
    match answered {
        Ok(answers) => {
            let (text, acks) = data::answered(&command, answers, global.raw, global.verbose);
            let written = write_stdout(&text);
            if let Some(acks) = acks {
                // Not among the answer's bytes: stdout holds the answer alone.
                errln!("{acks}");
            }
            // A truncated answer must not look like a success, unless its
            // reader closed the pipe.
            printed(written, |e| {
                format::error(&format_args!("cannot write the answer: {}", e.0))
            })
        }
        Err(failed) => report_failure(&command, &failed, &target, &global.state_dir),
    }
}

/// Says on stderr why a data command failed (and, where the cluster may
/// not be running, how to start it): exit code 1.
fn report_failure(
    command: &command::DataCommand,
    failed: &data::Failed,
    target: &Target,
    state_dir: &std::path::Path,
) -> ExitCode {
    let mut text = data::failure(command, failed);
    if let Some(hint) = target.guess_hint(&failed.error, state_dir) {
        text.push_str(&format!("\n{hint}"));
    }
    errln!("{text}");
    ExitCode::from(EXIT_FAILED)
}

/// `--raw keys PATTERN`: each page of the scan printed as it comes, one
/// key a line, so that the keys are never all in memory (an empty line
/// when there are none, as for an empty list). An error stops the scan
/// after the pages printed before it.
async fn raw_keys(
    target: Target,
    command: &command::DataCommand,
    options: meridian::client::ScanOptions,
    state_dir: &std::path::Path,
) -> ExitCode {
    let failed = |failed: data::Failed| report_failure(command, &failed, &target, state_dir);
    let session = match data::Session::connect(target.clone()).await {
        Ok(session) => session,
        Err(error) => return failed(data::Failed::before(0, error)),
    };
    let mut scan = session.key_scan(options);
    let cannot_write =
        |e: &StdoutFailed| format::error(&format_args!("cannot write the answer: {}", e.0));
    let mut printed_any = false;
    loop {
        match scan.next_page().await {
            Ok(Some(keys)) => {
                let mut text = Vec::new();
                for key in &keys {
                    text.extend_from_slice(key);
                    text.push(b'\n');
                }
                printed_any |= !keys.is_empty();
                if let Err(e) = write_stdout(&text) {
                    return printed(Err(e), cannot_write);
                }
            }
            Ok(None) => break,
            Err(error) => return failed(data::Failed::before(0, error)),
        }
    }
    let end: &[u8] = if printed_any { b"" } else { b"\n" };
    printed(write_stdout(end), cannot_write)
}

fn admin_command(global: &GlobalArgs, command: Cmd) -> anyhow::Result<()> {
    match command {
        Cmd::Serve(args) => serve_node(global, args),
        Cmd::Certs(args) => certs_command(global, args),
        Cmd::Cluster(ClusterCmd::Up {
            topology,
            ready_timeout,
            data_dir,
            pin_cpus,
        }) => cluster_up(global, topology, ready_timeout, data_dir, pin_cpus),
        Cmd::Cluster(ClusterCmd::Down) => cluster_down(global),
        Cmd::Cluster(ClusterCmd::Kill { node }) => {
            let pid = cluster::kill(&global.state_dir, &node)?;
            out!("killed {node} (pid {pid}) with SIGKILL")?;
            Ok(())
        }
        Cmd::Cluster(ClusterCmd::Restart { node, timeout }) => {
            let pid = cluster::restart(
                &global.state_dir,
                &node,
                std::time::Duration::from_secs(timeout),
            )?;
            out!("restarted {node} (pid {pid})")?;
            Ok(())
        }
        Cmd::Cluster(ClusterCmd::Status) => {
            let file = ClusterFile::load(&global.state_dir)?;
            out!(
                "{}",
                cluster::status_text(&file, cluster::process::is_alive)
            )?;
            Ok(())
        }
        Cmd::Bench(args) => {
            let report = meridian::cli::bench::command(global, &args)?;
            if args.json {
                out!("{}", report.to_json())?;
            } else {
                write_stdout(report.to_string().as_bytes())?;
            }
            Ok(())
        }
        Cmd::Cluster(ClusterCmd::Partition { region, other }) => {
            let links = cluster::partition(&global.state_dir, &region, other.as_deref())?;
            out!("{}", cluster::links_text(&links))?;
            Ok(())
        }
        Cmd::Cluster(ClusterCmd::AddNode {
            region,
            id,
            timeout,
        }) => current_thread_runtime()?.block_on(async {
            let moved = cluster::members::add_node(
                &global.state_dir,
                &region,
                id.as_deref(),
                Duration::from_secs(timeout),
                &mut std::io::stdout(),
            )
            .await?;
            out!(
                "added {} to {region}: {} key copies ({}) streamed in {:.1} s",
                moved.node,
                moved.keys,
                status::bytes(moved.bytes),
                moved.elapsed_ms as f64 / 1000.0
            )?;
            Ok(())
        }),
        Cmd::Cluster(ClusterCmd::RemoveNode { node, timeout }) => current_thread_runtime()?
            .block_on(async {
                let moved = cluster::members::remove_node(
                    &global.state_dir,
                    &node,
                    Duration::from_secs(timeout),
                    &mut std::io::stdout(),
                )
                .await?;
                out!(
                    "removed {node}: {} key copies ({}) handed over in {:.1} s",
                    moved.keys,
                    status::bytes(moved.bytes),
                    moved.elapsed_ms as f64 / 1000.0
                )?;
                Ok(())
            }),
        Cmd::Cluster(ClusterCmd::Heal) => {
            out!(
                "{}",
                cluster::healed_text(&cluster::heal(&global.state_dir)?)
            )?;
            Ok(())
        }
        Cmd::Status(args) => {
            let (report, hint) = current_thread_runtime()?.block_on(status::for_cli(global))?;
            out!("{}", status::render(&report, args.json))?;
            if report.nodes_up == 0 {
                match hint {
                    Some(hint) => bail!("no node answered\n{hint}"),
                    None => bail!("no node answered"),
                }
            }
            Ok(())
        }
        Cmd::Reload { nodes } => {
            let reloaded = current_thread_runtime()?.block_on(reload::run(global, &nodes))?;
            out!("{}", reload::text(&reloaded).trim_end())?;
            let failed = reloaded.iter().filter(|r| r.outcome.is_err()).count();
            if failed > 0 {
                bail!("{failed} of {} nodes did not reload", reloaded.len());
            }
            Ok(())
        }
        Cmd::Demo => current_thread_runtime()?.block_on(async {
            let interrupt = shutdown_signal().context("cannot install signal handlers")?;
            let options = demo::DemoOptions::for_cli(global)?;
            Ok(demo::run(options, &mut std::io::stdout(), interrupt).await?)
        }),
        Cmd::Shell => shell(global),
        Cmd::Data(_) | Cmd::DataHelp(_) => {
            unreachable!("data commands and their help are handled by main")
        }
    }
}

/// `meridian` with no command: data commands one per line over one
/// client (see [`meridian::cli::shell`]). On a terminal it prompts, with
/// line editing and a history file; otherwise it runs the lines of stdin
/// and fails at the end if any of them failed.
fn shell(global: &GlobalArgs) -> anyhow::Result<()> {
    use meridian::cli::shell::{Printed, Shell};
    use meridian::protocol::Command;
    // A worker thread keeps the connections going (acknowledging, keeping
    // alive) while the shell waits for the next line.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let target = runtime.block_on(Target::resolve_async(global))?;
    let prompt = format!("{}> ", target.region);
    // A ping first, so that a cluster that cannot be reached is said once,
    // with what to do, rather than by every line.
    let session = runtime.block_on(async {
        let session = data::Session::connect(target.clone()).await?;
        session
            .run(&[Command::Ping])
            .await
            .map_err(|failed| failed.error)?;
        Ok(session)
    });
    let session = match session {
        Ok(session) => session,
        Err(e) => {
            let mut text = format!("cannot reach region {}: {e}", target.region);
            if let Some(hint) = target.guess_hint(&e, &global.state_dir) {
                text.push_str(&format!("\n{hint}"));
            }
            bail!(text);
        }
    };
    let shell = Shell::new(session, global.raw, global.verbose);
    let show = |printed: &Printed| -> anyhow::Result<()> {
        write_stdout(&printed.stdout)?;
        if let Some(text) = &printed.stderr {
            errln!("{text}");
        }
        Ok(())
    };
    if std::io::stdin().is_terminal() && std::io::stdout().is_terminal() {
        use rustyline::error::ReadlineError;
        let mut editor = rustyline::Editor::<ShellHelper, rustyline::history::FileHistory>::new()
            .context("cannot read the terminal")?;
        editor.set_helper(Some(ShellHelper));
        let history = meridian::cli::shell::history_file(
            std::env::var_os("MERIDIAN_HISTFILE").as_deref(),
            std::env::var_os("HOME").as_deref(),
        );
        if let Some(path) = &history {
            // None yet on a first run.
            let _ = editor.load_history(path);
        }
        loop {
            let text = match editor.readline(&prompt) {
                Ok(text) => text,
                // Ctrl-C or Ctrl-D, as redis-cli (rustyline ends the line).
                Err(ReadlineError::Interrupted | ReadlineError::Eof) => return Ok(()),
                Err(ReadlineError::Io(e)) if e.kind() == std::io::ErrorKind::InvalidData => {
                    errln!(
                        "{}",
                        format::error(
                            &"the line is not UTF-8: type other bytes as \\xHH in double quotes"
                        )
                    );
                    continue;
                }
                Err(e) => return Err(e).context("cannot read the terminal"),
            };
            // Several lines pasted at once run one by one, as typed.
            for line in text.split('\n') {
                if !line.trim().is_empty() {
                    let _ = editor.add_history_entry(line);
                    if let Some(path) = &history {
                        // History is a convenience: a file that cannot be
                        // written (a read-only home) does not stop the
                        // shell. Appended, so shells open side by side
                        // keep each other's lines.
                        let _ = editor.append_history(path);
                    }
                }
                let printed = runtime.block_on(shell.line(line.as_bytes()));
                show(&printed)?;
                if printed.quit {
                    return Ok(());
                }
            }
        }
    }
    let mut stdin = std::io::stdin().lock();
    let mut line = Vec::new();
    let (mut lines, mut failed) = (0usize, 0usize);
    loop {
        line.clear();
        let read = std::io::BufRead::read_until(&mut stdin, b'\n', &mut line)
            .context("cannot read stdin")?;
        if read == 0 {
            break;
        }
        let printed = runtime.block_on(shell.line(&line));
        show(&printed)?;
        lines += usize::from(!printed.blank);
        failed += usize::from(printed.failed);
        if printed.quit {
            break;
        }
    }
    if failed > 0 {
        bail!("{failed} of {lines} lines failed");
    }
    Ok(())
}

/// Tab completion of command names and greyed hints of a command's
/// arguments at the shell's prompt ([`meridian::cli::shell::complete`] and
/// [`meridian::cli::shell::hint`]).
struct ShellHelper;

impl rustyline::completion::Completer for ShellHelper {
    type Candidate = String;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _: &rustyline::Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        Ok(meridian::cli::shell::complete(line, pos))
    }
}

impl rustyline::hint::Hinter for ShellHelper {
    type Hint = String;

    fn hint(&self, line: &str, pos: usize, _: &rustyline::Context<'_>) -> Option<String> {
        // Only with the cursor at the end, where the hint is drawn.
        (pos == line.len())
            .then(|| meridian::cli::shell::hint(line))
            .flatten()
    }
}

impl rustyline::highlight::Highlighter for ShellHelper {
    fn highlight_hint<'h>(&self, hint: &'h str) -> std::borrow::Cow<'h, str> {
        // Dark grey, as redis-cli draws its hints.
        std::borrow::Cow::Owned(format!("\x1b[90m{hint}\x1b[0m"))
    }
}

impl rustyline::validate::Validator for ShellHelper {}

impl rustyline::Helper for ShellHelper {}

fn serve_node(global: &GlobalArgs, args: ServeArgs) -> anyhow::Result<()> {
    let path = global.topology_or(None);
    let topology = load_topology(&path)?;
    if topology.node(&args.node).is_none() {
        let known: Vec<&str> = topology.nodes().map(|(_, n)| n.id.as_str()).collect();
        bail!(
            "no node {} in {} (nodes: {})",
            args.node,
            path.display(),
            known.join(", ")
        );
    }
    let cert_dir = global.cert_dir();
    if let Some(cpus) = &args.cpus {
        // Before the runtime, so that every thread it starts inherits it.
        affinity::pin_current_thread(cpus)
            .with_context(|| format!("node {}: --cpus {cpus}", args.node))?;
        tracing::info!(node = %args.node, %cpus, "pinned to CPUs");
    }
    // One thread per node: for request/response traffic on a small machine
    // it beats a multi-thread runtime (no wake-ups across threads), and
    // several nodes of a local cluster share the cores.
    let runtime = current_thread_runtime()?;
    runtime.block_on(async {
        let shutdown = shutdown_signal().context("cannot install signal handlers")?;
        tracing::info!(node = %args.node, topology = %path.display(), "starting node");
        serve::run(
            topology,
            args.node.clone(),
            cert_dir,
            args.data_dir.clone(),
            args.peer_routes,
            args.joining,
            shutdown,
        )
        .await
        .with_context(|| format!("node {} failed", args.node))
    })
}

fn certs_command(global: &GlobalArgs, args: CertsArgs) -> anyhow::Result<()> {
    let dir = args.dir.unwrap_or_else(|| global.cert_dir());
    let store = CertStore::new(&dir);
    let written = certs::execute(&store, &args.action)?;
    out!(
        "{}:\n  certificate {}\n  private key {}",
        written.what,
        written.cert.display(),
        written.key.display()
    )?;
    Ok(())
}

fn cluster_up(
    global: &GlobalArgs,
    topology: Option<PathBuf>,
    ready_timeout_s: u64,
    data_dir: Option<PathBuf>,
    pin_cpus: Option<Option<CpuList>>,
) -> anyhow::Result<()> {
    if let (Some(argument), Some(option)) = (&topology, &global.topology) {
        bail!(
            "two topology files, {} and --topology {}: give one",
            argument.display(),
            option.display()
        );
    }
    let path = topology.unwrap_or_else(|| global.topology_or(None));
    // `--pin-cpus 2-5` reads 2-5 as the topology: say how to write it.
    let list = path.to_str().and_then(|p| p.parse::<CpuList>().ok());
    if let (Some(None), Some(list), false) = (&pin_cpus, list, path.exists()) {
        bail!(
            "no topology file {}: to pin the nodes to CPUs {list}, write --pin-cpus={list}",
            path.display()
        );
    }
    let loaded = load_topology(&path)?;
    let program = std::env::current_exe().context("cannot find the meridian binary")?;
    let mut options = UpOptions::new(&path, &global.state_dir, program);
    options.ready_timeout_ms = ready_timeout_s.saturating_mul(1000);
    options.stop_grace_ms = STOP_GRACE_MS;
    options.data_dir = data_dir;
    options.cpus = match pin_cpus {
        None => None,
        Some(None) => Some(affinity::allowed_cpus().context("cluster up --pin-cpus")?),
        Some(Some(cpus)) => {
            affinity::check_allowed(&cpus).context("cluster up --pin-cpus")?;
            Some(cpus)
        }
    };
    if let Some(cpus) = &options.cpus {
        let nodes = loaded.nodes().count();
        let spare = if nodes % cpus.cpus().len() == 0 {
            String::new()
        } else {
            // The next CPU in turn has one node fewer than the first ones.
            let cpu = cpus.nth_round(nodes);
            format!(
                " (CPU {cpu} has the fewest: a client there, e.g. `meridian bench --cpus {cpu}`)"
            )
        };
        errln!("meridian: pinning the {nodes} nodes to CPUs {cpus} in turn{spare}");
    }
    let invocation = invocation(global);
    let mut probe = data::PingProbe::new(loaded, global.cert_dir());
    let mut on_event = |event: Event| match event {
        Event::CertificatesReady { dir } => {
            errln!("meridian: certificates ready in {}", dir.display());
        }
        Event::WanReady { relays, control } => {
            errln!(
                "meridian: WAN emulator up ({relays} relays; partitions in {})",
                control.display()
            );
        }
        Event::Started { nodes, logs_dir } => {
            errln!(
                "meridian: started {nodes} nodes (logs in {}); waiting until they listen...",
                logs_dir.display()
            );
        }
        // The cluster runs on whether or not stdout takes the banner.
        Event::Ready(file) => {
            let _ = out!("{}", cluster::banner(&file, &invocation));
        }
        Event::NodeExited {
            node,
            pid,
            how,
            log,
        } => errln!(
            "meridian: node {node} (pid {pid}) {how}; it is not restarted (log: {})",
            log.display()
        ),
        Event::Stopping { nodes } => errln!(
            "meridian: stopping {nodes} node{}...",
            if nodes == 1 { "" } else { "s" }
        ),
        Event::ForceKilled { node, pid } => {
            errln!("meridian: node {node} (pid {pid}) ignored SIGTERM; killed it")
        }
        Event::Stopped => errln!("meridian: cluster stopped"),
    };
    let runtime = current_thread_runtime()?;
    runtime.block_on(async {
        let shutdown = shutdown_signal().context("cannot install signal handlers")?;
        cluster::up(&options, &mut probe, shutdown, &mut on_event)
            .await
            .with_context(|| format!("cluster up {}", path.display()))
    })
}

fn cluster_down(global: &GlobalArgs) -> anyhow::Result<()> {
    match cluster::down(&global.state_dir, Duration::from_millis(STOP_GRACE_MS))? {
        Stopped::BySupervisor { pid } => {
            out!("cluster stopped (its cluster up process, pid {pid}, stopped the nodes)")?;
        }
        Stopped::Directly { terminated, killed } => {
            out!(
                "cluster stopped: its cluster up process was gone; {} nodes stopped, {} killed",
                terminated.len(),
                killed.len()
            )?;
        }
    }
    Ok(())
}

/// How to run the command line against the state directory in use.
fn invocation(global: &GlobalArgs) -> String {
    let program = program();
    if global.state_dir == Path::new(meridian::cli::args::DEFAULT_STATE_DIR) {
        program
    } else {
        format!("{program} --state-dir {}", global.state_dir.display())
    }
}

/// How the user runs this binary: `meridian` when that name on the PATH
/// is this binary, `cargo run --release --` when cargo started it (as the
/// README does), else its path.
fn program() -> String {
    let Ok(me) = std::env::current_exe().and_then(std::fs::canonicalize) else {
        return "meridian".to_owned();
    };
    let on_path = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path)
            .filter_map(|dir| std::fs::canonicalize(dir.join("meridian")).ok())
            .next()
            .is_some_and(|found| found == me)
    });
    if on_path {
        return "meridian".to_owned();
    }
    if std::env::var_os("CARGO").is_some() {
        let release = me.parent().is_some_and(|dir| dir.ends_with("release"));
        return if release {
            "cargo run --release --".to_owned()
        } else {
            "cargo run --".to_owned()
        };
    }
    me.display().to_string()
}

fn load_topology(path: &Path) -> anyhow::Result<Topology> {
    Topology::load(path).context("cannot load the topology")
}

fn current_thread_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}
