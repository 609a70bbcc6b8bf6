//! `/admin/api/good-sites/...` (component `admin-good-sites`, for callers
//! with `moderate_content`): appointing moderators to categories. Each
//! appointment and dismissal is audited with the change (the blueprint:
//! moderator assignments create audit entries).
//!
//! | method | path | what |
//! |---|---|---|
//! | GET | `/admin/api/good-sites/moderators` | every appointment |
//! | POST | `/admin/api/good-sites/moderators` `{user_id, category}` | appoint |
//! | DELETE | `/admin/api/good-sites/moderators/{user_id}/{category}` | dismiss |

use chrono::{DateTime, Utc};
use serde::Deserialize;
use uuid::Uuid;
use village_platform::admin::{Actor, parse_body};
use village_platform::audit::AuditEntry;
use village_platform::error::FieldError;
use village_platform::sql::Sql;
use village_platform::web::{self, Response};
use village_platform::{AppError, RequestContext};

use crate::categories;

pub const PREFIX: &str = "/admin/api/good-sites";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AppointBody {
    user_id: Option<String>,
    category: Option<String>,
}

fn entry(ctx: &RequestContext, actor: &Actor, action: &str, user: Uuid) -> AuditEntry {
    AuditEntry {
        actor_label: actor.label.clone(),
        target_type: Some("user".into()),
        target_id: Some(user.to_string()),
        ..AuditEntry::for_request(ctx, actor.user_id, action)
    }
}

pub async fn handle(
    sql: &impl Sql,
    method: &http::Method,
    path: &str,
    body: &[u8],
    actor: &Actor,
    ctx: &RequestContext,
    now: DateTime<Utc>,
) -> Result<Response, AppError> {
    let segments = web::path_segments(path);
    match (method, segments.as_slice()) {
        (&http::Method::GET, ["moderators"]) => Ok(web::json(
            http::StatusCode::OK,
            &serde_json::json!({ "moderators": crate::moderation::appointments(sql).await? }),
        )),
        (&http::Method::POST, ["moderators"]) => {
            let body: AppointBody = parse_body(body)?;
            let mut errors = Vec::new();
            let user = body
                .user_id
                .as_deref()
                .and_then(|u| Uuid::try_parse(u.trim()).ok());
            if user.is_none() {
                errors.push(FieldError::new("user_id", "a user id (UUID)"));
            }
            let category = match body.category.as_deref() {
                Some(slug) if slug.len() <= 64 => categories::by_slug(sql, slug.trim()).await?,
                _ => None,
            };
            if category.is_none() {
                errors.push(FieldError::new("category", "no such category"));
            }
            let (Some(user), Some(category)) = (user, category) else {
                return Err(AppError::Validation(errors));
            };
            let admin = actor.user_id.ok_or(AppError::Unauthorized)?;
            let added = crate::moderation::appoint(
                sql,
                &entry(ctx, actor, "directory.moderator.appoint", user),
                admin,
                user,
                &category,
                now,
            )
            .await?;
            if !added
                && !crate::moderation::appointments(sql)
                    .await?
                    .iter()
                    .any(|a| a.user_id == user && a.category == category.slug)
            {
                return Err(AppError::Validation(vec![FieldError::new(
                    "user_id",
                    "no such user",
                )]));
            }
            Ok(web::json(
                if added {
                    http::StatusCode::CREATED
                } else {
                    http::StatusCode::OK
                },
                &serde_json::json!({ "user_id": user, "category": category.slug, "appointed": added }),
            ))
        }
        (&http::Method::DELETE, ["moderators", user, slug]) => {
            let user = Uuid::try_parse(user).map_err(|_| AppError::NotFound)?;
            let category = categories::by_slug(sql, slug)
                .await?
                .ok_or(AppError::NotFound)?;
            if crate::moderation::dismiss(
                sql,
                &entry(ctx, actor, "directory.moderator.dismiss", user),
                user,
                &category,
            )
            .await?
            {
                Ok(web::text(http::StatusCode::NO_CONTENT, ""))
            } else {
                Err(AppError::NotFound)
            }
        }
        (_, ["moderators"]) => Err(AppError::MethodNotAllowed {
            allowed: "GET, POST",
        }),
        _ => Err(AppError::NotFound),
    }
}
