//! Namespaces: static ones, dynamic parents matched by regular expression and
//! the children they create, their middleware chains, sockets and rooms.
//!
//! A namespace holds its sockets and a [`Socket`] its namespace, as in Node: the
//! socket is part of this module, not a sibling that would import it back.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use regex::Regex;
use tokio::sync::mpsc;

use crate::engineio::Sid;
use crate::socketio::cluster::message::{self, Opts};
use crate::socketio::cluster::{Gathered, Membership, Transport};
use crate::socketio::link::{Link, Shared};
use crate::socketio::packet::{ConnectError, Packet, Payload};
use observer::{Observer, ObserverSlot};
pub use recovery::RecoveryConfig;
pub use socket::{AckError, AckSender, DisconnectReason, FallbackHandler, Handshake, Socket};

use recovery::{NotRestored, Recovery};

pub mod observer;
mod recovery;
pub mod socket;

/// The future a middleware returns.
pub type MiddlewareFuture = Pin<Box<dyn Future<Output = Result<(), ConnectError>> + Send>>;
/// A connection middleware: sees the socket before it is accepted and may refuse it.
pub type Middleware = Arc<dyn Fn(Arc<Socket>) -> MiddlewareFuture + Send + Sync>;
/// Called with every accepted socket.
pub type ConnectionHandler = Arc<dyn Fn(&Arc<Socket>) + Send + Sync>;
/// Called with every event another server sends the namespace (socket.io's
/// `serverSideEmit`): the namespace, the event and its arguments.
pub type ServerEventHandler = Arc<dyn Fn(&Arc<Namespace>, &str, Payload) + Send + Sync>;
/// Decides whether a socket of this server that another server asks to join a room
/// (`socketsJoin`) joins it, and joins it.
pub type ClusterJoinHandler = Arc<dyn Fn(&Arc<Socket>, String) + Send + Sync>;
/// Whether and how a namespace recovers sessions, asked at each CONNECT.
pub type RecoveryPolicy = Arc<dyn Fn(&Namespace) -> Option<RecoveryConfig> + Send + Sync>;

/// The middleware chain and connection handlers of a namespace or of a dynamic parent.
#[derive(Default)]
pub struct Handlers {
    middlewares: RwLock<Vec<Middleware>>,
    on_connection: RwLock<Vec<ConnectionHandler>>,
    on_server_event: RwLock<Vec<ServerEventHandler>>,
    on_cluster_join: RwLock<Option<ClusterJoinHandler>>,
    recovery: RwLock<Option<RecoveryPolicy>>,
    on_recovered: RwLock<Vec<ConnectionHandler>>,
}

impl Handlers {
    /// Appends a middleware to the chain.
    pub fn use_middleware<F, Fut>(&self, middleware: F)
    where
        F: Fn(Arc<Socket>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), ConnectError>> + Send + 'static,
    {
        self.middlewares
            .write()
            .push(Arc::new(move |socket| Box::pin(middleware(socket))));
    }

    /// Adds a handler called with every accepted socket.
    pub fn on_connection<F>(&self, handler: F)
    where
        F: Fn(&Arc<Socket>) + Send + Sync + 'static,
    {
        self.on_connection.write().push(Arc::new(handler));
    }

    /// Adds a handler called with every event another server sends (`serverSideEmit`).
    pub fn on_server_event<F>(&self, handler: F)
    where
        F: Fn(&Arc<Namespace>, &str, Payload) + Send + Sync + 'static,
    {
        self.on_server_event.write().push(Arc::new(handler));
    }

    /// Hands every join another server asks of this server's sockets (`socketsJoin`)
    /// to `handler`, which decides (e.g. under room limits) and joins; without one,
    /// they join.
    pub fn on_cluster_join<F>(&self, handler: F)
    where
        F: Fn(&Arc<Socket>, String) + Send + Sync + 'static,
    {
        *self.on_cluster_join.write() = Some(Arc::new(handler));
    }

    /// Recovers sessions (socket.io's `connectionStateRecovery`) as `policy` says for
    /// each namespace, asked when a client joins one; off without a policy.
    pub fn recover_sessions<F>(&self, policy: F)
    where
        F: Fn(&Namespace) -> Option<RecoveryConfig> + Send + Sync + 'static,
    {
        *self.recovery.write() = Some(Arc::new(policy));
    }

