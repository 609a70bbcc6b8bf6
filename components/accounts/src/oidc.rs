//! Talking to the identity providers: Google, Facebook and Apple.
//!
//! All three run the OAuth 2.0 authorization-code flow with PKCE (RFC 7636),
//! `state` and an OpenID Connect `nonce`, and all three return an ID token
//! that is verified here against the provider's JWKS — signature, issuer,
//! audience, expiry and nonce — with `jsonwebtoken`. The differences:
//!
//! - Google: the token endpoint takes the client secret in the form body.
//! - Facebook (OIDC code flow for manually built logins): the token endpoint
//!   is a GET on the Graph API, and the access token it returns is checked
//!   with Graph's `debug_token` (app id, validity, same user as the ID token).
//! - Apple: the callback is a `form_post`, and the client secret is a
//!   short-lived ES256 JWT signed with the team's private key.
//!
//! Endpoint paths are the providers' documented ones; their origins come
//! from Spin variables, so tests point them at a local provider.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use village_platform::http_client::{HttpClient, HttpError, HttpRequest};

/// Facebook's Graph API version in endpoint paths.
pub const FACEBOOK_GRAPH_VERSION: &str = "v21.0";
/// Clock skew tolerated on ID-token times, in seconds.
const LEEWAY_SECS: i64 = 60;
/// Apple's client secret lives this long (Apple allows up to six months).
const APPLE_SECRET_TTL_SECS: i64 = 300;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Google,
    Facebook,
    Apple,
}

impl Provider {
    pub const ALL: [Provider; 3] = [Provider::Google, Provider::Facebook, Provider::Apple];

    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Google => "google",
            Provider::Facebook => "facebook",
            Provider::Apple => "apple",
        }
    }

    pub fn display_name(self) -> &'static str {
        match self {
            Provider::Google => "Google",
            Provider::Facebook => "Facebook",
            Provider::Apple => "Apple",
        }
    }

    /// The `iss` values the provider's ID tokens carry.
    fn issuers(self) -> &'static [&'static str] {
        match self {
            Provider::Google => &["https://accounts.google.com", "accounts.google.com"],
            Provider::Facebook => &["https://www.facebook.com"],
            Provider::Apple => &["https://appleid.apple.com"],
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Provider {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Provider::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| format!("unknown provider `{s}`"))
    }
}

/// Where a provider's endpoints live. Production values are the providers'
/// own origins; tests use a local server.
#[derive(Debug, Clone)]
pub struct Endpoints {
    pub authorize: String,
    pub token: String,
    pub jwks: String,
    /// Facebook only: Graph's `debug_token`.
    pub debug_token: Option<String>,
}

/// Apple's extra settings for the ES256 client secret.
#[derive(Clone)]
pub struct AppleKey {
    pub team_id: String,
    pub key_id: String,
    /// The `.p8` private key (PKCS#8 PEM) Apple issued.
    pub private_key_pem: String,
}

impl fmt::Debug for AppleKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppleKey")
            .field("team_id", &self.team_id)
            .field("key_id", &self.key_id)
            .field("private_key_pem", &"(redacted)")
            .finish()
    }
}

/// One configured provider.
#[derive(Clone)]
pub struct ProviderConfig {
    pub provider: Provider,
    pub client_id: String,
    /// Google and Facebook; Apple's is minted from [`AppleKey`].
    pub client_secret: String,
    pub apple: Option<AppleKey>,
    pub endpoints: Endpoints,
}

impl fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderConfig")
            .field("provider", &self.provider)
            .field("client_id", &self.client_id)
            .field("client_secret", &"(redacted)")
            .field("apple", &self.apple)
            .field("endpoints", &self.endpoints)
            .finish()
    }
}

