//! A hostile tenant: loops forever on `spin`, in middleware when `auth.spin` is
//! set, and in `on-connection` when `auth.spinOnConnection` is. `burn` (ms) burns
//! that much CPU and acks, for the per-second CPU budget. Otherwise `echo` acks its arguments.

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
    app.on_connection(|socket| {
        let asked = socket
            .handshake()
            .is_some_and(|h| h.auth.get("spinOnConnection").is_some());
        if asked {
            spin();
        }
    });
    app.on("echo", |_, args, ack| {
        if let Some(ack) = ack {
            let _ = ack.send(args);
        }
    });
    app.on("spin", |_, _, _| spin());
    // Burns the given milliseconds of CPU (below the per-call deadline) and acks.
    app.on("burn", |_, args, ack| {
        let millis: u64 = args.get(0).unwrap_or(10);
        let started = std::time::Instant::now();
        while started.elapsed() < std::time::Duration::from_millis(millis) {
            std::hint::black_box(0u64);
        }
        if let Some(ack) = ack {
            let _ = ack.send((millis,));
        }
    });
}

nsbox_guest::export!(setup);
