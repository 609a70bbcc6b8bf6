//! Rate limiting: the first line of defence against scraping, brute force
//! and spam, checked before a handler runs.
//!
//! - [`rules`]: a limit per action and scope (IP, user, anonymous id), with
//!   its fail mode and ban policy; stored in Postgres, cached in Redis.
//! - [`limiter`]: the check itself — GCRA in one Redis script — and what
//!   happens over the limit (violations, bans) and when Redis is down.
//! - [`routes`]: which action each route counts against, in one table.
//! - [`admin`]: `/admin/api/rate-limits` — rules, bans, violations.
//!
//! **Why GCRA.** The generic cell rate algorithm keeps one value per
//! subject (the theoretical arrival time), so memory is constant whatever
//! the limit; a check is one atomic script, so concurrent requests across
//! pods are counted exactly; it has no window edge where a fixed window lets
//! twice the limit through; and it yields the exact `Retry-After`. A sliding
//! log is as exact but stores every request; a sliding-window counter is
//! cheap but approximate.

pub mod admin;
pub mod limiter;
pub mod retention;
pub mod routes;
pub mod rules;
#[cfg(feature = "spin")]
pub mod spin;

pub use limiter::{Decision, Subjects, check, gate};
pub use rules::{FailMode, Rule, Scope};
