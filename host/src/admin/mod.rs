//! The admin API, on its own listener: tenants, their component versions and deploy
//! tokens, as JSON over HTTP with bearer tokens.
//!
//! | request | who | what |
//! |---|---|---|
//! | `GET /v1/tenants` | operator, deploy token (its tenant only) | the tenants |
//! | `GET /v1/tenants/{t}` | operator, `t`'s token | version, digest, upload time, live sockets, events, faults, restarts, memory |
//! | `PUT /v1/tenants/{t}/component` | operator, `t`'s token | upload: validated, stored, made live; answers version and SHA-256 |
//! | `GET /v1/tenants/{t}/versions` | operator, `t`'s token | every stored version |
//! | `POST /v1/tenants/{t}/rollback` | operator, `t`'s token | `{"version": N}` (default: the one before) made current again |
//! | `DELETE /v1/tenants/{t}` | operator | sockets told and disconnected, files, keys and tokens removed |
//! | `POST /v1/tenants/{t}/tokens` | operator | a new deploy token for `t` (shown once) |
//! | `PUT /v1/tenants/{t}/limits` | operator | `{"cpu_per_call_ms": 20, ...}`: limits of an uploaded tenant over the configuration's (`{}` for none); a fresh instance takes its sockets over |
//! | `GET /v1/tenants/{t}/logs` | operator, `t`'s token | its recent log lines; `?follow=1` as server-sent events |
//! | `GET /v1/tenants/{t}/kv` | operator, `t`'s token | its storage: `?prefix=&cursor=&limit=&values=1` a page of keys (with values), `?key=` one value |
//! | `GET /v1/tenants/{t}/config` | operator, `t`'s token | its configuration, secrets masked |
//! | `PUT /v1/tenants/{t}/config` | operator, `t`'s token | `{"config": {...}, "secrets": {...}}`: names set (a string) or removed (`null`); a fresh instance takes its sockets over |
//! | `GET /metrics` | anyone who can reach the listener | Prometheus text format |
//!
//! In a cluster every change is kept in Redis and reaches every node; while this node's
//! link to Redis is down, changes are refused with 503 `cluster_unavailable`.
//!
//! No token or a wrong one: 401. A deploy token for another tenant, or on an
//! operator-only request: 403. A bad upload: 400 with a code and a message that says
//! what to do, and the running version untouched.

pub mod client;
mod console;
mod gates;
mod listing;
mod metrics;
mod quota;
mod reply;
mod sync;
mod tenant_data;

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, StatusCode};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;

use self::gates::Gates;
use self::quota::{Compiles, UploadRate};
use self::reply::{error, json, Reply};
use self::sync::{Compiled, Served};
use crate::body::{read_body, BodyError};
use crate::engineio::Engine;
use crate::store::tokens::Access;
use crate::store::{sha256_hex, valid_tenant_name, Catalog, CatalogError, VersionInfo};
use crate::tenants::{Code, Kind, LoadError, Runtime, Tenants};
use metrics::AdminCounters;

/// What the admin API lets uploads cost.
#[derive(Debug, Clone)]
pub struct AdminOptions {
    /// The largest component an upload may be, in bytes.
    pub max_component_bytes: usize,
    /// Stored versions kept per tenant; the oldest beyond it go, the live one never.
    pub max_versions_per_tenant: usize,
    /// Uploads a deploy token may make per minute (the operator's is not limited).
    pub uploads_per_minute_per_token: u32,
    /// Compilations at once.
    pub max_concurrent_compiles: usize,
    /// How long an upload may wait for and take its compilation.
    pub compile_timeout: Duration,
    /// How long a request may take to send its body.
    pub body_timeout: Duration,
    /// The link to the cluster, when this node is part of one (for the metrics).
    pub cluster_link: Option<Arc<crate::cluster::LinkStats>>,
}

