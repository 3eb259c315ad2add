//! The model registry: immutable model versions with their lineage, alias pointers
//! (`candidate`, `staging`, `production`, …) moved only with If-Match, and the release
//! history every move creates.
//!
//! Layout (under the store's root):
//! - `registry/models/<model>/versions/v<N>/{model.onnx,signature.json,metrics.json}`,
//!   `holdout.json` when the run kept one, and `manifest.json` (the commit point, written
//!   last), numbered through create-only `claim.json` files as dataset versions are;
//! - `registry/models/<model>/runs/<run>.json`: which version a run registered, so a
//!   redelivered registration returns the same version;
//! - `registry/models/<model>/aliases/<alias>.json`: the alias's current release;
//! - `registry/models/<model>/releases/<alias>.<n>.json`: every release, create-only.
//!
//! A release commits by the If-Match write of its alias (so of two promotions from the
//! same state exactly one wins); its history record is written create-only right after,
//! and again before the next move of that alias, so a crash in between loses nothing.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::dataset::DatasetName;
use crate::dataset::profile::ColumnProfile;
use crate::model::Signature;
use crate::storage::{ETag, ObjectKey, ObjectStore, PutMode, StorageError, get_json, put_json};
use crate::training::metrics::Metrics;
use crate::training::trainer::Holdout;

/// The alias `Score` serves and rollbacks move.
pub const PRODUCTION: &str = "production";
/// The alias a version passing the gate goes to first.
pub const STAGING: &str = "staging";

pub use crate::name::{InvalidModelName, ModelName};

/// Where a model version came from: the answer to "why did it predict this?".
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Lineage {
    pub run_id: String,
    /// The run's attempt that trained the model (absent in lineage written before
    /// attempts: 1).
    #[serde(default = "first_attempt")]
    pub run_attempt: u32,
    /// Who or what asked for the run (a person, a system, `dataset.versioned`).
    pub requested_by: String,
    pub trigger: String,
    pub dataset: DatasetName,
    pub dataset_version: u32,
    pub dataset_sha256: String,
    /// The upload the dataset version was made from.
    pub source_uri: String,
    pub algorithm: String,
    pub hyperparameters: serde_json::Value,
    pub seed: u64,
    pub config_sha256: String,
    pub code_version: String,
    pub compute: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// The rows of the dataset version the run held out from training (absent when its
    /// trainer kept none, and in lineage written before holdouts were kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holdout: Option<HoldoutRef>,
    /// The backend job that trained it, where the backend has a page for it (absent for
    /// local jobs and in lineage written before jobs were recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<JobRef>,
}

/// A finished job as lineage records it: which backend job trained the model, and where
/// to look at it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobRef {
    pub id: String,
    /// Its page in the backend's UI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The cluster (or compute target) it ran on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
}

fn first_attempt() -> u32 {
    1
}

/// Names a version's holdout (`holdout.json` beside it) without its rows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldoutRef {
    pub rows: u64,
    /// [`Holdout::sha256`]: equal when two versions held out the same rows.
    pub sha256: String,
}

