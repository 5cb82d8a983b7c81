//! Test harness: starts the real server in-process on `127.0.0.1:0`, with the
//! native test app or with the Wasm tenants, and runs the official JS client suites
//! against it.

pub mod demo;
pub mod forged;
pub mod guest_builds;
pub mod log_sink;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Output;

use nsbox::server::Server;
use nsbox::settings::Settings;
use nsbox::socketio::SocketIo;
use nsbox::tenants::compiler::Worker;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// The configuration of [`TestServer::start_tenants`]; paths are relative to the
/// directory the examples were built in.
pub const TENANTS: &str = r#"
# Small, so that a test can exceed it cheaply (the examples are ~150 KB).
max_component_bytes = 1048576
# Small, so that a test can reach them with a few uploads.
max_versions_per_tenant = 3
uploads_per_minute_per_token = 5

# Emit budgets small enough for a test to break quickly.
[limits]
# High enough for the load tests, low enough for a flood to cross.
events_per_second_per_socket = 5000
emit_messages_per_call = 1000
emit_bytes_per_call = 1048576

# The neighbour of the suites' faults: its acks run in a closed loop.
[tenants.t1]
component = "builtin:echo"
limits = { events_per_second_per_socket = 100000 }

[tenants.t2]
component = "builtin:echo"

[tenants.acme]
component = "builtin:chat"

[tenants.admin]
component = "builtin:admin"
namespace = "/admin"

[tenants.crash]
component = "hostile_panic.wasm"

[tenants.spin]
component = "hostile_spin.wasm"

[tenants.hog]
component = "hostile_memory.wasm"

[tenants.flood]
component = "hostile_flood.wasm"

[tenants.reach]
component = "hostile_wasi.wasm"

[tenants.fragile]
component = "hostile_panic.wasm"

[tenants.greedy]
component = "hostile_greedy.wasm"

[tenants.deep]
component = "hostile_recursion.wasm"

[tenants.sleepy]
component = "hostile_sleepy.wasm"

[tenants.acks]
component = "hostile_acks.wasm"
"#;

/// One end-to-end test at a time: each starts servers, Node clients or compilers, and
/// its timings (CPU deadlines, heartbeats, throttling windows, acks within seconds)
/// would be another's load on a two-core machine. Held for the whole test.
pub async fn alone() -> tokio::sync::MutexGuard<'static, ()> {
    static ALONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    ALONE.lock().await
}

/// The operator token of [`TestServer::start_tenants`]'s admin API.
pub const ADMIN_TOKEN: &str = "test-operator-token";

/// A running server; it stops when dropped.
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The Socket.IO server, for tests that inspect it.
    pub io: SocketIo,
    /// Where the admin API listens, when there is one.
    pub admin: Option<SocketAddr>,
    /// Its data directory, removed when it stops (none without an admin API).
    pub data_dir: Option<PathBuf>,
    stop: Option<oneshot::Sender<()>>,
}

impl TestServer {
    /// Starts the conformance app, the workspace demo and the raw Engine.IO echo at
    /// `/engine.io/`, with the conformance timers (ping 300 ms, timeout 200 ms).
    pub async fn start() -> std::io::Result<TestServer> {
        let (io, server) = demo::conformance_server();
        demo::workspaces(&io);
        // Bound before the task starts, so the address is ready to use when this returns.
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(server.serve(listener, async {
            let _ = stopped.await;
        }));
        Ok(TestServer {
            addr,
            io,
            admin: None,
            data_dir: None,
            stop: Some(stop),
        })
    }

    /// Starts a server on the Wasm tenants: `echo` as `t1` and `t2`, `admin` at `/admin`,
    /// `chat` as `acme`, and the hostile examples as `crash` (panics), `spin` (loops
    /// forever), `hog` (eats memory), `flood` (emits without end), `fragile` (panics,
    /// for the restart policy), `greedy` (leaks across calls), `deep` (recurses),
    /// `sleepy` (blocks) and `acks` (misuses acks and handles), under the default
    /// limits but for emit budgets of 1,000 messages and 1 MiB per call; with the admin API
    /// (operator token [`ADMIN_TOKEN`]) on a fresh data directory.
    pub async fn start_tenants() -> Result<TestServer, Box<dyn std::error::Error>> {
        TestServer::start_with(TENANTS).await
    }

