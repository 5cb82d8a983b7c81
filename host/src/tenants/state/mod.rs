//! What a tenant's store holds, and the host functions it imports: the `host`,
//! `sockets`, `cluster` and `timers` interfaces, `wasi:config`, and (in `storage`) its keys.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use foldhash::{HashMap, HashMapExt as _};
use tokio::sync::mpsc;
use wasmtime::component::ResourceTable;
use wasmtime::ResourceLimiter;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::nsbox::tenant::host::Host;
use super::bindings::nsbox::tenant::types::{self, Args, Level, Target};
use super::bindings::nsbox::tenant::{cluster, sockets, timers};
use super::bindings::wasi::config::store as config_store;
use super::clock::CallClock;
use super::command::{drop_socket, Command};
use super::configuration::TenantConfig;
use super::fault::Fault;
use super::kind::Kind;
use super::limits::Limits;
use super::log::{Source, TenantLog};
use super::output::GuestOutput;
use super::stats::TenantStats;
use super::timers::Timers;
use crate::engineio::Sid;
use crate::kv::Backend;
use crate::socketio::{AckSender, BroadcastOperator, Namespace, Payload, Socket};
use storage::TenantStorage;

mod storage;

/// The data of one instance's store.
pub(crate) struct TenantState {
    pub(crate) tenant: Arc<str>,
    pub(crate) generation: u64,
    /// Resources the guest holds (WASI's streams, open buckets).
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: Limiter,
    pub(crate) clock: Arc<CallClock>,
    pub(crate) sockets: Sockets,
    /// Client acks the guest may still answer: ack handle → (socket handle, sender).
    acks: HashMap<u64, (u64, AckSender)>,
    /// Server-to-client acks the guest awaits (until `on-ack-reply` has their reply):
    /// request → the socket handle it went to. Every request gets exactly one reply
    /// through the mailbox, so bounding these bounds what acks put there.
    requests: HashMap<u64, u64>,
    /// Fetches across servers still waiting for answers, bounded as the acks awaited.
    fetches: Arc<AtomicUsize>,
    /// Broadcasts with acks still gathering answers, bounded as the acks awaited.
    broadcasts: Arc<AtomicUsize>,
    /// Bytes of room names the sockets are in, all together (their own rooms aside).
    room_bytes: usize,
    /// The instance's pending timers.
    pub(crate) timers: Timers,
    ids: Arc<AtomicU64>,
    namespace: Option<Arc<Namespace>>,
    mailbox: mpsc::WeakUnboundedSender<Command>,
    pub(crate) stats: Arc<TenantStats>,
    log: Arc<TenantLog>,
    budget: EmitBudget,
    limits: Limits,
    /// The tenant's keys, and what this call may still do with them.
    pub(crate) storage: TenantStorage,
    /// The configuration the tenant reads.
    pub(crate) config: Arc<TenantConfig>,
}

/// What an instance's store is made with, besides its limits: who it is, and what
/// it shares with the tenant's other instances.
pub(crate) struct Context {
    pub(crate) tenant: Arc<str>,
    pub(crate) ids: Arc<AtomicU64>,
    pub(crate) mailbox: mpsc::WeakUnboundedSender<Command>,
    pub(crate) stats: Arc<TenantStats>,
    pub(crate) log: Arc<TenantLog>,
    pub(crate) storage: Arc<dyn Backend>,
    pub(crate) config: Arc<TenantConfig>,
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
        let awaited = self.requests.len() as u64;
        self.stats
            .pending_acks
            .fetch_sub(awaited, Ordering::Relaxed);
    }
}

