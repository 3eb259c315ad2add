//! The training config store: each model's current config (`configs/<model>.json`), and
//! every version of it (`configs/<model>/v<N>.json`, create-only, each an audit record),
//! checked against its dataset's contract and task when it is stored.

use std::sync::Arc;

use crate::audit::{Action, AuditLog, Entry};
use crate::dataset::contract::{ContractStoreError, Contracts};
use crate::dataset::{DatasetName, Manifest, layout};
use crate::name::ModelName;
use crate::storage::{ObjectKey, ObjectStore, PutMode, StorageError, get_json, put_json};

use super::TrainingConfig;

/// Where the configs live.
const ROOT: &str = "configs/";

/// A model's current config.
pub fn current_key(model: &ModelName) -> ObjectKey {
    ObjectKey::parse(format!("{ROOT}{model}.json")).expect("valid key")
}

/// Where the versions of a model's config are kept.
fn versions_prefix(model: &ModelName) -> String {
    format!("{ROOT}{model}/")
}

fn version_key(model: &ModelName, version: u32) -> ObjectKey {
    ObjectKey::parse(format!("{}v{version}.json", versions_prefix(model))).expect("valid key")
}

/// A training config as stored: what was stored and its version.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredConfig {
    pub config: TrainingConfig,
    pub version: u32,
    /// False when the same config was already the current one (nothing was written).
    pub changed: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigStoreError {
    /// Refused as sent; the message starts with the field it is about.
    #[error("{0}")]
    Invalid(String),
    #[error("model {0:?} has no training config (configs/{0}.json)")]
    Missing(ModelName),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
}

impl ConfigStoreError {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            ConfigStoreError::Invalid(_) | ConfigStoreError::Missing(_) => false,
            ConfigStoreError::Storage(e) => {
                e.is_transient() || !matches!(e, StorageError::NotFound { .. })
            }
            ConfigStoreError::Audit(_) => true,
        }
    }
}

/// The per-model training configs.
#[derive(Clone)]
pub struct Configs {
    store: Arc<dyn ObjectStore>,
    audit: AuditLog,
}

impl Configs {
    pub fn new(store: Arc<dyn ObjectStore>) -> Self {
        Self {
            audit: AuditLog::new(store.clone()),
            store,
        }
    }