impl ProviderConfig {
    /// The provider's documented endpoints under the given origins
    /// (`https://accounts.google.com`, …), without a trailing slash.
    pub fn endpoints(provider: Provider, origins: &ProviderOrigins) -> Endpoints {
        let o = |s: &str| s.trim_end_matches('/').to_owned();
        match provider {
            Provider::Google => Endpoints {
                authorize: format!("{}/o/oauth2/v2/auth", o(&origins.google_accounts)),
                token: format!("{}/token", o(&origins.google_oauth2)),
                jwks: format!("{}/oauth2/v3/certs", o(&origins.google_certs)),
                debug_token: None,
            },
            Provider::Facebook => Endpoints {
                authorize: format!(
                    "{}/{FACEBOOK_GRAPH_VERSION}/dialog/oauth",
                    o(&origins.facebook_www)
                ),
                token: format!(
                    "{}/{FACEBOOK_GRAPH_VERSION}/oauth/access_token",
                    o(&origins.facebook_graph)
                ),
                jwks: format!(
                    "{}/.well-known/oauth/openid/jwks/",
                    o(&origins.facebook_www)
                ),
                debug_token: Some(format!("{}/debug_token", o(&origins.facebook_graph))),
            },
            Provider::Apple => Endpoints {
                authorize: format!("{}/auth/authorize", o(&origins.apple)),
                token: format!("{}/auth/token", o(&origins.apple)),
                jwks: format!("{}/auth/keys", o(&origins.apple)),
                debug_token: None,
            },
        }
    }

    fn scope(&self) -> &'static str {
        match self.provider {
            Provider::Google => "openid email profile",
            Provider::Facebook => "openid email public_profile",
            Provider::Apple => "name email",
        }
    }
}

/// The origins of every provider endpoint (Spin variables).
#[derive(Debug, Clone)]
pub struct ProviderOrigins {
    pub google_accounts: String,
    pub google_oauth2: String,
    pub google_certs: String,
    pub facebook_www: String,
    pub facebook_graph: String,
    pub apple: String,
}

/// A URL-safe random token: 32 bytes from the platform's CSPRNG.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    // getrandom failing means the platform has no entropy source at all;
    // there is nothing sensible to do but refuse to mint tokens.
    getrandom::fill(&mut bytes).unwrap_or_else(|e| panic!("no secure randomness available: {e}"));
    URL_SAFE_NO_PAD.encode(bytes)
}

/// SHA-256, for storing tokens and states by hash only.
pub fn sha256(s: &str) -> Vec<u8> {
    Sha256::digest(s.as_bytes()).to_vec()
}

/// PKCE's S256 challenge for a verifier (RFC 7636 §4.2).
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// The provider's authorization URL for one sign-in attempt.
pub fn authorization_url(
    cfg: &ProviderConfig,
    redirect_uri: &str,
    state: &str,
    nonce: &str,
    code_verifier: &str,
) -> Result<String, LoginError> {
    let mut url = url::Url::parse(&cfg.endpoints.authorize)
        .map_err(|e| LoginError::Config(format!("authorize endpoint: {e}")))?;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", &cfg.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", cfg.scope())
            .append_pair("state", state)
            .append_pair("nonce", nonce)
            .append_pair("code_challenge", &pkce_challenge(code_verifier))
            .append_pair("code_challenge_method", "S256");
        if cfg.provider == Provider::Apple {
            // Apple requires form_post whenever name or email is asked for.
            q.append_pair("response_mode", "form_post");
        }
    }
    Ok(url.into())
}

/// Why a sign-in failed. `reason()` is what the audit log records.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("{0} sign-in is not configured")]
    Unconfigured(Provider),
    #[error("configuration: {0}")]
    Config(String),
    #[error("the sign-in attempt is unknown, expired, already used or from another browser")]
    StateMismatch,
    #[error("the provider refused: {0}")]
    ProviderDenied(String),
    #[error("exchanging the code failed: {0}")]
    CodeExchange(String),
    #[error("the ID token was rejected: {0}")]
    IdToken(String),
    #[error("the ID token's nonce does not match this sign-in")]
    NonceMismatch,
    #[error("Facebook's token check failed: {0}")]
    FacebookToken(String),
    #[error("the provider could not be reached: {0}")]
    Http(#[from] HttpError),
    #[error(transparent)]
    Sql(#[from] village_platform::sql::SqlError),
}

impl LoginError {
    pub fn reason(&self) -> &'static str {
        match self {
            LoginError::Unconfigured(_) => "unconfigured",
            LoginError::Config(_) => "configuration",
            LoginError::StateMismatch => "state_mismatch",
            LoginError::ProviderDenied(_) => "provider_denied",
            LoginError::CodeExchange(_) => "code_exchange_failed",
            LoginError::IdToken(_) => "invalid_id_token",
            LoginError::NonceMismatch => "nonce_mismatch",
            LoginError::FacebookToken(_) => "facebook_token_invalid",
            LoginError::Http(_) => "provider_unreachable",
            LoginError::Sql(_) => "database",
        }
    }

    /// Whether we (not the visitor or the provider) are at fault.
    pub fn is_server_fault(&self) -> bool {
        matches!(self, LoginError::Config(_) | LoginError::Sql(_))
    }
}

