//! Errors of calls ([`Error`]) and of peers ([`PeerError`]).
//!
//! This module sits low in the layers: it depends on the frame, codec and
//! status modules only, never on the session, peer or plugin modules that
//! report its errors.
//!
//! A call either gets a reply or ends with exactly one [`Error`]: the remote
//! side's [`Status`] when it answered with a code other than 200, or a local
//! reason (timeout, connection closed, a body that could not be encoded or
//! decoded).

use std::io;
use std::time::Duration;

use crate::codec::CodecError;
use crate::frame::FrameError;
use crate::status::Status;

/// Why a pull or push did not succeed.
///
/// # Examples
///
/// A remote status is one variant among local reasons; the helpers tell
/// them apart, and [`Error::is_not_sent`] says when a retry is safe.
///
/// ```
/// use std::time::Duration;
/// use teleport::{Ctx, Error, Peer, PeerConfig, Router, Status};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut router = Router::new();
/// router
///     .pull("/home/div", |_: Ctx, [a, b]: [i64; 2]| async move {
///         a.checked_div(b).ok_or_else(|| Status::new(599, "division by zero"))
///     })
///     .pull("/home/slow", |_: Ctx, (): ()| async move {
///         tokio::time::sleep(Duration::from_secs(60)).await;
///         Ok::<_, Status>(())
///     });
/// let server = Peer::new(PeerConfig::default(), router);
/// let addr = server.listen("127.0.0.1:0").await?;
/// let session = Peer::new(PeerConfig::default(), Router::new()).dial(addr).await?;
///
/// let err = session.pull::<_, i64>("/home/div", &[1, 0]).await.unwrap_err();
/// assert_eq!(err.status().map(|s| s.code()), Some(599));
/// assert!(err.to_string().contains("599 division by zero"));
///
/// let err = session
///     .pull::<_, ()>("/home/slow", &())
///     .timeout(Duration::from_millis(10))
///     .await
///     .unwrap_err();
/// assert!(err.is_timeout());
///
/// session.close().await;
/// match session.pull::<_, i64>("/home/div", &[4, 2]).await {
///     Err(Error::NotSent { uri, .. }) => assert_eq!(uri, "/home/div"), // safe to retry
///     other => panic!("expected NotSent, got {other:?}"),
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The remote side replied with a status other than 200 (or a local
    /// plugin refused the call with one).
    #[error("{uri}: the remote peer replied {status}")]
    Status {
        /// The URI of the pull.
        uri: String,
        /// The code and text of the reply.
        status: Status,
    },
    /// No reply arrived within the pull's timeout.
    #[error("pull {uri} timed out after {timeout:?} without a reply")]
    Timeout {
        /// The URI of the pull.
        uri: String,
        /// The timeout that passed.
        timeout: Duration,
    },
    /// The call was never written to the connection: the session was
    /// closed (or closing) before its frame left this process, so the remote
    /// side cannot have seen it. Safe to retry on another session.
    #[error("{uri} was not sent: {reason}")]
    NotSent {
        /// The URI of the pull or push.
        uri: String,
        /// Why the session could not take it.
        reason: String,
    },
    /// The call's frame is over the size limit, so it was not sent: raise
    /// `PeerConfig::max_frame_size` on both peers, or send less.
    #[error(
        "{uri} was not sent: its frame {part} of {len} bytes exceeds PeerConfig::max_frame_size ({limit} bytes)"
    )]
    TooLarge {
        /// The URI of the pull or push.
        uri: String,
        /// `"header"` or `"body"`.
        part: &'static str,
        /// The size it reached.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// The reply was over this peer's size limit: its body was skipped (the
    /// session stays usable). Raise `PeerConfig::max_frame_size`, or ask
    /// for less.
    #[error(
        "the reply to {uri} of {len} bytes exceeds PeerConfig::max_frame_size ({limit} bytes); it was skipped"
    )]
    ReplyTooLarge {
        /// The URI of the pull.
        uri: String,
        /// The size of the reply's body.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// The session closed after the call was written and before its reply
    /// arrived: the remote side may or may not have handled it.
    #[error("connection closed: {reason}")]
    ConnectionClosed {
        /// Why the session ended, as far as this side knows.
        reason: String,
    },
    /// The argument could not be encoded, or the reply body decoded.
    #[error(transparent)]
    Codec(#[from] CodecError),
}

impl Error {
    /// The status a remote side replied with, if this is [`Error::Status`].
    pub fn status(&self) -> Option<&Status> {
        match self {
            Error::Status { status, .. } => Some(status),
            _ => None,
        }
    }

    /// Whether this error is a timeout.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout { .. })
    }

    /// Whether the session was (or became) closed, before or after the
    /// call was sent.
    pub fn is_connection_closed(&self) -> bool {
        matches!(self, Error::ConnectionClosed { .. } | Error::NotSent { .. })
    }

    /// Whether the call provably never reached the wire because its session
    /// could not take it ([`Error::NotSent`]), so retrying it on another
    /// session cannot run it twice. ([`Error::TooLarge`] was not sent either,
    /// but would fail the same way anywhere.)
    pub fn is_not_sent(&self) -> bool {
        matches!(self, Error::NotSent { .. })
    }

    pub(crate) fn not_sent(uri: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::NotSent {
            uri: uri.into(),
            reason: reason.into(),
        }
    }

    /// A call refused by the frame size limit.
    pub(crate) fn too_large(uri: impl Into<String>, e: FrameError) -> Self {
        match e {
            FrameError::TooLarge { part, len, limit } => Error::TooLarge {
                uri: uri.into(),
                part,
                len,
                limit,
            },
            other => Error::not_sent(uri, other.to_string()),
        }
    }

    /// A status reply to a call of `uri`.
    pub(crate) fn remote_status(uri: impl Into<String>, status: Status) -> Self {
        Error::Status {
            uri: uri.into(),
            status,
        }
    }

    pub(crate) fn closed(reason: impl Into<String>) -> Self {
        Error::ConnectionClosed {
            reason: reason.into(),
        }
    }
}

