//! The tenants' catalog in the cluster's Redis: every node reads the same versions,
//! configurations and deploy tokens, and hears of every change.
//!
//! ```text
//! nsbox:{catalog}:tenants          set: every uploaded tenant's name
//! nsbox:{catalog}:tenant:T         hash: rev (changes so far), record (TenantRecord JSON),
//!                                  config (TenantConfig JSON), quarantine (Quarantine JSON)
//! nsbox:{catalog}:faults:T         sorted set: the current version's faults on every node,
//!                                  scored by Redis's clock, within the fault window
//! nsbox:{catalog}:component:SHA    a component's bytes, once however many versions have them
//! nsbox:{catalog}:refs             hash: SHA -> how many versions have it (at 0 the bytes go)
//! nsbox:{catalog}:tokens           hash: SHA-256 of a deploy token -> its tenant
//! nsbox:{catalog}:uploads:D        hash: what is left of the uploads a minute of the
//!                                  deploy token whose SHA-256 is D
//! nsbox:{catalog}:epoch            the catalog's random name, set by the first node
//! ```
//!
//! One hash tag, so a Redis Cluster keeps them in one slot and a script may touch them
//! together. Every change to a tenant is one script: a compare-and-set on its `rev`
//! (a node that read an older one reads again and retries), the bytes and their counts,
//! and a message on [`CHANNEL`] naming the tenant, so every node brings its live
//! version in line. Durability is Redis's: `appendonly yes` (and `appendfsync always`
//! for an acknowledged upload to survive Redis being killed).

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use fred::clients::{Client, SubscriberClient};
use fred::interfaces::{
    ClientLike, EventInterface, HashesInterface, KeysInterface, PubsubInterface, SetsInterface,
};
use fred::types::scripts::Script;
use fred::types::Value;
use tokio::sync::mpsc;

use super::tokens::DeployHashes;
use super::{CatalogError, Quarantine, StoredTenant, TenantRecord, VersionInfo};
use crate::cluster::redis::{builder, connected};
use crate::cluster::ClusterError;
use crate::tenants::{FaultReport, TenantConfig};

/// Where every change is announced: `tenant:NAME` or `tokens`.
pub const CHANNEL: &str = "nsbox#catalog";
const NAMES: &str = "nsbox:{catalog}:tenants";
const REFS: &str = "nsbox:{catalog}:refs";
const TOKENS: &str = "nsbox:{catalog}:tokens";
/// A random name the first node gives the catalog: another one later means Redis lost
/// what it had (restarted without persistence, flushed).
const EPOCH: &str = "nsbox:{catalog}:epoch";
/// Reads of a record a change may retry after another node's change won.
const ATTEMPTS: usize = 8;

fn tenant_key(name: &str) -> String {
    format!("nsbox:{{catalog}}:tenant:{name}")
}

fn faults_key(name: &str) -> String {
    format!("nsbox:{{catalog}}:faults:{name}")
}

fn component_key(sha256: &str) -> String {
    format!("nsbox:{{catalog}}:component:{sha256}")
}

/// KEYS: the tenant's hash, the names, the counts, the tokens, its faults. ARGV: the name, the
/// `rev` read, the record's JSON (empty: the tenant goes, with its tokens), the
/// configuration's JSON (empty: as it is), the digest and bytes of a component to keep
/// (empty: none), then digest and change of count pairs.
const COMMIT: &str = r#"
local rev = tonumber(redis.call('HGET', KEYS[1], 'rev') or '0')
if rev ~= tonumber(ARGV[2]) then return 'conflict' end
local prefix = 'nsbox:{catalog}:component:'
if ARGV[5] ~= '' then redis.call('SET', prefix .. ARGV[5], ARGV[6], 'NX') end
for i = 7, #ARGV, 2 do
  if redis.call('HINCRBY', KEYS[3], ARGV[i], ARGV[i + 1]) <= 0 then
    redis.call('HDEL', KEYS[3], ARGV[i])
    redis.call('DEL', prefix .. ARGV[i])
  end
end
-- Any change starts the tenant afresh: a new version, or the same under other settings.
redis.call('DEL', KEYS[5])
redis.call('HDEL', KEYS[1], 'quarantine')
if ARGV[3] == '' then
  redis.call('DEL', KEYS[1])
  redis.call('SREM', KEYS[2], ARGV[1])
  local tokens = redis.call('HGETALL', KEYS[4])
  for i = 1, #tokens, 2 do
    if tokens[i + 1] == ARGV[1] then redis.call('HDEL', KEYS[4], tokens[i]) end
  end
  redis.call('PUBLISH', 'nsbox#catalog', 'tokens')
