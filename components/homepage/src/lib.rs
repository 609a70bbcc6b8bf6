//! The homepage: a server-rendered grid of the visitor's widgets, readable
//! without JavaScript. Templates are `askama` (compiled, HTML-escaped by
//! default), so nothing a visitor stored can inject markup.

use askama::Template;
use chrono::{DateTime, Utc};
use village_clicks::{Link, LinkKind, LinkSigner};
use village_flags::Visitor;
use village_platform::cache::Cache;
use village_platform::sql::Sql;
use village_platform::web::{self, Response};
use village_platform::{AppError, RequestContext};
use village_preferences::{Owner, Preferences, Theme, WidgetKind};
use village_social::widget::SocialView;
use village_stocks::widget::StocksView;
use village_weather::widget::WeatherView;

struct WidgetView<'n> {
    id: String,
    kind: &'static str,
    size: &'static str,
    title: &'static str,
    empty: &'static str,
    /// The news widget's content (`None` for other widgets).
    news: Option<&'n NewsView>,
    /// The marketplace widget's content (`None` for other widgets).
    market: Option<&'n MarketView>,
    /// The Good Sites widget's content (`None` for other widgets).
    good_sites: Option<&'n GoodSitesView>,
    weather: Option<&'n WeatherView>,
    stocks: Option<&'n StocksView>,
    social: Option<&'n SocialView>,
}

/// What widgets with content of their own show.
#[derive(Debug, Clone, Default)]
pub struct WidgetContent {
    pub news: Option<NewsView>,
    pub market: Option<MarketView>,
    pub good_sites: Option<GoodSitesView>,
    pub weather: Option<WeatherView>,
    pub stocks: Option<StocksView>,
    pub social: Option<SocialView>,
}

/// The Good Sites widget's content, ready to render (links tracked).
#[derive(Debug, Clone, Default)]
pub struct GoodSitesView {
    pub picks: village_directory::widget::Picks,
    /// Set when the directory could not be read (the page still renders).
    pub unavailable: bool,
}

/// The marketplace widget's content, ready to render.
#[derive(Debug, Clone, Default)]
pub struct MarketView {
    /// "Portland, OR" when the visitor chose a place.
    pub near: Option<String>,
    pub radius_miles: u16,
    pub items: Vec<MarketItemView>,
    /// Set when listings could not be read (the page still renders).
    pub unavailable: bool,
}

#[derive(Debug, Clone)]
pub struct MarketItemView {
    pub id: i64,
    pub title: String,
    pub price: String,
    pub place: String,
    pub thumbnail: Option<String>,
    /// A paid promotion: featured (first) or highlighted.
    pub featured: bool,
    pub highlighted: bool,
}

impl MarketView {
    fn from_newest(n: village_marketplace::widget::Newest) -> Self {
        MarketView {
            near: n.near,
            radius_miles: n.radius_miles,
            items: n
                .listings
                .into_iter()
                .map(|h| MarketItemView {
                    id: h.id,
                    title: h.title,
                    price: village_marketplace::money(h.price_cents),
                    place: h.place_name,
                    featured: h.featured,
                    highlighted: h.highlighted,
                    thumbnail: h
                        .thumbnail_key
                        .as_deref()
                        .map(village_marketplace::images::public_path),
                })
                .collect(),
            unavailable: false,
        }
    }
}

/// The news widget's content, ready to render.
#[derive(Debug, Clone, Default)]
pub struct NewsView {
    pub items: Vec<NewsItemView>,
    /// Tags to filter by, most used first.
    pub tags: Vec<String>,
    /// The tag being shown, if filtered.
    pub tag: Option<String>,
    pub feeds: Vec<FeedView>,
    /// The most opened of the visitor's articles (by everyone's visits),
    /// as tracked links.
    pub most_read: Vec<(String, String)>,
    /// Set when the news could not be read (the page still renders).
    pub unavailable: bool,
    pub can_edit: bool,
}

