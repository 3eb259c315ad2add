use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = sluice::cli::Cli::parse();
    // The dev host and the CLI print their own progress lines; the handler logs.
    let quiet = !matches!(cli.command, sluice::cli::Command::Serve { .. });
    sluice::telemetry::init(if quiet { "warn" } else { "info" });
    let outcome = sluice::cli::run(cli).await;
    sluice::otlp::shutdown();
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
