//! What every job worker component (`job-worker-{high,default,low,bulk}`)
//! runs when woken: the registry of every domain's handlers, built over
//! the component's Spin ports, and the drain of its queue.
//!
//! A new job handler is added here, once, and every worker can run it.
//!
//! | handler          | code                              |
//! |------------------|-----------------------------------|
//! | `jobs.noop`      | `village_jobs::handlers::Noop`    |
//! | `feeds.refresh`  | `village_feeds::handler`          |
//! | `ai.tag_items`   | `village_ai::tagging`             |
//! | `marketplace.lifecycle` | `village_marketplace::lifecycle` |
//! | `directory.fetch_site` | `village_directory::fetch::FetchSite` |
//! | `directory.suggest_category` | `village_directory::fetch::SuggestCategory` |
//! | `directory.check_links` | `village_directory::health` |
//! | `directory.recapture` | `village_directory::recapture` |
//! | `clicks.maintain` | `village_clicks::maintain` |
//! | `weather.forecast` | `village_weather::open_meteo::RefreshForecast` |
//! | `weather.alerts` | `village_weather::nws::RefreshAlerts` |
//! | `stocks.quote` | `village_stocks::quotes::RefreshQuote` |
//! | `social.fetch_posts` | `village_social::posts::FetchPosts` |
//! | `social.upkeep` | `village_social::upkeep::Upkeep` |
//! | `payments.stripe_event` | `village_payments::events::ApplyEvent` |
//! | `payments.refund` | `village_payments::refunds::IssueRefund` |
//! | `payments.dispute_evidence` | `village_payments::disputes::GatherEvidence` |
//! | `payments.reconcile` | `village_payments::reconcile::Reconcile` |

use village_ai::AiConfig;
use village_jobs::Queue;
use village_jobs::handlers::{Noop, Registry};
use village_platform::clock::Clock;
use village_platform::spin::{Env, FetchService, SpinHttp};

fn variable(name: &str) -> Option<String> {
    spin_sdk::variables::get(name).ok()
}

/// The mail relay users' email goes through (`mailgun_*`).
fn mailgun() -> village_platform::mail::Mailgun {
    village_platform::mail::Mailgun {
        base_url: variable("mailgun_base_url").unwrap_or_default(),
        domain: variable("mailgun_domain").unwrap_or_default(),
        api_key: variable("mailgun_api_key").unwrap_or_default(),
    }
}

fn disabled_evidence(component: &str, e: &village_platform::objects::ObjectError) {
    village_platform::log::event(
        "ERROR",
        &format!("dispute evidence disabled: object storage: {e}"),
        serde_json::json!({ "component": component }),
    );
}

