//! Answers to the questions people ask of the registry, one function each, so the HTTP
//! API and the CLI give the same answer however they render it: which models there are
//! and where their aliases point, a model's versions (with the gate's verdicts) and
//! releases, and a version's lineage (model → run → dataset version → upload, and its
//! releases). The web console renders the same answers.

use serde::Serialize;

pub mod datasets;

use crate::dataset::{Manifest, layout};
use crate::model::Task;
use crate::monitoring::Monitor;
use crate::monitoring::live::Logged;
use crate::registry::promotion::{GateRecord, ReleaseError, Releases};
use crate::registry::{
    ModelName, ModelVersion, PRODUCTION, Registry, RegistryError, Release, STAGING,
};
use crate::runs::{Run, RunError, Runs};
use crate::storage::{StorageError, get_json};

/// A model at a glance.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModelSummary {
    pub model: ModelName,
    /// What its newest version predicts (None before its first version).
    pub task: Option<Task>,
    pub versions: Vec<u32>,
    pub production: Option<Release>,
    pub staging: Option<Release>,
}

/// Every model in the registry, by name (one listing of the registry for all of them).
pub async fn models(registry: &Registry) -> Result<Vec<ModelSummary>, RegistryError> {
    let mut out = Vec::new();
    for (model, versions) in registry.all_versions().await? {
        let release = |alias: &'static str| {
            let (registry, model) = (registry.clone(), model.clone());
            async move {
                let alias = registry.alias(&model, alias).await?;
                Ok::<_, RegistryError>(alias.map(|(a, _)| a.release))
            }
        };
        let task = match versions.last() {
            Some(&newest) => Some(registry.version(&model, newest).await?.signature.task),
            None => None,
        };
        out.push(ModelSummary {
            task,
            versions,
            production: release(PRODUCTION).await?,
            staging: release(STAGING).await?,
            model,
        });
    }
    Ok(out)
}

/// A model's versions and every release of them, oldest first.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModelHistory {
    pub model: ModelName,
    pub versions: Vec<u32>,
    pub releases: Vec<Release>,
}

pub async fn history(
    registry: &Registry,
    model: &ModelName,
) -> Result<ModelHistory, RegistryError> {
    Ok(ModelHistory {
        model: model.clone(),
        versions: registry.versions(model).await?,
        releases: registry.releases(model).await?,
    })
}

/// A version as a model's page lists it: its metrics and what the gate made of it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct VersionSummary {
    pub version: ModelVersion,
    /// The gate's record (None for a version that never went through it).
    pub gate: Option<GateRecord>,
}

/// The newest `limit` versions of `model`, newest first, with their gate records (only
/// those are read), and how many versions it has in all.
pub async fn versions(
    registry: &Registry,
    model: &ModelName,
    limit: usize,
) -> Result<(Vec<VersionSummary>, usize), ReleaseError> {
    let releases = Releases::new(registry.store().clone());
    let all = registry.versions(model).await?;
    let mut out = Vec::new();
    for &v in all.iter().rev().take(limit) {
        out.push(VersionSummary {
            version: registry.version(model, v).await?,
            gate: releases.gate_record(model, v).await?,
        });
    }
    Ok((out, all.len()))
}

/// Two versions of a model side by side: each one's metrics, and how the second's
/// signature differs from the first's.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    pub a: ModelVersion,
    pub b: ModelVersion,
    /// The metrics of either's task, in the task's order: (a's, b's).
    pub metrics: Vec<(String, Option<f64>, Option<f64>)>,
    pub signature: Vec<String>,
}

pub async fn compare(
    registry: &Registry,
    model: &ModelName,
    a: u32,
    b: u32,
) -> Result<Comparison, RegistryError> {
    let (a, b) = (
        registry.version(model, a).await?,
        registry.version(model, b).await?,
    );
    let mut names: Vec<&str> = a.signature.task.metrics().to_vec();
    for n in b.signature.task.metrics() {
        if !names.contains(n) {
            names.push(n);
        }
    }
    let metrics = names
        .into_iter()
        .map(|n| (n.to_owned(), a.metrics.get(n), b.metrics.get(n)))
        .collect();
    let signature = a.signature.differences(&b.signature);
    Ok(Comparison {
        a,
        b,
        metrics,
        signature,
    })
}

/// Where a model version came from, as far as the store still knows it.
#[derive(Clone, Debug, PartialEq)]
pub struct VersionLineage {
    /// The version, with the lineage recorded when it was registered.
    pub version: ModelVersion,
    /// The run that trained it (None if its record is gone).
    pub run: Option<Run>,
    /// The manifest of the dataset version it was trained on (None if it is gone: the
    /// lineage's dataset fields still name it).
    pub dataset: Option<Manifest>,
    /// Every release of this version, oldest first.
    pub releases: Vec<Release>,
}

