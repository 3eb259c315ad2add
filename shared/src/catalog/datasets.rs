//! Answers about datasets, one function each: which datasets there are, a dataset's
//! versions and quarantined uploads, a version with its contract and what was trained
//! on it, and a quarantine report. The CLI's `datasets` commands and the console's
//! dataset pages render them.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::dataset::contract::ContractStoreError;
use crate::dataset::ingest::QuarantineReport;
use crate::dataset::{Contract, Contracts, DatasetName, Manifest, layout};
use crate::registry::ModelName;
use crate::runs::{Run, RunError, Runs};
use crate::storage::{ObjectKey, ObjectMeta, ObjectStore, StorageError, get_json};

#[derive(Debug, thiserror::Error)]
pub enum DatasetQueryError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Contract(#[from] ContractStoreError),
    #[error(transparent)]
    Runs(#[from] RunError),
}

/// A version as a list shows it (its manifest without the profile).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct VersionSummary {
    pub version: u32,
    pub rows: u64,
    pub bytes: u64,
    pub content_sha256: String,
    pub contract_version: u32,
    /// The upload it was made from.
    pub source: ObjectKey,
    pub created_at: DateTime<Utc>,
}

impl From<&Manifest> for VersionSummary {
    fn from(m: &Manifest) -> Self {
        Self {
            version: m.version,
            rows: m.rows,
            bytes: m.bytes,
            content_sha256: m.content_sha256.clone(),
            contract_version: m.contract_version,
            source: m.source.key.clone(),
            created_at: m.created_at,
        }
    }
}

/// A quarantined upload as a list shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct QuarantineSummary {
    /// Its name under the dataset's quarantine (the copy's file name).
    pub id: String,
    pub source: ObjectKey,
    pub rows: u64,
    /// How many rules it broke, and how many values broke them in all.
    pub rules_broken: usize,
    pub violations: u64,
    pub quarantined_at: DateTime<Utc>,
}

impl QuarantineSummary {
    fn of(id: &str, r: &QuarantineReport) -> Self {
        Self {
            id: id.to_owned(),
            source: r.source.key.clone(),
            rows: r.rows,
            rules_broken: r.validation.violations.len(),
            violations: r.validation.violations.iter().map(|v| v.count).sum(),
            quarantined_at: r.quarantined_at,
        }
    }
}

/// A dataset at a glance.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DatasetSummary {
    pub dataset: DatasetName,
    pub versions: usize,
    pub latest: Option<VersionSummary>,
    pub quarantined: usize,
}

/// Every dataset with a version or a quarantined upload, by name. Reads one manifest
/// per dataset (its latest); the rest comes from listings.
pub async fn datasets(store: &dyn ObjectStore) -> Result<Vec<DatasetSummary>, DatasetQueryError> {
    let mut by_name: std::collections::BTreeMap<DatasetName, (Vec<u32>, usize)> =
        Default::default();
    for meta in store.list(layout::DATASETS).await? {
        if let Some((d, v)) = layout::parse_manifest_key(&meta.key) {
            by_name.entry(d).or_default().0.push(v);
        }
    }
    for meta in store.list(layout::QUARANTINE).await? {
        if let Some((d, _)) = layout::parse_quarantine_report_key(&meta.key) {
            by_name.entry(d).or_default().1 += 1;
        }
    }
    let mut out = Vec::new();
    for (dataset, (versions, quarantined)) in by_name {
        let latest = match versions.iter().max() {
            Some(&v) => Some(VersionSummary::from(
                &get_json::<Manifest>(store, &layout::manifest(&dataset, v))
                    .await?
                    .0,
            )),
            None => None,
        };
        out.push(DatasetSummary {
            dataset,
            versions: versions.len(),
            latest,
            quarantined,
        });
    }
    Ok(out)
}

