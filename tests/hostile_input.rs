//! Whatever arrives on the port, the server keeps serving: each hostile
//! input gets a defined outcome (a status reply, or that connection closed
//! with a logged reason), never a panic, and other sessions are unaffected.

#[path = "support/wait.rs"]
mod wait;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use teleport::frame::{Frame, FrameCodec, Header, HeaderCodec, Kind};
use teleport::{Ctx, Peer, PeerConfig, Router, Status};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::{Decoder, Encoder};

const LIMIT: usize = 64 * 1024;

async fn server() -> (Peer, SocketAddr) {
    let mut router = Router::new();
    router
        .pull("/home/echo", |_: Ctx, s: String| async move {
            Ok::<_, Status>(s)
        })
        .push("/msg/note", |_: Ctx, _s: String| async move {});
    let peer = Peer::new(PeerConfig::default().max_frame_size(LIMIT), router);
    let addr = peer.listen("127.0.0.1:0").await.unwrap();
    (peer, addr)
}

fn frame(codec: HeaderCodec, kind: Kind, seq: u64, uri: &str, body: &[u8]) -> Vec<u8> {
    let mut buf = BytesMut::new();
    let frame = Frame::new(codec, Header::new(kind, seq, uri), body.to_vec());
    // A codec with no limit: these tests write what a hostile peer would.
    FrameCodec::new(usize::MAX)
        .encode(&frame, &mut buf)
        .unwrap();
    buf.to_vec()
}

/// Reads frames until `n` arrived or the connection closed; returns them and
/// whether the server closed the connection.
async fn read_frames(stream: &mut TcpStream, n: usize) -> (Vec<Frame>, bool) {
    let mut codec = FrameCodec::default();
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    loop {
        while let Some(f) = codec.decode(&mut buf).unwrap() {
            frames.push(f);
        }
        if frames.len() >= n {
            return (frames, false);
        }
        match tokio::time::timeout(Duration::from_secs(5), stream.read_buf(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (frames, true),
            Ok(Ok(_)) => {}
            Err(_) => panic!("the server neither answered nor closed within 5 s"),
        }
    }
}

/// Sends `bytes`, closes our write side, and expects the server to close.
async fn expect_closed(addr: SocketAddr, bytes: &[u8]) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let _ = s.write_all(bytes).await;
    let _ = s.shutdown().await;
    let (frames, closed) = read_frames(&mut s, usize::MAX).await;
    assert!(closed, "connection closed");
    assert!(frames.is_empty(), "no reply to a broken frame: {frames:?}");
}

