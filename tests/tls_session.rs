//! TLS over real loopback TCP, with certificates made by rcgen at test
//! time: a round trip both ways, a plain-TCP client refused by a TLS
//! listener, untrusted or misnamed servers refused by a TLS dialer, and a
//! graceful shutdown over TLS.

use std::sync::Arc;
use std::time::Duration;

use teleport::tls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use teleport::tls::rustls::{self, ClientConfig, RootCertStore, ServerConfig};
use teleport::{Ctx, Peer, PeerConfig, PeerError, Router, Status};
use tokio::sync::mpsc;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A self-signed certificate for `localhost` and `127.0.0.1`, made now.
struct Identity {
    cert: CertificateDer<'static>,
    key: Vec<u8>,
}

fn identity() -> Identity {
    let made =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    Identity {
        cert: made.cert.der().clone(),
        key: made.signing_key.serialize_der(),
    }
}

fn server_config(id: &Identity) -> Arc<ServerConfig> {
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(id.key.clone()));
    Arc::new(
        ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![id.cert.clone()], key)
            .unwrap(),
    )
}

fn client_config(trusted: &Identity) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(trusted.cert.clone()).unwrap();
    Arc::new(
        ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

fn echo_router() -> Router {
    let mut router = Router::new();
    router
        .pull("/home/echo", |_: Ctx, s: String| async move {
            Ok::<_, Status>(s)
        })
        .push("/msg/note", |ctx: Ctx, s: String| async move {
            let _ = ctx.session().push("/msg/back", &format!("back:{s}")).await;
        });
    router
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulls_and_pushes_round_trip_over_tls() {
    let id = identity();
    let server = Peer::new(PeerConfig::default(), echo_router());
    let addr = server
        .listen_tls("127.0.0.1:0", server_config(&id))
        .await
        .unwrap();

    let (back_tx, mut back_rx) = mpsc::unbounded_channel();
    let mut client_router = Router::new();
    client_router.push("/msg/back", move |_: Ctx, s: String| {
        let _ = back_tx.send(s);
        async {}
    });
    let client = Peer::new(PeerConfig::default(), client_router);
    let session = client
        .dial_tls(addr, "localhost", client_config(&id))
        .await
        .unwrap();

    let text = "over tls ".repeat(2000);
    let got: String = session.pull("/home/echo", &text).await.unwrap();
    assert_eq!(got, text);
    let got: String = session
        .pull("/home/echo", &text)
        .gzip(teleport::GzipLevel::L6)
        .await
        .unwrap();
    assert_eq!(got, text);
    session.push("/msg/note", &"hi").await.unwrap();
    let back = tokio::time::timeout(Duration::from_secs(10), back_rx.recv())
        .await
        .unwrap();
    assert_eq!(back.as_deref(), Some("back:hi"));
    assert_eq!(server.session_count(), 1);

    // The name may also be the IP address the certificate names.
    let by_ip = client
        .dial_tls(addr, "127.0.0.1", client_config(&id))
        .await
        .unwrap();
    let got: String = by_ip.pull("/home/echo", &"by ip").await.unwrap();
    assert_eq!(got, "by ip");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_tcp_client_on_a_tls_listener_is_refused() {
    let id = identity();
    let server = Peer::new(PeerConfig::default(), echo_router());
    let addr = server
        .listen_tls("127.0.0.1:0", server_config(&id))
        .await
        .unwrap();

    let plain = Peer::new(PeerConfig::default(), Router::new());
    let session = plain.dial(addr).await.unwrap();
    let err = session
        .pull::<_, String>("/home/echo", &"in the clear")
        .timeout(Duration::from_secs(20))
        .await
        .unwrap_err();
    assert!(
        err.is_connection_closed(),
        "a plain client is cut off, got {err}"
    );
    // The TLS listener answered with a TLS alert: the error says so,
    // instead of reading its bytes as an absurd frame length.
    let text = err.to_string();
    assert!(
        text.contains("not a teleport peer") && text.contains("TLS"),
        "the error names the protocol: {text}"
    );
    session.closed().await;
    assert_eq!(
        server.session_count(),
        0,
        "no session for a failed handshake"
    );

    // The listener is unharmed: a TLS client still gets through.
    let tls = Peer::new(PeerConfig::default(), Router::new());
    let session = tls
        .dial_tls(addr, "localhost", client_config(&id))
        .await
        .unwrap();
    let got: String = session.pull("/home/echo", &"still fine").await.unwrap();
    assert_eq!(got, "still fine");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_dialer_refuses_untrusted_misnamed_or_plain_servers() {
    let id = identity();
    let server = Peer::new(PeerConfig::default(), echo_router());
    let addr = server
        .listen_tls("127.0.0.1:0", server_config(&id))
        .await
        .unwrap();
    let client = Peer::new(PeerConfig::default(), Router::new());

    let stranger = identity();
    let err = client
        .dial_tls(addr, "localhost", client_config(&stranger))
        .await
        .unwrap_err();
    assert!(
        matches!(err, PeerError::Dial { .. }),
        "untrusted certificate: {err}"
    );

    let err = client
        .dial_tls(addr, "example.com", client_config(&id))
        .await
        .unwrap_err();
    assert!(
        matches!(err, PeerError::Dial { .. }),
        "name mismatch: {err}"
    );

    let err = client
        .dial_tls(addr, "not a name!", client_config(&id))
        .await
        .unwrap_err();
    assert!(matches!(err, PeerError::Dial { .. }), "invalid name: {err}");

    let plain_server = Peer::new(PeerConfig::default(), echo_router());
    let plain_addr = plain_server.listen("127.0.0.1:0").await.unwrap();
    let quick = Peer::new(
        PeerConfig::default().dial_timeout(Duration::from_secs(20)),
        Router::new(),
    );
    let err = quick
        .dial_tls(plain_addr, "localhost", client_config(&id))
        .await
        .unwrap_err();
    assert!(
        matches!(err, PeerError::Dial { .. }),
        "a server without TLS: {err}"
    );
    assert_eq!(client.session_count() + quick.session_count(), 0);
}

// Paused time: the handler's 150 ms pass without taking real time.
#[tokio::test(start_paused = true)]
async fn a_graceful_shutdown_over_tls_delivers_the_running_reply() {
    let id = identity();
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let mut router = Router::new();
    router.pull("/work/slow", move |_: Ctx, ms: u64| {
        let _ = started_tx.send(());
        async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok::<_, Status>(ms)
        }
    });
    let server = Peer::new(PeerConfig::default(), router);
    let addr = server
        .listen_tls("127.0.0.1:0", server_config(&id))
        .await
        .unwrap();
    let client = Peer::new(PeerConfig::default(), Router::new());
    let session = client
        .dial_tls(addr, "localhost", client_config(&id))
        .await
        .unwrap();
    let call = {
        let session = session.clone();
        tokio::spawn(async move { session.pull::<_, u64>("/work/slow", &150u64).await })
    };
    tokio::time::timeout(Duration::from_secs(10), started.recv())
        .await
        .expect("the handler starts")
        .unwrap();
    let summary = server.shutdown(Duration::from_secs(10)).await;
    assert_eq!((summary.sessions, summary.forced), (1, 0));
    assert_eq!(call.await.unwrap().unwrap(), 150);
    session.closed().await;
    assert_eq!(
        session.close_reason(),
        Some("the remote peer closed the connection")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_run_on_tls_sessions_on_both_sides() {
    use teleport::plugin::auth::{AuthClient, AuthServer, Authenticated};

    let id = identity();
    let mut router = Router::new();
    router.pull("/home/whoami", |ctx: Ctx, (): ()| async move {
        let who = ctx.session().extensions().get::<Authenticated>();
        Ok::<_, Status>(who.map(|a| a.0).unwrap_or_default())
    });
    let auth = AuthServer::new(|_: teleport::Session, token: String| async move {
        if token == "s3cret" {
            Ok("alice".to_owned())
        } else {
            Err(Status::unauthorized())
        }
    });
    let server = Peer::new(PeerConfig::default().plugin(auth), router);
    let addr = server
        .listen_tls("127.0.0.1:0", server_config(&id))
        .await
        .unwrap();

    let good = Peer::new(
        PeerConfig::default().plugin(AuthClient::new("s3cret")),
        Router::new(),
    );
    let session = good
        .dial_tls(addr, "localhost", client_config(&id))
        .await
        .unwrap();
    let who: String = session.pull("/home/whoami", &()).await.unwrap();
    assert_eq!(who, "alice", "the accept hooks ran on the TLS session");

    let bad = Peer::new(
        PeerConfig::default().plugin(AuthClient::new("wrong")),
        Router::new(),
    );
    let err = bad
        .dial_tls(addr, "localhost", client_config(&id))
        .await
        .unwrap_err();
    let PeerError::Refused(refused) = &err else {
        panic!("expected the dial hooks to refuse, got {err}");
    };
    assert_eq!(refused.status.code(), 401);
    assert_eq!(bad.session_count(), 0);
}

/// The TLS futures can be spawned; checked at compile time.
#[test]
fn tls_futures_are_send() {
    fn send<T: Send>(_: &T) {}
    fn futures(peer: Peer, server: Arc<ServerConfig>, client: Arc<ClientConfig>) {
        send(&peer.listen_tls("127.0.0.1:0", server));
        send(&peer.dial_tls("127.0.0.1:1", "localhost", client));
    }
    let _ = futures;
}
