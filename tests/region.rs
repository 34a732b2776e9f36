//! A region of real nodes on loopback, driven through real QUIC: the SDK
//! round-trips every data type, routes and fails over, and nodes refuse bad
//! input and bad certificates while they keep serving.

use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use meridian::client::{
    fetch_topology, Bytes, Client, ClientError, ClientOptions, Command, FieldOp, FieldValue, Kind,
    ReadConsistency, Reply, Routing, Ttl, WriteConsistency, BUSY_POLL_MAX, CONNECT_TIMEOUT_MS,
    HOME_WRITES_MAX, NODE_DOWN_MS_MIN,
};
use meridian::net::{start, ServeOptions, ServerHandle};
use meridian::node::NodeConfig;
use meridian::placement::Placement;
use meridian::protocol::frame::{
    encode_into, preamble, preamble_of, CLIENT_VERSION_MIN, PROTOCOL_VERSION,
};
use meridian::protocol::{codes, ErrorReply, FrameReader, Request, Response};
use meridian::tls::{
    client_config, tls_alert, CertStore, ClusterCa, PeerIdentity, Role, TransportLimits, Validity,
};
use meridian::topology::Topology;
use tempfile::TempDir;

const REGION: &str = "lab";
const KEY_BYTES_MAX: usize = 256;
const VALUE_BYTES_MAX: usize = 4096;
const FRAME_BYTES_MAX: usize = 8192;
const STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// Nodes of one region, started in this process.
struct Region {
    dir: TempDir,
    topology: Topology,
    ids: Vec<String>,
    nodes: Vec<Option<ServerHandle>>,
}

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

fn topology_text(ids: &[String], ports: &[u16], replication_factor: usize) -> String {
    let mut text = format!(
        r#"
[cluster]
name = "test"
replication_factor = {replication_factor}
write_consistency = "quorum"
read_consistency = "one"

[limits]
key_bytes_max = {KEY_BYTES_MAX}
value_bytes_max = {VALUE_BYTES_MAX}
frame_bytes_max = {FRAME_BYTES_MAX}
streams_per_connection_max = 64

[[region]]
name = "{REGION}"
"#
    );
    for (i, id) in ids.iter().enumerate() {
        text.push_str(&format!(
            "\n[[region.node]]\nid = \"{id}\"\nclient_addr = \"127.0.0.1:{}\"\npeer_addr = \"127.0.0.1:{}\"\n",
            ports[2 * i],
            ports[2 * i + 1]
        ));
    }
    text
}

fn node_config() -> NodeConfig {
    NodeConfig {
        write_timeout_ms: 2_000,
        read_timeout_ms: 2_000,
        forward_timeout_ms: 3_000,
        ..NodeConfig::default()
    }
}

/// Starts `nodes` (each id with the topology it runs), certificates in
/// `dir`. A port found free can be taken (by another test's client) before
/// a node binds it: then, if `retry`, the nodes started are stopped again
/// and `None` says to start over on other ports.
async fn start_nodes(
    dir: &std::path::Path,
    nodes: &[(&String, &Topology)],
    retry: bool,
) -> Option<Vec<ServerHandle>> {
    let mut handles = Vec::new();
    for (id, topology) in nodes {
        let started = start(ServeOptions {
            topology: (*topology).clone(),
            node_id: (*id).clone(),
            cert_dir: dir.to_owned(),
            node: node_config(),
            data_dir: None,
            peer_routes: Default::default(),
        })
        .await;
        match started {
            Ok(handle) => handles.push(handle),
            Err(e) if retry && format!("{e:#}").contains("in use") => {
                for handle in handles {
                    handle.shutdown().await;
                }
                return None;
            }
            Err(e) => panic!("starting {id}: {e:#}"),
        }
    }
    Some(handles)
}

impl Region {
    async fn start(nodes: usize, replication_factor: usize) -> Region {
        let dir = TempDir::new().unwrap();
        let ids: Vec<String> = (1..=nodes).map(|i| format!("lab-{i}")).collect();
        let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        CertStore::new(dir.path())
            .ensure_cluster(&id_refs, &["cli"])
            .unwrap();
        // Other ports when one was taken (see `start_nodes`).
        let mut attempt = 0;
        let (topology, handles) = loop {
            attempt += 1;
            let text = topology_text(&ids, &free_ports(2 * nodes), replication_factor);
            let topology = Topology::parse(&text, "region-test.toml").unwrap();
            let nodes: Vec<(&String, &Topology)> = ids.iter().map(|id| (id, &topology)).collect();
            if let Some(handles) = start_nodes(dir.path(), &nodes, attempt < 5).await {
                break (topology, handles.into_iter().map(Some).collect());
            }
        };
        Region {
            dir,
            topology,
            ids,
            nodes: handles,
        }
    }

    /// Client options; each key's first replica coordinates (the tests
    /// name the coordinator).
    fn options(&self) -> ClientOptions {
        let mut opts = ClientOptions::new(self.topology.clone(), REGION, self.dir.path());
        opts.request_timeout = Duration::from_secs(6);
        opts.routing = Routing::Primary;
        opts
    }

    async fn client(&self) -> Client {
        Client::connect(self.options()).await.unwrap()
    }

    /// The identity of the `cli` client certificate, for raw connections.
    fn cli_identity(&self) -> meridian::tls::Identity {
        CertStore::new(self.dir.path())
            .load_client_identity("cli")
            .unwrap()
    }

    fn node(&self, id: &str) -> &ServerHandle {
        let i = self.ids.iter().position(|n| n == id).unwrap();
        self.nodes[i].as_ref().unwrap()
    }

    async fn stop(&mut self, id: &str) {
        let i = self.ids.iter().position(|n| n == id).unwrap();
        self.nodes[i].take().unwrap().shutdown().await;
    }

    /// Starts a stopped node again on its addresses, with empty memory.
    async fn restart(&mut self, id: &str) {
        let i = self.ids.iter().position(|n| n == id).unwrap();
        assert!(self.nodes[i].is_none(), "{id} is running");
        let handle = start(ServeOptions {
            topology: self.topology.clone(),
            node_id: id.to_owned(),
            cert_dir: self.dir.path().to_owned(),
            node: node_config(),
            data_dir: None,
            peer_routes: Default::default(),
        })
        .await
        .unwrap();
        self.nodes[i] = Some(handle);
    }

    /// The key's replicas in the region, as node ids, coordinator first.
    fn replicas(&self, key: &[u8]) -> Vec<String> {
        let placement = Placement::new(&self.topology);
        placement
            .preference_list(REGION, key)
            .unwrap()
            .iter()
            .map(|r| self.topology.node_by_replica(*r).unwrap().id.clone())
            .collect()
    }

    async fn shutdown(mut self) {
        let mut stopping = tokio::task::JoinSet::new();
        for handle in self.nodes.iter_mut().filter_map(Option::take) {
            stopping.spawn(handle.shutdown());
        }
        while stopping.join_next().await.is_some() {}
    }
}

async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(STEP_TIMEOUT, f)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish in time"))
}

fn b(s: &str) -> Bytes {
    Bytes::from(s)
}

