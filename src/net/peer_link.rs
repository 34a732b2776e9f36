//! Outbound links to the other nodes: one task per remote node, keeping one
//! connection and one long-lived unidirectional stream to it.
//!
//! A link starts the first time the node sends to that peer. Messages are
//! framed as they are queued, and wait in the link's queue, bounded both in
//! messages and in bytes (a whole-state message can weigh megabytes); the
//! task drains whatever is ready into one buffer and writes it at once. When the connection breaks, the task dials
//! again with exponential backoff; messages that were in a failed write are
//! lost, and a full queue drops new messages. Both are counted and logged,
//! never retried here: the node's timeouts, hinted handoff and read repair
//! are what make replication reliable, not this link.
//!
//! A peer is dialled at its `peer_addr` in the topology the node runs at
//! the time of the dial (a node removed and added again under its old id
//! comes back on other ports), or at its route when one is given (the local
//! lab's WAN relays; a route file is read again on every topology reload);
//! the TLS server name is always the peer's. A
//! connection the peer closes within [`STABLE_LINK_MS`] of the handshake
//! (a peer that does not know this node yet) is dialled again after the
//! same backoff as a failed dial, not at once.
//!
//! A link also drops a connection that leads to a process gone: a peer
//! killed and started again is not heard on the old connection, which
//! looks alive until its idle timeout. Every stream between two nodes
//! names its sender's life (see [`crate::protocol::frame::peer_preamble`]);
//! the peer names its life on this link's connection at once, on the
//! stream it opens back, and again on every connection it dials itself.
//! When the latter names a life the link's connection did not, or the
//! link's connection has named none after [`unheard_grace`] (see
//! [`stale_link`]), a task watching the connection closes it, which also
//! frees a writer waiting on the dead peer's flow control, and the link
//! dials again; a link waiting to dial again dials at once. (The new life
//! would also answer the old connection's next packet with a stateless
//! reset, but after seconds of sending into the void QUIC backs its
//! retransmissions off to seconds apart.)

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crdt_types::ReplicaId;
use tokio::sync::{mpsc, watch};

use super::driver::Event;
use super::peer_accept::accept_streams;
use super::{Shared, WRITE_BATCH_BYTES};
use crate::protocol::frame::{encode_into, peer_preamble};
use crate::protocol::{codes, PeerMsg};
use crate::tls::PeerIdentity;
use crate::topology::Node as NodeAddr;

/// Messages queued per peer link.
pub const PEER_QUEUE_MAX: usize = 16_384;
/// Bytes of framed messages queued per peer link. A message larger than
/// this is still queued when the queue is empty.
pub const PEER_QUEUE_BYTES_MAX: usize = 16 << 20;
/// First wait before dialling a peer again.
pub const RECONNECT_BACKOFF_MS_MIN: u64 = 50;
/// Longest wait before dialling a peer again.
pub const RECONNECT_BACKOFF_MS_MAX: u64 = 2_000;
/// How long a dial (QUIC and TLS handshake) may take.
pub const CONNECT_TIMEOUT_MS: u64 = 2_000;
/// A connection that lasted this long resets the backoff; one the peer
/// closed sooner counts as a failed dial.
pub const STABLE_LINK_MS: u64 = 1_000;
/// A link's connection up this long on which the peer has named no life
/// leads to a process that died before it could (a live peer names it
/// within a round trip of the handshake). Longer on a slow path: see
/// [`unheard_grace`].
pub const LIFE_UNHEARD_MS: u64 = 1_000;
/// Round trips a live peer's life may take to arrive (a lost packet is
/// sent again after a few).
pub const LIFE_UNHEARD_RTTS: u32 = 8;

/// How long a link's connection whose round trip is `rtt` may go without
/// the peer naming its life before it counts as leading to a process gone.
pub(crate) fn unheard_grace(rtt: Duration) -> Duration {
    Duration::from_millis(LIFE_UNHEARD_MS).max(rtt.saturating_mul(LIFE_UNHEARD_RTTS))
}