impl TenantState {
    pub(crate) fn new(context: Context, generation: u64, limits: &Limits) -> TenantState {
        let Context {
            tenant,
            ids,
            mailbox,
            stats,
            log,
            storage,
            config,
        } = context;
        stats.instances.fetch_add(1, Ordering::Relaxed);
        TenantState {
            tenant,
            generation,
            // Nothing granted: no preopened directories, no sockets and no name lookup, no
            // environment or arguments, no stdin; stdout and stderr go to the tenant's log.
            wasi: WasiCtx::builder()
                .allow_tcp(false)
                .allow_udp(false)
                .allow_ip_name_lookup(false)
                .stdout(GuestOutput::new(
                    log.clone(),
                    Source::Stdout,
                    limits.max_log_line_bytes,
                ))
                .stderr(GuestOutput::new(
                    log.clone(),
                    Source::Stderr,
                    limits.max_log_line_bytes,
                ))
                .build(),
            table: ResourceTable::new(),
            limiter: Limiter::new(limits, stats.clone()),
            clock: Arc::default(),
            sockets: Sockets::default(),
            acks: HashMap::new(),
            requests: HashMap::new(),
            fetches: Arc::default(),
            broadcasts: Arc::default(),
            room_bytes: 0,
            timers: Timers::default(),
            ids,
            namespace: None,
            mailbox,
            stats,
            log,
            budget: EmitBudget::new(limits),
            limits: limits.clone(),
            storage: TenantStorage::new(storage, limits),
            config,
        }
    }

    /// A call starts: its emit budget is full again.
    pub(crate) fn start_call(&mut self) {
        self.budget.refill();
        self.storage.start_call();
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

    /// Forgets a socket, the room names it held and every ack of it the guest had not
    /// answered. (Its requests stay awaited until their replies, `disconnected`, arrive.)
    pub(crate) fn remove_socket(&mut self, handle: u64) {
        if let Some(entry) = self.sockets.remove(handle) {
            self.stats.sockets.fetch_sub(1, Ordering::Relaxed);
            self.room_bytes = self.room_bytes.saturating_sub(entry.room_bytes);
        }
        self.acks.retain(|_, (socket, _)| *socket != handle);
    }

    /// The reply to `request` has been handled: it is awaited no more.
    pub(crate) fn request_done(&mut self, request: u64) {
        let Some(handle) = self.requests.remove(&request) else {
            return;
        };
        self.stats.pending_acks.fetch_sub(1, Ordering::Relaxed);
        if let Some(entry) = self.sockets.by_handle.get_mut(&handle) {
            entry.pending_acks = entry.pending_acks.saturating_sub(1);
        }
    }

    /// Why the socket was dropped by a limit during the call, if it was: a socket
    /// the middleware was deciding on is then refused.
    pub(crate) fn dropped(&self, handle: u64) -> Option<(Kind, String)> {
        self.sockets.by_handle.get(&handle)?.dropped.clone()
    }

    /// A socket broke a limit of its own: it is told and disconnected (or, still in
    /// the middleware, refused), and the guest's later calls about it do nothing.
    fn drop_limited(&mut self, handle: u64, kind: Kind, error: String) {
        let Some(entry) = self.sockets.by_handle.get_mut(&handle) else {
            return;
        };
        if entry.dropped.is_some() {
            return;
        }
        entry.dropped = Some((kind, error.clone()));
        let socket = entry.socket.clone();
        self.stats.tripped(kind);
        self.log.write(
            tracing::Level::WARN,
            Source::Host,
            &format!("socket {} dropped: {error}", socket.id()),
        );
        drop_socket(&socket, &self.tenant, kind, error, None);
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
        match checked(args) {
            Ok(payload) => Some(payload),
            Err(error) => {
                self.refused(what, Err(error));
                None
            }
        }
    }

    /// Logs a refusal the guest is not told of (a 0.1.0 guest's send, the arguments
    /// of an ack request or an answer).
    pub(crate) fn refused(&self, what: &str, outcome: Result<(), String>) {
        if let Err(error) = outcome {
            let line = format!("{what}: {error}");
            self.log.write(tracing::Level::WARN, Source::Host, &line);
        }
    }

    /// Why a socket may not join `room`, if it may not: the room limits.
    fn join_refusal(&self, socket: &Socket, room: &str) -> Option<String> {
        let limits = &self.limits;
        if room.len() > limits.max_room_name_bytes {
            return Some(format!(
                "a room name may be at most {} bytes (this one has {})",
                limits.max_room_name_bytes,
                room.len()
            ));
        }
        // Its own room does not count.
        if socket.room_count() > limits.max_rooms_per_socket {
            return Some(format!(
                "a socket may be in at most {} rooms",
                limits.max_rooms_per_socket
            ));
        }
        if self.room_bytes + room.len() > limits.max_room_bytes {
            return Some(format!(
                "the tenant's sockets may be in rooms of at most {} bytes of names together",
                limits.max_room_bytes
            ));
        }
        None
    }
}

impl TenantState {
    /// An emit to one socket (volatile or not). A handle this tenant does not hold
    /// reaches nothing, and costs nothing.
    fn emit_to(
        &mut self,
        to: u64,
        event: String,
        args: Args,
        volatile: bool,
    ) -> wasmtime::Result<Result<(), String>> {
        let Some(socket) = self.sockets.get(to).cloned() else {
            return Ok(Ok(()));
        };
        let args = match checked(args) {
            Ok(args) => args,
            Err(error) => return Ok(Err(error)),
        };
        self.charge(1, event.len() + args.size())?;
        if volatile {
            socket.emit_volatile(event, args);
        } else {
            socket.emit(event, args);
        }
        Ok(Ok(()))
    }

