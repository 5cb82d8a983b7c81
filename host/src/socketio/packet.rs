//! Socket.IO v5 packets: pure encode/decode, no IO.
//!
//! Format: `<type>[<attachments>-][<nsp>,][<ack id>][<JSON data>]`, with binary
//! attachments sent as separate Engine.IO binary messages right after.

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;

use super::scan::{scan, ScanError, Shape};

/// What a client asking for a namespace nobody serves is told.
const INVALID_NAMESPACE: &str = "Invalid namespace";
const INVALID_NAMESPACE_DATA: &str = "{\"message\":\"Invalid namespace\"}";

/// Whether a client may not send an event of this name: the client library uses it.
pub(crate) fn is_reserved(event: &str) -> bool {
    RESERVED_EVENTS.contains(&event)
}

/// Event names a client may not send: the client library uses them itself.
const RESERVED_EVENTS: [&str; 6] = [
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "newListener",
    "removeListener",
];

/// The arguments of an event or an ack: a JSON array as text, and the binary
/// attachments its `{"_placeholder":true,"num":N}` objects point to.
///
/// The text is kept as the client sent it (key order, number formatting), so
/// forwarding arguments costs no re-serialisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    json: String,
    attachments: Vec<Bytes>,
}

/// Why arguments could not be built or read.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    /// The JSON is not an array.
    #[error("arguments must be a JSON array")]
    NotAnArray,
    /// A binary placeholder points at no attachment.
    #[error("a binary placeholder points at no attachment")]
    BadPlaceholder,
    /// The JSON is not valid: what is at this byte cannot be there.
    #[error("arguments are not valid JSON (at byte {0})")]
    Invalid(usize),
    /// Arrays and objects nest deeper than [`MAX_JSON_DEPTH`].
    #[error("arguments nest deeper than {MAX_JSON_DEPTH} levels")]
    TooDeep,
    /// More binary attachments than the official client accepts.
    #[error("more than {CLIENT_MAX_ATTACHMENTS} binary attachments (the official client refuses the message)")]
    TooManyAttachments,
    /// Serialising or deserialising failed.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

impl From<ScanError> for PayloadError {
    fn from(error: ScanError) -> Self {
        match error {
            ScanError::Invalid(at) => PayloadError::Invalid(at),
            ScanError::TooDeep(_) => PayloadError::TooDeep,
        }
    }
}

/// How deep arrays and objects may nest in arguments from untrusted parts: what
/// `serde_json` (and so the Rust guest SDK) reads. Deeper JSON costs every reader a
/// recursion per level.
pub const MAX_JSON_DEPTH: usize = 128;

/// The binary attachments one message may carry: the official client's parser
/// (`maxAttachments`) refuses more and closes the connection with a parse error.
pub const CLIENT_MAX_ATTACHMENTS: usize = 10;

impl Default for Payload {
    fn default() -> Self {
        Payload {
            json: "[]".to_owned(),
            attachments: Vec::new(),
        }
    }
}

impl Payload {
    /// Arguments from a JSON array's text and its attachments.
    pub fn from_json(
        json: impl Into<String>,
        attachments: Vec<Bytes>,
    ) -> Result<Payload, PayloadError> {
        let json = json.into();
        let shape = scan(&json, usize::MAX)?;
        Payload::array(json, &shape, attachments)
    }

    /// Arguments from untrusted parts (a tenant's emit): the JSON must be an array
    /// nesting at most [`MAX_JSON_DEPTH`] deep, with at most [`CLIENT_MAX_ATTACHMENTS`]
    /// attachments, and every binary placeholder in it must point at one of them.
    pub fn checked(json: String, attachments: Vec<Bytes>) -> Result<Payload, PayloadError> {
        if attachments.len() > CLIENT_MAX_ATTACHMENTS {
            return Err(PayloadError::TooManyAttachments);
        }
        let shape = scan(&json, MAX_JSON_DEPTH)?;
        if shape.placeholder || !attachments.is_empty() {
            let value: Value = serde_json::from_str(&json)?;
            if !placeholders_valid(&value, attachments.len()) {
                return Err(PayloadError::BadPlaceholder);
            }
        }
        Payload::array(json, &shape, attachments)
    }

