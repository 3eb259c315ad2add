//! The embedded default: objects are files under a root directory.
//!
//! Writes never touch the destination path directly. The bytes go to a temporary file
//! in the destination's directory (same file system, so publishing is atomic), are
//! fsynced, and are then published: create-only writes with `hard_link` (which fails
//! atomically if the name exists), overwrites and compare-and-swap updates with
//! `rename`. A crash leaves at worst a stray temporary file, never a torn object.
//!
//! `object_store`'s `LocalFileSystem` refuses `PutMode::Update`; Sluice needs it for
//! stage pointers, so every replacement of an existing key happens under an exclusive
//! advisory lock on a per-key lock file (`flock`, so it also holds across processes:
//! `sluice dev` and the CLI may run side by side). Under that lock the new file's mtime
//! is forced strictly past the old one's, so the ETag (`inode-mtime-size`) always
//! changes on replacement even when the kernel's coarse clock has not ticked.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use sha2::{Digest, Sha256};

use super::{
    ETag, GetResult, ObjectKey, ObjectMeta, ObjectStore, Payload, PutMode, Result, StorageError,
    io_error,
};

/// Names starting with this are the store's own (temporary files, locks); keys may not use it.
pub const RESERVED_PREFIX: &str = ".sluice-";
const STORE: &str = "LocalStore";

