//! The reference trainer on UCI Adult: targets, ONNX parity, reproducibility.

use std::path::Path;
use std::process::Command;

use sluice_shared::model::signature::InputLayout;
use sluice_shared::model::{ModelSession, Signature};
use sluice_shared::training::trainer::{self, MODEL_FILE, SIGNATURE_FILE};
use sluice_shared::training::{TrainingConfig, train};

use crate::helpers::{TestApp, spawn_app};

/// Adult (training) and Adult's test file (evaluation, labels cleaned by its contract's
/// aliases and its junk first line skipped as a comment), each versioned once.
async fn adult_versions() -> TestApp {
    let app = spawn_app().await;
    app.adult_contract().await;
    let eval: serde_json::Value = serde_json::from_slice(
        &std::fs::read(sluice_tests::repo_root().join("contracts/adult-eval.json")).unwrap(),
    )
    .unwrap();
    app.put_contract(eval).await;
    for (dataset, file) in [("adult", "adult.data"), ("adult-eval", "adult.test")] {
        let ret = app
            .ingest(
                dataset,
                file,
                std::fs::read(sluice_tests::adult(file)).unwrap(),
            )
            .await;
        assert_eq!(ret["status"], "versioned", "{dataset}: {ret}");
    }
    app
}

fn config(name: &str) -> TrainingConfig {
    let path = sluice_tests::repo_root().join("configs").join(name);
    TrainingConfig::from_json(&std::fs::read(path).unwrap()).unwrap()
}

fn session(dir: &Path) -> ModelSession {
    let signature: Signature =
        serde_json::from_slice(&std::fs::read(dir.join(SIGNATURE_FILE)).unwrap()).unwrap();
    ModelSession::new(
        sluice_tests::onnxruntime(),
        &std::fs::read(dir.join(MODEL_FILE)).unwrap(),
        signature,
    )
    .unwrap()
}

#[tokio::test]
async fn the_reference_trainer_meets_the_adult_targets_and_onnx_runtime_agrees_with_it() {
    let app = adult_versions().await;
    let out = tempfile::tempdir().unwrap();
    let report = train(
        &config("adult-income.json"),
        &app.root().join("datasets/adult/v1"),
        out.path(),
    )
    .unwrap();
    // Holdout: 20% of adult.data, stratified.
    assert_eq!(report.metrics.rows, 6512);
    assert_eq!(
        report.lineage.train_rows + report.lineage.holdout_rows,
        32_561
    );
    assert!(
        report.metrics.roc_auc.unwrap() > 0.89,
        "{:?}",
        report.metrics
    );

    let diff = trainer::verify_export(sluice_tests::onnxruntime(), out.path(), &report).unwrap();
    assert!(
        diff <= 1e-5,
        "ONNX Runtime differs from the trainer by {diff}"
    );

    // The rows it held out, named in `holdout.json`, are the rows its metrics came from:
    // scoring them again in ONNX Runtime gives the same numbers.
    let holdout: trainer::Holdout =
        serde_json::from_slice(&std::fs::read(out.path().join(trainer::HOLDOUT_FILE)).unwrap())
            .unwrap();
    assert_eq!(holdout.rows.len(), 6512);
    assert!(holdout.rows.windows(2).all(|w| w[0] < w[1]), "ascending");
    let again = trainer::evaluate(
        &session(out.path()),
        &app.root().join("datasets/adult/v1"),
        Some(&holdout),
    )
    .unwrap();
    assert_eq!(again.class_counts, report.metrics.class_counts);
    for metric in ["roc_auc", "accuracy", "log_loss"] {
        let (a, b) = (
            again.get(metric).unwrap(),
            report.metrics.get(metric).unwrap(),
        );
        assert!((a - b).abs() < 1e-4, "{metric}: {a} vs {b}");
    }

    let eval = trainer::evaluate(
        &session(out.path()),
        &app.root().join("datasets/adult-eval/v1"),
        None,
    )
    .unwrap();
    eprintln!("adult.test: {eval:?}");
    assert_eq!(eval.rows, 16_281);
    assert_eq!(eval.class_counts[1].class, ">50K");
    assert_eq!(eval.class_counts[1].actual, 3_846, "adult.test's >50K rows");
    assert!(eval.roc_auc.unwrap() >= 0.89, "{eval:?}");
    assert!(eval.accuracy.unwrap() >= 0.84, "{eval:?}");

    // A model registered before Sluice grouped its inputs (`tests/fixtures/`: this
    // trainer's output on the same data and config, one input per column) still scores,
    // and gives the same predictions as the grouped graph.
    let new = session(out.path());
    let old = session(&sluice_tests::repo_root().join("tests/fixtures/adult-income-columns"));
    assert_eq!(new.signature().layout, InputLayout::Grouped);
    assert_eq!(old.signature().layout, InputLayout::Columns);
    let rows = app
        .adult_eval_rows(new.signature())
        .take(&(0..2_000).collect::<Vec<_>>());
    let (a, b) = (new.predict(&rows).unwrap(), old.predict(&rows).unwrap());
    assert_eq!(a.labels, b.labels);
    let worst = a
        .positive()
        .iter()
        .zip(b.positive())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    assert!(worst < 1e-12, "the layouts differ by {worst}");
    // Either layout scores a batch of several requests' tables as it scores them joined.
    let (first, rest) = (
        rows.take(&(0..700).collect::<Vec<_>>()),
        rows.take(&(700..2_000).collect::<Vec<_>>()),
    );
    for (session, whole) in [(&new, &a), (&old, &b)] {
        let batched = session.predict_all(&[&first, &rest]).unwrap();
        assert_eq!(&batched, whole);
    }

    // The lineage record names the exact data and code.
    let lineage: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("lineage.json")).unwrap()).unwrap();
    let manifest = app.manifest("adult", 1).await;
    assert_eq!(lineage["dataset_sha256"], manifest.content_sha256);
    assert_eq!(lineage["seed"], 42);
    assert_eq!(lineage["algorithm"], "logistic_regression");
    assert!(
        !lineage["features"]
            .as_array()
            .unwrap()
            .contains(&"fnlwgt".into())
    );
}

