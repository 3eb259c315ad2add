//! The local backend: a training job is a child process on this machine. It gets the
//! dataset version copied into a fresh work folder, runs the model's command (by
//! default `sluice train`) with a timeout, keeps its logs, and publishes the output
//! folder to the store where every backend's outputs go. Job states are files, so a
//! restarted host still knows how its jobs ended.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio::process::Command;

use super::compute::{Compute, ComputeError, JobSpec, JobStatus};
use crate::dataset::fetch::fetch_version;
use crate::storage::{ObjectKey, ObjectStore, Payload, PutMode, StorageError};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
enum State {
    Running,
    Succeeded,
    Failed { error: String },
    Canceled,
}

pub struct LocalCompute {
    store: Arc<dyn ObjectStore>,
    work: PathBuf,
    /// The `sluice` executable that runs the reference trainer.
    program: PathBuf,
    /// Jobs this process is running, with the sender that cancels each (taken once).
    running: Arc<Mutex<HashMap<String, Option<tokio::sync::oneshot::Sender<()>>>>>,
}

impl LocalCompute {
    pub fn new(store: Arc<dyn ObjectStore>, work: PathBuf, program: PathBuf) -> Self {
        Self {
            store,
            work,
            program,
            running: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    fn dir(&self, job: &str) -> PathBuf {
        self.work.join(job)
    }

    fn write_state(dir: &Path, state: &State) -> std::io::Result<()> {
        let tmp = dir.join("state.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec(state).expect("states serialise"))?;
        std::fs::rename(tmp, dir.join("state.json"))
    }

    fn argv(&self, spec: &JobSpec, data: &Path, output: &Path, config: &Path) -> Vec<String> {
        let fill = |arg: &str| {
            arg.replace("{data}", &data.display().to_string())
                .replace("{output}", &output.display().to_string())
                .replace("{config}", &config.display().to_string())
                .replace("{seed}", &spec.config.seed.to_string())
        };
        match &spec.config.command {
            Some(command) => command.iter().map(|a| fill(a)).collect(),
            None => vec![
                self.program.display().to_string(),
                "train".into(),
                "--data".into(),
                data.display().to_string(),
                "--config".into(),
                config.display().to_string(),
                "--output".into(),
                output.display().to_string(),
            ],
        }
    }
}

#[async_trait::async_trait]
impl Compute for LocalCompute {
    fn name(&self) -> &str {
        "local"
    }

    async fn submit(&self, spec: &JobSpec) -> Result<String, ComputeError> {
        // The job folder is this run's, not any earlier run's with the same id: a store
        // that was wiped and rebuilt gives the same run id again.
        let job = format!(
            "{}-{}",
            spec.job_name,
            spec.run_created_at.timestamp_millis()
        );
        let dir = self.dir(&job);
        if dir.join("state.json").exists() {
            return Ok(job); // already submitted: the same run never starts twice
        }
        let (data, output) = (dir.join("data"), dir.join("output"));
        std::fs::create_dir_all(&data)?;
        std::fs::create_dir_all(&output)?;
        fetch_version(
            self.store.as_ref(),
            &spec.dataset,
            spec.dataset_version,
            &data,
        )
        .await?;
        let config = dir.join("config.json");
        std::fs::write(
            &config,
            serde_json::to_vec_pretty(&spec.config).expect("configs serialise"),
        )?;
        let argv = self.argv(spec, &data, &output, &config);
        let logs = std::fs::File::create(dir.join("logs.txt"))?;
        let mut child = Command::new(&argv[0])
            .args(&argv[1..])
            .stdout(logs.try_clone()?)
            .stderr(logs)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| ComputeError::Rejected(format!("cannot start {:?}: {e}", argv[0])))?;
        Self::write_state(&dir, &State::Running)?;
        let (cancel_tx, cancel_rx) = tokio::sync::oneshot::channel();
        let running = self.running.clone();
        running
            .lock()
            .expect("job map")
            .insert(job.clone(), Some(cancel_tx));
        let store = self.store.clone();
        let prefix = spec.output_prefix.clone();
        let timeout = spec.timeout;
        let logs_key = spec.logs_key.clone();
        let run_id = job.clone();
        tokio::spawn(async move {
            let state = tokio::select! {
                exit = tokio::time::timeout(timeout, child.wait()) => match exit {
                    Ok(Ok(status)) if status.success() => match publish(store.as_ref(), &output, &prefix).await {
                        Ok(()) => State::Succeeded,
                        Err(e) => State::Failed { error: format!("publishing the output failed: {e}") },
                    },
                    Ok(Ok(status)) => State::Failed { error: format!("the training command exited with {status}; see its logs") },
                    Ok(Err(e)) => State::Failed { error: format!("waiting for the training command failed: {e}") },
                    Err(_) => {
                        let _ = child.kill().await;
                        State::Failed { error: format!("timed out after {} s", timeout.as_secs()) }
                    }
                },
                _ = cancel_rx => {
                    let _ = child.kill().await;
                    State::Canceled
                }
            };
            // The logs go where every backend's logs go.
            if let Ok(bytes) = tokio::fs::read(dir.join("logs.txt")).await {
                let _ = store.put(&logs_key, bytes.into(), PutMode::Overwrite).await;
            }
            if let Err(e) = Self::write_state(&dir, &state) {
                tracing::error!(run_id, error = %e, "recording the local job's end failed");
            }
            running.lock().expect("job map").remove(&run_id);
        });
        Ok(job)
    }

    async fn status(&self, job: &str) -> Result<JobStatus, ComputeError> {
        let path = self.dir(job).join("state.json");
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(_) => return Err(ComputeError::UnknownJob(job.to_owned())),
        };
        let state: State = serde_json::from_slice(&bytes)
            .map_err(|e| ComputeError::Rejected(format!("{}: {e}", path.display())))?;
        let alive = self.running.lock().expect("job map").contains_key(job);
        Ok(match state {
            State::Running if alive => JobStatus::Running,
            // No process of this host is running it: the host restarted mid-job.
            State::Running => {
                JobStatus::Failed("the local job was lost when its host stopped".into())
            }
            State::Succeeded => JobStatus::Succeeded,
            State::Failed { error } => JobStatus::Failed(error),
            State::Canceled => JobStatus::Canceled,
        })
    }

    async fn cancel(&self, job: &str) -> Result<(), ComputeError> {
        let sender = self
            .running
            .lock()
            .expect("job map")
            .get_mut(job)
            .map(Option::take);
        match sender {
            Some(Some(tx)) => {
                let _ = tx.send(());
                Ok(())
            }
            Some(None) => Ok(()),                     // cancel already sent
            None if self.dir(job).exists() => Ok(()), // already over
            None => Err(ComputeError::UnknownJob(job.to_owned())),
        }
    }
}

/// Uploads every file of the output folder under `prefix`.
async fn publish(store: &dyn ObjectStore, output: &Path, prefix: &str) -> Result<(), StorageError> {
    let entries =
        std::fs::read_dir(output).map_err(|e| crate::storage::io_error("local job output", e))?;
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.is_file() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().to_string();
        let key = ObjectKey::parse(format!("{prefix}{name}"))?;
        store
            .put(&key, Payload::stream_file(&path).await?, PutMode::Overwrite)
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::dataset::DatasetName;
    use crate::storage::local::LocalStore;
    use crate::training::TrainingConfig;

    /// A store holding a (dummy) dataset version, and a job spec running `argv`.
    async fn setup(argv: &[&str], timeout: Duration) -> (tempfile::TempDir, LocalCompute, JobSpec) {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn ObjectStore> =
            Arc::new(LocalStore::new(dir.path().join("store")).unwrap());
        let d = DatasetName::parse("d").unwrap();
        let manifest = crate::dataset::fetch::test_manifest(&[]);
        for (key, bytes) in [
            (
                crate::dataset::layout::manifest(&d, 1),
                manifest.to_string(),
            ),
            (crate::dataset::layout::data(&d, 1), "{}".into()),
        ] {
            store
                .put(&key, bytes.into_bytes().into(), PutMode::Create)
                .await
                .unwrap();
        }
        let mut config =
            serde_json::json!({"model": "m", "dataset": "d", "label": "y", "positive": "1"});
        config["command"] = serde_json::json!(argv);
        let spec = JobSpec {
            run_id: "run-test".into(),
            job_name: "run-test".into(),
            logs_key: ObjectKey::parse("runs/run-test/logs.txt").unwrap(),
            run_created_at: chrono::Utc::now(),
            dataset: d,
            dataset_version: 1,
            config: TrainingConfig::from_json(config.to_string().as_bytes()).unwrap(),
            output_prefix: "runs/run-test/output/".into(),
            timeout,
            tags: Default::default(),
        };
        let compute = LocalCompute::new(store, dir.path().join("work"), "sluice".into());
        (dir, compute, spec)
    }

    async fn wait_final(compute: &LocalCompute, job: &str) -> JobStatus {
        for _ in 0..200 {
            match compute.status(job).await.unwrap() {
                JobStatus::Running | JobStatus::Queued => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                done => return done,
            }
        }
        panic!("{job} never finished");
    }

    #[tokio::test]
    async fn a_job_runs_its_command_with_the_inputs_and_publishes_its_output() {
        let script = "test -f {data}/manifest.json && test -f {data}/data.parquet && test -f {config} && echo seed={seed} > {output}/note.txt";
        let (dir, compute, spec) = setup(&["sh", "-c", script], Duration::from_secs(30)).await;
        let job = compute.submit(&spec).await.unwrap();
        assert_eq!(
            compute.submit(&spec).await.unwrap(),
            job,
            "submitting again starts nothing"
        );
        assert_eq!(wait_final(&compute, &job).await, JobStatus::Succeeded);
        let note = std::fs::read_to_string(dir.path().join("store/runs/run-test/output/note.txt"))
            .unwrap();
        assert_eq!(note.trim(), "seed=42");
    }

    #[tokio::test]
    async fn a_job_can_be_cancelled_and_times_out() {
        let (_dir, compute, spec) = setup(&["sleep", "30"], Duration::from_secs(30)).await;
        let job = compute.submit(&spec).await.unwrap();
        compute.cancel(&job).await.unwrap();
        assert_eq!(wait_final(&compute, &job).await, JobStatus::Canceled);

        let (_dir, compute, spec) = setup(&["sleep", "30"], Duration::from_millis(300)).await;
        let job = compute.submit(&spec).await.unwrap();
        match wait_final(&compute, &job).await {
            JobStatus::Failed(e) => assert!(e.contains("timed out"), "{e}"),
            other => panic!("{other:?}"),
        }
        let (_dir, compute, spec) = setup(&["false"], Duration::from_secs(30)).await;
        let job = compute.submit(&spec).await.unwrap();
        assert!(
            matches!(wait_final(&compute, &job).await, JobStatus::Failed(e) if e.contains("exited"))
        );
        assert!(matches!(
            compute.status("run-unknown").await,
            Err(ComputeError::UnknownJob(_))
        ));
    }
}
