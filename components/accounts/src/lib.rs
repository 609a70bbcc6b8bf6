//! Identity and governance: who a visitor is and what they may do.
//!
//! - [`oidc`] and [`login`]: sign-in with Google, Facebook and Apple
//!   (authorization code + PKCE, `state`, `nonce`, ID tokens verified against
//!   each provider's JWKS).
//! - [`sessions`]: our own sessions — a 15-minute access JWT (issued and
//!   verified by `village_platform::session`) and rotating, hashed refresh
//!   tokens whose reuse revokes the family.
//! - [`merge`]: the consented merge of anonymous data into an account.
//! - [`roles`] and [`authz`]: roles, the permissions they grant, the
//!   permission each admin route needs, audited denials.
//! - [`bootstrap`], [`impersonation`], [`admin_users`], [`audit_log`]: the
//!   admin surface.
//! - [`pages`]: the HTML the auth flow shows; [`retention`]: what expires.

pub mod admin_routes;
pub mod admin_users;
pub mod audit_log;
pub mod auth_routes;
pub mod authz;
pub mod bootstrap;
pub mod consent;
pub mod impersonation;
pub mod login;
pub mod merge;
pub mod oidc;
pub mod pages;
pub mod retention;
pub mod roles;
pub mod sessions;
#[cfg(feature = "spin")]
pub mod spin;

pub use roles::{Permission, Role};
