//! The measured nsbox's admin API, over plain HTTP/1.1 with the operator's token.

use std::time::Duration;

use anyhow::{Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The operator's token of the measured nsbox (its configuration's `admin_token`).
pub const TOKEN: &str = "bench-operator-token";

/// One request to the admin API at `admin` (`host:port`); its response, if 200.
async fn request(admin: &str, head: &str, body: &[u8]) -> Result<String> {
    let mut stream = tokio::net::TcpStream::connect(admin).await?;
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    let mut response = String::new();
    tokio::time::timeout(
        Duration::from_secs(120),
        stream.read_to_string(&mut response),
    )
    .await
    .context("the admin API did not answer within 120 s")??;
    anyhow::ensure!(
        response.starts_with("HTTP/1.1 200"),
        "the admin API answered {}",
        response.lines().next().unwrap_or_default()
    );
    Ok(response)
}

/// `PUT path` with `bytes` as the body, as the bearer of `token`.
pub async fn put(admin: &str, token: &str, path: &str, bytes: &[u8]) -> Result<String> {
    let head = format!(
        "PUT {path} HTTP/1.1\r\nHost: {admin}\r\nAuthorization: Bearer {token}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        bytes.len()
    );
    request(admin, &head, bytes).await
}

/// `GET path`, as the bearer of `token`.
pub async fn get(admin: &str, token: &str, path: &str) -> Result<String> {
    let head = format!(
        "GET {path} HTTP/1.1\r\nHost: {admin}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    request(admin, &head, &[]).await
}

/// The body of an HTTP response.
pub fn body(response: &str) -> &str {
    response.split_once("\r\n\r\n").map_or("", |(_, body)| body)
}
