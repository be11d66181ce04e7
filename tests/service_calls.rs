//! `#[teleport::service]` end to end over real loopback TCP: every argument
//! shape with every serde body codec, protobuf messages, `Result` errors
//! arriving as statuses, the call context and queries, pushes, per-call
//! options, groups and URI overrides, and many calls at once through one
//! client.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use teleport::{CallOptions, CodecId, Ctx, Peer, PeerConfig, Proto, Router, Session, Status};
use tokio::sync::mpsc;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Point {
    x: i32,
    y: i32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum Shape {
    Circle { radius: f64 },
    Square(u32),
    Empty,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
enum Color {
    Red,
    Green,
}

/// One method per argument shape.
#[teleport::service]
trait Shapes {
    /// No argument: the body is `()`.
    async fn none(&self) -> u32;
    /// One argument: the body is the argument itself.
    async fn one(&self, text: String) -> String;
    /// Several arguments: the body is a tuple.
    async fn several(&self, a: i64, b: String, c: bool) -> (i64, String, bool);
    /// Structs in and out.
    async fn structs(&self, p: Point, q: Point) -> Point;
    /// Bytes.
    async fn bytes(&self, data: Vec<u8>) -> Vec<u8>;
    /// A data-carrying enum.
    async fn enums(&self, shape: Shape) -> Shape;
    /// A unit enum (which the string codec can carry).
    async fn color(&self, color: Color) -> Color;
    /// A number.
    async fn number(&self, n: u64) -> u64;
    /// No reply value.
    async fn nothing(&self, n: u8);
}

struct ShapesImpl;

impl Shapes for ShapesImpl {
    async fn none(&self) -> u32 {
        7
    }
    async fn one(&self, text: String) -> String {
        text.to_uppercase()
    }
    async fn several(&self, a: i64, b: String, c: bool) -> (i64, String, bool) {
        (a * 2, format!("{b}!"), !c)
    }
    async fn structs(&self, p: Point, q: Point) -> Point {
        Point {
            x: p.x + q.x,
            y: p.y + q.y,
        }
    }
    async fn bytes(&self, mut data: Vec<u8>) -> Vec<u8> {
        data.reverse();
        data
    }
    async fn enums(&self, shape: Shape) -> Shape {
        match shape {
            Shape::Circle { radius } => Shape::Circle {
                radius: radius * 2.0,
            },
            Shape::Square(side) => Shape::Square(side + 1),
            Shape::Empty => Shape::Empty,
        }
    }
    async fn color(&self, color: Color) -> Color {
        match color {
            Color::Red => Color::Green,
            Color::Green => Color::Red,
        }
    }
    async fn number(&self, n: u64) -> u64 {
        n + 1
    }
    async fn nothing(&self, _n: u8) {}
}

async fn serve(router: Router) -> (Peer, Peer, Session) {
    let server = Peer::new(PeerConfig::default(), router);
    let addr = server.listen("127.0.0.1:0").await.unwrap();
    let client = Peer::new(PeerConfig::default(), Router::new());
    let session = client.dial(addr).await.unwrap();
    (server, client, session)
}

async fn shapes() -> (Peer, Peer, ShapesClient) {
    let mut router = Router::new();
    ShapesServer::new(ShapesImpl).register(&mut router);
    let (server, client, session) = serve(router).await;
    (server, client, ShapesClient::new(session))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_argument_shape_round_trips_with_json_and_bincode_with_and_without_gzip() {
    let (_server, _peer, client) = shapes().await;
    for codec in [CodecId::JSON, CodecId::BINCODE] {
        for gzip in [0, 5] {
            let c = client.with_options(
                CallOptions::default()
                    .codec(codec)
                    .gzip(teleport::GzipLevel::new(gzip).unwrap()),
            );
            let at = format!("codec {codec} gzip {gzip}");
            assert_eq!(c.none().await.unwrap(), 7, "{at}");
            assert_eq!(c.one("hi".into()).await.unwrap(), "HI", "{at}");
            assert_eq!(
                c.several(21, "wow".into(), true).await.unwrap(),
                (42, "wow!".to_string(), false),
                "{at}"
            );
            assert_eq!(
                c.structs(Point { x: 1, y: 2 }, Point { x: 10, y: 20 })
                    .await
                    .unwrap(),
                Point { x: 11, y: 22 },
                "{at}"
            );
            assert_eq!(
                c.bytes(vec![1, 2, 3, 0, 255]).await.unwrap(),
                vec![255, 0, 3, 2, 1],
                "{at}"
            );
            assert_eq!(c.bytes(Vec::new()).await.unwrap(), Vec::<u8>::new(), "{at}");
            assert_eq!(
                c.enums(Shape::Circle { radius: 1.5 }).await.unwrap(),
                Shape::Circle { radius: 3.0 },
                "{at}"
            );
            assert_eq!(
                c.enums(Shape::Square(3)).await.unwrap(),
                Shape::Square(4),
                "{at}"
            );
            assert_eq!(c.enums(Shape::Empty).await.unwrap(), Shape::Empty, "{at}");
            assert_eq!(c.color(Color::Red).await.unwrap(), Color::Green, "{at}");
            assert_eq!(c.number(41).await.unwrap(), 42, "{at}");
            c.nothing(1).await.unwrap();
        }
    }
}

/// A one-argument call hands its argument over: a large `String` or
/// `Vec<u8>` goes out as it is. Whatever the size (on both sides of where
/// that starts), codec and gzip level, the handler gets what was sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_text_and_byte_arguments_arrive_intact() {
    let (_server, _peer, client) = shapes().await;
    for n in [1023usize, 1024, 8_192, 70_000] {
        let text: String = (0..n).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
        let data: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
        for codec in [CodecId::JSON, CodecId::STRING, CodecId::BINCODE] {
            for gzip in [0, 1] {
                let c = client.with_options(
                    CallOptions::default()
                        .codec(codec)
                        .gzip(teleport::GzipLevel::new(gzip).unwrap()),
                );
                let at = format!("{n} bytes, codec {codec} gzip {gzip}");
                let upper = c.one(text.clone()).await.unwrap();
                assert!(upper == text.to_uppercase(), "{at}");
                if codec == CodecId::STRING {
                    continue; // a byte vector is not text
                }
                let mut reversed = data.clone();
                reversed.reverse();
                assert!(c.bytes(data.clone()).await.unwrap() == reversed, "{at}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_arguments_round_trip_with_the_string_codec() {
    let (_server, _peer, client) = shapes().await;
    let c = client.with_options(CallOptions::default().codec(CodecId::STRING));
    assert_eq!(c.one("plain text".into()).await.unwrap(), "PLAIN TEXT");
    assert_eq!(c.number(99).await.unwrap(), 100);
    assert_eq!(c.color(Color::Green).await.unwrap(), Color::Red);
    // Structure has no place in text: refused locally, before sending.
    let err = c
        .structs(Point { x: 1, y: 1 }, Point { x: 2, y: 2 })
        .await
        .unwrap_err();
    assert!(matches!(err, teleport::Error::Codec(_)), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arguments_travel_as_go_teleport_encodes_them() {
    // The wire form: one argument is the body, several a JSON array, none `()` (JSON `null`).
    let (_server, _peer, client) = shapes().await;
    let session = client.session();
    let several: (i64, String, bool) = session
        .pull("/shapes/several", &(1, "a", false))
        .await
        .unwrap();
    assert_eq!(several, (2, "a!".to_string(), true));
    let raw: serde_json::Value = session
        .pull("/shapes/several", &serde_json::json!([1, "a", false]))
        .await
        .unwrap();
    assert_eq!(raw, serde_json::json!([2, "a!", true]));
    let one: String = session.pull("/shapes/one", &"x").await.unwrap();
    assert_eq!(one, "X");
    let none: u32 = session.pull("/shapes/none", &()).await.unwrap();
    assert_eq!(none, 7);
}

#[derive(Debug)]
enum DivError {
    ByZero,
    Overflow { a: i64 },
}

impl From<DivError> for Status {
    fn from(e: DivError) -> Status {
        match e {
            DivError::ByZero => Status::new(599, "division by zero"),
            DivError::Overflow { a } => Status::new(598, format!("{a} / -1 overflows")),
        }
    }
}

/// Fallible pulls, the call context and a push.
#[teleport::service]
trait Arith {
    /// Divides with a `Status` error.
    async fn div(&self, a: i64, b: i64) -> Result<i64, Status>;
    /// Divides with an error type of its own.
    async fn checked_div(&self, a: i64, b: i64) -> std::result::Result<i64, DivError>;
    /// Sees the call context.
    async fn whoami(&self, ctx: Ctx) -> String;
    /// Sleeps, then answers.
    async fn slow(&self, ms: u64) -> u64;
    /// Counts its calls, with a default body.
    async fn twice(&self, n: u32) -> Result<u32, Status> {
        let doubled = n
            .checked_mul(2)
            .ok_or_else(|| Status::new(597, "too big"))?;
        Ok(doubled)
    }
    /// One-way note, with the context.
    #[push]
    async fn note(&self, ctx: Ctx, text: String, n: u32);
}

struct ArithImpl {
    notes: mpsc::UnboundedSender<(String, String, u32)>,
    calls: AtomicUsize,
}

impl Arith for ArithImpl {
    async fn div(&self, a: i64, b: i64) -> Result<i64, Status> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if b == 0 {
            return Err(Status::new(599, "division by zero"));
        }
        Ok(a / b)
    }
    async fn checked_div(&self, a: i64, b: i64) -> Result<i64, DivError> {
        match (a, b) {
            (_, 0) => Err(DivError::ByZero),
            (i64::MIN, -1) => Err(DivError::Overflow { a }),
            _ => Ok(a / b),
        }
    }
    async fn whoami(&self, ctx: Ctx) -> String {
        format!("{} {}", ctx.uri(), ctx.remote_addr())
    }
    async fn slow(&self, ms: u64) -> u64 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        ms
    }
    async fn note(&self, ctx: Ctx, text: String, n: u32) {
        let _ = self.notes.send((ctx.path().to_string(), text, n));
    }
}

async fn arith() -> (
    Peer,
    Peer,
    ArithClient,
    Arc<ArithImpl>,
    mpsc::UnboundedReceiver<(String, String, u32)>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let service = Arc::new(ArithImpl {
        notes: tx,
        calls: AtomicUsize::new(0),
    });
    let mut router = Router::new();
    ArithServer::from_arc(service.clone()).register(&mut router);
    let (server, client, session) = serve(router).await;
    (server, client, ArithClient::new(session), service, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn result_errors_arrive_as_their_status_code_and_text() {
    let (_server, _peer, client, _service, _notes) = arith().await;
    assert_eq!(client.div(84, 2).await.unwrap(), 42);
    let err = client.div(1, 0).await.unwrap_err();
    let status = err.status().expect("a status error");
    assert_eq!((status.code(), status.text()), (599, "division by zero"));

    assert_eq!(client.checked_div(-9, 3).await.unwrap(), -3);
    let err = client.checked_div(1, 0).await.unwrap_err();
    assert_eq!(err.status(), Some(&Status::new(599, "division by zero")));
    let err = client.checked_div(i64::MIN, -1).await.unwrap_err();
    assert_eq!(
        err.status(),
        Some(&Status::new(598, "-9223372036854775808 / -1 overflows"))
    );

    // A default method body, with `?` in it.
    assert_eq!(client.twice(21).await.unwrap(), 42);
    let err = client.twice(u32::MAX).await.unwrap_err();
    assert_eq!(err.status(), Some(&Status::new(597, "too big")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_call_context_is_left_out_of_the_client_and_filled_by_the_server() {
    let (_server, _peer, client, _service, mut notes) = arith().await;
    let local = client.session().local_addr();
    assert_eq!(
        client.whoami().await.unwrap(),
        format!("/arith/whoami {local}")
    );
    // A query travels in the URI, for the handler to read from its context.
    let tagged = client.with_query("from=test&n=1");
    assert_eq!(
        tagged.whoami().await.unwrap(),
        format!("/arith/whoami?from=test&n=1 {local}")
    );

    client.note("first".into(), 1).await.unwrap();
    client.note("second".into(), 2).await.unwrap();
    assert_eq!(
        notes.recv().await.unwrap(),
        ("/arith/note".into(), "first".into(), 1)
    );
    assert_eq!(
        notes.recv().await.unwrap(),
        ("/arith/note".into(), "second".into(), 2)
    );
}

// Paused time: `slow` sleeps without taking real time.
#[tokio::test(start_paused = true)]
async fn per_call_options_apply_to_a_copy_of_the_client_only() {
    let (_server, _peer, client, _service, _notes) = arith().await;
    let hasty = client.with_options(CallOptions::default().timeout(Duration::from_millis(50)));
    assert_eq!(
        hasty.options().timeout,
        Some(Some(Duration::from_millis(50)))
    );
    let err = hasty.slow(2_000).await.unwrap_err();
    assert!(err.is_timeout(), "{err}");
    // The original client keeps its defaults and the session keeps working.
    assert_eq!(client.options(), CallOptions::default());
    assert_eq!(client.slow(1).await.unwrap(), 1);
    assert_eq!(hasty.slow(1).await.unwrap(), 1);
}

// Paused time: `slow` sleeps without taking real time.
#[tokio::test(start_paused = true)]
async fn many_concurrent_calls_through_one_client_share_one_implementation() {
    let (_server, _peer, client, service, _notes) = arith().await;
    let mut calls = Vec::new();
    for i in 0..500i64 {
        let client = client.clone();
        calls.push(tokio::spawn(async move {
            // Later calls sleep less, so replies come back out of order.
            let ms = (500 - i as u64) % 20;
            let (slept, quotient) = tokio::join!(client.slow(ms), client.div(i * 6, 3));
            assert_eq!(slept.unwrap(), ms);
            assert_eq!(quotient.unwrap(), i * 2);
        }));
    }
    for call in calls {
        call.await.unwrap();
    }
    assert_eq!(service.calls.load(Ordering::Relaxed), 500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_to_a_peer_that_serves_nothing_gets_not_found() {
    let (_server, _peer, session) = serve(Router::new()).await;
    let err = ArithClient::new(session).div(1, 1).await.unwrap_err();
    assert_eq!(err.status().map(Status::code), Some(404));
}

/// A service under a group, with an overridden URI.
#[teleport::service(group = "/v1")]
trait MathOps {
    /// Derived: `/v1/math_ops/add_two`.
    async fn add_two(&self, n: i32) -> i32;
    /// Overridden: the group does not apply.
    #[uri = "/legacy/negate"]
    async fn negate(&self, n: i32) -> i32;
    /// A push under the group.
    #[push]
    async fn reset(&self);
}

struct MathImpl(mpsc::UnboundedSender<()>);

impl MathOps for MathImpl {
    async fn add_two(&self, n: i32) -> i32 {
        n + 2
    }
    async fn negate(&self, n: i32) -> i32 {
        -n
    }
    async fn reset(&self) {
        let _ = self.0.send(());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uris_follow_the_go_naming_rule_the_group_and_overrides() {
    let (tx, _rx) = mpsc::unbounded_channel();
    let mut router = Router::new();
    MathOpsServer::new(MathImpl(tx)).register(&mut router);
    let snake = teleport::router::to_snake_case("MathOps");
    assert_eq!(
        router.pull_paths(),
        ["/legacy/negate", &format!("/v1/{snake}/add_two")]
    );
    assert_eq!(router.push_paths(), ["/v1/math_ops/reset"]);

    let (_server, _peer, session) = serve(router).await;
    let client = MathOpsClient::new(session);
    assert_eq!(client.add_two(40).await.unwrap(), 42);
    assert_eq!(client.negate(5).await.unwrap(), -5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_registered_in_a_router_group_is_called_with_that_prefix() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut router = Router::new();
    MathOpsServer::new(MathImpl(tx)).register_in(&mut router.group("/outer"));
    assert_eq!(
        router.pull_paths(),
        ["/outer/legacy/negate", "/outer/v1/math_ops/add_two"]
    );
    let (_server, _peer, session) = serve(router).await;

    let plain = MathOpsClient::new(session);
    let err = plain.add_two(1).await.unwrap_err();
    assert_eq!(err.status().map(Status::code), Some(404));

    let prefixed = plain.with_prefix("outer/");
    assert_eq!(prefixed.add_two(1).await.unwrap(), 3);
    assert_eq!(prefixed.negate(1).await.unwrap(), -1);
    prefixed.reset().await.unwrap();
    rx.recv().await.unwrap();
}

#[derive(Clone, PartialEq, prost::Message)]
struct Sample {
    #[prost(int64, tag = "1")]
    number: i64,
    #[prost(string, tag = "2")]
    text: String,
}

/// Protobuf messages as the argument and the reply.
#[teleport::service]
trait Protos {
    /// Doubles the number and repeats the text.
    async fn double(&self, sample: Proto<Sample>) -> Proto<Sample>;
}

struct ProtosImpl;

impl Protos for ProtosImpl {
    async fn double(&self, Proto(sample): Proto<Sample>) -> Proto<Sample> {
        Proto(Sample {
            number: sample.number * 2,
            text: sample.text.repeat(2),
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protobuf_messages_round_trip_with_the_protobuf_codec() {
    let mut router = Router::new();
    ProtosServer::new(ProtosImpl).register(&mut router);
    let (_server, _peer, session) = serve(router).await;
    let client = ProtosClient::new(session);
    for gzip in [0, 5] {
        let pb = client.with_options(
            CallOptions::default()
                .codec(CodecId::PROTOBUF)
                .gzip(teleport::GzipLevel::new(gzip).unwrap()),
        );
        let Proto(got) = pb
            .double(Proto(Sample {
                number: 21,
                text: "ab".into(),
            }))
            .await
            .unwrap();
        assert_eq!(got.number, 42, "gzip {gzip}");
        assert_eq!(got.text, "abab", "gzip {gzip}");
    }
}

#[test]
fn generated_clients_and_servers_are_send_sync_clone_and_static() {
    fn assert_shareable<T: Send + Sync + Clone + 'static>() {}
    assert_shareable::<ShapesClient>();
    assert_shareable::<ArithClient>();
    assert_shareable::<ShapesServer<ShapesImpl>>();
    assert_shareable::<ArithServer<ArithImpl>>();
}

/// A service of plain `fn` methods beside an `async fn`: each kind of
/// method, with the context by reference or by value, a `Result`, a push.
#[teleport::service]
trait Counter {
    /// Adds `n` and returns the new total.
    fn add(&self, n: u64) -> u64;
    /// Subtracts `n`; going below zero replies status 599.
    fn take(&self, n: u64) -> Result<u64, Status>;
    /// The URI and query the call came with (context by reference).
    fn seen_at(&self, ctx: &Ctx) -> String;
    /// The remote address's port (context by value, as an `async fn` takes it).
    fn port(&self, ctx: Ctx) -> u16;
    /// Adds `n` without a reply.
    #[push]
    fn bump(&self, n: u64);
    /// Waits for the total to reach `n`: a method that awaits stays async.
    async fn reached(&self, n: u64) -> u64;
}

struct CounterImpl {
    total: std::sync::Mutex<u64>,
    changed: tokio::sync::Notify,
}

impl Counter for CounterImpl {
    fn add(&self, n: u64) -> u64 {
        let mut total = self.total.lock().unwrap();
        *total += n;
        self.changed.notify_waiters();
        *total
    }

    fn take(&self, n: u64) -> Result<u64, Status> {
        let mut total = self.total.lock().unwrap();
        *total = total
            .checked_sub(n)
            .ok_or_else(|| Status::new(599, format!("only {total} left")))?;
        Ok(*total)
    }

    fn seen_at(&self, ctx: &Ctx) -> String {
        ctx.uri().to_owned()
    }

    fn port(&self, ctx: Ctx) -> u16 {
        ctx.remote_addr().port()
    }

    fn bump(&self, n: u64) {
        self.add(n);
    }

    async fn reached(&self, n: u64) -> u64 {
        loop {
            let changed = self.changed.notified();
            let total = *self.total.lock().unwrap();
            if total >= n {
                return total;
            }
            changed.await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_fn_methods_are_served_like_async_ones() {
    let mut router = Router::new();
    CounterServer::new(CounterImpl {
        total: std::sync::Mutex::new(0),
        changed: tokio::sync::Notify::new(),
    })
    .register(&mut router);
    assert_eq!(
        router.pull_paths(),
        [
            "/counter/add",
            "/counter/port",
            "/counter/reached",
            "/counter/seen_at",
            "/counter/take"
        ]
    );
    let (_server, _peer, session) = serve(router).await;
    let local_port = session.local_addr().port();
    let client = CounterClient::new(session);
    for codec in [CodecId::JSON, CodecId::BINCODE] {
        let client = client.with_options(CallOptions::default().codec(codec));
        let start = client.add(0).await.unwrap();
        assert_eq!(client.add(5).await.unwrap(), start + 5, "codec {codec}");
    }
    let err = client.take(1_000).await.unwrap_err();
    let status = err.status().expect("the method's status");
    assert_eq!((status.code(), status.text()), (599, "only 10 left"));
    assert_eq!(client.take(4).await.unwrap(), 6);
    assert_eq!(
        client.with_query("k=v").seen_at().await.unwrap(),
        "/counter/seen_at?k=v"
    );
    assert_eq!(client.port().await.unwrap(), local_port);
    // Pushes are one-way: the async method sees their sum arrive.
    let waiting = {
        let client = client.clone();
        tokio::spawn(async move { client.reached(106).await })
    };
    for _ in 0..100 {
        client.bump(1).await.unwrap();
    }
    assert_eq!(waiting.await.unwrap().unwrap(), 106);
}
