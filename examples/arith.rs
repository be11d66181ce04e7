//! Arithmetic as a typed teleport service: one trait, served by one peer and
//! called by another, with errors that travel as statuses and a per-call
//! timeout.
//!
//! It shows `#[teleport::service]` end to end: the trait below is all the
//! protocol there is. `ArithServer` registers an implementation on a router,
//! `ArithClient` calls it over a session, a `Result` error arrives as a
//! status with its code and text, and `with_options` gives a client copy with
//! a timeout. Server and client run in this one process; it prints each call
//! and exits 0 when every outcome is the expected one.
//!
//! Run with: `cargo run --example arith`

// An example talks to its user on stdout; the library never does.
#![allow(clippy::print_stdout)]

use std::process::ExitCode;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use teleport::{CallOptions, Ctx, Peer, PeerConfig, Router, Status};

/// Why an arithmetic call failed. It reaches the caller as a status.
#[derive(Debug)]
enum MathError {
    DivideByZero,
    Overflow,
}

impl From<MathError> for Status {
    fn from(e: MathError) -> Status {
        match e {
            MathError::DivideByZero => Status::new(599, "division by zero"),
            MathError::Overflow => Status::new(598, "the result overflows i64"),
        }
    }
}

/// Summary statistics of a list of numbers.
#[derive(Debug, Serialize, Deserialize)]
struct Stats {
    count: usize,
    mean: f64,
    min: f64,
    max: f64,
}

/// Arithmetic over the wire. Served at `/arith/add`, `/arith/div`, ...
#[teleport::service]
trait Arith {
    /// Adds two numbers.
    async fn add(&self, a: i64, b: i64) -> Result<i64, MathError>;

    /// Divides `a` by `b`.
    async fn div(&self, a: i64, b: i64) -> Result<i64, MathError>;

    /// Summarizes a list of numbers; an empty list is a bad request.
    async fn stats(&self, values: Vec<f64>) -> Result<Stats, Status>;

    /// Squares `n` after thinking about it for `ms` milliseconds.
    async fn slow_square(&self, ctx: Ctx, n: i64, ms: u64) -> i64;
}

/// The implementation. It holds no state; one instance serves every session.
struct Calculator;

impl Arith for Calculator {
    async fn add(&self, a: i64, b: i64) -> Result<i64, MathError> {
        a.checked_add(b).ok_or(MathError::Overflow)
    }

    async fn div(&self, a: i64, b: i64) -> Result<i64, MathError> {
        if b == 0 {
            return Err(MathError::DivideByZero);
        }
        a.checked_div(b).ok_or(MathError::Overflow)
    }

    async fn stats(&self, values: Vec<f64>) -> Result<Stats, Status> {
        if values.is_empty() {
            return Err(Status::bad_request("stats of an empty list"));
        }
        let count = values.len();
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let mean = values.iter().sum::<f64>() / count as f64;
        Ok(Stats {
            count,
            mean,
            min,
            max,
        })
    }

    async fn slow_square(&self, ctx: Ctx, n: i64, ms: u64) -> i64 {
        tracing::debug!(remote = %ctx.remote_addr(), n, ms, "thinking");
        tokio::time::sleep(Duration::from_millis(ms)).await;
        n.saturating_mul(n)
    }
}

/// Prints one outcome and says whether it is the expected one.
fn show<T: std::fmt::Debug>(call: &str, got: &Result<T, teleport::Error>, ok: bool) -> bool {
    match got {
        Ok(v) => println!("{call} = {v:?}"),
        Err(e) => println!("{call} failed: {e}"),
    }
    if !ok {
        println!("  ^ unexpected");
    }
    ok
}

fn status_is(got: &teleport::Error, code: i32) -> bool {
    got.status().is_some_and(|s| s.code() == code)
}

#[tokio::main]
async fn main() -> Result<ExitCode, Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();

    // The serving peer: one call registers every method of the service.
    let mut router = Router::new();
    ArithServer::new(Calculator).register(&mut router);
    let server = Peer::new(PeerConfig::default(), router);
    let addr = server.listen("127.0.0.1:0").await?;

    // The calling peer: a typed client over a session.
    let peer = Peer::new(PeerConfig::default(), Router::new());
    let arith = ArithClient::new(peer.dial(addr).await?);

    let mut all_ok = true;
    let sum = arith.add(40, 2).await;
    all_ok &= show("add(40, 2)", &sum, matches!(sum, Ok(42)));
    let overflow = arith.add(i64::MAX, 1).await;
    all_ok &= show(
        "add(i64::MAX, 1)",
        &overflow,
        overflow.as_ref().is_err_and(|e| status_is(e, 598)),
    );
    let quotient = arith.div(84, 2).await;
    all_ok &= show("div(84, 2)", &quotient, matches!(quotient, Ok(42)));
    let by_zero = arith.div(1, 0).await;
    all_ok &= show(
        "div(1, 0)",
        &by_zero,
        by_zero.as_ref().is_err_and(|e| status_is(e, 599)),
    );
    let stats = arith.stats(vec![3.0, 1.0, 4.0, 1.0, 5.0]).await;
    all_ok &= show(
        "stats([3, 1, 4, 1, 5])",
        &stats,
        stats
            .as_ref()
            .is_ok_and(|s| s.count == 5 && s.min == 1.0 && s.max == 5.0),
    );
    let empty = arith.stats(Vec::new()).await;
    all_ok &= show(
        "stats([])",
        &empty,
        empty.as_ref().is_err_and(|e| status_is(e, 400)),
    );

    // Per-call options: a copy of the client that waits at most 100 ms.
    let hasty = arith.with_options(CallOptions::default().timeout(Duration::from_millis(100)));
    let late = hasty.slow_square(7, 2_000).await;
    all_ok &= show(
        "slow_square(7, 2000 ms) with a 100 ms timeout",
        &late,
        late.as_ref().is_err_and(teleport::Error::is_timeout),
    );
    let in_time = hasty.slow_square(7, 10).await;
    all_ok &= show(
        "slow_square(7, 10 ms) with a 100 ms timeout",
        &in_time,
        matches!(in_time, Ok(49)),
    );

    peer.close(Duration::from_secs(1)).await;
    server.close(Duration::from_secs(1)).await;
    Ok(if all_ok {
        println!("all results as expected");
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
