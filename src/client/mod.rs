//! Meridian's async Rust SDK.
//!
//! A [`Client`] computes, with the same [`Placement`] code as the nodes,
//! which replicas of its region hold a key, and sends each request straight
//! to one of them over QUIC: by default to the client's *home* node when
//! that holds the key, and writes beyond the first few in flight to the
//! key's first replica other than the home (see [`Routing`]). It
//! keeps one connection per node, made on first use, with a few long-lived
//! streams that multiplex many requests by id, so one client serves many
//! concurrent callers. Typed handles
//! ([`Register`], [`Counter`], [`Set`], [`Map`], [`MvRegister`]) give each
//! data type its operations.
//!
//! Failover: when a replica cannot be reached or does not answer in time,
//! the request goes to the key's next replica. An answer from a node is
//! final, errors included: a `WrongType` would be the same elsewhere, and a
//! `QuorumNotReached` write was kept and is replicated later, so resending it
//! would only apply it twice. Counter increments are not idempotent, so
//! they fail over only when they certainly never left the client. Other
//! writes that timed out are sent again to the next replica: on their own
//! they have the same effect twice as once, but the resent write is
//! stamped when it arrives, so a write another client made to the same key
//! in between loses to it (last writer wins, and the resend is the last).
//!
//! This module uses the protocol, placement, topology, TLS and busy-poll
//! modules only, never the node or the network layer: it must never assume
//! anything about a node beyond the wire protocol.
//!
//! ```
//! use meridian::client::{Client, ClientOptions};
//! use meridian::topology::Topology;
//! # use meridian::{net, node::NodeConfig, tls::CertStore};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! # CertStore::new(dir.path()).ensure_cluster(&["doc-1"], &["cli"])?;
//! # let ports: Vec<u16> = {
//! #     let s: Vec<_> = (0..2).map(|_| std::net::UdpSocket::bind("127.0.0.1:0").unwrap()).collect();
//! #     s.iter().map(|s| s.local_addr().unwrap().port()).collect()
//! # };
//! # let text = format!("[cluster]\nname = \"doc\"\nreplication_factor = 1\n[[region]]\nname = \"us-east\"\n[[region.node]]\nid = \"doc-1\"\nclient_addr = \"127.0.0.1:{}\"\npeer_addr = \"127.0.0.1:{}\"\n", ports[0], ports[1]);
//! # let topology = Topology::parse(&text, "doc.toml")?;
//! # let node = net::start(net::ServeOptions { topology: topology.clone(), node_id: "doc-1".into(), cert_dir: dir.path().into(), node: NodeConfig::default(), data_dir: None, peer_routes: Default::default() }).await?;
//! # let cert_dir = dir.path();
//! // With the local lab: Topology::load("regions/local.toml")? and ".meridian/certs".
//! let client = Client::connect(ClientOptions::new(topology, "us-east", cert_dir)).await?;
//!
//! client.register("greeting").set("hello").await?;
//! assert_eq!(client.register("greeting").get().await?.as_deref(), Some(&b"hello"[..]));
//! assert_eq!(client.counter("visits").incr(1).await?, 1);
//! # node.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod connection;
mod error;
mod handles;
mod keys;
mod many;

pub use crate::keyspace::{FieldOp, FieldValue, KeyPage, Page, PageItem, Ttl};
pub use crate::protocol::{Answer, Command, Reply};
pub use crate::topology::{ReadConsistency, Topology, WriteConsistency};
pub use connection::{STREAMS_PER_CONNECTION, STREAM_INFLIGHT_MAX};
pub use crdt_types::{Bytes, Kind};
pub use error::ClientError;
pub(crate) use handles::too_large_to_answer;
pub use handles::{Counter, Map, MvRegister, Register, Scan, Set};
pub use keys::{KeyScan, ScanOptions, SCAN_COUNT_DEFAULT};
pub use many::{mset_commands, MANY_INFLIGHT_MAX};

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use connection::{CallError, NodeConnection};
use crdt_types::ReplicaId;

use crate::busy_poll::Spin;
use crate::placement::Placement;
use crate::protocol::frame::{encode_into, FrameError};
use crate::protocol::Request;
use crate::tls::{client_config, seed_client_config, CertStore, PeerIdentity, TransportLimits};
use crate::topology::Node as NodeAddr;

/// Longest [`ClientOptions::busy_poll`]: polling longer than this after a
/// request would hold the runtime's thread for longer than most answers
/// take even from another region.
pub const BUSY_POLL_MAX: Duration = Duration::from_millis(10);
/// Longest wait for a node's handshake (shortened to the request timeout).
pub const CONNECT_TIMEOUT_MS: u64 = 1_000;
/// How long a node that could not be reached is tried only after the
/// others; doubled on each further failure after that time is over (the
/// requests that fail together on one lost connection count once), up to
/// [`NODE_DOWN_MS_MAX`].
pub const NODE_DOWN_MS_MIN: u64 = 1_000;
/// Longest time a node is passed over after failures.
pub const NODE_DOWN_MS_MAX: u64 = 30_000;
/// Default of [`ClientOptions::topology_refresh`].
pub const TOPOLOGY_REFRESH_DEFAULT: Duration = Duration::from_secs(30);

/// The first and the longest pause before asking again for an answer the
/// node held back (see [`crate::net::ANSWERS_UNREAD`]).
const HELD_BACK_PAUSE_MIN: Duration = Duration::from_millis(5);
const HELD_BACK_PAUSE_MAX: Duration = Duration::from_millis(200);

/// The shortest [`ClientOptions::request_timeout`]: a round trip with room
/// for a busy node.
pub const REQUEST_TIMEOUT_MIN: Duration = Duration::from_millis(10);

/// How to reach a cluster, and the defaults of every request.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// The cluster's topology (the same file the nodes run).
    pub topology: Topology,
    /// The region whose replicas serve this client.
    pub region: String,
    /// The certificate directory: the cluster CA and this client's identity.
    pub cert_dir: PathBuf,
    /// The client identity to load from `cert_dir`.
    pub client_name: String,
    /// How long one attempt at a request may take before the next replica
    /// is tried (5 s by default; at least [`REQUEST_TIMEOUT_MIN`]). Keep it
    /// above the nodes' write timeout (`write_timeout_ms`, 1 s by default)
    /// plus a round trip: a write that cannot reach W is answered
    /// [`ClientError::QuorumNotReached`] only at that timeout, and an
    /// attempt that gives up first sees [`ClientError::Timeout`] instead,
    /// passes over a healthy node and sends the write to the next replica.
    pub request_timeout: Duration,
    /// Write consistency; the topology's default when `None`.
    pub write: Option<WriteConsistency>,
    /// Read consistency; the topology's default when `None`.
    pub read: Option<ReadConsistency>,
    /// Which of a key's replicas a request goes to first.
    pub routing: Routing,
    /// How often the client fetches the topology its region's nodes run
    /// and routes by it ([`Client::refresh_topology`]): the first request
    /// after this much time since the last fetch starts one in the
    /// background. 30 s by default; zero never fetches by itself.
    pub topology_refresh: Duration,
    /// After sending a request, keep the runtime polling its sockets for
    /// this long instead of sleeping until the answer arrives, while the
    /// runtime's thread has a core to spare (zero, the default: never; at
    /// most [`BUSY_POLL_MAX`], else [`Client::connect`] refuses the options).
    ///
    /// A sleeping process takes tens of microseconds to wake on a VM, more
    /// than a node takes to answer: with one request in flight, polling for
    /// 100 µs took `meridian bench` against a single node from about 15k
    /// to 44k gets per second on a 2-core machine (BENCHMARKS.md). It
    /// burns CPU while it waits, so it is off unless asked for, and it
    /// steps aside where it does not pay:
    ///
    /// - It only polls while the thread waited for a CPU at most 15 % of
    ///   its run time over the last 100 ms, and never where the kernel
    ///   does not give those statistics (`/proc/thread-self/schedstat`).
    /// - After a round of polling in which no answer came (answers take
    ///   longer than `busy_poll`), it sits out the next 1, 2, 4 … up to 64
    ///   requests (requests sent while it polls count as one).
    /// - It only works on a current-thread runtime (the one that called
    ///   [`Client::connect`]): on a multi-thread runtime another worker
    ///   waits for the sockets while the polling one cannot reach them, so
    ///   there the option does nothing.
    ///
    /// ```no_run
    /// use meridian::client::{Client, ClientOptions};
    /// use meridian::topology::Topology;
    /// use std::time::Duration;
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let mut opts = ClientOptions::new(Topology::load("regions/local.toml")?, "eu-west", ".meridian/certs");
    /// opts.busy_poll = Duration::from_micros(100);
    /// let client = Client::connect(opts).await?;
    /// client.register("k").get().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub busy_poll: Duration,
    /// How long requests may wait on a node that sends nothing at all
    /// before it is taken for gone (2 s by default; at least
    /// [`SILENCE_TIMEOUT_MIN`]; zero: only the request timeout counts).
    ///
    /// A node's QUIC stack acknowledges what it is sent, and the client's
    /// connections send a keep-alive ping after half of this time without
    /// traffic (idle connections too), so a node that is up answers
    /// something even while it works on a slow request. A node killed,
    /// stopped or cut off answers nothing: its connection is closed, and
    /// every request waiting on it fails over to the key's next replica at
    /// once instead of each waiting out its request timeout. A counter
    /// increment, which is never sent twice, fails with
    /// [`ClientError::Connect`] instead; like a [`ClientError::Timeout`],
    /// it may have been applied. A node whose thread stops for longer
    /// (swapping, or starved of CPU for seconds; its disk syncs run on
    /// another thread) is taken for gone too, and passed over for a while. The time is stretched to
    /// four round trips on a slow path.
    pub silence_timeout: Duration,
    /// With [`Routing::ReadHome`] or [`Routing::ReadHomeAt`]: how many of
    /// this client's writes the home node coordinates at once; further
    /// writes go to their keys' first replicas other than the home
    /// ([`HOME_WRITES_MAX`] by default; 0 sends every write by key, to its
    /// key's first replica, `usize::MAX` every write home).
    pub home_writes_max: usize,
}

