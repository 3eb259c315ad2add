//! Settings: command-line flags, each backed by an app setting (environment variable),
//! so the same names work in `local.settings.json`, Azure app settings and a shell.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, ValueEnum};
use sluice_shared::storage::ObjectStore;
use sluice_shared::storage::azure::{AzureAuth, AzureBlobStore, ConnectionString};
use sluice_shared::storage::local::LocalStore;

/// A setting that must never reach a log: `Debug` prints `<redacted>`.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum StorageKind {
    /// A directory on this machine (the embedded default).
    Local,
    /// Azure Blob Storage (or Azurite).
    Azure,
}

#[derive(Clone, Debug, Args)]
pub struct StorageSettings {
    /// Which storage adapter to use.
    #[arg(
        long = "storage",
        env = "SLUICE_STORAGE__KIND",
        value_enum,
        default_value = "local",
        global = true
    )]
    pub kind: StorageKind,
    /// Root directory of the local store.
    #[arg(
        long = "root",
        env = "SLUICE_STORAGE__ROOT",
        default_value = ".sluice",
        global = true
    )]
    pub root: PathBuf,
    /// Blob service endpoint, e.g. https://<account>.blob.core.windows.net (managed identity).
    #[arg(
        long = "account-url",
        env = "SLUICE_STORAGE__ACCOUNT_URL",
        global = true
    )]
    pub account_url: Option<String>,
    /// Client id of a user-assigned managed identity (system-assigned when absent).
    #[arg(long = "client-id", env = "SLUICE_STORAGE__CLIENT_ID", global = true)]
    pub client_id: Option<String>,
    /// A storage connection string (Azurite or development only; production uses managed identity).
    #[arg(
        long = "connection",
        env = "SLUICE_STORAGE__CONNECTION_STRING",
        hide_env_values = true,
        global = true
    )]
    pub connection: Option<Secret>,
    /// The blob container holding landing/, datasets/, quarantine/ and the rest.
    #[arg(
        long = "container",
        env = "SLUICE_STORAGE__CONTAINER",
        default_value = "sluice",
        global = true
    )]
    pub container: String,
    /// Where scans write their Parquet snapshot before upload.
    #[arg(long = "scratch-dir", env = "SLUICE_SCRATCH_DIR", global = true)]
    pub scratch_dir: Option<PathBuf>,
}

impl StorageSettings {
    /// Builds the configured adapter (creating the container or directory if needed).
    pub async fn build(&self) -> anyhow::Result<Arc<dyn ObjectStore>> {
        use anyhow::Context;
        Ok(match self.kind {
            StorageKind::Local => Arc::new(
                LocalStore::new(&self.root)
                    .with_context(|| format!("opening local store {}", self.root.display()))?,
            ),
            StorageKind::Azure => {
                let store = match (&self.connection, &self.account_url) {
                    (Some(conn), _) => {
                        let conn = ConnectionString::parse(conn.expose())
                            .map_err(anyhow::Error::msg)
                            .context("SLUICE_STORAGE__CONNECTION_STRING")?;
                        AzureBlobStore::from_connection_string(&conn, &self.container)?
                    }
                    (None, Some(url)) => AzureBlobStore::new(
                        url,
                        &self.container,
                        AzureAuth::ManagedIdentity {
                            client_id: self.client_id.clone(),
                        },
                    )?,
                    (None, None) => anyhow::bail!(
                        "--storage azure needs SLUICE_STORAGE__ACCOUNT_URL (managed identity) or SLUICE_STORAGE__CONNECTION_STRING"
                    ),
                };
                store
                    .ensure_container()
                    .await
                    .context("creating the blob container")?;
                Arc::new(store)
            }
        })
    }

    pub fn scratch(&self) -> PathBuf {
        self.scratch_dir.clone().unwrap_or_else(std::env::temp_dir)
    }

    /// Where the embedded queue keeps its files (inside the local store's reserved area).
    pub fn queue_dir(&self) -> PathBuf {
        self.root.join(".sluice-queue")
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    #[test]
    fn the_connection_string_never_reaches_debug_output() {
        let cli = crate::cli::Cli::parse_from([
            "sluice",
            "--connection",
            "AccountName=a;AccountKey=c2VjcmV0",
            "datasets",
            "list",
        ]);
        let shown = format!("{cli:?}");
        assert!(!shown.contains("c2VjcmV0"), "{shown}");
        assert_eq!(
            cli.storage.connection.unwrap().expose(),
            "AccountName=a;AccountKey=c2VjcmV0"
        );
    }
}
