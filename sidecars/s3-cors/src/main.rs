//! `village-s3-cors`: see the library's documentation.

use std::net::SocketAddr;
use std::sync::Arc;

use clap::Parser;

#[derive(Parser)]
#[command(about = "CORS in front of a local S3 server (development only)")]
struct Args {
    /// Where browsers reach storage (the app's `object_store_endpoint`).
    #[arg(long)]
    listen: SocketAddr,
    /// The S3 server behind.
    #[arg(long)]
    upstream: SocketAddr,
    /// An origin allowed to upload (the app's); repeatable.
    #[arg(long = "allow-origin", required = true)]
    allow_origins: Vec<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    eprintln!(
        "village-s3-cors: {} → {} for {}",
        args.listen,
        args.upstream,
        args.allow_origins.join(", ")
    );
    village_s3_cors::serve(listener, args.upstream, Arc::new(args.allow_origins)).await;
    Ok(())
}
