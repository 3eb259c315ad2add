//! The CLI's commands for people: models, runs, promotion and the audit trail, on the
//! configured store directly (whoever runs them has the store's credentials).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Subcommand;
use serde_json::json;
use sluice_shared::audit::AuditLog;
use sluice_shared::catalog;
use sluice_shared::model::Runtime;
use sluice_shared::registry::promotion::{Change, Releases};
use sluice_shared::registry::{ModelName, Registry};
use sluice_shared::runs::local::LocalCompute;
use sluice_shared::runs::{RetrainRequest, Runs};
use sluice_shared::storage::ObjectStore;
use sluice_shared::training::configs::Configs;

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Every model, its versions and what production and staging point at.
    List,
    /// A model's versions and releases, or one version (NAME@VERSION).
    Show { target: String },
    /// Why a version predicts what it does: run, dataset version, upload, releases.
    Lineage { target: String },
    /// Store a training config (checked against its dataset's contract and task) as its
    /// model's next config version.
    Put {
        file: PathBuf,
        #[arg(long, env = "USER", default_value = "operator")]
        actor: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    List,
    Show {
        id: String,
    },
    /// The training command's output (the current attempt's, unless `--attempt`).
    Logs {
        id: String,
        #[arg(long)]
        attempt: Option<u32>,
    },
    /// Try a failed or canceled run again: its next attempt, started by the runs timer
    /// of the host that follows runs (`sluice dev`, or the Function App).
    Retry {
        id: String,
        #[arg(long, default_value = "")]
        reason: String,
        #[arg(long, env = "USER", default_value = "operator")]
        requested_by: String,
    },
    /// Queue a retrain request as other systems do (the embedded retrain-requests queue;
    /// `sluice dev` delivers it to RetrainQueue).
    Request {
        model: String,
        /// A version number or "latest".
        #[arg(long, default_value = "latest")]
        dataset_version: String,
        #[arg(long, default_value = "")]
        reason: String,
        #[arg(long, env = "USER", default_value = "operator")]
        requested_by: String,
    },
}

fn target(s: &str) -> anyhow::Result<(ModelName, Option<u32>)> {
    let (name, version) = match s.split_once('@') {
        Some((n, v)) => (
            n,
            Some(
                v.parse()
                    .with_context(|| format!("{v:?} is not a version number"))?,
            ),
        ),
        None => (s, None),
    };
    Ok((ModelName::parse(name)?, version))
}

/// A compute backend for commands that read runs or store configs: never asked to run
/// anything here.
fn no_compute(store: &Arc<dyn ObjectStore>) -> Arc<LocalCompute> {
    Arc::new(LocalCompute::new(
        store.clone(),
        std::env::temp_dir(),
        "sluice".into(),
    ))
}

