//! Scoring a [`Table`] with a model: the inputs are built from the model's
//! [`Signature`], the outputs read back as class probabilities.

use std::borrow::Cow;
use std::sync::Mutex;

use ort::session::{Session, SessionInputValue};
use ort::value::{Tensor, TensorRef};

use super::runtime::{Runtime, RuntimeError};
use super::signature::{InputSpec, Signature, TensorType};
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
        fn column<'t>(table: &'t Table, spec: &InputSpec) -> Result<&'t Values, InferenceError> {
            table
                .column(&spec.name)
                .ok_or_else(|| InferenceError::MissingInput(spec.name.clone()))
        }
        let wrong_type = |spec: &InputSpec| InferenceError::WrongType {
            column: spec.name.clone(),
            expected: spec.tensor,
        };
        // ONNX Runtime borrows numbers, so numbers from several tables are joined here
        // first (one table's are lent as they are).
        let mut joined = Vec::new();
        if tables.len() > 1 {
            for spec in &self.signature.inputs {
                if spec.tensor == TensorType::Double {
                    let mut all = Vec::with_capacity(rows);
                    for table in tables {
                        match column(table, spec)? {
                            Values::Numbers(xs) => all.extend_from_slice(xs),
                            Values::Text(_) => return Err(wrong_type(spec)),
                        }
                    }
                    joined.push(all);
                }
            }
        }
        let mut joined = joined.iter();
        let mut inputs: Vec<(Cow<'_, str>, SessionInputValue<'_>)> =
            Vec::with_capacity(self.signature.inputs.len());
        for spec in &self.signature.inputs {
            let value: SessionInputValue<'_> = match (spec.tensor, tables) {
                (TensorType::Double, [table]) => match column(table, spec)? {
                    Values::Numbers(xs) => TensorRef::from_array_view(([rows, 1], &xs[..]))
                        .map_err(|e| run(&e))?
                        .into(),
                    Values::Text(_) => return Err(wrong_type(spec)),
                },
                (TensorType::Double, _) => {
                    let xs = joined.next().map_or(&[][..], Vec::as_slice);
                    TensorRef::from_array_view(([rows, 1], xs))
                        .map_err(|e| run(&e))?
                        .into()
                }
                (TensorType::String, _) => {
                    let mut texts = Vec::with_capacity(rows);
                    for table in tables {
                        match column(table, spec)? {
                            Values::Text(v) => {
                                texts.extend(v.iter().map(|t| t.clone().unwrap_or_default()));
                            }
                            Values::Numbers(_) => return Err(wrong_type(spec)),
                        }
                    }
                    Tensor::from_string_array(([rows, 1], &texts[..]))
                        .map_err(|e| run(&e))?
                        .into()
                }
                (TensorType::Int64, _) => return Err(wrong_type(spec)),
            };
            inputs.push((Cow::Borrowed(spec.name.as_str()), value));
        }
        let mut session = self.session.lock().unwrap_or_else(|e| e.into_inner());
        let outputs = session.run(inputs).map_err(|e| run(&e))?;
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
