//! Shared by the binary's tests: start `nsbox serve` as a process, speak just enough
//! HTTP long-polling to join a namespace, and run the CLI.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// The operator token the hosts of these tests use.
pub const OPERATOR: &str = "cli-test-operator";

/// A running `nsbox serve` process.
pub struct Host {
    /// The process; killed on drop.
    pub child: Child,
    /// Socket.IO address.
    pub addr: String,
    /// Admin API URL.
    pub admin_url: String,
    /// The log lines written up to the one saying where it listens.
    pub startup_log: Vec<String>,
}

/// A fresh, empty directory under the system's temporary directory.
pub fn temp_dir(what: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("nsbox-{what}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    dir
}

/// Starts `nsbox serve` on free ports with `data_dir` and the operator token.
pub async fn serve(data_dir: &Path, extra: &[&str]) -> Host {
    let mut args = vec!["--admin-token", OPERATOR];
    args.extend(extra);
    serve_without_token(data_dir, &args).await
}

/// Starts `nsbox serve` on free ports with `data_dir` and `extra`, with no operator
/// token unless `extra` gives one; its log goes to a pipe, as to a log collector.
pub async fn serve_without_token(data_dir: &Path, extra: &[&str]) -> Host {
    let mut command = Command::new(env!("CARGO_BIN_EXE_nsbox"));
    command.args(serve_args(data_dir, extra));
    start(command).await
}

/// The arguments of `nsbox serve` on free ports with `data_dir` and `extra`.
pub fn serve_args(data_dir: &Path, extra: &[&str]) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
        "--data-dir",
    ]
    .iter()
    .map(Into::into)
    .collect();
    args.push(data_dir.into());
    args.extend(extra.iter().map(Into::into));
    args
}

/// Starts `command`, an `nsbox serve`, with its log piped; returns once it listens.
pub async fn start(mut command: Command) -> Host {
    let mut child = command
        .env("RUST_LOG", "info")
        .env_remove("NO_COLOR")
        .env_remove("NSBOX_ADMIN_TOKEN")
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("nsbox starts");
    // The log goes to stderr (stdout is for the CLI's answers).
    let log = child.stderr.take().expect("piped stderr");
    let mut lines = BufReader::new(log).lines();
    let mut startup_log = Vec::new();
    let (addr, admin) = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.expect("readable output") {
            startup_log.push(line.clone());
            let after = |marker: &str| {
                line.split(marker)
                    .nth(1)
                    .and_then(|rest| rest.split([' ', ',']).next())
                    .map(str::to_owned)
            };
            if let (Some(addr), Some(admin)) =
                (after("listening on http://"), after("admin API on http://"))
            {
                return (addr, admin);
            }
        }
        panic!("nsbox exited without listening");
    })
    .await
    .expect("nsbox listens within 60 s");
    // Keep draining the log so the server never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Host {
        child,
        addr,
        admin_url: format!("http://{admin}"),
        startup_log,
    }
}

/// Runs the `nsbox` CLI with `args`.
pub async fn cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nsbox"))
        .args(args)
        .env_remove("NSBOX_TOKEN")
        .env_remove("NSBOX_ADMIN_URL")
        .output()
        .await
        .expect("the CLI runs")
}

/// One HTTP/1.1 request on a fresh connection; returns the body of a 200.
pub async fn request(addr: &str, method: &str, path: &str, body: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connects");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("sends");
    let mut response = String::new();
    tokio::time::timeout(
        Duration::from_secs(10),
        stream.read_to_string(&mut response),
    )
    .await
    .expect("answers within 10 s")
    .expect("reads");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default()
}

/// Opens an Engine.IO long-polling session; returns the path its requests go to.
pub async fn open_polling(addr: &str) -> String {
    let open = request(addr, "GET", "/socket.io/?EIO=4&transport=polling", "").await;
    let sid = open
        .split("\"sid\":\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("an open packet with a sid")
        .to_owned();
    format!("/socket.io/?EIO=4&transport=polling&sid={sid}")
}

/// Opens an Engine.IO session, asks to join `nsp` with `auth`, and returns the answer.
pub async fn join(addr: &str, nsp: &str, auth: &str) -> String {
    let path = open_polling(addr).await;
    assert_eq!(
        request(addr, "POST", &path, &format!("40{nsp},{auth}")).await,
        "ok"
    );
    request(addr, "GET", &path, "").await
}
