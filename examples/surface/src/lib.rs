//! `surface`: the Rust SDK's calls that the other examples leave out, for its tests
//! (`tests/js/surface.test.mjs`). Every event a socket's client sends and every event
//! the tenant sends that socket is heard (`App::on_any_incoming`,
//! `App::on_any_outgoing`) and kept, per socket.
//!
//! - `ping` (…args) emits `pong` with the same arguments to the socket, then `pong-volatile`
//!   volatile, and acks `true`.
//! - `heard` acks what was heard for this socket so far, in order:
//!   `[["in" | "out", event, [args…]], …]` (the `heard` event itself included).
//! - Any other event is answered by the fallback (`App::on_any`): acks
//!   `["unhandled", event]`.

use std::cell::RefCell;
use std::collections::HashMap;

use nsbox_guest::serde_json::{json, Value};
use nsbox_guest::{App, Args, Socket};

thread_local! {
    /// What was heard for each socket, by its handle.
    static HEARD: RefCell<HashMap<u64, Vec<Value>>> = RefCell::new(HashMap::new());
}

fn hear(socket: &Socket, way: &str, event: &str, args: &Args) {
    let args: Value = args.parse().unwrap_or(Value::Null);
    HEARD.with(|heard| {
        heard
            .borrow_mut()
            .entry(socket.handle())
            .or_default()
            .push(json!([way, event, args]));
    });
}

fn setup(app: &mut App) {
    app.on_any_incoming(|socket, event, args| hear(socket, "in", event, args));
    app.on_any_outgoing(|socket, event, args| hear(socket, "out", event, args));
    app.on("ping", |socket, args, ack| {
        socket.emit("pong", args.clone());
        let _ = socket.emit_volatile("pong-volatile", args);
        if let Some(ack) = ack {
            let _ = ack.send(json!(true));
        }
    });
    app.on("heard", |socket, _, ack| {
        let heard = HEARD.with(|heard| heard.borrow().get(&socket.handle()).cloned());
        if let Some(ack) = ack {
            let _ = ack.send(json!(heard.unwrap_or_default()));
        }
    });
    app.on_any(|_, event, _, ack| {
        if let Some(ack) = ack {
            let _ = ack.send(json!(["unhandled", event]));
        }
    });
    app.on_disconnect(|socket, _| {
        HEARD.with(|heard| heard.borrow_mut().remove(&socket.handle()));
    });
}

nsbox_guest::export!(setup);
