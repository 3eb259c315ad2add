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
use std::time::Duration;

use serde_json::{Value, json};

use super::compute::{Compute, ComputeError, JobSpec, JobStatus};
use crate::storage::{ObjectStore, PutMode, put_json};

pub const API_VERSION: &str = "2025-12-01";
/// The token audience for Azure Resource Manager.
pub const ARM_SCOPE: &str = "https://management.azure.com/.default";

/// Where the workspace is, and how it sees Sluice's container.
#[derive(Clone, Debug)]
pub struct Workspace {
    /// `https://management.azure.com` (tests point it elsewhere).
    pub endpoint: String,
    pub subscription_id: String,
    pub resource_group: String,
    pub workspace: String,
    /// The Azure ML datastore registered for Sluice's blob container.
    pub datastore: String,
    pub experiment: String,
}

impl Workspace {
    fn arm_id(&self) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.MachineLearningServices/workspaces/{}",
            self.subscription_id, self.resource_group, self.workspace
        )
    }

    /// `…/jobs/<job><suffix>?api-version=…`.
    fn job_url(&self, job: &str, suffix: &str) -> String {
        format!(
            "{}{}/jobs/{job}{suffix}?api-version={API_VERSION}",
            self.endpoint.trim_end_matches('/'),
            self.arm_id()
        )
    }

    fn datastore_uri(&self, path: &str) -> String {
        format!("azureml://datastores/{}/paths/{path}", self.datastore)
    }

    /// A compute target's ARM id (a bare name is a cluster of this workspace).
    fn compute_id(&self, target: &str) -> String {
        if target.starts_with("/subscriptions/") {
            target.to_owned()
        } else {
            format!("{}/computes/{target}", self.arm_id())
        }
    }

    /// An environment's ARM id from `azureml:<name>:<version>` (or an id as is).
    fn environment_id(&self, environment: &str) -> String {
        match environment
            .strip_prefix("azureml:")
            .and_then(|e| e.split_once(':'))
        {
            Some((name, version)) => {
                format!("{}/environments/{name}/versions/{version}", self.arm_id())
            }
            None => environment.to_owned(),
        }
    }
}

/// Something that hands out bearer tokens for ARM.
#[async_trait::async_trait]
pub trait Tokens: Send + Sync {
    async fn token(&self) -> Result<String, ComputeError>;
}

/// Managed identity (system- or user-assigned), through the Azure SDK.
pub struct ManagedIdentityTokens {
    credential: Arc<azure_identity::ManagedIdentityCredential>,
}

impl ManagedIdentityTokens {
    pub fn new(client_id: Option<String>) -> Result<Self, ComputeError> {
        let credential = azure_identity::ManagedIdentityCredential::new(Some(
            azure_identity::ManagedIdentityCredentialOptions {
                user_assigned_id: client_id.map(azure_identity::UserAssignedId::ClientId),
                ..Default::default()
            },
        ))
        .map_err(|e| ComputeError::Rejected(format!("managed identity: {e}")))?;
        Ok(Self { credential })
    }
}

#[async_trait::async_trait]
impl Tokens for ManagedIdentityTokens {
    async fn token(&self) -> Result<String, ComputeError> {
        use azure_core::credentials::TokenCredential;
        let token = self
            .credential
            .get_token(&[ARM_SCOPE], None)
            .await
            .map_err(|e| ComputeError::Unavailable {
                message: format!("getting a managed-identity token: {e}"),
                retry_after: None,
            })?;
        Ok(token.token.secret().to_owned())
    }
}

pub struct AzureMlCompute {
    store: Arc<dyn ObjectStore>,
    workspace: Workspace,
    tokens: Arc<dyn Tokens>,
    http: reqwest::Client,
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
    json!({
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
            "resources": {"instanceCount": 1, "instanceType": compute.instance_type},
            "tags": spec.tags,
        }
    })
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
        "Failed" => JobStatus::Failed(
            "Azure ML reports the job Failed; see its logs in the workspace".into(),
        ),
        "Canceled" => JobStatus::Canceled,
        other => JobStatus::Failed(format!("Azure ML reports an unknown job status {other:?}")),
    }
}

impl AzureMlCompute {
    pub fn new(store: Arc<dyn ObjectStore>, workspace: Workspace, tokens: Arc<dyn Tokens>) -> Self {
        Self {
            store,
            workspace,
            tokens,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("an HTTP client"),
        }
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ComputeError> {
        let token = self.tokens.token().await?;
        request
            .bearer_auth(token)
            .send()
            .await
            .map_err(|e| ComputeError::Unavailable {
                message: format!("Azure ML did not answer: {e}"),
                retry_after: None,
            })
    }
}

/// A non-success answer as an error: throttling and server errors are worth a retry
/// (after `Retry-After` when given); other client errors are not.
async fn failure(response: reqwest::Response, job: &str) -> ComputeError {
    let status = response.status();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let body: Value = response.json().await.unwrap_or(Value::Null);
    let message = body
        .pointer("/error/message")
        .and_then(Value::as_str)
        .map_or_else(
            || format!("HTTP {status}"),
            |m| format!("HTTP {status}: {m}"),
        );
    if status == reqwest::StatusCode::NOT_FOUND {
        ComputeError::UnknownJob(job.to_owned())
    } else if status == reqwest::StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        ComputeError::Unavailable {
            message,
            retry_after,
        }
    } else {
        ComputeError::Rejected(message)
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
        let url = self.workspace.job_url(&spec.job_name, "");
        let response = self
            .send(self.http.put(&url).json(&job_body(&self.workspace, spec)))
            .await?;
        match response.status().as_u16() {
            200 | 201 => Ok(spec.job_name.clone()),
            // The job exists already: this attempt was submitted before.
            409 => Ok(spec.job_name.clone()),
            _ => Err(failure(response, &spec.job_name).await),
        }
    }

    async fn status(&self, job: &str) -> Result<JobStatus, ComputeError> {
        let response = self
            .send(self.http.get(self.workspace.job_url(job, "")))
            .await?;
        if !response.status().is_success() {
            return Err(failure(response, job).await);
        }
        let body: Value = response
            .json()
            .await
            .map_err(|e| ComputeError::Unavailable {
                message: format!("Azure ML's job answer is not JSON: {e}"),
                retry_after: None,
            })?;
        let status = body
            .pointer("/properties/status")
            .and_then(Value::as_str)
            .unwrap_or("Unknown");
        Ok(map_status(status))
    }

    async fn cancel(&self, job: &str) -> Result<(), ComputeError> {
        let url = self.workspace.job_url(job, "/cancel");
        let response = self.send(self.http.post(url)).await?;
        match response.status().as_u16() {
            // 202 (with Location) means the cancellation is under way; following the
            // job's status shows when it is Canceled.
            200 | 202 => Ok(()),
            _ => Err(failure(response, job).await),
        }
    }
}