/// Whether a link's connection, up for `up_for`, on which the peer named
/// life `heard` (0: none yet), leads elsewhere than to the peer's `life`
/// named on a connection the peer dialled; `grace` is the connection's
/// [`unheard_grace`].
pub(crate) fn stale_link(heard: u64, up_for: Duration, grace: Duration, life: u64) -> bool {
    if heard != 0 {
        return heard != life;
    }
    // A young connection may not have heard yet (a region starting: every
    // node dials and is dialled at once); an old one never will.
    up_for >= grace
}

/// Closes a link's `connection` (up since `up_since`) once it is stale by
/// [`stale_link`]: when the peer names a life on a connection it dialled,
/// and again at the end of its [`unheard_grace`] if the peer named one
/// while this connection had heard none yet; `closed` then says so. A task
/// of its own, so that a writer blocked on the dead connection's flow
/// control is freed too (its write fails, and the link dials again).
async fn close_if_stale(
    connection: quinn::Connection,
    mut lives: watch::Receiver<u64>,
    heard: Arc<AtomicU64>,
    up_since: Instant,
    closed: Arc<AtomicBool>,
    peer: String,
) {
    // The round trip the handshake measured.
    let grace = unheard_grace(connection.rtt());
    // One clock for the deadline and the check.
    let up_since = tokio::time::Instant::from_std(up_since);
    let judge_again_at = up_since + grace;
    let mut unjudged = false;
    loop {
        tokio::select! {
            _ = connection.closed() => return,
            changed = lives.changed() => {
                if changed.is_err() {
                    return; // the node stopped
                }
            }
            () = tokio::time::sleep_until(judge_again_at), if unjudged => {}
        }
        let life = *lives.borrow_and_update();
        let heard_now = heard.load(Ordering::Acquire);
        if stale_link(heard_now, up_since.elapsed(), grace, life) {
            tracing::info!(%peer, "the peer started anew; dialling it again");
            closed.store(true, Ordering::Release);
            connection.close(codes::NO_ERROR.into(), b"the peer started anew");
            return;
        }
        // Nothing heard yet on a young connection: judge once more when
        // it is old enough to have heard.
        unjudged = heard_now == 0;
    }
}

/// The node task's handle on every outbound link.
pub(crate) struct Links {
    endpoint: quinn::Endpoint,
    /// The file the peer routes come from, read again on a topology reload.
    routes_file: Option<std::path::PathBuf>,
    frame_bytes_max: usize,
    shutdown: watch::Receiver<bool>,
    shared: Arc<Shared>,
    queues: HashMap<ReplicaId, Queue>,
    /// Streams back to peers on the connections they dialled, for answers.
    return_paths: HashMap<ReplicaId, Queue>,
    /// The life each link's peer last named on a connection it dialled.
    lives: HashMap<ReplicaId, watch::Sender<u64>>,
    /// Where messages a peer sends back on our connection go.
    events: mpsc::Sender<Event>,
}

/// The sending side of one stream's queue of frames to a peer.
#[derive(Debug)]
pub(crate) struct Queue {
    frames: mpsc::Sender<Vec<u8>>,
    pub(crate) budget: Arc<ByteBudget>,
    /// Tells the link's writer to drop its connection and dial again.
    redial: Arc<tokio::sync::Notify>,
}

impl Queue {
    /// A queue bounded by [`PEER_QUEUE_MAX`] and [`PEER_QUEUE_BYTES_MAX`],
    /// and the receiver its writer drains.
    pub(crate) fn new() -> (Queue, mpsc::Receiver<Vec<u8>>) {
        let (frames, rx) = mpsc::channel(PEER_QUEUE_MAX);
        let budget = Arc::new(ByteBudget::new(PEER_QUEUE_BYTES_MAX));
        let redial = Arc::new(tokio::sync::Notify::new());
        (
            Queue {
                frames,
                budget,
                redial,
            },
            rx,
        )
    }
}

/// Why a stream's writer stopped.
#[derive(Debug)]
pub(crate) enum PumpEnd {
    /// Every sender of the queue is gone.
    QueueClosed,
    /// A write failed; this many messages went with it.
    WriteFailed { lost: u64, error: quinn::WriteError },
}

