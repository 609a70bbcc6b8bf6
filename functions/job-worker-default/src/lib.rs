//! `job-worker-default` — woken on Redis channel `village-jobs-default`, drains the
//! DEFAULT queue (see `Queue::drain_order` for what it takes first).

// The SDK's export macro generates the component ABI glue, which is `unsafe`.
#![allow(unsafe_code)]

use bytes::Bytes;
use spin_sdk::redis_component;
use village_jobs::Queue;

#[redis_component]
async fn on_wake(_message: Bytes) -> anyhow::Result<()> {
    village_workers::run("job-worker-default", Queue::Default)
        .await
        .map_err(anyhow::Error::msg)
}
