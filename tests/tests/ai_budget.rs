//! AI tagging under the monthly budget, against the real Postgres and
//! Redis and local stand-ins for the Anthropic Messages API, Mailgun and a
//! Slack webhook: batching, dedupe, every threshold with its notices sent
//! once, the deferral, the hard stop, and a failed notice retried.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use chrono::{DateTime, Duration, TimeZone, Utc};
use village_ai::budget::{self, Level, Usage};
use village_ai::config::{AiConfig, NotifyConfig, PriceTable};
use village_ai::notify;
use village_ai::tagging::{self, Scheduled};
use village_e2e::stub::StubServer;
use village_e2e::stub::providers::{self, UsageDial};
use village_platform::native::{NativeCache, NativeHttp, NativeSql, test_ports};
use village_platform::sql::{Sql, SqlValue};

struct World {
    sql: NativeSql,
    cache: NativeCache,
    http: NativeHttp,
    messages: StubServer,
    mail: StubServer,
    slack: StubServer,
    usage: UsageDial,
    mail_fails: Arc<AtomicBool>,
    config: AiConfig,
}

/// A mid-month instant, so "next month" is unambiguous.
fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 14, 10, 0, 0)
        .single()
        .expect("time")
}

async fn world(limit_cents: i64) -> World {
    let db = village_migrate::testing::fresh_database()
        .await
        .expect("database");
    let (sql, cache) = test_ports(&db).await;
    // 1,000 input and 200 output tokens per call: 0.6 cents at list price.
    let usage = UsageDial::new(1_000, 200);
    let messages = providers::messages_api(usage.clone()).await;
    let mail_fails = Arc::new(AtomicBool::new(false));
    let mail = providers::mailgun(mail_fails.clone()).await;
    let slack = providers::slack().await;
    let config = AiConfig {
        anthropic_base_url: messages.url(),
        api_key: providers::ANTHROPIC_KEY.into(),
        model: "claude-sonnet-4".into(),
        prices: PriceTable::parse(village_ai::config::DEFAULT_PRICES).expect("prices"),
        default_limit_cents: limit_cents,
        timeout: std::time::Duration::from_secs(15),
        notify: NotifyConfig {
            mailgun_base_url: mail.url(),
            mailgun_domain: providers::MAILGUN_DOMAIN.into(),
            mailgun_api_key: providers::MAILGUN_KEY.into(),
            from: "Village <noreply@village.test>".into(),
            ops_email: "ops@village.test".into(),
            slack_webhook_url: format!("{}/services/T000/B000/XXXX", slack.url()),
        },
    };
    World {
        sql,
        cache,
        http: NativeHttp::new(std::time::Duration::from_secs(3)),
        messages,
        mail,
        slack,
        usage,
        mail_fails,
        config,
    }
}

/// `n` pending articles from one feed, as a refresh would store them.
async fn articles(w: &World, n: usize, prefix: &str) {
    let items: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            serde_json::json!({
                "hash": format!("{prefix}-{i}"),
                "title": format!("{prefix} story number {i}"),
                "link": format!("https://news.example.org/{prefix}/{i}"),
            })
        })
        .collect();
    w.sql
        .execute(
            "INSERT INTO feed_items (content_hash, title, link, summary_html, first_seen_at) \
             SELECT x->>'hash', x->>'title', x->>'link', '<p>Summary</p>', $2 \
             FROM jsonb_array_elements($1) x",
            &[
                SqlValue::Json(serde_json::Value::Array(items)),
                SqlValue::Timestamp(now()),
            ],
        )
        .await
        .expect("articles");
}

async fn scalar(w: &World, q: &str) -> i64 {
    w.sql
        .query_opt(q, &[])
        .await
        .expect("query")
        .expect("row")
        .get("n")
        .expect("n")
}

/// Sends the notices `b` calls for, as of `at`.
async fn notices(w: &World, b: &budget::Budget, at: DateTime<Utc>) -> Vec<notify::Delivery> {
    notify::send_due(&w.sql, &w.http, &w.config.notify, b, at)
        .await
        .expect("notices")
}

/// Spend recorded by another feature (as fraud checks will).
async fn spend(w: &World, purpose: &'static str, cost_microcents: i64) {
    budget::record_usage(
        &w.sql,
        &Usage {
            purpose,
            model: "claude-sonnet-4".into(),
            items: 1,
            input_tokens: 0,
            output_tokens: 0,
            cost_microcents,
        },
        now(),
    )
    .await
    .expect("usage");
}

async fn run(w: &World, at: DateTime<Utc>) -> tagging::RunReport {
    tagging::run_once(&w.sql, &w.cache, &w.http, &w.config, at)
        .await
        .expect("run")
}

