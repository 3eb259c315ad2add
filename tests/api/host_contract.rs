//! Contract tests for the Functions host's custom-handler protocol and Event Grid's
//! event shapes, using the payloads in ../shared/fixtures.

use serde_json::{Value, json};
use sluice::host::invocation::Invocation;
use sluice::host::startup::FUNCTIONS;

use crate::helpers::spawn_app;

#[test]
fn contract_host_payload_quirks_are_decoded() {
    let blob =
        serde_json::to_vec(&sluice_tests::fixture("functions-host/blobTrigger.json")).unwrap();
    let inv = Invocation::parse(&blob).unwrap();
    assert_eq!(inv.data_bytes("blobIn").unwrap(), b"hello from byte\n");
    // Strings arrive JSON-encoded twice; numbers as numbers or strings.
    assert_eq!(
        inv.meta_str("Uri").as_deref(),
        Some("https://baldevgroup84df.blob.core.windows.net/bpath1/hello.txt")
    );
    assert_eq!(inv.meta_str("name").as_deref(), Some("hello.txt"));
    assert_eq!(inv.meta_u64("Properties.Length"), Some(16));
    assert_eq!(
        inv.meta_str("Properties.ETag").as_deref(),
        Some("0x8DA6E28262505DD")
    );
    let sb = serde_json::to_vec(&sluice_tests::fixture(
        "functions-host/serviceBusTrigger.json",
    ))
    .unwrap();
    let inv = Invocation::parse(&sb).unwrap();
    assert_eq!(inv.meta_u64("DeliveryCount"), Some(1));
    assert_eq!(
        inv.meta_str("MessageId").as_deref(),
        Some("4e773554-f6b7-4ea2-b07d-4c5fd5aba741")
    );
    assert_eq!(
        inv.data_json("queue").unwrap(),
        json!({"message": "hello", "number": 2})
    );
    assert_eq!(inv.invocation_id(), "4e773554-f6b7-4ea2-b07d-4c5fd5aba741");
    // Older hosts send nested Metadata objects as JSON strings.
    let old = json!({"Data": {}, "Metadata": {"Properties": "{\"Length\":\"42\",\"ETag\":\"\\\"0x1\\\"\"}"}});
    let inv = Invocation::parse(old.to_string().as_bytes()).unwrap();
    assert_eq!(inv.meta_u64("Properties.Length"), Some(42));
    assert_eq!(inv.meta_str("Properties.ETag").as_deref(), Some("0x1"));
}

