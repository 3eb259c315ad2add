//! Azure Databricks as a scan engine: a one-time run (Jobs API 2.2 `runs/submit`) of
//! the scan's script as a `spark_python_task`, on a new autoscaling job cluster or an
//! existing cluster.
//!
//! The delegation's id is the run's `idempotency_token`, so a redelivered upload event,
//! or a submission whose answer was lost, never starts a second run. The cluster reads
//! the upload and writes the result through `abfss://` paths of Sluice's container,
//! which the workspace must be allowed to reach (a Unity Catalog external location, or
//! the cluster's managed identity); Sluice itself authenticates with Entra ID tokens.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::azureml::DELEGATION_TAG;
use super::{Delegation, EngineError, JobState, ScanEngine, StagedScan, stage, stored_result};
use crate::cloud::databricks::{Cluster, Databricks, RunPhase, run_phase};
use crate::storage::ObjectStore;

pub struct DatabricksEngine {
    pub databricks: Databricks,
    pub store: Arc<dyn ObjectStore>,
    /// How the cluster names the root of Sluice's container
    /// (`abfss://<container>@<account>.dfs.core.windows.net/`).
    pub storage_root: String,
    pub cluster: Cluster,
    /// The run is stopped after this long.
    pub timeout: Duration,
}

impl std::fmt::Debug for DatabricksEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabricksEngine")
            .field("host", &self.databricks.host)
            .field("cluster", &self.cluster)
            .finish()
    }
}

impl DatabricksEngine {
    /// The cluster's URI for a key or folder of Sluice's container.
    fn path(&self, key: &str) -> String {
        format!("{}/{key}", self.storage_root.trim_end_matches('/'))
    }
}

/// The `runs/submit` body for a delegation.
pub fn submit_body(
    engine: &DatabricksEngine,
    delegation: &Delegation,
    staged: &StagedScan,
) -> Value {
    let mut task = json!({
        "task_key": "scan",
        "description": format!("Sluice's scan of {}", delegation.upload),
        "spark_python_task": {
            "python_file": engine.path(staged.script.key.as_str()),
            "parameters": [
                "--input", engine.path(delegation.upload.as_str()),
                "--contract", engine.path(staged.contract.as_str()),
                "--output", engine.path(&staged.output),
            ],
        },
    });
    engine.cluster.place(&mut task, "scan");
    json!({
        "run_name": format!("sluice scan {}", delegation.upload),
        "idempotency_token": delegation.id,
        "timeout_seconds": engine.timeout.as_secs(),
        "tags": {DELEGATION_TAG: delegation.id, "sluice.dataset": delegation.dataset.as_str()},
        "tasks": [task],
    })
}

fn run_id(job: &str) -> Result<i64, EngineError> {
    job.parse()
        .map_err(|_| EngineError::Refused(format!("{job:?} is not a Databricks run id")))
}

#[async_trait::async_trait]
impl ScanEngine for DatabricksEngine {
    fn name(&self) -> &'static str {
        "databricks"
    }

    async fn submit(&self, delegation: &Delegation) -> Result<String, EngineError> {
        let staged = stage(self.store.as_ref(), delegation).await?;
        let body = submit_body(self, delegation, &staged);
        Ok(self.databricks.submit_run(&body).await?.to_string())
    }

    async fn poll(&self, delegation: &Delegation, job: &str) -> Result<JobState, EngineError> {
        let run = self.databricks.get_run(run_id(job)?).await?;
        match run_phase(&run) {
            RunPhase::Waiting | RunPhase::Running => Ok(JobState::Running),
            RunPhase::Failed(why) => {
                let page = run["run_page_url"].as_str().unwrap_or("no run page");
                Ok(JobState::Failed(format!(
                    "the Databricks run failed: {why} ({page})"
                )))
            }
            RunPhase::Succeeded => stored_result(self.store.as_ref(), delegation).await,
        }
    }

    async fn cancel(&self, job: &str) -> Result<(), EngineError> {
        Ok(self.databricks.cancel_run(run_id(job)?).await?)
    }
}