#[tokio::test]
async fn sluice_train_is_reproducible_byte_for_byte_and_a_poorer_config_scores_lower() {
    let app = adult_versions().await;
    let data = app.root().join("datasets/adult/v1");
    let run = |config: &Path, out: &Path| {
        let output = Command::new(sluice_tests::sluice_bin())
            .arg("train")
            .arg("--data")
            .arg(&data)
            .arg("--config")
            .arg(config)
            .arg("--output")
            .arg(out)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let stderr = String::from_utf8_lossy(&output.stderr).to_string();
        assert!(
            stderr.contains("matches the trainer in ONNX Runtime"),
            "{stderr}"
        );
        serde_json::from_slice::<serde_json::Value>(&output.stdout).unwrap()
    };
    let models = sluice_tests::repo_root().join("configs");
    let (a, b, poor) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let first = run(&models.join("adult-income.json"), a.path());
    let second = run(&models.join("adult-income.json"), b.path());
    assert_eq!(
        std::fs::read(a.path().join(MODEL_FILE)).unwrap(),
        std::fs::read(b.path().join(MODEL_FILE)).unwrap(),
        "same data, config and seed give the same model.onnx"
    );
    assert_eq!(first["model_sha256"], second["model_sha256"]);

    // A config that keeps one feature: a worse model (the gate must catch it).
    let dir = tempfile::tempdir().unwrap();
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(models.join("adult-income.json")).unwrap()).unwrap();
    config["features"] = serde_json::json!(["age"]);
    config["exclude"] = serde_json::json!([]);
    let path = dir.path().join("age-only.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let worse = run(&path, poor.path());
    let auc = |v: &serde_json::Value| v["metrics"]["roc_auc"].as_f64().unwrap();
    assert!(auc(&worse) < auc(&first) - 0.1, "{worse} vs {first}");
}

