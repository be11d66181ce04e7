//! Plugin hooks over real loopback TCP: the order every stage fires in, at
//! the peer, group and route levels; what a failing hook does to a pull, a
//! push, a reply and a session; header rewrites and per-session values.

#[path = "support/wait.rs"]
mod wait;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use teleport::frame::{Frame, Header, Kind};
use teleport::plugin::{self, Plugin, PluginFuture};
use teleport::{Ctx, Error, Peer, PeerConfig, PeerError, Router, Session, Status};
use tokio::sync::mpsc;

type Log = Arc<Mutex<Vec<String>>>;

/// Records every hook it sees as `tag:stage[:kind:uri]`.
struct Recorder {
    tag: &'static str,
    log: Log,
}

impl Recorder {
    fn new(tag: &'static str, log: &Log) -> Recorder {
        Recorder {
            tag,
            log: log.clone(),
        }
    }

    fn note(&self, stage: &str, header: Option<&Header>) {
        let line = match header {
            Some(h) => format!("{}:{stage}:{:?}:{}", self.tag, h.kind, h.uri),
            None => format!("{}:{stage}", self.tag),
        };
        self.log.lock().unwrap().push(line);
    }
}

impl Plugin for Recorder {
    fn after_register(&self, kind: Kind, path: &str) {
        self.log
            .lock()
            .unwrap()
            .push(format!("{}:after_register:{kind:?}:{path}", self.tag));
    }
    fn after_dial<'a>(&'a self, _: &'a Session) -> PluginFuture<'a> {
        self.note("after_dial", None);
        Box::pin(async { Ok(()) })
    }
    fn after_accept<'a>(&'a self, _: &'a Session) -> PluginFuture<'a> {
        self.note("after_accept", None);
        Box::pin(async { Ok(()) })
    }
    fn before_write_pull(&self, _: &Session, frame: &mut Frame) -> Result<(), Status> {
        self.note("before_write_pull", Some(&frame.header));
        Ok(())
    }
    fn after_write_pull(&self, _: &Session, header: &Header) {
        self.note("after_write_pull", Some(header));
    }
    fn before_write_push(&self, _: &Session, frame: &mut Frame) -> Result<(), Status> {
        self.note("before_write_push", Some(&frame.header));
        Ok(())
    }
    fn after_write_push(&self, _: &Session, header: &Header) {
        self.note("after_write_push", Some(header));
    }
    fn before_write_reply(&self, _: &Session, frame: &mut Frame) -> Result<(), Status> {
        self.note("before_write_reply", Some(&frame.header));
        Ok(())
    }
    fn after_write_reply(&self, _: &Session, header: &Header) {
        self.note("after_write_reply", Some(header));
    }
    fn before_read_header(&self, _: &Session) -> Result<(), Status> {
        self.note("before_read_header", None);
        Ok(())
    }
    fn after_read_header(&self, _: &Session, header: &mut Header) -> Result<(), Status> {
        self.note("after_read_header", Some(header));
        Ok(())
    }
    fn before_read_body(&self, _: &Session, header: &Header) -> Result<(), Status> {
        self.note("before_read_body", Some(header));
        Ok(())
    }
    fn after_read_body(&self, _: &Session, frame: &mut Frame) -> Result<(), Status> {
        self.note("after_read_body", Some(&frame.header));
        Ok(())
    }
}

