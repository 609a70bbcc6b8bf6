//! `payments-scheduler` — cron component, every five minutes: queues again
//! approved refunds, unapplied Stripe events and disputes still without
//! evidence, and from 02:00 UTC the previous day's reconciliation (every
//! job keyed, so nothing runs twice). See
//! `village_payments::spin_components::schedule`.

// The cron export glue (`village_platform::cron_component!`) is `unsafe`.
#![allow(unsafe_code)]

village_platform::cron_component!(village_payments::spin_components::schedule);
