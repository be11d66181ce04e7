//! URI aliases and case-insensitive routing.
//!
//! Both plugins rewrite the path of incoming pulls and pushes in
//! `after_read_header`, before routing, and keep the query. They work as
//! peer plugins only: group and route plugins run after routing.
//!
//! - [`Alias`] maps chosen paths to others (an old name kept for old
//!   clients, a short name).
//! - [`CaseInsensitive`] routes a path to the registered route that differs
//!   only in ASCII case (`/Home/Echo` to `/home/echo`). It learns the routes
//!   from the peer's router when the peer is built, so give each peer its
//!   own instance.
//!
//! Aliases match the path exactly. A reply carries the rewritten URI.
//!
//! ```
//! use teleport::plugin::alias::{Alias, CaseInsensitive};
//! use teleport::{Ctx, PeerConfig, Router, Status};
//!
//! let mut router = Router::new();
//! router.pull("/home/echo", |_: Ctx, s: String| async move { Ok::<_, Status>(s) });
//! let config = PeerConfig::default()
//!     .plugin(Alias::new().alias("/echo", "/home/echo"))
//!     .plugin(CaseInsensitive::new());
//! # let _ = (config, router);
//! ```

use std::collections::HashMap;
use std::sync::RwLock;

use super::Plugin;
use crate::frame::{Header, Kind};
use crate::router::uri;
use crate::session::Session;
use crate::status::Status;

/// Routes chosen paths as other paths. See the [module docs](self).
#[derive(Clone, Debug, Default)]
pub struct Alias {
    map: HashMap<String, String>,
}

impl Alias {
    /// No aliases yet.
    pub fn new() -> Alias {
        Alias::default()
    }

    /// Routes pulls and pushes to the path `from` as if they were to `to`.
    #[must_use]
    pub fn alias(mut self, from: impl Into<String>, to: impl Into<String>) -> Alias {
        self.map.insert(from.into(), to.into());
        self
    }
}

/// Replaces the path of `header.uri`, keeping its query.
fn set_path(header: &mut Header, path: &str) {
    header.uri = uri::replace_path(&header.uri, path).into();
}

fn is_call(header: &Header) -> bool {
    matches!(header.kind, Kind::Pull | Kind::Push)
}

impl Plugin for Alias {
    fn name(&self) -> &str {
        "alias"
    }

    fn after_read_header(&self, _session: &Session, header: &mut Header) -> Result<(), Status> {
        if is_call(header) {
            if let Some(to) = self.map.get(header.path()) {
                let to = to.clone();
                set_path(header, &to);
            }
        }
        Ok(())
    }
}

/// Routes paths regardless of ASCII case. See the [module docs](self).
#[derive(Debug, Default)]
pub struct CaseInsensitive {
    /// Lower-cased path to the path as registered.
    routes: RwLock<HashMap<String, String>>,
}

impl CaseInsensitive {
    /// A plugin that knows no routes yet; it learns them when the peer is built.
    pub fn new() -> CaseInsensitive {
        CaseInsensitive::default()
    }
}

impl Plugin for CaseInsensitive {
    fn name(&self) -> &str {
        "case-insensitive"
    }

    fn after_register(&self, _kind: Kind, path: &str) {
        let mut routes = self.routes.write().unwrap_or_else(|e| e.into_inner());
        let key = uri::case_key(path);
        match routes.get(&key) {
            Some(existing) if existing != path => tracing::warn!(
                target: "teleport::plugin",
                registered = %existing,
                ignored = %path,
                "two routes differ only in case; case-insensitive routing picks the first"
            ),
            Some(_) => {}
            None => {
                routes.insert(key, path.to_owned());
            }
        }
    }

    fn after_read_header(&self, _session: &Session, header: &mut Header) -> Result<(), Status> {
        if !is_call(header) {
            return Ok(());
        }
        let routes = self.routes.read().unwrap_or_else(|e| e.into_inner());
        let path = header.path();
        if let Some(registered) = routes.get(&uri::case_key(path)) {
            if registered != path {
                let registered = registered.clone();
                drop(routes);
                set_path(header, &registered);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_path_keeps_the_query() {
        let mut h = Header::new(Kind::Pull, 1, "/a/b?x=1&y=2");
        set_path(&mut h, "/c");
        assert_eq!(h.uri, "/c?x=1&y=2");
        let mut h = Header::new(Kind::Pull, 1, "/a/b");
        set_path(&mut h, "/c");
        assert_eq!(h.uri, "/c");
    }
}
