//! A visitor's homepage: which widgets, where, and their settings.
//!
//! Input arrives as JSON and is validated completely before anything is
//! stored: every bad field is reported at once, by path, and an invalid
//! document changes nothing. Documents carry a `schema_version` so later
//! versions can upgrade old layouts on read.
//!
//! Anonymous visitors get a `users` row only when they first save, never on a
//! page view, so crawlers cannot fill the table.

pub mod api;
mod model;
mod store;
mod validate;

pub use model::{Layout, Preferences, Settings, Size, Theme, Units, Widget, WidgetKind};
pub use store::{Owner, load, save, update_widget_settings};
pub use validate::{MAX_BODY_BYTES, MAX_WIDGETS, parse};

/// The version of the document shape this code writes.
pub const SCHEMA_VERSION: i32 = 1;
