//! The load scenarios. Each warms up, then measures over a window whose edges it
//! reports to a [`Meter`] (the runner reads the server's CPU time there), and counts
//! only what completed inside the window.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::client::{Client, Incoming, PATIENCE};

/// The namespace every server serves the bench app on, and how to get in.
pub const NAMESPACE: &str = "/t1";
/// The auth the middleware accepts.
pub const AUTH: &str = r#"{"token":"ok"}"#;
/// A 64-byte payload (a JSON string of 62 characters and its quotes).
pub const PAYLOAD: &str = "\"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789\"";

/// Told when the measured window opens and closes.
pub trait Meter {
    /// The window opens.
    fn start(&mut self);
    /// The window closes.
    fn stop(&mut self);
}

/// A meter that measures nothing (for smoke runs).
pub struct NoMeter;

impl Meter for NoMeter {
    fn start(&mut self) {}
    fn stop(&mut self) {}
}

/// What a scenario measured.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Operations completed inside the window (connects, acks or deliveries).
    pub ops: u64,
    /// The window's length.
    pub window: Duration,
    /// Latency of each operation in the window, in microseconds (empty for broadcasts).
    pub latencies_us: Vec<u32>,
    /// The calls of a closed loop one by one, in no order (empty for other scenarios):
    /// to tell a server that pauses everyone from one that starves some clients.
    pub trace: Vec<Request>,
}

/// One call of a closed-loop client.
#[derive(Debug, Clone, Copy)]
pub struct Request {
    /// Which client made it (0..clients).
    pub client: u32,
    /// When it was sent, in microseconds since the clients started.
    pub sent_us: u32,
    /// How long its ack took, in microseconds.
    pub latency_us: u32,
}

impl Outcome {
    /// Operations per second.
    pub fn rate(&self) -> f64 {
        self.ops as f64 / self.window.as_secs_f64().max(1e-9)
    }

    /// The `q` quantile of the latencies (0.5, 0.99, ...), in milliseconds.
    pub fn latency_ms(&self, q: f64) -> Option<f64> {
        if self.latencies_us.is_empty() {
            return None;
        }
        let mut sorted = self.latencies_us.clone();
        sorted.sort_unstable();
        let index = ((sorted.len() - 1) as f64 * q).round() as usize;
        Some(f64::from(sorted[index]) / 1000.0)
    }
}

/// Where to connect: `ws://127.0.0.1:PORT` and a namespace.
#[derive(Debug, Clone)]
pub struct Target {
    /// The server's WebSocket base URL.
    pub base: String,
    /// The namespace, [`NAMESPACE`] unless another is given.
    pub namespace: String,
    /// A plain WebSocket echo server, no Socket.IO ([`Client::connect_raw`]).
    pub raw: bool,
    /// The local address the clients connect from (any unless given).
    pub source: Option<std::net::IpAddr>,
}

impl Target {
    /// The bench app's namespace on the server at `base`.
    pub fn new(base: impl Into<String>) -> Target {
        Target {
            base: base.into(),
            namespace: NAMESPACE.to_owned(),
            raw: false,
            source: None,
        }
    }

    /// The WebSocket echo server at `base`.
    pub fn raw(base: impl Into<String>) -> Target {
        Target {
            raw: true,
            ..Target::new(base)
        }
    }

    /// The same server, another namespace.
    pub fn on(&self, namespace: &str) -> Target {
        Target {
            namespace: namespace.to_owned(),
            ..self.clone()
        }
    }

    /// The same server, its clients connecting from `source`.
    pub fn from(&self, source: std::net::IpAddr) -> Target {
        Target {
            source: Some(source),
            ..self.clone()
        }
    }

    /// Connects one client.
    pub async fn client(&self) -> Result<Client> {
        if self.raw {
            return Client::connect_raw(&self.base).await;
        }
        Client::connect_from(self.source, &self.base, &self.namespace, AUTH).await
    }

    /// Connects `n` clients, `parallel` at a time.
    pub async fn clients(&self, n: usize, parallel: usize) -> Result<Vec<Client>> {
        let mut clients = Vec::with_capacity(n);
        while clients.len() < n {
            let batch = parallel.min(n - clients.len());
            let mut joining = JoinSet::new();
            for _ in 0..batch {
                let target = self.clone();
                joining.spawn(async move { target.client().await });
            }
            while let Some(joined) = joining.join_next().await {
                clients.push(joined??);
            }
        }
        Ok(clients)
    }
}

const WARMUP: u8 = 0;
const MEASURING: u8 = 1;
const STOPPED: u8 = 2;

