//! The client-facing endpoint: accepts client connections and serves their
//! long-lived bidirectional streams.
//!
//! Each stream opens with the preamble in both directions, then carries
//! request frames one way and response frames the other, matched by request
//! id and written in completion order. A stream's reader hands requests to
//! the node task; its writer drains every response that is ready into one
//! buffer and writes it at once. A stream has at most
//! [`STREAM_INFLIGHT_MAX`] requests in flight: past that its reader stops
//! reading and QUIC flow control holds the client back.
//!
//! What a client connection makes the node hold is counted against a
//! [`Budget`]. Answers not yet read: past [`BUDGET_SOFT_FRAMES`] frames'
//! worth its streams stop taking new requests until the client reads; past
//! [`BUDGET_HARD_FRAMES`] (or the node-wide [`NODE_CLIENT_BYTES_MAX`]) a
//! large answer is replaced by an `Unavailable` error. Requests partly
//! received, counted apart (a reader waiting for its client to read must
//! not wait on them): past [`BUDGET_HARD_FRAMES`] the stream whose partial
//! request does not fit is reset ([`codes::TOO_MANY_PARTIAL`]); a client
//! has that many only with that many streams each in the middle of a large
//! request. A client that sends requests and never reads the answers
//! cannot make the node run out of memory.
//!
//! A bad frame costs one request (it is answered with `BadRequest`) when
//! its id can be read, otherwise the stream is reset with a
//! [`codes`](crate::protocol::codes) value; the connection and the node go on either way.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot, Notify, OwnedSemaphorePermit, Semaphore};

use super::driver::Event;
use super::peer_accept::preamble_code;
use super::request_reader::{Next, RequestReader};
use super::{
    Shared, HANDSHAKES_MAX, HANDSHAKE_TIMEOUT_MS, PREAMBLE_TIMEOUT_MS, READ_CHUNK_BYTES,
    WRITE_BATCH_BYTES,
};
use crate::node::ClientId;
use crate::protocol::frame::{
    check_client_preamble, encode_into, preamble_of, FrameError, PREAMBLE_LEN, PROTOCOL_VERSION,
};
use crate::protocol::{codes, ErrorReply, Response};
use crate::tls::peer_identity;

/// Requests in flight on one client stream.
pub const STREAM_INFLIGHT_MAX: usize = 1024;
/// Client connections open at once.
pub const CLIENT_CONNECTIONS_MAX: usize = 4096;
/// A connection holding this many frames' worth of bytes takes no new
/// requests until it has read some answers.
pub const BUDGET_SOFT_FRAMES: usize = 8;
/// A connection may hold at most this many frames' worth of bytes.
pub const BUDGET_HARD_FRAMES: usize = 64;
/// Bytes all client connections of a node may hold together (at least one
/// connection's hard budget).
pub const NODE_CLIENT_BYTES_MAX: usize = 1 << 30;
/// How the reason of the `Unavailable` error that replaces an answer past
/// the connection's budget begins: the SDK, which reads its answers as
/// they come, asks again after a pause (see `Client::execute`).
pub const ANSWERS_UNREAD: &str = "this connection has not read";
/// Answers up to this size are always sent: they are no larger than the
/// error that would replace them (and a write's answer must reach its
/// client, the write being done).
pub const SMALL_ANSWER_BYTES: usize = 1024;

/// What all client connections of a node hold, each kind apart.
#[derive(Debug, Default)]
pub(crate) struct NodeHeld {
    /// Bytes of answers queued and not yet written.
    answers: AtomicUsize,
    /// Bytes of requests partly received.
    partial: AtomicUsize,
}

/// The bytes one client connection makes the node hold, and the node's
/// total over all of them.
#[derive(Debug)]
pub(crate) struct Budget {
    /// Bytes of answers queued and not yet written.
    used: AtomicUsize,
    /// Bytes of requests partly received.
    partial: AtomicUsize,
    node: Arc<NodeHeld>,
    soft: usize,
    hard: usize,
    node_max: usize,
    released: Notify,
}

