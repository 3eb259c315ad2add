//! Scoring a [`Table`] with a model: the inputs are built from the model's
//! [`Signature`], the outputs read back as class probabilities.

use std::borrow::Cow;
use std::sync::Mutex;

use ort::session::{Session, SessionInputValue};
use ort::value::{Tensor, TensorRef};

use super::runtime::{Runtime, RuntimeError};
use super::signature::{
    CATEGORIES_INPUT, InputLayout, InputSpec, LABEL_OUTPUT, NUMBERS_INPUT, PROBABILITIES_OUTPUT,
    Signature, TensorType, VALUE_OUTPUT,
};
use super::table::{Table, Values};
use super::task::Task;

#[derive(Debug, thiserror::Error)]
pub enum InferenceError {
    #[error("input column {0:?} is missing")]
    MissingInput(String),
    #[error("input column {column:?} must be {expected:?}")]
    WrongType {
        column: String,
        expected: TensorType,
    },
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("ONNX Runtime failed: {0}")]
    Run(String),
}

/// Per-row outputs: a classifier fills `probabilities` and `labels`, a regression
/// model `values`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Predictions {
    /// Class probabilities per row, in the signature's class order.
    pub probabilities: Vec<Vec<f64>>,
    /// The predicted class index per row.
    pub labels: Vec<usize>,
    /// The predicted value per row.
    pub values: Vec<f64>,
}

impl Predictions {
    /// Rows predicted.
    pub fn rows(&self) -> usize {
        self.labels.len().max(self.values.len())
    }

    /// Cuts the rows into consecutive parts of the given sizes.
    pub fn split(self, sizes: impl IntoIterator<Item = usize>) -> Vec<Predictions> {
        let mut probabilities = self.probabilities.into_iter();
        let mut labels = self.labels.into_iter();
        let mut values = self.values.into_iter();
        sizes
            .into_iter()
            .map(|n| Predictions {
                probabilities: probabilities.by_ref().take(n).collect(),
                labels: labels.by_ref().take(n).collect(),
                values: values.by_ref().take(n).collect(),
            })
            .collect()
    }

    /// The largest difference between two sets of predictions of the same rows
    /// (probabilities and values), or infinity when their shapes differ.
    pub fn max_difference(&self, other: &Predictions) -> f64 {
        let same_shape = self.values.len() == other.values.len()
            && self.probabilities.len() == other.probabilities.len()
            && self
                .probabilities
                .iter()
                .zip(&other.probabilities)
                .all(|(a, b)| a.len() == b.len());
        if !same_shape {
            return f64::INFINITY;
        }
        let rows = self
            .probabilities
            .iter()
            .flatten()
            .zip(other.probabilities.iter().flatten());
        rows.chain(self.values.iter().zip(&other.values))
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max)
    }

    /// The probability of the last (positive) class per row.
    pub fn positive(&self) -> Vec<f64> {
        self.probabilities
            .iter()
            .map(|p| p.last().copied().unwrap_or(f64::NAN))
            .collect()
    }
}

