//! Native apps built on the Socket.IO API: the reference app that Socket.IO's
//! protocol test suites expect, and a native workspace demo (the behaviour of the
//! `echo` example tenant) that the core suites run against.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use regex::Regex;
use serde_json::{json, Value};

use nsbox::config::{Cors, EngineConfig, SocketIoConfig};
use nsbox::engineio::packet::Packet as EnginePacket;
use nsbox::engineio::{CloseReason, Connection, Engine, EngineHandler, Session};
use nsbox::server::Server;
use nsbox::socketio::{ConnectError, Payload, SocketIo};

/// The settings the protocol test suites assume: 300 ms pings, 200 ms timeout,
/// 1 s connect timeout, CORS open.
pub fn conformance_config() -> SocketIoConfig {
    SocketIoConfig {
        engine: EngineConfig {
            ping_interval: Duration::from_millis(300),
            ping_timeout: Duration::from_millis(200),
            cors: Cors::any(),
            ..EngineConfig::default()
        },
        connect_timeout: Duration::from_millis(1000),
        ..SocketIoConfig::default()
    }
}

/// The reference app: `/` emits `auth` on connection, echoes `message` as `message-back`
/// and acks `message-with-ack` with its arguments; `/custom` emits `auth` too.
pub fn conformance(io: &SocketIo) {
    let root = io.of("/");
    root.on_connection(|socket| {
        socket.emit("auth", Payload::from_values(&[socket.handshake().auth()]));
        socket.on("message", |socket, args, _| {
            socket.emit("message-back", args)
        });
        socket.on("message-with-ack", |_, args, ack| {
            if let Some(ack) = ack {
                ack.send(args);
            }
        });
    });
    io.of("/custom").on_connection(|socket| {
        socket.emit("auth", Payload::from_values(&[socket.handshake().auth()]));
    });
}

/// The conformance server: Socket.IO with the reference app at `/socket.io/` and the raw
/// Engine.IO echo at `/engine.io/`, both with the conformance settings.
pub fn conformance_server() -> (SocketIo, Server) {
    let config = conformance_config();
    let raw = echo_engine(EngineConfig {
        path: "/engine.io/".to_owned(),
        ..config.engine.clone()
    });
    let io = SocketIo::new(config);
    conformance(&io);
    // Node's default: the client's browser builds served under the path.
    let server = Server::new()
        .serve_client(true)
        .mount(io.engine().clone())
        .mount(raw);
    (io, server)
}

/// A raw Engine.IO endpoint (no Socket.IO) that sends every message straight back.
pub fn echo_engine(config: EngineConfig) -> Arc<Engine> {
    Engine::new(config, Arc::new(EchoHandler))
}

struct EchoHandler;

impl EngineHandler for EchoHandler {
    fn on_open(&self, session: &Arc<Session>) -> Arc<dyn Connection> {
        Arc::new(EchoConnection(Arc::downgrade(session)))
    }
}

struct EchoConnection(std::sync::Weak<Session>);

impl Connection for EchoConnection {
    fn on_message(&self, text: &str) {
        if let Some(session) = self.0.upgrade() {
            let _ = session.send(EnginePacket::Message(text.to_owned()));
        }
    }

    fn on_binary(&self, data: Bytes) {
        if let Some(session) = self.0.upgrade() {
            let _ = session.send(EnginePacket::Binary(data));
        }
    }

    fn on_close(&self, _reason: CloseReason) {}
}

fn trail_push(socket: &nsbox::socketio::Socket, step: &str) {
    let mut data = socket.data();
    if let Some(trail) = data.get_mut("trail").and_then(Value::as_array_mut) {
        trail.push(Value::from(step));
    }
    socket.set_data(data);
}

