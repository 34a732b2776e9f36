//! Time and bytes to rebalance when a 4th node joins a region of three
//! (N = 3) holding KEYS keys, against the ideal; in-process nodes over real
//! QUIC on loopback, driven the way `meridian cluster add-node` drives a
//! lab (`ReloadTopology` to every node, progress from `Status`).
//!
//! ```text
//! cargo run --release --example rebalance -- [KEYS] [VALUE_BYTES] [DIGEST_INTERVAL_MS]
//! ```
//!
//! DIGEST_INTERVAL_MS (default: `NodeConfig`'s, 5 s) spaces the digest
//! comparisons, each a full scan of a node's keys: at a million keys per
//! node they dominate the loading time.
//!
//! Loads KEYS registers (default 1,000,000) of VALUE_BYTES bytes (default
//! 64) at W = quorum, starts the 4th node (joining), rewrites the topology
//! file and asks every node to reload it, then polls until every node has
//! finished. The ideal is that only the new node's share moves: each key
//! copy that moves goes to the new node, and the copies that change owner
//! number about 1/4 of all copies (exactly: the keys whose preference list
//! gains the new node); bytes ideally are the moved copies times the average
//! encoded state size. Streamed bytes are encoded key states (what the
//! transfer batches carry), not counting framing and QUIC overhead.

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use meridian::client::{Client, ClientOptions, Command, Reply};
use meridian::net::{start, ServeOptions};
use meridian::node::{membership_epoch, NodeConfig};
use meridian::placement::Placement;
use meridian::protocol::RebalanceStatus;
use meridian::tls::CertStore;
use meridian::topology::{Topology, WriteConsistency};

fn arg(i: usize, default: u64) -> u64 {
    std::env::args()
        .nth(i)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

fn key(i: u64) -> String {
    format!("key-{i:012}")
}

fn topology_text(ports: &[u16], nodes: usize) -> String {
    let mut text = String::from(
        "[cluster]\nname = \"rebalance\"\nreplication_factor = 3\n\n[[region]]\nname = \"lab\"\n",
    );
    for i in 0..nodes {
        text.push_str(&format!(
            "\n[[region.node]]\nid = \"lab-{}\"\nclient_addr = \"127.0.0.1:{}\"\npeer_addr = \"127.0.0.1:{}\"\n",
            i + 1,
            ports[2 * i],
            ports[2 * i + 1]
        ));
    }
    text
}

type NodeThread = (
    tokio::sync::oneshot::Sender<()>,
    std::thread::JoinHandle<anyhow::Result<()>>,
);

/// Starts node `id` of the topology file `path` on a thread of its own and
/// returns once it serves.
fn spawn_node(
    id: &str,
    path: &std::path::Path,
    cert_dir: &std::path::Path,
    joining: bool,
) -> anyhow::Result<NodeThread> {
    let digest_interval_ms = arg(3, NodeConfig::default().digest_interval_ms);
    let options = ServeOptions {
        topology: Topology::load(path)?,
        node_id: id.to_owned(),
        cert_dir: cert_dir.to_owned(),
        node: NodeConfig {
            joining,
            digest_interval_ms,
            ..NodeConfig::default()
        },
        data_dir: None,
        peer_routes: Default::default(),
    };
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || -> anyhow::Result<()> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async move {
            let handle = start(options).await?;
            let _ = ready_tx.send(());
            let _ = stop_rx.await;
            handle.shutdown().await;
            Ok(())
        })
    });
    ready_rx.recv()?;
    Ok((stop_tx, thread))
}

