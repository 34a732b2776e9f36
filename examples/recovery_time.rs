//! How long a restarted node takes to catch up, over real QUIC on loopback.
//!
//! A region of three nodes (N = 3, W = quorum) runs in this process, each
//! node with its own data directory. `KEYS` counters are written with all
//! three up; one node is then stopped and `KEYS` more are written while it
//! is down. The node is restarted twice over (stopped in between): first
//! with its data directory (it lacks only the keys written while it was
//! down), then with an empty one (it lacks all of them). Each time, the
//! example polls the node's own key count (`Command::Status` sent to that
//! node) and prints how long until it holds every key.
//!
//! `MERIDIAN_RECOVERY_KEYS` sets `KEYS` (default 100,000).
//!
//! `cargo run --release --example recovery_time`

use meridian::client::{Client, ClientOptions};
use meridian::net::{start, ServeOptions, ServerHandle};
use meridian::node::NodeConfig;
use meridian::protocol::{Command, Reply};
use meridian::tls::CertStore;
use meridian::topology::Topology;
use std::net::UdpSocket;
use std::path::Path;
use std::time::{Duration, Instant};

const IDS: [&str; 3] = ["rt-1", "rt-2", "rt-3"];
const VICTIM: &str = "rt-3";
const CONCURRENCY: usize = 64;
const CATCH_UP_MAX: Duration = Duration::from_secs(1_800);

fn topology(dir: &Path) -> anyhow::Result<Topology> {
    let sockets: Vec<UdpSocket> = (0..6)
        .map(|_| UdpSocket::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()?;
    let mut text = String::from(
        "[cluster]\nname = \"recovery\"\nreplication_factor = 3\nwrite_consistency = \"quorum\"\n\n[[region]]\nname = \"r\"\n",
    );
    for (i, id) in IDS.iter().enumerate() {
        text.push_str(&format!(
            "\n[[region.node]]\nid = \"{id}\"\nclient_addr = \"{}\"\npeer_addr = \"{}\"\n",
            sockets[2 * i].local_addr()?,
            sockets[2 * i + 1].local_addr()?
        ));
    }
    drop(sockets);
    std::fs::write(dir.join("topology.toml"), &text)?;
    Ok(Topology::parse(&text, "recovery.toml")?)
}

async fn serve(dir: &Path, topology: &Topology, id: &str) -> anyhow::Result<ServerHandle> {
    start(ServeOptions {
        topology: topology.clone(),
        node_id: id.to_owned(),
        cert_dir: dir.join("certs"),
        node: NodeConfig::default(),
        data_dir: Some(dir.join(format!("data-{id}"))),
        peer_routes: Default::default(),
    })
    .await
}

/// Increments counters `{prefix}{0..keys}` by one, `CONCURRENCY` at a time.
async fn write(client: &Client, prefix: &str, keys: u64) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..CONCURRENCY as u64 {
        let client = client.clone();
        let prefix = prefix.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut i = worker;
            while i < keys {
                let key = format!("{prefix}{i}");
                // Retried until acknowledged: every key must be written.
                while client.counter(key.as_str()).incr(1).await.is_err() {}
                i += CONCURRENCY as u64;
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    Ok(started.elapsed())
}

/// Node `id`'s key count, asked over a new connection (a client keeps
/// failing over a connection to the node's previous life for a while).
async fn keys_on(opts: &ClientOptions, id: &str) -> Option<u64> {
    let client = Client::connect(opts.clone()).await.ok()?;
    match client.execute_on(id, Command::Status).await.ok()?.reply {
        Reply::Status(s) => Some(s.keys),
        _ => None,
    }
}

/// Time from `since` until node `id` holds `want` keys.
async fn catch_up(
    opts: &ClientOptions,
    id: &str,
    want: u64,
    since: Instant,
) -> anyhow::Result<Duration> {
    loop {
        let have = keys_on(opts, id).await.unwrap_or(0);
        if have >= want {
            return Ok(since.elapsed());
        }
        anyhow::ensure!(
            since.elapsed() < CATCH_UP_MAX,
            "{id} holds {have} of {want} keys after {CATCH_UP_MAX:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // RUST_LOG=info shows the nodes' catch-up lines.
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_default_env() {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    let keys: u64 = std::env::var("MERIDIAN_RECOVERY_KEYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let tmp = tempfile::TempDir::new()?;
    let dir = tmp.path();
    CertStore::new(dir.join("certs")).ensure_cluster(&IDS, &["cli"])?;
    let topology = topology(dir)?;
    let mut nodes = Vec::new();
    for id in IDS {
        nodes.push(serve(dir, &topology, id).await?);
    }
    let mut opts = ClientOptions::new(topology.clone(), "r", dir.join("certs"));
    opts.request_timeout = Duration::from_secs(3);
    let client = Client::connect(opts.clone()).await?;
    while client.ping().await.is_err() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let took = write(&client, "before-", keys).await?;
    println!("{keys} keys written with all three nodes up in {took:.1?}");
    catch_up(&opts, VICTIM, keys, Instant::now()).await?;
    let victim = nodes.pop().expect("three nodes");
    victim.shutdown().await;
    let took = write(&client, "during-", keys).await?;
    println!("{keys} keys written while {VICTIM} was down in {took:.1?}");

    let restarted = Instant::now();
    let victim = serve(dir, &topology, VICTIM).await?;
    let took = catch_up(&opts, VICTIM, 2 * keys, restarted).await?;
    println!(
        "restarted with its data directory: holds all {} keys after {took:.1?}",
        2 * keys
    );
    victim.shutdown().await;

    std::fs::remove_dir_all(dir.join(format!("data-{VICTIM}")))?;
    let restarted = Instant::now();
    let victim = serve(dir, &topology, VICTIM).await?;
    let took = catch_up(&opts, VICTIM, 2 * keys, restarted).await?;
    println!(
        "restarted with an empty data directory: holds all {} keys after {took:.1?}",
        2 * keys
    );
    victim.shutdown().await;
    for node in nodes {
        node.shutdown().await;
    }
    Ok(())
}
