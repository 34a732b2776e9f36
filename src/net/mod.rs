//! Meridian's network layer: the only place with sockets.
//!
//! It drives one sans-IO [`Node`] with tokio and quinn:
//!
//! - `endpoint.rs`: UDP sockets with 4 MiB kernel buffers, under quinn endpoints.
//! - `driver.rs`: the task that owns the node; every event reaches it through
//!   one bounded channel, a timer calls `tick`, and its actions are routed to
//!   client streams and peer links.
//! - `client_stream.rs`: the client-facing endpoint (node certificate, admits
//!   clients and nodes); long-lived bidirectional streams of request and
//!   response frames, responses batched per write.
//! - `request_reader.rs`: framing of client streams that survives bad frames.
//! - `peer_link.rs`: one outbound connection and stream per remote node,
//!   redialled with backoff, behind a bounded queue.
//! - `peer_accept.rs`: the node-to-node endpoint (mutual TLS, nodes only).
//!
//! What this module must never do: decide anything about data (that is the
//! node's job), block the node task on the outside world, let network input
//! reach a panic, or hold anything in an unbounded queue. Every bad frame,
//! handshake or peer becomes a logged, counted value, and the node keeps
//! serving.
//!
//! Time given to the node is milliseconds since the Unix epoch, read from
//! the system clock and never allowed to go backwards.
//!
//! ```no_run
//! use meridian::net::{serve, ServeOptions};
//! use meridian::node::NodeConfig;
//! use meridian::topology::Topology;
//!
//! # async fn run() -> anyhow::Result<()> {
//! let options = ServeOptions {
//!     topology: Topology::load("regions/local.toml")?,
//!     node_id: "us-east-1".into(),
//!     cert_dir: ".meridian/certs".into(),
//!     node: NodeConfig::default(),
//!     data_dir: None,
//!     peer_routes: Default::default(),
//! };
//! serve(options, async {
//!     let _ = tokio::signal::ctrl_c().await;
//! })
//! .await
//! # }
//! ```

mod client_stream;
mod driver;
mod endpoint;
mod pacing;
mod peer_accept;
mod peer_link;
mod request_reader;
mod topology_cell;
#[cfg(test)]
mod wire_fuzz;

pub use client_stream::{ANSWERS_UNREAD, CLIENT_CONNECTIONS_MAX, STREAM_INFLIGHT_MAX};
pub use endpoint::UDP_BUFFER_BYTES;
pub use peer_accept::PEER_CONNECTIONS_MAX;
pub use peer_link::{
    CONNECT_TIMEOUT_MS, PEER_QUEUE_BYTES_MAX, PEER_QUEUE_MAX, RECONNECT_BACKOFF_MS_MAX,
    RECONNECT_BACKOFF_MS_MIN,
};

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use crdt_types::ReplicaId;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::node::{Node, NodeConfig, NodeStats};
use crate::protocol::codes;
use crate::storage::Storage;
use crate::tls::{client_config, server_config, Admit, CertStore, TransportLimits};
use crate::topology::Topology;

/// Events queued for the node task (requests and peer messages). When it is
/// full, stream readers wait, and QUIC flow control slows the senders.
pub const EVENTS_MAX: usize = 4096;
/// Bytes gathered into one stream write before it is issued.
pub const WRITE_BATCH_BYTES: usize = 256 << 10;
/// Largest chunk read from a stream at once.
pub const READ_CHUNK_BYTES: usize = 64 << 10;
/// How long a TLS handshake may take on an accepted connection.
pub const HANDSHAKE_TIMEOUT_MS: u64 = 5_000;
/// Handshakes an endpoint carries on at once (apart from the connections
/// it has established).
pub const HANDSHAKES_MAX: usize = 1024;
/// How long a new stream may take to send its preamble.
pub const PREAMBLE_TIMEOUT_MS: u64 = 10_000;
/// Smallest frame limit between nodes. Peer messages carry whole key states
/// (hinted handoff, quorum reads), so they may exceed the client frame limit.
pub const PEER_FRAME_BYTES_MIN: usize = 64 << 20;
/// How long [`ServerHandle::shutdown`] waits for tasks and connections to end.
pub const SHUTDOWN_WAIT_MS: u64 = 1_000;
/// How long a closing node gives its close frames to leave before it
/// releases its ports.
pub const CLOSE_FLUSH_MS: u64 = 20;

