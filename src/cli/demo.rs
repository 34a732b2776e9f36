//! `meridian demo`: geo-replication shown to a newcomer, against the
//! cluster `meridian cluster up` runs.
//!
//! It cuts the first region of the topology off from the others, writes
//! conflicting updates on both sides of the cut (a counter incremented in
//! both, a set member removed on one side and re-added on the other, a
//! register set in both), shows that the regions now disagree, heals, waits
//! until every region reads the same values, and prints each converged value
//! with the rule that produced it. Its keys are new on every run
//! (`demo<N>:visits`...), so it can be run again; it leaves the links as it
//! found them (healed), also when it fails or is interrupted.

use super::cluster::{self, ClusterError};
use crate::client::{Bytes, Client, ClientOptions, Command, Routing};
use crate::topology::Topology;
use std::future::Future;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How long the demo waits for replication before it gives up.
pub const DEMO_WAIT_MS: u64 = 30_000;
/// How often it reads while it waits.
const POLL_MS: u64 = 20;

/// What the demo needs: the running cluster's state directory, its
/// topology and the client certificate.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// The state directory of the running cluster.
    pub state_dir: PathBuf,
    /// Its topology (two regions at least).
    pub topology: Topology,
    /// The directory with the cluster CA and the client certificate.
    pub cert_dir: PathBuf,
    /// The client certificate's name.
    pub client_name: String,
}

impl DemoOptions {
    /// The cluster running in `--state-dir`, with the `--client`
    /// certificate (`cli` by default).
    pub fn for_cli(global: &super::args::GlobalArgs) -> anyhow::Result<DemoOptions> {
        let file = cluster::ClusterFile::load(&global.state_dir)?;
        let topology = Topology::load(&file.topology)?;
        Ok(DemoOptions {
            state_dir: global.state_dir.clone(),
            topology,
            cert_dir: file.cert_dir,
            client_name: global.client_name().to_owned(),
        })
    }
}

/// Why the demo stopped.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The cluster has fewer than two regions.
    #[error("the demo needs a cluster of at least two regions; {0} has one")]
    OneRegion(String),
    /// Links were cut before the demo started.
    #[error("some links are already cut; run `meridian cluster heal` first")]
    AlreadyCut,
    /// Partitioning or healing failed.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// A request failed.
    #[error("{what}: {source}")]
    Client {
        /// What the demo was doing.
        what: String,
        /// Why it failed.
        source: crate::client::ClientError,
    },
    /// Replication did not happen in time.
    #[error("{0} did not happen within {DEMO_WAIT_MS} ms; see `meridian status`")]
    NotInTime(String),
    /// The demo was interrupted (the links were healed).
    #[error("interrupted; the links were healed")]
    Interrupted,
    /// Output could not be written.
    #[error("cannot write: {0}")]
    Output(#[from] std::io::Error),
}

/// The demo's three keys, as each region reads them.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Values {
    visits: i64,
    tags: Vec<String>,
    motd: Option<String>,
}

/// Runs the demo, writing what happens to `out`. If `interrupt` completes
/// first, the links are healed and the demo stops.
pub async fn run(
    options: DemoOptions,
    out: &mut dyn Write,
    interrupt: impl Future<Output = ()>,
) -> Result<(), DemoError> {
    let state_dir = options.state_dir.clone();
    let outcome = tokio::select! {
        outcome = steps(options, out) => outcome,
        () = interrupt => Err(DemoError::Interrupted),
    };
    if outcome.is_err() {
        // Leave the lab as the demo found it.
        let _ = cluster::heal(&state_dir);
    }
    outcome
}

