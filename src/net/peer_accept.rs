//! The node-to-node endpoint's inbound side: accepts connections from the
//! other nodes (mutual TLS, node certificates only), maps each to the
//! sender's replica id, and turns the `PeerMsg` frames of its
//! unidirectional streams into node events.
//!
//! A certificate naming no node of the topology is refused with
//! [`codes::UNKNOWN_PEER`]. A stream that breaks framing is stopped; the
//! sender's link notices and opens a new one.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use crdt_types::ReplicaId;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use super::driver::Event;
use super::peer_link::{pump, Queue};
use super::{
    Shared, HANDSHAKES_MAX, HANDSHAKE_TIMEOUT_MS, PREAMBLE_TIMEOUT_MS, READ_CHUNK_BYTES,
    WRITE_BATCH_BYTES,
};
use crate::protocol::frame::{
    check_preamble, peer_preamble, FrameError, PEER_LIFE_LEN, PREAMBLE_LEN,
};
use crate::protocol::{codes, FrameReader, PeerMsg};
use crate::tls::peer_identity;

/// Inbound connections from peers open at once.
pub const PEER_CONNECTIONS_MAX: usize = 256;

/// What an inbound peer connection needs.
#[derive(Clone)]
pub(crate) struct PeerInbound {
    pub(crate) events: mpsc::Sender<Event>,
    pub(crate) frame_bytes_max: usize,
    pub(crate) shared: Arc<Shared>,
}

/// Accepts peer connections until the endpoint closes.
pub(crate) async fn accept(endpoint: quinn::Endpoint, inbound: PeerInbound) {
    // Handshakes in progress and established connections are limited
    // apart: what never finishes a handshake cannot take a node's place.
    let handshakes = Arc::new(Semaphore::new(HANDSHAKES_MAX));
    let slots = Arc::new(Semaphore::new(PEER_CONNECTIONS_MAX));
    while let Some(incoming) = endpoint.accept().await {
        let Ok(handshake) = handshakes.clone().try_acquire_owned() else {
            tracing::warn!(remote = %incoming.remote_address(), "refused a peer connection: too many handshakes in progress");
            incoming.refuse();
            continue;
        };
        let inbound = inbound.clone();
        let slots = slots.clone();
        tokio::spawn(async move {
            inbound.serve_connection(incoming, handshake, slots).await;
        });
    }
}

impl PeerInbound {
    async fn serve_connection(
        self,
        incoming: quinn::Incoming,
        handshake: OwnedSemaphorePermit,
        slots: Arc<Semaphore>,
    ) {
        let remote = incoming.remote_address();
        let connecting = match incoming.accept() {
            Ok(connecting) => connecting,
            Err(e) => {
                tracing::debug!(%remote, error = %e, "peer connection failed");
                return;
            }
        };
        let connection =
            match tokio::time::timeout(Duration::from_millis(HANDSHAKE_TIMEOUT_MS), connecting)
                .await
            {
                Ok(Ok(connection)) => connection,
                Ok(Err(e)) => {
                    super::log_handshake_failure("peer", remote, &e);
                    return;
                }
                Err(_) => {
                    tracing::info!(%remote, "peer handshake timed out");
                    return;
                }
            };
        drop(handshake);
        let Ok(_slot) = slots.try_acquire_owned() else {
            tracing::warn!(%remote, "refused a peer connection: too many open");
            connection.close(codes::OVERLOADED.into(), b"too many peer connections");
            return;
        };
        let Some(from) = self.replica_of(&connection) else {
            tracing::warn!(%remote, "refused a peer whose certificate names no node of the topology");
            connection.close(codes::UNKNOWN_PEER.into(), b"not a node of this topology");
            return;
        };
        tracing::debug!(%remote, replica = %from, "peer connected");
        // Answers to what the peer sends go back on this connection, so
        // they share its packets (and their QUIC acknowledgements) instead
        // of travelling on the other direction's connection by themselves.
        tokio::spawn(return_path(
            connection.clone(),
            from,
            self.events.clone(),
            self.shared.clone(),
        ));
        accept_streams(
            connection,
            from,
            self.events,
            self.frame_bytes_max,
            self.shared,
            None,
        )
        .await;
    }

    fn replica_of(&self, connection: &quinn::Connection) -> Option<ReplicaId> {
        let identity = peer_identity(connection).ok()?;
        let node = self.shared.topology.node(identity.node_id()?)?;
        Some(node.replica)
    }
}

