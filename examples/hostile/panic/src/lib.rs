//! A hostile tenant: panics (a wasm trap) on `boom`, and in middleware when
//! `auth.boom` is true. Otherwise `echo` acks its arguments.

use nsbox_guest::App;

fn setup(app: &mut App) {
    app.use_middleware(|_, handshake| {
        if handshake.auth.get("boom").is_some() {
            panic!("middleware asked to panic");
        }
        Ok(())
    });
    app.on("echo", |_, args, ack| {
        if let Some(ack) = ack {
            let _ = ack.send(args);
        }
    });
    app.on("boom", |_, _, _| panic!("asked to panic"));
}

nsbox_guest::export!(setup);
