use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = sluice::cli::Cli::parse();
    // The dev host and the CLI print their own progress lines; the handler logs.
    let quiet = !matches!(cli.command, sluice::cli::Command::Serve { .. });
    sluice::telemetry::init(if quiet { "warn" } else { "info" });
    match sluice::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
