//! The balanced client over real loopback sockets, with several servers in
//! this process: generated clients over it (every argument shape and
//! codec), load spread by each strategy, ejection and safe retries when a
//! server goes away, sticky keys, and servers calling back over the
//! session that carried the call. The same scenario with separate server
//! processes and SIGKILL is `fleet_processes.rs`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use serde::{Deserialize, Serialize};
use teleport::balance::{BalanceEvent, Balanced, Strategy};
use teleport::discovery::{Endpoint, StaticResolver};
use teleport::{CallOptions, CodecId, Ctx, Error, Peer, PeerConfig, Proto, Router, Status};
use tokio::sync::mpsc;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Point {
    x: i32,
    y: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Sample {
    #[prost(int64, tag = "1")]
    number: i64,
    #[prost(string, tag = "2")]
    text: String,
}

/// One method per argument shape, and the calls the fleet tests count.
#[teleport::service]
trait Fleet {
    /// No argument.
    #[idempotent]
    async fn none(&self) -> u32;
    /// One argument.
    #[idempotent]
    async fn one(&self, text: String) -> String;
    /// Several arguments.
    async fn several(&self, a: i64, b: String, c: bool) -> (i64, String, bool);
    /// Structs.
    async fn structs(&self, p: Point, q: Point) -> Point;
    /// Bytes.
    async fn bytes(&self, data: Vec<u8>) -> Vec<u8>;
    /// Protobuf.
    async fn proto(&self, sample: Proto<Sample>) -> Proto<Sample>;
    /// A handler error travels back as a status.
    async fn fails(&self) -> Result<u32, Status>;
    /// Which server answered (safe to repeat).
    #[idempotent]
    async fn whoami(&self) -> u32;
    /// Counts a call (not safe to repeat).
    async fn bump(&self) -> u32;
    /// A push: counted on the server.
    #[push]
    async fn note(&self, text: String);
    /// Pushes `text` back to the caller and pulls its name, over the
    /// session the call came on.
    async fn call_back(&self, ctx: Ctx, text: String) -> Result<String, Status>;
}

struct Server {
    id: u32,
    /// Calls counted so far, for waiting on them.
    answered: Arc<tokio::sync::watch::Sender<u64>>,
    /// While true, `whoami` calls wait (counted in `held`) until it is
    /// false again or the server closes: calls surely in flight.
    hold: Arc<tokio::sync::watch::Sender<bool>>,
    held: Arc<tokio::sync::watch::Sender<u64>>,
    notes: mpsc::UnboundedSender<(u32, String)>,
}

impl Fleet for Server {
    async fn none(&self) -> u32 {
        self.id
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
    async fn proto(&self, Proto(s): Proto<Sample>) -> Proto<Sample> {
        Proto(Sample {
            number: s.number * 2,
            text: s.text.repeat(2),
        })
    }
    async fn fails(&self) -> Result<u32, Status> {
        Err(Status::new(503, "busy"))
    }
    async fn whoami(&self) -> u32 {
        self.answered.send_modify(|n| *n += 1);
        if *self.hold.borrow() {
            self.held.send_modify(|n| *n += 1);
            let mut hold = self.hold.subscribe();
            let _ = hold.wait_for(|&hold| !hold).await;
        }
        // Not done at once, so calls overlap (no clock involved).
        tokio::task::yield_now().await;
        self.id
    }
    async fn bump(&self) -> u32 {
        self.answered.send_modify(|n| *n += 1);
        // Not done at once, so calls overlap (no clock involved).
        tokio::task::yield_now().await;
        self.id
    }
    async fn note(&self, text: String) {
        let _ = self.notes.send((self.id, text));
    }
    async fn call_back(&self, ctx: Ctx, text: String) -> Result<String, Status> {
        let session = ctx.session();
        session
            .push("/client/note", &format!("{text} from {}", self.id))
            .await
            .map_err(|e| Status::new(500, e.to_string()))?;
        let name: String = session
            .pull("/client/name", &())
            .await
            .map_err(|e| Status::new(500, e.to_string()))?;
        Ok(format!("{name} via {}", self.id))
    }
}

/// A server process stand-in: its peer, address and call counter.
struct Running {
    peer: Peer,
    addr: String,
    answered: Arc<tokio::sync::watch::Sender<u64>>,
    hold: Arc<tokio::sync::watch::Sender<bool>>,
    held: Arc<tokio::sync::watch::Sender<u64>>,
}

async fn start(id: u32, notes: &mpsc::UnboundedSender<(u32, String)>) -> Running {
    let answered = Arc::new(tokio::sync::watch::channel(0).0);
    let hold = Arc::new(tokio::sync::watch::channel(false).0);
    let held = Arc::new(tokio::sync::watch::channel(0).0);
    let mut router = Router::new();
    FleetServer::new(Server {
        id,
        answered: Arc::clone(&answered),
        hold: Arc::clone(&hold),
        held: Arc::clone(&held),
        notes: notes.clone(),
    })
    .register(&mut router);
    let peer = Peer::new(PeerConfig::default(), router);
    let addr = peer.listen("127.0.0.1:0").await.unwrap().to_string();
    Running {
        peer,
        addr,
        answered,
        hold,
        held,
    }
}

async fn fleet(n: u32) -> (Vec<Running>, mpsc::UnboundedReceiver<(u32, String)>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut servers = Vec::new();
    for id in 0..n {
        servers.push(start(id, &tx).await);
    }
    (servers, rx)
}

fn resolver_of(servers: &[Running]) -> StaticResolver {
    StaticResolver::new().with_service("fleet", servers.iter().map(|s| s.addr.clone()))
}

async fn balanced(resolver: StaticResolver, strategy: Strategy, n: usize) -> Balanced {
    let peer = Peer::new(PeerConfig::default(), client_router());
    let b = Balanced::builder(peer, resolver, "fleet")
        .strategy(strategy)
        .backoff(Duration::from_millis(10), Duration::from_millis(200))
        .connect()
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), b.ready(n))
        .await
        .expect("every endpoint connects");
    b
}

