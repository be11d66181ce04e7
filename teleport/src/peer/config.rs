//! [`PeerConfig`]: codecs, timeouts and limits shared by every session of a peer.

use std::time::Duration;

use crate::codec::{CodecId, Codecs, GzipLevel};
use crate::frame::{DEFAULT_MAX_FRAME_SIZE, HeaderCodec};
use crate::plugin::{Plugin, Plugins};

/// How a peer and its sessions behave. Every field has a safe default;
/// change them with the builder methods.
///
/// ```
/// use std::time::Duration;
/// use teleport::{CodecId, PeerConfig};
///
/// let config = PeerConfig::default()
///     .body_codec(CodecId::JSON)
///     .pull_timeout(Some(Duration::from_secs(5)))
///     .max_frame_size(1 << 20);
/// assert_eq!(config.body_codec, CodecId::JSON);
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct PeerConfig {
    /// Header codec of the pulls and pushes this peer sends (replies use the
    /// codec of their pull). Default: protobuf.
    pub header_codec: HeaderCodec,
    /// Body codec of the pulls and pushes this peer sends, and of replies to
    /// body-less pulls. Default: JSON, which Go peers understand.
    pub body_codec: CodecId,
    /// Gzip level of the bodies this peer sends. Default none.
    pub gzip: GzipLevel,
    /// How long a pull waits for its reply unless the call sets its own.
    /// `None` waits until the reply or the end of the session. Default 30 s.
    /// It runs from when the session's connection task takes the pull
    /// (the next pass of that task, microseconds after the call), or from
    /// the call itself when the call first waits for a free place among
    /// `max_pulls_in_flight`.
    pub pull_timeout: Option<Duration>,
    /// Whether a pull with a timeout tells the serving peer how long it
    /// will wait (a header extension Go v2.0 peers skip, see
    /// `docs/PROTOCOL.md`), so that a teleport server drops the handler
    /// once the caller has given up. Turn it off to send pulls
    /// byte-identical to Go v2.0's. Default true.
    pub send_deadlines: bool,
    /// How long dialing may take. Default 10 s.
    pub dial_timeout: Duration,
    /// Largest header and largest body accepted or sent, each, in bytes.
    /// A call over it is refused before it is sent ([`Error::TooLarge`](crate::Error::TooLarge));
    /// an incoming body over it is skipped and its pull answered with 413;
    /// only a header over it closes the connection. Default 8 MiB.
    pub max_frame_size: usize,
    /// Calls that take longer are logged as warnings. Default 1 s.
    pub slow_call: Option<Duration>,
    /// Whether incoming pull and push bodies and outgoing reply bodies are
    /// logged (target `teleport::call`, `trace` level, lossy UTF-8).
    /// Default false.
    pub log_bodies: bool,
    /// Most incoming pulls and pushes handled at once per session; past it
    /// the session stops reading until one finishes (TCP backpressure).
    /// Default 4096.
    pub max_handlers: usize,
    /// How many outgoing pushes may wait for room in the write buffer per
    /// session; callers past it wait (backpressure). Outgoing pulls are
    /// bounded by `max_pulls_in_flight` instead: a pull waiting for room
    /// already counts as in flight, and its timeout runs. Default 1024.
    pub send_queue: usize,
    /// Bytes of written-but-unsent data per session above which the session
    /// stops taking new outgoing frames until the socket drains. Default 1 MiB.
    pub write_buffer: usize,
    /// A session whose socket accepts no data for this long while data is
    /// waiting to be sent is closed. Default 30 s.
    pub write_timeout: Option<Duration>,
    /// A session that receives nothing for this long is closed. Default none.
    pub read_idle_timeout: Option<Duration>,
    /// Set `TCP_NODELAY` on every connection. Default true.
    pub nodelay: bool,
    /// Most pulls this side may have waiting for replies per session; past
    /// it, callers wait (within their timeout) for a slot. Default 65536.
    pub max_pulls_in_flight: usize,
    /// Most live sessions per peer, counting connections still in their TLS
    /// handshake; past it, accepted and attached connections are closed at
    /// once and dials fail with [`PeerError::TooManySessions`](crate::PeerError::TooManySessions). Default 65536.
    pub max_sessions: usize,
    /// Body codecs this peer knows besides the built-in ones.
    pub codecs: Codecs,
    /// Plugins of the whole peer, in the order they run; add them with
    /// [`PeerConfig::plugin`]. Default: none.
    pub plugins: Plugins,
}