pub async fn lineage(
    runs: &Runs,
    model: &ModelName,
    version: u32,
) -> Result<VersionLineage, RunError> {
    let registry = runs.registry();
    let found = registry.version(model, version).await?;
    let run = match runs.get(&found.lineage.run_id).await {
        Ok((run, _)) => Some(run),
        Err(RunError::NotFound(_)) => None,
        Err(e) => return Err(e),
    };
    let l = &found.lineage;
    let key = layout::manifest(&l.dataset, l.dataset_version);
    let dataset = match get_json::<Manifest>(registry.store().as_ref(), &key).await {
        Ok((manifest, _)) => Some(manifest),
        Err(StorageError::NotFound { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    let releases = registry
        .releases(model)
        .await?
        .into_iter()
        .filter(|r| r.version == version)
        .collect();
    Ok(VersionLineage {
        version: found,
        run,
        dataset,
        releases,
    })
}

/// Where a logged prediction came from: the version that made it, that version's
/// lineage, and the production release that served it when it was made.
#[derive(Clone, Debug, PartialEq)]
pub struct PredictionLineage {
    pub prediction: Logged,
    pub lineage: VersionLineage,
    /// Production's release at the time (None if the version answered as another alias,
    /// or before any release).
    pub served_by: Option<Release>,
}

/// The lineage of the prediction logged for `request_id` (looked for from `now` back
/// `lookback_days`); `None` when the prediction log does not have it.
pub async fn prediction_lineage(
    runs: &Runs,
    model: &ModelName,
    request_id: &str,
    now: chrono::DateTime<chrono::Utc>,
    lookback_days: i64,
) -> Result<Option<PredictionLineage>, RunError> {
    let monitor = Monitor::new(runs.registry().store().clone());
    let Some(prediction) = monitor
        .logged_prediction(model, request_id, now, lookback_days)
        .await?
    else {
        return Ok(None);
    };
    let lineage = lineage(runs, model, prediction.model_version).await?;
    let served_by = runs
        .registry()
        .release_at(model, PRODUCTION, prediction.scored_at)
        .await?
        .filter(|r| r.version == prediction.model_version);
    Ok(Some(PredictionLineage {
        prediction,
        lineage,
        served_by,
    }))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::registry::NewRelease;
    use crate::registry::tests::{artifacts, lineage as recorded};
    use crate::runs::local::LocalCompute;
    use crate::storage::ObjectStore;
    use crate::storage::local::LocalStore;

    #[tokio::test]
    async fn the_answers_follow_the_registry_and_say_what_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(LocalStore::new(dir.path()).unwrap());
        let compute = LocalCompute::new(store.clone(), dir.path().join("jobs"), "sluice".into());
        let runs = Runs::new(store, Arc::new(compute));
        let registry = runs.registry();
        let model = ModelName::parse("m").unwrap();
        assert_eq!(models(registry).await.unwrap(), []);
        for run in ["run-a", "run-b"] {
            let (tags, description) = (Default::default(), String::new());
            registry
                .register(&model, artifacts(run), recorded(run), tags, description)
                .await
                .unwrap();
        }
        let to = |alias: &str, version| NewRelease {
            alias: alias.into(),
            version,
            actor: "ann".into(),
            reason: "test".into(),
            gate: serde_json::Value::Null,
            rolls_back: None,
        };
        registry
            .release(&model, to(PRODUCTION, 1), None)
            .await
            .unwrap();
        registry
            .release(&model, to(STAGING, 2), None)
            .await
            .unwrap();

        let listed = models(registry).await.unwrap();
        assert_eq!(listed.len(), 1);
        let m = &listed[0];
        assert_eq!((m.task, &m.versions[..]), (Some(Task::Binary), &[1, 2][..]));
        assert_eq!(m.production.as_ref().map(|r| r.version), Some(1));
        assert_eq!(m.staging.as_ref().map(|r| r.id.as_str()), Some("staging.1"));
        let h = history(registry, &model).await.unwrap();
        assert_eq!((h.versions, h.releases.len()), (vec![1, 2], 2));

        // Neither the run's record nor the dataset version is in this store: the lineage
        // says so instead of failing, and keeps what the version recorded.
        let found = lineage(&runs, &model, 1).await.unwrap();
        assert_eq!((found.run, found.dataset), (None, None));
        assert_eq!(found.version.lineage.run_id, "run-a");
        assert_eq!(found.releases.len(), 1, "only version 1's releases");
        assert!(matches!(
            lineage(&runs, &model, 9).await,
            Err(RunError::Registry(RegistryError::NoVersion {
                version: 9,
                ..
            }))
        ));
    }
}
