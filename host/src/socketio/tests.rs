//! The connection, namespace and socket rules without a network or a client: a
//! session fed packets directly, what it queues for the client read back, and time
//! paused so that middleware and timeouts run in a known order.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use super::testing::Wire;
use super::{ConnectError, SocketIo};
use crate::config::SocketIoConfig;
use crate::engineio::Connection;

/// A server whose namespace `/t` has a middleware that waits until `gate` opens.
fn gated() -> (SocketIo, Arc<Notify>) {
    let io = SocketIo::new(SocketIoConfig::default());
    let gate = Arc::new(Notify::new());
    let waiting = gate.clone();
    io.of("/t").use_middleware(move |_| {
        let gate = waiting.clone();
        async move {
            gate.notified().await;
            Ok::<(), ConnectError>(())
        }
    });
    (io, gate)
}

use super::testing::settle;

#[tokio::test(start_paused = true)]
async fn connects_for_a_namespace_still_joining_are_ignored() {
    let (io, gate) = gated();
    let wire = Wire::open(&io);
    for _ in 0..20 {
        wire.send("0/t,{}");
    }
    settle().await;
    // One middleware waits: the other nineteen CONNECTs made nothing.
    gate.notify_waiters();
    settle().await;
    let answers = wire.received().await;
    let connects = answers
        .iter()
        .filter(|a| a.starts_with("0/t,{\"sid\""))
        .count();
    assert_eq!(connects, 1, "{answers:?}");
    assert_eq!(io.of("/t").socket_count(), 1);
    wire.session
        .close(crate::engineio::CloseReason::TransportClose);
    assert_eq!(
        io.of("/t").socket_count(),
        0,
        "the connection took its socket along"
    );
}