fn print(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn correlation() -> String {
    format!("cli-{}", uuid::Uuid::new_v4())
}

pub async fn models(store: Arc<dyn ObjectStore>, command: ModelsCommand) -> anyhow::Result<()> {
    let registry = Registry::new(store.clone());
    match command {
        ModelsCommand::List => {
            let release = |r: &Option<sluice_shared::registry::Release>| {
                r.as_ref()
                    .map_or_else(|| "-".to_owned(), |r| format!("v{} ({})", r.version, r.id))
            };
            for m in catalog::models(&registry).await? {
                println!(
                    "{:<24} {:<10} versions {:<10} production {:<22} staging {}",
                    m.model,
                    m.task.map_or("-", |t| t.as_str()),
                    format!("1..{}", m.versions.last().copied().unwrap_or(0)),
                    release(&m.production),
                    release(&m.staging)
                );
            }
        }
        ModelsCommand::Show { target: t } => match target(&t)? {
            (m, Some(v)) => print(&registry.version(&m, v).await?)?,
            (m, None) => print(&catalog::history(&registry, &m).await?)?,
        },
        ModelsCommand::Put { file, actor } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let config = sluice_shared::training::TrainingConfig::from_json(&bytes)
                .with_context(|| file.display().to_string())?;
            let stored = Configs::new(store.clone())
                .put(&config, &actor, &correlation())
                .await
                .with_context(|| file.display().to_string())?;
            let task = stored
                .config
                .task()
                .map_or("task decided by its data", |t| t.as_str());
            match stored.changed {
                true => println!(
                    "config {} v{} ({task})",
                    stored.config.model, stored.version
                ),
                false => println!(
                    "config {} v{} ({task}) unchanged",
                    stored.config.model, stored.version
                ),
            }
        }
        ModelsCommand::Lineage { target: t } => {
            let (m, v) = target(&t)?;
            let v = v.context("give a version: NAME@VERSION")?;
            let runs = Runs::new(store.clone(), no_compute(&store));
            let found = catalog::lineage(&runs, &m, v).await?;
            let (version, l) = (&found.version, &found.version.lineage);
            println!("model     {m}@{v} (sha256 {})", version.model_sha256);
            println!(
                "trained   by {} via {} in run {} on {}",
                l.requested_by, l.trigger, l.run_id, l.compute
            );
            println!(
                "algorithm {} ({}) seed {} config {} ({})",
                l.algorithm,
                version.signature.task,
                l.seed,
                &l.config_sha256[..12],
                l.code_version
            );
            println!(
                "data      {}@{} (sha256 {}) from {}",
                l.dataset, l.dataset_version, l.dataset_sha256, l.source_uri
            );
            if let Some(h) = &l.holdout {
                println!(
                    "holdout   {} rows of {}@{} kept by the run (sha256 {})",
                    h.rows,
                    l.dataset,
                    l.dataset_version,
                    &h.sha256[..12]
                );
            }
            for r in &found.releases {
                println!(
                    "released  {} at {} by {}: {}",
                    r.id, r.at, r.actor, r.reason
                );
            }
        }
    }
    Ok(())
}

pub async fn runs(
    store: Arc<dyn ObjectStore>,
    queue_dir: &Path,
    command: RunsCommand,
) -> anyhow::Result<()> {
    let runs = Runs::new(store.clone(), no_compute(&store));
    match command {
        RunsCommand::List => {
            for r in runs.list().await? {
                println!(
                    "{}  {:<9} {}@{} on {}@{}  {}",
                    r.id,
                    format!("{:?}", r.status).to_lowercase(),
                    r.model,
                    r.model_version
                        .map_or_else(|| "-".into(), |v| v.to_string()),
                    r.dataset,
                    r.dataset_version,
                    r.error.unwrap_or_default()
                );
            }
        }
        RunsCommand::Show { id } => print(&runs.get(&id).await?.0)?,
        RunsCommand::Logs { id, attempt } => {
            let attempt = match attempt {
                Some(n) => n,
                None => runs.get(&id).await?.0.attempt,
            };
            let logs = runs
                .logs(&id, attempt)
                .await?
                .with_context(|| format!("no logs for attempt {attempt} of {id} (yet)"))?;
            print!("{logs}");
        }
        RunsCommand::Retry {
            id,
            reason,
            requested_by,
        } => {
            let correlation = uuid::Uuid::new_v4().to_string();
            let run = runs
                .retry(&id, &requested_by, &reason, &correlation)
                .await?;
            println!(
                "{id}: attempt {} queued; the runs timer starts it",
                run.attempt
            );
        }
        RunsCommand::Request {
            model,
            dataset_version,
            reason,
            requested_by,
        } => {
            let request: RetrainRequest = serde_json::from_value(json!({
                "model": model,
                "dataset_version": dataset_version.parse::<u32>().map_or(json!(dataset_version), |n| json!(n)),
                "requested_by": requested_by,
                "reason": reason,
            }))?;
            let queue = crate::cli::devhost::retrain_queue(queue_dir)?;
            let id = uuid::Uuid::new_v4().to_string();
            queue.enqueue(&id, serde_json::to_value(&request)?)?;
            println!(
                "queued retrain request {id} for {}; `sluice dev` delivers it to RetrainQueue",
                request.model
            );
        }
    }
    Ok(())
}

pub async fn promote(
    store: Arc<dyn ObjectStore>,
    model: &str,
    version: u32,
    alias: &str,
    reason: &str,
    actor: &str,
) -> anyhow::Result<()> {
    let model = ModelName::parse(model)?;
    if alias == sluice_shared::registry::PRODUCTION {
        bail!(
            "production is reached through the gate and `sluice approve`; promote to staging or a named alias"
        );
    }
    let change = Change {
        actor,
        reason,
        correlation_id: &correlation(),
    };
    let release = Releases::new(store)
        .release(&model, alias, version, json!({"manual": true}), change)
        .await?;
    println!("{model}@{version} is {alias} ({})", release.id);
    Ok(())
}

