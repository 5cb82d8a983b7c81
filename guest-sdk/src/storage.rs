//! Durable storage: the tenant's own keys, kept across instances, faults, new versions
//! and host restarts (an instance is disposable; what must outlive it goes here).
//!
//! Values are any `serde` type, stored as JSON; [`get_bytes`] and [`set_bytes`] store
//! bytes as they are. Quotas bound the keys, the bytes and the operations of one call;
//! past one, the operation fails with a [`StorageError`] saying which and changes nothing.
//!
//! ```no_run
//! use nsbox_guest::{storage, App};
//!
//! fn setup(app: &mut App) {
//!     app.on("visit", |socket, _, ack| {
//!         let visits = storage::increment("visits", 1).unwrap_or(0);
//!         let mut names: Vec<String> = storage::get("names").ok().flatten().unwrap_or_default();
//!         names.push(socket.id());
//!         let _ = storage::set("names", &names);
//!         if let Some(ack) = ack {
//!             let _ = ack.send((visits,));
//!         }
//!     });
//! }
//! # nsbox_guest::export!(setup);
//! ```

use std::fmt;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::bindings::nsbox::tenant::storage as nsbox;
use crate::bindings::wasi::keyvalue::store::{self, Bucket};
use crate::bindings::wasi::keyvalue::{atomics, batch};

/// Why a storage operation failed; it changed nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageError(pub String);

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StorageError {}

impl From<store::Error> for StorageError {
    fn from(error: store::Error) -> Self {
        StorageError(match error {
            store::Error::NoSuchStore => "no such store".into(),
            store::Error::AccessDenied => "access denied".into(),
            store::Error::Other(message) => message,
        })
    }
}

thread_local! {
    static BUCKET: Result<Bucket, StorageError> = store::open("default").map_err(Into::into);
}

/// Runs `f` with the tenant's bucket, opened once per instance.
fn with_bucket<T>(f: impl FnOnce(&Bucket) -> Result<T, StorageError>) -> Result<T, StorageError> {
    BUCKET.with(|bucket| match bucket {
        Ok(bucket) => f(bucket),
        Err(error) => Err(error.clone()),
    })
}

fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, StorageError> {
    serde_json::to_vec(value).map_err(|e| StorageError(format!("cannot encode: {e}")))
}

fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, StorageError> {
    serde_json::from_slice(bytes).map_err(|e| StorageError(format!("{key}: cannot decode: {e}")))
}

/// The value of `key`, decoded from JSON; `None` when there is none.
pub fn get<T: DeserializeOwned>(key: &str) -> Result<Option<T>, StorageError> {
    get_bytes(key)?.map(|bytes| decode(key, &bytes)).transpose()
}

/// Sets `key` to `value`, as JSON.
pub fn set<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<(), StorageError> {
    set_bytes(key, &encode(value)?)
}

/// The bytes of `key`.
pub fn get_bytes(key: &str) -> Result<Option<Vec<u8>>, StorageError> {
    with_bucket(|bucket| Ok(bucket.get(key)?))
}

/// Sets `key` to `value`, as they are.
pub fn set_bytes(key: &str, value: &[u8]) -> Result<(), StorageError> {
    with_bucket(|bucket| Ok(bucket.set(key, value)?))
}

/// Removes `key` (there or not).
pub fn delete(key: &str) -> Result<(), StorageError> {
    with_bucket(|bucket| Ok(bucket.delete(key)?))
}

/// Whether `key` exists.
pub fn exists(key: &str) -> Result<bool, StorageError> {
    with_bucket(|bucket| Ok(bucket.exists(key)?))
}

/// Adds `delta` to the counter at `key` (absent: 0) and returns the new value,
/// atomically. The counter is kept as its decimal digits, so [`get`] reads it as a number.
pub fn increment(key: &str, delta: u64) -> Result<u64, StorageError> {
    with_bucket(|bucket| Ok(atomics::increment(bucket, key, delta)?))
}

/// Sets `key` to `new` (removes it when `None`) if, and only if, its value is now
/// `expected` (`None`: absent), atomically; whether it did. Values compare as their
/// JSON bytes, so use it with values written by [`set`] from the same type.
pub fn compare_and_swap<T: Serialize + ?Sized>(
    key: &str,
    expected: Option<&T>,
    new: Option<&T>,
) -> Result<bool, StorageError> {
    let expected = expected.map(encode).transpose()?;
    let new = new.map(encode).transpose()?;
    with_bucket(|bucket| {
        Ok(nsbox::compare_and_swap(
            bucket,
            key,
            expected.as_deref(),
            new.as_deref(),
        )?)
    })
}

/// The values of several keys, in the order asked, decoded from JSON.
pub fn get_many<T: DeserializeOwned>(keys: &[String]) -> Result<Vec<Option<T>>, StorageError> {
    let found = with_bucket(|bucket| Ok(batch::get_many(bucket, keys)?))?;
    found
        .into_iter()
        .map(|entry| entry.map(|(key, bytes)| decode(&key, &bytes)).transpose())
        .collect()
}

/// Sets several keys at once, all or none.
pub fn set_many<T: Serialize>(entries: &[(String, T)]) -> Result<(), StorageError> {
    let encoded = entries
        .iter()
        .map(|(key, value)| Ok((key.clone(), encode(value)?)))
        .collect::<Result<Vec<_>, StorageError>>()?;
    with_bucket(|bucket| Ok(batch::set_many(bucket, &encoded)?))
}

/// Removes several keys at once.
pub fn delete_many(keys: &[String]) -> Result<(), StorageError> {
    with_bucket(|bucket| Ok(batch::delete_many(bucket, keys)?))
}

/// One page of the keys that start with `prefix`, in byte order, from the first or
/// after `cursor`: the keys and the next page's cursor (`None` after the last).
pub fn keys_page(
    prefix: &str,
    cursor: Option<&str>,
    limit: u32,
) -> Result<(Vec<String>, Option<String>), StorageError> {
    with_bucket(|bucket| {
        let page = nsbox::list_keys(bucket, prefix, cursor, limit)?;
        Ok((page.keys, page.cursor))
    })
}

/// Every key that starts with `prefix`, in byte order, fetched a page at a time.
pub fn keys(prefix: &str) -> Result<Vec<String>, StorageError> {
    let mut all = Vec::new();
    let mut cursor = None;
    loop {
        let (keys, next) = keys_page(prefix, cursor.as_deref(), 1000)?;
        all.extend(keys);
        match next {
            Some(next) => cursor = Some(next),
            None => return Ok(all),
        }
    }
}
