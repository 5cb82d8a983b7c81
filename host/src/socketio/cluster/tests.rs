//! Two servers sharing a namespace through a transport in memory: what a namespace
//! publishes and what it does with what it receives, without Redis (the end-to-end
//! suite `tests/js/cluster.test.mjs` runs the same against Node over a real Redis).

use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use rmpv::Value;

use super::message::{kind, map, Message, Opts};
use super::{Route, Transport};
use crate::config::SocketIoConfig;
use crate::socketio::testing::{settle, Wire};
use crate::socketio::{Namespace, Payload, SocketIo};

/// Delivers every message at once to the namespaces it is for; keeps a copy of each.
#[derive(Default)]
struct Bus {
    namespaces: Mutex<Vec<(String, Weak<Namespace>)>>,
    rooms: Mutex<Vec<(String, String)>>,
    published: Mutex<Vec<(String, Vec<u8>)>>,
}

impl Transport for Bus {
    fn attach(&self, _nsp: &str, uid: &str, namespace: Weak<Namespace>) {
        self.namespaces.lock().push((uid.to_owned(), namespace));
    }
    fn detach(&self, _nsp: &str, uid: &str) {
        self.namespaces.lock().retain(|(u, _)| u != uid);
    }
    fn room_created(&self, nsp: &str, room: &str) {
        self.rooms.lock().push((nsp.to_owned(), room.to_owned()));
    }
    fn room_deleted(&self, nsp: &str, room: &str) {
        self.rooms.lock().retain(|(n, r)| !(n == nsp && r == room));
    }
    fn server_count(&self, _nsp: &str) -> super::ServerCount {
        let count = self.namespaces.lock().len();
        Box::pin(async move { Some(count) })
    }
    fn publish(&self, _nsp: &str, route: Route<'_>, bytes: Vec<u8>) {
        let route_name = match route {
            Route::All => "all".to_owned(),
            Route::Room(room) => format!("room:{room}"),
            Route::Reply(uid) => format!("reply:{uid}"),
        };
        self.published.lock().push((route_name, bytes.clone()));
        let targets: Vec<(String, Arc<Namespace>)> = self
            .namespaces
            .lock()
            .iter()
            .filter_map(|(uid, n)| Some((uid.clone(), n.upgrade()?)))
            .collect();
        for (uid, namespace) in targets {
            match route {
                Route::Reply(to) if to == uid => namespace.receive(&bytes, true),
                Route::Reply(_) => {}
                _ => namespace.receive(&bytes, false),
            }
        }
    }
}

/// Two servers on one bus, each with the namespace `/` and one client joined to it.
async fn two_servers() -> (Arc<Bus>, [SocketIo; 2], [Wire; 2]) {
    let bus = Arc::new(Bus::default());
    let servers = [
        SocketIo::new(SocketIoConfig::default()),
        SocketIo::new(SocketIoConfig::default()),
    ];
    for io in &servers {
        assert!(io.join_cluster(bus.clone()));
        io.of("/");
    }
    let wires = [Wire::open(&servers[0]), Wire::open(&servers[1])];
    for wire in &wires {
        wire.send("0");
    }
    settle().await;
    for wire in &wires {
        let joined = wire.received().await;
        assert!(joined[0].starts_with("0{\"sid\""), "{joined:?}");
    }
    (bus, servers, wires)
}

fn args(json: &str) -> Payload {
    Payload::from_json(json, Vec::new()).expect("arguments")
}

