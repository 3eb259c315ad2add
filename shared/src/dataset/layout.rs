//! Where every dataset object lives. Handlers never build paths; this module does.

use chrono::{DateTime, Utc};

use super::DatasetName;
use crate::storage::ObjectKey;

pub const LANDING: &str = "landing/";

/// Where every dataset's versions are (`datasets/<dataset>/v<N>/…`).
pub const DATASETS: &str = "datasets/";

/// Where every quarantined upload and its report are (`quarantine/<dataset>/…`).
pub const QUARANTINE: &str = "quarantine/";

/// Where delegated uploads are recorded (see [`delegation`]).
pub const DELEGATIONS: &str = "delegations/";

/// Where a remote engine's scan of a delegated upload reads its contract and writes
/// its result (see [`scan_contract`], [`scan_output`]).
pub const SCANS: &str = "scans/";

fn key(s: String) -> ObjectKey {
    ObjectKey::parse(s).expect("layout keys are built from parsed parts")
}

/// Where a dataset's delegated uploads are recorded.
pub fn delegations_prefix(d: &DatasetName) -> String {
    format!("{DELEGATIONS}{d}/")
}

/// Where a delegated upload is recorded.
pub fn delegation(d: &DatasetName, id: &str) -> ObjectKey {
    key(format!("{DELEGATIONS}{d}/{id}.json"))
}

/// The contract a delegated upload's remote scan checks against.
pub fn scan_contract(d: &DatasetName, delegation: &str) -> ObjectKey {
    key(format!("{SCANS}{d}/{delegation}/contract.json"))
}

/// The folder a delegated upload's remote scan writes into (`scan.json`, `data.parquet/`).
pub fn scan_output(d: &DatasetName, delegation: &str) -> String {
    format!("{SCANS}{d}/{delegation}/out/")
}

/// `landing/<dataset>/<file…>` → the dataset the upload belongs to; `None` outside
/// `landing/` and under `landing/feedback/`, which holds ground truth for models.
pub fn dataset_of_landing_key(
    k: &ObjectKey,
) -> Option<Result<DatasetName, super::InvalidDatasetName>> {
    if k.as_str()
        .starts_with(crate::monitoring::layout::FEEDBACK_LANDING)
    {
        return None;
    }
    let rest = k.as_str().strip_prefix(LANDING)?;
    let (dataset, file) = rest.split_once('/')?;
    (!file.is_empty()).then(|| DatasetName::parse(dataset))
}

pub fn landing(d: &DatasetName, file: &str) -> Result<ObjectKey, crate::storage::StorageError> {
    ObjectKey::parse(format!("{LANDING}{d}/{file}"))
}

pub fn contracts_prefix(d: &DatasetName) -> String {
    format!("contracts/{d}/")
}

pub fn contract(d: &DatasetName, version: u32) -> ObjectKey {
    key(format!("contracts/{d}/v{version}.json"))
}

pub fn versions_prefix(d: &DatasetName) -> String {
    format!("datasets/{d}/v")
}

/// A version's folder (what a remote job mounts: `manifest.json`, `data.parquet`).
pub fn version_prefix(d: &DatasetName, version: u32) -> String {
    format!("datasets/{d}/v{version}/")
}

pub fn claim(d: &DatasetName, version: u32) -> ObjectKey {
    key(format!("datasets/{d}/v{version}/claim.json"))
}

/// A version's snapshot: one Parquet file, or (written by a distributed scan) the name of
/// the folder that holds its parts (see [`data_part`]).
pub fn data(d: &DatasetName, version: u32) -> ObjectKey {
    key(format!("datasets/{d}/v{version}/data.parquet"))
}

/// One part of a snapshot written in parts: `data.parquet/<part>`, as Spark names them, so
/// a copy of the version's folder reads as one dataset in pandas, pyarrow and Spark.
pub fn data_part(
    d: &DatasetName,
    version: u32,
    part: &str,
) -> Result<ObjectKey, crate::storage::StorageError> {
    ObjectKey::parse(format!("datasets/{d}/v{version}/data.parquet/{part}"))
}

pub fn manifest(d: &DatasetName, version: u32) -> ObjectKey {
    key(format!("datasets/{d}/v{version}/manifest.json"))
}

/// The content index: (hash, contract version) → version, written last.
pub fn version_index(d: &DatasetName, sha256: &str, contract_version: u32) -> ObjectKey {
    key(format!(
        "{}c{contract_version}.json",
        version_index_prefix(d, sha256)
    ))
}

/// Where the version index entries of one content hash start (one per contract version).
pub fn version_index_prefix(d: &DatasetName, sha256: &str) -> String {
    format!("index/datasets/{d}/{sha256}-")
}

pub fn quarantine_index(d: &DatasetName, sha256: &str, contract_version: u32) -> ObjectKey {
    key(format!(
        "{}c{contract_version}.json",
        quarantine_index_prefix(d, sha256)
    ))
}

/// Where the quarantine index entries of one content hash start.
pub fn quarantine_index_prefix(d: &DatasetName, sha256: &str) -> String {
    format!("index/quarantine/{d}/{sha256}-")
}

pub fn quarantine_prefix(d: &DatasetName) -> String {
    format!("quarantine/{d}/")
}

/// `quarantine/<dataset>/<timestamp>-<file>`; the report sits beside it.
pub fn quarantine_copy(d: &DatasetName, at: DateTime<Utc>, file: &str) -> ObjectKey {
    key(format!(
        "quarantine/{d}/{}-{file}",
        at.format("%Y%m%dT%H%M%S%.3fZ")
    ))
}

