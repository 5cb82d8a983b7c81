//! What a tenant's store holds, and the host functions of the `host` interface.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;
use wasmtime::component::ResourceTable;
use wasmtime::ResourceLimiter;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::nsbox::tenant::host::Host;
use super::bindings::nsbox::tenant::types::{self, Args, Level, Target};
use super::clock::CallClock;
use super::command::{drop_socket, Command};
use super::fault::Fault;
use super::kind::Kind;
use super::limits::Limits;
use super::stats::TenantStats;
use crate::engineio::Sid;
use crate::socketio::{AckSender, Namespace, Payload, Socket};

/// The data of one instance's store.
pub(crate) struct TenantState {
    pub(crate) tenant: Arc<str>,
    pub(crate) generation: u64,
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: Limiter,
    pub(crate) clock: Arc<CallClock>,
    pub(crate) sockets: Sockets,
    /// Client acks the guest may still answer: ack handle → (socket handle, sender).
    acks: HashMap<u64, (u64, AckSender)>,
    ids: Arc<AtomicU64>,
    namespace: Option<Arc<Namespace>>,
    mailbox: mpsc::WeakUnboundedSender<Command>,
    stats: Arc<TenantStats>,
    budget: EmitBudget,
    /// Rooms a socket may be in besides its own.
    max_rooms: usize,
}

/// What the call in progress may still send, and the size of one message.
struct EmitBudget {
    limits: (u64, u64, usize),
    messages: u64,
    bytes: u64,
}

impl EmitBudget {
    fn new(limits: &Limits) -> EmitBudget {
        EmitBudget {
            limits: (
                limits.emit_messages_per_call,
                limits.emit_bytes_per_call,
                limits.max_message_bytes,
            ),
            messages: limits.emit_messages_per_call,
            bytes: limits.emit_bytes_per_call,
        }
    }

    fn refill(&mut self) {
        self.messages = self.limits.0;
        self.bytes = self.limits.1;
    }

    /// Takes `recipients` messages of `size` bytes out of the budget, or says which
    /// limit that would break (and takes nothing).
    fn charge(&mut self, recipients: usize, size: usize) -> Result<(), Fault> {
        let (messages_limit, bytes_limit, message_limit) = self.limits;
        if size > message_limit {
            return Err(Fault::MessageTooLarge {
                size,
                limit: message_limit,
            });
        }
        let messages = recipients as u64;
        let bytes = messages.saturating_mul(size as u64);
        if messages > self.messages {
            return Err(Fault::EmitLimit {
                what: "messages",
                limit: messages_limit,
            });
        }
        if bytes > self.bytes {
            return Err(Fault::EmitLimit {
                what: "bytes",
                limit: bytes_limit,
            });
        }
        self.messages -= messages;
        self.bytes -= bytes;
        Ok(())
    }
}

impl Drop for TenantState {
    /// The instance is gone: so are its memory and its sockets, as far as counts go.
    fn drop(&mut self) {
        self.stats.memory_bytes.store(0, Ordering::Relaxed);
        self.stats.instances.fetch_sub(1, Ordering::Relaxed);
        let known = self.sockets.by_handle.len() as u64;
        self.stats.sockets.fetch_sub(known, Ordering::Relaxed);
    }
}

impl TenantState {
    pub(crate) fn new(
        tenant: Arc<str>,
        generation: u64,
        limits: &Limits,
        ids: Arc<AtomicU64>,
        mailbox: mpsc::WeakUnboundedSender<Command>,
        stats: Arc<TenantStats>,
    ) -> TenantState {
        stats.instances.fetch_add(1, Ordering::Relaxed);
        TenantState {
            tenant,
            generation,
            // Nothing granted: no preopened directories, no network, no environment or
            // arguments; stdio closed or discarded.
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
            limiter: Limiter::new(limits, stats.clone()),
            clock: Arc::default(),
            sockets: Sockets::default(),
            acks: HashMap::new(),
            ids,
            namespace: None,
            mailbox,
            stats,
            budget: EmitBudget::new(limits),
            max_rooms: limits.max_rooms_per_socket,
        }
    }

    /// A call starts: its emit budget is full again.
    pub(crate) fn start_call(&mut self) {
        self.budget.refill();
    }

    /// Charges what is about to be sent to the call's budget; past it, the call traps
    /// with the limit it broke and nothing more is sent.
    fn charge(&mut self, recipients: usize, size: usize) -> wasmtime::Result<()> {
        if recipients == 0 {
            return Ok(());
        }
        self.budget.charge(recipients, size)?;
        self.stats.sent(recipients, size);
        Ok(())
    }