/// Workspaces as native dynamic namespaces (`^/\w+$`), with the `echo` tenant's behaviour:
/// a three-step middleware chain that wants `auth.token == "ok"` and puts the socket in
/// room `members`, and the events `echo`,
/// `broadcast`, `join`, `leave`, `to-room`, `to-room-except`, `whoami`, `bye` and `ask`.
/// Every departure is reported to the `/observer` namespace as `left` `{nsp, id, reason}`.
pub fn workspaces(io: &SocketIo) {
    let observer = io.of("/observer");
    let parent = io.dynamic(Regex::new(r"^/\w+$").expect("a valid pattern"));
    parent.cleanup_empty_children(true);
    parent.use_middleware(|socket| async move {
        socket.set_data(json!({ "trail": ["m1"] }));
        Ok(())
    });
    parent.use_middleware(|socket| async move {
        // Asynchronous for real: yield once, or wait `auth.delayMs` (at most 1 s) when asked.
        let delay = socket
            .handshake()
            .auth()
            .get("delayMs")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay.min(1000))).await;
        } else {
            tokio::task::yield_now().await;
        }
        if socket.handshake().auth().get("token") != Some(&json!("ok")) {
            return Err(ConnectError::with_data(
                "unauthorized",
                json!({ "reason": "bad token" }),
            ));
        }
        trail_push(&socket, "m2");
        Ok(())
    });
    let reporting = observer.clone();
    parent.use_middleware(move |socket| {
        // Registered by middleware: it also runs for a socket whose connection went
        // away before it was accepted.
        let observer = reporting.clone();
        socket.on_disconnect(move |socket, reason| {
            observer.emit(
                "left",
                Payload::from_values(&[json!({
                    "nsp": socket.nsp().name(),
                    "id": &**socket.id(),
                    "reason": reason.as_str(),
                })]),
            );
        });
        async move {
            trail_push(&socket, "m3");
            // Joined before acceptance: the room must still work once the socket is in.
            socket.join("members");
            Ok(())
        }
    });
    parent.on_connection(move |socket| {
        let nsp = socket.nsp().clone();
        nsp.emit(
            "hello",
            Payload::from_values(&[json!({ "nsp": nsp.name(), "id": &**socket.id() })]),
        );
        socket.on("echo", |_, args, ack| {
            if let Some(ack) = ack {
                ack.send(args);
            }
        });
        socket.on("broadcast", |socket, args, _| {
            socket.nsp().emit("msg", args);
        });
        socket.on("join", |socket, args, ack| {
            let room: String = args.arg(0).unwrap_or_default();
            socket.join(room.clone());
            if let Some(ack) = ack {
                ack.send(Payload::from_values(&[json!(room)]));
            }
        });
        socket.on("leave", |socket, args, ack| {
            let room: String = args.arg(0).unwrap_or_default();
            socket.leave(&room);
            if let Some(ack) = ack {
                ack.send(Payload::from_values(&[json!(room)]));
            }
        });
        socket.on("to-room", |socket, args, _| {
            let mut values = args.values().unwrap_or_default();
            if values.is_empty() {
                return;
            }
            let room = values.remove(0);
            let rest = Payload::from_values(&values).with_attachments(args.attachments().to_vec());
            socket
                .to(room.as_str().unwrap_or_default())
                .emit("msg", rest);
        });
        socket.on("to-room-except", |socket, args, _| {
            let mut values = args.values().unwrap_or_default();
            if values.len() < 2 {
                return;
            }
            let room = values.remove(0);
            let except = values.remove(0);
            socket
                .nsp()
                .to(room.as_str().unwrap_or_default())
                .except(except.as_str().unwrap_or_default())
                .emit("msg", Payload::from_values(&values));
        });
        socket.on("whoami", |socket, _, ack| {
            if let Some(ack) = ack {
                let trail = socket.data().get("trail").cloned().unwrap_or(Value::Null);
                let mut rooms = socket.rooms();
                rooms.sort();
                let handshake = socket.handshake();
                let query: serde_json::Map<String, Value> = handshake
                    .query
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
                    .collect();
                let header = |name: &str| {
                    handshake
                        .headers
                        .iter()
                        .find(|(k, _)| k == name)
                        .map(|(_, v)| v.clone())
                };
                let issued = handshake
                    .time
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis() as u64)
                    .unwrap_or(0);
                ack.send(Payload::from_values(&[json!({
                    "nsp": socket.nsp().name(),
                    "trail": trail,
                    "rooms": rooms,
                    "transport": socket.transport(),
                    "auth": handshake.auth(),
                    "query": query,
                    "address": handshake.address.ip().to_string(),
                    "userAgent": header("user-agent"),
                    "issued": issued,
                })]));
            }
        });
        socket.on("bye", |socket, _, _| socket.disconnect());
        socket.on("ask", |socket, args, ack| {
            let timeout_ms = args.arg::<u64>(0).unwrap_or(2000);
            let socket = socket.clone();
            tokio::spawn(async move {
                let question = Payload::from_values(&[json!("ping?")]);
                let answer = socket
                    .emit_with_ack("question", question, Duration::from_millis(timeout_ms))
                    .await;
                let reply = match answer {
                    Ok(args) => {
                        json!({ "answer": args.values().ok().and_then(|v| v.into_iter().next()) })
                    }
                    Err(_) => json!({ "error": "timeout", "pending": socket.pending_acks() }),
                };
                if let Some(ack) = ack {
                    ack.send(Payload::from_values(&[reply]));
                }
            });
        });
    });
}
