//! # teleport
//!
//! A peer-to-peer RPC and socket framework for Tokio, wire-compatible with
//! Go Teleport v2.0.
//!
//! Every endpoint is a [`Peer`] that can listen and dial with the same API.
//! Each connection is a [`Session`] over which *either* side can
//! [`pull`](Session::pull) (request/reply) and [`push`](Session::push)
//! (one-way), with any number of calls in flight at once. Incoming calls are
//! routed by URI path to the handlers of a [`Router`].
//!
//! ## A tour
//!
//! - [`frame`]: the v2.0 wire format, a `tokio_util` codec with size limits.
//! - [`codec`]: body codecs (`j` JSON, `p` protobuf, `s` string, `b` bincode,
//!   and your own) and gzip.
//! - [`Status`]: the outcome of a call on the wire (code and text).
//! - [`router`]: handlers by path, groups, fallbacks, the call context
//!   [`Ctx`], and every URI rule (`router/uri.rs`: names, prefixes,
//!   joining, path and query).
//! - [`session`]: one connection, multiplexed pulls and pushes both ways:
//!   the handle, its calls and their options, and the connection task that
//!   owns the socket (its states, waiting pulls, incoming calls, outbox).
//! - [`peer`]: the [`Peer`], its session registry and session limit
//!   (`peer/mod.rs`), listening and the accept loop (`listener.rs`), the
//!   one dial path for plain and TLS (`dial.rs`), closing and draining
//!   ([`Peer::close`], [`Peer::shutdown`] in `shutdown.rs`), backoff with
//!   jitter (`backoff.rs`), configuration, reconnecting sessions
//!   (`redial.rs`).
//! - [`plugin`]: hooks at every stage of a session and its messages
//!   (`plugin/mod.rs`; running them is `run.rs`), and the shipped plugins:
//!   auth, heartbeat, URI aliases, metrics.
//! - [`discovery`]: service names resolved to changing sets of endpoints
//!   (static list, DNS, etcd with the `etcd` feature).
//! - [`balance`]: a client over every live endpoint of a service: load
//!   balancing, ejection, safe retries.
//! - [`Caller`]: what calls go over, one [`Session`] or a
//!   [`Balanced`](balance::Balanced) client; generated clients take either.
//! - [`proxy`]: a reverse proxy that forwards calls by URI prefix without
//!   decoding their bodies.
//! - [`gateway`]: gateway mode, one upstream session per client, so the
//!   upstream's pushes and pulls reach the right client.
//! - `tls` (feature `tls`): TLS on listening and dialing with rustls.
//! - [`service`](macro@service): `#[teleport::service]` turns a trait into a
//!   typed client and a one-call server registration.
//! - [`peer::Redial`]: dialed sessions that reconnect with backoff.
//! - [`graceful`]: the concept of graceful shutdown (drain, then close) and
//!   zero-downtime restart: signals (`graceful/signals.rs`), handing the
//!   listening sockets to a new process (`restart.rs`) and taking them in
//!   that process (`inherit.rs`).
//!
//! ```no_run
//! use teleport::{Ctx, Peer, PeerConfig, Router, Status};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let mut router = Router::new();
//!     router.pull("/home/add", |_: Ctx, [a, b]: [i64; 2]| async move { Ok::<_, Status>(a + b) });
//!     let server = Peer::new(PeerConfig::default(), router);
//!     let addr = server.listen("127.0.0.1:0").await?;
//!
//!     let client = Peer::new(PeerConfig::default(), Router::new());
//!     let session = client.dial(addr).await?;
//!     let sum: i64 = session.pull("/home/add", &[40, 2]).await?;
//!     assert_eq!(sum, 42);
//!     Ok(())
//! }
//! ```
#![doc(test(attr(deny(warnings))))]

pub mod balance;
mod caller;
pub mod codec;
pub mod discovery;
mod error;
pub mod frame;
pub mod gateway;
pub mod graceful;
pub mod peer;
pub mod plugin;
pub mod proxy;
pub mod router;
pub mod session;
pub mod status;
#[cfg(feature = "tls")]
pub mod tls;

pub use caller::Caller;
pub use codec::{CodecId, GzipLevel, Proto, RawBody};
pub use error::{Error, PeerError};
pub use frame::{Header, HeaderCodec, Kind};
pub use peer::{Peer, PeerConfig};
pub use plugin::Plugin;
pub use router::{Ctx, RawReply, Router};
pub use session::{CallOptions, Session};
pub use status::Status;

/// The README's examples, compiled and run as doc tests.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

pub use teleport_macros::service;

/// Items only generated code (the `service` macro) uses. Not a public API.
#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;