    /// A broadcast to `target` (volatile or not), charged before anything is sent: one
    /// that would break the budget sends nothing.
    fn broadcast_to(
        &mut self,
        target: Target,
        event: String,
        args: Args,
        volatile: bool,
    ) -> wasmtime::Result<Result<(), String>> {
        let args = match checked(args) {
            Ok(args) => args,
            Err(error) => return Ok(Err(error)),
        };
        let Some(mut operator) = self.operator(&target) else {
            return Ok(Ok(()));
        };
        if volatile {
            operator = operator.volatile();
        }
        let size = event.len() + args.size();
        operator.emit_if(event, args, |recipients| self.charge(recipients, size))?;
        Ok(Ok(()))
    }

    /// What `target` selects, as the namespace's broadcast operator: for broadcasts, and
    /// for the bulk operations that act on the cluster's other nodes too (counted there,
    /// not here); none before the first socket.
    fn operator(&self, target: &Target) -> Option<BroadcastOperator> {
        let mut operator = self.namespace.as_ref()?.broadcast_op();
        for room in &target.rooms {
            operator = operator.to(room.clone());
        }
        for room in &target.except_rooms {
            operator = operator.except(room.clone());
        }
        for handle in &target.except_sockets {
            if let Some(socket) = self.sockets.get(*handle) {
                operator = operator.except_socket(socket.id().clone());
            }
        }
        Some(operator)
    }
}

/// Arguments from the guest, checked; why not, for the guest to read.
fn checked(args: Args) -> Result<Payload, String> {
    let attachments = args.attachments.into_iter().map(Bytes::from).collect();
    Payload::checked(args.json, attachments).map_err(|error| format!("arguments refused: {error}"))
}

/// Bytes of a guest's arguments, before they are checked.
fn args_size(args: &Args) -> usize {
    args.json.len() + args.attachments.iter().map(Vec::len).sum::<usize>()
}

/// The sockets a tenant knows, by handle and by Socket.IO id.
#[derive(Default)]
pub(crate) struct Sockets {
    by_handle: HashMap<u64, Entry>,
    by_sid: HashMap<Sid, u64>,
}

/// A socket the tenant knows, and what it holds of the tenant's limits.
struct Entry {
    socket: Arc<Socket>,
    /// Bytes of the names of the rooms the tenant joined it to.
    room_bytes: usize,
    /// Server-to-client acks it owes.
    pending_acks: usize,
    /// Set when a limit dropped it: the kind and the error it was told.
    dropped: Option<(Kind, String)>,
}

impl Sockets {
    fn insert(&mut self, handle: u64, socket: Arc<Socket>) {
        self.by_sid.insert(socket.id().clone(), handle);
        let entry = Entry {
            socket,
            room_bytes: 0,
            pending_acks: 0,
            dropped: None,
        };
        self.by_handle.insert(handle, entry);
    }

    fn remove(&mut self, handle: u64) -> Option<Entry> {
        let entry = self.by_handle.remove(&handle)?;
        self.by_sid.remove(entry.socket.id());
        Some(entry)
    }

    /// The socket of `handle`, unless a limit has dropped it.
    pub(crate) fn get(&self, handle: u64) -> Option<&Arc<Socket>> {
        self.by_handle
            .get(&handle)
            .filter(|entry| entry.dropped.is_none())
            .map(|entry| &entry.socket)
    }

    pub(crate) fn handle_of(&self, socket: &Socket) -> Option<u64> {
        self.by_sid.get(socket.id()).copied()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.by_handle.is_empty()
    }

