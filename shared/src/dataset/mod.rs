//! Dataset versioning: an upload becomes an immutable, validated, profiled version, or
//! a quarantine report.

pub mod contract;
pub mod ingest;
pub mod layout;
pub mod profile;
pub mod scan;
pub mod validation;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use contract::Contract;
pub use ingest::{
    DatasetEvent, IngestError, IngestOutcome, Ingestor, Manifest, QuarantineReport, Upload,
};

/// A dataset's name: lower-case ASCII letters, digits, `-` and `_`, 1 to 64 long, starting
/// with a letter or digit. It is a path segment everywhere, so it is parsed, not trusted.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DatasetName(String);

#[derive(Debug, thiserror::Error, PartialEq)]
#[error(
    "invalid dataset name {0:?}: use 1-64 lower-case letters, digits, '-' or '_', starting with a letter or digit"
)]
pub struct InvalidDatasetName(pub String);

impl DatasetName {
    pub fn parse(s: impl Into<String>) -> Result<Self, InvalidDatasetName> {
        let s = s.into();
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
            && s.as_bytes()[0].is_ascii_alphanumeric();
        if ok {
            Ok(Self(s))
        } else {
            Err(InvalidDatasetName(s))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for DatasetName {
    type Error = InvalidDatasetName;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<DatasetName> for String {
    fn from(value: DatasetName) -> Self {
        value.0
    }
}

impl fmt::Display for DatasetName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for DatasetName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
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
