//! A region of three nodes (N = 3, W = quorum) as real `meridian serve`
//! processes over QUIC on loopback: one node is killed with SIGKILL in the
//! middle of a load of counter increments and set adds. No acknowledged
//! write is lost (read back at quorum), and the node, restarted with its
//! data directory or with an empty one, catches up: it alone holds every
//! acknowledged write (read at consistency one from that node) within a
//! generous bound.

use meridian::client::{Client, ClientOptions, ReadConsistency};
use meridian::tls::CertStore;
use meridian::topology::Topology;
use std::collections::{BTreeMap, BTreeSet};
use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const IDS: [&str; 3] = ["k-1", "k-2", "k-3"];
const VICTIM: usize = 1;
const WRITERS: usize = 4;
/// How long a restarted node may take to hold every acknowledged write.
const CATCH_UP_BOUND: Duration = Duration::from_secs(90);

fn free_ports(n: usize) -> Vec<u16> {
    let sockets: Vec<UdpSocket> = (0..n)
        .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    sockets
        .iter()
        .map(|s| s.local_addr().unwrap().port())
        .collect()
}

fn topology_text(nodes: &[(&str, u16, u16)]) -> String {
    let mut text = format!(
        "[cluster]\nname = \"kill\"\nreplication_factor = {}\nwrite_consistency = \"quorum\"\nread_consistency = \"one\"\n\n[[region]]\nname = \"r\"\n",
        nodes.len()
    );
    for (id, client, peer) in nodes {
        text.push_str(&format!(
            "\n[[region.node]]\nid = \"{id}\"\nclient_addr = \"127.0.0.1:{client}\"\npeer_addr = \"127.0.0.1:{peer}\"\n"
        ));
    }
    text
}

struct Region {
    dir: tempfile::TempDir,
    topology: Topology,
    /// The victim alone (a client of this topology talks only to it).
    victim_only: Topology,
    nodes: Vec<Option<Child>>,
}

impl Region {
    fn start() -> Region {
        let dir = tempfile::TempDir::new().unwrap();
        let ports = free_ports(6);
        let nodes: Vec<(&str, u16, u16)> = IDS
            .iter()
            .enumerate()
            .map(|(i, id)| (*id, ports[2 * i], ports[2 * i + 1]))
            .collect();
        let text = topology_text(&nodes);
        std::fs::write(dir.path().join("topology.toml"), &text).unwrap();
        let topology = Topology::parse(&text, "topology.toml").unwrap();
        let victim_only =
            Topology::parse(&topology_text(&nodes[VICTIM..=VICTIM]), "victim.toml").unwrap();
        CertStore::new(dir.path().join("certs"))
            .ensure_cluster(&IDS, &["cli"])
            .unwrap();
        let mut region = Region {
            dir,
            topology,
            victim_only,
            nodes: Vec::new(),
        };
        for i in 0..IDS.len() {
            let child = region.spawn(i);
            region.nodes.push(Some(child));
        }
        region
    }

