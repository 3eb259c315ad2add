//! The live drift monitor: each production model's logged predictions, judged against
//! the data the version was trained on, one window at a time.
//!
//! A window is every prediction-log batch of the production version that no earlier
//! report of the same release judged. Windows are numbered per release
//! (`monitoring/<model>/<release>/<n>.json`) and a judged one is written create-only, so
//! however often the timer runs, or however many run at once, each window is judged once
//! and its drift acted on once. A window with too few rows is stored as such and stays
//! open: the next run judges it again with what arrived since. Keying windows by the
//! batches they hold rather than by clock time means a batch that becomes visible late
//! is judged in the next window instead of being missed.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use polars::prelude::*;
use serde::{Deserialize, Serialize};

use super::drift::{self, ColumnDrift, Distribution, Tally};
use super::layout;
use crate::dataset::profile::ColumnProfile;
use crate::dataset::{self, DatasetName, Manifest};
use crate::model::{Signature, Task};
use crate::registry::{ModelName, PRODUCTION, Registry, RegistryError};
use crate::scoring::log;
use crate::storage::{
    ObjectKey, ObjectStore, PutMode, StorageError, get_json, put_json, update_json,
};
use crate::training::config::MonitoringConfig;
use crate::training::configs::{ConfigStoreError, Configs};

/// What the prediction is called among a report's columns.
pub const PREDICTION: &str = "prediction";

#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Config(#[from] ConfigStoreError),
    #[error("reading prediction batch {key}: {message}")]
    Batch { key: String, message: String },
}

impl MonitorError {
    pub fn is_transient(&self) -> bool {
        match self {
            MonitorError::Storage(e) => e.is_transient(),
            MonitorError::Registry(RegistryError::Storage(e)) => e.is_transient(),
            MonitorError::Config(e) => e.is_transient(),
            _ => false,
        }
    }
}

/// A window's outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Fewer rows than the config's `min_rows`: not decided, the window stays open.
    TooFewRows,
    Stable,
    Drifted,
}

/// The dataset version a report compares with.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReferenceRef {
    pub dataset: DatasetName,
    pub version: u32,
}

/// One window of one production release, judged (`monitoring/<model>/<release>/<n>.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub model: ModelName,
    pub model_version: u32,
    /// The release that put the version in production (`production.<n>`).
    pub release: String,
    /// The window's number within the release, from 1.
    pub window: u32,
    pub reference: ReferenceRef,
    /// The earliest and latest batch's write time.
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub rows: u64,
    pub min_rows: u64,
    pub verdict: Verdict,
    /// Every input column, then the prediction, each against its threshold.
    pub columns: Vec<ColumnDrift>,
    /// The prediction-log batches the window holds.
    pub batches: Vec<ObjectKey>,
    /// Batches of the window that could not be read, left out of its counts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unreadable: Vec<ObjectKey>,
    pub judged_at: DateTime<Utc>,
    /// The run a drifted window asked for, once asked (`on: drift` policies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retrain_run: Option<String>,
    /// Set when Azure ML's dataset monitor found the drift, not Sluice's windows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azureml: Option<AzureMlDrift>,
}

/// Azure ML's dataset drift monitor's finding, as its `DatasetDriftDetected` event
/// carries it (the monitor applied its own threshold: the event means drift).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AzureMlDrift {
    /// The drift monitor's name (`DataDriftName`), which a model's config subscribes to.
    pub monitor: String,
    /// The monitor's run (`RunId`): one finding.
    pub run_id: String,
    /// `DriftCoefficient`, between 0 and 1.
    pub coefficient: f64,
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
}

