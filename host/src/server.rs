//! The HTTP front door: accepts TCP connections, serves HTTP/1.1 with upgrades,
//! and routes each request to the Engine.IO endpoint whose path it names.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::engineio::Engine;

/// How long a connection may take to send a request's headers, counted from when the
/// server starts waiting for them (on connecting, and after each response of a
/// keep-alive connection). Longer than the 4 s a Node client keeps an idle
/// connection, so clients never reuse one the server is closing.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// An HTTP server carrying one or more Engine.IO endpoints.
#[derive(Clone)]
pub struct Server {
    endpoints: Vec<Arc<Engine>>,
    header_timeout: Duration,
}

impl Default for Server {
    fn default() -> Self {
        Server {
            endpoints: Vec::new(),
            header_timeout: HEADER_TIMEOUT,
        }
    }
}

/// HTTP/1.1 as nsbox serves it: a connection that does not send a whole request head
/// within `header_timeout` (a half-open or idle one) is closed, so it cannot hold a
/// task and a file descriptor forever.
pub fn http1_builder(header_timeout: Duration) -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    builder
}

impl Server {
    /// A server with no endpoints.
    pub fn new() -> Server {
        Server::default()
    }

    /// Sets how long a connection may take to send a request's headers (default
    /// [`HEADER_TIMEOUT`]).
    pub fn header_timeout(mut self, timeout: Duration) -> Server {
        self.header_timeout = timeout;
        self
    }

    /// Adds an endpoint, answered on its configured path.
    pub fn mount(mut self, engine: Arc<Engine>) -> Server {
        self.endpoints.push(engine);
        self
    }

    /// Serves connections from `listener` until `shutdown` resolves; then closes every session.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        let endpoints: Arc<[Arc<Engine>]> = self.endpoints.into();
        tokio::pin!(shutdown);
        loop {
            let (stream, remote) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of file descriptors and the like: keep serving the others.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = &mut shutdown => break,
            };
            let _ = stream.set_nodelay(true);
            let endpoints = endpoints.clone();
            let builder = http1_builder(self.header_timeout);
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let endpoints = endpoints.clone();
                    async move { Ok::<_, Infallible>(route(&endpoints, req, remote).await) }
                });
                let connection = builder
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades();
                if let Err(error) = connection.await {
                    tracing::debug!(%error, %remote, "http connection ended with an error");
                }
            });
        }
        for endpoint in endpoints.iter() {
            endpoint.close_all();
        }
    }
}

async fn route(
    endpoints: &[Arc<Engine>],
    req: http::Request<hyper::body::Incoming>,
    remote: SocketAddr,
) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    match endpoints.iter().find(|e| e.matches_path(path)) {
        Some(engine) => engine.handle(req, remote).await,
        None => {
            let mut response = Response::new(Full::new(Bytes::from_static(b"Not Found")));
            *response.status_mut() = StatusCode::NOT_FOUND;
            response
        }
    }
}
