//! Signals that end or restart the serving: SIGINT and SIGTERM shut down,
//! SIGUSR2 restarts, and a [`SignalHandle`] raises the same from code. [`run`]
//! waits for one and does what it says.

use std::io;
use std::time::Duration;

use tokio::sync::mpsc;

use super::{Restarted, ShutdownSummary};
use crate::peer::Peer;

/// A signal (or its stand-in raised through a [`SignalHandle`]) that ends or
/// restarts the serving.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Signal {
    /// SIGINT (Ctrl-C): shut down.
    Interrupt,
    /// SIGTERM: shut down.
    Terminate,
    /// SIGUSR2: restart without downtime (unix only).
    Restart,
}

/// The signals [`run`] reacts to, registered when this is made so that none
/// sent in the meantime is lost (an unregistered SIGUSR2 would kill the
/// process).
#[derive(Debug)]
pub struct Signals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
    #[cfg(unix)]
    restart: tokio::signal::unix::Signal,
    raised_tx: mpsc::UnboundedSender<Signal>,
    raised_rx: mpsc::UnboundedReceiver<Signal>,
}

/// Raises a [`Signal`] in a [`Signals`] from code, as if the process had
/// received it: the "API call" way to shut down or restart. Cheap to clone.
#[derive(Clone, Debug)]
pub struct SignalHandle {
    tx: mpsc::UnboundedSender<Signal>,
}

impl SignalHandle {
    /// Raises `signal`. Does nothing once the [`Signals`] is dropped.
    pub fn raise(&self, signal: Signal) {
        let _ = self.tx.send(signal);
    }
}

impl Signals {
    /// Registers handlers for SIGINT, SIGTERM and SIGUSR2 (Ctrl-C elsewhere).
    ///
    /// # Errors
    ///
    /// If the operating system refuses a handler. Must be called from
    /// within a Tokio runtime.
    pub fn new() -> io::Result<Signals> {
        let (raised_tx, raised_rx) = mpsc::unbounded_channel();
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Signals {
                interrupt: signal(SignalKind::interrupt())?,
                terminate: signal(SignalKind::terminate())?,
                restart: signal(SignalKind::user_defined2())?,
                raised_tx,
                raised_rx,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(Signals {
                raised_tx,
                raised_rx,
            })
        }
    }

    /// A handle that raises signals in this set from code.
    pub fn handle(&self) -> SignalHandle {
        SignalHandle {
            tx: self.raised_tx.clone(),
        }
    }

    /// Waits for the next signal.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a signal that arrives while no one waits is kept for
    /// the next call.
    pub async fn recv(&mut self) -> Signal {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.interrupt.recv() => Signal::Interrupt,
                _ = self.terminate.recv() => Signal::Terminate,
                _ = self.restart.recv() => Signal::Restart,
                Some(s) = self.raised_rx.recv() => s,
            }
        }
        #[cfg(not(unix))]
        {
            tokio::select! {
                r = tokio::signal::ctrl_c() => match r {
                    Ok(()) => Signal::Interrupt,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot wait for Ctrl-C");
                        std::future::pending().await
                    }
                },
                Some(s) = self.raised_rx.recv() => s,
            }
        }
    }
}

/// How [`run`] ended.
#[derive(Debug)]
#[non_exhaustive]
pub enum Outcome {
    /// SIGINT or SIGTERM: the peer shut down.
    Shutdown(ShutdownSummary),
    /// SIGUSR2: a new process serves now, and this peer shut down.
    Restarted(Restarted),
}

/// Serves until a signal: SIGINT or SIGTERM shut `peer` down with
/// [`Peer::shutdown`]; SIGUSR2 restarts it with [`Peer::restart`] (a failed
/// restart is logged and the peer serves on). Returns what happened, so
/// `main` can return and the process exit. `deadline` bounds the drain.
///
/// See the [module docs](crate::graceful) for an example.
///
/// # Cancel safety
///
/// Cancel safe while waiting for a signal; once one arrived, dropping the
/// future behaves as for [`Peer::shutdown`].
pub async fn run(peer: &Peer, mut signals: Signals, deadline: Duration) -> Outcome {
    loop {
        let signal = signals.recv().await;
        tracing::info!(?signal, "signal received");
        match signal {
            Signal::Interrupt | Signal::Terminate => {
                return Outcome::Shutdown(peer.shutdown(deadline).await);
            }
            Signal::Restart => {
                #[cfg(unix)]
                match peer.restart(deadline).await {
                    Ok(restarted) => return Outcome::Restarted(restarted),
                    Err(e) => tracing::error!(error = %e, "restart failed; serving on"),
                }
                #[cfg(not(unix))]
                tracing::error!("restart is only supported on unix; serving on");
            }
        }
    }
}
