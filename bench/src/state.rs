//! `--state`: what nsbox's stateful tenants cost (issue 14): storage from a tenant call
//! against the same store used natively, a timer-driven broadcast, and the echo path of
//! the `nsbox:tenant@0.2` contract against a component built for 0.1.0.

use std::path::Path;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use nsbox::kv::{Backend, Op, Quota, SqliteStore};
use tokio::task::JoinSet;

use crate::metrics;
use crate::scenario::{self, Call, Outcome, Target, PAYLOAD};
use crate::servers::{Peer, ProcMeter, Programs, Run, Running};

/// Closed-loop clients of each call scenario.
pub(crate) const CLIENTS: usize = 100;
/// Receivers of the timer-driven broadcast, and its period.
const RECEIVERS: usize = 1000;
const TICK_MS: u64 = 10;

/// One measured line: a rate, latencies and what the CPUs spent.
#[derive(Debug, Clone, Default)]
pub(crate) struct Line {
    pub(crate) rate: f64,
    pub(crate) p50: f64,
    pub(crate) p99: f64,
    /// Server CPU per operation, in microseconds (none for the native store).
    pub(crate) cpu_us: Option<f64>,
    /// CPU per call inside the tenant (guest code and the host functions it called),
    /// in microseconds, from nsbox's own histogram: what the contract itself costs,
    /// whatever the load generator could do.
    pub(crate) tenant_us: Option<f64>,
    /// How busy the load generator's core was (0 to 1).
    pub(crate) generator: f64,
}

impl Line {
    pub(crate) fn of(outcome: &Outcome, spent: (f64, f64), server: bool) -> Line {
        let seconds = outcome.window.as_secs_f64().max(1e-9);
        Line {
            rate: outcome.rate(),
            p50: outcome.latency_ms(0.5).unwrap_or(0.0),
            p99: outcome.latency_ms(0.99).unwrap_or(0.0),
            cpu_us: server.then(|| spent.0 * 1e6 / (outcome.ops.max(1) as f64)),
            tenant_us: None,
            generator: spent.1 / seconds,
        }
    }
}

/// The scenarios, in the report's order: (name, what it measures).
const ROWS: [(&str, &str); 9] = [
    ("echo, 0.2.1", "echo with ack, `echo` example built for nsbox:tenant@0.2.1"),
    ("echo, 0.1.0", "the same built for nsbox:tenant@0.1.0 (`tests/fixtures/echo-0.1.0.wasm`)"),
    ("set through a tenant", "`store` (key, 64-byte value): one storage set per event, acked"),
    ("get through a tenant", "`load` (key): one storage get per event, acked"),
    ("set, native", "the same SQLite store in this process, `Op::Set`, 100 tasks"),
    ("get, native", "the same, `Op::Get`"),
    ("set, native, one at a time", "`Op::Set` from one task: as one tenant's calls reach it"),
    ("get, native, one at a time", "`Op::Get` from one task"),
    ("timer broadcast", "`tick` every 10 ms to 1,000 sockets, no client traffic (latency: gaps between one socket's ticks)"),
];

