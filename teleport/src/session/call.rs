//! Calls: pulls and pushes, their per-call options, and how they are sent.
//!
//! (Longer than most files: the builders, their futures and the send path
//! are one concept, a call from the caller's side, and read best together.)
//!
//! [`Session::pull`] and [`Session::push`] return builders ([`Pull`],
//! [`Push`]) whose options (body codec, header codec, gzip level, timeout)
//! are the fields of [`CallOptions`]; every setter is written once, in
//! [`option_setters!`], for all three. A call's argument is encoded on the
//! caller's task; the connection task only moves frames.

use std::fmt;
use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::oneshot;

use super::reply_slot::{self, Replied};
use super::{Command, Deadline, PushSlot, Session, Shared};

/// Why a call on a session whose remote peer is going away was not sent.
const GOING_AWAY: &str =
    "the remote peer is going away (shutting down or restarting); retry on another session";
use crate::codec::{
    CodecError, CodecId, Decode, Encode, GzipLevel, decode_section_bytes, encode_section,
    encode_section_into, take_payload,
};
use crate::error::Error;
use crate::frame::{
    Frame, Header, HeaderCodec, HeaderRef, Kind, Lead, begin_frame, begin_frame_sized, check_size,
    encode_frame, end_frame, spare,
};

/// The per-call option setters, written once for [`CallOptions`], [`Pull`]
/// and [`Push`]: each stores into `self.options` (for `CallOptions`, into
/// itself). Pushes have no reply to wait for, so no timeout.
macro_rules! option_setters {
    (pull) => {
        option_setters!(push);
        /// Waits at most this long for the reply: a `Duration`, or `None`
        /// to wait until the reply or the end of the session, the same
        /// spelling as `PeerConfig::pull_timeout` (the default).
        pub fn timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
            self.options_mut().timeout = Some(timeout.into());
            self
        }
    };
    (push) => {
        /// Encodes the argument with this body codec (default:
        /// `PeerConfig::body_codec`); the reply comes back in the codec the
        /// handler picks.
        pub fn codec(mut self, codec: CodecId) -> Self {
            self.options_mut().codec = Some(codec);
            self
        }
        /// Encodes the header with this codec (default: `PeerConfig::header_codec`).
        pub fn header_codec(mut self, codec: HeaderCodec) -> Self {
            self.options_mut().header_codec = Some(codec);
            self
        }
        /// Compresses the argument at this gzip level (default:
        /// `PeerConfig::gzip`): `GzipLevel::L5`, `GzipLevel::NONE`, or
        /// `GzipLevel::new(n)?` for a number read at run time.
        pub fn gzip(mut self, level: GzipLevel) -> Self {
            self.options_mut().gzip = Some(level);
            self
        }
    };
}

/// Per-call settings; anything left `None` uses the peer's default.
///
/// The same setters exist on [`Pull`] and [`Push`]; a `CallOptions` value
/// is for giving many calls the same options (generated clients take one
/// in `with_options`).
///
/// ```no_run
/// # #[allow(dead_code)]
/// # async fn demo(session: teleport::Session) -> Result<(), teleport::Error> {
/// use std::time::Duration;
/// use teleport::{CallOptions, CodecId, GzipLevel};
///
/// let options = CallOptions::default()
///     .codec(CodecId::JSON)
///     .gzip(GzipLevel::L5)
///     .timeout(Duration::from_secs(2));
/// let sum: i64 = session.pull_with("/home/add", &[40, 2], options).await?;
/// assert_eq!(sum, 42);
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
#[must_use = "options do nothing until a call uses them"]
pub struct CallOptions {
    /// Body codec of the argument (the reply comes back in the codec the handler picks).
    pub codec: Option<CodecId>,
    /// Header codec of the pull or push.
    pub header_codec: Option<HeaderCodec>,
    /// Gzip level of the argument's body.
    pub gzip: Option<GzipLevel>,
    /// How long a pull waits for its reply: `None` uses
    /// `PeerConfig::pull_timeout`; `Some(None)` waits until the reply or the
    /// end of the session, as `pull_timeout(None)` does for the whole peer.
    pub timeout: Option<Option<Duration>>,
}

