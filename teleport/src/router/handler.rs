//! Handlers: typed functions erased into the two shapes the session runs
//! ([`HandlerFn`]).
//!
//! Users register async closures or plain functions; this module wraps
//! each, decoding the argument and encoding the result on the way, into
//! either a function from `(Ctx, body section)` to a boxed future of the
//! reply, or (for a plain function) a function from `(&Ctx, body
//! section)` to the reply itself, which the session calls in place.
//!
//! The box is given to the handler to fill: a [`HandlerBox`] (tokio-util's
//! [`ReusableBoxFuture`]) that the session keeps from a call that finished
//! at once for the next, so that a route's calls reuse one allocation
//! instead of a `malloc` and a `free` each.

use std::future::{Future, ready};
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use tokio_util::sync::ReusableBoxFuture;

use super::Ctx;
use super::context::Reply;
use crate::codec::{CodecError, Decode, Encode, decode_section_bytes};
use crate::frame::{Kind, Section};
use crate::status::{Status, code};

/// A boxed, sendable future (a session hook's verify step; handlers run
/// as a [`HandlerBox`], whose allocation is reused).
pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// The future of one call of a handler, in a box that can take the next
/// call's future without a new allocation when it has the same layout
/// (the same route's, mostly).
pub(crate) type HandlerBox = ReusableBoxFuture<'static, Option<Reply>>;

/// An async handler after erasure: it puts its future into the box it is
/// given (a finished call's, if the session kept one) or a new one. A pull
/// handler's future yields its reply, a push handler's `None`.
pub(crate) type AsyncFn = Arc<dyn Fn(Ctx, Bytes, Option<HandlerBox>) -> HandlerBox + Send + Sync>;

/// A synchronous handler after erasure: it runs to its end when called,
/// with no future, box or waker, and returns a pull's reply or `None` for
/// a push.
pub(crate) type SyncFn = Arc<dyn Fn(&Ctx, Bytes) -> Option<Reply> + Send + Sync>;

/// A handler after erasure, in one of two shapes.
#[derive(Clone)]
pub(crate) enum HandlerFn {
    /// From [`Group::pull`](super::Group::pull) and the other async forms.
    Async(AsyncFn),
    /// From [`Group::pull_sync`](super::Group::pull_sync) and
    /// [`Group::push_sync`](super::Group::push_sync).
    Sync(SyncFn),
}

impl HandlerFn {
    fn of_async(
        f: impl Fn(Ctx, Bytes, Option<HandlerBox>) -> HandlerBox + Send + Sync + 'static,
    ) -> HandlerFn {
        HandlerFn::Async(Arc::new(f))
    }
}

/// `future` in `spare`'s allocation when it fits, else in a new box.
fn boxed<F>(spare: Option<HandlerBox>, future: F) -> HandlerBox
where
    F: Future<Output = Option<Reply>> + Send + 'static,
{
    match spare {
        Some(mut spare) => {
            spare.set(future);
            spare
        }
        None => ReusableBoxFuture::new(future),
    }
}

/// The reply of a raw pull handler: a status and an already-encoded body.
///
/// `body` is a body section as on the wire: the codec id byte, then the
/// payload (gzip-compressed when `gzip` is not 0), or empty for no body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawReply {
    /// The status of the reply.
    pub status: Status,
    /// The gzip level the body was compressed with.
    pub gzip: i32,
    /// The body section.
    pub body: Bytes,
}

impl RawReply {
    /// A body-less reply with a status.
    pub fn status(status: Status) -> RawReply {
        RawReply {
            status,
            gzip: 0,
            body: Bytes::new(),
        }
    }
}

/// The status a pull gets when its body cannot be decoded.
pub(crate) fn decode_failure(e: &CodecError) -> Status {
    match e {
        CodecError::UnknownCodec(_) => Status::from_code(code::UNSUPPORTED_CODEC_TYPE),
        other => Status::bad_request(format!("cannot decode the body: {other}")),
    }
}

/// The argument of a typed handler, decoded from the call's body section
/// with its codec and gzip level. Always inlined: it is most of a typed
/// handler's own work, and as a call of its own it cost about 50
/// instructions per call more (`percall.sh teleport/service`).
#[inline(always)]
fn decode_arg<Req: Decode>(ctx: &Ctx, body: &Bytes) -> Result<Req, CodecError> {
    let config = ctx.session().config();
    let decoded = decode_section_bytes::<Req>(
        body,
        ctx.header().gzip,
        &config.codecs,
        config.max_frame_size,
    );
    if let Err(e) = &decoded {
        log_undecodable(ctx, e);
    }
    decoded
}

