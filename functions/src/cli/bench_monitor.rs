//! `sluice bench-monitor`: what one monitor pass costs on a window of logged predictions
//! (default 1,000,000 rows in 100 prediction-log batches) and on ground truth for 10,000
//! of them, with pandas + SciPy doing the same work on the same files in the same run
//! (`tests/bench/monitor_peer.py`: the two distances per column from the raw data, and a
//! merge of the labels with the predictions).
//!
//! The store is made once per size: a training dataset ingested as any upload is, a
//! model version registered with its profile (no ONNX: the monitor never loads one), the
//! traffic written through the prediction log's own writer, and the labels through the
//! feedback API's use case. Each side runs in its own process, so its peak RSS is its
//! own. Speed and memory targets live here, never in timed tests.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use serde_json::{Value, json};
use sluice_shared::dataset::{IngestOutcome, Manifest};
use sluice_shared::model::{Table, Values};
use sluice_shared::registry::{Artifacts, ModelName, NewRelease, PRODUCTION, Registry};
use sluice_shared::scoring::log::PredictionLog;
use sluice_shared::scoring::{RowPrediction, Scored};
use sluice_shared::storage::ObjectStore;
use sluice_shared::storage::local::LocalStore;

use super::bench::{child_json, fresh_store, generate, ingest_upload, lineage_of, peak_rss};

/// The benchmark's model.
const MODEL: &str = "bench-churn";
/// Rows per scoring request in the generated traffic.
const REQUEST_ROWS: usize = 1000;
/// Labels sent as ground truth.
const LABELS: usize = 10_000;
/// The inputs the model reads (the bench dataset's columns but `id` and the label).
const INPUTS: [(&str, &str); 6] = [
    ("age", "integer"),
    ("income", "float"),
    ("score", "float"),
    ("city", "string"),
    ("segment", "string"),
    ("visits", "integer"),
];

/// Parent side: makes the store if needed, runs each side, prints the comparison.
pub async fn run(rows: usize, dir: &Path, python: &str) -> anyhow::Result<()> {
    let root = prepare(rows, dir).await?;
    let exe = std::env::current_exe()?;
    let sluice = child_json(
        Command::new(&exe)
            .args(["bench-monitor", "--sluice-side"])
            .arg(&root)
            .arg("--rows")
            .arg(rows.to_string()),
    )?;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/bench/monitor_peer.py");
    let peer = child_json(
        Command::new(python)
            .arg(&script)
            .arg(root.join("store"))
            .arg(MODEL),
    )?;
    println!(
        "window: {} logged predictions in {} batches; ground truth: {} labels",
        sluice["rows"], sluice["batches"], LABELS
    );
    let line = |name: &str, v: &Value| {
        println!(
            "{name:<14} window {:>7.2} s ({:>5.2} M rows/s)   ground truth {:>6.2} s   peak RSS {:>6.0} MiB",
            v["window_seconds"].as_f64().unwrap_or(f64::NAN),
            v["rows"].as_f64().unwrap_or(0.0)
                / v["window_seconds"].as_f64().unwrap_or(f64::NAN)
                / 1e6,
            v["ground_truth_seconds"].as_f64().unwrap_or(f64::NAN),
            v["peak_rss"].as_f64().unwrap_or(0.0) / (1 << 20) as f64,
        );
    };
    line("sluice", &sluice);
    line("pandas+scipy", &peer);
    println!(
        "sluice: verdict {}, {} labels matched; peer: {} matched",
        sluice["verdict"], sluice["matched"], peer["matched"]
    );
    Ok(())
}

/// Child side: one monitor pass over the prepared store (its earlier reports removed, so
/// the window is judged afresh), then the ground-truth pass; prints JSON.
pub async fn run_sluice_side(root: &Path) -> anyhow::Result<()> {
    let store_dir = root.join("store");
    // Derived data only: the reports a previous run wrote.
    let _ = std::fs::remove_dir_all(store_dir.join("monitoring"));
    let store: Arc<dyn ObjectStore> = Arc::new(LocalStore::new(&store_dir)?);
    let monitor = sluice_shared::monitoring::Monitor::new(store);
    let now = chrono::Utc::now();
    let started = Instant::now();
    let judged = monitor.run(now).await?;
    let window_seconds = started.elapsed().as_secs_f64();
    let report = &judged.first().context("no window was judged")?.report;
    let started = Instant::now();
    let passes = monitor.ground_truth(now).await?;
    let ground_truth_seconds = started.elapsed().as_secs_f64();
    let matched: u64 = passes
        .iter()
        .flat_map(|p| &p.feedback)
        .map(|b| b.matched)
        .sum();
    println!(
        "{}",
        json!({
            "rows": report.rows, "batches": report.batches.len(), "verdict": report.verdict,
            "window_seconds": window_seconds, "ground_truth_seconds": ground_truth_seconds,
            "matched": matched, "peak_rss": peak_rss(),
        })
    );
    Ok(())
}