impl CallOptions {
    option_setters!(pull);

    fn options_mut(&mut self) -> &mut CallOptions {
        self
    }
}

impl Session {
    /// Starts a pull of `uri` with `arg`; `.await` it for the reply decoded
    /// as `Resp`, or set per-call options first (`.codec()`, `.gzip()`,
    /// `.timeout()`, `.header_codec()`).
    ///
    /// # Errors
    ///
    /// [`Error::Status`] when the remote side replies with a status other
    /// than 200; [`Error::Timeout`]; [`Error::ConnectionClosed`];
    /// [`Error::Codec`] when the argument cannot be encoded or the reply
    /// decoded.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before it completes abandons the pull: its slot
    /// is freed and a late reply is discarded.
    pub fn pull<'a, Req, Resp>(&'a self, uri: &'a str, arg: &'a Req) -> Pull<'a, Req, Resp>
    where
        Req: Encode + ?Sized,
        Resp: Decode,
    {
        Pull {
            session: self,
            uri,
            arg,
            options: CallOptions::default(),
            _resp: PhantomData,
        }
    }

    /// Pulls with explicit options; the same as [`Session::pull`] with the
    /// options set, without boxing the future.
    ///
    /// # Errors
    ///
    /// As [`Session::pull`].
    pub fn pull_with<Req, Resp>(
        &self,
        uri: &str,
        arg: &Req,
        options: CallOptions,
    ) -> impl Future<Output = Result<Resp, Error>>
    where
        Req: Encode + ?Sized,
        Resp: Decode,
    {
        // Not an `async fn`: the argument is encoded when the future is
        // first polled, inside the one future of `finish_pull`.
        self.finish_pull(uri, options.timeout, move |session| {
            session.prepare(Kind::Pull, uri, arg, &options)
        })
    }

    /// [`Session::pull_with`] of an argument the caller gives up: a large
    /// `String` (bincode or the string codec) or `Vec<u8>` (bincode) is
    /// then not encoded but queued from its own buffer, when the call has
    /// no gzip and the peer no plugins: from 8 KiB it reaches the socket
    /// with no copy, below that it is copied once into the connection's
    /// write buffer. Other arguments are encoded as by `pull_with`. What
    /// generated clients call for a one-argument pull.
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # async fn demo(session: teleport::Session) -> Result<(), teleport::Error> {
    /// let page = "x".repeat(64 * 1024);
    /// let echoed: String = session
    ///     .pull_owned("/home/echo", page, teleport::CallOptions::default())
    ///     .await?;
    /// assert_eq!(echoed.len(), 64 * 1024);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Session::pull`].
    pub fn pull_owned<Req, Resp>(
        &self,
        uri: &str,
        arg: Req,
        options: CallOptions,
    ) -> impl Future<Output = Result<Resp, Error>>
    where
        Req: Encode + 'static,
        Resp: Decode,
    {
        self.finish_pull(uri, options.timeout, move |session| {
            let mut arg = arg;
            let plan = session.body_plan(&options);
            let taken = plan
                .as_is
                .then(|| take_payload(&mut arg, plan.codec, plan.limit))
                .flatten();
            session.prepare_with(Kind::Pull, uri, &arg, &options, plan, taken)
        })
    }

    /// Sends a one-way push of `uri` with `arg`. `.await` returns once the
    /// push is queued for the connection (not when it is handled).
    ///
    /// # Errors
    ///
    /// [`Error::ConnectionClosed`] or [`Error::Codec`].
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before it completes may or may not send the push.
    pub fn push<'a, Req>(&'a self, uri: &'a str, arg: &'a Req) -> Push<'a, Req>
    where
        Req: Encode + ?Sized,
    {
        Push {
            session: self,
            uri,
            arg,
            options: CallOptions::default(),
            flushed: false,
        }
    }

    /// Pushes with explicit options.
    ///
    /// # Errors
    ///
    /// As [`Session::push`].
    pub async fn push_with<Req>(
        &self,
        uri: &str,
        arg: &Req,
        options: CallOptions,
    ) -> Result<(), Error>
    where
        Req: Encode + ?Sized,
    {
        let prepared = self.prepare(Kind::Push, uri, arg, &options);
        self.finish_push(prepared, false).await
    }

    /// Pulls with an already-encoded body section and returns the reply
    /// frame whatever its status (for proxies and gateways).
    ///
    /// `body` is a body section as on the wire (codec id byte, then the
    /// payload, compressed at `gzip` if that is not 0), or empty.
    ///
    /// # Errors
    ///
    /// [`Error::TooLarge`] when `body` is over `PeerConfig::max_frame_size`;
    /// [`Error::Timeout`], [`Error::NotSent`] or [`Error::ConnectionClosed`];
    /// a non-200 reply is returned as a frame, not an error.
    pub async fn pull_raw(
        &self,
        uri: &str,
        gzip: i32,
        body: Bytes,
        options: CallOptions,
    ) -> Result<Frame, Error> {
        self.send_pull_then(
            uri,
            options.timeout,
            move |session| session.prepare_raw(Kind::Pull, uri, gzip, body, &options),
            |_, reply| Ok(reply.into_frame()),
        )
        .await
    }

    /// Pushes an already-encoded body section (for proxies and gateways).
    ///
    /// # Errors
    ///
    /// [`Error::ConnectionClosed`].
    pub async fn push_raw(
        &self,
        uri: &str,
        gzip: i32,
        body: Bytes,
        options: CallOptions,
    ) -> Result<(), Error> {
        let prepared = self.prepare_raw(Kind::Push, uri, gzip, body, &options);
        self.finish_push(prepared, false).await
    }

    /// Encodes the call on the caller's task: its header and its argument,
    /// straight into the one buffer the connection task will copy into its
    /// write buffer (or, when plugins must see the frame before it is
    /// written, into parts they can change).
    fn prepare<Req: Encode + ?Sized>(
        &self,
        kind: Kind,
        uri: &str,
        arg: &Req,
        options: &CallOptions,
    ) -> Prepared {
        self.prepare_with(kind, uri, arg, options, self.body_plan(options), None)
    }

    /// How a call's body goes out, from its options over the peer's
    /// defaults: the one place these are derived.
    fn body_plan(&self, options: &CallOptions) -> BodyPlan {
        let config = &self.shared.config;
        let level = options.gzip.unwrap_or(config.gzip);
        BodyPlan {
            codec: options.codec.unwrap_or(config.body_codec),
            level,
            header_codec: options.header_codec.unwrap_or(config.header_codec),
            limit: config.max_frame_size.min(u32::MAX as usize),
            as_is: level.is_none() && config.plugins.is_empty(),
        }
    }

    /// [`Session::prepare`] by `plan`, with the payload already taken out
    /// of the argument when it is its own bytes (`codec::take_payload`,
    /// only when `plan.as_is`).
    fn prepare_with<Req: Encode + ?Sized>(
        &self,
        kind: Kind,
        uri: &str,
        arg: &Req,
        options: &CallOptions,
        plan: BodyPlan,
        taken: Option<(Lead, Bytes)>,
    ) -> Prepared {
        let config = &self.shared.config;
        let BodyPlan {
            codec,
            level,
            header_codec,
            limit,
            as_is,
        } = plan;
        let body_error = |e: CodecError| match e {
            CodecError::TooLarge { len, limit } => Error::TooLarge {
                uri: uri.to_owned(),
                part: "body",
                len,
                limit,
            },
            other => Error::Codec(other),
        };
        let seq = self.next_seq(kind);
        if !config.plugins.is_empty() {
            let body =
                encode_section(arg, codec, level, &config.codecs, limit).map_err(body_error)?;
            return Ok(Call::Parts(Box::new((
                header_codec,
                owned_header(seq, kind, uri, level.get(), self.timeout_ms(kind, options)),
                body,
            ))));
        }
        let header = header_ref(seq, kind, uri, level.get(), self.timeout_ms(kind, options));
        let mut bytes = spare::take();
        let payload = taken.or_else(|| {
            arg.as_payload()
                .filter(|_| as_is)
                .map(|payload| (Lead::codec(codec.0), payload.clone()))
        });
        if let Some((lead, payload)) = payload {
            // Bytes as they are: the connection task queues them after the
            // header (copied into its write buffer when small).
            let lead = lead.as_slice();
            begin_frame_sized(
                header_codec,
                header,
                lead.len() + payload.len(),
                limit,
                &mut bytes,
            )
            .map_err(|e| Error::too_large(uri, e))?;
            bytes.extend_from_slice(lead);
            return Ok(Call::Encoded(Outgoing {
                seq,
                bytes,
                tail: payload,
                header: None,
            }));
        }
        let body_at = begin_frame(header_codec, header, spare::BODY_HINT, limit, &mut bytes)
            .map_err(|e| Error::too_large(uri, e))?;
        encode_section_into(arg, codec, level, &config.codecs, limit, &mut bytes)
            .map_err(body_error)?;
        end_frame(&mut bytes, body_at);
        Ok(Call::Encoded(Outgoing {
            seq,
            bytes,
            tail: Bytes::new(),
            header: None,
        }))
    }

    /// Prepares an already-encoded body section, checked against the frame
    /// size limit.
    fn prepare_raw(
        &self,
        kind: Kind,
        uri: &str,
        gzip: i32,
        body: Bytes,
        options: &CallOptions,
    ) -> Prepared {
        let config = &self.shared.config;
        check_size("body", body.len(), config.max_frame_size)
            .map_err(|e| Error::too_large(uri, e))?;
        let header_codec = self.body_plan(options).header_codec;
        let seq = self.next_seq(kind);
        if !config.plugins.is_empty() {
            return Ok(Call::Parts(Box::new((
                header_codec,
                owned_header(seq, kind, uri, gzip, self.timeout_ms(kind, options)),
                body,
            ))));
        }
        let mut bytes = spare::take();
        encode_frame(
            header_codec,
            header_ref(seq, kind, uri, gzip, self.timeout_ms(kind, options)),
            &body,
            config.max_frame_size,
            &mut bytes,
        )
        .map_err(|e| Error::too_large(uri, e))?;
        Ok(Call::Encoded(Outgoing {
            seq,
            bytes,
            tail: Bytes::new(),
            header: None,
        }))
    }

    /// The deadline a pull carries to the serving peer (`Header::timeout_ms`):
    /// its timeout in whole milliseconds, at least 1; 0 for none (pushes,
    /// pulls that wait forever, `PeerConfig::send_deadlines` off).
    fn timeout_ms(&self, kind: Kind, options: &CallOptions) -> u64 {
        let config = &self.shared.config;
        if kind != Kind::Pull || !config.send_deadlines {
            return 0;
        }
        match options.timeout.unwrap_or(config.pull_timeout) {
            // Whole milliseconds, at least 1: 0 means no deadline.
            Some(t) => u64::try_from(t.as_millis()).unwrap_or(u64::MAX).max(1),
            None => 0,
        }
    }

    /// The next sequence number of a pull or a push (each kind counts its own).
    fn next_seq(&self, kind: Kind) -> u64 {
        let counter = if kind == Kind::Push {
            &self.shared.push_seq
        } else {
            &self.shared.pull_seq
        };
        counter.fetch_add(1, Ordering::Relaxed)
    }

    /// The call ready for the connection task: encoded already, or after
    /// the peer plugins' `before_write_pull`/`before_write_push` hooks.
    fn outgoing(&self, call: Call) -> Result<Outgoing, Error> {
        let (header_codec, header, body) = match call {
            Call::Encoded(outgoing) => return Ok(outgoing),
            Call::Parts(parts) => {
                let (header_codec, header, body) = *parts;
                self.before_write(header_codec, header, body)?
            }
        };
        let mut bytes = spare::take();
        encode_frame(
            header_codec,
            header.as_ref(),
            &body,
            self.shared.config.max_frame_size,
            &mut bytes,
        )
        .map_err(|e| Error::too_large(&*header.uri, e))?;
        Ok(Outgoing {
            seq: header.seq,
            bytes,
            tail: Bytes::new(),
            header: Some(Box::new(header)),
        })
    }

    /// Prepares a pull (`prepare`, when the future is first polled), sends
    /// it and decodes its reply: the pull of [`Session::pull_with`] and
    /// [`Session::pull_owned`]. Neither they nor this are `async fn`s, so
    /// that the caller awaits one state machine (`send_pull_then`'s), not
    /// three nested ones, each moved into the next when it starts.
    fn finish_pull<Resp: Decode>(
        &self,
        uri: &str,
        timeout: Option<Option<Duration>>,
        prepare: impl FnOnce(&Self) -> Prepared,
    ) -> impl Future<Output = Result<Resp, Error>> {
        self.send_pull_then(uri, timeout, prepare, move |session, reply| {
            let status = reply.status_code;
            // Go v2.0 always sets 200; 0 (the field left out) is read as success too.
            if status != crate::status::code::OK && status != 0 {
                return Err(Error::remote_status(uri, reply.status()));
            }
            let config = &session.shared.config;
            Ok(decode_section_bytes(
                &reply.body,
                reply.gzip,
                &config.codecs,
                config.max_frame_size,
            )?)
        })
    }

    /// Prepares a pull (`prepare`, run when the future is first polled),
    /// sends it, waits for its reply and ends with `then` of the reply
    /// frame. `uri` is the caller's (borrowed for errors and
    /// logs, so nothing is cloned per call).
    ///
    /// The pull's deadline is kept by the connection task (one timer per
    /// session, see `pending`); a timer of its own runs only while the
    /// caller waits for a free slot.
    async fn send_pull_then<R>(
        &self,
        uri: &str,
        timeout: Option<Option<Duration>>,
        prepare: impl FnOnce(&Self) -> Prepared,
        then: impl FnOnce(&Self, Replied) -> Result<R, Error>,
    ) -> Result<R, Error> {
        let call = prepare(self)?;
        if self.is_going_away() {
            return Err(Error::not_sent(uri, GOING_AWAY));
        }
        let frame = self.outgoing(call)?;
        let seq = frame.seq;
        let timeout = timeout.unwrap_or(self.shared.config.pull_timeout);
        let start =
            tracing::enabled!(target: "teleport::call", tracing::Level::DEBUG).then(Instant::now);
        let timed_out = || Error::Timeout {
            uri: uri.to_owned(),
            timeout: timeout.unwrap_or_default(),
        };
        let (tx, rx) = reply_slot::channel();
        // Bounded pulls in flight: past the limit the caller waits for a
        // slot, within its timeout. Only then does it read the clock; else
        // the timeout runs from when the connection task takes the pull
        // (in its next round; the task reads the clock once per round).
        let (_slot, deadline) = match self.shared.pull_slots.try_take() {
            Some(slot) => (slot, timeout.map(Deadline::After)),
            None => {
                let now = tokio::time::Instant::now();
                let at = timeout.and_then(|t| Deadline::After(t).at(now));
                let slot = within(at, self.shared.pull_slots.take())
                    .await
                    .ok_or_else(timed_out)?;
                (slot, at.map(Deadline::At))
            }
        };
        let cmd = Command::Pull {
            frame,
            reply: tx,
            deadline,
        };
        // Unbounded: the slot above bounds it.
        if self.shared.commands.send(cmd).is_err() {
            return Err(self.not_sent_error(uri));
        }
        let mut guard = CancelOnDrop {
            shared: &self.shared,
            seq,
            armed: true,
        };
        let received = rx.await;
        guard.armed = false;
        let result = match received {
            // The connection task's timer: the caller names the URI.
            Ok(Err(Error::Timeout { .. })) => Err(timed_out()),
            Ok(result) => result,
            Err(_) => Err(self.closed_error()),
        };
        if let Some(start) = start {
            let cost = start.elapsed();
            let status = match &result {
                Ok(reply) => reply.status_code,
                Err(Error::Status { status, .. }) => status.code(),
                Err(_) => 0,
            };
            tracing::debug!(target: "teleport::call", kind = "pull-launch", session = self.id(), remote = %self.remote_addr(), %uri, seq, status, ?cost, ok = result.is_ok());
        }
        then(self, result?)
    }

    /// Queues a prepared push; with `flushed`, waits until it is written.
    async fn finish_push(&self, prepared: Prepared, flushed: bool) -> Result<(), Error> {
        let call = prepared?;
        if self.is_going_away() {
            let uri = match &call {
                Call::Encoded(frame) => frame.uri(),
                Call::Parts(parts) => parts.1.uri.to_string(),
            };
            return Err(Error::not_sent(uri, GOING_AWAY));
        }
        let frame = self.outgoing(call)?;
        tracing::debug!(target: "teleport::call", kind = "push-launch", session = self.id(), remote = %self.remote_addr(), uri = %frame.uri(), seq = frame.seq, size = frame.bytes.len());
        // A place among the pushes waiting for room (`send_queue`): past
        // it, the caller waits (backpressure).
        let place = match self.shared.push_slots.try_take() {
            Some(place) => place,
            None => self.shared.push_slots.take().await,
        };
        // The place travels with the push; the connection task gives it
        // back once the push is in the write buffer (`PushSlot`).
        place.keep();
        let slot = PushSlot(Arc::clone(&self.shared));
        let (tx, rx) = if flushed {
            let (tx, rx) = oneshot::channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let uri = flushed.then(|| frame.uri());
        if let Err(unsent) = self.shared.commands.send(Command::Push {
            frame,
            flushed: tx,
            slot,
        }) {
            let uri = match unsent {
                Command::Push { frame, .. } => frame.uri(),
                _ => String::new(),
            };
            return Err(self.not_sent_error(&uri));
        }
        match (rx, uri) {
            (Some(rx), Some(uri)) => rx.await.unwrap_or_else(|_| {
                Err(Error::closed(format!(
                    "the session ended before the push of {uri} was known to be written"
                )))
            }),
            _ => Ok(()),
        }
    }
}

