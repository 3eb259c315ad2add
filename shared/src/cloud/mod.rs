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
use sha2::{Digest, Sha256};

use crate::storage::{ObjectKey, ObjectStore, Payload, PutMode, StorageError};

/// Where code a cloud job runs is staged in Sluice's store: one folder per content hash
/// (`code/<hash>/<file>`), written create-only, so staging twice is staging once and a
/// job always runs the bytes it was submitted with.
pub fn code_key(hash: &str, file: &str) -> ObjectKey {
    ObjectKey::parse(format!("code/{hash}/{file}"))
        .expect("hex hashes and file names are valid key segments")
}

/// Code staged for a cloud job.
#[derive(Clone, Debug, PartialEq)]
pub struct StagedCode {
    pub key: ObjectKey,
    /// The content's hash (16 hex digits), which also names an Azure ML code version.
    pub hash: String,
}

impl StagedCode {
    /// The folder holding it (what an Azure ML code asset points at).
    pub fn folder(&self) -> ObjectKey {
        ObjectKey::parse(format!("code/{}", self.hash)).expect("a valid key")
    }
}

/// Stages `bytes` as `file`.
pub async fn stage_code(
    store: &dyn ObjectStore,
    file: &str,
    bytes: &[u8],
) -> Result<StagedCode, StorageError> {
    let hash = hex::encode(&Sha256::digest(bytes)[..8]);
    let key = code_key(&hash, file);
    match store
        .put(&key, bytes.to_vec().into(), PutMode::Create)
        .await
    {
        Ok(_) | Err(StorageError::AlreadyExists { .. }) => Ok(StagedCode { key, hash }),
        Err(e) => Err(e),
    }
}

/// Stages the file at `path` (a program too large to hold in memory twice) as `file`.
pub async fn stage_file(
    store: &dyn ObjectStore,
    file: &str,
    path: &std::path::Path,
) -> Result<StagedCode, StorageError> {
    let io = |e: std::io::Error| crate::storage::io_error("stage", e);
    let owned = path.to_path_buf();
    let hash = tokio::task::spawn_blocking(move || {
        let mut hasher = Sha256::new();
        std::io::copy(&mut std::fs::File::open(owned)?, &mut hasher)?;
        Ok(hex::encode(&hasher.finalize()[..8]))
    })
    .await
    .expect("hashing does not panic")
    .map_err(io)?;
    let key = code_key(&hash, file);
    match store.head(&key).await {
        Ok(_) => return Ok(StagedCode { key, hash }),
        Err(StorageError::NotFound { .. }) => {}
        Err(e) => return Err(e),
    }
    // Streamed, not handed over as `Payload::File`: the local store would move the
    // file, and the file is this very program.
    match store
        .put(&key, Payload::stream_file(path).await?, PutMode::Create)
        .await
    {
        Ok(_) | Err(StorageError::AlreadyExists { .. }) => Ok(StagedCode { key, hash }),
        Err(e) => Err(e),
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn code_is_staged_once_per_content() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::storage::local::LocalStore::new(dir.path()).unwrap();
        let first = stage_code(&store, "job.py", b"print(1)").await.unwrap();
        assert_eq!(
            first,
            stage_code(&store, "job.py", b"print(1)").await.unwrap()
        );
        assert_eq!(first.key.as_str(), format!("code/{}/job.py", first.hash));
        assert_eq!(first.folder().as_str(), format!("code/{}", first.hash));
        let other = stage_code(&store, "job.py", b"print(2)").await.unwrap();
        assert_ne!(other.key, first.key, "new content, new folder");
        let path = dir.path().join("program");
        std::fs::write(&path, b"print(1)").unwrap();
        let file = stage_file(&store, "job.py", &path).await.unwrap();
        assert_eq!(file, first, "a file stages as its bytes would");
        // A file staged for the first time stays where it was (it may be this program).
        std::fs::write(&path, b"print(3)").unwrap();
        let copied = stage_file(&store, "job.py", &path).await.unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"print(3)");
        let stored = store.get(&copied.key).await.unwrap().bytes().await.unwrap();
        assert_eq!(&stored[..], b"print(3)");
    }
}
