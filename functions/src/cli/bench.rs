//! `sluice bench`: end-to-end ingest throughput and peak memory, with pandas doing the
//! same read + describe + nunique + null counts on the same file in the same run, and,
//! given `--with-spark <spark-submit>`, the Spark scan (`shared/spark/ingest.py`) on local Spark: what
//! a delegated upload costs, beside what the function does itself (the numbers behind
//! the delegation threshold).
//!
//! Speed and memory targets live here, never in timed tests. Each side runs in its own
//! child process so its peak RSS (`VmHWM` / `ru_maxrss`) is its own.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use serde_json::{Value, json};
use sluice_shared::dataset::contract::Contract;
use sluice_shared::dataset::{Contracts, IngestOutcome, Ingestor, Upload};
use sluice_shared::storage::local::LocalStore;
use sluice_shared::storage::{ObjectKey, ObjectStore};

const CITIES: [&str; 12] = [
    "Oslo", "Lima", "Pune", "Kyiv", "Lagos", "Quito", "Hanoi", "Perth", "Dakar", "Turin", "Bergen",
    "Osaka",
];
const SEGMENTS: [&str; 5] = ["retail", "wholesale", "online", "partner", "staff"];

/// The benchmark dataset's contract (also what pandas is told about the columns).
pub fn contract() -> Contract {
    Contract::from_json(
        json!({
            "dataset": "bench",
            "csv": {"has_header": true, "null_tokens": ["NA"]},
            "columns": [
                {"name": "id", "type": "integer", "min": 0},
                {"name": "age", "type": "integer", "min": 18, "max": 90},
                {"name": "income", "type": "float", "min": 0, "max_null_fraction": 0.1},
                {"name": "score", "type": "float"},
                {"name": "city", "type": "string", "allowed": CITIES, "max_null_fraction": 0.1},
                {"name": "segment", "type": "string", "allowed": SEGMENTS},
                {"name": "visits", "type": "integer", "min": 0},
                {"name": "churned", "type": "string"}
            ],
            "label": {"column": "churned", "values": ["yes", "no"]},
            "min_rows": 1
        })
        .to_string()
        .as_bytes(),
    )
    .expect("the bench contract is valid")
}

/// A benchmark's store at `root`, made afresh: its scratch folder, and the store with
/// the benchmark dataset's contract in it.
pub async fn fresh_store(root: &Path) -> anyhow::Result<(PathBuf, Arc<dyn ObjectStore>)> {
    let _ = std::fs::remove_dir_all(root);
    let scratch = root.join("scratch");
    std::fs::create_dir_all(&scratch)?;
    let store: Arc<dyn ObjectStore> = Arc::new(LocalStore::new(root.join("store"))?);
    eprintln!("preparing {} …", root.display());
    Contracts::new(store.clone())
        .put(contract(), "sluice:bench")
        .await?;
    Ok((scratch, store))
}

/// Drops `file` under the benchmark dataset's landing folder as `name` and ingests it as
/// any upload is.
pub async fn ingest_upload(
    store: &Arc<dyn ObjectStore>,
    scratch: &Path,
    file: PathBuf,
    name: &str,
) -> anyhow::Result<IngestOutcome> {
    let dataset = sluice_shared::dataset::DatasetName::parse("bench")?;
    let key = sluice_shared::dataset::layout::landing(&dataset, name)?;
    store
        .put(
            &key,
            sluice_shared::storage::Payload::File(file),
            sluice_shared::storage::PutMode::Create,
        )
        .await?;
    let upload = Upload {
        key,
        etag: None,
        uploader: None,
    };
    Ok(Ingestor::new(store.clone(), scratch.to_path_buf())
        .ingest(upload, None)
        .await?)
}

/// The lineage a benchmark's model version records: trained by `run` on `manifest`'s
/// dataset version, now, by nothing in particular.
pub fn lineage_of(
    manifest: &sluice_shared::dataset::Manifest,
    run: &str,
) -> sluice_shared::registry::Lineage {
    let now = chrono::Utc::now();
    sluice_shared::registry::Lineage {
        run_id: run.to_owned(),
        run_attempt: 1,
        requested_by: "sluice:bench".into(),
        trigger: "bench".into(),
        dataset: manifest.dataset.clone(),
        dataset_version: manifest.version,
        dataset_sha256: manifest.content_sha256.clone(),
        source_uri: manifest.source.uri.clone(),
        algorithm: "none".into(),
        hyperparameters: json!({}),
        seed: 0,
        config_sha256: String::new(),
        code_version: env!("CARGO_PKG_VERSION").into(),
        compute: "none".into(),
        started_at: now,
        finished_at: now,
        holdout: None,
        job: None,
    }
}

