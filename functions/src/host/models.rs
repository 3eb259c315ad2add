//! The registry's functions: `RegistryEvents` (a new model version → the evaluation
//! gate) and `Models` (HTTP, forwarded: versions, lineage, releases, approve, rollback).

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use sluice_shared::catalog;
use sluice_shared::registry::gate::Gate;
use sluice_shared::registry::promotion::{APPROVED, Change, ROLLBACK_REQUESTED};
use sluice_shared::registry::{ModelName, RegistryError};
use sluice_shared::training::configs::ConfigStoreError;
use tracing::{Instrument, info_span};

use crate::host::error::AppError;
use crate::host::invocation::{InvocationError, InvocationResponse, event_data, event_type};
use crate::host::state::{Admin, AppState, Reader, Reason};
use crate::host::trigger::{Trigger, ignored};

/// The model a route's path names (`{name}`), parsed: a JSON 400 naming `model` when it
/// is not a valid name.
pub struct ModelPath(pub ModelName);

/// A model version a route's path names (`{name}`, `{version}`): a JSON 400 naming the
/// field that is wrong (axum's own rejection of a non-number version is plain text).
pub struct VersionPath(pub ModelName, pub u32);

/// The route's path parameters by name.
async fn path_params(
    parts: &mut Parts,
    state: &AppState,
) -> Result<HashMap<String, String>, AppError> {
    let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, state)
        .await
        .map_err(|e| AppError::bad_request("path", e.body_text()))?;
    Ok(params)
}

fn model_name(params: &HashMap<String, String>) -> Result<ModelName, AppError> {
    let raw = params.get("name").map_or("", String::as_str);
    ModelName::parse(raw).map_err(|e| AppError::bad_request("model", e.to_string()))
}

impl FromRequestParts<AppState> for ModelPath {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        Ok(Self(model_name(&path_params(parts, state).await?)?))
    }
}

impl FromRequestParts<AppState> for VersionPath {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let params = path_params(parts, state).await?;
        let raw = params.get("version").map_or("", String::as_str);
        let version = raw.parse().map_err(|_| {
            AppError::bad_request("version", format!("{raw:?} is not a version number"))
        })?;
        Ok(Self(model_name(&params)?, version))
    }
}

fn gate(state: &AppState) -> Result<&Gate, AppError> {
    state.gate.as_deref().ok_or_else(|| {
        AppError::unavailable("ONNX Runtime is not loaded, so the evaluation gate cannot run")
    })
}

/// The model and version a registry event names: a Storage `BlobCreated` for
/// `registry/models/<m>/versions/v<N>/manifest.json`, or Azure ML's `ModelRegistered`
/// (PascalCase in the docs, camelCase from the SDKs; the version a number or a string).
fn registered_version(
    state: &AppState,
    event: &Value,
) -> Result<Option<(String, u32)>, InvocationError> {
    let kind = event_type(event).unwrap_or_default();
    let data = event_data(event)?;
    match kind {
        "Microsoft.Storage.BlobCreated" => {
            let url = data
                .get("url")
                .and_then(Value::as_str)
                .ok_or_else(|| InvocationError::new("Data.event.data.url", "missing"))?;
            let Some(key) = state.store.key_from_uri(url) else {
                return Ok(None);
            };
            let parts: Vec<&str> = key.as_str().split('/').collect();
            Ok(match parts[..] {
                ["registry", "models", m, "versions", v, "manifest.json"] => v
                    .strip_prefix('v')
                    .and_then(|v| v.parse().ok())
                    .map(|v| (m.to_owned(), v)),
                _ => None,
            })
        }
        "Microsoft.MachineLearningServices.ModelRegistered" => {
            let field = |pascal: &str, camel: &str| data.get(pascal).or_else(|| data.get(camel));
            let name = field("ModelName", "modelName")
                .and_then(Value::as_str)
                .ok_or_else(|| InvocationError::new("Data.event.data.ModelName", "missing"))?;
            let version = match field("ModelVersion", "modelVersion") {
                Some(Value::Number(n)) => n.as_u64(),
                Some(Value::String(s)) => s.parse().ok(),
                _ => None,
            }
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| {
                InvocationError::new(
                    "Data.event.data.ModelVersion",
                    "missing or not a version number",
                )
            })?;
            Ok(Some((name.to_owned(), version)))
        }
        _ => Ok(None),
    }
}

