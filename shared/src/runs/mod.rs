//! Training runs: requests from any trigger become one run per (model, dataset version
//! content, training config), submitted to a [`Compute`] backend, followed to the end,
//! and registered in the model registry with their lineage.
//!
//! - `runs/<run-id>.json` — the run, updated only with If-Match;
//! - `runs/<run-id>/output/` — what the job wrote (`model.onnx`, `signature.json`,
//!   `metrics.json`, `lineage.json`), whatever the backend;
//! - `configs/<model>.json` — each model's current training config, and
//!   `configs/<model>/v<N>.json` every version of it (create-only, as contracts);
//! - `rejected/<time>-<id>.json` — requests that can never succeed, with their reason
//!   and the original message (set aside, never retried).

pub mod azureml;
pub mod compute;
pub mod databricks;
pub mod lifecycle;
pub mod local;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::audit::{Action, AuditLog, Entry};
use crate::dataset::{DatasetName, Manifest, layout};
use crate::registry::{Artifacts, HoldoutRef, Lineage, ModelName, ModelVersion, Registry};
use crate::storage::{
    ETag, ObjectKey, ObjectStore, PutMode, StorageError, create_or_keep, get_json, put_json,
};
use crate::training::TrainingConfig;
use crate::training::configs::{ConfigStoreError, Configs};
use crate::training::trainer::{HOLDOUT_FILE, Holdout};

pub use compute::{Compute, ComputeError, JobSpec, JobStatus};

/// A request to retrain, from Service Bus, HTTP or a dataset event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrainRequest {
    pub model: ModelName,
    /// Defaults to the dataset the model's config names.
    #[serde(default)]
    pub dataset: Option<DatasetName>,
    #[serde(default)]
    pub dataset_version: DatasetVersion,
    /// Merged over the model's config (e.g. `{"seed": 7, "hyperparameters": {"l2": 0.5}}`).
    #[serde(default)]
    pub config_overrides: serde_json::Value,
    pub requested_by: String,
    #[serde(default)]
    pub reason: String,
}

/// A version number or `"latest"`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DatasetVersion {
    #[default]
    Latest,
    Number(u32),
}

impl Serialize for DatasetVersion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            DatasetVersion::Latest => s.serialize_str("latest"),
            DatasetVersion::Number(n) => s.serialize_u32(*n),
        }
    }
}

impl<'de> Deserialize<'de> for DatasetVersion {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(s) if s == "latest" => Ok(DatasetVersion::Latest),
            serde_json::Value::String(s) => s.parse().map(DatasetVersion::Number).map_err(|_| {
                serde::de::Error::custom(format!(
                    "dataset_version {s:?} is neither a number nor \"latest\""
                ))
            }),
            serde_json::Value::Number(n) => n
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .map(DatasetVersion::Number)
                .ok_or_else(|| {
                    serde::de::Error::custom("dataset_version must be a positive integer")
                }),
            other => Err(serde::de::Error::custom(format!(
                "dataset_version {other} is neither a number nor \"latest\""
            ))),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Canceled,
}

impl RunStatus {
    pub fn is_final(self) -> bool {
        matches!(
            self,
            RunStatus::Succeeded | RunStatus::Failed | RunStatus::Canceled
        )
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub id: String,
    pub model: ModelName,
    pub dataset: DatasetName,
    pub dataset_version: u32,
    pub dataset_sha256: String,
    /// The upload the dataset version came from.
    pub source_uri: String,
    /// The effective config (overrides applied), pinned for reproduction.
    pub config: TrainingConfig,
    pub config_sha256: String,
    pub trigger: String,
    pub requested_by: String,
    pub reason: String,
    pub correlation_id: String,
    pub status: RunStatus,
    pub compute: String,
    /// The backend's job id once submitted.
    pub job: Option<String>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
    pub model_version: Option<u32>,
    /// Which attempt the fields above describe: 1, unless the run was retried (absent
    /// in runs written before attempts: 1).
    #[serde(default = "first_attempt")]
    pub attempt: u32,
    /// The attempts before this one, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub earlier_attempts: Vec<Attempt>,
}

fn first_attempt() -> u32 {
    1
}

/// An attempt of a run that did not succeed, as it ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    pub attempt: u32,
    pub status: RunStatus,
    pub job: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
}

