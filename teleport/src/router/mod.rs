//! The router: which handler serves which URI path.
//!
//! A [`Router`] maps paths to pull handlers (which reply) and push handlers
//! (which do not). Paths can be registered under a [`Group`] prefix, and two
//! fallbacks catch what no route matches: without them an unknown pull gets
//! a `404 Not Found` reply and an unknown push is dropped with a log line.
//!
//! Handlers are async closures. A typed pull handler takes the call's
//! [`Ctx`] and its decoded argument, and returns `Result<T, E>` where `E`
//! converts into a [`Status`]: `Ok` replies `200` with the encoded value,
//! `Err` replies with that status and no body. A handler that never waits
//! can be a plain function instead ([`Router::pull_sync`],
//! [`Router::push_sync`]): it lends the context (`&Ctx`) and runs to its
//! end when the call is routed, with no future at all. The raw forms
//! ([`Router::pull_raw`], [`Router::unknown_pull`]) see the undecoded body,
//! for proxies.
//!
//! Routing uses the path only; the query stays in the URI, readable through
//! [`Ctx::query`].
//!
//! ```
//! use teleport::{Ctx, Router, Status};
//!
//! let mut router = Router::new();
//! router.pull("/home/echo", |_ctx: Ctx, text: String| async move { Ok::<_, Status>(text) });
//! router
//!     .group("/math")
//!     .pull("/add", |_ctx: Ctx, [a, b]: [i64; 2]| async move { Ok::<_, Status>(a + b) });
//! router.push("/msg/note", |ctx: Ctx, text: String| async move {
//!     let _ = ctx.session().push("/msg/back", &format!("echo:{text}")).await;
//! });
//! assert!(router.contains_pull("/math/add"));
//! ```
//!
//! Handlers run inside their session's connection task, next to its reads
//! and writes, which is the fastest path for handlers that mostly await. A
//! handler that burns CPU for long should be registered on a group made
//! with [`Router::spawned`], so each call runs as its own task (a
//! synchronous one on tokio's blocking pool, where it may block).

mod context;
mod handler;
pub(crate) mod uri;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;

use bytes::Bytes;

pub use context::Ctx;
pub(crate) use context::{Reply, SpareCtx};
pub use handler::RawReply;
pub(crate) use handler::{BoxFuture, HandlerBox, HandlerFn, SyncFn};
pub use uri::to_snake_case;

use crate::codec::{Decode, Encode};
use crate::frame::Kind;
use crate::plugin::{Plugin, Plugins};
use crate::status::Status;

/// A registered handler and how to run it.
#[derive(Clone)]
pub(crate) struct Route<H> {
    pub(crate) handler: H,
    /// Run each call as its own task instead of inside the connection task.
    pub(crate) spawn: bool,
    /// The plugins of the route's groups, then its own.
    pub(crate) plugins: Plugins,
}

/// Maps URI paths to handlers. See the [module docs](self).
#[derive(Clone, Default)]
pub struct Router {
    // Looked up once per call with a path the remote side chose, but only
    // registered routes are ever inserted: a fast hash is safe here.
    pulls: HashMap<String, Route<HandlerFn>, foldhash::fast::RandomState>,
    pushes: HashMap<String, Route<HandlerFn>, foldhash::fast::RandomState>,
    unknown_pull: Option<Route<HandlerFn>>,
    unknown_push: Option<Route<HandlerFn>>,
}

impl fmt::Debug for Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut pulls: Vec<_> = self.pulls.keys().collect();
        pulls.sort();
        let mut pushes: Vec<_> = self.pushes.keys().collect();
        pushes.sort();
        f.debug_struct("Router")
            .field("pulls", &pulls)
            .field("pushes", &pushes)
            .field("unknown_pull", &self.unknown_pull.is_some())
            .field("unknown_push", &self.unknown_push.is_some())
            .finish()
    }
}

impl Router {
    /// An empty router: every pull gets 404, every push is dropped.
    pub fn new() -> Router {
        Router::default()
    }