/// The Python trainer contract (`examples/sluice_contract.py`, what
/// train.py writes through) without PyTorch or a GPU: its outputs for Adult rows load
/// with Sluice's own types, and ONNX Runtime serving its model.onnx from raw rows gives
/// what numpy computed from the same plan and head.
#[tokio::test]
async fn the_python_trainer_contract_writes_outputs_sluice_serves() {
    let app = adult_versions().await;
    let config: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            sluice_tests::repo_root().join("examples/pytorch-trainer/adult-income-pytorch.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let version = app.root().join("datasets/adult/v1");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(version.join("manifest.json")).unwrap()).unwrap();
    let label = config["label"].as_str().unwrap();
    let exclude = &config["exclude"];
    let inputs: Vec<(String, String)> = manifest["schema"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap().to_owned(),
                f["type"].as_str().unwrap().to_owned(),
            )
        })
        .filter(|(n, _)| n != label && !exclude.as_array().unwrap().iter().any(|e| e == n))
        .collect();
    let kinds: Vec<(String, sluice_shared::dataset::contract::ColumnType)> = inputs
        .iter()
        .map(|(n, k)| {
            (
                n.clone(),
                serde_json::from_value(serde_json::json!(k)).unwrap(),
            )
        })
        .chain([(
            label.to_owned(),
            sluice_shared::dataset::contract::ColumnType::String,
        )])
        .collect();
    let rows: Vec<usize> = (0..3000).collect();
    let table = sluice_shared::model::Table::read_parquet(&version.join("data.parquet"), &kinds)
        .unwrap()
        .take(&rows);
    let mut columns = serde_json::Map::new();
    let mut labels = Vec::new();
    for (name, values) in &table.columns {
        let json = match values {
            sluice_shared::model::Values::Numbers(xs) => xs
                .iter()
                .map(|x| {
                    if x.is_nan() {
                        serde_json::Value::Null
                    } else {
                        serde_json::json!(x)
                    }
                })
                .collect(),
            sluice_shared::model::Values::Text(t) => {
                t.iter().map(|v| serde_json::json!(v)).collect()
            }
        };
        if name == label {
            let serde_json::Value::Array(values) = &json else {
                unreachable!()
            };
            labels = values.iter().map(|v| u8::from(*v == ">50K")).collect();
        } else {
            columns.insert(name.clone(), json);
        }
    }
    let work = tempfile::tempdir().unwrap();
    let rows_file = work.path().join("rows.json");
    std::fs::write(
        &rows_file,
        serde_json::json!({
            "inputs": inputs, "columns": columns, "labels": labels,
            "label": label, "classes": ["<=50K", ">50K"],
        })
        .to_string(),
    )
    .unwrap();
    let out = work.path().join("out");
    let checked = Command::new(sluice_tests::python_tools().join("python"))
        .arg("check_contract.py")
        .arg("--rows")
        .arg(&rows_file)
        .arg("--output")
        .arg(&out)
        .current_dir(sluice_tests::repo_root().join("examples/pytorch-trainer"))
        .output()
        .unwrap();
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );

    // Sluice's types read what the Python side wrote.
    let metrics: sluice_shared::training::metrics::Metrics =
        serde_json::from_slice(&std::fs::read(out.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics.rows, 3000);
    let auc = metrics.roc_auc.unwrap();
    assert!(auc > 0.0 && auc < 1.0);
    let session = session(&out);
    let signature = session.signature();
    assert_eq!(signature.classes, ["<=50K", ">50K"]);
    assert_eq!(signature.inputs.len(), inputs.len());
    // Served from raw rows, the model gives what numpy computed.
    let expected: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("expected.json")).unwrap()).unwrap();
    let served = session.predict(&table).unwrap().positive();
    for (r, (got, want)) in served
        .iter()
        .zip(expected["positive"].as_array().unwrap())
        .enumerate()
    {
        let want = want.as_f64().unwrap();
        assert!(
            (got - want).abs() < 1e-4,
            "row {r}: served {got}, numpy {want}"
        );
    }
    // Unknown categories and missing values are scored, not refused.
    let mut odd = table.take(&[0]);
    for (_, values) in &mut odd.columns {
        match values {
            sluice_shared::model::Values::Numbers(xs) => xs[0] = f64::NAN,
            sluice_shared::model::Values::Text(t) => t[0] = Some("never-seen".into()),
        }
    }
    assert!(session.predict(&odd).unwrap().positive()[0].is_finite());
}