impl Session {
    /// Runs the peer plugins' `before_write_pull`/`before_write_push` hooks.
    fn before_write(
        &self,
        header_codec: HeaderCodec,
        header: Header,
        body: Bytes,
    ) -> Result<Parts, Error> {
        let mut frame = Frame {
            header_codec,
            header,
            body,
        };
        crate::plugin::before_write(&self.shared.config.plugins, self, &mut frame)
            .map_err(|status| Error::remote_status(frame.header.uri.clone(), status))?;
        Ok((frame.header_codec, frame.header, frame.body))
    }
}

type Parts = (HeaderCodec, Header, Bytes);
type Prepared = Result<Call, Error>;

/// How a call's body is written ([`Session::body_plan`]).
#[derive(Clone, Copy)]
struct BodyPlan {
    codec: CodecId,
    level: GzipLevel,
    header_codec: HeaderCodec,
    /// The body size limit (`PeerConfig::max_frame_size`, at most `u32::MAX`).
    limit: usize,
    /// A payload that is already bytes may go as it is: no gzip, and no
    /// plugin to see the frame before it is written.
    as_is: bool,
}

/// A call after [`Session::prepare`]. Its size matters: it is moved, as
/// part of the pull's future, several times per call (moves past a few
/// hundred bytes are `memcpy` calls), hence the boxes on the plugin path.
enum Call {
    /// Encoded whole (no plugin to run first).
    Encoded(Outgoing),
    /// Header and body section for the plugins' before-write hooks.
    Parts(Box<Parts>),
}

