//! Gateway mode over real loopback sockets: several Go Teleport v2.0-style
//! clients (raw sockets writing the captured Go bytes) behind one gateway,
//! each paired with an upstream session of its own. The `push_json`
//! capture runs through it byte for byte for every client at once: each
//! gets the server's push back and a reply that counts its own pushes
//! only; a push the upstream sends to one client's session reaches that
//! client and no other; closing either side closes the other.

#[path = "support/vectors.rs"]
mod vectors;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use serde::Serialize;
use teleport::codec::gzip;
use teleport::discovery::StaticResolver;
use teleport::frame::{Frame, FrameCodec, Header, HeaderCodec, Kind};
use teleport::gateway::Gateway;
use teleport::{CodecId, Ctx, Peer, PeerConfig, Router, Status};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::{Decoder, Encoder};
use vectors::{Dir, Packet};

/// What the Go capture server kept of the last push, per session.
#[derive(Clone, Default)]
struct Pushes(Arc<Mutex<Option<Last>>>);

#[derive(Clone, Serialize)]
struct Last {
    count: u32,
    uri: String,
    codec: &'static str,
    gzip: i32,
    seq: u64,
    body: serde_json::Value,
}

#[derive(Serialize)]
struct Ack<'a> {
    uri: &'a str,
    count: u32,
}

/// The upstream: the handlers of the Go capture server for `push_json`
/// (bookkeeping per session), and `/hello`, which names a session.
fn upstream_router() -> Router {
    let mut r = Router::new();
    r.push(
        "/push/record",
        |ctx: Ctx, body: serde_json::Value| async move {
            let pushes = ctx
                .session()
                .extensions()
                .get_or_insert_with(Pushes::default);
            let count = {
                let mut last = pushes.0.lock().unwrap();
                let count = last.as_ref().map_or(0, |l| l.count) + 1;
                *last = Some(Last {
                    count,
                    uri: ctx.path().to_owned(),
                    codec: if ctx.body_codec() == Some(CodecId::JSON) {
                        "json"
                    } else {
                        "other"
                    },
                    gzip: ctx.header().gzip,
                    seq: ctx.header().seq,
                    body,
                });
                count
            };
            let ack = Ack {
                uri: "/push/record",
                count,
            };
            let _ = ctx
                .session()
                .push("/ack/push", &ack)
                .gzip(teleport::GzipLevel::L5)
                .await;
        },
    );
    r.pull("/pushes/last", |ctx: Ctx, _uri: String| async move {
        let pushes = ctx
            .session()
            .extensions()
            .get_or_insert_with(Pushes::default);
        let last = pushes.0.lock().unwrap().clone();
        last.ok_or_else(Status::not_found)
    });
    r.pull("/hello", |ctx: Ctx, name: String| async move {
        ctx.session().extensions().insert(Name(name.clone()));
        Ok::<_, Status>(format!("hello {name}"))
    });
    r
}

#[derive(Clone)]
struct Name(String);

/// A Go-style client: a raw socket, frames in and out.
struct RawClient {
    stream: TcpStream,
    buf: BytesMut,
    codec: FrameCodec,
}