async fn steps(options: DemoOptions, out: &mut dyn Write) -> Result<(), DemoError> {
    let topology = &options.topology;
    let regions: Vec<String> = topology.regions().iter().map(|r| r.name.clone()).collect();
    let (Some(cut_off), Some(other)) = (regions.first(), regions.get(1)) else {
        return Err(DemoError::OneRegion(topology.cluster().to_owned()));
    };
    if cluster::links(&options.state_dir)?.iter().any(|l| l.cut) {
        return Err(DemoError::AlreadyCut);
    }
    let mut clients = Vec::new();
    for region in &regions {
        let mut opts = ClientOptions::new(topology.clone(), region, &options.cert_dir);
        opts.client_name = options.client_name.clone();
        // Each step reads what the one before wrote: by key, from the
        // replica that coordinated it.
        opts.routing = Routing::Primary;
        let client = Client::connect(opts)
            .await
            .map_err(|source| DemoError::Client {
                what: format!("connecting to {region}"),
                source,
            })?;
        clients.push(client);
    }
    let (a, b) = (&clients[0], &clients[1]);
    let run_id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() % 100_000);
    let keys = Keys::new(&format!("demo{run_id}"));

    line(
        out,
        &format!(
            "Meridian geo-replication demo on cluster \"{}\" (regions: {}).",
            topology.cluster(),
            regions.join(", ")
        ),
    )?;
    line(
        out,
        &format!(
            "Keys: {}, {}, {}\n",
            keys.visits_name(),
            keys.tags_name(),
            keys.motd_name()
        ),
    )?;

    // 1. A common starting point, replicated everywhere.
    line(out, &format!("1. Before any cut, in {cut_off}:"))?;
    call(a, keys.incr(10), "incrby").await?;
    call(a, keys.sadd(&["apple", "banana"]), "sadd").await?;
    call(a, keys.set("hello"), "set").await?;
    line(out, &format!("     incrby {} 10", keys.visits_name()))?;
    line(out, &format!("     sadd {} apple banana", keys.tags_name()))?;
    line(out, &format!("     set {} hello", keys.motd_name()))?;
    let start = Values {
        visits: 10,
        tags: vec!["apple".into(), "banana".into()],
        motd: Some("hello".into()),
    };
    let waited = wait_until("replication to every region", || async {
        for client in &clients {
            if read(client, &keys).await? != start {
                return Ok(false);
            }
        }
        Ok(true)
    })
    .await?;
    line(
        out,
        &format!(
            "   every region reads them after {} ms.\n",
            waited.as_millis()
        ),
    )?;

    // 2. The cut.
    let links = cluster::partition(&options.state_dir, cut_off, None)?;
    line(
        out,
        &format!(
            "2. meridian cluster partition {cut_off}   (cut {cut_off} off from every other region)"
        ),
    )?;
    let text = cluster::links_text(&links);
    for l in text.lines().skip(1) {
        line(out, &format!("   {l}"))?;
    }
    // The relays read the control file every 100 ms.
    tokio::time::sleep(Duration::from_millis(3 * crate::wan::CONTROL_POLL_MS)).await;

    // 3. Conflicting writes on both sides; none fails.
    line(out, "\n3. Both sides keep accepting writes:")?;
    let visits_a = counter_value(call(a, keys.incr(5), "incrby").await?);
    line(
        out,
        &format!(
            "     {cut_off:<10} incrby {} 5   -> {visits_a}",
            keys.visits_name()
        ),
    )?;
    let visits_b = counter_value(call(b, keys.incr(3), "incrby").await?);
    line(
        out,
        &format!(
            "     {other:<10} incrby {} 3   -> {visits_b}",
            keys.visits_name()
        ),
    )?;
    call(a, keys.srem(&["apple", "banana"]), "srem").await?;
    line(
        out,
        &format!("     {cut_off:<10} srem {} apple banana", keys.tags_name()),
    )?;
    call(b, keys.sadd(&["apple", "cherry"]), "sadd").await?;
    line(
        out,
        &format!(
            "     {other:<10} sadd {} apple cherry   (apple again, not knowing it was removed)",
            keys.tags_name()
        ),
    )?;
    let motd_a = format!("written in {cut_off}");
    let motd_b = format!("written in {other}");
    call(a, keys.set(&motd_a), "set").await?;
    line(
        out,
        &format!("     {cut_off:<10} set {} \"{motd_a}\"", keys.motd_name()),
    )?;
    // A moment later on the other side, so its clock reads later.
    tokio::time::sleep(Duration::from_millis(50)).await;
    call(b, keys.set(&motd_b), "set").await?;
    line(
        out,
        &format!(
            "     {other:<10} set {} \"{motd_b}\"   (50 ms later)",
            keys.motd_name()
        ),
    )?;

    // 4. The regions disagree.
    tokio::time::sleep(Duration::from_millis(500)).await;
    line(out, "\n4. Each region now reads (0.5 s later):")?;
    let mut seen = Vec::new();
    for (region, client) in regions.iter().zip(&clients) {
        seen.push((
            region.clone(),
            read(client, &keys)
                .await
                .map_err(|source| DemoError::Client {
                    what: format!("reading in {region}"),
                    source,
                })?,
        ));
    }
    show(out, &keys, &seen)?;

    // 5. Heal and converge.
    cluster::heal(&options.state_dir)?;
    line(
        out,
        "\n5. meridian cluster heal   (every link up again); waiting until all regions agree...",
    )?;
    let converged = wait_until("convergence after the heal", || async {
        let first = read(&clients[0], &keys).await?;
        for client in &clients[1..] {
            if read(client, &keys).await? != first {
                return Ok(false);
            }
        }
        Ok(first.visits == 18)
    })
    .await?;
    let end = read(a, &keys).await.map_err(|source| DemoError::Client {
        what: "reading the converged values".into(),
        source,
    })?;
    line(
        out,
        &format!(
            "   converged {} ms after the heal.\n",
            converged.as_millis()
        ),
    )?;

    // 6. What won, and why.
    line(out, "6. Every region now reads the same values:")?;
    let rows = [
        (
            keys.visits_name(),
            end.visits.to_string(),
            "counter: every increment counts, from both sides (10 + 5 + 3)".to_owned(),
        ),
        (
            keys.tags_name(),
            end.tags.join(" "),
            format!(
                "set: an add wins over a concurrent remove (apple, re-added in {other}); \
                 banana's remove met no add"
            ),
        ),
        (
            keys.motd_name(),
            end.motd
                .as_deref()
                .map_or_else(|| "(nil)".to_owned(), |m| format!("\"{m}\"")),
            "register: the last writer wins, by hybrid logical clock (the later write)".to_owned(),
        ),
    ];
    let width_key = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    for (key, value, rule) in rows {
        line(out, &format!("     {key:<width_key$}  {value}"))?;
        line(out, &format!("       {rule}"))?;
    }
    Ok(())
}

