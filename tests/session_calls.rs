//! Pulls and pushes over real loopback TCP: round trips, multiplexing,
//! both directions at once, timeouts, and what happens when a side goes away.
//!
//! Slow handlers and timeouts run on tokio's paused time: the clock jumps to
//! the next timer whenever every task waits, so no test sleeps for real.

#[path = "support/wait.rs"]
mod wait;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use teleport::{CodecId, Ctx, Error, Peer, PeerConfig, Router, Session, Status};
use tokio::sync::mpsc;

fn echo_router() -> Router {
    let mut router = Router::new();
    router
        .pull("/home/echo", |_: Ctx, s: String| async move {
            Ok::<_, Status>(s)
        })
        .pull("/home/add", |_: Ctx, [a, b]: [i64; 2]| async move {
            Ok::<_, Status>(a + b)
        })
        .pull("/home/sleep", |_: Ctx, ms: u64| async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok::<_, Status>(ms)
        });
    router
}

async fn pair(server_router: Router, client_router: Router) -> (Peer, Peer, Session) {
    let server = Peer::new(PeerConfig::default(), server_router);
    let addr = server.listen("127.0.0.1:0").await.unwrap();
    let client = Peer::new(PeerConfig::default(), client_router);
    let session = client.dial(addr).await.unwrap();
    (server, client, session)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_round_trips_with_every_codec_with_and_without_gzip() {
    let (_server, _client, session) = pair(echo_router(), Router::new()).await;
    for codec in [CodecId::JSON, CodecId::STRING, CodecId::BINCODE] {
        for gzip in [0, 1, 5, 9] {
            let text = format!("hello {codec} gzip {gzip} ").repeat(10);
            let got: String = session
                .pull("/home/echo", &text)
                .codec(codec)
                .gzip(teleport::GzipLevel::new(gzip).unwrap())
                .await
                .unwrap();
            assert_eq!(got, text, "codec {codec} gzip {gzip}");
        }
    }
    let sum: i64 = session.pull("/home/add", &[40, 2]).await.unwrap();
    assert_eq!(sum, 42);
}

/// Large `String` and `Vec<u8>` replies leave the handler as they are,
/// without being encoded: whatever the size (on both sides of where that
/// starts), codec and gzip level, the caller decodes exactly what the
/// handler returned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn string_and_byte_replies_of_every_size_decode_in_every_codec() {
    let mut router = echo_router();
    router.pull("/home/bytes", |_: Ctx, n: usize| async move {
        Ok::<_, Status>((0..n).map(|i| (i % 251) as u8).collect::<Vec<u8>>())
    });
    let (_server, _client, session) = pair(router, Router::new()).await;
    for n in [0usize, 1023, 1024, 1025, 8_191, 8_192, 70_000] {
        let text: String = (0..n).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
        for codec in [CodecId::JSON, CodecId::STRING, CodecId::BINCODE] {
            for gzip in [0, 1] {
                let level = teleport::GzipLevel::new(gzip).unwrap();
                let got: String = session
                    .pull("/home/echo", &text)
                    .codec(codec)
                    .gzip(level)
                    .await
                    .unwrap();
                assert!(got == text, "{n} bytes of text, codec {codec} gzip {gzip}");
                if codec == CodecId::STRING {
                    continue; // a byte vector is not text
                }
                let bytes: Vec<u8> = session
                    .pull("/home/bytes", &n)
                    .codec(codec)
                    .gzip(level)
                    .await
                    .unwrap();
                let expected: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
                assert!(bytes == expected, "{n} bytes, codec {codec} gzip {gzip}");
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn thousand_pulls_in_flight_on_one_connection_come_back_out_of_order() {
    let (_server, _client, session) = pair(echo_router(), Router::new()).await;
    let mut calls = Vec::new();
    for i in 0..1000u64 {
        let session = session.clone();
        // Later calls sleep less, so replies come back out of order.
        let ms = (1000 - i) % 50;
        calls.push(tokio::spawn(async move {
            let got: u64 = session.pull("/home/sleep", &ms).await.unwrap();
            assert_eq!(got, ms);
        }));
    }
    for c in calls {
        c.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_uri_gets_not_found() {
    let (_server, _client, session) = pair(echo_router(), Router::new()).await;
    let err = session
        .pull::<_, String>("/nope/missing", &"x")
        .await
        .unwrap_err();
    let status = err.status().expect("a status error");
    assert_eq!(status.code(), 404);
    assert_eq!(status.text(), "Not Found");
}

#[tokio::test(start_paused = true)]
async fn per_call_timeout_fires_and_the_session_keeps_working() {
    let (_server, _client, session) = pair(echo_router(), Router::new()).await;
    let err = session
        .pull::<_, u64>("/home/sleep", &500u64)
        .timeout(Duration::from_millis(50))
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert_eq!(
        err.to_string(),
        "pull /home/sleep timed out after 50ms without a reply"
    );
    let ok: String = session.pull("/home/echo", &"still here").await.unwrap();
    assert_eq!(ok, "still here");
}

#[tokio::test(start_paused = true)]
async fn a_timeout_too_long_for_the_clock_waits_for_the_reply() {
    // One pull in flight at most, so that the second waits for a free
    // place: the caller then reads the clock itself; the first has its
    // deadline set by the connection task.
    let server = Peer::new(PeerConfig::default(), echo_router());
    let addr = server.listen("127.0.0.1:0").await.unwrap();
    let client = Peer::new(PeerConfig::default().max_pulls_in_flight(1), Router::new());
    let session = client.dial(addr).await.unwrap();
    let slow = session
        .pull::<_, u64>("/home/sleep", &200u64)
        .timeout(Duration::MAX);
    let waiting = session
        .pull::<_, String>("/home/echo", &"after")
        .timeout(Duration::MAX);
    let (slow, waiting) = tokio::join!(slow, waiting);
    assert_eq!(slow.unwrap(), 200);
    assert_eq!(waiting.unwrap(), "after");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_sides_pull_and_push_at_once_on_one_connection() {
    let (pushes_tx, mut pushes_rx) = mpsc::unbounded_channel::<String>();
    let mut client_router = Router::new();
    client_router.pull("/client/whoami", |_: Ctx, (): ()| async move {
        Ok::<_, Status>("client".to_string())
    });
    let tx = pushes_tx.clone();
    client_router.push("/client/note", move |_: Ctx, s: String| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(s);
        }
    });

    let mut server_router = echo_router();
    server_router.pull("/server/ask_back", |ctx: Ctx, (): ()| async move {
        // While serving the client's pull, pull the client on the same connection.
        let who: String = ctx
            .session()
            .pull("/client/whoami", &())
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        ctx.session()
            .push("/client/note", &format!("server saw {who}"))
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok::<_, Status>(who)
    });
    let (server, _client, session) = pair(server_router, client_router).await;

    let mut calls = Vec::new();
    for _ in 0..50 {
        let session = session.clone();
        calls.push(tokio::spawn(async move {
            let who: String = session.pull("/server/ask_back", &()).await.unwrap();
            assert_eq!(who, "client");
        }));
    }
    // The server pulls the client directly too, at the same time, once it
    // has accepted the session (`dial` returns before that).
    tokio::time::timeout(
        wait::GUARD,
        server.wait_for(|peer| peer.session_count() == 1),
    )
    .await
    .expect("the server accepted the session");
    let server_side = server.sessions().pop().expect("one session");
    for _ in 0..50 {
        let s = server_side.clone();
        calls.push(tokio::spawn(async move {
            let who: String = s.pull("/client/whoami", &()).await.unwrap();
            assert_eq!(who, "client");
        }));
    }
    for c in calls {
        c.await.unwrap();
    }
    for _ in 0..50 {
        let note = tokio::time::timeout(Duration::from_secs(5), pushes_rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(note, "server saw client");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_dropping_mid_pull_ends_the_pull_with_connection_closed() {
    // `/home/wait` tells the test it is running, then never answers.
    let (running_tx, mut running) = mpsc::unbounded_channel();
    let mut router = echo_router();
    router.pull("/home/wait", move |_: Ctx, (): ()| {
        let _ = running_tx.send(());
        std::future::pending::<Result<u64, Status>>()
    });
    let (server, _client, session) = pair(router, Router::new()).await;
    let pending = {
        let session = session.clone();
        tokio::spawn(async move { session.pull::<_, u64>("/home/wait", &()).await })
    };
    tokio::time::timeout(Duration::from_secs(10), running.recv())
        .await
        .expect("the handler runs")
        .unwrap();
    server.close(Duration::from_secs(1)).await;
    let err = tokio::time::timeout(Duration::from_secs(5), pending)
        .await
        .expect("the pull ended")
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, Error::ConnectionClosed { .. }), "{err}");
    session.closed().await;
    let again = session
        .pull::<_, String>("/home/echo", &"x")
        .await
        .unwrap_err();
    assert!(again.is_connection_closed(), "{again}");
}

/// A handler that is not done when first polled (here it yields once) must
/// be woken by the connection task's own waker: on a quiet session nothing
/// else would ever poll it again. Bounded so that a lost wake-up fails the
/// test instead of hanging it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_that_yields_on_a_quiet_session_still_replies() {
    let mut router = Router::new();
    router.pull("/home/yield", |_: Ctx, n: u32| async move {
        tokio::task::yield_now().await;
        Ok::<_, Status>(n + 1)
    });
    let (_server, _client, session) = pair(router, Router::new()).await;
    for n in 0..20u32 {
        let reply = tokio::time::timeout(
            Duration::from_secs(10),
            session.pull::<_, u32>("/home/yield", &n),
        )
        .await
        .expect("the handler was never polled again: no reply")
        .unwrap();
        assert_eq!(reply, n + 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_gets_500_and_the_server_keeps_serving() {
    let mut router = echo_router();
    router.pull("/home/panic", |_: Ctx, (): ()| async move {
        if true {
            panic!("boom");
        }
        Ok::<(), Status>(())
    });
    let (_server, _client, session) = pair(router, Router::new()).await;
    // Again and again: the session keeps a finished handler's future box
    // for the next call, a panicked one included.
    for n in 0..3 {
        let err = session.pull::<_, ()>("/home/panic", &()).await.unwrap_err();
        assert_eq!(err.status().map(Status::code), Some(500), "call {n}");
        let ok: String = session.pull("/home/echo", &"alive").await.unwrap();
        assert_eq!(ok, "alive", "call {n}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_reach_their_handler_in_order() {
    let count = Arc::new(AtomicUsize::new(0));
    let (tx, mut rx) = mpsc::unbounded_channel::<u32>();
    let mut router = Router::new();
    let c = count.clone();
    router.push("/msg/n", move |_: Ctx, n: u32| {
        let tx = tx.clone();
        c.fetch_add(1, Ordering::Relaxed);
        async move {
            let _ = tx.send(n);
        }
    });
    let (_server, _client, session) = pair(router, Router::new()).await;
    for n in 0..100u32 {
        session.push("/msg/n", &n).await.unwrap();
    }
    for n in 0..100u32 {
        assert_eq!(rx.recv().await, Some(n));
    }
    assert_eq!(count.load(Ordering::Relaxed), 100);
}

/// A connection reuses the contexts of finished calls: nothing of one
/// call's context (its reply codec, gzip level, deadline, URI) shows in the
/// next one, and a URI a handler kept stays what it was.
#[tokio::test]
async fn no_state_of_a_finished_call_reaches_the_next_one_on_the_session() {
    let kept = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut router = Router::new();
    {
        let kept = kept.clone();
        router
            .pull("/ctx/set", |ctx: Ctx, (): ()| async move {
                ctx.set_reply_codec(CodecId::STRING);
                ctx.set_reply_gzip(teleport::GzipLevel::L5);
                Ok::<_, Status>("set".to_owned())
            })
            .pull("/ctx/show", move |ctx: Ctx, (): ()| {
                let kept = kept.clone();
                async move {
                    kept.lock().unwrap().push(ctx.header().uri.clone());
                    Ok::<_, Status>((
                        ctx.reply_codec().0 as char,
                        ctx.reply_gzip().get(),
                        ctx.deadline().is_some(),
                        ctx.query("n"),
                    ))
                }
            });
    }
    let (_server, _client, session) = pair(router, Router::new()).await;
    for n in 0..50 {
        let set: String = session
            .pull("/ctx/set", &())
            .timeout(Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(set, "set");
        let shown: (char, i32, bool, Option<String>) = session
            .pull(&format!("/ctx/show?n={n}"), &())
            .timeout(None)
            .await
            .unwrap();
        assert_eq!(shown, ('j', 0, false, Some(n.to_string())), "call {n}");
    }
    let kept = kept.lock().unwrap();
    assert_eq!(kept.len(), 50);
    for (n, uri) in kept.iter().enumerate() {
        assert_eq!(&**uri, format!("/ctx/show?n={n}"));
    }
}

/// Large bodies (past the size the write side queues without copying)
/// and small ones, pulls, replies and pushes, interleaved on one session:
/// every byte arrives intact and pushes arrive in the order they were sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_and_small_bodies_interleave_intact_and_in_order() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut router = echo_router();
    router
        .pull(
            "/home/raw",
            |_: Ctx, body: teleport::codec::RawBody| async move { Ok::<_, Status>(body) },
        )
        .push("/home/seen", move |_: Ctx, s: String| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(s);
            }
        });
    let (_server, _client, session) = pair(router, Router::new()).await;
    let body = |n: usize, i: usize| -> String {
        (0..n)
            .map(|k| char::from(b'a' + ((i + k) % 26) as u8))
            .collect()
    };
    // 1.5 MB: the read buffer's room past a large frame is capped (1 MiB).
    let sizes = [3, 9_000, 100, 70_000, 8_191, 8_192, 1, 200_000, 1_500_000];
    let mut calls = Vec::new();
    for (i, &n) in sizes.iter().cycle().take(54).enumerate() {
        let text = body(n, i);
        session.push("/home/seen", &text).await.unwrap();
        let session = session.clone();
        calls.push(tokio::spawn(async move {
            let echoed: String = session.pull("/home/echo", &text).await.unwrap();
            assert_eq!(echoed, text, "echo of {n} bytes");
            let raw = teleport::codec::RawBody::from(bytes::Bytes::from(text.clone()));
            let back: teleport::codec::RawBody = session.pull("/home/raw", &raw).await.unwrap();
            assert_eq!(&back.0[..], text.as_bytes(), "raw echo of {n} bytes");
        }));
    }
    for call in calls {
        call.await.unwrap();
    }
    for (i, &n) in sizes.iter().cycle().take(54).enumerate() {
        assert_eq!(rx.recv().await.unwrap(), body(n, i), "push {i} in order");
    }
}

/// A push awaited with `flushed()` is on the wire when it returns, whatever
/// its size: small ones are copied into the write buffer, large ones
/// (8 KiB and up) are queued as they are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flushed_pushes_of_every_size_arrive() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut router = Router::new();
    router.push("/home/seen", move |_: Ctx, s: String| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(s.len());
        }
    });
    let (_server, _client, session) = pair(router, Router::new()).await;
    let sizes = [10, 9_000, 100_000, 5];
    for &n in &sizes {
        session
            .push("/home/seen", &"x".repeat(n))
            .flushed()
            .await
            .unwrap();
    }
    for &n in &sizes {
        assert_eq!(rx.recv().await, Some(n));
    }
}

/// Synchronous handlers (`pull_sync`, `push_sync`) answer as async ones
/// do: every codec and gzip level, a status for `Err`, `400` for a body
/// that does not decode, the call's context, pushes in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_handlers_reply_and_take_pushes_like_async_ones() {
    let (tx, mut rx) = mpsc::unbounded_channel::<u32>();
    let mut router = Router::new();
    router
        .pull_sync("/sync/echo", |_: &Ctx, s: String| Ok::<_, Status>(s))
        .pull_sync("/sync/div", |_: &Ctx, [a, b]: [i64; 2]| {
            a.checked_div(b)
                .ok_or_else(|| Status::new(599, "division by zero"))
        })
        .pull_sync("/sync/where", |ctx: &Ctx, (): ()| {
            Ok::<_, Status>(format!("{}?{}", ctx.path(), ctx.query_string()))
        })
        .push_sync("/sync/n", move |_: &Ctx, n: u32| {
            let _ = tx.send(n);
        });
    let (_server, _client, session) = pair(router, Router::new()).await;
    for codec in [CodecId::JSON, CodecId::STRING, CodecId::BINCODE] {
        for gzip in [0, 5] {
            let text = format!("sync {codec} gzip {gzip} ").repeat(100);
            let got: String = session
                .pull("/sync/echo", &text)
                .codec(codec)
                .gzip(teleport::GzipLevel::new(gzip).unwrap())
                .await
                .unwrap();
            assert_eq!(got, text, "codec {codec} gzip {gzip}");
        }
    }
    assert_eq!(
        session.pull::<_, i64>("/sync/div", &[84, 2]).await.unwrap(),
        42
    );
    let err = session
        .pull::<_, i64>("/sync/div", &[1, 0])
        .await
        .unwrap_err();
    let status = err.status().expect("the handler's status");
    assert_eq!((status.code(), status.text()), (599, "division by zero"));
    let err = session
        .pull::<_, i64>("/sync/div", &"two numbers")
        .await
        .unwrap_err();
    assert_eq!(err.status().map(Status::code), Some(400));
    let place: String = session.pull("/sync/where?k=v", &()).await.unwrap();
    assert_eq!(place, "/sync/where?k=v");
    for n in 0..100u32 {
        session.push("/sync/n", &n).await.unwrap();
    }
    for n in 0..100u32 {
        assert_eq!(rx.recv().await, Some(n));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_sync_handler_gets_500_and_the_server_keeps_serving() {
    let mut router = Router::new();
    router
        .pull_sync("/sync/panic", |_: &Ctx, (): ()| -> Result<(), Status> {
            panic!("boom")
        })
        .pull_sync("/sync/echo", |_: &Ctx, s: String| Ok::<_, Status>(s));
    let (_server, _client, session) = pair(router, Router::new()).await;
    for n in 0..3 {
        let err = session.pull::<_, ()>("/sync/panic", &()).await.unwrap_err();
        assert_eq!(err.status().map(Status::code), Some(500), "call {n}");
        let ok: String = session.pull("/sync/echo", &"alive").await.unwrap();
        assert_eq!(ok, "alive", "call {n}");
    }
}

/// On a spawned group a synchronous handler runs on the blocking pool: one
/// that blocks holds up neither its session nor the runtime, and still
/// replies when it is done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocking_sync_handler_on_a_spawned_group_holds_up_nothing() {
    let (release, gate) = std::sync::mpsc::channel::<()>();
    let gate = Arc::new(std::sync::Mutex::new(gate));
    let (entered_tx, mut entered) = mpsc::unbounded_channel::<()>();
    let mut router = Router::new();
    router
        .spawned()
        .pull_sync("/sync/blocked", move |_: &Ctx, n: u32| {
            let _ = entered_tx.send(());
            // Blocks this thread until the test lets it go.
            gate.lock()
                .unwrap()
                .recv()
                .map_err(|_| Status::internal("gate dropped"))?;
            Ok::<_, Status>(n + 1)
        });
    router.pull_sync("/sync/echo", |_: &Ctx, s: String| Ok::<_, Status>(s));
    let (_server, _client, session) = pair(router, Router::new()).await;
    let blocked = {
        let session = session.clone();
        tokio::spawn(async move { session.pull::<_, u32>("/sync/blocked", &41).await })
    };
    entered.recv().await.expect("the handler started");
    // The blocked handler holds a thread of the blocking pool, not the
    // session's connection task nor a runtime worker: calls go on.
    for n in 0..10 {
        let ok: String = session
            .pull("/sync/echo", &format!("call {n}"))
            .await
            .unwrap();
        assert_eq!(ok, format!("call {n}"));
    }
    assert!(
        !blocked.is_finished(),
        "the blocked handler replied before it was let go"
    );
    release.send(()).unwrap();
    assert_eq!(blocked.await.unwrap().unwrap(), 42);
}
