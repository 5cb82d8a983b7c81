//! A socket: one client's membership of one namespace, with its handlers,
//! rooms, pending acks and data.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use foldhash::HashMap;
use parking_lot::Mutex;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use tokio::sync::oneshot;

use super::{BroadcastOperator, Namespace};
use crate::engineio::{CloseReason, Sid};
use crate::socketio::link::Link;
use crate::socketio::packet::{Packet, Payload};

/// Why a socket left its namespace, named as the official server names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DisconnectReason {
    /// The client closed the connection.
    TransportClose,
    /// The connection failed (oversized message, duplicate poll, slow reader).
    TransportError,
    /// The client stopped answering pings.
    PingTimeout,
    /// The client sent something that does not decode.
    ParseError,
    /// The server closed the whole connection.
    ForcedClose,
    /// The server is shutting down.
    ServerShuttingDown,
    /// The server disconnected this socket (`socket.disconnect()`).
    ServerNamespaceDisconnect,
    /// The client left the namespace (`socket.disconnect()` on the client).
    ClientNamespaceDisconnect,
}

impl DisconnectReason {
    /// The reason's name, as Node's socket.io reports it to the server's handlers.
    pub fn as_str(self) -> &'static str {
        match self {
            DisconnectReason::TransportClose => "transport close",
            DisconnectReason::TransportError => "transport error",
            DisconnectReason::PingTimeout => "ping timeout",
            DisconnectReason::ParseError => "parse error",
            DisconnectReason::ForcedClose => "forced close",
            DisconnectReason::ServerShuttingDown => "server shutting down",
            DisconnectReason::ServerNamespaceDisconnect => "server namespace disconnect",
            DisconnectReason::ClientNamespaceDisconnect => "client namespace disconnect",
        }
    }
}

impl From<CloseReason> for DisconnectReason {
    fn from(reason: CloseReason) -> Self {
        match reason {
            CloseReason::TransportClose => DisconnectReason::TransportClose,
            CloseReason::TransportError => DisconnectReason::TransportError,
            CloseReason::PingTimeout => DisconnectReason::PingTimeout,
            CloseReason::ParseError => DisconnectReason::ParseError,
            CloseReason::ForcedClose => DisconnectReason::ForcedClose,
            CloseReason::ServerShuttingDown => DisconnectReason::ServerShuttingDown,
        }
    }
}

/// What the client said when it joined the namespace.
#[derive(Debug, Clone)]
pub struct Handshake {
    /// The `auth` object of the CONNECT packet as the client wrote it; `{}` when none
    /// (or no valid JSON) was sent. Kept as text: a tree of it was most of what an idle
    /// socket held (see [`Handshake::auth`]).
    pub(crate) auth_json: Box<RawValue>,
    /// The query string of the Engine.IO handshake.
    pub query: Arc<[(String, String)]>,
    /// The HTTP headers of the Engine.IO handshake (names lower case).
    pub headers: Arc<[(String, String)]>,
    /// The client's address.
    pub address: SocketAddr,
    /// When the Engine.IO session opened.
    pub time: SystemTime,
    /// The URL of the Engine.IO handshake.
    pub url: String,
}

impl Handshake {
    /// The `auth` object of the CONNECT packet; `{}` when none was sent.
    pub fn auth(&self) -> Value {
        serde_json::from_str(self.auth_json.get()).unwrap_or_else(|_| Value::Object(Map::new()))
    }

    /// The `auth` object of the CONNECT packet, as JSON text.
    pub fn auth_json(&self) -> &str {
        self.auth_json.get()
    }

    /// `auth_json`'s value for `text`, which a client sent: `{}` unless it is JSON.
    pub(crate) fn auth_of(text: Option<String>) -> Box<RawValue> {
        text.and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_else(|| RawValue::from_string("{}".to_owned()).expect("valid JSON"))
    }

    /// When the Engine.IO session opened, in milliseconds since the Unix epoch (Node's
    /// `handshake.issued`).
    pub fn issued_ms(&self) -> u64 {
        self.time
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    /// A header of the handshake, by its lower-case name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Node's `handshake.secure`: the request came over TLS (here: through a proxy that
    /// says so).
    pub fn secure(&self) -> bool {
        self.header("x-forwarded-proto") == Some("https")
    }

    /// Node's `handshake.xdomain`: the request named an origin.
    pub fn xdomain(&self) -> bool {
        self.header("origin").is_some()
    }
}

/// Handles one event: the socket, the arguments, and the ack to answer if the client asked for one.
pub type EventHandler = Arc<dyn Fn(&Arc<Socket>, Payload, Option<AckSender>) + Send + Sync>;
/// Handles every event that has no handler of its own: the event's name comes first.
pub type FallbackHandler =
    Arc<dyn Fn(&Arc<Socket>, String, Payload, Option<AckSender>) + Send + Sync>;
/// Handles the socket's departure.
pub type DisconnectHandler = Arc<dyn Fn(&Arc<Socket>, DisconnectReason) + Send + Sync>;

/// Why an emit with an ack got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AckError {
    /// No answer within the timeout.
    #[error("operation has timed out")]
    Timeout,
    /// The socket disconnected before answering.
    #[error("socket disconnected")]
    Disconnected,
}

