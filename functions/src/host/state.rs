//! What every function's handler shares: the store, ingest, runs, the gate, scoring and
//! the keys, built once at start ([`AppState`]).

use std::sync::Arc;

use sha2::Digest;
use sluice_shared::dataset::Ingestor;
use sluice_shared::model::Runtime;
use sluice_shared::monitoring::Monitor;
use sluice_shared::registry::Registry;
use sluice_shared::registry::gate::Gate;
use sluice_shared::registry::promotion::Releases;
use sluice_shared::runs::local::LocalCompute;
use sluice_shared::runs::{Compute, Runs};
use sluice_shared::scoring::Scorer;
use sluice_shared::storage::ObjectStore;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;

use crate::host::auth::Keys;
use crate::host::error::AppError;

/// The largest blob the blob trigger accepts. The host sends the whole blob base64-encoded
/// inside one JSON body, so larger files must arrive through the Event Grid path
/// (`DatasetIngest`), which streams them from storage instead.
pub const BLOB_TRIGGER_MAX_BYTES: usize = 32 << 20;

/// What the handlers share. Axum clones the state for every request, so it is one
/// `Arc` ([`AppState`]) rather than a struct of them.
#[derive(Clone)]
pub struct Services {
    pub store: Arc<dyn ObjectStore>,
    pub ingestor: Arc<Ingestor>,
    pub runs: Runs,
    /// Alias moves: approvals, rollbacks, the verdicts they rest on.
    pub releases: Releases,
    /// The evaluation gate; `None` when ONNX Runtime could not be loaded (the functions
    /// that need it answer 503 and say why).
    pub gate: Option<Arc<Gate>>,
    pub admin_keys: Arc<Keys>,
    /// Keys that only read (`Reader`, never `Admin`).
    pub viewer_keys: Arc<Keys>,
    /// Scoring; `None` without ONNX Runtime (`Score` then answers 503).
    pub scorer: Option<Arc<Scorer>>,
    /// Keys for `Score`, separate from the admin keys.
    pub scoring_keys: Arc<Keys>,
    /// Production's drift windows, live metrics and guard.
    pub monitor: Monitor,
    /// Ground truth taken in (the API's and the landing folder's).
    pub feedback: sluice_shared::monitoring::feedback::Feedback,
    /// Tells the audit trail's records to the topic and the webhooks.
    pub notifier: sluice_shared::notify::Notifier,
    scratch: std::path::PathBuf,
}

#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

impl AppState {
    /// Local compute running this executable's `sluice train`, no gate, no admin keys.
    pub fn new(store: Arc<dyn ObjectStore>, scratch: std::path::PathBuf) -> Self {
        let program = std::env::current_exe().unwrap_or_else(|_| "sluice".into());
        // Job folders are per store: the same run id in two stores is two jobs.
        let runs = sluice_shared::storage::ObjectKey::parse("runs").expect("valid key");
        let store_id = sha2::Sha256::digest(store.uri(&runs).as_bytes());
        let jobs = scratch
            .join("sluice-jobs")
            .join(&hex::encode(store_id)[..16]);
        let compute = Arc::new(LocalCompute::new(store.clone(), jobs, program));
        Self(Arc::new(Services {
            ingestor: Arc::new(Ingestor::new(store.clone(), scratch.clone())),
            runs: Runs::new(store.clone(), compute),
            releases: Releases::new(store.clone()),
            gate: None,
            admin_keys: Arc::new(Keys::default()),
            viewer_keys: Arc::new(Keys::default()),
            scorer: None,
            scoring_keys: Arc::new(Keys::default()),
            monitor: Monitor::new(store.clone()),
            feedback: sluice_shared::monitoring::feedback::Feedback::new(store.clone()),
            notifier: sluice_shared::notify::Notifier::new(store.clone(), vec![]),
            store,
            scratch,
        }))
    }

    /// The services, to change while the state is being built (not yet shared).
    fn edit(&mut self) -> &mut Services {
        Arc::make_mut(&mut self.0)
    }

