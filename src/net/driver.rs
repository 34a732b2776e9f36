//! The task that owns the [`Node`]: feeds it events, lets time pass, and
//! carries out its actions.
//!
//! Everything that reaches the node goes through one bounded channel, so the
//! node needs no lock and sees events one at a time, in arrival order. The
//! task never waits on the outside world: replies go to a client stream's
//! writer through a queue that cannot fill (its stream admits no more
//! requests in flight than the queue holds), and peer messages go to a peer
//! link's bounded queue, dropped with a counted warning when it is full —
//! the node's timeouts, hints and read repair recover what was dropped.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crdt_types::{Bytes, ReplicaId};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::client_stream::Replies;
use super::pacing::Pacing;
use super::peer_link::{Links, Queue};
use super::Shared;
use crate::node::{bundle_sends, Action, ClientId, Input, Node};
use crate::protocol::{Command, PeerMsg, Request};
use crate::storage::{Storage, StorageError};

/// Longest sleep when the node has no timer set.
const IDLE_SLEEP_MS: u64 = 1_000;

/// What reaches the node task.
#[derive(Debug)]
pub(crate) enum Event {
    /// A client stream opened; its responses go to `replies`.
    ClientOpened { client: ClientId, replies: Replies },
    /// A client stream closed; later responses to it are dropped.
    ClientClosed { client: ClientId },
    /// A request read from a client stream.
    Request { client: ClientId, request: Request },
    /// A message read from a peer's stream.
    Peer { from: ReplicaId, msg: PeerMsg },
    /// A stream back to `from` on the connection it dialled opened.
    ReturnPath { from: ReplicaId, queue: Queue },
    /// A stream `from` opened on a connection it dialled named its life
    /// (see [`super::peer_link::stale_link`]).
    PeerLife { from: ReplicaId, life: u64 },
}

/// Milliseconds since the Unix epoch by the wall clock.
pub(crate) fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Milliseconds since the Unix epoch, never going backwards.
struct Clock {
    last_ms: u64,
}

impl Clock {
    fn now_ms(&mut self) -> u64 {
        let wall_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        self.last_ms = self.last_ms.max(wall_ms);
        self.last_ms
    }
}

/// Runs `node` until shutdown is signalled or every event sender is gone.
pub(crate) async fn run(
    mut node: Node,
    mut storage: Option<Storage>,
    mut events: mpsc::Receiver<Event>,
    mut links: Links,
    mut shutdown: watch::Receiver<bool>,
    shared: Arc<Shared>,
) {
    let mut clients: HashMap<ClientId, Replies> = HashMap::new();
    let mut clock = Clock { last_ms: 0 };
    let sleep = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(sleep);
    // A node with a data dir syncs its log once per batch: it keeps the
    // batches large (group commit), whatever the CPU.
    let mut pacing = Pacing::new(storage.is_none());
    let mut full_batch = false;
    loop {
        let now_ms = clock.now_ms();
        let due_ms = node.next_timeout_ms();
        if due_ms <= now_ms {
            node.tick(now_ms);
            route(&mut node, &mut storage, &mut clients, &mut links, &shared).await;
            shared.set_node_stats(node.stats());
            continue;
        }
        let wait_ms = (due_ms - now_ms).min(IDLE_SLEEP_MS);
        sleep
            .as_mut()
            .reset(Instant::now() + Duration::from_millis(wait_ms));
        let mut took_batch = false;
        tokio::select! {
            biased;
            _ = shutdown.wait_for(|stop| *stop) => break,
            event = events.recv() => {
                let Some(event) = event else { break };
                let now_ms = clock.now_ms();
                handle(&mut node, &mut clients, &mut links, &shared, now_ms, event);
                let batch = pacing.batch(now_ms);
                full_batch = true;
                for _ in 1..batch {
                    let Ok(event) = events.try_recv() else {
                        full_batch = false;
                        break;
                    };
                    // Read the clock per event: a batch of large events can
                    // take longer than the skew bound, and a stale clock
                    // would refuse fresh remote updates as from the future.
                    let now_ms = clock.now_ms();
                    handle(&mut node, &mut clients, &mut links, &shared, now_ms, event);
                }
                took_batch = true;
            }
            () = &mut sleep => {}
        }
        if took_batch {
            // One pass for the whole batch: its changes reach the log with
            // one sync, and its messages leave together.
            route(&mut node, &mut storage, &mut clients, &mut links, &shared).await;
        }
        shared.set_node_stats(node.stats());
        if full_batch {
            // More events wait: let the stream writers and connections send
            // this batch's answers first (see `pacing`).
            full_batch = false;
            tokio::task::yield_now().await;
        }
    }
    tracing::debug!(node = %node.id(), "node task stopped");
}

