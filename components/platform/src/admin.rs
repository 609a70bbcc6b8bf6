//! What every admin API shares: who performed an action (as the audit log
//! records it), the JSON body, and the reason every change must carry.
//! Deciding whether the caller may act is `village_accounts::authz`.

use serde::Deserialize;

use crate::error::{AppError, FieldError};

/// The longest reason an admin change may carry.
pub const MAX_REASON: usize = 500;

/// The caller behind an admin change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub user_id: Option<uuid::Uuid>,
    /// Who, in words that stay meaningful after the user is deleted.
    pub label: String,
}

/// Parses a JSON body (an empty body reads as `{}`); a malformed one is a
/// field error on `body`.
pub fn parse_body<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, AppError> {
    let body = if body.is_empty() {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body)
        .map_err(|e| AppError::Validation(vec![FieldError::new("body", e.to_string())]))
}

/// The reason, trimmed; a field error when missing, blank or too long.
pub fn require_reason(reason: Option<&str>, errors: &mut Vec<FieldError>) -> String {
    let r = reason.map(str::trim).unwrap_or_default();
    if r.is_empty() {
        errors.push(FieldError::new(
            "reason",
            "required: why you are doing this",
        ));
    } else if r.chars().count() > MAX_REASON {
        errors.push(FieldError::new(
            "reason",
            format!("at most {MAX_REASON} characters"),
        ));
    }
    r.to_owned()
}

/// A `limit` query parameter: `default` when absent, otherwise a whole
/// number from 1 to `max`, or a field error on `limit`.
pub fn parse_limit(value: Option<&str>, default: i64, max: i64) -> Result<i64, AppError> {
    match value {
        None => Ok(default),
        Some(s) => match s.parse::<i64>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(AppError::Validation(vec![FieldError::new(
                "limit",
                format!("must be a whole number from 1 to {max}"),
            )])),
        },
    }
}

/// A machine name as flags and rate-limit actions use them (and the tables'
/// CHECKs enforce): 2–63 characters, a lowercase letter, then lowercase
/// letters, digits or `_`.
pub fn is_snake_key(key: &str) -> bool {
    let mut chars = key.chars();
    (2..=63).contains(&key.len())
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_is_required_and_bounded() {
        let mut errors = Vec::new();
        require_reason(Some("   "), &mut errors);
        require_reason(None, &mut errors);
        require_reason(Some(&"x".repeat(MAX_REASON + 1)), &mut errors);
        assert_eq!(errors.len(), 3);
        let mut ok = Vec::new();
        assert_eq!(
            require_reason(Some(" moving teams "), &mut ok),
            "moving teams"
        );
        assert!(ok.is_empty());
    }

    #[test]
    fn a_limit_is_defaulted_and_bounded() {
        assert_eq!(parse_limit(None, 25, 100).ok(), Some(25));
        assert_eq!(parse_limit(Some("100"), 25, 100).ok(), Some(100));
        for bad in ["0", "101", "ten", "-1"] {
            assert!(parse_limit(Some(bad), 25, 100).is_err(), "{bad}");
        }
    }

    #[test]
    fn keys_are_snake_case() {
        assert!(is_snake_key("stocks_widget"));
        assert!(is_snake_key("a1"));
        assert!(!is_snake_key("a"));
        assert!(!is_snake_key("1abc"));
        assert!(!is_snake_key("Bad-Key"));
        assert!(!is_snake_key("has space"));
        assert!(!is_snake_key(&"a".repeat(64)));
    }

    #[test]
    fn an_empty_body_is_an_empty_object_and_bad_json_a_field_error() {
        #[derive(Deserialize)]
        struct B {
            reason: Option<String>,
        }
        assert!(parse_body::<B>(b"").expect("empty").reason.is_none());
        assert!(matches!(
            parse_body::<B>(b"{nope"),
            Err(AppError::Validation(e)) if e[0].field == "body"
        ));
    }
}
