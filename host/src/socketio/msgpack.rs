//! The msgpack parser (`socket.io-msgpack-parser`): each packet is one binary
//! Engine.IO message, the msgpack map `{type, data, id?, nsp}` that notepack.io makes of
//! Node's packet object. Binary values travel inside it, so there are no attachment
//! messages and no `BINARY_EVENT` type.
//!
//! Inside nsbox a packet stays what the JSON parser makes of it (arguments as JSON text,
//! binaries as attachments that placeholders point at), so tenants, rooms and the
//! cluster see one form whichever parser a client uses. The conversions follow
//! `JSON.stringify` where msgpack holds what JSON cannot (a `Date`, `undefined`, a
//! non-finite number) and notepack.io where JSON holds what msgpack writes two ways
//! (an integral number is an integer).

use bytes::Bytes;
use rmpv::{Integer, Value as Msg};
use serde_json::Value as Json;

use super::packet::{ConnectError, Packet, ParseError, Payload, MAX_JSON_DEPTH};
use crate::calendar;

/// notepack.io's extension type: `undefined` is fixext 1, a `Date` fixext 8 (the
/// milliseconds as a signed 64-bit number), an `ArrayBuffer` (what a browser's
/// `Uint8Array` is sent as) ext 8/16/32. Any other extension is refused.
const NOTEPACK_EXT: i8 = 0;

/// What the reader makes of notepack.io's `undefined` and `Date` (an `ArrayBuffer` is
/// read as binary): extensions of their own, which no client can send (the reader
/// refuses every extension type but notepack.io's).
const UNDEFINED: i8 = 1;
const DATE: i8 = 2;

/// The packet types the msgpack parser knows (no binary variants).
const CONNECT: u64 = 0;
const DISCONNECT: u64 = 1;
const EVENT: u64 = 2;
const ACK: u64 = 3;
const CONNECT_ERROR: u64 = 4;

/// Decodes one binary message from a client; binaries in it become attachments, at most
/// `max_attachments` of them.
pub fn decode(bytes: &[u8], max_attachments: usize) -> Result<Packet, ParseError> {
    let mut reader = Reader { bytes };
    // The packet's map, its `data` array, then the arguments as deep as JSON's allow.
    let value = reader.value(MAX_JSON_DEPTH + 1)?;
    if !reader.bytes.is_empty() {
        return Err(ParseError::Payload);
    }
    let Msg::Map(fields) = value else {
        return Err(ParseError::Payload);
    };
    let (mut kind, mut nsp, mut data, mut id) = (None, None, None, None);
    // A field whose value is `undefined` (the client's auth when it has none) is absent.
    for (key, value) in fields.into_iter().filter(|(_, v)| !is_undefined(v)) {
        match key.as_str() {
            Some("type") => kind = Some(value),
            Some("nsp") => nsp = Some(value),
            Some("data") => data = Some(value),
            Some("id") => id = Some(value),
            _ => {}
        }
    }
    let kind = kind
        .and_then(|k| integral(&k))
        .filter(|k| *k <= CONNECT_ERROR)
        .ok_or(ParseError::UnknownType)?;
    let nsp = match nsp {
        Some(Msg::String(name)) => name.into_str().ok_or(ParseError::Payload)?,
        _ => return Err(ParseError::Payload),
    };
    let id = match id {
        None => None,
        Some(id) => Some(integral(&id).ok_or(ParseError::AckId)?),
    };
    let mut json = JsonWriter {
        out: String::new(),
        attachments: Vec::new(),
    };
    let packet = match (kind, data) {
        (CONNECT, None) => Packet::Connect { nsp, data: None },
        (CONNECT, Some(data @ Msg::Map(_))) => {
            json.value(&data)?;
            if !json.attachments.is_empty() {
                return Err(ParseError::Payload);
            }
            Packet::Connect {
                nsp,
                data: Some(json.out),
            }
        }
        (DISCONNECT, None) => Packet::Disconnect { nsp },
        (EVENT, Some(Msg::Array(items))) => {
            let (event, args) = items.split_first().ok_or(ParseError::Payload)?;
            let event = match event {
                Msg::String(name) => name.as_str().ok_or(ParseError::Payload)?.to_owned(),
                Msg::Integer(n) => n.to_string(),
                _ => return Err(ParseError::Payload),
            };
            if super::packet::is_reserved(&event) {
                return Err(ParseError::Payload);
            }
            json.array(args)?;
            Packet::Event {
                nsp,
                event,
                args: json.payload(max_attachments)?,
                ack: id,
            }
        }
        (ACK, Some(Msg::Array(items))) => {
            json.array(&items)?;
            Packet::Ack {
                nsp,
                id: id.ok_or(ParseError::AckId)?,
                args: json.payload(max_attachments)?,
            }
        }
        (CONNECT_ERROR, Some(data @ (Msg::Map(_) | Msg::String(_)))) => {
            json.value(&data)?;
            Packet::ConnectError {
                nsp,
                data: json.out,
            }
        }
        _ => return Err(ParseError::Payload),
    };
    Ok(packet)
}

