//! Every kind of task through the whole loop, with the reference trainer: a multiclass
//! dataset (iris, with a header row and no contract: both inferred) and a regression
//! dataset (diabetes, without a header row, read through its contract) each go upload →
//! version → train → gate → production → score, and a config whose metric does not fit
//! its task is refused when it is stored. A model whose config pins no evaluation data
//! is judged on its run's holdout.

use serde_json::{Value, json};
use sluice_shared::audit::Action;
use sluice_shared::model::ModelSession;
use sluice_shared::registry::{ModelName, Registry};
use sluice_shared::training::TrainingConfig;

use crate::helpers::{TestApp, spawn_loop_app};

fn shared_csv(path: &str) -> Vec<u8> {
    std::fs::read(sluice_tests::shared_dir().join("data").join(path)).unwrap()
}

/// Stores `config` as an operator would; returns what was stored or why it was refused.
async fn store_config(app: &TestApp, config: Value) -> Result<TrainingConfig, String> {
    let config =
        TrainingConfig::from_json(config.to_string().as_bytes()).map_err(|e| e.to_string())?;
    let stored = app.configs().put(&config, "test", "c0").await;
    stored.map(|s| s.config).map_err(|e| e.to_string())
}

/// Ingests `bytes` as `dataset`, delivers its `dataset.versioned` event and follows the
/// run it starts to the end; returns the run's last report entry.
async fn upload_and_train(app: &TestApp, dataset: &str, name: &str, bytes: Vec<u8>) -> Value {
    let key = app.upload(dataset, name, bytes).await;
    let (status, ingested) = app
        .invoke("DatasetIngest", &app.blob_created(&key).await)
        .await;
    assert_eq!(status, 200, "{ingested}");
    assert_eq!(ingested["ReturnValue"]["status"], "versioned", "{ingested}");
    let event = app.versioned_event(dataset).await;
    let message = json!({"Data": {"message": event}, "Metadata": {"MessageId": "\"m-1\"", "DeliveryCount": "1"}});
    let (status, delivered) = app.invoke("DatasetEvents", &message).await;
    assert_eq!(status, 200, "{delivered}");
    let run = delivered["ReturnValue"]["runs"][0]["run_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no run started: {delivered}"))
        .to_owned();
    app.follow(&run).await
}

/// `GET /api/models/{model}/versions/{v}`: the version and its gate verdict.
async fn model_version(app: &TestApp, model: &str, v: u32) -> Value {
    let path = format!("/api/models/{model}/versions/{v}");
    let (status, body) = app.api(reqwest::Method::GET, &path, None).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// A followed run's last report: it succeeded, passed the gate and its version went to
/// staging and production at once.
fn assert_promoted_at_once(done: &Value) {
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["gate"]["passed"], true, "{done}");
    assert_eq!(
        done["gate"]["releases"],
        json!(["staging.1", "production.1"]),
        "{done}"
    );
}

/// The first `n` rows of `dataset`'s version 1, read as the production model of
/// `model` takes them: as records (what a client sends) and as the production version's
/// answers for them straight from ONNX Runtime.
async fn production_rows(
    app: &TestApp,
    model: &str,
    dataset: &str,
    n: usize,
) -> (Vec<Value>, sluice_shared::model::Predictions) {
    let registry = Registry::new(app.store.clone());
    let name = ModelName::parse(model).unwrap();
    let production = registry.resolve(&name, "production").await.unwrap();
    let columns: Vec<_> = production
        .signature
        .inputs
        .iter()
        .map(|i| (i.name.clone(), i.kind))
        .collect();
    let table = sluice_shared::model::Table::read_parquet(
        &app.root()
            .join(format!("datasets/{dataset}/v1/data.parquet")),
        &columns,
    )
    .unwrap()
    .take(&(0..n).collect::<Vec<_>>());
    let records = (0..n)
        .map(|r| {
            let mut row = serde_json::Map::new();
            for (name, values) in &table.columns {
                if let sluice_shared::model::Values::Numbers(xs) = values {
                    row.insert(name.clone(), json!(xs[r]));
                }
            }
            Value::Object(row)
        })
        .collect();
    let session = ModelSession::new(
        sluice_tests::onnxruntime(),
        &registry
            .model_bytes(&name, production.version)
            .await
            .unwrap(),
        production.signature,
    )
    .unwrap();
    (records, session.predict(&table).unwrap())
}