    /// Adds a handler called with every socket given back to its client by connection
    /// state recovery (it skipped the middleware, and the connection handlers had run
    /// for it before).
    pub fn on_recovered<F>(&self, handler: F)
    where
        F: Fn(&Arc<Socket>) + Send + Sync + 'static,
    {
        self.on_recovered.write().push(Arc::new(handler));
    }

    fn middlewares(&self) -> Vec<Middleware> {
        self.middlewares.read().clone()
    }
}

/// A namespace: its sockets, its rooms and its handlers.
pub struct Namespace {
    name: String,
    handlers: Handlers,
    parent: Option<Weak<ParentNamespace>>,
    /// What the parent's pattern captured in the name (its first group), if any.
    captured: Option<String>,
    // Keyed by socket ids, which the server draws: a fast hash (foldhash) rather than
    // SipHash, whose resistance to chosen keys they do not need. Room names are a
    // tenant's choice and keep SipHash.
    sockets: RwLock<foldhash::HashMap<Sid, Arc<Socket>>>,
    rooms: RwLock<HashMap<String, foldhash::HashSet<Sid>>>,
    /// Connections between resolution and acceptance; a child is not cleaned up while any are.
    pending: AtomicUsize,
    /// The other servers of this namespace, when this one is part of a cluster.
    cluster: Option<Membership>,
    /// The next ack id of an event sent with an ack: one sequence for the namespace,
    /// as Node's, so that a broadcast with acks uses one id for every recipient.
    next_ack: AtomicU64,
    /// Connection state recovery: the log of events and the sockets waiting.
    pub(crate) recovery: Recovery,
    /// Whoever watches every namespace, if anyone.
    observer: ObserverSlot,
}

impl Namespace {
    pub(crate) fn new(
        name: String,
        parent: Option<(Weak<ParentNamespace>, Option<String>)>,
        transport: Option<Arc<dyn Transport>>,
        observer: ObserverSlot,
    ) -> Arc<Namespace> {
        let (parent, captured) =
            parent.map_or((None, None), |(parent, captured)| (Some(parent), captured));
        let nsp = Arc::new(Namespace {
            name,
            handlers: Handlers::default(),
            parent,
            captured,
            sockets: RwLock::default(),
            rooms: RwLock::default(),
            pending: AtomicUsize::new(0),
            cluster: transport.map(Membership::new),
            next_ack: AtomicU64::new(0),
            recovery: Recovery::default(),
            observer,
        });
        if let Some(cluster) = &nsp.cluster {
            cluster
                .transport
                .attach(&nsp.name, &cluster.uid, Arc::downgrade(&nsp));
        }
        nsp
    }

    /// The server's onlooker, if it has one.
    pub(crate) fn observer(&self) -> Option<&Arc<dyn Observer>> {
        self.observer.get()
    }

    /// A fresh ack id for an event sent with an ack.
    pub(crate) fn next_ack_id(&self) -> u64 {
        self.next_ack.fetch_add(1, Ordering::Relaxed)
    }

    /// This namespace's membership of a cluster, if it has one.
    pub(crate) fn cluster(&self) -> Option<&Membership> {
        self.cluster.as_ref()
    }

    /// The namespace's name, e.g. `/` or `/acme`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the pattern of the dynamic namespace that made this one captured in its
    /// name (the first group), if it has such a parent and the group matched: the
    /// name's parameter, read once when the child was made rather than per socket.
    pub fn captured(&self) -> Option<&str> {
        self.captured.as_deref()
    }

    /// This namespace's own middleware chain and connection handlers (a dynamic child's
    /// parent's run first).
    pub fn handlers(&self) -> &Handlers {
        &self.handlers
    }

    /// Appends a middleware to this namespace's chain.
    pub fn use_middleware<F, Fut>(&self, middleware: F)
    where
        F: Fn(Arc<Socket>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), ConnectError>> + Send + 'static,
    {
        self.handlers.use_middleware(middleware);
    }

    /// Adds a handler called with every accepted socket.
    pub fn on_connection<F>(&self, handler: F)
    where
        F: Fn(&Arc<Socket>) + Send + Sync + 'static,
    {
        self.handlers.on_connection(handler);
    }

    /// The connected sockets.
    pub fn sockets(&self) -> Vec<Arc<Socket>> {
        self.sockets.read().values().cloned().collect()
    }

