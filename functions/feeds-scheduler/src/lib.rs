//! `feeds-scheduler` — cron component. Every minute: enqueues a refresh job for each due feed.

// The cron export glue (`village_platform::cron_component!`) is `unsafe`.
#![allow(unsafe_code)]

village_platform::cron_component!(village_feeds::spin_components::schedule);
