//! `Score` over HTTP as the host forwards it: production's predictions, the same as ONNX
//! Runtime on the same rows in either input form; every error with its status and body;
//! hot reload under load.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sluice_shared::model::{ModelSession, Predictions, Table, Values};
use sluice_shared::registry::promotion::{Change, Releases};
use sluice_shared::registry::{ModelName, PRODUCTION, Registry};
use sluice_shared::scoring::batch::Batcher;

use crate::helpers::{ADMIN_KEY, SCORING_KEY, TestApp};
use crate::helpers::{adult_in_production, config, put_config, records};

impl TestApp {
    pub(crate) async fn score(&self, path: &str, body: &Value) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .header("x-functions-key", SCORING_KEY)
            .json(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

/// Score's requests skip the router (`startup::app`); the router still serves the same
/// route (`startup::router`). Both ways give the same answer to the same request: status,
/// body and the headers that matter, for answers and for every kind of error.
#[tokio::test]
async fn the_direct_way_to_score_answers_exactly_as_the_router() {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    let app = adult_in_production().await;
    let scratch = tempfile::tempdir().unwrap();
    let state = sluice::host::state::AppState::new(app.store.clone(), scratch.path().into())
        .with_runtime(sluice_tests::onnxruntime())
        .with_scoring_keys(&[SCORING_KEY.parse().unwrap()]);
    let (records, _) = records(&app, &[0, 1, 2]);
    let good = json!({"data": records}).to_string();
    let too_large = "x".repeat(sluice::host::score::MAX_BODY_BYTES + 1);
    let cases: Vec<(&str, &str, Option<&str>, &str, String)> = vec![
        // (method, path, scoring key, content type, body)
        (
            "POST",
            "/api/score/adult-income",
            Some(SCORING_KEY),
            "application/json",
            good.clone(),
        ),
        (
            "POST",
            "/api/score/adult-income?version=1",
            Some(SCORING_KEY),
            "application/json",
            good.clone(),
        ),
        (
            "POST",
            "/api/score/adult-income?alias=canary",
            Some(SCORING_KEY),
            "application/json",
            good.clone(),
        ),
        (
            "POST",
            "/api/score/adult-income?version=x",
            Some(SCORING_KEY),
            "application/json",
            good.clone(),
        ),
        (
            "POST",
            "/api/score/adult-income?version=1&alias=staging",
            Some(SCORING_KEY),
            "application/json",
            good.clone(),
        ),
        (
            "POST",
            "/api/score/adult-income",
            None,
            "application/json",
            good.clone(),
        ),
        (
            "POST",
            "/api/score/adult-income",
            Some("not-the-key"),
            "application/json",
            good.clone(),
        ),
        (
            "POST",
            "/api/score/adult-income",
            Some(SCORING_KEY),
            "text/csv",
            good.clone(),
        ),
        (
            "POST",
            "/api/score/adult-income",
            Some(SCORING_KEY),
            "application/json",
            "{\"data\": [".into(),
        ),
        (
            "POST",
            "/api/score/adult-income",
            Some(SCORING_KEY),
            "application/json",
            json!({"data": [{"age": 30}]}).to_string(),
        ),
        (
            "POST",
            "/api/score/adult-income",
            Some(SCORING_KEY),
            "application/json",
            too_large,
        ),
        (
            "POST",
            "/api/score/no-such-model",
            Some(SCORING_KEY),
            "application/json",
            good.clone(),
        ),
        (
            "POST",
            "/api/score/Not_A_Name!",
            Some(SCORING_KEY),
            "application/json",
            good.clone(),
        ),
        (
            "POST",
            "/api/score/adult%2Dincome",
            Some(SCORING_KEY),
            "application/json",
            good.clone(),
        ),
        (
            "POST",
            "/api/score/adult-income/",
            Some(SCORING_KEY),
            "application/json",
            good.clone(),
        ),
        (
            "GET",
            "/api/score/adult-income",
            Some(SCORING_KEY),
            "application/json",
            String::new(),
        ),
    ];
    let mut statuses = Vec::new();
    for (method, path, key, content_type, body) in cases {
        let request = || {
            let mut r = Request::builder()
                .method(method)
                .uri(path)
                .header("content-type", content_type)
                .header(
                    "x-azure-functions-invocationid",
                    "7d0a7c4e-0000-4000-8000-000000000001",
                );
            if let Some(key) = key {
                r = r.header("x-functions-key", key);
            }
            r.body(Body::from(body.clone())).unwrap()
        };
        let mut answers = Vec::new();
        for response in [
            sluice::host::startup::app(state.clone())
                .oneshot(request())
                .await
                .unwrap(),
            sluice::host::startup::router(state.clone())
                .oneshot(request())
                .await
                .unwrap(),
        ] {
            let status = response.status().as_u16();
            let headers: Vec<_> = ["allow", "connection", "content-type", "x-request-id"]
                .iter()
                .map(|h| response.headers().get(*h).cloned())
                .collect();
            let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap();
            answers.push((status, headers, body));
        }
        assert_eq!(
            answers[0], answers[1],
            "{method} {path} ({key:?}, {content_type})"
        );
        statuses.push(answers[0].0);
    }
    // The cases reach every answer they are meant to.
    assert_eq!(
        statuses,
        [
            200, 200, 404, 400, 400, 401, 401, 415, 400, 400, 413, 404, 404, 200, 404, 405
        ]
    );
}

#[tokio::test]
async fn scoring_serves_production_and_agrees_with_onnx_runtime_in_either_form() {
    let app = adult_in_production().await;
    let rows = [0usize, 1, 2, 3, 5, 8, 13, 21];
    let (records, table) = records(&app, &rows);
    let (status, by_records) = app
        .score("/api/score/adult-income", &json!({"data": records}))
        .await;
    assert_eq!(status, 200, "{by_records}");
    assert_eq!(by_records["model"], "adult-income");
    assert_eq!(by_records["version"], 1);
    assert_eq!(by_records["release"], "production.1");
    assert!(by_records["request_id"].as_str().unwrap().len() >= 32);

    // Columns in another order, same rows.
    let mut names: Vec<String> = records[0].as_object().unwrap().keys().cloned().collect();
    names.reverse();
    let data: Vec<Value> = records
        .iter()
        .map(|r| Value::Array(names.iter().map(|n| r[n].clone()).collect()))
        .collect();
    let (status, by_columns) = app
        .score(
            "/api/score/adult-income",
            &json!({"columns": names, "data": data}),
        )
        .await;
    assert_eq!(status, 200, "{by_columns}");
    assert_eq!(by_records["predictions"], by_columns["predictions"]);

    // ONNX Runtime directly, on the same rows.
    let registry = Registry::new(app.store.clone());
    let model = ModelName::parse("adult-income").unwrap();
    let v1 = registry.version(&model, 1).await.unwrap();
    let session = ModelSession::new(
        sluice_tests::onnxruntime(),
        &registry.model_bytes(&model, 1).await.unwrap(),
        v1.signature,
    )
    .unwrap();
    let direct = session.predict(&table).unwrap();
    for (r, p) in direct.probabilities.iter().enumerate() {
        let served = &by_records["predictions"][r];
        let positive = served["probabilities"][">50K"].as_f64().unwrap();
        assert!(
            (positive - p[1]).abs() < 1e-12,
            "row {r}: {positive} vs {}",
            p[1]
        );
        assert_eq!(served["label"], if p[1] >= 0.5 { ">50K" } else { "<=50K" });
    }

    let (_, pinned) = app
        .score(
            "/api/score/adult-income?version=1",
            &json!({"data": records}),
        )
        .await;
    assert_eq!(
        (pinned["version"].as_u64(), pinned["release"].is_null()),
        (Some(1), true),
        "{pinned}"
    );
    let (_, staged) = app
        .score(
            "/api/score/adult-income?alias=staging",
            &json!({"data": records}),
        )
        .await;
    assert_eq!(staged["release"], "staging.1");

    // Forwarded by the host, a request is named by the host's invocation id.
    let forwarded: Value = app
        .client
        .post(format!("{}/api/score/adult-income", app.base))
        .header("x-functions-key", SCORING_KEY)
        .header(
            "X-Azure-Functions-InvocationId",
            "83a33220-a921-460a-bec0-b3f043dcf1ff",
        )
        .json(&json!({"data": records}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        forwarded["request_id"],
        "83a33220-a921-460a-bec0-b3f043dcf1ff"
    );

    // Health lists what production serves, without a key.
    let health: Value = app
        .client
        .get(format!("{}/api/health", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["onnxruntime"], true);
    assert_eq!(
        health["production_models"],
        json!([{"model": "adult-income", "version": 1, "release": "production.1"}])
    );
}

/// The Adult model in production as a batcher with one session, the given rows of
/// adult.test, and ONNX Runtime's own predictions for them.
async fn one_session_batcher(rows: &[usize]) -> (Table, Predictions, Arc<Batcher>) {
    let app = adult_in_production().await;
    let (_, table) = records(&app, rows);
    let registry = Registry::new(app.store.clone());
    let model = ModelName::parse("adult-income").unwrap();
    let v1 = registry.version(&model, 1).await.unwrap();
    let onnx = registry.model_bytes(&model, 1).await.unwrap();
    let direct = ModelSession::new(sluice_tests::onnxruntime(), &onnx, v1.signature.clone())
        .unwrap()
        .predict(&table)
        .unwrap();
    let batcher = Batcher::new(sluice_tests::onnxruntime(), &onnx, v1.signature, 1).unwrap();
    (table, direct, Arc::new(batcher))
}

/// Requests that arrive while the sessions are busy are scored together; each still
/// gets exactly its own rows' answers.
#[tokio::test]
async fn requests_batched_together_each_get_their_own_answers() {
    let rows: Vec<usize> = (0..200).collect();
    // One session, so requests queue behind the one running.
    let (table, direct, batcher) = one_session_batcher(&rows).await;
    // Requests of 1 to 3 rows, cut from the 200 in order.
    let mut requests = Vec::new();
    let mut start = 0;
    while start < rows.len() {
        let n = (start % 3 + 1).min(rows.len() - start);
        requests.push((start, (start..start + n).collect::<Vec<_>>()));
        start += n;
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (first, indices) in requests.clone() {
        let (batcher, part) = (batcher.clone(), table.take(&indices));
        tasks.spawn(async move { (first, batcher.predict(part).await) });
    }
    let mut answered = 0;
    while let Some(done) = tasks.join_next().await {
        let (first, (returned, predicted)) = done.unwrap();
        let predicted = predicted.unwrap();
        assert_eq!(returned.rows(), predicted.labels.len());
        for (i, p) in predicted.probabilities.iter().enumerate() {
            let want = &direct.probabilities[first + i];
            assert!(
                (p[1] - want[1]).abs() < 1e-12,
                "row {}: {} vs {}",
                first + i,
                p[1],
                want[1]
            );
            assert_eq!(predicted.labels[i], direct.labels[first + i]);
        }
        answered += 1;
    }
    assert_eq!(answered, requests.len());
    assert!(
        batcher.runs() < requests.len() as u64,
        "{} runs for {} requests: nothing was batched",
        batcher.runs(),
        requests.len()
    );
}

/// A request too large to batch runs on its own off the runtime's thread; one dropped
/// while it runs still gives its session back.
#[tokio::test]
async fn large_and_abandoned_requests_keep_the_sessions() {
    let rows: Vec<usize> = (0..200).collect();
    let (table, direct, batcher) = one_session_batcher(&rows).await;
    let (_, large) = batcher.predict(table.clone()).await;
    assert_eq!(large.unwrap(), direct, "200 rows in one run");
    // Abandon large requests at once and mid-run; the one session must come back.
    for wait_us in [0u64, 200, 1000] {
        let (batcher, table) = (batcher.clone(), table.clone());
        let abandoned = tokio::spawn(async move { batcher.predict(table).await });
        tokio::time::sleep(std::time::Duration::from_micros(wait_us)).await;
        abandoned.abort();
    }
    let (_, one) = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        batcher.predict(table.take(&[7])),
    )
    .await
    .expect("the session came back");
    assert_eq!(one.unwrap().labels, [direct.labels[7]]);
}

#[tokio::test]
async fn scoring_errors_say_what_and_where() {
    let app = adult_in_production().await;
    let (records, _) = records(&app, &[0]);
    let row = records[0].clone();
    let with = |key: &str, value: Value| {
        let mut r = row.clone();
        r[key] = value;
        json!({"data": [row.clone(), r]})
    };
    let mut missing = row.clone();
    missing.as_object_mut().unwrap().remove("age");
    let cases = [
        (
            json!({"data": [row.clone(), missing]}),
            400,
            Some("data[1].age"),
            "missing",
        ),
        (
            with("age", json!("forty")),
            400,
            Some("data[1].age"),
            "must be a number",
        ),
        (
            with("age", json!(39.5)),
            400,
            Some("data[1].age"),
            "integer",
        ),
        (
            with("workclass", json!("Astronaut")),
            400,
            Some("data[1].workclass"),
            "unknown category",
        ),
        (
            with("sex", json!(1)),
            400,
            Some("data[1].sex"),
            "must be a string",
        ),
        (json!({"rows": []}), 400, Some("body"), "`data`"),
        (
            json!({"data": vec![row.clone(); 10_001]}),
            413,
            Some("data"),
            "10000",
        ),
    ];
    for (body, status, field, message) in cases {
        let (got, answer) = app.score("/api/score/adult-income", &body).await;
        assert_eq!(got, status, "{answer}");
        assert_eq!(answer["error"]["field"].as_str(), field, "{answer}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains(message),
            "{answer}"
        );
    }
    let url = format!("{}/api/score/adult-income", app.base);
    let send = |request: reqwest::RequestBuilder| async move {
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let allow = response
            .headers()
            .get("allow")
            .map(|v| v.to_str().unwrap().to_owned());
        (
            status,
            allow,
            response.json::<Value>().await.unwrap_or(Value::Null),
        )
    };
    let body = json!({"data": [row.clone()]}).to_string();
    let keyed = |r: reqwest::RequestBuilder| r.header("x-functions-key", SCORING_KEY);
    let (s, _, b) = send(
        keyed(app.client.post(&url))
            .header("content-type", "text/csv")
            .body("age\n39"),
    )
    .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (415, Some("unsupported_media_type")),
        "{b}"
    );
    let (s, allow, b) = send(keyed(app.client.get(&url))).await;
    assert_eq!((s, allow.as_deref()), (405, Some("POST")), "{b}");
    let (s, _, b) = send(
        app.client
            .post(&url)
            .header("content-type", "application/json")
            .body(body.clone()),
    )
    .await;
    assert_eq!(s, 401, "{b}");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("missing key"),
        "{b}"
    );
    let (s, _, b) = send(
        app.client
            .post(&url)
            .header("authorization", "Token abc")
            .header("content-type", "application/json")
            .body(body.clone()),
    )
    .await;
    assert!(
        s == 401
            && b["error"]["message"]
                .as_str()
                .unwrap()
                .contains("malformed"),
        "{b}"
    );
    let (s, _, _) = send(
        app.client
            .post(&url)
            .header("x-functions-key", ADMIN_KEY)
            .header("content-type", "application/json")
            .body(body.clone()),
    )
    .await;
    assert_eq!(s, 401, "the admin key does not score");
    let (s, _, b) = send(
        app.client
            .post(&url)
            .bearer_auth(SCORING_KEY)
            .header("content-type", "application/json")
            .body(body.clone()),
    )
    .await;
    assert_eq!(s, 200, "Bearer works too: {b}");
    let (s, _, b) = send(
        keyed(app.client.post(&url))
            .header("content-type", "application/json")
            .body("{not json"),
    )
    .await;
    assert_eq!((s, b["error"]["field"].as_str()), (400, Some("body")));
    // Just over the limit: the server stops reading and closes, and a client still
    // writing megabytes past the limit would see its write fail before the answer.
    let one = row.to_string();
    let rows = sluice::host::score::MAX_BODY_BYTES / (one.len() + 1) + 8;
    let big = format!("{{\"data\": [{}]}}", vec![one; rows].join(","));
    let response = keyed(app.client.post(&url))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response
            .headers()
            .get("connection")
            .map(|v| v.to_str().unwrap()),
        Some("close"),
        "the unread rest of the body ends the connection"
    );
    let (s, b) = (
        response.status().as_u16(),
        response.json::<Value>().await.unwrap(),
    );
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (413, Some("payload_too_large")),
        "{b}"
    );
    for path in [
        "/api/score/no-such-model",
        "/api/score/adult-income?alias=canary",
        "/api/score/adult-income?version=9",
        "/api/score/Bad%20Name",
    ] {
        let (s, b) = app.score(path, &json!({"data": [row.clone()]})).await;
        assert_eq!(
            (s, b["error"]["code"].as_str()),
            (404, Some("not_found")),
            "{path}: {b}"
        );
    }
    let (s, b) = app
        .score(
            "/api/score/adult-income?version=1&alias=staging",
            &json!({"data": [row.clone()]}),
        )
        .await;
    assert_eq!(
        (s, b["error"]["field"].as_str()),
        (400, Some("query")),
        "{b}"
    );
}

