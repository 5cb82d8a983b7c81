//! `--cluster`: two servers on one Redis, the sender on one and the receivers on the
//! other: nsbox nodes (`--redis`) against Node's socket.io with
//! `@socket.io/redis-adapter`'s sharded adapter, in the same run. socketioxide is not
//! among them: its Redis adapter speaks a protocol of its own.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::scenario::{self, Outcome, Target, PAYLOAD};
use crate::servers::{cpu_seconds_of, Peer, ProcMeter, Run, Running};

/// Receivers on the second server.
const RECEIVERS: usize = 1000;
/// The peers compared: those that share namespaces through Redis in one format.
const PEERS: [Peer; 2] = [Peer::Node, Peer::Nsbox];

/// A `redis-server` of the run's own, stopped when dropped.
pub struct Redis {
    child: Child,
    /// `redis://127.0.0.1:PORT`
    pub url: String,
}

impl Redis {
    /// Starts one on `port` (pinned to `core` if given), without persistence, and waits
    /// until it accepts connections.
    pub fn start(port: u16, core: Option<usize>) -> Result<Redis> {
        let mut command = match core {
            Some(core) => {
                let mut taskset = Command::new("taskset");
                taskset.arg("-c").arg(core.to_string()).arg("redis-server");
                taskset
            }
            None => Command::new("redis-server"),
        };
        let child = command
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .context("starting redis-server (apt-get install redis-server)")?;
        let redis = Redis {
            child,
            url: format!("redis://127.0.0.1:{port}"),
        };
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(redis);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        anyhow::bail!("redis-server did not listen on {port}")
    }

    fn cpu_seconds(&self) -> f64 {
        cpu_seconds_of(&format!("/proc/{}/stat", self.child.id()))
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One peer's figures in one round.
#[derive(Debug, Clone, Default)]
struct Line {
    deliveries: f64,
    /// Both servers' CPU per delivery, microseconds.
    cpu_us: f64,
    /// Redis's CPU per delivery, microseconds.
    redis_us: f64,
    p50: f64,
    p99: f64,
    generator: f64,
}

/// Runs the cluster benchmark; returns its section of the report.
pub async fn run(run: &Run<'_>) -> Result<String> {
    let mut lines: Vec<Vec<Line>> = vec![Vec::new(); PEERS.len()];
    let mut port = 4800u16;
    for round in 0..run.rounds {
        eprintln!("cluster round {} of {}", round + 1, run.rounds);
        let order: Vec<usize> = if round % 2 == 0 {
            vec![0, 1]
        } else {
            vec![1, 0]
        };
        for i in order {
            port += 10;
            lines[i].push(measure(PEERS[i], port, run, round).await?);
        }
    }
    Ok(report(&lines, run))
}

async fn measure(peer: Peer, port: u16, run: &Run<'_>, round: usize) -> Result<Line> {
    let redis = Redis::start(port, run.server_core)?;
    let dir = |node: &str| {
        run.data_dir
            .join(format!("cluster-{}-{round}-{node}", peer.name()))
    };
    let start = |p: u16, node: &str| {
        Running::start_in_cluster(
            peer,
            run.programs,
            p,
            run.server_core,
            &dir(node),
            Some(&redis.url),
        )
    };
    let (a, b) = (start(port + 2, "a")?, start(port + 4, "b")?);
    let from = Target::new(format!("ws://127.0.0.1:{}", a.port));
    let to = Target::new(format!("ws://127.0.0.1:{}", b.port));

    let mut meter = WithRedis {
        servers: ProcMeter::of(&[&a, &b]),
        redis: &redis,
        at_start: 0.0,
        spent: 0.0,
    };
    let outcome =
        scenario::broadcast_across(&from, &to, RECEIVERS, run.warmup, run.window, &mut meter)
            .await?;
    let latency = cross_latency(&from, &to, run.warmup, run.window).await?;
    let deliveries = outcome.ops.max(1) as f64;
    let window = outcome.window.as_secs_f64().max(1e-9);
    Ok(Line {
        deliveries: outcome.rate(),
        cpu_us: meter.servers.spent.0 * 1e6 / deliveries,
        redis_us: meter.spent * 1e6 / deliveries,
        p50: latency.latency_ms(0.5).unwrap_or(f64::NAN),
        p99: latency.latency_ms(0.99).unwrap_or(f64::NAN),
        generator: meter.servers.spent.1 / window,
    })
}

/// The servers' and the generator's CPU, and Redis's apart.
struct WithRedis<'a> {
    servers: ProcMeter<'a>,
    redis: &'a Redis,
    at_start: f64,
    spent: f64,
}

impl scenario::Meter for WithRedis<'_> {
    fn start(&mut self) {
        self.servers.start();
        self.at_start = self.redis.cpu_seconds();
    }
    fn stop(&mut self) {
        self.servers.stop();
        self.spent = self.redis.cpu_seconds() - self.at_start;
    }
}

