//! `meridian bench` against a node started in this process over real QUIC
//! on loopback: the load runs, every operation is done, and nothing fails.

use std::net::UdpSocket;
use std::time::Duration;

use meridian::cli::bench::{self, BenchOptions, Mix, Op, Stop};
use meridian::client::ClientOptions;
use meridian::net::{start, ServeOptions, ServerHandle};
use meridian::node::NodeConfig;
use meridian::tls::CertStore;
use meridian::topology::Topology;
use tempfile::TempDir;

/// Ports nothing listens on right now: bound together, then released.
fn free_ports(n: usize) -> Vec<u16> {
    let sockets: Vec<UdpSocket> = (0..n)
        .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    sockets
        .iter()
        .map(|s| s.local_addr().unwrap().port())
        .collect()
}

/// One node (N = 1) in region `lab`, with its certificates in a tempdir.
async fn single_node() -> (TempDir, Topology, ServerHandle) {
    let dir = TempDir::new().unwrap();
    CertStore::new(dir.path())
        .ensure_cluster(&["bench-1"], &["cli"])
        .unwrap();
    let ports = free_ports(2);
    let text = format!(
        "[cluster]\nname = \"bench-test\"\nreplication_factor = 1\n\
         [[region]]\nname = \"lab\"\n\
         [[region.node]]\nid = \"bench-1\"\n\
         client_addr = \"127.0.0.1:{}\"\npeer_addr = \"127.0.0.1:{}\"\n",
        ports[0], ports[1]
    );
    let topology = Topology::parse(&text, "bench-test.toml").unwrap();
    let node = start(ServeOptions {
        topology: topology.clone(),
        node_id: "bench-1".into(),
        cert_dir: dir.path().to_owned(),
        node: NodeConfig::default(),
        data_dir: None,
        peer_routes: Default::default(),
    })
    .await
    .unwrap();
    (dir, topology, node)
}

fn options(mix: Mix, stop: Stop) -> BenchOptions {
    BenchOptions {
        mix,
        keys: 500,
        value_bytes: 64,
        concurrency: 8,
        connections: 2,
        stop,
        progress_every: Duration::from_millis(250),
    }
}

#[tokio::test]
async fn a_short_mixed_bench_does_every_operation_without_errors() {
    let (dir, topology, node) = single_node().await;
    let client = ClientOptions::new(topology, "lab", dir.path());
    let mix: Mix = "get,set,incr,hset".parse().unwrap();
    let mut progress = Vec::new();
    let report = bench::run(
        client,
        &options(mix, Stop::Elapsed(Duration::from_millis(1_500))),
        |p| progress.push(*p),
    )
    .await
    .unwrap();

    let preload = report.preload.as_ref().expect("gets need a preload");
    assert_eq!((preload.keys, preload.errors), (500, 0));
    assert_eq!(
        report
            .per_op
            .iter()
            .map(|r| r.op.as_str())
            .collect::<Vec<_>>(),
        ["get", "set", "incr", "hset"]
    );
    for row in &report.per_op {
        assert!(row.ops > 0, "no {} was done: {report}", row.op);
        assert_eq!(row.errors, 0, "{report}");
        assert!(row.latency.p50_us > 0.0 && row.latency.p50_us <= row.latency.p99_us);
        assert!(row.latency.p99_us <= row.latency.p999_us);
        assert!(row.latency.p999_us <= row.latency.max_us);
    }
    assert_eq!(report.per_op[0].misses, 0, "every key was preloaded");
    assert_eq!(
        report.total.ops,
        report.per_op.iter().map(|r| r.ops).sum::<u64>()
    );
    assert_eq!(report.total.errors, 0);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.failovers, 0, "nothing failed over on a healthy node");
    assert!(report.elapsed_s >= 1.5, "ran {} s", report.elapsed_s);
    // (The preload may report too, before the run.)
    let progress: Vec<_> = progress
        .into_iter()
        .filter(|p| p.preloading.is_none())
        .collect();
    assert!(
        (2..=8).contains(&progress.len()),
        "{} progress reports in 1.5 s at 250 ms",
        progress.len()
    );
    assert!(progress.windows(2).all(|w| w[0].ops <= w[1].ops));
    assert_eq!(report.setup.connections, 2);
    assert_eq!(report.setup.write, "quorum");
    assert!(node.net_stats().client_connections >= 2);
    node.shutdown().await;
}

