//! The WebSocket transport: direct sessions, and the probe/upgrade handshake
//! that moves a polling session over.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::Either;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{FutureExt, SinkExt, StreamExt};
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

use super::deflate::{self, Deflated};
use super::packet::Packet;
use super::session::{CloseReason, ConnectInfo, Session, TransportKind};
use super::{Engine, HttpResponse};
use crate::config::EngineConfig;
use crate::error::HttpError;

type Io = TokioIo<Upgraded>;
/// A connection, compressed or not: either way a stream and sink of tungstenite's messages.
/// The compressed one is boxed: twice the size of the plain one, it would make every
/// connection as large.
type Ws = Either<WebSocketStream<Io>, Box<Deflated<Io>>>;

/// How many times in a row a writer lets the thread run before writing broadcasts,
/// while more of them keep coming.
const BROADCAST_WAITS: usize = 4;

/// How long the writer may go on flushing after the reader has stopped.
const FLUSH_GRACE: Duration = Duration::from_secs(1);

/// A WebSocket with no `sid`: a new session whose first frame is the open packet.
pub(super) fn open(
    engine: &Arc<Engine>,
    req: Request<Incoming>,
    info: ConnectInfo,
) -> Result<HttpResponse, HttpError> {
    let (response, req, extension) = accept(req, &engine.config)?;
    let engine = engine.clone();
    tokio::spawn(async move {
        let Some(mut ws) = into_websocket(req, &engine.config, extension).await else {
            return;
        };
        let session = engine.open_session(info, TransportKind::WebSocket);
        let open = Packet::Open(session.handshake_json(&[])).to_text();
        if ws.send(Message::Text(open.into())).await.is_err() {
            session.close(CloseReason::TransportError);
            return;
        }
        // A task of its own for the connection's life: this one's state, which held
        // the upgrade's, is freed now rather than kept as long as the connection. Split
        // here, so that the task holds the halves only, not room for the whole.
        let (sink, stream) = ws.split();
        tokio::spawn(run(session, sink, stream));
    });
    Ok(response)
}

/// A WebSocket for an existing polling session: probe, then take the session over on `5`.
pub(super) fn upgrade(
    req: Request<Incoming>,
    session: Arc<Session>,
) -> Result<HttpResponse, HttpError> {
    let (response, req, extension) = accept(req, &session.config)?;
    if session.transport() != TransportKind::Polling || session.is_upgrading() {
        // Already upgraded or upgrading: as Node does, the second WebSocket's handshake
        // completes and the connection is closed at once; the session goes on.
        tokio::spawn(async move {
            if let Some(mut ws) = into_websocket(req, &session.config, extension).await {
                let _ = ws.close().await;
            }
        });
        return Ok(response);
    }
    // Counted from now, before the client can send a frame: a poll that follows the
    // probe on another connection must not be answered before the probe is read.
    let mut unprobed = Some(session.websocket_opened());
    tokio::spawn(async move {
        let Some(mut ws) = into_websocket(req, &session.config, extension).await else {
            return;
        };
        let deadline = tokio::time::sleep(session.config.upgrade_timeout);
        tokio::pin!(deadline);
        // Whether this WebSocket started the upgrade: only then may it abort it.
        let mut probed = false;
        // A frame read right behind the probe, handled before anything else.
        let mut ready = None;
        loop {
            let frame = match ready.take() {
                Some(frame) => Some(frame),
                None => tokio::select! {
                    frame = ws.next() => frame,
                    _ = &mut deadline => None,
                    _ = session.closed() => None,
                },
            };
            let packet = match frame {
                Some(Ok(Message::Text(text))) => Packet::decode_text(text.as_str()).ok(),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                _ => None,
            };
            match packet {
                Some(Packet::PingProbe) if probed || session.begin_upgrade() => {
                    probed = true;
                    if ws
                        .send(Message::Text(Packet::PongProbe.to_text().into()))
                        .await
                        .is_err()
                    {
                        break;
                    }
                    // What the client sent right behind the probe (its `5`) is handled
                    // before a poll waiting on this WebSocket hears of the upgrade: Node,
                    // reading in order, sees it before a poll sent after it.
                    match ws.next().now_or_never() {
                        Some(Some(frame)) => ready = Some(frame),
                        Some(None) => break,
                        None => {
                            unprobed.take();
                            session.announce_upgrade();
                        }
                    }
                }
                Some(Packet::Upgrade) if probed => {
                    session.finish_upgrade();
                    unprobed.take();
                    session.announce_upgrade();
                    tracing::debug!(sid = %session.id, "upgraded to websocket");
                    let (sink, stream) = ws.split();
                    tokio::spawn(run(session, sink, stream));
                    return;
                }
                _ => break,
            }
        }
        drop(unprobed);
        if probed {
            session.abort_upgrade();
        }
        let _ = ws.close().await;
    });
    Ok(response)
}

/// Checks the WebSocket handshake headers and builds the `101` answer, with the
/// `permessage-deflate` the client offered and the configuration allows.
fn accept(
    req: Request<Incoming>,
    config: &EngineConfig,
) -> Result<(HttpResponse, Request<Incoming>, Option<String>), HttpError> {
    let headers = req.headers();
    let has_token = |name: header::HeaderName, token: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    if !has_token(header::CONNECTION, "upgrade") || !has_token(header::UPGRADE, "websocket") {
        return Err(HttpError::BadRequest);
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .map(HeaderValue::as_bytes)
        != Some(b"13")
    {
        return Err(HttpError::BadRequest);
    }
    let key = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .ok_or(HttpError::BadRequest)?;
    let accept = derive_accept_key(key.as_bytes());
    let extension = match config.per_message_deflate {
        Some(_) => deflate::agree(headers).map_err(|_| HttpError::BadRequest)?,
        None => None,
    };
    let mut response = Response::new(Full::<Bytes>::default());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let out = response.headers_mut();
    out.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    out.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    out.insert(
        header::SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&accept).map_err(|_| HttpError::BadRequest)?,
    );
    if let Some(extension) = &extension {
        out.insert(
            header::SEC_WEBSOCKET_EXTENSIONS,
            HeaderValue::from_str(extension).map_err(|_| HttpError::BadRequest)?,
        );
    }
    Ok((response, req, extension))
}

