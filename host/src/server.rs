//! The HTTP front door: accepts TCP connections, serves HTTP/1.1 with upgrades,
//! and routes each request to the Engine.IO endpoint whose path it names.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};

use crate::engineio::Engine;
use crate::workers::Workers;

/// How long a connection may take to send a request's headers, counted from when the
/// server starts waiting for them (on connecting, and after each response of a
/// keep-alive connection). Longer than the 4 s a Node client keeps an idle
/// connection, so clients never reuse one the server is closing.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections a listener holds at once by default; more are closed as they come.
pub const MAX_CONNECTIONS: usize = 100_000;

/// An HTTP server carrying one or more Engine.IO endpoints.
#[derive(Clone)]
pub struct Server {
    endpoints: Vec<Arc<Engine>>,
    header_timeout: Duration,
    max_connections: usize,
    serve_client: bool,
    demo_page: bool,
    workers: Workers,
}

impl Default for Server {
    fn default() -> Self {
        Server {
            endpoints: Vec::new(),
            header_timeout: HEADER_TIMEOUT,
            max_connections: MAX_CONNECTIONS,
            serve_client: false,
            demo_page: false,
            workers: Workers::current(),
        }
    }
}

/// Lets this process open as many descriptors as its hard limit allows (the soft limit
/// is often 1,024: about a thousand connections, one descriptor each); returns the
/// limit it then has, `None` for none. Processes it starts inherit it.
pub fn raise_descriptor_limit() -> std::io::Result<Option<u64>> {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        limit.current = limit.maximum;
        setrlimit(Resource::Nofile, limit)?;
    }
    Ok(getrlimit(Resource::Nofile).current)
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

    /// Sets how many connections are held at once (default [`MAX_CONNECTIONS`]).
    pub fn max_connections(mut self, max: usize) -> Server {
        self.max_connections = max;
        self
    }

    /// Serves the official client's browser builds under each endpoint's path, as
    /// Node's socket.io does with `serveClient` (see [`crate::client_dist`]).
    pub fn serve_client(mut self, serve: bool) -> Server {
        self.serve_client = serve;
        self
    }

    /// Serves the demo page at `/` (see [`crate::demo_page`]).
    pub fn demo_page(mut self, serve: bool) -> Server {
        self.demo_page = serve;
        self
    }

    /// Deals the connections to `workers` in turn (default: all on the runtime that
    /// calls [`Server::serve`]).
    pub fn workers(mut self, workers: Workers) -> Server {
        self.workers = workers;
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
        let endpoints: Arc<[Arc<Engine>]> = self.endpoints.clone().into();
        let statics = Statics {
            client: self.serve_client,
            demo: self.demo_page,
        };
        let open = OpenConnections::new(self.max_connections);
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
            let Some(held) = open.try_hold() else {
                // Closed at once (as Node's maxConnections): the connections already held
                // keep their resources.
                drop(stream);
                if open.note_refusal() {
                    tracing::warn!(max = self.max_connections, %remote, "connection refused: max_connections reached");
                }
                continue;
            };
            let _ = stream.set_nodelay(true);
            let endpoints = endpoints.clone();
            let builder = http1_builder(self.header_timeout);
            let connection = async move |stream: TcpStream| {
                let _held = held;
                let service = service_fn(move |req| {
                    let endpoints = endpoints.clone();
                    async move { Ok::<_, Infallible>(route(&endpoints, statics, req, remote).await) }
                });
                let connection = builder
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades();
                if let Err(error) = connection.await {
                    tracing::debug!(%error, %remote, "http connection ended with an error");
                }
            };
            match self.workers.next() {
                Some(worker) if worker.id() != tokio::runtime::Handle::current().id() => {
                    // Registered with this runtime's reactor: moved to the worker's.
                    match stream.into_std() {
                        Ok(stream) => {
                            worker.spawn(async move {
                                match TcpStream::from_std(stream) {
                                    Ok(stream) => connection(stream).await,
                                    Err(error) => tracing::warn!(%error, %remote, "a connection could not move to its worker"),
                                }
                            });
                        }
                        Err(error) => {
                            tracing::warn!(%error, %remote, "a connection could not move to its worker")
                        }
                    }
                }
                _ => {
                    tokio::spawn(connection(stream));
                }
            }
        }
        for endpoint in endpoints.iter() {
            endpoint.close_all();
        }
    }
}