/// A pull or push encoded on the caller's task, ready for the connection
/// task: the whole frame, header and body, in one buffer that the
/// connection task copies into its write buffer as it is.
pub(crate) struct Outgoing {
    /// The sequence number in its header.
    pub(crate) seq: u64,
    /// The encoded frame (all of it, or all but `tail`).
    pub(crate) bytes: Vec<u8>,
    /// The end of the body when it is shared bytes ([`RawBody`](crate::codec::RawBody)):
    /// written after `bytes` without a copy into them first.
    pub(crate) tail: Bytes,
    /// The header, kept only for the plugins' after-write hooks (boxed:
    /// see [`Call`]).
    pub(crate) header: Option<Box<Header>>,
}

impl Drop for Outgoing {
    fn drop(&mut self) {
        // Written (copied into the write buffer) or dropped: either way the
        // buffer serves the next call on this thread.
        spare::give(std::mem::take(&mut self.bytes));
    }
}

impl Outgoing {
    /// The call's URI, read back from the encoded frame: only the errors
    /// of calls that were not sent need it, so the common path keeps no
    /// copy of it. Empty once the frame's bytes have been queued (a large
    /// frame's move into the outbox): read it before.
    pub(crate) fn uri(&self) -> String {
        if let Some(header) = &self.header {
            return header.uri.to_string();
        }
        let b = &self.bytes;
        let Some(&[l0, l1, l2, l3, codec]) = b.get(..5) else {
            return String::new();
        };
        let header_len = u32::from_be_bytes([l0, l1, l2, l3]) as usize;
        HeaderCodec::from_id(codec)
            .zip(b.get(5..4 + header_len))
            .and_then(|(codec, header)| Header::decode(codec, header).ok())
            .map(|h| h.uri.into())
            .unwrap_or_default()
    }
}