impl AzureMlDrift {
    /// Reads the event's `data`, in the docs' PascalCase or the SDKs' camelCase; a
    /// missing or malformed field comes back as its name and the problem.
    pub fn from_event_data(data: &serde_json::Value) -> Result<Self, (String, String)> {
        let field = |name: &str| {
            let camel = format!("{}{}", name[..1].to_ascii_lowercase(), &name[1..]);
            data.get(name)
                .or_else(|| data.get(&camel))
                .filter(|v| !v.is_null())
        };
        let text = |name: &str| -> Result<String, (String, String)> {
            match field(name) {
                Some(serde_json::Value::String(s)) if !s.is_empty() => Ok(s.clone()),
                Some(_) => Err((name.to_owned(), "must be a non-empty string".into())),
                None => Err((name.to_owned(), "missing".into())),
            }
        };
        let coefficient = match field("DriftCoefficient") {
            Some(v) => v
                .as_f64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                .ok_or_else(|| ("DriftCoefficient".to_owned(), "must be a number".to_owned()))?,
            None => return Err(("DriftCoefficient".into(), "missing".into())),
        };
        let time = |name: &str| -> Result<Option<DateTime<Utc>>, (String, String)> {
            match field(name) {
                None => Ok(None),
                Some(v) => v
                    .as_str()
                    .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                    .map(|t| Some(t.with_timezone(&Utc)))
                    .ok_or_else(|| (name.to_owned(), "must be an RFC 3339 time".to_owned())),
            }
        };
        Ok(Self {
            monitor: text("DataDriftName")?,
            run_id: text("RunId")?,
            coefficient,
            start: time("StartTime")?,
            end: time("EndTime")?,
        })
    }

    /// The finding's name among its release's windows (the run id as a key segment).
    fn key_name(&self) -> String {
        let safe: String = self
            .run_id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        format!("azureml-{safe}")
    }
}

impl Report {
    /// The columns that drifted.
    pub fn drifted(&self) -> Vec<&str> {
        self.columns
            .iter()
            .filter(|c| c.drifted)
            .map(|c| c.column.as_str())
            .collect()
    }

    /// Names the window among its release's (in events, logs and the audit trail): its
    /// number, or `azureml-<run>` for an Azure ML finding.
    pub fn window_name(&self) -> String {
        match &self.azureml {
            Some(found) => found.key_name(),
            None => self.window.to_string(),
        }
    }

    pub fn key(&self) -> ObjectKey {
        let file = match &self.azureml {
            Some(found) => found.key_name(),
            // Zero-padded, so a listing is in window order.
            None => format!("{:06}", self.window),
        };
        layout::window(&self.model, &self.release, &file)
    }
}

/// A window the monitor judged on this call.
#[derive(Clone, Debug)]
pub struct Judged {
    pub report: Report,
    /// Whether this call decided it (only then are its actions due).
    pub decided_now: bool,
}

/// Reads and judges prediction logs; writes reports.
#[derive(Clone)]
pub struct Monitor {
    pub(super) store: Arc<dyn ObjectStore>,
    pub(super) registry: Registry,
    pub(super) configs: Configs,
}

impl Monitor {
    pub fn new(store: Arc<dyn ObjectStore>) -> Self {
        Self {
            registry: Registry::new(store.clone()),
            configs: Configs::new(store.clone()),
            store,
        }
    }

    /// Judges the open window of every model in production.
    pub async fn run(&self, now: DateTime<Utc>) -> Result<Vec<Judged>, MonitorError> {
        let mut judged = Vec::new();
        for model in self.registry.models().await? {
            if let Some(j) = self.judge(&model, now).await? {
                judged.push(j);
            }
        }
        Ok(judged)
    }

    /// `model`'s reports, newest first.
    pub async fn reports(&self, model: &ModelName) -> Result<Vec<Report>, MonitorError> {
        let mut reports = Vec::new();
        for meta in self.store.list(&layout::model_prefix(model)).await? {
            if !is_window(model, &meta.key) {
                continue;
            }
            reports.push(get_json::<Report>(self.store.as_ref(), &meta.key).await?.0);
        }
        reports.sort_by_key(|r| std::cmp::Reverse((r.judged_at, r.window)));
        Ok(reports)
    }

    /// Records the run a drifted window asked for (once; a later call keeps the first).
    pub async fn record_retrain(&self, report: &Report, run: &str) -> Result<Report, MonitorError> {
        let record = |r: &mut Report| {
            let first = r.retrain_run.is_none();
            if first {
                r.retrain_run = Some(run.to_owned());
            }
            first
        };
        Ok(update_json(self.store.as_ref(), &report.key(), record).await?)
    }

