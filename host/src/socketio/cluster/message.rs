//! The messages servers of one Socket.IO deployment exchange, in the format of Node's
//! `socket.io-adapter` `ClusterAdapter` (what `@socket.io/redis-adapter`'s sharded
//! adapter publishes): `{type, data, uid, nsp}` as JSON, or as MessagePack when the
//! data holds binary. Decoding tells them apart by the first byte (`{` is JSON).
//!
//! Every message is read into a [`rmpv::Value`] tree first; JSON without binary and
//! MessagePack both fit it, so one set of accessors reads either.

use bytes::Bytes;
use rmpv::Value;

use crate::socketio::packet::{Payload, PayloadError, MAX_JSON_DEPTH};

/// The `type` numbers of `ClusterAdapter` messages (socket.io-adapter's `MessageType`).
pub(crate) mod kind {
    pub const BROADCAST: u8 = 3;
    pub const SOCKETS_JOIN: u8 = 4;
    pub const SOCKETS_LEAVE: u8 = 5;
    pub const DISCONNECT_SOCKETS: u8 = 6;
    pub const FETCH_SOCKETS: u8 = 7;
    pub const FETCH_SOCKETS_RESPONSE: u8 = 8;
    pub const SERVER_SIDE_EMIT: u8 = 9;
    pub const BROADCAST_CLIENT_COUNT: u8 = 11;
    pub const BROADCAST_ACK: u8 = 12;
}

/// Socket.IO's EVENT packet type, as the packet inside a BROADCAST carries it (binary
/// arguments included: the receiving server's encoder makes it a BINARY_EVENT).
const EVENT: u8 = 2;

/// How deep a decoded message may nest: the arguments' bound and the envelope around them.
const MAX_DEPTH: usize = MAX_JSON_DEPTH + 8;

/// Why a message from another server was dropped.
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    /// Neither JSON nor MessagePack, or nested too deep.
    #[error("not a cluster message: {0}")]
    Undecodable(String),
    /// A field is missing or has the wrong type.
    #[error("a cluster message without a valid {0}")]
    Field(&'static str),
    /// The event's arguments are not what a client may be sent.
    #[error("the arguments of a cluster message: {0}")]
    Payload(#[from] PayloadError),
}

/// One message: who sent it (`uid`, random per server and namespace), for which
/// namespace, its type and its data.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// The message type (socket.io-adapter's `MessageType` number).
    pub kind: u8,
    /// The sending server's id for this namespace.
    pub uid: String,
    /// The namespace.
    pub nsp: String,
    /// The type's data (`Nil` when it has none).
    pub data: Value,
}

impl Message {
    /// The bytes to publish: JSON, or MessagePack if the data holds binary.
    pub fn encode(&self) -> Vec<u8> {
        let mut fields = Vec::with_capacity(4);
        fields.push((Value::from("type"), Value::from(self.kind)));
        if !self.data.is_nil() {
            fields.push((Value::from("data"), self.data.clone()));
        }
        fields.push((Value::from("uid"), Value::from(self.uid.as_str())));
        fields.push((Value::from("nsp"), Value::from(self.nsp.as_str())));
        let envelope = Value::Map(fields);
        if has_binary(&self.data) {
            let mut out = Vec::new();
            // Writing to a Vec cannot fail.
            let _ = rmpv::encode::write_value(&mut out, &envelope);
            out
        } else {
            let mut out = String::new();
            write_json(&envelope, &mut out, &mut None);
            out.into_bytes()
        }
    }

    /// Reads a message as Node's adapters write it.
    pub fn decode(bytes: &[u8]) -> Result<Message, MessageError> {
        let value = decode_value(bytes)?;
        let kind = field(&value, "type")
            .and_then(Value::as_u64)
            .and_then(|k| u8::try_from(k).ok())
            .ok_or(MessageError::Field("type"))?;
        Ok(Message {
            kind,
            // An emitter sends no uid; nothing of ours is ever "".
            uid: str_field(&value, "uid").unwrap_or_default().to_owned(),
            nsp: str_field(&value, "nsp").unwrap_or("/").to_owned(),
            data: field(&value, "data").cloned().unwrap_or(Value::Nil),
        })
    }