/// Writes a deterministic CSV of about `mib` MiB: mixed numeric and categorical columns,
/// about 3% nulls in `income` and `city`.
pub fn generate(path: &Path, mib: u64) -> anyhow::Result<u64> {
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    writeln!(out, "id,age,income,score,city,segment,visits,churned")?;
    let target = mib << 20;
    let mut written = 0u64;
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        // xorshift64*: fast and reproducible.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    let mut id = 0u64;
    let mut line = String::with_capacity(128);
    while written < target {
        line.clear();
        let r = next();
        let income = if r % 33 == 0 {
            "NA".to_owned()
        } else {
            format!("{:.2}", ((r >> 20) % 20_000_000) as f64 / 100.0)
        };
        let city = if r % 29 == 0 {
            "NA"
        } else {
            CITIES[(r >> 8) as usize % CITIES.len()]
        };
        use std::fmt::Write as _;
        let _ = writeln!(
            line,
            "{id},{},{income},{:.4},{city},{},{},{}",
            18 + (r >> 3) % 73,
            ((r >> 16) % 1_000_000) as f64 / 1_000.0 - 500.0,
            SEGMENTS[(r >> 40) as usize % SEGMENTS.len()],
            (r >> 45) % 400,
            if (r >> 50) % 4 == 0 { "yes" } else { "no" },
        );
        out.write_all(line.as_bytes())?;
        written += line.len() as u64;
        id += 1;
    }
    out.flush()?;
    Ok(std::fs::metadata(path)?.len())
}

/// Peak resident memory of this process, in bytes (Linux `VmHWM`).
pub(super) fn peak_rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(str::to_owned)
        })
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Child side: ingests `file` end to end into a fresh local store, prints JSON.
pub async fn run_sluice_side(file: &Path, scratch: &Path) -> anyhow::Result<()> {
    let root = tempfile::tempdir_in(scratch)?;
    let store: Arc<dyn ObjectStore> = Arc::new(LocalStore::new(root.path())?);
    Contracts::new(store.clone())
        .put(contract(), "sluice:bench")
        .await?;
    // The upload is linked into landing/ rather than copied: copying is not ingesting.
    let key = ObjectKey::parse("landing/bench/data.csv")?;
    std::fs::create_dir_all(root.path().join("landing/bench"))?;
    std::fs::hard_link(file, root.path().join(key.as_str()))
        .or_else(|_| std::fs::copy(file, root.path().join(key.as_str())).map(|_| ()))?;
    let ingestor = Ingestor::new(store, scratch.to_path_buf());
    let started = Instant::now();
    let outcome = ingestor
        .ingest(
            Upload {
                key,
                etag: None,
                uploader: None,
            },
            None,
        )
        .await?;
    let seconds = started.elapsed().as_secs_f64();
    let (rows, sha256, snapshot_bytes) = match outcome {
        IngestOutcome::Versioned { manifest, .. } => {
            (manifest.rows, manifest.content_sha256, manifest.data.bytes)
        }
        other => bail!("bench data did not version: {other:?}"),
    };
    println!(
        "{}",
        json!({"seconds": seconds, "peak_rss": peak_rss(), "rows": rows, "sha256": sha256, "snapshot_bytes": snapshot_bytes})
    );
    Ok(())
}

/// The Spark side: the scan job on local Spark (one worker thread per core), timed, its
/// peak memory the largest sum of the resident memory of its processes (the JVM and its
/// Python workers), sampled every 50 ms.
fn run_spark_side(spark_submit: &Path, file: &Path, dir: &Path) -> anyhow::Result<Value> {
    use std::os::unix::process::CommandExt;
    let spark = sluice_shared::dataset::spark::LocalSpark {
        spark_submit: spark_submit.to_path_buf(),
        threads: 0,
        conf: vec![
            ("spark.ui.enabled".into(), "false".into()),
            ("spark.driver.memory".into(), "2g".into()),
        ],
    };
    let work = tempfile::tempdir_in(dir)?;
    let output = work.path().join("out");
    let mut command = spark.command(work.path(), &file.to_string_lossy(), &contract(), &output)?;
    let started = Instant::now();
    let mut child = command
        .process_group(0)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", spark_submit.display()))?;
    let group = child.id();
    let mut stderr = child.stderr.take().expect("piped");
    let log = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        text
    });
    let mut peak = 0;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        peak = peak.max(group_rss(group));
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let seconds = started.elapsed().as_secs_f64();
    if !status.success() {
        let log = log.join().unwrap_or_default();
        bail!(
            "the Spark job failed ({status}): {}",
            sluice_shared::dataset::spark::log_tail(&log)
        );
    }
    let scan = sluice_shared::dataset::spark::read_result(&output)?;
    Ok(json!({"seconds": seconds, "peak_rss": peak, "rows": scan.rows, "sha256": scan.sha256}))
}

