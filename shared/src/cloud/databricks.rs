//! An Azure Databricks workspace through the Jobs API 2.2: one-time runs
//! (`runs/submit`), their state (`runs/get`) and cancellation (`runs/cancel`).

use std::sync::Arc;

use serde_json::{Value, json};

use super::{Client, CloudError, Tokens};

/// A workspace's Jobs API, authenticated with Entra ID tokens for Azure Databricks.
#[derive(Clone)]
pub struct Databricks {
    /// `https://adb-<id>.<n>.azuredatabricks.net` (tests point it elsewhere).
    pub host: String,
    client: Client,
}

/// Where a run's task runs.
#[derive(Clone, Debug)]
pub enum Cluster {
    /// A cluster that is already there (`existing_cluster_id`).
    Existing(String),
    /// A job cluster made for the run and gone after it (`new_cluster`), autoscaling.
    New {
        spark_version: String,
        node_type_id: String,
        min_workers: u32,
        max_workers: u32,
    },
    /// A job cluster of one node, for work that runs on the driver alone (a trainer).
    SingleNode {
        spark_version: String,
        node_type_id: String,
    },
}

impl Cluster {
    /// Sets `task`'s cluster; a new one is tagged `sluice: <purpose>` (for costs).
    pub fn place(&self, task: &mut Value, purpose: &str) {
        match self {
            Cluster::Existing(id) => task["existing_cluster_id"] = json!(id),
            Cluster::New {
                spark_version,
                node_type_id,
                min_workers,
                max_workers,
            } => {
                task["new_cluster"] = json!({
                    "spark_version": spark_version,
                    "node_type_id": node_type_id,
                    "autoscale": {"min_workers": min_workers, "max_workers": max_workers.max(min_workers)},
                    "custom_tags": {"sluice": purpose},
                })
            }
            // Databricks' documented single-node shape: no workers, Spark local on the
            // driver, and the tag its UI and policies recognise.
            Cluster::SingleNode {
                spark_version,
                node_type_id,
            } => {
                task["new_cluster"] = json!({
                    "spark_version": spark_version,
                    "node_type_id": node_type_id,
                    "num_workers": 0,
                    "spark_conf": {
                        "spark.databricks.cluster.profile": "singleNode",
                        "spark.master": "local[*]",
                    },
                    "custom_tags": {"ResourceClass": "SingleNode", "sluice": purpose},
                })
            }
        }
    }
}

/// A run's phase, from its `status` (Jobs 2.2) or, for older answers, its `state`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunPhase {
    Waiting,
    Running,
    Succeeded,
    /// Ended without success: why, in Databricks' words.
    Failed(String),
}

impl Databricks {
    pub fn new(host: String, tokens: Arc<dyn Tokens>) -> Self {
        Self {
            host,
            client: Client::new("Azure Databricks", tokens),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/2.2/jobs/{path}", self.host.trim_end_matches('/'))
    }

    /// Submits a one-time run and returns its `run_id`. With an `idempotency_token` in
    /// `body`, a second submission returns the first run's id.
    pub async fn submit_run(&self, body: &Value) -> Result<i64, CloudError> {
        let response = self
            .client
            .send(self.client.http().post(self.url("runs/submit")).json(body))
            .await?;
        if !response.status().is_success() {
            return Err(self.client.failure(response, "runs/submit").await);
        }
        let answer = self.client.json(response).await?;
        answer["run_id"].as_i64().ok_or_else(|| {
            CloudError::Rejected(format!("runs/submit answered without a run_id: {answer}"))
        })
    }

    /// A run as `runs/get` describes it.
    pub async fn get_run(&self, run_id: i64) -> Result<Value, CloudError> {
        let url = format!("{}?run_id={run_id}", self.url("runs/get"));
        let request = self.client.http().get(url);
        let response = self.client.send(request).await?;
        if !response.status().is_success() {
            return Err(self
                .client
                .failure(response, &format!("run {run_id}"))
                .await);
        }
        self.client.json(response).await
    }

    pub async fn cancel_run(&self, run_id: i64) -> Result<(), CloudError> {
        let request = self
            .client
            .http()
            .post(self.url("runs/cancel"))
            .json(&json!({"run_id": run_id}));
        let response = self.client.send(request).await?;
        if !response.status().is_success() {
            return Err(self
                .client
                .failure(response, &format!("run {run_id}"))
                .await);
        }
        Ok(())
    }
}

/// A run's phase from a `runs/get` answer. Jobs 2.2 answers carry `status` (its
/// `state` and, once it ended, `termination_details`); the older `state`
/// (`life_cycle_state`, `result_state`) is read when `status` is absent.
pub fn run_phase(run: &Value) -> RunPhase {
    if let Some(state) = run.pointer("/status/state").and_then(Value::as_str) {
        return match state {
            "TERMINATED" => {
                let details = &run["status"]["termination_details"];
                match details["code"].as_str() {
                    Some("SUCCESS") => RunPhase::Succeeded,
                    code => RunPhase::Failed(format!(
                        "{} ({}): {}",
                        code.unwrap_or("no termination code"),
                        details["type"].as_str().unwrap_or("no type"),
                        details["message"].as_str().unwrap_or("no message")
                    )),
                }
            }
            "RUNNING" | "TERMINATING" => RunPhase::Running,
            // BLOCKED, PENDING, QUEUED, WAITING and states added later: not yet over.
            _ => RunPhase::Waiting,
        };
    }
    let state = &run["state"];
    let message = state["state_message"].as_str().unwrap_or_default();
    match state["life_cycle_state"].as_str().unwrap_or_default() {
        "TERMINATED" => match state["result_state"].as_str() {
            Some("SUCCESS") => RunPhase::Succeeded,
            result => RunPhase::Failed(format!(
                "{}: {message}",
                result.unwrap_or("no result state")
            )),
        },
        "SKIPPED" | "INTERNAL_ERROR" => RunPhase::Failed(format!(
            "{}: {message}",
            state["life_cycle_state"].as_str().unwrap_or_default()
        )),
        "RUNNING" | "TERMINATING" => RunPhase::Running,
        _ => RunPhase::Waiting,
    }
}