    fn drain(&mut self) -> Vec<Arc<Socket>> {
        self.by_sid.clear();
        self.by_handle
            .drain()
            .map(|(_, entry)| entry.socket)
            .collect()
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
    pub(crate) stats: Arc<TenantStats>,
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

/// `wasi:config/store`: the tenant's configuration and secrets, read-only.
impl config_store::Host for TenantState {
    fn get(
        &mut self,
        name: String,
    ) -> wasmtime::Result<Result<Option<String>, config_store::Error>> {
        Ok(Ok(self.config.get(&name).map(str::to_owned)))
    }

    fn get_all(&mut self) -> wasmtime::Result<Result<Vec<(String, String)>, config_store::Error>> {
        Ok(Ok(self.config.all()))
    }
}

impl TenantState {
    /// The handles of the sockets `target` selects: those the tenant holds and no limit
    /// dropped, in any of its rooms (or all without rooms), in none of its excepted
    /// rooms, and not excepted themselves.
    fn selected(&self, target: &Target) -> Vec<u64> {
        let mut handles: Vec<u64> = self
            .sockets
            .by_handle
            .iter()
            .filter(|(handle, entry)| {
                let socket = &entry.socket;
                entry.dropped.is_none()
                    && (target.rooms.is_empty() || target.rooms.iter().any(|r| socket.in_room(r)))
                    && !target.except_rooms.iter().any(|r| socket.in_room(r))
                    && !target.except_sockets.contains(handle)
            })
            .map(|(handle, _)| *handle)
            .collect();
        handles.sort_unstable();
        handles
    }
}

impl sockets::Host for TenantState {
    fn fetch(&mut self, target: Target) -> wasmtime::Result<Vec<sockets::SocketInfo>> {
        Ok(self
            .selected(&target)
            .into_iter()
            .filter_map(|handle| {
                let socket = self.sockets.get(handle)?;
                let mut rooms = socket.rooms();
                rooms.sort_unstable();
                Some(sockets::SocketInfo {
                    socket: handle,
                    id: socket.id().to_string(),
                    rooms,
                })
            })
            .collect())
    }

    fn join(&mut self, target: Target, room: String) -> wasmtime::Result<u32> {
        let selected = self.selected(&target);
        for handle in &selected {
            // A socket a room limit refuses is told and dropped; the others join.
            let _refused = Host::join(self, *handle, room.clone())?;
        }
        // In a cluster, the other nodes move theirs (under their room limits there).
        if let Some(elsewhere) = self.operator(&target) {
            elsewhere.join_elsewhere(&room);
        }
        Ok(u32::try_from(selected.len()).unwrap_or(u32::MAX))
    }

    fn leave(&mut self, target: Target, room: String) -> wasmtime::Result<u32> {
        let selected = self.selected(&target);
        for handle in &selected {
            Host::leave(self, *handle, room.clone())?;
        }
        if let Some(elsewhere) = self.operator(&target) {
            elsewhere.leave_elsewhere(&room);
        }
        Ok(u32::try_from(selected.len()).unwrap_or(u32::MAX))
    }

    fn disconnect(&mut self, target: Target) -> wasmtime::Result<u32> {
        let selected = self.selected(&target);
        for handle in &selected {
            Host::disconnect(self, *handle)?;
        }
        if let Some(elsewhere) = self.operator(&target) {
            elsewhere.disconnect_elsewhere();
        }
        Ok(u32::try_from(selected.len()).unwrap_or(u32::MAX))
    }
}

impl cluster::Host for TenantState {
    fn emit(&mut self, event: String, args: Args) -> wasmtime::Result<Result<(), String>> {
        let args = match checked(args) {
            Ok(args) => args,
            Err(error) => return Ok(Err(error)),
        };
        self.charge(1, event.len() + args.size())?;
        if let Some(namespace) = &self.namespace {
            namespace.server_side_emit(&event, &args);
        }
        Ok(Ok(()))
    }

    fn fetch_sockets(&mut self, target: Target, timeout_ms: u32) -> wasmtime::Result<u64> {
        self.budget.charge(1, 0)?;
        let request = self.next_id();
        let (generation, elsewhere) = (self.generation, self.operator(&target));
        let Some(mailbox) = self.mailbox.upgrade() else {
            return Ok(request);
        };
        let timeout = std::time::Duration::from_millis(u64::from(timeout_ms));
        // Past the bound, answered at once: nothing, incomplete.
        let waiting = self.fetches.clone();
        let room = waiting.fetch_add(1, Ordering::Relaxed) < self.limits.max_pending_acks;
        tokio::spawn(async move {
            let (sockets, complete) = match elsewhere {
                Some(elsewhere) if room => elsewhere.fetch_elsewhere(timeout).await,
                Some(_) => (Vec::new(), false),
                None => (Vec::new(), true),
            };
            waiting.fetch_sub(1, Ordering::Relaxed);
            let _ = mailbox.send(Command::SocketsFetched {
                generation,
                request,
                sockets,
                complete,
            });
        });
        Ok(request)
    }
}

impl timers::Host for TenantState {
    fn set(&mut self, delay_ms: u32, repeat: bool) -> wasmtime::Result<Result<u64, String>> {
        if delay_ms < self.limits.min_timer_ms {
            return Ok(Err(format!(
                "a timer's delay is at least {} ms",
                self.limits.min_timer_ms
            )));
        }
        if self.timers.len() >= self.limits.max_timers {
            return Ok(Err(format!(
                "at most {} timers may be pending at once",
                self.limits.max_timers
            )));
        }
        let id = self.next_id();
        let delay = std::time::Duration::from_millis(u64::from(delay_ms));
        self.timers
            .set(id, delay, repeat, std::time::Instant::now());
        Ok(Ok(id))
    }

    fn cancel(&mut self, timer: u64) -> wasmtime::Result<bool> {
        Ok(self.timers.cancel(timer))
    }
}

impl Host for TenantState {
    fn emit(&mut self, to: u64, event: String, args: Args) -> wasmtime::Result<Result<(), String>> {
        self.emit_to(to, event, args, false)
    }

    fn broadcast(
        &mut self,
        target: Target,
        event: String,
        args: Args,
    ) -> wasmtime::Result<Result<(), String>> {
        self.broadcast_to(target, event, args, false)
    }

    fn broadcast_volatile(
        &mut self,
        target: Target,
        event: String,
        args: Args,
    ) -> wasmtime::Result<Result<(), String>> {
        self.broadcast_to(target, event, args, true)
    }

    fn emit_volatile(
        &mut self,
        to: u64,
        event: String,
        args: Args,
    ) -> wasmtime::Result<Result<(), String>> {
        self.emit_to(to, event, args, true)
    }

    fn broadcast_with_ack(
        &mut self,
        target: Target,
        event: String,
        args: Args,
        timeout_ms: u32,
    ) -> wasmtime::Result<Result<u64, String>> {
        let args = match checked(args) {
            Ok(args) => args,
            Err(error) => return Ok(Err(error)),
        };
        let limit = self.limits.max_pending_acks;
        if self.broadcasts.load(Ordering::Relaxed) >= limit {
            return Ok(Err(format!(
                "at most {limit} broadcasts with acks may wait for answers at once"
            )));
        }
        let (Some(operator), Some(mailbox)) = (self.operator(&target), self.mailbox.upgrade())
        else {
            return Ok(Err("the tenant has no namespace yet".to_owned()));
        };
        let request = self.next_id();
        let generation = self.generation;
        let timeout = std::time::Duration::from_millis(u64::from(timeout_ms));
        // Charged before anything is sent, as a broadcast: one that would break the
        // budget sends nothing.
        let size = event.len() + args.size();
        // The answers go to the guest as an event does: bounded as events queued for it.
        let max_bytes = self.limits.queued_event_bytes;
        let gathering =
            operator.emit_with_ack_if(event, args, timeout, max_bytes, |recipients| {
                self.charge(recipients, size)
            })?;
        let waiting = self.broadcasts.clone();
        waiting.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            let replies = gathering.await;
            waiting.fetch_sub(1, Ordering::Relaxed);
            let _ = mailbox.send(Command::BroadcastReplies {
                generation,
                request,
                replies,
            });
        });
        Ok(Ok(request))
    }

