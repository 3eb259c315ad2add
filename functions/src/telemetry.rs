//! Logging: compact lines locally, JSON in Azure (`SLUICE_LOG_FORMAT=json`); `RUST_LOG`
//! wins. Warnings and errors an invocation logs also go into its response's `Logs`, so
//! they reach Application Insights through the host with the invocation. Traces are
//! exported over OTLP when `SLUICE_OTLP_ENDPOINT` is set ([`crate::otlp`]); unset, no
//! exporter exists at all.

use std::cell::RefCell;

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

/// The header in which the Functions host sends every request's invocation id.
pub const INVOCATION_ID_HEADER: &str = "x-azure-functions-invocationid";

tokio::task_local! {
    /// The warnings and errors of the invocation running on this task.
    static INVOCATION_LOGS: RefCell<Vec<String>>;
    /// The host's id for the invocation running on this task.
    static HOST_INVOCATION_ID: Option<String>;
}

/// The host's invocation id for the request this task serves (from its header).
pub fn host_invocation_id() -> Option<String> {
    HOST_INVOCATION_ID.try_with(Clone::clone).ok().flatten()
}

/// The host's invocation id in `headers`, if it sent one.
pub fn invocation_id_in(headers: &axum::http::HeaderMap) -> Option<String> {
    static NAME: axum::http::HeaderName = axum::http::HeaderName::from_static(INVOCATION_ID_HEADER);
    headers
        .get(&NAME)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map(str::to_owned)
}

/// `default_filter` applies when `RUST_LOG` is unset.
pub fn init(default_filter: &str) {
    use std::io::IsTerminal;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let json = std::env::var("SLUICE_LOG_FORMAT").is_ok_and(|f| f == "json");
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(!json && std::io::stderr().is_terminal());
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(InvocationLogs)
        .with(crate::otlp::layer());
    // try_init: a second call (tests) is harmless.
    let _ = if json {
        registry.with(fmt.json()).try_init()
    } else {
        registry.with(fmt.compact()).try_init()
    };
}

/// Copies WARN and ERROR events into the running invocation's logs (if any).
struct InvocationLogs;

impl<S: Subscriber> tracing_subscriber::Layer<S> for InvocationLogs {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let level = *event.metadata().level();
        if level > Level::WARN {
            return;
        }
        let _ = INVOCATION_LOGS.try_with(|logs| {
            let mut line = Line(format!("{level} {}:", event.metadata().target()));
            event.record(&mut line);
            logs.borrow_mut().push(line.0);
        });
    }
}

struct Line(String);

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write;
        let _ = if field.name() == "message" {
            write!(self.0, " {value:?}")
        } else {
            write!(self.0, " {}={value:?}", field.name())
        };
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        use std::fmt::Write;
        let _ = if field.name() == "message" {
            write!(self.0, " {value}")
        } else {
            write!(self.0, " {}={value}", field.name())
        };
    }
}

/// Middleware for the host's invocation routes: makes the host's invocation id (header)
/// the one spans carry, collects the warnings and errors logged while the invocation
/// runs (on its task) and appends them to a successful response's `Logs`. Events from
/// other threads (the scan's workers) are in the process log only.
pub async fn with_invocation_logs(request: Request, next: Next) -> Response {
    let id = invocation_id_in(request.headers());
    let (response, logs) = HOST_INVOCATION_ID
        .scope(
            id,
            INVOCATION_LOGS.scope(RefCell::new(Vec::new()), async {
                let response = next.run(request).await;
                (response, INVOCATION_LOGS.with(|l| l.take()))
            }),
        )
        .await;
    if logs.is_empty() || !response.status().is_success() {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return Response::from_parts(parts, Body::empty());
    };
    let bytes = match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(mut answer) if answer.get("Logs").is_some_and(|l| l.is_array()) => {
            if let Some(serde_json::Value::Array(lines)) = answer.get_mut("Logs") {
                lines.extend(logs.into_iter().map(serde_json::Value::String));
            }
            parts.headers.remove(axum::http::header::CONTENT_LENGTH);
            serde_json::to_vec(&answer).map_or(bytes, Into::into)
        }
        _ => bytes,
    };
    Response::from_parts(parts, Body::from(bytes))
}