#[tokio::test]
async fn articles_are_tagged_in_batches_of_twenty_and_never_twice() {
    let w = world(50_000).await;
    articles(&w, 25, "Harbour").await;

    let first = run(&w, now()).await;
    assert_eq!(
        (first.outcome, first.sent, first.tagged),
        ("tagged", 20, 20)
    );
    // While articles wait, a run queues the next one in the job system.
    assert_eq!(
        scalar(
            &w,
            "SELECT count(*) AS n FROM delayed_jobs WHERE handler = 'ai.tag_items' \
                    AND status = 'pending'"
        )
        .await,
        1
    );
    let second = run(&w, now()).await;
    assert_eq!((second.sent, second.tagged), (5, 5));
    let third = run(&w, now()).await;
    assert_eq!(third.outcome, "nothing_pending");

    let calls = w.messages.requests_to("/v1/messages");
    assert_eq!(calls.len(), 2, "two calls for 25 articles");
    let mut sent: Vec<i64> = calls
        .iter()
        .flat_map(|c| providers::articles_in(c).into_iter().map(|(id, _)| id))
        .collect();
    assert_eq!(sent.len(), 25);
    sent.sort();
    sent.dedup();
    assert_eq!(sent.len(), 25, "no article sent twice");
    assert_eq!(calls[0].json()["model"], "claude-sonnet-4");
    assert_eq!(
        scalar(
            &w,
            "SELECT count(*) AS n FROM feed_items WHERE tag_state = 'tagged' \
                    AND tags = ARRAY['harbour', 'local']"
        )
        .await,
        25,
        "tags normalised and stored"
    );
    // Usage from the API's numbers: 2 calls × (1,000 × 300 + 200 × 1,500) µ¢.
    assert_eq!(
        scalar(
            &w,
            "SELECT sum(cost_microcents)::bigint AS n FROM ai_usage \
                    WHERE purpose = 'news_tagging'"
        )
        .await,
        1_200_000
    );
}

#[tokio::test]
async fn a_failed_call_releases_its_articles_for_the_retry() {
    let mut w = world(50_000).await;
    articles(&w, 3, "Fete").await;
    w.config.api_key = "sk-ant-wrong".into();
    let err = tagging::run_once(&w.sql, &w.cache, &w.http, &w.config, now())
        .await
        .expect_err("401 from the API");
    assert!(err.to_string().contains("authentication_error"), "{err}");
    assert_eq!(
        scalar(
            &w,
            "SELECT count(*) AS n FROM feed_items WHERE tag_state = 'pending' \
                    AND tag_claimed_until IS NULL"
        )
        .await,
        3
    );
    assert_eq!(
        scalar(&w, "SELECT count(*) AS n FROM ai_usage").await,
        0,
        "nothing billed"
    );
    w.config.api_key = providers::ANTHROPIC_KEY.into();
    assert_eq!(run(&w, now()).await.tagged, 3);
}

