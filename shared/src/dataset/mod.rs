//! Dataset versioning: an upload becomes an immutable, validated, profiled version, or
//! a quarantine report.

pub mod contract;
pub mod ingest;
pub mod layout;
pub mod profile;
pub mod scan;
pub mod spark;
pub mod validation;

pub use contract::{Contract, Contracts};
pub use ingest::{
    DatasetEvent, IngestError, IngestOutcome, Ingestor, Manifest, QuarantineReport, Upload,
};

pub use crate::name::{DatasetName, InvalidDatasetName};

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
