//! A tenant's actor with the `echo` example, behind a real Socket.IO layer fed by hand
//! and time paused: instances evicted after their idle time and started afresh, and
//! what counts as a restart.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use regex::Regex;

use super::clock::thread_cpu;
use super::{builtin, Limits, Runtime, Tenants};
use crate::config::SocketIoConfig;
use crate::socketio::testing::{settle, Wire};
use crate::socketio::SocketIo;

/// Lets the actor run until `done` holds (a bounded number of turns, no clock).
async fn until(mut done: impl FnMut() -> bool) -> bool {
    for _ in 0..5000 {
        if done() {
            return true;
        }
        settle().await;
    }
    done()
}

/// A runtime, and the built-in example `name` compiled on it.
async fn compiled(name: &str) -> (std::sync::Arc<Runtime>, std::sync::Arc<super::Code>) {
    let runtime = Runtime::new().expect("the engine starts");
    let component = builtin::component(name).expect("built in");
    let code = runtime
        .compile_off_thread(component, None)
        .await
        .expect("compiles");
    (runtime, code)
}

/// A Socket.IO layer serving each of `tenants` at `/<its name>`.
fn serving(tenants: &std::sync::Arc<Tenants>) -> SocketIo {
    let io = SocketIo::new(SocketIoConfig::default());
    tenants.serve_pattern(&io, Regex::new(r"^/(\w+)$").expect("a valid pattern"));
    io
}

/// The example `example` deployed as the one tenant `name`, under `limits`, and served:
/// the registry (kept alive), the tenant's counters and the Socket.IO layer.
async fn one_tenant(
    example: &str,
    name: &str,
    limits: Limits,
) -> (
    std::sync::Arc<Tenants>,
    std::sync::Arc<super::stats::TenantStats>,
    SocketIo,
) {
    let (runtime, code) = compiled(example).await;
    let tenants = Tenants::new(runtime, limits.clone(), crate::kv::memory());
    let slot = tenants.deploy(name, 1, code, limits).await;
    let stats = slot.current().stats().clone();
    let io = serving(&tenants);
    (tenants, stats, io)
}

