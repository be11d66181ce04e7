//! Plugins: hooks that run at fixed stages of a session's life and of every
//! message it carries.
//!
//! A [`Plugin`] has one method per stage, each with a default that does
//! nothing, so a plugin implements only the stages it cares about. Plugins
//! attach at three levels and run in that order, each level in the order the
//! plugins were added:
//!
//! 1. the whole peer, with [`PeerConfig::plugin`](crate::PeerConfig::plugin);
//! 2. a router group, with [`Group::plugin`](crate::router::Group::plugin);
//! 3. one route, with [`Router::route_plugin`](crate::Router::route_plugin).
//!
//! # Stages
//!
//! ```text
//! peer built      install (peer plugins) → after_register (every route)
//! session         after_dial | after_accept                  async, peer plugins
//! outgoing pull   before_write_pull → [queued] → after_write_pull
//! outgoing push   before_write_push → [queued] → after_write_push
//! incoming frame  before_read_header → after_read_header     peer plugins
//!                 ── routing by path ──
//!                 after_read_header                          group and route plugins
//!                 before_read_body → after_read_body         peer, group, route
//!                 ── the handler runs ──
//! its reply       before_write_reply → [queued] → after_write_reply
//! ```
//!
//! Incoming replies go through `before_read_header`, `after_read_header`,
//! `before_read_body` and `after_read_body` of the peer plugins before they
//! reach the pull that waits for them. "Written" means queued in the
//! connection's write buffer, in order; the connection task sends that
//! buffer with its next socket write. "Read" means the frame's bytes have
//! arrived: the header is decoded in the same pass as the frame is cut out of
//! the stream, so `before_read_header` runs before anything acts on it, and
//! `before_read_body` before the body is decoded or handed to a handler.
//!
//! Only peer plugins run before routing, so only they can change the URI a
//! frame is routed by (see [`alias`]). Group and route plugins see the frame
//! from `after_read_header` on, and the reply to it.
//!
//! # Sync and async hooks
//!
//! The per-frame hooks are plain functions: they run inside the session's
//! connection task for every frame, where an `await` would stall every other
//! call on the connection and a boxed future would cost an allocation per
//! frame. A plugin that needs to wait (for a database, say) starts a task
//! from its hook or does the work at the session stage. The session hooks
//! ([`Plugin::after_dial`], [`Plugin::after_accept`]) are async, because they
//! run once per connection and are where authentication and similar
//! handshakes belong. They return a boxed future ([`PluginFuture`]) so that
//! plugins stay usable as `dyn Plugin`.
//!
//! # Failures
//!
//! A hook that returns `Err(status)` stops the message at that stage; the
//! plugins after it do not run:
//!
//! - an incoming pull gets a body-less reply with that status (use
//!   [`failed`] for the standard `424 Failed Plugin`, or any status of your
//!   own such as `401`);
//! - an incoming push is dropped; an incoming reply ends its waiting pull
//!   with [`Error::Status`](crate::Error::Status);
//! - an outgoing pull or push is not sent, and its caller gets
//!   [`Error::Status`](crate::Error::Status);
//! - a failing `before_write_reply` replaces the reply with a body-less one
//!   carrying its status;
//! - a failing session hook closes the session, with the plugin's name and
//!   status logged as the reason and kept as
//!   [`Session::close_reason`](crate::Session::close_reason); dialing then
//!   fails too.
//!
//! Until every session hook of a new connection has succeeded, the incoming
//! pulls and pushes of that connection are held back (replies still flow, so
//! a hook can pull the other side): no handler runs on a session before its
//! handshake is done.
//!
//! # Per-session values
//!
//! Hooks keep per-session state in [`Session::extensions`](crate::Session::extensions),
//! a typed map that lives as long as the session.
//!
//! # Cost
//!
//! With no plugin anywhere, each frame pays one emptiness check per stage:
//! no allocation, no dynamic call.
//!
//! # Examples
//!
//! ```
//! use teleport::frame::Header;
//! use teleport::plugin::{self, Plugin};
//! use teleport::{Ctx, PeerConfig, Router, Session, Status};
//!
//! /// Refuses every call whose URI carries `?deny`.
//! struct Deny;
//!
//! impl Plugin for Deny {
//!     fn after_read_header(&self, _session: &Session, header: &mut Header) -> Result<(), Status> {
//!         if header.query().contains("deny") {
//!             return Err(plugin::failed("denied by query"));
//!         }
//!         Ok(())
//!     }
//! }
//!
//! let mut router = Router::new();
//! router
//!     .group("/admin")
//!     .plugin(Deny)
//!     .pull("/stats", |_: Ctx, (): ()| async move { Ok::<_, Status>(42) });
//! let config = PeerConfig::default().plugin(Deny);
//! # let _ = (router, config);
//! ```

