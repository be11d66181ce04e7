//! `tp bench`: pull one URI from many tasks in a closed loop (or at a fixed
//! rate) and report throughput, statuses and a latency histogram.
//!
//! The body is encoded once; each call clones its `Bytes` and goes through
//! `Session::pull_raw`, so the client does no encoding or decoding per call
//! and is not what limits the measurement. Each task keeps its own
//! histogram and counters, merged at the end: the only shared state per call
//! is one relaxed atomic add for the progress bar.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use clap::Args;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use teleport::{CallOptions, Peer, Router, Session};
use tokio::time::Instant;

use crate::body::{self, BodyOpts};
use crate::connect::DialOpts;
use crate::error::CliError;

/// `tp bench ADDR URI [BODY]`.
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// Address of the peer: host:port.
    addr: String,
    /// URI to pull.
    uri: String,
    /// The body of every pull: text in the --codec, @FILE, or - for stdin.
    body: Option<String>,
    /// Calls in flight at once, over all connections.
    #[arg(short = 'c', long, value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    concurrency: u32,
    /// How long to run (e.g. 10s, 1m).
    #[arg(short = 'd', long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Stop after this many calls instead of after --duration.
    #[arg(short = 'n', long, value_name = "N")]
    calls: Option<u64>,
    /// Connections (sessions) to spread the calls over.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    conns: u32,
    /// Start at most this many calls per second in total (default: as fast as replies come back).
    #[arg(long, value_name = "PER_SEC")]
    rate: Option<f64>,
    /// Print the summary as one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Worker threads of the runtime (default: one per core).
    #[arg(long, value_name = "N")]
    pub(crate) threads: Option<usize>,
    #[command(flatten)]
    body_opts: BodyOpts,
    #[command(flatten)]
    dial: DialOpts,
}

/// What one task saw.
struct Tally {
    /// Latency of every reply, in nanoseconds.
    latency: Histogram<u64>,
    /// Replies by status (code, text as sent).
    statuses: BTreeMap<(i32, String), u64>,
    /// Calls that got no reply, by kind.
    failures: BTreeMap<&'static str, u64>,
    sent_bytes: u64,
    received_bytes: u64,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            // 1 ns to 1 hour at 3 significant digits.
            latency: Histogram::new_with_bounds(1, 3_600_000_000_000, 3)
                .expect("static histogram bounds are valid"),
            statuses: BTreeMap::new(),
            failures: BTreeMap::new(),
            sent_bytes: 0,
            received_bytes: 0,
        }
    }

    fn merge(&mut self, other: Tally) {
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = self.latency.add(&other.latency);
        for (k, v) in other.statuses {
            *self.statuses.entry(k).or_default() += v;
        }
        for (k, v) in other.failures {
            *self.failures.entry(k).or_default() += v;
        }
        self.sent_bytes += other.sent_bytes;
        self.received_bytes += other.received_bytes;
    }
}

/// Shared by every task: the plan and the progress counters.
struct Plan {
    uri: String,
    gzip: i32,
    body: Bytes,
    options: CallOptions,
    start: Instant,
    /// Tickets handed out (one per call started).
    issued: AtomicU64,
    /// Calls finished, for the progress bar.
    done: AtomicU64,
    errors: AtomicU64,
    limit: Option<u64>,
    rate: Option<f64>,
    stop: AtomicBool,
}