/// What [`serve`] and [`start`] need to run one node.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The cluster; this node's addresses and limits come from it.
    pub topology: Topology,
    /// This node's id in the topology.
    pub node_id: String,
    /// The certificate directory: the cluster CA and this node's identity.
    pub cert_dir: PathBuf,
    /// The node's timeouts and bounds.
    pub node: NodeConfig,
    /// Where the node keeps its delta log and snapshots; `None` for a pure
    /// in-memory cache that recovers from its replicas.
    pub data_dir: Option<PathBuf>,
    /// Where to dial other nodes instead of their `peer_addr` (the local
    /// lab routes other regions through its WAN emulator).
    pub peer_routes: PeerRoutes,
}

/// Where a node dials other nodes instead of their `peer_addr`, by node id.
/// The TLS server name stays the node's; nodes not listed are dialled
/// directly. Routes read from a file are read again whenever the node
/// reloads its topology (a node added to a running lab gets routes too).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerRoutes {
    /// The routes, by node id.
    pub routes: BTreeMap<String, SocketAddr>,
    /// The file they were read from (see [`crate::wan::read_routes`]), if any.
    pub file: Option<PathBuf>,
}

/// Counters of the network layer, for operators and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Client connections accepted (handshake completed).
    pub client_connections: u64,
    /// Client streams opened with a valid preamble.
    pub client_streams: u64,
    /// Client streams being served now (their tasks still run).
    pub client_streams_open: u64,
    /// Bad preambles and frames, from clients and peers.
    pub bad_frames: u64,
    /// Outbound peer connections established.
    pub peer_dials: u64,
    /// Peer messages dropped (queue full, unframeable, unknown peer).
    pub peer_msgs_dropped: u64,
    /// Peer messages lost in a write that failed.
    pub peer_msgs_lost: u64,
    /// Replies that found their stream's queue full (always 0 unless a bug).
    pub replies_dropped: u64,
}

/// A client stream being served; counted in `client_streams_open` until
/// dropped.
pub(crate) struct OpenStream(Arc<Shared>);

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.client_streams_open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// State shared between the node task, the stream tasks and the handle.
#[derive(Default)]
pub(crate) struct Shared {
    client_connections: AtomicU64,
    client_streams: AtomicU64,
    client_streams_open: AtomicU64,
    bad_frames: AtomicU64,
    peer_dials: AtomicU64,
    peer_msgs_dropped: AtomicU64,
    peer_msgs_lost: AtomicU64,
    replies_dropped: AtomicU64,
    node_stats: Mutex<NodeStats>,
    /// The topology peers are dialled and recognised by (swapped on reload).
    pub(crate) topology: topology_cell::TopologyCell,
    /// Where to dial peers instead of their `peer_addr` (swapped on reload).
    routes: std::sync::RwLock<Arc<BTreeMap<String, SocketAddr>>>,
    /// This process's life, drawn at start and sent on every stream to a
    /// peer (see [`crate::protocol::frame::peer_preamble`]).
    pub(crate) life: u64,
}

