//! The `nsbox` command line: the server, and a client of its admin API.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use bytes::Bytes;
use clap::{Args, Parser, Subcommand};
use http::Method;
use nsbox::admin::client::{AdminClient, ClientError};
use nsbox::server::Server;
use nsbox::settings::{self, Settings};
use nsbox::tenants::compiler::Worker;
use nsbox::workers::Workers;
use serde_json::{json, Value};

/// A server allocates and frees a buffer or two per packet and per connection from
/// many threads; mimalloc's per-thread pages do that with less work and contention than
/// glibc's malloc (which took about a fifth of the server's CPU when connecting).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const EXIT_CODES: &str = "Exit codes: 0 done; 1 the admin API refused (the message says why); \
2 bad command line; 3 the admin API could not be reached or the URL is wrong.";

#[derive(Parser)]
#[command(name = "nsbox", version, about = "A multi-tenant Socket.IO server whose namespaces are sandboxed WebAssembly components", after_help = EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serves Socket.IO with the tenants of a configuration file (or of the embedded
    /// default: echo as /t1 and /t2, chat as /acme, admin at /admin), the uploaded
    /// tenants of the data directory, and the admin API.
    Serve(ServeArgs),
    /// Prints the embedded default configuration.
    DefaultConfig,
    /// Uploads a component as the new version of a tenant (creating the tenant).
    #[command(after_help = EXIT_CODES)]
    Deploy {
        /// The tenant (its namespace is /TENANT under the default pattern).
        tenant: String,
        /// The component, built for wasm32-wasip2.
        file: PathBuf,
        #[command(flatten)]
        api: Api,
    },
    /// Lists, shows, rolls back or deletes tenants.
    #[command(after_help = EXIT_CODES)]
    Tenants {
        #[command(subcommand)]
        action: Option<TenantsAction>,
        #[command(flatten)]
        api: Api,
    },
    /// Mints a deploy token for one tenant (operator token required); prints it once.
    #[command(after_help = EXIT_CODES)]
    Token {
        /// The tenant the token may deploy.
        tenant: String,
        #[command(flatten)]
        api: Api,
    },
    /// Prints a tenant's recent log lines: what it logged, printed and panicked with,
    /// and the host's lines about it (faults and the limit that tripped, restarts,
    /// quarantine, new versions).
    #[command(after_help = EXIT_CODES)]
    Logs {
        /// The tenant.
        tenant: String,
        /// Keeps printing lines as they come, until interrupted.
        #[arg(long, short)]
        follow: bool,
        #[command(flatten)]
        api: Api,
    },
    /// Exports a tenant's storage: every key (starting with `--prefix`) and its value,
    /// one JSON object a line (`{"key", "value"}`, or `"base64"` for bytes that are not UTF-8).
    #[command(after_help = EXIT_CODES)]
    Kv {
        /// The tenant.
        tenant: String,
        /// Only the keys that start with this.
        #[arg(long, default_value = "")]
        prefix: String,
        #[command(flatten)]
        api: Api,
    },
    /// Shows a tenant's configuration (secrets masked), after setting what is given.
    #[command(after_help = EXIT_CODES)]
    Config {
        /// The tenant.
        tenant: String,
        /// Sets a value: `NAME=VALUE` (repeatable).
        #[arg(long, value_name = "NAME=VALUE")]
        set: Vec<String>,
        /// Sets a secret, shown back masked: `NAME=VALUE` (repeatable).
        #[arg(long, value_name = "NAME=VALUE")]
        secret: Vec<String>,
        /// Removes a name (repeatable).
        #[arg(long, value_name = "NAME")]
        unset: Vec<String>,
        #[command(flatten)]
        api: Api,
    },
}