/// The connections a listener holds, up to its maximum.
#[derive(Clone)]
struct OpenConnections {
    count: Arc<AtomicUsize>,
    max: usize,
    refused: Arc<AtomicUsize>,
}

/// One held connection; let go when dropped.
struct Held(Arc<AtomicUsize>);

impl Drop for Held {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl OpenConnections {
    fn new(max: usize) -> OpenConnections {
        OpenConnections {
            count: Arc::default(),
            max,
            refused: Arc::default(),
        }
    }

    fn try_hold(&self) -> Option<Held> {
        let held = self
            .count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .is_ok();
        held.then(|| Held(self.count.clone()))
    }

    /// Counts a refusal; true for the first and every 1,000th, to log without flooding.
    fn note_refusal(&self) -> bool {
        self.refused
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(1000)
    }
}

/// What a server answers besides its endpoints.
#[derive(Debug, Clone, Copy)]
struct Statics {
    /// The client's browser builds under each endpoint's path.
    client: bool,
    /// The demo page at `/`.
    demo: bool,
}

async fn route(
    endpoints: &[Arc<Engine>],
    statics: Statics,
    req: http::Request<hyper::body::Incoming>,
    remote: SocketAddr,
) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    if statics.demo && path == "/" && req.method() == http::Method::GET {
        return crate::demo_page::page();
    }
    if statics.client && req.method() == http::Method::GET {
        let file = endpoints
            .iter()
            .find_map(|e| path.strip_prefix(e.path()))
            .and_then(crate::client_dist::index);
        if let Some(file) = file {
            return crate::client_dist::serve(file, req.headers()).await;
        }
    }
    match endpoints.iter().find(|e| e.matches_path(path)) {
        Some(engine) => engine.handle(req, remote).await,
        None => {
            let mut response = Response::new(Full::new(Bytes::from_static(b"Not Found")));
            *response.status_mut() = StatusCode::NOT_FOUND;
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use super::*;

    /// Sends a request on `stream` and reads the status line of the answer; `None`
    /// when the server closed the connection instead.
    async fn status(stream: &mut TcpStream) -> Option<String> {
        let sent = stream
            .write_all(b"GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n")
            .await;
        let mut buf = [0u8; 4096];
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("an answer or a close within 5 s");
        match (sent, read) {
            (Ok(()), Ok(n)) if n > 0 => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
            _ => None,
        }
    }

    #[tokio::test]
    async fn connections_are_dealt_to_the_workers_in_turn_and_served_there() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bound");
        let addr = listener.local_addr().expect("an address");
        let workers = Workers::start(3).expect("worker threads");
        let before = workers.tasks();
        let server = Server::new().workers(workers.clone());
        tokio::spawn(server.serve(listener, std::future::pending()));
        let mut held = Vec::new();
        for _ in 0..6 {
            let mut stream = TcpStream::connect(addr).await.expect("connects");
            assert!(status(&mut stream).await.is_some_and(|s| s.contains("404")));
            held.push(stream);
        }
        // Each worker serves two of the six open connections (a task each); the
        // caller's runtime also runs the accept loop.
        let after = workers.tasks();
        let added: Vec<usize> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
        assert_eq!(added, [3, 2, 2], "tasks added per worker");
    }

    #[tokio::test]
    async fn connections_beyond_the_maximum_are_closed_and_the_held_ones_served() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bound");
        let addr = listener.local_addr().expect("an address");
        let server = Server::new().max_connections(2);
        tokio::spawn(server.serve(listener, std::future::pending()));
        let mut first = TcpStream::connect(addr).await.expect("connects");
        let mut second = TcpStream::connect(addr).await.expect("connects");
        assert!(status(&mut first).await.is_some_and(|s| s.contains("404")));
        assert!(status(&mut second).await.is_some_and(|s| s.contains("404")));
        let mut third = TcpStream::connect(addr).await.expect("the kernel accepts");
        assert_eq!(status(&mut third).await, None, "over the maximum: closed");
        // The held ones are still served; once one goes, a newcomer is.
        assert!(status(&mut first).await.is_some_and(|s| s.contains("404")));
        // The server ends `second` itself (the client asks it to): once it has, the
        // place is free, give or take the task's last step.
        second
            .write_all(b"GET /nothing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .expect("sent");
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), second.read_to_end(&mut rest))
            .await
            .expect("closed by the server within 5 s")
            .expect("read");
        let mut served = None;
        for _ in 0..200 {
            let mut next = TcpStream::connect(addr).await.expect("connects");
            served = status(&mut next).await;
            if served.is_some() {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert!(
            served.is_some_and(|s| s.contains("404")),
            "a place freed up"
        );
    }

    /// A WebSocket client that has joined the main namespace of the server at `addr`.
    async fn joined(addr: SocketAddr) -> tokio_tungstenite::WebSocketStream<TcpStream> {
        use futures_util::{SinkExt, StreamExt};
        use tokio_tungstenite::tungstenite::Message;
        let stream = TcpStream::connect(addr).await.expect("connects");
        let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
        let (mut ws, _) = tokio_tungstenite::client_async(url, stream)
            .await
            .expect("a WebSocket");
        let open = ws.next().await.expect("the open packet").expect("read");
        assert!(open.to_text().is_ok_and(|t| t.starts_with('0')), "{open:?}");
        ws.send(Message::text("40")).await.expect("sent");
        let answer = ws.next().await.expect("the CONNECT answer").expect("read");
        assert!(
            answer.to_text().is_ok_and(|t| t.starts_with("40{")),
            "{answer:?}"
        );
        ws
    }

    #[tokio::test]
    async fn broadcasts_that_keep_coming_go_out_in_few_writes() {
        use futures_util::StreamExt;
        const CLIENTS: usize = 20;
        const BROADCASTS: usize = 40;
        let io = crate::socketio::SocketIo::new(crate::config::SocketIoConfig::default());
        let main = io.of("/");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bound");
        let addr = listener.local_addr().expect("an address");
        let server = Server::new().mount(io.engine().clone());
        tokio::spawn(server.serve(listener, std::future::pending()));
        let mut clients = Vec::new();
        for _ in 0..CLIENTS {
            clients.push(joined(addr).await);
        }
        let counters = io.engine().counters().clone();
        counters.watch();
        // A broadcast per turn of the thread, as a busy tenant's would come.
        for i in 0..BROADCASTS {
            let args = crate::socketio::Payload::new(&[i]).expect("an array");
            assert_eq!(main.emit("tick", args), CLIENTS);
            tokio::task::yield_now().await;
        }
        for client in &mut clients {
            for i in 0..BROADCASTS {
                let frame = tokio::time::timeout(Duration::from_secs(5), client.next())
                    .await
                    .expect("within 5 s")
                    .expect("a frame")
                    .expect("read");
                assert_eq!(
                    frame.to_text().ok(),
                    Some(format!("42[\"tick\",{i}]").as_str())
                );
            }
        }
        let writes = counters.traffic().writes;
        // One write per broadcast per client without the waits; a few broadcasts a
        // write with them.
        assert!(
            writes >= (CLIENTS * BROADCASTS / 8) as u64,
            "{writes} writes"
        );
        assert!(
            writes <= (CLIENTS * BROADCASTS / 2) as u64,
            "{writes} writes"
        );
    }
}
