use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sluice::host::startup::Application;
use sluice::host::state::AppState;
use sluice_shared::dataset::contract::Contract;
use sluice_shared::dataset::{Contracts, Manifest, QuarantineReport};
use sluice_shared::model::{Table, Values};
use sluice_shared::storage::local::LocalStore;
use sluice_shared::storage::{ObjectKey, ObjectStore, PutMode, get_json};
use sluice_shared::training::TrainingConfig;
use sluice_shared::training::configs::Configs;

/// A running handler (in-process, real HTTP on 127.0.0.1:0) over a fresh store.
pub struct TestApp {
    pub base: String,
    pub store: Arc<dyn ObjectStore>,
    pub client: reqwest::Client,
    _root: Option<tempfile::TempDir>,
    _scratch: tempfile::TempDir,
}

impl TestApp {
    /// The local store's root folder (only for apps on a local store).
    pub fn root(&self) -> &std::path::Path {
        self._root.as_ref().expect("a local store").path()
    }

    /// The `adult-eval` dataset's version 1, read as `signature`'s input columns.
    pub fn adult_eval_rows(
        &self,
        signature: &sluice_shared::model::Signature,
    ) -> sluice_shared::model::Table {
        let columns: Vec<_> = signature
            .inputs
            .iter()
            .map(|i| (i.name.clone(), i.kind))
            .collect();
        sluice_shared::model::Table::read_parquet(
            &self.root().join("datasets/adult-eval/v1/data.parquet"),
            &columns,
        )
        .unwrap()
    }
}

pub async fn spawn_app() -> TestApp {
    let root = tempfile::tempdir().unwrap();
    let store: Arc<dyn ObjectStore> = Arc::new(LocalStore::new(root.path()).unwrap());
    spawn_app_on(store, Some(root)).await
}

pub async fn spawn_app_on(store: Arc<dyn ObjectStore>, root: Option<tempfile::TempDir>) -> TestApp {
    spawn_configured(store, root, |state, _| state).await
}

/// The admin key the loop's apps accept.
pub const ADMIN_KEY: &str = "test-admin-key";
/// The scoring key the loop's apps accept.
pub const SCORING_KEY: &str = "test-scoring-key";

/// An app that runs the whole loop: local compute with the real `sluice` binary, the
/// evaluation gate on ONNX Runtime, and [`ADMIN_KEY`].
pub async fn spawn_loop_app() -> TestApp {
    let root = tempfile::tempdir().unwrap();
    let store: Arc<dyn ObjectStore> = Arc::new(LocalStore::new(root.path()).unwrap());
    spawn_configured(store, Some(root), loop_state).await
}

/// The loop's app on a local store at `root`, training on the backend `compute` makes
/// (from the store and the app's scratch folder).
pub async fn spawn_loop_app_on(
    store: Arc<dyn ObjectStore>,
    root: tempfile::TempDir,
    compute: impl FnOnce(
        Arc<dyn ObjectStore>,
        &std::path::Path,
    ) -> Arc<dyn sluice_shared::runs::Compute>,
) -> TestApp {
    spawn_configured(store, Some(root), |state, scratch| {
        let compute = compute(state.store.clone(), scratch);
        with_loop_parts(state.with_compute(compute))
    })
    .await
}

/// The loop's state: local compute with the real `sluice` binary, ONNX Runtime, keys.
fn loop_state(state: AppState, scratch: &std::path::Path) -> AppState {
    let compute = Arc::new(sluice_shared::runs::local::LocalCompute::new(
        state.store.clone(),
        scratch.join("jobs"),
        sluice_tests::sluice_bin().to_path_buf(),
    ));
    with_loop_parts(state.with_compute(compute))
}

fn with_loop_parts(state: AppState) -> AppState {
    state
        .with_runtime(sluice_tests::onnxruntime())
        .with_admin_keys(&[ADMIN_KEY.parse().unwrap()])
        .with_scoring_keys(&[SCORING_KEY.parse().unwrap()])
}

/// What a [`Receiver`] was sent: each request's headers and body.
pub(crate) type Received = Arc<std::sync::Mutex<Vec<(axum::http::HeaderMap, Vec<u8>)>>>;

/// A webhook receiver on 127.0.0.1: answers each request with the next of `statuses`
/// (200 once they run out) and keeps what it received.
pub(crate) struct Receiver {
    pub url: String,
    pub received: Received,
}