pub mod alias;
pub mod auth;
pub mod heartbeat;
pub mod metrics;
mod run;

use std::borrow::Cow;
use std::fmt;
use std::future::{Future, ready};
use std::pin::Pin;
use std::sync::Arc;

pub(crate) use run::{
    Refusal, Side, after_write, before_write, before_write_reply, chain, read_header, read_routed,
    run_session_hooks,
};

pub use crate::error::SessionRefused;
use crate::frame::{Frame, Header, Kind};
use crate::router::Router;
use crate::session::Session;
use crate::status::{Status, code};

/// The future a session hook returns.
pub type PluginFuture<'a> = Pin<Box<dyn Future<Output = Result<(), Status>> + Send + 'a>>;

/// A `424 Failed Plugin` status with a text that says why.
///
/// ```
/// assert_eq!(teleport::plugin::failed("quota exceeded").code(), 424);
/// ```
pub fn failed(text: impl Into<Cow<'static, str>>) -> Status {
    Status::new(code::FAILED_PLUGIN, text)
}

/// Hooks at every stage of a session and its messages. See the
/// [module docs](self) for the order, the levels and what a failure does.
///
/// Every method has a default that does nothing and succeeds.
///
/// # Examples
///
/// A peer plugin that counts the pulls its peer sends and refuses those
/// whose URI asks for `/admin`:
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use teleport::frame::Frame;
/// use teleport::plugin::{self, Plugin};
/// use teleport::{Ctx, Peer, PeerConfig, Router, Session, Status};
///
/// struct Guard {
///     pulls: Arc<AtomicUsize>,
/// }
///
/// impl Plugin for Guard {
///     fn name(&self) -> &str {
///         "guard"
///     }
///     fn before_write_pull(&self, _: &Session, frame: &mut Frame) -> Result<(), Status> {
///         if frame.header.path().starts_with("/admin") {
///             return Err(plugin::failed("no admin calls from here"));
///         }
///         self.pulls.fetch_add(1, Ordering::Relaxed);
///         Ok(())
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut router = Router::new();
/// router.pull("/home/echo", |_: Ctx, s: String| async move { Ok::<_, Status>(s) });
/// let server = Peer::new(PeerConfig::default(), router);
/// let addr = server.listen("127.0.0.1:0").await?;
///
/// let pulls = Arc::new(AtomicUsize::new(0));
/// let config = PeerConfig::default().plugin(Guard { pulls: pulls.clone() });
/// let session = Peer::new(config, Router::new()).dial(addr).await?;
/// let echoed: String = session.pull("/home/echo", &"hi").await?;
/// assert_eq!(echoed, "hi");
/// let err = session.pull::<_, ()>("/admin/reset", &()).await.unwrap_err();
/// assert_eq!(err.status().map(|s| s.code()), Some(424)); // never sent
/// assert_eq!(pulls.load(Ordering::Relaxed), 1);
/// # Ok(()) }
/// ```
#[allow(unused_variables)]
pub trait Plugin: Send + Sync + 'static {
    /// A short name for logs. Defaults to the type's name.
    fn name(&self) -> &str {
        std::any::type_name::<Self>()
    }

    /// Peer plugins only: registers the plugin's own routes (a reserved URI
    /// such as the auth plugin's `/auth/verify`) when the peer is built, before the
    /// `after_register` hooks run.
    fn install(&self, router: &mut Router) {}

    /// A route was registered. Group and route plugins hear about their own
    /// routes as they are registered; peer plugins hear about every route of
    /// the peer's router when the peer is built.
    fn after_register(&self, kind: Kind, path: &str) {}

    /// Peer plugins only: this side dialed a new session. Runs before
    /// [`Peer::dial`](crate::Peer::dial) returns; the session's incoming
    /// pulls and pushes wait until it is done.
    fn after_dial<'a>(&'a self, session: &'a Session) -> PluginFuture<'a> {
        Box::pin(ready(Ok(())))
    }

    /// Peer plugins only: this side accepted a new session. The session's
    /// incoming pulls and pushes wait until it is done.
    fn after_accept<'a>(&'a self, session: &'a Session) -> PluginFuture<'a> {
        Box::pin(ready(Ok(())))
    }

    /// Peer plugins only: a pull is about to be queued. `frame.header.seq`
    /// is set; the header and body section may be changed.
    fn before_write_pull(&self, session: &Session, frame: &mut Frame) -> Result<(), Status> {
        Ok(())
    }

    /// Peer plugins only: a pull was queued for writing.
    fn after_write_pull(&self, session: &Session, header: &Header) {}

    /// Peer plugins only: a push is about to be queued.
    fn before_write_push(&self, session: &Session, frame: &mut Frame) -> Result<(), Status> {
        Ok(())
    }

    /// Peer plugins only: a push was queued for writing.
    fn after_write_push(&self, session: &Session, header: &Header) {}

    /// A reply to an incoming pull is about to be queued (also a reply the
    /// session makes itself, such as a 404 or a refusal by a plugin).
    fn before_write_reply(&self, session: &Session, frame: &mut Frame) -> Result<(), Status> {
        Ok(())
    }

    /// A reply was queued for writing.
    fn after_write_reply(&self, session: &Session, header: &Header) {}

    /// Peer plugins only: a frame has arrived and nothing has acted on its
    /// header yet.
    fn before_read_header(&self, session: &Session) -> Result<(), Status> {
        Ok(())
    }

    /// The header of an incoming frame. Peer plugins run before routing and
    /// may rewrite the URI the frame is routed by; group and route plugins
    /// run after routing.
    fn after_read_header(&self, session: &Session, header: &mut Header) -> Result<(), Status> {
        Ok(())
    }

    /// The body of an incoming frame is about to be handed on (to its
    /// handler, or to the pull waiting for this reply), still undecoded.
    fn before_read_body(&self, session: &Session, header: &Header) -> Result<(), Status> {
        Ok(())
    }

    /// The incoming frame with its body section, which may be changed.
    fn after_read_body(&self, session: &Session, frame: &mut Frame) -> Result<(), Status> {
        Ok(())
    }
}

