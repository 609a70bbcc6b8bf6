//! News feeds (issue #7): which feeds a visitor reads, fetching them on
//! schedule, their articles stored once, and what the news widget shows.
//!
//! - Which feed URLs may be fetched at all (http(s) only, never private,
//!   loopback or link-local addresses — server-side request forgery), with
//!   an allow-list for tests: [`village_platform::address`], shared with the
//!   screenshot host.
//! - [`parse`]: RSS, Atom and JSON Feed into one item model, summaries
//!   sanitised, each item with a content hash for dedupe across feeds.
//! - [`refresh`]: one feed's conditional GET, its items stored once per
//!   article, its state and backoff.
//! - [`schedule`]: the minute cron's refresh jobs for due feeds, one per slot.
//! - [`handler`]: the `feeds.refresh` job; new articles schedule AI tagging
//!   (`village_ai::tagging`).
//! - [`subscriptions`]: default feeds, a user's own list, each feed's health.
//! - [`view`]: the widget's articles, tags and feed health.
//! - [`api`]: `/api/feeds`, `/api/news` and the homepage's forms.
//! - [`retention`]: old articles and unread feeds pruned daily.
//! - [`admin`]: `/admin/api/feeds` — ops add default feeds, set intervals.

pub mod admin;
pub mod api;
pub mod handler;
pub mod parse;
pub mod refresh;
pub mod retention;
pub mod schedule;
pub mod subscriptions;
pub mod view;

#[cfg(feature = "spin")]
pub mod spin_components;
