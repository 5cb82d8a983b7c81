//! The `nsbox` command line.

use std::net::SocketAddr;

use anyhow::Context;
use clap::{Parser, Subcommand};
use nsbox::config::{Cors, EngineConfig, SocketIoConfig};
use nsbox::server::Server;
use nsbox::socketio::SocketIo;

#[derive(Parser)]
#[command(name = "nsbox", version, about = "A multi-tenant Socket.IO server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serves Socket.IO with the built-in demo workspaces (native until Wasm tenants land).
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:3000")]
        listen: SocketAddr,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match Cli::parse().command {
        Command::Serve { listen } => serve(listen).await,
    }
}

async fn serve(listen: SocketAddr) -> anyhow::Result<()> {
    let io = SocketIo::new(SocketIoConfig {
        engine: EngineConfig {
            cors: Cors::any(),
            ..EngineConfig::default()
        },
        ..SocketIoConfig::default()
    });
    nsbox::demo::conformance(&io);
    nsbox::demo::workspaces(&io);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    tracing::info!(
        "nsbox listening on http://{} (namespaces: /, /custom, /observer, and workspaces matching ^/\\w+$)",
        listener.local_addr()?
    );
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
    };
    Server::new()
        .mount(io.engine().clone())
        .serve(listener, shutdown)
        .await;
    Ok(())
}
