//! Authentication: the dialer presents a credential, the listener checks it
//! before any handler runs.
//!
//! Right after connecting, the dialing side's [`AuthClient`] pulls
//! [`AUTH_URI`] with its credential (a JSON string) and waits for the reply
//! before [`Peer::dial`](crate::Peer::dial) returns. On the listening side,
//! [`AuthServer`] installs the route for that URI and checks the credential
//! with your async function:
//!
//! - until a credential has passed, every other pull on the session is
//!   answered `401 Unauthorized` without reaching its handler, and every
//!   other push is dropped;
//! - a refused credential (or a call before any credential) gets a non-200
//!   reply (`401` unless your function chose another status), after which
//!   the session is closed; the dialer's `dial` then fails with
//!   [`SessionRefused`](super::SessionRefused) carrying that status;
//! - a session that sends no valid credential within the timeout (10 s by
//!   default) is closed.
//!
//! A passed session carries an [`Authenticated`] value in its
//! [`extensions`](crate::Session::extensions), with whatever your function
//! returned, for handlers to read. Sessions the listening peer dials itself
//! count as authenticated.
//!
//! ```no_run
//! use teleport::plugin::auth::{AuthClient, AuthServer};
//! use teleport::{Ctx, Peer, PeerConfig, Router, Session, Status};
//!
//! # #[allow(dead_code)]
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let verify = |_session: Session, token: String| async move {
//!     if token == "s3cret" { Ok("alice".to_string()) } else { Err(Status::unauthorized()) }
//! };
//! let mut router = Router::new();
//! router.pull("/home/echo", |_: Ctx, s: String| async move { Ok::<_, Status>(s) });
//! let server = Peer::new(PeerConfig::default().plugin(AuthServer::new(verify)), router);
//! let addr = server.listen("127.0.0.1:0").await?;
//!
//! let client = Peer::new(PeerConfig::default().plugin(AuthClient::new("s3cret")), Router::new());
//! let session = client.dial(addr).await?;
//! let echoed: String = session.pull("/home/echo", &"hi").await?;
//! # let _ = echoed; Ok(()) }
//! ```

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::{Plugin, PluginFuture};
use crate::codec::CodecId;
use crate::error::Error;
use crate::frame::{Header, Kind};
use crate::router::{BoxFuture, Ctx, Router};
use crate::session::Session;
use crate::status::{Status, code};

/// The reserved URI a dialer pulls with its credential.
pub const AUTH_URI: &str = "/auth/verify";

/// The dialing side: presents a credential right after connecting.
#[derive(Clone)]
pub struct AuthClient {
    credential: Arc<str>,
}

impl std::fmt::Debug for AuthClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never log the credential itself.
        f.debug_struct("AuthClient").finish_non_exhaustive()
    }
}

impl AuthClient {
    /// A client that presents `credential` (a token, a password...).
    pub fn new(credential: impl Into<String>) -> AuthClient {
        AuthClient {
            credential: credential.into().into(),
        }
    }
}

impl Plugin for AuthClient {
    fn name(&self) -> &str {
        "auth-client"
    }

    fn after_dial<'a>(&'a self, session: &'a Session) -> PluginFuture<'a> {
        Box::pin(async move {
            let credential: &str = &self.credential;
            match session
                .pull::<_, serde_json::Value>(AUTH_URI, credential)
                .codec(CodecId::JSON)
                .await
            {
                Ok(_) => Ok(()),
                Err(Error::Status { status, .. }) => Err(status),
                Err(e) => Err(Status::new(
                    code::UNAUTHORIZED,
                    format!("authentication did not complete: {e}"),
                )),
            }
        })
    }
}

/// Marks a session whose credential passed, with what the verify function
/// returned for it (a user name, say).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authenticated(pub String);

type Verify = dyn Fn(Session, String) -> BoxFuture<Result<String, Status>> + Send + Sync;

/// The listening side: checks credentials with an async function and keeps
/// unauthenticated sessions away from every handler. See the
/// [module docs](self).
#[derive(Clone)]
pub struct AuthServer {
    verify: Arc<Verify>,
    timeout: Duration,
}

impl std::fmt::Debug for AuthServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthServer")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl AuthServer {
    /// A server that checks each credential with `verify`: `Ok(identity)`
    /// lets the session in (the identity is kept as [`Authenticated`]),
    /// `Err(status)` refuses it with that status.
    pub fn new<F, Fut>(verify: F) -> AuthServer
    where
        F: Fn(Session, String) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String, Status>> + Send + 'static,
    {
        AuthServer {
            verify: Arc::new(move |session, credential| Box::pin(verify(session, credential))),
            timeout: Duration::from_secs(10),
        }
    }

    /// How long a new session may take to present a valid credential before
    /// it is closed. Default 10 s.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> AuthServer {
        self.timeout = timeout;
        self
    }
}

fn is_authenticated(session: &Session) -> bool {
    session.extensions().contains::<Authenticated>()
}

impl Plugin for AuthServer {
    fn name(&self) -> &str {
        "auth-server"
    }

    fn install(&self, router: &mut Router) {
        if router.contains_pull(AUTH_URI) {
            tracing::warn!(
                uri = AUTH_URI,
                "a route already serves the auth URI; the auth plugin leaves it in place"
            );
            return;
        }
        let verify = self.verify.clone();
        router.pull(AUTH_URI, move |ctx: Ctx, credential: String| {
            let verify = verify.clone();
            async move {
                let session = ctx.session().clone();
                let identity = verify(session.clone(), credential).await?;
                tracing::debug!(target: "teleport::plugin", session = session.id(), remote = %session.remote_addr(), %identity, "authenticated");
                session.extensions().insert(Authenticated(identity));
                Ok::<_, Status>(true)
            }
        });
    }

    fn after_dial<'a>(&'a self, session: &'a Session) -> PluginFuture<'a> {
        // This side chose to connect: the session is trusted.
        session
            .extensions()
            .insert(Authenticated(String::from("dialed")));
        Box::pin(std::future::ready(Ok(())))
    }

    fn after_accept<'a>(&'a self, session: &'a Session) -> PluginFuture<'a> {
        let (session, timeout) = (session.clone(), self.timeout);
        tokio::spawn(async move {
            tokio::select! {
                _ = session.closed() => {}
                _ = tokio::time::sleep(timeout) => {
                    if !is_authenticated(&session) {
                        tracing::warn!(target: "teleport::plugin", session = session.id(), remote = %session.remote_addr(), "no valid credential within {timeout:?}; closing the session");
                        session.close_because(format!("authentication: no valid credential within {timeout:?}"));
                    }
                }
            }
        });
        Box::pin(std::future::ready(Ok(())))
    }

    fn after_read_header(&self, session: &Session, header: &mut Header) -> Result<(), Status> {
        if !matches!(header.kind, Kind::Pull | Kind::Push) || is_authenticated(session) {
            return Ok(());
        }
        if header.kind == Kind::Pull && header.path() == AUTH_URI {
            return Ok(());
        }
        Err(Status::unauthorized())
    }

    fn after_write_reply(&self, session: &Session, header: &Header) {
        let refused = header.status_code != code::OK && header.status_code != 0;
        if refused && !is_authenticated(session) {
            tracing::warn!(target: "teleport::plugin", session = session.id(), remote = %session.remote_addr(), uri = %header.uri, status = header.status_code, "authentication refused; closing the session");
            session.close_because(format!(
                "authentication refused: {} {}",
                header.status_code, header.status
            ));
        }
    }
}
