//! Side-by-side echo benchmark: teleport against tarpc, tonic and a raw
//! tokio baseline, over loopback TCP in one tokio runtime with 2 workers.
//!
//! Run with: `cargo run --release --manifest-path teleport-bench/Cargo.toml -- [--quick]`
//!
//! Options (all optional):
//!
//! ```text
//! --quick               short cells, one round, fewer sessions: a smoke run
//! --duration SECS       measured time per system per round      (default 1.0)
//! --warmup SECS         unmeasured time before each measurement (default 0.3)
//! --rounds N            rounds per cell; systems rotate each round (default 3)
//! --payloads 16,1024    payload sizes in bytes                  (default 16,1024,65536)
//! --systems a,b         only these systems (names as in the table)
//! --shapes 1x1,4x64     only these connections×in-flight shapes (default 1x1,1x64,1x256,4x64)
//! --no-compare          skip the comparison table
//! --no-scale            skip the sessions 1 → 1000 figure
//! --no-idle             skip the idle-session memory figure
//! --idle-sessions N     idle sessions to open                   (default 10000)
//! --json PATH           also write the JSON lines to PATH
//! --calls N             instead of timed cells: run exactly N calls per
//!                       system, payload and shape, and print allocations
//!                       per call (for callgrind: run it with two N and
//!                       divide the difference in instructions)
//! --warmup-calls N      calls before the counted ones with --calls (default 2000)
//! ```
//!
//! Each figure is the median over the rounds. Within a cell the systems run
//! one after the other in an order that rotates each round, so drift on a
//! shared machine hits them all alike. The ratios to raw also give, in
//! brackets, the lowest and highest of the rounds' own ratios (each round
//! against the same round of raw), so one run shows how far its verdict
//! can be trusted.

mod alloc;
mod grpc;
mod idle;
mod load;
mod raw;
mod tarpc_echo;
mod tp;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use load::{Client, Measurement, Payload};
use teleport::{CallOptions, CodecId};

#[global_allocator]
static ALLOC: alloc::Counting = alloc::Counting;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum System {
    Raw,
    TeleportBincode,
    TeleportService,
    TeleportServiceFn,
    TeleportJson,
    TeleportJsonGzip,
    TeleportBytes,
    Tarpc,
    Tonic,
}

impl System {
    const ALL: [System; 9] = [
        System::Raw,
        System::TeleportBincode,
        System::TeleportService,
        System::TeleportServiceFn,
        System::TeleportJson,
        System::TeleportJsonGzip,
        System::TeleportBytes,
        System::Tarpc,
        System::Tonic,
    ];

    fn name(self) -> &'static str {
        match self {
            System::Raw => "raw",
            System::TeleportBincode => "teleport/bincode",
            System::TeleportService => "teleport/service",
            System::TeleportServiceFn => "teleport/service-fn",
            System::TeleportJson => "teleport/json",
            System::TeleportJsonGzip => "teleport/json+gzip1",
            System::TeleportBytes => "teleport/bytes",
            System::Tarpc => "tarpc",
            System::Tonic => "tonic",
        }
    }

    fn is_teleport(self) -> bool {
        matches!(
            self,
            System::TeleportBincode
                | System::TeleportService
                | System::TeleportServiceFn
                | System::TeleportJson
                | System::TeleportJsonGzip
                | System::TeleportBytes
        )
    }
}

struct Servers {
    raw: SocketAddr,
    _teleport_peer: teleport::Peer,
    teleport: SocketAddr,
    _teleport_fn_peer: teleport::Peer,
    teleport_fn: SocketAddr,
    teleport_client: teleport::Peer,
    tarpc: SocketAddr,
    tonic: SocketAddr,
}

impl Servers {
    async fn start() -> Servers {
        let (peer, teleport) = tp::serve(tp::router()).await.expect("teleport listen");
        let (fn_peer, teleport_fn) = tp::serve(tp::fn_router()).await.expect("teleport listen");
        Servers {
            raw: raw::serve().await.expect("raw listen"),
            _teleport_peer: peer,
            teleport,
            _teleport_fn_peer: fn_peer,
            teleport_fn,
            teleport_client: tp::client_peer(),
            tarpc: tarpc_echo::serve().await.expect("tarpc listen"),
            tonic: grpc::serve().await.expect("tonic listen"),
        }
    }

