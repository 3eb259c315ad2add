//! Ground truth: labels (or, for regression, values) that arrive after the predictions
//! they judge, named by the scored request's id and row.
//!
//! A batch comes through `POST /api/feedback/{model}` or as a file under
//! `landing/feedback/<model>/` (CSV with a header, JSON Lines, or one JSON array). Either
//! way it is checked whole — every label must fit the model (a class it knows, or a
//! number) — and then kept as received, create-only, under an id derived from what it
//! is (the labels themselves, or the upload's key and ETag), so a redelivered batch is
//! the same batch. A file that fails the checks is quarantined with a report naming each
//! problem's line; it stays in `landing/`. Matching labels with the prediction log is the
//! monitor's work ([`super::live`]): a label may arrive before its prediction is written.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::layout;
use crate::audit::{Action, AuditLog, Entry};
use crate::dataset::ingest::Upload;
use crate::model::Task;
use crate::registry::{ModelName, PRODUCTION, Registry, RegistryError};
use crate::storage::{ObjectKey, ObjectStore, StorageError, create_or_read};

/// The most labels one batch may hold (a larger set is sent as several batches).
pub const MAX_LABELS: usize = 10_000;
/// The largest feedback file read; a larger one is quarantined, not read.
pub const MAX_FILE_BYTES: u64 = 16 << 20;
/// The longest request id taken (Sluice's own are 36 characters).
const MAX_REQUEST_ID: usize = 256;
/// How many problems a quarantine report lists (it counts them all).
const PROBLEMS_LISTED: usize = 100;

/// What is true of one scored row: its class, or its value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Truth {
    Label(String),
    Value(f64),
}

/// One label: the request and row it is about, and the truth.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Label {
    pub request_id: String,
    /// The row within the request (0 for one-row requests).
    #[serde(default)]
    pub row: u32,
    #[serde(flatten)]
    pub truth: Truth,
}

/// Where a batch came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Api { actor: String },
    Upload { key: ObjectKey, etag: String },
}

/// A batch as received (`feedback/<model>/batches/<id>.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    pub id: String,
    pub model: ModelName,
    pub received_at: DateTime<Utc>,
    pub source: Source,
    /// Each request and row once (the first label given for it).
    pub labels: Vec<Label>,
    /// Labels left out because the batch labelled the same request and row before.
    pub repeated: u64,
}

/// One problem with a label: where it is and what is wrong.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    /// `[3].label` in a request body; `label` with `line` set in a file.
    pub field: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    pub message: String,
}

/// A refused feedback file (`feedback/<model>/quarantine/<id>.json`); the file itself
/// stays where it was uploaded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Quarantine {
    pub id: String,
    pub model: String,
    pub upload: ObjectKey,
    pub etag: String,
    pub quarantined_at: DateTime<Utc>,
    /// Every problem counted; the first hundred listed.
    pub problem_count: u64,
    pub problems: Vec<Problem>,
}

#[derive(Debug, thiserror::Error)]
pub enum FeedbackError {
    #[error("no model {0}")]
    UnknownModel(String),
    /// The batch was refused; the first problem, and how many there were.
    #[error("{}: {} ({count} problem(s) in all)", first.field, first.message)]
    Invalid { first: Problem, count: u64 },
    #[error("{count} labels in one batch; send at most {MAX_LABELS} per batch")]
    TooMany { count: usize },
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
}

impl FeedbackError {
    pub fn is_transient(&self) -> bool {
        match self {
            FeedbackError::Storage(e)
            | FeedbackError::Registry(RegistryError::Storage(e))
            | FeedbackError::Audit(crate::audit::AuditError::Storage(e)) => e.is_transient(),
            _ => false,
        }
    }
}

/// What became of a batch that was taken.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Accepted {
    pub batch: String,
    pub model: ModelName,
    pub key: ObjectKey,
    /// Distinct labels kept.
    pub labels: u64,
    pub repeated: u64,
    /// The same batch was taken before (a retried request or a redelivered event).
    pub duplicate: bool,
}

/// What became of a feedback file.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum UploadOutcome {
    Accepted(Accepted),
    Quarantined {
        report: Box<Quarantine>,
        key: ObjectKey,
        duplicate: bool,
    },
    Ignored {
        reason: String,
    },
}

