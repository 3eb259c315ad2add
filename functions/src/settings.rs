//! Settings: command-line flags, each backed by an app setting (environment variable),
//! so the same names work in `local.settings.json`, Azure app settings and a shell.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, ValueEnum};
use sluice_shared::registry::ModelName;
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

/// Where training jobs run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ComputeKind {
    /// A child process on this machine (the embedded default).
    Local,
    /// Azure Machine Learning command jobs on a GPU cluster.
    Azureml,
    /// Azure Databricks one-time runs (`SLUICE_DATABRICKS__*`).
    Databricks,
}

#[derive(Clone, Debug, Args)]
pub struct ComputeSettings {
    #[arg(
        long = "compute",
        env = "SLUICE_COMPUTE",
        value_enum,
        default_value = "local",
        global = true
    )]
    pub backend: ComputeKind,
    #[arg(
        long = "azureml-subscription-id",
        env = "SLUICE_AZUREML__SUBSCRIPTION_ID",
        global = true
    )]
    pub subscription_id: Option<String>,
    #[arg(
        long = "azureml-resource-group",
        env = "SLUICE_AZUREML__RESOURCE_GROUP",
        global = true
    )]
    pub resource_group: Option<String>,
    #[arg(
        long = "azureml-workspace",
        env = "SLUICE_AZUREML__WORKSPACE",
        global = true
    )]
    pub workspace: Option<String>,
    /// The Azure ML datastore registered for Sluice's container.
    #[arg(
        long = "azureml-datastore",
        env = "SLUICE_AZUREML__DATASTORE",
        default_value = "sluice",
        global = true
    )]
    pub datastore: String,
    /// The user-assigned managed identity's client id for Azure ML (else system-assigned).
    #[arg(
        long = "azureml-client-id",
        env = "SLUICE_AZUREML__CLIENT_ID",
        global = true
    )]
    pub azureml_client_id: Option<String>,
    #[arg(
        long = "azureml-endpoint",
        env = "SLUICE_AZUREML__ENDPOINT",
        default_value = "https://management.azure.com",
        global = true
    )]
    pub endpoint: String,
    #[command(flatten)]
    pub databricks: DatabricksSettings,
}

/// An Azure Databricks workspace, for training (`SLUICE_COMPUTE=databricks`) and for
/// scanning large uploads (`SLUICE_DELEGATE=databricks`).
#[derive(Clone, Debug, Args)]
pub struct DatabricksSettings {
    /// The Databricks workspace URL (`https://adb-….azuredatabricks.net`).
    #[arg(
        id = "databricks-host",
        long = "databricks-host",
        env = "SLUICE_DATABRICKS__HOST",
        global = true
    )]
    pub host: Option<String>,
    /// How Databricks clusters name Sluice's container
    /// (`abfss://<container>@<account>.dfs.core.windows.net/`).
    #[arg(
        id = "databricks-storage-root",
        long = "databricks-storage-root",
        env = "SLUICE_DATABRICKS__STORAGE_ROOT",
        global = true
    )]
    pub storage_root: Option<String>,
    /// Run on this existing cluster instead of a new job cluster.
    #[arg(
        id = "databricks-cluster-id",
        long = "databricks-cluster-id",
        env = "SLUICE_DATABRICKS__CLUSTER_ID",
        global = true
    )]
    pub cluster_id: Option<String>,
    /// A new job cluster's Databricks Runtime.
    #[arg(
        id = "databricks-spark-version",
        long = "databricks-spark-version",
        env = "SLUICE_DATABRICKS__SPARK_VERSION",
        default_value = "16.4.x-scala2.12",
        global = true
    )]
    pub spark_version: String,
    /// A new job cluster's VM size.
    #[arg(
        id = "databricks-node-type",
        long = "databricks-node-type",
        env = "SLUICE_DATABRICKS__NODE_TYPE",
        default_value = "Standard_D4ds_v5",
        global = true
    )]
    pub node_type: String,
    /// The user-assigned managed identity's client id for Databricks (else
    /// system-assigned).
    #[arg(
        id = "databricks-client-id",
        long = "databricks-client-id",
        env = "SLUICE_DATABRICKS__CLIENT_ID",
        global = true
    )]
    pub client_id: Option<String>,
}