    async fn connect(&self, system: System) -> Client {
        let dial = |addr: SocketAddr| async move {
            self.teleport_client
                .dial(addr)
                .await
                .expect("teleport dial")
        };
        let teleport = |options: CallOptions| async move {
            Client::Teleport(dial(self.teleport).await, options)
        };
        match system {
            System::Raw => Client::Raw(raw::Client::connect(self.raw).await.expect("raw connect")),
            System::TeleportBincode => {
                teleport(CallOptions::default().codec(CodecId::BINCODE)).await
            }
            System::TeleportService => {
                Client::TeleportService(tp::BenchClient::new(dial(self.teleport).await))
            }
            System::TeleportServiceFn => {
                Client::TeleportService(tp::BenchClient::new(dial(self.teleport_fn).await))
            }
            System::TeleportJson => teleport(CallOptions::default().codec(CodecId::JSON)).await,
            System::TeleportBytes => Client::TeleportBytes(
                dial(self.teleport).await,
                CallOptions::default().codec(CodecId::STRING),
            ),
            System::TeleportJsonGzip => {
                teleport(
                    CallOptions::default()
                        .codec(CodecId::JSON)
                        .gzip(teleport::GzipLevel::L1),
                )
                .await
            }
            System::Tarpc => Client::Tarpc(
                tarpc_echo::connect(self.tarpc)
                    .await
                    .expect("tarpc connect"),
            ),
            System::Tonic => Client::Tonic(
                grpc::Client::connect(self.tonic)
                    .await
                    .expect("tonic connect"),
            ),
        }
    }
}

struct Args {
    duration: Duration,
    warmup: Duration,
    rounds: usize,
    payloads: Vec<usize>,
    systems: Option<Vec<String>>,
    shapes: Vec<(usize, usize)>,
    compare: bool,
    scale: bool,
    idle: bool,
    idle_sessions: usize,
    scale_sessions: Vec<usize>,
    json: Option<String>,
    calls: Option<u64>,
    warmup_calls: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        duration: Duration::from_secs_f64(1.0),
        warmup: Duration::from_secs_f64(0.3),
        rounds: 3,
        payloads: vec![16, 1024, 65536],
        systems: None,
        shapes: vec![(1, 1), (1, 64), (1, 256), (4, 64)],
        compare: true,
        scale: true,
        idle: true,
        idle_sessions: 10_000,
        scale_sessions: vec![1, 10, 100, 1000],
        json: None,
        calls: None,
        warmup_calls: 2000,
    };
    let mut it = std::env::args().skip(1);
    let secs = |v: Option<String>| -> Result<Duration, String> {
        v.and_then(|v| v.parse::<f64>().ok())
            .map(Duration::from_secs_f64)
            .ok_or_else(|| "expected seconds".to_owned())
    };
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--quick" => {
                a.duration = Duration::from_secs_f64(0.4);
                a.warmup = Duration::from_secs_f64(0.1);
                a.rounds = 1;
                a.idle_sessions = 2000;
                a.scale_sessions = vec![1, 10, 100];
            }
            "--duration" => a.duration = secs(it.next())?,
            "--warmup" => a.warmup = secs(it.next())?,
            "--rounds" => {
                a.rounds = it.next().and_then(|v| v.parse().ok()).ok_or("--rounds N")?;
            }
            "--payloads" => {
                a.payloads = it
                    .next()
                    .ok_or("--payloads 16,1024")?
                    .split(',')
                    .map(|v| v.parse().map_err(|_| format!("bad payload size {v:?}")))
                    .collect::<Result<_, _>>()?;
            }
            "--systems" => {
                a.systems = Some(
                    it.next()
                        .ok_or("--systems a,b")?
                        .split(',')
                        .map(str::to_owned)
                        .collect(),
                );
            }
            "--shapes" => {
                a.shapes = it
                    .next()
                    .ok_or("--shapes 1x1,4x64")?
                    .split(',')
                    .map(|v| {
                        v.split_once('x')
                            .and_then(|(c, f)| Some((c.parse().ok()?, f.parse().ok()?)))
                            .ok_or_else(|| format!("bad shape {v:?}"))
                    })
                    .collect::<Result<_, _>>()?;
            }
            "--no-compare" => a.compare = false,
            "--no-scale" => a.scale = false,
            "--no-idle" => a.idle = false,
            "--idle-sessions" => {
                a.idle_sessions = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or("--idle-sessions N")?;
            }
            "--json" => a.json = Some(it.next().ok_or("--json PATH")?),
            "--calls" => {
                a.calls = Some(it.next().and_then(|v| v.parse().ok()).ok_or("--calls N")?);
            }
            "--warmup-calls" => {
                a.warmup_calls = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or("--warmup-calls N")?;
            }
            other => {
                return Err(format!(
                    "unknown argument {other:?}; see the doc at the top of main.rs"
                ));
            }
        }
    }
    a.rounds = a.rounds.max(1);
    Ok(a)
}

