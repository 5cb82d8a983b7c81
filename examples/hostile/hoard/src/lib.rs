//! A hostile tenant that makes the host spend on its behalf: host memory, the log,
//! the mailbox. Each attack is asked for by an event (or by `auth` in the middleware),
//! so a test can run one at a time beside a well-behaved neighbour:
//! - middleware: `auth.reject_bytes` refuses with `data` of that many bytes;
//!   `auth.room_bytes` joins a room whose name is that long;
//! - `acks {count}`: asks its own socket for `count` acks with the longest timeout;
//! - `ghost {fanout}`: when this socket has left, asks its (now dead) handle for
//!   `fanout` acks, and for `fanout` more on every reply;
//! - `log {lines, bytes}`: writes `lines` log lines of `bytes` bytes each;
//! - `rooms {count, bytes}`: joins `count` rooms with names of `bytes` bytes (the first
//!   refusal is logged as `join refused: ...`);
//! - `deep {depth}`: emits `deep` with an array nested `depth` deep, then `after` with
//!   the event's name and why the host refused it (or null);
//! - `attachments {count}`: emits `attachments` with `count` binary arguments, then
//!   `after` likewise;
//! - `forged {json}`: emits `forged` with `json` as its arguments' text, as it is, then
//!   `after` likewise (invalid JSON, a placeholder pointing at no attachment);
//! - `bad-answer`: answers its ack with invalid arguments, then with `["good", true]`;
//! - `fill {count, bytes}`: emits `count` messages of `bytes` bytes to its own socket;
//! - `timers {count, ms}`: sets `count` one-shot timers of `ms` ms, each emitting
//!   `fired` to the socket; acks how many were set and the first refusal (or null);
//! - `kv-flood {bytes}`: writes keys `flood/N` (N counting on across calls) with values
//!   of `bytes` bytes until the storage refuses; acks how many it wrote and the refusal;
//! - `kv-batch {count}`: reads `count` keys in one batch; acks the refusal (or null);
//! - `kv-big {key_bytes, value_bytes}`: writes one key of that size; acks the refusal;
//! - `kv-rewrite {bytes, times}`: overwrites the key `flood/0` `times` times with `bytes` bytes
//!   (what the disk takes, not what is kept); acks how many writes passed and the refusal;
//! - `config-peek {names}`: acks what `wasi:config` gives it: every name it has and
//!   the value of each name asked for (another tenant's, say).
//!
//! Every departure is broadcast as `left {id, reason}` to the sockets that remain; a
//! fresh instance logs `on-start`.
//! Otherwise `echo` acks its arguments.

use std::cell::Cell;
use std::time::Duration;

use nsbox_guest::bindings::nsbox::tenant::host;
use nsbox_guest::bindings::nsbox::tenant::types::Args as WitArgs;
use nsbox_guest::{config, log, storage, App, Args, Reject, Socket};
use serde_json::{json, Value};

thread_local! {
    /// How many acks the `ghost` storm asks for on each reply; 0 when off.
    static GHOST_FANOUT: Cell<u64> = const { Cell::new(0) };
    /// The next `kv-flood` key.
    static FLOODED: Cell<u64> = const { Cell::new(0) };
}

fn number(args: &Args, key: &str) -> u64 {
    args.get::<Value>(0)
        .and_then(|v| v.get(key).and_then(Value::as_u64))
        .unwrap_or(0)
}

/// Asks `socket` for `fanout` acks, and for `fanout` more on every reply.
fn storm(socket: Socket, fanout: u64) {
    for _ in 0..fanout {
        socket.emit_with_ack("ghost", (), Duration::from_secs(1), move |_| {
            storm(socket, fanout)
        });
    }
}

