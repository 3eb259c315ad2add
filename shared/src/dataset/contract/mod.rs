//! A dataset's contract: how to read its files and what its data must look like.
//!
//! Contracts are versioned like data (`contracts/<dataset>/v<N>.json`, immutable); a
//! dataset version records the contract version it was validated against, so the
//! identity of a version is (content hash, contract version).

use serde::{Deserialize, Serialize};

use super::DatasetName;

mod infer;
mod store;

pub use infer::infer;
pub use store::{ContractStoreError, Contracts};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnType {
    Integer,
    Float,
    String,
    Boolean,
}

impl ColumnType {
    pub fn is_numeric(self) -> bool {
        matches!(self, ColumnType::Integer | ColumnType::Float)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnSpec {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: ColumnType,
    /// Inclusive bounds for numeric columns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// The only values a string column may take (after trimming).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed: Option<Vec<String>>,
    /// Largest share of nulls tolerated, 0.0 to 1.0; absent means any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_null_fraction: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelSpec {
    pub column: String,
    pub values: Vec<String>,
    /// Spellings read as one of `values` (a cleaning step: `adult.test` writes `>50K.`
    /// for `>50K`). The snapshot stores the canonical value.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub aliases: std::collections::BTreeMap<String, String>,
}

impl LabelSpec {
    /// The canonical spelling of a label value.
    pub fn canonical<'a>(&'a self, value: &'a str) -> &'a str {
        self.aliases.get(value).map_or(value, String::as_str)
    }
}

/// How a CSV file is laid out. Parquet files ignore it (they carry their schema).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CsvFormat {
    pub delimiter: char,
    pub quote: char,
    pub has_header: bool,
    /// Trim ASCII whitespace around every field (Adult has a space after each comma).
    pub trim: bool,
    /// Field values that mean "missing" (compared after trimming); empty is always null.
    pub null_tokens: Vec<String>,
    /// Lines starting with this character are skipped (`adult.test` opens with a
    /// `|1x3 Cross validator` line).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<char>,
}

impl Default for CsvFormat {
    fn default() -> Self {
        Self {
            delimiter: ',',
            quote: '"',
            has_header: true,
            trim: true,
            null_tokens: vec![],
            comment: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contract {
    pub dataset: DatasetName,
    /// Assigned when the contract is stored; 0 in a file not yet stored.
    #[serde(default)]
    pub version: u32,
    #[serde(default)]
    pub csv: CsvFormat,
    pub columns: Vec<ColumnSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<LabelSpec>,
    #[serde(default)]
    pub min_rows: u64,
    /// True when Sluice inferred this contract from a dataset's first good version.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub inferred: bool,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ContractError {
    #[error("contract is not valid JSON for a contract: {0}")]
    Json(String),
    #[error("contract has no columns")]
    NoColumns,
    #[error("column {0:?} appears more than once")]
    DuplicateColumn(String),
    #[error("label column {0:?} is not among the columns")]
    UnknownLabel(String),
    #[error("column {column:?}: {problem}")]
    BadColumn {
        column: String,
        problem: &'static str,
    },
    #[error(
        "delimiter, quote and comment must be single ASCII characters, delimiter and quote different"
    )]
    BadFormat,
    #[error("label alias {0:?} must name one of the label values")]
    BadAlias(String),
}

impl Contract {
    pub fn from_json(bytes: &[u8]) -> Result<Self, ContractError> {
        let contract: Contract =
            serde_json::from_slice(bytes).map_err(|e| ContractError::Json(e.to_string()))?;
        contract.check()?;
        Ok(contract)
    }

    /// Checks the contract is self-consistent.
    pub fn check(&self) -> Result<(), ContractError> {
        if self.columns.is_empty() {
            return Err(ContractError::NoColumns);
        }
        let mut seen = std::collections::HashSet::new();
        for c in &self.columns {
            if !seen.insert(c.name.as_str()) {
                return Err(ContractError::DuplicateColumn(c.name.clone()));
            }
            let bad = |problem| {
                Err(ContractError::BadColumn {
                    column: c.name.clone(),
                    problem,
                })
            };
            if (c.min.is_some() || c.max.is_some()) && !c.kind.is_numeric() {
                return bad("min/max apply to numeric columns only");
            }
            if let (Some(lo), Some(hi)) = (c.min, c.max)
                && lo > hi
            {
                return bad("min is greater than max");
            }
            if c.allowed.is_some() && c.kind != ColumnType::String {
                return bad("allowed values apply to string columns only");
            }
            if c.max_null_fraction
                .is_some_and(|f| !(0.0..=1.0).contains(&f))
            {
                return bad("max_null_fraction must be between 0 and 1");
            }
        }
        if let Some(label) = &self.label {
            if !seen.contains(label.column.as_str()) {
                return Err(ContractError::UnknownLabel(label.column.clone()));
            }
            if let Some((alias, _)) = label
                .aliases
                .iter()
                .find(|(_, v)| !label.values.contains(v))
            {
                return Err(ContractError::BadAlias(alias.clone()));
            }
        }
        let (d, q) = (self.csv.delimiter, self.csv.quote);
        let c = self.csv.comment.unwrap_or('#');
        if !d.is_ascii() || !q.is_ascii() || !c.is_ascii() || d == q || d == '\n' || d == '\r' {
            return Err(ContractError::BadFormat);
        }
        Ok(())
    }

    pub fn column_names(&self) -> Vec<&str> {
        self.columns.iter().map(|c| c.name.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contract(json: serde_json::Value) -> Result<Contract, ContractError> {
        Contract::from_json(json.to_string().as_bytes())
    }

    #[test]
    fn a_contract_must_be_consistent() {
        let ok = serde_json::json!({"dataset": "d", "columns": [{"name": "a", "type": "integer", "min": 0}]});
        assert!(contract(ok).is_ok());
        let cases = [
            (
                serde_json::json!({"dataset": "d", "columns": []}),
                ContractError::NoColumns,
            ),
            (
                serde_json::json!({"dataset": "d", "columns": [{"name": "a", "type": "float"}, {"name": "a", "type": "float"}]}),
                ContractError::DuplicateColumn("a".into()),
            ),
            (
                serde_json::json!({"dataset": "d", "columns": [{"name": "a", "type": "float"}], "label": {"column": "y", "values": []}}),
                ContractError::UnknownLabel("y".into()),
            ),
            (
                serde_json::json!({"dataset": "d", "columns": [{"name": "a", "type": "string", "min": 1}]}),
                ContractError::BadColumn {
                    column: "a".into(),
                    problem: "min/max apply to numeric columns only",
                },
            ),
        ];
        for (json, expected) in cases {
            assert_eq!(contract(json).unwrap_err(), expected);
        }
        let typo = serde_json::json!({"dataset": "d", "columns": [{"name": "a", "type": "integer", "maxx": 1}]});
        assert!(
            matches!(contract(typo), Err(ContractError::Json(_))),
            "unknown fields are refused"
        );
    }
}
