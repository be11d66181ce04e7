//! `tp pull` and `tp push`: one call, then exit.

use std::io::Write;

use bytes::Bytes;
use clap::Args;
use teleport::{CallOptions, Router, Session, Status};

use crate::body::{self, BodyOpts};
use crate::connect::DialOpts;
use crate::error::CliError;

/// `tp pull ADDR URI [BODY]` and `tp push ADDR URI [BODY]`.
#[derive(Debug, Args)]
pub(crate) struct CallArgs {
    /// Address of the peer: host:port.
    addr: String,
    /// URI to call, with an optional query (`/home/echo?lang=en`).
    uri: String,
    /// The body: text in the --codec (JSON by default), @FILE for a file's
    /// contents, or - for stdin. Left out: a call without a body.
    body: Option<String>,
    #[command(flatten)]
    body_opts: BodyOpts,
    #[command(flatten)]
    dial: DialOpts,
}

impl CallArgs {
    /// Reads and checks the body, then connects: bad input never dials.
    async fn start(&self) -> Result<(Session, Bytes), CliError> {
        let input = body::read_arg(self.body.as_deref())?;
        let section = body::encode(self.body_opts.codec, input.as_deref(), self.body_opts.gzip)?;
        let session = self.dial.dial(&self.addr, Router::new()).await?;
        Ok((session, section))
    }

    fn options(&self) -> CallOptions {
        CallOptions::default()
            .header_codec(self.dial.header_codec.into())
            .timeout(self.dial.timeout)
    }
}

/// Pulls once: the reply body on stdout, its status on stderr.
pub(crate) async fn pull(args: CallArgs) -> Result<(), CliError> {
    let (session, section) = args.start().await?;
    let result = session
        .pull_raw(&args.uri, args.body_opts.gzip, section, args.options())
        .await;
    let reply = match result {
        Ok(reply) => reply,
        Err(e) => {
            session.close().await;
            return Err(CliError::call(&args.uri, e));
        }
    };
    session.close().await;
    // Go v2.0 always sets 200; 0 (the field left out) counts as success too.
    let code = reply.header.status_code;
    let status = if code == 0 {
        Status::ok()
    } else {
        reply.header.status()
    };
    let payload = body::payload(&reply, session.config().max_frame_size)?;
    if !status.is_ok() {
        if !payload.is_empty() {
            eprintln!("{}", String::from_utf8_lossy(&payload));
        }
        return Err(CliError::Status {
            uri: args.uri,
            status,
        });
    }
    eprintln!("{}", console::style(&status).green().for_stderr());
    let out = body::render(reply.body_codec(), &payload);
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(&out)
        .and_then(|()| stdout.flush())
        .map_err(|source| CliError::Io {
            what: "cannot write the reply to stdout".into(),
            source,
        })
}

/// What a session's close reason is when this side closed it and nothing
/// went wrong first (the text of the library's local close).
const CLOSED_LOCALLY: &str = "the session was closed locally";

/// Pushes once and closes the session, which writes every queued frame
/// before shutting the connection down, so the push is on the wire when
/// this returns.
pub(crate) async fn push(args: CallArgs) -> Result<(), CliError> {
    let (session, section) = args.start().await?;
    let result = session
        .push_raw(&args.uri, args.body_opts.gzip, section, args.options())
        .await;
    if let Err(e) = result {
        session.close().await;
        return Err(CliError::call(&args.uri, e));
    }
    finish_push(&session).await
}

/// Closes the session after a push and says whether it left cleanly.
async fn finish_push(session: &Session) -> Result<(), CliError> {
    session.close().await;
    match session.close_reason() {
        Some(reason) if reason != CLOSED_LOCALLY => Err(CliError::Ended(format!(
            "{reason} (the push was queued before that, but may not have been written)"
        ))),
        _ => Ok(()),
    }
}
