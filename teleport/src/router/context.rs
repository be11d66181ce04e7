//! [`Ctx`]: what a handler knows about the call it serves.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI8, AtomicU16, Ordering};

use bytes::Bytes;

use crate::codec::{CodecError, CodecId, Encode, GzipLevel, encode_section_into, take_payload};
use crate::frame::{
    ByteString, Frame, Header, HeaderCodec, HeaderRef, Kind, Lead, Section, split_uri,
};
use crate::peer::Peer;
use crate::session::Session;
use crate::status::Status;

/// The context of one incoming pull or push.
///
/// It gives the handler the [`Session`] the call came on (to push or pull
/// back to the caller), the [`Peer`], the header with its URI and query, the
/// remote address, and lets it choose the reply's body codec and gzip level.
/// Cloning is cheap.
#[derive(Clone)]
pub struct Ctx {
    inner: Arc<Inner>,
}

struct Inner {
    session: Session,
    header_codec: HeaderCodec,
    header: Header,
    body_codec: Option<CodecId>,
    /// `u16::MAX`: same codec as the pull.
    reply_codec: AtomicU16,
    /// The level the handler chose, or `SAME_GZIP`: the pull's.
    reply_gzip: AtomicI8,
    /// When the caller stops waiting, if its pull said.
    deadline: Option<tokio::time::Instant>,
}

/// A finished call's context, kept by its connection for the next
/// incoming call: one allocation (and its URI's) fewer per call.
pub(crate) struct SpareCtx(Arc<Inner>);

const SAME_CODEC: u16 = u16::MAX;
/// No level chosen: the reply uses the pull's (outside every `GzipLevel`).
const SAME_GZIP: i8 = i8::MIN;

impl fmt::Debug for Ctx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ctx")
            .field("session", &self.inner.session.id())
            .field("remote", &self.remote_addr())
            .field("header", &self.inner.header)
            .finish()
    }
}

impl Ctx {
    /// The context of an incoming frame, and its body. The header moves
    /// into the context, its URI copied out of the read buffer (see
    /// [`Header::detach`]). `now` is when it arrived (the caller's
    /// deadline counts from then). A [`SpareCtx`] of the same session, if
    /// given, lends its allocation and its URI's.
    pub(crate) fn new(
        session: &Session,
        frame: Frame,
        now: tokio::time::Instant,
        spare: Option<SpareCtx>,
    ) -> (Ctx, Bytes) {
        let deadline = (frame.header.timeout_ms > 0)
            .then(|| now + std::time::Duration::from_millis(frame.header.timeout_ms));
        let header_codec = frame.header_codec;
        let body_codec = frame.body_codec().map(CodecId);
        if let Some(SpareCtx(mut inner)) = spare {
            if let Some(reused) = Arc::get_mut(&mut inner) {
                let old_uri = std::mem::take(&mut reused.header.uri);
                reused.header = frame.header;
                // A handler may keep its context long (a long poll): its
                // header must not pin the read buffer its frame came in.
                reused.header.detach(old_uri);
                reused.deadline = deadline;
                reused.header_codec = header_codec;
                reused.body_codec = body_codec;
                *reused.reply_codec.get_mut() = SAME_CODEC;
                *reused.reply_gzip.get_mut() = SAME_GZIP;
                return (Ctx { inner }, frame.body);
            }
        }
        let mut header = frame.header;
        header.detach(ByteString::new());
        let ctx = Ctx {
            inner: Arc::new(Inner {
                deadline,
                session: session.clone(),
                header_codec,
                body_codec,
                header,
                reply_codec: AtomicU16::new(SAME_CODEC),
                reply_gzip: AtomicI8::new(SAME_GZIP),
            }),
        };
        (ctx, frame.body)
    }

    /// This context's allocation for the next call on its session, once
    /// its call is done and nobody else holds it.
    pub(crate) fn into_spare(mut self) -> Option<SpareCtx> {
        Arc::get_mut(&mut self.inner)?;
        Some(SpareCtx(self.inner))
    }

