//! A hostile tenant that recurses without end on `recurse`. Otherwise `echo` acks.

use std::hint::black_box;

use nsbox_guest::App;

fn deeper(n: u64) -> u64 {
    // Never true in practice: it only keeps the compiler from calling this a bug.
    if n == u64::MAX {
        return 0;
    }
    let frame = black_box([n; 16]);
    deeper(frame[3] + 1) + frame[0]
}

fn setup(app: &mut App) {
    app.on("echo", |_, args, ack| {
        if let Some(ack) = ack {
            let _ = ack.send(args);
        }
    });
    app.on("recurse", |_, _, _| {
        black_box(deeper(0));
    });
}

nsbox_guest::export!(setup);