/// The admin API's state.
pub struct Admin {
    tenants: Arc<Tenants>,
    engine: Arc<Engine>,
    catalog: Catalog,
    /// The uploaded tenants this node serves, as it serves them.
    served: parking_lot::Mutex<std::collections::HashMap<String, Served>>,
    options: AdminOptions,
    /// Changes to one tenant one at a time, so the store and the live versions never
    /// disagree; changes to different tenants side by side.
    gates: Gates,
    uploads: UploadRate,
    compiles: Compiles,
    counters: Arc<AdminCounters>,
}

/// How often a followed log says it is alive when nothing is logged.
const LOGS_KEEPALIVE: Duration = Duration::from_secs(15);

/// Counts an upload in flight until dropped.
struct InFlight(Arc<AdminCounters>);

impl InFlight {
    fn new(counters: &Arc<AdminCounters>) -> InFlight {
        counters.uploads_in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(counters.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.uploads_in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Admin {
    /// An admin API over these tenants and the catalog of uploaded ones; serve the
    /// catalog's tenants with [`Admin::sync_all`].
    pub fn new(
        tenants: Arc<Tenants>,
        engine: Arc<Engine>,
        catalog: Catalog,
        options: AdminOptions,
    ) -> Arc<Admin> {
        Arc::new(Admin {
            tenants,
            engine,
            catalog,
            served: Default::default(),
            uploads: UploadRate::new(options.uploads_per_minute_per_token),
            compiles: Compiles::new(options.max_concurrent_compiles, options.compile_timeout),
            gates: Gates::default(),
            counters: Arc::default(),
            options,
        })
    }

    /// Serves the API on `listener` until `shutdown` resolves.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        loop {
            let stream = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(error) => {
                        tracing::warn!(%error, "admin accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = &mut shutdown => return,
            };
            let admin = self.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let admin = admin.clone();
                    async move { Ok::<_, Infallible>(admin.handle(req).await) }
                });
                if let Err(error) = crate::server::http1_builder(crate::server::HEADER_TIMEOUT)
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    tracing::debug!(%error, "admin connection ended with an error");
                }
            });
        }
    }

    async fn handle(&self, req: Request<hyper::body::Incoming>) -> Reply {
        let path: Vec<String> = req
            .uri()
            .path()
            .trim_matches('/')
            .split('/')
            .map(str::to_owned)
            .collect();
        let path: Vec<&str> = path.iter().map(String::as_str).collect();
        let method = req.method().clone();
        if method == Method::GET && path == ["metrics"] {
            let tenant = crate::engineio::parse_query(req.uri().query().unwrap_or_default())
                .into_iter()
                .find_map(|(name, value)| (name == "tenant").then_some(value));
            return reply::text(metrics::render(
                &self.tenants,
                &self.engine,
                &self.counters,
                self.options.cluster_link.as_deref(),
                tenant.as_deref(),
            ));
        }
        if method == Method::GET {
            if let Some(page) = console::asset(&path) {
                return page;
            }
        }
        if path.first() != Some(&"v1") {
            return error(StatusCode::NOT_FOUND, "not_found", "no such endpoint");
        }
        let Some((access, token)) = self.access(&req) else {
            return error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing or unknown bearer token",
            );
        };
        if method != Method::GET && !self.catalog.available() {
            return catalog_error(CatalogError::Unavailable("the link is down".into()));
        }
        match (&method, &path[1..]) {
            (&Method::GET, ["whoami"]) => json(
                StatusCode::OK,
                match &access {
                    Access::Operator => json!({ "access": "operator" }),
                    Access::Tenant(tenant) => json!({ "access": "tenant", "tenant": tenant }),
                },
            ),
            (&Method::GET, ["tenants"]) => self.list(&access, req.uri().query()),
            (_, ["tenants", tenant, rest @ ..]) => {
                if !valid_tenant_name(tenant) {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "invalid_name",
                        "a tenant name is 1 to 64 ASCII letters, digits or _",
                    );
                }
                let operator_only = matches!(
                    (&method, rest),
                    (&Method::DELETE, []) | (&Method::POST, ["tokens"]) | (_, ["limits"])
                );
                match &access {
                    Access::Operator => {}
                    Access::Tenant(own) if own == tenant && !operator_only => {}
                    Access::Tenant(_) => {
                        return error(
                            StatusCode::FORBIDDEN,
                            "forbidden",
                            format!("this token may not do that to tenant {tenant}"),
                        )
                    }
                }
                match (&method, rest) {
                    (&Method::GET, []) => self.show(tenant),
                    (&Method::DELETE, []) => self.delete(tenant).await,
                    (&Method::PUT, ["component"]) => {
                        let limited = matches!(access, Access::Tenant(_));
                        self.upload(tenant, req, limited.then_some(token)).await
                    }
                    (&Method::GET, ["versions"]) => self.versions(tenant).await,
                    (&Method::GET, ["logs"]) => self.logs(tenant, req.uri().query()),
                    (&Method::POST, ["rollback"]) => self.rollback(tenant, req).await,
                    (&Method::POST, ["tokens"]) => self.mint(tenant).await,
                    (&Method::PUT, ["limits"]) => self.set_limits(tenant, req).await,
                    (&Method::GET, ["kv"]) => self.kv(tenant, req.uri().query()).await,
                    (&Method::GET, ["config"]) => self.config(tenant),
                    (&Method::PUT, ["config"]) => self.set_config(tenant, req).await,
                    _ => error(StatusCode::NOT_FOUND, "not_found", "no such endpoint"),
                }
            }
            _ => error(StatusCode::NOT_FOUND, "not_found", "no such endpoint"),
        }
    }

    /// What `token` may do, as the admin API would take it (the Admin UI's tenant logins).
    pub fn authenticate(&self, token: &str) -> Option<Access> {
        self.catalog.authenticate(token)
    }

    /// What the request's bearer token may do, and the token's digest.
    fn access<B>(&self, req: &Request<B>) -> Option<(Access, [u8; 32])> {
        let value = req
            .headers()
            .get(http::header::AUTHORIZATION)?
            .to_str()
            .ok()?;
        let token = value.strip_prefix("Bearer ")?.trim();
        let access = self.catalog.authenticate(token)?;
        Some((access, Sha256::digest(token.as_bytes()).into()))
    }

    /// Reads a request body of at most `limit` bytes within the body timeout.
    async fn body(
        &self,
        req: Request<hyper::body::Incoming>,
        limit: usize,
    ) -> Result<Bytes, BodyError> {
        read_body(req.into_body(), limit, self.options.body_timeout).await
    }

    /// A tenant's recent log lines (`?after=SEQ` for those after one), or with
    /// `?follow=1` those and every line after them as server-sent events (`event: line`,
    /// `id:` its number, `data:` the line as JSON), with a comment every 15 s to keep the
    /// connection alive.
    fn logs(&self, tenant: &str, query: Option<&str>) -> Reply {
        let Some(slot) = self.tenants.get(tenant) else {
            return not_found(tenant);
        };
        let journal = slot.current().journal().clone();
        let (mut after, mut follow) = (0, false);
        for (key, value) in query
            .unwrap_or_default()
            .split('&')
            .filter_map(|p| p.split_once('='))
        {
            match key {
                "after" => after = value.parse().unwrap_or(0),
                "follow" => follow = value == "1" || value == "true",
                _ => {}
            }
        }
        if !follow {
            let lines = journal.after(after);
            let next = lines.last().map_or(after, |line| line.seq);
            return json(
                StatusCode::OK,
                json!({ "tenant": tenant, "lines": lines, "next": next }),
            );
        }
        let stream =
            futures_util::stream::unfold((journal, after), |(journal, after)| async move {
                let waited = tokio::time::timeout(LOGS_KEEPALIVE, journal.wait_after(after)).await;
                let Ok(lines) = waited else {
                    return Some((Bytes::from_static(b": keep-alive\n\n"), (journal, after)));
                };
                let next = lines.last().map_or(after, |line| line.seq);
                let mut text = String::new();
                for line in &lines {
                    let data = serde_json::to_string(line).unwrap_or_default();
                    text += &format!("event: line\nid: {}\ndata: {data}\n\n", line.seq);
                }
                Some((Bytes::from(text), (journal, next)))
            });
        reply::events(stream)
    }

    fn show(&self, tenant: &str) -> Reply {
        match self.describe(tenant) {
            Some(info) => json(StatusCode::OK, info),
            None => not_found(tenant),
        }
    }

    /// What the API says about a tenant: the live version and its counters, with the
    /// stored details when it was uploaded (a tenant from the configuration has none).
    fn describe(&self, tenant: &str) -> Option<Value> {
        use std::sync::atomic::Ordering::Relaxed;
        let slot = self.tenants.get(tenant)?;
        let current = slot.current();
        let stats = current.stats();
        let served = self.served.lock().get(tenant).cloned();
        let info = served.as_ref().map(|s| &s.info);
        Some(json!({
            "name": tenant,
            "namespace": self.tenants.namespace_of(tenant),
            "namespace_pattern": match slot.namespace() {
                Some(_) => None,
                None => self.tenants.pattern().map(|p| p.as_str().to_owned()),
            },
            "source": if served.is_some() { "upload" } else { "config" },
            "version": current.version(),
            "contract": current.code().contract().as_str(),
            "sha256": info.map(|i| i.sha256.clone()),
            "size": info.map(|i| i.size),
            "uploaded_at_ms": info.map(|i| i.uploaded_at_ms),
            "sockets": stats.sockets.load(Relaxed),
            "events": stats.events.load(Relaxed),
            "dropped_events": stats.dropped_events.load(Relaxed),
            "faults": stats.faults.load(Relaxed),
            "restarts": stats.restarts(),
            "running": stats.instances.load(Relaxed) > 0,
            "instances": stats.instances.load(Relaxed),
            "evictions": stats.evictions.load(Relaxed),
            "recovered": stats.recovered.load(Relaxed),
            "quarantined": stats.quarantined.load(Relaxed) == 1,
            "memory_bytes": stats.memory_bytes.load(Relaxed),
            "pending_acks": stats.pending_acks.load(Relaxed),
            "log_lines": stats.log_lines.load(Relaxed),
            "log_dropped": stats.log_dropped.load(Relaxed),
            "limit_trips": Kind::LIMITS
                .iter()
                .zip(&stats.limit_trips)
                .map(|(kind, trips)| (kind.as_str().to_owned(), json!(trips.load(Relaxed))))
                .collect::<serde_json::Map<_, _>>(),
            "limits": current.limits(),
            "limit_overrides": served.map(|s| s.overrides).unwrap_or_default(),
        }))
    }

    async fn set_limits(&self, tenant: &str, req: Request<hyper::body::Incoming>) -> Reply {
        let body = match self.body(req, 16 << 10).await {
            Ok(body) => body,
            Err(e) => return body_error(e),
        };
        let overrides = match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(overrides)) => overrides,
            Ok(_) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "invalid_limits",
                    "send a JSON object of limits, e.g. {\"cpu_per_call_ms\": 20}",
                )
            }
            Err(e) => return error(StatusCode::BAD_REQUEST, "bad_request", e),
        };
        let limits = match self.tenants.configured_limits(tenant).overlaid(&overrides) {
            Ok(limits) => limits,
            Err(e) => return error(StatusCode::BAD_REQUEST, "invalid_limits", e),
        };
        let gate = self.gates.of(tenant);
        let _one_at_a_time = gate.enter().await;
        if let Some(refusal) = self.unless_uploaded(tenant, "limits").await {
            return refusal;
        }
        if let Err(e) = self.catalog.set_limits(tenant, &overrides).await {
            return catalog_error(e);
        }
        if let Err(e) = self.apply(tenant, None).await {
            return catalog_error(e);
        }
        tracing::info!(tenant, ?overrides, "limits changed");
        json(
            StatusCode::OK,
            json!({ "tenant": tenant, "limits": limits, "limit_overrides": overrides }),
        )
    }

    /// A refusal unless `tenant` was uploaded: a tenant of the configuration file has
    /// its `what` set there.
    async fn unless_uploaded(&self, tenant: &str, what: &str) -> Option<Reply> {
        match self.catalog.record(tenant).await {
            Ok(Some(_)) => None,
            Ok(None) => Some(self.not_uploaded(tenant, what)),
            Err(e) => Some(catalog_error(e)),
        }
    }

    /// Why a tenant the catalog does not have cannot have its `what` set.
    fn not_uploaded(&self, tenant: &str, what: &str) -> Reply {
        if self.tenants.get(tenant).is_none() {
            return not_found(tenant);
        }
        error(
            StatusCode::CONFLICT,
            "configured_tenant",
            format!("tenant {tenant} comes from the configuration file: set its {what} there"),
        )
    }

    /// An upload; `token` is the deploy token's digest when its uploads are rate-limited.
    async fn upload(
        &self,
        tenant: &str,
        req: Request<hyper::body::Incoming>,
        token: Option<[u8; 32]>,
    ) -> Reply {
        let gate = self.gates.of(tenant);
        // Counted before anything else: a deletion from now on wins over this upload.
        let deletions = gate.deletions();
        let _in_flight = InFlight::new(&self.counters);
        if let Some(token) = token {
            let per_minute = self.options.uploads_per_minute_per_token;
            let taken = match self.catalog.take_upload(&token, per_minute).await {
                Ok(Some(taken)) => taken,
                Ok(None) => self.uploads.take(token),
                Err(e) => return catalog_error(e),
            };
            if let Err(wait) = taken {
                let mut reply = error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    format!(
                        "this token may upload {} components a minute; try again in {} s",
                        self.options.uploads_per_minute_per_token,
                        wait.as_secs() + 1
                    ),
                );
                if let Ok(value) = HeaderValue::from_str(&(wait.as_secs() + 1).to_string()) {
                    reply.headers_mut().insert(http::header::RETRY_AFTER, value);
                }
                return reply;
            }
        }
        let max = self.options.max_component_bytes;
        let body = match self.body(req, max).await {
            Ok(body) => body,
            Err(BodyError::TooLarge) => {
                return load_error(&LoadError::TooLarge {
                    size: max + 1,
                    limit: max,
                })
            }
            Err(e) => return body_error(e),
        };
        // The live version again: nothing to compile or store.
        let sha256 = sha256_hex(&body);
        if let Ok(Some(record)) = self.catalog.record(tenant).await {
            if let Some(live) = record.current_info().filter(|v| v.sha256 == sha256) {
                let mut answer = deployed(tenant, live);
                answer["unchanged"] = json!(true);
                return json(StatusCode::OK, answer);
            }
        }
        let code = match self.compile(tenant, body.clone()).await {
            Ok(code) => code,
            Err(reply) => return reply,
        };
        let _one_at_a_time = gate.enter().await;
        if gate.deletions() != deletions {
            return error(
                StatusCode::CONFLICT,
                "tenant_deleted",
                format!("tenant {tenant} was deleted while this upload was under way; nothing was stored"),
            );
        }
        let added = self
            .catalog
            .add_version(
                tenant,
                &body,
                self.options.max_versions_per_tenant,
                code.contract().as_str(),
            )
            .await;
        let (info, pruned) = match added {
            Ok(added) => added,
            Err(e) => return catalog_error(e),
        };
        if let Err(e) = self.apply(tenant, Some(Compiled { sha256, code })).await {
            return catalog_error(e);
        }
        if !pruned.is_empty() {
            prune_cache(&self.catalog, self.tenants.runtime()).await;
        }
        tracing::info!(tenant, version = info.version, sha256 = %info.sha256, ?pruned, "deployed");
        json(StatusCode::OK, deployed(tenant, &info))
    }

    /// Validates and compiles a component, in the compile worker under the compile
    /// limits: one compilation per tenant at a time, a turn among the compilations at
    /// once, and both the wait and the compilation within the compile timeout. Dropped
    /// (the timeout, or the client gone), the compilation stops.
    async fn compile(&self, tenant: &str, bytes: Bytes) -> Result<Arc<Code>, Reply> {
        let Some(_claim) = self.compiles.claim(tenant) else {
            self.counters.compile_limit.fetch_add(1, Ordering::Relaxed);
            return Err(error(
                StatusCode::TOO_MANY_REQUESTS,
                "compile_limit",
                format!("a component of tenant {tenant} is being compiled already (one at a time per tenant); try again when that upload has ended"),
            ));
        };
        let cache = Some(self.catalog.cache_dir().to_owned());
        let runtime = self.tenants.runtime().clone();
        let compiling = async {
            let _turn = self.compiles.turn().await;
            runtime.compile_untrusted(bytes, cache).await
        };
        match tokio::time::timeout(self.compiles.timeout(), compiling).await {
            Ok(Err(e @ LoadError::CompileLimit(_))) => {
                self.counters.compile_limit.fetch_add(1, Ordering::Relaxed);
                Err(load_error(&e))
            }
            Ok(compiled) => compiled.map_err(|e| load_error(&e)),
            Err(_) => Err({
                self.counters
                    .compile_timeout
                    .fetch_add(1, Ordering::Relaxed);
                error(
                StatusCode::SERVICE_UNAVAILABLE,
                "compile_timeout",
                format!(
                    "the component was not compiled within {} ms (the server is busy, or the component is too big to compile); nothing changed",
                    self.compiles.timeout().as_millis()
                ),
            )
            }),
        }
    }

    async fn versions(&self, tenant: &str) -> Reply {
        match self.catalog.record(tenant).await {
            Ok(Some(record)) => json(
                StatusCode::OK,
                json!({ "tenant": tenant, "current": record.current, "versions": record.versions }),
            ),
            Ok(None) => not_found(tenant),
            Err(e) => catalog_error(e),
        }
    }

    async fn rollback(&self, tenant: &str, req: Request<hyper::body::Incoming>) -> Reply {
        let body = match self.body(req, 4096).await {
            Ok(body) => body,
            Err(e) => return body_error(e),
        };
        let asked: Option<u64> = if body.is_empty() {
            None
        } else {
            match serde_json::from_slice::<Value>(&body) {
                Ok(value) => value.get("version").and_then(Value::as_u64),
                Err(e) => return error(StatusCode::BAD_REQUEST, "bad_request", e),
            }
        };
        let gate = self.gates.of(tenant);
        let _one_at_a_time = gate.enter().await;
        let record = match self.catalog.record(tenant).await {
            Ok(Some(record)) => record,
            Ok(None) => return not_found(tenant),
            Err(e) => return catalog_error(e),
        };
        let target = asked.or_else(|| {
            record
                .versions
                .iter()
                .map(|v| v.version)
                .filter(|v| *v < record.current)
                .max()
        });
        let Some(info) = target.and_then(|v| record.version(v)).cloned() else {
            return error(
                StatusCode::NOT_FOUND,
                "no_such_version",
                format!("tenant {tenant} has no such version to roll back to"),
            );
        };
        let bytes = match self.catalog.component(tenant, &info).await {
            Ok(bytes) => bytes,
            Err(e) => return catalog_error(e),
        };
        let code = match self.compile(tenant, Bytes::from(bytes)).await {
            Ok(code) => code,
            Err(reply) => return reply,
        };
        if let Err(e) = self.catalog.set_current(tenant, info.version).await {
            return catalog_error(e);
        }
        let compiled = Compiled {
            sha256: info.sha256.clone(),
            code,
        };
        if let Err(e) = self.apply(tenant, Some(compiled)).await {
            return catalog_error(e);
        }
        tracing::info!(tenant, version = info.version, "rolled back");
        json(StatusCode::OK, deployed(tenant, &info))
    }

    async fn delete(&self, tenant: &str) -> Reply {
        let gate = self.gates.of(tenant);
        let _one_at_a_time = gate.enter().await;
        gate.deleted();
        // The catalog first: a failure there changes nothing; the other nodes stop
        // serving the tenant as this one does.
        let stored = match self.catalog.delete(tenant).await {
            Ok(stored) => stored,
            Err(e) => return catalog_error(e),
        };
        self.served.lock().remove(tenant);
        let live = self.tenants.remove(tenant).await;
        // Its keys go with it; if that fails, deleting again removes them.
        if let Err(reply) = self.clear_storage(tenant).await {
            return reply;
        }
        if !live && !stored {
            return not_found(tenant);
        }
        prune_cache(&self.catalog, self.tenants.runtime()).await;
        tracing::info!(tenant, "deleted");
        json(StatusCode::OK, json!({ "deleted": tenant }))
    }

    async fn mint(&self, tenant: &str) -> Reply {
        match self.catalog.mint(tenant).await {
            Ok(token) => json(
                StatusCode::CREATED,
                json!({ "tenant": tenant, "token": token }),
            ),
            Err(e) => catalog_error(e),
        }
    }
}