    /// How many sockets are connected.
    pub fn socket_count(&self) -> usize {
        self.sockets.read().len()
    }

    /// Sends an event to every socket of the namespace.
    pub fn emit(self: &Arc<Self>, event: impl Into<String>, args: Payload) -> usize {
        self.broadcast_op().emit(event, args)
    }

    /// Targets the sockets in `room`.
    pub fn to(self: &Arc<Self>, room: impl Into<String>) -> BroadcastOperator {
        self.broadcast_op().to(room)
    }

    /// Targets every socket except those in `room`.
    pub fn except(self: &Arc<Self>, room: impl Into<String>) -> BroadcastOperator {
        self.broadcast_op().except(room)
    }

    pub(crate) fn broadcast_op(self: &Arc<Self>) -> BroadcastOperator {
        BroadcastOperator {
            nsp: self.clone(),
            rooms: Vec::new(),
            except_rooms: Vec::new(),
            except_sockets: Vec::new(),
            local: false,
            volatile: false,
        }
    }

    /// The middleware chain this namespace's sockets go through: the parent's, then its own.
    fn middleware_chain(&self) -> Vec<Middleware> {
        let mut chain = self
            .parent()
            .map(|parent| parent.handlers.middlewares())
            .unwrap_or_default();
        chain.extend(self.handlers.middlewares());
        chain
    }

    fn parent(&self) -> Option<Arc<ParentNamespace>> {
        self.parent.as_ref().and_then(Weak::upgrade)
    }

    /// Runs the chain in order; the first refusal ends it.
    pub(crate) async fn run_middlewares(&self, socket: &Arc<Socket>) -> Result<(), ConnectError> {
        for middleware in self.middleware_chain() {
            middleware(socket.clone()).await?;
        }
        Ok(())
    }

    pub(crate) fn has_middlewares(&self) -> bool {
        let own = !self.handlers.middlewares.read().is_empty();
        own || self
            .parent()
            .is_some_and(|p| !p.handlers.middlewares.read().is_empty())
    }

    /// Adds an accepted socket and runs the connection handlers (the parent's first).
    pub(crate) fn add_socket(&self, socket: &Arc<Socket>) {
        self.sockets
            .write()
            .insert(socket.id().clone(), socket.clone());
        socket.accept();
        if let Some(observer) = self.observer() {
            observer.socket_connected(socket);
        }
        for handler in self.chained(|handlers| &handlers.on_connection) {
            if !socket.connected() {
                break;
            }
            handler(socket);
        }
    }

    /// Another server asks `socket` to join `room`: its own join handler decides, else
    /// its parent's, else it joins.
    pub(crate) fn join_from_cluster(&self, socket: &Arc<Socket>, room: String) {
        let handler = self.handlers.on_cluster_join.read().clone().or_else(|| {
            self.parent()
                .and_then(|parent| parent.handlers.on_cluster_join.read().clone())
        });
        match handler {
            Some(handler) => handler(socket, room),
            None => socket.join(room),
        }
    }

    /// An event another server sent (`serverSideEmit`), to the handlers (the parent's
    /// first).
    pub(crate) fn server_event(self: &Arc<Self>, event: &str, args: Payload) {
        for handler in self.chained(|handlers| &handlers.on_server_event) {
            handler(self, event, args.clone());
        }
    }

    /// The handlers of one kind: the parent's, then this namespace's own.
    fn chained<T: Clone>(&self, kind: impl Fn(&Handlers) -> &RwLock<Vec<T>>) -> Vec<T> {
        let mut all = self
            .parent()
            .map(|parent| kind(&parent.handlers).read().clone())
            .unwrap_or_default();
        all.extend(kind(&self.handlers).read().iter().cloned());
        all
    }

    /// Takes the socket out of the namespace's sockets and rooms (its own set of rooms
    /// stays, for a recovery).
    pub(crate) fn remove_socket(&self, socket: &Socket) {
        self.sockets.write().remove(socket.id());
        for room in socket.rooms() {
            self.remove_from_room(&room, socket.id());
        }
    }

    /// Removes this child from its parent if nothing is left in it (see
    /// [`ParentNamespace::cleanup_empty_children`]).
    pub(crate) fn cleanup_if_empty(&self) {
        if let Some(parent) = self.parent() {
            parent.cleanup_if_empty(&self.name);
        }
    }

