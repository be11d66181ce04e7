//! The `j` body codec: JSON text through `serde_json`, no trailing newline (as Go writes it).
//!
//! A body that is one string with nothing to escape (no quote, backslash
//! or control character) takes a shorter path both ways: written as its
//! bytes between quotes, read as the bytes between the quotes after one
//! scan and a UTF-8 check.
//! serde_json's general machinery (a formatter call and a table lookup per
//! byte when writing; a tokenizer, a search for escapes and a UTF-8 check
//! per string when reading) cost about 850 instructions per call for a
//! 16-byte string echoed, where the short path costs about 540. Anything
//! else, and every error, is serde_json's own: the short path only takes
//! bodies whose result it is sure to match.
//!
//! The price for other values: writing one starts its `Serialize` once
//! more, on a probe that refuses it at the first call (for a derived
//! struct, `serialize_struct`). Work a hand-written `Serialize` does
//! before that call is done twice. Measured with
//! `teleport-bench/src/bin/json-cost.rs` against the codec without the
//! short path: a number or a small struct costs nothing more to write
//! and 21 or 48 instructions more to read; a short string that needs
//! escaping, 165 and 122 (it is scanned, then given to serde_json).

use std::fmt;
use std::io::Write;

use serde::de::{DeserializeOwned, Visitor};
use serde::ser::Impossible;
use serde::{Serialize, Serializer};

use super::CodecError;

pub(crate) fn encode<T: Serialize + ?Sized>(
    value: &T,
    mut out: impl Write,
) -> Result<(), CodecError> {
    let written = match value.serialize(PlainString(&mut out)) {
        Ok(()) => Ok(()),
        Err(Probe::Json(e)) => Err(e),
        Err(Probe::NotAString) => serde_json::to_writer(out, value),
    };
    written.map_err(|e| CodecError::encode("json", e))
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    if let Some(text) = plain_string(bytes) {
        // A type that does not take a string gets serde_json's answer
        // (its error, most often) below.
        if let Ok(value) = T::deserialize(PlainStr(text)) {
            return Ok(value);
        }
    }
    serde_json::from_slice(bytes).map_err(|e| CodecError::decode("json", e))
}

/// Whether JSON must escape some byte of `bytes`: a quote, a backslash or
/// a control character (serde_json escapes exactly these). Written without
/// an early exit, so that the compiler may check many bytes per step.
fn needs_escape(bytes: &[u8]) -> bool {
    bytes.iter().fold(false, |any, &b| {
        any | (b < 0x20) | (b == b'"') | (b == b'\\')
    })
}

/// The text of a body that is exactly one JSON string with no escapes (no
/// white space around it either), UTF-8 checked: what serde_json would
/// read from it. `None` for anything else.
fn plain_string(bytes: &[u8]) -> Option<&str> {
    let inner = bytes.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
    if needs_escape(inner) {
        return None;
    }
    super::utf8(inner).ok()
}

/// Why [`PlainString`] did not write the value.
#[derive(Debug)]
enum Probe {
    /// The value is not a string: serde_json writes it.
    NotAString,
    /// Writing failed (the body's size limit, say).
    Json(serde_json::Error),
}

impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Probe::NotAString => f.write_str("not a string"),
            Probe::Json(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for Probe {}

impl serde::ser::Error for Probe {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Probe::Json(serde_json::Error::custom(msg))
    }
}

/// A serializer that writes a value only if it is a string (as serde_json
/// would: quoted, escaped) and refuses anything else at its first call.
struct PlainString<W>(W);

impl<W: Write> PlainString<W> {
    fn put(&mut self, bytes: &[u8]) -> Result<(), Probe> {
        self.0
            .write_all(bytes)
            .map_err(|e| Probe::Json(serde_json::Error::io(e)))
    }
}

macro_rules! not_a_string {
    ($($method:ident($($arg:ident: $ty:ty),*) -> $ret:ty;)*) => {
        $(fn $method(self, $($arg: $ty),*) -> Result<$ret, Probe> {
            $(let _ = $arg;)*
            Err(Probe::NotAString)
        })*
    };
}

impl<W: Write> Serializer for PlainString<W> {
    type Ok = ();
    type Error = Probe;
    type SerializeSeq = Impossible<(), Probe>;
    type SerializeTuple = Impossible<(), Probe>;
    type SerializeTupleStruct = Impossible<(), Probe>;
    type SerializeTupleVariant = Impossible<(), Probe>;
    type SerializeMap = Impossible<(), Probe>;
    type SerializeStruct = Impossible<(), Probe>;
    type SerializeStructVariant = Impossible<(), Probe>;

