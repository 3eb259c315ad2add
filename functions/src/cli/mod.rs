//! The `sluice` command line: the command tree (here), the commands for models, runs,
//! promotion and the audit trail (`ops`), the local host and its embedded queue
//! (`devhost`, `queue`), and the package and benchmark tools.

pub mod bench;
pub mod bench_console;
pub mod bench_monitor;
pub mod devhost;
pub mod ops;
pub mod package;
pub mod queue;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use sha2::{Digest, Sha256};
use sluice_shared::dataset::contract::Contract;
use sluice_shared::dataset::{
    Contracts, DatasetName, Ingestor, Manifest, QuarantineReport, layout,
};
use sluice_shared::storage::{ObjectKey, ObjectStore, get_json};

use crate::cli::devhost::{DevHost, DevOptions, push_file};
use crate::cli::ops::{ModelsCommand, RunsCommand};
use crate::host::startup::Application;
use crate::host::state::AppState;
use crate::settings::{ComputeSettings, DelegationSettings, Secret, StorageSettings};

#[derive(Debug, Parser)]
#[command(
    name = "sluice",
    version,
    about = "Event-driven MLOps functions: datasets in, models out, with an audit trail."
)]
pub struct Cli {
    #[command(flatten)]
    pub storage: StorageSettings,
    #[command(flatten)]
    pub compute: ComputeSettings,
    #[command(flatten)]
    pub delegation: DelegationSettings,
    /// The ONNX Runtime library to load (otherwise ORT_DYLIB_PATH, beside the binary, then
    /// the folder `sluice setup` fills).
    #[arg(long, env = "SLUICE_ONNXRUNTIME", global = true)]
    pub onnxruntime: Option<PathBuf>,
    /// Admin keys for the HTTP functions (comma-separated; several allow rotation).
    #[arg(
        long,
        env = "SLUICE_ADMIN_KEYS",
        value_delimiter = ',',
        global = true,
        hide_env_values = true
    )]
    pub admin_keys: Vec<Secret>,
    /// Keys for the scoring function (comma-separated; separate from the admin keys).
    #[arg(
        long,
        env = "SLUICE_SCORING_KEYS",
        value_delimiter = ',',
        global = true,
        hide_env_values = true
    )]
    pub scoring_keys: Vec<Secret>,
    /// Keys that read the API but change nothing (comma-separated).
    #[arg(
        long,
        env = "SLUICE_VIEWER_KEYS",
        value_delimiter = ',',
        global = true,
        hide_env_values = true
    )]
    pub viewer_keys: Vec<Secret>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Custom-handler mode: serve the functions to the Azure Functions host.
    Serve {
        /// Used when neither FUNCTIONS_CUSTOMHANDLER_PORT nor FUNCTIONS_HTTPWORKER_PORT is set.
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// Threads serving HTTP (default: one per core but one, which the Functions host
        /// needs to forward requests).
        #[arg(long, env = "SLUICE_HTTP_THREADS")]
        http_threads: Option<usize>,
    },
    /// The embedded default: run the functions with a local host (no Azure needed).
    Dev {
        /// Store these contracts (*.json) for datasets that have none.
        #[arg(long, default_value = "contracts")]
        contracts: PathBuf,
        /// Store these training configs (*.json), one per model.
        #[arg(long, default_value = "configs", alias = "models")]
        configs: PathBuf,
        /// Push a file at start, as DATASET=PATH (repeatable).
        #[arg(long = "push", value_parser = parse_push)]
        push: Vec<(String, PathBuf)>,
        /// Exit once every upload has been handled.
        #[arg(long)]
        exit_when_idle: bool,
        /// How often to look for new uploads, in milliseconds.
        #[arg(long, default_value_t = 300)]
        poll_ms: u64,
        /// Serve the HTTP functions (`/api/…`) on 127.0.0.1:PORT (0: any free port).
        #[arg(long, default_value_t = 7071)]
        port: u16,
    },
    /// Datasets: push files, list versions, show profiles.
    #[command(subcommand)]
    Datasets(DatasetsCommand),
    /// Dataset contracts.
    #[command(subcommand)]
    Contracts(ContractsCommand),
    /// Models in the registry: versions, lineage.
    #[command(subcommand)]
    Models(ModelsCommand),
    /// Training runs: list, show, logs, request.
    #[command(subcommand)]
    Runs(RunsCommand),
    /// Move an alias (e.g. staging) to a version, bypassing the gate (recorded as such).
    Promote {
        model: String,
        version: u32,
        #[arg(long, default_value = sluice_shared::registry::STAGING)]
        alias: String,
        #[arg(long)]
        reason: String,
        #[arg(long, env = "USER", default_value = "operator")]
        actor: String,
    },
    /// Approve a version waiting in staging: it goes to production.
    Approve {
        model: String,
        version: u32,
        #[arg(long, default_value = sluice_shared::registry::promotion::APPROVED)]
        reason: String,
        #[arg(long, env = "USER", default_value = "operator")]
        actor: String,
    },
    /// Return production to its previous release.
    Rollback {
        model: String,
        #[arg(long)]
        reason: String,
        #[arg(long, env = "USER", default_value = "operator")]
        actor: String,
    },
    /// Production monitoring: judge each production model's open drift window, or show
    /// a model's reports.
    #[command(subcommand)]
    Monitor(MonitorCommand),
    /// The audit trail: print it, or verify its hash chain.
    Audit {
        #[arg(value_parser = ["show", "verify"], default_value = "show")]
        action: String,
    },
    /// Score a file of rows (JSON Lines, one record per line) in batches, as `Score` would.
    Score {
        #[arg(long)]
        model: String,
        #[arg(long)]
        input: PathBuf,
        /// Where the predictions go (JSON Lines); stdout if absent.
        #[arg(long)]
        output: Option<PathBuf>,
        #[arg(long, conflicts_with = "alias")]
        version: Option<u32>,
        #[arg(long, default_value = sluice_shared::registry::PRODUCTION)]
        alias: String,
        #[arg(long, default_value_t = 1000)]
        batch: usize,
    },
    /// Fetch ONNX Runtime (PyPI's onnxruntime wheel, via pip) into Sluice's setup folder.
    Setup,
    /// Write the Function App's deployment zip (host.json, the function folders, this
    /// executable and ONNX Runtime beside it). `infra/package.sh` builds a release first.
    Package {
        /// Where to write the zip.
        #[arg(long, default_value = "sluice-functionapp.zip")]
        output: PathBuf,
        /// The executable to package (default: this one).
        #[arg(long)]
        executable: Option<PathBuf>,
    },
    /// The reference trainer: a dataset version's folder in, a model folder out
    /// (model.onnx, signature.json, metrics.json, lineage.json).
    Train {
        /// The dataset version's folder (manifest.json and data.parquet).
        #[arg(long)]
        data: PathBuf,
        /// The model's training config (configs/<model>.json).
        #[arg(long)]
        config: PathBuf,
        /// The folder to write the model into.
        #[arg(long)]
        output: PathBuf,
        /// Skip scoring the holdout with the exported model in ONNX Runtime.
        #[arg(long)]
        no_verify: bool,
    },
    /// Benchmark ingest against pandas on a generated CSV (see tests/bench/run.sh).
    Bench {
        /// Size of the generated CSV in MiB.
        #[arg(long, default_value_t = 1024)]
        mib: u64,
        /// Where the CSV is generated and kept between runs.
        #[arg(long, default_value = ".sluice-bench")]
        dir: PathBuf,
        /// The Python with pandas installed.
        #[arg(long, default_value = "python3")]
        python: String,
        /// Also run the Spark scan on local Spark with this `spark-submit`.
        #[arg(long = "with-spark")]
        with_spark: Option<PathBuf>,
        /// Internal: run only Sluice's side on this file and print JSON.
        #[arg(long, hide = true)]
        sluice_side: Option<PathBuf>,
    },
    /// Benchmark one monitor pass on a window of logged predictions, and the ground-truth
    /// pass, against pandas + SciPy (see tests/bench/monitor.sh).
    BenchMonitor {
        /// Logged predictions in the window.
        #[arg(long, default_value_t = 1_000_000)]
        rows: usize,
        /// Where the benchmark's store is made and kept between runs.
        #[arg(long, default_value = ".sluice-bench")]
        dir: PathBuf,
        /// The Python with pandas, pyarrow and SciPy installed.
        #[arg(long, default_value = "python3")]
        python: String,
        /// Internal: run only Sluice's side on this prepared store and print JSON.
        #[arg(long, hide = true)]
        sluice_side: Option<PathBuf>,
    },
    /// Each console page's server time on a large store (made once under --dir), beside
    /// what listing its folders costs (see tests/bench/console.sh).
    BenchConsole {
        #[arg(long, default_value_t = 1000)]
        versions: u32,
        #[arg(long, default_value_t = 10_000)]
        runs: u32,
        #[arg(long, default_value_t = 500)]
        dataset_versions: u32,
        /// Where the benchmark's store is made and kept between runs.
        #[arg(long, default_value = ".sluice-bench")]
        dir: PathBuf,
    },
    /// Benchmark baseline: a bare axum route on 127.0.0.1:PORT answering any POST with
    /// a fixed JSON body of `bytes` bytes (the limit of the HTTP path; see
    /// tests/bench/score.sh).
    #[command(hide = true)]
    BenchEcho {
        #[arg(long)]
        port: u16,
        #[arg(long, default_value_t = 200)]
        bytes: usize,
    },
}