/// What a model takes as truth: its task and classes (production's version, else its
/// newest).
#[derive(Clone, Debug, PartialEq)]
pub struct Expected {
    pub task: Task,
    pub classes: Vec<String>,
}

/// Takes ground truth in: checks it, keeps it, audits it.
#[derive(Clone)]
pub struct Feedback {
    store: Arc<dyn ObjectStore>,
    registry: Registry,
    audit: AuditLog,
}

impl Feedback {
    pub fn new(store: Arc<dyn ObjectStore>) -> Self {
        Self {
            registry: Registry::new(store.clone()),
            audit: AuditLog::new(store.clone()),
            store,
        }
    }

    /// What `model` takes as truth, or [`FeedbackError::UnknownModel`].
    pub async fn expected(&self, model: &ModelName) -> Result<Expected, FeedbackError> {
        let version = match self.registry.alias(model, PRODUCTION).await? {
            Some((alias, _)) => alias.release.version,
            None => *self
                .registry
                .versions(model)
                .await?
                .last()
                .ok_or_else(|| FeedbackError::UnknownModel(model.to_string()))?,
        };
        let signature = self.registry.version(model, version).await?.signature;
        Ok(Expected {
            task: signature.task,
            classes: signature.classes,
        })
    }

    /// `POST /api/feedback/{model}`: a JSON array of `{request_id, row?, label|value}`,
    /// taken whole or refused with the first problem named (`[i].field`).
    pub async fn submit(
        &self,
        model: &ModelName,
        body: &[u8],
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<Accepted, FeedbackError> {
        let expected = self.expected(model).await?;
        let items: Value = serde_json::from_slice(body).map_err(|e| invalid("body", None, e))?;
        let Value::Array(items) = items else {
            return Err(invalid(
                "body",
                None,
                "must be a JSON array of {request_id, label} or {request_id, value}",
            ));
        };
        if items.len() > MAX_LABELS {
            return Err(FeedbackError::TooMany { count: items.len() });
        }
        let mut labels = Vec::with_capacity(items.len());
        let mut problems = Vec::new();
        for (i, item) in items.iter().enumerate() {
            match check(item, &expected) {
                Ok(label) => labels.push(label),
                Err((field, message)) => problems.push(Problem {
                    field: format!(
                        "[{i}]{}",
                        field.map(|f| format!(".{f}")).unwrap_or_default()
                    ),
                    line: None,
                    message,
                }),
            }
        }
        refuse_if_any(problems)?;
        let id = content_id(model, &labels);
        let source = Source::Api {
            actor: actor.to_owned(),
        };
        self.keep(model, id, source, labels, now).await
    }

    /// A file under `landing/feedback/<model>/`: kept as a batch, or quarantined with a
    /// report of every problem; either way once per upload (key and ETag).
    pub async fn ingest_upload(
        &self,
        upload: &Upload,
        bytes: Option<Bytes>,
        now: DateTime<Utc>,
    ) -> Result<UploadOutcome, FeedbackError> {
        let model = match layout::model_of_feedback_upload(&upload.key) {
            None => {
                return Ok(UploadOutcome::Ignored {
                    reason: format!(
                        "{} is not under {}<model>/",
                        upload.key,
                        layout::FEEDBACK_LANDING
                    ),
                });
            }
            Some(Err(e)) => {
                return Ok(UploadOutcome::Ignored {
                    reason: e.to_string(),
                });
            }
            Some(Ok(model)) => model,
        };
        let meta = match self.store.head(&upload.key).await {
            Ok(meta) => meta,
            Err(StorageError::NotFound { .. }) => {
                return Ok(UploadOutcome::Ignored {
                    reason: format!("{} no longer exists", upload.key),
                });
            }
            Err(e) => return Err(e.into()),
        };
        let etag = meta.etag.to_string();
        let id = hex_id(&[b"upload", upload.key.as_str().as_bytes(), etag.as_bytes()]);
        let source = Source::Upload {
            key: upload.key.clone(),
            etag: etag.clone(),
        };
        let parsed = match self.expected(&model).await {
            Err(FeedbackError::UnknownModel(m)) => Err(vec![Problem {
                field: "model".into(),
                line: None,
                message: format!(
                    "no model {m}: feedback goes under {}<model>/",
                    layout::FEEDBACK_LANDING
                ),
            }]),
            Err(e) => return Err(e),
            Ok(_) if meta.size > MAX_FILE_BYTES => Err(vec![Problem {
                field: "file".into(),
                line: None,
                message: format!(
                    "{} bytes; a feedback file may hold at most {MAX_FILE_BYTES} bytes (split it)",
                    meta.size
                ),
            }]),
            Ok(expected) => {
                let bytes = match bytes {
                    Some(b) => b,
                    None => self.store.get(&upload.key).await?.bytes().await?,
                };
                parse_file(upload.key.as_str(), &bytes, &expected)
            }
        };
        match parsed {
            Ok(labels) => Ok(UploadOutcome::Accepted(
                self.keep(&model, id, source, labels, now).await?,
            )),
            Err(problems) => {
                self.quarantine(&model, id, upload, etag, problems, now)
                    .await
            }
        }
    }

    /// Writes the batch create-only and audits it; a batch already kept is answered as
    /// it was kept.
    async fn keep(
        &self,
        model: &ModelName,
        id: String,
        source: Source,
        labels: Vec<Label>,
        now: DateTime<Utc>,
    ) -> Result<Accepted, FeedbackError> {
        let (labels, repeated) = first_of_each(labels);
        let batch = Batch {
            id: id.clone(),
            model: model.clone(),
            received_at: now,
            source,
            labels,
            repeated,
        };
        let key = layout::feedback_batch(model, &id);
        let (batch, created) = create_or_read(self.store.as_ref(), &key, batch).await?;
        let duplicate = !created;
        if !duplicate {
            let actor = match &batch.source {
                Source::Api { actor } => actor.clone(),
                Source::Upload { .. } => "sluice:FeedbackUpload".to_owned(),
            };
            self.audit
                .append(Entry {
                    action: Action::FeedbackReceived,
                    actor,
                    subject: format!("model:{model}"),
                    reason: format!("{} label(s) received", batch.labels.len()),
                    correlation_id: format!("feedback:{id}"),
                    details: serde_json::json!({
                        "batch": key.as_str(),
                        "labels": batch.labels.len(),
                        "repeated": batch.repeated,
                        "source": batch.source,
                    }),
                })
                .await?;
        }
        tracing::info!(model = %model, batch = %id, labels = batch.labels.len(), duplicate, "feedback kept");
        Ok(Accepted {
            batch: id,
            model: model.clone(),
            key,
            labels: batch.labels.len() as u64,
            repeated: batch.repeated,
            duplicate,
        })
    }

    async fn quarantine(
        &self,
        model: &ModelName,
        id: String,
        upload: &Upload,
        etag: String,
        problems: Vec<Problem>,
        now: DateTime<Utc>,
    ) -> Result<UploadOutcome, FeedbackError> {
        let report = Quarantine {
            id: id.clone(),
            model: model.to_string(),
            upload: upload.key.clone(),
            etag,
            quarantined_at: now,
            problem_count: problems.len() as u64,
            problems: problems.into_iter().take(PROBLEMS_LISTED).collect(),
        };
        let key = layout::feedback_quarantine(model, &id);
        let (report, created) = create_or_read(self.store.as_ref(), &key, report).await?;
        let duplicate = !created;
        if !duplicate {
            let first = &report.problems[0];
            self.audit
                .append(Entry {
                    action: Action::FeedbackRejected,
                    actor: "sluice:FeedbackUpload".into(),
                    subject: format!("model:{model}"),
                    reason: format!(
                        "{} problem(s); first: {}{}: {}",
                        report.problem_count,
                        first.line.map(|l| format!("line {l}, ")).unwrap_or_default(),
                        first.field,
                        first.message
                    ),
                    correlation_id: format!("feedback:{id}"),
                    details: serde_json::json!({"report": key.as_str(), "upload": upload.key.as_str()}),
                })
                .await?;
        }
        tracing::warn!(model = %model, upload = %upload.key, problems = report.problem_count, "feedback file quarantined");
        Ok(UploadOutcome::Quarantined {
            report: Box::new(report),
            key,
            duplicate,
        })
    }
}

fn invalid(field: &str, line: Option<u64>, message: impl std::fmt::Display) -> FeedbackError {
    FeedbackError::Invalid {
        first: Problem {
            field: field.to_owned(),
            line,
            message: message.to_string(),
        },
        count: 1,
    }
}

fn refuse_if_any(mut problems: Vec<Problem>) -> Result<(), FeedbackError> {
    if problems.is_empty() {
        return Ok(());
    }
    let count = problems.len() as u64;
    Err(FeedbackError::Invalid {
        first: problems.swap_remove(0),
        count,
    })
}

/// The first label for each request and row, and how many repeats were left out.
fn first_of_each(labels: Vec<Label>) -> (Vec<Label>, u64) {
    let mut seen = HashSet::new();
    let before = labels.len();
    let kept: Vec<Label> = labels
        .into_iter()
        .filter(|l| seen.insert((l.request_id.clone(), l.row)))
        .collect();
    let repeated = (before - kept.len()) as u64;
    (kept, repeated)
}

/// 32 hex digits of SHA-256 over the parts (each length-prefixed, so no two part lists
/// collide by concatenation).
fn hex_id(parts: &[&[u8]]) -> String {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update((part.len() as u64).to_le_bytes());
        hash.update(part);
    }
    hex::encode(&hash.finalize()[..16])
}