fn take(log: &Log) -> Vec<String> {
    std::mem::take(&mut *log.lock().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hook_fires_in_the_documented_order_for_a_pull_a_push_and_a_reply() {
    let server_log = Log::default();
    let client_log = Log::default();
    let (pushed_tx, mut pushed_rx) = mpsc::unbounded_channel::<()>();

    let mut router = Router::new();
    {
        let log = server_log.clone();
        let log2 = server_log.clone();
        router
            .group("/g")
            .plugin(Recorder::new("group", &server_log))
            .pull("/echo", move |_: Ctx, s: String| {
                log.lock().unwrap().push("handler:/g/echo".into());
                async move { Ok::<_, Status>(s) }
            })
            .push("/note", move |_: Ctx, _: String| {
                log2.lock().unwrap().push("handler:/g/note".into());
                let tx = pushed_tx.clone();
                async move {
                    let _ = tx.send(());
                }
            });
    }
    router.route_plugin("/g/echo", Recorder::new("route", &server_log));
    let server = Peer::new(
        PeerConfig::default().plugin(Recorder::new("peer", &server_log)),
        router,
    );
    let addr = server.listen("127.0.0.1:0").await.unwrap();
    let client = Peer::new(
        PeerConfig::default().plugin(Recorder::new("client", &client_log)),
        Router::new(),
    );
    let session = client.dial(addr).await.unwrap();

    let echoed: String = session.pull("/g/echo", &"hi").await.unwrap();
    assert_eq!(echoed, "hi");
    session.push("/g/note", &"note").await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), pushed_rx.recv())
        .await
        .unwrap()
        .unwrap();

    let expected_server = [
        // Registration: group and route plugins as routes are added, the
        // peer's when the peer is built.
        "group:after_register:Pull:/g/echo",
        "group:after_register:Push:/g/note",
        "route:after_register:Pull:/g/echo",
        "peer:after_register:Pull:/g/echo",
        "peer:after_register:Push:/g/note",
        "peer:after_accept",
        // The pull.
        "peer:before_read_header",
        "peer:after_read_header:Pull:/g/echo",
        "group:after_read_header:Pull:/g/echo",
        "route:after_read_header:Pull:/g/echo",
        "peer:before_read_body:Pull:/g/echo",
        "group:before_read_body:Pull:/g/echo",
        "route:before_read_body:Pull:/g/echo",
        "peer:after_read_body:Pull:/g/echo",
        "group:after_read_body:Pull:/g/echo",
        "route:after_read_body:Pull:/g/echo",
        "handler:/g/echo",
        // Its reply.
        "peer:before_write_reply:Reply:/g/echo",
        "group:before_write_reply:Reply:/g/echo",
        "route:before_write_reply:Reply:/g/echo",
        "peer:after_write_reply:Reply:/g/echo",
        "group:after_write_reply:Reply:/g/echo",
        "route:after_write_reply:Reply:/g/echo",
        // The push: no route plugin on /g/note.
        "peer:before_read_header",
        "peer:after_read_header:Push:/g/note",
        "group:after_read_header:Push:/g/note",
        "peer:before_read_body:Push:/g/note",
        "group:before_read_body:Push:/g/note",
        "peer:after_read_body:Push:/g/note",
        "group:after_read_body:Push:/g/note",
        "handler:/g/note",
    ];
    assert_eq!(take(&server_log), expected_server);

    let expected_client = [
        "client:after_dial",
        "client:before_write_pull:Pull:/g/echo",
        "client:after_write_pull:Pull:/g/echo",
        "client:before_read_header",
        "client:after_read_header:Reply:/g/echo",
        "client:before_read_body:Reply:/g/echo",
        "client:after_read_body:Reply:/g/echo",
        "client:before_write_push:Push:/g/note",
        "client:after_write_push:Push:/g/note",
    ];
    assert_eq!(take(&client_log), expected_client);
}

/// Fails one stage with a status.
struct FailAt {
    stage: &'static str,
    status: Status,
}

impl FailAt {
    fn check(&self, stage: &str) -> Result<(), Status> {
        if stage == self.stage {
            Err(self.status.clone())
        } else {
            Ok(())
        }
    }
}

impl Plugin for FailAt {
    fn name(&self) -> &str {
        "fail-at"
    }
    fn after_dial<'a>(&'a self, _: &'a Session) -> PluginFuture<'a> {
        Box::pin(async move { self.check("after_dial") })
    }
    fn after_accept<'a>(&'a self, _: &'a Session) -> PluginFuture<'a> {
        Box::pin(async move { self.check("after_accept") })
    }
    fn before_write_pull(&self, _: &Session, _: &mut Frame) -> Result<(), Status> {
        self.check("before_write_pull")
    }
    fn before_write_push(&self, _: &Session, _: &mut Frame) -> Result<(), Status> {
        self.check("before_write_push")
    }
    fn before_write_reply(&self, _: &Session, _: &mut Frame) -> Result<(), Status> {
        self.check("before_write_reply")
    }
    fn after_read_header(&self, _: &Session, _: &mut Header) -> Result<(), Status> {
        self.check("after_read_header")
    }
    fn before_read_body(&self, _: &Session, _: &Header) -> Result<(), Status> {
        self.check("before_read_body")
    }
    fn after_read_body(&self, _: &Session, _: &mut Frame) -> Result<(), Status> {
        self.check("after_read_body")
    }
}

