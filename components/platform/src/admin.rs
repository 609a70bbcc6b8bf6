//! Who performed an admin action, as the audit log records it. Deciding
//! whether they may is `village_accounts::authz` (roles and permissions).

/// The caller behind an admin change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub user_id: Option<uuid::Uuid>,
    /// Who, in words that stay meaningful after the user is deleted.
    pub label: String,
}
