//! The cluster's topology: regions, their nodes, and how they are reached.
//!
//! A topology is a TOML file (`regions/*.toml`) that every node and client of
//! a cluster reads, so all of them agree on the regions, the nodes, each
//! node's [`ReplicaId`], the replication factor N, the default consistency
//! levels, the request limits, and the WAN links the local lab emulates.
//!
//! ```toml
//! [cluster]
//! name = "local"
//! replication_factor = 3        # N: replicas of each key in a region
//! write_consistency = "quorum"  # one | quorum | all (default quorum)
//! read_consistency = "one"      # one | quorum (default one)
//! version = 1                   # optional (default 0); higher is newer
//!
//! [limits]                      # optional; these are the defaults
//! key_bytes_max = 1024
//! value_bytes_max = 1048576
//! frame_bytes_max = 2097152
//! streams_per_connection_max = 1024
//!
//! [[region]]
//! name = "us-east"
//!
//! [[region.node]]
//! id = "us-east-1"
//! client_addr = "127.0.0.1:7101"
//! peer_addr = "127.0.0.1:7111"
//! # replica_id = 17            # optional; derived from `id` by default
//!
//! [[link]]                      # optional, one per region pair
//! regions = ["us-east", "eu-west"]
//! rtt_ms = 80
//! jitter_ms = 2
//! loss = 0.0
//! ```
//!
//! Loading checks the whole file and fails with a [`TopologyError`] naming
//! the file, the line and the [`Problem`]. This module only reads the file
//! it is given; it never opens sockets.

use crdt_types::ReplicaId;
use serde::Deserialize;
use std::collections::HashMap;
use std::fmt;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use toml::Spanned;

/// Largest topology file [`Topology::load`] reads.
pub const TOPOLOGY_BYTES_MAX: u64 = 1 << 20;
/// Most regions a cluster may have.
pub const REGIONS_MAX: usize = 64;
/// Most nodes a region may have.
pub const NODES_PER_REGION_MAX: usize = 1024;
/// Largest replication factor N.
pub const REPLICATION_FACTOR_MAX: usize = 16;
/// Longest cluster name, region name or node id, in bytes.
pub const NAME_BYTES_MAX: usize = 64;
/// Largest round-trip time a link may emulate.
pub const LINK_RTT_MS_MAX: u32 = 60_000;
/// Room a frame needs beside one maximal key and one maximal value.
pub const FRAME_HEADROOM_BYTES: u32 = 1024;

/// Consistency of a write inside a region: how many of the key's N replicas
/// must apply it before it is acknowledged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WriteConsistency {
    /// One replica.
    One,
    /// A majority, `N / 2 + 1`.
    #[default]
    Quorum,
    /// All N replicas.
    All,
}

impl WriteConsistency {
    /// Acknowledgements needed when a key has `replicas` replicas.
    pub fn acks_needed(self, replicas: usize) -> usize {
        match self {
            WriteConsistency::One => replicas.min(1),
            WriteConsistency::Quorum => replicas / 2 + 1,
            WriteConsistency::All => replicas,
        }
    }
}

/// Consistency of a read inside a region.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadConsistency {
    /// Read one replica (fastest).
    #[default]
    One,
    /// Read a majority, merge their states and repair the stale ones.
    Quorum,
}

impl ReadConsistency {
    /// Replicas to read when a key has `replicas` replicas.
    pub fn replies_needed(self, replicas: usize) -> usize {
        match self {
            ReadConsistency::One => replicas.min(1),
            ReadConsistency::Quorum => replicas / 2 + 1,
        }
    }
}

/// Size and concurrency limits every node enforces on requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest key.
    pub key_bytes_max: u32,
    /// Largest value.
    pub value_bytes_max: u32,
    /// Largest protocol frame; at least one maximal key and value plus
    /// [`FRAME_HEADROOM_BYTES`].
    pub frame_bytes_max: u32,
    /// Most concurrent streams a connection may open.
    pub streams_per_connection_max: u32,
}

impl Limits {
    /// Upper bound on `key_bytes_max`.
    pub const KEY_BYTES_MAX_CEILING: u32 = 64 << 10;
    /// Upper bound on `value_bytes_max`.
    pub const VALUE_BYTES_MAX_CEILING: u32 = 64 << 20;
    /// Upper bound on `frame_bytes_max`.
    pub const FRAME_BYTES_MAX_CEILING: u32 = 128 << 20;
    /// Upper bound on `streams_per_connection_max`.
    pub const STREAMS_PER_CONNECTION_MAX_CEILING: u32 = 65_536;
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            key_bytes_max: 1024,
            value_bytes_max: 1 << 20,
            frame_bytes_max: 2 << 20,
            streams_per_connection_max: 1024,
        }
    }
}

