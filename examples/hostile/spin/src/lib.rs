//! A hostile tenant: loops forever on `spin`, in middleware when `auth.spin` is
//! set, and in `on-connection` when `auth.spinOnConnection` is. `burn` (ms) burns
//! that much CPU and acks, for the per-second CPU budget. Otherwise `echo` acks its arguments.
//! Configured with `start_spin`, it loops forever in `on-start`; with `start_burn_ms`,
//! it burns that much CPU there (a slow start, for the start-up allowance).

use std::hint::black_box;
use std::time::{Duration, Instant};

use nsbox_guest::{config, App};

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
        burn(millis);
        if let Some(ack) = ack {
            let _ = ack.send((millis,));
        }
    });
    app.on_start(|| {
        if config::get("start_spin").is_some() {
            spin();
        }
        if let Some(millis) = config::get("start_burn_ms").and_then(|v| v.parse().ok()) {
            burn(millis);
        }
    });
}

fn burn(millis: u64) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(millis) {
        black_box(0u64);
    }
}

nsbox_guest::export!(setup);