/// Tells the connection task to forget a pull whose caller stopped waiting
/// (timeout or a dropped future), so its slot is freed at once.
struct CancelOnDrop<'a> {
    shared: &'a Shared,
    seq: u64,
    armed: bool,
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        if self.armed {
            // If the session has ended meanwhile, there is nothing to free.
            let _ = self.shared.commands.send(Command::Cancel { seq: self.seq });
        }
    }
}

/// `fut`, given up (`None`) once `deadline` passes, if there is one.
async fn within<F: Future>(deadline: Option<tokio::time::Instant>, fut: F) -> Option<F::Output> {
    match deadline {
        Some(at) => tokio::time::timeout_at(at, fut).await.ok(),
        None => Some(fut.await),
    }
}

fn header_ref(seq: u64, kind: Kind, uri: &str, gzip: i32, timeout_ms: u64) -> HeaderRef<'_> {
    HeaderRef {
        seq,
        kind,
        uri,
        gzip,
        status_code: 0,
        status: "",
        timeout_ms,
    }
}

fn owned_header(seq: u64, kind: Kind, uri: &str, gzip: i32, timeout_ms: u64) -> Header {
    Header {
        seq,
        kind,
        uri: uri.into(),
        gzip,
        timeout_ms,
        ..Header::default()
    }
}