/// The token endpoint's answer (RFC 6749 §5.1, OIDC Core §3.1.3.3).
#[derive(Debug, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    #[serde(default)]
    pub id_token: Option<String>,
}

#[derive(Debug, Deserialize)]
struct TokenErrorResponse {
    error: serde_json::Value,
    #[serde(default)]
    error_description: Option<String>,
}

fn form(pairs: &[(&str, &str)]) -> Vec<u8> {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
        .into_bytes()
}

async fn send_json<T: for<'de> Deserialize<'de>>(
    http: &impl HttpClient,
    req: HttpRequest,
    what: &str,
) -> Result<T, LoginError> {
    let resp = http.send(req).await?;
    let status = resp.status();
    if !status.is_success() {
        let detail = serde_json::from_slice::<TokenErrorResponse>(resp.body())
            .map(|e| {
                let code = match &e.error {
                    serde_json::Value::String(s) => s.clone(),
                    // Graph API errors are objects: {"message", "type", "code"}.
                    other => other
                        .get("message")
                        .and_then(|m| m.as_str())
                        .unwrap_or("error")
                        .to_owned(),
                };
                match e.error_description {
                    Some(d) => format!("{code}: {d}"),
                    None => code,
                }
            })
            .unwrap_or_else(|_| format!("HTTP {status}"));
        return Err(LoginError::CodeExchange(format!("{what}: {detail}")));
    }
    serde_json::from_slice(resp.body())
        .map_err(|e| LoginError::CodeExchange(format!("{what}: unreadable answer: {e}")))
}

/// Exchanges an authorization code for tokens at the provider.
pub async fn exchange_code(
    http: &impl HttpClient,
    cfg: &ProviderConfig,
    code: &str,
    code_verifier: &str,
    redirect_uri: &str,
    now: DateTime<Utc>,
) -> Result<TokenResponse, LoginError> {
    let req = match cfg.provider {
        Provider::Google | Provider::Apple => {
            let secret = match (&cfg.provider, &cfg.apple) {
                (Provider::Apple, Some(key)) => apple_client_secret(&cfg.client_id, key, now)?,
                (Provider::Apple, None) => return Err(LoginError::Unconfigured(Provider::Apple)),
                _ => cfg.client_secret.clone(),
            };
            http::Request::post(&cfg.endpoints.token)
                .header(
                    http::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .header(http::header::ACCEPT, "application/json")
                .body(form(&[
                    ("grant_type", "authorization_code"),
                    ("code", code),
                    ("client_id", &cfg.client_id),
                    ("client_secret", &secret),
                    ("redirect_uri", redirect_uri),
                    ("code_verifier", code_verifier),
                ]))
        }
        Provider::Facebook => {
            let mut url = url::Url::parse(&cfg.endpoints.token)
                .map_err(|e| LoginError::Config(format!("token endpoint: {e}")))?;
            url.query_pairs_mut()
                .append_pair("client_id", &cfg.client_id)
                .append_pair("client_secret", &cfg.client_secret)
                .append_pair("redirect_uri", redirect_uri)
                .append_pair("code_verifier", code_verifier)
                .append_pair("code", code);
            http::Request::get(url.as_str())
                .header(http::header::ACCEPT, "application/json")
                .body(Vec::new())
        }
    }
    .map_err(|e| LoginError::Config(format!("token request: {e}")))?;
    send_json(http, req, "token endpoint").await
}

/// Apple's client secret: an ES256 JWT signed with the team's key
/// ("Creating a client secret", Sign in with Apple REST API).
pub fn apple_client_secret(
    client_id: &str,
    key: &AppleKey,
    now: DateTime<Utc>,
) -> Result<String, LoginError> {
    #[derive(Serialize)]
    struct Claims<'a> {
        iss: &'a str,
        iat: i64,
        exp: i64,
        aud: &'a str,
        sub: &'a str,
    }
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(key.key_id.clone());
    let signing = EncodingKey::from_ec_pem(key.private_key_pem.as_bytes())
        .map_err(|e| LoginError::Config(format!("apple_private_key: {e}")))?;
    jsonwebtoken::encode(
        &header,
        &Claims {
            iss: &key.team_id,
            iat: now.timestamp(),
            exp: now.timestamp() + APPLE_SECRET_TTL_SECS,
            aud: "https://appleid.apple.com",
            sub: client_id,
        },
        &signing,
    )
    .map_err(|e| LoginError::Config(format!("failed to sign Apple's client secret: {e}")))
}