    /// A fresh handle; handles are never reused, across restarts included.
    pub(crate) fn next_id(&self) -> u64 {
        self.ids.fetch_add(1, Ordering::Relaxed)
    }

    /// Records a socket the guest is about to hear of and returns its handle.
    pub(crate) fn add_socket(&mut self, socket: &Arc<Socket>) -> u64 {
        let handle = self.next_id();
        self.namespace = Some(socket.nsp().clone());
        self.sockets.insert(handle, socket.clone());
        self.stats.sockets.fetch_add(1, Ordering::Relaxed);
        handle
    }

    /// Forgets a socket and every ack of it the guest had not answered.
    pub(crate) fn remove_socket(&mut self, handle: u64) {
        if self.sockets.remove(handle) {
            self.stats.sockets.fetch_sub(1, Ordering::Relaxed);
        }
        self.acks.retain(|_, (socket, _)| *socket != handle);
    }

    /// Takes every socket out (the instance is going away).
    pub(crate) fn drain_sockets(&mut self) -> Vec<Arc<Socket>> {
        let sockets = self.sockets.drain();
        self.stats
            .sockets
            .fetch_sub(sockets.len() as u64, Ordering::Relaxed);
        sockets
    }

    /// Keeps a client's ack for the guest to answer and returns its handle.
    pub(crate) fn add_ack(&mut self, socket: u64, ack: AckSender) -> u64 {
        let handle = self.next_id();
        self.acks.insert(handle, (socket, ack));
        handle
    }

    /// Arguments from the guest, checked; a malformed one is logged and dropped.
    fn payload(&self, what: &str, args: Args) -> Option<Payload> {
        let attachments = args.attachments.into_iter().map(Bytes::from).collect();
        match Payload::checked(args.json, attachments) {
            Ok(payload) => Some(payload),
            Err(error) => {
                tracing::warn!(tenant = %self.tenant, %error, "{what}: arguments refused");
                None
            }
        }
    }
}

/// The sockets a tenant knows, by handle and by Socket.IO id.
#[derive(Default)]
pub(crate) struct Sockets {
    by_handle: HashMap<u64, Arc<Socket>>,
    by_sid: HashMap<Sid, u64>,
}

impl Sockets {
    fn insert(&mut self, handle: u64, socket: Arc<Socket>) {
        self.by_sid.insert(socket.id().clone(), handle);
        self.by_handle.insert(handle, socket);
    }

    fn remove(&mut self, handle: u64) -> bool {
        match self.by_handle.remove(&handle) {
            Some(socket) => {
                self.by_sid.remove(socket.id());
                true
            }
            None => false,
        }
    }

    pub(crate) fn get(&self, handle: u64) -> Option<&Arc<Socket>> {
        self.by_handle.get(&handle)
    }

    pub(crate) fn handle_of(&self, socket: &Socket) -> Option<u64> {
        self.by_sid.get(socket.id()).copied()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.by_handle.is_empty()
    }

    fn drain(&mut self) -> Vec<Arc<Socket>> {
        self.by_sid.clear();
        self.by_handle.drain().map(|(_, socket)| socket).collect()
    }
}

/// Enforces the memory and table limits; a growth past them traps the call with a
/// [`Fault`] that says which limit it was.
pub(crate) struct Limiter {
    memory_limit: usize,
    memory_used: usize,
    table_limit: usize,
    /// Core instances, tables and memories (wasmtime refuses to create more).
    counts: (usize, usize, usize),
    stats: Arc<TenantStats>,
}

impl Limiter {
    fn new(limits: &Limits, stats: Arc<TenantStats>) -> Limiter {
        Limiter {
            memory_limit: limits.memory_bytes,
            memory_used: 0,
            table_limit: limits.table_elements,
            counts: (limits.max_instances, limits.max_tables, limits.max_memories),
            stats,
        }
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let asked = self.memory_used + desired.saturating_sub(current);
        if asked > self.memory_limit {
            return Err(Fault::Memory {
                limit: self.memory_limit,
                asked,
            }
            .into());
        }
        self.memory_used = asked;
        self.stats
            .memory_bytes
            .store(asked as u64, Ordering::Relaxed);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.table_limit {
            return Err(Fault::Table {
                limit: self.table_limit,
            }
            .into());
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        self.counts.0
    }

    fn tables(&self) -> usize {
        self.counts.1
    }

    fn memories(&self) -> usize {
        self.counts.2
    }
}

impl WasiView for TenantState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl wasmtime_wasi_io::IoView for TenantState {
    fn table(&mut self) -> &mut ResourceTable {
        &mut self.table
    }
}

impl types::Host for TenantState {}

impl Host for TenantState {
    fn emit(&mut self, to: u64, event: String, args: Args) -> wasmtime::Result<()> {
        // A handle this tenant does not hold reaches nothing, and costs nothing.
        let Some(socket) = self.sockets.get(to).cloned() else {
            return Ok(());
        };
        if let Some(args) = self.payload("emit", args) {
            self.charge(1, event.len() + args.size())?;
            socket.emit(event, args);
        }
        Ok(())
    }

