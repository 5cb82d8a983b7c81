//! One Engine.IO connection seen from Socket.IO: it decodes packets, gathers
//! binary attachments, and multiplexes the connection's sockets by namespace.

use std::sync::{Arc, Weak};

use foldhash::HashMap;
use parking_lot::Mutex;
use tokio::task::AbortHandle;

use bytes::Bytes;
use serde_json::Value;

use super::link::{Departures, Link, Parser};
use super::msgpack;
use super::namespace::{DisconnectReason, Handshake, Namespace, Socket};
use super::packet::{self, ConnectError, Packet};
use super::Resolver;
use crate::engineio::{CloseReason, Connection, Session, Sid};

/// A binary packet whose attachments are still arriving.
struct PartialPacket {
    packet: Packet,
    expected: usize,
    received: Vec<Bytes>,
}

/// A namespace of a connection: still running its middleware, or joined.
enum Membership {
    Joining,
    Joined(Arc<Socket>),
}

/// The Socket.IO side of one Engine.IO session.
pub(crate) struct Client {
    me: Weak<Client>,
    session: Weak<Session>,
    /// The way out, shared with the connection's sockets.
    link: Arc<Link>,
    resolver: Arc<Resolver>,
    /// By namespace: a namespace is joined once per connection, and a CONNECT for one
    /// still joining is ignored (each would leave a socket behind otherwise). Hashed
    /// with foldhash: it holds only namespaces that exist, and only this client's.
    sockets: Mutex<HashMap<String, Membership>>,
    partial: Mutex<Option<PartialPacket>>,
    /// The connect timeout's task, stopped once a namespace is joined or the connection
    /// closes (left alone, each connection's would sleep out its 45 s: at thousands of
    /// connections a second, hundreds of thousands of idle tasks).
    connect_timeout: Mutex<Option<AbortHandle>>,
}

impl Client {
    pub(crate) fn new(session: &Arc<Session>, resolver: Arc<Resolver>) -> Arc<Client> {
        let client = Arc::new_cyclic(|me: &Weak<Client>| Client {
            me: me.clone(),
            session: Arc::downgrade(session),
            link: Arc::new(Link::new(session, me.clone())),
            resolver,
            sockets: Mutex::default(),
            partial: Mutex::default(),
            connect_timeout: Mutex::default(),
        });
        client.start_connect_timeout();
        client
    }

