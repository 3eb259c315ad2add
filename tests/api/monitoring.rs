//! Watching models after release: the drift statistics against SciPy, the retrain policy
//! that retrains only when a new dataset version drifted from the data production was
//! trained on, and the monitor judging production's logged traffic.

use serde_json::{Value, json};
use sluice_shared::monitoring::stats;
use sluice_shared::registry::ModelName;
use sluice_shared::scoring::{Scorer, Target};

use crate::helpers::{
    TestApp, adult_in_production, loop_app_with_eval_data, put_config, records, scorer,
};

/// A deterministic pseudo-random stream (SplitMix64), so the samples are the same on
/// every run without a dependency.
fn uniform(seed: u64) -> impl FnMut() -> f64 {
    let mut state = seed;
    move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn close(ours: f64, theirs: f64) -> bool {
    (ours - theirs).abs() <= 1e-9 * theirs.abs().max(1.0)
}

/// Sluice's Wasserstein and Jensen–Shannon distances equal SciPy's on the same samples
/// (weighted and unweighted, overlapping and apart, categories with empty ones), and the
/// PSI equals a direct NumPy computation, each to 1e-9.
#[test]
fn drift_statistics_agree_with_scipy() {
    let mut next = uniform(7);
    let mut sample = |n: usize, scale: f64, shift: f64| -> Vec<(f64, f64)> {
        (0..n)
            .map(|_| (next() * scale + shift, (next() * 5.0).floor() + 1.0))
            .collect()
    };
    let numeric = [
        (sample(500, 10.0, 0.0), sample(700, 10.0, 0.0)),
        (sample(300, 10.0, 0.0), sample(300, 10.0, 4.0)),
        (sample(50, 1.0, 0.0), sample(80, 1.0, 100.0)),
    ];
    let categorical = [
        (vec![10.0, 20.0, 30.0, 0.0], vec![12.0, 18.0, 25.0, 5.0]),
        (vec![1.0, 0.0, 0.0], vec![0.0, 0.0, 1.0]),
        (vec![250.0, 750.0], vec![500.0, 500.0]),
    ];
    let cases = json!({
        "numeric": numeric.iter().map(|(u, v)| json!({
            "u": u.iter().map(|p| p.0).collect::<Vec<_>>(),
            "uw": u.iter().map(|p| p.1).collect::<Vec<_>>(),
            "v": v.iter().map(|p| p.0).collect::<Vec<_>>(),
            "vw": v.iter().map(|p| p.1).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "categorical": categorical.iter().map(|(p, q)| json!([p, q])).collect::<Vec<_>>(),
    });
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("cases.json");
    std::fs::write(&input, cases.to_string()).unwrap();
    let script = r#"
import json, sys
import numpy as np
from scipy.stats import wasserstein_distance
from scipy.spatial.distance import jensenshannon
cases = json.load(open(sys.argv[1]))
def psi(e, a):
    e = np.maximum(np.asarray(e) / np.sum(e), 1e-4)
    a = np.maximum(np.asarray(a) / np.sum(a), 1e-4)
    return float(np.sum((a - e) * np.log(a / e)))
out = {
    "wasserstein": [wasserstein_distance(c["u"], c["v"]) for c in cases["numeric"]],
    "wasserstein_weighted": [
        wasserstein_distance(c["u"], c["v"], c["uw"], c["vw"]) for c in cases["numeric"]
    ],
    "jensenshannon": [float(jensenshannon(p, q)) for p, q in cases["categorical"]],
    "psi": [psi(p, q) for p, q in cases["categorical"]],
}
print(json.dumps(out))
"#;
    let output = std::process::Command::new(sluice_tests::python_tools().join("python"))
        .arg("-c")
        .arg(script)
        .arg(&input)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let scipy: Value = serde_json::from_slice(&output.stdout).unwrap();

    for (i, (u, v)) in numeric.iter().enumerate() {
        let unweighted = |s: &[(f64, f64)]| s.iter().map(|p| (p.0, 1.0)).collect::<Vec<_>>();
        let ours = stats::wasserstein(&unweighted(u), &unweighted(v)).unwrap();
        let theirs = scipy["wasserstein"][i].as_f64().unwrap();
        assert!(close(ours, theirs), "case {i}: {ours} vs SciPy {theirs}");
        let ours = stats::wasserstein(u, v).unwrap();
        let theirs = scipy["wasserstein_weighted"][i].as_f64().unwrap();
        assert!(
            close(ours, theirs),
            "weighted case {i}: {ours} vs SciPy {theirs}"
        );
    }
    for (i, (p, q)) in categorical.iter().enumerate() {
        let ours = stats::jensen_shannon(p, q).unwrap();
        let theirs = scipy["jensenshannon"][i].as_f64().unwrap();
        assert!(close(ours, theirs), "case {i}: {ours} vs SciPy {theirs}");
        let ours = stats::psi(p, q).unwrap();
        let theirs = scipy["psi"][i].as_f64().unwrap();
        assert!(
            close(ours, theirs),
            "PSI case {i}: {ours} vs NumPy {theirs}"
        );
    }
}

/// Adult's rows with `age` moved by `years` (the first field), every `step`-th row.
fn adult_rows(step: usize, years: i64) -> Vec<u8> {
    let text = std::fs::read_to_string(sluice_tests::adult("adult.data")).unwrap();
    let mut out = String::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()).step_by(step) {
        let (age, rest) = line.split_once(',').unwrap();
        let age: i64 = age.trim().parse().unwrap();
        out.push_str(&format!("{},{rest}\n", age + years));
    }
    out.into_bytes()
}

/// `on: drift` compares each new version with the data production was trained on: a
/// version drawn from the same rows retrains nothing; one whose ages moved by 10 years (still within the contract)
/// retrains, and the run says which column drifted and by how much.
#[tokio::test]
async fn a_drift_policy_retrains_only_when_a_version_drifted_from_production_s_data() {
    let app = loop_app_with_eval_data().await;
    let mut config = crate::helpers::config();
    config["retrain"] = json!({"on": "drift"});
    put_config(&app, &config).await;

    // Each version's dataset.versioned event, delivered as the topic would.
    let deliver = |event: Value, n: u32| json!({"Data": {"message": event}, "Metadata": {"MessageId": format!("\"m-{n}\""), "DeliveryCount": "1"}});
    let ingest = |name: &'static str, bytes: Vec<u8>| {
        let app = &app;
        async move {
            let key = app.upload("adult", name, bytes).await;
            let (status, body) = app
                .invoke("DatasetIngest", &app.blob_created(&key).await)
                .await;
            assert_eq!(status, 200, "{body}");
            app.versioned_event("adult").await
        }
    };

    let event = ingest("adult.data", adult_rows(1, 0)).await;
    let (_, first) = app.invoke("DatasetEvents", &deliver(event, 1)).await;
    let run = first["ReturnValue"]["runs"][0]["run_id"].as_str().unwrap();
    assert!(
        first["ReturnValue"]["runs"][0]["run"]["reason"]
            .as_str()
            .unwrap()
            .contains("no production model yet"),
        "{first}"
    );
    assert_eq!(app.follow(run).await["status"], "succeeded");

    let event = ingest("every-third.data", adult_rows(3, 0)).await;
    assert_eq!(event["data"]["version"], 2, "{event}");
    let (status, same) = app.invoke("DatasetEvents", &deliver(event, 2)).await;
    assert_eq!(status, 200, "{same}");
    assert_eq!(same["ReturnValue"]["runs"], json!([]), "{same}");

    let event = ingest("older.data", adult_rows(2, 10)).await;
    assert_eq!(event["data"]["version"], 3, "{event}");
    let (_, drifted) = app.invoke("DatasetEvents", &deliver(event, 3)).await;
    let runs = drifted["ReturnValue"]["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "{drifted}");
    let reason = runs[0]["run"]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("adult v3 drifted from adult v1 (threshold 0.1): age "),
        "{reason}"
    );
    assert!(!reason.contains(", "), "only age drifted: {reason}");
    assert_eq!(runs[0]["run"]["dataset_version"], 3);
}

/// `records` with `age` moved by `years` and every `workclass` set to `Self-emp-inc`.
fn shifted(records: &[Value], years: i64) -> Vec<Value> {
    records
        .iter()
        .map(|r| {
            let mut r = r.clone();
            if let Some(age) = r["age"].as_i64() {
                r["age"] = json!(age + years);
            }
            r["workclass"] = json!("Self-emp-inc");
            r
        })
        .collect()
}

/// Scores `records` against production in requests of 100 (each logged), then writes
/// the prediction log, as the server does on its flush interval.
async fn traffic(scorer: &Scorer, records: &[Value], tag: &str) {
    let model = ModelName::parse("adult-income").unwrap();
    let target = Target::Alias("production".into());
    for (i, chunk) in records.chunks(100).enumerate() {
        let body = json!({ "data": chunk }).to_string();
        scorer
            .score(&model, &target, body.as_bytes(), &format!("{tag}-{i}"))
            .await
            .unwrap();
    }
    assert!(!scorer.flush_log().await.unwrap().is_empty());
}

/// The batches window `n` of production.1 judged.
fn reports_batches(app: &TestApp, n: u32) -> Value {
    let report = app
        .root()
        .join(format!("monitoring/adult-income/production.1/{n:06}.json"));
    let report: Value = serde_json::from_slice(&std::fs::read(report).unwrap()).unwrap();
    report["batches"].clone()
}

/// The runs the monitor requested.
async fn monitor_runs(app: &TestApp) -> Vec<Value> {
    let (_, runs) = app.api(reqwest::Method::GET, "/api/runs", None).await;
    runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["trigger"] == "monitor")
        .cloned()
        .collect()
}

/// The audit trail's drift decisions.
async fn drift_decisions(app: &TestApp) -> Vec<sluice_shared::audit::Record> {
    sluice_shared::audit::AuditLog::new(app.store.clone())
        .records()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.entry.action == sluice_shared::audit::Action::DriftDetected)
        .collect()
}

