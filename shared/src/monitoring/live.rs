//! Live metrics: ground truth matched with the predictions it judges, and the guard that
//! holds production to a bound on them.
//!
//! Each monitor pass takes the feedback batches it has not finished: every label is
//! looked up in the prediction log (the days `feedback_lookback_days` before its batch
//! arrived, up to now) and becomes *matched* (with the prediction it judges), *already
//! labelled* (an earlier label for the same request and row counts; this one does not),
//! *pending* (its prediction is not in the log yet: the log's buffer is written every
//! 30 s, perhaps by another instance) or, after [`PENDING_FOR`], *unknown*. What became
//! of a batch is its report (`monitoring/<model>/feedback/<batch>.json`); a batch with
//! pending labels is taken again on later passes.
//!
//! The matched labels give the task's metrics (the gate's, computed the same way) per
//! model version and per drift window (`monitoring/<model>/live.json`). The guard
//! (`monitoring.guard`) reads production's: the predictions its version made since its
//! release. A breach is recorded once per release (`<release>/degraded.json`,
//! create-only), which is what makes its actions happen once.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use polars::prelude::*;
use serde::{Deserialize, Serialize};

use super::feedback::{Batch, Label, Source, Truth};
use super::layout;
use super::monitor::{Monitor, MonitorError};
use crate::model::{Signature, Task};
use crate::registry::{ModelName, PRODUCTION};
use crate::storage::{
    ETag, ObjectKey, PutMode, StorageError, create_or_read, get_json, put_json, update_json,
};
use crate::training::config::MonitoringConfig;
use crate::training::config::RollbackPolicy::Auto;
use crate::training::metrics::{self, Metrics};

/// How long a label waits for its prediction to show up in the log before it counts as
/// unknown.
pub const PENDING_FOR: Duration = Duration::hours(1);
/// How many unknown request ids a feedback report names.
const UNKNOWN_NAMED: usize = 20;

/// What was predicted for a row: each class's probability, or the value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Predicted {
    Probabilities(BTreeMap<String, f64>),
    Value(f64),
}

/// A label and the prediction it judges.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Matched {
    pub request_id: String,
    pub row: u32,
    pub model_version: u32,
    pub scored_at: DateTime<Utc>,
    /// The prediction-log batch the prediction is in (which places it in a window).
    pub prediction_batch: ObjectKey,
    pub truth: Truth,
    pub predicted: Predicted,
}

/// What became of one feedback batch (`monitoring/<model>/feedback/<batch>.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeedbackReport {
    pub batch: String,
    pub model: ModelName,
    pub received_at: DateTime<Utc>,
    pub source: Source,
    pub labels: u64,
    /// Labels the batch itself repeated (left out when it was received).
    pub repeated: u64,
    pub matched: Vec<Matched>,
    pub already_labelled: u64,
    pub unknown: u64,
    /// The first unknown request ids, for whoever sent them.
    pub unknown_examples: Vec<String>,
    /// Labels whose prediction is not in the log yet; taken again on the next pass.
    pub pending: Vec<Label>,
    pub updated_at: DateTime<Utc>,
}

/// A feedback report's counts, as `GET …/monitoring` shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FeedbackSummary {
    pub batch: String,
    pub received_at: DateTime<Utc>,
    pub source: Source,
    pub labels: u64,
    pub repeated: u64,
    pub matched: u64,
    pub already_labelled: u64,
    pub unknown: u64,
    pub unknown_examples: Vec<String>,
    pub pending: u64,
    pub updated_at: DateTime<Utc>,
}

impl FeedbackReport {
    pub fn summary(&self) -> FeedbackSummary {
        FeedbackSummary {
            batch: self.batch.clone(),
            received_at: self.received_at,
            source: self.source.clone(),
            labels: self.labels,
            repeated: self.repeated,
            matched: self.matched.len() as u64,
            already_labelled: self.already_labelled,
            unknown: self.unknown,
            unknown_examples: self.unknown_examples.clone(),
            pending: self.pending.len() as u64,
            updated_at: self.updated_at,
        }
    }
}

