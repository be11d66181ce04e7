//! Client-side load balancing with failover over the endpoints of a service.
//!
//! (Longer than most files: the client, its builder, the per-endpoint
//! tasks that dial, eject and re-add, and the retry rule are one concept;
//! the pick strategies have their own room, `pick.rs`.)
//!
//! A [`Balanced`] client resolves a service with a
//! [`Resolver`] and keeps one session to every
//! endpoint it can reach, and sends each call over one of them:
//!
//! - **Picking**: by default *power of two choices* on calls in flight
//!   (two endpoints at random, the less busy one wins); also round robin
//!   and weighted random ([`Strategy`]). A call made through
//!   [`Balanced::with_key`] goes to the endpoint that key hashes to
//!   (rendezvous hashing, weighted), so one game room or chat channel
//!   lives on one server, and endpoints coming and going move as few keys
//!   as possible.
//! - **Ejection**: an endpoint leaves the pick set the moment its session
//!   closes. It is redialed with jittered exponential backoff for as long
//!   as the resolver lists it, and comes back when a dial succeeds. An
//!   endpoint the resolver drops leaves at once; its session closes when
//!   its last call in flight ends.
//! - **Retries**: a call that provably never reached the wire
//!   ([`Error::NotSent`]) is resent on another endpoint, always. A pull of
//!   a method marked `#[idempotent]` (or sent with
//!   [`Caller::pull_idempotent`]) is also resent after
//!   [`Error::ConnectionClosed`]: the connection died with it in flight,
//!   it may have run, and running it again is harmless. Nothing else is
//!   resent: a status the server replied, a timeout, or a non-idempotent
//!   call lost in flight comes back to the caller as it is.
//! - **Subsetting**: with [`BalancedBuilder::subset`], a client connects to
//!   the `k` endpoints its id hashes to rather than to all of them, so
//!   large fleets do not hold a session between every client and every
//!   instance (see `docs/SCALING.md`).
//! - **Both ways**: every session is dialed by the [`Peer`] you give, so
//!   pushes and pulls the servers send back reach that peer's router over
//!   whichever session carried them, as with [`Peer::dial`].
//!
//! ```no_run
//! # #![allow(dead_code)]
//! use teleport::balance::Balanced;
//! use teleport::discovery::StaticResolver;
//! use teleport::{Peer, PeerConfig, Router};
//!
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! let resolver = StaticResolver::new()
//!     .with_service("arith", ["127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9003"]);
//! let peer = Peer::new(PeerConfig::default(), Router::new());
//! let arith = Balanced::builder(peer, resolver, "arith").connect().await?;
//!
//! let sum: i64 = arith.pull_idempotent("/arith/add", &[1, 2]).await?;
//! // Sticky: every call for room 7 goes to the same server.
//! arith.with_key("room-7").push("/room/say", &"hello").await?;
//! # let _ = sum; Ok(()) }
//! ```

mod pick;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::{Notify, broadcast, watch};
use tokio::task::AbortHandle;
use tokio_util::sync::CancellationToken;

use crate::caller::Caller;
use crate::codec::{Decode, Encode};
use crate::discovery::{DiscoveryError, Endpoint, EndpointWatch, Resolver};
use crate::error::Error;
use crate::peer::Peer;
use crate::session::{CallOptions, Session};

pub use pick::Strategy;

/// One live endpoint: its session and its load.
pub(crate) struct Slot {
    endpoint: Endpoint,
    addr_hash: u64,
    session: Session,
    in_flight: AtomicUsize,
    /// Woken when `in_flight` drops to 0 (to close a removed endpoint).
    idle: Notify,
    counters: Arc<Counters>,
}

impl Slot {
    fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Counts a call in; the guard counts it out.
    fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.counters.sent.fetch_add(1, Ordering::Relaxed);
        InFlight(Arc::clone(self))
    }

    /// Waits until no call is in flight.
    async fn drained(&self) {
        loop {
            let idle = self.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if self.in_flight() == 0 {
                return;
            }
            idle.await;
        }
    }
}

struct InFlight(Arc<Slot>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// Call counts of one endpoint, kept across its sessions.
#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    answered: AtomicU64,
    sessions: AtomicU64,
}

