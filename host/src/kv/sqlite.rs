//! The embedded backend: one SQLite file in the data directory, in WAL mode.
//!
//! One connection, behind a lock. An operation that finds it free runs at once on the
//! caller's thread (a few microseconds, charged to the tenant's call like any of its
//! work) in a transaction of its own. One that finds it busy goes to the store's thread,
//! which runs what has queued up in batches: every operation of a batch in one
//! transaction (each in a savepoint of its own, so that a refused one changes nothing),
//! one commit for all, then the answers. Under contention that is one commit for many
//! writes; alone, an operation crosses no thread.
//!
//! Durability: a write is answered after its commit reached the WAL file, so a host
//! killed at any point keeps every acknowledged write. Nothing a serving thread runs
//! ever waits for the disk: checkpoints (which flush) run on the store's thread, and
//! with `fsync` (every commit flushed too, so that it survives a power cut) every
//! operation goes there.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use parking_lot::Mutex;
use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::oneshot;

use super::{
    check_sizes, Backend, KvError, Op, Outcome, Pending, Quota, QuotaKind, Start, Usage, MAX_PAGE,
};

/// The most operations one transaction carries.
const BATCH: usize = 256;
/// How often the store's thread moves the WAL into the database when it has grown.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// Commits after which the thread checkpoints without waiting for a quiet second.
const CHECKPOINT_AFTER_COMMITS: u64 = 1000;

struct Request {
    tenant: String,
    quota: Quota,
    op: Op,
    reply: oneshot::Sender<Result<Outcome, KvError>>,
}

/// Tenants' keys in one SQLite file.
pub struct SqliteStore {
    writer: Arc<Mutex<Writer>>,
    requests: mpsc::Sender<Request>,
    /// Whether an operation may run on the caller's thread (not when commits flush).
    inline: bool,
}

impl SqliteStore {
    /// Opens (or creates) the store at `path`; with `fsync`, every commit is flushed to
    /// the disk.
    pub fn open(path: &Path, fsync: bool) -> Result<SqliteStore, KvError> {
        let connection = Connection::open(path).map_err(backend)?;
        SqliteStore::start(connection, fsync)
    }

    /// A store in memory, gone with the process: for tests.
    pub fn in_memory() -> Result<SqliteStore, KvError> {
        SqliteStore::start(Connection::open_in_memory().map_err(backend)?, false)
    }

    fn start(connection: Connection, fsync: bool) -> Result<SqliteStore, KvError> {
        let synchronous = if fsync { "FULL" } else { "NORMAL" };
        // Another process (or a store of this one being closed) holding the file is
        // waited for a while, then refused with an error that says so.
        connection
            .busy_timeout(Duration::from_secs(5))
            .map_err(backend)?;
        connection.set_prepared_statement_cache_capacity(32);
        // Checkpoints are the store's thread's to run (they flush): none automatic. One
        // connection, in one process, holds the file: no file lock per transaction, no
        // shared-memory index (and a second server on the same data directory is refused).
        connection
            .execute_batch(&format!(
                "PRAGMA locking_mode = EXCLUSIVE;
                 PRAGMA journal_mode = WAL;
                 PRAGMA synchronous = {synchronous};
                 PRAGMA wal_autocheckpoint = 0;
                 CREATE TABLE IF NOT EXISTS kv (
                     tenant TEXT NOT NULL,
                     key BLOB NOT NULL,
                     value BLOB NOT NULL,
                     PRIMARY KEY (tenant, key)
                 ) WITHOUT ROWID;"
            ))
            .map_err(backend)?;
        let usage = load_usage(&connection)?;
        let writer = Arc::new(Mutex::new(Writer {
            connection,
            usage,
            commits: 0,
        }));
        let (requests, inbox) = mpsc::channel();
        let served = writer.clone();
        std::thread::Builder::new()
            .name("nsbox-storage".into())
            .spawn(move || serve(&served, &inbox))
            .map_err(|e| KvError::Backend(format!("cannot start the storage thread: {e}")))?;
        Ok(SqliteStore {
            writer,
            requests,
            inline: !fsync,
        })
    }
}

/// The store's thread: batches of what could not run inline, and checkpoints.
fn serve(writer: &Mutex<Writer>, inbox: &mpsc::Receiver<Request>) {
    loop {
        let first = match inbox.recv_timeout(CHECKPOINT_EVERY) {
            Ok(first) => first,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                writer.lock().checkpoint(1);
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        };
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match inbox.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        let (work, replies): (Vec<_>, Vec<_>) = batch
            .into_iter()
            .map(|r| ((r.tenant, r.quota, r.op), r.reply))
            .unzip();
        let mut writer = writer.lock();
        let results = writer.run_batch(work);
        writer.checkpoint(CHECKPOINT_AFTER_COMMITS);
        drop(writer);
        for (reply, result) in replies.into_iter().zip(results) {
            let _ = reply.send(result);
        }
    }
}

