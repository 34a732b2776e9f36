//! `meridian bench`: a load generator that drives a cluster through the
//! client SDK, the way an application would, and reports throughput and
//! latency per operation.
//!
//! It keeps `concurrency` requests in flight (one tokio task each, spread
//! over `connections` clients, each with its own connection to every node),
//! picks each request's operation from the [`Mix`] and its key uniformly
//! from `keys` keys, and records each successful request's latency in a
//! [`Histogram`]. Errors are counted by kind and never stop the run. Gets
//! read keys written beforehand (the preload), so they find values.
//!
//! - `mix.rs`: `--ops` (`set:50,get:50`).
//! - `histogram.rs`: the log-bucket latency histogram.
//! - `report.rs`: the figures, as a table or JSON.
//!
//! It runs on the caller's runtime; the command builds a current-thread
//! one, which keeps the client to one core and is the fastest flavour for
//! request/response traffic on small machines.

mod histogram;
mod mix;
mod report;

pub use histogram::{Histogram, VALUE_MAX};
pub use mix::{Mix, MixError, Op, WEIGHT_MAX};
pub use report::{format_count, format_us, ErrorCount, Latency, OpReport, Preload, Report, Setup};

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::Context;

use super::args::GlobalArgs;
use super::target::Target;
use crate::affinity::CpuList;
use crate::client::{
    Bytes, Client, ClientError, ClientOptions, Command, ReadConsistency, Reply, Routing,
    WriteConsistency,
};

/// Most requests in flight.
pub const CONCURRENCY_MAX: usize = 65_536;
/// Most client connections.
pub const CONNECTIONS_MAX: usize = 64;
/// Largest value written.
pub const VALUE_BYTES_MAX: usize = 64 << 20;
/// The run's length when neither `--duration` nor `--requests` is given.
pub const DURATION_S_DEFAULT: f64 = 10.0;
/// Longest run.
pub const DURATION_S_MAX: f64 = 86_400.0;
/// The map every `hset` writes a field of (as redis-benchmark's `HSET`).
pub const HSET_KEY: &str = "myhash";

/// `meridian bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Operations (get, set, incr, hset) and their weights: `get`,
    /// `get,set` (equal weights) or `set:50,get:50`
    #[arg(long, value_name = "MIX", default_value = "set:50,get:50")]
    pub ops: Mix,
    /// Keys to spread requests over (uniformly)
    #[arg(long, value_name = "N", default_value_t = 10_000, value_parser = parse_count)]
    pub keys: u64,
    /// Bytes of every value written
    #[arg(long, value_name = "B", default_value_t = 64,
          value_parser = clap::value_parser!(u64).range(0..=VALUE_BYTES_MAX as u64))]
    pub value_size: u64,
    /// Requests in flight
    #[arg(long, value_name = "C", default_value_t = 16,
          value_parser = clap::value_parser!(u64).range(1..=CONCURRENCY_MAX as u64))]
    pub concurrency: u64,
    /// Run for this many seconds [default: 10]
    #[arg(long, value_name = "SECS", conflicts_with = "requests", value_parser = parse_duration_s)]
    pub duration: Option<f64>,
    /// Run until this many requests have been answered
    #[arg(long, value_name = "N", value_parser = parse_count)]
    pub requests: Option<u64>,
    /// Client connections to spread the requests over (each has its own
    /// connection to every node)
    #[arg(long, value_name = "K", default_value_t = 1,
          value_parser = clap::value_parser!(u64).range(1..=CONNECTIONS_MAX as u64))]
    pub connections: u64,
    /// Which replica of a key each request goes to first: `read-home` (the
    /// SDK's default: reads, and writes while fewer than 16 are there, to
    /// each client's home node when it holds one; other writes to the
    /// key's first replica on the ring other than the home), `primary`
    /// (everything to the key's
    /// first replica) or `home` (everything to the home node when it holds
    /// one); the clients' homes spread over the region
    #[arg(long, value_name = "ROUTE", default_value = "read-home",
          value_parser = ["read-home", "primary", "home"])]
    pub route: String,
    /// The client's home node, an id of the region (with `--connections
    /// K` the first client's; the others take the next nodes in turn)
    /// [default: one picked at random]; needs `--route read-home` or
    /// `home`. Beside pinned nodes, a home off the client's own CPU keeps
    /// the two from sharing a core
    #[arg(long, value_name = "NODE")]
    pub home: Option<String>,
    /// With `--route read-home`: how many writes each client's home
    /// coordinates at once before further ones go to their keys' first
    /// replicas (see the SDK's `ClientOptions::home_writes_max`)
    #[arg(long, value_name = "N", default_value_t = crate::client::HOME_WRITES_MAX)]
    pub home_writes_max: usize,
    /// After each request, keep polling for US microseconds instead of
    /// sleeping until the answer, where that pays (0: never; at most
    /// 10,000; see the SDK's `ClientOptions::busy_poll`)
    #[arg(long, value_name = "US", default_value_t = 100,
          value_parser = clap::value_parser!(u64).range(0..=10_000))]
    pub busy_poll_us: u64,
    /// Run the benchmark client only on these CPUs (a list like 0,2-3;
    /// Linux only): beside pinned nodes (`cluster up --pin-cpus`), give it
    /// the CPU with the fewest nodes
    #[arg(long, value_name = "LIST")]
    pub cpus: Option<CpuList>,
    /// Print the report as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