    /// Reads what `@socket.io/redis-emitter` publishes for the namespace `nsp` in the
    /// classic adapter's format, as the message of the same meaning: a broadcast
    /// (`[uid, packet, opts]`, MessagePack), or a request (`request`: JSON
    /// `{type, opts, rooms | close}`). `None` for a request that has no such message.
    pub fn from_classic(
        bytes: &[u8],
        request: bool,
        nsp: &str,
    ) -> Result<Option<Message>, MessageError> {
        let value = decode_value(bytes)?;
        let message = |kind, uid: &str, data| Message {
            kind,
            uid: uid.to_owned(),
            nsp: nsp.to_owned(),
            data,
        };
        if !request {
            let Some([uid, packet, opts]) = value.as_array().map(Vec::as_slice) else {
                return Err(MessageError::Field("[uid, packet, opts]"));
            };
            // The packet names its namespace; the channel does too (they agree).
            if str_field(packet, "nsp").is_some_and(|n| n != nsp) {
                return Ok(None);
            }
            let data = map(vec![("packet", packet.clone()), ("opts", opts.clone())]);
            return Ok(Some(message(
                kind::BROADCAST,
                uid.as_str().unwrap_or("emitter"),
                data,
            )));
        }
        let kind = match field(&value, "type").and_then(Value::as_u64) {
            Some(2) => kind::SOCKETS_JOIN,
            Some(3) => kind::SOCKETS_LEAVE,
            Some(4) => kind::DISCONNECT_SOCKETS,
            // Fetches and server-side events of classic adapters: not answered here.
            _ => return Ok(None),
        };
        let uid = str_field(&value, "uid").unwrap_or("emitter").to_owned();
        Ok(Some(message(kind, &uid, value)))
    }
}

/// A message's bytes as a tree: JSON if it starts with `{`, else MessagePack.
fn decode_value(bytes: &[u8]) -> Result<Value, MessageError> {
    {
        let value = if bytes.first() == Some(&b'{') {
            let text =
                std::str::from_utf8(bytes).map_err(|e| MessageError::Undecodable(e.to_string()))?;
            // Bounded before serde_json, which reads a level per recursion.
            crate::socketio::scan::scan(text, MAX_DEPTH)
                .map_err(|e| MessageError::Undecodable(e.to_string()))?;
            // Into the tree directly: keys keep their order.
            serde_json::from_slice::<Value>(bytes)
                .map_err(|e| MessageError::Undecodable(e.to_string()))?
        } else {
            let mut reader = bytes;
            rmpv::decode::read_value_with_max_depth(&mut reader, MAX_DEPTH)
                .map_err(|e| MessageError::Undecodable(e.to_string()))?
        };
        Ok(value)
    }
}

/// The value of `key` in the map `value`.
pub(crate) fn field<'v>(value: &'v Value, key: &str) -> Option<&'v Value> {
    value
        .as_map()?
        .iter()
        .find(|(k, _)| k.as_str() == Some(key))
        .map(|(_, v)| v)
}

/// The string `key` of the map `value`.
pub(crate) fn str_field<'v>(value: &'v Value, key: &str) -> Option<&'v str> {
    field(value, key)?.as_str()
}

