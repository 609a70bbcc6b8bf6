//! Click tracking (issue #17): what visitors actually open, without ever
//! becoming an open redirect.
//!
//! - [`links`]: every outbound link the platform renders is a
//!   `/track/click` link whose parameters (target, link kind and id,
//!   source, position, category) are signed with HMAC-SHA256 under a key
//!   with rotation; an unsigned or altered link is refused (400), never
//!   redirected.
//! - [`record`]: the click is written to `link_clicks` before the redirect
//!   is answered, so a crash after the 302 loses nothing; in the same
//!   statement, what the link leads to is checked to still stand (a signed
//!   link is never a general-purpose redirect).
//! - [`maintain`]: the `clicks.maintain` job: daily partitions created 60
//!   days ahead, raw rows dropped after 90 days, rollups by day, link,
//!   source and category (kept two years), each checked against the raw
//!   rows it came from.
//! - [`popularity`]: visitors over the last 30 days, what "top" ranks by.

pub mod links;
pub mod maintain;
pub mod popularity;
pub mod record;
#[cfg(feature = "spin")]
pub mod spin_components;

pub use links::{Link, LinkError, LinkKind, LinkSigner};
