//! HTTP long-polling: the handshake GET, data GETs and POSTs.

use std::sync::Arc;
use std::time::Duration;

use http::{header, Request};
use hyper::body::Incoming;

use super::packet::Packet;
use super::session::{CloseReason, ConnectInfo, Session, TransportKind};
use super::{payload, text_response, Engine, HttpResponse};
use crate::body::{read_body, BodyError};
use crate::error::HttpError;

/// Opens a polling session and answers with its open packet.
pub(super) fn handshake(engine: &Arc<Engine>, info: ConnectInfo) -> HttpResponse {
    let session = engine.open_session(info, TransportKind::Polling);
    let upgrades: &[&str] = if engine.config.transports.websocket {
        &["websocket"]
    } else {
        &[]
    };
    text_response(Packet::Open(session.handshake_json(upgrades)).to_text())
}

/// How long a GET that arrives during an upgrade waits for it to settle (or for the
/// probe of a WebSocket opened to upgrade) before it goes on: Node reads the frames the
/// client sent before the GET first, and checks every 100 ms for a poll to noop.
const UPGRADE_SETTLE_WAIT: Duration = Duration::from_millis(100);

/// A GET: waits for at least one packet and sends everything queued, in one body.
pub(super) async fn get(session: Arc<Session>) -> Result<HttpResponse, HttpError> {
    let started = session.upgrade_started();
    let settled = session.upgrade_settled();
    tokio::pin!(started, settled);
    started.as_mut().enable();
    settled.as_mut().enable();
    let deadline = tokio::time::Instant::now() + UPGRADE_SETTLE_WAIT;
    if session.has_unprobed_websocket() && !session.is_upgrading() {
        // The client may have sent `2probe` and `5` over its new WebSocket just before
        // this GET, on another connection: let those frames be read first.
        let _ = tokio::time::timeout_at(deadline, started).await;
    }
    if session.is_upgrading() {
        let _ = tokio::time::timeout_at(deadline, settled).await;
        match session.transport() {
            TransportKind::WebSocket => return Err(HttpError::BadRequest),
            // Still upgrading: released at once so the client can pause polling.
            _ if session.is_upgrading() => return Ok(text_response(Packet::Noop.to_text())),
            TransportKind::Polling => {}
        }
    }
    let Ok(mut rx) = session.rx.try_lock() else {
        // Two polls at once: the pending one receives the close packet, this one an error.
        session.close(CloseReason::TransportError);
        return Err(HttpError::BadRequest);
    };
    let first = loop {
        let upgrade = session.upgrade_started();
        tokio::pin!(upgrade);
        upgrade.as_mut().enable();
        if session.is_upgrading() {
            break Some(Packet::Noop);
        }
        tokio::select! {
            biased;
            packet = rx.recv() => break packet,
            _ = session.closed() => break None,
            // Woken by an upgrade's start (or a WebSocket that went away unprobed).
            _ = upgrade => {}
        }
    };
    let mut packets: Vec<Packet> = first.into_iter().collect();
    while let Ok(packet) = rx.try_recv() {
        packets.push(packet);
    }
    if packets.is_empty() {
        packets.push(Packet::Close);
    }
    Ok(text_response(payload::encode(&packets)))
}

/// A POST: reads at most `maxPayload` bytes and hands every packet to the session.
pub(super) async fn post(
    session: Arc<Session>,
    req: Request<Incoming>,
) -> Result<HttpResponse, HttpError> {
    let max = session.config.max_payload;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > max as u64) {
        session.close(CloseReason::TransportError);
        return Err(HttpError::PayloadTooLarge);
    }
    let read = read_body(req.into_body(), max, session.config.body_timeout);
    let body = tokio::select! {
        read = read => match read {
            Ok(body) => body,
            Err(error) => {
                // Too large, trickling in (holding a connection and a descriptor), or
                // the client went away mid-body.
                session.close(CloseReason::TransportError);
                return Err(match error {
                    BodyError::TimedOut => HttpError::BodyTimeout,
                    BodyError::TooLarge | BodyError::Broken => HttpError::PayloadTooLarge,
                });
            }
        },
        // The session ended (its heartbeat, a close): the body no longer matters.
        _ = session.closed() => return Err(HttpError::UnknownSid),
    };
    let packets = std::str::from_utf8(&body)
        .ok()
        .and_then(|text| payload::decode(text).ok());
    let Some(packets) = packets else {
        session.close(CloseReason::ParseError);
        return Err(HttpError::BadRequest);
    };
    for packet in packets {
        session.receive(packet);
    }
    Ok(text_response("ok"))
}
