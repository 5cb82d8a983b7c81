//! Runs the benchmark: every peer, interleaved over several rounds, each scenario in
//! turn; writes `results.md` (table), `results.json` and `chart.svg`.
//! `bash bench/run` builds the peers and runs this pinned to a core of its own.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use nsbox_bench::hostile;
use nsbox_bench::report::{self, Figures};
use nsbox_bench::scenario::{self, Outcome, Target};
use nsbox_bench::servers::{Peer, ProcMeter, Programs, Running};
use nsbox_bench::tenants;

#[derive(Parser)]
#[command(about = "nsbox against Node's socket.io and socketioxide, same app, same machine")]
struct Args {
    /// Rounds; each runs every peer once (in a rotating order) and reports medians.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Seconds each scenario measures (after one second of warm-up).
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Peers to run, comma-separated (`raw` is a WebSocket echo server without
    /// Socket.IO: the ceiling of the connect and echo scenarios).
    #[arg(
        long,
        default_value = "node,socketioxide,nsbox,raw",
        value_delimiter = ','
    )]
    peers: Vec<String>,
    /// The release nsbox binary.
    #[arg(long)]
    nsbox: PathBuf,
    /// The release socketioxide-peer binary.
    #[arg(long)]
    socketioxide: PathBuf,
    /// Where the example components are (for the hostile tenants).
    #[arg(long)]
    examples: Option<PathBuf>,
    /// Where the report goes.
    #[arg(long, default_value = "bench/results")]
    out: PathBuf,
    /// The CPU the servers are pinned to (the load generator should run on another).
    #[arg(long)]
    server_core: Option<usize>,
    /// Writes each peer's echo calls with 1,000 clients, one by one, to
    /// `DIR/<peer>-<round>.csv` (client, sent µs, latency µs): where the stalls are.
    #[arg(long)]
    trace: Option<PathBuf>,
    /// Also measure memory with 10,000 idle connections.
    #[arg(long)]
    big: bool,
    /// Run only these scenarios (memory, connects, echo100, echo1000, broadcast), for
    /// profiling one of them.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Also measure nsbox with this many tenants (each the `bench` example): start-up
    /// time and memory, then the first connection to each (it instantiates the tenant)
    /// and the memory of them all live. Repeatable: `--tenants 1000 --tenants 10000`.
    #[arg(long)]
    tenants: Vec<usize>,
    /// The component of each tenant of `--tenants` (a path; `builtin:bench` unless
    /// given), e.g. `examples/js/echo/dist/echo.wasm` to measure tenants written in JS.
    #[arg(long, default_value = "builtin:bench")]
    tenants_component: String,
    /// With `--tenants`, how many of them get a client (the first ones; all unless
    /// given): `--tenants 100000 --tenants-live 10000` registers 100,000 tenants and
    /// makes 10,000 of them live.
    #[arg(long)]
    tenants_live: Option<usize>,
    /// Also run the sandbox benchmark: nsbox's well-behaved tenant with and without
    /// hostile tenants looping, trapping and flooding beside it.
    #[arg(long)]
    hostile: bool,
    /// Also run the stateful tenants' benchmark (nsbox only): storage through a tenant
    /// against the store used natively, a timer-driven broadcast, contract 0.2 vs 0.1.
    #[arg(long)]
    state: bool,
    /// Also run the guests benchmark (nsbox and Node): the echo example in JavaScript and
    /// Python against the Rust one (size, upload, restarts, first connection, memory,
    /// echo from 100 clients), built first (`examples/js/echo`, `examples/python/echo`).
    #[arg(long)]
    guests: bool,
    /// The guests benchmark's tenants instead of the three echo examples: `NAME=PATH`
    /// (a component answering `echo` as the echo example does), repeatable.
    #[arg(long)]
    guest: Vec<String>,
    /// Also hold this many idle connections on each peer: memory per connection, the
    /// heartbeat's CPU at rest, every connection pinged (as many as the descriptor
    /// limit allows; `ulimit -Hn` above it for 100,000).
    #[arg(long)]
    idle: Option<usize>,
    /// Also run the cluster benchmark: two nsbox nodes on one Redis against two Node
    /// servers with the sharded Redis adapter (broadcasts across, and their latency).
    #[arg(long)]
    cluster: bool,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args = Args::parse();
    // Checked before anything runs.
    let guests = (args.guest.iter())
        .map(|g| guest_of(g))
        .collect::<Result<Vec<_>>>()?;
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let programs = Programs {
        root: root.clone(),
        nsbox: args.nsbox.clone(),
        socketioxide: args.socketioxide.clone(),
        raw_echo: std::env::current_exe()?.with_file_name("raw-echo"),
    };
    let peers: Vec<Peer> = args
        .peers
        .iter()
        .map(|name| Peer::parse(name).with_context(|| format!("unknown peer {name}")))
        .collect::<Result<_>>()?;
    let window = Duration::from_secs_f64(args.seconds);
    let warmup = Duration::from_secs(1);
    let data_dir = std::env::temp_dir().join(format!("nsbox-bench-{}", std::process::id()));
    let mut rounds: Vec<(Peer, Figures)> = Vec::new();
    let mut port = 3500u16;
    for round in 0..args.rounds {
        for i in 0..peers.len() {
            let peer = peers[(i + round) % peers.len()];
            port += 2;
            eprintln!("round {} of {}: {}", round + 1, args.rounds, peer.name());
            let server = Running::start(peer, &programs, port, args.server_core, &data_dir)?;
            let trace = (args.trace.as_ref())
                .map(|dir| dir.join(format!("{}-{}.csv", peer.name(), round + 1)));
            let figures = run_peer(peer, &server, window, warmup, &args, trace).await?;
            eprintln!("  {figures:?}");
            rounds.push((peer, figures));
        }
    }
    let medians: Vec<(&str, Figures)> = peers
        .iter()
        .map(|peer| {
            let of_peer: Vec<Figures> = rounds
                .iter()
                .filter(|(p, _)| p == peer)
                .map(|(_, f)| f.clone())
                .collect();
            (peer.name(), report::medians(&of_peer))
        })
        .collect();
    let machine = machine();
    let header = format!(
        "Medians of {} interleaved rounds, {:.0} s per scenario, 64-byte payloads, {}.",
        args.rounds, args.seconds, machine
    );
    let mut markdown = report::markdown(&medians, &header);
    std::fs::create_dir_all(&args.out)?;
    std::fs::write(args.out.join("results.md"), &markdown)?;
    for &count in &args.tenants {
        match many_tenants(&args, &programs, count, &data_dir).await {
            Ok(table) => markdown.push_str(&table),
            Err(error) => eprintln!("the {count}-tenant benchmark failed: {error:#}"),
        }
        std::fs::write(args.out.join("results.md"), &markdown)?;
    }
    if args.hostile {
        match sandbox(&args, &programs, window, warmup, &data_dir).await {
            Ok(table) => markdown.push_str(&table),
            Err(error) => eprintln!("the sandbox benchmark failed: {error:#}"),
        }
        std::fs::write(args.out.join("results.md"), &markdown)?;
    }
    let run = nsbox_bench::servers::Run {
        programs: &programs,
        rounds: args.rounds,
        window,
        warmup,
        server_core: args.server_core,
        data_dir: &data_dir,
    };
    let legacy_echo = root.join("tests/fixtures/echo-0.1.0.wasm");
    if args.state {
        let table = nsbox_bench::state::run(&run, &legacy_echo).await;
        append(&mut markdown, "state", table, &args.out)?;
    }
    if args.guests {
        let examples = (args.examples.clone())
            .unwrap_or_else(|| root.join("target/wasm-examples/wasm32-wasip2/release"));
        let built =
            |dir: &str, name: &str| root.join(dir).join("dist").join(format!("{name}.wasm"));
        let mut components = vec![
            ("rust", examples.join("echo.wasm")),
            ("js", built("examples/js/echo", "echo")),
            ("python", built("examples/python/echo", "echo")),
        ];
        if !guests.is_empty() {
            components = guests;
        }
        let table = nsbox_bench::guests::run(&run, &components).await;
        append(&mut markdown, "guests", table, &args.out)?;
    }
    if let Some(count) = args.idle {
        let table = nsbox_bench::idle::run(&run, &peers, count).await;
        append(&mut markdown, "idle", table, &args.out)?;
    }
    if args.cluster {
        let table = nsbox_bench::cluster::run(&run).await;
        append(&mut markdown, "cluster", table, &args.out)?;
    }
    let json: serde_json::Value = medians
        .iter()
        .map(|(n, f)| (n.to_string(), serde_json::json!(f)))
        .collect::<serde_json::Map<_, _>>()
        .into();
    std::fs::write(
        args.out.join("results.json"),
        serde_json::to_string_pretty(&json)?,
    )?;
    std::fs::write(
        args.out.join("chart.svg"),
        report::svg(
            &medians,
            &format!("Rates relative to Node's socket.io (= 1), {machine}"),
        ),
    )?;
    let _ = std::fs::remove_dir_all(&data_dir);
    println!("{markdown}");
    Ok(())
}

