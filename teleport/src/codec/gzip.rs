//! Gzip bodies as Go Teleport writes them, and as everyone else does.
//!
//! Go Teleport v2.0 compresses a body with `gzip.Writer`, calls `Flush()`
//! (a deflate *sync flush*, ending in `00 00 ff ff`) and never `Close()`, so
//! its stream has no final block and no CRC32/ISIZE trailer. [`decompress`]
//! accepts that form and a complete gzip member alike, and stops with an
//! error as soon as the output would pass the caller's limit (a small
//! "gzip bomb" cannot make it allocate more). [`compress`] writes a complete
//! member, which every gzip reader, Go's included, decodes.

use std::io::Write;

use flate2::{Compression, Crc, Decompress, FlushDecompress, Status};

use super::CodecError;

/// The gzip level a body is sent with, checked when it is made: 0 (none),
/// 1 (fastest) to 9 (smallest), -1 (zlib's default) or -2 (Huffman only),
/// the levels Go's `compress/gzip` accepts. A level set on a call, a peer or
/// a reply is a `GzipLevel`, so a bad one is refused where it is written,
/// not when a body is compressed.
///
/// ```
/// use teleport::codec::GzipLevel;
///
/// assert_eq!(GzipLevel::L5.get(), 5);
/// assert_eq!(GzipLevel::new(9).unwrap(), GzipLevel::BEST);
/// let err = GzipLevel::new(12).unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     "invalid gzip level 12: expected 0 (none), 1..=9, -1 (default) or -2 (huffman only)"
/// );
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct GzipLevel(i8);

impl GzipLevel {
    /// No compression (the default).
    pub const NONE: GzipLevel = GzipLevel(0);
    /// Level 1, the fastest.
    pub const L1: GzipLevel = GzipLevel(1);
    /// Level 2.
    pub const L2: GzipLevel = GzipLevel(2);
    /// Level 3.
    pub const L3: GzipLevel = GzipLevel(3);
    /// Level 4.
    pub const L4: GzipLevel = GzipLevel(4);
    /// Level 5.
    pub const L5: GzipLevel = GzipLevel(5);
    /// Level 6.
    pub const L6: GzipLevel = GzipLevel(6);
    /// Level 7.
    pub const L7: GzipLevel = GzipLevel(7);
    /// Level 8.
    pub const L8: GzipLevel = GzipLevel(8);
    /// Level 9, the smallest output.
    pub const L9: GzipLevel = GzipLevel(9);
    /// The fastest level, 1.
    pub const FASTEST: GzipLevel = GzipLevel(1);
    /// The smallest output, level 9.
    pub const BEST: GzipLevel = GzipLevel(9);
    /// zlib's default level (-1 on the wire).
    pub const DEFAULT: GzipLevel = GzipLevel(-1);
    /// Huffman coding only (-2 on the wire; flate2 has no such mode and
    /// writes its fastest level, which every reader decodes).
    pub const HUFFMAN_ONLY: GzipLevel = GzipLevel(-2);

    /// The level for a number, as a command line or a config file gives it.
    ///
    /// # Errors
    ///
    /// [`CodecError::InvalidGzipLevel`] outside `-2..=9`.
    pub fn new(level: i32) -> Result<GzipLevel, CodecError> {
        match level {
            -2..=9 => Ok(GzipLevel(level as i8)),
            other => Err(CodecError::InvalidGzipLevel(other)),
        }
    }

    /// The level as the header carries it.
    pub const fn get(self) -> i32 {
        self.0 as i32
    }

    /// Whether this is [`GzipLevel::NONE`].
    pub const fn is_none(self) -> bool {
        self.0 == 0
    }

    /// The level a received header names, or `NONE` for one outside
    /// `-2..=9` (a reply then goes uncompressed).
    pub(crate) fn from_wire(level: i32) -> GzipLevel {
        GzipLevel::new(level).unwrap_or(GzipLevel::NONE)
    }

    fn compression(self) -> Compression {
        match self.0 {
            1..=9 => Compression::new(self.0 as u32),
            // Go's DefaultCompression.
            -1 => Compression::default(),
            // Go's HuffmanOnly; flate2 has no such mode, its fastest level is the nearest.
            _ => Compression::fast(),
        }
    }
}

impl TryFrom<i32> for GzipLevel {
    type Error = CodecError;

    fn try_from(level: i32) -> Result<GzipLevel, CodecError> {
        GzipLevel::new(level)
    }
}

impl From<GzipLevel> for i32 {
    fn from(level: GzipLevel) -> i32 {
        level.get()
    }
}

/// Checks that a gzip level may be sent: 0 (none), 1..=9, -1 or -2.
///
/// # Errors
///
/// [`CodecError::InvalidGzipLevel`] otherwise.
pub fn check_level(level: i32) -> Result<(), CodecError> {
    GzipLevel::new(level).map(|_| ())
}

/// Appends `plain` compressed as one complete gzip member to `out`.
///
/// # Errors
///
/// [`CodecError::Gzip`] if the encoder fails.
pub fn compress(level: GzipLevel, plain: &[u8], out: &mut Vec<u8>) -> Result<(), CodecError> {
    let mut enc = flate2::write::GzEncoder::new(out, level.compression());
    enc.write_all(plain)
        .and_then(|_| enc.try_finish())
        .map_err(|e| CodecError::Gzip(e.to_string()))
}

const FTEXT_MASK: u8 = 0b1110_0000;
const FHCRC: u8 = 0x02;
const FEXTRA: u8 = 0x04;
const FNAME: u8 = 0x08;
const FCOMMENT: u8 = 0x10;

