//! Running the hooks: the stage runners the connection task calls for
//! every message, and the session hooks the peer runs on every new
//! session. The hooks themselves, their order and what a failure means are
//! in the [module docs](super) and on [`Plugin`].

use std::sync::Arc;

use super::{Plugin, Plugins, SessionRefused, failed};
use crate::frame::{Frame, Header, Kind};
use crate::session::Session;
use crate::status::Status;

/// The plugins that see one incoming call: the peer's, then the route's.
pub(crate) fn chain<'a>(
    peer: &'a Plugins,
    route: &'a Plugins,
) -> impl Iterator<Item = &'a Arc<dyn Plugin>> + 'a {
    peer.iter().chain(route.iter())
}

/// A hook's refusal: which plugin said no, and with what status.
pub(crate) struct Refusal {
    pub(crate) plugin: String,
    pub(crate) stage: &'static str,
    pub(crate) status: Status,
}

impl Refusal {
    fn new(plugin: &Arc<dyn Plugin>, stage: &'static str, status: Status) -> Refusal {
        // A "success" status cannot stop a message; read it as a plugin failure.
        let status = if (200..300).contains(&status.code()) {
            failed(status.text().to_owned())
        } else {
            status
        };
        Refusal {
            plugin: plugin.name().to_owned(),
            stage,
            status,
        }
    }
}

/// Runs the peer plugins' header hooks of an incoming frame.
pub(crate) fn read_header(
    peer: &Plugins,
    session: &Session,
    header: &mut Header,
) -> Result<(), Refusal> {
    for p in peer.iter() {
        p.before_read_header(session)
            .map_err(|s| Refusal::new(p, "before_read_header", s))?;
    }
    for p in peer.iter() {
        p.after_read_header(session, header)
            .map_err(|s| Refusal::new(p, "after_read_header", s))?;
    }
    Ok(())
}

/// Runs the hooks of a routed frame: the route's `after_read_header`, then
/// everyone's body hooks.
pub(crate) fn read_routed(
    peer: &Plugins,
    route: &Plugins,
    session: &Session,
    frame: &mut Frame,
) -> Result<(), Refusal> {
    for p in route.iter() {
        p.after_read_header(session, &mut frame.header)
            .map_err(|s| Refusal::new(p, "after_read_header", s))?;
    }
    for p in chain(peer, route) {
        p.before_read_body(session, &frame.header)
            .map_err(|s| Refusal::new(p, "before_read_body", s))?;
    }
    for p in chain(peer, route) {
        p.after_read_body(session, frame)
            .map_err(|s| Refusal::new(p, "after_read_body", s))?;
    }
    Ok(())
}

/// Runs `before_write_reply` of the chain; on a refusal the reply becomes a
/// body-less one with the refusal's status.
pub(crate) fn before_write_reply(
    peer: &Plugins,
    route: &Plugins,
    session: &Session,
    frame: &mut Frame,
) {
    for p in chain(peer, route) {
        if let Err(status) = p.before_write_reply(session, frame) {
            let refusal = Refusal::new(p, "before_write_reply", status);
            refusal.log(session, &frame.header);
            frame.header.status_code = refusal.status.code();
            frame.header.status = refusal.status.text().into();
            frame.body = bytes::Bytes::new();
            return;
        }
    }
}

/// Runs the `before_write_pull` or `before_write_push` hooks of the peer
/// plugins on the caller's task.
pub(crate) fn before_write(
    peer: &Plugins,
    session: &Session,
    frame: &mut Frame,
) -> Result<(), Status> {
    for p in peer.iter() {
        let result = match frame.header.kind {
            Kind::Pull => p
                .before_write_pull(session, frame)
                .map_err(|s| Refusal::new(p, "before_write_pull", s)),
            _ => p
                .before_write_push(session, frame)
                .map_err(|s| Refusal::new(p, "before_write_push", s)),
        };
        if let Err(refusal) = result {
            refusal.log(session, &frame.header);
            return Err(refusal.status);
        }
    }
    Ok(())
}

/// Runs the `after_write_pull` or `after_write_push` hooks.
pub(crate) fn after_write(peer: &Plugins, session: &Session, header: &Header) {
    for p in peer.iter() {
        match header.kind {
            Kind::Pull => p.after_write_pull(session, header),
            _ => p.after_write_push(session, header),
        }
    }
}

impl Refusal {
    pub(crate) fn log(&self, session: &Session, header: &Header) {
        tracing::debug!(
            target: "teleport::plugin",
            session = session.id(),
            remote = %session.remote_addr(),
            plugin = %self.plugin,
            stage = self.stage,
            uri = %header.uri,
            seq = header.seq,
            status = %self.status,
            "plugin stopped the message"
        );
    }
}

/// Which session hook to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    Dialed,
    Accepted,
}

impl Side {
    fn stage(self) -> &'static str {
        match self {
            Side::Dialed => "after_dial",
            Side::Accepted => "after_accept",
        }
    }
}

/// Runs the peer plugins' session hooks in order, on a task of their own so
/// that a panicking hook cannot leave the session waiting for them. On
/// success the session's held-back incoming calls are released; on failure
/// (or a panic) the session is closed with the refusal as its reason.
pub(crate) async fn run_session_hooks(
    peer: Plugins,
    session: Session,
    side: Side,
) -> Result<(), SessionRefused> {
    let task = tokio::spawn(session_hooks(peer, session.clone(), side));
    let refusal = match task.await {
        Ok(Ok(())) => {
            session.open_gate();
            return Ok(());
        }
        Ok(Err(refusal)) => refusal,
        Err(e) => SessionRefused {
            plugin: String::from("<unknown>"),
            stage: side.stage(),
            status: Status::internal(format!("a plugin hook failed: {e}")),
        },
    };
    tracing::warn!(
        target: "teleport::plugin",
        session = session.id(),
        remote = %session.remote_addr(),
        reason = %refusal,
        "closing the session"
    );
    session.close_because(refusal.to_string());
    Err(refusal)
}

async fn session_hooks(peer: Plugins, session: Session, side: Side) -> Result<(), SessionRefused> {
    for p in peer.iter() {
        let result = match side {
            Side::Dialed => p.after_dial(&session).await,
            Side::Accepted => p.after_accept(&session).await,
        };
        if let Err(status) = result {
            return Err(SessionRefused {
                plugin: p.name().to_owned(),
                stage: side.stage(),
                status,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::tests::Named;
    use crate::status::code;

    #[test]
    fn a_refusal_with_a_success_status_becomes_failed_plugin() {
        let p: Arc<dyn Plugin> = Arc::new(Named("p"));
        let r = Refusal::new(&p, "after_read_header", Status::ok());
        assert_eq!(r.status.code(), code::FAILED_PLUGIN);
        let r = Refusal::new(&p, "after_read_header", Status::unauthorized());
        assert_eq!(r.status.code(), code::UNAUTHORIZED);
        assert_eq!(r.plugin, "p");
    }
}