else
  redis.call('HSET', KEYS[1], 'rev', rev + 1, 'record', ARGV[3])
  if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'config', ARGV[4]) end
  redis.call('SADD', KEYS[2], ARGV[1])
end
redis.call('PUBLISH', 'nsbox#catalog', 'tenant:' .. ARGV[1])
return 'OK'
"#;

/// KEYS: the tenant's hash, its faults. ARGV: the version that faulted, the fault window
/// in ms, the faults that quarantine, what happened, a name for this fault. Counts the
/// fault if that version is current; at the threshold, quarantines it (once) and
/// announces the tenant. Answers the faults in the window.
const FAULT: &str = r#"
local record = redis.call('HGET', KEYS[1], 'record')
local version = tonumber(ARGV[1])
if not record or cjson.decode(record).current ~= version then return 0 end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local window = tonumber(ARGV[2])
redis.call('ZADD', KEYS[2], now, ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. (now - window))
redis.call('PEXPIRE', KEYS[2], window)
local faults = redis.call('ZCARD', KEYS[2])
if faults >= tonumber(ARGV[3]) and redis.call('HEXISTS', KEYS[1], 'quarantine') == 0 then
  local quarantine = cjson.encode({ version = version, faults = faults, error = ARGV[4] })
  redis.call('HSET', KEYS[1], 'quarantine', quarantine)
  local name = string.sub(KEYS[1], string.len('nsbox:{catalog}:tenant:') + 1)
  redis.call('PUBLISH', 'nsbox#catalog', 'tenant:' .. name)
end
return faults
"#;

/// KEYS: a deploy token's upload bucket. ARGV: uploads a minute. Takes one upload
/// from the bucket, refilled continuously on Redis's clock; answers 0, or the
/// milliseconds until one is left.
const UPLOAD: &str = r#"
local capacity = tonumber(ARGV[1])
local per_ms = capacity / 60000
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local bucket = redis.call('HMGET', KEYS[1], 'tokens', 'last')
local tokens = tonumber(bucket[1]) or capacity
local last = tonumber(bucket[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - last) * per_ms)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = math.ceil((1 - tokens) / per_ms) end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'last', now)
redis.call('PEXPIRE', KEYS[1], 60000)
return wait
"#;

/// KEYS: the tokens. ARGV: a token's hash, its tenant.
const MINT: &str = r#"
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PUBLISH', 'nsbox#catalog', 'tokens')
return 'OK'
"#;

/// What changed in the catalog, as a node hears of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// This tenant's record or configuration (or it went).
    Tenant(String),
    /// The deploy tokens.
    Tokens,
    /// Anything: the link was down, and what it said meanwhile is lost.
    Everything,
}

/// A tenant as the catalog keeps it.
#[derive(Debug, Clone, Default)]
struct Stored {
    rev: u64,
    record: Option<TenantRecord>,
    config: TenantConfig,
    quarantine: Option<Quarantine>,
}

/// The tenants' catalog in Redis.
pub struct RedisCatalog {
    client: Client,
    /// [`EPOCH`] as this node first read it.
    epoch: String,
    commit: Script,
    mint: Script,
    fault: Script,
    upload: Script,
}

impl RedisCatalog {
    /// Connects to Redis at `url`, and listens for the changes every node makes: they
    /// arrive on the receiver, with [`Change::Everything`] after every reconnection.
    pub async fn connect(
        url: &str,
    ) -> Result<(RedisCatalog, mpsc::UnboundedReceiver<Change>), ClusterError> {
        let builder = builder(url, 1024)?;
        let connect_error = |e: fred::error::Error| ClusterError::Connect {
            url: url.to_owned(),
            error: e.to_string(),
        };
        let client = builder.build().map_err(connect_error)?;
        let subscriber = builder.build_subscriber_client().map_err(connect_error)?;
        connected(url, async {
            client.init().await?;
            subscriber.init().await?;
            subscriber.subscribe(CHANNEL).await
        })
        .await?;
        let epoch = read_epoch(&client).await.map_err(connect_error)?;
        let (changes, changed) = mpsc::unbounded_channel();
        listen(subscriber, changes);
        Ok((
            RedisCatalog {
                client,
                epoch,
                commit: Script::from_lua(COMMIT),
                mint: Script::from_lua(MINT),
                fault: Script::from_lua(FAULT),
                upload: Script::from_lua(UPLOAD),
            },
            changed,
        ))
    }