    fn data_dir(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("data-{}", IDS[i]))
    }

    fn log(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("{}.log", IDS[i]))
    }

    fn spawn(&self, i: usize) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log(i))
            .unwrap();
        Command::new(env!("CARGO_BIN_EXE_meridian"))
            .args(["serve", "--node", IDS[i], "--topology"])
            .arg(self.dir.path().join("topology.toml"))
            .arg("--cert-dir")
            .arg(self.dir.path().join("certs"))
            .arg("--data-dir")
            .arg(self.data_dir(i))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap()
    }

    fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].take() {
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
        }
    }

    fn restart(&mut self, i: usize) {
        assert!(self.nodes[i].is_none(), "{} is running", IDS[i]);
        self.nodes[i] = Some(self.spawn(i));
    }

    fn options(&self, topology: &Topology) -> ClientOptions {
        let mut opts = ClientOptions::new(topology.clone(), "r", self.dir.path().join("certs"));
        opts.request_timeout = Duration::from_secs(2);
        opts
    }

    async fn client(&self, topology: &Topology) -> Client {
        let client = Client::connect(self.options(topology)).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while client.ping().await.is_err() {
            assert!(
                Instant::now() < deadline,
                "the nodes did not come up: {}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        client
    }

    fn logs(&self) -> String {
        (0..IDS.len())
            .map(|i| {
                let text = std::fs::read_to_string(self.log(i)).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(20).collect();
                format!(
                    "--- {}\n{}",
                    IDS[i],
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}

/// What the load had acknowledged.
#[derive(Default, Debug)]
struct Acked {
    /// Per counter: the sum of acknowledged increments.
    counters: BTreeMap<String, i64>,
    /// Per set: the acknowledged members.
    sets: BTreeMap<String, BTreeSet<String>>,
    writes: u64,
    failures: u64,
}

/// Writers increment counter `c{w}` and add to set `s{w}` until `stop`.
async fn load(client: Client, writer: usize, stop: Arc<AtomicBool>) -> Acked {
    let mut acked = Acked::default();
    let (c, s) = (format!("c{writer}"), format!("s{writer}"));
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        match client.counter(c.as_str()).incr(1).await {
            Ok(_) => {
                *acked.counters.entry(c.clone()).or_default() += 1;
                acked.writes += 1;
            }
            Err(_) => acked.failures += 1,
        }
        let member = format!("m{i}");
        match client.set(s.as_str()).add(member.as_str()).await {
            Ok(_) => {
                acked.sets.entry(s.clone()).or_default().insert(member);
                acked.writes += 1;
            }
            Err(_) => acked.failures += 1,
        }
    }
    acked
}

/// The first acknowledged write `client` does not show, if any.
async fn missing(client: &Client, acked: &Acked) -> Option<String> {
    for (key, sum) in &acked.counters {
        match client.counter(key.as_str()).get().await {
            Ok(v) if v >= *sum => {}
            Ok(v) => return Some(format!("{key} = {v}, acknowledged {sum}")),
            Err(e) => return Some(format!("{key}: {e}")),
        }
    }
    for (key, want) in &acked.sets {
        match client.set(key.as_str()).members().await {
            Ok(got) => {
                let got: BTreeSet<String> = got
                    .iter()
                    .map(|m| String::from_utf8_lossy(m).into_owned())
                    .collect();
                if let Some(lost) = want.difference(&got).next() {
                    return Some(format!("{key} lacks acknowledged {lost}"));
                }
            }
            Err(e) => return Some(format!("{key}: {e}")),
        }
    }
    None
}

async fn kill_mid_load_then_restart(keep_data_dir: bool) {
    let mut region = Region::start();
    let client = region.client(&region.topology).await;
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| tokio::spawn(load(client.clone(), w, stop.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    region.kill(VICTIM);
    // The load goes on without the victim (two of three replicas are a quorum).
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut acked = Acked::default();
    for w in writers {
        let a = w.await.unwrap();
        acked.counters.extend(a.counters);
        acked.sets.extend(a.sets);
        acked.writes += a.writes;
        acked.failures += a.failures;
    }
    assert!(acked.writes > 100, "the load made only {acked:?}");

    // No acknowledged write is lost: read at quorum from the survivors.
    let quorum = client.with_read(ReadConsistency::Quorum);
    if let Some(lost) = missing(&quorum, &acked).await {
        panic!("lost with one node down: {lost}\n{}", region.logs());
    }

    if !keep_data_dir {
        std::fs::remove_dir_all(region.data_dir(VICTIM)).unwrap();
    }
    region.restart(VICTIM);
    let victim = region.client(&region.victim_only).await;
    let restarted = Instant::now();
    loop {
        let Some(gap) = missing(&victim, &acked).await else {
            break;
        };
        assert!(
            restarted.elapsed() < CATCH_UP_BOUND,
            "{} has not caught up after {:?}: {gap}\n{}",
            IDS[VICTIM],
            CATCH_UP_BOUND,
            region.logs()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    eprintln!(
        "{} writes acknowledged ({} failed); {} caught up {:?} after its restart ({})",
        acked.writes,
        acked.failures,
        IDS[VICTIM],
        restarted.elapsed(),
        if keep_data_dir {
            "with its data directory"
        } else {
            "with an empty data directory"
        }
    );
    // It keeps serving and the others still agree.
    if let Some(lost) = missing(&quorum, &acked).await {
        panic!("lost after the restart: {lost}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_killed_mid_load_loses_no_acknowledged_write_and_catches_up_from_its_data_dir() {
    kill_mid_load_then_restart(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_killed_mid_load_and_restarted_empty_catches_up_from_its_peers() {
    kill_mid_load_then_restart(false).await;
}
