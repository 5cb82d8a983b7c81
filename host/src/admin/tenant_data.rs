//! What a tenant keeps and reads, through the admin API: its storage (listed, read and
//! exported page by page) and its configuration (secrets masked).

use base64::Engine as _;
use http::{Request, StatusCode};
use serde_json::{json, Value};

use super::reply::{error, json, Reply};
use super::{body_error, catalog_error, not_found, Admin};
use crate::engineio::parse_query;
use crate::kv::{KvError, Op, Outcome, Quota, Start, MAX_PAGE};

/// The largest configuration change the API reads.
const MAX_CONFIG_BODY: usize = 1 << 20;

impl Admin {
    /// `GET /v1/tenants/{t}/kv?prefix=P&cursor=C&limit=N&values=1`: the keys starting with
    /// `P` in byte order after `C` (at most `N`, 100 by default, 1,000 at most), with
    /// their values when asked (`value` as text when it is UTF-8, else `base64`), the
    /// next page's `cursor` (null after the last) and the tenant's usage; `?key=K`: one
    /// key's value.
    pub(super) async fn kv(&self, tenant: &str, query: Option<&str>) -> Reply {
        if self.tenants.get(tenant).is_none() {
            return not_found(tenant);
        }
        let (mut prefix, mut cursor, mut limit, mut values, mut key) =
            (String::new(), None, 100, false, None);
        for (name, value) in parse_query(query.unwrap_or_default()) {
            match name.as_str() {
                "prefix" => prefix = value,
                "cursor" if !value.is_empty() => cursor = Some(value),
                "limit" => limit = value.parse().unwrap_or(limit).clamp(1, MAX_PAGE),
                "values" => values = value == "1" || value == "true",
                "key" => key = Some(value),
                _ => {}
            }
        }
        if let Some(key) = key {
            return match self.storage(tenant, Op::Get(key.clone())).await {
                Ok(Outcome::Value(Some(value))) => json(StatusCode::OK, entry(key, Some(value))),
                Ok(_) => error(
                    StatusCode::NOT_FOUND,
                    "no_such_key",
                    format!("tenant {tenant} has no key {key:?}"),
                ),
                Err(reply) => reply,
            };
        }
        let op = Op::List {
            prefix,
            start: cursor.map_or(Start::First, Start::After),
            limit,
        };
        let (keys, more) = match self.storage(tenant, op).await {
            Ok(Outcome::Keys(keys, more)) => (keys, more),
            Ok(_) => return unexpected(),
            Err(reply) => return reply,
        };
        let next = if more { keys.last().cloned() } else { None };
        let entries: Vec<Value> = if values {
            match self.storage(tenant, Op::GetMany(keys.clone())).await {
                Ok(Outcome::Values(found)) => keys
                    .into_iter()
                    .zip(found)
                    .map(|(key, value)| entry(key, value))
                    .collect(),
                Ok(_) => return unexpected(),
                Err(reply) => return reply,
            }
        } else {
            keys.into_iter().map(Value::from).collect()
        };
        let usage = match self.storage(tenant, Op::Usage).await {
            Ok(Outcome::Usage(usage)) => usage,
            Ok(_) => return unexpected(),
            Err(reply) => return reply,
        };
        json(
            StatusCode::OK,
            json!({ "tenant": tenant, "keys": entries, "cursor": next, "usage": usage }),
        )
    }

    async fn storage(&self, tenant: &str, op: Op) -> Result<Outcome, Reply> {
        self.tenants
            .storage()
            .run(tenant, Quota::UNLIMITED, op)
            .await
            .map_err(|e: KvError| error(StatusCode::INTERNAL_SERVER_ERROR, "storage", e))
    }

    /// Removes every key of a deleted tenant.
    pub(super) async fn clear_storage(&self, tenant: &str) -> Result<(), Reply> {
        self.storage(tenant, Op::Clear).await.map(|_| ())
    }

    /// `GET /v1/tenants/{t}/config`: what the tenant reads, secrets masked.
    pub(super) fn config(&self, tenant: &str) -> Reply {
        if self.tenants.get(tenant).is_none() {
            return not_found(tenant);
        }
        let mut shown = self.tenants.config(tenant).masked();
        shown["tenant"] = Value::from(tenant);
        json(StatusCode::OK, shown)
    }

    /// `PUT /v1/tenants/{t}/config` with `{"config": {...}, "secrets": {...}}`: names set
    /// to a string are set, to `null` removed, the others kept; a fresh instance reading
    /// it takes the sockets over. Only an uploaded tenant's (the configuration file's
    /// tenants are configured there).
    pub(super) async fn set_config(
        &self,
        tenant: &str,
        req: Request<hyper::body::Incoming>,
    ) -> Reply {
        let body = match self.body(req, MAX_CONFIG_BODY).await {
            Ok(body) => body,
            Err(e) => return body_error(e),
        };
        let change: Value = match serde_json::from_slice(&body) {
            Ok(change) => change,
            Err(e) => return error(StatusCode::BAD_REQUEST, "bad_request", e),
        };
        let gate = self.gates.of(tenant);
        let _one_at_a_time = gate.enter().await;
        let stored = match self.catalog.tenant(tenant).await {
            Ok(Some(stored)) => stored.config,
            Ok(None) => return self.not_uploaded(tenant, "configuration"),
            Err(e) => return catalog_error(e),
        };
        let next = match stored.patched(&change) {
            Ok(next) => next,
            Err(e) => return error(StatusCode::BAD_REQUEST, "invalid_config", e),
        };
        if let Err(e) = self.catalog.set_config(tenant, &next).await {
            return catalog_error(e);
        }
        if let Err(e) = self.apply(tenant, None).await {
            return catalog_error(e);
        }
        // Names only: values may be secret.
        let names: Vec<&String> = next.config.keys().chain(next.secrets.keys()).collect();
        tracing::info!(tenant, ?names, "configuration changed");
        self.config(tenant)
    }
}

/// A key and its value as the API shows them: text when it is UTF-8, else base64.
fn entry(key: String, value: Option<Vec<u8>>) -> Value {
    match value {
        None => json!({ "key": key, "value": null }),
        Some(value) => match String::from_utf8(value) {
            Ok(text) => json!({ "key": key, "value": text }),
            Err(bytes) => json!({
                "key": key,
                "base64": base64::engine::general_purpose::STANDARD.encode(bytes.as_bytes()),
            }),
        },
    }
}

fn unexpected() -> Reply {
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "storage",
        "the storage answered out of turn",
    )
}