    fn broadcast(&mut self, target: Target, event: String, args: Args) -> wasmtime::Result<()> {
        let Some(namespace) = self.namespace.clone() else {
            return Ok(());
        };
        let Some(args) = self.payload("broadcast", args) else {
            return Ok(());
        };
        let mut operator = namespace.broadcast_op();
        for room in target.rooms {
            operator = operator.to(room);
        }
        for room in target.except_rooms {
            operator = operator.except(room);
        }
        for handle in target.except_sockets {
            if let Some(socket) = self.sockets.get(handle) {
                operator = operator.except_socket(socket.id().clone());
            }
        }
        // Charged before anything is sent: a broadcast that would break the budget sends nothing.
        let size = event.len() + args.size();
        operator.emit_if(event, args, |recipients| self.charge(recipients, size))?;
        Ok(())
    }

    fn emit_with_ack(
        &mut self,
        to: u64,
        event: String,
        args: Args,
        timeout_ms: u32,
    ) -> wasmtime::Result<u64> {
        let request = self.next_id();
        let generation = self.generation;
        let Some(mailbox) = self.mailbox.upgrade() else {
            return Ok(request);
        };
        let socket = self.sockets.get(to).cloned();
        let args = self.payload("emit-with-ack", args);
        if let (Some(_), Some(args)) = (&socket, &args) {
            self.charge(1, event.len() + args.size())?;
        }
        let timeout = std::time::Duration::from_millis(u64::from(timeout_ms));
        tokio::spawn(async move {
            let reply = match (socket, args) {
                (Some(socket), Some(args)) => socket.emit_with_ack(event, args, timeout).await,
                _ => Err(crate::socketio::AckError::Disconnected),
            };
            let _ = mailbox.send(Command::AckReply {
                generation,
                request,
                reply,
            });
        });
        Ok(request)
    }

    fn answer(&mut self, ack: u64, args: Args) -> wasmtime::Result<Result<(), String>> {
        let Some((_, sender)) = self.acks.remove(&ack) else {
            return Ok(Err(format!(
                "ack {ack} is unknown: already answered, or its socket has left"
            )));
        };
        match self.payload("answer", args) {
            Some(args) => {
                self.charge(1, args.size())?;
                sender.send(args);
                Ok(Ok(()))
            }
            None => Ok(Err(
                "the arguments are not a valid JSON array with attachments".into(),
            )),
        }
    }

    fn join(&mut self, socket: u64, room: String) -> wasmtime::Result<()> {
        let Some(socket) = self.sockets.get(socket).cloned() else {
            return Ok(());
        };
        // Its own room does not count; a join it is already in costs nothing.
        if socket.room_count() <= self.max_rooms || socket.in_room(&room) {
            socket.join(room);
            return Ok(());
        }
        // The socket's rooms are its own resource: it, not the tenant, pays for the excess.
        tracing::warn!(tenant = %self.tenant, socket = %socket.id(), limit = self.max_rooms, "room limit reached; disconnecting the socket");
        let error = format!("a socket may be in at most {} rooms", self.max_rooms);
        self.stats.tripped(Kind::RoomLimit);
        drop_socket(&socket, &self.tenant, Kind::RoomLimit, error, None);
        Ok(())
    }

    fn leave(&mut self, socket: u64, room: String) -> wasmtime::Result<()> {
        if let Some(socket) = self.sockets.get(socket) {
            socket.leave(&room);
        }
        Ok(())
    }

    fn rooms(&mut self, socket: u64) -> wasmtime::Result<Vec<String>> {
        Ok(self
            .sockets
            .get(socket)
            .map(|socket| socket.rooms())
            .unwrap_or_default())
    }

    fn disconnect(&mut self, socket: u64) -> wasmtime::Result<()> {
        if let Some(socket) = self.sockets.get(socket).cloned() {
            socket.disconnect();
        }
        Ok(())
    }

    fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        let tenant = &*self.tenant;
        match level {
            Level::Trace => tracing::trace!(tenant, "{message}"),
            Level::Debug => tracing::debug!(tenant, "{message}"),
            Level::Info => tracing::info!(tenant, "{message}"),
            Level::Warn => tracing::warn!(tenant, "{message}"),
            Level::Error => tracing::error!(tenant, "{message}"),
        }
        Ok(())
    }
}
