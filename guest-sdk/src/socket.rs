//! What a handler holds: the socket, the namespace, broadcasts and acks.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::args::{Args, IntoArgs};
use crate::bindings::nsbox::tenant::types::{AckFailure as WitAckFailure, Args as WitArgs, Target};
use crate::bindings::nsbox::tenant::{host, sockets};

/// One client in the tenant's namespace. Cheap to clone; valid until the socket leaves,
/// after which every operation on it does nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Socket {
    pub(crate) handle: u64,
}

/// What the SDK keeps about each socket the middleware let in.
struct SocketState {
    /// Shared with the middleware that reads it as the socket joins.
    handshake: Rc<Handshake>,
    data: Map<String, Value>,
}

/// What to call with the answer to an `emit_with_ack`.
type ReplyHandler = Box<dyn FnOnce(Result<Args, AckFailure>)>;

/// What to call with the answers to a broadcast with acks.
type BroadcastReply = Box<dyn FnOnce(Args, bool)>;

/// Hears every event the tenant sends one socket: the socket, the event and its arguments.
pub(crate) type OutgoingListener = Rc<dyn Fn(&Socket, &str, &Args)>;

thread_local! {
    static SOCKETS: RefCell<HashMap<u64, SocketState>> = RefCell::new(HashMap::new());
    static OUTGOING: RefCell<Vec<OutgoingListener>> = const { RefCell::new(Vec::new()) };
    static REPLIES: RefCell<HashMap<u64, ReplyHandler>> = RefCell::new(HashMap::new());
    static BROADCASTS: RefCell<HashMap<u64, BroadcastReply>> = RefCell::new(HashMap::new());
}

/// A socket asks to join: its state is kept from now until it leaves or is refused.
pub(crate) fn track(handle: u64, handshake: Rc<Handshake>) {
    let state = SocketState {
        handshake,
        data: Map::new(),
    };
    SOCKETS.with(|sockets| sockets.borrow_mut().insert(handle, state));
}

/// A socket left or was refused: its state goes.
pub(crate) fn forget(handle: u64) {
    SOCKETS.with(|sockets| sockets.borrow_mut().remove(&handle));
}

/// Runs `f` on a socket's state, if the socket is known. Handlers are never called
/// while the state is borrowed, so they may use it freely.
fn with_socket<R>(handle: u64, f: impl FnOnce(&mut SocketState) -> R) -> Option<R> {
    SOCKETS.with(|sockets| sockets.borrow_mut().get_mut(&handle).map(f))
}

/// Adds a listener of every event sent to one socket (see `App::on_any_outgoing`).
pub(crate) fn listen_outgoing(listener: OutgoingListener) {
    OUTGOING.with(|listeners| listeners.borrow_mut().push(listener));
}

/// Tells the outgoing listeners, if there are any, what went to `socket` (the
/// arguments handed back, not copied).
fn sent(socket: &Socket, event: &str, args: WitArgs) {
    let listeners = OUTGOING.with(|listeners| listeners.borrow().clone());
    if listeners.is_empty() {
        return;
    }
    let args = Args::from_wit(args);
    for listener in listeners {
        listener(socket, event, &args);
    }
}

fn expect_reply(request: u64, handler: ReplyHandler) {
    REPLIES.with(|replies| replies.borrow_mut().insert(request, handler));
}

/// The answers to a broadcast with acks came: its handler runs, once.
pub(crate) fn broadcast_replied(request: u64, replies: Args, complete: bool) {
    let handler = BROADCASTS.with(|waiting| waiting.borrow_mut().remove(&request));
    if let Some(handler) = handler {
        handler(replies, complete);
    }
}

/// The answer to an `emit_with_ack` came (or its failure): its handler runs, once.
pub(crate) fn replied(request: u64, reply: Result<Args, AckFailure>) {
    let handler = REPLIES.with(|replies| replies.borrow_mut().remove(&request));
    if let Some(handler) = handler {
        handler(reply);
    }
}

impl Socket {
    /// The host's handle of this socket.
    pub fn handle(&self) -> u64 {
        self.handle
    }

