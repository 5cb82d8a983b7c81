//! The HTTP front door: accepts TCP connections, serves HTTP/1.1 with upgrades,
//! and routes each request to the Engine.IO endpoint whose path it names.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::engineio::Engine;

/// An HTTP server carrying one or more Engine.IO endpoints.
#[derive(Clone, Default)]
pub struct Server {
    endpoints: Vec<Arc<Engine>>,
}

impl Server {
    /// A server with no endpoints.
    pub fn new() -> Server {
        Server::default()
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
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let endpoints = endpoints.clone();
                    async move { Ok::<_, Infallible>(route(&endpoints, req, remote).await) }
                });
                let connection = http1::Builder::new()
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
