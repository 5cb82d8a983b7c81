//! The benchmark's ceiling: a WebSocket server (tokio-tungstenite) that sends every
//! text or binary message back as it came, with no Engine.IO or Socket.IO at all.
//! What a Socket.IO server adds to an echo is the difference between it and this.

use anyhow::Result;
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

/// The read buffer each connection keeps (tungstenite's default, 128 KiB, is zeroed
/// on every read: the ceiling would measure that).
const READ_BUFFER_BYTES: usize = 4096;

/// Accepts connections on `listener` and echoes each one's messages until it closes.
pub async fn serve(listener: TcpListener) -> Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            if let Err(error) = echo(stream).await {
                eprintln!("a connection ended: {error}");
            }
        });
    }
}

async fn echo(stream: TcpStream) -> Result<()> {
    stream.set_nodelay(true)?;
    let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER_BYTES);
    let mut ws = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await?;
    while let Some(message) = ws.next().await {
        match message? {
            message @ (Message::Text(_) | Message::Binary(_)) => ws.send(message).await?,
            Message::Close(_) => break,
            _ => {}
        }
    }
    Ok(())
}
