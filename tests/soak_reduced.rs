//! A reduced soak: 20,000 pulls and pushes over 20 sessions, both
//! directions at once. Nothing fails, times out or gets lost. The full-size
//! run is `cargo run --release --example soak`.

#[path = "support/soak.rs"]
mod soak;

use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reduced_soak_loses_nothing_in_either_direction() {
    let report = soak::run(soak::SoakConfig {
        sessions: 20,
        calls: 20_000,
        in_flight: 8,
        push_every: 4,
        payload: 64,
        timeout: Duration::from_secs(30),
    })
    .await;
    assert_eq!(report.pulls_sent + report.pushes_sent, 20_000, "{report}");
    assert_eq!(report.pulls_completed, report.pulls_sent, "{report}");
    assert_eq!(report.pushes_received, report.pushes_sent, "{report}");
    assert!(report.clean(), "{report}");
}
