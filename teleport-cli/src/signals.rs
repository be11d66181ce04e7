//! Ctrl-C and SIGTERM, registered as soon as a command starts: a signal
//! that arrives once the command has said it is ready (printed its address,
//! say) always stops it cleanly instead of killing it.

use crate::error::CliError;

/// Waits for Ctrl-C (SIGINT) or, on unix, SIGTERM.
pub(crate) struct Stop {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Stop {
    /// Installs the handlers now.
    pub(crate) fn new() -> Result<Stop, CliError> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let io = |source| CliError::Io {
                what: "cannot install the signal handlers".into(),
                source,
            };
            Ok(Stop {
                interrupt: signal(SignalKind::interrupt()).map_err(io)?,
                terminate: signal(SignalKind::terminate()).map_err(io)?,
            })
        }
        #[cfg(not(unix))]
        Ok(Stop {})
    }

    /// Returns when a stop signal arrives.
    pub(crate) async fn recv(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}
