//! The cron trigger: runs each `[[trigger.cron]]` component on its schedule.
//!
//! Schedules use the cron trigger plugin's syntax: six fields, seconds first
//! (`sec min hour day-of-month month day-of-week`), parsed by the `cron`
//! crate. The component receives the scheduled instant, not the wall-clock
//! time it happened to start, so work keyed on the slot is idempotent.

use std::str::FromStr;
use std::sync::Arc;

use chrono::Utc;
use cron::Schedule;
use tokio::sync::watch;

use crate::app::App;

/// Parses a six-field cron expression.
pub fn parse_schedule(expr: &str) -> Result<Schedule, String> {
    let fields = expr.split_whitespace().count();
    if fields != 6 {
        return Err(format!(
            "`{expr}` has {fields} fields; the cron trigger takes six, seconds first (e.g. `0 */5 * * * *`)"
        ));
    }
    Schedule::from_str(expr).map_err(|e| format!("`{expr}`: {e}"))
}

pub async fn run(app: Arc<App>, shutdown: watch::Receiver<bool>) {
    let mut tasks = Vec::new();
    for t in &app.manifest.trigger.cron {
        if !app.components.contains_key(&t.component) {
            continue;
        }
        let schedule = match parse_schedule(&t.cron_expression) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("cron trigger for `{}`: {e}", t.component);
                continue;
            }
        };
        tasks.push(tokio::spawn(fire_loop(
            app.clone(),
            t.component.clone(),
            schedule,
            shutdown.clone(),
        )));
    }
    for t in tasks {
        if let Err(e) = t.await {
            tracing::error!("cron trigger task failed: {e}");
        }
    }
}

async fn fire_loop(
    app: Arc<App>,
    component: String,
    schedule: Schedule,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let Some(next) = schedule.upcoming(Utc).next() else {
            tracing::info!(component = %component, "cron schedule has no further runs");
            return;
        };
        let wait = (next - Utc::now()).to_std().unwrap_or_default();
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => return,
        }
        let app = app.clone();
        let component = component.clone();
        let timestamp = u64::try_from(next.timestamp()).unwrap_or_default();
        // Each firing runs on its own; a slow run does not delay the next slot.
        tokio::spawn(async move {
            if let Err(e) = app.invoke_cron(&component, timestamp).await {
                tracing::error!(component = %component, "{}", app.shared.variables.redact(&format!("{e:#}")));
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_six_fields_seconds_first() {
        assert!(parse_schedule("*/2 * * * * *").is_ok());
        assert!(parse_schedule("0 0 * * * *").is_ok());
        let err = parse_schedule("*/5 * * * *").expect_err("five fields");
        assert!(err.contains("six"), "{err}");
        assert!(parse_schedule("61 * * * * *").is_err());
    }
}
