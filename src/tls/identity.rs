//! An endpoint's own credentials: its certificate chain, its private key,
//! and the Meridian identity the certificate carries.
//!
//! An [`Identity`] comes from [`ClusterCa::issue`](super::ClusterCa::issue)
//! or from files through [`CertStore`](super::CertStore); it is what
//! `server_config` and `client_config` present to peers.

use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::ca::Validity;
use super::peer::PeerIdentity;

/// A certificate chain with its private key, issued to one node or client.
pub struct Identity {
    peer: PeerIdentity,
    cert_chain: Vec<CertificateDer<'static>>,
    cert_pem: String,
    key: PrivateKeyDer<'static>,
    key_pem: String,
    validity: Validity,
}

impl Identity {
    pub(crate) fn new(
        peer: PeerIdentity,
        cert_chain: Vec<CertificateDer<'static>>,
        cert_pem: String,
        key: PrivateKeyDer<'static>,
        key_pem: String,
        validity: Validity,
    ) -> Self {
        assert!(!cert_chain.is_empty(), "an identity has a certificate");
        Identity {
            peer,
            cert_chain,
            cert_pem,
            key,
            key_pem,
            validity,
        }
    }

    /// The node or client this identity belongs to.
    pub fn peer(&self) -> &PeerIdentity {
        &self.peer
    }

    /// The certificate chain, end-entity certificate first.
    pub fn cert_chain(&self) -> &[CertificateDer<'static>] {
        &self.cert_chain
    }

    /// The certificate chain in PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// A copy of the private key in DER.
    pub fn key(&self) -> PrivateKeyDer<'static> {
        self.key.clone_key()
    }

    /// The private key in PEM.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// When the end-entity certificate is valid.
    pub fn validity(&self) -> Validity {
        self.validity
    }
}

impl Clone for Identity {
    fn clone(&self) -> Self {
        Identity {
            peer: self.peer.clone(),
            cert_chain: self.cert_chain.clone(),
            cert_pem: self.cert_pem.clone(),
            key: self.key.clone_key(),
            key_pem: self.key_pem.clone(),
            validity: self.validity,
        }
    }
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("peer", &self.peer)
            .field("validity", &self.validity)
            .field("key", &"[elided]")
            .finish_non_exhaustive()
    }
}
