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
    /// The host refused to connect: every address the name resolved to is
    /// in a blocked network (Spin's `[outbound_networking] block_networks`).
    #[error("destination address prohibited: {0}")]
    Prohibited(String),
    /// The answer's body passed the caller's bound (checked while reading).
    #[error("answer larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("request failed: {0}")]
    Failed(String),
}

impl HttpError {
    /// Classifies a transport error's text (`wasi:http`'s `ErrorCode` as
    /// the SDK prints it).
    pub fn from_transport(text: String) -> Self {
        if text.contains("HttpRequestDenied") {
            HttpError::Refused(text)
        } else if text.contains("DestinationIpProhibited") {
            HttpError::Prohibited(text)
        } else {
            HttpError::Failed(text)
        }
    }

    /// The error a [`category`](Self::category) names (the guarded fetch
    /// service answers with one).
    pub fn from_category(category: &str) -> Self {
        match category {
            "address not allowed" => HttpError::Prohibited("by the fetch service".into()),
            "timed out" => HttpError::Timeout(Duration::from_secs(3)),
            "too large" => HttpError::TooLarge { limit: 5 << 20 },
            other => HttpError::Failed(format!("the fetch service: {other}")),
        }
    }

    /// What a user may be told: "could not fetch" and a category, never
    /// the transport's own words (which tell a port scanner what answered).
    pub fn category(&self) -> &'static str {
        match self {
            HttpError::Refused(_) | HttpError::Prohibited(_) => "address not allowed",
            HttpError::Timeout(_) => "timed out",
            HttpError::TooLarge { .. } => "too large",
            HttpError::Failed(_) => "connection failed",
        }
    }
}

#[allow(async_fn_in_trait)] // used through generics, never as `dyn`
pub trait HttpClient {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, HttpError>;
}
