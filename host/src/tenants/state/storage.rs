//! The host functions of a tenant's storage: `wasi:keyvalue` (store, atomics, batch)
//! and `nsbox:tenant/storage`, over the host's [`Backend`]. The tenant is the store's
//! name, the operations of one call are counted, and every failure is an error value
//! to the guest, never a fault.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use wasmtime::component::Resource;
use wasmtime_wasi_io::IoView;

use super::TenantState;
use crate::kv::{Backend, KvError, Op, Outcome, Quota, QuotaKind, Start, MAX_PAGE};
use crate::tenants::bindings::nsbox::tenant::storage::{self as nsbox_storage, KeyPage};
use crate::tenants::bindings::wasi::keyvalue::store::{self, Error, KeyResponse};
use crate::tenants::bindings::wasi::keyvalue::{atomics, batch};
use crate::tenants::bindings::Bucket;
use crate::tenants::limits::Limits;

/// Buckets one instance may hold open at once; opening is free, hoarding handles is not.
const MAX_OPEN_BUCKETS: usize = 100;

/// An instance's way to its tenant's keys.
pub(crate) struct TenantStorage {
    backend: Arc<dyn Backend>,
    quota: Quota,
    ops_per_call: usize,
    /// Operations the call in progress may still run.
    ops_left: usize,
    write_bytes_per_call: u64,
    /// Bytes the call in progress may still write.
    write_bytes_left: u64,
    open_buckets: usize,
}

impl TenantStorage {
    pub(crate) fn new(backend: Arc<dyn Backend>, limits: &Limits) -> TenantStorage {
        TenantStorage {
            backend,
            quota: Quota {
                bytes: limits.storage_bytes,
                keys: limits.storage_keys,
                key_bytes: limits.storage_key_bytes,
                value_bytes: limits.storage_value_bytes,
                // More than its memory could never reach the guest anyway.
                read_bytes: limits.memory_bytes,
            },
            ops_per_call: limits.storage_ops_per_call,
            ops_left: limits.storage_ops_per_call,
            write_bytes_per_call: limits.storage_write_bytes_per_call,
            write_bytes_left: limits.storage_write_bytes_per_call,
            open_buckets: 0,
        }
    }

    /// A call starts: its operations are counted afresh.
    pub(crate) fn start_call(&mut self) {
        self.ops_left = self.ops_per_call;
        self.write_bytes_left = self.write_bytes_per_call;
    }
}

type Answer<T> = wasmtime::Result<Result<T, Error>>;

impl TenantState {
    /// Runs `op` on the tenant's keys within the call's operations; `read` picks the
    /// answer out of its outcome.
    async fn kv<T>(&mut self, op: Op, read: impl FnOnce(Outcome) -> Option<T>) -> Answer<T> {
        let (weight, written) = (op.weight(), op.written_bytes());
        let storage = &mut self.storage;
        let result = if weight > storage.ops_left {
            Err(KvError::Quota {
                kind: QuotaKind::OpsPerCall,
                limit: storage.ops_per_call as u64,
            })
        } else if written > storage.write_bytes_left {
            Err(KvError::Quota {
                kind: QuotaKind::WriteBytesPerCall,
                limit: storage.write_bytes_per_call,
            })
        } else {
            storage.ops_left -= weight;
            // Charged whether or not the write happens: a refused one still cost a look.
            storage.write_bytes_left -= written;
            self.stats
                .storage_ops
                .fetch_add(weight as u64, Ordering::Relaxed);
            storage.backend.run(&self.tenant, storage.quota, op).await
        };
        match result {
            Ok(outcome) => Ok(read(outcome)
                .ok_or_else(|| Error::Other("the storage answered out of turn".into()))),
            Err(error) => {
                match &error {
                    KvError::Quota { kind, .. } => {
                        self.stats.storage_refused[kind.index()].fetch_add(1, Ordering::Relaxed);
                    }
                    KvError::Backend(_) => {
                        tracing::error!(tenant = %self.tenant, %error, "storage failed");
                    }
                    KvError::Invalid(_) => {}
                }
                Ok(Err(Error::Other(error.to_string())))
            }
        }
    }
}

fn value(outcome: Outcome) -> Option<Option<Vec<u8>>> {
    match outcome {
        Outcome::Value(value) => Some(value),
        _ => None,
    }
}

fn done(outcome: Outcome) -> Option<()> {
    matches!(outcome, Outcome::Done).then_some(())
}

fn yes(outcome: Outcome) -> Option<bool> {
    match outcome {
        Outcome::Yes(yes) => Some(yes),
        _ => None,
    }
}