/// What a request came to.
#[derive(Clone, Debug, PartialEq)]
pub enum RequestOutcome {
    /// A new run, or the existing one for the same identity (`duplicate`).
    Accepted { run: Box<Run>, duplicate: bool },
    /// It can never succeed: set aside with its reason.
    Rejected { reason: String, record: ObjectKey },
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Can never succeed as sent (bad JSON, unknown model, missing dataset version…).
    #[error("{0}")]
    Invalid(String),
    #[error("run {0} not found")]
    NotFound(String),
    /// The run's state does not allow it (e.g. retrying a run that has not failed).
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Compute(#[from] ComputeError),
    #[error(transparent)]
    Registry(#[from] crate::registry::RegistryError),
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
    #[error(transparent)]
    Monitor(#[from] crate::monitoring::MonitorError),
}

impl From<ConfigStoreError> for RunError {
    fn from(e: ConfigStoreError) -> Self {
        match e {
            ConfigStoreError::Invalid(_) | ConfigStoreError::Missing(_) => {
                RunError::Invalid(e.to_string())
            }
            ConfigStoreError::Storage(e) => RunError::Storage(e),
            ConfigStoreError::Audit(e) => RunError::Audit(e),
        }
    }
}

impl RunError {
    /// Whether the host should retry (and eventually dead-letter) the message.
    pub fn is_transient(&self) -> bool {
        match self {
            RunError::Invalid(_) | RunError::NotFound(_) | RunError::Conflict(_) => false,
            RunError::Storage(e) => e.is_transient() || !matches!(e, StorageError::NotFound { .. }),
            RunError::Compute(e) => e.is_transient(),
            RunError::Registry(_) | RunError::Audit(_) => true,
            RunError::Monitor(e) => e.is_transient(),
        }
    }

    /// How long the backend asked callers to wait before trying again, if it said.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            RunError::Compute(ComputeError::Unavailable { retry_after, .. }) => *retry_after,
            _ => None,
        }
    }
}

/// Where runs keep their records and files. Every run key is built here.
const RUNS: &str = "runs/";

/// A run's record, for an id Sluice made.
pub fn run_key(id: &str) -> ObjectKey {
    record_key(id).expect("run ids are valid key segments")
}

/// A run's record, for an id from outside (refused if it cannot be a key).
fn record_key(id: &str) -> Result<ObjectKey, StorageError> {
    ObjectKey::parse(format!("{RUNS}{id}.json"))
}

/// Whether a key under `runs/` is a run's record (not one of its files).
fn is_record(key: &ObjectKey) -> bool {
    key.as_str().matches('/').count() == 1 && key.as_str().ends_with(".json")
}

/// The training config a remote job reads, beside its run.
pub fn job_config_key(id: &str) -> Result<ObjectKey, StorageError> {
    ObjectKey::parse(format!("{RUNS}{id}/config.json"))
}

/// Where a request that can never succeed is set aside.
fn rejected_key(at: DateTime<Utc>) -> ObjectKey {
    ObjectKey::parse(format!(
        "rejected/{}-{}.json",
        at.format("%Y%m%dT%H%M%S%.3fZ"),
        uuid::Uuid::new_v4()
    ))
    .expect("valid key")
}

/// Where an attempt of a run keeps its files: attempt 1 directly under `runs/<id>/`
/// (where runs kept them before attempts existed), later ones under
/// `runs/<id>/attempts/<n>/`.
fn attempt_prefix(id: &str, attempt: u32) -> String {
    match attempt {
        0 | 1 => format!("{RUNS}{id}/"),
        n => format!("{RUNS}{id}/attempts/{n}/"),
    }
}

/// The folder an attempt's job must fill (`model.onnx`, `signature.json`, …).
pub fn output_prefix(id: &str, attempt: u32) -> String {
    format!("{}output/", attempt_prefix(id, attempt))
}

/// An attempt's training logs, where every backend that copies them puts them.
pub fn logs_key(id: &str, attempt: u32) -> Result<ObjectKey, StorageError> {
    ObjectKey::parse(format!("{}logs.txt", attempt_prefix(id, attempt)))
}

/// Where the runs of one dataset version are indexed, one small record per run, so the
/// question "what was trained on this data" reads those runs and no other.
fn trained_on_prefix(dataset: &DatasetName, version: u32) -> String {
    format!("index/runs/{dataset}/v{version}/")
}

fn trained_on_key(run: &Run) -> ObjectKey {
    ObjectKey::parse(format!(
        "{}{}.json",
        trained_on_prefix(&run.dataset, run.dataset_version),
        run.id
    ))
    .expect("run ids are valid key segments")
}

/// Written once every run of a store that predates the index is indexed.
fn trained_on_backfilled() -> ObjectKey {
    ObjectKey::parse("index/runs.backfilled.json").expect("valid key")
}

/// The backend's job name for an attempt: the run id, then `-a<n>` for retries, so a
/// resubmitted attempt addresses the same job and a retry a new one.
fn job_name(id: &str, attempt: u32) -> String {
    match attempt {
        0 | 1 => id.to_owned(),
        n => format!("{id}-a{n}"),
    }
}

/// The run id for an identity: the same model, data and config give the same id.
pub fn run_id(model: &ModelName, dataset_sha256: &str, config_sha256: &str) -> String {
    let digest = Sha256::digest(format!("{model}\n{dataset_sha256}\n{config_sha256}"));
    format!("run-{}", &hex::encode(digest)[..20])
}

fn merge(base: &mut serde_json::Value, overrides: &serde_json::Value) {
    match (base, overrides) {
        (serde_json::Value::Object(b), serde_json::Value::Object(o)) => {
            for (k, v) in o {
                merge(b.entry(k.clone()).or_insert(serde_json::Value::Null), v);
            }
        }
        (b, o) => *b = o.clone(),
    }
}

/// Runs, their backend and where they land.
#[derive(Clone)]
pub struct Runs {
    store: Arc<dyn ObjectStore>,
    compute: Arc<dyn Compute>,
    registry: Registry,
    configs: Configs,
    audit: AuditLog,
}

impl Runs {
    pub fn new(store: Arc<dyn ObjectStore>, compute: Arc<dyn Compute>) -> Self {
        Self {
            registry: Registry::new(store.clone()),
            configs: Configs::new(store.clone()),
            audit: AuditLog::new(store.clone()),
            store,
            compute,
        }
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The training configs runs are made from.
    pub fn configs(&self) -> &Configs {
        &self.configs
    }

    pub fn audit(&self) -> &AuditLog {
        &self.audit
    }

    /// Whether a new dataset version should retrain `config`'s model, and why.
    pub async fn retrain_decision(
        &self,
        config: &TrainingConfig,
        version: u32,
    ) -> Result<Option<String>, RunError> {
        use crate::training::config::RetrainPolicy;
        let dataset = &config.dataset;
        let threshold = match config.retrain {
            RetrainPolicy::Manual => return Ok(None),
            RetrainPolicy::EveryVersion => {
                return Ok(Some(format!("new version {version} of {dataset}")));
            }
            RetrainPolicy::Drift { threshold } => threshold,
        };
        // Compared with the data production was trained on, wherever that lies (the
        // config may have moved to another dataset since).
        let trained = match self
            .registry
            .resolve(&config.model, crate::registry::PRODUCTION)
            .await
        {
            Ok(v) => v.lineage,
            Err(crate::registry::RegistryError::NoAlias { .. }) => {
                return Ok(Some(format!(
                    "no production model yet; {dataset} v{version} is new"
                )));
            }
            Err(e) => return Err(e.into()),
        };
        let profile = |d: &DatasetName, v: u32| {
            let key = layout::manifest(d, v);
            async move {
                let (m, _): (Manifest, _) = get_json(self.store.as_ref(), &key).await?;
                Ok::<_, RunError>(m.profile)
            }
        };
        let old = profile(&trained.dataset, trained.dataset_version).await?;
        let new = profile(dataset, version).await?;
        let drifted: Vec<String> =
            crate::monitoring::drift::compare_profiles(&old, &new, threshold)
                .into_iter()
                .filter(|c| c.drifted)
                .map(|c| format!("{} {:.3}", c.column, c.value))
                .collect();
        Ok((!drifted.is_empty()).then(|| {
            format!(
                "{dataset} v{version} drifted from {} v{} (threshold {threshold}): {}",
                trained.dataset,
                trained.dataset_version,
                drifted.join(", ")
            )
        }))
    }

    /// Turns a request into a run (or finds the run it duplicates). Permanent problems
    /// come back as [`RequestOutcome::Rejected`], already recorded under `rejected/`.
    pub async fn request(
        &self,
        request: &RetrainRequest,
        trigger: &str,
        correlation_id: &str,
    ) -> Result<RequestOutcome, RunError> {
        match self.resolve(request, trigger, correlation_id).await {
            Ok(run) => self.create(run).await,
            Err(RunError::Invalid(reason)) => {
                let original = serde_json::to_value(request).unwrap_or_default();
                let record = self
                    .reject(&reason, trigger, correlation_id, original)
                    .await?;
                Ok(RequestOutcome::Rejected { reason, record })
            }
            Err(e) => Err(e),
        }
    }

    /// Sets aside a message that can never succeed, with its reason.
    pub async fn reject(
        &self,
        reason: &str,
        source: &str,
        correlation_id: &str,
        original: serde_json::Value,
    ) -> Result<ObjectKey, RunError> {
        let at = Utc::now();
        let key = rejected_key(at);
        let record = serde_json::json!({
            "reason": reason, "source": source, "correlation_id": correlation_id,
            "rejected_at": at, "message": original,
        });
        put_json(self.store.as_ref(), &key, &record, PutMode::Create).await?;
        self.audit
            .append(Entry {
                action: Action::RunRejected,
                actor: format!("sluice:{source}"),
                subject: key.to_string(),
                reason: reason.to_owned(),
                correlation_id: correlation_id.to_owned(),
                details: serde_json::Value::Null,
            })
            .await?;
        Ok(key)
    }

    async fn resolve(
        &self,
        req: &RetrainRequest,
        trigger: &str,
        correlation_id: &str,
    ) -> Result<Run, RunError> {
        let base = self.configs.get(&req.model).await?;
        let config =
            if req.config_overrides.is_null() || req.config_overrides == serde_json::json!({}) {
                base
            } else {
                let mut merged = serde_json::to_value(&base).expect("configs serialise");
                merge(&mut merged, &req.config_overrides);
                if merged["model"] != serde_json::json!(req.model.as_str()) {
                    return Err(RunError::Invalid(
                        "config_overrides cannot change the model".into(),
                    ));
                }
                TrainingConfig::from_json(merged.to_string().as_bytes())
                    .map_err(|e| RunError::Invalid(format!("config_overrides: {e}")))?
            };
        let dataset = req
            .dataset
            .clone()
            .unwrap_or_else(|| config.dataset.clone());
        if dataset != config.dataset {
            return Err(RunError::Invalid(format!(
                "model {} trains on {}, not {dataset}",
                req.model, config.dataset
            )));
        }
        let version = match req.dataset_version {
            DatasetVersion::Number(n) => n,
            DatasetVersion::Latest => {
                crate::dataset::ingest::latest_version(self.store.as_ref(), &dataset)
                    .await?
                    .ok_or_else(|| {
                        RunError::Invalid(format!("dataset {dataset} has no versions yet"))
                    })?
            }
        };
        let manifest: Manifest =
            match get_json(self.store.as_ref(), &layout::manifest(&dataset, version)).await {
                Ok((m, _)) => m,
                Err(StorageError::NotFound { .. }) => {
                    return Err(RunError::Invalid(format!(
                        "dataset {dataset} has no version {version}"
                    )));
                }
                Err(e) => return Err(e.into()),
            };
        let config_sha256 = config.sha256();
        Ok(Run {
            id: run_id(&req.model, &manifest.content_sha256, &config_sha256),
            model: req.model.clone(),
            dataset,
            dataset_version: version,
            dataset_sha256: manifest.content_sha256,
            source_uri: manifest.source.uri,
            config,
            config_sha256,
            trigger: trigger.to_owned(),
            requested_by: req.requested_by.clone(),
            reason: req.reason.clone(),
            correlation_id: correlation_id.to_owned(),
            status: RunStatus::Queued,
            compute: self.compute.name().to_owned(),
            job: None,
            created_at: Utc::now(),
            started_at: None,
            finished_at: None,
            error: None,
            model_version: None,
            attempt: 1,
            earlier_attempts: vec![],
        })
    }

    async fn create(&self, run: Run) -> Result<RequestOutcome, RunError> {
        // Indexed first: an index entry without its run is skipped when read.
        create_or_keep(
            self.store.as_ref(),
            &trained_on_key(&run),
            &serde_json::json!({}),
        )
        .await?;
        match put_json(
            self.store.as_ref(),
            &run_key(&run.id),
            &run,
            PutMode::Create,
        )
        .await
        {
            Ok(_) => {
                self.audit
                    .append(Entry {
                        action: Action::RunRequested,
                        actor: run.requested_by.clone(),
                        subject: format!("run:{}", run.id),
                        reason: run.reason.clone(),
                        correlation_id: run.correlation_id.clone(),
                        details: serde_json::json!({
                            "model": run.model, "dataset": run.dataset,
                            "dataset_version": run.dataset_version, "trigger": run.trigger,
                        }),
                    })
                    .await?;
                Ok(RequestOutcome::Accepted {
                    run: Box::new(run),
                    duplicate: false,
                })
            }
            Err(StorageError::AlreadyExists { .. }) => {
                let (existing, _) = self.get(&run.id).await?;
                Ok(RequestOutcome::Accepted {
                    run: Box::new(existing),
                    duplicate: true,
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    pub async fn get(&self, id: &str) -> Result<(Run, ETag), RunError> {
        let key = record_key(id).map_err(|_| RunError::NotFound(id.to_owned()))?;
        match get_json(self.store.as_ref(), &key).await {
            Ok(found) => Ok(found),
            Err(StorageError::NotFound { .. }) => Err(RunError::NotFound(id.to_owned())),
            Err(e) => Err(e.into()),
        }
    }

    /// Up to `limit` runs, newest first: those whose records changed last (a listing's
    /// dates, so only they are read), ordered by when they were created.
    pub async fn recent(&self, limit: usize) -> Result<Vec<Run>, RunError> {
        let mut records: Vec<_> = self
            .store
            .list(RUNS)
            .await?
            .into_iter()
            .filter(|m| is_record(&m.key))
            .collect();
        records.sort_by_key(|m| std::cmp::Reverse(m.last_modified));
        let mut out = Vec::new();
        for meta in records.into_iter().take(limit) {
            match get_json::<Run>(self.store.as_ref(), &meta.key).await {
                Ok((run, _)) => out.push(run),
                Err(StorageError::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        out.sort_by_key(|r| std::cmp::Reverse(r.created_at));
        Ok(out)
    }

    /// Every run of `dataset`'s version `version`, oldest first. A store written before
    /// the index is indexed the first time it is asked (once).
    pub async fn trained_on(
        &self,
        dataset: &DatasetName,
        version: u32,
    ) -> Result<Vec<Run>, RunError> {
        let marker = trained_on_backfilled();
        match self.store.head(&marker).await {
            Ok(_) => {}
            Err(StorageError::NotFound { .. }) => {
                for run in self.list().await? {
                    create_or_keep(
                        self.store.as_ref(),
                        &trained_on_key(&run),
                        &serde_json::json!({}),
                    )
                    .await?;
                }
                create_or_keep(
                    self.store.as_ref(),
                    &marker,
                    &serde_json::json!({"at": Utc::now()}),
                )
                .await?;
            }
            Err(e) => return Err(e.into()),
        }
        let mut out = Vec::new();
        for meta in self
            .store
            .list(&trained_on_prefix(dataset, version))
            .await?
        {
            let Some(id) = meta
                .key
                .as_str()
                .rsplit('/')
                .next()
                .and_then(|f| f.strip_suffix(".json"))
            else {
                continue;
            };
            match self.get(id).await {
                Ok((run, _)) => out.push(run),
                // Indexed before its record was written, by a request cut short.
                Err(RunError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        out.sort_by_key(|r| r.created_at);
        Ok(out)
    }

    /// The training command's output for an attempt of a run (`None` until a backend
    /// has copied it).
    pub async fn logs(&self, id: &str, attempt: u32) -> Result<Option<String>, RunError> {
        let key = logs_key(id, attempt)?;
        match self.store.get(&key).await {
            Ok(got) => Ok(Some(
                String::from_utf8_lossy(&got.bytes().await?).into_owned(),
            )),
            Err(StorageError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn list(&self) -> Result<Vec<Run>, RunError> {
        let mut out = Vec::new();
        for meta in self.store.list(RUNS).await? {
            if is_record(&meta.key) {
                out.push(get_json::<Run>(self.store.as_ref(), &meta.key).await?.0);
            }
        }
        out.sort_by_key(|r| r.created_at);
        Ok(out)
    }

    /// Applies `change` to the stored run with If-Match, re-reading on conflict; says
    /// whether it changed anything (`change` returns false to leave the run alone).
    async fn update(
        &self,
        id: &str,
        change: impl Fn(&mut Run) -> bool,
    ) -> Result<(Run, bool), RunError> {
        loop {
            let (mut run, etag) = self.get(id).await?;
            if !change(&mut run) {
                return Ok((run, false));
            }
            match put_json(
                self.store.as_ref(),
                &run_key(id),
                &run,
                PutMode::Update(etag),
            )
            .await
            {
                Ok(_) => return Ok((run, true)),
                Err(StorageError::Precondition { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Records a run's end once: status, error, model version, and a `run_finished`
    /// audit record.
    async fn settle(
        &self,
        id: &str,
        status: RunStatus,
        error: Option<String>,
        version: Option<u32>,
        actor: &str,
    ) -> Result<Run, RunError> {
        let (run, changed) = self
            .update(id, |r| {
                if r.status.is_final() {
                    return false;
                }
                r.status = status;
                r.error = error.clone();
                r.finished_at = Some(Utc::now());
                r.model_version = version.or(r.model_version);
                true
            })
            .await?;
        if changed {
            let name = serde_json::to_value(status).expect("statuses serialise");
            let name = name.as_str().unwrap_or("finished");
            self.audit
                .append(Entry {
                    action: Action::RunFinished,
                    actor: actor.to_owned(),
                    subject: format!("run:{id}"),
                    reason: error.map_or_else(|| name.to_owned(), |e| format!("{name}: {e}")),
                    correlation_id: run.correlation_id.clone(),
                    details: serde_json::json!({"model": run.model, "model_version": run.model_version, "status": name}),
                })
                .await?;
        }
        Ok(run)
    }

    /// Submits a queued run to the backend (once: a run with a job is left alone).
    pub async fn start(&self, id: &str) -> Result<Run, RunError> {
        let (run, _) = self.get(id).await?;
        if run.job.is_some() || run.status.is_final() {
            return Ok(run);
        }
        let spec = JobSpec {
            run_id: run.id.clone(),
            job_name: job_name(&run.id, run.attempt),
            logs_key: logs_key(&run.id, run.attempt)?,
            run_created_at: run.created_at,
            dataset: run.dataset.clone(),
            dataset_version: run.dataset_version,
            config: run.config.clone(),
            output_prefix: output_prefix(&run.id, run.attempt),
            timeout: std::time::Duration::from_secs(run.config.compute.timeout_minutes * 60),
            tags: [
                ("sluice.run_id".to_owned(), run.id.clone()),
                (
                    "sluice.dataset".to_owned(),
                    format!("{}@{}", run.dataset, run.dataset_version),
                ),
                ("sluice.trigger".to_owned(), run.trigger.clone()),
                ("sluice.attempt".to_owned(), run.attempt.to_string()),
            ]
            .into(),
        };
        let job = match self.compute.submit(&spec).await {
            Ok(job) => job,
            // The backend refused it for good (bad compute target, no such command):
            // the run fails with the reason instead of being resubmitted forever.
            Err(e) if !e.is_transient() => {
                return self
                    .fail(id, &format!("the compute backend refused the job: {e}"))
                    .await;
            }
            Err(e) => return Err(e.into()),
        };
        let (run, changed) = self
            .update(id, |r| {
                if r.job.is_some() {
                    return false;
                }
                r.job = Some(job.clone());
                r.status = RunStatus::Running;
                r.started_at = Some(Utc::now());
                true
            })
            .await?;
        if !changed {
            return Ok(run);
        }
        self.audit
            .append(Entry {
                action: Action::RunStarted,
                actor: format!("sluice:{}", self.compute.name()),
                subject: format!("run:{id}"),
                reason: format!("submitted as job {job}"),
                correlation_id: run.correlation_id.clone(),
                details: serde_json::json!({"model": run.model, "job": job, "compute": run.compute}),
            })
            .await?;
        Ok(run)
    }

    /// Asks the backend how the run's job is doing and, once it is over, records the
    /// outcome and registers the model. Returns the run and the version it registered
    /// (Some only on the call that registered it).
    pub async fn poll(&self, id: &str) -> Result<(Run, Option<ModelVersion>), RunError> {
        let (run, _) = self.get(id).await?;
        let Some(job) = run.job.clone() else {
            return Ok((run, None));
        };
        if run.status.is_final() {
            return Ok((run, None));
        }
        let status = match self.compute.status(&job).await {
            Ok(status) => status,
            Err(ComputeError::UnknownJob(_)) => JobStatus::Failed(format!(
                "the {} backend no longer knows job {job}",
                self.compute.name()
            )),
            Err(e) => return Err(e.into()),
        };
        let (final_status, error) = match &status {
            JobStatus::Queued | JobStatus::Running => return Ok((run, None)),
            JobStatus::Succeeded => (RunStatus::Succeeded, None),
            JobStatus::Failed(e) => (RunStatus::Failed, Some(e.clone())),
            JobStatus::Canceled => (RunStatus::Canceled, None),
        };
        let mut registered = None;
        let mut error = error;
        if final_status == RunStatus::Succeeded {
            match self.register(&run).await {
                Ok((v, new)) => registered = new.then_some(v),
                Err(RunError::Invalid(e)) => error = Some(e),
                Err(e) => return Err(e),
            }
        }
        let version = registered.as_ref().map(|v: &ModelVersion| v.version);
        let status = if error.is_some() {
            RunStatus::Failed
        } else {
            final_status
        };
        let actor = format!("sluice:{}", self.compute.name());
        let run = self.settle(id, status, error, version, &actor).await?;
        if let Some(v) = &registered {
            self.audit
                .append(Entry {
                    action: Action::ModelRegistered,
                    actor: run.requested_by.clone(),
                    subject: format!("model:{}@{}", v.model, v.version),
                    reason: format!("trained by {id}"),
                    correlation_id: run.correlation_id.clone(),
                    details: serde_json::json!({"model_sha256": v.model_sha256, "dataset_sha256": v.lineage.dataset_sha256}),
                })
                .await?;
        }
        Ok((run, registered))
    }

    /// Registers the run's outputs with their lineage (idempotent per run).
    async fn register(&self, run: &Run) -> Result<(ModelVersion, bool), RunError> {
        let prefix = output_prefix(&run.id, run.attempt);
        let read = |name: &'static str| {
            let key = ObjectKey::parse(format!("{prefix}{name}")).expect("valid key");
            async move {
                match self.store.get(&key).await {
                    Ok(got) => Ok(got.bytes().await?),
                    Err(StorageError::NotFound { .. }) => {
                        Err(RunError::Invalid(format!("the job wrote no {name}")))
                    }
                    Err(e) => Err(e.into()),
                }
            }
        };
        let parse = |name: &str, bytes: &[u8]| -> Result<serde_json::Value, RunError> {
            serde_json::from_slice(bytes)
                .map_err(|e| RunError::Invalid(format!("{name} is not JSON: {e}")))
        };
        let model_onnx = read(crate::training::trainer::MODEL_FILE).await?;
        let signature: crate::model::Signature =
            serde_json::from_value(parse("signature.json", &read("signature.json").await?)?)
                .map_err(|e| RunError::Invalid(format!("signature.json: {e}")))?;
        let metrics = serde_json::from_value(parse("metrics.json", &read("metrics.json").await?)?)
            .map_err(|e| RunError::Invalid(format!("metrics.json: {e}")))?;
        // A custom trainer may write no lineage.json, or only some of what the reference
        // trainer writes; the run knows the rest.
        let trained: Option<TrainerLineage> = match read("lineage.json").await {
            Ok(bytes) => serde_json::from_slice(&bytes).ok(),
            Err(_) => None,
        };
        let trained = trained.unwrap_or_default();
        let holdout: Option<Holdout> = match read(HOLDOUT_FILE).await {
            Ok(bytes) => Some(
                serde_json::from_slice(&bytes)
                    .map_err(|e| RunError::Invalid(format!("{HOLDOUT_FILE}: {e}")))?,
            ),
            Err(RunError::Invalid(_)) => None,
            Err(e) => return Err(e),
        };
        if let Some(holdout) = &holdout {
            // Rows that are not in the data would stop the gate later; refuse them now.
            let (manifest, _) = get_json::<Manifest>(
                self.store.as_ref(),
                &layout::manifest(&run.dataset, run.dataset_version),
            )
            .await?;
            holdout
                .indices(manifest.rows as usize)
                .map_err(|e| RunError::Invalid(format!("{HOLDOUT_FILE}: {e}")))?;
        }
        // Where to look at the job; lineage does without it if the backend cannot say.
        let job = match &run.job {
            Some(job) => self.compute.describe(job).await.unwrap_or_else(|e| {
                tracing::warn!(run = %run.id, error = %e, "the backend did not describe the job");
                None
            }),
            None => None,
        };
        let now = Utc::now();
        let lineage = Lineage {
            run_id: run.id.clone(),
            run_attempt: run.attempt,
            requested_by: run.requested_by.clone(),
            trigger: run.trigger.clone(),
            dataset: run.dataset.clone(),
            dataset_version: run.dataset_version,
            dataset_sha256: run.dataset_sha256.clone(),
            source_uri: run.source_uri.clone(),
            algorithm: trained
                .algorithm
                .unwrap_or_else(|| run.config.algorithm.as_str().to_owned()),
            hyperparameters: serde_json::to_value(&run.config.hyperparameters).unwrap_or_default(),
            seed: run.config.seed,
            config_sha256: run.config_sha256.clone(),
            code_version: trained
                .code_version
                .unwrap_or_else(|| "custom command".to_owned()),
            compute: if run.compute == "azureml" {
                format!("{} ({})", run.compute, run.config.compute.target)
            } else {
                run.compute.clone()
            },
            started_at: trained.started_at.unwrap_or(run.started_at.unwrap_or(now)),
            finished_at: trained.finished_at.unwrap_or(now),
            holdout: holdout.as_ref().map(HoldoutRef::of),
            job,
        };
        let tags = [("run".to_owned(), run.id.clone())].into();
        // The training data's profile for what the model reads and predicts, kept with
        // the version for monitoring.
        let (manifest, _): (Manifest, _) = get_json(
            self.store.as_ref(),
            &layout::manifest(&run.dataset, run.dataset_version),
        )
        .await?;
        let reference = manifest
            .profile
            .into_iter()
            .filter(|c| {
                c.name == signature.label || signature.inputs.iter().any(|i| i.name == c.name)
            })
            .collect();
        Ok(self
            .registry
            .register(
                &run.model,
                Artifacts {
                    model_onnx,
                    signature,
                    metrics,
                    holdout,
                    reference,
                },
                lineage,
                tags,
                run.reason.clone(),
            )
            .await?)
    }

    /// Marks a run failed with `error` (once) and records it.
    async fn fail(&self, id: &str, error: &str) -> Result<Run, RunError> {
        let actor = format!("sluice:{}", self.compute.name());
        self.settle(id, RunStatus::Failed, Some(error.to_owned()), None, &actor)
            .await
    }

    /// Starts the next attempt of a failed or canceled run: the same identity, config
    /// and data, a new job with its own logs, output and times; the attempt that ended is
    /// kept in `earlier_attempts`. The backend gets the job on [`start`](Self::start)
    /// (the caller's, or the runs timer's). Any other run is a [`RunError::Conflict`].
    /// An empty `reason` is recorded as "retry requested".
    pub async fn retry(
        &self,
        id: &str,
        actor: &str,
        reason: &str,
        correlation_id: &str,
    ) -> Result<Run, RunError> {
        let (run, changed) = self
            .update(id, |r| {
                if !matches!(r.status, RunStatus::Failed | RunStatus::Canceled) {
                    return false;
                }
                r.earlier_attempts.push(Attempt {
                    attempt: r.attempt,
                    status: r.status,
                    job: r.job.take(),
                    started_at: r.started_at.take(),
                    finished_at: r.finished_at.take(),
                    error: r.error.take(),
                });
                r.attempt += 1;
                r.status = RunStatus::Queued;
                r.model_version = None;
                true
            })
            .await?;
        if !changed {
            let status = serde_json::to_value(run.status).expect("statuses serialise");
            return Err(RunError::Conflict(format!(
                "run {id} is {}: only a failed or canceled run can be tried again",
                status.as_str().unwrap_or("not over")
            )));
        }
        self.audit
            .append(Entry {
                action: Action::RunRetried,
                actor: actor.to_owned(),
                subject: format!("run:{id}"),
                reason: if reason.is_empty() {
                    "retry requested".into()
                } else {
                    reason.to_owned()
                },
                correlation_id: correlation_id.to_owned(),
                details: serde_json::json!({"model": run.model, "attempt": run.attempt}),
            })
            .await?;
        Ok(run)
    }

    /// Cancels the run's job (a queued run is simply marked canceled).
    pub async fn cancel(&self, id: &str, actor: &str) -> Result<Run, RunError> {
        let (run, _) = self.get(id).await?;
        if run.status.is_final() {
            return Ok(run);
        }
        if let Some(job) = &run.job {
            self.compute.cancel(job).await?;
        }
        self.settle(id, RunStatus::Canceled, None, None, actor)
            .await
    }
}

#[cfg(test)]
mod tests;

/// What the registry takes from a trainer's `lineage.json`: the reference trainer writes
/// a full [`TrainingLineage`](crate::training::trainer::TrainingLineage); a custom one may write any of these fields, or none.
#[derive(Debug, Default, Deserialize)]
struct TrainerLineage {
    algorithm: Option<String>,
    code_version: Option<String>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
}
