use std::sync::Arc;

use super::*;
use crate::model::signature::{InputSpec, TensorType};
use crate::storage::local::LocalStore;
use crate::training::metrics::binary;

fn registry() -> (tempfile::TempDir, Registry) {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn ObjectStore> = Arc::new(LocalStore::new(dir.path()).unwrap());
    (dir, Registry::new(store))
}

pub(crate) fn artifacts(tag: &str) -> Artifacts {
    Artifacts {
        model_onnx: Bytes::from(format!("onnx {tag}")),
        signature: Signature {
            inputs: vec![InputSpec {
                name: "x".into(),
                kind: crate::dataset::contract::ColumnType::Float,
                tensor: TensorType::Double,
                categories: None,
            }],
            layout: crate::model::signature::InputLayout::Columns,
            task: crate::model::Task::Binary,
            label: "y".into(),
            classes: vec!["no".into(), "yes".into()],
            outputs: vec![],
        },
        metrics: binary(&[0.2, 0.8], &[0.0, 1.0], &["no".into(), "yes".into()]),
        holdout: None,
        reference: vec![],
    }
}

pub(crate) fn lineage(run: &str) -> Lineage {
    Lineage {
        run_id: run.into(),
        run_attempt: 1,
        requested_by: "test".into(),
        trigger: "test".into(),
        dataset: DatasetName::parse("d").unwrap(),
        dataset_version: 1,
        dataset_sha256: "ab".repeat(32),
        source_uri: "file:///landing/d/x.csv".into(),
        algorithm: "logistic_regression".into(),
        hyperparameters: serde_json::json!({}),
        seed: 42,
        config_sha256: "cd".repeat(32),
        code_version: "sluice test".into(),
        compute: "local".into(),
        started_at: Utc::now(),
        finished_at: Utc::now(),
        holdout: None,
        job: None,
    }
}

fn model() -> ModelName {
    ModelName::parse("m").unwrap()
}

fn to(alias: &str, version: u32) -> NewRelease {
    NewRelease {
        alias: alias.into(),
        version,
        actor: "tester".into(),
        reason: "test".into(),
        gate: serde_json::Value::Null,
        rolls_back: None,
    }
}

#[tokio::test]
async fn a_run_registers_once_and_concurrent_runs_get_distinct_versions() {
    let (_dir, reg) = registry();
    let (v1, new) = reg
        .register(
            &model(),
            artifacts("a"),
            lineage("run-a"),
            Default::default(),
            String::new(),
        )
        .await
        .unwrap();
    assert!(new);
    assert_eq!(v1.version, 1);
    let (again, new) = reg
        .register(
            &model(),
            artifacts("a"),
            lineage("run-a"),
            Default::default(),
            String::new(),
        )
        .await
        .unwrap();
    assert!(!new, "the same run registered again is the same version");
    assert_eq!(again, v1);
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let reg = reg.clone();
            tokio::spawn(async move {
                let run = format!("run-{i}");
                reg.register(
                    &model(),
                    artifacts(&run),
                    lineage(&run),
                    Default::default(),
                    String::new(),
                )
                .await
                .unwrap()
                .0
                .version
            })
        })
        .collect();
    let mut versions = Vec::new();
    for t in tasks {
        versions.push(t.await.unwrap());
    }
    versions.sort_unstable();
    assert_eq!(versions, (2..=11).collect::<Vec<_>>());
    assert_eq!(
        reg.versions(&model()).await.unwrap(),
        (1..=11).collect::<Vec<_>>()
    );
    assert_eq!(
        reg.model_bytes(&model(), 1).await.unwrap(),
        Bytes::from("onnx a")
    );
}

