//! A model's training config (`configs/<model>.json`): what to train on, how, where, and
//! how its versions are judged and promoted. Its SHA-256 is part of a run's identity.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::dataset::DatasetName;
use crate::model::task::Task;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingConfig {
    /// The model's registry name (same rules as a dataset name).
    pub model: crate::name::ModelName,
    /// The dataset it trains on.
    pub dataset: DatasetName,
    /// The label column (the class, or the number, the model predicts).
    pub label: String,
    /// What the model predicts. Absent: `binary` when `positive` is given, else inferred
    /// from the label when the config is stored or trained (see [`Task::infer`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<Task>,
    /// A binary model's positive class (absent: the second of the two in sorted order).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub positive: Option<String>,
    /// Feature columns; absent means every column but the label and `exclude`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    #[serde(default)]
    pub algorithm: Algorithm,
    #[serde(default)]
    pub hyperparameters: Hyperparameters,
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// A custom training command (argv); absent means the reference trainer. Sluice
    /// substitutes `{data}` (the dataset version's folder), `{output}` (the folder the
    /// command must fill with `model.onnx`, `signature.json`, `metrics.json`),
    /// `{config}` (this file) and `{seed}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    #[serde(default)]
    pub compute: ComputeConfig,
    #[serde(default)]
    pub retrain: RetrainPolicy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluation: Option<EvaluationConfig>,
    #[serde(default)]
    pub promotion: PromotionPolicy,
    /// Log a sample of scored requests for drift analysis (off when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prediction_log: Option<PredictionLogConfig>,
    /// How production is watched (the defaults when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitoring: Option<MonitoringConfig>,
}

/// How a model's live traffic is judged against its training data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitoringConfig {
    /// A window with fewer logged rows says so instead of deciding.
    #[serde(default = "default_min_rows")]
    pub min_rows: u64,
    /// Normalised Wasserstein distance above which a numeric column drifted.
    #[serde(default = "default_drift_threshold")]
    pub numeric_threshold: f64,
    /// Jensen–Shannon distance above which a categorical column drifted.
    #[serde(default = "default_drift_threshold")]
    pub categorical_threshold: f64,
    /// Per-column thresholds that replace the two above (the prediction is `prediction`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub thresholds: BTreeMap<String, f64>,
    /// Azure ML dataset drift monitors (by name) whose `DatasetDriftDetected` events
    /// count as this model's drift.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub azureml_monitors: Vec<String>,
    /// A bound on a live metric (from ground-truth feedback) that production must keep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guard: Option<GuardConfig>,
    /// How far before a feedback batch its predictions may have been made: the monitor
    /// reads this many days of the prediction log to find them.
    /// (Left out of the stored config at its default, so configs written before it
    /// keep their identity.)
    #[serde(
        default = "default_lookback_days",
        skip_serializing_if = "is_default_lookback"
    )]
    pub feedback_lookback_days: u32,
}

/// The live-metric guard: production's labelled predictions must keep `metric` at least
/// (or, for an error metric, at most) the bound, once there are `min_labelled` of them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuardConfig {
    pub metric: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_least: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_most: Option<f64>,
    #[serde(default = "default_min_labelled")]
    pub min_labelled: u64,
    /// `auto`: a breach rolls production back (audited, with the report as its reason);
    /// `manual` (the default): it is reported and a person decides.
    #[serde(default)]
    pub rollback: RollbackPolicy,
}

impl GuardConfig {
    /// Whether `value` breaks the bound.
    pub fn breached(&self, value: f64) -> bool {
        match (self.at_least, self.at_most) {
            (Some(floor), _) => value.is_nan() || value < floor,
            (None, Some(ceiling)) => value.is_nan() || value > ceiling,
            (None, None) => false,
        }
    }

