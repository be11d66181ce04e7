//! A teleport server in the spirit of Go Teleport's samples, and
//! wire-compatible with Go Teleport v2.0 clients.
//!
//! It serves:
//! - pull `/home/echo`: a string in, the same string out;
//! - pull `/home/add`: `[i64; 2]` in, their sum out;
//! - push `/msg/note`: a string; the handler pushes `"echo:" + text` back
//!   to the caller on `/msg/back?from=server`.
//!
//! The routes are declared as service traits with `#[teleport::service]`.
//! There is no fallback handler, so any other URI gets `404 Not Found`.
//! Replies use the body codec and gzip level of each pull (JSON, protobuf
//! header by default). Stops on Ctrl-C.
//!
//! Run with: `cargo run --example server -- --addr 127.0.0.1:9090`
//! (then `cargo run --example client -- --addr 127.0.0.1:9090`)

use std::time::Duration;

use teleport::{Ctx, Peer, PeerConfig, Router, Status};

/// `/home/echo` and `/home/add`.
#[teleport::service]
trait Home {
    /// A string in, the same string out.
    async fn echo(&self, text: String) -> String;

    /// Two numbers in (a JSON array `[a, b]` on the wire), their sum out.
    async fn add(&self, a: i64, b: i64) -> Result<i64, Status>;
}

/// `/msg/note`.
#[teleport::service]
trait Msg {
    /// A note; the server pushes `"echo:" + text` back to the caller.
    #[push]
    async fn note(&self, ctx: Ctx, text: String);
}

/// What the server calls on its callers: `/msg/back`, which the `client`
/// example implements.
#[teleport::service]
trait Back {
    /// A note pushed back.
    #[push]
    #[uri = "/msg/back"]
    async fn back(&self, text: String);
}

/// One implementation serves both services, shared by every session.
struct Server;

impl Home for Server {
    async fn echo(&self, text: String) -> String {
        text
    }

    async fn add(&self, a: i64, b: i64) -> Result<i64, Status> {
        a.checked_add(b)
            .ok_or_else(|| Status::bad_request("the sum overflows i64"))
    }
}

impl Msg for Server {
    async fn note(&self, ctx: Ctx, text: String) {
        // Push back to the caller over the session the note came on.
        let back = BackClient::new(ctx.session().clone()).with_query("from=server");
        if let Err(e) = back.back(format!("echo:{text}")).await {
            tracing::warn!(error = %e, "could not push back");
        }
    }
}

fn addr_arg() -> String {
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--addr" {
            if let Some(v) = args.next() {
                return v;
            }
        } else if let Some(v) = a.strip_prefix("--addr=") {
            return v.to_owned();
        }
    }
    "127.0.0.1:9090".to_owned()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,teleport::call=debug".into()),
        )
        .init();

    let mut router = Router::new();
    let server = std::sync::Arc::new(Server);
    HomeServer::from_arc(server.clone()).register(&mut router);
    MsgServer::from_arc(server).register(&mut router);

    let peer = Peer::new(PeerConfig::default(), router);
    let addr = peer.listen(addr_arg()).await?;
    tracing::info!(%addr, "serving /home/echo, /home/add and push /msg/note; Ctrl-C stops");
    tokio::signal::ctrl_c().await?;
    tracing::info!("shutting down");
    peer.close(Duration::from_secs(5)).await;
    Ok(())
}
