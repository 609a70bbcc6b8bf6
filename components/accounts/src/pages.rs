//! The pages of the sign-in flow and `/bootstrap` (askama: compiled,
//! HTML-escaped by default).

use askama::Template;
use uuid::Uuid;
use village_platform::AppError;

use crate::merge::{CONSENT_VERSION, PendingOffer};

#[derive(Template)]
#[template(path = "merge.html")]
struct MergePage<'a> {
    offer: Uuid,
    widgets: usize,
    has_settings: bool,
    consent_version: &'a str,
}

#[derive(Template)]
#[template(path = "bootstrap.html")]
struct BootstrapPage<'a> {
    signed_in: bool,
    providers: &'a [(&'a str, &'a str)],
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage<'a> {
    title: &'a str,
    message: &'a str,
    link_href: &'a str,
    link_text: &'a str,
}

#[derive(Template)]
#[template(path = "continue_refresh.html")]
struct ContinueRefreshPage<'a> {
    return_to: &'a str,
}

/// The one-click page that renews a session when `/auth/refresh` was
/// reached from another site (a same-origin POST does the renewing).
pub fn continue_refresh(return_to: &str) -> Result<String, AppError> {
    rendered(ContinueRefreshPage { return_to }.render())
}

fn rendered(r: askama::Result<String>) -> Result<String, AppError> {
    r.map_err(|e| AppError::Internal(format!("failed to render a page: {e}")))
}

pub fn merge(offer: &PendingOffer) -> Result<String, AppError> {
    rendered(
        MergePage {
            offer: offer.id,
            widgets: offer.widgets,
            has_settings: offer.has_settings,
            consent_version: CONSENT_VERSION,
        }
        .render(),
    )
}

/// `providers`: `(id, display name)` of each configured provider.
pub fn bootstrap(signed_in: bool, providers: &[(&str, &str)]) -> Result<String, AppError> {
    rendered(
        BootstrapPage {
            signed_in,
            providers,
        }
        .render(),
    )
}

pub fn message(
    title: &str,
    message: &str,
    link_href: &str,
    link_text: &str,
) -> Result<String, AppError> {
    rendered(
        MessagePage {
            title,
            message,
            link_href,
            link_text,
        }
        .render(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_consent_page_names_what_is_merged_and_the_consent_version() {
        let html = merge(&PendingOffer {
            id: Uuid::nil(),
            widgets: 3,
            has_settings: true,
        })
        .expect("renders");
        assert!(html.contains("3 widgets"));
        assert!(html.contains("your settings"));
        assert!(html.contains(CONSENT_VERSION));
        assert!(html.contains("value=\"accept\"") && html.contains("value=\"decline\""));
    }

    #[test]
    fn messages_are_escaped() {
        let html = message("Oops", "<script>x</script>", "/", "Home").expect("renders");
        assert!(!html.contains("<script>x"));
    }
}