#[tokio::test(start_paused = true)]
async fn a_socket_whose_middleware_ends_after_the_close_is_not_left_behind() {
    let (io, gate) = gated();
    let wire = Wire::open(&io);
    wire.send("0/t,{}");
    settle().await;
    wire.session
        .close(crate::engineio::CloseReason::TransportClose);
    gate.notify_waiters();
    settle().await;
    assert_eq!(io.of("/t").socket_count(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_connect_for_a_namespace_already_joined_closes_the_connection() {
    let io = SocketIo::new(SocketIoConfig::default());
    io.of("/");
    let wire = Wire::open(&io);
    wire.send("0");
    settle().await;
    assert!(wire.received().await[0].starts_with("0{\"sid\""));
    wire.send("0");
    settle().await;
    assert!(wire.session.is_closed());
    assert_eq!(io.of("/").socket_count(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_refused_namespace_may_be_asked_for_again() {
    let io = SocketIo::new(SocketIoConfig::default());
    io.of("/t").use_middleware(|socket| async move {
        match socket.handshake().auth().get("ok") {
            Some(_) => Ok(()),
            None => Err(ConnectError::new("no")),
        }
    });
    let wire = Wire::open(&io);
    wire.send("0/t,{}");
    settle().await;
    assert_eq!(wire.received().await, ["4/t,{\"message\":\"no\"}"]);
    wire.send("0/t,{\"ok\":1}");
    settle().await;
    assert!(wire.received().await[0].starts_with("0/t,{\"sid\""));
}

#[tokio::test(start_paused = true)]
async fn no_namespace_within_the_connect_timeout_closes_and_one_joined_in_time_keeps_it() {
    let io = SocketIo::new(SocketIoConfig::default());
    io.of("/");
    let idle = Wire::open(&io);
    let joined = Wire::open(&io);
    joined.send("0");
    // The timeout tasks start (and set their timers) before the clock moves.
    settle().await;
    tokio::time::advance(SocketIoConfig::default().connect_timeout + Duration::from_millis(1))
        .await;
    settle().await;
    assert!(idle.session.is_closed(), "closed by the connect timeout");
    assert!(!joined.session.is_closed());
}

#[tokio::test(start_paused = true)]
async fn events_before_the_handlers_ran_are_held_in_order_up_to_their_bound() {
    // The client's events race the connection handlers (another thread reads them);
    // here the handler itself feeds them in, while it runs.
    for (count, closed) in [(3, false), (6, true)] {
        let io = SocketIo::new(SocketIoConfig::default());
        let wire_slot: Arc<std::sync::OnceLock<Arc<dyn Connection>>> = Arc::default();
        let seen = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let (feeding, record) = (wire_slot.clone(), seen.clone());
        io.of("/").on_connection(move |socket| {
            let record = record.clone();
            socket.on("e", move |_, args, _| {
                let n: usize = args.arg(0).unwrap_or_default();
                record.lock().push(n);
            });
            let big = "x".repeat(900_000);
            if let Some(connection) = feeding.get() {
                for n in 0..count {
                    connection.on_message(&format!("2[\"e\",{n},\"{big}\"]"));
                }
            }
        });
        let wire = Wire::open(&io);
        let _ = wire_slot.set(wire.connection.clone());
        wire.send("0");
        settle().await;
        // 3 x 900 KB fit the 4 MiB held for a socket; 6 do not, and the client that
        // sent them is closed rather than having events silently dropped.
        assert_eq!(wire.session.is_closed(), closed, "{count} events");
        if !closed {
            assert_eq!(*seen.lock(), [0, 1, 2], "in order");
        }
    }
}

/// Connection state recovery: a server whose `/t` recovers sessions under `config`,
/// puts every socket in room `blue`, and counts what its handlers saw.
mod recovery {
    use std::sync::Arc;
    use std::time::Duration;

    use parking_lot::Mutex;

    use super::super::testing::{settle, Wire};
    use super::super::{DisconnectReason, RecoveryConfig, SocketIo};
    use crate::config::SocketIoConfig;
    use crate::engineio::CloseReason;

    const WINDOW: Duration = Duration::from_secs(120);

    #[derive(Default)]
    struct Seen {
        connections: usize,
        recovered: usize,
        disconnects: Vec<DisconnectReason>,
    }

    fn server(config: RecoveryConfig) -> (SocketIo, Arc<Mutex<Seen>>) {
        let io = SocketIo::new(SocketIoConfig::default());
        let seen = Arc::new(Mutex::new(Seen::default()));
        let nsp = io.of("/t");
        nsp.handlers().recover_sessions(move |_| Some(config));
        let counted = seen.clone();
        nsp.handlers()
            .on_recovered(move |_| counted.lock().recovered += 1);
        let counted = seen.clone();
        nsp.on_connection(move |socket| {
            counted.lock().connections += 1;
            socket.join("blue");
            let counted = counted.clone();
            socket.on_disconnect(move |_, reason| counted.lock().disconnects.push(reason));
        });
        (io, seen)
    }

    fn config() -> RecoveryConfig {
        RecoveryConfig {
            window: WINDOW,
            session_bytes: 1 << 20,
            log_bytes: 1 << 20,
        }
    }

    /// Joins `/t` with `auth`; the CONNECT answer's sid and pid.
    async fn join(wire: &Wire, auth: &str) -> (String, String, Vec<String>) {
        wire.send(&format!("0/t,{auth}"));
        settle().await;
        let received = wire.received().await;
        let answer = received
            .iter()
            .find(|p| p.starts_with("0/t,"))
            .unwrap_or_else(|| panic!("no CONNECT answer in {received:?}"));
        let data: serde_json::Value =
            serde_json::from_str(&answer["0/t,".len()..]).expect("JSON answer");
        let field = |name: &str| data[name].as_str().unwrap_or_default().to_owned();
        (field("sid"), field("pid"), received)
    }

    /// A new connection joining `/t` with session `pid` and the first offset: the
    /// CONNECT answer's sid and pid, and what came.
    async fn come_back(io: &SocketIo, pid: &str) -> (String, String, Vec<String>) {
        let wire = Wire::open(io);
        join(&wire, &format!(r#"{{"pid":"{pid}","offset":"1"}}"#)).await
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_socket_comes_back_with_its_id_rooms_and_what_it_missed_in_order() {
        let (io, seen) = server(config());
        let first = Wire::open(&io);
        let (sid, pid, answer) = join(&first, "{}").await;
        assert_eq!(
            answer,
            [format!(r#"0/t,{{"sid":"{sid}","pid":"{pid}"}}"#)],
            "Node's answer with recovery on: sid, then pid"
        );
        let nsp = io.of("/t");
        nsp.to("blue")
            .emit("news", crate::socketio::Payload::from_values(&[1.into()]));
        assert_eq!(first.received().await, [r#"2/t,["news",1,"1"]"#]);

        first.session.close(CloseReason::TransportClose);
        settle().await;
        assert_eq!(nsp.socket_count(), 0, "not among the connected");
        assert!(seen.lock().disconnects.is_empty(), "nobody told it left");
        // Missed: two for its room (one sent to it alone), one for another room.
        nsp.to("blue")
            .emit("news", crate::socketio::Payload::from_values(&[2.into()]));
        nsp.to("red")
            .emit("other", crate::socketio::Payload::from_values(&[]));
        nsp.to(sid.clone())
            .emit("direct", crate::socketio::Payload::from_values(&[]));

        let second = Wire::open(&io);
        let auth = format!(r#"{{"pid":"{pid}","offset":"1"}}"#);
        let (again, same_pid, received) = join(&second, &auth).await;
        assert_eq!(
            (again.as_str(), same_pid.as_str()),
            (sid.as_str(), pid.as_str())
        );
        assert_eq!(
            received,
            [
                r#"2/t,["news",2,"2"]"#.to_owned(),
                r#"2/t,["direct","4"]"#.to_owned(),
                format!(r#"0/t,{{"sid":"{sid}","pid":"{pid}"}}"#),
            ],
            "what it missed, then the answer, as Node sends them"
        );
        assert_eq!(nsp.socket_count(), 1);
        nsp.to("blue")
            .emit("news", crate::socketio::Payload::from_values(&[3.into()]));
        assert_eq!(
            second.received().await,
            [r#"2/t,["news",3,"5"]"#],
            "in its rooms again"
        );
        let seen = seen.lock();
        assert_eq!((seen.connections, seen.recovered), (1, 1));
        assert!(seen.disconnects.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_socket_not_back_within_the_window_leaves_then_with_its_reason() {
        let (io, seen) = server(config());
        let first = Wire::open(&io);
        let (sid, pid, _) = join(&first, "{}").await;
        io.of("/t")
            .emit("news", crate::socketio::Payload::from_values(&[]));
        first.session.close(CloseReason::PingTimeout);
        settle().await;
        tokio::time::advance(WINDOW - Duration::from_secs(1)).await;
        settle().await;
        assert!(
            seen.lock().disconnects.is_empty(),
            "still within its window"
        );
        tokio::time::advance(Duration::from_secs(2)).await;
        settle().await;
        assert_eq!(seen.lock().disconnects, [DisconnectReason::PingTimeout]);
        // Too late: a fresh session.
        let (again, new_pid, _) = come_back(&io, &pid).await;
        assert_ne!(again, sid);
        assert_ne!(new_pid, pid);
        assert_eq!(seen.lock().connections, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_back_with_an_offset_no_longer_logged_gets_a_fresh_session_and_the_old_leaves_now(
    ) {
        // The log keeps about one event: the first is gone when the third comes.
        let (io, seen) = server(RecoveryConfig {
            log_bytes: 30,
            ..config()
        });
        let first = Wire::open(&io);
        let (sid, pid, _) = join(&first, "{}").await;
        let nsp = io.of("/t");
        nsp.emit(
            "news",
            crate::socketio::Payload::from_values(&["a".repeat(10).into()]),
        );
        first.session.close(CloseReason::TransportError);
        settle().await;
        for _ in 0..2 {
            nsp.emit(
                "news",
                crate::socketio::Payload::from_values(&["b".repeat(10).into()]),
            );
        }
        let (again, _, received) = come_back(&io, &pid).await;
        assert_ne!(again, sid, "{received:?}");
        assert_eq!(seen.lock().disconnects, [DisconnectReason::TransportError]);
        assert_eq!(seen.lock().connections, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn one_that_missed_more_than_a_session_may_take_gets_a_fresh_session() {
        let (io, seen) = server(RecoveryConfig {
            session_bytes: 100,
            ..config()
        });
        let first = Wire::open(&io);
        let (sid, pid, _) = join(&first, "{}").await;
        let nsp = io.of("/t");
        nsp.emit("news", crate::socketio::Payload::from_values(&[]));
        first.session.close(CloseReason::TransportClose);
        settle().await;
        nsp.emit(
            "news",
            crate::socketio::Payload::from_values(&["c".repeat(200).into()]),
        );
        let (again, _, _) = come_back(&io, &pid).await;
        assert_ne!(again, sid);
        assert_eq!(seen.lock().disconnects, [DisconnectReason::TransportClose]);
    }

    #[tokio::test(start_paused = true)]
    async fn leaving_on_purpose_is_not_kept_and_volatile_and_ack_events_take_no_offset() {
        let (io, seen) = server(config());
        let wire = Wire::open(&io);
        let (_, pid, _) = join(&wire, "{}").await;
        let nsp = io.of("/t");
        nsp.broadcast_op()
            .volatile()
            .emit("v", crate::socketio::Payload::from_values(&[]));
        let socket = nsp.sockets().pop().expect("the socket");
        let ack = tokio::spawn({
            let socket = socket.clone();
            async move {
                socket
                    .emit_with_ack("q", crate::socketio::Payload::from_values(&[]), WINDOW)
                    .await
            }
        });
        settle().await;
        nsp.emit("logged", crate::socketio::Payload::from_values(&[]));
        // (The volatile one is dropped: nothing waits to send on this hand-fed
        // connection.) Neither it nor the one with an ack took an offset.
        assert_eq!(
            wire.received().await,
            [r#"2/t,0["q"]"#, r#"2/t,["logged","1"]"#]
        );
        wire.send("1/t");
        settle().await;
        assert_eq!(
            seen.lock().disconnects,
            [DisconnectReason::ClientNamespaceDisconnect]
        );
        assert!(ack.await.expect("joined").is_err());
        // Its pid is not kept: coming back is a fresh session.
        come_back(&io, &pid).await;
        assert_eq!(seen.lock().connections, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn the_server_disconnecting_a_waiting_socket_ends_it_at_once() {
        let (io, seen) = server(config());
        let wire = Wire::open(&io);
        join(&wire, "{}").await;
        let socket = io.of("/t").sockets().pop().expect("the socket");
        wire.session.close(CloseReason::TransportClose);
        settle().await;
        assert!(socket.is_parked());
        socket.disconnect();
        assert!(!socket.is_parked());
        assert_eq!(
            seen.lock().disconnects,
            [DisconnectReason::ServerNamespaceDisconnect]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn without_recovery_there_is_no_pid_and_no_offset() {
        let io = SocketIo::new(SocketIoConfig::default());
        io.of("/t");
        let wire = Wire::open(&io);
        let (sid, pid, _) = join(&wire, "{}").await;
        assert!(!sid.is_empty() && pid.is_empty());
        io.of("/t")
            .emit("news", crate::socketio::Payload::from_values(&[]));
        assert_eq!(wire.received().await, [r#"2/t,["news"]"#]);
    }
}

#[tokio::test(start_paused = true)]
async fn a_child_namespace_keeps_what_its_parents_pattern_captured() {
    let io = SocketIo::new(SocketIoConfig::default());
    let grouped = io.dynamic(regex::Regex::new(r"^/ws-(\w+)$").expect("a pattern"));
    let plain = io.dynamic(regex::Regex::new(r"^/\d+$").expect("a pattern"));
    let mut answers = Vec::new();
    for connect in ["0/ws-acme,", "0/ws-acme,", "0/42,", "0/nothing,"] {
        let wire = Wire::open(&io);
        wire.send(connect);
        settle().await;
        answers.extend(wire.received().await);
    }
    assert_eq!(answers.len(), 4, "{answers:?}");
    assert!(answers[3].starts_with("4/nothing,"), "{answers:?}");
    let children = grouped.children();
    assert_eq!(children.len(), 1, "one child for both sockets");
    assert_eq!(children[0].captured(), Some("acme"));
    assert_eq!(children[0].socket_count(), 2);
    let children = plain.children();
    assert_eq!(children.len(), 1);
    assert_eq!(children[0].name(), "/42");
    assert_eq!(children[0].captured(), None, "no group, nothing captured");
    assert!(
        io.of("/").captured().is_none(),
        "a static namespace has no parent"
    );
}
