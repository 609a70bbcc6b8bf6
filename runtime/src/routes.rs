//! HTTP route matching with Spin's rules.
//!
//! A route is a path of literal segments and `:name` parameters, optionally
//! ending in the wildcard `/...`, which matches the prefix itself and anything
//! below it. When several routes match a path the most specific wins: segment
//! by segment a literal beats a parameter, a parameter beats the wildcard, and
//! a route that ends exactly where the path ends beats one that goes on with a
//! wildcard. Two routes that are the same up to parameter names are duplicates
//! and rejected when the manifest loads. Private components have no route.

use std::cmp::Ordering;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
}

/// A parsed route such as `/api/users/:id` or `/static/...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutePattern {
    raw: String,
    segments: Vec<Segment>,
    wildcard: bool,
}

impl RoutePattern {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if !raw.starts_with('/') {
            return Err(format!("route `{raw}` must start with `/`"));
        }
        let mut parts: Vec<&str> = raw.split('/').skip(1).collect();
        let wildcard = parts.last() == Some(&"...");
        if wildcard {
            parts.pop();
        }
        // `/` and a trailing slash add an empty last part: not a segment.
        if parts.last() == Some(&"") {
            parts.pop();
        }
        let mut segments = Vec::with_capacity(parts.len());
        for part in parts {
            if part.is_empty() {
                return Err(format!("route `{raw}` has an empty segment"));
            }
            if part == "..." {
                return Err(format!("route `{raw}`: `...` may only end a route"));
            }
            if let Some(name) = part.strip_prefix(':') {
                if name.is_empty() || !name.chars().all(|c| c.is_alphanumeric() || c == '_') {
                    return Err(format!("route `{raw}`: bad parameter name `{part}`"));
                }
                segments.push(Segment::Param(name.to_owned()));
            } else {
                segments.push(Segment::Literal(part.to_owned()));
            }
        }
        Ok(Self {
            raw: raw.to_owned(),
            segments,
            wildcard,
        })
    }

    /// The route as written in the manifest.
    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// A form in which two routes that match the same paths are equal.
    pub fn canonical(&self) -> String {
        let mut s = String::new();
        for seg in &self.segments {
            s.push('/');
            match seg {
                Segment::Literal(l) => s.push_str(l),
                Segment::Param(_) => s.push(':'),
            }
        }
        if self.wildcard {
            s.push_str("/...");
        }
        if s.is_empty() { "/".into() } else { s }
    }

    /// The route without its wildcard: what Spin calls the component route.
    pub fn component_route(&self) -> String {
        let trimmed = self.raw.strip_suffix("/...").unwrap_or(&self.raw);
        if trimmed.is_empty() {
            String::new()
        } else {
            trimmed.to_owned()
        }
    }

    /// Matches a request path; returns the captured parameters and the path info
    /// (the part of the path the wildcard matched, `""` for exact routes).
    ///
    /// As Spin's router (routefinder) does, every leading and trailing slash
    /// is ignored (`//exact` and `/exact//` are `/exact`), inner slashes are
    /// kept (`/a//b` has an empty segment, which a parameter matches), and a
    /// wildcard's path info keeps the path as sent.
    pub fn matches(&self, path: &str) -> Option<RouteMatch> {
        if !path.starts_with('/') {
            return None;
        }
        let trimmed = path.trim_start_matches('/').trim_end_matches('/');
        let leading = path.len() - path.trim_start_matches('/').len();
        let parts: Vec<&str> = if trimmed.is_empty() {
            Vec::new()
        } else {
            trimmed.split('/').collect()
        };
        if parts.len() < self.segments.len()
            || (!self.wildcard && parts.len() != self.segments.len())
        {
            return None;
        }
        let mut params = Vec::new();
        for (seg, part) in self.segments.iter().zip(&parts) {
            match seg {
                Segment::Literal(l) if l == part => {}
                Segment::Literal(_) => return None,
                Segment::Param(name) => params.push((name.clone(), (*part).to_owned())),
            }
        }
        let path_info = if self.wildcard {
            // Past the leading slashes (all but the one the wildcard keeps)
            // and the matched segments with their slashes.
            let consumed: usize = leading.saturating_sub(1)
                + parts[..self.segments.len()]
                    .iter()
                    .map(|p| p.len() + 1)
                    .sum::<usize>();
            path.get(consumed..).unwrap_or_default().to_owned()
        } else {
            String::new()
        };
        Some(RouteMatch { params, path_info })
    }

    /// The route as Spin reports it in `spin-matched-route`: without a
    /// trailing slash, so the root route is the empty string.
    pub fn based_route(&self) -> &str {
        self.raw.strip_suffix('/').unwrap_or(&self.raw)
    }

    /// Specificity: literal > parameter per segment, exact end > wildcard.
    fn specificity(&self) -> Vec<u8> {
        let mut key: Vec<u8> = self
            .segments
            .iter()
            .map(|s| match s {
                Segment::Literal(_) => 2,
                Segment::Param(_) => 1,
            })
            .collect();
        key.push(if self.wildcard { 0 } else { 3 });
        key
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch {
    pub params: Vec<(String, String)>,
    pub path_info: String,
}

/// The routing table of an application: each entry routes to a component id.
#[derive(Debug, Clone, Default)]
pub struct Router {
    routes: Vec<(RoutePattern, String)>,
}

/// The outcome of routing one request.
#[derive(Debug, Clone)]
pub struct Routed<'a> {
    pub component: &'a str,
    pub pattern: &'a RoutePattern,
    pub matched: RouteMatch,
}

