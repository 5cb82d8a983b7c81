//! `nsbox serve` itself: on its embedded default it admits a client to the echo tenant
//! at /t1 and refuses a bad token; with `--config` it serves a component named by path
//! (over plain HTTP long-polling; the richer client tests live in tests/).

mod common;

use common::{join, serve, temp_dir};

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