/// An API batch is named by what it says: the same labels sent again are the same batch.
fn content_id(model: &ModelName, labels: &[Label]) -> String {
    let json = serde_json::to_vec(labels).expect("labels serialise");
    hex_id(&[b"api", model.as_str().as_bytes(), &json])
}

/// Checks one label against what the model takes; the problem is `(field, message)`,
/// with no field when the item itself is wrong.
fn check(item: &Value, expected: &Expected) -> Result<Label, (Option<&'static str>, String)> {
    let Value::Object(fields) = item else {
        return Err((
            None,
            "must be an object: {\"request_id\": …, \"label\": …} or {\"request_id\": …, \"value\": …}".into(),
        ));
    };
    if let Some(unknown) = fields
        .keys()
        .find(|k| !matches!(k.as_str(), "request_id" | "row" | "label" | "value"))
    {
        return Err((
            None,
            format!(
                "unknown field {unknown:?}: a label has request_id, row (optional), and label or value"
            ),
        ));
    }
    let request_id = match fields.get("request_id") {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_REQUEST_ID => s.clone(),
        Some(Value::String(_)) => {
            return Err((
                Some("request_id"),
                format!("must be 1 to {MAX_REQUEST_ID} characters"),
            ));
        }
        Some(_) => return Err((Some("request_id"), "must be a string".into())),
        None => return Err((Some("request_id"), "missing".into())),
    };
    let row = match fields.get("row") {
        None | Some(Value::Null) => 0,
        Some(v) => v
            .as_u64()
            .and_then(|r| u32::try_from(r).ok())
            .ok_or((Some("row"), "must be a whole number from 0".to_owned()))?,
    };
    let truth = match (expected.task, fields.get("label"), fields.get("value")) {
        (Task::Regression, _, Some(v)) => match v.as_f64() {
            Some(x) if x.is_finite() => Truth::Value(x),
            _ => return Err((Some("value"), "must be a finite number".into())),
        },
        (Task::Regression, Some(_), None) => {
            return Err((
                Some("label"),
                "this model predicts a number: send value, not label".into(),
            ));
        }
        (Task::Regression, None, None) => return Err((Some("value"), "missing".into())),
        (_, Some(v), _) => {
            let class = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => return Err((Some("label"), "must be a class name".into())),
            };
            if !expected.classes.contains(&class) {
                return Err((
                    Some("label"),
                    format!(
                        "{class:?} is not one of the model's classes ({})",
                        expected.classes.join(", ")
                    ),
                ));
            }
            Truth::Label(class)
        }
        (_, None, Some(_)) => {
            return Err((
                Some("value"),
                "this model predicts a class: send label, not value".into(),
            ));
        }
        (_, None, None) => return Err((Some("label"), "missing".into())),
    };
    Ok(Label {
        request_id,
        row,
        truth,
    })
}

