//! `jobs-sweeper` — cron component. Every minute: rescues stale job locks and wakes queues with due jobs.

// wit-bindgen's export macro generates the component ABI glue, which is `unsafe`.
#![allow(unsafe_code)]

wit_bindgen::generate!({
    path: "../../wit",
    world: "fermyon:spin-cron/spin-cron@2.0.0",
});

struct Component;

impl Guest for Component {
    fn handle_cron_event(metadata: Metadata) -> Result<(), Error> {
        spin_sdk::http::run(village_jobs::spin_components::sweep(metadata.timestamp))
            .map_err(Error::Other)
    }
}

export!(Component);
