//! Every kind of task through the whole loop, with the reference trainer: a multiclass
//! dataset (iris, with a header row and no contract: both inferred) and a regression
//! dataset (diabetes, without a header row, read through its contract) each go upload →
//! version → train → gate → production → score, and a config whose metric does not fit
//! its task is refused when it is stored.

use serde_json::{Value, json};
use sluice_shared::model::ModelSession;
use sluice_shared::registry::{ModelName, Registry};
use sluice_shared::runs::Runs;
use sluice_shared::training::TrainingConfig;

use crate::helpers::{TestApp, spawn_loop_app};

fn shared_csv(path: &str) -> Vec<u8> {
    std::fs::read(sluice_tests::shared_dir().join("data").join(path)).unwrap()
}

/// Stores `config` as an operator would; returns what was stored or why it was refused.
async fn store_config(app: &TestApp, config: Value) -> Result<TrainingConfig, String> {
    let config =
        TrainingConfig::from_json(config.to_string().as_bytes()).map_err(|e| e.to_string())?;
    let runs = Runs::new(
        app.store.clone(),
        std::sync::Arc::new(crate::mlops_loop::NoCompute),
    );
    let stored = runs.put_config(&config, "test", "c0").await;
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
    let event = ingested["Outputs"]["datasetEvents"].clone();
    let message = json!({"Data": {"message": event}, "Metadata": {"MessageId": "\"m-1\"", "DeliveryCount": "1"}});
    let (status, delivered) = app.invoke("DatasetEvents", &message).await;
    assert_eq!(status, 200, "{delivered}");
    let run = delivered["ReturnValue"]["runs"][0]["run_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no run started: {delivered}"))
        .to_owned();
    app.follow(&run).await
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
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["gate"]["passed"], true, "{done}");
    assert_eq!(
        done["gate"]["releases"],
        json!(["staging.1", "production.1"])
    );

    // Registered as multiclass, judged on the multiclass metrics.
    let (status, version) = app
        .api(
            reqwest::Method::GET,
            "/api/models/iris-species/versions/1",
            None,
        )
        .await;
    assert_eq!(status, 200, "{version}");
    let signature = &version["version"]["signature"];
    assert_eq!(signature["task"], "multiclass");
    assert_eq!(
        signature["classes"],
        json!(["setosa", "versicolor", "virginica"])
    );
    let gate = &version["gate"]["result"];
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

/// The diabetes data's contract: no header row, so the contract names the columns.
fn diabetes_contract(dataset: &str) -> Value {
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
    json!({"dataset": dataset, "csv": {"has_header": false}, "columns": columns, "min_rows": 100})
}

#[tokio::test]
async fn diabetes_trains_a_regression_model_that_scores_values() {
    let app = spawn_loop_app().await;
    let csv = String::from_utf8(shared_csv("diabetes/diabetes.csv")).unwrap();
    let headerless = csv.split_once('\n').unwrap().1.as_bytes().to_vec();
    app.put_contract(diabetes_contract("diabetes")).await;
    app.put_contract(diabetes_contract("diabetes-eval")).await;
    let eval = app
        .ingest("diabetes-eval", "diabetes.csv", headerless.clone())
        .await;
    assert_eq!(eval["status"], "versioned", "{eval}");

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
    let base = json!({"model": "diabetes-progression", "dataset": "diabetes",
                      "label": "progression", "evaluation": {"dataset": "diabetes-eval", "version": 1}});
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
    let runs = Runs::new(
        app.store.clone(),
        std::sync::Arc::new(crate::mlops_loop::NoCompute),
    );
    let model = ModelName::parse("diabetes-progression").unwrap();
    assert_eq!(
        runs.config_versions(&model).await.unwrap(),
        Vec::<u32>::new()
    );

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
    assert_eq!(runs.config_versions(&model).await.unwrap(), [1, 2, 3]);
    assert_eq!(runs.config(&model).await.unwrap().seed, 42);
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
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["gate"]["passed"], true, "{done}");
    let (_, version) = app
        .api(
            reqwest::Method::GET,
            "/api/models/diabetes-progression/versions/1",
            None,
        )
        .await;
    assert_eq!(version["version"]["signature"]["task"], "regression");
    assert_eq!(version["version"]["signature"]["classes"], json!([]));
    let candidate = &version["gate"]["result"]["candidate"];
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