impl Shared {
    /// The peer routes now.
    pub(crate) fn routes(&self) -> Arc<BTreeMap<String, SocketAddr>> {
        self.routes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
    pub(crate) fn set_routes(&self, routes: BTreeMap<String, SocketAddr>) {
        *self.routes.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(routes);
    }
    /// A shared state for a process whose life is `life`.
    pub(crate) fn new(life: u64) -> Shared {
        Shared {
            life,
            ..Shared::default()
        }
    }
    fn bump(counter: &AtomicU64, n: u64) -> u64 {
        counter.fetch_add(n, Ordering::Relaxed) + n
    }
    pub(crate) fn count_client_connection(&self) {
        Self::bump(&self.client_connections, 1);
    }
    pub(crate) fn count_client_stream(&self) {
        Self::bump(&self.client_streams, 1);
    }
    /// Counts a client stream as open until the guard drops.
    pub(crate) fn open_client_stream(self: &Arc<Self>) -> OpenStream {
        self.client_streams_open.fetch_add(1, Ordering::Relaxed);
        OpenStream(self.clone())
    }
    pub(crate) fn count_bad_frame(&self) {
        Self::bump(&self.bad_frames, 1);
    }
    pub(crate) fn count_peer_dial(&self) {
        Self::bump(&self.peer_dials, 1);
    }
    /// Returns the new total.
    pub(crate) fn count_peer_dropped(&self) -> u64 {
        Self::bump(&self.peer_msgs_dropped, 1)
    }
    pub(crate) fn count_peer_lost(&self, n: u64) {
        Self::bump(&self.peer_msgs_lost, n);
    }
    pub(crate) fn count_reply_dropped(&self) {
        Self::bump(&self.replies_dropped, 1);
    }
    pub(crate) fn set_node_stats(&self, stats: NodeStats) {
        *self.node_stats.lock().unwrap_or_else(|e| e.into_inner()) = stats;
    }
    fn stats(&self) -> NetStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        NetStats {
            client_connections: get(&self.client_connections),
            client_streams: get(&self.client_streams),
            client_streams_open: get(&self.client_streams_open),
            bad_frames: get(&self.bad_frames),
            peer_dials: get(&self.peer_dials),
            peer_msgs_dropped: get(&self.peer_msgs_dropped),
            peer_msgs_lost: get(&self.peer_msgs_lost),
            replies_dropped: get(&self.replies_dropped),
        }
    }
}

/// A running node, started by [`start`]. Dropping it stops the node
/// abruptly; [`ServerHandle::shutdown`] stops it and waits.
pub struct ServerHandle {
    node_id: String,
    replica: ReplicaId,
    client_addr: SocketAddr,
    peer_addr: SocketAddr,
    client_endpoint: quinn::Endpoint,
    peer_endpoint: quinn::Endpoint,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    shared: Arc<Shared>,
    stopped: bool,
}

impl ServerHandle {
    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// This node's replica id.
    pub fn replica(&self) -> ReplicaId {
        self.replica
    }

    /// Where clients connect.
    pub fn client_addr(&self) -> SocketAddr {
        self.client_addr
    }

