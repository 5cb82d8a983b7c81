//! One tenant's instance, run as an actor: its calls one at a time, in the order
//! things happened, each under the CPU and wall-clock limits; a fault stops the
//! instance, tells its sockets and leaves a fresh instance for what comes next.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use serde_json::{json, Value};
use tokio::sync::mpsc;
use wasmtime::{Store, UpdateDeadline};

use super::bindings::nsbox::tenant::cluster::RemoteSocket;
use super::bindings::nsbox::tenant::host;
use super::bindings::nsbox::tenant::types::{AckFailure, Args, Handshake, Rejection};
use super::clock::{CallClock, Metered, WallClockPassed};
use super::command::{drop_socket, Command, REDEPLOY_EVENT};
use super::configuration::TenantConfig;
use super::contract::Exports;
use super::fault::Fault;
use super::handle::{
    event_size, ActorStart, EventQueue, Retirement, Senders, Shared, TenantHandle,
};
use super::kind::{Kind, Refusal};
use super::limits::Limits;
use super::log::TenantLog;
use super::policy::{AfterFault, CpuBudget, FaultReport, FaultSink, RestartPolicy};
use super::runtime::{Code, Runtime};
use super::state::{Context, TenantState};
use super::stats::TenantStats;
use crate::engineio::Sid;
use crate::kv::Backend;
use crate::socketio::{AckError, ConnectError, Payload, Socket};

/// Sleeps until `at`, or for ever without one.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// CPU time a call runs before it starts yielding to the other tasks of its thread
/// at every epoch tick.
const YIELD_AFTER: Duration = Duration::from_millis(1);

/// A live instance: its store and its exports.
struct Live {
    store: Store<TenantState>,
    exports: Exports,
}

pub(crate) struct Actor {
    name: Arc<str>,
    runtime: Arc<Runtime>,
    code: Arc<Code>,
    limits: Limits,
    live: Option<Live>,
    /// Bumped on every fault, so replies meant for a dead instance are dropped.
    generation: u64,
    ids: Arc<AtomicU64>,
    mailbox: mpsc::WeakUnboundedSender<Command>,
    queue: Arc<EventQueue>,
    stats: Arc<TenantStats>,
    /// The tenant's way to the log, shared by its instances.
    log: Arc<TenantLog>,
    version: u64,
    /// Set once a new version took over or the tenant was deleted.
    retired: bool,
    /// Where whatever arrives after retirement goes.
    successor: Option<TenantHandle>,
    /// What faults lead to.
    restarts: RestartPolicy,
    /// No fresh instance before this.
    restart_at: Option<Instant>,
    /// Set by a fault, cleared by the next instance to start: that one is a restart.
    faulted: bool,
    /// Set after too many faults (here or, in a cluster, on every node together): why.
    /// Only a new version lifts it.
    quarantine: Option<String>,
    /// Where faults are told.
    faults: Option<FaultSink>,
    /// CPU over all calls, per second.
    cpu: CpuBudget,
    /// Where the tenant's keys are.
    storage: Arc<dyn Backend>,
    /// The configuration this version reads.
    config: Arc<TenantConfig>,
    /// When the last command left the instance without sockets (updated by each
    /// command while it has none): it is evicted `evict_idle_after` after that.
    last_command: Instant,
    /// Which calls run under `cpu_startup` rather than `cpu_per_call`.
    startup: Startup,
    /// The last fault, for a socket whose instance failed in `on-start`.
    last_fault: Option<Fault>,
}

/// How far a fresh instance is in its start, whose calls run under the start-up
/// allowance (`cpu_startup`): its instantiation and `on-start`, then the admission of
/// the socket that started it.
#[derive(Debug, PartialEq)]
enum Startup {
    /// A call of the start is running: the allowance applies.
    Instance,
    /// The `on-connection` of the socket that started the instance is still to come
    /// (and only it gets the allowance).
    Admitting(Sid),
    Done,
}