/// A dataset's newest versions and quarantined uploads, newest first, with how many
/// there are in all.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DatasetDetail {
    pub dataset: DatasetName,
    pub versions: Vec<VersionSummary>,
    pub total_versions: usize,
    pub quarantined: Vec<QuarantineSummary>,
    pub total_quarantined: usize,
}

/// `dataset`'s newest `limit` versions and newest `limit` quarantined uploads (only
/// those are read). `None` when it has neither.
pub async fn dataset(
    store: &dyn ObjectStore,
    dataset: &DatasetName,
    limit: usize,
) -> Result<Option<DatasetDetail>, DatasetQueryError> {
    let mut numbers: Vec<u32> = store
        .list(&layout::versions_prefix(dataset))
        .await?
        .iter()
        .filter_map(|m| layout::parse_version_key(dataset, &m.key))
        .filter(|(_, file)| *file == "manifest.json")
        .map(|(v, _)| v)
        .collect();
    numbers.sort_unstable_by(|a, b| b.cmp(a));
    let mut reports: Vec<ObjectMeta> = store
        .list(&layout::quarantine_prefix(dataset))
        .await?
        .into_iter()
        .filter(|m| layout::parse_quarantine_report_key(&m.key).is_some())
        .collect();
    if numbers.is_empty() && reports.is_empty() {
        return Ok(None);
    }
    // Copies are named after when they were quarantined, so names sort by time.
    reports.sort_by(|a, b| b.key.as_str().cmp(a.key.as_str()));
    let mut versions = Vec::new();
    for &v in numbers.iter().take(limit) {
        let (m, _) = get_json::<Manifest>(store, &layout::manifest(dataset, v)).await?;
        versions.push(VersionSummary::from(&m));
    }
    let mut quarantined = Vec::new();
    for meta in reports.iter().take(limit) {
        let (_, id) = layout::parse_quarantine_report_key(&meta.key).expect("filtered above");
        let (r, _) = get_json::<QuarantineReport>(store, &meta.key).await?;
        quarantined.push(QuarantineSummary::of(id, &r));
    }
    Ok(Some(DatasetDetail {
        dataset: dataset.clone(),
        versions,
        total_versions: numbers.len(),
        quarantined,
        total_quarantined: reports.len(),
    }))
}

/// A dataset version with everything known about it.
#[derive(Clone, Debug, PartialEq)]
pub struct VersionDetail {
    pub manifest: Manifest,
    /// The contract it was checked against (None if that contract is gone).
    pub contract: Option<Contract>,
    /// The runs trained on it, oldest first.
    pub runs: Vec<Run>,
    /// The model versions those runs produced.
    pub models: Vec<(ModelName, u32)>,
}

/// `dataset`'s version `version` (`None` if there is no such version).
pub async fn version(
    runs: &Runs,
    dataset: &DatasetName,
    version: u32,
) -> Result<Option<VersionDetail>, DatasetQueryError> {
    let store = runs.registry().store();
    let manifest =
        match get_json::<Manifest>(store.as_ref(), &layout::manifest(dataset, version)).await {
            Ok((m, _)) => m,
            Err(StorageError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
    let contract = Contracts::new(store.clone())
        .get(dataset, manifest.contract_version)
        .await?;
    let trained = runs.trained_on(dataset, version).await?;
    let models = trained
        .iter()
        .filter_map(|r| Some((r.model.clone(), r.model_version?)))
        .collect();
    Ok(Some(VersionDetail {
        manifest,
        contract,
        runs: trained,
        models,
    }))
}

/// The report of `dataset`'s quarantined upload `id` (`None` if there is none).
pub async fn quarantine(
    store: &dyn ObjectStore,
    dataset: &DatasetName,
    id: &str,
) -> Result<Option<QuarantineReport>, DatasetQueryError> {
    let Ok(key) = layout::quarantine_report_of(dataset, id) else {
        return Ok(None);
    };
    match get_json(store, &key).await {
        Ok((r, _)) => Ok(Some(r)),
        Err(StorageError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}
