//! Errors of the frame layer: framing broken beyond repair.

/// A frame could not be read: the connection carrying it cannot stay in sync
/// and is closed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// A length field announced more than the configured maximum frame size.
    #[error("frame {part} of {len} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// `"header"` or `"body"`.
        part: &'static str,
        /// The announced length.
        len: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The header length was 0, so there is not even a header codec id.
    #[error("frame header length is 0: a header needs at least its codec id byte")]
    EmptyHeader,
    /// The header codec id byte is not `p` or `j`.
    #[error("unknown header codec id 0x{0:02x}: expected 'p' (protobuf) or 'j' (json)")]
    UnknownHeaderCodec(u8),
    /// The header bytes are not a valid header for their codec.
    #[error("malformed header (codec '{codec}'): {reason}")]
    MalformedHeader {
        /// The header codec id as a character.
        codec: char,
        /// What the decoder said.
        reason: String,
    },
    /// The first bytes of the connection are not a teleport frame but look
    /// like another protocol.
    #[error("the remote peer is not a teleport peer: its first bytes look like {looks_like}")]
    NotTeleport {
        /// What they look like, and what to do about it.
        looks_like: &'static str,
    },
    /// The connection ended in the middle of a frame.
    #[error("connection closed in the middle of a frame ({buffered} bytes buffered)")]
    Truncated {
        /// How many bytes of the unfinished frame had arrived.
        buffered: usize,
    },
    /// Reading or writing the socket failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}
