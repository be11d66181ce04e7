//! Every rule about URIs, in one place.
//!
//! A URI on the wire is a path with an optional query:
//!
//! ```text
//!  /v1/home/add?x=1&y=2
//!  └──────┬───┘ └──┬──┘
//!       path     query (after the first `?`)
//!  └┬┘
//!  prefix (a group's, a client's or a proxy route's)
//! ```
//!
//! - **Names**: Go derives a handler's URI from its controller and method
//!   names in snake case: controller `Home`, method `Test` gives
//!   `/home/test` ([`to_snake_case`]). The service macro follows the same
//!   rule from trait and method names.
//! - **Prefixes** (router groups, the service clients' groups, proxy routes)
//!   are normalized the same way: one leading slash, no trailing slash, the
//!   empty string for none, so `v1`, `/v1/` and `/v1` are one prefix.
//! - **Joining** a prefix and a path gives single slashes between them.
//! - **Splitting**: the path is what routing, aliases and proxies look at;
//!   the query rides along untouched (a rewritten path keeps it).
//! - **Matching a prefix** is segment-wise: `/math` covers `/math` and
//!   `/math/add`, not `/mathematics`.
//!
//! The router, the alias plugins, the proxy, [`Header`](crate::Header) and
//! the code the service macro generates all call these functions.

