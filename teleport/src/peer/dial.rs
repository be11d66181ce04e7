//! Dialing: connecting to a remote peer, and the sessions this side opens.
//!
//! Plain and TLS dials share one path, [`Peer::dial_with`]: take a place
//! among the peer's [`max_sessions`](crate::PeerConfig::max_sessions)
//! before the socket exists, connect, set `TCP_NODELAY`, run the stream's
//! handshake (none for plain TCP), all within the
//! [`dial_timeout`](crate::PeerConfig::dial_timeout), with the same error
//! for the same failure. The new session holds the place until it ends.
//!
//! A dialed session's peer plugins' `after_dial` hooks run before the dial
//! returns: a hook that refuses the session closes it and the dial fails
//! with [`PeerError::Refused`].

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, ToSocketAddrs};

use super::{Peer, Stream};
use crate::error::PeerError;
use crate::plugin::{self, Side};
use crate::session::Session;

impl Peer {
    /// Connects to a remote peer; the connection becomes a session served by
    /// this peer's router.
    ///
    /// # Errors
    ///
    /// [`PeerError::Dial`] or [`PeerError::DialTimeout`];
    /// [`PeerError::TooManySessions`] when the peer already has
    /// [`max_sessions`](crate::PeerConfig::max_sessions) sessions;
    /// [`PeerError::ShuttingDown`]; [`PeerError::Refused`] when a plugin's
    /// dial hook refuses the session.
    pub async fn dial(
        &self,
        addr: impl ToSocketAddrs + fmt::Display,
    ) -> Result<Session, PeerError> {
        self.dial_with(addr, |stream| std::future::ready(Ok(stream)))
            .await
    }

    /// The one dial path, for plain TCP and TLS alike: takes a session
    /// place, connects to `addr`, runs `handshake` over the connected
    /// stream (TLS, say), and starts a session over what it returns, whose
    /// dial hooks run before this returns. Connecting and the handshake
    /// together are bounded by the dial timeout.
    pub(crate) async fn dial_with<S, H, Fut>(
        &self,
        addr: impl ToSocketAddrs + fmt::Display,
        handshake: H,
    ) -> Result<Session, PeerError>
    where
        H: FnOnce(TcpStream) -> Fut,
        Fut: Future<Output = io::Result<S>>,
        S: Stream,
    {
        if self.is_closing() {
            return Err(PeerError::ShuttingDown);
        }
        let permit = self.session_permit()?;
        let config = self.config();
        let connect = async {
            let stream = TcpStream::connect(&addr).await?;
            if config.nodelay {
                let _ = stream.set_nodelay(true);
            }
            let remote = stream.peer_addr()?;
            let local = stream.local_addr()?;
            let io = handshake(stream).await?;
            Ok::<_, io::Error>((io, remote, local))
        };
        let timeout = config.dial_timeout;
        let (io, remote, local) = match tokio::time::timeout(timeout, connect).await {
            Ok(Ok(connected)) => connected,
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
        let session = self.open_session(io, remote, local, permit);
        tracing::debug!(session = session.id(), %remote, "dialed");
        self.run_dial_hooks(&session, &addr.to_string()).await?;
        // The caller's handle keeps a dialed session open (see `Session`).
        Ok(session.into_handle())
    }

    /// Runs a session over a byte stream this side opened (a TLS client
    /// stream, say), as [`Peer::dial`] does over TCP: the peer plugins'
    /// `after_dial` hooks run before it returns.
    ///
    /// # Errors
    ///
    /// [`PeerError::TooManySessions`] when the peer already has
    /// [`max_sessions`](crate::PeerConfig::max_sessions) sessions (`io` is
    /// then dropped); [`PeerError::Refused`] with the
    /// [`plugin::SessionRefused`] if a hook refused the session (which is
    /// then closed).
    pub async fn attach_dialed<S>(
        &self,
        io: S,
        remote: SocketAddr,
        local: SocketAddr,
    ) -> Result<Session, PeerError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let permit = self.session_permit()?;
        let session = self.open_session(io, remote, local, permit);
        self.run_dial_hooks(&session, &remote.to_string()).await?;
        Ok(session.into_handle())
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
