//! Route derivation: the names of the generated items and the URI of each
//! method, following Go Teleport's naming rule.
//!
//! Go names a handler `/{group}/{controller}/{method}` in snake case. The
//! macro does the same with the trait and method names: trait `Home`,
//! method `echo`, no group gives `/home/echo`. The snake-case rule is the
//! runtime's (`teleport::router::to_snake_case`); the macro cannot call the
//! runtime, so it keeps a copy, and the tests below pin both to the same
//! examples.

use proc_macro2::Ident;
use quote::format_ident;
use syn::ext::IdentExt;

/// Converts an identifier to snake case the way Go Teleport does: an
/// underscore before each upper-case letter that follows a lower-case letter
/// or digit, or that starts a new word after an acronym.
pub(crate) fn to_snake_case(name: &str) -> String {
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

/// Normalizes a group prefix: one leading slash, no trailing slash; empty
/// (or `/`) means no group.
pub(crate) fn normalize_group(group: &str) -> String {
    let trimmed = group.trim_matches('/');
    if trimmed.is_empty() {
        String::new()
    } else {
        format!("/{trimmed}")
    }
}

/// The derived URI of a method: `{group}/{trait snake}/{method snake}`.
pub(crate) fn route(group: &str, service: &Ident, method: &Ident) -> String {
    format!(
        "{}/{}/{}",
        normalize_group(group),
        to_snake_case(&service.unraw().to_string()),
        to_snake_case(&method.unraw().to_string())
    )
}

/// What is wrong with a URI given in an attribute, if anything.
pub(crate) fn uri_problem(uri: &str) -> Option<&'static str> {
    if !uri.starts_with('/') {
        Some("must start with `/`")
    } else if uri.len() == 1 {
        Some("must name a path, not just `/`")
    } else if uri.ends_with('/') {
        Some("must not end with `/`")
    } else if uri.contains("//") {
        Some("must not contain an empty segment (`//`)")
    } else if uri.contains(['?', '#']) {
        Some("must be a path only: the query is not part of a route")
    } else if uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Some("must not contain whitespace or control characters")
    } else {
        None
    }
}

/// What is wrong with a group prefix given in an attribute, if anything.
pub(crate) fn group_problem(group: &str) -> Option<&'static str> {
    let normalized = normalize_group(group);
    if normalized.is_empty() {
        Some("is empty: leave `group` out for no prefix")
    } else {
        uri_problem(&normalized)
    }
}

/// `{Trait}Client`.
pub(crate) fn client_ident(service: &Ident) -> Ident {
    format_ident!("{}Client", service.unraw())
}

/// `{Trait}Server`.
pub(crate) fn server_ident(service: &Ident) -> Ident {
    format_ident!("{}Server", service.unraw())
}

/// The inherent methods of the generated client; a service method with one
/// of these names would collide with them.
pub(crate) const CLIENT_RESERVED: &[&str] = &[
    "new",
    "with_options",
    "with_prefix",
    "with_query",
    "session",
    "caller",
    "options",
];

#[cfg(test)]
mod tests {
    use super::*;
    use proc_macro2::Span;

    fn ident(s: &str) -> Ident {
        syn::parse_str::<Ident>(s).unwrap_or_else(|_| Ident::new(s, Span::call_site()))
    }

    #[test]
    fn snake_case_matches_the_runtime_and_go_names() {
        // The same cases as teleport::router::uri's tests.
        assert_eq!(to_snake_case("Home"), "home");
        assert_eq!(to_snake_case("AddTwo"), "add_two");
        assert_eq!(to_snake_case("HTTPServer"), "http_server");
        assert_eq!(to_snake_case("already_snake"), "already_snake");
        assert_eq!(to_snake_case("Test"), "test");
        assert_eq!(to_snake_case("PbTest"), "pb_test");
        assert_eq!(to_snake_case("Div2"), "div2");
        assert_eq!(to_snake_case("ToJSON"), "to_json");
    }

    #[test]
    fn routes_join_group_trait_and_method() {
        assert_eq!(route("", &ident("Home"), &ident("echo")), "/home/echo");
        assert_eq!(
            route("/group", &ident("Home"), &ident("test")),
            "/group/home/test"
        );
        assert_eq!(
            route("group/", &ident("Home"), &ident("test")),
            "/group/home/test"
        );
        assert_eq!(
            route("/a/b/", &ident("MathOps"), &ident("add_two")),
            "/a/b/math_ops/add_two"
        );
        assert_eq!(
            route("", &ident("r#Type"), &ident("r#match")),
            "/type/match"
        );
    }

    #[test]
    fn groups_are_normalized_to_one_leading_slash() {
        assert_eq!(normalize_group(""), "");
        assert_eq!(normalize_group("/"), "");
        assert_eq!(normalize_group("v1"), "/v1");
        assert_eq!(normalize_group("/v1/"), "/v1");
    }

    #[test]
    fn bad_uris_are_explained() {
        assert_eq!(uri_problem("/ok/path"), None);
        assert_eq!(uri_problem("no/slash"), Some("must start with `/`"));
        assert_eq!(uri_problem("/"), Some("must name a path, not just `/`"));
        assert_eq!(uri_problem("/a/"), Some("must not end with `/`"));
        assert_eq!(
            uri_problem("/a//b"),
            Some("must not contain an empty segment (`//`)")
        );
        assert!(uri_problem("/a?x=1").unwrap().contains("query"));
        assert!(uri_problem("/a b").unwrap().contains("whitespace"));
        assert_eq!(group_problem("v1"), None);
        assert!(group_problem("/").unwrap().contains("leave `group` out"));
        assert!(group_problem("/a?b").is_some());
    }

    #[test]
    fn generated_type_names_follow_the_trait() {
        assert_eq!(client_ident(&ident("Home")).to_string(), "HomeClient");
        assert_eq!(server_ident(&ident("r#Home")).to_string(), "HomeServer");
    }
}
