//! TLS on listening and dialing (feature `tls`), with rustls.
//!
//! [`Peer::listen_tls`] and [`Peer::serve_tls`] accept only connections that
//! complete a TLS handshake; [`Peer::dial_tls`] verifies the server's
//! certificate against the name given. Once the handshake is done the
//! connection is an ordinary [`Session`], so everything else (pulls,
//! pushes, plugins, shutdown) works the same; a graceful close also ends the
//! TLS stream with `close_notify`. The handshake is bounded by the peer's
//! [`dial_timeout`](crate::PeerConfig::dial_timeout) on both sides, so a
//! client that connects and says nothing cannot hold a slot for long, and
//! a connection holds its place among the peer's
//! [`max_sessions`](crate::PeerConfig::max_sessions) from the moment it is
//! accepted or dialed, handshake included, so handshakes in progress are
//! bounded too.
//!
//! The crypto provider is rustls' `ring` one, which builds without cmake or
//! nasm. [`rustls`] is re-exported, so the configurations are built with the
//! same version this crate uses.
//!
//! ```no_run
//! # #[allow(dead_code)]
//! # async fn demo(
//! #     server_config: std::sync::Arc<teleport::tls::rustls::ServerConfig>,
//! #     client_config: std::sync::Arc<teleport::tls::rustls::ClientConfig>,
//! # ) -> Result<(), Box<dyn std::error::Error>> {
//! use teleport::{Peer, PeerConfig, Router};
//!
//! let server = Peer::new(PeerConfig::default(), Router::new());
//! let addr = server.listen_tls("127.0.0.1:0", server_config).await?;
//!
//! let client = Peer::new(PeerConfig::default(), Router::new());
//! let session = client.dial_tls(addr, "localhost", client_config).await?;
//! # drop(session);
//! # Ok(()) }
//! ```

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, ToSocketAddrs};
pub use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::error::PeerError;
use crate::peer::Peer;
use crate::session::Session;

impl Peer {
    /// Binds `addr` and accepts TLS connections on it, as [`Peer::listen`]
    /// does for plain TCP. Returns the bound address.
    ///
    /// A connection whose handshake fails (a plain TCP client, an unknown
    /// protocol version, a client certificate the config refuses) or does
    /// not finish within the dial timeout is dropped with a log line and
    /// never becomes a session.
    ///
    /// # Errors
    ///
    /// [`PeerError::Listen`] if the address cannot be bound, or
    /// [`PeerError::ShuttingDown`].
    pub async fn listen_tls(
        &self,
        addr: impl ToSocketAddrs + fmt::Display,
        config: Arc<rustls::ServerConfig>,
    ) -> Result<SocketAddr, PeerError> {
        self.serve_tls(crate::peer::bind(addr).await?, config)
    }

    /// Accepts TLS connections on an already-bound listener (for instance
    /// one from [`graceful::inherited_listener`](crate::graceful::inherited_listener)).
    /// See [`Peer::listen_tls`].
    ///
    /// # Errors
    ///
    /// [`PeerError::Listen`] if the listener's address cannot be read, or
    /// [`PeerError::ShuttingDown`].
    pub fn serve_tls(
        &self,
        listener: TcpListener,
        config: Arc<rustls::ServerConfig>,
    ) -> Result<SocketAddr, PeerError> {
        let acceptor = TlsAcceptor::from(config);
        self.serve_with(listener, move |peer, stream, remote, local, permit| {
            let (peer, acceptor) = (peer.clone(), acceptor.clone());
            // The handshake runs on its own task, so a slow one never holds
            // up the accept loop. It holds the connection's session place,
            // so handshakes in progress count against `max_sessions`.
            tokio::spawn(async move {
                let timeout = peer.config().dial_timeout;
                match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) if !peer.is_closing() => {
                        let session = peer.start_session(tls, remote, local, permit);
                        tracing::debug!(session = session.id(), %remote, "accepted (tls)");
                    }
                    Ok(Ok(_)) => tracing::debug!(%remote, "tls connection dropped: the peer is shutting down"),
                    Ok(Err(e)) => tracing::warn!(%remote, error = %e, "tls handshake failed; connection dropped"),
                    Err(_) => tracing::warn!(%remote, ?timeout, "tls handshake timed out; connection dropped"),
                }
            });
        })
    }

    /// Connects to a remote peer over TLS, verifying its certificate for
    /// `server_name` with `config`; the connection becomes a session served
    /// by this peer's router. Connecting and the handshake together are
    /// bounded by the dial timeout.
    ///
    /// # Errors
    ///
    /// [`PeerError::Dial`] when connecting fails, `server_name` is not a
    /// valid DNS name or IP address, or the handshake fails (an untrusted
    /// certificate, a name mismatch, a server that does not speak TLS);
    /// [`PeerError::DialTimeout`]; [`PeerError::TooManySessions`] when the
    /// peer already has [`max_sessions`](crate::PeerConfig::max_sessions)
    /// sessions; [`PeerError::ShuttingDown`]; [`PeerError::Refused`] when a
    /// plugin's dial hook refuses the session.
    pub async fn dial_tls(
        &self,
        addr: impl ToSocketAddrs + fmt::Display,
        server_name: &str,
        config: Arc<rustls::ClientConfig>,
    ) -> Result<Session, PeerError> {
        let name = ServerName::try_from(server_name.to_owned()).map_err(|e| PeerError::Dial {
            addr: addr.to_string(),
            source: io::Error::new(io::ErrorKind::InvalidInput, e),
        })?;
        let connector = TlsConnector::from(config);
        // The plain dial path: the session limit, the timeout around
        // connecting and the handshake, the errors, the dial hooks.
        self.dial_with(addr, move |stream| connector.connect(name, stream))
            .await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::AsyncReadExt;
    use tokio::net::TcpStream;
    use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
    use tokio_rustls::rustls::sign::CertifiedKey;

    use super::*;
    use crate::{PeerConfig, Router};

    /// Serves no certificate: the handshakes in these tests never get as
    /// far as asking for one.
    #[derive(Debug)]
    struct NoCertificate;

    impl ResolvesServerCert for NoCertificate {
        fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
            None
        }
    }

    fn server_config() -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Arc::new(
            rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_cert_resolver(Arc::new(NoCertificate)),
        )
    }

    #[tokio::test]
    async fn tls_handshakes_in_progress_count_against_the_session_limit() {
        // A handshake may take an hour: only the session limit can make the
        // server close a connection here.
        let config = PeerConfig::default()
            .max_sessions(1)
            .dial_timeout(Duration::from_secs(3600));
        let server = Peer::new(config, Router::new());
        let addr = server
            .listen_tls("127.0.0.1:0", server_config())
            .await
            .unwrap();

        // A client that connects and says nothing: its handshake is in
        // progress and holds the one place.
        let _silent = TcpStream::connect(addr).await.unwrap();
        // The next connection, accepted after it, finds no place and is
        // closed at once, before any handshake.
        let mut refused = TcpStream::connect(addr).await.unwrap();
        let mut buf = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(60), refused.read(&mut buf))
            .await
            .expect("the connection past the limit was left open");
        assert!(
            matches!(read, Ok(0)) || read.is_err(),
            "the connection past the limit was not closed: {read:?}"
        );
        assert_eq!(server.session_count(), 0);
    }
}