impl DatabricksSettings {
    /// The workspace's Jobs API client; `needed_by` names the setting that asked.
    fn client(
        &self,
        needed_by: &str,
    ) -> anyhow::Result<sluice_shared::cloud::databricks::Databricks> {
        use sluice_shared::cloud::{DATABRICKS_SCOPE, ManagedIdentityTokens};
        let host = self
            .host
            .clone()
            .ok_or_else(|| anyhow::anyhow!("{needed_by} needs SLUICE_DATABRICKS__HOST"))?;
        let tokens = ManagedIdentityTokens::new(self.client_id.clone(), DATABRICKS_SCOPE)?;
        Ok(sluice_shared::cloud::databricks::Databricks::new(
            host,
            Arc::new(tokens),
        ))
    }

    fn storage_root(&self, needed_by: &str) -> anyhow::Result<String> {
        self.storage_root
            .clone()
            .ok_or_else(|| anyhow::anyhow!("{needed_by} needs SLUICE_DATABRICKS__STORAGE_ROOT"))
    }

    /// The configured existing cluster, else `new`.
    fn cluster(
        &self,
        new: sluice_shared::cloud::databricks::Cluster,
    ) -> sluice_shared::cloud::databricks::Cluster {
        match &self.cluster_id {
            Some(id) => sluice_shared::cloud::databricks::Cluster::Existing(id.clone()),
            None => new,
        }
    }
}

impl ComputeSettings {
    /// The Azure ML workspace's REST client; `needed_by` names the setting that asked.
    fn azureml(&self, needed_by: &str) -> anyhow::Result<sluice_shared::cloud::azureml::AzureMl> {
        use sluice_shared::cloud::azureml::{AzureMl, Workspace};
        use sluice_shared::cloud::{ARM_SCOPE, ManagedIdentityTokens};
        let need = |v: &Option<String>, name: &str| {
            v.clone()
                .ok_or_else(|| anyhow::anyhow!("{needed_by} needs {name}"))
        };
        let workspace = Workspace {
            endpoint: self.endpoint.clone(),
            subscription_id: need(&self.subscription_id, "SLUICE_AZUREML__SUBSCRIPTION_ID")?,
            resource_group: need(&self.resource_group, "SLUICE_AZUREML__RESOURCE_GROUP")?,
            workspace: need(&self.workspace, "SLUICE_AZUREML__WORKSPACE")?,
            datastore: self.datastore.clone(),
            experiment: "sluice".into(),
        };
        let tokens = ManagedIdentityTokens::new(self.azureml_client_id.clone(), ARM_SCOPE)?;
        Ok(AzureMl::new(workspace, Arc::new(tokens)))
    }

    /// The configured backend; `None` means the local default.
    pub fn build(
        &self,
        store: Arc<dyn ObjectStore>,
    ) -> anyhow::Result<Option<Arc<dyn sluice_shared::runs::Compute>>> {
        use sluice_shared::cloud::databricks::Cluster;
        use sluice_shared::runs::azureml::AzureMlCompute;
        use sluice_shared::runs::databricks::DatabricksCompute;
        match self.backend {
            ComputeKind::Local => Ok(None),
            ComputeKind::Azureml => {
                let azureml = self.azureml("SLUICE_COMPUTE=azureml")?;
                Ok(Some(Arc::new(AzureMlCompute::new(store, azureml))))
            }
            ComputeKind::Databricks => {
                let needed_by = "SLUICE_COMPUTE=databricks";
                let databricks = &self.databricks;
                // A trainer runs on the driver: a new cluster for it needs no workers.
                let cluster = databricks.cluster(Cluster::SingleNode {
                    spark_version: databricks.spark_version.clone(),
                    node_type_id: databricks.node_type.clone(),
                });
                Ok(Some(Arc::new(DatabricksCompute {
                    databricks: databricks.client(needed_by)?,
                    store,
                    storage_root: databricks.storage_root(needed_by)?,
                    cluster,
                    // The reference trainer is this program.
                    trainer: std::env::current_exe()?,
                })))
            }
        }
    }
}

/// Where uploads too large to read in the function are scanned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DelegateKind {
    /// Every upload is scanned here.
    Off,
    /// Local Spark (`spark-submit --master local[*]`), for `sluice dev` and one machine.
    LocalSpark,
    /// Azure ML serverless Spark, in the workspace `SLUICE_AZUREML__*` names.
    AzuremlSpark,
    /// Azure Databricks (`SLUICE_DATABRICKS__*`).
    Databricks,
}