/// One node of a region.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// Unique name, such as `us-east-1`.
    pub id: String,
    /// Identity in CRDT dots; unique in the cluster and never reused.
    pub replica: ReplicaId,
    /// Where clients connect.
    pub client_addr: SocketAddr,
    /// Where other nodes connect.
    pub peer_addr: SocketAddr,
}

impl Node {
    /// A node whose replica id is derived from its `id`.
    pub fn new(id: impl Into<String>, client_addr: SocketAddr, peer_addr: SocketAddr) -> Node {
        let id = id.into();
        Node {
            replica: derived_replica_id(&id),
            id,
            client_addr,
            peer_addr,
        }
    }
}

/// A region: a set of nodes sharing one consistent-hash ring.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Region {
    /// Unique name, such as `us-east`.
    pub name: String,
    /// The region's nodes, in file order.
    pub nodes: Vec<Node>,
}

/// The emulated WAN path between two regions.
#[derive(Clone, Debug, PartialEq)]
pub struct Link {
    /// The two regions, in file order.
    pub regions: [String; 2],
    /// Round-trip time; each direction is delayed by half of it.
    pub rtt_ms: u32,
    /// Random variation added to or taken from each one-way delay.
    pub jitter_ms: u32,
    /// Fraction of packets dropped, in `[0, 1]`.
    pub loss: f64,
}

impl Link {
    /// Whether the link joins regions `a` and `b` (in either order).
    pub fn joins(&self, a: &str, b: &str) -> bool {
        (self.regions[0] == a && self.regions[1] == b)
            || (self.regions[0] == b && self.regions[1] == a)
    }
}

/// The replica id of a node that sets none: the 32-bit FNV-1a hash of its
/// id. Stable across processes, platforms and versions.
///
/// ```
/// use meridian::topology::derived_replica_id;
/// assert_eq!(derived_replica_id("us-east-1"), derived_replica_id("us-east-1"));
/// assert_ne!(derived_replica_id("us-east-1"), derived_replica_id("us-east-2"));
/// ```
pub fn derived_replica_id(node_id: &str) -> ReplicaId {
    const OFFSET_BASIS: u32 = 0x811c_9dc5;
    const PRIME: u32 = 0x0100_0193;
    let hash = node_id.bytes().fold(OFFSET_BASIS, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(PRIME)
    });
    ReplicaId(hash)
}

/// A validated cluster topology.
///
/// ```
/// use meridian::topology::{Topology, WriteConsistency};
///
/// let topology = Topology::parse(
///     r#"
///     [cluster]
///     name = "tiny"
///     replication_factor = 1
///
///     [[region]]
///     name = "lab"
///
///     [[region.node]]
///     id = "lab-1"
///     client_addr = "127.0.0.1:7001"
///     peer_addr = "127.0.0.1:7002"
///     "#,
///     "tiny.toml",
/// )?;
/// assert_eq!(topology.replication_factor(), 1);
/// assert_eq!(topology.write_consistency(), WriteConsistency::Quorum);
/// assert_eq!(topology.region_of("lab-1").unwrap().name, "lab");
/// # Ok::<(), meridian::topology::TopologyError>(())
/// ```
#[derive(Clone, Debug)]
pub struct Topology {
    origin: String,
    /// The text it was parsed from, as nodes hand it to clients.
    source: Arc<str>,
    cluster: String,
    version: u64,
    replication_factor: usize,
    write_consistency: WriteConsistency,
    read_consistency: ReadConsistency,
    limits: Limits,
    regions: Vec<Region>,
    links: Vec<Link>,
    /// Node id → (region index, node index).
    by_id: HashMap<String, (usize, usize)>,
    /// Replica id → (region index, node index).
    by_replica: HashMap<ReplicaId, (usize, usize)>,
}

