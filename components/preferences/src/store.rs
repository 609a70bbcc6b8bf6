//! Loading and saving a visitor's preferences.

use village_platform::AnonId;
use village_platform::sql::{Sql, SqlError, SqlValue};

use crate::model::Preferences;

/// The visitor's saved preferences, if they ever saved any.
pub async fn load(sql: &impl Sql, anon: AnonId) -> Result<Option<Preferences>, SqlError> {
    let row = sql
        .query_opt(
            "SELECT p.schema_version, p.layout, p.settings \
             FROM user_preferences p JOIN users u ON u.id = p.user_id \
             WHERE u.anon_id = $1",
            &[SqlValue::Uuid(anon.as_uuid())],
        )
        .await?;
    let Some(row) = row else { return Ok(None) };
    let doc = serde_json::json!({
        "schema_version": row.get::<i32>("schema_version")?,
        "layout": row.get::<serde_json::Value>("layout")?,
        "settings": row.get::<serde_json::Value>("settings")?,
    });
    // Stored documents were validated on the way in; failing to read one back
    // is a bug or a missed upgrade, not the visitor's fault.
    serde_json::from_value(doc)
        .map(Some)
        .map_err(|e| SqlError::Decode(format!("stored preferences do not parse: {e}")))
}

/// Saves preferences, creating the anonymous `users` row on this first
/// write. One statement, so the user and the preferences appear together.
pub async fn save(sql: &impl Sql, anon: AnonId, prefs: &Preferences) -> Result<(), SqlError> {
    let layout =
        serde_json::to_value(&prefs.layout).map_err(|e| SqlError::Decode(e.to_string()))?;
    let settings =
        serde_json::to_value(&prefs.settings).map_err(|e| SqlError::Decode(e.to_string()))?;
    sql.execute(
        "WITH u AS ( \
             INSERT INTO users (is_anonymous, anon_id) VALUES (true, $1) \
             ON CONFLICT (anon_id) DO UPDATE SET last_seen_at = now() \
             RETURNING id) \
         INSERT INTO user_preferences (user_id, schema_version, layout, settings, updated_at) \
         SELECT id, $2, $3, $4, now() FROM u \
         ON CONFLICT (user_id) DO UPDATE SET schema_version = EXCLUDED.schema_version, \
             layout = EXCLUDED.layout, settings = EXCLUDED.settings, updated_at = now()",
        &[
            SqlValue::Uuid(anon.as_uuid()),
            SqlValue::Int32(prefs.schema_version),
            SqlValue::Json(layout),
            SqlValue::Json(settings),
        ],
    )
    .await?;
    Ok(())
}
