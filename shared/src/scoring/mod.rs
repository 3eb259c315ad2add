//! Scoring: a request's rows, checked against the model's signature, scored by the
//! model an alias (or a version) names. Each loaded version is a [`Batcher`] (its
//! sessions and request queue), and aliases are re-read at most every [`ALIAS_TTL`],
//! so a promotion or rollback reaches the next requests within a second. Requests
//! already running finish on the version they hold (an `Arc`), which is dropped after
//! them.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

pub mod batch;
pub mod fast;
pub mod log;
mod refresh;

use crate::dataset::contract::ColumnType;
use crate::model::signature::{InputSpec, TensorType};
use crate::model::{Predictions, Runtime, Signature, Table, Values};
use crate::registry::{ModelName, Registry, RegistryError};
use batch::Batcher;
use refresh::Refreshed;

/// How long an alias's resolution is trusted before it is read again (while one request
/// re-reads it, the others use it up to half as long again: see [`refresh`]).
pub const ALIAS_TTL: Duration = Duration::from_millis(500);
/// How long a model's prediction-log setting is trusted before it is read again.
const LOG_SHARE_TTL: Duration = Duration::from_secs(5);
/// What `log_shares` keeps per model (one value each).
const LOG_SHARE: &str = "prediction_log";
/// Versions of one model kept loaded (in-flight requests keep theirs alive regardless).
const VERSIONS_KEPT: usize = 4;

/// A problem with the request's rows, located by row (0-based) and column.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct InputError {
    pub row: Option<usize>,
    pub column: Option<String>,
    pub message: String,
}

impl InputError {
    fn new(row: Option<usize>, column: Option<&str>, message: impl Into<String>) -> Self {
        Self {
            row,
            column: column.map(str::to_owned),
            message: message.into(),
        }
    }

    /// Where, as a JSON path into the request (`data[3].age`).
    pub fn field(&self) -> String {
        match (self.row, &self.column) {
            (Some(r), Some(c)) => format!("data[{r}].{c}"),
            (Some(r), None) => format!("data[{r}]"),
            (None, Some(c)) => format!("columns.{c}"),
            (None, None) => "body".into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ScoreError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error("{rows} rows is more than the {limit} a request may hold")]
    TooManyRows { rows: usize, limit: usize },
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Registry(RegistryError),
    /// ONNX Runtime failed: logged in full by the caller, answered generically.
    #[error("inference failed: {0}")]
    Inference(String),
}

impl From<RegistryError> for ScoreError {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::NoVersion { .. }
            | RegistryError::NoAlias { .. }
            | RegistryError::BadAlias(_) => ScoreError::NotFound(e.to_string()),
            other => ScoreError::Registry(other),
        }
    }
}

/// The most rows one scoring request may hold.
pub const MAX_ROWS: usize = 10_000;

/// Decodes a request body's bytes: straight into columns when it is a valid records body
/// ([`fast`]), else through [`decode`], which also says what is wrong and where.
pub fn decode_body(
    bytes: &[u8],
    signature: &Signature,
    max_rows: usize,
) -> Result<Table, ScoreError> {
    if let Some(table) = fast::decode_records(bytes, signature, max_rows) {
        return Ok(table);
    }
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| InputError::new(None, None, format!("not JSON: {e}")))?;
    decode(&value, signature, max_rows)
}

