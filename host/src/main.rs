//! The `nsbox` command line.

use std::net::SocketAddr;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use nsbox::server::Server;
use nsbox::settings::{self, Settings};

#[derive(Parser)]
#[command(name = "nsbox", version, about = "A multi-tenant Socket.IO server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serves Socket.IO with the tenants of a configuration file, or of the embedded
    /// default (echo as /t1 and /t2, chat as /acme, admin at /admin).
    Serve {
        /// Address to listen on; overrides the configuration's `listen`.
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// A TOML configuration file (see host/src/default.toml for its shape).
        #[arg(long, env = "NSBOX_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Prints the embedded default configuration, a starting point for your own.
    DefaultConfig,
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
        Command::Serve { listen, config } => serve(listen, config).await,
        Command::DefaultConfig => {
            print!("{}", settings::DEFAULT);
            Ok(())
        }
    }
}

async fn serve(listen: Option<SocketAddr>, config: Option<PathBuf>) -> anyhow::Result<()> {
    let settings = match &config {
        Some(path) => Settings::load(path)?,
        None => Settings::embedded()?,
    };
    let app = nsbox::app::start(&settings).await?;
    let listen = listen.unwrap_or(settings.listen);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let address = listener.local_addr()?;
    tracing::info!(
        "nsbox listening on http://{address} ({})",
        match &config {
            Some(path) => format!("configuration {}", path.display()),
            None => "embedded default configuration".to_owned(),
        }
    );
    for (name, tenant) in &settings.tenants {
        let namespace = tenant
            .namespace
            .clone()
            .unwrap_or_else(|| format!("/{name}"));
        tracing::info!(tenant = %name, component = %tenant.component, "serving {namespace}");
    }
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
    };
    Server::new()
        .mount(app.io.engine().clone())
        .serve(listener, shutdown)
        .await;
    Ok(())
}