/// Runs `warmup`, then the window of `duration`, telling `meter`; returns the window.
async fn window(
    phase: &AtomicU8,
    warmup: Duration,
    duration: Duration,
    meter: &mut dyn Meter,
) -> Duration {
    tokio::time::sleep(warmup).await;
    meter.start();
    phase.store(MEASURING, Ordering::SeqCst);
    let started = Instant::now();
    tokio::time::sleep(duration).await;
    phase.store(STOPPED, Ordering::SeqCst);
    meter.stop();
    started.elapsed()
}

/// Connect rate: `workers` loops of open, join the namespace through its middleware,
/// one echo with ack, close.
pub async fn connects(
    target: &Target,
    workers: usize,
    warmup: Duration,
    duration: Duration,
    meter: &mut dyn Meter,
) -> Result<Outcome> {
    let phase = Arc::new(AtomicU8::new(WARMUP));
    let mut tasks = JoinSet::new();
    for _ in 0..workers {
        let (target, phase) = (target.clone(), phase.clone());
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            while phase.load(Ordering::Relaxed) != STOPPED {
                let started = Instant::now();
                let mut client = target.client().await?;
                let id = client.emit_with_ack("echo", PAYLOAD).await?;
                client.ack(id).await?;
                client.close().await;
                if phase.load(Ordering::Relaxed) == MEASURING {
                    latencies.push(started.elapsed().as_micros() as u32);
                }
            }
            anyhow::Ok(latencies)
        });
    }
    let window = window(&phase, warmup, duration, meter).await;
    collect(tasks, window).await
}

/// Echo with ack in a closed loop: each of `clients` sends the next echo when the
/// previous one is answered.
pub async fn echo(
    target: &Target,
    clients: usize,
    warmup: Duration,
    duration: Duration,
    meter: &mut dyn Meter,
) -> Result<Outcome> {
    let call = Call {
        event: "echo",
        args: PAYLOAD,
    };
    calls(target, clients, &call, warmup, duration, meter).await
}

/// An event with its arguments (a JSON array's elements), as a scenario sends it.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// The event's name.
    pub event: &'a str,
    /// Its arguments.
    pub args: &'a str,
}

/// Events with ack in a closed loop: each of `clients` sends `call` again when the
/// previous one is answered.
pub async fn calls(
    target: &Target,
    clients: usize,
    call: &Call<'_>,
    warmup: Duration,
    duration: Duration,
    meter: &mut dyn Meter,
) -> Result<Outcome> {
    let (event, args) = (call.event.to_owned(), call.args.to_owned());
    let connected = target.clients(clients, 100).await?;
    let phase = Arc::new(AtomicU8::new(WARMUP));
    let trace = Arc::new(std::sync::Mutex::new(Vec::new()));
    let epoch = Instant::now();
    let mut tasks = JoinSet::new();
    for (index, mut client) in connected.into_iter().enumerate() {
        let (phase, event, args) = (phase.clone(), event.clone(), args.clone());
        let trace = trace.clone();
        tasks.spawn(async move {
            let (mut latencies, mut requests) = (Vec::new(), Vec::new());
            while phase.load(Ordering::Relaxed) != STOPPED {
                let started = Instant::now();
                let id = client.emit_with_ack(&event, &args).await?;
                client.answered(id).await?;
                if phase.load(Ordering::Relaxed) == MEASURING {
                    let latency_us = started.elapsed().as_micros() as u32;
                    latencies.push(latency_us);
                    requests.push(Request {
                        client: index as u32,
                        sent_us: started.duration_since(epoch).as_micros() as u32,
                        latency_us,
                    });
                }
            }
            client.close().await;
            if let Ok(mut trace) = trace.lock() {
                trace.extend(requests);
            }
            anyhow::Ok(latencies)
        });
    }
    let window = window(&phase, warmup, duration, meter).await;
    let mut outcome = collect(tasks, window).await?;
    if let Ok(mut trace) = trace.lock() {
        outcome.trace = std::mem::take(&mut trace);
    }
    Ok(outcome)
}

/// Broadcast fan-out: one sender asks for broadcasts to the namespace (`receivers`
/// plus itself), keeping at most a few broadcasts' worth of deliveries in flight.
pub async fn broadcast(
    target: &Target,
    receivers: usize,
    warmup: Duration,
    duration: Duration,
    meter: &mut dyn Meter,
) -> Result<Outcome> {
    broadcast_across(target, target, receivers, warmup, duration, meter).await
}