/// Returns where the deflate data starts, after the gzip member header.
fn skip_header(src: &[u8]) -> Result<usize, CodecError> {
    let bad = |what: &str| CodecError::Gzip(format!("invalid gzip header: {what}"));
    if src.len() < 10 {
        return Err(bad("shorter than 10 bytes"));
    }
    if src[0] != 0x1f || src[1] != 0x8b {
        return Err(bad("missing magic bytes 1f 8b"));
    }
    if src[2] != 8 {
        return Err(bad("compression method is not deflate"));
    }
    let flags = src[3];
    if flags & FTEXT_MASK != 0 {
        return Err(bad("reserved flag bits set"));
    }
    let mut pos = 10;
    if flags & FEXTRA != 0 {
        let len = src
            .get(pos..pos + 2)
            .ok_or_else(|| bad("truncated extra field"))?;
        pos += 2 + u16::from_le_bytes([len[0], len[1]]) as usize;
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            let rest = src.get(pos..).ok_or_else(|| bad("truncated name"))?;
            let end = rest
                .iter()
                .position(|&b| b == 0)
                .ok_or_else(|| bad("unterminated name or comment"))?;
            pos += end + 1;
        }
    }
    if flags & FHCRC != 0 {
        pos += 2;
    }
    if pos > src.len() {
        return Err(bad("truncated"));
    }
    Ok(pos)
}

/// Decompresses a gzip member, with or without its final block and trailer,
/// refusing to produce more than `limit` bytes.
///
/// # Errors
///
/// [`CodecError::Gzip`] for a corrupt stream or a trailer whose CRC or size
/// does not match; [`CodecError::TooLarge`] when the output passes `limit`.
pub fn decompress(src: &[u8], limit: usize) -> Result<Vec<u8>, CodecError> {
    let start = skip_header(src)?;
    let input = &src[start..];
    let mut inflate = Decompress::new(false);
    let mut out = Vec::with_capacity((input.len() * 4).clamp(64, limit.max(64)));
    loop {
        if out.len() == out.capacity() {
            if out.len() > limit {
                return Err(CodecError::TooLarge {
                    len: out.len(),
                    limit,
                });
            }
            let grow = out.len().max(4096).min(limit + 1 - out.len());
            out.reserve(grow);
        }
        let in_before = inflate.total_in() as usize;
        let out_before = out.len();
        let status = inflate
            .decompress_vec(&input[in_before..], &mut out, FlushDecompress::Sync)
            .map_err(|e| CodecError::Gzip(format!("corrupt deflate data: {e}")))?;
        if out.len() > limit {
            return Err(CodecError::TooLarge {
                len: out.len(),
                limit,
            });
        }
        let consumed = inflate.total_in() as usize;
        match status {
            Status::StreamEnd => {
                check_trailer(&input[consumed..], &out)?;
                return Ok(out);
            }
            Status::Ok | Status::BufError => {
                let exhausted = consumed == input.len();
                let room_left = out.len() < out.capacity();
                if exhausted && room_left {
                    // Go's form: a sync-flushed stream that simply stops.
                    return Ok(out);
                }
                if consumed == in_before && out.len() == out_before && room_left {
                    return Err(CodecError::Gzip("truncated deflate data".into()));
                }
            }
        }
    }
}

/// Checks the CRC32 and size trailer after a final block, if it is there.
fn check_trailer(rest: &[u8], out: &[u8]) -> Result<(), CodecError> {
    if rest.is_empty() {
        return Ok(());
    }
    if rest.len() < 8 {
        return Err(CodecError::Gzip(format!(
            "truncated gzip trailer ({} of 8 bytes)",
            rest.len()
        )));
    }
    let mut crc = Crc::new();
    crc.update(out);
    let want_crc = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
    let want_len = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
    if crc.sum() != want_crc || (out.len() as u32) != want_len {
        return Err(CodecError::Gzip(
            "gzip trailer does not match the data (CRC32 or size)".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn decodes_go_trailerless_sync_flushed_stream() {
        // From the pull_echo_json_gzip5 vector.
        let go = hex("1f8b08000000000000ff524aafca2c50c84d55c0412b01000000ffff");
        let plain = decompress(&go, 1 << 20).unwrap();
        assert_eq!(plain, b"\"gzip me gzip me gzip me gzip me\"");
    }

    #[test]
    fn round_trips_complete_members_at_every_level() {
        let data = b"hello hello hello hello teleport".repeat(50);
        for level in [-2, -1, 1, 5, 9] {
            let mut z = Vec::new();
            compress(GzipLevel::new(level).unwrap(), &data, &mut z).unwrap();
            assert_eq!(decompress(&z, 1 << 20).unwrap(), data);
        }
    }

    #[test]
    fn output_beyond_the_limit_is_refused() {
        let data = vec![0u8; 1 << 20];
        let mut z = Vec::new();
        compress(GzipLevel::BEST, &data, &mut z).unwrap();
        assert!(z.len() < 4096);
        let err = decompress(&z, 64 * 1024).unwrap_err();
        assert!(matches!(err, CodecError::TooLarge { limit: 65536, .. }));
    }

    #[test]
    fn corrupt_streams_are_errors() {
        assert!(decompress(b"not gzip at all", 1024).is_err());
        let mut z = Vec::new();
        compress(GzipLevel::L5, b"some data some data", &mut z).unwrap();
        let n = z.len();
        z[n - 8] ^= 0xff; // break the CRC
        assert!(decompress(&z, 1024).is_err());
        assert!(check_level(10).is_err());
        assert!(check_level(0).is_ok());
    }
}
