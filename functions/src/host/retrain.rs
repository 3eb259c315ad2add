//! The retraining functions: requests from Service Bus (`RetrainQueue`), HTTP
//! (`Retrain`, `Runs`) and dataset events (`DatasetEvents`); following runs to the end
//! (`RunsTimer`, and `MlJobEvents` for Azure ML's job events), which registers their
//! models and sends each new version through the evaluation gate.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde_json::{Value, json};
use sluice_shared::dataset::DatasetName;
use sluice_shared::runs::lifecycle::{self, Requested};
use sluice_shared::runs::{RetrainRequest, RunError};
use tracing::{Instrument, info, info_span};

use crate::host::error::AppError;
use crate::host::invocation::{InvocationError, InvocationResponse, event_data, event_type};
use crate::host::state::{Admin, AppState, Reader, Reason};
use crate::host::trigger::{Trigger, ignored};

/// Decodes a request, naming the field that is wrong.
fn decode_request(value: Value) -> Result<RetrainRequest, (String, String)> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        (
            if path == "." { String::new() } else { path },
            e.into_inner().to_string(),
        )
    })
}

/// `RetrainQueue`: a Service Bus message from another system. A message that can never
/// succeed is answered 2xx and set aside under `rejected/` (no ten redeliveries); a
/// transient failure is answered 503 so the host retries and, in the end, dead-letters.
pub async fn retrain_queue(
    State(state): State<AppState>,
    Trigger { inv, span }: Trigger,
) -> Result<axum::Json<InvocationResponse>, AppError> {
    let correlation = inv
        .meta_str("MessageId")
        .unwrap_or_else(|| inv.invocation_id());
    span.record("correlation_id", correlation.as_str());
    async move {
        let message = inv.data_json("message")?;
        let result = match decode_request(message.clone()) {
            Ok(request) => {
                let requested = lifecycle::request_and_start(
                    &state.runs,
                    &request,
                    "RetrainQueue",
                    &correlation,
                )
                .await?;
                serde_json::to_value(requested).unwrap_or_default()
            }
            Err((field, problem)) => {
                let reason = if field.is_empty() {
                    problem
                } else {
                    format!("{field}: {problem}")
                };
                let record = state
                    .runs
                    .reject(&reason, "RetrainQueue", &correlation, message)
                    .await?;
                json!({"status": "rejected", "reason": reason, "record": record})
            }
        };
        Ok(axum::Json(
            InvocationResponse::default()
                .log(format!("retrain request: {}", result["status"]))
                .returning(result),
        ))
    }
    .instrument(span)
    .await
}

/// `DatasetEvents` (the `retrain` subscription of `sluice-events`): `dataset.versioned`
/// retrains every model subscribed to the dataset, as its retrain policy says; every
/// other lifecycle event on the topic is acknowledged and ignored.
pub async fn dataset_events(
    State(state): State<AppState>,
    Trigger { inv, span }: Trigger,
) -> Result<axum::Json<InvocationResponse>, AppError> {
    async move {
        let message = inv.data_json("message")?;
        let event = sluice_shared::dataset::versioned_of(&message)
            .map_err(|e| InvocationError::new("Data.message", e))?;
        let Some(sluice_shared::dataset::Versioned {
            dataset,
            version,
            event_id,
        }) = event
        else {
            let kind = message["type"].as_str().unwrap_or_default();
            return Ok(ignored(format!("{kind} retrains nothing")));
        };
        let started =
            lifecycle::on_dataset_versioned(&state.runs, &dataset, version, &event_id).await?;
        Ok(axum::Json(
            InvocationResponse::default()
                .log(format!("{} run(s) for {dataset} v{version}", started.len()))
                .returning(json!({"status": "handled", "runs": started})),
        ))
    }
    .instrument(span)
    .await
}

/// `Retrain` (HTTP, forwarded): `POST /api/retrain` with the admin key. Answers 202 with
/// the run id and where to follow it.
pub async fn retrain_http(
    State(state): State<AppState>,
    Admin(actor): Admin,
    payload: Result<Bytes, BytesRejection>,
) -> Result<axum::response::Response, AppError> {
    let bytes = payload.map_err(|e| AppError::bad_request("body", e.body_text()))?;
    let mut value: Value = serde_json::from_slice(&bytes)
        .map_err(|e| AppError::bad_request("body", format!("not JSON: {e}")))?;
    if !value.is_object() {
        return Err(AppError::bad_request("body", "must be a JSON object"));
    }
    if value.get("requested_by").is_none() {
        value["requested_by"] = json!(actor);
    }
    let request = decode_request(value).map_err(|(field, problem)| {
        AppError::bad_request(
            if field.is_empty() {
                "body".into()
            } else {
                field
            },
            problem,
        )
    })?;
    let correlation = uuid::Uuid::new_v4().to_string();
    let requested = lifecycle::request_and_start(&state.runs, &request, "Retrain", &correlation)
        .instrument(info_span!("invocation", function = "Retrain", correlation_id = %correlation))
        .await?;
    let (id, duplicate, run) = match requested {
        Requested::Accepted {
            run_id,
            duplicate,
            run,
        } => (run_id, duplicate, run),
        Requested::Rejected { reason, .. } => return Err(AppError::bad_request("body", reason)),
    };
    let location = format!("/api/runs/{id}");
    let body = json!({"run_id": id, "status_url": location, "duplicate": duplicate, "run": run});
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        axum::Json(body),
    )
        .into_response())
}