/// Two topologies are equal when they describe the same cluster from the
/// same origin, whatever the layout and comments of their text.
impl PartialEq for Topology {
    fn eq(&self, other: &Topology) -> bool {
        self.origin == other.origin
            && self.cluster == other.cluster
            && self.version == other.version
            && self.replication_factor == other.replication_factor
            && self.write_consistency == other.write_consistency
            && self.read_consistency == other.read_consistency
            && self.limits == other.limits
            && self.regions == other.regions
            && self.links == other.links
    }
}

impl Topology {
    /// Reads and validates the topology file at `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<Topology, TopologyError> {
        let path = path.as_ref();
        let origin = path.display().to_string();
        let fail = |problem| TopologyError {
            origin: origin.clone(),
            line: None,
            problem,
        };
        let file = std::fs::File::open(path).map_err(|e| fail(Problem::Read(e)))?;
        let mut text = String::new();
        file.take(TOPOLOGY_BYTES_MAX + 1)
            .read_to_string(&mut text)
            .map_err(|e| fail(Problem::Read(e)))?;
        if text.len() as u64 > TOPOLOGY_BYTES_MAX {
            return Err(fail(Problem::TooLarge {
                bytes_max: TOPOLOGY_BYTES_MAX,
            }));
        }
        Topology::parse(&text, origin)
    }

    /// Parses and validates topology `text`; `origin` names it in errors
    /// (usually the file's path).
    pub fn parse(text: &str, origin: impl Into<String>) -> Result<Topology, TopologyError> {
        let origin = origin.into();
        let raw: RawTopology = toml::from_str(text).map_err(|e| TopologyError {
            line: e.span().map(|span| line_of(text, span.start)),
            problem: Problem::Syntax(syntax_message(e.message())),
            origin: origin.clone(),
        })?;
        Builder { text, origin }.build(raw)
    }

    /// The text the topology was parsed from (what a node sends a client
    /// that asks for it with `Command::Topology`).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Where the topology was read from.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The cluster's name.
    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    /// The topology's version (`[cluster] version`, 0 when the file does
    /// not say): `cluster add-node` and `remove-node` write the next one. A
    /// node refuses to reload an older version than it runs, and a client
    /// never trades its topology for an older one a node sends it.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// N: how many nodes of a region hold each key.
    pub fn replication_factor(&self) -> usize {
        self.replication_factor
    }

    /// Consistency of writes that do not choose one.
    pub fn write_consistency(&self) -> WriteConsistency {
        self.write_consistency
    }

    /// Consistency of reads that do not choose one.
    pub fn read_consistency(&self) -> ReadConsistency {
        self.read_consistency
    }

    /// Request limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// All regions, in file order.
    pub fn regions(&self) -> &[Region] {
        &self.regions
    }

    /// The region called `name`.
    pub fn region(&self, name: &str) -> Option<&Region> {
        self.regions.iter().find(|region| region.name == name)
    }

    /// The nodes of region `name`, in file order.
    pub fn nodes_in(&self, region: &str) -> Option<&[Node]> {
        self.region(region).map(|region| region.nodes.as_slice())
    }

    /// Every node with its region.
    pub fn nodes(&self) -> impl Iterator<Item = (&Region, &Node)> + '_ {
        self.regions
            .iter()
            .flat_map(|region| region.nodes.iter().map(move |node| (region, node)))
    }

    /// The node whose id is `id`.
    pub fn node(&self, id: &str) -> Option<&Node> {
        let &(region, node) = self.by_id.get(id)?;
        Some(&self.regions[region].nodes[node])
    }

    /// The node whose replica id is `replica`.
    pub fn node_by_replica(&self, replica: ReplicaId) -> Option<&Node> {
        let &(region, node) = self.by_replica.get(&replica)?;
        Some(&self.regions[region].nodes[node])
    }

    /// The region of node `id`.
    pub fn region_of(&self, id: &str) -> Option<&Region> {
        let &(region, _) = self.by_id.get(id)?;
        Some(&self.regions[region])
    }

    /// All links, in file order.
    pub fn links(&self) -> &[Link] {
        &self.links
    }

    /// The link between regions `a` and `b`, if the file gives one.
    pub fn link(&self, a: &str, b: &str) -> Option<&Link> {
        self.links.iter().find(|link| link.joins(a, b))
    }
}

/// A topology that could not be loaded: where, and what is wrong.
///
/// Displays as `file:line: problem` (or `file: problem` when no line applies).
#[derive(Debug)]
pub struct TopologyError {
    origin: String,
    line: Option<usize>,
    problem: Problem,
}