fn setup(app: &mut App) {
    app.on_start(|| log::info("on-start"));
    app.use_middleware(|socket, handshake| {
        let auth = &handshake.auth;
        if let Some(bytes) = auth.get("reject_bytes").and_then(Value::as_u64) {
            return Err(Reject::new("refused").with_data("r".repeat(bytes as usize)));
        }
        if let Some(bytes) = auth.get("room_bytes").and_then(Value::as_u64) {
            socket.join(&"r".repeat(bytes as usize));
        }
        Ok(())
    });
    app.on("echo", |_, args, ack| {
        if let Some(ack) = ack {
            let _ = ack.send(args);
        }
    });
    app.on("acks", |socket, args, ack| {
        for _ in 0..number(&args, "count") {
            socket.emit_with_ack(
                "ignore-me",
                (),
                Duration::from_millis(u64::from(u32::MAX)),
                |_| {},
            );
        }
        if let Some(ack) = ack {
            let _ = ack.send(("asked",));
        }
    });
    app.on("ghost", |_, args, ack| {
        GHOST_FANOUT.with(|f| f.set(number(&args, "fanout")));
        if let Some(ack) = ack {
            let _ = ack.send(("armed",));
        }
    });
    app.on_disconnect(|socket, reason| {
        socket
            .nsp()
            .emit("left", (json!({"id": socket.id(), "reason": reason}),));
        let fanout = GHOST_FANOUT.with(|f| f.replace(0));
        storm(*socket, fanout);
    });
    app.on("log", |_, args, ack| {
        let line = "l".repeat(number(&args, "bytes") as usize);
        for _ in 0..number(&args, "lines") {
            log::info(&line);
        }
        if let Some(ack) = ack {
            let _ = ack.send(("logged",));
        }
    });
    app.on("rooms", |socket, args, ack| {
        let bytes = number(&args, "bytes") as usize;
        let mut refused = false;
        for i in 0..number(&args, "count") {
            let name = format!("{i:0>bytes$}");
            // The first refusal is logged (the socket is gone then: no ack to carry it).
            if let Err(error) = socket.try_join(&name) {
                if !std::mem::replace(&mut refused, true) {
                    log::warn(&format!("join refused: {error}"));
                }
            }
        }
        if let Some(ack) = ack {
            let _ = ack.send((socket.rooms().len(),));
        }
    });
    app.on("deep", |socket, args, _| {
        let depth = number(&args, "depth") as usize;
        let json = format!("[{}{}]", "[".repeat(depth), "]".repeat(depth));
        let refused = host::emit(socket.handle(), "deep", &raw(json, Vec::new())).err();
        socket.emit("after", ("deep", refused));
    });
    app.on("attachments", |socket, args, _| {
        let count = number(&args, "count") as usize;
        let placeholders: Vec<Value> = (0..count)
            .map(|num| json!({"_placeholder": true, "num": num}))
            .collect();
        let json = Value::from(placeholders).to_string();
        let refused = host::emit(
            socket.handle(),
            "attachments",
            &raw(json, vec![vec![7u8]; count]),
        )
        .err();
        socket.emit("after", ("attachments", refused));
    });
    app.on("forged", |socket, args, _| {
        let json = args
            .get::<Value>(0)
            .and_then(|v| v.get("json").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_default();
        let refused = host::emit(socket.handle(), "forged", &raw(json, Vec::new())).err();
        socket.emit("after", ("forged", refused));
    });
    app.on("fill", |socket, args, _| {
        let message = "f".repeat(number(&args, "bytes") as usize);
        for _ in 0..number(&args, "count") {
            socket.emit("fill", message.as_str());
        }
    });
    app.on("timers", |socket, args, ack| {
        let delay = Duration::from_millis(number(&args, "ms"));
        let (mut set, mut refusal) = (0u64, None);
        for _ in 0..number(&args, "count") {
            let socket = *socket;
            match nsbox_guest::timers::set_timeout(delay, move || socket.emit("fired", ())) {
                Ok(_) => set += 1,
                Err(error) => {
                    refusal = Some(error);
                    break;
                }
            }
        }
        if let Some(ack) = ack {
            let _ = ack.send((set, refusal));
        }
    });
    app.on("kv-flood", |_, args, ack| {
        let value = vec![b'v'; number(&args, "bytes") as usize];
        let (mut written, mut refusal) = (0u64, None);
        while refusal.is_none() {
            let n = FLOODED.with(|next| next.replace(next.get() + 1));
            match storage::set_bytes(&format!("flood/{n}"), &value) {
                Ok(()) => written += 1,
                Err(error) => refusal = Some(error.to_string()),
            }
        }
        if let Some(ack) = ack {
            let _ = ack.send((written, refusal));
        }
    });
    app.on("kv-batch", |_, args, ack| {
        let keys: Vec<String> = (0..number(&args, "count"))
            .map(|i| format!("k{i}"))
            .collect();
        let refusal = storage::get_many::<Value>(&keys)
            .err()
            .map(|e| e.to_string());
        if let Some(ack) = ack {
            let _ = ack.send((refusal,));
        }
    });
    app.on("kv-big", |_, args, ack| {
        let key = "k".repeat(number(&args, "key_bytes") as usize);
        let value = vec![b'v'; number(&args, "value_bytes") as usize];
        let refusal = storage::set_bytes(&key, &value)
            .err()
            .map(|e| e.to_string());
        if let Some(ack) = ack {
            let _ = ack.send((refusal,));
        }
    });
    app.on("kv-rewrite", |_, args, ack| {
        let value = vec![b'r'; number(&args, "bytes") as usize];
        let (mut written, mut refusal) = (0u64, None);
        for _ in 0..number(&args, "times") {
            match storage::set_bytes("flood/0", &value) {
                Ok(()) => written += 1,
                Err(error) => {
                    refusal = Some(error.to_string());
                    break;
                }
            }
        }
        if let Some(ack) = ack {
            let _ = ack.send((written, refusal));
        }
    });
    app.on("config-peek", |_, args, ack| {
        let names: Vec<String> = args
            .get::<Value>(0)
            .and_then(|v| serde_json::from_value(v.get("names")?.clone()).ok())
            .unwrap_or_default();
        let asked: Value = names
            .iter()
            .map(|name| (name.clone(), json!(config::get(name))))
            .collect::<serde_json::Map<_, _>>()
            .into();
        let mine: Vec<String> = config::all().into_iter().map(|(name, _)| name).collect();
        if let Some(ack) = ack {
            let _ = ack.send(json!({"mine": mine, "asked": asked}));
        }
    });
    app.on("bad-answer", |_, _, ack| {
        let Some(ack) = ack else { return };
        let refused = host::answer(ack.handle(), &raw("not json".into(), Vec::new()));
        let _ = ack.send(("good", refused.is_err()));
    });
}

/// Arguments as the raw bindings take them, unchecked (this tenant goes behind the
/// SDK's back).
fn raw(json: String, attachments: Vec<Vec<u8>>) -> WitArgs {
    WitArgs { json, attachments }
}

nsbox_guest::export!(setup);