    /// The Socket.IO id (the client's `socket.id`), also the room only this socket is in.
    pub fn id(&self) -> String {
        with_socket(self.handle, |s| s.handshake.id.clone()).unwrap_or_default()
    }

    /// What the client sent when it joined.
    pub fn handshake(&self) -> Option<Handshake> {
        with_socket(self.handle, |s| Handshake::clone(&s.handshake))
    }

    /// The namespace, to emit to all of it or to its rooms.
    pub fn nsp(&self) -> Namespace {
        Namespace
    }

    /// Sends an event to this socket. Arguments the host refuses are not sent; use
    /// [`Socket::try_emit`] to learn why.
    pub fn emit(&self, event: &str, args: impl IntoArgs) {
        let _ = self.try_emit(event, args);
    }

    /// Sends an event to this socket, or says why the host refused the arguments.
    pub fn try_emit(&self, event: &str, args: impl IntoArgs) -> Result<(), String> {
        let args = args.into_args().into_wit();
        host::emit(self.handle, event, &args)?;
        sent(self, event, args);
        Ok(())
    }

    /// Sends an event to this socket only if its connection can send it at once, else
    /// drops it (socket.io's `socket.volatile.emit`): for what is stale once late.
    pub fn emit_volatile(&self, event: &str, args: impl IntoArgs) -> Result<(), String> {
        let args = args.into_args().into_wit();
        host::emit_volatile(self.handle, event, &args)?;
        sent(self, event, args);
        Ok(())
    }

    /// Sends an event and calls `reply` with the client's answer, or with the failure if
    /// it does not come within `timeout` or the socket leaves first.
    pub fn emit_with_ack<F>(&self, event: &str, args: impl IntoArgs, timeout: Duration, reply: F)
    where
        F: FnOnce(Result<Args, AckFailure>) + 'static,
    {
        let millis = u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX);
        let args = args.into_args().into_wit();
        let request = host::emit_with_ack(self.handle, event, &args, millis);
        sent(self, event, args);
        expect_reply(request, Box::new(reply));
    }

    /// Joins a room. A room limit that refuses it disconnects the socket; use
    /// [`Socket::try_join`] to learn why.
    pub fn join(&self, room: &str) {
        let _ = self.try_join(room);
    }

    /// Joins a room, or says which room limit refused it (the socket is then told and
    /// disconnected).
    pub fn try_join(&self, room: &str) -> Result<(), String> {
        host::join(self.handle, room)
    }

    /// Leaves a room.
    pub fn leave(&self, room: &str) {
        host::leave(self.handle, room);
    }

    /// The rooms this socket is in, its own id's room included.
    pub fn rooms(&self) -> Vec<String> {
        host::rooms(self.handle)
    }

    /// Targets the sockets in `room`, this one excepted (socket.io's `socket.to(room)`).
    pub fn to(&self, room: &str) -> Broadcast {
        self.broadcast().to(room)
    }

    /// Targets every socket of the namespace but this one.
    pub fn broadcast(&self) -> Broadcast {
        Broadcast {
            volatile: false,
            target: Target {
                rooms: Vec::new(),
                except_rooms: Vec::new(),
                except_sockets: vec![self.handle],
            },
        }
    }

    /// Disconnects the socket from the server side.
    pub fn disconnect(&self) {
        host::disconnect(self.handle);
    }

    /// Stores a value in the socket's data under `key`; middleware sets, handlers read.
    pub fn set(&self, key: &str, value: impl Serialize) {
        let value = serde_json::to_value(value).unwrap_or(Value::Null);
        with_socket(self.handle, |s| s.data.insert(key.to_owned(), value));
    }

    /// Reads the value stored under `key`, if there is one of that type.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        with_socket(self.handle, |s| s.data.get(key).cloned())
            .flatten()
            .and_then(|value| serde_json::from_value(value).ok())
    }
}

/// The tenant's namespace.
#[derive(Debug, Clone, Copy, Default)]
pub struct Namespace;

impl Namespace {
    /// Sends an event to every socket of the namespace.
    pub fn emit(&self, event: &str, args: impl IntoArgs) {
        self.everyone().emit(event, args);
    }

