//! `feeds-scheduler` — cron component. Every minute: enqueues a refresh job for each due feed.

// wit-bindgen's export macro generates the component ABI glue, which is `unsafe`.
#![allow(unsafe_code)]

wit_bindgen::generate!({
    path: "../../wit",
    world: "fermyon:spin-cron/spin-cron@2.0.0",
});

struct Component;

impl Guest for Component {
    fn handle_cron_event(metadata: Metadata) -> Result<(), Error> {
        spin_sdk::http::run(village_feeds::spin_components::schedule(metadata.timestamp))
            .map_err(Error::Other)
    }
}

export!(Component);