impl Budget {
    pub(crate) fn new(frame_bytes_max: usize, node: Arc<NodeHeld>) -> Self {
        let hard = frame_bytes_max.saturating_mul(BUDGET_HARD_FRAMES);
        Budget {
            used: AtomicUsize::new(0),
            partial: AtomicUsize::new(0),
            node,
            soft: frame_bytes_max.saturating_mul(BUDGET_SOFT_FRAMES),
            hard,
            node_max: NODE_CLIENT_BYTES_MAX.max(hard),
            released: Notify::new(),
        }
    }

    /// Counts `bytes` if they fit under the hard budget and the node's.
    pub(crate) fn try_charge(&self, bytes: usize) -> bool {
        self.count_within(&self.used, &self.node.answers, bytes)
    }

    /// Counts `bytes` whatever the budget (small answers).
    pub(crate) fn charge(&self, bytes: usize) {
        self.used.fetch_add(bytes, Ordering::Relaxed);
        self.node.answers.fetch_add(bytes, Ordering::Relaxed);
    }

    pub(crate) fn release(&self, bytes: usize) {
        if bytes == 0 {
            return;
        }
        self.used.fetch_sub(bytes, Ordering::Relaxed);
        self.node.answers.fetch_sub(bytes, Ordering::Relaxed);
        self.released.notify_waiters();
    }

    /// Counts `bytes` of partly received requests if they fit under the
    /// hard budget and the node's total of them (apart from answers: a
    /// reader waiting for its client to read never waits on these).
    fn try_charge_partial(&self, bytes: usize) -> bool {
        self.count_within(&self.partial, &self.node.partial, bytes)
    }

    /// Adds `bytes` to this connection's count `mine` and the node's
    /// `node` if both stay within the hard budget and the node's limit;
    /// otherwise leaves them as they were.
    fn count_within(&self, mine: &AtomicUsize, node: &AtomicUsize, bytes: usize) -> bool {
        let mine_over = mine.fetch_add(bytes, Ordering::Relaxed) + bytes > self.hard;
        let node_over = node.fetch_add(bytes, Ordering::Relaxed) + bytes > self.node_max;
        if mine_over || node_over {
            mine.fetch_sub(bytes, Ordering::Relaxed);
            node.fetch_sub(bytes, Ordering::Relaxed);
            return false;
        }
        true
    }

    fn release_partial(&self, bytes: usize) {
        self.partial.fetch_sub(bytes, Ordering::Relaxed);
        self.node.partial.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// Returns once the connection holds less than its soft budget.
    async fn below_soft(&self) {
        loop {
            let released = self.released.notified();
            if self.used.load(Ordering::Relaxed) < self.soft {
                return;
            }
            released.await;
        }
    }

    #[cfg(test)]
    fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }
}

/// Where the node task sends a client stream's answers.
#[derive(Debug, Clone)]
pub(crate) struct Replies {
    pub(crate) tx: mpsc::Sender<Response>,
    pub(crate) budget: Arc<Budget>,
}

impl Replies {
    /// Queues `response` for the stream, counted against the connection's
    /// budget; a large one that does not fit is replaced by an
    /// `Unavailable` error. Gives the response back if the queue is full
    /// or closed.
    pub(crate) fn send(&self, mut response: Response) -> Result<(), TrySendError<Response>> {
        let mut bytes = response.approx_bytes();
        if bytes <= SMALL_ANSWER_BYTES {
            self.budget.charge(bytes);
        } else if !self.budget.try_charge(bytes) {
            response = Response {
                id: response.id,
                result: Err(ErrorReply::Unavailable {
                    reason: format!(
                        "{ANSWERS_UNREAD} {} bytes of answers; \
                         read them before asking for more",
                        self.budget.used.load(Ordering::Relaxed)
                    ),
                }),
            };
            bytes = response.approx_bytes();
            self.budget.charge(bytes);
        }
        self.tx.try_send(response).inspect_err(|_| {
            self.budget.release(bytes);
        })
    }
}

/// What every client connection and stream needs.
#[derive(Clone)]
pub(crate) struct ClientSide {
    pub(crate) events: mpsc::Sender<Event>,
    pub(crate) frame_bytes_max: usize,
    pub(crate) next_client: Arc<AtomicU64>,
    pub(crate) shared: Arc<Shared>,
    /// Bytes held for all client connections ([`Budget`]).
    pub(crate) held: Arc<NodeHeld>,
}

