//! One client connection to one node: a few long-lived bidirectional
//! streams, each multiplexing many requests by id.
//!
//! Per stream, a writer task drains every frame that is ready into one
//! buffer and writes it at once, and a reader task splits the response
//! stream into frames and completes the waiting callers. When a stream or
//! the connection fails, every caller waiting on it gets the error at once
//! and the connection is marked dead, so the next request dials again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, Semaphore};

use super::ClientError;
use crate::protocol::frame::{check_preamble, preamble, PREAMBLE_LEN};
use crate::protocol::{codes, FrameReader, Response};
use crate::tls::tls_alert;

/// Streams opened per node connection; requests are spread over them.
pub const STREAMS_PER_CONNECTION: usize = 2;
/// Requests in flight per stream (as many as a node serves per stream).
pub const STREAM_INFLIGHT_MAX: usize = 1024;
/// Bytes gathered into one write.
const WRITE_BATCH_BYTES: usize = 256 << 10;
/// Largest chunk read at once.
const READ_CHUNK_BYTES: usize = 64 << 10;

/// The result of handing a request to a connection.
#[derive(Debug)]
pub(crate) enum CallError {
    /// The request never left this process: safe to send elsewhere.
    NotSent(ClientError),
    /// The request may have reached the node.
    Sent(ClientError),
}

impl CallError {
    /// Why the call failed, wherever it did.
    pub(crate) fn into_error(self) -> ClientError {
        match self {
            CallError::NotSent(e) | CallError::Sent(e) => e,
        }
    }
}

type Waiter = oneshot::Sender<Result<Response, ClientError>>;

/// Callers waiting on one stream, by request id.
#[derive(Default)]
struct Pending {
    state: Mutex<PendingState>,
}

#[derive(Default)]
struct PendingState {
    waiting: HashMap<u64, Waiter>,
    /// Set once the stream has failed; later calls fail at once.
    failed: Option<ClientError>,
}

impl Pending {
    fn lock(&self) -> MutexGuard<'_, PendingState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn fail(&self, error: ClientError) {
        let waiting = {
            let mut state = self.lock();
            state.failed.get_or_insert(error.clone());
            std::mem::take(&mut state.waiting)
        };
        for (_, waiter) in waiting {
            let _ = waiter.send(Err(error.clone()));
        }
    }

    fn complete(&self, response: Response) {
        // A response nobody waits for belongs to a request that timed out.
        if let Some(waiter) = self.lock().waiting.remove(&response.id) {
            let _ = waiter.send(Ok(response));
        }
    }
}

/// Forgets a waiting caller when its call ends early (timeout, cancellation).
struct Registration<'a> {
    pending: &'a Pending,
    id: u64,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.pending.lock().waiting.remove(&self.id);
    }
}

struct RequestStream {
    frames: mpsc::Sender<Vec<u8>>,
    pending: Arc<Pending>,
    inflight: Arc<Semaphore>,
}

/// A live connection to one node.
pub(crate) struct NodeConnection {
    connection: quinn::Connection,
    streams: Vec<RequestStream>,
    next_stream: AtomicUsize,
    addr: std::net::SocketAddr,
}

impl NodeConnection {
    /// Dials `addr` (checking that its certificate names `server_name`)
    /// and opens the request streams.
    pub(crate) async fn open(
        endpoint: &quinn::Endpoint,
        addr: std::net::SocketAddr,
        server_name: &str,
        connect_timeout: Duration,
        frame_bytes_max: usize,
    ) -> Result<NodeConnection, ClientError> {
        let connecting = endpoint
            .connect(addr, server_name)
            .map_err(|e| ClientError::Connect(format!("{addr}: {e}")))?;
        let connection = tokio::time::timeout(connect_timeout, connecting)
            .await
            .map_err(|_| {
                ClientError::Connect(format!(
                    "{addr}: no handshake within {} ms",
                    connect_timeout.as_millis()
                ))
            })?
            .map_err(|e| connection_error(addr, &e))?;
        let mut streams = Vec::with_capacity(STREAMS_PER_CONNECTION);
        for _ in 0..STREAMS_PER_CONNECTION {
            let (send, recv) = connection
                .open_bi()
                .await
                .map_err(|e| connection_error(addr, &e))?;
            let (frames, frames_rx) = mpsc::channel(STREAM_INFLIGHT_MAX);
            let pending = Arc::new(Pending::default());
            tokio::spawn(write_frames(send, frames_rx, pending.clone(), addr));
            tokio::spawn(read_responses(recv, pending.clone(), frame_bytes_max, addr));
            streams.push(RequestStream {
                frames,
                pending,
                inflight: Arc::new(Semaphore::new(STREAM_INFLIGHT_MAX)),
            });
        }
        Ok(NodeConnection {
            connection,
            streams,
            next_stream: AtomicUsize::new(0),
            addr,
        })
    }