    /// Starts a server on the configuration `config` (TOML; component paths relative to
    /// where the examples were built), with the admin API on a fresh data directory.
    pub async fn start_with(config: &str) -> Result<TestServer, Box<dyn std::error::Error>> {
        let data_dir = std::env::temp_dir().join(format!(
            "nsbox-test-data-{}-{}",
            std::process::id(),
            NEXT_DIR.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        TestServer::start_in(config, &data_dir).await
    }

    /// [`TestServer::start_with`] on the data directory `data_dir`, which may hold what
    /// an earlier server kept.
    pub async fn start_in(
        config: &str,
        data_dir: &Path,
    ) -> Result<TestServer, Box<dyn std::error::Error>> {
        let dir = examples_dir()?;
        let mut settings = Settings::parse(config, Path::new(dir))?;
        let data_dir = data_dir.to_owned();
        settings.data_dir = data_dir.clone();
        settings.compile_worker = compile_worker();
        let app = nsbox::app::start(&settings, ADMIN_TOKEN).await?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let admin_listener = TcpListener::bind("127.0.0.1:0").await?;
        let admin = admin_listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let (admin_stop, admin_stopped) = oneshot::channel::<()>();
        tokio::spawn(app.admin.clone().serve(admin_listener, async {
            let _ = admin_stopped.await;
        }));
        let server = Server::new()
            .header_timeout(settings.header_timeout())
            .max_connections(settings.max_connections)
            .serve_client(settings.serve_client)
            .demo_page(settings.demo_page)
            .mount(app.io.engine().clone());
        tokio::spawn(server.serve(listener, async move {
            let _ = stopped.await;
            let _ = admin_stop.send(());
        }));
        Ok(TestServer {
            addr,
            io: app.io,
            admin: Some(admin),
            data_dir: Some(data_dir),
            stop: Some(stop),
        })
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(dir) = self.data_dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

static NEXT_DIR: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Where this crate's build script put every example component, hostile ones
/// included (`tests/build.rs`).
pub fn examples_dir() -> Result<&'static str, Box<dyn std::error::Error>> {
    Ok(env!("NSBOX_FIXTURES_DIR"))
}

/// `tests/js`, where the JS suites and their pinned dependencies live.
pub fn js_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("js")
}

/// Installs the pinned npm packages of the JS suites (`npm ci`) unless they are there
/// (the one checked is the latest added to `tests/js/package.json`).
pub async fn ensure_npm_packages() -> std::io::Result<()> {
    npm_ci(&js_dir(), "@socket.io/redis-adapter").await
}

/// Installs the pinned npm packages of `dir` (`npm ci`) unless `package` is there.
pub async fn npm_ci(dir: &Path, package: &str) -> std::io::Result<()> {
    let installed = dir.join(format!("node_modules/{package}/package.json"));
    if installed.exists() {
        return Ok(());
    }
    guest_builds::run(dir, "npm", &["ci", "--no-audit", "--no-fund"]).await
}

/// The compile worker test servers compile untrusted components with:
/// `nsbox-compile-worker`, this package's binary, which cargo builds beside the
/// directory of the tests and examples that run (`target/<profile>/`). `None` where it
/// was not built (`cargo run --example` builds no binaries): components are then
/// compiled in-process, without the compile limits.
pub fn compile_worker() -> Option<Worker> {
    let exe = std::env::current_exe().ok()?;
    let program = exe.parent()?.parent()?.join("nsbox-compile-worker");
    program.is_file().then(|| Worker {
        program,
        args: Vec::new(),
    })
}

/// Runs `node --test` on the given files of `tests/js` against `server`: its URL in
/// `SERVER_URL`, its process in `SERVER_PID`, and with an admin API also `ADMIN_URL`, `ADMIN_TOKEN` and
/// `EXAMPLES_DIR` (where the example components are); and `env`.
pub async fn run_node_tests(
    server: &TestServer,
    files: &[&str],
    env: &[(&str, String)],
) -> std::io::Result<Output> {
    let mut command = tokio::process::Command::new("node");
    command.envs(env.iter().map(|(k, v)| (k, v)));
    if let Some(admin) = server.admin {
        command
            .env("ADMIN_URL", format!("http://{admin}"))
            .env("ADMIN_TOKEN", ADMIN_TOKEN)
            .env(
                "EXAMPLES_DIR",
                examples_dir().map_err(|e| std::io::Error::other(e.to_string()))?,
            );
    }
    command
        .arg("--test")
        .arg("--test-reporter=spec")
        // A test that hangs fails on its own, and the rest of its suite still reports.
        .arg("--test-timeout=60000")
        .args(files)
        .current_dir(js_dir())
        .env("SERVER_URL", server.url())
        // The server runs in this process: its memory is this process's.
        .env("SERVER_PID", std::process::id().to_string())
        .kill_on_drop(true)
        .output()
        .await
}