pub fn quarantine_report(copy: &ObjectKey) -> ObjectKey {
    key(format!("{copy}.report.json"))
}

/// Where the report of the quarantined upload `id` (its copy's name, as
/// [`parse_quarantine_report_key`] gives it) is; refused if `id` cannot be a key.
pub fn quarantine_report_of(
    d: &DatasetName,
    id: &str,
) -> Result<ObjectKey, crate::storage::StorageError> {
    if id.contains('/') {
        return Err(crate::storage::StorageError::InvalidKey {
            key: id.to_owned(),
            reason: "a quarantine id is one path segment",
        });
    }
    ObjectKey::parse(format!("quarantine/{d}/{id}.report.json"))
}

/// Parses `quarantine/<d>/<id>.report.json` into `(d, id)`.
pub fn parse_quarantine_report_key(k: &ObjectKey) -> Option<(DatasetName, &str)> {
    let rest = k.as_str().strip_prefix(QUARANTINE)?;
    let (d, file) = rest.split_once('/')?;
    let id = file.strip_suffix(".report.json")?;
    (!id.contains('/')).then_some(())?;
    Some((DatasetName::parse(d).ok()?, id))
}

/// Parses `datasets/<d>/v<N>/manifest.json` into `(d, N)`.
pub fn parse_manifest_key(k: &ObjectKey) -> Option<(DatasetName, u32)> {
    let rest = k.as_str().strip_prefix(DATASETS)?;
    let (d, rest) = rest.split_once("/v")?;
    let (n, file) = rest.split_once('/')?;
    (file == "manifest.json").then_some(())?;
    Some((DatasetName::parse(d).ok()?, n.parse().ok()?))
}

/// Parses `datasets/<d>/v<N>/<file>` into `(N, file)`.
pub fn parse_version_key<'k>(d: &DatasetName, k: &'k ObjectKey) -> Option<(u32, &'k str)> {
    let rest = k.as_str().strip_prefix(&versions_prefix(d))?;
    let (n, file) = rest.split_once('/')?;
    Some((n.parse().ok()?, file))
}

/// Parses `contracts/<d>/v<N>.json` into N.
pub fn parse_contract_key(d: &DatasetName, k: &ObjectKey) -> Option<u32> {
    k.as_str()
        .strip_prefix(&contracts_prefix(d))?
        .strip_prefix('v')?
        .strip_suffix(".json")?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layout_is_pinned() {
        let d = DatasetName::parse("adult").unwrap();
        let at = DateTime::parse_from_rfc3339("2026-11-24T01:02:03.456Z")
            .unwrap()
            .with_timezone(&Utc);
        let copy = quarantine_copy(&d, at, "adult.test");
        let cases = [
            (
                landing(&d, "adult.data").unwrap(),
                "landing/adult/adult.data",
            ),
            (contract(&d, 2), "contracts/adult/v2.json"),
            (claim(&d, 3), "datasets/adult/v3/claim.json"),
            (data(&d, 3), "datasets/adult/v3/data.parquet"),
            (
                data_part(&d, 3, "part-00001.parquet").unwrap(),
                "datasets/adult/v3/data.parquet/part-00001.parquet",
            ),
            (manifest(&d, 3), "datasets/adult/v3/manifest.json"),
            (
                version_index(&d, "ab12", 1),
                "index/datasets/adult/ab12-c1.json",
            ),
            (
                quarantine_index(&d, "ab12", 1),
                "index/quarantine/adult/ab12-c1.json",
            ),
            (
                copy.clone(),
                "quarantine/adult/20261124T010203.456Z-adult.test",
            ),
            (
                quarantine_report(&copy),
                "quarantine/adult/20261124T010203.456Z-adult.test.report.json",
            ),
            (delegation(&d, "0a1b"), "delegations/adult/0a1b.json"),
            (scan_contract(&d, "0a1b"), "scans/adult/0a1b/contract.json"),
        ];
        for (k, expected) in cases {
            assert_eq!(k.as_str(), expected);
        }
        assert_eq!(version_prefix(&d, 3), "datasets/adult/v3/");
        assert_eq!(scan_output(&d, "0a1b"), "scans/adult/0a1b/out/");
        assert_eq!(delegations_prefix(&d), "delegations/adult/");
        assert_eq!(
            parse_version_key(&d, &manifest(&d, 12)),
            Some((12, "manifest.json"))
        );
        assert_eq!(parse_contract_key(&d, &contract(&d, 7)), Some(7));
        assert_eq!(parse_manifest_key(&manifest(&d, 12)), Some((d.clone(), 12)));
        assert_eq!(parse_manifest_key(&data(&d, 12)), None);
        let report = quarantine_report(&copy);
        assert_eq!(
            parse_quarantine_report_key(&report),
            Some((d.clone(), "20261124T010203.456Z-adult.test"))
        );
        assert_eq!(
            quarantine_report_of(&d, "20261124T010203.456Z-adult.test").unwrap(),
            report
        );
        assert!(quarantine_report_of(&d, "../x").is_err());
        let up = ObjectKey::parse("landing/adult/2026/part-1.csv").unwrap();
        assert_eq!(dataset_of_landing_key(&up), Some(Ok(d)));
        assert_eq!(
            dataset_of_landing_key(&ObjectKey::parse("landing/feedback/m/labels.csv").unwrap()),
            None
        );
        assert_eq!(
            dataset_of_landing_key(&ObjectKey::parse("landing/loose.csv").unwrap()),
            None
        );
        assert!(matches!(
            dataset_of_landing_key(&ObjectKey::parse("landing/Bad Name/x").unwrap()),
            Some(Err(_))
        ));
    }
}