    /// A group under `prefix`: its routes are registered as `prefix + path`.
    pub fn group(&mut self, prefix: &str) -> Group<'_> {
        Group {
            router: self,
            prefix: uri::prefix(prefix),
            spawn: false,
            plugins: Plugins::new(),
        }
    }

    /// A group without prefix whose handlers each run as their own task
    /// (for CPU-heavy handlers that must not hold up the connection): an
    /// async handler with [`tokio::spawn`], a synchronous one
    /// ([`Group::pull_sync`]) on the blocking pool with
    /// [`tokio::task::spawn_blocking`].
    pub fn spawned(&mut self) -> Group<'_> {
        Group {
            router: self,
            prefix: String::new(),
            spawn: true,
            plugins: Plugins::new(),
        }
    }

    /// Registers a typed pull handler. See [`Group::pull`].
    ///
    /// # Panics
    ///
    /// If a pull handler is already registered for the path.
    pub fn pull<F, Req, Resp, E, Fut>(&mut self, path: &str, handler: F) -> &mut Self
    where
        F: Fn(Ctx, Req) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Resp, E>> + Send + 'static,
        Req: Decode + Send + 'static,
        Resp: Encode + Send + 'static,
        E: Into<Status> + Send + 'static,
    {
        self.group("").pull(path, handler);
        self
    }

    /// Registers a typed push handler. See [`Group::push`].
    ///
    /// # Panics
    ///
    /// If a push handler is already registered for the path.
    pub fn push<F, Req, Fut>(&mut self, path: &str, handler: F) -> &mut Self
    where
        F: Fn(Ctx, Req) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
        Req: Decode + Send + 'static,
    {
        self.group("").push(path, handler);
        self
    }

    /// Registers a synchronous typed pull handler. See [`Group::pull_sync`].
    ///
    /// # Panics
    ///
    /// If a pull handler is already registered for the path.
    pub fn pull_sync<F, Req, Resp, E>(&mut self, path: &str, handler: F) -> &mut Self
    where
        F: Fn(&Ctx, Req) -> Result<Resp, E> + Send + Sync + 'static,
        Req: Decode + Send + 'static,
        Resp: Encode + Send + 'static,
        E: Into<Status> + Send + 'static,
    {
        self.group("").pull_sync(path, handler);
        self
    }

    /// Registers a synchronous typed push handler. See [`Group::push_sync`].
    ///
    /// # Panics
    ///
    /// If a push handler is already registered for the path.
    pub fn push_sync<F, Req>(&mut self, path: &str, handler: F) -> &mut Self
    where
        F: Fn(&Ctx, Req) + Send + Sync + 'static,
        Req: Decode + Send + 'static,
    {
        self.group("").push_sync(path, handler);
        self
    }

    /// Registers a raw pull handler. See [`Group::pull_raw`].
    ///
    /// # Panics
    ///
    /// If a pull handler is already registered for the path.
    pub fn pull_raw<F, Fut>(&mut self, path: &str, handler: F) -> &mut Self
    where
        F: Fn(Ctx, Bytes) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = RawReply> + Send + 'static,
    {
        self.group("").pull_raw(path, handler);
        self
    }

    /// Registers a raw push handler. See [`Group::push_raw`].
    ///
    /// # Panics
    ///
    /// If a push handler is already registered for the path.
    pub fn push_raw<F, Fut>(&mut self, path: &str, handler: F) -> &mut Self
    where
        F: Fn(Ctx, Bytes) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.group("").push_raw(path, handler);
        self
    }

    /// Sets the handler for pulls no route matches, in raw form (it sees the
    /// undecoded body section). Without one, such pulls get `404 Not Found`.
    pub fn unknown_pull<F, Fut>(&mut self, handler: F) -> &mut Self
    where
        F: Fn(Ctx, Bytes) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = RawReply> + Send + 'static,
    {
        self.unknown_pull = Some(Route {
            handler: handler::raw_pull(handler),
            spawn: false,
            plugins: Plugins::new(),
        });
        self
    }

    /// Sets the handler for pushes no route matches, in raw form. Without
    /// one, such pushes are dropped with a log line.
    pub fn unknown_push<F, Fut>(&mut self, handler: F) -> &mut Self
    where
        F: Fn(Ctx, Bytes) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.unknown_push = Some(Route {
            handler: handler::raw_push(handler),
            spawn: false,
            plugins: Plugins::new(),
        });
        self
    }

    /// Attaches a plugin to the pull and the push route registered at
    /// exactly `path` (see [`plugin`](crate::plugin)). It runs after the
    /// peer's plugins and those of the route's groups, and its
    /// `after_register` hook runs at once for each route it joins.
    ///
    /// ```
    /// use teleport::plugin::{self, Plugin};
    /// use teleport::{Ctx, Router, Session, Status};
    ///
    /// struct Closed;
    /// impl Plugin for Closed {
    ///     fn before_read_body(&self, _: &Session, _: &teleport::Header) -> Result<(), Status> {
    ///         Err(plugin::failed("closed for maintenance"))
    ///     }
    /// }
    ///
    /// let mut router = Router::new();
    /// router
    ///     .pull("/shop/buy", |_: Ctx, item: String| async move { Ok::<_, Status>(item) })
    ///     .route_plugin("/shop/buy", Closed);
    /// ```
    ///
    /// # Panics
    ///
    /// If no route is registered at `path`.
    pub fn route_plugin(&mut self, path: &str, plugin: impl Plugin) -> &mut Self {
        let plugin: std::sync::Arc<dyn Plugin> = std::sync::Arc::new(plugin);
        let mut found = false;
        for (kind, routes) in [
            (Kind::Pull, &mut self.pulls),
            (Kind::Push, &mut self.pushes),
        ] {
            if let Some(route) = routes.get_mut(path) {
                route.plugins.push(plugin.clone());
                plugin.after_register(kind, path);
                found = true;
            }
        }
        assert!(
            found,
            "teleport: route_plugin on {path:?}, where no route is registered"
        );
        self
    }

    /// Whether a pull route is registered for exactly this path.
    pub fn contains_pull(&self, path: &str) -> bool {
        self.pulls.contains_key(path)
    }

    /// Whether a push route is registered for exactly this path.
    pub fn contains_push(&self, path: &str) -> bool {
        self.pushes.contains_key(path)
    }

    /// The registered pull paths, sorted.
    pub fn pull_paths(&self) -> Vec<&str> {
        let mut v: Vec<_> = self.pulls.keys().map(String::as_str).collect();
        v.sort_unstable();
        v
    }

    /// The registered push paths, sorted.
    pub fn push_paths(&self) -> Vec<&str> {
        let mut v: Vec<_> = self.pushes.keys().map(String::as_str).collect();
        v.sort_unstable();
        v
    }

    pub(crate) fn find_pull(&self, path: &str) -> Option<&Route<HandlerFn>> {
        self.pulls.get(path).or(self.unknown_pull.as_ref())
    }

    pub(crate) fn find_push(&self, path: &str) -> Option<&Route<HandlerFn>> {
        self.pushes.get(path).or(self.unknown_push.as_ref())
    }

    fn add_pull(&mut self, path: String, route: Route<HandlerFn>) {
        tracing::debug!(%path, "registered pull route");
        for p in route.plugins.iter() {
            p.after_register(Kind::Pull, &path);
        }
        if self.pulls.insert(path.clone(), route).is_some() {
            panic!("teleport: a pull handler is already registered for {path:?}");
        }
    }

    fn add_push(&mut self, path: String, route: Route<HandlerFn>) {
        tracing::debug!(%path, "registered push route");
        for p in route.plugins.iter() {
            p.after_register(Kind::Push, &path);
        }
        if self.pushes.insert(path.clone(), route).is_some() {
            panic!("teleport: a push handler is already registered for {path:?}");
        }
    }
}