pub async fn approve(
    store: Arc<dyn ObjectStore>,
    model: &str,
    version: u32,
    actor: &str,
    reason: &str,
) -> anyhow::Result<()> {
    let model = ModelName::parse(model)?;
    let change = Change {
        actor,
        reason,
        correlation_id: &correlation(),
    };
    let release = Releases::new(store)
        .approve(&model, version, change)
        .await?;
    println!("{model}@{version} is in production ({})", release.id);
    Ok(())
}

pub async fn rollback(
    store: Arc<dyn ObjectStore>,
    model: &str,
    reason: &str,
    actor: &str,
) -> anyhow::Result<()> {
    let model = ModelName::parse(model)?;
    let change = Change {
        actor,
        reason,
        correlation_id: &correlation(),
    };
    let release = Releases::new(store).rollback(&model, change).await?;
    println!(
        "{model} production is v{} again ({} rolls back {})",
        release.version,
        release.id,
        release.rolls_back.unwrap_or_default()
    );
    Ok(())
}

pub async fn audit(store: Arc<dyn ObjectStore>, verify: bool) -> anyhow::Result<()> {
    let audit = AuditLog::new(store);
    if verify {
        let verified = audit
            .verify()
            .await
            .context("the audit trail does not verify")?;
        println!(
            "audit trail verified: {} records, last hash {}",
            verified.records, verified.last_hash
        );
        return Ok(());
    }
    for r in audit.records().await? {
        let action = serde_json::to_value(r.entry.action)?;
        println!(
            "{:>5} {} {:<16} {:<32} {} — {}",
            r.seq,
            r.at.format("%Y-%m-%d %H:%M:%S"),
            action.as_str().unwrap_or("?"),
            r.entry.subject,
            r.entry.actor,
            r.entry.reason
        );
    }
    Ok(())
}

/// `sluice score`: a JSON Lines file of records, scored in batches with progress on
/// stderr; each output line is one row's prediction, in input order.
pub async fn score_file(
    store: Arc<dyn ObjectStore>,
    runtime: &'static Runtime,
    model: &str,
    target: sluice_shared::scoring::Target,
    input: &Path,
    output: Option<&Path>,
    batch: usize,
) -> anyhow::Result<()> {
    use std::io::{BufRead, Write};
    let model = ModelName::parse(model)?;
    let scorer =
        sluice_shared::scoring::Scorer::new(Registry::new(store), runtime, 1, batch.max(1));
    let reader = std::io::BufReader::new(
        std::fs::File::open(input).with_context(|| format!("opening {}", input.display()))?,
    );
    let mut out: Box<dyn Write> = match output {
        Some(path) => Box::new(std::io::BufWriter::new(std::fs::File::create(path)?)),
        None => Box::new(std::io::BufWriter::new(std::io::stdout())),
    };
    let (mut rows, mut done, started) =
        (Vec::with_capacity(batch), 0usize, std::time::Instant::now());
    let mut lines = reader.lines().enumerate().peekable();
    while let Some((n, line)) = lines.next() {
        let line = line?;
        if !line.trim().is_empty() {
            let row: serde_json::Value =
                serde_json::from_str(&line).with_context(|| format!("line {}: not JSON", n + 1))?;
            rows.push(row);
        }
        if rows.len() == batch.max(1) || (lines.peek().is_none() && !rows.is_empty()) {
            let body = serde_json::to_vec(&json!({"data": rows}))?;
            let scored = scorer
                .score(&model, &target, &body, "batch")
                .await
                .map_err(|e| match e {
                    sluice_shared::scoring::ScoreError::Input(i) => anyhow::anyhow!(
                        "row {} ({}): {}",
                        done + i.row.unwrap_or(0) + 1,
                        i.column.unwrap_or_default(),
                        i.message
                    ),
                    other => other.into(),
                })?;
            for p in &scored.predictions {
                // The row's answer as `Score` gives it, plus the version that gave it.
                let mut line = serde_json::to_value(p)?;
                line["version"] = json!(scored.version);
                serde_json::to_writer(&mut out, &line)?;
                out.write_all(b"\n")?;
            }
            done += rows.len();
            rows.clear();
            eprintln!(
                "scored {done} rows with {model}@{} ({:.0} rows/s)",
                scored.version,
                done as f64 / started.elapsed().as_secs_f64().max(1e-9)
            );
        }
    }
    out.flush()?;
    Ok(())
}