impl Router {
    /// Builds a router; duplicate routes are rejected (the manifest does it
    /// first with a better message, this keeps the router correct on its own).
    pub fn new(entries: impl IntoIterator<Item = (RoutePattern, String)>) -> Result<Self, String> {
        let mut routes: Vec<(RoutePattern, String)> = Vec::new();
        for (pattern, component) in entries {
            if let Some((dup, _)) = routes
                .iter()
                .find(|(p, _)| p.canonical() == pattern.canonical())
            {
                return Err(format!(
                    "duplicate route `{}` (same as `{}`)",
                    pattern.raw(),
                    dup.raw()
                ));
            }
            routes.push((pattern, component));
        }
        // Most specific first, so the first match wins.
        routes.sort_by(|(a, _), (b, _)| compare_specificity(b, a));
        Ok(Self { routes })
    }

    pub fn route(&self, path: &str) -> Option<Routed<'_>> {
        self.routes.iter().find_map(|(pattern, component)| {
            pattern.matches(path).map(|matched| Routed {
                component,
                pattern,
                matched,
            })
        })
    }

    pub fn entries(&self) -> impl Iterator<Item = (&RoutePattern, &str)> {
        self.routes.iter().map(|(p, c)| (p, c.as_str()))
    }
}

fn compare_specificity(a: &RoutePattern, b: &RoutePattern) -> Ordering {
    a.specificity().cmp(&b.specificity())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(routes: &[(&str, &str)]) -> Router {
        Router::new(routes.iter().map(|(r, c)| {
            (
                RoutePattern::parse(r).expect("valid route"),
                (*c).to_owned(),
            )
        }))
        .expect("no duplicates")
    }

    /// The table of Spin's matching rules: (routes, request path, expected
    /// component, expected path info, expected params).
    #[test]
    fn routes_requests_by_spins_rules() {
        let r = router(&[
            ("/", "root"),
            ("/...", "fallback"),
            ("/api/...", "api"),
            ("/api/users", "users"),
            ("/api/users/:id", "user"),
            ("/api/users/:id/...", "user-sub"),
            ("/api/users/me", "me"),
            ("/static/...", "static"),
            ("/a/:x/c", "param-mid"),
        ]);
        type Case<'a> = (&'a str, Option<&'a str>, &'a str, &'a [(&'a str, &'a str)]);
        let cases: &[Case] = &[
            ("/", Some("root"), "", &[]),
            ("/nothing/here", Some("fallback"), "/nothing/here", &[]),
            ("/api", Some("api"), "", &[]),
            ("/api/", Some("api"), "/", &[]),
            ("/api/other/thing", Some("api"), "/other/thing", &[]),
            ("/api/users", Some("users"), "", &[]),
            ("/api/users/", Some("users"), "", &[]),
            ("/api/users/42", Some("user"), "", &[("id", "42")]),
            ("/api/users/me", Some("me"), "", &[]),
            (
                "/api/users/42/posts/1",
                Some("user-sub"),
                "/posts/1",
                &[("id", "42")],
            ),
            ("/static/css/site.css", Some("static"), "/css/site.css", &[]),
            ("/a/b/c", Some("param-mid"), "", &[("x", "b")]),
            ("/a/b/d", Some("fallback"), "/a/b/d", &[]),
            // Spin ignores leading and trailing slashes, keeps inner ones.
            ("//api/users", Some("users"), "", &[]),
            ("/api/users//", Some("users"), "", &[]),
            ("//", Some("root"), "", &[]),
            ("/a//c", Some("param-mid"), "", &[("x", "")]),
            ("/api//x", Some("api"), "//x", &[]),
            ("/api/users//me", Some("user-sub"), "/me", &[("id", "")]),
        ];
        for (path, component, info, params) in cases {
            let routed = r.route(path);
            assert_eq!(
                routed.as_ref().map(|r| r.component),
                *component,
                "path {path}"
            );
            let routed = routed.expect("checked above");
            assert_eq!(routed.matched.path_info, *info, "path info of {path}");
            let want: Vec<(String, String)> = params
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect();
            assert_eq!(routed.matched.params, want, "params of {path}");
        }
    }

    #[test]
    fn no_route_matches_outside_the_table() {
        let r = router(&[("/api/...", "api"), ("/healthz", "probe")]);
        assert!(r.route("/healthzz").is_none());
        assert!(r.route("/apix").is_none());
        assert!(r.route("/").is_none());
    }

    #[test]
    fn rejects_duplicate_routes_even_with_other_parameter_names() {
        let a = RoutePattern::parse("/u/:id").expect("valid");
        let b = RoutePattern::parse("/u/:name").expect("valid");
        let err = Router::new([(a, "x".into()), (b, "y".into())]).expect_err("duplicate");
        assert!(err.contains("duplicate route `/u/:name`"), "{err}");
    }

    #[test]
    fn rejects_malformed_routes() {
        for bad in ["api", "/a//b", "/a/.../b", "/a/:"] {
            assert!(
                RoutePattern::parse(bad).is_err(),
                "{bad} should be rejected"
            );
        }
    }

    #[test]
    fn component_route_strips_the_wildcard() {
        let p = RoutePattern::parse("/static/...").expect("valid");
        assert_eq!(p.component_route(), "/static");
        assert_eq!(
            RoutePattern::parse("/...")
                .expect("valid")
                .component_route(),
            ""
        );
    }

    #[test]
    fn the_root_routes_matched_route_is_empty_as_in_spin() {
        let root = RoutePattern::parse("/").expect("valid");
        assert_eq!(root.based_route(), "");
        assert_eq!(root.component_route(), "/");
        let wild = RoutePattern::parse("/static/...").expect("valid");
        assert_eq!(wild.based_route(), "/static/...");
    }
}
