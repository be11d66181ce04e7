//! Call logs: one event per call with its kind, URI and status; bodies only
//! when asked for; a warning above the slow-call threshold.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use teleport::{Ctx, Peer, PeerConfig, Router, Status};
use tracing_subscriber::fmt::MakeWriter;

/// Collects everything the subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

/// Runs one pull and one push against a server with `config`, on a
/// current-thread runtime so every task logs through this subscriber.
fn logs_of(config: PeerConfig) -> String {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(captured.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // The push handler says when it ran; its call is logged as it returns.
        let (handled_tx, mut handled) = tokio::sync::mpsc::unbounded_channel();
        let mut router = Router::new();
        router
            .pull("/home/echo", |_: Ctx, s: String| async move {
                Ok::<_, Status>(s)
            })
            .push("/msg/note", move |_: Ctx, _s: String| {
                let _ = handled_tx.send(());
                async move {}
            });
        let server = Peer::new(config, router);
        let addr = server.listen("127.0.0.1:0").await.unwrap();
        let client = Peer::new(PeerConfig::default(), Router::new());
        let s = client.dial(addr).await.unwrap();
        let got: String = s.pull("/home/echo", &"secret-body").await.unwrap();
        assert_eq!(got, "secret-body");
        s.push("/msg/note", &"note-body").await.unwrap();
        tokio::time::timeout(Duration::from_secs(10), handled.recv())
            .await
            .expect("the push is handled")
            .unwrap();
        s.close().await;
        server.close(Duration::from_secs(1)).await;
    });
    let bytes = captured.0.lock().unwrap().clone();
    String::from_utf8(bytes).unwrap()
}

#[test]
fn every_call_is_logged_with_its_kind_uri_and_status_but_not_its_body() {
    let logs = logs_of(PeerConfig::default());
    for kind in ["pull-launch", "pull-handle", "push-launch", "push-handle"] {
        assert!(logs.contains(kind), "no {kind} event in:\n{logs}");
    }
    assert!(
        logs.contains("uri=/home/echo") && logs.contains("status=200"),
        "{logs}"
    );
    assert!(
        !logs.contains("secret-body"),
        "bodies are not logged by default"
    );
    assert!(!logs.contains("slow call"));
}

#[test]
fn bodies_are_logged_when_asked_for_and_slow_calls_are_warnings() {
    let logs = logs_of(
        PeerConfig::default()
            .log_bodies(true)
            .slow_call(Some(Duration::ZERO)),
    );
    assert!(
        logs.contains("incoming body") && logs.contains("secret-body"),
        "{logs}"
    );
    assert!(logs.contains("note-body"), "push bodies too: {logs}");
    assert!(logs.contains("reply body"), "{logs}");
    assert!(
        logs.contains("WARN") && logs.contains("slow call"),
        "{logs}"
    );
}
