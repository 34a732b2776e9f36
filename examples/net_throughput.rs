//! Throughput of the SDK against in-process nodes over real QUIC on
//! loopback: the nodes run on one thread (a current-thread runtime), the
//! client on another, like two processes sharing the machine.
//!
//! ```text
//! cargo run --release --example net_throughput -- [NODES] [IN_FLIGHT] [SECONDS]
//! ```
//!
//! NODES nodes form one region with N = NODES (writes wait for a quorum);
//! IN_FLIGHT tasks each loop on `SET key value` (16-byte keys out of
//! 10,000, 64-byte values) for SECONDS seconds. Prints requests per second
//! and latency percentiles.

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use meridian::client::{Client, ClientOptions};
use meridian::net::{start, ServeOptions};
use meridian::node::NodeConfig;
use meridian::tls::CertStore;
use meridian::topology::Topology;

fn arg(i: usize, default: u64) -> u64 {
    std::env::args()
        .nth(i)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

fn main() -> anyhow::Result<()> {
    let nodes = arg(1, 1) as usize;
    let in_flight = arg(2, 64) as usize;
    let seconds = arg(3, 5);

    let dir = tempfile::TempDir::new()?;
    let ids: Vec<String> = (1..=nodes).map(|i| format!("bench-{i}")).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    CertStore::new(dir.path()).ensure_cluster(&refs, &["cli"])?;
    let sockets: Vec<UdpSocket> = (0..2 * nodes)
        .map(|_| UdpSocket::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()?;
    let ports: Vec<u16> = sockets
        .iter()
        .map(|s| s.local_addr().map(|a| a.port()))
        .collect::<Result<_, _>>()?;
    drop(sockets);
    let mut text = format!(
        "[cluster]\nname = \"bench\"\nreplication_factor = {nodes}\n\n[[region]]\nname = \"bench\"\n"
    );
    for (i, id) in ids.iter().enumerate() {
        text.push_str(&format!(
            "\n[[region.node]]\nid = \"{id}\"\nclient_addr = \"127.0.0.1:{}\"\npeer_addr = \"127.0.0.1:{}\"\n",
            ports[2 * i],
            ports[2 * i + 1]
        ));
    }
    let topology = Topology::parse(&text, "bench.toml")?;

    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server_topology = topology.clone();
    let cert_dir = dir.path().to_owned();
    let server = std::thread::spawn(move || -> anyhow::Result<()> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async move {
            let mut handles = Vec::new();
            for id in &ids {
                let options = ServeOptions {
                    topology: server_topology.clone(),
                    node_id: id.clone(),
                    cert_dir: cert_dir.clone(),
                    node: NodeConfig::default(),
                    data_dir: None,
                    peer_routes: Default::default(),
                };
                handles.push(start(options).await?);
            }
            let _ = ready_tx.send(());
            let _ = stop_rx.await;
            for handle in handles {
                handle.shutdown().await;
            }
            Ok(())
        })
    });
    ready_rx.recv()?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (count, mut latencies_us) = runtime.block_on(async {
        let client = Client::connect(ClientOptions::new(topology, "bench", dir.path())).await?;
        client.ping().await?;
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let mut tasks = tokio::task::JoinSet::new();
        for t in 0..in_flight {
            let client = client.clone();
            tasks.spawn(async move {
                let value = vec![b'v'; 64];
                let mut latencies = Vec::new();
                let mut i = t as u64;
                while Instant::now() < deadline {
                    let key = format!("key-{:012}", (i * 7919) % 10_000);
                    let started = Instant::now();
                    client.register(key.as_str()).set(value.clone()).await?;
                    latencies.push(started.elapsed().as_micros() as u64);
                    i += in_flight as u64;
                }
                Ok::<_, anyhow::Error>(latencies)
            });
        }
        let mut all = Vec::new();
        while let Some(done) = tasks.join_next().await {
            all.extend(done??);
        }
        Ok::<_, anyhow::Error>((all.len(), all))
    })?;
    let _ = stop_tx.send(());
    server
        .join()
        .map_err(|_| anyhow::anyhow!("server thread panicked"))??;

    latencies_us.sort_unstable();
    let pct = |p: f64| latencies_us[((latencies_us.len() - 1) as f64 * p) as usize];
    println!(
        "nodes {nodes}, in flight {in_flight}, {seconds} s: {} req/s, p50 {} µs, p99 {} µs",
        count as u64 / seconds,
        pct(0.50),
        pct(0.99)
    );
    Ok(())
}