/// Accepts client connections until the endpoint closes. Handshakes in
/// progress and established connections are limited apart, so peers that
/// never finish a handshake cannot take the places of clients.
pub(crate) async fn accept(endpoint: quinn::Endpoint, side: ClientSide) {
    let handshakes = Arc::new(Semaphore::new(HANDSHAKES_MAX));
    let slots = Arc::new(Semaphore::new(CLIENT_CONNECTIONS_MAX));
    while let Some(incoming) = endpoint.accept().await {
        let Ok(handshake) = handshakes.clone().try_acquire_owned() else {
            tracing::warn!(remote = %incoming.remote_address(), "refused a client connection: too many handshakes in progress");
            incoming.refuse();
            continue;
        };
        let side = side.clone();
        let slots = slots.clone();
        tokio::spawn(async move {
            side.serve_connection(incoming, handshake, slots).await;
        });
    }
}

/// How a stream's request half ended.
enum ReadEnd {
    /// The client finished its half: answer what is in flight, then finish.
    Finished,
    /// The stream or connection failed, or the node stopped.
    Lost,
    /// Framing was lost: reset the stream with this code.
    Fatal(u32),
}

impl ClientSide {
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
                tracing::debug!(%remote, error = %e, "client connection failed");
                return;
            }
        };
        let connection =
            match tokio::time::timeout(Duration::from_millis(HANDSHAKE_TIMEOUT_MS), connecting)
                .await
            {
                Ok(Ok(connection)) => connection,
                Ok(Err(e)) => {
                    super::log_handshake_failure("client", remote, &e);
                    return;
                }
                Err(_) => {
                    tracing::info!(%remote, "client handshake timed out");
                    return;
                }
            };
        drop(handshake);
        let Ok(_slot) = slots.try_acquire_owned() else {
            tracing::warn!(%remote, "refused a client connection: too many open");
            connection.close(codes::OVERLOADED.into(), b"too many client connections");
            return;
        };
        self.shared.count_client_connection();
        let who = peer_identity(&connection).map_or_else(|e| e.to_string(), |p| p.to_string());
        tracing::debug!(%remote, peer = %who, "client connected");
        let budget = Arc::new(Budget::new(self.frame_bytes_max, self.held.clone()));
        loop {
            match connection.accept_bi().await {
                Ok((send, recv)) => {
                    tokio::spawn(self.clone().serve_stream(send, recv, budget.clone()));
                }
                Err(e) => {
                    tracing::debug!(%remote, peer = %who, error = %e, "client connection ended");
                    return;
                }
            }
        }
    }

    async fn serve_stream(
        self,
        mut send: quinn::SendStream,
        mut recv: quinn::RecvStream,
        budget: Arc<Budget>,
    ) {
        let mut theirs = [0u8; PREAMBLE_LEN];
        let read = tokio::time::timeout(
            Duration::from_millis(PREAMBLE_TIMEOUT_MS),
            recv.read_exact(&mut theirs),
        )
        .await;
        let checked = match read {
            Ok(Ok(())) => check_client_preamble(&theirs),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "client stream ended before its preamble");
                return;
            }
            Err(_) => {
                // Said apart from a wrong preamble: nothing bad was sent.
                tracing::info!(
                    "closed a client stream that sent no preamble within {PREAMBLE_TIMEOUT_MS} ms"
                );
                let code = preamble_code(&FrameError::BadMagic);
                let _ = recv.stop(code.into());
                let _ = send.reset(code.into());
                return;
            }
        };
        let version = match checked {
            Ok(version) => version,
            Err(e) => {
                self.shared.count_bad_frame();
                tracing::warn!(error = %e, "refused a client stream");
                let code = preamble_code(&e);
                let _ = recv.stop(code.into());
                let _ = send.reset(code.into());
                return;
            }
        };

        let client: ClientId = self.next_client.fetch_add(1, Ordering::Relaxed);
        self.shared.count_client_stream();
        let _open = self.shared.open_client_stream();
        let (tx, replies_rx) = mpsc::channel(STREAM_INFLIGHT_MAX);
        let replies = Replies {
            tx,
            budget: budget.clone(),
        };
        let inflight = Arc::new(Semaphore::new(STREAM_INFLIGHT_MAX));
        let opened = Event::ClientOpened {
            client,
            replies: replies.clone(),
        };
        if self.events.send(opened).await.is_err() {
            return;
        }
        let (reset_tx, reset_rx) = oneshot::channel();
        let mut writer = tokio::spawn(write_responses(
            send,
            version,
            Queued {
                rx: replies_rx,
                budget: budget.clone(),
            },
            inflight.clone(),
            self.frame_bytes_max,
            reset_rx,
        ));

        let end = self
            .read_requests(&mut recv, client, &replies, &inflight)
            .await;
        drop(replies);
        match end {
            ReadEnd::Finished => {
                // Wait until every request in flight has been answered (all
                // permits back), unless the writer gives up first.
                let max = STREAM_INFLIGHT_MAX as u32;
                tokio::select! {
                    _ = inflight.acquire_many(max) => {}
                    _ = &mut writer => {}
                }
            }
            ReadEnd::Lost => {}
            ReadEnd::Fatal(code) => {
                let _ = recv.stop(code.into());
                let _ = reset_tx.send(code);
            }
        }
        let _ = self.events.send(Event::ClientClosed { client }).await;
        // With its senders gone the writer finishes the stream and ends.
        let _ = writer.await;
    }

    async fn read_requests(
        &self,
        recv: &mut quinn::RecvStream,
        client: ClientId,
        replies: &Replies,
        inflight: &Semaphore,
    ) -> ReadEnd {
        let mut reader = RequestReader::new(self.frame_bytes_max);
        // Bytes of partly received requests counted against the budget.
        let mut held = Held {
            bytes: 0,
            budget: &replies.budget,
        };
        loop {
            let chunk = match recv.read_chunk(READ_CHUNK_BYTES, true).await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => return ReadEnd::Finished,
                Err(e) => {
                    tracing::debug!(client, error = %e, "client stream ended");
                    return ReadEnd::Lost;
                }
            };
            reader.extend(&chunk.bytes);
            while let Some(next) = reader.next() {
                // A client that does not read its answers is held back.
                replies.budget.below_soft().await;
                // Every request and every local answer holds one permit
                // until its response is written.
                match inflight.acquire().await {
                    Ok(permit) => permit.forget(),
                    Err(_) => return ReadEnd::Lost,
                }
                match next {
                    Next::Request(request) => {
                        if self
                            .events
                            .send(Event::Request { client, request })
                            .await
                            .is_err()
                        {
                            return ReadEnd::Lost;
                        }
                    }
                    Next::Bad { id, error } => {
                        self.shared.count_bad_frame();
                        tracing::debug!(client, id, error = %error, "answered a bad frame");
                        let response = Response {
                            id,
                            result: Err(ErrorReply::BadRequest {
                                reason: error.to_string(),
                            }),
                        };
                        if replies.send(response).is_err() {
                            return ReadEnd::Lost;
                        }
                    }
                    Next::Fatal { code, error } => {
                        inflight.add_permits(1);
                        self.shared.count_bad_frame();
                        tracing::warn!(client, error = %error, "bad frame without a request id; resetting the stream");
                        return ReadEnd::Fatal(code);
                    }
                }
            }
            if !held.update(reader.held_bytes()) {
                tracing::warn!(
                    client,
                    "a partly received request does not fit in the connection's budget; resetting the stream"
                );
                return ReadEnd::Fatal(codes::TOO_MANY_PARTIAL);
            }
        }
    }
}