/// Why a peer could not listen, dial or keep a connection.
///
/// # Examples
///
/// ```
/// use teleport::{Peer, PeerConfig, PeerError, Router};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// // A port that was just free: nothing listens there.
/// let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
/// let addr = free.local_addr().unwrap();
/// drop(free);
///
/// let peer = Peer::new(PeerConfig::default(), Router::new());
/// match peer.dial(addr).await {
///     Err(PeerError::Dial { addr: dialed, source }) => {
///         assert_eq!(dialed, addr.to_string());
///         assert_eq!(source.kind(), std::io::ErrorKind::ConnectionRefused);
///     }
///     other => panic!("expected a dial error, got {other:?}"),
/// }
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PeerError {
    /// Binding a listening socket failed.
    #[error("cannot listen on {addr}")]
    Listen {
        /// The address asked for.
        addr: String,
        /// The operating system's error.
        source: io::Error,
    },
    /// Connecting to a remote peer failed.
    #[error("cannot dial {addr}")]
    Dial {
        /// The address dialed.
        addr: String,
        /// The operating system's error.
        source: io::Error,
    },
    /// Connecting did not finish within the dial timeout.
    #[error("dialing {addr} timed out after {timeout:?}")]
    DialTimeout {
        /// The address dialed.
        addr: String,
        /// The dial timeout.
        timeout: Duration,
    },
    /// A plugin's `after_dial` hook refused the new session (it was closed).
    #[error(transparent)]
    Refused(#[from] SessionRefused),
    /// The peer already has `max_sessions` live sessions.
    #[error("the peer already has {limit} sessions (PeerConfig::max_sessions)")]
    TooManySessions {
        /// The configured limit.
        limit: usize,
    },
    /// The peer is shutting down and takes no new sessions.
    #[error("the peer is shutting down")]
    ShuttingDown,
    /// The framing of a connection broke.
    #[error(transparent)]
    Frame(#[from] FrameError),
}

/// A session hook refused the session.
///
/// [`Peer::dial`](crate::Peer::dial) reports it as
/// [`PeerError::Refused`]; it is also the session's close reason. Reached
/// as `teleport::plugin::SessionRefused`.
///
/// ```
/// use teleport::PeerError;
/// use teleport::plugin::SessionRefused;
///
/// /// The refusal behind a failed dial, if a plugin refused it.
/// fn refusal(err: &PeerError) -> Option<&SessionRefused> {
///     match err {
///         PeerError::Refused(r) => Some(r),
///         _ => None,
///     }
/// }
/// # let _ = refusal;
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[error("plugin {plugin} refused the session in {stage}: {status}")]
#[non_exhaustive]
pub struct SessionRefused {
    /// The plugin's name.
    pub plugin: String,
    /// `after_dial` or `after_accept`.
    pub stage: &'static str,
    /// The status it failed with.
    pub status: Status,
}