#[tokio::test]
async fn fifty_concurrent_promotions_have_one_winner_per_round_and_lose_no_release() {
    let (_dir, reg) = registry();
    for i in 0..50 {
        let run = format!("run-{i}");
        reg.register(
            &model(),
            artifacts(&run),
            lineage(&run),
            Default::default(),
            String::new(),
        )
        .await
        .unwrap();
    }
    for round in 1..=3u64 {
        let current = reg.alias(&model(), "production").await.unwrap();
        let tasks: Vec<_> = (1..=50u32)
            .map(|v| {
                let reg = reg.clone();
                let current = current.clone();
                tokio::spawn(async move {
                    reg.release(
                        &model(),
                        to("production", v),
                        current.as_ref().map(|(a, e)| (a, e)),
                    )
                    .await
                })
            })
            .collect();
        let mut winners = Vec::new();
        for t in tasks {
            match t.await.unwrap() {
                Ok(release) => winners.push(release),
                Err(RegistryError::Conflict { .. }) => {}
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}");
        assert_eq!(winners[0].id, format!("production.{round}"));
        let (alias, _) = reg.alias(&model(), "production").await.unwrap().unwrap();
        assert_eq!(alias.release, winners[0]);
    }
    let releases = reg.releases(&model()).await.unwrap();
    let ids: Vec<_> = releases.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["production.1", "production.2", "production.3"]);
    assert_eq!(releases[2].previous.as_deref(), Some("production.2"));
}

#[tokio::test]
async fn releases_answer_what_was_in_production_at_a_time() {
    let (_dir, reg) = registry();
    for run in ["a", "b"] {
        reg.register(
            &model(),
            artifacts(run),
            lineage(run),
            Default::default(),
            String::new(),
        )
        .await
        .unwrap();
    }
    let first = reg
        .release(&model(), to("production", 1), None)
        .await
        .unwrap();
    let between = Utc::now();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let (a, etag) = reg.alias(&model(), "production").await.unwrap().unwrap();
    let second = reg
        .release(&model(), to("production", 2), Some((&a, &etag)))
        .await
        .unwrap();
    assert_eq!(
        reg.release_at(&model(), "production", between)
            .await
            .unwrap(),
        Some(first.clone())
    );
    assert_eq!(
        reg.release_at(&model(), "production", Utc::now())
            .await
            .unwrap(),
        Some(second)
    );
    let before = first.at - chrono::Duration::seconds(1);
    assert_eq!(
        reg.release_at(&model(), "production", before)
            .await
            .unwrap(),
        None
    );
    assert!(matches!(
        reg.release(&model(), to("production", 9), None).await,
        Err(RegistryError::NoVersion { version: 9, .. })
    ));
    assert!(matches!(
        reg.release(&model(), to("Prod!", 1), None).await,
        Err(RegistryError::BadAlias(_))
    ));
}

#[tokio::test]
async fn a_versions_holdout_is_kept_beside_it_and_named_in_its_lineage() {
    let (_dir, reg) = registry();
    let holdout = Holdout {
        rows: vec![1, 4, 9],
    };
    let mut with = artifacts("a");
    with.holdout = Some(holdout.clone());
    let mut named = lineage("run-a");
    named.holdout = Some(HoldoutRef::of(&holdout));
    let (a, _) = reg
        .register(&model(), with, named, Default::default(), String::new())
        .await
        .unwrap();
    let (b, _) = reg
        .register(
            &model(),
            artifacts("b"),
            lineage("run-b"),
            Default::default(),
            String::new(),
        )
        .await
        .unwrap();
    assert_eq!(
        reg.holdout(&model(), a.version).await.unwrap(),
        Some(holdout)
    );
    assert_eq!(reg.holdout(&model(), b.version).await.unwrap(), None);
    let kept = reg
        .version(&model(), a.version)
        .await
        .unwrap()
        .lineage
        .holdout;
    assert_eq!(kept.as_ref().map(|h| h.rows), Some(3));
    // The same rows in another order are the same holdout; other rows are not.
    let same = Holdout {
        rows: vec![1, 4, 9],
    };
    assert_eq!(HoldoutRef::of(&same), kept.unwrap());
    assert_ne!(
        Holdout { rows: vec![1, 4] }.sha256(),
        same.sha256(),
        "a subset is another holdout"
    );
    assert_eq!(same.indices(10).unwrap(), [1, 4, 9], "rows inside the data");
    assert!(same.indices(9).unwrap_err().contains("row 9"));
}