    /// Targets the sockets in `room`.
    pub fn to(&self, room: &str) -> Broadcast {
        self.everyone().to(room)
    }

    /// Targets every socket but those in `room`.
    pub fn except(&self, room: &str) -> Broadcast {
        self.everyone().except(room)
    }

    /// Every socket of the namespace (socket.io's `io.fetchSockets()`).
    pub fn fetch_sockets(&self) -> Vec<RemoteSocket> {
        self.everyone().fetch_sockets()
    }

    /// Targets every socket, for the bulk operations of [`Broadcast`].
    pub fn everyone(&self) -> Broadcast {
        Broadcast {
            volatile: false,
            target: Target {
                rooms: Vec::new(),
                except_rooms: Vec::new(),
                except_sockets: Vec::new(),
            },
        }
    }
}

/// A selection of sockets to emit to, built like socket.io's `to(...).except(...)`.
#[derive(Debug, Clone)]
pub struct Broadcast {
    target: Target,
    volatile: bool,
}

impl Broadcast {
    /// Adds a room to reach.
    pub fn to(mut self, room: &str) -> Broadcast {
        self.target.rooms.push(room.to_owned());
        self
    }

    /// Leaves out the sockets in `room`.
    pub fn except(mut self, room: &str) -> Broadcast {
        self.target.except_rooms.push(room.to_owned());
        self
    }

    /// Sends the event to every selected socket. Arguments the host refuses are not
    /// sent; use [`Broadcast::try_emit`] to learn why.
    pub fn emit(self, event: &str, args: impl IntoArgs) {
        let _ = self.try_emit(event, args);
    }

    /// Sends the event to every selected socket, or says why the host refused the
    /// arguments.
    pub fn try_emit(self, event: &str, args: impl IntoArgs) -> Result<(), String> {
        let args = args.into_args().into_wit();
        match self.volatile {
            true => host::broadcast_volatile(&self.target, event, &args),
            false => host::broadcast(&self.target, event, &args),
        }
    }

    /// Sends what is emitted next only to the selected sockets whose connection can
    /// send it at once, on every server (socket.io's `volatile`).
    pub fn volatile(mut self) -> Broadcast {
        self.volatile = true;
        self
    }

    /// Sends the event to every selected socket, on every server of the cluster, each
    /// asked for an acknowledgement (socket.io's `io.timeout(ms).emit(..., callback)`):
    /// `reply` gets the first argument of each answer, in the order they came, and
    /// whether every socket answered within `timeout` (else those that did). Fails,
    /// saying why, when the host refuses the arguments or the tenant already waits
    /// for as many answers as it may.
    pub fn emit_with_ack<F>(
        self,
        event: &str,
        args: impl IntoArgs,
        timeout: Duration,
        reply: F,
    ) -> Result<(), String>
    where
        F: FnOnce(Args, bool) + 'static,
    {
        let millis = u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX);
        let request =
            host::broadcast_with_ack(&self.target, event, &args.into_args().into_wit(), millis)?;
        BROADCASTS.with(|waiting| waiting.borrow_mut().insert(request, Box::new(reply)));
        Ok(())
    }

    /// The selected sockets (socket.io's `fetchSockets()`), in the order they joined.
    pub fn fetch_sockets(&self) -> Vec<RemoteSocket> {
        sockets::fetch(&self.target)
            .into_iter()
            .map(|info| RemoteSocket {
                socket: Socket {
                    handle: info.socket,
                },
                id: info.id,
                rooms: info.rooms,
            })
            .collect()
    }

    /// The selected sockets on the cluster's other servers (socket.io's `fetchSockets`
    /// across servers; this node's are [`Broadcast::fetch_sockets`]'s): `reply` gets
    /// them once every server answered or `timeout` passed, with whether all did.
    pub fn fetch_sockets_elsewhere<F>(&self, timeout: Duration, reply: F)
    where
        F: FnOnce(Vec<crate::cluster::ClusterSocket>, bool) + 'static,
    {
        crate::cluster::fetch_sockets(&self.target, timeout, Box::new(reply));
    }

    /// Puts the selected sockets in `room` (socket.io's `socketsJoin`); how many on
    /// this node. In a cluster, the other nodes move theirs too, under their limits.
    pub fn sockets_join(&self, room: &str) -> u32 {
        sockets::join(&self.target, room)
    }

    /// Takes the selected sockets out of `room` (socket.io's `socketsLeave`); how many
    /// on this node. In a cluster, the other nodes move theirs too.
    pub fn sockets_leave(&self, room: &str) -> u32 {
        sockets::leave(&self.target, room)
    }

    /// Disconnects the selected sockets (socket.io's `disconnectSockets()`); how many
    /// on this node. In a cluster, the other nodes disconnect theirs too.
    pub fn disconnect_sockets(&self) -> u32 {
        sockets::disconnect(&self.target)
    }
}

