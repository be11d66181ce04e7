//! Items only generated code (the `service` macro) uses. Not a public API:
//! anything here may change in any release.
//!
//! The macro reaches everything through `::teleport::__private::...`, so the
//! code it generates works whatever the user has in scope.

pub use std::boxed::Box;
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

/// The URIs of a client's routes (`paths`, in the order the client
/// indexes them) under its prefix and with its query: composed once, when
/// the client is made `with_prefix` or `with_query`, so that its calls pay
/// no allocation for their URIs. `None` without either: then a call's URI
/// is its route's path.
pub fn uris(
    prefix: &Option<Arc<str>>,
    query: &Option<Arc<str>>,
    paths: &[&'static str],
) -> Option<Arc<[Box<str>]>> {
    if prefix.is_none() && query.is_none() {
        return None;
    }
    // Both are in shape for `compose`: the prefix was normalized by
    // `prefix` above, and the macro checked that every path starts with one
    // `/` and has no `//`.
    let (prefix, query) = (
        prefix.as_deref().unwrap_or_default(),
        query.as_deref().unwrap_or_default(),
    );
    Some(
        paths
            .iter()
            .map(|path| uri::compose(prefix, path, query).into_boxed_str())
            .collect(),
    )
}

/// The URI the client's `index`-th route calls: from its `uris`, else the
/// route's `path`.
#[inline]
pub fn uri_at<'a>(uris: &'a Option<Arc<[Box<str>]>>, index: usize, path: &'static str) -> &'a str {
    match uris {
        Some(uris) => &uris[index],
        None => path,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The URI of the one route `path` of a client with `prefix` and `query`.
    fn one(prefix: &Option<Arc<str>>, path: &'static str, query: &Option<Arc<str>>) -> String {
        let uris = uris(prefix, query, &["/other", path]);
        uri_at(&uris, 1, path).to_owned()
    }

    #[test]
    fn client_prefixes_match_router_groups() {
        let mut router = Router::new();
        for (group, client) in [("/v1", "/v1"), ("v1/", "v1"), ("/a/b/", "a/b"), ("", "/")] {
            router
                .group(group)
                .pull("/home/echo", |_: Ctx, (): ()| async { Ok::<_, Status>(()) });
            let expected = one(&prefix(client), "/home/echo", &None);
            assert!(router.contains_pull(&expected), "{group:?} vs {expected:?}");
            router = Router::new();
        }
        assert_eq!(prefix("//"), None);
        assert!(
            uris(&None, &None, &["/x"]).is_none(),
            "a plain client composes nothing"
        );
        assert_eq!(one(&None, "/x", &None), "/x");
        assert_eq!(one(&None, "/x", &query("?a=1")), "/x?a=1");
        assert_eq!(one(&prefix("/g"), "/x", &query("a=1&b=2")), "/g/x?a=1&b=2");
        assert_eq!(query("?"), None);
    }

    #[test]
    fn a_client_uri_is_its_prefix_and_path_joined_with_its_query() {
        for p in ["", "/", "v1", "/v1", "v1/", "//v1//", "/a/b/", "a/b"] {
            for q in ["", "?", "a=1", "?a=1&b=2"] {
                let paths = ["/home/echo", "/x", "/legacy/ping/v2"];
                let uris = uris(&prefix(p), &query(q), &paths);
                for (i, path) in paths.into_iter().enumerate() {
                    assert_eq!(
                        uri_at(&uris, i, path),
                        uri::with_query(uri::join(p, path), uri::query(q)),
                        "prefix {p:?}, path {path:?}, query {q:?}"
                    );
                }
            }
        }
    }
}
