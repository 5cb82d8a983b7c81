//! `--guests`: what a tenant written in JavaScript or Python costs against the same echo
//! in Rust (issue 16): component size, upload-to-live (validation and compile, then
//! again for the same bytes with the compiled cache), a restart with and without the
//! cache, the first connection (the instance starts), its memory, and echo from 100
//! clients with the server's CPU per ack; beside Node's socket.io running the same echo
//! handler natively, in the same run.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};

use crate::admin::{body, get, put, TOKEN};
use crate::client::Client;
use crate::scenario::{self, Call, Target, AUTH, PAYLOAD};
use crate::servers::{Peer, ProcMeter, Programs, Run, Running};
use crate::state::{self, median, micros, Line, CLIENTS};

/// What one language's echo cost in one round.
#[derive(Debug, Clone, Default)]
struct Costs {
    upload_ms: f64,
    upload_cached_ms: f64,
    restart_cached_ms: f64,
    restart_cold_ms: f64,
    first_connection_ms: f64,
    memory_mib: f64,
    echo: Line,
}

/// Runs the guests benchmark over `components` (language, the echo component); returns
/// its section of the report.
pub async fn run(run: &Run<'_>, components: &[(&str, PathBuf)]) -> Result<String> {
    let root = run.data_dir.join("guests");
    std::fs::create_dir_all(root.join("bench"))?;
    std::fs::write(
        root.join("bench/nsbox.toml"),
        format!(
            "admin_token = \"{TOKEN}\"\n[limits]\nevents_per_second_per_socket = 1000000\n\
             events_per_second = 10000000\ncpu_per_second_ms = 1000\n"
        ),
    )?;
    let programs = Programs {
        root: root.clone(),
        ..run.programs.clone()
    };
    let mut costs: Vec<Vec<Costs>> = vec![Vec::new(); components.len()];
    let mut node: Vec<Line> = Vec::new();
    let echo = Call {
        event: "echo",
        args: PAYLOAD,
    };
    let mut port = 4800u16;
    for round in 0..run.rounds {
        eprintln!("guests round {} of {}", round + 1, run.rounds);
        // The languages in a rotating order, round by round, each on a server of its own
        // (so that a restart loads only its tenants).
        for i in 0..components.len() {
            let at = (i + round) % components.len();
            let (language, path) = &components[at];
            port += 4;
            let store = root.join(format!("store-{round}-{language}"));
            let server = Running::start(Peer::Nsbox, &programs, port, run.server_core, &store)?;
            let mut measured = deploy(&server, language, path).await?;
            measured.echo = state::measure(&server, language, &echo, run).await?;
            drop(server);
            measured.restart_cached_ms = restart(&programs, port, run, &store, language).await?;
            let _ = std::fs::remove_dir_all(store.join("cache"));
            measured.restart_cold_ms = restart(&programs, port, run, &store, language).await?;
            costs[at].push(measured);
        }
        port += 4;
        let store = root.join(format!("store-{round}-node"));
        let node_server = Running::start(Peer::Node, run.programs, port, run.server_core, &store)?;
        let target = Target::new(format!("ws://127.0.0.1:{}", node_server.port)).on("/t1");
        let mut meter = ProcMeter::new(&node_server);
        let outcome =
            scenario::calls(&target, CLIENTS, &echo, run.warmup, run.window, &mut meter).await?;
        node.push(Line::of(&outcome, meter.spent, true));
    }
    Ok(report(components, &costs, &node, run))
}

/// Starts nsbox again on `store` and joins `language`'s tenant: milliseconds from the
/// process's start until the client is in.
async fn restart(
    programs: &Programs,
    port: u16,
    run: &Run<'_>,
    store: &Path,
    language: &str,
) -> Result<f64> {
    let started = Instant::now();
    let server = Running::start(Peer::Nsbox, programs, port, run.server_core, store)?;
    let base = format!("ws://127.0.0.1:{}", server.port);
    let client = Client::connect(&base, &format!("/{language}"), AUTH).await?;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    client.close().await;
    Ok(ms)
}