/// `RegistryEvents`: runs the gate for a newly registered version (once per version).
pub async fn registry_events(
    State(state): State<AppState>,
    Trigger { inv, span }: Trigger,
) -> Result<axum::Json<InvocationResponse>, AppError> {
    async move {
        let event = inv.event()?;
        let Some((name, version)) = registered_version(&state, &event)? else {
            return Ok(ignored("not a new model version".into()));
        };
        let Ok(model) = ModelName::parse(&name) else {
            return Ok(ignored(format!("{name:?} is not a Sluice model name")));
        };
        match state.runs.registry().version(&model, version).await {
            Err(RegistryError::NoVersion { .. }) => {
                return Ok(ignored(format!(
                    "{model}@{version} is not in Sluice's registry"
                )));
            }
            Err(e) => return Err(e.into()),
            Ok(_) => {}
        }
        let correlation = event
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let outcome = gate(&state)?
            .on_registered(&model, version, &correlation)
            .await?;
        Ok(axum::Json(
            InvocationResponse::default()
                .log(format!(
                    "{model}@{version}: gate passed = {}",
                    outcome.verdict.passed
                ))
                .returning(outcome),
        ))
    }
    .instrument(span)
    .await
}

/// `GET /api/models`: every model, its task, versions, production and staging.
pub async fn list(State(state): State<AppState>, _: Reader) -> Result<axum::Json<Value>, AppError> {
    let models = catalog::models(state.runs.registry()).await?;
    Ok(axum::Json(json!({"models": models})))
}

/// `GET /api/models/{name}`: its versions and releases.
pub async fn show(
    State(state): State<AppState>,
    _: Reader,
    ModelPath(model): ModelPath,
) -> Result<axum::Json<Value>, AppError> {
    let history = catalog::history(state.runs.registry(), &model).await?;
    if history.versions.is_empty() {
        return Err(AppError::not_found(format!(
            "model {model:?} has no versions"
        )));
    }
    Ok(axum::Json(
        serde_json::to_value(history).unwrap_or_default(),
    ))
}

pub async fn version(
    State(state): State<AppState>,
    _: Reader,
    VersionPath(model, v): VersionPath,
) -> Result<axum::Json<Value>, AppError> {
    let manifest = state.runs.registry().version(&model, v).await?;
    let gate = state.releases.gate_record(&model, v).await?;
    Ok(axum::Json(json!({"version": manifest, "gate": gate})))
}

/// The seed question in one answer: model → run → dataset version → source upload,
/// and every release of this version.
pub async fn lineage(
    State(state): State<AppState>,
    _: Reader,
    VersionPath(model, v): VersionPath,
) -> Result<axum::Json<Value>, AppError> {
    let found = catalog::lineage(&state.runs, &model, v).await?;
    let (version, l) = (&found.version, &found.version.lineage);
    // The dataset version as stored, or as the lineage recorded it if it is gone.
    let dataset = match &found.dataset {
        Some(m) => {
            json!({"dataset": m.dataset, "version": m.version, "content_sha256": m.content_sha256,
            "contract_version": m.contract_version, "rows": m.rows, "created_at": m.created_at, "source": m.source})
        }
        None => {
            json!({"dataset": l.dataset, "version": l.dataset_version, "content_sha256": l.dataset_sha256})
        }
    };
    Ok(axum::Json(json!({
        "model": {"name": model, "version": v, "model_sha256": version.model_sha256, "registered_at": version.registered_at},
        "trained_by": l.requested_by, "task": version.signature.task, "algorithm": l.algorithm, "hyperparameters": l.hyperparameters,
        "seed": l.seed, "code_version": l.code_version, "compute": l.compute,
        "holdout": l.holdout, "run": found.run, "dataset": dataset, "releases": found.releases,
    })))
}

#[derive(Deserialize)]
pub struct ReleasesQuery {
    at: Option<String>,
    alias: Option<String>,
}