/// The resident memory of every process in process group `group`, summed (Linux).
fn group_rss(group: u32) -> u64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut total = 0;
    for entry in entries.flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // Fields after the command name (which may hold spaces, in parentheses):
        // state ppid pgrp … ; rss is field 24, in pages (4 KiB on x86-64 Linux).
        let Some((_, rest)) = stat.rsplit_once(") ") else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.get(2).and_then(|g| g.parse::<u32>().ok()) == Some(group) {
            let pages: u64 = fields.get(21).and_then(|r| r.parse().ok()).unwrap_or(0);
            total += pages * 4096;
        }
    }
    total
}

/// Parent side: generates the file if needed, runs each side, prints the comparison.
pub fn run(mib: u64, dir: &Path, python: &str, spark_submit: Option<&Path>) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let file = dir.join(format!("bench-{mib}MiB.csv"));
    if !file.exists() {
        eprintln!("generating {} …", file.display());
        generate(&file, mib)?;
    }
    let bytes = std::fs::metadata(&file)?.len();
    let exe = std::env::current_exe()?;
    let sluice = child_json(
        Command::new(&exe)
            .args(["bench", "--sluice-side"])
            .arg(&file)
            .arg("--dir")
            .arg(dir),
    )?;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/bench/pandas_ingest.py");
    let pandas = child_json(Command::new(python).arg(&script).arg(&file))?;
    let row = |name: &str, v: &Value| {
        let s = v["seconds"].as_f64().unwrap_or(f64::NAN);
        let mb = bytes as f64 / 1e6;
        println!(
            "{name:<8} {:>9.2} s {:>9.1} MB/s {:>9.0} MiB peak RSS ({:.2}× file size)",
            s,
            mb / s,
            v["peak_rss"].as_f64().unwrap_or(0.0) / (1 << 20) as f64,
            v["peak_rss"].as_f64().unwrap_or(0.0) / bytes as f64
        );
    };
    println!(
        "file: {} ({:.1} MB, {} rows)",
        file.display(),
        bytes as f64 / 1e6,
        sluice["rows"]
    );
    row("sluice", &sluice);
    println!(
        "         Parquet snapshot {:.1} MB ({:.2}× the CSV)",
        sluice["snapshot_bytes"].as_f64().unwrap_or(0.0) / 1e6,
        sluice["snapshot_bytes"].as_f64().unwrap_or(0.0) / bytes as f64
    );
    row("pandas", &pandas);
    let speedup = pandas["seconds"].as_f64().unwrap_or(f64::NAN)
        / sluice["seconds"].as_f64().unwrap_or(f64::NAN);
    println!(
        "sluice/pandas throughput: {speedup:.2}× (target ≥ 5×); sluice peak memory below file size: {}",
        sluice["peak_rss"].as_u64().unwrap_or(u64::MAX) < bytes
    );
    if let Some(spark_submit) = spark_submit {
        let spark = run_spark_side(spark_submit, &file, dir)?;
        row("spark", &spark);
        let ratio = spark["seconds"].as_f64().unwrap_or(f64::NAN)
            / sluice["seconds"].as_f64().unwrap_or(f64::NAN);
        println!(
            "spark/sluice time: {ratio:.2}×; the same rows and identity: {}",
            spark["rows"] == sluice["rows"] && spark["sha256"] == sluice["sha256"]
        );
    }
    Ok(())
}

pub(super) fn child_json(cmd: &mut Command) -> anyhow::Result<Value> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).with_context(|| format!("{cmd:?} printed {stdout:?}"))
}

/// The scoring benchmark's baseline: the cheapest answer axum can give to a POST of the
/// same shape (body read, fixed JSON back), on one port of loopback.
pub async fn echo(port: u16, bytes: usize) -> anyhow::Result<()> {
    let body: &'static str = Box::leak(
        format!("{{\"pad\":\"{}\"}}", "x".repeat(bytes.saturating_sub(10))).into_boxed_str(),
    );
    let app = axum::Router::new().fallback(axum::routing::post(
        move |_: axum::body::Bytes| async move {
            (
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                body,
            )
        },
    ));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!(
        "listening on http://127.0.0.1:{}",
        listener.local_addr()?.port()
    );
    axum::serve(listener, app).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_data_satisfies_the_bench_contract() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("b.csv");
        let size = generate(&file, 1).unwrap();
        assert!(size >= 1 << 20);
        let out = sluice_shared::dataset::scan::scan(
            std::fs::File::open(&file).unwrap(),
            &contract(),
            &dir.path().join("b.parquet"),
        )
        .unwrap();
        assert!(out.validation.passed, "{:?}", out.validation.violations);
        let city = out.profile.iter().find(|p| p.name == "city").unwrap();
        assert!(city.nulls > 0 && city.distinct == CITIES.len() as u64);
    }
}
