//! `Health` (HTTP, forwarded, anonymous): `GET /api/health` for probes and operators.
//! It reports Sluice's version, whether ONNX Runtime is loaded, the production models
//! `Score` has loaded, and whether storage answers. It answers 200 when storage answers
//! and 503 when it does not. No key is needed, so it reveals no more than names and
//! versions: a storage failure is reported by kind, not by message.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use sluice_shared::storage::{ObjectKey, StorageError};

use crate::host::state::AppState;

pub async fn health(State(state): State<AppState>) -> Response {
    let probe = ObjectKey::parse("health/probe").expect("a valid key");
    let storage = match state.store.head(&probe).await {
        Ok(_) | Err(StorageError::NotFound { .. }) => json!({"reachable": true}),
        Err(e) => json!({
            "reachable": false,
            "transient": e.is_transient(),
        }),
    };
    let reachable = storage["reachable"] == true;
    let production: Vec<_> = state
        .scorer
        .as_deref()
        .map(|s| s.loaded_aliases(sluice_shared::registry::PRODUCTION))
        .unwrap_or_default()
        .into_iter()
        .map(|(model, version, release)| json!({"model": model, "version": version, "release": release}))
        .collect();
    let status = if reachable {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if reachable { "ok" } else { "degraded" },
        "version": env!("CARGO_PKG_VERSION"),
        "onnxruntime": state.scorer.is_some(),
        "production_models": production,
        "storage": storage,
    });
    (status, axum::Json(body)).into_response()
}