#[derive(Args, Clone, Debug)]
pub struct DelegationSettings {
    #[arg(
        long = "delegate",
        env = "SLUICE_DELEGATE",
        value_enum,
        default_value = "off",
        global = true
    )]
    pub engine: DelegateKind,
    /// Uploads larger than this many bytes are delegated (default 16 GiB: what one
    /// instance reads from Blob Storage in well under the 10-minute limit).
    #[arg(
        long = "delegate-above",
        env = "SLUICE_DELEGATE_ABOVE_BYTES",
        default_value_t = sluice_shared::dataset::delegation::DEFAULT_THRESHOLD,
        global = true
    )]
    pub threshold: u64,
    /// Local Spark's `spark-submit` (from `pip install pyspark`).
    #[arg(
        long = "spark-submit",
        env = "SLUICE_SPARK_SUBMIT",
        default_value = "spark-submit",
        global = true
    )]
    pub spark_submit: PathBuf,
    /// Serverless Spark's VM size (Azure ML).
    #[arg(
        long = "azureml-spark-instance-type",
        env = "SLUICE_AZUREML_SPARK__INSTANCE_TYPE",
        default_value = "standard_e4s_v3",
        global = true
    )]
    pub azureml_spark_instance_type: String,
    /// Serverless Spark's runtime version (Azure ML).
    #[arg(
        long = "azureml-spark-runtime",
        env = "SLUICE_AZUREML_SPARK__RUNTIME_VERSION",
        default_value = "3.4",
        global = true
    )]
    pub azureml_spark_runtime: String,
    /// The most executors a scan scales to (Azure ML serverless Spark; Databricks workers).
    #[arg(
        long = "spark-max-executors",
        env = "SLUICE_SPARK_MAX_EXECUTORS",
        default_value_t = 8,
        global = true
    )]
    pub max_executors: u32,
}

impl DelegationSettings {
    /// The threshold and engine, when delegation is on; local jobs keep their folders
    /// under `scratch`, Azure ML's workspace comes from the compute settings.
    pub fn build(
        &self,
        store: Arc<dyn ObjectStore>,
        scratch: &std::path::Path,
        compute: &ComputeSettings,
    ) -> anyhow::Result<Option<(u64, Arc<dyn sluice_shared::dataset::delegation::ScanEngine>)>>
    {
        use sluice_shared::cloud::databricks::Cluster;
        use sluice_shared::dataset::delegation::azureml::{AzureMlSparkEngine, SparkPool};
        use sluice_shared::dataset::delegation::databricks::DatabricksEngine;
        use sluice_shared::dataset::delegation::{LocalSparkEngine, ScanEngine};
        use sluice_shared::dataset::spark::LocalSpark;
        let engine: Arc<dyn ScanEngine> = match self.engine {
            DelegateKind::Off => return Ok(None),
            DelegateKind::LocalSpark => Arc::new(LocalSparkEngine {
                spark: LocalSpark {
                    spark_submit: self.spark_submit.clone(),
                    threads: 0,
                    conf: Vec::new(),
                },
                work: scratch.join("sluice-spark"),
                store,
            }),
            DelegateKind::AzuremlSpark => Arc::new(AzureMlSparkEngine {
                azureml: compute.azureml("SLUICE_DELEGATE=azureml-spark")?,
                store,
                pool: SparkPool {
                    instance_type: self.azureml_spark_instance_type.clone(),
                    runtime_version: self.azureml_spark_runtime.clone(),
                    max_executors: self.max_executors,
                },
            }),
            DelegateKind::Databricks => {
                let databricks = &compute.databricks;
                let needed_by = "SLUICE_DELEGATE=databricks";
                let cluster = databricks.cluster(Cluster::New {
                    spark_version: databricks.spark_version.clone(),
                    node_type_id: databricks.node_type.clone(),
                    min_workers: 1,
                    max_workers: self.max_executors,
                });
                Arc::new(DatabricksEngine {
                    databricks: databricks.client(needed_by)?,
                    store,
                    storage_root: databricks.storage_root(needed_by)?,
                    cluster,
                    timeout: std::time::Duration::from_secs(4 * 3600),
                })
            }
        };
        Ok(Some((self.threshold, engine)))
    }
}

/// The webhooks the app settings register: `SLUICE_WEBHOOK__<NAME>__URL` and
/// `__SECRET` (a Key Vault reference in Azure), optionally `__MODELS` (comma-separated
/// model names: only their events) and `__EVENTS` (comma-separated types, or prefixes
/// ending in `.`). Settings rather than an API, so a secret never reaches the store.
pub fn webhooks() -> anyhow::Result<Vec<sluice_shared::notify::Webhook>> {
    webhooks_in(std::env::vars())
}

