//! Binding quinn endpoints on UDP sockets with large kernel buffers.
//!
//! The kernel's default UDP receive buffer (about 208 KB) drops packets at
//! bulk speed even on loopback; 4 MiB does not. The buffers are set with
//! socket2 before quinn takes the socket.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use socket2::{Domain, Protocol, Socket, Type};

/// Bytes asked of the kernel for each UDP socket's send and receive buffer.
pub const UDP_BUFFER_BYTES: usize = 4 << 20;

/// A UDP socket bound to `addr` with [`UDP_BUFFER_BYTES`] buffers
/// (or as much as the kernel allows).
pub(crate) fn bind_udp(addr: SocketAddr) -> anyhow::Result<std::net::UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))
        .context("creating a UDP socket")?;
    if addr.is_ipv6() {
        // Best effort: dual-stack where the platform allows it.
        let _ = socket.set_only_v6(false);
    }
    // The kernel caps these at its own maximum; a smaller buffer still works.
    if let Err(e) = socket.set_recv_buffer_size(UDP_BUFFER_BYTES) {
        tracing::warn!(%addr, error = %e, "could not enlarge the UDP receive buffer");
    }
    if let Err(e) = socket.set_send_buffer_size(UDP_BUFFER_BYTES) {
        tracing::warn!(%addr, error = %e, "could not enlarge the UDP send buffer");
    }
    socket
        .set_nonblocking(true)
        .context("making the UDP socket non-blocking")?;
    socket
        .bind(&addr.into())
        .with_context(|| format!("binding UDP {addr}"))?;
    Ok(socket.into())
}

/// What a node's endpoint at `addr` keeps the same in every life of the
/// node: the key of its stateless reset tokens and the key that marks its
/// connection ids as its own. Both come from the node's private key, which
/// no one else holds, and differ per endpoint.
///
/// A peer or client still holding a connection to an earlier life of the
/// node keeps sending on it after the node restarts. The new life
/// recognises the connection ids as its own kind and answers with a
/// stateless reset the holder can check (RFC 9000 §10.3), so the
/// connection ends at once instead of at its idle timeout, and the holder
/// redials or fails over. At once, that is, after the holder's next packet
/// on it: a connection that sent into the void for seconds has backed its
/// retransmissions off to seconds apart. Peers therefore also learn of a
/// restart from the life named in the new process's stream preambles
/// (`protocol::frame::peer_preamble`).
pub(crate) fn stable_secret(private_key_pem: &str, addr: SocketAddr) -> [u8; 32] {
    let secret = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, private_key_pem.as_bytes());
    let label = format!("meridian endpoint {addr}");
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::hmac::sign(&secret, label.as_bytes()).as_ref());
    out
}

/// Random bytes in a connection id: enough that a node never issues one
/// twice over its lives, as a static reset key requires (RFC 9000 §10.3.2).
const CID_RANDOM_BYTES: usize = 12;
/// Bytes of the keyed tag that marks a connection id as the node's own.
const CID_TAG_BYTES: usize = 4;

/// Connection ids of random bytes and a keyed tag, so that every life of a
/// node recognises those of the others (and answers their packets with a
/// stateless reset) while ignoring packets that are not QUIC.
struct TaggedConnectionIds {
    key: ring::hmac::Key,
}

impl TaggedConnectionIds {
    fn tag(&self, random: &[u8]) -> [u8; CID_TAG_BYTES] {
        let mut tag = [0u8; CID_TAG_BYTES];
        tag.copy_from_slice(&ring::hmac::sign(&self.key, random).as_ref()[..CID_TAG_BYTES]);
        tag
    }
}

impl quinn::ConnectionIdGenerator for TaggedConnectionIds {
    fn generate_cid(&mut self) -> quinn::ConnectionId {
        let mut bytes = [0u8; CID_RANDOM_BYTES + CID_TAG_BYTES];
        // A generator seeded from the system's random source, which cannot
        // fail here.
        rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut bytes[..CID_RANDOM_BYTES]);
        let tag = self.tag(&bytes[..CID_RANDOM_BYTES]);
        bytes[CID_RANDOM_BYTES..].copy_from_slice(&tag);
        quinn::ConnectionId::new(&bytes)
    }

    fn validate(&self, cid: &quinn::ConnectionId) -> Result<(), quinn_proto::InvalidCid> {
        if cid.len() != CID_RANDOM_BYTES + CID_TAG_BYTES {
            return Err(quinn_proto::InvalidCid);
        }
        let (random, tag) = cid.split_at(CID_RANDOM_BYTES);
        if self.tag(random)[..] == *tag {
            Ok(())
        } else {
            Err(quinn_proto::InvalidCid)
        }
    }

    fn cid_len(&self) -> usize {
        CID_RANDOM_BYTES + CID_TAG_BYTES
    }

    fn cid_lifetime(&self) -> Option<std::time::Duration> {
        None
    }
}

