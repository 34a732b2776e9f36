//! The command line of the `meridian` binary, as clap types.
//!
//! Global options come first and apply to every subcommand; the data
//! commands (`get`, `set`...) are not clap subcommands but free words that
//! [`super::command::parse`] turns into protocol commands, so they read like
//! redis-cli (`meridian set hello world`). This module only describes the
//! command line; it reads no file and starts nothing.

use super::cluster::CLIENT_NAME;
use super::command::{Access, CommandSpec};
use crate::affinity::CpuList;
use crate::topology::{ReadConsistency, WriteConsistency};
use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The topology used when none is given and no cluster is running.
pub const DEFAULT_TOPOLOGY: &str = "regions/local.toml";
/// The state directory used when none is given.
pub const DEFAULT_STATE_DIR: &str = ".meridian";

/// A parsed command line.
#[derive(Debug)]
pub struct Cli {
    /// Options of every command.
    pub global: GlobalArgs,
    /// What to do: [`Cmd::Shell`] when no command is given.
    pub command: Cmd,
}

/// Meridian: a geo-replicated cache and key-value store whose values are
/// CRDTs.
#[derive(Debug, Parser)]
#[command(name = "meridian", version, about, max_term_width = 100)]
struct Parsed {
    #[command(flatten)]
    global: GlobalArgs,
    /// No command: the shell, as redis-cli with no command.
    #[command(subcommand)]
    command: Option<Cmd>,
}

impl Cli {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Cli, clap::Error> {
        let parsed = Parsed::from_arg_matches(matches)?;
        Ok(Cli {
            global: parsed.global,
            command: parsed.command.unwrap_or(Cmd::Shell),
        })
    }
}

/// The data command NAME of a final `help NAME` in `args`, and `args`
/// with NAME in place of `help NAME`; `None` when NAME is no data command.
/// Only as the last two words: `help del k` is no help request (and no
/// `del`).
fn help_of_a_data_command(args: &[OsString]) -> Option<(&'static CommandSpec, Vec<OsString>)> {
    let [.., help, name] = args else {
        return None;
    };
    if help != "help" {
        return None;
    }
    let spec = super::command::find(&name.to_string_lossy())?;
    let mut out = args[..args.len() - 2].to_vec();
    out.push(name.clone());
    Some((spec, out))
}

impl Cli {
    /// Parses the process's arguments; prints help or a usage error and
    /// exits (code 2) on a bad command line, as clap does.
    pub fn parse_args() -> Cli {
        Self::parse_from_args(std::env::args_os())
    }

    /// Parses `args` (the first is the program name), or prints help or a
    /// usage error and exits.
    pub fn parse_from_args<I, T>(args: I) -> Cli
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        Self::try_parse_args(args).unwrap_or_else(|e| e.exit())
    }

    /// Parses `args` without exiting.
    pub fn try_parse_args<I, T>(args: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
        match Self::clap_command().try_get_matches_from(&args) {
            Ok(matches) => Cli::from_arg_matches(&matches),
            Err(e) => match help_of_a_data_command(&args) {
                // `help set`: clap knows only its own subcommands. The
                // options before `help` parse as they would before `set`.
                Some((spec, args)) if e.kind() == clap::error::ErrorKind::InvalidSubcommand => {
                    let matches = Self::clap_command().try_get_matches_from(args)?;
                    let mut cli = Cli::from_arg_matches(&matches)?;
                    cli.command = Cmd::DataHelp(spec);
                    Ok(cli)
                }
                _ => Err(e),
            },
        }
    }

    /// The clap command, with the data commands listed in the help, and
    /// each command's help without the client options it refuses.
    pub fn clap_command() -> clap::Command {
        let mut command = Parsed::command().after_help(super::command::help_text());
        // Global options reach the subcommands when the command is built.
        command.build();
        command.mut_subcommands(|sub| {
            let name = sub.get_name().to_owned();
            let sub = hide_client_options(sub, client_options_taken(&name));
            hide_place_options(sub, &name)
        })
    }
}

/// The options that say where a command finds the cluster: its topology
/// file, its region, its certificates (ids of [`GlobalArgs`] fields, and
/// their flags).
pub const PLACE_OPTIONS: [(&str, &str); 3] = [
    ("topology", "--topology"),
    ("region", "--region"),
    ("cert_dir", "--cert-dir"),
];

