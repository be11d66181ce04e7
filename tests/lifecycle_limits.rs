//! Oversized bodies keep the connection, and a peer that is not teleport
//! is named.
//!
//! - A body over the *receiver's* `max_frame_size` is skipped as it
//!   arrives, never buffered; a pull gets `413` naming both sizes and the
//!   setting, and the same session serves the next call.
//! - A value over the *sender's* limit fails at once with
//!   `Error::TooLarge` naming the URI and the setting; the encoder stops at
//!   the limit instead of encoding the whole value.
//! - A dial to an HTTP server says so.
//!
//! The two memory checks read this process's peak resident memory, so the
//! tests of this file run one at a time (`SERIAL`).
#![cfg(target_os = "linux")]

use bytes::BytesMut;
use teleport::frame::{Frame, FrameCodec, Header, HeaderCodec, Kind};
use teleport::{Ctx, Error, Peer, PeerConfig, Router, Status};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::{Decoder, Encoder};

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const MB: usize = 1_000_000;

/// This process's peak resident memory in bytes (`VmHWM`), after resetting
/// it to the current resident size.
fn reset_peak() {
    std::fs::write("/proc/self/clear_refs", "5").expect("reset the peak RSS");
}

fn peak_rss() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kb: usize = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

fn rss() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kb: usize = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