/// What happened to an endpoint, from [`Balanced::events`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BalanceEvent {
    /// A session to the endpoint is up: it takes calls.
    Added {
        /// The endpoint's address.
        addr: String,
    },
    /// The endpoint's session closed: it takes no calls until a redial
    /// succeeds.
    Ejected {
        /// The endpoint's address.
        addr: String,
        /// Why the session closed, as far as this side knows.
        reason: String,
    },
    /// The resolver no longer lists the endpoint.
    Removed {
        /// The endpoint's address.
        addr: String,
    },
    /// Dialing the endpoint failed; the next attempt is after `retry_in`.
    DialFailed {
        /// The endpoint's address.
        addr: String,
        /// The dial error.
        error: String,
        /// The (jittered) backoff before the next dial.
        retry_in: Duration,
    },
}

/// Counts of one endpoint, from [`Balanced::stats`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct EndpointStats {
    /// The endpoint's address.
    pub addr: String,
    /// Whether it takes calls now.
    pub live: bool,
    /// Calls in flight on it now.
    pub in_flight: usize,
    /// Calls sent over it (retries count on each endpoint they went to).
    pub sent: u64,
    /// Calls it answered (a reply, whatever its status, or a queued push).
    pub answered: u64,
    /// Sessions opened to it so far.
    pub sessions: u64,
}

/// Counts of a [`Balanced`] client.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BalanceStats {
    /// Every endpoint the resolver lists, live or not, by address.
    pub endpoints: Vec<EndpointStats>,
    /// Calls resent on another endpoint after a failure.
    pub retried: u64,
    /// Sessions that closed under the client (ejections).
    pub ejected: u64,
}

/// Settings of a [`Balanced`] client; from [`Balanced::builder`].
#[must_use = "call connect() to start the client"]
pub struct BalancedBuilder {
    peer: Peer,
    resolver: Arc<dyn Resolver>,
    service: String,
    strategy: Strategy,
    max_attempts: usize,
    wait_for_endpoint: Duration,
    initial_backoff: Duration,
    max_backoff: Duration,
    subset: Option<(usize, u64)>,
}

impl std::fmt::Debug for BalancedBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BalancedBuilder")
            .field("service", &self.service)
            .field("strategy", &self.strategy)
            .field("max_attempts", &self.max_attempts)
            .field("wait_for_endpoint", &self.wait_for_endpoint)
            .field("subset", &self.subset.map(|(k, _)| k))
            .finish_non_exhaustive()
    }
}

impl BalancedBuilder {
    /// How calls without a key pick their endpoint (default: power of two
    /// choices).
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// How many endpoints one call may be sent to, the first included
    /// (default 3); at least 1.
    pub fn max_attempts(mut self, n: usize) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// How long a call waits for a live endpoint when there is none
    /// (starting up, every endpoint down) before it fails with
    /// [`Error::NotSent`] (default 5 s).
    pub fn wait_for_endpoint(mut self, d: Duration) -> Self {
        self.wait_for_endpoint = d;
        self
    }

