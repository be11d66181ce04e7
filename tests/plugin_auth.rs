//! The auth plugin over real loopback TCP: a valid credential lets calls
//! through, a refused or missing one gets 401 and a closed session, and no
//! handler ever runs for an unauthenticated session.

#[path = "support/wait.rs"]
mod wait;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use teleport::plugin::auth::{AUTH_URI, AuthClient, AuthServer, Authenticated};
use teleport::{Ctx, Peer, PeerConfig, PeerError, Router, Session, Status};
use tokio::sync::{Notify, mpsc};

/// Holds every credential check until the test lets it go: `started`
/// receives one message as each check begins, and checks wait for
/// `release`.
struct Hold {
    started: mpsc::UnboundedSender<()>,
    release: Arc<Notify>,
}

/// A server whose handler counts its calls and whose credential check
/// accepts only "s3cret", held by `hold` if given.
async fn server(calls: &Arc<AtomicUsize>, hold: Option<Hold>) -> (Peer, std::net::SocketAddr) {
    let mut router = Router::new();
    let c = calls.clone();
    router.pull("/home/whoami", move |ctx: Ctx, (): ()| {
        c.fetch_add(1, Ordering::SeqCst);
        async move {
            let who = ctx.session().extensions().get::<Authenticated>();
            Ok::<_, Status>(who.map(|a| a.0).unwrap_or_default())
        }
    });
    let hold = hold.map(Arc::new);
    let auth = AuthServer::new(move |_: Session, token: String| {
        let hold = hold.clone();
        async move {
            if let Some(hold) = hold {
                let _ = hold.started.send(());
                hold.release.notified().await;
            }
            if token == "s3cret" {
                Ok("alice".to_string())
            } else {
                Err(Status::unauthorized())
            }
        }
    })
    .timeout(Duration::from_millis(300));
    let server = Peer::new(PeerConfig::default().plugin(auth), router);
    let addr = server.listen("127.0.0.1:0").await.unwrap();
    (server, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_credential_lets_calls_through_and_handlers_see_the_identity() {
    let calls = Arc::new(AtomicUsize::new(0));
    let (_server, addr) = server(&calls, None).await;
    let client = Peer::new(
        PeerConfig::default().plugin(AuthClient::new("s3cret")),
        Router::new(),
    );
    let session = client.dial(addr).await.unwrap();
    let who: String = session.pull("/home/whoami", &()).await.unwrap();
    assert_eq!(who, "alice");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_credential_fails_the_dial_with_401_closes_the_session_and_no_handler_runs() {
    let calls = Arc::new(AtomicUsize::new(0));
    let (server, addr) = server(&calls, None).await;
    let client = Peer::new(
        PeerConfig::default().plugin(AuthClient::new("wrong")),
        Router::new(),
    );
    let err = client.dial(addr).await.unwrap_err();
    let PeerError::Refused(refused) = &err else {
        panic!("expected a refused dial, got {err}");
    };
    assert_eq!(refused.status.code(), 401);
    assert_eq!(client.session_count(), 0);
    wait::no_sessions_left(&server).await;
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_without_a_credential_get_401_never_reach_a_handler_and_the_session_closes() {
    let calls = Arc::new(AtomicUsize::new(0));
    let (server, addr) = server(&calls, None).await;
    let client = Peer::new(PeerConfig::default(), Router::new());
    let session = client.dial(addr).await.unwrap();
    let err = session
        .pull::<_, String>("/home/whoami", &())
        .await
        .unwrap_err();
    assert_eq!(err.status().map(Status::code), Some(401), "{err}");
    tokio::time::timeout(Duration::from_secs(5), session.closed())
        .await
        .expect("the server closes a session that skipped auth");
    wait::no_sessions_left(&server).await;
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

// Paused time: the 300 ms credential timeout cannot pass while the test
// runs between the check starting and the early call's reply.
#[tokio::test(start_paused = true)]
async fn a_call_pipelined_behind_a_slow_credential_check_never_reaches_its_handler() {
    let calls = Arc::new(AtomicUsize::new(0));
    let (started, mut checking) = mpsc::unbounded_channel();
    let release = Arc::new(Notify::new());
    let hold = Hold {
        started,
        release: release.clone(),
    };
    let (_server, addr) = server(&calls, Some(hold)).await;
    // A client that does not wait for its credential to pass.
    let client = Peer::new(PeerConfig::default(), Router::new());
    let session = client.dial(addr).await.unwrap();
    let auth = {
        let session = session.clone();
        tokio::spawn(async move { session.pull::<_, bool>(AUTH_URI, &"s3cret").await })
    };
    // The credential check is running (and held) when the call arrives.
    tokio::time::timeout(wait::GUARD, checking.recv())
        .await
        .expect("the credential check starts")
        .unwrap();
    let early = session.pull::<_, String>("/home/whoami", &()).await;
    assert_eq!(early.unwrap_err().status().map(Status::code), Some(401));
    release.notify_one();
    let _ = auth.await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn a_session_that_sends_no_credential_is_closed_after_the_timeout() {
    let calls = Arc::new(AtomicUsize::new(0));
    let (server, addr) = server(&calls, None).await;
    let client = Peer::new(PeerConfig::default(), Router::new());
    let session = client.dial(addr).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), session.closed())
        .await
        .expect("the server closes a session that never authenticates");
    wait::no_sessions_left(&server).await;
}