/// Decodes a request body into the signature's input columns. Two forms:
/// records `{"data": [{"age": 39, …}, …]}` and columns
/// `{"columns": ["age", …], "data": [[39, …], …]}`. Fields the model does not take
/// are ignored; a null is a missing value (the model imputes it).
pub fn decode(body: &Value, signature: &Signature, max_rows: usize) -> Result<Table, ScoreError> {
    let object = body
        .as_object()
        .ok_or_else(|| InputError::new(None, None, "the body must be a JSON object with `data`"))?;
    let data = object
        .get("data")
        .and_then(Value::as_array)
        .ok_or_else(|| InputError::new(None, None, "`data` must be an array of rows"))?;
    if data.is_empty() {
        return Err(InputError::new(None, None, "`data` holds no rows").into());
    }
    if data.len() > max_rows {
        return Err(ScoreError::TooManyRows {
            rows: data.len(),
            limit: max_rows,
        });
    }
    // Where each input is in a row: by name (records) or by position (columns).
    let positions: Option<HashMap<&str, usize>> = match object.get("columns") {
        None => None,
        Some(Value::Array(names)) => {
            let mut at = HashMap::new();
            for (i, n) in names.iter().enumerate() {
                let n = n.as_str().ok_or_else(|| {
                    InputError::new(None, None, format!("columns[{i}] must be a string"))
                })?;
                at.insert(n, i);
            }
            for input in &signature.inputs {
                if !at.contains_key(input.name.as_str()) {
                    return Err(InputError::new(
                        None,
                        Some(&input.name),
                        format!("column {:?} is missing", input.name),
                    )
                    .into());
                }
            }
            Some(at)
        }
        Some(_) => {
            return Err(InputError::new(None, None, "`columns` must be an array of names").into());
        }
    };
    let mut columns: Vec<(String, Values)> = signature
        .inputs
        .iter()
        .map(|i| {
            let values = match i.tensor {
                TensorType::String => Values::Text(Vec::with_capacity(data.len())),
                _ => Values::Numbers(Vec::with_capacity(data.len())),
            };
            (i.name.clone(), values)
        })
        .collect();
    for (r, row) in data.iter().enumerate() {
        for (input, (_, values)) in signature.inputs.iter().zip(columns.iter_mut()) {
            let value = match (&positions, row) {
                (None, Value::Object(fields)) => fields.get(&input.name).ok_or_else(|| {
                    InputError::new(
                        Some(r),
                        Some(&input.name),
                        format!("column {:?} is missing", input.name),
                    )
                })?,
                (Some(at), Value::Array(cells)) => {
                    let i = at[input.name.as_str()];
                    cells.get(i).ok_or_else(|| {
                        InputError::new(
                            Some(r),
                            Some(&input.name),
                            format!("the row has {} values, `columns` names more", cells.len()),
                        )
                    })?
                }
                (None, _) => {
                    return Err(InputError::new(
                        Some(r),
                        None,
                        "each row must be an object (or send `columns`)",
                    )
                    .into());
                }
                (Some(_), _) => {
                    return Err(InputError::new(
                        Some(r),
                        None,
                        "with `columns`, each row must be an array",
                    )
                    .into());
                }
            };
            push(input, values, value)
                .map_err(|m| InputError::new(Some(r), Some(&input.name), m))?;
        }
    }
    Ok(Table { columns })
}

fn push(input: &InputSpec, values: &mut Values, value: &Value) -> Result<(), String> {
    match values {
        Values::Numbers(xs) => {
            let x = match value {
                Value::Null => f64::NAN,
                Value::Number(n) => {
                    let x = n.as_f64().ok_or("not a representable number")?;
                    if !x.is_finite() {
                        return Err("must be a finite number".into());
                    }
                    if input.kind == ColumnType::Integer && x.fract() != 0.0 {
                        return Err(format!("must be an integer, got {x}"));
                    }
                    x
                }
                Value::Bool(b) if input.kind == ColumnType::Boolean => f64::from(u8::from(*b)),
                other => return Err(format!("must be a number, got {}", kind_of(other))),
            };
            xs.push(x);
        }
        Values::Text(texts) => {
            let text = match value {
                Value::Null => None,
                Value::String(s) => {
                    let s = s.trim();
                    if let Some(categories) = &input.categories
                        && categories.binary_search_by(|c| c.as_str().cmp(s)).is_err()
                    {
                        let shown: Vec<&str> =
                            categories.iter().take(10).map(String::as_str).collect();
                        let more = if categories.len() > 10 { ", …" } else { "" };
                        return Err(format!(
                            "unknown category {s:?}; the model knows {}{more}",
                            shown.join(", ")
                        ));
                    }
                    Some(s.to_owned())
                }
                other => return Err(format!("must be a string, got {}", kind_of(other))),
            };
            texts.push(text);
        }
    }
    Ok(())
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Which model version a request wants.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    Alias(String),
    Version(u32),
}

/// One row's answer. A classifier's is `{"label": …, "probabilities": {class: p, …}}`
/// with every class in the signature's order (the class names are the loaded model's,
/// shared rather than copied for every row); a regression model's is `{"value": …}`.
#[derive(Clone, Debug, PartialEq)]
pub enum RowPrediction {
    Class {
        label: Arc<str>,
        /// Each class's probability, in the signature's class order.
        probabilities: Vec<(Arc<str>, f64)>,
    },
    Value(f64),
}