/// Logs a body a typed handler cannot take: a pull's is replied `400` (or
/// `415`), a push's dropped.
#[cold]
#[inline(never)]
fn log_undecodable(ctx: &Ctx, e: &CodecError) {
    if ctx.header().kind == Kind::Pull {
        tracing::debug!(uri = %ctx.uri(), error = %e, "pull body rejected");
    } else {
        tracing::warn!(uri = %ctx.uri(), remote = %ctx.remote_addr(), error = %e, "push dropped: its body cannot be decoded");
    }
}

pub(crate) fn typed_pull<F, Req, Resp, E, Fut>(f: F) -> HandlerFn
where
    F: Fn(Ctx, Req) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Resp, E>> + Send + 'static,
    Req: Decode + Send + 'static,
    Resp: Encode + Send + 'static,
    E: Into<Status> + Send + 'static,
{
    HandlerFn::of_async(move |ctx: Ctx, body: Bytes, spare: Option<HandlerBox>| {
        match decode_arg::<Req>(&ctx, &body) {
            Err(e) => boxed(spare, ready(Some(ctx.reply_status(&decode_failure(&e))))),
            Ok(arg) => {
                let fut = f(ctx.clone(), arg);
                boxed(spare, async move {
                    Some(match fut.await {
                        Ok(value) => ctx.reply_value(value),
                        Err(e) => ctx.reply_status(&e.into()),
                    })
                })
            }
        }
    })
}

pub(crate) fn typed_push<F, Req, Fut>(f: F) -> HandlerFn
where
    F: Fn(Ctx, Req) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
    Req: Decode + Send + 'static,
{
    HandlerFn::of_async(move |ctx: Ctx, body: Bytes, spare: Option<HandlerBox>| {
        match decode_arg::<Req>(&ctx, &body) {
            Err(_) => boxed(spare, ready(None)),
            Ok(arg) => {
                let fut = f(ctx, arg);
                boxed(spare, async move {
                    fut.await;
                    None
                })
            }
        }
    })
}

pub(crate) fn typed_pull_sync<F, Req, Resp, E>(f: F) -> HandlerFn
where
    F: Fn(&Ctx, Req) -> Result<Resp, E> + Send + Sync + 'static,
    Req: Decode + Send + 'static,
    Resp: Encode + Send + 'static,
    E: Into<Status> + Send + 'static,
{
    HandlerFn::Sync(Arc::new(move |ctx: &Ctx, body: Bytes| {
        Some(match decode_arg::<Req>(ctx, &body) {
            Err(e) => ctx.reply_status(&decode_failure(&e)),
            Ok(arg) => match f(ctx, arg) {
                Ok(value) => ctx.reply_value(value),
                Err(e) => ctx.reply_status(&e.into()),
            },
        })
    }))
}

pub(crate) fn typed_push_sync<F, Req>(f: F) -> HandlerFn
where
    F: Fn(&Ctx, Req) + Send + Sync + 'static,
    Req: Decode + Send + 'static,
{
    HandlerFn::Sync(Arc::new(move |ctx: &Ctx, body: Bytes| {
        if let Ok(arg) = decode_arg::<Req>(ctx, &body) {
            f(ctx, arg);
        }
        None
    }))
}

pub(crate) fn raw_pull<F, Fut>(f: F) -> HandlerFn
where
    F: Fn(Ctx, Bytes) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = RawReply> + Send + 'static,
{
    HandlerFn::of_async(move |ctx: Ctx, body: Bytes, spare: Option<HandlerBox>| {
        let fut = f(ctx.clone(), body);
        boxed(spare, async move {
            let reply = fut.await;
            Some(Reply {
                status: reply.status,
                gzip: reply.gzip,
                body: Section::Bytes(reply.body),
            })
        })
    })
}

pub(crate) fn raw_push<F, Fut>(f: F) -> HandlerFn
where
    F: Fn(Ctx, Bytes) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    HandlerFn::of_async(move |ctx: Ctx, body: Bytes, spare: Option<HandlerBox>| {
        let fut = f(ctx, body);
        boxed(spare, async move {
            fut.await;
            None
        })
    })
}
