//! The classifieds marketplace: where things are ([`places`]), what they
//! are ([`categories`]), what sellers post ([`listings`], bodies through
//! [`markdown`]), how buyers find them ([`search`]), their pictures in
//! object storage ([`images`]), the daily [`lifecycle`] job, and the HTTP
//! surface ([`api`], pages in `pages`, the homepage widget in [`widget`]).

pub mod api;
pub mod categories;
pub mod images;
pub mod lifecycle;
pub mod listings;
pub mod markdown;
mod pages;
pub mod places;
pub mod search;
#[cfg(feature = "spin")]
pub mod spin_components;
pub mod widget;

pub use pages::money;
pub use village_payments::PROMOTIONS_FLAG;
