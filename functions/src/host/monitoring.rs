//! Watching production: `MonitorTimer` judges each production model's logged predictions
//! against its training data, as Azure ML's `DatasetDriftDetected` does for the models
//! subscribed to its monitor; it also matches ground truth with the predictions and
//! holds production to its guard. What they decide is audited, and Notify tells it
//! (`model.drift_detected`, `model.degraded`, `model.rolled_back`). `POST
//! /api/feedback/{model}` takes ground truth; `GET /api/models/{name}/monitoring` reads
//! the reports and live metrics. All call `shared`'s monitoring use cases; this file
//! only decodes and encodes.

use axum::extract::State;
use axum::response::IntoResponse;
use serde_json::{Value, json};
use sluice_shared::monitoring::AzureMlDrift;
use sluice_shared::runs::lifecycle;
use tracing::Instrument;

use crate::host::error::AppError;
use crate::host::invocation::{InvocationError, InvocationResponse, event_data};
use crate::host::models::ModelPath;
use crate::host::state::{Admin, AppState, Reader};
use crate::host::trigger::Trigger;

/// `MonitorTimer`: one pass of the monitor.
pub async fn monitor_timer(
    State(state): State<AppState>,
    Trigger { span, .. }: Trigger,
) -> Result<axum::Json<InvocationResponse>, AppError> {
    let pass = lifecycle::monitor(&state.runs, &state.monitor, chrono::Utc::now())
        .instrument(span)
        .await?;
    Ok(axum::Json(
        InvocationResponse::default().returning(json!(pass)),
    ))
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
    Ok(axum::Json(
        InvocationResponse::default().returning(json!({ "windows": watched })),
    ))
}

/// `GET /api/models/{name}/monitoring`: the drift reports (newest first), the live
/// metrics and guard as the last pass left them, and what became of each feedback batch.
pub async fn reports(
    State(state): State<AppState>,
    _: Reader,
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
