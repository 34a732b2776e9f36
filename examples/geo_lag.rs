//! Replication lag between two regions of a running lab, as a reader in the
//! remote region sees it.
//!
//! Against `meridian cluster up` (run from the directory that holds its
//! `.meridian`):
//!
//! ```text
//! cargo run --release --example geo_lag -- [--from us-east] [--to eu-west]
//!     [--seconds 30] [--warmup-seconds 2] [--probes-per-s 50] [--load-per-s 1000]
//!     [--state-dir .meridian]
//! ```
//!
//! What it measures: a client in `--from` writes a probe key (a new key per
//! probe, `--probes-per-s` of them per second) while a background load of
//! `--load-per-s` other writes per second runs in the same region. For each
//! probe, a task polls the key in `--to` (read consistency one, through the
//! SDK's routing to the key's first replica there) about every millisecond
//! until it is visible. The lag of a probe is the time from just before its
//! write is sent to the first read in `--to` that returns it, so it includes
//! the write itself (about a local round trip), the batching delay of
//! replication, the emulated one-way latency and the spread to the replica
//! read, plus up to one polling interval (about 1 ms). It also samples every
//! second the `lag_ms_last` that the `--from` nodes report in their status
//! (queueing to acknowledgement of the last acknowledged delta, a full round
//! trip), for comparison. Probes and samples of the first
//! `--warmup-seconds` (connections between regions being opened) are left
//! out of the figures.

use meridian::cli::cluster::ClusterFile;
use meridian::cli::status;
use meridian::client::{Client, ClientOptions, Routing};
use meridian::topology::Topology;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Probes whose write or visibility takes longer than this count as lost.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);
/// Background writes in flight at most.
const LOAD_IN_FLIGHT_MAX: usize = 256;

struct Options {
    state_dir: String,
    from: String,
    to: String,
    seconds: u64,
    warmup_seconds: u64,
    probes_per_s: u64,
    load_per_s: u64,
}

