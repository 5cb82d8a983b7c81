//! A connection to a [`SocketIo`] fed by hand, for tests of the layers that sit on
//! it (this one's rules, the tenants' actors): packets in, what the client would
//! receive read back, no network.

use std::sync::Arc;

use super::{Handler, SocketIo};
use crate::engineio::packet::Packet;
use crate::engineio::session::tests::session_with;
use crate::engineio::{Connection, EngineHandler, Session, TransportKind};

/// One connection to `io`, fed by hand.
pub(crate) struct Wire {
    pub(crate) session: Arc<Session>,
    pub(crate) connection: Arc<dyn Connection>,
}

impl Wire {
    pub(crate) fn open(io: &SocketIo) -> Wire {
        let session = session_with(
            Arc::new(io.resolver.config.engine.clone()),
            TransportKind::WebSocket,
        );
        let connection = Handler(io.resolver.clone()).on_open(&session);
        session.attach(connection.clone());
        Wire {
            session,
            connection,
        }
    }

    /// A Socket.IO packet from the client (the Engine.IO message's text, `4` not included).
    pub(crate) fn send(&self, text: &str) {
        self.connection.on_message(text);
    }

    /// Everything queued for the client so far: Socket.IO packets as text (their
    /// Engine.IO `4` not included), and `<close>`.
    pub(crate) async fn received(&self) -> Vec<String> {
        let mut rx = self.session.rx.lock().await;
        let mut out = Vec::new();
        while let Some(packet) = rx.try_recv() {
            out.push(match packet {
                Packet::Message(text) => text,
                Packet::Encoded(text) => text.as_str()[1..].to_owned(),
                Packet::Close => "<close>".into(),
                other => format!("{other:?}"),
            });
        }
        out
    }
}

/// Lets every task that can run, run (with time paused, nothing else moves it).
pub(crate) async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}
