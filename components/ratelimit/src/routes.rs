//! Which action each route counts against: one table, like the admin
//! routes' permissions. A route not listed here is not limited (static
//! files, probes, metrics).
//!
//! The action is chosen from the route Spin matched (`spin-matched-route`)
//! and the path below it (`spin-path-info`) cut into segments the way the
//! handlers' own routers cut it ([`village_platform::web::path_segments`]):
//! a path the router accepts is counted as the route it reaches, trailing
//! or doubled slashes and all — not by a second copy of the path rules.

use village_platform::web::path_segments;

/// The action a request to `route` (a manifest route such as
/// `/auth/...`), with `path_info` below it, counts against.
pub fn action_for(method: &http::Method, route: &str, path_info: &str) -> Option<&'static str> {
    let get = method == http::Method::GET || method == http::Method::HEAD;
    let route = route.trim_end_matches("/...").trim_end_matches('/');
    match route {
        // Starting a sign-in and coming back from the provider are what a
        // credential-stuffing or state-guessing attack repeats.
        "/auth" => Some(match path_segments(path_info).last() {
            Some(&("login" | "callback")) => "sign_in",
            _ => "api",
        }),
        "/bootstrap" => Some(if get { "page" } else { "bootstrap" }),
        // `/news/...`: the homepage's feed forms, the same writes as `/api/feeds`.
        "/news" => Some("api"),
        // Posting a listing (the API or the page's form) is what spam repeats.
        "/api/marketplace" if !get && path_segments(path_info) == ["listings"] => {
            Some("listing_post")
        }
        "/marketplace" => Some(match (get, path_segments(path_info).as_slice()) {
            (false, ["new"]) => "listing_post",
            // Thumbnails: a results page loads up to 50, and they are not
            // page views (no rule by default; ops may add one).
            (true, ["images", ..]) => "image",
            (true, _) => "page",
            (false, _) => "api",
        }),
        // Submitting a site and voting (the API or the pages' forms).
        "/api/good-sites" | "/good-sites" if !get => {
            Some(match path_segments(path_info).as_slice() {
                ["sites"] | ["submit"] => "site_submission",
                ["sites", _, "vote"] => "vote",
                _ => "api",
            })
        }
        "/good-sites" => Some(match path_segments(path_info).as_slice() {
            // Thumbnails: a list shows up to 30 (no rule by default).
            ["screenshots", ..] => "image",
            _ => "page",
        }),
        // A scraper following tracked links is what this stops.
        "/track/click" => Some("click"),
        r if r.starts_with("/api/") || r.starts_with("/admin/api/") => Some("api"),
        // Spin reports the root route as an empty matched route.
        "" if get => Some("page"),
        _ => None,
    }
}

/// [`action_for`] from the request's Spin routing headers.
pub fn action_of(req: &http::Request<Vec<u8>>) -> Option<&'static str> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    };
    action_for(
        req.method(),
        header("spin-matched-route"),
        header("spin-path-info"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posting_a_listing_counts_against_listing_post() {
        let get = http::Method::GET;
        let post = http::Method::POST;
        let put = http::Method::PUT;
        assert_eq!(
            action_for(&post, "/api/marketplace/...", "/listings"),
            Some("listing_post")
        );
        assert_eq!(
            action_for(&post, "/marketplace/...", "/new"),
            Some("listing_post")
        );
        assert_eq!(
            action_for(&put, "/api/marketplace/...", "/listings/4"),
            Some("api")
        );
        assert_eq!(
            action_for(&post, "/api/marketplace/...", "/listings/4/publish"),
            Some("api")
        );
        assert_eq!(
            action_for(&get, "/api/marketplace/...", "/listings"),
            Some("api")
        );
        assert_eq!(action_for(&get, "/marketplace", ""), Some("page"));
        assert_eq!(
            action_for(&post, "/marketplace/...", "/listings/4/sold"),
            Some("api")
        );
        assert_eq!(
            action_for(&get, "/marketplace/...", "/images/listings/4/a.png"),
            Some("image")
        );
    }

    #[test]
    fn routes_map_to_their_actions() {
        let get = http::Method::GET;
        let post = http::Method::POST;
        assert_eq!(
            action_for(&get, "/auth/...", "/google/login"),
            Some("sign_in")
        );
        assert_eq!(
            action_for(&post, "/auth/...", "/apple/callback"),
            Some("sign_in")
        );
        assert_eq!(action_for(&post, "/auth/...", "/refresh"), Some("api"));
        assert_eq!(action_for(&post, "/bootstrap", ""), Some("bootstrap"));
        assert_eq!(action_for(&get, "/bootstrap", ""), Some("page"));
        assert_eq!(
            action_for(&http::Method::PUT, "/api/preferences", ""),
            Some("api")
        );
        assert_eq!(action_for(&get, "/admin/api/flags/...", "/x"), Some("api"));
        assert_eq!(action_for(&post, "/news/...", "/feeds"), Some("api"));
        assert_eq!(action_for(&get, "", "/"), Some("page"));
        assert_eq!(action_for(&get, "/static/...", "/site.css"), None);
        assert_eq!(action_for(&get, "/healthz", ""), None);
    }

    #[test]
    fn good_sites_submissions_votes_and_clicks_have_their_own_limits() {
        let get = http::Method::GET;
        let post = http::Method::POST;
        for (route, info) in [
            ("/api/good-sites/...", "/sites"),
            ("/good-sites/...", "/submit"),
        ] {
            assert_eq!(
                action_for(&post, route, info),
                Some("site_submission"),
                "{route}"
            );
        }
        for route in ["/api/good-sites/...", "/good-sites/..."] {
            assert_eq!(
                action_for(&post, route, "/sites/4/vote"),
                Some("vote"),
                "{route}"
            );
            assert_eq!(
                action_for(&post, route, "/sites/4/approve"),
                Some("api"),
                "{route}"
            );
        }
        assert_eq!(
            action_for(&get, "/api/good-sites/...", "/sites"),
            Some("api")
        );
        assert_eq!(
            action_for(&get, "/good-sites/...", "/sites/4"),
            Some("page")
        );
        assert_eq!(
            action_for(&get, "/good-sites/...", "/screenshots/3/thumb"),
            Some("image")
        );
        assert_eq!(action_for(&get, "/track/click", ""), Some("click"));
    }

    /// What the router accepts, the limit counts: a trailing or doubled
    /// slash reaches the same handler, so it is the same action.
    #[test]
    fn non_canonical_paths_count_as_the_route_they_reach() {
        let get = http::Method::GET;
        let post = http::Method::POST;
        for info in ["/google/login/", "//google//login", "/google/login//"] {
            assert_eq!(
                action_for(&get, "/auth/...", info),
                Some("sign_in"),
                "{info}"
            );
        }
        // Spin matches `/bootstrap/` to the `/bootstrap` route.
        assert_eq!(action_for(&post, "/bootstrap", "/"), Some("bootstrap"));
    }
}
