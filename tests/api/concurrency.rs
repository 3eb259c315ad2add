//! A burst of uploads at once: distinct versions, no gaps, no duplicates.

use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn twenty_concurrent_uploads_get_twenty_distinct_versions() {
    let app = spawn_app().await;
    app.put_contract(json!({"dataset": "burst", "columns": [{"name": "id", "type": "integer"}, {"name": "v", "type": "float"}]}))
        .await;
    let mut keys = Vec::new();
    for i in 0..20 {
        keys.push(
            app.upload(
                "burst",
                &format!("part-{i}.csv"),
                format!("id,v\n{i},{i}.5\n").into_bytes(),
            )
            .await,
        );
    }
    let mut events = Vec::new();
    for k in &keys {
        events.push(app.blob_created(k).await);
    }
    // Each event is also delivered twice, as the host may.
    let calls = events
        .iter()
        .chain(events.iter())
        .map(|e| app.invoke("DatasetIngest", e));
    let answers = futures::future::join_all(calls).await;
    let mut versions: Vec<(u64, String)> = answers
        .iter()
        .map(|(status, body)| {
            assert_eq!(*status, 200, "{body}");
            let r = &body["ReturnValue"];
            assert_eq!(r["status"], "versioned", "{r}");
            (
                r["version"].as_u64().unwrap(),
                r["content_sha256"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    versions.sort();
    versions.dedup();
    assert_eq!(
        versions.len(),
        20,
        "one version per distinct content: {versions:?}"
    );
    assert_eq!(
        versions.iter().map(|v| v.0).collect::<Vec<_>>(),
        (1..=20).collect::<Vec<_>>()
    );
    assert_eq!(app.versions("burst").await, (1..=20).collect::<Vec<_>>());
    let mut hashes: Vec<_> = versions.iter().map(|v| v.1.clone()).collect();
    hashes.sort();
    hashes.dedup();
    assert_eq!(hashes.len(), 20);
}