/// A count of at least 1 (`--keys`, `--requests`).
fn parse_count(text: &str) -> Result<u64, String> {
    use std::num::IntErrorKind;
    match text.parse::<u64>() {
        Ok(0) => Err("expected at least 1".to_owned()),
        Ok(n) => Ok(n),
        Err(e) if *e.kind() == IntErrorKind::PosOverflow => {
            Err(format!("expected at most {}", u64::MAX))
        }
        Err(_) => Err("expected a whole number of at least 1".to_owned()),
    }
}

fn parse_duration_s(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if s > 0.0 && s <= DURATION_S_MAX => Ok(s),
        _ => Err(format!(
            "expected a number of seconds above 0 and at most {DURATION_S_MAX}"
        )),
    }
}

impl BenchArgs {
    /// The routing `--route` and `--home` ask for, or why they contradict
    /// each other (`--route primary --home N`): a usage error, found
    /// without the topology.
    pub fn routing(&self) -> Result<Routing, BenchError> {
        routing(&self.route, self.home.as_deref())
    }

    /// The benchmark these arguments describe.
    pub fn options(&self) -> BenchOptions {
        let stop = match (self.requests, self.duration) {
            (Some(n), _) => Stop::Requests(n),
            (None, s) => Stop::Elapsed(Duration::from_secs_f64(s.unwrap_or(DURATION_S_DEFAULT))),
        };
        BenchOptions {
            mix: self.ops.clone(),
            keys: self.keys,
            value_bytes: self.value_size as usize,
            concurrency: self.concurrency as usize,
            connections: self.connections as usize,
            stop,
            progress_every: Duration::from_secs(1),
        }
    }
}

/// When the run ends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stop {
    /// After this long (requests in flight then are still answered).
    Elapsed(Duration),
    /// Once this many requests have been sent and answered.
    Requests(u64),
}

/// What to run; see the [module docs](self).
#[derive(Debug, Clone, PartialEq)]
pub struct BenchOptions {
    /// Operations and their weights.
    pub mix: Mix,
    /// Keys drawn from, uniformly.
    pub keys: u64,
    /// Bytes of every value written.
    pub value_bytes: usize,
    /// Requests in flight.
    pub concurrency: usize,
    /// Clients the requests are spread over, each with its own connections.
    pub connections: usize,
    /// When to stop.
    pub stop: Stop,
    /// How often progress is reported.
    pub progress_every: Duration,
}

/// How far a run has got, reported about every `progress_every`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Since the first request.
    pub elapsed: Duration,
    /// Requests answered successfully so far.
    pub ops: u64,
    /// Requests failed so far.
    pub errors: u64,
    /// Successful requests per second since the previous report.
    pub ops_per_s_recent: f64,
    /// While the keys a run reads are written beforehand: how many of
    /// them are (`ops` and `errors` then count the preload's requests).
    pub preloading: Option<PreloadProgress>,
}

/// How far the preload has got.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PreloadProgress {
    /// Keys written (or failed) so far.
    pub done: u64,
    /// Keys to write.
    pub keys: u64,
}

/// Why a benchmark could not run at all (failing requests do not stop it).
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The options make no sense.
    #[error("{0}")]
    Options(String),
    /// The client could not be set up (certificates, region).
    #[error("cannot set up the client: {0}")]
    Client(#[source] ClientError),
    /// Not one of the keys gets read could be written beforehand.
    #[error("could not write any of the {keys} keys gets read: {last}")]
    Preload {
        /// Keys tried.
        keys: u64,
        /// The last error.
        last: String,
    },
    /// No node of the region answered a ping.
    #[error("no node of region {region} answers: {source}")]
    Unreachable {
        /// The region.
        region: String,
        /// The last error.
        #[source]
        source: ClientError,
    },
}