/// The bytes of partly received requests a stream's reader holds, counted
/// against its connection's budget until the reader ends.
struct Held<'a> {
    bytes: usize,
    budget: &'a Budget,
}

impl Held<'_> {
    /// Counts `now` bytes instead of the previous figure; false when more
    /// do not fit.
    fn update(&mut self, now: usize) -> bool {
        if now > self.bytes {
            if !self.budget.try_charge_partial(now - self.bytes) {
                return false;
            }
        } else {
            self.budget.release_partial(self.bytes - now);
        }
        self.bytes = now;
        true
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.budget.release_partial(self.bytes);
    }
}

/// Closes a stream's in-flight semaphore when its writer ends, so that its
/// reader, waiting for a permit the writer will never give back, ends.
struct CloseOnDrop<'a>(&'a Semaphore);

impl Drop for CloseOnDrop<'_> {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// A stream's queue of answers, counted against its connection's budget
/// until written; whatever is left when the writer ends is given back.
struct Queued {
    rx: mpsc::Receiver<Response>,
    budget: Arc<Budget>,
}

impl Drop for Queued {
    fn drop(&mut self) {
        // Closed first, so nothing can be queued after the last look.
        self.rx.close();
        while let Ok(response) = self.rx.try_recv() {
            self.budget.release(response.approx_bytes());
        }
    }
}

