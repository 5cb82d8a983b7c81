//! The reference server for Socket.IO's own protocol test suites
//! (`socketio/engine.io-protocol` and `socketio/socket.io-protocol`, `test-suite/`):
//! Socket.IO at `/socket.io/` and a raw Engine.IO echo at `/engine.io/`.
//!
//! `cargo run --release -p integration-tests --example conformance -- --listen 127.0.0.1:3000`

use std::net::SocketAddr;

use clap::Parser;

#[derive(Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt::init();
    let args = Args::parse();
    let (_io, server) = integration_tests::demo::conformance_server();
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    tracing::info!("conformance server on http://{}", listener.local_addr()?);
    server
        .serve(listener, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await;
    Ok(())
}