/// [`ClientOptions::silence_timeout`] by default.
pub const SILENCE_TIMEOUT_DEFAULT: Duration = Duration::from_secs(2);
/// The shortest [`ClientOptions::silence_timeout`] (other than zero).
pub const SILENCE_TIMEOUT_MIN: Duration = Duration::from_millis(200);

/// Which of a key's replicas a request goes to first (the others follow in
/// ring order, for failover).
///
/// The default, [`Routing::ReadHome`], sends each read to the client's
/// *home* node, picked at random when it connects (and again if a later
/// topology lacks it), whenever that node holds a replica of the key, and
/// each write there too while fewer than [`HOME_WRITES_MAX`] of the
/// client's writes are at the home; past that, a write goes to its key's
/// first replica on the ring (the next one, when that is the home). A
/// long-lived client's requests then keep one node busy instead of waking
/// every node in turn, which is much cheaper
/// for the region (in BENCHMARKS.md, "Reads from a home replica", one
/// client's gets 1.4–4.0× faster than spread by key; "Writes to the home
/// while few are in flight", its writes 1.0–1.6× as fast at 1 and 16 in
/// flight), while many writes in flight spread over every node instead of
/// queueing at one, and many clients with different homes spread the
/// load. A client (this [`Client`] and its clones) reads its own writes: a
/// read of a key whose write was answered in the last [`RECENT_WRITE_MS`]
/// ms goes to the replica that coordinated the write (the home or another
/// replica, unless the write failed over), and a read of a key whose slot
/// in the client's table of recent writes another key took lately goes to
/// the key's first replica at quorum (which holds a write made at quorum
/// or all wherever it went; at the caller's level if no quorum answers).
/// After that the home has the
/// write too, unless a failure delayed its replication there (then it has
/// it once hinted handoff or anti-entropy delivers it, as for any read at
/// `one`).
///
/// With [`Routing::RandomHome`] or [`Routing::Home`] every write goes to
/// the home node: that one node then coordinates every write of the
/// client, however many are in flight.
/// [`Routing::Primary`] sends everything to the key's first replica.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Routing {
    /// Reads, and writes while fewer than [`HOME_WRITES_MAX`] are there,
    /// to a home node of the region picked at random when the client
    /// connects (and again when a topology the client takes no longer has
    /// it); other writes to the key's first replica other than the home.
    #[default]
    ReadHome,
    /// As [`Routing::ReadHome`], with this node (an id of the client's
    /// region) as the home.
    ReadHomeAt(String),
    /// No home: each key's first replica on the ring, so one client's keys
    /// are coordinated, and its reads served, by every node in turn.
    Primary,
    /// Reads and writes to a node of the region picked at random when the
    /// client connects (and again when a topology the client takes no
    /// longer has it).
    RandomHome,
    /// Reads and writes to this node (an id of the client's region).
    Home(String),
}

impl Routing {
    /// Whether writes go to the home only while few are there (and reads
    /// follow recent writes).
    fn home_takes_few_writes(&self) -> bool {
        matches!(self, Routing::ReadHome | Routing::ReadHomeAt(_))
    }
}

/// How long after its write to a key was answered a client with
/// [`Routing::ReadHome`] reads the key from the replica that coordinated
/// the write rather than from its home node.
pub const RECENT_WRITE_MS: u32 = 1_000;

/// The keys a client wrote lately, by hash: a fixed table holding, for each
/// hash slot, when a key of the slot was last written, which key (a
/// fingerprint of its hash) and which replica answered. A read of a key of
/// a slot written lately goes to that replica if the fingerprint is the
/// key's, else (another key of the slot) to the key's first replica at
/// quorum: never to the home alone by mistake.
struct RecentWrites {
    start: Instant,
    /// Milliseconds since `start` plus one at the last write (0: none).
    stamps: Box<[AtomicU64]>,
    /// The key's fingerprint (high 32 bits) and the replica that answered.
    writers: Box<[AtomicU64]>,
}

/// What [`RecentWrites`] knows of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Recent {
    /// No key of its slot was written lately.
    No,
    /// The key was, and this replica answered the write.
    By(ReplicaId),
    /// Another key of its slot was (the key may have been too).
    Unknown,
}

impl RecentWrites {
    /// 256 KiB per client with home reads; a client writing about 2,000
    /// keys a second finds a slot taken by another key for one read in
    /// ten, and then reads by key.
    const SLOTS: usize = 16_384;

    fn new() -> RecentWrites {
        RecentWrites {
            start: Instant::now(),
            stamps: (0..Self::SLOTS).map(|_| AtomicU64::new(0)).collect(),
            writers: (0..Self::SLOTS).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// The slot of `key` and its fingerprint.
    fn slot(key: &[u8]) -> (usize, u64) {
        let hash = crate::keyhash::key_hash(key);
        (hash as usize % Self::SLOTS, hash >> 32)
    }

    /// Milliseconds since the table began, plus one, at `now`.
    fn stamp(&self, now: Instant) -> u64 {
        duration_ms(now.saturating_duration_since(self.start)).saturating_add(1)
    }

    /// `replica` answered (or may have applied) a write to `key` at `now`.
    fn wrote(&self, key: &[u8], replica: ReplicaId, now: Instant) {
        let (slot, fingerprint) = Self::slot(key);
        self.writers[slot].store(fingerprint << 32 | u64::from(replica.0), Ordering::Relaxed);
        self.stamps[slot].store(self.stamp(now), Ordering::Relaxed);
    }

    /// Whether `key` was written within [`RECENT_WRITE_MS`] before `now`,
    /// and by which replica.
    fn recent(&self, key: &[u8], now: Instant) -> Recent {
        let (slot, fingerprint) = Self::slot(key);
        let at = self.stamps[slot].load(Ordering::Relaxed);
        if at == 0 || self.stamp(now).saturating_sub(at) >= u64::from(RECENT_WRITE_MS) {
            return Recent::No;
        }
        let writer = self.writers[slot].load(Ordering::Relaxed);
        if writer >> 32 == fingerprint {
            Recent::By(ReplicaId(writer as u32))
        } else {
            Recent::Unknown
        }
    }
}

impl ClientOptions {
    /// Options for region `region` with certificates in `cert_dir`: client
    /// name `cli`, 5 s request timeout, the topology's consistency defaults.
    ///
    /// ```
    /// use meridian::client::ClientOptions;
    /// use meridian::topology::Topology;
    ///
    /// let topology = Topology::load(concat!(env!("CARGO_MANIFEST_DIR"), "/regions/local.toml"))?;
    /// let opts = ClientOptions::new(topology, "eu-west", ".meridian/certs");
    /// assert_eq!(opts.client_name, "cli");
    /// assert_eq!(opts.request_timeout, std::time::Duration::from_secs(5));
    /// # Ok::<(), meridian::topology::TopologyError>(())
    /// ```
    pub fn new(
        topology: Topology,
        region: impl Into<String>,
        cert_dir: impl Into<PathBuf>,
    ) -> Self {
        ClientOptions {
            topology,
            region: region.into(),
            cert_dir: cert_dir.into(),
            client_name: "cli".into(),
            request_timeout: Duration::from_secs(5),
            write: None,
            read: None,
            routing: Routing::default(),
            topology_refresh: TOPOLOGY_REFRESH_DEFAULT,
            busy_poll: Duration::ZERO,
            silence_timeout: SILENCE_TIMEOUT_DEFAULT,
            home_writes_max: HOME_WRITES_MAX,
        }
    }
}

/// A handle on a Meridian cluster. Cheap to clone; clones share
/// connections. See the [module docs](self).
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
    write: Option<WriteConsistency>,
    read: Option<ReadConsistency>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("region", &self.inner.region)
            .field("home", &self.home())
            .field("write", &self.write)
            .field("read", &self.read)
            .finish_non_exhaustive()
    }
}

struct Inner {
    /// The cluster as the client knows it now; replaced whole when a node
    /// hands over a newer topology ([`Client::refresh_topology`]).
    ring: RwLock<Arc<Ring>>,
    region: String,
    request_timeout: Duration,
    connect_timeout: Duration,
    /// The frame limit of the topology the client connected with.
    frame_bytes_max: usize,
    endpoint: quinn::Endpoint,
    next_id: AtomicU64,
    /// Attempts sent again, to another replica or the same ([`Client::failovers`]).
    failovers: AtomicU64,
    /// Whether the home was picked at random (then a topology without it
    /// gets the client another).
    random_home: bool,
    /// With [`Routing::ReadHome`]: the keys written lately, whose reads go
    /// to the replica that took the write.
    recent_writes: Option<RecentWrites>,
    /// [`ClientOptions::topology_refresh`], and when the last fetch began.
    topology_refresh: Duration,
    refreshed_at: Mutex<Instant>,
    /// Keeps the runtime polling after each request (see
    /// [`ClientOptions::busy_poll`]).
    spin: Option<Spin>,
    /// [`ClientOptions::silence_timeout`].
    silence_timeout: Duration,
    /// Writes sent to the home node and not yet answered (with
    /// [`Routing::ReadHome`]), and how many may be
    /// ([`ClientOptions::home_writes_max`]).
    home_writes: AtomicUsize,
    home_writes_max: usize,
}