    /// Closes the connection if it has joined no namespace within the connect timeout.
    fn start_connect_timeout(&self) {
        let me = self.me.clone();
        let timeout = self.resolver.config.connect_timeout;
        let task = tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            let Some(client) = me.upgrade() else { return };
            let joined = client
                .sockets
                .lock()
                .values()
                .any(|m| matches!(m, Membership::Joined(_)));
            if !joined {
                tracing::debug!("no namespace joined within the connect timeout");
                client.link.close(CloseReason::ForcedClose);
            }
        });
        *self.connect_timeout.lock() = Some(task.abort_handle());
    }

    /// Stops the connect timeout: a namespace was joined, or the connection closed.
    fn stop_connect_timeout(&self) {
        let task = self.connect_timeout.lock().take();
        if let Some(task) = task {
            task.abort();
        }
    }

    fn socket(&self, nsp: &str) -> Option<Arc<Socket>> {
        match self.sockets.lock().get(nsp)? {
            Membership::Joined(socket) => Some(socket.clone()),
            Membership::Joining => None,
        }
    }

    fn dispatch(&self, packet: Packet) {
        match packet {
            Packet::Connect { nsp, data } => self.connect(nsp, data),
            Packet::Disconnect { nsp } => {
                if let Some(socket) = self.socket(&nsp) {
                    socket.close(DisconnectReason::ClientNamespaceDisconnect);
                }
            }
            Packet::Event {
                nsp,
                event,
                args,
                ack,
            } => {
                if let Some(socket) = self.socket(&nsp) {
                    socket.dispatch_event(event, args, ack);
                }
            }
            Packet::Ack { nsp, id, args } => {
                if let Some(socket) = self.socket(&nsp) {
                    socket.dispatch_ack(id, args);
                }
            }
            // Only servers send CONNECT_ERROR; one from a client is ignored, as Node does.
            Packet::ConnectError { .. } => {}
        }
    }

    fn connect(&self, nsp: String, auth: Option<String>) {
        let (Some(me), Some(session)) = (self.me.upgrade(), self.session.upgrade()) else {
            return;
        };
        let Some(namespace) = self.resolver.resolve(&nsp) else {
            self.link
                .send(&ConnectError::invalid_namespace().packet(&nsp));
            return;
        };
        {
            let mut sockets = self.sockets.lock();
            match sockets.get(&nsp) {
                // A second CONNECT while the first runs its middleware: ignored.
                Some(Membership::Joining) => {
                    drop(sockets);
                    namespace.end_connect();
                    return;
                }
                // A CONNECT for a namespace already joined: Node closes the connection.
                Some(Membership::Joined(_)) => {
                    drop(sockets);
                    namespace.end_connect();
                    tracing::debug!(nsp, "CONNECT for a namespace already joined");
                    self.link.close(CloseReason::ForcedClose);
                    return;
                }
                None => {
                    sockets.insert(nsp.clone(), Membership::Joining);
                }
            }
        }
        let auth = Handshake::auth_of(auth);
        namespace.refresh_recovery();
        if let Some(socket) = self.restore(&namespace, auth.get()) {
            self.stop_connect_timeout();
            namespace.end_connect();
            // The connection may have closed meanwhile, missing the socket: it waits again.
            if !self.link.is_alive() {
                socket.close(DisconnectReason::TransportClose);
            }
            return;
        }
        let handshake = Handshake {
            auth_json: auth,
            query: session.info.query.clone(),
            headers: session.info.headers.clone(),
            address: session.info.address,
            time: session.info.time,
            url: session.info.url.clone(),
        };
        let socket = Socket::new(namespace.clone(), self.link.clone(), handshake);
        if !namespace.has_middlewares() {
            // No middleware: accept right away, so packets that follow find the socket.
            me.accept(socket);
            namespace.end_connect();
            return;
        }
        tokio::spawn(async move {
            let verdict = namespace.run_middlewares(&socket).await;
            match verdict {
                Ok(()) => me.accept(socket),
                Err(error) => {
                    me.stop_joining(namespace.name());
                    me.link.send(&error.packet(namespace.name()));
                }
            }
            namespace.end_connect();
        });
    }

    /// Connection state recovery: the socket parked under the `pid` of `auth`, given back
    /// with what it missed since the `offset` of `auth`, when the namespace can.
    fn restore(&self, namespace: &Arc<Namespace>, auth: &str) -> Option<Arc<Socket>> {
        if !namespace.recovery_is_on() {
            return None;
        }
        let Ok(auth) = serde_json::from_str::<Value>(auth) else {
            return None;
        };
        let (Some(Value::String(pid)), Some(Value::String(offset))) =
            (auth.get("pid"), auth.get("offset"))
        else {
            return None;
        };
        let nsp = namespace.name().to_owned();
        namespace.restore(pid, offset, &self.link, |socket| {
            self.sockets
                .lock()
                .insert(nsp, Membership::Joined(socket.clone()));
        })
    }

    /// A namespace's middleware said no: it may be asked for again.
    fn stop_joining(&self, nsp: &str) {
        let mut sockets = self.sockets.lock();
        if matches!(sockets.get(nsp), Some(Membership::Joining)) {
            sockets.remove(nsp);
        }
    }

    fn accept(&self, socket: Arc<Socket>) {
        let nsp = socket.nsp().name().to_owned();
        let joined = self.link.is_alive() && {
            let mut sockets = self.sockets.lock();
            // Only the CONNECT that made the namespace joining is accepted.
            let joining = matches!(sockets.get(&nsp), Some(Membership::Joining));
            if joining {
                sockets.insert(nsp.clone(), Membership::Joined(socket.clone()));
            }
            joining
        };
        if !joined {
            socket.abandon(DisconnectReason::TransportClose);
            return;
        }
        self.stop_connect_timeout();
        let pid = socket.nsp().recovery_is_on().then(|| socket.give_pid());
        self.link
            .send(&Packet::connect_answer(&nsp, socket.id(), pid));
        socket.nsp().add_socket(&socket);
        socket.release_early_events();
        // The connection may have closed while the middleware ran, and its close may have
        // missed this socket (not yet connected then): close it now, or it would stay forever.
        if !self.link.is_alive() {
            socket.close(DisconnectReason::TransportClose);
        }
    }

    fn fail(&self, error: packet::ParseError) {
        tracing::debug!(%error, "closing connection on a malformed packet");
        self.link.close(CloseReason::ParseError);
    }
}