/// The claims we use from a verified ID token.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct IdClaims {
    pub sub: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default, deserialize_with = "lenient_bool")]
    pub email_verified: bool,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    nonce: Option<String>,
    exp: i64,
    #[serde(default)]
    iat: Option<i64>,
}

/// Apple sends `email_verified` as the string `"true"`.
fn lenient_bool<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Bool(b) => b,
        serde_json::Value::String(s) => s == "true",
        _ => false,
    })
}

/// Verifies an ID token against the provider's published keys.
pub async fn verify_id_token(
    http: &impl HttpClient,
    cfg: &ProviderConfig,
    id_token: &str,
    expected_nonce: &str,
    now: DateTime<Utc>,
) -> Result<IdClaims, LoginError> {
    let header = jsonwebtoken::decode_header(id_token)
        .map_err(|e| LoginError::IdToken(format!("unreadable header: {e}")))?;
    // Only the asymmetric algorithms providers use: never `none`, never an
    // HMAC keyed with something public.
    if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
        return Err(LoginError::IdToken(format!(
            "algorithm {:?} is not accepted",
            header.alg
        )));
    }
    let kid = header
        .kid
        .ok_or_else(|| LoginError::IdToken("no key id".into()))?;
    let jwks_req = http::Request::get(&cfg.endpoints.jwks)
        .header(http::header::ACCEPT, "application/json")
        .body(Vec::new())
        .map_err(|e| LoginError::Config(format!("jwks request: {e}")))?;
    let resp = http.send(jwks_req).await?;
    if !resp.status().is_success() {
        return Err(LoginError::IdToken(format!(
            "the JWKS answered HTTP {}",
            resp.status()
        )));
    }
    let jwks: JwkSet = serde_json::from_slice(resp.body())
        .map_err(|e| LoginError::IdToken(format!("unreadable JWKS: {e}")))?;
    let jwk = jwks
        .find(&kid)
        .ok_or_else(|| LoginError::IdToken(format!("no published key `{kid}`")))?;
    let key = DecodingKey::from_jwk(jwk)
        .map_err(|e| LoginError::IdToken(format!("unusable key `{kid}`: {e}")))?;
    let mut validation = Validation::new(header.alg);
    validation.set_issuer(cfg.provider.issuers());
    validation.set_audience(&[cfg.client_id.as_str()]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    // Times are checked below against the injected clock.
    validation.validate_exp = false;
    let claims = jsonwebtoken::decode::<IdClaims>(id_token, &key, &validation)
        .map_err(|e| LoginError::IdToken(e.to_string()))?
        .claims;
    let t = now.timestamp();
    if claims.exp + LEEWAY_SECS < t {
        return Err(LoginError::IdToken("expired".into()));
    }
    if claims.iat.is_some_and(|iat| iat - LEEWAY_SECS > t) {
        return Err(LoginError::IdToken("issued in the future".into()));
    }
    if claims.nonce.as_deref() != Some(expected_nonce) {
        return Err(LoginError::NonceMismatch);
    }
    Ok(claims)
}

#[derive(Debug, Deserialize)]
struct DebugToken {
    data: DebugTokenData,
}

#[derive(Debug, Deserialize)]
struct DebugTokenData {
    #[serde(default)]
    app_id: Option<String>,
    #[serde(default)]
    is_valid: bool,
    #[serde(default)]
    user_id: Option<String>,
}

