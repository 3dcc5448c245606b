//! Route rules: the first rule whose prefix, method and host match wins;
//! a request that no rule matches is left untouched.

use crate::config::{Route, RouteMatch};

/// The path without its query string, which prefixes never look at.
pub fn path_only(path: &[u8]) -> &[u8] {
    match path.iter().position(|&b| b == b'?' || b == b'#') {
        Some(i) => &path[..i],
        None => path,
    }
}

/// Host without port, for comparing with a rule's `hosts`.
fn host_only(authority: &[u8]) -> &[u8] {
    // An IPv6 literal keeps its brackets; the port follows the last ':'
    // only when that colon comes after any ']'.
    let end = match authority.iter().rposition(|&b| b == b':') {
        Some(i) if !authority[i..].contains(&b']') => i,
        _ => authority.len(),
    };
    &authority[..end]
}

impl RouteMatch {
    pub fn prefix_matches(&self, path: &[u8]) -> bool {
        path_only(path).starts_with(self.prefix.as_bytes())
    }

    pub fn matches(&self, path: &[u8], method: &[u8], authority: &[u8]) -> bool {
        if !self.prefix_matches(path) {
            return false;
        }
        if !self.methods.is_empty() && !self.methods.iter().any(|m| m.as_bytes() == method) {
            return false;
        }
        if !self.hosts.is_empty() {
            let host = host_only(authority);
            if !self
                .hosts
                .iter()
                .any(|h| h.as_bytes().eq_ignore_ascii_case(host))
            {
                return false;
            }
        }
        true
    }
}

/// Whether any rule could match `path`: lets the filter decide from `:path`
/// alone (one host call) that a request is none of its business.
pub fn any_prefix_matches(routes: &[Route], path: &[u8]) -> bool {
    routes.iter().any(|r| r.matcher.prefix_matches(path))
}

/// Index of the first rule that matches.
pub fn first_match(
    routes: &[Route],
    path: &[u8],
    method: &[u8],
    authority: &[u8],
) -> Option<usize> {
    routes
        .iter()
        .position(|r| r.matcher.matches(path, method, authority))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;

    fn routes() -> Vec<Route> {
        parse(
            br#"{"version":1,"routes":[
              {"name":"items-get","match":{"prefix":"/api/items/","methods":["GET","HEAD"]}},
              {"name":"items-host","match":{"prefix":"/api/items/","hosts":["a.example"]}},
              {"name":"api","match":{"prefix":"/api/"}}]}"#,
        )
        .unwrap()
        .routes
    }

    #[test]
    fn first_match_wins_and_respects_method_and_host() {
        let r = routes();
        let cases: &[(&str, &str, &str, Option<usize>)] = &[
            ("/api/items/1", "GET", "x", Some(0)),
            ("/api/items/1?q=1", "HEAD", "x", Some(0)),
            ("/api/items/1", "POST", "a.example", Some(1)),
            ("/api/items/1", "POST", "A.EXAMPLE:8080", Some(1)),
            ("/api/items/1", "POST", "b.example", Some(2)),
            ("/api/other", "GET", "x", Some(2)),
            ("/apix", "GET", "x", None),
            ("/", "GET", "x", None),
            ("/health?/api/", "GET", "x", None),
            ("", "GET", "x", None),
        ];
        for (path, method, host, want) in cases {
            assert_eq!(
                first_match(&r, path.as_bytes(), method.as_bytes(), host.as_bytes()),
                *want,
                "{method} {host}{path}"
            );
        }
        assert!(any_prefix_matches(&r, b"/api/x"));
        assert!(!any_prefix_matches(&r, b"/x?/api/"));
    }

    #[test]
    fn host_port_is_stripped_even_for_ipv6() {
        assert_eq!(host_only(b"a.example:80"), b"a.example");
        assert_eq!(host_only(b"[::1]:80"), b"[::1]");
        assert_eq!(host_only(b"[::1]"), b"[::1]");
        assert_eq!(host_only(b"a"), b"a");
    }
}
