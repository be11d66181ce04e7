//! The reverse proxy over real loopback TCP: header fields and body bytes
//! pass through unchanged both ways (gzip included), prefixes pick the
//! upstream, and upstream failures become 502 and 504.

#[path = "support/wait.rs"]
mod wait;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use teleport::codec::{Codecs, encode_section};
use teleport::proxy::{Proxy, Upstream};
use teleport::{
    CallOptions, CodecId, Ctx, HeaderCodec, Peer, PeerConfig, RawReply, Router, Status,
};
use tokio::sync::mpsc;

/// What the backend saw of one call.
#[derive(Clone, Debug, PartialEq)]
struct Seen {
    uri: String,
    gzip: i32,
    header_codec: HeaderCodec,
    body: Bytes,
}

type Log = Arc<Mutex<Vec<Seen>>>;

fn seen(ctx: &Ctx, body: &Bytes) -> Seen {
    Seen {
        uri: ctx.uri().to_owned(),
        gzip: ctx.header().gzip,
        header_codec: ctx.header_codec(),
        body: body.clone(),
    }
}

/// A backend whose `/raw/echo` replies with the very bytes it got (so the
/// reply body is as compressed as the pull's), `/raw/fail` with status 599,
/// `/raw/slow` after 10 s, and whose `/typed/add` is an ordinary typed route.
async fn backend(log: Log) -> (Peer, std::net::SocketAddr, mpsc::UnboundedReceiver<Seen>) {
    let (push_tx, push_rx) = mpsc::unbounded_channel();
    let mut router = Router::new();
    let l = log.clone();
    router.pull_raw("/raw/echo", move |ctx: Ctx, body: Bytes| {
        l.lock().unwrap().push(seen(&ctx, &body));
        async move {
            RawReply {
                status: Status::ok(),
                gzip: ctx.header().gzip,
                body,
            }
        }
    });
    router.pull_raw("/raw/fail", |_: Ctx, _: Bytes| async move {
        RawReply::status(Status::new(599, "xerror: not today"))
    });
    router.pull_raw("/raw/slow", |_: Ctx, body: Bytes| async move {
        tokio::time::sleep(Duration::from_secs(10)).await;
        RawReply {
            status: Status::ok(),
            gzip: 0,
            body,
        }
    });
    router.pull("/typed/add", |_: Ctx, [a, b]: [i64; 2]| async move {
        Ok::<_, Status>(a + b)
    });
    router.push_raw("/raw/note", move |ctx: Ctx, body: Bytes| {
        let _ = push_tx.send(seen(&ctx, &body));
        async {}
    });
    let peer = Peer::new(PeerConfig::default(), router);
    let addr = peer.listen("127.0.0.1:0").await.unwrap();
    (peer, addr, push_rx)
}

async fn proxy_in_front(proxy: Proxy) -> std::net::SocketAddr {
    let mut router = Router::new();
    router.pull("/local/hello", |_: Ctx, _: ()| async move {
        Ok::<_, Status>("served by the proxy")
    });
    proxy.install(&mut router);
    let peer = Peer::new(PeerConfig::default(), router);
    // The peer keeps serving in its background tasks after this handle goes.
    peer.listen("127.0.0.1:0").await.unwrap()
}