#[tokio::test]
async fn iris_trains_a_multiclass_model_that_scores_every_class() {
    let app = spawn_loop_app().await;
    // The evaluation data first (its own dataset; contract inferred from the file).
    let eval = app
        .ingest("iris-eval", "iris.csv", shared_csv("iris/iris.csv"))
        .await;
    assert_eq!(eval["status"], "versioned", "{eval}");
    // No task, no contract, no data yet: the trainer will decide from the data.
    let stored = store_config(
        &app,
        json!({"model": "iris-species", "dataset": "iris", "label": "species",
               "evaluation": {"dataset": "iris-eval", "version": 1}}),
    )
    .await
    .unwrap();
    assert_eq!(stored.task(), None);
    let done = upload_and_train(&app, "iris", "iris.csv", shared_csv("iris/iris.csv")).await;
    assert_promoted_at_once(&done);

    // Registered as multiclass, judged on the multiclass metrics.
    let version = model_version(&app, "iris-species", 1).await;
    let signature = &version["version"]["signature"];
    assert_eq!(signature["task"], "multiclass");
    assert_eq!(
        signature["classes"],
        json!(["setosa", "versicolor", "virginica"])
    );
    let gate = &version["gate"]["verdict"];
    assert_eq!(gate["metric"], "log_loss");
    let accuracy = gate["candidate"]["accuracy"].as_f64().unwrap();
    assert!(accuracy > 0.9, "{gate}");
    assert!(
        gate["candidate"]["macro_f1"].as_f64().unwrap() > 0.9,
        "{gate}"
    );
    let (_, lineage) = app
        .api(
            reqwest::Method::GET,
            "/api/models/iris-species/versions/1/lineage",
            None,
        )
        .await;
    assert_eq!(lineage["task"], "multiclass");
    assert_eq!(lineage["algorithm"], "multinomial_logistic_regression");

    // Scoring answers the label and every class's probability, in the signature's
    // order, exactly as ONNX Runtime gives them.
    let (records, expected) = production_rows(&app, "iris-species", "iris", 150).await;
    assert_eq!(
        records[0].as_object().unwrap().len(),
        4,
        "the four measurements"
    );
    let (status, scored) = app
        .score("/api/score/iris-species", &json!({"data": records}))
        .await;
    assert_eq!(status, 200, "{scored}");
    let classes = ["setosa", "versicolor", "virginica"];
    let mut right = 0;
    let truth = sluice_shared::model::Table::read_parquet(
        &app.root().join("datasets/iris/v1/data.parquet"),
        &[(
            "species".into(),
            sluice_shared::dataset::contract::ColumnType::String,
        )],
    )
    .unwrap();
    let sluice_shared::model::Values::Text(species) = &truth.columns[0].1 else {
        panic!("species is text")
    };
    for (r, p) in expected.probabilities.iter().enumerate() {
        let answer = &scored["predictions"][r];
        let served: Vec<(&String, f64)> = answer["probabilities"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(c, p)| (c, p.as_f64().unwrap()))
            .collect();
        assert_eq!(
            served.iter().map(|(c, _)| c.as_str()).collect::<Vec<_>>(),
            classes,
            "every class, in the signature's order"
        );
        for (k, (_, q)) in served.iter().enumerate() {
            assert!((q - p[k]).abs() <= 1e-9, "row {r}: {q} vs {}", p[k]);
        }
        assert!((served.iter().map(|(_, q)| q).sum::<f64>() - 1.0).abs() < 1e-9);
        assert_eq!(answer["label"], classes[expected.labels[r]]);
        right += usize::from(answer["label"].as_str() == species[r].as_deref());
    }
    assert!(right >= 140, "{right} of 150 right");

    // A bad value is a 400 naming its row and column, as for binary models.
    let mut bad = records[..3].to_vec();
    bad[2]["petal_width"] = json!("wide");
    let (status, refused) = app
        .score("/api/score/iris-species", &json!({"data": bad}))
        .await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["error"]["field"], "data[2].petal_width");
}