    fn serialize_str(mut self, v: &str) -> Result<(), Probe> {
        if needs_escape(v.as_bytes()) {
            return serde_json::to_writer(self.0, v).map_err(Probe::Json);
        }
        self.put(b"\"")?;
        self.put(v.as_bytes())?;
        self.put(b"\"")
    }

    not_a_string! {
        serialize_bool(v: bool) -> ();
        serialize_i8(v: i8) -> ();
        serialize_i16(v: i16) -> ();
        serialize_i32(v: i32) -> ();
        serialize_i64(v: i64) -> ();
        serialize_i128(v: i128) -> ();
        serialize_u8(v: u8) -> ();
        serialize_u16(v: u16) -> ();
        serialize_u32(v: u32) -> ();
        serialize_u64(v: u64) -> ();
        serialize_u128(v: u128) -> ();
        serialize_f32(v: f32) -> ();
        serialize_f64(v: f64) -> ();
        serialize_char(v: char) -> ();
        serialize_bytes(v: &[u8]) -> ();
        serialize_none() -> ();
        serialize_unit() -> ();
        serialize_unit_struct(name: &'static str) -> ();
        serialize_unit_variant(name: &'static str, index: u32, variant: &'static str) -> ();
        serialize_seq(len: Option<usize>) -> Self::SerializeSeq;
        serialize_tuple(len: usize) -> Self::SerializeTuple;
        serialize_tuple_struct(name: &'static str, len: usize) -> Self::SerializeTupleStruct;
        serialize_tuple_variant(name: &'static str, index: u32, variant: &'static str, len: usize) -> Self::SerializeTupleVariant;
        serialize_map(len: Option<usize>) -> Self::SerializeMap;
        serialize_struct(name: &'static str, len: usize) -> Self::SerializeStruct;
        serialize_struct_variant(name: &'static str, index: u32, variant: &'static str, len: usize) -> Self::SerializeStructVariant;
    }

    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<(), Probe> {
        Err(Probe::NotAString)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: &T,
    ) -> Result<(), Probe> {
        Err(Probe::NotAString)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), Probe> {
        Err(Probe::NotAString)
    }
}

/// Why [`PlainStr`] gave no value: the type asked for something other
/// than a string, or refused one. serde_json then reads the body.
#[derive(Debug)]
struct NotPlain;

impl fmt::Display for NotPlain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not read as a plain string")
    }
}

impl std::error::Error for NotPlain {}

impl serde::de::Error for NotPlain {
    fn custom<T: fmt::Display>(_: T) -> Self {
        NotPlain
    }
}

/// A deserializer over the text of a body that is one plain JSON string.
/// It answers only the requests serde_json answers with that string's
/// text (`deserialize_any`, `_str`, `_string`, `_char`,
/// `_identifier`), the same way (`visit_borrowed_str`); any other request
/// fails, so that serde_json decides.
struct PlainStr<'de>(&'de str);

macro_rules! not_plain {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {
        $(fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* _: V) -> Result<V::Value, NotPlain> {
            $(let _ = $arg;)*
            Err(NotPlain)
        })*
    };
}

