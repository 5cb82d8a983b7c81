//! Tenants' durable key-value storage, behind one small trait so that where it lives
//! (an embedded SQLite file on one machine, Redis in a cluster) is the backend's
//! business. Every operation names its tenant; the tenant is the host's word, never a
//! guest's, so no key of one tenant is visible to another.
//!
//! Quotas are checked by the backend inside the write that would break them, so that
//! a refused operation changes nothing and concurrent writers cannot overshoot.

#[cfg(test)]
mod conformance;
pub mod redis;
pub mod sqlite;

use std::future::Future;
use std::pin::Pin;

use serde::Serialize;

pub use redis::RedisStore;
pub use sqlite::SqliteStore;

/// The most keys one listing returns.
pub const MAX_PAGE: usize = 1000;

/// What one tenant may keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Keys and values together, in bytes.
    pub bytes: u64,
    /// Keys.
    pub keys: u64,
    /// The longest key, in bytes.
    pub key_bytes: usize,
    /// The largest value, in bytes.
    pub value_bytes: usize,
    /// The most one operation may read back (a batch get), in bytes.
    pub read_bytes: usize,
}

impl Quota {
    /// No limit: for the operator's own reads and removals.
    pub const UNLIMITED: Quota = Quota {
        bytes: u64::MAX,
        keys: u64::MAX,
        key_bytes: usize::MAX,
        value_bytes: usize::MAX,
        read_bytes: usize::MAX,
    };
}

/// Where a listing starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// At the first key.
    First,
    /// After this key (a cursor that stays valid while keys are written).
    After(String),
    /// After skipping this many keys (`wasi:keyvalue`'s numeric cursor).
    Skip(u64),
}

/// One operation on one tenant's keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// The value of a key.
    Get(String),
    /// Sets a key.
    Set(String, Vec<u8>),
    /// Removes a key (absent or not).
    Delete(String),
    /// Whether a key exists.
    Exists(String),
    /// Adds to a counter kept as decimal digits (absent: 0); the new value.
    Increment(String, u64),
    /// Sets (or, with `new` none, removes) a key if its value is `expected` (none:
    /// absent); whether it did.
    CompareAndSwap {
        /// The key.
        key: String,
        /// The value it must have now.
        expected: Option<Vec<u8>>,
        /// The value it gets.
        new: Option<Vec<u8>>,
    },
    /// The values of several keys, in order.
    GetMany(Vec<String>),
    /// Sets several keys, all or none.
    SetMany(Vec<(String, Vec<u8>)>),
    /// Removes several keys.
    DeleteMany(Vec<String>),
    /// Keys starting with `prefix`, in byte order, at most `limit` (and [`MAX_PAGE`]).
    List {
        /// What every key listed starts with.
        prefix: String,
        /// Where to start.
        start: Start,
        /// The most keys to return.
        limit: usize,
    },
    /// How much the tenant keeps.
    Usage,
    /// Removes every key of the tenant.
    Clear,
}

impl Op {
    /// The bytes the operation may write (keys and values), against a call's writes.
    pub fn written_bytes(&self) -> u64 {
        let bytes = match self {
            Op::Set(key, value) => key.len() + value.len(),
            Op::SetMany(pairs) => pairs.iter().map(|(k, v)| k.len() + v.len()).sum(),
            Op::CompareAndSwap { key, new, .. } => key.len() + new.as_ref().map_or(0, Vec::len),
            // A counter is at most 20 digits.
            Op::Increment(key, _) => key.len() + 20,
            _ => 0,
        };
        bytes as u64
    }

    /// What the operation counts for against a call's operations: one per key.
    pub fn weight(&self) -> usize {
        match self {
            Op::GetMany(keys) | Op::DeleteMany(keys) => keys.len().max(1),
            Op::SetMany(pairs) => pairs.len().max(1),
            _ => 1,
        }
    }
}

/// How much a tenant keeps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// Keys.
    pub keys: u64,
    /// Keys and values together, in bytes.
    pub bytes: u64,
}