#[tokio::test]
async fn thresholds_shrink_defer_and_stop_with_each_notice_sent_once() {
    // A 1-cent month: one call of 1,000 in / 200 out costs 0.6 cents.
    let w = world(1).await;
    articles(&w, 40, "Council").await;

    // Below 75 %: a full batch.
    w.usage.set(1_000, 200); // 60 %
    assert_eq!(run(&w, now()).await.sent, 20);
    assert!(w.mail.requests().is_empty() && w.slack.requests().is_empty());

    // The next call takes it to 76 %: ops hear of it once, on both channels.
    w.usage.set(200, 67); // 0.06 + 0.1005 cents
    assert_eq!(run(&w, now()).await.sent, 20);
    let b = budget::current(&w.sql, now(), 1).await.expect("budget");
    assert_eq!(b.level(), Level::Reduced);
    let mails = w.mail.requests();
    assert_eq!(mails.len(), 1);
    let fields = providers::form(&mails[0]);
    let field = |k: &str| {
        fields
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    assert_eq!(field("to"), "ops@village.test");
    assert!(field("subject").contains("75%"), "{fields:?}");
    assert!(field("text").contains("reduced"), "{fields:?}");
    assert_eq!(w.slack.requests().len(), 1);
    assert!(
        w.slack.requests()[0].json()["text"]
            .as_str()
            .unwrap_or_default()
            .contains("75%")
    );

    // At 75 %: batches of ten.
    articles(&w, 15, "Library").await;
    w.usage.set(1, 1); // a negligible call
    assert_eq!(run(&w, now()).await.sent, 10);

    // Asking again sends nothing new: once per threshold per month.
    let b = budget::current(&w.sql, now(), 1).await.expect("budget");
    assert!(notices(&w, &b, now() + Duration::hours(2)).await.is_empty());
    assert_eq!(w.mail.requests().len(), 1);

    // Past 90 %: new work is scheduled for the 1st of next month.
    articles(&w, 20, "Bridge").await; // 25 waiting
    w.usage.set(300, 50); // +0.165 cents → 92.7 %
    assert_eq!(run(&w, now()).await.sent, 10);
    let b = budget::current(&w.sql, now(), 1).await.expect("budget");
    assert_eq!(b.level(), Level::Deferred);
    assert_eq!(w.mail.requests().len(), 2, "the 90 % notice");
    let calls_before = w.messages.requests().len();
    let scheduled = tagging::schedule(&w.sql, &w.cache, &w.config, now())
        .await
        .expect("schedule");
    let next_month = Utc
        .with_ymd_and_hms(2026, 12, 1, 0, 0, 0)
        .single()
        .expect("t");
    assert!(
        matches!(scheduled, Scheduled::Deferred { until, .. } if until == next_month),
        "{scheduled:?}"
    );
    assert_eq!(run(&w, now()).await.outcome, "deferred");
    assert_eq!(
        scalar(
            &w,
            "SELECT count(*) AS n FROM delayed_jobs WHERE handler = 'ai.tag_items' \
                    AND run_at = '2026-12-01T00:00:00Z' AND status = 'pending'"
        )
        .await,
        1,
        "one deferred run, however often it is asked for"
    );
    assert_eq!(
        w.messages.requests().len(),
        calls_before,
        "no call while deferred"
    );

    // Another feature's spend takes the month to 100 %: hard stop.
    spend(&w, "fraud_check", 150_000).await;
    let b = budget::current(&w.sql, now(), 1).await.expect("budget");
    assert_eq!(b.level(), Level::Stopped);
    assert_eq!(run(&w, now()).await.outcome, "stopped");
    assert!(matches!(
        tagging::schedule(&w.sql, &w.cache, &w.config, now())
            .await
            .expect("schedule"),
        Scheduled::Skipped(_)
    ));
    assert_eq!(
        w.messages.requests().len(),
        calls_before,
        "no call after the stop"
    );
    let sent = notices(&w, &b, now()).await;
    assert_eq!(sent.len(), 2, "the 100 % notice, by email and Slack");
    assert!(sent.iter().all(|d| d.threshold == 100 && d.error.is_none()));
    assert_eq!(
        scalar(
            &w,
            "SELECT count(*) AS n FROM ai_budget_notices WHERE delivered_at IS NOT NULL"
        )
        .await,
        6,
        "every delivery recorded"
    );
    assert_eq!(
        scalar(
            &w,
            "SELECT count(*) AS n FROM feed_items WHERE tag_state = 'pending'"
        )
        .await,
        15,
        "the rest stay untagged"
    );

    // Next month the budget starts afresh and the deferred run proceeds.
    let december = next_month + Duration::hours(1);
    assert_eq!(
        budget::current(&w.sql, december, 1)
            .await
            .expect("budget")
            .level(),
        Level::Normal
    );
    let resumed = run(&w, december).await;
    assert_eq!((resumed.outcome, resumed.tagged), ("tagged", 15));
}

#[tokio::test]
async fn a_failed_notice_is_recorded_and_retried_later() {
    let w = world(1).await;
    spend(&w, "news_tagging", 800_000).await;
    w.mail_fails
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let b = budget::current(&w.sql, now(), 1).await.expect("budget");
    let first = notices(&w, &b, now()).await;
    let email = first
        .iter()
        .find(|d| d.channel == "email")
        .expect("email attempted");
    assert!(
        email.error.as_deref().is_some_and(|e| e.contains("500")),
        "{first:?}"
    );
    assert_eq!(
        scalar(
            &w,
            "SELECT count(*) AS n FROM ai_budget_notices WHERE channel = 'email' \
                    AND delivered_at IS NULL AND last_error LIKE '%500%' AND attempts = 1"
        )
        .await,
        1
    );
    // Not again within ten minutes; then again, and delivered.
    assert!(
        notices(&w, &b, now() + Duration::minutes(5))
            .await
            .is_empty()
    );
    w.mail_fails
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let later = notices(&w, &b, now() + Duration::minutes(11)).await;
    assert_eq!(later.len(), 1);
    assert!(later[0].error.is_none());
    assert_eq!(w.mail.requests().len(), 2);
    assert_eq!(
        w.slack.requests().len(),
        1,
        "Slack was delivered the first time"
    );
}
