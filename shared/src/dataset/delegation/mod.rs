//! Uploads larger than one function instance reads well are handed to a Spark engine
//! (the scan of `shared/spark/ingest.py`). The ingest claims the delegation create-only,
//! keyed by the upload (its key and ETag), so a redelivered event never starts a second
//! job; the timer that follows runs follows these jobs too (and, for Azure ML, the job's
//! `RunCompleted` event), and finishes each upload as a version or a quarantine through
//! the same steps as an upload Sluice scanned itself (see `Ingestor::follow_delegations`).
//!
//! Three engines run the same job: local Spark ([`local`], for `sluice dev` and one
//! machine), Azure ML serverless Spark ([`azureml`]) and Azure Databricks
//! ([`databricks`]). The remote two read the upload where it is and write their result
//! into Sluice's container (`scans/<dataset>/<id>/`), from where the version's parts are
//! copied into the version's own folder, so a version's layout does not depend on the
//! engine that scanned it.

pub mod azureml;
pub mod databricks;
pub mod local;

pub use local::LocalSparkEngine;

use std::fmt::Debug;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::contract::Contract;
use super::scan::ScanOutput;
use super::spark::{INGEST_JOB, SCAN_RESULT, SparkError};
use super::{DatasetName, layout};
use crate::cloud::{CloudError, StagedCode, stage_code};
use crate::storage::{ObjectKey, ObjectStore, PutMode, StorageError, get_json, put_json};

/// Above this many bytes an upload is delegated, when an engine is set. Measured
/// (docs/benchmarks.md, the ingest benchmark): Sluice's own scan reads 194–200 MB/s on
/// two cores from local disk with a peak of about 225 MiB whatever the file's size, so
/// memory never decides; time does. From Blob Storage one instance reads perhaps
/// 60–100 MB/s, so 16 GiB is three to five minutes, inside the host's 10-minute
/// `functionTimeout` with room for a slow read. Below that, delegating only costs: the
/// Spark job on the same two cores took 570 s for 1 GiB (its rule checks run in Python
/// to match Sluice's byte for byte), and a cluster takes minutes to start.
pub const DEFAULT_THRESHOLD: u64 = 16 << 30;

/// One delegated upload, as stored (`delegations/<dataset>/<id>.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Delegation {
    /// Derived from the upload's key and ETag: the same upload, the same id.
    pub id: String,
    pub dataset: DatasetName,
    pub upload: ObjectKey,
    pub etag: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uploader: Option<String>,
    /// The contract the job checks against (stored once the file passed, if inferred).
    pub contract: Contract,
    pub contract_inferred: bool,
    pub bytes: u64,
    pub engine: String,
    /// The engine's job, once submitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    pub state: DelegationState,
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    /// Someone asked to stop the scan (absent in delegations written before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canceled: Option<Cancellation>,
}

/// Who stopped a delegated scan, and why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cancellation {
    pub by: String,
    pub reason: String,
    pub at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum DelegationState {
    /// Claimed; the job is being submitted.
    Claimed,
    Submitted,
    /// The upload became a version or a quarantine.
    Versioned {
        version: u32,
    },
    Quarantined {
        report_key: ObjectKey,
    },
    /// The job failed; the upload stays in landing/, untouched.
    Failed {
        reason: String,
    },
}

impl Cancellation {
    /// The reason a cancelled delegation ends with.
    pub fn describe(&self) -> String {
        format!("canceled by {}: {}", self.by, self.reason)
    }
}

impl DelegationState {
    pub fn is_final(&self) -> bool {
        !matches!(self, DelegationState::Claimed | DelegationState::Submitted)
    }
}

/// The delegation id of an upload: its key and ETag, hashed (a Databricks
/// `idempotency_token` and a job name both accept it).
pub fn delegation_id(upload: &ObjectKey, etag: &str) -> String {
    let digest = Sha256::digest(format!("{upload}\n{etag}").as_bytes());
    hex::encode(&digest[..16])
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Worth trying again later (the engine is busy or unreachable).
    #[error("the scan engine is unavailable: {0}")]
    Unavailable(String),
    #[error("the scan engine refused the job: {0}")]
    Refused(String),
}

impl From<SparkError> for EngineError {
    fn from(e: SparkError) -> Self {
        match e {
            SparkError::Io(..) => EngineError::Unavailable(e.to_string()),
            _ => EngineError::Refused(e.to_string()),
        }
    }
}