#[tokio::test]
async fn every_data_type_and_command_round_trips_through_the_sdk() {
    let region = Region::start(3, 3).await;
    let client = region.client().await;
    within("the round trips", async {
        client.ping().await.unwrap();

        // Register, with expiry.
        let reg = client.register("greeting");
        assert_eq!(reg.get().await.unwrap(), None);
        reg.set("hello").await.unwrap();
        assert_eq!(reg.get().await.unwrap(), Some(b("hello")));
        assert_eq!(client.type_of("greeting").await.unwrap(), Some(Kind::Register));
        assert_eq!(client.ttl("greeting").await.unwrap(), Ttl::Persistent);
        assert!(client.expire("greeting", Duration::from_secs(60)).await.unwrap());
        assert!(matches!(client.ttl("greeting").await.unwrap(), Ttl::Ms(ms) if ms > 50_000 && ms <= 60_000));
        assert!(client.persist("greeting").await.unwrap());
        assert_eq!(client.ttl("greeting").await.unwrap(), Ttl::Persistent);
        // As Redis refuses `SET k v PX 0`; a part of a millisecond counts
        // as one, and past the longest is refused as well.
        assert!(matches!(
            reg.set_with_ttl("never", Duration::ZERO).await,
            Err(ClientError::BadRequest(_))
        ));
        assert!(matches!(
            reg.set_with_ttl("never", Duration::MAX).await,
            Err(ClientError::BadRequest(_))
        ));
        assert!(matches!(
            client.expire("greeting", Duration::MAX).await,
            Err(ClientError::BadRequest(_))
        ));
        assert_eq!(reg.get().await.unwrap(), Some(b("hello")));
        reg.set_with_ttl("brief", Duration::from_millis(200)).await.unwrap();
        assert_eq!(reg.get().await.unwrap(), Some(b("brief")));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(reg.get().await.unwrap(), None, "expired");
        assert_eq!(client.ttl("greeting").await.unwrap(), Ttl::Missing);

        // Counter.
        let hits = client.counter("hits");
        assert_eq!(hits.get().await.unwrap(), 0);
        assert_eq!(hits.incr(5).await.unwrap(), 5);
        assert_eq!(hits.decr(2).await.unwrap(), 3);
        assert_eq!(hits.get().await.unwrap(), 3);
        assert_eq!(client.type_of("hits").await.unwrap(), Some(Kind::Counter));
        assert!(client.del("hits").await.unwrap());
        assert_eq!(hits.get().await.unwrap(), 0);
        assert!(!client.del("hits").await.unwrap());

        // Set.
        let tags = client.set("tags");
        assert!(tags.add("red").await.unwrap());
        assert!(!tags.add("red").await.unwrap());
        assert_eq!(tags.add_all(["green", "blue", "red"]).await.unwrap(), 2);
        assert_eq!(tags.members().await.unwrap(), vec![b("blue"), b("green"), b("red")]);
        assert!(tags.contains("green").await.unwrap());
        assert!(tags.remove("green").await.unwrap());
        assert!(!tags.remove("green").await.unwrap());
        assert!(!tags.contains("green").await.unwrap());
        assert_eq!(tags.len().await.unwrap(), 2);
        assert_eq!(client.type_of("tags").await.unwrap(), Some(Kind::Set));

        // Map, flat and nested.
        let user = client.map("user:7");
        assert!(user.put("name", "Ada").await.unwrap());
        assert!(!user.put("name", "Ada L.").await.unwrap());
        assert_eq!(user.get("name").await.unwrap(), Some(b("Ada L.")));
        assert_eq!(user.get("missing").await.unwrap(), None);
        assert_eq!(user.incr("logins", 2).await.unwrap(), 2);
        assert_eq!(user.incr("logins", 1).await.unwrap(), 3);
        assert_eq!(
            user.apply([b("prefs"), b("theme")], FieldOp::Set(b("dark")))
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            user.apply([b("prefs"), b("visits")], FieldOp::Incr(4))
                .await
                .unwrap(),
            Some(4)
        );
        assert_eq!(
            user.get_path([b("prefs"), b("theme")]).await.unwrap(),
            Some(FieldValue::Register(b("dark")))
        );
        // Paths of plain strings, and keys built at run time.
        assert_eq!(
            user.get_path(["prefs", "visits"]).await.unwrap(),
            Some(FieldValue::Counter(4))
        );
        let id = 7;
        let key = format!("user:{id}");
        assert_eq!(client.map(&key).get("name").await.unwrap(), Some(b("Ada L.")));
        assert_eq!(client.type_of(key).await.unwrap(), Some(Kind::Map));
        assert!(matches!(
            user.get_path(Vec::<&str>::new()).await,
            Err(ClientError::BadRequest(_))
        ));
        assert_eq!(user.len().await.unwrap(), 3);
        let all = user.get_all().await.unwrap();
        let names: Vec<&Bytes> = all.iter().map(|(f, _)| f).collect();
        assert_eq!(names, vec![&b("logins"), &b("name"), &b("prefs")]);
        assert_eq!(all[0].1, FieldValue::Counter(3));
        assert_eq!(all[1].1, FieldValue::Register(b("Ada L.")));
        assert!(user.remove("logins").await.unwrap());
        assert!(!user.remove("logins").await.unwrap());
        assert_eq!(user.len().await.unwrap(), 2);
        assert_eq!(client.type_of("user:7").await.unwrap(), Some(Kind::Map));

        // Multi-value register.
        let doc = client.mvregister("doc");
        assert_eq!(doc.get().await.unwrap(), Vec::<Bytes>::new());
        doc.set("v1").await.unwrap();
        doc.set("v2").await.unwrap();
        assert_eq!(doc.get().await.unwrap(), vec![b("v2")]);
        assert_eq!(client.type_of("doc").await.unwrap(), Some(Kind::MvRegister));

        assert_eq!(client.type_of("nothing").await.unwrap(), None);
    })
    .await;
    region.shutdown().await;
}

#[tokio::test]
async fn operation_on_a_key_of_another_type_is_a_typed_wrongtype_error() {
    let region = Region::start(3, 3).await;
    let client = region.client().await;
    within("the WRONGTYPE checks", async {
        client.counter("n").incr(1).await.unwrap();
        assert_eq!(
            client.set("n").add("x").await,
            Err(ClientError::WrongType {
                wanted: Kind::Set,
                found: Kind::Counter
            })
        );
        client.register("r").set("v").await.unwrap();
        assert!(matches!(
            client.map("r").put("f", "v").await,
            Err(ClientError::WrongType {
                wanted: Kind::Map,
                found: Kind::Register
            })
        ));
        // The keys are untouched.
        assert_eq!(client.counter("n").get().await.unwrap(), 1);
        assert_eq!(client.register("r").get().await.unwrap(), Some(b("v")));
    })
    .await;
    region.shutdown().await;
}

#[tokio::test]
async fn quorum_write_survives_a_replica_shutdown_and_is_read_back_from_the_others() {
    let mut region = Region::start(3, 3).await;
    let client = region.client().await;
    let key = "durable";
    let replicas = region.replicas(key.as_bytes());
    let set = |value: &str| Command::Set {
        key: b(key),
        value: b(value),
        ttl_ms: None,
    };

    let answer = within(
        "the first write",
        client.execute_with(set("v1"), Some(WriteConsistency::All), None),
    )
    .await
    .unwrap();
    assert_eq!((answer.replicas_acked, answer.replicas_needed), (3, 3));

    // The key's coordinator, where the client sends it first, goes away.
    region.stop(&replicas[0]).await;

    within("reads after the shutdown", async {
        let failovers = client.failovers();
        assert_eq!(client.register(key).get().await.unwrap(), Some(b("v1")));
        // It went on to the next replica, and the client counted it.
        assert!(client.failovers() > failovers);
        let quorum = client.with_read(ReadConsistency::Quorum);
        assert_eq!(quorum.register(key).get().await.unwrap(), Some(b("v1")));

        // A quorum write still reaches 2 of 3 and is acknowledged.
        let answer = client.execute(set("v2")).await.unwrap();
        assert_eq!((answer.replicas_acked, answer.replicas_needed), (2, 2));
        assert_eq!(quorum.register(key).get().await.unwrap(), Some(b("v2")));
        for survivor in &replicas[1..] {
            let answer = client
                .execute_on(survivor, Command::Get { key: b(key) })
                .await
                .unwrap();
            assert_eq!(answer.reply, Reply::Value(b("v2")), "on {survivor}");
        }

        // Asking for all three now fails with the counts, and the write is kept.
        let short = client
            .execute_with(set("v3"), Some(WriteConsistency::All), None)
            .await;
        assert_eq!(
            short,
            Err(ClientError::QuorumNotReached {
                acked: 2,
                needed: 3
            })
        );
        assert_eq!(quorum.register(key).get().await.unwrap(), Some(b("v3")));
    })
    .await;
    region.shutdown().await;
}

