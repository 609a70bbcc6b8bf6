//! Roles, the permissions they grant, and which permission each admin route
//! needs — the two tables every authorisation decision reads.
//!
//! Both tables are code, not rows: changing what a role may do is a reviewed
//! deploy. A route missing from [`ADMIN_ROUTES`] is denied to everyone.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    SuperAdmin,
    Support,
    Ops,
    ReadOnly,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::SuperAdmin, Role::Support, Role::Ops, Role::ReadOnly];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::SuperAdmin => "super_admin",
            Role::Support => "support",
            Role::Ops => "ops",
            Role::ReadOnly => "read_only",
        }
    }

    /// The permissions this role grants.
    pub fn permissions(self) -> &'static [Permission] {
        use Permission::*;
        match self {
            Role::SuperAdmin => &Permission::ALL,
            Role::Support => &[
                ViewUsers,
                ModerateContent,
                ManageRefunds,
                Impersonate,
                ViewAudit,
            ],
            Role::Ops => &[ViewUsers, ManageSystem, ManageFlags, ViewAudit],
            Role::ReadOnly => &[ViewUsers, ViewAudit],
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                format!("unknown role `{s}`: expected super_admin, support, ops or read_only")
            })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// Search and view users.
    ViewUsers,
    /// Assign and remove roles, revoke sessions.
    ManageUsers,
    /// Queues, rate limits, budgets: the machinery.
    ManageSystem,
    ManageFlags,
    ManageRefunds,
    ModerateContent,
    ViewAudit,
    /// Act as a non-admin user to see what they see.
    Impersonate,
}

impl Permission {
    pub const ALL: [Permission; 8] = [
        Permission::ViewUsers,
        Permission::ManageUsers,
        Permission::ManageSystem,
        Permission::ManageFlags,
        Permission::ManageRefunds,
        Permission::ModerateContent,
        Permission::ViewAudit,
        Permission::Impersonate,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Permission::ViewUsers => "view_users",
            Permission::ManageUsers => "manage_users",
            Permission::ManageSystem => "manage_system",
            Permission::ManageFlags => "manage_flags",
            Permission::ManageRefunds => "manage_refunds",
            Permission::ModerateContent => "moderate_content",
            Permission::ViewAudit => "view_audit",
            Permission::Impersonate => "impersonate",
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether any of `roles` grants `permission`.
pub fn grants(roles: &[Role], permission: Permission) -> bool {
    roles.iter().any(|r| r.permissions().contains(&permission))
}

/// One admin route family and the permission it needs.
#[derive(Debug, Clone, Copy)]
pub struct AdminRoute {
    /// `None` matches every method.
    pub method: Option<&'static str>,
    /// A path prefix, matched on `/` boundaries.
    pub prefix: &'static str,
    pub permission: Permission,
}

const fn route(method: Option<&'static str>, prefix: &'static str, p: Permission) -> AdminRoute {
    AdminRoute {
        method,
        prefix,
        permission: p,
    }
}

/// Every admin route and its permission: the one place they are declared.
/// The first match wins, so specific entries come before general ones.
pub const ADMIN_ROUTES: &[AdminRoute] = &[
    route(Some("GET"), "/admin/api/users", Permission::ViewUsers),
    route(None, "/admin/api/users", Permission::ManageUsers),
    route(None, "/admin/api/impersonation", Permission::Impersonate),
    route(Some("GET"), "/admin/api/audit", Permission::ViewAudit),
    route(None, "/admin/api/queues", Permission::ManageSystem),
    route(None, "/admin/api/rate-limits", Permission::ManageSystem),
    route(None, "/admin/api/flags", Permission::ManageFlags),
    route(None, "/admin/api/ai-budget", Permission::ManageSystem),
    route(None, "/admin/api/feeds", Permission::ManageSystem),
    route(None, "/admin/api/screenshots", Permission::ManageSystem),
    // Appointing Good Sites moderators delegates content moderation: for
    // those who hold it (support, super admins).
    route(None, "/admin/api/good-sites", Permission::ModerateContent),
    // Promotion prices are ops' (listed before the rest of payments: the
    // first matching prefix decides).
    route(
        None,
        "/admin/api/payments/products",
        Permission::ManageSystem,
    ),
    route(None, "/admin/api/payments", Permission::ManageRefunds),
];

/// The permission `method path` needs, or `None`: nobody may call it.
pub fn required_permission(method: &str, path: &str) -> Option<Permission> {
    ADMIN_ROUTES
        .iter()
        .find(|r| {
            r.method.is_none_or(|m| m.eq_ignore_ascii_case(method))
                && (path == r.prefix
                    || path
                        .strip_prefix(r.prefix)
                        .is_some_and(|rest| rest.starts_with('/')))
        })
        .map(|r| r.permission)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_super_admins_manage_users() {
        for role in Role::ALL {
            assert_eq!(
                grants(&[role], Permission::ManageUsers),
                role == Role::SuperAdmin,
                "{role}"
            );
        }
    }

    #[test]
    fn support_may_impersonate_and_ops_may_not() {
        assert!(grants(&[Role::Support], Permission::Impersonate));
        assert!(!grants(&[Role::Ops], Permission::Impersonate));
        assert!(!grants(&[Role::ReadOnly], Permission::Impersonate));
        assert!(grants(&[Role::Ops], Permission::ManageSystem));
        assert!(!grants(&[], Permission::ViewAudit));
    }

    #[test]
    fn admin_routes_map_to_their_permission_and_unknown_ones_to_none() {
        use Permission::*;
        let cases = [
            ("GET", "/admin/api/users", Some(ViewUsers)),
            ("GET", "/admin/api/users/5b0c/sessions", Some(ViewUsers)),
            ("POST", "/admin/api/users/5b0c/roles", Some(ManageUsers)),
            (
                "DELETE",
                "/admin/api/users/5b0c/roles/ops",
                Some(ManageUsers),
            ),
            ("POST", "/admin/api/impersonation", Some(Impersonate)),
            ("GET", "/admin/api/audit", Some(ViewAudit)),
            ("POST", "/admin/api/audit", None),
            (
                "POST",
                "/admin/api/queues/DEFAULT/pause",
                Some(ManageSystem),
            ),
            ("GET", "/admin/api/usersearch", None),
            ("GET", "/admin/api/unknown", None),
        ];
        for (method, path, expected) in cases {
            assert_eq!(
                required_permission(method, path),
                expected,
                "{method} {path}"
            );
        }
    }

    #[test]
    fn role_names_round_trip() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        assert!("root".parse::<Role>().is_err());
    }
}
