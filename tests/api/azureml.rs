//! Contract tests for the Azure ML backend: Azure ML cannot run here, so request bodies
//! are checked against the 2025-12-01 spec definitions in ../shared/fixtures, and a
//! stand-in server answers with the spec's example responses.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde_json::{Value, json};
use sluice_shared::cloud::azureml::AzureMl;

use crate::helpers::workspace;
use sluice_shared::cloud::{CloudError, Tokens};
use sluice_shared::runs::azureml::{AzureMlCompute, job_body, map_status};
use sluice_shared::runs::{Compute, ComputeError, JobSpec, JobStatus};
use sluice_shared::storage::ObjectStore;
use sluice_shared::storage::local::LocalStore;
use sluice_shared::training::TrainingConfig;

fn spec_fixture(name: &str) -> Value {
    sluice_tests::fixture(&format!("azureml-rest/2025-12-01_{name}.json"))
}

fn job_spec(command: Option<Vec<String>>) -> JobSpec {
    let mut config: Value = serde_json::from_slice(
        &std::fs::read(sluice_tests::repo_root().join("configs/adult-income.json")).unwrap(),
    )
    .unwrap();
    if let Some(c) = command {
        config["command"] = json!(c);
    }
    JobSpec {
        run_id: "run-0123456789abcdef0123".into(),
        job_name: "run-0123456789abcdef0123".into(),
        logs_key: sluice_shared::storage::ObjectKey::parse(
            "runs/run-0123456789abcdef0123/logs.txt",
        )
        .unwrap(),
        run_created_at: chrono::Utc::now(),
        dataset: sluice_shared::dataset::DatasetName::parse("adult").unwrap(),
        dataset_version: 3,
        config: TrainingConfig::from_json(config.to_string().as_bytes()).unwrap(),
        output_prefix: "runs/run-0123456789abcdef0123/output/".into(),
        timeout: Duration::from_secs(3600),
        tags: [(
            "sluice.run_id".to_owned(),
            "run-0123456789abcdef0123".to_owned(),
        )]
        .into(),
    }
}