impl Departures for Client {
    /// Forgets a socket that has left its namespace.
    fn left(&self, nsp: &str, id: &Sid) {
        let mut sockets = self.sockets.lock();
        if matches!(sockets.get(nsp), Some(Membership::Joined(s)) if s.id() == id) {
            sockets.remove(nsp);
        }
    }
}

impl Connection for Client {
    fn on_message(&self, text: &str) {
        if self.link.parser_or(Parser::Json) == Parser::Msgpack {
            // A msgpack client sends binary messages only.
            return self.fail(packet::ParseError::UnknownType);
        }
        if self.partial.lock().is_some() {
            // A text packet in the middle of a binary packet's attachments.
            return self.fail(packet::ParseError::IllegalAttachments);
        }
        match Packet::decode(text) {
            Ok((packet, 0)) => self.dispatch(packet),
            Ok((_, count)) if count > self.resolver.config.max_attachments => {
                self.fail(packet::ParseError::Attachments)
            }
            Ok((packet, expected)) => {
                *self.partial.lock() = Some(PartialPacket {
                    packet,
                    expected,
                    received: Vec::with_capacity(expected),
                });
            }
            Err(error) => self.fail(error),
        }
    }

    fn on_binary(&self, data: Bytes) {
        // A JSON client's binary messages follow the text that announced them; a binary
        // message first means the msgpack parser.
        if self.link.parser_or(Parser::Msgpack) == Parser::Msgpack {
            return match msgpack::decode(&data, self.resolver.config.max_attachments) {
                Ok(packet) => self.dispatch(packet),
                Err(error) => self.fail(error),
            };
        }
        let complete = {
            let mut partial = self.partial.lock();
            let Some(pending) = partial.as_mut() else {
                drop(partial);
                return self.fail(packet::ParseError::IllegalAttachments);
            };
            pending.received.push(data);
            if pending.received.len() < pending.expected {
                return;
            }
            partial.take()
        };
        if let Some(done) = complete {
            match packet::attach(done.packet, done.received) {
                Ok(packet) => self.dispatch(packet),
                Err(error) => self.fail(error),
            }
        }
    }

    fn on_upgrade(&self) {
        let sockets: Vec<Arc<Socket>> = self
            .sockets
            .lock()
            .values()
            .filter_map(|membership| match membership {
                Membership::Joined(socket) => Some(socket.clone()),
                Membership::Joining => None,
            })
            .collect();
        for socket in sockets {
            if let Some(observer) = socket.nsp().observer() {
                observer.socket_updated(&socket);
            }
        }
    }

    fn on_close(&self, reason: CloseReason) {
        self.stop_connect_timeout();
        let sockets: Vec<Arc<Socket>> = self
            .sockets
            .lock()
            .drain()
            .filter_map(|(_, membership)| match membership {
                Membership::Joined(socket) => Some(socket),
                Membership::Joining => None,
            })
            .collect();

        for socket in sockets {
            socket.close(reason.into());
        }
    }
}
