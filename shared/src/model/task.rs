//! The kind of problem a model solves. Everything downstream of a training config
//! follows it: the trainer's fit, the graph's outputs, `signature.json`, the gate's
//! metrics and the scoring answer.

use serde::{Deserialize, Serialize};

use crate::dataset::contract::ColumnType;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    /// Two classes; the second of the signature's classes is the positive one. The
    /// default, so configs and signatures written before tasks existed read as binary.
    #[default]
    Binary,
    /// Three or more classes.
    Multiclass,
    /// A number.
    Regression,
}

impl Task {
    pub const ALL: [Task; 3] = [Task::Binary, Task::Multiclass, Task::Regression];

    pub fn as_str(self) -> &'static str {
        match self {
            Task::Binary => "binary",
            Task::Multiclass => "multiclass",
            Task::Regression => "regression",
        }
    }

    pub fn is_classification(self) -> bool {
        self != Task::Regression
    }

    /// The metrics the gate measures for this task, the default promotion metric first.
    pub fn metrics(self) -> &'static [&'static str] {
        match self {
            Task::Binary => &["roc_auc", "accuracy", "log_loss"],
            Task::Multiclass => &["log_loss", "accuracy", "macro_f1"],
            Task::Regression => &["rmse", "mae", "r2"],
        }
    }

    /// The promotion metric a config gets when it names none.
    pub fn default_metric(self) -> &'static str {
        self.metrics()[0]
    }

    /// Infers the task from the label column: its type, how many values a contract
    /// declares for it (if any), and how many distinct values the data holds (if known).
    ///
    /// - a string or boolean label is a class: two values are `binary`, more `multiclass`;
    /// - a float label is `regression`;
    /// - an integer label with two distinct values is `binary`; with declared values
    ///   (a contract's `label.values`), a classification by their count; otherwise
    ///   `regression` (counts, prices, scores): integer codes of three or more classes
    ///   need `"task": "multiclass"` in the config or `label.values` in the contract.
    pub fn infer(
        kind: ColumnType,
        declared: Option<usize>,
        distinct: Option<u64>,
    ) -> Result<Task, String> {
        let classes = |n: u64| match n {
            0 | 1 => Err(format!(
                "the label holds {n} distinct value(s); a classifier needs at least two"
            )),
            2 => Ok(Task::Binary),
            _ => Ok(Task::Multiclass),
        };
        let count = declared.map(|n| n as u64).or(distinct);
        match kind {
            ColumnType::Float => Ok(Task::Regression),
            ColumnType::String | ColumnType::Boolean => match count {
                Some(n) => classes(n),
                None => Err(
                    "the label's values are not known yet (no contract lists them and no version holds data); set \"task\" in the config".into(),
                ),
            },
            ColumnType::Integer => match (declared, distinct) {
                (Some(n), _) => classes(n as u64),
                (None, Some(2)) => Ok(Task::Binary),
                (None, _) => Ok(Task::Regression),
            },
        }
    }
}

impl std::fmt::Display for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a larger value of `metric` is better (`log_loss`, `rmse`, `mae` are errors).
pub fn higher_is_better(metric: &str) -> bool {
    !matches!(metric, "log_loss" | "rmse" | "mae")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_task_follows_the_label() {
        use ColumnType::*;
        assert_eq!(Task::infer(String, Some(2), None), Ok(Task::Binary));
        assert_eq!(Task::infer(String, None, Some(3)), Ok(Task::Multiclass));
        assert_eq!(Task::infer(Boolean, None, Some(2)), Ok(Task::Binary));
        assert_eq!(Task::infer(Float, None, Some(2)), Ok(Task::Regression));
        assert_eq!(Task::infer(Integer, None, Some(2)), Ok(Task::Binary));
        assert_eq!(Task::infer(Integer, None, Some(214)), Ok(Task::Regression));
        assert_eq!(Task::infer(Integer, Some(3), Some(3)), Ok(Task::Multiclass));
        assert!(Task::infer(String, None, Some(1)).is_err());
        assert!(
            Task::infer(String, None, None)
                .unwrap_err()
                .contains("task")
        );
    }

    #[test]
    fn every_task_names_its_metrics_and_their_direction() {
        assert_eq!(Task::Binary.default_metric(), "roc_auc");
        assert_eq!(Task::Regression.default_metric(), "rmse");
        assert!(!higher_is_better("rmse") && higher_is_better("r2"));
        assert_eq!(
            serde_json::to_value(Task::Multiclass).unwrap(),
            "multiclass"
        );
    }
}
