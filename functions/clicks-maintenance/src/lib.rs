//! `clicks-maintenance` — cron component. Hourly: queues the
//! `clicks.maintain` job (partitions ahead, rollups checked, retention).

// The cron export glue (`village_platform::cron_component!`) is `unsafe`.
#![allow(unsafe_code)]

village_platform::cron_component!(village_clicks::spin_components::schedule);