/// Uploads `path` as the tenant `language` and again as `language-cached` (the same
/// bytes: the compiled cache answers), then joins it once (its instance starts).
async fn deploy(server: &Running, language: &str, path: &Path) -> Result<Costs> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("reading {} (build it first)", path.display()))?;
    let admin = format!("127.0.0.1:{}", server.port + 1);
    let started = Instant::now();
    put(
        &admin,
        TOKEN,
        &format!("/v1/tenants/{language}/component"),
        &bytes,
    )
    .await?;
    let upload_ms = started.elapsed().as_secs_f64() * 1000.0;
    let started = Instant::now();
    put(
        &admin,
        TOKEN,
        &format!("/v1/tenants/{language}_cached/component"),
        &bytes,
    )
    .await?;
    let upload_cached_ms = started.elapsed().as_secs_f64() * 1000.0;
    let started = Instant::now();
    let base = format!("ws://127.0.0.1:{}", server.port);
    let client = Client::connect(&base, &format!("/{language}"), AUTH).await?;
    let first_connection_ms = started.elapsed().as_secs_f64() * 1000.0;
    let shown: serde_json::Value = serde_json::from_str(body(
        &get(&admin, TOKEN, &format!("/v1/tenants/{language}")).await?,
    ))?;
    client.close().await;
    Ok(Costs {
        upload_ms,
        upload_cached_ms,
        first_connection_ms,
        memory_mib: shown["memory_bytes"].as_f64().unwrap_or(0.0) / f64::from(1 << 20),
        ..Costs::default()
    })
}

/// One request to the admin API, its whole response (HTTP/1.1, closed after).
fn report(
    components: &[(&str, PathBuf)],
    costs: &[Vec<Costs>],
    node: &[Line],
    run: &Run<'_>,
) -> String {
    let mut out = format!(
        "\n### Tenants in JavaScript and Python (nsbox) against the same echo in Rust, and Node\n\n\
         Medians of {} rounds. Each language's echo example uploaded to a fresh nsbox through the admin API \
         (validated and compiled in the compile worker), then the same bytes as another tenant (the compiled \
         cache answers); the first connection starts its instance; memory is the instance's linear memory. \
         Restarts: from starting the process (on the data of that language's tenants only) until a client has \
         joined its tenant, with the compiled cache and with it deleted. Echo: {CLIENTS} closed-loop clients, {:.0} s, 64-byte payloads; Node's socket.io \
         4.8.4 runs the same echo handler natively (`bench/node/server.mjs`).\n\n\
         | tenant | size | upload to live | again, cached | restart, cached / cold | first connection | instance memory | echo acks/s | p99 ms | server CPU µs/ack | tenant CPU µs/call | generator core |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|\n",
        run.rounds,
        run.window.as_secs_f64()
    );
    let m = |values: &[Costs], f: fn(&Costs) -> f64| median(values.iter().map(f));
    for ((language, path), runs) in components.iter().zip(costs) {
        let size = std::fs::metadata(path).map_or(0, |m| m.len()) as f64 / 1e6;
        let echo: Vec<Line> = runs.iter().map(|c| c.echo.clone()).collect();
        let cpu = median(echo.iter().filter_map(|l| l.cpu_us));
        let tenant = median(echo.iter().filter_map(|l| l.tenant_us));
        out += &format!(
            "| {language} | {size:.1} MB | {:.0} ms | {:.0} ms | {:.0} / {:.0} ms | {:.1} ms | {:.1} MiB | {:.0} | {:.2} | {cpu:.1} | {tenant:.1} | {:.0}% |\n",
            m(runs, |c| c.upload_ms),
            m(runs, |c| c.upload_cached_ms),
            m(runs, |c| c.restart_cached_ms),
            m(runs, |c| c.restart_cold_ms),
            m(runs, |c| c.first_connection_ms),
            m(runs, |c| c.memory_mib),
            median(echo.iter().map(|l| l.rate)),
            median(echo.iter().map(|l| l.p99)),
            median(echo.iter().map(|l| l.generator)) * 100.0,
        );
    }
    let node_rate = median(node.iter().map(|l| l.rate));
    let node_cpu = median(node.iter().filter_map(|l| l.cpu_us));
    out += &format!(
        "| Node socket.io, native | – | – | – | – | – | – | {node_rate:.0} | {:.2} | {} | – | {:.0}% |\n",
        median(node.iter().map(|l| l.p99)),
        micros(Some(node_cpu)),
        median(node.iter().map(|l| l.generator)) * 100.0,
    );
    for ((language, _), runs) in components.iter().zip(costs) {
        let rate = median(runs.iter().map(|c| c.echo.rate));
        let cpu = median(runs.iter().filter_map(|c| c.echo.cpu_us));
        out += &format!(
            "\n{language} echo against Node's native handler: {:.2}× the acks/s, {:.2}× the server CPU per ack.",
            rate / node_rate.max(1e-9),
            cpu / node_cpu.max(1e-9)
        );
    }
    out.push('\n');
    out
}
