//! One Engine.IO session (one `sid`): its outgoing queue, transport state,
//! heartbeat and close.
//!
//! Outgoing packets go through one bounded queue whatever the transport; a
//! long-poll GET or the WebSocket writer holds the queue's receiver while it
//! drains it. Holding the receiver is what makes a second concurrent GET
//! detectable, and what keeps order across an upgrade: the WebSocket writer
//! only starts once the last poll has let go.

use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::task::{Poll, Waker};
use std::time::SystemTime;

use bytes::Bytes;
use foldhash::HashMap;
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::counters::Counters;
use super::packet::Packet;
use crate::config::EngineConfig;

/// A session id, as sent in the handshake.
pub type Sid = Arc<str>;

/// Why a session closed, as Node's engine.io names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseReason {
    /// The client closed the transport or sent a close packet.
    TransportClose,
    /// The transport failed: an oversized message, a duplicate poll, a full send queue.
    TransportError,
    /// No pong came back within `pingTimeout`.
    PingTimeout,
    /// The client sent something that does not decode.
    ParseError,
    /// The server closed the session on purpose.
    ForcedClose,
    /// The server is shutting down.
    ServerShuttingDown,
}

impl CloseReason {
    /// The reason's name as the official server reports it.
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::TransportClose => "transport close",
            CloseReason::TransportError => "transport error",
            CloseReason::PingTimeout => "ping timeout",
            CloseReason::ParseError => "parse error",
            CloseReason::ForcedClose => "forced close",
            CloseReason::ServerShuttingDown => "server shutting down",
        }
    }
}

/// What the HTTP request that opened the session said about the client.
#[derive(Debug, Clone)]
pub struct ConnectInfo {
    /// The query string's pairs, decoded (shared with every socket of the session).
    pub query: Arc<[(String, String)]>,
    /// The request headers (names lower case); values that are not UTF-8 are left out
    /// (shared with every socket of the session).
    pub headers: Arc<[(String, String)]>,
    /// The client's address.
    pub address: SocketAddr,
    /// The request's path and query.
    pub url: String,
    /// When the session was opened.
    pub time: SystemTime,
}

/// The layer above Engine.IO: it is told of each new session and gets its messages.
pub trait EngineHandler: Send + Sync + 'static {
    /// A session opened; the returned connection receives its messages until it closes.
    fn on_open(&self, session: &Arc<Session>) -> Arc<dyn Connection>;
}

/// The receiving end of one session, owned by the layer above.
pub trait Connection: Send + Sync + 'static {
    /// A text message arrived.
    fn on_message(&self, text: &str);
    /// A binary message arrived.
    fn on_binary(&self, data: Bytes);
    /// The session closed; called exactly once, and nothing arrives after it.
    fn on_close(&self, reason: CloseReason);
    /// The session moved to WebSocket (an upgrade completed).
    fn on_upgrade(&self) {}
}

/// The transport a session is using now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    /// HTTP long-polling.
    Polling,
    /// WebSocket.
    WebSocket,
}

const POLLING: u8 = 0;
const UPGRADING: u8 = 1;
const WEBSOCKET: u8 = 2;

/// Why a packet could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The session is closed.
    #[error("session closed")]
    Closed,
    /// The client did not read fast enough (by [`Session::send`], the session is closed).
    #[error("send queue full")]
    Full,
}

/// A session's send queue: its packets in order, and the wake-up of the transport that
/// takes them. It allocates nothing until a packet comes (a tokio channel allocates a
/// block of 32 slots when made: 1.3 KB of every idle connection).
#[derive(Default)]
struct SendQueue {
    packets: Mutex<VecDeque<Packet>>,
    arrived: Notify,
    /// Bytes queued and not yet taken out, about.
    buffered: AtomicUsize,
    /// Set while a transport waits in [`Outbox::recv`] (see [`Session::is_writable`]).
    waiting: AtomicBool,
}

impl SendQueue {
    /// Queues `packet` behind fewer than `limit` others; false if `limit` are queued.
    fn push_within(&self, packet: Packet, limit: usize) -> bool {
        let mut packets = self.packets.lock();
        if packets.len() >= limit {
            return false;
        }
        packets.push_back(packet);
        drop(packets);
        self.arrived.notify_one();
        true
    }

