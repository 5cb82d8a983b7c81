//! `nsbox serve` with no configuration: the binary itself, on its embedded default,
//! admits a client to the echo tenant at /t1 and refuses a bad token, over plain
//! HTTP long-polling (the richer client tests live in tests/).

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// Starts the binary on a free port and returns it with the address it reports.
async fn serve(extra: &[&str]) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_nsbox"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(std::env::temp_dir().join(format!(
            "nsbox-serve-data-{}-{}",
            std::process::id(),
            rand_suffix()
        )))
        .args(extra)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("nsbox starts");
    // The log goes to stderr (stdout is for the CLI's answers).
    let log = child.stderr.take().expect("piped stderr");
    let mut lines = BufReader::new(log).lines();
    let addr = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.expect("readable output") {
            if let Some(rest) = line.split("listening on http://").nth(1) {
                return rest
                    .split_whitespace()
                    .next()
                    .expect("an address")
                    .to_owned();
            }
        }
        panic!("nsbox exited without listening");
    })
    .await
    .expect("nsbox listens within 60 s");
    // Keep draining the log so the server never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, addr)
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// One HTTP/1.1 request on a fresh connection; returns the body.
async fn request(addr: &str, method: &str, path: &str, body: &str) -> String {
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

/// Opens an Engine.IO session, asks to join `nsp` with `auth`, and returns the answer.
async fn join(addr: &str, nsp: &str, auth: &str) -> String {
    let open = request(addr, "GET", "/socket.io/?EIO=4&transport=polling", "").await;
    let sid = open
        .split("\"sid\":\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("an open packet with a sid")
        .to_owned();
    let path = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");
    assert_eq!(
        request(addr, "POST", &path, &format!("40{nsp},{auth}")).await,
        "ok"
    );
    request(addr, "GET", &path, "").await
}

#[tokio::test]
async fn the_default_configuration_serves_the_echo_tenant() {
    let (mut child, addr) = serve(&[]).await;
    let admitted = join(&addr, "/t1", r#"{"token":"ok"}"#).await;
    assert!(admitted.starts_with("40/t1,{\"sid\":"), "{admitted}");
    let refused = join(&addr, "/t1", r#"{"token":"no"}"#).await;
    let error: serde_json::Value =
        serde_json::from_str(refused.strip_prefix("44/t1,").expect("a CONNECT_ERROR"))
            .expect("JSON");
    assert_eq!(
        error,
        serde_json::json!({"message": "unauthorized", "data": {"reason": "bad token"}})
    );
    child.kill().await.expect("stops");
}

#[cfg(feature = "builtin-tenants")]
#[tokio::test]
async fn a_configuration_file_names_components_by_path() {
    let dir = std::env::temp_dir().join(format!("nsbox-serve-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let examples = nsbox::tenants::builtin::EXAMPLES_DIR.expect("built with the examples");
    std::fs::copy(format!("{examples}/admin.wasm"), dir.join("mine.wasm")).expect("copied");
    let config = dir.join("nsbox.toml");
    // A relative path: relative to the configuration file.
    std::fs::write(&config, "[tenants.mine]\ncomponent = \"mine.wasm\"\n").expect("written");
    let config_arg = config.display().to_string();
    let (mut child, addr) = serve(&["--config", &config_arg]).await;
    let admitted = join(&addr, "/mine", r#"{"role":"admin"}"#).await;
    assert!(admitted.starts_with("40/mine,{\"sid\":"), "{admitted}");
    // The embedded default is not in force: its tenants are unknown here.
    let unknown = join(&addr, "/t1", r#"{"token":"ok"}"#).await;
    assert!(unknown.starts_with("44/t1,"), "{unknown}");
    assert!(
        unknown.contains(r#""message":"unknown tenant""#),
        "{unknown}"
    );
    child.kill().await.expect("stops");
    let _ = std::fs::remove_dir_all(&dir);
}
