//! quinn endpoint configurations for Meridian: mutual TLS 1.3 against the
//! cluster CA, the `meridian/1` ALPN id, and transport limits sized for
//! request/response traffic.
//!
//! Every endpoint authenticates both ways: a server always demands a client
//! certificate issued by the cluster CA, and a client always presents one.

use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{AckFrequencyConfig, IdleTimeout, TransportConfig, VarInt};

use super::ca::CaCertificate;
use super::error::TlsError;
use super::identity::Identity;
use super::peer::Role;
use super::verify::{provider, Admit, AnyNodeVerifier, RoleVerifier};

/// The ALPN protocol id of Meridian's wire protocol, version 1. A peer that
/// does not offer it is refused in the handshake.
pub const ALPN: &[u8] = b"meridian/1";

/// Per-connection limits and timers.
///
/// The defaults suit request/response traffic on one connection per peer:
/// many concurrent streams (quinn's default of 100 makes requests queue in
/// `open_bi` beyond 100 in flight), flow-control windows that are bounded
/// per stream and per connection, and keep-alives well inside the idle
/// timeout so that a quiet but healthy connection stays open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransportLimits {
    /// Bidirectional streams the peer may have open at once.
    pub streams_bidi_max: u32,
    /// Unidirectional streams the peer may have open at once.
    pub streams_uni_max: u32,
    /// A connection with no traffic for this long is closed.
    pub idle_timeout_ms: u32,
    /// A keep-alive is sent after this long without traffic.
    pub keep_alive_interval_ms: u32,
    /// Bytes the peer may send on one stream beyond what was read.
    pub stream_receive_window_bytes: u32,
    /// Bytes the peer may send on all streams of a connection beyond what
    /// was read.
    pub receive_window_bytes: u32,
    /// Bytes this end may have in flight, unacknowledged, on a connection.
    pub send_window_bytes: u32,
    /// Packets carrying data the peer may take in before it must
    /// acknowledge them (QUIC's acknowledgement frequency extension);
    /// 0 keeps QUIC's default of an acknowledgement every other packet.
    /// Answers carry acknowledgements anyway, so with batched traffic most
    /// stand-alone acknowledgement packets are pure overhead: 8 cut the
    /// datagrams of a replicated write by a sixth and its CPU by about 5 %.
    pub ack_eliciting_threshold: u32,
    /// How long the peer may hold an acknowledgement back when fewer than
    /// `ack_eliciting_threshold` packets came in (QUIC caps it at the
    /// larger of the path's round trip and 25 ms).
    pub max_ack_delay_ms: u32,
}

impl Default for TransportLimits {
    fn default() -> Self {
        TransportLimits {
            streams_bidi_max: 1024,
            streams_uni_max: 64,
            idle_timeout_ms: 20_000,
            keep_alive_interval_ms: 5_000,
            stream_receive_window_bytes: 1 << 20,
            receive_window_bytes: 16 << 20,
            send_window_bytes: 16 << 20,
            ack_eliciting_threshold: 8,
            max_ack_delay_ms: 2,
        }
    }
}

impl TransportLimits {
    /// Checks that the limits can work together.
    pub fn validate(&self) -> Result<(), TlsError> {
        if self.streams_bidi_max == 0 {
            return Err(TlsError::InvalidLimits(
                "streams_bidi_max must be at least 1",
            ));
        }
        if self.idle_timeout_ms == 0 {
            return Err(TlsError::InvalidLimits(
                "idle_timeout_ms must be at least 1",
            ));
        }
        if self.keep_alive_interval_ms == 0 || self.keep_alive_interval_ms >= self.idle_timeout_ms {
            return Err(TlsError::InvalidLimits(
                "keep_alive_interval_ms must be between 1 and idle_timeout_ms",
            ));
        }
        if self.stream_receive_window_bytes == 0
            || self.stream_receive_window_bytes > self.receive_window_bytes
        {
            return Err(TlsError::InvalidLimits(
                "stream_receive_window_bytes must be between 1 and receive_window_bytes",
            ));
        }
        if self.ack_eliciting_threshold > 0 && self.max_ack_delay_ms == 0 {
            return Err(TlsError::InvalidLimits(
                "max_ack_delay_ms must be at least 1 when ack_eliciting_threshold is set",
            ));
        }
        if self.send_window_bytes == 0 {
            return Err(TlsError::InvalidLimits(
                "send_window_bytes must be at least 1",
            ));
        }
        Ok(())
    }