fn options() -> anyhow::Result<Options> {
    let mut o = Options {
        state_dir: ".meridian".into(),
        from: "us-east".into(),
        to: "eu-west".into(),
        seconds: 30,
        warmup_seconds: 2,
        probes_per_s: 50,
        load_per_s: 1_000,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let [flag, value] = pair else {
            anyhow::bail!("expected --flag value pairs, got {args:?}");
        };
        match flag.as_str() {
            "--state-dir" => o.state_dir = value.clone(),
            "--from" => o.from = value.clone(),
            "--to" => o.to = value.clone(),
            "--seconds" => o.seconds = value.parse()?,
            "--warmup-seconds" => o.warmup_seconds = value.parse()?,
            "--probes-per-s" => o.probes_per_s = value.parse()?,
            "--load-per-s" => o.load_per_s = value.parse()?,
            other => anyhow::bail!("unknown option {other}"),
        }
    }
    Ok(o)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn summary(name: &str, mut values: Vec<f64>) {
    values.sort_by(f64::total_cmp);
    println!(
        "{name}: n={} min={:.1} p50={:.1} p90={:.1} p99={:.1} max={:.1} ms",
        values.len(),
        values.first().copied().unwrap_or(f64::NAN),
        percentile(&values, 50.0),
        percentile(&values, 90.0),
        percentile(&values, 99.0),
        values.last().copied().unwrap_or(f64::NAN),
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let o = options()?;
    let file = ClusterFile::load(o.state_dir.as_ref())?;
    let topology = Topology::load(&file.topology)?;
    let rtt = topology.link(&o.from, &o.to).map(|l| l.rtt_ms);
    let connect = |region: &str| {
        let mut options = ClientOptions::new(topology.clone(), region, file.cert_dir.clone());
        options.routing = Routing::Primary;
        Client::connect(options)
    };
    let writer = connect(&o.from).await?;
    let reader = connect(&o.to).await?;
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis()
        % 1_000_000;
    println!(
        "geo_lag: {} -> {} (emulated RTT {} ms), {} s, {} probes/s, background load {} writes/s",
        o.from,
        o.to,
        rtt.map_or_else(|| "?".into(), |r| r.to_string()),
        o.seconds,
        o.probes_per_s,
        o.load_per_s
    );

    let started = Instant::now();
    let measure_from = started + Duration::from_secs(o.warmup_seconds);
    let stop_at = measure_from + Duration::from_secs(o.seconds);
    let load_errors = Arc::new(Mutex::new(0u64));
    let load = (o.load_per_s > 0).then(|| {
        let (writer, errors) = (writer.clone(), load_errors.clone());
        let every = Duration::from_secs_f64(1.0 / o.load_per_s as f64);
        tokio::spawn(async move {
            let slots = Arc::new(tokio::sync::Semaphore::new(LOAD_IN_FLIGHT_MAX));
            let mut tick = tokio::time::interval(every);
            let mut i = 0u64;
            while Instant::now() < stop_at {
                tick.tick().await;
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    break;
                };
                let (writer, errors) = (writer.clone(), errors.clone());
                let key = format!("lagload:{run}:{}", i % 10_000);
                i += 1;
                tokio::spawn(async move {
                    if writer
                        .register(key.as_str())
                        .set(vec![b'x'; 64])
                        .await
                        .is_err()
                    {
                        *errors.lock().unwrap() += 1;
                    }
                    drop(slot);
                });
            }
            i
        })
    });

    // Status samples of lag_ms_last from the writing region's nodes.
    let status_lags = {
        let (topology, cert_dir, from, to) = (
            topology.clone(),
            file.cert_dir.clone(),
            o.from.clone(),
            o.to.clone(),
        );
        tokio::spawn(async move {
            let mut samples = Vec::new();
            while Instant::now() < stop_at {
                tokio::time::sleep(Duration::from_secs(1)).await;
                if Instant::now() < measure_from {
                    continue;
                }
                let Ok(report) = status::gather(
                    &topology,
                    Some(&from),
                    cert_dir.clone(),
                    "cli",
                    Duration::from_secs(1),
                )
                .await
                else {
                    continue;
                };
                for node in report.regions.iter().flat_map(|r| &r.nodes) {
                    for link in node.replication.iter().filter(|l| l.region == to) {
                        if let Some(ms) = link.lag_ms_last.filter(|ms| *ms > 0) {
                            samples.push(ms as f64);
                        }
                    }
                }
            }
            samples
        })
    };

    let mut probes = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / o.probes_per_s as f64));
    let mut seq = 0u64;
    while Instant::now() < stop_at {
        tick.tick().await;
        let (writer, reader) = (writer.clone(), reader.clone());
        let key = format!("lagprobe:{run}:{seq}");
        seq += 1;
        let warmup = Instant::now() < measure_from;
        probes.push(tokio::spawn(async move {
            let value = format!("{seq}");
            let sent = Instant::now();
            writer
                .register(key.as_str())
                .set(value.as_str())
                .await
                .ok()?;
            let acked_ms = sent.elapsed().as_secs_f64() * 1e3;
            let register = reader.register(key.as_str());
            while sent.elapsed() < PROBE_TIMEOUT {
                if let Ok(Some(seen)) = register.get().await {
                    if &*seen == value.as_bytes() {
                        let at_s = sent.duration_since(started).as_secs_f64();
                        let visible_ms = sent.elapsed().as_secs_f64() * 1e3;
                        return Some((warmup, at_s, acked_ms, visible_ms));
                    }
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            None
        }));
    }
    let mut acked = Vec::new();
    let mut visible = Vec::new();
    let (mut lost, mut warmups) = (0, 0);
    // Probes slower than twice the round trip, by when they were sent.
    let slow_ms = 2.0 * f64::from(rtt.unwrap_or(100));
    let mut slow = Vec::new();
    for probe in probes {
        match probe.await? {
            Some((true, ..)) => warmups += 1,
            Some((false, at_s, a, v)) => {
                acked.push(a);
                visible.push(v);
                if v > slow_ms {
                    slow.push(format!("{at_s:.2}s:{v:.0}ms(ack {a:.0}ms)"));
                }
            }
            None => lost += 1,
        }
    }
    let load_writes = match load {
        Some(task) => task.await?,
        None => 0,
    };
    let status_samples = status_lags.await?;
    println!(
        "probes: {} sent, {} during warm-up (left out), {} lost; background writes: {} sent, {} failed",
        seq,
        warmups,
        lost,
        load_writes,
        load_errors.lock().unwrap()
    );
    println!(
        "probes visible after more than {slow_ms:.0} ms, by send time: {}",
        if slow.is_empty() {
            "none".to_owned()
        } else {
            slow.join(" ")
        }
    );
    summary("probe write acknowledged in the source region", acked);
    summary("probe visible in the remote region (from send)", visible);
    summary(
        "status lag_ms_last of the source nodes (queue -> ack, 1/s per node)",
        status_samples,
    );
    Ok(())
}