/// What a problem with a whole record (not one of its fields) is filed under.
const RECORD: &str = "record";

/// One record of a file, checked: its label, or its problem at `line`.
fn label_at(line: u64, item: Result<Value, String>, expected: &Expected) -> Result<Label, Problem> {
    let problem = |field: Option<&str>, message| Problem {
        field: field.unwrap_or(RECORD).to_owned(),
        line: Some(line),
        message,
    };
    let item = item.map_err(|m| problem(None, m))?;
    check(&item, expected).map_err(|(field, message)| problem(field, message))
}

fn file_problem(message: impl Into<String>) -> Problem {
    Problem {
        field: "file".into(),
        line: None,
        message: message.into(),
    }
}

/// A feedback file's labels, or every problem in it (with 1-based line numbers).
fn parse_file(name: &str, bytes: &[u8], expected: &Expected) -> Result<Vec<Label>, Vec<Problem>> {
    let lower = name.to_ascii_lowercase();
    let mut checked: Vec<Result<Label, Problem>> = Vec::new();
    if lower.ends_with(".csv") {
        let mut reader = csv::ReaderBuilder::new().from_reader(bytes);
        let header = match reader.headers() {
            Ok(h) => h.iter().map(|n| n.trim().to_owned()).collect::<Vec<_>>(),
            Err(e) => return Err(vec![file_problem(format!("its header: {e}"))]),
        };
        for (i, record) in reader.records().enumerate() {
            let line = match &record {
                Ok(r) => r.position().map_or(i as u64 + 2, |p| p.line()),
                Err(e) => e.position().map_or(i as u64 + 2, |p| p.line()),
            };
            let item = record.map_err(|e| e.to_string()).map(|r| {
                let mut object = Map::new();
                for (name, text) in header.iter().zip(r.iter()) {
                    // An empty row cell means the request's first (only) row.
                    if !(text.is_empty() && name == "row") {
                        object.insert(name.clone(), csv_value(name, text));
                    }
                }
                Value::Object(object)
            });
            checked.push(label_at(line, item, expected));
        }
    } else if lower.ends_with(".jsonl") || lower.ends_with(".ndjson") {
        for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
            if !line.iter().all(u8::is_ascii_whitespace) {
                let item = serde_json::from_slice(line).map_err(|e| format!("not JSON: {e}"));
                checked.push(label_at(i as u64 + 1, item, expected));
            }
        }
    } else if lower.ends_with(".json") {
        match serde_json::from_slice::<Value>(bytes) {
            // A JSON array has no lines to speak of: its items are counted from 1.
            Ok(Value::Array(items)) => checked.extend(
                items
                    .into_iter()
                    .enumerate()
                    .map(|(i, item)| label_at(i as u64 + 1, Ok(item), expected)),
            ),
            _ => checked.push(Err(file_problem(
                "a .json feedback file must be one JSON array of labels",
            ))),
        }
    } else {
        checked.push(Err(file_problem(
            "feedback files are .csv (with a header), .jsonl or .json",
        )));
    }
    if checked.is_empty() {
        checked.push(Err(file_problem("holds no labels")));
    }
    let (labels, problems): (Vec<_>, Vec<_>) = checked.into_iter().partition(Result::is_ok);
    if problems.is_empty() {
        Ok(labels.into_iter().map(Result::unwrap).collect())
    } else {
        Err(problems.into_iter().map(|p| p.unwrap_err()).collect())
    }
}

