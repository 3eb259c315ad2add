//! Runs: the newest, and one run with its attempts and its training logs.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use sluice_shared::runs::{Run, RunError};

use super::session::Session;
use super::{Frame, Page, html, missing, serde_name, unavailable, when};
use crate::host::state::AppState;

/// How many runs the list shows (the newest).
const SHOWN: usize = 100;

/// One run as the pages show it.
pub struct RunRow {
    pub id: String,
    pub model: String,
    pub status: String,
    pub trigger: String,
    pub requested_by: String,
    pub reason: String,
    pub dataset: String,
    pub dataset_version: u32,
    pub created: String,
    /// Seconds from start to finish, once finished.
    pub took: String,
    pub attempt: u32,
    pub model_version: Option<u32>,
    pub error: String,
}

fn took(
    s: Option<chrono::DateTime<chrono::Utc>>,
    f: Option<chrono::DateTime<chrono::Utc>>,
) -> String {
    match (s, f) {
        (Some(s), Some(f)) => format!("{:.1} s", (f - s).num_milliseconds() as f64 / 1000.0),
        _ => "—".to_owned(),
    }
}

impl RunRow {
    pub fn of(r: &Run) -> Self {
        Self {
            id: r.id.clone(),
            model: r.model.to_string(),
            status: serde_name(r.status),
            trigger: r.trigger.clone(),
            requested_by: r.requested_by.clone(),
            reason: r.reason.clone(),
            dataset: r.dataset.to_string(),
            dataset_version: r.dataset_version,
            created: when(&r.created_at),
            took: took(r.started_at, r.finished_at),
            attempt: r.attempt,
            model_version: r.model_version,
            error: r.error.clone().unwrap_or_default(),
        }
    }
}

#[derive(Template)]
#[template(path = "console/runs.html")]
struct RunsPage {
    frame: Frame,
    shown: usize,
    runs: Vec<RunRow>,
}

/// The newest runs, as `Runs::recent` answers.
pub async fn list(State(state): State<AppState>, session: Session) -> Page {
    let runs = state
        .runs
        .recent(SHOWN)
        .await
        .map_err(|e| unavailable(&session, e))?;
    Ok(html(
        StatusCode::OK,
        RunsPage {
            frame: Frame::of(&session),
            shown: SHOWN,
            runs: runs.iter().map(RunRow::of).collect(),
        },
    ))
}

/// An earlier attempt, as it ended.
struct AttemptRow {
    attempt: u32,
    status: String,
    took: String,
    error: String,
}

#[derive(Template)]
#[template(path = "console/run.html")]
struct RunPage {
    frame: Frame,
    run: RunRow,
    compute: String,
    job: String,
    config_sha256: String,
    source: String,
    earlier: Vec<AttemptRow>,
    /// Which attempt's logs are shown, every attempt there is, and the logs.
    logs_attempt: u32,
    attempts: Vec<u32>,
    logs: Option<String>,
}

#[derive(Deserialize)]
pub struct LogsQuery {
    attempt: Option<u32>,
}

/// One run: what it is, how its attempts went, and an attempt's logs (the current one
/// unless `?attempt=`).
pub async fn run(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    Query(q): Query<LogsQuery>,
) -> Page {
    let run = match state.runs.get(&id).await {
        Ok((run, _)) => run,
        Err(RunError::NotFound(_)) => {
            return Err(missing(&session, format!("There is no run {id}.")));
        }
        Err(e) => return Err(unavailable(&session, e)),
    };
    let attempt = q.attempt.unwrap_or(run.attempt).clamp(1, run.attempt);
    let logs = state
        .runs
        .logs(&id, attempt)
        .await
        .map_err(|e| unavailable(&session, e))?;
    Ok(html(
        StatusCode::OK,
        RunPage {
            frame: Frame::of(&session),
            compute: run.compute.clone(),
            job: run.job.clone().unwrap_or_else(|| "—".into()),
            config_sha256: run.config_sha256.clone(),
            source: run.source_uri.clone(),
            earlier: run
                .earlier_attempts
                .iter()
                .map(|a| AttemptRow {
                    attempt: a.attempt,
                    status: serde_name(a.status),
                    took: took(a.started_at, a.finished_at),
                    error: a.error.clone().unwrap_or_default(),
                })
                .collect(),
            logs_attempt: attempt,
            attempts: (1..=run.attempt).collect(),
            logs,
            run: RunRow::of(&run),
        },
    ))
}