/// Starts the actor of one version of a tenant; `shared` are the tenant's counters and
/// recent lines, shared by its versions. Nothing is instantiated until the first
/// socket asks.
pub(crate) fn spawn(
    name: &str,
    version: u64,
    runtime: Arc<Runtime>,
    code: Arc<Code>,
    limits: Limits,
    shared: Shared,
) -> TenantHandle {
    let handle = TenantHandle::new(
        Arc::from(name),
        version,
        start,
        runtime,
        code,
        &limits,
        shared,
    );
    // A new version starts with a clean record.
    handle.stats.quarantined.store(0, Ordering::Relaxed);
    handle.log().event(
        tracing::Level::INFO,
        &format!("version {version} now serves"),
    );
    handle
}

/// Starts the actor of `handle`'s version (its first command is on its way): its
/// mailbox, its task.
fn start(handle: &TenantHandle, start: &ActorStart) -> Senders {
    let (mailbox, inbox) = mpsc::unbounded_channel();
    let (retirements, retirement) = mpsc::unbounded_channel();
    let actor = Actor::new(handle, start, mailbox.downgrade());
    handle.stats.reached.store(true, Ordering::Relaxed);
    tokio::spawn(actor.run(inbox, retirement));
    Senders {
        mailbox,
        retirements,
    }
}

impl Actor {
    fn new(
        handle: &TenantHandle,
        start: &ActorStart,
        mailbox: mpsc::WeakUnboundedSender<Command>,
    ) -> Actor {
        let limits = handle.limits().clone();
        let (restarts, cpu) = (RestartPolicy::new(&limits), CpuBudget::new(&limits));
        let version = handle.version;
        Actor {
            log: start.log.clone(),
            name: handle.name.clone(),
            runtime: start.runtime.clone(),
            code: handle.code().clone(),
            limits,
            live: None,
            generation: 0,
            ids: Arc::new(AtomicU64::new(1)),
            mailbox,
            queue: handle.queue.clone(),
            stats: handle.stats.clone(),
            version,
            retired: false,
            successor: None,
            restarts,
            restart_at: None,
            faulted: false,
            quarantine: None,
            faults: handle.faults.clone(),
            cpu,
            storage: handle.storage.clone(),
            config: handle.config.clone(),
            last_command: Instant::now(),
            startup: Startup::Done,
            last_fault: None,
        }
    }

    async fn run(
        mut self,
        mut inbox: mpsc::UnboundedReceiver<Command>,
        mut retirements: mpsc::UnboundedReceiver<Retirement>,
    ) {
        loop {
            let eviction = self.eviction_due();
            let timer = self.timer_due();
            let next = tokio::select! {
                // A retirement first: it must not wait for the queued events, which
                // follow the sockets to the successor.
                biased;
                Some(retirement) = retirements.recv() => {
                    self.retire(retirement);
                    continue;
                }
                // Timers before the queue: a tick is not late for a busy namespace.
                () = sleep_until(timer) => {
                    self.fire_timers().await;
                    continue;
                }
                next = inbox.recv() => next,
                // A command waiting wins over the eviction: it may be a connection.
                () = sleep_until(eviction) => {
                    self.evict();
                    continue;
                }
            };
            let Some(command) = next else { break };
            self.handle(command).await;
            if self.evictable() {
                // Read the clock only when an eviction may follow: not per event of a
                // tenant with sockets.
                self.last_command = Instant::now();
            }
        }
        // Every handle is gone: the tenant was removed. Its sockets were told by whoever removed it.
        tracing::debug!(tenant = %self.name, "tenant actor stopped");
    }

