//! Deadlines travel: a pull with a timeout tells the serving peer how long
//! its caller waits, and the serving peer drops the handler when that time
//! has passed, sending no reply. On paused time: the clock jumps to each
//! timer, so a 2 s handler costs no real time.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use teleport::frame::{Frame, FrameCodec, Header, HeaderCodec, Kind};
use teleport::{Ctx, Error, Peer, PeerConfig, Router, Status};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::codec::{Decoder, Encoder};

/// Tells the test when the handler's future is dropped.
struct DropSignal(mpsc::UnboundedSender<&'static str>);

impl Drop for DropSignal {
    fn drop(&mut self) {
        let _ = self.0.send("dropped");
    }
}

/// A server whose `/slow` handler reports whether it saw a deadline, takes
/// 2 s, and records whether it ran to its end.
async fn slow_server() -> (
    Peer,
    std::net::SocketAddr,
    mpsc::UnboundedReceiver<&'static str>,
    Arc<AtomicBool>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let finished = Arc::new(AtomicBool::new(false));
    let mut router = Router::new();
    {
        let finished = finished.clone();
        router.pull("/slow", move |ctx: Ctx, (): ()| {
            let (tx, finished) = (tx.clone(), finished.clone());
            async move {
                let _ = tx.send(if ctx.deadline().is_some() {
                    "started with a deadline"
                } else {
                    "started without a deadline"
                });
                let _guard = DropSignal(tx);
                tokio::time::sleep(Duration::from_secs(2)).await;
                finished.store(true, Ordering::SeqCst);
                Ok::<_, Status>("done".to_owned())
            }
        });
    }
    let peer = Peer::new(PeerConfig::default(), router);
    let addr = peer.listen("127.0.0.1:0").await.unwrap();
    (peer, addr, rx, finished)
}

#[tokio::test(start_paused = true)]
async fn a_100_ms_deadline_drops_a_2_s_handler_on_the_server() {
    let (_server, addr, mut events, finished) = slow_server().await;
    let client = Peer::new(PeerConfig::default(), Router::new());
    let session = client.dial(addr).await.unwrap();
    let err = session
        .pull::<_, String>("/slow", &())
        .timeout(Duration::from_millis(100))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    assert_eq!(events.recv().await, Some("started with a deadline"));
    assert_eq!(
        events.recv().await,
        Some("dropped"),
        "the server dropped the handler"
    );
    assert!(
        !finished.load(Ordering::SeqCst),
        "the handler did not run to its end"
    );
    // The session is fine for the next call.
    let session2 = session.clone();
    drop(session);
    let got = session2
        .pull::<_, String>("/slow", &())
        .timeout(Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(got, "done");
}

/// Sends one raw pull of `/slow` with `timeout_ms` and returns the reply, or
/// `None` if none came within 10 s (of paused time).
async fn raw_pull(addr: std::net::SocketAddr, timeout_ms: u64) -> Option<Frame> {
    let mut socket = TcpStream::connect(addr).await.unwrap();
    let mut header = Header::new(Kind::Pull, 0, "/slow");
    header.timeout_ms = timeout_ms;
    let mut buf = BytesMut::new();
    FrameCodec::default()
        .encode(
            &Frame::new(HeaderCodec::Protobuf, header, &b"jnull"[..]),
            &mut buf,
        )
        .unwrap();
    socket.write_all(&buf).await.unwrap();
    let mut codec = FrameCodec::default();
    let mut rbuf = BytesMut::new();
    let read = async {
        loop {
            if let Some(frame) = codec.decode(&mut rbuf).unwrap() {
                return frame;
            }
            assert!(socket.read_buf(&mut rbuf).await.unwrap() > 0);
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .ok()
}

#[tokio::test(start_paused = true)]
async fn no_reply_is_sent_once_the_deadline_passed_and_a_pull_without_one_runs_to_its_end() {
    let (_server, addr, mut events, finished) = slow_server().await;
    assert!(
        raw_pull(addr, 100).await.is_none(),
        "no reply after the deadline"
    );
    assert_eq!(events.recv().await, Some("started with a deadline"));
    assert_eq!(events.recv().await, Some("dropped"));
    assert!(!finished.load(Ordering::SeqCst));

    // A Go v2.0 pull carries no deadline: the handler runs to its end.
    let reply = raw_pull(addr, 0).await.expect("a reply");
    assert_eq!(reply.header.status_code, 200);
    assert_eq!(&reply.body[..], b"j\"done\"");
    assert_eq!(events.recv().await, Some("started without a deadline"));
    assert!(finished.load(Ordering::SeqCst));
}

/// A pull that cannot be written (the remote side reads nothing, so the
/// socket and the write buffer are full) still ends at its own deadline,
/// with a timeout naming its URI, and is never written afterwards; the
/// session's one timer for deadlines covers pulls waiting for room too.
#[tokio::test(start_paused = true)]
async fn a_pull_stuck_behind_a_full_write_buffer_times_out_at_its_deadline() {
    // Accepts and never reads.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = tokio::spawn(async move { listener.accept().await.unwrap().0 });
    let config = PeerConfig::default()
        .write_buffer(64 * 1024)
        .send_queue(4)
        .write_timeout(Some(Duration::from_secs(3600)))
        .max_frame_size(4 << 20);
    let session = Peer::new(config, Router::new()).dial(addr).await.unwrap();
    let _silent = accepted.await.unwrap();
    // Far more than the kernel's socket buffers and our write buffer hold.
    // Room for every push without waiting (one in the write buffer,
    // `send_queue` more), and more than the kernel's socket buffers take.
    let block = "x".repeat(3 << 20);
    for _ in 0..5 {
        session.push("/fill", &block).await.unwrap();
    }
    let err = session
        .pull::<_, String>("/stuck", &())
        .timeout(Duration::from_secs(5))
        .await
        .unwrap_err();
    match err {
        Error::Timeout { uri, timeout } => {
            assert_eq!(uri, "/stuck");
            assert_eq!(timeout, Duration::from_secs(5));
        }
        other => panic!("expected a timeout, got {other}"),
    }
    assert!(
        !session.is_closed(),
        "the write timeout (an hour) did not end the session"
    );
}
