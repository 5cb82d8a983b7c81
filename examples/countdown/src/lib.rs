//! `countdown`: a tenant that acts on its own, on timers, while its clients say nothing.
//!
//! Event `countdown` with `(n, interval_ms)` (1 <= n <= 100, 10 <= interval_ms <= 10000)
//! acks `{"ok": true}`, then emits `tick` with `k` = n-1, n-2, ..., 0 to that socket
//! every `interval_ms`, then `done` once. Invalid arguments ack
//! `{"ok": false, "error": "..."}`. A new countdown replaces the socket's running one;
//! a socket that leaves stops its own. No authentication.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use nsbox_guest::serde_json::{json, Value};
use nsbox_guest::timers::{self, Timer};
use nsbox_guest::{App, Args, Socket};

thread_local! {
    /// The running countdown of each socket, by its handle.
    static RUNNING: RefCell<HashMap<u64, Timer>> = RefCell::new(HashMap::new());
}

fn stop(socket: &Socket) {
    if let Some(timer) = RUNNING.with(|running| running.borrow_mut().remove(&socket.handle())) {
        timers::clear_timer(timer);
    }
}

/// `(n, interval_ms)`, checked.
fn arguments(args: &Args) -> Result<(u32, u64), String> {
    let n = args.get::<Value>(0).and_then(|v| v.as_u64());
    let interval = args.get::<Value>(1).and_then(|v| v.as_u64());
    match (n, interval) {
        (Some(n @ 1..=100), Some(ms @ 10..=10_000)) => Ok((n as u32, ms)),
        (Some(_), Some(_)) => Err("n must be 1 to 100 and interval_ms 10 to 10000".to_owned()),
        _ => Err("expected (n, interval_ms): two whole numbers".to_owned()),
    }
}

fn setup(app: &mut App) {
    app.on("countdown", |socket, args, ack| {
        let (n, interval) = match arguments(&args) {
            Ok(valid) => valid,
            Err(error) => {
                if let Some(ack) = ack {
                    let _ = ack.send((json!({"ok": false, "error": error}),));
                }
                return;
            }
        };
        stop(socket);
        let socket = *socket;
        let left = Rc::new(Cell::new(n));
        let started = timers::set_interval(Duration::from_millis(interval), move || {
            let k = left.get() - 1;
            left.set(k);
            socket.emit("tick", (k,));
            if k == 0 {
                socket.emit("done", ());
                stop(&socket);
            }
        });
        let answer = match started {
            Ok(timer) => {
                RUNNING.with(|running| running.borrow_mut().insert(socket.handle(), timer));
                json!({"ok": true})
            }
            Err(error) => json!({"ok": false, "error": error}),
        };
        if let Some(ack) = ack {
            let _ = ack.send((answer,));
        }
    });
    app.on_disconnect(|socket, _| stop(socket));
}

nsbox_guest::export!(setup);
