//! Azure Blob Storage through the GA Azure SDK for Rust (`azure_storage_blob` 1.x).
//!
//! Production authenticates with a managed identity (system- or user-assigned). The
//! SDK has no shared-key signing, so a connection string (Azurite, or a developer's
//! account) is turned into an account SAS signed locally from the key; the key itself
//! never leaves this process and is never logged.
//!
//! Status codes are normalised the way `object_store` does it: Azure answers a failed
//! `If-None-Match: *` with 409 or 412 (Azurite differs from the service), and both mean
//! [`StorageError::AlreadyExists`] for a create-only write; a failed `If-Match` is
//! [`StorageError::Precondition`].

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use azure_core::http::NoFormat;
use azure_core::http::{ClientOptions, Etag, RequestContent, StatusCode};
use azure_identity::{ManagedIdentityCredential, ManagedIdentityCredentialOptions, UserAssignedId};
use azure_storage_blob::models::{
    BlobClientGetPropertiesResultHeaders, BlobClientStartCopyFromUrlOptions,
    BlobContainerClientListBlobsOptions, BlockBlobClientCommitBlockListOptions,
    BlockBlobClientUploadOptions, BlockLookupList, CopyStatus,
};
use azure_storage_blob::{BlobClient, BlobContainerClient, BlobContainerClientOptions};
use base64::Engine;
use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use url::Url;

use super::{
    ETag, GetResult, ObjectKey, ObjectMeta, ObjectStore, Payload, PutMode, Result, StorageError,
};

const STORE: &str = "AzureBlobStore";
/// The storage REST version sent with every request: the newest one Azurite 3.35.0
/// accepts (the SDK's default is newer), so tests and production speak the same version.
pub const API_VERSION: &str = "2025-11-05";
/// Streams are uploaded as blocks of this size, so memory stays bounded.
const BLOCK_SIZE: usize = 8 << 20;

/// How the adapter authenticates.
pub enum AzureAuth {
    /// A managed identity; `client_id` selects a user-assigned one.
    ManagedIdentity { client_id: Option<String> },
    /// A SAS token (query string without the leading `?`).
    Sas(String),
}

impl fmt::Debug for AzureAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AzureAuth::ManagedIdentity { client_id } => f
                .debug_struct("ManagedIdentity")
                .field("client_id", client_id)
                .finish(),
            AzureAuth::Sas(_) => f.write_str("Sas(<redacted>)"),
        }
    }
}

/// The parts of a storage connection string Sluice uses.
pub struct ConnectionString {
    pub account: String,
    pub key: String,
    pub blob_endpoint: Url,
}

impl fmt::Debug for ConnectionString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionString")
            .field("account", &self.account)
            .field("blob_endpoint", &self.blob_endpoint.as_str())
            .finish_non_exhaustive()
    }
}

/// Azurite's published development account (documented by Microsoft; not a secret).
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

