//! Scoring a [`Table`] with a model: the inputs are built from the model's
//! [`Signature`], the outputs read back as class probabilities.

use std::borrow::Cow;
use std::sync::Mutex;

use ort::session::{Session, SessionInputValue};
use ort::value::{Tensor, TensorRef};

use super::runtime::{Runtime, RuntimeError};
use super::signature::{CATEGORIES_INPUT, InputLayout, NUMBERS_INPUT, Signature, TensorType};
use super::table::{Table, Values};

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

/// Per-row outputs of a binary classifier.
#[derive(Clone, Debug, PartialEq)]
pub struct Predictions {
    /// Class probabilities per row, in the signature's class order.
    pub probabilities: Vec<Vec<f64>>,
    /// The predicted class index per row.
    pub labels: Vec<usize>,
}

impl Predictions {
    /// Cuts the rows into consecutive parts of the given sizes.
    pub fn split(self, sizes: impl IntoIterator<Item = usize>) -> Vec<Predictions> {
        let mut probabilities = self.probabilities.into_iter();
        let mut labels = self.labels.into_iter();
        sizes
            .into_iter()
            .map(|n| Predictions {
                probabilities: probabilities.by_ref().take(n).collect(),
                labels: labels.by_ref().take(n).collect(),
            })
            .collect()
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
            let wrong_type = || InferenceError::WrongType {
                column: spec.name.clone(),
                expected: spec.tensor,
            };
            let (mut numbers, mut texts) = match spec.tensor {
                TensorType::String => (Vec::new(), Vec::with_capacity(tables.len())),
                _ => (Vec::with_capacity(tables.len()), Vec::new()),
            };
            for table in tables {
                match (spec.tensor, table.column_near(at, &spec.name)) {
                    (_, None) => return Err(InferenceError::MissingInput(spec.name.clone())),
                    (TensorType::Double, Some(Values::Numbers(xs))) => numbers.push(&xs[..]),
                    (TensorType::String, Some(Values::Text(ts))) => texts.push(&ts[..]),
                    _ => return Err(wrong_type()),
                }
            }
            columns.push(match spec.tensor {
                TensorType::Double => Column::Numbers(numbers),
                TensorType::String => Column::Text(texts),
                TensorType::Int64 => return Err(wrong_type()),
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
        let (shape, probabilities) = outputs["probabilities"]
            .try_extract_tensor::<f64>()
            .map_err(|e| run(&e))?;
        let classes = shape.get(1).copied().unwrap_or(1).max(1) as usize;
        let (_, labels) = outputs["label"]
            .try_extract_tensor::<i64>()
            .map_err(|e| run(&e))?;
        Ok(Predictions {
            probabilities: probabilities.chunks(classes).map(<[f64]>::to_vec).collect(),
            labels: labels.iter().map(|&l| l.max(0) as usize).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predictions_split_into_consecutive_parts() {
        let all = Predictions {
            probabilities: (0..6)
                .map(|i| vec![1.0 - f64::from(i) / 10.0, f64::from(i) / 10.0])
                .collect(),
            labels: vec![0, 1, 0, 1, 1, 0],
        };
        let parts = all.clone().split([1, 3, 2]);
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0].labels, [0]);
        assert_eq!(parts[1].labels, [1, 0, 1]);
        assert_eq!(parts[2].probabilities, all.probabilities[4..]);
    }
}
