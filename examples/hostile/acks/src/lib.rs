//! A hostile tenant that misuses acks and handles:
//! - `twice` answers its ack two times, then emits `result` with what the second said;
//! - `forged` answers an ack id it was never given, and emits `result` likewise;
//! - `never` keeps the ack and never answers it;
//! - `steal` emits `stolen` to every handle from 0 to 2,000, guessing at sockets it
//!   does not own, and acks its own handle.
//! - `spare` broadcasts `spared` to the whole namespace except the socket handles it is
//!   given (several at once, which the SDK never asks for), then acks;
//! - `handle` acks the socket's own handle;
//! - `fetch-flood` (n) asks the cluster's other servers for their sockets n times in
//!   one call, then emits `fetched` `{"complete", "incomplete"}`: how many of those
//!   fetches every server answered, and how many not (the host bounds the fetches
//!   waiting at once by `max_pending_acks` and answers the rest at once, incomplete).
//!
//! Otherwise `echo` acks its arguments.

use nsbox_guest::bindings::nsbox::tenant::host;
use nsbox_guest::bindings::nsbox::tenant::types::Target;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use nsbox_guest::serde_json::json;
use nsbox_guest::{App, IntoArgs};

fn setup(app: &mut App) {
    app.on("echo", |_, args, ack| {
        if let Some(ack) = ack {
            let _ = ack.send(args);
        }
    });
    app.on("twice", |socket, _, ack| {
        let Some(ack) = ack else { return };
        let handle = ack.handle();
        let _ = ack.send(("first",));
        let second = host::answer(handle, &wit_args(("second",)));
        socket.emit("result", (format!("{second:?}"),));
    });
    app.on("forged", |socket, _, _| {
        let forged = host::answer(987_654_321, &wit_args(("forged",)));
        socket.emit("result", (format!("{forged:?}"),));
    });
    // The ack is dropped unanswered: the client waits in vain, the host forgets it
    // when the socket leaves.
    app.on("never", |_, _, _ack| {});
    app.on("fetch-flood", |socket, args, _| {
        let n: u32 = args.get(0).unwrap_or(1);
        let counts = Rc::new(RefCell::new((0u32, 0u32)));
        for _ in 0..n {
            let (counts, socket) = (counts.clone(), *socket);
            let everyone = socket.nsp().everyone();
            everyone.fetch_sockets_elsewhere(Duration::from_secs(2), move |_, complete| {
                let mut counts = counts.borrow_mut();
                if complete {
                    counts.0 += 1;
                } else {
                    counts.1 += 1;
                }
                if counts.0 + counts.1 == n {
                    let (complete, incomplete) = *counts;
                    socket.emit(
                        "fetched",
                        (json!({"complete": complete, "incomplete": incomplete}),),
                    );
                }
            });
        }
    });
    app.on("handle", |socket, _, ack| {
        if let Some(ack) = ack {
            let _ = ack.send((socket.handle(),));
        }
    });
    app.on("spare", |_, args, ack| {
        let spared: Vec<u64> = args.get(0).unwrap_or_default();
        let everyone_but = Target {
            rooms: Vec::new(),
            except_rooms: Vec::new(),
            except_sockets: spared,
        };
        let _ = host::broadcast(&everyone_but, "spared", &wit_args(("you",)));
        if let Some(ack) = ack {
            let _ = ack.send(());
        }
    });
    app.on("steal", |socket, _, ack| {
        for handle in 0..=2_000u64 {
            // A handle it does not hold is no error: nothing is sent.
            let _ = host::emit(handle, "stolen", &wit_args(("gotcha",)));
        }
        if let Some(ack) = ack {
            let _ = ack.send((socket.handle(),));
        }
    });
}

/// Arguments as the raw bindings take them (this tenant goes behind the SDK's back).
fn wit_args(args: impl IntoArgs) -> nsbox_guest::bindings::nsbox::tenant::types::Args {
    args.into_args().into_wit()
}

nsbox_guest::export!(setup);