/// What an operation answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `Get`.
    Value(Option<Vec<u8>>),
    /// `GetMany`, in the order asked.
    Values(Vec<Option<Vec<u8>>>),
    /// `Set`, `Delete`, `SetMany`, `DeleteMany`, `Clear`.
    Done,
    /// `Exists`, `CompareAndSwap`.
    Yes(bool),
    /// `Increment`.
    Number(u64),
    /// `List`: the keys, and whether more follow.
    Keys(Vec<String>, bool),
    /// `Usage`.
    Usage(Usage),
}

/// Which quota an operation would break.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaKind {
    /// [`Quota::bytes`].
    Bytes,
    /// [`Quota::keys`].
    Keys,
    /// [`Quota::key_bytes`].
    KeyBytes,
    /// [`Quota::value_bytes`].
    ValueBytes,
    /// [`Quota::read_bytes`].
    ReadBytes,
    /// The operations of one call (counted by the caller).
    OpsPerCall,
    /// The bytes one call may write (counted by the caller).
    WriteBytesPerCall,
}

impl QuotaKind {
    /// Every quota, in the order of the metrics.
    pub const ALL: [QuotaKind; 7] = [
        QuotaKind::Bytes,
        QuotaKind::Keys,
        QuotaKind::KeyBytes,
        QuotaKind::ValueBytes,
        QuotaKind::ReadBytes,
        QuotaKind::OpsPerCall,
        QuotaKind::WriteBytesPerCall,
    ];

    /// Its place in [`QuotaKind::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The limit's name in the configuration (and in the metrics).
    pub fn name(self) -> &'static str {
        match self {
            QuotaKind::Bytes => "storage_bytes",
            QuotaKind::Keys => "storage_keys",
            QuotaKind::KeyBytes => "storage_key_bytes",
            QuotaKind::ValueBytes => "storage_value_bytes",
            QuotaKind::ReadBytes => "memory_bytes",
            QuotaKind::OpsPerCall => "storage_ops_per_call",
            QuotaKind::WriteBytesPerCall => "storage_write_bytes_per_call",
        }
    }
}

/// Why an operation failed; it changed nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KvError {
    /// It would break a quota.
    #[error("quota exceeded: {} is {limit}", kind.name())]
    Quota {
        /// Which.
        kind: QuotaKind,
        /// Its value.
        limit: u64,
    },
    /// The operation makes no sense on what is stored (a counter that is not one).
    #[error("{0}")]
    Invalid(String),
    /// The backend failed (a disk error); the operation did not happen.
    #[error("storage failed: {0}")]
    Backend(String),
}

/// What an operation returns, some time later.
pub type Pending = Pin<Box<dyn Future<Output = Result<Outcome, KvError>> + Send>>;

/// Where tenants' keys live.
pub trait Backend: Send + Sync + 'static {
    /// Runs `op` on `tenant`'s keys under `quota`, atomically: it happens whole, durably
    /// (acknowledged writes survive the host being killed), or not at all.
    fn run(&self, tenant: &str, quota: Quota, op: Op) -> Pending;
}

/// A store in memory, gone with the process: for tests (SQLite all the same).
#[cfg(test)]
pub(crate) fn memory() -> std::sync::Arc<dyn Backend> {
    match SqliteStore::in_memory() {
        Ok(store) => std::sync::Arc::new(store),
        Err(error) => panic!("an in-memory store: {error}"),
    }
}

/// Checks a key and a value against the quota's sizes, before anything is written.
pub(crate) fn check_sizes(quota: &Quota, key: &str, value: Option<&[u8]>) -> Result<(), KvError> {
    if key.len() > quota.key_bytes {
        return Err(KvError::Quota {
            kind: QuotaKind::KeyBytes,
            limit: quota.key_bytes as u64,
        });
    }
    if value.is_some_and(|v| v.len() > quota.value_bytes) {
        return Err(KvError::Quota {
            kind: QuotaKind::ValueBytes,
            limit: quota.value_bytes as u64,
        });
    }
    Ok(())
}
