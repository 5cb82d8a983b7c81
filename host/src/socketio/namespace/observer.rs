//! What an onlooker of the whole server (the Admin UI's server side) hears: sockets
//! joining and leaving, rooms, and every event in and out, of every namespace. None is
//! set unless one asks: then each hook is one check of an empty slot.

use std::sync::{Arc, OnceLock};

use super::{DisconnectReason, Socket};
use crate::engineio::Sid;
use crate::socketio::packet::Payload;

/// Hears what happens in every namespace. Called on the threads that serve the
/// sockets, under no lock of this layer: keep it short, and do not call back into the
/// socket that is being reported.
pub trait Observer: Send + Sync {
    /// A socket joined its namespace (or was given back to its client by recovery).
    fn socket_connected(&self, socket: &Arc<Socket>);
    /// A socket's connection changed its transport (an upgrade to WebSocket).
    fn socket_updated(&self, socket: &Arc<Socket>);
    /// A socket left its namespace (or its connection dropped and it waits, parked).
    fn socket_disconnected(&self, socket: &Socket, reason: DisconnectReason);
    /// A socket joined a room (its own id's included).
    fn room_joined(&self, nsp: &str, room: &str, sid: &Sid);
    /// A socket left a room.
    fn room_left(&self, nsp: &str, room: &str, sid: &Sid);
    /// A socket's client sent an event.
    fn event_received(&self, socket: &Socket, event: &str, args: &Payload);
    /// An event was sent to a socket (one call per recipient of a broadcast).
    fn event_sent(&self, nsp: &str, sid: &Sid, event: &str, args: &Payload);
}

/// The server's onlooker, once set; shared by every namespace.
pub(crate) type ObserverSlot = Arc<OnceLock<Arc<dyn Observer>>>;