fn keys(outcome: Outcome) -> Option<(Vec<String>, bool)> {
    match outcome {
        Outcome::Keys(keys, more) => Some((keys, more)),
        _ => None,
    }
}

impl store::Host for TenantState {
    async fn open(&mut self, identifier: String) -> Answer<Resource<Bucket>> {
        if !(identifier.is_empty() || identifier == "default") {
            return Ok(Err(Error::NoSuchStore));
        }
        if self.storage.open_buckets >= MAX_OPEN_BUCKETS {
            return Ok(Err(Error::Other(format!(
                "at most {MAX_OPEN_BUCKETS} buckets may be open at once"
            ))));
        }
        let bucket = self.table().push(Bucket)?;
        self.storage.open_buckets += 1;
        Ok(Ok(bucket))
    }
}

impl store::HostBucket for TenantState {
    async fn get(&mut self, _: Resource<Bucket>, key: String) -> Answer<Option<Vec<u8>>> {
        self.kv(Op::Get(key), value).await
    }

    async fn set(&mut self, _: Resource<Bucket>, key: String, value: Vec<u8>) -> Answer<()> {
        self.kv(Op::Set(key, value), done).await
    }

    async fn delete(&mut self, _: Resource<Bucket>, key: String) -> Answer<()> {
        self.kv(Op::Delete(key), done).await
    }

    async fn exists(&mut self, _: Resource<Bucket>, key: String) -> Answer<bool> {
        self.kv(Op::Exists(key), yes).await
    }

    async fn list_keys(&mut self, _: Resource<Bucket>, cursor: Option<u64>) -> Answer<KeyResponse> {
        let skip = cursor.unwrap_or(0);
        let op = Op::List {
            prefix: String::new(),
            start: Start::Skip(skip),
            limit: MAX_PAGE,
        };
        self.kv(op, keys).await.map(|page| {
            page.map(|(keys, more)| KeyResponse {
                cursor: more.then(|| skip + keys.len() as u64),
                keys,
            })
        })
    }

    async fn drop(&mut self, bucket: Resource<Bucket>) -> wasmtime::Result<()> {
        self.table().delete(bucket)?;
        self.storage.open_buckets = self.storage.open_buckets.saturating_sub(1);
        Ok(())
    }
}

impl atomics::Host for TenantState {
    async fn increment(&mut self, _: Resource<Bucket>, key: String, delta: u64) -> Answer<u64> {
        let number = |outcome| match outcome {
            Outcome::Number(n) => Some(n),
            _ => None,
        };
        self.kv(Op::Increment(key, delta), number).await
    }
}

impl batch::Host for TenantState {
    async fn get_many(
        &mut self,
        _: Resource<Bucket>,
        keys: Vec<String>,
    ) -> Answer<Vec<Option<(String, Vec<u8>)>>> {
        let asked = keys.clone();
        let values = |outcome| match outcome {
            Outcome::Values(values) => Some(values),
            _ => None,
        };
        self.kv(Op::GetMany(keys), values).await.map(|found| {
            found.map(|values| {
                asked
                    .into_iter()
                    .zip(values)
                    .map(|(key, value)| value.map(|value| (key, value)))
                    .collect()
            })
        })
    }

    async fn set_many(&mut self, _: Resource<Bucket>, pairs: Vec<(String, Vec<u8>)>) -> Answer<()> {
        self.kv(Op::SetMany(pairs), done).await
    }

    async fn delete_many(&mut self, _: Resource<Bucket>, keys: Vec<String>) -> Answer<()> {
        self.kv(Op::DeleteMany(keys), done).await
    }
}

impl nsbox_storage::Host for TenantState {
    async fn list_keys(
        &mut self,
        _: Resource<Bucket>,
        prefix: String,
        cursor: Option<String>,
        limit: u32,
    ) -> Answer<KeyPage> {
        let op = Op::List {
            prefix,
            start: cursor.map_or(Start::First, Start::After),
            limit: usize::try_from(limit).unwrap_or(MAX_PAGE),
        };
        self.kv(op, keys).await.map(|page| {
            page.map(|(keys, more)| KeyPage {
                cursor: if more { keys.last().cloned() } else { None },
                keys,
            })
        })
    }

    async fn compare_and_swap(
        &mut self,
        _: Resource<Bucket>,
        key: String,
        expected: Option<Vec<u8>>,
        new: Option<Vec<u8>>,
    ) -> Answer<bool> {
        self.kv(Op::CompareAndSwap { key, expected, new }, yes)
            .await
    }
}
