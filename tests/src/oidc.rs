//! A local identity provider for the sign-in tests, speaking Google's,
//! Facebook's and Apple's documented wire formats on one loopback port:
//!
//! - Google: `GET /o/oauth2/v2/auth`, `POST /token`, `GET /oauth2/v3/certs`
//! - Facebook: `GET /v21.0/dialog/oauth`, `GET /v21.0/oauth/access_token`,
//!   `GET /debug_token`, `GET /.well-known/oauth/openid/jwks/`
//! - Apple: `GET /auth/authorize` (answers the auto-submitting `form_post`
//!   page), `POST /auth/token` (checks the ES256 client-secret JWT),
//!   `GET /auth/keys`
//!
//! It signs real RS256 ID tokens with a key it generates, publishes that key
//! as a JWKS, checks PKCE verifiers and client credentials, and lets each
//! authorization code be exchanged once. A test can make it misbehave (wrong
//! audience or nonce, expired or forged tokens) through [`Misbehaviour`].

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::traits::PublicKeyParts;
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;

pub const CLIENT_SECRET: &str = "local-client-secret";
pub const APPLE_TEAM: &str = "TEAM123456";
pub const APPLE_KEY_ID: &str = "APPLEKEY01";

/// Ways the provider can go wrong for the next token it issues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Misbehaviour {
    #[default]
    None,
    WrongAudience,
    WrongNonce,
    Expired,
    /// Signed with a key that is not in the JWKS, under the published kid.
    Forged,
    /// The token endpoint never answers (well, not for 30 s).
    Hang,
}

/// The person who "consents" at the provider.
#[derive(Debug, Clone)]
pub struct Person {
    pub subject: String,
    pub email: String,
    pub name: String,
}

struct Grant {
    client_id: String,
    redirect_uri: String,
    challenge: String,
    nonce: String,
    person: Person,
    used: bool,
}

struct State {
    person: Person,
    misbehaviour: Misbehaviour,
    codes: HashMap<String, Grant>,
    /// Facebook access tokens → (app id, user id).
    fb_tokens: HashMap<String, (String, String)>,
    counter: u64,
    /// Token endpoint requests seen, for assertions.
    pub token_requests: u64,
}

pub struct Provider {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    /// Apple's private key (PKCS#8 PEM), for the app's `apple_private_key`.
    pub apple_private_key_pem: String,
}

struct Keys {
    signing: EncodingKey,
    forged: EncodingKey,
    jwks: serde_json::Value,
    apple_public: DecodingKey,
}

fn rsa_key() -> rsa::RsaPrivateKey {
    rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).expect("an RSA key")
}

