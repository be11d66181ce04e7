//! `tp serve`: an echo and debug server, a target for tests and `tp bench`.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use clap::Args;
use teleport::plugin::auth::AuthServer;
use teleport::{Ctx, Peer, PeerConfig, RawReply, Router, Status};
use tokio::sync::mpsc;

use crate::body;
use crate::connect::{self, HeaderCodecArg};
use crate::error::CliError;
use crate::frames::FrameLog;
use crate::signals::Stop;

/// `tp serve --addr ADDR`.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on (port 0 picks a free one; the address is printed on stderr).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9090")]
    addr: String,
    /// Header codec of the replies this side sends.
    #[arg(long, value_enum, default_value = "protobuf")]
    header_codec: HeaderCodecArg,
    /// Serve TLS with this PEM certificate chain (needs --key).
    #[arg(long, value_name = "FILE", requires = "key")]
    cert: Option<PathBuf>,
    /// The PEM private key of --cert.
    #[arg(long, value_name = "FILE", requires = "cert")]
    key: Option<PathBuf>,
    /// Require this credential from the auth plugin (`teleport::plugin::auth`) of every dialer.
    #[arg(long, value_name = "TOKEN", env = "TP_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Do not print a line per call (for benchmarks).
    #[arg(short, long)]
    quiet: bool,
    /// Print every frame sent and received on stderr.
    #[arg(short, long)]
    verbose: bool,
    /// Worker threads of the runtime (default: one per core).
    #[arg(long, value_name = "N")]
    pub(crate) threads: Option<usize>,
}

/// Serves until Ctrl-C (or SIGTERM), then drains for up to 5 s.
pub(crate) async fn run(args: ServeArgs) -> Result<(), CliError> {
    let tls = match (&args.cert, &args.key) {
        (Some(cert), Some(key)) => Some(connect::server_tls(cert, key)?),
        _ => None,
    };
    // Lines are printed by one task, in the order calls arrive.
    let (tx, mut rx) = mpsc::unbounded_channel::<serde_json::Value>();
    let log = (!args.quiet).then_some(tx);
    let mut router = Router::new();
    let pull_log = log.clone();
    router.unknown_pull(move |ctx: Ctx, section: Bytes| {
        if let Some(log) = &pull_log {
            let _ = log.send(entry("pull", &ctx, &section));
        }
        // The body section goes back as it came: same codec, same gzip.
        let reply = RawReply {
            status: Status::ok(),
            gzip: ctx.header().gzip,
            body: section,
        };
        async move { reply }
    });
    let push_log = log;
    router.unknown_push(move |ctx: Ctx, section: Bytes| {
        if let Some(log) = &push_log {
            let _ = log.send(entry("push", &ctx, &section));
        }
        async {}
    });
    let mut config = PeerConfig::default().header_codec(args.header_codec.into());
    if args.verbose {
        config = config.plugin(FrameLog::new());
    }
    if let Some(token) = args.token.clone() {
        let token: Arc<str> = token.into();
        config = config.plugin(AuthServer::new(move |_session, given: String| {
            let ok = *given == *token;
            async move {
                if ok {
                    Ok("token".to_owned())
                } else {
                    Err(Status::unauthorized())
                }
            }
        }));
    }
    let mut stop = Stop::new()?;
    let peer = Peer::new(config, router);
    let addr = match tls {
        Some(tls) => peer.listen_tls(args.addr.as_str(), tls).await?,
        None => peer.listen(args.addr.as_str()).await?,
    };
    let scheme = if args.cert.is_some() { "tls" } else { "tcp" };
    eprintln!("tp serve: listening on {addr} ({scheme}); every pull is echoed; Ctrl-C stops");
    let stdout = std::io::stdout();
    loop {
        tokio::select! {
            Some(line) = rx.recv() => {
                let mut out = stdout.lock();
                writeln!(out, "{line}")
                    .and_then(|()| out.flush())
                    .map_err(|source| CliError::Io { what: "cannot write to stdout".into(), source })?;
            }
            () = stop.recv() => break,
        }
    }
    eprintln!("tp serve: stopping");
    peer.shutdown(Duration::from_secs(5)).await;
    Ok(())
}

/// One log line for a call: [`body::call_line`] plus who sent it and sizes.
fn entry(kind: &str, ctx: &Ctx, section: &Bytes) -> serde_json::Value {
    let mut line = body::call_line(kind, ctx, section);
    line.insert("remote".into(), ctx.remote_addr().to_string().into());
    line.insert("session".into(), ctx.session().id().into());
    line.insert("seq".into(), ctx.header().seq.into());
    line.insert("size".into(), section.len().into());
    serde_json::Value::Object(line)
}
