//! `weather-scheduler` — cron component. Hourly: queues a refresh of every
//! location visitors' weather widgets name (each once).

// The cron export glue (`village_platform::cron_component!`) is `unsafe`.
#![allow(unsafe_code)]

village_platform::cron_component!(village_weather::spin_components::schedule);