fn main() -> anyhow::Result<()> {
    let keys = arg(1, 1_000_000);
    let value_bytes = arg(2, 64) as usize;

    let dir = tempfile::TempDir::new()?;
    CertStore::new(dir.path()).ensure_cluster(&["lab-1", "lab-2", "lab-3", "lab-4"], &["cli"])?;
    let sockets: Vec<UdpSocket> = (0..8)
        .map(|_| UdpSocket::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()?;
    let ports: Vec<u16> = sockets
        .iter()
        .map(|s| s.local_addr().map(|a| a.port()))
        .collect::<Result<_, _>>()?;
    drop(sockets);
    let path = dir.path().join("topology.toml");
    std::fs::write(&path, topology_text(&ports, 3))?;
    let three = Topology::load(&path)?;
    let four = Topology::parse(&topology_text(&ports, 4), path.display().to_string())?;

    // Each node runs on its own thread (as its own process would); the
    // 4th starts when asked.
    let mut nodes = Vec::new();
    for id in ["lab-1", "lab-2", "lab-3"] {
        nodes.push(spawn_node(id, &path, dir.path(), false)?);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let outcome = runtime.block_on(async {
        // Loaded at W = one (each write still reaches all three replicas,
        // and the loop below waits until it has): the load is not what is
        // measured.
        let client = Client::connect(ClientOptions::new(three.clone(), "lab", dir.path()))
            .await?
            .with_write(WriteConsistency::One);
        let loading = Instant::now();
        let in_flight = 32u64;
        let mut tasks = tokio::task::JoinSet::new();
        for t in 0..in_flight {
            let client = client.clone();
            tasks.spawn(async move {
                let value = vec![b'v'; value_bytes];
                let mut i = t;
                while i < keys {
                    // A write short of its quorum is kept and handed off
                    // later; writing it again is harmless.
                    let mut tries = 0;
                    while let Err(e) = client.register(key(i).as_str()).set(value.clone()).await {
                        tries += 1;
                        if tries >= 20 {
                            return Err(e.into());
                        }
                    }
                    i += in_flight;
                }
                Ok::<_, anyhow::Error>(())
            });
        }
        while let Some(done) = tasks.join_next().await {
            done??;
        }
        println!(
            "loaded {keys} keys of {value_bytes}-byte values in {:.1} s",
            loading.elapsed().as_secs_f64()
        );
        // Let replication settle: every write on all three replicas.
        let settling = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let mut settled = true;
            let mut held = Vec::new();
            for id in ["lab-1", "lab-2", "lab-3"] {
                if let Reply::Status(s) = client.execute_on(id, Command::Status).await?.reply {
                    settled &= s.hints_pending == 0 && s.keys == keys;
                    held.push((s.keys, s.hints_pending));
                }
            }
            if settled {
                break;
            }
            if settling.elapsed() > Duration::from_secs(300) {
                anyhow::bail!("replication did not settle: (keys, hints) per node {held:?}");
            }
        }

        std::fs::write(&path, topology_text(&ports, 4))?;
        nodes.push(spawn_node("lab-4", &path, dir.path(), true)?);
        // A reload scans the node's keys: at a million keys it takes longer
        // than a data request may.
        let mut options = ClientOptions::new(four.clone(), "lab", dir.path());
        options.request_timeout = Duration::from_secs(120);
        let client = Client::connect(options).await?;
        let started = Instant::now();
        for id in ["lab-1", "lab-2", "lab-3", "lab-4"] {
            client.execute_on(id, Command::ReloadTopology).await?;
        }
        let epoch = membership_epoch(&four, "lab");
        let statuses = loop {
            let mut statuses: Vec<RebalanceStatus> = Vec::new();
            for id in ["lab-1", "lab-2", "lab-3", "lab-4"] {
                if let Reply::Status(s) = client.execute_on(id, Command::Status).await?.reply {
                    statuses.push(s.rebalance);
                }
            }
            if statuses.len() == 4 && statuses.iter().all(|s| s.epoch == epoch && s.finished) {
                break statuses;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let elapsed = started.elapsed();
        Ok::<_, anyhow::Error>((statuses, elapsed))
    });
    for (stop, thread) in nodes {
        let _ = stop.send(());
        thread
            .join()
            .map_err(|_| anyhow::anyhow!("a node thread panicked"))??;
    }
    let (statuses, elapsed) = outcome?;

    let (before, after) = (Placement::new(&three), Placement::new(&four));
    let new_node = four.node("lab-4").map(|n| n.replica);
    let (mut ideal, mut to_new_node) = (0u64, 0u64);
    for i in 0..keys {
        let k = key(i);
        let old = before.preference_list("lab", k.as_bytes())?;
        for r in after.preference_list("lab", k.as_bytes())? {
            if !old.contains(r) {
                ideal += 1;
                to_new_node += u64::from(Some(*r) == new_node);
            }
        }
    }
    let moved: u64 = statuses.iter().map(|s| s.keys_sent).sum();
    let bytes: u64 = statuses.iter().map(|s| s.bytes_sent).sum();
    let dropped: u64 = statuses.iter().map(|s| s.keys_dropped).sum();
    let copies = 3 * keys;
    let avg = bytes as f64 / moved.max(1) as f64;
    println!(
        "rebalance: {moved} key copies moved ({:.4} of {copies}); ideal {ideal} (ring) = {:.4}, 1/4 = {}",
        moved as f64 / copies as f64,
        ideal as f64 / copies as f64,
        copies / 4
    );
    println!("  copies that change owner going to the new node: {to_new_node} of {ideal}; dropped by old owners: {dropped}");
    println!(
        "  bytes streamed: {bytes} ({:.1} MiB, {avg:.1} B per state); ideal {ideal} x {avg:.1} = {:.1} MiB",
        bytes as f64 / (1 << 20) as f64,
        ideal as f64 * avg / (1 << 20) as f64
    );
    println!(
        "  time from ReloadTopology to every node finished: {:.2} s ({:.0} key copies/s)",
        elapsed.as_secs_f64(),
        moved as f64 / elapsed.as_secs_f64()
    );
    for (i, s) in statuses.iter().enumerate() {
        println!(
            "  lab-{}: sent {}/{} copies, {} B, {} batches resent, dropped {}",
            i + 1,
            s.keys_sent,
            s.keys_total,
            s.bytes_sent,
            s.batches_resent,
            s.keys_dropped
        );
    }
    Ok(())
}