/// A non-negative integer, as msgpack or as an integral float.
fn integral(value: &Msg) -> Option<u64> {
    match value {
        Msg::Integer(n) => n.as_u64(),
        Msg::F64(f) if f.fract() == 0.0 && *f >= 0.0 && *f < u64::MAX as f64 => Some(*f as u64),
        _ => None,
    }
}

/// Writes msgpack values as JSON text, binaries as placeholders.
struct JsonWriter {
    out: String,
    attachments: Vec<Bytes>,
}

impl JsonWriter {
    fn payload(self, max_attachments: usize) -> Result<Payload, ParseError> {
        if self.attachments.len() > max_attachments {
            return Err(ParseError::Attachments);
        }
        Payload::from_json(self.out, self.attachments).map_err(|_| ParseError::Payload)
    }

    fn array(&mut self, items: &[Msg]) -> Result<(), ParseError> {
        self.out.push('[');
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            self.value(item)?;
        }
        self.out.push(']');
        Ok(())
    }

    fn value(&mut self, value: &Msg) -> Result<(), ParseError> {
        match value {
            Msg::Nil => self.out.push_str("null"),
            Msg::Boolean(b) => self.out.push_str(if *b { "true" } else { "false" }),
            Msg::Integer(n) => self.out.push_str(&n.to_string()),
            Msg::F32(f) => self.number(f64::from(*f)),
            Msg::F64(f) => self.number(*f),
            Msg::String(s) => self.string(s.as_str().ok_or(ParseError::Payload)?),
            Msg::Binary(bytes) => self.binary(Bytes::copy_from_slice(bytes)),
            Msg::Array(items) => self.array(items)?,
            Msg::Map(entries) => {
                self.out.push('{');
                let mut first = true;
                for (key, value) in entries {
                    // A key whose value is `undefined` is left out, as JSON.stringify does.
                    if is_undefined(value) {
                        continue;
                    }
                    if !first {
                        self.out.push(',');
                    }
                    first = false;
                    match key {
                        // A client's own placeholder would point at another binary, or
                        // at none (and break every JSON client it reaches).
                        Msg::String(s) if s.as_str() == Some("_placeholder") => {
                            return Err(ParseError::Payload)
                        }
                        Msg::String(s) => self.string(s.as_str().ok_or(ParseError::Payload)?),
                        Msg::Integer(n) => self.string(&n.to_string()),
                        _ => return Err(ParseError::Payload),
                    }
                    self.out.push(':');
                    self.value(value)?;
                }
                self.out.push('}');
            }
            // `undefined` in an array is `null` to JSON.stringify.
            Msg::Ext(UNDEFINED, _) => self.out.push_str("null"),
            // A `Date`: its ISO string, or `null` before 1970 (not worth a calendar here).
            Msg::Ext(DATE, data) => {
                let ms = <[u8; 8]>::try_from(data.as_slice()).map(i64::from_be_bytes);
                match ms.ok().and_then(|ms| u64::try_from(ms).ok()) {
                    Some(ms) => self.string(&calendar::rfc3339(ms)),
                    None => self.out.push_str("null"),
                }
            }
            Msg::Ext(..) => return Err(ParseError::Payload),
        }
        Ok(())
    }

    fn number(&mut self, f: f64) {
        if f.is_finite() {
            self.out.push_str(&Json::from(f).to_string());
        } else {
            self.out.push_str("null");
        }
    }

    fn string(&mut self, s: &str) {
        self.out.push_str(&Json::from(s).to_string());
    }

    fn binary(&mut self, bytes: Bytes) {
        let num = self.attachments.len();
        self.attachments.push(bytes);
        self.out
            .push_str(&format!("{{\"_placeholder\":true,\"num\":{num}}}"));
    }
}