/// Every scenario against one running server; with each, the share of its core the
/// load generator used (over 70%, the rate is the generator's).
async fn run_peer(
    peer: Peer,
    server: &Running,
    window: Duration,
    warmup: Duration,
    args: &Args,
    trace: Option<PathBuf>,
) -> Result<Figures> {
    let base = format!("ws://127.0.0.1:{}", server.port);
    let target = match peer {
        Peer::Raw => Target::raw(base),
        _ => Target::new(base),
    };
    let mut figures = Figures::new();
    let runs = |scenario: &str| args.only.is_empty() || args.only.iter().any(|s| s == scenario);
    let generator = |meter: &ProcMeter, outcome: &Outcome| {
        meter.spent.1 / outcome.window.as_secs_f64().max(1e-9)
    };

    // Memory first, on a fresh server.
    if runs("memory") {
        figures.insert("idle_kib_1000", idle_kib(server, &target, 1000).await?);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    if runs("connects") {
        let mut meter = ProcMeter::new(server);
        let connects = scenario::connects(&target, 50, warmup, window, &mut meter).await?;
        figures.insert("connects_per_s", connects.rate());
        figures.insert("cpu_us_connect", per_op_us(meter.spent.0, &connects));
        figures.insert("generator_connects", generator(&meter, &connects));
    }
    if runs("echo100") {
        let mut meter = ProcMeter::new(server);
        let echo = scenario::echo(&target, 100, warmup, window, &mut meter).await?;
        figures.insert("echo100_per_s", echo.rate());
        let keys = ["echo100_p50_ms", "echo100_p99_ms", "echo100_p999_ms"];
        insert_latencies(&mut figures, keys, &echo);
        figures.insert("cpu_us_ack", per_op_us(meter.spent.0, &echo));
        figures.insert("generator_echo100", generator(&meter, &echo));
    }
    if runs("echo1000") {
        let mut meter = ProcMeter::new(server);
        let echo = scenario::echo(&target, 1000, warmup, window, &mut meter).await?;
        figures.insert("echo1000_per_s", echo.rate());
        let keys = ["echo1000_p50_ms", "echo1000_p99_ms", "echo1000_p999_ms"];
        insert_latencies(&mut figures, keys, &echo);
        figures.insert("cpu_us_ack1000", per_op_us(meter.spent.0, &echo));
        figures.insert("generator_echo1000", generator(&meter, &echo));
        if let Some(path) = trace {
            write_trace(&path, &echo)?;
        }
    }
    // A broadcast needs rooms: the raw echo server has none.
    if runs("broadcast") && peer != Peer::Raw {
        let mut meter = ProcMeter::new(server);
        let fanout = scenario::broadcast(&target, 1000, warmup, window, &mut meter).await?;
        figures.insert("broadcast_per_s", fanout.rate());
        figures.insert("cpu_us_delivery", per_op_us(meter.spent.0, &fanout));
        figures.insert("generator_broadcast", generator(&meter, &fanout));
    }
    if args.big && runs("memory") {
        tokio::time::sleep(Duration::from_secs(1)).await;
        figures.insert("idle_kib_10000", idle_kib(server, &target, 10_000).await?);
    }
    Ok(figures)
}

/// Writes `outcome`'s calls as CSV, in the order they were sent.
fn write_trace(path: &std::path::Path, outcome: &Outcome) -> Result<()> {
    let mut requests = outcome.trace.clone();
    requests.sort_by_key(|r| r.sent_us);
    let mut csv = String::from("client,sent_us,latency_us\n");
    for r in requests {
        csv += &format!("{},{},{}\n", r.client, r.sent_us, r.latency_us);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, csv).with_context(|| format!("writing {}", path.display()))
}

/// The p50, p99 and p99.9 latencies of `outcome`, in milliseconds, under `keys`.
fn insert_latencies(figures: &mut Figures, keys: [&'static str; 3], outcome: &Outcome) {
    for (key, q) in keys.into_iter().zip([0.5, 0.99, 0.999]) {
        figures.insert(key, outcome.latency_ms(q).unwrap_or(0.0));
    }
}

/// How much the server's resident memory grows per idle connection, in KiB, once
/// `clients` are connected and have settled for two seconds.
async fn idle_kib(server: &Running, target: &Target, clients: usize) -> Result<f64> {
    let targets = std::slice::from_ref(target);
    let (_idle, kib) = nsbox_bench::idle::settled(server, targets, clients, clients).await?;
    Ok(kib)
}

fn per_op_us(cpu_seconds: f64, outcome: &Outcome) -> f64 {
    if outcome.ops == 0 {
        return 0.0;
    }
    cpu_seconds * 1e6 / outcome.ops as f64
}

/// The sandbox benchmark: echo with 100 clients on nsbox's well-behaved tenant, alone
/// and with hostile tenants attacking beside it, per round; the ratios of the medians.
async fn sandbox(
    args: &Args,
    programs: &Programs,
    window: Duration,
    warmup: Duration,
    data_dir: &std::path::Path,
) -> Result<String> {
    let examples = args
        .examples
        .clone()
        .context("--hostile needs --examples DIR")?;
    let config = data_dir.join("hostile.toml");
    std::fs::create_dir_all(data_dir)?;
    let mut text = std::fs::read_to_string(programs.root.join("bench/nsbox.toml"))?;
    for (tenant, file) in [
        ("spin", "hostile_spin"),
        ("crash", "hostile_panic"),
        ("flood", "hostile_flood"),
        ("hoard", "hostile_hoard"),
    ] {
        text += &format!(
            // The default limits, but never quarantined: the worst case, attackers
            // that keep coming back.
            "\n[tenants.{tenant}]\ncomponent = {:?}\n[tenants.{tenant}.limits]\ncpu_per_second_ms = 500\nevents_per_second_per_socket = 1000\nquarantine_after_faults = 1000000\n",
            examples.join(format!("{file}.wasm")).display().to_string()
        );
    }
    std::fs::write(&config, text)?;
    let hostile_programs = Programs {
        root: data_dir.to_owned(),
        ..programs.clone()
    };
    // Running::start reads <root>/bench/nsbox.toml: give it the hostile one there.
    std::fs::create_dir_all(data_dir.join("bench"))?;
    std::fs::copy(&config, data_dir.join("bench/nsbox.toml"))?;
    let (mut calm, mut attacked) = (Vec::new(), Vec::new());
    let mut port = 3900u16;
    let mut attacks_made = 0;
    for round in 0..args.rounds {
        port += 2;
        eprintln!("sandbox round {} of {}", round + 1, args.rounds);
        let server = Running::start(
            Peer::Nsbox,
            &hostile_programs,
            port,
            args.server_core,
            &data_dir.join("store"),
        )?;
        let target = Target::new(format!("ws://127.0.0.1:{port}"));
        let mut meter = scenario::NoMeter;
        calm.push(scenario::echo(&target, 100, warmup, window, &mut meter).await?);
        let stop = Arc::new(AtomicBool::new(false));
        let attacks = Arc::new(AtomicU64::new(0));
        let mut attackers = hostile::start(&target.base, 2, stop.clone(), attacks.clone());
        attacked.push(scenario::echo(&target, 100, warmup, window, &mut meter).await?);
        stop.store(true, Ordering::Relaxed);
        attackers.abort_all();
        while attackers.join_next().await.is_some() {}
        attacks_made += attacks.load(Ordering::Relaxed);
        drop(server);
    }
    let median = |outcomes: &[Outcome], f: &dyn Fn(&Outcome) -> f64| {
        let mut v: Vec<f64> = outcomes.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let rate = |o: &Outcome| o.rate();
    let p99 = |o: &Outcome| o.latency_ms(0.99).unwrap_or(0.0);
    let (calm_rate, hit_rate) = (median(&calm, &rate), median(&attacked, &rate));
    let (calm_p99, hit_p99) = (median(&calm, &p99), median(&attacked, &p99));
    Ok(format!(
        "\n### The sandbox under attack\n\nnsbox, echo with ack from 100 clients on the `bench` tenant, alone and while 14 hostile clients make `spin` loop to its CPU deadline, `crash` trap and `flood` emit without end, and `hoard` make the host spend on its behalf (acks nobody answers, an ack storm on a departed socket, log floods, rooms past the limit), reconnecting after every fault ({attacks_made} attacks over {} rounds). The hostile tenants run under the default limits with quarantine off, so they keep coming back (the restart backoff still applies).\n\n| | acks/s | p99 ms |\n|---|---|---|\n| alone | {calm_rate:.0} | {calm_p99:.2} |\n| beside hostile tenants | {hit_rate:.0} | {hit_p99:.2} |\n| ratio | {:.2}× | {:.2}× |\n",
        args.rounds,
        hit_rate / calm_rate.max(1e-9),
        hit_p99 / calm_p99.max(1e-9),
    ))
}

/// nsbox with `count` tenants: start-up, idle memory, the first connection to each
/// tenant (which instantiates it), and the memory once every tenant has an instance.
async fn many_tenants(
    args: &Args,
    programs: &Programs,
    count: usize,
    data_dir: &std::path::Path,
) -> Result<String> {
    let root = data_dir.join(format!("tenants-{count}"));
    std::fs::create_dir_all(root.join("bench"))?;
    // A pool for every tenant at once; instances evicted 1 s after their last client.
    // A pool for every live tenant at once.
    let pooled = args.tenants_live.unwrap_or(count).min(count).max(1000);
    let mut config = format!(
        "admin_token = \"{}\"\nlive_instances = {}\n[limits]\nevents_per_second_per_socket = 1000000\nevict_idle_after_ms = {}\n",
        nsbox_bench::admin::TOKEN,
        pooled,
        EVICT_AFTER.as_millis()
    );
    for i in 0..count {
        config += &format!("[tenants.t{i}]\ncomponent = {:?}\n", args.tenants_component);
    }
    std::fs::write(root.join("bench/nsbox.toml"), config)?;
    let programs = Programs {
        root: root.clone(),
        ..programs.clone()
    };
    let port = 4100 + (count % 1000) as u16 * 2;
    let started = std::time::Instant::now();
    let server = Running::start(
        Peer::Nsbox,
        &programs,
        port,
        args.server_core,
        &root.join("store"),
    )?;
    let startup = started.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_rss = server.rss_bytes();
    let base = format!("ws://127.0.0.1:{port}");
    let mut first = tenants::join_each(&base, args.tenants_live.unwrap_or(count).min(count)).await;
    anyhow::ensure!(!first.clients.is_empty(), "no tenant could be reached");
    let live = first.clients.len();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let live_rss = server.rss_bytes();
    let admin = format!("127.0.0.1:{}", port + 1);
    // The tenant list while every tenant is live.
    let listing = tenants::list_latencies(&admin, nsbox_bench::admin::TOKEN, count).await?;
    // Every client leaves; every instance is evicted a second later. Then each tenant
    // gets a client again, which starts its instance afresh.
    drop(std::mem::take(&mut first.clients));
    tenants::until_all_evicted(&admin, EVICT_AFTER, EVICT_AFTER * 120).await?;
    let evicted_rss = server.rss_bytes();
    let again = tenants::join_each(&base, live).await;
    let mib = |bytes: u64| bytes as f64 / (1 << 20) as f64;
    Ok(format!(
        "\n### {count} tenants on nsbox\n\nEach `{}` (compiled once), with a pool of {} instances. A client joins each of {live} of them in turn (open the WebSocket, join the namespace through its middleware), so each first connection starts its tenant's instance; the clients leave, every instance is evicted a second later (`evict_idle_after_ms = {}`), and a client joins each of those again.\n\n| start-up | memory, tenants idle | first connection p50 / p99 | memory, {live} tenants live, each with a client | per live tenant | memory, all evicted | connection to an evicted tenant p50 / p99 |\n|---|---|---|---|---|---|---|\n| {:.2} s | {:.0} MiB | {:.2} / {:.2} ms | {:.0} MiB | {:.0} KiB | {:.0} MiB | {:.2} / {:.2} ms |\n",
        args.tenants_component,
        pooled,
        EVICT_AFTER.as_millis(),
        startup.as_secs_f64(),
        mib(idle_rss),
        first.quantile_ms(0.5),
        first.quantile_ms(0.99),
        mib(live_rss),
        (live_rss.saturating_sub(idle_rss)) as f64 / live as f64 / 1024.0,
        mib(evicted_rss),
        again.quantile_ms(0.5),
        again.quantile_ms(0.99),
    ) + &listing
        + &first.stopped
        + &again.stopped)
}

/// How long the many-tenants run's instances live on without clients.
const EVICT_AFTER: Duration = Duration::from_secs(1);

fn machine() -> String {
    // The machine's cores, not this process's (it runs pinned to one).
    let cores = std::fs::read_to_string("/proc/cpuinfo")
        .map(|c| c.lines().filter(|l| l.starts_with("processor")).count())
        .unwrap_or(0);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let date = std::process::Command::new("date")
        .arg("+%Y-%m-%d")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    format!("{cores} cores ({model}), {date}")
}

/// Adds a benchmark's section to the report (or says why it failed) and writes it out.
fn append(
    markdown: &mut String,
    name: &str,
    table: Result<String>,
    out: &std::path::Path,
) -> Result<()> {
    match table {
        Ok(table) => markdown.push_str(&table),
        Err(error) => eprintln!("the {name} benchmark failed: {error:#}"),
    }
    std::fs::write(out.join("results.md"), &*markdown)?;
    Ok(())
}

/// `--guest NAME=PATH`; NAME becomes a tenant's name, so it must be one.
fn guest_of(arg: &str) -> Result<(&str, PathBuf)> {
    let Some((name, path)) = arg.split_once('=') else {
        anyhow::bail!("--guest {arg:?}: expected NAME=PATH");
    };
    if !nsbox::store::valid_tenant_name(name) {
        anyhow::bail!("--guest {arg:?}: {name:?} cannot be a tenant's name (1 to 64 ASCII letters, digits or _)");
    }
    Ok((name, PathBuf::from(path)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guest_is_a_tenant_name_and_a_path() {
        let (name, path) = guest_of("js_echo=dist/echo.wasm").expect("valid");
        assert_eq!((name, path), ("js_echo", PathBuf::from("dist/echo.wasm")));
        let hyphen = guest_of("js-echo=dist/echo.wasm").expect_err("a hyphen");
        assert!(hyphen.to_string().contains("tenant's name"), "{hyphen}");
        assert!(guest_of("dist/echo.wasm").is_err(), "no name");
    }
}
