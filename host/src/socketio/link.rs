//! One connection's way out: Socket.IO packets encoded into Engine.IO messages and
//! queued on the session. Sockets and broadcasts send through it; the connection's
//! incoming side (`client`) owns it, so neither imports the other.

use std::sync::{Arc, Weak};

use bytes::Bytes;

use super::packet::Packet;
use crate::engineio::packet::Packet as EnginePacket;
use crate::engineio::{CloseReason, Session, Sid, TransportKind};

/// What a socket tells its connection when it leaves its namespace.
pub(crate) trait Departures: Send + Sync {
    /// The socket `id` left namespace `nsp`.
    fn left(&self, nsp: &str, id: &Sid);
}

/// The sending side of one connection.
pub(crate) struct Link {
    session: Weak<Session>,
    departures: Weak<dyn Departures>,
}

impl Link {
    pub(crate) fn new(session: &Arc<Session>, departures: Weak<dyn Departures>) -> Link {
        Link {
            session: Arc::downgrade(session),
            departures,
        }
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
        let (message, binary) = encode(packet);
        self.send_encoded(message, &binary);
    }

    /// Queues an already encoded packet (see [`encode`]) and its attachments.
    pub(crate) fn send_encoded(&self, message: EnginePacket, binary: &[Bytes]) {
        let Some(session) = self.session.upgrade() else {
            return;
        };
        if session.send(message).is_err() {
            return;
        }
        for data in binary {
            if session.send(EnginePacket::Binary(data.clone())).is_err() {
                return;
            }
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

/// A packet as the Engine.IO message that carries it, and its attachments: encoded once,
/// straight into the buffer that is sent; cloning the message shares that buffer.
pub(crate) fn encode(packet: &Packet) -> (EnginePacket, Vec<Bytes>) {
    EnginePacket::message_with(|out| packet.encode_into(out))
}