    /// Stores a model's training config (what `sluice dev` does with `configs/*.json`, `sluice models put` and
    /// `PUT /api/models/{name}/config`),
    /// checked against what is known of its dataset: its label and features must be
    /// columns of the dataset's contract, and a config that names no task gets the one
    /// its label implies (from the contract, else the newest version's data; if neither
    /// exists yet, the trainer decides from the data it trains on). A config whose
    /// promotion metric does not fit its task is refused here. Each stored config is a
    /// new version (`configs/<model>/v<N>.json`, create-only) and an audit record; storing
    /// the current config again changes nothing, so a redelivery or a restart is harmless.
    pub async fn put(
        &self,
        config: &TrainingConfig,
        actor: &str,
        correlation_id: &str,
    ) -> Result<StoredConfig, ConfigStoreError> {
        let mut config = config.clone();
        let store = self.store.as_ref();
        let contract = Contracts::new(self.store.clone())
            .current(&config.dataset)
            .await
            .map_err(|e| match e {
                ContractStoreError::Storage(s) => ConfigStoreError::Storage(s),
                other => ConfigStoreError::Invalid(other.to_string()),
            })?;
        let mut inferred = None;
        if let Some(contract) = &contract {
            let columns = contract.column_names();
            let missing = |field: &str, name: &str| {
                ConfigStoreError::Invalid(format!(
                    "{field}: {name:?} is not a column of {}'s contract v{} ({})",
                    config.dataset,
                    contract.version,
                    columns.join(", ")
                ))
            };
            let label = contract
                .columns
                .iter()
                .find(|c| c.name == config.label)
                .ok_or_else(|| missing("label", &config.label))?;
            for name in config.features.iter().flatten() {
                if !columns.contains(&name.as_str()) {
                    return Err(missing("features", name));
                }
            }
            let declared = contract
                .label
                .as_ref()
                .filter(|l| l.column == config.label)
                .map(|l| l.values.len())
                .or(label.allowed.as_ref().map(Vec::len));
            inferred = crate::model::Task::infer(label.kind, declared, None).ok();
        }
        if config.task().is_none()
            && inferred.is_none()
            && let Some(version) =
                crate::dataset::ingest::latest_version(store, &config.dataset).await?
        {
            let (m, _): (Manifest, _) =
                get_json(store, &layout::manifest(&config.dataset, version)).await?;
            let kind = m
                .schema
                .iter()
                .find(|f| f.name == config.label)
                .map(|f| f.kind);
            let distinct = m
                .profile
                .iter()
                .find(|p| p.name == config.label)
                .map(|p| p.distinct);
            if let Some(kind) = kind {
                inferred = crate::model::Task::infer(kind, None, distinct).ok();
            }
        }
        if let (Some(said), Some(found)) = (config.task(), inferred)
            && said != found
            && said.is_classification()
            && found.is_classification()
        {
            return Err(ConfigStoreError::Invalid(format!(
                "task: the config's task is {said}, but {}'s contract gives {:?} {found} labels",
                config.dataset, config.label
            )));
        }
        if let Some(task) = config.task().or(inferred) {
            config
                .resolve_task(task)
                .map_err(|e| ConfigStoreError::Invalid(e.to_string()))?;
        }
        let model = config.model.clone();
        let versions = self.versions(&model).await?;
        if let Some(&latest) = versions.last() {
            let (current, _): (TrainingConfig, _) =
                get_json(store, &version_key(&model, latest)).await?;
            if current.sha256() == config.sha256() {
                // Make sure the current pointer says so (a crash may have cut it short).
                put_json(store, &current_key(&model), &config, PutMode::Overwrite).await?;
                return Ok(StoredConfig {
                    config,
                    version: latest,
                    changed: false,
                });
            }
        }
        let mut version = versions.last().copied().unwrap_or(0) + 1;
        loop {
            match put_json(
                store,
                &version_key(&model, version),
                &config,
                PutMode::Create,
            )
            .await
            {
                Ok(_) => break,
                Err(StorageError::AlreadyExists { .. }) => version += 1,
                Err(e) => return Err(e.into()),
            }
        }
        put_json(store, &current_key(&model), &config, PutMode::Overwrite).await?;
        self.audit
            .append(Entry {
                action: Action::ConfigStored,
                actor: actor.to_owned(),
                subject: format!("config:{model}@{version}"),
                reason: format!(
                    "training config v{version} ({})",
                    config
                        .task()
                        .map_or("task decided by its data", |t| t.as_str())
                ),
                correlation_id: correlation_id.to_owned(),
                details: serde_json::json!({"config_sha256": config.sha256()}),
            })
            .await?;
        Ok(StoredConfig {
            config,
            version,
            changed: true,
        })
    }

    /// The stored versions of a model's training config, ascending.
    pub async fn versions(&self, model: &ModelName) -> Result<Vec<u32>, ConfigStoreError> {
        let prefix = versions_prefix(model);
        let mut out: Vec<u32> = self
            .store
            .list(&prefix)
            .await?
            .iter()
            .filter_map(|m| {
                let name = m.key.as_str().strip_prefix(&prefix)?;
                name.strip_prefix('v')?.strip_suffix(".json")?.parse().ok()
            })
            .collect();
        out.sort_unstable();
        Ok(out)
    }

    /// A model's current training config.
    pub async fn get(&self, model: &ModelName) -> Result<TrainingConfig, ConfigStoreError> {
        match get_json(self.store.as_ref(), &current_key(model)).await {
            Ok((c, _)) => Ok(c),
            Err(StorageError::NotFound { .. }) => Err(ConfigStoreError::Missing(model.clone())),
            Err(e) => Err(e.into()),
        }
    }

    /// Every model whose config trains on `dataset`.
    pub async fn subscribers(
        &self,
        dataset: &DatasetName,
    ) -> Result<Vec<TrainingConfig>, ConfigStoreError> {
        let mut all = self.all().await?;
        all.retain(|c| &c.dataset == dataset);
        Ok(all)
    }

    /// Every model's current config.
    pub async fn all(&self) -> Result<Vec<TrainingConfig>, ConfigStoreError> {
        let mut out = Vec::new();
        for meta in self.store.list(ROOT).await? {
            // The current configs only, not their versions (`configs/<model>/v<N>.json`).
            if meta.key.as_str().matches('/').count() != 1 {
                continue;
            }
            out.push(get_json(self.store.as_ref(), &meta.key).await?.0);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stores written by older versions must keep reading: the paths, byte for byte.
    #[test]
    fn the_configs_layout_is_pinned() {
        let m = ModelName::parse("adult-income").unwrap();
        assert_eq!(current_key(&m).as_str(), "configs/adult-income.json");
        assert_eq!(version_key(&m, 2).as_str(), "configs/adult-income/v2.json");
        assert_eq!(versions_prefix(&m), "configs/adult-income/");
    }
}
