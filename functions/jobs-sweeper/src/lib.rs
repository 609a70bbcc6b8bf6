//! `jobs-sweeper` — cron component. Every minute: rescues stale job locks and wakes queues with due jobs.

// The cron export glue (`village_platform::cron_component!`) is `unsafe`.
#![allow(unsafe_code)]

village_platform::cron_component!(village_jobs::spin_components::sweep);
