//! Going away: a session that drains keeps reading and answering, tells the
//! other side, and closes only once nothing in flight is left.
//!
//! Covered: a teleport client hears the notice, its new calls fail with
//! `NotSent` while the pull it wrote before is answered; a Go v2.0-style
//! client (a raw socket speaking the captured v2.0 frames, which cannot
//! hear the notice) gets a reply to every pull the server read, including
//! one written after the notice went out; dropping every handle of a dialed
//! session closes its connection.

#[path = "support/wait.rs"]
mod wait;

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use teleport::frame::{Frame, FrameCodec, Header, HeaderCodec, Kind};
use teleport::{Ctx, Error, Peer, PeerConfig, Router, Session, Status};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Notify, mpsc};
use tokio_util::codec::{Decoder, Encoder};
use wait::GUARD;

/// A server with `/slow` (reports it started, then waits for `release`)
/// and `/echo`.
async fn server(release: Arc<Notify>) -> (Peer, std::net::SocketAddr, mpsc::UnboundedReceiver<()>) {
    let (started_tx, started) = mpsc::unbounded_channel();
    let mut router = Router::new();
    router
        .pull("/slow", move |_: Ctx, text: String| {
            let (release, started_tx) = (release.clone(), started_tx.clone());
            async move {
                let _ = started_tx.send(());
                release.notified().await;
                Ok::<_, Status>(format!("slow {text}"))
            }
        })
        .pull("/echo", |_: Ctx, text: String| async move {
            Ok::<_, Status>(text)
        });
    let peer = Peer::new(PeerConfig::default(), router);
    let addr = peer.listen("127.0.0.1:0").await.unwrap();
    (peer, addr, started)
}

async fn guarded<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(GUARD, fut)
        .await
        .unwrap_or_else(|_| panic!("gave up waiting: {what}"))
}

