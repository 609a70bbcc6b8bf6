//! RSS (0.x, 1.0, 2.0), Atom and JSON Feed into one item model, with
//! `feed-rs` (one model for every format, relative links resolved against
//! the feed's URL). Summaries are HTML from strangers: `ammonia` keeps a
//! small allow-list of tags, only http(s) links, and marks links
//! `noopener noreferrer nofollow`. Titles become plain text.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use village_platform::boundary::storable;

/// The longest summary kept, in bytes of source HTML (cut before
/// sanitising, which repairs whatever the cut broke).
pub const MAX_SUMMARY_BYTES: usize = 4_096;
/// The longest title kept, in characters.
pub const MAX_TITLE_CHARS: usize = 300;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a feed we can read: {0}")]
pub struct ParseError(String);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// The feed's own id for the item (or one feed-rs derived).
    pub guid: String,
    pub title: String,
    /// The article, when the feed gives an http(s) link.
    pub link: Option<String>,
    /// Sanitised HTML, safe to render as is.
    pub summary_html: String,
    pub published: Option<DateTime<Utc>>,
    /// SHA-256 (hex) of the normalised link, or of guid and title when there
    /// is none: the same article from two feeds has the same hash.
    pub content_hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedFeed {
    pub title: String,
    pub items: Vec<Item>,
}

/// Parses `body` fetched from `feed_url`.
pub fn parse(body: &[u8], feed_url: &str) -> Result<ParsedFeed, ParseError> {
    let feed = feed_rs::parser::Builder::new()
        .base_uri(Some(feed_url))
        .build()
        .parse(body)
        .map_err(|e| ParseError(e.to_string()))?;
    let items = feed
        .entries
        .into_iter()
        .map(|e| {
            let title = e.title.as_ref().map(plain_text).unwrap_or_default();
            let link = e
                .links
                .iter()
                .filter(|l| l.rel.as_deref().is_none_or(|r| r == "alternate"))
                .find_map(|l| web_link(&l.href));
            let summary_source = e
                .summary
                .as_ref()
                .map(|t| t.content.clone())
                .or_else(|| e.content.as_ref().and_then(|c| c.body.clone()))
                .unwrap_or_default();
            let content_hash = match &link {
                Some(l) => hash(&normalise(l)),
                None => hash(&format!("{}\n{}", e.id, title)),
            };
            // Text from a stranger's server is cleaned of what Postgres
            // cannot store (one `&#0;` would fail the whole insert).
            Item {
                guid: storable(&e.id).into_owned(),
                title: storable(&title).into_owned(),
                link: link.map(|l| storable(&l).into_owned()),
                summary_html: storable(&sanitise(&summary_source)).into_owned(),
                published: e.published.or(e.updated),
                content_hash,
            }
        })
        .collect();
    Ok(ParsedFeed {
        title: storable(&feed.title.as_ref().map(plain_text).unwrap_or_default()).into_owned(),
        items,
    })
}

/// Summary HTML reduced to what a news card may show.
pub fn sanitise(html: &str) -> String {
    let mut cut = html.len().min(MAX_SUMMARY_BYTES);
    while !html.is_char_boundary(cut) {
        cut -= 1;
    }
    ammonia::Builder::default()
        .tags(
            [
                "a",
                "b",
                "strong",
                "i",
                "em",
                "p",
                "br",
                "ul",
                "ol",
                "li",
                "blockquote",
                "code",
                "pre",
            ]
            .into_iter()
            .collect(),
        )
        .url_schemes(["http", "https"].into_iter().collect())
        // ammonia keeps `cite` on quotes without checking its scheme; a
        // card has no use for it, so it goes (`javascript:` and all).
        .rm_tag_attributes("blockquote", &["cite"])
        .link_rel(Some("noopener noreferrer nofollow"))
        .clean(&html[..cut])
        .to_string()
}

/// A text construct as plain text: markup removed, entities decoded,
/// whitespace collapsed, length bounded.
fn plain_text(t: &feed_rs::model::Text) -> String {
    let text = if t.content_type.subty() == "html" || t.content_type.subty() == "xhtml" {
        let stripped = ammonia::Builder::empty().clean(&t.content).to_string();
        // ammonia escapes text for HTML; undo that for plain text (the
        // template escapes it again when rendering).
        stripped
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&amp;", "&")
    } else {
        t.content.clone()
    };
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(MAX_TITLE_CHARS)
        .collect()
}

/// `href` when it is an absolute http(s) URL.
fn web_link(href: &str) -> Option<String> {
    let url = url::Url::parse(href).ok()?;
    matches!(url.scheme(), "http" | "https").then(|| url.to_string())
}

/// The link as an article identity: no fragment, no trailing slash, the
/// `url` crate's lower-cased scheme and host.
fn normalise(link: &str) -> String {
    match url::Url::parse(link) {
        Ok(mut u) => {
            u.set_fragment(None);
            u.to_string().trim_end_matches('/').to_owned()
        }
        Err(_) => link.to_owned(),
    }
}