    async fn handle(&mut self, command: Command) {
        if self.retired {
            return self.forward(command);
        }
        match command {
            Command::Middleware { socket, reply } => {
                let verdict = self.middleware(&socket).await;
                let _ = reply.send(verdict);
            }
            Command::Connected { socket } => {
                let Some(handle) = self.handle_of(&socket) else {
                    // Admitted by an instance that has failed or been replaced since: this
                    // one takes it over as if it had just connected.
                    return self.take_over(socket, false).await;
                };
                let admitting = self.startup == Startup::Admitting(socket.id().clone());
                if admitting {
                    self.startup = Startup::Instance;
                }
                self.call(async |exports, store| exports.call_on_connection(store, handle).await)
                    .await;
                if admitting {
                    self.startup = Startup::Done;
                }
            }
            Command::Recovered { socket } => {
                let Some(handle) = self.handle_of(&socket) else {
                    // Held by an instance that has failed or been replaced since.
                    return self.orphaned(&socket);
                };
                self.stats.recovered.fetch_add(1, Ordering::Relaxed);
                self.call(async |exports, store| exports.call_on_recovered(store, handle).await)
                    .await;
            }
            Command::Event {
                socket,
                event,
                args,
                ack,
            } => {
                self.queue.release(event_size(&event, &args));
                let Some(handle) = self.handle_of(&socket) else {
                    return self.orphaned(&socket);
                };
                self.stats.events.fetch_add(1, Ordering::Relaxed);
                let args = to_wit(args);
                let ack = match (ack, self.live.as_mut()) {
                    (Some(ack), Some(live)) => Some(live.store.data_mut().add_ack(handle, ack)),
                    _ => None,
                };
                self.call(async |exports, store| {
                    exports
                        .call_on_event(store, handle, &event, &args, ack)
                        .await
                })
                .await;
            }
            Command::Disconnected { socket, reason } => {
                let Some(handle) = self.handle_of(&socket) else {
                    return;
                };
                self.call(async |exports, store| {
                    exports
                        .call_on_disconnect(store, handle, reason.as_str())
                        .await
                })
                .await;
                if let Some(live) = self.live.as_mut() {
                    live.store.data_mut().remove_socket(handle);
                }
            }
            Command::Readmit { socket } => self.take_over(socket, true).await,
            Command::SocketsFetched {
                generation,
                request,
                sockets,
                complete,
            } => {
                // For the instance that asked only.
                if generation != self.generation || self.live.is_none() {
                    return;
                }
                let sockets: Vec<RemoteSocket> = sockets
                    .into_iter()
                    .map(|s| RemoteSocket {
                        id: s.id,
                        rooms: s.rooms,
                    })
                    .collect();
                self.call(async |exports, store| {
                    exports
                        .call_on_sockets_fetched(store, request, &sockets, complete)
                        .await
                })
                .await;
            }
            Command::BroadcastReplies {
                generation,
                request,
                replies,
            } => {
                // For the instance that asked only.
                if generation != self.generation || self.live.is_none() {
                    return;
                }
                let (args, complete) = (to_wit(replies.replies), replies.complete);
                self.call(async |exports, store| {
                    exports
                        .call_on_broadcast_replies(store, request, args, complete)
                        .await
                })
                .await;
            }
            Command::ClusterJoin { socket, room } => {
                let (Some(handle), Some(live)) = (self.handle_of(&socket), self.live.as_mut())
                else {
                    return;
                };
                // A socket a room limit refuses is told and dropped, as on its own join.
                let _refused = host::Host::join(live.store.data_mut(), handle, room);
            }
            Command::ServerEvent { event, args } => {
                self.queue.release(event_size(&event, &args));
                // Only to a running instance: one is not started for it.
                if self.live.is_some() {
                    self.stats.events.fetch_add(1, Ordering::Relaxed);
                    let args = to_wit(args);
                    self.call(async |exports, store| {
                        exports.call_on_server_event(store, event, args).await
                    })
                    .await;
                }
            }
            Command::Quarantine { reason } => {
                if self.quarantine.is_none() {
                    let line = format!("quarantined until a new version is uploaded: {reason}");
                    self.log.event(tracing::Level::ERROR, &line);
                    self.stats.quarantined.store(1, Ordering::Relaxed);
                    self.quarantine = Some(reason);
                }
            }
            Command::AckReply {
                generation,
                request,
                reply,
            } => {
                if generation != self.generation {
                    return;
                }
                let Some(live) = self.live.as_mut() else {
                    return;
                };
                // Awaited until handled: replies in the mailbox count toward the bound.
                let state = live.store.data_mut();
                state.request_done(request);
                let reply = match reply {
                    Ok(args) => Ok(to_wit(args)),
                    Err(AckError::Timeout) => Err(AckFailure::Timeout),
                    Err(AckError::Disconnected) => Err(AckFailure::Disconnected),
                };
                self.call(async |exports, store| {
                    exports
                        .call_on_ack_reply(store, request, reply.as_ref().map_err(|e| *e))
                        .await
                })
                .await;
            }
        }
    }