    /// Watches the connection in the background while it lives, looking
    /// every quarter of `silence`: once callers have been waiting at every
    /// look for `silence` (or four round trips, if longer) without a single
    /// packet from the node, and this client sent it something meanwhile,
    /// the node is taken for gone: the connection is closed and its callers
    /// fail with [`ClientError::Connect`] at once, so they fail over
    /// instead of each waiting out its request timeout.
    ///
    /// A live node's QUIC stack acknowledges what it is sent even while the
    /// node works on a request, and the connection sends a keep-alive ping
    /// after half of `silence` without traffic (see [`keep_alive_for`]),
    /// which it acknowledges too. The count starts at the first look that
    /// finds callers waiting (those there from then on have waited the
    /// whole time), and a look that came late (this process starved of
    /// CPU) starts it again. Zero `silence` watches nothing.
    pub(crate) fn watch(self: &Arc<Self>, silence: Duration) {
        if silence.is_zero() {
            return;
        }
        let tick = silence / 4;
        let watched = Arc::downgrade(self);
        let closed = self.connection.clone();
        tokio::spawn(async move {
            let stats = closed.stats();
            let (mut received, mut sent) = (stats.udp_rx.datagrams, stats.udp_tx.datagrams);
            let mut heard_at = tokio::time::Instant::now();
            let mut ticked_at = heard_at;
            let mut was_waiting = false;
            loop {
                tokio::select! {
                    _ = closed.closed() => return,
                    _ = tokio::time::sleep(tick) => {}
                }
                let Some(node) = watched.upgrade() else {
                    return;
                };
                let now = tokio::time::Instant::now();
                let stats = node.connection.stats();
                let late = now.duration_since(ticked_at) > tick * 2;
                ticked_at = now;
                let heard = stats.udp_rx.datagrams != received;
                let unanswered = stats.udp_tx.datagrams != sent;
                // Counted from the first look that finds callers waiting.
                let waiting = node.has_waiting();
                let waited_before = std::mem::replace(&mut was_waiting, waiting);
                if heard || late || !(waiting && waited_before) {
                    received = stats.udp_rx.datagrams;
                    sent = stats.udp_tx.datagrams;
                    heard_at = now;
                    continue;
                }
                let quiet = now.duration_since(heard_at);
                let bound = silence.max(node.connection.rtt() * 4);
                if quiet >= bound && unanswered {
                    node.give_up(quiet);
                    return;
                }
            }
        });
    }

    /// Whether any caller waits for an answer.
    fn has_waiting(&self) -> bool {
        self.streams
            .iter()
            .any(|s| !s.pending.lock().waiting.is_empty())
    }

    /// Closes the connection to a node quiet for `quiet` while requests
    /// waited, failing its callers.
    fn give_up(&self, quiet: Duration) {
        let error = ClientError::Connect(format!(
            "{}: nothing heard for {} ms while requests waited (kept alive meanwhile)",
            self.addr,
            quiet.as_millis()
        ));
        tracing::warn!(%error, "the node went quiet; closing its connection");
        for stream in &self.streams {
            stream.pending.fail(error.clone());
        }
        self.connection.close(codes::NO_ERROR.into(), b"node quiet");
    }

    /// Whether requests can still be sent on this connection.
    pub(crate) fn is_alive(&self) -> bool {
        self.connection.close_reason().is_none()
            && self
                .streams
                .iter()
                .all(|s| s.pending.lock().failed.is_none())
    }

    /// Whether the node closed this connection because it is shutting down.
    pub(crate) fn node_shut_down(&self) -> bool {
        matches!(
            self.connection.close_reason(),
            Some(quinn::ConnectionError::ApplicationClosed(close))
                if close.error_code == codes::SHUTDOWN.into()
        )
    }

    /// Sends one framed request with id `id` and waits for its response
    /// (the caller bounds the wait).
    pub(crate) async fn call(&self, id: u64, frame: Vec<u8>) -> Result<Response, CallError> {
        let index = self.next_stream.fetch_add(1, Ordering::Relaxed) % self.streams.len();
        let stream = &self.streams[index];
        let _permit = stream.inflight.acquire().await.map_err(|_| {
            CallError::NotSent(ClientError::Connect("the connection is closing".into()))
        })?;
        let (waiter, answer) = oneshot::channel();
        {
            let mut state = stream.pending.lock();
            if let Some(error) = &state.failed {
                return Err(CallError::NotSent(error.clone()));
            }
            state.waiting.insert(id, waiter);
        }
        let _registration = Registration {
            pending: &stream.pending,
            id,
        };
        if stream.frames.send(frame).await.is_err() {
            let error = stream.pending.lock().failed.clone();
            return Err(CallError::NotSent(error.unwrap_or_else(|| {
                ClientError::Connect("the stream to the node closed".into())
            })));
        }
        match answer.await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(error)) => Err(CallError::Sent(error)),
            Err(_) => Err(CallError::Sent(ClientError::Connect(
                "the stream to the node closed".into(),
            ))),
        }
    }
}

impl Drop for NodeConnection {
    fn drop(&mut self) {
        self.connection
            .close(codes::NO_ERROR.into(), b"client done");
    }
}

