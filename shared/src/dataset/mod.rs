//! Dataset versioning: an upload becomes an immutable, validated, profiled version, or
//! a quarantine report.

pub mod contract;
pub mod ingest;
pub mod layout;
pub mod profile;
pub mod scan;
pub mod validation;

pub use contract::Contract;
pub use ingest::{
    DatasetEvent, IngestError, IngestOutcome, Ingestor, Manifest, QuarantineReport, Upload,
};

crate::name::path_segment_name!(
    /// A dataset's name: lower-case ASCII letters, digits, `-` and `_`, 1 to 64 long,
    /// starting with a letter or digit. It is a path segment everywhere, so it is parsed,
    /// not trusted.
    DatasetName,
    InvalidDatasetName,
    "dataset"
);

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