#[tokio::test]
async fn contract_every_function_json_names_a_served_route_and_nothing_else_is_served() {
    let app = spawn_app().await;
    let dir = sluice_tests::repo_root().join("functions");
    let mut declared = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path().join("function.json");
        if !path.exists() {
            continue;
        }
        let name = path
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        let fj: Value = serde_json::from_slice(&std::fs::read(&path).unwrap())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let bindings = fj["bindings"]
            .as_array()
            .unwrap_or_else(|| panic!("{name}: no bindings"));
        let triggers = bindings
            .iter()
            .filter(|b| b["type"].as_str().unwrap().ends_with("Trigger"))
            .count();
        assert_eq!(triggers, 1, "{name}: exactly one trigger");
        for b in bindings {
            assert!(
                b["name"].is_string() && b["direction"].is_string(),
                "{name}: {b}"
            );
        }
        let http = bindings.iter().find(|b| b["type"] == "httpTrigger");
        if let Some(trigger) = http {
            // Forwarded as a raw request at /api/<route>: without a key it is a JSON 401
            // (the route exists), for every method the function declares.
            let route = trigger["route"].as_str().unwrap();
            for method in trigger["methods"].as_array().unwrap() {
                let method =
                    reqwest::Method::from_bytes(method.as_str().unwrap().to_uppercase().as_bytes())
                        .unwrap();
                // A path each catch-all route serves for the method.
                let rest = match (name.as_str(), &method) {
                    ("Runs", &reqwest::Method::POST) => "/some-id/retry",
                    (_, &reqwest::Method::POST) => "/m/rollback",
                    (_, &reqwest::Method::PUT) => "/m/config",
                    _ => "",
                };
                let path = route.replace("/{*path}", rest).replace("{model}", "m");
                assert!(!path.contains('{'), "{name}: a test path for {route}");
                let response = app
                    .client
                    .request(method.clone(), format!("{}/api/{path}", app.base))
                    .send()
                    .await
                    .unwrap();
                let status = response.status().as_u16();
                if name == "Console" {
                    // Pages, not JSON: without a session, sent on to the sign-in page.
                    assert_eq!(status, 200, "{name}: {method} /api/{path}");
                    assert_eq!(response.url().path(), "/api/console/sign-in");
                    continue;
                }
                let body: Value = response.json().await.unwrap();
                if name == "Health" {
                    // The one function without a key, for probes.
                    assert_eq!(status, 200, "{name}: {body}");
                    continue;
                }
                assert_eq!(status, 401, "{name}: {method} /api/{path}: {body}");
                assert_eq!(body["error"]["code"], "unauthorized");
            }
            assert!(
                bindings
                    .iter()
                    .any(|b| b["type"] == "http" && b["direction"] == "out"),
                "{name}: forwarding needs exactly one http output"
            );
        } else {
            // The route exists: a bad body gets a 4xx JSON error from the handler, not a 404.
            let (status, body) = app.invoke_raw(&name, b"not json".to_vec()).await;
            assert_eq!(status, 400, "{name}: {body}");
            assert_eq!(body["error"]["field"], "body");
        }
        declared.push(name);
    }
    declared.sort();
    let mut served: Vec<String> = FUNCTIONS.iter().map(|s| s.to_string()).collect();
    served.sort();
    assert_eq!(
        declared, served,
        "function.json folders and served routes differ"
    );
    let (status, body) = app.invoke("Undeclared", &json!({})).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "not_found");
    let wrong_method = reqwest::get(format!("{}/DatasetIngest", app.base))
        .await
        .unwrap();
    assert_eq!(wrong_method.status(), 405);
    let body: Value = wrong_method.json().await.unwrap();
    assert_eq!(body["error"]["code"], "method_not_allowed");
    let ready = reqwest::get(format!("{}/", app.base)).await.unwrap();
    assert_eq!(ready.status(), 200);
    let host: Value = serde_json::from_slice(
        &std::fs::read(sluice_tests::repo_root().join("host.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(host["version"], "2.0");
    assert_eq!(host["customHandler"]["enableForwardingHttpRequest"], true);
    assert_eq!(
        host["customHandler"]["description"]["defaultExecutablePath"],
        "sluice"
    );
}

#[tokio::test]
async fn contract_both_blob_created_schemas_ingest_and_other_events_are_acknowledged() {
    let app = spawn_app().await;
    let key = app
        .upload("inferred", "a.csv", b"x,y\n1,2\n".to_vec())
        .await;
    for (i, fixture) in [
        "eventgrid/Microsoft.Storage.BlobCreated.eventgrid.json",
        "eventgrid/Microsoft.Storage.BlobCreated.cloudevent.json",
    ]
    .iter()
    .enumerate()
    {
        let mut event = sluice_tests::fixture(fixture)[0].clone();
        event["data"]["url"] = json!(app.store.uri(&key));
        // The host may hand the event over as an object or as a JSON string.
        let data = if i == 0 {
            event.clone()
        } else {
            json!(event.to_string())
        };
        let (status, body) = app
            .invoke(
                "DatasetIngest",
                &json!({"Data": {"event": data}, "Metadata": {}}),
            )
            .await;
        assert_eq!(status, 200, "{fixture}: {body}");
        assert_eq!(
            body["ReturnValue"]["status"], "versioned",
            "{fixture}: {body}"
        );
        assert_eq!(body["ReturnValue"]["version"], 1);
        assert!(body["Logs"].is_array());
    }
    // Told once each, as objects (never bare strings): the inferred contract, the version.
    let told = app.events("").await;
    let kinds: Vec<&str> = told.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["contract.stored", "dataset.versioned"], "{told:?}");
    let ignored = [
        sluice_tests::fixture("functions-host/eventGridTrigger.json"),
        json!({"Data": {"event": sluice_tests::fixture("eventgrid/SubscriptionValidationEvent.json")[0].clone()}}),
        {
            let mut e =
                sluice_tests::fixture("eventgrid/Microsoft.Storage.BlobCreated.eventgrid.json")[0]
                    .clone();
            e["data"]["api"] = json!("CopyBlob");
            e["data"]["url"] = json!(app.store.uri(&key));
            json!({"Data": {"event": e}})
        },
        // The fixture's own URL is another account: not ours.
        json!({"Data": {"event": sluice_tests::fixture("eventgrid/Microsoft.Storage.BlobCreated.eventgrid.json")[0].clone()}}),
    ];
    for payload in ignored {
        let (status, body) = app.invoke("DatasetIngest", &payload).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["ReturnValue"]["status"], "ignored", "{body}");
        assert!(body["Outputs"].as_object().unwrap().is_empty());
    }
}