    /// Whether the namespace recovers sessions now.
    pub(crate) fn recovery_is_on(&self) -> bool {
        self.recovery.is_on()
    }

    /// Asks the policy (this namespace's, else its parent's) whether and how the
    /// namespace recovers sessions, from now on.
    pub(crate) fn refresh_recovery(&self) {
        let policy = self.handlers.recovery.read().clone().or_else(|| {
            self.parent()
                .and_then(|parent| parent.handlers.recovery.read().clone())
        });
        self.recovery
            .set_config(policy.and_then(|policy| policy(self)));
    }

    /// Gives the socket parked under `pid` to `link`, its client's new connection, when
    /// the events after `offset` meant for it are all still logged: they are sent
    /// first, then the CONNECT answer, and the socket is back in its rooms before any
    /// later event is sent. Then the recovery handlers run. A socket parked under
    /// `pid` that cannot be given back leaves.
    pub(crate) fn restore(
        self: &Arc<Self>,
        pid: &str,
        offset: &str,
        link: &Arc<Link>,
        joined: impl FnOnce(&Arc<Socket>),
    ) -> Option<Arc<Socket>> {
        let mut taken = true;
        let restored = self.recovery.restore(pid, offset, |restored| {
            let socket = &restored.socket;
            // Before the answer: the client may send events as soon as it has it.
            joined(socket);
            let answer = Packet::connect_answer(&self.name, socket.id(), Some(pid));
            // As Node: what it missed goes first; the client holds it until the answer.
            for packet in restored.missed.iter().map(|p| &**p).chain([&answer]) {
                if taken {
                    taken = link.offer(packet);
                }
            }
            socket.relink(link.clone());
            self.sockets
                .write()
                .insert(socket.id().clone(), socket.clone());
            for room in socket.rooms() {
                self.add_to_room(&room, socket.id());
            }
        });
        let socket = match restored {
            Ok(socket) => socket,
            Err(NotRestored::Unknown) => return None,
            Err(NotRestored::Lost(socket, reason)) => {
                socket.leave_parked(reason);
                return None;
            }
        };
        if !taken {
            // What it missed is more than its client can take at once: as any slow reader's.
            link.close_slow();
            return Some(socket);
        }
        if let Some(observer) = self.observer() {
            observer.socket_connected(&socket);
        }
        for handler in self.chained(|handlers| &handlers.on_recovered) {
            handler(&socket);
        }
        Some(socket)
    }

    pub(crate) fn begin_connect(&self) {
        self.pending.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn end_connect(&self) {
        self.pending.fetch_sub(1, Ordering::AcqRel);
        if let Some(parent) = self.parent() {
            parent.cleanup_if_empty(&self.name);
        }
    }

    fn is_idle(&self) -> bool {
        self.pending.load(Ordering::Acquire) == 0
            && self.socket_count() == 0
            && self.recovery.parked_count() == 0
    }

    pub(crate) fn add_to_room(&self, room: &str, sid: &Sid) {
        let (joined, created) = {
            let mut rooms = self.rooms.write();
            let members = rooms.entry(room.to_owned()).or_default();
            (members.insert(sid.clone()), members.len() == 1)
        };
        if let Some(observer) = self.observer().filter(|_| joined) {
            observer.room_joined(&self.name, room, sid);
        }
        // A socket's own room is nobody else's business.
        if let Some(cluster) = self.cluster.as_ref().filter(|_| created) {
            if !self.sockets.read().contains_key(room) {
                cluster.transport.room_created(&self.name, room);
            }
        }
    }

    pub(crate) fn remove_from_room(&self, room: &str, sid: &Sid) {
        let (left, deleted) = {
            let mut rooms = self.rooms.write();
            let Some(members) = rooms.get_mut(room) else {
                return;
            };
            let left = members.remove(sid);
            (left, members.is_empty() && rooms.remove(room).is_some())
        };
        if let Some(observer) = self.observer().filter(|_| left) {
            observer.room_left(&self.name, room, sid);
        }
        if let Some(cluster) = self.cluster.as_ref().filter(|_| deleted) {
            cluster.transport.room_deleted(&self.name, room);
        }
    }

    /// The names of the rooms that have at least one socket.
    pub fn rooms(&self) -> Vec<String> {
        self.rooms.read().keys().cloned().collect()
    }

    /// The sockets a broadcast reaches.
    fn recipients(&self, op: &BroadcastOperator) -> Vec<Arc<Socket>> {
        let sockets = self.sockets.read();
        let rooms = self.rooms.read();
        let excluded: foldhash::HashSet<&Sid> = op
            .except_rooms
            .iter()
            .filter_map(|room| rooms.get(room))
            .flatten()
            .chain(op.except_sockets.iter())
            .collect();
        let keep = |sid: &&Sid| !excluded.contains(sid);
        if op.rooms.is_empty() {
            sockets
                .iter()
                .filter(|(sid, _)| keep(sid))
                .map(|(_, s)| s.clone())
                .collect()
        } else {
            let targets: foldhash::HashSet<&Sid> = op
                .rooms
                .iter()
                .filter_map(|room| rooms.get(room))
                .flatten()
                .filter(keep)
                .collect();
            targets
                .into_iter()
                .filter_map(|sid| sockets.get(sid).cloned())
                .collect()
        }
    }
}

/// A broadcast being built: target rooms (none means everyone) and exceptions.
#[must_use = "a broadcast does nothing until emit is called"]
pub struct BroadcastOperator {
    nsp: Arc<Namespace>,
    rooms: Vec<String>,
    except_rooms: Vec<String>,
    except_sockets: Vec<Sid>,
    /// Only this server's sockets, even in a cluster.
    local: bool,
    /// Dropped for the sockets whose connection cannot send it at once.
    volatile: bool,
}

impl BroadcastOperator {
    /// Adds a target room; several rooms make a union.
    pub fn to(mut self, room: impl Into<String>) -> Self {
        self.rooms.push(room.into());
        self
    }