#[test]
fn lineage_and_verdicts_written_before_holdouts_and_attempts_still_read() {
    let lineage = r#"{"run_id": "run-1", "requested_by": "ann", "trigger": "http",
        "dataset": "adult", "dataset_version": 1, "dataset_sha256": "ab", "source_uri": "x",
        "algorithm": "logistic_regression", "hyperparameters": {}, "seed": 42,
        "config_sha256": "cd", "code_version": "sluice 0.1.0", "compute": "local",
        "started_at": "2026-11-01T00:00:00Z", "finished_at": "2026-11-01T00:01:00Z"}"#;
    let lineage: Lineage = serde_json::from_str(lineage).unwrap();
    assert_eq!(lineage.holdout, None);
    assert_eq!(lineage.run_attempt, 1);
    let verdict = r#"{"passed": true, "reasons": [], "metric": "roc_auc",
        "candidate": {"rows": 4, "roc_auc": 0.9}, "production": null,
        "production_version": null}"#;
    let verdict: promotion::Verdict = serde_json::from_str(verdict).unwrap();
    assert_eq!(verdict.evaluation, None);
    assert!(verdict.passed);
    // gate.json called the verdict `result` until it had one name; it reads the same.
    let old = serde_json::json!({"model": "adult-income", "version": 2,
        "result": verdict, "releases": [], "awaiting_approval": true});
    let record: promotion::GateRecord = serde_json::from_value(old).unwrap();
    assert_eq!(record.verdict, verdict);
    let written = serde_json::to_value(&record).unwrap();
    assert!(written.get("verdict").is_some() && written.get("result").is_none());
}

#[test]
fn a_bad_model_name_is_reported_as_one() {
    assert_eq!(
        ModelName::parse("adult-income").unwrap().as_str(),
        "adult-income"
    );
    let bad = ModelName::parse("Adult Income").unwrap_err();
    assert!(
        bad.to_string()
            .starts_with("invalid model name \"Adult Income\""),
        "{bad}"
    );
    let config = br#"{"model": "Bad!", "dataset": "d", "label": "y"}"#;
    let refused = crate::training::TrainingConfig::from_json(config).unwrap_err();
    assert!(
        refused.to_string().contains("invalid model name"),
        "{refused}"
    );
    // Datasets keep their own word.
    let bad = DatasetName::parse("Bad!").unwrap_err();
    assert!(bad.to_string().starts_with("invalid dataset name"), "{bad}");
}

/// Stores written by older versions must keep reading: every registry path, byte for byte.
#[test]
fn the_registry_layout_is_pinned() {
    let m = ModelName::parse("adult-income").unwrap();
    let v = "registry/models/adult-income/versions/v3";
    let cases = [
        (model_key(&m, 3), format!("{v}/model.onnx")),
        (gate_key(&m, 3), format!("{v}/gate.json")),
        (holdout_key(&m, 3), format!("{v}/holdout.json")),
        (manifest_key(&m, 3), format!("{v}/manifest.json")),
        (claim_key(&m, 3), format!("{v}/claim.json")),
        (
            run_index_key(&m, "run-1"),
            "registry/models/adult-income/runs/run-1.json".into(),
        ),
        (
            alias_key(&m, PRODUCTION),
            "registry/models/adult-income/aliases/production.json".into(),
        ),
        (
            release_key(&m, "production.4"),
            "registry/models/adult-income/releases/production.4.json".into(),
        ),
    ];
    for (key, expected) in cases {
        assert_eq!(key.as_str(), expected);
    }
    assert_eq!(version_prefix(&m, 3), format!("{v}/"));
}
