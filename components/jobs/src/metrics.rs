//! Job metrics: queue depth by queue and status (from Postgres, at scrape
//! time) and, per handler, runs, failures and time spent (counted in Redis
//! by the workers, one round trip per drain).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use village_platform::cache::{Cache, CacheArg, CacheError};
use village_platform::sql::{Sql, SqlError};

use crate::queue_stats;

/// The set of handlers with metrics (under the cache namespace).
const HANDLERS_KEY: &str = "metrics:jobs:handlers";

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct HandlerStats {
    pub runs: u64,
    pub failures: u64,
    pub micros: u64,
}

/// KEYS[1]: the handler set; ARGV[1]: the per-handler key prefix; then
/// (name, runs, failures, micros) per handler.
const RECORD_SCRIPT: &str = "for i = 2, #ARGV, 4 do \
       redis.call('SADD', KEYS[1], ARGV[i]) \
       local k = ARGV[1] .. ARGV[i] \
       redis.call('HINCRBY', k, 'runs', ARGV[i + 1]) \
       redis.call('HINCRBY', k, 'failures', ARGV[i + 2]) \
       redis.call('HINCRBY', k, 'micros', ARGV[i + 3]) \
     end \
     return 1";

fn handler_key(cache: &impl Cache, name: &str) -> String {
    cache.key(&format!("metrics:jobs:handler:{name}"))
}

pub async fn record(
    cache: &impl Cache,
    stats: &BTreeMap<String, HandlerStats>,
) -> Result<(), CacheError> {
    let mut args: Vec<CacheArg> = vec![
        RECORD_SCRIPT.into(),
        CacheArg::Int(1),
        cache.key(HANDLERS_KEY).into(),
        handler_key(cache, "").into(),
    ];
    for (name, s) in stats {
        args.push(name.clone().into());
        for n in [s.runs, s.failures, s.micros] {
            args.push(CacheArg::Int(i64::try_from(n).unwrap_or(i64::MAX)));
        }
    }
    cache.execute("EVAL", &args).await?;
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error(transparent)]
    Sql(#[from] SqlError),
    #[error(transparent)]
    Cache(#[from] CacheError),
}

/// Prometheus text for the job system.
pub async fn render(
    sql: &impl Sql,
    cache: &impl Cache,
    now: DateTime<Utc>,
) -> Result<String, MetricsError> {
    let mut out = String::new();
    out.push_str("# HELP village_job_queue_depth Jobs by queue and status.\n# TYPE village_job_queue_depth gauge\n");
    let stats = queue_stats(sql, now).await?;
    for q in &stats {
        for (status, n) in [
            ("pending", q.pending),
            ("due", q.due),
            ("running", q.running),
            ("succeeded", q.succeeded),
            ("dead", q.dead),
        ] {
            out.push_str(&format!(
                "village_job_queue_depth{{queue=\"{}\",status=\"{status}\"}} {n}\n",
                q.queue
            ));
        }
    }
    out.push_str("# HELP village_job_queue_paused Whether ops paused the queue.\n# TYPE village_job_queue_paused gauge\n");
    for q in &stats {
        out.push_str(&format!(
            "village_job_queue_paused{{queue=\"{}\"}} {}\n",
            q.queue,
            u8::from(q.paused.is_some())
        ));
    }
    let mut names: Vec<String> = cache
        .execute("SMEMBERS", &[cache.key(HANDLERS_KEY).into()])
        .await?
        .iter()
        .filter_map(|v| v.as_text())
        .collect();
    names.sort();
    let mut runs = String::new();
    let mut failures = String::new();
    let mut seconds = String::new();
    for name in names {
        let fields = village_platform::cache::counters(cache, &handler_key(cache, &name)).await?;
        let h = village_platform::metrics::escape_label(&name);
        let get = |k: &str| fields.get(k).copied().unwrap_or(0);
        runs.push_str(&format!(
            "village_job_runs_total{{handler=\"{h}\"}} {}\n",
            get("runs")
        ));
        failures.push_str(&format!(
            "village_job_failures_total{{handler=\"{h}\"}} {}\n",
            get("failures")
        ));
        seconds.push_str(&format!(
            "village_job_run_seconds_total{{handler=\"{h}\"}} {}\n",
            get("micros") as f64 / 1e6
        ));
    }
    out.push_str("# HELP village_job_runs_total Job attempts run, by handler.\n# TYPE village_job_runs_total counter\n");
    out.push_str(&runs);
    out.push_str("# HELP village_job_failures_total Failed job attempts, by handler.\n# TYPE village_job_failures_total counter\n");
    out.push_str(&failures);
    out.push_str("# HELP village_job_run_seconds_total Time spent running jobs, by handler.\n# TYPE village_job_run_seconds_total counter\n");
    out.push_str(&seconds);
    Ok(out)
}
