//! Test harness: starts the real server in-process on `127.0.0.1:0` with the
//! native test app, and runs the official JS client suites against it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Output;

use nsbox::socketio::SocketIo;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

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