    /// Leaves out the sockets in `room`.
    pub fn except(mut self, room: impl Into<String>) -> Self {
        self.except_rooms.push(room.into());
        self
    }

    /// Leaves out one socket (e.g. the sender); may be called for several.
    pub(crate) fn except_socket(mut self, sid: Sid) -> Self {
        self.except_sockets.push(sid);
        self
    }

    /// Only this server's sockets, even when the namespace is shared with other servers.
    pub fn local(mut self) -> Self {
        self.local = true;
        self
    }

    /// Sent only to the sockets whose connection can send it at once, dropped for the
    /// others (socket.io's `volatile`), on every server.
    pub fn volatile(mut self) -> Self {
        self.volatile = true;
        self
    }

    /// Disconnects the sockets this targets on the other servers of a cluster (none
    /// without one), as Node's `disconnectSockets` does there; this server's are the
    /// caller's to disconnect.
    pub fn disconnect_elsewhere(&self) {
        if self.local {
            return;
        }
        self.nsp.publish_disconnect(self.opts());
    }

    /// The sockets this targets on the other servers, and whether every server answered
    /// within `timeout` (see [`Namespace::fetch_elsewhere`]).
    pub async fn fetch_elsewhere(
        &self,
        timeout: std::time::Duration,
    ) -> (Vec<crate::socketio::cluster::RemoteSocket>, bool) {
        if self.local {
            return (Vec::new(), true);
        }
        self.nsp.fetch_elsewhere(self.opts(), timeout).await
    }

    /// Asks the other servers to put their sockets this targets in `room` (Node's
    /// `socketsJoin` there); this server's are the caller's to move.
    pub fn join_elsewhere(&self, room: &str) {
        if !self.local {
            self.nsp.publish_rooms(self.opts(), room, true);
        }
    }

    /// Asks the other servers to take their sockets this targets out of `room`.
    pub fn leave_elsewhere(&self, room: &str) {
        if !self.local {
            self.nsp.publish_rooms(self.opts(), room, false);
        }
    }

    /// The target as cluster messages name it: the socket exceptions as their rooms.
    fn opts(&self) -> Opts {
        Opts {
            rooms: self.rooms.clone(),
            except: self
                .except_rooms
                .iter()
                .cloned()
                .chain(self.except_sockets.iter().map(|sid| sid.to_string()))
                .collect(),
            flags: match self.volatile {
                true => rmpv::Value::Map(vec![("volatile".into(), true.into())]),
                false => rmpv::Value::Map(Vec::new()),
            },
        }
    }