/// The store for `rows` logged predictions under `dir` (made once).
async fn prepare(rows: usize, dir: &Path) -> anyhow::Result<PathBuf> {
    let root = dir.join(format!("monitor-{rows}"));
    if root.join("ready").exists() {
        return Ok(root);
    }
    let (scratch, store) = fresh_store(&root).await?;

    // The training data: an upload like any other, and its profile the reference.
    let train = scratch.join("train.csv");
    generate(&train, 16)?;
    let manifest: Manifest = match ingest_upload(&store, &scratch, train, "train.csv").await? {
        IngestOutcome::Versioned { manifest, .. } => *manifest,
        other => bail!("the training data did not version: {other:?}"),
    };

    // The model: its signature and reference, in production.
    let model = ModelName::parse(MODEL)?;
    let registry = Registry::new(store.clone());
    let signature = serde_json::from_value(json!({
        "inputs": INPUTS.iter().map(|(name, kind)| json!({
            "name": name, "type": kind,
            "tensor": if *kind == "string" { "string" } else { "double" },
        })).collect::<Vec<_>>(),
        "task": "binary", "label": "churned", "classes": ["no", "yes"], "outputs": [],
    }))?;
    let reference = manifest
        .profile
        .iter()
        .filter(|c| c.name == "churned" || INPUTS.iter().any(|(n, _)| *n == c.name))
        .cloned()
        .collect();
    let now = chrono::Utc::now();
    let lineage = lineage_of(&manifest, "bench-run");
    let artifacts = Artifacts {
        model_onnx: axum::body::Bytes::from_static(b"not a model: the monitor never loads one"),
        signature,
        metrics: Default::default(),
        holdout: None,
        reference,
    };
    let (version, _) = registry
        .register(
            &model,
            artifacts,
            lineage,
            Default::default(),
            String::new(),
        )
        .await?;
    registry
        .release(
            &model,
            NewRelease {
                alias: PRODUCTION.into(),
                version: version.version,
                actor: "sluice:bench".into(),
                reason: "benchmark".into(),
                gate: Value::Null,
                rolls_back: None,
            },
            None,
        )
        .await?;

    // The traffic: rows drawn as the training data was, through the log's own writer.
    let live = scratch.join("live.csv");
    generate(&live, ((rows as u64 * 64) >> 20) + 1)?;
    let mut reader = csv::Reader::from_path(&live)?;
    let header = reader.headers()?.clone();
    let column = |name: &str| header.iter().position(|h| h == name).expect("bench column");
    let log = PredictionLog::default();
    let mut truth = Vec::new();
    let mut records = reader.records();
    for request in 0..rows.div_ceil(REQUEST_ROWS) {
        let mut columns: Vec<(String, Values)> = INPUTS
            .iter()
            .map(|(name, kind)| {
                let values = if *kind == "string" {
                    Values::Text(vec![])
                } else {
                    Values::Numbers(vec![])
                };
                ((*name).to_owned(), values)
            })
            .collect();
        let mut predictions = Vec::new();
        for row in 0..REQUEST_ROWS.min(rows - request * REQUEST_ROWS) {
            let record = records.next().context("the traffic file ran out")??;
            for (name, values) in &mut columns {
                let text = &record[column(name)];
                match values {
                    Values::Numbers(xs) => xs.push(text.parse().unwrap_or(f64::NAN)),
                    Values::Text(xs) => xs.push((text != "NA").then(|| text.to_owned())),
                }
            }
            let score: f64 = record[column("score")].parse().unwrap_or(0.0);
            let p = 1.0 / (1.0 + (-score).exp());
            predictions.push(RowPrediction::Class {
                label: if p >= 0.5 { "yes".into() } else { "no".into() },
                probabilities: vec![("no".into(), 1.0 - p), ("yes".into(), p)],
            });
            if truth.len() < LABELS {
                truth.push(json!({
                    "request_id": format!("r{request}"), "row": row,
                    "label": &record[column("churned")],
                }));
            }
        }
        let scored = Scored {
            model: model.clone(),
            version: version.version,
            release: Some("production.1".into()),
            predictions,
            request_id: format!("r{request}"),
        };
        if log.record(Table { columns }, scored).is_some() {
            log.flush(&store, &scratch).await?;
        }
    }
    log.flush(&store, &scratch).await?;

    // The ground truth, as the API takes it.
    let feedback = sluice_shared::monitoring::feedback::Feedback::new(store.clone());
    let body = serde_json::to_vec(&truth)?;
    feedback.submit(&model, &body, "sluice:bench", now).await?;
    std::fs::remove_dir_all(&scratch)?;
    std::fs::File::create(root.join("ready"))?.write_all(b"ok\n")?;
    Ok(root)
}