/// Live metrics of one model (`monitoring/<model>/live.json`), as of `computed_at`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Live {
    pub model: ModelName,
    pub computed_at: DateTime<Utc>,
    /// Per version, newest first.
    pub versions: Vec<VersionLive>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guard: Option<GuardStatus>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VersionLive {
    pub model_version: u32,
    pub labelled: u64,
    pub metrics: Metrics,
    /// Per drift window the predictions fell in, in window order; predictions in no
    /// judged window yet are under `window: null`.
    pub windows: Vec<WindowLive>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WindowLive {
    pub release: Option<String>,
    pub window: Option<u32>,
    pub labelled: u64,
    pub metrics: Metrics,
}

/// Production's guard as of the pass.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GuardStatus {
    pub release: String,
    pub model_version: u32,
    /// `accuracy >= 0.8`.
    pub bound: String,
    pub value: Option<f64>,
    pub labelled: u64,
    pub min_labelled: u64,
    pub breached: bool,
}

/// A breach of the guard (`monitoring/<model>/<release>/degraded.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Degradation {
    pub model: ModelName,
    pub model_version: u32,
    pub release: String,
    pub metric: String,
    pub value: f64,
    pub bound: String,
    pub labelled: u64,
    pub judged_at: DateTime<Utc>,
    /// The release that rolled production back for it, once it did (`rollback: auto`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolled_back_by: Option<String>,
}

impl Degradation {
    pub fn key(&self) -> ObjectKey {
        layout::degraded(&self.model, &self.release)
    }

    /// Why, in a sentence: for the audit trail and a rollback's reason.
    pub fn reason(&self) -> String {
        format!(
            "live {} {:.4} breaks {} over {} labelled predictions of {} (v{}); report {}",
            self.metric,
            self.value,
            self.bound,
            self.labelled,
            self.release,
            self.model_version,
            self.key()
        )
    }
}

/// A breach the pass found, and whether this pass decided it (only then are its event
/// and audit record due).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Guarded {
    pub degradation: Degradation,
    pub decided_now: bool,
    pub rollback: crate::training::config::RollbackPolicy,
}

/// One model's ground-truth pass.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LivePass {
    pub model: ModelName,
    /// The batches this pass took, as they now stand.
    pub feedback: Vec<FeedbackSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live: Option<Live>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub degraded: Option<Guarded>,
}

/// A logged prediction, found for a label.
struct Found {
    model_version: u32,
    scored_at: DateTime<Utc>,
    batch: ObjectKey,
    predicted: Predicted,
}

type RowId = (String, u32);

impl Monitor {
    /// Takes every model's new feedback (see the module docs).
    pub async fn ground_truth(&self, now: DateTime<Utc>) -> Result<Vec<LivePass>, MonitorError> {
        let mut passes = Vec::new();
        for model in self.registry.models().await? {
            if let Some(pass) = self.ground_truth_of(&model, now).await? {
                passes.push(pass);
            }
        }
        Ok(passes)
    }