impl Inner {
    fn ring(&self) -> Arc<Ring> {
        self.ring.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// One version of the cluster's membership: its topology, ring and nodes.
struct Ring {
    topology: Topology,
    placement: Placement,
    /// Nodes carried over from the previous version keep their slot (and
    /// their connection and health).
    slots: HashMap<ReplicaId, Arc<Slot>>,
    /// Where requests go first when it holds a replica of their key.
    home: Option<ReplicaId>,
    /// The home node's id, kept while a topology lacks it, so that it is
    /// the home again in a later one that has it back.
    home_id: Option<String>,
}

impl Ring {
    /// The ring of `topology`, reusing the slots of `previous` for nodes
    /// whose id and address did not change.
    fn new(
        topology: Topology,
        home_id: Option<String>,
        previous: Option<&Ring>,
    ) -> Result<Ring, ClientError> {
        let mut slots = HashMap::new();
        for (_, node) in topology.nodes() {
            let kept = previous
                .and_then(|p| p.slots.get(&node.replica))
                .filter(|s| s.node == *node)
                .cloned();
            let slot = match kept {
                Some(slot) => slot,
                None => Arc::new(Slot {
                    node: node.clone(),
                    server_name: PeerIdentity::node(&node.id)?.dns_name(),
                    connection: Mutex::new(None),
                    dialling: tokio::sync::Mutex::new(()),
                    health: Mutex::new(Health::default()),
                    probing: std::sync::atomic::AtomicBool::new(false),
                }),
            };
            slots.insert(node.replica, slot);
        }
        Ok(Ring {
            placement: Placement::new(&topology),
            home: home_id
                .as_deref()
                .and_then(|id| topology.node(id))
                .map(|n| n.replica),
            home_id,
            slots,
            topology,
        })
    }
}

/// What the client knows of one node.
struct Slot {
    node: NodeAddr,
    server_name: String,
    connection: Mutex<Option<Arc<NodeConnection>>>,
    /// Held while dialling, so concurrent callers share one dial.
    dialling: tokio::sync::Mutex<()>,
    health: Mutex<Health>,
    /// Set while a background dial checks whether the node is back.
    probing: std::sync::atomic::AtomicBool,
}

#[derive(Default)]
struct Health {
    down_until: Option<Instant>,
    down_ms: u64,
    /// When the node was last marked down.
    failed_at: Option<Instant>,
}

/// Where a node stands for the next request, from its health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Standing {
    /// Never failed, or dialled successfully since.
    Up,
    /// Failed, and its time passed over has run out: it may be back.
    Suspect,
    /// Failed, and still passed over.
    Down,
}

impl Slot {
    /// One look at the node's health.
    fn standing(&self, now: Instant) -> Standing {
        let health = lock(&self.health);
        if health.down_until.is_some_and(|t| t > now) {
            Standing::Down
        } else if health.failed_at.is_some() {
            Standing::Suspect
        } else {
            Standing::Up
        }
    }

    fn mark_down(&self) {
        let mut health = lock(&self.health);
        let now = Instant::now();
        health.failed_at = Some(now);
        if health.down_until.is_some_and(|until| now < until) {
            // The same failure, seen by another request that waited on it
            // (all callers of a lost connection fail together): passed
            // over already, for no longer.
            return;
        }
        health.down_ms = (health.down_ms * 2).clamp(NODE_DOWN_MS_MIN, NODE_DOWN_MS_MAX);
        health.down_until = Some(now + Duration::from_millis(health.down_ms));
        tracing::debug!(node = %self.node.id, down_ms = health.down_ms, "node marked down");
    }

    /// Whether the node was marked down at or after `t`.
    fn failed_since(&self, t: Instant) -> bool {
        lock(&self.health).failed_at.is_some_and(|f| f >= t)
    }

    fn mark_up(&self) {
        *lock(&self.health) = Health::default();
    }

    fn live_connection(&self) -> Option<Arc<NodeConnection>> {
        lock(&self.connection).clone().filter(|c| c.is_alive())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The client's UDP endpoint: with `v6`, on `[::]:0` and dual-stack (IPv4
/// addresses are reached too), falling back to `0.0.0.0:0` where the host
/// has no IPv6; else on `0.0.0.0:0`.
fn client_endpoint(v6: bool) -> Result<quinn::Endpoint, ClientError> {
    let bind_error =
        |e: std::io::Error| ClientError::Connect(format!("cannot bind a UDP socket: {e}"));
    if v6 {
        match dual_stack_socket() {
            Ok(socket) => {
                return quinn::Endpoint::new(
                    quinn::EndpointConfig::default(),
                    None,
                    socket,
                    Arc::new(quinn::TokioRuntime),
                )
                .map_err(bind_error)
            }
            Err(e) => tracing::debug!(error = %e, "no IPv6 socket; the client uses IPv4 only"),
        }
    }
    quinn::Endpoint::client((Ipv4Addr::UNSPECIFIED, 0).into()).map_err(bind_error)
}

/// A non-blocking UDP socket on `[::]:0` that also carries IPv4.
fn dual_stack_socket() -> std::io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_only_v6(false)?;
    socket.set_nonblocking(true)?;
    socket.bind(&SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)).into())?;
    Ok(socket.into())
}

/// How long at least [`fetch_topology`], once one seed has answered, waits
/// for the others' answers (a newer topology may be among them); as long
/// again as the first answer took, if that is longer.
pub const SEED_GRACE_MS: u64 = 100;

/// Fetches the cluster's topology from `seeds`: client addresses of any
/// nodes of the cluster, of any region. Each seed must present a node
/// certificate of the cluster CA in `cert_dir` (its id need not be known);
/// the client presents certificate `client_name`. Every seed is asked at
/// once, and `timeout` bounds each attempt (handshake and answer). Once
/// one has answered, the others get [`SEED_GRACE_MS`] more to answer (or
/// as long again as that first answer took, if longer), and
/// the newest version among the answers of that seed's cluster is taken, so
/// a seed that has not yet heard of a change (`cluster add-node`) does not
/// hold a client back. Build [`ClientOptions`] from the result, or use
/// [`Client::connect_seeds`].
///
/// ```no_run
/// use meridian::client::{fetch_topology, Client, ClientOptions};
/// use std::time::Duration;
/// # async fn run() -> Result<(), meridian::client::ClientError> {
/// let seeds = ["127.0.0.1:7201".parse().unwrap(), "127.0.0.1:7202".parse().unwrap()];
/// let topology = fetch_topology(&seeds, ".meridian/certs", "cli", Duration::from_secs(2)).await?;
/// let mut opts = ClientOptions::new(topology, "eu-west", ".meridian/certs");
/// opts.request_timeout = Duration::from_secs(3);
/// let client = Client::connect(opts).await?;
/// # Ok(())
/// # }
/// ```
pub async fn fetch_topology(
    seeds: &[SocketAddr],
    cert_dir: impl Into<PathBuf>,
    client_name: &str,
    timeout: Duration,
) -> Result<Topology, ClientError> {
    if seeds.is_empty() {
        return Err(ClientError::BadRequest("no seed address given".into()));
    }
    let store = CertStore::new(cert_dir.into());
    let identity = store.load_client_identity(client_name)?;
    let ca = store.load_ca_certificate()?;
    let config = seed_client_config(&identity, &ca, &TransportLimits::default())?;
    let mut endpoint = client_endpoint(seeds.iter().any(SocketAddr::is_ipv6))?;
    endpoint.set_default_client_config(config);
    // The name dialled is not checked (any node of the cluster will do),
    // but it must be a DNS name.
    let server_name = PeerIdentity::node("seed")?.dns_name();
    let mut attempts = tokio::task::JoinSet::new();
    for (i, &seed) in seeds.iter().enumerate() {
        let (endpoint, server_name) = (endpoint.clone(), server_name.clone());
        attempts.spawn(async move {
            // One bound for the whole attempt: handshake, streams and answer.
            let attempt = ask_seed(&endpoint, seed, &server_name, timeout);
            let fetched = tokio::time::timeout(timeout, attempt)
                .await
                .unwrap_or(Err(ClientError::Timeout));
            (i, seed, fetched)
        });
    }
    let started = tokio::time::Instant::now();
    let mut newest: Option<Topology> = None;
    let mut grace_until = None;
    let mut failures = Vec::with_capacity(seeds.len());
    loop {
        let joined = match grace_until {
            None => attempts.join_next().await,
            Some(until) => tokio::time::timeout_at(until, attempts.join_next())
                .await
                .unwrap_or(None),
        };
        let Some(joined) = joined else { break };
        let (i, seed, fetched) = match joined {
            Ok(done) => done,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => continue,
        };
        match (fetched, &newest) {
            (Ok(topology), None) => {
                newest = Some(topology);
                // As long again as the first answer took, so that farther
                // seeds (another region) get their turn too.
                let now = tokio::time::Instant::now();
                let grace = Duration::from_millis(SEED_GRACE_MS).max(now - started);
                grace_until = Some(now + grace);
            }
            (Ok(topology), Some(current)) => {
                if topology.cluster() == current.cluster() && topology.version() > current.version()
                {
                    newest = Some(topology);
                }
            }
            // Connection errors already name the address.
            (Err(ClientError::Connect(why)), _) => failures.push((i, why, false)),
            (Err(ClientError::Tls(why)), _) => failures.push((i, why, true)),
            (Err(e), _) => failures.push((i, format!("{seed}: {e}"), false)),
        }
    }
    attempts.abort_all();
    endpoint.close(0u32.into(), b"");
    if let Some(topology) = newest {
        return Ok(topology);
    }
    failures.sort_by_key(|(i, _, _)| *i);
    // Certificates that every seed refused, or that refused every seed,
    // are a TLS problem to fix, not an outage to wait out.
    let all_tls = !failures.is_empty() && failures.iter().all(|(_, _, tls)| *tls);
    let failures: Vec<String> = failures.into_iter().map(|(_, why, _)| why).collect();
    let why = format!(
        "no seed answered with the topology ({})",
        failures.join("; ")
    );
    Err(if all_tls {
        ClientError::Tls(why)
    } else {
        ClientError::Unavailable(why)
    })
}

