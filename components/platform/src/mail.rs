//! Outbound email through the mail relay: Mailgun's HTTP API
//! (`POST {base}/v3/{domain}/messages`, form fields `from`, `to`,
//! `subject`, `text`; HTTP Basic `api:<key>`). Tests point `base_url` at a
//! local server that speaks the same wire format.

use base64::Engine;

use crate::http_client::HttpClient;

/// The relay's settings (Spin variables `mailgun_base_url`,
/// `mailgun_domain`, `mailgun_api_key`).
#[derive(Clone, PartialEq, Eq)]
pub struct Mailgun {
    pub base_url: String,
    pub domain: String,
    pub api_key: String,
}

impl std::fmt::Debug for Mailgun {
    // The key never reaches a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailgun")
            .field("base_url", &self.base_url)
            .field("domain", &self.domain)
            .finish_non_exhaustive()
    }
}

/// One message.
pub struct Message<'a> {
    pub from: &'a str,
    /// One address, or several separated by commas.
    pub to: &'a str,
    pub subject: &'a str,
    pub text: &'a str,
}

impl Mailgun {
    /// Whether mail can be sent at all (base, domain and key set).
    pub fn configured(&self) -> bool {
        ![&self.base_url, &self.domain, &self.api_key]
            .iter()
            .any(|v| v.trim().is_empty())
    }

    /// Sends `message`; the error says what failed, never the key.
    pub async fn send(&self, http: &impl HttpClient, message: &Message<'_>) -> Result<(), String> {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("from", message.from)
            .append_pair("to", message.to)
            .append_pair("subject", message.subject)
            .append_pair("text", message.text)
            .finish();
        let auth =
            base64::engine::general_purpose::STANDARD.encode(format!("api:{}", self.api_key));
        let url = format!(
            "{}/v3/{}/messages",
            self.base_url.trim_end_matches('/'),
            self.domain
        );
        let request = http::Request::post(url)
            .header(http::header::AUTHORIZATION, format!("Basic {auth}"))
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body.into_bytes())
            .map_err(|e| format!("mail relay address: {e}"))?;
        let response = http.send(request).await.map_err(|e| e.to_string())?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("the mail relay answered {}", response.status()))
        }
    }
}
