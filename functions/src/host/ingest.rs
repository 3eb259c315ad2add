//! The functions: decode the host's invocation, call the domain, encode the result. An
//! upload under `landing/feedback/<model>/` is ground truth, not a dataset: it goes to
//! the feedback use case.

use axum::extract::State;
use serde_json::{Value, json};
use sluice_shared::dataset::{IngestOutcome, Upload};
use tracing::Instrument;

use crate::host::error::AppError;
use crate::host::invocation::{InvocationError, InvocationResponse, event_data, event_type};
use crate::host::state::{AppState, BLOB_TRIGGER_MAX_BYTES};
use crate::host::trigger::{Trigger, ignored};

/// Storage operations that create blob content; others (e.g. CopyBlob metadata-only
/// events, directory renames) are ignored.
const BLOB_CREATED_APIS: &[&str] = &["PutBlob", "PutBlockList", "FlushWithClose"];

/// `DatasetIngest`: an Event Grid `Microsoft.Storage.BlobCreated` event (Event Grid or
/// CloudEvents schema). The event carries only the URL; the blob is streamed from storage.
pub async fn dataset_ingest(
    State(state): State<AppState>,
    Trigger { inv, span }: Trigger,
) -> Result<axum::Json<InvocationResponse>, AppError> {
    async move {
        let event = inv.event()?;
        let kind = event_type(&event).ok_or_else(|| {
            InvocationError::new(
                "Data.event.eventType",
                "missing (or `type` for CloudEvents)",
            )
        })?;
        if kind != "Microsoft.Storage.BlobCreated" {
            return Ok(ignored(format!("event type {kind} is not handled")));
        }
        let data = event_data(&event)?;
        let api = data.get("api").and_then(Value::as_str).unwrap_or_default();
        if !BLOB_CREATED_APIS.contains(&api) {
            return Ok(ignored(format!(
                "storage operation {api:?} does not create content"
            )));
        }
        let url = data.get("url").and_then(Value::as_str).ok_or_else(|| {
            InvocationError::new("Data.event.data.url", "missing or not a string")
        })?;
        let Some(key) = state.store.key_from_uri(url) else {
            return Ok(ignored(format!(
                "{url} is not in this deployment's container"
            )));
        };
        let upload = Upload {
            key,
            etag: data.get("eTag").and_then(Value::as_str).map(str::to_owned),
            uploader: data
                .get("identity")
                .and_then(Value::as_str)
                .map(str::to_owned),
        };
        if is_feedback(&upload) {
            return feedback(&state, &upload, None).await;
        }
        respond(state.ingestor.ingest(upload, None).await?)
    }
    .instrument(span)
    .await
}

/// `DatasetIngestBlob`: a blob trigger with `dataType: binary`, for small files only
/// (see [`BLOB_TRIGGER_MAX_BYTES`]).
pub async fn dataset_ingest_blob(
    State(state): State<AppState>,
    Trigger { inv, span }: Trigger,
) -> Result<axum::Json<InvocationResponse>, AppError> {
    async move {
        // The host never sends the `BlobTrigger` path itself: use `Uri`, else the path tokens.
        let key = match inv.meta_str("Uri") {
            Some(uri) => state.store.key_from_uri(&uri).ok_or_else(|| {
                InvocationError::new(
                    "Metadata.Uri",
                    format!("{uri} is not in this deployment's container"),
                )
            })?,
            None => {
                let dataset = inv.meta_str("dataset").ok_or_else(|| {
                    InvocationError::new("Metadata.dataset", "missing (and no Metadata.Uri)")
                })?;
                let name = inv.meta_str("name").ok_or_else(|| {
                    InvocationError::new("Metadata.name", "missing (and no Metadata.Uri)")
                })?;
                sluice_shared::storage::ObjectKey::parse(format!("landing/{dataset}/{name}"))
                    .map_err(|e| InvocationError::new("Metadata.name", e.to_string()))?
            }
        };
        if let Some(length) = inv.meta_u64("Properties.Length")
            && length as usize > BLOB_TRIGGER_MAX_BYTES
        {
            return Err(too_large(length as usize));
        }
        let bytes = inv.data_bytes("blob")?;
        if bytes.len() > BLOB_TRIGGER_MAX_BYTES {
            return Err(too_large(bytes.len()));
        }
        let upload = Upload {
            key,
            etag: inv.meta_str("Properties.ETag"),
            uploader: None,
        };
        if is_feedback(&upload) {
            return feedback(&state, &upload, Some(bytes.clone().into())).await;
        }
        respond(state.ingestor.ingest(upload, Some(bytes.into())).await?)
    }
    .instrument(span)
    .await
}