impl Backend for SqliteStore {
    fn run(&self, tenant: &str, quota: Quota, op: Op) -> Pending {
        if self.inline {
            if let Some(mut writer) = self.writer.try_lock() {
                let result = writer
                    .run_batch(vec![(tenant.to_owned(), quota, op)])
                    .pop()
                    .unwrap_or_else(|| Err(KvError::Backend("no answer".into())));
                return Box::pin(std::future::ready(result));
            }
        }
        let (reply, answer) = oneshot::channel();
        let sent = self.requests.send(Request {
            tenant: tenant.to_owned(),
            quota,
            op,
            reply,
        });
        Box::pin(async move {
            if sent.is_err() {
                return Err(KvError::Backend("the storage thread has stopped".into()));
            }
            answer
                .await
                .unwrap_or_else(|_| Err(KvError::Backend("the storage thread has stopped".into())))
        })
    }
}

fn backend(error: rusqlite::Error) -> KvError {
    KvError::Backend(error.to_string())
}

fn load_usage(connection: &Connection) -> Result<HashMap<String, Usage>, KvError> {
    let mut statement = connection
        .prepare(
            "SELECT tenant, count(*), sum(length(key) + length(value)) FROM kv GROUP BY tenant",
        )
        .map_err(backend)?;
    let rows = statement
        .query_map([], |row| {
            let keys: i64 = row.get(1)?;
            let bytes: i64 = row.get(2)?;
            Ok((
                row.get::<_, String>(0)?,
                Usage {
                    keys: keys.try_into().unwrap_or(0),
                    bytes: bytes.try_into().unwrap_or(0),
                },
            ))
        })
        .map_err(backend)?;
    rows.collect::<Result<_, _>>().map_err(backend)
}

/// The connection, and what the store knows of every tenant.
struct Writer {
    connection: Connection,
    /// Every tenant's keys and bytes, as committed.
    usage: HashMap<String, Usage>,
    /// Commits since the last checkpoint.
    commits: u64,
}

impl Writer {
    /// Runs every operation in one transaction, each in a savepoint of its own, and
    /// commits; the answers in order (all failed if the commit did).
    fn run_batch(&mut self, batch: Vec<(String, Quota, Op)>) -> Vec<Result<Outcome, KvError>> {
        // Alone in its transaction, an operation needs no savepoint: a failure rolls the
        // transaction back.
        let alone = batch.len() == 1;
        if let Err(error) = self.statement("BEGIN IMMEDIATE") {
            let error = backend(error);
            return batch.iter().map(|_| Err(error.clone())).collect();
        }
        // Usage as this transaction changes it; kept only if it commits.
        let mut pending: HashMap<String, Usage> = HashMap::new();
        let mut results = Vec::with_capacity(batch.len());
        for (tenant, quota, op) in batch {
            let before = pending
                .get(&tenant)
                .or_else(|| self.usage.get(&tenant))
                .copied()
                .unwrap_or_default();
            let mut usage = before;
            let apply = |tx: &Connection| {
                Apply {
                    connection: tx,
                    tenant: &tenant,
                    quota: &quota,
                    usage: &mut usage,
                }
                .op(op)
            };
            let result = if alone {
                apply(&self.connection)
            } else {
                self.in_savepoint(apply)
            };
            if alone && result.is_err() {
                let _ = self.statement("ROLLBACK");
                return vec![result];
            }
            if result.is_ok() && usage != before {
                pending.insert(tenant, usage);
            }
            results.push(result);
        }
        match self.statement("COMMIT") {
            Ok(()) => {
                self.commits += 1;
                self.usage.extend(pending);
                results
            }
            Err(error) => {
                let _ = self.statement("ROLLBACK");
                let error = backend(error);
                results
                    .into_iter()
                    .map(|result| result.and(Err(error.clone())))
                    .collect()
            }
        }
    }

    /// Runs one statement without parameters, prepared once.
    fn statement(&self, sql: &str) -> Result<(), rusqlite::Error> {
        self.connection.prepare_cached(sql)?.execute([]).map(|_| ())
    }

    /// Moves the WAL into the database once `at_least` commits have gone into it.
    fn checkpoint(&mut self, at_least: u64) {
        if self.commits >= at_least {
            if let Err(error) = self
                .connection
                .execute_batch("PRAGMA wal_checkpoint(PASSIVE)")
            {
                tracing::warn!(%error, "storage checkpoint failed");
            }
            self.commits = 0;
        }
    }

