//! Clients for the cloud services Sluice hands work to: the Azure Machine Learning
//! workspace (through Azure Resource Manager) and an Azure Databricks workspace. Both
//! authenticate with Entra ID tokens from the Function App's managed identity; no key
//! or personal access token is ever read from settings.
//!
//! These modules only speak the services' wire contracts. What a job is for (training a
//! model, scanning an upload) belongs to the callers: `runs` and `dataset::delegation`.

pub mod azureml;
pub mod databricks;

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

/// What went wrong talking to a service, sorted by what the caller can do about it.
#[derive(Debug, thiserror::Error)]
pub enum CloudError {
    #[error("{0} is not known to the service")]
    NotFound(String),
    /// The request will never succeed as sent (a 4xx other than throttling).
    #[error("the service refused the request: {0}")]
    Rejected(String),
    /// Worth trying again (throttling, 5xx, network), after `retry_after` when given.
    #[error("the service is unavailable: {message}")]
    Unavailable {
        message: String,
        retry_after: Option<Duration>,
    },
}

impl CloudError {
    fn unavailable(message: String) -> Self {
        CloudError::Unavailable {
            message,
            retry_after: None,
        }
    }
}

/// Something that hands out bearer tokens for one audience.
#[async_trait::async_trait]
pub trait Tokens: Send + Sync {
    async fn token(&self) -> Result<String, CloudError>;
}

/// The token audience for Azure Resource Manager (Azure ML's control plane).
pub const ARM_SCOPE: &str = "https://management.azure.com/.default";
/// The token audience for Azure Databricks (its first-party application id).
pub const DATABRICKS_SCOPE: &str = "2ff814a6-3304-4ab8-85cb-cd0e6f879c1d/.default";

/// Managed identity (system- or user-assigned), through the Azure SDK, for one audience.
pub struct ManagedIdentityTokens {
    credential: Arc<azure_identity::ManagedIdentityCredential>,
    scope: &'static str,
}

impl ManagedIdentityTokens {
    pub fn new(client_id: Option<String>, scope: &'static str) -> Result<Self, CloudError> {
        let credential = azure_identity::ManagedIdentityCredential::new(Some(
            azure_identity::ManagedIdentityCredentialOptions {
                user_assigned_id: client_id.map(azure_identity::UserAssignedId::ClientId),
                ..Default::default()
            },
        ))
        .map_err(|e| CloudError::Rejected(format!("managed identity: {e}")))?;
        Ok(Self { credential, scope })
    }
}

#[async_trait::async_trait]
impl Tokens for ManagedIdentityTokens {
    async fn token(&self) -> Result<String, CloudError> {
        use azure_core::credentials::TokenCredential;
        let token = self
            .credential
            .get_token(&[self.scope], None)
            .await
            .map_err(|e| {
                CloudError::unavailable(format!("getting a managed-identity token: {e}"))
            })?;
        Ok(token.token.secret().to_owned())
    }
}

/// An authenticated JSON client for one service.
#[derive(Clone)]
pub(crate) struct Client {
    service: &'static str,
    tokens: Arc<dyn Tokens>,
    http: reqwest::Client,
}

impl Client {
    pub(crate) fn new(service: &'static str, tokens: Arc<dyn Tokens>) -> Self {
        Self {
            service,
            tokens,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("an HTTP client"),
        }
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub(crate) async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, CloudError> {
        let token = self.tokens.token().await?;
        request
            .bearer_auth(token)
            .send()
            .await
            .map_err(|e| CloudError::unavailable(format!("{} did not answer: {e}", self.service)))
    }

    /// The body of a successful answer as JSON.
    pub(crate) async fn json(&self, response: reqwest::Response) -> Result<Value, CloudError> {
        response.json().await.map_err(|e| {
            CloudError::unavailable(format!("{}'s answer is not JSON: {e}", self.service))
        })
    }

    /// A non-success answer as an error: throttling and server errors are worth a retry
    /// (after `Retry-After` when given); other client errors are not. `what` names the
    /// resource for a 404.
    pub(crate) async fn failure(&self, response: reqwest::Response, what: &str) -> CloudError {
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body: Value = response.json().await.unwrap_or(Value::Null);
        // ARM says `{"error":{"message"}}`; Databricks says `{"error_code","message"}`.
        let detail = body
            .pointer("/error/message")
            .or_else(|| body.get("message"))
            .and_then(Value::as_str);
        let message = match detail {
            Some(m) => format!("{}: HTTP {status}: {m}", self.service),
            None => format!("{}: HTTP {status}", self.service),
        };
        if status == reqwest::StatusCode::NOT_FOUND {
            CloudError::NotFound(what.to_owned())
        } else if status == reqwest::StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            CloudError::Unavailable {
                message,
                retry_after,
            }
        } else {
            CloudError::Rejected(message)
        }
    }
}