impl RowPrediction {
    /// The probability of `class`, if the model has it.
    pub fn probability(&self, class: &str) -> Option<f64> {
        match self {
            RowPrediction::Class { probabilities, .. } => probabilities
                .iter()
                .find(|(c, _)| &**c == class)
                .map(|(_, p)| *p),
            RowPrediction::Value(_) => None,
        }
    }

    /// The predicted class, for a classifier.
    pub fn label(&self) -> Option<&str> {
        match self {
            RowPrediction::Class { label, .. } => Some(label),
            RowPrediction::Value(_) => None,
        }
    }

    /// The predicted value, for a regression model.
    pub fn value(&self) -> Option<f64> {
        match self {
            RowPrediction::Value(v) => Some(*v),
            RowPrediction::Class { .. } => None,
        }
    }

    /// Each row's answer from a run's predictions and the model's class names.
    pub fn rows(predictions: Predictions, classes: &[Arc<str>]) -> Vec<RowPrediction> {
        if predictions.probabilities.is_empty() {
            return predictions
                .values
                .into_iter()
                .map(RowPrediction::Value)
                .collect();
        }
        predictions
            .probabilities
            .iter()
            .zip(&predictions.labels)
            .map(|(p, &label)| RowPrediction::Class {
                label: classes.get(label).cloned().unwrap_or_else(|| "".into()),
                probabilities: classes.iter().cloned().zip(p.iter().copied()).collect(),
            })
            .collect()
    }
}

impl Serialize for RowPrediction {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        struct Probabilities<'a>(&'a [(Arc<str>, f64)]);
        impl Serialize for Probabilities<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_map(self.0.iter().map(|(c, p)| (&**c, p)))
            }
        }
        match self {
            RowPrediction::Class {
                label,
                probabilities,
            } => {
                let mut row = s.serialize_map(Some(2))?;
                row.serialize_entry("label", &**label)?;
                row.serialize_entry("probabilities", &Probabilities(probabilities))?;
                row.end()
            }
            RowPrediction::Value(value) => {
                let mut row = s.serialize_map(Some(1))?;
                row.serialize_entry("value", value)?;
                row.end()
            }
        }
    }
}

/// A scored request: the predictions and exactly which model made them.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Scored {
    pub model: ModelName,
    pub version: u32,
    /// The release that put this version behind the alias (None for `?version=`).
    pub release: Option<String>,
    pub predictions: Vec<RowPrediction>,
    /// The request's id: it names the request in logs and in the prediction log.
    pub request_id: String,
}

struct Loaded {
    version: u32,
    release: Option<String>,
    session: Arc<Batcher>,
}

/// Keeps at most `most` of a model's loaded versions: `current` (after a rollback it may
/// be the oldest) and the newest others.
fn keep_newest<T>(versions: &mut BTreeMap<u32, T>, current: u32, most: usize) {
    while versions.len() > most.max(1) {
        let Some(oldest) = versions.keys().copied().find(|&v| v != current) else {
            break;
        };
        versions.remove(&oldest);
    }
}

/// Serves scoring for every model in the registry.
pub struct Scorer {
    registry: Registry,
    runtime: &'static Runtime,
    sessions_per_version: usize,
    /// Loaded versions by model (looked up by reference on every request).
    sessions: Mutex<HashMap<ModelName, BTreeMap<u32, Arc<Batcher>>>>,
    /// Alias resolutions (version, release) by model, then alias.
    aliases: Refreshed<(u32, String)>,
    /// Each model's prediction-log sample share (None: off).
    log_shares: Refreshed<Option<f64>>,
    log: Arc<log::PredictionLog>,
    scratch: std::path::PathBuf,
    pub max_rows: usize,
}

impl Scorer {
    pub fn new(
        registry: Registry,
        runtime: &'static Runtime,
        sessions_per_version: usize,
        max_rows: usize,
    ) -> Self {
        Self {
            registry,
            runtime,
            sessions_per_version,
            sessions: Mutex::default(),
            aliases: Refreshed::new(ALIAS_TTL),
            log_shares: Refreshed::new(LOG_SHARE_TTL),
            log: Arc::default(),
            scratch: std::env::temp_dir(),
            max_rows,
        }
    }

    /// Where prediction-log batches are staged before upload.
    pub fn with_scratch(mut self, scratch: std::path::PathBuf) -> Self {
        self.scratch = scratch;
        self
    }