impl From<CloudError> for EngineError {
    fn from(e: CloudError) -> Self {
        match e {
            CloudError::Unavailable { .. } => EngineError::Unavailable(e.to_string()),
            CloudError::NotFound(_) | CloudError::Rejected(_) => {
                EngineError::Refused(e.to_string())
            }
        }
    }
}

impl From<StorageError> for EngineError {
    fn from(e: StorageError) -> Self {
        if e.is_transient() {
            EngineError::Unavailable(e.to_string())
        } else {
            EngineError::Refused(e.to_string())
        }
    }
}

/// Where a delegated scan's job stands.
#[derive(Debug)]
pub enum JobState {
    Running,
    /// Done: its result, and the snapshot it wrote when the upload passed.
    Succeeded {
        scan: ScanOutput,
        snapshot: Snapshot,
    },
    Failed(String),
}

/// A snapshot another engine wrote.
#[derive(Clone, Debug, PartialEq)]
pub enum Snapshot {
    /// On this machine: one Parquet file or a folder of parts.
    Local(PathBuf),
    /// In Sluice's store: the parts, in order.
    Stored(Vec<ObjectKey>),
}

/// A Spark engine that runs the scan job (one job per delegation).
#[async_trait::async_trait]
pub trait ScanEngine: Send + Sync + Debug {
    /// Its name, recorded with each delegation.
    fn name(&self) -> &'static str;
    /// Starts the job for `delegation`, or finds the one already started for it (by its
    /// id); returns the engine's name for the job.
    async fn submit(&self, delegation: &Delegation) -> Result<String, EngineError>;
    async fn poll(&self, delegation: &Delegation, job: &str) -> Result<JobState, EngineError>;
    /// Asks the engine to stop the job; following it shows when it has.
    async fn cancel(&self, job: &str) -> Result<(), EngineError>;
}

/// The files a remote engine's job reads and writes in Sluice's store.
#[derive(Clone, Debug, PartialEq)]
pub struct StagedScan {
    /// The job's script, one copy per content.
    pub script: StagedCode,
    pub contract: ObjectKey,
    /// The folder the job writes `scan.json` and `data.parquet/` into.
    pub output: String,
}

/// Stages the job's script and writes the delegation's contract where a remote engine's
/// job reads them.
pub async fn stage(
    store: &dyn ObjectStore,
    delegation: &Delegation,
) -> Result<StagedScan, EngineError> {
    let script = stage_code(store, "ingest.py", INGEST_JOB.as_bytes()).await?;
    let contract = layout::scan_contract(&delegation.dataset, &delegation.id);
    put_json(store, &contract, &delegation.contract, PutMode::Overwrite).await?;
    Ok(StagedScan {
        script,
        contract,
        output: layout::scan_output(&delegation.dataset, &delegation.id),
    })
}

/// The result a remote engine's job wrote into the store: its scan and the snapshot's
/// parts. A job that ended well but left no readable result failed.
pub async fn stored_result(
    store: &dyn ObjectStore,
    delegation: &Delegation,
) -> Result<JobState, EngineError> {
    let output = layout::scan_output(&delegation.dataset, &delegation.id);
    let result = ObjectKey::parse(format!("{output}{SCAN_RESULT}"))?;
    let scan: ScanOutput = match get_json(store, &result).await {
        Ok((scan, _)) => scan,
        Err(StorageError::NotFound { .. }) => {
            return Ok(JobState::Failed(format!(
                "the job ended without writing {result}"
            )));
        }
        Err(e) if e.is_transient() => return Err(e.into()),
        Err(e) => return Ok(JobState::Failed(e.to_string())),
    };
    let parts = store
        .list(&format!("{output}data.parquet/"))
        .await?
        .into_iter()
        .map(|meta| meta.key)
        .filter(|key| super::is_snapshot_part(key.file_name()))
        .collect();
    Ok(JobState::Succeeded {
        scan,
        snapshot: Snapshot::Stored(parts),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_upload_is_the_same_delegation() {
        let key = ObjectKey::parse("landing/big/part.csv").unwrap();
        let id = delegation_id(&key, "\"0x1\"");
        assert_eq!(id, delegation_id(&key, "\"0x1\""));
        assert_ne!(
            id,
            delegation_id(&key, "\"0x2\""),
            "a new upload is a new one"
        );
        assert_eq!(id.len(), 32);
    }
}
