//! The Azure Blob adapter against Azurite: the same conformance suite as the local
//! adapter, the compare-and-swap race, a 100 MB streaming upload, and an ingest.

use std::sync::Arc;

use sluice_shared::storage::ObjectStore;
use sluice_shared::storage::azure::{AzureBlobStore, ConnectionString};
use sluice_shared::storage::conformance;
use sluice_shared::storage::local::LocalStore;

use crate::helpers::spawn_app_on;

async fn store(azurite: &sluice_tests::Azurite, container: &str) -> Arc<dyn ObjectStore> {
    let conn = ConnectionString::parse(&azurite.connection_string()).unwrap();
    let store = AzureBlobStore::from_connection_string(&conn, container).unwrap();
    store.ensure_container().await.unwrap();
    store.ensure_container().await.unwrap();
    Arc::new(store)
}

#[tokio::test]
async fn azure_blob_adapter_passes_the_conformance_suite_on_azurite() {
    let azurite = sluice_tests::start_azurite();
    let s = store(&azurite, "conformance").await;
    conformance::run_all(s.as_ref(), "suite/").await;
    conformance::compare_and_swap_race(s.clone(), "race/").await;
}

#[tokio::test]
async fn both_adapters_stream_100_mib_without_buffering_it() {
    let azurite = sluice_tests::start_azurite();
    let s = store(&azurite, "large").await;
    conformance::large_streaming_upload(s.as_ref(), "azure/", 100).await;
    let dir = tempfile::tempdir().unwrap();
    let local = LocalStore::new(dir.path()).unwrap();
    conformance::large_streaming_upload(&local, "local/", 100).await;
    conformance::compare_and_swap_race(Arc::new(local), "race/").await;
}

#[tokio::test]
async fn adult_ingests_on_azurite_through_the_handler() {
    let azurite = sluice_tests::start_azurite();
    let app = spawn_app_on(store(&azurite, "sluice").await, None).await;
    app.adult_contract().await;
    let ret = app
        .ingest(
            "adult",
            "adult.data",
            std::fs::read(sluice_tests::adult("adult.data")).unwrap(),
        )
        .await;
    assert_eq!(
        (ret["status"].as_str(), ret["version"].as_u64()),
        (Some("versioned"), Some(1)),
        "{ret}"
    );
    let m = app.manifest("adult", 1).await;
    assert_eq!(m.rows, 32_561);
    assert!(
        m.source.uri.starts_with(&azurite.endpoint),
        "{}",
        m.source.uri
    );
    let bad = app
        .ingest(
            "adult",
            "adult.test",
            std::fs::read(sluice_tests::adult("adult.test")).unwrap(),
        )
        .await;
    assert_eq!(bad["status"], "quarantined");
    let report = app.report(&bad).await;
    assert_eq!(
        report.copy.bytes,
        std::fs::metadata(sluice_tests::adult("adult.test"))
            .unwrap()
            .len()
    );
}

#[test]
fn dev_runs_against_azurite_with_a_connection_string() {
    let azurite = sluice_tests::start_azurite();
    let root = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(sluice_tests::sluice_bin())
        .args([
            "--storage",
            "azure",
            "--root",
            root.path().to_str().unwrap(),
            "dev",
            "--exit-when-idle",
        ])
        .arg("--push")
        .arg(format!(
            "adult={}",
            sluice_tests::adult("adult.data").display()
        ))
        .env(
            "SLUICE_STORAGE__CONNECTION_STRING",
            azurite.connection_string(),
        )
        .current_dir(sluice_tests::repo_root())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("✓ adult v1: 32561 rows"), "{stdout}");
    assert!(
        !stdout.contains(sluice_shared::storage::azure::AZURITE_KEY),
        "the key is never printed"
    );
}