/// `Runs` (HTTP, forwarded): `GET /api/runs`, `GET /api/runs/{id}` and
/// `POST /api/runs/{id}/retry`.
pub async fn runs_list(
    State(state): State<AppState>,
    _: Reader,
) -> Result<axum::Json<Value>, AppError> {
    Ok(axum::Json(json!({"runs": state.runs.list().await?})))
}

pub async fn run_get(
    State(state): State<AppState>,
    _: Reader,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>, AppError> {
    let (run, _) = state.runs.get(&id).await?;
    Ok(axum::Json(serde_json::to_value(run).unwrap_or_default()))
}

/// `POST /api/runs/{id}/retry` (body `{"reason": …}`, optional): the next attempt of a
/// failed or canceled run, submitted at once; `409` for any other run.
pub async fn run_retry(
    State(state): State<AppState>,
    Admin(actor): Admin,
    Path(id): Path<String>,
    why: Reason,
) -> Result<(StatusCode, axum::Json<Value>), AppError> {
    let correlation = uuid::Uuid::new_v4().to_string();
    let span = info_span!("retry", run_id = %id, correlation_id = %correlation);
    let run = async {
        let run = state.runs.retry(&id, &actor, &why.0, &correlation).await?;
        info!(attempt = run.attempt, "run retried");
        Ok::<_, AppError>(state.runs.start(&id).await?)
    }
    .instrument(span)
    .await?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(serde_json::to_value(run).unwrap_or_default()),
    ))
}

/// `RunsTimer`: the fallback that never lets a lost event strand a run.
pub async fn runs_timer(
    State(state): State<AppState>,
    Trigger { span, .. }: Trigger,
) -> Result<axum::Json<InvocationResponse>, AppError> {
    let report = lifecycle::advance(&state.runs, state.gate.as_deref(), None)
        .instrument(span.clone())
        .await?;
    // The same timer follows delegated uploads' scans; a finished one's version or
    // quarantine is told by Notify, as any other.
    let delegations = state.ingestor.follow_delegations().instrument(span).await?;
    Ok(axum::Json(InvocationResponse::default().returning(
        json!({"runs": report, "delegations": delegations}),
    )))
}

/// `MlJobEvents`: Azure ML `RunCompleted` / `RunStatusChanged` events for Sluice's jobs:
/// training jobs (named after their run, and tagged with it) and the Spark scans of
/// delegated uploads (tagged with their delegation).
pub async fn ml_job_events(
    State(state): State<AppState>,
    Trigger { inv, span }: Trigger,
) -> Result<axum::Json<InvocationResponse>, AppError> {
    async move {
        let event = inv.event()?;
        let kind = event_type(&event).unwrap_or_default();
        if kind == "Microsoft.MachineLearningServices.DatasetDriftDetected" {
            return crate::host::monitoring::azureml_drift(&state, &event).await;
        }
        if !kind.starts_with("Microsoft.MachineLearningServices.Run") {
            return Ok(ignored(format!("event type {kind:?} is not a job event")));
        }
        let data = event_data(&event)?;
        // A delegated upload's scan (tagged with its delegation): finish the upload now
        // rather than at the timer's next tick.
        if let (Some(id), Some(dataset)) = (
            data.pointer("/runTags/sluice.delegation")
                .and_then(Value::as_str),
            data.pointer("/runTags/sluice.dataset")
                .and_then(Value::as_str),
        ) {
            let dataset = DatasetName::parse(dataset).map_err(|e| {
                InvocationError::new("Data.event.data.runTags.sluice.dataset", e.to_string())
            })?;
            let Some(delegation) = state.ingestor.follow_delegation(&dataset, id).await? else {
                return Ok(ignored(format!("{id} is not a Sluice delegation")));
            };
            return Ok(axum::Json(
                InvocationResponse::default().returning(json!({"delegations": [delegation]})),
            ));
        }
        let run_id = data
            .pointer("/runTags/sluice.run_id")
            .or_else(|| data.get("runId"))
            .and_then(Value::as_str)
            .ok_or_else(|| InvocationError::new("Data.event.data.runId", "missing"))?;
        match state.runs.get(run_id).await {
            Err(RunError::NotFound(_)) => {
                return Ok(ignored(format!("{run_id} is not a Sluice run")));
            }
            Err(e) => return Err(e.into()),
            Ok(_) => {}
        }
        let report = lifecycle::advance(&state.runs, state.gate.as_deref(), Some(run_id)).await?;
        Ok(axum::Json(
            InvocationResponse::default().returning(json!({"runs": report})),
        ))
    }
    .instrument(span)
    .await
}
