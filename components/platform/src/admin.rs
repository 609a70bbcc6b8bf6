//! Guarding admin routes until role-based permissions exist.
//!
//! The identity issue brings roles and the `manage_system` permission; until
//! then the ops API is closed unless the secret Spin variable
//! `admin_api_token` is set, and a caller must present it as a bearer token.
//! Its comparison takes the same time whatever the guess.

use crate::error::AppError;

/// Who passed the guard, for the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub label: String,
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Checks `Authorization: Bearer <token>` against the configured token.
pub fn require_token(headers: &http::HeaderMap, configured: &str) -> Result<Actor, AppError> {
    if configured.is_empty() {
        return Err(AppError::Forbidden(
            "the admin API is disabled: no admin_api_token is configured".into(),
        ));
    }
    let presented = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or(AppError::Unauthorized)?;
    if constant_time_eq(presented.trim().as_bytes(), configured.as_bytes()) {
        Ok(Actor {
            label: "ops-token".into(),
        })
    } else {
        Err(AppError::Unauthorized)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(auth: Option<&str>) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        if let Some(a) = auth {
            h.insert(http::header::AUTHORIZATION, a.parse().expect("header"));
        }
        h
    }

    #[test]
    fn refuses_everything_when_no_token_is_configured() {
        assert!(matches!(
            require_token(&headers(Some("Bearer ")), ""),
            Err(AppError::Forbidden(_))
        ));
    }

    #[test]
    fn needs_the_exact_bearer_token() {
        assert!(require_token(&headers(Some("Bearer s3cret-token")), "s3cret-token").is_ok());
        assert!(matches!(
            require_token(&headers(Some("Bearer s3cret-tokeN")), "s3cret-token"),
            Err(AppError::Unauthorized)
        ));
        assert!(matches!(
            require_token(&headers(None), "s3cret-token"),
            Err(AppError::Unauthorized)
        ));
        assert!(matches!(
            require_token(&headers(Some("s3cret-token")), "s3cret-token"),
            Err(AppError::Unauthorized)
        ));
    }
}
