//! The homepage: a server-rendered grid of the visitor's widgets, readable
//! without JavaScript. Templates are `askama` (compiled, HTML-escaped by
//! default), so nothing a visitor stored can inject markup.

use askama::Template;
use chrono::{DateTime, Utc};
use village_flags::Visitor;
use village_platform::cache::Cache;
use village_platform::sql::Sql;
use village_platform::web::{self, Response};
use village_platform::{AppError, RequestContext};
use village_preferences::{Owner, Preferences, Theme, WidgetKind};

struct WidgetView {
    id: String,
    kind: &'static str,
    size: &'static str,
    title: &'static str,
    empty: &'static str,
}

#[derive(Template)]
#[template(path = "homepage.html")]
struct HomepageTemplate<'a> {
    theme: &'static str,
    columns: Vec<Vec<WidgetView>>,
    viewer: &'a Viewer,
}

/// Who is looking, for the header: sign-in links, or the signed-in state and
/// the impersonation banner.
#[derive(Debug, Clone, Default)]
pub struct Viewer {
    pub signed_in: bool,
    pub impersonating: bool,
    /// `(id, display name)` of each configured sign-in provider.
    pub providers: Vec<(&'static str, &'static str)>,
}

/// What a widget says until its feature (a later issue) gives it content.
fn empty_text(kind: WidgetKind) -> &'static str {
    match kind {
        WidgetKind::News => "Headlines from your news feeds will appear here.",
        WidgetKind::Weather => "Your local forecast will appear here.",
        WidgetKind::Stocks => "Quotes for the symbols you follow will appear here.",
        WidgetKind::Social => "Posts from the accounts you connect will appear here.",
        WidgetKind::Marketplace => "New listings near you will appear here.",
        WidgetKind::GoodSites => "Picks from the Good Sites directory will appear here.",
        WidgetKind::QuickLinks => "Your quick links will appear here.",
    }
}

/// The feature flag that shows each widget (all created by migration V9):
/// a widget whose flag is off for the visitor is not rendered.
pub fn widget_flag(kind: WidgetKind) -> &'static str {
    match kind {
        WidgetKind::News => "news_widget",
        WidgetKind::Weather => "weather_widget",
        WidgetKind::Stocks => "stocks_widget",
        WidgetKind::Social => "social_integration",
        WidgetKind::Marketplace => "marketplace_widget",
        WidgetKind::GoodSites => "good_sites_widget",
        WidgetKind::QuickLinks => "quick_links_widget",
    }
}

/// Renders the homepage for a set of preferences, with the widgets
/// `visible` allows.
pub fn render(
    prefs: &Preferences,
    viewer: &Viewer,
    visible: impl Fn(WidgetKind) -> bool,
) -> Result<String, AppError> {
    let columns = prefs
        .layout
        .columns()
        .into_iter()
        .map(|col| {
            col.into_iter()
                .filter(|w| visible(w.kind))
                .map(|w| WidgetView {
                    id: w.id.clone(),
                    kind: w.kind.as_str(),
                    size: w.size.as_str(),
                    title: w.kind.title(),
                    empty: empty_text(w.kind),
                })
                .collect()
        })
        .collect();
    let theme = match prefs.settings.theme {
        Theme::System => "system",
        Theme::Light => "light",
        Theme::Dark => "dark",
    };
    HomepageTemplate {
        theme,
        columns,
        viewer,
    }
    .render()
    .map_err(|e| AppError::Internal(format!("failed to render the homepage: {e}")))
}

/// `GET /`: the visitor's saved layout, or the default one, without the
/// widgets whose flag is off for them. Reads only: a page view never
/// creates a user row.
pub async fn page(
    method: &http::Method,
    sql: &impl Sql,
    cache: &impl Cache,
    ctx: &RequestContext,
    providers: Vec<(&'static str, &'static str)>,
    now: DateTime<Utc>,
) -> Result<Response, AppError> {
    if method != http::Method::GET && method != http::Method::HEAD {
        return Err(AppError::MethodNotAllowed {
            allowed: "GET, HEAD",
        });
    }
    let owner = Owner::of(ctx);
    let prefs = if ctx.anon_id_is_new && owner == Owner::Anonymous(ctx.anon_id) {
        Preferences::default()
    } else {
        village_preferences::load(sql, owner)
            .await?
            .unwrap_or_default()
    };
    let viewer = Viewer {
        signed_in: ctx.principal.is_some(),
        impersonating: ctx.principal.as_ref().is_some_and(|p| p.is_impersonating()),
        providers,
    };
    let flags = village_flags::flags_for(sql, cache, &Visitor::of(ctx), now).await;
    let html = render(&prefs, &viewer, |kind| flags.is_on(widget_flag(kind)))?;
    let mut r = web::html(http::StatusCode::OK, html);
    // Personal content: never cached by shared caches.
    r.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("private, no-store"),
    );
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_header_and_one_section_per_widget() {
        let html = render(&Preferences::default(), &Viewer::default(), |_| true).expect("renders");
        assert!(html.contains("<h1"), "{html}");
        assert!(html.contains("Village Homepage"));
        for id in ["news", "weather", "stocks", "good-sites", "marketplace"] {
            assert!(
                html.contains(&format!("id=\"widget-{id}\"")),
                "widget {id} missing"
            );
        }
        assert_eq!(html.matches("<section").count(), 5);
        assert!(html.contains("aria-labelledby=\"widget-news-title\""));
    }

    #[test]
    fn widgets_whose_flag_is_off_are_not_rendered() {
        let html = render(&Preferences::default(), &Viewer::default(), |k| {
            widget_flag(k) != "stocks_widget"
        })
        .expect("renders");
        assert!(!html.contains("id=\"widget-stocks\""), "{html}");
        assert!(html.contains("id=\"widget-news\""));
    }

    #[test]
    fn widgets_render_in_column_then_position_order() {
        let mut prefs = Preferences::default();
        prefs.layout.columns = 1;
        for (i, w) in prefs.layout.widgets.iter_mut().enumerate() {
            w.column = 0;
            w.position = 10 - i as u16;
        }
        let html = render(&prefs, &Viewer::default(), |_| true).expect("renders");
        let at = |id: &str| html.find(&format!("id=\"widget-{id}\"")).expect("present");
        assert!(
            at("marketplace") < at("news"),
            "position order, not insertion order"
        );
    }
}