#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    /// Opens (creating if needed) a store rooted at `root`.
    pub fn new(root: impl AsRef<Path>) -> Result<Self> {
        let root = root.as_ref();
        fs::create_dir_all(root).map_err(|e| io_error(STORE, e))?;
        let root = root.canonicalize().map_err(|e| io_error(STORE, e))?;
        fs::create_dir_all(root.join(format!("{RESERVED_PREFIX}locks")))
            .map_err(|e| io_error(STORE, e))?;
        Ok(Self { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: &ObjectKey) -> PathBuf {
        self.root.join(key.as_str())
    }

    fn lock_path(&self, key: &ObjectKey) -> PathBuf {
        let digest = hex::encode(Sha256::digest(key.as_str().as_bytes()));
        self.root
            .join(format!("{RESERVED_PREFIX}locks"))
            .join(digest)
    }
}

fn map_io(key: &ObjectKey, e: std::io::Error) -> StorageError {
    match e.kind() {
        std::io::ErrorKind::NotFound => StorageError::NotFound {
            key: key.to_string(),
        },
        std::io::ErrorKind::AlreadyExists => StorageError::AlreadyExists {
            key: key.to_string(),
        },
        _ => io_error(STORE, e),
    }
}

fn meta_of(key: ObjectKey, md: &fs::Metadata) -> ObjectMeta {
    use std::os::unix::fs::MetadataExt;
    let modified = md.modified().unwrap_or(UNIX_EPOCH);
    let nanos = modified
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    ObjectMeta {
        key,
        size: md.len(),
        etag: ETag(format!("{:x}-{:x}-{:x}", md.ino(), nanos, md.len())),
        last_modified: modified.into(),
    }
}

/// A temporary file beside the destination, removed on drop unless published.
struct Staged {
    path: PathBuf,
    file: Option<File>,
}

impl Staged {
    fn new(dest: &Path) -> std::io::Result<Self> {
        let dir = dest.parent().expect("object paths have a parent");
        fs::create_dir_all(dir)?;
        let path = dir.join(format!("{RESERVED_PREFIX}tmp-{}", uuid::Uuid::new_v4()));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)?;
        Ok(Self {
            path,
            file: Some(file),
        })
    }

    /// Stages an existing file by moving it (a copy only across file systems).
    fn adopt(dest: &Path, source: &Path) -> std::io::Result<Self> {
        let mut staged = Self::new(dest)?;
        if fs::rename(source, &staged.path).is_err() {
            fs::copy(source, &staged.path)?;
        }
        // The handle from `new` is the empty file the rename replaced.
        staged.file = Some(OpenOptions::new().write(true).open(&staged.path)?);
        Ok(staged)
    }

    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.file
            .as_mut()
            .expect("open until finished")
            .write_all(bytes)
    }

    /// Flushes to disk and, if given, sets the mtime (see the module docs).
    fn finish(&mut self, mtime: Option<SystemTime>) -> std::io::Result<()> {
        let file = self.file.take().expect("finished once");
        if let Some(t) = mtime {
            file.set_modified(t)?;
        }
        file.sync_all()
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

fn sync_dir(path: &Path) -> std::io::Result<()> {
    File::open(path.parent().expect("object paths have a parent"))?.sync_all()
}

#[async_trait]
impl ObjectStore for LocalStore {
    fn name(&self) -> &'static str {
        STORE
    }

    async fn get(&self, key: &ObjectKey) -> Result<GetResult> {
        let file = tokio::fs::File::open(self.path(key))
            .await
            .map_err(|e| map_io(key, e))?;
        let md = file.metadata().await.map_err(|e| map_io(key, e))?;
        if md.is_dir() {
            return Err(StorageError::NotFound {
                key: key.to_string(),
            });
        }
        // A small object (an alias, a manifest) needs no megabyte buffer: that would be
        // fresh, zeroed memory on every read.
        let capacity = usize::try_from(md.len()).map_or(1 << 20, |n| (n + 1).clamp(4096, 1 << 20));
        let body = tokio_util::io::ReaderStream::with_capacity(file, capacity)
            .map_err(|e| io_error(STORE, e));
        Ok(GetResult {
            meta: meta_of(key.clone(), &md),
            body: Box::pin(body),
        })
    }

    async fn head(&self, key: &ObjectKey) -> Result<ObjectMeta> {
        let md = tokio::fs::metadata(self.path(key))
            .await
            .map_err(|e| map_io(key, e))?;
        if md.is_dir() {
            return Err(StorageError::NotFound {
                key: key.to_string(),
            });
        }
        Ok(meta_of(key.clone(), &md))
    }

    async fn put(&self, key: &ObjectKey, payload: Payload, mode: PutMode) -> Result<ObjectMeta> {
        let dest = self.path(key);
        // Fail fast on create-only writes before streaming anything.
        if mode == PutMode::Create && dest.exists() {
            return Err(StorageError::AlreadyExists {
                key: key.to_string(),
            });
        }
        let adopt = match &payload {
            Payload::File(path) => Some(path.clone()),
            _ => None,
        };
        let mut staged = {
            let dest = dest.clone();
            tokio::task::spawn_blocking(move || match adopt {
                Some(source) => Staged::adopt(&dest, &source),
                None => Staged::new(&dest),
            })
            .await
            .expect("staging task")
            .map_err(|e| map_io(key, e))?
        };
        match payload {
            Payload::File(_) => {}
            Payload::Bytes(bytes) => staged.write(&bytes).map_err(|e| io_error(STORE, e))?,
            Payload::Stream(mut stream) => {
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk?;
                    staged =
                        tokio::task::spawn_blocking(move || staged.write(&chunk).map(|()| staged))
                            .await
                            .expect("write task")
                            .map_err(|e| io_error(STORE, e))?;
                }
            }
        }
        let key = key.clone();
        let lock_path = self.lock_path(&key);
        tokio::task::spawn_blocking(move || publish(&key, staged, &dest, &lock_path, mode))
            .await
            .expect("publish task")
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        let root = self.root.clone();
        let prefix = prefix.to_owned();
        tokio::task::spawn_blocking(move || {
            // Walk only the deepest directory the prefix names fully.
            let start = match prefix.rfind('/') {
                Some(i) => root.join(&prefix[..i]),
                None => root.clone(),
            };
            let mut out = Vec::new();
            walk(&root, &start, &prefix, &mut out)?;
            out.sort_by(|a, b| a.key.cmp(&b.key));
            Ok(out)
        })
        .await
        .expect("list task")
    }

    async fn copy(&self, from: &ObjectKey, to: &ObjectKey) -> Result<ObjectMeta> {
        let got = self.get(from).await?;
        self.put(to, Payload::Stream(got.body), PutMode::Create)
            .await
    }

    fn uri(&self, key: &ObjectKey) -> String {
        url::Url::from_file_path(self.path(key))
            .expect("absolute root")
            .to_string()
    }

    fn key_from_uri(&self, uri: &str) -> Option<ObjectKey> {
        let path = url::Url::parse(uri).ok()?.to_file_path().ok()?;
        let rel = path.strip_prefix(&self.root).ok()?;
        ObjectKey::parse(rel.to_str()?).ok()
    }
}

