//! What runs between authentication and the handler: a check that may add
//! headers to the answer or refuse the request outright (rate limits are the
//! one today: `village_ratelimit::gate`).

/// A guard's decision.
#[derive(Debug, Default)]
pub struct Verdict {
    /// Added to the answer, refused or not (e.g. `RateLimit-*`).
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
    /// `Some`: answer with this error and do not run the handler.
    pub refusal: Option<crate::AppError>,
}

impl Verdict {
    /// Go ahead, nothing to add.
    pub fn pass() -> Self {
        Verdict::default()
    }
}