    /// The sockets of this server this broadcast would reach now.
    pub fn sockets(&self) -> Vec<Arc<Socket>> {
        self.nsp.recipients(self)
    }

    /// Sends the event to every target; the packet is encoded once. Returns how many sockets it reached.
    pub fn emit(self, event: impl Into<String>, args: Payload) -> usize {
        match self.emit_if(event, args, |_| Ok::<(), std::convert::Infallible>(())) {
            Ok(reached) => reached,
            Err(never) => match never {},
        }
    }

    /// Like [`BroadcastOperator::emit`], but first asks `allow` with the number of
    /// recipients on this server (e.g. to charge a budget); if it refuses, nothing is
    /// sent. In a cluster the broadcast then goes to the other servers, once.
    pub fn emit_if<E>(
        self,
        event: impl Into<String>,
        args: Payload,
        allow: impl FnOnce(usize) -> Result<(), E>,
    ) -> Result<usize, E> {
        // With connection state recovery, the event is logged, with its offset as its
        // last argument, before the lock lets any socket come back.
        let mut log = match self.volatile {
            true => None,
            false => self.nsp.recovery.log(),
        };
        let recipients = self.sockets();
        allow(recipients.len())?;
        let event = event.into();
        let (packet, unlogged) = match log.as_mut() {
            Some(log) => (args.with_last(&log.next_offset()), Some(args)),
            None => (args, None),
        };
        let packet = Arc::new(Packet::Event {
            nsp: self.nsp.name().to_owned(),
            event,
            args: packet,
            ack: None,
        });
        // Each recipient's connection as it is now, while no socket can come back: one
        // given to a new connection meanwhile gets the event from the log instead.
        let links: Vec<Arc<Link>> = recipients.iter().map(|s| s.link.load_full()).collect();
        if let Some(mut log) = log {
            let opts = self.opts();
            log.record(opts.rooms, opts.except, packet.clone());
        }
        let shared = Shared::new(&packet);
        for link in &links {
            if self.volatile {
                link.send_shared_volatile(&shared);
            } else {
                link.send_shared(&shared);
            }
        }
        if let (Some(observer), Packet::Event { event, args, .. }) = (self.nsp.observer(), &*packet)
        {
            for socket in &recipients {
                observer.event_sent(self.nsp.name(), socket.id(), event, args);
            }
        }
        if let (false, Some(_), Packet::Event { event, args, .. }) =
            (self.local, self.nsp.cluster(), &*packet)
        {
            // The other servers log it with offsets of their own.
            self.nsp
                .publish_broadcast(event, unlogged.as_ref().unwrap_or(args), self.opts());
        }
        Ok(recipients.len())
    }
}

/// What a broadcast with acknowledgements gathered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BroadcastReplies {
    /// The first argument of each socket's answer, in the order they came, as
    /// arguments (a JSON array, binaries as attachments).
    pub replies: Payload,
    /// Whether every socket selected, on every server, answered within the timeout.
    pub complete: bool,
}

