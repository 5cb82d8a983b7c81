//! The `chat` tenant: a small real chat.
//!
//! - Connect with `auth: { nickname }` (1 to 32 characters, unique in the workspace);
//!   anything else is refused with `connect_error` `nickname required` or `nickname taken`.
//! - On connection the socket joins `#general` and receives `welcome`
//!   `{nickname, channels}`; the channel's members get `joined` `{channel, nickname}`.
//! - `join` (channel) joins it and acks `{channel, members, history}`; `leave` (channel)
//!   acks `{channel}`; the others in the channel get `joined` / `left`.
//! - `message` (channel, text) sends `message` `{channel, nickname, text, at}` to the
//!   channel, sender included, keeps the last 50 per channel, and acks `{ok: true}`
//!   (or `{ok: false, error}` when not a member or the text is empty or too long).
//! - `typing` (channel, bool) tells the channel's other members `typing` `{channel, nickname, typing}`.
//! - `members` (channel) and `history` (channel) ack what they name; `channels` acks
//!   `[{channel, members}]`.
//! - `poll` (channel, question, timeout_ms) asks the channel's other members `poll`
//!   `{channel, nickname, question}` with an ack, all at once (a broadcast with acks,
//!   socket.io's `socket.to(channel).timeout(ms).emit(...)`), and acks
//!   `{ok: true, answers, complete}`: the first argument of each member's answer, in
//!   the order they came, and whether every member answered within `timeout_ms`
//!   (1 to 10,000; 5,000 unless given). `{ok: false, error}` when not a member.
//!
//! History is kept in the tenant's storage (`history/<channel>`, the last 50): it
//! survives evictions, faults, new versions and host restarts. Members and nicknames
//! are the connected sockets' and live in the instance's memory; a fresh instance
//! learns them again as the sockets come back to it.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nsbox_guest::serde_json::{json, Value};
use nsbox_guest::{log, storage, Ack, App, Args, Reject, Socket};

const HISTORY: usize = 50;
const MAX_TEXT: usize = 2000;
const LOBBY: &str = "#general";

#[derive(Default)]
struct Chat {
    nicknames: HashMap<u64, String>,
    channels: BTreeMap<String, Channel>,
}

#[derive(Default)]
struct Channel {
    members: BTreeSet<u64>,
}

fn history_key(channel: &str) -> String {
    format!("history/{channel}")
}

