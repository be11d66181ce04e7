//! The outcome of a call as it travels on the wire: a status code and its text.
//!
//! Every reply header carries a `status_code` and a `status` text. `200 "OK"`
//! means the handler produced a body; any other code is an error that the
//! caller receives as [`Error::Status`](crate::Error::Status). Codes below 200
//! describe failures that happen locally and are never sent (as in Go
//! Teleport v2.0).
//!
//! ```
//! use teleport::Status;
//!
//! let s = Status::not_found();
//! assert_eq!(s.code(), 404);
//! assert_eq!(s.text(), "Not Found");
//! let custom = Status::new(599, "xerror: bad input");
//! assert_eq!(custom.to_string(), "599 xerror: bad input");
//! ```

use std::borrow::Cow;
use std::fmt;

/// A status code and its text, as carried by a reply header.
///
/// # Examples
///
/// A handler fails with a status; the caller gets it back as
/// [`Error::Status`](crate::Error::Status).
///
/// ```
/// use teleport::status::code;
/// use teleport::{Ctx, Router, Status};
///
/// let not_found = Status::not_found();
/// assert_eq!((not_found.code(), not_found.text()), (code::NOT_FOUND, "Not Found"));
/// assert_eq!(Status::new(599, "division by zero").to_string(), "599 division by zero");
/// assert!(Status::ok().is_ok());
///
/// let mut router = Router::new();
/// router.pull("/home/div", |_: Ctx, [a, b]: [i64; 2]| async move {
///     a.checked_div(b).ok_or_else(|| Status::new(599, "division by zero"))
/// });
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Status {
    code: i32,
    text: Cow<'static, str>,
}

/// The status codes of Go Teleport v2.0, with their standard texts.
pub mod code {
    /// A frame could not be written (local only).
    pub const WRITE_FAILED: i32 = 100;
    /// The connection closed before the reply arrived (local only).
    pub const CONNECTION_CLOSED: i32 = 101;
    /// Success.
    pub const OK: i32 = 200;
    /// The URI could not be parsed, or the body could not be decoded.
    pub const BAD_URI: i32 = 400;
    /// A plugin refused the caller.
    pub const UNAUTHORIZED: i32 = 401;
    /// No handler for the URI.
    pub const NOT_FOUND: i32 = 404;
    /// The packet type is not pull, reply or push.
    pub const UNSUPPORTED_TX_TYPE: i32 = 410;
    /// The body was over the receiver's `PeerConfig::max_frame_size` and
    /// was skipped (teleport; not in Go v2.0's table).
    pub const PAYLOAD_TOO_LARGE: i32 = 413;
    /// The body codec id is not known to the receiver.
    pub const UNSUPPORTED_CODEC_TYPE: i32 = 415;
    /// A plugin hook failed.
    pub const FAILED_PLUGIN: i32 = 424;
    /// The handler failed or panicked.
    pub const INTERNAL_SERVER_ERROR: i32 = 500;
    /// The handler does not implement this call.
    pub const NOT_IMPLEMENTED: i32 = 501;
    /// A proxy could not reach its upstream, or the upstream failed.
    pub const BAD_GATEWAY: i32 = 502;
    /// The receiver is overloaded or shutting down.
    pub const SERVICE_UNAVAILABLE: i32 = 503;
    /// A proxy's upstream did not answer in time.
    pub const GATEWAY_TIMEOUT: i32 = 504;
}

/// The standard text for a code of the v2.0 table, if it is one.
pub fn standard_text(code: i32) -> Option<&'static str> {
    Some(match code {
        code::WRITE_FAILED => "write failed",
        code::CONNECTION_CLOSED => "Connection Closed",
        code::OK => "OK",
        code::BAD_URI => "Bad URI",
        code::UNAUTHORIZED => "Unauthorized",
        code::NOT_FOUND => "Not Found",
        code::UNSUPPORTED_TX_TYPE => "Unsupported transaction type",
        code::PAYLOAD_TOO_LARGE => "Payload Too Large",
        code::UNSUPPORTED_CODEC_TYPE => "Unsupported codec type",
        code::FAILED_PLUGIN => "Failed Plugin",
        code::INTERNAL_SERVER_ERROR => "Internal Server Error",
        code::NOT_IMPLEMENTED => "Not Implemented",
        code::BAD_GATEWAY => "Bad Gateway",
        code::SERVICE_UNAVAILABLE => "Service Unavailable",
        code::GATEWAY_TIMEOUT => "Gateway Timeout",
        _ => return None,
    })
}

