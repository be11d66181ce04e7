//! The heartbeat plugin over real loopback TCP: a peer that falls silent is
//! closed and the pulls waiting on it fail; peers that both beat stay up.
//!
//! The beats run on tokio's paused time: the clock jumps from one beat to
//! the next whenever every task waits, so the tests never sleep for real.

#[path = "support/wait.rs"]
mod wait;

use std::time::Duration;

use teleport::plugin::heartbeat::Heartbeat;
use teleport::{Ctx, Peer, PeerConfig, Router, Status};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

#[tokio::test(start_paused = true)]
async fn heartbeat_closes_a_silent_peer_and_fails_its_pending_pulls() {
    // A "peer" that accepts and then never says anything.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let holder = tokio::spawn(async move {
        let (_stream, _) = silent.accept().await.unwrap();
        std::future::pending::<()>().await;
    });

    let client = Peer::new(
        PeerConfig::default().plugin(Heartbeat::new(Duration::from_millis(30), 3)),
        Router::new(),
    );
    let session = client.dial(addr).await.unwrap();
    let err = tokio::time::timeout(
        Duration::from_secs(10),
        session
            .pull::<_, String>("/home/echo", &"anyone?")
            .timeout(None),
    )
    .await
    .expect("the pending pull ends when the heartbeat gives up")
    .unwrap_err();
    assert!(err.is_connection_closed(), "{err}");
    assert!(err.to_string().contains("heartbeat"), "{err}");
    // The pull fails as the close starts; the connection ends right after.
    tokio::time::timeout(Duration::from_secs(5), session.closed())
        .await
        .expect("the session ends");
    assert!(
        session
            .close_reason()
            .unwrap()
            .contains("missed 3 heartbeats")
    );
    holder.abort();
}

#[tokio::test(start_paused = true)]
async fn the_listening_side_closes_a_silent_dialer() {
    let server = Peer::new(
        PeerConfig::default().plugin(Heartbeat::new(Duration::from_millis(30), 2)),
        Router::new(),
    );
    let addr = server.listen("127.0.0.1:0").await.unwrap();
    let mut raw = TcpStream::connect(addr).await.unwrap();
    // The server pings (we read them), then hangs up on us: end of stream.
    let mut seen = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), raw.read_to_end(&mut seen))
        .await
        .expect("the server closes the silent connection")
        .unwrap();
    assert!(!seen.is_empty(), "the server sent pings before giving up");
    wait::no_sessions_left(&server).await;
}

#[tokio::test(start_paused = true)]
async fn two_peers_that_both_beat_stay_connected_while_idle() {
    let beat = || Heartbeat::new(Duration::from_millis(50), 8);
    let mut router = Router::new();
    router.pull("/home/echo", |_: Ctx, s: String| async move {
        Ok::<_, Status>(s)
    });
    let server = Peer::new(PeerConfig::default().plugin(beat()), router);
    let addr = server.listen("127.0.0.1:0").await.unwrap();
    let client = Peer::new(PeerConfig::default().plugin(beat()), Router::new());
    let session = client.dial(addr).await.unwrap();
    // Idle for longer than the silence limit (400 ms): only pings flow.
    // Paused time moves from beat to beat, each ping read before the next.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(!session.is_closed(), "{:?}", session.close_reason());
    let echoed: String = session.pull("/home/echo", &"still here").await.unwrap();
    assert_eq!(echoed, "still here");
}