/// The place options ([`PLACE_OPTIONS`]) that command `path` (`serve`,
/// `cluster up`, `status`...; not a data command, which takes them all)
/// takes; `main` refuses the others, and its help does not list them. The
/// `cluster` commands other than `up` work on the cluster running in
/// `--state-dir`, whose files name everything else.
pub fn place_options_taken(path: &str) -> &'static [&'static str] {
    match path {
        "serve" => &["topology", "cert_dir"],
        "certs" => &["cert_dir"],
        "cluster up" => &["topology"],
        "bench" | "status" | "reload" | "shell" => &["topology", "region", "cert_dir"],
        _ => &[],
    }
}

/// The commands that take place option `id`, for the refusal's message.
pub fn place_option_users(id: &str) -> &'static str {
    match id {
        "topology" => "data commands, the shell, serve, cluster up, status, reload and bench",
        "region" => "data commands, the shell, status, reload and bench",
        _ => "data commands, the shell, serve, certs, status, reload and bench",
    }
}

/// `command` (the command `path`, and its own subcommands) with the place
/// options it does not take hidden from its help. Each `cluster` command
/// takes its own (`cluster` itself none); the subcommands of the others
/// take what their command takes.
fn hide_place_options(command: clap::Command, path: &str) -> clap::Command {
    let taken = place_options_taken(path);
    command
        .mut_args(|arg| {
            let id = arg.get_id().as_str();
            let place = PLACE_OPTIONS.iter().any(|(p, _)| *p == id);
            if place && !taken.contains(&id) {
                arg.hide(true)
            } else {
                arg
            }
        })
        .mut_subcommands(|sub| {
            let path = if path == "cluster" {
                format!("cluster {}", sub.get_name())
            } else {
                path.to_owned()
            };
            hide_place_options(sub, &path)
        })
}

/// The help heading of the options of commands that talk to a cluster as
/// a client (data commands, `bench`, `status`).
const CLIENT_OPTIONS: &str = "Client options";

/// The client options (ids of [`GlobalArgs`] fields, under "Client
/// options") that the top-level command `name` takes; `main` refuses the
/// others, and a command's help does not list them. A data command (`get`,
/// `set`...) takes those of its [`Access`]: every data command takes
/// `--seed`, `--client`, `--raw` and `-x`; one that writes `--consistency`
/// and `-v`, one that reads `--read`.
pub fn client_options_taken(name: &str) -> &'static [&'static str] {
    match name {
        "bench" => &["consistency", "read", "client", "seeds"],
        "status" | "reload" => &["client", "seeds"],
        "shell" => &["seeds", "client", "raw", "verbose", "consistency", "read"],
        "demo" => &["client"],
        _ => match super::command::find(name).map(|spec| spec.access) {
            Some(Access::Write) => &[
                "seeds",
                "client",
                "last_from_stdin",
                "raw",
                "verbose",
                "consistency",
            ],
            Some(Access::Read) => &["seeds", "client", "last_from_stdin", "raw", "read"],
            Some(Access::NoKey) => &["seeds", "client", "last_from_stdin", "raw"],
            None => &[],
        },
    }
}

/// The client options: ids of [`GlobalArgs`] fields, and their flags as a
/// refusal names them, in the order it looks for the first given.
pub const CLIENT_OPTIONS_IDS: [(&str, &str); 7] = [
    ("seeds", "--seed"),
    ("client", "--client"),
    ("last_from_stdin", "-x (the last argument from stdin)"),
    ("raw", "--raw"),
    ("verbose", "-v/--verbose"),
    ("consistency", "--consistency"),
    ("read", "--read"),
];

/// The commands that take client option `id` (see
/// [`client_options_taken`]), for the refusal's message.
pub fn client_option_users(id: &str) -> &'static str {
    match id {
        "seeds" => "data commands, the shell, status, reload and bench",
        "client" => "data commands, the shell, status, reload, bench and demo",
        "verbose" => "writing data commands and the shell",
        "consistency" => "writing data commands, the shell and bench",
        "read" => "reading data commands, the shell and bench",
        "raw" => "data commands and the shell",
        _ => "data commands",
    }
}

/// Whether client option `id` was given.
pub fn client_option_given(global: &GlobalArgs, id: &str) -> bool {
    match id {
        "seeds" => !global.seeds.is_empty(),
        "client" => global.client.is_some(),
        "last_from_stdin" => global.last_from_stdin,
        "raw" => global.raw,
        "verbose" => global.verbose,
        "consistency" => global.consistency.is_some(),
        _ => global.read.is_some(),
    }
}