impl Status {
    /// A status with any code and text.
    pub fn new(code: i32, text: impl Into<Cow<'static, str>>) -> Self {
        Status {
            code,
            text: text.into(),
        }
    }

    /// A status with a code of the v2.0 table and its standard text
    /// (`"Unknown Status"` for codes outside the table).
    pub fn from_code(code: i32) -> Self {
        Status::new(code, standard_text(code).unwrap_or("Unknown Status"))
    }

    /// `200 OK`.
    pub fn ok() -> Self {
        Status::from_code(code::OK)
    }
    /// `400 Bad URI`, with a text that says what was wrong.
    pub fn bad_request(text: impl Into<Cow<'static, str>>) -> Self {
        Status::new(code::BAD_URI, text)
    }
    /// `401 Unauthorized`.
    pub fn unauthorized() -> Self {
        Status::from_code(code::UNAUTHORIZED)
    }
    /// `404 Not Found`.
    pub fn not_found() -> Self {
        Status::from_code(code::NOT_FOUND)
    }
    /// `410 Unsupported transaction type`.
    pub fn unsupported_type() -> Self {
        Status::from_code(code::UNSUPPORTED_TX_TYPE)
    }
    /// `415 Unsupported codec type`.
    pub fn unsupported_codec() -> Self {
        Status::from_code(code::UNSUPPORTED_CODEC_TYPE)
    }
    /// `500 Internal Server Error`, with a text.
    pub fn internal(text: impl Into<Cow<'static, str>>) -> Self {
        Status::new(code::INTERNAL_SERVER_ERROR, text)
    }
    /// `500 Internal Server Error` whose text is `error`'s message followed
    /// by the messages of its sources. For `?` on any error type in a
    /// handler or service method (`std::io::Error` and, with the `anyhow`
    /// feature, `anyhow::Error` convert on their own):
    ///
    /// ```
    /// use teleport::Status;
    ///
    /// fn port(text: &str) -> Result<u16, Status> {
    ///     let port = text.trim().parse::<u16>().map_err(Status::from_error)?;
    ///     Ok(port)
    /// }
    /// let err = port("http").unwrap_err();
    /// assert_eq!((err.code(), err.text()), (500, "invalid digit found in string"));
    ///
    /// fn read(path: &str) -> Result<String, Status> {
    ///     Ok(std::fs::read_to_string(path)?)
    /// }
    /// assert_eq!(read("/no/such/file").unwrap_err().code(), 500);
    /// ```
    ///
    /// For another code, build the status yourself:
    /// `.map_err(|e| Status::new(404, e.to_string()))?`.
    pub fn from_error<E: std::error::Error>(error: E) -> Self {
        let mut text = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        Status::internal(text)
    }
    /// `503 Service Unavailable`.
    pub fn unavailable() -> Self {
        Status::from_code(code::SERVICE_UNAVAILABLE)
    }

    /// The numeric code.
    pub fn code(&self) -> i32 {
        self.code
    }
    /// The text.
    pub fn text(&self) -> &str {
        &self.text
    }
    /// Whether this is `200`.
    pub fn is_ok(&self) -> bool {
        self.code == code::OK
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.text)
    }
}

impl fmt::Debug for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Status({} {:?})", self.code, self.text)
    }
}

impl std::error::Error for Status {}

impl From<std::convert::Infallible> for Status {
    fn from(v: std::convert::Infallible) -> Self {
        match v {}
    }
}

/// A `500` carrying the error and its sources, so a handler or service
/// method can use `?` on I/O: see [`Status::from_error`].
impl From<std::io::Error> for Status {
    fn from(error: std::io::Error) -> Self {
        Status::from_error(error)
    }
}

#[cfg(feature = "anyhow")]
impl From<anyhow::Error> for Status {
    /// A `500` carrying the error and its context chain (`{:#}`).
    fn from(error: anyhow::Error) -> Self {
        Status::internal(format!("{error:#}"))
    }
}

impl From<String> for Status {
    /// A `500` carrying the message, for handlers that fail with a string.
    fn from(text: String) -> Self {
        Status::internal(text)
    }
}

impl From<&'static str> for Status {
    /// A `500` carrying the message.
    fn from(text: &'static str) -> Self {
        Status::internal(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_codes_carry_go_texts() {
        assert_eq!(
            Status::from_code(410).text(),
            "Unsupported transaction type"
        );
        assert_eq!(Status::from_code(415).text(), "Unsupported codec type");
        assert_eq!(Status::from_code(777).text(), "Unknown Status");
        assert!(Status::ok().is_ok());
    }
}
