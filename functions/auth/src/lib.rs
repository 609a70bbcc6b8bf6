//! `auth` — `/auth/...`: sign-in with Google, Facebook and Apple, the merge
//! consent page, refresh, logout and `/auth/session`. Reads its settings from
//! Spin variables and hands the request to `village_accounts::auth_routes`.

// The SDK's export macro generates the component ABI glue, which is `unsafe`.
#![allow(unsafe_code)]

use spin_sdk::http::ResponseOutparam;
use spin_sdk::http_component;
use spin_sdk::variables;
use village_accounts::auth_routes::{AuthRequest, AuthSettings, handle as auth};
use village_accounts::oidc::{AppleKey, Provider, ProviderConfig, ProviderOrigins};
use village_platform::clock::Clock;
use village_platform::spin::IncomingRequest;
use village_platform::spin::{Env, SpinHttp, Surface, serve_guarded};

fn var(name: &str) -> String {
    variables::get(name).unwrap_or_default()
}

/// The configured providers: those with a client id (and, for Apple, a key).
fn settings(env: &Env) -> AuthSettings {
    let origins = ProviderOrigins {
        google_accounts: var("google_accounts_origin"),
        google_oauth2: var("google_oauth2_origin"),
        google_certs: var("google_certs_origin"),
        facebook_www: var("facebook_www_origin"),
        facebook_graph: var("facebook_graph_origin"),
        apple: var("apple_origin"),
    };
    let providers = Provider::ALL
        .into_iter()
        .filter_map(|p| {
            let client_id = var(&format!("{p}_client_id"));
            if client_id.is_empty() {
                return None;
            }
            let apple = (p == Provider::Apple).then(|| AppleKey {
                team_id: var("apple_team_id"),
                key_id: var("apple_key_id"),
                private_key_pem: var("apple_private_key"),
            });
            Some(ProviderConfig {
                provider: p,
                client_id,
                client_secret: if p == Provider::Apple {
                    String::new()
                } else {
                    var(&format!("{p}_client_secret"))
                },
                apple,
                endpoints: ProviderConfig::endpoints(p, &origins),
            })
        })
        .collect();
    AuthSettings {
        public_base_url: var("public_base_url"),
        providers,
        signing_key: env.signing_key.clone(),
        cookie_secure: env.cookie_secure,
    }
}

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    serve_guarded(
        "auth",
        Surface::Page,
        req,
        out,
        village_ratelimit::spin::gate,
        async |req, env, ctx| {
            let path = req
                .headers()
                .get("spin-path-info")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let request = AuthRequest {
                method: req.method(),
                path: &path,
                query: req.uri().query().unwrap_or_default(),
                headers: req.headers(),
                body: req.body(),
            };
            auth(
                request,
                &settings(env),
                &env.sql,
                &SpinHttp::default(),
                ctx,
                env.clock.now(),
            )
            .await
        },
    )
    .await
}
