//! Uploads larger than one function instance reads well are handed to a Spark engine
//! (the scan of `shared/spark/ingest.py`). The ingest claims the delegation create-only,
//! keyed by the upload (its key and ETag), so a redelivered event never starts a second
//! job; the timer that follows runs follows these jobs too, and finishes each upload as
//! a version or a quarantine through the same steps as an upload Sluice scanned itself
//! (see `Ingestor::follow_delegations`).

use std::fmt::Debug;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::contract::Contract;
use super::scan::ScanOutput;
use super::spark::{LocalSpark, SparkError, log_tail, read_result};
use super::{DatasetName, layout};
use crate::storage::ObjectKey;

/// Above this many bytes an upload is delegated, when an engine is set. Sluice's own
/// scan reads about 200 MB/s on two cores from local disk (docs/benchmarks.md); from Blob
/// Storage, reads of 60–100 MB/s are usual for one instance, so 16 GiB is about three to
/// five minutes of reading, within the Functions host's 10-minute limit with room left.
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

/// Where a delegation is recorded.
pub fn delegation_key(dataset: &DatasetName, id: &str) -> ObjectKey {
    ObjectKey::parse(format!("{}{dataset}/{id}.json", layout::DELEGATIONS))
        .expect("dataset names and hex ids are valid key segments")
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

/// Where a delegated scan's job stands.
#[derive(Debug)]
pub enum JobState {
    Running,
    /// Done: its result, and the snapshot it wrote (a file or a folder of parts, on
    /// local disk) when the upload passed.
    Succeeded {
        scan: ScanOutput,
        snapshot: PathBuf,
    },
    Failed(String),
}

/// A Spark engine that runs the scan job (one job per delegation id).
#[async_trait::async_trait]
pub trait ScanEngine: Send + Sync + Debug {
    /// Its name, recorded with each delegation.
    fn name(&self) -> &'static str;
    /// Starts the job for delegation `id` on `input` (a URI the engine reads), or finds
    /// the one already started for it; returns the job's name.
    async fn submit(
        &self,
        id: &str,
        input: &str,
        contract: &Contract,
    ) -> Result<String, EngineError>;
    async fn poll(&self, job: &str) -> Result<JobState, EngineError>;
}

/// Local Spark as an engine: `spark-submit` in the background, one folder per job under
/// `work` (its log, exit code, result and snapshot), so a job outlives a restart of the
/// process that started it and is found again by its id.
#[derive(Debug)]
pub struct LocalSparkEngine {
    pub spark: LocalSpark,
    pub work: PathBuf,
}

impl LocalSparkEngine {
    fn dir(&self, job: &str) -> PathBuf {
        self.work.join(job)
    }
}

#[async_trait::async_trait]
impl ScanEngine for LocalSparkEngine {
    fn name(&self) -> &'static str {
        "local-spark"
    }

    async fn submit(
        &self,
        id: &str,
        input: &str,
        contract: &Contract,
    ) -> Result<String, EngineError> {
        let dir = self.dir(id);
        if dir.join("started").exists() {
            return Ok(id.to_owned());
        }
        std::fs::create_dir_all(&dir).map_err(|e| EngineError::Unavailable(e.to_string()))?;
        let spark = self
            .spark
            .command(&dir, input, contract, &dir.join("out"))?;
        // The shell records the exit code beside the log, so the outcome is known
        // whoever asks, whenever.
        let mut command = tokio::process::Command::new("sh");
        command
            .arg("-c")
            .arg(r#"dir="$1"; shift; "$@" > "$dir/log.txt" 2>&1; echo $? > "$dir/exit""#)
            .arg("sh")
            .arg(&dir)
            .arg(spark.get_program())
            .args(spark.get_args())
            .kill_on_drop(false);
        for (key, value) in spark.get_envs() {
            match value {
                Some(value) => command.env(key, value),
                None => command.env_remove(key),
            };
        }
        command
            .spawn()
            .map_err(|e| EngineError::Unavailable(format!("starting spark-submit: {e}")))?;
        std::fs::write(dir.join("started"), Utc::now().to_rfc3339())
            .map_err(|e| EngineError::Unavailable(e.to_string()))?;
        Ok(id.to_owned())
    }

    async fn poll(&self, job: &str) -> Result<JobState, EngineError> {
        let dir = self.dir(job);
        let Ok(code) = std::fs::read_to_string(dir.join("exit")) else {
            return Ok(JobState::Running);
        };
        let log = std::fs::read_to_string(dir.join("log.txt")).unwrap_or_default();
        if code.trim() != "0" {
            return Ok(JobState::Failed(format!(
                "spark-submit exited with {}: {}",
                code.trim(),
                log_tail(&log)
            )));
        }
        let out = dir.join("out");
        match read_result(&out) {
            Ok(scan) => Ok(JobState::Succeeded {
                scan,
                snapshot: out.join("data.parquet"),
            }),
            Err(e) => Ok(JobState::Failed(e.to_string())),
        }
    }
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
        let d = DatasetName::parse("big").unwrap();
        assert_eq!(
            delegation_key(&d, &id).as_str(),
            format!("delegations/big/{id}.json")
        );
    }
}
