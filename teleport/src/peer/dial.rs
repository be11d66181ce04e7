//! Dialing: connecting to a remote peer, and the sessions this side opens.
//!
//! A dialed connection becomes a session whose peer plugins' `after_dial`
//! hooks run before [`Peer::dial`] returns: a hook that refuses the session
//! closes it and the dial fails with [`PeerError::Refused`].

use std::fmt;
use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, ToSocketAddrs};

use super::Peer;
use crate::error::PeerError;
use crate::plugin::{self, Side};
use crate::session::Session;

impl Peer {
    /// Connects to a remote peer; the connection becomes a session served by
    /// this peer's router.
    ///
    /// # Errors
    ///
    /// [`PeerError::Dial`] or [`PeerError::DialTimeout`].
    pub async fn dial(
        &self,
        addr: impl ToSocketAddrs + fmt::Display,
    ) -> Result<Session, PeerError> {
        if self.inner.shutdown.is_cancelled() {
            return Err(PeerError::ShuttingDown);
        }
        let limit = self.inner.config.max_sessions;
        if self.session_count() >= limit {
            return Err(PeerError::TooManySessions { limit });
        }
        let timeout = self.inner.config.dial_timeout;
        let stream = match tokio::time::timeout(timeout, TcpStream::connect(&addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(source)) => {
                return Err(PeerError::Dial {
                    addr: addr.to_string(),
                    source,
                });
            }
            Err(_) => {
                return Err(PeerError::DialTimeout {
                    addr: addr.to_string(),
                    timeout,
                });
            }
        };
        if self.inner.config.nodelay {
            let _ = stream.set_nodelay(true);
        }
        let dial_err = |source| PeerError::Dial {
            addr: addr.to_string(),
            source,
        };
        let remote = stream.peer_addr().map_err(dial_err)?;
        let local = stream.local_addr().map_err(dial_err)?;
        let session = self.open_session(stream, remote, local);
        tracing::debug!(session = session.id(), %remote, "dialed");
        self.run_dial_hooks(&session, &addr.to_string()).await?;
        Ok(session)
    }

    /// Runs a session over a byte stream this side opened (a TLS client
    /// stream, say), as [`Peer::dial`] does over TCP: the peer plugins'
    /// `after_dial` hooks run before it returns.
    ///
    /// # Errors
    ///
    /// [`PeerError::Refused`] with the [`plugin::SessionRefused`] if a hook
    /// refused the session (which is then closed).
    pub async fn attach_dialed<S>(
        &self,
        io: S,
        remote: SocketAddr,
        local: SocketAddr,
    ) -> Result<Session, PeerError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let session = self.open_session(io, remote, local);
        self.run_dial_hooks(&session, &remote.to_string()).await?;
        Ok(session)
    }

    /// Runs the peer plugins' `after_dial` hooks of a new session.
    async fn run_dial_hooks(&self, session: &Session, addr: &str) -> Result<(), PeerError> {
        if self.inner.config.plugins.is_empty() {
            return Ok(());
        }
        let plugins = self.inner.config.plugins.clone();
        let hooks = plugin::run_session_hooks(plugins, session.clone(), Side::Dialed);
        let Err(refused) = hooks.await else {
            return Ok(());
        };
        // The session is closing; let it leave the registry before reporting.
        let _ = tokio::time::timeout(self.inner.config.dial_timeout, session.closed()).await;
        tracing::debug!(%addr, %refused, "dial refused by a plugin");
        Err(PeerError::Refused(refused))
    }
}