/// The read buffer of a WebSocket connection, and the most one read takes. Small, since
/// most connections are idle most of the time (tungstenite's default, 128 KiB, was most
/// of an idle connection's memory, and was zeroed before each read; 1 KiB was still an
/// eighth of it): a message larger than this is read in several steps (a 1 MB one in
/// about two thousand).
const READ_BUFFER_BYTES: usize = 512;

async fn into_websocket(
    req: Request<Incoming>,
    config: &EngineConfig,
    extension: Option<String>,
) -> Option<Ws> {
    let upgraded = match hyper::upgrade::on(req).await {
        Ok(upgraded) => upgraded,
        Err(error) => {
            tracing::debug!(%error, "websocket upgrade failed");
            return None;
        }
    };
    let io = TokioIo::new(upgraded);
    let max_payload = config.max_payload;
    if let (Some(extension), Some(threshold)) = (extension, config.per_message_deflate) {
        return match Deflated::new(io, &extension, threshold, max_payload) {
            Ok(ws) => Some(Either::Right(Box::new(ws))),
            Err(error) => {
                tracing::debug!(%error, "permessage-deflate refused");
                None
            }
        };
    }
    // A message or frame over maxPayload is a protocol error that closes this connection only.
    let config = WebSocketConfig::default()
        .max_message_size(Some(max_payload))
        .max_frame_size(Some(max_payload))
        .read_buffer_size(READ_BUFFER_BYTES);
    let ws = WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await;
    Some(Either::Left(ws))
}

fn frame(packet: Packet) -> Message {
    match packet {
        Packet::Binary(bytes) => Message::Binary(bytes),
        Packet::Encoded(text) => Message::Text(text),
        other => Message::Text(other.to_text().into()),
    }
}

/// Serves a session over its WebSocket until either side closes it.
async fn run(session: Arc<Session>, mut sink: SplitSink<Ws, Message>, mut stream: SplitStream<Ws>) {
    // Set by the reader on a message over maxPayload: the close frame says so (1009),
    // as `ws` closes it.
    let too_large = AtomicBool::new(false);
    let writer = async {
        let mut rx = session.rx.lock().await;
        // Made once: waiting on the token registers a waiter, which is not free per packet.
        let closed = session.closed();
        tokio::pin!(closed);
        loop {
            let packet = tokio::select! {
                biased;
                packet = rx.recv() => Some(packet),
                _ = &mut closed => None,
            };
            let Some(packet) = packet else { break };
            let mut result = sink.feed(frame(packet)).await;
            let mut waits = 0;
            loop {
                while let (Ok(()), Some(packet)) = (&result, rx.try_recv()) {
                    result = sink.feed(frame(packet)).await;
                }
                // Asked every time, so that the last wait leaves no stale mark for the
                // next lone packet.
                let broadcast = session.take_broadcast_queued();
                if !broadcast || waits == BROADCAST_WAITS {
                    break;
                }
                // A broadcast came since the last look: the thread's other ready tasks
                // run, and it looks for I/O (the next broadcast on its way, perhaps),
                // before this one goes on; what they queue goes in the same write.
                waits += 1;
                tokio::task::yield_now().await;
            }
            session.counters().wrote();
            if result.is_err() || sink.flush().await.is_err() {
                session.close(CloseReason::TransportError);
                return;
            }
        }
        if too_large.load(Ordering::Relaxed) {
            let frame = CloseFrame {
                code: CloseCode::Size,
                reason: Utf8Bytes::default(),
            };
            let _ = sink.send(Message::Close(Some(frame))).await;
        }
        let _ = sink.close().await;
    };
    let reader = async {
        while let Some(message) = stream.next().await {
            match message {
                // A message (`4…`) is read where it is; the other packets are decoded.
                Ok(Message::Text(text)) if text.starts_with('4') => {
                    session.receive_message(&text[1..]);
                }
                Ok(Message::Text(text)) => match Packet::decode_text(text.as_str()) {
                    Ok(packet) => session.receive(packet),
                    Err(_) => {
                        session.close(CloseReason::ParseError);
                        return;
                    }
                },
                Ok(Message::Binary(data)) => session.receive(Packet::Binary(data)),
                Ok(Message::Close(_)) => break,
                Ok(_) => {}
                Err(WsError::Capacity(error)) => {
                    tracing::debug!(sid = %session.id, %error, "message over maxPayload");
                    too_large.store(true, Ordering::Relaxed);
                    session.close(CloseReason::TransportError);
                    return;
                }
                Err(_) => {
                    session.close(CloseReason::TransportError);
                    return;
                }
            }
            if session.is_closed() {
                return;
            }
        }
        session.close(CloseReason::TransportClose);
    };
    tokio::pin!(writer);
    tokio::select! {
        _ = &mut writer => {}
        _ = async { tokio::select! { _ = reader => {}, _ = session.closed() => {} } } => {
            let _ = tokio::time::timeout(FLUSH_GRACE, &mut writer).await;
        }
    }
}