impl HoldoutRef {
    pub fn of(holdout: &Holdout) -> Self {
        Self {
            rows: holdout.rows.len() as u64,
            sha256: holdout.sha256(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelVersion {
    pub model: ModelName,
    pub version: u32,
    pub model_sha256: String,
    pub signature: Signature,
    pub metrics: Metrics,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub description: String,
    pub lineage: Lineage,
    pub registered_at: DateTime<Utc>,
}

/// A move of an alias to a model version.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Release {
    /// `<alias>.<n>`, e.g. `production.3`.
    pub id: String,
    pub model: ModelName,
    pub alias: String,
    pub version: u32,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub reason: String,
    /// The evaluation gate's results that justified it (empty for manual moves).
    #[serde(default)]
    pub gate: serde_json::Value,
    /// The release this one replaced on the same alias.
    pub previous: Option<String>,
    /// For rollbacks: the release rolled back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolls_back: Option<String>,
}

/// A release about to be made: which alias moves to which version, by whom and why
/// (see [`Registry::release`]).
#[derive(Clone, Debug)]
pub struct NewRelease {
    pub alias: String,
    pub version: u32,
    pub actor: String,
    pub reason: String,
    pub gate: serde_json::Value,
    pub rolls_back: Option<String>,
}

/// An alias object: its current release (the release is the alias's content).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alias {
    pub seq: u64,
    pub release: Release,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("model {model:?} has no version {version}")]
    NoVersion { model: String, version: u32 },
    #[error("model {model:?} has no alias {alias:?}")]
    NoAlias { model: String, alias: String },
    #[error(
        "alias {alias:?} of {model:?} moved while this change was prepared; retry from the new state"
    )]
    Conflict { model: String, alias: String },
    #[error("invalid alias {0:?}: use 1-32 lower-case letters, digits or '-'")]
    BadAlias(String),
    #[error("{0}")]
    Invalid(String),
}

/// The files a training run produced, as registered.
pub struct Artifacts {
    pub model_onnx: Bytes,
    pub signature: Signature,
    pub metrics: Metrics,
    pub holdout: Option<Holdout>,
    /// The training data's profile for the columns the model reads and predicts, kept
    /// with the version so monitoring compares live traffic with it (empty: none kept).
    pub reference: Vec<ColumnProfile>,
}

#[derive(Clone)]
pub struct Registry {
    store: Arc<dyn ObjectStore>,
}

fn key(s: String) -> ObjectKey {
    ObjectKey::parse(s).expect("registry keys are valid")
}

fn models_root(m: &ModelName) -> String {
    format!("registry/models/{m}")
}

pub fn version_prefix(m: &ModelName, v: u32) -> String {
    format!("{}/versions/v{v}/", models_root(m))
}

pub fn model_key(m: &ModelName, v: u32) -> ObjectKey {
    key(format!("{}model.onnx", version_prefix(m, v)))
}

/// A version's gate verdict (`gate.json`), written once.
pub(crate) fn gate_key(m: &ModelName, v: u32) -> ObjectKey {
    key(format!("{}gate.json", version_prefix(m, v)))
}

fn holdout_key(m: &ModelName, v: u32) -> ObjectKey {
    key(format!("{}holdout.json", version_prefix(m, v)))
}

fn reference_key(m: &ModelName, v: u32) -> ObjectKey {
    key(format!("{}reference.json", version_prefix(m, v)))
}

fn manifest_key(m: &ModelName, v: u32) -> ObjectKey {
    key(format!("{}manifest.json", version_prefix(m, v)))
}

fn claim_key(m: &ModelName, v: u32) -> ObjectKey {
    key(format!("{}claim.json", version_prefix(m, v)))
}

fn run_index_key(m: &ModelName, run: &str) -> ObjectKey {
    key(format!("{}/runs/{run}.json", models_root(m)))
}

fn alias_key(m: &ModelName, alias: &str) -> ObjectKey {
    key(format!("{}/aliases/{alias}.json", models_root(m)))
}

fn release_key(m: &ModelName, id: &str) -> ObjectKey {
    key(format!("{}/releases/{id}.json", models_root(m)))
}

pub fn check_alias(alias: &str) -> Result<(), RegistryError> {
    let ok = !alias.is_empty()
        && alias.len() <= 32
        && alias
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(RegistryError::BadAlias(alias.to_owned()))
    }
}

#[derive(Serialize, Deserialize)]
struct RunIndex {
    version: u32,
}

