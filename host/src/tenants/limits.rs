//! The limits every tenant runs under.

use std::time::Duration;

use serde::Deserialize;

/// Per-tenant limits. The sandbox issue adds more; these are the ones enforced now.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Linear memory of the instance, in bytes (all memories together).
    pub memory_bytes: usize,
    /// Table elements of the instance.
    pub table_elements: usize,
    /// CPU time one call may use (middleware, a handler, instantiation).
    #[serde(with = "millis", rename = "cpu_per_call_ms")]
    pub cpu_per_call: Duration,
    /// CPU time all of a tenant's calls together may use per second; past it the
    /// tenant's next call waits for the next second (throttled, not stopped), so no
    /// tenant takes more than this share of a core from its neighbours.
    #[serde(with = "millis", rename = "cpu_per_second_ms")]
    pub cpu_per_second: Duration,
    /// Wall-clock time one call may take, waiting included; a backstop for calls
    /// that block instead of computing.
    #[serde(with = "millis", rename = "wall_per_call_ms")]
    pub wall_per_call: Duration,
    /// Events queued for the tenant beyond which new ones are dropped.
    pub queued_events: usize,
    /// Events per second one socket may send (bursts of one second's worth); a socket
    /// over it is told (`nsbox:error`, kind `rate-limit`) and disconnected.
    pub events_per_second_per_socket: u32,
    /// Events per second all of a tenant's sockets together may send; beyond it events
    /// are dropped before they reach the guest.
    pub events_per_second: u32,
    /// Sockets a tenant may have at once; beyond it `connect_error` `tenant full`.
    pub max_sockets: u64,
    /// Rooms one socket may be in besides its own; a join beyond it tells the socket
    /// (`nsbox:error`, kind `room-limit`) and disconnects it.
    pub max_rooms_per_socket: usize,
    /// Messages one call may send, each recipient of a broadcast counted.
    pub emit_messages_per_call: u64,
    /// Bytes one call may send, each recipient of a broadcast counted: one event may
    /// not turn into gigabytes on the wire.
    pub emit_bytes_per_call: u64,
    /// The largest single message a tenant may send (JSON and attachments), like the
    /// largest a client may send (`maxHttpBufferSize`).
    pub max_message_bytes: usize,
    /// Faults within `fault_window` after which the tenant is quarantined: it refuses
    /// connections until a new version is uploaded.
    pub quarantine_after_faults: usize,
    /// The window faults are counted in.
    #[serde(with = "millis", rename = "fault_window_ms")]
    pub fault_window: Duration,
    /// The longest wait before a fresh instance after repeated faults (the wait doubles
    /// from 100 ms with each fault in the window, the first restart being immediate).
    #[serde(with = "millis", rename = "max_restart_backoff_ms")]
    pub max_restart_backoff: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 64 << 20,
            table_elements: 20_000,
            cpu_per_call: Duration::from_millis(50),
            cpu_per_second: Duration::from_millis(500),
            wall_per_call: Duration::from_secs(1),
            queued_events: 10_000,
            events_per_second_per_socket: 1_000,
            events_per_second: 100_000,
            max_sockets: 100_000,
            max_rooms_per_socket: 1_000,
            emit_messages_per_call: 100_000,
            emit_bytes_per_call: 64 << 20,
            max_message_bytes: 1_000_000,
            quarantine_after_faults: 5,
            fault_window: Duration::from_secs(60),
            max_restart_backoff: Duration::from_secs(5),
        }
    }
}

/// Durations in the configuration are whole milliseconds.
mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_millis)
    }
}