#[tokio::test]
async fn a_pattern_with_a_prefix_reaches_the_tenant_its_group_names() {
    let (runtime, code) = compiled("echo").await;
    let tenants = Tenants::new(runtime, Limits::default(), crate::kv::memory());
    let slot = tenants.deploy("acme", 1, code, Limits::default()).await;
    let stats = slot.current().stats().clone();
    let io = SocketIo::new(SocketIoConfig::default());
    tenants.serve_pattern(&io, Regex::new(r"^/ws-(\w+)$").expect("a valid pattern"));
    let nobody = Wire::open(&io);
    nobody.send(r#"0/ws-nobody,{"token":"ok"}"#);
    let wire = Wire::open(&io);
    wire.send(r#"0/ws-acme,{"token":"ok"}"#);
    // The middleware's tenant, then on-connection's: acme greets the namespace.
    assert!(
        until(|| stats.sockets.load(Relaxed) == 1).await,
        "joined acme"
    );
    let mut greeted = false;
    for _ in 0..1_000 {
        greeted = (wire.received().await.iter()).any(|p| p.starts_with(r#"2/ws-acme,["hello""#));
        if greeted {
            break;
        }
        settle().await;
    }
    assert!(greeted, "acme's on-connection ran for /ws-acme");
    let refused = nobody.received().await;
    assert!(
        refused
            .iter()
            .any(|p| p.starts_with("4/ws-nobody,") && p.contains("nobody")),
        "{refused:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_idle_instance_is_evicted_and_started_afresh_and_neither_is_a_restart() {
    let idle = Duration::from_secs(300);
    let limits = Limits {
        evict_idle_after: idle,
        ..Limits::default()
    };
    let (tenants, stats, io) = one_tenant("echo", "acme", limits).await;

    let first = Wire::open(&io);
    first.send(r#"0/acme,{"token":"ok"}"#);
    assert!(until(|| stats.sockets.load(Relaxed) == 1).await, "joined");
    assert_eq!(stats.instances.load(Relaxed), 1);
    first
        .session
        .close(crate::engineio::CloseReason::TransportClose);
    assert!(until(|| stats.sockets.load(Relaxed) == 0).await, "left");

    // Just short of the idle time it is still there; past it, gone.
    tokio::time::advance(idle - Duration::from_secs(1)).await;
    settle().await;
    assert_eq!(stats.instances.load(Relaxed), 1, "not before its idle time");
    tokio::time::advance(Duration::from_secs(2)).await;
    assert!(
        until(|| stats.instances.load(Relaxed) == 0).await,
        "evicted"
    );
    assert_eq!(stats.evictions.load(Relaxed), 1);

    let again = Wire::open(&io);
    again.send(r#"0/acme,{"token":"ok"}"#);
    assert!(
        until(|| stats.sockets.load(Relaxed) == 1).await,
        "joined again"
    );
    assert_eq!(stats.instantiations.load(Relaxed), 2, "a fresh instance");
    assert_eq!(stats.restarts(), 0, "an eviction is not a restart");
    // A new version and a change of limits start instances too, and are not restarts.
    tenants.set_limits("acme", Limits::default()).await;
    assert!(
        until(|| stats.instantiations.load(Relaxed) == 3).await,
        "taken over"
    );
    assert_eq!(stats.restarts(), 0);
    assert_eq!(stats.faults.load(Relaxed), 0);
    assert!(again
        .received()
        .await
        .iter()
        .any(|packet| packet.contains("nsbox:redeployed")));
}

/// A tenant no command has reached has no actor (no task, no mailbox): the first
/// connection starts it, and only its own.
#[tokio::test]
async fn a_tenant_gets_its_actor_with_its_first_command() {
    let (runtime, code) = compiled("echo").await;
    let limits = Limits::default();
    let tenants = Tenants::new(runtime, limits.clone(), crate::kv::memory());
    let tasks = || {
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks()
    };
    let before = tasks();
    for i in 0..200 {
        tenants
            .deploy(&format!("quiet{i}"), 1, code.clone(), limits.clone())
            .await;
    }
    let io = serving(&tenants);
    assert_eq!(tasks(), before, "200 tenants deployed, no actor started");
    let stats = tenants
        .get("quiet7")
        .expect("deployed")
        .current()
        .stats()
        .clone();
    let wire = Wire::open(&io);
    wire.send(r#"0/quiet7,{"token":"ok"}"#);
    assert!(until(|| stats.sockets.load(Relaxed) == 1).await, "joined");
    assert_eq!(tasks(), before + 1, "the one reached has its actor");
}

/// The limits of `bench/nsbox.toml`: one tenant takes all the load.
fn bench_limits() -> Limits {
    Limits {
        events_per_second_per_socket: 1_000_000,
        events_per_second: 10_000_000,
        cpu_per_second: Duration::from_secs(1),
        ..Limits::default()
    }
}

/// Sockets the measuring tests feed.
const SOCKETS: usize = 100;

/// The `bench` example as tenant `t1` under the benchmark's limits, its counters, and
/// [`SOCKETS`] connections to it (not yet joined); the first part keeps it served.
async fn bench_sockets() -> (
    (std::sync::Arc<Tenants>, SocketIo),
    std::sync::Arc<super::stats::TenantStats>,
    Vec<Wire>,
) {
    let (tenants, stats, io) = one_tenant("bench", "t1", bench_limits()).await;
    let wires = (0..SOCKETS).map(|_| Wire::open(&io)).collect();
    ((tenants, io), stats, wires)
}

/// `wires` joined to `/t1` with the token the `bench` example asks for, each socket's
/// CONNECT answered (the sockets' count moves a turn before it is queued).
async fn join_all(wires: &[Wire], stats: &super::stats::TenantStats) {
    for wire in wires {
        wire.send(r#"0/t1,{"token":"ok"}"#);
    }
    assert!(until(|| stats.sockets.load(Relaxed) == wires.len() as u64).await);
    for wire in wires {
        let mut connected = false;
        for _ in 0..1_000 {
            connected = (wire.received().await.iter()).any(|p| p.starts_with("0/t1,"));
            if connected {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert!(connected, "every socket joined");
    }
}

/// Runs `round` `rounds` times, after a tenth as many to warm up, and prints what the
/// thread spent per operation (`SOCKETS` a round): its CPU and its allocations.
async fn measure(name: &str, per: &str, rounds: usize, mut round: impl AsyncFnMut(usize)) {
    let (mut cpu, mut allocations) = (Duration::ZERO, 0);
    for n in 0..rounds + rounds / 10 {
        let (started, allocated) = (thread_cpu(), crate::test_allocator::allocations());
        round(n).await;
        if n >= rounds / 10 {
            cpu += thread_cpu().saturating_sub(started);
            allocations += crate::test_allocator::allocations() - allocated;
        }
    }
    let operations = (rounds * SOCKETS) as f64;
    let micros = cpu.as_secs_f64() * 1e6 / operations;
    let allocations = allocations as f64 / operations;
    println!(
        "{name}: {micros:.2} µs of the thread's CPU and {allocations:.1} allocations per {per}"
    );
}

/// What an event answered with an ack costs the server outside the kernel: Socket.IO's
/// decoding, the limits, the actor, the guest's call (the `bench` example) and the
/// answer queued for the client, with no network in between. The end-to-end benchmark
/// sees this part behind the kernel's three quarters of the CPU and its noise; this
/// measures it alone, by the thread's CPU clock. A measuring tool, run on its own:
/// `cargo test --release -p nsbox --lib -- --ignored --nocapture event_cost`.
#[tokio::test(flavor = "current_thread")]
#[ignore = "a measurement: run it alone, in release"]
async fn event_cost() {
    const ROUNDS: usize = 10_000;
    let (_serving, stats, wires) = bench_sockets().await;
    join_all(&wires, &stats).await;
    let payload = "x".repeat(64);
    let event = format!(r#"2/t1,7["echo","{payload}"]"#);
    let ack = format!(r#"3/t1,7["{payload}"]"#);
    measure("event_cost", "event answered", ROUNDS, async |round| {
        for wire in &wires {
            wire.send(&event);
        }
        let mut answered = 0;
        for _ in 0..1_000 {
            tokio::task::yield_now().await;
            for wire in &wires {
                for packet in wire.received().await {
                    assert_eq!(packet, ack, "round {round}: not the echo's answer");
                    answered += 1;
                }
            }
            if answered == SOCKETS {
                break;
            }
        }
        assert_eq!(answered, SOCKETS, "every event answered once");
    })
    .await;
}

/// What a socket's visit costs the server outside the kernel and the Engine.IO
/// session: its CONNECT to the tenant's namespace (the middleware's call and
/// `on-connection`'s), the answer queued, its DISCONNECT and `on-disconnect`'s call.
/// The benchmark's connects are this plus the HTTP upgrade and the WebSocket, which
/// are not the sandbox's. Run as `event_cost` is.
#[tokio::test(flavor = "current_thread")]
#[ignore = "a measurement: run it alone, in release"]
async fn connect_cost() {
    const ROUNDS: usize = 2_000;
    let (_serving, stats, wires) = bench_sockets().await;
    let what = "socket joined and gone";
    measure("connect_cost", what, ROUNDS, async |round| {
        join_all(&wires, &stats).await;
        for wire in &wires {
            wire.send("1/t1,");
        }
        let left = until(|| stats.sockets.load(Relaxed) == 0).await;
        assert!(left, "round {round}: every socket left");
    })
    .await;
    let visits = stats.connects_accepted.load(Relaxed);
    assert_eq!(visits, ((ROUNDS + ROUNDS / 10) * SOCKETS) as u64);
}
