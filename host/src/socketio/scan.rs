//! One pass over a JSON text, building nothing: whether it is valid JSON, whether it
//! nests within a depth, and the little a packet needs to know of it (an event's name,
//! whether a binary placeholder may be in it). serde_json answers each of these with a
//! pass of its own; an event and an ack ask all of them.
//!
//! What it accepts is what `serde_json` accepts (RFC 8259, a lone surrogate in a `\u`
//! escape included); a unit test compares the two on random texts.

use std::ops::Range;

/// What [`scan`] found in a valid text.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Shape {
    /// The text is an array (after any whitespace).
    pub array: bool,
    /// The array's first element, as written (an event's name).
    pub first: Option<Range<usize>>,
    /// The array's other elements as written, through its closing `]`: what follows the
    /// comma after the first element, or the `]` alone when there is no other.
    pub rest: Option<Range<usize>>,
    /// An object has the key `_placeholder`, or a key written with escapes (which could
    /// spell it).
    pub placeholder: bool,
}

/// Why [`scan`] refused a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ScanError {
    /// Not JSON: what is at this byte cannot be there.
    #[error("invalid JSON at byte {0}")]
    Invalid(usize),
    /// Arrays and objects nest deeper than the limit given.
    #[error("nests deeper than {0} levels")]
    TooDeep(usize),
}

/// Reads `text` as one JSON value (whitespace around it allowed) whose arrays and
/// objects nest at most `max_depth` deep, in one pass that allocates nothing below 64
/// levels.
pub fn scan(text: &str, max_depth: usize) -> Result<Shape, ScanError> {
    let bytes = text.as_bytes();
    let mut shape = Shape::default();
    let mut open = Nesting::default();
    // Where the top array's first element starts, and its others (after the comma).
    let (mut first_start, mut rest_start) = (0, None);
    let mut at = skip_space(bytes, 0);
    shape.array = bytes.get(at) == Some(&b'[');
    loop {
        // A value starts at `at`.
        match bytes.get(at) {
            Some(&byte @ (b'[' | b'{')) => {
                if open.depth >= max_depth {
                    return Err(ScanError::TooDeep(max_depth));
                }
                let object = byte == b'{';
                open.push(object);
                at = skip_space(bytes, at + 1);
                if open.depth == 1 {
                    first_start = at;
                }
                let close = if object { b'}' } else { b']' };
                if bytes.get(at) != Some(&close) {
                    if object {
                        at = key(bytes, at, &mut shape)?;
                    }
                    continue;
                }
                // Empty: closed below, as any container is.
            }
            Some(b'"') => at = string_end(bytes, at)?,
            Some(b't') => at = literal_end(bytes, at, b"true")?,
            Some(b'f') => at = literal_end(bytes, at, b"false")?,
            Some(b'n') => at = literal_end(bytes, at, b"null")?,
            Some(b'-' | b'0'..=b'9') => at = number_end(bytes, at)?,
            _ => return Err(ScanError::Invalid(at)),
        }
        // A value ends at `end` (or its container's closing byte is there): what may
        // follow it.
        loop {
            let end = at;
            at = skip_space(bytes, at);
            let Some(object) = open.top() else {
                return if at == bytes.len() {
                    Ok(shape)
                } else {
                    Err(ScanError::Invalid(at))
                };
            };
            match bytes.get(at) {
                Some(b',') => {
                    if open.depth == 1 && !object && rest_start.is_none() {
                        shape.first = Some(first_start..end);
                        rest_start = Some(at + 1);
                    }
                    at = skip_space(bytes, at + 1);
                    if object {
                        at = key(bytes, at, &mut shape)?;
                    }
                    break;
                }
                Some(b']') if !object => {
                    if open.depth == 1 {
                        if rest_start.is_none() && end > first_start {
                            shape.first = Some(first_start..end);
                        }
                        shape.rest = Some(rest_start.unwrap_or(at)..at + 1);
                    }
                    open.pop();
                    at += 1;
                }
                Some(b'}') if object => {
                    open.pop();
                    at += 1;
                }
                _ => return Err(ScanError::Invalid(at)),
            }
        }
    }
}

/// Which containers are open, innermost last, a bit each (object or array): in a word
/// for the first 64 levels, in a vector past them.
#[derive(Default)]
struct Nesting {
    depth: usize,
    near: u64,
    far: Vec<bool>,
}

impl Nesting {
    fn push(&mut self, object: bool) {
        if self.depth < 64 {
            let bit = 1u64 << self.depth;
            self.near = if object {
                self.near | bit
            } else {
                self.near & !bit
            };
        } else {
            self.far.push(object);
        }
        self.depth += 1;
    }

    fn pop(&mut self) {
        self.depth -= 1;
        if self.depth >= 64 {
            self.far.pop();
        }
    }