impl Receiver {
    pub(crate) async fn start(statuses: Vec<u16>) -> Self {
        let received: Received = Arc::default();
        let script = Arc::new(std::sync::Mutex::new(std::collections::VecDeque::from(
            statuses,
        )));
        let kept = received.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(
                move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                    let (kept, script) = (kept.clone(), script.clone());
                    async move {
                        kept.lock().unwrap().push((headers, body.to_vec()));
                        let status = script.lock().unwrap().pop_front().unwrap_or(200);
                        axum::http::StatusCode::from_u16(status).unwrap()
                    }
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, received }
    }

    /// The bodies received, as JSON.
    pub(crate) fn events(&self) -> Vec<Value> {
        let received = self.received.lock().unwrap();
        received
            .iter()
            .map(|(_, body)| serde_json::from_slice(body).unwrap())
            .collect()
    }
}

/// Checks a received webhook's signature as a receiver would (Standard Webhooks: HMAC-
/// SHA256 of `<id>.<timestamp>.<body>` under the secret), independently of Sluice's code.
pub(crate) fn signed_by(secret: &[u8], headers: &axum::http::HeaderMap, body: &[u8]) -> bool {
    use base64::Engine;
    use hmac::Mac;
    let header = |name: &str| headers.get(name).unwrap().to_str().unwrap().to_owned();
    let (id, timestamp) = (header("webhook-id"), header("webhook-timestamp"));
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    header("webhook-signature")
        .split(' ')
        .any(|s| s.strip_prefix("v1,") == Some(expected.as_str()))
}

pub async fn spawn_configured(
    store: Arc<dyn ObjectStore>,
    root: Option<tempfile::TempDir>,
    configure: impl FnOnce(AppState, &std::path::Path) -> AppState,
) -> TestApp {
    let scratch = tempfile::tempdir().unwrap();
    let state = configure(
        AppState::new(store.clone(), scratch.path().to_path_buf()),
        scratch.path(),
    );
    let app = Application::build(state, 0).await.unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    TestApp {
        base,
        store,
        client: reqwest::Client::new(),
        _root: root,
        _scratch: scratch,
    }
}

impl TestApp {
    /// POSTs an invocation body to `/<function>`; returns status and JSON body.
    pub async fn invoke(&self, function: &str, body: &Value) -> (u16, Value) {
        self.invoke_raw(function, serde_json::to_vec(body).unwrap())
            .await
    }

    pub async fn invoke_raw(&self, function: &str, body: Vec<u8>) -> (u16, Value) {
        let r = self
            .client
            .post(format!("{}/{function}", self.base))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        let json = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("non-JSON answer ({status}): {text}"));
        (status, json)
    }

    /// Writes `bytes` to `landing/<dataset>/<name>`.
    pub async fn upload(&self, dataset: &str, name: &str, bytes: Vec<u8>) -> ObjectKey {
        let key = ObjectKey::parse(format!("landing/{dataset}/{name}")).unwrap();
        self.store
            .put(&key, bytes.into(), PutMode::Overwrite)
            .await
            .unwrap();
        key
    }

    pub async fn put_contract(&self, contract: Value) -> Contract {
        let c = Contract::from_json(contract.to_string().as_bytes()).unwrap();
        Contracts::new(self.store.clone())
            .put(c, "test")
            .await
            .unwrap()
    }

    pub async fn adult_contract(&self) -> Contract {
        let c = Contract::from_json(
            &std::fs::read(sluice_tests::repo_root().join("contracts/adult.json")).unwrap(),
        )
        .unwrap();
        Contracts::new(self.store.clone())
            .put(c, "test")
            .await
            .unwrap()
    }

    /// The invocation the Functions host sends for an Event Grid BlobCreated event
    /// (Event Grid schema), built from the documented fixture with our blob's URL.
    pub async fn blob_created(&self, key: &ObjectKey) -> Value {
        let mut event =
            sluice_tests::fixture("eventgrid/Microsoft.Storage.BlobCreated.eventgrid.json")[0]
                .clone();
        let meta = self.store.head(key).await.unwrap();
        event["data"]["url"] = json!(self.store.uri(key));
        event["data"]["eTag"] = json!(meta.etag.0);
        event["data"]["contentLength"] = json!(meta.size);
        json!({
            "Data": {"event": event},
            "Metadata": {"data": event["data"].clone(), "sys": {"MethodName": "DatasetIngest", "UtcNow": "2026-11-24T00:00:00Z", "RandGuid": uuid::Uuid::new_v4().to_string()}}
        })
    }

    /// Uploads and ingests through `DatasetIngest`; returns the ReturnValue.
    pub async fn ingest(&self, dataset: &str, name: &str, bytes: Vec<u8>) -> Value {
        let key = self.upload(dataset, name, bytes).await;
        let (status, body) = self
            .invoke("DatasetIngest", &self.blob_created(&key).await)
            .await;
        assert_eq!(status, 200, "{body}");
        body["ReturnValue"].clone()
    }

    pub async fn manifest(&self, dataset: &str, version: u32) -> Manifest {
        let key = ObjectKey::parse(format!("datasets/{dataset}/v{version}/manifest.json")).unwrap();
        get_json(self.store.as_ref(), &key).await.unwrap().0
    }

    pub async fn report(&self, ret: &Value) -> QuarantineReport {
        let key = ObjectKey::parse(ret["report_key"].as_str().unwrap()).unwrap();
        get_json(self.store.as_ref(), &key).await.unwrap().0
    }

    /// Version numbers that have a manifest.
    pub async fn versions(&self, dataset: &str) -> Vec<u32> {
        let mut v: Vec<u32> = self
            .store
            .list(&format!("datasets/{dataset}/v"))
            .await
            .unwrap()
            .iter()
            .filter(|m| m.key.as_str().ends_with("/manifest.json"))
            .map(|m| {
                m.key.as_str().split('/').nth(2).unwrap()[1..]
                    .parse()
                    .unwrap()
            })
            .collect();
        v.sort();
        v
    }
}

