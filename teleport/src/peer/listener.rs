//! Listening: binding, the accept loop, and the sessions this side
//! accepts.
//!
//! Each listener is served by a task of its own that accepts connections
//! until the peer stops accepting ([`Peer::close`], [`Peer::shutdown`]).
//! An accepted connection first takes a place among the peer's
//! [`max_sessions`](crate::PeerConfig::max_sessions) (past the limit it is
//! closed at once), then becomes a session, maybe after a handshake that
//! holds the place meanwhile; the peer plugins' `after_accept` hooks run on
//! it in the background while its incoming calls wait. A failed accept (out
//! of file descriptors, say) is logged and retried after a pause, so a
//! listener never stops on its own.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};
use tokio::sync::OwnedSemaphorePermit;

use super::backoff::Backoff;
use super::{Peer, Stream, lock};
use crate::error::PeerError;
use crate::plugin::{self, Side};
use crate::session::Session;

impl Peer {
    /// Binds `addr` and accepts connections on it in a background task until
    /// [`Peer::close`]. Returns the bound address (useful with port 0).
    ///
    /// # Errors
    ///
    /// [`PeerError::Listen`] if the address cannot be bound.
    pub async fn listen(
        &self,
        addr: impl ToSocketAddrs + fmt::Display,
    ) -> Result<SocketAddr, PeerError> {
        self.serve(bind(addr).await?)
    }

    /// Accepts connections on an already-bound listener in a background task.
    ///
    /// # Errors
    ///
    /// [`PeerError::Listen`] if the listener's address cannot be read, or
    /// [`PeerError::ShuttingDown`].
    pub fn serve(&self, listener: TcpListener) -> Result<SocketAddr, PeerError> {
        self.serve_with(listener, |peer, stream, remote, local, permit| {
            let session = peer.start_session(stream, remote, local, permit);
            tracing::debug!(session = session.id(), %remote, "accepted");
        })
    }

    /// Accepts connections on `listener` in a background task and hands each
    /// one, with the session place it took, to `on_accept` (which starts a
    /// session, maybe after a handshake).
    pub(crate) fn serve_with<F>(
        &self,
        listener: TcpListener,
        on_accept: F,
    ) -> Result<SocketAddr, PeerError>
    where
        F: Fn(&Peer, TcpStream, SocketAddr, SocketAddr, OwnedSemaphorePermit) + Send + 'static,
    {
        if self.inner.shutdown.is_cancelled() {
            return Err(PeerError::ShuttingDown);
        }
        let local = listener.local_addr().map_err(|source| PeerError::Listen {
            addr: "<listener>".into(),
            source,
        })?;
        lock(&self.inner.listen_addrs).push(local);
        self.changed();
        let listener = Arc::new(listener);
        lock(&self.inner.listeners).push(listener.clone());
        tracing::info!(addr = %local, "listening");
        let peer = self.clone();
        tokio::spawn(async move {
            peer.accept_loop(listener, local, on_accept).await;
        });
        Ok(local)
    }

    async fn accept_loop<F>(self, listener: Arc<TcpListener>, local: SocketAddr, on_accept: F)
    where
        F: Fn(&Peer, TcpStream, SocketAddr, SocketAddr, OwnedSemaphorePermit),
    {
        let mut backoff = Backoff::new(Duration::from_millis(5), Duration::from_secs(1));
        loop {
            let accepted = tokio::select! {
                biased;
                _ = self.inner.shutdown.cancelled() => break,
                r = listener.accept() => r,
            };
            match accepted {
                Ok((stream, remote)) => {
                    backoff.reset();
                    let permit = match self.session_permit() {
                        Ok(permit) => permit,
                        Err(e) => {
                            tracing::warn!(%remote, error = %e, "connection refused");
                            drop(stream);
                            continue;
                        }
                    };
                    if self.inner.config.nodelay {
                        let _ = stream.set_nodelay(true);
                    }
                    on_accept(&self, stream, remote, local, permit);
                }
                Err(e) => {
                    // Out of file descriptors and similar: log, back off, keep serving.
                    let wait = backoff.next_wait();
                    tracing::error!(addr = %local, error = %e, "accept failed; retrying in {wait:?}");
                    tokio::time::sleep(wait).await;
                }
            }
        }
        lock(&self.inner.listen_addrs).retain(|a| *a != local);
        lock(&self.inner.listeners).retain(|l| !Arc::ptr_eq(l, &listener));
        self.changed();
        tracing::info!(addr = %local, "stopped listening");
    }

    /// Runs a session over any byte stream (a TLS stream, an in-memory
    /// duplex...). `remote` and `local` are what the session reports.
    ///
    /// The session counts as accepted: the peer plugins' `after_accept`
    /// hooks run on it in the background. Use [`Peer::attach_dialed`] for a
    /// stream this side opened.
    ///
    /// Like an accepted connection, it needs a place among the peer's
    /// [`max_sessions`](crate::PeerConfig::max_sessions): past the limit
    /// the session returned is already closing, with the
    /// [`PeerError::TooManySessions`] message as its close reason, and
    /// never joins [`Peer::sessions`].
    pub fn attach<S>(&self, io: S, remote: SocketAddr, local: SocketAddr) -> Session
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        match self.session_permit() {
            Ok(permit) => self.start_session(io, remote, local, permit),
            Err(e) => {
                tracing::warn!(%remote, error = %e, "attached stream refused");
                self.refuse_session(io, remote, local, &e)
            }
        }
    }

    /// Starts a session this side accepted, holding `permit` until it ends:
    /// the peer plugins' `after_accept` hooks run on it in the background.
    pub(crate) fn start_session(
        &self,
        io: impl Stream,
        remote: SocketAddr,
        local: SocketAddr,
        permit: OwnedSemaphorePermit,
    ) -> Session {
        let session = self.open_session(io, remote, local, permit);
        self.spawn_accept_hooks(&session);
        session
    }

    /// Runs the peer plugins' `after_accept` hooks of a new session in the
    /// background (the session holds its incoming calls until they pass).
    fn spawn_accept_hooks(&self, session: &Session) {
        if self.inner.config.plugins.is_empty() {
            return;
        }
        let hooks = plugin::run_session_hooks(
            self.inner.config.plugins.clone(),
            session.clone(),
            Side::Accepted,
        );
        tokio::spawn(hooks);
    }

    /// The addresses this peer listens on.
    pub fn listen_addrs(&self) -> Vec<SocketAddr> {
        lock(&self.inner.listen_addrs).clone()
    }

    /// The listeners being served (for a restart to hand over).
    pub(crate) fn listeners(&self) -> Vec<Arc<TcpListener>> {
        lock(&self.inner.listeners).clone()
    }

    /// Stops every accept loop and refuses new listeners and dials.
    pub(crate) fn stop_accepting(&self) {
        self.inner.shutdown.cancel();
    }
}

/// Binds a listening socket, naming the address in the error.
pub(crate) async fn bind(
    addr: impl ToSocketAddrs + fmt::Display,
) -> Result<TcpListener, PeerError> {
    TcpListener::bind(&addr)
        .await
        .map_err(|source| PeerError::Listen {
            addr: addr.to_string(),
            source,
        })
}
