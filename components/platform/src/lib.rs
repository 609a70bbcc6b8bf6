//! The platform every Village Homepage component is assembled on.
//!
//! Domain crates talk to the outside world only through the small traits
//! here — [`sql::Sql`], [`cache::Cache`], [`clock::Clock`], [`blob::BlobStore`]
//! — so they build and test natively. Each port has two honest adapters:
//! the Spin one components use (feature `spin`: Spin Postgres 4, Spin Redis)
//! and a native one tests use against the same real servers (feature
//! `native`: tokio-postgres, redis). Around them: the request context
//! (anonymous id, signed-in principal, trace ids), one error-to-HTTP mapping, one JSON log line
//! per request, and request metrics kept in Redis.

pub mod address;
pub mod admin;
pub mod assets;
pub mod audit;
pub mod blob;
pub mod boundary;
pub mod breaker;
pub mod cache;
pub mod clock;
pub mod context;
pub mod error;
pub mod fetch;
pub mod guard;
pub mod http_client;
pub mod log;
pub mod mail;
pub mod metrics;
pub mod objects;
pub mod probes;
pub mod session;
pub mod sql;
pub mod web;

#[cfg(feature = "native")]
pub mod native;
#[cfg(feature = "spin")]
pub mod spin;

pub use context::{AnonId, RequestContext};
pub use error::{AppError, FieldError};