/// Drains `frames` into `send`, gathering whatever is ready into one write,
/// until the queue closes or a write fails.
pub(crate) async fn pump(
    frames: &mut mpsc::Receiver<Vec<u8>>,
    send: &mut quinn::SendStream,
    budget: &ByteBudget,
    shared: &Shared,
    buf: &mut Vec<u8>,
) -> PumpEnd {
    loop {
        let Some(first) = frames.recv().await else {
            let _ = send.finish();
            return PumpEnd::QueueClosed;
        };
        if let Err(end) = write_batch(first, frames, send, budget, shared, buf).await {
            return end;
        }
    }
}

/// Writes `first` and every frame already queued behind it, up to
/// [`WRITE_BATCH_BYTES`], at once.
async fn write_batch(
    first: Vec<u8>,
    frames: &mut mpsc::Receiver<Vec<u8>>,
    send: &mut quinn::SendStream,
    budget: &ByteBudget,
    shared: &Shared,
    buf: &mut Vec<u8>,
) -> Result<(), PumpEnd> {
    buf.clear();
    buf.extend_from_slice(&first);
    let mut batched = 1;
    while buf.len() < WRITE_BATCH_BYTES {
        let Ok(frame) = frames.try_recv() else { break };
        buf.extend_from_slice(&frame);
        batched += 1;
    }
    // Out of the queue: the bytes no longer count against it.
    budget.give_back(buf.len());
    send.write_all(buf).await.map_err(|error| {
        shared.count_peer_lost(batched);
        PumpEnd::WriteFailed {
            lost: batched,
            error,
        }
    })
}

/// Bytes queued on one link, against [`PEER_QUEUE_BYTES_MAX`].
#[derive(Debug)]
pub(crate) struct ByteBudget {
    queued: AtomicUsize,
    max: usize,
}

impl ByteBudget {
    fn new(max: usize) -> Self {
        ByteBudget {
            queued: AtomicUsize::new(0),
            max,
        }
    }

    /// Takes `len` bytes of the budget; false (nothing taken) when they do
    /// not fit, unless nothing is queued.
    fn try_take(&self, len: usize) -> bool {
        self.queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |queued| {
                (queued == 0 || queued.saturating_add(len) <= self.max).then(|| queued + len)
            })
            .is_ok()
    }

    /// Gives back `len` bytes taken before.
    fn give_back(&self, len: usize) {
        let before = self.queued.fetch_sub(len, Ordering::AcqRel);
        debug_assert!(before >= len, "gave back more than was taken");
    }
}

impl Links {
    pub(crate) fn new(
        endpoint: quinn::Endpoint,
        routes_file: Option<std::path::PathBuf>,
        frame_bytes_max: usize,
        shutdown: watch::Receiver<bool>,
        shared: Arc<Shared>,
        events: mpsc::Sender<Event>,
    ) -> Self {
        Links {
            endpoint,
            routes_file,
            frame_bytes_max,
            shutdown,
            shared,
            queues: HashMap::new(),
            return_paths: HashMap::new(),
            lives: HashMap::new(),
            events,
        }
    }

    /// Frames `msg` and queues it for peer `to`, starting its link if
    /// needed. Never waits: a message that finds the queue full (in
    /// messages or bytes) is dropped and counted.
    pub(crate) fn send(&mut self, to: ReplicaId, msg: PeerMsg) {
        if msg.is_answer() {
            if let Some(queue) = self.return_paths.get(&to) {
                match self.frame(to, &msg) {
                    None => return,
                    Some(frame) => match self.push(to, queue, frame) {
                        Pushed::Closed => {
                            // That connection ended: answer on our own link.
                            self.return_paths.remove(&to);
                        }
                        Pushed::Queued | Pushed::Dropped => return,
                    },
                }
            }
        }
        if !self.queues.contains_key(&to) {
            let Some(peer) = self.shared.topology.node_by_replica(to) else {
                tracing::warn!(replica = %to, "dropped a message to a replica not in the topology");
                self.shared.count_peer_dropped();
                return;
            };
            let (queue, rx) = Queue::new();
            let (lives, lives_rx) = watch::channel(0);
            let link = Link {
                endpoint: self.endpoint.clone(),
                peer,
                shared: self.shared.clone(),
                budget: queue.budget.clone(),
                redial: queue.redial.clone(),
                events: self.events.clone(),
                frame_bytes_max: self.frame_bytes_max,
            };
            tokio::spawn(link.run(rx, lives_rx, self.shutdown.clone()));
            self.queues.insert(to, queue);
            self.lives.insert(to, lives);
        }
        let Some(queue) = self.queues.get(&to) else {
            return;
        };
        let Some(frame) = self.frame(to, &msg) else {
            return;
        };
        if let Pushed::Closed = self.push(to, queue, frame) {
            self.shared.count_peer_dropped();
        }
    }