    async fn log_share(&self, model: &ModelName) -> Option<f64> {
        let read = async {
            let key = crate::training::configs::current_key(model);
            let store = self.registry.store().as_ref();
            let config = crate::storage::get_json::<crate::training::TrainingConfig>(store, &key);
            Ok::<_, std::convert::Infallible>(
                config
                    .await
                    .ok()
                    .and_then(|(c, _)| c.prediction_log.map(|p| p.sample)),
            )
        };
        let Ok(share) = self.log_shares.get(model, LOG_SHARE, read).await;
        share
    }

    /// The models whose `alias` this scorer has resolved lately: (model, version,
    /// release), by model name.
    pub fn loaded_aliases(&self, alias: &str) -> Vec<(ModelName, u32, String)> {
        let mut out: Vec<_> = self
            .aliases
            .named(alias)
            .into_iter()
            .map(|(m, (v, r))| (m, v, r))
            .collect();
        out.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
        out
    }

    /// Writes the buffered prediction-log entries (call periodically and on shutdown).
    pub async fn flush_log(
        &self,
    ) -> Result<Vec<crate::storage::ObjectKey>, crate::storage::StorageError> {
        self.log.flush(self.registry.store(), &self.scratch).await
    }

    async fn session(&self, model: &ModelName, version: u32) -> Result<Arc<Batcher>, ScoreError> {
        let cached = self
            .sessions
            .lock()
            .expect("session cache")
            .get(model)
            .and_then(|versions| versions.get(&version).cloned());
        if let Some(session) = cached {
            return Ok(session);
        }
        let manifest = self.registry.version(model, version).await?;
        let bytes = self.registry.model_bytes(model, version).await?;
        let (runtime, count) = (self.runtime, self.sessions_per_version);
        let session = tokio::task::spawn_blocking(move || {
            Batcher::new(runtime, &bytes, manifest.signature, count)
        })
        .await
        .map_err(|e| ScoreError::Inference(e.to_string()))?
        .map_err(|e| ScoreError::Inference(e.to_string()))?;
        let mut cache = self.sessions.lock().expect("session cache");
        let versions = cache.entry(model.clone()).or_default();
        let entry = versions.entry(version).or_insert(Arc::new(session)).clone();
        // Requests still running on an evicted version hold their own reference to it.
        keep_newest(versions, version, VERSIONS_KEPT);
        Ok(entry)
    }

    async fn load(&self, model: &ModelName, target: &Target) -> Result<Loaded, ScoreError> {
        match target {
            Target::Version(v) => Ok(Loaded {
                version: *v,
                release: None,
                session: self.session(model, *v).await?,
            }),
            Target::Alias(alias) => {
                // A missing alias is a 404 (see `From<RegistryError>`).
                let read = async {
                    let (a, _) = self.registry.require_alias(model, alias).await?;
                    Ok::<_, ScoreError>((a.release.version, a.release.id))
                };
                let (version, release) = self.aliases.get(model, alias, read).await?;
                Ok(Loaded {
                    version,
                    release: Some(release),
                    session: self.session(model, version).await?,
                })
            }
        }
    }

