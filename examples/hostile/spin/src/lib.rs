//! A hostile tenant: loops forever on `spin`, and in middleware when `auth.spin`
//! is set. Otherwise `echo` acks its arguments.

use std::hint::black_box;

use nsbox_guest::App;

fn spin() {
    let mut n: u64 = 0;
    loop {
        n = black_box(n.wrapping_add(1));
    }
}

fn setup(app: &mut App) {
    app.use_middleware(|_, handshake| {
        if handshake.auth.get("spin").is_some() {
            spin();
        }
        Ok(())
    });
    app.on("echo", |_, args, ack| {
        if let Some(ack) = ack {
            let _ = ack.send(args);
        }
    });
    app.on("spin", |_, _, _| spin());
}

nsbox_guest::export!(setup);