/// Asks `seed` for the topology it runs.
async fn ask_seed(
    endpoint: &quinn::Endpoint,
    seed: SocketAddr,
    server_name: &str,
    timeout: Duration,
) -> Result<Topology, ClientError> {
    // A topology file is at most TOPOLOGY_BYTES_MAX; its answer a little more.
    let frame_bytes_max = crate::topology::TOPOLOGY_BYTES_MAX as usize + 1024;
    let connection =
        NodeConnection::open(endpoint, seed, server_name, timeout, frame_bytes_max).await?;
    let request = Request {
        id: 1,
        command: Command::Topology,
        write: None,
        read: None,
    };
    let mut frame = Vec::new();
    encode_into(&request, &mut frame, frame_bytes_max)
        .map_err(|e| ClientError::Protocol(e.to_string()))?;
    let answer = connection
        .call(1, frame)
        .await
        .map_err(CallError::into_error)?
        .result
        .map_err(ClientError::from)?;
    let Reply::Value(text) = answer.reply else {
        return Err(unexpected(answer.reply, "TOPOLOGY"));
    };
    let text = std::str::from_utf8(&text)
        .map_err(|_| ClientError::Protocol("the topology is not UTF-8".to_owned()))?;
    Topology::parse(text, format!("the topology from seed {seed}"))
        .map_err(|e| ClientError::Protocol(format!("a bad topology: {e}")))
}