    /// The quinn transport configuration for these limits.
    pub fn transport_config(&self) -> Result<TransportConfig, TlsError> {
        self.validate()?;
        let mut transport = TransportConfig::default();
        transport
            .max_concurrent_bidi_streams(VarInt::from_u32(self.streams_bidi_max))
            .max_concurrent_uni_streams(VarInt::from_u32(self.streams_uni_max))
            .max_idle_timeout(Some(IdleTimeout::from(VarInt::from_u32(
                self.idle_timeout_ms,
            ))))
            .keep_alive_interval(Some(Duration::from_millis(u64::from(
                self.keep_alive_interval_ms,
            ))))
            .stream_receive_window(VarInt::from_u32(self.stream_receive_window_bytes))
            .receive_window(VarInt::from_u32(self.receive_window_bytes))
            .send_window(u64::from(self.send_window_bytes));
        if self.ack_eliciting_threshold > 0 {
            let mut acks = AckFrequencyConfig::default();
            acks.ack_eliciting_threshold(VarInt::from_u32(self.ack_eliciting_threshold))
                .max_ack_delay(Some(Duration::from_millis(u64::from(
                    self.max_ack_delay_ms,
                ))));
            transport.ack_frequency_config(Some(acks));
        }
        Ok(transport)
    }
}

/// The configuration of a server endpoint that presents `identity` (a node
/// identity) and admits only peers whose certificate the cluster CA `ca`
/// issued, of the roles in `admit`: [`Admit::Nodes`] for the node-to-node
/// endpoint, [`Admit::NodesAndClients`] for the client-facing one.
///
/// A peer without a certificate, with one from another CA, an expired one,
/// or one of a role not admitted is refused during the handshake.
///
/// ```
/// use meridian::tls::{server_config, Admit, ClusterCa, PeerIdentity, Role, TransportLimits, Validity};
///
/// let ca = ClusterCa::generate(Validity::days_from_now(30)).unwrap();
/// let node = ca.issue(&PeerIdentity::node("eu-1").unwrap(), Validity::default_for(Role::Node)).unwrap();
/// let config = server_config(&node, ca.certificate(), Admit::Nodes, &TransportLimits::default()).unwrap();
/// # drop(config);
/// ```
pub fn server_config(
    identity: &Identity,
    ca: &CaCertificate,
    admit: Admit,
    limits: &TransportLimits,
) -> Result<quinn::ServerConfig, TlsError> {
    if identity.peer().role() != Role::Node {
        return Err(TlsError::ServerIdentityNotNode {
            found: identity.peer().clone(),
        });
    }
    let transport = limits.transport_config()?;
    let verifier = Arc::new(RoleVerifier::new(ca, admit)?);
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(identity.cert_chain().to_vec(), identity.key())?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = QuicServerConfig::try_from(tls)?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    config.transport_config(Arc::new(transport));
    Ok(config)
}

