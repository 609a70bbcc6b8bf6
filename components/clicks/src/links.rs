//! Signed `/track/click` links.
//!
//! A link carries its parameters in the clear and a MAC over all of them:
//!
//! `/track/click?u=<target>&k=<kind>&id=<link id>&src=<source>&pos=<n>&cat=<category>&exp=<unix time>&kid=<key id>&sig=<mac>`
//!
//! The MAC is HMAC-SHA256 (purpose `track-click`) over the JSON array of
//! the parameters, so no two parameter sets share a message. A link expires
//! [`LIFETIME_DAYS`] after the page that carried it was rendered: a link
//! copied out of a page cannot serve as a redirect for ever. Keys come from
//! `click_signing_keys` (`id=secret,id=secret`, each secret 32+ bytes): the
//! first signs, all verify — rotating is adding a new key in front and
//! dropping the old one once links signed with it have expired. Without
//! that setting the links are signed with the session key (id `s`, under
//! its own purpose label), which keeps verifying after click keys are set.
//!
//! A signature proves only that we rendered the link. What it may redirect
//! to is checked again when it is clicked ([`crate::record`]): a site must
//! still be approved, an article still carry that link, a listing still be
//! public.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use village_platform::session::SigningKey;

/// The route every tracked link goes through.
pub const PATH: &str = "/track/click";
const PURPOSE: &str = "track-click";
/// The key id links are signed with when only the session key is set.
const SESSION_KEY_ID: &str = "s";
/// The longest source label (`directory_top`, `news_widget`, ...).
const MAX_SOURCE: usize = 40;
/// How long a rendered link keeps working.
pub const LIFETIME_DAYS: i64 = 7;

/// What a tracked link points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkKind {
    /// A Good Sites entry (`link_id` = `directory_sites.id`).
    Site,
    /// A news article (`link_id` = `feed_items.id`).
    Article,
    /// A marketplace listing's outbound link (`link_id` = the listing).
    Listing,
}

impl LinkKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkKind::Site => "site",
            LinkKind::Article => "article",
            LinkKind::Listing => "listing",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [LinkKind::Site, LinkKind::Article, LinkKind::Listing]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// One tracked link's parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Where the click goes: an absolute http(s) URL.
    pub target: String,
    pub kind: LinkKind,
    /// The id of what `kind` names (0 for a plain URL).
    pub id: i64,
    /// Where the link was shown (`directory_top`, `news_widget`, ...).
    pub source: String,
    /// Its 1-based place in the list it was shown in (0: not in a list).
    pub position: i32,
    /// The directory category it was shown under (0: none).
    pub category: i64,
}

impl Link {
    /// A link to `target` with the other parameters empty.
    pub fn to(target: impl Into<String>, kind: LinkKind, id: i64, source: &str) -> Self {
        Link {
            target: target.into(),
            kind,
            id,
            source: source.to_owned(),
            position: 0,
            category: 0,
        }
    }

    pub fn at(mut self, position: usize) -> Self {
        self.position = i32::try_from(position).unwrap_or(i32::MAX);
        self
    }

    pub fn in_category(mut self, category: i64) -> Self {
        self.category = category;
        self
    }

    fn message(&self, expires: i64) -> Vec<u8> {
        serde_json::to_vec(&(
            &self.target,
            self.kind.as_str(),
            self.id,
            &self.source,
            self.position,
            self.category,
            expires,
        ))
        .unwrap_or_default()
    }
}

/// Why a `/track/click` query was refused. Every one is the caller's fault
/// (400): an altered or hand-made link.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("the link is not signed")]
    Unsigned,
    #[error("the link's signature does not match its parameters")]
    BadSignature,
    #[error("the link was signed with a key that is no longer in use")]
    UnknownKey,
    #[error("the link has expired; go back to the page and click it again")]
    Expired,
    #[error("the link's `{0}` parameter is missing or invalid")]
    Invalid(&'static str),
    #[error("the link's `{0}` parameter is repeated")]
    Repeated(String),
    #[error("the link has an unknown parameter `{0}`")]
    Unknown(String),
}