/// A short, stable name for the kind of `error`, for counting.
pub fn error_kind(error: &ClientError) -> &'static str {
    match error {
        ClientError::WrongType { .. } => "wrong type",
        ClientError::QuorumNotReached { .. } => "quorum not reached",
        ClientError::ReadQuorumNotReached { .. } => "read quorum not reached",
        ClientError::Timeout => "timeout",
        ClientError::TooLarge { .. } => "too large",
        ClientError::Overflow => "overflow",
        ClientError::Unavailable(_) => "unavailable",
        ClientError::BadRequest(_) => "bad request",
        ClientError::Refused(_) => "refused",
        ClientError::Tls(_) => "tls",
        ClientError::Connect(_) => "connect",
        ClientError::Protocol(_) => "protocol",
    }
}

/// Key `n` of an operation, named as redis-benchmark names them
/// (`key:000000000042`); `hset` writes field `element:<n>` of [`HSET_KEY`].
pub fn request(op: Op, n: u64, value: &Bytes) -> Command {
    match op {
        Op::Get => Command::Get {
            key: format!("key:{n:012}").into_bytes().into(),
        },
        Op::Set => Command::Set {
            key: format!("key:{n:012}").into_bytes().into(),
            value: value.clone(),
            ttl_ms: None,
        },
        Op::Incr => Command::IncrBy {
            key: format!("counter:{n:012}").into_bytes().into(),
            by: 1,
        },
        Op::HSet => Command::HSet {
            key: HSET_KEY.into(),
            field: format!("element:{n:012}").into_bytes().into(),
            value: value.clone(),
        },
    }
}

/// A small, fast pseudo-random generator (SplitMix64); statistical quality
/// is plenty for choosing keys.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, n)`.
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }
}

/// Figures of one operation while the run goes on.
#[derive(Default)]
struct OpTally {
    latencies_ns: Histogram,
    errors: u64,
    misses: u64,
}

/// Everything the request tasks record into.
#[derive(Default)]
struct Tally {
    per_op: [OpTally; Op::ALL.len()],
    /// Count and first message, by kind.
    errors: BTreeMap<&'static str, (u64, String)>,
}

impl Tally {
    fn error(&mut self, op: Op, error: &ClientError) {
        self.per_op[op.index()].errors += 1;
        self.errors
            .entry(error_kind(error))
            .or_insert_with(|| (0, error.to_string()))
            .0 += 1;
    }
}

/// State shared by the request tasks.
struct Shared {
    tally: Mutex<Tally>,
    /// Requests answered, successfully or not.
    answered: AtomicU64,
    /// Requests taken by tasks (for [`Stop::Requests`]).
    claimed: AtomicU64,
}

