//! The `b` body codec: bincode 1 (fixed-width integers, little endian), for
//! Rust-to-Rust speed. Not known to Go Teleport; Go peers answer it with 415.

use bincode::Options;
use serde::Serialize;
use serde::de::{DeserializeOwned, Visitor};

use super::CodecError;

fn options() -> impl Options {
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .allow_trailing_bytes()
}

pub(crate) fn encode<T: Serialize + ?Sized>(
    value: &T,
    out: impl std::io::Write,
) -> Result<(), CodecError> {
    options()
        .serialize_into(out, value)
        .map_err(|e| CodecError::encode("bincode", e))
}

/// Encodes `value` onto `out` unless that would make `out` longer than
/// `limit`: bincode knows the size before writing (a pass that only adds
/// up lengths), so nothing over the limit is written and `out` grows once,
/// to the exact size, with no bounded writer in between.
///
/// `#[inline]`: a reply's encoding runs it for every call, and LLVM
/// stopped inlining it once handlers came in two shapes (about 35
/// instructions per call, `percall.sh teleport/service 16 1x64`).
#[inline]
pub(crate) fn encode_within<T: Serialize + ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
    limit: usize,
) -> Result<(), CodecError> {
    let size = options()
        .serialized_size(value)
        .map_err(|e| CodecError::encode("bincode", e))?;
    let len = usize::try_from(size)
        .unwrap_or(usize::MAX)
        .saturating_add(out.len());
    if len > limit {
        return Err(CodecError::TooLarge { len, limit });
    }
    out.reserve(len - out.len());
    options()
        .serialize_into(&mut *out, value)
        .map_err(|e| CodecError::encode("bincode", e))
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let decoded = if bytes.len() < 8 + LONG_TEXT {
        // Too short to hold a long string: bincode's, with no layer between.
        options().deserialize(bytes)
    } else {
        T::deserialize(Body(bytes))
    };
    decoded.map_err(|e| CodecError::decode("bincode", e))
}

/// Strings shorter than this are bincode's to check: below 64 bytes
/// simdutf8 calls std's checker anyway, which bincode inlines.
const LONG_TEXT: usize = 64;

/// A bincode body, read by bincode's own deserializer, except when the
/// body is one string (an argument or reply of type `String`) of
/// [`LONG_TEXT`] bytes or more: its bytes are then checked as UTF-8 by
/// [`super::utf8`], 64 bytes per step where std's checker, which bincode
/// calls, takes 16. A string whose length prefix or bytes are wrong goes
/// to bincode too, for bincode's error.
///
/// Only the body's outermost value can be seen here: strings inside
/// structs are bincode's to read.
struct Body<'de>(&'de [u8]);

impl<'de> Body<'de> {
    /// The body's string, when the body starts with a length prefix (a
    /// `u64`, little endian) of at least [`LONG_TEXT`] and that many bytes
    /// of UTF-8 (bytes after them are allowed, as bincode allows them).
    fn text(&self) -> Option<&'de str> {
        let (len, rest) = self.0.split_first_chunk::<8>()?;
        let len = usize::try_from(u64::from_le_bytes(*len)).ok()?;
        if len < LONG_TEXT {
            return None;
        }
        super::utf8(rest.get(..len)?).ok()
    }

    /// bincode's deserializer over the body. A length prefix cannot make
    /// it read past the body, nor make serde allocate more than 1 MiB for
    /// elements not yet read (serde's cautious size hint). (bincode's
    /// `with_limit` has no effect on a slice: its `deserialize` of a slice
    /// sets the limit to infinite.)
    fn bincode(&self) -> bincode::Deserializer<bincode::de::read::SliceReader<'de>, impl Options> {
        bincode::Deserializer::from_slice(self.0, options())
    }
}

/// Hands each `deserialize_*` call on to bincode's deserializer.
macro_rules! bincode_reads {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {$(
        fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, bincode::Error> {
            (&mut self.bincode()).$method($($arg,)* visitor)
        }
    )*};
}