    /// After retirement: everything goes to the successor; without one (the tenant was
    /// deleted) new sockets are refused and stragglers disconnected.
    fn forward(&mut self, command: Command) {
        let next = self.successor.clone();
        match command {
            Command::Middleware { socket, reply } => match next {
                Some(next) => {
                    let _ = next.send(Command::Middleware { socket, reply });
                }
                None => {
                    let _ = reply.send(Err(Refusal::UnknownTenant.with_data(
                        json!({ "namespace": socket.nsp().name(), "tenant": &*self.name }),
                    )));
                }
            },
            Command::Connected { socket } => match next {
                Some(next) => next.connected(&socket),
                None => self.orphaned(&socket),
            },
            Command::Recovered { socket } => match next {
                Some(next) => next.recovered(&socket),
                None => self.orphaned(&socket),
            },
            Command::Readmit { socket } => match next {
                Some(next) => next.readmit(socket),
                None => self.orphaned(&socket),
            },
            Command::Event {
                socket,
                event,
                args,
                ack,
            } => {
                self.queue.release(event_size(&event, &args));
                match next {
                    Some(next) => next.event(&socket, event, args, ack, Instant::now()),
                    None => self.orphaned(&socket),
                }
            }
            Command::Disconnected { socket, reason } => {
                if let Some(next) = next {
                    next.disconnected(&socket, reason);
                }
            }
            Command::ClusterJoin { socket, room } => match next {
                Some(next) => next.cluster_join(&socket, room),
                None => self.orphaned(&socket),
            },
            Command::ServerEvent { event, args } => {
                self.queue.release(event_size(&event, &args));
                if let Some(next) = next {
                    next.server_event(&event, args);
                }
            }
            Command::AckReply { .. }
            | Command::Quarantine { .. }
            | Command::SocketsFetched { .. }
            | Command::BroadcastReplies { .. } => {}
        }
    }

    /// Retires this version (once: a second retirement only runs its `done`).
    fn retire(&mut self, retirement: Retirement) {
        if !self.retired {
            self.hand_over(retirement.successor);
        }
        (retirement.done)();
    }

    /// Gives every socket to the successor, which runs its own middleware and
    /// `on-connection` for it; without a successor, tells and disconnects them.
    fn hand_over(&mut self, successor: Option<TenantHandle>) {
        self.retired = true;
        self.generation += 1;
        self.successor = successor.clone();
        let Some(live) = self.live.take() else { return };
        let sockets = live.store.into_data().drain_sockets();
        tracing::info!(
            tenant = %self.name,
            version = self.version,
            sockets = sockets.len(),
            successor = successor.as_ref().map(|s| s.version),
            "tenant version retired"
        );
        for socket in sockets {
            if !socket.connected() {
                // Waiting for its client (connection state recovery): what the tenant
                // knew of it stays with this version, so its session ends here.
                socket.disconnect();
                continue;
            }
            match &successor {
                Some(next) => {
                    let own = socket.id().to_string();
                    for room in socket.rooms() {
                        if room != own {
                            socket.leave(&room);
                        }
                    }
                    next.readmit(socket);
                }
                None => drop_socket(
                    &socket,
                    &self.name,
                    Kind::Deleted,
                    "the tenant was deleted",
                    None,
                ),
            }
        }
    }

