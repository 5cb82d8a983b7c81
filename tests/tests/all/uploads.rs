//! What an upload may cost the host: a compilation that runs past `compile_timeout_ms`
//! or the compile worker's memory is refused with a code, and nothing changes; one
//! compilation per tenant at a time, and none outlives its upload.

use bytes::Bytes;
use http::Method;
use integration_tests::{examples_dir, forged, TestServer, ADMIN_TOKEN};
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

/// Compiles with little memory, and little CPU for what takes long.
const SMALL_COMPILER: &str = r#"
[compile]
memory_bytes = 134217728

[tenants.t1]
component = "builtin:echo"
"#;

fn costly(name: &str) -> Bytes {
    let (_, fields) = forged::costly_components()
        .into_iter()
        .find(|(n, _)| *n == name)
        .expect("a costly component of that name");
    Bytes::from(forged::component(&fields).expect("a component"))
}

async fn upload(client: &AdminClient, tenant: &str, bytes: Bytes) -> (u16, String, String) {
    let path = format!("/v1/tenants/{tenant}/component");
    match client.request(Method::PUT, &path, bytes).await {
        Err(ClientError::Refused {
            status,
            code,
            message,
        }) => (status, code, message),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn admin_client(server: &TestServer) -> AdminClient {
    let admin = server.admin.expect("an admin API");
    AdminClient::new(&format!("http://{admin}"), Some(ADMIN_TOKEN.into())).expect("a client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compilation_past_its_memory_is_refused() {
    let server = TestServer::start_with(SMALL_COMPILER)
        .await
        .expect("server starts");
    let client = admin_client(&server);
    // 99,000 functions need about 470 MB to compile; the worker has 128 MiB.
    let (status, code, message) = upload(&client, "big", costly("functions")).await;
    assert_eq!((status, code.as_str()), (422, "compile_limit"), "{message}");
    assert!(message.contains("134217728 bytes of memory"), "{message}");
    // A component that fits compiles under the same limits.
    let echo = std::fs::read(format!("{}/echo.wasm", examples_dir().expect("built")))
        .expect("the echo example");
    let path = "/v1/tenants/small/component";
    let deployed = client.request(Method::PUT, path, Bytes::from(echo)).await;
    assert!(deployed.is_ok(), "{deployed:?}");
}

/// A compile timeout of 1.5 s, and a CPU limit this test's workers are told apart by.
const SLOW_COMPILES: &str = r#"
compile_timeout_ms = 1500

[compile]
cpu_ms = 58000

[tenants.t1]
component = "builtin:echo"
"#;

/// The compile workers of [`SLOW_COMPILES`] alive now (not yet exited), by their job
/// on the command line.
fn slow_workers() -> usize {
    let Ok(processes) = std::fs::read_dir("/proc") else {
        return 0;
    };
    processes
        .filter_map(|entry| std::fs::read(entry.ok()?.path().join("cmdline")).ok())
        .filter(|cmdline| {
            let text = String::from_utf8_lossy(cmdline);
            text.contains("nsbox-compile-worker") && text.contains("\"cpu_ms\":58000")
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_compilation_per_tenant_and_none_outlives_its_upload() {
    let server = TestServer::start_with(SLOW_COMPILES)
        .await
        .expect("server starts");
    let client = admin_client(&server);
    let first = {
        let client = admin_client(&server);
        tokio::spawn(async move { upload(&client, "busy", costly("functions")).await })
    };
    // The first upload's worker is running (a child process, not a thread of this one).
    let mut tries = 0;
    while slow_workers() == 0 {
        tries += 1;
        assert!(tries < 500, "no compile worker started");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // A second upload to the same tenant is refused at once...
    let (status, code, message) = upload(&client, "busy", costly("looping")).await;
    assert_eq!((status, code.as_str()), (429, "compile_limit"), "{message}");
    assert!(message.contains("one at a time"), "{message}");
    // ...the first times out (the compilation takes seconds)...
    let (status, code, message) = first.await.expect("the first upload");
    assert_eq!(
        (status, code.as_str()),
        (503, "compile_timeout"),
        "{message}"
    );
    // ...and its worker is killed with it, not left compiling.
    let mut tries = 0;
    while slow_workers() > 0 {
        tries += 1;
        assert!(tries < 500, "the compile worker outlived its upload");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}
