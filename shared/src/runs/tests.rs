use std::sync::Arc;

use super::*;
use crate::storage::local::LocalStore;

/// A backend that only records what it was asked to do.
#[derive(Default)]
struct Recorder {
    submitted: std::sync::Mutex<Vec<String>>,
    status: std::sync::Mutex<Option<JobStatus>>,
    refuse: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl Compute for Recorder {
    fn name(&self) -> &str {
        "recorder"
    }
    async fn submit(&self, job: &JobSpec) -> Result<String, ComputeError> {
        if self.refuse.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(ComputeError::Rejected("no such cluster".into()));
        }
        self.submitted
            .lock()
            .unwrap()
            .push(format!("{} {}", job.job_name, job.output_prefix));
        Ok(format!("job-{}", job.job_name))
    }
    async fn status(&self, _: &str) -> Result<JobStatus, ComputeError> {
        Ok(self
            .status
            .lock()
            .unwrap()
            .clone()
            .unwrap_or(JobStatus::Running))
    }
    async fn cancel(&self, _: &str) -> Result<(), ComputeError> {
        Ok(())
    }
}

async fn setup() -> (tempfile::TempDir, Arc<dyn ObjectStore>, Runs, Arc<Recorder>) {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn ObjectStore> = Arc::new(LocalStore::new(dir.path()).unwrap());
    let recorder = Arc::new(Recorder::default());
    let runs = Runs::new(store.clone(), recorder.clone());
    let config =
        TrainingConfig::from_json(br#"{"model":"m","dataset":"d","label":"y","positive":"yes"}"#)
            .unwrap();
    runs.configs().put(&config, "test", "c0").await.unwrap();
    // A dataset version's manifest is all a request needs to resolve.
    let manifest = serde_json::json!({
        "dataset": "d", "version": 1, "content_sha256": "ab".repeat(32), "contract_version": 1,
        "contract_inferred": false,
        "source": {"key": "landing/d/x.csv", "uri": "file:///landing/d/x.csv", "etag": "e1", "uploader": null},
        "format": "csv", "bytes": 10, "rows": 2, "schema": [], "profile": [],
        "validation": {"passed": true, "violations": []}, "parent_version": null,
        "data": {"key": "datasets/d/v1/data.parquet", "uri": "file:///x", "bytes": 1},
        "created_at": "2026-11-24T00:00:00Z"
    });
    put_json(
        store.as_ref(),
        &layout::manifest(&DatasetName::parse("d").unwrap(), 1),
        &manifest,
        PutMode::Create,
    )
    .await
    .unwrap();
    (dir, store, runs, recorder)
}

fn request(json: serde_json::Value) -> RetrainRequest {
    serde_json::from_value(json).unwrap()
}

#[tokio::test]
async fn the_same_request_twice_is_one_run_and_one_job() {
    let (_dir, _store, runs, recorder) = setup().await;
    let req = request(
        serde_json::json!({"model": "m", "dataset_version": "latest", "requested_by": "ci"}),
    );
    let RequestOutcome::Accepted { run, duplicate } =
        runs.request(&req, "Retrain", "c1").await.unwrap()
    else {
        panic!("rejected")
    };
    assert!(!duplicate);
    assert_eq!(run.dataset_version, 1);
    let RequestOutcome::Accepted {
        run: again,
        duplicate,
    } = runs.request(&req, "RetrainQueue", "c2").await.unwrap()
    else {
        panic!("rejected")
    };
    assert!(duplicate);
    assert_eq!(again.id, run.id);
    runs.start(&run.id).await.unwrap();
    runs.start(&run.id).await.unwrap();
    assert_eq!(
        recorder.submitted.lock().unwrap().len(),
        1,
        "one job per run"
    );
    // Another seed is another identity.
    let other = request(
        serde_json::json!({"model": "m", "dataset_version": 1, "requested_by": "ci", "config_overrides": {"seed": 7}}),
    );
    let RequestOutcome::Accepted { run: seeded, .. } =
        runs.request(&other, "Retrain", "c3").await.unwrap()
    else {
        panic!("rejected")
    };
    assert_ne!(seeded.id, run.id);
    assert_eq!(seeded.config.seed, 7);
}

#[tokio::test]
async fn requests_that_can_never_succeed_are_set_aside_with_their_reason() {
    let (_dir, store, runs, _) = setup().await;
    for (json, expected) in [
        (
            serde_json::json!({"model": "nope", "requested_by": "x"}),
            "no training config",
        ),
        (
            serde_json::json!({"model": "m", "dataset_version": 9, "requested_by": "x"}),
            "no version 9",
        ),
        (
            serde_json::json!({"model": "m", "dataset": "other", "requested_by": "x"}),
            "trains on d",
        ),
        (
            serde_json::json!({"model": "m", "requested_by": "x", "config_overrides": {"promotion": {"metric": "f1"}}}),
            "promotion.metric",
        ),
    ] {
        match runs
            .request(&request(json), "RetrainQueue", "c")
            .await
            .unwrap()
        {
            RequestOutcome::Rejected { reason, record } => {
                assert!(reason.contains(expected), "{reason}");
                let (saved, _): (serde_json::Value, _) =
                    get_json(store.as_ref(), &record).await.unwrap();
                assert_eq!(saved["reason"], reason);
                assert!(saved["message"].is_object());
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(serde_json::from_value::<RetrainRequest>(serde_json::json!({"model": "m"})).is_err());
}

#[tokio::test]
async fn a_finished_job_without_outputs_fails_the_run_with_a_reason() {
    let (_dir, _store, runs, recorder) = setup().await;
    let req = request(serde_json::json!({"model": "m", "requested_by": "ci"}));
    let RequestOutcome::Accepted { run, .. } = runs.request(&req, "Retrain", "c").await.unwrap()
    else {
        panic!()
    };
    runs.start(&run.id).await.unwrap();
    assert_eq!(
        runs.poll(&run.id).await.unwrap().0.status,
        RunStatus::Running
    );
    *recorder.status.lock().unwrap() = Some(JobStatus::Succeeded);
    let (done, registered) = runs.poll(&run.id).await.unwrap();
    assert_eq!(done.status, RunStatus::Failed);
    assert!(done.error.unwrap().contains("model.onnx"));
    assert!(registered.is_none());
    assert_eq!(
        runs.audit().verify().await.unwrap().records,
        4,
        "config stored, requested, started, finished"
    );
}

#[tokio::test]
async fn the_retrain_policy_decides_on_new_versions() {
    use crate::training::config::RetrainPolicy;
    let (_dir, _store, runs, _) = setup().await;
    let mut config = runs
        .configs()
        .get(&ModelName::parse("m").unwrap())
        .await
        .unwrap();
    assert!(
        runs.retrain_decision(&config, 1)
            .await
            .unwrap()
            .unwrap()
            .contains("new version 1")
    );
    config.retrain = RetrainPolicy::Manual;
    assert_eq!(runs.retrain_decision(&config, 1).await.unwrap(), None);
    config.retrain = RetrainPolicy::Drift { threshold: 0.5 };
    let why = runs.retrain_decision(&config, 1).await.unwrap().unwrap();
    assert!(why.contains("no production model"), "{why}");
}

#[tokio::test]
async fn a_job_the_backend_refuses_fails_its_run_with_the_reason() {
    let (_dir, _store, runs, recorder) = setup().await;
    recorder
        .refuse
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let req = request(serde_json::json!({"model": "m", "requested_by": "ci"}));
    let RequestOutcome::Accepted { run, .. } = runs.request(&req, "Retrain", "c").await.unwrap()
    else {
        panic!()
    };
    let failed = runs.start(&run.id).await.unwrap();
    assert_eq!(failed.status, RunStatus::Failed);
    assert!(failed.error.unwrap().contains("no such cluster"));
}

#[tokio::test]
async fn a_failed_run_is_tried_again_as_its_next_attempt_and_keeps_the_first() {
    let (_dir, _store, runs, recorder) = setup().await;
    let req = request(serde_json::json!({"model": "m", "requested_by": "ci"}));
    let RequestOutcome::Accepted { run, .. } = runs.request(&req, "Retrain", "c").await.unwrap()
    else {
        panic!()
    };
    let id = run.id.clone();
    // Only a failed or canceled run can be tried again: not a queued or running one.
    for _ in 0..2 {
        let refused = runs.retry(&id, "ann", "again", "c").await.unwrap_err();
        assert!(matches!(refused, RunError::Conflict(_)), "{refused}");
        assert!(
            refused
                .to_string()
                .contains("only a failed or canceled run")
        );
        runs.start(&id).await.unwrap();
    }
    *recorder.status.lock().unwrap() = Some(JobStatus::Failed("out of memory".into()));
    let (failed, _) = runs.poll(&id).await.unwrap();
    assert_eq!(failed.status, RunStatus::Failed);

    let retried = runs.retry(&id, "ann", "bigger node", "c2").await.unwrap();
    assert_eq!((retried.attempt, retried.status), (2, RunStatus::Queued));
    assert_eq!(
        (retried.job.as_deref(), retried.error.as_deref()),
        (None, None)
    );
    let first = &retried.earlier_attempts[..];
    assert_eq!(first.len(), 1);
    assert_eq!((first[0].attempt, first[0].status), (1, RunStatus::Failed));
    assert_eq!(first[0].job.as_deref(), Some(format!("job-{id}").as_str()));
    assert_eq!(first[0].error.as_deref(), Some("out of memory"));
    assert!(first[0].started_at.is_some() && first[0].finished_at.is_some());
    // Retrying twice is one new attempt: the second finds it queued.
    assert!(matches!(
        runs.retry(&id, "ann", "again", "c3").await,
        Err(RunError::Conflict(_))
    ));

    // The attempt has its own job and output folder; the first attempt's stay where
    // runs kept them before attempts existed.
    *recorder.status.lock().unwrap() = None;
    let started = runs.start(&id).await.unwrap();
    assert_eq!(
        started.job.as_deref(),
        Some(format!("job-{id}-a2").as_str())
    );
    assert_eq!(
        *recorder.submitted.lock().unwrap(),
        [
            format!("{id} runs/{id}/output/"),
            format!("{id}-a2 runs/{id}/attempts/2/output/")
        ]
    );
    assert_eq!(
        logs_key(&id, 2).unwrap().as_str(),
        format!("runs/{id}/attempts/2/logs.txt")
    );
    assert_eq!(
        runs.audit().actions().await,
        [
            Action::ConfigStored,
            Action::RunRequested,
            Action::RunStarted,
            Action::RunFinished,
            Action::RunRetried,
            Action::RunStarted
        ]
    );

    // A third attempt, asked for without a reason: the record says what it was.
    *recorder.status.lock().unwrap() = Some(JobStatus::Canceled);
    runs.poll(&id).await.unwrap();
    let third = runs.retry(&id, "ann", "", "c4").await.unwrap();
    assert_eq!((third.attempt, third.earlier_attempts.len()), (3, 2));
    let records = runs.audit().records().await.unwrap();
    let retried: Vec<&str> = records
        .iter()
        .filter(|r| r.entry.action == Action::RunRetried)
        .map(|r| r.entry.reason.as_str())
        .collect();
    assert_eq!(retried, ["bigger node", "retry requested"]);
}

#[tokio::test]
async fn runs_written_before_attempts_read_as_their_first() {
    let (_dir, _store, runs, _) = setup().await;
    let req = request(serde_json::json!({"model": "m", "requested_by": "ci"}));
    let RequestOutcome::Accepted { run, .. } = runs.request(&req, "Retrain", "c").await.unwrap()
    else {
        panic!()
    };
    let mut stored = serde_json::to_value(*run).unwrap();
    assert!(stored.get("earlier_attempts").is_none(), "none yet");
    stored.as_object_mut().unwrap().remove("attempt");
    let old: Run = serde_json::from_value(stored).unwrap();
    assert_eq!((old.attempt, old.earlier_attempts.len()), (1, 0));
}

/// "What was trained on this data" reads the runs of that version only; a store written
/// before the index (runs without their index entries) is indexed the first time it is
/// asked, once, and answers the same.
#[tokio::test]
async fn the_runs_of_a_dataset_version_come_from_its_index_and_older_stores_are_indexed() {
    let (dir, store, runs, _) = setup().await;
    let d = DatasetName::parse("d").unwrap();
    let mut ids = Vec::new();
    for seed in [1, 2] {
        let req = request(serde_json::json!({
            "model": "m", "dataset_version": 1, "requested_by": "ci",
            "config_overrides": {"seed": seed},
        }));
        let RequestOutcome::Accepted { run, .. } =
            runs.request(&req, "Retrain", "c").await.unwrap()
        else {
            panic!("rejected")
        };
        ids.push(run.id);
    }
    let found = |runs: Vec<Run>| runs.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(found(runs.trained_on(&d, 1).await.unwrap()), ids);
    assert!(runs.trained_on(&d, 2).await.unwrap().is_empty());
    // As an older version left it: the runs, and no index.
    for meta in store.list("index/").await.unwrap() {
        let path = dir.path().join(meta.key.as_str());
        std::fs::remove_file(path).unwrap();
    }
    assert!(store.list("index/").await.unwrap().is_empty());
    assert_eq!(found(runs.trained_on(&d, 1).await.unwrap()), ids);
    let indexed = store.list("index/runs/d/v1/").await.unwrap();
    assert_eq!(indexed.len(), 2, "indexed once asked");
    // The newest first, as the runs page lists them.
    let recent = found(runs.recent(1).await.unwrap());
    assert_eq!(recent.len(), 1);
    assert_eq!(found(runs.recent(10).await.unwrap()).len(), 2);
}

/// Stores written by older versions must keep reading: every run path, byte for byte
/// (attempt 1 keeps the paths runs had before attempts existed).
#[test]
fn the_runs_layout_is_pinned() {
    let cases = [
        (run_key("r1"), "runs/r1.json"),
        (job_config_key("r1").unwrap(), "runs/r1/config.json"),
        (logs_key("r1", 1).unwrap(), "runs/r1/logs.txt"),
        (logs_key("r1", 3).unwrap(), "runs/r1/attempts/3/logs.txt"),
        (trained_on_backfilled(), "index/runs.backfilled.json"),
    ];
    for (key, expected) in cases {
        assert_eq!(key.as_str(), expected);
    }
    assert_eq!(output_prefix("r1", 1), "runs/r1/output/");
    assert_eq!(output_prefix("r1", 2), "runs/r1/attempts/2/output/");
    assert_eq!(
        trained_on_prefix(&DatasetName::parse("adult").unwrap(), 3),
        "index/runs/adult/v3/"
    );
    let at = DateTime::parse_from_rfc3339("2026-11-24T01:02:03.456Z")
        .unwrap()
        .with_timezone(&Utc);
    let rejected = rejected_key(at);
    assert!(
        rejected
            .as_str()
            .starts_with("rejected/20261124T010203.456Z-")
            && rejected.as_str().ends_with(".json"),
        "{rejected}"
    );
}