/// A socket as a query found it: what the host knows of it, and the socket itself
/// for its handshake, its data, or to emit to it.
#[derive(Debug, Clone)]
pub struct RemoteSocket {
    /// The socket.
    pub socket: Socket,
    /// Its Socket.IO id.
    pub id: String,
    /// The rooms it is in, its own included, sorted.
    pub rooms: Vec<String>,
}

/// A client's request for an acknowledgement; answering consumes it.
#[derive(Debug)]
pub struct Ack {
    pub(crate) handle: u64,
}

impl Ack {
    /// The host's handle of this ack (for the raw bindings).
    pub fn handle(&self) -> u64 {
        self.handle
    }

    /// Answers the client. Fails only if the host no longer knows this ack.
    pub fn send(self, args: impl IntoArgs) -> Result<(), String> {
        host::answer(self.handle, &args.into_args().into_wit())
    }
}

/// Why a server-to-client acknowledgement got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckFailure {
    /// No answer within the timeout.
    Timeout,
    /// The socket left first.
    Disconnected,
}

impl From<WitAckFailure> for AckFailure {
    fn from(failure: WitAckFailure) -> Self {
        match failure {
            WitAckFailure::Timeout => AckFailure::Timeout,
            WitAckFailure::Disconnected => AckFailure::Disconnected,
        }
    }
}

/// What the client sent when it asked to join.
#[derive(Debug, Clone)]
pub struct Handshake {
    /// The namespace, e.g. `/acme`.
    pub namespace: String,
    /// The socket's Socket.IO id.
    pub id: String,
    /// The client's `auth` object (`{}` when none).
    pub auth: Value,
    /// The query parameters of the connection's URL.
    pub query: Vec<(String, String)>,
    /// The HTTP headers of the handshake, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The client's address, `ip:port`.
    pub address: String,
    /// When the connection opened, in milliseconds since the Unix epoch.
    pub issued: u64,
}

/// A middleware's refusal: the client's `connect_error` gets `message` and `data`.
#[derive(Debug, Clone)]
pub struct Reject {
    /// `err.message` on the client.
    pub message: String,
    /// `err.data` on the client.
    pub data: Option<Value>,
}

impl Reject {
    /// A refusal with a message and no data.
    pub fn new(message: impl Into<String>) -> Reject {
        Reject {
            message: message.into(),
            data: None,
        }
    }

    /// Adds the `data` the client receives as `err.data`.
    pub fn with_data(mut self, data: impl Serialize) -> Reject {
        self.data = serde_json::to_value(data).ok();
        self
    }
}

/// Log lines go to the host's log, tagged with the tenant.
pub mod log {
    use crate::bindings::nsbox::tenant::host;
    use crate::bindings::nsbox::tenant::types::Level;

    /// Logs at `debug`.
    pub fn debug(message: &str) {
        host::log(Level::Debug, message);
    }

    /// Logs at `info`.
    pub fn info(message: &str) {
        host::log(Level::Info, message);
    }

    /// Logs at `warn`.
    pub fn warn(message: &str) {
        host::log(Level::Warn, message);
    }

    /// Logs at `error`.
    pub fn error(message: &str) {
        host::log(Level::Error, message);
    }
}
