//! The `stocks` component's routes, all behind the `stocks_widget` flag
//! (404 while it is off for the visitor):
//!
//! | route | what |
//! |---|---|
//! | `GET /api/stocks/watchlist` | the visitor's symbols with their cached quotes |
//! | `POST /api/stocks/watchlist` `{"symbol"}` | adds a symbol (201), after Alpha Vantage confirms it |
//! | `DELETE /api/stocks/watchlist/{symbol}` | removes one (204; 404 if absent) |
//! | `POST /stocks/watchlist` (form `symbol`) | the widget's add form |
//! | `POST /stocks/watchlist/{symbol}/remove` | the widget's remove button |

use chrono::{DateTime, Utc};
use serde::Deserialize;
use village_flags::Visitor;
use village_platform::admin::parse_body;
use village_platform::cache::Cache;
use village_platform::http_client::HttpClient;
use village_platform::sql::Sql;
use village_platform::web::{self, Response};
use village_platform::{AppError, RequestContext};
use village_preferences::Owner;

use crate::{Config, watchlist};

pub struct StocksRequest<'a> {
    pub method: &'a http::Method,
    pub path: &'a str,
    pub body: &'a [u8],
}

pub struct Services<'a, S, K, H> {
    pub sql: &'a S,
    pub cache: &'a K,
    pub http: &'a H,
    pub config: &'a Config,
    pub now: DateTime<Utc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddBody {
    symbol: String,
}

pub async fn handle<S: Sql, K: Cache, H: HttpClient>(
    req: StocksRequest<'_>,
    s: &Services<'_, S, K, H>,
    ctx: &RequestContext,
) -> Result<Response, AppError> {
    let flags = village_flags::flags_for(s.sql, s.cache, &Visitor::of(ctx), s.now).await;
    if !flags.is_on(crate::FLAG) {
        return Err(AppError::NotFound);
    }
    let owner = Owner::of(ctx);
    use http::Method as M;
    let segments = web::path_segments(req.path);
    match (req.method, segments.as_slice()) {
        (&M::GET, ["api", "stocks", "watchlist"]) => {
            let view = crate::widget::view(s.sql, owner, s.now).await?;
            let items: Vec<serde_json::Value> = view
                .items
                .iter()
                .map(|q| {
                    serde_json::json!({ "symbol": q.symbol, "name": q.name, "price": q.price,
                                        "change": q.change, "as_of": q.as_of })
                })
                .collect();
            Ok(web::json(
                http::StatusCode::OK,
                &serde_json::json!({ "symbols": items, "market": view.market, "notice": view.notice }),
            ))
        }
        (&M::POST, ["api", "stocks", "watchlist"]) => {
            let body: AddBody = parse_body(req.body)?;
            let added =
                watchlist::add(s.sql, s.cache, s.http, s.config, owner, &body.symbol, s.now)
                    .await?;
            Ok(web::json(http::StatusCode::CREATED, &added))
        }
        (&M::DELETE, ["api", "stocks", "watchlist", symbol]) => {
            if watchlist::remove(s.sql, owner, symbol).await? {
                Ok(web::text(http::StatusCode::NO_CONTENT, ""))
            } else {
                Err(AppError::NotFound)
            }
        }
        (&M::POST, ["stocks", "watchlist"]) => {
            let symbol = web::query_param(req.body, "symbol").unwrap_or_default();
            watchlist::add(s.sql, s.cache, s.http, s.config, owner, &symbol, s.now).await?;
            Ok(web::see_other("/#widget-stocks"))
        }
        (&M::POST, ["stocks", "watchlist", symbol, "remove"]) => {
            watchlist::remove(s.sql, owner, symbol).await?;
            Ok(web::see_other("/#widget-stocks"))
        }
        (_, ["api", "stocks", "watchlist"]) => Err(AppError::MethodNotAllowed {
            allowed: "GET, POST",
        }),
        _ => Err(AppError::NotFound),
    }
}
