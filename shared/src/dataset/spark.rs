//! The scan on Spark, for uploads larger than one function instance reads: the job
//! (`shared/spark/ingest.py`, shipped inside the binary) and local Spark to run it on.
//!
//! The job writes `scan.json` (a [`ScanOutput`]) and, when the upload passed, the
//! snapshot as a folder of Parquet parts, `data.parquet/`, so a delegated upload is
//! finished from the same fields as one Sluice scanned itself.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::contract::Contract;
use super::scan::ScanOutput;

/// The Spark job's source, as shipped (written beside a local run, uploaded for a cluster).
pub const INGEST_JOB: &str = include_str!("../../spark/ingest.py");

/// The file the job writes its result to, in its output folder.
pub const SCAN_RESULT: &str = "scan.json";

#[derive(Debug, thiserror::Error)]
pub enum SparkError {
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error("the Spark job failed ({status}); the end of its log:\n{log}")]
    Failed { status: String, log: String },
    #[error("the Spark job's result {path} does not read as a scan: {reason}")]
    Result { path: PathBuf, reason: String },
}

/// Local Spark: `spark-submit --master local[N]` from the `pyspark` package, on the
/// machine's Java. What `sluice dev` delegates to, and what the suite tests the job on.
#[derive(Clone, Debug)]
pub struct LocalSpark {
    pub spark_submit: PathBuf,
    /// Worker threads (`local[N]`); 0 for one per core.
    pub threads: usize,
    /// Spark settings for the run (`--conf KEY=VALUE`).
    pub conf: Vec<(String, String)>,
}

impl LocalSpark {
    /// Runs the job on `input` (a CSV file or a folder of parts) against `contract`;
    /// the job writes into `output` (created), and its result is returned.
    pub fn scan(
        &self,
        input: &Path,
        contract: &Contract,
        output: &Path,
    ) -> Result<ScanOutput, SparkError> {
        let work = tempfile::tempdir().map_err(io("creating the job's folder"))?;
        let mut command = self.command(work.path(), &input.to_string_lossy(), contract, output)?;
        let run = command
            .output()
            .map_err(io(&format!("starting {}", self.spark_submit.display())))?;
        if !run.status.success() {
            return Err(SparkError::Failed {
                status: run.status.to_string(),
                log: log_tail(&String::from_utf8_lossy(&run.stderr)),
            });
        }
        read_result(output)
    }

    /// The `spark-submit` command for one job: the job and its contract are written into
    /// `work` (which also holds Spark's scratch files), the result goes to `output`.
    pub fn command(
        &self,
        work: &Path,
        input: &str,
        contract: &Contract,
        output: &Path,
    ) -> Result<Command, SparkError> {
        std::fs::create_dir_all(output).map_err(io("creating the job's output folder"))?;
        let job = work.join("ingest.py");
        std::fs::write(&job, INGEST_JOB).map_err(io("writing the job"))?;
        let contract_path = work.join("contract.json");
        let contract_json = serde_json::to_vec(contract).expect("contracts serialize");
        std::fs::write(&contract_path, contract_json).map_err(io("writing the contract"))?;
        let args = [
            "--input".into(),
            input.into(),
            "--contract".into(),
            contract_path.into_os_string(),
            "--output".into(),
            output.into(),
        ];
        Ok(self.script_command(work, &job, &args))
    }

    /// `spark-submit` running `script` with `args`, Spark's scratch files in `work`: what
    /// a cluster does with a job's entry file and arguments.
    pub fn script_command(
        &self,
        work: &Path,
        script: &Path,
        args: &[std::ffi::OsString],
    ) -> Command {
        let master = match self.threads {
            0 => "local[*]".to_owned(),
            n => format!("local[{n}]"),
        };
        let mut command = Command::new(&self.spark_submit);
        // pyspark's `spark-submit` finds Spark through the first `python3` on PATH, and
        // runs the job's Python workers with `PYSPARK_PYTHON`: both must be the Python
        // it was installed into (a venv's `bin/` beside it).
        if let Some(bin) = self.spark_submit.parent()
            && bin.join("python3").exists()
        {
            let path = std::env::var_os("PATH").unwrap_or_default();
            let paths = std::iter::once(bin.to_path_buf()).chain(std::env::split_paths(&path));
            command
                .env("PATH", std::env::join_paths(paths).unwrap_or(path))
                .env("PYSPARK_PYTHON", bin.join("python3"));
        }
        command
            .args(["--master", &master])
            // Local runs keep Spark's scratch files with the job, not in /tmp at large.
            .arg("--conf")
            .arg(format!("spark.local.dir={}", work.display()))
            .args(
                self.conf
                    .iter()
                    .flat_map(|(k, v)| ["--conf".into(), format!("{k}={v}")]),
            )
            .arg(script)
            .args(args);
        command
    }
}

/// The result the job wrote into `output`.
pub fn read_result(output: &Path) -> Result<ScanOutput, SparkError> {
    let path = output.join(SCAN_RESULT);
    let bytes = std::fs::read(&path).map_err(io("reading the job's result"))?;
    serde_json::from_slice(&bytes).map_err(|e| SparkError::Result {
        path,
        reason: e.to_string(),
    })
}

/// The end of a job's log, which says why it failed.
pub fn log_tail(log: &str) -> String {
    let tail: Vec<&str> = log.lines().rev().take(40).collect();
    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
}

fn io(what: &str) -> impl FnOnce(std::io::Error) -> SparkError {
    let what = what.to_owned();
    move |e| SparkError::Io(what, e)
}
