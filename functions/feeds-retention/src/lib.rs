//! `feeds-retention` — cron component. Daily: prunes articles past 30 days and feeds nobody reads.

// wit-bindgen's export macro generates the component ABI glue, which is `unsafe`.
#![allow(unsafe_code)]

wit_bindgen::generate!({
    path: "../../wit",
    world: "fermyon:spin-cron/spin-cron@2.0.0",
});

struct Component;

impl Guest for Component {
    fn handle_cron_event(metadata: Metadata) -> Result<(), Error> {
        spin_sdk::http::run(village_feeds::spin_components::retention(
            metadata.timestamp,
        ))
        .map_err(Error::Other)
    }
}

export!(Component);
