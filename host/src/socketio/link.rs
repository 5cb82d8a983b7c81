//! One connection's way out: Socket.IO packets encoded into Engine.IO messages and
//! queued on the session. Sockets and broadcasts send through it; the connection's
//! incoming side (`client`) owns it, so neither imports the other.

use std::cell::OnceCell;
use std::sync::{Arc, OnceLock, Weak};

use bytes::Bytes;

use super::msgpack;
use super::packet::Packet;
use crate::engineio::packet::Packet as EnginePacket;
use crate::engineio::{CloseReason, SendError, Session, Sid, TransportKind};

/// What a socket tells its connection when it leaves its namespace.
pub(crate) trait Departures: Send + Sync {
    /// The socket `id` left namespace `nsp`.
    fn left(&self, nsp: &str, id: &Sid);
}

/// How a connection's packets are written: Socket.IO's default parser (text, binaries
/// as attachment messages) or `socket.io-msgpack-parser` (one binary message each).
/// Each connection has its own, told by the first message its client sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Parser {
    Json,
    Msgpack,
}

/// The sending side of one connection.
pub(crate) struct Link {
    session: Weak<Session>,
    departures: Weak<dyn Departures>,
    /// Set by the client's first message; nothing is sent before it.
    parser: OnceLock<Parser>,
}

/// Whether other connections get the same packet at the same time.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fanout {
    Alone,
    /// A broadcast: see [`Session::mark_broadcast`].
    Broadcast,
}

impl Link {
    pub(crate) fn new(session: &Arc<Session>, departures: Weak<dyn Departures>) -> Link {
        Link {
            session: Arc::downgrade(session),
            departures,
            parser: OnceLock::new(),
        }
    }

    /// The connection's parser: the one already told, else `first` (the kind of the
    /// client's first message), from now on.
    pub(crate) fn parser_or(&self, first: Parser) -> Parser {
        *self.parser.get_or_init(|| first)
    }

    fn parser(&self) -> Parser {
        self.parser.get().copied().unwrap_or(Parser::Json)
    }

    /// The Engine.IO session's id (none once it is gone).
    pub(crate) fn session_id(&self) -> Option<Sid> {
        self.session.upgrade().map(|session| session.id.clone())
    }

    /// The transport the connection uses now: `"polling"` or `"websocket"`.
    pub(crate) fn transport(&self) -> &'static str {
        match self.session.upgrade().map(|s| s.transport()) {
            Some(TransportKind::WebSocket) => "websocket",
            _ => "polling",
        }
    }

    /// Encodes and queues one packet.
    pub(crate) fn send(&self, packet: &Packet) {
        match self.parser() {
            Parser::Json => {
                let (message, binary) = encode_json(packet);
                self.queue(message, &binary, Fanout::Alone);
            }
            Parser::Msgpack => self.queue(
                EnginePacket::Binary(msgpack::encode(packet)),
                &[],
                Fanout::Alone,
            ),
        }
    }

    /// Queues a packet if the connection can send it at once, else drops it
    /// (socket.io's `volatile`: what is stale once late).
    pub(crate) fn send_volatile(&self, packet: &Packet) {
        if self.is_writable() {
            self.send(packet);
        }
    }

    /// [`Link::send_shared`], volatile.
    pub(crate) fn send_shared_volatile(&self, shared: &Shared) {
        if self.is_writable() {
            self.send_shared(shared);
        }
    }

    fn is_writable(&self) -> bool {
        self.session.upgrade().is_some_and(|s| s.is_writable())
    }

    /// Queues a packet sent to many connections, encoded once per parser.
    pub(crate) fn send_shared(&self, shared: &Shared) {
        match self.parser() {
            Parser::Json => {
                let (message, binary) = shared.json.get_or_init(|| encode_json(shared.packet));
                self.queue(message.clone(), binary, Fanout::Broadcast);
            }
            Parser::Msgpack => {
                let message = shared
                    .msgpack
                    .get_or_init(|| EnginePacket::Binary(msgpack::encode_broadcast(shared.packet)));
                self.queue(message.clone(), &[], Fanout::Broadcast);
            }
        }
    }

    /// Queues an encoded packet and its attachments.
    fn queue(&self, message: EnginePacket, binary: &[Bytes], fanout: Fanout) {
        if self.offer_encoded(message, binary, fanout) == Err(SendError::Full) {
            self.close_slow();
        }
    }

    /// Queues one packet unless the client is reading too slowly to take it: then
    /// it is `false` and the connection stays open, for the caller to close with
    /// [`Link::close_slow`] once it holds no lock that the sockets' departures take.
    pub(crate) fn offer(&self, packet: &Packet) -> bool {
        let sent = match self.parser() {
            Parser::Json => {
                let (message, binary) = encode_json(packet);
                self.offer_encoded(message, &binary, Fanout::Alone)
            }
            Parser::Msgpack => self.offer_encoded(
                EnginePacket::Binary(msgpack::encode(packet)),
                &[],
                Fanout::Alone,
            ),
        };
        sent != Err(SendError::Full)
    }

    fn offer_encoded(
        &self,
        message: EnginePacket,
        binary: &[Bytes],
        fanout: Fanout,
    ) -> Result<(), SendError> {
        let Some(session) = self.session.upgrade() else {
            return Err(SendError::Closed);
        };
        session.offer(message)?;
        for data in binary {
            session.offer(EnginePacket::Binary(data.clone()))?;
        }
        if fanout == Fanout::Broadcast {
            session.mark_broadcast();
        }
        Ok(())
    }

    /// Closes a connection whose client did not take what was offered to it.
    pub(crate) fn close_slow(&self) {
        if let Some(session) = self.session.upgrade() {
            session.close_slow();
        }
    }

    /// Closes the whole connection, every socket of it included.
    pub(crate) fn close(&self, reason: CloseReason) {
        if let Some(session) = self.session.upgrade() {
            session.close(reason);
        }
    }

    /// True while the connection is open.
    pub(crate) fn is_alive(&self) -> bool {
        self.session.upgrade().is_some_and(|s| !s.is_closed())
    }

    /// Tells the connection a socket left its namespace.
    pub(crate) fn left(&self, nsp: &str, id: &Sid) {
        if let Some(departures) = self.departures.upgrade() {
            departures.left(nsp, id);
        }
    }
}

/// A packet going to many connections (a broadcast), encoded for each parser the first
/// time a recipient needs it; every recipient of a parser shares that buffer.
pub(crate) struct Shared<'a> {
    packet: &'a Packet,
    json: OnceCell<(EnginePacket, Vec<Bytes>)>,
    msgpack: OnceCell<EnginePacket>,
}

impl<'a> Shared<'a> {
    pub(crate) fn new(packet: &'a Packet) -> Shared<'a> {
        Shared {
            packet,
            json: OnceCell::new(),
            msgpack: OnceCell::new(),
        }
    }
}

/// A packet as the Engine.IO text message that carries it, and its attachments:
/// encoded straight into the buffer that is sent; cloning the message shares it.
fn encode_json(packet: &Packet) -> (EnginePacket, Vec<Bytes>) {
    EnginePacket::message_with(packet.text_len_hint(), |out| packet.encode_into(out))
}
