//! `ai-budget` — cron component. Hourly: recomputes the AI budget, sends threshold notices, resumes tagging.

// The cron export glue (`village_platform::cron_component!`) is `unsafe`.
#![allow(unsafe_code)]

village_platform::cron_component!(village_ai::spin_components::hourly);
