//! The outbound HTTP port. Components reach third parties (feeds, weather,
//! Stripe, …) only through it, so tests point it at local servers that speak
//! the provider's wire format, and allow-lists stay in `spin.toml`.

use std::time::Duration;

pub type HttpRequest = http::Request<Vec<u8>>;
pub type HttpResponse = http::Response<Vec<u8>>;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The platform refused the destination (not in `allowed_outbound_hosts`).
    #[error("request refused: {0}")]
    Refused(String),
    #[error("request timed out after {0:?}")]
    Timeout(Duration),
    #[error("request failed: {0}")]
    Failed(String),
}

#[allow(async_fn_in_trait)] // used through generics, never as `dyn`
pub trait HttpClient {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, HttpError>;
}
