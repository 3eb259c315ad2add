//! Lifecycle events: the audit trail told on the topic (once, in order, and again on a
//! retry of the same timer occurrence) and to webhooks (signed; retried after a 5xx,
//! not after a 4xx; each outcome recorded).

use std::sync::Arc;

use base64::Engine;
use serde_json::{Value, json};
use sluice_shared::notify::webhook::Secret;
use sluice_shared::notify::{Notifier, Webhook};
use sluice_shared::storage::ObjectStore;
use sluice_shared::storage::local::LocalStore;

use crate::helpers::{Receiver, TestApp, signed_by, spawn_configured};

/// The README's webhook verifier, run by Python on a delivery as a receiver would.
pub(crate) fn readme_verifies(secret: &str, headers: &axum::http::HeaderMap, body: &[u8]) -> bool {
    let readme = std::fs::read_to_string(sluice_tests::repo_root().join("README.md")).unwrap();
    let start = readme
        .find("```python\nimport base64, hashlib, hmac, time")
        .expect("the verifier in the README");
    let code = &readme[start + "```python\n".len()..];
    let code = &code[..code.find("```").unwrap()];
    let headers: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), json!(v.to_str().unwrap())))
        .collect();
    let input = json!({
        "secret": secret,
        "headers": headers,
        "body": base64::engine::general_purpose::STANDARD.encode(body),
    });
    let script = format!(
        "{code}\nimport json, sys\nd = json.load(sys.stdin)\nprint(verify(d['secret'], d['headers'], base64.b64decode(d['body'])))\n"
    );
    let mut python = std::process::Command::new("python3")
        .args(["-c", &script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    use std::io::Write;
    python
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = python.wait_with_output().unwrap();
    assert!(out.status.success());
    match String::from_utf8_lossy(&out.stdout).trim() {
        "True" => true,
        "False" => false,
        other => panic!("the verifier printed {other:?}"),
    }
}

async fn app_notifying(hooks: Vec<Webhook>) -> TestApp {
    let root = tempfile::tempdir().unwrap();
    let store: Arc<dyn ObjectStore> = Arc::new(LocalStore::new(root.path()).unwrap());
    spawn_configured(store, Some(root), |state, _| state.with_webhooks(hooks)).await
}

/// `Notify` with a timer payload for the schedule occurrence `last`.
async fn notify_at(app: &TestApp, last: &str) -> Vec<String> {
    let timer = json!({"Data": {"timer": {"IsPastDue": false, "ScheduleStatus": {
        "Last": last, "Next": "2026-12-03T10:00:00+00:00", "LastUpdated": last}}}, "Metadata": {}});
    let (status, answer) = app.invoke("Notify", &timer).await;
    assert_eq!(status, 200, "{answer}");
    answer["Outputs"]["events"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect()
}

/// Two receivers: one answers 503 once, then 200; one refuses everything with 400 and
/// takes only dataset events. The first gets every event in order, the first one on the
/// second attempt after its backoff, each signed so the receiver (and the README's
/// verifier) can check it; the second is tried once per event. Each outcome is recorded.
#[tokio::test]
async fn webhooks_are_signed_retried_after_a_5xx_and_not_after_a_4xx() {
    let flaky = Receiver::start(vec![503]).await;
    let strict = Receiver::start(vec![400; 8]).await;
    let key = b"a key of thirty-two bytes, really";
    let secret = format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(key)
    );
    let hooks = vec![
        Webhook::new(
            "flaky",
            &flaky.url,
            Secret::new(secret.clone()),
            vec![],
            vec![],
        )
        .unwrap(),
        Webhook::new(
            "strict",
            &strict.url,
            Secret::new("a plain secret, long enough"),
            vec![],
            vec!["dataset.".into()],
        )
        .unwrap(),
    ];
    let app = app_notifying(hooks.clone()).await;
    app.adult_contract().await;
    let data = std::fs::read(sluice_tests::adult("adult.data")).unwrap();
    assert_eq!(
        app.ingest("adult", "adult.data", data).await["status"],
        "versioned"
    );

    let first = app.timer("Notify").await;
    let told: Vec<&str> = first["Outputs"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(told, ["contract.stored", "dataset.versioned"], "{first}");
    let passes = &first["ReturnValue"]["webhooks"];
    assert_eq!(passes[0]["deliveries"], json!([]), "{first}");
    assert!(passes[0]["retry_at"].is_string(), "{first}");
    assert!(
        passes[0]["last_error"].as_str().unwrap().contains("503"),
        "{first}"
    );
    assert_eq!(passes[1]["deliveries"][0]["type"], "dataset.versioned");
    assert_eq!(passes[1]["deliveries"][0]["outcome"], "refused");
    assert_eq!(passes[1]["deliveries"][0]["status"], 400);

    // Before its time the retry waits; after it, both events go, in order.
    app.timer("Notify").await;
    assert_eq!(flaky.received.lock().unwrap().len(), 1);
    let later = chrono::Utc::now() + chrono::Duration::seconds(11);
    let notifier = Notifier::new(app.store.clone(), hooks);
    let passes = notifier.deliver(later).await.unwrap();
    let outcomes: Vec<(&str, u32)> = passes[0]
        .deliveries
        .iter()
        .map(|d| (d.kind.as_str(), d.attempts))
        .collect();
    assert_eq!(outcomes, [("contract.stored", 2), ("dataset.versioned", 1)]);
    assert!(passes[1].deliveries.is_empty(), "a refusal is not retried");
    assert_eq!(strict.received.lock().unwrap().len(), 1);

    let received = flaky.received.lock().unwrap().clone();
    let kinds: Vec<String> = flaky
        .events()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        kinds,
        ["contract.stored", "contract.stored", "dataset.versioned"]
    );
    for (headers, body) in &received {
        assert_eq!(headers["content-type"], "application/cloudevents+json");
        assert!(signed_by(key, headers, body));
        assert!(readme_verifies(&secret, headers, body));
    }
    let (headers, body) = &received[2];
    let mut tampered = body.clone();
    tampered[10] ^= 1;
    assert!(!signed_by(key, headers, &tampered));
    assert!(!readme_verifies(&secret, headers, &tampered));
    assert_eq!(
        headers["webhook-id"].to_str().unwrap(),
        "dataset.versioned:adult:v1"
    );

    // Each outcome is recorded, newest first.
    let recorded = notifier.deliveries("flaky").await.unwrap();
    assert_eq!(recorded.len(), 2);
    assert_eq!((recorded[0].status, recorded[1].attempts), (Some(200), 2));
    let refused = notifier.deliveries("strict").await.unwrap();
    assert_eq!(refused.len(), 1);
    assert_eq!(
        refused[0].error.as_deref(),
        Some("the receiver refused it (400)")
    );

    // The topic: a retry of the same timer occurrence is handed the same events again
    // (its first hand-over may have failed); the next occurrence gets only what is new.
    app.put_contract(
        serde_json::from_slice(
            &std::fs::read(sluice_tests::repo_root().join("contracts/adult-eval.json")).unwrap(),
        )
        .unwrap(),
    )
    .await;
    let slot = "2026-12-03T09:59:00+00:00";
    assert_eq!(notify_at(&app, slot).await, ["contract.stored"]);
    assert_eq!(
        notify_at(&app, slot).await,
        ["contract.stored"],
        "the same occurrence again"
    );
    assert!(
        notify_at(&app, "2026-12-03T10:00:00+00:00")
            .await
            .is_empty()
    );
}
