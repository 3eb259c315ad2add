//! Watching production: `MonitorTimer` judges each production model's logged predictions
//! against its training data and publishes `model.drift_detected`, as does Azure ML's
//! `DatasetDriftDetected` for the models subscribed to its monitor; `GET
//! /api/models/{name}/monitoring` reads the reports. Both call `shared`'s monitoring use
//! cases; this file only decodes and encodes.

use axum::extract::State;
use serde_json::{Value, json};
use sluice_shared::monitoring::{AzureMlDrift, Verdict};
use sluice_shared::runs::lifecycle::{self, Watched};
use tracing::Instrument;

use crate::host::error::AppError;
use crate::host::invocation::{InvocationError, InvocationResponse, event_data};
use crate::host::models::ModelPath;
use crate::host::state::{Admin, AppState};
use crate::host::trigger::Trigger;

/// `MonitorTimer`'s Service Bus output binding (the `sluice-events` topic).
pub const MONITOR_EVENTS_BINDING: &str = "monitorEvents";

/// `model.drift_detected` for a window judged drifted on this pass, as a CloudEvents 1.0
/// structured event; its id names the window, so a consumer drops a redelivery.
pub fn drift_event(watched: &Watched) -> Option<Value> {
    let report = &watched.report;
    if !watched.decided_now || report.verdict != Verdict::Drifted {
        return None;
    }
    Some(json!({
        "specversion": "1.0",
        "id": format!("model.drift_detected:{}:{}:{}", report.model, report.release, report.window_name()),
        "source": "/sluice/monitoring",
        "type": "model.drift_detected",
        "subject": format!("models/{}/versions/{}", report.model, report.model_version),
        "time": report.judged_at,
        "datacontenttype": "application/json",
        "data": {
            "model": report.model,
            "model_version": report.model_version,
            "release": report.release,
            "window": report.window_name(),
            "rows": report.rows,
            "drifted": report.drifted(),
            "report": report.key().as_str(),
            "retrain_run": report.retrain_run,
        },
    }))
}

/// The windows judged, and a `model.drift_detected` for each one decided drifted now.
fn answer(watched: &[Watched]) -> InvocationResponse {
    let events: Vec<Value> = watched.iter().filter_map(drift_event).collect();
    let response = InvocationResponse::default().returning(json!({ "windows": watched }));
    if events.is_empty() {
        response
    } else {
        response.output(MONITOR_EVENTS_BINDING, &events)
    }
}

/// `MonitorTimer`: one pass of the monitor.
pub async fn monitor_timer(
    State(state): State<AppState>,
    Trigger { span, .. }: Trigger,
) -> Result<axum::Json<InvocationResponse>, AppError> {
    let watched = lifecycle::monitor(&state.runs, &state.monitor, chrono::Utc::now())
        .instrument(span)
        .await?;
    Ok(axum::Json(answer(&watched)))
}

/// Azure ML's `DatasetDriftDetected` (delivered to `MlJobEvents`): the drift of every
/// model subscribed to the monitor, acted on as Sluice's own; a malformed event is a
/// 400 naming the field.
pub async fn azureml_drift(
    state: &AppState,
    event: &Value,
) -> Result<axum::Json<InvocationResponse>, AppError> {
    let data = event_data(event)?;
    let found = AzureMlDrift::from_event_data(data).map_err(|(field, problem)| {
        InvocationError::new(format!("Data.event.data.{field}"), problem)
    })?;
    let watched =
        lifecycle::on_azureml_drift(&state.runs, &state.monitor, &found, chrono::Utc::now())
            .await?;
    Ok(axum::Json(answer(&watched)))
}

/// `GET /api/models/{name}/monitoring`: the model's reports, newest first.
pub async fn reports(
    State(state): State<AppState>,
    _: Admin,
    ModelPath(model): ModelPath,
) -> Result<axum::Json<Value>, AppError> {
    let reports = state.monitor.reports(&model).await?;
    if reports.is_empty() && state.runs.registry().versions(&model).await?.is_empty() {
        return Err(AppError::not_found(format!("no model {model}")));
    }
    Ok(axum::Json(json!({"model": model, "reports": reports})))
}
