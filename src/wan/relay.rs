//! One UDP relay: forwards datagrams to one destination after the link's
//! delay, drops them at the link's loss rate or while the link is cut.
//!
//! Jitter varies the delay but never reorders a direction's datagrams: a
//! datagram leaves no earlier than the one before it, as through a real
//! link's queue. (Independent per-datagram delays would reorder datagrams
//! sent less than the jitter apart, which QUIC reads as loss: it
//! retransmits and shrinks its congestion window, adding stalls of seconds
//! that no real path of that jitter has.)

use super::{SharedPartitions, WanError};
use crate::topology::Link;
use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

/// Datagrams waiting for their delay, per relay; past it new ones are dropped.
const QUEUED_MAX: usize = 65_536;
/// Distinct senders a relay serves; past it the oldest mapping is replaced.
const SENDERS_MAX: usize = 1_024;
/// Largest datagram relayed.
const DATAGRAM_BYTES_MAX: usize = 65_535;
/// Bytes asked of the kernel for each relay socket's buffers. The default
/// (about 208 KB) drops bursts when the relay task waits for the CPU, and
/// the emulator must lose only what its link says.
const SOCKET_BUFFER_BYTES: usize = 4 << 20;

/// A UDP socket on an ephemeral loopback port with large buffers.
fn bind_loopback() -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    // The kernel caps these at its own maximum; smaller buffers still work.
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER_BYTES);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER_BYTES);
    socket.set_nonblocking(true)?;
    let any_port: std::net::SocketAddr = ([127, 0, 0, 1], 0).into();
    socket.bind(&any_port.into())?;
    UdpSocket::from_std(socket.into())
}

/// Counters of one relay.
#[derive(Debug, Default)]
pub struct RelayStats {
    /// Datagrams forwarded (both directions).
    pub forwarded: AtomicU64,
    /// Datagrams dropped by emulated loss.
    pub lost: AtomicU64,
    /// Datagrams dropped because the link was cut.
    pub cut: AtomicU64,
    /// Datagrams dropped because the delay queue was full.
    pub overflow: AtomicU64,
}

/// A running relay; its tasks stop when it is dropped.
pub struct Relay {
    local: SocketAddr,
    stats: Arc<RelayStats>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

struct Shaping {
    src_region: String,
    dst_region: String,
    link: Link,
    partitions: SharedPartitions,
    stats: Arc<RelayStats>,
    rng: std::sync::Mutex<u64>,
}

impl Shaping {
    fn random(&self) -> u64 {
        let mut s = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        *s
    }