/// What `nsbox serve` takes.
#[derive(Args)]
struct ServeArgs {
    /// Address for Socket.IO clients; overrides the configuration's `listen`.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// A TOML configuration file (`nsbox default-config` prints one to start from).
    #[arg(long, env = "NSBOX_CONFIG")]
    config: Option<PathBuf>,
    /// Address of the admin API; overrides `admin_listen`.
    #[arg(long)]
    admin_listen: Option<SocketAddr>,
    /// Where uploads are stored; overrides `data_dir`.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The operator's token (16 or more visible characters); overrides `admin_token`.
    /// A command line is visible to every user of the machine: prefer
    /// `--admin-token-file` or the environment. Without any, one is generated and logged.
    #[arg(long, env = "NSBOX_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// A file holding the operator's token (surrounding whitespace ignored); overrides
    /// `admin_token_file`.
    #[arg(long, env = "NSBOX_ADMIN_TOKEN_FILE", conflicts_with = "admin_token")]
    admin_token_file: Option<PathBuf>,
    /// Log lines as text (coloured only on a terminal) or as JSON objects, one a line.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Joins the cluster of nodes on this Redis (`redis://host:port`); wins over the
    /// configuration's `[cluster] redis_url`.
    #[arg(long = "redis", env = "NSBOX_REDIS_URL")]
    redis_url: Option<String>,
}

/// How log lines are written.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable; ANSI colours only when stderr is a terminal and `NO_COLOR` is unset.
    Text,
    /// One JSON object a line, for log collectors.
    Json,
}

#[derive(Subcommand)]
enum TenantsAction {
    /// Every tenant the token may see.
    List,
    /// One tenant: version, digest, sockets, events, faults, memory.
    Show {
        /// The tenant.
        tenant: String,
    },
    /// Every stored version of a tenant.
    Versions {
        /// The tenant.
        tenant: String,
    },
    /// Makes an earlier version current again.
    Rollback {
        /// The tenant.
        tenant: String,
        /// The version to go back to (default: the one before the current).
        #[arg(long)]
        to: Option<u64>,
    },
    /// Sets an uploaded tenant's limits over the configuration's (operator token):
    /// `--set cpu_per_call_ms=20 --set max_sockets=500`; none given resets them.
    Limits {
        /// The tenant.
        tenant: String,
        /// A limit as in the configuration's `[limits]`, NAME=VALUE; repeatable.
        #[arg(long = "set", value_name = "NAME=VALUE", value_parser = limit_pair)]
        set: Vec<(String, Value)>,
    },
    /// Deletes a tenant: its sockets are disconnected, its versions and tokens removed.
    Delete {
        /// The tenant.
        tenant: String,
    },
}

/// Where the admin API is and who is asking.
#[derive(Args)]
struct Api {
    /// The admin API's URL.
    #[arg(
        long,
        global = true,
        env = "NSBOX_ADMIN_URL",
        default_value = "http://127.0.0.1:3001"
    )]
    admin_url: String,
    /// A bearer token: the operator's or a tenant's deploy token.
    #[arg(long, global = true, env = "NSBOX_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

/// The argument that makes this program the compile worker (see
/// `nsbox::tenants::compiler`): `nsbox serve` compiles uploads by running itself so.
const COMPILE_WORKER: &str = "compile-worker";

fn main() -> ExitCode {
    // The compile worker is a bare process: no runtime, no logging, no arguments parsed
    // but its job.
    if std::env::args_os()
        .nth(1)
        .is_some_and(|arg| arg == COMPILE_WORKER)
    {
        return nsbox::tenants::compiler::worker_main();
    }
    // Single-threaded: `serve` adds a thread of the same kind per core for connections
    // (see `nsbox::workers`).
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(run()),
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            ExitCode::from(1)
        }
    }
}

async fn run() -> ExitCode {
    let cli = Cli::parse();
    let log_format = match &cli.command {
        Command::Serve(args) => args.log_format,
        _ => LogFormat::Text,
    };
    let _log = init_logging(log_format);
    let outcome = match cli.command {
        Command::Serve(args) => {
            return match serve(args).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("error: {error:#}");
                    ExitCode::from(1)
                }
            }
        }
        Command::DefaultConfig => {
            print!("{}", settings::DEFAULT);
            return ExitCode::SUCCESS;
        }
        Command::Deploy { tenant, file, api } => deploy(&tenant, &file, &api).await,
        Command::Tenants { action, api } => {
            tenants(action.unwrap_or(TenantsAction::List), &api).await
        }
        Command::Logs {
            tenant,
            follow,
            api,
        } => return logs(&tenant, follow, &api).await,
        Command::Kv {
            tenant,
            prefix,
            api,
        } => return export_kv(&tenant, &prefix, &api).await,
        Command::Config {
            tenant,
            set,
            secret,
            unset,
            api,
        } => config(&tenant, &set, &secret, &unset, &api).await,
        Command::Token { tenant, api } => {
            call(
                &api,
                Method::POST,
                &format!("/v1/tenants/{tenant}/tokens"),
                Bytes::new(),
            )
            .await
        }
    };
    match outcome {
        Ok(value) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&value).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(1))
        }
    }
}

