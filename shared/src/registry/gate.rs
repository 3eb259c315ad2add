//! The evaluation gate and the staged promotion it drives, run when a model version is
//! registered: signature check, evaluation of candidate and production with ONNX Runtime
//! on the config's pinned evaluation data or, when it pins none, on the rows the
//! candidate's run held out, the policy's verdict, then `staging`, a smoke test through
//! the scoring path, and `production` (at once, or after an approval). A candidate with
//! neither fails the gate, saying so.
//!
//! Each version is judged once: the verdict is written create-only beside the version
//! (`gate.json`), so a redelivered registry event repeats nothing.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::promotion::{Change, Evaluation, GateRecord, ReleaseError, Releases, Verdict, judge};
use super::{
    ModelName, ModelVersion, PRODUCTION, Registry, RegistryError, Release, STAGING, gate_key,
};
use crate::audit::{Action, AuditLog, Entry};
use crate::dataset::DatasetName;
use crate::dataset::fetch::{FetchError, fetch_version};
use crate::model::{ModelSession, Runtime, Table};
use crate::storage::{ObjectStore, PutMode, StorageError, put_json};
use crate::training::config::{Approval, TrainingConfig};
use crate::training::configs::{ConfigStoreError, Configs};
use crate::training::trainer::{Holdout, VerifyError, evaluate};

#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
    #[error("evaluation failed: {0}")]
    Evaluation(#[from] VerifyError),
    #[error("{0}")]
    Invalid(String),
    #[error("reading evaluation data: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Release(#[from] ReleaseError),
}

pub struct Gate {
    registry: Registry,
    releases: Releases,
    configs: Configs,
    audit: AuditLog,
    runtime: &'static Runtime,
    scratch: PathBuf,
}

impl Gate {
    pub fn new(store: Arc<dyn ObjectStore>, runtime: &'static Runtime, scratch: PathBuf) -> Self {
        Self {
            registry: Registry::new(store.clone()),
            releases: Releases::new(store.clone()),
            configs: Configs::new(store.clone()),
            audit: AuditLog::new(store),
            runtime,
            scratch,
        }
    }

    fn store(&self) -> &dyn ObjectStore {
        self.registry.store().as_ref()
    }

    async fn config(&self, model: &ModelName) -> Result<TrainingConfig, GateError> {
        match self.configs.get(model).await {
            Ok(c) => Ok(c),
            Err(ConfigStoreError::Missing(_)) => Err(GateError::Invalid(format!(
                "model {model} has no training config, so no evaluation policy"
            ))),
            Err(ConfigStoreError::Storage(e)) => Err(e.into()),
            Err(e) => Err(GateError::Invalid(e.to_string())),
        }
    }

