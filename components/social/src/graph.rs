//! Meta's Graph API, the calls the widget makes
//! (<https://developers.facebook.com/docs/graph-api>): the code exchange
//! and the long-lived token exchange (`/oauth/access_token`), `/me`,
//! the Instagram business account behind the user's pages, and recent
//! posts and media. Errors come as `{"error": {"message", "type", "code"}}`;
//! code 190 means the token is no longer valid.

use serde::Deserialize;
use village_platform::boundary::stored;
use village_platform::http_client::{HttpClient, HttpError};

/// The Graph API version in every path.
pub const VERSION: &str = "v21.0";
/// Posts and media asked for per network.
pub const POSTS: u32 = 10;

/// The app and where Meta lives (`facebook_client_id`,
/// `facebook_client_secret`, `facebook_www_origin`,
/// `facebook_graph_origin`).
#[derive(Clone)]
pub struct Meta {
    pub app_id: String,
    pub app_secret: String,
    pub www_origin: String,
    pub graph_origin: String,
}

impl std::fmt::Debug for Meta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Meta")
            .field("app_id", &self.app_id)
            .field("graph_origin", &self.graph_origin)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    #[error("Meta unreachable: {0}")]
    Http(#[from] HttpError),
    /// Code 190: expired, revoked or otherwise invalid.
    #[error("Meta refused the token: {0}")]
    TokenInvalid(String),
    /// Meta's error document: its `code` (100: an invalid parameter, such
    /// as a used or expired authorization code).
    #[error("Meta answered {status} (code {code}): {message}")]
    Refused {
        status: u16,
        code: i64,
        message: String,
    },
    #[error("Meta's answer does not parse: {0}")]
    Malformed(String),
}