    /// Arguments from a text [`scan`] read: an array, without the space around it.
    fn array(
        json: String,
        shape: &Shape,
        attachments: Vec<Bytes>,
    ) -> Result<Payload, PayloadError> {
        if !shape.array {
            return Err(PayloadError::NotAnArray);
        }
        let trimmed = json.trim_matches(|c| matches!(c, ' ' | '\n' | '\t' | '\r'));
        let json = if trimmed.len() == json.len() {
            json
        } else {
            trimmed.to_owned()
        };
        Ok(Payload { json, attachments })
    }

    /// Arguments from anything that serialises to a JSON array, e.g. a tuple or a `Vec`.
    pub fn new<T: Serialize + ?Sized>(args: &T) -> Result<Payload, PayloadError> {
        let json = serde_json::to_string(args)?;
        if !json.starts_with('[') {
            return Err(PayloadError::NotAnArray);
        }
        Ok(Payload {
            json,
            attachments: Vec::new(),
        })
    }

    /// Arguments from JSON values.
    pub fn from_values(values: &[Value]) -> Payload {
        Payload {
            json: Value::from(values.to_vec()).to_string(),
            attachments: Vec::new(),
        }
    }

    /// The same arguments with binary attachments added; placeholders in the JSON must point at them.
    pub fn with_attachments(mut self, attachments: Vec<Bytes>) -> Payload {
        self.attachments = attachments;
        self
    }

    /// The same arguments with one string more at the end (connection state recovery's
    /// offset, which the client reads from there). `text` is written as it is: it must
    /// need no escaping.
    pub(crate) fn with_last(&self, text: &str) -> Payload {
        let inner = self.inner();
        let separator = if inner.is_empty() { "" } else { "," };
        Payload {
            json: format!("[{inner}{separator}\"{text}\"]"),
            attachments: self.attachments.clone(),
        }
    }

    /// Bytes on the wire, about: the JSON's length plus the attachments'.
    pub fn size(&self) -> usize {
        self.json.len() + self.attachments.iter().map(Bytes::len).sum::<usize>()
    }

    /// The JSON array's text.
    pub fn json(&self) -> &str {
        &self.json
    }

    /// The binary attachments.
    pub fn attachments(&self) -> &[Bytes] {
        &self.attachments
    }

    /// Splits into the JSON text and the attachments.
    pub fn into_parts(self) -> (String, Vec<Bytes>) {
        (self.json, self.attachments)
    }

    /// The arguments as JSON values (placeholders left in place).
    pub fn values(&self) -> Result<Vec<Value>, PayloadError> {
        Ok(serde_json::from_str(&self.json)?)
    }

    /// The arguments as one typed value, e.g. a tuple.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, PayloadError> {
        Ok(serde_json::from_str(&self.json)?)
    }

    /// The `index`-th argument, typed; `None` if there is none or it does not fit `T`.
    pub fn arg<T: DeserializeOwned>(&self, index: usize) -> Option<T> {
        let raw: Vec<&RawValue> = serde_json::from_str(&self.json).ok()?;
        serde_json::from_str(raw.get(index)?.get()).ok()
    }

    /// The array's elements as they appear in the text, without the brackets.
    fn inner(&self) -> &str {
        let inner = self
            .json
            .strip_prefix('[')
            .and_then(|s| s.strip_suffix(']'))
            .unwrap_or("");
        inner.trim()
    }
}

