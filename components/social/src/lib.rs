//! The social widget (behind `social_integration`, a kill switch: off, no
//! route answers, no job calls Meta).
//!
//! - [`connect`]: Meta's OAuth code flow with the widget's own scopes; the
//!   state is signed and bound to the browser by a cookie.
//! - [`tokens`]: long-lived tokens sealed at rest, keys rotating.
//! - [`posts`]: `social.fetch_posts`, a user's recent Facebook posts and
//!   Instagram media, cached until they remove them.
//! - [`upkeep`]: `social.upkeep`, daily: refresh tokens seven days before
//!   they expire, mark lapsed ones stale (widget banner, an email),
//!   archive posts of connections stale more than seven days, reseal
//!   under the current key.
//! - [`webhooks`]: Meta's deauthorize and data-deletion callbacks.
//! - [`widget`], [`api`]: what the homepage shows and the routes.

pub mod api;
pub mod connect;
pub mod graph;
pub mod posts;
pub mod signed_request;
#[cfg(feature = "spin")]
pub mod spin_components;
pub mod tokens;
pub mod upkeep;
pub mod webhooks;
pub mod widget;

/// The feature flag (a kill switch) everything here sits behind.
pub const FLAG: &str = "social_integration";

/// Job handler names.
pub mod jobs {
    pub const FETCH_POSTS: &str = "social.fetch_posts";
    pub const UPKEEP: &str = "social.upkeep";
}

/// What the social components are configured with.
pub struct Config {
    pub meta: graph::Meta,
    pub keys: tokens::KeyRing,
    /// `public_base_url`: the base of the OAuth redirect and the
    /// data-deletion status page.
    pub public_base_url: String,
}

impl Config {
    pub fn redirect_uri(&self) -> String {
        format!(
            "{}/social/callback",
            self.public_base_url.trim_end_matches('/')
        )
    }
}

/// The scopes the widget asks for: the profile, the user's posts, and the
/// Instagram business account behind their pages.
/// (`pages_read_engagement` is what reading a page's Instagram media through
/// Facebook Login needs besides `instagram_basic`.)
pub const SCOPES: &str =
    "public_profile,user_posts,pages_show_list,pages_read_engagement,instagram_basic";

/// Stands in for a social job's handler while the settings are broken (no
/// `social_token_keys`, say): its jobs wait an hour at a time, saying why,
/// rather than being dead-lettered as unknown or spending their attempts.
pub struct Misconfigured {
    pub name: &'static str,
    pub why: String,
    /// When the worker started.
    pub now: chrono::DateTime<chrono::Utc>,
}

impl village_jobs::JobHandler for Misconfigured {
    fn name(&self) -> &'static str {
        self.name
    }

    async fn run(&self, _job: &village_jobs::Job) -> Result<(), village_jobs::JobError> {
        Err(village_jobs::JobError::Defer {
            until: self.now + chrono::Duration::hours(1),
            reason: format!("social settings are broken: {}", self.why),
        })
    }
}
