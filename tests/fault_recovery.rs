//! Peers that crash, stall, stop reading or come back: every pull still ends
//! with a reply or a typed error, slots are released, and opted-in sessions
//! reconnect by themselves.
//!
//! Timeouts, idle limits and backoff run on tokio's paused time: the clock
//! jumps to the next timer whenever every task waits, so no test sleeps.

#[path = "support/wait.rs"]
mod wait;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use teleport::peer::{ReconnectPolicy, RedialEvent};
use teleport::{Ctx, Error, Peer, PeerConfig, Router, Status};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

/// A "peer" that accepts one connection and then neither reads nor writes,
/// like one behind a dead link. Abort the handle to drop it.
async fn mute_peer() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let (_s, _) = listener.accept().await.unwrap();
        std::future::pending::<()>().await;
    });
    (addr, hold)
}

fn echo_router() -> Router {
    let mut r = Router::new();
    r.pull("/home/echo", |_: Ctx, s: String| async move {
        Ok::<_, Status>(s)
    });
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_killed_mid_pull_ends_the_pull_with_a_typed_error_at_once() {
    // A "server" that reads the pull and then dies (drops the socket).
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 64];
        let _ = s.read(&mut buf).await;
        drop(s);
    });
    let client = Peer::new(PeerConfig::default(), Router::new());
    let session = client.dial(addr).await.unwrap();
    let err = session
        .pull::<_, String>("/home/echo", &"x")
        .timeout(Duration::from_secs(30))
        .await
        .unwrap_err();
    // Ended by the close, not by the timeout.
    assert!(!err.is_timeout(), "{err}");
    assert!(err.is_connection_closed(), "{err}");
}

#[tokio::test(start_paused = true)]
async fn a_silent_half_open_peer_is_cut_off_by_the_read_idle_timeout() {
    // Accepts and then never sends a byte, like a peer behind a dead link.
    let (addr, hold) = mute_peer().await;
    let config = PeerConfig::default().read_idle_timeout(Some(Duration::from_millis(300)));
    let client = Peer::new(config, Router::new());
    let session = client.dial(addr).await.unwrap();
    let err = session
        .pull::<_, String>("/home/echo", &"x")
        .timeout(Duration::from_secs(20))
        .await
        .unwrap_err();
    assert!(err.is_connection_closed(), "{err}");
    assert!(
        session
            .close_reason()
            .unwrap()
            .contains("read idle timeout")
    );
    hold.abort();
}

#[tokio::test(start_paused = true)]
async fn a_peer_that_stops_reading_cannot_pile_up_memory() {
    // Accepts and never reads: our writes fill the socket, then our buffer.
    let (addr, hold) = mute_peer().await;
    let config = PeerConfig::default()
        .write_timeout(Some(Duration::from_millis(300)))
        .write_buffer(64 * 1024)
        .send_queue(8);
    let client = Peer::new(config, Router::new());
    let session = client.dial(addr).await.unwrap();
    let big = "x".repeat(256 * 1024);
    let mut sent = 0usize;
    let err = loop {
        match tokio::time::timeout(Duration::from_secs(20), session.push("/sink", &big)).await {
            Ok(Ok(())) => sent += 1,
            Ok(Err(e)) => break e,
            Err(_) => panic!("a push blocked for 20 s instead of failing"),
        }
        assert!(sent < 10_000, "pushes never failed");
    };
    assert!(err.is_connection_closed(), "{err}");
    assert!(session.close_reason().unwrap().contains("write timeout"));
    hold.abort();
}