    fn pop(&self) -> Option<Packet> {
        let mut packets = self.packets.lock();
        let packet = packets.pop_front();
        if packets.is_empty() && packets.capacity() > IDLE_QUEUE_CAPACITY {
            // A burst is over: an idle connection keeps a small queue.
            packets.shrink_to(IDLE_QUEUE_CAPACITY);
        }
        packet
    }
}

/// The slots an empty send queue keeps from its last burst.
const IDLE_QUEUE_CAPACITY: usize = 8;

/// The receiving end of a session's send queue, held by the transport that drains it;
/// what it takes out no longer counts toward the session's buffered bytes.
pub(crate) struct Outbox {
    queue: Arc<SendQueue>,
}

/// Marks a transport waiting for packets, until it has one (or stops waiting).
struct Waiting<'a>(&'a AtomicBool);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl Outbox {
    /// The next packet, waiting for one.
    pub(crate) async fn recv(&mut self) -> Packet {
        let queue = &self.queue;
        queue.waiting.store(true, Ordering::Release);
        let waiting = Waiting(&queue.waiting);
        let packet = loop {
            if let Some(packet) = queue.pop() {
                break packet;
            }
            // One taker at a time (the outbox is behind a lock): a packet pushed between
            // the check and the wait leaves a permit, so none is missed.
            queue.arrived.notified().await;
        };
        drop(waiting);
        self.taken(&packet);
        packet
    }

    /// The next packet if one is queued.
    pub(crate) fn try_recv(&mut self) -> Option<Packet> {
        let packet = self.queue.pop()?;
        self.taken(&packet);
        Some(packet)
    }

    fn taken(&self, packet: &Packet) {
        self.queue
            .buffered
            .fetch_sub(packet.size_hint(), Ordering::AcqRel);
    }
}

/// See [`Session::websocket_opened`].
pub(crate) struct UnprobedWebSocket(Arc<Session>);

impl Drop for UnprobedWebSocket {
    fn drop(&mut self) {
        self.0.unprobed_websockets.fetch_sub(1, Ordering::AcqRel);
        // A poll waiting for the probe goes on either way.
        self.0.upgrade_started.notify_waiters();
    }
}

/// The live sessions of one endpoint, by id.
pub(crate) type Registry = Mutex<HashMap<Sid, Arc<Session>>>;

/// One Engine.IO session.
pub struct Session {
    /// The session id.
    pub id: Sid,
    /// What the opening request said.
    pub info: ConnectInfo,
    pub(crate) config: Arc<EngineConfig>,
    queue: Arc<SendQueue>,
    pub(crate) rx: tokio::sync::Mutex<Outbox>,
    /// A packet many sessions got at once (a broadcast) is queued: more may follow.
    broadcast_queued: AtomicBool,
    transport: AtomicU8,
    closing: AtomicBool,
    closed: CancellationToken,
    /// Mirrors `closed`, set just before it is cancelled.
    is_closed: AtomicBool,
    pong: Notify,
    /// Wakes the pending long-poll when an upgrade starts, so the client can pause polling.
    upgrade_started: Notify,
    /// Wakes a long-poll waiting for an upgrade in progress to finish or fail.
    upgrade_settled: Notify,
    /// WebSockets opened for this session that have not yet sent their probe.
    unprobed_websockets: AtomicUsize,
    connection: OnceLock<Arc<dyn Connection>>,
    registry: Weak<Registry>,
    /// The endpoint's counters (clients closed for being too slow, traffic).
    counters: Arc<Counters>,
}

impl Session {
    pub(crate) fn new(
        id: Sid,
        info: ConnectInfo,
        config: Arc<EngineConfig>,
        transport: TransportKind,
        registry: Weak<Registry>,
        counters: Arc<Counters>,
    ) -> Arc<Session> {
        let queue = Arc::new(SendQueue::default());
        let rx = Outbox {
            queue: queue.clone(),
        };
        Arc::new(Session {
            id,
            info,
            config,
            queue,
            rx: tokio::sync::Mutex::new(rx),
            broadcast_queued: AtomicBool::new(false),
            transport: AtomicU8::new(match transport {
                TransportKind::Polling => POLLING,
                TransportKind::WebSocket => WEBSOCKET,
            }),
            closing: AtomicBool::new(false),
            closed: CancellationToken::new(),
            is_closed: AtomicBool::new(false),
            pong: Notify::new(),
            upgrade_started: Notify::new(),
            upgrade_settled: Notify::new(),
            unprobed_websockets: AtomicUsize::new(0),
            connection: OnceLock::new(),
            registry,
            counters,
        })
    }

