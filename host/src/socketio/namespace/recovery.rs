//! Connection state recovery (socket.io 4.6+'s `connectionStateRecovery`), per
//! namespace. A socket whose connection drops for a reason Node recovers from is kept
//! for a window (parked) with its id, rooms, data and handlers, and nobody is told it
//! left. Every event sent to a socket without an ack, and not volatile, carries an
//! offset as its last argument and is kept in the namespace's log; a client that comes
//! back within the window with its private session id (`pid`) and the last offset it
//! saw gets the same socket back, and every logged event meant for its rooms after that
//! offset, in order, before anything new. A socket not back in time leaves then, with
//! the reason its connection dropped for.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::{Mutex, MutexGuard};
use tokio::time::Instant;

use super::{DisconnectReason, Namespace, Socket};
use crate::socketio::packet::Packet;

/// How a namespace recovers sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecoveryConfig {
    /// How long a dropped socket waits for its client (Node's `maxDisconnectionDuration`).
    pub window: Duration,
    /// Bytes of missed events one socket may be sent when it comes back; one that
    /// missed more gets a fresh session instead (and the old one leaves).
    pub session_bytes: usize,
    /// Bytes of events the namespace keeps for the sockets that may come back; past
    /// it the oldest go, and a socket whose offset went with them gets a fresh session.
    pub log_bytes: usize,
}

/// The reasons Node keeps a session for (`RECOVERABLE_DISCONNECT_REASONS`): the
/// connection failed or was closed under the socket, not by anyone's choice to leave.
pub(crate) fn recoverable(reason: DisconnectReason) -> bool {
    matches!(
        reason,
        DisconnectReason::TransportClose
            | DisconnectReason::TransportError
            | DisconnectReason::PingTimeout
            | DisconnectReason::ForcedClose
            | DisconnectReason::ServerShuttingDown
    )
}

/// A namespace's recovery: its settings, its log and its parked sockets.
#[derive(Default)]
pub(crate) struct Recovery {
    /// Whether `config` is set: read on every event sent to one socket.
    on: AtomicBool,
    config: Mutex<Option<RecoveryConfig>>,
    state: Mutex<State>,
}

#[derive(Default)]
pub(crate) struct State {
    last_offset: u64,
    log: VecDeque<Logged>,
    log_bytes: usize,
    parked: HashMap<String, Parked>,
    /// Whether a task is sweeping expired sockets and events.
    sweeping: bool,
}

/// An event kept for the sockets that may come back.
struct Logged {
    offset: u64,
    at: Instant,
    /// Whom it went to: rooms (none for everyone) and the rooms left out (socket
    /// ids among them).
    rooms: Vec<String>,
    except: Vec<String>,
    packet: Arc<Packet>,
    size: usize,
}

struct Parked {
    socket: Arc<Socket>,
    since: Instant,
    reason: DisconnectReason,
}

/// A socket given back to its client, with the events it missed.
pub(crate) struct Restored {
    pub(crate) socket: Arc<Socket>,
    pub(crate) missed: Vec<Arc<Packet>>,
}

/// Why a CONNECT with a session id got a fresh session.
pub(crate) enum NotRestored {
    /// No socket of the namespace waits under that id (never was, gone, expired).
    Unknown,
    /// The socket waited, but what it missed cannot be given back whole: it leaves.
    Lost(Arc<Socket>, DisconnectReason),
}

impl Recovery {
    pub(crate) fn config(&self) -> Option<RecoveryConfig> {
        *self.config.lock()
    }

    pub(crate) fn set_config(&self, config: Option<RecoveryConfig>) {
        let mut current = self.config.lock();
        *current = config;
        self.on.store(config.is_some(), Ordering::Release);
    }

    /// Whether the namespace recovers sessions.
    pub(crate) fn is_on(&self) -> bool {
        self.on.load(Ordering::Acquire)
    }

    /// Whether a socket waits under `pid`.
    pub(crate) fn is_parked(&self, pid: &str) -> bool {
        self.state.lock().parked.contains_key(pid)
    }