/// The keys links are signed and checked with, at a moment (links signed
/// now expire [`LIFETIME_DAYS`] later; links checked now must not have).
#[derive(Clone)]
pub struct LinkSigner {
    /// The first signs; all verify.
    keys: Vec<(String, SigningKey)>,
    now: i64,
}

impl std::fmt::Debug for LinkSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        write!(f, "LinkSigner(keys {ids:?})")
    }
}

impl LinkSigner {
    /// From `click_signing_keys` (`id=secret,...`), or, when that is
    /// empty, the session key. `None` when neither is set: outbound links
    /// are then rendered plain (untracked) and `/track/click` refuses all.
    pub fn from_settings(
        click_keys: &str,
        session_key: Option<&SigningKey>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<Self>, String> {
        let mut keys = Vec::new();
        for entry in click_keys
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
        {
            let (id, secret) = entry
                .split_once('=')
                .ok_or("click_signing_keys: each entry is `id=secret`")?;
            let id = id.trim();
            if id.is_empty()
                || id.len() > 16
                || !id.chars().all(|c| c.is_ascii_alphanumeric())
                || id == SESSION_KEY_ID
            {
                return Err(format!(
                    "click_signing_keys: key id `{id}` must be 1-16 letters or digits, not `{SESSION_KEY_ID}`"
                ));
            }
            if keys.iter().any(|(k, _)| k == id) {
                return Err(format!("click_signing_keys: key id `{id}` is repeated"));
            }
            let key = SigningKey::try_from(secret.trim())
                .map_err(|_| format!("click_signing_keys: key `{id}` needs 32+ characters"))?;
            keys.push((id.to_owned(), key));
        }
        // The session key signs when no click key is set, and verifies
        // after one is (links already out keep working until they expire).
        if let Some(k) = session_key {
            keys.push((SESSION_KEY_ID.to_owned(), k.clone()));
        }
        if keys.is_empty() {
            return Ok(None);
        }
        Ok(Some(LinkSigner {
            keys,
            now: now.timestamp(),
        }))
    }

    fn sign(&self, key: &SigningKey, link: &Link, expires: i64) -> String {
        URL_SAFE_NO_PAD.encode(key.mac(PURPOSE, &link.message(expires)))
    }

    /// The `/track/click?...` href for `link`, signed with the first key.
    pub fn href(&self, link: &Link) -> String {
        let (kid, key) = &self.keys[0];
        let expires = self.now + LIFETIME_DAYS * 86_400;
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        query
            .append_pair("u", &link.target)
            .append_pair("k", link.kind.as_str())
            .append_pair("id", &link.id.to_string())
            .append_pair("src", &link.source)
            .append_pair("pos", &link.position.to_string())
            .append_pair("cat", &link.category.to_string())
            .append_pair("exp", &expires.to_string())
            .append_pair("kid", kid)
            .append_pair("sig", &self.sign(key, link, expires));
        format!("{PATH}?{}", query.finish())
    }

    /// The href to render for `link`: tracked when there is a signer,
    /// else the target itself (click tracking not configured).
    pub fn href_or_plain(signer: Option<&Self>, link: &Link) -> String {
        signer.map_or_else(|| link.target.clone(), |s| s.href(link))
    }

    /// The link a `/track/click` query names, if its signature holds under
    /// one of the keys and its target is an absolute http(s) URL.
    pub fn verify(&self, query: &str) -> Result<Link, LinkError> {
        let mut fields: std::collections::BTreeMap<String, String> = Default::default();
        for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
            if !matches!(
                name.as_ref(),
                "u" | "k" | "id" | "src" | "pos" | "cat" | "exp" | "kid" | "sig"
            ) {
                return Err(LinkError::Unknown(name.chars().take(40).collect()));
            }
            if fields
                .insert(name.to_string(), value.into_owned())
                .is_some()
            {
                return Err(LinkError::Repeated(name.into_owned()));
            }
        }
        let sig = fields.get("sig").ok_or(LinkError::Unsigned)?;
        let kid = fields.get("kid").ok_or(LinkError::Unsigned)?;
        let field = |name: &'static str| fields.get(name).ok_or(LinkError::Invalid(name));
        let number = |name: &'static str| -> Result<i64, LinkError> {
            field(name)?
                .parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or(LinkError::Invalid(name))
        };
        let link = Link {
            target: field("u")?.clone(),
            kind: LinkKind::parse(field("k")?).ok_or(LinkError::Invalid("k"))?,
            id: number("id")?,
            source: field("src")?.clone(),
            position: i32::try_from(number("pos")?).map_err(|_| LinkError::Invalid("pos"))?,
            category: number("cat")?,
        };
        let expires = number("exp")?;
        let (_, key) = self
            .keys
            .iter()
            .find(|(id, _)| id == kid)
            .ok_or(LinkError::UnknownKey)?;
        let given = URL_SAFE_NO_PAD
            .decode(sig)
            .map_err(|_| LinkError::BadSignature)?;
        let expected = key.mac(PURPOSE, &link.message(expires));
        if !constant_time_eq(&given, &expected) {
            return Err(LinkError::BadSignature);
        }
        if expires < self.now {
            return Err(LinkError::Expired);
        }
        // Signed by us, but still checked: a redirect goes only to a web
        // address, never to `javascript:` or a relative path.
        if link.source.is_empty()
            || link.source.len() > MAX_SOURCE
            || !link
                .source
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(LinkError::Invalid("src"));
        }
        if link.target.len() > village_platform::address::MAX_URL_LEN
            || !url::Url::parse(&link.target)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        {
            return Err(LinkError::Invalid("u"));
        }
        Ok(link)
    }
}

