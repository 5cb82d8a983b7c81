//! A hostile tenant that blocks instead of computing: `sleep` sleeps 3 s (a WASI
//! clock wait: no CPU, so only the wall-clock limit stops it), and so does its
//! middleware when `auth.sleep` is set. Otherwise `echo` acks.

use std::time::Duration;

use nsbox_guest::App;

fn setup(app: &mut App) {
    app.use_middleware(|_, handshake| {
        if handshake.auth.get("sleep").is_some() {
            std::thread::sleep(Duration::from_secs(3));
        }
        Ok(())
    });
    app.on("echo", |_, args, ack| {
        if let Some(ack) = ack {
            let _ = ack.send(args);
        }
    });
    app.on("sleep", |_, _, _| {
        std::thread::sleep(Duration::from_secs(3))
    });
}

nsbox_guest::export!(setup);