    /// When the live instance is to be evicted: it has no sockets and the tenant
    /// evicts idle instances.
    fn eviction_due(&self) -> Option<Instant> {
        self.evictable()
            .then(|| self.last_command.checked_add(self.limits.evict_idle_after))
            .flatten()
    }

    /// A live instance without sockets or pending timers, of a tenant that evicts
    /// idle instances.
    fn evictable(&self) -> bool {
        self.live.as_ref().is_some_and(|live| {
            let state = live.store.data();
            state.sockets.is_empty() && state.timers.len() == 0
        }) && !self.limits.evict_idle_after.is_zero()
    }

    /// When the live instance's next timer is due.
    fn timer_due(&self) -> Option<Instant> {
        self.live.as_ref()?.store.data().timers.next_due()
    }

    /// Calls `on-timer` for each timer due, in order; a fault stops the rest (they
    /// ended with the instance).
    async fn fire_timers(&mut self) {
        let Some(live) = self.live.as_mut() else {
            return;
        };
        let due = live.store.data_mut().timers.take_due(Instant::now());
        for timer in due {
            if self.live.is_none() {
                return;
            }
            self.call(async |exports, store| exports.call_on_timer(store, timer).await)
                .await;
        }
    }

    /// Stops the idle instance and frees what it holds; the next connection starts a
    /// fresh one. Replies to its requests (acks) are dropped with its generation.
    fn evict(&mut self) {
        if self.live.take().is_some() {
            self.generation += 1;
            self.stats.evictions.fetch_add(1, Ordering::Relaxed);
            self.log
                .event(tracing::Level::INFO, "the idle instance was evicted");
        }
    }

    /// Takes over a connected socket another instance admitted, as if it had just
    /// connected; `redeployed` tells the client a new version did.
    async fn take_over(&mut self, socket: Arc<Socket>, redeployed: bool) {
        if !socket.connected() || self.handle_of(&socket).is_some() {
            return;
        }
        match self.middleware(&socket).await {
            Ok(()) => {
                let Some(handle) = self.handle_of(&socket) else {
                    return;
                };
                if redeployed {
                    let notice = json!({ "tenant": &*self.name, "version": self.version });
                    socket.emit(REDEPLOY_EVENT, Payload::from_values(&[notice]));
                }
                self.call(async |exports, store| exports.call_on_connection(store, handle).await)
                    .await;
            }
            Err(refusal) => drop_socket(
                &socket,
                &self.name,
                Kind::Refused,
                refusal.message,
                Some(refusal.data.unwrap_or(Value::Null)),
            ),
        }
    }

    /// A socket the live instance does not know: an instance that has since failed let
    /// it in. Nothing would answer it, so it is disconnected rather than left hanging.
    fn orphaned(&self, socket: &Arc<Socket>) {
        if socket.connected() {
            tracing::debug!(tenant = %self.name, socket = %socket.id(), "disconnecting a socket of a failed instance");
            socket.disconnect();
        }
    }

    fn handle_of(&self, socket: &Socket) -> Option<u64> {
        self.live.as_ref()?.store.data().sockets.handle_of(socket)
    }

