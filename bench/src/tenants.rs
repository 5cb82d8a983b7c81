//! nsbox with many tenants: a client joining each tenant in turn (so each first
//! connection starts its tenant's instance), and waiting until every instance has
//! been evicted, read from the admin API's metrics.

use std::time::{Duration, Instant};

use anyhow::Result;

use crate::client::Client;
use crate::scenario::AUTH;

/// Clients joined to tenants `t0`..`t{count-1}` one after the other, and how long each
/// took; nothing else is queued in front of any of them.
pub struct Joined {
    /// The clients, still connected.
    pub clients: Vec<Client>,
    /// How long each join took, in microseconds.
    pub micros: Vec<u32>,
    /// Says where joining stopped, if it did.
    pub stopped: String,
}

impl Joined {
    /// The `q` quantile of the join times, in milliseconds (NaN when none joined).
    pub fn quantile_ms(&self, q: f64) -> f64 {
        let mut sorted = self.micros.clone();
        sorted.sort_unstable();
        let Some(last) = sorted.len().checked_sub(1) else {
            return f64::NAN;
        };
        f64::from(sorted[(last as f64 * q) as usize]) / 1000.0
    }
}

/// Joins `/t0`..`/t{count-1}` at `base`, one after the other; stops at the first that
/// fails (a host that runs out of something says so; the figures cover those before).
pub async fn join_each(base: &str, count: usize) -> Joined {
    let mut joined = Joined {
        clients: Vec::with_capacity(count),
        micros: Vec::with_capacity(count),
        stopped: String::new(),
    };
    for i in 0..count {
        let started = Instant::now();
        let nsp = format!("/t{i}");
        match Client::connect(base, &nsp, AUTH).await {
            Ok(client) => {
                joined.micros.push(started.elapsed().as_micros() as u32);
                joined.clients.push(client);
            }
            Err(error) => {
                joined.stopped = format!("\nA connection to tenant {i} of {count} failed: {error:#}. The figures are for the {i} before it.\n");
                break;
            }
        }
    }
    joined
}

/// The instances nsbox runs now, all tenants together, from the metrics of the admin
/// API at `admin` (`host:port`).
pub async fn instances_running(admin: &str) -> Result<u64> {
    let page = crate::metrics::scrape(admin).await?;
    Ok(crate::metrics::sum(&page, "nsbox_tenant_instances{") as u64)
}

/// Waits, checking every `step`, until no instance runs; an error after `limit`.
pub async fn until_all_evicted(admin: &str, step: Duration, limit: Duration) -> Result<()> {
    let started = Instant::now();
    loop {
        tokio::time::sleep(step).await;
        let running = instances_running(admin).await.unwrap_or(u64::MAX);
        if running == 0 {
            return Ok(());
        }
        anyhow::ensure!(
            started.elapsed() < limit,
            "{running} instances still running {limit:?} after their clients left"
        );
    }
}

/// How long the admin API at `admin`, asked with the operator's `token`, takes to answer
/// the tenant list with `count` tenants registered (medians of 7): a page of 100 by name, the last page, sorted by sockets,
/// a search for one name, and a page of 1,000; as a Markdown table.
pub async fn list_latencies(admin: &str, token: &str, count: usize) -> Result<String> {
    let last = count.saturating_sub(100);
    let queries = [
        ("a page of 100 by name", "limit=100".to_owned()),
        ("the last page", format!("offset={last}&limit=100")),
        (
            "sorted by sockets",
            "sort=sockets&order=desc&limit=100".to_owned(),
        ),
        ("a search", format!("q=t{}", count.saturating_sub(1))),
        ("a page of 1,000", "limit=1000".to_owned()),
    ];
    let mut header = String::from("| `GET /v1/tenants` |");
    let mut row = format!("| ms, {count} tenants |");
    for (what, query) in queries {
        let mut took = Vec::new();
        for _ in 0..7 {
            let started = std::time::Instant::now();
            crate::admin::get(admin, token, &format!("/v1/tenants?{query}")).await?;
            took.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        took.sort_by(f64::total_cmp);
        header += &format!(" {what} |");
        row += &format!(" {:.1} |", took[took.len() / 2]);
    }
    let rule = format!("|{}", "---|".repeat(6));
    Ok(format!("\n{header}\n{rule}\n{row}\n"))
}