/// The configuration of a client endpoint (a node dialling a peer, or an
/// SDK client) that presents `identity` and trusts only servers whose
/// certificate the cluster CA `ca` issued.
///
/// Connect with the node's DNS name as server name,
/// `PeerIdentity::node(id)?.dns_name()`, to check that the server is that
/// node; `localhost` accepts any node of the cluster. Only node
/// certificates can authenticate a server.
///
/// ```
/// use meridian::tls::{client_config, ClusterCa, PeerIdentity, Role, TransportLimits, Validity};
///
/// let ca = ClusterCa::generate(Validity::days_from_now(30)).unwrap();
/// let alice = ca.issue(&PeerIdentity::client("alice").unwrap(), Validity::default_for(Role::Client)).unwrap();
/// let config = client_config(&alice, ca.certificate(), &TransportLimits::default()).unwrap();
/// # drop(config);
/// ```
pub fn client_config(
    identity: &Identity,
    ca: &CaCertificate,
    limits: &TransportLimits,
) -> Result<quinn::ClientConfig, TlsError> {
    let transport = limits.transport_config()?;
    let tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(ca.root_store()?)
        .with_client_auth_cert(identity.cert_chain().to_vec(), identity.key())?;
    quic_client_config(tls, transport)
}

/// `tls` with Meridian's ALPN, as a quinn client configuration with
/// `transport`.
fn quic_client_config(
    mut tls: rustls::ClientConfig,
    transport: TransportConfig,
) -> Result<quinn::ClientConfig, TlsError> {
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = QuicClientConfig::try_from(tls)?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(Arc::new(transport));
    Ok(config)
}

/// The configuration of a client that dials a node it knows only by
/// address (a seed): it presents `identity` and accepts any node
/// certificate the cluster CA `ca` issued, whatever server name it dials
/// with. Use [`client_config`] to check that a server is a given node.
///
/// ```
/// use meridian::tls::{seed_client_config, ClusterCa, PeerIdentity, Role, TransportLimits, Validity};
///
/// let ca = ClusterCa::generate(Validity::days_from_now(30)).unwrap();
/// let alice = ca.issue(&PeerIdentity::client("alice").unwrap(), Validity::default_for(Role::Client)).unwrap();
/// let config = seed_client_config(&alice, ca.certificate(), &TransportLimits::default()).unwrap();
/// # drop(config);
/// ```
pub fn seed_client_config(
    identity: &Identity,
    ca: &CaCertificate,
    limits: &TransportLimits,
) -> Result<quinn::ClientConfig, TlsError> {
    let transport = limits.transport_config()?;
    let tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyNodeVerifier::new(ca)?))
        .with_client_auth_cert(identity.cert_chain().to_vec(), identity.key())?;
    quic_client_config(tls, transport)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_limits_are_valid_and_raise_the_stream_limit_above_quinns_100() {
        let limits = TransportLimits::default();
        limits.validate().unwrap();
        assert!(limits.streams_bidi_max > 100);
        assert!(limits.keep_alive_interval_ms * 2 <= limits.idle_timeout_ms);
    }

    #[test]
    fn keep_alive_not_shorter_than_idle_timeout_is_refused() {
        let limits = TransportLimits {
            keep_alive_interval_ms: 20_000,
            idle_timeout_ms: 20_000,
            ..TransportLimits::default()
        };
        assert!(matches!(
            limits.transport_config(),
            Err(TlsError::InvalidLimits(_))
        ));
    }

    #[test]
    fn delayed_acknowledgements_need_a_delay_and_can_be_turned_off() {
        let no_delay = TransportLimits {
            max_ack_delay_ms: 0,
            ..TransportLimits::default()
        };
        assert!(matches!(
            no_delay.transport_config(),
            Err(TlsError::InvalidLimits(_))
        ));
        let quic_default = TransportLimits {
            ack_eliciting_threshold: 0,
            max_ack_delay_ms: 0,
            ..TransportLimits::default()
        };
        quic_default.transport_config().unwrap();
    }

    #[test]
    fn zero_stream_limit_is_refused() {
        let limits = TransportLimits {
            streams_bidi_max: 0,
            ..TransportLimits::default()
        };
        assert!(matches!(limits.validate(), Err(TlsError::InvalidLimits(_))));
    }
}
