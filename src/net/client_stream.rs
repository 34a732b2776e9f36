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
//! A bad frame costs one request (it is answered with `BadRequest`) when
//! its id can be read, otherwise the stream is reset with a
//! [`codes`](crate::protocol::codes) value; the connection and the node go on either way.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, Semaphore};

use super::driver::Event;
use super::peer_accept::preamble_code;
use super::request_reader::{Next, RequestReader};
use super::{
    Shared, HANDSHAKE_TIMEOUT_MS, PREAMBLE_TIMEOUT_MS, READ_CHUNK_BYTES, WRITE_BATCH_BYTES,
};
use crate::node::ClientId;
use crate::protocol::frame::{check_preamble, encode_into, preamble, FrameError, PREAMBLE_LEN};
use crate::protocol::{ErrorReply, Response};
use crate::tls::peer_identity;

/// Requests in flight on one client stream.
pub const STREAM_INFLIGHT_MAX: usize = 1024;
/// Client connections open at once.
pub const CLIENT_CONNECTIONS_MAX: usize = 4096;

/// What every client connection and stream needs.
#[derive(Clone)]
pub(crate) struct ClientSide {
    pub(crate) events: mpsc::Sender<Event>,
    pub(crate) frame_bytes_max: usize,
    pub(crate) next_client: Arc<AtomicU64>,
    pub(crate) shared: Arc<Shared>,
}

/// Accepts client connections until the endpoint closes.
pub(crate) async fn accept(endpoint: quinn::Endpoint, side: ClientSide) {
    let slots = Arc::new(Semaphore::new(CLIENT_CONNECTIONS_MAX));
    while let Some(incoming) = endpoint.accept().await {
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(remote = %incoming.remote_address(), "refused a client connection: too many open");
            incoming.refuse();
            continue;
        };
        let side = side.clone();
        tokio::spawn(async move {
            side.serve_connection(incoming).await;
            drop(slot);
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
    async fn serve_connection(self, incoming: quinn::Incoming) {
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
                    tracing::info!(%remote, error = %e, "client handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::info!(%remote, "client handshake timed out");
                    return;
                }
            };
        self.shared.count_client_connection();
        let who = peer_identity(&connection).map_or_else(|e| e.to_string(), |p| p.to_string());
        tracing::debug!(%remote, peer = %who, "client connected");
        loop {
            match connection.accept_bi().await {
                Ok((send, recv)) => {
                    tokio::spawn(self.clone().serve_stream(send, recv));
                }
                Err(e) => {
                    tracing::debug!(%remote, peer = %who, error = %e, "client connection ended");
                    return;
                }
            }
        }
    }

    async fn serve_stream(self, mut send: quinn::SendStream, mut recv: quinn::RecvStream) {
        let mut theirs = [0u8; PREAMBLE_LEN];
        let read = tokio::time::timeout(
            Duration::from_millis(PREAMBLE_TIMEOUT_MS),
            recv.read_exact(&mut theirs),
        )
        .await;
        let checked = match read {
            Ok(Ok(())) => check_preamble(&theirs),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "client stream ended before its preamble");
                return;
            }
            Err(_) => Err(FrameError::BadMagic),
        };
        if let Err(e) = checked {
            self.shared.count_bad_frame();
            tracing::warn!(error = %e, "refused a client stream");
            let code = preamble_code(&e);
            let _ = recv.stop(code.into());
            let _ = send.reset(code.into());
            return;
        }

        let client: ClientId = self.next_client.fetch_add(1, Ordering::Relaxed);
        self.shared.count_client_stream();
        let (replies, replies_rx) = mpsc::channel(STREAM_INFLIGHT_MAX);
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
            replies_rx,
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
        replies: &mpsc::Sender<Response>,
        inflight: &Semaphore,
    ) -> ReadEnd {
        let mut reader = RequestReader::new(self.frame_bytes_max);
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
                        if replies.send(response).await.is_err() {
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
        }
    }
}

/// Writes the stream's preamble, then batches of responses, until every
/// sender is gone (then finishes the stream) or a reset is asked for.
async fn write_responses(
    mut send: quinn::SendStream,
    mut replies: mpsc::Receiver<Response>,
    inflight: Arc<Semaphore>,
    frame_bytes_max: usize,
    mut reset: oneshot::Receiver<u32>,
) {
    let mut buf = Vec::with_capacity(WRITE_BATCH_BYTES);
    if send.write_all(&preamble()).await.is_err() {
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
            first = replies.recv() => first,
        };
        let Some(first) = first else {
            let _ = send.finish();
            return;
        };
        buf.clear();
        encode_response(&first, &mut buf, frame_bytes_max);
        let mut written = 1;
        while buf.len() < WRITE_BATCH_BYTES {
            let Ok(response) = replies.try_recv() else {
                break;
            };
            encode_response(&response, &mut buf, frame_bytes_max);
            written += 1;
        }
        if let Err(e) = send.write_all(&buf).await {
            tracing::debug!(error = %e, "client stream stopped taking responses");
            return;
        }
        inflight.add_permits(written);
    }
}

/// Appends `response` as a frame; one too large to frame is replaced by a
/// `KeyValueTooLarge` answer to the same request.
fn encode_response(response: &Response, buf: &mut Vec<u8>, frame_bytes_max: usize) {
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
