//! Which action each route counts against: one table, like the admin
//! routes' permissions. A route not listed here is not limited (static
//! files, probes, metrics).

/// The action `method path` counts against.
pub fn action_for(method: &http::Method, path: &str) -> Option<&'static str> {
    let get = method == http::Method::GET || method == http::Method::HEAD;
    if let Some(rest) = path.strip_prefix("/auth/") {
        // Starting a sign-in and coming back from the provider are what a
        // credential-stuffing or state-guessing attack repeats.
        return Some(if rest.ends_with("/login") || rest.ends_with("/callback") {
            "sign_in"
        } else {
            "api"
        });
    }
    if path == "/bootstrap" {
        return Some(if get { "page" } else { "bootstrap" });
    }
    // `/news/...`: the homepage's feed forms, the same writes as `/api/feeds`.
    if path.starts_with("/api/") || path.starts_with("/admin/api/") || path.starts_with("/news/") {
        return Some("api");
    }
    if path == "/" && get {
        return Some("page");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_map_to_their_actions() {
        let get = http::Method::GET;
        let post = http::Method::POST;
        assert_eq!(action_for(&get, "/auth/google/login"), Some("sign_in"));
        assert_eq!(action_for(&post, "/auth/apple/callback"), Some("sign_in"));
        assert_eq!(action_for(&post, "/auth/refresh"), Some("api"));
        assert_eq!(action_for(&post, "/bootstrap"), Some("bootstrap"));
        assert_eq!(action_for(&get, "/bootstrap"), Some("page"));
        assert_eq!(
            action_for(&http::Method::PUT, "/api/preferences"),
            Some("api")
        );
        assert_eq!(action_for(&get, "/admin/api/flags"), Some("api"));
        assert_eq!(action_for(&get, "/"), Some("page"));
        assert_eq!(action_for(&get, "/static/site.css"), None);
        assert_eq!(action_for(&get, "/healthz"), None);
    }
}
