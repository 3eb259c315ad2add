//! Builds the custom-handler application: the functions it serves, the router, the
//! listener (the state they share is [`crate::host::state`]).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};
use sluice_shared::scoring::Scorer;
use tokio::net::TcpListener;

use crate::host::error::AppError;
use crate::host::state::AppState;
use crate::host::{console, ingest, models, monitoring, notify, retrain, score, trigger};

/// Declares the functions once: their names, and each one's `function.json` compiled in
/// (for `sluice package`, so a package always matches the executable inside it).
macro_rules! functions {
    ($($name:literal),* $(,)?) => {
        /// Every function this binary serves; each has `functions/<Name>/function.json`.
        pub const FUNCTIONS: &[&str] = &[$($name),*];
        /// Each function's name and `function.json`, in [`FUNCTIONS`] order.
        pub const FUNCTION_JSON: &[(&str, &str)] =
            &[$(($name, include_str!(concat!("../../", $name, "/function.json")))),*];
    };
}

functions!(
    "DatasetIngest",
    "DatasetIngestBlob",
    "DatasetEvents",
    "RetrainQueue",
    "Retrain",
    "Runs",
    "RunsTimer",
    "MonitorTimer",
    "Notify",
    "MlJobEvents",
    "RegistryEvents",
    "Models",
    "Score",
    "Feedback",
    "Console",
    "Health",
);

/// The router: `GET /` for the host's readiness poll, `POST /<Function>` per function.
pub fn router(state: AppState) -> Router {
    // The host's invocations: their warnings and errors also go back in `Logs`.
    let invocations = Router::new()
        .route("/DatasetIngest", post(ingest::dataset_ingest))
        .route("/DatasetEvents", post(retrain::dataset_events))
        .route("/RetrainQueue", post(retrain::retrain_queue))
        .route("/RunsTimer", post(retrain::runs_timer))
        .route("/MonitorTimer", post(monitoring::monitor_timer))
        .route("/Notify", post(notify::notify_timer))
        .route("/MlJobEvents", post(retrain::ml_job_events))
        .route("/RegistryEvents", post(models::registry_events))
        .route(
            "/DatasetIngestBlob",
            post(ingest::dataset_ingest_blob).layer(DefaultBodyLimit::max(trigger::body_limit(
                "DatasetIngestBlob",
            ))),
        )
        .route_layer(axum::middleware::from_fn(
            crate::telemetry::with_invocation_logs,
        ));
    Router::new()
        .route(
            "/",
            get(|| async { axum::Json(serde_json::json!({"status": "ready"})) }),
        )
        .merge(invocations)
        // HTTP functions arrive forwarded (`enableForwardingHttpRequest`) at their routes.
        .route("/api/health", get(crate::host::health::health))
        .route("/api/retrain", post(retrain::retrain_http))
        .route("/api/runs", get(retrain::runs_list))
        .route("/api/runs/{id}", get(retrain::run_get))
        .route("/api/runs/{id}/retry", post(retrain::run_retry))
        .route("/api/models", get(models::list))
        .route("/api/models/{name}", get(models::show))
        .route(
            "/api/models/{name}/versions/{version}",
            get(models::version),
        )
        .route(
            "/api/models/{name}/versions/{version}/lineage",
            get(models::lineage),
        )
        .route(
            "/api/models/{name}/versions/{version}/approve",
            post(models::approve),
        )
        .route("/api/models/{name}/releases", get(models::releases))
        .route("/api/models/{name}/monitoring", get(monitoring::reports))
        .route("/api/models/{name}/rollback", post(models::rollback))
        .route("/api/feedback/{model}", post(monitoring::submit_feedback))
        .merge(console::router())
        .route("/api/models/{name}/config", put(models::put_config))
        .route(
            "/api/score/{model}",
            post(score::score).fallback(score::method_not_allowed),
        )
        .fallback(|uri: axum::http::Uri| async move {
            AppError::not_found(format!("no function is served at {}", uri.path()))
        })
        .method_not_allowed_fallback(
            |method: axum::http::Method, uri: axum::http::Uri| async move {
                AppError::method_not_allowed(format!(
                    "{method} {} is not served: the host invokes functions with POST; \
                     HTTP functions under /api take the methods their function.json lists",
                    uri.path()
                ))
            },
        )
        .layer(DefaultBodyLimit::max(score::MAX_BODY_BYTES))
        .with_state(state)
}

