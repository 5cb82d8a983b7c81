//! Test harness: starts the real server in-process on `127.0.0.1:0`, with the
//! native test app or with the Wasm tenants, and runs the official JS client suites
//! against it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Output;

use nsbox::server::Server;
use nsbox::settings::Settings;
use nsbox::socketio::SocketIo;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// The configuration of [`TestServer::start_tenants`]; paths are relative to the
/// directory the examples were built in.
const TENANTS: &str = r#"
[tenants.t1]
component = "builtin:echo"

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
"#;

/// A running server; it stops when dropped.
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The Socket.IO server, for tests that inspect it.
    pub io: SocketIo,
    stop: Option<oneshot::Sender<()>>,
}

impl TestServer {
    /// Starts the conformance app, the workspace demo and the raw Engine.IO echo at
    /// `/engine.io/`, with the conformance timers (ping 300 ms, timeout 200 ms).
    pub async fn start() -> std::io::Result<TestServer> {
        let (io, server) = nsbox::demo::conformance_server();
        nsbox::demo::workspaces(&io);
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
            stop: Some(stop),
        })
    }

    /// Starts a server on the Wasm tenants: `echo` as `t1` and `t2`, `admin` at `/admin`,
    /// `chat` as `acme`, and the hostile examples as `crash` (panics), `spin` (loops
    /// forever) and `hog` (eats memory), under the default limits.
    pub async fn start_tenants() -> Result<TestServer, Box<dyn std::error::Error>> {
        let dir = nsbox::tenants::builtin::EXAMPLES_DIR
            .ok_or("nsbox was built without the builtin-tenants feature")?;
        let settings = Settings::parse(TENANTS, Path::new(dir))?;
        let app = nsbox::app::start(&settings).await?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let server = Server::new().mount(app.io.engine().clone());
        tokio::spawn(server.serve(listener, async {
            let _ = stopped.await;
        }));
        Ok(TestServer {
            addr,
            io: app.io,
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
    }
}

/// `tests/js`, where the JS suites and their pinned dependencies live.
pub fn js_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("js")
}

/// Installs the pinned npm packages (`npm ci`) unless they are already there.
pub async fn ensure_npm_packages() -> std::io::Result<()> {
    let dir = js_dir();
    let installed = dir.join("node_modules/socket.io-client/package.json");
    if installed.exists() {
        return Ok(());
    }
    let status = tokio::process::Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&dir)
        .status()
        .await?;
    if status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!("npm ci failed: {status}")))
    }
}

/// Runs `node --test` on the given files of `tests/js` against `url`.
pub async fn run_node_tests(url: &str, files: &[&str]) -> std::io::Result<Output> {
    tokio::process::Command::new("node")
        .arg("--test")
        .arg("--test-reporter=spec")
        .args(files)
        .current_dir(js_dir())
        .env("SERVER_URL", url)
        .kill_on_drop(true)
        .output()
        .await
}