impl Shared {
    fn tally(&self) -> MutexGuard<'_, Tally> {
        self.tally.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Runs the benchmark `bench` against the cluster `client` reaches,
/// calling `on_progress` about every `bench.progress_every`, and returns
/// what it measured. Fails only when it cannot start: bad options, no
/// client certificate, or no node of the region answering a ping.
///
/// ```no_run
/// use meridian::cli::bench::{self, BenchOptions, Mix, Stop};
/// use meridian::client::ClientOptions;
/// use meridian::topology::Topology;
/// use std::time::Duration;
/// # async fn run() -> anyhow::Result<()> {
/// let client = ClientOptions::new(Topology::load("regions/single.toml")?, "local", ".meridian/certs");
/// let options = BenchOptions {
///     mix: "set:50,get:50".parse()?,
///     keys: 10_000,
///     value_bytes: 64,
///     concurrency: 16,
///     connections: 1,
///     stop: Stop::Elapsed(Duration::from_secs(5)),
///     progress_every: Duration::from_secs(1),
/// };
/// let report = bench::run(client, &options, |p| eprintln!("{:.0} ops/s", p.ops_per_s_recent)).await?;
/// println!("{report}");
/// # Ok(())
/// # }
/// ```
pub async fn run(
    client: ClientOptions,
    bench: &BenchOptions,
    mut on_progress: impl FnMut(&Progress),
) -> Result<Report, BenchError> {
    check(bench)?;
    let limit = client.topology.limits().value_bytes_max;
    if bench.value_bytes > limit as usize {
        return Err(BenchError::Options(format!(
            "--value-size {} is over the cluster's value limit of {limit} bytes",
            bench.value_bytes
        )));
    }
    let mut setup = setup(&client, bench);
    let node_ids: Vec<String> = client
        .topology
        .nodes_in(&client.region)
        .unwrap_or_default()
        .iter()
        .map(|n| n.id.clone())
        .collect();
    let mut clients = Vec::with_capacity(bench.connections);
    // Several clients with random homes would pile up on some nodes: give
    // them homes in turn, from the chosen home or a random start.
    let chosen = match &client.routing {
        Routing::Home(id) | Routing::ReadHomeAt(id) => {
            match node_ids.iter().position(|n| n == id) {
                Some(i) => Some(i),
                None => {
                    return Err(BenchError::Options(format!(
                        "--home {id} is not a node of region {} (its nodes: {})",
                        client.region,
                        node_ids.join(", ")
                    )))
                }
            }
        }
        _ => None,
    };
    let first_home = chosen.unwrap_or_else(|| crate::client::random_below(node_ids.len()));
    for i in 0..bench.connections {
        let mut options = client.clone();
        if bench.connections > 1 && !node_ids.is_empty() {
            let home = node_ids[(first_home + i) % node_ids.len()].clone();
            match options.routing {
                Routing::RandomHome | Routing::Home(_) => options.routing = Routing::Home(home),
                Routing::ReadHome | Routing::ReadHomeAt(_) => {
                    options.routing = Routing::ReadHomeAt(home)
                }
                _ => {}
            }
        }
        let c = Client::connect(options).await.map_err(BenchError::Client)?;
        c.ping().await.map_err(|source| BenchError::Unreachable {
            region: client.region.clone(),
            source,
        })?;
        // Dial every node now rather than during the run; a node that does
        // not answer shows up as errors or failovers later.
        for id in &node_ids {
            let _ = c.execute_on(id, Command::Ping).await;
        }
        setup.homes.extend(c.home());
        clients.push(c);
    }
    let value = Bytes::from(vec![b'x'; bench.value_bytes]);

    let preload = if bench.mix.contains(Op::Get) {
        // A client of its own, gone before the run: the keys are data
        // others wrote earlier, not the measured clients' own writes (a
        // client reads its own recent writes from the replica that
        // coordinated them; see `Routing`).
        let mut options = client.clone();
        options.routing = Routing::Primary;
        let loader = Client::connect(options).await.map_err(BenchError::Client)?;
        let done = preload(&loader, bench, &value, &mut on_progress).await;
        drop(loader);
        if done.errors == done.keys {
            // Every get would read a key that is not there.
            return Err(BenchError::Preload {
                keys: done.keys,
                last: done.last_error.unwrap_or_default(),
            });
        }
        Some(done)
    } else {
        None
    };

    let shared = Arc::new(Shared {
        tally: Mutex::new(Tally::default()),
        answered: AtomicU64::new(0),
        claimed: AtomicU64::new(0),
    });
    let started = Instant::now();
    let deadline = match bench.stop {
        Stop::Elapsed(d) => Some(started + d),
        Stop::Requests(_) => None,
    };
    let limit = match bench.stop {
        Stop::Requests(n) => n,
        Stop::Elapsed(_) => u64::MAX,
    };
    let failovers_before: u64 = clients.iter().map(Client::failovers).sum();
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..bench.concurrency {
        let client = clients[task % clients.len()].clone();
        let shared = shared.clone();
        let mix = bench.mix.clone();
        let value = value.clone();
        let keys = bench.keys;
        let mut rng = SplitMix64(0x5EED ^ (task as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        tasks.spawn(async move {
            loop {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                if shared.claimed.fetch_add(1, Ordering::Relaxed) >= limit {
                    break;
                }
                let op = mix.pick(rng.next());
                let command = request(op, rng.below(keys), &value);
                let sent = Instant::now();
                let result = client.execute(command).await;
                let latency_ns = u64::try_from(sent.elapsed().as_nanos()).unwrap_or(u64::MAX);
                {
                    let mut tally = shared.tally();
                    match result {
                        Ok(answer) => {
                            let t = &mut tally.per_op[op.index()];
                            t.latencies_ns.record(latency_ns);
                            if op == Op::Get && answer.reply == Reply::Nil {
                                t.misses += 1;
                            }
                        }
                        Err(e) => tally.error(op, &e),
                    }
                }
                shared.answered.fetch_add(1, Ordering::Relaxed);
            }
        });
    }

    let mut ticker = tokio::time::interval_at(
        tokio::time::Instant::from_std(started) + bench.progress_every,
        bench.progress_every,
    );
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut last_at, mut last_ops) = (started, 0);
    loop {
        tokio::select! {
            joined = tasks.join_next() => match joined {
                Some(Ok(())) => {}
                Some(Err(e)) => std::panic::resume_unwind(e.into_panic()),
                None => break,
            },
            _ = ticker.tick() => {
                let now = Instant::now();
                let (ops, errors) = {
                    let tally = shared.tally();
                    let errors: u64 = tally.per_op.iter().map(|t| t.errors).sum();
                    let ops: u64 = tally.per_op.iter().map(|t| t.latencies_ns.count()).sum();
                    (ops, errors)
                };
                let window_s = now.duration_since(last_at).as_secs_f64().max(1e-9);
                on_progress(&Progress {
                    elapsed: now.duration_since(started),
                    ops,
                    errors,
                    ops_per_s_recent: (ops - last_ops) as f64 / window_s,
                    preloading: None,
                });
                (last_at, last_ops) = (now, ops);
            }
        }
    }
    let elapsed_s = started.elapsed().as_secs_f64();
    let tally = std::mem::take(&mut *shared.tally());
    let failovers = clients.iter().map(Client::failovers).sum::<u64>() - failovers_before;
    let mut report = report(setup, preload, elapsed_s, &bench.mix, tally);
    report.failovers = failovers;
    Ok(report)
}

fn check(bench: &BenchOptions) -> Result<(), BenchError> {
    let bad = |why: &str| Err(BenchError::Options(why.to_owned()));
    if bench.keys == 0 {
        return bad("--keys must be at least 1");
    }
    if !(1..=CONCURRENCY_MAX).contains(&bench.concurrency) {
        return bad("--concurrency must be from 1 to 65536");
    }
    if !(1..=CONNECTIONS_MAX).contains(&bench.connections) {
        return bad("--connections must be from 1 to 64");
    }
    if bench.value_bytes > VALUE_BYTES_MAX {
        return bad("--value-size must be at most 64 MiB");
    }
    if bench.progress_every.is_zero() {
        return bad("progress must be reported at intervals above 0");
    }
    match bench.stop {
        Stop::Elapsed(d) if d.is_zero() => bad("--duration must be above 0"),
        Stop::Requests(0) => bad("--requests must be at least 1"),
        _ => Ok(()),
    }
}

fn setup(client: &ClientOptions, bench: &BenchOptions) -> Setup {
    let topology = &client.topology;
    Setup {
        cluster: topology.cluster().to_owned(),
        region: client.region.clone(),
        nodes: topology.nodes_in(&client.region).map_or(0, <[_]>::len),
        replication_factor: topology.replication_factor(),
        write: write_name(client.write.unwrap_or(topology.write_consistency())).to_owned(),
        read: read_name(client.read.unwrap_or(topology.read_consistency())).to_owned(),
        mix: bench.mix.to_string(),
        keys: bench.keys,
        value_bytes: bench.value_bytes,
        concurrency: bench.concurrency,
        connections: bench.connections,
        busy_poll_us: u64::try_from(client.busy_poll.as_micros()).unwrap_or(u64::MAX),
        route: match client.routing {
            Routing::Primary => "primary",
            Routing::RandomHome | Routing::Home(_) => "home",
            _ => "read-home",
        }
        .to_owned(),
        home_writes_max: matches!(client.routing, Routing::ReadHome | Routing::ReadHomeAt(_))
            .then_some(client.home_writes_max),
        homes: Vec::new(),
    }
}

fn write_name(level: WriteConsistency) -> &'static str {
    match level {
        WriteConsistency::One => "one",
        WriteConsistency::Quorum => "quorum",
        WriteConsistency::All => "all",
    }
}

fn read_name(level: ReadConsistency) -> &'static str {
    match level {
        ReadConsistency::One => "one",
        ReadConsistency::Quorum => "quorum",
    }
}

