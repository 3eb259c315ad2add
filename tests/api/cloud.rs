//! Contract tests for Sluice's cloud backends — scanning large uploads on Azure ML
//! serverless Spark or Azure Databricks, training on Databricks. Neither service can run
//! here, so request bodies are checked against the published wire contracts (`tests/fixtures/azureml-rest/`, the 2025-12-01 spec's Spark job and code
//! version; `tests/fixtures/databricks/`, the Jobs API 2.2 as the Databricks SDK states
//! it), and a stand-in service does what the real one would with what it was sent: it
//! runs the staged script with the job's arguments on real local Spark, reading and
//! writing Sluice's (local) container where the job's URIs point. So the whole path —
//! stage, submit, follow, finish — runs for real but for the cluster's location.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path as FsPath, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post, put};
use serde_json::{Value, json};
use sluice_shared::cloud::azureml::AzureMl;
use sluice_shared::cloud::databricks::Cluster;
use sluice_shared::cloud::databricks::{Databricks, RunPhase, run_phase};
use sluice_shared::cloud::{CloudError, Tokens};
use sluice_shared::dataset::contract::Contract;
use sluice_shared::dataset::delegation::azureml::{
    self as aml_engine, AzureMlSparkEngine, SparkPool,
};
use sluice_shared::dataset::delegation::databricks::{DatabricksEngine, submit_body};
use sluice_shared::dataset::delegation::{
    Delegation, DelegationState, JobState, ScanEngine, stage,
};
use sluice_shared::dataset::spark::LocalSpark;
use sluice_shared::dataset::{Contracts, DatasetName, IngestOutcome, Ingestor, Upload, scan};
use sluice_shared::registry::{ModelName, PRODUCTION, Registry};
use sluice_shared::runs::JobSpec;
use sluice_shared::runs::databricks::{DatabricksCompute, TaskPaths, submit_body as training_body};
use sluice_shared::storage::local::LocalStore;
use sluice_shared::storage::{ObjectKey, ObjectStore, PutMode};
use sluice_shared::training::TrainingConfig;

use crate::helpers::{TestApp, spawn_configured, spawn_loop_app_on, with_eval_data, workspace};

const DATASTORE: &str = "azureml://datastores/sluice/paths/";
const ABFSS_ROOT: &str = "abfss://sluice@sluicedata.dfs.core.windows.net/";

struct FixedToken;

#[async_trait::async_trait]
impl Tokens for FixedToken {
    async fn token(&self) -> Result<String, CloudError> {
        Ok("test-token".into())
    }
}