#[tokio::test]
async fn a_preload_reports_its_progress_before_the_run() {
    let (dir, topology, node) = single_node().await;
    let client = ClientOptions::new(topology, "lab", dir.path());
    let mut bench = options("get".parse().unwrap(), Stop::Requests(10));
    bench.keys = 5_000;
    bench.progress_every = Duration::from_millis(10);
    let mut progress = Vec::new();
    let report = bench::run(client, &bench, |p| progress.push(*p))
        .await
        .unwrap();
    assert_eq!(report.preload.as_ref().unwrap().keys, 5_000);
    let preloading: Vec<_> = progress.iter().filter_map(|p| p.preloading).collect();
    assert!(
        !preloading.is_empty(),
        "no preload progress in {progress:?}"
    );
    assert!(preloading
        .iter()
        .all(|p| p.keys == 5_000 && p.done <= 5_000));
    assert!(preloading.windows(2).all(|w| w[0].done <= w[1].done));
    // Every preload report comes before every run report.
    let first_run = progress.iter().position(|p| p.preloading.is_none());
    let last_preload = progress.iter().rposition(|p| p.preloading.is_some());
    if let (Some(run), Some(pre)) = (first_run, last_preload) {
        assert!(pre < run, "{progress:?}");
    }
    node.shutdown().await;
}

#[tokio::test]
async fn a_bench_of_n_requests_answers_exactly_n() {
    let (dir, topology, node) = single_node().await;
    let mut client = ClientOptions::new(topology, "lab", dir.path());
    client.busy_poll = Duration::from_micros(100);
    let report = bench::run(
        client,
        &options(Mix::only(Op::Incr), Stop::Requests(2_000)),
        |_| {},
    )
    .await
    .unwrap();
    assert!(report.preload.is_none(), "incr needs no preload");
    assert_eq!(report.per_op.len(), 1);
    assert_eq!((report.total.ops, report.total.errors), (2_000, 0));
    assert_eq!(report.setup.busy_poll_us, 100);
    assert!(
        report
            .to_string()
            .contains("busy polling 100 µs where it pays"),
        "{report}"
    );
    node.shutdown().await;
}

#[tokio::test]
async fn a_bench_that_cannot_work_says_why_before_it_runs() {
    let (dir, topology, node) = single_node().await;
    let client = ClientOptions::new(topology, "lab", dir.path());
    let mut too_large = options(Mix::only(Op::Get), Stop::Requests(10));
    too_large.value_bytes = (1 << 20) + 1;
    let error = bench::run(client.clone(), &too_large, |_| {})
        .await
        .unwrap_err();
    assert!(
        matches!(&error, bench::BenchError::Options(why) if why.contains("value limit of 1048576")),
        "{error}"
    );

    // Every key the gets read already holds a counter: the preload cannot
    // write one, and the bench stops there instead of timing misses.
    let mut few = options(Mix::only(Op::Get), Stop::Requests(10));
    few.keys = 20;
    let sdk = meridian::client::Client::connect(client.clone())
        .await
        .unwrap();
    for n in 0..few.keys {
        let meridian::client::Command::Set { key, .. } = bench::request(Op::Set, n, &"v".into())
        else {
            panic!("a set")
        };
        sdk.counter(key).incr(1).await.unwrap();
    }
    let error = bench::run(client, &few, |_| {}).await.unwrap_err();
    assert!(
        matches!(&error, bench::BenchError::Preload { keys: 20, last } if last.contains("WRONGTYPE")),
        "{error}"
    );
    node.shutdown().await;
}

#[test]
fn the_bench_region_is_one_region_of_three_nodes_writing_to_a_quorum() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/regions/bench-region.toml");
    let topology = Topology::load(path).unwrap();
    assert_eq!(topology.regions().len(), 1);
    assert_eq!(topology.nodes_in("bench").map(<[_]>::len), Some(3));
    assert_eq!(topology.replication_factor(), 3);
    assert_eq!(
        topology.write_consistency(),
        meridian::topology::WriteConsistency::Quorum
    );
    assert!(topology.links().is_empty());
}