    /// Whether the innermost open container is an object; `None` when none is open.
    fn top(&self) -> Option<bool> {
        let level = self.depth.checked_sub(1)?;
        if level < 64 {
            Some(self.near >> level & 1 == 1)
        } else {
            self.far.last().copied()
        }
    }
}

fn skip_space(bytes: &[u8], mut at: usize) -> usize {
    while let Some(b' ' | b'\n' | b'\t' | b'\r') = bytes.get(at) {
        at += 1;
    }
    at
}

/// An object's key from its opening quote at `at`, and the colon after it; returns where
/// the value starts.
fn key(bytes: &[u8], at: usize, shape: &mut Shape) -> Result<usize, ScanError> {
    if bytes.get(at) != Some(&b'"') {
        return Err(ScanError::Invalid(at));
    }
    let end = string_end(bytes, at)?;
    let name = &bytes[at + 1..end - 1];
    if name == b"_placeholder" || name.contains(&b'\\') {
        shape.placeholder = true;
    }
    let colon = skip_space(bytes, end);
    if bytes.get(colon) != Some(&b':') {
        return Err(ScanError::Invalid(colon));
    }
    Ok(skip_space(bytes, colon + 1))
}

/// Where the string whose opening quote is at `at` ends (after its closing quote).
fn string_end(bytes: &[u8], at: usize) -> Result<usize, ScanError> {
    let mut at = at + 1;
    loop {
        let rest = bytes.get(at..).unwrap_or_default();
        let Some(found) = memchr::memchr2(b'"', b'\\', rest) else {
            return Err(ScanError::Invalid(bytes.len()));
        };
        // Every byte checked, no early exit: compiled to a few vector instructions.
        let text = &rest[..found];
        if text
            .iter()
            .fold(false, |control, &byte| control | (byte < 0x20))
        {
            let position = text.iter().position(|&byte| byte < 0x20).unwrap_or(0);
            return Err(ScanError::Invalid(at + position));
        }
        at += found;
        if bytes[at] == b'"' {
            return Ok(at + 1);
        }
        match bytes.get(at + 1) {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => at += 2,
            Some(b'u') => {
                let hex = bytes.get(at + 2..at + 6).ok_or(ScanError::Invalid(at))?;
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return Err(ScanError::Invalid(at));
                }
                at += 6;
            }
            _ => return Err(ScanError::Invalid(at)),
        }
    }
}

fn literal_end(bytes: &[u8], at: usize, word: &[u8]) -> Result<usize, ScanError> {
    match bytes.get(at..) {
        Some(rest) if rest.starts_with(word) => Ok(at + word.len()),
        _ => Err(ScanError::Invalid(at)),
    }
}

/// Where the number starting at `at` ends: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
fn number_end(bytes: &[u8], mut at: usize) -> Result<usize, ScanError> {
    if bytes.get(at) == Some(&b'-') {
        at += 1;
    }
    match bytes.get(at) {
        Some(b'0') => at += 1,
        Some(b'1'..=b'9') => at = digits_end(bytes, at + 1),
        _ => return Err(ScanError::Invalid(at)),
    }
    if bytes.get(at) == Some(&b'.') {
        at = some_digits_end(bytes, at + 1)?;
    }
    if let Some(b'e' | b'E') = bytes.get(at) {
        at += 1;
        if let Some(b'+' | b'-') = bytes.get(at) {
            at += 1;
        }
        at = some_digits_end(bytes, at)?;
    }
    Ok(at)
}

fn digits_end(bytes: &[u8], mut at: usize) -> usize {
    while bytes.get(at).is_some_and(u8::is_ascii_digit) {
        at += 1;
    }
    at
}

