//! The way to a tenant's actor: what sockets and the registry hold. Events pass their
//! rate limits and the queue bound here, before the actor (and the guest) sees them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use serde_json::json;
use tokio::sync::{mpsc, oneshot};

use super::command::{drop_socket, Command};
use super::configuration::TenantConfig;
use super::journal::Journal;
use super::kind::{Kind, Refusal};
use super::limits::Limits;
use super::log::TenantLog;
use super::policy::FaultSink;
use super::rate::TokenBucket;
use super::runtime::{Code, Runtime};
use super::stats::TenantStats;
use crate::kv::Backend;
use crate::socketio::{AckSender, ConnectError, DisconnectReason, Payload, Socket};

/// A new version takes over (or, without one, the tenant is deleted): the actor hands
/// every socket to the successor, runs `done`, and forwards whatever arrives from then
/// on. Sent apart from the mailbox, so that it does not wait behind the queued events
/// (they follow the sockets to the successor instead).
pub(crate) struct Retirement {
    pub(crate) successor: Option<TenantHandle>,
    pub(crate) done: Box<dyn FnOnce() + Send>,
}

/// The events queued for a tenant's actor, counted and weighed: its mailbox holds at
/// most `queued_events` events and `queued_event_bytes` bytes of them. (What else
/// goes there is bounded by the sockets and by the acks awaited.)
pub(crate) struct EventQueue {
    events: AtomicUsize,
    bytes: AtomicUsize,
    max_events: usize,
    max_bytes: usize,
}

impl EventQueue {
    /// Takes an event of `size` bytes into the queue, if it fits.
    fn admit(&self, size: usize) -> bool {
        if self.events.fetch_add(1, Ordering::AcqRel) >= self.max_events {
            self.events.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        if self.bytes.fetch_add(size, Ordering::AcqRel) + size > self.max_bytes {
            self.release(size);
            return false;
        }
        true
    }

    /// An event of `size` bytes left the queue.
    pub(crate) fn release(&self, size: usize) {
        self.events.fetch_sub(1, Ordering::AcqRel);
        self.bytes.fetch_sub(size, Ordering::AcqRel);
    }
}

/// What an event weighs in the queue and in `bytes_in`: its name, JSON and attachments.
pub(crate) fn event_size(event: &str, args: &Payload) -> usize {
    event.len() + args.size()
}

/// What a version of a tenant runs with besides its code and limits: what its versions
/// share (its counters, its recent lines, the store of its keys) and the configuration
/// it reads.
#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) stats: Arc<TenantStats>,
    pub(crate) journal: Arc<Journal>,
    pub(crate) storage: Arc<dyn Backend>,
    pub(crate) config: Arc<TenantConfig>,
    /// Where faults are told, beside the instance's own restart policy.
    pub(crate) faults: Option<FaultSink>,
}

/// The way into a version's actor. The actor starts with the first command sent to it:
/// until then a tenant costs its handle, not a task and its mailbox (a platform of
/// 100,000 tenants has most of them unreached at any time).
pub(crate) struct ActorStart {
    senders: OnceLock<Senders>,
    /// What starts it (the actor's module, which knows this one, not the other way).
    starter: Starter,
    pub(crate) runtime: Arc<Runtime>,
    /// The version's log, made with the handle (its first line says the version serves).
    pub(crate) log: Arc<TenantLog>,
}

/// Starts the actor of a handle's version: its mailbox, its task.
pub(crate) type Starter = fn(&TenantHandle, &ActorStart) -> Senders;

/// A started actor's mailbox and its way to retirement.
pub(crate) struct Senders {
    pub(crate) mailbox: mpsc::UnboundedSender<Command>,
    pub(crate) retirements: mpsc::UnboundedSender<Retirement>,
}

/// The way to a running tenant: cheap to clone, one per socket handler.
#[derive(Clone)]
pub struct TenantHandle {
    pub(crate) name: Arc<str>,
    pub(crate) version: u64,
    actor: Arc<ActorStart>,
    pub(crate) queue: Arc<EventQueue>,
    pub(crate) stats: Arc<TenantStats>,
    /// The tenant's recent lines, shared by its versions.
    pub(crate) journal: Arc<Journal>,
    /// What one socket may send per second.
    socket_rate: u32,
    /// What all the tenant's sockets together may send.
    tenant_rate: Arc<parking_lot::Mutex<TokenBucket>>,
    /// The component and limits this version runs with (kept to restart it with others).
    code: Arc<Code>,
    limits: Arc<Limits>,
    /// The configuration this version reads.
    pub(crate) config: Arc<TenantConfig>,
    /// Where the tenant's keys are.
    pub(crate) storage: Arc<dyn Backend>,
    /// Where faults are told.
    pub(crate) faults: Option<FaultSink>,
}