impl ConnectionString {
    /// Parses `AccountName=…;AccountKey=…;BlobEndpoint=…` (or `UseDevelopmentStorage=true`).
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        let mut account = None;
        let mut key = None;
        let mut endpoint = None;
        let mut protocol = "https".to_owned();
        let mut suffix = "core.windows.net".to_owned();
        for part in s.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').ok_or_else(|| {
                format!(
                    "connection string part without '=': {:?}",
                    part.split('=').next()
                )
            })?;
            match k {
                "UseDevelopmentStorage" if v.eq_ignore_ascii_case("true") => {
                    account = Some(AZURITE_ACCOUNT.to_owned());
                    key = Some(AZURITE_KEY.to_owned());
                    endpoint = Some(format!("http://127.0.0.1:10000/{AZURITE_ACCOUNT}"));
                }
                "AccountName" => account = Some(v.to_owned()),
                "AccountKey" => key = Some(v.to_owned()),
                "BlobEndpoint" => endpoint = Some(v.to_owned()),
                "DefaultEndpointsProtocol" => protocol = v.to_owned(),
                "EndpointSuffix" => suffix = v.to_owned(),
                _ => {}
            }
        }
        let account = account.ok_or("connection string has no AccountName")?;
        let key = key.ok_or("connection string has no AccountKey")?;
        let endpoint = endpoint.unwrap_or_else(|| format!("{protocol}://{account}.blob.{suffix}"));
        let blob_endpoint = Url::parse(endpoint.trim_end_matches('/'))
            .map_err(|e| format!("BlobEndpoint is not a URL: {e}"))?;
        base64::engine::general_purpose::STANDARD
            .decode(&key)
            .map_err(|_| "AccountKey is not base64".to_owned())?;
        Ok(Self {
            account,
            key,
            blob_endpoint,
        })
    }

    /// Signs an account SAS (blob service; read, write, list, create) valid for `ttl`.
    pub fn account_sas(&self, ttl: Duration) -> String {
        let expiry = (Utc::now() + chrono::Duration::from_std(ttl).expect("ttl fits"))
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        let (permissions, services, resource_types, protocols) =
            ("rwlac", "b", "sco", "https,http");
        // The account-SAS string to sign for signed versions 2020-12-06 and later.
        let to_sign = format!(
            "{}\n{permissions}\n{services}\n{resource_types}\n\n{expiry}\n\n{protocols}\n{API_VERSION}\n\n",
            self.account
        );
        let key = base64::engine::general_purpose::STANDARD
            .decode(&self.key)
            .expect("checked at parse");
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("hmac takes any key length");
        mac.update(to_sign.as_bytes());
        let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("sv", API_VERSION)
            .append_pair("ss", services)
            .append_pair("srt", resource_types)
            .append_pair("sp", permissions)
            .append_pair("se", &expiry)
            .append_pair("spr", protocols)
            .append_pair("sig", &sig)
            .finish()
    }
}

pub struct AzureBlobStore {
    container: BlobContainerClient,
    /// `{service}/{container}` without any SAS: what URIs are built from.
    public_base: Url,
}

impl fmt::Debug for AzureBlobStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureBlobStore")
            .field("container", &self.public_base.as_str())
            .finish()
    }
}

fn backend(e: azure_core::Error) -> StorageError {
    let status = e.http_status();
    let transient = match status {
        Some(s) => matches!(u16::from(s), 408 | 429 | 500 | 502 | 503 | 504),
        None => matches!(e.kind(), azure_core::error::ErrorKind::Io),
    };
    StorageError::Backend {
        store: STORE,
        message: e.to_string(),
        transient,
    }
}

fn to_chrono(t: Option<time::OffsetDateTime>) -> DateTime<Utc> {
    t.and_then(|t| DateTime::from_timestamp(t.unix_timestamp(), t.nanosecond()))
        .unwrap_or_default()
}

