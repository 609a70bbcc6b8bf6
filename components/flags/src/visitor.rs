//! Evaluating flags for the visitor behind a request, and logging it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;
use village_platform::RequestContext;
use village_platform::cache::Cache;
use village_platform::sql::Sql;

use crate::evaluation_log;
use crate::model::{Evaluation, Reason, evaluate};
use crate::store::{self, Source};

/// Who flags are evaluated for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Visitor {
    /// The stable cohort key: the first anonymous id the visitor had, kept
    /// by their account (`users.cohort_key`) through sign-in and merge.
    pub cohort: Uuid,
    /// The signed-in user, for allow-lists.
    pub user_id: Option<Uuid>,
    /// Whether the user agreed to analytics: only then is `user_id` logged.
    pub analytics_consent: bool,
    /// A hash of the session (or anonymous id): always logged, identifies
    /// nobody.
    pub session_hash: String,
}

impl Visitor {
    pub fn of(ctx: &RequestContext) -> Self {
        match &ctx.principal {
            Some(p) => Visitor {
                cohort: p.cohort_key,
                user_id: Some(p.user_id),
                analytics_consent: p.analytics_consent,
                session_hash: session_hash("session", p.session_id),
            },
            None => Visitor {
                cohort: ctx.anon_id.as_uuid(),
                user_id: None,
                analytics_consent: false,
                session_hash: session_hash("anon", ctx.anon_id.as_uuid()),
            },
        }
    }
}

fn session_hash(kind: &str, id: Uuid) -> String {
    let digest = Sha256::new()
        .chain_update(kind.as_bytes())
        .chain_update(b":")
        .chain_update(id.as_bytes())
        .finalize();
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// Every flag's answer for one visitor.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FlagSet {
    pub flags: BTreeMap<String, Evaluation>,
}

impl FlagSet {
    /// Whether `key` is on; an unknown flag is off.
    pub fn is_on(&self, key: &str) -> bool {
        self.flags.get(key).is_some_and(|e| e.on)
    }

    /// `{key: bool}`, what a page or API hands to the client.
    pub fn to_map(&self) -> BTreeMap<&str, bool> {
        self.flags.iter().map(|(k, e)| (k.as_str(), e.on)).collect()
    }
}

/// Evaluates every flag for `visitor` in one call (one cache read, one log
/// append): what a page asks for.
pub async fn flags_for(
    sql: &impl Sql,
    cache: &impl Cache,
    visitor: &Visitor,
    now: DateTime<Utc>,
) -> FlagSet {
    let defs = store::definitions(sql, cache).await;
    let set = FlagSet {
        flags: defs
            .flags
            .iter()
            .map(|f| (f.key.clone(), evaluate(f, visitor.cohort, visitor.user_id)))
            .collect(),
    };
    if defs.source != Source::Unavailable {
        evaluation_log::record(cache, visitor, now, &set.flags).await;
    }
    set
}

/// Evaluates one flag for `visitor`.
pub async fn is_enabled(
    sql: &impl Sql,
    cache: &impl Cache,
    visitor: &Visitor,
    key: &str,
    now: DateTime<Utc>,
) -> bool {
    let defs = store::definitions(sql, cache).await;
    let evaluation = match (defs.source, defs.get(key)) {
        (Source::Unavailable, _) => Evaluation::off(Reason::Unavailable),
        (_, None) => Evaluation::off(Reason::Unknown),
        (_, Some(f)) => evaluate(f, visitor.cohort, visitor.user_id),
    };
    if defs.source != Source::Unavailable {
        evaluation_log::record(
            cache,
            visitor,
            now,
            &BTreeMap::from([(key.to_owned(), evaluation)]),
        )
        .await;
    }
    evaluation.on
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_hash_is_stable_and_names_nobody() {
        let id = Uuid::new_v4();
        let h = session_hash("anon", id);
        assert_eq!(h, session_hash("anon", id));
        assert_ne!(h, session_hash("session", id));
        assert_eq!(h.len(), 32);
        assert!(!h.contains(&id.simple().to_string()[..8]));
    }
}