#[derive(Debug, Clone)]
pub struct NewsItemView {
    pub title: String,
    pub link: Option<String>,
    /// Sanitised when stored (`village_feeds::parse`, ammonia).
    pub summary_html: String,
    pub sources: String,
    pub at_iso: String,
    pub at_text: String,
    pub tags: Vec<String>,
    pub tagged: bool,
}

#[derive(Debug, Clone)]
pub struct FeedView {
    pub id: i64,
    pub name: String,
    pub url: String,
    /// `ok`, `waiting`, `stale` or `failing`.
    pub health: &'static str,
    /// What the visitor is told about a feed that is not `ok`.
    pub problem: Option<String>,
}

impl NewsView {
    /// The view of `news`; article links go through `/track/click` when
    /// `signer` is set.
    pub fn from_news(
        news: village_feeds::view::News,
        can_edit: bool,
        now: DateTime<Utc>,
        signer: Option<&LinkSigner>,
    ) -> Self {
        let tracked = |link: &str, id: i64, source: &str, position: usize| {
            LinkSigner::href_or_plain(
                signer,
                &Link::to(link, LinkKind::Article, id, source).at(position),
            )
        };
        use village_feeds::subscriptions::Health;
        let feeds = news
            .feeds
            .iter()
            .map(|f| {
                let (health, problem) = match f.health {
                    Health::Ok => ("ok", None),
                    Health::Waiting => ("waiting", Some("waiting for its first fetch".to_owned())),
                    Health::Stale => (
                        "stale",
                        Some(format!(
                            "not updated since {}",
                            f.last_success_at
                                .map_or_else(|| "ever".to_owned(), |t| ago(t, now))
                        )),
                    ),
                    Health::Failing => (
                        "failing",
                        Some(format!(
                            "failing: {}; next try {}",
                            f.last_error.clone().unwrap_or_default(),
                            until(f.next_fetch_at, now)
                        )),
                    ),
                };
                FeedView {
                    id: f.id,
                    name: f.name().to_owned(),
                    url: f.url.clone(),
                    health,
                    problem,
                }
            })
            .collect();
        NewsView {
            items: news
                .items
                .into_iter()
                .enumerate()
                .map(|(n, i)| NewsItemView {
                    link: i
                        .link
                        .as_deref()
                        .map(|l| tracked(l, i.id, "news_widget", n + 1)),
                    title: i.title,
                    summary_html: i.summary_html,
                    sources: i.sources.join(", "),
                    at_iso: i.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    at_text: ago(i.at, now),
                    tags: i.tags,
                    tagged: i.tagged,
                })
                .collect(),
            tags: news.tags,
            tag: news.tag,
            feeds,
            most_read: news
                .most_read
                .iter()
                .enumerate()
                .filter_map(|(n, p)| {
                    p.link
                        .as_deref()
                        .map(|l| (p.title.clone(), tracked(l, p.id, "news_most_read", n + 1)))
                })
                .collect(),
            unavailable: false,
            can_edit,
        }
    }

    fn problems(&self) -> impl Iterator<Item = &FeedView> {
        self.feeds.iter().filter(|f| f.problem.is_some())
    }
}

/// "5 minutes ago", "3 hours ago", "2 days ago".
fn ago(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (now - t).num_seconds().max(0);
    match secs {
        0..60 => "just now".to_owned(),
        60..3_600 => plural(secs / 60, "minute", "ago"),
        3_600..86_400 => plural(secs / 3_600, "hour", "ago"),
        _ => plural(secs / 86_400, "day", "ago"),
    }
}

/// "in 10 minutes", or "soon" when due.
fn until(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (t - now).num_seconds();
    match secs {
        ..60 => "soon".to_owned(),
        60..3_600 => format!("in {}", plural(secs / 60, "minute", "")),
        3_600..86_400 => format!("in {}", plural(secs / 3_600, "hour", "")),
        _ => format!("in {}", plural(secs / 86_400, "day", "")),
    }
    .trim_end()
    .to_owned()
}