/// Drains `queue` with every handler registered. A setting that is present
/// but invalid (say a malformed price table) fails the run loudly: the jobs
/// stay pending, nothing is lost, and the log says what to fix.
pub async fn run(component: &str, queue: Queue) -> Result<(), String> {
    let env = Env::from_variables().map_err(|e| e.to_string())?;
    // Feeds are URLs users gave us: fetched only through the guarded fetch
    // service (`fetch_service_url`; `village_platform::fetch`), whose
    // runtime refuses every private address. The model: its own, longer
    // bound (`ai_timeout_ms`), as its answers take seconds to write.
    let http = FetchService::new(variable("fetch_service_url").unwrap_or_default());
    let ai = AiConfig::from_lookup(variable)?;
    let ai_http = SpinHttp {
        timeout: ai.timeout,
        ..SpinHttp::default()
    };
    // Object storage and the mail relay are ours, not user URLs: reached
    // directly (their hosts are in the worker's allow-list).
    let store_http = SpinHttp::default();
    // Broken storage settings hold up image deletion (logged each run),
    // never the other handlers.
    let disabled = |e: village_platform::objects::ObjectError| {
        village_platform::log::event(
            "ERROR",
            &format!("object storage disabled: {e}"),
            serde_json::json!({ "component": component }),
        );
    };
    let store = village_platform::objects::S3Config::from_lookup(variable)
        .map_err(disabled)
        .ok()
        .flatten()
        .and_then(|c| {
            village_platform::objects::S3Store::new(&c, &store_http)
                .map_err(disabled)
                .ok()
        });
    let mail_http = SpinHttp::default();
    let mail = village_marketplace::lifecycle::Mail {
        relay: mailgun(),
        from: variable("mail_from").unwrap_or_default(),
        site_url: variable("public_base_url").unwrap_or_default(),
        http: &mail_http,
    };
    let hosts = village_platform::address::allowed_hosts(
        &variable("feed_allowed_hosts").unwrap_or_default(),
    );
    // Good Sites pages are URLs users gave us, fetched like feeds.
    let site_hosts = village_platform::address::allowed_hosts(
        &variable("directory_allowed_hosts").unwrap_or_default(),
    );
    // The widget providers are ours to call (fixed hosts from settings, not
    // user URLs): reached directly, each bounded by SpinHttp's deadline.
    let provider_http = SpinHttp::default();
    let weather = village_weather::spin_components::Providers::from_variables();
    let stocks = village_stocks::spin_components::config();
    // Broken social settings (no token keys) stop the social jobs — they
    // fail and say so — never the other handlers.
    let social = village_social::spin_components::config();
    if let Err(e) = &social {
        village_platform::log::event(
            "ERROR",
            &format!("social jobs disabled: {e}"),
            serde_json::json!({ "component": component }),
        );
    }
    let social_mail_http = SpinHttp::default();
    let registry = Registry::new()
        .with(Noop)
        .with(village_feeds::handler::RefreshFeed {
            sql: &env.sql,
            cache: &env.cache,
            http: &http,
            clock: &env.clock,
            allowed_hosts: &hosts,
            ai: &ai,
        })
        .with(village_ai::tagging::TagItems {
            sql: &env.sql,
            cache: &env.cache,
            http: &ai_http,
            clock: &env.clock,
            config: &ai,
        })
        .with(village_marketplace::lifecycle::Lifecycle {
            sql: &env.sql,
            clock: &env.clock,
            store,
            mail,
        })
        .with(village_directory::fetch::FetchSite {
            sql: &env.sql,
            cache: &env.cache,
            http: &http,
            clock: &env.clock,
            allowed_hosts: &site_hosts,
        })
        .with(village_directory::fetch::SuggestCategory {
            sql: &env.sql,
            http: &ai_http,
            clock: &env.clock,
            config: &ai,
        })
        .with(village_directory::health::CheckLinks {
            sql: &env.sql,
            cache: &env.cache,
            http: &http,
            clock: &env.clock,
            allowed_hosts: &site_hosts,
        })
        .with(village_directory::recapture::Recapture {
            sql: &env.sql,
            cache: &env.cache,
            clock: &env.clock,
            allowed_hosts: &site_hosts,
        })
        .with(village_clicks::maintain::Maintain {
            sql: &env.sql,
            clock: &env.clock,
        })
        .with(village_weather::open_meteo::RefreshForecast {
            sql: &env.sql,
            cache: &env.cache,
            http: &provider_http,
            clock: &env.clock,
            base_url: &weather.open_meteo,
        })
        .with(village_weather::nws::RefreshAlerts {
            sql: &env.sql,
            cache: &env.cache,
            http: &provider_http,
            clock: &env.clock,
            base_url: &weather.nws,
            user_agent: &weather.nws_user_agent,
        })
        .with(village_stocks::quotes::RefreshQuote {
            sql: &env.sql,
            cache: &env.cache,
            http: &provider_http,
            clock: &env.clock,
            config: &stocks,
        });
    let registry = match &social {
        Ok(config) => registry
            .with(village_social::posts::FetchPosts {
                sql: &env.sql,
                cache: &env.cache,
                http: &provider_http,
                clock: &env.clock,
                config,
            })
            .with(village_social::upkeep::Upkeep {
                sql: &env.sql,
                cache: &env.cache,
                http: &provider_http,
                clock: &env.clock,
                config,
                mail: village_social::upkeep::Mail {
                    relay: mailgun(),
                    from: variable("mail_from").unwrap_or_default(),
                    site_url: variable("public_base_url").unwrap_or_default(),
                    http: &social_mail_http,
                },
            }),
        Err(why) => registry
            .with(village_social::Misconfigured {
                name: village_social::jobs::FETCH_POSTS,
                why: why.clone(),
                now: env.clock.now(),
            })
            .with(village_social::Misconfigured {
                name: village_social::jobs::UPKEEP,
                why: why.clone(),
                now: env.clock.now(),
            }),
    };
    // Stripe is ours to call (a fixed host from settings), with more time
    // than the default: refunds and lists take seconds.
    let payments = village_payments::spin_components::config();
    let stripe_http = SpinHttp {
        timeout: std::time::Duration::from_secs(10),
        ..SpinHttp::default()
    };
    let payments_mail_http = SpinHttp::default();
    let payments_mail = village_payments::notify::Mail {
        relay: mailgun(),
        http: &payments_mail_http,
        from: variable("mail_from").unwrap_or_default(),
        ops: variable("ops_email").unwrap_or_default(),
    };
    // Evidence packages go where other server-side blobs do: the bucket
    // when `object_store_*` are set, else the embedded store. Broken
    // storage settings hold up evidence (the scheduler queues it again),
    // never the other handlers.
    let blobs = village_platform::objects::S3Config::from_lookup(variable)
        .and_then(|c| village_platform::blob::Blobs::choose(c.as_ref(), &env.sql, &store_http));
    let registry = match &blobs {
        Ok(blobs) => registry.with(village_payments::disputes::GatherEvidence {
            sql: &env.sql,
            blobs,
            clock: &env.clock,
            mail: &payments_mail,
        }),
        Err(e) => {
            disabled_evidence(component, e);
            registry
        }
    };
    let registry = registry
        .with(village_payments::events::ApplyEvent {
            sql: &env.sql,
            cache: &env.cache,
            http: &stripe_http,
            clock: &env.clock,
            config: &payments,
            mail: &payments_mail,
        })
        .with(village_payments::refunds::IssueRefund {
            sql: &env.sql,
            http: &stripe_http,
            clock: &env.clock,
            config: &payments,
            mail: &payments_mail,
        })
        .with(village_payments::reconcile::Reconcile {
            sql: &env.sql,
            http: &stripe_http,
            clock: &env.clock,
            config: &payments,
            mail: &payments_mail,
        });
    village_jobs::spin_components::run_worker(component, queue, &env, &registry).await
}