impl<'de> serde::Deserializer<'de> for PlainStr<'de> {
    type Error = NotPlain;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, NotPlain> {
        visitor.visit_borrowed_str(self.0)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, NotPlain> {
        visitor.visit_borrowed_str(self.0)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, NotPlain> {
        visitor.visit_borrowed_str(self.0)
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, NotPlain> {
        visitor.visit_borrowed_str(self.0)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, NotPlain> {
        visitor.visit_borrowed_str(self.0)
    }

    not_plain! {
        deserialize_bool();
        deserialize_i8();
        deserialize_i16();
        deserialize_i32();
        deserialize_i64();
        deserialize_i128();
        deserialize_u8();
        deserialize_u16();
        deserialize_u32();
        deserialize_u64();
        deserialize_u128();
        deserialize_f32();
        deserialize_f64();
        deserialize_bytes();
        deserialize_byte_buf();
        deserialize_option();
        deserialize_unit();
        deserialize_unit_struct(name: &'static str);
        deserialize_newtype_struct(name: &'static str);
        deserialize_seq();
        deserialize_tuple(len: usize);
        deserialize_tuple_struct(name: &'static str, len: usize);
        deserialize_map();
        deserialize_struct(name: &'static str, fields: &'static [&'static str]);
        deserialize_enum(name: &'static str, variants: &'static [&'static str]);
        deserialize_ignored_any();
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::fmt::Debug;

    use serde::de::{MapAccess, Visitor};
    use serde::{Deserialize, Deserializer, Serialize};

    use super::*;

    /// What serde_json writes, byte for byte.
    fn same_encode<T: Serialize + ?Sized>(value: &T) {
        let mut ours = Vec::new();
        encode(value, &mut ours).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&serde_json::to_vec(value).unwrap())
        );
    }

    /// What serde_json reads, value or error.
    fn same_decode<T: DeserializeOwned + PartialEq + Debug>(body: &[u8]) {
        let ours = decode::<T>(body).map_err(|e| e.to_string());
        let theirs = serde_json::from_slice::<T>(body)
            .map_err(|e| CodecError::decode("json", e).to_string());
        assert_eq!(ours, theirs, "body {:?}", String::from_utf8_lossy(body));
    }

    const TEXTS: &[&str] = &[
        "",
        "plain text",
        "é, 漢字 and 🦀",
        "\u{7f} is not escaped",
        "a \"quote\"",
        "a back\\slash",
        "new\nline, tab\t",
        "\u{1} and \u{1f}",
        "</script>",
    ];

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum Unit {
        A,
        B,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Wrapped(String);

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(untagged)]
    enum Either {
        Text(String),
        Point { x: i32 },
    }

    /// A type that asks for a map but whose visitor would also take a
    /// string: serde_json refuses a string for it, and so must we.
    #[derive(Debug, PartialEq)]
    struct MapOnly(String);

    impl<'de> Deserialize<'de> for MapOnly {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = MapOnly;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a map or a string")
                }
                fn visit_str<E>(self, v: &str) -> Result<MapOnly, E> {
                    Ok(MapOnly(v.to_owned()))
                }
                fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<MapOnly, A::Error> {
                    let mut text = String::new();
                    while let Some((k, v)) = m.next_entry::<String, String>()? {
                        text = k + &v;
                    }
                    Ok(MapOnly(text))
                }
            }
            d.deserialize_map(V)
        }
    }

    #[test]
    fn strings_and_everything_else_are_written_as_serde_json_writes_them() {
        for text in TEXTS {
            same_encode(*text);
            same_encode(&text.to_string());
            same_encode(&Wrapped(text.to_string()));
            same_encode(&Some(text.to_string()));
            same_encode(&vec![text.to_string()]);
            same_encode(&Either::Text(text.to_string()));
        }
        same_encode(&'x');
        same_encode(&'"');
        same_encode(&Unit::B);
        same_encode(&Either::Point { x: 3 });
        same_encode(&None::<String>);
        same_encode(&BTreeMap::from([("k", "v")]));
        same_encode(&(1, "two", 3.5));
        same_encode(&serde_json::json!({"a": ["b", null, true]}));
    }

    #[test]
    fn every_body_is_read_as_serde_json_reads_it() {
        let mut bodies: Vec<Vec<u8>> = TEXTS
            .iter()
            .map(|t| serde_json::to_vec(t).unwrap())
            .collect();
        bodies.extend(
            [
                &b"\"x\""[..],
                b"\"A\"",
                b"\"C\"",
                b"\"123\"",
                b" \"spaced\" ",
                b"\"trailing\" x",
                b"\"raw \n control\"",
                b"\"bad \xff utf-8\"",
                b"\"unterminated",
                b"\"",
                b"\"\"\"",
                b"123",
                b"null",
                b"{\"x\": 3}",
                b"{\"k\": \"v\"}",
                b"[\"a\"]",
                b"",
            ]
            .map(<[u8]>::to_vec),
        );
        for body in &bodies {
            same_decode::<String>(body);
            same_decode::<Box<str>>(body);
            same_decode::<char>(body);
            same_decode::<Option<String>>(body);
            same_decode::<u64>(body);
            same_decode::<Unit>(body);
            same_decode::<Wrapped>(body);
            same_decode::<Either>(body);
            same_decode::<MapOnly>(body);
            same_decode::<Vec<u8>>(body);
            same_decode::<serde_json::Value>(body);
        }
    }

    #[test]
    fn the_escape_check_finds_every_byte_json_escapes_at_every_place() {
        let escaped = |b: u8| b < 0x20 || b == b'"' || b == b'\\';
        // Fillers around the byte under test: plain ASCII, the bytes next
        // to the ones that need escaping, and bytes with the high bit set
        // (UTF-8 continuation and lead bytes). The lengths cover both the
        // compiler's vectorised loop (16 and 32 bytes a step) and the
        // bytewise rest.
        for filler in [b'a', b' ', b'!', b'#', b'[', b']', 0x7f, 0x80, 0xa0, 0xff] {
            for len in 1..=34 {
                for at in 0..len {
                    for b in 0..=u8::MAX {
                        let mut text = vec![filler; len];
                        text[at] = b;
                        assert_eq!(
                            needs_escape(&text),
                            escaped(b) || escaped(filler),
                            "byte {b:#04x} at {at} of {len} among {filler:#04x}"
                        );
                    }
                }
            }
        }
        assert!(!needs_escape(b""));
    }
}
