//! The Spark ingest job (`shared/spark/ingest.py`), run for real on local Spark, against
//! Sluice's own scan of the same bytes: the same verdict, rule names, counts, messages and
//! examples, the same rows and identity, and the same profile (counts and bins exactly,
//! mean and standard deviation within 1e-9 relative). Splits are made small, so records
//! are numbered and stitched across them as on a cluster.

use std::path::Path;

use serde_json::{Value, json};
use sluice_shared::dataset::contract::Contract;
use sluice_shared::dataset::delegation::Snapshot;
use sluice_shared::dataset::scan::{self, ScanOutput};
use sluice_shared::dataset::spark::LocalSpark;
use sluice_shared::dataset::validation::Rule;
use sluice_shared::dataset::{Contracts, DatasetName, IngestOutcome, Ingestor, Upload};
use sluice_shared::registry::{ModelName, PRODUCTION, Registry};

use crate::helpers::{loop_app_with_eval_data, spawn_configured};

fn local_spark(split_bytes: usize) -> LocalSpark {
    LocalSpark {
        spark_submit: sluice_tests::spark_submit(),
        threads: 2,
        conf: vec![
            (
                "spark.sql.files.maxPartitionBytes".into(),
                split_bytes.to_string(),
            ),
            ("spark.ui.enabled".into(), "false".into()),
        ],
    }
}

/// Both scans of `file`: Sluice's, then Spark's (with its output folder).
fn both(file: &Path, contract: &Contract, split_bytes: usize) -> (ScanOutput, ScanOutput) {
    let dir = tempfile::tempdir().unwrap();
    let sluice = scan::scan(
        std::fs::File::open(file).unwrap(),
        contract,
        &dir.path().join("sluice.parquet"),
    )
    .unwrap();
    let spark = local_spark(split_bytes)
        .scan(file, contract, &dir.path().join("spark"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        spark.parquet_written,
        dir.path().join("spark/data.parquet").exists()
    );
    (sluice, spark)
}

fn assert_same_scan(sluice: &ScanOutput, spark: &ScanOutput) {
    assert_eq!(
        (&spark.sha256, spark.bytes, spark.rows, spark.format),
        (&sluice.sha256, sluice.bytes, sluice.rows, sluice.format),
        "identity, size and rows"
    );
    assert_eq!(spark.validation, sluice.validation, "the verdict");
    assert_eq!(spark.parquet_written, sluice.parquet_written);
    assert_eq!(spark.profile.len(), sluice.profile.len());
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1e-300);
    for (ours, theirs) in sluice.profile.iter().zip(&spark.profile) {
        let name = &ours.name;
        let mut exact = theirs.clone();
        let mut expected = ours.clone();
        if let (Some(a), Some(b)) = (&mut expected.numeric, &mut exact.numeric) {
            assert!(
                close(a.mean, b.mean),
                "{name} mean {} vs {}",
                a.mean,
                b.mean
            );
            assert!(close(a.std, b.std), "{name} std {} vs {}", a.std, b.std);
            (b.mean, b.std) = (a.mean, a.std);
        }
        assert_eq!(exact, expected, "{name}'s profile");
    }
}

/// An app on a local store that hands uploads above `threshold` bytes to `spark`.
async fn delegating_app(spark: LocalSpark, threshold: u64) -> crate::helpers::TestApp {
    let root = tempfile::tempdir().unwrap();
    let store: std::sync::Arc<dyn sluice_shared::storage::ObjectStore> =
        std::sync::Arc::new(sluice_shared::storage::local::LocalStore::new(root.path()).unwrap());
    spawn_configured(store.clone(), Some(root), move |state, scratch| {
        let engine = sluice_shared::dataset::delegation::LocalSparkEngine {
            spark,
            work: scratch.join("spark"),
            store,
        };
        state.with_delegation(threshold, std::sync::Arc::new(engine))
    })
    .await
}