/// Graph API `debug_token`: the access token must be valid, issued to our
/// app, for the same user the ID token names.
pub async fn check_facebook_token(
    http: &impl HttpClient,
    cfg: &ProviderConfig,
    access_token: &str,
    subject: &str,
) -> Result<(), LoginError> {
    let endpoint = cfg
        .endpoints
        .debug_token
        .as_deref()
        .ok_or_else(|| LoginError::Config("no debug_token endpoint".into()))?;
    let mut url = url::Url::parse(endpoint)
        .map_err(|e| LoginError::Config(format!("debug_token endpoint: {e}")))?;
    url.query_pairs_mut()
        .append_pair("input_token", access_token)
        .append_pair(
            "access_token",
            &format!("{}|{}", cfg.client_id, cfg.client_secret),
        );
    let req = http::Request::get(url.as_str())
        .header(http::header::ACCEPT, "application/json")
        .body(Vec::new())
        .map_err(|e| LoginError::Config(format!("debug_token request: {e}")))?;
    let answer: DebugToken = send_json(http, req, "debug_token")
        .await
        .map_err(|e| LoginError::FacebookToken(e.to_string()))?;
    let d = answer.data;
    if !d.is_valid {
        return Err(LoginError::FacebookToken("the token is not valid".into()));
    }
    if d.app_id.as_deref() != Some(cfg.client_id.as_str()) {
        return Err(LoginError::FacebookToken(
            "the token was issued to another app".into(),
        ));
    }
    if d.user_id.as_deref() != Some(subject) {
        return Err(LoginError::FacebookToken(
            "the token belongs to another user".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_challenge_matches_rfc_7636_appendix_b() {
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn random_tokens_are_long_and_distinct() {
        let (a, b) = (random_token(), random_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
    }

    fn origins() -> ProviderOrigins {
        ProviderOrigins {
            google_accounts: "https://accounts.google.com".into(),
            google_oauth2: "https://oauth2.googleapis.com".into(),
            google_certs: "https://www.googleapis.com".into(),
            facebook_www: "https://www.facebook.com".into(),
            facebook_graph: "https://graph.facebook.com".into(),
            apple: "https://appleid.apple.com".into(),
        }
    }

    fn config(provider: Provider) -> ProviderConfig {
        ProviderConfig {
            provider,
            client_id: "client-1".into(),
            client_secret: "secret".into(),
            apple: None,
            endpoints: ProviderConfig::endpoints(provider, &origins()),
        }
    }

    #[test]
    fn endpoints_are_the_providers_documented_ones() {
        let g = ProviderConfig::endpoints(Provider::Google, &origins());
        assert_eq!(g.authorize, "https://accounts.google.com/o/oauth2/v2/auth");
        assert_eq!(g.token, "https://oauth2.googleapis.com/token");
        assert_eq!(g.jwks, "https://www.googleapis.com/oauth2/v3/certs");
        let a = ProviderConfig::endpoints(Provider::Apple, &origins());
        assert_eq!(a.token, "https://appleid.apple.com/auth/token");
        let f = ProviderConfig::endpoints(Provider::Facebook, &origins());
        assert_eq!(
            f.debug_token.as_deref(),
            Some("https://graph.facebook.com/debug_token")
        );
    }

    #[test]
    fn the_authorization_url_carries_state_nonce_and_the_pkce_challenge() {
        let url = authorization_url(
            &config(Provider::Google),
            "https://v.example/auth/google/callback",
            "st&te",
            "n0nce",
            "verifier",
        )
        .expect("url");
        let parsed = url::Url::parse(&url).expect("parses");
        let q: std::collections::HashMap<_, _> = parsed.query_pairs().into_owned().collect();
        assert_eq!(q["state"], "st&te");
        assert_eq!(q["nonce"], "n0nce");
        assert_eq!(q["code_challenge"], pkce_challenge("verifier"));
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["redirect_uri"], "https://v.example/auth/google/callback");
        assert!(!q.contains_key("response_mode"));
        let apple = authorization_url(&config(Provider::Apple), "https://x/cb", "s", "n", "v")
            .expect("url");
        assert!(apple.contains("response_mode=form_post"));
    }
}
