//! Graceful shutdown and zero-downtime restart.
//!
//! # Shutdown
//!
//! [`Peer::shutdown`] stops accepting, then *drains* every session: the
//! session stops reading new frames, the handlers already running finish and
//! their replies are flushed, and the connection is shut down cleanly. The
//! other side sees an orderly end of stream; its pulls that were never read
//! end with [`Error::ConnectionClosed`](crate::Error::ConnectionClosed).
//! Sessions still busy when the deadline passes are closed at once.
//!
//! ```text
//!  shutdown(deadline)
//!   ├─ stop accepting (listeners closed, new dials refused)
//!   ├─ every session: stop reading ─ handlers finish ─ replies flushed ─ FIN
//!   └─ at the deadline: sessions still draining are closed at once
//! ```
//!
//! # Restart
//!
//! [`Peer::restart`] (unix) is Go Teleport's "graceful reboot": the process
//! starts a new copy of its own binary with the same arguments and hands it
//! its listening sockets as inherited file descriptors, named in the
//! environment:
//!
//! | variable | value |
//! |---|---|
//! | `TELEPORT_INHERIT_FDS` | the listeners' descriptor numbers, `3,4` |
//! | `TELEPORT_INHERIT_ADDRS` | their addresses, `127.0.0.1:7000,[::1]:7000` (for logs) |
//! | `TELEPORT_READY_FD` | a datagram socket on which the child says it is serving |
//! | `LISTEN_FDS` | how many descriptors start at 3 (the systemd convention) |
//!
//! The new process picks its listeners up with [`Peer::listen_inherited_or`]
//! (which binds normally when there is nothing to inherit), and serves on them
//! at once: connections that arrive in between wait in the socket's backlog,
//! none is refused. Once it has taken all of them it tells the old process,
//! which then stops accepting, drains as in a shutdown, and returns so its
//! `main` can exit. If the new process exits or does not become ready within
//! [`READY_TIMEOUT`], the old one kills it and goes on serving.
//!
//! [`run`] wires both to signals: SIGINT and SIGTERM shut down, SIGUSR2
//! restarts, and a [`SignalHandle`] raises the same from code (an admin
//! route, say).
//!
//! # Where things are
//!
//! | room | what |
//! |---|---|
//! | [`Peer::shutdown`] (in `peer/shutdown.rs`) | the drain, beside [`Peer::close`], with the one forced close both use |
//! | `signals.rs` | [`Signals`], [`SignalHandle`], [`run`] and its [`Outcome`] |
//! | `restart.rs` | [`Peer::restart`] (unix): start the new process, hand over, wait until it serves |
//! | `inherit.rs` | the new process's side: [`Peer::listen_inherited_or`], [`inherited_listener`], [`notify_ready`] |
//!
//! ```no_run
//! use std::time::Duration;
//! use teleport::graceful::{self, Outcome, Signals};
//! use teleport::{Peer, PeerConfig, Router};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let signals = Signals::new()?; // before serving, so no signal is missed
//!     let peer = Peer::new(PeerConfig::default(), Router::new());
//!     peer.listen_inherited_or("0.0.0.0:9090").await?;
//!     match graceful::run(&peer, signals, Duration::from_secs(10)).await {
//!         Outcome::Shutdown(summary) => tracing::info!(?summary, "stopped"),
//!         Outcome::Restarted(restarted) => tracing::info!(pid = restarted.pid, "handed over"),
//!         other => tracing::info!(?other, "stopped"),
//!     }
//!     Ok(())
//! }
//! ```

mod inherit;
mod restart;
mod signals;

pub use inherit::{inherited_listener, is_restarted, notify_ready};
pub use restart::{READY_TIMEOUT, RestartError, Restarted};
pub use signals::{Outcome, Signal, SignalHandle, Signals, run};

#[cfg(doc)]
use crate::peer::Peer;
pub use crate::peer::ShutdownSummary;
