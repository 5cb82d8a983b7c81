//! The configuration file (TOML): listener, namespace pattern, limits and tenants.
//! Without one, `nsbox serve` uses the embedded default (`host/src/default.toml`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::config::SocketIoConfig;
use crate::tenants::compiler::Worker;
use crate::tenants::shape::CompileLimits;
use crate::tenants::{Limits, TenantConfig};

/// The embedded default configuration: `echo` as `t1` and `t2`, `chat` as `acme`,
/// `admin` at `/admin`, on 127.0.0.1:3000.
pub const DEFAULT: &str = include_str!("default.toml");

/// A whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Where Socket.IO clients connect.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Namespaces this matches are served by the tenant its first capture names.
    #[serde(default = "default_pattern")]
    pub namespace_pattern: String,
    /// Origins browsers may connect from; `"*"` for any; empty for none (no CORS headers).
    #[serde(default)]
    pub cors_origins: Vec<String>,
    /// Whether browsers may send cookies and credentials cross-origin
    /// (`Access-Control-Allow-Credentials`); only with origins listed one by one, never
    /// with `"*"`. Default is false.
    #[serde(default)]
    pub cors_credentials: bool,
    /// Where the admin API listens (keep it private: it accepts uploads).
    #[serde(default = "default_admin_listen")]
    pub admin_listen: SocketAddr,
    /// The operator's token for the admin API; without one (and without
    /// `--admin-token` or `NSBOX_ADMIN_TOKEN`) a random one is made and logged.
    #[serde(default)]
    pub admin_token: Option<String>,
    /// A file holding the operator's token, read at start (relative to the
    /// configuration file); wins over `admin_token`.
    #[serde(default)]
    pub admin_token_file: Option<PathBuf>,
    /// Where uploaded components, their versions and deploy-token hashes are kept.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Flush every storage commit to the disk: tenants' acknowledged writes then survive
    /// a power cut too, not only a killed host, at the cost of a flush per commit.
    #[serde(default)]
    pub storage_fsync: bool,
    /// The largest component an upload may be, in bytes.
    #[serde(default = "default_max_component_bytes")]
    pub max_component_bytes: usize,
    /// Stored versions kept per uploaded tenant; the oldest beyond it are removed (the
    /// live one never).
    #[serde(default = "default_max_versions_per_tenant")]
    pub max_versions_per_tenant: usize,
    /// Uploads one deploy token may make per minute (in bursts of as many); beyond it,
    /// `429 rate_limited`. The operator's token is not limited.
    #[serde(default = "default_uploads_per_minute_per_token")]
    pub uploads_per_minute_per_token: u32,
    /// Uploads compiled at once; more wait for a turn (within `compile_timeout_ms`).
    #[serde(default = "default_max_concurrent_compiles")]
    pub max_concurrent_compiles: usize,
    /// How long an upload may wait for and take its compilation; beyond it the upload
    /// is refused (`compile_timeout`) and nothing changes.
    #[serde(default = "default_compile_timeout_ms")]
    pub compile_timeout_ms: u64,
    /// How long a request may take to send its body once its headers are in; beyond
    /// it the request is refused and its connection closed.
    #[serde(default = "default_body_timeout_ms")]
    pub body_timeout_ms: u64,
    /// Connections the Socket.IO listener holds at once; more are closed as they come.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Threads serving the Socket.IO listener's connections, each a single-threaded
    /// runtime the connections are dealt to in turn (see [`crate::workers`]); 0, the
    /// default, is one per core the process may run on.
    #[serde(default)]
    pub workers: usize,
    /// Bytes queued for one client (what it has not yet polled or read) beyond which it
    /// is deemed too slow and its connection closed (`transport error`).
    #[serde(default = "default_max_buffered_bytes")]
    pub max_buffered_bytes: usize,
    /// Long-polling responses of at least `http_compression_threshold` bytes are sent
    /// gzip- or deflate-encoded when the request accepts either (Node's
    /// `httpCompression`). Default is on, from 1,024 bytes, as Node's.
    #[serde(default = "default_http_compression")]
    pub http_compression: bool,
    /// See `http_compression`.
    #[serde(default = "default_http_compression_threshold")]
    pub http_compression_threshold: usize,
    /// The official client's browser builds are served under the Socket.IO path
    /// (`/socket.io/socket.io.min.js` and the others; Node's `serveClient`). Default is
    /// on, as Node's.
    #[serde(default = "default_serve_client")]
    pub serve_client: bool,
    /// The demo page at `/` of the public listener: the example tenants `acme` (chat)
    /// and `t1` (echo) through the client `serve_client` serves. Default is on.
    #[serde(default = "default_serve_client")]
    pub demo_page: bool,
    /// WebSocket messages of at least `per_message_deflate_threshold` bytes are sent
    /// compressed to clients that offer `permessage-deflate` (Node's `perMessageDeflate`).
    /// Default is off, as Node's.
    #[serde(default)]
    pub per_message_deflate: bool,
    /// See `per_message_deflate`. Default is 1,024 bytes, as Node's.
    #[serde(default = "default_per_message_deflate_threshold")]
    pub per_message_deflate_threshold: usize,
    /// How long a connection may take to send a request's headers (on connecting and
    /// between requests); beyond it the connection is closed.
    #[serde(default = "default_header_timeout_ms")]
    pub header_timeout_ms: u64,
    /// Engine.IO heartbeat: time between pings, and how long a pong may take before
    /// the session is closed (Node's `pingInterval`, `pingTimeout`).
    #[serde(default = "default_ping_interval_ms")]
    pub ping_interval_ms: u64,
    /// See `ping_interval_ms`.
    #[serde(default = "default_ping_timeout_ms")]
    pub ping_timeout_ms: u64,
    /// The wasm stack one call may use, in bytes; deeper recursion traps. One engine
    /// runs every tenant, so this is the host's setting, not a per-tenant limit.
    #[serde(default = "default_wasm_stack_bytes")]
    pub wasm_stack_bytes: usize,
    /// Tenant instances that may be live at once (the instance pool, reserved at
    /// start: about 5 GiB of address space each, no memory until used); 0 allocates
    /// each when it starts instead. Past it, a tenant that is not running refuses
    /// connections (`tenant unavailable`, kind `capacity`) until another stops.
    #[serde(default = "default_live_instances")]
    pub live_instances: u32,
    /// How long a new connection may take to join its first namespace before it is
    /// closed (Node's `connectTimeout`).
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// What compiling one upload (or a component named here) may cost: its shape,
    /// checked first, and the compile worker's memory and CPU time.
    #[serde(default)]
    pub compile: CompileLimits,
    /// Limits every tenant runs under.
    #[serde(default)]
    pub limits: Limits,
    /// Tenants by name.
    #[serde(default)]
    pub tenants: BTreeMap<String, TenantSettings>,
    /// Joining a cluster of nodes.
    #[serde(default)]
    pub cluster: ClusterSettings,
    /// The server side of the Socket.IO Admin UI; off without the section.
    pub admin_ui: Option<AdminUiSettings>,
    /// The directory relative paths are resolved from.
    #[serde(skip)]
    pub base_dir: PathBuf,
    /// How to start the compile worker that compiles untrusted components under
    /// `compile`; not from the file: the `nsbox` binary names itself. Without one,
    /// they are compiled in this process, without those limits.
    #[serde(skip)]
    pub compile_worker: Option<Worker>,
}

