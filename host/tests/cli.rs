//! The `nsbox` CLI against a running `nsbox serve`: deploy, list, show, versions, roll
//! back, tokens, delete, exit codes; and the store across restarts, a SIGKILL in the
//! middle of uploads included.
#![cfg(feature = "builtin-tenants")]

mod common;

use std::process::Output;
use std::time::Duration;

use bytes::Bytes;
use common::{cli, join, serve, temp_dir, Host, OPERATOR};
use http::Method;
use nsbox::admin::client::AdminClient;
use nsbox::store::sha256_hex;
use serde_json::Value;

fn example(name: &str) -> String {
    let dir = nsbox::tenants::builtin::EXAMPLES_DIR.expect("built with the examples");
    format!("{dir}/{name}.wasm")
}

fn answer(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "exit {:?}: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the CLI prints JSON")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Runs the CLI against `host` with `token`.
async fn with_token(host: &Host, token: &str, args: &[&str]) -> Output {
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--admin-url", &host.admin_url, "--token", token]);
    cli(&all).await
}

/// Runs the CLI against `host` as the operator.
async fn op(host: &Host, args: &[&str]) -> Output {
    with_token(host, OPERATOR, args).await
}

#[tokio::test]
async fn deploy_roll_back_tokens_delete_and_a_restart_through_the_cli() {
    let data = temp_dir("cli");
    let host = serve(&data, &[]).await;
    let echo = example("echo");
    let chat = example("chat");

    let first = op(&host, &["deploy", "app", &echo]).await;
    let deployed = answer(&first);
    assert_eq!(deployed["version"], 1);
    let echo_sha = sha256_hex(&std::fs::read(&echo).expect("built"));
    assert_eq!(deployed["sha256"], echo_sha.as_str());
    assert!(stderr(&first).contains("uploading"), "{}", stderr(&first));
    assert!(
        stderr(&first).contains("live as version 1"),
        "{}",
        stderr(&first)
    );
    assert_eq!(
        answer(&op(&host, &["deploy", "app", &chat]).await)["version"],
        2
    );

    let listed = answer(&op(&host, &["tenants"]).await);
    assert!(listed["tenants"]
        .as_array()
        .expect("a list")
        .iter()
        .any(|t| t["name"] == "app"));
    assert_eq!(
        answer(&op(&host, &["tenants", "show", "app"]).await)["version"],
        2
    );
    assert_eq!(
        answer(&op(&host, &["tenants", "versions", "app"]).await)["current"],
        2
    );
    assert_eq!(
        answer(&op(&host, &["tenants", "rollback", "app"]).await)["version"],
        1
    );
    let admitted = join(&host.addr, "/app", r#"{"token":"ok"}"#).await;
    assert!(admitted.starts_with("40/app,"), "{admitted}");

    // A deploy token: its own tenant only; exit 1 with the reason otherwise.
    let token = answer(&op(&host, &["token", "app"]).await)["token"]
        .as_str()
        .expect("a token")
        .to_owned();
    // The live version again is not stored again.
    let same = with_token(&host, &token, &["deploy", "app", &echo]).await;
    assert_eq!(answer(&same)["version"], 1);
    assert_eq!(answer(&same)["unchanged"], true);
    let bench = example("bench");
    let own = with_token(&host, &token, &["deploy", "app", &bench]).await;
    assert_eq!(answer(&own)["version"], 3);
    let other = with_token(&host, &token, &["deploy", "elsewhere", &echo]).await;
    assert_eq!(other.status.code(), Some(1));
    assert!(stderr(&other).contains("forbidden"), "{}", stderr(&other));
    let wrong = with_token(&host, "nope", &["tenants"]).await;
    assert_eq!(wrong.status.code(), Some(1));
    assert!(
        stderr(&wrong).contains("unauthorized"),
        "{}",
        stderr(&wrong)
    );
    let garbage = data.join("garbage.wasm");
    std::fs::write(&garbage, b"definitely not wasm").expect("written");
    let bad = op(
        &host,
        &["deploy", "app", garbage.to_str().expect("utf-8 path")],
    )
    .await;
    assert_eq!(bad.status.code(), Some(1));
    assert!(stderr(&bad).contains("not_wasm"), "{}", stderr(&bad));
    let unreachable = cli(&[
        "tenants",
        "--admin-url",
        "http://127.0.0.1:1",
        "--token",
        OPERATOR,
    ])
    .await;
    assert_eq!(unreachable.status.code(), Some(3));
    let usage = cli(&["deploy"]).await;
    assert_eq!(usage.status.code(), Some(2));

    // Compiled forms are cached by digest, so a restart need not compile again.
    let cached: Vec<String> = std::fs::read_dir(data.join("cache"))
        .expect("a cache")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        cached
            .iter()
            .any(|name| name.starts_with(&echo_sha) && name.ends_with(".cwasm")),
        "{cached:?}"
    );

    // Limits of its own, set by the operator only.
    let limits = op(
        &host,
        &["tenants", "limits", "app", "--set", "max_sockets=7"],
    )
    .await;
    assert_eq!(
        answer(&limits)["limits"]["max_sockets"],
        7,
        "{}",
        stderr(&limits)
    );
    let not_theirs = with_token(&host, &token, &["tenants", "limits", "app"]).await;
    assert_eq!(not_theirs.status.code(), Some(1));
    let malformed = op(&host, &["tenants", "limits", "app", "--set", "max_sockets"]).await;
    assert_eq!(malformed.status.code(), Some(2));

    // A restart keeps every uploaded tenant at its current version, its limits and
    // its tokens.
    drop(host);
    let host = serve(&data, &[]).await;
    let shown = answer(&op(&host, &["tenants", "show", "app"]).await);
    assert_eq!(shown["version"], 3);
    let bench_sha = sha256_hex(&std::fs::read(&bench).expect("built"));
    assert_eq!(shown["sha256"], bench_sha.as_str());
    assert_eq!(shown["limits"]["max_sockets"], 7);
    assert_eq!(
        shown["limit_overrides"],
        serde_json::json!({ "max_sockets": 7 })
    );
    let whoami = join(&host.addr, "/app", r#"{"token":"ok"}"#).await;
    assert!(whoami.starts_with("40/app,"), "{whoami}");
    let with_token = with_token(&host, &token, &["tenants", "show", "app"]).await;
    assert_eq!(answer(&with_token)["name"], "app");

    assert_eq!(
        answer(&op(&host, &["tenants", "delete", "app"]).await)["deleted"],
        "app"
    );
    assert_eq!(
        op(&host, &["tenants", "show", "app"]).await.status.code(),
        Some(1)
    );
    // Its compiled forms went with it: no stored version needs them.
    let left = std::fs::read_dir(data.join("cache"))
        .map(|entries| entries.count())
        .unwrap_or(0);
    assert_eq!(
        left, 0,
        "compiled forms left after the only tenant was deleted"
    );
    drop(host);
    let _ = std::fs::remove_dir_all(&data);
}

#[tokio::test]
async fn a_sigkill_during_uploads_leaves_a_version_that_serves() {
    let data = temp_dir("sigkill");
    let echo = std::fs::read(example("echo")).expect("built");
    let admin = std::fs::read(example("admin")).expect("built");
    let digests = [sha256_hex(&echo), sha256_hex(&admin)];
    // Kill at different points of the upload pipeline: reading, compiling, storing.
    for (round, delay_ms) in [5u64, 40, 90, 150].into_iter().enumerate() {
        let mut host = serve(&data, &[]).await;
        let client = AdminClient::new(&host.admin_url, Some(OPERATOR.into())).expect("a URL");
        if round == 0 {
            client
                .request(
                    Method::PUT,
                    "/v1/tenants/app/component",
                    Bytes::from(echo.clone()),
                )
                .await
                .expect("the first version");
        }
        let uploads = {
            let (echo, admin) = (Bytes::from(echo.clone()), Bytes::from(admin.clone()));
            tokio::spawn(async move {
                for i in 0.. {
                    let body = if i % 2 == 0 {
                        admin.clone()
                    } else {
                        echo.clone()
                    };
                    if client
                        .request(Method::PUT, "/v1/tenants/app/component", body)
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
            })
        };
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        host.child.start_kill().expect("SIGKILL");
        let _ = host.child.wait().await;
        let _ = tokio::time::timeout(Duration::from_secs(10), uploads).await;

        // After the restart the current version is one that was uploaded whole, it serves,
        // and every version the record lists loads.
        let host = serve(&data, &[]).await;
        let shown = answer(&op(&host, &["tenants", "show", "app"]).await);
        let sha = shown["sha256"].as_str().expect("a digest").to_owned();
        assert!(
            digests.contains(&sha),
            "round {round}: unknown digest {sha}"
        );
        let joined = join(&host.addr, "/app", r#"{"token":"ok","role":"admin"}"#).await;
        assert!(joined.starts_with("40/app,"), "round {round}: {joined}");
        let versions = answer(&op(&host, &["tenants", "versions", "app"]).await);
        let listed = versions["versions"].as_array().expect("a list").clone();
        for version in listed.iter().rev().take(3) {
            let number = version["version"].as_u64().expect("a number").to_string();
            let rolled = op(&host, &["tenants", "rollback", "app", "--to", &number]).await;
            assert_eq!(
                answer(&rolled)["version"].to_string(),
                number,
                "round {round}"
            );
        }
        drop(host);
    }
    let _ = std::fs::remove_dir_all(&data);
}

#[tokio::test]
async fn logs_prints_a_tenants_lines_and_refuses_another_tenants_token() {
    let data = temp_dir("cli-logs");
    let host = serve(&data, &[]).await;
    let printed = op(&host, &["logs", "t1"]).await;
    assert!(printed.status.success(), "{}", stderr(&printed));
    let text = String::from_utf8_lossy(&printed.stdout).into_owned();
    // `2026-11-30T12:00:00.123Z INFO  host   version 0 now serves`
    let line = text
        .lines()
        .find(|l| l.contains("version 0 now serves"))
        .unwrap_or_else(|| panic!("no line of the host's in {text:?}"));
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert!(fields[0].ends_with('Z') && fields[0].len() == 24, "{line}");
    assert_eq!(&fields[1..3], ["INFO", "host"], "{line}");
    // A deploy token of another tenant is refused (exit 1, the API's message).
    let minted = answer(&op(&host, &["token", "other"]).await);
    let token = minted["token"].as_str().expect("a token");
    let refused = with_token(&host, token, &["logs", "t1"]).await;
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("forbidden"),
        "{}",
        stderr(&refused)
    );
    drop(host);
    let _ = std::fs::remove_dir_all(&data);
}

/// Joins `nsp`, sends `events` (the arguments of EVENT packets, given ack ids 1..) over
/// long-polling and waits for every ack; returns all that came.
async fn ask_over_polling(addr: &str, nsp: &str, events: &[String]) -> String {
    let path = common::open_polling(addr).await;
    // The echo example's middleware wants this token. Events go once the CONNECT is
    // answered: before that, as in Node, there is no socket to take them.
    let connect = format!(r#"40{nsp},{{"token":"ok"}}"#);
    assert_eq!(common::request(addr, "POST", &path, &connect).await, "ok");
    let accepted = common::request(addr, "GET", &path, "").await;
    assert!(accepted.starts_with(&format!("40{nsp},")), "{accepted}");
    let body: Vec<String> = events
        .iter()
        .enumerate()
        .map(|(i, event)| format!("42{nsp},{}{event}", i + 1))
        .collect();
    assert_eq!(
        common::request(addr, "POST", &path, &body.join("\u{1e}")).await,
        "ok"
    );
    let mut seen = String::new();
    // Each GET returns what is ready; every ack arrives within a few of them.
    for _ in 0..50 {
        seen.push_str(&common::request(addr, "GET", &path, "").await);
        if (1..=events.len()).all(|id| seen.contains(&format!("43{nsp},{id}["))) {
            return seen;
        }
    }
    panic!("not every ack came: {seen}");
}

#[tokio::test]
async fn kv_exports_a_tenants_keys_and_config_sets_masks_and_unsets() {
    let data = temp_dir("cli-kv");
    let host = serve(&data, &[]).await;
    answer(&op(&host, &["deploy", "app", &example("echo")]).await);

    // Configuration: values and a secret in one change; the secret is never shown back.
    let changed = answer(
        &op(
            &host,
            &[
                "config",
                "app",
                "--set",
                "greeting=hi",
                "--set",
                "mode=x",
                "--secret",
                "key=s3cr3t",
            ],
        )
        .await,
    );
    assert_eq!(changed["config"]["greeting"], "hi", "{changed}");
    assert_eq!(changed["secrets"]["key"], "********", "{changed}");
    assert!(!changed.to_string().contains("s3cr3t"), "{changed}");
    let unset = answer(&op(&host, &["config", "app", "--unset", "mode"]).await);
    assert!(unset["config"].get("mode").is_none(), "{unset}");
    assert_eq!(answer(&op(&host, &["config", "app"]).await), unset);
    // The tenant reads what was set, secret included.
    let read = ask_over_polling(&host.addr, "/app", &[r#"["config"]"#.to_owned()]).await;
    assert!(
        read.contains(r#""greeting":"hi""#) && read.contains("s3cr3t"),
        "{read}"
    );
    assert!(!read.contains(r#""mode""#), "{read}");

    // Keys the tenant stored, exported one JSON object a line, by prefix.
    let stores: Vec<String> = ["a/1", "a/2", "b/1"]
        .iter()
        .map(|key| format!(r#"["store","{key}",{{"v":"{key}"}}]"#))
        .collect();
    ask_over_polling(&host.addr, "/app", &stores).await;
    let exported = op(&host, &["kv", "app", "--prefix", "a/"]).await;
    assert!(exported.status.success(), "{}", stderr(&exported));
    let lines: Vec<Value> = String::from_utf8_lossy(&exported.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object a line"))
        .collect();
    let keys: Vec<&str> = lines.iter().filter_map(|l| l["key"].as_str()).collect();
    assert_eq!(keys, ["a/1", "a/2"], "{lines:?}");
    // Values as the tenant stored them (the SDK's JSON, as text).
    assert_eq!(lines[0]["value"], r#"{"v":"a/1"}"#, "{lines:?}");
    // Another tenant's token sees none of it.
    let minted = answer(&op(&host, &["token", "other"]).await);
    let token = minted["token"].as_str().expect("a token");
    let refused = with_token(&host, token, &["kv", "app"]).await;
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    drop(host);
    let _ = std::fs::remove_dir_all(&data);
}
