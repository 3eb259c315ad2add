//! Dataset versioning: an upload becomes an immutable, validated, profiled version, or
//! a quarantine report.

pub mod contract;
pub mod delegation;
pub mod fetch;
pub mod ingest;
pub mod layout;
pub mod profile;
pub mod scan;
pub mod spark;
pub mod validation;

pub use contract::{Contract, Contracts};
pub use ingest::{
    IngestError, IngestOutcome, Ingestor, Manifest, QuarantineReport, Upload, Versioned,
    versioned_of,
};

pub use crate::name::{DatasetName, InvalidDatasetName};

/// The Parquet parts of a snapshot written in parts (a folder named `data.parquet`), in
/// order: by name, a writer's markers and checksums (`_SUCCESS`, `.*.crc`) aside.
pub fn snapshot_parts(dir: &std::path::Path) -> std::io::Result<Vec<(String, std::path::PathBuf)>> {
    let mut parts = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_snapshot_part(&name) {
            parts.push((name, entry.path()));
        }
    }
    parts.sort();
    Ok(parts)
}

/// Whether a file in a snapshot's folder is one of its parts (not a writer's marker or
/// checksum).
pub fn is_snapshot_part(name: &str) -> bool {
    name.ends_with(".parquet") && !name.starts_with(['.', '_'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dataset_names_are_path_safe() {
        for good in ["adult", "a", "census-2024", "x_1"] {
            assert!(DatasetName::parse(good).is_ok(), "{good}");
        }
        for bad in ["", "Adult", "-x", "a/b", "a b", "..", &"x".repeat(65)] {
            assert!(DatasetName::parse(bad).is_err(), "{bad}");
        }
    }
}