/// Compares two MACs in time independent of where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> String {
        format!("{s}{}", "0123456789abcdef0123456789abcdef")
    }

    fn signer(keys: &str) -> LinkSigner {
        LinkSigner::from_settings(keys, None, chrono::Utc::now())
            .expect("valid keys")
            .expect("a signer")
    }

    fn query(href: &str) -> &str {
        href.strip_prefix("/track/click?").expect("a tracked link")
    }

    fn link() -> Link {
        Link::to(
            "https://example.org/a?b=c&d=e",
            LinkKind::Site,
            42,
            "directory_top",
        )
        .at(3)
        .in_category(7)
    }

    #[test]
    fn a_signed_link_verifies_to_its_parameters() {
        let s = signer(&format!("a={}", key("a")));
        let href = s.href(&link());
        assert_eq!(s.verify(query(&href)), Ok(link()));
    }

    #[test]
    fn every_altered_parameter_is_refused() {
        let s = signer(&format!("a={}", key("a")));
        let href = s.href(&link());
        for (from, to) in [
            (
                "u=https%3A%2F%2Fexample.org",
                "u=https%3A%2F%2Fevil.example",
            ),
            ("k=site", "k=article"),
            ("id=42", "id=43"),
            ("src=directory_top", "src=directory_new"),
            ("pos=3", "pos=1"),
            ("cat=7", "cat=8"),
            ("exp=", "exp=9"),
        ] {
            assert!(href.contains(from), "{href} has {from}");
            let altered = href.replace(from, to);
            assert_eq!(
                s.verify(query(&altered)),
                Err(LinkError::BadSignature),
                "{from} -> {to}"
            );
        }
    }

    #[test]
    fn unsigned_repeated_and_unknown_parameters_are_refused() {
        let s = signer(&format!("a={}", key("a")));
        let href = s.href(&link());
        let q = query(&href);
        let unsigned = q.split("&sig=").next().expect("before sig");
        assert_eq!(s.verify(unsigned), Err(LinkError::Unsigned));
        assert_eq!(
            s.verify("u=https%3A%2F%2Fevil.example"),
            Err(LinkError::Unsigned)
        );
        assert!(matches!(
            s.verify(&format!("{q}&u=https%3A%2F%2Fevil.example")),
            Err(LinkError::Repeated(_))
        ));
        assert!(matches!(
            s.verify(&format!("{q}&utm_source=x")),
            Err(LinkError::Unknown(_))
        ));
    }

    #[test]
    fn old_keys_verify_after_a_rotation_and_dropped_keys_do_not() {
        let old = signer(&format!("a={}", key("a")));
        let href = old.href(&link());
        let rotated = signer(&format!("b={},a={}", key("b"), key("a")));
        assert_eq!(rotated.verify(query(&href)), Ok(link()));
        assert!(rotated.href(&link()).contains("kid=b"), "the new key signs");
        let dropped = signer(&format!("b={}", key("b")));
        assert_eq!(dropped.verify(query(&href)), Err(LinkError::UnknownKey));
    }

    #[test]
    fn a_link_signed_by_another_key_with_the_same_id_is_refused() {
        let ours = signer(&format!("a={}", key("a")));
        let theirs = signer(&format!("a={}", key("z")));
        assert_eq!(
            ours.verify(query(&theirs.href(&link()))),
            Err(LinkError::BadSignature)
        );
    }

    #[test]
    fn signed_non_web_targets_are_still_refused() {
        let s = signer(&format!("a={}", key("a")));
        for target in ["javascript:alert(1)", "/relative", "data:text/html,x"] {
            let href = s.href(&Link::to(target, LinkKind::Listing, 4, "listing_body"));
            assert_eq!(
                s.verify(query(&href)),
                Err(LinkError::Invalid("u")),
                "{target}"
            );
        }
    }

    #[test]
    fn the_session_key_stands_in_when_no_click_keys_are_set_and_still_verifies_after() {
        let now = chrono::Utc::now();
        let session = SigningKey::try_from(key("s").as_str()).expect("key");
        let s = LinkSigner::from_settings("", Some(&session), now)
            .expect("valid")
            .expect("a signer");
        let href = s.href(&link());
        assert!(href.contains("kid=s"));
        assert_eq!(s.verify(query(&href)), Ok(link()));
        let with_keys = LinkSigner::from_settings(&format!("a={}", key("a")), Some(&session), now)
            .expect("valid")
            .expect("a signer");
        assert!(
            with_keys.href(&link()).contains("kid=a"),
            "the click key signs"
        );
        assert_eq!(
            with_keys.verify(query(&href)),
            Ok(link()),
            "old links still work"
        );
        assert!(
            LinkSigner::from_settings("", None, now)
                .expect("valid")
                .is_none()
        );
    }

    #[test]
    fn a_link_expires_a_week_after_its_page() {
        let keys = format!("a={}", key("a"));
        let at = |days_ago: i64| {
            LinkSigner::from_settings(
                &keys,
                None,
                chrono::Utc::now() - chrono::Duration::days(days_ago),
            )
            .expect("valid")
            .expect("a signer")
            .href(&link())
        };
        assert_eq!(
            signer(&keys).verify(query(&at(LIFETIME_DAYS + 1))),
            Err(LinkError::Expired)
        );
        assert_eq!(
            signer(&keys).verify(query(&at(LIFETIME_DAYS - 1))),
            Ok(link())
        );
    }

    #[test]
    fn malformed_key_settings_are_refused() {
        for bad in [
            "a",
            "a=short",
            &format!("a b={}", key("a")),
            &format!("s={}", key("s")),
            &format!("a={},a={}", key("a"), key("b")),
        ] {
            assert!(
                LinkSigner::from_settings(bad, None, chrono::Utc::now()).is_err(),
                "{bad}"
            );
        }
    }
}