/// A channel's last messages, oldest first.
fn history(channel: &str) -> Vec<Value> {
    storage::get(&history_key(channel))
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// Adds a message to its channel's history, keeping the last [`HISTORY`].
fn remember(channel: &str, message: &Value) {
    let mut kept = history(channel);
    kept.push(message.clone());
    let excess = kept.len().saturating_sub(HISTORY);
    kept.drain(..excess);
    if let Err(error) = storage::set(&history_key(channel), &kept) {
        log::warn(&format!("history of {channel} not kept: {error}"));
    }
}

thread_local! {
    static CHAT: RefCell<Chat> = RefCell::new(Chat::default());
}

fn with_chat<R>(f: impl FnOnce(&mut Chat) -> R) -> R {
    CHAT.with(|chat| f(&mut chat.borrow_mut()))
}

impl Chat {
    fn members(&self, channel: &str) -> Vec<String> {
        self.channels
            .get(channel)
            .map(|c| {
                c.members
                    .iter()
                    .filter_map(|m| self.nicknames.get(m).cloned())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn is_member(&self, channel: &str, socket: u64) -> bool {
        self.channels
            .get(channel)
            .is_some_and(|c| c.members.contains(&socket))
    }
}

fn nickname(socket: &Socket) -> String {
    socket.get("nickname").unwrap_or_default()
}

fn reply(ack: Option<Ack>, value: Value) {
    if let Some(ack) = ack {
        let _ = ack.send(value);
    }
}

fn join(socket: &Socket, channel: &str) -> Value {
    let nickname = nickname(socket);
    socket.join(channel);
    let members = with_chat(|chat| {
        chat.channels
            .entry(channel.to_owned())
            .or_default()
            .members
            .insert(socket.handle());
        chat.members(channel)
    });
    let history = history(channel);
    socket
        .to(channel)
        .emit("joined", json!({"channel": channel, "nickname": nickname}));
    json!({"channel": channel, "members": members, "history": history})
}

fn leave(socket: &Socket, channel: &str) {
    let was_member = with_chat(|chat| {
        let removed = chat
            .channels
            .get_mut(channel)
            .is_some_and(|c| c.members.remove(&socket.handle()));
        if chat
            .channels
            .get(channel)
            .is_some_and(|c| c.members.is_empty() && channel != LOBBY)
        {
            chat.channels.remove(channel);
        }
        removed
    });
    socket.leave(channel);
    if was_member {
        socket.nsp().to(channel).emit(
            "left",
            json!({"channel": channel, "nickname": nickname(socket)}),
        );
    }
}

fn valid_channel(name: &str) -> bool {
    name.starts_with('#') && (2..=32).contains(&name.chars().count())
}

fn setup(app: &mut App) {
    app.use_middleware(|socket, handshake| {
        let Some(nickname) = handshake.auth.get("nickname").and_then(Value::as_str) else {
            return Err(Reject::new("nickname required"));
        };
        let nickname = nickname.trim();
        if nickname.is_empty() || nickname.chars().count() > 32 {
            return Err(
                Reject::new("nickname required").with_data(json!({"reason": "1 to 32 characters"}))
            );
        }
        if with_chat(|chat| chat.nicknames.values().any(|n| n == nickname)) {
            return Err(Reject::new("nickname taken").with_data(json!({"nickname": nickname})));
        }
        with_chat(|chat| chat.nicknames.insert(socket.handle(), nickname.to_owned()));
        socket.set("nickname", nickname);
        Ok(())
    });

    app.on_connection(|socket| {
        // What the tenant's log shows (the console shows it as text, whatever it holds).
        log::info(&format!("{} connected", nickname(socket)));
        join(socket, LOBBY);
        let channels: Vec<String> = with_chat(|chat| chat.channels.keys().cloned().collect());
        socket.emit(
            "welcome",
            json!({"nickname": nickname(socket), "channels": channels}),
        );
    });

    app.on("join", |socket, args, ack| {
        let channel: String = args.get(0).unwrap_or_default();
        if !valid_channel(&channel) {
            return reply(
                ack,
                json!({"error": "a channel is # and 1 to 31 characters"}),
            );
        }
        reply(ack, join(socket, &channel));
    });

    app.on("leave", |socket, args, ack| {
        let channel: String = args.get(0).unwrap_or_default();
        leave(socket, &channel);
        reply(ack, json!({"channel": channel}));
    });

    app.on("message", |socket, args, ack| {
        let channel: String = args.get(0).unwrap_or_default();
        let text: String = args.get(1).unwrap_or_default();
        if !with_chat(|chat| chat.is_member(&channel, socket.handle())) {
            return reply(ack, json!({"ok": false, "error": "not a member"}));
        }
        if text.trim().is_empty() || text.chars().count() > MAX_TEXT {
            return reply(ack, json!({"ok": false, "error": "empty or too long"}));
        }
        let at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let message =
            json!({"channel": channel, "nickname": nickname(socket), "text": text, "at": at});
        remember(&channel, &message);
        socket.nsp().to(&channel).emit("message", message);
        reply(ack, json!({"ok": true}));
    });

    app.on("typing", |socket, args, _| {
        let channel: String = args.get(0).unwrap_or_default();
        let typing = args.get::<bool>(1).unwrap_or(false);
        if with_chat(|chat| chat.is_member(&channel, socket.handle())) {
            socket.to(&channel).emit(
                "typing",
                json!({"channel": channel, "nickname": nickname(socket), "typing": typing}),
            );
        }
    });

    app.on("poll", |socket, args, ack| {
        let channel: String = args.get(0).unwrap_or_default();
        let question: String = args.get(1).unwrap_or_default();
        let timeout_ms = args.get::<u64>(2).unwrap_or(5000).clamp(1, 10_000);
        if !with_chat(|chat| chat.is_member(&channel, socket.handle())) {
            return reply(ack, json!({"ok": false, "error": "not a member"}));
        }
        let asked = json!({"channel": channel, "nickname": nickname(socket), "question": question});
        // Answered by the replies, or at once if the host refuses the poll.
        let ack = Rc::new(RefCell::new(ack));
        let later = ack.clone();
        let sent = socket.to(&channel).emit_with_ack(
            "poll",
            asked,
            Duration::from_millis(timeout_ms),
            move |answers, complete| {
                // The answers' JSON, binary placeholders and all, goes out with their
                // attachments.
                let json = format!(
                    r#"[{{"ok":true,"answers":{},"complete":{complete}}}]"#,
                    answers.json()
                );
                let result = Args::from_json(json, answers.attachments().to_vec());
                if let (Some(ack), Ok(result)) = (later.borrow_mut().take(), result) {
                    let _ = ack.send(result);
                }
            },
        );
        if let Err(error) = sent {
            reply(
                ack.borrow_mut().take(),
                json!({"ok": false, "error": error}),
            );
        }
    });

    app.on("members", |_, args, ack| {
        let channel: String = args.get(0).unwrap_or_default();
        reply(ack, json!(with_chat(|chat| chat.members(&channel))));
    });

    app.on("history", |_, args, ack| {
        let channel: String = args.get(0).unwrap_or_default();
        reply(ack, json!(history(&channel)));
    });

    app.on("channels", |_, _, ack| {
        let channels: Vec<Value> = with_chat(|chat| {
            chat.channels
                .iter()
                .map(|(name, c)| json!({"channel": name, "members": c.members.len()}))
                .collect()
        });
        reply(ack, json!(channels));
    });

    app.on_disconnect(|socket, _| {
        let channels: Vec<String> = with_chat(|chat| {
            chat.channels
                .iter()
                .filter(|(_, c)| c.members.contains(&socket.handle()))
                .map(|(name, _)| name.clone())
                .collect()
        });
        for channel in channels {
            leave(socket, &channel);
        }
        with_chat(|chat| chat.nicknames.remove(&socket.handle()));
    });
}

nsbox_guest::export!(setup);
