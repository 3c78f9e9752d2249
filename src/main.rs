//! The `tidings` binary: `serve` (default), `token <user>` and `keys`. No logic here.

use clap::{Parser, Subcommand};
use tidings::{Application, Settings};

#[derive(Parser)]
#[command(
    name = "tidings",
    version,
    about = "Self-hosted in-app notification feeds, Knock-compatible"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    settings: Settings,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API and the socket (the default).
    Serve,
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TIDINGS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    let runtime = match actix_web::rt::System::new().block_on(async move {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => serve(cli.settings).await,
        }
    }) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("tidings: {e}");
            1
        }
    };
    std::process::ExitCode::from(runtime)
}

async fn serve(settings: Settings) -> Result<(), Box<dyn std::error::Error>> {
    let app = Application::build(settings.clone()).await?;
    let state = app.state();
    println!(
        "Tidings listening on http://{}:{}",
        settings.addr.ip(),
        app.port()
    );
    println!("  database:   {}", state.store.path().display());
    println!("  secret key: {}", state.keys.secret_key);
    println!("  public key: {}", state.keys.public_key);
    app.run_until_stopped().await?;
    Ok(())
}