    /// The open window of `model`'s production release, judged; `None` when nothing new
    /// was logged (or the model is not in production).
    async fn judge(
        &self,
        model: &ModelName,
        now: DateTime<Utc>,
    ) -> Result<Option<Judged>, MonitorError> {
        let Some((alias, _)) = self.registry.alias(model, PRODUCTION).await? else {
            return Ok(None);
        };
        let release = alias.release;
        let (cursor, cursor_etag) = self.cursor(model, &release.id).await?;
        let batches = self
            .new_batches(model, release.version, release.at, now, &cursor)
            .await?;
        if batches.is_empty() {
            // A drifted window whose retrain was never recorded (its monitor stopped
            // between the two) is handed back, so the caller can finish acting on it.
            let Some(latest) = cursor.latest else {
                return Ok(None);
            };
            let key = layout::window(model, &release.id, &format!("{latest:06}"));
            let (report, _): (Report, _) = get_json(self.store.as_ref(), &key).await?;
            return Ok(
                (report.verdict == Verdict::Drifted && report.retrain_run.is_none()).then_some(
                    Judged {
                        report,
                        decided_now: false,
                    },
                ),
            );
        }
        // Only a window with something new needs the version, its settings and reference.
        let version = self.registry.version(model, release.version).await?;
        let config = self.monitoring_config(model).await?;
        let reference = self
            .reference(model, &version.lineage, release.version)
            .await?;
        let assessed = self
            .assess(&version.signature, &reference, &config, &batches)
            .await?;
        let (window, mode) = match cursor.open {
            Some(window) => {
                let key = layout::window(model, &release.id, &format!("{window:06}"));
                (window, PutMode::Update(self.store.head(&key).await?.etag))
            }
            None => (cursor.last + 1, PutMode::Create),
        };
        let report = Report {
            model: model.clone(),
            model_version: release.version,
            release: release.id.clone(),
            window,
            reference: ReferenceRef {
                dataset: version.lineage.dataset.clone(),
                version: version.lineage.dataset_version,
            },
            from: batches[0].0,
            to: batches[batches.len() - 1].0,
            rows: assessed.rows,
            min_rows: config.min_rows,
            verdict: assessed.verdict,
            columns: assessed.columns,
            batches: batches.into_iter().map(|b| b.1).collect(),
            unreadable: assessed.unreadable,
            judged_at: now,
            retrain_run: None,
            azureml: None,
        };
        let ours = report.batches.clone();
        let judged = self.write(report, mode).await?;
        if judged.report.batches == ours {
            let mut cursor = cursor;
            cursor.record(&judged.report);
            self.save_cursor(model, &release.id, &cursor, cursor_etag)
                .await?;
        } else {
            // Another monitor judged this window first, or the cursor was behind (a pass
            // stopped between its report and its cursor): rebuilt from the reports.
            let rebuilt = self.rebuild_cursor(model, &release.id).await?;
            self.save_cursor(model, &release.id, &rebuilt, None).await?;
        }
        Ok(Some(judged))
    }

