//! `stocks-scheduler` — cron component. Every five minutes: queues the
//! quote refreshes that are due (each watched symbol once).

// The cron export glue (`village_platform::cron_component!`) is `unsafe`.
#![allow(unsafe_code)]

village_platform::cron_component!(village_stocks::spin_components::schedule);