    /// After a topology reload (`old` was the topology before): reads the
    /// route file again, if there is one; then the links to nodes whose
    /// address changed (their `peer_addr`, or their route) drop their
    /// connection, or their wait before the next dial, and dial the new one.
    pub(crate) fn readdress(&mut self, old: Option<&crate::topology::Topology>) {
        let Some(new) = self.shared.topology.get() else {
            return;
        };
        let old_routes = self.shared.routes();
        if let Some(file) = &self.routes_file {
            match crate::wan::read_routes(file) {
                Ok(routes) => self.shared.set_routes(routes),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the peer routes again; keeping them")
                }
            }
        }
        let new_routes = self.shared.routes();
        for (replica, queue) in &self.queues {
            let addr = |t: &crate::topology::Topology, routes: &BTreeMap<String, SocketAddr>| {
                let node = t.node_by_replica(*replica)?;
                Some(routes.get(&node.id).copied().unwrap_or(node.peer_addr))
            };
            let now = addr(&new, &new_routes);
            if now.is_some() && now != old.and_then(|old| addr(old, &old_routes)) {
                tracing::info!(replica = %replica, addr = ?now, "the peer moved; dialling its new address");
                queue.redial.notify_one();
            }
        }
    }

    /// Tells the link to `from` the life `from` named on a connection it
    /// dialled; the link dials again if its own connection leads elsewhere,
    /// keeping the frames queued on it (they go on the new connection).
    pub(crate) fn peer_life(&mut self, from: ReplicaId, life: u64) {
        if let Some(lives) = self.lives.get(&from) {
            lives.send_replace(life);
        }
    }

    /// Takes the stream back to `from` on the connection it dialled; answers
    /// to it go there while it lasts.
    pub(crate) fn set_return_path(&mut self, from: ReplicaId, queue: Queue) {
        self.return_paths.insert(from, queue);
    }

    fn frame(&self, to: ReplicaId, msg: &PeerMsg) -> Option<Vec<u8>> {
        let mut frame = Vec::new();
        match encode_into(msg, &mut frame, self.frame_bytes_max) {
            Ok(()) => Some(frame),
            Err(e) => {
                self.shared.count_peer_dropped();
                tracing::warn!(replica = %to, error = %e, "dropped a peer message that cannot be framed");
                None
            }
        }
    }

    fn push(&self, to: ReplicaId, queue: &Queue, frame: Vec<u8>) -> Pushed {
        let len = frame.len();
        if !queue.budget.try_take(len) {
            self.count_full(to, "bytes");
            return Pushed::Dropped;
        }
        match queue.frames.try_send(frame) {
            Ok(()) => Pushed::Queued,
            Err(mpsc::error::TrySendError::Full(_)) => {
                queue.budget.give_back(len);
                self.count_full(to, "messages");
                Pushed::Dropped
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                queue.budget.give_back(len);
                Pushed::Closed
            }
        }
    }

    fn count_full(&self, to: ReplicaId, limit: &'static str) {
        let dropped = self.shared.count_peer_dropped();
        if dropped.is_power_of_two() {
            tracing::warn!(replica = %to, dropped, limit, "peer link queue full; dropped a message (hints and repair recover)");
        }
    }
}

/// What became of a frame offered to a queue.
enum Pushed {
    Queued,
    /// The queue was full (counted).
    Dropped,
    /// The queue's writer is gone (not counted).
    Closed,
}

