//! Where training jobs run: one small trait, two backends (a local process; Azure
//! Machine Learning command jobs on a GPU cluster).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::dataset::DatasetName;
use crate::registry::JobRef;
use crate::training::TrainingConfig;

/// Everything a backend needs to run one training job.
#[derive(Clone, Debug)]
pub struct JobSpec {
    pub run_id: String,
    /// The backend's name for this attempt's job (the run id for a first attempt).
    pub job_name: String,
    /// Where the job's logs go, for backends that copy them.
    pub logs_key: crate::storage::ObjectKey,
    /// When the run was created: with the id, it tells a resubmission of this run from
    /// a leftover of an earlier run with the same id (a store that was wiped and rebuilt).
    pub run_created_at: chrono::DateTime<chrono::Utc>,
    /// The input: this dataset version's folder (`manifest.json`, `data.parquet`).
    pub dataset: DatasetName,
    pub dataset_version: u32,
    /// The effective config; its `command` (or the reference trainer) is what runs.
    pub config: TrainingConfig,
    /// Where in the store the job's output folder must end up.
    pub output_prefix: String,
    pub timeout: Duration,
    pub tags: BTreeMap<String, String>,
}

/// A job's state as Sluice sees it (each backend maps its own states onto these).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobStatus {
    Queued,
    Running,
    Succeeded,
    Failed(String),
    Canceled,
}

#[derive(Debug, thiserror::Error)]
pub enum ComputeError {
    #[error("job {0} is not known to this backend")]
    UnknownJob(String),
    #[error("the compute backend refused the job: {0}")]
    Rejected(String),
    /// Worth retrying later (throttling, 5xx, network); `retry_after` when the service
    /// said how long to wait.
    #[error("the compute backend is unavailable: {message}")]
    Unavailable {
        message: String,
        retry_after: Option<Duration>,
    },
    #[error("preparing the job failed: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
}

impl From<crate::dataset::fetch::FetchError> for ComputeError {
    fn from(e: crate::dataset::fetch::FetchError) -> Self {
        match e {
            crate::dataset::fetch::FetchError::Storage(e) => ComputeError::Storage(e),
            crate::dataset::fetch::FetchError::Io(e) => ComputeError::Io(e),
        }
    }
}

impl ComputeError {
    pub fn is_transient(&self) -> bool {
        match self {
            ComputeError::Unavailable { .. } | ComputeError::Io(_) => true,
            ComputeError::Storage(e) => e.is_transient(),
            ComputeError::UnknownJob(_) | ComputeError::Rejected(_) => false,
        }
    }
}

#[async_trait::async_trait]
pub trait Compute: Send + Sync {
    /// A short name for logs, run records and lineage (`local`, `azureml`).
    fn name(&self) -> &str;
    /// Starts the job; returns the backend's job id. Submitting the same run twice
    /// must not start a second job.
    async fn submit(&self, job: &JobSpec) -> Result<String, ComputeError>;
    async fn status(&self, job_id: &str) -> Result<JobStatus, ComputeError>;
    async fn cancel(&self, job_id: &str) -> Result<(), ComputeError>;
    /// Where a person finds the job (its page, the cluster it ran on), for lineage.
    /// Backends without a page of their own say nothing.
    async fn describe(&self, job_id: &str) -> Result<Option<JobRef>, ComputeError> {
        let _ = job_id;
        Ok(None)
    }
}