    /// The open packet's JSON for this session, byte for byte as Node's engine.io writes
    /// it (its keys in that order), without building a JSON value (a twentieth of the
    /// instructions). The sid is URL-safe base64 and the upgrades are transport names:
    /// nothing to escape.
    pub(crate) fn handshake_json(&self, upgrades: &[&str]) -> String {
        let mut json = String::with_capacity(128);
        let mut digits = itoa::Buffer::new();
        json.push_str(r#"{"sid":""#);
        json.push_str(&self.id);
        json.push_str(r#"","upgrades":["#);
        for (i, upgrade) in upgrades.iter().enumerate() {
            if i > 0 {
                json.push(',');
            }
            json.push('"');
            json.push_str(upgrade);
            json.push('"');
        }
        json.push_str(r#"],"pingInterval":"#);
        json.push_str(digits.format(self.config.ping_interval.as_millis()));
        json.push_str(r#","pingTimeout":"#);
        json.push_str(digits.format(self.config.ping_timeout.as_millis()));
        json.push_str(r#","maxPayload":"#);
        json.push_str(digits.format(self.config.max_payload));
        json.push('}');
        json
    }

    pub(crate) fn attach(&self, connection: Arc<dyn Connection>) {
        // Set once, right after creation; a second call cannot happen.
        let _ = self.connection.set(connection);
    }

    /// The transport in use; a session that is upgrading still counts as polling.
    pub fn transport(&self) -> TransportKind {
        match self.transport.load(Ordering::Acquire) {
            WEBSOCKET => TransportKind::WebSocket,
            _ => TransportKind::Polling,
        }
    }

    pub(crate) fn is_upgrading(&self) -> bool {
        self.transport.load(Ordering::Acquire) == UPGRADING
    }

    /// Marks the start of an upgrade; false if one is already under way or done. The
    /// polls waiting on it are told by [`Session::announce_upgrade`].
    pub(crate) fn begin_upgrade(&self) -> bool {
        self.transport
            .compare_exchange(POLLING, UPGRADING, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Tells the polls waiting on an upgrade that it started (or finished): a pending
    /// long-poll is released (with a noop, as Node writes one only to a writable polling
    /// transport: queued, it would reach the client over the WebSocket, where Node sends
    /// none).
    pub(crate) fn announce_upgrade(&self) {
        self.upgrade_started.notify_waiters();
    }

    /// Resolves when an upgrade starts; made (and enabled) before checking
    /// [`Session::is_upgrading`], so that a start in between is not missed.
    pub(crate) fn upgrade_started(&self) -> tokio::sync::futures::Notified<'_> {
        self.upgrade_started.notified()
    }

    /// Resolves when an upgrade under way finishes or fails; see [`Session::upgrade_started`].
    pub(crate) fn upgrade_settled(&self) -> tokio::sync::futures::Notified<'_> {
        self.upgrade_settled.notified()
    }

    /// Counts a WebSocket opened to upgrade this session until the guard is dropped
    /// (when it has probed, or failed): a poll arriving meanwhile waits for the probe.
    pub(crate) fn websocket_opened(self: &Arc<Self>) -> UnprobedWebSocket {
        self.unprobed_websockets.fetch_add(1, Ordering::AcqRel);
        UnprobedWebSocket(self.clone())
    }

    /// True while a WebSocket opened to upgrade this session has not yet probed.
    pub(crate) fn has_unprobed_websocket(&self) -> bool {
        self.unprobed_websockets.load(Ordering::Acquire) > 0
    }

    pub(crate) fn finish_upgrade(&self) {
        self.transport.store(WEBSOCKET, Ordering::Release);
        self.upgrade_settled.notify_waiters();
        if let Some(connection) = self.connection.get() {
            connection.on_upgrade();
        }
    }

    pub(crate) fn abort_upgrade(&self) {
        let _ = self.transport.compare_exchange(
            UPGRADING,
            POLLING,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        self.upgrade_settled.notify_waiters();
    }

    /// Queues a packet for the client. A client that lets more than
    /// `max_buffered_packets` packets or `max_buffered_bytes` bytes wait is too slow:
    /// its session is closed (`transport error`) rather than held without bound.
    pub fn send(&self, packet: Packet) -> Result<(), SendError> {
        let sent = self.offer(packet);
        if sent == Err(SendError::Full) {
            self.close_slow();
        }
        sent
    }

    /// Closes a session whose client did not read fast enough.
    pub fn close_slow(&self) {
        tracing::warn!(sid = %self.id, "send queue full, closing the session");
        self.counters.slow_closed.fetch_add(1, Ordering::Relaxed);
        self.close(CloseReason::TransportError);
    }

    /// Says that the packet just queued is one many sessions got at once (a broadcast):
    /// the WebSocket writer may wait turns of its thread for the next ones, to send them
    /// in one write (a thousand recipients, a thousand writes saved per broadcast).
    pub fn mark_broadcast(&self) {
        self.broadcast_queued.store(true, Ordering::Relaxed);
    }

    /// The endpoint's counters.
    pub(crate) fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Whether a broadcast was queued since this was last asked.
    pub(crate) fn take_broadcast_queued(&self) -> bool {
        // Read first: most wake-ups of a writer carry no broadcast, and a read leaves
        // the line shared with the senders.
        self.broadcast_queued.load(Ordering::Relaxed)
            && self.broadcast_queued.swap(false, Ordering::Relaxed)
    }

    /// [`Session::send`], but a full queue leaves the session open, for the caller to
    /// close once it holds no lock that closing (which runs the sockets' departures)
    /// would take again.
    pub fn offer(&self, packet: Packet) -> Result<(), SendError> {
        if self.is_closed() {
            return Err(SendError::Closed);
        }
        let size = packet.size_hint();
        let measured = self.counters.measure(&packet);
        let queue = &self.queue;
        let buffered = queue.buffered.fetch_add(size, Ordering::AcqRel) + size;
        if buffered > self.config.max_buffered_bytes
            || !queue.push_within(packet, self.config.max_buffered_packets.max(1))
        {
            queue.buffered.fetch_sub(size, Ordering::AcqRel);
            tracing::debug!(sid = %self.id, buffered, "send queue full");
            return Err(SendError::Full);
        }
        self.counters.sent(measured);
        Ok(())
    }

    /// Whether a packet sent now would go out at once: a transport waits for packets
    /// (a pending long-poll, or an idle WebSocket) and none is queued ahead of it.
    /// socket.io's `volatile` packets are sent only then, and dropped otherwise.
    pub fn is_writable(&self) -> bool {
        // Nothing is queued exactly when no bytes are (a packet counts at least one). The
        // bytes are counted down after the waiting flag is lowered, so a packet that a
        // transport has just taken still counts as ahead until it is on its way.
        !self.is_closed()
            && self.queue.waiting.load(Ordering::Acquire)
            && self.queue.buffered.load(Ordering::Acquire) == 0
    }

    /// True once the session has closed.
    pub fn is_closed(&self) -> bool {
        // An atomic read: the token's own check takes a lock, and this runs per packet.
        self.is_closed.load(Ordering::Acquire)
    }

    /// Resolves when the session closes. A WebSocket's task polls this each time it
    /// wakes (for every packet each way), so after the first poll it reads the atomic
    /// flag instead of the token (whose check takes a lock); the token wakes the waker
    /// registered then, polled again only if the waker changes.
    pub fn closed(&self) -> impl Future<Output = ()> + Send + '_ {
        let mut token = Box::pin(self.closed.cancelled());
        let mut registered: Option<Waker> = None;
        std::future::poll_fn(move |cx| {
            if self.is_closed() {
                return Poll::Ready(());
            }
            if registered.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                return Poll::Pending;
            }
            registered = Some(cx.waker().clone());
            token.as_mut().poll(cx)
        })
    }

    /// Closes the session; the first call wins, later ones do nothing.
    pub fn close(&self, reason: CloseReason) {
        if self.closing.swap(true, Ordering::AcqRel) {
            return;
        }
        tracing::debug!(sid = %self.id, reason = reason.as_str(), "session closed");
        self.counters.closed(reason);
        if self.transport() == TransportKind::Polling {
            // A pending poll gets a noop when the client asked to close, the close packet otherwise.
            let last = match reason {
                CloseReason::TransportClose => Packet::Noop,
                _ => Packet::Close,
            };
            // Counted like any packet (the outbox takes it off), but past every bound.
            self.queue
                .buffered
                .fetch_add(last.size_hint(), Ordering::AcqRel);
            self.queue.push_within(last, usize::MAX);
        }
        self.is_closed.store(true, Ordering::Release);
        self.closed.cancel();
        if let Some(registry) = self.registry.upgrade() {
            registry.lock().remove(&self.id);
        }
        if let Some(connection) = self.connection.get() {
            connection.on_close(reason);
        }
    }

    /// Handles one text message from the client, read in place (the WebSocket's
    /// messages are, without a copy into a packet of their own).
    pub(crate) fn receive_message(&self, text: &str) {
        if self.is_closed() {
            return;
        }
        self.counters
            .received_message(u64::try_from(text.len()).unwrap_or(u64::MAX));
        if let Some(connection) = self.connection.get() {
            connection.on_message(text);
        }
    }

    /// Handles one packet from the client, whatever the transport.
    pub(crate) fn receive(&self, packet: Packet) {
        if let Packet::Message(text) = &packet {
            return self.receive_message(text);
        }
        if self.is_closed() {
            return;
        }
        self.counters.received(&packet);
        match packet {
            // Read by `receive_message`, above.
            Packet::Message(_) => {}
            Packet::Binary(data) => {
                if let Some(connection) = self.connection.get() {
                    connection.on_binary(data);
                }
            }
            Packet::Pong => self.pong.notify_one(),
            Packet::Ping => {
                let _ = self.send(Packet::Pong);
            }
            Packet::Close => self.close(CloseReason::TransportClose),
            // Upgrade packets outside an upgrade and noops carry nothing.
            Packet::Noop | Packet::Upgrade | Packet::PingProbe | Packet::PongProbe => {}
            // Packets only a server sends.
            Packet::Open(_) | Packet::Encoded(_) => self.close(CloseReason::ParseError),
        }
    }

    /// Pings every `pingInterval` and closes the session when a pong is late. It does not
    /// watch for the session's end: whoever runs it drops it then.
    pub(crate) async fn heartbeat(&self) {
        let interval = self.config.ping_interval;
        let timeout = self.config.ping_timeout;
        // One timer, set again for each wait, rather than a new one each time.
        let timer = tokio::time::sleep(interval);
        tokio::pin!(timer);
        loop {
            (&mut timer).await;
            let pong = self.pong.notified();
            tokio::pin!(pong);
            pong.as_mut().enable();
            if self.send(Packet::Ping).is_err() {
                return;
            }
            timer.as_mut().reset(tokio::time::Instant::now() + timeout);
            tokio::select! {
                _ = pong => {}
                _ = &mut timer => {
                    self.close(CloseReason::PingTimeout);
                    return;
                }
            }
            timer.as_mut().reset(tokio::time::Instant::now() + interval);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::Duration;

    use super::*;

    fn session() -> Arc<Session> {
        session_on(TransportKind::WebSocket)
    }

    /// A session on `transport`, registered nowhere.
    pub(crate) fn session_on(transport: TransportKind) -> Arc<Session> {
        session_with(Arc::default(), transport)
    }

    /// A session with `config` on `transport`, registered nowhere.
    pub(crate) fn session_with(
        config: Arc<EngineConfig>,
        transport: TransportKind,
    ) -> Arc<Session> {
        let info = ConnectInfo {
            query: Vec::new().into(),
            headers: Vec::new().into(),
            address: SocketAddr::from(([127, 0, 0, 1], 1)),
            url: "/".into(),
            time: SystemTime::now(),
        };
        Session::new(
            super::super::new_sid(),
            info,
            config,
            transport,
            Weak::new(),
            Arc::default(),
        )
    }

    #[tokio::test]
    async fn the_open_packet_is_nodes_byte_for_byte() {
        let config = EngineConfig {
            ping_interval: Duration::from_millis(25_000),
            ping_timeout: Duration::from_millis(20_000),
            max_payload: 1_000_000,
            ..EngineConfig::default()
        };
        let session = session_with(Arc::new(config), TransportKind::Polling);
        let sid = &*session.id;
        // What Node's engine.io 6 sends, its keys in its order (JSON.stringify of them).
        assert_eq!(
            session.handshake_json(&["websocket"]),
            format!(
                r#"{{"sid":"{sid}","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}}"#
            )
        );
        assert_eq!(
            session.handshake_json(&[]),
            format!(
                r#"{{"sid":"{sid}","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}}"#
            )
        );
    }

    #[tokio::test]
    async fn a_queued_broadcast_is_told_once_to_the_writer() {
        let session = session();
        session.offer(Packet::Noop).expect("queued");
        assert!(!session.take_broadcast_queued(), "not a broadcast");
        session.offer(Packet::Noop).expect("queued");
        session.mark_broadcast();
        assert!(session.take_broadcast_queued());
        assert!(!session.take_broadcast_queued(), "told once");
    }

    #[tokio::test]
    async fn closed_resolves_when_the_session_closes_however_often_it_was_polled() {
        let session = session();
        let closed = session.closed();
        tokio::pin!(closed);
        // Polled many times while open (only the first registers with the token)...
        for _ in 0..3 {
            let pending = tokio::time::timeout(Duration::from_millis(5), &mut closed).await;
            assert!(pending.is_err(), "still open");
        }
        // ...it wakes and resolves when another task closes the session.
        let closer = session.clone();
        tokio::spawn(async move { closer.close(CloseReason::ForcedClose) });
        tokio::time::timeout(Duration::from_secs(5), &mut closed)
            .await
            .expect("resolved after the close");
        // And a future made after the close resolves at once.
        tokio::time::timeout(Duration::from_millis(100), session.closed())
            .await
            .expect("already closed");
    }

    #[tokio::test]
    async fn the_queue_wakes_a_waiting_transport_in_order_and_holds_max_buffered_packets() {
        let config = EngineConfig {
            max_buffered_packets: 3,
            ..EngineConfig::default()
        };
        let session = session_with(Arc::new(config), TransportKind::WebSocket);
        let transport = tokio::spawn({
            let session = session.clone();
            async move {
                let mut outbox = session.rx.lock().await;
                [outbox.recv().await, outbox.recv().await]
            }
        });
        let mut waits = 0;
        while !session.is_writable() && waits < 1000 {
            tokio::task::yield_now().await;
            waits += 1;
        }
        assert!(session.is_writable(), "the transport waits, nothing queued");
        assert_eq!(session.offer(Packet::Message("a".into())), Ok(()));
        assert_eq!(session.offer(Packet::Message("b".into())), Ok(()));
        let taken = transport.await.expect("the transport took two");
        assert_eq!(
            taken,
            [Packet::Message("a".into()), Packet::Message("b".into())]
        );
        for _ in 0..3 {
            assert_eq!(session.offer(Packet::Noop), Ok(()));
        }
        assert!(!session.is_writable(), "packets wait");
        assert_eq!(session.offer(Packet::Noop), Err(SendError::Full));
    }

    #[tokio::test]
    async fn a_client_that_lets_more_than_max_buffered_bytes_wait_is_closed() {
        let config = EngineConfig {
            max_buffered_bytes: 1000,
            ..EngineConfig::default()
        };
        let session = session_with(Arc::new(config), TransportKind::WebSocket);
        let message = || Packet::Message("m".repeat(599));
        // What the transport takes out no longer counts: 600 bytes at a time fit for ever.
        for _ in 0..5 {
            assert_eq!(session.send(message()), Ok(()));
            let taken = session.rx.lock().await.try_recv();
            assert!(matches!(taken, Some(Packet::Message(_))));
        }
        // Two waiting at once do not.
        assert_eq!(session.send(message()), Ok(()));
        assert_eq!(session.send(message()), Err(SendError::Full));
        assert!(session.is_closed());
        assert_eq!(session.send(message()), Err(SendError::Closed));
    }
}