/// The keep-alive interval of a client whose connections are watched for
/// `silence` ([`NodeConnection::watch`]): half of it, so that a node that
/// acknowledged everything it was sent and then stopped is sent a ping it
/// leaves unanswered within the time, and never longer than `default_ms`
/// (the transport's own). quinn pings only after that long without traffic
/// either way, but on every connection, idle ones too: 2 s gives an idle
/// connection a ping and its acknowledgement a second.
pub(crate) fn keep_alive_for(silence: Duration, default_ms: u32) -> u32 {
    if silence.is_zero() {
        return default_ms;
    }
    u32::try_from((silence / 2).as_millis())
        .unwrap_or(u32::MAX)
        .clamp(1, default_ms)
}

/// The error a caller sees for a lost or refused connection.
fn connection_error(addr: std::net::SocketAddr, e: &quinn::ConnectionError) -> ClientError {
    if let Some(alert) = tls_alert(e) {
        if let quinn::ConnectionError::TransportError(local) = e {
            // Raised here: this client refused the node's certificate.
            return ClientError::Tls(format!(
                "this client refused the certificate of {addr} ({}): is the CA in the client's certificate directory this cluster's?",
                local.reason
            ));
        }
        // A node's peer endpoint admits only nodes.
        let hint = if alert == rustls::AlertDescription::AccessDenied {
            " (is this a node's peer address? clients use its client address)"
        } else {
            ""
        };
        return ClientError::Tls(format!("{addr} refused the TLS handshake: {alert:?}{hint}"));
    }
    match e {
        quinn::ConnectionError::ApplicationClosed(close) => ClientError::Connect(format!(
            "{addr} closed the connection: {}",
            codes::describe(close.error_code.into_inner())
        )),
        other => ClientError::Connect(format!("{addr}: {other}")),
    }
}

fn read_error(addr: std::net::SocketAddr, e: &quinn::ReadError) -> ClientError {
    match e {
        quinn::ReadError::Reset(code) => ClientError::Protocol(format!(
            "{addr} reset the stream: {}",
            codes::describe(code.into_inner())
        )),
        quinn::ReadError::ConnectionLost(e) => connection_error(addr, e),
        other => ClientError::Connect(format!("{addr}: {other}")),
    }
}

fn write_error(addr: std::net::SocketAddr, e: &quinn::WriteError) -> ClientError {
    match e {
        quinn::WriteError::Stopped(code) => ClientError::Protocol(format!(
            "{addr} stopped the stream: {}",
            codes::describe(code.into_inner())
        )),
        quinn::WriteError::ConnectionLost(e) => connection_error(addr, e),
        other => ClientError::Connect(format!("{addr}: {other}")),
    }
}

/// Writes the preamble, then batches of request frames.
async fn write_frames(
    mut send: quinn::SendStream,
    mut frames: mpsc::Receiver<Vec<u8>>,
    pending: Arc<Pending>,
    addr: std::net::SocketAddr,
) {
    let mut buf = Vec::with_capacity(WRITE_BATCH_BYTES);
    buf.extend_from_slice(&preamble());
    while let Some(first) = frames.recv().await {
        buf.extend_from_slice(&first);
        while buf.len() < WRITE_BATCH_BYTES {
            let Ok(frame) = frames.try_recv() else { break };
            buf.extend_from_slice(&frame);
        }
        if let Err(e) = send.write_all(&buf).await {
            pending.fail(write_error(addr, &e));
            return;
        }
        buf.clear();
    }
    let _ = send.finish();
}

/// Reads the node's preamble, then responses, completing their callers;
/// on any failure, fails every caller waiting on the stream.
async fn read_responses(
    mut recv: quinn::RecvStream,
    pending: Arc<Pending>,
    frame_bytes_max: usize,
    addr: std::net::SocketAddr,
) {
    let ended: Result<std::convert::Infallible, ClientError> = async {
        let mut theirs = [0u8; PREAMBLE_LEN];
        recv.read_exact(&mut theirs).await.map_err(|e| match e {
            quinn::ReadExactError::ReadError(e) => read_error(addr, &e),
            quinn::ReadExactError::FinishedEarly(_) => {
                ClientError::Protocol(format!("{addr} ended the stream before its preamble"))
            }
        })?;
        check_preamble(&theirs).map_err(|e| ClientError::Protocol(format!("{addr}: {e}")))?;
        let mut reader = FrameReader::new(frame_bytes_max);
        loop {
            let chunk = recv
                .read_chunk(READ_CHUNK_BYTES, true)
                .await
                .map_err(|e| read_error(addr, &e))?
                .ok_or_else(|| ClientError::Connect(format!("{addr} ended the stream")))?;
            reader.extend(&chunk.bytes);
            while let Some(response) = reader
                .next_frame::<Response>()
                .map_err(|e| ClientError::Protocol(format!("{addr}: {e}")))?
            {
                pending.complete(response);
            }
        }
    }
    .await;
    let error = match ended {
        Err(e) => e,
        Ok(never) => match never {},
    };
    tracing::debug!(%addr, %error, "request stream ended");
    pending.fail(error);
}
