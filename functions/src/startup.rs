//! Builds the custom-handler application: state, router, listener.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use sluice_shared::dataset::Ingestor;
use sluice_shared::storage::ObjectStore;
use tokio::net::TcpListener;

use crate::error::AppError;
use crate::handlers;

/// Every function this binary serves; each has `functions/<Name>/function.json`.
pub const FUNCTIONS: &[&str] = &["DatasetIngest", "DatasetIngestBlob"];

/// The largest blob the blob trigger accepts. The host sends the whole blob base64-encoded
/// inside one JSON body, so larger files must arrive through the Event Grid path
/// (`DatasetIngest`), which streams them from storage instead.
pub const BLOB_TRIGGER_MAX_BYTES: usize = 32 << 20;

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn ObjectStore>,
    pub ingestor: Arc<Ingestor>,
}

impl AppState {
    pub fn new(store: Arc<dyn ObjectStore>, scratch: std::path::PathBuf) -> Self {
        Self {
            ingestor: Arc::new(Ingestor::new(store.clone(), scratch)),
            store,
        }
    }
}

/// The router: `GET /` for the host's readiness poll, `POST /<Function>` per function.
pub fn router(state: AppState) -> Router {
    // Base64 inflates by 4/3; leave room for the JSON around it.
    let blob_body_limit = BLOB_TRIGGER_MAX_BYTES / 3 * 4 + (1 << 20);
    Router::new()
        .route(
            "/",
            get(|| async { axum::Json(serde_json::json!({"status": "ready"})) }),
        )
        .route("/DatasetIngest", post(handlers::dataset_ingest))
        .route(
            "/DatasetIngestBlob",
            post(handlers::dataset_ingest_blob).layer(DefaultBodyLimit::max(blob_body_limit)),
        )
        .fallback(|uri: axum::http::Uri| async move {
            AppError::not_found(format!("no function is served at {}", uri.path()))
        })
        .method_not_allowed_fallback(
            |method: axum::http::Method, uri: axum::http::Uri| async move {
                AppError::method_not_allowed(format!(
                    "{method} {} is not served; the host invokes functions with POST",
                    uri.path()
                ))
            },
        )
        .layer(DefaultBodyLimit::max(4 << 20))
        .with_state(state)
}

/// A bound listener plus the router, ready to serve.
pub struct Application {
    listener: TcpListener,
    router: Router,
}

impl Application {
    /// Binds `127.0.0.1:port` (0 picks a free port, as tests do).
    pub async fn build(state: AppState, port: u16) -> std::io::Result<Self> {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
        Ok(Self {
            listener,
            router: router(state),
        })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().expect("bound").port()
    }

    /// Serves until SIGINT/SIGTERM, letting in-flight invocations finish.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown_signal())
            .await
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
