//! `tp listen`: dial a peer and print every call it makes to this side.

use std::io::Write;

use bytes::Bytes;
use clap::Args;
use serde_json::Value;
use teleport::{Ctx, RawReply, Router, Status};
use tokio::sync::mpsc;

use crate::body::{self, BodyOpts};
use crate::connect::DialOpts;
use crate::error::CliError;
use crate::signals::Stop;

/// `tp listen ADDR [PREFIX...]`.
#[derive(Debug, Args)]
pub(crate) struct ListenArgs {
    /// Address of the peer: host:port.
    addr: String,
    /// Print only pushes whose path starts with one of these (all if none).
    prefixes: Vec<String>,
    /// Answer the server's pulls with this body (in --codec; @FILE or -
    /// for stdin). Without it they get 404 Not Found. Either way each pull is
    /// printed as a line with "kind":"pull".
    #[arg(long, value_name = "BODY")]
    pull_reply: Option<String>,
    /// After connecting, push this URI with this BODY (in --codec): a
    /// subscription, say. Prints nothing for it.
    #[arg(long, num_args = 2, value_names = ["URI", "BODY"])]
    push: Option<Vec<String>>,
    /// Exit after printing this many lines.
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    #[command(flatten)]
    body_opts: BodyOpts,
    #[command(flatten)]
    dial: DialOpts,
}

fn wanted(prefixes: &[String], path: &str) -> bool {
    prefixes.is_empty() || prefixes.iter().any(|p| path.starts_with(p.as_str()))
}

/// Prints lines until Ctrl-C, `--count`, or the end of the connection.
pub(crate) async fn run(args: ListenArgs) -> Result<(), CliError> {
    let reply = match body::read_arg(args.pull_reply.as_deref())? {
        Some(input) => Some(body::encode(
            args.body_opts.codec,
            Some(&input),
            args.body_opts.gzip,
        )?),
        None => None,
    };
    let gzip = args.body_opts.gzip;
    let (tx, mut rx) = mpsc::unbounded_channel::<Value>();
    let mut router = Router::new();
    let prefixes = args.prefixes.clone();
    let push_tx = tx.clone();
    router.unknown_push(move |ctx: Ctx, section: Bytes| {
        if wanted(&prefixes, ctx.path()) {
            let _ = push_tx.send(Value::Object(body::call_line("push", &ctx, &section)));
        } else {
            tracing::debug!(uri = %ctx.uri(), "push outside the prefixes; not printed");
        }
        async {}
    });
    router.unknown_pull(move |ctx: Ctx, section: Bytes| {
        let _ = tx.send(Value::Object(body::call_line("pull", &ctx, &section)));
        let answer = match &reply {
            Some(body) => RawReply {
                status: Status::ok(),
                gzip,
                body: body.clone(),
            },
            None => RawReply::status(Status::not_found()),
        };
        async move { answer }
    });
    let first_push = match &args.push {
        Some(pair) => {
            let input = body::read_arg(pair.get(1).map(String::as_str))?;
            let section = body::encode(args.body_opts.codec, input.as_deref(), gzip)?;
            Some((pair[0].clone(), section))
        }
        None => None,
    };
    let mut stop = Stop::new()?;
    let session = args.dial.dial(&args.addr, router).await?;
    if let Some((uri, section)) = first_push {
        let options = teleport::CallOptions::default().header_codec(args.dial.header_codec.into());
        session
            .push_raw(&uri, gzip, section, options)
            .await
            .map_err(|e| CliError::call(&uri, e))?;
    }
    eprintln!(
        "{}",
        console::style(format!(
            "listening to {} (Ctrl-C to stop)",
            session.remote_addr()
        ))
        .dim()
        .for_stderr()
    );
    let mut printed = 0u64;
    let stdout = std::io::stdout();
    loop {
        if args.count.is_some_and(|n| printed >= n) {
            session.close().await;
            return Ok(());
        }
        tokio::select! {
            biased;
            Some(value) = rx.recv() => {
                let mut out = stdout.lock();
                writeln!(out, "{value}")
                    .and_then(|()| out.flush())
                    .map_err(|source| CliError::Io { what: "cannot write to stdout".into(), source })?;
                printed += 1;
            }
            () = stop.recv() => {
                session.close().await;
                return Ok(());
            }
            () = session.closed() => {
                // Print what arrived before the end.
                while let Ok(value) = rx.try_recv() {
                    if args.count.is_some_and(|n| printed >= n) {
                        return Ok(());
                    }
                    let mut out = stdout.lock();
                    let _ = writeln!(out, "{value}");
                    printed += 1;
                }
                let reason = session.close_reason().unwrap_or("closed").to_owned();
                return Err(CliError::Ended(reason));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::wanted;

    #[test]
    fn prefixes_select_by_path() {
        assert!(wanted(&[], "/any"));
        let p = vec!["/msg".to_owned(), "/chat/".to_owned()];
        assert!(wanted(&p, "/msg/back"));
        assert!(wanted(&p, "/chat/room"));
        assert!(!wanted(&p, "/home/echo"));
    }
}
