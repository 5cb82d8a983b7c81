//! The `bench` tenant: the app every server of the benchmark runs (`bench/`), the
//! same in Node's socket.io and in socketioxide. One auth middleware, an echo with
//! ack and a broadcast to the namespace. Unlike `echo` it greets nobody on connect:
//! a greeting to the whole namespace makes connecting N clients cost N² messages.
//!
//! For nsbox's own benchmark of timers (the peers have no such thing): `ticker`
//! (interval_ms, count) acks `{"ok": true}`, then broadcasts `tick` (k = 0, 1, ...) to
//! the namespace every `interval_ms`, `count` times, with no client traffic.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use nsbox_guest::serde_json::{json, Value};
use nsbox_guest::{timers, App, Reject};

fn setup(app: &mut App) {
    app.use_middleware(|_, handshake| {
        if handshake.auth.get("token").and_then(Value::as_str) != Some("ok") {
            return Err(Reject::new("unauthorized").with_data(json!({"reason": "bad token"})));
        }
        Ok(())
    });
    app.on("echo", |_, args, ack| {
        if let Some(ack) = ack {
            let _ = ack.send(args);
        }
    });
    app.on("broadcast", |socket, args, _| {
        socket.nsp().emit("msg", args)
    });
    app.on("ticker", |socket, args, ack| {
        let interval = Duration::from_millis(args.get(0).unwrap_or(10));
        let count: u64 = args.get(1).unwrap_or(0);
        let nsp = socket.nsp();
        let sent = Rc::new(Cell::new(0u64));
        let timer = Rc::new(Cell::new(None));
        let (ticked, own) = (sent.clone(), timer.clone());
        let started = timers::set_interval(interval, move || {
            let k = ticked.get();
            nsp.emit("tick", (k,));
            ticked.set(k + 1);
            if k + 1 >= count {
                if let Some(timer) = own.get() {
                    timers::clear_timer(timer);
                }
            }
        });
        let answer = match started {
            Ok(started) => {
                timer.set(Some(started));
                json!({"ok": true})
            }
            Err(error) => json!({"ok": false, "error": error}),
        };
        if let Some(ack) = ack {
            let _ = ack.send(answer);
        }
    });
}

nsbox_guest::export!(setup);