/// [`broadcast`] with the sender connected to `from` and the receivers to `to`: in a
/// cluster, two servers.
pub async fn broadcast_across(
    from: &Target,
    to: &Target,
    receivers: usize,
    warmup: Duration,
    duration: Duration,
    meter: &mut dyn Meter,
) -> Result<Outcome> {
    let mut listening = to.clients(receivers, 100).await?;
    let mut sender = from.client().await?;
    if from.base != to.base {
        // The servers subscribe to each other asynchronously: broadcast until one
        // arrives, so that none is lost (and waited for) once the run has started.
        linked(&mut sender, &mut listening[0]).await?;
    }
    let phase = Arc::new(AtomicU8::new(WARMUP));
    let delivered = Arc::new(Delivered::default());
    let stop = CancellationToken::new();
    let mut tasks = receive(listening, &phase, &delivered, &stop, false);
    let per_broadcast = receivers as u64 + 1;
    let in_flight_limit = 4 * per_broadcast;
    let (send_delivered, send_stop) = (delivered.clone(), stop.clone());
    tasks.spawn(async move {
        let mut sent = 0u64;
        let stopped = send_stop.cancelled();
        tokio::pin!(stopped);
        loop {
            let in_flight =
                (sent * per_broadcast).saturating_sub(send_delivered.count.load(Ordering::Relaxed));
            if in_flight < in_flight_limit {
                sender.emit("broadcast", PAYLOAD).await?;
                sent += 1;
                continue;
            }
            // Read our own copies while waiting for the receivers to catch up.
            tokio::select! {
                biased;
                () = &mut stopped => break,
                () = send_delivered.progress.notified() => {}
                incoming = sender.next() => {
                    if incoming? == Incoming::Event {
                        send_delivered.count.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
        sender.close().await;
        anyhow::Ok(Vec::new())
    });
    let (ops, window) = deliveries(&phase, &delivered, &stop, warmup, duration, meter).await;
    let mut outcome = collect(tasks, window).await?;
    outcome.ops = ops;
    Ok(outcome)
}

/// Broadcasts from `sender` until `receiver` gets one (at most 10 s).
pub async fn linked(sender: &mut Client, receiver: &mut Client) -> Result<()> {
    for _ in 0..50 {
        sender.emit("broadcast", PAYLOAD).await?;
        let heard = tokio::time::timeout(Duration::from_millis(200), async {
            while receiver.next().await? != Incoming::Event {}
            anyhow::Ok(())
        })
        .await;
        if let Ok(result) = heard {
            return result;
        }
    }
    anyhow::bail!("no broadcast crossed from one server to the other in 10 s")
}

/// Deliveries counted by the receivers, and a signal to a sender waiting for them.
#[derive(Default)]
struct Delivered {
    count: AtomicU64,
    progress: Notify,
}

/// Receivers that count every event they get in `delivered` until `stop`; with `gaps`,
/// each also keeps the gaps between its events in the window.
fn receive(
    listening: Vec<Client>,
    phase: &Arc<AtomicU8>,
    delivered: &Arc<Delivered>,
    stop: &CancellationToken,
    gaps: bool,
) -> JoinSet<Result<Vec<u32>>> {
    let mut tasks = JoinSet::new();
    for mut client in listening {
        let (phase, delivered, stop) = (phase.clone(), delivered.clone(), stop.clone());
        tasks.spawn(async move {
            let mut kept = Vec::new();
            let mut last: Option<Instant> = None;
            let stopped = stop.cancelled();
            tokio::pin!(stopped);
            loop {
                let incoming = tokio::select! {
                    biased;
                    () = &mut stopped => break,
                    incoming = client.next() => incoming,
                };
                match incoming {
                    Ok(Incoming::Event) => {
                        delivered.count.fetch_add(1, Ordering::Relaxed);
                        delivered.progress.notify_one();
                        if gaps {
                            let now = Instant::now();
                            if let (Some(last), MEASURING) = (last, phase.load(Ordering::Relaxed)) {
                                kept.push((now - last).as_micros() as u32);
                            }
                            last = Some(now);
                        }
                    }
                    Ok(_) => {}
                    Err(error) => return Err(error),
                }
            }
            client.close().await;
            anyhow::Ok(kept)
        });
    }
    tasks
}

/// Waits out the warm-up, then the window (telling `meter`); the deliveries counted in
/// it and its length. The phase is `STOPPED` and `stop` cancelled afterwards.
async fn deliveries(
    phase: &AtomicU8,
    delivered: &Delivered,
    stop: &CancellationToken,
    warmup: Duration,
    duration: Duration,
    meter: &mut dyn Meter,
) -> (u64, Duration) {
    tokio::time::sleep(warmup).await;
    let at_start = delivered.count.load(Ordering::Relaxed);
    meter.start();
    phase.store(MEASURING, Ordering::SeqCst);
    let started = Instant::now();
    tokio::time::sleep(duration).await;
    let ops = delivered.count.load(Ordering::Relaxed) - at_start;
    let window = started.elapsed();
    meter.stop();
    phase.store(STOPPED, Ordering::SeqCst);
    stop.cancel();
    (ops, window)
}

/// A broadcast the tenant makes on its own: `receivers` connected, one of them asks the
/// `bench` tenant for `tick` to the namespace every `interval_ms` (its `ticker` event),
/// and nobody else says anything. Counts deliveries in the window; the latencies are
/// the gaps between one receiver's consecutive ticks (the timer's regularity).
pub async fn ticks(
    target: &Target,
    receivers: usize,
    interval_ms: u64,
    warmup: Duration,
    duration: Duration,
    meter: &mut dyn Meter,
) -> Result<Outcome> {
    let listening = target.clients(receivers, 100).await?;
    let mut trigger = target.client().await?;
    let phase = Arc::new(AtomicU8::new(WARMUP));
    let delivered = Arc::new(Delivered::default());
    let stop = CancellationToken::new();
    let tasks = receive(listening, &phase, &delivered, &stop, true);
    // Ticks for the whole run and a second more; the server stops when the run does.
    let count = (warmup + duration).as_millis() as u64 / interval_ms.max(1) + 100;
    let id = trigger
        .emit_with_ack("ticker", &format!("{interval_ms},{count}"))
        .await?;
    trigger.ack(id).await?;
    let (ops, window) = deliveries(&phase, &delivered, &stop, warmup, duration, meter).await;
    trigger.close().await;
    let mut outcome = collect(tasks, window).await?;
    outcome.ops = ops;
    Ok(outcome)
}

/// Clients kept connected and idle, answering the server's pings, until [`Idle::finish`]
/// (or until dropped, which closes them).
pub struct Idle {
    phase: watch::Sender<IdlePhase>,
    tasks: JoinSet<Result<u64>>,
}

/// What idle clients did while measured: the pings they answered, how many of them
/// answered at least one, and how many connections were lost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Held {
    /// Pings answered, all clients together.
    pub pings: u64,
    /// Clients that answered at least one.
    pub pinged: usize,
    /// Connections lost.
    pub lost: usize,
}

/// Where an [`Idle`] set is: its clients count their pings while `Measuring`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IdlePhase {
    Settling,
    Measuring,
    Done,
}

impl Idle {
    /// Connects `count` clients, at most `per_target` through each of `targets` in turn
    /// (the same server from other local addresses: one address has only so many
    /// ports).
    pub async fn connect(targets: &[Target], per_target: usize, count: usize) -> Result<Idle> {
        let (phase, watching) = watch::channel(IdlePhase::Settling);
        let mut tasks = JoinSet::new();
        let mut left = count;
        for target in targets {
            let here = left.min(per_target);
            for client in target.clients(here, 100).await? {
                tasks.spawn(hold(client, watching.clone()));
            }
            left -= here;
        }
        ensure!(
            left == 0,
            "{count} clients need more than {} addresses",
            targets.len()
        );
        Ok(Idle { phase, tasks })
    }

    /// How many clients there are.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// From now on the clients count the pings they answer.
    pub fn measure(&self) {
        self.phase.send_replace(IdlePhase::Measuring);
    }

    /// Ends the measuring: what the clients did since [`Idle::measure`]; they close.
    pub async fn finish(mut self) -> Result<Held> {
        self.phase.send_replace(IdlePhase::Done);
        let mut held = Held::default();
        while let Some(done) = self.tasks.join_next().await {
            match done? {
                Ok(pings) => {
                    held.pings += pings;
                    held.pinged += usize::from(pings > 0);
                }
                Err(_) => held.lost += 1,
            }
        }
        Ok(held)
    }
}

/// Keeps `client` open, answering pings, until the set is `Done`; returns the pings it
/// answered while measured, or an error if the connection was lost.
async fn hold(mut client: Client, mut phase: watch::Receiver<IdlePhase>) -> Result<u64> {
    let mut at_start = 0;
    loop {
        tokio::select! {
            incoming = client.next() => {
                incoming?;
            }
            changed = phase.changed() => {
                changed?;
                match *phase.borrow_and_update() {
                    IdlePhase::Settling => {}
                    IdlePhase::Measuring => at_start = client.pings(),
                    IdlePhase::Done => return Ok(client.pings() - at_start),
                }
            }
        }
    }
}

async fn collect(mut tasks: JoinSet<Result<Vec<u32>>>, window: Duration) -> Result<Outcome> {
    let mut outcome = Outcome {
        window,
        ..Outcome::default()
    };
    // Every client ends after its call in flight: one that is not answered within
    // `PATIENCE` fails the run rather than hanging it.
    while let Some(done) = tokio::time::timeout(PATIENCE, tasks.join_next())
        .await
        .with_context(|| format!("a client's call went unanswered for {PATIENCE:?}"))?
    {
        let latencies = done??;
        outcome.latencies_us.extend(latencies);
    }
    outcome.ops = outcome.latencies_us.len() as u64;
    Ok(outcome)
}