impl TopologyError {
    /// The file (or other origin) the topology came from.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The 1-based line of the offending item, when one applies.
    pub fn line(&self) -> Option<usize> {
        self.line
    }

    /// What is wrong.
    pub fn problem(&self) -> &Problem {
        &self.problem
    }
}

impl fmt::Display for TopologyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.origin, line, self.problem),
            None => write!(f, "{}: {}", self.origin, self.problem),
        }
    }
}

impl std::error::Error for TopologyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.problem)
    }
}

/// What is wrong with a topology.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Problem {
    /// The file could not be read.
    #[error("cannot read: {0}")]
    Read(#[source] io::Error),
    /// The file is larger than [`TOPOLOGY_BYTES_MAX`].
    #[error("file is larger than {bytes_max} bytes")]
    TooLarge {
        /// The limit.
        bytes_max: u64,
    },
    /// Not valid TOML, or not the shape of a topology (missing or unknown
    /// field, wrong type).
    #[error("{0}")]
    Syntax(String),
    /// A cluster name, region name or node id is empty, too long or has a
    /// character outside `[A-Za-z0-9._-]`.
    #[error("bad {what} {name:?}: {reason}")]
    BadName {
        /// Which kind of name.
        what: &'static str,
        /// The name as written.
        name: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// An address that does not parse or cannot be dialled.
    #[error("bad {field} {value:?}: {reason}")]
    BadAddress {
        /// `client_addr` or `peer_addr`.
        field: &'static str,
        /// The address as written.
        value: String,
        /// Why it is refused.
        reason: String,
    },
    /// No region at all.
    #[error("the topology has no [[region]]")]
    NoRegions,
    /// More regions or nodes than the limits allow.
    #[error("{count} {what} exceed the limit of {max}")]
    TooMany {
        /// What is counted.
        what: &'static str,
        /// How many there are.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// Two regions share a name.
    #[error("duplicate region {name:?} (first defined on line {first_line})")]
    DuplicateRegion {
        /// The name.
        name: String,
        /// Line of the first definition.
        first_line: usize,
    },
    /// Two nodes share an id.
    #[error("duplicate node id {id:?} (first defined on line {first_line})")]
    DuplicateNodeId {
        /// The id.
        id: String,
        /// Line of the first definition.
        first_line: usize,
    },
    /// Two nodes share a replica id (explicit, or derived ids colliding).
    #[error(
        "node {id:?} has replica id {replica}, already used by node {other:?} \
         (line {first_line}); set a distinct replica_id"
    )]
    DuplicateReplicaId {
        /// The node found second.
        id: String,
        /// The shared replica id.
        replica: ReplicaId,
        /// The node found first.
        other: String,
        /// Line of the first node.
        first_line: usize,
    },
    /// Two endpoints (client or peer, of any nodes) share an address.
    #[error("address {addr} is already used on line {first_line}")]
    DuplicateAddress {
        /// The address.
        addr: SocketAddr,
        /// Line of its first use.
        first_line: usize,
    },
    /// N is 0 or above [`REPLICATION_FACTOR_MAX`].
    #[error("replication_factor {n} is outside 1..={max}")]
    ReplicationFactorOutOfRange {
        /// The configured N.
        n: usize,
        /// [`REPLICATION_FACTOR_MAX`].
        max: usize,
    },
    /// A region has fewer nodes than N.
    #[error(
        "region {region:?} has {nodes} node(s), fewer than replication_factor {n} \
         (line {n_line})"
    )]
    ReplicationFactorTooLarge {
        /// The configured N.
        n: usize,
        /// Line where N is set.
        n_line: usize,
        /// The short region.
        region: String,
        /// Its node count.
        nodes: usize,
    },
    /// A link names a region the topology does not define.
    #[error("link names unknown region {name:?}")]
    UnknownRegion {
        /// The name.
        name: String,
    },
    /// A link joins a region to itself.
    #[error("link joins region {region:?} to itself")]
    LinkToSelf {
        /// The region.
        region: String,
    },
    /// Two links join the same pair of regions.
    #[error("duplicate link between {a:?} and {b:?} (first defined on line {first_line})")]
    DuplicateLink {
        /// One region.
        a: String,
        /// The other.
        b: String,
        /// Line of the first link.
        first_line: usize,
    },
    /// A link figure out of range.
    #[error("bad link: {0}")]
    BadLink(String),
    /// A limit is zero, above its ceiling, or inconsistent with another.
    #[error("bad limit {name} = {value}: {reason}")]
    BadLimit {
        /// The limit's field name.
        name: &'static str,
        /// The value given.
        value: u32,
        /// Why it is refused.
        reason: String,
    },
}

