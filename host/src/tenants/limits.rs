//! The limits every tenant runs under.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::socketio::RecoveryConfig;

/// Per-tenant limits: the configuration's `[limits]` for every tenant, overridden for
/// one by its `[tenants.NAME.limits]` and then by the admin API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Linear memory of the instance, in bytes (all memories together).
    pub memory_bytes: usize,
    /// Table elements of the instance.
    pub table_elements: usize,
    /// Core instances, tables and linear memories the component may create (a
    /// component built by `cargo` has a few of each).
    pub max_instances: usize,
    /// See `max_instances`.
    pub max_tables: usize,
    /// See `max_instances`.
    pub max_memories: usize,
    /// CPU time one call may use (middleware, a handler; see `cpu_startup`).
    #[serde(with = "millis", rename = "cpu_per_call_ms")]
    pub cpu_per_call: Duration,
    /// CPU time each of a fresh instance's first calls may use instead of
    /// `cpu_per_call` (the larger of the two counts): its instantiation and `on-start`,
    /// then the middleware and `on-connection` of the socket that started it. They are
    /// the first to touch the instance's memory, whose page faults count as CPU (more
    /// so on a busy host, and most for a JS or Python snapshot).
    #[serde(with = "millis", rename = "cpu_startup_ms")]
    pub cpu_startup: Duration,
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
    /// The longest room name a tenant may join a socket to, in bytes; a longer one
    /// tells the socket (`nsbox:error`, kind `room-limit`) and disconnects it.
    pub max_room_name_bytes: usize,
    /// The bytes of room names all of a tenant's sockets may be in together (a room
    /// counted once per socket in it); a join beyond it is treated as the room limit.
    pub max_room_bytes: usize,
    /// Server-to-client acks the tenant may await at once (`emit-with-ack` requests
    /// whose reply `on-ack-reply` has not yet received); one more stops the instance
    /// (kind `ack-limit`).
    pub max_pending_acks: usize,
    /// Server-to-client acks one socket may owe at once; one more tells the socket
    /// (`nsbox:error`, kind `ack-limit`) and disconnects it: a client that never answers
    /// costs the tenant nothing more.
    pub max_pending_acks_per_socket: usize,
    /// Bytes of the events queued for the tenant beyond which new ones are dropped.
    pub queued_event_bytes: usize,
    /// Lines per second the tenant may write to the host's log (its own and the host's
    /// warnings about it; bursts of one second's worth); the rest are dropped and counted.
    pub log_lines_per_second: u32,
    /// The longest log line a tenant may write, in bytes; a longer one is cut.
    pub max_log_line_bytes: usize,
    /// Timers an instance may have pending at once (`timers.set` fails beyond).
    pub max_timers: usize,
    /// The shortest delay (and period) of a timer, in milliseconds.
    pub min_timer_ms: u32,
    /// Bytes the tenant may keep in storage, keys and values together. A write past a
    /// storage quota fails (an error value to the guest, not a fault) and changes nothing.
    pub storage_bytes: u64,
    /// Keys the tenant may keep in storage.
    pub storage_keys: u64,
    /// The longest storage key, in bytes.
    pub storage_key_bytes: usize,
    /// The largest storage value, in bytes.
    pub storage_value_bytes: usize,
    /// Storage operations one call may run, each key of a batch counted.
    pub storage_ops_per_call: usize,
    /// Bytes (keys and values) one call may write to storage, overwrites included: what
    /// one call may make the disk take.
    pub storage_write_bytes_per_call: u64,
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
    /// How long an instance lives on after its last socket leaves; then it is stopped,
    /// its memory (and what the tenant kept in it) freed, and the next connection
    /// starts a fresh one (tens of microseconds). 0 keeps it until the host stops.
    #[serde(with = "millis", rename = "evict_idle_after_ms")]
    pub evict_idle_after: Duration,
    /// Connection state recovery (socket.io's `connectionStateRecovery`): how long a
    /// socket whose connection dropped waits for its client to come back to it, with
    /// its id, rooms and everything sent to it meanwhile (Node's
    /// `maxDisconnectionDuration`). The tenant is told it left only once this has
    /// passed. 0, the default, is off.
    #[serde(with = "millis", rename = "recovery_window_ms")]
    pub recovery_window: Duration,
    /// Bytes of missed events one socket may be given back; one that missed more gets
    /// a fresh session (and the tenant is told the old one left).
    pub recovery_session_bytes: usize,
    /// Bytes of events a namespace of the tenant keeps for the sockets that may come
    /// back (every event sent without an ack, shared by its recipients); the oldest go
    /// first, and a socket that missed one of them gets a fresh session.
    pub recovery_log_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 64 << 20,
            table_elements: 20_000,
            max_instances: 50,
            max_tables: 20,
            max_memories: 4,
            cpu_per_call: Duration::from_millis(50),
            cpu_startup: Duration::from_millis(500),
            cpu_per_second: Duration::from_millis(500),
            wall_per_call: Duration::from_secs(1),
            queued_events: 10_000,
            events_per_second_per_socket: 1_000,
            events_per_second: 100_000,
            max_sockets: 100_000,
            max_rooms_per_socket: 1_000,
            max_room_name_bytes: 256,
            max_room_bytes: 64 << 20,
            max_pending_acks: 10_000,
            max_pending_acks_per_socket: 100,
            queued_event_bytes: 64 << 20,
            log_lines_per_second: 100,
            max_timers: 1_000,
            min_timer_ms: 10,
            max_log_line_bytes: 4096,
            storage_bytes: 64 << 20,
            storage_keys: 100_000,
            storage_key_bytes: 1024,
            storage_value_bytes: 1_000_000,
            storage_ops_per_call: 1_000,
            storage_write_bytes_per_call: 16 << 20,
            emit_messages_per_call: 100_000,
            emit_bytes_per_call: 64 << 20,
            max_message_bytes: 1_000_000,
            quarantine_after_faults: 5,
            fault_window: Duration::from_secs(60),
            max_restart_backoff: Duration::from_secs(5),
            evict_idle_after: Duration::from_secs(300),
            recovery_window: Duration::ZERO,
            recovery_session_bytes: 1 << 20,
            recovery_log_bytes: 8 << 20,
        }
    }
}

