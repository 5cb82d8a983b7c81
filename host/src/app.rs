//! Assembles a server from [`Settings`]: the Socket.IO layer with the tenants'
//! namespaces bound to their components.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use regex::Regex;

use crate::admin::{Admin, AdminOptions};
use crate::admin_ui::{self, AdminUi, TokenCheck};
use crate::cluster::RedisTransport;
use crate::config::{Cors, CorsOrigins, EngineConfig, SocketIoConfig};
use crate::kv::{Backend, RedisStore, SqliteStore};
use crate::settings::{ComponentSource, Settings};
use crate::socketio::SocketIo;
use crate::store::{Catalog, CatalogError};
use crate::tenants::{builtin, Code, LoadError, Runtime, RuntimeOptions, Tenants};

/// Why a server could not be assembled.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The wasmtime engine could not be set up.
    #[error("cannot start the Wasm runtime: {0}")]
    Runtime(String),
    /// A tenant's component could not be read.
    #[error("tenant {tenant}: cannot read {source_name}: {error}")]
    Read {
        /// The tenant.
        tenant: String,
        /// Where its component should be.
        source_name: String,
        /// Why.
        error: String,
    },
    /// A tenant's component could not be loaded.
    #[error("tenant {tenant}: {error}")]
    Load {
        /// The tenant.
        tenant: String,
        /// Why.
        error: LoadError,
    },
    /// A tenant's own limits do not fit.
    #[error("tenant {tenant}: limits: {error}")]
    Limits {
        /// The tenant.
        tenant: String,
        /// Why.
        error: String,
    },
    /// The data directory cannot be used.
    #[error("data directory {dir}: {error}")]
    Data {
        /// The directory.
        dir: String,
        /// Why.
        error: String,
    },
    /// The operator token cannot be used.
    #[error("admin token: {0}")]
    AdminToken(String),
    /// The namespace pattern is not a regular expression.
    #[error("namespace_pattern: {0}")]
    Pattern(#[from] regex::Error),
    /// The cluster's Redis cannot be used.
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ClusterError),
    /// The uploaded tenants cannot be read.
    #[error("the uploaded tenants: {0}")]
    Catalog(#[from] CatalogError),
    /// The Admin UI cannot be set up.
    #[error(transparent)]
    AdminUi(#[from] admin_ui::AdminUiError),
}

/// The file in the data directory that holds every tenant's keys.
pub const STORAGE_FILE: &str = "storage.sqlite3";

/// A Socket.IO server, the tenants behind its namespaces, and their admin API.
pub struct App {
    /// The Socket.IO layer; mount `io.engine()` on a [`crate::server::Server`].
    pub io: SocketIo,
    /// The tenants.
    pub tenants: Arc<Tenants>,
    /// The admin API; serve it with [`Admin::serve`].
    pub admin: Arc<Admin>,
    /// The Admin UI's server side, when `[admin_ui]` asks for it.
    pub admin_ui: Option<Arc<AdminUi>>,
}

/// The Socket.IO settings a configuration asks for.
pub fn socketio_config(settings: &Settings) -> SocketIoConfig {
    let origins = if settings.cors_origins.iter().any(|o| o == "*") {
        CorsOrigins::Any
    } else if settings.cors_origins.is_empty() {
        CorsOrigins::None
    } else {
        CorsOrigins::List(settings.cors_origins.clone())
    };
    let millis = Duration::from_millis;
    SocketIoConfig {
        engine: EngineConfig {
            cors: Cors {
                // Settings refuse credentials with "*": a reflected origin never gets them.
                credentials: settings.cors_credentials && matches!(origins, CorsOrigins::List(_)),
                origins,
            },
            ping_interval: millis(settings.ping_interval_ms),
            ping_timeout: millis(settings.ping_timeout_ms),
            body_timeout: millis(settings.body_timeout_ms),
            max_buffered_bytes: settings.max_buffered_bytes,
            http_compression: settings
                .http_compression
                .then_some(settings.http_compression_threshold),
            per_message_deflate: settings
                .per_message_deflate
                .then_some(settings.per_message_deflate_threshold),
            ..EngineConfig::default()
        },
        connect_timeout: millis(settings.connect_timeout_ms),
        ..SocketIoConfig::default()
    }
}

/// Compiles every tenant's component (each distinct one once, off the async threads),
/// binds the tenants to their namespaces, then brings back every uploaded tenant from
/// the data directory (an upload wins over the configuration for the same name).
/// `admin_token` is the operator's token for the admin API.
pub async fn start(settings: &Settings, admin_token: &str) -> Result<App, StartError> {
    crate::store::tokens::check_operator_token(admin_token).map_err(StartError::AdminToken)?;
    let io = SocketIo::new(socketio_config(settings));
    // Before any namespace exists: every one of them is shared with the other nodes.
    let cluster_link = match &settings.cluster.redis_url {
        Some(url) => {
            let transport = RedisTransport::connect(url).await?;
            let stats = transport.stats().clone();
            io.join_cluster(transport);
            Some(stats)
        }
        None => None,
    };
    let runtime = Runtime::with_options(RuntimeOptions {
        wasm_stack_bytes: settings.wasm_stack_bytes,
        live_instances: settings.live_instances,
        worker: settings.compile_worker.clone(),
        compile_limits: settings.compile.clone(),
    })
    .map_err(|e| StartError::Runtime(format!("{e:#}")))?;
    let data_error = |e: std::io::Error| StartError::Data {
        dir: settings.data_dir.display().to_string(),
        error: e.to_string(),
    };
    crate::durable::create_private_dir(&settings.data_dir).map_err(data_error)?;
    // In a cluster, tenants' keys are in Redis: a tenant's instances on every node see them.
    let storage: Arc<dyn Backend> = match &settings.cluster.redis_url {
        Some(url) => Arc::new(RedisStore::connect(url).await?),
        None => Arc::new(
            SqliteStore::open(
                &settings.data_dir.join(STORAGE_FILE),
                settings.storage_fsync,
            )
            .map_err(|e| data_error(std::io::Error::other(e)))?,
        ),
    };
    let tenants = Tenants::new(runtime.clone(), settings.limits.clone(), storage);
    let mut compiled: BTreeMap<ComponentSource, Arc<Code>> = BTreeMap::new();
    for (name, tenant) in &settings.tenants {
        let limits = settings
            .tenant_limits(tenant)
            .map_err(|error| StartError::Limits {
                tenant: name.clone(),
                error,
            })?;
        tenants.configure_limits(name, limits);
        tenants.configure(name, settings.tenant_config(tenant));
        let source = settings.source(tenant);
        let code = match compiled.get(&source) {
            Some(code) => code.clone(),
            None => {
                let bytes = read(name, &source)?;
                // The built-in examples are this program's own; a file is compiled as
                // an upload would be.
                let result = match &source {
                    ComponentSource::Builtin(_) => runtime.compile_off_thread(bytes, None).await,
                    ComponentSource::File(_) => runtime.compile_untrusted(bytes.into(), None).await,
                };
                let code = result.map_err(|error| StartError::Load {
                    tenant: name.clone(),
                    error,
                })?;
                compiled.insert(source, code.clone());
                code
            }
        };
        match &tenant.namespace {
            Some(namespace) => {
                let slot = tenants.add_static(name, code, namespace);
                tenants.serve_static(&io, slot);
            }
            None => {
                tenants
                    .deploy(name, 0, code, tenants.configured_limits(name))
                    .await;
            }
        }
    }
    tenants.serve_pattern(&io, Regex::new(&settings.namespace_pattern)?);

    // The uploaded tenants: on this machine's disk, or in a cluster in Redis, where a
    // change any node makes reaches every node.
    let (catalog, changes) = match &settings.cluster.redis_url {
        Some(url) => {
            let (catalog, changes) =
                Catalog::in_redis(url, &settings.data_dir, admin_token).await?;
            catalog.refresh_tokens().await?;
            (catalog, Some(changes))
        }
        None => (
            Catalog::on_disk(&settings.data_dir, admin_token).map_err(data_error)?,
            None,
        ),
    };
    let admin = Admin::new(
        tenants.clone(),
        io.engine().clone(),
        catalog,
        AdminOptions {
            max_component_bytes: settings.max_component_bytes,
            max_versions_per_tenant: settings.max_versions_per_tenant,
            uploads_per_minute_per_token: settings.uploads_per_minute_per_token,
            max_concurrent_compiles: settings.max_concurrent_compiles,
            compile_timeout: settings.compile_timeout(),
            body_timeout: Duration::from_millis(settings.body_timeout_ms),
            cluster_link,
        },
    );
    admin.share_faults();
    admin.sync_all().await?;
    if let Some(mut changes) = changes {
        let follower = admin.clone();
        tokio::spawn(async move {
            while let Some(change) = changes.recv().await {
                // Each on its own: a tenant compiling does not hold up the others.
                let admin = follower.clone();
                tokio::spawn(async move { admin.follow(change).await });
            }
        });
    }
    let admin_ui = match &settings.admin_ui {
        Some(ui) => {
            let tokens = admin.clone();
            let check: TokenCheck = Arc::new(move |token: &str| tokens.authenticate(token));
            Some(admin_ui::instrument(
                &io,
                tenants.clone(),
                check,
                ui.clone(),
            )?)
        }
        None => None,
    };
    Ok(App {
        io,
        tenants,
        admin,
        admin_ui,
    })
}

fn read(tenant: &str, source: &ComponentSource) -> Result<Vec<u8>, StartError> {
    match source {
        ComponentSource::Builtin(name) => {
            builtin::component(name)
                .map(<[u8]>::to_vec)
                .ok_or_else(|| StartError::Read {
                    tenant: tenant.to_owned(),
                    source_name: format!("builtin:{name}"),
                    error: format!(
                        "no such built-in tenant (built in: {})",
                        builtin::names().join(", ")
                    ),
                })
        }
        ComponentSource::File(path) => std::fs::read(path).map_err(|error| StartError::Read {
            tenant: tenant.to_owned(),
            source_name: path.display().to_string(),
            error: error.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_configuration_reflects_origins_without_credentials() {
        let settings = Settings::embedded().expect("the default parses");
        let cors = socketio_config(&settings).engine.cors;
        assert_eq!(
            cors.allow_origin(Some("http://evil.test")),
            Some("http://evil.test")
        );
        assert!(!cors.credentials, "no cookies cross-origin by default");
        let listed = Settings::parse(
            "cors_origins = [\"http://app.test\"]\ncors_credentials = true",
            std::path::Path::new("."),
        )
        .expect("valid");
        let cors = socketio_config(&listed).engine.cors;
        assert!(cors.credentials);
        assert_eq!(cors.allow_origin(Some("http://evil.test")), None);
        assert_eq!(
            cors.allow_origin(Some("http://app.test")),
            Some("http://app.test")
        );
    }
}