// ---------------------------------------------------------------------------
// The file's shape, with spans so validation can point at lines.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTopology {
    cluster: RawCluster,
    limits: Option<RawLimits>,
    #[serde(default)]
    region: Vec<RawRegion>,
    #[serde(default)]
    link: Vec<RawLink>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCluster {
    name: Spanned<String>,
    #[serde(default)]
    version: u64,
    replication_factor: Spanned<usize>,
    #[serde(default)]
    write_consistency: WriteConsistency,
    #[serde(default)]
    read_consistency: ReadConsistency,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    key_bytes_max: Option<Spanned<u32>>,
    value_bytes_max: Option<Spanned<u32>>,
    frame_bytes_max: Option<Spanned<u32>>,
    streams_per_connection_max: Option<Spanned<u32>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegion {
    name: Spanned<String>,
    #[serde(default)]
    node: Vec<RawNode>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    id: Spanned<String>,
    replica_id: Option<Spanned<u32>>,
    client_addr: Spanned<String>,
    peer_addr: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLink {
    regions: Spanned<[Spanned<String>; 2]>,
    rtt_ms: Spanned<u32>,
    #[serde(default)]
    jitter_ms: Option<Spanned<u32>>,
    #[serde(default)]
    loss: Option<Spanned<f64>>,
}

/// Validates a [`RawTopology`] against the text it came from.
struct Builder<'a> {
    text: &'a str,
    origin: String,
}

impl Builder<'_> {
    fn error(&self, span: Range<usize>, problem: Problem) -> TopologyError {
        TopologyError {
            origin: self.origin.clone(),
            line: Some(self.line(&span)),
            problem,
        }
    }

    fn line(&self, span: &Range<usize>) -> usize {
        line_of(self.text, span.start)
    }

    fn build(&self, raw: RawTopology) -> Result<Topology, TopologyError> {
        let cluster = raw.cluster;
        self.check_name("cluster name", &cluster.name)?;
        let n = *cluster.replication_factor.get_ref();
        let n_span = cluster.replication_factor.span();
        if !(1..=REPLICATION_FACTOR_MAX).contains(&n) {
            return Err(self.error(
                n_span,
                Problem::ReplicationFactorOutOfRange {
                    n,
                    max: REPLICATION_FACTOR_MAX,
                },
            ));
        }
        let limits = self.limits(raw.limits)?;

        if raw.region.is_empty() {
            return Err(TopologyError {
                origin: self.origin.clone(),
                line: None,
                problem: Problem::NoRegions,
            });
        }
        if raw.region.len() > REGIONS_MAX {
            return Err(self.error(
                raw.region[REGIONS_MAX].name.span(),
                Problem::TooMany {
                    what: "regions",
                    count: raw.region.len(),
                    max: REGIONS_MAX,
                },
            ));
        }

        let mut regions = Vec::with_capacity(raw.region.len());
        let mut region_lines: HashMap<String, usize> = HashMap::new();
        let mut by_id = HashMap::new();
        let mut id_lines: HashMap<String, usize> = HashMap::new();
        let mut by_replica = HashMap::new();
        let mut replica_owners: HashMap<ReplicaId, (String, usize)> = HashMap::new();
        let mut addr_lines: HashMap<SocketAddr, usize> = HashMap::new();

        for (region_index, raw_region) in raw.region.into_iter().enumerate() {
            let name = &raw_region.name;
            self.check_name("region name", name)?;
            if let Some(&first_line) = region_lines.get(name.get_ref()) {
                return Err(self.error(
                    name.span(),
                    Problem::DuplicateRegion {
                        name: name.get_ref().clone(),
                        first_line,
                    },
                ));
            }
            region_lines.insert(name.get_ref().clone(), self.line(&name.span()));
            if raw_region.node.len() > NODES_PER_REGION_MAX {
                return Err(self.error(
                    raw_region.node[NODES_PER_REGION_MAX].id.span(),
                    Problem::TooMany {
                        what: "nodes in a region",
                        count: raw_region.node.len(),
                        max: NODES_PER_REGION_MAX,
                    },
                ));
            }
            if raw_region.node.len() < n {
                return Err(self.error(
                    name.span(),
                    Problem::ReplicationFactorTooLarge {
                        n,
                        n_line: self.line(&n_span),
                        region: name.get_ref().clone(),
                        nodes: raw_region.node.len(),
                    },
                ));
            }

            let mut nodes = Vec::with_capacity(raw_region.node.len());
            for (node_index, raw_node) in raw_region.node.into_iter().enumerate() {
                let id = raw_node.id.get_ref();
                self.check_name("node id", &raw_node.id)?;
                // A node id is also the name in its certificate.
                if let Err(crate::tls::TlsError::InvalidName { reason, .. }) =
                    crate::tls::validate_name(crate::tls::Role::Node, id)
                {
                    return Err(self.error(
                        raw_node.id.span(),
                        Problem::BadName {
                            what: "node id",
                            name: id.clone(),
                            reason,
                        },
                    ));
                }
                let id_line = self.line(&raw_node.id.span());
                if let Some(&first_line) = id_lines.get(id) {
                    return Err(self.error(
                        raw_node.id.span(),
                        Problem::DuplicateNodeId {
                            id: id.clone(),
                            first_line,
                        },
                    ));
                }
                id_lines.insert(id.clone(), id_line);

                let (replica, replica_span) = match &raw_node.replica_id {
                    Some(explicit) => (ReplicaId(*explicit.get_ref()), explicit.span()),
                    None => (derived_replica_id(id), raw_node.id.span()),
                };
                if let Some((other, first_line)) = replica_owners.get(&replica) {
                    return Err(self.error(
                        replica_span,
                        Problem::DuplicateReplicaId {
                            id: id.clone(),
                            replica,
                            other: other.clone(),
                            first_line: *first_line,
                        },
                    ));
                }
                replica_owners.insert(replica, (id.clone(), id_line));

                let client_addr = self.address("client_addr", &raw_node.client_addr)?;
                let peer_addr = self.address("peer_addr", &raw_node.peer_addr)?;
                for (addr, span) in [
                    (client_addr, raw_node.client_addr.span()),
                    (peer_addr, raw_node.peer_addr.span()),
                ] {
                    if let Some(&first_line) = addr_lines.get(&addr) {
                        return Err(
                            self.error(span, Problem::DuplicateAddress { addr, first_line })
                        );
                    }
                    addr_lines.insert(addr, self.line(&span));
                }

                by_id.insert(id.clone(), (region_index, node_index));
                by_replica.insert(replica, (region_index, node_index));
                nodes.push(Node {
                    id: raw_node.id.into_inner(),
                    replica,
                    client_addr,
                    peer_addr,
                });
            }
            regions.push(Region {
                name: raw_region.name.into_inner(),
                nodes,
            });
        }

        let links = self.links(raw.link, &region_lines)?;

        Ok(Topology {
            origin: self.origin.clone(),
            source: Arc::from(self.text),
            cluster: cluster.name.into_inner(),
            version: cluster.version,
            replication_factor: n,
            write_consistency: cluster.write_consistency,
            read_consistency: cluster.read_consistency,
            limits,
            regions,
            links,
            by_id,
            by_replica,
        })
    }

    fn check_name(&self, what: &'static str, name: &Spanned<String>) -> Result<(), TopologyError> {
        let text = name.get_ref();
        let reason = if text.is_empty() {
            Some("it is empty")
        } else if text.len() > NAME_BYTES_MAX {
            Some("it is longer than 64 bytes")
        } else if !text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            Some("only letters, digits, '-', '_' and '.' are allowed")
        } else {
            None
        };
        match reason {
            None => Ok(()),
            Some(reason) => Err(self.error(
                name.span(),
                Problem::BadName {
                    what,
                    name: text.clone(),
                    reason,
                },
            )),
        }
    }

    fn address(
        &self,
        field: &'static str,
        value: &Spanned<String>,
    ) -> Result<SocketAddr, TopologyError> {
        let bad = |reason: String| {
            self.error(
                value.span(),
                Problem::BadAddress {
                    field,
                    value: value.get_ref().clone(),
                    reason,
                },
            )
        };
        let text = value.get_ref();
        let addr: SocketAddr = text.parse().map_err(|e| {
            let port = text
                .rsplit_once(':')
                .and_then(|(_, p)| p.parse::<u64>().ok());
            match port {
                Some(port) if port > u64::from(u16::MAX) => {
                    bad(format!("port {port} is out of range (at most 65535)"))
                }
                _ => bad(format!("{e} (expected IP:port, such as 127.0.0.1:7101)")),
            }
        })?;
        // An IPv4-mapped IPv6 address is the IPv4 one.
        let addr = SocketAddr::new(addr.ip().to_canonical(), addr.port());
        if addr.port() == 0 {
            return Err(bad("port 0 cannot be dialled".to_owned()));
        }
        if addr.ip().is_unspecified() || addr.ip().is_multicast() {
            return Err(bad(format!("{} cannot be dialled", addr.ip())));
        }
        Ok(addr)
    }

    fn limits(&self, raw: Option<RawLimits>) -> Result<Limits, TopologyError> {
        let mut limits = Limits::default();
        let Some(raw) = raw else {
            return Ok(limits);
        };
        let fields = [
            (
                "key_bytes_max",
                raw.key_bytes_max.clone(),
                Limits::KEY_BYTES_MAX_CEILING,
                &mut limits.key_bytes_max,
            ),
            (
                "value_bytes_max",
                raw.value_bytes_max.clone(),
                Limits::VALUE_BYTES_MAX_CEILING,
                &mut limits.value_bytes_max,
            ),
            (
                "frame_bytes_max",
                raw.frame_bytes_max.clone(),
                Limits::FRAME_BYTES_MAX_CEILING,
                &mut limits.frame_bytes_max,
            ),
            (
                "streams_per_connection_max",
                raw.streams_per_connection_max,
                Limits::STREAMS_PER_CONNECTION_MAX_CEILING,
                &mut limits.streams_per_connection_max,
            ),
        ];
        for (name, given, ceiling, slot) in fields {
            let Some(given) = given else { continue };
            let value = *given.get_ref();
            if value == 0 || value > ceiling {
                return Err(self.error(
                    given.span(),
                    Problem::BadLimit {
                        name,
                        value,
                        reason: format!("must be in 1..={ceiling}"),
                    },
                ));
            }
            *slot = value;
        }
        let frame_bytes_min = u64::from(limits.key_bytes_max)
            + u64::from(limits.value_bytes_max)
            + u64::from(FRAME_HEADROOM_BYTES);
        if u64::from(limits.frame_bytes_max) < frame_bytes_min {
            let problem = Problem::BadLimit {
                name: "frame_bytes_max",
                value: limits.frame_bytes_max,
                reason: format!(
                    "a frame must hold one maximal key and value plus \
                     {FRAME_HEADROOM_BYTES} bytes of headroom: at least {frame_bytes_min}"
                ),
            };
            return Err(match raw.frame_bytes_max {
                Some(given) => self.error(given.span(), problem),
                // Only the key or value limit was raised: point at it.
                None => {
                    let span = raw
                        .value_bytes_max
                        .or(raw.key_bytes_max)
                        .map(|given| given.span())
                        .unwrap_or(0..0);
                    self.error(span, problem)
                }
            });
        }
        Ok(limits)
    }

    fn links(
        &self,
        raw_links: Vec<RawLink>,
        region_lines: &HashMap<String, usize>,
    ) -> Result<Vec<Link>, TopologyError> {
        let mut links: Vec<Link> = Vec::with_capacity(raw_links.len());
        let mut link_lines: Vec<usize> = Vec::with_capacity(raw_links.len());
        for raw in raw_links {
            let regions_span = raw.regions.span();
            let [a, b] = raw.regions.into_inner();
            for name in [&a, &b] {
                if !region_lines.contains_key(name.get_ref()) {
                    return Err(self.error(
                        name.span(),
                        Problem::UnknownRegion {
                            name: name.get_ref().clone(),
                        },
                    ));
                }
            }
            if a.get_ref() == b.get_ref() {
                return Err(self.error(
                    regions_span,
                    Problem::LinkToSelf {
                        region: a.into_inner(),
                    },
                ));
            }
            if let Some(first) = links.iter().position(|l| l.joins(a.get_ref(), b.get_ref())) {
                return Err(self.error(
                    regions_span,
                    Problem::DuplicateLink {
                        a: a.into_inner(),
                        b: b.into_inner(),
                        first_line: link_lines[first],
                    },
                ));
            }

            let rtt_ms = *raw.rtt_ms.get_ref();
            if rtt_ms > LINK_RTT_MS_MAX {
                return Err(self.error(
                    raw.rtt_ms.span(),
                    Problem::BadLink(format!("rtt_ms = {rtt_ms} is above {LINK_RTT_MS_MAX}")),
                ));
            }
            let jitter_ms = raw.jitter_ms.as_ref().map_or(0, |j| *j.get_ref());
            if jitter_ms > rtt_ms / 2 {
                let span = raw
                    .jitter_ms
                    .as_ref()
                    .map_or(regions_span.clone(), |j| j.span());
                return Err(self.error(
                    span,
                    Problem::BadLink(format!(
                        "jitter_ms = {jitter_ms} is more than half of rtt_ms = {rtt_ms}, \
                         so a one-way delay could go negative"
                    )),
                ));
            }
            let loss = raw.loss.as_ref().map_or(0.0, |l| *l.get_ref());
            if !(0.0..=1.0).contains(&loss) {
                let span = raw.loss.as_ref().map_or(regions_span.clone(), |l| l.span());
                return Err(self.error(
                    span,
                    Problem::BadLink(format!("loss = {loss} is not a fraction in [0, 1]")),
                ));
            }

            link_lines.push(self.line(&regions_span));
            links.push(Link {
                regions: [a.into_inner(), b.into_inner()],
                rtt_ms,
                jitter_ms,
                loss,
            });
        }
        Ok(links)
    }
}