    /// Loads `version` and runs `work` with it on the blocking pool: loading a model and
    /// scoring a dataset take long enough to stall the HTTP thread that serves `Score`.
    async fn with_session<T: Send + 'static>(
        &self,
        version: &ModelVersion,
        work: impl FnOnce(&ModelSession) -> Result<T, GateError> + Send + 'static,
    ) -> Result<T, GateError> {
        let bytes = self
            .registry
            .model_bytes(&version.model, version.version)
            .await?;
        let (runtime, signature) = (self.runtime, version.signature.clone());
        tokio::task::spawn_blocking(move || {
            let session = ModelSession::new(runtime, &bytes, signature)
                .map_err(|e| GateError::Evaluation(e.into()))?;
            work(&session)
        })
        .await
        .map_err(|e| GateError::Invalid(format!("the evaluation stopped: {e}")))?
    }

    /// Copies a dataset version's manifest and snapshot to local scratch.
    async fn fetch(
        &self,
        dataset: &DatasetName,
        version: u32,
        dir: &Path,
    ) -> Result<(), GateError> {
        match fetch_version(self.store(), dataset, version, dir).await {
            Ok(_) => Ok(()),
            Err(FetchError::Storage(StorageError::NotFound { .. })) => Err(GateError::Invalid(
                format!("the evaluation dataset {dataset}@{version} does not exist"),
            )),
            Err(FetchError::Storage(e)) => Err(e.into()),
            Err(FetchError::Io(e)) => Err(e.into()),
        }
    }

    /// Which rows the candidate is judged on: the config's pinned evaluation dataset, or
    /// else the rows its run held out (production is then scored on the same rows). Err
    /// is the reason there are none, for the verdict.
    async fn choose_evaluation(
        &self,
        config: &TrainingConfig,
        candidate: &ModelVersion,
        production: Option<&ModelVersion>,
    ) -> Result<Result<(Evaluation, Option<Holdout>), String>, GateError> {
        if let Some(eval) = &config.evaluation {
            let pinned = Evaluation::Pinned {
                dataset: eval.dataset.clone(),
                version: eval.version,
            };
            return Ok(Ok((pinned, None)));
        }
        let lineage = &candidate.lineage;
        let Some(holdout) = self
            .registry
            .holdout(&candidate.model, candidate.version)
            .await?
        else {
            return Ok(Err(format!(
                "no evaluation data: the config pins no evaluation dataset and {} kept no \
                 holdout ({})",
                lineage.run_id,
                crate::training::trainer::HOLDOUT_FILE
            )));
        };
        let same_as_production = production.map(|p| {
            p.lineage.dataset_sha256 == lineage.dataset_sha256
                && p.lineage.holdout.as_ref().map(|h| &h.sha256)
                    == lineage.holdout.as_ref().map(|h| &h.sha256)
        });
        let kept = Evaluation::Holdout {
            dataset: lineage.dataset.clone(),
            version: lineage.dataset_version,
            run_id: lineage.run_id.clone(),
            same_as_production,
        };
        Ok(Ok((kept, Some(holdout))))
    }

    /// Judges a newly registered version and promotes it as far as the policy allows.
    pub async fn on_registered(
        &self,
        model: &ModelName,
        version: u32,
        correlation_id: &str,
    ) -> Result<GateRecord, GateError> {
        if let Ok(Some(done)) = self.releases.gate_record(model, version).await {
            return Ok(done);
        }
        let candidate = self.registry.version(model, version).await?;
        let config = self.config(model).await?;
        let production = match self.registry.resolve(model, PRODUCTION).await {
            Ok(p) => Some(p),
            Err(RegistryError::NoAlias { .. }) => None,
            Err(e) => return Err(e.into()),
        };
        // The evaluation data is fetched once, for the verdict and the smoke test.
        let data = tempfile::tempdir_in(&self.scratch)?;
        let verdict = match self
            .choose_evaluation(&config, &candidate, production.as_ref())
            .await?
        {
            Ok((evaluation, holdout)) => {
                let (dataset, dataset_version) = evaluation.data();
                self.fetch(dataset, dataset_version, data.path()).await?;
                self.judge(
                    &config,
                    &candidate,
                    production.as_ref(),
                    data.path(),
                    evaluation,
                    holdout,
                )
                .await?
            }
            // Nothing to judge on: a failed verdict that says so, not a silent stall.
            Err(reason) => Verdict {
                passed: false,
                reasons: vec![reason],
                metric: config.promotion_metric(candidate.signature.task).to_owned(),
                candidate: candidate.metrics.clone(),
                production: None,
                production_version: production.as_ref().map(|p| p.version),
                evaluation: None,
            },
        };
        let subject = format!("model:{model}@{version}");
        self.audit
            .append(Entry {
                action: if verdict.passed {
                    Action::GatePassed
                } else {
                    Action::GateFailed
                },
                actor: "sluice:gate".into(),
                subject: subject.clone(),
                reason: if verdict.passed {
                    format!(
                        "{} {:.4} on {}",
                        verdict.metric,
                        verdict.candidate.get(&verdict.metric).unwrap_or(f64::NAN),
                        verdict
                            .evaluation
                            .as_ref()
                            .map_or_else(String::new, ToString::to_string)
                    )
                } else {
                    verdict.reasons.join("; ")
                },
                correlation_id: correlation_id.to_owned(),
                details: serde_json::to_value(&verdict).unwrap_or_default(),
            })
            .await?;
        let mut outcome = GateRecord {
            model: model.clone(),
            version,
            verdict,
            releases: vec![],
            awaiting_approval: false,
        };
        if outcome.verdict.passed {
            let gate = serde_json::to_value(&outcome.verdict).unwrap_or_default();
            let staged = self
                .release(
                    model,
                    STAGING,
                    version,
                    "passed the evaluation gate",
                    gate.clone(),
                    correlation_id,
                )
                .await?;
            outcome.releases.push(staged);
            self.smoke_test(model, data.path()).await?;
            if config.promotion.approval == Approval::Auto {
                let released = self
                    .release(
                        model,
                        PRODUCTION,
                        version,
                        "passed the gate and the staging smoke test",
                        gate,
                        correlation_id,
                    )
                    .await?;
                outcome.releases.push(released);
            } else {
                outcome.awaiting_approval = true;
                self.audit
                    .append(Entry {
                        action: Action::AwaitingApproval,
                        actor: "sluice:gate".into(),
                        subject: subject.clone(),
                        reason: format!("{model}@{version} waits in staging for approval"),
                        correlation_id: correlation_id.to_owned(),
                        details: serde_json::json!({"model": model, "version": version}),
                    })
                    .await?;
            }
        }
        match put_json(
            self.store(),
            &gate_key(model, version),
            &outcome,
            PutMode::Create,
        )
        .await
        {
            Ok(_) | Err(StorageError::AlreadyExists { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        Ok(outcome)
    }

    async fn judge(
        &self,
        config: &TrainingConfig,
        candidate: &ModelVersion,
        production: Option<&ModelVersion>,
        data: &Path,
        evaluation: Evaluation,
        holdout: Option<Holdout>,
    ) -> Result<Verdict, GateError> {
        let mut reasons = Vec::new();
        if let Some(p) = production {
            reasons.extend(
                candidate
                    .signature
                    .incompatibilities(&p.signature)
                    .into_iter()
                    .map(|r| format!("signature: {r}")),
            );
        }
        let evaluated = |data: PathBuf, holdout: Option<Holdout>| {
            move |s: &ModelSession| Ok(evaluate(s, &data, holdout.as_ref())?)
        };
        let scored = self
            .with_session(candidate, evaluated(data.to_owned(), holdout.clone()))
            .await?;
        let baseline = match production {
            Some(p) if reasons.is_empty() => Some(
                self.with_session(p, evaluated(data.to_owned(), holdout))
                    .await?,
            ),
            _ => None,
        };
        let metric = config.promotion_metric(candidate.signature.task);
        reasons.extend(judge(&config.promotion, metric, &scored, baseline.as_ref()));
        Ok(Verdict {
            passed: reasons.is_empty(),
            reasons,
            metric: metric.to_owned(),
            candidate: scored,
            production: baseline,
            production_version: production.map(|p| p.version),
            evaluation: Some(evaluation),
        })
    }

    /// Scores sample rows with the model `staging` resolves to, loaded from the registry
    /// as the scorer loads it: a classifier's outputs must be finite probabilities summing
    /// to one, a regression model's finite values, one per row.
    async fn smoke_test(&self, model: &ModelName, data: &Path) -> Result<(), GateError> {
        let staged = self.registry.resolve(model, STAGING).await?;
        let (signature, data) = (staged.signature.clone(), data.to_owned());
        let sane = self
            .with_session(&staged, move |session| {
                let manifest: crate::dataset::Manifest =
                    serde_json::from_slice(&std::fs::read(data.join("manifest.json"))?)
                        .map_err(|e| GateError::Invalid(e.to_string()))?;
                let columns: Vec<_> = signature
                    .inputs
                    .iter()
                    .map(|i| {
                        let kind = manifest
                            .schema
                            .iter()
                            .find(|f| f.name == i.name)
                            .map_or(i.kind, |f| f.kind);
                        (i.name.clone(), kind)
                    })
                    .collect();
                let table = Table::read_parquet(&data.join("data.parquet"), &columns)
                    .map_err(|e| GateError::Invalid(e.to_string()))?;
                let sample = table.take(&(0..table.rows().min(5)).collect::<Vec<_>>());
                let predictions = session
                    .predict(&sample)
                    .map_err(|e| GateError::Evaluation(e.into()))?;
                if signature.task == crate::model::Task::Regression {
                    return Ok(predictions.values.len() == sample.rows()
                        && predictions.values.iter().all(|v| v.is_finite()));
                }
                Ok(predictions.labels.len() == sample.rows()
                    && predictions.probabilities.iter().all(|p| {
                        p.iter().all(|x| x.is_finite() && (0.0..=1.0).contains(x))
                            && (p.iter().sum::<f64>() - 1.0).abs() < 1e-6
                    }))
            })
            .await?;
        if sane {
            Ok(())
        } else {
            Err(GateError::Invalid(format!(
                "the staging smoke test of {model}@{} failed",
                staged.version
            )))
        }
    }

    /// A release the gate makes, as `sluice:gate`.
    async fn release(
        &self,
        model: &ModelName,
        alias: &str,
        version: u32,
        reason: &str,
        gate: serde_json::Value,
        correlation_id: &str,
    ) -> Result<Release, GateError> {
        let change = Change {
            actor: "sluice:gate",
            reason,
            correlation_id,
        };
        Ok(self
            .releases
            .release(model, alias, version, gate, change)
            .await?)
    }
}