/// Runs the state benchmark; returns its section of the report.
/// `legacy_echo`: the echo example as built for `nsbox:tenant@0.1.0`.
pub async fn run(run: &Run<'_>, legacy_echo: &Path) -> Result<String> {
    let root = run.data_dir.join("state");
    std::fs::create_dir_all(root.join("bench"))?;
    let config = format!(
        "admin_token = \"{}\"\n\
         [limits]\n\
         events_per_second_per_socket = 1000000\n\
         events_per_second = 10000000\n\
         cpu_per_second_ms = 1000\n\
         [tenants.cur]\ncomponent = \"builtin:echo\"\n\
         [tenants.legacy]\ncomponent = {:?}\n\
         [tenants.ticker]\ncomponent = \"builtin:bench\"\n",
        crate::admin::TOKEN,
        legacy_echo.display().to_string()
    );
    std::fs::write(root.join("bench/nsbox.toml"), config)?;
    let programs = Programs {
        root: root.clone(),
        ..run.programs.clone()
    };
    let mut lines: Vec<Vec<Line>> = vec![Vec::new(); ROWS.len()];
    let mut port = 4700u16;
    for round in 0..run.rounds {
        port += 2;
        eprintln!("state round {} of {}", round + 1, run.rounds);
        let store = root.join(format!("store-{round}"));
        let server = Running::start(Peer::Nsbox, &programs, port, run.server_core, &store)?;
        let target = Target::new(format!("ws://127.0.0.1:{port}"));
        let echo = Call {
            event: "echo",
            args: PAYLOAD,
        };
        // The two contracts in alternating order, round by round.
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for row in order {
            let tenant = if row == 0 { "cur" } else { "legacy" };
            lines[row].push(measure(&server, tenant, &echo, run).await?);
        }
        let set_args = format!("\"bench\",{PAYLOAD}");
        let set = Call {
            event: "store",
            args: &set_args,
        };
        let get = Call {
            event: "load",
            args: "\"bench\"",
        };
        lines[2].push(measure(&server, "cur", &set, run).await?);
        lines[3].push(measure(&server, "cur", &get, run).await?);
        let native = SqliteStore::open(&root.join(format!("native-{round}.sqlite3")), false)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let native: Arc<dyn Backend> = Arc::new(native);
        let value = PAYLOAD.as_bytes().to_vec();
        let (set, get) = (Op::Set("bench".into(), value), Op::Get("bench".into()));
        lines[4].push(native_loop(&native, &set, CLIENTS, run).await?);
        lines[5].push(native_loop(&native, &get, CLIENTS, run).await?);
        lines[6].push(native_loop(&native, &set, 1, run).await?);
        lines[7].push(native_loop(&native, &get, 1, run).await?);
        let mut meter = ProcMeter::new(&server);
        let ticks = scenario::ticks(
            &target.on("/ticker"),
            RECEIVERS,
            TICK_MS,
            run.warmup,
            run.window,
            &mut meter,
        )
        .await?;
        lines[8].push(Line::of(&ticks, meter.spent, true));
        drop(server);
    }
    Ok(report(&lines, run))
}

/// `call` from [`CLIENTS`] clients of `tenant`'s namespace.
pub(crate) async fn measure(
    server: &Running,
    tenant: &str,
    call: &Call<'_>,
    run: &Run<'_>,
) -> Result<Line> {
    let target = Target::new(format!("ws://127.0.0.1:{}", server.port)).on(&format!("/{tenant}"));
    let admin = format!("127.0.0.1:{}", server.port + 1);
    let mut meter = ProcMeter::new(server);
    let before = metrics::tenant_calls(&admin, tenant).await?;
    let outcome =
        scenario::calls(&target, CLIENTS, call, run.warmup, run.window, &mut meter).await?;
    let after = metrics::tenant_calls(&admin, tenant).await?;
    let calls = (after.1 - before.1).max(1.0);
    Ok(Line {
        tenant_us: Some((after.0 - before.0) * 1e6 / calls),
        ..Line::of(&outcome, meter.spent, true)
    })
}