impl AzureBlobStore {
    /// `service_url` is the blob endpoint, e.g. `https://acct.blob.core.windows.net` or
    /// `http://127.0.0.1:10000/devstoreaccount1` (a trailing slash is removed: the SDK
    /// would otherwise produce `//container`).
    pub fn new(service_url: &str, container: &str, auth: AzureAuth) -> Result<Self> {
        let invalid = |message: String| StorageError::Backend {
            store: STORE,
            message,
            transient: false,
        };
        let mut base = Url::parse(service_url.trim_end_matches('/'))
            .map_err(|e| invalid(format!("bad service URL: {e}")))?;
        base.path_segments_mut()
            .map_err(|()| invalid("service URL cannot be a base".into()))?
            .pop_if_empty()
            .push(container);
        let public_base = base.clone();
        let options = BlobContainerClientOptions {
            version: API_VERSION.to_owned(),
            client_options: ClientOptions::default(),
        };
        let container = match auth {
            AzureAuth::ManagedIdentity { client_id } => {
                let credential =
                    ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
                        user_assigned_id: client_id.map(UserAssignedId::ClientId),
                        ..Default::default()
                    }))
                    .map_err(backend)?;
                BlobContainerClient::new(base, Some(credential), Some(options)).map_err(backend)?
            }
            AzureAuth::Sas(token) => {
                base.set_query(Some(token.trim_start_matches('?')));
                BlobContainerClient::new(base, None, Some(options)).map_err(backend)?
            }
        };
        Ok(Self {
            container,
            public_base,
        })
    }

    /// A store from a connection string, authenticated by a locally signed account SAS.
    pub fn from_connection_string(conn: &ConnectionString, container: &str) -> Result<Self> {
        let sas = conn.account_sas(Duration::from_secs(24 * 3600));
        Self::new(conn.blob_endpoint.as_str(), container, AzureAuth::Sas(sas))
    }

    /// Creates the container if it does not exist yet.
    pub async fn ensure_container(&self) -> Result<()> {
        match self.container.create(None).await {
            Ok(_) => Ok(()),
            Err(e) if e.http_status() == Some(StatusCode::Conflict) => Ok(()),
            Err(e) => Err(backend(e)),
        }
    }

    fn blob(&self, key: &ObjectKey) -> BlobClient {
        self.container.blob_client(key.as_str())
    }

    fn map_err(
        &self,
        key: &ObjectKey,
        mode: Option<&PutMode>,
        e: azure_core::Error,
    ) -> StorageError {
        let key_s = key.to_string();
        match (e.http_status().map(u16::from), mode) {
            (Some(404), Some(PutMode::Update(_))) => StorageError::Precondition { key: key_s },
            (Some(404), _) => StorageError::NotFound { key: key_s },
            (Some(409 | 412), Some(PutMode::Create)) => StorageError::AlreadyExists { key: key_s },
            (Some(412), Some(PutMode::Update(_))) => StorageError::Precondition { key: key_s },
            _ => backend(e),
        }
    }

    async fn put_stream(
        &self,
        key: &ObjectKey,
        stream: super::ByteStream,
        mode: &PutMode,
    ) -> Result<()> {
        let block_client = self.blob(key).block_blob_client();
        let mut stream = stream;
        let mut buffer = BytesMut::with_capacity(BLOCK_SIZE);
        let mut ids: Vec<Vec<u8>> = Vec::new();
        let batch = uuid::Uuid::new_v4().simple().to_string();
        let mut ended = false;
        while !ended {
            match stream.next().await {
                Some(chunk) => buffer.extend_from_slice(&chunk?),
                None => ended = true,
            }
            while buffer.len() >= BLOCK_SIZE || (ended && !buffer.is_empty()) {
                let take = buffer.len().min(BLOCK_SIZE);
                let block = buffer.split_to(take).freeze();
                // Block ids must have equal length within a blob.
                let id = format!("{batch}-{:08}", ids.len()).into_bytes();
                block_client
                    .stage_block(&id, block.len() as u64, content(block), None)
                    .await
                    .map_err(|e| self.map_err(key, Some(mode), e))?;
                ids.push(id);
            }
        }
        let (if_match, if_none_match) = conditions(mode);
        let list = BlockLookupList {
            latest: Some(ids),
            ..Default::default()
        };
        block_client
            .commit_block_list(
                list.try_into().map_err(backend)?,
                Some(BlockBlobClientCommitBlockListOptions {
                    if_match,
                    if_none_match,
                    ..Default::default()
                }),
            )
            .await
            .map_err(|e| self.map_err(key, Some(mode), e))?;
        Ok(())
    }
}

fn content(bytes: Bytes) -> RequestContent<Bytes, NoFormat> {
    bytes.into()
}

fn conditions(mode: &PutMode) -> (Option<Etag>, Option<Etag>) {
    match mode {
        PutMode::Overwrite => (None, None),
        PutMode::Create => (None, Some(Etag::from("*"))),
        PutMode::Update(etag) => (Some(Etag::from(etag.0.clone())), None),
    }
}

