//! `/api/preferences`: GET and PUT of the visitor's preferences as JSON.

use village_platform::sql::Sql;
use village_platform::web::{self, Response};
use village_platform::{AppError, RequestContext};

use crate::{Owner, Preferences, load, parse, save};

pub async fn handle(
    method: &http::Method,
    body: &[u8],
    sql: &impl Sql,
    ctx: &RequestContext,
) -> Result<Response, AppError> {
    match *method {
        http::Method::GET => {
            let owner = Owner::of(ctx);
            let prefs = if ctx.anon_id_is_new && owner == Owner::Anonymous(ctx.anon_id) {
                Preferences::default()
            } else {
                load(sql, owner).await?.unwrap_or_default()
            };
            Ok(no_store(web::json(http::StatusCode::OK, &prefs)))
        }
        http::Method::PUT => {
            // Validation happens entirely before the write: a bad document
            // stores nothing.
            let prefs = parse(body)?;
            save(sql, Owner::of(ctx), &prefs).await?;
            Ok(no_store(web::json(http::StatusCode::OK, &prefs)))
        }
        _ => Err(AppError::MethodNotAllowed {
            allowed: "GET, PUT",
        }),
    }
}

fn no_store(mut r: Response) -> Response {
    r.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("private, no-store"),
    );
    r
}
