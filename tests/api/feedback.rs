//! Ground truth: feedback by request id through the API and the landing folder, live
//! metrics from it, the guard that rolls production back, and bad feedback refused with
//! the place named or quarantined with a report.

use serde_json::{Value, json};
use sluice_shared::audit::{Action, AuditLog};
use sluice_shared::dataset::contract::ColumnType;
use sluice_shared::model::{Table, Values};
use sluice_shared::registry::ModelName;
use sluice_shared::scoring::{Scored, Target};
use sluice_shared::storage::ObjectKey;

use crate::helpers::{TestApp, adult_in_production, put_config, records, scorer};

/// adult.test's true incomes for `rows` (as the eval dataset stores them).
fn incomes(app: &TestApp, rows: &[usize]) -> Vec<String> {
    let table = Table::read_parquet(
        &app.root().join("datasets/adult-eval/v1/data.parquet"),
        &[("income".to_owned(), ColumnType::String)],
    )
    .unwrap()
    .take(rows);
    match &table.columns[0].1 {
        Values::Text(t) => t.iter().map(|v| v.clone().unwrap()).collect(),
        Values::Numbers(_) => unreachable!("income is text"),
    }
}

/// Scores `records` against production, 100 rows a request (`<tag>-<n>`), and writes
/// the prediction log; returns each request as scored.
async fn score(app: &TestApp, records: &[Value], tag: &str) -> Vec<Scored> {
    let scorer = scorer(app);
    let model = ModelName::parse("adult-income").unwrap();
    let mut scored = Vec::new();
    for (i, chunk) in records.chunks(100).enumerate() {
        let body = json!({ "data": chunk }).to_string();
        let target = Target::Alias("production".into());
        scored.push(
            scorer
                .score(&model, &target, body.as_bytes(), &format!("{tag}-{i}"))
                .await
                .unwrap(),
        );
    }
    assert!(!scorer.flush_log().await.unwrap().is_empty());
    scored
}

/// Labels for scored rows `from..to` (100 rows a request): the truth, or its opposite.
fn labels(truth: &[String], from: usize, to: usize, tag: &str, flip: bool) -> Vec<Value> {
    (from..to)
        .map(|i| {
            let mut label = truth[i].as_str();
            if flip {
                label = if label == ">50K" { "<=50K" } else { ">50K" };
            }
            json!({"request_id": format!("{tag}-{}", i / 100), "row": i % 100, "label": label})
        })
        .collect()
}

async fn post_feedback(app: &TestApp, body: &Value) -> (u16, Value) {
    app.api(
        reqwest::Method::POST,
        "/api/feedback/adult-income",
        Some(body.clone()),
    )
    .await
}