    /// `model`'s live metrics as the last pass left them.
    pub async fn live(&self, model: &ModelName) -> Result<Option<Live>, MonitorError> {
        match get_json(self.store.as_ref(), &layout::live(model)).await {
            Ok((live, _)) => Ok(Some(live)),
            Err(StorageError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The prediction the log kept for `request_id`, looked for from `now` back
    /// `lookback_days` (newest batches first); `None` if the log does not have it (only
    /// a sample of requests is logged).
    pub async fn logged_prediction(
        &self,
        model: &ModelName,
        request_id: &str,
        now: DateTime<Utc>,
        lookback_days: i64,
    ) -> Result<Option<Logged>, MonitorError> {
        let first = (now - Duration::days(lookback_days)).date_naive();
        let mut day = now.date_naive();
        while day >= first {
            let mut batches = self.batches_on(model, day).await?;
            batches.sort_by(|a, b| b.0.as_str().cmp(a.0.as_str()));
            for (key, ..) in batches {
                let Some(frame) = self.prediction_frame(&key).await? else {
                    continue;
                };
                let found = rows_of(&frame, &key, request_id).map_err(|e| MonitorError::Batch {
                    key: key.to_string(),
                    message: e.to_string(),
                })?;
                if let Some(logged) = found {
                    return Ok(Some(logged));
                }
            }
            day = day.pred_opt().expect("dates in range");
        }
        Ok(None)
    }

    /// What became of `model`'s feedback batches, newest first.
    pub async fn feedback(&self, model: &ModelName) -> Result<Vec<FeedbackSummary>, MonitorError> {
        let mut out: Vec<FeedbackSummary> = self
            .feedback_reports(model)
            .await?
            .into_values()
            .map(|(r, _)| r.summary())
            .collect();
        out.sort_by_key(|s| std::cmp::Reverse((s.received_at, s.batch.clone())));
        Ok(out)
    }

    /// Records the release that rolled production back for a breach (once).
    pub async fn record_rollback(
        &self,
        degradation: &Degradation,
        release: &str,
    ) -> Result<Degradation, MonitorError> {
        let record = |d: &mut Degradation| {
            let first = d.rolled_back_by.is_none();
            if first {
                d.rolled_back_by = Some(release.to_owned());
            }
            first
        };
        Ok(update_json(self.store.as_ref(), &degradation.key(), record).await?)
    }

    async fn feedback_reports(
        &self,
        model: &ModelName,
    ) -> Result<HashMap<String, (FeedbackReport, ETag)>, MonitorError> {
        let mut reports = HashMap::new();
        for meta in self.store.list(&layout::feedback_reports(model)).await? {
            let (report, etag): (FeedbackReport, _) =
                get_json(self.store.as_ref(), &meta.key).await?;
            reports.insert(report.batch.clone(), (report, etag));
        }
        Ok(reports)
    }

    /// Whether some batch of `model` waits for predictions, as the last pass left it
    /// (unknown, so yes, before any pass wrote it). Two passes at once may leave it
    /// stale; the next new batch makes a pass read every report again.
    async fn has_pending(&self, model: &ModelName) -> Result<bool, MonitorError> {
        let marker = layout::feedback_pending(model);
        match get_json::<Vec<String>>(self.store.as_ref(), &marker).await {
            Ok((ids, _)) => Ok(!ids.is_empty()),
            Err(StorageError::NotFound { .. }) => Ok(true),
            Err(e) => Err(e.into()),
        }
    }

    async fn ground_truth_of(
        &self,
        model: &ModelName,
        now: DateTime<Utc>,
    ) -> Result<Option<LivePass>, MonitorError> {
        // Listings first: a pass with no new batch and nothing pending reads no report.
        let reported: HashSet<String> = self
            .store
            .list(&layout::feedback_reports(model))
            .await?
            .iter()
            .filter_map(|m| layout::file_stem(&m.key))
            .collect();
        let new: Vec<ObjectKey> = self
            .store
            .list(&layout::feedback_batches(model))
            .await?
            .into_iter()
            .filter(|m| layout::file_stem(&m.key).is_some_and(|id| !reported.contains(&id)))
            .map(|m| m.key)
            .collect();
        let config = self.monitoring_config(model).await?;
        let mut todo: Vec<(FeedbackReport, Option<ETag>)> = Vec::new();
        let mut reports = HashMap::new();
        if !new.is_empty() || self.has_pending(model).await? {
            reports = self.feedback_reports(model).await?;
            // The batches to take: new ones, and those still waiting for predictions.
            for key in &new {
                let (batch, _): (Batch, _) = get_json(self.store.as_ref(), key).await?;
                todo.push((fresh_report(batch, now), None));
            }
            for (report, etag) in reports.values() {
                if !report.pending.is_empty() {
                    todo.push((report.clone(), Some(etag.clone())));
                }
            }
        }
        if todo.is_empty() {
            // A breach whose rollback was never recorded (its monitor stopped between
            // the two) is handed back, so the caller can finish acting on it.
            let degraded = self.unfinished_breach(model, &config).await?;
            return Ok(degraded.map(|g| LivePass {
                model: model.clone(),
                feedback: vec![],
                live: None,
                degraded: Some(g),
            }));
        }
        todo.sort_by(|a, b| (a.0.received_at, &a.0.batch).cmp(&(b.0.received_at, &b.0.batch)));
        let mut labelled: HashSet<RowId> = reports
            .values()
            .flat_map(|(r, _)| r.matched.iter().map(|m| (m.request_id.clone(), m.row)))
            .collect();
        let wanted: HashSet<RowId> = todo
            .iter()
            .flat_map(|(r, _)| r.pending.iter().map(|l| (l.request_id.clone(), l.row)))
            .collect();
        let earliest = todo.iter().map(|(r, _)| r.received_at).min().unwrap_or(now);
        let since = earliest - Duration::days(i64::from(config.feedback_lookback_days));
        let found = self.find_predictions(model, since, now, &wanted).await?;
        let mut taken = Vec::new();
        for (mut report, etag) in todo {
            let waiting = std::mem::take(&mut report.pending);
            let expired = now - report.received_at >= PENDING_FOR;
            for label in waiting {
                let id = (label.request_id.clone(), label.row);
                if labelled.contains(&id) {
                    report.already_labelled += 1;
                } else if let Some(f) = found.get(&id) {
                    labelled.insert(id);
                    report.matched.push(Matched {
                        request_id: label.request_id,
                        row: label.row,
                        model_version: f.model_version,
                        scored_at: f.scored_at,
                        prediction_batch: f.batch.clone(),
                        truth: label.truth,
                        predicted: f.predicted.clone(),
                    });
                } else if expired {
                    report.unknown += 1;
                    if report.unknown_examples.len() < UNKNOWN_NAMED {
                        report.unknown_examples.push(label.request_id);
                    }
                } else {
                    report.pending.push(label);
                }
            }
            report.updated_at = now;
            let key = layout::feedback_report(model, &report.batch);
            let mode = etag.map_or(PutMode::Create, PutMode::Update);
            match put_json(self.store.as_ref(), &key, &report, mode).await {
                Ok(meta) => {
                    taken.push(report.summary());
                    reports.insert(report.batch.clone(), (report, meta.etag));
                }
                // Another pass took it at the same time; its report stands.
                Err(StorageError::AlreadyExists { .. } | StorageError::Precondition { .. }) => {
                    let (theirs, etag): (FeedbackReport, _) =
                        get_json(self.store.as_ref(), &key).await?;
                    reports.insert(theirs.batch.clone(), (theirs, etag));
                }
                Err(e) => return Err(e.into()),
            }
        }
        let pending: Vec<&String> = reports
            .iter()
            .filter(|(_, (r, _))| !r.pending.is_empty())
            .map(|(id, _)| id)
            .collect();
        let marker = layout::feedback_pending(model);
        put_json(self.store.as_ref(), &marker, &pending, PutMode::Overwrite).await?;
        let live = self.compute_live(model, &reports, &config, now).await?;
        put_json(
            self.store.as_ref(),
            &layout::live(model),
            &live,
            PutMode::Overwrite,
        )
        .await?;
        let degraded = self.judge_guard(model, &live, &config, now).await?;
        Ok(Some(LivePass {
            model: model.clone(),
            feedback: taken,
            live: Some(live),
            degraded,
        }))
    }

    /// The logged predictions of `wanted` rows among the batches written from `since`
    /// to `now`.
    async fn find_predictions(
        &self,
        model: &ModelName,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
        wanted: &HashSet<RowId>,
    ) -> Result<HashMap<RowId, Found>, MonitorError> {
        let mut found = HashMap::new();
        if wanted.is_empty() {
            return Ok(found);
        }
        let mut day = since.date_naive();
        while day <= now.date_naive() && found.len() < wanted.len() {
            for (key, ..) in self.batches_on(model, day).await? {
                let Some(frame) = self.prediction_frame(&key).await? else {
                    continue;
                };
                predictions_in(&frame, &key, wanted, &mut found).map_err(|e| {
                    MonitorError::Batch {
                        key: key.to_string(),
                        message: e.to_string(),
                    }
                })?;
            }
            day = day.succ_opt().expect("dates in range");
        }
        Ok(found)
    }

    /// A prediction-log batch's columns that matching needs; `None` for a damaged batch
    /// (the drift monitor's to report: here it has nothing).
    async fn prediction_frame(&self, key: &ObjectKey) -> Result<Option<DataFrame>, MonitorError> {
        let bytes = self.store.get(key).await?.bytes().await?;
        Ok(prediction_columns(bytes).ok())
    }

    async fn compute_live(
        &self,
        model: &ModelName,
        reports: &HashMap<String, (FeedbackReport, ETag)>,
        config: &MonitoringConfig,
        now: DateTime<Utc>,
    ) -> Result<Live, MonitorError> {
        // Where each prediction batch was judged: (release, window).
        let mut windows: HashMap<ObjectKey, (String, u32)> = HashMap::new();
        for report in self.reports(model).await? {
            for batch in &report.batches {
                windows.insert(batch.clone(), (report.release.clone(), report.window));
            }
        }
        let mut by_version: BTreeMap<u32, Vec<&Matched>> = BTreeMap::new();
        for m in reports.values().flat_map(|(r, _)| &r.matched) {
            by_version.entry(m.model_version).or_default().push(m);
        }
        let mut versions = Vec::new();
        let mut signatures = HashMap::new();
        for (&version, matched) in by_version.iter().rev() {
            let signature = self.registry.version(model, version).await?.signature;
            let mut by_window: BTreeMap<(Option<String>, Option<u32>), Vec<&Matched>> =
                BTreeMap::new();
            for &m in matched {
                let at = windows.get(&m.prediction_batch).cloned();
                by_window
                    .entry((at.as_ref().map(|w| w.0.clone()), at.map(|w| w.1)))
                    .or_default()
                    .push(m);
            }
            let mut judged: Vec<WindowLive> = by_window
                .into_iter()
                .map(|((release, window), rows)| WindowLive {
                    release,
                    window,
                    labelled: rows.len() as u64,
                    metrics: live_metrics(&signature, &rows),
                })
                .collect();
            // Judged windows in order, then the predictions no window holds yet.
            judged.sort_by_key(|w| (w.window.is_none(), w.release.clone(), w.window));
            versions.push(VersionLive {
                model_version: version,
                labelled: matched.len() as u64,
                metrics: live_metrics(&signature, matched),
                windows: judged,
            });
            signatures.insert(version, signature);
        }
        let guard = match (&config.guard, self.registry.alias(model, PRODUCTION).await?) {
            (Some(guard), Some((alias, _))) => {
                let release = alias.release;
                let rows: Vec<&Matched> = by_version
                    .get(&release.version)
                    .into_iter()
                    .flatten()
                    .copied()
                    .filter(|m| m.scored_at >= release.at)
                    .collect();
                let value = match signatures.get(&release.version) {
                    Some(s) if !rows.is_empty() => live_metrics(s, &rows).get(&guard.metric),
                    _ => None,
                };
                let labelled = rows.len() as u64;
                Some(GuardStatus {
                    release: release.id,
                    model_version: release.version,
                    bound: guard.bound(),
                    value,
                    labelled,
                    min_labelled: guard.min_labelled,
                    breached: labelled >= guard.min_labelled
                        && value.is_none_or(|v| guard.breached(v)),
                })
            }
            _ => None,
        };
        Ok(Live {
            model: model.clone(),
            computed_at: now,
            versions,
            guard,
        })
    }

    /// Records a breach of the guard, once per release.
    async fn judge_guard(
        &self,
        model: &ModelName,
        live: &Live,
        config: &MonitoringConfig,
        now: DateTime<Utc>,
    ) -> Result<Option<Guarded>, MonitorError> {
        let (Some(status), Some(guard)) = (&live.guard, &config.guard) else {
            return Ok(None);
        };
        if !status.breached {
            return Ok(None);
        }
        let degradation = Degradation {
            model: model.clone(),
            model_version: status.model_version,
            release: status.release.clone(),
            metric: guard.metric.clone(),
            value: status.value.unwrap_or(f64::NAN),
            bound: status.bound.clone(),
            labelled: status.labelled,
            judged_at: now,
            rolled_back_by: None,
        };
        // Once per release: a breach recorded before stands, and was acted on then.
        let key = degradation.key();
        let (degradation, decided_now) =
            create_or_read(self.store.as_ref(), &key, degradation).await?;
        Ok(Some(Guarded {
            degradation,
            decided_now,
            rollback: guard.rollback,
        }))
    }

    /// Production's recorded breach, while its actions may be unfinished: an automatic
    /// rollback not yet made, or (for any policy) its audit record, which the caller
    /// appends once.
    async fn unfinished_breach(
        &self,
        model: &ModelName,
        config: &MonitoringConfig,
    ) -> Result<Option<Guarded>, MonitorError> {
        let Some(guard) = config.guard.as_ref() else {
            return Ok(None);
        };
        let Some((alias, _)) = self.registry.alias(model, PRODUCTION).await? else {
            return Ok(None);
        };
        match get_json::<Degradation>(
            self.store.as_ref(),
            &layout::degraded(model, &alias.release.id),
        )
        .await
        {
            Ok((d, _)) if guard.rollback != Auto || d.rolled_back_by.is_none() => {
                Ok(Some(Guarded {
                    degradation: d,
                    decided_now: false,
                    rollback: guard.rollback,
                }))
            }
            Ok(_) | Err(StorageError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

/// A new batch's report: every label waiting to be matched.
fn fresh_report(batch: Batch, now: DateTime<Utc>) -> FeedbackReport {
    FeedbackReport {
        batch: batch.id,
        model: batch.model,
        received_at: batch.received_at,
        source: batch.source,
        labels: batch.labels.len() as u64,
        repeated: batch.repeated,
        matched: vec![],
        already_labelled: 0,
        unknown: 0,
        unknown_examples: vec![],
        pending: batch.labels,
        updated_at: now,
    }
}

/// A prediction-log batch's columns that matching needs (not the inputs): the request,
/// row, version, time and the prediction.
fn prediction_columns(bytes: bytes::Bytes) -> PolarsResult<DataFrame> {
    let mut reader = ParquetReader::new(std::io::Cursor::new(bytes));
    let wanted: Vec<String> = reader
        .schema()?
        .iter_names()
        .filter(|n| {
            [
                "request_id",
                "row",
                "model_version",
                "scored_at",
                "predicted_value",
            ]
            .contains(&n.as_str())
                || n.starts_with("p_")
        })
        .map(|n| n.to_string())
        .collect();
    reader.with_columns(Some(wanted)).finish()
}

/// A logged request: which version answered it, when, and each row's prediction.
#[derive(Clone, Debug, PartialEq)]
pub struct Logged {
    pub request_id: String,
    pub model_version: u32,
    pub scored_at: DateTime<Utc>,
    pub batch: ObjectKey,
    pub rows: Vec<(u32, Predicted)>,
}

/// `request_id`'s rows in one prediction-log batch, if it has any.
fn rows_of(frame: &DataFrame, batch: &ObjectKey, request_id: &str) -> PolarsResult<Option<Logged>> {
    let ids = frame.column("request_id")?.str()?;
    let rows = frame.column("row")?.cast(&DataType::UInt32)?;
    let wanted: HashSet<RowId> = (0..frame.height())
        .filter(|&i| ids.get(i) == Some(request_id))
        .filter_map(|i| Some((request_id.to_owned(), rows.u32().ok()?.get(i)?)))
        .collect();
    if wanted.is_empty() {
        return Ok(None);
    }
    let mut found = HashMap::new();
    predictions_in(frame, batch, &wanted, &mut found)?;
    let mut rows: Vec<(u32, Found)> = found.into_iter().map(|((_, row), f)| (row, f)).collect();
    rows.sort_by_key(|(row, _)| *row);
    let Some((_, first)) = rows.first() else {
        return Ok(None);
    };
    Ok(Some(Logged {
        request_id: request_id.to_owned(),
        model_version: first.model_version,
        scored_at: first.scored_at,
        batch: batch.clone(),
        rows: rows
            .into_iter()
            .map(|(row, f)| (row, f.predicted))
            .collect(),
    }))
}

/// Adds the `wanted` rows of one prediction-log batch to `found`.
fn predictions_in(
    frame: &DataFrame,
    batch: &ObjectKey,
    wanted: &HashSet<RowId>,
    found: &mut HashMap<RowId, Found>,
) -> PolarsResult<()> {
    let ids = frame.column("request_id")?.str()?;
    let rows = frame.column("row")?.cast(&DataType::UInt32)?;
    let rows = rows.u32()?;
    let versions = frame.column("model_version")?.cast(&DataType::UInt32)?;
    let versions = versions.u32()?;
    let times = frame.column("scored_at")?.str()?;
    let value = match frame.column("predicted_value") {
        Ok(c) => Some(c.cast(&DataType::Float64)?),
        Err(_) => None,
    };
    let classes: Vec<(String, Column)> = frame
        .columns()
        .iter()
        .filter_map(|c| {
            let class = c.name().strip_prefix("p_")?;
            Some(c.cast(&DataType::Float64).map(|c| (class.to_owned(), c)))
        })
        .collect::<PolarsResult<_>>()?;
    for i in 0..frame.height() {
        let (Some(id), Some(row)) = (ids.get(i), rows.get(i)) else {
            continue;
        };
        let key = (id.to_owned(), row);
        if !wanted.contains(&key) || found.contains_key(&key) {
            continue;
        }
        let predicted = match &value {
            Some(v) => Predicted::Value(v.f64()?.get(i).unwrap_or(f64::NAN)),
            None => Predicted::Probabilities(
                classes
                    .iter()
                    .map(|(class, c)| Ok((class.clone(), c.f64()?.get(i).unwrap_or(f64::NAN))))
                    .collect::<PolarsResult<_>>()?,
            ),
        };
        let scored_at = times
            .get(i)
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map_or(DateTime::<Utc>::MIN_UTC, |t| t.with_timezone(&Utc));
        found.insert(
            key,
            Found {
                model_version: versions.get(i).unwrap_or_default(),
                scored_at,
                batch: batch.clone(),
                predicted,
            },
        );
    }
    Ok(())
}

/// The task's metrics of matched labels, computed as the gate computes them. A label
/// that is not one of the version's classes is left out.
pub fn live_metrics(signature: &Signature, rows: &[&Matched]) -> Metrics {
    let classes = &signature.classes;
    let index = |m: &Matched| match &m.truth {
        Truth::Label(l) => classes.iter().position(|c| c == l),
        Truth::Value(_) => None,
    };
    let probability = |m: &Matched, class: &str| match &m.predicted {
        Predicted::Probabilities(p) => p.get(class).copied().unwrap_or(f64::NAN),
        Predicted::Value(_) => f64::NAN,
    };
    match signature.task {
        Task::Regression => {
            let (predicted, truth): (Vec<f64>, Vec<f64>) = rows
                .iter()
                .filter_map(|m| match (&m.predicted, &m.truth) {
                    (Predicted::Value(p), Truth::Value(t)) => Some((*p, *t)),
                    _ => None,
                })
                .unzip();
            metrics::regression(&predicted, &truth)
        }
        Task::Binary if classes.len() == 2 => {
            let (p, y): (Vec<f64>, Vec<f64>) = rows
                .iter()
                .filter_map(|m| Some((probability(m, &classes[1]), index(m)? as f64)))
                .unzip();
            metrics::binary(&p, &y, &[classes[0].clone(), classes[1].clone()])
        }
        _ => {
            let (p, y): (Vec<Vec<f64>>, Vec<usize>) = rows
                .iter()
                .filter_map(|m| {
                    let y = index(m)?;
                    Some((classes.iter().map(|c| probability(m, c)).collect(), y))
                })
                .unzip();
            metrics::multiclass(&p, &y, classes)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::training::config::GuardConfig;

    fn matched(truth: &str, p_pos: f64) -> Matched {
        Matched {
            request_id: "r".into(),
            row: 0,
            model_version: 1,
            scored_at: Utc::now(),
            prediction_batch: ObjectKey::parse("predictions/m/2026-12-03/x.parquet").unwrap(),
            truth: Truth::Label(truth.into()),
            predicted: Predicted::Probabilities(BTreeMap::from([
                ("no".into(), 1.0 - p_pos),
                ("yes".into(), p_pos),
            ])),
        }
    }

    /// Live metrics are the gate's: the same rows give the same numbers.
    #[test]
    fn live_metrics_are_the_gates_metrics_of_the_matched_rows() {
        let signature: Signature = serde_json::from_value(serde_json::json!({
            "inputs": [], "task": "binary", "label": "y", "classes": ["no", "yes"],
            "outputs": []
        }))
        .unwrap();
        let rows = [
            matched("yes", 0.9),
            matched("no", 0.2),
            matched("yes", 0.3),
            matched("no", 0.6),
        ];
        let refs: Vec<&Matched> = rows.iter().collect();
        let live = live_metrics(&signature, &refs);
        let gate = metrics::binary(
            &[0.9, 0.2, 0.3, 0.6],
            &[1.0, 0.0, 1.0, 0.0],
            &["no".into(), "yes".into()],
        );
        assert_eq!(live, gate);
        assert_eq!(live.accuracy, Some(0.5));
    }

    #[test]
    fn a_guard_is_breached_below_its_floor_or_above_its_ceiling() {
        let floor: GuardConfig =
            serde_json::from_value(serde_json::json!({"metric": "accuracy", "at_least": 0.8}))
                .unwrap();
        assert!(floor.breached(0.79) && !floor.breached(0.8) && floor.breached(f64::NAN));
        assert_eq!(floor.min_labelled, 500);
        assert_eq!(floor.bound(), "accuracy >= 0.8");
        let ceiling: GuardConfig = serde_json::from_value(
            serde_json::json!({"metric": "rmse", "at_most": 60.0, "rollback": "auto"}),
        )
        .unwrap();
        assert!(ceiling.breached(61.0) && !ceiling.breached(59.0));
    }
}