/// A config that pins no evaluation dataset is judged on the rows its run held out, and
/// production on the same rows; a run that kept no holdout fails the gate saying so.
#[tokio::test]
async fn without_pinned_evaluation_the_gate_judges_on_the_runs_holdout() {
    let app = spawn_loop_app().await;
    store_config(
        &app,
        json!({"model": "iris-species", "dataset": "iris", "label": "species"}),
    )
    .await
    .unwrap();
    let done = upload_and_train(&app, "iris", "iris.csv", shared_csv("iris/iris.csv")).await;
    assert_promoted_at_once(&done);
    let first = model_version(&app, "iris-species", 1).await;
    let run1 = first["version"]["lineage"]["run_id"].clone();
    let gate = &first["gate"]["verdict"];
    assert_eq!(
        gate["evaluation"],
        json!({"kind": "holdout", "dataset": "iris", "version": 1, "run_id": run1})
    );
    // 20% of each class, as the trainer split it; named in lineage.
    assert_eq!(first["version"]["lineage"]["holdout"]["rows"], 30);
    assert_eq!(gate["candidate"]["rows"], 30);
    // The gate's ONNX Runtime scores on those rows are the trainer's own holdout metrics.
    let trained = &first["version"]["metrics"];
    for metric in ["log_loss", "accuracy", "macro_f1"] {
        let (a, b) = (gate["candidate"][metric].as_f64(), trained[metric].as_f64());
        assert!(
            (a.unwrap() - b.unwrap()).abs() < 1e-6,
            "{metric}: {a:?} vs {b:?}"
        );
    }
    let audit = sluice_shared::audit::AuditLog::new(app.store.clone());
    let passed = audit.records().await.unwrap().into_iter().find(|r| {
        r.entry.subject == "model:iris-species@1" && r.entry.action == Action::GatePassed
    });
    let reason = passed.expect("a gate_passed record").entry.reason;
    assert!(reason.contains("on the holdout of iris@1"), "{reason}");

    // A second model on the same dataset version holds out the same rows, so production
    // is scored on rows neither learned from, and its scores are its own gate's.
    let second = app
        .retrain(json!({"model": "iris-species", "requested_by": "ann",
                        "config_overrides": {"hyperparameters": {"l2": 3.0}}}))
        .await;
    assert_eq!(second["status"], "succeeded", "{second}");
    let gate2 = model_version(&app, "iris-species", 2).await["gate"]["verdict"].clone();
    assert_eq!(gate2["evaluation"]["kind"], "holdout", "{gate2}");
    assert_eq!(gate2["evaluation"]["same_as_production"], true, "{gate2}");
    assert_eq!(gate2["production_version"], 1);
    assert_eq!(
        gate2["production"], gate["candidate"],
        "the same rows, the same model"
    );
    assert_ne!(gate2["candidate"], gate["candidate"]);

    // A trainer that keeps no holdout: the version registers, and the gate fails it with
    // the reason, once, instead of waiting for evaluation data that will never come.
    let bin = sluice_tests::sluice_bin().display().to_string();
    let script = format!(
        "{bin} train --data {{data}} --config {{config}} --output {{output}} && rm {{output}}/holdout.json"
    );
    let third = app
        .retrain(json!({"model": "iris-species", "requested_by": "ann",
                        "config_overrides": {"seed": 5, "command": ["sh", "-c", script]}}))
        .await;
    assert_eq!(third["status"], "succeeded", "{third}");
    assert_eq!(third["gate"]["passed"], false, "{third}");
    let why = third["gate"]["reasons"][0].as_str().unwrap();
    assert!(
        why.contains("pins no evaluation dataset") && why.contains("kept no holdout"),
        "{why}"
    );
    let third_version = model_version(&app, "iris-species", 3).await;
    assert!(third_version["version"]["lineage"].get("holdout").is_none());
    let failed: Vec<Action> = audit
        .records()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.entry.subject == "model:iris-species@3")
        .map(|r| r.entry.action)
        .collect();
    assert_eq!(failed, [Action::ModelRegistered, Action::GateFailed]);
}

/// The diabetes data's contract: no header row, so the contract names the columns.
fn diabetes_contract() -> Value {
    let integer = ["age", "sex", "tc", "glu", "progression"];
    let names = [
        "age",
        "sex",
        "bmi",
        "bp",
        "tc",
        "ldl",
        "hdl",
        "tch",
        "ltg",
        "glu",
        "progression",
    ];
    let columns: Vec<Value> = names
        .iter()
        .map(|n| {
            let kind = if integer.contains(n) {
                "integer"
            } else {
                "float"
            };
            json!({"name": n, "type": kind, "max_null_fraction": 0.0})
        })
        .collect();
    json!({"dataset": "diabetes", "csv": {"has_header": false}, "columns": columns, "min_rows": 100})
}

