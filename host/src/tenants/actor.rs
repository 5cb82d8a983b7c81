//! One tenant's instance, run as an actor: its calls one at a time, in the order
//! things happened, each under the CPU and wall-clock limits; a fault stops the
//! instance, tells its sockets and leaves a fresh instance for what comes next.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};
use wasmtime::{Store, UpdateDeadline};

use super::bindings::nsbox::tenant::types::{AckFailure, Args, Handshake};
use super::bindings::Tenant;
use super::clock::{CallClock, Metered};
use super::fault::Fault;
use super::limits::Limits;
use super::rate::TokenBucket;
use super::runtime::{Code, Runtime};
use super::state::TenantState;
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
    name: Arc<str>,
    version: u64,
    mailbox: mpsc::UnboundedSender<Command>,
    queued_events: Arc<AtomicUsize>,
    queue_limit: usize,
    stats: Arc<TenantStats>,
    /// What one socket may send per second.
    socket_rate: u32,
    /// What all the tenant's sockets together may send.
    tenant_rate: Arc<std::sync::Mutex<TokenBucket>>,
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
        };
        let actor = Actor {
            name,
            runtime,
            code,
            limits,
            live: None,
            generation: 0,
            ids: Arc::new(AtomicU64::new(1)),
            mailbox: mailbox.downgrade(),
            queued_events: handle.queued_events.clone(),
            stats: handle.stats.clone(),
            version,
            retired: false,
            successor: None,
            faults: VecDeque::new(),
            restart_at: None,
            quarantine: None,
            cpu_window: (Instant::now(), Duration::ZERO),
        };
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
        let notice = json!({
            "tenant": &*self.name,
            "kind": "rate-limit",
            "error": format!("more than {} events per second from this socket", self.socket_rate),
        });
        socket.emit(FAULT_EVENT, Payload::from_values(&[notice]));
        socket.disconnect();
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

    fn readmit(&self, socket: Arc<Socket>) {
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

/// A live instance: its store and its exports.
struct Live {
    store: Store<TenantState>,
    exports: Tenant,
}

struct Actor {
    name: Arc<str>,
    runtime: Arc<Runtime>,
    code: Arc<Code>,
    limits: Limits,
    live: Option<Live>,
    /// Bumped on every fault, so replies meant for a dead instance are dropped.
    generation: u64,
    ids: Arc<AtomicU64>,
    mailbox: mpsc::WeakUnboundedSender<Command>,
    queued_events: Arc<AtomicUsize>,
    stats: Arc<TenantStats>,
    version: u64,
    /// Set once a new version took over or the tenant was deleted.
    retired: bool,
    /// Where whatever arrives after retirement goes.
    successor: Option<TenantHandle>,
    /// When recent faults happened, for the restart policy.
    faults: VecDeque<Instant>,
    /// No fresh instance before this.
    restart_at: Option<Instant>,
    /// Set after too many faults: the last one. Only a new version lifts it.
    quarantine: Option<Fault>,
    /// CPU used in the current one-second window, and when that window began.
    cpu_window: (Instant, Duration),
}

impl Actor {
    async fn run(mut self, mut inbox: mpsc::UnboundedReceiver<Command>) {
        while let Some(command) = inbox.recv().await {
            self.handle(command).await;
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
                self.call(async |exports, store| exports.call_on_connection(store, handle).await)
                    .await;
            }
            Command::Event {
                socket,
                event,
                args,
                ack,
            } => {
                self.queued_events.fetch_sub(1, Ordering::AcqRel);
                let Some(handle) = self.handle_of(&socket) else {
                    return self.orphaned(&socket);
                };
                self.stats.events.fetch_add(1, Ordering::Relaxed);
                let args = to_wit(&args);
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
            Command::Retire { successor, done } => {
                self.hand_over(successor);
                done();
            }
            Command::AckReply {
                generation,
                request,
                reply,
            } => {
                if generation != self.generation || self.live.is_none() {
                    return;
                }
                let reply = match reply {
                    Ok(args) => Ok(to_wit(&args)),
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
                    let _ = next.mailbox.send(Command::Middleware { socket, reply });
                }
                None => {
                    let _ = reply.send(Err(ConnectError::with_data(
                        "unknown tenant",
                        json!({ "namespace": socket.nsp().name(), "tenant": &*self.name }),
                    )));
                }
            },
            Command::Connected { socket } => match next {
                Some(next) => next.connected(&socket),
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
                self.queued_events.fetch_sub(1, Ordering::AcqRel);
                match next {
                    Some(next) => next.event(&socket, &event, args, ack),
                    None => self.orphaned(&socket),
                }
            }
            Command::Disconnected { socket, reason } => {
                if let Some(next) = next {
                    next.disconnected(&socket, reason);
                }
            }
            Command::Retire { done, .. } => done(),
            Command::AckReply { .. } => {}
        }
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
                None => {
                    let notice = json!({
                        "tenant": &*self.name,
                        "kind": "deleted",
                        "error": "the tenant was deleted",
                    });
                    socket.emit(FAULT_EVENT, Payload::from_values(&[notice]));
                    socket.disconnect();
                }
            }
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
            Err(refusal) => {
                let notice = json!({
                    "tenant": &*self.name,
                    "kind": "refused",
                    "error": refusal.message,
                    "data": refusal.data,
                });
                socket.emit(FAULT_EVENT, Payload::from_values(&[notice]));
                socket.disconnect();
            }
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
        if let Some(fault) = &self.quarantine {
            return Err(ConnectError::with_data(
                "tenant quarantined",
                json!({
                    "tenant": &*self.name,
                    "faults": self.faults.len(),
                    "error": fault.to_string(),
                }),
            ));
        }
        if self.live.is_none() {
            if let Some(at) = self.restart_at.take() {
                // Backing off after repeated faults: the socket waits (well within the
                // client's connect timeout) rather than being refused.
                tokio::time::sleep_until(at.into()).await;
            }
            if let Err(fault) = self.instantiate().await {
                tracing::warn!(tenant = %self.name, kind = fault.kind(), %fault, "tenant failed to start");
                let refusal = self.refusal(&fault);
                self.record_fault(fault);
                return Err(refusal);
            }
        }
        let Some(live) = self.live.as_mut() else {
            return Err(ConnectError::new("tenant unavailable"));
        };
        if self.stats.sockets.load(Ordering::Relaxed) >= self.limits.max_sockets {
            return Err(ConnectError::with_data(
                "tenant full",
                json!({ "tenant": &*self.name, "max_sockets": self.limits.max_sockets }),
            ));
        }
        let handle = live.store.data_mut().add_socket(socket);
        let handshake = handshake_of(socket);
        let verdict = self
            .call(async |exports, store| exports.call_middleware(store, handle, &handshake).await)
            .await;
        match verdict {
            Some(Ok(())) => Ok(()),
            Some(Err(rejection)) => {
                if let Some(live) = self.live.as_mut() {
                    live.store.data_mut().remove_socket(handle);
                }
                let data = rejection
                    .data
                    .map(|text: String| serde_json::from_str(&text).unwrap_or(Value::String(text)));
                Err(ConnectError {
                    message: rejection.message,
                    data,
                })
            }
            None => Err(ConnectError::with_data(
                "tenant error",
                json!({ "tenant": &*self.name, "error": "the tenant failed while running its middleware" }),
            )),
        }
    }

    fn refusal(&self, fault: &Fault) -> ConnectError {
        ConnectError::with_data(
            "tenant unavailable",
            json!({ "tenant": &*self.name, "kind": fault.kind(), "error": fault.to_string() }),
        )
    }

    /// Creates a fresh instance; its start-up runs under the same limits as a call.
    async fn instantiate(&mut self) -> Result<(), Fault> {
        self.stats.instantiations.fetch_add(1, Ordering::Relaxed);
        let state = TenantState::new(
            self.name.clone(),
            self.generation,
            &self.limits,
            self.ids.clone(),
            self.mailbox.clone(),
            self.stats.clone(),
        );
        let clock = state.clock.clone();
        let mut store = Store::new(self.runtime.engine(), state);
        store.limiter(|state| &mut state.limiter);
        let cpu_limit = self.limits.cpu_per_call;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |context| {
            if context.data().clock.spent() > cpu_limit {
                return Err(Fault::Deadline { limit: cpu_limit }.into());
            }
            Ok(UpdateDeadline::YieldCustom(
                1,
                Box::pin(tokio::task::yield_now()),
            ))
        });
        clock.reset();
        let instantiation = self.code.pre.instantiate_async(&mut store);
        let exports = metered(instantiation, clock, self.limits.wall_per_call).await?;
        self.live = Some(Live { store, exports });
        Ok(())
    }

    /// Calls into the live instance, if there is one, under the limits. A fault stops
    /// the instance and yields `None`.
    async fn call<R>(
        &mut self,
        call: impl AsyncFnOnce(&Tenant, &mut Store<TenantState>) -> wasmtime::Result<R>,
    ) -> Option<R> {
        self.live.as_ref()?;
        self.throttle().await;
        let live = self.live.as_mut()?;
        let clock = live.store.data().clock.clone();
        clock.reset();
        // The deadline counts from now: a stale one would make the call yield at once.
        live.store.set_epoch_deadline(1);
        live.store.data_mut().start_call();
        let outcome = metered(
            call(&live.exports, &mut live.store),
            clock.clone(),
            self.limits.wall_per_call,
        )
        .await;
        self.stats.call_cpu.observe(clock.spent());
        self.cpu_window.1 += clock.spent();
        match outcome {
            Ok(value) => Some(value),
            Err(fault) => {
                self.fail(fault);
                None
            }
        }
    }

    /// Waits for the next one-second window when this one's CPU budget is spent.
    async fn throttle(&mut self) {
        let (started, used) = self.cpu_window;
        let next = started + Duration::from_secs(1);
        let now = Instant::now();
        if now >= next {
            self.cpu_window = (now, Duration::ZERO);
        } else if used >= self.limits.cpu_per_second {
            self.stats.throttled.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep_until(next.into()).await;
            self.cpu_window = (Instant::now(), Duration::ZERO);
        }
    }

    /// The restart policy: the first fault in the window restarts at once, each further
    /// one doubles a wait from 100 ms (up to the limit), and `quarantine_after_faults`
    /// of them quarantine the tenant until a new version is uploaded.
    fn record_fault(&mut self, fault: Fault) {
        self.stats.faults.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        self.faults.push_back(now);
        while self
            .faults
            .front()
            .is_some_and(|at| now.duration_since(*at) > self.limits.fault_window)
        {
            self.faults.pop_front();
        }
        let recent = self.faults.len();
        if recent >= self.limits.quarantine_after_faults {
            tracing::error!(tenant = %self.name, faults = recent, %fault, "tenant quarantined until its next upload");
            self.stats.quarantined.store(1, Ordering::Relaxed);
            self.quarantine = Some(fault);
            return;
        }
        if recent >= 2 {
            let doubling = u32::try_from(recent - 2).unwrap_or(u32::MAX).min(16);
            let wait = (Duration::from_millis(100) * 2u32.pow(doubling))
                .min(self.limits.max_restart_backoff);
            self.restart_at = Some(now + wait);
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
        tracing::warn!(
            tenant = %self.name,
            kind = fault.kind(),
            %fault,
            sockets = sockets.len(),
            "tenant instance stopped; its sockets are disconnected"
        );
        let notice = Payload::from_values(&[json!({
            "tenant": &*self.name,
            "kind": fault.kind(),
            "error": fault.to_string(),
        })]);
        for socket in sockets {
            socket.emit(FAULT_EVENT, notice.clone());
            socket.disconnect();
        }
    }
}

/// Runs a call under the CPU deadline (enforced by the epoch callback, which reads the
/// clock) and the wall-clock limit (enforced here: a call past it is dropped, which
/// leaves the instance unusable, so the caller discards it).
async fn metered<R>(
    call: impl Future<Output = wasmtime::Result<R>>,
    clock: Arc<CallClock>,
    wall_limit: Duration,
) -> Result<R, Fault> {
    match tokio::time::timeout(wall_limit, Metered::new(call, clock)).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(Fault::from_error(&error)),
        Err(_) => Err(Fault::WallClock { limit: wall_limit }),
    }
}

fn to_wit(args: &Payload) -> Args {
    Args {
        json: args.json().to_owned(),
        attachments: args.attachments().iter().map(|b| b.to_vec()).collect(),
    }
}

fn handshake_of(socket: &Socket) -> Handshake {
    let handshake = socket.handshake();
    Handshake {
        namespace: socket.nsp().name().to_owned(),
        id: socket.id().to_string(),
        auth: handshake.auth.to_string(),
        query: handshake.query.clone(),
        headers: handshake.headers.clone(),
        address: handshake.address.to_string(),
        issued: handshake
            .time
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0),
    }
}