/// Writes the stream's preamble, naming the client's protocol `version`
/// (see [`crate::protocol::frame::CLIENT_VERSION_MIN`]), then batches of
/// responses, until every sender is gone (then finishes the stream) or a
/// reset is asked for.
async fn write_responses(
    mut send: quinn::SendStream,
    version: u16,
    mut queued: Queued,
    inflight: Arc<Semaphore>,
    frame_bytes_max: usize,
    mut reset: oneshot::Receiver<u32>,
) {
    // However the writer ends, a reader waiting for permits ends too.
    let _closes = CloseOnDrop(&inflight);
    let mut buf = Vec::with_capacity(WRITE_BATCH_BYTES);
    if send.write_all(&preamble_of(version)).await.is_err() {
        return;
    }
    loop {
        let first = tokio::select! {
            biased;
            code = &mut reset => {
                if let Ok(code) = code {
                    let _ = send.reset(code.into());
                }
                return;
            }
            first = queued.rx.recv() => first,
        };
        let Some(first) = first else {
            let _ = send.finish();
            return;
        };
        buf.clear();
        // The budget the batch's answers held, given back once written
        // (or once the stream has failed).
        let mut bytes = first.approx_bytes();
        encode_response(&first, version, &mut buf, frame_bytes_max);
        drop(first);
        let mut written = 1;
        while buf.len() < WRITE_BATCH_BYTES {
            let Ok(response) = queued.rx.try_recv() else {
                break;
            };
            bytes += response.approx_bytes();
            encode_response(&response, version, &mut buf, frame_bytes_max);
            written += 1;
        }
        let sent = send.write_all(&buf).await;
        queued.budget.release(bytes);
        if let Err(e) = sent {
            tracing::debug!(error = %e, "client stream stopped taking responses");
            return;
        }
        inflight.add_permits(written);
    }
}

