//! Analytics consent: the signed-in user's own decision, recorded with its
//! time and audited. Withdrawing it removes, at once, every analytics row
//! that names the user (feature-flag evaluations, and the user's name on
//! their tracked clicks).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use village_platform::audit;
use village_platform::sql::{Sql, SqlValue};
use village_platform::{AppError, RequestContext};

use crate::authz;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Consent {
    pub analytics: bool,
    /// When the user agreed (absent when they have not).
    pub analytics_since: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentBody {
    pub analytics: Option<bool>,
}

fn signed_in(ctx: &RequestContext) -> Result<Uuid, AppError> {
    ctx.user_id().ok_or(AppError::Unauthorized)
}

pub async fn get(sql: &impl Sql, ctx: &RequestContext) -> Result<Consent, AppError> {
    let user = signed_in(ctx)?;
    let row = sql
        .query_opt(
            "SELECT analytics_consent_at FROM users WHERE id = $1",
            &[SqlValue::Uuid(user)],
        )
        .await?
        .ok_or(AppError::NotFound)?;
    let since: Option<DateTime<Utc>> = row.get("analytics_consent_at")?;
    Ok(Consent {
        analytics: since.is_some(),
        analytics_since: since,
    })
}

/// Records the decision. Nobody decides for somebody else: refused (and
/// audited) while impersonating.
pub async fn set(
    sql: &impl Sql,
    ctx: &RequestContext,
    body: ConsentBody,
    now: DateTime<Utc>,
) -> Result<Consent, AppError> {
    let user = signed_in(ctx)?;
    let Some(analytics) = body.analytics else {
        return Err(AppError::Validation(vec![
            village_platform::FieldError::new("analytics", "required: true or false"),
        ]));
    };
    authz::refuse_while_impersonating(sql, ctx, "consent.analytics").await?;
    let row = sql
        .query_opt(
            "UPDATE users SET analytics_consent_at = \
                 CASE WHEN $2 THEN coalesce(analytics_consent_at, $3) ELSE NULL END \
             WHERE id = $1 RETURNING analytics_consent_at",
            &[
                SqlValue::Uuid(user),
                SqlValue::Bool(analytics),
                SqlValue::Timestamp(now),
            ],
        )
        .await?
        .ok_or(AppError::NotFound)?;
    let purged = if analytics {
        0
    } else {
        village_flags::retention::purge_user(sql, user).await?
            + village_clicks::record::forget_user(sql, user).await?
    };
    let mut e = authz::entry(ctx, Some(user), "consent.analytics");
    e.target_type = Some("user".into());
    e.target_id = Some(user.to_string());
    e.after = Some(serde_json::json!({ "analytics": analytics, "rows_purged": purged }));
    audit::record(sql, &e).await?;
    let since: Option<DateTime<Utc>> = row.get("analytics_consent_at")?;
    Ok(Consent {
        analytics: since.is_some(),
        analytics_since: since,
    })
}