    /// When the caller of this pull stops waiting for the reply, if it said
    /// (a teleport caller with a timeout does; Go v2.0 callers never do).
    /// The handler is dropped at that instant and no reply is sent; a
    /// handler can use it to bound its own work, or pass what is left on to
    /// the pulls it makes.
    ///
    /// ```no_run
    /// use teleport::{Ctx, Router, Status};
    ///
    /// let mut router = Router::new();
    /// router.pull("/report", |ctx: Ctx, (): ()| async move {
    ///     let left = ctx.deadline().map(|d| d - tokio::time::Instant::now());
    ///     Ok::<_, Status>(format!("{left:?} left"))
    /// });
    /// ```
    pub fn deadline(&self) -> Option<tokio::time::Instant> {
        self.inner.deadline
    }

    /// The session the call arrived on: push or pull back to the caller through it.
    pub fn session(&self) -> &Session {
        &self.inner.session
    }

    /// The peer that owns the session.
    pub fn peer(&self) -> &Peer {
        self.inner.session.peer()
    }

    /// The remote address of the session.
    pub fn remote_addr(&self) -> SocketAddr {
        self.inner.session.remote_addr()
    }

    /// The incoming header.
    pub fn header(&self) -> &Header {
        &self.inner.header
    }

    /// The codec the incoming header was encoded with (a reply uses the same).
    pub fn header_codec(&self) -> HeaderCodec {
        self.inner.header_codec
    }

    /// The full URI, with its query.
    pub fn uri(&self) -> &str {
        &self.inner.header.uri
    }

    /// The path of the URI (what routing used).
    pub fn path(&self) -> &str {
        split_uri(&self.inner.header.uri).0
    }

    /// The raw query string (after `?`, empty if none).
    pub fn query_string(&self) -> &str {
        split_uri(&self.inner.header.uri).1
    }

