//! `Score` (HTTP, forwarded): `POST /api/score/{model}[?version=N|?alias=staging]` scores
//! raw rows with the model's production version (or the one asked for).

use axum::body::Bytes;
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sluice_shared::registry::ModelName;
use sluice_shared::scoring::{ScoreError, Target};
use tracing::{Instrument, error, info_span};

use crate::error::AppError;
use crate::startup::AppState;

/// The largest request body `Score` reads.
pub const MAX_BODY_BYTES: usize = 4 << 20;
/// The most rows one request may hold.
pub const MAX_ROWS: usize = 10_000;

#[derive(Deserialize)]
pub struct ScoreQuery {
    version: Option<u32>,
    alias: Option<String>,
}

pub async fn score(
    State(state): State<AppState>,
    Path(model): Path<String>,
    query: Result<Query<ScoreQuery>, axum::extract::rejection::QueryRejection>,
    request: Request,
) -> Result<Response, AppError> {
    // The headers are taken out of the request rather than cloned (`HeaderMap` as an
    // extractor copies them); the body extractor needs only the rest.
    let (mut parts, body) = request.into_parts();
    let headers = std::mem::take(&mut parts.headers);
    let body = Bytes::from_request(Request::from_parts(parts, body), &()).await;
    // The host's invocation id when forwarded by the host, so the answer, the logs and
    // Application Insights name the request alike.
    let request_id = crate::telemetry::invocation_id_in(&headers)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let span =
        info_span!("invocation", function = "Score", invocation_id = %request_id, model = %model);
    async move {
        state.scoring_keys.verify(&headers)?;
        let scorer = state.scorer.as_deref().ok_or_else(|| {
            AppError::unavailable("ONNX Runtime is not loaded, so models cannot be scored")
        })?;
        let json_body = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
        if !json_body {
            return Err(AppError::unsupported_media_type(
                "send the rows as application/json",
            ));
        }
        let Query(query) = query.map_err(|e| AppError::bad_request("query", e.body_text()))?;
        let target = match (query.version, query.alias) {
            (Some(_), Some(_)) => {
                return Err(AppError::bad_request(
                    "query",
                    "give version or alias, not both",
                ));
            }
            (Some(v), None) => Target::Version(v),
            (None, Some(a)) => Target::Alias(a),
            (None, None) => Target::Alias("production".into()),
        };
        let bytes = match body {
            Ok(bytes) => bytes,
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                // The rest of the body is never read, so the connection cannot carry
                // another request: say so, or the client may reuse it and fail.
                let mut response = AppError::too_large(
                    "body",
                    format!("the body is larger than {MAX_BODY_BYTES} bytes"),
                )
                .into_response();
                response.headers_mut().insert(
                    header::CONNECTION,
                    header::HeaderValue::from_static("close"),
                );
                return Ok(response);
            }
            Err(e) => return Err(AppError::bad_request("body", e.body_text())),
        };
        let model = ModelName::parse(&model)
            .map_err(|_| AppError::not_found(format!("no model {model:?}")))?;
        let scored = scorer
            .score(&model, &target, &bytes, &request_id)
            .await
            .map_err(|e| match e {
                ScoreError::Input(e) => AppError::bad_request(e.field(), e.message),
                ScoreError::TooManyRows { .. } => AppError::too_large("data", e.to_string()),
                ScoreError::NotFound(m) => AppError::not_found(m),
                ScoreError::Registry(ref r) => AppError::unavailable(r),
                ScoreError::Inference(ref cause) => {
                    error!(invocation_id = %request_id, %cause, "ONNX Runtime failed");
                    AppError::internal(&e)
                }
            })?;
        static REQUEST_ID: header::HeaderName = header::HeaderName::from_static("x-request-id");
        Ok(([(&REQUEST_ID, request_id.clone())], axum::Json(scored)).into_response())
    }
    .instrument(span)
    .await
}

/// Any other method on the route: 405 naming the one that works.
pub async fn method_not_allowed() -> Response {
    let mut response = AppError::method_not_allowed("scoring takes POST").into_response();
    response
        .headers_mut()
        .insert(header::ALLOW, header::HeaderValue::from_static("POST"));
    response
}