/// `command` (a subcommand, and its own subcommands) with the client
/// options other than `taken` hidden from its help.
fn hide_client_options(command: clap::Command, taken: &[&str]) -> clap::Command {
    command
        .mut_args(|arg| {
            let client_option = arg.get_help_heading() == Some(CLIENT_OPTIONS);
            if client_option && !taken.contains(&arg.get_id().as_str()) {
                arg.hide(true)
            } else {
                arg
            }
        })
        .mut_subcommands(|sub| hide_client_options(sub, taken))
}

/// A `--seed`: HOST:PORT with a port number (the name is resolved later).
fn parse_seed(text: &str) -> Result<String, String> {
    match text.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
            Ok(text.to_owned())
        }
        _ => Err("expected HOST:PORT, a node's client address (such as 127.0.0.1:7001)".to_owned()),
    }
}

/// Options every subcommand accepts.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Topology file [default: regions/local.toml; data commands first look
    /// for the running cluster's]
    #[arg(long, global = true, value_name = "FILE")]
    pub topology: Option<PathBuf>,

    /// Region that data commands, status, reload and bench talk to
    /// [default: the topology's first]
    #[arg(long, global = true, value_name = "R")]
    pub region: Option<String>,

    /// Client address (HOST:PORT) of a node to fetch the cluster's
    /// topology from, instead of reading a topology file; data commands,
    /// status, reload and bench (repeatable: all are asked, the newest version is taken)
    #[arg(
        long = "seed",
        global = true,
        value_name = "HOST:PORT",
        value_parser = parse_seed,
        help_heading = CLIENT_OPTIONS
    )]
    pub seeds: Vec<String>,

    /// Where certificates, logs and cluster.json are kept
    #[arg(long, global = true, value_name = "DIR", default_value = DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,

    /// Certificates of the CA, nodes and clients, for serve, certs, data
    /// commands, status, reload and bench (by default `<state-dir>/certs`;
    /// cluster commands always use that)
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        help = "Certificates of the CA, nodes and clients, for serve, certs, data commands, status, reload and bench [default: <state-dir>/certs; cluster commands always use that]"
    )]
    pub cert_dir: Option<PathBuf>,

    /// Client certificate to present (client-NAME.*.pem, from `meridian
    /// certs client NAME`) [default: cli]
    #[arg(long, global = true, value_name = "NAME", help_heading = CLIENT_OPTIONS)]
    pub client: Option<String>,

    /// Replicas that must apply a write [default: the topology's]
    #[arg(
        long,
        global = true,
        value_name = "LEVEL",
        value_parser = PossibleValuesParser::new(["one", "quorum", "all"]).map(|s| write_level(&s)),
        help_heading = CLIENT_OPTIONS,
    )]
    pub consistency: Option<WriteConsistency>,

    /// Replicas a read merges (and repairs) [default: the topology's]
    #[arg(
        long,
        global = true,
        value_name = "LEVEL",
        value_parser = PossibleValuesParser::new(["one", "quorum"]).map(|s| read_level(&s)),
        help_heading = CLIENT_OPTIONS,
    )]
    pub read: Option<ReadConsistency>,

    /// Also print how many replicas acknowledged a write (on stderr with
    /// --raw)
    #[arg(short, long, global = true, help_heading = CLIENT_OPTIONS)]
    pub verbose: bool,

    /// Print answers raw, like redis-cli --raw: values as stored (no quotes
    /// or escapes), integers as bare numbers, a missing value as an empty
    /// line, one list item per line
    #[arg(long, global = true, help_heading = CLIENT_OPTIONS)]
    pub raw: bool,

    /// Read a data command's last argument from stdin, to its end (like
    /// redis-cli -x)
    #[arg(short = 'x', global = true, help_heading = CLIENT_OPTIONS)]
    pub last_from_stdin: bool,
}

impl GlobalArgs {
    /// The client certificate's name: `--client`, else `cli`.
    pub fn client_name(&self) -> &str {
        self.client.as_deref().unwrap_or(CLIENT_NAME)
    }

    /// The certificate directory: `--cert-dir`, else `certs` in the state
    /// directory.
    pub fn cert_dir(&self) -> PathBuf {
        self.cert_dir
            .clone()
            .unwrap_or_else(|| self.state_dir.join("certs"))
    }