/// `GET /api/models/{name}/releases[?at=<RFC 3339>&alias=production]`.
pub async fn releases(
    State(state): State<AppState>,
    _: Reader,
    ModelPath(model): ModelPath,
    Query(q): Query<ReleasesQuery>,
) -> Result<axum::Json<Value>, AppError> {
    let registry = state.runs.registry();
    let Some(at) = q.at else {
        return Ok(axum::Json(
            json!({"releases": registry.releases(&model).await?}),
        ));
    };
    let at: DateTime<Utc> = DateTime::parse_from_rfc3339(&at)
        .map_err(|e| AppError::bad_request("at", format!("not an RFC 3339 time: {e}")))?
        .with_timezone(&Utc);
    let alias = q
        .alias
        .unwrap_or_else(|| sluice_shared::registry::PRODUCTION.into());
    let release = registry.release_at(&model, &alias, at).await?;
    Ok(axum::Json(
        json!({"at": at, "alias": alias, "release": release}),
    ))
}

/// The field a config problem names (`promotion.metric: …` → `promotion.metric`), or
/// `body` when the message names none.
fn config_field(message: &str) -> String {
    let message = message
        .strip_prefix("invalid training config: ")
        .unwrap_or(message);
    match message.split_once(": ") {
        Some((field, _)) if !field.is_empty() && !field.contains(' ') => field.to_owned(),
        _ => "body".to_owned(),
    }
}

/// `PUT /api/models/{name}/config`: stores a training config, checked against its
/// dataset's contract and task (see `Configs::put`), as a new version of it.
pub async fn put_config(
    State(state): State<AppState>,
    Admin(actor): Admin,
    ModelPath(model): ModelPath,
    payload: Result<Bytes, BytesRejection>,
) -> Result<axum::Json<Value>, AppError> {
    let bytes = payload.map_err(|e| AppError::bad_request("body", e.body_text()))?;
    let refused = |m: String| AppError::bad_request(config_field(&m), m);
    let config = sluice_shared::training::TrainingConfig::from_json(&bytes)
        .map_err(|e| refused(e.to_string()))?;
    if config.model != model {
        return Err(AppError::bad_request(
            "model",
            format!("the config is for {:?}, not {model:?}", config.model),
        ));
    }
    let correlation = uuid::Uuid::new_v4().to_string();
    let stored = state
        .runs
        .configs()
        .put(&config, &actor, &correlation)
        .instrument(info_span!("invocation", function = "Models", model = %model, correlation_id = %correlation))
        .await
        .map_err(|e| match e {
            ConfigStoreError::Invalid(m) => refused(m),
            other => other.into(),
        })?;
    Ok(axum::Json(json!({
        "model": model, "version": stored.version, "changed": stored.changed, "config": stored.config,
    })))
}

/// `POST /api/models/{name}/versions/{v}/approve` (body `{"reason": …}`, optional).
pub async fn approve(
    State(state): State<AppState>,
    Admin(actor): Admin,
    VersionPath(model, v): VersionPath,
    why: Reason,
) -> Result<axum::Json<Value>, AppError> {
    let change = Change {
        actor: &actor,
        reason: why.or(APPROVED),
        correlation_id: &uuid::Uuid::new_v4().to_string(),
    };
    // Approving needs no ONNX Runtime: the verdict is stored.
    let release = state.releases.approve(&model, v, change).await?;
    Ok(axum::Json(json!({"release": release})))
}

/// `POST /api/models/{name}/rollback` (body `{"reason": …}`, optional).
pub async fn rollback(
    State(state): State<AppState>,
    Admin(actor): Admin,
    ModelPath(model): ModelPath,
    why: Reason,
) -> Result<axum::Json<Value>, AppError> {
    let change = Change {
        actor: &actor,
        reason: why.or(ROLLBACK_REQUESTED),
        correlation_id: &uuid::Uuid::new_v4().to_string(),
    };
    // A rollback needs no ONNX Runtime, so it works when scoring cannot.
    let release = state.releases.rollback(&model, change).await?;
    Ok(axum::Json(json!({"release": release})))
}
