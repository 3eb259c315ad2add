//! Optional trace export over OTLP (HTTP, protobuf), to an OpenTelemetry Collector, the
//! Azure Monitor agent, or any OTLP backend. On when `SLUICE_OTLP_ENDPOINT` is set (the
//! collector's base URL; `/v1/traces` is appended), off otherwise, and then free: no
//! exporter, no layer. The exporter honours the standard `OTEL_EXPORTER_OTLP_HEADERS`
//! (for a backend's credentials, kept out of Sluice's own settings) and `OTEL_BSP_*`
//! batching variables. Spans carry what the logs carry: invocation id, function,
//! dataset, model and run ids.

use std::sync::OnceLock;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::{SdkTracerProvider, Tracer};
use tracing::Subscriber;
use tracing_opentelemetry::OpenTelemetryLayer;
use tracing_subscriber::registry::LookupSpan;

/// The setting that turns export on.
pub const ENDPOINT: &str = "SLUICE_OTLP_ENDPOINT";

static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// The tracing layer exporting spans, if `SLUICE_OTLP_ENDPOINT` is set.
pub fn layer<S>() -> Option<OpenTelemetryLayer<S, Tracer>>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
{
    let endpoint = std::env::var(ENDPOINT)
        .ok()
        .filter(|e| !e.trim().is_empty())?;
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        eprintln!("{ENDPOINT} is set, but traces can only be exported from the async runtime");
        return None;
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(Client {
            http: reqwest::Client::new(),
            runtime,
        })
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
        .build();
    let exporter = match exporter {
        Ok(exporter) => exporter,
        Err(e) => {
            // Logging is not up yet: say it once on stderr and run without export.
            eprintln!("{ENDPOINT} is set but the OTLP exporter could not start: {e}");
            return None;
        }
    };
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name("sluice")
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .build();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build();
    let tracer = provider.tracer("sluice");
    let _ = PROVIDER.set(provider);
    Some(tracing_opentelemetry::layer().with_tracer(tracer))
}

/// Sends the spans still buffered (call once, before the process exits).
pub fn shutdown() {
    if let Some(provider) = PROVIDER.get() {
        let _ = provider.shutdown();
    }
}

/// The exporter's HTTP client: Sluice's own reqwest client, run on the process's tokio
/// runtime. The SDK's batch thread blocks on each export; the request itself runs on
/// the runtime, so no second HTTP stack or runtime is linked in.
#[derive(Debug)]
struct Client {
    http: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl HttpClient for Client {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let (parts, body) = request.into_parts();
        let call = self
            .http
            .request(parts.method, parts.uri.to_string())
            .headers(parts.headers)
            .body(body);
        self.runtime
            .spawn(async move {
                let response = call.send().await?.error_for_status()?;
                let mut out = Response::builder().status(response.status());
                for (name, value) in response.headers() {
                    out = out.header(name, value);
                }
                let body = response.bytes().await?;
                Ok(out.body(body)?)
            })
            .await?
    }
}
