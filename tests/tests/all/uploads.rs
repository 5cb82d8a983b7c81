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
    let _alone = integration_tests::alone().await;
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
    let _alone = integration_tests::alone().await;
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

/// The compile workers of [`SLOW_COMPILES`] that have not exited, by their job on the
/// command line (a process that has exited has none).
fn slow_workers() -> Vec<rustix::process::Pid> {
    let Ok(processes) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    processes
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let pid = entry.file_name().to_str()?.parse::<i32>().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let text = String::from_utf8_lossy(&cmdline);
            (text.contains("nsbox-compile-worker") && text.contains("\"cpu_ms\":58000"))
                .then(|| rustix::process::Pid::from_raw(pid))
                .flatten()
        })
        .collect()
}

/// Waits (5 s at most) for the process `pid` to exit: its pidfd becomes readable then.
async fn exited(pid: rustix::process::Pid) -> bool {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let Ok(fd) = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()) else {
        return true; // gone already
    };
    let waited = tokio::task::spawn_blocking(move || {
        let mut fds = [PollFd::new(&fd, PollFlags::IN)];
        let five_seconds = Timespec {
            tv_sec: 5,
            tv_nsec: 0,
        };
        poll(&mut fds, Some(&five_seconds)).is_ok_and(|ready| ready == 1)
    });
    waited.await.unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_compilation_per_tenant_and_none_outlives_its_upload() {
    let _alone = integration_tests::alone().await;
    let server = TestServer::start_with(SLOW_COMPILES)
        .await
        .expect("server starts");
    // Two uploads to one tenant at once: the compilation takes about 9 s of CPU and the
    // timeout is 1.5 s, so they overlap whichever claims the tenant first. (The smaller
    // `looping` once stood in for one of them; on an idle machine it compiled in time.)
    let (first, second) = (admin_client(&server), admin_client(&server));
    let (one, other) = tokio::join!(
        upload(&first, "busy", costly("functions")),
        upload(&second, "busy", costly("functions")),
    );
    let mut outcomes = [one, other];
    outcomes.sort_by_key(|(status, _, _)| *status);
    let [(status, code, message), (late, late_code, late_message)] = outcomes;
    // One is refused at once: a compilation of that tenant is under way...
    assert_eq!((status, code.as_str()), (429, "compile_limit"), "{message}");
    assert!(message.contains("one at a time"), "{message}");
    // ...the other times out (the compilation takes seconds)...
    assert_eq!(
        (late, late_code.as_str()),
        (503, "compile_timeout"),
        "{late_message}"
    );
    // ...and its worker is killed with it, not left compiling.
    for pid in slow_workers() {
        assert!(exited(pid).await, "the compile worker outlived its upload");
    }
}
