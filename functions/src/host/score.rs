//! `Score` (HTTP, forwarded): `POST /api/score/{model}[?version=N|?alias=staging]` scores
//! raw rows with the model's production version (or the one asked for).

use std::convert::Infallible;
use std::task::{Context, Poll};

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::{Method, header};
use axum::response::{IntoResponse, Response};
use futures::future::{BoxFuture, Either};
use http_body_util::LengthLimitError;
use serde::Deserialize;
use sluice_shared::registry::ModelName;
use sluice_shared::scoring::{ScoreError, Target};
use tower::Service;
use tracing::{Instrument, error, info_span};

use crate::host::error::AppError;
use crate::host::state::AppState;

/// The largest request body `Score` reads.
pub const MAX_BODY_BYTES: usize = 4 << 20;

#[derive(Deserialize)]
pub struct ScoreQuery {
    version: Option<u32>,
    alias: Option<String>,
}

/// The routed handler (what `router()` serves; [`ScoreFirst`] answers the same
/// requests without routing them).
pub async fn score(
    State(state): State<AppState>,
    Path(model): Path<String>,
    query: Result<Query<ScoreQuery>, QueryRejection>,
    request: Request,
) -> Result<Response, AppError> {
    answer(state, model, query, request).await
}

async fn answer(
    state: AppState,
    model: String,
    query: Result<Query<ScoreQuery>, QueryRejection>,
    request: Request,
) -> Result<Response, AppError> {
    let (parts, body) = request.into_parts();
    let headers = parts.headers;
    // The limit is applied here, not by a router layer, so both ways in share it.
    let body = axum::body::to_bytes(body, MAX_BODY_BYTES).await;
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
            (None, None) => Target::Alias(sluice_shared::registry::PRODUCTION.into()),
        };
        let bytes = match body {
            Ok(bytes) => bytes,
            Err(e) if std::error::Error::source(&e).is_some_and(|e| e.is::<LengthLimitError>()) => {
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
            Err(e) => {
                return Err(AppError::bad_request(
                    "body",
                    format!("the body could not be read: {e}"),
                ));
            }
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

/// The app as served: `Score`'s requests go straight to its handler, everything else
/// through the router.
///
/// Why: a 1-row scoring request costs about 25 µs of CPU, and routing it (matching the
/// path, storing its parameters and matched path, running the extractors) about 1 µs of
/// that; Score is the function called thousands of times a second. Only a plain
/// `POST /api/score/{model}` takes this way: a model name that needs percent-decoding,
/// an extra path segment or another method goes through the router, so every answer is
/// the one the routed handler gives (a test sends both ways the same requests).
#[derive(Clone)]
pub struct ScoreFirst {
    router: Router,
    state: AppState,
}

impl ScoreFirst {
    pub fn new(router: Router, state: AppState) -> Self {
        Self { router, state }
    }
}

/// The model named by a plain `POST /api/score/{model}`.
fn direct_model(request: &Request) -> Option<&str> {
    if request.method() != Method::POST {
        return None;
    }
    let model = request.uri().path().strip_prefix("/api/score/")?;
    let plain = !model.is_empty() && !model.contains(['/', '%']);
    plain.then_some(model)
}

impl Service<Request> for ScoreFirst {
    type Response = Response;
    type Error = Infallible;
    type Future = Either<
        <Router as Service<Request>>::Future,
        BoxFuture<'static, Result<Response, Infallible>>,
    >;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let Some(model) = direct_model(&request).map(str::to_owned) else {
            return Either::Left(self.router.call(request));
        };
        let state = self.state.clone();
        Either::Right(Box::pin(async move {
            let query = Query::try_from_uri(request.uri());
            Ok(answer(state, model, query, request).await.into_response())
        }))
    }
}

/// Any other method on the route: 405 naming the one that works.
pub async fn method_not_allowed() -> Response {
    let mut response = AppError::method_not_allowed("scoring takes POST").into_response();
    response
        .headers_mut()
        .insert(header::ALLOW, header::HeaderValue::from_static("POST"));
    response
}