    /// The query's key/value pairs, percent-decoded.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        form_urlencoded::parse(self.query_string().as_bytes())
            .into_owned()
            .collect()
    }

    /// The first value of a query key, percent-decoded.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # fn f(ctx: teleport::Ctx) {
    /// // for the URI "/home/add?x=1"
    /// assert_eq!(ctx.query("x").as_deref(), Some("1"));
    /// # }
    /// ```
    pub fn query(&self, key: &str) -> Option<String> {
        form_urlencoded::parse(self.query_string().as_bytes())
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
    }

    /// The codec of the incoming body, or `None` if it had none.
    pub fn body_codec(&self) -> Option<CodecId> {
        self.inner.body_codec
    }

    /// Replies with this body codec instead of the pull's.
    pub fn set_reply_codec(&self, codec: CodecId) {
        self.inner
            .reply_codec
            .store(codec.0 as u16, Ordering::Relaxed);
    }

    /// Replies with this gzip level instead of the pull's
    /// ([`GzipLevel::NONE`] for none).
    pub fn set_reply_gzip(&self, level: GzipLevel) {
        // -2..=9 fits an i8.
        self.inner
            .reply_gzip
            .store(level.get() as i8, Ordering::Relaxed);
    }

    /// The body codec the reply will use.
    pub fn reply_codec(&self) -> CodecId {
        match self.inner.reply_codec.load(Ordering::Relaxed) {
            SAME_CODEC => self
                .inner
                .body_codec
                .unwrap_or_else(|| self.inner.session.config().body_codec),
            id => CodecId(id as u8),
        }
    }

    /// The gzip level the reply will use: the handler's choice, else the
    /// pull's (none, if the pull named a level outside `-2..=9`).
    pub fn reply_gzip(&self) -> GzipLevel {
        match self.inner.reply_gzip.load(Ordering::Relaxed) {
            SAME_GZIP => GzipLevel::from_wire(self.inner.header.gzip),
            level => GzipLevel::from_wire(i32::from(level)),
        }
    }

    /// A reply carrying `value` with status 200 (see `encode_reply`); a
    /// large `String` or `Vec<u8>` is not encoded but handed over as it is
    /// (`codec::take_payload`): from 8 KiB it reaches the socket with no
    /// copy, below that it is copied once into the write buffer.
    pub(crate) fn reply_value<T: Encode + 'static>(&self, mut value: T) -> Reply {
        let (codec, gzip) = (self.reply_codec(), self.reply_gzip());
        if gzip.is_none() {
            let limit = self.inner.session.config().max_frame_size;
            if let Some((lead, payload)) = take_payload(&mut value, codec, limit) {
                return Reply {
                    status: Status::ok(),
                    gzip: 0,
                    body: Section::Parts(lead, payload),
                };
            }
        }
        self.encode_reply(&value, codec, gzip)
    }

    /// A reply carrying `value` in the reply's codec and gzip level with
    /// status 200, or a 500 if it cannot be encoded.
    fn encode_reply<T: Encode + ?Sized>(
        &self,
        value: &T,
        codec: CodecId,
        gzip: GzipLevel,
    ) -> Reply {
        let config = self.inner.session.config();
        if let (true, Some(payload)) = (gzip.is_none(), value.as_payload()) {
            // Bytes as they are: copied once, straight into the write buffer.
            let len = 1 + payload.len();
            if len <= config.max_frame_size {
                return Reply {
                    status: Status::ok(),
                    gzip: gzip.get(),
                    body: Section::Parts(Lead::codec(codec.0), payload.clone()),
                };
            }
        }
        let mut body = crate::frame::spare::take();
        match encode_section_into(
            value,
            codec,
            gzip,
            &config.codecs,
            config.max_frame_size,
            &mut body,
        ) {
            Ok(()) => Reply {
                status: Status::ok(),
                gzip: gzip.get(),
                body: Section::Vec(body),
            },
            Err(e) => {
                tracing::error!(uri = %self.uri(), error = %e, "cannot encode the reply");
                let text = match e {
                    CodecError::TooLarge { .. } => format!(
                        "cannot encode the reply: {e} (PeerConfig::max_frame_size of the replying peer)"
                    ),
                    other => format!("cannot encode the reply: {other}"),
                };
                self.reply_status(&Status::internal(text))
            }
        }
    }

    /// A body-less reply with a status.
    pub(crate) fn reply_status(&self, status: &Status) -> Reply {
        Reply {
            status: status.clone(),
            gzip: self.inner.header.gzip,
            body: Section::empty(),
        }
    }

    /// The reply as a frame of its own (for the plugin hooks, which may
    /// change it): its header copies the pull's URI.
    pub(crate) fn reply_frame(&self, reply: Reply) -> Frame {
        let header = reply.header(&self.inner.header);
        Frame {
            header_codec: self.inner.header_codec,
            header: Header {
                seq: header.seq,
                kind: header.kind,
                uri: self.inner.header.uri.clone(),
                gzip: header.gzip,
                status_code: header.status_code,
                status: header.status.into(),
                timeout_ms: 0,
            },
            body: reply.body.into_bytes(),
        }
    }
}

/// A pull handler's answer before it is written: its header is made from
/// the pull's when it is encoded, borrowing the URI instead of copying it.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: Status,
    /// The gzip level of `body` (the pull's when there is no body).
    pub(crate) gzip: i32,
    pub(crate) body: Section,
}

impl Reply {
    /// The reply header answering the pull whose header is `pull`: same
    /// seq, URI and (without a body) gzip level.
    pub(crate) fn header<'a>(&'a self, pull: &'a Header) -> HeaderRef<'a> {
        Reply::header_of(&self.status, self.gzip, !self.body.is_empty(), pull)
    }

    /// [`Reply::header`] from a reply's parts, so that its body can be
    /// moved on while the header borrows its status.
    pub(crate) fn header_of<'a>(
        status: &'a Status,
        gzip: i32,
        has_body: bool,
        pull: &'a Header,
    ) -> HeaderRef<'a> {
        HeaderRef {
            seq: pull.seq,
            kind: Kind::Reply,
            uri: &pull.uri,
            gzip: if has_body { gzip } else { pull.gzip },
            status_code: status.code(),
            status: status.text(),
            timeout_ms: 0,
        }
    }
}
