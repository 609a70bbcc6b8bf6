//! News feeds (issue #7, in progress): the parts that do not need the
//! network or the database yet.
//!
//! - [`address`]: which feed URLs may be fetched at all (http(s) only, never
//!   private, loopback or link-local addresses — server-side request
//!   forgery), with an allow-list for tests.
//! - [`parse`]: RSS, Atom and JSON Feed into one item model, summaries
//!   sanitised, each item with a content hash for dedupe across feeds.
//! - [`refresh`]: one feed's conditional GET, its items stored once per
//!   article, its state and backoff.
//!
//! Not yet: the cron that enqueues due feeds, the job handler, visitors'
//! feeds, AI tagging and the widget.

pub mod address;
pub mod parse;
pub mod refresh;