    /// Uploads larger than `threshold` bytes are scanned by `engine`.
    pub fn with_delegation(
        mut self,
        threshold: u64,
        engine: Arc<dyn sluice_shared::dataset::delegation::ScanEngine>,
    ) -> Self {
        let services = self.edit();
        let ingestor = Ingestor::new(services.store.clone(), services.scratch.clone());
        services.ingestor = Arc::new(ingestor.with_delegation(threshold, engine));
        self
    }

    pub fn with_compute(mut self, compute: Arc<dyn Compute>) -> Self {
        self.edit().runs = Runs::new(self.store.clone(), compute);
        self
    }

    /// With ONNX Runtime: the evaluation gate and scoring.
    pub fn with_runtime(mut self, runtime: &'static Runtime) -> Self {
        let services = self.edit();
        services.gate = Some(Arc::new(Gate::new(
            services.store.clone(),
            runtime,
            services.scratch.clone(),
        )));
        let sessions = std::thread::available_parallelism().map_or(2, |n| n.get());
        services.scorer = Some(Arc::new(
            Scorer::new(
                Registry::new(services.store.clone()),
                runtime,
                sessions,
                sluice_shared::scoring::MAX_ROWS,
            )
            .with_scratch(services.scratch.clone()),
        ));
        self
    }

    pub fn with_scoring_keys(mut self, keys: &[crate::settings::Secret]) -> Self {
        self.edit().scoring_keys = Arc::new(Keys::new(keys));
        self
    }

    /// Events also go to these webhooks.
    pub fn with_webhooks(mut self, webhooks: Vec<sluice_shared::notify::Webhook>) -> Self {
        let services = self.edit();
        services.notifier = sluice_shared::notify::Notifier::new(services.store.clone(), webhooks);
        self
    }

    /// Keys that read the API (and, later, the console) but change nothing.
    pub fn with_viewer_keys(mut self, keys: &[crate::settings::Secret]) -> Self {
        self.edit().viewer_keys = Arc::new(Keys::new(keys));
        self
    }

    pub fn with_admin_keys(mut self, keys: &[crate::settings::Secret]) -> Self {
        self.edit().admin_keys = Arc::new(Keys::new(keys));
        self
    }
}

/// A request with an admin key: extracting it checks the key (a JSON 401 without a good
/// one, before anything else is read) and yields who acted, for the audit trail. A
/// viewer key is a 403: it is a key, but one that only reads.
pub struct Admin(pub String);

impl FromRequestParts<AppState> for Admin {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        match state.admin_keys.check(&parts.headers) {
            Ok(actor) => Ok(Admin(actor)),
            Err(_) if state.viewer_keys.check(&parts.headers).is_ok() => Err(AppError::forbidden(
                "a viewer key reads; changing anything takes an admin key",
            )),
            Err(e) => Err(e),
        }
    }
}

/// A request that only reads: an admin key or a viewer key (`SLUICE_VIEWER_KEYS`, for
/// people and dashboards that look but do not change anything).
pub struct Reader(pub String);

impl FromRequestParts<AppState> for Reader {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        match state.admin_keys.check(&parts.headers) {
            Ok(actor) => Ok(Reader(actor)),
            Err(e) => state
                .viewer_keys
                .check(&parts.headers)
                .map(|actor| Reader(format!("viewer {actor}")))
                .map_err(|_| e),
        }
    }
}

/// The optional `{"reason": …}` body of an admin action (a rollback, a retry): empty
/// without a body, a JSON 400 naming `body` when it is something else.
pub struct Reason(pub String);

impl Reason {
    /// The reason given, or `default` when none was.
    pub fn or<'a>(&'a self, default: &'a str) -> &'a str {
        if self.0.is_empty() { default } else { &self.0 }
    }
}

impl FromRequest<AppState> for Reason {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, AppError> {
        #[derive(serde::Deserialize)]
        struct Body {
            #[serde(default)]
            reason: String,
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| AppError::bad_request("body", e.body_text()))?;
        if bytes.is_empty() {
            return Ok(Self(String::new()));
        }
        let body: Body = serde_json::from_slice(&bytes).map_err(|e| {
            AppError::bad_request("body", format!("expected {{\"reason\": …}}: {e}"))
        })?;
        Ok(Self(body.reason))
    }
}
