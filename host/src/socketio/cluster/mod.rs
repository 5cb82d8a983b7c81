//! Namespaces shared by several servers: what one server's namespace tells the others
//! (broadcasts, bulk room changes, disconnections) and answers them (its sockets), in
//! the protocol of Node's `socket.io-adapter` `ClusterAdapter`, so that Node servers
//! with an adapter built on it (`@socket.io/redis-adapter`'s sharded adapter) and nsbox
//! servers are one deployment.
//!
//! How messages travel is a [`Transport`]'s business (Redis, in `crate::cluster`); this
//! module knows the messages and what a namespace does with them.

pub mod message;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use rmpv::Value;
use tokio::sync::mpsc;

use self::message::{field, kind, map, str_field, Message, MessageError, Opts};
use super::namespace::Socket;
use super::namespace::{BroadcastOperator, Namespace};
use super::packet::Payload;

/// Where a namespace's messages to the other servers go, and where theirs come from.
///
/// Every method is called from the serving path and must not block: a transport queues
/// what it has to do.
pub trait Transport: Send + Sync + 'static {
    /// The namespace `nsp` now exists on this server as `uid`: the messages for it
    /// (those for every server and the replies to `uid`) go to `namespace`'s
    /// [`Namespace::receive`] from now on.
    fn attach(&self, nsp: &str, uid: &str, namespace: Weak<Namespace>);
    /// The namespace `nsp` known as `uid` is gone from this server.
    fn detach(&self, nsp: &str, uid: &str);
    /// The first socket of this server joined `room` of `nsp` (a transport may route a
    /// broadcast to one room only to the servers that have sockets in it).
    fn room_created(&self, nsp: &str, room: &str);
    /// The last socket of this server left `room`.
    fn room_deleted(&self, nsp: &str, room: &str);
    /// Sends `bytes` (an encoded [`Message`]) to the other servers of `nsp`.
    fn publish(&self, nsp: &str, route: Route<'_>, bytes: Vec<u8>);
    /// How many servers serve `nsp` now, this one included (what a request expects
    /// answers from, as Node's adapters count them); none when that cannot be known.
    fn server_count(&self, nsp: &str) -> ServerCount;
}

/// What [`Transport::server_count`] answers, some time later.
pub type ServerCount = std::pin::Pin<Box<dyn std::future::Future<Output = Option<usize>> + Send>>;

/// A socket of another server, as it answered a fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteSocket {
    /// Its Socket.IO id.
    pub id: String,
    /// Its rooms, its own included.
    pub rooms: Vec<String>,
    /// Its handshake in the shape of Node's (`headers`, `time`, `address`, `xdomain`,
    /// `secure`, `issued`, `url`, `query`, `auth`), as the other server told it.
    pub handshake: serde_json::Value,
    /// Its per-socket data.
    pub data: serde_json::Value,
    /// `{clientId, transport}` of its connection, where the other server tells them
    /// (nsbox does, beside the fields Node reads; Node's admin UI keeps them in
    /// `data._admin`), for the Admin UI.
    pub admin: serde_json::Value,
}

/// The most a fetch across servers waits.
pub const MAX_FETCH_TIMEOUT: Duration = Duration::from_secs(30);