/// The demo's keys.
struct Keys {
    prefix: String,
}

impl Keys {
    fn new(prefix: &str) -> Keys {
        Keys {
            prefix: prefix.to_owned(),
        }
    }
    fn visits_name(&self) -> String {
        format!("{}:visits", self.prefix)
    }
    fn tags_name(&self) -> String {
        format!("{}:tags", self.prefix)
    }
    fn motd_name(&self) -> String {
        format!("{}:motd", self.prefix)
    }
    fn key(name: String) -> Bytes {
        name.into_bytes().into()
    }
    fn incr(&self, by: i64) -> Command {
        Command::IncrBy {
            key: Self::key(self.visits_name()),
            by,
        }
    }
    fn sadd(&self, members: &[&str]) -> Command {
        Command::SAdd {
            key: Self::key(self.tags_name()),
            members: members
                .iter()
                .map(|m| Bytes::from(m.as_bytes().to_vec()))
                .collect(),
        }
    }
    fn srem(&self, members: &[&str]) -> Command {
        Command::SRem {
            key: Self::key(self.tags_name()),
            members: members
                .iter()
                .map(|m| Bytes::from(m.as_bytes().to_vec()))
                .collect(),
        }
    }
    fn set(&self, value: &str) -> Command {
        Command::Set {
            key: Self::key(self.motd_name()),
            value: value.as_bytes().to_vec().into(),
            ttl_ms: None,
        }
    }
}

async fn call(
    client: &Client,
    command: Command,
    what: &str,
) -> Result<crate::client::Reply, DemoError> {
    client
        .execute(command)
        .await
        .map(|answer| answer.reply)
        .map_err(|source| DemoError::Client {
            what: format!("{what} in {}", client.region()),
            source,
        })
}

fn counter_value(reply: crate::client::Reply) -> String {
    match reply {
        crate::client::Reply::Int(n) => n.to_string(),
        other => format!("{other:?}"),
    }
}

/// The three keys as `client`'s region reads them.
async fn read(client: &Client, keys: &Keys) -> Result<Values, crate::client::ClientError> {
    let visits = client.counter(keys.visits_name().as_str()).get().await?;
    let tags = client
        .set(keys.tags_name().as_str())
        .members()
        .await?
        .iter()
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .collect();
    let motd = client
        .register(keys.motd_name().as_str())
        .get()
        .await?
        .map(|m| String::from_utf8_lossy(&m).into_owned());
    Ok(Values { visits, tags, motd })
}

/// Polls `done` until it says yes; how long that took.
async fn wait_until<F, Fut>(what: &str, mut done: F) -> Result<Duration, DemoError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool, crate::client::ClientError>>,
{
    let start = Instant::now();
    let deadline = start + Duration::from_millis(DEMO_WAIT_MS);
    loop {
        // A failed read while waiting is retried like a stale one.
        if let Ok(true) = done().await {
            return Ok(start.elapsed());
        }
        if Instant::now() >= deadline {
            return Err(DemoError::NotInTime(what.to_owned()));
        }
        tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
    }
}

/// A table: one row per key, one column per region.
fn show(out: &mut dyn Write, keys: &Keys, seen: &[(String, Values)]) -> Result<(), DemoError> {
    let cells = |v: &Values| {
        [
            v.visits.to_string(),
            if v.tags.is_empty() {
                "(empty)".to_owned()
            } else {
                v.tags.join(" ")
            },
            v.motd
                .as_deref()
                .map_or_else(|| "(nil)".to_owned(), |m| format!("\"{m}\"")),
        ]
    };
    let names = [keys.visits_name(), keys.tags_name(), keys.motd_name()];
    let width_key = names.iter().map(String::len).max().unwrap_or(0);
    let columns: Vec<(String, [String; 3])> = seen
        .iter()
        .map(|(region, v)| (region.clone(), cells(v)))
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .map(|(region, c)| {
            c.iter()
                .map(String::len)
                .chain([region.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut header = format!("     {:<width_key$}", "");
    for ((region, _), w) in columns.iter().zip(&widths) {
        header.push_str(&format!("  {region:<w$}"));
    }
    line(out, header.trim_end())?;
    for (i, name) in names.iter().enumerate() {
        let mut row = format!("     {name:<width_key$}");
        for ((_, c), w) in columns.iter().zip(&widths) {
            row.push_str(&format!("  {:<w$}", c[i]));
        }
        line(out, row.trim_end())?;
    }
    Ok(())
}

fn line(out: &mut dyn Write, text: &str) -> Result<(), DemoError> {
    writeln!(out, "{text}")?;
    out.flush()?;
    Ok(())
}
