//! The metrics plugin over real loopback TCP, read back through a
//! `metrics-util` debugging recorder: calls, errors and latency per URI and
//! kind, on the serving and the calling side.

use std::collections::HashMap;
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use teleport::plugin::metrics::{CALLS, DURATION, ERRORS, Metrics, UNMATCHED};
use teleport::{Ctx, Peer, PeerConfig, Router, Status};
use tokio::sync::mpsc;

/// `name{label=value,...}` with the labels sorted, as a lookup key.
fn key(name: &str, labels: &[(&str, &str)]) -> String {
    let mut labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    labels.sort();
    format!("{name}{{{}}}", labels.join(","))
}

// One test per binary: the recorder is process-wide.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_errors_and_latency_are_counted_per_uri_and_kind() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().unwrap();

    let (pushed_tx, mut pushed_rx) = mpsc::unbounded_channel::<()>();
    let mut router = Router::new();
    router
        .pull("/home/echo", |_: Ctx, s: String| async move {
            Ok::<_, Status>(s)
        })
        .pull("/home/fail", |_: Ctx, (): ()| async move {
            Err::<(), _>(Status::new(599, "xerror"))
        })
        .push("/msg/note", move |_: Ctx, _: String| {
            let _ = pushed_tx.send(());
            async {}
        });
    let server = Peer::new(PeerConfig::default().plugin(Metrics::new()), router);
    let addr = server.listen("127.0.0.1:0").await.unwrap();
    let client = Peer::new(PeerConfig::default().plugin(Metrics::new()), Router::new());
    let session = client.dial(addr).await.unwrap();

    for _ in 0..3 {
        let _: String = session.pull("/home/echo", &"hi").await.unwrap();
    }
    assert!(session.pull::<_, ()>("/home/fail", &()).await.is_err());
    assert!(session.pull::<_, ()>("/no/such/route", &()).await.is_err());
    for _ in 0..2 {
        session.push("/msg/note", &"n").await.unwrap();
    }
    for _ in 0..2 {
        tokio::time::timeout(Duration::from_secs(5), pushed_rx.recv())
            .await
            .unwrap()
            .unwrap();
    }

    let mut counters = HashMap::new();
    let mut histograms = HashMap::new();
    for (ck, _, _, value) in snapshotter.snapshot().into_vec() {
        let (_, k) = ck.into_parts();
        let labels: Vec<(String, String)> = k
            .labels()
            .map(|l| (l.key().to_string(), l.value().to_string()))
            .collect();
        let labels: Vec<(&str, &str)> = labels
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        let name = key(k.name(), &labels);
        match value {
            DebugValue::Counter(n) => {
                counters.insert(name, n);
            }
            DebugValue::Histogram(v) => {
                histograms.insert(name, v.len());
            }
            DebugValue::Gauge(_) => {}
        }
    }
    let count = |name: &str, labels: &[(&str, &str)]| {
        counters.get(&key(name, labels)).copied().unwrap_or(0)
    };

    // Served side.
    assert_eq!(
        count(CALLS, &[("uri", "/home/echo"), ("kind", "pull-handle")]),
        3,
        "{counters:#?}"
    );
    assert_eq!(
        count(CALLS, &[("uri", "/home/fail"), ("kind", "pull-handle")]),
        1
    );
    assert_eq!(
        count(
            ERRORS,
            &[
                ("uri", "/home/fail"),
                ("kind", "pull-handle"),
                ("status", "599")
            ]
        ),
        1
    );
    assert_eq!(
        count(CALLS, &[("uri", UNMATCHED), ("kind", "pull-handle")]),
        1
    );
    assert_eq!(
        count(
            ERRORS,
            &[
                ("uri", UNMATCHED),
                ("kind", "pull-handle"),
                ("status", "404")
            ]
        ),
        1
    );
    assert_eq!(
        count(CALLS, &[("uri", "/msg/note"), ("kind", "push-handle")]),
        2
    );
    assert_eq!(
        count(
            ERRORS,
            &[
                ("uri", "/home/echo"),
                ("kind", "pull-handle"),
                ("status", "200")
            ]
        ),
        0,
        "success is not an error"
    );
    // Calling side.
    assert_eq!(
        count(CALLS, &[("uri", "/home/echo"), ("kind", "pull-launch")]),
        3
    );
    assert_eq!(
        count(
            ERRORS,
            &[
                ("uri", "/home/fail"),
                ("kind", "pull-launch"),
                ("status", "599")
            ]
        ),
        1
    );
    assert_eq!(
        count(
            ERRORS,
            &[
                ("uri", "/no/such/route"),
                ("kind", "pull-launch"),
                ("status", "404")
            ]
        ),
        1
    );
    assert_eq!(
        count(CALLS, &[("uri", "/msg/note"), ("kind", "push-launch")]),
        2
    );
    // Latency, one sample per finished pull on each side.
    let samples =
        |labels: &[(&str, &str)]| histograms.get(&key(DURATION, labels)).copied().unwrap_or(0);
    assert_eq!(
        samples(&[("uri", "/home/echo"), ("kind", "pull-handle")]),
        3,
        "{histograms:#?}"
    );
    assert_eq!(
        samples(&[("uri", "/home/echo"), ("kind", "pull-launch")]),
        3
    );
}
