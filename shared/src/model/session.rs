//! Scoring a [`Table`] with a model: the inputs are built from the model's
//! [`Signature`], the outputs read back as class probabilities.

use std::borrow::Cow;
use std::sync::Mutex;

use ort::session::{Session, SessionInputValue};
use ort::value::Tensor;

use super::runtime::{Runtime, RuntimeError};
use super::signature::{Signature, TensorType};
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
    /// The probability of the last (positive) class per row.
    pub fn positive(&self) -> Vec<f64> {
        self.probabilities
            .iter()
            .map(|p| p.last().copied().unwrap_or(f64::NAN))
            .collect()
    }
}

/// A loaded model: a few ONNX Runtime sessions of it. An `ort` session needs exclusive
/// access to run, so concurrent calls each take a free one (waiting only when all are
/// busy); each session uses one thread, so they run in parallel.
pub struct ModelSession {
    sessions: Vec<Mutex<Session>>,
    next: std::sync::atomic::AtomicUsize,
    signature: Signature,
}

impl ModelSession {
    /// One session: enough for training checks and the gate.
    pub fn new(
        runtime: &Runtime,
        onnx: &[u8],
        signature: Signature,
    ) -> Result<Self, InferenceError> {
        Self::with_sessions(runtime, onnx, signature, 1)
    }

    /// `count` sessions, for serving concurrent requests.
    pub fn with_sessions(
        runtime: &Runtime,
        onnx: &[u8],
        signature: Signature,
        count: usize,
    ) -> Result<Self, InferenceError> {
        let mut sessions = Vec::with_capacity(count.max(1));
        for _ in 0..count.max(1) {
            sessions.push(Mutex::new(runtime.session(onnx)?));
        }
        Ok(Self {
            sessions,
            next: Default::default(),
            signature,
        })
    }

    /// A free session if there is one, else the next in turn (waiting for it).
    fn session(&self) -> std::sync::MutexGuard<'_, Session> {
        let start = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let n = self.sessions.len();
        for i in 0..n {
            if let Ok(guard) = self.sessions[(start + i) % n].try_lock() {
                return guard;
            }
        }
        self.sessions[start % n]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    pub fn predict(&self, table: &Table) -> Result<Predictions, InferenceError> {
        let rows = table.rows();
        let mut inputs: Vec<(Cow<'_, str>, SessionInputValue<'_>)> = Vec::new();
        let run = |e: &dyn std::fmt::Display| InferenceError::Run(e.to_string());
        for spec in &self.signature.inputs {
            let values = table
                .column(&spec.name)
                .ok_or_else(|| InferenceError::MissingInput(spec.name.clone()))?;
            let value: SessionInputValue<'_> = match (spec.tensor, values) {
                (TensorType::Double, Values::Numbers(xs)) => {
                    Tensor::from_array(([rows, 1], xs.clone()))
                        .map_err(|e| run(&e))?
                        .into()
                }
                (TensorType::String, Values::Text(texts)) => {
                    let texts: Vec<String> = texts
                        .iter()
                        .map(|t| t.clone().unwrap_or_default())
                        .collect();
                    Tensor::from_string_array(([rows, 1], &texts[..]))
                        .map_err(|e| run(&e))?
                        .into()
                }
                (expected, _) => {
                    return Err(InferenceError::WrongType {
                        column: spec.name.clone(),
                        expected,
                    });
                }
            };
            inputs.push((Cow::Owned(spec.name.clone()), value));
        }
        let mut session = self.session();
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