/// A pull being set up: `.await` it, or set options first. Made by [`Session::pull`].
#[must_use = "a pull does nothing until it is awaited"]
pub struct Pull<'a, Req: ?Sized, Resp> {
    session: &'a Session,
    uri: &'a str,
    arg: &'a Req,
    options: CallOptions,
    _resp: PhantomData<fn() -> Resp>,
}

impl<Req: ?Sized, Resp> fmt::Debug for Pull<'_, Req, Resp> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pull")
            .field("uri", &self.uri)
            .field("options", &self.options)
            .finish()
    }
}

impl<Req: ?Sized, Resp> Pull<'_, Req, Resp> {
    option_setters!(pull);

    /// Replaces all options.
    pub fn options(mut self, options: CallOptions) -> Self {
        self.options = options;
        self
    }

    fn options_mut(&mut self) -> &mut CallOptions {
        &mut self.options
    }
}

/// The future of a [`Pull`].
#[must_use = "futures do nothing unless polled"]
pub struct PullFuture<'a, Resp> {
    inner: Pin<Box<dyn Future<Output = Result<Resp, Error>> + Send + 'a>>,
}

impl<Resp> fmt::Debug for PullFuture<'_, Resp> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PullFuture")
    }
}

impl<Resp> Future for PullFuture<'_, Resp> {
    type Output = Result<Resp, Error>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl<'a, Req, Resp> IntoFuture for Pull<'a, Req, Resp>
