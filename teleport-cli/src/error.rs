//! What can go wrong in a `tp` command, and the exit code each one gives.

use std::io;

use teleport::{Error, PeerError, Status};

/// The process exit codes (also listed in `tp --help`).
pub(crate) mod code {
    /// The remote side replied with a status other than 200.
    pub(crate) const STATUS: u8 = 1;
    /// Bad usage or input (clap uses 2 for usage errors too).
    pub(crate) const USAGE: u8 = 2;
    /// Could not connect, or the call was provably never sent.
    pub(crate) const NOT_SENT: u8 = 3;
    /// Sent, but the outcome is unknown (timeout, connection closed).
    pub(crate) const UNKNOWN: u8 = 4;
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    /// The remote side answered a pull with a status other than 200.
    #[error("{uri}: the remote side replied {status}")]
    Status {
        /// The URI pulled.
        uri: String,
        /// The status it replied with.
        status: Status,
    },
    /// Bad input: a body that does not parse, a flag value out of range.
    #[error("{0}")]
    Input(String),
    /// A file or stream could not be read or written.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, naming the file.
        what: String,
        /// The operating system's error.
        source: io::Error,
    },
    /// TLS settings that cannot be used (a bad CA file, no roots).
    #[error("TLS: {0}")]
    Tls(String),
    /// Dialing or listening failed.
    #[error(transparent)]
    Peer(#[from] PeerError),
    /// A call failed without a status.
    #[error(transparent)]
    Call(Error),
    /// The session ended while the command still needed it.
    #[error("the connection ended: {0}")]
    Ended(String),
}

impl CliError {
    /// The exit code for this failure.
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            CliError::Status { .. } => code::STATUS,
            CliError::Input(_) | CliError::Io { .. } | CliError::Tls(_) => code::USAGE,
            CliError::Peer(_) => code::NOT_SENT,
            CliError::Call(e) if e.is_not_sent() => code::NOT_SENT,
            CliError::Call(Error::Codec(_)) => code::USAGE,
            CliError::Call(_) | CliError::Ended(_) => code::UNKNOWN,
        }
    }

    /// A call error, with a non-200 status kept apart so that its code and
    /// text are shown as such.
    pub(crate) fn call(uri: &str, e: Error) -> CliError {
        match e.status() {
            Some(status) => CliError::Status {
                uri: uri.to_owned(),
                status: status.clone(),
            },
            None => CliError::Call(e),
        }
    }
}

/// Prints `tp: error: ...` on stderr, in red on a terminal, with the
/// error's causes (its `source()` chain) that its message does not already
/// name.
pub(crate) fn report(e: &CliError) {
    let label = console::style("tp: error:").red().bold().for_stderr();
    eprintln!("{label} {}", with_causes(e));
}

fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let part = c.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        cause = c.source();
    }
    text
}
