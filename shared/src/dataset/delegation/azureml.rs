//! Azure ML serverless Spark as a scan engine: a `Spark` job (REST `2025-12-01`) whose
//! entry is the scan's script, registered once per content as a code version.
//!
//! The job is named after the delegation (`scan-<id>`), so a second submission finds
//! the first; it reads the upload and the contract and writes its result through the
//! datastore registered for Sluice's container, as the workspace's managed identity
//! (`identity: Managed`), so no key travels with the job. Its tags name the delegation,
//! so its `RunCompleted` event can finish the upload at once instead of at the next tick.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};

use super::{Delegation, EngineError, JobState, ScanEngine, StagedScan, stage, stored_result};
use crate::cloud::azureml::AzureMl;
use crate::storage::ObjectStore;

/// The code asset the scan's script is registered as.
pub const CODE_NAME: &str = "sluice-spark-scan";
/// The tag that names a job's delegation.
pub const DELEGATION_TAG: &str = "sluice.delegation";

/// How big the serverless Spark pool is.
#[derive(Clone, Debug)]
pub struct SparkPool {
    /// A memory-optimized VM size serverless Spark offers (`standard_e4s_v3` …).
    pub instance_type: String,
    /// The Azure Synapse Spark runtime (`3.4` runs the script's Python 3.10+).
    pub runtime_version: String,
    /// Executors scale between one and this many, with the job's load.
    pub max_executors: u32,
}

impl Default for SparkPool {
    fn default() -> Self {
        Self {
            instance_type: "standard_e4s_v3".into(),
            runtime_version: "3.4".into(),
            max_executors: 4,
        }
    }
}

pub struct AzureMlSparkEngine {
    pub azureml: AzureMl,
    pub store: Arc<dyn ObjectStore>,
    pub pool: SparkPool,
}

impl std::fmt::Debug for AzureMlSparkEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureMlSparkEngine")
            .field("workspace", &self.azureml.workspace.workspace)
            .field("pool", &self.pool)
            .finish()
    }
}

/// The job's name for a delegation.
pub fn job_name(delegation: &Delegation) -> String {
    format!("scan-{}", delegation.id)
}

/// The Spark job for a delegation: what `PUT …/jobs/<job name>` sends. `code_id` is the
/// code version holding the staged script.
pub fn job_body(
    engine: &AzureMlSparkEngine,
    delegation: &Delegation,
    staged: &StagedScan,
    code_id: &str,
) -> Value {
    let workspace = &engine.azureml.workspace;
    let pool = &engine.pool;
    // A serverless pool's driver and executors are the instance type's size; these
    // are the settings Azure ML requires for it (e4s_v3: 4 cores, 32 GiB).
    let conf: BTreeMap<&str, String> = [
        ("spark.driver.cores", "4".to_owned()),
        ("spark.driver.memory", "28g".to_owned()),
        ("spark.executor.cores", "4".to_owned()),
        ("spark.executor.memory", "28g".to_owned()),
        ("spark.executor.instances", "1".to_owned()),
        ("spark.dynamicAllocation.enabled", "true".to_owned()),
        ("spark.dynamicAllocation.minExecutors", "1".to_owned()),
        (
            "spark.dynamicAllocation.maxExecutors",
            pool.max_executors.max(1).to_string(),
        ),
    ]
    .into();
    json!({
        "properties": {
            "jobType": "Spark",
            "displayName": format!("scan {} ({})", delegation.upload, delegation.dataset),
            "experimentName": workspace.experiment,
            "description": format!("Sluice delegation {}", delegation.id),
            "codeId": code_id,
            "entry": {
                "sparkJobEntryType": "SparkJobPythonEntry",
                "file": staged.script.key.file_name(),
            },
            "args": "--input ${{inputs.upload}} --contract ${{inputs.contract}} --output ${{outputs.result}}",
            "conf": conf,
            "identity": {"identityType": "Managed"},
            "inputs": {
                "upload": {"jobInputType": "uri_file", "uri": workspace.datastore_uri(delegation.upload.as_str()), "mode": "Direct"},
                "contract": {"jobInputType": "uri_file", "uri": workspace.datastore_uri(staged.contract.as_str()), "mode": "Direct"},
            },
            "outputs": {
                "result": {"jobOutputType": "uri_folder", "uri": workspace.datastore_uri(&staged.output), "mode": "Direct"},
            },
            "resources": {
                "instanceType": pool.instance_type,
                "runtimeVersion": pool.runtime_version,
            },
            "tags": {DELEGATION_TAG: delegation.id, "sluice.dataset": delegation.dataset.as_str()},
        }
    })
}

/// Every value of the service's JobStatus enum, as a scan's state; `None` when the job
/// ended well and its result is to be read.
pub fn map_status(status: &str) -> Option<JobState> {
    match status {
        "Completed" => None,
        "Failed" => Some(JobState::Failed(
            "Azure ML reports the Spark job Failed".into(),
        )),
        "Canceled" => Some(JobState::Failed("the Spark job was canceled".into())),
        "NotStarted" | "Starting" | "Provisioning" | "Preparing" | "Queued" | "Running"
        | "Finalizing" | "CancelRequested" | "NotResponding" | "Paused" | "Unknown" => {
            Some(JobState::Running)
        }
        other => Some(JobState::Failed(format!(
            "Azure ML reports an unknown job status {other:?}"
        ))),
    }
}

#[async_trait::async_trait]
impl ScanEngine for AzureMlSparkEngine {
    fn name(&self) -> &'static str {
        "azureml-spark"
    }

    async fn submit(&self, delegation: &Delegation) -> Result<String, EngineError> {
        let staged = stage(self.store.as_ref(), delegation).await?;
        let code_uri = self.store.uri(&staged.script.folder());
        let code_id = self
            .azureml
            .put_code(CODE_NAME, &staged.script.hash, &code_uri)
            .await?;
        let name = job_name(delegation);
        let body = job_body(self, delegation, &staged, &code_id);
        self.azureml.put_job(&name, &body).await?;
        Ok(name)
    }

    async fn poll(&self, delegation: &Delegation, job: &str) -> Result<JobState, EngineError> {
        let view = self.azureml.job(job).await?;
        match map_status(&view.status) {
            Some(JobState::Failed(why)) => {
                Ok(JobState::Failed(format!("{why}; {}", view.logs_hint())))
            }
            Some(state) => Ok(state),
            None => stored_result(self.store.as_ref(), delegation).await,
        }
    }

    async fn cancel(&self, job: &str) -> Result<(), EngineError> {
        Ok(self.azureml.cancel_job(job).await?)
    }
}