fn handle(
    node: &mut Node,
    clients: &mut HashMap<ClientId, Replies>,
    links: &mut Links,
    shared: &Shared,
    now_ms: u64,
    event: Event,
) {
    match event {
        Event::Request { client, request } if request.command == Command::ReloadTopology => {
            let old = shared.topology.get();
            let response = super::topology_cell::reload(&shared.topology, node, now_ms, &request);
            if response.result.is_ok() {
                links.readdress(old.as_deref());
            }
            if let Some(replies) = clients.get(&client) {
                let _ = replies.send(response);
            }
        }
        Event::ClientOpened { client, replies } => {
            clients.insert(client, replies);
        }
        Event::ClientClosed { client } => {
            clients.remove(&client);
        }
        Event::Request { client, request } => {
            node.handle(now_ms, Input::Client { client, request })
        }
        Event::Peer { from, msg } => node.handle(now_ms, Input::Peer { from, msg }),
        Event::ReturnPath { from, queue } => links.set_return_path(from, queue),
        Event::PeerLife { from, life } => links.peer_life(from, life),
    }
}

/// Carries out every action the node has queued.
async fn route(
    node: &mut Node,
    storage: &mut Option<Storage>,
    clients: &mut HashMap<ClientId, Replies>,
    links: &mut Links,
    shared: &Shared,
) {
    // Changes go to the log first, synced once for the whole batch; only
    // then do the replies and messages that rely on them leave.
    let mut outgoing = Vec::new();
    let mut persisted = false;
    while let Some(action) = node.poll_action() {
        match action {
            Action::Persist { entry } => {
                if let Some(st) = storage.as_mut() {
                    if let Err(e) = st.append(&entry) {
                        fail_storage(&e);
                    }
                    persisted = true;
                }
            }
            other => outgoing.push(other),
        }
    }
    if persisted {
        if let Some(mut st) = storage.take() {
            let states = st.wants_snapshot().then(|| {
                let mut states = Vec::new();
                node.keyspace().for_each_in_range(0..=u64::MAX, |k, s| {
                    states.push((Bytes::from(k), s.clone()));
                });
                states
            });
            // The sync, and a snapshot, run on a blocking thread: the node
            // task waits for them, but the runtime's thread goes on running
            // the QUIC connections, which keep acknowledging packets, so a
            // slow disk does not make the node look gone to its clients
            // (`ClientOptions::silence_timeout`) and peers.
            let synced = tokio::task::spawn_blocking(move || {
                let done = st.sync().and_then(|()| match states {
                    Some(states) => st.snapshot(states.into_iter()),
                    None => Ok(()),
                });
                (st, done)
            })
            .await;
            match synced {
                Ok((st, Ok(()))) => *storage = Some(st),
                Ok((_, Err(e))) => fail_storage(&e),
                Err(e) => {
                    tracing::error!(error = %e, "the data directory's sync failed; stopping the node");
                    eprintln!("meridian: the data directory's sync failed: {e}");
                    std::process::exit(70)
                }
            }
        }
    }
    // Replicates and acks to the same peer leave as one message each.
    for action in bundle_sends(outgoing) {
        match action {
            Action::Persist { .. } => {}
            Action::Reply { client, response } => {
                let Some(replies) = clients.get(&client) else {
                    tracing::debug!(
                        client,
                        id = response.id,
                        "dropped a reply to a closed stream"
                    );
                    continue;
                };
                match replies.send(response) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Closed(_)) => {
                        clients.remove(&client);
                    }
                    Err(mpsc::error::TrySendError::Full(response)) => {
                        // The stream's in-flight bound makes this impossible.
                        shared.count_reply_dropped();
                        tracing::error!(
                            client,
                            id = response.id,
                            "a client reply queue overflowed"
                        );
                    }
                }
            }
            Action::Send { to, msg } => links.send(to, msg),
        }
    }
}

/// A node that cannot write its log must not acknowledge anything more:
/// it stops loudly (its replicas and hints cover for it) rather than lose
/// acknowledged writes.
fn fail_storage(e: &StorageError) -> ! {
    tracing::error!(error = %e, "cannot write the data directory; stopping the node");
    eprintln!("meridian: cannot write the data directory: {e}");
    std::process::exit(70)
}