#[tokio::test]
async fn diabetes_trains_a_regression_model_that_scores_values() {
    let app = spawn_loop_app().await;
    let csv = String::from_utf8(shared_csv("diabetes/diabetes.csv")).unwrap();
    let headerless = csv.split_once('\n').unwrap().1.as_bytes().to_vec();
    app.put_contract(diabetes_contract()).await;

    // Configs are stored over HTTP (`PUT /api/models/{name}/config`). A metric that does
    // not fit the task is refused, naming the field and the metrics that do fit, whether
    // the config says its task or the contract implies it; nothing is stored.
    let put = |config: Value| {
        let app = &app;
        async move {
            app.api(
                reqwest::Method::PUT,
                "/api/models/diabetes-progression/config",
                Some(config),
            )
            .await
        }
    };
    // No evaluation dataset: the gate judges on the run's holdout.
    let base = json!({"model": "diabetes-progression", "dataset": "diabetes",
                      "label": "progression"});
    let with = |patch: Value| {
        let mut config = base.clone();
        config
            .as_object_mut()
            .unwrap()
            .extend(patch.as_object().unwrap().clone());
        config
    };
    for (patch, field, words) in [
        (
            json!({"task": "regression", "promotion": {"metric": "roc_auc"}}),
            "promotion.metric",
            "rmse, mae, r2",
        ),
        (
            json!({"promotion": {"metric": "accuracy"}}),
            "promotion.metric",
            "rmse",
        ),
        (json!({"label": "outcome"}), "label", "not a column"),
        (
            json!({"features": ["bmi", "weight"]}),
            "features",
            "\"weight\"",
        ),
        (json!({"model": "other"}), "model", "not"),
        (json!({"surprise": 1}), "body", "unknown field"),
    ] {
        let (status, refused) = put(with(patch.clone())).await;
        assert_eq!(status, 400, "{patch}: {refused}");
        assert_eq!(refused["error"]["field"], field, "{patch}: {refused}");
        let message = refused["error"]["message"].as_str().unwrap();
        assert!(message.contains(words), "{patch}: {message}");
    }
    let configs = app.configs();
    let model = ModelName::parse("diabetes-progression").unwrap();
    assert_eq!(configs.versions(&model).await.unwrap(), Vec::<u32>::new());

    // An integer label without declared values is a number to predict. Storing the same
    // config again changes nothing; a changed one is the next version.
    let (status, stored) = put(base.clone()).await;
    assert_eq!(status, 200, "{stored}");
    assert_eq!(
        (stored["version"].as_u64(), stored["changed"].as_bool()),
        (Some(1), Some(true))
    );
    assert_eq!(stored["config"]["task"], "regression");
    assert_eq!(stored["config"]["promotion"]["metric"], "rmse");
    let (_, again) = put(base.clone()).await;
    assert_eq!(
        (again["version"].as_u64(), again["changed"].as_bool()),
        (Some(1), Some(false))
    );
    let (_, changed) = put(with(json!({"seed": 7}))).await;
    assert_eq!(changed["version"], 2, "{changed}");
    let (status, _) = put(base.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(configs.versions(&model).await.unwrap(), [1, 2, 3]);
    assert_eq!(configs.get(&model).await.unwrap().seed, 42);
    let audit = sluice_shared::audit::AuditLog::new(app.store.clone());
    let stored_by: Vec<String> = audit
        .records()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.entry.subject.starts_with("config:diabetes-progression@"))
        .map(|r| r.entry.actor)
        .collect();
    assert_eq!(stored_by.len(), 3, "{stored_by:?}");
    assert!(
        stored_by.iter().all(|a| a.starts_with("ann (key:")),
        "{stored_by:?}"
    );
    let no_key = app
        .client
        .put(format!(
            "{}/api/models/diabetes-progression/config",
            app.base
        ))
        .json(&base)
        .send()
        .await
        .unwrap();
    assert_eq!(no_key.status(), 401);

    let done = upload_and_train(&app, "diabetes", "diabetes.csv", headerless).await;
    assert_promoted_at_once(&done);
    let version = model_version(&app, "diabetes-progression", 1).await;
    assert_eq!(version["version"]["signature"]["task"], "regression");
    assert_eq!(version["version"]["signature"]["classes"], json!([]));
    assert_eq!(version["gate"]["verdict"]["evaluation"]["kind"], "holdout");
    let candidate = &version["gate"]["verdict"]["candidate"];
    assert_eq!(candidate["rows"], 88, "20% of 442 rows");
    // A linear model explains about half of the variance of this target.
    let r2 = candidate["r2"].as_f64().unwrap();
    assert!((0.4..0.65).contains(&r2), "{candidate}");
    assert!(candidate["rmse"].as_f64().unwrap() < 60.0, "{candidate}");
    assert!(candidate.get("accuracy").is_none(), "{candidate}");

    let (records, expected) = production_rows(&app, "diabetes-progression", "diabetes", 50).await;
    assert_eq!(
        records[0].as_object().unwrap().len(),
        10,
        "every column but the label"
    );
    let (status, scored) = app
        .score("/api/score/diabetes-progression", &json!({"data": records}))
        .await;
    assert_eq!(status, 200, "{scored}");
    for (r, want) in expected.values.iter().enumerate() {
        let answer = &scored["predictions"][r];
        assert_eq!(answer.as_object().unwrap().len(), 1, "{answer}");
        let got = answer["value"].as_f64().unwrap();
        assert!((got - want).abs() <= 1e-9, "row {r}: {got} vs {want}");
        assert!((25.0..350.0).contains(&got), "row {r}: {got}");
    }
    let mut bad = records[..2].to_vec();
    bad[1]["age"] = json!(40.5);
    let (status, refused) = app
        .score("/api/score/diabetes-progression", &json!({"data": bad}))
        .await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["error"]["field"], "data[1].age");
}

