//! A hostile tenant that recurses without end on `recurse`; `depth` recurses as deep as
//! its argument says and acks the depth reached (to test the host's wasm stack limit).
//! Otherwise `echo` acks.

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

/// Recurses `n` levels, each with a frame the compiler cannot fold away; returns `n`.
fn down(n: u64) -> u64 {
    if n == 0 {
        return 0;
    }
    let frame = black_box([n; 4]);
    down(frame[1] - 1) + 1
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
    app.on("depth", |_, args, ack| {
        let depth: u64 = args.get(0).unwrap_or(0);
        let reached = down(black_box(depth));
        if let Some(ack) = ack {
            let _ = ack.send((reached,));
        }
    });
}

nsbox_guest::export!(setup);