    /// The log, locked, when recovery is on: an event recorded in it is sent to its
    /// recipients after the lock is released, so that no socket coming back meanwhile
    /// gets it twice or not at all.
    pub(crate) fn log(&self) -> Option<LogGuard<'_>> {
        let config = self.config()?;
        Some(LogGuard {
            state: self.state.lock(),
            config,
        })
    }

    /// How many sockets wait for their clients.
    pub(crate) fn parked_count(&self) -> usize {
        self.state.lock().parked.len()
    }

    /// Keeps `socket` (which has a session id) for its client, when recovery is on and
    /// `reason` is one Node recovers from; `true` if it was kept.
    pub(crate) fn park(
        &self,
        nsp: &Arc<Namespace>,
        socket: &Arc<Socket>,
        pid: &str,
        reason: DisconnectReason,
    ) -> bool {
        if self.config().is_none() || !recoverable(reason) {
            return false;
        }
        let mut state = self.state.lock();
        state.parked.insert(
            pid.to_owned(),
            Parked {
                socket: socket.clone(),
                since: Instant::now(),
                reason,
            },
        );
        if !std::mem::replace(&mut state.sweeping, true) {
            tokio::spawn(sweep(Arc::downgrade(nsp)));
        }
        true
    }

    /// Takes a parked socket back out, e.g. because the server disconnects it.
    pub(crate) fn unpark(&self, pid: &str) -> Option<(Arc<Socket>, DisconnectReason)> {
        let parked = self.state.lock().parked.remove(pid)?;
        Some((parked.socket, parked.reason))
    }

    /// The parked socket under `pid` and the events of the log after `offset` meant
    /// for its rooms; `then` runs with them under the log's lock (to send them and put
    /// the socket back among its namespace's, before any later event is sent).
    pub(crate) fn restore(
        &self,
        pid: &str,
        offset: &str,
        then: impl FnOnce(&Restored),
    ) -> Result<Arc<Socket>, NotRestored> {
        let Some(config) = self.config() else {
            return Err(NotRestored::Unknown);
        };
        let mut state = self.state.lock();
        let Some(parked) = state.parked.remove(pid) else {
            return Err(NotRestored::Unknown);
        };
        let lost = |parked: Parked| NotRestored::Lost(parked.socket, parked.reason);
        if parked.since.elapsed() > config.window {
            return Err(lost(parked));
        }
        state.prune(config);
        let Some(after) = parse_offset(offset).and_then(|offset| state.position_after(offset))
        else {
            return Err(lost(parked));
        };
        let rooms = parked.socket.rooms();
        let meant = |event: &&Logged| {
            let included = event.rooms.is_empty() || event.rooms.iter().any(|r| rooms.contains(r));
            included && !event.except.iter().any(|r| rooms.contains(r))
        };
        let missed: Vec<&Logged> = state.log.range(after..).filter(meant).collect();
        if missed.iter().map(|event| event.size).sum::<usize>() > config.session_bytes {
            return Err(lost(parked));
        }
        let restored = Restored {
            socket: parked.socket,
            missed: missed
                .into_iter()
                .map(|event| event.packet.clone())
                .collect(),
        };
        then(&restored);
        Ok(restored.socket)
    }

    /// Ends the sockets whose window has passed, and forgets events older than it;
    /// when the next is due, or `None` when nothing is left to sweep (and the sweeping
    /// stops).
    fn sweep_once(&self) -> (Vec<(Arc<Socket>, DisconnectReason)>, Option<Instant>) {
        let config = self.config();
        let mut state = self.state.lock();
        let window = config.map_or(Duration::ZERO, |config| config.window);
        let now = Instant::now();
        let expired: Vec<String> = state
            .parked
            .iter()
            .filter(|(_, parked)| now.duration_since(parked.since) >= window)
            .map(|(pid, _)| pid.clone())
            .collect();
        let ended = expired
            .iter()
            .filter_map(|pid| state.parked.remove(pid))
            .map(|parked| (parked.socket, parked.reason))
            .collect();
        match config {
            Some(config) => state.prune(config),
            None => state.clear_log(),
        }
        let next = state
            .parked
            .values()
            .map(|parked| parked.since)
            .chain(state.log.front().map(|event| event.at))
            .min()
            .map(|since| since + window);
        if next.is_none() {
            state.sweeping = false;
        }
        (ended, next)
    }
}

/// Sweeps a namespace's expired sockets and events until none are left, or the
/// namespace is gone.
async fn sweep(nsp: Weak<Namespace>) {
    loop {
        let Some(namespace) = nsp.upgrade() else {
            return;
        };
        let (ended, next) = namespace.recovery.sweep_once();
        for (socket, reason) in ended {
            socket.leave_parked(reason);
        }
        namespace.cleanup_if_empty();
        drop(namespace);
        match next {
            Some(at) => tokio::time::sleep_until(at).await,
            None => return,
        }
    }
}

/// The log of a namespace with recovery on, locked.
pub(crate) struct LogGuard<'a> {
    state: MutexGuard<'a, State>,
    config: RecoveryConfig,
}

impl LogGuard<'_> {
    /// The offset the next recorded event carries, as the client sees it.
    pub(crate) fn next_offset(&mut self) -> String {
        format_offset(self.state.last_offset + 1)
    }

    /// Records an event (carrying [`LogGuard::next_offset`]) sent to `rooms` (none for
    /// all) but `except`; the oldest events go past the log's bytes.
    pub(crate) fn record(&mut self, rooms: Vec<String>, except: Vec<String>, packet: Arc<Packet>) {
        let size = match &*packet {
            Packet::Event { event, args, .. } => event.len() + args.size(),
            _ => 0,
        };
        self.state.last_offset += 1;
        let offset = self.state.last_offset;
        self.state.log_bytes += size;
        self.state.log.push_back(Logged {
            offset,
            at: Instant::now(),
            rooms,
            except,
            packet,
            size,
        });
        self.state.prune(self.config);
    }
}

impl State {
    /// Forgets the events older than the window, and the oldest past the log's bytes.
    fn prune(&mut self, config: RecoveryConfig) {
        let now = Instant::now();
        while let Some(oldest) = self.log.front() {
            let stale = now.duration_since(oldest.at) > config.window;
            if !stale && self.log_bytes <= config.log_bytes {
                break;
            }
            self.log_bytes -= oldest.size;
            self.log.pop_front();
        }
    }

    fn clear_log(&mut self) {
        self.log.clear();
        self.log_bytes = 0;
    }

    /// Where the events after `offset` start in the log: `None` when one of them is
    /// not there any more, or `offset` was never given.
    fn position_after(&self, offset: u64) -> Option<usize> {
        if offset > self.last_offset {
            return None;
        }
        // Offsets are consecutive, and only the oldest events are ever forgotten.
        let first = self
            .log
            .front()
            .map_or(self.last_offset + 1, |event| event.offset);
        usize::try_from((offset + 1).checked_sub(first)?).ok()
    }
}

/// Offsets as the client carries them: a short string it hands back unchanged.
fn format_offset(offset: u64) -> String {
    format!("{offset:x}")
}

fn parse_offset(text: &str) -> Option<u64> {
    if text.is_empty() || text.len() > 16 {
        return None;
    }
    u64::from_str_radix(text, 16).ok()
}
