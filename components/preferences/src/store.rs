//! Loading and saving a visitor's preferences.

use uuid::Uuid;
use village_platform::sql::{Sql, SqlError, SqlValue};
use village_platform::{AnonId, RequestContext};

use crate::model::Preferences;

/// Whose preferences: a signed-in account's, or an anonymous visitor's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    Anonymous(AnonId),
    User(Uuid),
}

impl Owner {
    /// The signed-in user the request acts as, else the anonymous visitor.
    pub fn of(ctx: &RequestContext) -> Owner {
        ctx.user_id()
            .map_or(Owner::Anonymous(ctx.anon_id), Owner::User)
    }
}

/// The owner's saved preferences, if they ever saved any.
pub async fn load(sql: &impl Sql, owner: Owner) -> Result<Option<Preferences>, SqlError> {
    let row = match owner {
        Owner::Anonymous(anon) => {
            sql.query_opt(
                "SELECT p.schema_version, p.layout, p.settings \
                 FROM user_preferences p JOIN users u ON u.id = p.user_id \
                 WHERE u.anon_id = $1",
                &[SqlValue::Uuid(anon.as_uuid())],
            )
            .await?
        }
        Owner::User(id) => {
            sql.query_opt(
                "SELECT schema_version, layout, settings FROM user_preferences WHERE user_id = $1",
                &[SqlValue::Uuid(id)],
            )
            .await?
        }
    };
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

/// Saves preferences; for an anonymous visitor this first write creates
/// their `users` row, in the same statement as the preferences.
pub async fn save(sql: &impl Sql, owner: Owner, prefs: &Preferences) -> Result<(), SqlError> {
    let layout =
        serde_json::to_value(&prefs.layout).map_err(|e| SqlError::Decode(e.to_string()))?;
    let settings =
        serde_json::to_value(&prefs.settings).map_err(|e| SqlError::Decode(e.to_string()))?;
    let (statement, who) = match owner {
        Owner::Anonymous(anon) => (
            "WITH u AS ( \
             INSERT INTO users (is_anonymous, anon_id) VALUES (true, $1) \
             ON CONFLICT (anon_id) DO UPDATE SET last_seen_at = now() \
             RETURNING id) \
         INSERT INTO user_preferences (user_id, schema_version, layout, settings, updated_at) \
         SELECT id, $2, $3, $4, now() FROM u \
         ON CONFLICT (user_id) DO UPDATE SET schema_version = EXCLUDED.schema_version, \
             layout = EXCLUDED.layout, settings = EXCLUDED.settings, updated_at = now()",
            anon.as_uuid(),
        ),
        Owner::User(id) => (
            "INSERT INTO user_preferences (user_id, schema_version, layout, settings, updated_at) \
             VALUES ($1, $2, $3, $4, now()) \
             ON CONFLICT (user_id) DO UPDATE SET schema_version = EXCLUDED.schema_version, \
             layout = EXCLUDED.layout, settings = EXCLUDED.settings, updated_at = now()",
            id,
        ),
    };
    sql.execute(
        statement,
        &[
            SqlValue::Uuid(who),
            SqlValue::Int32(prefs.schema_version),
            SqlValue::Json(layout),
            SqlValue::Json(settings),
        ],
    )
    .await?;
    Ok(())
}

/// Changes the settings of every widget of `kind` in the owner's
/// preferences (the defaults until they saved any) with `change`, and saves
/// them; an anonymous visitor's first save creates their row, as any save
/// does. Returns whether their homepage had such a widget (nothing is saved
/// when it had none). For the widgets' own forms (a place, say).
pub async fn update_widget_settings(
    sql: &impl Sql,
    owner: Owner,
    kind: crate::model::WidgetKind,
    change: impl Fn(&mut serde_json::Map<String, serde_json::Value>),
) -> Result<bool, SqlError> {
    let mut prefs = load(sql, owner).await?.unwrap_or_default();
    let mut found = false;
    for w in prefs.layout.widgets.iter_mut().filter(|w| w.kind == kind) {
        change(&mut w.settings);
        found = true;
    }
    if found {
        save(sql, owner, &prefs).await?;
    }
    Ok(found)
}