    /// The topology file named by `--topology`, else `fallback` (such as
    /// the running cluster's), else [`DEFAULT_TOPOLOGY`].
    pub fn topology_or(&self, fallback: Option<&Path>) -> PathBuf {
        self.topology
            .clone()
            .or_else(|| fallback.map(Path::to_path_buf))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_TOPOLOGY))
    }
}

fn write_level(name: &str) -> WriteConsistency {
    match name {
        "one" => WriteConsistency::One,
        "all" => WriteConsistency::All,
        _ => WriteConsistency::Quorum,
    }
}

fn read_level(name: &str) -> ReadConsistency {
    match name {
        "quorum" => ReadConsistency::Quorum,
        _ => ReadConsistency::One,
    }
}

/// The subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum Cmd {
    /// Run one node of the topology
    Serve(ServeArgs),
    /// Create the cluster CA and issue node and client certificates
    Certs(CertsArgs),
    /// Run a whole cluster locally, one process per node
    #[command(subcommand)]
    Cluster(ClusterCmd),
    /// Load the cluster through the SDK; report throughput and latency.
    /// It writes keys key:N and counter:N (N below --keys, 12 digits)
    /// and fields of the map myhash, as redis-benchmark does, over what
    /// they held: run it on a cluster whose data can take that
    Bench(super::bench::BenchArgs),
    /// Health, keys, memory and replication lag of every node
    Status(StatusArgs),
    /// Ask running nodes (default: every node, of --region if given) to
    /// re-read the topology file each was started with
    Reload {
        /// Node ids
        #[arg(value_name = "NODE")]
        nodes: Vec<String>,
    },
    /// Watch geo-replication on the running cluster: a partition, conflicting
    /// writes on both sides, a heal, convergence
    Demo,
    /// Type data commands one per line, with one client kept connected,
    /// like redis-cli (also `meridian` with no command); reads them from
    /// stdin when it is not a terminal
    Shell,
    /// A data command (`get`, `set`...; see the list below)
    #[command(external_subcommand)]
    Data(Vec<OsString>),
    /// `help NAME` of a data command: its usage. Not parsed by clap, so
    /// that no word a data command is given can ask for help instead.
    #[command(skip)]
    DataHelp(&'static CommandSpec),
}

impl Cmd {
    /// The command's name on the command line (`data` for a data command).
    pub fn name(&self) -> &'static str {
        match self {
            Cmd::Serve(_) => "serve",
            Cmd::Certs(_) => "certs",
            Cmd::Cluster(_) => "cluster",
            Cmd::Bench(_) => "bench",
            Cmd::Status(_) => "status",
            Cmd::Reload { .. } => "reload",
            Cmd::Demo => "demo",
            Cmd::Shell => "shell",
            Cmd::Data(_) | Cmd::DataHelp(_) => "data",
        }
    }

    /// The command's words on the command line: its name, and for
    /// `cluster` the subcommand's (`cluster up`).
    pub fn path(&self) -> String {
        match self {
            Cmd::Cluster(sub) => format!("cluster {}", sub.name()),
            other => other.name().to_owned(),
        }
    }
}

impl ClusterCmd {
    /// The subcommand's name on the command line.
    pub fn name(&self) -> &'static str {
        match self {
            ClusterCmd::Up { .. } => "up",
            ClusterCmd::Down => "down",
            ClusterCmd::Kill { .. } => "kill",
            ClusterCmd::Restart { .. } => "restart",
            ClusterCmd::Status => "status",
            ClusterCmd::Partition { .. } => "partition",
            ClusterCmd::Heal => "heal",
            ClusterCmd::AddNode { .. } => "add-node",
            ClusterCmd::RemoveNode { .. } => "remove-node",
        }
    }
}

/// `meridian serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// The node to run: an `id` of the topology
    #[arg(long, value_name = "ID")]
    pub node: String,
    /// Keep a checksummed delta log and snapshots here, so a restart keeps
    /// every acknowledged write (without it the node is a pure in-memory
    /// cache that recovers from its replicas)
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// A route file (`node-id = "addr"` lines): dial those nodes at these
    /// addresses instead of their peer_addr (`cluster up` passes its WAN relays)
    #[arg(long, value_name = "FILE")]
    pub peer_routes: Option<PathBuf>,
    /// The node joins a running region (`cluster add-node` passes it): its
    /// quorum reads ask every replica until the others have streamed it
    /// its keys
    #[arg(long)]
    pub joining: bool,
    /// Run only on these CPUs (a list like 0,2-3; Linux only), so that
    /// nodes sharing a machine keep their caches warm
    #[arg(long, value_name = "LIST")]
    pub cpus: Option<CpuList>,
}

