//! A Socket.IO client over a WebSocket it frames itself, so the load generator spends
//! its time on the servers and not on itself: Engine.IO v4 text frames, one namespace
//! per connection, acks by id. No allocation per message: frames are encoded into one
//! reused buffer, and read frames are looked at in place in another.
//!
//! (A general WebSocket library costs more than the protocol needs here: tungstenite
//! zeroes a 128 KiB read buffer per read and allocates each message, which made the
//! generator, not the server, the bottleneck.)

use anyhow::{bail, ensure, Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long the client waits for the server to answer anything.
pub const PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);

/// The largest frame the client accepts; the benchmark's frames are under 1 KiB.
const MAX_FRAME: usize = 1 << 20;
/// What one read asks the kernel for, at least.
const READ_CHUNK: usize = 4096;
/// The masking key of every frame the client sends (RFC 6455 requires a mask; the
/// servers cannot tell a fixed one from a random one).
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// One client joined to one namespace (or, raw, a WebSocket to an echo server).
pub struct Client {
    stream: TcpStream,
    /// Bytes read and not yet consumed: `read[consumed..]`.
    read: Vec<u8>,
    consumed: usize,
    /// The frame being encoded.
    write: Vec<u8>,
    /// `42/nsp,` and `43/nsp,`: the prefixes of events and acks in this namespace.
    event_prefix: String,
    ack_prefix: String,
    next_ack: u64,
    /// Engine.IO pings the server sent and this client answered.
    pings: u64,
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

/// A frame's kind, from its opcode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opcode {
    Data,
    Close,
    Ping,
    Pong,
}

impl Client {
    /// Opens a WebSocket to `base` (`ws://host:port`), and joins `nsp` with `auth`.
    pub async fn connect(base: &str, nsp: &str, auth: &str) -> Result<Client> {
        Client::connect_from(None, base, nsp, auth).await
    }

    /// [`Client::connect`] from the local address `source` (any when `None`): past
    /// the ephemeral ports of one address, more connections need more addresses.
    pub async fn connect_from(
        source: Option<std::net::IpAddr>,
        base: &str,
        nsp: &str,
        auth: &str,
    ) -> Result<Client> {
        tokio::time::timeout(PATIENCE, Client::join(source, base, nsp, auth))
            .await
            .with_context(|| format!("joining {nsp} took over {PATIENCE:?}"))?
    }

    /// Opens a plain WebSocket to an echo server at `base`: no Engine.IO, no namespace.
    /// Events come back as they were sent, so an echoed event counts as its ack.
    pub async fn connect_raw(base: &str) -> Result<Client> {
        let mut client = tokio::time::timeout(PATIENCE, Client::open(None, base, "/"))
            .await
            .context("opening the WebSocket took too long")??;
        client.ack_prefix = client.event_prefix.clone();
        Ok(client)
    }

    async fn join(
        source: Option<std::net::IpAddr>,
        base: &str,
        nsp: &str,
        auth: &str,
    ) -> Result<Client> {
        let path = "/socket.io/?EIO=4&transport=websocket";
        let mut client = Client::open(source, base, path).await?;
        client.event_prefix = format!("42{nsp},");
        client.ack_prefix = format!("43{nsp},");
        let open = client.next_data().await?;
        let open = &client.read[open];
        ensure!(
            open.starts_with(b"0"),
            "expected the Engine.IO open packet, got {:?}",
            String::from_utf8_lossy(open)
        );
        client.send(&format!("40{nsp},{auth}")).await?;
        let (joined, refused) = (format!("40{nsp},"), format!("44{nsp},"));
        loop {
            let text = client.next_data().await?;
            let text = &client.read[text];
            if text.starts_with(joined.as_bytes()) {
                return Ok(client);
            }
            if text.starts_with(refused.as_bytes()) {
                bail!(
                    "{nsp} refused the connection: {}",
                    String::from_utf8_lossy(text)
                );
            }
        }
    }

