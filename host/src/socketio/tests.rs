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
        match socket.handshake().auth.get("ok") {
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
                    connection.on_message(format!("2[\"e\",{n},\"{big}\"]"));
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
