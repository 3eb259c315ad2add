//! The run lifecycle as every trigger drives it: a request becomes a run and is submitted
//! at once; a new dataset version requests a run for each model its policy retrains; and
//! the runs timer (or a job event) follows unfinished runs a step and sends each newly
//! registered version through the evaluation gate; a drifted monitoring window (Sluice's
//! or Azure ML's) is audited and, under `on: drift`, retrains. The Functions host and the
//! CLI's dev host call these; they only decode and encode.

use serde::Serialize;
use tracing::{info, warn};

use super::{DatasetVersion, RequestOutcome, RetrainRequest, Run, RunError, RunStatus, Runs};
use crate::dataset::DatasetName;
use crate::registry::gate::Gate;
use crate::storage::ObjectKey;

/// What became of a retrain request.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Requested {
    /// A run, new or the existing one for the same identity (`duplicate`), submitted.
    Accepted {
        run_id: String,
        duplicate: bool,
        run: Box<Run>,
    },
    /// It can never succeed: set aside under `record` with its reason.
    Rejected { reason: String, record: ObjectKey },
}

/// Requests a run and submits it; what every trigger does with a request.
pub async fn request_and_start(
    runs: &Runs,
    request: &RetrainRequest,
    trigger: &str,
    correlation_id: &str,
) -> Result<Requested, RunError> {
    match runs.request(request, trigger, correlation_id).await? {
        RequestOutcome::Accepted { run, duplicate } => {
            let run = runs.start(&run.id).await?;
            info!(run_id = %run.id, duplicate, "run accepted");
            Ok(Requested::Accepted {
                run_id: run.id.clone(),
                duplicate,
                run: Box::new(run),
            })
        }
        RequestOutcome::Rejected { reason, record } => {
            warn!(%reason, "retrain request rejected");
            Ok(Requested::Rejected { reason, record })
        }
    }
}

/// `dataset.versioned`: a run for every model that trains on `dataset` and whose retrain
/// policy wants this version (with the policy's reason).
pub async fn on_dataset_versioned(
    runs: &Runs,
    dataset: &DatasetName,
    version: u32,
    event_id: &str,
) -> Result<Vec<Requested>, RunError> {
    let mut started = Vec::new();
    for config in runs.configs().subscribers(dataset).await? {
        if let Some(why) = runs.retrain_decision(&config, version).await? {
            let request = RetrainRequest {
                model: config.model.clone(),
                dataset: Some(dataset.clone()),
                dataset_version: DatasetVersion::Number(version),
                config_overrides: serde_json::Value::Null,
                requested_by: "sluice:dataset.versioned".into(),
                reason: why,
            };
            started.push(request_and_start(runs, &request, "dataset.versioned", event_id).await?);
        }
    }
    Ok(started)
}

/// A monitored window and what came of it.
#[derive(Clone, Debug, Serialize)]
pub struct Watched {
    pub report: crate::monitoring::Report,
    /// Whether this call judged it (its notification is due once, now).
    pub decided_now: bool,
    /// The retrain a drifted window asked for (`on: drift` policies).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retrain: Option<Requested>,
}