#[tokio::test]
async fn production_moves_under_load_without_a_failed_or_mixed_request() {
    let app = Arc::new(adult_in_production().await);
    // A second version to move between (a different seed), promoted by hand.
    app.retrain(json!({"model": "adult-income", "config_overrides": {"seed": 7}}))
        .await;
    let registry = Registry::new(app.store.clone());
    let model = ModelName::parse("adult-income").unwrap();
    assert_eq!(registry.versions(&model).await.unwrap(), [1, 2]);

    let (records, _) = records(&app, &[0, 1, 2, 3]);
    let body = json!({"data": records});
    // The gate may already have promoted v2 (it can beat v1): start from what is there.
    let initial = registry
        .resolve(&model, "production")
        .await
        .unwrap()
        .version;
    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(std::sync::Mutex::new(Vec::<(Instant, u64)>::new()));
    let failures = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (app, body, stop, served, failures) = (
                app.clone(),
                body.clone(),
                stop.clone(),
                served.clone(),
                failures.clone(),
            );
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let (status, answer) = app.score("/api/score/adult-income", &body).await;
                    if status == 200 {
                        served
                            .lock()
                            .unwrap()
                            .push((Instant::now(), answer["version"].as_u64().unwrap()));
                    } else {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    let mut switches = Vec::new();
    for (round, version) in [2u32, 1, 2, 1, 2].into_iter().enumerate() {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let reason = format!("round {round}");
        let change = Change {
            actor: "load-test",
            reason: &reason,
            correlation_id: "load-test",
        };
        Releases::new(app.store.clone())
            .release(&model, PRODUCTION, version, Value::Null, change)
            .await
            .unwrap();
        switches.push((Instant::now(), version));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    assert_eq!(
        failures.load(Ordering::Relaxed),
        0,
        "no request failed during the switches"
    );
    let served = served.lock().unwrap().clone();
    assert!(
        served.len() > 50,
        "the clients kept scoring ({} requests)",
        served.len()
    );
    // Each response came from a version that was production at some point in the
    // second before it finished (aliases are re-read at most every 500 ms).
    let mut timeline = vec![(started, initial)];
    timeline.extend(switches.iter().copied());
    for (at, version) in &served {
        let window_start = at.checked_sub(Duration::from_secs(1)).unwrap_or(started);
        let allowed: Vec<u32> = timeline
            .iter()
            .enumerate()
            .filter(|(i, (from, _))| {
                let until = timeline.get(i + 1).map_or(*at, |(t, _)| *t);
                *from <= *at && until >= window_start
            })
            .map(|(_, (_, v))| *v)
            .collect();
        assert!(
            allowed.iter().any(|v| u64::from(*v) == *version),
            "a response from v{version}; production in its last second: {allowed:?}"
        );
    }
    let last_switch = switches.last().unwrap().0;
    let settled: Vec<_> = served
        .iter()
        .filter(|(t, _)| t.duration_since(last_switch) > Duration::from_secs(1))
        .collect();
    assert!(
        !settled.is_empty() && settled.iter().all(|(_, v)| *v == 2),
        "production v2 serves within a second"
    );
}

#[tokio::test]
async fn sluice_score_scores_a_file_like_the_function() {
    let app = adult_in_production().await;
    let (records, _) = records(&app, &[0, 1, 2, 3, 4]);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("rows.jsonl");
    let lines: Vec<String> = records.iter().map(Value::to_string).collect();
    std::fs::write(&input, lines.join("\n")).unwrap();
    let output = std::process::Command::new(sluice_tests::sluice_bin())
        .arg("--root")
        .arg(app.root())
        .args([
            "score",
            "--model",
            "adult-income",
            "--batch",
            "2",
            "--input",
        ])
        .arg(&input)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("scored 5 rows with adult-income@1"),
        "{stderr}"
    );
    let (_, served) = app
        .score("/api/score/adult-income", &json!({"data": records}))
        .await;
    let batch: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(batch.len(), 5);
    for (b, s) in batch.iter().zip(served["predictions"].as_array().unwrap()) {
        assert_eq!(b["label"], s["label"]);
        assert_eq!(b["probabilities"], s["probabilities"]);
    }
}

#[tokio::test]
async fn a_sampled_request_lands_in_the_prediction_log_as_parquet() {
    let app = adult_in_production().await;
    let mut logged = config();
    logged["prediction_log"] = json!({"sample": 1.0});
    put_config(&app, &logged).await;
    let scorer = sluice_shared::scoring::Scorer::new(
        Registry::new(app.store.clone()),
        sluice_tests::onnxruntime(),
        1,
        100,
    );
    let model = ModelName::parse("adult-income").unwrap();
    let (records, _) = records(&app, &[0, 1, 2]);
    let target = sluice_shared::scoring::Target::Alias("production".into());
    let first = scorer
        .score(
            &model,
            &target,
            json!({"data": records}).to_string().as_bytes(),
            "req-1",
        )
        .await
        .unwrap();
    scorer
        .score(
            &model,
            &target,
            json!({"data": [records[0].clone()]}).to_string().as_bytes(),
            "req-2",
        )
        .await
        .unwrap();
    let keys = scorer.flush_log().await.unwrap();
    assert_eq!(keys.len(), 1);
    assert!(
        keys[0].as_str().starts_with("predictions/adult-income/"),
        "{}",
        keys[0]
    );
    let file = std::fs::File::open(app.root().join(keys[0].as_str())).unwrap();
    let frame = log_batch(file);
    assert_eq!(frame.0, 4, "3 + 1 rows");
    assert_eq!(frame.1, ["req-1", "req-1", "req-1", "req-2"]);
    let p = first.predictions[1].probability(">50K").unwrap();
    assert!((frame.2[1] - p).abs() < 1e-15);
    assert!(
        scorer.flush_log().await.unwrap().is_empty(),
        "nothing left to write"
    );
}

/// Rows, request ids and the positive class's probabilities of a prediction-log batch.
fn log_batch(file: std::fs::File) -> (usize, Vec<String>, Vec<f64>) {
    let table = sluice_shared::model::Table::read_parquet_file(
        file,
        &[
            (
                "request_id".into(),
                sluice_shared::dataset::contract::ColumnType::String,
            ),
            (
                "p_>50K".into(),
                sluice_shared::dataset::contract::ColumnType::Float,
            ),
        ],
    )
    .unwrap();
    let Values::Text(ids) = &table.columns[0].1 else {
        panic!()
    };
    let Values::Numbers(ps) = &table.columns[1].1 else {
        panic!()
    };
    (
        table.rows(),
        ids.iter().map(|i| i.clone().unwrap()).collect(),
        ps.clone(),
    )
}