fn plural(n: i64, unit: &str, suffix: &str) -> String {
    let s = if n == 1 { "" } else { "s" };
    format!("{n} {unit}{s} {suffix}").trim_end().to_owned()
}

impl HomepageTemplate<'_> {
    /// The homepage filtered to one tag (the value percent-encoded).
    fn tag_href(&self, tag: &str) -> String {
        let encoded: String = url::form_urlencoded::byte_serialize(tag.as_bytes()).collect();
        format!("/?tag={encoded}#widget-news")
    }
}

#[derive(Template)]
#[template(path = "homepage.html")]
struct HomepageTemplate<'a> {
    theme: &'static str,
    columns: Vec<Vec<WidgetView<'a>>>,
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
/// `visible` allows, the news and marketplace widgets filled from `content`.
pub fn render(
    prefs: &Preferences,
    viewer: &Viewer,
    content: &WidgetContent,
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
                    news: content.news.as_ref().filter(|_| w.kind == WidgetKind::News),
                    market: content
                        .market
                        .as_ref()
                        .filter(|_| w.kind == WidgetKind::Marketplace),
                    good_sites: content
                        .good_sites
                        .as_ref()
                        .filter(|_| w.kind == WidgetKind::GoodSites),
                    weather: content
                        .weather
                        .as_ref()
                        .filter(|_| w.kind == WidgetKind::Weather),
                    stocks: content
                        .stocks
                        .as_ref()
                        .filter(|_| w.kind == WidgetKind::Stocks),
                    social: content
                        .social
                        .as_ref()
                        .filter(|_| w.kind == WidgetKind::Social),
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

/// What the component's settings give the page.
pub struct PageConfig<'a> {
    /// `(id, display name)` of each configured sign-in provider.
    pub providers: Vec<(&'static str, &'static str)>,
    /// Signs outbound links (`None`: they are rendered plain).
    pub signer: Option<&'a LinkSigner>,
}

/// `GET /`: the visitor's saved layout, or the default one, without the
/// widgets whose flag is off for them; `?tag=` filters the news. Reads
/// only: a page view never creates a user row.
pub async fn page(
    method: &http::Method,
    query: &str,
    sql: &impl Sql,
    cache: &impl Cache,
    ctx: &RequestContext,
    config: PageConfig<'_>,
    now: DateTime<Utc>,
) -> Result<Response, AppError> {
    let PageConfig { providers, signer } = config;
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
    let news = if flags.is_on(widget_flag(WidgetKind::News)) {
        let tag = web::query_param(query.as_bytes(), "tag");
        Some(load_news(sql, ctx, tag.as_deref(), signer, now).await)
    } else {
        None
    };
    let market = match prefs
        .layout
        .widgets
        .iter()
        .find(|w| w.kind == WidgetKind::Marketplace)
    {
        Some(w) if flags.is_on(widget_flag(WidgetKind::Marketplace)) => {
            let promotions = flags
                .is_on(village_marketplace::PROMOTIONS_FLAG)
                .then_some(now);
            Some(load_market(sql, &w.settings, promotions).await)
        }
        _ => None,
    };
    let good_sites = match prefs
        .layout
        .widgets
        .iter()
        .find(|w| w.kind == WidgetKind::GoodSites)
    {
        Some(w) if flags.is_on(widget_flag(WidgetKind::GoodSites)) => {
            Some(load_good_sites(sql, signer, &w.settings).await)
        }
        _ => None,
    };
    // Weather, stocks and social render from the caches their crons fill:
    // no provider is called while the page renders.
    let weather = match prefs
        .layout
        .widgets
        .iter()
        .find(|w| w.kind == WidgetKind::Weather)
    {
        Some(w) if flags.is_on(widget_flag(WidgetKind::Weather)) => Some(degrade(
            "weather",
            village_weather::widget::view(sql, &w.settings, prefs.settings.units, now).await,
            || WeatherView {
                unavailable: true,
                ..WeatherView::default()
            },
        )),
        _ => None,
    };
    // The location is in use: the hourly refresh keeps it (a write that
    // runs after the answer has gone, never before it).
    if let Some(at) = weather.as_ref().and_then(|w| w.location) {
        village_weather::schedule::mark_seen(cache, &at).await;
    }
    let has = |kind| prefs.layout.widgets.iter().any(|w| w.kind == kind);
    let stocks = if has(WidgetKind::Stocks) && flags.is_on(widget_flag(WidgetKind::Stocks)) {
        Some(degrade(
            "stocks",
            village_stocks::widget::view(sql, owner, now).await,
            || StocksView {
                unavailable: true,
                ..StocksView::default()
            },
        ))
    } else {
        None
    };
    let social = if has(WidgetKind::Social) && flags.is_on(widget_flag(WidgetKind::Social)) {
        Some(degrade(
            "social",
            village_social::widget::view(sql, ctx.user_id()).await,
            || SocialView {
                unavailable: true,
                signed_in: ctx.principal.is_some(),
                ..SocialView::default()
            },
        ))
    } else {
        None
    };
    let content = WidgetContent {
        news,
        market,
        good_sites,
        weather,
        stocks,
        social,
    };
    let html = render(&prefs, &viewer, &content, |kind| {
        flags.is_on(widget_flag(kind))
    })?;
    let mut r = web::html(http::StatusCode::OK, html);
    // Personal content: never cached by shared caches.
    r.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("private, no-store"),
    );
    Ok(r)
}