/// The 1-based line holding byte `offset` of `text`.
fn line_of(text: &str, offset: usize) -> usize {
    let offset = offset.min(text.len());
    text.as_bytes()[..offset]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The TOML parser's message, on one line, with the words serde uses for
/// an enum given as something other than its name made plain.
fn syntax_message(message: &str) -> String {
    let message = message.trim().replace('\n', "; ");
    if message == "wanted string or table" {
        return "wanted a quoted name here, such as \"quorum\"".to_owned();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_node(cluster_extra: &str, addr: &str) -> String {
        format!(
            "[cluster]\nname = \"t\"\nreplication_factor = 1\n{cluster_extra}\n[[region]]\nname = \"r\"\n\n[[region.node]]\nid = \"r-1\"\nclient_addr = \"{addr}\"\npeer_addr = \"127.0.0.1:2\"\n"
        )
    }

    #[test]
    fn enum_values_ports_and_mapped_addresses_get_clear_errors() {
        let err = |extra: &str, addr: &str| {
            Topology::parse(&one_node(extra, addr), "t.toml")
                .map(|_| ())
                .unwrap_err()
                .to_string()
        };
        let e = err("write_consistency = 2", "127.0.0.1:1");
        assert!(e.contains("t.toml:4") && e.contains("\"quorum\""), "{e}");
        let e = err("", "127.0.0.1:99999");
        assert!(e.contains("port 99999 is out of range"), "{e}");
        // The same address written as an IPv4-mapped IPv6 one.
        let e = err("", "[::ffff:127.0.0.1]:2");
        assert!(e.contains("127.0.0.1:2"), "{e}");
    }

    #[test]
    fn line_of_counts_newlines_before_the_offset() {
        let text = "a = 1\nb = 2\n\nc = 3";
        assert_eq!(line_of(text, 0), 1);
        assert_eq!(line_of(text, 6), 2);
        assert_eq!(line_of(text, 13), 4);
        assert_eq!(line_of(text, 1_000), 4);
    }

    #[test]
    fn derived_replica_id_is_32_bit_fnv_1a_of_the_node_id() {
        // Reference values of FNV-1a (32-bit).
        assert_eq!(derived_replica_id(""), ReplicaId(0x811c_9dc5));
        assert_eq!(derived_replica_id("a"), ReplicaId(0xe40c_292c));
        assert_eq!(derived_replica_id("foobar"), ReplicaId(0xbf9c_f968));
    }

    #[test]
    fn quorum_is_a_majority_of_the_replicas() {
        assert_eq!(WriteConsistency::Quorum.acks_needed(3), 2);
        assert_eq!(WriteConsistency::Quorum.acks_needed(4), 3);
        assert_eq!(WriteConsistency::One.acks_needed(3), 1);
        assert_eq!(WriteConsistency::All.acks_needed(3), 3);
        assert_eq!(ReadConsistency::Quorum.replies_needed(5), 3);
        assert_eq!(ReadConsistency::One.replies_needed(5), 1);
    }
}
