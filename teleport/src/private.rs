//! Items only generated code (the `service` macro) uses. Not a public API:
//! anything here may change in any release.
//!
//! The macro reaches everything through `::teleport::__private::...`, so the
//! code it generates works whatever the user has in scope.

pub use std::borrow::Cow;
pub use std::future::Future;
pub use std::marker::{Send, Sync};
pub use std::option::Option;
pub use std::result::Result;
pub use std::sync::Arc;

use crate::router::uri;
pub use crate::router::{Group, to_snake_case};
pub use crate::{CallOptions, Caller, Ctx, Error, Router, Session, Status};

/// A client's group prefix, normalized the way [`Router::group`] does (by
/// the same function): one leading slash, no trailing slash; `None` for no
/// prefix.
pub fn prefix(prefix: &str) -> Option<Arc<str>> {
    let prefix = uri::prefix(prefix);
    (!prefix.is_empty()).then(|| Arc::from(prefix))
}

/// A client's query string, without its leading `?`; `None` for none.
pub fn query(query: &str) -> Option<Arc<str>> {
    let query = uri::query(query);
    (!query.is_empty()).then(|| Arc::from(query))
}

/// The URI a client calls: the route's `path` (which starts with `/`) under
/// the client's prefix and with its query, if any. Borrowed, with no
/// allocation, without either.
pub fn uri(
    prefix: &Option<Arc<str>>,
    path: &'static str,
    query: &Option<Arc<str>>,
) -> Cow<'static, str> {
    match (prefix, query) {
        (None, None) => Cow::Borrowed(path),
        // Both are in shape for `compose`: the prefix was normalized when
        // the client was made (`prefix` above), and the macro checked that
        // `path` starts with one `/` and has no `//`.
        _ => Cow::Owned(uri::compose(
            prefix.as_deref().unwrap_or_default(),
            path,
            query.as_deref().unwrap_or_default(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_prefixes_match_router_groups() {
        let mut router = Router::new();
        for (group, client) in [("/v1", "/v1"), ("v1/", "v1"), ("/a/b/", "a/b"), ("", "/")] {
            router
                .group(group)
                .pull("/home/echo", |_: Ctx, (): ()| async { Ok::<_, Status>(()) });
            let expected = uri(&prefix(client), "/home/echo", &None);
            assert!(router.contains_pull(&expected), "{group:?} vs {expected:?}");
            router = Router::new();
        }
        assert_eq!(prefix("//"), None);
        assert!(matches!(uri(&None, "/x", &None), Cow::Borrowed("/x")));
        assert_eq!(uri(&None, "/x", &query("?a=1")), "/x?a=1");
        assert_eq!(uri(&prefix("/g"), "/x", &query("a=1&b=2")), "/g/x?a=1&b=2");
        assert_eq!(query("?"), None);
    }

    #[test]
    fn a_client_uri_is_its_prefix_and_path_joined_with_its_query() {
        for p in ["", "/", "v1", "/v1", "v1/", "//v1//", "/a/b/", "a/b"] {
            for q in ["", "?", "a=1", "?a=1&b=2"] {
                for path in ["/home/echo", "/x", "/legacy/ping/v2"] {
                    assert_eq!(
                        uri(&prefix(p), path, &query(q)),
                        uri::with_query(uri::join(p, path), uri::query(q)),
                        "prefix {p:?}, path {path:?}, query {q:?}"
                    );
                }
            }
        }
    }
}
