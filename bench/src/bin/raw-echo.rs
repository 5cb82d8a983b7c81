//! `raw-echo PORT`: the benchmark's ceiling ([`nsbox_bench::raw_echo`]) on
//! 127.0.0.1:PORT until killed.

use anyhow::{Context, Result};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .context("usage: raw-echo PORT")?
        .parse()
        .context("the port is a number")?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    nsbox_bench::raw_echo::serve(listener).await
}