    /// Where `release`'s windows stand: the cursor, or, for a store written before
    /// cursors (or one a pass left behind), rebuilt from the reports once.
    async fn cursor(
        &self,
        model: &ModelName,
        release: &str,
    ) -> Result<(Cursor, Option<crate::storage::ETag>), MonitorError> {
        match get_json(self.store.as_ref(), &layout::cursor(model, release)).await {
            Ok((cursor, etag)) => Ok((cursor, Some(etag))),
            Err(StorageError::NotFound { .. }) => {
                Ok((self.rebuild_cursor(model, release).await?, None))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// How `model` is watched (the defaults without a config).
    pub(super) async fn monitoring_config(
        &self,
        model: &ModelName,
    ) -> Result<MonitoringConfig, MonitorError> {
        match self.configs.get(model).await {
            Ok(c) => Ok(c.monitoring.unwrap_or_default()),
            Err(ConfigStoreError::Missing(_)) => Ok(MonitoringConfig::default()),
            Err(e) => Err(e.into()),
        }
    }

    /// The cursor the release's reports imply (reads every one of them).
    async fn rebuild_cursor(
        &self,
        model: &ModelName,
        release: &str,
    ) -> Result<Cursor, MonitorError> {
        let mut cursor = Cursor::default();
        let mut reports = Vec::new();
        for meta in self
            .store
            .list(&layout::release_prefix(model, release))
            .await?
        {
            if is_window(model, &meta.key) {
                reports.push(get_json::<Report>(self.store.as_ref(), &meta.key).await?.0);
            }
        }
        reports.sort_by_key(|r| r.window);
        for report in reports.iter().filter(|r| r.azureml.is_none()) {
            cursor.record(report);
        }
        Ok(cursor)
    }

    /// Writes the cursor (If-Match its ETag, or create-only); losing a race leaves the
    /// winner's, which the next pass reads (or rebuilds, if it is behind).
    async fn save_cursor(
        &self,
        model: &ModelName,
        release: &str,
        cursor: &Cursor,
        etag: Option<crate::storage::ETag>,
    ) -> Result<(), MonitorError> {
        let key = layout::cursor(model, release);
        let mode = match etag {
            Some(etag) => PutMode::Update(etag),
            None => PutMode::Overwrite,
        };
        match put_json(self.store.as_ref(), &key, cursor, mode).await {
            Ok(_) | Err(StorageError::Precondition { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Writes a window's report; if another monitor wrote it first, its report stands,
    /// and its actions are its own.
    async fn write(&self, report: Report, mode: PutMode) -> Result<Judged, MonitorError> {
        let key = report.key();
        match put_json(self.store.as_ref(), &key, &report, mode).await {
            Ok(_) => Ok(Judged {
                decided_now: report.verdict != Verdict::TooFewRows,
                report,
            }),
            Err(StorageError::AlreadyExists { .. } | StorageError::Precondition { .. }) => {
                let (theirs, _) = get_json(self.store.as_ref(), &key).await?;
                Ok(Judged {
                    report: theirs,
                    decided_now: false,
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Azure ML's dataset monitor found drift: a report for the production release of
    /// every model whose config subscribes to that monitor (`monitoring.azureml_monitors`),
    /// written once per finding however often the event arrives.
    pub async fn record_azureml(
        &self,
        found: &AzureMlDrift,
        now: DateTime<Utc>,
    ) -> Result<Vec<Judged>, MonitorError> {
        let mut judged = Vec::new();
        for config in self.configs.all().await? {
            let subscribed = config
                .monitoring
                .as_ref()
                .is_some_and(|m| m.azureml_monitors.contains(&found.monitor));
            if !subscribed {
                continue;
            }
            let model = &config.model;
            let Some((alias, _)) = self.registry.alias(model, PRODUCTION).await? else {
                continue;
            };
            let release = alias.release;
            let version = self.registry.version(model, release.version).await?;
            let report = Report {
                model: model.clone(),
                model_version: release.version,
                release: release.id.clone(),
                window: 0,
                reference: ReferenceRef {
                    dataset: version.lineage.dataset.clone(),
                    version: version.lineage.dataset_version,
                },
                from: found.start.unwrap_or(now),
                to: found.end.unwrap_or(now),
                rows: 0,
                min_rows: 0,
                verdict: Verdict::Drifted,
                columns: vec![ColumnDrift {
                    column: format!("azureml:{}", found.monitor),
                    statistic: drift::Statistic::AzureMlDriftCoefficient,
                    value: found.coefficient,
                    // The monitor's own threshold decided; the event does not carry it.
                    threshold: 0.0,
                    drifted: true,
                    psi: 0.0,
                    reference_count: 0,
                    count: 0,
                }],
                batches: vec![],
                unreadable: vec![],
                judged_at: now,
                retrain_run: None,
                azureml: Some(found.clone()),
            };
            judged.push(self.write(report, PutMode::Create).await?);
        }
        Ok(judged)
    }

    /// The batches of `version` written since `since` that no window judged yet (by the
    /// cursor), oldest first. Days before the cursor's settled time are not listed.
    async fn new_batches(
        &self,
        model: &ModelName,
        version: u32,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
        cursor: &Cursor,
    ) -> Result<Vec<(DateTime<Utc>, ObjectKey)>, MonitorError> {
        let mut found = Vec::new();
        let since = cursor.settled_before.map_or(since, |s| s.max(since));
        let mut day = since.date_naive();
        while day <= now.date_naive() {
            for (key, at, v) in self.batches_on(model, day).await? {
                if v == version && !cursor.judged(at, &key) {
                    found.push((at, key));
                }
            }
            day = day.succ_opt().expect("dates in range");
        }
        found.sort();
        Ok(found)
    }

    /// `model`'s prediction-log batches written on `day`, each with its write time and
    /// model version (other objects under the day are not batches).
    pub(super) async fn batches_on(
        &self,
        model: &ModelName,
        day: chrono::NaiveDate,
    ) -> Result<Vec<(ObjectKey, DateTime<Utc>, u32)>, MonitorError> {
        Ok(self
            .store
            .list(&log::day_prefix(model, day))
            .await?
            .into_iter()
            .filter_map(|meta| {
                let (at, version) = log::parse_batch_key(meta.key.as_str())?;
                Some((meta.key, at, version))
            })
            .collect())
    }

    /// The training data's profile: kept with the version, or, for versions registered
    /// before references were kept, the dataset version's manifest.
    async fn reference(
        &self,
        model: &ModelName,
        lineage: &crate::registry::Lineage,
        version: u32,
    ) -> Result<Vec<ColumnProfile>, MonitorError> {
        if let Some(kept) = self.registry.reference(model, version).await? {
            return Ok(kept);
        }
        let key = dataset::layout::manifest(&lineage.dataset, lineage.dataset_version);
        let (manifest, _): (Manifest, _) = get_json(self.store.as_ref(), &key).await?;
        Ok(manifest.profile)
    }

    /// Tallies `batches` against the reference and judges every column.
    async fn assess(
        &self,
        signature: &Signature,
        reference: &[ColumnProfile],
        config: &MonitoringConfig,
        batches: &[(DateTime<Utc>, ObjectKey)],
    ) -> Result<Assessment, MonitorError> {
        // (column in the log, column in the reference, its distribution there, live tally)
        let prediction_column = match signature.task {
            Task::Regression => "predicted_value",
            _ => "predicted_label",
        };
        let mut watched: Vec<(String, String, Distribution, Tally)> = Vec::new();
        let columns = signature
            .inputs
            .iter()
            .map(|i| (i.name.clone(), i.name.clone()))
            .chain([(prediction_column.to_owned(), signature.label.clone())]);
        for (logged, profiled) in columns {
            let Some(profile) = reference.iter().find(|c| c.name == profiled) else {
                continue;
            };
            if let Some(dist) = Distribution::of_profile(profile) {
                let tally = Tally::like(&dist);
                watched.push((logged, profiled, dist, tally));
            }
        }
        let mut rows = 0u64;
        let mut unreadable = Vec::new();
        for (_, key) in batches {
            let bytes = self.store.get(key).await?.bytes().await?;
            // One damaged batch must not stop the model's monitoring for good: it is left
            // out of the window, and the report names it.
            let frame = match ParquetReader::new(std::io::Cursor::new(bytes)).finish() {
                Ok(frame) => frame,
                Err(e) => {
                    tracing::warn!(batch = %key, error = %e, "an unreadable prediction batch is left out");
                    unreadable.push(key.clone());
                    continue;
                }
            };
            rows += frame.height() as u64;
            for (logged, _, dist, tally) in &mut watched {
                let Ok(column) = frame.column(logged) else {
                    continue;
                };
                tally_column(column, dist, tally).map_err(|e| MonitorError::Batch {
                    key: key.to_string(),
                    message: e.to_string(),
                })?;
            }
        }
        let decided = rows >= config.min_rows;
        let mut judged = Vec::new();
        if decided {
            for (logged, profiled, dist, tally) in watched {
                let name = if profiled == signature.label && logged == prediction_column {
                    PREDICTION.to_owned()
                } else {
                    logged
                };
                let live = tally.finish();
                let threshold = config.thresholds.get(&name).copied().unwrap_or(match dist {
                    Distribution::Numeric { .. } => config.numeric_threshold,
                    Distribution::Categorical { .. } => config.categorical_threshold,
                });
                if let Some(verdict) = drift::compare(&name, &dist, &live, threshold) {
                    judged.push(verdict);
                }
            }
        }
        let verdict = if !decided {
            Verdict::TooFewRows
        } else if judged.iter().any(|c| c.drifted) {
            Verdict::Drifted
        } else {
            Verdict::Stable
        };
        Ok(Assessment {
            rows,
            verdict,
            columns: judged,
            unreadable,
        })
    }
}

/// How far behind the newest judged batch a batch may still show up: the log writes a
/// batch seconds after naming it, so an hour is far more than a write takes.
const SETTLE: chrono::Duration = chrono::Duration::hours(1);

/// Where a release's windows stand (`monitoring/<model>/<release>/cursor.json`), so a
/// pass reads one object, not every report of the release. Derived from the reports,
/// which stay the truth: a missing or stale cursor is rebuilt from them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Cursor {
    /// The highest window number taken.
    last: u32,
    /// The window left open (too few rows so far).
    open: Option<u32>,
    /// The newest decided window.
    latest: Option<u32>,
    /// Every batch named before this was judged.
    settled_before: Option<DateTime<Utc>>,
    /// The judged batches named since.
    recent: BTreeSet<ObjectKey>,
}

impl Cursor {
    /// Takes a report (of Sluice's own windows) into account.
    fn record(&mut self, report: &Report) {
        self.last = self.last.max(report.window);
        if report.verdict == Verdict::TooFewRows {
            self.open = Some(report.window);
            return;
        }
        if self.open == Some(report.window) {
            self.open = None;
        }
        self.latest = self.latest.max(Some(report.window));
        self.recent.extend(report.batches.iter().cloned());
        let newest = self
            .recent
            .iter()
            .filter_map(|k| log::parse_batch_key(k.as_str()).map(|(at, _)| at))
            .max();
        if let Some(newest) = newest {
            let settled = newest - SETTLE;
            self.settled_before = self.settled_before.max(Some(settled));
            self.recent
                .retain(|k| log::parse_batch_key(k.as_str()).is_none_or(|(at, _)| at >= settled));
        }
    }

    /// Whether the batch named `key` (written at `at`) was judged.
    fn judged(&self, at: DateTime<Utc>, key: &ObjectKey) -> bool {
        self.settled_before.is_some_and(|s| at < s) || self.recent.contains(key)
    }
}

/// Whether a key under `monitoring/<model>/` is a drift window (`<release>/<name>.json`),
/// not the live metrics, a feedback report or a guard's breach.
fn is_window(model: &ModelName, key: &ObjectKey) -> bool {
    key.as_str()
        .strip_prefix(&layout::model_prefix(model))
        .and_then(|rest| rest.split_once('/'))
        .is_some_and(|(release, file)| {
            release != "feedback"
                && !file.contains('/')
                && file != format!("{}.json", layout::DEGRADED)
                && file != format!("{}.json", layout::CURSOR)
        })
}

/// What a window's batches say, before it is placed in its release.
struct Assessment {
    rows: u64,
    verdict: Verdict,
    columns: Vec<ColumnDrift>,
    unreadable: Vec<ObjectKey>,
}

/// Adds a logged column's values to its tally: numbers as numbers, anything else as text
/// (an empty text is a null, as the log writes a missing category).
fn tally_column(column: &Column, dist: &Distribution, tally: &mut Tally) -> PolarsResult<()> {
    match dist {
        Distribution::Numeric { .. } if column.dtype().is_primitive_numeric() => {
            for x in column.cast(&DataType::Float64)?.f64()?.iter() {
                match x {
                    Some(x) if !x.is_nan() => tally.add_number(x),
                    _ => tally.add_null(),
                }
            }
        }
        _ => {
            for x in column.cast(&DataType::String)?.str()?.iter() {
                match x {
                    Some(x) if !x.is_empty() => tally.add_text(x),
                    _ => tally.add_null(),
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn azure_ml_drift_reads_either_casing_and_names_a_bad_field() {
        let pascal = serde_json::json!({
            "DataDriftId": "01d29aa4", "DataDriftName": "myDriftMonitor",
            "RunId": "01d29aa4_1571590300380", "DriftCoefficient": 0.835,
            "StartTime": "2019-07-04T00:00:00+00:00", "EndTime": "2019-07-05T00:00:00+00:00"
        });
        let camel = serde_json::json!({
            "dataDriftName": "myDriftMonitor", "runId": "01d29aa4_1571590300380",
            "driftCoefficient": "0.835", "startTime": "2019-07-04T00:00:00Z",
            "endTime": "2019-07-05T00:00:00Z"
        });
        let a = AzureMlDrift::from_event_data(&pascal).unwrap();
        assert_eq!(a, AzureMlDrift::from_event_data(&camel).unwrap());
        assert_eq!(a.coefficient, 0.835);
        assert_eq!(a.key_name(), "azureml-01d29aa4_1571590300380");
        let mut bad = pascal.clone();
        bad["DriftCoefficient"] = serde_json::json!("high");
        assert_eq!(
            AzureMlDrift::from_event_data(&bad).unwrap_err().0,
            "DriftCoefficient"
        );
        let mut bad = pascal;
        bad.as_object_mut().unwrap().remove("RunId");
        assert_eq!(
            AzureMlDrift::from_event_data(&bad).unwrap_err(),
            ("RunId".to_owned(), "missing".to_owned())
        );
    }
}
