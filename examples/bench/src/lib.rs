//! The `bench` tenant: the app every server of the benchmark runs (`bench/`), the
//! same in Node's socket.io and in socketioxide. One auth middleware, an echo with
//! ack and a broadcast to the namespace. Unlike `echo` it greets nobody on connect:
//! a greeting to the whole namespace makes connecting N clients cost N² messages.

use nsbox_guest::serde_json::{json, Value};
use nsbox_guest::{App, Reject};

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
}

nsbox_guest::export!(setup);