    /// Connects and completes the WebSocket handshake for `path`.
    async fn open(source: Option<std::net::IpAddr>, base: &str, path: &str) -> Result<Client> {
        let address = base
            .strip_prefix("ws://")
            .context("the base URL is ws://HOST:PORT")?;
        let mut stream = match source {
            None => TcpStream::connect(address).await,
            Some(source) => {
                let to: std::net::SocketAddr = address.parse().context("HOST:PORT")?;
                let socket = match source {
                    std::net::IpAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
                    std::net::IpAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
                };
                socket.set_reuseaddr(true)?;
                socket.bind((source, 0).into())?;
                socket.connect(to).await
            }
        }
        .with_context(|| format!("connecting to {address}"))?;
        stream.set_nodelay(true)?;
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {address}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await?;
        let mut client = Client {
            stream,
            read: Vec::with_capacity(READ_CHUNK),
            consumed: 0,
            write: Vec::with_capacity(256),
            event_prefix: "42/,".into(),
            ack_prefix: "43/,".into(),
            next_ack: 0,
            pings: 0,
        };
        let head_end = loop {
            if let Some(at) = client.read.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            ensure!(
                client.read.len() < 16 << 10,
                "the response head is too long"
            );
            client.fill().await?;
        };
        let head = String::from_utf8_lossy(&client.read[..head_end]);
        let status = head.lines().next().unwrap_or_default();
        ensure!(
            status.starts_with("HTTP/1.1 101"),
            "{base}{path} answered {status:?}, not a WebSocket"
        );
        client.consumed = head_end;
        Ok(client)
    }

    /// Sends a text frame.
    pub async fn send(&mut self, text: &str) -> Result<()> {
        self.write.clear();
        frame_header(&mut self.write, 0x1, text.len());
        self.write.extend_from_slice(text.as_bytes());
        self.flush_frame().await
    }

    /// Emits `event` with `args_json` (a JSON array's elements) and an ack id; returns it.
    pub async fn emit_with_ack(&mut self, event: &str, args_json: &str) -> Result<u64> {
        let id = self.next_ack;
        self.next_ack += 1;
        let mut digits = [0u8; 20];
        let id_text = decimal(id, &mut digits);
        self.emit_frame(id_text, event, args_json).await?;
        Ok(id)
    }

    /// Emits `event` with `args_json`, no ack.
    pub async fn emit(&mut self, event: &str, args_json: &str) -> Result<()> {
        self.emit_frame(b"", event, args_json).await
    }

    /// Encodes `<prefix><id>["<event>",<args>]` into the write buffer and sends it.
    async fn emit_frame(&mut self, id: &[u8], event: &str, args_json: &str) -> Result<()> {
        let parts: [&[u8]; 7] = [
            self.event_prefix.as_bytes(),
            id,
            b"[\"",
            event.as_bytes(),
            b"\",",
            args_json.as_bytes(),
            b"]",
        ];
        let len = parts.iter().map(|p| p.len()).sum();
        self.write.clear();
        frame_header(&mut self.write, 0x1, len);
        for part in parts {
            self.write.extend_from_slice(part);
        }
        self.flush_frame().await
    }

    /// Masks the payload of the frame in the write buffer and writes the frame out.
    async fn flush_frame(&mut self) -> Result<()> {
        let payload_at = self.write.len() - payload_len(&self.write);
        for (i, byte) in self.write[payload_at..].iter_mut().enumerate() {
            *byte ^= MASK[i % 4];
        }
        self.stream.write_all(&self.write).await?;
        Ok(())
    }

