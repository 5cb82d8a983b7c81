//! The bench app (see `bench/README.md`) on socketioxide with native Rust handlers:
//! a dynamic namespace `/{tenant}` behind an auth middleware (`auth.token == "ok"`),
//! `echo` acks its argument, `broadcast` sends `msg` to the whole namespace.
//! Usage: socketioxide-peer PORT

use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use socketioxide::extract::{AckSender, Data, SocketRef, TryData};
use socketioxide::handler::ConnectHandler;
use socketioxide::SocketIo;
use tokio::net::TcpListener;

async fn authorized(TryData(auth): TryData<Value>) -> Result<(), &'static str> {
    match auth
        .ok()
        .as_ref()
        .and_then(|a| a.get("token"))
        .and_then(Value::as_str)
    {
        Some("ok") => Ok(()),
        _ => Err("unauthorized"),
    }
}

async fn connected(socket: SocketRef, io: SocketIo) {
    socket.on("echo", async |Data(arg): Data<Value>, ack: AckSender| {
        let _ = ack.send(&arg);
    });
    socket.on(
        "broadcast",
        async move |socket: SocketRef, Data(arg): Data<Value>| {
            if let Some(everyone) = io.of(socket.ns()) {
                let _ = everyone.emit("msg", &arg).await;
            }
        },
    );
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "3200".into())
        .parse()?;
    let (service, io) = SocketIo::new_svc();
    io.dyn_ns("/{tenant}", connected.with(authorized))?;
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let service = service.clone();
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await;
        });
    }
}