/// One outbound link's task.
struct Link {
    endpoint: quinn::Endpoint,
    peer: NodeAddr,
    shared: Arc<Shared>,
    budget: Arc<ByteBudget>,
    /// Set when the peer moved: the connection leads to the old address.
    redial: Arc<tokio::sync::Notify>,
    /// Where the peer's answers on this link's connection go.
    events: mpsc::Sender<Event>,
    frame_bytes_max: usize,
}

impl Link {
    async fn run(
        self,
        mut queue: mpsc::Receiver<Vec<u8>>,
        mut lives: watch::Receiver<u64>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let server_name = match PeerIdentity::node(&self.peer.id) {
            Ok(identity) => identity.dns_name(),
            Err(e) => {
                tracing::error!(peer = %self.peer.id, error = %e, "cannot dial a node with this id");
                return;
            }
        };
        let mut backoff_ms = RECONNECT_BACKOFF_MS_MIN;
        let mut buf = Vec::with_capacity(WRITE_BATCH_BYTES);
        loop {
            let dialled = tokio::select! {
                _ = shutdown.wait_for(|stop| *stop) => return,
                dialled = self.dial(&server_name) => dialled,
            };
            let (connection, mut send) = match dialled {
                Ok(opened) => opened,
                Err(reason) => {
                    tracing::debug!(peer = %self.peer.id, %reason, backoff_ms, "dial failed");
                    if !self.back_off(backoff_ms, &mut lives, &mut shutdown).await {
                        return;
                    }
                    backoff_ms = (backoff_ms * 2).min(RECONNECT_BACKOFF_MS_MAX);
                    continue;
                }
            };
            let up_since = Instant::now();
            // Whether this node asked for the redial (the peer moved or
            // started anew), rather than the connection failing.
            let mut redial_asked = false;
            tracing::debug!(peer = %self.peer.id, "peer link up");
            // The peer answers on this connection (see `peer_accept`), and
            // names its life there first.
            let heard = Arc::new(AtomicU64::new(0));
            tokio::spawn(accept_streams(
                connection.clone(),
                self.peer.replica,
                self.events.clone(),
                self.frame_bytes_max,
                self.shared.clone(),
                Some(heard.clone()),
            ));
            // Lives named before this connection came up say nothing of it.
            lives.borrow_and_update();
            let closed_stale = Arc::new(AtomicBool::new(false));
            tokio::spawn(close_if_stale(
                connection.clone(),
                lives.clone(),
                heard,
                up_since,
                closed_stale.clone(),
                self.peer.id.clone(),
            ));
            loop {
                let first = tokio::select! {
                    biased;
                    _ = shutdown.wait_for(|stop| *stop) => {
                        let _ = send.finish();
                        return;
                    }
                    reason = connection.closed() => {
                        tracing::info!(peer = %self.peer.id, %reason, "peer link closed; redialling");
                        break;
                    }
                    () = self.redial.notified() => {
                        redial_asked = true;
                        break;
                    }
                    msg = queue.recv() => msg,
                };
                let Some(first) = first else {
                    let _ = send.finish();
                    return;
                };
                let written = write_batch(
                    first,
                    &mut queue,
                    &mut send,
                    &self.budget,
                    &self.shared,
                    &mut buf,
                )
                .await;
                if let Err(PumpEnd::WriteFailed { lost, error }) = written {
                    tracing::info!(peer = %self.peer.id, %error, lost, "peer link broke; redialling");
                    break;
                }
            }
            // `close_if_stale` found it leads to a process gone.
            redial_asked |= closed_stale.load(Ordering::Acquire);
            connection.close(codes::NO_ERROR.into(), b"redialling");
            // The connection's watcher judged the lives named while it was
            // up; only a later one (the peer dialling in since) cuts the
            // wait below short.
            lives.borrow_and_update();
            if !redial_asked && up_since.elapsed() < Duration::from_millis(STABLE_LINK_MS) {
                // Closed or broken right after the handshake (a peer that
                // refuses this node): dialling again at once would only be
                // refused again, as fast as the peer answers.
                if !self.back_off(backoff_ms, &mut lives, &mut shutdown).await {
                    return;
                }
                backoff_ms = (backoff_ms * 2).min(RECONNECT_BACKOFF_MS_MAX);
            } else {
                backoff_ms = RECONNECT_BACKOFF_MS_MIN;
            }
        }
    }

