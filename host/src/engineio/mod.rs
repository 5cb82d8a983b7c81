//! Engine.IO v4, server side: the handshake, long-polling and WebSocket
//! transports, the upgrade between them, heartbeats and close.
//!
//! The layer above implements [`EngineHandler`] and sees only sessions and
//! their text and binary messages.

mod compression;
mod counters;
mod deflate;
pub mod packet;
pub mod payload;
mod polling;
pub mod session;
mod websocket;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;

use crate::config::EngineConfig;
use crate::error::HttpError;
pub use compression::Encoding;
pub use counters::{Counters, Traffic};
use session::Registry;
pub use session::{
    CloseReason, ConnectInfo, Connection, EngineHandler, SendError, Session, Sid, TransportKind,
};

/// The HTTP response type of the endpoints.
pub type HttpResponse = Response<Full<Bytes>>;

/// One Engine.IO endpoint: its settings, its live sessions and the layer above.
pub struct Engine {
    config: Arc<EngineConfig>,
    handler: Arc<dyn EngineHandler>,
    sessions: Arc<Registry>,
    /// What it counts of its sessions.
    counters: Arc<Counters>,
}

impl Engine {
    /// An endpoint that hands every new session to `handler`.
    pub fn new(config: EngineConfig, handler: Arc<dyn EngineHandler>) -> Arc<Engine> {
        Arc::new(Engine {
            config: Arc::new(config),
            handler,
            sessions: Arc::new(Registry::default()),
            counters: Arc::default(),
        })
    }

    /// The endpoint's settings.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// How many sessions are open.
    pub fn session_count(&self) -> usize {
        self.sessions.lock().len()
    }

    /// Open sessions by the transport they use now: `(polling, websocket)`; one in the
    /// middle of an upgrade counts as polling.
    pub fn transport_counts(&self) -> (usize, usize) {
        let sessions = self.sessions.lock();
        let websocket = sessions
            .values()
            .filter(|s| s.transport() == TransportKind::WebSocket)
            .count();
        (sessions.len() - websocket, websocket)
    }

    /// Sessions closed so far because their client let more packets or bytes wait
    /// than `max_buffered_packets` or `max_buffered_bytes`.
    pub fn slow_clients_closed(&self) -> u64 {
        self.counters.slow_closed.load(Ordering::Relaxed)
    }

    /// What the endpoint counts of its sessions (the traffic once watched).
    pub fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    /// Closes every session, telling the layer above the server is shutting down.
    pub fn close_all(&self) {
        let sessions: Vec<Arc<Session>> = self.sessions.lock().values().cloned().collect();
        for session in sessions {
            session.close(CloseReason::ServerShuttingDown);
        }
    }

    /// The path it answers on (`/socket.io/` by default).
    pub fn path(&self) -> &str {
        &self.config.path
    }

    /// True when `path` belongs to this endpoint (with or without the trailing slash).
    pub fn matches_path(&self, path: &str) -> bool {
        let configured = self.config.path.as_str();
        path == configured || Some(path) == configured.strip_suffix('/')
    }

    /// Answers one HTTP request addressed to this endpoint.
    pub async fn handle(
        self: &Arc<Self>,
        req: Request<Incoming>,
        remote: SocketAddr,
    ) -> HttpResponse {
        let origin = req
            .headers()
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut response = if req.method() == Method::OPTIONS {
            preflight(&req)
        } else {
            match self.route(req, remote).await {
                Ok(response) => response,
                Err(error) => error_response(error),
            }
        };
        self.add_cors_headers(&mut response, origin.as_deref());
        response
    }