impl Client {
    /// Connects to region `region` of the cluster whose topology the seeds
    /// send (the newest version, see [`fetch_topology`]), with the defaults of
    /// [`ClientOptions::new`]: client certificate `cli` from `cert_dir`.
    /// To present another certificate, fetch the topology with
    /// [`fetch_topology`] and set [`ClientOptions::client_name`].
    ///
    /// ```no_run
    /// use meridian::client::Client;
    /// # async fn run() -> Result<(), meridian::client::ClientError> {
    /// let seeds = ["127.0.0.1:7101".parse().unwrap()];
    /// let client = Client::connect_seeds(&seeds, "us-east", ".meridian/certs").await?;
    /// client.register("greeting").set("hello").await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect_seeds(
        seeds: &[SocketAddr],
        region: impl Into<String>,
        cert_dir: impl Into<PathBuf>,
    ) -> Result<Client, ClientError> {
        let cert_dir = cert_dir.into();
        let timeout = Duration::from_millis(CONNECT_TIMEOUT_MS * 2);
        let topology = fetch_topology(seeds, cert_dir.clone(), "cli", timeout).await?;
        Client::connect(ClientOptions::new(topology, region, cert_dir)).await
    }

    /// Loads the client's certificate and the cluster CA from
    /// `opts.cert_dir` and prepares to reach `opts.region`. Connections to
    /// nodes are made on first use, so this succeeds without a running
    /// cluster; [`Client::ping`] checks that one answers.
    ///
    /// ```no_run
    /// use meridian::client::{Client, ClientOptions, WriteConsistency};
    /// use meridian::topology::Topology;
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let mut opts = ClientOptions::new(Topology::load("regions/local.toml")?, "eu-west", ".meridian/certs");
    /// opts.write = Some(WriteConsistency::All);
    /// let client = Client::connect(opts).await?;
    /// client.ping().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect(opts: ClientOptions) -> Result<Client, ClientError> {
        let ClientOptions {
            topology,
            region,
            cert_dir,
            client_name,
            request_timeout,
            write,
            read,
            routing,
            topology_refresh,
            busy_poll,
            silence_timeout,
            home_writes_max,
        } = opts;
        if topology.region(&region).is_none() {
            return Err(ClientError::BadRequest(format!(
                "region {region:?} is not in {}",
                topology.origin()
            )));
        }
        if request_timeout < REQUEST_TIMEOUT_MIN {
            return Err(ClientError::BadRequest(format!(
                "request_timeout of {request_timeout:?} is shorter than the least, {REQUEST_TIMEOUT_MIN:?}"
            )));
        }
        if !silence_timeout.is_zero() && silence_timeout < SILENCE_TIMEOUT_MIN {
            return Err(ClientError::BadRequest(format!(
                "silence_timeout of {silence_timeout:?} is shorter than the least, {SILENCE_TIMEOUT_MIN:?} (zero turns it off)"
            )));
        }
        if busy_poll > BUSY_POLL_MAX {
            return Err(ClientError::BadRequest(format!(
                "busy_poll of {busy_poll:?} is longer than the most, {BUSY_POLL_MAX:?}"
            )));
        }
        let home = home_node(&topology, &region, &routing)?;
        let store = CertStore::new(&cert_dir);
        let identity = store.load_client_identity(&client_name)?;
        let ca = store.load_ca_certificate()?;
        let mut limits = TransportLimits::default();
        limits.keep_alive_interval_ms =
            connection::keep_alive_for(silence_timeout, limits.keep_alive_interval_ms);
        let config = client_config(&identity, &ca, &limits)?;
        let any_v6 = topology.nodes().any(|(_, n)| n.client_addr.is_ipv6());
        let mut endpoint = client_endpoint(any_v6)?;
        endpoint.set_default_client_config(config);
        let inner = Inner {
            frame_bytes_max: topology.limits().frame_bytes_max as usize,
            ring: RwLock::new(Arc::new(Ring::new(
                topology.clone(),
                home.and_then(|h| topology.node_by_replica(h))
                    .map(|n| n.id.clone()),
                None,
            )?)),
            region,
            request_timeout,
            connect_timeout: request_timeout.min(Duration::from_millis(CONNECT_TIMEOUT_MS)),
            endpoint,
            next_id: AtomicU64::new(1),
            failovers: AtomicU64::new(0),
            home_writes: AtomicUsize::new(0),
            home_writes_max,
            recent_writes: routing.home_takes_few_writes().then(RecentWrites::new),
            random_home: matches!(routing, Routing::ReadHome | Routing::RandomHome),
            topology_refresh,
            silence_timeout,
            refreshed_at: Mutex::new(Instant::now()),
            // On a multi-thread runtime the polling worker could not reach
            // the sockets while another waits on them: no polling there.
            spin: (!busy_poll.is_zero()
                && tokio::runtime::Handle::try_current().is_ok_and(|h| {
                    h.runtime_flavor() == tokio::runtime::RuntimeFlavor::CurrentThread
                }))
            .then(|| Spin::start_gated(busy_poll)),
        };
        Ok(Client {
            inner: Arc::new(inner),
            write,
            read,
        })
    }

    /// A client sharing this one's connections whose requests default to
    /// write consistency `write`.
    pub fn with_write(&self, write: WriteConsistency) -> Client {
        Client {
            write: Some(write),
            ..self.clone()
        }
    }

    /// A client sharing this one's connections whose requests default to
    /// read consistency `read`.
    ///
    /// ```no_run
    /// # use meridian::client::{Client, ReadConsistency};
    /// # async fn run(client: Client) -> Result<(), meridian::client::ClientError> {
    /// let value = client.with_read(ReadConsistency::Quorum).register("k").get().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_read(&self, read: ReadConsistency) -> Client {
        Client {
            read: Some(read),
            ..self.clone()
        }
    }

    /// The client's home node (see [`Routing`]), if it has one.
    pub fn home(&self) -> Option<String> {
        let ring = self.inner.ring();
        let home = ring.home?;
        ring.slots.get(&home).map(|s| s.node.id.clone())
    }

    /// The topology the client routes by: the one it connected with, or a
    /// newer one fetched from the cluster by [`Client::refresh_topology`].
    pub fn topology(&self) -> Topology {
        self.inner.ring().topology.clone()
    }

    /// Starts a background [`Client::refresh_topology`] when
    /// [`ClientOptions::topology_refresh`] has passed since the last one.
    fn refresh_when_due(&self) {
        let every = self.inner.topology_refresh;
        if every.is_zero() {
            return;
        }
        {
            let mut at = lock(&self.inner.refreshed_at);
            if at.elapsed() < every {
                return;
            }
            *at = Instant::now();
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let client = self.clone();
        runtime.spawn(async move {
            match client.refresh_topology().await {
                Ok(true) => tracing::info!(
                    nodes = client.topology().nodes().count(),
                    "routing by the cluster's new topology"
                ),
                Ok(false) => {}
                Err(e) => tracing::debug!(error = %e, "could not fetch the topology"),
            }
        });
    }

    /// Fetches the topology a node of the client's region runs and, when it
    /// differs from the client's, routes by it from now on: nodes added to
    /// the region are used, removed ones dropped, and the others keep their
    /// connections. True when the topology changed. A fetched topology of
    /// an older [`version`](Topology::version) than the client's (a node
    /// that has not taken a membership change yet) is not used, so a client
    /// never goes back to an older ring. Requests keep working
    /// with an outdated topology (a node that holds no replica of a key
    /// forwards the request), so this only saves them that hop; call it
    /// after changing the cluster's membership, or from time to time.
    ///
    /// ```no_run
    /// # async fn run(client: meridian::client::Client) -> Result<(), meridian::client::ClientError> {
    /// if client.refresh_topology().await? {
    ///     println!("now {} nodes", client.topology().nodes().count());
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn refresh_topology(&self) -> Result<bool, ClientError> {
        let text = match self.execute(Command::Topology).await?.reply {
            Reply::Value(text) => text,
            other => return Err(unexpected(other, "TOPOLOGY")),
        };
        let text = std::str::from_utf8(&text)
            .map_err(|_| ClientError::Protocol("the topology is not UTF-8".to_owned()))?;
        let origin = format!("the topology of region {}", self.inner.region);
        let topology = Topology::parse(text, origin)
            .map_err(|e| ClientError::Protocol(format!("a node sent a bad topology: {e}")))?;
        if topology.region(&self.inner.region).is_none() {
            return Err(ClientError::Protocol(format!(
                "the topology a node sent has no region {}",
                self.inner.region
            )));
        }
        let mut current = self.inner.ring.write().unwrap_or_else(|e| e.into_inner());
        if topology.cluster() != current.topology.cluster() {
            return Err(ClientError::Protocol(format!(
                "a node sent the topology of cluster {:?}, not {:?}",
                topology.cluster(),
                current.topology.cluster()
            )));
        }
        if current.topology.source() == topology.source() {
            return Ok(false);
        }
        if topology.version() < current.topology.version() {
            tracing::debug!(
                fetched = topology.version(),
                current = current.topology.version(),
                "kept the client's topology: a node sent an older version"
            );
            return Ok(false);
        }
        let mut home_id = current.home_id.clone();
        let region_nodes = topology.nodes_in(&self.inner.region).unwrap_or_default();
        let gone = |id: &String| !region_nodes.iter().any(|n| n.id == *id);
        if self.inner.random_home && home_id.as_ref().is_some_and(gone) && !region_nodes.is_empty()
        {
            // A home picked at random left the region: pick another. A home
            // the application chose stays its home for when it is back.
            home_id = Some(region_nodes[random_below(region_nodes.len())].id.clone());
        }
        let ring = Ring::new(topology, home_id, Some(&current))?;
        *current = Arc::new(ring);
        Ok(true)
    }

    /// The region this client is served by.
    pub fn region(&self) -> &str {
        &self.inner.region
    }

    /// Runs `command` with this client's consistency defaults.
    ///
    /// ```no_run
    /// # use meridian::client::{Client, Command, Reply};
    /// # async fn run(client: Client) -> Result<(), meridian::client::ClientError> {
    /// let answer = client.execute(Command::IncrBy { key: "hits".into(), by: 5 }).await?;
    /// assert!(matches!(answer.reply, Reply::Int(_)));
    /// println!("{} of {} replicas acknowledged", answer.replicas_acked, answer.replicas_needed);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn execute(&self, command: Command) -> Result<Answer, ClientError> {
        self.execute_with(command, self.write, self.read).await
    }

    /// Runs `command` with the given consistency (`None`: the topology's default).
    ///
    /// ```no_run
    /// # use meridian::client::{Client, ClientError, Command, WriteConsistency};
    /// # async fn run(client: Client) -> Result<(), ClientError> {
    /// let set = Command::Set { key: "k".into(), value: "v".into(), ttl_ms: None };
    /// match client.execute_with(set, Some(WriteConsistency::All), None).await {
    ///     Ok(answer) => assert_eq!(answer.replicas_acked, answer.replicas_needed),
    ///     // Kept on `acked` replicas and replicated later: do not resend.
    ///     Err(ClientError::QuorumNotReached { acked, needed }) => println!("{acked}/{needed}"),
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn execute_with(
        &self,
        command: Command,
        write: Option<WriteConsistency>,
        read: Option<ReadConsistency>,
    ) -> Result<Answer, ClientError> {
        self.refresh_when_due();
        let ring = self.inner.ring();
        let replicas: Vec<ReplicaId> = match command.key() {
            Some(key) => ring
                .placement
                .preference_list(&self.inner.region, key)
                .map_err(|e| ClientError::BadRequest(e.to_string()))?
                .to_vec(),
            None => ring
                .topology
                .nodes_in(&self.inner.region)
                .unwrap_or_default()
                .iter()
                .map(|n| n.replica)
                .collect(),
        };
        let replicas = self.route(replicas, ring.home, &command);
        // Counted while it runs, for the next writes' route.
        let _home_write = (command.is_write()
            && self.inner.recent_writes.is_some()
            && ring.home.is_some()
            && replicas.first() == ring.home.as_ref())
        .then(|| HomeWrite::start(&self.inner.home_writes));
        // A read of a key this client may have written lately through a
        // replica it no longer knows (another key took its slot in the
        // table of recent writes) merges a quorum, which holds any write
        // made at quorum or all wherever it went; if no quorum answers, the
        // caller's level is tried after all.
        let unsure = quorum_first(
            self.inner.recent_writes.as_ref(),
            &command,
            read.unwrap_or(ring.topology.read_consistency()),
            Instant::now(),
        );
        if unsure {
            let quorum = Some(ReadConsistency::Quorum);
            let answer = self
                .send(&ring, replicas.clone(), command.clone(), write, quorum)
                .await;
            if !matches!(answer, Err(ClientError::ReadQuorumNotReached { .. })) {
                return answer;
            }
        }
        self.send(&ring, replicas, command, write, read).await
    }

    /// Sends `command` to the first of `replicas` that answers (see
    /// [`Client::execute_with`]).
    async fn send(
        &self,
        ring: &Ring,
        replicas: Vec<ReplicaId>,
        command: Command,
        write: Option<WriteConsistency>,
        read: Option<ReadConsistency>,
    ) -> Result<Answer, ClientError> {
        let resend_after_sent = is_idempotent(&command);
        let written = command.is_write().then(|| command.key().cloned()).flatten();
        let is_read = !command.is_write();
        let (id, frame) = self.frame(command, write, read)?;

        // Reachable replicas first, in preference order; then those that
        // failed and may be back (a dial in the background checks, so that
        // no request waits a connect timeout on a node still gone while
        // another replica can answer); those recently unreachable last.
        let now = Instant::now();
        let (mut up, mut suspect, mut down) = (Vec::new(), Vec::new(), Vec::new());
        for replica in replicas {
            let Some(slot) = ring.slots.get(&replica) else {
                up.push(replica); // `attempt` says it is not in the topology
                continue;
            };
            match slot.standing(now) {
                Standing::Down => down.push(replica),
                Standing::Suspect if slot.live_connection().is_none() => {
                    self.probe(slot);
                    suspect.push(replica);
                }
                _ => up.push(replica),
            }
        }
        let mut last_error = None;
        let mut tried = false;
        for replica in up.into_iter().chain(suspect).chain(down) {
            let mut pause = HELD_BACK_PAUSE_MIN;
            let replica_started = Instant::now();
            let attempt = loop {
                if std::mem::replace(&mut tried, true) {
                    // Sent again: to this replica after another, or to the
                    // same one for an answer it held back.
                    self.inner.failovers.fetch_add(1, Ordering::Relaxed);
                }
                let attempt = self
                    .attempt(ring, replica, id, frame.clone(), Dial::UnlessShutDown)
                    .await;
                // A large answer the node held back because this client's
                // connection had too many bytes of answers on their way:
                // they are being read, so the same node is asked again
                // after a pause, within the request timeout. (Only reads
                // have answers large enough to be held back.)
                match &attempt {
                    Ok(Err(ClientError::Unavailable(why)))
                        if is_read
                            && why.starts_with(crate::net::ANSWERS_UNREAD)
                            && replica_started.elapsed() + pause < self.inner.request_timeout =>
                    {
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(HELD_BACK_PAUSE_MAX);
                    }
                    _ => break attempt,
                }
            };
            // A write's key is read from where it went (from when it was
            // answered, or may have been applied) for a while.
            if !matches!(attempt, Err(CallError::NotSent(_))) {
                self.note_write(written.as_ref(), replica);
            }
            match attempt {
                Ok(answer) => return answer,
                Err(CallError::NotSent(e)) if e.fails_over() => last_error = Some(e),
                Err(CallError::Sent(e)) if e.fails_over() && resend_after_sent => {
                    last_error = Some(e)
                }
                Err(CallError::NotSent(e) | CallError::Sent(e)) => return Err(e),
            }
        }
        Err(last_error.unwrap_or_else(|| {
            ClientError::Unavailable(format!("region {} has no nodes", self.inner.region))
        }))
    }

    /// How many times this client (and its clones) sent a request again
    /// since it connected: to the key's next replica after a connection
    /// error or a timeout, or to the same node for an answer it held back
    /// (see [`crate::net::ANSWERS_UNREAD`]). A load generator shows it to
    /// tell failovers from a quiet run.
    pub fn failovers(&self) -> u64 {
        self.inner.failovers.load(Ordering::Relaxed)
    }

    /// Runs `command` on node `node_id` only, without failover, with the
    /// client's consistency defaults. The node forwards it to a replica of
    /// the key if it holds none. For diagnostics and tests.
    ///
    /// ```no_run
    /// # use meridian::client::{Client, Command, Reply};
    /// # async fn run(client: Client) -> Result<(), meridian::client::ClientError> {
    /// let answer = client.execute_on("us-east-2", Command::Get { key: "k".into() }).await?;
    /// println!("us-east-2 says {:?}", answer.reply);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn execute_on(&self, node_id: &str, command: Command) -> Result<Answer, ClientError> {
        self.execute_on_with(node_id, command, Dial::Always).await
    }

    /// [`Client::execute_on`], but a node found down lately is not dialled
    /// again until it has been passed over for a while: it fails at once.
    pub(crate) async fn execute_on_if_up(
        &self,
        node_id: &str,
        command: Command,
    ) -> Result<Answer, ClientError> {
        let down = {
            let ring = self.inner.ring();
            let slot = ring
                .topology
                .node(node_id)
                .and_then(|node| ring.slots.get(&node.replica));
            slot.is_some_and(|slot| matches!(slot.standing(Instant::now()), Standing::Down))
        };
        if down {
            return Err(ClientError::Connect(format!(
                "node {node_id} is passed over: it failed lately"
            )));
        }
        self.execute_on_with(node_id, command, Dial::UnlessShutDown)
            .await
    }

    async fn execute_on_with(
        &self,
        node_id: &str,
        command: Command,
        dial: Dial,
    ) -> Result<Answer, ClientError> {
        let ring = self.inner.ring();
        let node = ring.topology.node(node_id).ok_or_else(|| {
            ClientError::BadRequest(format!("no node {node_id:?} in the topology"))
        })?;
        let written = command.is_write().then(|| command.key().cloned()).flatten();
        let (id, frame) = self.frame(command, self.write, self.read)?;
        let attempt = self.attempt(&ring, node.replica, id, frame, dial).await;
        if !matches!(attempt, Err(CallError::NotSent(_))) {
            self.note_write(written.as_ref(), node.replica);
        }
        match attempt {
            Ok(answer) => answer,
            Err(CallError::NotSent(e) | CallError::Sent(e)) => Err(e),
        }
    }

    /// Checks that a node of the client's region answers.
    pub async fn ping(&self) -> Result<(), ClientError> {
        match self.execute(Command::Ping).await?.reply {
            Reply::Pong => Ok(()),
            other => Err(unexpected(other, "PING")),
        }
    }

    /// The register at `key`.
    pub fn register(&self, key: impl Into<Bytes>) -> Register {
        Register::new(self.clone(), key.into())
    }

    /// The counter at `key`.
    pub fn counter(&self, key: impl Into<Bytes>) -> Counter {
        Counter::new(self.clone(), key.into())
    }

    /// The set (OR-set, Redis's `SADD` family) at `key`. To write a plain
    /// value, like Redis's `SET`, use [`Client::register`].
    pub fn set(&self, key: impl Into<Bytes>) -> Set {
        Set::new(self.clone(), key.into())
    }

    /// The map at `key`.
    pub fn map(&self, key: impl Into<Bytes>) -> Map {
        Map::new(self.clone(), key.into())
    }

    /// The multi-value register at `key`.
    pub fn mvregister(&self, key: impl Into<Bytes>) -> MvRegister {
        MvRegister::new(self.clone(), key.into())
    }

    /// Deletes `key` (whatever its type); whether a visible key was removed.
    ///
    /// ```no_run
    /// # async fn run(client: meridian::client::Client) -> Result<(), meridian::client::ClientError> {
    /// client.counter("tmp").incr(1).await?;
    /// assert!(client.del("tmp").await?);
    /// assert_eq!(client.type_of("tmp").await?, None);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn del(&self, key: impl Into<Bytes>) -> Result<bool, ClientError> {
        let reply = self.execute(Command::Del { key: key.into() }).await?.reply;
        flag(reply, "DEL")
    }

    /// Makes `key` expire `ttl` from now; false if the key does not exist.
    /// Concurrent deadlines resolve to the longest. A zero `ttl` deletes the
    /// key, as Redis's `EXPIRE` does; a part of a millisecond counts as
    /// one; past [`TTL_MS_MAX`] ms is a
    /// [`ClientError::BadRequest`].
    ///
    /// ```no_run
    /// use meridian::client::Ttl;
    /// use std::time::Duration;
    /// # async fn run(client: meridian::client::Client) -> Result<(), meridian::client::ClientError> {
    /// client.register("session").set("token").await?;
    /// assert!(client.expire("session", Duration::from_secs(60)).await?);
    /// assert!(matches!(client.ttl("session").await?, Ttl::Ms(ms) if ms <= 60_000));
    /// assert!(client.persist("session").await?);
    /// assert_eq!(client.ttl("session").await?, Ttl::Persistent);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn expire(&self, key: impl Into<Bytes>, ttl: Duration) -> Result<bool, ClientError> {
        let command = Command::Expire {
            key: key.into(),
            ttl_ms: ttl_ms(ttl)?,
        };
        flag(self.execute(command).await?.reply, "EXPIRE")
    }

    /// Makes `key` expire at `at`, a time of this machine's clock (nodes
    /// keep a key's time left, so `at` becomes the time from now to it); a
    /// time that has passed deletes the key, as Redis's `EXPIREAT` does.
    /// False if the key does not exist.
    ///
    /// ```no_run
    /// use std::time::{Duration, SystemTime};
    /// # async fn run(client: meridian::client::Client) -> Result<(), meridian::client::ClientError> {
    /// let midnight = SystemTime::now() + Duration::from_secs(3_600);
    /// client.expire_at("daily:report", midnight).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn expire_at(
        &self,
        key: impl Into<Bytes>,
        at: std::time::SystemTime,
    ) -> Result<bool, ClientError> {
        let key = key.into();
        match at.duration_since(std::time::SystemTime::now()) {
            Ok(ttl) if !ttl.is_zero() => self.expire(key, ttl).await,
            _ => self.del(key).await,
        }
    }

    /// The time `key` has left to live.
    pub async fn ttl(&self, key: impl Into<Bytes>) -> Result<Ttl, ClientError> {
        match self.execute(Command::Ttl { key: key.into() }).await?.reply {
            Reply::Ttl(ttl) => Ok(ttl),
            other => Err(unexpected(other, "TTL")),
        }
    }

    /// Removes `key`'s deadline; whether it had one.
    pub async fn persist(&self, key: impl Into<Bytes>) -> Result<bool, ClientError> {
        flag(
            self.execute(Command::Persist { key: key.into() })
                .await?
                .reply,
            "PERSIST",
        )
    }

    /// The type of `key`, `None` if it does not exist.
    pub async fn type_of(&self, key: impl Into<Bytes>) -> Result<Option<Kind>, ClientError> {
        match self.execute(Command::Type { key: key.into() }).await?.reply {
            Reply::Type(kind) => Ok(kind),
            other => Err(unexpected(other, "TYPE")),
        }
    }

    /// A new request id and the request framed, refused if over the frame limit.
    fn frame(
        &self,
        command: Command,
        write: Option<WriteConsistency>,
        read: Option<ReadConsistency>,
    ) -> Result<(u64, Vec<u8>), ClientError> {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let request = Request {
            id,
            command,
            write,
            read,
        };
        let mut frame = Vec::new();
        encode_into(&request, &mut frame, self.inner.frame_bytes_max).map_err(|e| match e {
            FrameError::TooLarge { len, max } => ClientError::TooLarge {
                what: "request",
                len: len as u64,
                max: max as u64,
            },
            other => ClientError::Protocol(other.to_string()),
        })?;
        Ok((id, frame))
    }

    /// One try on one replica: the node's answer, or why there was none.
    async fn attempt(
        &self,
        ring: &Ring,
        replica: ReplicaId,
        id: u64,
        frame: Vec<u8>,
        dial: Dial,
    ) -> Result<Result<Answer, ClientError>, CallError> {
        let Some(slot) = ring.slots.get(&replica) else {
            return Err(CallError::NotSent(ClientError::Unavailable(format!(
                "replica {replica} is not in the topology"
            ))));
        };
        let connection = self
            .connection(slot, dial)
            .await
            .map_err(CallError::NotSent)?;
        if let Some(spin) = &self.inner.spin {
            spin.after_batch();
        }
        let called =
            tokio::time::timeout(self.inner.request_timeout, connection.call(id, frame)).await;
        if let Some(spin) = &self.inner.spin {
            // Answered, failed or timed out: the wait is over either way.
            spin.answered();
        }
        match called {
            Ok(Ok(response)) => Ok(response.result.map_err(ClientError::from)),
            Ok(Err(e)) => {
                if connection.node_shut_down() || !connection.is_alive() {
                    slot.mark_down();
                }
                Err(e)
            }
            Err(_) => {
                // Silent for a whole request timeout: tried after the others
                // for a while, and its connection is no longer used for new
                // requests (a node killed without closing its connection
                // looks alive until the connection's idle timeout), so that
                // it is dialled again in the background before it is trusted.
                slot.mark_down();
                lock(&slot.connection).take();
                Err(CallError::Sent(ClientError::Timeout))
            }
        }
    }

    /// Dials `slot`'s node in the background, unless a probe already runs
    /// (or there is no runtime to run one): a node that answers is up
    /// again, one that does not is passed over for longer.
    fn probe(&self, slot: &Arc<Slot>) {
        use std::sync::atomic::Ordering::AcqRel;
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if slot.probing.swap(true, AcqRel) {
            return;
        }
        let (client, slot) = (self.clone(), slot.clone());
        runtime.spawn(async move {
            let _ = client.connection(&slot, Dial::UnlessShutDown).await;
            slot.probing
                .store(false, std::sync::atomic::Ordering::Release);
        });
    }

    /// The live connection to `slot`'s node, dialling if there is none.
    async fn connection(
        &self,
        slot: &Slot,
        dial: Dial,
    ) -> Result<Arc<NodeConnection>, ClientError> {
        if let Some(connection) = slot.live_connection() {
            return Ok(connection);
        }
        let waited_from = Instant::now();
        let _dialling = slot.dialling.lock().await;
        if let Some(connection) = slot.live_connection() {
            return Ok(connection);
        }
        if dial == Dial::UnlessShutDown && slot.failed_since(waited_from) {
            // Another caller's dial failed while this one waited for it:
            // fail over now instead of dialling again (callers queued on a
            // dead node would otherwise each wait a whole connect timeout
            // in turn).
            return Err(ClientError::Connect(format!(
                "node {} is unreachable",
                slot.node.id
            )));
        }
        let previous = lock(&slot.connection).take();
        if dial == Dial::UnlessShutDown && previous.is_some_and(|p| p.node_shut_down()) {
            // The node said it was going away: pass it over for a while
            // rather than wait on a dial that cannot succeed.
            slot.mark_down();
            return Err(ClientError::Connect(format!(
                "node {} is shutting down",
                slot.node.id
            )));
        }
        let opened = NodeConnection::open(
            &self.inner.endpoint,
            slot.node.client_addr,
            &slot.server_name,
            self.inner.connect_timeout,
            self.inner.frame_bytes_max,
        )
        .await;
        match opened {
            Ok(connection) => {
                let connection = Arc::new(connection);
                connection.watch(self.inner.silence_timeout);
                *lock(&slot.connection) = Some(connection.clone());
                slot.mark_up();
                Ok(connection)
            }
            Err(e) => {
                slot.mark_down();
                Err(e)
            }
        }
    }
}