/// Drops compiled forms that no stored version needs (deleted tenants' components,
/// another engine's builds); a failure only leaves them for next time.
async fn prune_cache(catalog: &Catalog, runtime: &Runtime) {
    match catalog.prune_cache(&runtime.cache_tag()).await {
        Ok(0) => {}
        Ok(removed) => tracing::info!(removed, "pruned the compiled cache"),
        Err(error) => tracing::warn!(%error, "cannot prune the compiled cache"),
    }
}

/// How the catalog's failures reach the API's clients.
fn catalog_error(e: CatalogError) -> Reply {
    match &e {
        CatalogError::Unavailable(_) => {
            error(StatusCode::SERVICE_UNAVAILABLE, "cluster_unavailable", e)
        }
        CatalogError::Busy(_) => error(StatusCode::CONFLICT, "changed_elsewhere", e),
        CatalogError::NoTenant(_) => error(StatusCode::NOT_FOUND, "no_such_tenant", e),
        CatalogError::NoVersion(_) => error(StatusCode::NOT_FOUND, "no_such_version", e),
        CatalogError::DoesNotLoad { .. } | CatalogError::Damaged(_) | CatalogError::Disk(_) => {
            error(StatusCode::INTERNAL_SERVER_ERROR, "store", e)
        }
    }
}

fn body_error(e: BodyError) -> Reply {
    match e {
        BodyError::TimedOut => error(StatusCode::REQUEST_TIMEOUT, "body_timeout", e),
        BodyError::TooLarge | BodyError::Broken => error(StatusCode::BAD_REQUEST, "bad_request", e),
    }
}

fn deployed(tenant: &str, info: &VersionInfo) -> Value {
    json!({
        "tenant": tenant,
        "version": info.version,
        "sha256": info.sha256,
        "size": info.size,
        "contract": info.contract,
    })
}

fn not_found(tenant: &str) -> Reply {
    error(
        StatusCode::NOT_FOUND,
        "no_such_tenant",
        format!("no tenant {tenant}"),
    )
}

fn load_error(e: &LoadError) -> Reply {
    let status = match e {
        LoadError::CompileLimit(_) => StatusCode::UNPROCESSABLE_ENTITY,
        LoadError::Compiler(_) => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    };
    error(status, e.code(), e)
}