fn webhooks_in(
    vars: impl IntoIterator<Item = (String, String)>,
) -> anyhow::Result<Vec<sluice_shared::notify::Webhook>> {
    use sluice_shared::notify::webhook::Secret;
    let mut found: std::collections::BTreeMap<String, std::collections::HashMap<String, String>> =
        Default::default();
    for (name, value) in vars {
        let Some(rest) = name.strip_prefix("SLUICE_WEBHOOK__") else {
            continue;
        };
        let Some((hook, field)) = rest.split_once("__") else {
            anyhow::bail!("{name}: expected SLUICE_WEBHOOK__<NAME>__<URL|SECRET|MODELS|EVENTS>");
        };
        found
            .entry(hook.to_ascii_lowercase().replace('_', "-"))
            .or_default()
            .insert(field.to_ascii_uppercase(), value);
    }
    let list = |v: Option<&String>| -> Vec<String> {
        v.map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
    };
    let mut hooks = Vec::new();
    for (name, fields) in found {
        let setting = |field: &str| {
            format!(
                "SLUICE_WEBHOOK__{}__{field}",
                name.to_ascii_uppercase().replace('-', "_")
            )
        };
        if let Some(unknown) = fields
            .keys()
            .find(|k| !["URL", "SECRET", "MODELS", "EVENTS"].contains(&k.as_str()))
        {
            anyhow::bail!("{}: unknown webhook setting", setting(unknown));
        }
        let url = fields
            .get("URL")
            .ok_or_else(|| anyhow::anyhow!("{} is missing", setting("URL")))?;
        let secret = fields
            .get("SECRET")
            .ok_or_else(|| anyhow::anyhow!("{} is missing", setting("SECRET")))?;
        let models = list(fields.get("MODELS"))
            .into_iter()
            .map(|m| {
                ModelName::parse(&m).map_err(|e| anyhow::anyhow!("{}: {e}", setting("MODELS")))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        hooks.push(sluice_shared::notify::Webhook::new(
            &name,
            url,
            Secret::new(secret.clone()),
            models,
            list(fields.get("EVENTS")),
        )?);
    }
    Ok(hooks)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    #[test]
    fn webhooks_come_from_their_settings() {
        let vars = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let hooks = super::webhooks_in(vars(&[
            (
                "SLUICE_WEBHOOK__OPS_TEAM__URL",
                "https://ops.example.com/sluice",
            ),
            (
                "SLUICE_WEBHOOK__OPS_TEAM__SECRET",
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            ),
            ("SLUICE_WEBHOOK__OPS_TEAM__MODELS", "adult-income, iris"),
            ("SLUICE_WEBHOOK__OPS_TEAM__EVENTS", "model.,run.failed"),
            ("SLUICE_STORAGE__KIND", "local"),
        ]))
        .unwrap();
        assert_eq!(hooks.len(), 1);
        assert_eq!(hooks[0].name, "ops-team");
        assert_eq!(hooks[0].models.len(), 2);
        assert_eq!(hooks[0].events, ["model.", "run.failed"]);
        let missing = super::webhooks_in(vars(&[("SLUICE_WEBHOOK__OPS__URL", "https://x.io")]));
        assert!(
            missing
                .unwrap_err()
                .to_string()
                .contains("SLUICE_WEBHOOK__OPS__SECRET is missing")
        );
        let plain = super::webhooks_in(vars(&[
            ("SLUICE_WEBHOOK__OPS__URL", "http://example.com/x"),
            ("SLUICE_WEBHOOK__OPS__SECRET", "a-secret-of-some-length"),
        ]));
        assert!(plain.unwrap_err().to_string().contains("use https"));
    }

    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        crate::cli::Cli::command().debug_assert();
    }

    #[test]
    fn the_connection_string_never_reaches_debug_output() {
        // Azurite's published development key: the only key a repository may hold.
        let key = sluice_shared::storage::azure::AZURITE_KEY;
        let connection = format!("AccountName=a;AccountKey={key}");
        let cli = crate::cli::Cli::parse_from([
            "sluice",
            "--connection",
            &connection,
            "datasets",
            "list",
        ]);
        let shown = format!("{cli:?}");
        assert!(!shown.contains(key), "{shown}");
        assert_eq!(cli.storage.connection.unwrap().expose(), connection);
    }
}