/// Writes every key gets will read, `concurrency` at a time.
async fn preload(
    client: &Client,
    bench: &BenchOptions,
    value: &Bytes,
    on_progress: &mut impl FnMut(&Progress),
) -> Preload {
    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let last_error = Arc::new(Mutex::new(None));
    let mut tasks = tokio::task::JoinSet::new();
    let workers = bench
        .concurrency
        .min(usize::try_from(bench.keys).unwrap_or(usize::MAX));
    for _ in 0..workers {
        let client = client.clone();
        let (next, errors, value, keys) = (next.clone(), errors.clone(), value.clone(), bench.keys);
        let last_error = last_error.clone();
        tasks.spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= keys {
                    break;
                }
                if let Err(e) = client.execute(request(Op::Set, n, &value)).await {
                    errors.fetch_add(1, Ordering::Relaxed);
                    *last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
                }
            }
        });
    }
    let mut ticks = tokio::time::interval_at(
        tokio::time::Instant::from_std(started) + bench.progress_every,
        bench.progress_every,
    );
    let mut reported = 0u64;
    loop {
        let joined = tokio::select! {
            joined = tasks.join_next() => joined,
            _ = ticks.tick() => {
                let done = next.load(Ordering::Relaxed).min(bench.keys);
                let errors = errors.load(Ordering::Relaxed);
                on_progress(&Progress {
                    elapsed: started.elapsed(),
                    ops: done.saturating_sub(errors),
                    errors,
                    ops_per_s_recent: (done - reported.min(done)) as f64
                        / bench.progress_every.as_secs_f64(),
                    preloading: Some(PreloadProgress { done, keys: bench.keys }),
                });
                reported = done;
                continue;
            }
        };
        match joined {
            None => break,
            Some(Err(e)) => std::panic::resume_unwind(e.into_panic()),
            Some(Ok(())) => {}
        }
    }
    let last_error = last_error.lock().unwrap_or_else(|p| p.into_inner()).take();
    Preload {
        keys: bench.keys,
        elapsed_s: started.elapsed().as_secs_f64(),
        errors: errors.load(Ordering::Relaxed),
        last_error,
    }
}

