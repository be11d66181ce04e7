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

use std::collections::HashSet;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::ToSocketAddrs;
use tokio::sync::mpsc;

use crate::error::PeerError;
use crate::peer::Peer;

/// How long sessions closed at the deadline get to flush before
/// [`Peer::shutdown`] returns anyway.
const FORCED_CLOSE_GRACE: Duration = Duration::from_secs(1);

/// How long [`Peer::restart`] waits for the new process to say it serves.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// What a [`Peer::shutdown`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownSummary {
    /// Sessions that were open (or opened while stopping) and were drained.
    pub sessions: usize,
    /// Of those, how many finished their handlers and closed cleanly in time.
    pub drained: usize,
    /// Of those, how many were still busy at the deadline and were closed at
    /// once, dropping their running handlers.
    pub forced: usize,
}

impl Peer {
    /// Shuts the peer down gracefully: stops accepting (and dialing), lets
    /// every session finish the handlers already running and flush their
    /// replies, closes each session cleanly, and returns once all are closed
    /// or `deadline` has passed, in which case the sessions left are closed
    /// at once (their running handlers are dropped).
    ///
    /// The remote side of each session sees an orderly end of stream: its
    /// pulls that were already being handled get their replies, the others
    /// end with [`Error::ConnectionClosed`](crate::Error::ConnectionClosed).
    /// Pulls this peer itself is waiting on end the same way. See the
    /// [module docs](crate::graceful); [`Peer::close`] closes at once instead.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # #[tokio::main]
    /// # async fn main() {
    /// # let peer = teleport::Peer::new(teleport::PeerConfig::default(), teleport::Router::new());
    /// use std::time::Duration;
    /// let summary = peer.shutdown(Duration::from_secs(10)).await;
    /// assert_eq!(summary.forced, 0, "every handler finished in time");
    /// # }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe in that the peer keeps shutting down (no listener comes
    /// back, draining sessions finish), but sessions are then not closed at
    /// once when the deadline passes.
    pub async fn shutdown(&self, deadline: Duration) -> ShutdownSummary {
        self.stop_accepting();
        let until = tokio::time::Instant::now() + deadline;
        let mut summary = ShutdownSummary::default();
        let mut seen = HashSet::new();
        tracing::info!(sessions = self.session_count(), ?deadline, "shutting down");
        // Loop: a connection accepted or dialed just as accepting stopped
        // registers its session a moment later, and is drained too.
        loop {
            let sessions = self.sessions();
            if sessions.is_empty() {
                break;
            }
            for s in &sessions {
                if seen.insert(s.id()) {
                    s.start_drain();
                    summary.sessions += 1;
                }
            }
            let all = futures_util::future::join_all(sessions.iter().map(|s| s.closed()));
            if tokio::time::timeout_at(until, all).await.is_err() {
                break;
            }
        }
        let left = self.sessions();
        summary.forced = left.len();
        summary.drained = summary.sessions.saturating_sub(summary.forced);
        if !left.is_empty() {
            tracing::warn!(
                left = left.len(),
                ?deadline,
                "sessions still draining at the deadline; closing them now"
            );
            for s in &left {
                s.start_close();
            }
            let all = futures_util::future::join_all(left.iter().map(|s| s.closed()));
            if tokio::time::timeout(FORCED_CLOSE_GRACE, all).await.is_err() {
                tracing::warn!(
                    left = self.session_count(),
                    "sessions still flushing after the forced close; leaving them"
                );
            }
        }
        tracing::info!(?summary, "shut down");
        summary
    }