    async fn route(
        self: &Arc<Self>,
        req: Request<Incoming>,
        remote: SocketAddr,
    ) -> Result<HttpResponse, HttpError> {
        let query = parse_query(req.uri().query().unwrap_or(""));
        let param = |name: &str| {
            query
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let transport = match param("transport") {
            Some("polling") if self.config.transports.polling => TransportKind::Polling,
            Some("websocket") if self.config.transports.websocket => TransportKind::WebSocket,
            _ => return Err(HttpError::UnknownTransport),
        };
        if let Some(sid) = param("sid") {
            let session = self
                .sessions
                .lock()
                .get(sid)
                .cloned()
                .ok_or(HttpError::UnknownSid)?;
            return match transport {
                TransportKind::Polling if session.transport() != TransportKind::Polling => {
                    Err(HttpError::BadRequest)
                }
                TransportKind::Polling if req.method() == Method::GET => {
                    let compression = self.config.http_compression.and_then(|threshold| {
                        Some((Encoding::accepted(req.headers())?, threshold))
                    });
                    polling::get(session, compression).await
                }
                TransportKind::Polling if req.method() == Method::POST => {
                    polling::post(session, req).await
                }
                TransportKind::Polling => Err(HttpError::BadRequest),
                TransportKind::WebSocket => websocket::upgrade(req, session),
            };
        }
        if req.method() != Method::GET {
            return Err(HttpError::BadHandshakeMethod);
        }
        if param("EIO") != Some("4") {
            return Err(HttpError::UnsupportedProtocolVersion);
        }
        let info = ConnectInfo {
            headers: req
                .headers()
                .iter()
                .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
                .collect(),
            url: req
                .uri()
                .path_and_query()
                .map(|pq| pq.to_string())
                .unwrap_or_default(),
            query: query.into(),
            address: remote,
            time: SystemTime::now(),
        };
        match transport {
            TransportKind::Polling => Ok(polling::handshake(self, info)),
            TransportKind::WebSocket => websocket::open(self, req, info),
        }
    }

    /// Creates and registers a session, hands it to the layer above and starts its heartbeat.
    fn open_session(self: &Arc<Self>, info: ConnectInfo, transport: TransportKind) -> Arc<Session> {
        let session = Session::new(
            new_sid(),
            info,
            self.config.clone(),
            transport,
            Arc::downgrade(&self.sessions),
            self.counters.clone(),
        );
        self.counters.opened();
        self.sessions
            .lock()
            .insert(session.id.clone(), session.clone());

        let connection = self.handler.on_open(&session);
        session.attach(connection);
        // A task of its own: run in a WebSocket's task it saved 0.5 KiB a connection but
        // cost 5% more CPU per connect (measured).
        let beating = session.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = beating.closed() => {}
                _ = beating.heartbeat() => {}
            }
        });
        session
    }

    fn add_cors_headers(&self, response: &mut HttpResponse, origin: Option<&str>) {
        let Some(allowed) = self.config.cors.allow_origin(origin) else {
            return;
        };
        let headers = response.headers_mut();
        if let Ok(value) = HeaderValue::from_str(allowed) {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
            headers.insert(header::VARY, HeaderValue::from_static("Origin"));
        }
        if self.config.cors.credentials {
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
    }
}

fn preflight(req: &Request<Incoming>) -> HttpResponse {
    let mut response = Response::new(Full::default());
    *response.status_mut() = StatusCode::NO_CONTENT;
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET,HEAD,PUT,PATCH,POST,DELETE"),
    );
    if let Some(requested) = req.headers().get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, requested.clone());
    }
    response
}

/// The response for a refused request.
pub(crate) fn error_response(error: HttpError) -> HttpResponse {
    let mut response = Response::new(Full::new(Bytes::from(error.body())));
    *response.status_mut() = error.status();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// A text/plain 200 response, as polling answers.
pub(crate) fn text_response(body: impl Into<Bytes>) -> HttpResponse {
    let mut response = Response::new(Full::new(body.into()));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=UTF-8"),
    );
    response
}

/// Decodes `a=1&b=x%20y` into pairs; undecodable escapes are kept as they are.
pub(crate) fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex_value(bytes[i + 1]), hex_value(bytes[i + 2]))
            {
                (Some(high), Some(low)) => {
                    out.push(high << 4 | low);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_value(byte: u8) -> Option<u8> {
    (byte as char).to_digit(16).map(|d| d as u8)
}

/// A fresh, unguessable session id: 120 random bits in base64url, 20 characters.
pub(crate) fn new_sid() -> Sid {
    use base64::Engine as _;
    let bytes: [u8; 15] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(bytes)
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn query_is_decoded() {
        let pairs = parse_query("EIO=4&transport=polling&name=a%20b+c&x&bad=%zz&end=%4");
        let map: HashMap<_, _> = pairs.into_iter().collect();
        assert_eq!(map["EIO"], "4");
        assert_eq!(map["name"], "a b c");
        assert_eq!(map["x"], "");
        assert_eq!(map["bad"], "%zz");
        assert_eq!(map["end"], "%4");
    }

    #[test]
    fn sids_are_unique_and_20_chars() {
        let a = new_sid();
        let b = new_sid();
        assert_eq!(a.len(), 20);
        assert_ne!(a, b);
    }
}
