//! The one place where errors become status codes, and the one error envelope:
//! `{"error":{"code":"…","message":"…","field":"…"}}`.
//!
//! Client errors say what and where. Server errors are opaque to the caller; their
//! cause chain is logged here, once.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use sluice_shared::dataset::IngestError;

use crate::host::invocation::InvocationError;

#[derive(Debug)]
pub struct AppError {
    status: StatusCode,
    code: &'static str,
    message: String,
    field: Option<String>,
    /// `Retry-After` for a 503, when the dependency said how long to wait.
    retry_after: Option<std::time::Duration>,
}

impl AppError {
    /// What it says, as its JSON body's `message`.
    pub fn message(&self) -> &str {
        &self.message
    }

    fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<String>,
        field: Option<String>,
    ) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field,
            retry_after: None,
        }
    }

    pub fn bad_request(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            message,
            Some(field.into()),
        )
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message, None)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message, None)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message, None)
    }

    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            message,
            Some("content-type".into()),
        )
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message, None)
    }

    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            message,
            None,
        )
    }

    pub fn too_large(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            message,
            Some(field.into()),
        )
    }

    /// A failure that may pass on retry: the host should redeliver.
    pub fn unavailable(cause: impl std::fmt::Display) -> Self {
        tracing::warn!(%cause, "transient failure; asking the host to retry");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "a dependency is temporarily unavailable; retry later",
            None,
        )
    }

    pub fn internal(cause: &(dyn std::error::Error + 'static)) -> Self {
        let mut chain = cause.to_string();
        let mut source = cause.source();
        while let Some(s) = source {
            chain.push_str(": ");
            chain.push_str(&s.to_string());
            source = s.source();
        }
        tracing::error!(cause = %chain, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
            None,
        )
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl From<InvocationError> for AppError {
    fn from(e: InvocationError) -> Self {
        Self::bad_request(e.field, e.problem)
    }
}

impl From<IngestError> for AppError {
    fn from(e: IngestError) -> Self {
        if e.is_transient() {
            Self::unavailable(&e)
        } else {
            Self::internal(&e)
        }
    }
}

impl From<sluice_shared::runs::RunError> for AppError {
    fn from(e: sluice_shared::runs::RunError) -> Self {
        use sluice_shared::registry::RegistryError;
        use sluice_shared::runs::RunError;
        match &e {
            RunError::NotFound(_)
            | RunError::Registry(RegistryError::NoVersion { .. } | RegistryError::NoAlias { .. }) => {
                Self::not_found(e.to_string())
            }
            RunError::Invalid(m) => Self::bad_request("body", m.clone()),
            RunError::Conflict(m) => Self::conflict(m.clone()),
            _ if e.is_transient() => Self {
                retry_after: e.retry_after(),
                ..Self::unavailable(&e)
            },
            _ => Self::internal(&e),
        }
    }
}

impl From<sluice_shared::monitoring::MonitorError> for AppError {
    fn from(e: sluice_shared::monitoring::MonitorError) -> Self {
        if e.is_transient() {
            Self::unavailable(&e)
        } else {
            Self::internal(&e)
        }
    }
}

impl From<sluice_shared::monitoring::feedback::FeedbackError> for AppError {
    fn from(e: sluice_shared::monitoring::feedback::FeedbackError) -> Self {
        use sluice_shared::monitoring::feedback::FeedbackError;
        match &e {
            FeedbackError::UnknownModel(_) => Self::not_found(e.to_string()),
            FeedbackError::Invalid { first, count } => Self::bad_request(
                first.field.clone(),
                format!(
                    "{} ({count} problem(s) in the batch; none of it was kept)",
                    first.message
                ),
            ),
            FeedbackError::TooMany { .. } => Self::too_large("body", e.to_string()),
            _ if e.is_transient() => Self::unavailable(&e),
            _ => Self::internal(&e),
        }
    }
}

impl From<sluice_shared::notify::outbox::NotifyError> for AppError {
    fn from(e: sluice_shared::notify::outbox::NotifyError) -> Self {
        if e.is_transient() {
            Self::unavailable(&e)
        } else {
            Self::internal(&e)
        }
    }
}

impl From<sluice_shared::training::configs::ConfigStoreError> for AppError {
    fn from(e: sluice_shared::training::configs::ConfigStoreError) -> Self {
        use sluice_shared::training::configs::ConfigStoreError;
        match &e {
            ConfigStoreError::Invalid(m) => Self::bad_request("body", m.clone()),
            ConfigStoreError::Missing(_) => Self::not_found(e.to_string()),
            _ if e.is_transient() => Self::unavailable(&e),
            _ => Self::internal(&e),
        }
    }
}

impl From<sluice_shared::registry::RegistryError> for AppError {
    fn from(e: sluice_shared::registry::RegistryError) -> Self {
        use sluice_shared::registry::RegistryError;
        match &e {
            RegistryError::NoVersion { .. } | RegistryError::NoAlias { .. } => {
                Self::not_found(e.to_string())
            }
            RegistryError::Conflict { .. } => Self::conflict(e.to_string()),
            RegistryError::BadAlias(_) => Self::bad_request("alias", e.to_string()),
            RegistryError::Invalid(m) => Self::conflict(m.clone()),
            RegistryError::Storage(s) if s.is_transient() => Self::unavailable(&e),
            RegistryError::Storage(_) => Self::internal(&e),
        }
    }
}

impl From<sluice_shared::registry::promotion::ReleaseError> for AppError {
    fn from(e: sluice_shared::registry::promotion::ReleaseError) -> Self {
        use sluice_shared::registry::promotion::ReleaseError;
        match e {
            ReleaseError::Registry(r) => r.into(),
            ReleaseError::Refused(m) => Self::conflict(m),
            ReleaseError::Storage(ref s) if s.is_transient() => Self::unavailable(&e),
            other => Self::internal(&other),
        }
    }
}

impl From<sluice_shared::registry::gate::GateError> for AppError {
    fn from(e: sluice_shared::registry::gate::GateError) -> Self {
        use sluice_shared::registry::gate::GateError;
        match e {
            GateError::Registry(r) => r.into(),
            GateError::Release(r) => r.into(),
            GateError::Invalid(m) => Self::conflict(m),
            GateError::Storage(ref s) if s.is_transient() => Self::unavailable(&e),
            other => Self::internal(&other),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let mut error = json!({"code": self.code, "message": self.message});
        if let Some(field) = self.field {
            error["field"] = json!(field);
        }
        let mut response = (self.status, axum::Json(json!({ "error": error }))).into_response();
        if let Some(wait) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, wait.as_secs().into());
        }
        response
    }
}