impl Provider {
    pub async fn start() -> Provider {
        let key = rsa_key();
        let forged = rsa_key();
        let pem = |k: &rsa::RsaPrivateKey| {
            EncodingKey::from_rsa_pem(
                k.to_pkcs1_pem(rsa::pkcs8::LineEnding::LF)
                    .expect("pem")
                    .as_bytes(),
            )
            .expect("encoding key")
        };
        let jwks = serde_json::json!({ "keys": [{
            "kty": "RSA", "use": "sig", "alg": "RS256", "kid": "local-1",
            "n": URL_SAFE_NO_PAD.encode(key.n().to_bytes_be()),
            "e": URL_SAFE_NO_PAD.encode(key.e().to_bytes_be()),
        }]});
        let apple = p256::SecretKey::random(&mut rand::thread_rng());
        let apple_private_key_pem = {
            use p256::pkcs8::EncodePrivateKey;
            apple
                .to_pkcs8_pem(p256::pkcs8::LineEnding::LF)
                .expect("pkcs8")
                .to_string()
        };
        let apple_public = {
            use p256::pkcs8::EncodePublicKey;
            let pem = apple
                .public_key()
                .to_public_key_pem(p256::pkcs8::LineEnding::LF)
                .expect("public pem");
            DecodingKey::from_ec_pem(pem.as_bytes()).expect("decoding key")
        };
        let keys = Arc::new(Keys {
            signing: pem(&key),
            forged: pem(&forged),
            jwks,
            apple_public,
        });
        let state = Arc::new(Mutex::new(State {
            person: Person {
                subject: "subject-1".into(),
                email: "ada@example.org".into(),
                name: "Ada".into(),
            },
            misbehaviour: Misbehaviour::None,
            codes: HashMap::new(),
            fb_tokens: HashMap::new(),
            counter: 0,
            token_requests: 0,
        }));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (st, ks) = (state.clone(), keys.clone());
        // Ends with the test's runtime.
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (st, ks) = (st.clone(), ks.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let (st, ks) = (st.clone(), ks.clone());
                        async move { Ok::<_, Infallible>(route(req, &st, &ks).await) }
                    });
                    let _ignored = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Provider {
            addr,
            state,
            apple_private_key_pem,
        }
    }

    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set_person(&self, subject: &str, email: &str, name: &str) {
        self.lock().person = Person {
            subject: subject.into(),
            email: email.into(),
            name: name.into(),
        };
    }

    pub fn misbehave(&self, m: Misbehaviour) {
        self.lock().misbehaviour = m;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

type Resp = hyper::Response<Full<Bytes>>;

fn respond(status: u16, content_type: &str, body: String) -> Resp {
    let mut r = hyper::Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::OK);
    if let Ok(v) = content_type.parse() {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

fn json(status: u16, v: serde_json::Value) -> Resp {
    respond(status, "application/json", v.to_string())
}

fn redirect(location: &str) -> Resp {
    let mut r = respond(302, "text/plain", String::new());
    if let Ok(v) = location.parse() {
        r.headers_mut().insert(hyper::header::LOCATION, v);
    }
    r
}

fn params(s: &str) -> HashMap<String, String> {
    url::form_urlencoded::parse(s.as_bytes())
        .into_owned()
        .collect()
}

fn lock(st: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    st.lock().unwrap_or_else(|p| p.into_inner())
}

async fn route(req: hyper::Request<hyper::body::Incoming>, st: &Mutex<State>, keys: &Keys) -> Resp {
    let path = req.uri().path().to_owned();
    let query = params(req.uri().query().unwrap_or_default());
    let method = req.method().clone();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
        .unwrap_or_default();
    let hang = lock(st).misbehaviour == Misbehaviour::Hang;
    if hang
        && matches!(
            path.as_str(),
            "/token" | "/auth/token" | "/v21.0/oauth/access_token"
        )
    {
        tokio::time::sleep(std::time::Duration::from_secs(30)).await;
    }
    match (method.as_str(), path.as_str()) {
        ("GET", "/o/oauth2/v2/auth") | ("GET", "/v21.0/dialog/oauth") => {
            authorize(st, &query, false)
        }
        ("GET", "/auth/authorize") => authorize(st, &query, true),
        ("POST", "/token") => token(st, keys, &params(&body), "google"),
        ("POST", "/auth/token") => token(st, keys, &params(&body), "apple"),
        ("GET", "/v21.0/oauth/access_token") => token(st, keys, &query, "facebook"),
        ("GET", "/oauth2/v3/certs")
        | ("GET", "/.well-known/oauth/openid/jwks/")
        | ("GET", "/auth/keys") => json(200, keys.jwks.clone()),
        ("GET", "/debug_token") => debug_token(st, &query),
        _ => json(404, serde_json::json!({ "error": "not_found" })),
    }
}

/// Consent happens at once: a code is minted for the configured person and
/// the browser is sent back (or, for Apple, handed a form_post page).
fn authorize(st: &Mutex<State>, q: &HashMap<String, String>, form_post: bool) -> Resp {
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    if get("code_challenge_method") != "S256" || get("code_challenge").is_empty() {
        return json(
            400,
            serde_json::json!({ "error": "invalid_request", "error_description": "PKCE S256 required" }),
        );
    }
    let mut s = lock(st);
    s.counter += 1;
    let code = format!("code-{}-{}", s.counter, get("state").len());
    let person = s.person.clone();
    s.codes.insert(
        code.clone(),
        Grant {
            client_id: get("client_id"),
            redirect_uri: get("redirect_uri"),
            challenge: get("code_challenge"),
            nonce: get("nonce"),
            person,
            used: false,
        },
    );
    let redirect_uri = get("redirect_uri");
    if form_post {
        // What Apple answers: a page that posts code and state back.
        let html = format!(
            "<form method=\"post\" action=\"{redirect_uri}\"><input name=\"code\" value=\"{code}\"><input name=\"state\" value=\"{}\"></form>",
            get("state")
        );
        return respond(200, "text/html", html);
    }
    let mut url = url::Url::parse(&redirect_uri).expect("redirect_uri");
    url.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &get("state"));
    redirect(url.as_str())
}

fn token(st: &Mutex<State>, keys: &Keys, f: &HashMap<String, String>, provider: &str) -> Resp {
    let get = |k: &str| f.get(k).cloned().unwrap_or_default();
    let bad = |e: &str| json(400, serde_json::json!({ "error": e }));
    let mut s = lock(st);
    s.token_requests += 1;
    s.counter += 1;
    let access_token = format!("access-{}", s.counter);
    let misbehaviour = s.misbehaviour;
    let Some(grant) = s.codes.get_mut(&get("code")) else {
        return bad("invalid_grant");
    };
    if grant.used {
        return bad("invalid_grant");
    }
    grant.used = true;
    if grant.client_id != get("client_id") || grant.redirect_uri != get("redirect_uri") {
        return bad("invalid_grant");
    }
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(get("code_verifier").as_bytes()));
    if challenge != grant.challenge {
        return bad("invalid_grant");
    }
    // Client authentication, per provider.
    if provider == "apple" {
        let mut v = Validation::new(Algorithm::ES256);
        v.set_audience(&["https://appleid.apple.com"]);
        v.set_issuer(&[APPLE_TEAM]);
        let ok = jsonwebtoken::decode::<serde_json::Value>(
            &get("client_secret"),
            &keys.apple_public,
            &v,
        )
        .ok()
        .filter(|d| {
            d.claims["sub"] == grant.client_id.as_str()
                && d.header.kid.as_deref() == Some(APPLE_KEY_ID)
        });
        if ok.is_none() {
            return bad("invalid_client");
        }
    } else if get("client_secret") != CLIENT_SECRET {
        return bad("invalid_client");
    }
    let issuer = match provider {
        "google" => "https://accounts.google.com",
        "facebook" => "https://www.facebook.com",
        _ => "https://appleid.apple.com",
    };
    let now = chrono::Utc::now().timestamp();
    let mut claims = serde_json::json!({
        "iss": issuer,
        "aud": grant.client_id,
        "sub": grant.person.subject,
        "email": grant.person.email,
        "email_verified": if provider == "apple" { serde_json::json!("true") } else { serde_json::json!(true) },
        "name": grant.person.name,
        "nonce": grant.nonce,
        "iat": now,
        "exp": now + 3600,
    });
    let mut signing = &keys.signing;
    match misbehaviour {
        Misbehaviour::None => {}
        Misbehaviour::WrongAudience => claims["aud"] = "someone-else".into(),
        Misbehaviour::WrongNonce => claims["nonce"] = "not-the-nonce".into(),
        Misbehaviour::Expired => {
            claims["iat"] = (now - 7200).into();
            claims["exp"] = (now - 3600).into();
        }
        Misbehaviour::Forged => signing = &keys.forged,
        Misbehaviour::Hang => {}
    }
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("local-1".into());
    let id_token = jsonwebtoken::encode(&header, &claims, signing).expect("sign");
    let (client_id, subject) = (grant.client_id.clone(), grant.person.subject.clone());
    s.fb_tokens
        .insert(access_token.clone(), (client_id, subject));
    json(
        200,
        serde_json::json!({
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": 3600,
            "id_token": id_token,
        }),
    )
}

/// Graph API `debug_token`, checked against the app access token.
fn debug_token(st: &Mutex<State>, q: &HashMap<String, String>) -> Resp {
    let s = lock(st);
    let app_token = q.get("access_token").cloned().unwrap_or_default();
    let Some((app, secret)) = app_token.split_once('|') else {
        return json(
            400,
            serde_json::json!({ "error": { "message": "Invalid OAuth access token.", "type": "OAuthException", "code": 190 } }),
        );
    };
    if secret != CLIENT_SECRET {
        return json(
            400,
            serde_json::json!({ "error": { "message": "Invalid OAuth access token.", "type": "OAuthException", "code": 190 } }),
        );
    }
    let input = q.get("input_token").cloned().unwrap_or_default();
    let data = match s.fb_tokens.get(&input) {
        Some((app_id, user)) => serde_json::json!({
            "app_id": app_id, "type": "USER", "application": "Village",
            "expires_at": chrono::Utc::now().timestamp() + 3600,
            "is_valid": app_id == app, "scopes": ["openid", "email"], "user_id": user,
        }),
        None => serde_json::json!({ "is_valid": false }),
    };
    json(200, serde_json::json!({ "data": data }))
}
