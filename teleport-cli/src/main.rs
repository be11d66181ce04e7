//! `tp`: call, watch, serve and benchmark teleport peers from the terminal.
//!
//! It speaks the Go Teleport v2.0 wire format through the `teleport` crate,
//! so it works against teleport peers and Go v2.0 peers alike:
//!
//! ```text
//! tp pull 127.0.0.1:9090 /home/add '[40,2]'        # prints 42, status on stderr
//! tp push 127.0.0.1:9090 /msg/note '"hi"'          # returns once the push is on the wire
//! tp listen 127.0.0.1:9090 /msg                    # one JSON line per push, until Ctrl-C
//! tp serve --addr 127.0.0.1:9090                   # echoes every pull, logs every call
//! tp bench 127.0.0.1:9090 /home/echo '"hi"' -c 64 -d 10s
//! ```
//!
//! Exit codes: 0 success, 1 the remote side replied with a status other
//! than 200, 2 bad usage or input, 3 could not connect or the call was never
//! sent, 4 sent but the outcome is unknown (timeout, connection closed).

mod bench;
mod body;
mod call;
mod connect;
mod error;
mod frames;
mod listen;
mod serve;
mod signals;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::error::CliError;

/// Call, watch, serve and benchmark teleport and Go Teleport v2.0 peers.
#[derive(Debug, Parser)]
#[command(name = "tp", version, about, long_about = None, after_help = EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  the remote side replied with a status other than 200
  2  bad usage or input (an unreadable body file, invalid JSON, a bad flag)
  3  could not connect, or the call was never sent
  4  sent, but the outcome is unknown (timeout, connection closed)

Logs: set RUST_LOG (for example RUST_LOG=teleport=debug) to see the library's log lines.";

#[derive(Debug, Subcommand)]
enum Command {
    /// Pull URI (request/reply) and print the reply body on stdout.
    #[command(after_help = EXIT_CODES)]
    Pull(call::CallArgs),
    /// Push URI (one-way); returns once the push has been written to the connection.
    #[command(after_help = EXIT_CODES)]
    Push(call::CallArgs),
    /// Dial ADDR and print every push the server sends, one JSON line each, until Ctrl-C.
    #[command(after_help = EXIT_CODES)]
    Listen(listen::ListenArgs),
    /// Listen on an address, echo every pull's body back and log every call as a JSON line.
    Serve(serve::ServeArgs),
    /// Pull URI in a loop from many tasks and report throughput and latency.
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let threads = match &cli.command {
        Command::Bench(args) => args.threads,
        Command::Serve(args) => args.threads,
        _ => Some(1),
    };
    let mut builder = if threads == Some(1) {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        if let Some(n) = threads {
            b.worker_threads(n.max(1));
        }
        b
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            error::report(&CliError::Io {
                what: "cannot start the tokio runtime".into(),
                source: e,
            });
            return ExitCode::from(error::code::USAGE);
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Pull(args) => call::pull(args).await,
            Command::Push(args) => call::push(args).await,
            Command::Listen(args) => listen::run(args).await,
            Command::Serve(args) => serve::run(args).await,
            Command::Bench(args) => bench::run(args).await,
        }
    });
    // Sessions still open (a listener's) end with the runtime; nothing is
    // waiting on them any more.
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error::report(&e);
            ExitCode::from(e.exit_code())
        }
    }
}

/// The library logs through `tracing`: warnings by default, more with
/// `RUST_LOG` (`RUST_LOG=teleport=debug` shows one line per call).
fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(console::colors_enabled_stderr())
        .try_init();
}