fn client_router() -> Router {
    let mut router = Router::new();
    router.pull("/client/name", |_: Ctx, (): ()| async {
        Ok::<_, Status>("the client".to_string())
    });
    router
}

/// Runs `total` whoami calls, `concurrency` in flight; returns answers per
/// server id.
async fn spread(
    client: &FleetClient<Balanced>,
    total: usize,
    concurrency: usize,
) -> BTreeMap<u32, usize> {
    let mut counts = BTreeMap::new();
    let mut in_flight = FuturesUnordered::new();
    let mut started = 0;
    while started < total || !in_flight.is_empty() {
        while started < total && in_flight.len() < concurrency {
            in_flight.push(client.whoami());
            started += 1;
        }
        let id = in_flight.next().await.unwrap().expect("an idempotent call");
        *counts.entry(id).or_insert(0) += 1;
    }
    counts
}

/// Waits until `count` reaches `n`; fails the test, saying `what` did not
/// happen, after 10 s.
async fn at_least(count: &tokio::sync::watch::Sender<u64>, n: u64, what: &str) {
    tokio::time::timeout(
        Duration::from_secs(10),
        count.subscribe().wait_for(|&c| c >= n),
    )
    .await
    .unwrap_or_else(|_| panic!("{what}: not within 10 s"))
    .unwrap();
}