impl Limits {
    /// How the tenant's namespaces recover sessions; `None` when they do not.
    pub fn recovery(&self) -> Option<RecoveryConfig> {
        (!self.recovery_window.is_zero()).then_some(RecoveryConfig {
            window: self.recovery_window,
            session_bytes: self.recovery_session_bytes,
            log_bytes: self.recovery_log_bytes,
        })
    }

    /// These limits with some of them replaced: `overrides` names fields as the
    /// configuration does (`cpu_per_call_ms = 20`). An unknown name or a wrong type
    /// is an error that says which.
    pub fn overlaid(&self, overrides: &Map<String, Value>) -> Result<Limits, String> {
        if overrides.is_empty() {
            return Ok(self.clone());
        }
        let mut merged = match serde_json::to_value(self) {
            Ok(Value::Object(fields)) => fields,
            _ => return Err("limits do not serialize as an object".to_owned()),
        };
        merged.extend(overrides.iter().map(|(k, v)| (k.clone(), v.clone())));
        serde_json::from_value(Value::Object(merged)).map_err(|e| e.to_string())
    }
}

/// Durations in the configuration are whole milliseconds.
mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// The longest any limit's duration may be: 30 days. Far beyond any use, and far
    /// from what would overflow when added to an `Instant` (a deadline, an eviction).
    pub const MAX_MS: u64 = 30 * 24 * 3600 * 1000;

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let ms = u64::deserialize(deserializer)?;
        if ms > MAX_MS {
            return Err(serde::de::Error::custom(format!(
                "{ms} ms is more than the {MAX_MS} ms (30 days) a limit may be"
            )));
        }
        Ok(Duration::from_millis(ms))
    }

    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(duration.as_millis().try_into().unwrap_or(u64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(json: Value) -> Map<String, Value> {
        match json {
            Value::Object(fields) => fields,
            _ => Map::new(),
        }
    }

    #[test]
    fn overrides_replace_only_what_they_name() {
        let base = Limits::default();
        let tight = base
            .overlaid(&fields(
                serde_json::json!({"cpu_per_call_ms": 20, "max_sockets": 3}),
            ))
            .expect("valid overrides");
        assert_eq!(tight.cpu_per_call, Duration::from_millis(20));
        assert_eq!(tight.max_sockets, 3);
        assert_eq!(tight.memory_bytes, base.memory_bytes);
        assert_eq!(base.overlaid(&Map::new()), Ok(base.clone()));
        // What serializes reads back the same (milliseconds both ways).
        let round =
            serde_json::from_value::<Limits>(serde_json::to_value(&tight).unwrap_or_default());
        assert_eq!(round.ok(), Some(tight));
    }

    #[test]
    fn bad_overrides_say_which() {
        let base = Limits::default();
        let unknown = base.overlaid(&fields(serde_json::json!({"cpu_ms": 1})));
        assert!(unknown.is_err_and(|e| e.contains("cpu_ms")));
        let wrong = base.overlaid(&fields(serde_json::json!({"max_sockets": "many"})));
        assert!(wrong.is_err_and(|e| e.contains("invalid type")));
        // A duration that would overflow an Instant is refused here, not in an actor.
        for name in [
            "evict_idle_after_ms",
            "fault_window_ms",
            "cpu_per_call_ms",
            "cpu_startup_ms",
            "wall_per_call_ms",
            "max_restart_backoff_ms",
            "cpu_per_second_ms",
            "recovery_window_ms",
        ] {
            let huge = base.overlaid(&fields(serde_json::json!({ name: u64::MAX })));
            assert!(huge.is_err_and(|e| e.contains("30 days")), "{name}");
        }
        assert!(base
            .overlaid(&fields(
                serde_json::json!({"evict_idle_after_ms": millis::MAX_MS})
            ))
            .is_ok());
    }
}
