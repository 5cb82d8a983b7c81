//! nsbox's own figures, read from the Prometheus text of its admin API: what the load
//! generator cannot see from outside, such as the CPU spent inside tenant calls.

use anyhow::Result;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The metrics page of the admin API at `admin` (`host:port`).
pub async fn scrape(admin: &str) -> Result<String> {
    let mut stream = tokio::net::TcpStream::connect(admin).await?;
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    Ok(response)
}

/// The sum of every sample whose line starts with `series` (a name, or a name and the
/// start of its labels, e.g. `nsbox_tenant_instances{`).
pub fn sum(page: &str, series: &str) -> f64 {
    page.lines()
        .filter(|line| line.starts_with(series))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// CPU seconds spent in calls into `tenant`, and how many calls, so far.
pub async fn tenant_calls(admin: &str, tenant: &str) -> Result<(f64, f64)> {
    let page = scrape(admin).await?;
    let labels = format!("{{tenant=\"{tenant}\"}}");
    Ok((
        sum(&page, &format!("nsbox_tenant_call_cpu_seconds_sum{labels}")),
        sum(
            &page,
            &format!("nsbox_tenant_call_cpu_seconds_count{labels}"),
        ),
    ))
}
