//! An Azure Machine Learning workspace through its REST API (stable `2025-12-01`): jobs
//! (`PUT`, `GET`, `POST …/cancel`) and code assets, whatever the job's type.

use std::sync::Arc;

use serde_json::{Value, json};

use super::{Client, CloudError, Tokens};

pub const API_VERSION: &str = "2025-12-01";

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
    pub fn arm_id(&self) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.MachineLearningServices/workspaces/{}",
            self.subscription_id, self.resource_group, self.workspace
        )
    }

    /// `<endpoint><workspace id>/<path>?api-version=…`.
    fn url(&self, path: &str) -> String {
        format!(
            "{}{}/{path}?api-version={API_VERSION}",
            self.endpoint.trim_end_matches('/'),
            self.arm_id()
        )
    }

    /// How a job names a path of Sluice's container (through the datastore).
    pub fn datastore_uri(&self, path: &str) -> String {
        format!("azureml://datastores/{}/paths/{path}", self.datastore)
    }

    /// A compute target's ARM id (a bare name is a cluster of this workspace).
    pub fn compute_id(&self, target: &str) -> String {
        if target.starts_with("/subscriptions/") {
            target.to_owned()
        } else {
            format!("{}/computes/{target}", self.arm_id())
        }
    }

    /// An environment's ARM id from `azureml:<name>:<version>` (or an id as is).
    pub fn environment_id(&self, environment: &str) -> String {
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

    /// A code asset version's ARM id.
    pub fn code_id(&self, name: &str, version: &str) -> String {
        format!("{}/codes/{name}/versions/{version}", self.arm_id())
    }
}

/// What Sluice reads of a job.
#[derive(Clone, Debug, PartialEq)]
pub struct JobView {
    /// A value of the spec's JobStatus enum.
    pub status: String,
    /// The job's page in Azure ML studio (its `Studio` service endpoint).
    pub studio: Option<String>,
    /// The compute target it runs on (the last segment of `computeId`).
    pub compute: Option<String>,
}

impl JobView {
    /// Where a person reads why the job failed.
    pub fn logs_hint(&self) -> String {
        match &self.studio {
            Some(url) => format!("see its logs at {url}"),
            None => "see its logs in the workspace".into(),
        }
    }
}

/// The workspace's job and code endpoints, authenticated for ARM.
#[derive(Clone)]
pub struct AzureMl {
    pub workspace: Workspace,
    client: Client,
}

impl AzureMl {
    pub fn new(workspace: Workspace, tokens: Arc<dyn Tokens>) -> Self {
        Self {
            workspace,
            client: Client::new("Azure ML", tokens),
        }
    }

    /// Creates job `name` from `body`. A job that exists already counts as created: job
    /// names are derived from what they do, so an existing one is this job, submitted
    /// before.
    pub async fn put_job(&self, name: &str, body: &Value) -> Result<(), CloudError> {
        let url = self.workspace.url(&format!("jobs/{name}"));
        let response = self
            .client
            .send(self.client.http().put(url).json(body))
            .await?;
        match response.status().as_u16() {
            200 | 201 | 409 => Ok(()),
            _ => Err(self.client.failure(response, name).await),
        }
    }

    /// A job as `GET …/jobs/<name>` describes it.
    pub async fn job(&self, name: &str) -> Result<JobView, CloudError> {
        let url = self.workspace.url(&format!("jobs/{name}"));
        let response = self.client.send(self.client.http().get(url)).await?;
        if !response.status().is_success() {
            return Err(self.client.failure(response, name).await);
        }
        let body = self.client.json(response).await?;
        let props = &body["properties"];
        let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
        Ok(JobView {
            status: text(props.get("status")).unwrap_or_else(|| "Unknown".into()),
            studio: text(props.pointer("/services/Studio/endpoint")),
            compute: text(props.get("computeId"))
                .and_then(|id| id.rsplit('/').next().map(str::to_owned)),
        })
    }

    pub async fn cancel_job(&self, name: &str) -> Result<(), CloudError> {
        let url = self.workspace.url(&format!("jobs/{name}/cancel"));
        let response = self.client.send(self.client.http().post(url)).await?;
        match response.status().as_u16() {
            // 202 (with Location) means the cancellation is under way; the job's status
            // shows when it is Canceled.
            200 | 202 => Ok(()),
            _ => Err(self.client.failure(response, name).await),
        }
    }

    /// Registers the code at `code_uri` (a folder in blob storage) as version `version`
    /// of code asset `name`, and returns its ARM id. Versions are immutable, so the
    /// version is derived from the code's content and an existing one is this code.
    pub async fn put_code(
        &self,
        name: &str,
        version: &str,
        code_uri: &str,
    ) -> Result<String, CloudError> {
        let url = self
            .workspace
            .url(&format!("codes/{name}/versions/{version}"));
        let body = json!({"properties": {
            "codeUri": code_uri,
            "isAnonymous": false,
            "description": "Sluice's Spark scan of large uploads",
        }});
        let response = self
            .client
            .send(self.client.http().put(url).json(&body))
            .await?;
        match response.status().as_u16() {
            200 | 201 | 409 => Ok(self.workspace.code_id(name, version)),
            _ => Err(self.client.failure(response, name).await),
        }
    }
}
