//! Good Sites (issue #17): a curated, voted web directory.
//!
//! - [`urls`]: a submitted URL normalised, and the key that makes two
//!   spellings of one site the same entry.
//! - [`categories`]: the seeded two-level tree (sections, categories).
//! - [`sites`]: submissions (signed in, rate limited, deduplicated,
//!   address-checked) and the listings pages read (top, new, search).
//! - [`moderation`]: who moderates what (admins with `moderate_content`;
//!   moderators appointed per category; users whose karma in a section
//!   passes the threshold), approve / edit / reject with a reason, audited.
//! - [`votes`]: one changeable vote per user per site and the karma it
//!   moves, every adjustment a row with its cause.
//! - [`fetch`]: the `directory.fetch_site` job: the page's title,
//!   description and status through the guarded fetch path, and a
//!   category suggestion from the AI under its budget.
//! - [`health`]: the `directory.check_links` job: every approved site
//!   checked, with backoff; broken, redirected and parked ones flagged for
//!   moderators with what was seen.
//! - [`recapture`]: the `directory.recapture` job: screenshots older than
//!   the policy age queued again.
//! - [`admin`]: `/admin/api/good-sites/moderators`, appointments.
//! - [`api`], [`pages`], [`widget`]: JSON, the server-rendered pages and
//!   the homepage's `good_sites` widget.

pub mod admin;
pub mod api;
pub mod categories;
pub mod fetch;
pub mod health;
pub mod moderation;
pub mod pages;
pub mod recapture;
pub mod sites;
#[cfg(feature = "spin")]
pub mod spin_components;
pub mod urls;
pub mod votes;
pub mod widget;

/// Sets `directory.*` job names in one place (the workers' registry and
/// the schedulers read them).
pub mod jobs {
    pub const FETCH_SITE: &str = "directory.fetch_site";
    pub const CHECK_LINKS: &str = "directory.check_links";
    pub const RECAPTURE: &str = "directory.recapture";
}