/// An ordered list of plugins: those of a peer, or those a route carries
/// from its groups and itself. Cheap to clone; the empty list allocates
/// nothing.
#[derive(Clone, Default)]
pub struct Plugins(Option<Arc<[Arc<dyn Plugin>]>>);

impl fmt::Debug for Plugins {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.iter().map(|p| p.name()))
            .finish()
    }
}

impl Plugins {
    /// An empty list.
    pub fn new() -> Plugins {
        Plugins(None)
    }

    /// Whether the list is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// How many plugins the list holds.
    pub fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |p| p.len())
    }

    /// The plugins, in the order they run.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn Plugin>> + '_ {
        self.0.iter().flat_map(|p| p.iter())
    }

    /// Appends a plugin (it runs after those already in the list).
    pub fn push(&mut self, plugin: Arc<dyn Plugin>) {
        let mut all: Vec<Arc<dyn Plugin>> = self.iter().cloned().collect();
        all.push(plugin);
        self.0 = Some(all.into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plugin that hooks nothing, known by its name.
    pub(super) struct Named(pub(super) &'static str);
    impl Plugin for Named {
        fn name(&self) -> &str {
            self.0
        }
    }

    #[test]
    fn plugins_run_in_the_order_they_were_added_and_the_empty_list_allocates_nothing() {
        let mut list = Plugins::new();
        assert!(list.is_empty() && list.0.is_none());
        list.push(Arc::new(Named("a")));
        list.push(Arc::new(Named("b")));
        let names: Vec<_> = list.iter().map(|p| p.name()).collect();
        assert_eq!(names, ["a", "b"]);
        let route = Plugins::new();
        let chained: Vec<_> = chain(&list, &route).map(|p| p.name()).collect();
        assert_eq!(chained, ["a", "b"]);
        assert_eq!(format!("{list:?}"), r#"["a", "b"]"#);
    }

    #[test]
    fn plugin_types_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Plugins>();
        check::<SessionRefused>();
        check::<crate::session::Extensions>();
        check::<auth::AuthServer>();
        check::<auth::AuthClient>();
        check::<heartbeat::Heartbeat>();
        check::<alias::Alias>();
        check::<alias::CaseInsensitive>();
        check::<metrics::Metrics>();
    }
}