    async fn middleware(&mut self, socket: &Arc<Socket>) -> Result<(), ConnectError> {
        if let Some(reason) = &self.quarantine {
            return Err(Refusal::TenantQuarantined.with_data(json!({
                "tenant": &*self.name,
                "faults": self.restarts.recent(),
                "error": reason,
            })));
        }
        let fresh = self.live.is_none();
        if fresh {
            if let Some(at) = self.restart_at.take() {
                // Backing off after repeated faults: the socket waits (well within the
                // client's connect timeout) rather than being refused.
                tokio::time::sleep_until(at.into()).await;
            }
            if let Err(fault) = self.instantiate().await {
                let line = format!("the instance failed to start ({}): {fault}", fault.kind());
                self.log.event(tracing::Level::WARN, &line);
                let refusal = self.refusal(&fault);
                match fault {
                    Fault::Capacity(_) => self.stats.tripped(fault.kind()),
                    fault => self.record_fault(fault),
                }
                return Err(refusal);
            }
        }
        let Some(live) = self.live.as_mut() else {
            // It started and failed in `on-start` (a fault already counted): say which.
            return Err(match self.last_fault.take() {
                Some(fault) => self.refusal(&fault),
                None => Refusal::TenantUnavailable.plain(),
            });
        };
        if self.stats.sockets.load(Ordering::Relaxed) >= self.limits.max_sockets {
            self.stats.tripped(Kind::TenantFull);
            return Err(Refusal::TenantFull.with_data(
                json!({ "tenant": &*self.name, "max_sockets": self.limits.max_sockets }),
            ));
        }
        let handle = live.store.data_mut().add_socket(socket);
        let handshake = handshake_of(socket);
        if fresh {
            // The socket that asked for the instance is let in under the allowance too.
            self.startup = Startup::Instance;
        }
        let verdict = self
            .call(async |exports, store| exports.call_middleware(store, handle, &handshake).await)
            .await;
        if fresh {
            // Its `on-connection` comes under the allowance too.
            self.startup = match verdict {
                Some(Ok(())) => Startup::Admitting(socket.id().clone()),
                _ => Startup::Done,
            };
        }
        let dropped = self
            .live
            .as_ref()
            .and_then(|live| live.store.data().dropped(handle));
        match (verdict, dropped) {
            (Some(_), Some((kind, error))) => {
                self.forget(handle);
                Err(Refusal::LimitExceeded.with_data(
                    json!({ "tenant": &*self.name, "kind": kind.as_str(), "error": error }),
                ))
            }
            (Some(Ok(())), None) => Ok(()),
            (Some(Err(rejection)), None) => {
                self.forget(handle);
                self.rejection(rejection)
            }
            (None, _) => Err(Refusal::TenantError.with_data(
                json!({ "tenant": &*self.name, "error": "the tenant failed while running its middleware" }),
            )),
        }
    }

    /// Forgets a socket the middleware did not let in.
    fn forget(&mut self, handle: u64) {
        if let Some(live) = self.live.as_mut() {
            live.store.data_mut().remove_socket(handle);
        }
    }

    /// The guest's refusal as the client's `connect_error`; one larger than a message
    /// may be is the guest's fault, as an emit that large would be.
    fn rejection(&mut self, rejection: Rejection) -> Result<(), ConnectError> {
        let size = rejection.message.len() + rejection.data.as_ref().map_or(0, String::len);
        let limit = self.limits.max_message_bytes;
        if size > limit {
            let fault = Fault::MessageTooLarge { size, limit };
            let refusal = Refusal::TenantError.with_data(
                json!({ "tenant": &*self.name, "kind": fault.kind().as_str(), "error": fault.to_string() }),
            );
            self.fail(fault);
            return Err(refusal);
        }
        // Data that is not JSON, or nests deeper than JSON may here, goes as a string.
        let data = rejection
            .data
            .map(|text: String| serde_json::from_str(&text).unwrap_or(Value::String(text)));
        Err(ConnectError {
            message: rejection.message,
            data,
        })
    }

    fn refusal(&self, fault: &Fault) -> ConnectError {
        Refusal::TenantUnavailable.with_data(
            json!({ "tenant": &*self.name, "kind": fault.kind().as_str(), "error": fault.to_string() }),
        )
    }