impl<'de> serde::Deserializer<'de> for Body<'de> {
    type Error = bincode::Error;

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, bincode::Error> {
        match self.text() {
            Some(text) => visitor.visit_borrowed_str(text),
            None => (&mut self.bincode()).deserialize_str(visitor),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, bincode::Error> {
        match self.text() {
            Some(text) => visitor.visit_borrowed_str(text),
            None => (&mut self.bincode()).deserialize_string(visitor),
        }
    }

    fn is_human_readable(&self) -> bool {
        false
    }

    bincode_reads! {
        deserialize_any();
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
        deserialize_char();
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
        deserialize_identifier();
        deserialize_ignored_any();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What bincode itself makes of `bytes`, with `decode`'s options.
    fn bincode_alone<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
        options().deserialize(bytes).map_err(|e| e.to_string())
    }

    fn ours<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
        T::deserialize(Body(bytes)).map_err(|e| e.to_string())
    }

    fn encoded<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
        let mut out = Vec::new();
        encode(value, &mut out).unwrap();
        out
    }

    #[test]
    fn strings_of_every_length_and_script_decode_as_bincode_decodes_them() {
        for len in [0, 1, 15, 16, 63, 64, 65, 127, 1000, 70_000] {
            for unit in ["a", "é", "語", "🦀"] {
                let text = unit.repeat(len);
                let mut bytes = encoded(&text);
                assert_eq!(ours::<String>(&bytes), Ok(text.clone()), "{len} × {unit}");
                assert_eq!(ours::<Box<str>>(&bytes).as_deref(), Ok(&*text));
                // Trailing bytes are allowed, as bincode allows them.
                bytes.extend_from_slice(b"tail");
                assert_eq!(ours::<String>(&bytes), bincode_alone::<String>(&bytes));
            }
        }
    }

    #[test]
    fn bad_strings_get_the_error_bincode_gives() {
        let mut invalid = encoded(&"x".repeat(100));
        invalid[8 + 70] = 0xff;
        let mut cut_in_a_char = encoded("🦀");
        cut_in_a_char[..8].copy_from_slice(&3u64.to_le_bytes());
        let too_long = encoded("short");
        let too_long = [&100u64.to_le_bytes()[..], &too_long[8..]].concat();
        let huge = [&u64::MAX.to_le_bytes()[..], b"abc"].concat();
        for (what, bytes) in [
            ("invalid byte", invalid),
            ("cut in a character", cut_in_a_char),
            ("length past the end", too_long),
            ("length past usize", huge),
            ("no length", b"abc".to_vec()),
            ("empty", Vec::new()),
        ] {
            let expected = bincode_alone::<String>(&bytes);
            assert!(expected.is_err(), "{what}");
            assert_eq!(ours::<String>(&bytes), expected, "{what}");
        }
    }

    #[derive(Debug, PartialEq, Serialize, serde::Deserialize)]
    enum Shape {
        Dot,
        Line(u32, u32),
        Named { name: String, sides: Option<u8> },
    }

    #[test]
    fn every_other_type_is_bincodes_to_read() {
        fn same<T>(value: T)
        where
            T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
        {
            let bytes = encoded(&value);
            assert_eq!(ours::<T>(&bytes), Ok(value));
            assert_eq!(
                ours::<T>(&bytes[..bytes.len() / 2]),
                bincode_alone::<T>(&bytes[..bytes.len() / 2])
            );
        }
        same(true);
        same(-7i8);
        same(u128::MAX);
        same(1.5f64);
        same('語');
        same(Some("x".repeat(80)));
        same(vec![1u8, 2, 3]);
        same((1u16, "pair".to_owned()));
        same(std::collections::BTreeMap::from([(1u32, "one".to_owned())]));
        same(vec![
            Shape::Dot,
            Shape::Line(1, 2),
            Shape::Named {
                name: "tri".into(),
                sides: Some(3),
            },
        ]);
        same(());
    }
}
