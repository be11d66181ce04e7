//! Dialed sessions that come back: automatic reconnection with backoff.
//!
//! [`Peer::dial_with_reconnect`] dials like [`Peer::dial`], then watches the
//! session; when it ends, it dials again, waiting longer after each failed
//! attempt (exponential backoff with a cap and jitter, so clients that lost
//! the same server do not redial in lockstep), until it succeeds, the policy's
//! attempt limit is reached, or [`Redial::stop`] is called. Every step is a
//! [`RedialEvent`] (and a `tracing` event), so the application can tell when
//! it is connected again. While no session is live, [`Redial::session`]
//! returns `None` and [`Redial::connected`] waits for the next one.
//!
//! When the remote peer announces it is going away (a graceful shutdown or
//! restart, see [`Session::is_going_away`]), a fresh session is dialed at
//! once, without backoff, and becomes the live one; the old session stays
//! open until the remote side has answered everything written on it.
//! Calls made on the old session after the notice fail with
//! [`Error::NotSent`](crate::Error::NotSent): safe to make again on
//! [`Redial::connected`]'s session.
//!
//! Pulls in flight when a session is lost are not replayed: they end with
//! [`Error::ConnectionClosed`](crate::Error::ConnectionClosed), since only
//! the application knows whether a call is safe to repeat.
//!
//! The `Redial` and its clones are handles of the live session (see
//! [`Session`]'s lifetime rules): when the last of them is dropped, and no
//! session it handed out is still held, the session closes and no more
//! dials are made.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

use super::Peer;
use super::backoff::{self, Backoff};
use crate::discovery::{DiscoveryError, Resolver};
use crate::error::PeerError;
use crate::session::Session;

/// How a [`Redial`] retries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReconnectPolicy {
    /// Longest wait before the first retry (each wait is drawn between half
    /// of its ceiling and the ceiling, see [`ReconnectPolicy::backoff`]).
    /// Default 50 ms.
    pub initial_backoff: Duration,
    /// Longest wait between retries. Default 5 s.
    pub max_backoff: Duration,
    /// Give up after this many failed attempts in a row; `None` never gives up.
    pub max_attempts: Option<u32>,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        ReconnectPolicy {
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(5),
            max_attempts: None,
        }
    }
}

impl ReconnectPolicy {
    /// Sets the first wait.
    #[must_use]
    pub fn initial_backoff(mut self, d: Duration) -> Self {
        self.initial_backoff = d;
        self
    }
    /// Sets the longest wait.
    #[must_use]
    pub fn max_backoff(mut self, d: Duration) -> Self {
        self.max_backoff = d;
        self
    }
    /// Sets the attempt limit.
    #[must_use]
    pub fn max_attempts(mut self, n: Option<u32>) -> Self {
        self.max_attempts = n;
        self
    }

    /// The longest wait before retry number `attempt` (1-based):
    /// [`initial_backoff`](Self::initial_backoff) doubled for each retry
    /// before it, capped at [`max_backoff`](Self::max_backoff). The wait
    /// actually taken is drawn at random between half of it and all of it
    /// (jitter), and reported in [`RedialEvent::Retrying`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use teleport::peer::ReconnectPolicy;
    ///
    /// let policy = ReconnectPolicy::default()
    ///     .initial_backoff(Duration::from_millis(100))
    ///     .max_backoff(Duration::from_secs(1));
    /// assert_eq!(policy.backoff(1), Duration::from_millis(100));
    /// assert_eq!(policy.backoff(3), Duration::from_millis(400));
    /// assert_eq!(policy.backoff(10), Duration::from_secs(1));
    /// ```
    pub fn backoff(&self, attempt: u32) -> Duration {
        backoff::ceiling(self.initial_backoff, self.max_backoff, attempt)
    }
}

/// What happened to a reconnecting session.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum RedialEvent {
    /// A session is live (the first one, or after a reconnect).
    Connected {
        /// The new session.
        session: Session,
        /// How many sessions this `Redial` has had, this one included.
        generation: u64,
    },
    /// The remote peer announced it is going away; a fresh session is
    /// being dialed.
    GoingAway,
    /// The live session ended.
    Disconnected {
        /// Why, as the session reported it.
        reason: String,
    },
    /// A dial attempt failed; the next comes after `delay`.
    Retrying {
        /// Failed attempts in a row so far.
        attempt: u32,
        /// The wait before the next attempt.
        delay: Duration,
        /// The dial error.
        error: String,
    },
    /// The attempt limit was reached; no more dials.
    GaveUp {
        /// Failed attempts in a row.
        attempts: u32,
    },
}