fn report(
    setup: Setup,
    preload: Option<Preload>,
    elapsed_s: f64,
    mix: &Mix,
    tally: Tally,
) -> Report {
    let elapsed_s = elapsed_s.max(1e-9);
    let row = |op: String, t: &OpTally| OpReport {
        op,
        ops: t.latencies_ns.count(),
        ops_per_s: t.latencies_ns.count() as f64 / elapsed_s,
        errors: t.errors,
        misses: t.misses,
        latency: Latency::of(&t.latencies_ns),
    };
    let mut all = OpTally::default();
    let mut per_op = Vec::new();
    for op in mix.ops() {
        let t = &tally.per_op[op.index()];
        all.latencies_ns.merge(&t.latencies_ns);
        all.errors += t.errors;
        all.misses += t.misses;
        per_op.push(row(op.name().to_owned(), t));
    }
    let mut errors: Vec<ErrorCount> = tally
        .errors
        .into_iter()
        .map(|(kind, (count, example))| ErrorCount {
            kind: kind.to_owned(),
            count,
            example,
        })
        .collect();
    errors.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.kind.cmp(&b.kind)));
    Report {
        setup,
        preload,
        elapsed_s,
        per_op,
        total: row("all".to_owned(), &all),
        errors,
        failovers: 0,
    }
}

