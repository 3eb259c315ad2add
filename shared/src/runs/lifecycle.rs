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

/// What one pass of the monitor did.
#[derive(Clone, Debug, Serialize)]
pub struct MonitorPass {
    pub windows: Vec<Watched>,
    pub ground_truth: Vec<Checked>,
}

/// One model's ground truth taken, and what its guard did.
#[derive(Clone, Debug, Serialize)]
pub struct Checked {
    #[serde(flatten)]
    pub pass: crate::monitoring::live::LivePass,
    /// The release that rolled production back on this call (`rollback: auto`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rolled_back: Option<crate::registry::Release>,
}

/// The monitor's pass (the monitoring timer, `sluice monitor run`): judges each
/// production model's open window and acts on the drifted ones ([`act_on_drift`]), then
/// matches new ground truth with the predictions and acts on a breached guard
/// ([`act_on_degradation`]).
pub async fn monitor(
    runs: &Runs,
    monitor: &crate::monitoring::Monitor,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<MonitorPass, RunError> {
    let mut windows = Vec::new();
    for judged in monitor.run(now).await? {
        windows.push(act_on_drift(runs, monitor, judged).await?);
    }
    let mut ground_truth = Vec::new();
    for pass in monitor.ground_truth(now).await? {
        ground_truth.push(act_on_degradation(runs, monitor, pass).await?);
    }
    Ok(MonitorPass {
        windows,
        ground_truth,
    })
}

/// A breached guard is audited when it is decided and, under `rollback: auto`, rolls
/// production back through the same audited rollback a person makes, with the breach as
/// its reason — once: only while production is still the breached release, and the
/// breach records the release that undid it.
async fn act_on_degradation(
    runs: &Runs,
    monitor: &crate::monitoring::Monitor,
    pass: crate::monitoring::live::LivePass,
) -> Result<Checked, RunError> {
    use crate::registry::RegistryError;
    use crate::registry::promotion::{Change, ReleaseError, Releases};
    use crate::training::config::RollbackPolicy;
    let mut pass = pass;
    let mut rolled_back = None;
    let Some(guarded) = pass.degraded.as_mut() else {
        return Ok(Checked { pass, rolled_back });
    };
    let d = guarded.degradation.clone();
    let correlation = format!("monitor:{}", d.key());
    if guarded.decided_now {
        warn!(model = %d.model, model_version = d.model_version, release = %d.release, value = d.value, bound = %d.bound, "production degraded");
    }
    // Recorded once, also when the pass that decided it stopped before recording it.
    {
        let once = format!("model.degraded/{}/{}", d.model, d.release);
        let entry = crate::audit::Entry {
            action: crate::audit::Action::Degraded,
            actor: "sluice:monitor".into(),
            subject: format!("model:{}@{}", d.model, d.model_version),
            reason: d.reason(),
            correlation_id: correlation.clone(),
            details: serde_json::json!({
                "report": d.key().as_str(),
                "metric": d.metric,
                "value": d.value,
                "bound": d.bound,
                "labelled": d.labelled,
                "release": d.release,
                "rollback": guarded.rollback,
            }),
        };
        runs.audit().append_once(&once, entry).await?;
    }
    if guarded.rollback == RollbackPolicy::Auto && d.rolled_back_by.is_none() {
        let releases = Releases::new(runs.registry().store().clone());
        let reason = d.reason();
        let change = Change {
            actor: "sluice:monitor",
            reason: &reason,
            correlation_id: &correlation,
        };
        match releases
            .rollback_from(&d.model, Some(&d.release), change)
            .await
        {
            Ok(release) => {
                guarded.degradation = monitor.record_rollback(&d, &release.id).await?;
                info!(model = %d.model, release = %release.id, "production rolled back for its live metric");
                rolled_back = Some(release);
            }
            // Production moved on (a person rolled back or promoted): nothing to undo.
            Err(ReleaseError::Registry(RegistryError::Conflict { .. })) => {}
            // Nothing earlier to return to: the breach stands, reported and audited.
            Err(ReleaseError::Registry(RegistryError::Invalid(why))) => {
                warn!(model = %d.model, %why, "production degraded and cannot be rolled back");
            }
            Err(ReleaseError::Registry(e)) => return Err(e.into()),
            Err(ReleaseError::Storage(e)) => return Err(e.into()),
            Err(ReleaseError::Audit(e)) => return Err(e.into()),
            Err(ReleaseError::Refused(why)) => return Err(RunError::Conflict(why)),
        }
    }
    Ok(Checked { pass, rolled_back })
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
    // Recorded once per window, also when the pass that decided it stopped before
    // recording it (the monitor hands such a window back).
    if report.verdict == Verdict::Drifted {
        let drifted: Vec<_> = report.columns.iter().filter(|c| c.drifted).collect();
        let once = format!(
            "model.drift_detected/{}/{}/{}",
            report.model,
            report.release,
            report.window_name()
        );
        runs.audit()
            .append_once(
                &once,
                crate::audit::Entry {
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
                },
            )
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