    /// Whether the link to Redis is up now (a hung Redis still looks up until a
    /// command times out).
    pub fn available(&self) -> bool {
        self.client.is_connected()
    }

    /// Whether Redis still holds the catalog this node first read, rather than having
    /// lost it (a restart without persistence): a tenant it no longer has may then
    /// still be wanted.
    pub async fn same_epoch(&self) -> Result<bool, CatalogError> {
        Ok(read_epoch(&self.client).await.map_err(unavailable)? == self.epoch)
    }

    async fn stored(&self, name: &str) -> Result<Stored, CatalogError> {
        let fields: Vec<Option<String>> = self
            .client
            .hmget(
                tenant_key(name),
                vec!["rev", "record", "config", "quarantine"],
            )
            .await
            .map_err(unavailable)?;
        parse_stored(name, fields)
    }

    /// Every tenant with its record, sorted by name.
    pub async fn tenants(&self) -> Result<Vec<(String, TenantRecord)>, CatalogError> {
        let mut names: Vec<String> = self.client.smembers(NAMES).await.map_err(unavailable)?;
        names.sort();
        let mut tenants = Vec::with_capacity(names.len());
        for name in names {
            if let Some(record) = self.stored(&name).await?.record {
                tenants.push((name, record));
            }
        }
        Ok(tenants)
    }

    /// A tenant, if it has a record.
    pub async fn tenant(&self, name: &str) -> Result<Option<StoredTenant>, CatalogError> {
        let stored = self.stored(name).await?;
        Ok(stored.record.map(|record| StoredTenant {
            record,
            config: stored.config,
            quarantine: stored.quarantine,
        }))
    }

    /// Counts a fault of a tenant's version with those of the other nodes; answers how
    /// many it has in its window (0 if the version is no longer current).
    pub async fn record_fault(&self, fault: &FaultReport) -> Result<u64, CatalogError> {
        let args = vec![
            text(&fault.version.to_string()),
            text(&fault.window.as_millis().to_string()),
            text(&fault.quarantine_after.to_string()),
            text(&fault.error),
            text(&format!("{:016x}", rand::random::<u64>())),
        ];
        let keys = vec![tenant_key(&fault.tenant), faults_key(&fault.tenant)];
        self.fault
            .evalsha_with_reload(&self.client, keys, args)
            .await
            .map_err(unavailable)
    }

    /// Applies `change` to the tenant's record as it now is (none: it has none), and
    /// commits what it makes of it, again on a fresher record if another node changed
    /// it meanwhile. `change` returns the commit, or an answer that commits nothing.
    async fn change<T>(
        &self,
        name: &str,
        mut change: impl FnMut(Stored) -> Result<(Option<Commit>, T), CatalogError>,
    ) -> Result<T, CatalogError> {
        for _ in 0..ATTEMPTS {
            let stored = self.stored(name).await?;
            let rev = stored.rev;
            let (commit, answer) = change(stored)?;
            let Some(commit) = commit else {
                return Ok(answer);
            };
            if self.run_commit(name, rev, &commit).await? {
                return Ok(answer);
            }
        }
        Err(CatalogError::Busy(name.to_owned()))
    }

    /// Runs one commit; false if the tenant's `rev` is no longer `rev`.
    async fn run_commit(
        &self,
        name: &str,
        rev: u64,
        commit: &Commit,
    ) -> Result<bool, CatalogError> {
        let json = |value: serde_json::Result<Vec<u8>>| {
            value.map_err(|e| CatalogError::Damaged(e.to_string()))
        };
        let record = match &commit.record {
            Some(record) => json(serde_json::to_vec(record))?,
            None => Vec::new(),
        };
        let config = match &commit.config {
            Some(config) => json(serde_json::to_vec(config))?,
            None => Vec::new(),
        };
        let (digest, bytes) = match &commit.component {
            Some((digest, bytes)) => (digest.as_str(), bytes.as_slice()),
            None => ("", &[][..]),
        };
        let mut args = vec![
            text(name),
            text(&rev.to_string()),
            Value::Bytes(record.into()),
            Value::Bytes(config.into()),
            text(digest),
            Value::Bytes(Bytes::copy_from_slice(bytes)),
        ];
        for (digest, count) in &commit.counts {
            args.push(text(digest));
            args.push(text(&count.to_string()));
        }
        let keys = vec![
            tenant_key(name),
            NAMES.into(),
            REFS.into(),
            TOKENS.into(),
            faults_key(name),
        ];
        let reply: String = self
            .commit
            .evalsha_with_reload(&self.client, keys, args)
            .await
            .map_err(unavailable)?;
        Ok(reply == "OK")
    }