#[tokio::test(start_paused = true)]
async fn a_broadcast_reaches_the_other_server_once_and_is_published_once() {
    let (bus, servers, wires) = two_servers().await;
    let reached = servers[0].of("/").emit("news", args("[1]"));
    assert_eq!(reached, 1, "its own client, here");
    assert_eq!(wires[0].received().await, [r#"2["news",1]"#]);
    assert_eq!(wires[1].received().await, [r#"2["news",1]"#]);
    assert_eq!(bus.published.lock().len(), 1);
    // A local broadcast stays here.
    servers[1]
        .of("/")
        .broadcast_op()
        .local()
        .emit("mine", args("[]"));
    assert_eq!(bus.published.lock().len(), 1);
    assert!(wires[0].received().await.is_empty());
}

#[tokio::test(start_paused = true)]
async fn rooms_and_exceptions_hold_on_the_other_server() {
    let (bus, servers, wires) = two_servers().await;
    let remote = servers[1].of("/").sockets()[0].clone();
    remote.join("blue");
    assert!(bus
        .rooms
        .lock()
        .contains(&("/".to_owned(), "blue".to_owned())));
    // A socket's own room is never announced.
    assert_eq!(bus.rooms.lock().len(), 1);
    servers[0].of("/").to("blue").emit("to-blue", args("[]"));
    assert_eq!(wires[1].received().await, [r#"2["to-blue"]"#]);
    servers[0].of("/").to("red").emit("to-red", args("[]"));
    servers[0]
        .of("/")
        .except("blue")
        .emit("not-blue", args("[]"));
    assert!(wires[1].received().await.is_empty());
    // The route: one room alone goes to the room's channel.
    let routes: Vec<String> = bus
        .published
        .lock()
        .iter()
        .map(|(r, _)| r.clone())
        .collect();
    assert_eq!(routes, ["room:blue", "room:red", "all"]);
    remote.leave("blue");
    assert!(bus.rooms.lock().is_empty(), "the last socket left the room");
}

#[tokio::test(start_paused = true)]
async fn requests_from_another_server_act_on_this_ones_sockets() {
    let (bus, servers, wires) = two_servers().await;
    let here = &servers[1];
    let remote_uid = "0123456789abcdef";
    let send = |kind: u8, data: Value| {
        let message = Message {
            kind,
            uid: remote_uid.to_owned(),
            nsp: "/".to_owned(),
            data,
        };
        here.of("/").receive(&message.encode(), false);
    };
    let all = Opts::default().value();
    send(
        kind::SOCKETS_JOIN,
        map(vec![
            ("opts", all.clone()),
            ("rooms", Value::Array(vec!["green".into()])),
        ]),
    );
    let socket = here.of("/").sockets()[0].clone();
    assert!(socket.in_room("green"));
    // A fetch is answered on the requester's reply route, with what Node's shows.
    send(
        kind::FETCH_SOCKETS,
        map(vec![("opts", all.clone()), ("requestId", "r1".into())]),
    );
    let (route, bytes) = bus.published.lock().last().cloned().expect("an answer");
    assert_eq!(route, format!("reply:{remote_uid}"));
    let answer = Message::decode(&bytes).expect("decodes");
    assert_eq!(answer.kind, kind::FETCH_SOCKETS_RESPONSE);
    let text = String::from_utf8(bytes).expect("json");
    for field in [
        "\"requestId\":\"r1\"",
        "\"rooms\":[",
        "\"handshake\":{\"headers\":",
        "\"issued\":",
        "\"data\":{}",
    ] {
        assert!(text.contains(field), "{field} in {text}");
    }
    assert!(
        text.contains(&format!("\"id\":\"{}\"", socket.id())),
        "{text}"
    );
    // Its own messages, and another namespace's, are ignored.
    let own = Message {
        kind: kind::DISCONNECT_SOCKETS,
        uid: here.of("/").cluster().expect("in a cluster").uid.clone(),
        nsp: "/".into(),
        data: map(vec![("opts", all.clone()), ("close", false.into())]),
    };
    here.of("/").receive(&own.encode(), false);
    let elsewhere = Message {
        nsp: "/other".into(),
        uid: remote_uid.into(),
        ..own
    };
    here.of("/").receive(&elsewhere.encode(), false);
    assert!(socket.connected());
    // Garbage is dropped, nothing else happens.
    here.of("/").receive(b"\xc1\xff{", false);
    here.of("/").receive(
        br#"{"type":3,"data":{"packet":{"type":2,"data":[7]}}}"#,
        false,
    );
    assert!(socket.connected());
    send(
        kind::DISCONNECT_SOCKETS,
        map(vec![("opts", all), ("close", false.into())]),
    );
    assert!(!socket.connected());
    let told = wires[1].received().await;
    assert_eq!(told.last().map(String::as_str), Some("1"), "{told:?}");
}

#[tokio::test(start_paused = true)]
async fn a_broadcast_with_ack_is_counted_then_answered_by_each_socket() {
    let (bus, servers, wires) = two_servers().await;
    let data = map(vec![
        (
            "packet",
            super::message::event_packet("question", &args("[]")),
        ),
        ("requestId", "q1".into()),
        ("opts", Opts::default().value()),
    ]);
    let message = Message {
        kind: kind::BROADCAST,
        uid: "fedcba9876543210".into(),
        nsp: "/".into(),
        data,
    };
    servers[1].of("/").receive(&message.encode(), false);
    settle().await;
    let asked = wires[1].received().await;
    assert_eq!(asked, [r#"20["question"]"#]);
    wires[1].send(r#"30["yes"]"#);
    settle().await;
    let replies: Vec<Message> = bus
        .published
        .lock()
        .iter()
        .filter(|(route, _)| route == "reply:fedcba9876543210")
        .map(|(_, bytes)| Message::decode(bytes).expect("decodes"))
        .collect();
    assert_eq!(replies.len(), 2, "{replies:?}");
    assert_eq!(replies[0].kind, kind::BROADCAST_CLIENT_COUNT);
    assert_eq!(
        super::message::field(&replies[0].data, "clientCount").and_then(Value::as_u64),
        Some(1)
    );
    assert_eq!(replies[1].kind, kind::BROADCAST_ACK);
    assert_eq!(
        super::message::field(&replies[1].data, "packet").and_then(Value::as_str),
        Some("yes")
    );
    drop(wires);
}

#[tokio::test(start_paused = true)]
async fn disconnecting_elsewhere_leaves_this_servers_sockets_alone() {
    let (_bus, servers, wires) = two_servers().await;
    let here = servers[0].of("/").sockets()[0].clone();
    let there = servers[1].of("/").sockets()[0].clone();
    servers[0].of("/").broadcast_op().disconnect_elsewhere();
    assert!(here.connected(), "this server's sockets are the caller's");
    assert!(!there.connected());
    assert_eq!(wires[1].received().await, ["1"]);
    // Exceptions hold there too.
    let (_bus, servers, _wires) = two_servers().await;
    let there = servers[1].of("/").sockets()[0].clone();
    there.join("vip");
    servers[0].of("/").except("vip").disconnect_elsewhere();
    assert!(there.connected());
}

#[tokio::test(start_paused = true)]
async fn a_server_side_emit_reaches_the_other_servers_handlers_not_its_own() {
    let (bus, servers, _wires) = two_servers().await;
    /// What a server's handler heard: events and their arguments' JSON.
    type Heard = Arc<Mutex<Vec<(String, String)>>>;
    let heard: [Heard; 2] = Default::default();
    for (io, heard) in servers.iter().zip(&heard) {
        let heard = heard.clone();
        io.of("/")
            .handlers()
            .on_server_event(move |nsp, event, args| {
                assert_eq!(nsp.name(), "/");
                heard
                    .lock()
                    .push((event.to_owned(), args.json().to_owned()));
            });
    }
    servers[0]
        .of("/")
        .server_side_emit("ping", &args(r#"[1,{"a":"b"}]"#));
    assert_eq!(bus.published.lock().len(), 1, "published once");
    assert_eq!(
        *heard[1].lock(),
        [("ping".to_owned(), r#"[1,{"a":"b"}]"#.to_owned())]
    );
    assert!(heard[0].lock().is_empty(), "not to itself");
    // What Node's serverSideEmit publishes (socket.io-adapter's ClusterAdapter, JSON).
    let from_node =
        br#"{"uid":"0123456789abcdef","nsp":"/","type":9,"data":{"packet":["hello","world"]}}"#;
    servers[0].of("/").receive(from_node, false);
    assert_eq!(
        *heard[0].lock(),
        [("hello".to_owned(), r#"["world"]"#.to_owned())]
    );
}

#[tokio::test(start_paused = true)]
async fn a_join_handler_decides_the_joins_other_servers_ask_for() {
    let (bus, servers, _wires) = two_servers().await;
    let asked = Arc::new(Mutex::new(Vec::new()));
    let seen = asked.clone();
    servers[1]
        .of("/")
        .handlers()
        .on_cluster_join(move |socket, room| {
            seen.lock().push(room.clone());
            if room.len() <= 5 {
                socket.join(room);
            }
        });
    let here = servers[1].of("/").sockets()[0].clone();
    for room in ["short", "much-too-long"] {
        servers[0].of("/").broadcast_op().join_elsewhere(room);
    }
    assert_eq!(*asked.lock(), ["short", "much-too-long"]);
    assert!(here.in_room("short"));
    assert!(!here.in_room("much-too-long"), "the handler said no");
    servers[0].of("/").broadcast_op().leave_elsewhere("short");
    assert!(!here.in_room("short"));
    assert_eq!(bus.published.lock().len(), 3, "one message each");
}

#[tokio::test(start_paused = true)]
async fn a_fetch_across_servers_collects_every_answer_or_says_it_is_incomplete() {
    let (_bus, servers, _wires) = two_servers().await;
    let there = servers[1].of("/").sockets()[0].clone();
    there.join("blue");
    let (found, complete) = servers[0]
        .of("/")
        .to("blue")
        .fetch_elsewhere(Duration::from_secs(1))
        .await;
    assert!(complete, "the one other server answered");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, there.id().to_string());
    assert!(found[0].rooms.contains(&"blue".to_owned()));
    // A server that never answers: what came, and said incomplete after the timeout.
    let silent = SocketIo::new(SocketIoConfig::default());
    assert!(silent.join_cluster(Arc::new(Silent)));
    let (found, complete) = silent
        .of("/")
        .broadcast_op()
        .fetch_elsewhere(Duration::from_millis(500))
        .await;
    assert!(found.is_empty() && !complete);
}

/// A cluster of two where the other server never answers.
struct Silent;

impl Transport for Silent {
    fn attach(&self, _nsp: &str, _uid: &str, _namespace: Weak<Namespace>) {}
    fn detach(&self, _nsp: &str, _uid: &str) {}
    fn room_created(&self, _nsp: &str, _room: &str) {}
    fn room_deleted(&self, _nsp: &str, _room: &str) {}
    fn publish(&self, _nsp: &str, _route: Route<'_>, _bytes: Vec<u8>) {}
    fn server_count(&self, _nsp: &str) -> super::ServerCount {
        Box::pin(async { Some(2) })
    }
}

#[tokio::test(start_paused = true)]
async fn an_emptied_child_namespace_stays_long_enough_to_answer_then_goes() {
    let bus = Arc::new(Bus::default());
    let io = SocketIo::new(SocketIoConfig::default());
    assert!(io.join_cluster(bus.clone()));
    let parent = io.dynamic(regex::Regex::new(r"^/\w+$").expect("a pattern"));
    parent.cleanup_empty_children(true);
    let wire = Wire::open(&io);
    wire.send("0/acme,");
    settle().await;
    assert!(wire.received().await[0].starts_with("0/acme,{\"sid\""));
    assert_eq!(
        bus.namespaces.lock().len(),
        1,
        "attached with its first socket"
    );
    wire.send("1/acme,");
    settle().await;
    // Empty, but still there for the requests that counted it.
    assert_eq!(bus.namespaces.lock().len(), 1);
    assert_eq!(parent.children().len(), 1);
    tokio::time::advance(Duration::from_secs(6)).await;
    settle().await;
    assert!(parent.children().is_empty(), "gone once the grace is over");
    assert!(bus.namespaces.lock().is_empty(), "and detached");
}

/// A broadcast with acks from server 0: its socket and server 1's are asked; `answer`
/// says which of the two clients answer. The request's result.
async fn gather_with(answering: [bool; 2], max_bytes: usize) -> crate::socketio::BroadcastReplies {
    let (_bus, servers, wires) = two_servers().await;
    let gathering = servers[0]
        .of("/")
        .broadcast_op()
        .emit_with_ack_if(
            "question",
            args("[1]"),
            Duration::from_secs(2),
            max_bytes,
            |reached| {
                assert_eq!(reached, 1, "this server's own sockets");
                Ok::<(), std::convert::Infallible>(())
            },
        )
        .unwrap_or_else(|never| match never {});
    let gathered = tokio::spawn(gathering);
    settle().await;
    for (i, wire) in wires.iter().enumerate() {
        assert_eq!(wire.received().await, [r#"20["question",1]"#], "client {i}");
        if answering[i] {
            wire.send(&format!(r#"30[{{"from":{i}}},"ignored"]"#));
        }
    }
    settle().await;
    tokio::time::advance(Duration::from_secs(3)).await;
    let replies = gathered.await.expect("gathers");
    let waiting = servers[0]
        .of("/")
        .cluster()
        .map(|c| c.broadcasts.lock().len());
    assert_eq!(waiting, Some(0), "the request is forgotten once gathered");
    replies
}

#[tokio::test(start_paused = true)]
async fn a_broadcast_with_acks_gathers_every_servers_answers() {
    let replies = gather_with([true, true], 1 << 20).await;
    assert!(replies.complete);
    let mut answers = replies.replies.values().expect("a JSON array");
    answers.sort_by_key(|answer| answer["from"].as_u64());
    assert_eq!(
        answers,
        [
            serde_json::json!({"from": 0}),
            serde_json::json!({"from": 1})
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_broadcast_with_acks_that_times_out_has_the_answers_that_came() {
    for answering in [[true, false], [false, true]] {
        let replies = gather_with(answering, 1 << 20).await;
        assert!(!replies.complete, "{answering:?}");
        let from = usize::from(answering[1]);
        assert_eq!(
            replies.replies.values().expect("a JSON array"),
            [serde_json::json!({ "from": from })],
            "{answering:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn answers_past_the_byte_bound_end_the_gathering_incomplete() {
    // Each answer's arguments are about 20 bytes; 10 is exceeded by the first.
    let replies = gather_with([true, true], 10).await;
    assert!(!replies.complete);
    assert_eq!(
        replies.replies.values().expect("a JSON array"),
        Vec::<serde_json::Value>::new()
    );
}

#[tokio::test(start_paused = true)]
async fn a_gathering_dropped_unfinished_forgets_its_request() {
    let (_bus, servers, _wires) = two_servers().await;
    let nsp = servers[0].of("/");
    let gathering = nsp
        .broadcast_op()
        .emit_with_ack_if(
            "question",
            args("[]"),
            Duration::from_secs(2),
            1 << 20,
            |_| Ok::<(), std::convert::Infallible>(()),
        )
        .unwrap_or_else(|never| match never {});
    let waiting = || nsp.cluster().map(|c| c.broadcasts.lock().len());
    assert_eq!(waiting(), Some(1), "asked of the other server");
    drop(gathering);
    assert_eq!(waiting(), Some(0));
}