fn fixture(name: &str) -> Value {
    let path = sluice_tests::repo_root().join("tests/fixtures").join(name);
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

fn names(value: &Value) -> BTreeSet<String> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

fn keys(value: &Value) -> BTreeSet<String> {
    value.as_object().unwrap().keys().cloned().collect()
}

fn adult_contract() -> Contract {
    let path = sluice_tests::repo_root().join("contracts/adult.json");
    Contract::from_json(&std::fs::read(path).unwrap()).unwrap()
}

fn delegation(id: &str) -> Delegation {
    Delegation {
        id: id.into(),
        dataset: DatasetName::parse("adult").unwrap(),
        upload: ObjectKey::parse("landing/adult/adult.data").unwrap(),
        etag: "\"0x1\"".into(),
        uploader: None,
        contract: adult_contract(),
        contract_inferred: false,
        bytes: 3_974_305,
        engine: "test".into(),
        job: None,
        state: DelegationState::Claimed,
        created_at: chrono::Utc::now(),
        finished_at: None,
        canceled: None,
    }
}

/// A job's outcome once it is over: success, or the end of its log.
type Outcome = Arc<Mutex<Option<Result<(), String>>>>;

/// What the stand-in service was sent, and the jobs it runs.
struct Service {
    /// The local container the job's URIs point into.
    root: PathBuf,
    spark: LocalSpark,
    /// Code versions (ARM id → the folder's URI).
    codes: Mutex<HashMap<String, String>>,
    /// Jobs by name (Azure ML) or run id (Databricks): their outcome once over.
    jobs: Mutex<HashMap<String, Outcome>>,
    /// Databricks runs by idempotency token.
    tokens: Mutex<HashMap<String, i64>>,
    next_run: AtomicI64,
    requests: Mutex<Vec<String>>,
    /// Answers to give the next requests instead of serving them (throttling, outages).
    faults: Mutex<std::collections::VecDeque<Fault>>,
    /// The next job fails at once with this message instead of running.
    fail_next: Mutex<Option<String>>,
}

#[derive(Clone, Copy)]
enum Fault {
    /// 429 with `Retry-After: <seconds>`.
    Throttled(u64),
    /// 503.
    Unavailable,
}

/// Which error body shape a fault answers with.
#[derive(Clone, Copy)]
enum Api {
    Arm,
    Jobs,
}

impl Service {
    /// Answers the next request with `fault` instead of serving it.
    fn answer_next(&self, fault: Fault) {
        self.faults.lock().unwrap().push_back(fault);
    }

    /// Fails the next job at once, its output ending in `message`.
    fn fail_next_job(&self, message: &str) {
        *self.fail_next.lock().unwrap() = Some(message.to_owned());
    }

    /// The next injected fault as this API answers it, if one is queued.
    fn fault(&self, api: Api) -> Option<axum::response::Response> {
        let fault = self.faults.lock().unwrap().pop_front()?;
        let (status, code, message) = match fault {
            Fault::Throttled(_) => (
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                "slow down",
            ),
            Fault::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "try later",
            ),
        };
        self.log(format!("fault {}", status.as_u16()));
        let body = match api {
            Api::Arm => json!({"error": {"code": code, "message": message}}),
            Api::Jobs => json!({"error_code": "TEMPORARILY_UNAVAILABLE", "message": message}),
        };
        let mut response = (status, axum::Json(body)).into_response();
        if let Fault::Throttled(seconds) = fault {
            response
                .headers_mut()
                .insert("retry-after", seconds.to_string().parse().unwrap());
        }
        Some(response)
    }

    fn new(root: &FsPath) -> Arc<Self> {
        Arc::new(Self {
            root: root.to_path_buf(),
            spark: LocalSpark {
                spark_submit: sluice_tests::spark_submit(),
                threads: 2,
                conf: vec![("spark.ui.enabled".into(), "false".into())],
            },
            codes: Mutex::default(),
            jobs: Mutex::default(),
            tokens: Mutex::default(),
            next_run: AtomicI64::new(7_001),
            requests: Mutex::default(),
            faults: Mutex::default(),
            fail_next: Mutex::default(),
        })
    }

    /// The local path a job's URI names (the datastore's or the `abfss://` root's).
    fn local(&self, uri: &str) -> PathBuf {
        let key = uri
            .strip_prefix(DATASTORE)
            .or_else(|| uri.strip_prefix(ABFSS_ROOT))
            .unwrap_or_else(|| panic!("{uri} is not in Sluice's container"));
        self.root.join(key)
    }

    /// Runs `script` with `args` on local Spark in the background, as the cluster would.
    fn start(&self, job: &str, script: PathBuf, args: Vec<String>) {
        let outcome = Arc::new(Mutex::new(None));
        self.jobs
            .lock()
            .unwrap()
            .insert(job.to_owned(), outcome.clone());
        if let Some(message) = self.fail_next.lock().unwrap().take() {
            *outcome.lock().unwrap() = Some(Err(message));
            return;
        }
        let spark = self.spark.clone();
        std::thread::spawn(move || {
            let work = tempfile::tempdir().unwrap();
            let args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
            let run = spark.script_command(work.path(), &script, &args).output();
            *outcome.lock().unwrap() = Some(match run {
                Ok(out) if out.status.success() => Ok(()),
                Ok(out) => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
                Err(e) => Err(e.to_string()),
            });
        });
    }

    fn outcome(&self, job: &str) -> Option<Option<Result<(), String>>> {
        let jobs = self.jobs.lock().unwrap();
        jobs.get(job).map(|o| o.lock().unwrap().clone())
    }

    fn log(&self, line: String) {
        self.requests.lock().unwrap().push(line);
    }

    async fn wait(&self, job: &str) {
        let started = Instant::now();
        while !matches!(self.outcome(job), Some(Some(_))) {
            assert!(
                started.elapsed() < Duration::from_secs(240),
                "{job} ran too long"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

type ArmPath = Path<(String, String, String, String, String)>;

async fn put_code(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    Path((sub, rg, ws, name, version)): ArmPath,
    Query(q): Query<HashMap<String, String>>,
    axum::Json(body): axum::Json<Value>,
) -> axum::response::Response {
    assert_eq!(q["api-version"], "2025-12-01");
    assert_eq!(headers["authorization"], "Bearer test-token");
    if let Some(fault) = service.fault(Api::Arm) {
        return fault;
    }
    // The body has the example's shape.
    let example = fixture("azureml-rest/2025-12-01_CodeVersion_createOrUpdate.json");
    let allowed = keys(&example["parameters"]["body"]["properties"]);
    for key in keys(&body["properties"]) {
        assert!(
            allowed.contains(&key),
            "{key} is not a CodeVersion property"
        );
    }
    let id = format!(
        "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.MachineLearningServices/workspaces/{ws}/codes/{name}/versions/{version}"
    );
    service.log(format!("PUT code {name}/{version}"));
    let uri = body["properties"]["codeUri"].as_str().unwrap().to_owned();
    let known = service.codes.lock().unwrap().insert(id, uri).is_some();
    let status = if known {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    (status, axum::Json(body)).into_response()
}

async fn put_job(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    Path((_, _, _, job)): Path<(String, String, String, String)>,
    axum::Json(body): axum::Json<Value>,
) -> axum::response::Response {
    assert_eq!(headers["authorization"], "Bearer test-token");
    if let Some(fault) = service.fault(Api::Arm) {
        return fault;
    }
    service.log(format!("PUT job {job}"));
    if service.outcome(&job).is_some() {
        return (
            StatusCode::CONFLICT,
            axum::Json(json!({"error": {"code": "Conflict", "message": "job exists"}})),
        )
            .into_response();
    }
    let props = &body["properties"];
    assert_eq!(props["jobType"], "Spark");
    // The code version must have been registered first; its folder holds the entry.
    let code = service.codes.lock().unwrap()[props["codeId"].as_str().unwrap()].clone();
    let folder = url::Url::parse(&code).unwrap().to_file_path().unwrap();
    let script = folder.join(props["entry"]["file"].as_str().unwrap());
    assert!(
        script.exists(),
        "{} is not in the code folder",
        script.display()
    );
    // `${{inputs.x}}` and `${{outputs.x}}` become the (Direct) URIs they name.
    let mut args = props["args"].as_str().unwrap().to_owned();
    for (kind, side) in [("inputs", "inputs"), ("outputs", "outputs")] {
        for (name, binding) in props[side].as_object().unwrap() {
            let uri = binding["uri"].as_str().unwrap();
            let path = service.local(uri).display().to_string();
            args = args.replace(&format!("${{{{{kind}.{name}}}}}"), &path);
        }
    }
    assert!(!args.contains("${{"), "{args}");
    let args = args.split_whitespace().map(str::to_owned).collect();
    service.start(&job, script, args);
    (StatusCode::CREATED, axum::Json(body)).into_response()
}

async fn get_job(
    State(service): State<Arc<Service>>,
    Path((_, _, _, job)): Path<(String, String, String, String)>,
) -> axum::response::Response {
    if let Some(fault) = service.fault(Api::Arm) {
        return fault;
    }
    let status = match service.outcome(&job) {
        None => {
            return (
                StatusCode::NOT_FOUND,
                axum::Json(json!({"error": {"code": "NotFound", "message": "no such job"}})),
            )
                .into_response();
        }
        Some(None) => "Running",
        Some(Some(Ok(()))) => "Completed",
        Some(Some(Err(_))) => "Failed",
    };
    let studio = format!(
        "https://ml.azure.com/runs/{job}?wsid=/subscriptions/s/resourcegroups/rg/workspaces/ws"
    );
    axum::Json(json!({"name": job, "properties": {
        "jobType": "Spark",
        "status": status,
        "services": {"Studio": {"jobServiceType": "Studio", "endpoint": studio}},
    }}))
    .into_response()
}

async fn submit_run(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> axum::response::Response {
    assert_eq!(headers["authorization"], "Bearer test-token");
    if let Some(fault) = service.fault(Api::Jobs) {
        return fault;
    }
    let token = body["idempotency_token"].as_str().unwrap().to_owned();
    service.log(format!("submit {token}"));
    if let Some(run) = service.tokens.lock().unwrap().get(&token) {
        return axum::Json(json!({"run_id": run})).into_response();
    }
    let run = service.next_run.fetch_add(1, Ordering::SeqCst);
    service.tokens.lock().unwrap().insert(token, run);
    let task = &body["tasks"][0]["spark_python_task"];
    let script = service.local(task["python_file"].as_str().unwrap());
    let args = task["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let a = a.as_str().unwrap();
            if a.starts_with("abfss://") {
                service.local(a).display().to_string()
            } else {
                a.to_owned()
            }
        })
        .collect();
    service.start(&run.to_string(), script, args);
    axum::Json(json!({"run_id": run})).into_response()
}

async fn get_run(
    State(service): State<Arc<Service>>,
    Query(q): Query<HashMap<String, String>>,
) -> axum::response::Response {
    if let Some(fault) = service.fault(Api::Jobs) {
        return fault;
    }
    let run = &q["run_id"];
    let cancelled = service
        .requests
        .lock()
        .unwrap()
        .contains(&format!("cancel {run}"));
    let outcome = service.outcome(run);
    let (state, code, kind) = match &outcome {
        None => {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({"error_code": "INVALID_PARAMETER_VALUE", "message": format!("Run {run} does not exist.")})),
            )
                .into_response();
        }
        _ if cancelled => ("TERMINATED", "USER_CANCELED", "SUCCESS"),
        Some(None) => ("RUNNING", "", ""),
        Some(Some(Ok(()))) => ("TERMINATED", "SUCCESS", "SUCCESS"),
        Some(Some(Err(_))) => ("TERMINATED", "RUN_EXECUTION_ERROR", "CLIENT_ERROR"),
    };
    let mut status = json!({"state": state});
    if state == "TERMINATED" {
        // A failed run's message is the end of what it said.
        let message = match &outcome {
            Some(Some(Err(e))) => e.lines().last().unwrap_or_default().to_owned(),
            _ => String::new(),
        };
        status["termination_details"] = json!({"code": code, "type": kind, "message": message});
    }
    axum::Json(json!({
        "run_id": run.parse::<i64>().unwrap(),
        "run_page_url": format!("https://adb-1.1.azuredatabricks.net/#job/runs/{run}"),
        "cluster_instance": {"cluster_id": format!("0923-job-{run}")},
        "status": status,
    }))
    .into_response()
}

async fn cancel_run(
    State(service): State<Arc<Service>>,
    axum::Json(body): axum::Json<Value>,
) -> axum::response::Response {
    service.log(format!("cancel {}", body["run_id"]));
    axum::Json(json!({})).into_response()
}

/// The stand-in service on a local port: Azure ML's job and code routes and
/// Databricks' Jobs API.
async fn serve(service: Arc<Service>) -> String {
    let ws = "/subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.MachineLearningServices/workspaces/{ws}";
    let app = axum::Router::new()
        .route(
            &format!("{ws}/codes/{{name}}/versions/{{version}}"),
            put(put_code),
        )
        .route(&format!("{ws}/jobs/{{job}}"), get(get_job).put(put_job))
        .route("/api/2.2/jobs/runs/submit", post(submit_run))
        .route("/api/2.2/jobs/runs/get", get(get_run))
        .route("/api/2.2/jobs/runs/cancel", post(cancel_run))
        .with_state(service);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    endpoint
}

fn azureml_engine(endpoint: &str, store: Arc<dyn ObjectStore>) -> AzureMlSparkEngine {
    AzureMlSparkEngine {
        azureml: AzureMl::new(workspace(endpoint), Arc::new(FixedToken)),
        store,
        pool: SparkPool::default(),
    }
}

fn databricks_engine(
    endpoint: &str,
    store: Arc<dyn ObjectStore>,
    cluster: Cluster,
) -> DatabricksEngine {
    DatabricksEngine {
        databricks: Databricks::new(endpoint.into(), Arc::new(FixedToken)),
        store,
        storage_root: ABFSS_ROOT.into(),
        cluster,
        timeout: Duration::from_secs(3600),
    }
}

fn new_cluster() -> Cluster {
    Cluster::New {
        spark_version: "16.4.x-scala2.12".into(),
        node_type_id: "Standard_D4ds_v5".into(),
        min_workers: 1,
        max_workers: 8,
    }
}

#[tokio::test]
async fn contract_spark_job_bodies_follow_the_spec_definitions() {
    let defs = fixture("azureml-rest/2025-12-01_mfe_SparkJob_definitions.json");
    let enums = sluice_tests::fixture("azureml-rest/2025-12-01_mfe_JobStatus_enum.json");
    let assets = sluice_tests::fixture(
        "azureml-rest/2025-12-01_mfe_AssetJobInput_AssetJobOutput_definitions.json",
    );
    let base = sluice_tests::fixture("azureml-rest/2025-12-01_Job_CommandJob_createOrUpdate.json");
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn ObjectStore> = Arc::new(LocalStore::new(dir.path()).unwrap());
    let engine = azureml_engine("https://management.azure.com", store.clone());
    let d = delegation("0123456789abcdef0123456789abcdef");
    let staged = stage(store.as_ref(), &d).await.unwrap();
    let code_id = engine
        .azureml
        .workspace
        .code_id(aml_engine::CODE_NAME, &staged.script.hash);
    let body = aml_engine::job_body(&engine, &d, &staged, &code_id);
    let props = &body["properties"];

    // JobBase's properties (as the spec's own create example shows them) and SparkJob's.
    let mut allowed = keys(&base["parameters"]["body"]["properties"]);
    allowed.extend(names(&defs["SparkJob"]["properties"]));
    for key in keys(props) {
        assert!(allowed.contains(&key), "{key} is not a SparkJob property");
    }
    for required in names(&defs["SparkJob"]["required"]) {
        assert!(props.get(&required).is_some(), "{required} is required");
    }
    assert!(names(&enums["JobType"]["enum"]).contains(props["jobType"].as_str().unwrap()));
    assert!(
        names(&defs["SparkJobEntryType"]["enum"])
            .contains(props["entry"]["sparkJobEntryType"].as_str().unwrap())
    );
    assert_eq!(
        keys(&props["entry"]),
        ["file", "sparkJobEntryType"].map(String::from).into()
    );
    assert_eq!(props["entry"]["file"], "ingest.py");
    assert!(
        names(&defs["IdentityConfigurationType"]["enum"])
            .contains(props["identity"]["identityType"].as_str().unwrap())
    );
    assert_eq!(
        props["identity"]["identityType"], "Managed",
        "no key travels with the job"
    );
    for key in keys(&props["resources"]) {
        assert!(
            names(&defs["SparkResourceConfiguration"]["properties"]).contains(&key),
            "{key}"
        );
    }
    assert_eq!(props["resources"]["instanceType"], "standard_e4s_v3");
    assert_eq!(props["resources"]["runtimeVersion"], "3.4");
    for (key, value) in props["conf"].as_object().unwrap() {
        assert!(key.starts_with("spark."), "{key}");
        assert!(value.is_string(), "conf values are strings: {key}");
    }
    assert_eq!(props["conf"]["spark.dynamicAllocation.maxExecutors"], "4");
    // Inputs and outputs are asset bindings in Direct mode (Spark reads them itself).
    for (side, kind, types) in [
        (
            "inputs",
            "jobInputType",
            names(&enums["JobInputType"]["enum"]),
        ),
        (
            "outputs",
            "jobOutputType",
            names(&enums["JobOutputType"]["enum"]),
        ),
    ] {
        let definition = if side == "inputs" {
            "AssetJobInput"
        } else {
            "AssetJobOutput"
        };
        for (name, binding) in props[side].as_object().unwrap() {
            assert!(types.contains(binding[kind].as_str().unwrap()), "{name}");
            assert!(
                names(&enums["InputDeliveryMode"]["enum"])
                    .contains(binding["mode"].as_str().unwrap())
            );
            for key in keys(binding) {
                assert!(
                    key == kind || assets[definition]["properties"].get(&key).is_some(),
                    "{name}.{key}"
                );
            }
            assert!(
                props["args"]
                    .as_str()
                    .unwrap()
                    .contains(&format!("${{{{{side}.{name}}}}}")),
                "{name} is passed to the script"
            );
        }
    }
    assert_eq!(
        props["inputs"]["upload"]["uri"],
        "azureml://datastores/sluice/paths/landing/adult/adult.data"
    );
    assert_eq!(
        props["outputs"]["result"]["uri"],
        format!(
            "azureml://datastores/sluice/paths/scans/adult/{}/out/",
            d.id
        )
    );
    assert_eq!(props["tags"]["sluice.delegation"], d.id.as_str());
    assert!(code_id.ends_with(&format!(
        "/workspaces/my-aml-workspace/codes/sluice-spark-scan/versions/{}",
        staged.script.hash
    )));
}

#[test]
fn contract_every_job_status_maps_to_a_scan_state() {
    let enums = sluice_tests::fixture("azureml-rest/2025-12-01_mfe_JobStatus_enum.json");
    for status in names(&enums["JobStatus"]["enum"]) {
        let state = aml_engine::map_status(&status);
        match status.as_str() {
            "Completed" => assert!(state.is_none()),
            "Failed" | "Canceled" => {
                assert!(matches!(state, Some(JobState::Failed(_))), "{status}")
            }
            _ => assert!(matches!(state, Some(JobState::Running)), "{status}"),
        }
    }
}

#[tokio::test]
async fn contract_databricks_submissions_follow_the_jobs_api() {
    let api = fixture("databricks/jobs-2.2.json");
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn ObjectStore> = Arc::new(LocalStore::new(dir.path()).unwrap());
    let d = delegation("0123456789abcdef0123456789abcdef");
    let staged = stage(store.as_ref(), &d).await.unwrap();
    for cluster in [
        new_cluster(),
        Cluster::Existing("0923-164208-meows279".into()),
    ] {
        let engine = databricks_engine(
            "https://adb-1.1.azuredatabricks.net",
            store.clone(),
            cluster.clone(),
        );
        let body = submit_body(&engine, &d, &staged);
        for key in keys(&body) {
            assert!(
                names(&api["SubmitRun"]).contains(&key),
                "{key} is not a runs/submit field"
            );
        }
        let token = body["idempotency_token"].as_str().unwrap();
        assert_eq!(token, d.id, "the delegation is the token");
        assert!(token.len() <= api["idempotency_token_max_length"].as_u64().unwrap() as usize);
        assert!(keys(&body["tags"]).len() <= api["tags_max"].as_u64().unwrap() as usize);
        let tasks = body["tasks"].as_array().unwrap();
        assert_eq!(tasks.len(), 1);
        let task = &tasks[0];
        for key in keys(task) {
            assert!(
                names(&api["SubmitTask"]).contains(&key),
                "{key} is not a task field"
            );
        }
        let python = &task["spark_python_task"];
        for key in keys(python) {
            assert!(
                names(&api["SparkPythonTask"]["properties"]).contains(&key),
                "{key}"
            );
        }
        assert_eq!(
            python["python_file"],
            format!("{ABFSS_ROOT}code/{}/ingest.py", staged.script.hash)
        );
        let parameters: Vec<&str> = python["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap())
            .collect();
        assert_eq!(
            parameters,
            [
                "--input",
                &format!("{ABFSS_ROOT}landing/adult/adult.data"),
                "--contract",
                &format!("{ABFSS_ROOT}scans/adult/{}/contract.json", d.id),
                "--output",
                &format!("{ABFSS_ROOT}scans/adult/{}/out/", d.id),
            ]
        );
        match cluster {
            Cluster::Existing(id) => {
                assert_eq!(task["existing_cluster_id"], id.as_str());
                assert!(task.get("new_cluster").is_none());
            }
            Cluster::SingleNode { .. } => unreachable!("scans scale out"),
            Cluster::New { .. } => {
                assert!(task.get("existing_cluster_id").is_none());
                let spec = &task["new_cluster"];
                for key in keys(spec) {
                    assert!(
                        names(&api["ClusterSpec"]).contains(&key),
                        "{key} is not a cluster field"
                    );
                }
                assert_eq!(keys(&spec["autoscale"]), names(&api["AutoScale"]));
                assert_eq!(spec["autoscale"]["max_workers"], 8);
            }
        }
    }
}

#[test]
fn contract_every_databricks_run_state_maps_to_a_phase() {
    let api = fixture("databricks/jobs-2.2.json");
    // Jobs 2.2's `status`: only a TERMINATED run whose termination code is SUCCESS
    // succeeded; any other code is a failure that says why.
    for state in names(&api["RunLifecycleStateV2State"]) {
        for code in names(&api["TerminationCodeCode"]) {
            let run = json!({"status": {"state": state, "termination_details": {"code": code, "type": "CLIENT_ERROR", "message": "m"}}});
            let phase = run_phase(&run);
            match (state.as_str(), code.as_str()) {
                ("TERMINATED", "SUCCESS") => assert_eq!(phase, RunPhase::Succeeded),
                ("TERMINATED", _) => match phase {
                    RunPhase::Failed(why) => assert!(why.contains(&code), "{why}"),
                    other => panic!("{state}/{code}: {other:?}"),
                },
                ("RUNNING" | "TERMINATING", _) => assert_eq!(phase, RunPhase::Running),
                _ => assert_eq!(phase, RunPhase::Waiting, "{state}"),
            }
        }
    }
    // Older answers carry only `state`.
    for life in names(&api["RunLifeCycleState"]) {
        for result in names(&api["RunResultState"]) {
            let run = json!({"state": {"life_cycle_state": life, "result_state": result, "state_message": "m"}});
            let phase = run_phase(&run);
            match (life.as_str(), result.as_str()) {
                ("TERMINATED", "SUCCESS") => assert_eq!(phase, RunPhase::Succeeded),
                ("TERMINATED" | "SKIPPED" | "INTERNAL_ERROR", _) => {
                    assert!(matches!(phase, RunPhase::Failed(_)), "{life}/{result}")
                }
                ("RUNNING" | "TERMINATING", _) => assert_eq!(phase, RunPhase::Running),
                _ => assert_eq!(phase, RunPhase::Waiting, "{life}"),
            }
        }
    }
}

/// A store with Adult's contract and `adult.data` uploaded.
async fn adult_store(root: &FsPath) -> (Arc<dyn ObjectStore>, ObjectKey, Vec<u8>) {
    let store: Arc<dyn ObjectStore> = Arc::new(LocalStore::new(root).unwrap());
    Contracts::new(store.clone())
        .put(adult_contract(), "test")
        .await
        .unwrap();
    let bytes = std::fs::read(sluice_tests::adult("adult.data")).unwrap();
    let key = ObjectKey::parse("landing/adult/adult.data").unwrap();
    store
        .put(&key, bytes.clone().into(), PutMode::Overwrite)
        .await
        .unwrap();
    (store, key, bytes)
}

/// Sluice's own scan of `bytes`: the identity a delegated scan must give.
fn own_scan(bytes: &[u8]) -> scan::ScanOutput {
    let dir = tempfile::tempdir().unwrap();
    scan::scan(bytes, &adult_contract(), &dir.path().join("x.parquet")).unwrap()
}

/// The stand-in serving over a store with Adult's `adult.data` uploaded, and an
/// ingestor that delegates every upload to the engine `engine` makes for the stand-in.
struct Delegating<E> {
    store: Arc<dyn ObjectStore>,
    service: Arc<Service>,
    engine: Arc<E>,
    ingestor: Ingestor,
    upload: Upload,
    bytes: Vec<u8>,
    _dirs: [tempfile::TempDir; 2],
}

async fn delegating<E: ScanEngine + 'static>(
    engine: impl FnOnce(&str, Arc<dyn ObjectStore>) -> E,
) -> Delegating<E> {
    let root = tempfile::tempdir().unwrap();
    let (store, key, bytes) = adult_store(root.path()).await;
    let service = Service::new(root.path());
    let endpoint = serve(service.clone()).await;
    let engine = Arc::new(engine(&endpoint, store.clone()));
    let scratch = tempfile::tempdir().unwrap();
    let ingestor = Ingestor::new(store.clone(), scratch.path().to_path_buf())
        .with_delegation(0, engine.clone());
    let upload = Upload {
        key,
        etag: None,
        uploader: None,
    };
    Delegating {
        store,
        service,
        engine,
        ingestor,
        upload,
        bytes,
        _dirs: [root, scratch],
    }
}

/// Databricks end to end: the upload is delegated, a second submission of the same
/// delegation is the same run (its idempotency token), the run's result in the store
/// becomes version 1 with Sluice's identity and its parts copied into the version's
/// folder; a cancelled run ends its delegation as failed, with Databricks' reason.
#[tokio::test]
async fn contract_databricks_scans_a_delegated_upload_into_a_version() {
    let Delegating {
        store,
        service,
        engine,
        ingestor,
        mut upload,
        bytes,
        _dirs,
    } = delegating(|endpoint, store| databricks_engine(endpoint, store, new_cluster())).await;
    upload.uploader = Some("someone".into());
    let IngestOutcome::Delegated {
        delegation,
        duplicate: false,
    } = ingestor.ingest(upload.clone(), None).await.unwrap()
    else {
        panic!("not delegated")
    };
    let run = delegation.job.clone().expect("submitted");
    assert_eq!(
        engine.submit(&delegation).await.unwrap(),
        run,
        "the same token, the same run"
    );
    assert_eq!(service.jobs.lock().unwrap().len(), 1, "one run started");

    service.wait(&run).await;
    assert_eq!(service.outcome(&run), Some(Some(Ok(()))));
    let followed = ingestor.follow_delegations().await.unwrap();
    assert_eq!(followed.len(), 1);
    assert_eq!(followed[0].state, DelegationState::Versioned { version: 1 });
    assert!(
        ingestor.follow_delegations().await.unwrap().is_empty(),
        "nothing left to follow"
    );

    let manifest: sluice_shared::dataset::Manifest = sluice_shared::storage::get_json(
        store.as_ref(),
        &ObjectKey::parse("datasets/adult/v1/manifest.json").unwrap(),
    )
    .await
    .unwrap()
    .0;
    let ours = own_scan(&bytes);
    assert_eq!(
        (&manifest.content_sha256, manifest.rows),
        (&ours.sha256, ours.rows)
    );
    let versioned: Vec<_> = sluice_shared::audit::AuditLog::new(store.clone())
        .records()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.entry.action == sluice_shared::audit::Action::DatasetVersioned)
        .map(|r| r.entry.subject)
        .collect();
    assert_eq!(
        versioned,
        ["dataset:adult@1"],
        "recorded (and so told) once"
    );
    assert!(!manifest.data_parts.is_empty());
    for part in &manifest.data_parts {
        assert!(
            part.key
                .as_str()
                .starts_with("datasets/adult/v1/data.parquet/part-"),
            "{}",
            part.key
        );
        assert_eq!(store.head(&part.key).await.unwrap().size, part.bytes);
    }
    // The profile is the one Sluice's scan gives (means and deviations to 1e-9, as
    // spark.rs tests in detail; the rest exactly).
    assert_eq!(manifest.profile.len(), ours.profile.len());
    for (theirs, ours) in manifest.profile.iter().zip(&ours.profile) {
        let (mut theirs, mut ours) = (theirs.clone(), ours.clone());
        if let (Some(a), Some(b)) = (&mut theirs.numeric, &mut ours.numeric) {
            assert!(
                (a.mean - b.mean).abs() <= 1e-9 * b.mean.abs().max(1.0),
                "{}",
                ours.name
            );
            (a.mean, a.std) = (b.mean, b.std);
        }
        assert_eq!(theirs, ours);
    }

    // A scan someone cancels fails its delegation with who, why and Databricks' reason.
    let other = delegation_for_cancel(&ingestor, &store).await;
    let asked = ingestor
        .cancel_delegation(&other.dataset, &other.id, "ops", "wrong file")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(asked.canceled.as_ref().unwrap().by, "ops");
    assert_eq!(
        asked.state,
        DelegationState::Submitted,
        "over when the run says so"
    );
    let followed = ingestor.follow_delegations().await.unwrap();
    match &followed[0].state {
        DelegationState::Failed { reason } => {
            assert!(
                reason.starts_with("canceled by ops: wrong file"),
                "{reason}"
            );
            assert!(reason.contains("USER_CANCELED"), "{reason}");
            assert!(
                reason.contains("azuredatabricks.net/#job/runs/"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(
        service
            .requests
            .lock()
            .unwrap()
            .iter()
            .any(|r| r.starts_with("cancel "))
    );
}

/// A second upload, delegated (its run starts, then is cancelled by the caller).
async fn delegation_for_cancel(ingestor: &Ingestor, store: &Arc<dyn ObjectStore>) -> Delegation {
    let key = ObjectKey::parse("landing/adult/more.data").unwrap();
    store.put(&key, b"39, State-gov, 77516, Bachelors, 13, Never-married, Adm-clerical, Not-in-family, White, Male, 2174, 0, 40, United-States, <=50K\n".to_vec().into(), PutMode::Overwrite).await.unwrap();
    let upload = Upload {
        key,
        etag: None,
        uploader: None,
    };
    match ingestor.ingest(upload, None).await.unwrap() {
        IngestOutcome::Delegated { delegation, .. } => *delegation,
        other => panic!("{other:?}"),
    }
}

/// Azure ML end to end through the Functions host: DatasetIngest delegates the upload
/// (twice delivered, one job), the Spark job runs the script registered as a code
/// version, and its `RunCompleted` event (tagged with the delegation) finishes the
/// upload at once: `dataset.versioned` published once, on that event, not again on a
/// redelivery nor on the timer's next tick.
#[tokio::test]
async fn contract_azureml_spark_job_completion_versions_the_upload_once() {
    let root = tempfile::tempdir().unwrap();
    let store: Arc<dyn ObjectStore> = Arc::new(LocalStore::new(root.path()).unwrap());
    let service = Service::new(root.path());
    let endpoint = serve(service.clone()).await;
    let engine = Arc::new(azureml_engine(&endpoint, store.clone()));
    let app = spawn_configured(store.clone(), Some(root), move |state, _| {
        state.with_delegation(1 << 20, engine)
    })
    .await;
    app.adult_contract().await;
    let bytes = std::fs::read(sluice_tests::adult("adult.data")).unwrap();
    let key = app.upload("adult", "adult.data", bytes.clone()).await;
    let event = app.blob_created(&key).await;
    let (status, first) = app.invoke("DatasetIngest", &event).await;
    assert_eq!(status, 200, "{first}");
    let (_, second) = app.invoke("DatasetIngest", &event).await;
    assert_eq!(second["ReturnValue"]["duplicate"], true, "{second}");
    let answer = &first["ReturnValue"];
    let (id, job) = (
        answer["delegation"].as_str().unwrap(),
        answer["job"].as_str().unwrap(),
    );
    assert_eq!(answer["engine"], "azureml-spark");
    assert_eq!(job, format!("scan-{id}"));
    let seen = service.requests.lock().unwrap().clone();
    assert_eq!(
        seen.iter().filter(|r| r.starts_with("PUT job")).count(),
        1,
        "{seen:?}"
    );
    assert!(
        seen[0].starts_with("PUT code sluice-spark-scan/"),
        "{seen:?}"
    );

    service.wait(job).await;
    assert_eq!(
        service.outcome(job),
        Some(Some(Ok(()))),
        "the job itself ran"
    );
    let mut completed = sluice_tests::fixture(
        "eventgrid/Microsoft.MachineLearningServices.RunCompleted.docs.eventgrid.json",
    )[0]
    .clone();
    completed["data"]["runId"] = json!(job);
    completed["data"]["runTags"] = json!({"sluice.delegation": id, "sluice.dataset": "adult"});
    let invocation = json!({"Data": {"event": completed}, "Metadata": {}});
    for _ in 0..2 {
        let (status, answer) = app.invoke("MlJobEvents", &invocation).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(
            answer["ReturnValue"]["delegations"][0]["state"]["state"], "versioned",
            "{answer}"
        );
    }
    app.timer("RunsTimer").await;
    let events = app.events("dataset.").await;
    assert_eq!(events.len(), 1, "told once: {events:?}");
    assert_eq!(events[0]["type"], "dataset.versioned");
    let manifest = app.manifest("adult", 1).await;
    let ours = own_scan(&bytes);
    assert_eq!(
        (&manifest.content_sha256, manifest.rows),
        (&ours.sha256, ours.rows)
    );
    assert!(manifest.data_parts.iter().all(|p| {
        p.key
            .as_str()
            .starts_with("datasets/adult/v1/data.parquet/")
    }));

    // An event for a job Sluice did not start is ignored, not an error.
    completed["data"]["runTags"] = json!({"sluice.delegation": "ffff", "sluice.dataset": "adult"});
    let (status, answer) = app
        .invoke(
            "MlJobEvents",
            &json!({"Data": {"event": completed}, "Metadata": {}}),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert!(app.events("dataset.").await.is_empty());
}

fn databricks_training(endpoint: &str, store: Arc<dyn ObjectStore>) -> DatabricksCompute {
    DatabricksCompute {
        databricks: Databricks::new(endpoint.into(), Arc::new(FixedToken)),
        store,
        storage_root: ABFSS_ROOT.into(),
        cluster: Cluster::SingleNode {
            spark_version: "16.4.x-scala2.12".into(),
            node_type_id: "Standard_D4ds_v5".into(),
        },
        trainer: sluice_tests::sluice_bin().to_path_buf(),
    }
}

#[test]
fn contract_databricks_training_runs_follow_the_jobs_api() {
    let api = fixture("databricks/jobs-2.2.json");
    let config = TrainingConfig::from_json(
        &std::fs::read(sluice_tests::repo_root().join("configs/adult-income.json")).unwrap(),
    )
    .unwrap();
    let spec = |command: Option<Vec<String>>| {
        let mut config = config.clone();
        config.command = command;
        JobSpec {
            run_id: "run-0123456789abcdef0123".into(),
            job_name: "run-0123456789abcdef0123-a2".into(),
            logs_key: ObjectKey::parse("runs/run-0123456789abcdef0123/attempts/2/logs.txt")
                .unwrap(),
            run_created_at: chrono::Utc::now(),
            dataset: DatasetName::parse("adult").unwrap(),
            dataset_version: 3,
            config,
            output_prefix: "runs/run-0123456789abcdef0123/attempts/2/output/".into(),
            timeout: Duration::from_secs(3600),
            tags: [(
                "sluice.run_id".to_owned(),
                "run-0123456789abcdef0123".to_owned(),
            )]
            .into(),
        }
    };
    let paths = |trainer: bool| TaskPaths {
        script: format!("{ABFSS_ROOT}code/abc/train_task.py"),
        data: format!("{ABFSS_ROOT}datasets/adult/v3/"),
        config: format!("{ABFSS_ROOT}runs/run-0123456789abcdef0123/config.json"),
        output: format!("{ABFSS_ROOT}runs/run-0123456789abcdef0123/attempts/2/output/"),
        logs: format!("{ABFSS_ROOT}runs/run-0123456789abcdef0123/attempts/2/logs.txt"),
        trainer: trainer.then(|| format!("{ABFSS_ROOT}code/def/sluice")),
    };
    let single = Cluster::SingleNode {
        spark_version: "16.4.x-scala2.12".into(),
        node_type_id: "Standard_D4ds_v5".into(),
    };
    for (command, trainer) in [
        (None, true),
        (
            Some(vec![
                "python".to_owned(),
                "train.py".into(),
                "--seed".into(),
                "{seed}".into(),
                "--data".into(),
                "{data}".into(),
            ]),
            false,
        ),
    ] {
        let body = training_body(&spec(command.clone()), &paths(trainer), &single);
        for key in keys(&body) {
            assert!(names(&api["SubmitRun"]).contains(&key), "{key}");
        }
        assert_eq!(
            body["idempotency_token"], "run-0123456789abcdef0123-a2",
            "one run per attempt"
        );
        let task = &body["tasks"][0];
        for key in keys(task) {
            assert!(names(&api["SubmitTask"]).contains(&key), "{key}");
        }
        let cluster = &task["new_cluster"];
        for key in keys(cluster) {
            assert!(names(&api["ClusterSpec"]).contains(&key), "{key}");
        }
        assert_eq!(cluster["num_workers"], 0, "a trainer runs on the driver");
        let parameters: Vec<&str> = task["spark_python_task"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap())
            .collect();
        let (before, argv) =
            parameters.split_at(parameters.iter().position(|p| *p == "--").unwrap());
        assert!(
            before.contains(&"--output")
                && before.contains(&"--logs")
                && before.contains(&"--data")
        );
        assert_eq!(before.contains(&"--trainer"), trainer);
        match command {
            None => assert_eq!(
                argv[1..],
                [
                    "{trainer}",
                    "train",
                    "--data",
                    "{data}",
                    "--config",
                    "{config}",
                    "--output",
                    "{output}"
                ]
            ),
            Some(_) => assert_eq!(
                argv[1..],
                ["python", "train.py", "--seed", "42", "--data", "{data}"]
            ),
        }
    }
}

/// A loop app that trains on the Databricks stand-in, with Adult ingested as v1.
async fn databricks_loop_app() -> (TestApp, Arc<Service>) {
    let root = tempfile::tempdir().unwrap();
    let store: Arc<dyn ObjectStore> = Arc::new(LocalStore::new(root.path()).unwrap());
    let service = Service::new(root.path());
    let endpoint = serve(service.clone()).await;
    let app = spawn_loop_app_on(store, root, move |store, _| {
        Arc::new(databricks_training(&endpoint, store))
    })
    .await;
    let app = with_eval_data(app).await;
    let bytes = std::fs::read(sluice_tests::adult("adult.data")).unwrap();
    assert_eq!(
        app.ingest("adult", "adult.data", bytes).await["status"],
        "versioned"
    );
    (app, service)
}

/// Training on Databricks through the loop: the run is submitted once (its attempt the
/// run's idempotency token), the task wrapper copies the version and config to the
/// driver and runs the reference trainer staged from this build, the outputs land where
/// every backend's do, and the model registers, passes the gate and reaches production
/// with the Databricks run in its lineage.
#[tokio::test]
async fn contract_databricks_trains_a_model_through_the_loop() {
    let (app, service) = databricks_loop_app().await;
    let done = app.retrain(json!({"model": "adult-income"})).await;
    let run = done["run_id"].as_str().unwrap();
    let (_, record) = app
        .api(reqwest::Method::GET, &format!("/api/runs/{run}"), None)
        .await;
    let logs = std::fs::read_to_string(app.root().join(format!("runs/{run}/logs.txt")));
    assert_eq!(done["status"], "succeeded", "{record}\n{logs:?}");
    assert_eq!(done["gate"]["passed"], true, "{done}");
    let submissions: Vec<String> = service
        .requests
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.starts_with("submit "))
        .cloned()
        .collect();
    assert_eq!(
        submissions,
        [format!("submit {run}")],
        "one run, named by the attempt"
    );

    let model = ModelName::parse("adult-income").unwrap();
    let production = Registry::new(app.store.clone())
        .resolve(&model, PRODUCTION)
        .await
        .unwrap();
    assert_eq!(production.version, 1);
    let lineage = &production.lineage;
    assert_eq!(lineage.compute, "databricks");
    let job = lineage
        .job
        .as_ref()
        .expect("the Databricks run is in the lineage");
    assert_eq!(
        job.url.as_deref(),
        Some(format!("https://adb-1.1.azuredatabricks.net/#job/runs/{}", job.id).as_str())
    );
    assert_eq!(
        job.cluster.as_deref(),
        Some(format!("0923-job-{}", job.id).as_str())
    );
    let logs = app
        .store
        .get(&ObjectKey::parse(format!("runs/{run}/logs.txt")).unwrap())
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(!logs.is_empty(), "the trainer's log is kept");
}

/// How a job's output ends when its script fails: the last line is the error.
const JOB_ERROR: &str = "Traceback (most recent call last):\n  File \"scan.py\", line 88, in <module>\npyspark.errors.exceptions.captured.AnalysisException: [PATH_NOT_FOUND] Path does not exist: abfss://sluice@sluicedata.dfs.core.windows.net/landing/adult/gone.data";

/// Databricks throttling (429 with Retry-After) and outages (503) are transient: the
/// upload's event is answered with a retryable error and the claim kept, the timer's
/// next tick tries again; a run that then fails ends the delegation with the run's own
/// error and its page, no event published, the upload kept, and a redelivered event
/// starts nothing new.
#[tokio::test]
async fn contract_databricks_scans_survive_throttling_and_outages_and_a_failed_run_says_why() {
    let Delegating {
        store,
        service,
        ingestor,
        upload,
        // Bound, so the store's folders live as long as the test.
        _dirs,
        ..
    } = delegating(|endpoint, store| databricks_engine(endpoint, store, new_cluster())).await;

    service.answer_next(Fault::Throttled(7));
    let err = ingestor.ingest(upload.clone(), None).await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(err.to_string().contains("429"), "{err}");
    let claimed = ingestor.delegations(None).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].state, DelegationState::Claimed);
    assert_eq!(claimed[0].job, None);

    service.answer_next(Fault::Unavailable);
    let followed = ingestor.follow_delegations().await.unwrap();
    assert_eq!(followed[0].state, DelegationState::Claimed);

    service.fail_next_job(JOB_ERROR);
    let followed = ingestor.follow_delegations().await.unwrap();
    match &followed[0].state {
        DelegationState::Failed { reason } => {
            assert!(
                reason.contains("RUN_EXECUTION_ERROR")
                    && reason.contains("[PATH_NOT_FOUND] Path does not exist"),
                "{reason}"
            );
            assert!(
                reason.contains("azuredatabricks.net/#job/runs/"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(ingestor.follow_delegations().await.unwrap().is_empty());

    match ingestor.ingest(upload.clone(), None).await.unwrap() {
        IngestOutcome::Delegated {
            delegation,
            duplicate: true,
        } => assert!(matches!(delegation.state, DelegationState::Failed { .. })),
        other => panic!("{other:?}"),
    }
    let seen = service.requests.lock().unwrap().clone();
    assert_eq!(
        seen.iter().filter(|r| r.starts_with("submit ")).count(),
        1,
        "only the answered submission started a run: {seen:?}"
    );
    assert_eq!(seen.iter().filter(|r| r.starts_with("fault")).count(), 2);
    store.head(&upload.key).await.expect("the upload is kept");
}

/// Azure ML throttling registering the script (429) and an outage creating the job
/// (503) are transient for the scan; a Spark job that fails ends its delegation with
/// a pointer to the job's logs in studio (Azure ML's job resource carries no message).
#[tokio::test]
async fn contract_azureml_spark_scans_survive_throttling_and_a_failed_job_points_to_its_logs() {
    let Delegating {
        store,
        service,
        ingestor,
        upload,
        // Bound, so the store's folders live as long as the test.
        _dirs,
        ..
    } = delegating(azureml_engine).await;

    service.answer_next(Fault::Throttled(30));
    let err = ingestor.ingest(upload.clone(), None).await.unwrap_err();
    assert!(
        err.is_transient() && err.to_string().contains("429"),
        "{err}"
    );
    service.answer_next(Fault::Unavailable);
    let followed = ingestor.follow_delegations().await.unwrap();
    assert_eq!(followed[0].state, DelegationState::Claimed);

    service.fail_next_job(JOB_ERROR);
    let followed = ingestor.follow_delegations().await.unwrap();
    let job = followed[0].job.clone().unwrap();
    match &followed[0].state {
        DelegationState::Failed { reason } => {
            assert!(reason.contains("Failed"), "{reason}");
            assert!(
                reason.contains(&format!("https://ml.azure.com/runs/{job}")),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    let seen = service.requests.lock().unwrap().clone();
    assert_eq!(
        seen.iter().filter(|r| r.starts_with("PUT job")).count(),
        1,
        "{seen:?}"
    );
    store.head(&upload.key).await.expect("the upload is kept");
}

/// Training on Databricks: a throttled submission is a 503 to the caller with the
/// service's Retry-After, an outage a 503 without one, and the run stays queued (the
/// caller's retry is the same run); the timer then submits it, and a run that fails is
/// recorded failed with the run's own error and its page.
#[tokio::test]
async fn contract_databricks_training_survives_throttling_and_a_failed_run_says_why() {
    let (app, service) = databricks_loop_app().await;
    let request = json!({"model": "adult-income"});

    service.answer_next(Fault::Throttled(7));
    let response = app
        .client
        .post(format!("{}/api/retrain", app.base))
        .header("x-functions-key", crate::helpers::ADMIN_KEY)
        .json(&request)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "7");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unavailable", "{body}");

    service.answer_next(Fault::Unavailable);
    let (status, answer) = app
        .api(reqwest::Method::POST, "/api/retrain", Some(request.clone()))
        .await;
    assert_eq!(status, 503, "{answer}");

    service.fail_next_job(JOB_ERROR);
    let (status, accepted) = app
        .api(reqwest::Method::POST, "/api/retrain", Some(request))
        .await;
    assert_eq!(status, 202, "{accepted}");
    assert_eq!(
        accepted["duplicate"], true,
        "the run the throttled calls recorded"
    );
    let run = accepted["run_id"].as_str().unwrap();
    let done = app.follow(run).await;
    assert_eq!(done["status"], "failed", "{done}");
    let (_, record) = app
        .api(reqwest::Method::GET, &format!("/api/runs/{run}"), None)
        .await;
    assert_eq!(record["status"], "failed", "{record}");
    let error = record["error"].as_str().unwrap();
    assert!(
        error.contains("[PATH_NOT_FOUND] Path does not exist")
            && error.contains("azuredatabricks.net/#job/runs/"),
        "{error}"
    );
    let seen = service.requests.lock().unwrap().clone();
    assert_eq!(
        seen.iter().filter(|r| r.starts_with("submit ")).count(),
        1,
        "{seen:?}"
    );
}