fn adult_contract() -> Contract {
    let path = sluice_tests::repo_root().join("contracts/adult.json");
    Contract::from_json(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn spark_scans_adult_as_sluice_does() {
    let file = sluice_tests::shared_dir().join("data/adult/adult.data");
    let (sluice, spark) = both(&file, &adult_contract(), 1 << 20);
    assert!(sluice.validation.passed, "{:?}", sluice.validation);
    assert_eq!(sluice.rows, 32_561);
    assert_same_scan(&sluice, &spark);
}

/// A file that breaks every rule a CSV file can break somewhere, with quoted fields that
/// run over lines and across splits, a bad byte, an alias, stray spaces and a blank line.
#[test]
fn spark_finds_every_broken_rule_as_sluice_does() {
    let contract = Contract::from_json(
        br#"{"dataset": "broken", "min_rows": 1000000,
            "csv": {"has_header": true, "null_tokens": ["NA"]},
            "columns": [
              {"name": "id", "type": "integer", "min": 0},
              {"name": "x", "type": "float", "max": 100},
              {"name": "flag", "type": "boolean"},
              {"name": "size", "type": "string", "allowed": ["S", "M", "L"]},
              {"name": "note", "type": "string", "max_null_fraction": 0.1},
              {"name": "y", "type": "string"}],
            "label": {"column": "y", "values": ["no", "yes"], "aliases": {"Y": "yes"}}}"#,
    )
    .unwrap();
    let mut csv: Vec<u8> = b"id,x,flag,size,note,label\n".to_vec();
    for i in 0..40_000u32 {
        let id = if i % 997 == 3 {
            "-5".to_owned()
        } else {
            i.to_string()
        };
        let x = match i % 991 {
            5 => "abc".to_owned(),
            9 => "1e400".to_owned(),
            11 => "250.5".to_owned(),
            _ => format!("{}.{}", i % 97, i % 10),
        };
        let flag = match i % 983 {
            1 => "maybe",
            _ if i % 2 == 0 => " Yes ",
            _ => "f",
        };
        let size = match i % 977 {
            2 => "XL",
            _ => ["S", " M ", "L", "NA"][(i % 4) as usize],
        };
        let note: &[u8] = match i {
            _ if i % 1000 == 7 => b"\"two\nlines, with a comma\"",
            _ if i % 5 == 0 => b"",
            12_346 => b"caf\xe9",
            _ => b"plain",
        };
        let y = match i % 971 {
            4 => "maybe",
            _ if i % 13 == 0 => "Y",
            _ if i % 3 == 0 => "yes",
            _ => "no",
        };
        csv.extend_from_slice(format!("{id},{x},{flag},{size},").as_bytes());
        csv.extend_from_slice(note);
        csv.extend_from_slice(format!(",{y}").as_bytes());
        if i % 967 == 6 {
            csv.extend_from_slice(b",extra");
        }
        csv.push(b'\n');
        if i == 20_000 {
            csv.push(b'\n');
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broken.csv");
    std::fs::write(&file, &csv).unwrap();
    let (sluice, spark) = both(&file, &contract, 128 << 10);
    let rules: std::collections::BTreeSet<Rule> = sluice
        .validation
        .violations
        .iter()
        .map(|v| v.rule)
        .collect();
    assert_eq!(
        rules.into_iter().collect::<Vec<_>>(),
        [
            Rule::Encoding,
            Rule::ColumnCount,
            Rule::Header,
            Rule::Type,
            Rule::Range,
            Rule::AllowedValues,
            Rule::LabelValues,
            Rule::MaxNullFraction,
            Rule::MinRows
        ],
        "the file breaks every rule a CSV file can"
    );
    assert!(!sluice.parquet_written);
    assert_same_scan(&sluice, &spark);
}

#[test]
fn spark_reports_an_empty_file_as_sluice_does() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("empty.csv");
    std::fs::write(&file, b"").unwrap();
    let (sluice, spark) = both(&file, &adult_contract(), 1 << 20);
    assert_eq!(sluice.validation.violations[0].rule, Rule::EmptyFile);
    assert_same_scan(&sluice, &spark);
}

/// A version Spark wrote (in parts) is a version like any other: Sluice finishes it from
/// the job's result with the identity its own scan gives the same bytes, and it trains,
/// passes the gate and serves.
#[tokio::test]
async fn a_version_spark_wrote_trains_gates_and_serves() {
    let app = loop_app_with_eval_data().await;
    let adult = DatasetName::parse("adult").unwrap();
    let contract = Contracts::new(app.store.clone())
        .current(&adult)
        .await
        .unwrap()
        .unwrap();
    let file = sluice_tests::adult("adult.data");
    let bytes = std::fs::read(&file).unwrap();
    let key = app.upload("adult", "adult.data", bytes.clone()).await;
    let out = tempfile::tempdir().unwrap();
    let scanned = {
        let (contract, out) = (contract.clone(), out.path().to_path_buf());
        tokio::task::spawn_blocking(move || local_spark(1 << 20).scan(&file, &contract, &out))
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let scratch = tempfile::tempdir().unwrap();
    let ingestor = Ingestor::new(app.store.clone(), scratch.path().to_path_buf());
    let upload = Upload {
        key,
        etag: None,
        uploader: Some("spark".into()),
    };
    let outcome = ingestor
        .finish(
            upload,
            contract,
            false,
            scanned,
            Snapshot::Local(out.path().join("data.parquet")),
        )
        .await
        .unwrap();
    let IngestOutcome::Versioned {
        manifest,
        duplicate: false,
        ..
    } = outcome
    else {
        panic!("{outcome:?}")
    };
    assert_eq!((manifest.version, manifest.rows), (1, 32_561));
    assert!(manifest.data_parts.len() >= 2, "{:?}", manifest.data_parts);
    assert_eq!(
        manifest.data.bytes,
        manifest.data_parts.iter().map(|p| p.bytes).sum::<u64>()
    );

    // The same bytes ingested by Sluice itself are the same version.
    let again = app.ingest("adult", "adult-again.data", bytes).await;
    assert_eq!(
        (&again["status"], &again["version"], &again["duplicate"]),
        (&json!("versioned"), &json!(1), &json!(true)),
        "{again}"
    );

    // It trains, passes the gate, reaches production and serves.
    let done = app.retrain(json!({"model": "adult-income"})).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["gate"]["passed"], true, "{done}");
    let model = ModelName::parse("adult-income").unwrap();
    let production = Registry::new(app.store.clone())
        .resolve(&model, PRODUCTION)
        .await
        .unwrap();
    assert_eq!(production.version, 1);
    let first: Vec<&str> = "39, State-gov, 77516, Bachelors, 13, Never-married, Adm-clerical, \
        Not-in-family, White, Male, 2174, 0, 40, United-States"
        .split(", ")
        .collect();
    let adult_contract = app.adult_contract().await;
    let row: serde_json::Map<String, Value> = adult_contract
        .columns
        .iter()
        .zip(&first)
        .map(|(c, v)| {
            let value = v.parse::<i64>().map_or_else(|_| json!(v), |n| json!(n));
            (c.name.clone(), value)
        })
        .filter(|(name, _)| production.signature.inputs.iter().any(|i| &i.name == name))
        .collect();
    let (status, answer) = app
        .score("/api/score/adult-income", &json!({"data": [row]}))
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["version"], 1);
    assert_eq!(answer["predictions"].as_array().unwrap().len(), 1);
}

/// An upload over the threshold is not read by the function: DatasetIngest claims it for
/// local Spark and answers; the upload event delivered again starts nothing new; the
/// runs timer follows the job and publishes `dataset.versioned` once, however often it
/// ticks, and the version is the one Sluice's own scan gives the same bytes.
#[tokio::test]
async fn a_large_upload_is_delegated_once_and_versioned_once() {
    let app = delegating_app(local_spark(1 << 20), 1 << 20).await;
    app.adult_contract().await;
    let bytes = std::fs::read(sluice_tests::adult("adult.data")).unwrap();
    let key = app.upload("adult", "adult.data", bytes.clone()).await;
    let event = app.blob_created(&key).await;
    let (status, first) = app.invoke("DatasetIngest", &event).await;
    assert_eq!(status, 200, "{first}");
    let (_, second) = app.invoke("DatasetIngest", &event).await;
    for (answer, duplicate) in [(&first, false), (&second, true)] {
        let ret = &answer["ReturnValue"];
        assert_eq!(ret["status"], "delegated", "{answer}");
        assert_eq!(ret["duplicate"], duplicate, "{answer}");
    }
    assert!(
        app.events("dataset.").await.is_empty(),
        "nothing to tell yet"
    );
    assert_eq!(
        first["ReturnValue"]["delegation"],
        second["ReturnValue"]["delegation"]
    );
    assert!(
        app.versions("adult").await.is_empty(),
        "not read in the function"
    );

    // The timer follows the job; the event comes out once.
    let timer = json!({"Data": {"timer": {"IsPastDue": false}}, "Metadata": {}});
    let mut events = Vec::new();
    let started = std::time::Instant::now();
    let mut ticks_after = 0;
    while ticks_after < 2 {
        let (status, answer) = app.invoke("RunsTimer", &timer).await;
        assert_eq!(status, 200, "{answer}");
        events.extend(app.events("dataset.").await);
        let states: Vec<_> = answer["ReturnValue"]["delegations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["state"]["state"].as_str().unwrap().to_owned())
            .collect();
        if states.iter().all(|s| s != "claimed" && s != "submitted") {
            ticks_after += 1;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(240),
            "the delegated scan did not finish: {answer}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["type"], "dataset.versioned");
    assert_eq!(events[0]["data"]["version"], 1);
    let manifest = app.manifest("adult", 1).await;
    assert!(!manifest.data_parts.is_empty());
    let ours = scan::scan(
        bytes.as_slice(),
        &adult_contract(),
        &tempfile::tempdir().unwrap().path().join("x.parquet"),
    )
    .unwrap();
    assert_eq!(
        (&manifest.content_sha256, manifest.rows),
        (&ours.sha256, ours.rows)
    );
    assert_eq!(events[0]["data"]["content_sha256"], ours.sha256);
}

/// `sluice dev` with a low threshold: Adult's training file goes through local Spark,
/// its evaluation file through Sluice's own scan, and the loop runs to production on
/// the version Spark wrote, its `dataset.versioned` event published once.
#[test]
fn dev_hands_a_large_upload_to_local_spark_and_runs_the_loop_on_it() {
    let root = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let push =
        |dataset: &str, file: &str| format!("{dataset}={}", sluice_tests::adult(file).display());
    let spark_submit = sluice_tests::spark_submit().display().to_string();
    let stdout = sluice_tests::sluice_run(
        root.path(),
        scratch.path(),
        [
            "--delegate",
            "local-spark",
            "--delegate-above",
            "3000000",
            "--spark-submit",
            &spark_submit,
            "dev",
            "--exit-when-idle",
            "--port",
            "0",
            "--push",
            &push("adult", "adult.data"),
            "--push",
            &push("adult-eval", "adult.test"),
        ],
    );
    assert!(
        stdout.contains("⇢ adult: 3974305 bytes handed to local-spark"),
        "{stdout}"
    );
    assert!(stdout.contains("✓ adult-eval v1"), "{stdout}");
    assert!(stdout.contains("delegated scan of"), "{stdout}");
    let versioned = stdout
        .lines()
        .filter(|l| l.contains("event dataset.versioned datasets/adult/versions/1"))
        .count();
    assert_eq!(versioned, 1, "{stdout}");
    assert!(stdout.contains("registered model version 1"), "{stdout}");
    assert!(
        stdout.contains("released as staging.1, production.1"),
        "{stdout}"
    );
    let manifest: sluice_shared::dataset::Manifest = serde_json::from_slice(
        &std::fs::read(root.path().join("datasets/adult/v1/manifest.json")).unwrap(),
    )
    .unwrap();
    assert!(!manifest.data_parts.is_empty());
}

/// A delegated scan whose job fails ends the delegation with its reason, publishes no
/// event and leaves the upload where it was; the next ticks leave it alone.
#[tokio::test]
async fn a_failed_delegated_scan_is_recorded_with_its_reason_and_nothing_is_lost() {
    let failing = LocalSpark {
        spark_submit: "/bin/false".into(),
        threads: 1,
        conf: vec![],
    };
    let app = delegating_app(failing, 1000).await;
    app.adult_contract().await;
    let bytes = std::fs::read(sluice_tests::adult("adult.data")).unwrap();
    let key = app.upload("adult", "adult.data", bytes).await;
    let (_, answer) = app
        .invoke("DatasetIngest", &app.blob_created(&key).await)
        .await;
    assert_eq!(answer["ReturnValue"]["status"], "delegated", "{answer}");
    let timer = json!({"Data": {"timer": {"IsPastDue": false}}, "Metadata": {}});
    let started = std::time::Instant::now();
    let failed = loop {
        let (status, answer) = app.invoke("RunsTimer", &timer).await;
        assert_eq!(status, 200, "{answer}");
        assert!(
            app.events("dataset.").await.is_empty(),
            "a failed scan makes nothing"
        );
        let state = answer["ReturnValue"]["delegations"][0]["state"].clone();
        if state["state"] == "failed" {
            break state;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "{answer}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert!(
        failed["reason"].as_str().unwrap().contains("exited with 1"),
        "{failed}"
    );
    let (_, later) = app.invoke("RunsTimer", &timer).await;
    assert_eq!(later["ReturnValue"]["delegations"], json!([]), "{later}");
    assert!(app.store.head(&key).await.is_ok(), "the upload stays");
    assert!(app.versions("adult").await.is_empty());
}

/// A delegated scan can be stopped from the command line: `sluice datasets cancel-scan`
/// records who asked and why and stops local Spark's job (its whole process group);
/// following the delegation then ends it failed with that reason, no event, the upload
/// left where it was, and `sluice datasets scans` shows it.
#[tokio::test]
async fn a_delegated_scan_is_cancelled_from_the_command_line() {
    use sluice_shared::dataset::delegation::{DelegationState, LocalSparkEngine};
    use sluice_shared::storage::{ObjectKey, ObjectStore, PutMode};
    let root = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let store: std::sync::Arc<dyn ObjectStore> =
        std::sync::Arc::new(sluice_shared::storage::local::LocalStore::new(root.path()).unwrap());
    Contracts::new(store.clone())
        .put(adult_contract(), "test")
        .await
        .unwrap();
    let key = ObjectKey::parse("landing/adult/adult.data").unwrap();
    let bytes = std::fs::read(sluice_tests::adult("adult.data")).unwrap();
    store
        .put(&key, bytes.into(), PutMode::Overwrite)
        .await
        .unwrap();
    // The engine as the CLI builds it: its jobs in the scratch folder's sluice-spark/.
    let engine = LocalSparkEngine {
        spark: local_spark(1 << 20),
        work: scratch.path().join("sluice-spark"),
        store: store.clone(),
    };
    let ingestor = Ingestor::new(store.clone(), scratch.path().join("ingest"))
        .with_delegation(0, std::sync::Arc::new(engine));
    let upload = Upload {
        key: key.clone(),
        etag: None,
        uploader: None,
    };
    let IngestOutcome::Delegated { delegation, .. } = ingestor.ingest(upload, None).await.unwrap()
    else {
        panic!("not delegated")
    };
    let spark_submit = sluice_tests::spark_submit().display().to_string();
    let cancel = [
        "--delegate",
        "local-spark",
        "--spark-submit",
        &spark_submit,
        "datasets",
        "cancel-scan",
        "adult",
        &delegation.id,
        "--reason",
        "wrong file",
        "--actor",
        "ops",
    ];
    let out = sluice_tests::sluice_run(root.path(), scratch.path(), cancel);
    assert!(out.contains(&delegation.id), "{out}");
    assert!(out.contains("cancel asked by ops"), "{out}");

    let started = std::time::Instant::now();
    let reason = loop {
        let followed = ingestor.follow_delegations().await.unwrap();
        if let Some(DelegationState::Failed { reason }) = followed.first().map(|f| &f.state) {
            break reason.clone();
        }
        if followed.is_empty() {
            let all = ingestor.delegations(None).await.unwrap();
            panic!("the delegation ended otherwise: {all:?}");
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "the cancelled job did not stop"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert!(
        reason.starts_with("canceled by ops: wrong file"),
        "{reason}"
    );
    assert!(store.head(&key).await.is_ok(), "the upload stays");
    let listed = sluice_tests::sluice_run(
        root.path(),
        scratch.path(),
        ["datasets", "scans", "--dataset", "adult"],
    );
    assert!(
        listed.contains("failed: canceled by ops: wrong file"),
        "{listed}"
    );
    // Cancelling what is over changes nothing.
    let again = sluice_tests::sluice_run(root.path(), scratch.path(), cancel);
    assert!(again.contains("failed: canceled by ops"), "{again}");
}