impl RawClient {
    async fn connect(addr: std::net::SocketAddr) -> RawClient {
        RawClient {
            stream: TcpStream::connect(addr).await.unwrap(),
            buf: BytesMut::new(),
            codec: FrameCodec::default(),
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// The next frame, or `None` at the end of the stream.
    async fn next(&mut self) -> Option<Frame> {
        loop {
            if let Some(f) = self.codec.decode(&mut self.buf).unwrap() {
                return Some(f);
            }
            let n =
                tokio::time::timeout(Duration::from_secs(10), self.stream.read_buf(&mut self.buf))
                    .await
                    .expect("the gateway answered within 10 s")
                    .unwrap_or(0);
            if n == 0 {
                return None;
            }
        }
    }

    /// Pulls `uri` with a JSON string, as a Go client would.
    async fn pull_json(&mut self, seq: u64, uri: &str, text: &str) -> Frame {
        let mut bytes = BytesMut::new();
        let mut body = vec![b'j'];
        body.extend(serde_json::to_vec(text).unwrap());
        FrameCodec::default()
            .encode(
                &Frame::new(
                    HeaderCodec::Protobuf,
                    Header::new(Kind::Pull, seq, uri),
                    body,
                ),
                &mut bytes,
            )
            .unwrap();
        self.send(&bytes).await;
        self.next().await.expect("a reply")
    }
}

fn go_frame(p: &Packet) -> Frame {
    FrameCodec::default()
        .decode(&mut BytesMut::from(&p.bytes[..]))
        .unwrap()
        .unwrap()
}

fn plain(f: &Frame) -> Vec<u8> {
    let payload = f.payload();
    if f.header.gzip != 0 {
        gzip::decompress(&payload, 1 << 20).unwrap()
    } else {
        payload.to_vec()
    }
}

fn encoded(f: &Frame) -> Bytes {
    let mut out = BytesMut::new();
    FrameCodec::default().encode(f, &mut out).unwrap();
    out.freeze()
}

async fn setup() -> (Peer, Peer, std::net::SocketAddr) {
    let upstream = Peer::new(PeerConfig::default(), upstream_router());
    let upstream_addr = upstream.listen("127.0.0.1:0").await.unwrap();
    let resolver = StaticResolver::new().with_service("push", [upstream_addr]);
    let mut local = Router::new();
    local.pull("/gateway/health", |_: Ctx, _: String| async {
        Ok::<_, Status>("ok")
    });
    let gateway = Gateway::new(resolver, "push").peer(PeerConfig::default(), local);
    let addr = gateway.listen("127.0.0.1:0").await.unwrap();
    (upstream, gateway, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_clients_exchange_the_captured_push_json_bytes_each_with_its_own_upstream() {
    let (upstream, _gateway, addr) = setup().await;
    let packets: Vec<Packet> = vectors::captures()
        .into_iter()
        .filter(|p| p.case == "push_json")
        .collect();
    let c2s: Vec<&Packet> = packets
        .iter()
        .filter(|p| p.dir == Dir::ClientToServer)
        .collect();
    let s2c: Vec<&Packet> = packets
        .iter()
        .filter(|p| p.dir == Dir::ServerToClient)
        .collect();
    assert_eq!((c2s.len(), s2c.len()), (2, 2));
    let (go_ack, go_reply) = (go_frame(s2c[0]), go_frame(s2c[1]));

    let mut clients = Vec::new();
    for _ in 0..4 {
        clients.push(RawClient::connect(addr).await);
    }
    // Every client, interleaved: push, the server's push back, pull.
    for c in &mut clients {
        c.send(&c2s[0].bytes).await;
    }
    for (i, c) in clients.iter_mut().enumerate() {
        let ack = c.next().await.expect("the push back");
        assert_eq!(
            ack.header, go_ack.header,
            "client {i}: the push back's header"
        );
        assert_eq!(ack.header_codec, go_ack.header_codec, "client {i}");
        assert_eq!(ack.body_codec(), go_ack.body_codec(), "client {i}");
        // Gzip output is the compressor's choice: compared decompressed.
        assert_eq!(
            plain(&ack),
            plain(&go_ack),
            "client {i}: the push back counts this client's pushes only"
        );
        c.send(&c2s[1].bytes).await;
        let reply = c.next().await.expect("the reply");
        assert_eq!(
            encoded(&reply),
            Bytes::from(s2c[1].bytes.clone()),
            "client {i}: the reply, byte for byte"
        );
        assert_eq!(reply.header, go_reply.header);
    }
    // One upstream session per client.
    assert_eq!(upstream.session_count(), 4);

    // Name each client's upstream session, then push to each by name.
    for (i, c) in clients.iter_mut().enumerate() {
        let reply = c.pull_json(1, "/hello", &format!("client-{i}")).await;
        assert_eq!(reply.header.status_code, 200);
        assert_eq!(
            plain(&reply),
            serde_json::to_vec(&format!("hello client-{i}")).unwrap()
        );
    }
    for session in upstream.sessions() {
        let Name(name) = session
            .extensions()
            .get::<Name>()
            .expect("every session said hello");
        session
            .push("/greet", &format!("for {name}"))
            .await
            .unwrap();
    }
    for (i, c) in clients.iter_mut().enumerate() {
        let push = c.next().await.expect("a push");
        assert_eq!(
            (push.header.kind, &*push.header.uri),
            (Kind::Push, "/greet")
        );
        assert_eq!(
            plain(&push),
            serde_json::to_vec(&format!("for client-{i}")).unwrap(),
            "the push reached client {i} only"
        );
    }

    // Routes of the gateway itself are served there.
    let health = clients[0].pull_json(2, "/gateway/health", "").await;
    assert_eq!(health.header.status_code, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_either_side_closes_the_other() {
    let (upstream, gateway, addr) = setup().await;
    let mut a = RawClient::connect(addr).await;
    let mut b = RawClient::connect(addr).await;
    // Both paired (a pull through each proves it).
    for (c, name) in [(&mut a, "a"), (&mut b, "b")] {
        assert_eq!(c.pull_json(1, "/hello", name).await.header.status_code, 200);
    }
    assert_eq!(upstream.session_count(), 2);

    // The upstream closes a's session: a is disconnected, b is not.
    let a_upstream = upstream
        .sessions()
        .into_iter()
        .find(|s| s.extensions().get::<Name>().is_some_and(|n| n.0 == "a"))
        .unwrap();
    a_upstream.close().await;
    assert!(
        a.next().await.is_none(),
        "the gateway closed a's connection"
    );
    assert_eq!(
        b.pull_json(2, "/hello", "b").await.header.status_code,
        200,
        "b is untouched"
    );

    // b leaves: its upstream session closes.
    let b_upstream = upstream
        .sessions()
        .into_iter()
        .next()
        .expect("b's upstream session");
    drop(b);
    tokio::time::timeout(Duration::from_secs(10), b_upstream.closed())
        .await
        .expect("the upstream session closes when its client leaves");
    for session in gateway.sessions() {
        tokio::time::timeout(Duration::from_secs(10), session.closed())
            .await
            .expect("the gateway keeps no session of a client that left");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_whose_upstream_cannot_be_dialed_is_refused() {
    // Nothing listens at the only endpoint.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let resolver = StaticResolver::new().with_service("push", [dead]);
    let gateway = Gateway::new(resolver, "push").peer(PeerConfig::default(), Router::new());
    let addr = gateway.listen("127.0.0.1:0").await.unwrap();
    let mut c = RawClient::connect(addr).await;
    assert!(
        c.next().await.is_none(),
        "the gateway closes a client it cannot pair"
    );
}
