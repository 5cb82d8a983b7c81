//! One tenant's instance, run as an actor: its calls one at a time, in the order
//! things happened, each under the CPU and wall-clock limits; a fault stops the
//! instance, tells its sockets and leaves a fresh instance for what comes next.

use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};
use wasmtime::{Store, UpdateDeadline};

use super::bindings::nsbox::tenant::types::{AckFailure, Args, Handshake};
use super::bindings::Tenant;
use super::clock::{CallClock, Metered};
use super::fault::Fault;
use super::limits::Limits;
use super::runtime::{Code, Runtime};
use super::state::TenantState;
use crate::socketio::{AckError, AckSender, ConnectError, DisconnectReason, Payload, Socket};

/// The event every socket of a tenant receives just before the server disconnects it
/// because the tenant's instance failed.
pub const FAULT_EVENT: &str = "nsbox:error";

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
    /// A client answered (or did not) an ack the guest asked for.
    AckReply {
        generation: u64,
        request: u64,
        reply: Result<Payload, AckError>,
    },
}

/// Counters a tenant keeps about itself.
#[derive(Debug, Default)]
pub struct TenantStats {
    /// Events handed to the guest.
    pub events: AtomicU64,
    /// Events dropped because the tenant's queue was full.
    pub dropped_events: AtomicU64,
    /// Instances stopped by a fault.
    pub faults: AtomicU64,
    /// Instances created (the first one included).
    pub instantiations: AtomicU64,
}

/// The way to a running tenant: cheap to clone, one per socket handler.
#[derive(Clone)]
pub struct TenantHandle {
    name: Arc<str>,
    mailbox: mpsc::UnboundedSender<Command>,
    queued_events: Arc<AtomicUsize>,
    queue_limit: usize,
    stats: Arc<TenantStats>,
}

impl TenantHandle {
    /// Starts the actor of a tenant. Nothing is instantiated until the first socket asks.
    pub fn spawn(
        name: &str,
        runtime: Arc<Runtime>,
        code: Arc<Code>,
        limits: Limits,
    ) -> TenantHandle {
        let (mailbox, inbox) = mpsc::unbounded_channel();
        let name: Arc<str> = Arc::from(name);
        let handle = TenantHandle {
            name: name.clone(),
            mailbox: mailbox.clone(),
            queued_events: Arc::default(),
            queue_limit: limits.queued_events,
            stats: Arc::default(),
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
        };
        tokio::spawn(actor.run(inbox));
        handle
    }

    /// The tenant's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The tenant's counters.
    pub fn stats(&self) -> &TenantStats {
        &self.stats
    }

    /// Runs the guest's middleware for `socket`; on success the socket's events and
    /// departure are forwarded to the tenant from then on.
    pub async fn admit(&self, socket: Arc<Socket>) -> Result<(), ConnectError> {
        let (reply, verdict) = oneshot::channel();
        let unavailable =
            || ConnectError::with_data("tenant unavailable", json!({ "tenant": &*self.name }));
        self.mailbox
            .send(Command::Middleware {
                socket: socket.clone(),
                reply,
            })
            .map_err(|_| unavailable())?;
        verdict.await.map_err(|_| unavailable())??;
        let tenant = self.clone();
        socket.on_fallback(move |socket, event, args, ack| tenant.event(socket, event, args, ack));
        let tenant = self.clone();
        socket.on_disconnect(move |socket, reason| {
            let _ = tenant.mailbox.send(Command::Disconnected {
                socket: socket.clone(),
                reason,
            });
        });
        Ok(())
    }

    /// Tells the tenant an admitted socket was accepted.
    pub fn connected(&self, socket: &Arc<Socket>) {
        let _ = self.mailbox.send(Command::Connected {
            socket: socket.clone(),
        });
    }

    fn event(&self, socket: &Arc<Socket>, event: &str, args: Payload, ack: Option<AckSender>) {
        if self.queued_events.fetch_add(1, Ordering::AcqRel) >= self.queue_limit {
            self.queued_events.fetch_sub(1, Ordering::AcqRel);
            self.stats.dropped_events.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(tenant = %self.name, event, "event dropped: the tenant's queue is full");
            return;
        }
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
        match command {
            Command::Middleware { socket, reply } => {
                let verdict = self.middleware(&socket).await;
                let _ = reply.send(verdict);
            }
            Command::Connected { socket } => {
                let Some(handle) = self.handle_of(&socket) else {
                    return self.orphaned(&socket);
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
        if self.live.is_none() {
            if let Err(fault) = self.instantiate().await {
                tracing::warn!(tenant = %self.name, kind = fault.kind(), %fault, "tenant failed to start");
                self.stats.faults.fetch_add(1, Ordering::Relaxed);
                return Err(self.refusal(&fault));
            }
        }
        let Some(live) = self.live.as_mut() else {
            return Err(ConnectError::new("tenant unavailable"));
        };
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
        let live = self.live.as_mut()?;
        let clock = live.store.data().clock.clone();
        clock.reset();
        // The deadline counts from now: a stale one would make the call yield at once.
        live.store.set_epoch_deadline(1);
        let outcome = metered(
            call(&live.exports, &mut live.store),
            clock,
            self.limits.wall_per_call,
        )
        .await;
        match outcome {
            Ok(value) => Some(value),
            Err(fault) => {
                self.fail(fault);
                None
            }
        }
    }

    /// Stops the instance: every socket of the tenant gets `nsbox:error` and is
    /// disconnected; the next socket to ask gets a fresh instance.
    fn fail(&mut self, fault: Fault) {
        self.stats.faults.fetch_add(1, Ordering::Relaxed);
        self.generation += 1;
        let Some(live) = self.live.take() else { return };
        let mut state = live.store.into_data();
        let sockets = state.sockets.drain();
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