/// A Socket.IO packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// `0`: join a namespace (client, with an optional auth object) or the server's
    /// acceptance (with `{"sid":...}`).
    Connect {
        /// The namespace.
        nsp: String,
        /// The JSON object sent along, as text.
        data: Option<String>,
    },
    /// `1`: leave a namespace.
    Disconnect {
        /// The namespace.
        nsp: String,
    },
    /// `2` or `5`: an event with its arguments.
    Event {
        /// The namespace.
        nsp: String,
        /// The event's name.
        event: String,
        /// The arguments after the name.
        args: Payload,
        /// The id the receiver acknowledges with, if the sender wants an answer.
        ack: Option<u64>,
    },
    /// `3` or `6`: the answer to an event.
    Ack {
        /// The namespace.
        nsp: String,
        /// The id of the event answered.
        id: u64,
        /// The answer's arguments.
        args: Payload,
    },
    /// `4`: the server refuses a namespace; the JSON object (or string) as text.
    ConnectError {
        /// The namespace.
        nsp: String,
        /// `{"message":...,"data":...}` as text.
        data: String,
    },
}

/// Why a Socket.IO packet could not be decoded. Every one closes the connection with `parse error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The first character is not a packet type.
    #[error("unknown packet type")]
    UnknownType,
    /// The attachment count of a binary packet is missing or not a number.
    #[error("invalid attachment count")]
    Attachments,
    /// The ack id is not a number, or is missing from an ack.
    #[error("invalid ack id")]
    AckId,
    /// The data is not valid JSON, or not what the packet type needs.
    #[error("invalid payload")]
    Payload,
    /// A placeholder points at an attachment that does not exist.
    #[error("illegal attachments")]
    IllegalAttachments,
}

impl Packet {
    /// The server's answer to a CONNECT: `{"sid":...}`, and the private session id
    /// after it when the namespace recovers sessions, in Node's order. (Both are
    /// server-made ids that need no escaping.)
    pub(crate) fn connect_answer(nsp: &str, sid: &str, pid: Option<&str>) -> Packet {
        let data = match pid {
            Some(pid) => format!(r#"{{"sid":"{sid}","pid":"{pid}"}}"#),
            None => format!(r#"{{"sid":"{sid}"}}"#),
        };
        Packet::Connect {
            nsp: nsp.to_owned(),
            data: Some(data),
        }
    }

    /// The namespace the packet is for.
    pub fn nsp(&self) -> &str {
        match self {
            Packet::Connect { nsp, .. }
            | Packet::Disconnect { nsp }
            | Packet::Event { nsp, .. }
            | Packet::Ack { nsp, .. }
            | Packet::ConnectError { nsp, .. } => nsp,
        }
    }

    /// Decodes a text message; returns the packet and how many binary attachments follow it.
    pub fn decode(text: &str) -> Result<(Packet, usize), ParseError> {
        let kind = text
            .as_bytes()
            .first()
            .copied()
            .ok_or(ParseError::UnknownType)?;
        if !(b'0'..=b'6').contains(&kind) {
            return Err(ParseError::UnknownType);
        }
        let mut rest = &text[1..];
        let mut attachments = 0;
        if kind == b'5' || kind == b'6' {
            let (count, after) = rest.split_once('-').ok_or(ParseError::Attachments)?;
            if count.is_empty() || !count.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ParseError::Attachments);
            }
            attachments = count.parse().map_err(|_| ParseError::Attachments)?;
            rest = after;
        }
        let nsp = if rest.starts_with('/') {
            let (nsp, after) = rest.split_once(',').unwrap_or((rest, ""));
            rest = after;
            nsp.to_owned()
        } else {
            "/".to_owned()
        };
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let id = if digits > 0 {
            Some(
                rest[..digits]
                    .parse::<u64>()
                    .map_err(|_| ParseError::AckId)?,
            )
        } else {
            None
        };
        rest = &rest[digits..];
        let data = if rest.is_empty() { None } else { Some(rest) };
        let packet = match kind {
            b'0' => Packet::Connect {
                nsp,
                data: data.map(object_text).transpose()?,
            },
            b'1' if data.is_none() => Packet::Disconnect { nsp },
            b'2' | b'5' => {
                let (event, args) = split_event(data.ok_or(ParseError::Payload)?)?;
                Packet::Event {
                    nsp,
                    event,
                    args,
                    ack: id,
                }
            }
            b'3' | b'6' => Packet::Ack {
                nsp,
                id: id.ok_or(ParseError::AckId)?,
                args: Payload::from_json(data.ok_or(ParseError::Payload)?, Vec::new())
                    .map_err(|_| ParseError::Payload)?,
            },
            b'4' => Packet::ConnectError {
                nsp,
                data: connect_error_text(data.ok_or(ParseError::Payload)?)?,
            },
            _ => return Err(ParseError::Payload),
        };
        Ok((packet, attachments))
    }