    /// Where other nodes connect.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer_addr
    }

    /// The network layer's counters.
    pub fn net_stats(&self) -> NetStats {
        self.shared.stats()
    }

    /// The node's counters, as of its last event.
    pub fn node_stats(&self) -> NodeStats {
        *self
            .shared
            .node_stats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Stops the node: closes both endpoints (clients and peers see the
    /// connection closed with [`codes::SHUTDOWN`]), stops the node task and
    /// waits, up to [`SHUTDOWN_WAIT_MS`], for tasks and connections to end.
    /// What the node held in memory is gone, as if the process had exited,
    /// and its ports are free at once, so a node can be started again on
    /// them.
    pub async fn shutdown(mut self) {
        self.signal_stop();
        let tasks = std::mem::take(&mut self.tasks);
        let wait = async {
            for task in tasks {
                let _ = task.await;
            }
            // Let the close frames leave from the node's own ports before
            // those are released; peers ignore packets from other ports.
            tokio::time::sleep(Duration::from_millis(CLOSE_FLUSH_MS)).await;
            endpoint::release_port(&self.client_endpoint);
            endpoint::release_port(&self.peer_endpoint);
            tokio::join!(
                self.client_endpoint.wait_idle(),
                self.peer_endpoint.wait_idle()
            );
        };
        if tokio::time::timeout(Duration::from_millis(SHUTDOWN_WAIT_MS), wait)
            .await
            .is_err()
        {
            tracing::debug!(node = %self.node_id, "shutdown did not finish in time");
        }
        tracing::info!(node = %self.node_id, "node stopped");
    }

    fn signal_stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let _ = self.stop.send(true);
        let reason = b"node shutting down";
        self.client_endpoint.close(codes::SHUTDOWN.into(), reason);
        self.peer_endpoint.close(codes::SHUTDOWN.into(), reason);
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.signal_stop();
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Starts the node `opts.node_id` of `opts.topology` on the current tokio
/// runtime (a current-thread runtime is the fastest on small machines) and
/// returns once both endpoints are bound.
///
/// ```
/// use meridian::net::{start, ServeOptions};
/// use meridian::node::NodeConfig;
/// use meridian::tls::CertStore;
/// use meridian::topology::Topology;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> anyhow::Result<()> {
/// let dir = tempfile::tempdir()?;
/// CertStore::new(dir.path()).ensure_cluster(&["solo-1"], &["cli"])?;
/// # let ports: Vec<u16> = {
/// #     let s: Vec<_> = (0..2).map(|_| std::net::UdpSocket::bind("127.0.0.1:0").unwrap()).collect();
/// #     s.iter().map(|s| s.local_addr().unwrap().port()).collect()
/// # };
/// let topology = Topology::parse(
///     &format!(
///         "[cluster]\nname = \"solo\"\nreplication_factor = 1\n\
///          [[region]]\nname = \"lab\"\n\
///          [[region.node]]\nid = \"solo-1\"\n\
///          client_addr = \"127.0.0.1:{}\"\npeer_addr = \"127.0.0.1:{}\"\n",
///         ports[0], ports[1]
///     ),
///     "solo.toml",
/// )?;
/// let node = start(ServeOptions {
///     topology,
///     node_id: "solo-1".into(),
///     cert_dir: dir.path().into(),
///     node: NodeConfig::default(),
///     data_dir: None,
///     peer_routes: Default::default(),
/// })
/// .await?;
/// assert_eq!(node.client_addr().port(), ports[0]);
/// node.shutdown().await;
/// # Ok(())
/// # }
/// ```
pub async fn start(opts: ServeOptions) -> anyhow::Result<ServerHandle> {
    let ServeOptions {
        topology,
        node_id,
        cert_dir,
        node: mut node_config,
        data_dir,
        peer_routes,
    } = opts;
    let me = topology
        .node(&node_id)
        .with_context(|| format!("node {node_id:?} is not in {}", topology.origin()))?
        .clone();
    // Each life of a node without its data writes under a new writer id, so
    // it never mints a dot its earlier life already used.
    let fresh_incarnation = (driver::wall_ms() / 10) as u32 | 1;
    let (storage, recovered) = match &data_dir {
        Some(dir) => {
            let (storage, recovered) = Storage::open(dir, fresh_incarnation)
                .with_context(|| format!("opening the data directory {}", dir.display()))?;
            tracing::info!(
                dir = %dir.display(),
                keys = recovered.states.len(),
                log_records = recovered.log_records,
                cut_bytes = recovered.cut_bytes,
                "recovered the data directory"
            );
            (Some(storage), recovered)
        }
        None => (None, Default::default()),
    };
    node_config.persist = storage.is_some();
    node_config.incarnation = if storage.is_some() {
        recovered.incarnation
    } else {
        fresh_incarnation
    };
    // Room for 2^20 operations per millisecond of a life before its ids
    // could reach those a later life starts with.
    node_config.first_op = driver::wall_ms() << 20;
    let mut node = Node::new(&topology, me.replica, node_config)?;
    for (key, state) in &recovered.states {
        node.restore(key, state);
    }

    let store = CertStore::new(&cert_dir);
    let identity = store
        .load_node_identity(&node_id)
        .with_context(|| format!("loading the certificate of node {node_id}"))?;
    let ca = store
        .load_ca_certificate()
        .context("loading the cluster CA certificate")?;
    let limits = *topology.limits();
    let client_transport = TransportLimits {
        streams_bidi_max: limits.streams_per_connection_max,
        ..TransportLimits::default()
    };
    let peer_transport = TransportLimits::default();
    let client_server = server_config(&identity, &ca, Admit::NodesAndClients, &client_transport)?;
    let peer_server = server_config(&identity, &ca, Admit::Nodes, &peer_transport)?;
    let peer_dialer = client_config(&identity, &ca, &peer_transport)?;
    let client_endpoint = endpoint::endpoint(
        me.client_addr,
        Some(client_server),
        None,
        Some(endpoint::stable_secret(identity.key_pem(), me.client_addr)),
    )?;
    let peer_endpoint = endpoint::endpoint(
        me.peer_addr,
        Some(peer_server),
        Some(peer_dialer),
        Some(endpoint::stable_secret(identity.key_pem(), me.peer_addr)),
    )?;

    let client_frame_bytes_max = limits.frame_bytes_max as usize;
    let peer_frame_bytes_max = client_frame_bytes_max.max(PEER_FRAME_BYTES_MIN);
    // Never 0, which a link reads as "no life named yet".
    let shared = Arc::new(Shared::new(rand::random::<u64>().max(1)));
    shared.topology.set(topology);
    let (stop, stop_rx) = watch::channel(false);
    let (events, events_rx) = mpsc::channel(EVENTS_MAX);

    for (id, route) in &peer_routes.routes {
        tracing::info!(peer = %id, %route, "peer dialled through a route");
    }
    shared.set_routes(peer_routes.routes);
    let links = peer_link::Links::new(
        peer_endpoint.clone(),
        peer_routes.file,
        peer_frame_bytes_max,
        stop_rx.clone(),
        shared.clone(),
        events.clone(),
    );
    let driver = tokio::spawn(driver::run(
        node,
        storage,
        events_rx,
        links,
        stop_rx,
        shared.clone(),
    ));
    let clients = tokio::spawn(client_stream::accept(
        client_endpoint.clone(),
        client_stream::ClientSide {
            events: events.clone(),
            frame_bytes_max: client_frame_bytes_max,
            next_client: Arc::new(AtomicU64::new(1)),
            shared: shared.clone(),
            held: Arc::new(client_stream::NodeHeld::default()),
        },
    ));
    let peers = tokio::spawn(peer_accept::accept(
        peer_endpoint.clone(),
        peer_accept::PeerInbound {
            events,
            frame_bytes_max: peer_frame_bytes_max,
            shared: shared.clone(),
        },
    ));
    let handle = ServerHandle {
        client_addr: client_endpoint.local_addr()?,
        peer_addr: peer_endpoint.local_addr()?,
        node_id,
        replica: me.replica,
        client_endpoint,
        peer_endpoint,
        stop,
        tasks: vec![driver, clients, peers],
        shared,
        stopped: false,
    };
    tracing::info!(
        node = %handle.node_id,
        client_addr = %handle.client_addr,
        peer_addr = %handle.peer_addr,
        "node serving"
    );
    Ok(handle)
}

/// Runs the node `opts.node_id` until `shutdown` completes, then stops it
/// gracefully. Fails if the node cannot start or its task dies.
pub async fn serve(opts: ServeOptions, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let mut handle = start(opts).await?;
    let Some(driver) = handle.tasks.first_mut() else {
        anyhow::bail!("the node task did not start");
    };
    let outcome = tokio::select! {
        () = shutdown => Ok(()),
        joined = driver => match joined {
            Ok(()) => Err(anyhow::anyhow!("the node task stopped unexpectedly")),
            Err(e) => Err(anyhow::anyhow!("the node task failed: {e}")),
        },
    };
    handle.shutdown().await;
    outcome
}

/// Logs a failed handshake of a `kind` ("client" or "peer") connection
/// from `remote`: a refused certificate as a warning (an operator has
/// something to fix), anything else (a scanner, a lost packet) as info.
fn log_handshake_failure(kind: &str, remote: SocketAddr, e: &quinn::ConnectionError) {
    if crate::tls::tls_alert(e).is_some() {
        tracing::warn!(%remote, error = %e, "{kind} handshake failed: a certificate was refused");
    } else {
        tracing::info!(%remote, error = %e, "{kind} handshake failed");
    }
}