/// One input column's values in each table of a run, as the signature types it.
enum Column<'t> {
    Numbers(Vec<&'t [f64]>),
    Text(Vec<&'t [Option<String>]>),
}

/// `spec`'s column in each of `tables` (found near position `at`), as `pick` reads it;
/// `pick` gives None for a column of the wrong type.
fn gather<'t, T>(
    tables: &[&'t Table],
    at: usize,
    spec: &InputSpec,
    pick: impl Fn(&'t Values) -> Option<&'t [T]>,
) -> Result<Vec<&'t [T]>, InferenceError> {
    let mut parts = Vec::with_capacity(tables.len());
    for table in tables {
        let values = table
            .column_near(at, &spec.name)
            .ok_or_else(|| InferenceError::MissingInput(spec.name.clone()))?;
        parts.push(pick(values).ok_or_else(|| wrong_type(spec))?);
    }
    Ok(parts)
}

fn wrong_type(spec: &InputSpec) -> InferenceError {
    InferenceError::WrongType {
        column: spec.name.clone(),
        expected: spec.tensor,
    }
}

/// A loaded model: one ONNX Runtime session of it. An `ort` session needs exclusive
/// access to run, so concurrent callers take turns; the scorer runs several of these
/// side by side (see `scoring::batch`).
pub struct ModelSession {
    session: Mutex<Session>,
    signature: Signature,
}

impl ModelSession {
    pub fn new(
        runtime: &Runtime,
        onnx: &[u8],
        signature: Signature,
    ) -> Result<Self, InferenceError> {
        Ok(Self {
            session: Mutex::new(runtime.session(onnx)?),
            signature,
        })
    }

    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    pub fn predict(&self, table: &Table) -> Result<Predictions, InferenceError> {
        self.predict_all(&[table])
    }

    /// Scores the rows of `tables`, one table after another, in one run.
    pub fn predict_all(&self, tables: &[&Table]) -> Result<Predictions, InferenceError> {
        let rows: usize = tables.iter().map(|t| t.rows()).sum();
        let run = |e: &dyn std::fmt::Display| InferenceError::Run(e.to_string());
        let inputs = &self.signature.inputs;
        // Each input column's values in every table, in signature order.
        let mut columns = Vec::with_capacity(inputs.len());
        for (at, spec) in inputs.iter().enumerate() {
            columns.push(match spec.tensor {
                TensorType::Double => Column::Numbers(gather(tables, at, spec, |v| match v {
                    Values::Numbers(xs) => Some(&xs[..]),
                    Values::Text(_) => None,
                })?),
                TensorType::String => Column::Text(gather(tables, at, spec, |v| match v {
                    Values::Text(ts) => Some(&ts[..]),
                    Values::Numbers(_) => None,
                })?),
                // No column can feed it: a missing one is named first, as for the others.
                TensorType::Int64 => {
                    gather::<f64>(tables, at, spec, |_| None)?;
                    return Err(wrong_type(spec));
                }
            });
        }
        // `ort` takes owned strings only (it copies them again, into C strings).
        fn text(t: &Option<String>) -> String {
            t.clone().unwrap_or_default()
        }
        let mut feeds: Vec<(Cow<'_, str>, SessionInputValue<'_>)> = Vec::new();
        match self.signature.layout {
            InputLayout::Columns => {
                for (spec, column) in inputs.iter().zip(&columns) {
                    let value: SessionInputValue<'_> = match column {
                        // One table's numbers are lent to ONNX Runtime as they are.
                        Column::Numbers(parts) if parts.len() == 1 => {
                            TensorRef::from_array_view(([rows, 1], parts[0]))
                                .map_err(|e| run(&e))?
                                .into()
                        }
                        Column::Numbers(parts) => Tensor::from_array(([rows, 1], parts.concat()))
                            .map_err(|e| run(&e))?
                            .into(),
                        Column::Text(parts) => {
                            let ts: Vec<String> =
                                parts.iter().flat_map(|p| p.iter().map(text)).collect();
                            Tensor::from_string_array(([rows, 1], &ts[..]))
                                .map_err(|e| run(&e))?
                                .into()
                        }
                    };
                    feeds.push((Cow::Borrowed(spec.name.as_str()), value));
                }
            }
            // Row-major: a row's columns side by side.
            InputLayout::Grouped => {
                let (mut numbers, mut texts) = (Vec::new(), Vec::new());
                for column in &columns {
                    match column {
                        Column::Numbers(parts) => numbers.push(parts),
                        Column::Text(parts) => texts.push(parts),
                    }
                }
                if !numbers.is_empty() {
                    let mut xs = Vec::with_capacity(rows * numbers.len());
                    for t in 0..tables.len() {
                        for r in 0..tables[t].rows() {
                            xs.extend(numbers.iter().map(|column| column[t][r]));
                        }
                    }
                    let value =
                        Tensor::from_array(([rows, numbers.len()], xs)).map_err(|e| run(&e))?;
                    feeds.push((Cow::Borrowed(NUMBERS_INPUT), value.into()));
                }
                if !texts.is_empty() {
                    let mut ts = Vec::with_capacity(rows * texts.len());
                    for t in 0..tables.len() {
                        for r in 0..tables[t].rows() {
                            ts.extend(texts.iter().map(|column| text(&column[t][r])));
                        }
                    }
                    let value = Tensor::from_string_array(([rows, texts.len()], &ts[..]))
                        .map_err(|e| run(&e))?;
                    feeds.push((Cow::Borrowed(CATEGORIES_INPUT), value.into()));
                }
            }
        }
        let mut session = self.session.lock().unwrap_or_else(|e| e.into_inner());
        let outputs = session.run(feeds).map_err(|e| run(&e))?;
        let output = |name: &str| {
            outputs
                .get(name)
                .ok_or_else(|| InferenceError::Run(format!("the model has no output {name:?}")))
        };
        if self.signature.task == Task::Regression {
            let (_, values) = doubles(output(VALUE_OUTPUT)?)?;
            return Ok(Predictions {
                values: values.into_owned(),
                ..Predictions::default()
            });
        }
        let (width, probabilities) = doubles(output(PROBABILITIES_OUTPUT)?)?;
        let classes = width.unwrap_or(1).max(1) as usize;
        let probabilities: Vec<Vec<f64>> =
            probabilities.chunks(classes).map(<[f64]>::to_vec).collect();
        // The graph's class indices when it gives them (Sluice's graphs do); otherwise
        // (a string `label`, as scikit-learn exports) the most probable class.
        let labels = match outputs
            .get(LABEL_OUTPUT)
            .and_then(|l| l.try_extract_tensor::<i64>().ok())
        {
            Some((_, labels)) => labels.iter().map(|&l| l.max(0) as usize).collect(),
            None => probabilities
                .iter()
                .map(|p| crate::training::metrics::argmax(p))
                .collect(),
        };
        Ok(Predictions {
            probabilities,
            labels,
            values: vec![],
        })
    }
}

