//! HTTP long-polling: the handshake GET, data GETs and POSTs.

use std::sync::Arc;
use std::time::Duration;

use http::{header, Request};
use hyper::body::Incoming;

use super::compression::Encoding;
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

/// How long a GET that arrives during an upgrade waits for it to finish before it is
/// released with a noop: Node checks every 100 ms for a poll to noop.
const UPGRADE_SETTLE_WAIT: Duration = Duration::from_millis(100);

/// Bodies up to this size are compressed where they are made; larger ones on a
/// blocking thread.
const COMPRESS_INLINE: usize = 64 << 10;

/// A GET: waits for at least one packet and sends everything queued, in one body,
/// encoded with `compression`'s encoding when it is at least its threshold long.
pub(super) async fn get(
    session: Arc<Session>,
    compression: Option<(Encoding, usize)>,
) -> Result<HttpResponse, HttpError> {
    let started = session.upgrade_started();
    let settled = session.upgrade_settled();
    tokio::pin!(started, settled);
    started.as_mut().enable();
    settled.as_mut().enable();
    if session.has_unprobed_websocket() {
        // The client may have sent `2probe` and `5` over its new WebSocket just before
        // this GET, on another connection: those frames are read first, as Node reads
        // them (the WebSocket announces the upgrade once it has read what came with the
        // probe). Bounded: the WebSocket probes or goes within the upgrade timeout.
        tokio::select! {
            _ = started => {}
            _ = session.closed() => return Err(HttpError::UnknownSid),
        }
    }
    if session.transport() == TransportKind::WebSocket {
        return Err(HttpError::BadRequest);
    }
    if session.is_upgrading() {
        let _ = tokio::time::timeout(UPGRADE_SETTLE_WAIT, settled).await;
        match session.transport() {
            // The `5` came meanwhile: whether it was sent before this poll or after cannot
            // be told from here, and a real client sends no poll until its last one is
            // over, so the poll is refused as one after the upgrade.
            TransportKind::WebSocket => return Err(HttpError::BadRequest),
            // Still upgrading: released so the client can pause polling.
            _ if session.is_upgrading() => return Ok(text_response(Packet::Noop.to_text())),
            TransportKind::Polling => {}
        }
    }
    let Ok(mut rx) = session.rx.try_lock() else {
        // Two polls at once: the pending one receives the close packet, this one an error.
        session.close(CloseReason::TransportError);
        return Err(HttpError::BadRequest);
    };
    let packets = loop {
        let upgrade = session.upgrade_started();
        tokio::pin!(upgrade);
        upgrade.as_mut().enable();
        // Released by an upgrade, the poll carries only its noop or close: what is queued
        // goes over the WebSocket.
        match session.transport() {
            _ if session.is_upgrading() => break vec![Packet::Noop],
            // Upgraded while this poll was pending: Node ends it with a close packet.
            TransportKind::WebSocket => break vec![Packet::Close],
            TransportKind::Polling => {}
        }
        tokio::select! {
            biased;
            packet = rx.recv() => {
                let mut packets = vec![packet];
                while let Some(packet) = rx.try_recv() {
                    packets.push(packet);
                }
                break packets;
            }
            _ = session.closed() => break vec![Packet::Close],
            // Woken by an upgrade's start (or a WebSocket that went away unprobed).
            _ = upgrade => {}
        }
    };
    let body = payload::encode(&packets);
    match compression {
        Some((encoding, threshold)) if body.len() >= threshold => {
            // A large body is compressed off the async threads (it may be megabytes).
            let encoded = if body.len() > COMPRESS_INLINE {
                tokio::task::spawn_blocking(move || encoding.encode(body.as_bytes()))
                    .await
                    .map_err(|_| HttpError::BadRequest)?
            } else {
                encoding.encode(body.as_bytes())
            };
            let mut response = text_response(encoded);
            response.headers_mut().insert(
                header::CONTENT_ENCODING,
                header::HeaderValue::from_static(encoding.name()),
            );
            Ok(response)
        }
        _ => Ok(text_response(body)),
    }
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http_body_util::BodyExt;

    use super::super::session::tests::session_on;
    use super::*;

    /// What a GET answered: its body, or the error's code.
    async fn answer(get: tokio::task::JoinHandle<Result<HttpResponse, HttpError>>) -> String {
        match get.await.expect("the GET ran") {
            Ok(response) => {
                let body = response.into_body().collect().await.expect("a body");
                String::from_utf8_lossy(&body.to_bytes()).into_owned()
            }
            Err(error) => format!("error {}", error.code()),
        }
    }

    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_pending_poll_is_released_with_a_noop_when_the_upgrade_is_announced() {
        let session = session_on(TransportKind::Polling);
        let get = tokio::spawn(get(session.clone(), None));
        settle().await;
        assert!(!get.is_finished(), "a long-poll waits");
        assert!(session.begin_upgrade());
        settle().await;
        assert!(!get.is_finished(), "not before the probe's frames are read");
        session.announce_upgrade();
        assert_eq!(answer(get).await, "6");
    }

    #[tokio::test(start_paused = true)]
    async fn a_poll_during_the_upgrade_gets_a_noop_after_nodes_check_or_400_once_it_is_done() {
        let session = session_on(TransportKind::Polling);
        assert!(session.begin_upgrade());
        let waiting = tokio::spawn(get(session.clone(), None));
        tokio::time::advance(UPGRADE_SETTLE_WAIT + Duration::from_millis(1)).await;
        assert_eq!(answer(waiting).await, "6");
        let pending = tokio::spawn(get(session.clone(), None));
        settle().await;
        session.finish_upgrade();
        assert_eq!(
            answer(pending).await,
            "error 3",
            "upgraded meanwhile: refused"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_poll_behind_an_unprobed_websocket_waits_for_its_frames_and_sees_the_upgrade_done() {
        let session = session_on(TransportKind::Polling);
        let unprobed = session.websocket_opened();
        let get = tokio::spawn(get(session.clone(), None));
        // Longer than any fixed wait: bounded only by the WebSocket probing or going.
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(!get.is_finished());
        // The WebSocket reads `2probe` and the `5` right behind it, then tells the polls.
        assert!(session.begin_upgrade());
        session.finish_upgrade();
        drop(unprobed);
        session.announce_upgrade();
        assert_eq!(answer(get).await, "error 3", "400 Bad request, as Node");
    }

    #[tokio::test(start_paused = true)]
    async fn a_websocket_that_goes_unprobed_lets_the_poll_carry_on() {
        let session = session_on(TransportKind::Polling);
        let unprobed = session.websocket_opened();
        let get = tokio::spawn(get(session.clone(), None));
        settle().await;
        drop(unprobed);
        settle().await;
        assert!(!get.is_finished(), "a long-poll again");
        session
            .send(Packet::Message("hello".into()))
            .expect("queued");
        assert_eq!(answer(get).await, "4hello");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_large_poll_body_is_compressed_off_the_async_threads_and_decodes() {
        use std::io::Read;
        let session = session_on(TransportKind::Polling);
        let text = "4".to_owned() + &"x".repeat(COMPRESS_INLINE * 2);
        session.send(Packet::Message(text.clone())).expect("queued");
        let response = get(session.clone(), Some((Encoding::Gzip, 1024)))
            .await
            .expect("answered");
        assert_eq!(
            response.headers().get(header::CONTENT_ENCODING),
            Some(&header::HeaderValue::from_static("gzip"))
        );
        let body = response
            .into_body()
            .collect()
            .await
            .expect("a body")
            .to_bytes();
        assert!(
            body.len() < text.len() / 10,
            "compressed: {} bytes",
            body.len()
        );
        let mut decoded = String::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_string(&mut decoded)
            .expect("gzip");
        assert_eq!(decoded, payload::encode(&[Packet::Message(text)]));
    }
}