    /// Creates a fresh instance; its start-up runs under the same limits as a call.
    async fn instantiate(&mut self) -> Result<(), Fault> {
        let context = Context {
            tenant: self.name.clone(),
            ids: self.ids.clone(),
            mailbox: self.mailbox.clone(),
            stats: self.stats.clone(),
            log: self.log.clone(),
            storage: self.storage.clone(),
            config: self.config.clone(),
        };
        self.code.make_image().await;
        let state = TenantState::new(context, self.generation, &self.limits);
        let clock = state.clock.clone();
        let mut store = Store::new(self.runtime.engine(), state);
        store.limiter(|state| &mut state.limiter);
        store.set_epoch_deadline(1);
        let ticker = self.runtime.ticker().clone();
        store.epoch_deadline_callback(move |context| {
            ticker.interrupted();
            let clock = &context.data().clock;
            let (spent, limit) = (clock.spent(), clock.limit());
            if spent > limit {
                return Err(Fault::Deadline { limit }.into());
            }
            if spent < YIELD_AFTER {
                // Most calls take microseconds; one that merely crossed a tick carries on
                // rather than queue behind every other task of the thread.
                return Ok(UpdateDeadline::Continue(1));
            }
            // A long call lets the other tasks of its thread run between its ticks.
            Ok(UpdateDeadline::YieldCustom(
                1,
                Box::pin(tokio::task::yield_now()),
            ))
        });
        self.startup = Startup::Instance;
        clock.start(self.cpu_limit());
        let instantiation = self.code.pre.instantiate_async(&mut store);
        let started = metered(
            instantiation,
            clock,
            self.limits.wall_per_call,
            Instant::now(),
            &self.runtime,
        );
        let exports = match started.await {
            Ok(exports) => exports,
            Err(fault) => {
                self.startup = Startup::Done;
                return Err(fault);
            }
        };
        self.live = Some(Live { store, exports });
        self.stats.instantiations.fetch_add(1, Ordering::Relaxed);
        if std::mem::take(&mut self.faulted) {
            self.stats.restarts.fetch_add(1, Ordering::Relaxed);
            self.log.event(
                tracing::Level::INFO,
                "a fresh instance started after the fault",
            );
        }
        // Before any other call: the tenant re-arms what it needs.
        self.call(async |exports, store| exports.call_on_start(store).await)
            .await;
        self.startup = Startup::Done;
        Ok(())
    }

    /// Calls into the live instance, if there is one, under the limits. A fault stops
    /// the instance and yields `None`.
    async fn call<R>(
        &mut self,
        call: impl AsyncFnOnce(&Exports, &mut Store<TenantState>) -> wasmtime::Result<R>,
    ) -> Option<R> {
        self.live.as_ref()?;
        let now = self.throttle(Instant::now()).await;
        let limit = self.cpu_limit();
        let live = self.live.as_mut()?;
        let clock = live.store.data().clock.clone();
        clock.start(limit);
        // The deadline counts from now: a stale one would make the call yield at once.
        live.store.set_epoch_deadline(1);
        live.store.data_mut().start_call();
        let call = call(&live.exports, &mut live.store);
        let outcome = metered(
            call,
            clock.clone(),
            self.limits.wall_per_call,
            now,
            &self.runtime,
        )
        .await;
        let spent = clock.spent();
        self.stats.call_cpu.observe(spent);
        self.cpu.spend(spent);
        match outcome {
            Ok(value) => Some(value),
            Err(fault) => {
                self.fail(fault);
                None
            }
        }
    }

    /// What the next call may spend: more while the instance starts.
    fn cpu_limit(&self) -> Duration {
        match self.startup {
            Startup::Instance => self.limits.cpu_per_call.max(self.limits.cpu_startup),
            Startup::Admitting(_) | Startup::Done => self.limits.cpu_per_call,
        }
    }

    /// Waits for the next second when this one's CPU budget is spent; returns the time
    /// the call may start, `now` unless it waited.
    async fn throttle(&mut self, now: Instant) -> Instant {
        let Some(next) = self.cpu.next_call_at(now) else {
            return now;
        };
        self.stats.throttled.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep_until(next.into()).await;
        let now = Instant::now();
        self.cpu.next_call_at(now);
        now
    }