/// Whether a value is notepack.io's `undefined`.
fn is_undefined(value: &Msg) -> bool {
    matches!(value, Msg::Ext(UNDEFINED, _))
}

/// A msgpack reader that tells notepack.io's extensions apart by their markers (rmpv's
/// cannot: `undefined`, a `Date` and an `ArrayBuffer` are all extension 0 to it), and
/// bounds nesting exactly.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ParseError> {
        if n > self.bytes.len() {
            return Err(ParseError::Payload);
        }
        let (taken, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], ParseError> {
        <[u8; N]>::try_from(self.take(N)?).map_err(|_| ParseError::Payload)
    }

    /// A length of `n` bytes, big-endian.
    fn len(&mut self, n: usize) -> Result<usize, ParseError> {
        let bytes = self.take(n)?;
        let len = bytes.iter().fold(0u64, |len, b| len << 8 | u64::from(*b));
        usize::try_from(len).map_err(|_| ParseError::Payload)
    }

    /// A value whose arrays and maps nest at most `depth` deep.
    fn value(&mut self, depth: usize) -> Result<Msg, ParseError> {
        let marker = self.array::<1>()?[0];
        Ok(match marker {
            0x00..=0x7f => Msg::from(marker),
            0x80..=0x8f => self.map(usize::from(marker & 0x0f), depth)?,
            0x90..=0x9f => self.list(usize::from(marker & 0x0f), depth)?,
            0xa0..=0xbf => self.string(usize::from(marker & 0x1f))?,
            0xc0 => Msg::Nil,
            0xc2 => Msg::from(false),
            0xc3 => Msg::from(true),
            0xc4..=0xc6 => {
                let len = self.len(1 << (marker - 0xc4))?;
                Msg::Binary(self.take(len)?.to_vec())
            }
            0xc7..=0xc9 => {
                let len = self.len(1 << (marker - 0xc7))?;
                self.extension(len, false)?
            }
            0xca => Msg::F32(f32::from_be_bytes(self.array()?)),
            0xcb => Msg::F64(f64::from_be_bytes(self.array()?)),
            0xcc => Msg::from(self.array::<1>()?[0]),
            0xcd => Msg::from(u16::from_be_bytes(self.array()?)),
            0xce => Msg::from(u32::from_be_bytes(self.array()?)),
            0xcf => Msg::from(u64::from_be_bytes(self.array()?)),
            0xd0 => Msg::from(i8::from_be_bytes(self.array()?)),
            0xd1 => Msg::from(i16::from_be_bytes(self.array()?)),
            0xd2 => Msg::from(i32::from_be_bytes(self.array()?)),
            0xd3 => Msg::from(i64::from_be_bytes(self.array()?)),
            0xd4..=0xd8 => self.extension(1 << (marker - 0xd4), true)?,
            0xd9..=0xdb => {
                let len = self.len(1 << (marker - 0xd9))?;
                self.string(len)?
            }
            0xdc | 0xdd => {
                let len = self.len(if marker == 0xdc { 2 } else { 4 })?;
                self.list(len, depth)?
            }
            0xde | 0xdf => {
                let len = self.len(if marker == 0xde { 2 } else { 4 })?;
                self.map(len, depth)?
            }
            0xe0..=0xff => Msg::from(i8::from_be_bytes([marker])),
            0xc1 => return Err(ParseError::Payload),
        })
    }

    fn string(&mut self, len: usize) -> Result<Msg, ParseError> {
        let text = std::str::from_utf8(self.take(len)?).map_err(|_| ParseError::Payload)?;
        Ok(Msg::from(text))
    }

    fn list(&mut self, len: usize, depth: usize) -> Result<Msg, ParseError> {
        // Every element takes at least a byte: a length beyond them is a lie.
        if depth == 0 || len > self.bytes.len() {
            return Err(ParseError::Payload);
        }
        let items = (0..len)
            .map(|_| self.value(depth - 1))
            .collect::<Result<_, _>>()?;
        Ok(Msg::Array(items))
    }

    fn map(&mut self, len: usize, depth: usize) -> Result<Msg, ParseError> {
        if depth == 0 || len > self.bytes.len() / 2 {
            return Err(ParseError::Payload);
        }
        let entries = (0..len)
            .map(|_| Ok((self.value(depth - 1)?, self.value(depth - 1)?)))
            .collect::<Result<_, ParseError>>()?;
        Ok(Msg::Map(entries))
    }

    /// notepack.io's extensions: `fixed` for fixext (`undefined`, `Date`), else an
    /// `ArrayBuffer`.
    fn extension(&mut self, len: usize, fixed: bool) -> Result<Msg, ParseError> {
        let kind = i8::from_be_bytes(self.array()?);
        let data = self.take(len)?;
        match (kind, fixed, len) {
            (NOTEPACK_EXT, true, 1) => Ok(Msg::Ext(UNDEFINED, Vec::new())),
            (NOTEPACK_EXT, true, 8) => Ok(Msg::Ext(DATE, data.to_vec())),
            (NOTEPACK_EXT, false, _) => Ok(Msg::Binary(data.to_vec())),
            _ => Err(ParseError::Payload),
        }
    }
}

