//! A hostile tenant whose memory grows slowly, over many calls: each `leak` keeps
//! another 4 MiB (written, so it is really used) and acks how much it holds.

use std::cell::RefCell;

use nsbox_guest::App;

thread_local! {
    static HOARD: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

fn setup(app: &mut App) {
    app.on("echo", |_, args, ack| {
        if let Some(ack) = ack {
            let _ = ack.send(args);
        }
    });
    app.on("leak", |_, _, ack| {
        let held = HOARD.with(|hoard| {
            let mut hoard = hoard.borrow_mut();
            hoard.push(vec![7u8; 4 << 20]);
            hoard.len() * 4
        });
        if let Some(ack) = ack {
            let _ = ack.send((held,));
        }
    });
}

nsbox_guest::export!(setup);