/// When a node whose last connection it closed itself may be dialled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dial {
    /// Only once it has been passed over for a while (when other replicas
    /// can serve instead).
    UnlessShutDown,
    /// Now (when no other node will do).
    Always,
}

impl Client {
    /// `replicas` (a key's preference list) in the order to try them for
    /// `command` (see [`route`]).
    fn route(
        &self,
        replicas: Vec<ReplicaId>,
        home: Option<ReplicaId>,
        command: &Command,
    ) -> Vec<ReplicaId> {
        let recent = self.inner.recent_writes.as_ref();
        // Writes the home may still take; none (`home_writes_max` 0): the
        // client's writes go by key.
        let max = self.inner.home_writes_max;
        let home_room =
            (max > 0).then(|| max.saturating_sub(self.inner.home_writes.load(Ordering::Relaxed)));
        route(replicas, home, recent, home_room, command, Instant::now())
    }

    /// Notes that `replica` answered, or may have applied, a write to `key`
    /// (with [`Routing::ReadHome`]).
    fn note_write(&self, key: Option<&Bytes>, replica: ReplicaId) {
        if let (Some(recent), Some(key)) = (&self.inner.recent_writes, key) {
            recent.wrote(key, replica, Instant::now());
        }
    }
}

/// The most writes a client with [`Routing::ReadHome`] has its home node
/// coordinate at once by default ([`ClientOptions::home_writes_max`]);
/// more go to their keys' first replicas other than the home.
/// With few writes in flight one coordinator is cheapest for the region
/// (each pass sends the deltas of many writes to each replica in one
/// message); with many, one process coordinating them all is slower than
/// three sharing them (BENCHMARKS.md, "Writes to the home while few are in
/// flight").
pub const HOME_WRITES_MAX: usize = 16;