/// A scikit-learn pipeline (`examples/sklearn-trainer`, exported with skl2onnx) as a
/// model's training command on local compute, through the whole loop: its run keeps a
/// holdout the gate judges it on, and `Score` answers as its `model.onnx` does in ONNX
/// Runtime (1e-9) and as scikit-learn's own `predict_proba` does (1e-12: the export
/// computes in double precision; measured differences are below 1e-15).
#[tokio::test]
async fn a_scikit_learn_trainer_runs_through_the_whole_loop() {
    let app = spawn_loop_app().await;
    let python = sluice_tests::python_tools().join("python");
    let script = sluice_tests::repo_root().join("examples/sklearn-trainer/train.py");
    let (python, script) = (python.display().to_string(), script.display().to_string());
    store_config(
        &app,
        json!({"model": "iris-sklearn", "dataset": "iris", "label": "species",
               "algorithm": "custom",
               "command": [python, script, "--data", "{data}", "--config", "{config}",
                           "--output", "{output}",
                           "--predictions", "{output}/sklearn-predictions.json"]}),
    )
    .await
    .unwrap();
    let done = upload_and_train(&app, "iris", "iris.csv", shared_csv("iris/iris.csv")).await;
    assert_promoted_at_once(&done);

    let version = model_version(&app, "iris-sklearn", 1).await;
    let registered = &version["version"];
    assert_eq!(registered["signature"]["task"], "multiclass");
    assert_eq!(
        registered["signature"]["classes"],
        json!(["setosa", "versicolor", "virginica"])
    );
    let lineage = &registered["lineage"];
    assert_eq!(lineage["algorithm"], "sklearn_logistic_regression");
    let code = lineage["code_version"].as_str().unwrap();
    assert!(code.contains("scikit-learn 1.9.1"), "{code}");
    assert_eq!(lineage["holdout"]["rows"], 30);
    // The gate scored the held-out rows the Python side named, in ONNX Runtime, and
    // found what scikit-learn found on them.
    let gate = &version["gate"]["verdict"];
    assert_eq!(gate["evaluation"]["kind"], "holdout", "{gate}");
    for metric in ["log_loss", "accuracy", "macro_f1"] {
        let (a, b) = (
            gate["candidate"][metric].as_f64().unwrap(),
            registered["metrics"][metric].as_f64().unwrap(),
        );
        assert!((a - b).abs() < 1e-9, "{metric}: gate {a} vs trainer {b}");
    }

    let (records, expected) = production_rows(&app, "iris-sklearn", "iris", 150).await;
    let (status, scored) = app
        .score("/api/score/iris-sklearn", &json!({"data": records}))
        .await;
    assert_eq!(status, 200, "{scored}");
    let run = lineage["run_id"].as_str().unwrap();
    let own: Value = serde_json::from_slice(
        &std::fs::read(
            app.root()
                .join(format!("runs/{run}/output/sklearn-predictions.json")),
        )
        .unwrap(),
    )
    .unwrap();
    let classes = ["setosa", "versicolor", "virginica"];
    let mut largest = 0.0f64;
    for (r, onnx) in expected.probabilities.iter().enumerate() {
        let answer = &scored["predictions"][r];
        let sklearn = own["predictions"][r].as_array().unwrap();
        for (k, class) in classes.iter().enumerate() {
            let served = answer["probabilities"][class].as_f64().unwrap();
            assert!((served - onnx[k]).abs() <= 1e-9, "row {r} {class}");
            let theirs = sklearn[k].as_f64().unwrap();
            largest = largest.max((served - theirs).abs());
        }
        assert_eq!(answer["label"], classes[expected.labels[r]]);
    }
    assert!(largest <= 1e-12, "scikit-learn differs by {largest:e}");
}

