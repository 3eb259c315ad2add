//! Logging: compact lines locally, JSON in Azure (`SLUICE_LOG_FORMAT=json`); `RUST_LOG` wins.

use tracing_subscriber::EnvFilter;

/// `default_filter` applies when `RUST_LOG` is unset.
pub fn init(default_filter: &str) {
    use std::io::IsTerminal;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    // try_init: a second call (tests) is harmless.
    let _ = if std::env::var("SLUICE_LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder.json().try_init()
    } else {
        builder.compact().try_init()
    };
}