fn hash(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const RSS: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>Village &amp; Vale News</title>
<link>https://news.example.org/</link>
<item><title>Bridge reopens</title><link>https://news.example.org/bridge#top</link>
<guid>bridge-1</guid><pubDate>Fri, 27 Nov 2026 08:00:00 GMT</pubDate>
<description><![CDATA[<p>The <b>bridge</b> is open.</p><script>alert(1)</script><img src=x onerror=alert(2)><a href="javascript:alert(3)">x</a><a href="https://council.example.org/">council</a>]]></description></item>
<item><title>Relative link</title><link>/fete</link><guid>fete</guid><description>Summer fete</description></item>
<item><title>No link</title><guid>nolink</guid><link>javascript:alert(1)</link></item>
</channel></rss>"#;

    const ATOM: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title type="html">&lt;b&gt;Vale&lt;/b&gt; Weekly</title>
<id>urn:vale</id><updated>2026-11-27T09:00:00Z</updated>
<entry><title>Bridge reopens</title><id>urn:vale:bridge</id>
<link rel="alternate" href="HTTPS://NEWS.example.org/bridge/"/>
<updated>2026-11-27T09:00:00Z</updated><summary type="html">&lt;em&gt;Open&lt;/em&gt; again</summary></entry>
</feed>"#;

    const JSON_FEED: &str = r#"{"version": "https://jsonfeed.org/version/1.1", "title": "Vale JSON",
"items": [{"id": "j1", "url": "https://news.example.org/bridge", "title": "Bridge reopens",
"content_html": "<p>Open</p>", "date_published": "2026-11-27T10:00:00Z"}]}"#;

    #[test]
    fn rss_items_are_read_and_their_summaries_made_safe() {
        let feed = parse(RSS.as_bytes(), "https://news.example.org/rss.xml").expect("rss");
        assert_eq!(feed.title, "Village & Vale News");
        assert_eq!(feed.items.len(), 3);
        let bridge = &feed.items[0];
        assert_eq!(bridge.title, "Bridge reopens");
        assert_eq!(bridge.guid, "bridge-1");
        assert_eq!(
            bridge.link.as_deref(),
            Some("https://news.example.org/bridge#top")
        );
        assert!(bridge.published.is_some());
        let s = &bridge.summary_html;
        assert!(s.contains("<b>bridge</b>"), "{s}");
        for bad in ["<script", "alert(", "onerror", "<img", "javascript:"] {
            assert!(!s.contains(bad), "{bad} survived: {s}");
        }
        assert!(
            s.contains(
                r#"<a href="https://council.example.org/" rel="noopener noreferrer nofollow">"#
            ),
            "{s}"
        );
        assert_eq!(
            feed.items[1].link.as_deref(),
            Some("https://news.example.org/fete"),
            "relative links resolve against the feed"
        );
        assert_eq!(feed.items[2].link, None, "only http(s) links are kept");
    }

    #[test]
    fn atom_and_json_feed_read_into_the_same_model() {
        let atom = parse(ATOM.as_bytes(), "https://vale.example.org/atom").expect("atom");
        assert_eq!(atom.title, "Vale Weekly", "html titles become plain text");
        assert_eq!(atom.items[0].summary_html, "<em>Open</em> again");
        let json = parse(JSON_FEED.as_bytes(), "https://vale.example.org/feed.json").expect("json");
        assert_eq!(json.title, "Vale JSON");
        assert_eq!(json.items[0].summary_html, "<p>Open</p>");
    }

    #[test]
    fn the_same_article_in_two_feeds_has_one_hash() {
        let rss = parse(RSS.as_bytes(), "https://news.example.org/rss.xml").expect("rss");
        let atom = parse(ATOM.as_bytes(), "https://vale.example.org/atom").expect("atom");
        let json = parse(JSON_FEED.as_bytes(), "https://vale.example.org/feed.json").expect("json");
        let bridge = &rss.items[0].content_hash;
        assert_eq!(bridge, &atom.items[0].content_hash, "case, slash, fragment");
        assert_eq!(bridge, &json.items[0].content_hash);
        assert_ne!(bridge, &rss.items[1].content_hash);
        assert_eq!(bridge.len(), 64);
    }

    #[test]
    fn garbage_is_a_parse_error_and_long_summaries_are_cut() {
        assert!(
            parse(
                b"<html><body>not a feed</body></html>",
                "https://x.example/"
            )
            .is_err()
        );
        let long = format!("<p>{}</p>", "é".repeat(5_000));
        let clean = sanitise(&long);
        assert!(clean.len() <= MAX_SUMMARY_BYTES + 16);
        assert!(clean.ends_with("</p>"), "the cut is repaired");
    }

    #[test]
    fn nul_characters_from_a_feed_are_removed_before_storing() {
        let json = r#"{"version": "https://jsonfeed.org/version/1.1", "title": "Vale\u0000 JSON",
"items": [{"id": "j\u00001", "url": "https://news.example.org/nul", "title": "Bridge\u0000 reopens",
"content_html": "<p>Op\u0000en</p>"}]}"#;
        let feed = parse(json.as_bytes(), "https://vale.example.org/feed.json").expect("json");
        let item = &feed.items[0];
        for text in [&feed.title, &item.title, &item.guid, &item.summary_html] {
            assert!(!text.contains('\0'), "{text:?}");
        }
        assert_eq!(item.title, "Bridge reopens");
    }

    #[test]
    fn quote_citations_cannot_carry_script() {
        let clean = sanitise(r#"<blockquote cite="javascript:alert(1)">Said</blockquote>"#);
        assert_eq!(clean, "<blockquote>Said</blockquote>");
    }
}
