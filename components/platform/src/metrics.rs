//! Request metrics, kept in Redis so every instance of every component adds
//! to the same counters, and rendered by the `metrics` component in the
//! Prometheus text exposition format (version 0.0.4).
//!
//! Recording is one round trip: a small Lua script updates a component's
//! hash (`count:<status>`, `bucket:<i>`, `sum_us`) and the set of components.
//! Counters reset if Redis restarts, which Prometheus handles as a counter
//! reset; nothing here is the only copy of anything.

use crate::cache::{Cache, CacheArg, CacheError};

/// The set of components with metrics (under the cache namespace).
const COMPONENTS_KEY: &str = "metrics:components";
/// Latency bucket upper bounds, in seconds.
pub const BUCKETS: [f64; 11] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

const RECORD_SCRIPT: &str = "redis.call('SADD', KEYS[2], ARGV[4]) \
     redis.call('HINCRBY', KEYS[1], 'count:' .. ARGV[1], 1) \
     redis.call('HINCRBY', KEYS[1], 'bucket:' .. ARGV[2], 1) \
     redis.call('HINCRBY', KEYS[1], 'sum_us', ARGV[3]) \
     return 1";

fn key(cache: &impl Cache, component: &str) -> String {
    cache.key(&format!("metrics:http:{component}"))
}

/// Index of the first bucket the latency fits in; `BUCKETS.len()` is +Inf.
pub fn bucket_index(seconds: f64) -> usize {
    BUCKETS
        .iter()
        .position(|b| seconds <= *b)
        .unwrap_or(BUCKETS.len())
}

pub async fn record(
    cache: &impl Cache,
    component: &str,
    status: u16,
    micros: u64,
) -> Result<(), CacheError> {
    let bucket = bucket_index(micros as f64 / 1e6);
    cache
        .execute(
            "EVAL",
            &[
                RECORD_SCRIPT.into(),
                CacheArg::Int(2),
                key(cache, component).into(),
                cache.key(COMPONENTS_KEY).into(),
                status.to_string().into(),
                bucket.to_string().into(),
                CacheArg::Int(i64::try_from(micros).unwrap_or(i64::MAX)),
                component.into(),
            ],
        )
        .await?;
    Ok(())
}

/// Renders every component's counters as Prometheus text.
pub async fn render(cache: &impl Cache) -> Result<String, CacheError> {
    let mut components: Vec<String> = cache
        .execute("SMEMBERS", &[cache.key(COMPONENTS_KEY).into()])
        .await?
        .iter()
        .filter_map(|v| v.as_text())
        .collect();
    components.sort();
    let mut counts = String::new();
    let mut histograms = String::new();
    for component in &components {
        let fields = crate::cache::counters(cache, &key(cache, component)).await?;
        let label = escape_label(component);
        let mut total = 0;
        for (k, v) in &fields {
            if let Some(status) = k.strip_prefix("count:") {
                total += v;
                let status = escape_label(status);
                line(
                    &mut counts,
                    format!(
                        "village_http_requests_total{{component=\"{label}\",status=\"{status}\"}} {v}"
                    ),
                );
            }
        }
        let mut cumulative = 0;
        for (i, bound) in BUCKETS.iter().enumerate() {
            cumulative += fields.get(&format!("bucket:{i}")).copied().unwrap_or(0);
            line(
                &mut histograms,
                format!(
                    "village_http_request_duration_seconds_bucket{{component=\"{label}\",le=\"{bound}\"}} {cumulative}"
                ),
            );
        }
        line(
            &mut histograms,
            format!(
                "village_http_request_duration_seconds_bucket{{component=\"{label}\",le=\"+Inf\"}} {total}"
            ),
        );
        let sum = fields.get("sum_us").copied().unwrap_or(0) as f64 / 1e6;
        line(
            &mut histograms,
            format!("village_http_request_duration_seconds_sum{{component=\"{label}\"}} {sum}"),
        );
        line(
            &mut histograms,
            format!("village_http_request_duration_seconds_count{{component=\"{label}\"}} {total}"),
        );
    }
    let mut out = String::new();
    out.push_str(
        "# HELP village_http_requests_total HTTP requests handled, by component and status.\n",
    );
    out.push_str("# TYPE village_http_requests_total counter\n");
    out.push_str(&counts);
    out.push_str("# HELP village_http_request_duration_seconds Time a component took to answer.\n");
    out.push_str("# TYPE village_http_request_duration_seconds histogram\n");
    out.push_str(&histograms);
    Ok(out)
}

/// Appends one line of exposition text.
fn line(out: &mut String, text: String) {
    out.push_str(&text);
    out.push('\n');
}

/// Escapes a Prometheus label value.
pub fn escape_label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_fall_in_the_first_bucket_that_holds_them() {
        assert_eq!(bucket_index(0.0005), 0);
        assert_eq!(bucket_index(0.001), 0);
        assert_eq!(bucket_index(0.0011), 1);
        assert_eq!(bucket_index(3.0), BUCKETS.len());
    }
}