    /// Encodes the packet: the text message, then the binary messages that follow it.
    pub fn encode(&self) -> (String, Vec<Bytes>) {
        let mut out = String::new();
        let binary = self.encode_into(&mut out);
        (out, binary)
    }

    /// About the length of the text message: exact but for the event name's escapes and
    /// the numbers' digits, which the margin covers.
    pub(crate) fn text_len_hint(&self) -> usize {
        let body = match self {
            Packet::Connect { data, .. } => data.as_deref().map_or(0, str::len),
            Packet::Disconnect { .. } => 0,
            Packet::Event { event, args, .. } => event.len() + args.json.len(),
            Packet::Ack { args, .. } => args.json.len(),
            Packet::ConnectError { data, .. } => data.len(),
        };
        self.nsp().len() + body + 32
    }

    /// Appends the text message to `out`; returns the binary messages that follow it.
    pub fn encode_into(&self, out: &mut String) -> Vec<Bytes> {
        // Room for the whole text at once, if the caller has not made it.
        out.reserve(self.text_len_hint());
        let mut binary = Vec::new();
        let (kind, nsp) = match self {
            Packet::Connect { nsp, .. } => ('0', nsp),
            Packet::Disconnect { nsp } => ('1', nsp),
            Packet::Event { nsp, args, .. } if args.attachments.is_empty() => ('2', nsp),
            Packet::Event { nsp, .. } => ('5', nsp),
            Packet::Ack { nsp, args, .. } if args.attachments.is_empty() => ('3', nsp),
            Packet::Ack { nsp, .. } => ('6', nsp),
            Packet::ConnectError { nsp, .. } => ('4', nsp),
        };
        out.push(kind);
        if let Packet::Event { args, .. } | Packet::Ack { args, .. } = self {
            if !args.attachments.is_empty() {
                out.push_str(itoa::Buffer::new().format(args.attachments.len()));
                out.push('-');
                binary = args.attachments.clone();
            }
        }
        if nsp != "/" {
            out.push_str(nsp);
            out.push(',');
        }
        match self {
            Packet::Connect { data, .. } => out.push_str(data.as_deref().unwrap_or("")),
            Packet::Disconnect { .. } => {}
            Packet::Event {
                event, args, ack, ..
            } => {
                if let Some(id) = ack {
                    out.push_str(itoa::Buffer::new().format(*id));
                }
                out.push('[');
                push_json_string(out, event);
                let inner = args.inner();
                if !inner.is_empty() {
                    out.push(',');
                    out.push_str(inner);
                }
                out.push(']');
            }
            Packet::Ack { id, args, .. } => {
                out.push_str(itoa::Buffer::new().format(*id));
                out.push_str(&args.json);
            }
            Packet::ConnectError { data, .. } => out.push_str(data),
        }
        binary
    }
}

/// Appends `text` as a JSON string; most event names need no escaping, and then this
/// allocates nothing.
fn push_json_string(out: &mut String, text: &str) {
    if text.chars().all(|c| c >= ' ' && c != '"' && c != '\\') {
        out.push('"');
        out.push_str(text);
        out.push('"');
    } else {
        out.push_str(&Value::from(text).to_string());
    }
}

/// Checks that CONNECT data is a JSON object and returns its text.
fn object_text(data: &str) -> Result<String, ParseError> {
    let raw: &RawValue = serde_json::from_str(data).map_err(|_| ParseError::Payload)?;
    if raw.get().starts_with('{') {
        Ok(raw.get().to_owned())
    } else {
        Err(ParseError::Payload)
    }
}

