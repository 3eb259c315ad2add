//! One behavioural suite for every [`ObjectStore`] adapter.
//!
//! The local adapter runs it in its unit tests; `tests/api` runs it against Azurite.
//! Every function takes a key prefix so several runs can share one container.

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use sha2::{Digest, Sha256};

use super::{ObjectKey, ObjectStore, Payload, PutMode, StorageError};

fn key(prefix: &str, rest: &str) -> ObjectKey {
    ObjectKey::parse(format!("{prefix}{rest}")).expect("test keys are valid")
}

/// Runs every check except the large upload (which is slow; call it on its own).
pub async fn run_all(store: &dyn ObjectStore, prefix: &str) {
    put_get_head(store, prefix).await;
    create_only_conflicts(store, prefix).await;
    stale_etag_is_rejected(store, prefix).await;
    listing_is_by_prefix_and_sorted(store, prefix).await;
    copy_is_create_only(store, prefix).await;
    missing_objects_are_not_found(store, prefix).await;
    uris_name_keys(store, prefix).await;
    file_payloads_publish_the_file(store, prefix).await;
}

/// A handed-over file is published whole, and a create conflict leaves the old object.
pub async fn file_payloads_publish_the_file(store: &dyn ObjectStore, prefix: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let k = key(prefix, "file/snapshot.bin");
    let content: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let first = dir.path().join("first.bin");
    std::fs::write(&first, &content).expect("write temp file");
    let meta = store
        .put(&k, Payload::File(first), PutMode::Create)
        .await
        .unwrap();
    assert_eq!(meta.size, content.len() as u64);
    let second = dir.path().join("second.bin");
    std::fs::write(&second, b"other").expect("write temp file");
    let err = store
        .put(&k, Payload::File(second), PutMode::Create)
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::AlreadyExists { .. }), "{err:?}");
    let got = store.get(&k).await.unwrap();
    assert_eq!(got.meta.etag, meta.etag);
    assert_eq!(&got.bytes().await.unwrap()[..], &content[..]);
}

pub async fn put_get_head(store: &dyn ObjectStore, prefix: &str) {
    let k = key(prefix, "basic/hello.txt");
    let written = store
        .put(&k, Bytes::from_static(b"hello").into(), PutMode::Create)
        .await
        .unwrap();
    assert_eq!(written.size, 5);
    let got = store.get(&k).await.unwrap();
    assert_eq!(
        got.meta.etag, written.etag,
        "get returns the ETag the write returned"
    );
    assert_eq!(&got.bytes().await.unwrap()[..], b"hello");
    let head = store.head(&k).await.unwrap();
    assert_eq!((head.size, &head.etag), (5, &written.etag));
    let again = store
        .put(
            &k,
            Bytes::from_static(b"hello, world").into(),
            PutMode::Overwrite,
        )
        .await
        .unwrap();
    assert_ne!(again.etag, written.etag, "a replacement changes the ETag");
    assert_eq!(
        &store.get(&k).await.unwrap().bytes().await.unwrap()[..],
        b"hello, world"
    );
}

pub async fn create_only_conflicts(store: &dyn ObjectStore, prefix: &str) {
    let k = key(prefix, "create/once.json");
    store
        .put(&k, Bytes::from_static(b"1").into(), PutMode::Create)
        .await
        .unwrap();
    let err = store
        .put(&k, Bytes::from_static(b"2").into(), PutMode::Create)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StorageError::AlreadyExists { .. }),
        "got {err:?}"
    );
    assert_eq!(
        &store.get(&k).await.unwrap().bytes().await.unwrap()[..],
        b"1",
        "the loser wrote nothing"
    );

    // Ten writers race for one key: exactly one wins.
    let k = key(prefix, "create/raced.json");
    let results = futures::future::join_all((0..10).map(|i| {
        let k = k.clone();
        async move {
            store
                .put(&k, Bytes::from(format!("{i}")).into(), PutMode::Create)
                .await
        }
    }))
    .await;
    let wins = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(
        wins,
        1,
        "exactly one create wins: {results:?}",
        results = results
            .iter()
            .map(|r| r.as_ref().map(|_| ()))
            .collect::<Vec<_>>()
    );
    assert!(
        results
            .iter()
            .filter_map(|r| r.as_ref().err())
            .all(|e| matches!(e, StorageError::AlreadyExists { .. }))
    );
}

pub async fn stale_etag_is_rejected(store: &dyn ObjectStore, prefix: &str) {
    let k = key(prefix, "cas/pointer.json");
    let v1 = store
        .put(&k, Bytes::from_static(b"v1").into(), PutMode::Create)
        .await
        .unwrap();
    let v2 = store
        .put(
            &k,
            Bytes::from_static(b"v2").into(),
            PutMode::Update(v1.etag.clone()),
        )
        .await
        .unwrap();
    let err = store
        .put(
            &k,
            Bytes::from_static(b"v3").into(),
            PutMode::Update(v1.etag),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, StorageError::Precondition { .. }),
        "got {err:?}"
    );
    assert_eq!(store.head(&k).await.unwrap().etag, v2.etag);
    let missing = key(prefix, "cas/missing.json");
    let err = store
        .put(
            &missing,
            Bytes::from_static(b"x").into(),
            PutMode::Update(v2.etag),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, StorageError::Precondition { .. }),
        "update of a missing key: {err:?}"
    );
}