/// `op` in a closed loop from `tasks` tasks on the store, as the host's tenants reach
/// it, without Socket.IO or Wasm in between.
async fn native_loop(
    store: &Arc<dyn Backend>,
    op: &Op,
    tasks: usize,
    run: &Run<'_>,
) -> Result<Line> {
    const MEASURING: u8 = 1;
    const STOPPED: u8 = 2;
    let phase = Arc::new(AtomicU8::new(0));
    let mut running = JoinSet::new();
    for _ in 0..tasks {
        let (store, op, phase) = (store.clone(), op.clone(), phase.clone());
        running.spawn(async move {
            let mut latencies = Vec::new();
            while phase.load(Ordering::Relaxed) != STOPPED {
                let started = Instant::now();
                store
                    .run("bench", Quota::UNLIMITED, op.clone())
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                if phase.load(Ordering::Relaxed) == MEASURING {
                    latencies.push(started.elapsed().as_micros() as u32);
                }
                // An operation that ran inline never made this task wait: let the others run.
                tokio::task::yield_now().await;
            }
            anyhow::Ok(latencies)
        });
    }
    tokio::time::sleep(run.warmup).await;
    let cpu = crate::servers::cpu_seconds_of("/proc/self/stat");
    phase.store(MEASURING, Ordering::SeqCst);
    let started = Instant::now();
    tokio::time::sleep(run.window).await;
    phase.store(STOPPED, Ordering::SeqCst);
    let window = started.elapsed();
    let spent = crate::servers::cpu_seconds_of("/proc/self/stat") - cpu;
    let mut outcome = Outcome {
        window,
        ..Outcome::default()
    };
    while let Some(done) = running.join_next().await {
        outcome.latencies_us.extend(done??);
    }
    outcome.ops = outcome.latencies_us.len() as u64;
    Ok(Line::of(&outcome, (0.0, spent), false))
}

pub(crate) fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.collect();
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

fn report(lines: &[Vec<Line>], run: &Run<'_>) -> String {
    let mut out = format!(
        "\n### Stateful tenants (nsbox only)\n\nMedians of {} rounds, {:.0} s per scenario; {CLIENTS} closed-loop clients for the calls. \
         A generator core busier than 70% is marked: that rate measures the generator. \
         The native store runs in the load generator's process (its CPU is in the last column).\n\n\
         The tenant's CPU per call is nsbox's own histogram of the time spent in the guest \
         (its code and the host functions it called), read from the admin API's metrics.\n\n\
         | scenario | what | ops/s | p50 ms | p99 ms | server CPU µs/op | tenant CPU µs/call | generator core |\n|---|---|---|---|---|---|---|---|\n",
        run.rounds,
        run.window.as_secs_f64()
    );
    let medians: Vec<Line> = lines
        .iter()
        .map(|runs| Line {
            rate: median(runs.iter().map(|l| l.rate)),
            p50: median(runs.iter().map(|l| l.p50)),
            p99: median(runs.iter().map(|l| l.p99)),
            cpu_us: runs
                .iter()
                .all(|l| l.cpu_us.is_some())
                .then(|| median(runs.iter().filter_map(|l| l.cpu_us))),
            tenant_us: runs
                .iter()
                .all(|l| l.tenant_us.is_some())
                .then(|| median(runs.iter().filter_map(|l| l.tenant_us))),
            generator: median(runs.iter().map(|l| l.generator)),
        })
        .collect();
    for ((name, what), line) in ROWS.iter().zip(&medians) {
        let bound = if line.generator > 0.7 {
            " (generator-bound)"
        } else {
            ""
        };
        out += &format!(
            "| {name} | {what} | {:.0}{bound} | {:.2} | {:.2} | {} | {} | {:.0}% |\n",
            line.rate,
            line.p50,
            line.p99,
            micros(line.cpu_us),
            micros(line.tenant_us),
            line.generator * 100.0
        );
    }
    if let [current, legacy, ..] = medians.as_slice() {
        out += &format!(
            "\nThe 0.2.1 contract against 0.1.0 on the echo path: {:.2}× the acks/s, {:.2}× the server CPU per ack, \
             {:.2}× the tenant's CPU per call.\n",
            current.rate / legacy.rate.max(1e-9),
            ratio(current.cpu_us, legacy.cpu_us),
            ratio(current.tenant_us, legacy.tenant_us),
        );
    }
    out
}

pub(crate) fn micros(value: Option<f64>) -> String {
    value.map_or("–".to_owned(), |v| format!("{v:.1}"))
}

pub(crate) fn ratio(a: Option<f64>, b: Option<f64>) -> f64 {
    a.unwrap_or(0.0) / b.unwrap_or(0.0).max(1e-9)
}