/// A fresh session still works, so the process and peer are unaffected.
async fn still_serving(addr: SocketAddr) {
    let client = Peer::new(PeerConfig::default(), Router::new());
    let s = client.dial(addr).await.unwrap();
    let got: String = s.pull("/home/echo", &"alive").await.unwrap();
    assert_eq!(got, "alive");
    s.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_bytes_close_only_their_own_connection() {
    let (_peer, addr) = server().await;
    // A session that stays open throughout.
    let client = Peer::new(PeerConfig::default(), Router::new());
    let bystander = client.dial(addr).await.unwrap();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for round in 0..20 {
        let mut junk = vec![0u8; 64 + round * 97];
        for b in &mut junk {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *b = state as u8;
        }
        expect_closed(addr, &junk).await;
    }
    let got: String = bystander.pull("/home/echo", &"bystander").await.unwrap();
    assert_eq!(got, "bystander");
    still_serving(addr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_lengths_and_truncated_frames_close_the_connection() {
    let (peer, addr) = server().await;
    let good = frame(
        HeaderCodec::Protobuf,
        Kind::Pull,
        0,
        "/home/echo",
        b"j\"x\"",
    );
    // A readable header announcing a body over the limit gets a 413 (the
    // body would be skipped); the stream then ends inside that body.
    let cases: Vec<(&str, Vec<u8>, Option<i32>)> = vec![
        ("header length 0", vec![0, 0, 0, 0, 0, 0, 0, 0], None),
        (
            "header length 0xFFFFFFFF",
            vec![0xff, 0xff, 0xff, 0xff],
            None,
        ),
        (
            "body length 0xFFFFFFFF",
            {
                let mut v = vec![0, 0, 0, 3, b'p', 0x10, 0x01];
                v.extend_from_slice(&[0xff; 4]);
                v
            },
            Some(413),
        ),
        (
            "header length past the end of the frame",
            {
                let mut v = vec![0, 0, 0, 100];
                v.extend_from_slice(&good[4..]);
                v
            },
            None,
        ),
        ("truncated frame", good[..good.len() - 2].to_vec(), None),
        (
            "frame larger than the limit",
            {
                let mut v = BytesMut::new();
                v.put_u32(3);
                v.put_slice(&[b'p', 0x10, 0x01]);
                v.put_u32(LIMIT as u32 + 1);
                v.to_vec()
            },
            Some(413),
        ),
    ];
    for (what, bytes, reply) in cases {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(&bytes).await.unwrap();
        s.shutdown().await.unwrap();
        let (frames, closed) = read_frames(&mut s, usize::MAX).await;
        assert!(closed, "{what}: closed");
        let codes: Vec<i32> = frames.iter().map(|f| f.header.status_code).collect();
        assert_eq!(
            codes,
            reply.into_iter().collect::<Vec<_>>(),
            "{what}: replies"
        );
    }
    still_serving(addr).await;
    // The broken sessions left the registry.
    wait::no_sessions_left(&peer).await;
    assert_eq!(peer.session_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_headers_close_the_connection() {
    let (_peer, addr) = server().await;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("unknown header codec", {
            let mut v = vec![0, 0, 0, 2, b'x', 0x10, 0, 0, 0, 0];
            v.truncate(10);
            v
        }),
        (
            "invalid protobuf header",
            vec![0, 0, 0, 4, b'p', 0x1a, 0x7f, 0x01, 0, 0, 0, 0],
        ),
        ("invalid JSON header", {
            let mut v = vec![0, 0, 0, 6, b'j'];
            v.extend_from_slice(b"{\"typ");
            v.extend_from_slice(&[0, 0, 0, 0]);
            v
        }),
        (
            "non-UTF-8 URI",
            vec![
                0, 0, 0, 7, b'p', 0x10, 0x01, 0x1a, 0x02, 0xff, 0xfe, 0, 0, 0, 0,
            ],
        ),
    ];
    for (what, bytes) in cases {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(&bytes).await.unwrap();
        let (frames, closed) = read_frames(&mut s, usize::MAX).await;
        assert!(closed, "{what}: closed without our side closing first");
        assert!(frames.is_empty(), "{what}: no reply");
    }
    still_serving(addr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_still_in_sync_get_status_replies_and_the_session_goes_on() {
    let (_peer, addr) = server().await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut out = Vec::new();
    // 415: unknown body codec.
    out.extend(frame(
        HeaderCodec::Protobuf,
        Kind::Pull,
        1,
        "/home/echo",
        b"zxx",
    ));
    // 400: a body the handler's type cannot be decoded from.
    out.extend(frame(
        HeaderCodec::Protobuf,
        Kind::Pull,
        2,
        "/home/echo",
        b"j{not json",
    ));
    // 404: unknown URI.
    out.extend(frame(
        HeaderCodec::Protobuf,
        Kind::Pull,
        3,
        "/no/such",
        b"j1",
    ));
    // 410: undefined packet type, answered as a proper reply.
    out.extend(frame(
        HeaderCodec::Json,
        Kind::Other(3),
        4,
        "/home/echo",
        b"j1",
    ));
    // A push to a pull-only URI and a push to nowhere: dropped, no reply.
    out.extend(frame(
        HeaderCodec::Protobuf,
        Kind::Push,
        0,
        "/home/echo",
        b"j\"x\"",
    ));
    out.extend(frame(
        HeaderCodec::Protobuf,
        Kind::Push,
        1,
        "/no/such",
        b"j1",
    ));
    // A reply for a pull the server never sent: dropped.
    out.extend(frame(HeaderCodec::Protobuf, Kind::Reply, 99, "/x", b"j1"));
    // A header of just its codec id: every field zero, an undefined type.
    out.extend([0, 0, 0, 1, b'p', 0, 0, 0, 0]);
    // And the session still works.
    out.extend(frame(
        HeaderCodec::Protobuf,
        Kind::Pull,
        5,
        "/home/echo",
        b"j\"ok\"",
    ));
    s.write_all(&out).await.unwrap();
    let (mut frames, closed) = read_frames(&mut s, 6).await;
    assert!(!closed);
    frames.sort_by_key(|f| f.header.seq);
    let got: Vec<(u64, i32, Kind)> = frames
        .iter()
        .map(|f| (f.header.seq, f.header.status_code, f.header.kind))
        .collect();
    assert_eq!(
        got,
        vec![
            (0, 410, Kind::Reply),
            (1, 415, Kind::Reply),
            (2, 400, Kind::Reply),
            (3, 404, Kind::Reply),
            (4, 410, Kind::Reply),
            (5, 200, Kind::Reply),
        ]
    );
    assert_eq!(
        frames[4].header_codec,
        HeaderCodec::Json,
        "a reply uses its pull's header codec"
    );
    assert_eq!(&frames[5].body[..], b"j\"ok\"");
    assert!(frames[..5].iter().all(|f| f.body.is_empty()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lying_server_cannot_confuse_a_waiting_pull() {
    // A raw server that answers each pull with: a push carrying the same seq,
    // a reply for an unknown seq, then the real reply.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut codec = FrameCodec::default();
        let mut buf = BytesMut::new();
        loop {
            if s.read_buf(&mut buf).await.unwrap_or(0) == 0 {
                return;
            }
            while let Some(f) = codec.decode(&mut buf).unwrap() {
                let seq = f.header.seq;
                let mut out = frame(
                    HeaderCodec::Protobuf,
                    Kind::Push,
                    seq,
                    &f.header.uri,
                    b"j\"fake push\"",
                );
                out.extend(frame(
                    HeaderCodec::Protobuf,
                    Kind::Reply,
                    seq + 1000,
                    &f.header.uri,
                    b"j\"stray\"",
                ));
                let mut reply = Header::new(Kind::Reply, seq, f.header.uri.clone());
                reply.status_code = 200;
                reply.status = "OK".into();
                let mut b = BytesMut::new();
                FrameCodec::default()
                    .encode(
                        &Frame::new(HeaderCodec::Protobuf, reply, &b"j\"real\""[..]),
                        &mut b,
                    )
                    .unwrap();
                out.extend_from_slice(&b);
                s.write_all(&out).await.unwrap();
            }
        }
    });
    let client = Peer::new(PeerConfig::default(), Router::new());
    let session = client.dial(addr).await.unwrap();
    for _ in 0..3 {
        let got: String = session.pull("/home/echo", &"q").await.unwrap();
        assert_eq!(got, "real");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_with_an_undecodable_body_fails_only_that_pull() {
    let mut router = Router::new();
    router.pull("/home/number", |_: Ctx, (): ()| async move {
        Ok::<_, Status>("not a number")
    });
    router.pull("/home/echo", |_: Ctx, s: String| async move {
        Ok::<_, Status>(s)
    });
    let server = Peer::new(PeerConfig::default(), router);
    let addr = server.listen("127.0.0.1:0").await.unwrap();
    let client = Peer::new(PeerConfig::default(), Router::new());
    let s = client.dial(addr).await.unwrap();
    let err = s.pull::<_, u64>("/home/number", &()).await.unwrap_err();
    assert!(matches!(err, teleport::Error::Codec(_)), "{err}");
    let ok: String = s.pull("/home/echo", &"fine").await.unwrap();
    assert_eq!(ok, "fine");
}