fn publish(
    key: &ObjectKey,
    mut staged: Staged,
    dest: &Path,
    lock_path: &Path,
    mode: PutMode,
) -> Result<ObjectMeta> {
    let io = |e| map_io(key, e);
    if mode == PutMode::Create {
        staged.finish(None).map_err(io)?;
        fs::hard_link(&staged.path, dest).map_err(io)?;
        sync_dir(dest).map_err(io)?;
        let md = fs::metadata(dest).map_err(io)?;
        return Ok(meta_of(key.clone(), &md));
    }
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(lock_path)
        .map_err(io)?;
    lock.lock().map_err(io)?;
    let current = match fs::metadata(dest) {
        Ok(md) => Some(md),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io(e)),
    };
    if let PutMode::Update(expected) = &mode {
        let matches = current
            .as_ref()
            .is_some_and(|md| &meta_of(key.clone(), md).etag == expected);
        if !matches {
            return Err(StorageError::Precondition {
                key: key.to_string(),
            });
        }
    }
    let now = SystemTime::now();
    let mtime = match current.and_then(|md| md.modified().ok()) {
        Some(old) if old >= now => old + Duration::from_nanos(1),
        _ => now,
    };
    staged.finish(Some(mtime)).map_err(io)?;
    fs::rename(&staged.path, dest).map_err(io)?;
    sync_dir(dest).map_err(io)?;
    let md = fs::metadata(dest).map_err(io)?;
    drop(lock);
    Ok(meta_of(key.clone(), &md))
}

fn walk(root: &Path, dir: &Path, prefix: &str, out: &mut Vec<ObjectMeta>) -> Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_error(STORE, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| io_error(STORE, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with(RESERVED_PREFIX) {
            continue;
        }
        let path = entry.path();
        let Ok(rel) = path.strip_prefix(root) else {
            continue;
        };
        let Some(rel) = rel.to_str() else { continue };
        let file_type = entry.file_type().map_err(|e| io_error(STORE, e))?;
        if file_type.is_dir() {
            // Descend only where the prefix can still match.
            let as_dir = format!("{rel}/");
            if as_dir.starts_with(prefix) || prefix.starts_with(&as_dir) {
                walk(root, &path, prefix, out)?;
            }
        } else if rel.starts_with(prefix) {
            let Ok(key) = ObjectKey::parse(rel) else {
                continue;
            };
            match entry.metadata() {
                Ok(md) => out.push(meta_of(key, &md)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_error(STORE, e)),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_store_passes_the_conformance_suite() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path()).unwrap();
        super::super::conformance::run_all(&store, "").await;
    }

    #[tokio::test]
    async fn uris_round_trip_and_foreign_uris_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path()).unwrap();
        let key = ObjectKey::parse("landing/adult/a b.csv").unwrap();
        let uri = store.uri(&key);
        assert!(uri.starts_with("file:///"), "{uri}");
        assert_eq!(store.key_from_uri(&uri), Some(key));
        assert_eq!(store.key_from_uri("file:///etc/passwd"), None);
        assert_eq!(
            store.key_from_uri("https://x.blob.core.windows.net/c/k"),
            None
        );
    }

    #[tokio::test]
    async fn a_failed_stream_leaves_no_object_and_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path()).unwrap();
        let key = ObjectKey::parse("a/b").unwrap();
        let chunks: Vec<Result<bytes::Bytes>> = vec![
            Ok(bytes::Bytes::from_static(b"partial")),
            Err(StorageError::Backend {
                store: "test",
                message: "boom".into(),
                transient: true,
            }),
        ];
        let err = store
            .put(
                &key,
                Payload::Stream(Box::pin(futures::stream::iter(chunks))),
                PutMode::Create,
            )
            .await
            .unwrap_err();
        assert!(err.is_transient());
        assert!(matches!(
            store.head(&key).await,
            Err(StorageError::NotFound { .. })
        ));
        let leftovers: Vec<_> = fs::read_dir(dir.path().join("a")).unwrap().collect();
        assert!(
            leftovers.is_empty(),
            "temp files left behind: {leftovers:?}"
        );
    }
}