/// Routes registered under a common prefix. Made by [`Router::group`].
pub struct Group<'r> {
    router: &'r mut Router,
    prefix: String,
    spawn: bool,
    plugins: Plugins,
}

impl fmt::Debug for Group<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Group")
            .field("prefix", &self.prefix)
            .field("spawn", &self.spawn)
            .field("plugins", &self.plugins)
            .finish()
    }
}

impl Group<'_> {
    /// The prefix of this group (empty for the root).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A nested group under `prefix`.
    pub fn group(&mut self, prefix: &str) -> Group<'_> {
        Group {
            prefix: uri::prefix(&uri::join(&self.prefix, prefix)),
            spawn: self.spawn,
            plugins: self.plugins.clone(),
            router: self.router,
        }
    }

    /// Attaches a plugin to every route registered through this group (and
    /// its nested groups) from now on. It runs after the peer's plugins and
    /// those of enclosing groups; see [`plugin`](crate::plugin).
    pub fn plugin(mut self, plugin: impl Plugin) -> Self {
        self.plugins.push(std::sync::Arc::new(plugin));
        self
    }

    /// Makes every handler registered through this group run as its own task.
    pub fn spawn_each_call(mut self) -> Self {
        self.spawn = true;
        self
    }

    /// The full path for `path` in this group.
    pub fn path(&self, path: &str) -> String {
        uri::join(&self.prefix, path)
    }

    /// Registers `handler` as the pull route at `prefix + path`, run as
    /// this group runs its handlers, with its plugins.
    fn add_pull(&mut self, path: &str, handler: HandlerFn) {
        let route = self.route(handler);
        self.router.add_pull(self.path(path), route);
    }

    /// Registers `handler` as the push route at `prefix + path`.
    fn add_push(&mut self, path: &str, handler: HandlerFn) {
        let route = self.route(handler);
        self.router.add_push(self.path(path), route);
    }

    fn route(&self, handler: HandlerFn) -> Route<HandlerFn> {
        Route {
            handler,
            spawn: self.spawn,
            plugins: self.plugins.clone(),
        }
    }

    /// Registers a typed pull handler for `prefix + path`.
    ///
    /// The argument is decoded with the body codec of the pull (a body that
    /// cannot be decoded gets `400`, an unknown codec `415`); `Ok(value)` is
    /// replied with status 200 and the pull's codec and gzip level unless
    /// the handler set others on its [`Ctx`]; `Err(e)` is replied as
    /// `e.into()` with no body.
    ///
    /// # Panics
    ///
    /// If a pull handler is already registered for the path.
    pub fn pull<F, Req, Resp, E, Fut>(&mut self, path: &str, handler: F) -> &mut Self
    where
        F: Fn(Ctx, Req) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Resp, E>> + Send + 'static,
        Req: Decode + Send + 'static,
        Resp: Encode + Send + 'static,
        E: Into<Status> + Send + 'static,
    {
        self.add_pull(path, handler::typed_pull(handler));
        self
    }

    /// Registers a typed push handler for `prefix + path`. A push whose body
    /// cannot be decoded is dropped with a warning.
    ///
    /// # Panics
    ///
    /// If a push handler is already registered for the path.
    pub fn push<F, Req, Fut>(&mut self, path: &str, handler: F) -> &mut Self
    where
        F: Fn(Ctx, Req) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
        Req: Decode + Send + 'static,
    {
        self.add_push(path, handler::typed_push(handler));
        self
    }

    /// Registers a synchronous typed pull handler for `prefix + path`: a
    /// plain function, for work that never waits (a lookup, a computation,
    /// a state change behind a lock held briefly).
    ///
    /// It is decoded, replied and logged as [`Group::pull`] is, but it runs
    /// to its end as soon as the call is routed, with no future: no box,
    /// no waker, no state machine (about 250 fewer instructions per call
    /// than an `async` handler that answers at once: the bench's 16 B echo
    /// route at 64 in flight, `teleport-bench/percall.sh teleport/bincode
    /// 16 1x64` with it registered each way). On a group
    /// made with [`Router::spawned`] it runs on tokio's blocking pool
    /// instead ([`tokio::task::spawn_blocking`]), so it may block there;
    /// anywhere else it runs on its session's connection task, which it
    /// holds up until it returns. A panic replies `500`, as for an async
    /// handler.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use std::sync::Arc;
    ///
    /// use teleport::{Ctx, Router, Status};
    ///
    /// let hits = Arc::new(AtomicU64::new(0));
    /// let mut router = Router::new();
    /// router.group("/math").pull_sync("/add", |_ctx: &Ctx, [a, b]: [i64; 2]| {
    ///     a.checked_add(b).ok_or_else(|| Status::bad_request("overflow"))
    /// });
    /// let counter = Arc::clone(&hits);
    /// router.push_sync("/stats/hit", move |_ctx: &Ctx, n: u64| {
    ///     counter.fetch_add(n, Ordering::Relaxed);
    /// });
    /// assert!(router.contains_pull("/math/add"));
    /// ```
    ///
    /// # Panics
    ///
    /// If a pull handler is already registered for the path.
    pub fn pull_sync<F, Req, Resp, E>(&mut self, path: &str, handler: F) -> &mut Self
    where
        F: Fn(&Ctx, Req) -> Result<Resp, E> + Send + Sync + 'static,
        Req: Decode + Send + 'static,
        Resp: Encode + Send + 'static,
        E: Into<Status> + Send + 'static,
    {
        self.add_pull(path, handler::typed_pull_sync(handler));
        self
    }

    /// Registers a synchronous typed push handler for `prefix + path`: a
    /// plain function that runs as soon as the push is routed (see
    /// [`Group::pull_sync`] for where it runs). A push whose body cannot be
    /// decoded is dropped with a warning.
    ///
    /// # Panics
    ///
    /// If a push handler is already registered for the path.
    pub fn push_sync<F, Req>(&mut self, path: &str, handler: F) -> &mut Self
    where
        F: Fn(&Ctx, Req) + Send + Sync + 'static,
        Req: Decode + Send + 'static,
    {
        self.add_push(path, handler::typed_push_sync(handler));
        self
    }

    /// Registers a raw pull handler: it gets the undecoded body section and
    /// returns a [`RawReply`].
    ///
    /// # Panics
    ///
    /// If a pull handler is already registered for the path.
    pub fn pull_raw<F, Fut>(&mut self, path: &str, handler: F) -> &mut Self
    where
        F: Fn(Ctx, Bytes) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = RawReply> + Send + 'static,
    {
        self.add_pull(path, handler::raw_pull(handler));
        self
    }

    /// Registers a raw push handler: it gets the undecoded body section.
    ///
    /// # Panics
    ///
    /// If a push handler is already registered for the path.
    pub fn push_raw<F, Fut>(&mut self, path: &str, handler: F) -> &mut Self
    where
        F: Fn(Ctx, Bytes) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.add_push(path, handler::raw_push(handler));
        self
    }
}
