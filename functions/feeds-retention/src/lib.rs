//! `feeds-retention` — cron component. Daily: prunes articles past 30 days and feeds nobody reads.

// The cron export glue (`village_platform::cron_component!`) is `unsafe`.
#![allow(unsafe_code)]

village_platform::cron_component!(village_feeds::spin_components::retention);
