//! The AI service every feature shares (issue #7): calls to the Anthropic
//! Messages API, each costed from the token usage the API reports and a
//! configured price table, under one monthly budget (policy P10).
//!
//! - [`config`]: what the service runs with (Spin variables, read once).
//! - [`budget`]: the month's limit and spend, the level it puts tagging at
//!   (75 % smaller batches, 90 % non-critical work deferred to the 1st of
//!   next month, 100 % hard stop), and the admin override.
//! - [`messages`]: one Messages API call, its usage recorded.
//! - [`notify`]: threshold notices to ops by email (Mailgun's HTTP API) and
//!   Slack webhook, each sent once per month and threshold, delivery kept.
//! - [`tagging`]: the `ai.tag_items` job — news articles tagged in batches.
//!
//! Later features (fraud checks, directory categorisation) call
//! [`budget::allowance`] before work and [`messages::complete`] to do it,
//! so every call counts against the same budget.

pub mod admin;
pub mod budget;
pub mod config;
pub mod messages;
pub mod notify;
pub mod tagging;

pub use budget::{Allowance, Budget, Level, Priority};
pub use config::AiConfig;
#[cfg(feature = "spin")]
pub mod spin_components;
