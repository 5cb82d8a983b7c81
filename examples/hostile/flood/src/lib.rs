//! A hostile tenant that tries to turn one event into a flood: `flood` emits to its
//! own socket forever, `amplify` broadcasts 100 KB to the whole namespace
//! forever, `giant` emits one 2 MB message. Otherwise `echo` acks its arguments.

use nsbox_guest::App;

fn setup(app: &mut App) {
    app.on("echo", |_, args, ack| {
        if let Some(ack) = ack {
            let _ = ack.send(args);
        }
    });
    app.on("flood", |socket, _, _| loop {
        socket.emit("spam", "x");
    });
    app.on("amplify", |socket, _, _| {
        let big = "a".repeat(100_000);
        loop {
            socket.nsp().emit("big", big.as_str());
        }
    });
    app.on("giant", |socket, _, _| {
        socket.emit("giant", "g".repeat(2_000_000))
    });
}

nsbox_guest::export!(setup);