    /// Serves on a listening socket inherited from the process that started
    /// this one by [`Peer::restart`], if one matches `addr`, and otherwise
    /// binds `addr` as [`Peer::listen`] does. Returns the address served.
    ///
    /// An inherited listener matches when its address equals one `addr`
    /// resolves to, or, for port 0, when it has the same IP (or `addr`'s IP
    /// is unspecified): a server started on `127.0.0.1:0` finds the port its
    /// predecessor was given. Once every inherited listener is taken, the old
    /// process is told this one is serving (see [`notify_ready`]).
    ///
    /// # Errors
    ///
    /// [`PeerError::Listen`] if `addr` cannot be resolved or bound, or the
    /// inherited socket cannot be used; [`PeerError::ShuttingDown`].
    pub async fn listen_inherited_or(
        &self,
        addr: impl ToSocketAddrs + fmt::Display,
    ) -> Result<SocketAddr, PeerError> {
        let listen_err = |source| PeerError::Listen {
            addr: addr.to_string(),
            source,
        };
        let wanted: Vec<SocketAddr> = tokio::net::lookup_host(&addr)
            .await
            .map_err(listen_err)?
            .collect();
        let local = match inherited_listener(&wanted).map_err(listen_err)? {
            Some(listener) => {
                let local = self.serve(listener)?;
                tracing::info!(addr = %local, "serving on an inherited listener");
                local
            }
            None => self.listen(addr).await?,
        };
        // Also when this process inherited nothing to serve (its
        // predecessor had no listener): it serves now all the same.
        notify_ready_if_all_taken();
        Ok(local)
    }
}

/// Takes the inherited listening socket matching one of `wanted` (see
/// [`Peer::listen_inherited_or`]), ready for Tokio; `None` if this process
/// inherited none that matches. Use it to serve an inherited socket another
/// way, for instance with TLS.
///
/// # Errors
///
/// If the inherited socket cannot be registered with the runtime. Must be
/// called from within a Tokio runtime.
pub fn inherited_listener(wanted: &[SocketAddr]) -> io::Result<Option<tokio::net::TcpListener>> {
    #[cfg(unix)]
    {
        inherit::take(wanted)
    }
    #[cfg(not(unix))]
    {
        let _ = wanted;
        Ok(None)
    }
}

/// Whether this process was started by [`Peer::restart`] (it was handed
/// listening sockets).
pub fn is_restarted() -> bool {
    #[cfg(unix)]
    {
        inherit::is_restarted()
    }
    #[cfg(not(unix))]
    {
        false
    }
}

/// Tells the process that started this one by [`Peer::restart`] that this
/// one is serving, so the old one stops accepting and drains. Inherited
/// listeners not taken by then are closed (so clients are refused rather
/// than left waiting in a backlog no one accepts from).
///
/// [`Peer::listen_inherited_or`] calls it once every inherited listener is
/// taken; call it yourself when this process serves only some of them. Does
/// nothing in a process that was not restarted, or the second time.
pub fn notify_ready() {
    #[cfg(unix)]
    inherit::notify_ready();
}

fn notify_ready_if_all_taken() {
    #[cfg(unix)]
    inherit::notify_ready_if_all_taken();
}

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

/// What a successful [`Peer::restart`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Restarted {
    /// The process id of the new process, which now serves.
    pub pid: u32,
    /// How this peer's sessions were drained afterwards.
    pub shutdown: ShutdownSummary,
}

