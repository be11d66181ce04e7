//! The old process's side of a zero-downtime restart: [`Peer::restart`]
//! starts the running binary again, hands it the listening sockets (see
//! [`inherit`](super::inherit) for the other side and the environment they
//! share), waits until it serves, then drains this peer.

use std::io;
use std::time::Duration;

#[cfg(unix)]
use std::ffi::OsString;
#[cfg(unix)]
use std::os::fd::{AsFd, OwnedFd};
#[cfg(unix)]
use std::os::unix::net::UnixDatagram;
#[cfg(unix)]
use std::path::PathBuf;
#[cfg(unix)]
use std::sync::atomic::{AtomicBool, Ordering};

#[cfg(unix)]
use command_fds::{CommandFdExt, FdMapping};

use super::ShutdownSummary;
#[cfg(unix)]
use super::inherit;
#[cfg(unix)]
use crate::peer::Peer;

/// How long [`Peer::restart`] waits for the new process to say it serves.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

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

/// Set while a restart is under way, so a second one waits its turn.
#[cfg(unix)]
static RESTARTING: AtomicBool = AtomicBool::new(false);

/// Clears [`RESTARTING`] when a restart attempt ends, however it ends.
#[cfg(unix)]
struct RestartGuard;

#[cfg(unix)]
impl Drop for RestartGuard {
    fn drop(&mut self) {
        RESTARTING.store(false, Ordering::SeqCst);
    }
}

#[cfg(unix)]
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

#[cfg(unix)]
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
    let mut child_fd = inherit::FIRST_FD;
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
    let ready_rx = tokio::net::UnixDatagram::from_std(ready_rx).map_err(RestartError::Sockets)?;

    let exe = current_exe().map_err(RestartError::Exe)?;
    let mut command = tokio::process::Command::new(&exe);
    command
        .args(std::env::args_os().skip(1))
        .env(inherit::ENV_FDS, fds.join(","))
        .env(inherit::ENV_ADDRS, addrs.join(","))
        .env(inherit::ENV_READY_FD, ready_fd.to_string())
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
                Ok(n) if &buf[..n] == inherit::READY => return,
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
#[cfg(unix)]
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
