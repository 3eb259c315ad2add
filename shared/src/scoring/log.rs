//! The prediction log: a sample of scored requests (inputs, outputs, request id, model
//! version), buffered per model and written as Parquet batches under
//! `predictions/<model>/<date>/`, so drift can later be measured against the training
//! profile. Opt-in per model (`prediction_log.sample` in its training config).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use polars::prelude::*;

use crate::model::{Table, Values};
use crate::registry::ModelName;
use crate::storage::{ObjectKey, ObjectStore, Payload, PutMode, StorageError};

use super::{RowPrediction, Scored};

/// Rows buffered per model before a batch is written.
pub const BATCH_ROWS: usize = 10_000;

/// One logged request.
struct Entry {
    at: DateTime<Utc>,
    inputs: Table,
    scored: Scored,
}

/// Whether a request is in the sample: a stable hash of its id against the share.
pub fn sampled(request_id: &str, share: f64) -> bool {
    let h = super::super::dataset::profile::hash64(request_id.as_bytes());
    (h as f64 / u64::MAX as f64) < share
}

#[derive(Default)]
pub struct PredictionLog {
    buffers: Mutex<HashMap<ModelName, Vec<Entry>>>,
}

impl PredictionLog {
    /// Buffers a scored request; returns the model's entries when a batch is full.
    pub fn record(&self, inputs: Table, scored: Scored) -> Option<(ModelName, usize)> {
        let mut buffers = self.buffers.lock().expect("prediction buffers");
        let model = scored.model.clone();
        let buffer = buffers.entry(model.clone()).or_default();
        buffer.push(Entry {
            at: Utc::now(),
            inputs,
            scored,
        });
        let rows: usize = buffer.iter().map(|e| e.scored.predictions.len()).sum();
        (rows >= BATCH_ROWS).then_some((model, rows))
    }

    /// Writes every buffered entry as one Parquet batch per model (and version, since
    /// versions may take different inputs). Returns the keys written.
    pub async fn flush(
        &self,
        store: &Arc<dyn ObjectStore>,
        scratch: &std::path::Path,
    ) -> Result<Vec<ObjectKey>, StorageError> {
        let drained: Vec<(ModelName, Vec<Entry>)> = {
            let mut buffers = self.buffers.lock().expect("prediction buffers");
            buffers.drain().filter(|(_, v)| !v.is_empty()).collect()
        };
        let mut written = Vec::new();
        for (model, entries) in drained {
            let mut versions: Vec<u32> = entries.iter().map(|e| e.scored.version).collect();
            versions.sort_unstable();
            versions.dedup();
            for version in versions {
                let batch: Vec<&Entry> = entries
                    .iter()
                    .filter(|e| e.scored.version == version)
                    .collect();
                let frame = frame(&batch).map_err(|e| StorageError::Backend {
                    store: "prediction log",
                    message: e.to_string(),
                    transient: false,
                })?;
                let key = batch_key(&model, version, Utc::now());
                let dir = tempfile::tempdir_in(scratch)
                    .map_err(|e| crate::storage::io_error("prediction log", e))?;
                let path = dir.path().join("batch.parquet");
                let mut frame = frame;
                let file = std::fs::File::create(&path)
                    .map_err(|e| crate::storage::io_error("prediction log", e))?;
                ParquetWriter::new(file)
                    .finish(&mut frame)
                    .map_err(|e| StorageError::Backend {
                        store: "prediction log",
                        message: e.to_string(),
                        transient: false,
                    })?;
                store
                    .put(&key, Payload::File(path), PutMode::Create)
                    .await?;
                written.push(key);
            }
        }
        Ok(written)
    }
}

/// One row per scored row: request id, time, version, row number, the inputs, and the
/// predicted label and each class's probability (classifiers) or the predicted value.
/// Where a batch of `model`'s `version` written at `at` goes: under its model and day.
fn batch_key(model: &ModelName, version: u32, at: DateTime<Utc>) -> ObjectKey {
    ObjectKey::parse(format!(
        "predictions/{model}/{}/{}-v{version}-{}.parquet",
        at.format("%Y-%m-%d"),
        at.format("%H%M%S%.3f"),
        uuid::Uuid::new_v4().simple()
    ))
    .expect("model names are valid key segments")
}

/// Where `model`'s batches of day `day` are.
pub fn day_prefix(model: &ModelName, day: chrono::NaiveDate) -> String {
    format!("predictions/{model}/{}/", day.format("%Y-%m-%d"))
}