/// Like [`spread`], but keeps `concurrency` idempotent calls in flight
/// until `stop` says so, so that some are surely in flight when a server
/// goes away meanwhile.
async fn spread_until(
    client: &FleetClient<Balanced>,
    concurrency: usize,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> BTreeMap<u32, usize> {
    let mut counts = BTreeMap::new();
    let mut in_flight = FuturesUnordered::new();
    loop {
        let stopping = *stop.borrow_and_update();
        while !stopping && in_flight.len() < concurrency {
            in_flight.push(client.whoami());
        }
        if stopping && in_flight.is_empty() {
            return counts;
        }
        let id = in_flight.next().await.unwrap().expect("an idempotent call");
        *counts.entry(id).or_insert(0) += 1;
    }
}

fn assert_within_20_percent(counts: &BTreeMap<u32, usize>, live: usize) {
    assert_eq!(
        counts.len(),
        live,
        "every live endpoint answered: {counts:?}"
    );
    let total: usize = counts.values().sum();
    let mean = total as f64 / live as f64;
    for (id, &n) in counts {
        let off = (n as f64 - mean).abs() / mean;
        assert!(
            off <= 0.2,
            "server {id} answered {n} of {total} calls ({:.0}% off the mean): {counts:?}",
            off * 100.0
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_clients_work_over_a_balanced_client_with_every_shape_and_codec() {
    let (servers, mut notes) = fleet(3).await;
    let b = balanced(resolver_of(&servers), Strategy::RoundRobin, 3).await;
    let client = FleetClient::new(b.clone());
    for codec in [CodecId::JSON, CodecId::BINCODE] {
        for gzip in [0, 5] {
            let c = client.with_options(
                CallOptions::default()
                    .codec(codec)
                    .gzip(teleport::GzipLevel::new(gzip).unwrap()),
            );
            let at = format!("codec {codec} gzip {gzip}");
            assert!(c.none().await.unwrap() < 3, "{at}");
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
            assert_eq!(c.bytes(vec![1, 2, 3]).await.unwrap(), vec![3, 2, 1], "{at}");
            c.note(at.clone()).await.unwrap();
            assert_eq!(notes.recv().await.unwrap().1, at);
        }
    }
    let text = client.with_options(CallOptions::default().codec(CodecId::STRING));
    assert_eq!(text.one("plain".into()).await.unwrap(), "PLAIN");
    let pb = client.with_options(
        CallOptions::default()
            .codec(CodecId::PROTOBUF)
            .gzip(teleport::GzipLevel::L5),
    );
    let Proto(got) = pb
        .proto(Proto(Sample {
            number: 21,
            text: "ab".into(),
        }))
        .await
        .unwrap();
    assert_eq!((got.number, got.text.as_str()), (42, "abab"));
    // A status is an answer: returned as it is, not retried elsewhere.
    let err = client.fails().await.unwrap_err();
    assert_eq!(err.status().map(Status::code), Some(503), "{err}");
    assert_eq!(b.stats().retried, 0);
    // Prefixes and queries work the same over it.
    assert!(client.with_query("a=1").whoami().await.unwrap() < 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_spreads_within_20_percent_with_every_strategy_and_follows_the_resolver() {
    let (mut servers, _notes) = fleet(3).await;
    let resolver = resolver_of(&servers);
    for strategy in [
        Strategy::PowerOfTwoChoices,
        Strategy::RoundRobin,
        Strategy::Weighted,
    ] {
        let b = balanced(resolver.clone(), strategy, 3).await;
        let counts = spread(&FleetClient::new(b), 1_500, 64).await;
        assert_within_20_percent(&counts, 3);
    }

    // A fourth server: the resolver says so, every client takes it in.
    let b = balanced(resolver.clone(), Strategy::PowerOfTwoChoices, 3).await;
    let (tx, _rx) = mpsc::unbounded_channel();
    servers.push(start(3, &tx).await);
    resolver.set("fleet", servers.iter().map(|s| s.addr.clone()));
    tokio::time::timeout(Duration::from_secs(10), b.ready(4))
        .await
        .unwrap();
    let counts = spread(&FleetClient::new(b.clone()), 2_000, 64).await;
    assert_within_20_percent(&counts, 4);

    // Weights: 300 against 100 → three quarters of the calls.
    let weighted = StaticResolver::new().with_service(
        "fleet",
        [
            Endpoint::new(servers[0].addr.clone()).with_weight(300),
            Endpoint::new(servers[1].addr.clone()),
        ],
    );
    let b = balanced(weighted, Strategy::Weighted, 2).await;
    let counts = spread(&FleetClient::new(b), 2_000, 16).await;
    assert!((1_300..=1_700).contains(&counts[&0]), "{counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_goes_away_is_ejected_and_no_idempotent_call_fails() {
    let (servers, _notes) = fleet(3).await;
    let b = balanced(resolver_of(&servers), Strategy::PowerOfTwoChoices, 3).await;
    let mut events = b.events();
    let client = FleetClient::new(b.clone());

    // Idempotent calls keep 64 in flight until the closed server is ejected.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let idempotent = tokio::spawn({
        let client = client.clone();
        async move { spread_until(&client, 64, stopped).await }
    });
    let plain = tokio::spawn({
        let client = client.clone();
        async move {
            let mut failures = Vec::new();
            let mut ok = 0;
            let mut in_flight = FuturesUnordered::new();
            for _ in 0..2_000 {
                if in_flight.len() >= 32 {
                    match in_flight.next().await.unwrap() {
                        Ok(_) => ok += 1,
                        Err(e) => failures.push(e),
                    }
                }
                in_flight.push(client.bump());
            }
            while let Some(r) = in_flight.next().await {
                match r {
                    Ok(_) => ok += 1,
                    Err(e) => failures.push(e),
                }
            }
            (ok, failures)
        }
    });
    // Once server 0 has taken calls, take it down with calls in flight.
    at_least(&servers[0].answered, 200, "server 0 takes calls").await;
    // Hold server 0's next idempotent call, so that one is surely in
    // flight when it closes.
    servers[0].hold.send_replace(true);
    at_least(&servers[0].held, 1, "server 0 holds a call").await;
    servers[0].peer.close(Duration::ZERO).await;
    let ejected = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let BalanceEvent::Ejected { addr, .. } = events.recv().await.unwrap() {
                break addr;
            }
        }
    })
    .await
    .expect("the closed server is ejected");
    assert_eq!(ejected, servers[0].addr);
    stop.send(true).unwrap();

    // `spread_until` panics on any failed call.
    let counts = idempotent.await.unwrap();
    let idempotent_calls = counts.values().sum::<usize>();
    let (ok, failures) = plain.await.unwrap();
    // A non-idempotent call fails only when it was written and the
    // connection then closed: retrying it could run it twice.
    for e in &failures {
        assert!(matches!(e, Error::ConnectionClosed { .. }), "{e}");
    }
    assert_eq!(ok + failures.len(), 2_000);
    eprintln!(
        "in-process failover: {idempotent_calls} idempotent calls, 0 failed; 2000 plain calls, {} failed in flight; stats {:?}",
        failures.len(),
        b.stats()
    );
    assert!(b.stats().retried > 0, "calls caught in flight were resent");
    assert!(!b.live_endpoints().iter().any(|e| e.addr == servers[0].addr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_calls_stick_to_one_server_and_only_the_keys_of_a_removed_one_move() {
    let (servers, _notes) = fleet(4).await;
    let resolver = resolver_of(&servers);
    let b = balanced(resolver.clone(), Strategy::PowerOfTwoChoices, 4).await;
    let owners = |b: Balanced| async move {
        let mut owners = HashMap::new();
        for room in 0..200 {
            let c = FleetClient::new(b.with_key(format!("room-{room}")));
            let first = c.whoami().await.unwrap();
            for _ in 0..3 {
                assert_eq!(c.whoami().await.unwrap(), first, "room-{room} moved");
            }
            owners.insert(room, first);
        }
        owners
    };
    let before = owners(b.clone()).await;
    let per_server = before.values().fold(BTreeMap::new(), |mut m, id| {
        *m.entry(*id).or_insert(0) += 1;
        m
    });
    assert_eq!(
        per_server.len(),
        4,
        "rooms spread over every server: {per_server:?}"
    );

    // Server 2 leaves the resolver: only its rooms move.
    resolver.set(
        "fleet",
        servers
            .iter()
            .filter(|s| s.addr != servers[2].addr)
            .map(|s| s.addr.clone()),
    );
    let mut events = b.events();
    while b.live_endpoints().len() != 3 {
        let _ = events.recv().await;
    }
    assert!(
        !b.stats()
            .endpoints
            .iter()
            .any(|e| e.addr == servers[2].addr),
        "a removed endpoint's counts are forgotten"
    );
    let after = owners(b).await;
    for (room, owner) in &before {
        if *owner == 2 {
            assert_ne!(after[room], 2);
        } else {
            assert_eq!(
                after[room], *owner,
                "room-{room} moved though its server stayed"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_push_and_pull_back_over_the_session_that_carried_the_call() {
    let (servers, _notes) = fleet(3).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut router = client_router();
    router.push("/client/note", move |_: Ctx, text: String| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(text);
        }
    });
    let peer = Peer::new(PeerConfig::default(), router);
    let b = Balanced::builder(peer, resolver_of(&servers), "fleet")
        .strategy(Strategy::RoundRobin)
        .connect()
        .await
        .unwrap();
    b.ready(3).await;
    let client = FleetClient::new(b);
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..6 {
        let reply = client.call_back(format!("hello {i}")).await.unwrap();
        let server: u32 = reply.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(reply.starts_with("the client via "), "{reply}");
        assert_eq!(rx.recv().await.unwrap(), format!("hello {i} from {server}"));
        seen.insert(server);
    }
    assert_eq!(seen.len(), 3, "round robin used every server");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_live_endpoint_a_call_fails_as_not_sent_naming_the_service() {
    let resolver = StaticResolver::new().with_service("fleet", Vec::<Endpoint>::new());
    let peer = Peer::new(PeerConfig::default(), Router::new());
    let b = Balanced::builder(peer, resolver, "fleet")
        .wait_for_endpoint(Duration::from_millis(50))
        .connect()
        .await
        .unwrap();
    let err = b.pull::<_, u32>("/fleet/whoami", &()).await.unwrap_err();
    assert!(err.is_not_sent(), "{err}");
    assert!(err.to_string().contains("\"fleet\""), "{err}");
    let unknown = Balanced::builder(
        Peer::new(PeerConfig::default(), Router::new()),
        StaticResolver::new(),
        "nope",
    )
    .connect()
    .await
    .unwrap_err();
    assert!(unknown.to_string().contains("nope"), "{unknown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_calls_for_proxies_go_over_the_service_with_their_bytes() {
    let (servers, mut notes) = fleet(2).await;
    let b = balanced(resolver_of(&servers), Strategy::RoundRobin, 2).await;
    for _ in 0..2 {
        let reply = b
            .pull_raw(
                "/fleet/one",
                0,
                bytes::Bytes::from_static(b"j\"hi\""),
                CallOptions::default(),
            )
            .await
            .unwrap();
        assert_eq!(reply.header.status_code, 200);
        assert_eq!(&reply.body[..], b"j\"HI\"");
    }
    b.push_raw(
        "/fleet/note",
        0,
        bytes::Bytes::from_static(b"j\"raw\""),
        CallOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(notes.recv().await.unwrap().1, "raw");
    let stats = b.stats();
    assert!(
        stats.endpoints.iter().all(|e| e.answered >= 1),
        "round robin used both: {stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subsetting_client_connects_to_its_k_endpoints_only() {
    let (servers, _notes) = fleet(6).await;
    let peer = Peer::new(PeerConfig::default(), Router::new());
    let b = Balanced::builder(peer, resolver_of(&servers), "fleet")
        .subset(2, "client-a")
        .connect()
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), b.ready(2))
        .await
        .unwrap();
    // Only the subset's endpoints were ever dialed.
    let dialed: Vec<String> = b.stats().endpoints.into_iter().map(|e| e.addr).collect();
    assert_eq!(dialed.len(), 2, "{dialed:?}");
    let counts = spread(&FleetClient::new(b.clone()), 300, 16).await;
    let answering: std::collections::BTreeSet<String> = counts
        .keys()
        .map(|&id| servers[id as usize].addr.clone())
        .collect();
    assert_eq!(
        answering,
        dialed.into_iter().collect(),
        "calls go to the subset only"
    );
}