/// `sluice monitor run`: one pass, each judged window and each model's ground truth on
/// a line.
pub async fn monitor_run(state: &crate::host::state::AppState) -> anyhow::Result<()> {
    let pass =
        sluice_shared::runs::lifecycle::monitor(&state.runs, &state.monitor, chrono::Utc::now())
            .await?;
    if pass.windows.is_empty() && pass.ground_truth.is_empty() {
        println!("nothing new logged by a production model, and no new feedback");
    }
    for w in &pass.windows {
        print_window(&w.report);
        if let Some(run) = &w.report.retrain_run {
            println!("  retrain requested: {run}");
        }
    }
    for checked in &pass.ground_truth {
        let p = &checked.pass;
        for b in &p.feedback {
            println!(
                "{} feedback {}: {} matched, {} pending, {} unknown, {} already labelled",
                p.model, b.batch, b.matched, b.pending, b.unknown, b.already_labelled
            );
        }
        if let Some(status) = p.live.as_ref().and_then(|l| l.guard.as_ref()) {
            print_guard(&p.model, status);
        }
        if let Some(release) = &checked.rolled_back {
            println!(
                "  ROLLED BACK: {} now serves v{} ({})",
                release.id, release.version, release.reason
            );
        }
    }
    Ok(())
}

fn print_guard(model: &ModelName, g: &sluice_shared::monitoring::live::GuardStatus) {
    println!(
        "{model} guard {} on {} (v{}): {} over {} of {} labelled{}",
        g.bound,
        g.release,
        g.model_version,
        g.value.map_or("—".to_owned(), |v| format!("{v:.4}")),
        g.labelled,
        g.min_labelled,
        if g.breached { " — BREACHED" } else { "" }
    );
}

/// `sluice monitor show <model>`.
pub async fn monitor_show(
    store: Arc<dyn ObjectStore>,
    model: &str,
    last: usize,
) -> anyhow::Result<()> {
    use sluice_shared::monitoring::{Monitor, Verdict};
    let model = ModelName::parse(model)?;
    let monitor = Monitor::new(store);
    let reports = monitor.reports(&model).await?;
    if reports.is_empty() {
        println!("no drift reports for {model} yet");
    }
    if let Some(live) = monitor.live(&model).await? {
        for v in &live.versions {
            println!("{model}@{} live: {}", v.model_version, v.metrics.summary());
        }
        if let Some(g) = &live.guard {
            print_guard(&model, g);
        }
    }
    for report in reports.iter().take(last) {
        print_window(report);
    }
    if let Some(report) = reports.iter().find(|r| r.verdict != Verdict::TooFewRows) {
        println!(
            "\nwindow {} of {} against {}@{}:",
            report.window_name(),
            report.release,
            report.reference.dataset,
            report.reference.version
        );
        println!(
            "  {:<24} {:<24} {:>8} {:>9} {:>8}",
            "column", "statistic", "value", "threshold", "psi"
        );
        for c in &report.columns {
            let statistic = serde_json::to_value(c.statistic)?;
            println!(
                "{} {:<24} {:<24} {:>8.4} {:>9} {:>8.4}",
                if c.drifted { "!" } else { " " },
                c.column,
                statistic.as_str().unwrap_or_default(),
                c.value,
                c.threshold,
                c.psi
            );
        }
    }
    Ok(())
}

fn print_window(r: &sluice_shared::monitoring::Report) {
    use sluice_shared::monitoring::Verdict;
    let verdict = match r.verdict {
        Verdict::TooFewRows => format!("too few rows ({} of {}), still open", r.rows, r.min_rows),
        Verdict::Stable => format!("stable ({} rows)", r.rows),
        Verdict::Drifted => format!("DRIFTED in {} ({} rows)", r.drifted().join(", "), r.rows),
    };
    println!(
        "{}@{} {} window {} [{} – {}]: {verdict}",
        r.model,
        r.model_version,
        r.release,
        r.window_name(),
        r.from,
        r.to
    );
}