fn enum_values(definitions: &Value, name: &str) -> BTreeSet<String> {
    definitions[name]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn contract_command_job_bodies_follow_the_spec_definitions() {
    let command_job = spec_fixture("mfe_CommandJob_definition");
    let assets = spec_fixture("mfe_AssetJobInput_AssetJobOutput_definitions");
    let enums = spec_fixture("mfe_JobStatus_enum");
    let example = spec_fixture("Job_CommandJob_createOrUpdate");
    // JobBase's fields appear in the spec's own create example; CommandJob adds its own.
    let mut allowed: BTreeSet<String> = example["parameters"]["body"]["properties"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    allowed.extend(
        command_job["CommandJob"]["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned(),
    );
    let input_types = enum_values(&enums, "JobInputType");
    let output_types = enum_values(&enums, "JobOutputType");
    let modes = enum_values(&enums, "InputDeliveryMode");

    for command in [
        None,
        Some(vec![
            "python".into(),
            "train.py".into(),
            "--data".into(),
            "{data}".into(),
            "--out".into(),
            "{output}".into(),
            "--seed".into(),
            "{seed}".into(),
        ]),
    ] {
        let body = job_body(
            &workspace("https://management.azure.com"),
            &job_spec(command.clone()),
        );
        let props = body["properties"].as_object().unwrap();
        for key in props.keys() {
            assert!(allowed.contains(key), "{key} is not a CommandJob property");
        }
        for required in command_job["CommandJob"]["required"].as_array().unwrap() {
            let value = props[required.as_str().unwrap()].as_str().unwrap();
            assert!(
                !value.is_empty() && value.chars().any(|c| c.is_ascii_alphanumeric() || c == '_'),
                "{required}"
            );
        }
        assert!(enum_values(&enums, "JobType").contains(props["jobType"].as_str().unwrap()));
        for (name, input) in props["inputs"].as_object().unwrap() {
            assert!(
                input_types.contains(input["jobInputType"].as_str().unwrap()),
                "{name}"
            );
            assert!(modes.contains(input["mode"].as_str().unwrap()), "{name}");
            assert!(
                !input["uri"].as_str().unwrap().is_empty(),
                "{name}: {}",
                assets["AssetJobInput"]["required"]
            );
            for key in input.as_object().unwrap().keys() {
                assert!(
                    key == "jobInputType"
                        || assets["AssetJobInput"]["properties"].get(key).is_some(),
                    "{name}.{key}"
                );
            }
        }
        for (name, output) in props["outputs"].as_object().unwrap() {
            assert!(
                output_types.contains(output["jobOutputType"].as_str().unwrap()),
                "{name}"
            );
            for key in output.as_object().unwrap().keys() {
                assert!(
                    key == "jobOutputType"
                        || assets["AssetJobOutput"]["properties"].get(key).is_some(),
                    "{name}.{key}"
                );
            }
        }
        // ISO 8601 duration, as the example's "PT5M".
        let timeout = props["limits"]["timeout"].as_str().unwrap();
        assert!(
            timeout.starts_with("PT") && timeout.ends_with('S'),
            "{timeout}"
        );
        assert_eq!(props["limits"]["jobLimitsType"], "Command");
        assert!(
            props["computeId"]
                .as_str()
                .unwrap()
                .ends_with("/workspaces/my-aml-workspace/computes/gpu-cluster")
        );
        assert!(
            props["environmentId"]
                .as_str()
                .unwrap()
                .ends_with("/environments/sluice-trainer/versions/1")
        );
        assert_eq!(props["resources"]["instanceType"], "Standard_NC4as_T4_v3");
        assert_eq!(
            props["inputs"]["data"]["uri"],
            "azureml://datastores/sluice/paths/datasets/adult/v3/"
        );
        assert_eq!(props["tags"]["sluice.run_id"], "run-0123456789abcdef0123");
        let command_line = props["command"].as_str().unwrap();
        match &command {
            None => assert_eq!(
                command_line,
                "sluice train --data ${{inputs.data}} --config ${{inputs.config}} --output ${{outputs.model}}"
            ),
            Some(_) => assert_eq!(
                command_line,
                "python train.py --data ${{inputs.data}} --out ${{outputs.model}} --seed 42"
            ),
        }
    }
}

/// A config that asks for many nodes gets a distributed command job: `instanceCount`
/// and a `distribution` of the spec's types.
#[test]
fn contract_distributed_command_jobs_follow_the_spec_definitions() {
    let defs: Value = serde_json::from_slice(
        &std::fs::read(
            sluice_tests::repo_root()
                .join("tests/fixtures/azureml-rest/2025-12-01_mfe_Distribution_definitions.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let example = spec_fixture("Job_CommandJob_createOrUpdate");
    let resources: BTreeSet<String> = example["parameters"]["body"]["properties"]["resources"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let types = enum_values(&defs, "DistributionType");
    for (kind, expected) in [("pytorch", "PyTorch"), ("mpi", "Mpi")] {
        let mut spec = job_spec(Some(vec!["python".into(), "train.py".into()]));
        spec.config.compute.instance_count = 4;
        spec.config.compute.distribution = Some(
            serde_json::from_value(json!({"type": kind, "process_count_per_instance": 2})).unwrap(),
        );
        let body = job_body(&workspace("https://management.azure.com"), &spec);
        let props = &body["properties"];
        for key in props["resources"].as_object().unwrap().keys() {
            assert!(resources.contains(key), "resources.{key}");
        }
        assert_eq!(props["resources"]["instanceCount"], 4);
        let distribution = &props["distribution"];
        let name = distribution["distributionType"].as_str().unwrap();
        assert!(types.contains(name), "{name}");
        assert_eq!(name, expected);
        for key in distribution.as_object().unwrap().keys() {
            assert!(
                key == "distributionType" || defs[name]["properties"].get(key).is_some(),
                "{name}.{key}"
            );
        }
        assert_eq!(distribution["processCountPerInstance"], 2);
    }
    // One node: no distribution, as before.
    let body = job_body(&workspace("https://management.azure.com"), &job_spec(None));
    assert!(body["properties"].get("distribution").is_none());
    assert_eq!(body["properties"]["resources"]["instanceCount"], 1);
}

#[test]
fn contract_every_job_status_maps_to_a_sluice_state() {
    let enums = spec_fixture("mfe_JobStatus_enum");
    for status in enum_values(&enums, "JobStatus") {
        let mapped = map_status(&status);
        let expected = match status.as_str() {
            "Completed" => JobStatus::Succeeded,
            "Canceled" => JobStatus::Canceled,
            "Failed" => mapped.clone(),
            "NotStarted" | "Starting" | "Provisioning" | "Preparing" | "Queued" => {
                JobStatus::Queued
            }
            _ => JobStatus::Running,
        };
        assert_eq!(mapped, expected, "{status}");
        if status == "Failed" {
            assert!(matches!(mapped, JobStatus::Failed(_)));
        }
    }
}

struct FixedToken;

#[async_trait::async_trait]
impl Tokens for FixedToken {
    async fn token(&self) -> Result<String, CloudError> {
        Ok("test-token".into())
    }
}

/// What the stand-in server saw and should answer.
#[derive(Default)]
struct Arm {
    status: Mutex<String>,
    put_status: Mutex<u16>,
    requests: Mutex<Vec<String>>,
}

async fn put_job(
    State(arm): State<Arc<Arm>>,
    headers: HeaderMap,
    Path((_, _, _, job)): Path<(String, String, String, String)>,
    Query(q): Query<std::collections::HashMap<String, String>>,
    axum::Json(body): axum::Json<Value>,
) -> axum::response::Response {
    assert_eq!(q["api-version"], "2025-12-01");
    assert_eq!(headers["authorization"], "Bearer test-token");
    assert_eq!(body["properties"]["jobType"], "Command");
    arm.requests.lock().unwrap().push(format!("PUT {job}"));
    match *arm.put_status.lock().unwrap() {
        429 => (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "7")],
            axum::Json(json!({"error": {"code": "TooManyRequests", "message": "slow down"}})),
        )
            .into_response(),
        400 => (
            StatusCode::BAD_REQUEST,
            axum::Json(
                json!({"error": {"code": "UserError", "message": "compute gpu-cluster not found"}}),
            ),
        )
            .into_response(),
        _ => axum::Json(
            spec_fixture("Job_CommandJob_createOrUpdate")["responses"]["200"]["body"].clone(),
        )
        .into_response(),
    }
}

async fn get_job(
    State(arm): State<Arc<Arm>>,
    Path((_, _, _, job)): Path<(String, String, String, String)>,
) -> axum::response::Response {
    arm.requests.lock().unwrap().push(format!("GET {job}"));
    if job == "missing" {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"error": {"code": "NotFound", "message": "no such job"}})),
        )
            .into_response();
    }
    let mut body = spec_fixture("Job_CommandJob_get")["responses"]["200"]["body"].clone();
    body["properties"]["status"] = json!(*arm.status.lock().unwrap());
    axum::Json(body).into_response()
}

async fn cancel_job(
    State(arm): State<Arc<Arm>>,
    Path((_, _, _, job)): Path<(String, String, String, String)>,
) -> axum::response::Response {
    arm.requests.lock().unwrap().push(format!("CANCEL {job}"));
    let location = spec_fixture("Job_cancel")["responses"]["202"]["headers"]["location"]
        .as_str()
        .unwrap()
        .to_owned();
    (StatusCode::ACCEPTED, [("location", location)]).into_response()
}

#[tokio::test]
async fn contract_jobs_are_submitted_followed_and_cancelled_as_the_spec_says() {
    let arm = Arc::new(Arm::default());
    *arm.put_status.lock().unwrap() = 200;
    let prefix = "/subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.MachineLearningServices/workspaces/{ws}/jobs/{job}";
    let app = axum::Router::new()
        .route(prefix, get(get_job).put(put_job))
        .route(&format!("{prefix}/cancel"), post(cancel_job))
        .with_state(arm.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn ObjectStore> = Arc::new(LocalStore::new(dir.path()).unwrap());
    let compute = AzureMlCompute::new(
        store,
        AzureMl::new(workspace(&endpoint), Arc::new(FixedToken)),
    );
    let spec = job_spec(None);
    assert_eq!(compute.submit(&spec).await.unwrap(), spec.run_id);
    assert!(
        dir.path()
            .join("runs/run-0123456789abcdef0123/config.json")
            .exists(),
        "the job's config input is in the store"
    );
    for (status, expected) in [
        ("Queued", JobStatus::Queued),
        ("Running", JobStatus::Running),
        ("Completed", JobStatus::Succeeded),
        ("Canceled", JobStatus::Canceled),
    ] {
        *arm.status.lock().unwrap() = status.into();
        assert_eq!(
            compute.status(&spec.run_id).await.unwrap(),
            expected,
            "{status}"
        );
    }
    compute.cancel(&spec.run_id).await.unwrap();
    assert!(matches!(
        compute.status("missing").await,
        Err(ComputeError::UnknownJob(_))
    ));

    *arm.put_status.lock().unwrap() = 429;
    match compute.submit(&spec).await {
        Err(
            e @ ComputeError::Unavailable {
                retry_after: Some(d),
                ..
            },
        ) => {
            assert_eq!(d, Duration::from_secs(7));
            assert!(e.is_transient());
        }
        other => panic!("{other:?}"),
    }
    *arm.put_status.lock().unwrap() = 400;
    match compute.submit(&spec).await {
        Err(e @ ComputeError::Rejected(_)) => {
            assert!(
                e.to_string().contains("compute gpu-cluster not found"),
                "{e}"
            );
            assert!(!e.is_transient());
        }
        other => panic!("{other:?}"),
    }
    let seen = arm.requests.lock().unwrap().clone();
    assert_eq!(
        seen.first().map(String::as_str),
        Some("PUT run-0123456789abcdef0123")
    );
    assert!(seen.contains(&"CANCEL run-0123456789abcdef0123".to_owned()));
}