/// A session to one address that is dialed again when it ends. Cheap to clone.
///
/// # Examples
///
/// ```
/// use teleport::peer::{ReconnectPolicy, RedialEvent};
/// use teleport::{Ctx, Peer, PeerConfig, Router, Status};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut router = Router::new();
/// router.pull("/home/echo", |_: Ctx, s: String| async move { Ok::<_, Status>(s) });
/// let server = Peer::new(PeerConfig::default(), router);
/// let addr = server.listen("127.0.0.1:0").await?;
///
/// let client = Peer::new(PeerConfig::default(), Router::new());
/// let redial = client
///     .dial_with_reconnect(addr.to_string(), ReconnectPolicy::default())
///     .await?;
/// let mut events = redial.events();
///
/// // The connection drops (here: the client closes it)...
/// redial.connected().await?.close().await;
/// // ...and comes back on its own.
/// loop {
///     if let RedialEvent::Connected { .. } = events.recv().await? {
///         break;
///     }
/// }
/// let session = redial.connected().await?;
/// let echoed: String = session.pull("/home/echo", &"again").await?;
/// assert_eq!(echoed, "again");
/// redial.stop().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Redial {
    inner: Arc<Inner>,
}

struct Inner {
    addr: String,
    current: watch::Receiver<Option<Session>>,
    events: broadcast::Sender<RedialEvent>,
    stop: CancellationToken,
}

impl fmt::Debug for Redial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redial")
            .field("addr", &self.inner.addr)
            .field("connected", &self.session().is_some())
            .finish()
    }
}

impl Redial {
    /// The live session, if there is one right now (one whose remote peer
    /// is going away no longer counts).
    pub fn session(&self) -> Option<Session> {
        self.inner
            .current
            .borrow()
            .as_ref()
            .filter(|s| live(s))
            .cloned()
    }

    /// Waits for a live session.
    ///
    /// # Errors
    ///
    /// [`PeerError::ShuttingDown`] once the `Redial` stopped or gave up.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn connected(&self) -> Result<Session, PeerError> {
        let mut rx = self.inner.current.clone();
        loop {
            if let Some(s) = rx.borrow_and_update().as_ref().filter(|s| live(s)) {
                return Ok(s.clone());
            }
            if rx.changed().await.is_err() {
                return Err(PeerError::ShuttingDown);
            }
        }
    }

    /// Events from now on: connected, disconnected, retrying, gave up.
    pub fn events(&self) -> broadcast::Receiver<RedialEvent> {
        self.inner.events.subscribe()
    }

    /// Stops reconnecting and closes the live session.
    pub async fn stop(&self) {
        self.inner.stop.cancel();
        if let Some(s) = self.session() {
            s.close().await;
        }
    }
}

/// Whether new calls can go on `session`.
fn live(session: &Session) -> bool {
    !session.is_closed() && !session.is_going_away()
}

impl Peer {
    /// Dials `addr` and keeps a session to it, dialing again with backoff
    /// whenever it ends. The first dial is made before this returns.
    ///
    /// # Errors
    ///
    /// The first dial's error; later failures are retried and reported as
    /// [`RedialEvent`]s.
    pub async fn dial_with_reconnect(
        &self,
        addr: impl Into<String>,
        policy: ReconnectPolicy,
    ) -> Result<Redial, PeerError> {
        let addr = addr.into();
        let first = self.dial(addr.as_str()).await?;
        Ok(self.keep(Target::Addr(addr), first, policy))
    }

    /// Like [`Peer::dial_with_reconnect`], but to a *service*: each dial
    /// goes to one live endpoint of it, as `resolver` knows them now (a
    /// static list, DNS, etcd; see [`discovery`](crate::discovery)), so a
    /// reconnect after a server went away or restarted finds whichever
    /// instances are up. For calls spread over every endpoint, use a
    /// [`Balanced`](crate::balance::Balanced) client instead.
    ///
    /// ```no_run
    /// use teleport::discovery::StaticResolver;
    /// use teleport::peer::ReconnectPolicy;
    /// use teleport::{Peer, PeerConfig, Router};
    ///
    /// # #[allow(dead_code)]
    /// # async fn demo() -> Result<(), teleport::discovery::DiscoveryError> {
    /// let resolver = StaticResolver::new().with_service("chat", ["10.0.0.1:9090", "10.0.0.2:9090"]);
    /// let peer = Peer::new(PeerConfig::default(), Router::new());
    /// let chat = peer
    ///     .dial_service_with_reconnect(resolver, "chat", ReconnectPolicy::default())
    ///     .await?;
    /// # let _ = chat; Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// The first dial's [`DiscoveryError`]; later failures are retried and
    /// reported as [`RedialEvent`]s.
    pub async fn dial_service_with_reconnect(
        &self,
        resolver: impl Resolver,
        service: impl Into<String>,
        policy: ReconnectPolicy,
    ) -> Result<Redial, DiscoveryError> {
        let target = Target::Service {
            resolver: Arc::new(resolver),
            service: service.into(),
        };
        let first = match &target {
            Target::Service { resolver, service } => {
                crate::discovery::dial(self, resolver.as_ref(), service).await?
            }
            Target::Addr(_) => unreachable!("built as a service just above"),
        };
        Ok(self.keep(target, first, policy))
    }