/// The strings of the array `key` of the map `value` (others skipped).
pub(crate) fn strings(value: &Value, key: &str) -> Vec<String> {
    field(value, key)
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// A map with string keys.
pub(crate) fn map(fields: Vec<(&str, Value)>) -> Value {
    Value::Map(
        fields
            .into_iter()
            .map(|(k, v)| (Value::from(k), v))
            .collect(),
    )
}

/// Which sockets an operation is for: `{rooms, except, flags}` (sets as arrays).
#[derive(Debug, Clone, PartialEq)]
pub struct Opts {
    /// The rooms targeted (a union); none means every socket.
    pub rooms: Vec<String>,
    /// The rooms whose sockets are left out.
    pub except: Vec<String>,
    /// Broadcast flags, passed on as received (`volatile`, `compress`, `timeout`, ...).
    pub flags: Value,
}

impl Default for Opts {
    fn default() -> Opts {
        Opts {
            rooms: Vec::new(),
            except: Vec::new(),
            flags: Value::Map(Vec::new()),
        }
    }
}

impl Opts {
    /// Reads `opts` from a message's data.
    pub fn read(data: &Value) -> Opts {
        let opts = field(data, "opts").cloned().unwrap_or(Value::Nil);
        Opts {
            rooms: strings(&opts, "rooms"),
            except: strings(&opts, "except"),
            flags: field(&opts, "flags")
                .cloned()
                .unwrap_or_else(|| Value::Map(Vec::new())),
        }
    }

    /// As it goes in a message.
    pub fn value(&self) -> Value {
        let list = |rooms: &[String]| {
            Value::Array(rooms.iter().map(|r| Value::from(r.as_str())).collect())
        };
        let flags = if self.flags.is_map() {
            self.flags.clone()
        } else {
            Value::Map(Vec::new())
        };
        map(vec![
            ("rooms", list(&self.rooms)),
            ("except", list(&self.except)),
            ("flags", flags),
        ])
    }

    /// The `timeout` flag, in milliseconds.
    pub fn timeout_ms(&self) -> Option<u64> {
        field(&self.flags, "timeout").and_then(Value::as_u64)
    }

    /// Whether the operation is `volatile` (dropped where it cannot be sent at once).
    pub fn volatile(&self) -> bool {
        field(&self.flags, "volatile").and_then(Value::as_bool) == Some(true)
    }
}

/// `{type: 2, data: [event, ...args]}`: the packet of a BROADCAST.
pub fn event_packet(event: &str, args: &Payload) -> Value {
    map(vec![
        ("type", Value::from(EVENT)),
        ("data", event_array(event, args)),
    ])
}

/// `[event, ...args]`: an EVENT packet's data, and what SERVER_SIDE_EMIT carries.
pub fn event_array(event: &str, args: &Payload) -> Value {
    let mut data = vec![Value::from(event)];
    if let Value::Array(args) = payload_value(args) {
        data.extend(args);
    }
    Value::Array(data)
}

/// The event and arguments of a BROADCAST's packet (its `nsp` and `id`, if any, are
/// ignored: the receiver uses its own).
pub fn read_event_packet(packet: &Value) -> Result<(String, Payload), MessageError> {
    let data = field(packet, "data")
        .and_then(Value::as_array)
        .ok_or(MessageError::Field("packet.data"))?;
    read_event(data)
}

/// `[event, ...args]`, as SERVER_SIDE_EMIT carries it.
pub fn read_event(data: &[Value]) -> Result<(String, Payload), MessageError> {
    let (event, args) = data.split_first().ok_or(MessageError::Field("event"))?;
    let event = event.as_str().ok_or(MessageError::Field("event"))?;
    Ok((event.to_owned(), payload_from(args)?))
}

/// Arguments as a value tree (keys in their order): each binary placeholder replaced
/// by its attachment.
pub fn payload_value(args: &Payload) -> Value {
    match serde_json::from_str::<Value>(args.json()) {
        Ok(tree) => with_binary(tree, args.attachments()),
        // A Payload always holds a JSON array.
        Err(_) => Value::Array(Vec::new()),
    }
}

/// Arguments from a value tree: binary becomes attachments and placeholders, checked
/// as anything a tenant sends is (depth, number of attachments).
pub fn payload_from(args: &[Value]) -> Result<Payload, PayloadError> {
    let mut attachments = Some(Vec::new());
    let mut text = String::new();
    write_json(&Value::Array(args.to_vec()), &mut text, &mut attachments);
    Payload::checked(text, attachments.unwrap_or_default())
}

/// The answers a broadcast with acks gathered, as arguments: one per answer. Not
/// bounded as a tenant's own arguments are: it goes to the tenant, not to a client.
pub fn gathered(answers: Vec<Value>) -> Payload {
    let mut attachments = Some(Vec::new());
    let mut text = String::new();
    write_json(&Value::Array(answers), &mut text, &mut attachments);
    Payload::from_json(text, attachments.unwrap_or_default()).unwrap_or_default()
}

/// The first argument of a payload as a value (what an ack's answer carries across).
pub fn first_arg(args: &Payload) -> Value {
    match payload_value(args) {
        Value::Array(mut items) if !items.is_empty() => items.swap_remove(0),
        _ => Value::Nil,
    }
}

fn has_binary(value: &Value) -> bool {
    match value {
        Value::Binary(_) => true,
        Value::Array(items) => items.iter().any(has_binary),
        Value::Map(fields) => fields.iter().any(|(_, v)| has_binary(v)),
        _ => false,
    }
}

/// A map key as JavaScript sees it (it makes every key a property name).
fn key_text(key: &Value) -> Option<String> {
    match key {
        Value::String(s) => s.as_str().map(str::to_owned),
        Value::Integer(i) => Some(i.to_string()),
        Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

/// JSON as a value tree.
pub(crate) fn from_json(json: serde_json::Value) -> Value {
    use serde_json::Value as J;
    match json {
        J::Null => Value::Nil,
        J::Bool(b) => Value::Boolean(b),
        J::Number(n) => n
            .as_u64()
            .map(Value::from)
            .or_else(|| n.as_i64().map(Value::from))
            .unwrap_or_else(|| Value::F64(n.as_f64().unwrap_or(0.0))),
        J::String(s) => Value::from(s),
        J::Array(items) => Value::Array(items.into_iter().map(from_json).collect()),
        J::Object(fields) => Value::Map(
            fields
                .into_iter()
                .map(|(k, v)| (Value::from(k), from_json(v)))
                .collect(),
        ),
    }
}

/// Arguments as a tree, placeholders replaced by their attachments.
fn with_binary(tree: Value, attachments: &[Bytes]) -> Value {
    match tree {
        Value::Map(fields) if is_placeholder(&fields) => {
            let num = fields
                .iter()
                .find(|(k, _)| k.as_str() == Some("num"))
                .and_then(|(_, v)| v.as_u64())
                .unwrap_or(u64::MAX);
            usize::try_from(num)
                .ok()
                .and_then(|n| attachments.get(n))
                .map_or(Value::Nil, |b| Value::Binary(b.to_vec()))
        }
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|v| with_binary(v, attachments))
                .collect(),
        ),
        Value::Map(fields) => Value::Map(
            fields
                .into_iter()
                .map(|(k, v)| (k, with_binary(v, attachments)))
                .collect(),
        ),
        other => other,
    }
}

fn is_placeholder(fields: &[(Value, Value)]) -> bool {
    fields
        .iter()
        .any(|(k, v)| k.as_str() == Some("_placeholder") && v.as_bool() == Some(true))
}

/// Writes a tree as JSON text, keys in their order. Binary becomes a placeholder with
/// its bytes moved to `attachments`, or `null` without them (never the case: the
/// encoder writes a tree with binary as MessagePack).
fn write_json(value: &Value, out: &mut String, attachments: &mut Option<Vec<Bytes>>) {
    use std::fmt::Write;
    match value {
        Value::Nil | Value::Ext(..) => out.push_str("null"),
        Value::Boolean(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Integer(i) => {
            let _ = write!(out, "{i}");
        }
        Value::F32(f) => write_float(f64::from(*f), out),
        Value::F64(f) => write_float(*f, out),
        Value::String(s) => write_str(s.as_str().unwrap_or_default(), out),
        Value::Binary(bytes) => match attachments {
            Some(list) => {
                let _ = write!(out, r#"{{"_placeholder":true,"num":{}}}"#, list.len());
                list.push(Bytes::copy_from_slice(bytes));
            }
            None => out.push_str("null"),
        },
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(item, out, attachments);
            }
            out.push(']');
        }
        Value::Map(fields) => {
            out.push('{');
            let mut first = true;
            for (key, item) in fields {
                let Some(key) = key_text(key) else { continue };
                if !first {
                    out.push(',');
                }
                first = false;
                write_str(&key, out);
                out.push(':');
                write_json(item, out, attachments);
            }
            out.push('}');
        }
    }
}

/// A tree as JSON (binary as `null`): for what is shown, not relayed.
pub(crate) fn to_json(value: &Value) -> serde_json::Value {
    let mut text = String::new();
    write_json(value, &mut text, &mut None);
    serde_json::from_str(&text).unwrap_or_default()
}

/// A number as JavaScript's `JSON.stringify` writes it (not finite: `null`).
fn write_float(f: f64, out: &mut String) {
    match serde_json::Number::from_f64(f) {
        Some(n) => out.push_str(&n.to_string()),
        None => out.push_str("null"),
    }
}

fn write_str(s: &str, out: &mut String) {
    // Serialising a string cannot fail.
    out.push_str(&serde_json::to_string(s).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
            .collect()
    }

    fn broadcast(args: Payload) -> Message {
        Message {
            kind: kind::BROADCAST,
            uid: "0123456789abcdef".into(),
            nsp: "/".into(),
            data: map(vec![
                ("packet", event_packet(args_event(), &args)),
                (
                    "opts",
                    Opts {
                        rooms: vec!["room1".into()],
                        ..Opts::default()
                    }
                    .value(),
                ),
            ]),
        }
    }

    fn args_event() -> &'static str {
        "ev"
    }

    #[test]
    fn a_broadcast_without_binary_is_the_json_nodes_adapter_writes() {
        let message = broadcast(Payload::from_json(r#"["world"]"#, vec![]).expect("args"));
        assert_eq!(
            String::from_utf8(message.encode()).expect("utf-8"),
            r#"{"type":3,"data":{"packet":{"type":2,"data":["ev","world"]},"opts":{"rooms":["room1"],"except":[],"flags":{}}},"uid":"0123456789abcdef","nsp":"/"}"#
        );
    }

    #[test]
    fn a_broadcast_with_binary_is_byte_for_byte_what_notepack_writes() {
        // `["ev", Buffer<01 02 03>]` to room1, as notepack.io 3.0.1 encodes it.
        let args = Payload::from_json(
            r#"[{"_placeholder":true,"num":0}]"#,
            vec![Bytes::from_static(&[1, 2, 3])],
        )
        .expect("args");
        let node = hex("84a47479706503a46461746182a67061636b657482a47479706502a46461746192a26576c403010203a46f70747383a5726f6f6d7391a5726f6f6d31a665786365707490a5666c61677380a3756964b030313233343536373839616263646566a36e7370a12f");
        assert_eq!(broadcast(args.clone()).encode(), node);
        // And it reads back to the same event, the binary an attachment again.
        let read = Message::decode(&node).expect("decodes");
        assert_eq!(read.kind, kind::BROADCAST);
        let packet = field(&read.data, "packet").expect("a packet");
        let (event, back) = read_event_packet(packet).expect("an event");
        assert_eq!((event.as_str(), back), ("ev", args));
        assert_eq!(Opts::read(&read.data).rooms, ["room1"]);
    }

    #[test]
    fn arguments_keep_their_key_order_both_ways() {
        let args = Payload::from_json(r#"[{"z":1,"a":{"y":[true,null,"é\n"],"b":2.5}}]"#, vec![])
            .expect("args");
        let tree = payload_value(&args);
        let back = payload_from(tree.as_array().expect("an array")).expect("valid");
        assert_eq!(back.json(), args.json());
    }

    #[test]
    fn what_notepack_writes_for_numbers_and_nil_is_read() {
        // notepack of {b:[undefined], c:1.5, d:2**32, e:-1, f:1700000000000}.
        let bytes = hex(
            "85a16291c0a163cb3ff8000000000000a164cf0000000100000000a165ffa166cf0000018bcfe56800",
        );
        let mut reader = bytes.as_slice();
        let value = rmpv::decode::read_value(&mut reader).expect("decodes");
        let mut text = String::new();
        write_json(&value, &mut text, &mut None);
        assert_eq!(
            text,
            r#"{"b":[null],"c":1.5,"d":4294967296,"e":-1,"f":1700000000000}"#
        );
    }

    #[test]
    fn what_the_redis_emitter_publishes_reads_as_the_same_messages() {
        // notepack of ["emitter", {type: 2, data: ["msg", "x", Buffer<01 02>], nsp: "/"},
        // {rooms: ["r"], flags: {}, except: ["e"]}], as @socket.io/redis-emitter 5.1.0 sends it.
        let broadcast = hex("93a7656d697474657283a47479706502a46461746193a36d7367a178c4020102a36e7370a12f83a5726f6f6d7391a172a5666c61677380a665786365707491a165");
        let message = Message::from_classic(&broadcast, false, "/")
            .expect("decodes")
            .expect("a broadcast");
        assert_eq!(
            (message.kind, message.uid.as_str()),
            (kind::BROADCAST, "emitter")
        );
        let packet = field(&message.data, "packet").expect("a packet");
        let (event, args) = read_event_packet(packet).expect("an event");
        assert_eq!(event, "msg");
        assert_eq!(args.json(), r#"["x",{"_placeholder":true,"num":0}]"#);
        assert_eq!(args.attachments(), [Bytes::from_static(&[1, 2])]);
        let opts = Opts::read(&message.data);
        assert_eq!(
            (opts.rooms, opts.except),
            (vec!["r".to_owned()], vec!["e".to_owned()])
        );
        // Another namespace's packet on this namespace's channel is not this one's.
        assert!(Message::from_classic(&broadcast, false, "/other")
            .expect("decodes")
            .is_none());
        // socketsJoin, as JSON on the request channel.
        let join = br#"{"type":2,"opts":{"rooms":["r"],"except":[]},"rooms":["g"]}"#;
        let message = Message::from_classic(join, true, "/")
            .expect("decodes")
            .expect("a join");
        assert_eq!(message.kind, kind::SOCKETS_JOIN);
        assert_eq!(strings(&message.data, "rooms"), ["g"]);
        assert_eq!(Opts::read(&message.data).rooms, ["r"]);
        // A fetch (a classic adapter's) has no answer here.
        let fetch = br#"{"uid":"x","requestId":"1","type":5,"opts":{"rooms":[],"except":[]}}"#;
        assert!(Message::from_classic(fetch, true, "/")
            .expect("decodes")
            .is_none());
        assert!(Message::from_classic(b"\x93\xc0", false, "/").is_err());
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        for bytes in [
            &b""[..],
            b"{",
            b"\xc1",
            b"{\"type\":\"x\"}",
            b"[1,2]",
            b"\x84",
        ] {
            assert!(Message::decode(bytes).is_err(), "{bytes:?}");
        }
        let deep = format!(
            "{{\"type\":3,\"data\":{}{}}}",
            "[".repeat(500),
            "]".repeat(500)
        );
        assert!(Message::decode(deep.as_bytes()).is_err());
        // An event packet without a string event, or with a bad placeholder.
        assert!(read_event(&[Value::from(1)]).is_err());
        assert!(read_event(&[]).is_err());
        let forged = from_json(serde_json::json!([{"_placeholder": true, "num": 3}]));
        let Value::Array(forged) = forged else {
            panic!()
        };
        assert!(
            payload_from(&forged).is_err(),
            "a placeholder pointing at nothing"
        );
    }
}
