//! Values between JS and the contract, as the SDK takes them (the conventions of
//! componentize-qjs's bindings, which it was first written for): a `u64` is a Number, an
//! empty option is `null`, a `result`'s error is thrown as an Error whose `payload` is
//! the error value.
use rquickjs::{Array, Ctx, Exception, Object, TypedArray, Value};

use crate::nsbox::tenant::types::{Args, Handshake, Target};

/// Throws an Error with `message` as its message and its `payload`.
pub fn throw_message<'js, T>(ctx: &Ctx<'js>, message: &str) -> rquickjs::Result<T> {
    let error = Exception::from_message(ctx.clone(), message)?;
    error.as_object().set("payload", message)?;
    Err(ctx.throw(error.into_value()))
}

/// A `result<_, string>` as the bindings give it: `Ok` returned, `Err` thrown.
pub fn returned<'js, T>(ctx: &Ctx<'js>, result: Result<T, String>) -> rquickjs::Result<T> {
    result.or_else(|message| throw_message(ctx, &message))
}

/// The bytes of a `Uint8Array` or of an array of numbers; nothing for anything else.
pub fn bytes_of(value: Value<'_>) -> Vec<u8> {
    if let Some(object) = value.as_object() {
        if let Some(array) = object.as_typed_array::<u8>() {
            return array.as_bytes().map(<[u8]>::to_vec).unwrap_or_default();
        }
        if let Some(array) = object.as_array() {
            return array.iter::<u8>().filter_map(Result::ok).collect();
        }
    }
    Vec::new()
}

pub fn bytes_to_js<'js>(ctx: &Ctx<'js>, bytes: Vec<u8>) -> rquickjs::Result<Value<'js>> {
    Ok(TypedArray::<u8>::new(ctx.clone(), bytes)?.into_value())
}

/// `{json, attachments}` as the contract's `args`.
pub fn args_from_js(object: &Object<'_>) -> rquickjs::Result<Args> {
    let json: String = object.get("json")?;
    let attachments: Array = object.get("attachments")?;
    let mut out = Vec::with_capacity(attachments.len());
    for value in attachments.iter::<Value>() {
        out.push(bytes_of(value?));
    }
    Ok(Args {
        json,
        attachments: out,
    })
}

/// The contract's `args` as `{json, attachments}`, the attachments as `Uint8Array`s.
pub fn args_to_js<'js>(ctx: &Ctx<'js>, args: Args) -> rquickjs::Result<Object<'js>> {
    let object = Object::new(ctx.clone())?;
    object.set("json", args.json)?;
    let attachments = Array::new(ctx.clone())?;
    for (i, bytes) in args.attachments.into_iter().enumerate() {
        attachments.set(i, bytes_to_js(ctx, bytes)?)?;
    }
    object.set("attachments", attachments)?;
    Ok(object)
}

fn strings(object: &Object<'_>, name: &str) -> rquickjs::Result<Vec<String>> {
    let value: Option<Vec<String>> = object.get(name)?;
    Ok(value.unwrap_or_default())
}

/// `{rooms, exceptRooms, exceptSockets}` as a broadcast's `target`.
pub fn target_from_js(object: &Object<'_>) -> rquickjs::Result<Target> {
    let except: Option<Vec<f64>> = object.get("exceptSockets")?;
    Ok(Target {
        rooms: strings(object, "rooms")?,
        except_rooms: strings(object, "exceptRooms")?,
        except_sockets: except
            .unwrap_or_default()
            .into_iter()
            .map(|n| n as u64)
            .collect(),
    })
}

pub fn handshake_to_js<'js>(ctx: &Ctx<'js>, handshake: Handshake) -> rquickjs::Result<Object<'js>> {
    let pairs = |list: Vec<(String, String)>| -> Vec<Vec<String>> {
        list.into_iter()
            .map(|(name, value)| vec![name, value])
            .collect()
    };
    let object = Object::new(ctx.clone())?;
    object.set("namespace", handshake.namespace)?;
    object.set("id", handshake.id)?;
    object.set("auth", handshake.auth)?;
    object.set("query", pairs(handshake.query))?;
    object.set("headers", pairs(handshake.headers))?;
    object.set("address", handshake.address)?;
    object.set("issued", handshake.issued as f64)?;
    Ok(object)
}