/// `[cluster]`: nodes that share their namespaces through Redis.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSettings {
    /// The Redis every node of the cluster uses (`redis://host:port`); none (the
    /// default) serves alone.
    #[serde(default)]
    pub redis_url: Option<String>,
}

/// `[admin_ui]`: the server side of the Socket.IO Admin UI (`@socket.io/admin-ui`'s
/// `instrument`), which the UI at <https://admin.socket.io> (or its files served
/// anywhere) connects to with the official client.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminUiSettings {
    /// Its namespace: `/nsbox-admin` by default, which the default tenant pattern
    /// cannot match.
    #[serde(default = "default_admin_ui_namespace")]
    pub namespace: String,
    /// The operator's login: a username and a bcrypt hash of the password (a tenant
    /// logs in with its name and one of its deploy tokens, and sees only its own).
    pub username: Option<String>,
    /// The bcrypt hash (`$2b$...`) of the operator's password.
    pub password_bcrypt: Option<String>,
    /// `false` to let anyone in without a login, seeing everything; must be said.
    #[serde(default = "default_true")]
    pub auth: bool,
    /// `development` (the default, as in Node unless `NODE_ENV` says otherwise) also
    /// shows every socket, room and event as it happens; `production` the statistics.
    #[serde(default)]
    pub mode: AdminUiMode,
    /// Look, do not touch: the UI's commands (emit, join, leave, disconnect) are off.
    #[serde(default)]
    pub readonly: bool,
    /// How this server is named in the UI; the host name by default.
    pub server_id: Option<String>,
}