/// The monitor's pass (the monitoring timer, `sluice monitor run`): judges each
/// production model's open window and acts on the drifted ones ([`act_on_drift`]).
pub async fn monitor(
    runs: &Runs,
    monitor: &crate::monitoring::Monitor,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<Watched>, RunError> {
    let mut watched = Vec::new();
    for judged in monitor.run(now).await? {
        watched.push(act_on_drift(runs, monitor, judged).await?);
    }
    Ok(watched)
}

/// Azure ML's `DatasetDriftDetected`: a drifted report for each model subscribed to the
/// monitor that found it, acted on as Sluice's own ([`act_on_drift`]).
pub async fn on_azureml_drift(
    runs: &Runs,
    monitor: &crate::monitoring::Monitor,
    found: &crate::monitoring::AzureMlDrift,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<Watched>, RunError> {
    let mut watched = Vec::new();
    for judged in monitor.record_azureml(found, now).await? {
        watched.push(act_on_drift(runs, monitor, judged).await?);
    }
    Ok(watched)
}

/// What a judged window calls for. A drifted one is audited when it is decided and, for a
/// model that retrains `on: drift`, requests a retrain on the newest version of its
/// dataset — once per window: the report records the run, and the request is a run's
/// identity, so a repeat is the same run.
async fn act_on_drift(
    runs: &Runs,
    monitor: &crate::monitoring::Monitor,
    judged: crate::monitoring::Judged,
) -> Result<Watched, RunError> {
    use crate::monitoring::Verdict;
    use crate::training::config::RetrainPolicy;
    let mut report = judged.report;
    let mut retrain = None;
    if report.verdict == Verdict::Drifted && report.retrain_run.is_none() {
        let policy = match runs.configs().get(&report.model).await {
            Ok(config) => config.retrain,
            Err(crate::training::configs::ConfigStoreError::Missing(_)) => RetrainPolicy::Manual,
            Err(e) => return Err(e.into()),
        };
        if matches!(policy, RetrainPolicy::Drift { .. }) {
            let request = RetrainRequest {
                model: report.model.clone(),
                dataset: None,
                dataset_version: DatasetVersion::Latest,
                config_overrides: serde_json::Value::Null,
                requested_by: "sluice:monitor".into(),
                reason: format!(
                    "live traffic drifted from {} v{} in {} ({} window {})",
                    report.reference.dataset,
                    report.reference.version,
                    report.drifted().join(", "),
                    report.release,
                    report.window_name()
                ),
            };
            let correlation = format!("monitor:{}", report.key());
            let requested = request_and_start(runs, &request, "monitor", &correlation).await?;
            if let Requested::Accepted { run_id, .. } = &requested {
                report = monitor.record_retrain(&report, run_id).await?;
            }
            retrain = Some(requested);
        }
    }
    if judged.decided_now {
        info!(model = %report.model, model_version = report.model_version, verdict = ?report.verdict, window = %report.window_name(), "window judged");
    }
    if judged.decided_now && report.verdict == Verdict::Drifted {
        let drifted: Vec<_> = report.columns.iter().filter(|c| c.drifted).collect();
        runs.audit()
            .append(crate::audit::Entry {
                action: crate::audit::Action::DriftDetected,
                actor: "sluice:monitor".into(),
                subject: format!("model:{}@{}", report.model, report.model_version),
                reason: format!(
                    "{} drifted from {} v{} in window {} of {}",
                    report.drifted().join(", "),
                    report.reference.dataset,
                    report.reference.version,
                    report.window_name(),
                    report.release
                ),
                correlation_id: format!("monitor:{}", report.key()),
                details: serde_json::json!({
                    "report": report.key().as_str(),
                    "rows": report.rows,
                    "columns": drifted,
                    "retrain_run": report.retrain_run,
                }),
            })
            .await?;
    }
    Ok(Watched {
        report,
        decided_now: judged.decided_now,
        retrain,
    })
}

/// One run's step, as the runs timer reports it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Progress {
    pub run_id: String,
    pub status: RunStatus,
    /// Why the run could not be followed this time (it is tried again next tick).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_version: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gate: Option<GateProgress>,
}

/// What the gate did with a run's version, or why it could not run yet.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum GateProgress {
    Judged {
        passed: bool,
        reasons: Vec<String>,
        /// The releases it made (`staging.1`, `production.1`).
        releases: Vec<String>,
        awaiting_approval: bool,
    },
    NotYet {
        error: String,
    },
}

/// Follows every unfinished run (or only `only`) one step, and sends each version a run
/// registered through the gate (`None`: ONNX Runtime is not loaded, so it cannot run).
/// One run's trouble (a backend down, a gate without its data yet) is reported and
/// retried on the next call; it does not hold up the others.
pub async fn advance(
    runs: &Runs,
    gate: Option<&Gate>,
    only: Option<&str>,
) -> Result<Vec<Progress>, RunError> {
    let mut report = Vec::new();
    for run in runs.list().await? {
        if only.is_some_and(|id| id != run.id) {
            continue;
        }
        let step = async {
            if run.status.is_final() {
                // Nothing to follow; only its gate may still be owed (below).
                return Ok((run.clone(), None));
            }
            if run.job.is_none() {
                runs.start(&run.id).await?;
            }
            runs.poll(&run.id).await
        };
        let (run, registered) = match step.await {
            Ok(done) => done,
            Err(e) if e.is_transient() => {
                warn!(run_id = %run.id, error = %e, "could not follow the run; retrying next tick");
                report.push(Progress {
                    run_id: run.id.clone(),
                    status: run.status,
                    error: Some("temporarily unavailable".into()),
                    model_version: None,
                    gate: None,
                });
                continue;
            }
            Err(e) => return Err(e),
        };
        // A version registered earlier whose gate never ran (the process stopped) is
        // picked up again here; the gate itself runs once per version.
        let model_version = registered.map(|v| v.version).or(run.model_version);
        let gate = match (model_version, gate) {
            (None, _) => None,
            (Some(_), None) => Some(GateProgress::NotYet {
                error: "ONNX Runtime is not loaded: the gate cannot run".into(),
            }),
            (Some(v), Some(gate)) => Some(
                match gate.on_registered(&run.model, v, &run.correlation_id).await {
                    Ok(outcome) => GateProgress::Judged {
                        passed: outcome.verdict.passed,
                        reasons: outcome.verdict.reasons,
                        releases: outcome.releases.into_iter().map(|r| r.id).collect(),
                        awaiting_approval: outcome.awaiting_approval,
                    },
                    Err(e) => {
                        warn!(run_id = %run.id, error = %e, "the gate could not run");
                        GateProgress::NotYet {
                            error: e.to_string(),
                        }
                    }
                },
            ),
        };
        report.push(Progress {
            run_id: run.id,
            status: run.status,
            error: None,
            model_version,
            gate,
        });
    }
    Ok(report)
}