/// Production watched end to end: traffic drawn from the training distribution is a
/// window too small to judge, then stable; traffic with `age` and `workclass` shifted
/// drifts in exactly those two inputs, publishes one `model.drift_detected` (a
/// CloudEvent naming the window) and requests one retrain on the newest dataset
/// version, although the monitor runs three times; a webhook receiver on 127.0.0.1 gets
/// the event once, signed, and verifies it; the reports read back over HTTP.
#[tokio::test]
async fn production_drift_is_judged_once_per_window_and_retrains_once() {
    let receiver = crate::helpers::Receiver::start(vec![]).await;
    let secret = "drift-webhook-secret-for-tests";
    let hook = sluice_shared::notify::Webhook::new(
        "drift",
        &receiver.url,
        sluice_shared::notify::webhook::Secret::new(secret),
        vec![ModelName::parse("adult-income").unwrap()],
        vec!["model.drift_detected".into()],
    )
    .unwrap();
    let app = crate::helpers::adult_in_production_notifying(vec![hook]).await;
    let mut watched = crate::helpers::config();
    watched["prediction_log"] = json!({"sample": 1.0});
    watched["retrain"] = json!({"on": "drift"});
    watched["monitoring"] = json!({"min_rows": 1000});
    put_config(&app, &watched).await;
    let key = app
        .upload("adult", "every-second.data", adult_rows(2, 0))
        .await;
    let (status, body) = app
        .invoke("DatasetIngest", &app.blob_created(&key).await)
        .await;
    assert_eq!((status, &body["ReturnValue"]["version"]), (200, &json!(2)));

    let scorer = scorer(&app);
    let rows: Vec<usize> = (0..3000).collect();
    let (records, _) = records(&app, &rows);
    let tick = || app.timer("MonitorTimer");

    // A damaged batch (a write cut off) is left out of the window and named in it.
    let now = chrono::Utc::now();
    let damaged = format!(
        "predictions/adult-income/{}/{}-v1-{}.parquet",
        now.format("%Y-%m-%d"),
        now.format("%H%M%S%.3f"),
        "0".repeat(32)
    );
    std::fs::create_dir_all(app.root().join(&damaged).parent().unwrap()).unwrap();
    std::fs::write(app.root().join(&damaged), b"PAR1 cut off").unwrap();
    traffic(&scorer, &records[..500], "a").await;
    let first = tick().await;
    let window = &first["ReturnValue"]["windows"][0]["report"];
    assert_eq!(window["verdict"], "too_few_rows", "{first}");
    assert_eq!(window["unreadable"], json!([damaged]), "{first}");
    assert_eq!(
        (window["rows"].as_u64(), window["window"].as_u64()),
        (Some(500), Some(1))
    );

    traffic(&scorer, &records[500..1500], "b").await;
    let second = tick().await;
    let window = &second["ReturnValue"]["windows"][0]["report"];
    assert_eq!(window["verdict"], "stable", "{second}");
    assert_eq!(
        (window["rows"].as_u64(), window["window"].as_u64()),
        (Some(1500), Some(1))
    );
    assert!(
        app.events("model.drift_detected").await.is_empty(),
        "a stable window tells nothing"
    );

    traffic(&scorer, &shifted(&records[1500..3000], 20), "c").await;
    let mut events = Vec::new();
    let mut answers = Vec::new();
    for _ in 0..3 {
        let answer = tick().await;
        events.extend(app.events("model.drift_detected").await);
        answers.push(answer);
    }
    let window = &answers[0]["ReturnValue"]["windows"][0]["report"];
    assert_eq!(window["verdict"], "drifted", "{}", answers[0]);
    assert_eq!(window["window"], 2);
    let drifted: Vec<&str> = window["columns"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["drifted"] == true && c["column"] != "prediction")
        .map(|c| c["column"].as_str().unwrap())
        .collect();
    assert_eq!(drifted, ["age", "workclass"], "{window}");
    for column in window["columns"].as_array().unwrap() {
        let statistic = if column["column"] == "age" || column["column"] == "hours-per-week" {
            "normalized_wasserstein"
        } else if column["column"] == "workclass" {
            "jensen_shannon"
        } else {
            continue;
        };
        assert_eq!(column["statistic"], statistic, "{column}");
    }
    assert_eq!(events.len(), 1, "{events:?}");
    let event = &events[0];
    assert_eq!(event["specversion"], "1.0");
    assert_eq!(event["type"], "model.drift_detected");
    assert_eq!(event["subject"], "models/adult-income/versions/1");
    assert_eq!(
        event["id"],
        "model.drift_detected:adult-income:production.1:2"
    );
    let run = window["retrain_run"]
        .as_str()
        .expect("a retrain was requested");
    assert_eq!(event["data"]["retrain_run"], run);
    // The webhook got the same event, once, signed.
    let received = receiver.received.lock().unwrap().clone();
    assert_eq!(receiver.events(), std::slice::from_ref(event));
    let (headers, body) = &received[0];
    assert!(crate::helpers::signed_by(secret.as_bytes(), headers, body));
    assert!(crate::notifications::readme_verifies(secret, headers, body));
    assert_eq!(
        answers[0]["ReturnValue"]["windows"][0]["retrain"]["duplicate"],
        false
    );
    for later in &answers[1..] {
        assert_eq!(later["ReturnValue"]["windows"], json!([]), "{later}");
    }
    // The release's cursor spares a pass reading every report. A store from before
    // cursors (none), or one a pass left behind (stale: from before window 2), is rebuilt
    // from the reports, and nothing is judged or acted on twice.
    let cursor = app
        .root()
        .join("monitoring/adult-income/production.1/cursor.json");
    let current: Value = serde_json::from_slice(&std::fs::read(&cursor).unwrap()).unwrap();
    assert_eq!(
        (current["last"].as_u64(), current["latest"].as_u64()),
        (Some(2), Some(2))
    );
    std::fs::remove_file(&cursor).unwrap();
    let answer = tick().await;
    assert_eq!(answer["ReturnValue"]["windows"], json!([]), "{answer}");
    let mut stale = current.clone();
    stale["last"] = json!(1);
    stale["latest"] = json!(1);
    stale["settled_before"] = Value::Null;
    stale["recent"] = reports_batches(&app, 1);
    std::fs::write(&cursor, serde_json::to_vec(&stale).unwrap()).unwrap();
    let answer = tick().await;
    assert_eq!(
        answer["ReturnValue"]["windows"][0]["decided_now"], false,
        "{answer}"
    );
    let repaired: Value = serde_json::from_slice(&std::fs::read(&cursor).unwrap()).unwrap();
    assert_eq!(repaired["last"], 2, "{repaired}");
    let answer = tick().await;
    assert_eq!(answer["ReturnValue"]["windows"], json!([]), "{answer}");

    let from_monitor = monitor_runs(&app).await;
    assert_eq!(from_monitor.len(), 1, "{from_monitor:?}");
    assert_eq!(from_monitor[0]["id"], run);
    assert_eq!(from_monitor[0]["dataset_version"], 2, "the newest version");
    let reason = from_monitor[0]["reason"].as_str().unwrap();
    assert!(reason.contains("age, workclass"), "{reason}");

    // The decision is in the audit trail once, with the window it rests on.
    let decisions = drift_decisions(&app).await;
    assert_eq!(decisions.len(), 1);
    assert_eq!(decisions[0].entry.subject, "model:adult-income@1");
    assert!(
        decisions[0]
            .entry
            .reason
            .starts_with("age, workclass drifted from adult v1 in window 2"),
        "{}",
        decisions[0].entry.reason
    );
    sluice_shared::audit::AuditLog::new(app.store.clone())
        .verify()
        .await
        .unwrap();

    let (status, reports) = app
        .api(
            reqwest::Method::GET,
            "/api/models/adult-income/monitoring",
            None,
        )
        .await;
    assert_eq!(status, 200, "{reports}");
    let reports = reports["reports"].as_array().unwrap();
    assert_eq!(reports.len(), 2);
    assert_eq!(
        (reports[0]["window"].as_u64(), reports[1]["window"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(reports[0]["retrain_run"], run);
    let (status, missing) = app
        .api(
            reqwest::Method::GET,
            "/api/models/no-such-model/monitoring",
            None,
        )
        .await;
    assert_eq!(status, 404, "{missing}");
}

/// A version keeps its training data's profile for what it reads and predicts
/// (`reference.json`); a version registered before references were kept is judged
/// against its dataset version's manifest instead, with the same verdicts.
#[tokio::test]
async fn versions_registered_before_references_are_judged_against_their_dataset() {
    let app = adult_in_production().await;
    let mut logged = crate::helpers::config();
    logged["prediction_log"] = json!({"sample": 1.0});
    put_config(&app, &logged).await;
    let kept = app
        .root()
        .join("registry/models/adult-income/versions/v1/reference.json");
    let reference: Vec<Value> = serde_json::from_slice(&std::fs::read(&kept).unwrap()).unwrap();
    let signature: Value =
        serde_json::from_slice(&std::fs::read(kept.with_file_name("signature.json")).unwrap())
            .unwrap();
    let mut expected: Vec<&str> = signature["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .chain(["income"])
        .collect();
    expected.sort_unstable();
    let mut names: Vec<&str> = reference
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, expected);

    let scorer = scorer(&app);
    let (records, _) = records(&app, &(0..1200).collect::<Vec<_>>());
    traffic(&scorer, &records, "kept").await;
    // What an older version's store holds: no reference beside the model.
    std::fs::remove_file(&kept).unwrap();
    let answer = app.timer("MonitorTimer").await;
    let report = &answer["ReturnValue"]["windows"][0]["report"];
    assert_eq!(report["verdict"], "stable", "{answer}");
    assert_eq!(
        report["reference"],
        json!({"dataset": "adult", "version": 1})
    );
    let judged: Vec<&str> = report["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["column"].as_str().unwrap())
        .collect();
    assert_eq!(
        judged.len(),
        expected.len(),
        "every input and the prediction: {judged:?}"
    );
    assert!(judged.contains(&"prediction"));
}

/// Azure ML's `DatasetDriftDetected` (the docs' event, PascalCase; delivered twice, then
/// once more as camelCase SDKs see it) for a monitor the model subscribes to: one drifted
/// report named after the monitor's run, one `model.drift_detected`, one retrain and one
/// audit record; another monitor's finding changes nothing; a malformed event is a 400
/// naming the field.
#[tokio::test]
async fn contract_azureml_dataset_drift_detected_is_acted_on_once() {
    let app = adult_in_production().await;
    let mut config = crate::helpers::config();
    config["retrain"] = json!({"on": "drift"});
    config["monitoring"] = json!({"azureml_monitors": ["myDriftMonitor"]});
    put_config(&app, &config).await;
    let event = sluice_tests::fixture(
        "eventgrid/Microsoft.MachineLearningServices.DatasetDriftDetected.docs.eventgrid.json",
    )[0]
    .clone();
    let mut camel = event.clone();
    camel["data"] = json!({
        "dataDriftId": event["data"]["DataDriftId"],
        "dataDriftName": "myDriftMonitor",
        "runId": event["data"]["RunId"],
        "driftCoefficient": event["data"]["DriftCoefficient"],
        "startTime": event["data"]["StartTime"],
        "endTime": event["data"]["EndTime"],
    });
    let deliver = |event: &Value| json!({"Data": {"event": event}, "Metadata": {}});
    let mut published = Vec::new();
    let mut answers = Vec::new();
    for e in [&event, &event, &camel] {
        let (status, answer) = app.invoke("MlJobEvents", &deliver(e)).await;
        assert_eq!(status, 200, "{answer}");
        published.extend(app.events("model.drift_detected").await);
        answers.push(answer);
    }
    let run_id = event["data"]["RunId"].as_str().unwrap();
    assert_eq!(published.len(), 1, "{published:?}");
    assert_eq!(
        published[0]["id"],
        format!("model.drift_detected:adult-income:production.1:azureml-{run_id}")
    );
    let report = &answers[0]["ReturnValue"]["windows"][0]["report"];
    assert_eq!(report["verdict"], "drifted");
    assert_eq!(report["azureml"]["monitor"], "myDriftMonitor");
    assert_eq!(
        report["columns"][0]["statistic"],
        "azure_ml_drift_coefficient"
    );
    assert_eq!(
        report["columns"][0]["value"],
        event["data"]["DriftCoefficient"]
    );
    let run = report["retrain_run"]
        .as_str()
        .expect("a retrain was requested");
    for later in &answers[1..] {
        let again = &later["ReturnValue"]["windows"][0];
        assert_eq!(again["decided_now"], false, "{later}");
        assert_eq!(again["report"]["retrain_run"], run);
    }
    let from_monitor = monitor_runs(&app).await;
    assert_eq!(from_monitor.len(), 1, "{from_monitor:?}");
    assert_eq!(drift_decisions(&app).await.len(), 1);

    let mut other = event.clone();
    other["data"]["DataDriftName"] = json!("someone-elses-monitor");
    other["data"]["RunId"] = json!("other_1");
    let (status, answer) = app.invoke("MlJobEvents", &deliver(&other)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["ReturnValue"]["windows"], json!([]), "{answer}");

    let mut bad = event.clone();
    bad["data"]["DriftCoefficient"] = json!("high");
    let (status, answer) = app.invoke("MlJobEvents", &deliver(&bad)).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(
        answer["error"]["field"], "Data.event.data.DriftCoefficient",
        "{answer}"
    );
}