impl BroadcastOperator {
    /// Sends the event to every target, on every server, each asked for an ack
    /// (socket.io's `io.timeout(ms).emit(event, ..., callback)`), after `allow` has
    /// agreed to the number of recipients here; what is sent is sent now, in order with
    /// whatever is sent next. The future gathers the answers until every socket has
    /// answered or `timeout` has passed; past `max_bytes` of answers (the clients'
    /// choice) it stops there, incomplete.
    pub fn emit_with_ack_if<E>(
        self,
        event: impl Into<String>,
        args: Payload,
        timeout: Duration,
        max_bytes: usize,
        allow: impl FnOnce(usize) -> Result<(), E>,
    ) -> Result<impl Future<Output = BroadcastReplies> + Send + 'static, E> {
        let recipients = self.sockets();
        allow(recipients.len())?;
        let id = self.nsp.next_ack_id();
        let packet = Packet::Event {
            nsp: self.nsp.name().to_owned(),
            event: event.into(),
            args,
            ack: Some(id),
        };
        let (gathered, mut heard) = mpsc::unbounded_channel();
        let shared = Shared::new(&packet);
        let mut reached = 0;
        for socket in recipients {
            let Some(answer) = socket.expect_ack(id) else {
                continue;
            };
            socket.link.load().send_shared(&shared);
            reached += 1;
            let gathered = gathered.clone();
            tokio::spawn(async move {
                if let Ok(answer) = socket.await_ack(id, answer, timeout).await {
                    let size = answer.size();
                    let _ = gathered.send(Gathered::Answered(message::first_arg(&answer), size));
                }
            });
        }
        let _ = gathered.send(Gathered::Counted(reached));
        let elsewhere = match (&packet, self.local) {
            (Packet::Event { event, args, .. }, false) => {
                let mut opts = self.opts();
                let millis = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
                opts.flags = rmpv::Value::Map(vec![("timeout".into(), millis.into())]);
                self.nsp
                    .publish_broadcast_with_ack(event, args, opts, gathered)
            }
            _ => None,
        };
        // The request is forgotten when the gathering ends, or is dropped unfinished.
        let request = elsewhere.as_ref().map(|(request, _)| ForgetOnDrop {
            nsp: Arc::downgrade(&self.nsp),
            request: request.clone(),
        });
        Ok(async move {
            let _request = request;
            let mut servers = elsewhere.map(|(_, servers)| servers);
            // Servers that will report (this one included), once known.
            let mut expected = if servers.is_some() { None } else { Some(1) };
            let (mut counted, mut sockets, mut answers, mut bytes) = (0, 0, Vec::new(), 0);
            let deadline = tokio::time::sleep(timeout);
            tokio::pin!(deadline);
            let complete = loop {
                if expected == Some(counted) && answers.len() == sockets {
                    break true;
                }
                // What has come counts before the deadline (a timeout of 0 with nobody to
                // ask is complete, as in Node).
                tokio::select! {
                    biased;
                    heard = heard.recv() => match heard {
                        Some(Gathered::Counted(n)) => {
                            counted += 1;
                            sockets += n;
                        }
                        Some(Gathered::Answered(answer, size)) => {
                            bytes += size;
                            if bytes > max_bytes {
                                break false;
                            }
                            answers.push(answer);
                        }
                        None => break false,
                    },
                    known = async {
                        match servers.as_mut() {
                            Some(count) => count.await,
                            None => std::future::pending().await,
                        }
                    }, if servers.is_some() => {
                        servers = None;
                        // Unknown: it can only end at the timeout.
                        expected = known;
                    }
                    _ = &mut deadline => break false,
                }
            };
            BroadcastReplies {
                replies: message::gathered(answers),
                complete,
            }
        })
    }
}

/// Forgets a broadcast with acks' request when its gathering ends or is dropped, so
/// that later answers to it are dropped and nothing of it stays.
struct ForgetOnDrop {
    nsp: Weak<Namespace>,
    request: String,
}

impl Drop for ForgetOnDrop {
    fn drop(&mut self) {
        if let Some(nsp) = self.nsp.upgrade() {
            nsp.forget_broadcast_with_ack(&self.request);
        }
    }
}

/// How long an emptied child namespace of a cluster stays to answer the requests other
/// servers counted it for (Node's adapters' default request timeout).
const LEAVE_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// A dynamic namespace: a pattern whose every matching name becomes a child
/// namespace on first use, each child going through the parent's middleware.
pub struct ParentNamespace {
    pattern: Regex,
    handlers: Handlers,
    children: Mutex<HashMap<String, Arc<Namespace>>>,
    cleanup_empty: AtomicBool,
    /// The cluster each child joins, if any.
    transport: Option<Arc<dyn Transport>>,
    /// Whoever watches every namespace, if anyone.
    observer: ObserverSlot,
}

impl ParentNamespace {
    pub(crate) fn new(
        pattern: Regex,
        transport: Option<Arc<dyn Transport>>,
        observer: ObserverSlot,
    ) -> Arc<ParentNamespace> {
        Arc::new(ParentNamespace {
            pattern,
            handlers: Handlers::default(),
            children: Mutex::default(),
            cleanup_empty: AtomicBool::new(false),
            transport,
            observer,
        })
    }

    /// The pattern names are matched against.
    pub fn pattern(&self) -> &Regex {
        &self.pattern
    }

    /// Appends a middleware run for every socket of every child, before the child's own.
    pub fn use_middleware<F, Fut>(&self, middleware: F)
    where
        F: Fn(Arc<Socket>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), ConnectError>> + Send + 'static,
    {
        self.handlers.use_middleware(middleware);
    }

