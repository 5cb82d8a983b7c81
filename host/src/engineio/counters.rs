//! What an endpoint counts of its sessions: always the slow clients it closed; once
//! someone watches (the Admin UI's aggregated events), also the sessions opened and
//! closed, by reason, and the messages and their bytes each way. Unwatched, a packet
//! costs one relaxed load here.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::packet::Packet;
use super::CloseReason;

/// Every reason a session closes for, in a fixed order.
const REASONS: [CloseReason; 6] = [
    CloseReason::TransportClose,
    CloseReason::TransportError,
    CloseReason::PingTimeout,
    CloseReason::ParseError,
    CloseReason::ForcedClose,
    CloseReason::ServerShuttingDown,
];

/// An endpoint's counters, shared with its sessions.
#[derive(Debug, Default)]
pub struct Counters {
    pub(crate) slow_closed: AtomicU64,
    watched: AtomicBool,
    opened: AtomicU64,
    closed: [AtomicU64; REASONS.len()],
    messages_in: AtomicU64,
    messages_out: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    writes: AtomicU64,
}

/// The totals counted since [`Counters::watch`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Sessions opened.
    pub opened: u64,
    /// Sessions closed, by reason (the reasons none closed for left out).
    pub closed: Vec<(CloseReason, u64)>,
    /// Messages received.
    pub messages_in: u64,
    /// Messages sent (queued for the client).
    pub messages_out: u64,
    /// Bytes of the messages received.
    pub bytes_in: u64,
    /// Bytes of the messages sent.
    pub bytes_out: u64,
    /// Writes to the WebSockets, each of one frame or more.
    pub writes: u64,
}

impl Counters {
    /// Starts counting the traffic (the slow clients are always counted).
    pub fn watch(&self) {
        self.watched.store(true, Ordering::Relaxed);
    }

    fn watched(&self) -> bool {
        self.watched.load(Ordering::Relaxed)
    }

    pub(crate) fn opened(&self) {
        if self.watched() {
            self.opened.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn closed(&self, reason: CloseReason) {
        if let Some(i) = REASONS
            .iter()
            .position(|r| *r == reason)
            .filter(|_| self.watched())
        {
            self.closed[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A packet from the client: counted when it is a message (Node counts the packets
    /// with data).
    pub(crate) fn received(&self, packet: &Packet) {
        if let Some(bytes) = message_bytes(packet) {
            self.received_message(bytes);
        }
    }

    /// A message of `bytes` from the client (a text one is read in place).
    pub(crate) fn received_message(&self, bytes: u64) {
        if self.watched() {
            self.messages_in.fetch_add(1, Ordering::Relaxed);
            self.bytes_in.fetch_add(bytes, Ordering::Relaxed);
        }
    }

    /// What [`Counters::sent`] will count of `packet` once it is queued: its bytes when
    /// it is a message and the traffic is watched.
    pub(crate) fn measure(&self, packet: &Packet) -> Option<u64> {
        message_bytes(packet).filter(|_| self.watched())
    }

    /// A packet [`Counters::measure`]d was queued for the client.
    pub(crate) fn sent(&self, measured: Option<u64>) {
        if let Some(bytes) = measured {
            self.messages_out.fetch_add(1, Ordering::Relaxed);
            self.bytes_out.fetch_add(bytes, Ordering::Relaxed);
        }
    }

    /// A WebSocket was written to (its queued frames flushed).
    pub(crate) fn wrote(&self) {
        if self.watched() {
            self.writes.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The totals so far.
    pub fn traffic(&self) -> Traffic {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        Traffic {
            opened: read(&self.opened),
            closed: REASONS
                .iter()
                .zip(&self.closed)
                .map(|(reason, count)| (*reason, read(count)))
                .filter(|(_, count)| *count > 0)
                .collect(),
            messages_in: read(&self.messages_in),
            messages_out: read(&self.messages_out),
            bytes_in: read(&self.bytes_in),
            bytes_out: read(&self.bytes_out),
            writes: read(&self.writes),
        }
    }
}

fn message_bytes(packet: &Packet) -> Option<u64> {
    let bytes = match packet {
        Packet::Message(text) => text.len(),
        Packet::Encoded(text) => text.len().saturating_sub(1),
        Packet::Binary(data) => data.len(),
        _ => return None,
    };
    u64::try_from(bytes).ok()
}