#[tokio::test]
async fn a_node_still_gone_after_its_time_passed_over_is_checked_in_the_background() {
    let mut region = Region::start(3, 3).await;
    let client = region.client().await;
    let key = "probed";
    client.register(key).set("v").await.unwrap();
    let first = region.replicas(key.as_bytes())[0].clone();
    region.stop(&first).await;

    within("reads while the key's first replica is gone", async {
        // The first read finds it gone and fails over; it is then passed
        // over for NODE_DOWN_MS_MIN.
        assert_eq!(client.register(key).get().await.unwrap(), Some(b("v")));
        tokio::time::sleep(Duration::from_millis(NODE_DOWN_MS_MIN + 200)).await;
        // Its time is up, but it has not answered since: the read goes to
        // the other replicas first instead of waiting a connect timeout on
        // it, while a dial in the background checks whether it is back.
        let started = std::time::Instant::now();
        assert_eq!(client.register(key).get().await.unwrap(), Some(b("v")));
        let took = started.elapsed();
        assert!(
            took < Duration::from_millis(CONNECT_TIMEOUT_MS * 3 / 4),
            "the read waited {took:?} on the gone node"
        );
    })
    .await;

    // Once back, the background dial finds it and it serves again.
    region.restart(&first).await;
    within("the node's return", async {
        loop {
            let _ = client.register(key).get().await;
            if region.node(&first).node_stats().requests > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    region.shutdown().await;
}

#[tokio::test]
async fn restarted_replica_is_redialled_and_handed_the_writes_it_missed() {
    let mut region = Region::start(3, 3).await;
    let client = region.client().await;
    let key = "missed";
    let down = region.replicas(key.as_bytes())[2].clone();
    client.register(key).set("before").await.unwrap();

    region.stop(&down).await;
    client.register(key).set("while-down").await.unwrap();
    // The write waits for the stopped replica until its timeout, then
    // leaves a hint for it.
    let coordinator = region.replicas(key.as_bytes())[0].clone();
    within("the hint", async {
        while region.node(&coordinator).node_stats().hints_queued == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    // Its ports are free at once; it comes back with nothing in memory.
    region.restart(&down).await;

    // The coordinator's hint reaches it once its peer link is back.
    within("the handoff", async {
        loop {
            let answer = client
                .execute_on(&down, Command::Get { key: b(key) })
                .await
                .unwrap();
            if answer.reply == Reply::Value(b("while-down")) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    // The coordinator counts the handoff once its acknowledgement is back.
    within("the handoff's acknowledgement", async {
        while region.node(&coordinator).node_stats().hints_delivered == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    region.shutdown().await;
}

#[tokio::test]
async fn serve_runs_until_its_shutdown_future_completes() {
    let dir = TempDir::new().unwrap();
    CertStore::new(dir.path())
        .ensure_cluster(&["lab-1"], &["cli"])
        .unwrap();
    let ids = vec!["lab-1".to_owned()];
    let topology = Topology::parse(&topology_text(&ids, &free_ports(2), 1), "one.toml").unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(meridian::net::serve(
        ServeOptions {
            topology: topology.clone(),
            node_id: "lab-1".into(),
            cert_dir: dir.path().to_owned(),
            node: node_config(),
            data_dir: None,
            peer_routes: Default::default(),
        },
        async {
            let _ = stopped.await;
        },
    ));
    let mut opts = ClientOptions::new(topology, REGION, dir.path());
    opts.request_timeout = Duration::from_secs(6);
    let client = Client::connect(opts).await.unwrap();
    within("the first ping", async {
        // The node binds shortly after `serve` starts.
        while client.ping().await.is_err() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    stop.send(()).unwrap();
    within("serve to return", serving).await.unwrap().unwrap();
    assert!(client.ping().await.is_err(), "the node is gone");
}

#[tokio::test]
async fn a_client_with_a_home_node_has_it_coordinate_every_key_it_replicates() {
    let region = Region::start(5, 3).await;
    let home = region.ids[1].clone();
    let mut opts = region.options();
    opts.routing = Routing::Home(home.clone());
    let client = Client::connect(opts).await.unwrap();
    assert_eq!(client.home().as_deref(), Some(home.as_str()));

    // With five nodes and N = 3, the home replicates some keys and not others.
    let keys: Vec<String> = (0..60).map(|i| format!("homed-{i}")).collect();
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for key in &keys {
        let replicas = region.replicas(key.as_bytes());
        let coordinator = if replicas.contains(&home) {
            home.clone()
        } else {
            replicas[0].clone()
        };
        *expected.entry(coordinator).or_default() += 1;
        let answer = client
            .execute(Command::Set {
                key: b(key),
                value: b("v"),
                ttl_ms: None,
            })
            .await
            .unwrap();
        assert_eq!(answer.replicas_acked, 2, "{key}");
    }
    assert!(expected[&home] > 0 && expected[&home] < keys.len() as u64);
    for id in &region.ids {
        let stats = region.node(id).node_stats();
        assert_eq!(
            stats.requests,
            expected.get(id).copied().unwrap_or(0),
            "requests on {id}"
        );
        assert_eq!(stats.forwarded, 0, "nothing is forwarded");
    }

    // A home outside the region is refused when connecting.
    let mut opts = region.options();
    opts.routing = Routing::Home("nowhere-9".into());
    let refused = Client::connect(opts).await.expect_err("an unknown home");
    assert!(
        matches!(&refused, ClientError::BadRequest(m) if m.contains("nowhere-9")),
        "{refused}"
    );
    // So is a request timeout too short for any answer.
    let mut opts = region.options();
    opts.request_timeout = std::time::Duration::ZERO;
    let refused = Client::connect(opts).await.expect_err("a zero timeout");
    assert!(
        matches!(&refused, ClientError::BadRequest(m) if m.contains("request_timeout")),
        "{refused}"
    );
    region.shutdown().await;
}

#[tokio::test]
async fn a_client_reads_from_its_home_but_its_own_recent_writes_from_their_coordinator() {
    let region = Region::start(5, 3).await;
    let home = region.ids[2].clone();
    let mut opts = region.options();
    opts.routing = Routing::ReadHomeAt(home.clone());
    opts.topology_refresh = Duration::ZERO;
    let client = Client::connect(opts).await.unwrap();
    assert_eq!(client.home().as_deref(), Some(home.as_str()));
    let loader = region.client().await;
    let requests = |region: &Region| -> BTreeMap<String, u64> {
        region
            .ids
            .iter()
            .map(|id| (id.clone(), region.node(id).node_stats().requests))
            .collect()
    };
    let served_since = |before: &BTreeMap<String, u64>, region: &Region| {
        let now = requests(region);
        let mut served: BTreeMap<String, u64> = BTreeMap::new();
        for (id, n) in now {
            if n > before[&id] {
                served.insert(id.clone(), n - before[&id]);
            }
        }
        served
    };

    // Keys another client wrote: each read goes to the home where it holds
    // a replica (with five nodes and N = 3, some keys and not others).
    let keys: Vec<String> = (0..60).map(|i| format!("read-home-{i}")).collect();
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for key in &keys {
        let set = Command::Set {
            key: b(key),
            value: b("old"),
            ttl_ms: None,
        };
        loader
            .execute_with(set, Some(WriteConsistency::All), None)
            .await
            .unwrap();
        let replicas = region.replicas(key.as_bytes());
        let first = if replicas.contains(&home) {
            home.clone()
        } else {
            replicas[0].clone()
        };
        *expected.entry(first).or_default() += 1;
    }
    assert!(expected[&home] > 0 && expected[&home] < keys.len() as u64);
    let before = requests(&region);
    for key in &keys {
        let answer = client.execute(Command::Get { key: b(key) }).await.unwrap();
        assert_eq!(answer.reply, Reply::Value(b("old")), "{key}");
    }
    assert_eq!(served_since(&before, &region), expected);

    // The client's own writes, one at a time, go to the home where it
    // holds a replica, else to the key's first replica, and so do its
    // reads of them right after, which find the new value there.
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    let before = requests(&region);
    for key in &keys {
        let set = Command::Set {
            key: b(key),
            value: b("new"),
            ttl_ms: None,
        };
        client.execute(set).await.unwrap();
        let answer = client.execute(Command::Get { key: b(key) }).await.unwrap();
        assert_eq!(answer.reply, Reply::Value(b("new")), "{key}");
        let replicas = region.replicas(key.as_bytes());
        let coordinator = if replicas.contains(&home) {
            home.clone()
        } else {
            replicas[0].clone()
        };
        *expected.entry(coordinator).or_default() += 2;
    }
    assert_eq!(served_since(&before, &region), expected);

    // Many writes at once: the first HOME_WRITES_MAX go to the home, the
    // rest to their keys' first replicas other than the home (keys the
    // home holds, first or not).
    let keys: Vec<String> = (0..)
        .map(|i| format!("busy-{i}"))
        .filter(|key| region.replicas(key.as_bytes()).contains(&home))
        .take(3 * HOME_WRITES_MAX)
        .collect();
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    let mut home_first = 0;
    for (i, key) in keys.iter().enumerate() {
        let replicas = region.replicas(key.as_bytes());
        home_first += usize::from(replicas[0] == home);
        let other = replicas.iter().find(|r| **r != home).unwrap().clone();
        *expected
            .entry(if i < HOME_WRITES_MAX {
                home.clone()
            } else {
                other
            })
            .or_default() += 1;
    }
    assert!(home_first > 0 && home_first < keys.len(), "{home_first}");
    let before = requests(&region);
    // Spawned in order on the test's one thread: each routes before the
    // next starts, and none is answered before all have been sent.
    let writes: Vec<_> = keys
        .iter()
        .map(|key| {
            let (client, key) = (client.clone(), b(key));
            tokio::spawn(async move {
                client
                    .execute(Command::Set {
                        key,
                        value: b("busy"),
                        ttl_ms: None,
                    })
                    .await
            })
        })
        .collect();
    for write in writes {
        write.await.unwrap().unwrap();
    }
    assert_eq!(served_since(&before, &region), expected);
    region.shutdown().await;
}

#[tokio::test]
async fn a_client_with_an_outdated_topology_fetches_the_current_one_from_a_node() {
    let region = Region::start(3, 2).await;
    // The client knows only the first two nodes (the third joined since).
    let source = region.topology.source();
    let third = source.rfind("\n[[region.node]]").unwrap();
    let outdated = Topology::parse(&source[..third], "outdated.toml").unwrap();
    assert_eq!(outdated.nodes().count(), 2);
    let mut opts = region.options();
    opts.topology = outdated;
    let client = Client::connect(opts).await.unwrap();
    let last = region.ids[2].clone();

    within("the refresh", async {
        // Requests work meanwhile: nodes forward what they do not hold.
        client.register("before").set("v").await.unwrap();
        assert!(matches!(
            client.execute_on(&last, Command::Ping).await,
            Err(ClientError::BadRequest(_))
        ));

        assert!(client.refresh_topology().await.unwrap());
        assert_eq!(client.topology().nodes().count(), 3);
        assert_eq!(client.topology().source(), region.topology.source());
        let answer = client.execute_on(&last, Command::Ping).await.unwrap();
        assert_eq!(answer.reply, Reply::Pong);
        assert_eq!(client.register("before").get().await.unwrap(), Some(b("v")));
        // The same topology again changes nothing.
        assert!(!client.refresh_topology().await.unwrap());

        // A client fetches it by itself every `topology_refresh`.
        let mut opts = region.options();
        opts.topology = Topology::parse(&source[..third], "outdated.toml").unwrap();
        opts.topology_refresh = Duration::from_millis(100);
        let auto = Client::connect(opts).await.unwrap();
        auto.ping().await.unwrap();
        assert_eq!(auto.topology().nodes().count(), 2, "too early to refresh");
        tokio::time::sleep(Duration::from_millis(150)).await;
        auto.ping().await.unwrap(); // starts a fetch in the background
        for _ in 0..100 {
            if auto.topology().nodes().count() == 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(auto.topology().nodes().count(), 3);

        // A client that already has a newer version than the nodes run (a
        // node that has not taken a membership change yet) keeps it.
        assert_eq!(region.topology.version(), 0);
        let newer = source.replacen("[cluster]\n", "[cluster]\nversion = 7\n", 1);
        let mut opts = region.options();
        let newer_third = newer.rfind("\n[[region.node]]").unwrap();
        opts.topology = Topology::parse(&newer[..newer_third], "newer.toml").unwrap();
        assert_eq!(opts.topology.nodes().count(), 2);
        let ahead = Client::connect(opts).await.unwrap();
        assert!(!ahead.refresh_topology().await.unwrap());
        assert_eq!(ahead.topology().version(), 7);
        assert_eq!(ahead.topology().nodes().count(), 2);
        ahead.register("ahead").set("v").await.unwrap();
    })
    .await;
    region.shutdown().await;
}

#[tokio::test]
async fn a_client_connects_through_seed_addresses_of_its_cluster_only() {
    let region = Region::start(3, 2).await;
    // Another cluster, with its own CA.
    let other = Region::start(1, 1).await;
    let addr =
        |region: &Region, i: usize| region.topology.node(&region.ids[i]).unwrap().client_addr;
    let nobody: SocketAddr = {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.local_addr().unwrap()
    };
    let certs = region.dir.path();
    let wait = Duration::from_millis(500);

    within("the seeded connections", async {
        // The first seed that answers sends its topology; an IPv6 seed
        // first does not keep the client from the IPv4 ones.
        let v6_nobody: SocketAddr = format!("[::1]:{}", nobody.port()).parse().unwrap();
        let seeds = [v6_nobody, nobody, addr(&region, 1)];
        let topology = fetch_topology(&seeds, certs, "cli", wait).await.unwrap();
        assert_eq!(topology.source(), region.topology.source());
        assert_eq!(topology.nodes().count(), 3);

        let client = Client::connect_seeds(&[addr(&region, 2)], REGION, certs)
            .await
            .unwrap();
        client.register("seeded").set("v").await.unwrap();
        assert_eq!(client.register("seeded").get().await.unwrap(), Some(b("v")));
        assert_eq!(client.topology().nodes().count(), 3);

        // A node of another cluster is not a seed: its certificate is not
        // from this cluster's CA. With no seed left the error names each.
        let refused = fetch_topology(&[addr(&other, 0), nobody], certs, "cli", wait)
            .await
            .expect_err("no seed of this cluster");
        let ClientError::Unavailable(why) = &refused else {
            panic!("{refused:?}")
        };
        assert!(
            why.contains(&addr(&other, 0).to_string()) && why.contains(&nobody.to_string()),
            "{why}"
        );
        // The other cluster's own clients use it as a seed.
        let theirs = fetch_topology(&[addr(&other, 0)], other.dir.path(), "cli", wait)
            .await
            .unwrap();
        assert_eq!(theirs.source(), other.topology.source());

        assert!(matches!(
            fetch_topology(&[], certs, "cli", wait).await,
            Err(ClientError::BadRequest(_))
        ));
        assert!(matches!(
            Client::connect_seeds(&[addr(&region, 0)], "nowhere", certs).await,
            Err(ClientError::BadRequest(_))
        ));
    })
    .await;
    other.shutdown().await;
    region.shutdown().await;
}

#[tokio::test]
async fn a_random_home_that_leaves_the_region_is_replaced_and_a_chosen_one_is_kept() {
    let region = Region::start(3, 3).await;
    // The client's topology has a fourth node, which the cluster's lacks
    // (it was removed).
    let with_gone = format!(
        "{}\n[[region.node]]\nid = \"lab-9\"\nclient_addr = \"127.0.0.1:9\"\npeer_addr = \"127.0.0.1:10\"\n",
        region.topology.source()
    );
    let with_gone = Topology::parse(&with_gone, "with-gone.toml").unwrap();
    for routing in [Routing::ReadHome, Routing::RandomHome] {
        // Connect until the random home is the gone node.
        let mut client = None;
        for _ in 0..200 {
            let mut opts = region.options();
            opts.topology = with_gone.clone();
            opts.topology_refresh = Duration::ZERO;
            opts.routing = routing.clone();
            let c = Client::connect(opts).await.unwrap();
            if c.home().as_deref() == Some("lab-9") {
                client = Some(c);
                break;
            }
        }
        let client = client.expect("lab-9 as a random home in 200 tries");
        assert!(client.refresh_topology().await.unwrap());
        let home = client.home().expect("a new home");
        assert!(region.ids.contains(&home), "{routing:?}: {home}");
        client.register("rehomed").set("v").await.unwrap();
    }
    // A home the application chose stays its home (none while it is gone).
    let mut opts = region.options();
    opts.topology = with_gone.clone();
    opts.topology_refresh = Duration::ZERO;
    opts.routing = Routing::ReadHomeAt("lab-9".into());
    let chosen = Client::connect(opts).await.unwrap();
    assert!(chosen.refresh_topology().await.unwrap());
    assert_eq!(chosen.home(), None);
    region.shutdown().await;
}

#[tokio::test]
async fn seeds_that_run_different_versions_give_the_newest_topology() {
    let dir = TempDir::new().unwrap();
    let ids: Vec<String> = vec!["lab-1".into(), "lab-2".into()];
    CertStore::new(dir.path())
        .ensure_cluster(&["lab-1", "lab-2"], &["cli"])
        .unwrap();
    // lab-2 has taken a membership change (version 5) that lab-1 has not.
    let mut attempt = 0;
    let (old, handles) = loop {
        attempt += 1;
        let text = topology_text(&ids, &free_ports(4), 2);
        let old = Topology::parse(&text, "old.toml").unwrap();
        let newer = text.replacen("[cluster]\n", "[cluster]\nversion = 5\n", 1);
        let newer = Topology::parse(&newer, "newer.toml").unwrap();
        let nodes = [(&ids[0], &old), (&ids[1], &newer)];
        if let Some(handles) = start_nodes(dir.path(), &nodes, attempt < 5).await {
            break (old, handles);
        }
    };
    let addr = |i: usize| old.node(&ids[i]).unwrap().client_addr;
    let nobody = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let wait = Duration::from_secs(2);
    within("the seeded fetches", async {
        for seeds in [
            [addr(0), addr(1), nobody],
            [addr(1), addr(0), nobody],
            [nobody, addr(0), addr(1)],
        ] {
            let topology = fetch_topology(&seeds, dir.path(), "cli", wait)
                .await
                .unwrap();
            assert_eq!(topology.version(), 5, "seeds {seeds:?}");
        }
        let alone = fetch_topology(&[addr(0)], dir.path(), "cli", wait)
            .await
            .unwrap();
        assert_eq!(alone.version(), 0);
    })
    .await;
    for handle in handles {
        handle.shutdown().await;
    }
}

#[tokio::test]
async fn request_sent_to_a_node_outside_the_keys_replicas_is_forwarded() {
    let region = Region::start(3, 2).await;
    let client = region.client().await;
    let (key, outsider) = (0..100)
        .find_map(|i| {
            let key = format!("fwd-{i}");
            let replicas = region.replicas(key.as_bytes());
            let outsider = region.ids.iter().find(|id| !replicas.contains(id))?.clone();
            Some((key, outsider))
        })
        .expect("some key is not held by every node");
    let replicas = region.replicas(key.as_bytes());
    assert_eq!(replicas.len(), 2);

    within("the forwarded requests", async {
        let set = Command::Set {
            key: b(&key),
            value: b("via-outsider"),
            ttl_ms: None,
        };
        let answer = client.execute_on(&outsider, set).await.unwrap();
        assert_eq!(answer.reply, Reply::Ok);
        assert_eq!(answer.replicas_needed, 2);

        // Both replicas hold it; the outsider serves reads by forwarding too.
        for node in replicas.iter().chain([&outsider]) {
            let answer = client
                .execute_on(node, Command::Get { key: b(&key) })
                .await
                .unwrap();
            assert_eq!(answer.reply, Reply::Value(b("via-outsider")), "on {node}");
        }
    })
    .await;
    assert_eq!(region.node(&outsider).node_stats().forwarded, 2);
    for replica in &replicas {
        assert_eq!(region.node(replica).node_stats().forwarded, 0);
    }
    region.shutdown().await;
}

#[tokio::test]
async fn oversized_value_is_a_typed_too_large_error_and_the_node_keeps_serving() {
    let region = Region::start(3, 3).await;
    let client = region.client().await;
    within("the size checks", async {
        let reg = client.register("big");
        assert_eq!(
            reg.set(vec![7u8; VALUE_BYTES_MAX + 1]).await,
            Err(ClientError::TooLarge {
                what: "value",
                len: VALUE_BYTES_MAX as u64 + 1,
                max: VALUE_BYTES_MAX as u64
            })
        );
        assert_eq!(
            client
                .register(vec![b'k'; KEY_BYTES_MAX + 1])
                .set("v")
                .await,
            Err(ClientError::TooLarge {
                what: "key",
                len: KEY_BYTES_MAX as u64 + 1,
                max: KEY_BYTES_MAX as u64
            })
        );
        // A key that can never be written is an error to read as well, not
        // a miss.
        let key_too_large = Some(ClientError::TooLarge {
            what: "key",
            len: KEY_BYTES_MAX as u64 + 1,
            max: KEY_BYTES_MAX as u64,
        });
        let long = vec![b'k'; KEY_BYTES_MAX + 1];
        assert_eq!(
            client.register(long.clone()).get().await.err(),
            key_too_large
        );
        assert_eq!(
            client.set(long.clone()).members().await.err(),
            key_too_large
        );
        assert_eq!(client.ttl(long.clone()).await.err(), key_too_large);
        assert_eq!(client.type_of(long).await.err(), key_too_large);
        // Over the frame limit: refused before it is sent.
        assert!(matches!(
            reg.set(vec![7u8; FRAME_BYTES_MAX]).await,
            Err(ClientError::TooLarge { what: "request", max, .. }) if max == FRAME_BYTES_MAX as u64
        ));
        // A set cannot grow past what one answer can carry, so it can
        // always be read back.
        let set = client.set("big-set");
        let mut members = 0;
        let refused = loop {
            match set.add(format!("{members:0100}").into_bytes()).await {
                Ok(_) => members += 1,
                Err(e) => break e,
            }
            assert!(members < 1_000, "never refused");
        };
        assert!(
            matches!(
                refused,
                ClientError::TooLarge {
                    what: "the key's value",
                    ..
                }
            ),
            "{refused}"
        );
        assert_eq!(set.members().await.unwrap().len(), members);
        // The largest value allowed goes through, and the node serves on.
        reg.set(vec![7u8; VALUE_BYTES_MAX]).await.unwrap();
        assert_eq!(
            reg.get().await.unwrap().map(|v| v.len()),
            Some(VALUE_BYTES_MAX)
        );
        client.ping().await.unwrap();
    })
    .await;
    region.shutdown().await;
}

/// Dials `node`'s client endpoint with raw quinn and `identity`.
async fn raw_connection(
    region: &Region,
    node: &str,
    identity: &meridian::tls::Identity,
) -> quinn::Connection {
    raw_connection_with(region, node, identity, &TransportLimits::default()).await
}

/// [`raw_connection`] with these transport limits on the client's side.
async fn raw_connection_with(
    region: &Region,
    node: &str,
    identity: &meridian::tls::Identity,
    limits: &TransportLimits,
) -> quinn::Connection {
    let ca = CertStore::new(region.dir.path())
        .load_ca_certificate()
        .unwrap();
    let config = client_config(identity, &ca, limits).unwrap();
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(config);
    let addr: SocketAddr = region.node(node).client_addr();
    let name = PeerIdentity::node(node).unwrap().dns_name();
    endpoint.connect(addr, &name).unwrap().await.unwrap()
}

fn raw_frame(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u32).to_le_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

fn ping_frame(id: u64) -> Vec<u8> {
    let mut out = Vec::new();
    let request = Request {
        id,
        command: Command::Ping,
        write: None,
        read: None,
    };
    encode_into(&request, &mut out, FRAME_BYTES_MAX).unwrap();
    out
}

/// Reads the node's preamble, then `n` responses.
async fn read_responses(recv: &mut quinn::RecvStream, n: usize) -> Vec<Response> {
    let mut theirs = [0u8; 6];
    recv.read_exact(&mut theirs).await.unwrap();
    assert_eq!(theirs, preamble());
    let mut reader = FrameReader::new(FRAME_BYTES_MAX);
    let mut responses = Vec::new();
    while responses.len() < n {
        let chunk = recv.read_chunk(65536, true).await.unwrap().unwrap();
        reader.extend(&chunk.bytes);
        while let Some(response) = reader.next_frame::<Response>().unwrap() {
            responses.push(response);
        }
    }
    responses
}

async fn reset_code(recv: &mut quinn::RecvStream) -> u64 {
    let mut buf = [0u8; 64];
    loop {
        match recv.read(&mut buf).await {
            Ok(Some(_)) => continue,
            Err(quinn::ReadError::Reset(code)) => return code.into_inner(),
            other => panic!("expected a reset, got {other:?}"),
        }
    }
}

fn is_bad_request(response: &Response, id: u64) -> bool {
    response.id == id && matches!(response.result, Err(ErrorReply::BadRequest { .. }))
}

fn is_pong(response: &Response, id: u64) -> bool {
    response.id == id && matches!(&response.result, Ok(a) if a.reply == Reply::Pong)
}

/// A node upgraded before its clients serves those of every protocol
/// version from `CLIENT_VERSION_MIN` on, answering each in its own version
/// (what an older client checks); an older one is refused with a reset
/// saying why.
#[tokio::test]
async fn clients_of_older_protocol_versions_are_served_in_their_version() {
    let region = Region::start(3, 3).await;
    let node = region.ids[0].clone();
    let cli = region.cli_identity();
    let connection = raw_connection(&region, &node, &cli).await;
    within("clients of every version", async {
        for version in CLIENT_VERSION_MIN..=PROTOCOL_VERSION {
            let (mut send, mut recv) = connection.open_bi().await.unwrap();
            let mut wire = preamble_of(version).to_vec();
            let key = format!("v{version}");
            for (id, command) in [
                (
                    1,
                    Command::Set {
                        key: key.clone().into(),
                        value: "x".into(),
                        ttl_ms: None,
                    },
                ),
                (
                    2,
                    Command::Get {
                        key: key.clone().into(),
                    },
                ),
                (3, Command::Type { key: key.into() }),
            ] {
                let request = Request {
                    id,
                    command,
                    write: None,
                    read: None,
                };
                encode_into(&request, &mut wire, FRAME_BYTES_MAX).unwrap();
            }
            send.write_all(&wire).await.unwrap();
            let mut theirs = [0u8; 6];
            recv.read_exact(&mut theirs).await.unwrap();
            assert_eq!(
                theirs,
                preamble_of(version),
                "answered in the client's version"
            );
            let mut reader = FrameReader::new(FRAME_BYTES_MAX);
            let mut responses = Vec::new();
            while responses.len() < 3 {
                let chunk = recv.read_chunk(65536, true).await.unwrap().unwrap();
                reader.extend(&chunk.bytes);
                while let Some(response) = reader.next_frame::<Response>().unwrap() {
                    responses.push(response);
                }
            }
            responses.sort_by_key(|r| r.id);
            let replies: Vec<Reply> = responses
                .into_iter()
                .map(|r| r.result.expect("answered").reply)
                .collect();
            assert_eq!(
                replies,
                [
                    Reply::Ok,
                    Reply::Value("x".into()),
                    Reply::Type(Some(Kind::Register))
                ],
                "version {version}"
            );
        }
        for version in [CLIENT_VERSION_MIN - 1, PROTOCOL_VERSION + 1] {
            let (mut send, mut recv) = connection.open_bi().await.unwrap();
            send.write_all(&[preamble_of(version).to_vec(), ping_frame(1)].concat())
                .await
                .unwrap();
            assert_eq!(
                reset_code(&mut recv).await,
                u64::from(codes::VERSION_MISMATCH),
                "version {version}"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn a_client_that_does_not_read_its_answers_gets_errors_instead_of_memory() {
    let region = Region::start(3, 3).await;
    let node = region.ids[0].clone();
    let client = region.client().await;
    let cli = region.cli_identity();
    let connection = raw_connection(&region, &node, &cli).await;

    within("the unread answers", async {
        client
            .register("fat")
            .set(vec![1u8; VALUE_BYTES_MAX])
            .await
            .unwrap();
        // 1,000 gets of a 4 KiB value sent at once and not read: about
        // 4 MiB of answers against a budget of 64 frames (512 KiB).
        let (mut send, mut recv) = connection.open_bi().await.unwrap();
        let mut wire = preamble().to_vec();
        let n = 1_000u64;
        for id in 1..=n {
            let request = Request {
                id,
                command: Command::Get { key: "fat".into() },
                write: None,
                read: None,
            };
            encode_into(&request, &mut wire, FRAME_BYTES_MAX).unwrap();
        }
        send.write_all(&wire).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let responses = read_responses(&mut recv, n as usize).await;
        let mut ids: Vec<u64> = responses.iter().map(|r| r.id).collect();
        ids.sort_unstable();
        assert_eq!(
            ids,
            (1..=n).collect::<Vec<_>>(),
            "every request answered once"
        );
        let (mut values, mut refused) = (0, 0);
        for r in &responses {
            match &r.result {
                Ok(a) if a.reply == Reply::Value(vec![1u8; VALUE_BYTES_MAX].into()) => values += 1,
                Err(ErrorReply::Unavailable { reason }) if reason.contains("not read") => {
                    refused += 1
                }
                other => panic!("unexpected answer {other:?}"),
            }
        }
        assert!(
            values > 0 && refused > 0,
            "{values} values, {refused} refused"
        );
        // The connection and the node go on.
        let (mut send, mut recv) = connection.open_bi().await.unwrap();
        send.write_all(&[preamble().to_vec(), ping_frame(1)].concat())
            .await
            .unwrap();
        assert!(is_pong(&read_responses(&mut recv, 1).await[0], 1));
        assert_eq!(
            client.register("fat").get().await.unwrap().map(|v| v.len()),
            Some(VALUE_BYTES_MAX)
        );
    })
    .await;
    region.shutdown().await;
}

#[tokio::test]
async fn a_stream_stuck_on_unread_answers_ends_when_its_connection_closes() {
    let region = Region::start(3, 3).await;
    let node = region.ids[0].clone();
    let cli = region.cli_identity();
    // The client takes in at most 2,000 bytes of answers it has not read.
    let limits = TransportLimits {
        stream_receive_window_bytes: 2_000,
        receive_window_bytes: 2_000,
        ..TransportLimits::default()
    };
    let connection = raw_connection_with(&region, &node, &cli, &limits).await;
    let stats = || region.node(&node).net_stats().client_streams_open;

    within("the stuck stream", async {
        // More pings than a stream may have in flight, never read: the
        // node's writer blocks and its reader waits for permits.
        let (mut send, _recv) = connection.open_bi().await.unwrap();
        let mut wire = preamble().to_vec();
        for id in 0..3_000 {
            wire.extend(ping_frame(id));
        }
        send.write_all(&wire).await.unwrap();
        while stats() == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(stats(), 1);
        connection.close(0u32.into(), b"bye");
        while stats() > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    region.shutdown().await;
}

#[tokio::test]
async fn many_streams_each_in_the_middle_of_a_large_request_all_get_answers() {
    let region = Region::start(3, 3).await;
    let node = region.ids[0].clone();
    let cli = region.cli_identity();
    let connection = raw_connection(&region, &node, &cli).await;

    within("the half-sent requests", async {
        // 16 streams whose large requests (about 6 KB each, 96 KB in
        // all: more than 8 frames' worth) arrive all but their last byte
        // first, then the rest.
        let mut streams = Vec::new();
        for i in 0..16u64 {
            let (mut send, recv) = connection.open_bi().await.unwrap();
            let request = Request {
                id: i,
                command: Command::SAdd {
                    key: format!("half-{i}").into_bytes().into(),
                    members: vec![vec![b'a'; 3_000].into(), vec![b'b'; 3_000].into()],
                },
                write: None,
                read: None,
            };
            let mut wire = preamble().to_vec();
            encode_into(&request, &mut wire, FRAME_BYTES_MAX).unwrap();
            let last = wire.pop().unwrap();
            send.write_all(&wire).await.unwrap();
            streams.push((send, recv, last));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        for (send, _, last) in &mut streams {
            send.write_all(&[*last]).await.unwrap();
        }
        for (i, (_, recv, _)) in streams.iter_mut().enumerate() {
            let response = read_responses(recv, 1).await.remove(0);
            assert_eq!(response.id, i as u64);
            assert!(response.result.is_ok(), "{response:?}");
        }
    })
    .await;
    region.shutdown().await;
}

#[tokio::test]
async fn garbage_frames_on_a_raw_stream_get_errors_and_the_node_keeps_serving() {
    let region = Region::start(3, 3).await;
    let node = region.ids[0].clone();
    let cli = region.cli_identity();
    let connection = raw_connection(&region, &node, &cli).await;

    within("the raw streams", async {
        // A frame that decodes to no request, but names its id, costs that
        // request only; an oversized frame likewise. The stream goes on.
        let (mut send, mut recv) = connection.open_bi().await.unwrap();
        let mut wire = preamble().to_vec();
        wire.extend(raw_frame(&[7, 0xff, 0xff, 0xff]));
        wire.extend(ping_frame(8));
        let oversized = FRAME_BYTES_MAX + 1;
        wire.extend((oversized as u32).to_le_bytes());
        wire.push(9);
        wire.extend(vec![0xee; oversized - 1]);
        wire.extend(ping_frame(10));
        send.write_all(&wire).await.unwrap();
        // Responses come in completion order; ids match them up.
        let mut responses = read_responses(&mut recv, 4).await;
        responses.sort_by_key(|r| r.id);
        assert!(is_bad_request(&responses[0], 7), "{:?}", responses[0]);
        assert!(is_pong(&responses[1], 8), "{:?}", responses[1]);
        assert!(is_bad_request(&responses[2], 9), "{:?}", responses[2]);
        assert!(
            matches!(&responses[2].result, Err(ErrorReply::BadRequest { reason }) if reason.contains("exceeds")),
            "{:?}",
            responses[2]
        );
        assert!(is_pong(&responses[3], 10), "{:?}", responses[3]);

        // Streams that are not Meridian, or another version, or lose the
        // framing, are reset with a code saying why.
        let cases: [(Vec<u8>, u32); 3] = [
            (b"GET / HTTP/1.1\r\n\r\n".to_vec(), codes::BAD_PREAMBLE),
            (
                {
                    let mut p = preamble();
                    p[4..6].copy_from_slice(&(PROTOCOL_VERSION + 1).to_le_bytes());
                    p.to_vec()
                },
                codes::VERSION_MISMATCH,
            ),
            (
                [preamble().to_vec(), raw_frame(&[0xff, 0xff, 0xff])].concat(),
                codes::MALFORMED_FRAME,
            ),
        ];
        for (bytes, code) in cases {
            let (mut send, mut recv) = connection.open_bi().await.unwrap();
            send.write_all(&bytes).await.unwrap();
            assert_eq!(reset_code(&mut recv).await, u64::from(code), "{}", codes::describe(code.into()));
        }

        // The first stream and the node still serve.
        send.write_all(&ping_frame(11)).await.unwrap();
        let mut reader = FrameReader::new(FRAME_BYTES_MAX);
        let response = loop {
            let chunk = recv.read_chunk(65536, true).await.unwrap().unwrap();
            reader.extend(&chunk.bytes);
            if let Some(r) = reader.next_frame::<Response>().unwrap() {
                break r;
            }
        };
        assert!(is_pong(&response, 11), "{response:?}");
        let client = region.client().await;
        client.register("after").set("garbage").await.unwrap();
        assert_eq!(
            client.register("after").get().await.unwrap(),
            Some(b("garbage"))
        );
    })
    .await;
    assert!(region.node(&node).net_stats().bad_frames >= 5);
    region.shutdown().await;
}

#[tokio::test]
async fn client_certificate_not_signed_by_the_cluster_ca_is_refused() {
    let region = Region::start(3, 3).await;
    let rogue_ca = ClusterCa::generate(Validity::days_from_now(30)).unwrap();
    let rogue = rogue_ca
        .issue(
            &PeerIdentity::client("cli").unwrap(),
            Validity::default_for(Role::Client),
        )
        .unwrap();
    let node = region.ids[0].clone();

    within("the refusals", async {
        // The node refuses the handshake; it shows on the first stream.
        let connection = raw_connection(&region, &node, &rogue).await;
        let (mut send, mut recv) = connection.open_bi().await.unwrap();
        let _ = send
            .write_all(&[preamble().to_vec(), ping_frame(1)].concat())
            .await;
        let mut buf = [0u8; 16];
        assert!(recv.read(&mut buf).await.is_err());
        let reason = connection
            .close_reason()
            .expect("the connection was refused");
        assert_eq!(
            tls_alert(&reason),
            Some(rustls::AlertDescription::UnknownCA)
        );

        // The SDK will not even present such a certificate.
        let rogue_dir = TempDir::new().unwrap();
        let store = CertStore::new(rogue_dir.path());
        std::fs::copy(
            CertStore::new(region.dir.path()).ca_cert_path(),
            store.ca_cert_path(),
        )
        .unwrap();
        let peer = PeerIdentity::client("cli").unwrap();
        std::fs::write(store.cert_path(&peer), rogue.cert_pem()).unwrap();
        std::fs::write(store.key_path(&peer), rogue.key_pem()).unwrap();
        let mut opts = region.options();
        opts.cert_dir = rogue_dir.path().to_owned();
        match Client::connect(opts).await {
            Err(ClientError::Tls(message)) => assert!(message.contains("client-cli"), "{message}"),
            Err(other) => panic!("expected a TLS error, got {other:?}"),
            Ok(_) => panic!("a client with a foreign certificate was built"),
        }

        // A certificate directory of another cluster altogether (its CA and
        // a client certificate it issued): this client refuses the node's
        // certificate, and says so rather than blaming the node.
        let other_dir = TempDir::new().unwrap();
        let other = CertStore::new(other_dir.path());
        std::fs::write(other.ca_cert_path(), rogue_ca.certificate().pem()).unwrap();
        std::fs::write(other.cert_path(&peer), rogue.cert_pem()).unwrap();
        std::fs::write(other.key_path(&peer), rogue.key_pem()).unwrap();
        let mut opts = region.options();
        opts.cert_dir = other_dir.path().to_owned();
        let refused = match Client::connect(opts).await {
            Ok(client) => client.ping().await.map(|_| ()),
            Err(e) => Err(e),
        };
        match refused {
            Err(ClientError::Tls(message)) => assert!(
                message.contains("this client refused the certificate of"),
                "{message}"
            ),
            other => panic!("expected a TLS error, got {other:?}"),
        }
        // So do seeds: every one refused, which is a TLS error to fix.
        let seed = region.topology.node(&node).unwrap().client_addr;
        match Client::connect_seeds(&[seed], "lab", other_dir.path()).await {
            Err(ClientError::Tls(message)) => assert!(
                message.contains("this client refused the certificate of"),
                "{message}"
            ),
            other => panic!("expected a TLS error from the seeds, got {other:?}"),
        }

        // The node still serves clients of its own CA.
        region.client().await.ping().await.unwrap();
    })
    .await;
    region.shutdown().await;
}

#[tokio::test]
async fn peer_whose_certificate_names_no_node_of_the_topology_is_refused() {
    let region = Region::start(3, 3).await;
    // Signed by the cluster CA, but for a node the topology does not have.
    let stranger = CertStore::new(region.dir.path())
        .issue_node("lab-9")
        .unwrap();
    let ca = CertStore::new(region.dir.path())
        .load_ca_certificate()
        .unwrap();
    let config = client_config(&stranger, &ca, &TransportLimits::default()).unwrap();
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(config);
    let node = &region.ids[0];
    let name = PeerIdentity::node(node).unwrap().dns_name();

    within("the refusal", async {
        let connection = endpoint
            .connect(region.node(node).peer_addr(), &name)
            .unwrap()
            .await
            .unwrap();
        match connection.closed().await {
            quinn::ConnectionError::ApplicationClosed(close) => {
                assert_eq!(close.error_code, codes::UNKNOWN_PEER.into());
            }
            other => panic!("expected an application close, got {other:?}"),
        }
        region.client().await.ping().await.unwrap();
    })
    .await;
    region.shutdown().await;
}

#[tokio::test]
async fn many_concurrent_requests_from_one_client_all_complete() {
    let region = Region::start(3, 3).await;
    let client = region.client().await;
    let tasks_n = 500;
    within("the concurrent increments", async {
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..tasks_n {
            let client = client.clone();
            tasks.spawn(async move {
                client
                    .counter(format!("c{}", i % 10).as_str())
                    .incr(1)
                    .await
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.unwrap().unwrap();
        }
        let mut total = 0;
        for i in 0..10 {
            total += client
                .counter(format!("c{i}").as_str())
                .get()
                .await
                .unwrap();
        }
        assert_eq!(total, tasks_n);
    })
    .await;
    region.shutdown().await;
}

/// `execute_many` runs more commands than it keeps in flight, over every
/// node, and answers each in order; `mset` and `mget` are Redis's: the
/// last value of a key named twice, `None` for a missing key or one of
/// another type, a counter in decimal. With a node down the others still
/// answer, each command on its own.
#[tokio::test]
async fn many_commands_at_once_answer_in_order_and_mget_reads_as_redis_does() {
    use meridian::client::MANY_INFLIGHT_MAX;
    let mut region = Region::start(3, 2).await;
    let client = region.client().await;
    within("the writes and reads", async {
        let n = MANY_INFLIGHT_MAX * 3 + 5;
        let incrs = (0..n).map(|i| Command::IncrBy {
            key: format!("many:{i}").into(),
            by: i as i64,
        });
        let results = client.execute_many(incrs).await;
        assert_eq!(results.len(), n);
        for (i, result) in results.into_iter().enumerate() {
            assert_eq!(result.unwrap().reply, Reply::Int(i as i64), "command {i}");
        }
        assert!(client.execute_many(Vec::new()).await.is_empty());

        let pairs: Vec<(String, String)> = (0..200)
            .map(|i| (format!("m:{i}"), format!("v{i}")))
            .chain([("m:0".to_owned(), "last".to_owned())])
            .collect();
        client.mset(pairs).await.unwrap();
        client.set("a-set").add("x").await.unwrap();
        client.counter("a-counter").incr(42).await.unwrap();
        let keys: Vec<String> = (0..200)
            .map(|i| format!("m:{i}"))
            .chain(["missing", "a-set", "a-counter"].map(str::to_owned))
            .collect();
        let values = client.mget(keys).await.unwrap();
        assert_eq!(values.len(), 203);
        assert_eq!(
            values[0],
            Some(b("last")),
            "the last value of a key named twice"
        );
        for (i, value) in values.iter().enumerate().take(200).skip(1) {
            assert_eq!(value, &Some(b(&format!("v{i}"))));
        }
        assert_eq!(values[200..], [None, None, Some(b("42"))]);
        assert!(client.mget(Vec::<Bytes>::new()).await.unwrap().is_empty());

        // Expiry at a time of this machine's clock.
        let now = std::time::SystemTime::now();
        assert!(client
            .expire_at("m:2", now + Duration::from_secs(600))
            .await
            .unwrap());
        assert!(matches!(
            client.ttl("m:2").await.unwrap(),
            Ttl::Ms(ms) if (590_000..=600_000).contains(&ms)
        ));
        assert!(client
            .expire_at("m:3", now - Duration::from_secs(1))
            .await
            .unwrap());
        assert_eq!(client.ttl("m:3").await.unwrap(), Ttl::Missing);
        assert!(!client.expire_at("missing", now).await.unwrap());
        client.mset([("m:2", "v2"), ("m:3", "v3")]).await.unwrap();

        let tags = client.set("many-set");
        tags.add_all(["a", "c"]).await.unwrap();
        assert_eq!(
            tags.contains_each(["a", "b", "c"]).await.unwrap(),
            [true, false, true]
        );
        let user = client.map("many-map");
        user.put("name", "ada").await.unwrap();
        user.incr("visits", 3).await.unwrap();
        assert_eq!(
            user.get_each(["name", "age", "visits"]).await.unwrap(),
            [Some(b("ada")), None, Some(b("3"))]
        );
        assert!(matches!(
            client.map("a-set").get_each(["f"]).await,
            Err(ClientError::WrongType { .. })
        ));
    })
    .await;

    // One node down: with N = 2 every key has a replica left, and each
    // command fails over on its own.
    let down = region.replicas(b"m:1")[0].clone();
    region.stop(&down).await;
    within("mget with a node down", async {
        let keys: Vec<String> = (0..200).map(|i| format!("m:{i}")).collect();
        let values = client.mget(keys).await.unwrap();
        assert_eq!(values[1], Some(b("v1")));
        assert!(values.iter().all(Option::is_some));
    })
    .await;
    region.shutdown().await;
}

/// A client that busy-polls after each request gets the same answers as
/// one that sleeps, one request at a time and many at once, on either kind
/// of runtime.
#[tokio::test]
async fn a_busy_polling_client_gets_the_same_answers() {
    let region = Region::start(3, 3).await;
    let mut opts = region.options();
    opts.busy_poll = Duration::from_micros(100);
    let client = Client::connect(opts.clone()).await.unwrap();
    within("sequential requests", async {
        for i in 0..200 {
            let key = format!("bp{}", i % 20);
            client.counter(key.as_str()).incr(1).await.unwrap();
        }
        for i in 0..20 {
            assert_eq!(
                client
                    .counter(format!("bp{i}").as_str())
                    .get()
                    .await
                    .unwrap(),
                10
            );
        }
    })
    .await;
    drop(client);
    // Longer than the most is refused with a typed error.
    let mut too_long = opts.clone();
    too_long.busy_poll = BUSY_POLL_MAX + Duration::from_micros(1);
    assert!(matches!(
        Client::connect(too_long).await,
        Err(ClientError::BadRequest(m)) if m.contains("busy_poll")
    ));
    // The same on a multi-thread runtime (where the option does nothing),
    // with requests in flight together (a thread of its own; the nodes run
    // on the test's runtime).
    let answered = tokio::task::spawn_blocking(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(within("requests on a multi-thread runtime", async move {
            let client = Client::connect(opts).await.unwrap();
            let mut tasks = tokio::task::JoinSet::new();
            for i in 0..100 {
                let client = client.clone();
                tasks.spawn(async move {
                    let key = format!("mt{i}");
                    client
                        .register(key.as_str())
                        .set(key.as_str())
                        .await
                        .unwrap();
                    client.register(key.as_str()).get().await.unwrap()
                        == Some(Bytes::from(key.as_str()))
                });
            }
            let mut ok = 0;
            while let Some(done) = tasks.join_next().await {
                ok += usize::from(done.unwrap());
            }
            ok
        }))
    })
    .await
    .unwrap();
    assert_eq!(answered, 100);
    region.shutdown().await;
}

/// Requests for keys whose first replica cannot be reached fail over
/// together: callers waiting on the same failed dial do not each dial the
/// unreachable node again in turn (64 of them would wait a minute).
#[tokio::test]
async fn requests_queued_on_an_unreachable_node_fail_over_together() {
    let mut region = Region::start(3, 3).await;
    region.stop("lab-3").await;
    // A client that never had a connection to lab-3: its first dial fails.
    let client = region.client().await;
    let keys: Vec<String> = (0..)
        .map(|i| format!("gone-{i}"))
        .filter(|k| region.replicas(k.as_bytes())[0] == "lab-3")
        .take(64)
        .collect();
    let started = std::time::Instant::now();
    let mut calls = tokio::task::JoinSet::new();
    for key in keys {
        let client = client.clone();
        calls.spawn(async move { client.counter(b(&key)).incr(1).await });
    }
    while let Some(done) = calls.join_next().await {
        assert_eq!(done.unwrap().unwrap(), 1);
    }
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(20),
        "64 requests took {took:?} to fail over"
    );
    region.shutdown().await;
}

#[tokio::test]
async fn many_large_reads_at_once_on_one_client_all_answer() {
    let region = Region::start(3, 3).await;
    let client = region.client().await;
    let value = vec![b'x'; VALUE_BYTES_MAX - 64];
    client.register("big").set(value.as_slice()).await.unwrap();
    within("the reads", async {
        // Far more bytes of answers at once than a connection may have on
        // their way: the node holds some back, and the client, which reads
        // its answers as they come, asks for those again.
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..400 {
            let client = client.clone();
            tasks.spawn(async move {
                let mut failed = Vec::new();
                for _ in 0..3 {
                    match client.register("big").get().await {
                        Ok(Some(v)) if v.len() == VALUE_BYTES_MAX - 64 => {}
                        other => failed.push(format!("{other:?}")),
                    }
                }
                failed
            });
        }
        let mut failed = Vec::new();
        while let Some(done) = tasks.join_next().await {
            failed.extend(done.unwrap());
        }
        assert!(
            failed.is_empty(),
            "{} of 1200 reads failed, the first: {}",
            failed.len(),
            failed[0].chars().take(300).collect::<String>()
        );
    })
    .await;
    region.shutdown().await;
}

#[tokio::test]
async fn sets_and_maps_page_through_the_sdk_from_any_replica() {
    let region = Region::start(3, 3).await;
    let client = region.client().await;
    within("the scans", async {
        let set = client.set("scanned");
        let members: Vec<String> = (0..300).map(|i| format!("m{i:03}")).collect();
        for chunk in members.chunks(50) {
            set.add_all(chunk.iter().map(String::as_str)).await.unwrap();
        }
        let map = client.map("scanned-map");
        for i in 0..40 {
            map.put(format!("f{i:02}"), format!("v{i}")).await.unwrap();
        }
        map.incr("f99", 7).await.unwrap();

        // Page by page, 7 at a time: every member once, in order.
        let mut pages = set.scan(7);
        let mut seen = Vec::new();
        while let Some(page) = pages.next_page().await.unwrap() {
            assert!((1..=7).contains(&page.len()), "a page of {}", page.len());
            seen.extend(page);
        }
        assert_eq!(seen, members.iter().map(|m| b(m)).collect::<Vec<_>>());
        assert_eq!(pages.next_page().await.unwrap(), None, "done stays done");

        // The pages of one scan may come from different replicas, and a
        // quorum read merges replicas per page.
        let first = set.scan_page(None, 100).await.unwrap();
        let after = first.after().unwrap().clone();
        assert_eq!(after, b("m099"));
        let quorum = client.with_read(ReadConsistency::Quorum);
        let mut rest = Vec::new();
        let mut from = Some(after);
        for node in region.ids.iter().cycle() {
            let Some(after) = from.take() else { break };
            let answer = quorum
                .execute_on(
                    node,
                    Command::SScan {
                        key: b("scanned"),
                        after: Some(after),
                        count: 60,
                    },
                )
                .await
                .unwrap();
            let Reply::SetPage(page) = answer.reply else {
                panic!("{:?}", answer.reply)
            };
            from = page.after().cloned();
            rest.extend(page.items);
        }
        assert_eq!(rest.len(), 200);
        assert_eq!(rest[0], b("m100"));

        // Members added behind the scan are not seen, those ahead are; the
        // members there all along are seen once.
        let mut pages = set.scan(100);
        let mut seen = pages.next_page().await.unwrap().unwrap();
        set.add_all(["a-behind", "z-ahead"]).await.unwrap();
        while let Some(page) = pages.next_page().await.unwrap() {
            seen.extend(page);
        }
        assert_eq!(seen.len(), 301);
        assert_eq!(seen.last(), Some(&b("z-ahead")));
        assert!(!seen.contains(&b("a-behind")));

        // A map's fields come with their values, counters included.
        let fields = map.scan(16).collect().await.unwrap();
        assert_eq!(fields.len(), 41);
        assert_eq!(fields[0], (b("f00"), FieldValue::Register(b("v0"))));
        assert_eq!(fields[40], (b("f99"), FieldValue::Counter(7)));
        assert_eq!(fields, map.get_all().await.unwrap());

        // A missing key is an empty scan; another type is WRONGTYPE; a
        // page of nothing is refused before it is sent.
        assert_eq!(
            client.set("no-such-set").scan(10).collect().await,
            Ok(vec![])
        );
        client.register("a-register").set("v").await.unwrap();
        assert!(matches!(
            client.set("a-register").scan_page(None, 10).await,
            Err(ClientError::WrongType {
                wanted: Kind::Set,
                found: Kind::Register
            })
        ));
        assert!(matches!(
            client.map("a-register").scan(10).next_page().await,
            Err(ClientError::WrongType {
                wanted: Kind::Map,
                ..
            })
        ));
        assert!(matches!(
            set.scan_page(None, 0).await,
            Err(ClientError::BadRequest(_))
        ));
    })
    .await;
    region.shutdown().await;
}

#[tokio::test]
async fn a_scan_lists_the_regions_keys_once_each_and_goes_on_without_a_node() {
    use meridian::client::ScanOptions;
    use meridian::keyhash::key_hash;
    // Four nodes, two replicas a key: each node holds about half the keys.
    let mut region = Region::start(4, 2).await;
    let client = region.client().await;
    let mut expected = Vec::new();
    within("the writes", async {
        for i in 0..120 {
            let key = format!("user:{i}");
            client.register(key.as_str()).set("v").await.unwrap();
            expected.push(b(&key));
        }
        for i in 0..30 {
            let key = format!("hits:{i}");
            client.counter(key.as_str()).incr(1).await.unwrap();
            expected.push(b(&key));
        }
        for i in 0..10 {
            client.register(format!("gone:{i}")).set("v").await.unwrap();
            assert!(client.del(format!("gone:{i}")).await.unwrap());
        }
    })
    .await;
    expected.sort_by_key(|k| (key_hash(k), k.clone()));

    // A node answers from its own keys only: fewer than all of them.
    let mut own = 0;
    let mut cursor = 0;
    loop {
        let command = Command::Scan {
            from: cursor,
            count: 1_000,
            pattern: None,
            kind: None,
        };
        let page = match client
            .execute_on(&region.ids[0], command)
            .await
            .unwrap()
            .reply
        {
            Reply::Keys(page) => page,
            other => panic!("{other:?}"),
        };
        own += page.keys.len();
        if page.next == 0 {
            break;
        }
        cursor = page.next;
    }
    assert!(own > 20 && own < expected.len(), "{own} keys on one node");

    within("scans", async {
        for count in [1, 7, 1_000] {
            let options = ScanOptions {
                count,
                ..ScanOptions::default()
            };
            let keys = client.scan_keys(options).collect().await.unwrap();
            assert_eq!(keys, expected, "count {count}");
        }
        let users = client
            .scan_keys(ScanOptions::matching("user:1?"))
            .collect()
            .await
            .unwrap();
        assert_eq!(users.len(), 10, "user:10..user:19");
        let counters = ScanOptions {
            kind: Some(Kind::Counter),
            ..ScanOptions::default()
        };
        let found = client.scan_keys(counters.clone()).collect().await.unwrap();
        assert_eq!(found.len(), 30);
        assert!(found.iter().all(|k| k.starts_with(b"hits:")));
        // A set's members, and a map's fields, matching a pattern.
        let tags = client.set("tags:of-a-set");
        for m in ["a1", "b1", "a2", "b2", "a3"] {
            tags.add(m).await.unwrap();
        }
        let mut pages = tags.scan_matching("a*", 2);
        let mut seen = Vec::new();
        while let Some(page) = pages.next_page().await.unwrap() {
            seen.push(page);
        }
        // The last page, b2 alone, kept nothing: the scan ends there.
        assert_eq!(seen, [vec![b("a1"), b("a2")], vec![b("a3")]]);
        let too_long = vec![b'*'; meridian::node::SCAN_PATTERN_BYTES_MAX + 1];
        assert!(matches!(
            tags.scan_matching(too_long, 10).next_page().await,
            Err(ClientError::BadRequest(_))
        ));
        let prefs = client.map("prefs:of-a-map");
        prefs.put("pa", "1").await.unwrap();
        prefs.put("pb", "2").await.unwrap();
        let fields = prefs.scan_matching("?b", 10).collect().await.unwrap();
        assert_eq!(fields, [(b("pb"), FieldValue::Register(b("2")))]);
        expected.push(b("tags:of-a-set"));
        expected.push(b("prefs:of-a-map"));
        expected.sort_by_key(|k| (key_hash(k), k.clone()));
        let zero = ScanOptions {
            count: 0,
            ..ScanOptions::default()
        };
        assert!(matches!(
            client.scan_page(0, &zero).await,
            Err(ClientError::BadRequest(_))
        ));
        // Refused by a node too, for a client that does not check.
        let command = Command::Scan {
            from: 0,
            count: 1,
            pattern: Some(vec![b'*'; meridian::node::SCAN_PATTERN_BYTES_MAX + 1].into()),
            kind: None,
        };
        match client.execute_on(&region.ids[0], command).await {
            Err(ClientError::BadRequest(reason)) => {
                assert_eq!(
                    reason,
                    "MATCH pattern of 257 bytes exceeds the limit of 256 bytes"
                )
            }
            other => panic!("{other:?}"),
        }
        let long = ScanOptions::matching(vec![b'*'; meridian::node::SCAN_PATTERN_BYTES_MAX + 1]);
        match client.scan_page(0, &long).await {
            Err(ClientError::BadRequest(reason)) => {
                assert!(reason.starts_with("MATCH pattern of 257 bytes"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    })
    .await;

    // Every key keeps a replica on the other three nodes.
    region.stop("lab-2").await;
    within("a scan without one node", async {
        let keys = client
            .scan_keys(ScanOptions::default())
            .collect()
            .await
            .unwrap();
        assert_eq!(keys, expected);
    })
    .await;
    // Without two, some keys have none.
    region.stop("lab-3").await;
    let short = within(
        "a scan without two nodes",
        client.scan_page(0, &ScanOptions::default()),
    )
    .await;
    match short {
        Err(ClientError::Unavailable(reason)) => {
            assert!(
                reason.contains("lab-2") && reason.contains("lab-3"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    region.shutdown().await;
}