    /// The one-way delay for the next datagram, or `None` to drop it.
    fn delay_ms(&self) -> Option<u64> {
        let cut = self
            .partitions
            .read()
            .map(|p| p.is_cut(&self.src_region, &self.dst_region))
            .unwrap_or(false);
        if cut {
            self.stats.cut.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        if self.link.loss > 0.0 && (self.random() % 1_000_000) as f64 / 1e6 < self.link.loss {
            self.stats.lost.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let one_way = u64::from(self.link.rtt_ms) / 2;
        let jitter = u64::from(self.link.jitter_ms);
        if jitter == 0 {
            return Some(one_way);
        }
        let offset = self.random() % (2 * jitter + 1);
        Some((one_way + offset).saturating_sub(jitter))
    }
}

/// A datagram due at `due` to `to` through `via`.
struct Due {
    due: Instant,
    seq: u64,
    bytes: Vec<u8>,
    via: Arc<UdpSocket>,
    to: SocketAddr,
}

impl PartialEq for Due {
    fn eq(&self, o: &Self) -> bool {
        (self.due, self.seq) == (o.due, o.seq)
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Due {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        // Reversed: the heap pops the earliest first.
        (o.due, o.seq).cmp(&(self.due, self.seq))
    }
}

impl Relay {
    /// Starts a relay from `src_region` to the node at `target` in `dst_region`.
    pub async fn start(
        src_region: String,
        dst_region: String,
        target: SocketAddr,
        link: Link,
        partitions: SharedPartitions,
    ) -> Result<Relay, WanError> {
        let listen = Arc::new(bind_loopback().map_err(WanError::Bind)?);
        let local = listen.local_addr().map_err(WanError::Bind)?;
        let stats = Arc::new(RelayStats::default());
        let seed = u64::from(local.port()).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let shaping = Arc::new(Shaping {
            src_region,
            dst_region,
            link,
            partitions,
            stats: stats.clone(),
            rng: std::sync::Mutex::new(seed),
        });
        let (tx, rx) = mpsc::channel::<Due>(QUEUED_MAX);
        let tasks = vec![
            tokio::spawn(deliver(rx, stats.clone())),
            tokio::spawn(forward_from_senders(listen, target, shaping, tx)),
        ];
        Ok(Relay {
            local,
            stats,
            tasks,
        })
    }

    /// The address nodes dial.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The relay's counters.
    pub fn stats(&self) -> &RelayStats {
        &self.stats
    }
}

/// Sends each datagram when its delay has passed.
async fn deliver(mut rx: mpsc::Receiver<Due>, stats: Arc<RelayStats>) {
    let mut heap: BinaryHeap<Due> = BinaryHeap::new();
    loop {
        let next = heap.peek().map(|d| d.due);
        tokio::select! {
            item = rx.recv() => match item {
                Some(d) => heap.push(d),
                None => return,
            },
            _ = async { if let Some(t) = next { tokio::time::sleep_until(t).await } else { std::future::pending().await } } => {
                let now = Instant::now();
                while heap.peek().is_some_and(|d| d.due <= now) {
                    if let Some(d) = heap.pop() {
                        if d.via.send_to(&d.bytes, d.to).await.is_ok() {
                            stats.forwarded.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
        }
    }
}

/// Queues a datagram for delivery after the link's delay, and no earlier
/// than the previous datagram of its direction (`last_due`).
fn schedule(
    shaping: &Shaping,
    tx: &mpsc::Sender<Due>,
    seq: &AtomicU64,
    last_due: &mut Instant,
    datagram: (&[u8], &Arc<UdpSocket>, SocketAddr),
) {
    let (bytes, via, to) = datagram;
    let Some(ms) = shaping.delay_ms() else { return };
    let due = (Instant::now() + std::time::Duration::from_millis(ms)).max(*last_due);
    *last_due = due;
    let d = Due {
        due,
        seq: seq.fetch_add(1, Ordering::Relaxed),
        bytes: bytes.to_vec(),
        via: via.clone(),
        to,
    };
    if tx.try_send(d).is_err() {
        shaping.stats.overflow.fetch_add(1, Ordering::Relaxed);
    }
}

/// Reads datagrams from senders; each sender gets its own upstream socket,
/// whose replies are relayed back to it. The tasks relaying replies belong
/// to this one: they stop with it, or when their sender is forgotten.
async fn forward_from_senders(
    listen: Arc<UdpSocket>,
    target: SocketAddr,
    shaping: Arc<Shaping>,
    tx: mpsc::Sender<Due>,
) {
    let seq = Arc::new(AtomicU64::new(0));
    let mut upstreams: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
    let mut replies: JoinSet<()> = JoinSet::new();
    let mut buf = vec![0u8; DATAGRAM_BYTES_MAX];
    // One queue towards the target for every sender, like a link's.
    let mut last_due = Instant::now();
    loop {
        let Ok((n, from)) = listen.recv_from(&mut buf).await else {
            continue;
        };
        let upstream = match upstreams.get(&from) {
            Some(u) => u.clone(),
            None => {
                let Ok(sock) = bind_loopback() else {
                    continue;
                };
                let sock = Arc::new(sock);
                if upstreams.len() >= SENDERS_MAX {
                    upstreams.clear();
                    // Dropping the set stops the forgotten senders' tasks.
                    replies = JoinSet::new();
                }
                upstreams.insert(from, sock.clone());
                // Replies from the target go back to this sender.
                let (back, listen2, shaping2, tx2, seq2) = (
                    sock.clone(),
                    listen.clone(),
                    shaping.clone(),
                    tx.clone(),
                    seq.clone(),
                );
                replies.spawn(async move {
                    let mut buf = vec![0u8; DATAGRAM_BYTES_MAX];
                    let mut last_due = Instant::now();
                    while let Ok((n, _)) = back.recv_from(&mut buf).await {
                        let datagram = (&buf[..n], &listen2, from);
                        schedule(&shaping2, &tx2, &seq2, &mut last_due, datagram);
                    }
                });
                sock
            }
        };
        let datagram = (&buf[..n], &upstream, target);
        schedule(&shaping, &tx, &seq, &mut last_due, datagram);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wan::PartitionState;
    use std::sync::RwLock;
    use std::time::Duration;

    async fn echo_server() -> SocketAddr {
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = sock.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            while let Ok((n, from)) = sock.recv_from(&mut buf).await {
                let _ = sock.send_to(&buf[..n], from).await;
            }
        });
        addr
    }

    fn link(rtt_ms: u32, loss: f64) -> Link {
        Link {
            regions: ["a".into(), "b".into()],
            rtt_ms,
            jitter_ms: 0,
            loss,
        }
    }

    #[tokio::test]
    async fn relay_adds_the_round_trip_time_and_obeys_partitions() {
        let target = echo_server().await;
        let parts: SharedPartitions = Arc::new(RwLock::new(PartitionState::default()));
        let relay = Relay::start("a".into(), "b".into(), target, link(80, 0.0), parts.clone())
            .await
            .unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut buf = [0u8; 64];
        let start = Instant::now();
        client.send_to(b"ping", relay.local_addr()).await.unwrap();
        let (n, _) = tokio::time::timeout(Duration::from_secs(2), client.recv_from(&mut buf))
            .await
            .unwrap()
            .unwrap();
        let rtt = start.elapsed();
        assert_eq!(&buf[..n], b"ping");
        assert!(rtt >= Duration::from_millis(80), "round trip took {rtt:?}");
        assert!(rtt < Duration::from_millis(400), "round trip took {rtt:?}");

        parts.write().unwrap().isolated.insert("b".into());
        client.send_to(b"lost", relay.local_addr()).await.unwrap();
        assert!(
            tokio::time::timeout(Duration::from_millis(300), client.recv_from(&mut buf))
                .await
                .is_err()
        );
        assert!(relay.stats().cut.load(Ordering::Relaxed) >= 1);

        *parts.write().unwrap() = PartitionState::default();
        client.send_to(b"back", relay.local_addr()).await.unwrap();
        let (n, _) = tokio::time::timeout(Duration::from_secs(2), client.recv_from(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&buf[..n], b"back");
    }

    #[tokio::test]
    async fn jitter_delays_datagrams_without_reordering_them() {
        let target = echo_server().await;
        let parts: SharedPartitions = Arc::new(RwLock::new(PartitionState::default()));
        let mut jittery = link(20, 0.0);
        jittery.jitter_ms = 8;
        let relay = Relay::start("a".into(), "b".into(), target, jittery, parts)
            .await
            .unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        for i in 0u32..200 {
            client
                .send_to(&i.to_be_bytes(), relay.local_addr())
                .await
                .unwrap();
        }
        let mut buf = [0u8; 16];
        let mut received = Vec::new();
        while received.len() < 200 {
            let (n, _) = tokio::time::timeout(Duration::from_secs(2), client.recv_from(&mut buf))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(n, 4);
            received.push(u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]));
        }
        assert_eq!(received, (0..200).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn relay_drops_about_the_configured_fraction() {
        let target = echo_server().await;
        let parts: SharedPartitions = Arc::new(RwLock::new(PartitionState::default()));
        let relay = Relay::start("a".into(), "b".into(), target, link(0, 0.5), parts)
            .await
            .unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        for _ in 0..400 {
            client.send_to(b"x", relay.local_addr()).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let lost = relay.stats().lost.load(Ordering::Relaxed);
        // Each way loses half: of 400 sent, about 200 are lost on the way out
        // and about half of the echoes on the way back.
        assert!((200..=400).contains(&lost), "lost {lost}");
    }
}