fn is_feedback(upload: &Upload) -> bool {
    sluice_shared::monitoring::layout::model_of_feedback_upload(&upload.key).is_some()
}

/// A feedback file: kept as a batch, or quarantined with its report.
async fn feedback(
    state: &AppState,
    upload: &Upload,
    bytes: Option<axum::body::Bytes>,
) -> Result<axum::Json<InvocationResponse>, AppError> {
    use sluice_shared::monitoring::feedback::UploadOutcome;
    let outcome = state
        .feedback
        .ingest_upload(upload, bytes, chrono::Utc::now())
        .await?;
    let log = match &outcome {
        UploadOutcome::Ignored { reason } => return Ok(ignored(reason.clone())),
        UploadOutcome::Accepted(a) => format!(
            "feedback for {}: {} label(s) kept as batch {} (duplicate: {})",
            a.model, a.labels, a.batch, a.duplicate
        ),
        UploadOutcome::Quarantined { report, .. } => format!(
            "feedback file {} quarantined: {} problem(s)",
            report.upload, report.problem_count
        ),
    };
    Ok(axum::Json(
        InvocationResponse::default()
            .log(log)
            .returning(json!(outcome)),
    ))
}

fn too_large(len: usize) -> AppError {
    AppError::too_large(
        "Data.blob",
        format!(
            "blob of {len} bytes exceeds the blob trigger's {BLOB_TRIGGER_MAX_BYTES}-byte limit; \
             large files are ingested through DatasetIngest (Event Grid), which streams them"
        ),
    )
}

fn respond(outcome: IngestOutcome) -> Result<axum::Json<InvocationResponse>, AppError> {
    let response = match outcome {
        IngestOutcome::Ignored { reason } => return Ok(ignored(reason)),
        IngestOutcome::Versioned { manifest, duplicate } => InvocationResponse::default()
            .log(format!("{} v{}: {} rows (duplicate: {duplicate})", manifest.dataset, manifest.version, manifest.rows))
            .returning(json!({
                "status": "versioned",
                "duplicate": duplicate,
                "dataset": manifest.dataset,
                "version": manifest.version,
                "content_sha256": manifest.content_sha256,
                "rows": manifest.rows,
                "contract_version": manifest.contract_version,
                "contract_inferred": manifest.contract_inferred,
                "manifest_key": sluice_shared::dataset::layout::manifest(&manifest.dataset, manifest.version),
            })),
        IngestOutcome::Delegated { delegation, duplicate } => InvocationResponse::default()
            .log(format!("{} ({} bytes) delegated to {} (duplicate: {duplicate})", delegation.upload, delegation.bytes, delegation.engine))
            .returning(json!({
                "status": "delegated",
                "duplicate": duplicate,
                "dataset": delegation.dataset,
                "delegation": delegation.id,
                "engine": delegation.engine,
                "job": delegation.job,
                "bytes": delegation.bytes,
            })),
        IngestOutcome::Quarantined { report, duplicate } => InvocationResponse::default()
            .log(format!("{} quarantined: {} rule(s) broken (duplicate: {duplicate})", report.dataset, report.validation.violations.len()))
            .returning(json!({
                "status": "quarantined",
                "duplicate": duplicate,
                "dataset": report.dataset,
                "content_sha256": report.content_sha256,
                "report_key": report.report_key,
                "contract_version": report.contract_version,
                "contract_inferred": report.contract_inferred,
                "copy_key": report.copy.key,
                "violations": report.validation.violations,
            })),
    };
    Ok(axum::Json(response))
}