/// The session the server accepted, once its first call has started.
fn accepted(server: &Peer) -> Session {
    let mut sessions = server.sessions();
    assert_eq!(sessions.len(), 1, "one accepted session");
    sessions.pop().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_server_answers_what_was_written_and_the_client_sends_nothing_new() {
    let release = Arc::new(Notify::new());
    let (server, addr, mut started) = server(release.clone()).await;
    let client = Peer::new(PeerConfig::default(), Router::new());
    let session = client.dial(addr).await.unwrap();

    let in_flight = {
        let session = session.clone();
        tokio::spawn(async move { session.pull::<_, String>("/slow", &"a").await })
    };
    guarded("the slow handler starts", started.recv()).await;

    let draining = accepted(&server);
    let drained = tokio::spawn(async move { draining.shutdown(Duration::from_secs(30)).await });

    guarded("the client hears the notice", session.going_away()).await;
    assert!(session.is_going_away());
    assert!(
        !session.is_closed(),
        "the session stays open while draining"
    );
    let err = session
        .pull::<_, String>("/echo", &"new")
        .await
        .unwrap_err();
    assert!(
        err.is_not_sent(),
        "a call after the notice is not sent: {err}"
    );
    let err = session.push("/echo", &"new").await.unwrap_err();
    assert!(matches!(err, Error::NotSent { .. }), "{err}");

    release.notify_one();
    let reply = guarded("the pull in flight", in_flight).await.unwrap();
    assert_eq!(reply.unwrap(), "slow a");
    guarded("the server closes once drained", session.closed()).await;
    assert!(drained.await.unwrap(), "drained within the deadline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_server_waits_for_the_replies_to_its_own_pulls() {
    // The client serves `/client/slow`; the server pulls it, then drains.
    let release = Arc::new(Notify::new());
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let mut client_router = Router::new();
    {
        let release = release.clone();
        client_router.pull("/client/slow", move |_: Ctx, (): ()| {
            let (release, started_tx) = (release.clone(), started_tx.clone());
            async move {
                let _ = started_tx.send(());
                release.notified().await;
                Ok::<_, Status>(7u32)
            }
        });
    }
    let (server, addr, _) = server(Arc::new(Notify::new())).await;
    let client = Peer::new(PeerConfig::default(), client_router);
    let session = client.dial(addr).await.unwrap();
    // Wait until the server has the session, on a call it answers.
    let _: String = session.pull("/echo", &"hello").await.unwrap();
    let accepted = accepted(&server);
    let server_pull = {
        let accepted = accepted.clone();
        tokio::spawn(async move { accepted.pull::<_, u32>("/client/slow", &()).await })
    };
    guarded("the client's handler starts", started.recv()).await;
    let drained = {
        let accepted = accepted.clone();
        tokio::spawn(async move { accepted.shutdown(Duration::from_secs(30)).await })
    };
    guarded("the client hears the notice", session.going_away()).await;
    release.notify_one();
    assert_eq!(
        guarded("the server's pull", server_pull)
            .await
            .unwrap()
            .unwrap(),
        7
    );
    assert!(drained.await.unwrap());
    guarded("the session ends", session.closed()).await;
}

/// Writes one v2.0 frame (protobuf header, JSON body) as a Go client does.
async fn write_frame(socket: &mut TcpStream, kind: Kind, seq: u64, uri: &str, body: &[u8]) {
    let mut header = Header::new(kind, seq, uri);
    if kind == Kind::Reply {
        header.status_code = 404;
        header.status = "Not Found".into();
    }
    let mut buf = BytesMut::new();
    FrameCodec::default()
        .encode(
            &Frame::new(HeaderCodec::Protobuf, header, body.to_vec()),
            &mut buf,
        )
        .unwrap();
    socket.write_all(&buf).await.unwrap();
}

/// Reads frames until the server closes the connection.
async fn read_until_eof(
    socket: &mut TcpStream,
    frames: &mut Vec<Frame>,
    until: impl Fn(&[Frame]) -> bool,
) {
    let mut codec = FrameCodec::default();
    let mut buf = BytesMut::new();
    loop {
        while let Some(frame) = codec.decode(&mut buf).unwrap() {
            frames.push(frame);
        }
        if until(frames) {
            return;
        }
        if socket.read_buf(&mut buf).await.unwrap() == 0 {
            assert!(buf.is_empty(), "the stream ended inside a frame");
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v2_client_that_cannot_hear_the_notice_gets_a_reply_to_every_pull_read() {
    let release = Arc::new(Notify::new());
    let (server, addr, mut started) = server(release.clone()).await;
    let mut socket = TcpStream::connect(addr).await.unwrap();
    write_frame(&mut socket, Kind::Pull, 0, "/slow", b"j\"a\"").await;
    guarded("the slow handler starts", started.recv()).await;
    let draining = accepted(&server);
    let drained = tokio::spawn(async move { draining.shutdown(Duration::from_secs(30)).await });

    // The notice arrives as an ordinary v2.0 pull of a URI the Go client
    // does not serve.
    let mut frames = Vec::new();
    guarded(
        "the notice",
        read_until_eof(&mut socket, &mut frames, |f| !f.is_empty()),
    )
    .await;
    let notice = frames.remove(0);
    assert_eq!(notice.header.kind, Kind::Pull);
    assert_eq!(notice.header.uri, "/_teleport/goaway");
    assert!(notice.body.is_empty());

    // The Go client's application writes one more pull, then its read loop
    // answers the unknown URI with 404, as Go v2.0 does.
    write_frame(&mut socket, Kind::Pull, 1, "/echo", b"j\"b\"").await;
    write_frame(
        &mut socket,
        Kind::Reply,
        notice.header.seq,
        &notice.header.uri,
        b"",
    )
    .await;
    release.notify_one();

    guarded(
        "replies, then the end of the stream",
        read_until_eof(&mut socket, &mut frames, |_| false),
    )
    .await;
    let mut replies: Vec<(u64, i32, Vec<u8>)> = frames
        .iter()
        .map(|f| (f.header.seq, f.header.status_code, f.body.to_vec()))
        .collect();
    replies.sort();
    assert_eq!(
        replies,
        vec![
            (0, 200, b"j\"slow a\"".to_vec()),
            (1, 200, b"j\"b\"".to_vec())
        ],
        "every pull read was answered before the close"
    );
    assert!(drained.await.unwrap());
}

#[tokio::test]
async fn dropping_every_handle_of_a_dialed_session_closes_the_connection() {
    let (server, addr, _) = server(Arc::new(Notify::new())).await;
    let client = Peer::new(PeerConfig::default(), Router::new());
    let session = client.dial(addr).await.unwrap();
    let copy = session.clone();
    let _: String = copy.pull("/echo", &"x").await.unwrap();
    let accepted = accepted(&server);
    // A push queued right before the drop still goes out first.
    copy.push("/echo", &"last").await.unwrap();
    drop(session);
    assert!(!accepted.is_closed(), "one handle is left");
    drop(copy);
    guarded("the server sees the end of the stream", accepted.closed()).await;
    assert_eq!(
        accepted.close_reason(),
        Some("the remote peer closed the connection")
    );
    // The client peer itself is still usable.
    let again = client.dial(addr).await.unwrap();
    let echoed: String = again.pull("/echo", &"y").await.unwrap();
    assert_eq!(echoed, "y");
}

#[tokio::test]
async fn dropping_a_redial_closes_its_session() {
    let (server, addr, _) = server(Arc::new(Notify::new())).await;
    let client = Peer::new(PeerConfig::default(), Router::new());
    let redial = client
        .dial_with_reconnect(addr.to_string(), Default::default())
        .await
        .unwrap();
    let _: String = redial
        .connected()
        .await
        .unwrap()
        .pull("/echo", &"x")
        .await
        .unwrap();
    let accepted = accepted(&server);
    drop(redial);
    guarded("the server sees the end of the stream", accepted.closed()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redial_moves_to_a_fresh_session_when_the_remote_goes_away() {
    let (server, addr, _) = server(Arc::new(Notify::new())).await;
    let client = Peer::new(PeerConfig::default(), Router::new());
    let redial = client
        .dial_with_reconnect(addr.to_string(), Default::default())
        .await
        .unwrap();
    let mut events = redial.events();
    let first = redial.connected().await.unwrap();
    let _: String = first.pull("/echo", &"x").await.unwrap();
    let accepted = accepted(&server);
    let drained = tokio::spawn(async move { accepted.shutdown(Duration::from_secs(30)).await });
    let second = guarded("a fresh session", async {
        loop {
            if let teleport::peer::RedialEvent::Connected { session, .. } =
                events.recv().await.unwrap()
            {
                return session;
            }
        }
    })
    .await;
    assert_ne!(first.id(), second.id());
    assert!(first.is_going_away());
    let echoed: String = redial
        .connected()
        .await
        .unwrap()
        .pull("/echo", &"y")
        .await
        .unwrap();
    assert_eq!(echoed, "y");
    assert!(drained.await.unwrap());
    guarded("the old session ends", first.closed()).await;
}
