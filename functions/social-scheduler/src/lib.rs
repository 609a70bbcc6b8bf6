//! `social-scheduler` — cron component. Hourly: queues each active Meta
//! connection's posts fetch, and once a day the token upkeep.

// The cron export glue (`village_platform::cron_component!`) is `unsafe`.
#![allow(unsafe_code)]

village_platform::cron_component!(village_social::spin_components::schedule);