/// Logs to stderr (stdout is for the CLI's answers), at `RUST_LOG`'s level (default
/// info), through a thread of its own (lossy: when stderr stalls, lines are dropped
/// rather than the serving threads blocked); the guard flushes it when dropped. Colour
/// escapes only reach a terminal: in a file, a journal or a container's log they are
/// noise.
fn init_logging(format: LogFormat) -> tracing_appender::non_blocking::WorkerGuard {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(true)
        .thread_name("nsbox-log")
        .finish(std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Json => builder.json().with_ansi(false).init(),
        LogFormat::Text => {
            let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            builder.with_ansi(colour).init()
        }
    }
    guard
}

/// `nsbox logs`: the tenant's lines, one a line (time, level, source, message); with
/// `follow`, new ones every second until interrupted.
async fn logs(tenant: &str, follow: bool, api: &Api) -> ExitCode {
    let mut after = 0u64;
    loop {
        let path = format!("/v1/tenants/{tenant}/logs?after={after}");
        match call(api, Method::GET, &path, Bytes::new()).await {
            Ok(answer) => {
                for line in answer["lines"].as_array().into_iter().flatten() {
                    println!("{}", log_line(line));
                }
                after = answer["next"].as_u64().unwrap_or(after);
            }
            Err(error) => {
                eprintln!("error: {error}");
                return ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(1));
            }
        }
        if !follow {
            return ExitCode::SUCCESS;
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

/// `nsbox kv`: pages through the tenant's keys with their values.
async fn export_kv(tenant: &str, prefix: &str, api: &Api) -> ExitCode {
    let mut cursor = String::new();
    loop {
        let path = format!(
            "/v1/tenants/{tenant}/kv?values=1&limit=1000&prefix={}&cursor={}",
            query_escape(prefix),
            query_escape(&cursor)
        );
        match call(api, Method::GET, &path, Bytes::new()).await {
            Ok(answer) => {
                for entry in answer["keys"].as_array().into_iter().flatten() {
                    println!("{entry}");
                }
                match answer["cursor"].as_str() {
                    Some(next) => cursor = next.to_owned(),
                    None => return ExitCode::SUCCESS,
                }
            }
            Err(error) => {
                eprintln!("error: {error}");
                return ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(1));
            }
        }
    }
}

/// `nsbox config`: one change of what is given (if anything), then what it is.
async fn config(
    tenant: &str,
    set: &[String],
    secret: &[String],
    unset: &[String],
    api: &Api,
) -> Result<Value, ClientError> {
    let path = format!("/v1/tenants/{tenant}/config");
    if set.is_empty() && secret.is_empty() && unset.is_empty() {
        return call(api, Method::GET, &path, Bytes::new()).await;
    }
    let pairs = |given: &[String]| -> serde_json::Map<String, Value> {
        given
            .iter()
            .map(|pair| {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                (name.to_owned(), Value::from(value))
            })
            .collect()
    };
    let mut values = pairs(set);
    values.extend(unset.iter().map(|name| (name.clone(), Value::Null)));
    let change = serde_json::json!({ "config": values, "secrets": pairs(secret) });
    call(api, Method::PUT, &path, Bytes::from(change.to_string())).await
}

/// Escapes a query parameter's value: all but the unreserved characters as `%XX`.
fn query_escape(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One line of `nsbox logs`: `2026-11-30T12:00:00.123Z WARN  stderr panicked at ...`.
fn log_line(line: &Value) -> String {
    let level = line["level"].as_str().unwrap_or("?").to_uppercase();
    format!(
        "{} {level:<5} {:<6} {}",
        nsbox::calendar::rfc3339(line["time_ms"].as_u64().unwrap_or(0)),
        line["source"].as_str().unwrap_or("?"),
        line["message"].as_str().unwrap_or_default()
    )
}

/// `NAME=VALUE` of `--set`: a number or boolean as such, anything else as a string
/// (the server says which names and types it takes).
fn limit_pair(pair: &str) -> Result<(String, Value), String> {
    let (name, value) = pair
        .split_once('=')
        .ok_or_else(|| format!("{pair:?}: write NAME=VALUE"))?;
    let value = serde_json::from_str(value).unwrap_or_else(|_| json!(value));
    Ok((name.trim().to_owned(), value))
}

async fn call(api: &Api, method: Method, path: &str, body: Bytes) -> Result<Value, ClientError> {
    AdminClient::new(&api.admin_url, api.token.clone())?
        .request(method, path, body)
        .await
}

async fn deploy(tenant: &str, file: &PathBuf, api: &Api) -> Result<Value, ClientError> {
    let bytes = std::fs::read(file).map_err(|e| ClientError::Refused {
        status: 0,
        code: "unreadable_file".into(),
        message: format!("cannot read {}: {e}", file.display()),
    })?;
    eprintln!(
        "uploading {} ({} bytes) as tenant {tenant}; the server validates and compiles it…",
        file.display(),
        bytes.len()
    );
    let started = Instant::now();
    let answer = call(
        api,
        Method::PUT,
        &format!("/v1/tenants/{tenant}/component"),
        Bytes::from(bytes),
    )
    .await?;
    eprintln!(
        "live as version {} in {:.1} s",
        answer.get("version").cloned().unwrap_or(json!("?")),
        started.elapsed().as_secs_f64()
    );
    Ok(answer)
}

/// Every tenant the token sees, page by page, as one `{"tenants": [...]}`.
async fn list_tenants(api: &Api) -> Result<Value, ClientError> {
    let mut tenants = Vec::new();
    let mut offset = Some(0);
    while let Some(at) = offset {
        let path = format!("/v1/tenants?limit=1000&offset={at}");
        let mut page = call(api, Method::GET, &path, Bytes::new()).await?;
        if let Some(Value::Array(listed)) = page.get_mut("tenants").map(Value::take) {
            tenants.extend(listed);
        }
        offset = page.get("next_offset").and_then(Value::as_u64);
    }
    Ok(json!({ "tenants": tenants }))
}

async fn tenants(action: TenantsAction, api: &Api) -> Result<Value, ClientError> {
    match action {
        TenantsAction::List => list_tenants(api).await,
        TenantsAction::Show { tenant } => {
            call(
                api,
                Method::GET,
                &format!("/v1/tenants/{tenant}"),
                Bytes::new(),
            )
            .await
        }
        TenantsAction::Versions { tenant } => {
            let path = format!("/v1/tenants/{tenant}/versions");
            call(api, Method::GET, &path, Bytes::new()).await
        }
        TenantsAction::Rollback { tenant, to } => {
            let body = match to {
                Some(version) => Bytes::from(json!({ "version": version }).to_string()),
                None => Bytes::new(),
            };
            let path = format!("/v1/tenants/{tenant}/rollback");
            call(api, Method::POST, &path, body).await
        }
        TenantsAction::Limits { tenant, set } => {
            let limits: serde_json::Map<String, Value> = set.into_iter().collect();
            let path = format!("/v1/tenants/{tenant}/limits");
            let body = Bytes::from(Value::Object(limits).to_string());
            call(api, Method::PUT, &path, body).await
        }
        TenantsAction::Delete { tenant } => {
            call(
                api,
                Method::DELETE,
                &format!("/v1/tenants/{tenant}"),
                Bytes::new(),
            )
            .await
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let ServeArgs {
        listen,
        config,
        admin_listen,
        data_dir,
        admin_token,
        admin_token_file,
        log_format: _,
        redis_url,
    } = args;
    let mut settings = match &config {
        Some(path) => Settings::load(path)?,
        None => Settings::embedded()?,
    };
    if let Some(dir) = data_dir {
        settings.data_dir = dir;
    }
    if let Some(url) = redis_url {
        settings.cluster.redis_url = Some(url);
    }
    raise_descriptor_limit(settings.max_connections);
    settings.compile_worker = Some(Worker {
        program: std::env::current_exe().context("cannot find this program to compile with")?,
        args: vec![COMPILE_WORKER.to_owned()],
    });
    let token_file = admin_token_file.or_else(|| settings.admin_token_file.clone());
    let token = match (admin_token, token_file) {
        (Some(token), _) => token,
        (None, Some(path)) => std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read the admin token file {}", path.display()))?
            .trim()
            .to_owned(),
        (None, None) => match settings.admin_token.clone() {
            Some(token) => token,
            None => {
                let token = format!("nsbox_op_{:032x}", rand::random::<u128>());
                tracing::warn!("no admin token configured; this run's operator token is {token}");
                token
            }
        },
    };
    let app = nsbox::app::start(&settings, &token).await?;
    let listen = listen.unwrap_or(settings.listen);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let admin_listen = admin_listen.unwrap_or(settings.admin_listen);
    let admin_listener = tokio::net::TcpListener::bind(admin_listen)
        .await
        .with_context(|| format!("cannot listen on {admin_listen} (admin API)"))?;
    let address = listener.local_addr()?;
    tracing::info!(
        "nsbox listening on http://{address} ({}), admin API on http://{}, data in {}",
        match &config {
            Some(path) => format!("configuration {}", path.display()),
            None => "embedded default configuration".to_owned(),
        },
        admin_listener.local_addr()?,
        settings.data_dir.display()
    );
    tracing::info!(
        "the console: open http://{}/ in a browser and sign in with the operator token",
        admin_listener.local_addr()?
    );
    for name in app.tenants.names() {
        if let Some(slot) = app.tenants.get(&name) {
            let namespace = app.tenants.namespace_of(&name).unwrap_or_else(|| {
                let pattern = app.tenants.pattern().map(|p| p.as_str().to_owned());
                format!("the namespaces {} maps to it", pattern.unwrap_or_default())
            });
            tracing::info!(tenant = %name, version = slot.current().version(), "serving {namespace}");
        }
    }
    if settings.demo_page {
        tracing::info!("the demo: open http://{address}/ in a browser");
    }
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut admin_stopped = stopped.clone();
    tokio::spawn(app.admin.clone().serve(admin_listener, async move {
        let _ = admin_stopped.changed().await;
    }));
    let shutdown = async move {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
        let _ = stop.send(true);
    };
    let workers = match settings.workers {
        0 => nsbox::workers::default_count(),
        count => count,
    };
    let workers = Workers::start(workers).context("cannot start the worker threads")?;
    tracing::debug!(workers = workers.len(), "serving connections");
    let server = Server::new()
        .workers(workers)
        .header_timeout(settings.header_timeout())
        .max_connections(settings.max_connections)
        .serve_client(settings.serve_client)
        .demo_page(settings.demo_page)
        .mount(app.io.engine().clone());
    server.serve(listener, shutdown).await;
    drop(stopped);
    Ok(())
}

/// Descriptors the server keeps besides its connections: listeners, the epoll and
/// event descriptors of its threads, its store and logs, a compile worker's pipes.
const OTHER_DESCRIPTORS: u64 = 256;

/// Raises the descriptor limit to the hard one, and says so when even that is short of
/// `max_connections`: past it, the kernel refuses the connections.
fn raise_descriptor_limit(max_connections: usize) {
    let allowed = match nsbox::server::raise_descriptor_limit() {
        Ok(allowed) => allowed,
        Err(error) => {
            tracing::warn!("cannot raise the descriptor limit to its maximum: {error}");
            return;
        }
    };
    let wanted = u64::try_from(max_connections)
        .unwrap_or(u64::MAX)
        .saturating_add(OTHER_DESCRIPTORS);
    match allowed {
        Some(allowed) if allowed < wanted => tracing::warn!(
            "this process may open {allowed} descriptors, fewer than max_connections \
             ({max_connections}) needs: raise the hard limit (ulimit -Hn, systemd's \
             LimitNOFILE) to serve that many"
        ),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_escaped() {
        assert_eq!(
            query_escape("history/#general é"),
            "history%2F%23general%20%C3%A9"
        );
        assert_eq!(query_escape("a-b.c_d~"), "a-b.c_d~");
    }
}
