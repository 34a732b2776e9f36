//! Meridian's TLS: the cluster CA, node and client certificates, and the
//! quinn configurations that make every connection mutually authenticated.
//!
//! Every Meridian connection is QUIC, so TLS 1.3, and both ends present a
//! certificate issued by the cluster's own CA. A certificate carries its
//! holder's role and name as a DNS name (`eu-1.node.meridian`,
//! `alice.client.meridian`): the node-to-node endpoint admits nodes only, so
//! a client cannot pose as a node, and after the handshake
//! [`peer_identity`] tells who is on the other end.
//!
//! - `ca.rs`: the CA in memory; issues certificates.
//! - `identity.rs`: an endpoint's own certificate and key.
//! - `peer.rs`: roles and names, read from a connection's peer certificate.
//! - `store.rs`: all of it as PEM files in a directory.
//! - `verify.rs`: the checks run on peer certificates.
//! - `config.rs`: quinn server and client configurations.
//!
//! Only the ring crypto provider is used; configurations never rely on a
//! process-wide default provider. Nothing here panics on a bad file or a bad
//! peer certificate: every failure is a [`TlsError`].
//!
//! ```
//! use meridian::tls::{client_config, server_config, Admit, CertStore, TransportLimits};
//!
//! let dir = std::env::temp_dir().join(format!("meridian-doc-tls-{}", std::process::id()));
//! # let _ = std::fs::remove_dir_all(&dir);
//! let store = CertStore::new(&dir);
//! let certs = store.ensure_cluster(&["eu-1", "eu-2"], &["cli"]).unwrap();
//! let limits = TransportLimits::default();
//! let peers = server_config(&certs.nodes[0], &certs.ca, Admit::Nodes, &limits).unwrap();
//! let dialer = client_config(&certs.nodes[1], &certs.ca, &limits).unwrap();
//! let sdk = client_config(&certs.clients[0], &certs.ca, &limits).unwrap();
//! # drop((peers, dialer, sdk));
//! # std::fs::remove_dir_all(&dir).unwrap();
//! ```

mod ca;
mod config;
mod error;
mod identity;
mod peer;
mod store;
mod verify;

pub use ca::{
    CaCertificate, ClusterCa, Validity, BACKDATE_MINUTES, CA_VALIDITY_DAYS, CLIENT_VALIDITY_DAYS,
    NODE_VALIDITY_DAYS,
};
pub use config::{client_config, seed_client_config, server_config, TransportLimits, ALPN};
pub use error::TlsError;
pub use identity::Identity;
pub use peer::{
    peer_identity, tls_alert, validate_name, PeerIdentity, Role, CLIENT_DOMAIN, NAME_LEN_MAX,
    NODE_DOMAIN,
};
pub use store::{CertStore, ClusterCertificates, RENEW_BEFORE_HOURS};
pub use verify::Admit;
