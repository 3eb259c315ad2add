//! Copying a dataset version to local disk for whoever reads it there (the local compute
//! backend, the gate): `manifest.json` as stored, and `data.parquet`, a file or, when a
//! distributed scan wrote the snapshot in parts, a folder of them in order.

use std::path::Path;

use futures::StreamExt;
use tokio::io::AsyncWriteExt;

use super::{DatasetName, Manifest, layout};
use crate::storage::{ObjectKey, ObjectStore, StorageError};

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("copying a dataset version to disk: {0}")]
    Io(#[from] std::io::Error),
}

/// Copies version `version` of `dataset` into `dir` and returns its manifest.
pub async fn fetch_version(
    store: &dyn ObjectStore,
    dataset: &DatasetName,
    version: u32,
    dir: &Path,
) -> Result<Manifest, FetchError> {
    let raw = store
        .get(&layout::manifest(dataset, version))
        .await?
        .bytes()
        .await?;
    let manifest: Manifest = serde_json::from_slice(&raw)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    tokio::fs::write(dir.join("manifest.json"), &raw).await?;
    let data = dir.join("data.parquet");
    if manifest.data_parts.is_empty() {
        download(store, &manifest.data.key, &data).await?;
    } else {
        tokio::fs::create_dir_all(&data).await?;
        for part in &manifest.data_parts {
            let name = part.key.file_name();
            download(store, &part.key, &data.join(name)).await?;
        }
    }
    Ok(manifest)
}

/// Streams one object into a file.
async fn download(store: &dyn ObjectStore, key: &ObjectKey, to: &Path) -> Result<(), FetchError> {
    let mut body = store.get(key).await?.body;
    let mut file = tokio::fs::File::create(to).await?;
    while let Some(chunk) = body.next().await {
        file.write_all(&chunk?).await?;
    }
    file.flush().await?;
    Ok(())
}

/// A manifest of version 1 of dataset `d` (parts of its snapshot, if any), for tests.
#[cfg(test)]
pub(crate) fn test_manifest(parts: &[&str]) -> serde_json::Value {
    let mut m = serde_json::json!({
        "dataset": "d", "version": 1, "content_sha256": "ab", "contract_version": 1,
        "contract_inferred": false,
        "source": {"key": "landing/d/x.csv", "uri": "file:///x.csv", "etag": "e"},
        "format": "csv", "bytes": 2, "rows": 0, "schema": [], "profile": [],
        "validation": {"passed": true, "violations": []}, "parent_version": null,
        "data": {"key": "datasets/d/v1/data.parquet", "uri": "file:///d", "bytes": 2},
        "created_at": "2026-12-01T00:00:00Z"});
    if !parts.is_empty() {
        m["data_parts"] = parts
            .iter()
            .map(|p| serde_json::json!({"key": format!("datasets/d/v1/data.parquet/{p}"), "uri": "x", "bytes": 1}))
            .collect();
    }
    m
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::storage::local::LocalStore;
    use crate::storage::{Payload, PutMode};

    async fn put(store: &dyn ObjectStore, key: &str, bytes: &[u8]) {
        let key = ObjectKey::parse(key).unwrap();
        let payload = Payload::Bytes(bytes.to_vec().into());
        store.put(&key, payload, PutMode::Create).await.unwrap();
    }

    /// A manifest written before snapshots had parts (no `data_parts`) still fetches as
    /// one file; one with parts fetches as a folder of them.
    #[tokio::test]
    async fn versions_fetch_as_one_file_or_as_their_parts() {
        let root = tempfile::tempdir().unwrap();
        let d = DatasetName::parse("d").unwrap();
        let one: Arc<dyn ObjectStore> = Arc::new(LocalStore::new(root.path().join("a")).unwrap());
        put(
            one.as_ref(),
            "datasets/d/v1/manifest.json",
            test_manifest(&[]).to_string().as_bytes(),
        )
        .await;
        put(one.as_ref(), "datasets/d/v1/data.parquet", b"whole").await;
        let dir = tempfile::tempdir().unwrap();
        let m = fetch_version(one.as_ref(), &d, 1, dir.path())
            .await
            .unwrap();
        assert!(m.data_parts.is_empty());
        assert_eq!(
            std::fs::read(dir.path().join("data.parquet")).unwrap(),
            b"whole"
        );

        let parts: Arc<dyn ObjectStore> = Arc::new(LocalStore::new(root.path().join("b")).unwrap());
        let names = ["part-00000.parquet", "part-00001.parquet"];
        let m = test_manifest(&names).to_string();
        put(parts.as_ref(), "datasets/d/v1/manifest.json", m.as_bytes()).await;
        for name in names {
            let key = format!("datasets/d/v1/data.parquet/{name}");
            put(parts.as_ref(), &key, name.as_bytes()).await;
        }
        let dir = tempfile::tempdir().unwrap();
        fetch_version(parts.as_ref(), &d, 1, dir.path())
            .await
            .unwrap();
        let found = crate::dataset::snapshot_parts(&dir.path().join("data.parquet")).unwrap();
        let found: Vec<_> = found.into_iter().map(|(n, _)| n).collect();
        assert_eq!(found, names);
    }
}
