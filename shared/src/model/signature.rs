//! A model's signature: the raw input columns it takes and the outputs it gives.
//! Written beside `model.onnx` as `signature.json`; the scorer checks requests against
//! it and the evaluation gate checks a candidate's against production's.

use serde::{Deserialize, Serialize};

use super::task::Task;
use crate::dataset::contract::ColumnType;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Signature {
    pub inputs: Vec<InputSpec>,
    /// How the columns reach the graph. Absent in signatures written before Sluice
    /// grouped its inputs, and in other trainers' (see [`InputLayout::Columns`]).
    #[serde(default)]
    pub layout: InputLayout,
    /// What the model predicts. Absent in signatures written before tasks: binary.
    #[serde(default)]
    pub task: Task,
    /// The label column the model predicts (not an input).
    pub label: String,
    /// Class names in the order of the `probabilities` output's columns (none for
    /// regression).
    #[serde(default)]
    pub classes: Vec<String>,
    /// Output tensors. Classifiers: `probabilities` (double, rows × classes) and `label`
    /// (int64 class index per row; the most probable class when absent). Regression:
    /// `value` (double, rows × 1).
    pub outputs: Vec<OutputSpec>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InputSpec {
    pub name: String,
    /// The column's type in the dataset; what a request must send.
    #[serde(rename = "type")]
    pub kind: ColumnType,
    /// The ONNX tensor element type the column goes in as: `double` or `string`.
    pub tensor: TensorType,
    /// For categorical inputs: the categories the model encodes. Others (and nulls)
    /// encode as all zeros, which a scorer may refuse.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub categories: Option<Vec<String>>,
}

/// How a model's graph takes its input columns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputLayout {
    /// One `[rows, 1]` input per column, named after it: the simplest contract for a
    /// trainer to write, and what every model registered before `Grouped` takes.
    #[default]
    Columns,
    /// Two inputs, [`NUMBERS_INPUT`] (`double [rows, n]`) and [`CATEGORIES_INPUT`]
    /// (`string [rows, c]`), holding the `double` and the `string` columns in signature
    /// order (an input is left out when it would have no column). What Sluice's trainer
    /// writes: ONNX Runtime pays a fixed cost per input on every run, so a 13-column
    /// model runs about 40% faster on small batches with two.
    Grouped,
}

