//! Feature flags: who sees a feature, decided the same way on every pod.
//!
//! - [`model`]: a flag's definition and the pure evaluation (kill switch,
//!   allow-list, enabled, rollout bucket).
//! - [`store`]: definitions from Redis (short TTL) or Postgres, and what
//!   happens when either is down.
//! - [`visitor`]: evaluating for a request's visitor, in one call.
//! - [`evaluation_log`]: the consent-aware log of evaluations, buffered in
//!   Redis and written to Postgres in batches.
//! - [`admin`]: `/admin/api/flags` — list, create, change (audited).
//! - [`retention`]: monthly partitions of the evaluation log, and purges.

pub mod admin;
pub mod evaluation_log;
pub mod model;
pub mod retention;
pub mod store;
pub mod visitor;

pub use model::{Evaluation, FlagDef, Reason, bucket, evaluate};
pub use visitor::{FlagSet, Visitor, flags_for, is_enabled};
