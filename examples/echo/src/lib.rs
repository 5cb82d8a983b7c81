//! The `echo` tenant: a middleware chain of three and the events the tests and the
//! README rely on. Its behaviour is specified exactly in issue 3 and in `examples/README.md`.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use nsbox_guest::serde_json::{json, Value};
use nsbox_guest::{cluster, config, storage, Ack, AckFailure, App, Args, Reject, Socket};

thread_local! {
    /// What the tenant's instances on other nodes sent this instance, in order.
    static HEARD: std::cell::RefCell<Vec<Value>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Answers `{"ok": true, "value": ...}` or `{"ok": false, "error": ...}`.
fn answer<T: Into<Value>>(ack: Option<Ack>, result: Result<T, storage::StorageError>) {
    let body = match result {
        Ok(value) => json!({"ok": true, "value": value.into()}),
        Err(error) => json!({"ok": false, "error": error.to_string()}),
    };
    if let Some(ack) = ack {
        let _ = ack.send(body);
    }
}

/// The storage events: the tenant's own keys, kept across instances and restarts.
fn storage_events(app: &mut App) {
    app.on("store", |_, args, ack| {
        let key: String = args.get(0).unwrap_or_default();
        let value: Value = args.get(1).unwrap_or(Value::Null);
        answer(ack, storage::set(&key, &value).map(|()| Value::Null));
    });
    app.on("load", |_, args, ack| {
        let key: String = args.get(0).unwrap_or_default();
        answer(
            ack,
            storage::get::<Value>(&key).map(|v| v.unwrap_or(Value::Null)),
        );
    });
    app.on("forget", |_, args, ack| {
        let key: String = args.get(0).unwrap_or_default();
        answer(ack, storage::delete(&key).map(|()| Value::Null));
    });
    app.on("count", |_, args, ack| {
        let key: String = args.get(0).unwrap_or_default();
        let delta: u64 = args.get(1).unwrap_or(1);
        answer(ack, storage::increment(&key, delta));
    });
    app.on("swap", |_, args, ack| {
        let key: String = args.get(0).unwrap_or_default();
        // null: absent.
        let expected = args.get::<Value>(1).filter(|v| !v.is_null());
        let new = args.get::<Value>(2).filter(|v| !v.is_null());
        answer(
            ack,
            storage::compare_and_swap(&key, expected.as_ref(), new.as_ref()),
        );
    });
    app.on("keys", |_, args, ack| {
        let prefix: String = args.get(0).unwrap_or_default();
        answer(ack, storage::keys(&prefix));
    });
    app.on("config", |_, args, ack| {
        let value = match args.get::<String>(0) {
            Some(name) => json!(config::get(&name)),
            None => Value::Object(
                config::all()
                    .into_iter()
                    .map(|(k, v)| (k, Value::String(v)))
                    .collect(),
            ),
        };
        if let Some(ack) = ack {
            let _ = ack.send((value,));
        }
    });
}

fn trail(socket: &Socket) -> Vec<String> {
    socket.get("trail").unwrap_or_default()
}

fn setup(app: &mut App) {
    app.use_middleware(|socket, _| {
        socket.set("trail", ["m1"]);
        Ok(())
    });
    app.use_middleware(|socket, handshake| {
        if handshake.auth.get("token").and_then(Value::as_str) != Some("ok") {
            return Err(Reject::new("unauthorized").with_data(json!({"reason": "bad token"})));
        }
        let mut trail = trail(socket);
        trail.push("m2".into());
        socket.set("trail", trail);
        Ok(())
    });
    app.use_middleware(|socket, _| {
        let mut trail = trail(socket);
        trail.push("m3".into());
        socket.set("trail", trail);
        Ok(())
    });

    app.on_connection(|socket| {
        let nsp = socket.handshake().map(|h| h.namespace).unwrap_or_default();
        socket
            .nsp()
            .emit("hello", json!({"nsp": nsp, "id": socket.id()}));
    });

    app.on_recovered(|socket| {
        socket.emit(
            "recovered",
            json!({"id": socket.id(), "trail": trail(socket)}),
        );
    });

    app.on("echo", |_, args, ack| {
        if let Some(ack) = ack {
            let _ = ack.send(args);
        }
    });
    app.on("broadcast", |socket, args, _| {
        socket.nsp().emit("msg", args)
    });
    app.on("volatile", |socket, args, ack| {
        let _ = socket.emit_volatile("msg", args);
        if let Some(ack) = ack {
            let _ = ack.send(json!(true));
        }
    });
    app.on("join", |socket, args, ack| {
        let room: String = args.get(0).unwrap_or_default();
        socket.join(&room);
        if let Some(ack) = ack {
            let _ = ack.send((room,));
        }
    });
    app.on("leave", |socket, args, ack| {
        let room: String = args.get(0).unwrap_or_default();
        socket.leave(&room);
        if let Some(ack) = ack {
            let _ = ack.send((room,));
        }
    });
    app.on("to-room", |socket, args, _| {
        let room: String = args.get(0).unwrap_or_default();
        socket.to(&room).emit("msg", args.skip(1));
    });
    app.on("whoami", |socket, _, ack| {
        let nsp = socket.handshake().map(|h| h.namespace).unwrap_or_default();
        if let Some(ack) = ack {
            let _ = ack.send(json!({"nsp": nsp, "trail": trail(socket)}));
        }
    });
    app.on("bye", |socket, _, _| socket.disconnect());
    // The tenant's instances on the cluster's other nodes (socket.io's serverSideEmit).
    app.on("server-emit", |_, args, ack| {
        let event: String = args.get(0).unwrap_or_default();
        let sent = cluster::try_emit(&event, args.skip(1));
        if let Some(ack) = ack {
            let _ = ack.send((sent.is_ok(),));
        }
    });
    app.on_server_event(|event, args| {
        let heard =
            json!({"event": event, "args": args.json(), "attachments": args.attachments().len()});
        HEARD.with(|all| all.borrow_mut().push(heard));
    });
    app.on("server-heard", |_, _, ack| {
        let heard = HEARD.with(|all| Value::from(all.borrow().clone()));
        if let Some(ack) = ack {
            let _ = ack.send((heard,));
        }
    });
    // Socket queries and bulk operations (socket.io's fetchSockets, socketsJoin,
    // disconnectSockets): over the sockets in a room, or all without one.
    app.on("fetch", |socket, args, ack| {
        let room: Option<String> = args.get(0);
        let selected = match &room {
            Some(room) => socket.nsp().to(room),
            None => socket.nsp().everyone(),
        };
        let ids: Vec<String> = selected.fetch_sockets().into_iter().map(|s| s.id).collect();
        if let Some(ack) = ack {
            let _ = ack.send((ids,));
        }
    });
    // Every server's sockets (socket.io's fetchSockets across a cluster): this node's
    // and, once they answer, the others'.
    app.on("fetch-all", |socket, args, ack| {
        let Some(ack) = ack else { return };
        let room: Option<String> = args.get(0);
        let selected = match &room {
            Some(room) => socket.nsp().to(room),
            None => socket.nsp().everyone(),
        };
        let mut ids: Vec<String> = selected.fetch_sockets().into_iter().map(|s| s.id).collect();
        selected.fetch_sockets_elsewhere(Duration::from_secs(2), move |others, complete| {
            ids.extend(others.into_iter().map(|s| s.id));
            ids.sort();
            let _ = ack.send((json!({"ids": ids, "complete": complete}),));
        });
    });
    app.on("sockets-join", |socket, args, ack| {
        let room: String = args.get(0).unwrap_or_default();
        let new_room: String = args.get(1).unwrap_or_default();
        let count = socket.nsp().to(&room).sockets_join(&new_room);
        if let Some(ack) = ack {
            let _ = ack.send((count,));
        }
    });
    app.on("sockets-leave", |socket, args, ack| {
        let room: String = args.get(0).unwrap_or_default();
        let count = socket.nsp().to(&room).sockets_leave(&room);
        if let Some(ack) = ack {
            let _ = ack.send((count,));
        }
    });
    app.on("kick", |socket, args, ack| {
        let room: String = args.get(0).unwrap_or_default();
        let selected = socket.nsp().to(&room);
        let count = selected.fetch_sockets().len();
        // Answered first: the sender may be among those disconnected.
        if let Some(ack) = ack {
            let _ = ack.send((count,));
        }
        selected.disconnect_sockets();
    });
    app.on("ask", |socket, _, ack| {
        let Some(ack) = ack else { return };
        socket.emit_with_ack("question", "ping?", Duration::from_secs(2), move |reply| {
            let answer = match reply {
                Ok(args) => json!({"answer": args.get::<Value>(0).unwrap_or(Value::Null)}),
                Err(AckFailure::Timeout) => json!({"error": "timeout"}),
                Err(AckFailure::Disconnected) => json!({"error": "disconnected"}),
            };
            let _ = ack.send(answer);
        });
    });
    app.on("poll", |socket, args, ack| {
        let Some(ack) = ack else { return };
        let room: String = args.get(0).unwrap_or_default();
        let timeout_ms = args.get::<u64>(1).unwrap_or(2000).clamp(1, 10_000);
        // Answered by the replies, or at once if the host refuses the poll.
        let ack = Rc::new(RefCell::new(Some(ack)));
        let later = ack.clone();
        let sent = socket.to(&room).emit_with_ack(
            "question",
            (),
            Duration::from_millis(timeout_ms),
            move |answers, complete| {
                // The answers' JSON goes out with their attachments.
                let json = format!(
                    r#"[{{"answers":{},"complete":{complete}}}]"#,
                    answers.json()
                );
                let reply = Args::from_json(json, answers.attachments().to_vec());
                if let (Some(ack), Ok(reply)) = (later.borrow_mut().take(), reply) {
                    let _ = ack.send(reply);
                }
            },
        );
        if let Err(error) = sent {
            let unanswered = ack.borrow_mut().take();
            if let Some(ack) = unanswered {
                let _ = ack.send(json!({ "error": error }));
            }
        }
    });
    storage_events(app);
}

nsbox_guest::export!(setup);