impl Registry {
    pub fn new(store: Arc<dyn ObjectStore>) -> Self {
        Self { store }
    }

    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// Registers a run's model; the same run registered again returns its version.
    pub async fn register(
        &self,
        model: &ModelName,
        artifacts: Artifacts,
        lineage: Lineage,
        tags: BTreeMap<String, String>,
        description: String,
    ) -> Result<(ModelVersion, bool), RegistryError> {
        if let Some(existing) = self.version_of_run(model, &lineage.run_id).await? {
            return Ok((existing, false));
        }
        let store = self.store.as_ref();
        let mut version = self.latest_version(model).await?.unwrap_or(0) + 1;
        loop {
            let claim = serde_json::json!({"run_id": lineage.run_id});
            match put_json(store, &claim_key(model, version), &claim, PutMode::Create).await {
                Ok(_) => break,
                Err(StorageError::AlreadyExists { .. }) => {
                    // Another registration took it; a retry of ours may have, too.
                    if let Some(existing) = self.version_of_run(model, &lineage.run_id).await? {
                        return Ok((existing, false));
                    }
                    version += 1;
                }
                Err(e) => return Err(e.into()),
            }
        }
        use sha2::Digest;
        let model_sha256 = hex::encode(sha2::Sha256::digest(&artifacts.model_onnx));
        let prefix = version_prefix(model, version);
        store
            .put(
                &model_key(model, version),
                artifacts.model_onnx.into(),
                PutMode::Create,
            )
            .await?;
        put_json(
            store,
            &key(format!("{prefix}signature.json")),
            &artifacts.signature,
            PutMode::Create,
        )
        .await?;
        put_json(
            store,
            &key(format!("{prefix}metrics.json")),
            &artifacts.metrics,
            PutMode::Create,
        )
        .await?;
        if let Some(holdout) = &artifacts.holdout {
            put_json(
                store,
                &holdout_key(model, version),
                holdout,
                PutMode::Create,
            )
            .await?;
        }
        if !artifacts.reference.is_empty() {
            put_json(
                store,
                &reference_key(model, version),
                &artifacts.reference,
                PutMode::Create,
            )
            .await?;
        }
        let manifest = ModelVersion {
            model: model.clone(),
            version,
            model_sha256,
            signature: artifacts.signature,
            metrics: artifacts.metrics,
            tags,
            description,
            lineage,
            registered_at: Utc::now(),
        };
        put_json(
            store,
            &manifest_key(model, version),
            &manifest,
            PutMode::Create,
        )
        .await?;
        let index = RunIndex { version };
        match put_json(
            store,
            &run_index_key(model, &manifest.lineage.run_id),
            &index,
            PutMode::Create,
        )
        .await
        {
            Ok(_) | Err(StorageError::AlreadyExists { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        Ok((manifest, true))
    }

    async fn version_of_run(
        &self,
        model: &ModelName,
        run: &str,
    ) -> Result<Option<ModelVersion>, RegistryError> {
        match get_json::<RunIndex>(self.store.as_ref(), &run_index_key(model, run)).await {
            Ok((i, _)) => Ok(Some(self.version(model, i.version).await?)),
            Err(StorageError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The training data's profile kept with `version` (`None` for versions registered
    /// before references were kept).
    pub async fn reference(
        &self,
        model: &ModelName,
        version: u32,
    ) -> Result<Option<Vec<ColumnProfile>>, RegistryError> {
        match get_json(self.store.as_ref(), &reference_key(model, version)).await {
            Ok((columns, _)) => Ok(Some(columns)),
            Err(StorageError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn version(
        &self,
        model: &ModelName,
        version: u32,
    ) -> Result<ModelVersion, RegistryError> {
        match get_json(self.store.as_ref(), &manifest_key(model, version)).await {
            Ok((v, _)) => Ok(v),
            Err(StorageError::NotFound { .. }) => Err(RegistryError::NoVersion {
                model: model.to_string(),
                version,
            }),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn model_bytes(
        &self,
        model: &ModelName,
        version: u32,
    ) -> Result<Bytes, RegistryError> {
        Ok(self
            .store
            .get(&model_key(model, version))
            .await?
            .bytes()
            .await?)
    }

    /// The rows `version`'s run held out from training, if it kept them.
    pub async fn holdout(
        &self,
        model: &ModelName,
        version: u32,
    ) -> Result<Option<Holdout>, RegistryError> {
        match get_json(self.store.as_ref(), &holdout_key(model, version)).await {
            Ok((h, _)) => Ok(Some(h)),
            Err(StorageError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Every (version, file) under the model's versions, claims included.
    async fn version_files(&self, model: &ModelName) -> Result<Vec<(u32, String)>, RegistryError> {
        let prefix = format!("{}/versions/", models_root(model));
        Ok(self
            .store
            .list(&prefix)
            .await?
            .iter()
            .filter_map(|m| {
                let (v, file) = m.key.as_str().strip_prefix(&prefix)?.split_once('/')?;
                Some((v.strip_prefix('v')?.parse().ok()?, file.to_owned()))
            })
            .collect())
    }

    /// Registered (committed) versions, ascending.
    pub async fn versions(&self, model: &ModelName) -> Result<Vec<u32>, RegistryError> {
        let mut out: Vec<u32> = self
            .version_files(model)
            .await?
            .into_iter()
            .filter(|(_, file)| file == "manifest.json")
            .map(|(v, _)| v)
            .collect();
        out.sort_unstable();
        Ok(out)
    }

    /// What the model's newest version predicts (None before its first version).
    pub async fn task(
        &self,
        model: &ModelName,
    ) -> Result<Option<crate::model::Task>, RegistryError> {
        match self.versions(model).await?.last() {
            Some(&v) => Ok(Some(self.version(model, v).await?.signature.task)),
            None => Ok(None),
        }
    }

    /// The highest version number taken, committed or only claimed.
    async fn latest_version(&self, model: &ModelName) -> Result<Option<u32>, RegistryError> {
        Ok(self
            .version_files(model)
            .await?
            .into_iter()
            .map(|(v, _)| v)
            .max())
    }

    /// Models with at least one version.
    pub async fn models(&self) -> Result<Vec<ModelName>, RegistryError> {
        let mut names: Vec<ModelName> = self
            .store
            .list("registry/models/")
            .await?
            .iter()
            .filter_map(|m| {
                let rest = m.key.as_str().strip_prefix("registry/models/")?;
                ModelName::parse(rest.split_once('/')?.0).ok()
            })
            .collect();
        names.dedup();
        Ok(names)
    }

    /// Every model (with a file in the registry) and its registered versions, ascending,
    /// from one listing: what a glance at all models needs, for the cost of listing once.
    pub async fn all_versions(
        &self,
    ) -> Result<std::collections::BTreeMap<ModelName, Vec<u32>>, RegistryError> {
        let mut out: std::collections::BTreeMap<ModelName, Vec<u32>> = Default::default();
        for meta in self.store.list("registry/models/").await? {
            let Some(rest) = meta.key.as_str().strip_prefix("registry/models/") else {
                continue;
            };
            let Some((name, rest)) = rest.split_once('/') else {
                continue;
            };
            let Ok(model) = ModelName::parse(name) else {
                continue;
            };
            let versions = out.entry(model).or_default();
            let version = rest
                .strip_prefix("versions/v")
                .and_then(|r| r.strip_suffix("/manifest.json"))
                .and_then(|v| v.parse().ok());
            if let Some(v) = version {
                versions.push(v);
            }
        }
        for versions in out.values_mut() {
            versions.sort_unstable();
        }
        Ok(out)
    }

    pub async fn alias(
        &self,
        model: &ModelName,
        alias: &str,
    ) -> Result<Option<(Alias, ETag)>, RegistryError> {
        check_alias(alias)?;
        match get_json::<Alias>(self.store.as_ref(), &alias_key(model, alias)).await {
            Ok(found) => Ok(Some(found)),
            Err(StorageError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The alias and its ETag, or [`RegistryError::NoAlias`] when it is not set.
    pub async fn require_alias(
        &self,
        model: &ModelName,
        alias: &str,
    ) -> Result<(Alias, ETag), RegistryError> {
        self.alias(model, alias)
            .await?
            .ok_or_else(|| RegistryError::NoAlias {
                model: model.to_string(),
                alias: alias.to_owned(),
            })
    }

    /// The version an alias points at.
    pub async fn resolve(
        &self,
        model: &ModelName,
        alias: &str,
    ) -> Result<ModelVersion, RegistryError> {
        let (a, _) = self.require_alias(model, alias).await?;
        self.version(model, a.release.version).await
    }

    /// Moves an alias if it still is where `expected` says (None: the alias must not
    /// exist yet). The move is a new release; of several concurrent moves from the same
    /// state exactly one wins, the others get [`RegistryError::Conflict`].
    pub async fn release(
        &self,
        model: &ModelName,
        change: NewRelease,
        expected: Option<(&Alias, &ETag)>,
    ) -> Result<Release, RegistryError> {
        let NewRelease {
            alias,
            version,
            actor,
            reason,
            gate,
            rolls_back,
        } = change;
        let alias = alias.as_str();
        check_alias(alias)?;
        self.version(model, version).await?;
        let store = self.store.as_ref();
        let (seq, previous, mode) = match expected {
            Some((current, etag)) => {
                // Make sure the release being replaced is in the history first.
                self.record_release(&current.release).await?;
                (
                    current.seq + 1,
                    Some(current.release.id.clone()),
                    PutMode::Update(etag.clone()),
                )
            }
            None => (1, None, PutMode::Create),
        };
        let release = Release {
            id: format!("{alias}.{seq}"),
            model: model.clone(),
            alias: alias.to_owned(),
            version,
            at: Utc::now(),
            actor,
            reason,
            gate,
            previous,
            rolls_back,
        };
        let pointer = Alias {
            seq,
            release: release.clone(),
        };
        match put_json(store, &alias_key(model, alias), &pointer, mode).await {
            Ok(_) => {}
            Err(StorageError::Precondition { .. } | StorageError::AlreadyExists { .. }) => {
                return Err(RegistryError::Conflict {
                    model: model.to_string(),
                    alias: alias.to_owned(),
                });
            }
            Err(e) => return Err(e.into()),
        }
        self.record_release(&release).await?;
        Ok(release)
    }

    async fn record_release(&self, release: &Release) -> Result<(), RegistryError> {
        match put_json(
            self.store.as_ref(),
            &release_key(&release.model, &release.id),
            release,
            PutMode::Create,
        )
        .await
        {
            Ok(_) | Err(StorageError::AlreadyExists { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Every release of a model (all aliases), oldest first.
    pub async fn releases(&self, model: &ModelName) -> Result<Vec<Release>, RegistryError> {
        let prefix = format!("{}/releases/", models_root(model));
        let mut out = Vec::new();
        for meta in self.store.list(&prefix).await? {
            let (r, _) = get_json::<Release>(self.store.as_ref(), &meta.key).await?;
            out.push(r);
        }
        // The current release of each alias, in case its history write was cut short.
        let alias_prefix = format!("{}/aliases/", models_root(model));
        for meta in self.store.list(&alias_prefix).await? {
            let (a, _) = get_json::<Alias>(self.store.as_ref(), &meta.key).await?;
            if !out.iter().any(|r| r.id == a.release.id) {
                out.push(a.release);
            }
        }
        out.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.id.cmp(&b.id)));
        Ok(out)
    }

    /// What `alias` pointed at, at time `at`.
    pub async fn release_at(
        &self,
        model: &ModelName,
        alias: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<Release>, RegistryError> {
        Ok(release_at(&self.releases(model).await?, alias, at).cloned())
    }
}

/// What `alias` pointed at, at time `at`, among `releases` (oldest first, as
/// [`Registry::releases`] gives them): for a caller that has read them already.
pub fn release_at<'r>(
    releases: &'r [Release],
    alias: &str,
    at: DateTime<Utc>,
) -> Option<&'r Release> {
    releases.iter().rfind(|r| r.alias == alias && r.at <= at)
}

pub mod gate;
pub mod promotion;

#[cfg(test)]
pub(crate) mod tests;
