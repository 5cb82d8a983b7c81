//! Protocol settings of the Engine.IO and Socket.IO layers, with Node's defaults.

use std::time::Duration;

/// Which origins may talk to the server from a browser.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum CorsOrigins {
    /// No CORS headers at all: browsers on other origins are refused (Node's default).
    #[default]
    None,
    /// Any origin; the request's `Origin` is reflected back.
    Any,
    /// Only these exact origins (scheme, host and port, as the browser sends them).
    List(Vec<String>),
}

/// Cross-origin settings for the HTTP endpoints.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cors {
    /// Allowed origins. Default is [`CorsOrigins::None`].
    pub origins: CorsOrigins,
    /// Whether to send `Access-Control-Allow-Credentials: true`. Default is `false`.
    pub credentials: bool,
}

impl Cors {
    /// CORS open to every origin, with credentials (what the conformance suite expects).
    pub fn any() -> Self {
        Cors {
            origins: CorsOrigins::Any,
            credentials: true,
        }
    }

    /// The value of `Access-Control-Allow-Origin` for a request from `origin`, if it is allowed.
    pub fn allow_origin<'a>(&self, origin: Option<&'a str>) -> Option<&'a str> {
        match &self.origins {
            CorsOrigins::None => None,
            CorsOrigins::Any => Some(origin.unwrap_or("*")),
            CorsOrigins::List(list) => origin.filter(|o| list.iter().any(|allowed| allowed == o)),
        }
    }
}

/// The transports a client may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transports {
    /// HTTP long-polling. Default is `true`.
    pub polling: bool,
    /// WebSocket, directly or by upgrade. Default is `true`.
    pub websocket: bool,
}

impl Default for Transports {
    fn default() -> Self {
        Transports {
            polling: true,
            websocket: true,
        }
    }
}

/// Engine.IO settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The HTTP path the endpoint answers on. Default is `/socket.io/`.
    pub path: String,
    /// Time between two server pings. Default is 25 s.
    pub ping_interval: Duration,
    /// How long a ping may wait for its pong before the session is closed. Default is 20 s.
    pub ping_timeout: Duration,
    /// Largest message (WebSocket) or POST body (polling) accepted, in bytes; a bigger one
    /// closes that session. Default is 1,000,000 (Node's `maxHttpBufferSize`).
    pub max_payload: usize,
    /// How long a polling POST may take to send its body once its head is in; beyond
    /// it the request is refused and the session closed. Default is 10 s.
    pub body_timeout: Duration,
    /// How long an upgrade may take from the WebSocket's arrival to its `5`. Default is 10 s.
    pub upgrade_timeout: Duration,
    /// Packets queued for one client before it is deemed too slow and closed. Default is 10,000.
    pub max_buffered_packets: usize,
    /// Bytes queued for one client before it is deemed too slow and closed (a client
    /// that stops polling or reading holds at most this). Default is 16 MiB.
    pub max_buffered_bytes: usize,
    /// Enabled transports. Default is both.
    pub transports: Transports,
    /// Cross-origin settings. Default is none.
    pub cors: Cors,
    /// Long-polling responses of at least this many bytes are sent gzip- or
    /// deflate-encoded when the request accepts it (Node's `httpCompression`); `None`
    /// sends them as they are. Default is 1,024, as Node's.
    pub http_compression: Option<usize>,
    /// WebSocket messages of at least this many bytes are sent compressed to a client
    /// that offers `permessage-deflate` (Node's `perMessageDeflate`, with its threshold);
    /// `None` agrees to no compression. Default is `None`, as Node's: each compressed
    /// connection keeps a deflate and an inflate context, hundreds of KiB.
    pub per_message_deflate: Option<usize>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            path: "/socket.io/".to_owned(),
            ping_interval: Duration::from_millis(25_000),
            ping_timeout: Duration::from_millis(20_000),
            max_payload: 1_000_000,
            body_timeout: Duration::from_millis(10_000),
            upgrade_timeout: Duration::from_millis(10_000),
            max_buffered_packets: 10_000,
            max_buffered_bytes: 16 << 20,
            transports: Transports::default(),
            cors: Cors::default(),
            http_compression: Some(1024),
            per_message_deflate: None,
        }
    }
}

/// Socket.IO settings, on top of the Engine.IO ones.
#[derive(Debug, Clone)]
pub struct SocketIoConfig {
    /// The Engine.IO settings underneath.
    pub engine: EngineConfig,
    /// How long a new connection may take to join its first namespace. Default is 45 s.
    pub connect_timeout: Duration,
    /// Most binary attachments one packet may announce. Default is 256.
    pub max_attachments: usize,
}

impl Default for SocketIoConfig {
    fn default() -> Self {
        SocketIoConfig {
            engine: EngineConfig::default(),
            connect_timeout: Duration::from_millis(45_000),
            max_attachments: 256,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cors_origin_rules() {
        assert_eq!(Cors::default().allow_origin(Some("http://a.test")), None);
        assert_eq!(
            Cors::any().allow_origin(Some("http://a.test")),
            Some("http://a.test")
        );
        assert_eq!(Cors::any().allow_origin(None), Some("*"));
        let list = Cors {
            origins: CorsOrigins::List(vec!["http://a.test".into()]),
            credentials: false,
        };
        assert_eq!(
            list.allow_origin(Some("http://a.test")),
            Some("http://a.test")
        );
        assert_eq!(list.allow_origin(Some("http://b.test")), None);
        assert_eq!(list.allow_origin(None), None);
    }
}