/// A run that failed keeps its identity and is tried again as its next attempt, over
/// HTTP or the CLI, with its own job and logs; the model names the attempt that made it.
#[tokio::test]
async fn a_failed_run_is_tried_again_and_its_model_names_the_attempt() {
    let app = spawn_loop_app().await;
    let scratch = tempfile::tempdir().unwrap();
    let marker = scratch.path().join("tried-once");
    let bin = sluice_tests::sluice_bin().display().to_string();
    // The first attempt fails (as a node that ran out of memory would), later ones train.
    let script = format!(
        "if [ -e {m} ]; then exec {bin} train --data {{data}} --config {{config}} --output {{output}}; \
         else touch {m}; echo 'simulated: out of memory' >&2; exit 3; fi",
        m = marker.display()
    );
    store_config(
        &app,
        json!({"model": "iris-species", "dataset": "iris", "label": "species",
               "command": ["sh", "-c", script]}),
    )
    .await
    .unwrap();
    let failed = upload_and_train(&app, "iris", "iris.csv", shared_csv("iris/iris.csv")).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    let run = failed["run_id"].as_str().unwrap().to_owned();
    let retry = |id: String| {
        let app = &app;
        async move {
            let path = format!("/api/runs/{id}/retry");
            let body = json!({"reason": "the node ran out of memory"});
            app.api(reqwest::Method::POST, &path, Some(body)).await
        }
    };
    let (status, missing) = retry("run-nope".into()).await;
    assert_eq!(status, 404, "{missing}");

    let (status, retried) = retry(run.clone()).await;
    assert_eq!(status, 202, "{retried}");
    assert_eq!(retried["attempt"], 2);
    assert_eq!(retried["status"], "running", "submitted at once: {retried}");
    assert_promoted_at_once(&app.follow(&run).await);

    let (_, shown) = app
        .api(reqwest::Method::GET, &format!("/api/runs/{run}"), None)
        .await;
    assert_eq!(shown["attempt"], 2);
    assert_eq!(shown["model_version"], 1);
    let first = &shown["earlier_attempts"][0];
    assert_eq!(
        (&first["attempt"], &first["status"]),
        (&json!(1), &json!("failed"))
    );
    assert!(
        first["error"].as_str().unwrap().contains("exited"),
        "{first}"
    );
    assert_ne!(first["job"], shown["job"], "each attempt its own job");
    let version = model_version(&app, "iris-species", 1).await;
    assert_eq!(version["version"]["lineage"]["run_id"], run.as_str());
    assert_eq!(version["version"]["lineage"]["run_attempt"], 2);

    // Each attempt's logs are kept; the CLI reads either.
    let logs = |attempt: &str| {
        let out =
            sluice_tests::sluice_cli(app.root(), &["runs", "logs", &run, "--attempt", attempt]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(logs("1").contains("simulated: out of memory"));
    assert!(logs("2").contains("model.onnx matches the trainer"));

    // A succeeded run is not tried again: 409 over HTTP, an error from the CLI.
    let (status, refused) = retry(run.clone()).await;
    assert_eq!(status, 409, "{refused}");
    assert_eq!(refused["error"]["code"], "conflict");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("is succeeded: only a failed or canceled run"),
        "{refused}"
    );
    let (status, refused) = app
        .api(
            reqwest::Method::POST,
            &format!("/api/runs/{run}/retry"),
            Some(json!({"reason": 7})),
        )
        .await;
    assert_eq!(
        (status, refused["error"]["field"].as_str()),
        (400, Some("body")),
        "{refused}"
    );
    let cli = sluice_tests::sluice_cli(app.root(), &["runs", "retry", &run]);
    assert!(!cli.status.success());
    assert!(String::from_utf8_lossy(&cli.stderr).contains("only a failed or canceled run"));
}
