//! A soak run: one million pulls and pushes (by default) over 100 sessions,
//! in both directions at once (the server pulls and pushes its clients on
//! the same connections), then a report of everything sent, completed,
//! failed, timed out and lost, and the peak memory. Exits non-zero if
//! anything failed or got lost.
//!
//! Run with: `cargo run --release --example soak -- [--sessions N] [--calls N] [--in-flight N] [--payload BYTES]`
//! (10,000 sessions need `ulimit -n` above 20,000)

// An example talks to its user on stdout; the library never does.
#![allow(clippy::print_stdout)]

#[path = "../tests/support/soak.rs"]
mod soak;

use std::process::ExitCode;

fn arg<T: std::str::FromStr>(name: &str, default: T) -> T {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let d = soak::SoakConfig::default();
    let cfg = soak::SoakConfig {
        sessions: arg("--sessions", d.sessions),
        calls: arg("--calls", d.calls),
        in_flight: arg("--in-flight", d.in_flight),
        payload: arg("--payload", d.payload),
        ..d
    };
    println!("soak: {cfg:?}");
    let report = soak::run(cfg).await;
    println!("{report}");
    if report.clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