/// Where the digits from `at` end; there must be one at least.
fn some_digits_end(bytes: &[u8], at: usize) -> Result<usize, ScanError> {
    match digits_end(bytes, at) {
        end if end > at => Ok(end),
        _ => Err(ScanError::Invalid(at)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use serde::de::IgnoredAny;

    fn valid(text: &str) -> bool {
        scan(text, usize::MAX).is_ok()
    }

    #[test]
    fn it_reads_what_json_is() {
        for text in [
            "[]",
            " [ ] ",
            "{}",
            "0",
            "-0",
            "-0.5e+10",
            "1E-2",
            "123.456",
            "true",
            "null",
            r#""\u00e9\ud800\"\\\/\b\f\n\r\t""#,
            "\"é\u{7f}\"",
            r#"[{"a":[1,{"b":null}],"c":"d"},false]"#,
            "\t\n\r [1]\n",
        ] {
            assert!(valid(text), "{text}");
            assert!(serde_json::from_str::<IgnoredAny>(text).is_ok(), "{text}");
        }
        for text in [
            "",
            " ",
            "[",
            "[1,]",
            "[,1]",
            "{\"a\"}",
            "{\"a\":}",
            "{1:2}",
            "{\"a\":1,}",
            "01",
            "-",
            "1.",
            ".5",
            "1e",
            "+1",
            "tru",
            "nul",
            "\"\u{1}\"",
            r#""\x""#,
            r#""\u12g4""#,
            r#""\u12"#,
            "\"abc",
            "[1] [2]",
            "[1]x",
            "[}",
            "{]",
            "\u{a0}[1]",
        ] {
            assert!(!valid(text), "{text:?}");
            assert!(
                serde_json::from_str::<IgnoredAny>(text).is_err(),
                "{text:?}"
            );
        }
    }

    #[test]
    fn it_bounds_the_depth_at_any_depth() {
        let deep = |n: usize| format!("{}1{}", "[{\"a\":".repeat(n), "}]".repeat(n));
        assert!(scan(&deep(64), 128).is_ok());
        assert_eq!(scan(&deep(65), 128), Err(ScanError::TooDeep(128)));
        // Past the word that holds the first 64 levels, and mismatched there.
        assert!(scan(&deep(500), usize::MAX).is_ok());
        let crossed = format!("{}{}", "[".repeat(300), "}".repeat(300));
        assert!(scan(&crossed, usize::MAX).is_err());
        let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(scan(&nested(128), 128).is_ok());
        assert!(scan(&nested(129), 128).is_err());
        // Brackets inside strings are text.
        assert!(scan(r#"["[[[[", "\"{{{{"]"#, 1).is_ok());
    }

    #[test]
    fn it_finds_an_arrays_first_element_and_the_rest() {
        let parts = |text: &str| {
            let shape = scan(text, usize::MAX).expect("valid");
            (
                shape.first.map(|r| text[r].to_owned()),
                shape.rest.map(|r| text[r].to_owned()),
            )
        };
        let some = |first: &str, rest: &str| (Some(first.to_owned()), Some(rest.to_owned()));
        assert_eq!(
            parts(r#"["echo",1,{"a":[2]}]"#),
            some(r#""echo""#, r#"1,{"a":[2]}]"#)
        );
        assert_eq!(parts(r#"["echo"]"#), some(r#""echo""#, "]"));
        assert_eq!(parts(r#" [ [1,[]] , 2 ] "#), some("[1,[]]", " 2 ]"));
        assert_eq!(parts(r#"[{},[]]"#), some("{}", "[]]"));
        assert_eq!(parts("[7 ]"), some("7", "]"));
        assert_eq!(parts("[]"), (None, Some("]".to_owned())));
        assert_eq!(parts(r#"{"a":[1,2]}"#), (None, None));
        assert!(!scan("{}", 1).expect("valid").array);
    }

    #[test]
    fn it_notices_a_key_that_may_be_a_placeholder() {
        let placeholder = |text: &str| scan(text, usize::MAX).expect("valid").placeholder;
        assert!(placeholder(r#"[{"_placeholder":true,"num":0}]"#));
        assert!(placeholder(r#"[1,{"a":{"_placeholder":true}}]"#));
        assert!(placeholder(r#"[{"\u005fplaceholder":true,"num":0}]"#));
        assert!(!placeholder(r#"["_placeholder",{"placeholder":1}]"#));
        assert!(!placeholder(r#"[{"a":"_placeholder"}]"#));
    }

    /// A random JSON text, with random space around its parts.
    fn random_json(rng: &mut StdRng, depth: usize, out: &mut String) {
        let space = |rng: &mut StdRng, out: &mut String| {
            for _ in 0..rng.random_range(0..3usize).saturating_sub(1) {
                out.push([' ', '\n', '\t', '\r'][rng.random_range(0..4)]);
            }
        };
        space(rng, out);
        match rng.random_range(0..if depth > 6 { 4 } else { 7 }) {
            0 => out.push_str(["true", "false", "null"][rng.random_range(0..3)]),
            1 => {
                let number = [
                    "0", "-0", "7", "-12", "3.25", "1e5", "-2.5E-3", "10e+2", "0.0",
                ];
                out.push_str(number[rng.random_range(0..number.len())]);
            }
            2 | 3 => random_string(rng, out),
            4 | 5 => {
                out.push('[');
                for i in 0..rng.random_range(0..4) {
                    if i > 0 {
                        out.push(',');
                    }
                    random_json(rng, depth + 1, out);
                }
                space(rng, out);
                out.push(']');
            }
            _ => {
                out.push('{');
                for i in 0..rng.random_range(0..4) {
                    if i > 0 {
                        out.push(',');
                    }
                    space(rng, out);
                    // Keys differ (no random one starts with a digit), so that the value
                    // read keeps them all.
                    let mut key = String::new();
                    random_string(rng, &mut key);
                    if i > 0 {
                        key.insert_str(1, &i.to_string());
                    }
                    out.push_str(&key);
                    space(rng, out);
                    out.push(':');
                    random_json(rng, depth + 1, out);
                }
                space(rng, out);
                out.push('}');
            }
        }
        space(rng, out);
    }

    fn random_string(rng: &mut StdRng, out: &mut String) {
        const PIECES: [&str; 14] = [
            "a",
            "_placeholder",
            "é",
            "€",
            "\u{1F600}",
            "\\\"",
            "\\\\",
            "\\n",
            "\\u00e9",
            "\\uD83D",
            "\\/",
            "xxxxxxxxxxxxxxxx",
            " ",
            "\u{7f}",
        ];
        out.push('"');
        for _ in 0..rng.random_range(0..5) {
            out.push_str(PIECES[rng.random_range(0..PIECES.len())]);
        }
        out.push('"');
    }

    /// The text with a few characters deleted, inserted or replaced by ones that matter
    /// to JSON's grammar.
    fn mutated(rng: &mut StdRng, text: &str) -> String {
        const CHARS: [char; 24] = [
            '[', ']', '{', '}', '"', '\\', ',', ':', '0', '1', '-', '+', '.', 'e', 'E', 'u', 't',
            'n', ' ', '\u{1}', '\u{1f}', 'a', 'é', '\u{a0}',
        ];
        let mut chars: Vec<char> = text.chars().collect();
        for _ in 0..rng.random_range(1..4) {
            let at = rng.random_range(0..=chars.len());
            let new = CHARS[rng.random_range(0..CHARS.len())];
            match rng.random_range(0..3) {
                0 if at < chars.len() => {
                    chars.remove(at);
                }
                1 if at < chars.len() => chars[at] = new,
                _ => chars.insert(at, new),
            }
        }
        chars.into_iter().collect()
    }

    /// The deepest nesting of arrays and objects in a value.
    fn depth(value: &serde_json::Value) -> usize {
        match value {
            serde_json::Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
            serde_json::Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
            _ => 0,
        }
    }

    fn has_placeholder_key(value: &serde_json::Value) -> bool {
        match value {
            serde_json::Value::Array(items) => items.iter().any(has_placeholder_key),
            serde_json::Value::Object(map) => {
                map.contains_key("_placeholder") || map.values().any(has_placeholder_key)
            }
            _ => false,
        }
    }

    #[test]
    fn it_accepts_what_serde_json_accepts_on_random_texts() {
        let mut rng = StdRng::seed_from_u64(0x006e_7362_6f78);
        let (mut accepted, mut refused) = (0, 0);
        for round in 0..40_000 {
            let mut text = String::new();
            random_json(&mut rng, 0, &mut text);
            let mutated_text = round % 2 == 1;
            if mutated_text {
                text = mutated(&mut rng, &text);
            }
            let ours = scan(&text, usize::MAX);
            let theirs = serde_json::from_str::<IgnoredAny>(&text);
            assert_eq!(
                ours.is_ok(),
                theirs.is_ok(),
                "{text:?}: {ours:?} / {theirs:?}"
            );
            let Ok(shape) = ours else {
                refused += 1;
                continue;
            };
            accepted += 1;
            // Within serde_json's own depth, the value read says what the scan found.
            let Ok(value) = serde_json::from_str::<serde_json::Value>(&text) else {
                continue;
            };
            assert_eq!(shape.array, value.is_array(), "{text:?}");
            if let serde_json::Value::Array(items) = &value {
                let first = shape.first.clone().map(|r| &text[r]);
                let first = first.map(|t| serde_json::from_str::<serde_json::Value>(t).ok());
                assert_eq!(first, items.first().map(|v| Some(v.clone())), "{text:?}");
                let rest = format!("[{}", &text[shape.rest.clone().expect("an array's rest")]);
                let rest: serde_json::Value = serde_json::from_str(&rest).expect("the rest");
                let others = items.get(1..).unwrap_or_default();
                assert_eq!(rest.as_array().map(Vec::as_slice), Some(others), "{text:?}");
            }
            if mutated_text {
                // A mutation may have made two keys the same, which the value read keeps
                // once: only the array's parts are compared.
                continue;
            }
            let levels = depth(&value);
            assert!(scan(&text, levels).is_ok(), "{text:?}");
            if levels > 0 {
                assert_eq!(scan(&text, levels - 1), Err(ScanError::TooDeep(levels - 1)));
            }
            if !text.contains('\\') {
                // Without escapes, the flag is exactly whether some key is `_placeholder`.
                assert_eq!(shape.placeholder, has_placeholder_key(&value), "{text:?}");
            }
        }
        // Both kinds of text were met often enough for the comparison to mean something.
        assert!(
            accepted > 15_000 && refused > 5_000,
            "{accepted} / {refused}"
        );
    }
}
