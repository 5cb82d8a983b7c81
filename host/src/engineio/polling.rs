//! HTTP long-polling: the handshake GET, data GETs and POSTs.

use std::sync::Arc;

use http::{header, Request};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use super::packet::Packet;
use super::session::{CloseReason, ConnectInfo, Session, TransportKind};
use super::{payload, text_response, Engine, HttpResponse};
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

/// A GET: waits for at least one packet and sends everything queued, in one body.
pub(super) async fn get(session: Arc<Session>) -> Result<HttpResponse, HttpError> {
    if session.is_upgrading() {
        // The client is moving to WebSocket; release it at once, as Node does.
        return Ok(text_response(Packet::Noop.to_text()));
    }
    let Ok(mut rx) = session.rx.try_lock() else {
        // Two polls at once: the pending one receives the close packet, this one an error.
        session.close(CloseReason::TransportError);
        return Err(HttpError::BadRequest);
    };
    let first = tokio::select! {
        biased;
        packet = rx.recv() => packet,
        _ = session.closed() => None,
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
    let body = match Limited::new(req.into_body(), max).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            // Too large, or the client went away mid-body.
            session.close(CloseReason::TransportError);
            return Err(HttpError::PayloadTooLarge);
        }
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