    /// The redial backoff: the first delay and the cap (default 50 ms and
    /// 5 s). Each delay is drawn at random between half and all of
    /// `initial × 2^attempt`, capped, so clients do not redial in step.
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max.max(initial);
        self
    }

    /// Connects to at most `k` endpoints of the service, not to all of
    /// them: the `k` that `client_id` hashes to (weighted rendezvous
    /// hashing over the endpoint set). For large fleets: with 100,000
    /// clients and 100 instances, every instance would otherwise hold a
    /// session to every client. Distinct ids spread evenly over the
    /// instances; when an endpoint leaves, each client that had it takes
    /// exactly one other, and a new endpoint enters only the subsets it
    /// wins. Use a stable id (host name, pod name). Keyed calls
    /// ([`Balanced::with_key`]) then hash over the subset only.
    ///
    /// ```no_run
    /// # #![allow(dead_code)]
    /// # async fn f(peer: teleport::Peer, resolver: teleport::discovery::StaticResolver) -> Result<(), teleport::discovery::DiscoveryError> {
    /// use teleport::balance::Balanced;
    ///
    /// let arith = Balanced::builder(peer, resolver, "arith")
    ///     .subset(16, "web-7f9c-2")
    ///     .connect()
    ///     .await?;
    /// # let _ = arith; Ok(()) }
    /// ```
    pub fn subset(mut self, k: usize, client_id: impl AsRef<[u8]>) -> Self {
        self.subset = Some((k.max(1), pick::hash(client_id.as_ref())));
        self
    }

    /// Resolves the service and starts dialing its endpoints in the
    /// background. Returns at once: calls wait (up to
    /// [`wait_for_endpoint`](Self::wait_for_endpoint)) for the first
    /// session; [`Balanced::ready`] waits for some explicitly.
    ///
    /// # Errors
    ///
    /// The resolver's error when the service cannot be resolved.
    pub async fn connect(self) -> Result<Balanced, DiscoveryError> {
        let watch = self.resolver.resolve(&self.service).await?;
        let (live_tx, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            service: self.service,
            peer: self.peer,
            strategy: self.strategy,
            max_attempts: self.max_attempts,
            wait_for_endpoint: self.wait_for_endpoint,
            initial_backoff: self.initial_backoff,
            max_backoff: self.max_backoff,
            subset: self.subset,
            live: RwLock::new(Arc::from([])),
            live_tx,
            rr: AtomicUsize::new(0),
            counters: Mutex::new(BTreeMap::new()),
            retried: AtomicU64::new(0),
            ejected: AtomicU64::new(0),
            events: broadcast::channel(256).0,
            stop: CancellationToken::new(),
        });
        tokio::spawn(manage(Arc::clone(&shared), watch));
        Ok(Balanced {
            _owner: Arc::new(Owner(Arc::clone(&shared))),
            shared,
            key: None,
        })
    }
}

struct Shared {
    service: String,
    peer: Peer,
    strategy: Strategy,
    max_attempts: usize,
    wait_for_endpoint: Duration,
    initial_backoff: Duration,
    max_backoff: Duration,
    /// `(k, hash of the client id)`: connect to `k` endpoints only.
    subset: Option<(usize, u64)>,
    /// The endpoints that take calls; replaced whole on every change.
    live: RwLock<Arc<[Arc<Slot>]>>,
    /// The number of live endpoints, for calls waiting for one.
    live_tx: watch::Sender<usize>,
    rr: AtomicUsize,
    counters: Mutex<BTreeMap<String, Arc<Counters>>>,
    retried: AtomicU64,
    ejected: AtomicU64,
    events: broadcast::Sender<BalanceEvent>,
    stop: CancellationToken,
}

impl Shared {
    fn snapshot(&self) -> Arc<[Arc<Slot>]> {
        Arc::clone(&self.live.read().expect("no panic holds this lock"))
    }

    fn update_live(&self, f: impl FnOnce(&mut Vec<Arc<Slot>>)) {
        let mut live = self.live.write().expect("no panic holds this lock");
        let mut next: Vec<Arc<Slot>> = live.iter().cloned().collect();
        f(&mut next);
        let n = next.len();
        *live = next.into();
        drop(live);
        self.live_tx.send_replace(n);
    }

    fn event(&self, event: BalanceEvent) {
        let _ = self.events.send(event);
    }

    /// The jittered delay before redial number `attempt` (0-based).
    fn backoff(&self, attempt: u32) -> Duration {
        let base = self
            .initial_backoff
            .saturating_mul(1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX))
            .min(self.max_backoff);
        base.mul_f64(0.5 + fastrand::f64() * 0.5)
    }
}

/// Stops the background tasks when the last handle is dropped.
struct Owner(Arc<Shared>);

impl Drop for Owner {
    fn drop(&mut self) {
        self.0.stop.cancel();
    }
}

/// A client over every live endpoint of a service: picks one per call,
/// ejects dead ones, retries what is safe to retry. See the
/// [module docs](self).
///
/// Cheap to clone; clones share the sessions. The background tasks stop
/// and the sessions close when the last clone is dropped or on
/// [`Balanced::close`]. Implements [`Caller`], so generated service
/// clients run over it: `ArithClient::new(balanced)`.
#[derive(Clone)]
pub struct Balanced {
    shared: Arc<Shared>,
    _owner: Arc<Owner>,
    key: Option<u64>,
}

