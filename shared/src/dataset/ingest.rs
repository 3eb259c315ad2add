//! The `DatasetIngest` use case: landing upload → version or quarantine, idempotently.
//!
//! Identity is (SHA-256 of the raw bytes, contract version). The steps are ordered so
//! that a crash or a redelivery at any point converges on the same result:
//! 1. scan (hash, validate, profile, write the Parquet snapshot to scratch disk);
//! 2. if the identity is already indexed, answer with the existing version;
//! 3. claim the next version number with a create-only `claim.json` (a claim holding
//!    the same identity is resumed, not skipped, so retries leave no gaps);
//! 4. write `data.parquet`, then `manifest.json` (the commit point), create-only;
//! 5. write the index entry.
//!
//! Quarantine is claimed through its own index first, then the copy and report are
//! written; nothing in `landing/` is ever modified or deleted.

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use tracing::{Instrument, info, instrument, warn};

use super::DatasetName;
use super::contract::{self, ColumnType, Contract, ContractStoreError, Contracts};
use super::delegation::{
    Cancellation, Delegation, DelegationState, EngineError, JobState, ScanEngine, Snapshot,
    delegation_id,
};
use super::layout;
use super::profile::ColumnProfile;
use super::scan::{self, ScanError, ScanOutput, SourceFormat};
use super::validation::ValidationResult;
use crate::storage::{
    ObjectKey, ObjectStore, Payload, PutMode, StorageError, create_or_keep, create_or_read,
    get_json, put_json,
};