/// Appends `response` as a frame for a client of protocol `version`; one
/// too large to frame is replaced by a `KeyValueTooLarge` answer to the
/// same request, and one the client's version cannot read by a
/// `BadRequest` ([`Response::for_client`]).
fn encode_response(response: &Response, version: u16, buf: &mut Vec<u8>, frame_bytes_max: usize) {
    // This build's clients read every answer.
    let replaced = (version < PROTOCOL_VERSION)
        .then(|| response.for_client(version))
        .flatten();
    if replaced.is_some() {
        tracing::warn!(
            id = response.id,
            version,
            "an answer too new for its client"
        );
    }
    let response = replaced.as_ref().unwrap_or(response);
    let Err(e) = encode_into(response, buf, frame_bytes_max) else {
        return;
    };
    tracing::warn!(id = response.id, error = %e, "a response could not be framed");
    let error = match e {
        // A set or map stored under larger limits, or many concurrent
        // values of a multi-value register.
        FrameError::TooLarge { len, max } => ErrorReply::KeyValueTooLarge {
            len: len as u64,
            max: max as u64,
        },
        e => ErrorReply::BadRequest {
            reason: format!("the response cannot be sent: {e}"),
        },
    };
    let refusal = Response {
        id: response.id,
        result: Err(error),
    };
    // A refusal is a few dozen bytes, far below any frame limit.
    if encode_into(&refusal, buf, frame_bytes_max).is_err() {
        tracing::error!(id = response.id, "could not frame a refusal");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Answer, Reply};
    use crdt_types::Bytes;

    fn value(id: u64, len: usize) -> Response {
        Response {
            id,
            result: Ok(Answer {
                reply: Reply::Value(Bytes::from(vec![7u8; len])),
                replicas_acked: 1,
                replicas_needed: 1,
            }),
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn answers_not_read_are_bounded_and_large_ones_become_errors() {
        let frame = 4096;
        let node = Arc::new(NodeHeld::default());
        let budget = Arc::new(Budget::new(frame, node.clone()));
        let (tx, rx) = mpsc::channel(1024);
        let replies = Replies {
            tx,
            budget: budget.clone(),
        };
        let mut queued = Queued {
            rx,
            budget: budget.clone(),
        };
        // Large answers fit until the hard budget; the rest are replaced by
        // a small error.
        let (mut values, mut refused) = (0, 0);
        for id in 0..200 {
            replies.send(value(id, 2000)).unwrap();
        }
        while let Ok(r) = queued.rx.try_recv() {
            budget.release(r.approx_bytes());
            match r.result {
                Ok(_) => values += 1,
                Err(ErrorReply::Unavailable { reason }) => {
                    assert!(reason.contains("not read"), "{reason}");
                    refused += 1;
                }
                Err(e) => panic!("{e}"),
            }
        }
        let hard = frame * BUDGET_HARD_FRAMES;
        assert_eq!(values, hard / value(0, 2000).approx_bytes());
        assert_eq!(values + refused, 200);
        assert_eq!(
            (budget.used(), node.answers.load(Ordering::Relaxed)),
            (0, 0)
        );

        // Past the soft budget, and then the hard one: small answers (a
        // write's) still go through.
        for id in 0..30 {
            replies.send(value(id, 1500)).unwrap();
        }
        assert!(budget.used() > frame * BUDGET_SOFT_FRAMES);
        let over = budget.used();
        assert!(!budget.try_charge(hard));
        for id in 0..3 {
            replies.send(value(id, 10)).unwrap();
        }
        assert!(budget.used() > over);

        // The soft budget holds a reader back until answers are written.
        let waiting = tokio::time::timeout(Duration::from_millis(20), budget.below_soft());
        assert!(waiting.await.is_err(), "over the soft budget");
        // Whatever is left queued is given back with the queue.
        drop(queued);
        assert_eq!(
            (budget.used(), node.answers.load(Ordering::Relaxed)),
            (0, 0)
        );
        budget.below_soft().await;
        // And a closed queue gives back what could not be sent.
        assert!(replies.send(value(1, 2000)).is_err());
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn partly_received_requests_count_until_the_reader_ends() {
        let node = Arc::new(NodeHeld::default());
        let budget = Budget::new(1000, node.clone());
        let hard = 1000 * BUDGET_HARD_FRAMES;
        {
            let mut held = Held {
                bytes: 0,
                budget: &budget,
            };
            assert!(held.update(hard / 2));
            assert!(held.update(hard));
            assert!(!held.update(hard + 1), "over the hard budget");
            assert_eq!(budget.partial.load(Ordering::Relaxed), hard);
            assert_eq!(node.partial.load(Ordering::Relaxed), hard);
            // Apart from answers: a reader waiting on the soft budget does
            // not wait on partial requests.
            assert_eq!(
                (budget.used(), node.answers.load(Ordering::Relaxed)),
                (0, 0)
            );
            assert!(held.update(10));
            assert_eq!(budget.partial.load(Ordering::Relaxed), 10);
        }
        assert_eq!(budget.partial.load(Ordering::Relaxed), 0);
        assert_eq!(node.partial.load(Ordering::Relaxed), 0);
        // The node-wide totals count every connection.
        let other = Budget::new(1000, node.clone());
        node.answers.store(NODE_CLIENT_BYTES_MAX, Ordering::Relaxed);
        node.partial.store(NODE_CLIENT_BYTES_MAX, Ordering::Relaxed);
        assert!(!other.try_charge(1));
        assert!(!other.try_charge_partial(1));
        assert_eq!(
            (other.used(), other.partial.load(Ordering::Relaxed)),
            (0, 0)
        );
    }
}