    /// Stores a new version and makes it current, keeping at most `keep` versions;
    /// returns its details and the versions removed.
    pub async fn add_version(
        &self,
        name: &str,
        bytes: &[u8],
        keep: usize,
        contract: &str,
    ) -> Result<(VersionInfo, Vec<u64>), CatalogError> {
        self.change(name, |stored| {
            let mut record = stored.record.unwrap_or_default();
            let (info, pruned) = record.add(bytes, keep, contract);
            let mut counts = vec![(info.sha256.clone(), 1)];
            counts.extend(pruned.iter().map(|v| (v.sha256.clone(), -1)));
            let commit = Commit {
                record: Some(record),
                config: None,
                component: Some((info.sha256.clone(), bytes.to_vec())),
                counts,
            };
            Ok((
                Some(commit),
                (info, pruned.into_iter().map(|v| v.version).collect()),
            ))
        })
        .await
    }

    /// Changes an existing tenant's record with `edit`; none if it has no record.
    async fn edit<T>(
        &self,
        name: &str,
        mut edit: impl FnMut(&mut TenantRecord) -> Result<T, CatalogError>,
    ) -> Result<T, CatalogError> {
        self.change(name, |stored| {
            let mut record = stored
                .record
                .ok_or_else(|| CatalogError::NoTenant(name.to_owned()))?;
            let answer = edit(&mut record)?;
            Ok((Some(Commit::record(record)), answer))
        })
        .await
    }

    /// Makes an earlier version current again.
    pub async fn set_current(&self, name: &str, version: u64) -> Result<VersionInfo, CatalogError> {
        self.edit(name, |record| {
            let info = record
                .version(version)
                .cloned()
                .ok_or(CatalogError::NoVersion(version))?;
            record.current = version;
            Ok(info)
        })
        .await
    }

    /// Replaces the operator's limit overrides of a tenant.
    pub async fn set_limits(
        &self,
        name: &str,
        limits: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), CatalogError> {
        self.edit(name, |record| {
            record.limits = limits.clone();
            Ok(())
        })
        .await
    }

    /// Stores the configuration the admin API gives a tenant.
    pub async fn set_config(&self, name: &str, config: &TenantConfig) -> Result<(), CatalogError> {
        self.change(name, |stored| {
            let record = stored
                .record
                .ok_or_else(|| CatalogError::NoTenant(name.to_owned()))?;
            let mut commit = Commit::record(record);
            commit.config = Some(config.clone());
            Ok((Some(commit), ()))
        })
        .await
    }

    /// A version's bytes, checked against the digest recorded at upload.
    pub async fn component(&self, info: &VersionInfo) -> Result<Vec<u8>, CatalogError> {
        let bytes: Option<Bytes> = self
            .client
            .get(component_key(&info.sha256))
            .await
            .map_err(unavailable)?;
        let bytes = bytes.ok_or_else(|| {
            CatalogError::Damaged(format!("the bytes of v{} are missing", info.version))
        })?;
        super::checked(info, bytes.to_vec())
    }

    /// Removes a tenant, its versions' bytes that no other version has, and its deploy
    /// tokens; whether it had a record.
    pub async fn delete(&self, name: &str) -> Result<bool, CatalogError> {
        self.change(name, |stored| {
            let Some(record) = stored.record else {
                return Ok((None, false));
            };
            let commit = Commit {
                record: None,
                config: None,
                component: None,
                counts: record
                    .versions
                    .iter()
                    .map(|v| (v.sha256.clone(), -1))
                    .collect(),
            };
            Ok((Some(commit), true))
        })
        .await
    }

    /// Takes one of the uploads a minute of the token whose digest is `token`, on
    /// every node together; when none is left, how long until one is.
    pub async fn take_upload(
        &self,
        token: &[u8; 32],
        per_minute: u32,
    ) -> Result<Result<(), Duration>, CatalogError> {
        let hex: String = token.iter().map(|b| format!("{b:02x}")).collect();
        let wait: u64 = self
            .upload
            .evalsha_with_reload(
                &self.client,
                vec![format!("nsbox:{{catalog}}:uploads:{hex}")],
                vec![text(&per_minute.max(1).to_string())],
            )
            .await
            .map_err(unavailable)?;
        Ok(match wait {
            0 => Ok(()),
            ms => Err(Duration::from_millis(ms)),
        })
    }

