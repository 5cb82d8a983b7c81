//! Why a tenant's instance was stopped.

use std::time::Duration;

use super::kind::Kind;

/// What ended a tenant's instance. Each ends only that tenant's instance; the host
/// and the other tenants carry on.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Fault {
    /// A call used more CPU time than the limit allows.
    #[error("a call ran past its CPU deadline of {limit:?}")]
    Deadline {
        /// The limit that tripped.
        limit: Duration,
    },
    /// A call took longer than the wall-clock limit (it blocked or waited).
    #[error("a call took longer than {limit:?}")]
    WallClock {
        /// The limit that tripped.
        limit: Duration,
    },
    /// The instance asked for more memory than its limit.
    #[error("memory limit of {limit} bytes exceeded (asked for {asked})")]
    Memory {
        /// The limit that tripped.
        limit: usize,
        /// What the instance would have had in total.
        asked: usize,
    },
    /// The instance asked for a bigger table than its limit.
    #[error("table limit of {limit} elements exceeded")]
    Table {
        /// The limit that tripped.
        limit: usize,
    },
    /// A call sent more messages or bytes than its budget (broadcast recipients counted).
    #[error("a call sent more than {limit} {what} (each recipient of a broadcast counted)")]
    EmitLimit {
        /// `messages` or `bytes`.
        what: &'static str,
        /// The limit that tripped.
        limit: u64,
    },
    /// One message was larger than a tenant may send.
    #[error("a message of {size} bytes; the limit is {limit}")]
    MessageTooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The tenant waited for more server-to-client acks at once than it may.
    #[error("more than {limit} acks awaited at once")]
    AckLimit {
        /// The limit that tripped.
        limit: usize,
    },
    /// The guest trapped (a panic, `unreachable`, an out-of-bounds access, ...).
    #[error("trapped: {0}")]
    Trap(String),
    /// The host's instance pool is full: not the tenant's doing, so it counts toward
    /// no quarantine.
    #[error("the host runs as many tenant instances as it may ({0}); try again when one stops")]
    Capacity(String),
}

impl Fault {
    /// Its kind, for logs, metrics and the `nsbox:error` event.
    pub fn kind(&self) -> Kind {
        match self {
            Fault::Deadline { .. } => Kind::Deadline,
            Fault::WallClock { .. } => Kind::WallClock,
            Fault::Memory { .. } => Kind::Memory,
            Fault::Table { .. } => Kind::Table,
            Fault::EmitLimit { .. } => Kind::EmitLimit,
            Fault::MessageTooLarge { .. } => Kind::MessageSize,
            Fault::AckLimit { .. } => Kind::AckLimit,
            Fault::Trap(_) => Kind::Trap,
            Fault::Capacity(_) => Kind::Capacity,
        }
    }

    /// Classifies the error a call into the guest returned.
    pub(crate) fn from_error(error: &wasmtime::Error) -> Fault {
        if let Some(fault) = error.downcast_ref::<Fault>() {
            return fault.clone();
        }
        if let Some(full) = error.downcast_ref::<wasmtime::PoolConcurrencyLimitError>() {
            return Fault::Capacity(full.to_string());
        }
        if let Some(trap) = error.downcast_ref::<wasmtime::Trap>() {
            return Fault::Trap(trap.to_string());
        }
        Fault::Trap(error.root_cause().to_string())
    }
}