    /// Adds a handler called with every socket accepted by any child.
    pub fn on_connection<F>(&self, handler: F)
    where
        F: Fn(&Arc<Socket>) + Send + Sync + 'static,
    {
        self.handlers.on_connection(handler);
    }

    /// Hands the joins other servers ask of any child's sockets to `handler` (see
    /// [`Handlers::on_cluster_join`]).
    pub fn on_cluster_join<F>(&self, handler: F)
    where
        F: Fn(&Arc<Socket>, String) + Send + Sync + 'static,
    {
        self.handlers.on_cluster_join(handler);
    }

    /// Adds a handler called with every event another server sends any child.
    pub fn on_server_event<F>(&self, handler: F)
    where
        F: Fn(&Arc<Namespace>, &str, Payload) + Send + Sync + 'static,
    {
        self.handlers.on_server_event(handler);
    }

    /// Recovers the children's sessions as `policy` says for each (see
    /// [`Handlers::recover_sessions`]).
    pub fn recover_sessions<F>(&self, policy: F)
    where
        F: Fn(&Namespace) -> Option<RecoveryConfig> + Send + Sync + 'static,
    {
        self.handlers.recover_sessions(policy);
    }

    /// Adds a handler called with every socket of any child given back to its client
    /// by connection state recovery.
    pub fn on_recovered<F>(&self, handler: F)
    where
        F: Fn(&Arc<Socket>) + Send + Sync + 'static,
    {
        self.handlers.on_recovered(handler);
    }

    /// Removes a child once its last socket has left (Node's `cleanupEmptyChildNamespaces`).
    /// Default is `false`.
    pub fn cleanup_empty_children(&self, enabled: bool) {
        self.cleanup_empty.store(enabled, Ordering::Release);
    }

    /// The live children.
    pub fn children(&self) -> Vec<Arc<Namespace>> {
        self.children.lock().values().cloned().collect()
    }

    /// Every socket of every child.
    pub fn sockets(&self) -> Vec<Arc<Socket>> {
        self.children()
            .iter()
            .flat_map(|child| child.sockets())
            .collect()
    }

    /// The child for `name`, created if needed, marked as having a connection pending.
    pub(crate) fn child_for_connect(self: &Arc<Self>, name: &str) -> Option<Arc<Namespace>> {
        let mut children = self.children.lock();
        let child = match children.get(name) {
            // Its name matched when it was made.
            Some(child) => child.clone(),
            None => {
                let captures = self.pattern.captures(name)?;
                let captured = captures.get(1).map(|group| group.as_str().to_owned());
                tracing::debug!(nsp = name, "child namespace created");
                let child = Namespace::new(
                    name.to_owned(),
                    Some((Arc::downgrade(self), captured)),
                    self.transport.clone(),
                    self.observer.clone(),
                );
                children.insert(name.to_owned(), child.clone());
                child
            }
        };
        child.begin_connect();
        Some(child)
    }

    fn cleanup_if_empty(self: &Arc<Self>, name: &str) {
        if !self.cleanup_empty.load(Ordering::Acquire) {
            return;
        }
        if self.transport.is_some() {
            // In a cluster, another server may have counted this one for a request
            // (Node's fetchSockets, a broadcast with ack) just before it emptied: it
            // stays to answer, and goes if still empty once such requests have timed
            // out. A socket joining meanwhile finds it there.
            let (parent, name) = (Arc::downgrade(self), name.to_owned());
            tokio::spawn(async move {
                tokio::time::sleep(LEAVE_GRACE).await;
                if let Some(parent) = parent.upgrade() {
                    parent.remove_if_idle(&name);
                }
            });
            return;
        }
        self.remove_if_idle(name);
    }

    fn remove_if_idle(&self, name: &str) {
        let mut children = self.children.lock();
        if children.get(name).is_some_and(|child| child.is_idle()) {
            if let Some(child) = children.remove(name) {
                child.leave_cluster();
            }
            tracing::debug!(nsp = name, "empty child namespace removed");
        }
    }
}

impl Namespace {
    /// Stops taking the cluster's messages (a removed child; dropping does it too).
    fn leave_cluster(&self) {
        if let Some(cluster) = &self.cluster {
            cluster.transport.detach(&self.name, &cluster.uid);
        }
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        self.leave_cluster();
    }
}