/// What the Admin UI is shown.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AdminUiMode {
    /// Every socket, room and event as it happens, and the statistics.
    #[default]
    Development,
    /// The statistics only.
    Production,
}

fn default_admin_ui_namespace() -> String {
    "/nsbox-admin".to_owned()
}

fn default_true() -> bool {
    true
}

/// One tenant.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantSettings {
    /// A path to the component (`.wasm`), or `builtin:NAME` for an example built in.
    pub component: String,
    /// A static namespace (e.g. `/admin`) that serves this tenant; the pattern then
    /// does not reach it.
    pub namespace: Option<String>,
    /// Limits of its own, over the configuration's `[limits]` (`[tenants.NAME.limits]`
    /// with any of the same keys).
    #[serde(default)]
    pub limits: serde_json::Map<String, serde_json::Value>,
    /// What the tenant reads through `wasi:config` (`[tenants.NAME.config]`).
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// The same, secret: shown masked by the admin API (`[tenants.NAME.secrets]`).
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
}

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The TOML does not parse or does not fit.
    #[error("invalid configuration: {0}")]
    Toml(#[from] toml::de::Error),
    /// A value is wrong.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 3000))
}

fn default_admin_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 3001))
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("nsbox-data")
}

fn default_max_component_bytes() -> usize {
    64 << 20
}

fn default_max_versions_per_tenant() -> usize {
    10
}

fn default_uploads_per_minute_per_token() -> u32 {
    20
}

fn default_max_concurrent_compiles() -> usize {
    2
}

/// A JS or Python tenant takes 10 to 20 s of CPU to compile; on a busy machine, with
/// another compile ahead of it, its upload waits longer than that.
fn default_compile_timeout_ms() -> u64 {
    120_000
}

fn default_body_timeout_ms() -> u64 {
    millis(SocketIoConfig::default().engine.body_timeout)
}

fn default_max_connections() -> usize {
    crate::server::MAX_CONNECTIONS
}

fn default_max_buffered_bytes() -> usize {
    SocketIoConfig::default().engine.max_buffered_bytes
}

fn default_http_compression() -> bool {
    SocketIoConfig::default().engine.http_compression.is_some()
}

fn default_http_compression_threshold() -> usize {
    SocketIoConfig::default()
        .engine
        .http_compression
        .unwrap_or(1024)
}

fn default_serve_client() -> bool {
    true
}

fn default_per_message_deflate_threshold() -> usize {
    1024
}

fn default_header_timeout_ms() -> u64 {
    millis(crate::server::HEADER_TIMEOUT)
}

fn default_wasm_stack_bytes() -> usize {
    crate::tenants::engine::DEFAULT_WASM_STACK
}

/// The longest a timeout may be set to (a day): far beyond any use, and never near
/// what would overflow a deadline.
const MAX_TIMEOUT_MS: u64 = 86_400_000;

/// The largest instance pool a process has the address space for.
const MAX_LIVE_INSTANCES: u32 = 20_000;

fn default_live_instances() -> u32 {
    crate::tenants::engine::DEFAULT_LIVE_INSTANCES
}

