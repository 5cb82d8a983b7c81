//! A small client of the admin API, for the `nsbox` command line.

use bytes::Bytes;
use http::{Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;

/// Why a request did not get an answer, or got a refusal.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The URL is not `http://host:port`.
    #[error("invalid admin URL {0:?}: expected http://HOST:PORT")]
    Url(String),
    /// The server could not be reached or the exchange broke.
    #[error("cannot reach the admin API at {url}: {error}")]
    Unreachable {
        /// Where.
        url: String,
        /// Why.
        error: String,
    },
    /// The server answered with an error.
    #[error("{message} ({code}, HTTP {status})")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The error's code.
        code: String,
        /// The error's message.
        message: String,
    },
}

/// A client of one admin API.
pub struct AdminClient {
    base: String,
    authority: String,
    token: Option<String>,
}

impl AdminClient {
    /// A client of the API at `url` (e.g. `http://127.0.0.1:3001`) using `token`.
    pub fn new(url: &str, token: Option<String>) -> Result<AdminClient, ClientError> {
        let uri: Uri = url.parse().map_err(|_| ClientError::Url(url.to_owned()))?;
        if uri.scheme_str() != Some("http") {
            return Err(ClientError::Url(url.to_owned()));
        }
        let authority = uri
            .authority()
            .ok_or_else(|| ClientError::Url(url.to_owned()))?
            .to_string();
        let authority = if authority.contains(':') {
            authority
        } else {
            format!("{authority}:80")
        };
        Ok(AdminClient {
            base: url.trim_end_matches('/').to_owned(),
            authority,
            token,
        })
    }

    /// Sends a request and returns the JSON answer, or the server's refusal.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> Result<Value, ClientError> {
        let unreachable = |error: String| ClientError::Unreachable {
            url: self.base.clone(),
            error,
        };
        let stream = TcpStream::connect(&self.authority)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        tokio::spawn(connection);
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header(http::header::HOST, &self.authority);
        if let Some(token) = &self.token {
            request = request.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request
            .body(Full::new(body))
            .map_err(|e| unreachable(e.to_string()))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| unreachable(e.to_string()))?
            .to_bytes();
        let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(value);
        }
        let field = |name: &str| {
            value
                .pointer(&format!("/error/{name}"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        Err(ClientError::Refused {
            status: status.as_u16(),
            code: field("code").unwrap_or_else(|| "error".into()),
            message: field("message").unwrap_or_else(|| {
                status
                    .canonical_reason()
                    .unwrap_or("request failed")
                    .to_owned()
            }),
        })
    }
}

impl ClientError {
    /// The process exit code the CLI uses for it: 1 refused, 3 unreachable or misconfigured.
    pub fn exit_code(&self) -> i32 {
        match self {
            ClientError::Refused { .. } => 1,
            ClientError::Url(_) | ClientError::Unreachable { .. } => 3,
        }
    }
}