    /// Decodes and scores a request body against the model `target` names; logs it
    /// when the model's prediction log samples `request_id`.
    pub async fn score(
        &self,
        model: &ModelName,
        target: &Target,
        body: &[u8],
        request_id: &str,
    ) -> Result<Scored, ScoreError> {
        let loaded = self.load(model, target).await?;
        let table = decode_body(body, loaded.session.signature(), self.max_rows)?;
        let (table, predictions) = loaded.session.predict(table).await;
        let predictions = predictions.map_err(|e| ScoreError::Inference(e.to_string()))?;
        let rows = RowPrediction::rows(predictions, loaded.session.classes());
        let scored = Scored {
            model: model.clone(),
            version: loaded.version,
            release: loaded.release,
            predictions: rows,
            request_id: request_id.to_owned(),
        };
        if let Some(share) = self.log_share(model).await
            && log::sampled(request_id, share)
            && self.log.record(table, scored.clone()).is_some()
        {
            // A full batch is written off the request's path.
            let (log, store, scratch) = (
                self.log.clone(),
                self.registry.store().clone(),
                self.scratch.clone(),
            );
            tokio::spawn(async move {
                if let Err(e) = log.flush(&store, &scratch).await {
                    tracing::warn!(error = %e, "writing the prediction log failed");
                }
            });
        }
        Ok(scored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn signature() -> Signature {
        Signature {
            inputs: vec![
                InputSpec {
                    name: "age".into(),
                    kind: ColumnType::Integer,
                    tensor: TensorType::Double,
                    categories: None,
                },
                InputSpec {
                    name: "sex".into(),
                    kind: ColumnType::String,
                    tensor: TensorType::String,
                    categories: Some(vec!["Female".into(), "Male".into()]),
                },
            ],
            layout: crate::model::signature::InputLayout::Columns,
            task: crate::model::Task::Binary,
            label: "income".into(),
            classes: vec!["<=50K".into(), ">50K".into()],
            outputs: vec![],
        }
    }

    #[test]
    fn the_version_in_use_stays_loaded_even_when_it_is_the_oldest() {
        let mut versions: BTreeMap<u32, ()> = (1..=5).map(|v| (v, ())).collect();
        keep_newest(&mut versions, 5, 4);
        assert_eq!(versions.keys().copied().collect::<Vec<_>>(), [2, 3, 4, 5]);
        // A rollback to v1 loads it again; it must not be the one evicted.
        versions.insert(1, ());
        keep_newest(&mut versions, 1, 4);
        assert_eq!(versions.keys().copied().collect::<Vec<_>>(), [1, 3, 4, 5]);
    }

    #[test]
    fn records_and_columns_decode_to_the_same_table() {
        let records =
            json!({"data": [{"age": 39, "sex": "Male", "extra": 1}, {"age": null, "sex": null}]});
        let columns = json!({"columns": ["sex", "age"], "data": [["Male", 39], [null, null]]});
        let a = decode(&records, &signature(), 10).unwrap();
        let b = decode(&columns, &signature(), 10).unwrap();
        assert_eq!(a.columns[1], b.columns[1]);
        let (Values::Numbers(x), Values::Numbers(y)) = (&a.columns[0].1, &b.columns[0].1) else {
            panic!()
        };
        assert_eq!(x[0], 39.0);
        assert!(x[1].is_nan() && y[1].is_nan());
    }

    #[test]
    fn bad_rows_are_named_by_row_and_column() {
        let cases = [
            (
                json!({"data": [{"age": 1, "sex": "Male"}, {"sex": "Male"}]}),
                "data[1].age",
                "missing",
            ),
            (
                json!({"data": [{"age": "39", "sex": "Male"}]}),
                "data[0].age",
                "must be a number",
            ),
            (
                json!({"data": [{"age": 39.5, "sex": "Male"}]}),
                "data[0].age",
                "integer",
            ),
            (
                json!({"data": [{"age": 39, "sex": "Robot"}]}),
                "data[0].sex",
                "unknown category",
            ),
            (
                json!({"data": [{"age": 39, "sex": 1}]}),
                "data[0].sex",
                "must be a string",
            ),
            (
                json!({"columns": ["age"], "data": [[1]]}),
                "columns.sex",
                "missing",
            ),
            (json!({"data": []}), "body", "no rows"),
            (json!([1]), "body", "JSON object"),
            (json!({"data": [[1, "Male"]]}), "data[0]", "object"),
        ];
        for (body, field, message) in cases {
            match decode(&body, &signature(), 10) {
                Err(ScoreError::Input(e)) => {
                    assert_eq!(e.field(), field, "{body}");
                    assert!(e.message.contains(message), "{body}: {}", e.message);
                }
                other => panic!("{body}: {other:?}"),
            }
        }
        let many = json!({"data": vec![json!({"age": 1, "sex": "Male"}); 11]});
        assert!(matches!(
            decode(&many, &signature(), 10),
            Err(ScoreError::TooManyRows {
                rows: 11,
                limit: 10
            })
        ));
    }

    #[test]
    fn valid_records_take_the_fast_path_and_anything_else_falls_back() {
        let fast = |body: &str| fast::decode_records(body.as_bytes(), &signature(), 10);
        let table = fast(r#"{"id": 7, "data": [{"sex": " Male ", "age": 39, "x": [1]}, {"age": null, "sex": null}]}"#)
            .unwrap();
        let spaced = "\n{ \"data\" :\t[ { \"age\" : 39 ,\r\n \"sex\" : \" Male \" , \"x\" : { \"y\" : [ ] } } ,\n{\"age\":null,\"sex\":null} ] , \"id\" : -0.5e1 } \n";
        // Debug, so NaN equals NaN.
        assert_eq!(format!("{:?}", fast(spaced)), format!("{:?}", Some(&table)));
        assert_eq!(
            table.columns[1].1,
            Values::Text(vec![Some("Male".into()), None])
        );
        for body in [
            r#"{"columns": ["age", "sex"], "data": [[1, "Male"]]}"#,
            r#"{"data": [{"age": 1, "sex": "Male"}], "columns": []}"#,
            r#"{"data": [{"age": 1, "sex": "Male"}], "data": []}"#,
            r#"{"data": [{"age": 1, "age": 2, "sex": "Male"}]}"#,
            r#"{"data": [{"age": 1}]}"#,
            r#"{"data": [{"age": 1.5, "sex": "Male"}]}"#,
            r#"{"data": [{"age": 1, "sex": "Other"}]}"#,
            r#"{"data": []}"#,
            r#"{"data": [{"age": 1, "sex": "Male"}]} trailing"#,
            r#"{"data": [{"age": 1, "sex": "Male", "x": [1,]}]}"#,
            r#"{"data": [{"age": 1, "sex": "Male"},]}"#,
            r#"{,"data": [{"age": 1, "sex": "Male"}]}"#,
            r#"{"data": [{"age": 01, "sex": "Male"}]}"#,
        ] {
            assert!(fast(body).is_none(), "{body}");
        }
        let eleven = format!(
            r#"{{"data": [{}]}}"#,
            [r#"{"age": 1, "sex": "Male"}"#; 11].join(",")
        );
        assert!(fast(&eleven).is_none());
    }

    /// The decoder's short fuzz run (the long one is `fuzz/`, with cargo-fuzz): seeded
    /// random bodies, from valid requests mutated at random places into every JSON kind,
    /// never panic, and every error names a field.
    #[test]
    fn decoding_random_bodies_never_panics() {
        let mut state = 0x5EED_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let leaf = |r: u64| match r % 12 {
            0 => Value::Null,
            1 => json!(r.is_multiple_of(2)),
            2 => json!((r % 200) as i64 - 100),
            3 => json!(((r % 1000) as f64) / 7.0),
            4 => json!("Male"),
            5 => json!(format!("x{}", r % 5)),
            6 => json!([]),
            7 => json!({}),
            8 => json!(["Ma\"le", {"a": [1, "é"]}]),
            9 => json!(-0.0),
            10 => json!(r),
            _ => json!("\tMale\u{e9}"),
        };
        for _ in 0..20_000 {
            let mut body = if next() % 2 == 0 {
                json!({"data": [{"age": 39, "sex": "Male"}, {"age": null, "sex": "Female"}]})
            } else {
                json!({"columns": ["sex", "age"], "data": [["Male", 39], [null, 1]]})
            };
            for _ in 0..(next() % 4) {
                let at = [
                    "",
                    "/data",
                    "/data/0",
                    "/data/1",
                    "/columns",
                    "/data/0/age",
                    "/data/0/sex",
                    "/data/1/0",
                ];
                let value = leaf(next());
                if let Some(target) = body.pointer_mut(at[(next() % 8) as usize]) {
                    *target = value;
                }
            }
            // The fast path agrees with the full decoder on every body, compact or
            // pretty-printed (Debug, so NaN equals NaN).
            // Each body is decoded for a model of one of the tasks, in turn.
            let mut signature = signature();
            signature.task = crate::model::Task::ALL[(next() % 3) as usize];
            if signature.task == crate::model::Task::Multiclass {
                signature.classes.push("unknown".into());
            } else if signature.task == crate::model::Task::Regression {
                signature.classes.clear();
            }
            let full = format!("{:?}", decode(&body, &signature, 10));
            for bytes in [
                serde_json::to_vec(&body).unwrap(),
                serde_json::to_vec_pretty(&body).unwrap(),
            ] {
                let fast = format!("{:?}", decode_body(&bytes, &signature, 10));
                assert_eq!(fast, full, "{}", String::from_utf8_lossy(&bytes));
            }
            match decode(&body, &signature, 10) {
                Ok(table) => assert_eq!(table.columns.len(), 2),
                Err(ScoreError::Input(e)) => {
                    assert!(!e.field().is_empty() && !e.message.is_empty())
                }
                Err(other) => panic!("{body}: {other:?}"),
            }
        }
    }
}