/// A batch's write time and model version, read back from its key (`None` for keys of
/// another shape).
pub fn parse_batch_key(key: &str) -> Option<(DateTime<Utc>, u32)> {
    let mut parts = key.rsplit('/');
    let file = parts.next()?;
    let day = parts.next()?;
    let (time, rest) = file.split_once("-v")?;
    let version = rest.split_once('-')?.0.parse().ok()?;
    let at = chrono::NaiveDateTime::parse_from_str(&format!("{day} {time}"), "%Y-%m-%d %H%M%S%.3f")
        .ok()?
        .and_utc();
    Some((at, version))
}

fn frame(entries: &[&Entry]) -> PolarsResult<DataFrame> {
    let mut request_ids = Vec::new();
    let mut times = Vec::new();
    let mut rows = Vec::new();
    let mut labels = Vec::new();
    let mut values = Vec::new();
    let mut inputs: Vec<(String, Values)> = Vec::new();
    let mut probabilities: Vec<(String, Vec<f64>)> = Vec::new();
    for entry in entries {
        let n = entry.scored.predictions.len();
        for (r, p) in entry.scored.predictions.iter().enumerate() {
            request_ids.push(entry.scored.request_id.clone());
            times.push(entry.at.to_rfc3339());
            rows.push(r as u32);
            match p {
                RowPrediction::Class {
                    label,
                    probabilities: each,
                } => {
                    labels.push(label.to_string());
                    for (class, value) in each {
                        match probabilities.iter_mut().find(|(c, _)| **c == **class) {
                            Some((_, v)) => v.push(*value),
                            None => probabilities.push((class.to_string(), vec![*value])),
                        }
                    }
                }
                RowPrediction::Value(v) => values.push(*v),
            }
        }
        for (name, values) in &entry.inputs.columns {
            match inputs.iter_mut().find(|(n, _)| n == name) {
                Some((_, Values::Numbers(all))) => {
                    if let Values::Numbers(xs) = values {
                        all.extend_from_slice(xs);
                    }
                }
                Some((_, Values::Text(all))) => {
                    if let Values::Text(xs) = values {
                        all.extend_from_slice(xs);
                    }
                }
                None => inputs.push((name.clone(), values.clone())),
            }
        }
        debug_assert!(inputs.iter().all(|(_, v)| v.len() >= n));
    }
    let height = rows.len();
    let mut columns = vec![
        Column::new("request_id".into(), request_ids),
        Column::new("scored_at".into(), times),
        Column::new(
            "model_version".into(),
            vec![entries[0].scored.version; height],
        ),
        Column::new("row".into(), rows),
    ];
    for (name, values) in inputs {
        columns.push(match values {
            Values::Numbers(xs) => Column::new(
                name.into(),
                xs.into_iter()
                    .map(|x| (!x.is_nan()).then_some(x))
                    .collect::<Vec<_>>(),
            ),
            Values::Text(xs) => Column::new(name.into(), xs),
        });
    }
    if values.is_empty() {
        columns.push(Column::new("predicted_label".into(), labels));
        for (class, values) in probabilities {
            columns.push(Column::new(format!("p_{class}").into(), values));
        }
    } else {
        columns.push(Column::new("predicted_value".into(), values));
    }
    DataFrame::new(height, columns)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Logs written by older versions must keep reading: the path, byte for byte up to
    /// its unique suffix.
    #[test]
    fn the_prediction_log_layout_is_pinned() {
        let m = ModelName::parse("adult-income").unwrap();
        let at = DateTime::parse_from_rfc3339("2026-11-24T01:02:03.456Z")
            .unwrap()
            .with_timezone(&Utc);
        let key = batch_key(&m, 3, at);
        let prefix = "predictions/adult-income/2026-11-24/010203.456-v3-";
        assert!(key.as_str().starts_with(prefix), "{key}");
        assert!(key.as_str().ends_with(".parquet"), "{key}");
        assert_eq!(key.as_str().len(), prefix.len() + 32 + ".parquet".len());
        assert_eq!(parse_batch_key(key.as_str()), Some((at, 3)));
        assert!(key.as_str().starts_with(&day_prefix(&m, at.date_naive())));
        assert_eq!(parse_batch_key("predictions/adult-income/notes.txt"), None);
    }
}