/// The [`InputLayout::Grouped`] input holding the `double` columns.
pub const NUMBERS_INPUT: &str = "numbers";
/// The [`InputLayout::Grouped`] input holding the `string` columns.
pub const CATEGORIES_INPUT: &str = "categories";
/// A classifier's output of class probabilities.
pub const PROBABILITIES_OUTPUT: &str = "probabilities";
/// A classifier's output of class indices.
pub const LABEL_OUTPUT: &str = "label";
/// A regression model's output of predicted values.
pub const VALUE_OUTPUT: &str = "value";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TensorType {
    Double,
    String,
    Int64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutputSpec {
    pub name: String,
    pub tensor: TensorType,
}

impl Signature {
    /// Why `self` (a candidate) cannot replace `production` for the same callers, if it
    /// cannot: it must predict the same label with the same classes, and need no input
    /// production's callers do not send, with the same types.
    pub fn incompatibilities(&self, production: &Signature) -> Vec<String> {
        let mut problems = Vec::new();
        if self.task != production.task {
            problems.push(format!(
                "is a {} model, production is {}",
                self.task, production.task
            ));
        }
        if self.label != production.label {
            problems.push(format!(
                "predicts {:?}, production predicts {:?}",
                self.label, production.label
            ));
        }
        if self.classes != production.classes {
            problems.push(format!(
                "classes {:?} differ from production's {:?}",
                self.classes, production.classes
            ));
        }
        for input in &self.inputs {
            match production.inputs.iter().find(|p| p.name == input.name) {
                None => problems.push(format!(
                    "needs input {:?}, which production's callers do not send",
                    input.name
                )),
                Some(p) if p.kind != input.kind => problems.push(format!(
                    "input {:?} is {:?}, production's is {:?}",
                    input.name, input.kind, p.kind
                )),
                Some(_) => {}
            }
        }
        problems
    }

    /// How `other` differs from `self`, in words, both ways (what a comparison of two
    /// versions shows): task, label, classes, and each input added, removed, retyped or
    /// given other categories.
    pub fn differences(&self, other: &Signature) -> Vec<String> {
        let mut out = Vec::new();
        if self.task != other.task {
            out.push(format!("task: {} → {}", self.task, other.task));
        }
        if self.label != other.label {
            out.push(format!("label: {:?} → {:?}", self.label, other.label));
        }
        if self.classes != other.classes {
            out.push(format!("classes: {:?} → {:?}", self.classes, other.classes));
        }
        for input in &self.inputs {
            match other.inputs.iter().find(|o| o.name == input.name) {
                None => out.push(format!("input {:?} removed", input.name)),
                Some(o) if o.kind != input.kind => out.push(format!(
                    "input {:?}: {:?} → {:?}",
                    input.name, input.kind, o.kind
                )),
                Some(o) if o.categories != input.categories => out.push(format!(
                    "input {:?}: {} → {} categories",
                    input.name,
                    input.categories.as_ref().map_or(0, Vec::len),
                    o.categories.as_ref().map_or(0, Vec::len)
                )),
                Some(_) => {}
            }
        }
        for o in &other.inputs {
            if !self.inputs.iter().any(|i| i.name == o.name) {
                out.push(format!("input {:?} added ({:?})", o.name, o.kind));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(name: &str, kind: ColumnType) -> InputSpec {
        InputSpec {
            name: name.into(),
            kind,
            tensor: if kind.is_numeric() {
                TensorType::Double
            } else {
                TensorType::String
            },
            categories: None,
        }
    }

    fn signature(inputs: Vec<InputSpec>) -> Signature {
        Signature {
            inputs,
            layout: InputLayout::Columns,
            task: Task::Binary,
            label: "income".into(),
            classes: vec!["<=50K".into(), ">50K".into()],
            outputs: vec![],
        }
    }

    #[test]
    fn a_subset_of_inputs_is_compatible_and_a_new_one_is_not() {
        let production = signature(vec![
            input("age", ColumnType::Integer),
            input("sex", ColumnType::String),
        ]);
        let fewer = signature(vec![input("age", ColumnType::Integer)]);
        assert!(fewer.incompatibilities(&production).is_empty());
        let more = signature(vec![input("zip", ColumnType::String)]);
        assert_eq!(more.incompatibilities(&production).len(), 1);
        let retyped = signature(vec![input("age", ColumnType::String)]);
        assert!(retyped.incompatibilities(&production)[0].contains("age"));
        let mut regression = fewer.clone();
        regression.task = Task::Regression;
        assert!(regression.incompatibilities(&production)[0].contains("regression"));
    }

    #[test]
    fn differences_name_each_change_both_ways() {
        let a = signature(vec![
            input("age", ColumnType::Integer),
            input("sex", ColumnType::String),
        ]);
        assert!(a.differences(&a).is_empty());
        let mut b = signature(vec![
            input("age", ColumnType::Float),
            input("zip", ColumnType::String),
        ]);
        b.classes = vec!["no".into(), "yes".into()];
        assert_eq!(
            a.differences(&b),
            [
                r#"classes: ["<=50K", ">50K"] → ["no", "yes"]"#,
                r#"input "age": Integer → Float"#,
                r#"input "sex" removed"#,
                r#"input "zip" added (String)"#,
            ]
        );
    }

    #[test]
    fn signatures_written_before_tasks_read_as_binary() {
        let old = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/adult-income-columns/signature.json"
        ))
        .unwrap();
        let signature: Signature = serde_json::from_slice(&old).unwrap();
        assert_eq!(signature.task, Task::Binary);
        assert_eq!(signature.classes, ["<=50K", ">50K"]);
    }
}