    /// The next packet, pings answered on the way. Cancel-safe: what was read stays in
    /// the buffer for the next call.
    pub async fn next(&mut self) -> Result<Incoming> {
        let text = self.next_data().await?;
        let text = &self.read[text];
        if let Some(rest) = text.strip_prefix(self.ack_prefix.as_bytes()) {
            let digits = rest.iter().take_while(|b| b.is_ascii_digit());
            let mut id: u64 = 0;
            for digit in digits {
                id = id
                    .checked_mul(10)
                    .and_then(|id| id.checked_add(u64::from(digit - b'0')))
                    .context("ack id")?;
            }
            return Ok(Incoming::Ack(id));
        }
        if text.starts_with(self.event_prefix.as_bytes()) {
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

    /// Waits for the ack `id` as [`Client::ack`] does, but with no timer of its own:
    /// for the closed loops, whose collection bounds them all at once (a timer set and
    /// cancelled per call was about a seventh of the generator's own CPU per call).
    pub async fn answered(&mut self, id: u64) -> Result<()> {
        while self.next().await? != Incoming::Ack(id) {}
        Ok(())
    }

    /// How many Engine.IO pings the server sent and this client answered.
    pub fn pings(&self) -> u64 {
        self.pings
    }

    /// Closes the connection (a close frame, then the socket).
    pub async fn close(mut self) {
        self.write.clear();
        frame_header(&mut self.write, 0x8, 0);
        let _ = self.stream.write_all(&self.write).await;
        let _ = self.stream.shutdown().await;
    }

    /// Where the payload of the next text or binary frame is in the read buffer;
    /// Engine.IO pings answered, WebSocket pings ponged.
    async fn next_data(&mut self) -> Result<std::ops::Range<usize>> {
        loop {
            let Some((opcode, start, end)) = self.parse()? else {
                self.fill().await?;
                continue;
            };
            self.consumed = end;
            match opcode {
                Opcode::Data if &self.read[start..end] == b"2" => {
                    self.send("3").await?;
                    self.pings += 1;
                }
                Opcode::Data => return Ok(start..end),
                Opcode::Ping => {
                    let payload = self.read[start..end].to_vec();
                    self.write.clear();
                    frame_header(&mut self.write, 0xA, payload.len());
                    self.write.extend_from_slice(&payload);
                    self.flush_frame().await?;
                }
                Opcode::Pong => {}
                Opcode::Close => bail!("the server closed the connection"),
            }
        }
    }

    /// The first complete frame in the buffer: its opcode and where its payload is.
    fn parse(&self) -> Result<Option<(Opcode, usize, usize)>> {
        let bytes = &self.read[self.consumed..];
        let [first, second, ..] = *bytes else {
            return Ok(None);
        };
        ensure!(
            first & 0x80 != 0,
            "a fragmented frame (not sent by the servers under test)"
        );
        ensure!(second & 0x80 == 0, "a masked frame from the server");
        let (len, header) = match second & 0x7f {
            126 if bytes.len() >= 4 => (usize::from(u16::from_be_bytes([bytes[2], bytes[3]])), 4),
            127 if bytes.len() >= 10 => {
                let mut be = [0u8; 8];
                be.copy_from_slice(&bytes[2..10]);
                (
                    usize::try_from(u64::from_be_bytes(be)).unwrap_or(usize::MAX),
                    10,
                )
            }
            126 | 127 => return Ok(None),
            short => (usize::from(short), 2),
        };
        ensure!(len <= MAX_FRAME, "a frame of {len} bytes");
        if bytes.len() < header + len {
            return Ok(None);
        }
        let opcode = match first & 0x0f {
            0x1 | 0x2 => Opcode::Data,
            0x8 => Opcode::Close,
            0x9 => Opcode::Ping,
            0xA => Opcode::Pong,
            other => bail!("opcode {other:#x}"),
        };
        let start = self.consumed + header;
        Ok(Some((opcode, start, start + len)))
    }

    /// Reads more from the socket (dropping what was consumed first).
    async fn fill(&mut self) -> Result<()> {
        if self.consumed > 0 {
            self.read.drain(..self.consumed);
            self.consumed = 0;
        }
        self.read.reserve(READ_CHUNK);
        let read = self.stream.read_buf(&mut self.read).await?;
        ensure!(read > 0, "the server closed the connection");
        Ok(())
    }
}

/// Appends a masked client frame's header for a payload of `len` bytes.
fn frame_header(out: &mut Vec<u8>, opcode: u8, len: usize) {
    out.push(0x80 | opcode);
    match len {
        0..=125 => out.push(0x80 | len as u8),
        126..=0xffff => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&MASK);
}

/// The payload length of the one frame in `frame` (its header says).
fn payload_len(frame: &[u8]) -> usize {
    let header = match frame.get(1).map(|b| b & 0x7f) {
        Some(126) => 4,
        Some(127) => 10,
        _ => 2,
    } + MASK.len();
    frame.len().saturating_sub(header)
}

/// `n` in decimal, written into the end of `buffer`.
fn decimal(mut n: u64, buffer: &mut [u8; 20]) -> &[u8] {
    let mut at = buffer.len();
    loop {
        at -= 1;
        buffer[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buffer[at..];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_masked_with_the_length_in_the_header() {
        let mut frame = Vec::new();
        frame_header(&mut frame, 0x1, 3);
        frame.extend_from_slice(b"abc");
        assert_eq!(&frame[..2], &[0x81, 0x83]);
        assert_eq!(payload_len(&frame), 3);
        let mut long = Vec::new();
        frame_header(&mut long, 0x1, 300);
        long.resize(long.len() + 300, 0);
        assert_eq!(&long[..4], &[0x81, 0x80 | 126, 1, 44]);
        assert_eq!(payload_len(&long), 300);
    }

    #[test]
    fn ids_in_decimal() {
        let mut buffer = [0u8; 20];
        assert_eq!(decimal(0, &mut buffer), b"0");
        assert_eq!(decimal(4071, &mut buffer), b"4071");
        assert_eq!(decimal(u64::MAX, &mut buffer), b"18446744073709551615");
    }
}