/// An upload to ingest, as the trigger describes it.
#[derive(Clone, Debug)]
pub struct Upload {
    pub key: ObjectKey,
    /// The ETag the event reported, if any (recorded; the ETag actually read wins).
    pub etag: Option<String>,
    /// Who uploaded it, where the event says.
    pub uploader: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SourceInfo {
    pub key: ObjectKey,
    pub uri: String,
    pub etag: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uploader: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SchemaField {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: ColumnType,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataFile {
    pub key: ObjectKey,
    pub uri: String,
    pub bytes: u64,
}

/// Everything known about a dataset version. Written once, never changed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub dataset: DatasetName,
    pub version: u32,
    /// SHA-256 of the uploaded bytes, hex.
    pub content_sha256: String,
    pub contract_version: u32,
    pub contract_inferred: bool,
    pub source: SourceInfo,
    pub format: SourceFormat,
    pub bytes: u64,
    pub rows: u64,
    pub schema: Vec<SchemaField>,
    pub profile: Vec<ColumnProfile>,
    pub validation: ValidationResult,
    pub parent_version: Option<u32>,
    /// The snapshot: one file, or the folder of `data_parts` (its bytes their sum).
    pub data: DataFile,
    /// The snapshot's parts in order, when a distributed scan wrote it in parts (absent
    /// in manifests written before there were parts).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data_parts: Vec<DataFile>,
    pub created_at: DateTime<Utc>,
}

/// Why an upload was quarantined, beside its copy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QuarantineReport {
    pub dataset: DatasetName,
    pub content_sha256: String,
    pub contract_version: u32,
    pub contract_inferred: bool,
    pub source: SourceInfo,
    pub format: SourceFormat,
    pub bytes: u64,
    pub rows: u64,
    pub validation: ValidationResult,
    pub copy: DataFile,
    pub report_key: ObjectKey,
    pub quarantined_at: DateTime<Utc>,
}

/// A new dataset version, as `DatasetEvents` hears of it on `sluice-events`.
#[derive(Clone, Debug, PartialEq)]
pub struct Versioned {
    pub dataset: DatasetName,
    pub version: u32,
    /// The event's id (the flow the retrains it asks for belong to).
    pub event_id: String,
}

/// Reads a `sluice-events` message for `DatasetEvents`: `Ok(None)` for any event but
/// `dataset.versioned`. The message is a CloudEvent (what [`crate::notify`] publishes),
/// or the flat `{"type": "dataset.versioned", "dataset", "version", …}` that versions
/// before notifications published, which may still be in flight after an upgrade.
pub fn versioned_of(message: &serde_json::Value) -> Result<Option<Versioned>, String> {
    let kind = message["type"]
        .as_str()
        .ok_or("no `type`: not a Sluice event")?;
    if kind != "dataset.versioned" {
        return Ok(None);
    }
    let cloud_event = message.get("specversion").is_some();
    let fields = if cloud_event {
        &message["data"]
    } else {
        message
    };
    let dataset = fields["dataset"]
        .as_str()
        .ok_or("`dataset` is missing")
        .and_then(|d| DatasetName::parse(d).map_err(|_| "`dataset` is not a dataset name"))?;
    let version = fields["version"]
        .as_u64()
        .and_then(|v| u32::try_from(v).ok())
        .ok_or("`version` is missing or not a version number")?;
    let event_id = match message["id"].as_str() {
        Some(id) if cloud_event => id.to_owned(),
        _ => format!("dataset.versioned:{dataset}:v{version}"),
    };
    Ok(Some(Versioned {
        dataset,
        version,
        event_id,
    }))
}

#[derive(Debug)]
pub enum IngestOutcome {
    Versioned {
        manifest: Box<Manifest>,
        duplicate: bool,
    },
    Quarantined {
        report: Box<QuarantineReport>,
        duplicate: bool,
    },
    /// Too large to read here: handed to a scan engine (see [`super::delegation`]); its
    /// version or quarantine comes when the job is done.
    Delegated {
        delegation: Box<Delegation>,
        /// True when this upload had been delegated already (a redelivered event).
        duplicate: bool,
    },
    /// Nothing to do, and retrying will not change that (said why).
    Ignored { reason: String },
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Scan(#[from] ScanError),
    #[error(transparent)]
    Contract(#[from] ContractStoreError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("gave up allocating a version of {0} after many conflicts")]
    Contention(DatasetName),
    /// A bug: the scan thread panicked. Reported, never retried in a loop.
    #[error("the scan crashed: {0}")]
    Crashed(String),
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
}

impl IngestError {
    /// Whether the same call may succeed later (the trigger should be retried).
    pub fn is_transient(&self) -> bool {
        match self {
            IngestError::Storage(e) => e.is_transient(),
            IngestError::Contract(e) => e.is_transient(),
            IngestError::Engine(e) => matches!(e, EngineError::Unavailable(_)),
            IngestError::Scan(ScanError::Read(_)) | IngestError::Contention(_) => true,
            IngestError::Audit(crate::audit::AuditError::Storage(e)) => e.is_transient(),
            IngestError::Scan(ScanError::Parquet(_))
            | IngestError::Crashed(_)
            | IngestError::Audit(_) => false,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Claim {
    content_sha256: String,
    contract_version: u32,
    source_uri: String,
}

impl Claim {
    /// Whether a claim is for the same dataset version identity (hash, contract).
    fn same_identity(&self, other: &Claim) -> bool {
        self.content_sha256 == other.content_sha256
            && self.contract_version == other.contract_version
    }
}

/// An upload checked against its contract: what a version or a quarantine is made from.
struct Checked {
    dataset: DatasetName,
    contract: Contract,
    inferred: bool,
    source: SourceInfo,
    scanned: ScanOutput,
}

#[derive(Debug, Serialize, Deserialize)]
struct IndexEntry {
    key: ObjectKey,
}

pub struct Ingestor {
    store: Arc<dyn ObjectStore>,
    contracts: Contracts,
    audit: crate::audit::AuditLog,
    scratch: PathBuf,
    delegation: Option<Delegating>,
}

/// Where uploads above `threshold` bytes go.
struct Delegating {
    threshold: u64,
    engine: Arc<dyn ScanEngine>,
}

impl Ingestor {
    pub fn new(store: Arc<dyn ObjectStore>, scratch: PathBuf) -> Self {
        Self {
            contracts: Contracts::new(store.clone()),
            audit: crate::audit::AuditLog::new(store.clone()),
            store,
            scratch,
            delegation: None,
        }
    }

    /// Uploads larger than `threshold` bytes are scanned by `engine` instead of here.
    pub fn with_delegation(mut self, threshold: u64, engine: Arc<dyn ScanEngine>) -> Self {
        self.delegation = Some(Delegating { threshold, engine });
        self
    }

    /// Ingests the upload at `upload.key`. Its bytes are streamed from the store, or
    /// taken from `inline` when the trigger already carried them (blob trigger).
    #[instrument(skip_all, fields(upload = %upload.key, dataset, dataset_version))]
    pub async fn ingest(
        &self,
        upload: Upload,
        inline: Option<Bytes>,
    ) -> Result<IngestOutcome, IngestError> {
        let dataset = match dataset_of(&upload) {
            Ok(d) => d,
            Err(ignored) => return Ok(ignored),
        };
        let (contract, inferred) = match self.contracts.current(&dataset).await? {
            Some(c) => (c, false),
            None => match self.open(&upload, inline.clone()).await? {
                Some((reader, _)) => {
                    let dataset = dataset.clone();
                    let contract =
                        tokio::task::spawn_blocking(move || contract::infer(dataset, reader))
                            .await
                            .map_err(|e| IngestError::Crashed(e.to_string()))?
                            .map_err(ScanError::Read)?;
                    (contract, true)
                }
                None => return Ok(gone(&upload)),
            },
        };
        if let (Some(delegating), None) = (&self.delegation, &inline) {
            let meta = match self.store.head(&upload.key).await {
                Ok(meta) => meta,
                Err(StorageError::NotFound { .. }) => return Ok(gone(&upload)),
                Err(e) => return Err(e.into()),
            };
            if meta.size > delegating.threshold {
                let delegation = Delegation {
                    id: delegation_id(&upload.key, &meta.etag.0),
                    dataset,
                    upload: upload.key.clone(),
                    etag: meta.etag.0,
                    uploader: upload.uploader.clone(),
                    contract,
                    contract_inferred: inferred,
                    bytes: meta.size,
                    engine: delegating.engine.name().to_owned(),
                    job: None,
                    state: DelegationState::Claimed,
                    created_at: Utc::now(),
                    finished_at: None,
                    canceled: None,
                };
                return self.delegate(delegating, delegation).await;
            }
        }
        let Some((reader, etag)) = self.open(&upload, inline).await? else {
            return Ok(gone(&upload));
        };
        let source = SourceInfo {
            key: upload.key.clone(),
            uri: self.store.uri(&upload.key),
            etag,
            uploader: upload.uploader.clone(),
        };
        let scratch = tempfile::Builder::new()
            .prefix("sluice-ingest-")
            .tempdir_in(&self.scratch)
            .map_err(ScanError::Read)?;
        let parquet_path = scratch.path().join("data.parquet");
        let scanned = {
            let contract = contract.clone();
            let path = parquet_path.clone();
            let span = tracing::Span::current();
            tokio::task::spawn_blocking(move || {
                span.in_scope(|| scan::scan(reader, &contract, &path))
            })
            .await
            .map_err(|e| IngestError::Crashed(e.to_string()))??
        };
        info!(
            rows = scanned.rows,
            bytes = scanned.bytes,
            passed = scanned.validation.passed,
            "scanned upload"
        );
        let checked = Checked {
            dataset,
            contract,
            inferred,
            source,
            scanned,
        };
        self.record(checked, Snapshot::Local(parquet_path)).await
    }

    /// Claims a delegation create-only (a redelivered upload finds its claim and starts
    /// nothing new) and submits its job if that has not happened yet.
    async fn delegate(
        &self,
        delegating: &Delegating,
        delegation: Delegation,
    ) -> Result<IngestOutcome, IngestError> {
        let store = self.store.as_ref();
        let key = layout::delegation(&delegation.dataset, &delegation.id);
        let (delegation, etag, duplicate) =
            match put_json(store, &key, &delegation, PutMode::Create).await {
                Ok(meta) => (delegation, meta.etag, false),
                Err(StorageError::AlreadyExists { .. }) => {
                    let (found, etag) = get_json(store, &key).await?;
                    (found, etag, true)
                }
                Err(e) => return Err(e.into()),
            };
        let delegation = match delegation.state {
            DelegationState::Claimed => self.submit(delegating, delegation, etag).await?.0,
            _ => delegation,
        };
        info!(id = %delegation.id, job = ?delegation.job, duplicate, "upload delegated");
        Ok(IngestOutcome::Delegated {
            delegation: Box::new(delegation),
            duplicate,
        })
    }

    /// Submits a claimed delegation's job (the engine finds the job of the same id if
    /// one was started) and records it.
    async fn submit(
        &self,
        delegating: &Delegating,
        mut delegation: Delegation,
        etag: crate::storage::ETag,
    ) -> Result<(Delegation, crate::storage::ETag), IngestError> {
        let job = delegating.engine.submit(&delegation).await?;
        delegation.job = Some(job);
        delegation.state = DelegationState::Submitted;
        self.update(delegation, etag).await
    }

    /// Writes a delegation back if nobody changed it since it was read; else returns
    /// what they wrote.
    async fn update(
        &self,
        delegation: Delegation,
        etag: crate::storage::ETag,
    ) -> Result<(Delegation, crate::storage::ETag), IngestError> {
        let store = self.store.as_ref();
        let key = layout::delegation(&delegation.dataset, &delegation.id);
        match put_json(store, &key, &delegation, PutMode::Update(etag)).await {
            Ok(meta) => Ok((delegation, meta.etag)),
            Err(StorageError::Precondition { .. }) => Ok(get_json(store, &key).await?),
            Err(e) => Err(e.into()),
        }
    }

    /// The delegated uploads of `dataset` (of every dataset when `None`), newest first.
    pub async fn delegations(
        &self,
        dataset: Option<&DatasetName>,
    ) -> Result<Vec<Delegation>, IngestError> {
        let prefix = dataset.map_or_else(
            || layout::DELEGATIONS.to_owned(),
            layout::delegations_prefix,
        );
        let store = self.store.as_ref();
        let mut all = Vec::new();
        for meta in store.list(&prefix).await? {
            all.push(get_json::<Delegation>(store, &meta.key).await?.0);
        }
        all.sort_by_key(|d| std::cmp::Reverse(d.created_at));
        Ok(all)
    }

    /// Stops a delegated scan: records who asked and why, then asks the engine to stop
    /// the job; following it then ends the delegation failed with that reason (a job
    /// that finished first still makes its version). A scan not yet submitted ends at
    /// once; one already over is returned as it is. `None` when there is no such
    /// delegation.
    pub async fn cancel_delegation(
        &self,
        dataset: &DatasetName,
        id: &str,
        by: &str,
        reason: &str,
    ) -> Result<Option<Delegation>, IngestError> {
        let Some(delegating) = &self.delegation else {
            return Err(EngineError::Refused("no scan engine is configured".into()).into());
        };
        let store = self.store.as_ref();
        let key = layout::delegation(dataset, id);
        for _ in 0..10 {
            let (mut delegation, etag): (Delegation, _) = match get_json(store, &key).await {
                Ok(found) => found,
                Err(StorageError::NotFound { .. }) => return Ok(None),
                Err(e) => return Err(e.into()),
            };
            if delegation.state.is_final() {
                return Ok(Some(delegation));
            }
            let cancellation = Cancellation {
                by: by.to_owned(),
                reason: reason.to_owned(),
                at: Utc::now(),
            };
            delegation.canceled = Some(cancellation.clone());
            if delegation.job.is_none() {
                delegation.state = DelegationState::Failed {
                    reason: cancellation.describe(),
                };
                delegation.finished_at = Some(cancellation.at);
            }
            let mine = delegation.clone();
            let (recorded, _) = self.update(delegation, etag).await?;
            if recorded != mine {
                continue; // someone moved it meanwhile: look again
            }
            if let Some(job) = &recorded.job {
                delegating.engine.cancel(job).await?;
            }
            info!(id, by, reason, "delegated scan cancelled");
            return Ok(Some(recorded));
        }
        Err(IngestError::Contention(dataset.clone()))
    }

    /// Whether some delegated upload is still being scanned.
    pub async fn has_unfinished_delegations(&self) -> Result<bool, IngestError> {
        if self.delegation.is_none() {
            return Ok(false);
        }
        Ok(!self.unfinished_delegations().await?.is_empty())
    }

    /// The delegations whose scan is not over, with the ETags they were read at.
    async fn unfinished_delegations(
        &self,
    ) -> Result<Vec<(Delegation, crate::storage::ETag)>, IngestError> {
        let store = self.store.as_ref();
        let mut unfinished = Vec::new();
        for meta in store.list(layout::DELEGATIONS).await? {
            let (delegation, etag): (Delegation, _) = get_json(store, &meta.key).await?;
            if !delegation.state.is_final() {
                unfinished.push((delegation, etag));
            }
        }
        Ok(unfinished)
    }

    /// Follows every unfinished delegation (what the runs timer does on each tick): a
    /// job that is done makes its upload a version or a quarantine, and the one caller
    /// that records that gets the event to publish, so it is published once.
    pub async fn follow_delegations(&self) -> Result<Vec<Delegation>, IngestError> {
        let Some(delegating) = &self.delegation else {
            return Ok(Vec::new());
        };
        let mut followed = Vec::new();
        for (delegation, etag) in self.unfinished_delegations().await? {
            followed.push(self.follow_guarded(delegating, delegation, etag).await?);
        }
        Ok(followed)
    }

    /// Follows one delegation now (what an engine's completion event does), as a tick
    /// of the timer would; `None` when there is no such delegation.
    pub async fn follow_delegation(
        &self,
        dataset: &DatasetName,
        id: &str,
    ) -> Result<Option<Delegation>, IngestError> {
        let Some(delegating) = &self.delegation else {
            return Ok(None);
        };
        let key = layout::delegation(dataset, id);
        let (delegation, etag): (Delegation, _) = match get_json(self.store.as_ref(), &key).await {
            Ok(found) => found,
            Err(StorageError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if delegation.state.is_final() {
            return Ok(Some(delegation));
        }
        Ok(Some(
            self.follow_guarded(delegating, delegation, etag).await?,
        ))
    }

    /// [`Self::follow`], where one delegation's trouble does not hold up the others (nor
    /// the runs the timer also follows): a transient one is tried again next tick, any
    /// other ends the delegation with its reason.
    async fn follow_guarded(
        &self,
        delegating: &Delegating,
        delegation: Delegation,
        etag: crate::storage::ETag,
    ) -> Result<Delegation, IngestError> {
        let span =
            tracing::info_span!("delegation", id = %delegation.id, dataset = %delegation.dataset);
        let (kept, kept_etag) = (delegation.clone(), etag.clone());
        match self
            .follow(delegating, delegation, etag)
            .instrument(span)
            .await
        {
            Ok(f) => Ok(f),
            Err(e) if e.is_transient() => {
                warn!(id = %kept.id, error = %e, "following a delegation failed; next tick tries again");
                Ok(kept)
            }
            Err(e) => {
                let mut failed = kept;
                failed.state = DelegationState::Failed {
                    reason: e.to_string(),
                };
                failed.finished_at = Some(Utc::now());
                let (delegation, _) = self.update(failed, kept_etag).await?;
                Ok(delegation)
            }
        }
    }

    async fn follow(
        &self,
        delegating: &Delegating,
        delegation: Delegation,
        etag: crate::storage::ETag,
    ) -> Result<Delegation, IngestError> {
        let (mut delegation, etag) = match delegation.state {
            DelegationState::Claimed => self.submit(delegating, delegation, etag).await?,
            _ => (delegation, etag),
        };
        let Some(job) = delegation.job.clone() else {
            return Ok(delegation);
        };
        let state = match delegating.engine.poll(&delegation, &job).await? {
            JobState::Running => {
                return Ok(delegation);
            }
            JobState::Failed(reason) => {
                let reason = match &delegation.canceled {
                    Some(c) => format!("{} ({reason})", c.describe()),
                    None => reason,
                };
                warn!(%reason, "the delegated scan failed");
                DelegationState::Failed { reason }
            }
            JobState::Succeeded { scan, snapshot } => {
                let upload = Upload {
                    key: delegation.upload.clone(),
                    etag: Some(delegation.etag.clone()),
                    uploader: delegation.uploader.clone(),
                };
                let (contract, inferred) =
                    (delegation.contract.clone(), delegation.contract_inferred);
                match self
                    .finish(upload, contract, inferred, scan, snapshot)
                    .await?
                {
                    IngestOutcome::Versioned { manifest, .. } => DelegationState::Versioned {
                        version: manifest.version,
                    },
                    IngestOutcome::Quarantined { report, .. } => DelegationState::Quarantined {
                        report_key: report.report_key,
                    },
                    IngestOutcome::Ignored { reason } => DelegationState::Failed { reason },
                    IngestOutcome::Delegated { .. } => unreachable!("finish never delegates"),
                }
            }
        };
        delegation.state = state;
        delegation.finished_at = Some(Utc::now());
        // The version or quarantine tells itself (its audit record, once); another tick
        // may have recorded the delegation's end first, and its record stands.
        let (recorded, _) = self.update(delegation, etag).await?;
        Ok(recorded)
    }

    /// Finishes an upload another engine scanned (the Spark job): `scanned` is its result
    /// against `contract`, `snapshot` the file or folder of parts it wrote. An inferred
    /// contract is stored once the file passed it. The steps that follow are those of an
    /// upload Sluice scanned itself, so the version, its identity, its event and a
    /// redelivery's answer are the same.
    #[instrument(skip_all, fields(upload = %upload.key, dataset, dataset_version))]
    pub async fn finish(
        &self,
        upload: Upload,
        contract: Contract,
        inferred: bool,
        scanned: ScanOutput,
        snapshot: Snapshot,
    ) -> Result<IngestOutcome, IngestError> {
        let dataset = match dataset_of(&upload) {
            Ok(d) => d,
            Err(ignored) => return Ok(ignored),
        };
        let meta = match self.store.head(&upload.key).await {
            Ok(meta) => meta,
            Err(StorageError::NotFound { .. }) => return Ok(gone(&upload)),
            Err(e) => return Err(e.into()),
        };
        let source = SourceInfo {
            key: upload.key.clone(),
            uri: self.store.uri(&upload.key),
            etag: meta.etag.0,
            uploader: upload.uploader,
        };
        let checked = Checked {
            dataset,
            contract,
            inferred,
            source,
            scanned,
        };
        self.record(checked, snapshot).await
    }

    /// A checked upload becomes a version (with the snapshot at `snapshot`) if it passed,
    /// else a quarantine. An inferred contract is stored once a file passed it, not before.
    async fn record(
        &self,
        mut checked: Checked,
        snapshot: Snapshot,
    ) -> Result<IngestOutcome, IngestError> {
        if !checked.scanned.validation.passed {
            return self.quarantine(checked).await;
        }
        if checked.inferred {
            checked.contract = self
                .contracts
                .put(checked.contract, "sluice:DatasetIngest (inferred)")
                .await?;
        }
        self.version(checked, snapshot).await
    }

    /// A reader over the upload (inline bytes, or streamed from the store) and its ETag;
    /// `None` when the blob no longer exists.
    async fn open(
        &self,
        upload: &Upload,
        inline: Option<Bytes>,
    ) -> Result<Option<(Box<dyn Read + Send>, String)>, IngestError> {
        if let Some(bytes) = inline {
            return Ok(Some((
                Box::new(std::io::Cursor::new(bytes)),
                upload.etag.clone().unwrap_or_default(),
            )));
        }
        let got = match self.store.get(&upload.key).await {
            Ok(got) => got,
            Err(StorageError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let etag = got.meta.etag.0.clone();
        let body = tokio_util::io::StreamReader::new(got.body.map_err(std::io::Error::other));
        Ok(Some((
            Box::new(tokio_util::io::SyncIoBridge::new(body)),
            etag,
        )))
    }

    async fn version(
        &self,
        checked: Checked,
        snapshot: Snapshot,
    ) -> Result<IngestOutcome, IngestError> {
        let (dataset, contract) = (&checked.dataset, &checked.contract);
        let store = self.store.as_ref();
        let index = layout::version_index(dataset, &checked.scanned.sha256, contract.version);
        if let Some(manifest) = self.indexed_manifest(&index).await? {
            tracing::Span::current().record("dataset_version", manifest.version);
            info!(version = manifest.version, "same content already versioned");
            self.audit_versioned(&manifest).await?;
            return Ok(IngestOutcome::Versioned {
                manifest: Box::new(manifest),
                duplicate: true,
            });
        }
        let claim = Claim {
            content_sha256: checked.scanned.sha256.clone(),
            contract_version: contract.version,
            source_uri: checked.source.uri.clone(),
        };
        let version = self.claim_version(dataset, &claim).await?;
        tracing::Span::current().record("dataset_version", version);
        let data_key = layout::data(dataset, version);
        let mut data_parts = Vec::new();
        let data_bytes = match snapshot {
            Snapshot::Local(path) if path.is_dir() => {
                for (name, path) in super::snapshot_parts(&path).map_err(ScanError::Read)? {
                    let key = layout::data_part(dataset, version, &name)?;
                    let meta = put_once(store, &key, path).await?;
                    data_parts.push(DataFile {
                        uri: store.uri(&key),
                        key,
                        bytes: meta.size,
                    });
                }
                data_parts.iter().map(|p| p.bytes).sum()
            }
            Snapshot::Local(path) => put_once(store, &data_key, path).await?.size,
            // Copied, not referenced: a version's folder holds all of it, whoever wrote it,
            // and the engine's scratch folder can be cleaned up.
            Snapshot::Stored(parts) => {
                for part in parts {
                    let key = layout::data_part(dataset, version, part.file_name())?;
                    let meta = copy_once(store, &part, &key).await?;
                    data_parts.push(DataFile {
                        uri: store.uri(&key),
                        key,
                        bytes: meta.size,
                    });
                }
                data_parts.iter().map(|p| p.bytes).sum()
            }
        };
        let parent_version = (version > 1).then(|| version - 1);
        let manifest = Manifest {
            dataset: dataset.clone(),
            version,
            content_sha256: checked.scanned.sha256,
            contract_version: contract.version,
            contract_inferred: checked.inferred,
            source: checked.source,
            format: checked.scanned.format,
            bytes: checked.scanned.bytes,
            rows: checked.scanned.rows,
            schema: contract
                .columns
                .iter()
                .map(|c| SchemaField {
                    name: c.name.clone(),
                    kind: c.kind,
                })
                .collect(),
            profile: checked.scanned.profile,
            validation: checked.scanned.validation,
            parent_version,
            data: DataFile {
                uri: store.uri(&data_key),
                key: data_key,
                bytes: data_bytes,
            },
            data_parts,
            created_at: Utc::now(),
        };
        let manifest_key = layout::manifest(dataset, version);
        let (manifest, created) = create_or_read(store, &manifest_key, manifest).await?;
        let duplicate = !created;
        create_or_keep(store, &index, &IndexEntry { key: manifest_key }).await?;
        info!(version, duplicate, "dataset versioned");
        self.audit_versioned(&manifest).await?;
        Ok(IngestOutcome::Versioned {
            manifest: Box::new(manifest),
            duplicate,
        })
    }

    /// Records the version in the audit trail, once however often its upload arrives.
    async fn audit_versioned(&self, m: &Manifest) -> Result<(), IngestError> {
        let entry = crate::audit::Entry {
            action: crate::audit::Action::DatasetVersioned,
            actor: m
                .source
                .uploader
                .clone()
                .unwrap_or_else(|| "sluice:DatasetIngest".into()),
            subject: format!("dataset:{}@{}", m.dataset, m.version),
            reason: format!("{} rows from {}", m.rows, m.source.key),
            correlation_id: m.source.key.to_string(),
            details: serde_json::json!({
                "dataset": m.dataset,
                "version": m.version,
                "content_sha256": m.content_sha256,
                "contract_version": m.contract_version,
                "rows": m.rows,
                "manifest_uri": self.store.uri(&layout::manifest(&m.dataset, m.version)),
                "upload": m.source.key,
            }),
        };
        let once = format!("dataset.versioned/{}/v{}", m.dataset, m.version);
        self.audit.append_once(&once, entry).await?;
        Ok(())
    }

    /// Records the quarantine in the audit trail, once per content and contract version.
    async fn audit_quarantined(&self, r: &QuarantineReport) -> Result<(), IngestError> {
        let rules = rule_names(r);
        let entry = crate::audit::Entry {
            action: crate::audit::Action::DatasetRejected,
            actor: r
                .source
                .uploader
                .clone()
                .unwrap_or_else(|| "sluice:DatasetIngest".into()),
            subject: format!("dataset:{}", r.dataset),
            reason: format!("{} quarantined: {}", r.source.key, rules.join(", ")),
            correlation_id: r.source.key.to_string(),
            details: serde_json::json!({
                "dataset": r.dataset,
                "content_sha256": r.content_sha256,
                "contract_version": r.contract_version,
                "report_uri": self.store.uri(&r.report_key),
                "rules": rules,
                "upload": r.source.key,
            }),
        };
        let once = format!(
            "dataset.quarantined/{}/{}-c{}",
            r.dataset, r.content_sha256, r.contract_version
        );
        self.audit.append_once(&once, entry).await?;
        Ok(())
    }

    async fn indexed_manifest(&self, index: &ObjectKey) -> Result<Option<Manifest>, IngestError> {
        match get_json::<IndexEntry>(self.store.as_ref(), index).await {
            Ok((entry, _)) => Ok(Some(get_json(self.store.as_ref(), &entry.key).await?.0)),
            Err(StorageError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Claims the next free version number, or resumes a claim for the same identity.
    async fn claim_version(
        &self,
        dataset: &DatasetName,
        claim: &Claim,
    ) -> Result<u32, IngestError> {
        let store = self.store.as_ref();
        for _ in 0..100 {
            let mut highest = 0;
            for meta in store.list(&layout::versions_prefix(dataset)).await? {
                if let Some((n, "claim.json")) = layout::parse_version_key(dataset, &meta.key) {
                    highest = highest.max(n);
                    if let Ok((existing, _)) = get_json::<Claim>(store, &meta.key).await
                        && existing.same_identity(claim)
                    {
                        return Ok(n);
                    }
                }
            }
            let next = highest + 1;
            match put_json(store, &layout::claim(dataset, next), claim, PutMode::Create).await {
                Ok(_) => return Ok(next),
                Err(StorageError::AlreadyExists { .. }) => {
                    let (existing, _) =
                        get_json::<Claim>(store, &layout::claim(dataset, next)).await?;
                    if existing.same_identity(claim) {
                        return Ok(next);
                    }
                    warn!(
                        version = next,
                        "version number taken by a concurrent upload; retrying"
                    );
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(IngestError::Contention(dataset.clone()))
    }

    async fn quarantine(&self, checked: Checked) -> Result<IngestOutcome, IngestError> {
        let (dataset, contract) = (&checked.dataset, &checked.contract);
        let store = self.store.as_ref();
        let index = layout::quarantine_index(dataset, &checked.scanned.sha256, contract.version);
        let now = Utc::now();
        let copy_key = layout::quarantine_copy(dataset, now, checked.source.key.file_name());
        let report_key = layout::quarantine_report(&copy_key);
        // The index entry claims the quarantine; a redelivery finds it and finishes or reuses it.
        let (report_key, duplicate) = match put_json(
            store,
            &index,
            &IndexEntry {
                key: report_key.clone(),
            },
            PutMode::Create,
        )
        .await
        {
            Ok(_) => (report_key, false),
            Err(StorageError::AlreadyExists { .. }) => {
                (get_json::<IndexEntry>(store, &index).await?.0.key, true)
            }
            Err(e) => return Err(e.into()),
        };
        if duplicate && let Ok((report, _)) = get_json::<QuarantineReport>(store, &report_key).await
        {
            info!(report = %report_key, "same content already quarantined");
            self.audit_quarantined(&report).await?;
            return Ok(IngestOutcome::Quarantined {
                report: Box::new(report),
                duplicate: true,
            });
        }
        let copy_key = ObjectKey::parse(report_key.as_str().trim_end_matches(".report.json"))?;
        let copy_meta = match store.copy(&checked.source.key, &copy_key).await {
            Ok(meta) => meta,
            Err(StorageError::AlreadyExists { .. }) => store.head(&copy_key).await?,
            Err(e) => return Err(e.into()),
        };
        let report = QuarantineReport {
            dataset: dataset.clone(),
            content_sha256: checked.scanned.sha256,
            contract_version: contract.version,
            contract_inferred: checked.inferred,
            source: checked.source,
            format: checked.scanned.format,
            bytes: checked.scanned.bytes,
            rows: checked.scanned.rows,
            validation: checked.scanned.validation,
            copy: DataFile {
                uri: store.uri(&copy_key),
                key: copy_key,
                bytes: copy_meta.size,
            },
            report_key: report_key.clone(),
            quarantined_at: now,
        };
        let report = match put_json(store, &report_key, &report, PutMode::Create).await {
            Ok(_) => report,
            Err(StorageError::AlreadyExists { .. }) => get_json(store, &report_key).await?.0,
            Err(e) => return Err(e.into()),
        };
        let rules: Vec<_> = report
            .validation
            .violations
            .iter()
            .map(|v| format!("{:?}", v.rule))
            .collect();
        info!(report = %report_key, ?rules, "upload quarantined");
        self.audit_quarantined(&report).await?;
        Ok(IngestOutcome::Quarantined {
            report: Box::new(report),
            duplicate,
        })
    }
}

/// Writes a snapshot file create-only; a concurrent ingest of the same content may have
/// written it first, with identical bytes.
async fn put_once(
    store: &dyn ObjectStore,
    key: &ObjectKey,
    path: PathBuf,
) -> Result<crate::storage::ObjectMeta, StorageError> {
    match store.put(key, Payload::File(path), PutMode::Create).await {
        Err(StorageError::AlreadyExists { .. }) => store.head(key).await,
        other => other,
    }
}

/// Copies a snapshot part create-only, as [`put_once`] writes one.
async fn copy_once(
    store: &dyn ObjectStore,
    from: &ObjectKey,
    to: &ObjectKey,
) -> Result<crate::storage::ObjectMeta, StorageError> {
    match store.copy(from, to).await {
        Err(StorageError::AlreadyExists { .. }) => store.head(to).await,
        other => other,
    }
}

/// The dataset an upload belongs to (recorded on the span), or why it is ignored.
fn dataset_of(upload: &Upload) -> Result<DatasetName, IngestOutcome> {
    let reason = match layout::dataset_of_landing_key(&upload.key) {
        None => format!("{} is not under {}<dataset>/", upload.key, layout::LANDING),
        Some(Err(e)) => e.to_string(),
        Some(Ok(d)) => {
            tracing::Span::current().record("dataset", d.as_str());
            return Ok(d);
        }
    };
    Err(IngestOutcome::Ignored { reason })
}

fn gone(upload: &Upload) -> IngestOutcome {
    IngestOutcome::Ignored {
        reason: format!("{} no longer exists", upload.key),
    }
}

/// The rules a quarantined upload broke, by name, each once.
fn rule_names(r: &QuarantineReport) -> Vec<String> {
    let mut rules: Vec<String> = r
        .validation
        .violations
        .iter()
        .map(|v| {
            serde_json::to_value(v.rule)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        })
        .collect();
    rules.dedup();
    rules
}

/// The newest version of a dataset, from its manifests (None before the first).
pub async fn latest_version(
    store: &dyn ObjectStore,
    dataset: &DatasetName,
) -> Result<Option<u32>, StorageError> {
    let prefix = layout::versions_prefix(dataset);
    Ok(store
        .list(&prefix)
        .await?
        .iter()
        .filter_map(|m| layout::parse_version_key(dataset, &m.key))
        .filter(|(_, file)| *file == "manifest.json")
        .map(|(v, _)| v)
        .max())
}

#[cfg(test)]
mod tests {
    use super::versioned_of;

    /// `DatasetEvents` reads what Notify publishes, and what earlier versions published
    /// (still in flight after an upgrade), alike.
    #[test]
    fn dataset_events_read_as_cloud_events_and_as_before() {
        let cloud = serde_json::json!({
            "specversion": "1.0", "id": "dataset.versioned:adult:v3", "type": "dataset.versioned",
            "source": "/sluice", "subject": "datasets/adult/versions/3",
            "data": {"dataset": "adult", "version": 3}
        });
        let flat = serde_json::json!({"type": "dataset.versioned", "dataset": "adult", "version": 3,
            "content_sha256": "ab", "manifest_uri": "x", "rows": 1});
        let a = versioned_of(&cloud).unwrap().unwrap();
        assert_eq!(a, versioned_of(&flat).unwrap().unwrap());
        assert_eq!((a.dataset.as_str(), a.version), ("adult", 3));
        let other = serde_json::json!({"type": "run.started"});
        assert_eq!(versioned_of(&other).unwrap(), None);
        let partial = serde_json::json!({"type": "dataset.versioned", "dataset": "adult"});
        assert!(versioned_of(&partial).is_err());
        assert!(versioned_of(&serde_json::json!([1])).is_err());
    }
}