/// A widget's content, or — when its cache cannot be read — the widget's
/// "unavailable" state, logged: a failure degrades the widget, never the
/// page.
fn degrade<T, E: std::fmt::Display>(
    widget: &str,
    result: Result<T, E>,
    unavailable: impl FnOnce() -> T,
) -> T {
    result.unwrap_or_else(|e| {
        village_platform::log::event(
            "ERROR",
            &format!("{widget} could not be read: {e}"),
            serde_json::json!({ "widget": widget }),
        );
        unavailable()
    })
}

/// The newest listings near the visitor's place; a failure degrades the
/// widget, never the page.
async fn load_market(
    sql: &impl Sql,
    settings: &serde_json::Map<String, serde_json::Value>,
    promotions: Option<DateTime<Utc>>,
) -> MarketView {
    match village_marketplace::widget::newest(sql, settings, promotions).await {
        Ok(n) => MarketView::from_newest(n),
        Err(e) => {
            village_platform::log::event(
                "ERROR",
                &format!("listings could not be read: {e}"),
                serde_json::json!({ "widget": "marketplace" }),
            );
            MarketView {
                unavailable: true,
                ..MarketView::default()
            }
        }
    }
}

/// The directory's top sites; a failure degrades the widget, never the page.
async fn load_good_sites(
    sql: &impl Sql,
    signer: Option<&LinkSigner>,
    settings: &serde_json::Map<String, serde_json::Value>,
) -> GoodSitesView {
    match village_directory::widget::picks(sql, signer, settings).await {
        Ok(picks) => GoodSitesView {
            picks,
            unavailable: false,
        },
        Err(e) => {
            village_platform::log::event(
                "ERROR",
                &format!("good sites could not be read: {e}"),
                serde_json::json!({ "widget": "good_sites" }),
            );
            GoodSitesView {
                unavailable: true,
                ..GoodSitesView::default()
            }
        }
    }
}