/// The `adult-income` training config from `configs/`.
pub(crate) fn config() -> Value {
    serde_json::from_slice(
        &std::fs::read(sluice_tests::repo_root().join("configs/adult-income.json")).unwrap(),
    )
    .unwrap()
}

/// Stores a training config as an operator would (it must be accepted).
pub(crate) async fn put_config(app: &TestApp, config: &Value) {
    let config = TrainingConfig::from_json(config.to_string().as_bytes()).unwrap();
    app.configs().put(&config, "test", "c0").await.unwrap();
}

impl TestApp {
    /// The store's training configs.
    pub(crate) fn configs(&self) -> Configs {
        Configs::new(self.store.clone())
    }

    /// An admin API call as `ann`: the status and the JSON body (null if none).
    pub(crate) async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header("x-functions-key", ADMIN_KEY)
            .header("x-sluice-actor", "ann");
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// `POST /api/retrain` with `request`, then [`follow`](Self::follow)s the run.
    pub(crate) async fn retrain(&self, request: Value) -> Value {
        let (status, accepted) = self
            .api(reqwest::Method::POST, "/api/retrain", Some(request))
            .await;
        assert_eq!(status, 202, "{accepted}");
        self.follow(accepted["run_id"].as_str().unwrap()).await
    }

    /// Invokes the timer function `function` as the host's timer does; its answer.
    pub(crate) async fn timer(&self, function: &str) -> Value {
        let timer = json!({"Data": {"timer": {"IsPastDue": false}}, "Metadata": {}});
        let (status, body) = self.invoke(function, &timer).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Ticks `Notify`: the lifecycle events it hands to the `sluice-events` topic since
    /// the last tick whose type starts with `kind` (`""` for all).
    pub(crate) async fn events(&self, kind: &str) -> Vec<Value> {
        let answer = self.timer("Notify").await;
        answer["Outputs"]["events"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["type"].as_str().unwrap().starts_with(kind))
            .cloned()
            .collect()
    }

    /// The newest `dataset.versioned` event of `dataset` that `Notify` tells now.
    pub(crate) async fn versioned_event(&self, dataset: &str) -> Value {
        let events = self.events("dataset.versioned").await;
        let found = events
            .iter()
            .rev()
            .find(|e| e["data"]["dataset"] == dataset);
        found
            .unwrap_or_else(|| panic!("no dataset.versioned for {dataset} in {events:?}"))
            .clone()
    }

    /// Ticks `RunsTimer` until `run` is over; returns its last report entry.
    pub(crate) async fn follow(&self, run: &str) -> Value {
        let started = Instant::now();
        loop {
            let body = self.timer("RunsTimer").await;
            let entry = body["ReturnValue"]["runs"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["run_id"] == run)
                .cloned()
                .unwrap();
            if ["succeeded", "failed", "canceled"].contains(&entry["status"].as_str().unwrap()) {
                return entry;
            }
            assert!(
                started.elapsed() < Duration::from_secs(180),
                "{run} did not finish: {entry}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// A loop app with the Adult contracts, the `adult-income` config and the pinned
/// evaluation data (`adult-eval` v1) in place: Adult itself is the caller's to drop.
pub(crate) async fn loop_app_with_eval_data() -> TestApp {
    with_eval_data(spawn_loop_app().await).await
}

/// `app` with Adult's contracts, the adult-income config and `adult-eval` v1.
pub(crate) async fn with_eval_data(app: TestApp) -> TestApp {
    app.adult_contract().await;
    let eval: Value = serde_json::from_slice(
        &std::fs::read(sluice_tests::repo_root().join("contracts/adult-eval.json")).unwrap(),
    )
    .unwrap();
    app.put_contract(eval).await;
    put_config(&app, &config()).await;
    let test_file = std::fs::read(sluice_tests::adult("adult.test")).unwrap();
    assert_eq!(
        app.ingest("adult-eval", "adult.test", test_file).await["status"],
        "versioned"
    );
    app
}

/// The Azure ML workspace the contract tests address (`endpoint` is ARM or a stand-in).
pub(crate) fn workspace(endpoint: &str) -> sluice_shared::cloud::azureml::Workspace {
    sluice_shared::cloud::azureml::Workspace {
        endpoint: endpoint.into(),
        subscription_id: "00000000-1111-2222-3333-444444444444".into(),
        resource_group: "test-rg".into(),
        workspace: "my-aml-workspace".into(),
        datastore: "sluice".into(),
        experiment: "sluice".into(),
    }
}

/// An app whose `adult-income` v1 is in production (through the whole loop).
pub(crate) async fn adult_in_production() -> TestApp {
    adult_in_production_notifying(vec![]).await
}

/// [`adult_in_production`], telling its events to `webhooks` too.
pub(crate) async fn adult_in_production_notifying(
    webhooks: Vec<sluice_shared::notify::Webhook>,
) -> TestApp {
    adult_in_production_with(|state| state.with_webhooks(webhooks)).await
}

/// [`adult_in_production`], its state changed by `configure` (keys, webhooks).
pub(crate) async fn adult_in_production_with(
    configure: impl FnOnce(AppState) -> AppState,
) -> TestApp {
    let root = tempfile::tempdir().unwrap();
    let store: Arc<dyn ObjectStore> = Arc::new(LocalStore::new(root.path()).unwrap());
    let app = spawn_configured(store, Some(root), |state, scratch| {
        configure(loop_state(state, scratch))
    })
    .await;
    let app = with_eval_data(app).await;
    let data = std::fs::read(sluice_tests::adult("adult.data")).unwrap();
    assert_eq!(
        app.ingest("adult", "adult.data", data).await["status"],
        "versioned"
    );
    let done = app.retrain(json!({"model": "adult-income"})).await;
    assert_eq!(
        done["gate"]["releases"],
        json!(["staging.1", "production.1"]),
        "{done}"
    );
    app
}

/// A scorer over the app's registry, as `Score` has (one session, batches of 100).
pub(crate) fn scorer(app: &TestApp) -> sluice_shared::scoring::Scorer {
    sluice_shared::scoring::Scorer::new(
        sluice_shared::registry::Registry::new(app.store.clone()),
        sluice_tests::onnxruntime(),
        1,
        100,
    )
}

/// Rows of adult.test as a scoring client would send them (raw values, records).
pub(crate) fn records(app: &TestApp, rows: &[usize]) -> (Vec<Value>, Table) {
    let registry_signature = std::fs::read(
        app.root()
            .join("registry/models/adult-income/versions/v1/signature.json"),
    )
    .unwrap();
    let signature: sluice_shared::model::Signature =
        serde_json::from_slice(&registry_signature).unwrap();
    let table = app.adult_eval_rows(&signature).take(rows);
    let records = (0..rows.len())
        .map(|r| {
            let mut row = serde_json::Map::new();
            for (name, values) in &table.columns {
                let v = match values {
                    Values::Numbers(xs) if xs[r].is_nan() => Value::Null,
                    Values::Numbers(xs) => json!(xs[r] as i64),
                    Values::Text(t) => t[r].clone().map_or(Value::Null, Value::String),
                };
                row.insert(name.clone(), v);
            }
            Value::Object(row)
        })
        .collect();
    (records, table)
}