    fn emit_with_ack(
        &mut self,
        to: u64,
        event: String,
        args: Args,
        timeout_ms: u32,
    ) -> wasmtime::Result<u64> {
        // Every request is awaited until its reply is handled, and costs a message of
        // the call's budget, whether or not it reaches anyone.
        if self.requests.len() >= self.limits.max_pending_acks {
            return Err(Fault::AckLimit {
                limit: self.limits.max_pending_acks,
            }
            .into());
        }
        self.budget.charge(1, event.len() + args_size(&args))?;
        let request = self.next_id();
        let generation = self.generation;
        let Some(mailbox) = self.mailbox.upgrade() else {
            return Ok(request);
        };
        let owed = self.sockets.by_handle.get(&to).map(|e| e.pending_acks);
        if owed.is_some_and(|owed| owed >= self.limits.max_pending_acks_per_socket) {
            let error = format!(
                "a socket may owe at most {} acks at once",
                self.limits.max_pending_acks_per_socket
            );
            self.drop_limited(to, Kind::AckLimit, error);
        }
        let socket = self.sockets.get(to).cloned();
        let args = self.payload("emit-with-ack", args);
        self.requests.insert(request, to);
        self.stats.pending_acks.fetch_add(1, Ordering::Relaxed);
        let (Some(socket), Some(args)) = (socket, args) else {
            let _ = mailbox.send(Command::AckReply {
                generation,
                request,
                reply: Err(crate::socketio::AckError::Disconnected),
            });
            return Ok(request);
        };
        if let Some(entry) = self.sockets.by_handle.get_mut(&to) {
            entry.pending_acks += 1;
        }
        self.stats.sent(1, event.len() + args.size());
        let timeout = std::time::Duration::from_millis(u64::from(timeout_ms));
        tokio::spawn(async move {
            let reply = socket.emit_with_ack(event, args, timeout).await;
            let _ = mailbox.send(Command::AckReply {
                generation,
                request,
                reply,
            });
        });
        Ok(request)
    }