// The protocol timers default to the server library's own defaults (Node's).

fn default_ping_interval_ms() -> u64 {
    millis(SocketIoConfig::default().engine.ping_interval)
}

fn default_ping_timeout_ms() -> u64 {
    millis(SocketIoConfig::default().engine.ping_timeout)
}

fn default_connect_timeout_ms() -> u64 {
    millis(SocketIoConfig::default().connect_timeout)
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn default_pattern() -> String {
    r"^/(\w+)$".to_owned()
}

impl Settings {
    /// The embedded default.
    pub fn embedded() -> Result<Settings, SettingsError> {
        Settings::parse(DEFAULT, Path::new("."))
    }

    /// Reads a configuration file; relative paths in it are relative to its directory.
    pub fn load(path: &Path) -> Result<Settings, SettingsError> {
        let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
            path: path.to_owned(),
            source,
        })?;
        Settings::parse(&text, path.parent().unwrap_or(Path::new(".")))
    }

    /// Parses and checks a configuration.
    pub fn parse(text: &str, base_dir: &Path) -> Result<Settings, SettingsError> {
        let mut settings: Settings = toml::from_str(text)?;
        settings.base_dir = base_dir.to_owned();
        settings.data_dir = base_dir.join(&settings.data_dir);
        settings.admin_token_file = settings.admin_token_file.map(|file| base_dir.join(file));
        if !(64 << 10..=64 << 20).contains(&settings.wasm_stack_bytes) {
            return Err(SettingsError::Invalid(
                "wasm_stack_bytes: between 65536 and 67108864".into(),
            ));
        }
        if let Some(admin_ui) = &settings.admin_ui {
            if !admin_ui.namespace.starts_with('/') {
                return Err(SettingsError::Invalid(
                    "admin_ui.namespace: a namespace, starting with /".into(),
                ));
            }
            let login = (&admin_ui.username, &admin_ui.password_bcrypt);
            if admin_ui.auth && !matches!(login, (Some(_), Some(_))) {
                return Err(SettingsError::Invalid(
                    "admin_ui: username and password_bcrypt, or auth = false to run without a login"
                        .into(),
                ));
            }
        }
        if settings.live_instances > MAX_LIVE_INSTANCES {
            // Each pooled instance reserves about 5 GiB of the 128 TiB a process may address.
            return Err(SettingsError::Invalid(format!(
                "live_instances: at most {MAX_LIVE_INSTANCES} (0 for no pool)"
            )));
        }
        if settings.max_versions_per_tenant == 0
            || settings.uploads_per_minute_per_token == 0
            || settings.max_concurrent_compiles == 0
            || settings.max_connections == 0
            || settings.max_buffered_bytes == 0
        {
            return Err(SettingsError::Invalid(
                "max_versions_per_tenant, uploads_per_minute_per_token, max_concurrent_compiles, \
                 max_connections and max_buffered_bytes: at least 1"
                    .into(),
            ));
        }
        for (name, ms) in [
            ("compile_timeout_ms", settings.compile_timeout_ms),
            ("body_timeout_ms", settings.body_timeout_ms),
            ("header_timeout_ms", settings.header_timeout_ms),
        ] {
            if !(1..=MAX_TIMEOUT_MS).contains(&ms) {
                return Err(SettingsError::Invalid(format!(
                    "{name}: between 1 and {MAX_TIMEOUT_MS}"
                )));
            }
        }
        let compile = &settings.compile;
        if compile.memory_bytes < 128 << 20
            || [
                compile.cpu_ms,
                compile.functions,
                compile.function_bytes,
                compile.locals,
            ]
            .contains(&0)
            || compile.nesting == 0
            || compile.operand_stack == 0
        {
            return Err(SettingsError::Invalid(
                "compile: memory_bytes at least 134217728 (128 MiB), the others at least 1".into(),
            ));
        }
        if settings.cors_credentials && settings.cors_origins.iter().any(|o| o == "*") {
            return Err(SettingsError::Invalid(
                "cors_credentials: only with origins listed one by one, not \"*\"".into(),
            ));
        }
        regex::Regex::new(&settings.namespace_pattern)
            .map_err(|error| SettingsError::Invalid(format!("namespace_pattern: {error}")))?;
        for (name, tenant) in &settings.tenants {
            if !crate::store::valid_tenant_name(name) {
                return Err(SettingsError::Invalid(format!(
                    "tenant name {name:?}: 1 to 64 ASCII letters, digits or _"
                )));
            }
            settings.tenant_limits(tenant).map_err(|error| {
                SettingsError::Invalid(format!("tenants.{name}.limits: {error}"))
            })?;
            settings.tenant_config(tenant).check().map_err(|error| {
                SettingsError::Invalid(format!("tenants.{name}.config: {error}"))
            })?;
            if let Some(namespace) = &tenant.namespace {
                if !namespace.starts_with('/') || namespace == "/" {
                    return Err(SettingsError::Invalid(format!(
                        "tenant {name}: namespace {namespace:?} must start with / and not be /"
                    )));
                }
            }
        }
        Ok(settings)
    }

    /// A tenant's limits: its own section over `[limits]`.
    pub fn tenant_limits(&self, tenant: &TenantSettings) -> Result<Limits, String> {
        self.limits.overlaid(&tenant.limits)
    }

    /// A tenant's configuration and secrets from the file.
    pub fn tenant_config(&self, tenant: &TenantSettings) -> TenantConfig {
        TenantConfig {
            config: tenant.config.clone(),
            secrets: tenant.secrets.clone(),
        }
    }

    /// [`Settings::compile_timeout_ms`] as a duration.
    pub fn compile_timeout(&self) -> Duration {
        Duration::from_millis(self.compile_timeout_ms)
    }

    /// [`Settings::header_timeout_ms`] as a duration.
    pub fn header_timeout(&self) -> Duration {
        Duration::from_millis(self.header_timeout_ms)
    }

    /// Where a tenant's component comes from.
    pub fn source(&self, tenant: &TenantSettings) -> ComponentSource {
        match tenant.component.strip_prefix("builtin:") {
            Some(name) => ComponentSource::Builtin(name.to_owned()),
            None => ComponentSource::File(self.base_dir.join(&tenant.component)),
        }
    }
}

