//! What an upload may cost the host: a compilation that runs past `compile_timeout_ms`
//! is refused with a code, and nothing changes.

use bytes::Bytes;
use http::Method;
use integration_tests::{examples_dir, TestServer, ADMIN_TOKEN};
use nsbox::admin::client::{AdminClient, ClientError};

/// A compile timeout no real compilation fits in.
const INSTANT_COMPILES: &str = r#"
compile_timeout_ms = 1

[tenants.t1]
component = "builtin:echo"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compilation_past_its_time_is_refused_and_changes_nothing() {
    let server = TestServer::start_with(INSTANT_COMPILES)
        .await
        .expect("server starts");
    let admin = server.admin.expect("an admin API");
    let client =
        AdminClient::new(&format!("http://{admin}"), Some(ADMIN_TOKEN.into())).expect("a client");
    let chat = std::fs::read(format!("{}/chat.wasm", examples_dir().expect("built")))
        .expect("the chat example");
    let refused = client
        .request(Method::PUT, "/v1/tenants/slow/component", Bytes::from(chat))
        .await;
    match refused {
        Err(ClientError::Refused {
            status,
            code,
            message,
        }) => {
            assert_eq!(
                (status, code.as_str()),
                (503, "compile_timeout"),
                "{message}"
            );
            assert!(message.contains("1 ms"), "{message}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let shown = client
        .request(Method::GET, "/v1/tenants/slow", Bytes::new())
        .await;
    assert!(
        matches!(shown, Err(ClientError::Refused { status: 404, .. })),
        "nothing was created: {shown:?}"
    );
}