    fn answer(&mut self, ack: u64, args: Args) -> wasmtime::Result<Result<(), String>> {
        if !self.acks.contains_key(&ack) {
            return Ok(Err(format!(
                "ack {ack} is unknown: already answered, or its socket has left"
            )));
        }
        // Checked before the ack is taken: a refused answer leaves it to answer again.
        let Some(args) = self.payload("answer", args) else {
            return Ok(Err(
                "the arguments were refused (see the log): not a JSON array, nested too deep, \
                 too many attachments, or a placeholder pointing at none"
                    .into(),
            ));
        };
        self.charge(1, args.size())?;
        if let Some((_, sender)) = self.acks.remove(&ack) {
            sender.send(args);
        }
        Ok(Ok(()))
    }

    fn join(&mut self, handle: u64, room: String) -> wasmtime::Result<Result<(), String>> {
        let Some(socket) = self.sockets.get(handle).cloned() else {
            return Ok(Ok(()));
        };
        // A room it is already in costs nothing.
        if socket.in_room(&room) {
            return Ok(Ok(()));
        }
        // The socket's rooms are its own resource: it, not the tenant, pays for the excess.
        if let Some(error) = self.join_refusal(&socket, &room) {
            self.drop_limited(handle, Kind::RoomLimit, error.clone());
            return Ok(Err(error));
        }
        self.room_bytes += room.len();
        if let Some(entry) = self.sockets.by_handle.get_mut(&handle) {
            entry.room_bytes += room.len();
        }
        socket.join(room);
        Ok(Ok(()))
    }

    fn leave(&mut self, handle: u64, room: String) -> wasmtime::Result<()> {
        let Some(entry) = self.sockets.by_handle.get_mut(&handle) else {
            return Ok(());
        };
        if entry.dropped.is_none() && entry.socket.in_room(&room) {
            entry.socket.leave(&room);
            // Its own room was never counted.
            let freed = room.len().min(entry.room_bytes);
            entry.room_bytes -= freed;
            self.room_bytes = self.room_bytes.saturating_sub(freed);
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
        let level = match level {
            Level::Trace => tracing::Level::TRACE,
            Level::Debug => tracing::Level::DEBUG,
            Level::Info => tracing::Level::INFO,
            Level::Warn => tracing::Level::WARN,
            Level::Error => tracing::Level::ERROR,
        };
        self.log.write(level, Source::Guest, &message);
        Ok(())
    }
}