    /// Keeps a session to `target`, starting with `first`.
    fn keep(&self, target: Target, first: Session, policy: ReconnectPolicy) -> Redial {
        let addr = target.to_string();
        let (tx, rx) = watch::channel(Some(first.clone()));
        let (events, _) = broadcast::channel(64);
        let redial = Redial {
            inner: Arc::new(Inner {
                addr: addr.clone(),
                current: rx,
                events: events.clone(),
                stop: CancellationToken::new(),
            }),
        };
        let stop = redial.inner.stop.clone();
        let peer = self.clone();
        tokio::spawn(async move {
            let mut session = first;
            let mut generation = 1;
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    // Every `Redial` handle is gone: so is the need for a session.
                    _ = tx.closed() => return,
                    _ = session.going_away() => {}
                }
                if session.is_closed() {
                    let reason = session.close_reason().unwrap_or("closed").to_owned();
                    tracing::warn!(%addr, %reason, "session lost; reconnecting");
                    let _ = tx.send(None);
                    let _ = events.send(RedialEvent::Disconnected { reason });
                } else {
                    tracing::info!(%addr, session = session.id(), "the remote peer is going away; dialing a fresh session");
                    let _ = tx.send(None);
                    let _ = events.send(RedialEvent::GoingAway);
                    // Keep the old session open until the remote side has
                    // answered what was written on it and closed it.
                    let old = session.clone();
                    tokio::spawn(async move { old.closed().await });
                }
                let mut attempt = 0u32;
                let mut backoff = Backoff::new(policy.initial_backoff, policy.max_backoff);
                session = loop {
                    if stop.is_cancelled() || peer.is_closing() || tx.is_closed() {
                        return;
                    }
                    match target.dial(&peer).await {
                        Ok(s) => break s,
                        Err(e) => {
                            attempt += 1;
                            if policy.max_attempts.is_some_and(|max| attempt >= max) {
                                tracing::error!(%addr, attempts = attempt, error = %e, "giving up reconnecting");
                                let _ = events.send(RedialEvent::GaveUp { attempts: attempt });
                                return;
                            }
                            let delay = backoff.next_wait();
                            tracing::info!(%addr, attempt, ?delay, error = %e, "reconnect failed; retrying");
                            let _ = events.send(RedialEvent::Retrying {
                                attempt,
                                delay,
                                error: e.to_string(),
                            });
                            tokio::select! {
                                _ = stop.cancelled() => return,
                                _ = tokio::time::sleep(delay) => {}
                            }
                        }
                    }
                };
                generation += 1;
                tracing::info!(%addr, generation, session = session.id(), "reconnected");
                let _ = tx.send(Some(session.clone()));
                let _ = events.send(RedialEvent::Connected {
                    session: session.clone(),
                    generation,
                });
            }
        });
        redial
    }
}

/// What a [`Redial`] dials: one address, or any live endpoint of a service.
enum Target {
    Addr(String),
    Service {
        resolver: Arc<dyn Resolver>,
        service: String,
    },
}

impl Target {
    async fn dial(&self, peer: &Peer) -> Result<Session, String> {
        match self {
            Target::Addr(addr) => peer.dial(addr.as_str()).await.map_err(|e| e.to_string()),
            Target::Service { resolver, service } => {
                crate::discovery::dial(peer, resolver.as_ref(), service)
                    .await
                    .map_err(|e| e.to_string())
            }
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Addr(addr) => f.write_str(addr),
            Target::Service { service, .. } => write!(f, "service {service}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = ReconnectPolicy::default()
            .initial_backoff(Duration::from_millis(10))
            .max_backoff(Duration::from_millis(100));
        let waits: Vec<_> = (1..=6).map(|a| p.backoff(a).as_millis()).collect();
        assert_eq!(waits, vec![10, 20, 40, 80, 100, 100]);
        assert_eq!(p.backoff(u32::MAX), Duration::from_millis(100));
    }
}