    /// Waits `backoff_ms` before the next dial, less if told to redial (the
    /// peer moved) or if the peer dialled this node meanwhile (it is up);
    /// `false` if the node shuts down meanwhile.
    async fn back_off(
        &self,
        backoff_ms: u64,
        lives: &mut watch::Receiver<u64>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> bool {
        tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => false,
            () = self.redial.notified() => true,
            Ok(()) = lives.changed() => true,
            () = tokio::time::sleep(Duration::from_millis(backoff_ms)) => true,
        }
    }

    /// The address to dial now: the peer's route, else its `peer_addr`,
    /// both as of the topology the node runs now (it may have moved since
    /// the link started), else the `peer_addr` it had then.
    fn dial_addr(&self) -> SocketAddr {
        if let Some(route) = self.shared.routes().get(&self.peer.id) {
            return *route;
        }
        self.shared
            .topology
            .node(&self.peer.id)
            .map_or(self.peer.peer_addr, |n| n.peer_addr)
    }

    /// Connects to the peer and opens the link's stream, preamble written.
    async fn dial(
        &self,
        server_name: &str,
    ) -> Result<(quinn::Connection, quinn::SendStream), String> {
        let connecting = self
            .endpoint
            .connect(self.dial_addr(), server_name)
            .map_err(|e| e.to_string())?;
        let connection =
            tokio::time::timeout(Duration::from_millis(CONNECT_TIMEOUT_MS), connecting)
                .await
                .map_err(|_| format!("no handshake within {CONNECT_TIMEOUT_MS} ms"))?
                .map_err(|e| match crate::tls::tls_alert(&e) {
                    // A certificate problem needs an operator; a peer that
                    // is down only needs time.
                    Some(alert) => {
                        tracing::warn!(peer = %self.peer.id, ?alert, error = %e, "TLS handshake with a peer failed: are both certificates from this cluster's CA?");
                        e.to_string()
                    }
                    None => e.to_string(),
                })?;
        let mut send = connection.open_uni().await.map_err(|e| e.to_string())?;
        send.write_all(&peer_preamble(self.shared.life))
            .await
            .map_err(|e| e.to_string())?;
        self.shared.count_peer_dial();
        Ok((connection, send))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_is_stale_when_its_peer_names_another_life_or_never_named_one() {
        let grace = unheard_grace(Duration::from_micros(50));
        assert_eq!(grace, Duration::from_millis(LIFE_UNHEARD_MS));
        let young = grace - Duration::from_millis(1);
        // The connection's peer named the life the peer names now.
        assert!(!stale_link(7, grace, grace, 7));
        // It named another: the peer restarted since the link dialled.
        assert!(stale_link(7, young, grace, 8));
        // Nothing named yet on a young connection (as when a region
        // starts): it may still come.
        assert!(!stale_link(0, young, grace, 8));
        // Nothing named on an old one: the process it leads to is gone.
        assert!(stale_link(0, grace, grace, 8));
        // A slow path (a WAN link) waits longer for a lost packet's resend.
        let wan = unheard_grace(Duration::from_millis(300));
        assert_eq!(wan, Duration::from_millis(2_400));
        assert!(!stale_link(0, Duration::from_millis(1_500), wan, 8));
    }

    #[test]
    fn the_byte_budget_refuses_what_does_not_fit_until_bytes_are_given_back() {
        let budget = ByteBudget::new(100);
        assert!(budget.try_take(60));
        assert!(budget.try_take(40));
        assert!(!budget.try_take(1), "full");
        budget.give_back(60);
        assert!(!budget.try_take(61));
        assert!(budget.try_take(60));
        assert_eq!(budget.queued.load(Ordering::Relaxed), 100);
    }

    #[test]
    fn a_message_larger_than_the_budget_passes_only_an_empty_queue() {
        let budget = ByteBudget::new(100);
        assert!(budget.try_take(1));
        assert!(!budget.try_take(1_000));
        budget.give_back(1);
        assert!(budget.try_take(1_000), "alone in the queue");
        assert!(!budget.try_take(1));
        budget.give_back(1_000);
        assert_eq!(budget.queued.load(Ordering::Relaxed), 0);
    }
}
