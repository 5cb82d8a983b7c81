//! Tenants' keys in Redis, for a cluster: every node sees the same keys, so a tenant's
//! instances on different nodes share its storage.
//!
//! A tenant's keys are three Redis keys with its name as hash tag (one slot, so
//! scripts may touch all three on a Redis Cluster too): `nsbox:kv:{T}:v`, a hash of
//! its keys and values; `nsbox:kv:{T}:k`, a sorted set of its keys (all scored 0, so
//! `ZRANGEBYLEX` lists them in byte order, as SQLite does); `nsbox:kv:{T}:u`, its
//! usage (`keys`, `bytes`). Every operation is one Lua script: atomic, and checked
//! against the quota before it writes anything, so a refused operation changes
//! nothing, as on one machine. Durability is Redis's: run it with `appendonly yes`.

use std::sync::Arc;

use bytes::Bytes;
use fred::clients::Client;
use fred::interfaces::ClientLike;

use crate::cluster::redis::{builder, connected};
use crate::cluster::ClusterError;
use fred::types::scripts::Script;
use fred::types::Value;

use super::{
    check_sizes, Backend, KvError, Op, Outcome, Pending, Quota, QuotaKind, Start, Usage, MAX_PAGE,
};

/// Every script starts here: the tenant's three keys, its quota (ARGV 1 and 2) and
/// usage, and the writes that keep the usage right.
const PRELUDE: &str = r#"
local V, K, U = KEYS[1], KEYS[2], KEYS[3]
local max_bytes, max_keys = tonumber(ARGV[1]), tonumber(ARGV[2])
local u = redis.call('HMGET', U, 'keys', 'bytes')
local keys, bytes = tonumber(u[1]) or 0, tonumber(u[2]) or 0
-- What writing value at key would make the usage, or the quota it would break; a
-- write that does not grow what is kept passes, even over a lowered quota.
local function after(key, value, stored)
  local nkeys = stored and keys or keys + 1
  local nbytes = bytes - (stored and (#key + #stored) or 0) + #key + #value
  if nkeys > keys and nkeys > max_keys then return nil, nil, 'Q:keys' end
  if nbytes > bytes and nbytes > max_bytes then return nil, nil, 'Q:bytes' end
  return nkeys, nbytes
end
local function put(key, value)
  local stored = redis.call('HGET', V, key)
  local nkeys, nbytes, refused = after(key, value, stored)
  if refused then return refused end
  redis.call('HSET', V, key, value)
  if not stored then redis.call('ZADD', K, 0, key) end
  keys, bytes = nkeys, nbytes
end
local function remove(key)
  local stored = redis.call('HGET', V, key)
  if stored then
    redis.call('HDEL', V, key)
    redis.call('ZREM', K, key)
    keys, bytes = keys - 1, bytes - #key - #stored
  end
end
local function save()
  redis.call('HSET', U, 'keys', keys, 'bytes', bytes)
end
"#;

/// ARGV 3..: key, value pairs; all written, or none if one would break the quota.
const SET_MANY: &str = r#"
local sizes = {}
for i = 3, #ARGV, 2 do
  local key, value = ARGV[i], ARGV[i + 1]
  local stored = sizes[key]
  if stored == nil then stored = redis.call('HGET', V, key) or false end
  local nkeys, nbytes, refused = after(key, value, stored or nil)
  if refused then return refused end
  keys, bytes = nkeys, nbytes
  sizes[key] = value
end
for i = 3, #ARGV, 2 do
  redis.call('HSET', V, ARGV[i], ARGV[i + 1])
  redis.call('ZADD', K, 0, ARGV[i])
end
save()
return 'OK'
"#;

/// ARGV 3..: keys to remove.
const DELETE_MANY: &str = r#"
for i = 3, #ARGV do remove(ARGV[i]) end
save()
return 'OK'
"#;

/// ARGV 3: the key; 4: what to add, in decimal. Counters are kept as decimal digits
/// and added as such: Lua's numbers are doubles, a u64 is not.
const INCREMENT: &str = r#"
local key, delta = ARGV[3], ARGV[4]
local current = redis.call('HGET', V, key) or '0'
if not string.match(current, '^%d+$') then return 'I:counter' end
current = string.gsub(current, '^0+(%d)', '%1')
local U64 = '18446744073709551615'
local function big(n) return #n > 20 or (#n == 20 and n > U64) end
if big(current) then return 'I:counter' end
local digits, carry, i, j = {}, 0, #current, #delta
while i > 0 or j > 0 or carry > 0 do
  local s = carry
  if i > 0 then s = s + string.byte(current, i) - 48 end
  if j > 0 then s = s + string.byte(delta, j) - 48 end
  table.insert(digits, 1, string.char(48 + s % 10))
  carry = math.floor(s / 10)
  i, j = i - 1, j - 1
end
local next = string.gsub(table.concat(digits), '^0+(%d)', '%1')
if big(next) then return 'I:overflow' end
local refused = put(key, next)
if refused then return refused end
save()
return 'N:' .. next
"#;

/// ARGV 3: the key; 4, 5: whether a value is expected, and which; 6, 7: whether a
/// value is set (else the key is removed), and which.
const COMPARE_AND_SWAP: &str = r#"
local key = ARGV[3]
local stored = redis.call('HGET', V, key)
if ARGV[4] == '1' then
  if stored ~= ARGV[5] then return 'N' end
elseif stored then
  return 'N'
end
if ARGV[6] == '1' then
  local refused = put(key, ARGV[7])
  if refused then return refused end
else
  remove(key)
end
save()
return 'Y'
"#;

/// ARGV 3..: the keys; their values (false for none), in order.
const GET_MANY: &str = r#"
local values = {}
for i = 3, #ARGV do values[i - 2] = redis.call('HGET', V, ARGV[i]) end
return values
"#;

/// ARGV 3: 1 if the key exists.
const EXISTS: &str = r#"
return redis.call('HEXISTS', V, ARGV[3])
"#;

/// ARGV 3, 4: the range's bounds (ZRANGEBYLEX syntax); 5, 6: offset and count.
const LIST: &str = r#"
return redis.call('ZRANGEBYLEX', K, ARGV[3], ARGV[4], 'LIMIT', ARGV[5], ARGV[6])
"#;

/// The usage: {keys, bytes}.
const USAGE: &str = r#"
return {keys, bytes}
"#;

/// Every key of the tenant.
const CLEAR: &str = r#"
redis.call('DEL', V, K, U)
return 'OK'
"#;

/// The scripts, each with its prelude, loaded into Redis on first use.
struct Scripts {
    set_many: Script,
    delete_many: Script,
    increment: Script,
    compare_and_swap: Script,
    get_many: Script,
    exists: Script,
    list: Script,
    usage: Script,
    clear: Script,
}

impl Scripts {
    fn new() -> Scripts {
        let script = |body: &str| Script::from_lua(format!("{PRELUDE}{body}"));
        Scripts {
            set_many: script(SET_MANY),
            delete_many: script(DELETE_MANY),
            increment: script(INCREMENT),
            compare_and_swap: script(COMPARE_AND_SWAP),
            get_many: script(GET_MANY),
            exists: script(EXISTS),
            list: script(LIST),
            usage: script(USAGE),
            clear: script(CLEAR),
        }
    }
}

/// Tenants' keys in Redis.
pub struct RedisStore {
    client: Client,
    scripts: Arc<Scripts>,
}

impl RedisStore {
    /// Connects to Redis at `url`; fails if it cannot be reached now. Later outages
    /// fail the operations made meanwhile (the guest is told) and are waited out.
    pub async fn connect(url: &str) -> Result<RedisStore, ClusterError> {
        // It subscribes to nothing: the smallest inbox.
        let client = builder(url, 1)?
            .build()
            .map_err(|e| ClusterError::Connect {
                url: url.to_owned(),
                error: e.to_string(),
            })?;
        connected(url, client.init()).await?;
        Ok(RedisStore {
            client,
            scripts: Arc::new(Scripts::new()),
        })
    }
}

/// Runs `script` on the tenant's `keys` with the quota and `rest` as arguments.
async fn eval(
    client: &Client,
    script: &Script,
    keys: &[String],
    quota: &Quota,
    rest: Vec<Value>,
) -> Result<Value, KvError> {
    script
        .evalsha_with_reload::<Value, _, _>(client, keys.to_vec(), args(quota, rest))
        .await
        .map_err(|e| KvError::Backend(format!("storage unavailable: {e}")))
}

/// A script's arguments: the quota first, then the operation's.
fn args(quota: &Quota, rest: impl IntoIterator<Item = Value>) -> Vec<Value> {
    let mut all = vec![
        Value::from(quota.bytes.to_string()),
        Value::from(quota.keys.to_string()),
    ];
    all.extend(rest);
    all
}

fn text(s: &str) -> Value {
    Value::Bytes(Bytes::copy_from_slice(s.as_bytes()))
}

fn binary(b: Vec<u8>) -> Value {
    Value::Bytes(Bytes::from(b))
}

/// A value a script returned as bytes (none for nil or false).
fn bytes_of(value: Value) -> Option<Vec<u8>> {
    match value {
        Value::Bytes(b) => Some(b.to_vec()),
        Value::String(s) => Some(s.as_bytes().to_vec()),
        _ => None,
    }
}

/// A script's status reply as an outcome: `OK`, `Y`/`N`, `N:<number>`, or why not.
fn status(key: &str, reply: Value, quota: &Quota) -> Result<Outcome, KvError> {
    let reply = bytes_of(reply).unwrap_or_default();
    let reply = String::from_utf8_lossy(&reply);
    match &*reply {
        "OK" => Ok(Outcome::Done),
        "Y" => Ok(Outcome::Yes(true)),
        "N" => Ok(Outcome::Yes(false)),
        "Q:keys" => Err(KvError::Quota {
            kind: QuotaKind::Keys,
            limit: quota.keys,
        }),
        "Q:bytes" => Err(KvError::Quota {
            kind: QuotaKind::Bytes,
            limit: quota.bytes,
        }),
        "I:counter" => Err(KvError::Invalid(format!(
            "{key} does not hold a counter (decimal digits)"
        ))),
        "I:overflow" => Err(KvError::Invalid(format!("{key} would overflow a u64"))),
        other => match other.strip_prefix("N:").and_then(|n| n.parse().ok()) {
            Some(number) => Ok(Outcome::Number(number)),
            None => Err(KvError::Backend(format!("unexpected reply {other:?}"))),
        },
    }
}

impl Backend for RedisStore {
    fn run(&self, tenant: &str, quota: Quota, op: Op) -> Pending {
        let (client, scripts) = (self.client.clone(), self.scripts.clone());
        let keys: Vec<String> = ["v", "k", "u"]
            .iter()
            .map(|part| format!("nsbox:kv:{{{tenant}}}:{part}"))
            .collect();
        Box::pin(async move { run(&client, &scripts, keys, quota, op).await })
    }
}

/// Removes `names` from the tenant whose Redis keys are `keys`.
async fn delete(
    client: &Client,
    scripts: &Scripts,
    keys: &[String],
    quota: &Quota,
    names: Vec<String>,
) -> Result<Outcome, KvError> {
    let names = names.iter().map(|k| text(k)).collect();
    let reply = eval(client, &scripts.delete_many, keys, quota, names).await?;
    status("", reply, quota)
}

/// `op` on the tenant whose Redis keys are `keys`.
async fn run(
    client: &Client,
    scripts: &Scripts,
    keys: Vec<String>,
    quota: Quota,
    op: Op,
) -> Result<Outcome, KvError> {
    match op {
        Op::Get(key) => {
            let reply = eval(client, &scripts.get_many, &keys, &quota, vec![text(&key)]).await?;
            let value = reply.into_array().into_iter().next().and_then(bytes_of);
            Ok(Outcome::Value(value))
        }
        Op::Set(key, value) => {
            check_sizes(&quota, &key, Some(&value))?;
            let reply = eval(
                client,
                &scripts.set_many,
                &keys,
                &quota,
                vec![text(&key), binary(value)],
            )
            .await?;
            status(&key, reply, &quota)
        }
        Op::SetMany(pairs) => {
            let mut rest = Vec::with_capacity(pairs.len() * 2);
            for (key, value) in pairs {
                check_sizes(&quota, &key, Some(&value))?;
                rest.push(text(&key));
                rest.push(binary(value));
            }
            let reply = eval(client, &scripts.set_many, &keys, &quota, rest).await?;
            status("", reply, &quota)
        }
        // One key or several: the same script.
        Op::Delete(key) => delete(client, scripts, &keys, &quota, vec![key]).await,
        Op::DeleteMany(names) => delete(client, scripts, &keys, &quota, names).await,
        Op::Exists(key) => {
            let reply = eval(client, &scripts.exists, &keys, &quota, vec![text(&key)]).await?;
            Ok(Outcome::Yes(reply.as_i64() == Some(1)))
        }
        Op::Increment(key, delta) => {
            check_sizes(&quota, &key, None)?;
            let reply = eval(
                client,
                &scripts.increment,
                &keys,
                &quota,
                vec![text(&key), text(&delta.to_string())],
            )
            .await?;
            status(&key, reply, &quota)
        }
        Op::CompareAndSwap { key, expected, new } => {
            check_sizes(&quota, &key, new.as_deref())?;
            let flag = |v: &Option<Vec<u8>>| text(if v.is_some() { "1" } else { "0" });
            let rest = vec![
                text(&key),
                flag(&expected),
                binary(expected.clone().unwrap_or_default()),
                flag(&new),
                binary(new.clone().unwrap_or_default()),
            ];
            let reply = eval(client, &scripts.compare_and_swap, &keys, &quota, rest).await?;
            status(&key, reply, &quota)
        }
        Op::GetMany(names) => {
            let reply = eval(
                client,
                &scripts.get_many,
                &keys,
                &quota,
                names.iter().map(|k| text(k)).collect(),
            )
            .await?;
            let values: Vec<Option<Vec<u8>>> =
                reply.into_array().into_iter().map(bytes_of).collect();
            let read: usize = values.iter().flatten().map(Vec::len).sum();
            if read > quota.read_bytes {
                return Err(KvError::Quota {
                    kind: QuotaKind::ReadBytes,
                    limit: quota.read_bytes as u64,
                });
            }
            Ok(Outcome::Values(values))
        }
        Op::List {
            prefix,
            start,
            limit,
        } => {
            let limit = limit.min(MAX_PAGE);
            // Keys are UTF-8, which never holds the byte 0xff: every key that starts
            // with `prefix` sorts below `prefix` + 0xff.
            let mut high = b"(".to_vec();
            high.extend_from_slice(prefix.as_bytes());
            high.push(0xff);
            let (low, offset) = match start {
                Start::After(key) if key.as_str() >= prefix.as_str() => (format!("({key}"), 0),
                Start::Skip(n) => (format!("[{prefix}"), n),
                _ => (format!("[{prefix}"), 0),
            };
            let rest = vec![
                text(&low),
                binary(high),
                text(&offset.to_string()),
                text(&(limit + 1).to_string()),
            ];
            let reply = eval(client, &scripts.list, &keys, &quota, rest).await?;
            let mut keys: Vec<String> = reply
                .into_array()
                .into_iter()
                .filter_map(bytes_of)
                .map(|k| String::from_utf8_lossy(&k[..]).into_owned())
                .collect();
            let more = keys.len() > limit;
            keys.truncate(limit);
            Ok(Outcome::Keys(keys, more))
        }
        Op::Usage => {
            let reply = eval(client, &scripts.usage, &keys, &quota, Vec::new()).await?;
            let mut numbers = reply
                .into_array()
                .into_iter()
                .map(|v| v.as_u64().unwrap_or(0));
            Ok(Outcome::Usage(Usage {
                keys: numbers.next().unwrap_or(0),
                bytes: numbers.next().unwrap_or(0),
            }))
        }
        Op::Clear => {
            let reply = eval(client, &scripts.clear, &keys, &quota, Vec::new()).await?;
            status("", reply, &quota)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::testing::TestRedis;

    #[tokio::test]
    async fn behaves_as_every_backend_must() {
        let redis = TestRedis::start().await;
        let store = RedisStore::connect(&redis.url).await.expect("connects");
        crate::kv::conformance::every_case(&store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_increments_from_two_connections_lose_none() {
        let redis = TestRedis::start().await;
        let mut stores: Vec<Arc<dyn Backend>> = Vec::new();
        for _ in 0..2 {
            stores.push(Arc::new(
                RedisStore::connect(&redis.url).await.expect("connects"),
            ));
        }
        crate::kv::conformance::concurrent_increments_lose_none(&stores).await;
    }

    #[tokio::test]
    async fn without_redis_an_operation_fails_with_a_clear_error() {
        let redis = TestRedis::start().await;
        let store = RedisStore::connect(&redis.url).await.expect("connects");
        drop(redis);
        let refused = store.run("a", Quota::UNLIMITED, Op::Get("k".into())).await;
        assert!(
            matches!(&refused, Err(KvError::Backend(e)) if e.contains("storage unavailable")),
            "{refused:?}"
        );
    }
}