impl std::fmt::Debug for Balanced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Balanced")
            .field("service", &self.shared.service)
            .field("live", &self.shared.snapshot().len())
            .field("keyed", &self.key.is_some())
            .finish()
    }
}

impl Balanced {
    /// Settings for a client of `service`, resolved by `resolver`, whose
    /// sessions `peer` dials (and whose router serves what the servers
    /// call back).
    ///
    /// ```no_run
    /// # #![allow(dead_code)]
    /// # async fn f(peer: teleport::Peer) -> Result<(), teleport::discovery::DiscoveryError> {
    /// use std::time::Duration;
    /// use teleport::balance::{Balanced, Strategy};
    /// use teleport::discovery::DnsResolver;
    ///
    /// let chat = Balanced::builder(peer, DnsResolver::new(), "chat.internal:7000")
    ///     .strategy(Strategy::RoundRobin)
    ///     .max_attempts(2)
    ///     .backoff(Duration::from_millis(100), Duration::from_secs(10))
    ///     .connect()
    ///     .await?;
    /// # let _ = chat; Ok(()) }
    /// ```
    pub fn builder(
        peer: Peer,
        resolver: impl Resolver,
        service: impl Into<String>,
    ) -> BalancedBuilder {
        BalancedBuilder {
            peer,
            resolver: Arc::new(resolver),
            service: service.into(),
            strategy: Strategy::default(),
            max_attempts: 3,
            wait_for_endpoint: Duration::from_secs(5),
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(5),
            subset: None,
        }
    }

    /// The service this client calls.
    pub fn service(&self) -> &str {
        &self.shared.service
    }

    /// A handle whose calls all go to the endpoint `key` hashes to (the
    /// same one from every client, while the set of endpoints stays the
    /// same): one room, channel or user per server. If that endpoint is
    /// down, the call goes to the key's next endpoint in hash order.
    ///
    /// ```no_run
    /// # #![allow(dead_code)]
    /// # async fn f(chat: teleport::balance::Balanced) -> Result<(), teleport::Error> {
    /// let room = chat.with_key("room-7");
    /// room.push("/room/join", &"ann").await?;
    /// room.push("/room/say", &"hi all").await?; // same server as the join
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn with_key(&self, key: impl AsRef<[u8]>) -> Balanced {
        Balanced {
            key: Some(pick::hash(key.as_ref())),
            ..self.clone()
        }
    }

    /// The addresses of the endpoints that take calls now.
    pub fn live_endpoints(&self) -> Vec<Endpoint> {
        self.shared
            .snapshot()
            .iter()
            .map(|s| s.endpoint.clone())
            .collect()
    }

    /// The live session the key of this handle maps to now (or the one a
    /// call without a key would pick), to watch or to close.
    pub fn pick_session(&self) -> Option<Session> {
        self.pick(&[]).map(|s| s.session.clone())
    }

