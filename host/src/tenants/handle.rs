//! The way to a tenant's actor: what sockets and the registry hold. Events pass their
//! rate limits and the queue bound here, before the actor (and the guest) sees them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::json;
use tokio::sync::{mpsc, oneshot};

use super::actor::Actor;
use super::limits::Limits;
use super::rate::TokenBucket;
use super::runtime::{Code, Runtime};
use super::stats::TenantStats;
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
    kind: &str,
    error: impl std::fmt::Display,
    data: Option<serde_json::Value>,
) {
    if !socket.connected() {
        return;
    }
    let mut notice = json!({ "tenant": tenant, "kind": kind, "error": error.to_string() });
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
    /// A new version takes over (or, without one, the tenant is deleted): hand every
    /// socket to the successor, run `done`, and forward whatever arrives from then on.
    Retire {
        successor: Option<TenantHandle>,
        done: Box<dyn FnOnce() + Send>,
    },
    /// A client answered (or did not) an ack the guest asked for.
    AckReply {
        generation: u64,
        request: u64,
        reply: Result<Payload, AckError>,
    },
}

/// The way to a running tenant: cheap to clone, one per socket handler.
#[derive(Clone)]
pub struct TenantHandle {
    pub(crate) name: Arc<str>,
    pub(crate) version: u64,
    pub(crate) mailbox: mpsc::UnboundedSender<Command>,
    pub(crate) queued_events: Arc<AtomicUsize>,
    queue_limit: usize,
    pub(crate) stats: Arc<TenantStats>,
    /// What one socket may send per second.
    socket_rate: u32,
    /// What all the tenant's sockets together may send.
    tenant_rate: Arc<std::sync::Mutex<TokenBucket>>,
    /// The component and limits this version runs with (kept to restart it with others).
    code: Arc<Code>,
    limits: Arc<Limits>,
}

impl TenantHandle {
    /// Starts the actor of one version of a tenant; `stats` are the tenant's, shared by
    /// its versions. Nothing is instantiated until the first socket asks.
    pub fn spawn(
        name: &str,
        version: u64,
        runtime: Arc<Runtime>,
        code: Arc<Code>,
        limits: Limits,
        stats: Arc<TenantStats>,
    ) -> TenantHandle {
        let (mailbox, inbox) = mpsc::unbounded_channel();
        let name: Arc<str> = Arc::from(name);
        let handle = TenantHandle {
            name: name.clone(),
            version,
            mailbox: mailbox.clone(),
            queued_events: Arc::default(),
            queue_limit: limits.queued_events,
            stats,
            socket_rate: limits.events_per_second_per_socket,
            tenant_rate: Arc::new(std::sync::Mutex::new(TokenBucket::new(
                limits.events_per_second,
            ))),
            code: code.clone(),
            limits: Arc::new(limits.clone()),
        };
        let actor = Actor::new(
            name,
            version,
            runtime,
            code,
            limits,
            &handle,
            mailbox.downgrade(),
        );
        // A new version starts with a clean record.
        handle.stats.quarantined.store(0, Ordering::Relaxed);
        tokio::spawn(actor.run(inbox));
        handle
    }

    /// The tenant's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The tenant's counters.
    pub fn stats(&self) -> &Arc<TenantStats> {
        &self.stats
    }

    /// The limits this version runs under.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The component this version runs.
    pub fn code(&self) -> &Arc<Code> {
        &self.code
    }

    /// A bucket for one socket's events, at this tenant's per-socket rate.
    pub(crate) fn socket_bucket(&self) -> TokenBucket {
        TokenBucket::new(self.socket_rate)
    }

    /// A socket sent events faster than a socket may: it is told and disconnected.
    pub(crate) fn rate_limited(&self, socket: &Arc<Socket>) {
        self.stats.dropped_events.fetch_add(1, Ordering::Relaxed);
        if !socket.connected() {
            return;
        }
        tracing::warn!(tenant = %self.name, socket = %socket.id(), rate = self.socket_rate, "socket over its events per second; disconnecting it");
        let error = format!(
            "more than {} events per second from this socket",
            self.socket_rate
        );
        self.stats.tripped("rate-limit");
        drop_socket(socket, &self.name, "rate-limit", error, None);
    }

    /// The version this handle runs (0 for a tenant from the configuration file).
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Runs the guest's middleware for `socket`.
    pub(crate) async fn middleware(&self, socket: Arc<Socket>) -> Result<(), ConnectError> {
        let (reply, verdict) = oneshot::channel();
        let unavailable =
            || ConnectError::with_data("tenant unavailable", json!({ "tenant": &*self.name }));
        self.mailbox
            .send(Command::Middleware { socket, reply })
            .map_err(|_| unavailable())?;
        verdict.await.map_err(|_| unavailable())?
    }

    /// Tells the tenant an admitted socket was accepted.
    pub(crate) fn connected(&self, socket: &Arc<Socket>) {
        let _ = self.mailbox.send(Command::Connected {
            socket: socket.clone(),
        });
    }

    /// Tells the tenant a socket left.
    pub(crate) fn disconnected(&self, socket: &Arc<Socket>, reason: DisconnectReason) {
        let _ = self.mailbox.send(Command::Disconnected {
            socket: socket.clone(),
            reason,
        });
    }

    pub(crate) fn readmit(&self, socket: Arc<Socket>) {
        let _ = self.mailbox.send(Command::Readmit { socket });
    }

    /// Hands every socket to `successor` (or, without one, disconnects them); `done`
    /// runs once they are all on their way.
    pub(crate) fn retire(&self, successor: Option<TenantHandle>, done: Box<dyn FnOnce() + Send>) {
        if let Err(mpsc::error::SendError(Command::Retire { done, .. })) =
            self.mailbox.send(Command::Retire { successor, done })
        {
            done();
        }
    }

    pub(crate) fn event(
        &self,
        socket: &Arc<Socket>,
        event: &str,
        args: Payload,
        ack: Option<AckSender>,
    ) {
        let within_rate = self
            .tenant_rate
            .lock()
            .map(|mut b| b.allow())
            .unwrap_or(true);
        if !within_rate {
            self.stats.dropped_events.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(tenant = %self.name, event, "event dropped: the tenant's events per second are spent");
            return;
        }
        if self.queued_events.fetch_add(1, Ordering::AcqRel) >= self.queue_limit {
            self.queued_events.fetch_sub(1, Ordering::AcqRel);
            self.stats.dropped_events.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(tenant = %self.name, event, "event dropped: the tenant's queue is full");
            return;
        }
        self.stats
            .bytes_in
            .fetch_add((event.len() + args.size()) as u64, Ordering::Relaxed);
        let _ = self.mailbox.send(Command::Event {
            socket: socket.clone(),
            event: event.to_owned(),
            args,
            ack,
        });
    }
}
