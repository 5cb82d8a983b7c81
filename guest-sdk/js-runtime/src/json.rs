//! The JSON text of an answer's values, written here when `JSON.stringify` would give
//! it without calling into JavaScript: primitives, arrays and plain objects (no
//! `toJSON`, no binary). Anything else is left to the SDK's encoding, which also
//! takes binary out.
use std::cell::RefCell;
use std::fmt::Write;

use rquickjs::convert::Coerced;
use rquickjs::{Atom, Ctx, FromJs, Object, Persistent, Type, Value};

/// Deeper than this is left to the SDK (which refuses as `JSON.stringify` would).
const MAX_DEPTH: u32 = 200;

/// What became of a value.
enum Wrote {
    /// Its JSON is written.
    Json,
    /// It has none (`undefined`, a function, a symbol): `null` in an array, left out of an object.
    Nothing,
}

thread_local! {
    /// `Array.prototype` and `Object.prototype`, as the bundle's evaluation left them.
    static PROTOTYPES: RefCell<Option<(Persistent<Object<'static>>, Persistent<Object<'static>>)>> =
        const { RefCell::new(None) };
}

/// Keeps the prototypes that tell an array or an object plain.
pub fn remember_prototypes(ctx: &Ctx<'_>) -> rquickjs::Result<()> {
    let prototype = |constructor: &str| -> rquickjs::Result<Persistent<Object<'static>>> {
        let constructor: Object = ctx.globals().get(constructor)?;
        Ok(Persistent::save(
            ctx,
            constructor.get::<_, Object>("prototype")?,
        ))
    };
    let prototypes = (prototype("Array")?, prototype("Object")?);
    PROTOTYPES.with(|cell| *cell.borrow_mut() = Some(prototypes));
    Ok(())
}

/// The native module's `plainJson(values)`: `JSON.stringify(values)` for an array of
/// plain values, `undefined` otherwise (the SDK's encoding takes those).
pub fn plain_json<'js>(ctx: Ctx<'js>, values: Value<'js>) -> rquickjs::Result<Option<String>> {
    let Some(array) = values.as_array() else {
        return Ok(None);
    };
    let values = array
        .iter::<Value>()
        .collect::<rquickjs::Result<Vec<_>>>()?;
    Ok(PlainJson::new(&ctx)?.array(&values))
}

/// Writes plain values as `JSON.stringify` would; what it needs to tell them.
pub struct PlainJson<'js> {
    array_prototype: Object<'js>,
    object_prototype: Object<'js>,
    to_json: Atom<'js>,
}

impl<'js> PlainJson<'js> {
    pub fn new(ctx: &Ctx<'js>) -> rquickjs::Result<Self> {
        let (array, object) = PROTOTYPES
            .with(|cell| cell.borrow().clone())
            .ok_or(rquickjs::Error::Unknown)?;
        Ok(PlainJson {
            array_prototype: array.restore(ctx)?,
            object_prototype: object.restore(ctx)?,
            to_json: Atom::from_str(ctx.clone(), "toJSON")?,
        })
    }

    /// `JSON.stringify(values)`, or `None` if a value is not plain.
    pub fn array(&self, values: &[Value<'js>]) -> Option<String> {
        let mut out = String::with_capacity(64);
        out.push('[');
        for (i, value) in values.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            if let Wrote::Nothing = self.value(value, &mut out, 0)? {
                out.push_str("null");
            }
        }
        out.push(']');
        Some(out)
    }

    fn value(&self, value: &Value<'js>, out: &mut String, depth: u32) -> Option<Wrote> {
        match value.type_of() {
            Type::Undefined
            | Type::Uninitialized
            | Type::Function
            | Type::Constructor
            | Type::Symbol => return Some(Wrote::Nothing),
            Type::Null => out.push_str("null"),
            Type::Bool => out.push_str(if value.as_bool()? { "true" } else { "false" }),
            Type::Int => write!(out, "{}", value.as_int()?).ok()?,
            Type::Float => number(value, value.as_float()?, out)?,
            Type::String => string(&value.as_string()?.to_string().ok()?, out),
            Type::Array => {
                let array = value.as_array()?;
                self.check_object(array.as_object(), &self.array_prototype, depth)?;
                out.push('[');
                for (i, item) in array.iter::<Value>().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    if let Wrote::Nothing = self.value(&item.ok()?, out, depth + 1)? {
                        out.push_str("null");
                    }
                }
                out.push(']');
            }
            Type::Object => {
                let object = value.as_object()?;
                self.check_object(object, &self.object_prototype, depth)?;
                out.push('{');
                let mut first = true;
                for entry in object.props::<String, Value>() {
                    let (key, item) = entry.ok()?;
                    let before = out.len();
                    if !first {
                        out.push(',');
                    }
                    string(&key, out);
                    out.push(':');
                    match self.value(&item, out, depth + 1)? {
                        Wrote::Json => first = false,
                        Wrote::Nothing => out.truncate(before),
                    }
                }
                out.push('}');
            }
            // BigInt (a TypeError), promises, errors and the rest: the SDK's.
            _ => return None,
        }
        Some(Wrote::Json)
    }

    /// `Some` for an object of `prototype` (or none) without `toJSON`, not too deep.
    fn check_object(
        &self,
        object: &Object<'js>,
        prototype: &Object<'js>,
        depth: u32,
    ) -> Option<()> {
        if depth >= MAX_DEPTH {
            return None;
        }
        let plain = match object.get_prototype() {
            Some(found) => found == *prototype,
            None => true,
        };
        let to_json: Value = object.get(self.to_json.clone()).ok()?;
        (plain && to_json.is_undefined()).then_some(())
    }
}

/// A number as `JSON.stringify` writes it: a whole number below 2^53 as its digits
/// (what the language's shortest form is then), the rest by QuickJS's own conversion
/// (Rust's shortest form can end in another digit than the language says).
fn number<'js>(value: &Value<'js>, number: f64, out: &mut String) -> Option<()> {
    if !number.is_finite() {
        out.push_str("null");
    } else if number.fract() == 0.0 && number.abs() < 9_007_199_254_740_992.0 {
        // -0 is written 0.
        write!(out, "{}", number as i64).ok()?;
    } else {
        out.push_str(
            &Coerced::<String>::from_js(value.ctx(), value.clone())
                .ok()?
                .0,
        );
    }
    Some(())
}

/// A string as `JSON.stringify` quotes it.
fn string(text: &str, out: &mut String) {
    out.push('"');
    let mut start = 0;
    for (i, byte) in text.bytes().enumerate() {
        let escaped = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&text[start..i]);
        if escaped.is_empty() {
            let _ = write!(out, "\\u{byte:04x}");
        } else {
            out.push_str(escaped);
        }
        start = i + 1;
    }
    out.push_str(&text[start..]);
    out.push('"');
}