/// Checks that CONNECT_ERROR data is a JSON object or string, as Node's parser requires.
fn connect_error_text(data: &str) -> Result<String, ParseError> {
    let raw: &RawValue = serde_json::from_str(data).map_err(|_| ParseError::Payload)?;
    if raw.get().starts_with('{') || raw.get().starts_with('"') {
        Ok(raw.get().to_owned())
    } else {
        Err(ParseError::Payload)
    }
}

/// Splits `["name", ...args]` into the name and the arguments, keeping the arguments'
/// text as written.
fn split_event(data: &str) -> Result<(String, Payload), ParseError> {
    let shape = scan(data, usize::MAX).map_err(|_| ParseError::Payload)?;
    let (Some(first), Some(rest)) = (shape.first, shape.rest) else {
        return Err(ParseError::Payload);
    };
    let name = &data[first];
    let event = match name
        .strip_prefix('"')
        .and_then(|name| name.strip_suffix('"'))
    {
        Some(plain) if !plain.contains('\\') => Some(plain.to_owned()),
        Some(_) => serde_json::from_str::<String>(name).ok(),
        None => match serde_json::from_str::<Value>(name) {
            Ok(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        },
    };
    let event = event
        .filter(|name| !is_reserved(name))
        .ok_or(ParseError::Payload)?;
    let rest = &data[rest];
    let mut json = String::with_capacity(1 + rest.len());
    json.push('[');
    json.push_str(rest);
    Ok((
        event,
        Payload {
            json,
            attachments: Vec::new(),
        },
    ))
}

/// Completes a binary packet with its attachments, checking every placeholder points at one.
pub fn attach(packet: Packet, attachments: Vec<Bytes>) -> Result<Packet, ParseError> {
    let check = |args: &Payload| -> Result<(), ParseError> {
        let value: Value = serde_json::from_str(&args.json).map_err(|_| ParseError::Payload)?;
        if placeholders_valid(&value, attachments.len()) {
            Ok(())
        } else {
            Err(ParseError::IllegalAttachments)
        }
    };
    match packet {
        Packet::Event {
            nsp,
            event,
            args,
            ack,
        } => {
            check(&args)?;
            Ok(Packet::Event {
                nsp,
                event,
                args: args.with_attachments(attachments),
                ack,
            })
        }
        Packet::Ack { nsp, id, args } => {
            check(&args)?;
            Ok(Packet::Ack {
                nsp,
                id,
                args: args.with_attachments(attachments),
            })
        }
        other => Ok(other),
    }
}

fn placeholders_valid(value: &Value, count: usize) -> bool {
    match value {
        Value::Object(map) if map.get("_placeholder") == Some(&Value::Bool(true)) => map
            .get("num")
            .and_then(Value::as_u64)
            .is_some_and(|n| (n as usize) < count),
        Value::Object(map) => map.values().all(|v| placeholders_valid(v, count)),
        Value::Array(items) => items.iter().all(|v| placeholders_valid(v, count)),
        _ => true,
    }
}

/// A middleware's refusal: the client's `connect_error` gets `message` as `err.message`
/// and `data` as `err.data`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectError {
    /// Shown to the client as `err.message`.
    pub message: String,
    /// Shown to the client as `err.data`, when set.
    pub data: Option<Value>,
}

impl ConnectError {
    /// A refusal with a message only.
    pub fn new(message: impl Into<String>) -> Self {
        ConnectError {
            message: message.into(),
            data: None,
        }
    }

    /// A refusal with a message and data.
    pub fn with_data(message: impl Into<String>, data: Value) -> Self {
        ConnectError {
            message: message.into(),
            data: Some(data),
        }
    }

    /// The refusal of a namespace no server-side namespace matches.
    pub(crate) fn invalid_namespace() -> Self {
        ConnectError::new(INVALID_NAMESPACE)
    }

    /// Whether a CONNECT_ERROR's data is [`ConnectError::invalid_namespace`]'s (Node
    /// builds that packet elsewhere, and its fields come in another order).
    pub(crate) fn is_invalid_namespace(data: &str) -> bool {
        data == INVALID_NAMESPACE_DATA
    }

