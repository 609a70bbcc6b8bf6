//! `fermyon:spin/redis@2.0.0` on multiplexed, self-reconnecting connections.
//!
//! One `ConnectionManager` per address, shared by every instance: Redis
//! pipelines commands from many requests over one socket, and the manager
//! reconnects after a Redis restart without the guest noticing more than one
//! failed call.

use std::collections::HashMap;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::Mutex;
use wasmtime::component::Resource;

use crate::bindings::spin_host::fermyon::spin2_0_0::redis::{
    self as r, Error, Payload, RedisParameter, RedisResult,
};
use crate::state::InstanceState;

/// Short: a component waiting on a dead Redis should fail (and fall back,
/// where it has a fallback) well within its request budget.
const TIMEOUT: Duration = Duration::from_millis(500);

#[derive(Default)]
pub struct RedisClients {
    managers: Mutex<HashMap<String, ConnectionManager>>,
}

impl RedisClients {
    /// The connection to `address`, opened on first use. With
    /// `block_networks` configured, the host is resolved first and refused
    /// when every address is blocked (as Spin's resolver does; the client
    /// resolves again when it reconnects — see runtime/README.md).
    pub async fn get(
        &self,
        address: &str,
        blocked: &crate::blocked_networks::BlockedNetworks,
    ) -> Result<ConnectionManager, Error> {
        let mut managers = self.managers.lock().await;
        if let Some(m) = managers.get(address) {
            return Ok(m.clone());
        }
        let client = redis::Client::open(address).map_err(|_| Error::InvalidAddress)?;
        if !blocked.is_empty()
            && let redis::ConnectionAddr::Tcp(host, port)
            | redis::ConnectionAddr::TcpTls { host, port, .. } =
                client.get_connection_info().addr()
        {
            let lookup = tokio::net::lookup_host((host.as_str(), *port));
            let addrs: Vec<std::net::SocketAddr> = tokio::time::timeout(TIMEOUT, lookup)
                .await
                .map_err(|_| Error::Other("resolving the Redis host timed out".into()))?
                .map_err(|_| Error::Other("failed to resolve the Redis host".into()))?
                .collect();
            if !addrs.is_empty() && addrs.iter().all(|a| blocked.is_blocked(a.ip())) {
                return Err(Error::Other(
                    "destination IP prohibited by runtime config".into(),
                ));
            }
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT))
            .set_number_of_retries(1);
        let manager = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(|e| Error::Other(format!("failed to connect to Redis: {}", e.kind_str())))?;
        managers.insert(address.to_owned(), manager.clone());
        Ok(manager)
    }
}

trait KindStr {
    fn kind_str(&self) -> String;
}

impl KindStr for redis::RedisError {
    /// The error without the address (which may hold a password).
    fn kind_str(&self) -> String {
        match self.detail() {
            Some(d) => format!("{:?}: {d}", self.kind()),
            None => format!("{:?}", self.kind()),
        }
    }
}

pub struct RedisConnection {
    conn: ConnectionManager,
}

fn other(e: redis::RedisError) -> Error {
    if e.kind() == redis::ErrorKind::UnexpectedReturnType {
        Error::TypeError
    } else {
        Error::Other(e.kind_str())
    }
}

impl InstanceState {
    /// Runs one command on the guest's connection; Redis errors go to the guest.
    async fn run<T: redis::FromRedisValue>(
        &mut self,
        res: &Resource<RedisConnection>,
        cmd: redis::Cmd,
    ) -> wasmtime::Result<Result<T, Error>> {
        let mut conn = self.table.get(res)?.conn.clone();
        Ok(cmd.query_async(&mut conn).await.map_err(other))
    }
}

impl r::Host for InstanceState {}

impl r::HostConnection for InstanceState {
    async fn open(
        &mut self,
        address: String,
    ) -> wasmtime::Result<Result<Resource<RedisConnection>, Error>> {
        // Spin answers `invalid-address` for an address it cannot parse and
        // for one the component may not reach alike; an address without a
        // scheme is read as `redis://`.
        let url = if address.contains("://") {
            address.clone()
        } else {
            format!("redis://{address}")
        };
        if let Err(denied) = self.component.allow_list.allows_url(&url) {
            tracing::warn!(component = %self.component.id, "redis connection refused: {denied}");
            return Ok(Err(Error::InvalidAddress));
        }
        match self
            .shared
            .redis
            .get(&address, &self.shared.blocked_networks)
            .await
        {
            Ok(conn) => Ok(Ok(self.table.push(RedisConnection { conn })?)),
            Err(e) => Ok(Err(e)),
        }
    }