    /// Waits until at least `n` endpoints take calls.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn ready(&self, n: usize) {
        let mut live = self.shared.live_tx.subscribe();
        let _ = live.wait_for(|&live| live >= n).await;
    }

    /// What happens to the endpoints from now on: added, ejected, removed,
    /// failed dials. A receiver that falls more than 256 events behind
    /// loses the oldest.
    pub fn events(&self) -> broadcast::Receiver<BalanceEvent> {
        self.shared.events.subscribe()
    }

    /// Call counts per endpoint, retries and ejections so far.
    pub fn stats(&self) -> BalanceStats {
        let live = self.shared.snapshot();
        let endpoints = self
            .shared
            .counters
            .lock()
            .expect("no panic holds this lock")
            .iter()
            .map(|(addr, c)| {
                let slot = live.iter().find(|s| &s.endpoint.addr == addr);
                EndpointStats {
                    addr: addr.clone(),
                    live: slot.is_some(),
                    in_flight: slot.map_or(0, |s| s.in_flight()),
                    sent: c.sent.load(Ordering::Relaxed),
                    answered: c.answered.load(Ordering::Relaxed),
                    sessions: c.sessions.load(Ordering::Relaxed),
                }
            })
            .collect();
        BalanceStats {
            endpoints,
            retried: self.shared.retried.load(Ordering::Relaxed),
            ejected: self.shared.ejected.load(Ordering::Relaxed),
        }
    }

    /// Stops resolving and redialing and closes every session. Calls in
    /// flight end with [`Error::ConnectionClosed`]; later calls with
    /// [`Error::NotSent`].
    pub async fn close(&self) {
        self.shared.stop.cancel();
        let live = self.shared.snapshot();
        self.shared.update_live(Vec::clear);
        for slot in live.iter() {
            slot.session.close().await;
        }
    }

    /// Pulls `uri` on one endpoint; resent elsewhere only if it was
    /// provably not sent. See [`Session::pull`] for the errors.
    ///
    /// # Errors
    ///
    /// As [`Session::pull_with`]; [`Error::NotSent`] when no endpoint took
    /// the call.
    pub async fn pull<Req, Resp>(&self, uri: &str, arg: &Req) -> Result<Resp, Error>
    where
        Req: Encode + Sync + ?Sized,
        Resp: Decode + Send,
    {
        Caller::pull_with(self, uri, arg, CallOptions::default()).await
    }

    /// Pulls `uri` on one endpoint, resending it elsewhere also when the
    /// connection closed with it in flight: only for calls that are safe
    /// to run twice.
    ///
    /// # Errors
    ///
    /// As [`Balanced::pull`].
    pub async fn pull_idempotent<Req, Resp>(&self, uri: &str, arg: &Req) -> Result<Resp, Error>
    where
        Req: Encode + Sync + ?Sized,
        Resp: Decode + Send,
    {
        Caller::pull_idempotent(self, uri, arg, CallOptions::default()).await
    }

    /// Pushes `uri` on one endpoint; resent elsewhere only if it was
    /// provably not sent.
    ///
    /// # Errors
    ///
    /// As [`Session::push_with`]; [`Error::NotSent`] when no endpoint took
    /// the push.
    pub async fn push<Req>(&self, uri: &str, arg: &Req) -> Result<(), Error>
    where
        Req: Encode + Sync + ?Sized,
    {
        Caller::push_with(self, uri, arg, CallOptions::default()).await
    }

    /// Pulls with an already-encoded body section on one endpoint and
    /// returns the reply frame whatever its status: [`Session::pull_raw`]
    /// over the service, for proxies. Resent elsewhere only if it was
    /// provably not sent.
    ///
    /// # Errors
    ///
    /// As [`Session::pull_raw`]; [`Error::NotSent`] when no endpoint took
    /// the call.
    pub async fn pull_raw(
        &self,
        uri: &str,
        gzip: i32,
        body: bytes::Bytes,
        options: CallOptions,
    ) -> Result<crate::frame::Frame, Error> {
        self.call(uri, false, |s| {
            let body = body.clone();
            async move { s.pull_raw(uri, gzip, body, options).await }
        })
        .await
    }

    /// Pushes an already-encoded body section on one endpoint
    /// ([`Session::push_raw`] over the service, for proxies).
    ///
    /// # Errors
    ///
    /// As [`Session::push_raw`]; [`Error::NotSent`] when no endpoint took
    /// the push.
    pub async fn push_raw(
        &self,
        uri: &str,
        gzip: i32,
        body: bytes::Bytes,
        options: CallOptions,
    ) -> Result<(), Error> {
        self.call(uri, false, |s| {
            let body = body.clone();
            async move { s.push_raw(uri, gzip, body, options).await }
        })
        .await
    }

    fn pick(&self, tried: &[u64]) -> Option<Arc<Slot>> {
        let snapshot = self.shared.snapshot();
        let usable = |s: &Arc<Slot>| !s.session.is_closed() && !tried.contains(&s.session.id());
        if snapshot.iter().all(usable) {
            return pick::pick(&snapshot, self.shared.strategy, self.key, &self.shared.rr);
        }
        let live: Vec<Arc<Slot>> = snapshot.iter().filter(|s| usable(s)).cloned().collect();
        pick::pick(&live, self.shared.strategy, self.key, &self.shared.rr)
    }

    /// Waits up to `wait_for_endpoint` for an endpoint not tried yet.
    async fn pick_or_wait(&self, tried: &[u64]) -> Option<Arc<Slot>> {
        if let Some(slot) = self.pick(tried) {
            return Some(slot);
        }
        let mut live = self.shared.live_tx.subscribe();
        let wait = async {
            loop {
                if let Some(slot) = self.pick(tried) {
                    return Some(slot);
                }
                if self.shared.stop.is_cancelled() || live.changed().await.is_err() {
                    return None;
                }
            }
        };
        tokio::time::timeout(self.shared.wait_for_endpoint, wait)
            .await
            .ok()
            .flatten()
    }

    /// Runs one call: pick, send, and resend on another endpoint while the
    /// error allows it.
    async fn call<T, F, Fut>(&self, uri: &str, idempotent: bool, send: F) -> Result<T, Error>
    where
        F: Fn(Session) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let mut tried: Vec<u64> = Vec::new();
        let mut last: Option<Error> = None;
        while tried.len() < self.shared.max_attempts {
            let Some(slot) = self.pick_or_wait(&tried).await else {
                break;
            };
            let guard = slot.begin();
            let result = send(slot.session.clone()).await;
            drop(guard);
            match result {
                Err(e) if retryable(&e, idempotent) => {
                    tracing::debug!(service = %self.shared.service, uri, endpoint = %slot.endpoint.addr, error = %e, "call failed before an answer; trying another endpoint");
                    tried.push(slot.session.id());
                    last = Some(e);
                    if tried.len() < self.shared.max_attempts {
                        self.shared.retried.fetch_add(1, Ordering::Relaxed);
                    }
                }
                other => {
                    if !matches!(&other, Err(e) if e.is_connection_closed() || e.is_timeout()) {
                        slot.counters.answered.fetch_add(1, Ordering::Relaxed);
                    }
                    return other;
                }
            }
        }
        Err(last.unwrap_or_else(|| Error::NotSent {
            uri: uri.to_owned(),
            reason: format!(
                "no live endpoint of service {:?} within {:?} (Balanced wait_for_endpoint)",
                self.shared.service, self.shared.wait_for_endpoint
            ),
        }))
    }
}