/// The way to answer a client's event that asked for an ack; answering consumes it.
pub struct AckSender {
    socket: Arc<Socket>,
    id: u64,
}

impl AckSender {
    /// The ack id the client chose.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Answers with these arguments; does nothing if the socket is gone.
    pub fn send(self, args: Payload) {
        let packet = Packet::Ack {
            nsp: self.socket.nsp.name().to_owned(),
            id: self.id,
            args,
        };
        if self.socket.connected() {
            self.socket.link.load().send(&packet);
        }
    }
}

/// One client in one namespace.
pub struct Socket {
    id: Sid,
    pub(crate) nsp: Arc<Namespace>,
    /// The connection: another one's when connection state recovery gives the socket
    /// to its client's next connection.
    pub(crate) link: ArcSwap<Link>,
    handshake: Handshake,
    /// The private session id its client comes back with, when its namespace recovers
    /// sessions (`pid` in the CONNECT answer).
    pid: OnceLock<String>,
    connected: AtomicBool,
    handlers: Mutex<HashMap<String, EventHandler>>,
    fallback: Mutex<Option<FallbackHandler>>,
    disconnect_handlers: Mutex<Vec<DisconnectHandler>>,
    acks: Mutex<HashMap<u64, oneshot::Sender<Payload>>>,
    rooms: Mutex<std::collections::HashSet<String>>,
    data: Mutex<Value>,
    /// Events that arrived after the CONNECT reply went out but before the connection
    /// handlers had run, in order. Node runs those handlers before it reads the next
    /// packet; here another thread may read it first, and an answer to it must not find
    /// the socket not yet connected.
    early_events: Mutex<EarlyEvents>,
    /// Set (under the lock above, once it is empty) when the handlers have run: from
    /// then on events are delivered at once, without taking the lock.
    events_flow: AtomicBool,
}

/// An event held until the socket's connection handlers have run.
type EarlyEvent = (String, Payload, Option<u64>);

/// The events held for a socket whose connection handlers are running, and their size.
#[derive(Default)]
struct EarlyEvents {
    events: Vec<EarlyEvent>,
    bytes: usize,
}

/// Events, and bytes of them, held for a socket whose connection handlers are running;
/// a client that sends more before its handlers have run is sending faster than it
/// could know it was accepted, and its connection is closed (a full send queue's
/// treatment), rather than its events being held without bound or silently dropped.
const MAX_EARLY_EVENTS: usize = 1024;
const MAX_EARLY_BYTES: usize = 4 << 20;

impl Socket {
    pub(crate) fn new(nsp: Arc<Namespace>, link: Arc<Link>, handshake: Handshake) -> Arc<Socket> {
        Arc::new(Socket {
            id: crate::engineio::new_sid(),
            nsp,
            link: ArcSwap::new(link),
            handshake,
            pid: OnceLock::new(),
            connected: AtomicBool::new(false),
            handlers: Mutex::default(),
            fallback: Mutex::default(),
            disconnect_handlers: Mutex::default(),
            acks: Mutex::default(),
            rooms: Mutex::default(),
            data: Mutex::new(Value::Null),
            early_events: Mutex::default(),
            events_flow: AtomicBool::new(false),
        })
    }

    /// The socket's id, also the name of the room only it is in.
    pub fn id(&self) -> &Sid {
        &self.id
    }

    /// The namespace the socket belongs to.
    pub fn nsp(&self) -> &Arc<Namespace> {
        &self.nsp
    }

    /// What the client sent when it joined.
    pub fn handshake(&self) -> &Handshake {
        &self.handshake
    }