async fn echo_server() -> (Peer, std::net::SocketAddr) {
    let mut router = Router::new();
    router.pull("/echo", |_: Ctx, text: String| async move {
        Ok::<_, Status>(text)
    });
    let peer = Peer::new(PeerConfig::default(), router);
    let addr = peer.listen("127.0.0.1:0").await.unwrap();
    (peer, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_receivers_limit_gets_413_and_the_session_keeps_serving() {
    let _serial = SERIAL.lock().await;
    let (_server, addr) = echo_server().await;
    // The sender allows far more than the server's default 8 MiB.
    let client = Peer::new(
        PeerConfig::default().max_frame_size(256 * 1024 * 1024),
        Router::new(),
    );
    let session = client.dial(addr).await.unwrap();
    let big = "x".repeat(100 * MB);
    let err = session.pull::<_, String>("/echo", &big).await.unwrap_err();
    let status = err
        .status()
        .expect("a status reply, not a closed connection");
    assert_eq!(status.code(), 413, "{err}");
    assert!(
        status.text().contains("100000003 bytes")
            && status.text().contains("8388608 bytes")
            && status.text().contains("max_frame_size"),
        "names both sizes and the setting: {err}"
    );
    let echoed: String = session.pull("/echo", &"still here").await.unwrap();
    assert_eq!(echoed, "still here");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_mb_body_is_skipped_without_buffering_it() {
    let _serial = SERIAL.lock().await;
    let (_server, addr) = echo_server().await;
    let mut socket = TcpStream::connect(addr).await.unwrap();
    let before = rss();
    reset_peak();
    // A pull announcing a 100 MB body, streamed from one 64 KiB buffer.
    let body_len: u32 = 100 * MB as u32;
    let mut head = BytesMut::new();
    FrameCodec::new(usize::MAX)
        .encode(
            &Frame::new(
                HeaderCodec::Protobuf,
                Header::new(Kind::Pull, 0, "/echo"),
                Vec::new(),
            ),
            &mut head,
        )
        .unwrap();
    head.truncate(head.len() - 4);
    head.extend_from_slice(&body_len.to_be_bytes());
    socket.write_all(&head).await.unwrap();
    let chunk = vec![b' '; 64 * 1024];
    let (mut reader, mut writer) = socket.into_split();
    let send = tokio::spawn(async move {
        writer.write_all(b"j\"").await.unwrap();
        let mut left = body_len as usize - 2;
        while left > 0 {
            let n = left.min(chunk.len());
            writer.write_all(&chunk[..n]).await.unwrap();
            left -= n;
        }
        writer
    });
    let mut buf = BytesMut::new();
    let mut codec = FrameCodec::default();
    let reply = loop {
        if let Some(frame) = codec.decode(&mut buf).unwrap() {
            break frame;
        }
        assert!(
            reader.read_buf(&mut buf).await.unwrap() > 0,
            "the server hung up"
        );
    };
    let _writer = send.await.unwrap();
    assert_eq!(reply.header.kind, Kind::Reply);
    assert_eq!(reply.header.status_code, 413);
    let grew = peak_rss().saturating_sub(before);
    assert!(
        grew < 40 * MB,
        "the skipped body was not buffered: peak memory grew by {grew} bytes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_over_the_senders_limit_fails_at_once_naming_the_uri_and_the_setting() {
    let _serial = SERIAL.lock().await;
    let (_server, addr) = echo_server().await;
    let client = Peer::new(PeerConfig::default(), Router::new());
    let session = client.dial(addr).await.unwrap();
    let big = vec![7u32; 25 * MB];
    reset_peak();
    let before = rss();
    let err = session
        .pull::<_, Vec<u32>>("/echo", &big)
        .await
        .unwrap_err();
    let grew = peak_rss().saturating_sub(before);
    assert!(matches!(err, Error::TooLarge { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("/echo") && text.contains("PeerConfig::max_frame_size"),
        "{text}"
    );
    // JSON of 25 million numbers is about 50 MB: the encoder stopped near
    // the 8 MiB limit instead.
    assert!(
        grew < 40 * MB,
        "the encoder stopped at the limit: peak memory grew by {grew} bytes"
    );
    let push = session.push("/echo", &big).await.unwrap_err();
    assert!(matches!(push, Error::TooLarge { .. }), "{push}");
    let echoed: String = session.pull("/echo", &"fine").await.unwrap();
    assert_eq!(echoed, "fine");
}

#[tokio::test]
async fn a_dial_to_an_http_server_says_it_is_not_a_teleport_peer() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // What a web server answers to bytes that are not HTTP.
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 1024];
        let _ = socket.read(&mut buf).await;
        let _ = socket
            .write_all(
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            )
            .await;
    });
    let client = Peer::new(PeerConfig::default(), Router::new());
    let session = client.dial(addr).await.unwrap();
    let err = session
        .pull::<_, String>("/echo", &"hello")
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("not a teleport peer") && text.contains("HTTP"),
        "{text}"
    );
}

/// A handler's reply over the serving peer's own limit is replaced by a
/// 500 that names the setting, whether it is small (copied into the write
/// buffer) or large (queued as a segment of its own), and the session
/// serves the next call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_over_the_servers_limit_becomes_a_500_naming_the_setting() {
    let _serial = SERIAL.lock().await;
    let mut router = Router::new();
    router
        .pull("/grow", |_: Ctx, n: usize| async move {
            Ok::<_, Status>("x".repeat(n))
        })
        .pull("/raw", |_: Ctx, n: usize| async move {
            Ok::<_, Status>(teleport::codec::RawBody::from(vec![b'y'; n]))
        })
        // A raw handler's body is not checked before the frame is written.
        .pull_raw("/section", |_: Ctx, body: bytes::Bytes| async move {
            let n = u64::from_le_bytes(body[1..9].try_into().unwrap()) as usize;
            let mut section = vec![b's'];
            section.resize(1 + n, b'z');
            teleport::RawReply {
                status: Status::ok(),
                gzip: 0,
                body: section.into(),
            }
        });
    let limit = 12 * 1024;
    let server = Peer::new(PeerConfig::default().max_frame_size(limit), router);
    let addr = server.listen("127.0.0.1:0").await.unwrap();
    let session = Peer::new(PeerConfig::default(), Router::new())
        .dial(addr)
        .await
        .unwrap();
    for uri in ["/grow", "/raw", "/section"] {
        // 10 KiB fits; 20 KiB does not.
        for (n, fits) in [(10 * 1024, true), (20 * 1024, false), (100, true)] {
            let reply = session.pull_raw(uri, 0, bincode_section(n), Default::default());
            let frame = reply.await.unwrap();
            if fits {
                assert_eq!(frame.header.status_code, 200, "{uri} {n}");
                assert!(frame.body.len() > n, "{uri} {n}: the whole body");
            } else {
                assert_eq!(frame.header.status_code, 500, "{uri} {n}");
                assert!(
                    frame.header.status.contains("PeerConfig::max_frame_size"),
                    "{uri} {n}: {}",
                    &*frame.header.status
                );
                assert!(frame.body.is_empty());
            }
        }
    }
}

/// A bincode body section holding `n` as a `usize`.
fn bincode_section(n: usize) -> bytes::Bytes {
    let mut section = vec![b'b'];
    section.extend_from_slice(&(n as u64).to_le_bytes());
    section.into()
}