/// A router whose handlers count their calls.
fn counting_router(calls: &Arc<AtomicUsize>) -> Router {
    let mut router = Router::new();
    let (c1, c2) = (calls.clone(), calls.clone());
    router
        .pull("/home/echo", move |_: Ctx, s: String| {
            c1.fetch_add(1, Ordering::SeqCst);
            async move { Ok::<_, Status>(s) }
        })
        .push("/home/note", move |_: Ctx, _: String| {
            c2.fetch_add(1, Ordering::SeqCst);
            async {}
        });
    router
}

async fn serve(config: PeerConfig, router: Router) -> (Peer, std::net::SocketAddr) {
    let server = Peer::new(config, router);
    let addr = server.listen("127.0.0.1:0").await.unwrap();
    (server, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_read_hook_replies_424_and_the_handler_never_runs() {
    for stage in ["after_read_header", "before_read_body", "after_read_body"] {
        let calls = Arc::new(AtomicUsize::new(0));
        let mut router = counting_router(&calls);
        router.route_plugin(
            "/home/echo",
            FailAt {
                stage,
                status: plugin::failed("nope"),
            },
        );
        let (_server, addr) = serve(PeerConfig::default(), router).await;
        let client = Peer::new(PeerConfig::default(), Router::new());
        let session = client.dial(addr).await.unwrap();
        let err = session
            .pull::<_, String>("/home/echo", &"x")
            .await
            .unwrap_err();
        let status = err.status().unwrap_or_else(|| panic!("{stage}: {err}"));
        assert_eq!(status.code(), 424, "{stage}");
        assert_eq!(status.text(), "nope", "{stage}");
        assert_eq!(calls.load(Ordering::SeqCst), 0, "{stage}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_hook_replies_with_the_plugins_own_status() {
    let calls = Arc::new(AtomicUsize::new(0));
    let config = PeerConfig::default().plugin(FailAt {
        stage: "after_read_header",
        status: Status::unauthorized(),
    });
    let (_server, addr) = serve(config, counting_router(&calls)).await;
    let client = Peer::new(PeerConfig::default(), Router::new());
    let session = client.dial(addr).await.unwrap();
    let err = session
        .pull::<_, String>("/home/echo", &"x")
        .await
        .unwrap_err();
    assert_eq!(err.status().map(Status::code), Some(401));
    // A refused push is dropped; the session still works for the next call.
    session.push("/home/note", &"x").await.unwrap();
    let err = session
        .pull::<_, String>("/home/echo", &"x")
        .await
        .unwrap_err();
    assert_eq!(err.status().map(Status::code), Some(401));
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_before_write_reply_replaces_the_reply_with_its_status() {
    let calls = Arc::new(AtomicUsize::new(0));
    let mut router = counting_router(&calls);
    router.route_plugin(
        "/home/echo",
        FailAt {
            stage: "before_write_reply",
            status: Status::new(599, "reply withheld"),
        },
    );
    let (_server, addr) = serve(PeerConfig::default(), router).await;
    let client = Peer::new(PeerConfig::default(), Router::new());
    let session = client.dial(addr).await.unwrap();
    let err = session
        .pull::<_, String>("/home/echo", &"x")
        .await
        .unwrap_err();
    let status = err.status().unwrap();
    assert_eq!((status.code(), status.text()), (599, "reply withheld"));
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the handler ran; its reply was replaced"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_write_hooks_stop_the_call_before_it_is_sent() {
    let calls = Arc::new(AtomicUsize::new(0));
    let (_server, addr) = serve(PeerConfig::default(), counting_router(&calls)).await;
    for stage in ["before_write_pull", "before_write_push"] {
        let client = Peer::new(
            PeerConfig::default().plugin(FailAt {
                stage,
                status: plugin::failed("not sent"),
            }),
            Router::new(),
        );
        let session = client.dial(addr).await.unwrap();
        let err = match stage {
            "before_write_pull" => session
                .pull::<_, String>("/home/echo", &"x")
                .await
                .unwrap_err(),
            _ => session.push("/home/note", &"x").await.unwrap_err(),
        };
        assert_eq!(err.status().map(Status::code), Some(424), "{stage}: {err}");
    }
    // Prove the server is reachable and saw nothing from either client.
    let plain = Peer::new(PeerConfig::default(), Router::new());
    let session = plain.dial(addr).await.unwrap();
    let _: String = session.pull("/home/echo", &"x").await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_read_hook_on_a_reply_fails_the_waiting_pull() {
    let calls = Arc::new(AtomicUsize::new(0));
    let (_server, addr) = serve(PeerConfig::default(), counting_router(&calls)).await;
    let client = Peer::new(
        PeerConfig::default().plugin(FailAt {
            stage: "after_read_body",
            status: Status::new(498, "reply rejected"),
        }),
        Router::new(),
    );
    let session = client.dial(addr).await.unwrap();
    let err = session
        .pull::<_, String>("/home/echo", &"x")
        .await
        .unwrap_err();
    assert_eq!(err.status().map(Status::code), Some(498));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_after_accept_closes_the_session_with_the_reason_and_no_handler_runs() {
    let calls = Arc::new(AtomicUsize::new(0));
    let config = PeerConfig::default().plugin(FailAt {
        stage: "after_accept",
        status: Status::new(403, "banned address"),
    });
    let (server, addr) = serve(config, counting_router(&calls)).await;
    let client = Peer::new(PeerConfig::default(), Router::new());
    let session = client.dial(addr).await.unwrap();
    let err = session
        .pull::<_, String>("/home/echo", &"x")
        .timeout(Duration::from_secs(10))
        .await
        .unwrap_err();
    assert!(err.is_connection_closed(), "{err}");
    tokio::time::timeout(Duration::from_secs(5), session.closed())
        .await
        .unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    wait::no_sessions_left(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_after_dial_fails_the_dial_with_the_plugins_status() {
    let calls = Arc::new(AtomicUsize::new(0));
    let (_server, addr) = serve(PeerConfig::default(), counting_router(&calls)).await;
    let client = Peer::new(
        PeerConfig::default().plugin(FailAt {
            stage: "after_dial",
            status: Status::new(403, "not today"),
        }),
        Router::new(),
    );
    let err = client.dial(addr).await.unwrap_err();
    let PeerError::Refused(refused) = &err else {
        panic!("expected a refused dial, got {err}");
    };
    assert_eq!(refused.status.code(), 403);
    assert_eq!(refused.stage, "after_dial");
    assert_eq!(client.session_count(), 0);
}

/// Takes a while to accept, then tags the session.
struct SlowAccept;

#[derive(Clone)]
struct Tag(&'static str);

impl Plugin for SlowAccept {
    fn after_accept<'a>(&'a self, session: &'a Session) -> PluginFuture<'a> {
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            session.extensions().insert(Tag("accepted"));
            Ok(())
        })
    }
}

// Paused time: the hook's 100 ms pass without taking real time, and only
// once every call is written and waiting (the clock moves when all idle).
#[tokio::test(start_paused = true)]
async fn calls_wait_for_a_slow_after_accept_and_handlers_see_its_session_values() {
    let mut router = Router::new();
    router.pull("/whoami", |ctx: Ctx, (): ()| async move {
        ctx.session()
            .extensions()
            .get::<Tag>()
            .map(|t| t.0.to_string())
            .ok_or_else(|| Status::internal("the handler ran before after_accept finished"))
    });
    let (_server, addr) = serve(PeerConfig::default().plugin(SlowAccept), router).await;
    let client = Peer::new(PeerConfig::default(), Router::new());
    let session = client.dial(addr).await.unwrap();
    let calls: Vec<_> = (0..20)
        .map(|_| {
            let session = session.clone();
            tokio::spawn(async move { session.pull::<_, String>("/whoami", &()).await })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap(), "accepted");
    }
}

/// Rewrites every URI under `/v1/` to `/v2/`.
struct Rewrite;

impl Plugin for Rewrite {
    fn after_read_header(&self, _: &Session, header: &mut Header) -> Result<(), Status> {
        if let Some(rest) = header.uri.strip_prefix("/v1/") {
            header.uri = format!("/v2/{rest}").into();
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_plugin_can_rewrite_the_uri_before_routing() {
    let mut router = Router::new();
    router.pull("/v2/echo", |ctx: Ctx, (): ()| async move {
        Ok::<_, Status>(ctx.uri().to_string())
    });
    let (_server, addr) = serve(PeerConfig::default().plugin(Rewrite), router).await;
    let client = Peer::new(PeerConfig::default(), Router::new());
    let session = client.dial(addr).await.unwrap();
    let uri: String = session.pull("/v1/echo?x=1", &()).await.unwrap();
    assert_eq!(uri, "/v2/echo?x=1");
    let err = session
        .pull::<_, String>("/v3/echo", &())
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Status { ref status, .. } if status.code() == 404),
        "{err}"
    );
}

/// Panics while accepting.
struct PanicOnAccept;

impl Plugin for PanicOnAccept {
    fn after_accept<'a>(&'a self, _: &'a Session) -> PluginFuture<'a> {
        Box::pin(async { panic!("plugin bug") })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_session_hook_closes_the_session_instead_of_holding_it_forever() {
    let calls = Arc::new(AtomicUsize::new(0));
    let (server, addr) = serve(
        PeerConfig::default().plugin(PanicOnAccept),
        counting_router(&calls),
    )
    .await;
    let client = Peer::new(PeerConfig::default(), Router::new());
    let session = client.dial(addr).await.unwrap();
    let err = session
        .pull::<_, String>("/home/echo", &"x")
        .timeout(Duration::from_secs(10))
        .await
        .unwrap_err();
    assert!(err.is_connection_closed(), "{err}");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    wait::no_sessions_left(&server).await;
}

/// Sees the whole body of every pull and reply it writes: the bincode
/// section of a 20,000-character string (id byte, 8-byte length, text).
struct SeesBody {
    seen: Arc<Mutex<Vec<usize>>>,
}

impl Plugin for SeesBody {
    fn name(&self) -> &str {
        "sees-body"
    }
    fn before_write_pull(&self, _: &Session, frame: &mut Frame) -> Result<(), Status> {
        self.seen.lock().unwrap().push(frame.body.len());
        Ok(())
    }
    fn before_write_reply(&self, _: &Session, frame: &mut Frame) -> Result<(), Status> {
        self.seen.lock().unwrap().push(frame.body.len());
        Ok(())
    }
}

/// A large argument given up (`pull_owned`) and a large reply are handed
/// over without encoding only where no plugin must see the frame first:
/// with plugins on both peers, each still sees the whole body section.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_see_the_whole_body_of_large_owned_arguments_and_replies() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let config = || {
        PeerConfig::default()
            .body_codec(teleport::CodecId::BINCODE)
            .plugin(SeesBody { seen: seen.clone() })
    };
    let calls = Arc::new(AtomicUsize::new(0));
    let (_server, addr) = serve(config(), counting_router(&calls)).await;
    let client = Peer::new(config(), Router::new());
    let session = client.dial(addr).await.unwrap();
    let text = "p".repeat(20_000);
    let echoed: String = session
        .pull_owned("/home/echo", text.clone(), teleport::CallOptions::default())
        .await
        .unwrap();
    assert!(echoed == text);
    let section = 1 + 8 + 20_000;
    assert_eq!(
        *seen.lock().unwrap(),
        [section, section],
        "pull, then reply"
    );
}
