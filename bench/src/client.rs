//! A Socket.IO client over a raw WebSocket, as small as the protocol allows, so the
//! load generator spends its time on the servers and not on itself: Engine.IO v4
//! text frames, one namespace per connection, acks by id.

use anyhow::{bail, Context, Result};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

type Ws = WebSocketStream<TcpStream>;

/// How long the client waits for the server to answer anything.
pub const PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);

/// One client joined to one namespace.
pub struct Client {
    ws: Ws,
    /// `42/nsp,` and `43/nsp,`: the prefixes of events and acks in this namespace.
    event_prefix: String,
    ack_prefix: String,
    next_ack: u64,
}

/// What the server sent, as far as the benchmark cares.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    /// An ack with its id.
    Ack(u64),
    /// An event (its name and arguments not parsed).
    Event,
    /// Anything else (pings are answered before this is returned).
    Other,
}

impl Client {
    /// Opens a WebSocket to `base` (`ws://host:port`), and joins `nsp` with `auth`.
    pub async fn connect(base: &str, nsp: &str, auth: &str) -> Result<Client> {
        tokio::time::timeout(PATIENCE, Client::join(base, nsp, auth))
            .await
            .with_context(|| format!("joining {nsp} took over {PATIENCE:?}"))?
    }

    async fn join(base: &str, nsp: &str, auth: &str) -> Result<Client> {
        let url = format!("{base}/socket.io/?EIO=4&transport=websocket");
        let address = base
            .strip_prefix("ws://")
            .context("the base URL is ws://HOST:PORT")?;
        let stream = TcpStream::connect(address)
            .await
            .with_context(|| format!("connecting to {address}"))?;
        stream.set_nodelay(true)?;
        let (ws, _) = tokio_tungstenite::client_async(url.as_str(), stream)
            .await
            .with_context(|| format!("opening {url}"))?;
        let mut client = Client {
            ws,
            event_prefix: format!("42{nsp},"),
            ack_prefix: format!("43{nsp},"),
            next_ack: 0,
        };
        let open = client.next_text().await?;
        if !open.starts_with('0') {
            bail!("expected the Engine.IO open packet, got {open:?}");
        }
        client.send(format!("40{nsp},{auth}")).await?;
        let joined = format!("40{nsp},");
        let refused = format!("44{nsp},");
        loop {
            let text = client.next_text().await?;
            if text.starts_with(&joined) {
                return Ok(client);
            }
            if text.starts_with(&refused) {
                bail!("{nsp} refused the connection: {text}");
            }
        }
    }

    /// Sends a text frame.
    pub async fn send(&mut self, text: String) -> Result<()> {
        self.ws.send(Message::text(text)).await?;
        Ok(())
    }

    /// Emits `event` with `args_json` (a JSON array's elements) and an ack id; returns it.
    pub async fn emit_with_ack(&mut self, event: &str, args_json: &str) -> Result<u64> {
        let id = self.next_ack;
        self.next_ack += 1;
        let frame = format!("{}{id}[\"{event}\",{args_json}]", self.event_prefix);
        self.send(frame).await?;
        Ok(id)
    }

    /// Emits `event` with `args_json`, no ack.
    pub async fn emit(&mut self, event: &str, args_json: &str) -> Result<()> {
        let frame = format!("{}[\"{event}\",{args_json}]", self.event_prefix);
        self.send(frame).await
    }

    /// The next packet, pings answered on the way.
    pub async fn next(&mut self) -> Result<Incoming> {
        let text = self.next_text().await?;
        if let Some(rest) = text.strip_prefix(&self.ack_prefix) {
            let digits = rest.split('[').next().unwrap_or_default();
            return Ok(Incoming::Ack(digits.parse().context("ack id")?));
        }
        if text.starts_with(&self.event_prefix) {
            return Ok(Incoming::Event);
        }
        Ok(Incoming::Other)
    }

    /// Waits for the ack `id`, skipping anything else; an ack that takes longer than
    /// [`PATIENCE`] is an error, so a lost one fails the run instead of hanging it.
    pub async fn ack(&mut self, id: u64) -> Result<()> {
        let waiting = async {
            loop {
                if self.next().await? == Incoming::Ack(id) {
                    return Ok(());
                }
            }
        };
        tokio::time::timeout(PATIENCE, waiting)
            .await
            .with_context(|| format!("no ack {id} within {PATIENCE:?}"))?
    }

    /// Closes the connection.
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }

    async fn next_text(&mut self) -> Result<String> {
        loop {
            let message = self
                .ws
                .next()
                .await
                .context("the server closed the connection")??;
            match message {
                Message::Text(text) if text.as_str() == "2" => {
                    self.ws.send(Message::text("3")).await?;
                }
                Message::Text(text) => return Ok(text.as_str().to_owned()),
                Message::Close(_) => bail!("the server closed the connection"),
                _ => {}
            }
        }
    }
}
