//! Host bindings for the Spin interfaces beyond WASI, generated from `wit/`.

/// Imports: Redis, variables (Spin 2 and WASI config), Postgres 4, and the
/// key-value, SQLite and MQTT interfaces Spin links for every component.
pub mod spin_host {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "village:runtime/spin-host",
        imports: { default: async | trappable },
        with: {
            "spin:postgres/postgres.connection": crate::host::postgres::PgConnection,
            "fermyon:spin/redis.connection": crate::host::redis::RedisConnection,
            "fermyon:spin/key-value.store": crate::host::key_value::KvStore,
            "fermyon:spin/sqlite.connection": crate::host::sqlite::SqliteConnection,
            "fermyon:spin/mqtt.connection": crate::host::mqtt::MqttConnection,
        },
    });
}

/// The export of a component run by a Redis trigger.
pub mod redis_handler {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "village:runtime/redis-handler",
        exports: { default: async },
    });
}

/// The export of a component run by a cron trigger.
pub mod cron_handler {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "village:runtime/cron-handler",
        exports: { default: async },
    });
}