/// A CSV cell as the JSON a label would carry: `row` and `value` as numbers when they
/// read as numbers (left as text otherwise, so the check names them), `label` as text.
fn csv_value(column: &str, text: &str) -> Value {
    let number = match column {
        "row" => text.parse::<u64>().ok().map(Value::from),
        "value" => text.parse::<f64>().ok().map(Value::from),
        _ => None,
    };
    number.unwrap_or_else(|| Value::String(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binary() -> Expected {
        Expected {
            task: Task::Binary,
            classes: vec!["<=50K".into(), ">50K".into()],
        }
    }

    #[test]
    fn a_label_must_fit_the_model() {
        let e = binary();
        let ok = check(
            &serde_json::json!({"request_id": "r1", "label": ">50K"}),
            &e,
        )
        .unwrap();
        assert_eq!(ok.row, 0);
        assert_eq!(ok.truth, Truth::Label(">50K".into()));
        let cases = [
            (
                serde_json::json!({"request_id": "r1", "label": "maybe"}),
                Some("label"),
            ),
            (
                serde_json::json!({"request_id": "r1", "value": 1.0}),
                Some("value"),
            ),
            (
                serde_json::json!({"request_id": 7, "label": ">50K"}),
                Some("request_id"),
            ),
            (
                serde_json::json!({"request_id": "r1", "row": -1, "label": ">50K"}),
                Some("row"),
            ),
            (serde_json::json!({"request_id": "r1"}), Some("label")),
            (
                serde_json::json!({"request_id": "r1", "lable": ">50K"}),
                None,
            ),
            (serde_json::json!("r1"), None),
        ];
        for (item, field) in cases {
            assert_eq!(check(&item, &e).unwrap_err().0, field, "{item}");
        }
        let regression = Expected {
            task: Task::Regression,
            classes: vec![],
        };
        let v = check(
            &serde_json::json!({"request_id": "r", "row": 2, "value": 151}),
            &regression,
        );
        assert_eq!(v.unwrap().truth, Truth::Value(151.0));
        let wrong = check(
            &serde_json::json!({"request_id": "r", "label": "151"}),
            &regression,
        );
        assert_eq!(wrong.unwrap_err().0, Some("label"));
        let wrong = check(
            &serde_json::json!({"request_id": "r", "value": "big"}),
            &regression,
        );
        assert_eq!(wrong.unwrap_err().0, Some("value"));
    }

    #[test]
    fn files_read_as_csv_json_lines_or_json_and_name_each_bad_line() {
        let e = binary();
        let csv = b"request_id,row,label\nr1,0,>50K\nr2,,<=50K\nr3,x,>50K\nr4,0,maybe\n";
        let problems = parse_file("labels.csv", csv, &e).unwrap_err();
        let at: Vec<(Option<u64>, &str)> = problems
            .iter()
            .map(|p| (p.line, p.field.as_str()))
            .collect();
        assert_eq!(at, [(Some(4), "row"), (Some(5), "label")]);
        let good = parse_file("labels.CSV", &csv[..41], &e).unwrap();
        assert_eq!(good.len(), 2);
        assert_eq!(good[1].row, 0);
        let jsonl = b"{\"request_id\":\"r1\",\"label\":\">50K\"}\n\n{not json}\n";
        let problems = parse_file("x.jsonl", jsonl, &e).unwrap_err();
        assert_eq!(
            (problems[0].line, problems[0].field.as_str()),
            (Some(3), RECORD)
        );
        assert!(problems[0].message.contains("not JSON"), "{problems:?}");
        let json = br#"[{"request_id":"r1","label":">50K"}]"#;
        assert_eq!(parse_file("x.json", json, &e).unwrap().len(), 1);
        assert_eq!(
            parse_file("x.parquet", json, &e).unwrap_err()[0].field,
            "file"
        );
        assert_eq!(
            parse_file("x.csv", b"request_id,label\n", &e).unwrap_err()[0].message,
            "holds no labels"
        );
    }

    #[test]
    fn a_batch_keeps_the_first_label_of_each_row_and_is_named_by_its_content() {
        let l = |id: &str, row, class: &str| Label {
            request_id: id.into(),
            row,
            truth: Truth::Label(class.into()),
        };
        let (kept, repeated) = first_of_each(vec![l("a", 0, "x"), l("a", 1, "x"), l("a", 0, "y")]);
        assert_eq!((kept.len(), repeated), (2, 1));
        let m = ModelName::parse("m").unwrap();
        assert_eq!(content_id(&m, &kept), content_id(&m, &kept.clone()));
        assert_ne!(content_id(&m, &kept), content_id(&m, &kept[..1]));
        assert_eq!(content_id(&m, &kept).len(), 32);
    }
}