    /// Counts a fault and applies the restart policy: restart now, back off, or
    /// quarantine until a new version is uploaded.
    fn record_fault(&mut self, fault: Fault) {
        self.faulted = true;
        self.last_fault = Some(fault.clone());
        self.stats.faults.fetch_add(1, Ordering::Relaxed);
        self.stats.tripped(fault.kind());
        if let Some(faults) = &self.faults {
            faults(FaultReport {
                tenant: self.name.to_string(),
                version: self.version,
                error: fault.to_string(),
                window: self.limits.fault_window,
                quarantine_after: self.limits.quarantine_after_faults,
            });
        }
        match self.restarts.fault_at(Instant::now()) {
            AfterFault::Restart => {}
            AfterFault::BackOff(at) => self.restart_at = Some(at),
            AfterFault::Quarantine(faults) => {
                let line = format!(
                    "quarantined after {faults} faults, until a new version is uploaded; the last: {fault}"
                );
                self.log.event(tracing::Level::ERROR, &line);
                self.stats.quarantined.store(1, Ordering::Relaxed);
                self.quarantine = Some(fault.to_string());
            }
        }
    }

    /// Stops the instance: every socket of the tenant gets `nsbox:error` and is
    /// disconnected; the next socket to ask gets a fresh instance.
    fn fail(&mut self, fault: Fault) {
        self.generation += 1;
        self.record_fault(fault.clone());
        let Some(live) = self.live.take() else { return };
        let mut state = live.store.into_data();
        let sockets = state.drain_sockets();
        let line = format!(
            "the instance was stopped ({}): {fault}; its {} sockets are disconnected",
            fault.kind(),
            sockets.len()
        );
        self.log.event(tracing::Level::WARN, &line);
        for socket in sockets {
            drop_socket(&socket, &self.name, fault.kind(), &fault, None);
        }
    }
}

/// Runs a call into the tenant's code (or its instantiation), which starts `now`, under
/// the CPU deadline (enforced by the epoch callback, which reads the clock; the epoch
/// ticks while the call is counted as running) and the wall-clock limit (a call past it
/// is dropped, which leaves the instance unusable, so the caller discards it).
async fn metered<R>(
    call: impl Future<Output = wasmtime::Result<R>>,
    clock: Arc<CallClock>,
    wall_limit: Duration,
    now: Instant,
    runtime: &Runtime,
) -> Result<R, Fault> {
    let _running = runtime.ticker().running();
    match Metered::new(call, clock, wall_limit, now).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(Fault::from_error(&error)),
        Err(WallClockPassed) => Err(Fault::WallClock { limit: wall_limit }),
    }
}

/// The arguments as the guest takes them (the JSON moved, not copied).
fn to_wit(args: Payload) -> Args {
    let (json, attachments) = args.into_parts();
    Args {
        json,
        attachments: attachments.iter().map(|b| b.to_vec()).collect(),
    }
}

fn handshake_of(socket: &Socket) -> Handshake {
    let handshake = socket.handshake();
    Handshake {
        namespace: socket.nsp().name().to_owned(),
        id: socket.id().to_string(),
        auth: handshake.auth_json().to_owned(),
        query: handshake.query.to_vec(),
        headers: handshake.headers.to_vec(),
        address: address_text(handshake.address),
        issued: handshake
            .time
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0),
    }
}

/// `ip:port` as `SocketAddr` displays it, an IPv4 one written without `fmt` (a tenth
/// of the instructions; once per socket).
fn address_text(address: SocketAddr) -> String {
    let SocketAddr::V4(v4) = address else {
        return address.to_string();
    };
    let mut text = String::with_capacity("255.255.255.255:65535".len());
    let mut digits = itoa::Buffer::new();
    for (i, octet) in v4.ip().octets().into_iter().enumerate() {
        if i > 0 {
            text.push('.');
        }
        text.push_str(digits.format(octet));
    }
    text.push(':');
    text.push_str(digits.format(v4.port()));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_reads_as_its_display() {
        for address in [
            "127.0.0.1:1",
            "0.0.0.0:0",
            "255.255.255.255:65535",
            "10.20.3.4:8080",
            "[::1]:443",
            "[::ffff:127.0.0.1]:9",
        ] {
            let address: SocketAddr = address.parse().expect("an address");
            assert_eq!(address_text(address), address.to_string());
        }
    }
}