impl TenantHandle {
    /// The way to the actor of one version of a tenant under `limits`, on `runtime`,
    /// started by `starter` at the first command; `shared` are the tenant's, shared by
    /// its versions.
    pub(crate) fn new(
        name: Arc<str>,
        version: u64,
        starter: Starter,
        runtime: Arc<Runtime>,
        code: Arc<Code>,
        limits: &Limits,
        shared: Shared,
    ) -> TenantHandle {
        let Shared {
            stats,
            journal,
            storage,
            config,
            faults,
        } = shared;
        let log = Arc::new(TenantLog::new(
            name.clone(),
            limits,
            stats.clone(),
            journal.clone(),
        ));
        TenantHandle {
            name,
            version,
            actor: Arc::new(ActorStart {
                senders: OnceLock::new(),
                starter,
                runtime,
                log,
            }),
            queue: Arc::new(EventQueue {
                events: AtomicUsize::new(0),
                bytes: AtomicUsize::new(0),
                max_events: limits.queued_events,
                max_bytes: limits.queued_event_bytes,
            }),
            stats,
            journal,
            socket_rate: limits.events_per_second_per_socket,
            tenant_rate: Arc::new(parking_lot::Mutex::new(TokenBucket::new(
                limits.events_per_second,
            ))),
            code,
            limits: Arc::new(limits.clone()),
            config,
            storage,
            faults,
        }
    }

    /// The actor's way in, the actor started by the first use.
    fn senders(&self) -> &Senders {
        self.actor
            .senders
            .get_or_init(|| (self.actor.starter)(self, &self.actor))
    }

    /// Sends a command to the actor (starting it).
    pub(crate) fn send(&self, command: Command) -> Result<(), mpsc::error::SendError<Command>> {
        self.senders().mailbox.send(command)
    }

    /// The version's log.
    pub(crate) fn log(&self) -> &Arc<TenantLog> {
        &self.actor.log
    }

    /// The tenant's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The tenant's counters.
    pub fn stats(&self) -> &Arc<TenantStats> {
        &self.stats
    }

    /// The tenant's recent log lines.
    pub fn journal(&self) -> &Arc<Journal> {
        &self.journal
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
        self.stats.tripped(Kind::RateLimit);
        drop_socket(socket, &self.name, Kind::RateLimit, error, None);
    }

    /// The version this handle runs (0 for a tenant from the configuration file).
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Runs the guest's middleware for `socket`.
    pub(crate) async fn middleware(&self, socket: Arc<Socket>) -> Result<(), ConnectError> {
        let (reply, verdict) = oneshot::channel();
        let unavailable = || Refusal::TenantUnavailable.with_data(json!({ "tenant": &*self.name }));
        self.send(Command::Middleware { socket, reply })
            .map_err(|_| unavailable())?;
        verdict.await.map_err(|_| unavailable())?
    }

    /// Tells the tenant an admitted socket was accepted.
    pub(crate) fn connected(&self, socket: &Arc<Socket>) {
        let _ = self.send(Command::Connected {
            socket: socket.clone(),
        });
    }

    /// Tells the tenant a socket was given back to its client.
    pub(crate) fn recovered(&self, socket: &Arc<Socket>) {
        let _ = self.send(Command::Recovered {
            socket: socket.clone(),
        });
    }

    /// Tells the tenant a socket left.
    pub(crate) fn disconnected(&self, socket: &Arc<Socket>, reason: DisconnectReason) {
        let _ = self.send(Command::Disconnected {
            socket: socket.clone(),
            reason,
        });
    }

    /// Another server asks `socket` to join `room`.
    pub(crate) fn cluster_join(&self, socket: &Arc<Socket>, room: String) {
        let _ = self.send(Command::ClusterJoin {
            socket: socket.clone(),
            room,
        });
    }

    /// An event the tenant's instance on another node sent: to this instance if it
    /// runs (an instance runs where the tenant has sockets), under the tenant's event
    /// rate and queue like a socket's.
    pub(crate) fn server_event(&self, event: &str, args: Payload) {
        if !self.tenant_rate.lock().allow() {
            self.stats.dropped_events.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let size = event_size(event, &args);
        if !self.queue.admit(size) {
            self.stats.dropped_events.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let _ = self.send(Command::ServerEvent {
            event: event.to_owned(),
            args,
        });
    }

    /// Quarantines this version as its faults elsewhere (on other nodes) asked: new
    /// sockets are refused until a new version; those connected stay.
    pub fn quarantine(&self, reason: String) {
        let _ = self.send(Command::Quarantine { reason });
    }

    pub(crate) fn readmit(&self, socket: Arc<Socket>) {
        let _ = self.send(Command::Readmit { socket });
    }

    /// Hands every socket to `successor` (or, without one, disconnects them); `done`
    /// runs once they are all on their way.
    pub(crate) fn retire(&self, successor: Option<TenantHandle>, done: Box<dyn FnOnce() + Send>) {
        if let Err(mpsc::error::SendError(retirement)) = self
            .senders()
            .retirements
            .send(Retirement { successor, done })
        {
            (retirement.done)();
        }
    }

    /// An event from `socket` that `arrived` then (the clock read for the socket's own
    /// rate is the tenant's too).
    pub(crate) fn event(
        &self,
        socket: &Arc<Socket>,
        event: String,
        args: Payload,
        ack: Option<AckSender>,
        arrived: Instant,
    ) {
        let within_rate = self.tenant_rate.lock().allow_at(arrived);

        if !within_rate {
            self.stats.dropped_events.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(tenant = %self.name, event, "event dropped: the tenant's events per second are spent");
            return;
        }
        let size = event_size(&event, &args);
        if !self.queue.admit(size) {
            self.stats.dropped_events.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(tenant = %self.name, event, "event dropped: the tenant's queue is full");
            return;
        }
        self.stats
            .bytes_in
            .fetch_add(size as u64, Ordering::Relaxed);
        let _ = self.send(Command::Event {
            socket: socket.clone(),
            event,
            args,
            ack,
        });
    }
}