#[derive(Debug, Subcommand)]
pub enum MonitorCommand {
    /// One pass of the monitor (what `MonitorTimer` does): judges every production
    /// model's logged predictions not yet judged, and requests the retrains `on: drift`
    /// policies ask for.
    Run,
    /// A model's drift reports, newest first, with the newest decided window's columns.
    Show {
        model: String,
        /// How many reports to list.
        #[arg(long, default_value_t = 10)]
        last: usize,
    },
}

#[derive(Debug, Subcommand)]
pub enum DatasetsCommand {
    /// Copy a file to landing/<dataset>/, wait for the dev host, print the outcome.
    Push {
        file: PathBuf,
        #[arg(long)]
        dataset: String,
        /// Do not wait for the outcome.
        #[arg(long)]
        no_wait: bool,
        /// Seconds to wait for the outcome.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
    /// List datasets and their versions.
    List,
    /// Show a version's manifest and profile: NAME or NAME@VERSION (latest by default).
    Show { target: String },
    /// List uploads handed to a Spark engine and where their scans stand.
    Scans {
        /// Only this dataset's.
        #[arg(long)]
        dataset: Option<String>,
    },
    /// Stop a delegated upload's scan (the engine is the one `--delegate` names).
    CancelScan {
        dataset: String,
        /// The delegation's id (see `sluice datasets scans`).
        id: String,
        #[arg(long)]
        reason: String,
        #[arg(long, env = "USER", default_value = "operator")]
        actor: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ContractsCommand {
    /// Store a contract file as its dataset's next contract version.
    Put {
        file: PathBuf,
        #[arg(long, env = "USER", default_value = "operator")]
        actor: String,
    },
}

fn parse_push(s: &str) -> Result<(String, PathBuf), String> {
    let (d, p) = s.split_once('=').ok_or("expected DATASET=PATH")?;
    DatasetName::parse(d).map_err(|e| e.to_string())?;
    Ok((d.to_owned(), PathBuf::from(p)))
}

/// The port the host asked for: FUNCTIONS_CUSTOMHANDLER_PORT, then FUNCTIONS_HTTPWORKER_PORT, then the flag.
pub fn handler_port(flag: u16) -> anyhow::Result<u16> {
    for var in ["FUNCTIONS_CUSTOMHANDLER_PORT", "FUNCTIONS_HTTPWORKER_PORT"] {
        if let Ok(v) = std::env::var(var) {
            return v
                .trim()
                .parse()
                .with_context(|| format!("{var}={v:?} is not a port"));
        }
    }
    Ok(flag)
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::BenchEcho { port, bytes } = &cli.command {
        return crate::cli::bench::echo(*port, *bytes).await;
    }
    if let Command::Bench {
        mib,
        dir,
        python,
        with_spark,
        sluice_side,
    } = &cli.command
    {
        return match sluice_side {
            Some(file) => crate::cli::bench::run_sluice_side(file, dir).await,
            None => crate::cli::bench::run(*mib, dir, python, with_spark.as_deref()),
        };
    }
    if let Command::BenchConsole {
        versions,
        runs,
        dataset_versions,
        dir,
    } = &cli.command
    {
        let size = crate::cli::bench_console::Size {
            versions: *versions,
            runs: *runs,
            dataset_versions: *dataset_versions,
        };
        return crate::cli::bench_console::run(size, dir).await;
    }
    if let Command::BenchMonitor {
        rows,
        dir,
        python,
        sluice_side,
    } = &cli.command
    {
        return match sluice_side {
            Some(root) => crate::cli::bench_monitor::run_sluice_side(root).await,
            None => crate::cli::bench_monitor::run(*rows, dir, python).await,
        };
    }
    match &cli.command {
        Command::Setup => {
            let path = crate::onnxruntime::setup(&crate::onnxruntime::setup_dir())?;
            println!("{}", path.display());
            return Ok(());
        }
        Command::Package { output, executable } => {
            let executable = match executable {
                Some(path) => path.clone(),
                None => std::env::current_exe()?,
            };
            let library = match crate::onnxruntime::locate(cli.onnxruntime.as_deref()) {
                Ok(path) => path,
                Err(_) => crate::onnxruntime::setup(&crate::onnxruntime::setup_dir())?,
            };
            let entries = crate::cli::package::write(output, &executable, &library)?;
            println!("wrote {} ({} files)", output.display(), entries.len());
            return Ok(());
        }
        Command::Train {
            data,
            config,
            output,
            no_verify,
        } => return train(data, config, output, !no_verify, cli.onnxruntime.as_deref()),
        _ => {}
    }
    let store = cli.storage.build().await?;
    match cli.command {
        Command::Bench { .. }
        | Command::BenchMonitor { .. }
        | Command::BenchConsole { .. }
        | Command::BenchEcho { .. }
        | Command::Setup
        | Command::Package { .. }
        | Command::Train { .. } => {
            unreachable!("handled above")
        }
        Command::Serve { port, http_threads } => {
            let compute = cli.compute.build(store.clone())?;
            let mut state = AppState::new(store.clone(), cli.storage.scratch())
                .with_admin_keys(&cli.admin_keys)
                .with_viewer_keys(&cli.viewer_keys)
                .with_scoring_keys(&cli.scoring_keys)
                .with_webhooks(crate::settings::webhooks()?);
            if let Some(compute) = compute {
                state = state.with_compute(compute);
            }
            let delegation =
                cli.delegation
                    .build(store.clone(), &cli.storage.scratch(), &cli.compute)?;
            if let Some((threshold, engine)) = delegation {
                state = state.with_delegation(threshold, engine);
            }
            // In Azure the library ships beside the binary; without it the gate is off
            // (its functions answer 503 saying so) but everything else serves.
            match crate::onnxruntime::load(cli.onnxruntime.as_deref()) {
                Ok(runtime) => state = state.with_runtime(runtime),
                Err(e) => {
                    tracing::warn!(error = %e, "ONNX Runtime not loaded; the evaluation gate is off")
                }
            }
            let app = Application::build(state, handler_port(port)?)
                .await?
                .with_http_threads(http_threads);
            // Tests and operators rely on this exact line to find the port.
            println!("listening on http://127.0.0.1:{}", app.port());
            app.run_until_stopped().await?;
        }
        Command::Dev {
            contracts,
            configs,
            push,
            exit_when_idle,
            poll_ms,
            port,
        } => {
            // Without configured keys, the local host makes its own, kept in the store's
            // root (never printed) for the CLI user to read.
            let (admin, scoring) = match (cli.admin_keys.is_empty(), cli.scoring_keys.is_empty()) {
                (false, false) => (cli.admin_keys.clone(), cli.scoring_keys.clone()),
                _ => {
                    let (path, admin, scoring) = dev_keys(&cli.storage.root)?;
                    println!("⚿ dev API keys in {}", path.display());
                    let pick = |given: &Vec<Secret>, made: Secret| {
                        if given.is_empty() {
                            vec![made]
                        } else {
                            given.clone()
                        }
                    };
                    (
                        pick(&cli.admin_keys, admin),
                        pick(&cli.scoring_keys, scoring),
                    )
                }
            };
            let mut state = AppState::new(store.clone(), cli.storage.scratch())
                .with_admin_keys(&admin)
                .with_viewer_keys(&cli.viewer_keys)
                .with_scoring_keys(&scoring)
                .with_webhooks(crate::settings::webhooks()?);
            let delegation =
                cli.delegation
                    .build(store.clone(), &cli.storage.scratch(), &cli.compute)?;
            if let Some((threshold, engine)) = delegation {
                state = state.with_delegation(threshold, engine);
            }
            let has_configs = std::fs::read_dir(&configs).is_ok_and(|mut d| d.next().is_some());
            if has_configs {
                // The local host sets ONNX Runtime up itself, so its one command suffices.
                match crate::onnxruntime::load_or_setup(cli.onnxruntime.as_deref()) {
                    Ok(runtime) => state = state.with_runtime(runtime),
                    Err(e) => {
                        println!("! ONNX Runtime unavailable, the evaluation gate is off: {e:#}")
                    }
                }
            }
            // The HTTP functions stop when the dev host does (on a signal, or idle), and
            // are waited for: their last act writes the prediction log.
            let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
            let http = match Application::build(state.clone(), port).await {
                Ok(app) => {
                    println!("HTTP functions on http://127.0.0.1:{}/api/", app.port());
                    println!(
                        "console on http://127.0.0.1:{}{}/ (sign in with an admin key)",
                        app.port(),
                        crate::host::console::ROOT
                    );
                    Some(tokio::spawn(app.run_until(async {
                        let _ = http_stopped.await;
                    })))
                }
                // Another dev host may hold the port: the rest works without it.
                Err(e) => {
                    println!("! HTTP functions not served on port {port}: {e}");
                    None
                }
            };
            let host = DevHost::new(state, &cli.storage.queue_dir())?;
            let options = DevOptions {
                contracts_dir: Some(contracts),
                configs_dir: Some(configs),
                push,
                exit_when_idle,
                poll: Duration::from_millis(poll_ms),
            };
            let ran = host.run(options).await;
            let _ = stop_http.send(());
            if let Some(http) = http {
                http.await??;
            }
            ran?;
        }
        Command::Datasets(DatasetsCommand::Push {
            file,
            dataset,
            no_wait,
            timeout,
        }) => {
            let key = push_file(store.as_ref(), &dataset, &file).await?;
            println!("↑ {} → {key}", file.display());
            if !no_wait {
                let sha = sha256_file(&file)?;
                wait_for_outcome(
                    store.as_ref(),
                    &DatasetName::parse(dataset)?,
                    &sha,
                    Duration::from_secs(timeout),
                )
                .await?;
            }
        }
        Command::Datasets(DatasetsCommand::List) => list(store.as_ref()).await?,
        Command::Datasets(DatasetsCommand::Show { target }) => {
            show(store.as_ref(), &target).await?
        }
        Command::Datasets(DatasetsCommand::Scans { dataset }) => {
            let dataset = dataset.as_deref().map(DatasetName::parse).transpose()?;
            let ingestor = Ingestor::new(store, cli.storage.scratch());
            let scans = ingestor.delegations(dataset.as_ref()).await?;
            if scans.is_empty() {
                println!("no delegated uploads");
            }
            for d in &scans {
                print_scan(d);
            }
        }
        Command::Datasets(DatasetsCommand::CancelScan {
            dataset,
            id,
            reason,
            actor,
        }) => {
            let dataset = DatasetName::parse(&dataset)?;
            let (threshold, engine) = cli
                .delegation
                .build(store.clone(), &cli.storage.scratch(), &cli.compute)?
                .context("cancelling a scan needs the engine it runs on: set --delegate")?;
            let ingestor =
                Ingestor::new(store, cli.storage.scratch()).with_delegation(threshold, engine);
            match ingestor
                .cancel_delegation(&dataset, &id, &actor, &reason)
                .await?
            {
                Some(d) => print_scan(&d),
                None => anyhow::bail!("no delegated upload {id} in {dataset}"),
            }
        }
        Command::Models(command) => crate::cli::ops::models(store, command).await?,
        Command::Runs(command) => {
            crate::cli::ops::runs(store, &cli.storage.queue_dir(), command).await?
        }
        Command::Promote {
            model,
            version,
            alias,
            reason,
            actor,
        } => crate::cli::ops::promote(store, &model, version, &alias, &reason, &actor).await?,
        Command::Approve {
            model,
            version,
            reason,
            actor,
        } => crate::cli::ops::approve(store, &model, version, &actor, &reason).await?,
        Command::Rollback {
            model,
            reason,
            actor,
        } => crate::cli::ops::rollback(store, &model, &reason, &actor).await?,
        Command::Score {
            model,
            input,
            output,
            version,
            alias,
            batch,
        } => {
            let runtime = crate::onnxruntime::load_or_setup(cli.onnxruntime.as_deref())?;
            let target = version.map_or(
                sluice_shared::scoring::Target::Alias(alias),
                sluice_shared::scoring::Target::Version,
            );
            crate::cli::ops::score_file(
                store,
                runtime,
                &model,
                target,
                &input,
                output.as_deref(),
                batch,
            )
            .await?
        }
        Command::Audit { action } => crate::cli::ops::audit(store, action == "verify").await?,
        Command::Monitor(MonitorCommand::Run) => {
            let mut state = AppState::new(store.clone(), cli.storage.scratch());
            if let Some(compute) = cli.compute.build(store.clone())? {
                state = state.with_compute(compute);
            }
            crate::cli::ops::monitor_run(&state).await?
        }
        Command::Monitor(MonitorCommand::Show { model, last }) => {
            crate::cli::ops::monitor_show(store, &model, last).await?
        }
        Command::Contracts(ContractsCommand::Put { file, actor }) => {
            let contract = Contract::from_json(&std::fs::read(&file)?)
                .with_context(|| format!("{}", file.display()))?;
            let stored = Contracts::new(store.clone()).put(contract, &actor).await?;
            println!("contract {} v{}", stored.dataset, stored.version);
        }
    }
    Ok(())
}

fn sha256_file(file: &Path) -> anyhow::Result<String> {
    let mut f = std::fs::File::open(file)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

async fn wait_for_outcome(
    store: &dyn ObjectStore,
    dataset: &DatasetName,
    sha: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    let versions = layout::version_index_prefix(dataset, sha);
    let quarantined = layout::quarantine_index_prefix(dataset, sha);
    loop {
        if let Some(entry) = store.list(&versions).await?.pop() {
            let (index, _): (serde_json::Value, _) = get_json(store, &entry.key).await?;
            let key = ObjectKey::parse(index["key"].as_str().unwrap_or_default())?;
            let (m, _): (Manifest, _) = get_json(store, &key).await?;
            println!(
                "✓ {} v{}: {} rows, {} columns (sha256 {})",
                m.dataset,
                m.version,
                m.rows,
                m.schema.len(),
                m.content_sha256
            );
            return Ok(());
        }
        if let Some(entry) = store.list(&quarantined).await?.pop() {
            let (index, _): (serde_json::Value, _) = get_json(store, &entry.key).await?;
            let key = ObjectKey::parse(index["key"].as_str().unwrap_or_default())?;
            if let Ok((r, _)) = get_json::<QuarantineReport>(store, &key).await {
                println!("✗ quarantined: {} (report {})", r.copy.key, r.report_key);
                for v in &r.validation.violations {
                    println!(
                        "    {} {:?}: {} ({} rows)",
                        v.column.as_deref().unwrap_or("(file)"),
                        v.rule,
                        v.message,
                        v.count
                    );
                }
                bail!("{dataset}: upload quarantined");
            }
        }
        if tokio::time::Instant::now() > deadline {
            bail!("no outcome after {timeout:?}: is `sluice dev` (or the Function App) running?");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// One delegated upload, on one line.
fn print_scan(d: &sluice_shared::dataset::delegation::Delegation) {
    use sluice_shared::dataset::delegation::DelegationState;
    let state = match &d.state {
        DelegationState::Claimed => "claimed".to_owned(),
        DelegationState::Submitted => "scanning".to_owned(),
        DelegationState::Versioned { version } => format!("versioned v{version}"),
        DelegationState::Quarantined { report_key } => format!("quarantined ({report_key})"),
        DelegationState::Failed { reason } => format!("failed: {reason}"),
    };
    let cancel = match (&d.canceled, d.state.is_final()) {
        (Some(c), false) => format!("  (cancel asked by {})", c.by),
        _ => String::new(),
    };
    println!(
        "{}  {:<14} {:>14} bytes  {:<13} job {:<20} {}  {}{cancel}",
        d.id,
        d.dataset.as_str(),
        d.bytes,
        d.engine,
        d.job.as_deref().unwrap_or("-"),
        d.created_at.format("%Y-%m-%d %H:%M:%S"),
        state,
    );
}

/// Every dataset's versions (and how many uploads are in quarantine), as the console's
/// datasets pages list them.
async fn list(store: &dyn ObjectStore) -> anyhow::Result<()> {
    use sluice_shared::catalog::datasets;
    let mut any = false;
    let mut quarantined = 0;
    for summary in datasets::datasets(store).await? {
        quarantined += summary.quarantined;
        let Some(detail) = datasets::dataset(store, &summary.dataset, usize::MAX).await? else {
            continue;
        };
        for v in detail.versions.iter().rev() {
            any = true;
            println!(
                "{:<20} v{:<4} {:>10} rows  {:>12} bytes  sha256 {}…  {}",
                summary.dataset.as_str(),
                v.version,
                v.rows,
                v.bytes,
                &v.content_sha256[..12],
                v.created_at.format("%Y-%m-%d %H:%M:%S")
            );
        }
    }
    if !any {
        println!("no dataset versions yet");
    }
    println!("{quarantined} upload(s) in quarantine");
    Ok(())
}

async fn show(store: &dyn ObjectStore, target: &str) -> anyhow::Result<()> {
    let (name, version) = match target.split_once('@') {
        Some((n, v)) => (
            n,
            Some(
                v.trim_start_matches('v')
                    .parse::<u32>()
                    .context("version must be a number, as in adult@3")?,
            ),
        ),
        None => (target, None),
    };
    let dataset = DatasetName::parse(name)?;
    let version = match version {
        Some(v) => v,
        None => store
            .list(&layout::versions_prefix(&dataset))
            .await?
            .iter()
            .filter_map(|m| {
                layout::parse_version_key(&dataset, &m.key)
                    .filter(|(_, f)| *f == "manifest.json")
                    .map(|(n, _)| n)
            })
            .max()
            .with_context(|| format!("dataset {dataset} has no versions"))?,
    };
    let (m, _): (Manifest, _) = get_json(store, &layout::manifest(&dataset, version))
        .await
        .with_context(|| format!("{dataset}@v{version} not found"))?;
    println!(
        "{}@v{}  {} rows  {} bytes  contract v{}  sha256 {}",
        m.dataset, m.version, m.rows, m.bytes, m.contract_version, m.content_sha256
    );
    println!(
        "source {} (etag {})  created {}",
        m.source.uri, m.source.etag, m.created_at
    );
    println!();
    println!(
        "{:<16} {:<8} {:>7} {:>8} {:>12} {:>12} {:>12} {:>12}  top values",
        "column", "type", "nulls", "distinct", "min", "max", "mean", "std"
    );
    for p in &m.profile {
        let (min, max, mean, std) = p.numeric.as_ref().map_or(
            (String::new(), String::new(), String::new(), String::new()),
            |n| {
                (
                    format!("{:.4}", n.min),
                    format!("{:.4}", n.max),
                    format!("{:.4}", n.mean),
                    format!("{:.4}", n.std),
                )
            },
        );
        let top: Vec<String> = p
            .top_values
            .iter()
            .take(3)
            .map(|v| format!("{} ({})", v.value, v.count))
            .collect();
        println!(
            "{:<16} {:<8} {:>7} {:>8} {:>12} {:>12} {:>12} {:>12}  {}",
            p.name,
            format!("{:?}", p.kind).to_lowercase(),
            p.nulls,
            p.distinct,
            min,
            max,
            mean,
            std,
            top.join(", ")
        );
    }
    Ok(())
}

/// `sluice train`: trains, then (unless told not to) checks the exported model scores
/// the holdout like the trainer did, within 1e-5.
fn train(
    data: &Path,
    config: &Path,
    output: &Path,
    verify: bool,
    onnxruntime: Option<&Path>,
) -> anyhow::Result<()> {
    use sluice_shared::training::{self, TrainingConfig};
    let bytes = std::fs::read(config).with_context(|| format!("reading {}", config.display()))?;
    let config = TrainingConfig::from_json(&bytes)?;
    let report = training::train(&config, data, output)?;
    eprintln!(
        "trained {} ({}) on {}@{}: holdout {}",
        config.model,
        report.lineage.task,
        report.lineage.dataset,
        report.lineage.dataset_version,
        report.metrics.summary()
    );
    if verify {
        let runtime = crate::onnxruntime::load_or_setup(onnxruntime)?;
        let diff = training::trainer::verify_export(runtime, output, &report)?;
        if diff > 1e-5 {
            bail!("the exported model differs from the trainer by {diff:e} (limit 1e-5)");
        }
        eprintln!("model.onnx matches the trainer in ONNX Runtime (max difference {diff:.1e})");
    }
    println!(
        "{}",
        serde_json::json!({"model_sha256": report.model_sha256, "metrics": report.metrics})
    );
    Ok(())
}

/// The local host's own API keys: read from (or created in) `<root>/.sluice-dev-keys.json`.
fn dev_keys(root: &Path) -> anyhow::Result<(PathBuf, Secret, Secret)> {
    let path = root.join(".sluice-dev-keys.json");
    if !path.exists() {
        std::fs::create_dir_all(root)?;
        let key = || {
            format!(
                "{}{}",
                uuid::Uuid::new_v4().simple(),
                uuid::Uuid::new_v4().simple()
            )
        };
        let keys = serde_json::json!({"admin": key(), "scoring": key()});
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        match options.open(&path) {
            Ok(mut file) => std::io::Write::write_all(&mut file, keys.to_string().as_bytes())?,
            // Another process wrote them first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e.into()),
        }
    }
    let keys: serde_json::Value = serde_json::from_slice(&std::fs::read(&path)?)?;
    let get = |name: &str| -> anyhow::Result<Secret> {
        Ok(keys[name]
            .as_str()
            .with_context(|| format!("{} has no {name} key", path.display()))?
            .parse()?)
    };
    Ok((path.clone(), get("admin")?, get("scoring")?))
}