/// Converts a Rust or Go identifier to snake case the way Go Teleport does:
/// an underscore before each upper-case letter that follows a lower-case
/// letter or digit, or that starts a new word after an acronym.
///
/// ```
/// use teleport::router::to_snake_case;
///
/// assert_eq!(to_snake_case("Home"), "home");
/// assert_eq!(to_snake_case("AddTwo"), "add_two");
/// assert_eq!(to_snake_case("HTTPServer"), "http_server");
/// assert_eq!(to_snake_case("already_snake"), "already_snake");
/// ```
pub fn to_snake_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_uppercase() {
            let prev = i.checked_sub(1).map(|p| chars[p]);
            let next = chars.get(i + 1);
            let boundary = match prev {
                Some(p) if p.is_lowercase() || p.is_ascii_digit() => true,
                Some(p) if p.is_uppercase() => next.is_some_and(|n| n.is_lowercase()),
                _ => false,
            };
            if boundary && !out.ends_with('_') {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// A prefix normalized: one leading slash, no trailing slash; empty for no
/// prefix (`""`, `"/"`, `"//"`).
pub(crate) fn prefix(prefix: &str) -> String {
    let trimmed = prefix.trim_matches('/');
    if trimmed.is_empty() {
        String::new()
    } else {
        let mut out = String::with_capacity(trimmed.len() + 1);
        out.push('/');
        out.push_str(trimmed);
        out
    }
}

/// Joins a prefix (normalized as by [`prefix`]) and a path into one route
/// path with single slashes between them.
pub(crate) fn join(prefix: &str, path: &str) -> String {
    let prefix = prefix.trim_matches('/');
    let path = path.trim_start_matches('/');
    let mut out = String::with_capacity(prefix.len() + path.len() + 2);
    if !prefix.is_empty() {
        out.push('/');
        out.push_str(prefix);
    }
    out.push('/');
    out.push_str(path);
    out
}

/// Splits a URI into its path and its query (after the first `?`; empty
/// if there is none).
pub(crate) fn split(uri: &str) -> (&str, &str) {
    // A plain scan: URIs are short, and `split_once`'s searcher cost about
    // 80 instructions per call more (this runs for every incoming call).
    match uri.bytes().position(|b| b == b'?') {
        Some(i) => (&uri[..i], &uri[i + 1..]),
        None => (uri, ""),
    }
}

/// A query as given by a user, without its leading `?`.
pub(crate) fn query(query: &str) -> &str {
    query.trim_start_matches('?')
}

/// `path` with `query` appended after a `?`, or `path` alone when the query
/// is empty.
pub(crate) fn with_query(mut path: String, query: &str) -> String {
    if !query.is_empty() {
        path.reserve(query.len() + 1);
        path.push('?');
        path.push_str(query);
    }
    path
}

/// The URI of a call: `path` under `prefix`, with `query`, for parts
/// already in shape (a prefix normalized by [`prefix`], a path that starts
/// with one `/` and has no `//`, a query without its `?`, as a generated
/// client holds them). Then [`join`] and [`with_query`] come down to a
/// concatenation, done in one allocation of the exact size, with no
/// trimming (a client composes each route's URI once, when it is given a
/// prefix or query).
pub(crate) fn compose(prefix: &str, path: &str, query: &str) -> String {
    debug_assert!(path.starts_with('/') && !path.contains("//"));
    debug_assert!(prefix.is_empty() || (prefix.starts_with('/') && !prefix.ends_with('/')));
    let mut uri = String::with_capacity(prefix.len() + path.len() + 1 + query.len());
    uri.push_str(prefix);
    uri.push_str(path);
    if !query.is_empty() {
        uri.push('?');
        uri.push_str(query);
    }
    uri
}

/// `uri` with its path replaced by `path`, keeping its query.
pub(crate) fn replace_path(uri: &str, path: &str) -> String {
    with_query(path.to_owned(), split(uri).1)
}

/// Whether `path` is `prefix` or lies under it, segment by segment. The
/// empty prefix and `/` cover every path.
pub(crate) fn under(path: &str, prefix: &str) -> bool {
    prefix.is_empty()
        || prefix == "/"
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The key under which case-insensitive routing finds a path: the path
/// with ASCII letters lower-cased.
pub(crate) fn case_key(path: &str) -> String {
    path.to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_prefixes_with_single_slashes() {
        assert_eq!(join("", "/home/echo"), "/home/echo");
        assert_eq!(join("/group/", "/home"), "/group/home");
        assert_eq!(join("group", "home"), "/group/home");
        assert_eq!(join("/a/b", ""), "/a/b/");
        assert_eq!(join("", ""), "/");
    }

    #[test]
    fn prefixes_are_normalized_the_same_however_they_are_written() {
        for p in ["v1", "/v1", "v1/", "/v1/", "//v1//"] {
            assert_eq!(prefix(p), "/v1", "{p:?}");
        }
        assert_eq!(prefix("/a/b/"), "/a/b");
        for p in ["", "/", "//"] {
            assert_eq!(prefix(p), "", "{p:?}");
        }
        // A normalized prefix joined with a path is the path under it.
        assert_eq!(join(&prefix("v1/"), "/home"), "/v1/home");
    }

    #[test]
    fn uris_split_at_the_first_question_mark() {
        assert_eq!(split("/home/add?x=1&y=2"), ("/home/add", "x=1&y=2"));
        assert_eq!(split("/home/add"), ("/home/add", ""));
        assert_eq!(split("/a?b?c"), ("/a", "b?c"));
        assert_eq!(split("/a?"), ("/a", ""));
        assert_eq!(split(""), ("", ""));
    }

    #[test]
    fn queries_are_appended_only_when_there_is_one() {
        assert_eq!(query("?a=1"), "a=1");
        assert_eq!(query("a=1"), "a=1");
        assert_eq!(query("?"), "");
        assert_eq!(with_query("/x".into(), ""), "/x");
        assert_eq!(with_query("/x".into(), "a=1"), "/x?a=1");
        assert_eq!(compose("", "/x", ""), "/x");
        assert_eq!(compose("/g", "/x", "a=1&b=2"), "/g/x?a=1&b=2");
    }

    #[test]
    fn a_replaced_path_keeps_the_query() {
        assert_eq!(replace_path("/a/b?x=1&y=2", "/c"), "/c?x=1&y=2");
        assert_eq!(replace_path("/a/b", "/c"), "/c");
    }

    #[test]
    fn prefixes_match_whole_segments() {
        assert!(under("/math", "/math"));
        assert!(under("/math/add", "/math"));
        assert!(!under("/mathematics", "/math"));
        assert!(!under("/mat", "/math"));
        assert!(under("/anything", "/"));
        assert!(under("/anything", ""));
    }

    #[test]
    fn case_keys_fold_ascii_letters_only() {
        assert_eq!(case_key("/Home/Echo"), "/home/echo");
        assert_eq!(case_key("/Ä"), "/Ä");
    }

    #[test]
    fn snake_case_matches_go_names() {
        assert_eq!(to_snake_case("Test"), "test");
        assert_eq!(to_snake_case("PbTest"), "pb_test");
        assert_eq!(to_snake_case("echo"), "echo");
        assert_eq!(to_snake_case("Div2"), "div2");
        assert_eq!(to_snake_case("ToJSON"), "to_json");
    }
}
