//! The new process's side of a restart: taking the listening sockets the
//! old process handed over (named in the environment, see the
//! [module docs](super)), and telling it once this one serves.

use std::fmt;
use std::io;
use std::net::SocketAddr;

use tokio::net::ToSocketAddrs;

use crate::error::PeerError;
use crate::peer::Peer;
#[cfg(unix)]
pub(super) use unix::{ENV_ADDRS, ENV_FDS, ENV_READY_FD, FIRST_FD, READY};

impl Peer {
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
        unix::take(wanted)
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
        unix::is_restarted()
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
    unix::notify_ready();
}

fn notify_ready_if_all_taken() {
    #[cfg(unix)]
    unix::notify_ready_if_all_taken();
}

/// The unix side: the environment both processes share, and taking the
/// inherited sockets.
#[cfg(unix)]
mod unix {
    use std::io;
    use std::net::SocketAddr;
    use std::os::fd::RawFd;
    use std::os::unix::net::UnixDatagram;
    use std::sync::{Mutex, MutexGuard, OnceLock};

    /// The inherited listeners' descriptor numbers, `3,4`.
    pub(in crate::graceful) const ENV_FDS: &str = "TELEPORT_INHERIT_FDS";
    /// Their addresses, for logs.
    pub(in crate::graceful) const ENV_ADDRS: &str = "TELEPORT_INHERIT_ADDRS";
    /// The datagram socket on which the new process says it serves.
    pub(in crate::graceful) const ENV_READY_FD: &str = "TELEPORT_READY_FD";
    /// Inherited descriptors start here, after stdin, stdout and stderr.
    pub(in crate::graceful) const FIRST_FD: RawFd = 3;
    /// What the new process sends once it serves.
    pub(in crate::graceful) const READY: &[u8] = b"ready";

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