#[async_trait]
impl ObjectStore for AzureBlobStore {
    fn name(&self) -> &'static str {
        STORE
    }

    async fn get(&self, key: &ObjectKey) -> Result<GetResult> {
        let got = self
            .blob(key)
            .download(None)
            .await
            .map_err(|e| self.map_err(key, None, e))?;
        let meta = ObjectMeta {
            key: key.clone(),
            // A partitioned download's first response covers one range: the total is in Content-Range.
            size: got
                .headers
                .get_optional_str(&azure_core::http::headers::HeaderName::from_static(
                    "content-range",
                ))
                .and_then(|r| r.rsplit('/').next()?.parse().ok())
                .or(got.properties.content_length)
                .unwrap_or_default(),
            etag: ETag(
                got.properties
                    .etag
                    .map(|e| e.to_string())
                    .unwrap_or_default(),
            ),
            last_modified: to_chrono(got.properties.last_modified),
        };
        let body = got.body.map_err(backend);
        Ok(GetResult {
            meta,
            body: Box::pin(body),
        })
    }

    async fn head(&self, key: &ObjectKey) -> Result<ObjectMeta> {
        let props = self
            .blob(key)
            .get_properties(None)
            .await
            .map_err(|e| self.map_err(key, None, e))?;
        Ok(ObjectMeta {
            key: key.clone(),
            size: props.content_length().map_err(backend)?.unwrap_or_default(),
            etag: ETag(
                props
                    .etag()
                    .map_err(backend)?
                    .map(|e| e.to_string())
                    .unwrap_or_default(),
            ),
            last_modified: to_chrono(props.last_modified().map_err(backend)?),
        })
    }

    async fn put(&self, key: &ObjectKey, payload: Payload, mode: PutMode) -> Result<ObjectMeta> {
        match payload {
            Payload::Bytes(bytes) if bytes.len() <= BLOCK_SIZE => {
                let (if_match, if_none_match) = conditions(&mode);
                let options = BlockBlobClientUploadOptions {
                    if_match,
                    if_none_match,
                    ..Default::default()
                };
                self.blob(key)
                    .block_blob_client()
                    .upload(content(bytes), Some(options))
                    .await
                    .map_err(|e| self.map_err(key, Some(&mode), e))?;
            }
            Payload::Bytes(bytes) => {
                let stream = futures::stream::once(async move { Ok::<_, StorageError>(bytes) });
                self.put_stream(key, Box::pin(stream), &mode).await?;
            }
            Payload::Stream(stream) => self.put_stream(key, stream, &mode).await?,
            Payload::File(path) => match Payload::stream_file(&path).await? {
                Payload::Stream(stream) => self.put_stream(key, stream, &mode).await?,
                _ => unreachable!("stream_file gives a stream"),
            },
        }
        self.head(key).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        let options = BlobContainerClientListBlobsOptions {
            prefix: Some(prefix.to_owned()),
            ..Default::default()
        };
        let mut pager = self.container.list_blobs(Some(options)).map_err(backend)?;
        let mut out = Vec::new();
        while let Some(item) = pager.next().await {
            let item = item.map_err(backend)?;
            let Some(name) = item.name.clone() else {
                continue;
            };
            let Ok(key) = ObjectKey::parse(name) else {
                continue;
            };
            let props = item.properties.unwrap_or_default();
            out.push(ObjectMeta {
                key,
                size: props.content_length.unwrap_or_default(),
                etag: ETag(props.etag.map(|e| e.to_string()).unwrap_or_default()),
                last_modified: to_chrono(props.last_modified),
            });
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    async fn copy(&self, from: &ObjectKey, to: &ObjectKey) -> Result<ObjectMeta> {
        // Server-side copy; the source URL carries the same authorisation (SAS query or,
        // within one account, the caller's bearer token).
        let source = self.blob(from).url().to_string();
        self.head(from).await?;
        let dest = self.blob(to);
        let options = BlobClientStartCopyFromUrlOptions {
            if_none_match: Some(Etag::from("*")),
            ..Default::default()
        };
        dest.start_copy_from_url(source, Some(options))
            .await
            .map_err(|e| self.map_err(to, Some(&PutMode::Create), e))?;
        for _ in 0..600 {
            let props = dest
                .get_properties(None)
                .await
                .map_err(|e| self.map_err(to, None, e))?;
            match props.copy_status().map_err(backend)? {
                Some(CopyStatus::Pending) => tokio::time::sleep(Duration::from_millis(100)).await,
                None | Some(CopyStatus::Success) => return self.head(to).await,
                Some(status) => {
                    let why = props
                        .copy_status_description()
                        .map_err(backend)?
                        .unwrap_or_default();
                    return Err(StorageError::Backend {
                        store: STORE,
                        message: format!("copy {from} -> {to} ended {status:?}: {why}"),
                        transient: true,
                    });
                }
            }
        }
        Err(StorageError::Backend {
            store: STORE,
            message: format!("copy {from} -> {to} still pending after 60 s"),
            transient: true,
        })
    }

    fn uri(&self, key: &ObjectKey) -> String {
        let mut url = self.public_base.clone();
        url.path_segments_mut()
            .expect("checked at construction")
            .extend(key.as_str().split('/'));
        url.to_string()
    }

    fn key_from_uri(&self, uri: &str) -> Option<ObjectKey> {
        let url = Url::parse(uri).ok()?;
        let base = &self.public_base;
        if url.scheme() != base.scheme()
            || url.host_str() != base.host_str()
            || url.port_or_known_default() != base.port_or_known_default()
        {
            return None;
        }
        let rest = url.path().strip_prefix(base.path())?.strip_prefix('/')?;
        let decoded = percent_encoding::percent_decode_str(rest)
            .decode_utf8()
            .ok()?;
        ObjectKey::parse(decoded.into_owned()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_strings_parse_and_hide_the_key() {
        let c = ConnectionString::parse("UseDevelopmentStorage=true").unwrap();
        assert_eq!(c.account, AZURITE_ACCOUNT);
        assert_eq!(
            c.blob_endpoint.as_str(),
            "http://127.0.0.1:10000/devstoreaccount1"
        );
        let c = ConnectionString::parse(&format!(
            "DefaultEndpointsProtocol=http;AccountName=a1;AccountKey={AZURITE_KEY};BlobEndpoint=http://127.0.0.1:4567/a1/;"
        ))
        .unwrap();
        assert_eq!(c.blob_endpoint.as_str(), "http://127.0.0.1:4567/a1");
        assert!(!format!("{c:?}").contains(AZURITE_KEY));
        let c =
            ConnectionString::parse(&format!("AccountName=prod;AccountKey={AZURITE_KEY}")).unwrap();
        assert_eq!(
            c.blob_endpoint.as_str(),
            "https://prod.blob.core.windows.net/"
        );
        assert!(ConnectionString::parse("AccountName=x").is_err());
        assert!(ConnectionString::parse("AccountName=x;AccountKey=not base64!").is_err());
    }

    #[test]
    fn account_sas_names_the_pinned_version_and_signs() {
        let c = ConnectionString::parse("UseDevelopmentStorage=true").unwrap();
        let sas = c.account_sas(Duration::from_secs(60));
        assert!(sas.contains(&format!("sv={API_VERSION}")), "{sas}");
        assert!(sas.contains("sig="));
        assert!(!sas.contains(AZURITE_KEY));
    }

    #[test]
    fn uris_map_back_to_keys_only_inside_the_container() {
        let store = AzureBlobStore::new(
            "http://127.0.0.1:10000/devstoreaccount1/",
            "sluice",
            AzureAuth::Sas("sv=x".into()),
        )
        .unwrap();
        let key = ObjectKey::parse("landing/adult/a b.csv").unwrap();
        let uri = store.uri(&key);
        assert_eq!(
            uri,
            "http://127.0.0.1:10000/devstoreaccount1/sluice/landing/adult/a%20b.csv"
        );
        assert!(!uri.contains("sv="), "URIs never carry the SAS");
        assert_eq!(store.key_from_uri(&uri), Some(key));
        assert_eq!(
            store.key_from_uri("http://127.0.0.1:10000/devstoreaccount1/other/landing/x"),
            None
        );
        assert_eq!(
            store.key_from_uri("https://evil.example/devstoreaccount1/sluice/x"),
            None
        );
    }
}
