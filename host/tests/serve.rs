//! `nsbox serve` itself: on its embedded default it admits a client to the echo tenant
//! at /t1 and refuses a bad token; with `--config` it serves a component named by path
//! (over plain HTTP long-polling; the richer client tests live in tests/).

mod common;

use common::{join, serve, serve_args, serve_without_token, start, temp_dir, OPERATOR};

#[tokio::test]
async fn the_default_configuration_serves_the_echo_tenant() {
    let data = temp_dir("serve-default");
    let host = serve(&data, &[]).await;
    let addr = host.addr.clone();
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
    drop(host);
    let _ = std::fs::remove_dir_all(&data);
}

#[cfg(feature = "builtin-tenants")]
#[tokio::test]
async fn a_configuration_file_names_components_by_path() {
    let dir = temp_dir("serve-config");
    let examples = nsbox::tenants::builtin::EXAMPLES_DIR.expect("built with the examples");
    std::fs::copy(format!("{examples}/admin.wasm"), dir.join("mine.wasm")).expect("copied");
    let config = dir.join("nsbox.toml");
    // A relative path: relative to the configuration file.
    std::fs::write(&config, "[tenants.mine]\ncomponent = \"mine.wasm\"\n").expect("written");
    let config_arg = config.display().to_string();
    let host = serve(&dir.join("data"), &["--config", &config_arg]).await;
    let addr = host.addr.clone();
    let admitted = join(&addr, "/mine", r#"{"role":"admin"}"#).await;
    assert!(admitted.starts_with("40/mine,{\"sid\":"), "{admitted}");
    // The embedded default is not in force: its tenants are unknown here.
    let unknown = join(&addr, "/t1", r#"{"token":"ok"}"#).await;
    assert!(unknown.starts_with("44/t1,"), "{unknown}");
    assert!(
        unknown.contains(r#""message":"unknown tenant""#),
        "{unknown}"
    );
    drop(host);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_log_that_is_not_a_terminal_has_no_colour_and_json_is_offered() {
    let data = temp_dir("serve-log");
    let host = serve(&data, &[]).await;
    assert!(!host.startup_log.is_empty(), "{:?}", host.startup_log);
    for line in &host.startup_log {
        assert!(!line.contains('\x1b'), "an ANSI escape in {line:?}");
    }
    drop(host);
    let host = serve(&data, &["--log-format", "json"]).await;
    for line in &host.startup_log {
        let object: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        assert!(object["level"].is_string(), "{line}");
        assert!(object["fields"]["message"].is_string(), "{line}");
    }
    drop(host);
    let _ = std::fs::remove_dir_all(&data);
}

/// Runs `nsbox serve` on free ports and `data_dir` with `extra`, which must make it
/// refuse to start; returns what it said.
async fn refused_start(data_dir: &str, extra: &[&str]) -> String {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_nsbox"))
        .args(serve_args(std::path::Path::new(data_dir), extra))
        .env_remove("NSBOX_ADMIN_TOKEN")
        .output()
        .await
        .expect("nsbox runs");
    assert!(!out.status.success(), "{extra:?} was accepted");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn the_operator_token_must_be_usable_and_can_come_from_a_file() {
    let data = temp_dir("serve-token");
    let data_arg = data.join("data").display().to_string();
    for (token, says) in [
        ("", "empty"),
        ("short", "at least 16"),
        ("with space 0123456789", "visible"),
    ] {
        let stderr = refused_start(&data_arg, &["--admin-token", token]).await;
        assert!(
            stderr.contains("admin token") && stderr.contains(says),
            "{token:?}: {stderr}"
        );
    }
    let file = data.join("operator-token");
    std::fs::write(&file, format!("{OPERATOR}\n")).expect("written");
    let file_arg = file.display().to_string();
    let host = serve_without_token(&data.join("data"), &["--admin-token-file", &file_arg]).await;
    let client = nsbox::admin::client::AdminClient::new(&host.admin_url, Some(OPERATOR.into()))
        .expect("a client");
    let listed = client
        .request(http::Method::GET, "/v1/tenants", bytes::Bytes::new())
        .await
        .expect("the token from the file is the operator's");
    assert!(listed["tenants"].is_array(), "{listed}");
    // The data directory and what it holds are the operator's alone.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(data.join("data"))
        .expect("created")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
    drop(host);
    let _ = std::fs::remove_dir_all(&data);
}

#[tokio::test]
async fn a_redis_that_cannot_be_reached_or_named_stops_the_start_with_a_clear_error() {
    let data = temp_dir("serve-redis");
    let data_arg = data.display().to_string();
    // Port 1 is never a Redis here; "nosuch://" is no Redis URL.
    for (url, says) in [
        (
            "redis://127.0.0.1:1",
            "cannot reach Redis at redis://127.0.0.1:1",
        ),
        ("nosuch://x", "the Redis URL \"nosuch://x\""),
    ] {
        let stderr = refused_start(&data_arg, &["--admin-token", OPERATOR, "--redis", url]).await;
        assert!(stderr.contains(says), "{url}: {stderr}");
    }
    let _ = std::fs::remove_dir_all(&data);
}

#[tokio::test]
async fn the_default_configuration_answers_any_origin_without_credentials() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let data = temp_dir("serve-cors");
    let host = serve(&data, &[]).await;
    let mut stream = tokio::net::TcpStream::connect(&host.addr)
        .await
        .expect("connects");
    let head = format!(
        "GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: {}\r\nOrigin: http://elsewhere.test\r\nConnection: close\r\n\r\n",
        host.addr
    );
    stream.write_all(head.as_bytes()).await.expect("sent");
    let mut response = String::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_string(&mut response),
    )
    .await
    .expect("answered within 10 s")
    .expect("read");
    let headers = response.to_ascii_lowercase();
    assert!(headers.starts_with("http/1.1 200"), "{response}");
    assert!(
        headers.contains("access-control-allow-origin: http://elsewhere.test"),
        "{response}"
    );
    assert!(
        !headers.contains("access-control-allow-credentials"),
        "no cookies cross-origin by default: {response}"
    );
    drop(host);
    let _ = std::fs::remove_dir_all(&data);
}

#[tokio::test]
async fn the_server_raises_its_descriptor_limit_and_says_when_it_is_short() {
    let data = temp_dir("serve-descriptors");
    // Started as a soft limit of 256 would have it: a couple of hundred connections.
    let mut command = tokio::process::Command::new("sh");
    command
        .args(["-c", r#"ulimit -Sn 256 && exec "$0" "$@""#])
        .arg(env!("CARGO_BIN_EXE_nsbox"))
        .args(serve_args(&data, &["--admin-token", OPERATOR]));
    let host = start(command).await;
    let pid = host.child.id().expect("running");
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("readable");
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .expect("the descriptor limit listed");
    // "Max open files  <soft>  <hard>  files"
    let fields: Vec<&str> = line.split_whitespace().collect();
    let (soft, hard) = (fields[3], fields[4]);
    assert_eq!(soft, hard, "raised to the hard limit: {line}");
    let warned = (host.startup_log.iter()).any(|l| l.contains("fewer than max_connections"));
    // The default max_connections, 100,000, and the server's own 256.
    let short = hard.parse::<u64>().is_ok_and(|hard| hard < 100_256);
    assert_eq!(warned, short, "{line}; {:?}", host.startup_log);
    drop(host);
    let _ = std::fs::remove_dir_all(&data);
}