/// One task's closed loop.
async fn worker(plan: Arc<Plan>, session: Session) -> Tally {
    let mut tally = Tally::new();
    loop {
        if plan.stop.load(Ordering::Relaxed) {
            break;
        }
        let ticket = plan.issued.fetch_add(1, Ordering::Relaxed);
        if plan.limit.is_some_and(|n| ticket >= n) {
            break;
        }
        if let Some(rate) = plan.rate {
            let at = plan.start + Duration::from_secs_f64(ticket as f64 / rate);
            tokio::time::sleep_until(at).await;
            if plan.stop.load(Ordering::Relaxed) {
                break;
            }
        }
        let sent = Instant::now();
        let result = session
            .pull_raw(&plan.uri, plan.gzip, plan.body.clone(), plan.options)
            .await;
        let took = sent.elapsed();
        tally.sent_bytes += plan.body.len() as u64;
        match result {
            Ok(reply) => {
                let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX).max(1);
                tally.latency.saturating_record(nanos);
                tally.received_bytes += reply.body.len() as u64;
                let code = match reply.header.status_code {
                    0 => 200,
                    c => c,
                };
                if code != 200 {
                    plan.errors.fetch_add(1, Ordering::Relaxed);
                }
                // Look up before inserting: no String allocation per call.
                match tally
                    .statuses
                    .iter_mut()
                    .find(|((c, t), _)| *c == code && reply.header.status == *t)
                {
                    Some((_, n)) => *n += 1,
                    None => {
                        tally
                            .statuses
                            .insert((code, reply.header.status.to_string()), 1);
                    }
                }
            }
            Err(e) => {
                plan.errors.fetch_add(1, Ordering::Relaxed);
                let kind = if e.is_timeout() {
                    "timeout"
                } else if e.is_not_sent() {
                    "not sent (connection closed)"
                } else if e.is_connection_closed() {
                    "connection closed"
                } else {
                    "other"
                };
                *tally.failures.entry(kind).or_default() += 1;
                if e.is_connection_closed() {
                    tracing::warn!(error = %e, "a benchmark connection ended; its tasks stop");
                    plan.done.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            }
        }
        plan.done.fetch_add(1, Ordering::Relaxed);
    }
    tally
}

fn status_text(code: i32, text: &str) -> String {
    if text.is_empty() {
        teleport::status::standard_text(code)
            .unwrap_or("")
            .to_owned()
    } else {
        text.to_owned()
    }
}

/// Runs the benchmark and prints the summary.
pub(crate) async fn run(args: BenchArgs) -> Result<(), CliError> {
    if let Some(rate) = args.rate
        && !(rate.is_finite() && rate > 0.0)
    {
        return Err(CliError::Input(format!(
            "--rate {rate}: give a number of calls per second above 0"
        )));
    }
    let input = body::read_arg(args.body.as_deref())?;
    let section = body::encode(args.body_opts.codec, input.as_deref(), args.body_opts.gzip)?;
    let peer = Peer::new(
        args.dial
            .config()
            .max_pulls_in_flight(args.concurrency as usize),
        Router::new(),
    );
    let mut sessions = Vec::with_capacity(args.conns as usize);
    for _ in 0..args.conns {
        sessions.push(args.dial.connect(&peer, &args.addr).await?);
    }

    let plan = Arc::new(Plan {
        uri: args.uri.clone(),
        gzip: args.body_opts.gzip,
        body: section,
        options: CallOptions::default()
            .header_codec(args.dial.header_codec.into())
            .timeout(args.dial.timeout),
        start: Instant::now(),
        issued: AtomicU64::new(0),
        done: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        limit: args.calls,
        rate: args.rate,
        stop: AtomicBool::new(false),
    });
    let tasks: Vec<_> = (0..args.concurrency as usize)
        .map(|i| tokio::spawn(worker(plan.clone(), sessions[i % sessions.len()].clone())))
        .collect();

    let bar = progress_bar(args.calls, args.duration);
    let deadline = plan.start + args.duration;
    let mut last = (plan.start, 0u64);
    let all_done = futures_all(tasks);
    tokio::pin!(all_done);
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let timed = args.calls.is_none();
    let results = loop {
        tokio::select! {
            results = &mut all_done => break results,
            () = tokio::time::sleep_until(deadline), if timed && !plan.stop.load(Ordering::Relaxed) => {
                plan.stop.store(true, Ordering::Relaxed);
            }
            _ = tick.tick() => {
                let now = Instant::now();
                let done = plan.done.load(Ordering::Relaxed);
                let rate = (done - last.1) as f64 / now.duration_since(last.0).as_secs_f64().max(1e-9);
                last = (now, done);
                match args.calls {
                    Some(_) => bar.set_position(done),
                    None => bar.set_position(now.duration_since(plan.start).as_millis() as u64),
                }
                bar.set_message(format!(
                    "{done} calls, {rate:.0}/s, {} errors",
                    plan.errors.load(Ordering::Relaxed)
                ));
            }
        }
    };
    let elapsed = plan.start.elapsed();
    bar.finish_and_clear();
    for session in &sessions {
        session.close().await;
    }

    let mut total = Tally::new();
    for result in results {
        match result {
            Ok(tally) => total.merge(tally),
            Err(e) => tracing::error!("a benchmark task failed: {e}"),
        }
    }
    let summary = Summary {
        args: &args,
        elapsed,
        tally: &total,
    };
    let text = if args.json {
        let mut s = summary.json().to_string();
        s.push('\n');
        s
    } else {
        summary.text()
    };
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|source| CliError::Io {
            what: "cannot write the summary to stdout".into(),
            source,
        })
}

