//! A hostile tenant: on `grow`, reserves 4 MiB chunks and keeps them until memory
//! runs out (reserved, not written: the memory limit, not the CPU deadline, stops it). Otherwise `echo` acks its arguments.

use std::hint::black_box;

use nsbox_guest::App;

fn setup(app: &mut App) {
    app.on("echo", |_, args, ack| {
        if let Some(ack) = ack {
            let _ = ack.send(args);
        }
    });
    app.on("grow", |_, _, _| {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            hoard.push(black_box(Vec::with_capacity(4 << 20)));
        }
    });
}

nsbox_guest::export!(setup);
