//! A reverse proxy between a client and a backend, all three in one process.
//!
//! The proxy forwards every call under `/math` to the backend without
//! decoding it (the gzip-compressed body reaches the backend byte for byte),
//! serves `/proxy/ping` itself, answers `502 Bad Gateway` for a prefix whose
//! upstream is down, and `504 Gateway Timeout` when the backend is too slow.
//! It prints each call and exits by itself.
//!
//! Run with: `cargo run --example proxy`
#![allow(clippy::print_stdout)]

use std::time::Duration;

use teleport::proxy::{Proxy, Upstream};
use teleport::{Ctx, Peer, PeerConfig, Router, Status};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The backend: plain typed handlers, unaware of the proxy.
    let mut backend_router = Router::new();
    backend_router
        .pull("/math/add", |_: Ctx, [a, b]: [i64; 2]| async move {
            Ok::<_, Status>(a + b)
        })
        .pull("/math/echo", |ctx: Ctx, text: String| async move {
            Ok::<_, Status>(format!("{text} (query: {})", ctx.query_string()))
        })
        .pull("/math/slow", |_: Ctx, ms: u64| async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok::<_, Status>(ms)
        });
    let backend = Peer::new(PeerConfig::default(), backend_router);
    let backend_addr = backend.listen("127.0.0.1:0").await?;

    // An address nobody listens on, for the 502.
    let gone = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let gone_addr = gone.local_addr()?;
    drop(gone);

    // The proxy: its own route, then everything under /math to the backend.
    let mut proxy_router = Router::new();
    proxy_router.pull("/proxy/ping", |_: Ctx, _: ()| async move {
        Ok::<_, Status>("pong from the proxy")
    });
    Proxy::new()
        .prefix("/math", Upstream::dial(backend_addr.to_string()))
        .prefix("/archive", Upstream::dial(gone_addr.to_string()))
        .timeout(Duration::from_millis(200))
        .install(&mut proxy_router);
    let proxy = Peer::new(PeerConfig::default(), proxy_router);
    let proxy_addr = proxy.listen("127.0.0.1:0").await?;
    println!("backend on {backend_addr}, proxy on {proxy_addr}");

    // The client only knows the proxy.
    let client = Peer::new(PeerConfig::default(), Router::new());
    let session = client.dial(proxy_addr).await?;

    let sum: i64 = session.pull("/math/add", &[40, 2]).await?;
    println!("/math/add [40, 2]            -> {sum}");
    assert_eq!(sum, 42);

    let long = "teleport ".repeat(100);
    let echoed: String = session
        .pull("/math/echo?lang=en", &long)
        .gzip(teleport::GzipLevel::L6)
        .await?;
    println!(
        "/math/echo?lang=en (gzip 6)  -> {} bytes, ends with {:?}",
        echoed.len(),
        &echoed[echoed.len() - 15..]
    );
    assert!(echoed.ends_with("(query: lang=en)"));

    let pong: String = session.pull("/proxy/ping", &()).await?;
    println!("/proxy/ping                  -> {pong}");

    let err = session
        .pull::<_, i64>("/archive/get", &1)
        .await
        .unwrap_err();
    println!("/archive/get (upstream down) -> {err}");
    assert_eq!(err.status().map(Status::code), Some(502));

    let err = session
        .pull::<_, u64>("/math/slow", &1_000u64)
        .await
        .unwrap_err();
    println!("/math/slow 1000 ms           -> {err}");
    assert_eq!(err.status().map(Status::code), Some(504));

    let err = session.pull::<_, ()>("/nowhere", &()).await.unwrap_err();
    println!("/nowhere (no route)          -> {err}");
    assert_eq!(err.status().map(Status::code), Some(404));

    for peer in [&client, &proxy, &backend] {
        peer.shutdown(Duration::from_secs(1)).await;
    }
    println!("done");
    Ok(())
}