    /// Runs `f` in a savepoint: what it wrote stays only if it succeeds.
    fn in_savepoint(
        &self,
        f: impl FnOnce(&Connection) -> Result<Outcome, KvError>,
    ) -> Result<Outcome, KvError> {
        self.statement("SAVEPOINT op").map_err(backend)?;
        let result = f(&self.connection);
        if result.is_err() {
            self.statement("ROLLBACK TO op").map_err(backend)?;
        }
        self.statement("RELEASE op").map_err(backend)?;
        result
    }
}

/// One operation on one tenant's keys, inside the batch's transaction.
struct Apply<'a> {
    connection: &'a Connection,
    tenant: &'a str,
    quota: &'a Quota,
    usage: &'a mut Usage,
}

impl Apply<'_> {
    fn op(&mut self, op: Op) -> Result<Outcome, KvError> {
        match op {
            Op::Get(key) => Ok(Outcome::Value(self.get(&key)?)),
            Op::Set(key, value) => self.set(&key, &value).map(|()| Outcome::Done),
            Op::Delete(key) => self.delete(&key).map(|()| Outcome::Done),
            Op::Exists(key) => Ok(Outcome::Yes(self.stored_size(&key)?.is_some())),
            Op::Increment(key, delta) => self.increment(&key, delta).map(Outcome::Number),
            Op::CompareAndSwap { key, expected, new } => {
                if self.get(&key)? != expected {
                    return Ok(Outcome::Yes(false));
                }
                match new {
                    Some(value) => self.set(&key, &value)?,
                    None => self.delete(&key)?,
                }
                Ok(Outcome::Yes(true))
            }
            Op::GetMany(keys) => {
                let mut read = 0usize;
                let mut values = Vec::with_capacity(keys.len());
                for key in keys {
                    let value = self.get(&key)?;
                    read = read.saturating_add(value.as_ref().map_or(0, Vec::len));
                    if read > self.quota.read_bytes {
                        return Err(KvError::Quota {
                            kind: QuotaKind::ReadBytes,
                            limit: self.quota.read_bytes as u64,
                        });
                    }
                    values.push(value);
                }
                Ok(Outcome::Values(values))
            }
            Op::SetMany(pairs) => {
                for (key, value) in pairs {
                    self.set(&key, &value)?;
                }
                Ok(Outcome::Done)
            }
            Op::DeleteMany(keys) => {
                for key in keys {
                    self.delete(&key)?;
                }
                Ok(Outcome::Done)
            }
            Op::List {
                prefix,
                start,
                limit,
            } => self.list(&prefix, start, limit),
            Op::Usage => Ok(Outcome::Usage(*self.usage)),
            Op::Clear => {
                self.connection
                    .prepare_cached("DELETE FROM kv WHERE tenant = ?1")
                    .and_then(|mut s| s.execute(params![self.tenant]))
                    .map_err(backend)?;
                *self.usage = Usage::default();
                Ok(Outcome::Done)
            }
        }
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.connection
            .prepare_cached("SELECT value FROM kv WHERE tenant = ?1 AND key = ?2")
            .and_then(|mut s| {
                s.query_row(params![self.tenant, key.as_bytes()], |row| row.get(0))
                    .optional()
            })
            .map_err(backend)
    }

    /// The stored size (key and value) of a key, if it exists.
    fn stored_size(&self, key: &str) -> Result<Option<u64>, KvError> {
        self.connection
            .prepare_cached(
                "SELECT length(key) + length(value) FROM kv WHERE tenant = ?1 AND key = ?2",
            )
            .and_then(|mut s| {
                s.query_row(params![self.tenant, key.as_bytes()], |row| {
                    row.get::<_, i64>(0)
                })
                .optional()
            })
            .map(|size| size.map(|size| size.try_into().unwrap_or(0)))
            .map_err(backend)
    }

    fn set(&mut self, key: &str, value: &[u8]) -> Result<(), KvError> {
        check_sizes(self.quota, key, Some(value))?;
        let old = self.stored_size(key)?;
        let size = (key.len() + value.len()) as u64;
        let mut usage = *self.usage;
        usage.bytes = usage.bytes.saturating_sub(old.unwrap_or(0)) + size;
        usage.keys += u64::from(old.is_none());
        // A write that does not grow what is kept passes, even over a lowered quota.
        if usage.keys > self.usage.keys && usage.keys > self.quota.keys {
            return Err(KvError::Quota {
                kind: QuotaKind::Keys,
                limit: self.quota.keys,
            });
        }
        if usage.bytes > self.usage.bytes && usage.bytes > self.quota.bytes {
            return Err(KvError::Quota {
                kind: QuotaKind::Bytes,
                limit: self.quota.bytes,
            });
        }
        self.connection
            .prepare_cached(
                "INSERT INTO kv (tenant, key, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT (tenant, key) DO UPDATE SET value = excluded.value",
            )
            .and_then(|mut s| s.execute(params![self.tenant, key.as_bytes(), value]))
            .map_err(backend)?;
        *self.usage = usage;
        Ok(())
    }

    fn delete(&mut self, key: &str) -> Result<(), KvError> {
        let Some(old) = self.stored_size(key)? else {
            return Ok(());
        };
        self.connection
            .prepare_cached("DELETE FROM kv WHERE tenant = ?1 AND key = ?2")
            .and_then(|mut s| s.execute(params![self.tenant, key.as_bytes()]))
            .map_err(backend)?;
        self.usage.keys = self.usage.keys.saturating_sub(1);
        self.usage.bytes = self.usage.bytes.saturating_sub(old);
        Ok(())
    }

    fn increment(&mut self, key: &str, delta: u64) -> Result<u64, KvError> {
        let current = match self.get(key)? {
            None => 0,
            Some(value) => std::str::from_utf8(&value)
                .ok()
                .and_then(|digits| digits.parse::<u64>().ok())
                .ok_or_else(|| {
                    KvError::Invalid(format!("{key} does not hold a counter (decimal digits)"))
                })?,
        };
        let next = current
            .checked_add(delta)
            .ok_or_else(|| KvError::Invalid(format!("{key} would overflow a u64")))?;
        self.set(key, next.to_string().as_bytes())?;
        Ok(next)
    }

    fn list(&self, prefix: &str, start: Start, limit: usize) -> Result<Outcome, KvError> {
        let limit = limit.min(MAX_PAGE);
        // Keys are UTF-8, which never holds the byte 0xff: every key that starts with
        // `prefix` sorts below `prefix` + 0xff.
        let low = prefix.as_bytes().to_vec();
        let mut high = low.clone();
        high.push(0xff);
        let (after, skip) = match start {
            Start::First => (Vec::new(), 0),
            Start::After(key) => (key.into_bytes(), 0),
            Start::Skip(n) => (Vec::new(), i64::try_from(n).unwrap_or(i64::MAX)),
        };
        let mut statement = self
            .connection
            .prepare_cached(
                "SELECT key FROM kv WHERE tenant = ?1 AND key >= ?2 AND key < ?3 AND key > ?4
                 ORDER BY key LIMIT ?5 OFFSET ?6",
            )
            .map_err(backend)?;
        let rows = statement
            .query_map(
                params![self.tenant, low, high, after, limit as i64 + 1, skip],
                |row| row.get::<_, Vec<u8>>(0),
            )
            .map_err(backend)?;
        let mut keys = Vec::with_capacity(limit.min(64));
        for key in rows {
            keys.push(String::from_utf8_lossy(&key.map_err(backend)?).into_owned());
        }
        let more = keys.len() > limit;
        keys.truncate(limit);
        Ok(Outcome::Keys(keys, more))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::conformance::{run, set};

    #[tokio::test]
    async fn behaves_as_every_backend_must() {
        let store = SqliteStore::in_memory().expect("opens");
        crate::kv::conformance::every_case(&store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_increments_inline_and_queued_lose_none() {
        let dir = std::env::temp_dir().join(format!("nsbox-kv-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).expect("dir");
        let store: Arc<dyn Backend> =
            Arc::new(SqliteStore::open(&dir.join("s.sqlite3"), false).expect("opens"));
        crate::kv::conformance::concurrent_increments_lose_none(&[store]).await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_second_store_on_the_same_file_is_refused_while_the_first_holds_it() {
        let dir = std::env::temp_dir().join(format!("nsbox-kv-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("s.sqlite3");
        let first = SqliteStore::open(&path, false).expect("opens");
        run(&first, "a", set("k", "v")).await.expect("set");
        // After the busy timeout, an error that says why (a second server on one data
        // directory would otherwise write under the first one's feet).
        let second = SqliteStore::open(&path, false);
        assert!(
            matches!(&second, Err(KvError::Backend(e)) if e.contains("locked")),
            "{:?}",
            second.err()
        );
        drop(first);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn what_was_acknowledged_is_there_after_a_reopen() {
        let dir = std::env::temp_dir().join(format!("nsbox-kv-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("storage.sqlite3");
        {
            // With fsync every operation goes through the store's thread.
            let store = SqliteStore::open(&path, true).expect("opens");
            run(&store, "a", set("k", "v")).await.expect("set");
        }
        let store = SqliteStore::open(&path, false).expect("reopens");
        assert_eq!(
            run(&store, "a", Op::Get("k".into())).await,
            Ok(Outcome::Value(Some(b"v".to_vec())))
        );
        assert_eq!(
            run(&store, "a", Op::Usage).await,
            Ok(Outcome::Usage(Usage { keys: 1, bytes: 2 }))
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