/// Encodes a packet for a client of this parser: one binary message. The fields come in
/// the order Node's server sets them on a socket's packets.
pub fn encode(packet: &Packet) -> Bytes {
    write(packet, false)
}

/// [`encode`] for a broadcast: Node's adapter names the namespace before the ack id of
/// a broadcast with acks.
pub fn encode_broadcast(packet: &Packet) -> Bytes {
    write(packet, true)
}

fn write(packet: &Packet, broadcast: bool) -> Bytes {
    let field = |name: &str, value: Msg| (Msg::from(name), value);
    let nsp = field("nsp", Msg::from(packet.nsp()));
    let fields = match packet {
        Packet::Connect { data, .. } => {
            let mut fields = vec![field("type", Msg::from(CONNECT))];
            if let Some(data) = data {
                let mut answer = from_json_text(data, &[]);
                // Node's answer is `{sid, pid}`, its `pid` undefined without connection
                // state recovery: notepack.io writes that key too.
                if let Msg::Map(entries) = &mut answer {
                    if !entries.iter().any(|(key, _)| key.as_str() == Some("pid")) {
                        entries.push((Msg::from("pid"), Msg::Ext(NOTEPACK_EXT, vec![0])));
                    }
                }
                fields.push(field("data", answer));
            }
            fields.push(nsp);
            fields
        }
        Packet::Disconnect { .. } => vec![field("type", Msg::from(DISCONNECT)), nsp],
        Packet::Event {
            event, args, ack, ..
        } => {
            let mut items = vec![Msg::from(event.as_str())];
            if let Msg::Array(rest) = from_json_text(args.json(), args.attachments()) {
                items.extend(rest);
            }
            let mut fields = vec![
                field("type", Msg::from(EVENT)),
                field("data", Msg::Array(items)),
            ];
            match (ack, broadcast) {
                (Some(id), true) => fields.extend([nsp, field("id", Msg::from(*id))]),
                (Some(id), false) => fields.extend([field("id", Msg::from(*id)), nsp]),
                (None, _) => fields.push(nsp),
            }
            fields
        }
        Packet::Ack { id, args, .. } => vec![
            field("id", Msg::from(*id)),
            field("type", Msg::from(ACK)),
            field("data", from_json_text(args.json(), args.attachments())),
            nsp,
        ],
        Packet::ConnectError { data, .. } if ConnectError::is_invalid_namespace(data) => vec![
            field("type", Msg::from(CONNECT_ERROR)),
            nsp,
            field("data", from_json_text(data, &[])),
        ],
        Packet::ConnectError { data, .. } => vec![
            field("type", Msg::from(CONNECT_ERROR)),
            field("data", from_json_text(data, &[])),
            nsp,
        ],
    };
    let mut out = Vec::new();
    // Writing to a Vec cannot fail.
    let _ = rmpv::encode::write_value(&mut out, &Msg::Map(fields));
    Bytes::from(out)
}

