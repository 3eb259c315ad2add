//! The object-store contract the domain needs, and nothing more.
//!
//! Two adapters implement it: [`local::LocalStore`] (the embedded default, a directory)
//! and [`azure::AzureBlobStore`] (Azure Blob Storage through the GA Azure SDK). Both run
//! the same behavioural suite in [`conformance`], so the domain can rely on identical
//! semantics: create-only writes fail with [`StorageError::AlreadyExists`], stale ETags
//! with [`StorageError::Precondition`], whatever the backend says on the wire.
//!
//! Unlike `object_store`, there is no delete: nothing Sluice writes is ever deleted
//! (quarantine copies, versions are immutable), so the capability is left out on purpose.

pub mod azure;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
pub mod local;

use std::fmt;
use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

/// A stream of byte chunks, as read from or written to a store.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, StorageError>> + Send>>;

/// Errors that mean the same thing on every backend.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    #[error("object not found: {key}")]
    NotFound { key: String },
    #[error("object already exists: {key}")]
    AlreadyExists { key: String },
    #[error("precondition failed for {key}: the object changed since it was read")]
    Precondition { key: String },
    #[error("invalid object key {key:?}: {reason}")]
    InvalidKey { key: String, reason: &'static str },
    #[error("{store} error: {message}")]
    Backend {
        store: &'static str,
        message: String,
        /// Whether retrying the same call later may succeed (throttling, network, 5xx).
        transient: bool,
    },
}

impl StorageError {
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            StorageError::Backend {
                transient: true,
                ..
            }
        )
    }
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// A validated object key: `/`-separated, relative, no empty or dot segments.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ObjectKey(String);

impl ObjectKey {
    pub fn parse(key: impl Into<String>) -> Result<Self> {
        let key = key.into();
        let reason = if key.is_empty() {
            Some("empty")
        } else if key.len() > 1024 {
            Some("longer than 1024 bytes")
        } else if key.starts_with('/') || key.ends_with('/') {
            Some("starts or ends with '/'")
        } else if key.contains('\\') || key.contains('\0') {
            Some("contains '\\' or NUL")
        } else if key
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == ".." || s.starts_with(local::RESERVED_PREFIX))
        {
            Some("has an empty, '.', '..' or reserved segment")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(StorageError::InvalidKey { key, reason }),
            None => Ok(Self(key)),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The last path segment (the file name).
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }

    /// A child key: `self/segment`.
    pub fn join(&self, segment: &str) -> Result<Self> {
        Self::parse(format!("{}/{}", self.0, segment))
    }
}

impl TryFrom<String> for ObjectKey {
    type Error = StorageError;
    fn try_from(value: String) -> Result<Self> {
        Self::parse(value)
    }
}

impl From<ObjectKey> for String {
    fn from(value: ObjectKey) -> Self {
        value.0
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// An opaque version tag; changes whenever the object's content changes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ETag(pub String);

impl fmt::Display for ETag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectMeta {
    pub key: ObjectKey,
    pub size: u64,
    pub etag: ETag,
    pub last_modified: DateTime<Utc>,
}

/// How a write treats an existing object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PutMode {
    /// Replace whatever is there (used only for scratch data, never for versions).
    Overwrite,
    /// Fail with [`StorageError::AlreadyExists`] if the key exists (immutable artefacts).
    Create,
    /// Fail with [`StorageError::Precondition`] unless the current ETag matches
    /// (mutable pointers: read, compute, write back, retry on conflict).
    Update(ETag),
}

/// What to write: small payloads in memory, large ones as a stream of chunks.
pub enum Payload {
    Bytes(Bytes),
    Stream(ByteStream),
    /// A finished local file handed over to the store: the local adapter moves it into
    /// place instead of copying it (a snapshot can be gigabytes); others stream it.
    /// The caller must not use the file afterwards.
    File(std::path::PathBuf),
}

impl From<Bytes> for Payload {
    fn from(value: Bytes) -> Self {
        Payload::Bytes(value)
    }
}

impl From<Vec<u8>> for Payload {
    fn from(value: Vec<u8>) -> Self {
        Payload::Bytes(value.into())
    }
}

impl Payload {
    /// Streams a local file without reading it into memory.
    pub async fn stream_file(path: &std::path::Path) -> Result<Self> {
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|e| io_error("file payload", e))?;
        let stream = tokio_util::io::ReaderStream::with_capacity(file, 1 << 20)
            .map_err(|e| io_error("file payload", e));
        Ok(Payload::Stream(Box::pin(stream)))
    }
}

/// An object's metadata and a stream of its bytes.
pub struct GetResult {
    pub meta: ObjectMeta,
    pub body: ByteStream,
}

impl GetResult {
    /// Collects the whole body; only for objects known to be small (manifests, pointers).
    pub async fn bytes(self) -> Result<Bytes> {
        let chunks: Vec<Bytes> = self.body.try_collect().await?;
        Ok(chunks.concat().into())
    }
}

/// The storage operations Sluice needs. Keys are relative to the store's container.
#[async_trait]
pub trait ObjectStore: Send + Sync + fmt::Debug {
    /// The backend's name, for logs and errors.
    fn name(&self) -> &'static str;