/// A quinn endpoint on a fresh socket bound to `addr`, serving with
/// `server` (if any) and dialling with `client` (if any); `stable`, when
/// given, is the secret its reset and connection-id keys derive from (see
/// [`stable_secret`]), else both are random.
pub(crate) fn endpoint(
    addr: SocketAddr,
    server: Option<quinn::ServerConfig>,
    client: Option<quinn::ClientConfig>,
    stable: Option<[u8; 32]>,
) -> anyhow::Result<quinn::Endpoint> {
    let socket = bind_udp(addr)?;
    let config = match stable {
        Some(secret) => {
            let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret);
            let reset = ring::hmac::Key::new(
                ring::hmac::HMAC_SHA256,
                ring::hmac::sign(&key, b"stateless reset").as_ref(),
            );
            let cid_key = ring::hmac::Key::new(
                ring::hmac::HMAC_SHA256,
                ring::hmac::sign(&key, b"connection ids").as_ref(),
            );
            let mut config = quinn::EndpointConfig::new(Arc::new(reset));
            config.cid_generator(move || {
                Box::new(TaggedConnectionIds {
                    key: cid_key.clone(),
                }) as Box<dyn quinn::ConnectionIdGenerator>
            });
            // A restarted node may have many old connections to end at
            // once; each reset is smaller than the packet that caused it.
            config.min_reset_interval(std::time::Duration::from_millis(1));
            config
        }
        None => quinn::EndpointConfig::default(),
    };
    let mut endpoint = quinn::Endpoint::new(config, server, socket, Arc::new(quinn::TokioRuntime))
        .with_context(|| format!("starting a QUIC endpoint on {addr}"))?;
    if let Some(client) = client {
        endpoint.set_default_client_config(client);
    }
    Ok(endpoint)
}

/// Frees the UDP port of a closed endpoint at once.
///
/// A closed endpoint keeps its socket until every connection has drained,
/// up to three probe timeouts (seconds for a dial still in its handshake),
/// which would keep a restarted node from binding its address. The
/// endpoint is moved to a throwaway socket on an ephemeral port instead.
/// quinn keeps the previous socket of one move for stragglers, so it moves
/// twice.
pub(crate) fn release_port(endpoint: &quinn::Endpoint) {
    let Ok(local) = endpoint.local_addr() else {
        return;
    };
    for _ in 0..2 {
        let moved = std::net::UdpSocket::bind(SocketAddr::new(local.ip(), 0))
            .and_then(|socket| endpoint.rebind(socket));
        if let Err(e) = moved {
            tracing::debug!(addr = %local, error = %e, "could not release the port at once");
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quinn::ConnectionIdGenerator;

    fn ids(secret: &[u8]) -> TaggedConnectionIds {
        TaggedConnectionIds {
            key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret),
        }
    }

    #[test]
    fn connection_ids_carry_a_tag_only_the_same_key_recognises() {
        let mut mine = ids(b"node a");
        let a = mine.generate_cid();
        let b = mine.generate_cid();
        assert_eq!(a.len(), CID_RANDOM_BYTES + CID_TAG_BYTES);
        assert_ne!(a, b);
        // Another life with the same key knows them; another node does not.
        assert!(ids(b"node a").validate(&a).is_ok());
        assert!(ids(b"node b").validate(&a).is_err());
        let mut bent = a.to_vec();
        bent[0] ^= 1;
        assert!(mine.validate(&quinn::ConnectionId::new(&bent)).is_err());
        assert!(mine.validate(&quinn::ConnectionId::new(&a[..8])).is_err());
    }

    #[test]
    fn the_stable_secret_depends_on_the_key_and_the_address() {
        let (a, b): (SocketAddr, SocketAddr) = (
            "127.0.0.1:1".parse().unwrap(),
            "127.0.0.1:2".parse().unwrap(),
        );
        assert_eq!(stable_secret("key", a), stable_secret("key", a));
        assert_ne!(stable_secret("key", a), stable_secret("key", b));
        assert_ne!(stable_secret("key", a), stable_secret("other", a));
    }
}
