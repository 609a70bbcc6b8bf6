//! `jobs-retention` — cron component. Daily: purges finished jobs past their retention.

// The cron export glue (`village_platform::cron_component!`) is `unsafe`.
#![allow(unsafe_code)]

village_platform::cron_component!(village_jobs::spin_components::purge);
