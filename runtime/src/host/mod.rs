pub mod key_value;
pub mod mqtt;
pub mod outbound_http;
pub mod postgres;
pub mod postgres_types;
pub mod redis;
pub mod sqlite;
pub mod variables;