    /// Every deploy token's hash, by tenant.
    pub async fn deploy_tokens(&self) -> Result<DeployHashes, CatalogError> {
        let all: BTreeMap<String, String> =
            self.client.hgetall(TOKENS).await.map_err(unavailable)?;
        let mut by_tenant = DeployHashes::new();
        for (hash, tenant) in all {
            by_tenant.entry(tenant).or_default().push(hash);
        }
        Ok(by_tenant)
    }

    /// Keeps a new deploy token's hash for `tenant`.
    pub async fn add_deploy_token(&self, tenant: &str, hash: &str) -> Result<(), CatalogError> {
        let _: String = self
            .mint
            .evalsha_with_reload(&self.client, vec![TOKENS], vec![text(hash), text(tenant)])
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

/// What a change does to a tenant.
struct Commit {
    /// The record it gets; none: the tenant goes.
    record: Option<TenantRecord>,
    /// The configuration it gets; none: as it is.
    config: Option<TenantConfig>,
    /// A component the record may name for the first time: its digest and bytes.
    component: Option<(String, Vec<u8>)>,
    /// Versions the record names now and did not (+1) or does not and did (-1).
    counts: Vec<(String, i64)>,
}

impl Commit {
    fn record(record: TenantRecord) -> Commit {
        Commit {
            record: Some(record),
            config: None,
            component: None,
            counts: Vec::new(),
        }
    }
}

fn parse_stored(name: &str, fields: Vec<Option<String>>) -> Result<Stored, CatalogError> {
    let mut fields = fields.into_iter();
    let mut next = || fields.next().flatten();
    let (rev, record, config, quarantine) = (next(), next(), next(), next());
    let damaged = |what: &str, e: serde_json::Error| {
        CatalogError::Damaged(format!("tenant {name}'s {what}: {e}"))
    };
    Ok(Stored {
        rev: rev.and_then(|r| r.parse().ok()).unwrap_or(0),
        record: match record {
            Some(json) => Some(serde_json::from_str(&json).map_err(|e| damaged("record", e))?),
            None => None,
        },
        config: match config {
            Some(json) => serde_json::from_str(&json).map_err(|e| damaged("configuration", e))?,
            None => TenantConfig::default(),
        },
        quarantine: match quarantine {
            Some(json) => Some(serde_json::from_str(&json).map_err(|e| damaged("quarantine", e))?),
            None => None,
        },
    })
}

/// The catalog's name, given first if it has none.
async fn read_epoch(client: &Client) -> Result<String, fred::error::Error> {
    let fresh = format!("{:016x}", rand::random::<u64>());
    let _: Value = client
        .set(EPOCH, fresh, None, Some(fred::types::SetOptions::NX), false)
        .await?;
    client.get(EPOCH).await
}

fn text(s: &str) -> Value {
    Value::Bytes(Bytes::copy_from_slice(s.as_bytes()))
}

fn unavailable(e: fred::error::Error) -> CatalogError {
    CatalogError::Unavailable(e.to_string())
}

/// Hands every change announced on [`CHANNEL`] to `changes`, and
/// [`Change::Everything`] after every reconnection (what was said meanwhile is lost).
fn listen(subscriber: SubscriberClient, changes: mpsc::UnboundedSender<Change>) {
    let (again, resubscriber) = (changes.clone(), subscriber.clone());
    subscriber.on_reconnect(move |_| {
        let (changes, subscriber) = (again.clone(), resubscriber.clone());
        async move {
            if let Err(error) = subscriber.subscribe(CHANNEL).await {
                tracing::warn!(%error, "cannot listen to the tenants' catalog again");
            }
            let _ = changes.send(Change::Everything);
            Ok(())
        }
    });
    let mut messages = subscriber.message_rx();
    tokio::spawn(async move {
        // Kept alive with the task: the subscription is this connection's.
        let _subscriber = subscriber;
        loop {
            let change = match messages.recv().await {
                Ok(message) => match message.value.as_string().as_deref() {
                    Some("tokens") => Change::Tokens,
                    Some(text) => match text.strip_prefix("tenant:") {
                        Some(name) => Change::Tenant(name.to_owned()),
                        None => continue,
                    },
                    None => continue,
                },
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => Change::Everything,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            };
            if changes.send(change).is_err() {
                return;
            }
        }
    });
}