    /// True from acceptance until the socket leaves.
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    /// The transport the connection uses now: `"polling"` or `"websocket"`.
    pub fn transport(&self) -> &'static str {
        self.link.load().transport()
    }

    /// The id of the Engine.IO session the socket's connection is (Node's
    /// `socket.client.id`); empty once the connection is gone.
    pub fn client_id(&self) -> String {
        self.link
            .load()
            .session_id()
            .map(|sid| sid.to_string())
            .unwrap_or_default()
    }

    /// The private session id its client may come back with, if its namespace gave
    /// it one.
    pub(crate) fn pid(&self) -> Option<&str> {
        self.pid.get().map(String::as_str)
    }

    /// Gives the socket a private session id, once.
    pub(crate) fn give_pid(&self) -> &str {
        self.pid
            .get_or_init(|| crate::engineio::new_sid().to_string())
    }

    /// Whether the socket's connection dropped and it waits for its client to come
    /// back (connection state recovery).
    pub fn is_parked(&self) -> bool {
        !self.connected()
            && self
                .pid()
                .is_some_and(|pid| self.nsp.recovery.is_parked(pid))
    }

    /// Per-socket data that middleware can set and handlers read. Default is `null`.
    pub fn data(&self) -> Value {
        self.data.lock().clone()
    }

    /// Replaces the per-socket data.
    pub fn set_data(&self, value: Value) {
        *self.data.lock() = value;
    }

    /// Registers the handler of one event name, replacing any earlier one.
    pub fn on<F>(&self, event: impl Into<String>, handler: F)
    where
        F: Fn(&Arc<Socket>, Payload, Option<AckSender>) + Send + Sync + 'static,
    {
        self.handlers.lock().insert(event.into(), Arc::new(handler));
    }

    /// Registers the handler of every event that [`Socket::on`] did not claim, e.g. to
    /// forward all of a socket's events elsewhere (it is given the name to keep).
    /// Replaces any earlier one.
    pub fn on_fallback<F>(&self, handler: F)
    where
        F: Fn(&Arc<Socket>, String, Payload, Option<AckSender>) + Send + Sync + 'static,
    {
        *self.fallback.lock() = Some(Arc::new(handler));
    }

    /// Registers a handler called once when the socket leaves. A handler registered by
    /// middleware also runs if the client goes away before the socket is accepted.
    pub fn on_disconnect<F>(&self, handler: F)
    where
        F: Fn(&Arc<Socket>, DisconnectReason) + Send + Sync + 'static,
    {
        self.disconnect_handlers.lock().push(Arc::new(handler));
    }

    /// Sends an event to this socket. When its namespace recovers sessions, the event
    /// is logged with an offset, as every event is there, and so reaches the socket's
    /// client even if its connection has just dropped and it comes back.
    pub fn emit(&self, event: impl Into<String>, args: Payload) {
        if self.nsp.recovery.is_on() {
            let _ = self
                .nsp
                .broadcast_op()
                .to(self.id.to_string())
                .local()
                .emit(event, args);
            return;
        }
        let event = event.into();
        if let Some(observer) = self.nsp.observer() {
            observer.event_sent(self.nsp.name(), &self.id, &event, &args);
        }
        self.link.load().send(&Packet::Event {
            nsp: self.nsp.name().to_owned(),
            event,
            args,
            ack: None,
        });
    }

    /// Sends an event to this socket if its connection can send it at once, else drops
    /// it (socket.io's `socket.volatile.emit`).
    pub fn emit_volatile(&self, event: impl Into<String>, args: Payload) {
        let event = event.into();
        if let Some(observer) = self.nsp.observer() {
            observer.event_sent(self.nsp.name(), &self.id, &event, &args);
        }
        self.link.load().send_volatile(&Packet::Event {
            nsp: self.nsp.name().to_owned(),
            event,
            args,
            ack: None,
        });
    }

    /// Sends an event and waits at most `timeout` for the client's answer.
    pub async fn emit_with_ack(
        &self,
        event: impl Into<String>,
        args: Payload,
        timeout: Duration,
    ) -> Result<Payload, AckError> {
        let id = self.nsp.next_ack_id();
        let Some(answer) = self.expect_ack(id) else {
            return Err(AckError::Disconnected);
        };
        let event = event.into();
        if let Some(observer) = self.nsp.observer() {
            observer.event_sent(self.nsp.name(), &self.id, &event, &args);
        }
        self.link.load().send(&Packet::Event {
            nsp: self.nsp.name().to_owned(),
            event,
            args,
            ack: Some(id),
        });
        self.await_ack(id, answer, timeout).await
    }

    /// Waits for the answer to ack `id` from the client (sent with an event before);
    /// its slot goes whatever happens, so no pending ack outlives its answer or its
    /// timeout.
    pub(crate) async fn await_ack(
        &self,
        id: u64,
        answer: oneshot::Receiver<Payload>,
        timeout: Duration,
    ) -> Result<Payload, AckError> {
        let result = tokio::time::timeout(timeout, answer).await;
        self.acks.lock().remove(&id);
        match result {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(_)) => Err(AckError::Disconnected),
            Err(_) => Err(AckError::Timeout),
        }
    }

    /// Makes room for the answer to ack `id` (the namespace's, see
    /// [`Namespace::next_ack_id`]); none when the socket is not connected.
    pub(crate) fn expect_ack(&self, id: u64) -> Option<oneshot::Receiver<Payload>> {
        let (tx, rx) = oneshot::channel();
        match self.acks.lock() {
            mut acks if self.connected() => {
                acks.insert(id, tx);
                Some(rx)
            }
            _ => None,
        }
    }

    /// How many server-to-client acks are waiting for an answer.
    pub fn pending_acks(&self) -> usize {
        self.acks.lock().len()
    }

    /// Joins a room.
    pub fn join(&self, room: impl Into<String>) {
        let room = room.into();
        let added = self.rooms.lock().insert(room.clone());
        if added && self.connected() {
            self.nsp.add_to_room(&room, &self.id);
        }
    }

    /// Leaves a room.
    pub fn leave(&self, room: &str) {
        let removed = self.rooms.lock().remove(room);
        if removed {
            self.nsp.remove_from_room(room, &self.id);
        }
    }

    /// How many rooms the socket is in, its own id's room included.
    pub fn room_count(&self) -> usize {
        self.rooms.lock().len()
    }

    /// Whether the socket is in `room`.
    pub fn in_room(&self, room: &str) -> bool {
        self.rooms.lock().contains(room)
    }

    /// The rooms the socket is in, its own id's room included.
    pub fn rooms(&self) -> Vec<String> {
        self.rooms.lock().iter().cloned().collect()
    }

    /// Targets the sockets in `room`, this one excepted.
    pub fn to(&self, room: impl Into<String>) -> BroadcastOperator {
        self.broadcast().to(room)
    }

    /// Targets every socket of the namespace but this one.
    pub fn broadcast(&self) -> BroadcastOperator {
        self.nsp.broadcast_op().except_socket(self.id.clone())
    }

    /// Disconnects the socket from the server side; the client sees `io server disconnect`.
    /// A socket waiting for its client to come back leaves now.
    pub fn disconnect(self: &Arc<Self>) {
        if !self.connected() {
            let parked = self.pid().and_then(|pid| self.nsp.recovery.unpark(pid));
            if let Some((socket, _)) = parked {
                socket.leave_parked(DisconnectReason::ServerNamespaceDisconnect);
                self.nsp.cleanup_if_empty();
            }
            return;
        }
        self.link.load().send(&Packet::Disconnect {
            nsp: self.nsp.name().to_owned(),
        });
        self.close(DisconnectReason::ServerNamespaceDisconnect);
    }

    /// Disconnects the socket and closes its client's connection, every namespace of it
    /// (Node's `disconnect(true)`).
    pub fn close_connection(self: &Arc<Self>) {
        let link = self.link.load_full();
        self.disconnect();
        link.close(crate::engineio::CloseReason::ForcedClose);
    }

    /// Marks the socket accepted and puts it in its own room.
    pub(crate) fn accept(&self) {
        self.connected.store(true, Ordering::Release);
        self.join(self.id.to_string());
        // Rooms joined by middleware, before acceptance, enter the namespace's index now.
        for room in self.rooms() {
            self.nsp.add_to_room(&room, &self.id);
        }
    }

    /// Delivers an event from the client to its handler; an event nobody handles is dropped
    /// (its ack, if asked for, is never answered), as in Node.
    pub(crate) fn dispatch_event(self: &Arc<Self>, event: String, args: Payload, ack: Option<u64>) {
        if !self.events_flow.load(Ordering::Acquire) {
            let mut held = self.early_events.lock();
            // Checked again under the lock: the flow may have started meanwhile.
            if !self.events_flow.load(Ordering::Acquire) {
                let bytes = held.bytes + event.len() + args.size();
                if held.events.len() < MAX_EARLY_EVENTS && bytes <= MAX_EARLY_BYTES {
                    held.bytes = bytes;
                    held.events.push((event, args, ack));
                } else {
                    drop(held);
                    tracing::debug!(sid = %self.id, "too many events before the socket's handlers ran");
                    self.link.load().close(CloseReason::TransportError);
                }
                return;
            }
        }
        self.deliver_event(event, args, ack);
    }

    /// The connection handlers have run: delivers the events held meanwhile, in order,
    /// and from then on every event as it comes.
    pub(crate) fn release_early_events(self: &Arc<Self>) {
        loop {
            let held = {
                let mut held = self.early_events.lock();
                if held.events.is_empty() {
                    self.events_flow.store(true, Ordering::Release);
                    return;
                }
                std::mem::take(&mut *held).events
            };
            for (event, args, ack) in held {
                self.deliver_event(event, args, ack);
            }
        }
    }

    fn deliver_event(self: &Arc<Self>, event: String, args: Payload, ack: Option<u64>) {
        if let Some(observer) = self.nsp.observer() {
            observer.event_received(self, &event, &args);
        }
        let handler = self.handlers.lock().get(&event).cloned();
        let ack = ack.map(|id| AckSender {
            socket: self.clone(),
            id,
        });
        if let Some(handler) = handler {
            handler(self, args, ack);
        } else {
            // Cloned out first: the fallback may call `on_fallback`, which takes the lock.
            let fallback = self.fallback.lock().clone();
            if let Some(fallback) = fallback {
                fallback(self, event, args, ack);
            }
        }
    }

    /// Delivers the client's answer to a server-to-client ack.
    pub(crate) fn dispatch_ack(&self, id: u64, args: Payload) {
        let waiting = self.acks.lock().remove(&id);
        if let Some(tx) = waiting {
            let _ = tx.send(args);
        }
    }

    /// Runs the disconnect handlers of a socket that passed its middleware but was never
    /// accepted because its connection closed meanwhile.
    pub(crate) fn abandon(self: &Arc<Self>, reason: DisconnectReason) {
        if !self.connected() {
            self.run_disconnect_handlers(reason);
        }
    }

    /// Runs (and forgets) the disconnect handlers.
    fn run_disconnect_handlers(self: &Arc<Self>, reason: DisconnectReason) {
        let handlers: Vec<DisconnectHandler> =
            std::mem::take(&mut *self.disconnect_handlers.lock());
        for handler in handlers {
            handler(self, reason);
        }
    }

    /// Removes the socket from its namespace and rooms and runs its disconnect handlers,
    /// once; or, when its namespace recovers sessions and `reason` is one to recover
    /// from, keeps it (its rooms, data and handlers) for its client to come back to.
    pub(crate) fn close(self: &Arc<Self>, reason: DisconnectReason) {
        if !self.connected.swap(false, Ordering::AcqRel) {
            return;
        }
        self.acks.lock().clear();
        self.nsp.remove_socket(self);
        self.link.load().left(self.nsp.name(), &self.id);
        if let Some(observer) = self.nsp.observer() {
            observer.socket_disconnected(self, reason);
        }
        let parked = self
            .pid()
            .is_some_and(|pid| self.nsp.recovery.park(&self.nsp, self, pid, reason));
        if !parked {
            self.run_disconnect_handlers(reason);
            self.handlers.lock().clear();
            self.fallback.lock().take();
        }
        self.nsp.cleanup_if_empty();
    }

    /// A parked socket whose client did not come back leaves, for the reason its
    /// connection dropped (or because the server disconnected it meanwhile).
    pub(crate) fn leave_parked(self: &Arc<Self>, reason: DisconnectReason) {
        self.run_disconnect_handlers(reason);
        self.handlers.lock().clear();
        self.fallback.lock().take();
    }

    /// The parked socket on its client's new connection, connected again (under the
    /// namespace's log lock: see [`Namespace::restore`]).
    pub(crate) fn relink(&self, link: Arc<Link>) {
        self.link.store(link);
        self.connected.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn handshake(auth: Option<&str>) -> Handshake {
        Handshake {
            auth_json: Handshake::auth_of(auth.map(str::to_owned)),
            query: Arc::new([]),
            headers: Arc::new([]),
            address: SocketAddr::from(([127, 0, 0, 1], 1)),
            time: SystemTime::UNIX_EPOCH,
            url: String::new(),
        }
    }

    #[test]
    fn auth_is_kept_as_the_client_wrote_it_and_is_an_empty_object_unless_json() {
        let sent = handshake(Some(r#" {"z":1,"a":[2.50,"x"]} "#));
        // The client's order and numbers, for a tenant to read; only the outer blanks go.
        assert_eq!(sent.auth_json(), r#"{"z":1,"a":[2.50,"x"]}"#);
        assert_eq!(sent.auth(), json!({"z": 1, "a": [2.5, "x"]}));
        for text in [None, Some(""), Some("{"), Some("{} trailing")] {
            assert_eq!(handshake(text).auth_json(), "{}", "{text:?}");
            assert_eq!(handshake(text).auth(), json!({}), "{text:?}");
        }
    }
}
