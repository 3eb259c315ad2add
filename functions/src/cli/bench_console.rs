//! `sluice bench-console`: each console page's server time on a large store (default
//! 1,000 model versions, 10,000 runs and 500 dataset versions, with 100 quarantined
//! uploads), beside what listing the store's folders costs, in the same run. The goal
//! is under 50 ms a page.
//!
//! The store is made once per size, through the use cases where they matter to what the
//! pages read: one upload ingested and one quarantined as any are (the other versions and
//! reports are copies of theirs under new numbers), versions registered through the
//! registry with releases among them, runs requested through `Runs::request` (so each is
//! indexed and audited as in production). Pages are timed in this process through the
//! router with a signed-in session: the time from request to the last byte of the body.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::body::Body;
use axum::http::{Request, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use sluice_shared::dataset::ingest::QuarantineReport;
use sluice_shared::dataset::{IngestOutcome, Manifest, layout};
use sluice_shared::registry::{Artifacts, Lineage, ModelName, NewRelease, PRODUCTION, STAGING};
use sluice_shared::runs::{RetrainRequest, Runs};
use sluice_shared::storage::local::LocalStore;
use sluice_shared::storage::{ObjectStore, PutMode, put_json};
use tower::ServiceExt;

use super::bench::{fresh_store, generate, ingest_upload, lineage_of};
use crate::host::state::AppState;

const MODEL: &str = "bench-churn";
const KEY: &str = "bench-console-admin-key";
/// Quarantined uploads in the store.
const QUARANTINED: usize = 100;
/// Timed requests per page (after one to warm up).
const SAMPLES: usize = 9;

/// The benchmark's size.
#[derive(Clone, Copy, Debug)]
pub struct Size {
    pub versions: u32,
    pub runs: u32,
    pub dataset_versions: u32,
}

pub async fn run(size: Size, dir: &Path) -> anyhow::Result<()> {
    let root = prepare(size, dir).await?;
    let store: Arc<dyn ObjectStore> = Arc::new(LocalStore::new(root.join("store"))?);
    let state = AppState::new(store.clone(), root.join("scratch"))
        .with_admin_keys(&[KEY.parse().context("bench key")?]);
    let app = crate::host::startup::router(state);
    let signed_in = app
        .clone()
        .oneshot(
            Request::post("/api/console/sign-in")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(format!("key={KEY}")))?,
        )
        .await?;
    let cookie = signed_in
        .headers()
        .get(header::SET_COOKIE)
        .context("no session")?
        .to_str()?
        .split(';')
        .next()
        .unwrap_or_default()
        .to_owned();
    let runs = Runs::new(store.clone(), Arc::new(no_compute(&root, store.clone())));
    let run = runs.recent(1).await?.pop().context("no run")?.id;
    let report = store
        .list(&layout::quarantine_prefix(&dataset()))
        .await?
        .into_iter()
        .find_map(|m| Some(layout::parse_quarantine_report_key(&m.key)?.1.to_owned()))
        .context("no quarantined upload")?;
    let (v, d) = (size.versions, size.dataset_versions);
    let pages = [
        ("overview", "/api/console/".to_owned()),
        ("datasets", "/api/console/datasets".to_owned()),
        ("dataset", "/api/console/datasets/bench".to_owned()),
        (
            "dataset version",
            format!("/api/console/datasets/bench/versions/{d}"),
        ),
        (
            "quarantine report",
            format!("/api/console/datasets/bench/quarantine/{report}"),
        ),
        ("model", format!("/api/console/models/{MODEL}")),
        (
            "model, sorted",
            format!("/api/console/models/{MODEL}?sort=roc_auc"),
        ),
        (
            "model, at a time",
            format!("/api/console/models/{MODEL}?at=2030-01-01T00:00"),
        ),
        (
            "compare",
            format!("/api/console/models/{MODEL}/compare?a=1&b={v}"),
        ),
        (
            "lineage",
            format!("/api/console/models/{MODEL}/versions/{v}"),
        ),
        (
            "monitoring",
            format!("/api/console/models/{MODEL}/monitoring"),
        ),
        ("runs", "/api/console/runs".to_owned()),
        ("run", format!("/api/console/runs/{run}")),
        ("audit", "/api/console/audit".to_owned()),
        (
            "audit, whole chain",
            "/api/console/audit?verify=all".to_owned(),
        ),
    ];
    println!(
        "store: {} model versions, {} runs, {} dataset versions, {} quarantined uploads",
        size.versions, size.runs, size.dataset_versions, QUARANTINED
    );
    println!(
        "{:<20} {:>10} {:>10} {:>10}",
        "page", "median ms", "max ms", "KiB"
    );
    for (name, path) in &pages {
        let mut times = Vec::new();
        let mut bytes = 0;
        for i in 0..=SAMPLES {
            let started = Instant::now();
            let answer = app
                .clone()
                .oneshot(
                    Request::get(path.as_str())
                        .header(header::COOKIE, &cookie)
                        .body(Body::empty())?,
                )
                .await?;
            let status = answer.status();
            let body = answer.into_body().collect().await?.to_bytes();
            let took = started.elapsed();
            if status != 200 {
                bail!("{path}: {status}: {}", String::from_utf8_lossy(&body));
            }
            bytes = body.len();
            if i > 0 {
                times.push(took);
            }
        }
        times.sort();
        println!(
            "{name:<20} {:>10.1} {:>10.1} {:>10.0}",
            ms(times[times.len() / 2]),
            ms(*times.last().expect("samples")),
            bytes as f64 / 1024.0
        );
    }
    println!("listing the store (what the pages' queries start from):");
    for prefix in [
        "runs/".to_owned(),
        format!("registry/models/{MODEL}/"),
        layout::DATASETS.to_owned(),
        "audit/records/".to_owned(),
    ] {
        let mut times = Vec::new();
        let mut count = 0;
        for _ in 0..SAMPLES {
            let started = Instant::now();
            count = store.list(&prefix).await?.len();
            times.push(started.elapsed());
        }
        times.sort();
        println!(
            "{prefix:<32} {:>8} objects {:>10.1} ms",
            count,
            ms(times[times.len() / 2])
        );
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn dataset() -> sluice_shared::dataset::DatasetName {
    sluice_shared::dataset::DatasetName::parse("bench").expect("valid name")
}

/// Compute that is never asked to run anything: runs are only requested here.
fn no_compute(
    root: &Path,
    store: Arc<dyn ObjectStore>,
) -> sluice_shared::runs::local::LocalCompute {
    sluice_shared::runs::local::LocalCompute::new(store, root.join("jobs"), PathBuf::from("sluice"))
}

/// The store for `size` under `dir` (made once).
async fn prepare(size: Size, dir: &Path) -> anyhow::Result<PathBuf> {
    let root = dir.join(format!(
        "console-{}-{}-{}",
        size.versions, size.runs, size.dataset_versions
    ));
    if root.join("ready").exists() {
        return Ok(root);
    }
    let (scratch, store) = fresh_store(&root).await?;

    // Dataset versions: one ingested, the others its manifest under new numbers.
    let train = scratch.join("train.csv");
    generate(&train, 1)?;
    let IngestOutcome::Versioned { manifest, .. } =
        ingest_upload(&store, &scratch, train, "train.csv").await?
    else {
        bail!("the bench upload did not version")
    };
    let manifest: Manifest = *manifest;
    for v in 2..=size.dataset_versions {
        let mut copy = manifest.clone();
        copy.version = v;
        copy.parent_version = Some(v - 1);
        copy.content_sha256 = format!("{v:064x}");
        put_json(
            store.as_ref(),
            &layout::manifest(&copy.dataset, v),
            &copy,
            PutMode::Create,
        )
        .await?;
    }

    // Quarantined uploads: one ingested, the others its report under new names.
    let bad = scratch.join("bad.csv");
    std::fs::write(
        &bad,
        "id,age,income,score,city,segment,visits,churned\n1,300,x,0.5,Nowhere,a,1,maybe\n",
    )?;
    let IngestOutcome::Quarantined { report, .. } =
        ingest_upload(&store, &scratch, bad, "bad.csv").await?
    else {
        bail!("the bad upload was not quarantined")
    };
    let report: QuarantineReport = *report;
    for i in 1..QUARANTINED {
        let at = report.quarantined_at - chrono::Duration::minutes(i as i64);
        let copy = layout::quarantine_copy(&report.dataset, at, "bad.csv");
        let mut r = report.clone();
        r.quarantined_at = at;
        r.report_key = layout::quarantine_report(&copy);
        put_json(store.as_ref(), &r.report_key, &r, PutMode::Create).await?;
    }

    // Model versions, through the registry, with a release every 50 versions.
    let model = ModelName::parse(MODEL)?;
    let runs = Runs::new(store.clone(), Arc::new(no_compute(&root, store.clone())));
    let config = sluice_shared::training::TrainingConfig::from_json(
        json!({"model": MODEL, "dataset": "bench", "label": "churned", "positive": "yes",
               "exclude": ["id"]})
        .to_string()
        .as_bytes(),
    )?;
    runs.configs().put(&config, "sluice:bench", "bench").await?;
    let registry = runs.registry();
    let signature: sluice_shared::model::Signature = serde_json::from_value(json!({
        "inputs": [{"name": "age", "type": "integer", "tensor": "double"},
                   {"name": "city", "type": "string", "tensor": "string"}],
        "task": "binary", "label": "churned", "classes": ["no", "yes"], "outputs": [],
    }))?;
    for i in 1..=size.versions {
        let wobble = (i as f64 * 0.618).fract();
        let metrics = serde_json::from_value(json!({
            "task": "binary", "rows": 1000, "accuracy": 0.80 + 0.05 * wobble,
            "roc_auc": 0.85 + 0.05 * wobble, "log_loss": 0.40 - 0.05 * wobble,
            "class_counts": [],
        }))?;
        let dataset_version = (i - 1) % size.dataset_versions + 1;
        let lineage = Lineage {
            dataset_version,
            dataset_sha256: format!("{dataset_version:064x}"),
            algorithm: "logistic_regression".into(),
            seed: i as u64,
            ..lineage_of(&manifest, &format!("bench-run-{i}"))
        };
        let artifacts = Artifacts {
            model_onnx: axum::body::Bytes::from_static(b"not a model: pages never load one"),
            signature: signature.clone(),
            metrics,
            holdout: None,
            reference: vec![],
        };
        registry
            .register(
                &model,
                artifacts,
                lineage,
                Default::default(),
                String::new(),
            )
            .await?;
        if i % 50 == 1 {
            for alias in [STAGING, PRODUCTION] {
                let release = NewRelease {
                    alias: alias.into(),
                    version: i,
                    actor: "sluice:bench".into(),
                    reason: "benchmark".into(),
                    gate: Value::Null,
                    rolls_back: None,
                };
                let current = registry.alias(&model, alias).await?;
                let expected = current.as_ref().map(|(a, etag)| (a, etag));
                registry.release(&model, release, expected).await?;
            }
        }
    }

    // Runs, requested as any are: indexed by dataset version and audited.
    for i in 0..size.runs {
        let request: RetrainRequest = serde_json::from_value(json!({
            "model": MODEL, "dataset_version": i % size.dataset_versions + 1,
            "requested_by": "sluice:bench", "reason": "benchmark",
            "config_overrides": {"seed": i},
        }))?;
        runs.request(&request, "bench", "bench").await?;
        if i % 1000 == 999 {
            eprintln!("  {} runs", i + 1);
        }
    }
    std::fs::write(root.join("ready"), b"")?;
    Ok(root)
}