#[tokio::test(start_paused = true)]
async fn a_handler_that_never_returns_times_out_the_caller_and_is_dropped_with_its_session() {
    let dropped = Arc::new(AtomicBool::new(false));
    struct Flag(Arc<AtomicBool>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let mut router = echo_router();
    let d = dropped.clone();
    router.pull("/home/hang", move |_: Ctx, (): ()| {
        let flag = Flag(d.clone());
        async move {
            let _flag = flag;
            std::future::pending::<()>().await;
            Ok::<(), Status>(())
        }
    });
    let server = Peer::new(PeerConfig::default(), router);
    let addr = server.listen("127.0.0.1:0").await.unwrap();
    // Without telling the server its deadline (lifecycle_deadline.rs covers
    // that), as a Go v2.0 caller: the handler lives until the session ends.
    let client = Peer::new(PeerConfig::default().send_deadlines(false), Router::new());
    let session = client.dial(addr).await.unwrap();
    let err = session
        .pull::<_, ()>("/home/hang", &())
        .timeout(Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    // The session still serves other calls meanwhile.
    let ok: String = session.pull("/home/echo", &"meanwhile").await.unwrap();
    assert_eq!(ok, "meanwhile");
    assert!(!dropped.load(Ordering::SeqCst));
    let server_side = server.sessions().pop().expect("the server's session");
    session.close().await;
    tokio::time::timeout(wait::GUARD, server_side.closed())
        .await
        .expect("the server's session ends when the client closes");
    assert!(
        dropped.load(Ordering::SeqCst),
        "the hung handler was dropped with its session"
    );
    assert_eq!(server.session_count(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_dialed_session_reconnects_with_backoff_after_the_server_restarts() {
    let server = Peer::new(PeerConfig::default(), echo_router());
    let addr = server.listen("127.0.0.1:0").await.unwrap();
    let client = Peer::new(PeerConfig::default(), Router::new());
    let policy = ReconnectPolicy::default()
        .initial_backoff(Duration::from_millis(20))
        .max_backoff(Duration::from_millis(200));
    let redial = client
        .dial_with_reconnect(addr.to_string(), policy)
        .await
        .unwrap();
    let mut events = redial.events();
    let s = redial.connected().await.unwrap();
    let got: String = s.pull("/home/echo", &"before").await.unwrap();
    assert_eq!(got, "before");

    // The server goes away; for a while nothing listens (dials fail). A
    // dial racing the listener's close may still connect once and be cut.
    server.close(Duration::from_secs(1)).await;
    let mut saw_disconnect = false;
    let mut retries = 0;
    while retries < 2 {
        match tokio::time::timeout(Duration::from_secs(5), events.recv())
            .await
            .unwrap()
            .unwrap()
        {
            RedialEvent::Disconnected { .. } => saw_disconnect = true,
            RedialEvent::Retrying { .. } => retries += 1,
            RedialEvent::Connected { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(saw_disconnect);
    assert!(redial.session().is_none());

    // A new server on the same address: the client comes back by itself.
    let server2 = Peer::new(PeerConfig::default(), echo_router());
    server2.listen(addr).await.unwrap();
    let (session, generation) = loop {
        match tokio::time::timeout(Duration::from_secs(5), events.recv())
            .await
            .unwrap()
            .unwrap()
        {
            RedialEvent::Connected {
                session,
                generation,
            } => break (session, generation),
            RedialEvent::Retrying { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    };
    assert!(generation >= 2);
    let got: String = session.pull("/home/echo", &"after").await.unwrap();
    assert_eq!(got, "after");
    let s2 = redial.connected().await.unwrap();
    assert_eq!(s2.id(), session.id());
    redial.stop().await;
}

#[tokio::test(start_paused = true)]
async fn reconnecting_gives_up_after_the_attempt_limit() {
    let server = Peer::new(PeerConfig::default(), echo_router());
    let addr = server.listen("127.0.0.1:0").await.unwrap();
    let client = Peer::new(PeerConfig::default(), Router::new());
    let policy = ReconnectPolicy::default()
        .initial_backoff(Duration::from_millis(5))
        .max_attempts(Some(3));
    let redial = client
        .dial_with_reconnect(addr.to_string(), policy)
        .await
        .unwrap();
    let mut events = redial.events();
    server.close(Duration::from_secs(1)).await;
    loop {
        match tokio::time::timeout(Duration::from_secs(5), events.recv())
            .await
            .unwrap()
            .unwrap()
        {
            RedialEvent::GaveUp { attempts } => {
                assert_eq!(attempts, 3);
                break;
            }
            // A dial racing the listener's close may connect once more.
            RedialEvent::Disconnected { .. }
            | RedialEvent::Retrying { .. }
            | RedialEvent::Connected { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(matches!(
        redial.connected().await,
        Err(teleport::PeerError::ShuttingDown)
    ));
}

/// Many sessions at once on one peer. CI runs a reduced burst; the
/// `soak` example runs 10,000 (`cargo run --release --example soak -- --sessions 10000`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_concurrent_sessions_is_served() {
    const SESSIONS: usize = 500;
    let server = Peer::new(PeerConfig::default(), echo_router());
    let addr = server.listen("127.0.0.1:0").await.unwrap();
    let client = Peer::new(PeerConfig::default(), Router::new());
    let ok = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..SESSIONS {
        let client = client.clone();
        let ok = ok.clone();
        tasks.push(tokio::spawn(async move {
            let s = client.dial(addr).await.unwrap();
            let got: String = s.pull("/home/echo", &format!("s{i}")).await.unwrap();
            assert_eq!(got, format!("s{i}"));
            ok.fetch_add(1, Ordering::Relaxed);
            s
        }));
    }
    let mut sessions = Vec::new();
    for t in tasks {
        sessions.push(t.await.unwrap());
    }
    assert_eq!(ok.load(Ordering::Relaxed), SESSIONS);
    assert_eq!(server.session_count(), SESSIONS);
    client.close(Duration::from_secs(5)).await;
    wait::no_sessions_left(&server).await;
    assert_eq!(server.session_count(), 0, "every session left the registry");
    assert!(matches!(
        sessions[0].pull::<_, String>("/home/echo", &"x").await,
        Err(Error::NotSent { .. })
    ));
}
