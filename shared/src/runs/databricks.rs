//! Training on Azure Databricks (the seed article's path): a run's attempt is a one-time
//! run (Jobs API 2.2 `runs/submit`) of `shared/spark/train_task.py`, which copies the
//! dataset version and the config to the driver, runs the model's trainer there — its
//! `command`, or the reference trainer (this very `sluice` program, staged in the store
//! by content) — and copies the outputs to the run's `runs/<id>/output/`, where every
//! backend's outputs go, so registration does not care where a job ran.
//!
//! The attempt's job name is the run's `idempotency_token`, so submitting an attempt
//! twice starts one run; the Databricks run id is the job Sluice follows, and lineage
//! records its run page and cluster.

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{Value, json};

use super::compute::{Compute, ComputeError, JobSpec, JobStatus};
use crate::cloud::databricks::{Cluster, Databricks, RunPhase, run_phase};
use crate::cloud::{stage_code, stage_file};
use crate::registry::JobRef;
use crate::storage::{ObjectStore, PutMode, put_json};

/// The task wrapper's source, as shipped.
pub const TRAIN_TASK: &str = include_str!("../../spark/train_task.py");

pub struct DatabricksCompute {
    pub databricks: Databricks,
    pub store: Arc<dyn ObjectStore>,
    /// How the workspace's clusters name the root of Sluice's container.
    pub storage_root: String,
    pub cluster: Cluster,
    /// The reference trainer to stage for configs without a `command` (the running
    /// `sluice`; a Linux x86-64 program, as Databricks' nodes are).
    pub trainer: PathBuf,
}

impl DatabricksCompute {
    fn path(&self, key: &str) -> String {
        format!("{}/{key}", self.storage_root.trim_end_matches('/'))
    }
}

/// The task's arguments before `--`: where its inputs and outputs are, as the cluster
/// names them.
pub struct TaskPaths {
    pub script: String,
    pub data: String,
    pub config: String,
    pub output: String,
    pub logs: String,
    /// The staged reference trainer, when the config has no command.
    pub trainer: Option<String>,
}

/// The `runs/submit` body for an attempt.
pub fn submit_body(spec: &JobSpec, paths: &TaskPaths, cluster: &Cluster) -> Value {
    let argv: Vec<String> = match &spec.config.command {
        Some(command) => command
            .iter()
            .map(|a| a.replace("{seed}", &spec.config.seed.to_string()))
            .collect(),
        None => [
            "{trainer}",
            "train",
            "--data",
            "{data}",
            "--config",
            "{config}",
            "--output",
            "{output}",
        ]
        .map(String::from)
        .into(),
    };
    let mut parameters = vec![
        "--data".to_owned(),
        paths.data.clone(),
        "--config".into(),
        paths.config.clone(),
        "--output".into(),
        paths.output.clone(),
        "--logs".into(),
        paths.logs.clone(),
    ];
    if let Some(trainer) = &paths.trainer {
        parameters.extend(["--trainer".to_owned(), trainer.clone()]);
    }
    parameters.push("--".into());
    parameters.extend(argv);
    let mut task = json!({
        "task_key": "train",
        "description": format!("Sluice run {}", spec.run_id),
        "spark_python_task": {"python_file": paths.script, "parameters": parameters},
    });
    cluster.place(&mut task, "train");
    json!({
        "run_name": format!("{} on {}@{}", spec.config.model, spec.dataset, spec.dataset_version),
        "idempotency_token": spec.job_name,
        "timeout_seconds": spec.timeout.as_secs().max(1),
        "tags": spec.tags,
        "tasks": [task],
    })
}

fn run_id(job: &str) -> Result<i64, ComputeError> {
    job.parse()
        .map_err(|_| ComputeError::UnknownJob(job.to_owned()))
}

#[async_trait::async_trait]
impl Compute for DatabricksCompute {
    fn name(&self) -> &str {
        "databricks"
    }

    async fn submit(&self, spec: &JobSpec) -> Result<String, ComputeError> {
        let store = self.store.as_ref();
        let config_key = crate::runs::job_config_key(&spec.run_id)?;
        put_json(store, &config_key, &spec.config, PutMode::Overwrite).await?;
        let script = stage_code(store, "train_task.py", TRAIN_TASK.as_bytes()).await?;
        let trainer = match spec.config.command {
            Some(_) => None,
            None => Some(stage_file(store, "sluice", &self.trainer).await?),
        };
        let paths = TaskPaths {
            script: self.path(script.key.as_str()),
            data: self.path(&crate::dataset::layout::version_prefix(
                &spec.dataset,
                spec.dataset_version,
            )),
            config: self.path(config_key.as_str()),
            output: self.path(&spec.output_prefix),
            logs: self.path(spec.logs_key.as_str()),
            trainer: trainer.map(|t| self.path(t.key.as_str())),
        };
        let body = submit_body(spec, &paths, &self.cluster);
        Ok(self.databricks.submit_run(&body).await?.to_string())
    }

    async fn status(&self, job: &str) -> Result<JobStatus, ComputeError> {
        let run = self.databricks.get_run(run_id(job)?).await?;
        Ok(match run_phase(&run) {
            RunPhase::Waiting => JobStatus::Queued,
            RunPhase::Running => JobStatus::Running,
            RunPhase::Succeeded => JobStatus::Succeeded,
            RunPhase::Failed(why) if is_cancellation(&run) => {
                tracing::info!(job, %why, "the Databricks run was cancelled");
                JobStatus::Canceled
            }
            RunPhase::Failed(why) => JobStatus::Failed(format!(
                "Databricks: {why}; logs at {}",
                run["run_page_url"].as_str().unwrap_or("its run page")
            )),
        })
    }

    async fn cancel(&self, job: &str) -> Result<(), ComputeError> {
        Ok(self.databricks.cancel_run(run_id(job)?).await?)
    }

    async fn describe(&self, job: &str) -> Result<Option<JobRef>, ComputeError> {
        let run = self.databricks.get_run(run_id(job)?).await?;
        let cluster = run
            .pointer("/cluster_instance/cluster_id")
            .or_else(|| run.pointer("/tasks/0/cluster_instance/cluster_id"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        Ok(Some(JobRef {
            id: job.to_owned(),
            url: run["run_page_url"].as_str().map(str::to_owned),
            cluster,
        }))
    }
}

/// Whether a run that ended without success was cancelled (by a person or by Sluice),
/// which a run records as cancelled rather than failed.
fn is_cancellation(run: &Value) -> bool {
    matches!(
        run.pointer("/status/termination_details/code")
            .and_then(Value::as_str),
        Some("USER_CANCELED" | "CANCELED")
    ) || run.pointer("/state/result_state").and_then(Value::as_str) == Some("CANCELED")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cancelled_run_is_cancelled_not_failed() {
        for run in [
            json!({"status": {"state": "TERMINATED", "termination_details": {"code": "USER_CANCELED"}}}),
            json!({"status": {"state": "TERMINATED", "termination_details": {"code": "CANCELED"}}}),
            json!({"state": {"life_cycle_state": "TERMINATED", "result_state": "CANCELED"}}),
        ] {
            assert!(is_cancellation(&run), "{run}");
        }
        for run in [
            json!({"status": {"state": "TERMINATED", "termination_details": {"code": "RUN_EXECUTION_ERROR"}}}),
            json!({"state": {"life_cycle_state": "TERMINATED", "result_state": "FAILED"}}),
        ] {
            assert!(!is_cancellation(&run), "{run}");
        }
    }
}