/// Why a [`Peer::restart`] did not happen. The peer goes on serving.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RestartError {
    /// The peer is already shutting down.
    #[error("the peer is shutting down")]
    ShuttingDown,
    /// Another restart of this process is under way.
    #[error("a restart is already in progress")]
    InProgress,
    /// The path of the running binary could not be found.
    #[error("cannot find the running binary: {0}")]
    Exe(#[source] io::Error),
    /// A listening socket could not be prepared for the new process.
    #[error("cannot prepare the listening sockets for the new process: {0}")]
    Sockets(#[source] io::Error),
    /// The new process could not be started.
    #[error("cannot start {exe}: {source}")]
    Spawn {
        /// The binary.
        exe: String,
        /// The operating system's error.
        source: io::Error,
    },
    /// The new process exited before it was serving.
    #[error("the new process {pid} exited before it was serving ({status})")]
    ChildExited {
        /// Its process id.
        pid: u32,
        /// How it exited.
        status: std::process::ExitStatus,
    },
    /// The new process did not say it was serving in time; it was killed.
    #[error("the new process {pid} was not serving after {timeout:?}; killed it")]
    NotReady {
        /// Its process id.
        pid: u32,
        /// How long it was given.
        timeout: Duration,
    },
}

/// The unix side: handing sockets over, and taking them.
#[cfg(unix)]
mod inherit {
    use std::ffi::OsString;
    use std::io;
    use std::net::SocketAddr;
    use std::os::fd::{AsFd, OwnedFd, RawFd};
    use std::os::unix::net::UnixDatagram;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Mutex, MutexGuard, OnceLock};
    use std::time::Duration;

    use command_fds::{CommandFdExt, FdMapping};

    use super::{READY_TIMEOUT, RestartError, Restarted};
    use crate::peer::Peer;

    pub(super) const ENV_FDS: &str = "TELEPORT_INHERIT_FDS";
    pub(super) const ENV_ADDRS: &str = "TELEPORT_INHERIT_ADDRS";
    pub(super) const ENV_READY_FD: &str = "TELEPORT_READY_FD";
    /// Inherited descriptors start here, after stdin, stdout and stderr.
    const FIRST_FD: RawFd = 3;
    const READY: &[u8] = b"ready";

    static RESTARTING: AtomicBool = AtomicBool::new(false);

    /// Clears [`RESTARTING`] when a restart attempt ends, however it ends.
    struct RestartGuard;

    impl Drop for RestartGuard {
        fn drop(&mut self) {
            RESTARTING.store(false, Ordering::SeqCst);
        }
    }

    impl Peer {
        /// Restarts the process without downtime (Go Teleport's graceful
        /// reboot): starts the running binary again with the same arguments,
        /// hands it this peer's listening sockets, waits until it serves on
        /// them (at most [`READY_TIMEOUT`]), then shuts this peer down as
        /// [`Peer::shutdown`] does, draining its sessions within `deadline`.
        /// The caller then lets the process exit.
        ///
        /// The new process must take its listeners with
        /// [`Peer::listen_inherited_or`]; see the
        /// [module docs](crate::graceful). Call it from a task of its own, not
        /// from a handler awaiting it (the drain waits for that handler);
        /// [`SignalHandle::raise`](super::SignalHandle::raise) does that for you.
        ///
        /// # Errors
        ///
        /// A [`RestartError`] when no new process took over; this peer then
        /// goes on serving as before.
        ///
        /// # Cancel safety
        ///
        /// Not cancel safe: dropping the future while it waits for the new
        /// process leaves that process running beside this one.
        pub async fn restart(&self, deadline: Duration) -> Result<Restarted, RestartError> {
            restart(self, deadline).await
        }
    }

    async fn restart(peer: &Peer, deadline: Duration) -> Result<Restarted, RestartError> {
        if peer.is_closing() {
            return Err(RestartError::ShuttingDown);
        }
        if RESTARTING.swap(true, Ordering::SeqCst) {
            return Err(RestartError::InProgress);
        }
        let _guard = RestartGuard;

        let listeners = peer.listeners();
        let mut mappings = Vec::with_capacity(listeners.len() + 1);
        let mut fds = Vec::with_capacity(listeners.len());
        let mut addrs = Vec::with_capacity(listeners.len());
        let mut child_fd = FIRST_FD;
        for listener in &listeners {
            let addr = listener.local_addr().map_err(RestartError::Sockets)?;
            let parent_fd: OwnedFd = listener
                .as_fd()
                .try_clone_to_owned()
                .map_err(RestartError::Sockets)?;
            mappings.push(FdMapping {
                parent_fd,
                child_fd,
            });
            fds.push(child_fd.to_string());
            addrs.push(addr.to_string());
            child_fd += 1;
        }
        let (ready_rx, ready_tx) = UnixDatagram::pair().map_err(RestartError::Sockets)?;
        let ready_fd = child_fd;
        mappings.push(FdMapping {
            parent_fd: ready_tx.into(),
            child_fd: ready_fd,
        });
        ready_rx
            .set_nonblocking(true)
            .map_err(RestartError::Sockets)?;
        let ready_rx =
            tokio::net::UnixDatagram::from_std(ready_rx).map_err(RestartError::Sockets)?;

        let exe = current_exe().map_err(RestartError::Exe)?;
        let mut command = tokio::process::Command::new(&exe);
        command
            .args(std::env::args_os().skip(1))
            .env(ENV_FDS, fds.join(","))
            .env(ENV_ADDRS, addrs.join(","))
            .env(ENV_READY_FD, ready_fd.to_string())
            .env("LISTEN_FDS", (mappings.len()).to_string())
            .env_remove("LISTEN_PID")
            .env_remove("LISTEN_FDNAMES")
            .env_remove("LISTEN_FDS_FIRST_FD");
        command
            .fd_mappings(mappings)
            .map_err(|e| RestartError::Sockets(io::Error::other(e)))?;
        let spawned = command.spawn();
        // Our copies of the handed-over descriptors close with the command.
        drop(command);
        let mut child = spawned.map_err(|source| RestartError::Spawn {
            exe: exe.display().to_string(),
            source,
        })?;
        let pid = child.id().unwrap_or_default();
        tracing::info!(pid, exe = %exe.display(), listeners = addrs.join(","), "started the new process; waiting until it serves");

        let wait_ready = async {
            let mut buf = [0u8; 16];
            loop {
                match ready_rx.recv(&mut buf).await {
                    Ok(n) if &buf[..n] == READY => return,
                    Ok(0) | Err(_) => std::future::pending::<()>().await,
                    Ok(_) => continue,
                }
            }
        };
        tokio::select! {
            () = wait_ready => {}
            status = child.wait() => {
                return Err(match status {
                    Ok(status) => RestartError::ChildExited { pid, status },
                    Err(source) => RestartError::Spawn { exe: exe.display().to_string(), source },
                });
            }
            () = tokio::time::sleep(READY_TIMEOUT) => {
                let _ = child.start_kill();
                let _ = child.wait().await;
                return Err(RestartError::NotReady { pid, timeout: READY_TIMEOUT });
            }
        }
        tracing::info!(pid, "the new process serves; draining this one");
        let shutdown = peer.shutdown(deadline).await;
        Ok(Restarted { pid, shutdown })
    }

    /// The running binary. After a deploy replaced it on disk, Linux names
    /// the old one "<path> (deleted)": start the new one at `<path>`.
    fn current_exe() -> io::Result<PathBuf> {
        let exe = std::env::current_exe()?;
        if !exe.exists() {
            let mut name: OsString = exe.clone().into_os_string();
            if let Some(s) = name.to_str() {
                if let Some(stripped) = s.strip_suffix(" (deleted)") {
                    name = stripped.into();
                    return Ok(PathBuf::from(name));
                }
            }
        }
        Ok(exe)
    }

    /// What this process inherited from the one that restarted into it.
    #[derive(Default)]
    struct Inherited {
        listeners: Vec<Option<std::net::TcpListener>>,
        ready: Option<UnixDatagram>,
    }

    fn state() -> MutexGuard<'static, Inherited> {
        static STATE: OnceLock<Mutex<Inherited>> = OnceLock::new();
        STATE
            .get_or_init(|| Mutex::new(from_env()))
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn parse_fd(s: &str) -> Option<usize> {
        let fd: RawFd = s.trim().parse().ok()?;
        usize::try_from(fd.checked_sub(FIRST_FD)?).ok()
    }

    /// Reads the environment once. `listenfd` checks that each descriptor
    /// is a socket of the right kind before taking ownership of it.
    fn from_env() -> Inherited {
        let Ok(fds) = std::env::var(ENV_FDS) else {
            return Inherited::default();
        };
        let mut taken = listenfd::ListenFd::from_env();
        let mut inherited = Inherited::default();
        for fd in fds.split(',').filter(|s| !s.trim().is_empty()) {
            let listener = parse_fd(fd).map(|idx| taken.take_tcp_listener(idx));
            match listener {
                Some(Ok(Some(listener))) => inherited.listeners.push(Some(listener)),
                Some(Err(e)) => {
                    tracing::warn!(fd, error = %e, "inherited descriptor is not a TCP listener; ignored")
                }
                _ => tracing::warn!(fd, "inherited descriptor is missing; ignored"),
            }
        }
        if let Some(idx) = std::env::var(ENV_READY_FD)
            .ok()
            .as_deref()
            .and_then(parse_fd)
        {
            match taken.take_unix_datagram(idx) {
                Ok(ready) => inherited.ready = ready,
                Err(e) => {
                    tracing::warn!(error = %e, "inherited readiness socket unusable; ignored")
                }
            }
        }
        tracing::debug!(
            listeners = inherited.listeners.len(),
            "inherited sockets from the previous process"
        );
        inherited
    }

    pub(super) fn is_restarted() -> bool {
        std::env::var_os(ENV_FDS).is_some()
    }

    pub(super) fn take(wanted: &[SocketAddr]) -> io::Result<Option<tokio::net::TcpListener>> {
        let mut state = state();
        let found = state.listeners.iter_mut().find(|slot| {
            slot.as_ref()
                .and_then(|l| l.local_addr().ok())
                .is_some_and(|have| wanted.iter().any(|want| matches(*want, have)))
        });
        let Some(listener) = found.and_then(Option::take) else {
            return Ok(None);
        };
        listener.set_nonblocking(true)?;
        tokio::net::TcpListener::from_std(listener).map(Some)
    }

    /// Whether an inherited listener on `have` serves a request for `want`.
    fn matches(want: SocketAddr, have: SocketAddr) -> bool {
        if want == have {
            return true;
        }
        let same_ip = want.ip() == have.ip()
            || (want.ip().is_unspecified() && want.is_ipv4() == have.is_ipv4());
        same_ip && (want.port() == 0 || want.port() == have.port())
    }

    pub(super) fn notify_ready_if_all_taken() {
        let all_taken = state().listeners.iter().all(Option::is_none);
        if all_taken {
            notify_ready();
        }
    }

    pub(super) fn notify_ready() {
        let mut state = state();
        let Some(ready) = state.ready.take() else {
            return;
        };
        let unused = state.listeners.iter_mut().filter_map(Option::take).count();
        if unused > 0 {
            tracing::warn!(
                unused,
                "closing inherited listeners this process does not serve"
            );
        }
        match ready.send(READY) {
            Ok(_) => tracing::info!("told the previous process that this one serves"),
            Err(e) => {
                tracing::warn!(error = %e, "cannot tell the previous process that this one serves")
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn a(s: &str) -> SocketAddr {
            s.parse().unwrap()
        }

        #[test]
        fn inherited_listener_matches_exact_or_port_zero_addresses() {
            assert!(matches(a("127.0.0.1:7000"), a("127.0.0.1:7000")));
            assert!(matches(a("127.0.0.1:0"), a("127.0.0.1:41234")));
            assert!(matches(a("0.0.0.0:7000"), a("0.0.0.0:7000")));
            assert!(matches(a("0.0.0.0:0"), a("0.0.0.0:5000")));
            assert!(!matches(a("127.0.0.1:7001"), a("127.0.0.1:7000")));
            assert!(!matches(a("127.0.0.2:0"), a("127.0.0.1:7000")));
            assert!(!matches(a("[::]:0"), a("127.0.0.1:7000")));
        }

        #[test]
        fn descriptor_numbers_map_to_listenfd_indexes() {
            assert_eq!(parse_fd("3"), Some(0));
            assert_eq!(parse_fd(" 5 "), Some(2));
            assert_eq!(parse_fd("2"), None);
            assert_eq!(parse_fd("x"), None);
        }
    }
}
