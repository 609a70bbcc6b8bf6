//! Rebuild when any migration changes: `embed_migrations!` reads the folder
//! at compile time, but Cargo does not know to watch it without this.
fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