/// A token and how long it lives.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub access_token: String,
    /// Seconds; Meta omits it for tokens that do not expire by time.
    pub expires_in: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Me {
    pub id: String,
    #[serde(default)]
    pub name: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Instagram {
    pub id: String,
    pub username: String,
}

/// A post or a media item, normalised.
#[derive(Debug, Clone, PartialEq)]
pub struct Post {
    pub network: &'static str,
    pub id: String,
    pub message: String,
    pub permalink: Option<String>,
    pub image_url: Option<String>,
    pub posted_at: chrono::DateTime<chrono::Utc>,
}

impl Meta {
    fn url(&self, path: &str, params: &[(&str, &str)]) -> Result<url::Url, GraphError> {
        let mut url = url::Url::parse(&self.graph_origin)
            .and_then(|b| b.join(&format!("/{VERSION}/{path}")))
            .map_err(|e| GraphError::Malformed(format!("graph origin: {e}")))?;
        url.query_pairs_mut().extend_pairs(params);
        Ok(url)
    }

    /// The browser's way to Meta's consent dialog.
    pub fn dialog_url(
        &self,
        redirect_uri: &str,
        state: &str,
        scopes: &str,
    ) -> Result<String, GraphError> {
        let mut url = url::Url::parse(&self.www_origin)
            .and_then(|b| b.join(&format!("/{VERSION}/dialog/oauth")))
            .map_err(|e| GraphError::Malformed(format!("www origin: {e}")))?;
        url.query_pairs_mut()
            .append_pair("client_id", &self.app_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("state", state)
            .append_pair("scope", scopes)
            .append_pair("response_type", "code");
        Ok(url.into())
    }

    async fn get(
        &self,
        http: &impl HttpClient,
        url: url::Url,
    ) -> Result<serde_json::Value, GraphError> {
        let request = http::Request::get(url.as_str())
            .header("accept", "application/json")
            .body(Vec::new())
            .map_err(|e| GraphError::Malformed(e.to_string()))?;
        let response = http.send(request).await?;
        let status = response.status().as_u16();
        let value: serde_json::Value = serde_json::from_slice(response.body())
            .map_err(|e| GraphError::Malformed(format!("HTTP {status}: {e}")))?;
        if let Some(err) = value.get("error") {
            let message: String = err
                .get("message")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("no message")
                .chars()
                .take(300)
                .collect();
            let code = err
                .get("code")
                .and_then(serde_json::Value::as_i64)
                .unwrap_or_default();
            if code == 190 {
                return Err(GraphError::TokenInvalid(message));
            }
            return Err(GraphError::Refused {
                status,
                code,
                message,
            });
        }
        if status != 200 {
            return Err(GraphError::Refused {
                status,
                code: 0,
                message: "no error document".into(),
            });
        }
        Ok(value)
    }

    fn token_of(v: serde_json::Value) -> Result<Token, GraphError> {
        #[derive(Deserialize)]
        struct T {
            access_token: String,
            #[serde(default)]
            expires_in: Option<i64>,
        }
        let t: T = serde_json::from_value(v).map_err(|e| GraphError::Malformed(e.to_string()))?;
        if t.access_token.is_empty() || t.access_token.len() > 4096 {
            return Err(GraphError::Malformed("access_token".into()));
        }
        Ok(Token {
            access_token: t.access_token,
            expires_in: t.expires_in,
        })
    }

    /// The authorization code for a (short-lived) user token.
    pub async fn exchange_code(
        &self,
        http: &impl HttpClient,
        code: &str,
        redirect_uri: &str,
    ) -> Result<Token, GraphError> {
        let url = self.url(
            "oauth/access_token",
            &[
                ("client_id", &self.app_id),
                ("client_secret", &self.app_secret),
                ("redirect_uri", redirect_uri),
                ("code", code),
            ],
        )?;
        Self::token_of(self.get(http, url).await?)
    }

    /// A user token for a long-lived one (about 60 days): used at connect
    /// time and by the daily upkeep to refresh before expiry.
    pub async fn long_lived(
        &self,
        http: &impl HttpClient,
        token: &str,
    ) -> Result<Token, GraphError> {
        let url = self.url(
            "oauth/access_token",
            &[
                ("grant_type", "fb_exchange_token"),
                ("client_id", &self.app_id),
                ("client_secret", &self.app_secret),
                ("fb_exchange_token", token),
            ],
        )?;
        Self::token_of(self.get(http, url).await?)
    }

    pub async fn me(&self, http: &impl HttpClient, token: &str) -> Result<Me, GraphError> {
        let url = self.url("me", &[("fields", "id,name"), ("access_token", token)])?;
        serde_json::from_value(self.get(http, url).await?)
            .map_err(|e| GraphError::Malformed(e.to_string()))
    }

    /// The Instagram business account linked to one of the user's pages.
    pub async fn instagram(
        &self,
        http: &impl HttpClient,
        token: &str,
    ) -> Result<Option<Instagram>, GraphError> {
        let url = self.url(
            "me/accounts",
            &[
                ("fields", "instagram_business_account{id,username}"),
                ("access_token", token),
            ],
        )?;
        let v = self.get(http, url).await?;
        Ok(v.get("data")
            .and_then(serde_json::Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|page| page.get("instagram_business_account"))
            .find_map(|ig| {
                Some(Instagram {
                    id: stored(ig.get("id")?.as_str()?, 64),
                    username: stored(
                        ig.get("username")
                            .and_then(serde_json::Value::as_str)
                            .unwrap_or_default(),
                        100,
                    ),
                })
            }))
    }

    /// The user's recent Facebook posts.
    pub async fn posts(
        &self,
        http: &impl HttpClient,
        token: &str,
    ) -> Result<Vec<Post>, GraphError> {
        let limit = POSTS.to_string();
        let url = self.url(
            "me/posts",
            &[
                (
                    "fields",
                    "id,message,created_time,permalink_url,full_picture",
                ),
                ("limit", &limit),
                ("access_token", token),
            ],
        )?;
        Ok(items(&self.get(http, url).await?, "facebook"))
    }

    /// The Instagram account's recent media.
    pub async fn media(
        &self,
        http: &impl HttpClient,
        token: &str,
        instagram_id: &str,
    ) -> Result<Vec<Post>, GraphError> {
        let limit = POSTS.to_string();
        let url = self.url(
            &format!("{instagram_id}/media"),
            &[
                (
                    "fields",
                    "id,caption,media_type,media_url,permalink,timestamp",
                ),
                ("limit", &limit),
                ("access_token", token),
            ],
        )?;
        Ok(items(&self.get(http, url).await?, "instagram"))
    }
}

/// Graph times: "2026-11-30T08:15:00+0000".
fn graph_time(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%z")
        .or_else(|_| chrono::DateTime::parse_from_rfc3339(s))
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// Only `https` links are kept (they are rendered as links and images),
/// and none carrying control characters (NUL included: not storable).
fn https(v: Option<&serde_json::Value>) -> Option<String> {
    v.and_then(serde_json::Value::as_str)
        .filter(|s| {
            s.starts_with("https://") && s.len() <= 2000 && !s.chars().any(char::is_control)
        })
        .map(str::to_owned)
}

/// Whether `id` has the shape of a Graph post or media id ("123_456",
/// "17900…"): letters, digits, `_`, `-` and `.`, at most 100. Posts with any
/// other id are not kept (their removal link could not name them).
pub fn is_post_id(id: &str) -> bool {
    (1..=100).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// The `data` of a posts or media answer.
pub fn items(v: &serde_json::Value, network: &'static str) -> Vec<Post> {
    v.get("data")
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| {
            let text = |k: &str| p.get(k).and_then(serde_json::Value::as_str);
            let (message, permalink, image, at) = if network == "facebook" {
                (
                    text("message"),
                    https(p.get("permalink_url")),
                    https(p.get("full_picture")),
                    text("created_time"),
                )
            } else {
                let image = match text("media_type") {
                    Some("IMAGE" | "CAROUSEL_ALBUM") => https(p.get("media_url")),
                    _ => None,
                };
                (
                    text("caption"),
                    https(p.get("permalink")),
                    image,
                    text("timestamp"),
                )
            };
            Some(Post {
                network,
                id: text("id").filter(|id| is_post_id(id))?.to_owned(),
                message: stored(message.unwrap_or_default(), 5000),
                permalink,
                image_url: image,
                posted_at: graph_time(at?)?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posts_and_media_normalise_and_drop_unsafe_links() {
        let fb = serde_json::json!({"data": [
            {"id": "1_2", "message": "Bake sale Saturday", "created_time": "2026-11-30T08:15:00+0000",
             "permalink_url": "https://www.facebook.com/1/posts/2", "full_picture": "javascript:alert(1)"},
            {"id": "1_3", "created_time": "not a time"}],
            "paging": {"cursors": {}}});
        let posts = items(&fb, "facebook");
        assert_eq!(posts.len(), 1, "an undated post is skipped");
        // What Postgres cannot store is dropped, not refused with the batch.
        let nul = serde_json::json!({"data": [{"id": "1_4", "message": "a\0b",
            "created_time": "2026-11-30T08:15:00+0000",
            "permalink_url": "https://www.facebook.com/x\0"}]});
        let post = &items(&nul, "facebook")[0];
        assert!(is_post_id("42_1") && !is_post_id("42/../1") && !is_post_id(""));
        assert_eq!(
            (post.message.as_str(), post.permalink.as_deref()),
            ("ab", None)
        );
        assert_eq!(posts[0].message, "Bake sale Saturday");
        assert_eq!(posts[0].image_url, None, "only https images");
        let ig = serde_json::json!({"data": [
            {"id": "17900", "caption": "Harvest", "media_type": "IMAGE",
             "media_url": "https://scontent.cdninstagram.com/a.jpg",
             "permalink": "https://www.instagram.com/p/abc/", "timestamp": "2026-11-29T10:00:00+0000"}]});
        let media = items(&ig, "instagram");
        assert_eq!(
            media[0].image_url.as_deref(),
            Some("https://scontent.cdninstagram.com/a.jpg")
        );
    }
}