impl Default for PeerConfig {
    fn default() -> Self {
        PeerConfig {
            header_codec: HeaderCodec::Protobuf,
            body_codec: CodecId::JSON,
            gzip: GzipLevel::NONE,
            pull_timeout: Some(Duration::from_secs(30)),
            send_deadlines: true,
            dial_timeout: Duration::from_secs(10),
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            slow_call: Some(Duration::from_secs(1)),
            log_bodies: false,
            max_handlers: 4096,
            send_queue: 1024,
            write_buffer: 1 << 20,
            write_timeout: Some(Duration::from_secs(30)),
            read_idle_timeout: None,
            nodelay: true,
            max_pulls_in_flight: 65536,
            max_sessions: 65536,
            codecs: Codecs::default(),
            plugins: Plugins::new(),
        }
    }
}

impl PeerConfig {
    /// Adds a plugin to the whole peer: it sees every session and every
    /// message, after the plugins added before it. See [`plugin`](crate::plugin).
    ///
    /// ```
    /// use teleport::{PeerConfig, Plugin};
    ///
    /// /// Hooks nothing: every stage keeps its default.
    /// struct Quiet;
    /// impl Plugin for Quiet {}
    ///
    /// let config = PeerConfig::default().plugin(Quiet).plugin(Quiet);
    /// assert_eq!(config.plugins.len(), 2);
    /// ```
    #[must_use]
    pub fn plugin(mut self, plugin: impl Plugin) -> Self {
        self.plugins.push(std::sync::Arc::new(plugin));
        self
    }
}

macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident: $ty:ty;)*) => {
        impl PeerConfig {
            $(
                $(#[$doc])*
                #[must_use]
                pub fn $name(mut self, value: $ty) -> Self {
                    self.$name = value;
                    self
                }
            )*
        }
    };
}

setters! {
    /// Sets [`PeerConfig::header_codec`].
    header_codec: HeaderCodec;
    /// Sets [`PeerConfig::body_codec`].
    body_codec: CodecId;
    /// Sets [`PeerConfig::gzip`].
    gzip: GzipLevel;
    /// Sets [`PeerConfig::pull_timeout`].
    pull_timeout: Option<Duration>;
    /// Sets [`PeerConfig::send_deadlines`].
    send_deadlines: bool;
    /// Sets [`PeerConfig::dial_timeout`].
    dial_timeout: Duration;
    /// Sets [`PeerConfig::max_frame_size`].
    max_frame_size: usize;
    /// Sets [`PeerConfig::slow_call`].
    slow_call: Option<Duration>;
    /// Sets [`PeerConfig::log_bodies`].
    log_bodies: bool;
    /// Sets [`PeerConfig::max_handlers`].
    max_handlers: usize;
    /// Sets [`PeerConfig::send_queue`].
    send_queue: usize;
    /// Sets [`PeerConfig::write_buffer`].
    write_buffer: usize;
    /// Sets [`PeerConfig::write_timeout`].
    write_timeout: Option<Duration>;
    /// Sets [`PeerConfig::read_idle_timeout`].
    read_idle_timeout: Option<Duration>;
    /// Sets [`PeerConfig::nodelay`].
    nodelay: bool;
    /// Sets [`PeerConfig::max_pulls_in_flight`].
    max_pulls_in_flight: usize;
    /// Sets [`PeerConfig::max_sessions`].
    max_sessions: usize;
    /// Sets [`PeerConfig::codecs`].
    codecs: Codecs;
}
