//! `marketplace-lifecycle` — cron component. Daily: enqueues one
//! `marketplace.lifecycle` job (see `village_marketplace::lifecycle`).

// The cron export glue (`village_platform::cron_component!`) is `unsafe`.
#![allow(unsafe_code)]

village_platform::cron_component!(village_marketplace::spin_components::schedule);
