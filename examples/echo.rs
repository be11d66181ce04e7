//! The smallest complete teleport program: a server and a client peer in
//! one process, talking over loopback TCP.
//!
//! It shows a pull (request/reply), a push (one-way) answered by a push
//! back from the server, and a pull that fails with a status.
//!
//! Run with: `cargo run --example echo`

// An example talks to its user on stdout; the library never does.
#![allow(clippy::print_stdout)]

use std::time::Duration;

use teleport::{Ctx, Peer, PeerConfig, Router, Status};
use tokio::sync::mpsc;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The server: a pull handler that echoes, and a push handler that
    // pushes back to whoever pushed, over the same connection.
    let mut router = Router::new();
    router
        .pull("/home/echo", |_ctx: Ctx, text: String| async move {
            Ok::<_, Status>(text)
        })
        .push("/msg/note", |ctx: Ctx, text: String| async move {
            let _ = ctx
                .session()
                .push("/msg/back?from=server", &format!("echo:{text}"))
                .await;
        });
    let server = Peer::new(PeerConfig::default(), router);
    let addr = server.listen("127.0.0.1:0").await?;
    println!("server listening on {addr}");

    // The client is a peer too: it serves /msg/back for the server's pushes.
    let (back_tx, mut back_rx) = mpsc::unbounded_channel();
    let mut client_router = Router::new();
    client_router.push("/msg/back", move |ctx: Ctx, text: String| {
        let back_tx = back_tx.clone();
        async move {
            let _ = back_tx.send(format!(
                "{text} (from={})",
                ctx.query("from").unwrap_or_default()
            ));
        }
    });
    let client = Peer::new(PeerConfig::default(), client_router);
    let session = client.dial(addr).await?;

    let reply: String = session.pull("/home/echo", &"hello teleport").await?;
    println!("pull /home/echo -> {reply:?}");

    session.push("/msg/note", &"ping").await?;
    let back = tokio::time::timeout(Duration::from_secs(5), back_rx.recv()).await?;
    println!(
        "push /msg/note -> server pushed back {:?}",
        back.unwrap_or_default()
    );

    match session.pull::<_, String>("/home/missing", &"?").await {
        Err(e) => println!("pull /home/missing -> {e}"),
        Ok(v) => println!("pull /home/missing -> unexpected {v:?}"),
    }

    session.close().await;
    server.close(Duration::from_secs(1)).await;
    Ok(())
}