    async fn publish(
        &mut self,
        c: Resource<RedisConnection>,
        channel: String,
        payload: Payload,
    ) -> wasmtime::Result<Result<(), Error>> {
        let receivers: Result<i64, Error> = self
            .run(
                &c,
                redis::cmd("PUBLISH").arg(channel).arg(payload).to_owned(),
            )
            .await?;
        Ok(receivers.map(drop))
    }

    async fn get(
        &mut self,
        c: Resource<RedisConnection>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Payload>, Error>> {
        self.run(&c, redis::cmd("GET").arg(key).to_owned()).await
    }

    async fn set(
        &mut self,
        c: Resource<RedisConnection>,
        key: String,
        value: Payload,
    ) -> wasmtime::Result<Result<(), Error>> {
        self.run(&c, redis::cmd("SET").arg(key).arg(value).to_owned())
            .await
    }

    async fn incr(
        &mut self,
        c: Resource<RedisConnection>,
        key: String,
    ) -> wasmtime::Result<Result<i64, Error>> {
        self.run(&c, redis::cmd("INCR").arg(key).to_owned()).await
    }

    async fn del(
        &mut self,
        c: Resource<RedisConnection>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<u32, Error>> {
        self.run(&c, redis::cmd("DEL").arg(keys).to_owned()).await
    }

    async fn sadd(
        &mut self,
        c: Resource<RedisConnection>,
        key: String,
        values: Vec<String>,
    ) -> wasmtime::Result<Result<u32, Error>> {
        self.run(&c, redis::cmd("SADD").arg(key).arg(values).to_owned())
            .await
    }

    async fn smembers(
        &mut self,
        c: Resource<RedisConnection>,
        key: String,
    ) -> wasmtime::Result<Result<Vec<String>, Error>> {
        self.run(&c, redis::cmd("SMEMBERS").arg(key).to_owned())
            .await
    }

    async fn srem(
        &mut self,
        c: Resource<RedisConnection>,
        key: String,
        values: Vec<String>,
    ) -> wasmtime::Result<Result<u32, Error>> {
        self.run(&c, redis::cmd("SREM").arg(key).arg(values).to_owned())
            .await
    }

    async fn execute(
        &mut self,
        c: Resource<RedisConnection>,
        command: String,
        arguments: Vec<RedisParameter>,
    ) -> wasmtime::Result<Result<Vec<RedisResult>, Error>> {
        let mut cmd = redis::cmd(&command);
        for a in arguments {
            match a {
                RedisParameter::Int64(i) => cmd.arg(i),
                RedisParameter::Binary(b) => cmd.arg(b),
            };
        }
        let value: Result<redis::Value, Error> = self.run(&c, cmd).await?;
        Ok(value.map(|v| {
            let mut out = Vec::new();
            flatten(v, &mut out);
            out
        }))
    }

    async fn drop(&mut self, c: Resource<RedisConnection>) -> wasmtime::Result<()> {
        self.table.delete(c)?;
        Ok(())
    }
}

/// Spin's `execute` answers a flat list: arrays are flattened in order.
fn flatten(v: redis::Value, out: &mut Vec<RedisResult>) {
    use redis::Value as V;
    match v {
        V::Nil => out.push(RedisResult::Nil),
        V::Int(i) => out.push(RedisResult::Int64(i)),
        V::BulkString(b) => out.push(RedisResult::Binary(b)),
        V::SimpleString(s) => out.push(RedisResult::Status(s)),
        V::Okay => out.push(RedisResult::Status("OK".into())),
        V::Array(items) | V::Set(items) => items.into_iter().for_each(|i| flatten(i, out)),
        V::Map(pairs) => pairs.into_iter().for_each(|(k, v)| {
            flatten(k, out);
            flatten(v, out);
        }),
        V::Double(d) => out.push(RedisResult::Status(d.to_string())),
        V::Boolean(b) => out.push(RedisResult::Int64(i64::from(b))),
        V::VerbatimString { text, .. } => out.push(RedisResult::Binary(text.into_bytes())),
        V::BigNumber(n) => out.push(RedisResult::Status(n.to_string())),
        V::Attribute { data, .. } => flatten(*data, out),
        V::Push { data, .. } => data.into_iter().for_each(|i| flatten(i, out)),
        V::ServerError(e) => out.push(RedisResult::Status(format!("{e:?}"))),
        // `redis::Value` is non-exhaustive; newer RESP3 kinds pass through as text.
        other => out.push(RedisResult::Status(format!("{other:?}"))),
    }
}
