//! Convergence time after a partition of a running lab during which both
//! sides kept writing.
//!
//! Against `meridian cluster up` (run from the directory that holds its
//! `.meridian`):
//!
//! ```text
//! cargo run --release --example geo_convergence -- [--cut us-east] [--other eu-west]
//!     [--updates 100000] [--keys 10000] [--in-flight 64] [--samples 300]
//!     [--timeout-s 1200] [--state-dir .meridian]
//! ```
//!
//! What it does: cuts `--cut` off from every other region (as `meridian
//! cluster partition` does), then makes `--updates` updates in `--cut` and
//! as many in `--other`, at once, `--in-flight` at a time per side, over
//! `--keys` keys shared by both sides: a third counters (`incrby 1`), a
//! third sets (`sadd` of a member named after the side and the round), a
//! third maps (`hset` of a field named after the side). Then it heals (as
//! `meridian cluster heal` does) and measures, from the moment the control
//! file is written:
//!
//! - until the status of every node of both regions shows no backlog
//!   towards the other region (polled every 100 ms), and
//! - until `--samples` keys, chosen across the three types, read the same in
//!   both regions and hold the values every update implies (every counter
//!   the sum of both sides' increments, every set and map both sides'
//!   members and fields).
//!
//! Both times include up to 100 ms for the relays to re-read the control
//! file.

use meridian::cli::cluster::{self, ClusterFile};
use meridian::cli::status;
use meridian::client::{Client, ClientOptions, FieldValue};
use meridian::topology::Topology;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often progress is printed while backlogs drain.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

struct Options {
    state_dir: PathBuf,
    cut: String,
    other: String,
    updates: u64,
    keys: u64,
    in_flight: u64,
    samples: u64,
    timeout: Duration,
}

fn options() -> anyhow::Result<Options> {
    let mut o = Options {
        state_dir: ".meridian".into(),
        cut: "us-east".into(),
        other: "eu-west".into(),
        updates: 100_000,
        keys: 10_000,
        in_flight: 64,
        samples: 300,
        timeout: Duration::from_secs(1_200),
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let [flag, value] = pair else {
            anyhow::bail!("expected --flag value pairs, got {args:?}");
        };
        match flag.as_str() {
            "--state-dir" => o.state_dir = value.into(),
            "--cut" => o.cut = value.clone(),
            "--other" => o.other = value.clone(),
            "--updates" => o.updates = value.parse()?,
            "--keys" => o.keys = value.parse()?,
            "--in-flight" => o.in_flight = value.parse()?,
            "--samples" => o.samples = value.parse()?,
            "--timeout-s" => o.timeout = Duration::from_secs(value.parse()?),
            other => anyhow::bail!("unknown option {other}"),
        }
    }
    anyhow::ensure!(
        o.keys >= 3 && o.updates >= o.keys,
        "need updates >= keys >= 3"
    );
    Ok(o)
}

/// The key of index `k`: counters, sets and maps in turn.
fn key(run: u128, k: u64) -> String {
    let kind = ["c", "s", "m"][(k % 3) as usize];
    format!("conv:{run}:{kind}{k}")
}

/// Update `i` of `side`; the error, if it failed.
async fn update(client: &Client, run: u128, keys: u64, side: &str, i: u64) -> Option<String> {
    let k = i % keys;
    let round = i / keys;
    let name = key(run, k);
    let done = match k % 3 {
        0 => client.counter(name.as_str()).incr(1).await.map(drop),
        1 => client
            .set(name.as_str())
            .add(format!("{side}-{round}").as_str())
            .await
            .map(drop),
        _ => client
            .map(name.as_str())
            .put(side, format!("{round}").as_str())
            .await
            .map(drop),
    };
    done.err().map(|e| e.to_string())
}