/// A write counted in [`Inner::home_writes`] until it is dropped.
struct HomeWrite<'a>(&'a AtomicUsize);

impl<'a> HomeWrite<'a> {
    fn start(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        HomeWrite(count)
    }
}

impl Drop for HomeWrite<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// `replicas` (a key's preference list) in the order to try them for
/// `command` at `now`: the home first, if it is one of them; but with
/// [`Routing::ReadHome`] (`recent`, the client's recent writes), a write
/// goes to the home only while it has room for more (`home_room`, see
/// [`ClientOptions::home_writes_max`]), else in ring order with the home
/// last (in ring order when the home takes no writes, `None`), and a read of
/// a key written lately goes to the replica that took the write (in ring
/// order if that is not known).
fn route(
    replicas: Vec<ReplicaId>,
    home: Option<ReplicaId>,
    recent: Option<&RecentWrites>,
    home_room: Option<usize>,
    command: &Command,
    now: Instant,
) -> Vec<ReplicaId> {
    let (Some(recent), Some(key)) = (recent, command.key()) else {
        return home_first(replicas, home);
    };
    if command.is_write() {
        let replicas = match home_room {
            Some(1..) => home_first(replicas, home),
            // The home has its share: the others coordinate the rest.
            Some(0) => home_last(replicas, home),
            None => replicas,
        };
        // Noted before it is sent, in case the caller stops waiting for
        // the answer; noted again with the replica that took it.
        if let Some(&first) = replicas.first() {
            recent.wrote(key, first, now);
        }
        return replicas;
    }
    match recent.recent(key, now) {
        Recent::No => home_first(replicas, home),
        Recent::By(writer) => home_first(replicas, Some(writer)),
        Recent::Unknown => replicas,
    }
}

/// The node `routing` makes the client's home in `region`.
fn home_node(
    topology: &Topology,
    region: &str,
    routing: &Routing,
) -> Result<Option<ReplicaId>, ClientError> {
    let nodes = topology.nodes_in(region).unwrap_or_default();
    match routing {
        Routing::Primary => Ok(None),
        Routing::ReadHome | Routing::RandomHome if nodes.is_empty() => Ok(None),
        Routing::ReadHome | Routing::RandomHome => {
            Ok(Some(nodes[random_below(nodes.len())].replica))
        }
        Routing::Home(id) | Routing::ReadHomeAt(id) => nodes
            .iter()
            .find(|n| n.id == *id)
            .map(|n| Some(n.replica))
            .ok_or_else(|| {
                ClientError::BadRequest(format!("home node {id:?} is not in region {region:?}"))
            }),
    }
}

/// A random number below `n` (0 when `n` is 0), for picking a home node.
pub(crate) fn random_below(n: usize) -> usize {
    use rand::Rng;
    rand::thread_rng().gen_range(0..n.max(1))
}

/// `replicas` with `home` moved to the front when it is one of them.
fn home_first(mut replicas: Vec<ReplicaId>, home: Option<ReplicaId>) -> Vec<ReplicaId> {
    if let Some(i) = home.and_then(|h| replicas.iter().position(|r| *r == h)) {
        let home = replicas.remove(i);
        replicas.insert(0, home);
    }
    replicas
}

/// Whether a read of `command`'s key at `level` is sent at quorum first:
/// when the client may have written the key lately through a replica it no
/// longer knows (another key took its slot in `recent`).
fn quorum_first(
    recent: Option<&RecentWrites>,
    command: &Command,
    level: ReadConsistency,
    now: Instant,
) -> bool {
    let Some(key) = command.key() else {
        return false;
    };
    !command.is_write()
        && level != ReadConsistency::Quorum
        && recent.is_some_and(|recent| recent.recent(key, now) == Recent::Unknown)
}

/// `replicas` with `home`, if it is one of them, moved to the end.
fn home_last(mut replicas: Vec<ReplicaId>, home: Option<ReplicaId>) -> Vec<ReplicaId> {
    if let Some(i) = home.and_then(|h| replicas.iter().position(|r| *r == h)) {
        let home = replicas.remove(i);
        replicas.push(home);
    }
    replicas
}

/// Whether sending `command` twice has the effect of sending it once.
fn is_idempotent(command: &Command) -> bool {
    !matches!(
        command,
        Command::IncrBy { .. }
            | Command::HIncrBy { .. }
            | Command::MapApply {
                op: FieldOp::Incr(_),
                ..
            }
    )
}

/// The longest time to live a command accepts, in milliseconds, and the
/// furthest in the past `expire` takes: the most whole seconds a 64-bit
/// signed number of milliseconds holds (Redis's limit for `EXPIRE` in
/// seconds). The SDK and the command line's `EX`, `PX` and `expire` share
/// it, so no deadline is ever clamped and `ttl` never reports a time that
/// `expire` would refuse.
pub const TTL_MS_MAX: u64 = i64::MAX as u64 / 1000 * 1000;

