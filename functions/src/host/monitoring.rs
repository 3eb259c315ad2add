//! Watching production: `MonitorTimer` judges each production model's logged predictions
//! against its training data and publishes `model.drift_detected`, as does Azure ML's
//! `DatasetDriftDetected` for the models subscribed to its monitor; it also matches
//! ground truth with the predictions and publishes `model.degraded` (and
//! `model.rolled_back` when the guard rolls back). `POST /api/feedback/{model}` takes
//! ground truth; `GET /api/models/{name}/monitoring` reads the reports and live metrics.
//! All call `shared`'s monitoring use cases; this file only decodes and encodes.

use axum::extract::State;
use axum::response::IntoResponse;
use serde_json::{Value, json};
use sluice_shared::monitoring::{AzureMlDrift, Verdict};
use sluice_shared::runs::lifecycle::{self, Checked, MonitorPass, Watched};
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

/// `model.degraded` for a breach decided on this pass, and `model.rolled_back` for the
/// rollback it made; ids name the release, so a redelivery is dropped.
pub fn guard_events(checked: &Checked) -> Vec<Value> {
    let mut events = Vec::new();
    let Some(guarded) = &checked.pass.degraded else {
        return events;
    };
    let d = &guarded.degradation;
    if guarded.decided_now {
        events.push(json!({
            "specversion": "1.0",
            "id": format!("model.degraded:{}:{}", d.model, d.release),
            "source": "/sluice/monitoring",
            "type": "model.degraded",
            "subject": format!("models/{}/versions/{}", d.model, d.model_version),
            "time": d.judged_at,
            "datacontenttype": "application/json",
            "data": {
                "model": d.model,
                "model_version": d.model_version,
                "release": d.release,
                "metric": d.metric,
                "value": d.value,
                "bound": d.bound,
                "labelled": d.labelled,
                "report": d.key().as_str(),
                "rollback": guarded.rollback,
            },
        }));
    }
    if let Some(release) = &checked.rolled_back {
        events.push(json!({
            "specversion": "1.0",
            "id": format!("model.rolled_back:{}:{}", release.model, release.id),
            "source": "/sluice/monitoring",
            "type": "model.rolled_back",
            "subject": format!("models/{}/versions/{}", release.model, release.version),
            "time": release.at,
            "datacontenttype": "application/json",
            "data": {
                "model": release.model,
                "model_version": release.version,
                "release": release.id,
                "rolls_back": release.rolls_back,
                "actor": release.actor,
                "reason": release.reason,
            },
        }));
    }
    events
}

/// What a pass returns, with its events on the `monitorEvents` output.
fn respond(returning: Value, events: Vec<Value>) -> InvocationResponse {
    let response = InvocationResponse::default().returning(returning);
    if events.is_empty() {
        response
    } else {
        response.output(MONITOR_EVENTS_BINDING, &events)
    }
}

/// The windows judged, and a `model.drift_detected` for each one decided drifted now.
fn answer(watched: &[Watched]) -> InvocationResponse {
    let events = watched.iter().filter_map(drift_event).collect();
    respond(json!({ "windows": watched }), events)
}

/// A whole pass: windows and ground truth, with every event either decided.
fn answer_pass(pass: &MonitorPass) -> InvocationResponse {
    let events = (pass.windows.iter().filter_map(drift_event))
        .chain(pass.ground_truth.iter().flat_map(guard_events))
        .collect();
    respond(json!(pass), events)
}

/// `MonitorTimer`: one pass of the monitor.
pub async fn monitor_timer(
    State(state): State<AppState>,
    Trigger { span, .. }: Trigger,
) -> Result<axum::Json<InvocationResponse>, AppError> {
    let pass = lifecycle::monitor(&state.runs, &state.monitor, chrono::Utc::now())
        .instrument(span)
        .await?;
    Ok(axum::Json(answer_pass(&pass)))
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

/// `GET /api/models/{name}/monitoring`: the drift reports (newest first), the live
/// metrics and guard as the last pass left them, and what became of each feedback batch.
pub async fn reports(
    State(state): State<AppState>,
    _: Admin,
    ModelPath(model): ModelPath,
) -> Result<axum::Json<Value>, AppError> {
    let reports = state.monitor.reports(&model).await?;
    if reports.is_empty() && state.runs.registry().versions(&model).await?.is_empty() {
        return Err(AppError::not_found(format!("no model {model}")));
    }
    let live = state.monitor.live(&model).await?;
    let feedback = state.monitor.feedback(&model).await?;
    Ok(axum::Json(json!({
        "model": model,
        "reports": reports,
        "live": live,
        "feedback": feedback,
    })))
}

/// The largest feedback body `POST /api/feedback/{model}` reads.
pub const MAX_FEEDBACK_BYTES: usize = 4 << 20;

/// `POST /api/feedback/{model}` (admin key): a JSON array of `{request_id, row?, label}`
/// or `{request_id, row?, value}`. 202 with the batch's id; what became of each label
/// (matched, unknown, already labelled) is in `GET …/monitoring` after the next pass.
pub async fn submit_feedback(
    State(state): State<AppState>,
    Admin(actor): Admin,
    axum::extract::Path(model): axum::extract::Path<String>,
    request: axum::extract::Request,
) -> Result<axum::response::Response, AppError> {
    let model = sluice_shared::registry::ModelName::parse(&model)
        .map_err(|_| AppError::not_found(format!("no model {model:?}")))?;
    let Ok(body) = axum::body::to_bytes(request.into_body(), MAX_FEEDBACK_BYTES).await else {
        // The rest of the body is never read, so the connection cannot carry another
        // request: say so, as `Score` does.
        let mut response = AppError::too_large(
            "body",
            format!("the body is larger than {MAX_FEEDBACK_BYTES} bytes; send smaller batches"),
        )
        .into_response();
        response.headers_mut().insert(
            axum::http::header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
        return Ok(response);
    };
    let accepted = state
        .feedback
        .submit(&model, &body, &actor, chrono::Utc::now())
        .await?;
    Ok((
        axum::http::StatusCode::ACCEPTED,
        axum::Json(json!(accepted)),
    )
        .into_response())
}