/// Whether an error allows sending the call again elsewhere.
fn retryable(error: &Error, idempotent: bool) -> bool {
    error.is_not_sent() || (idempotent && matches!(error, Error::ConnectionClosed { .. }))
}

impl Caller for Balanced {
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
        self.call(uri, false, move |s| async move {
            s.pull_with(uri, arg, options).await
        })
    }

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
        self.call(uri, true, move |s| async move {
            s.pull_with(uri, arg, options).await
        })
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
        self.call(uri, false, move |s| async move {
            s.push_with(uri, arg, options).await
        })
    }
}

/// The background task: follows the resolver, one task per endpoint.
async fn manage(shared: Arc<Shared>, mut watch: EndpointWatch) {
    let mut tasks: HashMap<String, AbortHandle> = HashMap::new();
    loop {
        let set = match shared.subset {
            None => watch.borrow_and_update().clone(),
            Some((k, client)) => pick::subset(&watch.borrow_and_update(), k, client),
        };
        tasks.retain(|addr, task| {
            let keep = set.iter().any(|e| &e.addr == addr);
            if !keep {
                tracing::info!(service = %shared.service, endpoint = %addr, "endpoint removed by the resolver");
                // Out of the pick set now, before `Removed` is announced:
                // the aborted task drops its `Listed` only when the runtime
                // gets to it, and a watcher woken by the event must already
                // see the endpoint gone.
                shared.update_live(|live| live.retain(|s| &s.endpoint.addr != addr));
                task.abort();
                // Forget its counts too: addresses churn (pod IPs), and a
                // long-lived client must not keep every one it ever saw.
                shared
                    .counters
                    .lock()
                    .expect("no panic holds this lock")
                    .remove(addr);
                shared.event(BalanceEvent::Removed { addr: addr.clone() });
            }
            keep
        });
        for endpoint in set.iter() {
            if !tasks.contains_key(&endpoint.addr) {
                let task = tokio::spawn(run_endpoint(Arc::clone(&shared), endpoint.clone()));
                tasks.insert(endpoint.addr.clone(), task.abort_handle());
            }
        }
        tokio::select! {
            () = shared.stop.cancelled() => break,
            changed = watch.changed() => if changed.is_err() {
                // The resolver stopped watching: keep the endpoints we have.
                shared.stop.cancelled().await;
                break;
            },
        }
    }
    for task in tasks.values() {
        task.abort();
    }
}