/// Makes `updates` updates through `client`, `in_flight` at a time; how
/// many there were, the errors of those that failed (counted by message)
/// and how long it took.
async fn write_side(
    client: Client,
    run: u128,
    o: &Options,
    side: String,
) -> (u64, BTreeMap<String, u64>, Duration) {
    let next = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(Mutex::new(BTreeMap::new()));
    let start = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..o.in_flight {
        let (client, next, failed, side) =
            (client.clone(), next.clone(), failed.clone(), side.clone());
        let (updates, keys) = (o.updates, o.keys);
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= updates {
                    break;
                }
                if let Some(e) = update(&client, run, keys, &side, i).await {
                    *failed.lock().unwrap().entry(e).or_insert(0) += 1;
                }
            }
        }));
    }
    for w in workers {
        let _ = w.await;
    }
    let failed = failed.lock().unwrap().clone();
    (o.updates, failed, start.elapsed())
}

/// What key `k` must hold once both sides' updates are merged.
fn expected(o: &Options, k: u64, sides: [&str; 2]) -> String {
    // Updates i with i % keys == k: rounds 0..per_key.
    let per_key = o.updates / o.keys + u64::from(k < o.updates % o.keys);
    match k % 3 {
        0 => format!("counter {}", 2 * per_key),
        1 => {
            let mut members: Vec<String> = sides
                .iter()
                .flat_map(|s| (0..per_key).map(move |r| format!("{s}-{r}")))
                .collect();
            members.sort();
            format!("set {members:?}")
        }
        _ => {
            let mut fields: Vec<String> = sides
                .iter()
                .map(|s| format!("{s}={}", per_key - 1))
                .collect();
            fields.sort();
            format!("map {fields:?}")
        }
    }
}

/// What `client`'s region reads at key `k`, in the form of [`expected`].
async fn read(client: &Client, run: u128, k: u64) -> String {
    let name = key(run, k);
    let read = match k % 3 {
        0 => client
            .counter(name.as_str())
            .get()
            .await
            .map(|n| format!("counter {n}")),
        1 => client.set(name.as_str()).members().await.map(|m| {
            let members: Vec<String> = m
                .iter()
                .map(|m| String::from_utf8_lossy(m).into_owned())
                .collect();
            format!("set {members:?}")
        }),
        _ => client.map(name.as_str()).get_all().await.map(|fields| {
            let fields: Vec<String> = fields
                .iter()
                .map(|(f, v)| match v {
                    FieldValue::Register(v) => format!(
                        "{}={}",
                        String::from_utf8_lossy(f),
                        String::from_utf8_lossy(v)
                    ),
                    other => format!("{}={other:?}", String::from_utf8_lossy(f)),
                })
                .collect();
            format!("map {fields:?}")
        }),
    };
    read.unwrap_or_else(|e| format!("error {e}"))
}

/// The backlog of `from`'s nodes towards `to`, summed; `None` if a node of
/// `from` did not answer.
fn backlog(report: &status::ClusterReport, from: &str, to: &str) -> Option<u64> {
    let region = report.regions.iter().find(|r| r.name == from)?;
    if region.nodes_up != region.nodes.len() {
        return None;
    }
    Some(
        region
            .replication
            .iter()
            .filter(|l| l.region == to)
            .map(|l| l.backlog_deltas)
            .sum(),
    )
}

