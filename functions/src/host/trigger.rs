//! What every trigger function does before and after its own work: read the host's
//! invocation within its body limit and open the invocation's span, named after the
//! function the host invoked (the host posts to `/<Function>`); and answer that an event
//! was ignored.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use serde_json::json;
use tracing::{Span, info, info_span};

use super::error::AppError;
use super::invocation::{Invocation, InvocationResponse};
use super::score::MAX_BODY_BYTES;
use super::state::{AppState, BLOB_TRIGGER_MAX_BYTES};

/// The largest invocation body `function` accepts. The blob trigger's carries the whole
/// blob in base64 (4/3 of it) with room for the JSON around it; the others share the
/// router's limit.
pub fn body_limit(function: &str) -> usize {
    match function {
        "DatasetIngestBlob" => BLOB_TRIGGER_MAX_BYTES / 3 * 4 + (1 << 20),
        _ => MAX_BODY_BYTES,
    }
}

/// A trigger invocation, read, with its span (`function`, `invocation_id`, and a
/// `correlation_id` the function may record).
pub struct Trigger {
    pub inv: Invocation,
    pub span: Span,
}

impl FromRequest<AppState> for Trigger {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, AppError> {
        let function = req.uri().path().trim_start_matches('/').to_owned();
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                let limit = body_limit(&function);
                AppError::too_large("body", format!("invocation body larger than {limit} bytes"))
            } else {
                AppError::bad_request("body", e.body_text())
            }
        })?;
        let inv = Invocation::parse(&bytes)?;
        let span = info_span!(
            "invocation",
            function = %function,
            invocation_id = %inv.invocation_id(),
            correlation_id = tracing::field::Empty
        );
        Ok(Self { inv, span })
    }
}

/// The answer for an event the function does not handle: 200, so the host does not retry.
pub fn ignored(reason: String) -> axum::Json<InvocationResponse> {
    info!(%reason, "ignored");
    axum::Json(
        InvocationResponse::default()
            .log(format!("ignored: {reason}"))
            .returning(json!({"status": "ignored", "reason": reason})),
    )
}
