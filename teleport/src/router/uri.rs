//! The naming rule for routes: Go Teleport's snake case.
//!
//! Go derives a handler's URI from its controller and method names in snake
//! case: controller `Home`, method `Test` gives `/home/test`. The service
//! macro follows the same rule from trait and method names.

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

/// Joins a group prefix and a path into one route path with single slashes.
pub(crate) fn join(prefix: &str, path: &str) -> String {
    let prefix = prefix.trim_end_matches('/');
    let path = path.trim_start_matches('/');
    let mut out = String::with_capacity(prefix.len() + path.len() + 2);
    if !prefix.is_empty() && !prefix.starts_with('/') {
        out.push('/');
    }
    out.push_str(prefix);
    out.push('/');
    out.push_str(path);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_prefixes_with_single_slashes() {
        assert_eq!(join("", "/home/echo"), "/home/echo");
        assert_eq!(join("/group/", "/home"), "/group/home");
        assert_eq!(join("group", "home"), "/group/home");
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
