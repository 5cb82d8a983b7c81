//! The one vocabulary of why a tenant's socket, connection or instance was stopped:
//! the `kind` of the `nsbox:error` event, the `limit` label of
//! `nsbox_tenant_limit_trips_total`, and the `connect_error` messages of a refused
//! connection. Typed, so that a misspelt kind fails to compile instead of counting
//! nothing.

use std::fmt;

use serde_json::Value;

use crate::socketio::ConnectError;

/// Why something of a tenant was stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A call ran past its CPU deadline.
    Deadline,
    /// A call ran past its wall-clock limit.
    WallClock,
    /// The instance asked for more memory than its limit.
    Memory,
    /// The instance asked for a bigger table than its limit.
    Table,
    /// A call sent more messages or bytes than its budget.
    EmitLimit,
    /// One message was larger than a tenant may send.
    MessageSize,
    /// The tenant, or one socket, had more server-to-client acks awaited than it may.
    AckLimit,
    /// The guest trapped.
    Trap,
    /// A socket sent events faster than a socket may.
    RateLimit,
    /// A socket joined more rooms than a socket may.
    RoomLimit,
    /// The tenant has as many sockets as it may.
    TenantFull,
    /// The host's instance pool was full when the tenant had to start.
    Capacity,
    /// A new version of the tenant refused a socket it took over.
    Refused,
    /// The tenant was deleted.
    Deleted,
}

impl Kind {
    /// The kinds that are limits, in the order of `TenantStats::limit_trips`: those
    /// that stop an instance, then those that stop a socket or a connection, then the
    /// host's pool.
    pub const LIMITS: [Kind; 12] = [
        Kind::Deadline,
        Kind::WallClock,
        Kind::Memory,
        Kind::Table,
        Kind::EmitLimit,
        Kind::MessageSize,
        Kind::AckLimit,
        Kind::Trap,
        Kind::RateLimit,
        Kind::RoomLimit,
        Kind::TenantFull,
        Kind::Capacity,
    ];

    /// The name clients and metrics see.
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::Deadline => "deadline",
            Kind::WallClock => "wall-clock",
            Kind::Memory => "memory",
            Kind::Table => "table",
            Kind::EmitLimit => "emit-limit",
            Kind::MessageSize => "message-size",
            Kind::AckLimit => "ack-limit",
            Kind::Trap => "trap",
            Kind::RateLimit => "rate-limit",
            Kind::RoomLimit => "room-limit",
            Kind::TenantFull => "tenant-full",
            Kind::Capacity => "capacity",
            Kind::Refused => "refused",
            Kind::Deleted => "deleted",
        }
    }

    /// Its place in [`Kind::LIMITS`], if it is a limit.
    pub(crate) fn limit_index(self) -> Option<usize> {
        Kind::LIMITS.iter().position(|limit| *limit == self)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a connection to a tenant's namespace was refused: the `connect_error` message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No tenant serves the namespace (or it was deleted).
    UnknownTenant,
    /// The tenant has as many sockets as it may.
    TenantFull,
    /// The tenant could not start or take the connection.
    TenantUnavailable,
    /// The tenant failed too often and waits for a new version.
    TenantQuarantined,
    /// The tenant failed while running its middleware for this connection.
    TenantError,
    /// The socket broke a limit of its own while the middleware ran (too many rooms,
    /// too long a room name, too many acks awaited).
    LimitExceeded,
}

impl Refusal {
    /// The message the client sees as `err.message`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Refusal::UnknownTenant => "unknown tenant",
            Refusal::TenantFull => "tenant full",
            Refusal::TenantUnavailable => "tenant unavailable",
            Refusal::TenantQuarantined => "tenant quarantined",
            Refusal::TenantError => "tenant error",
            Refusal::LimitExceeded => "limit exceeded",
        }
    }

    /// The refusal with `data` as the client's `err.data`.
    pub(crate) fn with_data(self, data: Value) -> ConnectError {
        ConnectError::with_data(self.as_str(), data)
    }

    /// The refusal without data.
    pub(crate) fn plain(self) -> ConnectError {
        ConnectError::new(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_limit_has_its_own_place_and_name() {
        for (i, limit) in Kind::LIMITS.iter().enumerate() {
            assert_eq!(limit.limit_index(), Some(i));
        }
        assert_eq!(Kind::Refused.limit_index(), None);
        let names: std::collections::HashSet<&str> =
            Kind::LIMITS.iter().map(|k| k.as_str()).collect();
        assert_eq!(names.len(), Kind::LIMITS.len());
    }
}