/// Where a component's bytes are.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum ComponentSource {
    /// An example built into the binary.
    Builtin(String),
    /// A file.
    File(PathBuf),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_default_names_the_example_tenants() {
        let settings = Settings::embedded().expect("the default parses");
        assert_eq!(settings.listen, default_listen());
        let names: Vec<&str> = settings.tenants.keys().map(String::as_str).collect();
        assert_eq!(names, ["acme", "admin", "clock", "crash", "t1", "t2"]);
        assert_eq!(
            settings.tenants["admin"].namespace.as_deref(),
            Some("/admin")
        );
        assert_eq!(
            settings.source(&settings.tenants["t1"]),
            ComponentSource::Builtin("echo".into())
        );
        assert_eq!(settings.limits, Limits::default());
        assert_eq!(settings.compile, CompileLimits::default());
        assert_eq!(
            settings.max_buffered_bytes,
            SocketIoConfig::default().engine.max_buffered_bytes
        );
    }

    #[test]
    fn the_admin_ui_is_off_unless_asked_and_needs_a_login_or_auth_false() {
        let dir = Path::new(".");
        assert!(Settings::parse("", dir).expect("valid").admin_ui.is_none());
        let no_login = Settings::parse("[admin_ui]", dir);
        assert!(no_login.is_err_and(|e| e.to_string().contains("auth = false")));
        let open =
            Settings::parse("[admin_ui]\nauth = false\nmode = \"production\"", dir).expect("valid");
        let open = open.admin_ui.expect("on");
        assert_eq!(
            (open.namespace.as_str(), open.auth, open.mode, open.readonly),
            ("/nsbox-admin", false, AdminUiMode::Production, false)
        );
        let login = "[admin_ui]\nusername = \"a\"\npassword_bcrypt = \"$2b$04$x\"";
        assert!(Settings::parse(login, dir).is_ok_and(|s| s.admin_ui.is_some_and(|ui| ui.auth)));
        let bad = Settings::parse("[admin_ui]\nauth = false\nnamespace = \"x\"", dir);
        assert!(bad.is_err_and(|e| e.to_string().contains("namespace")));
    }

    #[test]
    fn compile_limits_are_checked() {
        let dir = Path::new(".");
        let small = Settings::parse("[compile]\nmemory_bytes = 1000", dir);
        assert!(small.is_err_and(|e| e.to_string().contains("128 MiB")));
        let zero = Settings::parse("[compile]\nnesting = 0", dir);
        assert!(zero.is_err_and(|e| e.to_string().contains("compile")));
        let unknown = Settings::parse("[compile]\nfuel = 1", dir);
        assert!(unknown.is_err_and(|e| e.to_string().contains("fuel")));
        let some = Settings::parse("[compile]\ncpu_ms = 5000", dir).expect("valid");
        assert_eq!(some.compile.cpu_ms, 5000);
        assert_eq!(some.compile.locals, CompileLimits::default().locals);
    }

    #[test]
    fn bad_configurations_say_what_is_wrong() {
        let dir = Path::new("/etc/nsbox");
        let unknown = Settings::parse("listen = \"127.0.0.1:1\"\nfoo = 1", dir);
        assert!(unknown.is_err_and(|e| e.to_string().contains("foo")));
        let pattern = Settings::parse("namespace_pattern = \"(\"", dir);
        assert!(pattern.is_err_and(|e| e.to_string().contains("namespace_pattern")));
        for bad in ["../x", "é", &"x".repeat(65)] {
            let name =
                Settings::parse(&format!("[tenants.\"{bad}\"]\ncomponent = \"a.wasm\""), dir);
            assert!(
                name.is_err_and(|e| e.to_string().contains("tenant name")),
                "{bad}"
            );
        }
        let nsp = Settings::parse(
            "[tenants.a]\ncomponent = \"a.wasm\"\nnamespace = \"a\"",
            dir,
        );
        assert!(nsp.is_err_and(|e| e.to_string().contains("must start with /")));
        let limit = Settings::parse(
            "[tenants.a]\ncomponent = \"a.wasm\"\n[tenants.a.limits]\ncpu_ms = 5",
            dir,
        );
        assert!(limit.is_err_and(|e| e.to_string().contains("tenants.a.limits")));
        let stack = Settings::parse("wasm_stack_bytes = 1024", dir);
        assert!(stack.is_err_and(|e| e.to_string().contains("wasm_stack_bytes")));
        let cors = Settings::parse("cors_origins = [\"*\"]\ncors_credentials = true", dir);
        assert!(cors.is_err_and(|e| e.to_string().contains("cors_credentials")));
        let zero = Settings::parse("max_versions_per_tenant = 0", dir);
        assert!(zero.is_err_and(|e| e.to_string().contains("max_versions_per_tenant")));
        let huge = Settings::parse("body_timeout_ms = 18446744073709551615", dir);
        assert!(huge.is_err_and(|e| e.to_string().contains("body_timeout_ms")));
        let pool = Settings::parse("live_instances = 1000000", dir);
        assert!(pool.is_err_and(|e| e.to_string().contains("live_instances")));
        let own = Settings::parse(
            "[limits]\nmax_sockets = 9\n[tenants.a]\ncomponent = \"a.wasm\"\n[tenants.a.limits]\ncpu_per_call_ms = 5",
            dir,
        )
        .expect("valid");
        let limits = own.tenant_limits(&own.tenants["a"]).expect("valid");
        assert_eq!(limits.cpu_per_call, Duration::from_millis(5));
        assert_eq!(limits.max_sockets, 9);
        let ok = Settings::parse("[tenants.a]\ncomponent = \"a.wasm\"", dir).expect("valid");
        assert_eq!(
            ok.source(&ok.tenants["a"]),
            ComponentSource::File(PathBuf::from("/etc/nsbox/a.wasm"))
        );
    }
}