/// JSON text (checked when it came in) as msgpack, keys in their order, placeholders
/// as the binaries they point at, integral numbers as integers (as notepack.io writes a
/// JavaScript number).
fn from_json_text(json: &str, attachments: &[Bytes]) -> Msg {
    match serde_json::from_str::<Msg>(json) {
        Ok(value) => rewrite(value, attachments),
        Err(_) => Msg::Nil,
    }
}

fn rewrite(value: Msg, attachments: &[Bytes]) -> Msg {
    match value {
        Msg::F64(f) if f.fract() == 0.0 && f >= i64::MIN as f64 && f < u64::MAX as f64 => {
            if f < 0.0 {
                Msg::Integer(Integer::from(f as i64))
            } else {
                Msg::Integer(Integer::from(f as u64))
            }
        }
        Msg::Array(items) => Msg::Array(
            items
                .into_iter()
                .map(|item| rewrite(item, attachments))
                .collect(),
        ),
        Msg::Map(entries) => match placeholder(&entries).and_then(|n| attachments.get(n)) {
            Some(bytes) => Msg::Binary(bytes.to_vec()),
            None => Msg::Map(
                entries
                    .into_iter()
                    .map(|(key, value)| (key, rewrite(value, attachments)))
                    .collect(),
            ),
        },
        other => other,
    }
}