where
    Req: Encode + ?Sized,
    Resp: Decode + Send + 'a,
{
    type Output = Result<Resp, Error>;
    type IntoFuture = PullFuture<'a, Resp>;

    fn into_future(self) -> PullFuture<'a, Resp> {
        // The argument is encoded now, on the caller's task; the future only
        // borrows the session and the URI.
        let prepared = self
            .session
            .prepare(Kind::Pull, self.uri, self.arg, &self.options);
        let (session, uri, timeout) = (self.session, self.uri, self.options.timeout);
        PullFuture {
            inner: Box::pin(session.finish_pull(uri, timeout, move |_| prepared)),
        }
    }
}

/// A push being set up: `.await` it, or set options first. Made by [`Session::push`].
#[must_use = "a push does nothing until it is awaited"]
pub struct Push<'a, Req: ?Sized> {
    session: &'a Session,
    uri: &'a str,
    arg: &'a Req,
    options: CallOptions,
    flushed: bool,
}

impl<Req: ?Sized> fmt::Debug for Push<'_, Req> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Push")
            .field("uri", &self.uri)
            .field("options", &self.options)
            .finish()
    }
}

impl<Req: ?Sized> Push<'_, Req> {
    option_setters!(push);

    /// Waits until the push has been written to the socket, not only
    /// queued: once `.await` returns `Ok`, the push is on the wire even if
    /// the process exits right after. If the session ends first, the push
    /// fails with [`Error::NotSent`] (never written) or
    /// [`Error::ConnectionClosed`] (may have been written in part).
    ///
    /// ```no_run
    /// # #[allow(dead_code)]
    /// # async fn f(session: teleport::Session) -> Result<(), teleport::Error> {
    /// session.push("/log/line", &"last words").flushed().await?;
    /// # Ok(()) }
    /// ```
    pub fn flushed(mut self) -> Self {
        self.flushed = true;
        self
    }

    /// Replaces all options.
    pub fn options(mut self, options: CallOptions) -> Self {
        self.options = options;
        self
    }

    fn options_mut(&mut self) -> &mut CallOptions {
        &mut self.options
    }
}

/// The future of a [`Push`].
#[must_use = "futures do nothing unless polled"]
pub struct PushFuture {
    inner: Pin<Box<dyn Future<Output = Result<(), Error>> + Send>>,
}

impl fmt::Debug for PushFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PushFuture")
    }
}

impl Future for PushFuture {
    type Output = Result<(), Error>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl<Req: Encode + ?Sized> IntoFuture for Push<'_, Req> {
    type Output = Result<(), Error>;
    type IntoFuture = PushFuture;

    fn into_future(self) -> PushFuture {
        let prepared = self
            .session
            .prepare(Kind::Push, self.uri, self.arg, &self.options);
        let session = self.session.clone();
        let flushed = self.flushed;
        PushFuture {
            inner: Box::pin(async move { session.finish_push(prepared, flushed).await }),
        }
    }
}