/// `meridian status`.
#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// Print a JSON document (for scripts) instead of tables
    #[arg(long)]
    pub json: bool,
}

/// `meridian certs`.
#[derive(Debug, Clone, Args)]
pub struct CertsArgs {
    /// The certificate directory.
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        help = "Certificate directory [default: --cert-dir, else <state-dir>/certs]"
    )]
    pub dir: Option<PathBuf>,
    /// What to create.
    #[command(subcommand)]
    pub action: CertsAction,
}

/// What `meridian certs` creates.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum CertsAction {
    /// Create the cluster CA (refuses to replace an existing one)
    CreateCa,
    /// Issue (or re-issue) the certificate of node ID
    Node {
        /// The node's id in the topology
        id: String,
    },
    /// Issue (or re-issue) the certificate of client NAME
    Client {
        /// The client's name (the command line uses `cli`)
        name: String,
    },
}

/// `meridian cluster`.
#[derive(Debug, Clone, Subcommand)]
pub enum ClusterCmd {
    /// Start every node of the topology as a child process and supervise
    /// them until Ctrl-C
    Up {
        /// Topology file [default: --topology, else regions/local.toml]
        // Not the id `topology`: that is the global --topology's, which
        // then would not reach this command.
        #[arg(id = "topology_arg", value_name = "TOPOLOGY")]
        topology: Option<PathBuf>,
        /// How long to wait for every node to listen
        #[arg(long, value_name = "SECONDS", default_value_t = 30)]
        ready_timeout: u64,
        /// Persist every node under `DIR/<node id>` (serve --data-dir), so
        /// a killed node restarts with its data
        #[arg(
            long,
            value_name = "DIR",
            help = "Persist every node under DIR/<node id> (serve --data-dir), so a killed node restarts with its data; without it nodes keep nothing on disk"
        )]
        data_dir: Option<PathBuf>,
        /// Pin each node to one CPU in turn (serve --cpus): of every CPU
        /// this process may use, or of LIST with --pin-cpus=LIST (Linux
        /// only), so nodes sharing the machine keep their caches warm
        #[arg(long, value_name = "LIST", num_args = 0..=1, require_equals = true)]
        pin_cpus: Option<Option<CpuList>>,
    },
    /// Stop the cluster running in --state-dir
    Down,
    /// Kill one node with SIGKILL (for demos and failure tests)
    Kill {
        /// The node's id
        node: String,
    },
    /// Start node NODE again (stopping it first if it runs), with the same
    /// arguments and data directory, and wait until it listens; a node
    /// without its data catches up from its region
    Restart {
        /// The node's id
        node: String,
        /// How long to wait for it to listen
        #[arg(long, value_name = "SECONDS", default_value_t = 30)]
        timeout: u64,
    },
    /// Show the nodes of the cluster running in --state-dir
    Status,
    /// Cut REGION off from every other region, or only from OTHER (WAN
    /// emulator of the running cluster)
    Partition {
        /// The region to cut off
        // Not the id `region`: that is the global --region's.
        #[arg(id = "region_arg", value_name = "REGION")]
        region: String,
        /// Cut only the link between REGION and this region
        other: Option<String>,
    },
    /// Mend every link cut by `cluster partition`
    Heal,
    /// Add a node to REGION of the running cluster; stream it the keys it
    /// now owns, showing progress until every node is done
    AddNode {
        /// The region to grow
        // Not the id `region`: that is the global --region's.
        #[arg(id = "region_arg", value_name = "REGION")]
        region: String,
        /// The new node's id [default: REGION-K, the first free K]
        #[arg(long, value_name = "ID")]
        id: Option<String>,
        /// How long to wait for the rebalance to finish
        #[arg(long, value_name = "SECONDS", default_value_t = 600)]
        timeout: u64,
    },
    /// Remove node NODE from the running cluster: it hands its keys to the
    /// new owners (progress shown), then its process stops
    RemoveNode {
        /// The node's id
        node: String,
        /// How long to wait for the rebalance to finish
        #[arg(long, value_name = "SECONDS", default_value_t = 600)]
        timeout: u64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        let mut all = vec!["meridian"];
        all.extend_from_slice(args);
        Cli::try_parse_args(all).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::clap_command().debug_assert();
    }

    #[test]
    fn global_options_have_their_documented_defaults() {
        let cli = parse(&["get", "k"]);
        assert_eq!(cli.global.topology, None);
        assert_eq!(
            cli.global.topology_or(None),
            PathBuf::from("regions/local.toml")
        );
        assert_eq!(cli.global.state_dir, PathBuf::from(".meridian"));
        assert_eq!(cli.global.cert_dir, None);
        assert_eq!(cli.global.cert_dir(), PathBuf::from(".meridian/certs"));
        assert_eq!(cli.global.client_name(), "cli");
        assert_eq!(cli.global.region, None);
        assert_eq!(cli.global.consistency, None);
        assert_eq!(cli.global.read, None);
        assert!(!cli.global.verbose);
        assert!(!cli.global.last_from_stdin);
    }

    #[test]
    fn an_explicit_topology_wins_over_the_running_clusters() {
        let cli = parse(&["--topology", "mine.toml", "get", "k"]);
        assert_eq!(
            cli.global.topology_or(Some(Path::new("running.toml"))),
            PathBuf::from("mine.toml")
        );
        let cli = parse(&["get", "k"]);
        assert_eq!(
            cli.global.topology_or(Some(Path::new("running.toml"))),
            PathBuf::from("running.toml")
        );
    }

    #[test]
    fn consistency_levels_parse_by_name() {
        let cli = parse(&["--consistency", "all", "--read", "quorum", "get", "k"]);
        assert_eq!(cli.global.consistency, Some(WriteConsistency::All));
        assert_eq!(cli.global.read, Some(ReadConsistency::Quorum));
        let cli = parse(&["--consistency", "one", "get", "k"]);
        assert_eq!(cli.global.consistency, Some(WriteConsistency::One));
        assert!(Cli::try_parse_args(["meridian", "--consistency", "most", "get", "k"]).is_err());
        assert!(Cli::try_parse_args(["meridian", "--read", "all", "get", "k"]).is_err());
    }

    #[test]
    fn a_seed_must_name_a_host_and_a_port() {
        for seed in ["127.0.0.1:7001", "node-1.example:7001", "[::1]:7001"] {
            assert_eq!(parse(&["--seed", seed, "get", "k"]).global.seeds, [seed]);
        }
        for seed in ["nohost", "host:", ":7001", "host:port", "host:70000"] {
            let e = Cli::try_parse_args(["meridian", "--seed", seed, "get", "k"]).unwrap_err();
            assert_eq!(e.kind(), clap::error::ErrorKind::ValueValidation, "{seed}");
            assert!(e.to_string().contains("expected HOST:PORT"), "{seed}: {e}");
        }
    }

    #[test]
    fn data_commands_keep_their_words_including_negative_numbers() {
        let cli = parse(&["-v", "--region", "eu-west", "incrby", "hits", "-5"]);
        assert!(cli.global.verbose);
        assert_eq!(cli.global.region.as_deref(), Some("eu-west"));
        let Cmd::Data(words) = cli.command else {
            panic!("not a data command: {:?}", cli.command)
        };
        assert_eq!(words, ["incrby", "hits", "-5"]);
    }

    #[test]
    fn no_command_is_the_shell_with_the_options_given() {
        assert!(matches!(parse(&[]).command, Cmd::Shell));
        let cli = parse(&["--region", "eu-west", "--raw"]);
        assert!(matches!(cli.command, Cmd::Shell));
        assert_eq!(cli.global.region.as_deref(), Some("eu-west"));
        assert!(cli.global.raw);
        assert!(matches!(parse(&["shell"]).command, Cmd::Shell));
        // A bad option is still a usage error, not the shell.
        let e = Cli::try_parse_args(["meridian", "--consistency", "most"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::InvalidValue);
        // A command that needs a subcommand still shows its help.
        for args in [&["meridian", "cluster"][..], &["meridian", "certs"]] {
            let e = Cli::try_parse_args(args).unwrap_err();
            assert_eq!(
                e.kind(),
                clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand,
                "{args:?}"
            );
        }
    }

    #[test]
    fn x_reads_the_last_argument_from_stdin() {
        let cli = parse(&["-x", "set", "big"]);
        assert!(cli.global.last_from_stdin);
        let Cmd::Data(words) = cli.command else {
            panic!("not a data command")
        };
        assert_eq!(words, ["set", "big"]);
        assert!(parse(&["-vx", "hset", "h", "f"]).global.last_from_stdin);
    }

    #[test]
    fn help_and_a_data_commands_name_ask_for_its_usage() {
        for args in [
            &["help", "del"][..],
            &["-v", "help", "DEL"],
            &["-x", "help", "del"],
        ] {
            let Cmd::DataHelp(spec) = parse(args).command else {
                panic!("{args:?} is no help request")
            };
            assert_eq!(spec.name, "del", "{args:?}");
        }
        assert!(parse(&["-x", "help", "del"]).global.last_from_stdin);
        // After a data command's name, help flags are its arguments.
        for args in [
            &["del", "-h"][..],
            &["get", "--help"],
            &["del", "help", "k"],
        ] {
            let Cmd::Data(words) = parse(args).command else {
                panic!("{args:?} is no data command")
            };
            assert_eq!(words, args, "{args:?}");
        }
        assert!(Cli::try_parse_args(["meridian", "help", "del", "k"]).is_err());
    }

    #[test]
    fn data_commands_take_the_client_options_of_what_they_do() {
        let takes = |name: &str, id: &str| client_options_taken(name).contains(&id);
        for name in [
            "set",
            "mset",
            "del",
            "unlink",
            "incr",
            "hset",
            "expire",
            "pexpire",
            "expireat",
            "pexpireat",
            "persist",
            "mvset",
        ] {
            assert!(
                takes(name, "consistency") && takes(name, "verbose"),
                "{name}"
            );
            assert!(!takes(name, "read"), "{name}");
        }
        for name in [
            "get",
            "mget",
            "strlen",
            "exists",
            "smembers",
            "sunion",
            "sinter",
            "sdiff",
            "smismember",
            "hgetall",
            "hmget",
            "hexists",
            "hkeys",
            "hvals",
            "ttl",
            "pttl",
            "expiretime",
            "pexpiretime",
            "type",
            "mvget",
        ] {
            assert!(takes(name, "read"), "{name}");
            assert!(
                !takes(name, "consistency") && !takes(name, "verbose"),
                "{name}"
            );
        }
        for id in ["consistency", "read", "verbose"] {
            assert!(!takes("ping", id), "{id}");
            assert!(!takes("echo", id), "{id}");
        }
        for name in ["ping", "get", "SET"] {
            for id in ["seeds", "client", "last_from_stdin", "raw"] {
                assert!(takes(name, id), "{name} {id}");
            }
        }
        // Every id is one of GlobalArgs', under "Client options".
        let command = Cli::clap_command();
        for (id, _) in CLIENT_OPTIONS_IDS {
            let arg = command
                .get_arguments()
                .find(|arg| arg.get_id() == id)
                .unwrap_or_else(|| panic!("no option {id}"));
            assert_eq!(arg.get_help_heading(), Some(CLIENT_OPTIONS), "{id}");
        }
    }

    #[test]
    fn options_after_a_data_command_are_its_arguments() {
        let Cmd::Data(words) = parse(&["set", "k", "v", "--ex", "10"]).command else {
            panic!("not a data command")
        };
        assert_eq!(words, ["set", "k", "v", "--ex", "10"]);
    }

    #[test]
    fn serve_takes_a_node_and_an_optional_cert_dir() {
        let cli = parse(&["serve", "--node", "us-east-1", "--topology", "t.toml"]);
        let Cmd::Serve(serve) = cli.command else {
            panic!("not serve")
        };
        assert_eq!(serve.node, "us-east-1");
        assert_eq!(cli.global.cert_dir(), PathBuf::from(".meridian/certs"));
        assert_eq!(cli.global.topology, Some(PathBuf::from("t.toml")));
        assert!(Cli::try_parse_args(["meridian", "serve"]).is_err());
        // Before or after `serve`, as `cluster up` passes it.
        for args in [
            &["serve", "--node", "n", "--cert-dir", "pki"][..],
            &["--cert-dir", "pki", "serve", "--node", "n"],
        ] {
            assert_eq!(parse(args).global.cert_dir(), PathBuf::from("pki"));
        }
    }

    #[test]
    fn data_commands_take_a_cert_dir_and_a_client_name() {
        let cli = parse(&["--cert-dir", "pki", "--client", "alice", "get", "k"]);
        assert_eq!(cli.global.cert_dir(), PathBuf::from("pki"));
        assert_eq!(cli.global.client_name(), "alice");
        let cli = parse(&["--state-dir", "lab", "--client", "bob", "ping"]);
        assert_eq!(cli.global.cert_dir(), PathBuf::from("lab/certs"));
        assert_eq!(cli.global.client_name(), "bob");
    }

    #[test]
    fn certs_take_a_directory_before_or_after_the_action() {
        for args in [
            &["certs", "--dir", "d", "node", "n1"][..],
            &["certs", "node", "n1", "--dir", "d"],
        ] {
            let Cmd::Certs(certs) = parse(args).command else {
                panic!("not certs")
            };
            assert_eq!(certs.dir, Some(PathBuf::from("d")));
            assert_eq!(certs.action, CertsAction::Node { id: "n1".into() });
        }
        let Cmd::Certs(certs) = parse(&["certs", "create-ca"]).command else {
            panic!("not certs")
        };
        assert_eq!(certs.dir, None);
        assert_eq!(certs.action, CertsAction::CreateCa);
    }

    #[test]
    fn cluster_up_takes_an_optional_topology() {
        let Cmd::Cluster(ClusterCmd::Up {
            topology,
            ready_timeout,
            data_dir,
            pin_cpus,
        }) = parse(&["cluster", "up", "regions/single.toml"]).command
        else {
            panic!("not cluster up")
        };
        assert_eq!(topology, Some(PathBuf::from("regions/single.toml")));
        assert_eq!(ready_timeout, 30);
        assert_eq!(data_dir, None);
        assert_eq!(pin_cpus, None);
        for (args, expected) in [
            (&["cluster", "up", "--pin-cpus"][..], Some(None)),
            (
                &["cluster", "up", "--pin-cpus=1-2"][..],
                Some("1-2".parse().ok()),
            ),
            // The flag before the topology leaves it alone.
            (
                &["cluster", "up", "--pin-cpus", "regions/single.toml"][..],
                Some(None),
            ),
        ] {
            let Cmd::Cluster(ClusterCmd::Up {
                pin_cpus, topology, ..
            }) = parse(args).command
            else {
                panic!("not cluster up")
            };
            assert_eq!(pin_cpus, expected, "{args:?}");
            let file = args
                .iter()
                .find(|a| a.ends_with(".toml"))
                .map(PathBuf::from);
            assert_eq!(topology, file, "{args:?}");
        }
        let err = Cli::try_parse_args(["meridian", "cluster", "up", "--pin-cpus=2-1"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("the range 2-1 is backwards"), "{err}");
        let Cmd::Cluster(ClusterCmd::Up { data_dir, .. }) =
            parse(&["cluster", "up", "--data-dir", "lab-data"]).command
        else {
            panic!("not cluster up")
        };
        assert_eq!(data_dir, Some(PathBuf::from("lab-data")));
        let Cmd::Cluster(ClusterCmd::Kill { node }) =
            parse(&["cluster", "kill", "us-east-2"]).command
        else {
            panic!("not cluster kill")
        };
        assert_eq!(node, "us-east-2");
    }

    #[test]
    fn a_commands_help_lists_only_the_client_options_it_takes() {
        let help = |path: &[&str]| {
            let mut command = Cli::clap_command();
            let mut sub = &mut command;
            for name in path {
                sub = sub.find_subcommand_mut(name).unwrap();
            }
            sub.render_help().to_string()
        };
        let top = help(&[]);
        for option in ["--raw", "--consistency", "--seed", "--client", "-x"] {
            assert!(top.contains(option), "{option} in\n{top}");
        }
        let bench = help(&["bench"]);
        assert!(
            bench.contains("--consistency") && bench.contains("--seed"),
            "{bench}"
        );
        assert!(
            !bench.contains("--raw") && !bench.contains("--verbose"),
            "{bench}"
        );
        let status = help(&["status"]);
        assert!(
            status.contains("--seed") && !status.contains("--read"),
            "{status}"
        );
        for path in [
            &["serve"][..],
            &["cluster", "up"],
            &["cluster", "status"],
            &["certs", "create-ca"],
        ] {
            let text = help(path);
            assert!(!text.contains("Client options"), "{path:?}:\n{text}");
            assert!(
                !text.contains("--raw") && !text.contains("--client"),
                "{path:?}"
            );
        }
    }

    #[test]
    fn help_lists_the_data_commands() {
        let help = Cli::clap_command().render_help().to_string();
        assert!(help.contains("hgetall KEY"), "{help}");
        assert!(help.contains("cluster"), "{help}");
    }
}
