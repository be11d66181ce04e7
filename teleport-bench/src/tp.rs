//! teleport: one peer serving `/echo`, one peer dialing it.

use std::net::SocketAddr;

use teleport::codec::RawBody;
use teleport::{CodecId, Ctx, Peer, PeerConfig, Router, Status};

/// The echo route.
pub const ECHO: &str = "/echo";

/// The echo route for bytes carried as they are (`RawBody`: no copy, no codec).
pub const ECHO_BYTES: &str = "/echo_bytes";

/// The same echo as a `#[teleport::service]`, served at `/bench/echo`.
#[teleport::service]
pub trait Bench {
    /// Returns its argument.
    async fn echo(&self, payload: String) -> String;
}

/// The same echo as a plain `fn` (a synchronous route), at the same URI
/// on a server of its own ([`fn_router`]), so that a `BenchClient` calls
/// it: both systems run the very same client code.
#[teleport::service]
pub trait BenchFn {
    /// Returns its argument.
    #[uri = "/bench/echo"]
    fn echo(&self, payload: String) -> String;
}

struct Echoer;

impl Bench for Echoer {
    async fn echo(&self, payload: String) -> String {
        payload
    }
}

impl BenchFn for Echoer {
    fn echo(&self, payload: String) -> String {
        payload
    }
}

/// The router every teleport server here uses.
pub fn router() -> Router {
    let mut router = Router::new();
    BenchServer::new(Echoer).register(&mut router);
    router.pull(ECHO, |_ctx: Ctx, payload: String| async move {
        Ok::<_, Status>(payload)
    });
    router.pull(ECHO_BYTES, |_ctx: Ctx, payload: RawBody| async move {
        Ok::<_, Status>(payload)
    });
    router
}

/// The peer configuration every teleport peer here uses.
pub fn config() -> PeerConfig {
    PeerConfig::default().body_codec(CodecId::BINCODE)
}

/// Starts an echo server peer with `router` ([`router`] or
/// [`fn_router`]); returns it (keep it alive) and its address.
pub async fn serve(router: Router) -> Result<(Peer, SocketAddr), teleport::PeerError> {
    let peer = Peer::new(config(), router);
    let addr = peer.listen("127.0.0.1:0").await?;
    Ok((peer, addr))
}

/// The router of the second teleport server: its `/bench/echo` is
/// [`BenchFn`]'s plain `fn`.
pub fn fn_router() -> Router {
    let mut router = Router::new();
    BenchFnServer::new(Echoer).register(&mut router);
    router
}

/// A peer to dial from.
pub fn client_peer() -> Peer {
    Peer::new(config(), Router::new())
}