/// Waits for every task, keeping their order.
async fn futures_all<T>(
    tasks: Vec<tokio::task::JoinHandle<T>>,
) -> Vec<Result<T, tokio::task::JoinError>> {
    let mut out = Vec::with_capacity(tasks.len());
    for task in tasks {
        out.push(task.await);
    }
    out
}

fn progress_bar(calls: Option<u64>, duration: Duration) -> ProgressBar {
    let (len, template) = match calls {
        Some(n) => (n, "{spinner} {elapsed_precise} [{bar:30}] {percent}% {msg}"),
        None => (
            duration.as_millis() as u64,
            "{spinner} {elapsed_precise} [{bar:30}] {msg}",
        ),
    };
    // Drawn on stderr, and only when it is a terminal.
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

struct Summary<'a> {
    args: &'a BenchArgs,
    elapsed: Duration,
    tally: &'a Tally,
}

impl Summary<'_> {
    fn calls(&self) -> u64 {
        self.tally.statuses.values().sum::<u64>() + self.tally.failures.values().sum::<u64>()
    }

    fn ok(&self) -> u64 {
        self.tally
            .statuses
            .iter()
            .filter(|((code, _), _)| *code == 200)
            .map(|(_, n)| n)
            .sum()
    }

    fn per_sec(&self, n: u64) -> f64 {
        n as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn quantile_us(&self, q: f64) -> f64 {
        self.tally.latency.value_at_quantile(q) as f64 / 1000.0
    }

    fn json(&self) -> serde_json::Value {
        let h = &self.tally.latency;
        let statuses: serde_json::Map<_, _> = self
            .tally
            .statuses
            .iter()
            .map(|((code, text), n)| (format!("{code} {}", status_text(*code, text)), json!(n)))
            .collect();
        let failures: serde_json::Map<_, _> = self
            .tally
            .failures
            .iter()
            .map(|(k, n)| ((*k).to_owned(), json!(n)))
            .collect();
        let calls = self.calls();
        json!({
            "addr": self.args.addr,
            "uri": self.args.uri,
            "concurrency": self.args.concurrency,
            "conns": self.args.conns,
            "rate": self.args.rate,
            "elapsed_secs": self.elapsed.as_secs_f64(),
            "calls": calls,
            "ok": self.ok(),
            "errors": calls - self.ok(),
            "calls_per_sec": self.per_sec(calls),
            "statuses": statuses,
            "failures": failures,
            "sent_bytes": self.tally.sent_bytes,
            "received_bytes": self.tally.received_bytes,
            "latency_us": {
                "min": h.min() as f64 / 1000.0,
                "mean": h.mean() / 1000.0,
                "p50": self.quantile_us(0.5),
                "p90": self.quantile_us(0.9),
                "p99": self.quantile_us(0.99),
                "p99_9": self.quantile_us(0.999),
                "max": h.max() as f64 / 1000.0,
            },
        })
    }

    fn text(&self) -> String {
        let a = self.args;
        let t = self.tally;
        let calls = self.calls();
        let ok = self.ok();
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{} {} {}: {} in flight over {} connection{}, {:.2}s",
            console::style("tp bench").bold(),
            a.addr,
            a.uri,
            a.concurrency,
            a.conns,
            if a.conns == 1 { "" } else { "s" },
            self.elapsed.as_secs_f64()
        );
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "  calls       {calls:>12}   {:.1}/s",
            self.per_sec(calls)
        );
        let _ = writeln!(s, "  ok          {ok:>12}   {:.1}/s", self.per_sec(ok));
        let errors = calls - ok;
        let errors_text = format!("{errors:>12}");
        let errors_text = if errors > 0 {
            console::style(errors_text).red().to_string()
        } else {
            errors_text
        };
        let _ = writeln!(s, "  errors      {errors_text}");
        for ((code, text), n) in &t.statuses {
            let text = status_text(*code, text);
            let _ = writeln!(s, "    {code} {text:<24} {n:>10}");
        }
        for (kind, n) in &t.failures {
            let _ = writeln!(s, "    {kind:<28} {n:>10}");
        }
        let mb = |bytes: u64| self.per_sec(bytes) / 1e6;
        let _ = writeln!(
            s,
            "  throughput  {:.2} MB/s sent, {:.2} MB/s received (body sections)",
            mb(t.sent_bytes),
            mb(t.received_bytes)
        );
        let h = &t.latency;
        if h.is_empty() {
            let _ = writeln!(s, "\n  no replies, so no latency figures");
            return s;
        }
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "  latency     min {}  mean {}  max {}",
            fmt_ns(h.min() as f64),
            fmt_ns(h.mean()),
            fmt_ns(h.max() as f64)
        );
        for (label, q) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p99.9", 0.999)] {
            let _ = writeln!(
                s,
                "    {label:<6} {:>10}",
                fmt_ns(h.value_at_quantile(q) as f64)
            );
        }
        let _ = writeln!(s, "    {:<6} {:>10}", "max", fmt_ns(h.max() as f64));
        let _ = writeln!(s);
        let _ = writeln!(s, "  histogram (replies per latency band)");
        s.push_str(&bars(h));
        s
    }
}