/// What [`Application`] serves: the router, with Score's requests answered first.
pub fn app(state: AppState) -> score::ScoreFirst {
    score::ScoreFirst::new(router(state.clone()), state)
}

/// A bound listener plus the app, ready to serve.
pub struct Application {
    listener: TcpListener,
    app: score::ScoreFirst,
    scorer: Option<Arc<Scorer>>,
    http_threads: usize,
}

/// How often buffered prediction-log entries are written.
pub const LOG_FLUSH: std::time::Duration = std::time::Duration::from_secs(30);

impl Application {
    /// Binds `127.0.0.1:port` (0 picks a free port, as tests do).
    pub async fn build(state: AppState, port: u16) -> std::io::Result<Self> {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
        // Notifications start with what happens from now on. Best effort: with storage
        // down the server still starts (and says so through Health), and the first drain
        // then starts from the beginning of the trail, skipping nothing.
        if let Err(e) = state.notifier.start().await {
            tracing::warn!(error = %e, "could not place the notification cursors");
        }
        Ok(Self {
            listener,
            scorer: state.scorer.clone(),
            app: app(state),
            http_threads: crate::host::shards::default_count(),
        })
    }

    /// Serve HTTP on `threads` threads instead of [`crate::host::shards::default_count`].
    pub fn with_http_threads(mut self, threads: Option<usize>) -> Self {
        if let Some(n) = threads {
            self.http_threads = n.max(1);
        }
        self
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().expect("bound").port()
    }

    /// Serves until SIGINT/SIGTERM ([`Self::run_until`]).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Serves until `stop`, letting in-flight invocations finish; writes the prediction
    /// log every [`LOG_FLUSH`] and once more at the end. A periodic write under way when
    /// `stop` comes is let finish, not cut off: it holds rows it took from the buffer.
    pub async fn run_until(
        self,
        stop: impl std::future::Future<Output = ()>,
    ) -> std::io::Result<()> {
        let (stopping, mut stopped) = tokio::sync::watch::channel(false);
        let flusher = self.scorer.clone().map(|scorer| {
            tokio::spawn(async move {
                let mut every = tokio::time::interval(LOG_FLUSH);
                loop {
                    tokio::select! {
                        _ = every.tick() => {}
                        _ = stopped.changed() => return,
                    }
                    if let Err(e) = scorer.flush_log().await {
                        tracing::warn!(error = %e, "writing the prediction log failed");
                    }
                }
            })
        });
        let served =
            crate::host::shards::serve(self.listener, self.app, self.http_threads, stop).await;
        let _ = stopping.send(true);
        if let Some(flusher) = flusher {
            let _ = flusher.await;
        }
        if let Some(scorer) = self.scorer
            && let Err(e) = scorer.flush_log().await
        {
            tracing::warn!(error = %e, "writing the prediction log failed");
        }
        served
    }
}

/// SIGINT (Ctrl-C) or SIGTERM. Listens from the call, not from the first poll: a signal
/// that arrives in between would otherwise reach only another listener (and, once any
/// listener exists, no longer end the process by default).
pub(crate) fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let interrupt = signal(SignalKind::interrupt()).ok();
    let terminate = signal(SignalKind::terminate()).ok();
    async move {
        tokio::select! {
            () = received(interrupt) => {},
            () = received(terminate) => {},
        }
    }
}

/// The next delivery of a signal, or never if listening for it failed.
async fn received(signal: Option<tokio::signal::unix::Signal>) {
    match signal {
        Some(mut s) => {
            s.recv().await;
        }
        None => std::future::pending::<()>().await,
    }
}
