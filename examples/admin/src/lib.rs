//! The `admin` tenant, served at the static namespace `/admin`: only `auth.role ==
//! "admin"` gets in; `delete user` (id) acks `{"deleted": id}`.

use nsbox_guest::serde_json::{json, Value};
use nsbox_guest::{App, Reject};

fn setup(app: &mut App) {
    app.use_middleware(|_, handshake| {
        if handshake.auth.get("role").and_then(Value::as_str) == Some("admin") {
            Ok(())
        } else {
            Err(Reject::new("forbidden"))
        }
    });
    app.on("delete user", |_, args, ack| {
        let id: Value = args.get(0).unwrap_or(Value::Null);
        if let Some(ack) = ack {
            let _ = ack.send(json!({"deleted": id}));
        }
    });
}

nsbox_guest::export!(setup);
