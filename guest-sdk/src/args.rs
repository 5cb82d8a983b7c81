//! Socket.IO arguments: a JSON array plus the binary attachments it points to.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::bindings::nsbox::tenant::types::Args as WitArgs;

/// The arguments of an event or of an ack answer.
///
/// The JSON text is kept as it arrived, so passing arguments on (`ack.send(args)`)
/// costs no re-serialisation and changes nothing, binary included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    json: String,
    attachments: Vec<Vec<u8>>,
}

/// Why arguments could not be read or built.
#[derive(Debug)]
pub struct ArgsError(String);

impl std::fmt::Display for ArgsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ArgsError {}

impl From<serde_json::Error> for ArgsError {
    fn from(error: serde_json::Error) -> Self {
        ArgsError(error.to_string())
    }
}

impl Default for Args {
    fn default() -> Self {
        Args::new()
    }
}

impl Args {
    /// No arguments.
    pub fn new() -> Args {
        Args {
            json: "[]".to_owned(),
            attachments: Vec::new(),
        }
    }

    /// Arguments from a JSON array's text and the attachments its placeholders name.
    pub fn from_json(
        json: impl Into<String>,
        attachments: Vec<Vec<u8>>,
    ) -> Result<Args, ArgsError> {
        let json = json.into();
        let values: Vec<&RawValue> = serde_json::from_str(&json)?;
        drop(values);
        Ok(Args { json, attachments })
    }

    /// Adds one argument, serialised to JSON.
    pub fn arg(mut self, value: impl Serialize) -> Args {
        // Serialising plain data to a string fails only for maps with non-string keys.
        let text = serde_json::to_string(&value).unwrap_or_else(|_| "null".to_owned());
        self.push_raw(&text);
        self
    }

    /// Adds one binary argument (a Node `Buffer` on the client).
    pub fn binary(mut self, bytes: impl Into<Vec<u8>>) -> Args {
        let placeholder = format!(
            r#"{{"_placeholder":true,"num":{}}}"#,
            self.attachments.len()
        );
        self.attachments.push(bytes.into());
        self.push_raw(&placeholder);
        self
    }

    fn push_raw(&mut self, text: &str) {
        let trimmed = self.json.trim_end();
        let body = trimmed.strip_suffix(']').unwrap_or(trimmed).trim_end();
        let separator = if body.ends_with('[') { "" } else { "," };
        self.json = format!("{body}{separator}{text}]");
    }

    /// The arguments as a JSON array's text, placeholders included.
    pub fn json(&self) -> &str {
        &self.json
    }

    /// The binary attachments, in placeholder order.
    pub fn attachments(&self) -> &[Vec<u8>] {
        &self.attachments
    }

    /// Each argument's JSON text.
    fn raw(&self) -> Vec<&RawValue> {
        serde_json::from_str(&self.json).unwrap_or_default()
    }

    /// How many arguments there are.
    pub fn len(&self) -> usize {
        self.raw().len()
    }

    /// True when there are no arguments.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Argument `index`, deserialised; `None` if it is missing or of another type.
    /// A binary argument reads as its placeholder; use [`Args::bytes`] for its bytes.
    pub fn get<T: DeserializeOwned>(&self, index: usize) -> Option<T> {
        let raw = self.raw();
        raw.get(index)
            .and_then(|value| serde_json::from_str(value.get()).ok())
    }

    /// The bytes of argument `index` if it is a binary argument.
    pub fn bytes(&self, index: usize) -> Option<&[u8]> {
        let placeholder: Value = self.get(index)?;
        if placeholder.get("_placeholder") != Some(&Value::Bool(true)) {
            return None;
        }
        let num = placeholder.get("num")?.as_u64()?;
        self.attachments
            .get(usize::try_from(num).ok()?)
            .map(Vec::as_slice)
    }

    /// All arguments deserialised at once, e.g. as a tuple `(String, u32)`.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ArgsError> {
        Ok(serde_json::from_str(&self.json)?)
    }

    /// The arguments without the first `n`; binary arguments keep their bytes.
    pub fn skip(&self, n: usize) -> Args {
        let rest: Vec<&RawValue> = self.raw().into_iter().skip(n).collect();
        Args {
            json: serde_json::to_string(&rest).unwrap_or_else(|_| "[]".to_owned()),
            attachments: self.attachments.clone(),
        }
    }

    /// The arguments as the raw bindings take them.
    pub fn into_wit(self) -> WitArgs {
        WitArgs {
            json: self.json,
            attachments: self.attachments,
        }
    }

    pub(crate) fn from_wit(args: WitArgs) -> Args {
        Args {
            json: args.json,
            attachments: args.attachments,
        }
    }
}

/// What can be sent as arguments: [`Args`], `()` for none, one JSON [`Value`],
/// a string, or a tuple of serialisable values (one argument each).
pub trait IntoArgs {
    /// The arguments.
    fn into_args(self) -> Args;
}

impl IntoArgs for Args {
    fn into_args(self) -> Args {
        self
    }
}

impl IntoArgs for () {
    fn into_args(self) -> Args {
        Args::new()
    }
}

impl IntoArgs for Value {
    fn into_args(self) -> Args {
        Args::new().arg(self)
    }
}

impl IntoArgs for &str {
    fn into_args(self) -> Args {
        Args::new().arg(self)
    }
}

impl IntoArgs for String {
    fn into_args(self) -> Args {
        Args::new().arg(self)
    }
}

macro_rules! tuple_into_args {
    ($($name:ident),+) => {
        impl<$($name: Serialize),+> IntoArgs for ($($name,)+) {
            #[allow(non_snake_case)]
            fn into_args(self) -> Args {
                let ($($name,)+) = self;
                Args::new()$(.arg($name))+
            }
        }
    };
}

tuple_into_args!(A);
tuple_into_args!(A, B);
tuple_into_args!(A, B, C);
tuple_into_args!(A, B, C, D);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_and_reads_arguments() {
        let args = Args::new()
            .arg("room")
            .arg(serde_json::json!({"n": 1}))
            .binary(vec![1, 2]);
        assert_eq!(
            args.json(),
            r#"["room",{"n":1},{"_placeholder":true,"num":0}]"#
        );
        assert_eq!(args.len(), 3);
        assert_eq!(args.get::<String>(0).as_deref(), Some("room"));
        assert_eq!(args.bytes(2), Some(&[1u8, 2][..]));
        assert_eq!(args.bytes(1), None);
        let rest = args.skip(1);
        assert_eq!(rest.json(), r#"[{"n":1},{"_placeholder":true,"num":0}]"#);
        assert_eq!(rest.bytes(1), Some(&[1u8, 2][..]));
    }

    #[test]
    fn keeps_text_as_sent_and_refuses_non_arrays() {
        let args = Args::from_json("[ 1.0 , \"x\" ]", vec![]).expect("an array");
        assert_eq!(args.json(), "[ 1.0 , \"x\" ]");
        assert_eq!(args.clone().arg(2).json(), "[ 1.0 , \"x\",2]");
        assert!(Args::from_json("{}", vec![]).is_err());
        assert!(Args::from_json("[1,", vec![]).is_err());
        assert_eq!(
            ("a", 2).into_args().parse::<(String, u8)>().expect("tuple"),
            ("a".to_owned(), 2)
        );
        assert_eq!(Args::new().arg(1).json(), "[1]");
    }
}