/// A text histogram: one line per doubling of latency, from the fastest
/// reply's band to the slowest's.
fn bars(h: &Histogram<u64>) -> String {
    let mut s = String::new();
    let first = h.min().max(1).next_power_of_two() / 2;
    let bands: Vec<(u64, u64)> = h
        .iter_log(first.max(1), 2.0)
        .map(|v| (v.value_iterated_to(), v.count_since_last_iteration()))
        .collect();
    let most = bands.iter().map(|b| b.1).max().unwrap_or(1).max(1);
    let total = h.len().max(1);
    let width = 40.0;
    for (upper, count) in bands {
        let filled = (count as f64 / most as f64 * width).round() as usize;
        let _ = writeln!(
            s,
            "    ≤ {:>9} {:<40} {:>5.1}%",
            fmt_ns(upper as f64),
            "█".repeat(filled),
            count as f64 * 100.0 / total as f64
        );
    }
    s
}

/// A latency in the unit that reads best.
fn fmt_ns(ns: f64) -> String {
    if ns < 1_000.0 {
        format!("{ns:.0}ns")
    } else if ns < 1_000_000.0 {
        format!("{:.1}µs", ns / 1e3)
    } else if ns < 1_000_000_000.0 {
        format!("{:.2}ms", ns / 1e6)
    } else {
        format!("{:.2}s", ns / 1e9)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_read_in_their_unit() {
        assert_eq!(fmt_ns(512.0), "512ns");
        assert_eq!(fmt_ns(176_400.0), "176.4µs");
        assert_eq!(fmt_ns(3_210_000.0), "3.21ms");
        assert_eq!(fmt_ns(2_500_000_000.0), "2.50s");
    }

    #[test]
    fn the_histogram_has_a_band_per_doubling_and_counts_every_reply() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000_000, 3).unwrap();
        for v in [1_000, 1_500, 3_000, 3_000, 100_000] {
            h.record(v).unwrap();
        }
        let text = bars(&h);
        let total: f64 = text
            .lines()
            .map(|l| {
                l.trim_end_matches('%')
                    .rsplit(' ')
                    .next()
                    .unwrap()
                    .parse::<f64>()
                    .unwrap()
            })
            .sum();
        assert!((total - 100.0).abs() < 0.5, "{text}");
        assert!(text.lines().count() >= 7, "{text}");
    }
}
