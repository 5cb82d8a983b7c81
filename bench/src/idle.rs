//! `--idle N`: N idle WebSocket connections on one server: how many it holds, what each
//! costs in memory, what their heartbeats cost it at rest, and whether every one still
//! answers its pings. One load generator's address has about 28,000 ephemeral ports,
//! so the clients connect from 127.0.0.1, 127.0.0.2, ... in turn. Both processes need
//! a descriptor each per connection: the run raises its soft limit to the hard one
//! (the servers, its children, inherit it) and holds as many as that allows.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::scenario::{Held, Idle, Target};
use crate::servers::{Peer, Run, Running};

/// Connections from one source address (of the ~28,000 ephemeral ports).
const PER_SOURCE: usize = 20_000;
/// Source addresses each peer may use: 160,000 connections.
const SOURCES_PER_PEER: usize = 8;
/// Descriptors each process keeps besides the connections.
const SPARE_DESCRIPTORS: u64 = 300;
/// The servers' ping interval (all three default to Engine.IO's 25 s); the window at
/// rest covers one and a margin, so every connection is pinged in it.
const PING_INTERVAL: Duration = Duration::from_secs(25);
const AT_REST: Duration = Duration::from_secs(30);

/// One peer's figures.
struct Line {
    peer: Peer,
    count: usize,
    kib_each: f64,
    /// Server CPU seconds over the window at rest, and the window's wall time.
    cpu: f64,
    wall: f64,
    held: Held,
}

/// Raises this process's descriptor limit to its hard one (the servers, started after,
/// inherit it); returns how many connections a process may then hold.
pub fn connections_allowed() -> Result<usize> {
    let allowed = nsbox::server::raise_descriptor_limit()
        .context("raising the descriptor limit")?
        .unwrap_or(u64::MAX);
    Ok(usize::try_from(allowed.saturating_sub(SPARE_DESCRIPTORS)).unwrap_or(usize::MAX))
}

/// Runs the scenario on each of `peers` with `wanted` connections (fewer if the
/// descriptor limit says so); returns the report's section.
pub async fn run(run: &Run<'_>, peers: &[Peer], wanted: usize) -> Result<String> {
    let allowed = connections_allowed()?;
    let count = wanted.min(allowed);
    let mut lines = Vec::new();
    let mut port = 5200u16;
    for (i, &peer) in peers.iter().filter(|p| **p != Peer::Raw).enumerate() {
        port += 2;
        eprintln!("idle: {count} connections to {}", peer.name());
        let server = Running::start(peer, run.programs, port, run.server_core, run.data_dir)?;
        let target = Target::new(format!("ws://127.0.0.1:{port}"));
        let first_source = 1 + i * SOURCES_PER_PEER;
        let line = measure(peer, &server, &target, count, first_source).await;
        lines.push(line.with_context(|| format!("{} idle connections to {}", count, peer.name()))?);
    }
    Ok(report(&lines, wanted, count, allowed))
}

async fn measure(
    peer: Peer,
    server: &Running,
    target: &Target,
    count: usize,
    first_source: usize,
) -> Result<Line> {
    // The first address lets the kernel choose (its ports need only differ per server);
    // the others are bound, each peer its own: a bound port is not chosen again while
    // it waits out TIME_WAIT, whatever the server.
    let mut targets = vec![target.clone()];
    for i in 1..SOURCES_PER_PEER {
        let octet = u8::try_from(first_source + i).context("too many source addresses")?;
        targets.push(target.from(IpAddr::V4(Ipv4Addr::new(127, 0, 0, octet))));
    }
    let (idle, kib_each) = settled(server, &targets, PER_SOURCE, count).await?;
    let started = (Instant::now(), server.cpu_seconds());
    idle.measure();
    tokio::time::sleep(AT_REST).await;
    let cpu = server.cpu_seconds() - started.1;
    let wall = started.0.elapsed().as_secs_f64();
    let held = idle.finish().await?;
    Ok(Line {
        peer,
        kib_each,
        cpu,
        wall,
        count,
        held,
    })
}

/// Connects `count` idle clients, at most `per_target` through each of `targets`;
/// returns them and, once they have settled for two seconds, how much the server's
/// resident memory grew per connection, in KiB.
pub async fn settled(
    server: &Running,
    targets: &[Target],
    per_target: usize,
    count: usize,
) -> Result<(Idle, f64)> {
    let before = server.rss_bytes();
    let idle = Idle::connect(targets, per_target, count).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let grown = server.rss_bytes().saturating_sub(before);
    Ok((idle, grown as f64 / count.max(1) as f64 / 1024.0))
}

fn report(lines: &[Line], wanted: usize, count: usize, allowed: usize) -> String {
    let capped = if count < wanted {
        format!(
            " {wanted} were asked for; the descriptor limit (`ulimit -Hn`) allows a process {allowed} connections, so {count} were made."
        )
    } else {
        String::new()
    };
    let mut out = format!(
        "\n### {count} idle connections\n\nEach server on one core; {count} WebSocket clients join the bench namespace (from addresses 127.0.0.x, {PER_SOURCE} each) and stay, answering pings.{capped} Memory is the growth of the server's resident set per connection once they have settled; the heartbeat is the server's CPU over {} s at rest (one ping interval of {} s and a margin), and every client must answer a ping in it.\n\n| peer | connections held | KiB per connection | CPU at rest, % of a core | µs per ping | clients pinged in the window | connections lost |\n|---|---|---|---|---|---|---|\n",
        AT_REST.as_secs(),
        PING_INTERVAL.as_secs(),
    );
    for line in lines {
        let per_ping = line.cpu * 1e6 / line.held.pings.max(1) as f64;
        out += &format!(
            "| {} | {} | {:.2} | {:.2} | {:.1} | {} of {} | {} |\n",
            line.peer.name(),
            line.count - line.held.lost,
            line.kib_each,
            line.cpu / line.wall.max(1e-9) * 100.0,
            per_ping,
            line.held.pinged,
            line.count,
            line.held.lost,
        );
    }
    out
}