async fn monitoring(app: &TestApp) -> Value {
    let (status, body) = app
        .api(
            reqwest::Method::GET,
            "/api/models/adult-income/monitoring",
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn production(app: &TestApp) -> u32 {
    sluice_shared::registry::Registry::new(app.store.clone())
        .resolve(&ModelName::parse("adult-income").unwrap(), "production")
        .await
        .unwrap()
        .version
}

async fn records_of(app: &TestApp, action: Action) -> Vec<sluice_shared::audit::Record> {
    AuditLog::new(app.store.clone())
        .records()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.entry.action == action)
        .collect()
}

/// Feedback for scored requests, through the API and as a file, gives live metrics per
/// version equal to a direct count; a repeated batch, a repeated label and an unknown id
/// are counted, not errors. When production's live accuracy breaks the guard's floor over
/// enough labels, `model.degraded` and `model.rolled_back` are published once, production
/// returns to the previous release through the audited rollback with the report as its
/// reason, and later passes do nothing more.
#[tokio::test]
async fn feedback_gives_live_metrics_and_a_breach_rolls_production_back() {
    let app = adult_in_production().await;
    // A second version in production, so there is a release to return to.
    let mut config = crate::helpers::config();
    config["promotion"]["min_improvement"] = json!(-0.02);
    config["promotion"]["max_regression"] = json!(0.02);
    put_config(&app, &config).await;
    let done = app
        .retrain(json!({"model": "adult-income", "config_overrides": {"seed": 7}}))
        .await;
    assert_eq!(
        done["gate"]["releases"],
        json!(["staging.2", "production.2"]),
        "{done}"
    );
    config["prediction_log"] = json!({"sample": 1.0});
    config["monitoring"] = json!({
        "guard": {"metric": "accuracy", "at_least": 0.8, "min_labelled": 500, "rollback": "auto"}
    });
    put_config(&app, &config).await;

    let rows: Vec<usize> = (0..600).collect();
    let (records, _) = records(&app, &rows);
    let truth = incomes(&app, &rows);
    let scored = score(&app, &records, "f").await;
    assert!(scored.iter().all(|s| s.version == 2));
    let predicted_positive: Vec<bool> = scored
        .iter()
        .flat_map(|s| &s.predictions)
        .map(|p| p.probability(">50K").unwrap() >= 0.5)
        .collect();
    let correct = |range: std::ops::Range<usize>| {
        range
            .filter(|&i| predicted_positive[i] == (truth[i] == ">50K"))
            .count()
    };

    // 300 honest labels, one repeated in the batch, and one for a request never scored.
    let mut first = labels(&truth, 0, 300, "f", false);
    first.push(first[0].clone());
    first.push(json!({"request_id": "never-scored", "label": ">50K"}));
    let (status, accepted) = post_feedback(&app, &json!(first)).await;
    assert_eq!(status, 202, "{accepted}");
    assert_eq!(
        (accepted["labels"].as_u64(), accepted["repeated"].as_u64()),
        (Some(301), Some(1))
    );
    assert_eq!(accepted["duplicate"], false);
    // The same batch again (a client's retry) is the same batch.
    let (status, again) = post_feedback(&app, &json!(first)).await;
    assert_eq!(
        (status, &again["batch"], &again["duplicate"]),
        (202, &accepted["batch"], &json!(true))
    );

    let pass = app.timer("MonitorTimer").await;
    let checked = &pass["ReturnValue"]["ground_truth"][0];
    let batch = &checked["feedback"][0];
    assert_eq!(batch["matched"], 300, "{pass}");
    // Not in the log yet, so it waits (the log's buffer may not be written yet).
    assert_eq!(
        (batch["pending"].as_u64(), batch["unknown"].as_u64()),
        (Some(1), Some(0)),
        "{pass}"
    );
    let live = &checked["live"];
    assert_eq!(live["versions"][0]["model_version"], 2);
    assert_eq!(live["versions"][0]["labelled"], 300);
    let accuracy = live["versions"][0]["metrics"]["accuracy"].as_f64().unwrap();
    assert_eq!(accuracy, correct(0..300) as f64 / 300.0);
    assert!(accuracy > 0.8, "{accuracy}");
    assert_eq!(
        live["guard"]["breached"], false,
        "too few labels yet: {live}"
    );
    assert_eq!(live["guard"]["labelled"], 300);
    assert!(
        app.events("model.degraded").await.is_empty(),
        "nothing breached yet"
    );

    // The other 300 as a file, every label wrong: live accuracy falls below the floor.
    let flipped = labels(&truth, 300, 600, "f", true);
    let mut csv = String::from("request_id,row,label\n");
    for l in &flipped {
        csv.push_str(&format!(
            "{},{},{}\n",
            l["request_id"].as_str().unwrap(),
            l["row"],
            l["label"].as_str().unwrap()
        ));
    }
    let key = ObjectKey::parse("landing/feedback/adult-income/late-labels.csv").unwrap();
    app.store
        .put(
            &key,
            csv.into_bytes().into(),
            sluice_shared::storage::PutMode::Create,
        )
        .await
        .unwrap();
    let event = app.blob_created(&key).await;
    for delivery in [false, true] {
        let (status, body) = app.invoke("DatasetIngest", &event).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["ReturnValue"]["status"], "accepted", "{body}");
        assert_eq!(body["ReturnValue"]["labels"], 300);
        assert_eq!(
            body["ReturnValue"]["duplicate"], delivery,
            "a redelivery is the same batch"
        );
    }
    // A second opinion on a row already labelled counts as already labelled.
    let (status, _) = post_feedback(&app, &json!([{"request_id": "f-0", "row": 0, "label": ">50K"}, {"request_id": "not-yet-scored", "label": "<=50K"}])).await;
    assert_eq!(status, 202);

    let mut events = Vec::new();
    let mut passes = Vec::new();
    for _ in 0..3 {
        let pass = app.timer("MonitorTimer").await;
        events.extend(app.events("model.").await);
        passes.push(pass);
    }
    let checked = &passes[0]["ReturnValue"]["ground_truth"][0];
    let guard = &checked["live"]["guard"];
    let expected = (correct(0..300) + 300 - correct(300..600)) as f64 / 600.0;
    assert_eq!(guard["labelled"], 600, "{checked}");
    assert_eq!(guard["value"].as_f64().unwrap(), expected);
    assert_eq!(guard["breached"], true);
    assert_eq!(
        checked["rolled_back"]["rolls_back"], "production.2",
        "{checked}"
    );
    assert_eq!(production(&app).await, 1);
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["model.degraded", "model.rolled_back"], "{events:?}");
    assert_eq!(events[0]["id"], "model.degraded:adult-income:production.2");
    assert_eq!(events[0]["subject"], "models/adult-income/versions/2");
    assert_eq!(events[0]["data"]["bound"], "accuracy >= 0.8");
    assert_eq!(events[1]["data"]["model_version"], 1);
    assert_eq!(events[1]["data"]["actor"], "sluice:monitor");

    // Audited: the breach once, and the rollback as a person's would be, with the
    // report as its reason.
    let degraded = records_of(&app, Action::Degraded).await;
    assert_eq!(degraded.len(), 1);
    assert_eq!(degraded[0].entry.subject, "model:adult-income@2");
    let rollbacks = records_of(&app, Action::RolledBack).await;
    assert_eq!(rollbacks.len(), 1);
    assert_eq!(rollbacks[0].entry.actor, "sluice:monitor");
    assert!(
        rollbacks[0]
            .entry
            .reason
            .contains("monitoring/adult-income/production.2/degraded.json"),
        "{}",
        rollbacks[0].entry.reason
    );
    assert_eq!(
        records_of(&app, Action::FeedbackReceived).await.len(),
        3,
        "a repeat is not a new batch"
    );
    AuditLog::new(app.store.clone()).verify().await.unwrap();

    // What each batch came to, and the live metrics, over HTTP.
    let seen = monitoring(&app).await;
    let feedback = seen["feedback"].as_array().unwrap();
    assert_eq!(feedback.len(), 3, "{seen}");
    let second_opinion = feedback.iter().find(|b| b["labels"] == 2).unwrap();
    assert_eq!(
        (
            second_opinion["already_labelled"].as_u64(),
            second_opinion["pending"].as_u64()
        ),
        (Some(1), Some(1))
    );
    let file = feedback
        .iter()
        .find(|b| b["source"]["upload"].is_object())
        .unwrap();
    assert_eq!(file["matched"], 300);
    let v2 = &seen["live"]["versions"][0];
    assert_eq!(
        (v2["model_version"].as_u64(), v2["labelled"].as_u64()),
        (Some(2), Some(600))
    );
    assert_eq!(
        seen["live"]["guard"]["release"], "production.3",
        "the guard now watches the rollback's release: {seen}"
    );

    // An hour on, ids still not in the log are unknown, and named.
    let later = chrono::Utc::now() + chrono::Duration::hours(2);
    let passes = sluice_shared::monitoring::Monitor::new(app.store.clone())
        .ground_truth(later)
        .await
        .unwrap();
    let mut unknown: Vec<String> = passes[0]
        .feedback
        .iter()
        .flat_map(|b| b.unknown_examples.clone())
        .collect();
    unknown.sort();
    assert_eq!(unknown, ["never-scored", "not-yet-scored"]);
    assert!(passes[0].feedback.iter().all(|b| b.pending == 0));
}