/// Keeps one endpoint connected while the resolver lists it: dial, serve
/// calls until the session closes (ejection), back off, dial again.
async fn run_endpoint(shared: Arc<Shared>, endpoint: Endpoint) {
    let counters = Arc::clone(
        shared
            .counters
            .lock()
            .expect("no panic holds this lock")
            .entry(endpoint.addr.clone())
            .or_default(),
    );
    let addr_hash = pick::hash(endpoint.addr.as_bytes());
    let mut attempt = 0u32;
    loop {
        match shared.peer.dial(endpoint.addr.as_str()).await {
            Ok(session) => {
                attempt = 0;
                counters.sessions.fetch_add(1, Ordering::Relaxed);
                let slot = Arc::new(Slot {
                    endpoint: endpoint.clone(),
                    addr_hash,
                    session,
                    in_flight: AtomicUsize::new(0),
                    idle: Notify::new(),
                    counters: Arc::clone(&counters),
                });
                let listed = Listed::add(&shared, &slot);
                let reason = gone(&slot.session).await;
                drop(listed);
                shared.ejected.fetch_add(1, Ordering::Relaxed);
                tracing::info!(service = %shared.service, endpoint = %endpoint.addr, reason, "endpoint ejected");
                shared.event(BalanceEvent::Ejected {
                    addr: endpoint.addr.clone(),
                    reason,
                });
            }
            Err(e) => {
                let retry_in = shared.backoff(attempt);
                attempt = attempt.saturating_add(1);
                tracing::debug!(service = %shared.service, endpoint = %endpoint.addr, error = %e, ?retry_in, "dial failed");
                shared.event(BalanceEvent::DialFailed {
                    addr: endpoint.addr.clone(),
                    error: e.to_string(),
                    retry_in,
                });
                tokio::time::sleep(retry_in).await;
                continue;
            }
        }
        tokio::time::sleep(shared.backoff(0)).await;
    }
}

/// Resolves when a session must leave the pick set; returns why: when the
/// remote peer announces it is going away (a draining server stops getting
/// new calls at once, while the calls it has are answered), or when the
/// session closes.
async fn gone(session: &Session) -> String {
    session.going_away().await;
    if !session.is_closed() {
        return "the remote peer is going away".to_owned();
    }
    session
        .close_reason()
        .unwrap_or("the connection closed")
        .to_owned()
}

/// A slot in the pick set; taken out when dropped (ejected, or the
/// endpoint task aborted because the resolver dropped the endpoint, in
/// which case its session closes once its calls in flight are done).
struct Listed {
    shared: Arc<Shared>,
    slot: Arc<Slot>,
}

impl Listed {
    fn add(shared: &Arc<Shared>, slot: &Arc<Slot>) -> Listed {
        shared.update_live(|live| live.push(Arc::clone(slot)));
        tracing::info!(service = %shared.service, endpoint = %slot.endpoint.addr, session = slot.session.id(), "endpoint added");
        shared.event(BalanceEvent::Added {
            addr: slot.endpoint.addr.clone(),
        });
        Listed {
            shared: Arc::clone(shared),
            slot: Arc::clone(slot),
        }
    }
}

impl Drop for Listed {
    fn drop(&mut self) {
        let id = self.slot.session.id();
        self.shared
            .update_live(|live| live.retain(|s| s.session.id() != id));
        if !self.slot.session.is_closed() {
            let slot = Arc::clone(&self.slot);
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    let _ = tokio::time::timeout(Duration::from_secs(30), slot.drained()).await;
                    slot.session.close().await;
                });
            }
        }
    }
}