/// `meridian bench`: resolves the target like a data command, runs the
/// benchmark on a current-thread runtime with a progress line on stderr
/// about once a second, and returns the report, which the binary prints on
/// stdout (a table, or JSON with `--json`).
pub fn command(global: &GlobalArgs, args: &BenchArgs) -> anyhow::Result<Report> {
    if let Some(cpus) = &args.cpus {
        // Before the runtime, so that every thread it starts inherits it.
        crate::affinity::pin_current_thread(cpus)
            .with_context(|| format!("bench --cpus {cpus}"))?;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let target = runtime.block_on(Target::resolve_async(global))?;
    let mut client = ClientOptions::new(target.topology, target.region, target.cert_dir);
    client.client_name = target.client_name;
    client.write = target.write;
    client.read = target.read;
    client.routing = args.routing()?;
    client.busy_poll = Duration::from_micros(args.busy_poll_us);
    client.home_writes_max = args.home_writes_max;
    let options = args.options();
    let terminal = std::io::stderr().is_terminal();
    let mut was_preloading = false;
    let report = runtime.block_on(run(client, &options, |p| {
        if terminal && was_preloading && p.preloading.is_none() {
            // The preload's line stays; the run's goes under it.
            let _ = writeln!(std::io::stderr());
        }
        was_preloading = p.preloading.is_some();
        let line = match p.preloading {
            Some(pre) => format!(
                "bench: preloading {:>4.0} s  {}/{} keys  {:>9} keys/s  {} errors",
                p.elapsed.as_secs_f64(),
                format_count(pre.done),
                format_count(pre.keys),
                format_count(p.ops_per_s_recent.round() as u64),
                format_count(p.errors)
            ),
            None => format!(
                "bench: {:>4.0} s  {:>11} ops  {:>9} ops/s  {} errors",
                p.elapsed.as_secs_f64(),
                format_count(p.ops),
                format_count(p.ops_per_s_recent.round() as u64),
                format_count(p.errors)
            ),
        };
        let mut err = std::io::stderr().lock();
        let _ = if terminal {
            write!(err, "\r{line}")
        } else {
            writeln!(err, "{line}")
        };
        let _ = err.flush();
    }))?;
    if terminal {
        let _ = writeln!(std::io::stderr());
    }
    Ok(report)
}

/// The routing `--route` and `--home` ask for.
fn routing(route: &str, home: Option<&str>) -> Result<Routing, BenchError> {
    Ok(match (route, home) {
        ("primary", None) => Routing::Primary,
        ("primary", Some(_)) => {
            return Err(BenchError::Options(
                "--home needs --route read-home or home: with --route primary every \
                 request goes to its key's first replica"
                    .to_owned(),
            ))
        }
        ("home", None) => Routing::RandomHome,
        ("home", Some(id)) => Routing::Home(id.to_owned()),
        (_, None) => Routing::ReadHome,
        (_, Some(id)) => Routing::ReadHomeAt(id.to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::args::{Cli, Cmd};

    fn bench_args(args: &[&str]) -> Result<BenchArgs, clap::Error> {
        let mut all = vec!["meridian", "bench"];
        all.extend_from_slice(args);
        match Cli::try_parse_args(all)?.command {
            Cmd::Bench(args) => Ok(args),
            other => panic!("not bench: {other:?}"),
        }
    }

    #[test]
    fn bench_arguments_have_documented_defaults() {
        let options = bench_args(&[]).unwrap().options();
        assert_eq!(options.mix, "set:50,get:50".parse().unwrap());
        assert_eq!(options.keys, 10_000);
        assert_eq!(options.value_bytes, 64);
        assert_eq!(options.concurrency, 16);
        assert_eq!(options.connections, 1);
        assert_eq!(options.stop, Stop::Elapsed(Duration::from_secs(10)));
    }

    #[test]
    fn bench_arguments_parse_and_bad_ones_are_refused() {
        let args = bench_args(&[
            "--ops",
            "get:9,set:1",
            "--keys",
            "100",
            "--value-size",
            "512",
            "--concurrency",
            "64",
            "--requests",
            "5000",
            "--connections",
            "4",
            "--json",
        ])
        .unwrap();
        let options = args.options();
        assert_eq!(options.mix.weight(Op::Get), 9);
        assert_eq!(
            (
                options.keys,
                options.value_bytes,
                options.concurrency,
                options.connections
            ),
            (100, 512, 64, 4)
        );
        assert_eq!(options.stop, Stop::Requests(5000));
        assert!(args.json);
        let options = bench_args(&["--duration", "2.5"]).unwrap().options();
        assert_eq!(options.stop, Stop::Elapsed(Duration::from_millis(2500)));
        for bad in [
            &["--ops", "del"][..],
            &["--concurrency", "0"],
            &["--keys", "0"],
            &["--connections", "65"],
            &["--duration", "0"],
            &["--duration", "1", "--requests", "10"],
        ] {
            assert!(bench_args(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn counts_below_one_are_refused_in_words() {
        for (args, why) in [
            (&["--keys", "0"][..], "'0' for '--keys <N>': expected at least 1"),
            (&["--requests", "0"], "'0' for '--requests <N>': expected at least 1"),
            (
                &["--keys", "ten"],
                "'ten' for '--keys <N>': expected a whole number of at least 1",
            ),
            (
                &["--requests", "18446744073709551616"],
                "'18446744073709551616' for '--requests <N>': expected at most 18446744073709551615",
            ),
        ] {
            let e = bench_args(args).unwrap_err();
            assert_eq!(e.kind(), clap::error::ErrorKind::ValueValidation, "{args:?}");
            assert!(e.to_string().contains(why), "{args:?}: {e}");
        }
        assert_eq!(bench_args(&["--keys", "1"]).unwrap().keys, 1);
        assert_eq!(
            bench_args(&["--requests", "18446744073709551615"])
                .unwrap()
                .requests,
            Some(u64::MAX)
        );
    }

    #[test]
    fn home_with_route_primary_is_refused_from_the_arguments() {
        let args = bench_args(&["--route", "primary", "--home", "n2"]).unwrap();
        assert!(matches!(args.routing(), Err(BenchError::Options(_))));
        let args = bench_args(&["--home", "n2"]).unwrap();
        assert_eq!(args.routing().unwrap(), Routing::ReadHomeAt("n2".into()));
    }

    #[test]
    fn global_options_reach_the_bench_command() {
        let cli = Cli::try_parse_args([
            "meridian",
            "bench",
            "--topology",
            "regions/single.toml",
            "--consistency",
            "all",
            "--region",
            "local",
        ])
        .unwrap();
        assert_eq!(
            cli.global.topology.as_deref(),
            Some(std::path::Path::new("regions/single.toml"))
        );
        assert_eq!(
            cli.global.consistency,
            Some(crate::topology::WriteConsistency::All)
        );
        assert_eq!(cli.global.region.as_deref(), Some("local"));
    }

    #[test]
    fn commands_use_redis_benchmark_key_names() {
        let value = Bytes::from(&b"xx"[..]);
        assert_eq!(
            request(Op::Get, 42, &value),
            Command::Get {
                key: "key:000000000042".into()
            }
        );
        assert_eq!(
            request(Op::Incr, 7, &value),
            Command::IncrBy {
                key: "counter:000000000007".into(),
                by: 1
            }
        );
        assert_eq!(
            request(Op::HSet, 3, &value),
            Command::HSet {
                key: "myhash".into(),
                field: "element:000000000003".into(),
                value
            }
        );
    }

    #[test]
    fn random_keys_cover_the_range_evenly() {
        let mut rng = SplitMix64(1);
        let mut counts = [0u32; 10];
        for _ in 0..100_000 {
            counts[rng.below(10) as usize] += 1;
        }
        for (key, n) in counts.iter().enumerate() {
            assert!((9_500..10_500).contains(n), "key {key} drawn {n} times");
        }
    }

    #[test]
    fn the_report_sums_operations_and_sorts_errors() {
        let mut tally = Tally::default();
        for v in 1..=100 {
            tally.per_op[Op::Get.index()].latencies_ns.record(v * 1_000);
            tally.per_op[Op::Set.index()].latencies_ns.record(v * 2_000);
        }
        tally.per_op[Op::Get.index()].misses = 3;
        tally.error(Op::Set, &ClientError::Timeout);
        tally.error(
            Op::Set,
            &ClientError::QuorumNotReached {
                acked: 1,
                needed: 2,
            },
        );
        tally.error(Op::Get, &ClientError::Timeout);
        let mix: Mix = "get,set".parse().unwrap();
        let options = BenchOptions {
            mix: mix.clone(),
            keys: 10,
            value_bytes: 2,
            concurrency: 4,
            connections: 1,
            stop: Stop::Requests(203),
            progress_every: Duration::from_secs(1),
        };
        let topology = crate::topology::Topology::load(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/regions/single.toml"
        ))
        .unwrap();
        let client = ClientOptions::new(topology, "local", "certs");
        let report = report(setup(&client, &options), None, 2.0, &mix, tally);
        assert_eq!(report.setup.write, "one");
        assert_eq!(report.setup.nodes, 1);
        assert_eq!(
            report
                .per_op
                .iter()
                .map(|r| r.op.as_str())
                .collect::<Vec<_>>(),
            ["get", "set"]
        );
        assert_eq!((report.total.ops, report.total.errors), (200, 3));
        assert_eq!(report.total.ops_per_s, 100.0);
        assert_eq!(report.per_op[0].misses, 3);
        // 50 µs lies in the histogram bucket [49.920, 50.175] µs.
        assert_eq!(report.per_op[0].latency.p50_us, 50.175);
        assert_eq!(report.per_op[1].latency.max_us, 200.0);
        assert_eq!(report.errors[0].kind, "timeout");
        assert_eq!(report.errors[0].count, 2);
        assert_eq!(report.errors[1].kind, "quorum not reached");
        let text = report.to_string();
        assert!(text.contains("timeout (first: timed out)"), "{text}");
        let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(json["total"]["ops"], 200);
        assert_eq!(json["per_op"][1]["op"], "set");
    }

    #[test]
    fn home_picks_the_routing_of_the_route_and_primary_refuses_it() {
        assert_eq!(routing("read-home", None).unwrap(), Routing::ReadHome);
        assert_eq!(
            routing("read-home", Some("n2")).unwrap(),
            Routing::ReadHomeAt("n2".into())
        );
        assert_eq!(routing("home", None).unwrap(), Routing::RandomHome);
        assert_eq!(
            routing("home", Some("n2")).unwrap(),
            Routing::Home("n2".into())
        );
        assert_eq!(routing("primary", None).unwrap(), Routing::Primary);
        assert!(matches!(
            routing("primary", Some("n2")),
            Err(BenchError::Options(_))
        ));
    }
}