/// Five workers each make ten compare-and-swap increments; none may be lost.
pub async fn compare_and_swap_race(store: Arc<dyn ObjectStore>, prefix: &str) {
    let k = key(prefix, "cas/counter");
    store
        .put(&k, Bytes::from_static(b"0").into(), PutMode::Create)
        .await
        .unwrap();
    let workers = (0..5).map(|_| {
        let store = store.clone();
        let k = k.clone();
        tokio::spawn(async move {
            let mut done = 0;
            while done < 10 {
                let got = store.get(&k).await.unwrap();
                let etag = got.meta.etag.clone();
                let n: u64 = std::str::from_utf8(&got.bytes().await.unwrap())
                    .unwrap()
                    .parse()
                    .unwrap();
                match store
                    .put(
                        &k,
                        Bytes::from((n + 1).to_string()).into(),
                        PutMode::Update(etag),
                    )
                    .await
                {
                    Ok(_) => done += 1,
                    Err(StorageError::Precondition { .. }) => {}
                    Err(e) => panic!("unexpected {e:?}"),
                }
            }
        })
    });
    for w in futures::future::join_all(workers).await {
        w.unwrap();
    }
    let got = store.get(&k).await.unwrap().bytes().await.unwrap();
    assert_eq!(
        std::str::from_utf8(&got).unwrap(),
        "50",
        "every increment survived"
    );
}

pub async fn listing_is_by_prefix_and_sorted(store: &dyn ObjectStore, prefix: &str) {
    for name in ["list/b/2", "list/a/1", "list/a/0", "list/ab", "lister/x"] {
        store
            .put(
                &key(prefix, name),
                Bytes::from_static(b"x").into(),
                PutMode::Create,
            )
            .await
            .unwrap();
    }
    let names = |metas: Vec<super::ObjectMeta>| {
        metas
            .into_iter()
            .map(|m| m.key.as_str()[prefix.len()..].to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(store.list(&format!("{prefix}list/")).await.unwrap()),
        ["list/a/0", "list/a/1", "list/ab", "list/b/2"]
    );
    assert_eq!(
        names(store.list(&format!("{prefix}list/a")).await.unwrap()),
        ["list/a/0", "list/a/1", "list/ab"]
    );
    assert!(
        store
            .list(&format!("{prefix}nothing-here/"))
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn copy_is_create_only(store: &dyn ObjectStore, prefix: &str) {
    let from = key(prefix, "copy/src.bin");
    let to = key(prefix, "copy/dst.bin");
    store
        .put(
            &from,
            Bytes::from_static(b"payload").into(),
            PutMode::Create,
        )
        .await
        .unwrap();
    let copied = store.copy(&from, &to).await.unwrap();
    assert_eq!(copied.size, 7);
    assert_eq!(
        &store.get(&to).await.unwrap().bytes().await.unwrap()[..],
        b"payload"
    );
    let err = store.copy(&from, &to).await.unwrap_err();
    assert!(
        matches!(err, StorageError::AlreadyExists { .. }),
        "got {err:?}"
    );
    let err = store
        .copy(&key(prefix, "copy/none"), &key(prefix, "copy/none2"))
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::NotFound { .. }), "got {err:?}");
    assert_eq!(
        &store.get(&from).await.unwrap().bytes().await.unwrap()[..],
        b"payload",
        "source untouched"
    );
}

pub async fn missing_objects_are_not_found(store: &dyn ObjectStore, prefix: &str) {
    let k = key(prefix, "missing/none");
    assert!(matches!(
        store.get(&k).await,
        Err(StorageError::NotFound { .. })
    ));
    assert!(matches!(
        store.head(&k).await,
        Err(StorageError::NotFound { .. })
    ));
}

pub async fn uris_name_keys(store: &dyn ObjectStore, prefix: &str) {
    let k = key(prefix, "uri/some file.csv");
    assert_eq!(store.key_from_uri(&store.uri(&k)), Some(k));
}

/// Streams `mib` MiB through the store without holding them in memory, then reads them
/// back and compares sizes and SHA-256.
pub async fn large_streaming_upload(store: &dyn ObjectStore, prefix: &str, mib: usize) {
    let k = key(prefix, "large/blob.bin");
    let chunk = |i: usize| {
        let mut block = vec![0u8; 1 << 20];
        for (j, b) in block.iter_mut().enumerate() {
            *b = (i.wrapping_mul(31) ^ j.wrapping_mul(7)) as u8;
        }
        Bytes::from(block)
    };
    let mut expected = Sha256::new();
    for i in 0..mib {
        expected.update(chunk(i));
    }
    let stream = futures::stream::iter(0..mib).map(move |i| Ok(chunk(i)));
    let meta = store
        .put(&k, Payload::Stream(Box::pin(stream)), PutMode::Create)
        .await
        .unwrap();
    assert_eq!(meta.size, (mib as u64) << 20);
    let mut got = store.get(&k).await.unwrap();
    assert_eq!(got.meta.size, (mib as u64) << 20);
    let mut actual = Sha256::new();
    let mut total = 0u64;
    while let Some(piece) = got.body.next().await {
        let piece = piece.unwrap();
        total += piece.len() as u64;
        actual.update(&piece);
    }
    assert_eq!(total, (mib as u64) << 20);
    assert_eq!(
        actual.finalize(),
        expected.finalize(),
        "bytes survive the round trip"
    );
}