/// The attachment a `{"_placeholder":true,"num":N}` object points at.
fn placeholder(entries: &[(Msg, Msg)]) -> Option<usize> {
    let mut is_placeholder = false;
    let mut num = None;
    for (key, value) in entries {
        match (key.as_str(), value) {
            (Some("_placeholder"), Msg::Boolean(true)) => is_placeholder = true,
            (Some("num"), Msg::Integer(n)) => num = n.as_u64(),
            _ => return None,
        }
    }
    num.filter(|_| is_placeholder)
        .and_then(|n| usize::try_from(n).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(fields: Vec<(&str, Msg)>) -> Msg {
        Msg::Map(fields.into_iter().map(|(k, v)| (Msg::from(k), v)).collect())
    }

    fn bytes(value: &Msg) -> Vec<u8> {
        let mut out = Vec::new();
        rmpv::encode::write_value(&mut out, value).expect("encodes");
        out
    }

    fn event(args: Vec<Msg>) -> Vec<u8> {
        let mut data = vec![Msg::from("ev")];
        data.extend(args);
        bytes(&map(vec![
            ("type", Msg::from(2)),
            ("data", Msg::Array(data)),
            ("nsp", Msg::from("/a")),
        ]))
    }

    #[test]
    fn an_event_with_binaries_becomes_json_with_placeholders() {
        let input = event(vec![
            Msg::from(1),
            Msg::Binary(vec![1, 2]),
            map(vec![("b", Msg::Ext(0, vec![9, 9, 9]))]),
            Msg::F64(1.5),
        ]);
        let packet = decode(&input, 10).expect("decodes");
        let Packet::Event {
            nsp,
            event,
            args,
            ack,
        } = packet
        else {
            panic!("an event")
        };
        assert_eq!((nsp.as_str(), event.as_str(), ack), ("/a", "ev", None));
        assert_eq!(
            args.json(),
            r#"[1,{"_placeholder":true,"num":0},{"b":{"_placeholder":true,"num":1}},1.5]"#
        );
        assert_eq!(
            args.attachments(),
            [Bytes::from(vec![1, 2]), Bytes::from(vec![9, 9, 9])]
        );
    }

    #[test]
    fn what_json_cannot_hold_is_written_as_json_stringify_does() {
        let date = Msg::Ext(0, 1_764_547_200_000_i64.to_be_bytes().to_vec());
        let undefined = Msg::Ext(0, vec![0]);
        let input = event(vec![
            date,
            undefined.clone(),
            map(vec![("gone", undefined), ("kept", Msg::F64(f64::NAN))]),
        ]);
        let Ok(Packet::Event { args, .. }) = decode(&input, 10) else {
            panic!("an event")
        };
        assert_eq!(
            args.json(),
            r#"["2025-12-01T00:00:00.000Z",null,{"kept":null}]"#
        );
    }

    #[test]
    fn notepack_s_extensions_are_told_apart_by_their_markers() {
        // {type: 2, data: ["ev", ArrayBuffer(1), ArrayBuffer(8), undefined, Date(0)], nsp: "/"}:
        // an ArrayBuffer is ext 8, `undefined` fixext 1, a Date fixext 8, all of type 0.
        let mut input = vec![0x83, 0xa4, b't', b'y', b'p', b'e', 0x02];
        input.extend([0xa4, b'd', b'a', b't', b'a', 0x95, 0xa2, b'e', b'v']);
        input.extend([0xc7, 1, 0, 5]);
        input.extend([0xc7, 8, 0, 1, 2, 3, 4, 5, 6, 7, 8]);
        input.extend([0xd4, 0, 0]);
        input.extend([0xd7, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        input.extend([0xa3, b'n', b's', b'p', 0xa1, b'/']);
        let Ok(Packet::Event { args, .. }) = decode(&input, 10) else {
            panic!("an event")
        };
        assert_eq!(
            args.json(),
            r#"[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1},null,"1970-01-01T00:00:00.000Z"]"#
        );
        assert_eq!(args.attachments()[0], Bytes::from_static(&[5]));
        assert_eq!(
            args.attachments()[1],
            Bytes::from_static(&[1, 2, 3, 4, 5, 6, 7, 8])
        );
    }

    #[test]
    fn a_connect_whose_auth_is_undefined_has_none() {
        // What socket.io-client sends without `auth`: the key, its value undefined.
        let input = bytes(&map(vec![
            ("type", Msg::from(0)),
            ("nsp", Msg::from("/")),
            ("data", Msg::Ext(0, vec![0])),
        ]));
        assert_eq!(
            decode(&input, 10),
            Ok(Packet::Connect {
                nsp: "/".into(),
                data: None
            })
        );
    }

    #[test]
    fn arguments_nest_as_deep_as_json_s() {
        let nested = |levels: usize| {
            let mut value = Msg::Nil;
            for _ in 0..levels {
                value = Msg::Array(vec![value]);
            }
            value
        };
        // The arguments' array is one level; the rest is the argument's own.
        assert!(decode(&event(vec![nested(MAX_JSON_DEPTH - 1)]), 10).is_ok());
        assert!(decode(&event(vec![nested(MAX_JSON_DEPTH)]), 10).is_err());
    }

    #[test]
    fn malformed_packets_are_parse_errors() {
        let cases = [
            (vec![0xc1], "not msgpack"),
            (bytes(&Msg::from(1)), "not a map"),
            (
                bytes(&map(vec![("type", Msg::from(5)), ("nsp", Msg::from("/"))])),
                "binary type",
            ),
            (
                bytes(&map(vec![
                    ("type", Msg::from(2)),
                    ("data", Msg::Array(vec![Msg::from("x")])),
                ])),
                "no nsp",
            ),
            (
                bytes(&map(vec![
                    ("type", Msg::from(2)),
                    ("nsp", Msg::from("/")),
                    ("data", Msg::Array(vec![])),
                ])),
                "no event name",
            ),
            (
                bytes(&map(vec![
                    ("type", Msg::from(2)),
                    ("nsp", Msg::from("/")),
                    ("data", Msg::Array(vec![Msg::from("connect")])),
                ])),
                "reserved",
            ),
            (
                bytes(&map(vec![
                    ("type", Msg::from(3)),
                    ("nsp", Msg::from("/")),
                    ("data", Msg::Array(vec![])),
                ])),
                "ack without id",
            ),
            (
                bytes(&map(vec![
                    ("type", Msg::from(0)),
                    ("nsp", Msg::from("/")),
                    ("data", Msg::from(1)),
                ])),
                "connect data",
            ),
            (
                bytes(&map(vec![
                    ("type", Msg::from(1)),
                    ("nsp", Msg::from("/")),
                    ("data", Msg::Nil),
                ])),
                "disconnect data",
            ),
            (event(vec![Msg::Ext(7, vec![1])]), "foreign extension"),
            (
                event(vec![map(vec![
                    ("_placeholder", Msg::from(true)),
                    ("num", Msg::from(0)),
                ])]),
                "a client's placeholder",
            ),
            (
                event(vec![map(vec![])]).into_iter().chain([0x00]).collect(),
                "trailing bytes",
            ),
        ];
        for (input, case) in cases {
            assert!(decode(&input, 10).is_err(), "{case}");
        }
        let mut deep = Msg::Nil;
        for _ in 0..(MAX_JSON_DEPTH + 5) {
            deep = Msg::Array(vec![deep]);
        }
        assert!(decode(&event(vec![deep]), 10).is_err(), "too deep");
        let many = (0..3).map(|i| Msg::Binary(vec![i])).collect();
        assert_eq!(decode(&event(many), 2), Err(ParseError::Attachments));
    }

    #[test]
    fn packets_are_written_with_node_s_fields_in_node_s_order() {
        let args = Payload::from_json(
            r#"[1,2.0,-3,{"_placeholder":true,"num":0},{"k":"v"}]"#,
            vec![Bytes::from_static(b"\x01")],
        )
        .expect("valid");
        let packet = Packet::Event {
            nsp: "/".into(),
            event: "ev".into(),
            args: args.clone(),
            ack: Some(7),
        };
        let expected = map(vec![
            ("type", Msg::from(2)),
            (
                "data",
                Msg::Array(vec![
                    Msg::from("ev"),
                    Msg::from(1),
                    Msg::from(2),
                    Msg::from(-3),
                    Msg::Binary(vec![1]),
                    map(vec![("k", Msg::from("v"))]),
                ]),
            ),
            ("id", Msg::from(7)),
            ("nsp", Msg::from("/")),
        ]);
        assert_eq!(encode(&packet).to_vec(), bytes(&expected));
        // A broadcast with acks names the namespace first, as Node's adapter does.
        let Msg::Map(mut fields) = expected else {
            unreachable!("a map")
        };
        fields.swap(2, 3);
        assert_eq!(encode_broadcast(&packet).to_vec(), bytes(&Msg::Map(fields)));
        let ack = Packet::Ack {
            nsp: "/".into(),
            id: 3,
            args: Payload::from_json("[true]", vec![]).expect("valid"),
        };
        let expected = map(vec![
            ("id", Msg::from(3)),
            ("type", Msg::from(3)),
            ("data", Msg::Array(vec![Msg::from(true)])),
            ("nsp", Msg::from("/")),
        ]);
        assert_eq!(encode(&ack).to_vec(), bytes(&expected));
        let refused = ConnectError::invalid_namespace().packet("/x");
        let expected = map(vec![
            ("type", Msg::from(4)),
            ("nsp", Msg::from("/x")),
            (
                "data",
                map(vec![("message", Msg::from("Invalid namespace"))]),
            ),
        ]);
        assert_eq!(encode(&refused).to_vec(), bytes(&expected));
    }

    #[test]
    fn what_is_written_reads_back_the_same() {
        let args = Payload::from_json(
            r#"["é",{"a":[null,true,{"_placeholder":true,"num":0}]},-1.25]"#,
            vec![Bytes::from_static(b"bin")],
        )
        .expect("valid");
        let packet = Packet::Event {
            nsp: "/t".into(),
            event: "ev".into(),
            args,
            ack: None,
        };
        assert_eq!(decode(&encode(&packet), 10), Ok(packet));
    }

    /// The fuzz target's property (fuzz/fuzz_targets/socketio_msgpack.rs) over mutations
    /// of a valid packet, so that CI checks it without a fuzzer.
    #[test]
    fn mutated_packets_decode_or_fail_cleanly_and_settle() {
        let seed = event(vec![
            Msg::from(1),
            Msg::Binary(vec![1, 2]),
            map(vec![("a", Msg::F64(2.0)), ("b", Msg::Ext(0, vec![0]))]),
        ]);
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let mut input = seed.clone();
            for _ in 0..(next() % 4 + 1) {
                let at = (next() % input.len() as u64) as usize;
                match next() % 3 {
                    0 => input[at] = next() as u8,
                    1 => {
                        input.remove(at);
                    }
                    _ => input.insert(at, next() as u8),
                }
            }
            if let Ok(packet) = decode(&input, 10) {
                let settled = decode(&encode(&packet), usize::MAX).expect("its encoding decodes");
                assert_eq!(decode(&encode(&settled), usize::MAX), Ok(settled));
            }
        }
    }
}
