//! `village-migrate`: apply migrations (`up`) or list them (`status`).

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "village-migrate", about = "Village Homepage schema migrations")]
struct Cli {
    /// Postgres connection string.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/village"
    )]
    database_url: String,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Apply every pending migration (the default).
    Up,
    /// List migrations and whether each is applied.
    Status,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Up) {
        Command::Up => println!("{}", village_migrate::migrate(&cli.database_url).await?),
        Command::Status => {
            for m in village_migrate::status(&cli.database_url).await? {
                let mark = if m.applied { "applied" } else { "pending" };
                println!("V{:<4} {:<40} {mark}", m.version, m.name);
            }
        }
    }
    Ok(())
}