/// One sender on `from` and one receiver on `to`, nobody else: each broadcast's time
/// from the emit on one server to the receipt through the other, one at a time.
async fn cross_latency(
    from: &Target,
    to: &Target,
    warmup: Duration,
    window: Duration,
) -> Result<Outcome> {
    let mut receiver = to.client().await?;
    let mut sender = from.client().await?;
    scenario::linked(&mut sender, &mut receiver).await?;
    // The sender's own copy of that first broadcast.
    next_event(&mut sender).await?;
    let started = Instant::now();
    let mut measured_from = None;
    let mut latencies = Vec::new();
    loop {
        let elapsed = started.elapsed();
        if elapsed >= warmup + window {
            break;
        }
        if elapsed >= warmup && measured_from.is_none() {
            measured_from = Some(Instant::now());
        }
        let sent = Instant::now();
        sender.emit("broadcast", PAYLOAD).await?;
        next_event(&mut receiver).await?;
        if measured_from.is_some() {
            latencies.push(sent.elapsed().as_micros() as u32);
        }
        next_event(&mut sender).await?;
    }
    let ops = latencies.len() as u64;
    Ok(Outcome {
        ops,
        window: measured_from.map_or(Duration::ZERO, |m| m.elapsed()),
        latencies_us: latencies,
        ..Outcome::default()
    })
}

/// The next event a client gets (within 5 s: a lost broadcast fails the run).
async fn next_event(client: &mut crate::client::Client) -> Result<()> {
    tokio::time::timeout(Duration::from_secs(5), async {
        while client.next().await? != crate::client::Incoming::Event {}
        anyhow::Ok(())
    })
    .await
    .context("a broadcast did not arrive within 5 s")?
}

fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.collect();
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

fn report(lines: &[Vec<Line>], run: &Run<'_>) -> String {
    let mut out = format!(
        "\n### Two servers on one Redis (nsbox `--redis`; Node with the sharded Redis adapter)\n\n\
         Medians of {} interleaved rounds, {:.0} s per scenario, each on fresh servers and a fresh \
         `redis-server`, all three on the servers' core. Deliveries: one sender on server A \
         broadcasting (the app's `broadcast`) as fast as {RECEIVERS} receivers on server B take it. \
         Latency: one sender on A, one receiver on B, one broadcast at a time, from the emit to \
         the receipt. CPU per delivery: both servers together, and Redis apart. \
         A generator core busier than 70% is marked.\n\n\
         | peer | deliveries/s at B | servers' CPU µs/delivery | Redis CPU µs/delivery | A→B latency p50 / p99 ms | generator core |\n\
         |---|---|---|---|---|---|\n",
        run.rounds,
        run.window.as_secs_f64()
    );
    let medians: Vec<Line> = lines
        .iter()
        .map(|runs| Line {
            deliveries: median(runs.iter().map(|l| l.deliveries)),
            cpu_us: median(runs.iter().map(|l| l.cpu_us)),
            redis_us: median(runs.iter().map(|l| l.redis_us)),
            p50: median(runs.iter().map(|l| l.p50)),
            p99: median(runs.iter().map(|l| l.p99)),
            generator: median(runs.iter().map(|l| l.generator)),
        })
        .collect();
    for (peer, line) in PEERS.iter().zip(&medians) {
        let bound = if line.generator > 0.7 {
            " (generator-bound)"
        } else {
            ""
        };
        out += &format!(
            "| {} | {:.0}{bound} | {:.2} | {:.2} | {:.2} / {:.2} | {:.0}% |\n",
            peer.name(),
            line.deliveries,
            line.cpu_us,
            line.redis_us,
            line.p50,
            line.p99,
            line.generator * 100.0
        );
    }
    if let [node, nsbox] = medians.as_slice() {
        out += &format!(
            "\nnsbox ÷ node: {:.2}× the deliveries/s, {:.2}× the servers' CPU per delivery, \
             {:.2}× the p50 latency, {:.2}× the p99.\n",
            nsbox.deliveries / node.deliveries.max(1e-9),
            nsbox.cpu_us / node.cpu_us.max(1e-9),
            nsbox.p50 / node.p50.max(1e-9),
            nsbox.p99 / node.p99.max(1e-9),
        );
    }
    out
}
