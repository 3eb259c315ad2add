//! Local Spark as a scan engine.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::Utc;

use super::{Delegation, EngineError, JobState, ScanEngine, Snapshot};
use crate::dataset::spark::{LocalSpark, log_tail, read_result};
use crate::storage::ObjectStore;

/// Local Spark as an engine: `spark-submit` in the background, one folder per job under
/// `work` (its log, exit code, result and snapshot), so a job outlives a restart of the
/// process that started it and is found again by its id.
#[derive(Debug)]
pub struct LocalSparkEngine {
    pub spark: LocalSpark,
    pub work: PathBuf,
    /// The store the uploads are in (local Spark reads them by their `file://` URI).
    pub store: Arc<dyn ObjectStore>,
}

impl LocalSparkEngine {
    fn dir(&self, job: &str) -> PathBuf {
        self.work.join(job)
    }
}

#[async_trait::async_trait]
impl ScanEngine for LocalSparkEngine {
    fn name(&self) -> &'static str {
        "local-spark"
    }

    async fn submit(&self, delegation: &Delegation) -> Result<String, EngineError> {
        let id = &delegation.id;
        let input = self.store.uri(&delegation.upload);
        let dir = self.dir(id);
        if dir.join("started").exists() {
            return Ok(id.to_owned());
        }
        std::fs::create_dir_all(&dir).map_err(|e| EngineError::Unavailable(e.to_string()))?;
        let spark = self
            .spark
            .command(&dir, &input, &delegation.contract, &dir.join("out"))?;
        // The shell records the exit code beside the log, so the outcome is known
        // whoever asks, whenever.
        let mut command = tokio::process::Command::new("sh");
        command
            .arg("-c")
            .arg(r#"dir="$1"; shift; "$@" > "$dir/log.txt" 2>&1; echo $? > "$dir/exit""#)
            .arg("sh")
            .arg(&dir)
            .arg(spark.get_program())
            .args(spark.get_args())
            .kill_on_drop(false)
            // Its own process group, so a cancel stops Spark's JVM with the shell.
            .process_group(0);
        for (key, value) in spark.get_envs() {
            match value {
                Some(value) => command.env(key, value),
                None => command.env_remove(key),
            };
        }
        let child = command
            .spawn()
            .map_err(|e| EngineError::Unavailable(format!("starting spark-submit: {e}")))?;
        if let Some(pid) = child.id() {
            std::fs::write(dir.join("pid"), pid.to_string())
                .map_err(|e| EngineError::Unavailable(e.to_string()))?;
        }
        std::fs::write(dir.join("started"), Utc::now().to_rfc3339())
            .map_err(|e| EngineError::Unavailable(e.to_string()))?;
        Ok(id.to_owned())
    }

    async fn poll(&self, _: &Delegation, job: &str) -> Result<JobState, EngineError> {
        let dir = self.dir(job);
        let Ok(code) = std::fs::read_to_string(dir.join("exit")) else {
            return Ok(JobState::Running);
        };
        let log = std::fs::read_to_string(dir.join("log.txt")).unwrap_or_default();
        if code.trim() != "0" {
            return Ok(JobState::Failed(format!(
                "spark-submit exited with {}: {}",
                code.trim(),
                log_tail(&log)
            )));
        }
        let out = dir.join("out");
        match read_result(&out) {
            Ok(scan) => Ok(JobState::Succeeded {
                scan,
                snapshot: Snapshot::Local(out.join("data.parquet")),
            }),
            Err(e) => Ok(JobState::Failed(e.to_string())),
        }
    }

    async fn cancel(&self, job: &str) -> Result<(), EngineError> {
        let dir = self.dir(job);
        if dir.join("exit").exists() {
            return Ok(());
        }
        let pid = std::fs::read_to_string(dir.join("pid"))
            .map_err(|e| EngineError::Refused(format!("no local Spark job {job}: {e}")))?;
        let status = tokio::process::Command::new("kill")
            .args(["-TERM", "--", &format!("-{}", pid.trim())])
            .status()
            .await
            .map_err(|e| EngineError::Unavailable(format!("running kill: {e}")))?;
        if !status.success() && !dir.join("exit").exists() {
            return Err(EngineError::Refused(format!(
                "local Spark job {job} could not be stopped"
            )));
        }
        // The shell that would record the exit went with the group: record it here, so
        // following the job sees it over.
        if !dir.join("exit").exists() {
            std::fs::write(dir.join("exit"), "terminated\n")
                .map_err(|e| EngineError::Unavailable(e.to_string()))?;
        }
        Ok(())
    }
}
