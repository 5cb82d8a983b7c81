//! A short run of every benchmark scenario, so the benchmark keeps working: against
//! nsbox in-process with the `bench` tenant, and against the Node peer's script. No
//! timing is asserted; only that each scenario completes operations.

use std::path::Path;
use std::time::Duration;

use integration_tests::{npm_ci, TestServer};
use nsbox_bench::report::GENERATOR_BOUND;
use nsbox_bench::scenario::{self, Held, NoMeter, Outcome, Target};
use nsbox_bench::servers::ThreadMeter;

const BENCH_TENANT: &str = r#"
# Pings often enough for the idle clients to answer some while the scenarios run.
ping_interval_ms = 200

[limits]
events_per_second_per_socket = 1000000

[tenants.t1]
component = "builtin:bench"

# The `--state` benchmark's storage calls.
[tenants.cur]
component = "builtin:echo"

[tenants.spin]
component = "hostile_spin.wasm"

[tenants.crash]
component = "hostile_panic.wasm"

[tenants.flood]
component = "hostile_flood.wasm"

[tenants.hoard]
component = "hostile_hoard.wasm"
"#;

const SHORT: Duration = Duration::from_millis(300);

/// Every scenario's outcome, and what the idle clients held meanwhile did.
async fn every_scenario(target: &Target) -> (Vec<(&'static str, Outcome)>, Held) {
    let mut meter = NoMeter;
    // Idle clients, held while the other scenarios run; half from another address, as
    // the benchmark's do past one address's ports.
    let elsewhere = target.from(std::net::Ipv4Addr::new(127, 0, 0, 2).into());
    let idle = scenario::Idle::connect(&[target.clone(), elsewhere], 10, 20)
        .await
        .expect("idle clients connect");
    assert_eq!(idle.len(), 20);
    idle.measure();
    let connects = scenario::connects(target, 2, SHORT, SHORT, &mut meter).await;
    let echo = scenario::echo(target, 5, SHORT, SHORT, &mut meter).await;
    let fanout = scenario::broadcast(target, 20, SHORT, SHORT, &mut meter).await;
    let held = idle.finish().await.expect("the idle clients end");
    assert_eq!(held.lost, 0, "no idle connection lost");
    let outcomes = vec![
        ("connects", connects.expect("connects run")),
        ("echo", echo.expect("echo runs")),
        ("broadcast", fanout.expect("broadcast runs")),
    ];
    (outcomes, held)
}

fn check(peer: &str, outcomes: &[(&str, Outcome)]) {
    for (name, outcome) in outcomes {
        assert!(outcome.ops > 0, "{peer} {name}: nothing completed");
        if *name != "broadcast" {
            assert!(
                outcome.latency_ms(0.99).is_some(),
                "{peer} {name}: no latencies"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_scenarios_run_against_nsbox_and_beside_hostile_tenants() {
    let _alone = integration_tests::alone().await;
    let server = TestServer::start_with(BENCH_TENANT)
        .await
        .expect("server starts");
    let target = Target::new(format!("ws://{}", server.addr));
    let (outcomes, held) = every_scenario(&target).await;
    check("nsbox", &outcomes);
    // Pinged every 200 ms (the configuration above) while the scenarios ran.
    assert_eq!(
        held.pinged, 20,
        "every idle client answered a ping: {held:?}"
    );
    // The `--state` benchmark's scenarios: a tenant's own timer broadcast, storage calls.
    let ticks = scenario::ticks(&target, 5, 10, SHORT, SHORT, &mut NoMeter)
        .await
        .expect("the timer broadcast runs");
    assert!(ticks.ops > 0, "the ticks reached the receivers");
    let store = scenario::Call {
        event: "store",
        args: "\"k\",1",
    };
    let stored = scenario::calls(&target.on("/cur"), 5, &store, SHORT, SHORT, &mut NoMeter)
        .await
        .expect("storage calls run");
    // The tenant's CPU per call, as the state benchmark reads it from the admin API.
    let admin = server.admin.expect("an admin listener").to_string();
    let (cpu, calls) = nsbox_bench::metrics::tenant_calls(&admin, "cur")
        .await
        .expect("the metrics are read");
    assert!(
        calls >= stored.ops as f64 && cpu > 0.0,
        "{calls} calls and {cpu} s counted for {} acks",
        stored.ops
    );
    check("nsbox", &[("store", stored)]);

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let attacks = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut attackers = nsbox_bench::hostile::start(&target.base, 1, stop.clone(), attacks.clone());
    let echo = scenario::echo(&target, 5, SHORT, SHORT, &mut NoMeter)
        .await
        .expect("echo runs under attack");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    attackers.abort_all();
    assert!(
        echo.ops > 0,
        "the well-behaved tenant answered under attack"
    );
    assert!(
        attacks.load(std::sync::atomic::Ordering::Relaxed) > 0,
        "the hostile clients attacked"
    );
}

/// Runs the echo scenario with 1,000 clients on a thread of its own, as the benchmark runs
/// its generator on a core of its own; the outcome and the share of its core it used.
fn echo_on_own_thread(target: Target) -> (Outcome, f64) {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let mut meter = ThreadMeter::default();
        let window = Duration::from_secs(1);
        let echo = runtime
            .block_on(scenario::echo(&target, 1000, SHORT, window, &mut meter))
            .expect("echo runs");
        (echo, meter.share)
    })
    .join()
    .expect("the generator's thread")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_generator_has_headroom_against_nsbox_and_the_raw_ceiling_runs() {
    let _alone = integration_tests::alone().await;
    let server = TestServer::start_with(BENCH_TENANT)
        .await
        .expect("server starts");
    let target = Target::new(format!("ws://{}", server.addr));
    let (echo, share) = echo_on_own_thread(target);
    eprintln!(
        "generator: {:.0}% of its core, {:.0} acks/s",
        share * 100.0,
        echo.rate()
    );
    assert!(echo.ops > 0, "nothing completed");
    assert!(
        share < GENERATOR_BOUND,
        "the generator used {:.0}% of its core for {} acks/s: it measured itself",
        share * 100.0,
        echo.rate()
    );

    // The ceiling: the same scenarios against a bare WebSocket echo.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let raw = Target::raw(format!(
        "ws://{}",
        listener.local_addr().expect("an address")
    ));
    let serving = tokio::spawn(nsbox_bench::raw_echo::serve(listener));
    let mut meter = NoMeter;
    let connects = scenario::connects(&raw, 2, SHORT, SHORT, &mut meter).await;
    let echo = scenario::echo(&raw, 5, SHORT, SHORT, &mut meter).await;
    check(
        "raw",
        &[
            ("connects", connects.expect("connects to the raw echo")),
            ("echo", echo.expect("echo from the raw echo")),
        ],
    );
    serving.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_scenario_runs_across_two_nsbox_nodes() {
    let _alone = integration_tests::alone().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let redis = nsbox_bench::cluster::Redis::start(port, None).expect("redis-server starts");
    let config = format!("{BENCH_TENANT}\n[cluster]\nredis_url = \"{}\"\n", redis.url);
    let a = TestServer::start_with(&config)
        .await
        .expect("node A starts");
    let b = TestServer::start_with(&config)
        .await
        .expect("node B starts");
    let from = Target::new(format!("ws://{}", a.addr));
    let to = Target::new(format!("ws://{}", b.addr));
    let across = scenario::broadcast_across(&from, &to, 5, SHORT, SHORT, &mut NoMeter)
        .await
        .expect("broadcasts cross from A to B");
    assert!(across.ops > 0, "deliveries at B");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_scenarios_run_against_the_node_peer() {
    let _alone = integration_tests::alone().await;
    let node_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/node");
    npm_ci(&node_dir, "socket.io")
        .await
        .expect("npm packages of bench/node");
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        probe.local_addr().expect("an address").port()
    };
    let mut node = tokio::process::Command::new("node")
        .arg("server.mjs")
        .arg(port.to_string())
        .current_dir(&node_dir)
        .kill_on_drop(true)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("node starts");
    let mut listening = false;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            listening = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(listening, "the Node peer listens");
    let target = Target::new(format!("ws://127.0.0.1:{port}"));
    check("node", &every_scenario(&target).await.0);
    let _ = node.kill().await;
}

/// `count` tenants `t0`.. (the `bench` example), evicted soon after their clients leave:
/// the many-tenants run, small.
fn few_tenants(count: usize) -> String {
    let mut config = String::from("[limits]\nevict_idle_after_ms = 200\n");
    for i in 0..count {
        config += &format!("[tenants.t{i}]\ncomponent = \"builtin:bench\"\n");
    }
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_many_tenants_run_joins_waits_for_eviction_and_joins_again() {
    let _alone = integration_tests::alone().await;
    use nsbox_bench::tenants;
    let server = TestServer::start_with(&few_tenants(5))
        .await
        .expect("server starts");
    let base = format!("ws://{}", server.addr);
    let admin = server.admin.expect("an admin API").to_string();
    let first = tenants::join_each(&base, 5).await;
    assert_eq!(first.clients.len(), 5, "{}", first.stopped);
    assert_eq!(
        tenants::instances_running(&admin).await.expect("metrics"),
        5
    );
    drop(first);
    let step = Duration::from_millis(100);
    tenants::until_all_evicted(&admin, step, Duration::from_secs(10))
        .await
        .expect("every instance evicted");
    let listing = tenants::list_latencies(&admin, integration_tests::ADMIN_TOKEN, 5)
        .await
        .expect("the tenant list answers");
    let row = listing.lines().last().expect("a row");
    assert!(row.starts_with("| ms, 5 tenants |"), "{listing}");
    assert_eq!(row.matches('|').count(), 7, "{listing}");
    let again = tenants::join_each(&base, 5).await;
    assert_eq!(again.clients.len(), 5, "{}", again.stopped);
    assert!(again.quantile_ms(0.99) > 0.0);
    assert_eq!(
        tenants::instances_running(&admin).await.expect("metrics"),
        5
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_benchmark_configuration_starts() {
    let _alone = integration_tests::alone().await;
    // `bash bench/run` starts the nsbox binary on this file: what the binary would refuse
    // (an operator token too short, an unknown key) fails here instead.
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/nsbox.toml");
    let text = std::fs::read_to_string(&path).expect("bench/nsbox.toml");
    let settings = nsbox::settings::Settings::parse(&text, path.parent().expect("a directory"))
        .expect("bench/nsbox.toml parses");
    let token = settings.admin_token.clone().expect("an operator token");
    nsbox::store::tokens::check_operator_token(&token).expect("a usable operator token");
    let server = TestServer::start_with(&text).await.expect("server starts");
    drop(server);
}
