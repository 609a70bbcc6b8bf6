//! `good-sites-scheduler` — cron component. Hourly: queues this hour's
//! link-health run and today's screenshot recapture run.

// The cron export glue (`village_platform::cron_component!`) is `unsafe`.
#![allow(unsafe_code)]

village_platform::cron_component!(village_directory::spin_components::schedule);