/// A float output as doubles (its second dimension, and its values), whichever of the
/// two the graph gives: other trainers' models (scikit-learn's, PyTorch's) often
/// compute in single precision. Doubles are read in place.
fn doubles(value: &ort::value::DynValue) -> Result<(Option<i64>, Cow<'_, [f64]>), InferenceError> {
    let run = |e: &dyn std::fmt::Display| InferenceError::Run(e.to_string());
    if let Ok((shape, xs)) = value.try_extract_tensor::<f64>() {
        return Ok((shape.get(1).copied(), Cow::Borrowed(xs)));
    }
    let (shape, xs) = value.try_extract_tensor::<f32>().map_err(|e| run(&e))?;
    let xs = xs.iter().map(|&x| f64::from(x)).collect();
    Ok((shape.get(1).copied(), Cow::Owned(xs)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_input_column_is_gathered_from_every_table_or_named_as_missing_or_mistyped() {
        use crate::dataset::contract::ColumnType;
        let spec = |tensor| InputSpec {
            name: "age".into(),
            kind: ColumnType::Integer,
            tensor,
            categories: None,
        };
        let numbers = |v: Vec<f64>| Table {
            columns: vec![("age".into(), Values::Numbers(v))],
        };
        let (a, b) = (numbers(vec![1.0, 2.0]), numbers(vec![3.0]));
        let text = Table {
            columns: vec![("age".into(), Values::Text(vec![None]))],
        };
        let other = Table {
            columns: vec![("sex".into(), Values::Text(vec![None]))],
        };
        fn pick(v: &Values) -> Option<&[f64]> {
            match v {
                Values::Numbers(xs) => Some(xs),
                Values::Text(_) => None,
            }
        }
        let parts = gather(&[&a, &b], 0, &spec(TensorType::Double), pick).unwrap();
        assert_eq!(parts, [&[1.0, 2.0][..], &[3.0][..]]);
        let missing = gather(&[&a, &other], 0, &spec(TensorType::Double), pick);
        assert!(matches!(missing, Err(InferenceError::MissingInput(c)) if c == "age"));
        let mistyped = gather(&[&a, &text], 0, &spec(TensorType::Double), pick);
        assert!(matches!(
            mistyped,
            Err(InferenceError::WrongType { column, expected: TensorType::Double }) if column == "age"
        ));
    }

    #[test]
    fn predictions_split_into_consecutive_parts() {
        let all = Predictions {
            probabilities: (0..6)
                .map(|i| vec![1.0 - f64::from(i) / 10.0, f64::from(i) / 10.0])
                .collect(),
            labels: vec![0, 1, 0, 1, 1, 0],
            values: vec![],
        };
        let parts = all.clone().split([1, 3, 2]);
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0].labels, [0]);
        assert_eq!(parts[1].labels, [1, 0, 1]);
        assert_eq!(parts[2].probabilities, all.probabilities[4..]);
    }
}
