//! Listing bodies: Markdown rendered to HTML once, when saved, then cleaned
//! by an allow-list.
//!
//! `pulldown-cmark` renders (raw HTML in the Markdown passes through it
//! untouched), and `ammonia` then keeps only the tags below, only `http`,
//! `https` and `mailto` links, and marks every link `rel="nofollow ugc"`:
//! scripts, event handlers, `javascript:` URLs, SVG, images (tracking
//! pixels) and styles never reach a page.

use std::collections::HashSet;

/// The tags a listing body may use.
const TAGS: &[&str] = &[
    "p",
    "br",
    "strong",
    "em",
    "del",
    "ul",
    "ol",
    "li",
    "blockquote",
    "code",
    "pre",
    "h3",
    "h4",
    "h5",
    "h6",
    "a",
    "hr",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
];

fn cleaner() -> ammonia::Builder<'static> {
    let mut b = ammonia::Builder::default();
    b.tags(TAGS.iter().copied().collect::<HashSet<_>>())
        .url_schemes(["http", "https", "mailto"].into_iter().collect())
        .link_rel(Some("nofollow ugc"));
    b
}

/// A stored (already sanitised) body with its web links sent through
/// `/track/click` (kind `listing`, the listing's id, their order in the
/// body as position), when `signer` is set. Done when rendering, so the
/// stored body stays the seller's and rotating keys needs no rewrite.
pub fn with_tracked_links(
    body_html: &str,
    signer: Option<&village_clicks::LinkSigner>,
    listing_id: i64,
) -> String {
    let Some(signer) = signer.cloned() else {
        return body_html.to_owned();
    };
    // The filter must be `Send + Sync`: an atomic counts the links.
    let position = std::sync::atomic::AtomicUsize::new(0);
    let mut b = cleaner();
    b.attribute_filter(move |element, attribute, value| {
        if element == "a"
            && attribute == "href"
            && (value.starts_with("http://") || value.starts_with("https://"))
        {
            let n = position.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            let link = village_clicks::Link::to(
                value,
                village_clicks::LinkKind::Listing,
                listing_id,
                "listing_body",
            )
            .at(n);
            return Some(signer.href(&link).into());
        }
        Some(value.into())
    });
    b.clean(body_html).to_string()
}

/// Renders `markdown` to sanitised HTML.
pub fn render(markdown: &str) -> String {
    use pulldown_cmark::{Options, Parser, html};
    let mut raw = String::with_capacity(markdown.len() * 3 / 2);
    html::push_html(
        &mut raw,
        Parser::new_ext(
            markdown,
            Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TABLES,
        ),
    );
    cleaner().clean(&raw).to_string()
}

#[cfg(test)]
mod tests {
    use super::{render, with_tracked_links};

    #[test]
    fn web_links_in_a_body_are_tracked_when_rendered() {
        let signer = village_clicks::LinkSigner::from_settings(
            "a=0123456789abcdef0123456789abcdef0123",
            None,
            chrono::Utc::now(),
        )
        .expect("valid")
        .expect("a signer");
        let stored = render("See [my shop](https://shop.example/x) or [mail](mailto:a@b.example)");
        let html = with_tracked_links(&stored, Some(&signer), 12);
        assert!(
            html.contains(
                "href=\"/track/click?u=https%3A%2F%2Fshop.example%2Fx&amp;k=listing&amp;id=12"
            ),
            "{html}"
        );
        assert!(html.contains("href=\"mailto:a@b.example\""), "{html}");
        assert!(html.contains("rel=\"nofollow ugc\""), "{html}");
        assert_eq!(with_tracked_links(&stored, None, 12), stored);
    }

    #[test]
    fn markdown_becomes_html() {
        let html = render("**Solid oak** table, *barely* used.\n\n- four chairs\n- one leaf");
        assert!(html.contains("<strong>Solid oak</strong>"), "{html}");
        assert!(html.contains("<em>barely</em>"), "{html}");
        assert!(html.contains("<li>four chairs</li>"), "{html}");
    }

    #[test]
    fn scripts_and_event_handlers_are_removed() {
        let html = render(
            "Hi <script>alert(1)</script><b onclick=\"steal()\">x</b><img src=x onerror=alert(2)>",
        );
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("alert"), "{html}");
        assert!(!html.contains("onclick"), "{html}");
        assert!(!html.contains("onerror"), "{html}");
        assert!(!html.contains("<img"), "{html}");
    }

    #[test]
    fn javascript_links_lose_their_href_and_others_are_nofollow_ugc() {
        let html = render("[click](javascript:alert(1)) and [shop](https://example.com/a)");
        assert!(!html.contains("javascript:"), "{html}");
        assert!(
            html.contains(r#"<a href="https://example.com/a" rel="nofollow ugc">shop</a>"#),
            "{html}"
        );
        let raw =
            render(r#"<a href="JaVaScRiPt:alert(1)">x</a> <a href="data:text/html,hi">y</a>"#);
        assert!(!raw.to_lowercase().contains("javascript:"), "{raw}");
        assert!(!raw.contains("data:"), "{raw}");
    }

    #[test]
    fn svg_and_styles_are_removed() {
        let html = render(
            "<svg onload=alert(1)><script>alert(2)</script></svg><style>body{display:none}</style><p style=\"color:red\">ok</p>",
        );
        assert!(!html.contains("<svg"), "{html}");
        assert!(!html.contains("alert"), "{html}");
        assert!(!html.contains("<style"), "{html}");
        assert!(!html.contains("style="), "{html}");
        assert!(html.contains("ok"), "{html}");
    }
}