/// Who a published message is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route<'a> {
    /// Every server of the namespace.
    All,
    /// The servers with sockets in this room (a broadcast to it alone, without ack).
    Room(&'a str),
    /// The server whose namespace is known as this uid (a reply to its request).
    Reply(&'a str),
}

/// A namespace's membership of a cluster: its id there, the way out, and its
/// requests waiting for the other servers' answers.
pub(crate) struct Membership {
    pub(crate) uid: String,
    pub(crate) transport: Arc<dyn Transport>,
    fetches: parking_lot::Mutex<HashMap<String, mpsc::UnboundedSender<Vec<RemoteSocket>>>>,
    broadcasts: parking_lot::Mutex<HashMap<String, mpsc::UnboundedSender<Gathered>>>,
}

/// What a broadcast with acks hears from a server: how many of its sockets it reached,
/// and each one's answer (its first argument) with its size in bytes, about.
#[derive(Debug)]
pub(crate) enum Gathered {
    Counted(usize),
    Answered(Value, usize),
}

impl Membership {
    pub(crate) fn new(transport: Arc<dyn Transport>) -> Membership {
        Membership {
            uid: random_id(),
            transport,
            fetches: Default::default(),
            broadcasts: Default::default(),
        }
    }

    fn publish(&self, nsp: &str, route: Route<'_>, kind: u8, data: Value) {
        let message = Message {
            kind,
            uid: self.uid.clone(),
            nsp: nsp.to_owned(),
            data,
        };
        self.transport.publish(nsp, route, message.encode());
    }
}

/// Socket ids are 20 characters; in its default ("dynamic") mode Node's sharded adapter
/// sends a broadcast to a room of that length (in UTF-16 units, JavaScript's) on the
/// namespace's channel, as if it were a socket's own room.
const SOCKET_ID_LENGTH: usize = 20;

/// Whether Node's sharded adapter takes `room` for a socket's own room (by its length).
fn looks_like_a_socket_id(room: &str) -> bool {
    room.encode_utf16().count() == SOCKET_ID_LENGTH
}

/// 16 lowercase hexadecimal digits, as Node's adapter makes its uids and request ids.
fn random_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// How long a server waits for a socket's ack to a broadcast with ack when the
/// requester gave no timeout (Node's adapters' `DEFAULT_TIMEOUT`).
const DEFAULT_ACK_TIMEOUT: Duration = Duration::from_secs(5);

impl Namespace {
    /// Tells the other servers about a broadcast this one has just delivered to its own
    /// sockets (to the rooms `rooms`, except `except`).
    pub(crate) fn publish_broadcast(&self, event: &str, args: &Payload, opts: Opts) {
        let Some(cluster) = self.cluster() else {
            return;
        };
        let route = match opts.rooms.as_slice() {
            [room] if !looks_like_a_socket_id(room) => Route::Room(room),
            _ => Route::All,
        };
        let data = map(vec![
            ("packet", message::event_packet(event, args)),
            ("opts", opts.value()),
        ]);
        cluster.publish(self.name(), route, kind::BROADCAST, data);
    }

    /// Asks the other servers to send a broadcast with acks to their sockets that `opts`
    /// selects (its flags carry the timeout) and to tell `gathered` how many they
    /// reached and what each answered. The request, and how many servers serve the
    /// namespace (this one included); none outside a cluster.
    pub(crate) fn publish_broadcast_with_ack(
        &self,
        event: &str,
        args: &Payload,
        opts: Opts,
        gathered: mpsc::UnboundedSender<Gathered>,
    ) -> Option<(String, ServerCount)> {
        let cluster = self.cluster()?;
        let request = random_id();
        cluster.broadcasts.lock().insert(request.clone(), gathered);
        let data = map(vec![
            ("packet", message::event_packet(event, args)),
            ("requestId", Value::from(request.as_str())),
            ("opts", opts.value()),
        ]);
        cluster.publish(self.name(), Route::All, kind::BROADCAST, data);
        Some((request, cluster.transport.server_count(self.name())))
    }

    /// A broadcast with acks is over: later answers to it are dropped.
    pub(crate) fn forget_broadcast_with_ack(&self, request: &str) {
        if let Some(cluster) = self.cluster() {
            cluster.broadcasts.lock().remove(request);
        }
    }

    /// Asks the other servers to disconnect their sockets that `opts` selects.
    pub(crate) fn publish_disconnect(&self, opts: Opts) {
        let Some(cluster) = self.cluster() else {
            return;
        };
        let data = map(vec![("opts", opts.value()), ("close", Value::from(false))]);
        cluster.publish(self.name(), Route::All, kind::DISCONNECT_SOCKETS, data);
    }

    /// Asks the other servers to put their sockets that `opts` selects in `room`
    /// (`join`), or to take them out of it.
    pub(crate) fn publish_rooms(&self, opts: Opts, room: &str, join: bool) {
        let Some(cluster) = self.cluster() else {
            return;
        };
        let data = map(vec![
            ("opts", opts.value()),
            ("rooms", Value::Array(vec![Value::from(room)])),
        ]);
        let kind = if join {
            kind::SOCKETS_JOIN
        } else {
            kind::SOCKETS_LEAVE
        };
        cluster.publish(self.name(), Route::All, kind, data);
    }

    /// The sockets `opts` selects on the other servers (Node's `fetchSockets` there),
    /// and whether every server answered within `timeout` (at most
    /// [`MAX_FETCH_TIMEOUT`]).
    pub async fn fetch_elsewhere(
        &self,
        opts: Opts,
        timeout: Duration,
    ) -> (Vec<RemoteSocket>, bool) {
        let Some(cluster) = self.cluster() else {
            return (Vec::new(), true);
        };
        let Some(servers) = cluster.transport.server_count(self.name()).await else {
            return (Vec::new(), false);
        };
        let mut expected = servers.saturating_sub(1);
        if expected == 0 {
            return (Vec::new(), true);
        }
        let request = random_id();
        let (answers, mut answered) = mpsc::unbounded_channel();
        cluster.fetches.lock().insert(request.clone(), answers);
        let data = map(vec![
            ("opts", opts.value()),
            ("requestId", Value::from(request.as_str())),
        ]);
        cluster.publish(self.name(), Route::All, kind::FETCH_SOCKETS, data);
        let mut found = Vec::new();
        let collecting = async {
            while expected > 0 {
                let Some(sockets) = answered.recv().await else {
                    break;
                };
                found.extend(sockets);
                expected -= 1;
            }
        };
        let _ = tokio::time::timeout(timeout.min(MAX_FETCH_TIMEOUT), collecting).await;
        cluster.fetches.lock().remove(&request);
        (found, expected == 0)
    }

    /// Sends an event to this namespace on the other servers (socket.io's
    /// `serverSideEmit`, without ack): their server-event handlers get it.
    pub fn server_side_emit(&self, event: &str, args: &Payload) {
        let Some(cluster) = self.cluster() else {
            return;
        };
        let data = map(vec![("packet", message::event_array(event, args))]);
        cluster.publish(self.name(), Route::All, kind::SERVER_SIDE_EMIT, data);
    }

    /// A message from another server of this namespace; `reply` when it came as a reply
    /// to this server. Bad messages are dropped with a debug line: another server's
    /// mistake never reaches this one's clients.
    pub fn receive(self: &Arc<Self>, bytes: &[u8], reply: bool) {
        let applied =
            Message::decode(bytes).and_then(|message| self.apply(message, reply, bytes.len()));
        if let Err(error) = applied {
            tracing::debug!(nsp = %self.name(), %error, "cluster message dropped");
        }
    }

    /// A message of `@socket.io/redis-emitter` (the classic adapter's format): a
    /// broadcast, or a `request` (join, leave, disconnect).
    pub fn receive_emitted(self: &Arc<Self>, bytes: &[u8], request: bool) {
        let applied = Message::from_classic(bytes, request, self.name())
            .and_then(|message| message.map_or(Ok(()), |m| self.apply(m, false, bytes.len())));
        if let Err(error) = applied {
            tracing::debug!(nsp = %self.name(), %error, "emitted message dropped");
        }
    }

    /// `size`: the message's bytes, what an answer it carries is counted as.
    fn apply(
        self: &Arc<Self>,
        message: Message,
        reply: bool,
        size: usize,
    ) -> Result<(), MessageError> {
        let Some(cluster) = self.cluster() else {
            return Ok(());
        };
        if reply {
            // Answers to this server's requests; other replies are read and dropped.
            let request = str_field(&message.data, "requestId").unwrap_or_default();
            match message.kind {
                kind::FETCH_SOCKETS_RESPONSE => {
                    let waiting = cluster.fetches.lock().get(request).cloned();
                    if let Some(waiting) = waiting {
                        let _ = waiting.send(remote_sockets(&message.data));
                    }
                }
                kind::BROADCAST_CLIENT_COUNT | kind::BROADCAST_ACK => {
                    let waiting = cluster.broadcasts.lock().get(request).cloned();
                    let Some(waiting) = waiting else {
                        return Ok(());
                    };
                    let gathered = if message.kind == kind::BROADCAST_CLIENT_COUNT {
                        let count = field(&message.data, "clientCount").and_then(Value::as_u64);
                        Gathered::Counted(count.map_or(0, |n| usize::try_from(n).unwrap_or(0)))
                    } else {
                        let answer = field(&message.data, "packet").cloned();
                        Gathered::Answered(answer.unwrap_or(Value::Nil), size)
                    };
                    let _ = waiting.send(gathered);
                }
                _ => {}
            }
            return Ok(());
        }
        if message.uid == cluster.uid || message.nsp != self.name() {
            return Ok(());
        }
        let data = &message.data;
        match message.kind {
            kind::BROADCAST => {
                let packet = field(data, "packet").ok_or(MessageError::Field("packet"))?;
                let (event, args) = message::read_event_packet(packet)?;
                let opts = Opts::read(data);
                let operator = self.local_operator(&opts);
                match str_field(data, "requestId") {
                    None => {
                        operator.emit(event, args);
                    }
                    Some(request) => {
                        self.broadcast_with_ack(operator, &message.uid, request, &opts, event, args)
                    }
                }
            }
            kind::SOCKETS_JOIN => {
                let rooms = message::strings(data, "rooms");
                for socket in self.local_operator(&Opts::read(data)).sockets() {
                    for room in &rooms {
                        self.join_from_cluster(&socket, room.clone());
                    }
                }
            }
            kind::SOCKETS_LEAVE => {
                let rooms = message::strings(data, "rooms");
                for socket in self.local_operator(&Opts::read(data)).sockets() {
                    for room in &rooms {
                        socket.leave(room);
                    }
                }
            }
            kind::DISCONNECT_SOCKETS => {
                let close = field(data, "close").and_then(Value::as_bool) == Some(true);
                for socket in self.local_operator(&Opts::read(data)).sockets() {
                    if close {
                        socket.close_connection();
                    } else {
                        socket.disconnect();
                    }
                }
            }
            kind::FETCH_SOCKETS => {
                let request =
                    str_field(data, "requestId").ok_or(MessageError::Field("requestId"))?;
                let sockets = self
                    .local_operator(&Opts::read(data))
                    .sockets()
                    .iter()
                    .map(describe)
                    .collect();
                let answer = map(vec![
                    ("requestId", Value::from(request)),
                    ("sockets", Value::Array(sockets)),
                ]);
                cluster.publish(
                    self.name(),
                    Route::Reply(&message.uid),
                    kind::FETCH_SOCKETS_RESPONSE,
                    answer,
                );
            }
            // Handlers here cannot answer: a request for an ack (`requestId`) times out
            // on the requester, as Node's does when no handler answers.
            kind::SERVER_SIDE_EMIT => {
                let packet = field(data, "packet")
                    .and_then(Value::as_array)
                    .ok_or(MessageError::Field("packet"))?;
                let (event, args) = message::read_event(packet)?;
                self.server_event(&event, args);
            }
            // Heartbeats (other adapters'), and replies on the namespace's channel.
            _ => {}
        }
        Ok(())
    }

    /// The local sockets `opts` selects, as a broadcast that stays on this server.
    fn local_operator(self: &Arc<Self>, opts: &Opts) -> BroadcastOperator {
        let mut operator = self.broadcast_op().local();
        for room in &opts.rooms {
            operator = operator.to(room.clone());
        }
        for room in &opts.except {
            operator = operator.except(room.clone());
        }
        if opts.volatile() {
            operator = operator.volatile();
        }
        operator
    }

    /// A broadcast with ack from `requester`: how many sockets it reaches here, then
    /// each socket's answer (its first argument), as Node's adapters reply.
    fn broadcast_with_ack(
        self: &Arc<Self>,
        operator: BroadcastOperator,
        requester: &str,
        request: &str,
        opts: &Opts,
        event: String,
        args: Payload,
    ) {
        let Some(cluster) = self.cluster() else {
            return;
        };
        let sockets = operator.sockets();
        let count = map(vec![
            ("requestId", Value::from(request)),
            ("clientCount", Value::from(sockets.len())),
        ]);
        cluster.publish(
            self.name(),
            Route::Reply(requester),
            kind::BROADCAST_CLIENT_COUNT,
            count,
        );
        let timeout = opts
            .timeout_ms()
            .map_or(DEFAULT_ACK_TIMEOUT, Duration::from_millis);
        for socket in sockets {
            let (nsp, requester, request) = (
                Arc::downgrade(self),
                requester.to_owned(),
                request.to_owned(),
            );
            let (event, args) = (event.clone(), args.clone());
            tokio::spawn(async move {
                let Ok(answer) = socket.emit_with_ack(event, args, timeout).await else {
                    return;
                };
                let Some(nsp) = nsp.upgrade() else { return };
                let Some(cluster) = nsp.cluster() else { return };
                let data = map(vec![
                    ("requestId", Value::from(request.as_str())),
                    ("packet", message::first_arg(&answer)),
                ]);
                cluster.publish(
                    nsp.name(),
                    Route::Reply(&requester),
                    kind::BROADCAST_ACK,
                    data,
                );
            });
        }
    }
}

/// A socket as FETCH_SOCKETS_RESPONSE describes it: `{id, handshake, rooms, data}`,
/// the handshake in the shape of Node's.
fn describe(socket: &Arc<Socket>) -> Value {
    let handshake = socket.handshake();
    let issued = handshake.issued_ms();
    let pairs = |pairs: &[(String, String)]| {
        Value::Map(
            pairs
                .iter()
                .map(|(k, v)| (Value::from(k.as_str()), Value::from(v.as_str())))
                .collect(),
        )
    };
    let data = match socket.data() {
        serde_json::Value::Null => Value::Map(Vec::new()),
        data => message::from_json(data),
    };
    map(vec![
        ("id", Value::from(&**socket.id())),
        (
            "handshake",
            map(vec![
                ("headers", pairs(&handshake.headers)),
                ("time", Value::from(crate::calendar::js_date(issued))),
                ("address", Value::from(handshake.address.ip().to_string())),
                ("xdomain", Value::from(handshake.xdomain())),
                ("secure", Value::from(handshake.secure())),
                ("issued", Value::from(issued)),
                ("url", Value::from(handshake.url.as_str())),
                ("query", pairs(&handshake.query)),
                ("auth", message::from_json(handshake.auth())),
            ]),
        ),
        (
            "rooms",
            Value::Array(socket.rooms().into_iter().map(Value::from).collect()),
        ),
        ("data", data),
        // Not read by Node's adapters: for nsbox's Admin UI on the other node.
        (
            "_admin",
            map(vec![
                ("clientId", Value::from(socket.client_id())),
                ("transport", Value::from(socket.transport())),
            ]),
        ),
    ])
}

/// The sockets a FETCH_SOCKETS_RESPONSE lists (`[{id, rooms, ...}]`); malformed entries
/// are left out.
fn remote_sockets(data: &Value) -> Vec<RemoteSocket> {
    field(data, "sockets")
        .and_then(Value::as_array)
        .map(|sockets| {
            sockets
                .iter()
                .filter_map(|socket| {
                    let json =
                        |key| field(socket, key).map_or(serde_json::Value::Null, message::to_json);
                    let data = json("data");
                    let admin = match json("_admin") {
                        serde_json::Value::Null => data.get("_admin").cloned().unwrap_or_default(),
                        admin => admin,
                    };
                    Some(RemoteSocket {
                        id: str_field(socket, "id")?.to_owned(),
                        rooms: message::strings(socket, "rooms"),
                        handshake: json("handshake"),
                        data,
                        admin,
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}
