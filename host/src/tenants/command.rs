//! What a tenant's actor is asked to do, and how a socket is told it is dropped: the
//! vocabulary the handle, the actor and the host functions share.

use std::sync::Arc;

use serde_json::json;
use tokio::sync::oneshot;

use super::kind::Kind;
use crate::socketio::{AckError, AckSender, ConnectError, DisconnectReason, Payload, Socket};

/// The event every socket of a tenant receives just before the server disconnects it
/// because the tenant's instance failed, the tenant was deleted, or its new version
/// refused the socket: `{tenant, kind, error}`.
pub const FAULT_EVENT: &str = "nsbox:error";

/// The event a socket receives when a new version of its tenant takes it over:
/// `{tenant, version}`. The socket stays connected; the new version ran its middleware
/// and `on-connection` for it as for a new socket (rooms other than its own were left).
pub const REDEPLOY_EVENT: &str = "nsbox:redeployed";

/// Tells a socket why it is being dropped (`nsbox:error` `{tenant, kind, error}`, plus
/// `data` when there is any) and disconnects it from the server side. Every limit and
/// fault that ends a socket goes through here, so clients see one shape.
pub(crate) fn drop_socket(
    socket: &Arc<Socket>,
    tenant: &str,
    kind: Kind,
    error: impl std::fmt::Display,
    data: Option<serde_json::Value>,
) {
    if !socket.connected() {
        // One waiting for its client to come back (connection state recovery) ends now.
        socket.disconnect();
        return;
    }
    let mut notice = json!({ "tenant": tenant, "kind": kind.as_str(), "error": error.to_string() });
    if let Some(data) = data {
        notice["data"] = data;
    }
    socket.emit(FAULT_EVENT, Payload::from_values(&[notice]));
    socket.disconnect();
}

/// What the actor is asked to do.
pub(crate) enum Command {
    /// Run the guest's middleware for a socket asking to join.
    Middleware {
        socket: Arc<Socket>,
        reply: oneshot::Sender<Result<(), ConnectError>>,
    },
    /// The socket was accepted.
    Connected { socket: Arc<Socket> },
    /// The socket's connection dropped and its client came back to it within the
    /// recovery window (it was not told it left).
    Recovered { socket: Arc<Socket> },
    /// The socket sent an event.
    Event {
        socket: Arc<Socket>,
        event: String,
        args: Payload,
        ack: Option<AckSender>,
    },
    /// The socket left.
    Disconnected {
        socket: Arc<Socket>,
        reason: DisconnectReason,
    },
    /// A socket already in the namespace, handed over from the tenant's previous version:
    /// run the middleware and, if it passes, `on-connection`.
    Readmit { socket: Arc<Socket> },
    /// What the other servers answered to the guest's `cluster.fetch-sockets`.
    SocketsFetched {
        generation: u64,
        request: u64,
        sockets: Vec<crate::socketio::cluster::RemoteSocket>,
        complete: bool,
    },
    /// What the sockets answered to the guest's `host.broadcast-with-ack`.
    BroadcastReplies {
        generation: u64,
        request: u64,
        replies: crate::socketio::BroadcastReplies,
    },
    /// Another server asks the socket to join a room (`socketsJoin`): under the room
    /// limits, as the tenant's own joins.
    ClusterJoin { socket: Arc<Socket>, room: String },
    /// The tenant's instance on another node sent an event (`serverSideEmit`).
    ServerEvent { event: String, args: Payload },
    /// Faults of this version elsewhere quarantine it.
    Quarantine { reason: String },
    /// A client answered (or did not) an ack the guest asked for.
    AckReply {
        generation: u64,
        request: u64,
        reply: Result<Payload, AckError>,
    },
}