    /// The bound as people read it: `accuracy >= 0.8`.
    pub fn bound(&self) -> String {
        match (self.at_least, self.at_most) {
            (Some(floor), _) => format!("{} >= {floor}", self.metric),
            (None, Some(ceiling)) => format!("{} <= {ceiling}", self.metric),
            (None, None) => self.metric.clone(),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RollbackPolicy {
    #[default]
    Manual,
    Auto,
}

/// A few hundred labels put a rate's standard error near 2 percentage points.
fn default_min_labelled() -> u64 {
    500
}

fn default_lookback_days() -> u32 {
    30
}

fn is_default_lookback(days: &u32) -> bool {
    *days == default_lookback_days()
}

impl Default for MonitoringConfig {
    fn default() -> Self {
        Self {
            min_rows: default_min_rows(),
            numeric_threshold: default_drift_threshold(),
            categorical_threshold: default_drift_threshold(),
            thresholds: BTreeMap::new(),
            azureml_monitors: Vec::new(),
            guard: None,
            feedback_lookback_days: default_lookback_days(),
        }
    }
}

/// Both distances are biased upwards on small samples: on k buckets the Jensen–Shannon
/// distance of a sample from its own population is about √((k − 1) / 8n), so with
/// Adult's 21 buckets 300 rows read as 0.09 — at the 0.1 threshold; 1,000 rows keep it
/// near 0.05 (the normalised Wasserstein distance behaves alike).
fn default_min_rows() -> u64 {
    1_000
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PredictionLogConfig {
    /// Share of requests logged, 0 to 1 (chosen by request id, so it is reproducible).
    pub sample: f64,
}

fn default_drift_threshold() -> f64 {
    crate::monitoring::drift::DEFAULT_THRESHOLD
}

fn default_seed() -> u64 {
    42
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    #[default]
    LogisticRegression,
    /// The config's `command` trains (e.g. `examples/pytorch-trainer`) and names its
    /// algorithm in the `lineage.json` it writes.
    Custom,
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::LogisticRegression => "logistic_regression",
            Algorithm::Custom => "custom",
        }
    }
}

impl TrainingConfig {
    /// What the lineage calls the algorithm: the reference trainer (`logistic_regression`,
    /// the default) fits by task, so a multiclass model is `multinomial_logistic_regression`
    /// and a regression model `ridge_regression`.
    pub fn algorithm_name(&self, task: Task) -> &'static str {
        match (self.algorithm, task) {
            (Algorithm::LogisticRegression, Task::Multiclass) => "multinomial_logistic_regression",
            (Algorithm::LogisticRegression, Task::Regression) => "ridge_regression",
            (algorithm, _) => algorithm.as_str(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Hyperparameters {
    /// L2 penalty on the weights.
    pub l2: f64,
    /// Most categories one-hot encoded per column (the most frequent are kept).
    pub max_categories: usize,
    /// Share of rows held out (stratified) for the training metrics.
    pub holdout: f64,
}

impl Default for Hyperparameters {
    fn default() -> Self {
        Self {
            l2: 1.0,
            max_categories: 100,
            holdout: 0.2,
        }
    }
}

/// Where the job runs. Locally only `timeout_minutes` applies; on Azure ML the rest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ComputeConfig {
    /// Azure ML compute cluster name (a GPU cluster, min 0 nodes).
    pub target: String,
    /// VM size requested for the job (`resources.instanceType`).
    pub instance_type: String,
    /// Azure ML environment the job runs in (`environmentId`).
    pub environment: String,
    pub timeout_minutes: u64,
    /// Nodes the job runs on (`resources.instanceCount`); above one, a `distribution`
    /// says how the trainer's processes start. Absent (one) in older configs, and left
    /// out when one so their hash does not change.
    #[serde(skip_serializing_if = "is_one")]
    pub instance_count: u32,
    /// How a `command` trainer's processes are started across the nodes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distribution: Option<Distribution>,
}

fn is_one(n: &u32) -> bool {
    *n == 1
}

/// A distributed trainer's launcher, as Azure ML starts it on every node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Distribution {
    /// `torch.distributed` (Azure ML sets `MASTER_ADDR`, `RANK`, `WORLD_SIZE`…).
    Pytorch { process_count_per_instance: u32 },
    /// MPI (`mpirun` across the nodes; Horovod, DeepSpeed).
    Mpi { process_count_per_instance: u32 },
}

impl Default for ComputeConfig {
    fn default() -> Self {
        Self {
            target: "gpu-cluster".into(),
            instance_type: "Standard_NC4as_T4_v3".into(),
            environment: "azureml:sluice-trainer:1".into(),
            timeout_minutes: 60,
            instance_count: 1,
            distribution: None,
        }
    }
}

/// When a new version of the dataset retrains the model.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "on", rename_all = "snake_case", deny_unknown_fields)]
pub enum RetrainPolicy {
    /// Every new version.
    #[default]
    EveryVersion,
    /// Only when some column drifted beyond `threshold` (default 0.1) from the data the
    /// production model was trained on: normalised Wasserstein distance for numbers,
    /// Jensen–Shannon distance for categories (`monitoring::drift`).
    Drift {
        #[serde(default = "default_drift_threshold")]
        threshold: f64,
    },
    /// Only on request.
    Manual,
}

/// The pinned data the gate scores every candidate (and production) on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvaluationConfig {
    pub dataset: DatasetName,
    pub version: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PromotionPolicy {
    /// The metric that decides, one of the task's ([`Task::metrics`]); absent until the
    /// task is known, then the task's default (`roc_auc`, `log_loss`, `rmse`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    /// The candidate must beat production's metric by at least this much.
    pub min_improvement: f64,
    /// Other metrics may not get worse than production's by more than this.
    pub max_regression: f64,
    /// The first model of a name must reach this on `metric` (for an error metric, stay
    /// at or under it). Absent: 0.7 for a binary model (its ROC AUC), none otherwise,
    /// since what a good RMSE or log loss is depends on the data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub floor: Option<f64>,
    /// Staging → production without a person (`auto`) or after an approval (`manual`).
    pub approval: Approval,
}

impl Default for PromotionPolicy {
    fn default() -> Self {
        Self {
            metric: None,
            min_improvement: 0.0,
            max_regression: 0.01,
            floor: None,
            approval: Approval::Auto,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Approval {
    #[default]
    Auto,
    Manual,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid training config: {0}")]
    Invalid(String),
}

impl TrainingConfig {
    pub fn from_json(bytes: &[u8]) -> Result<Self, ConfigError> {
        let mut config: TrainingConfig =
            serde_json::from_slice(bytes).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        config.check()?;
        Ok(config)
    }

    /// The task, when the config says it (`task`, or `positive` for binary).
    pub fn task(&self) -> Option<Task> {
        self.task.or(self.positive.as_ref().map(|_| Task::Binary))
    }

    /// Sets the task found for the label (when the config did not name one) and checks
    /// the config against it: the promotion metric must be one of the task's.
    pub fn resolve_task(&mut self, inferred: Task) -> Result<Task, ConfigError> {
        if self.task().is_none() {
            self.task = Some(inferred);
        }
        self.check()?;
        Ok(self.task().unwrap_or(inferred))
    }

    /// The metric that decides promotion for a model of `task`.
    pub fn promotion_metric(&self, task: Task) -> &str {
        self.promotion
            .metric
            .as_deref()
            .unwrap_or(task.default_metric())
    }

    /// Checks the config and fills what its task decides (the default promotion metric).
    fn check(&mut self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        let h = &self.hyperparameters;
        if !(0.0..0.9).contains(&h.holdout) || h.holdout <= 0.0 {
            return bad(format!(
                "hyperparameters.holdout must be in (0, 0.9), got {}",
                h.holdout
            ));
        }
        if !(h.l2 >= 0.0 && h.l2.is_finite()) {
            return bad(format!("hyperparameters.l2 must be >= 0, got {}", h.l2));
        }
        if self.positive.is_some() && self.task.is_some_and(|t| t != Task::Binary) {
            return bad(format!(
                "positive: only a binary model has a positive class, and task is {:?}",
                self.task.map(Task::as_str).unwrap_or_default()
            ));
        }
        match (self.task(), &self.promotion.metric) {
            (Some(task), Some(metric)) if !task.metrics().contains(&metric.as_str()) => {
                return bad(format!(
                    "promotion.metric: {metric:?} does not fit a {task} model; use one of {}",
                    task.metrics().join(", ")
                ));
            }
            (Some(task), None) => self.promotion.metric = Some(task.default_metric().into()),
            (None, Some(metric))
                if !Task::ALL
                    .iter()
                    .any(|t| t.metrics().contains(&metric.as_str())) =>
            {
                return bad(format!(
                    "promotion.metric: {metric:?} is not a metric Sluice measures; binary: {}; multiclass: {}; regression: {}",
                    Task::Binary.metrics().join(", "),
                    Task::Multiclass.metrics().join(", "),
                    Task::Regression.metrics().join(", ")
                ));
            }
            _ => {}
        }
        if let Some(guard) = self.monitoring.as_ref().and_then(|m| m.guard.as_ref()) {
            let metric = guard.metric.as_str();
            let fits = match self.task() {
                Some(task) => task.metrics().contains(&metric),
                None => Task::ALL.iter().any(|t| t.metrics().contains(&metric)),
            };
            if !fits {
                return bad(format!(
                    "monitoring.guard.metric: {metric:?} is not a live metric of this model; use one of {}",
                    self.task().unwrap_or_default().metrics().join(", ")
                ));
            }
            let higher = crate::model::task::higher_is_better(metric);
            match (guard.at_least, guard.at_most) {
                (Some(_), None) if higher => {}
                (None, Some(_)) if !higher => {}
                (Some(_), Some(_)) | (None, None) => {
                    return bad("monitoring.guard: give one of at_least or at_most".into());
                }
                _ => {
                    return bad(format!(
                        "monitoring.guard: {metric} is better {}, so bound it with {}",
                        if higher { "higher" } else { "lower" },
                        if higher { "at_least" } else { "at_most" }
                    ));
                }
            }
            if guard.min_labelled == 0 {
                return bad("monitoring.guard.min_labelled must be at least 1".into());
            }
        }
        if self.task() == Some(Task::Binary) && self.promotion.floor.is_none() {
            self.promotion.floor = Some(0.7);
        }
        let compute = &self.compute;
        if compute.instance_count == 0 {
            return bad("compute.instance_count must be at least 1".into());
        }
        if let Some(
            Distribution::Pytorch {
                process_count_per_instance: 0,
            }
            | Distribution::Mpi {
                process_count_per_instance: 0,
            },
        ) = compute.distribution
        {
            return bad(
                "compute.distribution.process_count_per_instance must be at least 1".into(),
            );
        }
        // The reference trainer is one process: only a `command` can use many nodes.
        if (compute.instance_count > 1 || compute.distribution.is_some()) && self.command.is_none()
        {
            return bad(
                "compute.instance_count above 1 and compute.distribution need a `command` trainer that runs distributed".into(),
            );
        }
        if compute.instance_count > 1 && compute.distribution.is_none() {
            return bad(format!(
                "compute.instance_count is {}: say how the trainer starts on them with compute.distribution ({{\"type\": \"pytorch\"|\"mpi\", \"process_count_per_instance\": N}})",
                compute.instance_count
            ));
        }
        if self.algorithm == Algorithm::Custom && self.command.is_none() {
            return bad("algorithm \"custom\" needs a `command` that trains".into());
        }
        if self
            .features
            .as_ref()
            .is_some_and(|f| f.contains(&self.label))
        {
            return bad(format!("the label {:?} cannot be a feature", self.label));
        }
        Ok(())
    }

    /// The config's identity: SHA-256 of its canonical JSON (serde_json writes struct
    /// fields in declaration order, so equal configs hash equally).
    pub fn sha256(&self) -> String {
        let json = serde_json::to_vec(self).expect("a config serialises");
        hex::encode(Sha256::digest(json))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal() -> serde_json::Value {
        serde_json::json!({"model": "m", "dataset": "d", "label": "y", "positive": "1"})
    }

    /// A drift policy's threshold is optional; configs stored with one keep it.
    #[test]
    fn a_drift_policy_reads_with_and_without_its_threshold() {
        let mut config = minimal();
        config["retrain"] = serde_json::json!({"on": "drift"});
        let c = TrainingConfig::from_json(config.to_string().as_bytes()).unwrap();
        assert_eq!(c.retrain, RetrainPolicy::Drift { threshold: 0.1 });
        config["retrain"] = serde_json::json!({"on": "drift", "threshold": 0.25});
        let c = TrainingConfig::from_json(config.to_string().as_bytes()).unwrap();
        assert_eq!(c.retrain, RetrainPolicy::Drift { threshold: 0.25 });
    }

    #[test]
    fn many_nodes_need_a_distributed_command() {
        let mut config = minimal();
        config["compute"] = serde_json::json!({"instance_count": 2});
        let err = TrainingConfig::from_json(config.to_string().as_bytes()).unwrap_err();
        assert!(err.to_string().contains("need a `command`"), "{err}");
        config["command"] = serde_json::json!(["python", "train.py", "--data", "{data}"]);
        let err = TrainingConfig::from_json(config.to_string().as_bytes()).unwrap_err();
        assert!(err.to_string().contains("compute.distribution"), "{err}");
        config["compute"]["distribution"] =
            serde_json::json!({"type": "pytorch", "process_count_per_instance": 0});
        let err = TrainingConfig::from_json(config.to_string().as_bytes()).unwrap_err();
        assert!(err.to_string().contains("at least 1"), "{err}");
        config["compute"]["distribution"] =
            serde_json::json!({"type": "mpi", "process_count_per_instance": 4});
        let c = TrainingConfig::from_json(config.to_string().as_bytes()).unwrap();
        assert_eq!(c.compute.instance_count, 2);
        assert_eq!(
            c.compute.distribution,
            Some(Distribution::Mpi {
                process_count_per_instance: 4
            })
        );
        config["compute"]["distribution"] = serde_json::json!({"type": "horovod"});
        assert!(TrainingConfig::from_json(config.to_string().as_bytes()).is_err());
    }

    /// One node is what older configs meant: they read, and hash as they did.
    #[test]
    fn a_one_node_config_hashes_as_before() {
        let c = TrainingConfig::from_json(minimal().to_string().as_bytes()).unwrap();
        let json = serde_json::to_value(&c).unwrap();
        assert!(json["compute"].get("instance_count").is_none());
        assert!(json["compute"].get("distribution").is_none());
    }

    #[test]
    fn defaults_fill_a_minimal_config() {
        let c = TrainingConfig::from_json(minimal().to_string().as_bytes()).unwrap();
        assert_eq!(c.seed, 42);
        assert_eq!(c.retrain, RetrainPolicy::EveryVersion);
        assert_eq!(c.promotion.metric.as_deref(), Some("roc_auc"));
        assert_eq!(c.task(), Some(Task::Binary));
        assert_eq!(
            c.task, None,
            "a binary config written before tasks hashes as it did"
        );
        assert_eq!(c.sha256().len(), 64);
    }

    #[test]
    fn changing_a_hyperparameter_changes_the_identity() {
        let a = TrainingConfig::from_json(minimal().to_string().as_bytes()).unwrap();
        let mut b = a.clone();
        b.hyperparameters.l2 = 2.0;
        assert_ne!(a.sha256(), b.sha256());
    }

    #[test]
    fn bad_configs_say_what_is_wrong() {
        let mut v = minimal();
        v["promotion"] = serde_json::json!({"metric": "f1"});
        let e = TrainingConfig::from_json(v.to_string().as_bytes()).unwrap_err();
        assert!(e.to_string().contains("promotion.metric"), "{e}");
        let mut v = minimal();
        v["features"] = serde_json::json!(["y"]);
        assert!(TrainingConfig::from_json(v.to_string().as_bytes()).is_err());
        let mut v = minimal();
        v["surprise"] = serde_json::json!(1);
        assert!(TrainingConfig::from_json(v.to_string().as_bytes()).is_err());
        // A metric must fit the task, and the message names the field and the choices.
        let regression = serde_json::json!({"model": "m", "dataset": "d", "label": "y",
            "task": "regression", "promotion": {"metric": "roc_auc"}});
        let e = TrainingConfig::from_json(regression.to_string().as_bytes()).unwrap_err();
        assert!(
            e.to_string().contains("promotion.metric") && e.to_string().contains("rmse, mae, r2"),
            "{e}"
        );
        let mut v = minimal();
        v["task"] = serde_json::json!("multiclass");
        let e = TrainingConfig::from_json(v.to_string().as_bytes()).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("invalid training config: positive"),
            "{e}"
        );
    }

    #[test]
    fn a_config_without_a_task_gets_one_when_its_label_is_known() {
        let open = serde_json::json!({"model": "m", "dataset": "d", "label": "y"});
        let mut c = TrainingConfig::from_json(open.to_string().as_bytes()).unwrap();
        assert_eq!((c.task(), c.promotion.metric.as_deref()), (None, None));
        assert_eq!(c.resolve_task(Task::Regression).unwrap(), Task::Regression);
        assert_eq!(c.promotion.metric.as_deref(), Some("rmse"));
        let mut told = open.clone();
        told["promotion"] = serde_json::json!({"metric": "roc_auc"});
        let mut c = TrainingConfig::from_json(told.to_string().as_bytes()).unwrap();
        assert!(c.resolve_task(Task::Regression).is_err());
    }

    #[test]
    fn the_adult_config_keeps_its_identity() {
        // The hash of configs/adult-income.json (then models/adult-income.json) as every release before tasks computed it:
        // runs of stored configs keep their ids.
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../configs/adult-income.json");
        let c = TrainingConfig::from_json(&std::fs::read(path).unwrap()).unwrap();
        assert_eq!(
            c.sha256(),
            "d94eb98d14bf60c603bf823d23841fb306164210fb514ca78b1399c3b83dceb2"
        );
    }
}