/// Reads every unidirectional stream `from` opens on `connection` (in either
/// direction of dialling) until the connection ends. On a connection this
/// node's link dialled, `heard` takes the life the peer's streams name;
/// on one the peer dialled, the life goes to the node task instead.
pub(crate) async fn accept_streams(
    connection: quinn::Connection,
    from: ReplicaId,
    events: mpsc::Sender<Event>,
    frame_bytes_max: usize,
    shared: Arc<Shared>,
    heard: Option<Arc<AtomicU64>>,
) {
    loop {
        match connection.accept_uni().await {
            Ok(recv) => {
                tokio::spawn(read_stream(
                    recv,
                    from,
                    events.clone(),
                    frame_bytes_max,
                    shared.clone(),
                    heard.clone(),
                ));
            }
            Err(e) => {
                tracing::debug!(replica = %from, error = %e, "peer connection ended");
                return;
            }
        }
    }
}

/// Opens the stream that carries answers back to `from` on the connection
/// it dialled, and hands its queue to the node task.
async fn return_path(
    connection: quinn::Connection,
    from: ReplicaId,
    events: mpsc::Sender<Event>,
    shared: Arc<Shared>,
) {
    let mut send = match connection.open_uni().await {
        Ok(send) => send,
        Err(e) => {
            tracing::debug!(replica = %from, error = %e, "no return stream to a peer");
            return;
        }
    };
    if let Err(e) = send.write_all(&peer_preamble(shared.life)).await {
        tracing::debug!(replica = %from, error = %e, "no return stream to a peer");
        return;
    }
    let (queue, frames) = Queue::new();
    let budget = queue.budget.clone();
    if events
        .send(Event::ReturnPath { from, queue })
        .await
        .is_err()
    {
        return;
    }
    let mut buf = Vec::with_capacity(WRITE_BATCH_BYTES);
    let mut frames = frames;
    let ended = pump(&mut frames, &mut send, &budget, &shared, &mut buf).await;
    tracing::debug!(replica = %from, ?ended, "return stream to a peer ended");
}

async fn read_stream(
    mut recv: quinn::RecvStream,
    from: ReplicaId,
    events: mpsc::Sender<Event>,
    frame_bytes_max: usize,
    shared: Arc<Shared>,
    heard: Option<Arc<AtomicU64>>,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(PREAMBLE_TIMEOUT_MS);
    let mut preamble = [0u8; PREAMBLE_LEN];
    if !read_preamble_part(&mut recv, &mut preamble, deadline, from).await {
        return;
    }
    // The version first: a node of another version may not send the rest.
    if let Err(e) = check_preamble(&preamble) {
        tracing::warn!(replica = %from, error = %e, "refused a peer stream");
        let _ = recv.stop(preamble_code(&e).into());
        return;
    }
    let mut life = [0u8; PEER_LIFE_LEN];
    if !read_preamble_part(&mut recv, &mut life, deadline, from).await {
        return;
    }
    let life = u64::from_le_bytes(life);
    match &heard {
        // The life at the other end of this node's own link.
        Some(heard) => heard.store(life, std::sync::atomic::Ordering::Release),
        None => {
            if events.send(Event::PeerLife { from, life }).await.is_err() {
                return; // the node task has stopped
            }
        }
    }
    let mut reader = FrameReader::new(frame_bytes_max);
    loop {
        let chunk = match recv.read_chunk(READ_CHUNK_BYTES, true).await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => return,
            Err(e) => {
                tracing::debug!(replica = %from, error = %e, "peer stream ended");
                return;
            }
        };
        reader.extend(&chunk.bytes);
        loop {
            match reader.next_frame::<PeerMsg>() {
                Ok(Some(msg)) => {
                    if events.send(Event::Peer { from, msg }).await.is_err() {
                        return; // the node task has stopped
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    shared.count_bad_frame();
                    tracing::warn!(replica = %from, error = %e, "bad frame from a peer; stopping its stream");
                    let code = match e {
                        FrameError::TooLarge { .. } => codes::FRAME_TOO_LARGE,
                        _ => codes::MALFORMED_FRAME,
                    };
                    let _ = recv.stop(code.into());
                    return;
                }
            }
        }
    }
}

/// Reads `buf` whole from a peer stream's preamble by `deadline`; `false`
/// (the stream stopped, or it ended) if it did not come.
async fn read_preamble_part(
    recv: &mut quinn::RecvStream,
    buf: &mut [u8],
    deadline: tokio::time::Instant,
    from: ReplicaId,
) -> bool {
    match tokio::time::timeout_at(deadline, recv.read_exact(buf)).await {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            tracing::debug!(replica = %from, error = %e, "peer stream ended before its preamble");
            false
        }
        Err(_) => {
            let _ = recv.stop(codes::BAD_PREAMBLE.into());
            false
        }
    }
}

/// The close code for a failed preamble check.
pub(crate) fn preamble_code(error: &FrameError) -> u32 {
    match error {
        FrameError::VersionMismatch { .. } => codes::VERSION_MISMATCH,
        _ => codes::BAD_PREAMBLE,
    }
}