/// Bad feedback gets a 4xx naming what and where, and none of it is kept; a bad file is
/// quarantined with a report naming each line, and stays where it was dropped.
#[tokio::test]
async fn bad_feedback_is_refused_with_its_place_named_or_quarantined() {
    let app = adult_in_production().await;
    let cases = [
        (
            "/api/feedback/no-such-model",
            json!([{"request_id": "a", "label": ">50K"}]),
            404,
            None,
        ),
        (
            "/api/feedback/adult-income",
            json!({"request_id": "a", "label": ">50K"}),
            400,
            Some("body"),
        ),
        (
            "/api/feedback/adult-income",
            json!([{"request_id": "a", "label": ">50K"}, {"request_id": "b", "label": "rich"}]),
            400,
            Some("[1].label"),
        ),
        (
            "/api/feedback/adult-income",
            json!([{"request_id": "a", "label": {"class": ">50K"}}]),
            400,
            Some("[0].label"),
        ),
        (
            "/api/feedback/adult-income",
            json!([{"request_id": "a", "value": 1.0}]),
            400,
            Some("[0].value"),
        ),
        (
            "/api/feedback/adult-income",
            json!([{"request_id": "a", "row": "first", "label": ">50K"}]),
            400,
            Some("[0].row"),
        ),
        (
            "/api/feedback/adult-income",
            json!([{"id": "a", "label": ">50K"}]),
            400,
            Some("[0]"),
        ),
    ];
    for (path, body, status, field) in cases {
        let (got, answer) = app
            .api(reqwest::Method::POST, path, Some(body.clone()))
            .await;
        assert_eq!(got, status, "{body}: {answer}");
        assert_eq!(answer["error"]["field"].as_str(), field, "{answer}");
        assert!(!answer["error"]["message"].as_str().unwrap().is_empty());
    }
    let many: Vec<Value> = (0..10_001)
        .map(|i| json!({"request_id": format!("r{i}"), "label": ">50K"}))
        .collect();
    let (status, answer) = post_feedback(&app, &json!(many)).await;
    assert_eq!(
        (status, answer["error"]["field"].as_str()),
        (413, Some("body")),
        "{answer}"
    );
    // Just over the limit, as score.rs sends it: a client still writing megabytes past
    // the limit could see its write fail (the server stops reading) before the answer.
    let over = sluice::host::monitoring::MAX_FEEDBACK_BYTES + 1;
    let huge = json!([{"request_id": "x".repeat(over), "label": ">50K"}]);
    let (status, answer) = post_feedback(&app, &huge).await;
    assert_eq!(
        (status, answer["error"]["field"].as_str()),
        (413, Some("body")),
        "{answer}"
    );
    let anonymous = app
        .client
        .post(format!("{}/api/feedback/adult-income", app.base))
        .json(&json!([]))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let kept = app.store.list("feedback/").await.unwrap();
    assert!(kept.is_empty(), "nothing refused is kept: {kept:?}");

    // Files: a bad line, and a file for a model that does not exist.
    let bad = ObjectKey::parse("landing/feedback/adult-income/labels.csv").unwrap();
    let text = "request_id,row,label\nr1,0,>50K\nr2,zero,>50K\nr3,0,rich\n";
    let unknown = ObjectKey::parse("landing/feedback/no-such-model/labels.jsonl").unwrap();
    for (key, bytes) in [
        (&bad, text.as_bytes().to_vec()),
        (
            &unknown,
            b"{\"request_id\":\"a\",\"label\":\"x\"}\n".to_vec(),
        ),
    ] {
        app.store
            .put(key, bytes.into(), sluice_shared::storage::PutMode::Create)
            .await
            .unwrap();
    }
    let (status, body) = app
        .invoke("DatasetIngest", &app.blob_created(&bad).await)
        .await;
    assert_eq!(status, 200, "{body}");
    let outcome = &body["ReturnValue"];
    assert_eq!(outcome["status"], "quarantined", "{body}");
    let problems: Vec<(u64, &str)> = outcome["report"]["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["line"].as_u64().unwrap(), p["field"].as_str().unwrap()))
        .collect();
    assert_eq!(problems, [(3, "row"), (4, "label")]);
    let report = outcome["key"].as_str().unwrap();
    assert!(
        app.store
            .head(&ObjectKey::parse(report).unwrap())
            .await
            .is_ok()
    );
    assert!(
        app.store.head(&bad).await.is_ok(),
        "the file stays where it was dropped"
    );
    let (_, body) = app
        .invoke("DatasetIngest", &app.blob_created(&unknown).await)
        .await;
    assert_eq!(body["ReturnValue"]["status"], "quarantined", "{body}");
    assert_eq!(
        body["ReturnValue"]["report"]["problems"][0]["field"],
        "model"
    );
    assert_eq!(records_of(&app, Action::FeedbackRejected).await.len(), 2);
    // A feedback file is never taken for a dataset.
    assert!(
        app.store
            .list("datasets/feedback/")
            .await
            .unwrap()
            .is_empty()
    );
}
