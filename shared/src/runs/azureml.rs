//! The production backend: Azure Machine Learning command jobs on a GPU compute cluster,
//! through the REST API (stable `2025-12-01`), authenticated with a managed-identity
//! token for Azure Resource Manager.
//!
//! A job is named after its run's attempt (`PUT …/jobs/<run-id>` for a first attempt,
//! `…/jobs/<run-id>-a<n>` for a retry), so submitting an attempt twice addresses the
//! same job, and job events name the run (in its tags). Inputs are the dataset version's
//! folder and the run's config, both in Sluice's container through an Azure ML
//! datastore; the output folder is the run's `runs/<id>/output/`, where the local
//! backend publishes too, so registration does not care where a job ran.

use std::sync::Arc;

use serde_json::{Value, json};

use super::compute::{Compute, ComputeError, JobSpec, JobStatus};
use crate::cloud::CloudError;
use crate::cloud::azureml::{AzureMl, Workspace};
use crate::registry::JobRef;
use crate::storage::{ObjectStore, PutMode, put_json};
use crate::training::config::Distribution;

pub struct AzureMlCompute {
    store: Arc<dyn ObjectStore>,
    azureml: AzureMl,
}

/// Quotes an argument for the job's shell command line.
fn shell_quote(arg: &str) -> String {
    if arg
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_./:=${}@".contains(&b))
    {
        arg.to_owned()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// The command job for a run's attempt: what `PUT …/jobs/<job name>` sends.
pub fn job_body(workspace: &Workspace, spec: &JobSpec) -> Value {
    let compute = &spec.config.compute;
    // Run ids are valid key segments (Sluice makes them).
    let job_config = crate::runs::job_config_key(&spec.run_id).expect("valid key");
    let (data, config, output) = (
        "${{inputs.data}}",
        "${{inputs.config}}",
        "${{outputs.model}}",
    );
    let command = match &spec.config.command {
        Some(argv) => argv
            .iter()
            .map(|a| {
                a.replace("{data}", data)
                    .replace("{output}", output)
                    .replace("{config}", config)
                    .replace("{seed}", &spec.config.seed.to_string())
            })
            .map(|a| shell_quote(&a))
            .collect::<Vec<_>>()
            .join(" "),
        None => format!("sluice train --data {data} --config {config} --output {output}"),
    };
    let dataset_path = crate::dataset::layout::version_prefix(&spec.dataset, spec.dataset_version);
    let distribution = compute.distribution.map(|d| match d {
        Distribution::Pytorch {
            process_count_per_instance,
        } => json!({"distributionType": "PyTorch", "processCountPerInstance": process_count_per_instance}),
        Distribution::Mpi {
            process_count_per_instance,
        } => json!({"distributionType": "Mpi", "processCountPerInstance": process_count_per_instance}),
    });
    let mut body = json!({
        "properties": {
            "jobType": "Command",
            "displayName": format!("{} on {}@{}", spec.config.model, spec.dataset, spec.dataset_version),
            "experimentName": workspace.experiment,
            "description": format!("Sluice run {}", spec.run_id),
            "command": command,
            "computeId": workspace.compute_id(&compute.target),
            "environmentId": workspace.environment_id(&compute.environment),
            "environmentVariables": {"SLUICE_RUN_ID": spec.run_id},
            "inputs": {
                "data": {"jobInputType": "uri_folder", "uri": workspace.datastore_uri(&dataset_path), "mode": "ReadOnlyMount"},
                "config": {"jobInputType": "uri_file", "uri": workspace.datastore_uri(job_config.as_str()), "mode": "Download"},
            },
            "outputs": {
                "model": {"jobOutputType": "uri_folder", "uri": workspace.datastore_uri(&spec.output_prefix), "mode": "ReadWriteMount"},
            },
            "limits": {"jobLimitsType": "Command", "timeout": format!("PT{}S", spec.timeout.as_secs().max(1))},
            "resources": {"instanceCount": compute.instance_count, "instanceType": compute.instance_type},
            "tags": spec.tags,
        }
    });
    if let Some(distribution) = distribution {
        body["properties"]["distribution"] = distribution;
    }
    body
}

/// Every value of the service's JobStatus enum, mapped onto Sluice's job states.
pub fn map_status(status: &str) -> JobStatus {
    match status {
        "NotStarted" | "Starting" | "Provisioning" | "Preparing" | "Queued" => JobStatus::Queued,
        // Still going (or paused, or briefly unreachable): keep following it.
        "Running" | "Finalizing" | "CancelRequested" | "NotResponding" | "Paused" | "Unknown" => {
            JobStatus::Running
        }
        "Completed" => JobStatus::Succeeded,
        "Failed" => JobStatus::Failed("Azure ML reports the job Failed".into()),
        "Canceled" => JobStatus::Canceled,
        other => JobStatus::Failed(format!("Azure ML reports an unknown job status {other:?}")),
    }
}

impl AzureMlCompute {
    pub fn new(store: Arc<dyn ObjectStore>, azureml: AzureMl) -> Self {
        Self { store, azureml }
    }
}

impl From<CloudError> for ComputeError {
    fn from(e: CloudError) -> Self {
        match e {
            CloudError::NotFound(job) => ComputeError::UnknownJob(job),
            CloudError::Rejected(m) => ComputeError::Rejected(m),
            CloudError::Unavailable {
                message,
                retry_after,
            } => ComputeError::Unavailable {
                message,
                retry_after,
            },
        }
    }
}

#[async_trait::async_trait]
impl Compute for AzureMlCompute {
    fn name(&self) -> &str {
        "azureml"
    }

    async fn submit(&self, spec: &JobSpec) -> Result<String, ComputeError> {
        let config_key = crate::runs::job_config_key(&spec.run_id)?;
        put_json(
            self.store.as_ref(),
            &config_key,
            &spec.config,
            PutMode::Overwrite,
        )
        .await?;
        let body = job_body(&self.azureml.workspace, spec);
        self.azureml.put_job(&spec.job_name, &body).await?;
        Ok(spec.job_name.clone())
    }

    async fn status(&self, job: &str) -> Result<JobStatus, ComputeError> {
        let view = self.azureml.job(job).await?;
        Ok(match map_status(&view.status) {
            JobStatus::Failed(why) => JobStatus::Failed(format!("{why}; {}", view.logs_hint())),
            status => status,
        })
    }

    async fn cancel(&self, job: &str) -> Result<(), ComputeError> {
        Ok(self.azureml.cancel_job(job).await?)
    }

    /// The job's studio page and compute target.
    async fn describe(&self, job: &str) -> Result<Option<JobRef>, ComputeError> {
        let view = self.azureml.job(job).await?;
        Ok(Some(JobRef {
            id: job.to_owned(),
            url: view.studio,
            cluster: view.compute,
        }))
    }
}
