//! [`Caller`]: something calls can go over.
//!
//! A [`Session`] carries calls over one connection; a
//! [`Balanced`](crate::balance::Balanced) client spreads them over the
//! sessions of every live endpoint of a service. Both implement
//! [`Caller`], and the clients `#[teleport::service]` generates are generic
//! over it (with [`Session`] as the default), so a typed client works the
//! same over either:
//!
//! ```no_run
//! # #![allow(dead_code)]
//! # mod demo {
//! #[teleport::service]
//! pub trait Arith {
//!     #[idempotent]
//!     async fn add(&self, a: i64, b: i64) -> Result<i64, teleport::Status>;
//! }
//! # }
//! # use demo::ArithClient;
//! # async fn f(session: teleport::Session, balanced: teleport::balance::Balanced) -> Result<(), teleport::Error> {
//! let one = ArithClient::new(session);       // over one connection
//! let many = ArithClient::new(balanced);     // over a whole service
//! assert_eq!(one.add(1, 2).await?, many.add(1, 2).await?);
//! # Ok(()) }
//! ```
//!
//! The trait separates what may be retried: [`Caller::pull_idempotent`]
//! is for calls the service declared safe to run twice (`#[idempotent]`
//! on the trait method), which a balanced client may resend after the
//! connection died with the call in flight. A plain [`Caller::pull_with`]
//! is only ever resent when it provably never left this process
//! ([`Error::NotSent`]).

use std::future::Future;

use crate::codec::{Decode, Encode};
use crate::error::Error;
use crate::session::{CallOptions, Session};

/// Something pulls and pushes can go over: one [`Session`], or a
/// [`Balanced`](crate::balance::Balanced) client over many.
///
/// Generic code that calls a service takes `C: Caller`:
///
/// ```no_run
/// # #![allow(dead_code)]
/// use teleport::{CallOptions, Caller, Error};
///
/// async fn total<C: Caller>(caller: &C, values: &[i64]) -> Result<i64, Error> {
///     let mut sum = 0;
///     for pair in values.chunks(2) {
///         let pair = [pair[0], pair.get(1).copied().unwrap_or(0)];
///         sum += caller.pull_idempotent::<_, i64>("/arith/add", &pair, CallOptions::default()).await?;
///     }
///     Ok(sum)
/// }
/// ```
pub trait Caller: Clone + Send + Sync + 'static {
    /// Pulls `uri` with `arg` and waits for the reply. Not retried after
    /// it may have reached the remote side.
    ///
    /// # Errors
    ///
    /// As [`Session::pull_with`].
    fn pull_with<Req, Resp>(
        &self,
        uri: &str,
        arg: &Req,
        options: CallOptions,
    ) -> impl Future<Output = Result<Resp, Error>> + Send
    where
        Req: Encode + Sync + ?Sized,
        Resp: Decode + Send;

    /// [`Caller::pull_with`] of an argument the caller gives up, which
    /// lets a [`Session`] write a large `String` or `Vec<u8>` argument as
    /// it is, without a copy ([`Session::pull_owned`]); the default
    /// borrows it for `pull_with`. What generated clients call for a
    /// one-argument pull.
    ///
    /// ```no_run
    /// use teleport::{CallOptions, Caller, Error};
    ///
    /// # #[allow(dead_code)]
    /// async fn upload<C: Caller>(caller: &C, page: String) -> Result<u64, Error> {
    ///     caller.pull_owned("/pages/put", page, CallOptions::default()).await
    /// }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Session::pull_with`].
    fn pull_owned<Req, Resp>(
        &self,
        uri: &str,
        arg: Req,
        options: CallOptions,
    ) -> impl Future<Output = Result<Resp, Error>> + Send
    where
        Req: Encode + Send + Sync + 'static,
        Resp: Decode + Send,
    {
        async move { self.pull_with(uri, &arg, options).await }
    }

    /// Pulls a call that is safe to run more than once: a caller over
    /// several connections may resend it elsewhere when the connection it
    /// went out on closed before the reply ([`Error::ConnectionClosed`]).
    /// On one session it is [`Caller::pull_with`].
    ///
    /// # Errors
    ///
    /// As [`Session::pull_with`].
    fn pull_idempotent<Req, Resp>(
        &self,
        uri: &str,
        arg: &Req,
        options: CallOptions,
    ) -> impl Future<Output = Result<Resp, Error>> + Send
    where
        Req: Encode + Sync + ?Sized,
        Resp: Decode + Send,
    {
        self.pull_with(uri, arg, options)
    }

    /// Pushes `uri` with `arg` (one-way).
    ///
    /// # Errors
    ///
    /// As [`Session::push_with`].
    fn push_with<Req>(
        &self,
        uri: &str,
        arg: &Req,
        options: CallOptions,
    ) -> impl Future<Output = Result<(), Error>> + Send
    where
        Req: Encode + Sync + ?Sized;
}

impl Caller for Session {
    fn pull_with<Req, Resp>(
        &self,
        uri: &str,
        arg: &Req,
        options: CallOptions,
    ) -> impl Future<Output = Result<Resp, Error>> + Send
    where
        Req: Encode + Sync + ?Sized,
        Resp: Decode + Send,
    {
        Session::pull_with(self, uri, arg, options)
    }

    fn pull_owned<Req, Resp>(
        &self,
        uri: &str,
        arg: Req,
        options: CallOptions,
    ) -> impl Future<Output = Result<Resp, Error>> + Send
    where
        Req: Encode + Send + Sync + 'static,
        Resp: Decode + Send,
    {
        Session::pull_owned(self, uri, arg, options)
    }

    fn push_with<Req>(
        &self,
        uri: &str,
        arg: &Req,
        options: CallOptions,
    ) -> impl Future<Output = Result<(), Error>> + Send
    where
        Req: Encode + Sync + ?Sized,
    {
        Session::push_with(self, uri, arg, options)
    }
}
