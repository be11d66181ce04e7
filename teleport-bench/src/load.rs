//! The closed-loop load generator: `in_flight` workers per connection, each
//! calling in a loop; latencies go into a histogram once warm-up is over.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;

use crate::{grpc, raw, tarpc_echo};

/// The payload, in the shapes the systems take it.
pub struct Payload {
    pub text: String,
    pub bytes: Bytes,
    pub raw: teleport::codec::RawBody,
}

impl Payload {
    /// `len` pseudo-random ASCII letters and digits (fixed seed, so every
    /// run compresses alike).
    pub fn new(len: usize) -> Payload {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let text: String = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                ALPHABET[(x % ALPHABET.len() as u64) as usize] as char
            })
            .collect();
        let bytes = Bytes::from(text.clone().into_bytes());
        let raw = teleport::codec::RawBody(bytes.clone());
        Payload { text, bytes, raw }
    }
}

/// One connection's client, whatever the system.
#[derive(Clone)]
pub enum Client {
    Raw(raw::Client),
    Teleport(teleport::Session, teleport::CallOptions),
    TeleportBytes(teleport::Session, teleport::CallOptions),
    TeleportService(crate::tp::BenchClient),
    Tarpc(tarpc_echo::EchoClient),
    Tonic(grpc::Client),
}

impl Client {
    /// One echo call; returns the length of the echoed payload.
    pub async fn call(&mut self, payload: &Payload) -> Result<usize, String> {
        match self {
            Client::Raw(c) => c.call(payload.bytes.clone()).await.map(|b| b.len()),
            Client::Teleport(session, options) => session
                .pull_with::<str, String>(crate::tp::ECHO, &payload.text, *options)
                .await
                .map(|s| s.len())
                .map_err(|e| e.to_string()),
            Client::TeleportBytes(session, options) => session
                .pull_with::<_, teleport::codec::RawBody>(
                    crate::tp::ECHO_BYTES,
                    &payload.raw,
                    *options,
                )
                .await
                .map(|b| b.0.len())
                .map_err(|e| e.to_string()),
            Client::TeleportService(c) => c
                .echo(payload.text.clone())
                .await
                .map(|s| s.len())
                .map_err(|e| e.to_string()),
            Client::Tarpc(c) => c
                .echo(tarpc::context::current(), payload.text.clone())
                .await
                .map(|s| s.len())
                .map_err(|e| e.to_string()),
            Client::Tonic(c) => c.call(payload.text.clone()).await.map(|s| s.len()),
        }
    }

    /// Ends the connection (teleport explicitly; the others on drop).
    pub async fn close(self) {
        match self {
            Client::Teleport(session, _) | Client::TeleportBytes(session, _) => {
                session.close().await
            }
            Client::TeleportService(client) => client.session().close().await,
            _ => {}
        }
    }
}

/// What one measured run gives.
#[derive(Clone, Debug)]
pub struct Measurement {
    pub qps: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub calls: u64,
    pub errors: u64,
}

/// Runs `in_flight` workers on each client: `warmup` unmeasured, then
/// `duration` measured.
pub async fn run(
    clients: &[Client],
    in_flight: usize,
    payload: Arc<Payload>,
    warmup: Duration,
    duration: Duration,
) -> Measurement {
    let recording = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for client in clients {
        for _ in 0..in_flight {
            let mut client = client.clone();
            let (recording, stop, errors, payload) = (
                recording.clone(),
                stop.clone(),
                errors.clone(),
                payload.clone(),
            );
            workers.push(tokio::spawn(async move {
                let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)
                    .expect("valid histogram bounds");
                let expected = payload.bytes.len();
                while !stop.load(Ordering::Relaxed) {
                    let start = Instant::now();
                    let result = client.call(&payload).await;
                    let took = start.elapsed();
                    if !matches!(result, Ok(n) if n == expected) {
                        if errors.fetch_add(1, Ordering::Relaxed) == 0 {
                            eprintln!("    first error: {result:?} after {took:?}");
                        }
                        if errors.load(Ordering::Relaxed) > 1000 {
                            break;
                        }
                    } else if recording.load(Ordering::Relaxed) {
                        hist.saturating_record(took.as_nanos() as u64);
                    }
                }
                hist
            }));
        }
    }
    tokio::time::sleep(warmup).await;
    recording.store(true, Ordering::Relaxed);
    let start = Instant::now();
    tokio::time::sleep(duration).await;
    recording.store(false, Ordering::Relaxed);
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    let mut all =
        Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds");
    for w in workers {
        if let Ok(h) = w.await {
            let _ = all.add(&h);
        }
    }
    let calls = all.len();
    Measurement {
        qps: calls as f64 / elapsed.as_secs_f64(),
        p50_us: all.value_at_quantile(0.50) as f64 / 1000.0,
        p99_us: all.value_at_quantile(0.99) as f64 / 1000.0,
        calls,
        errors: errors.load(Ordering::Relaxed),
    }
}

/// Runs exactly `calls` calls (in total) with `in_flight` workers on each
/// client, for the per-call figures of `--calls`: no clock, no histogram,
/// so that what is counted is the calls. Returns the errors.
pub async fn run_calls(
    clients: &[Client],
    in_flight: usize,
    payload: Arc<Payload>,
    calls: u64,
) -> u64 {
    let remaining = Arc::new(AtomicI64::new(calls as i64));
    let errors = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for client in clients {
        for _ in 0..in_flight {
            let mut client = client.clone();
            let (remaining, errors, payload) = (remaining.clone(), errors.clone(), payload.clone());
            workers.push(tokio::spawn(async move {
                let expected = payload.bytes.len();
                while remaining.fetch_sub(1, Ordering::Relaxed) > 0 {
                    let result = client.call(&payload).await;
                    if !matches!(result, Ok(n) if n == expected)
                        && errors.fetch_add(1, Ordering::Relaxed) == 0
                    {
                        eprintln!("    first error: {result:?}");
                    }
                }
            }));
        }
    }
    for w in workers {
        let _ = w.await;
    }
    errors.load(Ordering::Relaxed)
}