/// One line of progress: backlogs both ways, hints pending, drops.
fn progress(r: &status::ClusterReport, healed: Instant, o: &Options) {
    let hints: u64 = r
        .regions
        .iter()
        .flat_map(|r| &r.nodes)
        .filter_map(|n| n.hints_pending)
        .sum();
    let dropped: u64 = r
        .regions
        .iter()
        .flat_map(|r| &r.replication)
        .map(|l| l.dropped)
        .sum();
    println!(
        "    {:>6.1} s: backlog {} -> {} {:?}, {} -> {} {:?}; hints pending {hints}; dropped {dropped}",
        healed.elapsed().as_secs_f64(),
        o.cut,
        o.other,
        backlog(r, &o.cut, &o.other),
        o.other,
        o.cut,
        backlog(r, &o.other, &o.cut),
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let o = options()?;
    let file = ClusterFile::load(&o.state_dir)?;
    let topology = Topology::load(&file.topology)?;
    let connect = |region: &str| {
        Client::connect(ClientOptions::new(
            topology.clone(),
            region,
            file.cert_dir.clone(),
        ))
    };
    let (a, b) = (connect(&o.cut).await?, connect(&o.other).await?);
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis()
        % 1_000_000;
    let report = || {
        status::gather(
            &topology,
            None,
            file.cert_dir.clone(),
            "cli",
            Duration::from_secs(2),
        )
    };

    anyhow::ensure!(
        !cluster::links(&o.state_dir)?.iter().any(|l| l.cut),
        "some links are cut; run `meridian cluster heal` first"
    );
    cluster::partition(&o.state_dir, &o.cut, None)?;
    let cut_at = Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;
    println!(
        "geo_convergence: {} cut off; {} updates on each side ({} and {}) over {} keys, {} in flight per side",
        o.cut, o.updates, o.cut, o.other, o.keys, o.in_flight
    );
    let (ra, rb) = tokio::join!(
        write_side(a.clone(), run, &o, o.cut.clone()),
        write_side(b.clone(), run, &o, o.other.clone())
    );
    for (side, (n, failed, took)) in [(&o.cut, ra), (&o.other, rb)] {
        println!(
            "  {side}: {n} updates, {} failed {failed:?}, {:.1} s ({:.0}/s)",
            failed.values().sum::<u64>(),
            took.as_secs_f64(),
            n as f64 / took.as_secs_f64()
        );
    }
    let before = report().await?;
    println!(
        "  before heal (partition lasted {:.1} s): backlog {} -> {}: {:?}, {} -> {}: {:?}; dropped from full buffers: {}",
        cut_at.elapsed().as_secs_f64(),
        o.cut,
        o.other,
        backlog(&before, &o.cut, &o.other),
        o.other,
        o.cut,
        backlog(&before, &o.other, &o.cut),
        before
            .regions
            .iter()
            .flat_map(|r| &r.replication)
            .map(|l| l.dropped)
            .sum::<u64>()
    );

    cluster::heal(&o.state_dir)?;
    let healed = Instant::now();
    let deadline = healed + o.timeout;
    let mut progress_at = healed;
    let drained = loop {
        if let Ok(r) = report().await {
            if backlog(&r, &o.cut, &o.other) == Some(0) && backlog(&r, &o.other, &o.cut) == Some(0)
            {
                break healed.elapsed();
            }
            if progress_at.elapsed() >= PROGRESS_EVERY {
                progress_at = Instant::now();
                progress(&r, healed, &o);
            }
        }
        anyhow::ensure!(Instant::now() < deadline, "backlogs not drained in time");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!(
        "  backlogs zero in both directions {:.2} s after heal",
        drained.as_secs_f64()
    );

    let step = (o.keys / o.samples.max(1)).max(1);
    let sampled: Vec<u64> = (0..o.keys)
        .step_by(step as usize)
        .take(o.samples as usize)
        .collect();
    let sides = [o.cut.as_str(), o.other.as_str()];
    let mut pending = sampled.clone();
    let equal = loop {
        let mut still = Vec::new();
        for &k in &pending {
            let want = expected(&o, k, sides);
            if read(&a, run, k).await != want || read(&b, run, k).await != want {
                still.push(k);
            }
        }
        pending = still;
        if pending.is_empty() {
            break healed.elapsed();
        }
        if Instant::now() >= deadline {
            let k = pending[0];
            anyhow::bail!(
                "{} sampled keys still differ; key {}: {} reads {}, {} reads {}, expected {}",
                pending.len(),
                key(run, k),
                o.cut,
                read(&a, run, k).await,
                o.other,
                read(&b, run, k).await,
                expected(&o, k, sides)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!(
        "  {} sampled keys equal in both regions, with every update, {:.2} s after heal",
        sampled.len(),
        equal.as_secs_f64()
    );
    let all = loop {
        if let Ok(r) = report().await {
            let total: u64 = r
                .regions
                .iter()
                .flat_map(|r| &r.replication)
                .map(|l| l.backlog_deltas)
                .sum();
            if total == 0 && r.nodes_up == r.nodes_total {
                break healed.elapsed();
            }
        }
        anyhow::ensure!(Instant::now() < deadline, "backlogs not drained in time");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!(
        "  every backlog of every region zero {:.2} s after heal",
        all.as_secs_f64()
    );
    Ok(())
}