/// A time to live in whole milliseconds, a part of one counting as one (so
/// that a positive time never means "now"), refused past the longest the
/// command line takes too, [`TTL_MS_MAX`].
pub(crate) fn ttl_ms(ttl: Duration) -> Result<u64, ClientError> {
    let ms = ttl.as_nanos().div_ceil(1_000_000);
    match u64::try_from(ms) {
        Ok(ms) if ms <= TTL_MS_MAX => Ok(ms),
        _ => Err(ClientError::BadRequest(format!(
            "invalid expire time: {ttl:?} is longer than the most, {} ms",
            TTL_MS_MAX
        ))),
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn unexpected(reply: Reply, command: &str) -> ClientError {
    ClientError::Protocol(format!("unexpected reply {reply:?} to {command}"))
}

/// A 0/1 answer as a bool.
fn flag(reply: Reply, command: &str) -> Result<bool, ClientError> {
    match reply {
        Reply::Int(n) => Ok(n > 0),
        Reply::Bool(b) => Ok(b),
        other => Err(unexpected(other, command)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_to_live_counts_a_part_of_a_millisecond_as_one_and_has_a_most() {
        assert_eq!(ttl_ms(Duration::ZERO).unwrap(), 0);
        assert_eq!(ttl_ms(Duration::from_micros(500)).unwrap(), 1);
        assert_eq!(ttl_ms(Duration::from_micros(1_500)).unwrap(), 2);
        assert_eq!(ttl_ms(Duration::from_secs(60)).unwrap(), 60_000);
        let most = TTL_MS_MAX;
        assert_eq!(ttl_ms(Duration::from_millis(most)).unwrap(), most);
        assert!(matches!(
            ttl_ms(Duration::from_millis(most + 1)),
            Err(ClientError::BadRequest(m)) if m.contains("invalid expire time")
        ));
        assert!(ttl_ms(Duration::MAX).is_err());
    }

    #[test]
    fn requests_failing_together_pass_a_node_over_once_and_later_failures_double_it() {
        let text = "[cluster]\nname = \"t\"\nreplication_factor = 1\n\
            [[region]]\nname = \"r\"\n[[region.node]]\nid = \"n1\"\n\
            client_addr = \"127.0.0.1:7001\"\npeer_addr = \"127.0.0.1:7002\"\n";
        let topology = Topology::parse(text, "t.toml").unwrap();
        let ring = Ring::new(topology, None, None).unwrap();
        let slot = ring.slots.values().next().unwrap();
        let down_ms = |slot: &Slot| lock(&slot.health).down_ms;
        // Twenty requests failing on one lost connection: one pass-over.
        for _ in 0..20 {
            slot.mark_down();
        }
        assert_eq!(down_ms(slot), NODE_DOWN_MS_MIN);
        assert_eq!(slot.standing(Instant::now()), Standing::Down);
        // A failure after the pass-over ended doubles it.
        lock(&slot.health).down_until = Some(Instant::now());
        let before = lock(&slot.health).failed_at;
        slot.mark_down();
        assert_eq!(down_ms(slot), 2 * NODE_DOWN_MS_MIN);
        assert!(lock(&slot.health).failed_at > before);
    }

    fn r(ids: &[u32]) -> Vec<ReplicaId> {
        ids.iter().map(|&i| ReplicaId(i)).collect()
    }

    fn get(key: &str) -> Command {
        Command::Get { key: key.into() }
    }

    fn set(key: &str) -> Command {
        Command::Set {
            key: key.into(),
            value: "v".into(),
            ttl_ms: None,
        }
    }

    #[test]
    fn a_home_for_everything_takes_reads_and_writes_of_its_keys() {
        let home = Some(ReplicaId(3));
        let now = Instant::now();
        for command in [get("k"), set("k"), Command::Ping] {
            assert_eq!(
                route(
                    r(&[1, 2, 3]),
                    home,
                    None,
                    Some(HOME_WRITES_MAX),
                    &command,
                    now
                ),
                r(&[3, 1, 2])
            );
            // Not a replica of the key: by key.
            assert_eq!(
                route(
                    r(&[1, 2, 4]),
                    home,
                    None,
                    Some(HOME_WRITES_MAX),
                    &command,
                    now
                ),
                r(&[1, 2, 4])
            );
            // No home (primary routing).
            assert_eq!(
                route(
                    r(&[1, 2, 3]),
                    None,
                    None,
                    Some(HOME_WRITES_MAX),
                    &command,
                    now
                ),
                r(&[1, 2, 3])
            );
        }
    }

    #[test]
    fn a_read_home_takes_reads_and_few_writes_and_recent_writes_are_read_where_they_went() {
        let recent = RecentWrites::new();
        let home = Some(ReplicaId(3));
        let t0 = recent.start + Duration::from_secs(5);
        let route_at = |command: &Command, at: Instant| {
            route(
                r(&[1, 2, 3]),
                home,
                Some(&recent),
                Some(HOME_WRITES_MAX),
                command,
                at,
            )
        };
        assert_eq!(route_at(&get("k"), t0), r(&[3, 1, 2]), "a read goes home");
        // A write goes home while the home has room for more, else by
        // key; its key is then read where it went.
        assert_eq!(route_at(&set("k"), t0), r(&[3, 1, 2]));
        let write = route(r(&[1, 2, 3]), home, Some(&recent), Some(0), &set("k"), t0);
        assert_eq!(write, r(&[1, 2, 3]), "no room at the home");
        assert_eq!(route_at(&get("k"), t0), r(&[1, 2, 3]));
        // Nor as the key's first replica: the next one coordinates.
        let write = route(r(&[3, 1, 2]), home, Some(&recent), Some(0), &set("j"), t0);
        assert_eq!(write, r(&[1, 2, 3]));
        let read = route(r(&[3, 1, 2]), home, Some(&recent), Some(0), &get("j"), t0);
        assert_eq!(read, r(&[1, 3, 2]), "read where it went");
        // A client whose home takes no writes (`home_writes_max` 0): by key.
        let write = route(r(&[3, 1, 2]), home, Some(&recent), None, &set("i"), t0);
        assert_eq!(write, r(&[3, 1, 2]));
        let write = route(r(&[1, 2, 3]), home, Some(&recent), Some(1), &set("k"), t0);
        assert_eq!(write, r(&[3, 1, 2]));
        assert_eq!(route_at(&get("k"), t0), r(&[3, 1, 2]));
        // A home that is not a replica of the key: by key.
        let write = route(
            r(&[1, 2, 4]),
            home,
            Some(&recent),
            Some(HOME_WRITES_MAX),
            &set("x"),
            t0,
        );
        assert_eq!(write, r(&[1, 2, 4]));
        // Replica 2 took it (the first had failed): the key's reads go there
        // until RECENT_WRITE_MS after the answer; other keys' go home.
        let answered = t0 + Duration::from_millis(1_500);
        recent.wrote(b"k", ReplicaId(2), answered);
        let window = Duration::from_millis(u64::from(RECENT_WRITE_MS));
        let just_before = answered + window - Duration::from_millis(1);
        assert_eq!(route_at(&get("k"), answered), r(&[2, 1, 3]));
        assert_eq!(route_at(&get("k"), just_before), r(&[2, 1, 3]));
        assert_eq!(route_at(&get("k"), answered + window), r(&[3, 1, 2]));
        assert_eq!(route_at(&get("other"), answered), r(&[3, 1, 2]));
        // Every read counts, whatever its type.
        let ttl = Command::Ttl { key: "k".into() };
        assert_eq!(route_at(&ttl, answered), r(&[2, 1, 3]));
        // Commands without a key go home first.
        assert_eq!(route_at(&Command::Ping, answered), r(&[3, 1, 2]));
    }

    #[test]
    fn a_key_whose_slot_another_key_took_is_read_by_key_at_quorum() {
        let recent = RecentWrites::new();
        let now = recent.start + Duration::from_secs(1);
        // Two keys of one slot.
        let (slot, _) = RecentWrites::slot(b"k");
        let other = (0u64..)
            .map(|i| format!("other-{i}"))
            .find(|o| RecentWrites::slot(o.as_bytes()).0 == slot && o.as_bytes() != b"k")
            .unwrap();
        recent.wrote(b"k", ReplicaId(2), now);
        recent.wrote(other.as_bytes(), ReplicaId(3), now);
        assert_eq!(
            recent.recent(other.as_bytes(), now),
            Recent::By(ReplicaId(3))
        );
        assert_eq!(recent.recent(b"k", now), Recent::Unknown);
        // By key, and `execute_with` reads it at quorum (the write may have
        // gone home or elsewhere).
        let read = route(
            r(&[1, 2, 3]),
            Some(ReplicaId(3)),
            Some(&recent),
            Some(HOME_WRITES_MAX),
            &get("k"),
            now,
        );
        assert_eq!(read, r(&[1, 2, 3]));
        let (one, quorum) = (ReadConsistency::One, ReadConsistency::Quorum);
        assert!(quorum_first(Some(&recent), &get("k"), one, now));
        assert!(!quorum_first(Some(&recent), &get("k"), quorum, now));
        assert!(!quorum_first(Some(&recent), &set("k"), one, now));
        assert!(!quorum_first(None, &get("k"), one, now));
        assert!(!quorum_first(Some(&recent), &get(&other), one, now));
        assert!(!quorum_first(Some(&recent), &Command::Ping, one, now));
    }

    #[test]
    fn home_writes_are_counted_while_they_run() {
        let count = AtomicUsize::new(0);
        {
            let _a = HomeWrite::start(&count);
            let _b = HomeWrite::start(&count);
            assert_eq!(count.load(Ordering::Relaxed), 2);
        }
        assert_eq!(count.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn recent_writes_start_empty_and_survive_a_clock_before_their_start() {
        let recent = RecentWrites::new();
        let later = recent.start + Duration::from_secs(3600);
        assert_eq!(recent.recent(b"k", later), Recent::No);
        if let Some(early) = recent.start.checked_sub(Duration::from_secs(1)) {
            recent.wrote(b"k", ReplicaId(7), early);
            assert_eq!(recent.recent(b"k", recent.start), Recent::By(ReplicaId(7)));
            assert_eq!(recent.recent(b"k", later), Recent::No);
        }
    }
}