fn section(text: &str, codec: CodecId, gzip: i32) -> Bytes {
    let level = teleport::GzipLevel::new(gzip).unwrap();
    encode_section(text, codec, level, &Codecs::default(), 1 << 20).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxied_pulls_pass_header_fields_and_body_bytes_through_unchanged() {
    let log = Log::default();
    let (_backend, backend_addr, _) = backend(log.clone()).await;
    let proxy_addr =
        proxy_in_front(Proxy::new().prefix("/raw", Upstream::dial(backend_addr.to_string()))).await;
    let client = Peer::new(PeerConfig::default(), Router::new());
    let session = client.dial(proxy_addr).await.unwrap();

    let text = "teleport through a proxy ".repeat(40);
    let mut expected = Vec::new();
    for header_codec in [HeaderCodec::Protobuf, HeaderCodec::Json] {
        for codec in [CodecId::JSON, CodecId::STRING] {
            for gzip in [0, 1, 6, 9] {
                let body = section(&text, codec, gzip);
                let uri = format!("/raw/echo?codec={codec}&gzip={gzip}");
                let options = CallOptions::default().header_codec(header_codec);
                let reply = session
                    .pull_raw(&uri, gzip, body.clone(), options)
                    .await
                    .unwrap();
                assert_eq!(reply.header.status_code, 200);
                assert_eq!(reply.header.gzip, gzip, "reply gzip level of {uri}");
                assert_eq!(reply.header.uri, uri, "the reply carries the pull's URI");
                assert_eq!(reply.header_codec, header_codec);
                assert_eq!(reply.body, body, "reply body bytes of {uri}");
                expected.push(Seen {
                    uri,
                    gzip,
                    header_codec,
                    body,
                });
            }
        }
    }
    assert_eq!(
        *log.lock().unwrap(),
        expected,
        "the backend saw exactly what the client sent"
    );

    // Typed calls work end to end through the proxy, gzip or not.
    let err = session
        .pull::<_, i64>("/typed/add", &[40, 2])
        .await
        .unwrap_err();
    assert_eq!(
        err.status().map(Status::code),
        Some(404),
        "/typed is not a proxied prefix"
    );
    let echoed: String = session
        .pull("/raw/echo", &text)
        .gzip(teleport::GzipLevel::L5)
        .await
        .unwrap();
    assert_eq!(echoed, text);

    // A status other than 200 comes back with its code and text.
    let err = session.pull::<_, ()>("/raw/fail", &()).await.unwrap_err();
    let status = err.status().expect("a status");
    assert_eq!((status.code(), status.text()), (599, "xerror: not today"));

    // The proxy's own routes are still served locally.
    let hello: String = session.pull("/local/hello", &()).await.unwrap();
    assert_eq!(hello, "served by the proxy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxied_pushes_arrive_byte_for_byte() {
    let (_backend, backend_addr, mut pushes) = backend(Log::default()).await;
    let proxy_addr =
        proxy_in_front(Proxy::new().fallback(Upstream::dial(backend_addr.to_string()))).await;
    let session = Peer::new(PeerConfig::default(), Router::new())
        .dial(proxy_addr)
        .await
        .unwrap();
    let body = section("a note for the backend", CodecId::STRING, 7);
    let options = CallOptions::default().header_codec(HeaderCodec::Json);
    session
        .push_raw("/raw/note?from=client", 7, body.clone(), options)
        .await
        .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), pushes.recv())
        .await
        .expect("the push arrives")
        .unwrap();
    assert_eq!(
        got,
        Seen {
            uri: "/raw/note?from=client".into(),
            gzip: 7,
            header_codec: HeaderCodec::Json,
            body,
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefixes_pick_their_upstream_and_unmatched_calls_get_not_found() {
    let mut a = Router::new();
    a.pull(
        "/svc/who",
        |_: Ctx, _: ()| async move { Ok::<_, Status>("a") },
    );
    a.pull("/svc/deep/who", |_: Ctx, _: ()| async move {
        Ok::<_, Status>("a-deep")
    });
    let a_peer = Peer::new(PeerConfig::default(), a);
    let a_addr = a_peer.listen("127.0.0.1:0").await.unwrap();
    let mut b = Router::new();
    b.pull("/svc/deep/who", |_: Ctx, _: ()| async move {
        Ok::<_, Status>("b")
    });
    let b_peer = Peer::new(PeerConfig::default(), b);
    let b_addr = b_peer.listen("127.0.0.1:0").await.unwrap();
    let b_session = Peer::new(PeerConfig::default(), Router::new())
        .dial(b_addr)
        .await
        .unwrap();

    let proxy = Proxy::new()
        .prefix("/svc", Upstream::dial(a_addr.to_string()))
        .prefix("/svc/deep/", Upstream::session(b_session));
    let session = Peer::new(PeerConfig::default(), Router::new())
        .dial(proxy_in_front(proxy).await)
        .await
        .unwrap();
    let who: String = session.pull("/svc/who", &()).await.unwrap();
    assert_eq!(who, "a");
    let who: String = session.pull("/svc/deep/who", &()).await.unwrap();
    assert_eq!(who, "b", "the longest prefix wins");
    let err = session
        .pull::<_, String>("/svcx/who", &())
        .await
        .unwrap_err();
    assert_eq!(err.status().map(Status::code), Some(404));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_or_closed_upstreams_give_bad_gateway() {
    // An address nothing listens on any more.
    let gone = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gone_addr = gone.local_addr().unwrap();
    drop(gone);
    // A session that is closed.
    let (_backend, backend_addr, _) = backend(Log::default()).await;
    let closed = Peer::new(PeerConfig::default(), Router::new())
        .dial(backend_addr)
        .await
        .unwrap();
    closed.close().await;

    let proxy = Proxy::new()
        .prefix("/gone", Upstream::dial(gone_addr.to_string()))
        .prefix("/closed", Upstream::session(closed));
    let session = Peer::new(PeerConfig::default(), Router::new())
        .dial(proxy_in_front(proxy).await)
        .await
        .unwrap();
    for uri in ["/gone/x", "/closed/x"] {
        let err = session.pull::<_, ()>(uri, &()).await.unwrap_err();
        let status = err.status().expect("a status, not a local error");
        assert_eq!(
            (status.code(), status.text()),
            (502, "Bad Gateway"),
            "{uri}"
        );
    }
}

// Paused time: the proxy's 100 ms timeout passes without taking real time.
#[tokio::test(start_paused = true)]
async fn an_upstream_that_answers_too_late_gives_gateway_timeout() {
    let (_backend, backend_addr, _) = backend(Log::default()).await;
    let proxy = Proxy::new()
        .fallback(Upstream::dial(backend_addr.to_string()))
        .timeout(Duration::from_millis(100));
    let session = Peer::new(PeerConfig::default(), Router::new())
        .dial(proxy_in_front(proxy).await)
        .await
        .unwrap();
    let err = session.pull::<_, ()>("/raw/slow", &()).await.unwrap_err();
    let status = err.status().expect("a status, not a local error");
    assert_eq!((status.code(), status.text()), (504, "Gateway Timeout"));
    // The upstream connection is still good for the next call.
    let sum: i64 = session.pull("/typed/add", &[1, 2]).await.unwrap();
    assert_eq!(sum, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_upstream_is_dialed_again() {
    let (backend1, backend_addr, _) = backend(Log::default()).await;
    let session = Peer::new(PeerConfig::default(), Router::new())
        .dial(proxy_in_front(Proxy::new().fallback(Upstream::dial(backend_addr.to_string()))).await)
        .await
        .unwrap();
    let sum: i64 = session.pull("/typed/add", &[1, 1]).await.unwrap();
    assert_eq!(sum, 2);

    // The backend goes away: calls get 502; it comes back on the same port:
    // the proxy dials it again.
    backend1.close(Duration::from_secs(5)).await;
    // The accept loop drops its listener after `close` returns.
    tokio::time::timeout(
        wait::GUARD,
        backend1.wait_for(|peer| peer.listen_addrs().is_empty()),
    )
    .await
    .expect("the backend stopped listening");
    let err = session
        .pull::<_, i64>("/typed/add", &[1, 1])
        .await
        .unwrap_err();
    assert_eq!(err.status().map(Status::code), Some(502));
    let mut router = Router::new();
    router.pull("/typed/add", |_: Ctx, [a, b]: [i64; 2]| async move {
        Ok::<_, Status>(a * b)
    });
    let backend2 = Peer::new(PeerConfig::default(), router);
    backend2.listen(backend_addr).await.unwrap();
    let product: i64 = session.pull("/typed/add", &[3, 4]).await.unwrap();
    assert_eq!(product, 12);
}

/// Proxies are shared across sessions and tasks; checked at compile time.
#[test]
fn proxy_types_and_futures_are_send_and_sync() {
    fn send<T: Send>(_: &T) {}
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Proxy>();
    send_sync::<Upstream>();
    fn futures(proxy: Proxy, ctx: Ctx, body: Bytes) {
        send(&proxy.pull(ctx.clone(), body.clone()));
        send(&proxy.push(ctx, body));
    }
    let _ = futures;
}