#[tokio::test]
async fn contract_payloads_that_cannot_be_understood_get_a_4xx_naming_the_field() {
    let app = spawn_app().await;
    let blob_created = |data: Value| json!({"Data": {"event": {"eventType": "Microsoft.Storage.BlobCreated", "data": data}}});
    let cases = [
        (json!([1, 2]), "body"),
        (json!({"Data": "nope"}), "Data"),
        (json!({"Data": {}}), "Data.event"),
        (json!({"Data": {"event": "{not json"}}), "Data.event"),
        (
            json!({"Data": {"event": {"data": {}}}}),
            "Data.event.eventType",
        ),
        (
            json!({"Data": {"event": {"eventType": "Microsoft.Storage.BlobCreated"}}}),
            "Data.event.data",
        ),
        (
            blob_created(json!({"api": "PutBlob"})),
            "Data.event.data.url",
        ),
        (
            blob_created(json!({"api": "PutBlob", "url": 7})),
            "Data.event.data.url",
        ),
    ];
    for (payload, field) in cases {
        let (status, body) = app.invoke("DatasetIngest", &payload).await;
        assert_eq!(status, 400, "{payload}: {body}");
        assert_eq!(body["error"]["field"], field, "{payload}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    let (status, body) = app.invoke("DatasetIngestBlob", &json!({"Data": {"blob": "!!!"}, "Metadata": {"dataset": "\"d\"", "name": "\"x.csv\""}})).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("Data.blob")),
        "{body}"
    );
    let (status, body) = app
        .invoke(
            "DatasetIngestBlob",
            &sluice_tests::fixture("functions-host/blobTrigger.json"),
        )
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("Metadata.Uri")),
        "{body}"
    );
    // An invocation over the limit is a 413 that states the limit the router applies.
    let limit = sluice::host::trigger::body_limit("RunsTimer");
    let (status, body) = app.invoke_raw("RunsTimer", vec![b' '; limit + 1]).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (413, Some("body"))
    );
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("larger than {limit} bytes")),
        "{message}"
    );
}

#[tokio::test]
async fn contract_blob_trigger_ingests_small_files_and_refuses_large_ones_clearly() {
    use base64::Engine;
    let app = spawn_app().await;
    let bytes = b"a,b\n1,2\n3,4\n".to_vec();
    let key = app.upload("small", "s.csv", bytes.clone()).await;
    let payload = json!({
        "Data": {"blob": base64::engine::general_purpose::STANDARD.encode(&bytes)},
        "Metadata": {
            "Uri": json!(app.store.uri(&key)).to_string(),
            "Properties": {"Length": bytes.len(), "ETag": "\"0x1\""},
            "dataset": "\"small\"", "name": "\"s.csv\"",
            "sys": {"MethodName": "DatasetIngestBlob", "RandGuid": "g"}
        }
    });
    let (status, body) = app.invoke("DatasetIngestBlob", &payload).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ReturnValue"]["status"], "versioned");
    assert_eq!(app.manifest("small", 1).await.rows, 2);
    let mut big = payload.clone();
    big["Metadata"]["Properties"]["Length"] =
        json!(sluice::host::state::BLOB_TRIGGER_MAX_BYTES + 1);
    let (status, body) = app.invoke("DatasetIngestBlob", &big).await;
    assert_eq!(status, 413, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("DatasetIngest"),
        "{body}"
    );
}
