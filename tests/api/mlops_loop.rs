//! The whole loop with the embedded default: Adult in → dataset version → a run
//! (once, though its event arrives twice) → model v1 with lineage → gate → staging →
//! production; a worse model is stopped by the gate; approval and rollback; the audit
//! chain verifies, and fails once a record is edited.

use serde_json::{Value, json};
use sluice_shared::audit::AuditLog;
use sluice_shared::model::ModelSession;
use sluice_shared::registry::{ModelName, Registry};

use crate::helpers::{TestApp, config, loop_app_with_eval_data, put_config, spawn_loop_app};

fn model() -> ModelName {
    ModelName::parse("adult-income").unwrap()
}

async fn production(app: &TestApp) -> u32 {
    Registry::new(app.store.clone())
        .resolve(&model(), "production")
        .await
        .unwrap()
        .version
}

#[tokio::test]
async fn adult_goes_from_upload_to_production_and_back() {
    let app = loop_app_with_eval_data().await;

    // Drop the Adult data: v1, and its dataset.versioned event (delivered twice).
    let key = app
        .upload(
            "adult",
            "adult.data",
            std::fs::read(sluice_tests::adult("adult.data")).unwrap(),
        )
        .await;
    let (status, ingested) = app
        .invoke("DatasetIngest", &app.blob_created(&key).await)
        .await;
    assert_eq!(status, 200, "{ingested}");
    let event = app.versioned_event("adult").await;
    let message = json!({"Data": {"message": event}, "Metadata": {"MessageId": "\"m-1\"", "DeliveryCount": "1"}});
    let (_, first) = app.invoke("DatasetEvents", &message).await;
    let (_, second) = app.invoke("DatasetEvents", &message).await;
    let run_id = first["ReturnValue"]["runs"][0]["run_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        first["ReturnValue"]["runs"][0]["duplicate"], false,
        "{first}"
    );
    assert_eq!(second["ReturnValue"]["runs"][0]["run_id"], run_id.as_str());
    assert_eq!(
        second["ReturnValue"]["runs"][0]["duplicate"], true,
        "{second}"
    );

    // The run trains, registers v1, passes the gate and reaches production.
    let done = app.follow(&run_id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["model_version"], 1);
    assert_eq!(done["gate"]["passed"], true, "{done}");
    assert_eq!(
        done["gate"]["releases"],
        json!(["staging.1", "production.1"])
    );
    assert_eq!(production(&app).await, 1);

    // Why did it predict this? One call answers it.
    let (status, lineage) = app
        .api(
            reqwest::Method::GET,
            "/api/models/adult-income/versions/1/lineage",
            None,
        )
        .await;
    assert_eq!(status, 200, "{lineage}");
    let manifest = app.manifest("adult", 1).await;
    assert_eq!(
        lineage["dataset"]["content_sha256"],
        manifest.content_sha256.as_str()
    );
    assert!(
        lineage["dataset"]["source"]["uri"]
            .as_str()
            .unwrap()
            .ends_with("landing/adult/adult.data")
    );
    assert_eq!(lineage["run"]["id"], run_id.as_str());
    assert_eq!(lineage["run"]["trigger"], "dataset.versioned");
    assert_eq!(lineage["algorithm"], "logistic_regression");
    assert_eq!(lineage["seed"], 42);
    assert_eq!(lineage["releases"][1]["id"], "production.1");
    let (status, missing) = app
        .api(
            reqwest::Method::GET,
            "/api/models/adult-income/versions/99/lineage",
            None,
        )
        .await;
    assert_eq!(status, 404, "{missing}");
    assert_eq!(missing["error"]["code"], "not_found");
    // A path that is not a version or not a model name: a JSON 400 naming which.
    for (path, field, words) in [
        (
            "/api/models/adult-income/versions/one/lineage",
            "version",
            "\"one\" is not a version number",
        ),
        (
            "/api/models/Adult!/versions/1",
            "model",
            "invalid model name",
        ),
        ("/api/models/Adult!/releases", "model", "invalid model name"),
    ] {
        let (status, refused) = app.api(reqwest::Method::GET, path, None).await;
        assert_eq!(
            (status, refused["error"]["field"].as_str()),
            (400, Some(field)),
            "{path}: {refused}"
        );
        let message = refused["error"]["message"].as_str().unwrap();
        assert!(message.contains(words), "{path}: {message}");
    }
    let before_v3 = chrono::Utc::now();

    // A worse model (one feature) is stopped by the gate, with reasons.
    let (status, accepted) = app
        .api(
            reqwest::Method::POST,
            "/api/retrain",
            Some(
                json!({"model": "adult-income", "dataset_version": 1, "reason": "age only",
                        "config_overrides": {"features": ["age"], "exclude": []}}),
            ),
        )
        .await;
    assert_eq!(status, 202, "{accepted}");
    let worse = accepted["run_id"].as_str().unwrap().to_owned();
    assert_eq!(accepted["status_url"], format!("/api/runs/{worse}"));
    let done = app.follow(&worse).await;
    assert_eq!(done["model_version"], 2);
    assert_eq!(done["gate"]["passed"], false, "{done}");
    let reasons = done["gate"]["reasons"].to_string();
    assert!(
        reasons.contains("roc_auc") && reasons.contains("does not improve"),
        "{reasons}"
    );
    assert_eq!(production(&app).await, 1, "production unchanged");
    let (status, run) = app
        .api(reqwest::Method::GET, &format!("/api/runs/{worse}"), None)
        .await;
    assert_eq!(
        (
            status,
            run["requested_by"]
                .as_str()
                .unwrap()
                .starts_with("ann (key:")
        ),
        (200, true),
        "{run}"
    );

    // Manual approval: a comparable model waits in staging until a person approves.
    let mut manual = config();
    manual["promotion"]["approval"] = json!("manual");
    manual["promotion"]["min_improvement"] = json!(-0.02);
    manual["promotion"]["max_regression"] = json!(0.02);
    put_config(&app, &manual).await;
    let done = app
        .retrain(json!({"model": "adult-income", "config_overrides": {"seed": 7}}))
        .await;
    assert_eq!(done["model_version"], 3, "{done}");
    assert_eq!(done["gate"]["passed"], true, "{done}");
    assert_eq!(done["gate"]["awaiting_approval"], true);
    assert_eq!(production(&app).await, 1);
    let (status, refused) = app
        .api(
            reqwest::Method::POST,
            "/api/models/adult-income/versions/2/approve",
            None,
        )
        .await;
    assert_eq!(
        status, 409,
        "a version that failed the gate cannot be approved: {refused}"
    );
    let (status, approved) = app
        .api(
            reqwest::Method::POST,
            "/api/models/adult-income/versions/3/approve",
            None,
        )
        .await;
    assert_eq!(status, 200, "{approved}");
    assert_eq!(approved["release"]["id"], "production.2");
    assert_eq!(production(&app).await, 3);

    // Rollback in one call; the releases say what was in production when. A body that
    // is not `{"reason": …}` is refused first, and nothing moves.
    let (status, refused) = app
        .api(
            reqwest::Method::POST,
            "/api/models/adult-income/rollback",
            Some(json!({"reason": ["complaints"]})),
        )
        .await;
    assert_eq!(
        (status, refused["error"]["field"].as_str()),
        (400, Some("body")),
        "{refused}"
    );
    assert_eq!(production(&app).await, 3);
    let (status, rolled) = app
        .api(
            reqwest::Method::POST,
            "/api/models/adult-income/rollback",
            Some(json!({"reason": "complaints"})),
        )
        .await;
    assert_eq!(status, 200, "{rolled}");
    assert_eq!(rolled["release"]["rolls_back"], "production.2");
    assert_eq!(production(&app).await, 1);
    let at = before_v3.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let (status, then) = app
        .api(
            reqwest::Method::GET,
            &format!("/api/models/adult-income/releases?at={at}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{then}");
    assert_eq!(then["release"]["id"], "production.1");
    assert_eq!(then["release"]["version"], 1);

    // Production scores raw rows in ONNX Runtime.
    let registry = Registry::new(app.store.clone());
    let prod = registry.resolve(&model(), "production").await.unwrap();
    let session = ModelSession::new(
        sluice_tests::onnxruntime(),
        &registry.model_bytes(&model(), prod.version).await.unwrap(),
        prod.signature.clone(),
    )
    .unwrap();
    let rows = app.adult_eval_rows(&prod.signature);
    let predictions = session.predict(&rows.take(&[0, 1, 2])).unwrap();
    assert_eq!(predictions.probabilities.len(), 3);
    assert!(
        predictions
            .probabilities
            .iter()
            .all(|p| (p[0] + p[1] - 1.0).abs() < 1e-9)
    );

    // The audit trail holds every step, verifies, and breaks when edited.
    let audit = AuditLog::new(app.store.clone());
    let records = audit.records().await.unwrap();
    let actions: Vec<String> = records
        .iter()
        .map(|r| {
            serde_json::to_value(r.entry.action)
                .unwrap()
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    for expected in [
        "run_requested",
        "run_started",
        "run_finished",
        "model_registered",
        "gate_passed",
        "gate_failed",
        "promoted",
        "approved",
        "rolled_back",
    ] {
        assert!(
            actions.iter().any(|a| a == expected),
            "no {expected} in {actions:?}"
        );
    }
    assert_eq!(
        actions.iter().filter(|a| *a == "run_requested").count(),
        3,
        "one run per identity"
    );
    audit.verify().await.unwrap();
    let path = app.root().join("audit/records/000000000002.json");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replacen("\"actor\": \"", "\"actor\": \"mallory ", 1),
    )
    .unwrap();
    let broken = audit.verify().await.unwrap_err().to_string();
    assert!(broken.contains("record 2"), "{broken}");
}

#[tokio::test]
async fn retrain_messages_that_can_never_succeed_are_set_aside_and_http_errors_say_where() {
    sluice::telemetry::init("warn");
    let app = spawn_loop_app().await;
    put_config(&app, &config()).await;
    let message = |body: Value| json!({"Data": {"message": body}, "Metadata": {"MessageId": "\"m-9\"", "DeliveryCount": "1"}});
    for (body, expected) in [
        (json!({"model": "adult-income"}), "requested_by"),
        (json!({"model": "Bad Name", "requested_by": "x"}), "model"),
        (
            json!({"model": "adult-income", "requested_by": "x", "dataset_version": "v2"}),
            "dataset_version",
        ),
        (
            json!({"model": "adult-income", "requested_by": "x"}),
            "no versions yet",
        ),
        (
            json!({"model": "unknown", "requested_by": "x"}),
            "no training config",
        ),
    ] {
        let (status, answer) = app.invoke("RetrainQueue", &message(body)).await;
        assert_eq!(status, 200, "answered 2xx, not retried: {answer}");
        let ret = &answer["ReturnValue"];
        assert_eq!(ret["status"], "rejected", "{answer}");
        // A request the runs reject is logged as a warning, which reaches the host (and
        // Application Insights) with the invocation.
        let logs = answer["Logs"].as_array().unwrap();
        let by_runs = ["no versions yet", "no training config"].contains(&expected);
        assert!(
            !by_runs
                || logs.iter().any(|l| {
                    let l = l.as_str().unwrap();
                    l.starts_with("WARN ") && l.contains("retrain request rejected")
                }),
            "{answer}"
        );
        assert!(
            ret["reason"].as_str().unwrap().contains(expected),
            "{expected}: {ret}"
        );
        let record =
            sluice_shared::storage::ObjectKey::parse(ret["record"].as_str().unwrap()).unwrap();
        let (saved, _): (Value, _) = sluice_shared::storage::get_json(app.store.as_ref(), &record)
            .await
            .unwrap();
        assert_eq!(saved["source"], "RetrainQueue");
    }
    // HTTP: client errors are 4xx JSON naming the field; no key is 401.
    let (status, body) = app
        .api(
            reqwest::Method::POST,
            "/api/retrain",
            Some(json!({"model": "adult-income", "dataset_version": [1]})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], "dataset_version");
    let (status, body) = app
        .api(reqwest::Method::GET, "/api/runs/run-nope", None)
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let no_key = app
        .client
        .get(format!("{}/api/runs", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(no_key.status(), 401);
    let (status, body) = app
        .api(
            reqwest::Method::GET,
            "/api/models/adult-income/releases?at=yesterday",
            None,
        )
        .await;
    assert_eq!((status, body["error"]["field"].as_str()), (400, Some("at")));
}

/// A store whose reads of metadata and writes under `prefix` fail as a throttled backend
/// would, until told not to.
#[derive(Debug)]
struct Flaky {
    inner: sluice_shared::storage::local::LocalStore,
    prefix: &'static str,
    failing: std::sync::atomic::AtomicBool,
}

impl Flaky {
    fn fails(&self, key: &sluice_shared::storage::ObjectKey) -> sluice_shared::storage::Result<()> {
        if key.as_str().starts_with(self.prefix)
            && self.failing.load(std::sync::atomic::Ordering::SeqCst)
        {
            return Err(sluice_shared::storage::StorageError::Backend {
                store: "flaky",
                message: "503 Server Busy".into(),
                transient: true,
            });
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl sluice_shared::storage::ObjectStore for Flaky {
    fn name(&self) -> &'static str {
        "flaky"
    }
    async fn get(
        &self,
        key: &sluice_shared::storage::ObjectKey,
    ) -> sluice_shared::storage::Result<sluice_shared::storage::GetResult> {
        self.inner.get(key).await
    }
    async fn head(
        &self,
        key: &sluice_shared::storage::ObjectKey,
    ) -> sluice_shared::storage::Result<sluice_shared::storage::ObjectMeta> {
        self.fails(key)?;
        self.inner.head(key).await
    }
    async fn put(
        &self,
        key: &sluice_shared::storage::ObjectKey,
        payload: sluice_shared::storage::Payload,
        mode: sluice_shared::storage::PutMode,
    ) -> sluice_shared::storage::Result<sluice_shared::storage::ObjectMeta> {
        self.fails(key)?;
        self.inner.put(key, payload, mode).await
    }
    async fn list(
        &self,
        prefix: &str,
    ) -> sluice_shared::storage::Result<Vec<sluice_shared::storage::ObjectMeta>> {
        self.inner.list(prefix).await
    }
    async fn copy(
        &self,
        from: &sluice_shared::storage::ObjectKey,
        to: &sluice_shared::storage::ObjectKey,
    ) -> sluice_shared::storage::Result<sluice_shared::storage::ObjectMeta> {
        self.inner.copy(from, to).await
    }
    fn uri(&self, key: &sluice_shared::storage::ObjectKey) -> String {
        self.inner.uri(key)
    }
    fn key_from_uri(&self, uri: &str) -> Option<sluice_shared::storage::ObjectKey> {
        self.inner.key_from_uri(uri)
    }
}

#[tokio::test]
async fn a_transient_failure_is_answered_503_so_the_host_retries_then_succeeds() {
    let root = tempfile::tempdir().unwrap();
    let flaky = std::sync::Arc::new(Flaky {
        inner: sluice_shared::storage::local::LocalStore::new(root.path()).unwrap(),
        prefix: "runs/",
        failing: true.into(),
    });
    let app = crate::helpers::spawn_configured(flaky.clone(), Some(root), |state, _| state).await;
    let ret = app
        .ingest("tiny", "t.csv", b"x,y\n1,a\n2,b\n3,a\n4,b\n".to_vec())
        .await;
    assert_eq!(ret["status"], "versioned", "{ret}");
    put_config(
        &app,
        &json!({"model": "tiny-model", "dataset": "tiny", "label": "y", "positive": "b"}),
    )
    .await;
    let message = json!({"Data": {"message": {"model": "tiny-model", "requested_by": "x"}}, "Metadata": {"MessageId": "\"m-2\"", "DeliveryCount": "1"}});
    let (status, body) = app.invoke("RetrainQueue", &message).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "unavailable");
    assert!(
        !body.to_string().contains("Server Busy"),
        "no internals leak: {body}"
    );
    flaky
        .failing
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let (status, body) = app.invoke("RetrainQueue", &message).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ReturnValue"]["status"], "accepted");
}

#[tokio::test]
async fn contract_registry_and_job_events_in_their_documented_shapes() {
    let app = spawn_loop_app().await;
    // Azure ML's ModelRegistered, docs (PascalCase, number) and SDK (camelCase, string)
    // shapes: both parse; a model Sluice does not know is acknowledged, not an error.
    let docs = sluice_tests::fixture(
        "eventgrid/Microsoft.MachineLearningServices.ModelRegistered.docs.cloudevent.json",
    );
    let mut camel = sluice_tests::fixture(
        "eventgrid/Microsoft.MachineLearningServices.ModelRegistered.docs.eventgrid.json",
    );
    let data = camel[0]["data"].take();
    camel[0]["data"] =
        json!({"modelName": data["ModelName"], "modelVersion": data["ModelVersion"].to_string()});
    for event in [docs, camel] {
        let (status, body) = app
            .invoke(
                "RegistryEvents",
                &json!({"Data": {"event": event}, "Metadata": {}}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["ReturnValue"]["status"], "ignored", "{body}");
        assert!(
            body["ReturnValue"]["reason"]
                .as_str()
                .unwrap()
                .contains("not in Sluice's registry"),
            "{body}"
        );
    }
    let mut broken = sluice_tests::fixture(
        "eventgrid/Microsoft.MachineLearningServices.ModelRegistered.docs.eventgrid.json",
    );
    broken[0]["data"]["ModelVersion"] = json!("latest");
    let (status, body) = app
        .invoke(
            "RegistryEvents",
            &json!({"Data": {"event": broken}, "Metadata": {}}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("Data.event.data.ModelVersion")),
        "{body}"
    );
    // RunCompleted for a job Sluice did not start: acknowledged.
    let completed = sluice_tests::fixture(
        "eventgrid/Microsoft.MachineLearningServices.RunCompleted.docs.eventgrid.json",
    );
    let (status, body) = app
        .invoke(
            "MlJobEvents",
            &json!({"Data": {"event": completed}, "Metadata": {}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["ReturnValue"]["reason"]
            .as_str()
            .unwrap()
            .contains("not a Sluice run"),
        "{body}"
    );
    let changed = sluice_tests::fixture(
        "eventgrid/Microsoft.MachineLearningServices.RunStatusChanged.docs.eventgrid.json",
    );
    let (status, _) = app
        .invoke(
            "MlJobEvents",
            &json!({"Data": {"event": changed}, "Metadata": {}}),
        )
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn health_reports_storage_by_kind_and_answers_503_while_it_fails() {
    let root = tempfile::tempdir().unwrap();
    let flaky = std::sync::Arc::new(Flaky {
        inner: sluice_shared::storage::local::LocalStore::new(root.path()).unwrap(),
        prefix: "health/",
        failing: true.into(),
    });
    let app = crate::helpers::spawn_configured(flaky.clone(), Some(root), |state, _| state).await;
    let health = || async {
        let r = app
            .client
            .get(format!("{}/api/health", app.base))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    };
    let (status, body) = health().await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "degraded");
    assert_eq!(
        body["storage"],
        json!({"reachable": false, "transient": true})
    );
    assert!(!body.to_string().contains("Server Busy"), "{body}");
    flaky
        .failing
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let (status, body) = health().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ok");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(body["production_models"], json!([]));
}

/// A viewer key (`SLUICE_VIEWER_KEYS`) reads what an admin key reads and changes
/// nothing: every read answers as for an admin, every change is a 403 that says why;
/// a wrong key is still a 401.
#[tokio::test]
async fn a_viewer_key_reads_and_changes_nothing() {
    let root = tempfile::tempdir().unwrap();
    let store: std::sync::Arc<dyn sluice_shared::storage::ObjectStore> =
        std::sync::Arc::new(sluice_shared::storage::local::LocalStore::new(root.path()).unwrap());
    let app = crate::helpers::spawn_configured(store, Some(root), |state, _| {
        state
            .with_admin_keys(&[crate::helpers::ADMIN_KEY.parse().unwrap()])
            .with_viewer_keys(&["a-viewer-key".parse().unwrap()])
    })
    .await;
    let send = |method: reqwest::Method, path: &str, key: &str| {
        app.client
            .request(method, format!("{}{path}", app.base))
            .header("x-functions-key", key)
            .json(&json!({"model": "adult-income", "reason": "x"}))
            .send()
    };
    for path in ["/api/models", "/api/runs", "/api/models/m/monitoring"] {
        let admin = send(reqwest::Method::GET, path, crate::helpers::ADMIN_KEY)
            .await
            .unwrap();
        let viewer = send(reqwest::Method::GET, path, "a-viewer-key")
            .await
            .unwrap();
        assert_eq!(viewer.status(), admin.status(), "{path}");
        assert_eq!(
            viewer.text().await.unwrap(),
            admin.text().await.unwrap(),
            "{path}"
        );
    }
    for (method, path) in [
        (reqwest::Method::POST, "/api/retrain"),
        (reqwest::Method::POST, "/api/models/m/rollback"),
        (reqwest::Method::POST, "/api/models/m/versions/1/approve"),
        (reqwest::Method::PUT, "/api/models/m/config"),
        (reqwest::Method::POST, "/api/runs/r/retry"),
        (reqwest::Method::POST, "/api/feedback/m"),
    ] {
        let refused = send(method.clone(), path, "a-viewer-key").await.unwrap();
        assert_eq!(refused.status(), 403, "{method} {path}");
        let body: Value = refused.json().await.unwrap();
        assert_eq!(body["error"]["code"], "forbidden", "{body}");
        let wrong = send(method.clone(), path, "not-a-key").await.unwrap();
        assert_eq!(wrong.status(), 401, "{method} {path}");
    }
    let wrong = send(reqwest::Method::GET, "/api/models", "not-a-key")
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
}