/// One row of a table: a system in a scenario, medians over the rounds.
struct Row {
    section: &'static str,
    payload: usize,
    conns: usize,
    in_flight: usize,
    system: System,
    m: Measurement,
    /// Each round's figures, in round order: round `r` of every system in
    /// a cell ran back to back, so their ratios are the fair ones.
    rounds: Vec<Measurement>,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn summarize(runs: &[Measurement]) -> Measurement {
    Measurement {
        qps: median(runs.iter().map(|m| m.qps).collect()),
        p50_us: median(runs.iter().map(|m| m.p50_us).collect()),
        p99_us: median(runs.iter().map(|m| m.p99_us).collect()),
        calls: runs.iter().map(|m| m.calls).sum(),
        errors: runs.iter().map(|m| m.errors).sum(),
    }
}

/// Runs one scenario for every system, rounds × rotated order.
async fn run_cell(
    servers: &Servers,
    args: &Args,
    section: &'static str,
    systems: &[System],
    payload: usize,
    conns: usize,
    in_flight: usize,
) -> Vec<Row> {
    let body = Arc::new(Payload::new(payload));
    let mut runs: Vec<Vec<Measurement>> = vec![Vec::new(); systems.len()];
    for round in 0..args.rounds {
        for k in 0..systems.len() {
            let i = (k + round) % systems.len();
            let mut clients = Vec::with_capacity(conns);
            for _ in 0..conns {
                clients.push(servers.connect(systems[i]).await);
            }
            let m = load::run(
                &clients,
                in_flight,
                body.clone(),
                args.warmup,
                args.duration,
            )
            .await;
            for c in clients {
                c.close().await;
            }
            eprintln!(
                "  {section} {payload} B {conns}x{in_flight} {:<20} round {round}: {:>9.0} qps  p50 {:>8.1} us  p99 {:>8.1} us{}",
                systems[i].name(),
                m.qps,
                m.p50_us,
                m.p99_us,
                if m.errors > 0 {
                    format!("  ({} errors)", m.errors)
                } else {
                    String::new()
                }
            );
            runs[i].push(m);
        }
    }
    systems
        .iter()
        .zip(runs)
        .map(|(&system, runs)| Row {
            section,
            payload,
            conns,
            in_flight,
            system,
            m: summarize(&runs),
            rounds: runs,
        })
        .collect()
}

fn size_label(n: usize) -> String {
    if n >= 1024 && n.is_multiple_of(1024) {
        format!("{} KiB", n / 1024)
    } else {
        format!("{n} B")
    }
}

fn ratio(a: f64, b: Option<f64>) -> String {
    match b {
        Some(b) if b > 0.0 => format!("{:.2}×", a / b),
        _ => String::new(),
    }
}

/// The median ratio and, with more than one round, the lowest and highest
/// of the rounds' own ratios (round `r` against round `r`): how far one
/// run's verdict can be trusted on a noisy machine.
fn ratio_spread(row: &Row, other: Option<&Row>, field: impl Fn(&Measurement) -> f64) -> String {
    let Some(other) = other else {
        return String::new();
    };
    let median = ratio(field(&row.m), Some(field(&other.m)));
    let per_round: Vec<f64> = row
        .rounds
        .iter()
        .zip(&other.rounds)
        .filter(|(_, o)| field(o) > 0.0)
        .map(|(r, o)| field(r) / field(o))
        .collect();
    if per_round.len() < 2 {
        return median;
    }
    let low = per_round.iter().copied().fold(f64::INFINITY, f64::min);
    let high = per_round.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{median} ({low:.2}–{high:.2})")
}

/// A markdown table of rows grouped by scenario, ratios on teleport rows.
fn table(rows: &[Row], first_col: &str) -> String {
    let mut out = format!(
        "| {first_col} | system | QPS | p50 µs | p99 µs | QPS ÷ tarpc | QPS ÷ raw (rounds) | p50 ÷ raw (rounds) | p99 ÷ tarpc |\n|---|---|---:|---:|---:|---:|---:|---:|---:|\n"
    );
    for row in rows {
        let same = |s: System| {
            rows.iter().find(|r| {
                r.system == s
                    && r.section == row.section
                    && r.payload == row.payload
                    && r.conns == row.conns
                    && r.in_flight == row.in_flight
            })
        };
        let tarpc = same(System::Tarpc);
        let raw = same(System::Raw);
        let scenario = if row.section == "scale" {
            format!("{} sessions × {}", row.conns, row.in_flight)
        } else {
            format!(
                "{}, {}×{}",
                size_label(row.payload),
                row.conns,
                row.in_flight
            )
        };
        let (q_t, q_r, p50_r, p99_t) = if row.system.is_teleport() {
            (
                ratio(row.m.qps, tarpc.map(|r| r.m.qps)),
                ratio_spread(row, raw, |m| m.qps),
                ratio_spread(row, raw, |m| m.p50_us),
                ratio(row.m.p99_us, tarpc.map(|r| r.m.p99_us)),
            )
        } else {
            Default::default()
        };
        out.push_str(&format!(
            "| {scenario} | {} | {:.0} | {:.1} | {:.1} | {q_t} | {q_r} | {p50_r} | {p99_t} |\n",
            row.system.name(),
            row.m.qps,
            row.m.p50_us,
            row.m.p99_us,
        ));
    }
    out
}

fn json_line(row: &Row) -> String {
    serde_json::json!({
        "section": row.section,
        "system": row.system.name(),
        "payload": row.payload,
        "connections": row.conns,
        "in_flight_per_connection": row.in_flight,
        "qps": row.m.qps.round(),
        "qps_rounds": row.rounds.iter().map(|m| m.qps.round()).collect::<Vec<_>>(),
        "p50_us": row.m.p50_us,
        "p99_us": row.m.p99_us,
        "calls": row.m.calls,
        "errors": row.m.errors,
    })
    .to_string()
}

async fn bench(args: Args) {
    let servers = Servers::start().await;
    let wanted = |s: System| {
        args.systems
            .as_ref()
            .is_none_or(|names| names.iter().any(|n| n == s.name()))
    };
    if let Some(calls) = args.calls {
        count_calls(&servers, &args, calls, &wanted).await;
        return;
    }
    let mut rows = Vec::new();
    if args.compare {
        for &payload in &args.payloads {
            let systems: Vec<System> = System::ALL
                .into_iter()
                .filter(|&s| s != System::TeleportJsonGzip || payload >= 65536)
                .filter(|&s| wanted(s))
                .collect();
            for &(conns, in_flight) in &args.shapes {
                rows.extend(
                    run_cell(
                        &servers, &args, "compare", &systems, payload, conns, in_flight,
                    )
                    .await,
                );
            }
        }
    }
    let mut scale_rows = Vec::new();
    if args.scale {
        // A fixed 1000 calls in flight in total, spread over more and more sessions.
        let total = 1000;
        let systems: Vec<System> = [System::Raw, System::TeleportBincode, System::Tarpc]
            .into_iter()
            .filter(|&s| wanted(s))
            .collect();
        for &n in &args.scale_sessions {
            scale_rows.extend(run_cell(&servers, &args, "scale", &systems, 16, n, total / n).await);
        }
    }
    let idle = if args.idle {
        match idle::measure(args.idle_sessions).await {
            Ok(f) => Some(f),
            Err(e) => {
                eprintln!("idle measurement failed: {e}");
                None
            }
        }
    } else {
        None
    };

    let mut report = String::new();
    report.push_str(&format!(
        "teleport-bench: echo over loopback TCP, one tokio runtime with 2 workers on {} CPUs; {} round(s) of {:.1} s (after {:.1} s warm-up) per system per cell, medians shown\n\n",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        args.rounds,
        args.duration.as_secs_f64(),
        args.warmup.as_secs_f64(),
    ));
    if !rows.is_empty() {
        report.push_str(&table(&rows, "payload, conns×in flight"));
        report.push('\n');
    }
    if !scale_rows.is_empty() {
        report.push_str("Sessions grow at a fixed 1000 calls in flight in total (16 B):\n\n");
        report.push_str(&table(&scale_rows, "sessions × in flight each"));
        report.push('\n');
    }
    let mut json: Vec<String> = rows.iter().chain(&scale_rows).map(json_line).collect();
    if let Some(f) = &idle {
        report.push_str(&format!(
            "Idle sessions: {} teleport sessions on one peer: {:.1} KiB resident each while idle (server RSS {} → {} KiB), {:.1} KiB each after one 16 B call on every session ({} KiB)\n",
            f.sessions,
            f.per_session_idle(),
            f.base_kib,
            f.idle_kib,
            f.per_session_after_call(),
            f.after_call_kib,
        ));
        json.push(
            serde_json::json!({
                "section": "idle",
                "system": "teleport",
                "sessions": f.sessions,
                "base_rss_kib": f.base_kib,
                "idle_rss_kib": f.idle_kib,
                "after_call_rss_kib": f.after_call_kib,
                "idle_kib_per_session": f.per_session_idle(),
                "after_call_kib_per_session": f.per_session_after_call(),
            })
            .to_string(),
        );
    }
    println!("{report}");
    println!("JSON lines:");
    for line in &json {
        println!("{line}");
    }
    if let Some(path) = &args.json
        && let Err(e) = std::fs::write(path, json.join("\n") + "\n")
    {
        eprintln!("cannot write {path}: {e}");
    }
}

/// `--calls N`: exactly N calls per system, payload and shape, with the
/// allocations they made (client and server together, one process).
async fn count_calls(servers: &Servers, args: &Args, calls: u64, wanted: &dyn Fn(System) -> bool) {
    println!(
        "| system | payload | conns×in flight | calls | allocations per call | reallocations per call | bytes allocated per call |"
    );
    println!("|---|---|---|---:|---:|---:|---:|");
    for &payload in &args.payloads {
        let body = Arc::new(Payload::new(payload));
        for &(conns, in_flight) in &args.shapes {
            for system in System::ALL.into_iter().filter(|&s| wanted(s)) {
                let mut clients = Vec::with_capacity(conns);
                for _ in 0..conns {
                    clients.push(servers.connect(system).await);
                }
                load::run_calls(&clients, in_flight, body.clone(), args.warmup_calls).await;
                alloc::start();
                let errors = load::run_calls(&clients, in_flight, body.clone(), calls).await;
                let counts = alloc::stop();
                for c in clients {
                    c.close().await;
                }
                let per = |n: u64| n as f64 / calls as f64;
                println!(
                    "| {} | {} | {conns}×{in_flight} | {calls} | {:.2} | {:.2} | {:.0} |{}",
                    system.name(),
                    size_label(payload),
                    per(counts.allocs),
                    per(counts.reallocs),
                    per(counts.bytes),
                    if errors > 0 {
                        format!(" {errors} errors")
                    } else {
                        String::new()
                    },
                );
            }
        }
    }
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("--idle-server") {
        raise_fd_limit();
        idle::child_main();
        return;
    }
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("teleport-bench: {e}");
            std::process::exit(2);
        }
    };
    raise_fd_limit();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(bench(args));
}

/// Thousands of sessions need thousands of descriptors: raise the soft
/// limit to the hard one (the idle figure needs about 10,000 per process).
fn raise_fd_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) if n < 12_000 => eprintln!(
            "note: only {n} file descriptors allowed; run `ulimit -n 65536` first for the 10,000-session figure"
        ),
        Ok(_) => {}
        Err(e) => eprintln!("note: cannot raise the file descriptor limit: {e}"),
    }
}