    /// Reads an object as a stream, with its ETag.
    async fn get(&self, key: &ObjectKey) -> Result<GetResult>;

    /// Reads an object's metadata only.
    async fn head(&self, key: &ObjectKey) -> Result<ObjectMeta>;

    /// Writes an object according to `mode`; returns the new metadata (with ETag).
    async fn put(&self, key: &ObjectKey, payload: Payload, mode: PutMode) -> Result<ObjectMeta>;

    /// Lists every object whose key starts with `prefix`, sorted by key.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>>;

    /// Copies `from` to `to`; create-only, so a copy never overwrites.
    async fn copy(&self, from: &ObjectKey, to: &ObjectKey) -> Result<ObjectMeta>;

    /// The URI that names `key` in this store (what events and manifests carry).
    fn uri(&self, key: &ObjectKey) -> String;

    /// The key a URI names, if it points into this store's container.
    fn key_from_uri(&self, uri: &str) -> Option<ObjectKey>;
}

/// Reads a small JSON object together with its ETag.
pub async fn get_json<T: serde::de::DeserializeOwned>(
    store: &dyn ObjectStore,
    key: &ObjectKey,
) -> Result<(T, ETag)> {
    let got = store.get(key).await?;
    let etag = got.meta.etag.clone();
    let bytes = got.bytes().await?;
    let value = serde_json::from_slice(&bytes).map_err(|e| StorageError::Backend {
        store: "json",
        message: format!("{key} is not valid JSON for its type: {e}"),
        transient: false,
    })?;
    Ok((value, etag))
}

/// Writes a small value as pretty JSON.
pub async fn put_json<T: Serialize>(
    store: &dyn ObjectStore,
    key: &ObjectKey,
    value: &T,
    mode: PutMode,
) -> Result<ObjectMeta> {
    let mut body = serde_json::to_vec_pretty(value).expect("domain types serialise");
    body.push(b'\n');
    store.put(key, body.into(), mode).await
}

/// Writes `value` create-only; if the key is taken (a retry, or a concurrent writer of
/// the same thing), what is there stays.
pub async fn create_or_keep<T: Serialize>(
    store: &dyn ObjectStore,
    key: &ObjectKey,
    value: &T,
) -> Result<()> {
    match put_json(store, key, value, PutMode::Create).await {
        Ok(_) | Err(StorageError::AlreadyExists { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Writes `value` create-only and returns it with `true`; if the key is taken, returns
/// what is stored there with `false` (the first writer's stands).
pub async fn create_or_read<T: Serialize + serde::de::DeserializeOwned>(
    store: &dyn ObjectStore,
    key: &ObjectKey,
    value: T,
) -> Result<(T, bool)> {
    match put_json(store, key, &value, PutMode::Create).await {
        Ok(_) => Ok((value, true)),
        Err(StorageError::AlreadyExists { .. }) => Ok((get_json(store, key).await?.0, false)),
        Err(e) => Err(e),
    }
}

/// Applies `change` to the stored value with If-Match, re-reading on a conflict, and
/// returns the value as stored (`change` returns false to leave it as it is).
pub async fn update_json<T: Serialize + serde::de::DeserializeOwned>(
    store: &dyn ObjectStore,
    key: &ObjectKey,
    change: impl Fn(&mut T) -> bool,
) -> Result<T> {
    loop {
        let (mut value, etag) = get_json::<T>(store, key).await?;
        if !change(&mut value) {
            return Ok(value);
        }
        match put_json(store, key, &value, PutMode::Update(etag)).await {
            Ok(_) => return Ok(value),
            Err(StorageError::Precondition { .. }) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Collects a byte stream into memory up to `limit` bytes.
pub async fn read_to_vec(mut body: ByteStream, limit: usize) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        if out.len() + chunk.len() > limit {
            return Err(StorageError::Backend {
                store: "read",
                message: format!("object larger than {limit} bytes"),
                transient: false,
            });
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

pub(crate) fn io_error(store: &'static str, e: std::io::Error) -> StorageError {
    StorageError::Backend {
        store,
        message: e.to_string(),
        transient: matches!(
            e.kind(),
            std::io::ErrorKind::Interrupted
                | std::io::ErrorKind::TimedOut
                | std::io::ErrorKind::WouldBlock
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_parsed_not_trusted() {
        for good in [
            "a",
            "landing/adult/adult.data",
            "datasets/adult/v1/manifest.json",
        ] {
            assert_eq!(ObjectKey::parse(good).unwrap().as_str(), good);
        }
        for bad in [
            "",
            "/abs",
            "trail/",
            "a//b",
            "a/../b",
            "./a",
            "a\\b",
            "a/.sluice-tmp-x",
        ] {
            assert!(
                matches!(ObjectKey::parse(bad), Err(StorageError::InvalidKey { .. })),
                "{bad:?} should be rejected"
            );
        }
        let key = ObjectKey::parse("landing/adult/adult.data").unwrap();
        assert_eq!(key.file_name(), "adult.data");
        assert_eq!(
            key.join("x").unwrap().as_str(),
            "landing/adult/adult.data/x"
        );
    }
}