    /// The CONNECT_ERROR packet for namespace `nsp`: `{"message":...,"data":...}`, in
    /// that order, as Node writes it.
    pub(crate) fn packet(&self, nsp: &str) -> Packet {
        let mut body = String::from("{\"message\":");
        push_json_string(&mut body, &self.message);
        if let Some(data) = &self.data {
            body.push_str(",\"data\":");
            body.push_str(&data.to_string());
        }
        body.push('}');
        Packet::ConnectError {
            nsp: nsp.to_owned(),
            data: body,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Test strings are written as they travel, inside an Engine.IO message (`4` first).
    fn wire_decode(text: &str) -> Result<(Packet, usize), ParseError> {
        Packet::decode(text.strip_prefix('4').unwrap_or("!"))
    }

    fn wire(packet: &Packet) -> String {
        format!("4{}", packet.encode().0)
    }

    fn decode(text: &str) -> Packet {
        let (packet, attachments) = wire_decode(text).expect(text);
        assert_eq!(attachments, 0, "{text}");
        packet
    }

    #[test]
    fn connect_with_and_without_namespace_and_auth() {
        assert_eq!(
            decode("40"),
            Packet::Connect {
                nsp: "/".into(),
                data: None
            }
        );
        assert_eq!(
            decode("40/custom,"),
            Packet::Connect {
                nsp: "/custom".into(),
                data: None
            }
        );
        assert_eq!(
            decode("40/custom"),
            Packet::Connect {
                nsp: "/custom".into(),
                data: None
            }
        );
        assert_eq!(
            decode(r#"40/custom,{"token":"abc"}"#),
            Packet::Connect {
                nsp: "/custom".into(),
                data: Some(r#"{"token":"abc"}"#.into())
            }
        );
        assert_eq!(
            decode(r#"40{"token":"123"}"#),
            Packet::Connect {
                nsp: "/".into(),
                data: Some(r#"{"token":"123"}"#.into())
            }
        );
    }

    #[test]
    fn event_keeps_arguments_as_sent() {
        let packet = decode(r#"42["message",1,"2",{"3":[true],"a":1.50}]"#);
        let Packet::Event {
            event, args, ack, ..
        } = &packet
        else {
            panic!("not an event: {packet:?}")
        };
        assert_eq!(event, "message");
        assert_eq!(args.json(), r#"[1,"2",{"3":[true],"a":1.50}]"#);
        assert_eq!(*ack, None);
        assert_eq!(
            wire(&packet),
            r#"42["message",1,"2",{"3":[true],"a":1.50}]"#
        );
    }

    #[test]
    fn an_event_is_its_name_and_the_rest_of_its_array() {
        for (text, event, args) in [
            // The arguments as written, space and all.
            (r#"42[ "a" , 1 , {"b" : 2} ]"#, "a", r#"[ 1 , {"b" : 2} ]"#),
            (r#"42["a\"b",2]"#, "a\"b", "[2]"),
            (r#"42[12,"x"]"#, "12", r#"["x"]"#),
            (r#"42[1.5]"#, "1.5", "[]"),
            (r#"42["\u0061b"]"#, "ab", "[]"),
            ("42[\"a\",[[]],null]\n", "a", "[[[]],null]"),
        ] {
            let Packet::Event {
                event: e, args: a, ..
            } = decode(text)
            else {
                panic!("{text:?} is not an event");
            };
            assert_eq!((e.as_str(), a.json()), (event, args), "{text:?}");
        }
        for text in [
            r#"42["a"] x"#,
            r#"42["a"],"#,
            r#"42["a",]"#,
            r#"42[true]"#,
            r#"42["disconnect",1]"#,
        ] {
            assert!(wire_decode(text).is_err(), "{text:?} should not decode");
        }
    }

    #[test]
    fn event_with_ack_and_namespace() {
        let packet = decode(r#"42/admin,456["x"]"#);
        assert_eq!(
            packet,
            Packet::Event {
                nsp: "/admin".into(),
                event: "x".into(),
                args: Payload::default(),
                ack: Some(456)
            }
        );
        assert_eq!(wire(&packet), r#"42/admin,456["x"]"#);
    }

    #[test]
    fn event_names_are_json_strings_escaped_or_not() {
        for (name, json) in [
            ("plain", r#""plain""#),
            ("é ü 日本", r#""é ü 日本""#),
            ("say \"hi\"", r#""say \"hi\"""#),
            ("back\\slash", r#""back\\slash""#),
            ("new\nline\u{1}", r#""new\nline\u0001""#),
        ] {
            let packet = Packet::Event {
                nsp: "/".into(),
                event: name.into(),
                args: Payload::default(),
                ack: None,
            };
            assert_eq!(packet.encode().0, format!("2[{json}]"), "{name:?}");
            // And it reads back as the same name.
            assert_eq!(decode(&wire(&packet)), packet);
        }
    }

    #[test]
    fn binary_event_and_ack() {
        let text =
            r#"452-789["message",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#;
        let (packet, count) = wire_decode(text).expect("valid");
        assert_eq!(count, 2);
        let bins = vec![
            Bytes::from_static(&[1, 2, 3]),
            Bytes::from_static(&[4, 5, 6]),
        ];
        let packet = attach(packet, bins.clone()).expect("valid placeholders");
        let (encoded, binary) = packet.encode();
        assert_eq!(format!("4{encoded}"), text);
        assert_eq!(binary, bins);

        let ack = Packet::Ack {
            nsp: "/".into(),
            id: 789,
            args: Payload::from_json(
                r#"[{"_placeholder":true,"num":0}]"#,
                vec![Bytes::from_static(&[9])],
            )
            .expect("array"),
        };
        assert_eq!(wire(&ack), r#"461-789[{"_placeholder":true,"num":0}]"#);
        let (decoded, count) =
            wire_decode(r#"461-/x,789[{"_placeholder":true,"num":0}]"#).expect("valid");
        assert_eq!(count, 1);
        assert_eq!(decoded.nsp(), "/x");
    }

    #[test]
    fn checked_payloads_nest_within_the_depth_and_carry_few_attachments() {
        let deep = |n: usize| format!("[{}{}]", "[".repeat(n - 1), "]".repeat(n - 1));
        assert!(Payload::checked(deep(MAX_JSON_DEPTH), vec![]).is_ok());
        assert!(matches!(
            Payload::checked(deep(MAX_JSON_DEPTH + 1), vec![]),
            Err(PayloadError::TooDeep)
        ));
        assert!(matches!(
            Payload::checked(deep(100_000), vec![]),
            Err(PayloadError::TooDeep)
        ));
        // Brackets inside strings, escaped quotes included, are text.
        let quoted = format!(r#"["\"{}", {{"k":"]]]"}}]"#, "[".repeat(1000));
        assert!(Payload::checked(quoted, vec![]).is_ok());
        // A string ending in an escaped backslash ends there: the brackets after count.
        let escaped = |n: usize| format!(r#"["a\\",{}{}]"#, "[".repeat(n), "]".repeat(n));
        assert!(Payload::checked(escaped(MAX_JSON_DEPTH - 1), vec![]).is_ok());
        assert!(matches!(
            Payload::checked(escaped(MAX_JSON_DEPTH), vec![]),
            Err(PayloadError::TooDeep)
        ));
        // Cut inside a string or an escape: refused, no panic.
        assert!(matches!(
            Payload::checked(r#"["a\"#.into(), vec![]),
            Err(PayloadError::Invalid(_))
        ));
        assert!(matches!(
            Payload::checked(r#"["a"#.into(), vec![]),
            Err(PayloadError::Invalid(_))
        ));
        let placeholders = |n: usize| {
            let items: Vec<String> = (0..n)
                .map(|i| format!(r#"{{"_placeholder":true,"num":{i}}}"#))
                .collect();
            format!("[{}]", items.join(","))
        };
        let bins = |n: usize| vec![Bytes::from_static(b"b"); n];
        let ten = CLIENT_MAX_ATTACHMENTS;
        assert!(Payload::checked(placeholders(ten), bins(ten)).is_ok());
        assert!(matches!(
            Payload::checked(placeholders(ten + 1), bins(ten + 1)),
            Err(PayloadError::TooManyAttachments)
        ));
    }

    #[test]
    fn checked_payloads_need_an_array_and_valid_placeholders() {
        let one = vec![Bytes::from_static(b"x")];
        let ok = r#"[{"a":{"_placeholder":true,"num":0}}]"#;
        assert!(Payload::checked(ok.into(), one.clone()).is_ok());
        assert!(Payload::checked(ok.into(), vec![]).is_err());
        assert!(
            Payload::checked(r#"[{"_placeholder":true,"num":1}]"#.into(), one.clone()).is_err()
        );
        // Spelled with an escape, the key is still `_placeholder` to the client's parser.
        let escaped = r#"[{"\u005fplaceholder":true,"num":0}]"#;
        assert!(matches!(
            Payload::checked(escaped.into(), vec![]),
            Err(PayloadError::BadPlaceholder)
        ));
        assert!(Payload::checked(escaped.into(), one.clone()).is_ok());
        assert!(Payload::checked("{}".into(), one).is_err());
        assert!(Payload::checked("[1,2]".into(), vec![]).is_ok());
        assert!(Payload::checked("[1,".into(), vec![]).is_err());
        assert!(Payload::checked("7".into(), vec![]).is_err());
    }

    #[test]
    fn placeholder_out_of_range_is_illegal() {
        let (packet, _) =
            wire_decode(r#"451-["m",{"deep":[{"_placeholder":true,"num":3}]}]"#).expect("header");
        assert_eq!(
            attach(packet, vec![Bytes::new()]),
            Err(ParseError::IllegalAttachments)
        );
    }

    #[test]
    fn malformed_packets_are_errors() {
        for text in [
            "",
            "4abc",
            "7",
            "abc",
            "42{}",
            "42abc[\"a\"]",
            "42[]",
            "42[1",
            "42[\"connect\"]",
            "42[{}]",
            "45-[\"a\"]",
            "4x-[\"a\"]",
            "43[1]",
            "41{}",
            "40[1]",
            "40\"x\"",
            "42",
            "4299999999999999999999999[\"a\"]",
            // Found by the fuzzer: CONNECT_ERROR data that is not JSON.
            "441/",
            "4421/00\n",
            "44/x,[1]",
            "45999999999999999999999-[\"a\"]",
        ] {
            assert!(wire_decode(text).is_err(), "{text:?} should not decode");
        }
    }

    #[test]
    fn acks_and_disconnect_round_trip() {
        assert_eq!(decode("41"), Packet::Disconnect { nsp: "/".into() });
        assert_eq!(decode("41/a,"), Packet::Disconnect { nsp: "/a".into() });
        let ack = decode(r#"43/a,12[1,"x"]"#);
        assert_eq!(wire(&ack), r#"43/a,12[1,"x"]"#);
    }

    #[test]
    fn connect_error_encoding() {
        let packet = Packet::ConnectError {
            nsp: "/random".into(),
            data: r#"{"message":"Invalid namespace"}"#.into(),
        };
        assert_eq!(
            wire(&packet),
            r#"44/random,{"message":"Invalid namespace"}"#
        );
    }

    #[test]
    fn payload_helpers() {
        let payload = Payload::new(&(1, "two", [3])).expect("tuple is an array");
        assert_eq!(payload.json(), r#"[1,"two",[3]]"#);
        assert_eq!(payload.arg::<String>(1).as_deref(), Some("two"));
        assert_eq!(payload.arg::<u8>(5), None);
        assert!(Payload::new(&"x").is_err());
        assert!(Payload::from_json("{}", vec![]).is_err());
        assert!(Payload::from_json(" [ 1 , 2 ] ", vec![]).is_ok());
    }
}
