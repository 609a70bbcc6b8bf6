pub mod outbound_http;
pub mod postgres;
pub mod redis;
pub mod variables;