/// The visitor's news; a failure degrades the widget, never the page.
async fn load_news(
    sql: &impl Sql,
    ctx: &RequestContext,
    tag: Option<&str>,
    signer: Option<&LinkSigner>,
    now: DateTime<Utc>,
) -> NewsView {
    let user = ctx.user_id();
    match village_feeds::view::news_for(sql, user, tag, village_feeds::view::WIDGET_ITEMS, now)
        .await
    {
        Ok(news) => NewsView::from_news(news, user.is_some(), now, signer),
        Err(e) => {
            village_platform::log::event(
                "ERROR",
                &format!("news could not be read: {e}"),
                serde_json::json!({ "widget": "news" }),
            );
            NewsView {
                unavailable: true,
                ..NewsView::default()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_header_and_one_section_per_widget() {
        let html = render(
            &Preferences::default(),
            &Viewer::default(),
            &WidgetContent::default(),
            |_| true,
        )
        .expect("renders");
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
        let html = render(
            &Preferences::default(),
            &Viewer::default(),
            &WidgetContent::default(),
            |k| widget_flag(k) != "stocks_widget",
        )
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
        let html = render(
            &prefs,
            &Viewer::default(),
            &WidgetContent::default(),
            |_| true,
        )
        .expect("renders");
        let at = |id: &str| html.find(&format!("id=\"widget-{id}\"")).expect("present");
        assert!(
            at("marketplace") < at("news"),
            "position order, not insertion order"
        );
    }

    fn news() -> NewsView {
        NewsView {
            items: vec![
                NewsItemView {
                    title: "Council <script>x</script> votes".into(),
                    link: Some("https://news.example.org/council".into()),
                    summary_html: "<p>Budget <b>passed</b></p>".into(),
                    sources: "Vale News".into(),
                    at_iso: "2026-11-27T08:00:00Z".into(),
                    at_text: "1 hour ago".into(),
                    tags: vec!["local government".into()],
                    tagged: true,
                },
                NewsItemView {
                    title: "Storm warning".into(),
                    link: None,
                    summary_html: String::new(),
                    sources: "Late Edition".into(),
                    at_iso: "2026-11-27T09:00:00Z".into(),
                    at_text: "just now".into(),
                    tags: vec![],
                    tagged: false,
                },
            ],
            tags: vec!["local government".into()],
            tag: None,
            feeds: vec![FeedView {
                id: 7,
                name: "Broken Times".into(),
                url: "https://broken.example.org/rss".into(),
                health: "failing",
                problem: Some("failing: the feed answered 500; next try in 30 minutes".into()),
            }],
            most_read: vec![("Most read <i>story</i>".into(), "/track/click?u=x".into())],
            unavailable: false,
            can_edit: true,
        }
    }

    #[test]
    fn the_good_sites_widget_lists_its_picks_with_tracked_links() {
        let good = GoodSitesView {
            picks: village_directory::widget::Picks {
                category: Some("Home & Garden".into()),
                category_slug: Some("home".into()),
                sites: vec![village_directory::widget::Pick {
                    id: 3,
                    title: "Seeds <b>& more</b>".into(),
                    host: "seeds.example".into(),
                    href: "/track/click?u=https%3A%2F%2Fseeds.example%2F&k=site".into(),
                    thumb: Some("/good-sites/screenshots/9/thumb".into()),
                }],
            },
            unavailable: false,
        };
        let html = render(
            &Preferences::default(),
            &Viewer::default(),
            &WidgetContent {
                news: None,
                market: None,
                good_sites: Some(good),
                ..WidgetContent::default()
            },
            |_| true,
        )
        .expect("renders");
        assert!(html.contains("Top in Home &#38; Garden"), "{html}");
        assert!(
            html.contains("Seeds &#60;b&#62;&#38; more&#60;/b&#62;"),
            "escaped: {html}"
        );
        assert!(
            html.contains("src=\"/good-sites/screenshots/9/thumb\""),
            "{html}"
        );
        assert!(html.contains("href=\"/good-sites/c/home\""), "{html}");
        assert!(!html.contains(empty_text(WidgetKind::GoodSites)));
    }

    #[test]
    fn the_news_widget_shows_articles_tags_badges_and_failing_feeds() {
        let n = news();
        let html = render(
            &Preferences::default(),
            &Viewer::default(),
            &WidgetContent {
                news: Some(n),
                ..WidgetContent::default()
            },
            |_| true,
        )
        .expect("renders");
        assert!(
            html.contains("Council &#60;script&#62;x&#60;/script&#62; votes"),
            "{html}"
        );
        assert!(
            html.contains("<p>Budget <b>passed</b></p>"),
            "stored summaries are sanitised HTML"
        );
        assert!(html.contains("href=\"/?tag=local+government#widget-news\""));
        assert!(html.contains("rel=\"noopener noreferrer nofollow\""));
        assert_eq!(html.matches("badge-untagged").count(), 1);
        assert!(html.contains("<strong>Broken Times</strong>: failing: the feed answered 500"));
        assert!(html.contains("action=\"/news/feeds/7/remove\""));
        assert!(html.contains("datetime=\"2026-11-27T09:00:00Z\">just now</time>"));
        assert!(
            html.contains("<a href=\"/track/click?u=x\" rel=\"noopener noreferrer nofollow\">Most read &#60;i&#62;story&#60;/i&#62;</a>"),
            "the most read, escaped: {html}"
        );
        // Other widgets keep their placeholder.
        assert!(html.contains(empty_text(WidgetKind::Weather)));
        assert!(!html.contains(empty_text(WidgetKind::News)));
    }

    #[test]
    fn unreadable_news_degrades_the_widget_not_the_page() {
        let n = NewsView {
            unavailable: true,
            ..NewsView::default()
        };
        let html = render(
            &Preferences::default(),
            &Viewer::default(),
            &WidgetContent {
                news: Some(n),
                ..WidgetContent::default()
            },
            |_| true,
        )
        .expect("renders");
        assert!(html.contains("The news cannot be read right now."));
        assert!(html.contains("id=\"widget-weather\""));
    }

    #[test]
    fn the_marketplace_widget_lists_the_newest_listings_near_the_chosen_place() {
        let market = MarketView {
            near: Some("Boise, ID".into()),
            radius_miles: 25,
            items: vec![MarketItemView {
                id: 7,
                title: "Oak <b>table</b>".into(),
                price: "$125.00".into(),
                place: "Boise, ID".into(),
                thumbnail: Some("/marketplace/images/listings/7/a.png".into()),
                featured: true,
                highlighted: false,
            }],
            unavailable: false,
        };
        let html = render(
            &Preferences::default(),
            &Viewer::default(),
            &WidgetContent {
                market: Some(market),
                ..WidgetContent::default()
            },
            |_| true,
        )
        .expect("renders");
        assert!(
            html.contains("Newest within 25 miles of Boise, ID"),
            "{html}"
        );
        assert!(
            html.contains("<span class=\"badge\">Featured</span>"),
            "{html}"
        );
        assert!(
            html.contains(
                r#"<a href="/marketplace/listings/7">Oak &#60;b&#62;table&#60;/b&#62;</a>"#
            ),
            "{html}"
        );
        assert!(html.contains(r#"src="/marketplace/images/listings/7/a.png""#));
        assert!(!html.contains(empty_text(WidgetKind::Marketplace)));
    }

    #[test]
    fn times_read_as_people_say_them() {
        let now = Utc::now();
        assert_eq!(ago(now - chrono::Duration::seconds(10), now), "just now");
        assert_eq!(ago(now - chrono::Duration::minutes(1), now), "1 minute ago");
        assert_eq!(ago(now - chrono::Duration::hours(5), now), "5 hours ago");
        assert_eq!(
            until(now + chrono::Duration::minutes(30), now),
            "in 30 minutes"
        );
        assert_eq!(until(now - chrono::Duration::minutes(3), now), "soon");
    }
}
