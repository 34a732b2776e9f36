//! A node with `--data-dir`, as a real process: killed with SIGKILL in the
//! middle of a write load and restarted, it still has every write it
//! acknowledged; a torn log tail is cut, never applied.

use meridian::client::{Client, ClientOptions, WriteConsistency};
use meridian::tls::CertStore;
use meridian::topology::Topology;
use std::net::UdpSocket;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_ports(n: usize) -> Vec<u16> {
    let sockets: Vec<UdpSocket> = (0..n)
        .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    sockets
        .iter()
        .map(|s| s.local_addr().unwrap().port())
        .collect()
}

fn spawn(dir: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_meridian"))
        .args(["serve", "--node", "solo-1", "--topology"])
        .arg(dir.join("topology.toml"))
        .arg("--cert-dir")
        .arg(dir.join("certs"))
        .arg("--data-dir")
        .arg(dir.join("data"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("node.log")).unwrap())
        .spawn()
        .unwrap()
}

async fn connect(dir: &Path, topology: &Topology) -> Client {
    let mut opts = ClientOptions::new(topology.clone(), "solo", dir.join("certs"));
    opts.request_timeout = Duration::from_secs(2);
    opts.write = Some(WriteConsistency::One);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(client) = Client::connect(opts.clone()).await {
            if client.ping().await.is_ok() {
                return client;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the node did not come up: {}",
            std::fs::read_to_string(dir.join("node.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn node_killed_during_writes_keeps_every_acknowledged_write_after_restart() {
    let tmp = tempfile::TempDir::new().unwrap();
    let dir = tmp.path();
    let ports = free_ports(2);
    let text = format!(
        "[cluster]\nname = \"p\"\nreplication_factor = 1\n\n[[region]]\nname = \"solo\"\n\n[[region.node]]\nid = \"solo-1\"\nclient_addr = \"127.0.0.1:{}\"\npeer_addr = \"127.0.0.1:{}\"\n",
        ports[0], ports[1]
    );
    std::fs::write(dir.join("topology.toml"), &text).unwrap();
    let topology = Topology::parse(&text, "topology.toml").unwrap();
    CertStore::new(dir.join("certs"))
        .ensure_cluster(&["solo-1"], &["cli"])
        .unwrap();

    let mut node = spawn(dir);
    let client = connect(dir, &topology).await;
    // Writes go on concurrently while the node is killed.
    let writer = {
        let client = client.clone();
        tokio::spawn(async move {
            let (mut incrs, mut adds) = (0i64, 0i64);
            for i in 0..100_000u32 {
                match client.counter("hits").incr(1).await {
                    Ok(_) => incrs += 1,
                    Err(_) => break,
                }
                if client
                    .set("members")
                    .add(format!("m{i}").as_str())
                    .await
                    .is_err()
                {
                    break;
                }
                adds += 1;
            }
            (incrs, adds)
        })
    };
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    node.kill().unwrap(); // SIGKILL
    node.wait().unwrap();
    let (acked, adds) = writer.await.unwrap();
    assert!(
        acked > 50,
        "the load made only {acked} writes before the kill"
    );

    let mut node = spawn(dir);
    let client = connect(dir, &topology).await;
    let hits = client.counter("hits").get().await.unwrap();
    // Every acknowledged increment is there; at most the one in flight more.
    assert!(
        hits >= acked && hits <= acked + 1,
        "{hits} hits after {acked} acknowledged increments"
    );
    let members = client.set("members").len().await.unwrap() as i64;
    assert!(
        members >= adds,
        "{members} members after {adds} acknowledged adds"
    );
    // The node keeps working on its recovered state.
    assert_eq!(client.counter("hits").incr(1).await.unwrap(), hits + 1);
    node.kill().unwrap();
    node.wait().unwrap();

    // A torn tail (a write cut short by the crash) is cut off on the next start.
    let log = dir.join("data").join("deltas.log");
    let mut bytes = std::fs::read(&log).unwrap();
    bytes.extend_from_slice(&[200, 0, 0, 0, 1, 2, 3]);
    std::fs::write(&log, &bytes).unwrap();
    let mut node = spawn(dir);
    let client = connect(dir, &topology).await;
    assert_eq!(client.counter("hits").get().await.unwrap(), hits + 1);
    node.kill().unwrap();
    node.wait().unwrap();
    let log_text = std::fs::read_to_string(dir.join("node.log")).unwrap();
    assert!(
        log_text.contains("cut a torn or corrupt tail"),
        "{log_text}"
    );
}
