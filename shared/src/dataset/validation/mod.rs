//! Checking a file against its contract: the rules ([`rules`]) and their
//! machine-readable result.

use std::collections::BTreeMap;

pub mod rules;

pub use rules::Rules;

use serde::{Deserialize, Serialize};

/// How many offending values a violation keeps as examples.
pub const MAX_EXAMPLES: usize = 10;

/// Every rule a file can break. The names are the report's `rule` field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// The file has no bytes at all.
    EmptyFile,
    /// The bytes are not a readable file of the expected format (e.g. a broken Parquet file).
    Unreadable,
    /// A field is not valid UTF-8.
    Encoding,
    /// A row has more or fewer fields than the contract's columns.
    ColumnCount,
    /// The header row does not name the contract's columns.
    Header,
    /// A column the contract names is missing (Parquet input).
    MissingColumn,
    /// A value does not parse as the column's type.
    Type,
    /// A number lies outside the column's [min, max].
    Range,
    /// A value is not among the column's allowed values.
    AllowedValues,
    /// A label is not among the contract's label values.
    LabelValues,
    /// A column has more nulls than its max_null_fraction allows.
    MaxNullFraction,
    /// Fewer data rows than the contract's min_rows.
    MinRows,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Example {
    /// 1-based line number in the file (CSV) or row number (Parquet).
    pub row: u64,
    pub value: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Violation {
    /// The column concerned; absent for file- or row-level rules.
    pub column: Option<String>,
    pub rule: Rule,
    /// What was expected, in words.
    pub message: String,
    /// How many rows (or values) break the rule.
    pub count: u64,
    pub examples: Vec<Example>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ValidationResult {
    pub passed: bool,
    pub violations: Vec<Violation>,
}

/// Collects violations, keeping counts exact and examples bounded.
#[derive(Debug, Default)]
pub struct Violations {
    by_key: BTreeMap<(Option<String>, Rule), Violation>,
}

impl Violations {
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    pub fn has(&self, rule: Rule) -> bool {
        self.by_key.keys().any(|(_, r)| *r == rule)
    }

    pub fn add(
        &mut self,
        column: Option<&str>,
        rule: Rule,
        message: impl FnOnce() -> String,
        row: u64,
        value: &str,
    ) {
        let key = (column.map(str::to_owned), rule);
        let v = self.by_key.entry(key).or_insert_with(|| Violation {
            column: column.map(str::to_owned),
            rule,
            message: message(),
            count: 0,
            examples: Vec::new(),
        });
        v.count += 1;
        if v.examples.len() < MAX_EXAMPLES {
            v.examples.push(Example {
                row,
                value: clip(value),
            });
        }
    }

    /// A rule broken by the file as a whole (no example rows).
    pub fn add_summary(&mut self, column: Option<&str>, rule: Rule, message: String, count: u64) {
        self.by_key.insert(
            (column.map(str::to_owned), rule),
            Violation {
                column: column.map(str::to_owned),
                rule,
                message,
                count,
                examples: Vec::new(),
            },
        );
    }

    /// Folds in the violations of a later part of the file: counts add up, and the
    /// examples stay the first ones in file order.
    pub fn merge(&mut self, other: Violations) {
        for (key, v) in other.by_key {
            match self.by_key.entry(key) {
                std::collections::btree_map::Entry::Vacant(e) => {
                    e.insert(v);
                }
                std::collections::btree_map::Entry::Occupied(mut e) => {
                    let mine = e.get_mut();
                    mine.count += v.count;
                    let room = MAX_EXAMPLES.saturating_sub(mine.examples.len());
                    mine.examples.extend(v.examples.into_iter().take(room));
                }
            }
        }
    }

    pub fn finish(self) -> ValidationResult {
        let violations: Vec<Violation> = self.by_key.into_values().collect();
        ValidationResult {
            passed: violations.is_empty(),
            violations,
        }
    }
}

/// Keeps examples short: a garbage row can be megabytes long.
fn clip(value: &str) -> String {
    const MAX: usize = 120;
    if value.len() <= MAX {
        return value.to_owned();
    }
    let mut end = MAX;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &value[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_exact_and_examples_bounded() {
        let mut v = Violations::default();
        for row in 1..=25 {
            v.add(
                Some("age"),
                Rule::Type,
                || "expected an integer".into(),
                row,
                "x",
            );
        }
        v.add(
            None,
            Rule::ColumnCount,
            || "expected 2 fields".into(),
            3,
            &"y".repeat(500),
        );
        let result = v.finish();
        assert!(!result.passed);
        assert_eq!(result.violations.len(), 2);
        let ty = result
            .violations
            .iter()
            .find(|v| v.rule == Rule::Type)
            .unwrap();
        assert_eq!(
            (ty.count, ty.examples.len(), ty.examples[9].row),
            (25, MAX_EXAMPLES, 10)
        );
        let cc = result
            .violations
            .iter()
            .find(|v| v.rule == Rule::ColumnCount)
            .unwrap();
        assert!(cc.examples[0].value.chars().count() <= 121);
    }
}
