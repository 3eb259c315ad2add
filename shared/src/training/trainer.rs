//! The reference trainer (`sluice train`): a dataset version's folder in, a model
//! folder out (`model.onnx`, `signature.json`, `metrics.json`, `lineage.json`, and
//! `holdout.json`) — the same contract any custom training command must meet
//! (`holdout.json` is optional for them, see [`Holdout`]).

use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::dataset::Manifest;
use crate::dataset::contract::ColumnType;
use crate::model::Predictions;
use crate::model::table::{Table, TableError, Values};
use crate::model::task::Task;

use super::config::{Hyperparameters, TrainingConfig};
use super::features::{FeatureError, FeaturePlan};
use super::linear::{self, LinearModel};
use super::logistic::{FitError, Logistic};
use super::metrics::{self, Metrics};

/// The files a training run must leave in its output folder.
pub const MODEL_FILE: &str = "model.onnx";
pub const SIGNATURE_FILE: &str = "signature.json";
pub const METRICS_FILE: &str = "metrics.json";
pub const LINEAGE_FILE: &str = "lineage.json";
pub const HOLDOUT_FILE: &str = "holdout.json";

/// The rows a run held out from training: positions (0-based, ascending) in its dataset
/// version's data. Kept with the run and the model version, so the evaluation gate can
/// score a model whose config pins no evaluation dataset on rows it did not learn from,
/// and score production on the same rows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Holdout {
    pub rows: Vec<u64>,
}

impl Holdout {
    /// Identifies the set of rows, so two versions' holdouts compare without reading them.
    pub fn sha256(&self) -> String {
        let mut digest = Sha256::new();
        for row in &self.rows {
            digest.update(row.to_le_bytes());
        }
        hex::encode(digest.finalize())
    }

    /// The rows as indices into a table of `len` rows, or which one is out of range.
    pub fn indices(&self, len: usize) -> Result<Vec<usize>, String> {
        self.rows
            .iter()
            .map(|&r| {
                usize::try_from(r)
                    .ok()
                    .filter(|&r| r < len)
                    .ok_or_else(|| format!("holdout row {r} is not in the data ({len} rows)"))
            })
            .collect()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("reading the dataset version: {0}")]
    Io(#[from] std::io::Error),
    #[error("the dataset manifest is unreadable: {0}")]
    Manifest(String),
    #[error(transparent)]
    Table(#[from] TableError),
    #[error(transparent)]
    Feature(#[from] FeatureError),
    #[error(transparent)]
    Fit(#[from] FitError),
    #[error("the label column {column:?} {problem}")]
    Label { column: String, problem: String },
    #[error(transparent)]
    Config(#[from] super::config::ConfigError),
    #[error(
        "the config's algorithm is {0:?}: its own command trains it, not the reference trainer"
    )]
    NotReference(&'static str),
}

/// What the trainer knows of where its model came from; the registry adds the run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainingLineage {
    pub dataset: String,
    pub dataset_version: u32,
    pub dataset_sha256: String,
    pub algorithm: String,
    /// What the model predicts (absent in lineage written before tasks: binary).
    #[serde(default)]
    pub task: Task,
    pub hyperparameters: Hyperparameters,
    pub seed: u64,
    pub config_sha256: String,
    pub code_version: String,
    pub features: Vec<String>,
    pub train_rows: u64,
    pub holdout_rows: u64,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
}

#[derive(Debug)]
pub struct TrainReport {
    pub metrics: Metrics,
    pub model_sha256: String,
    pub lineage: TrainingLineage,
    /// The holdout rows (raw) and the trainer's own predictions for them (class
    /// probabilities, or values), so the exported model can be checked against the
    /// trainer.
    pub holdout: Table,
    pub holdout_predictions: Predictions,
}

/// Scores the holdout with the exported `model.onnx` in ONNX Runtime and returns the
/// largest difference from the trainer's own predictions.
pub fn verify_export(
    runtime: &crate::model::Runtime,
    out_dir: &Path,
    report: &TrainReport,
) -> Result<f64, VerifyError> {
    let onnx = std::fs::read(out_dir.join(MODEL_FILE))?;
    let signature = serde_json::from_slice(&std::fs::read(out_dir.join(SIGNATURE_FILE))?)
        .map_err(|e| VerifyError::Signature(e.to_string()))?;
    let session = crate::model::ModelSession::new(runtime, &onnx, signature)?;
    let predicted = session.predict(&report.holdout)?;
    Ok(predicted.max_difference(&report.holdout_predictions))
}

/// Scores `data` (a dataset version's folder; only the `holdout` rows when given) with
/// `session` and measures it against the data's labels: what the evaluation gate
/// compares models on.
pub fn evaluate(
    session: &crate::model::ModelSession,
    data_dir: &Path,
    holdout: Option<&Holdout>,
) -> Result<Metrics, VerifyError> {
    let signature = session.signature();
    let manifest: Manifest =
        serde_json::from_slice(&std::fs::read(data_dir.join("manifest.json"))?)
            .map_err(|e| VerifyError::Signature(e.to_string()))?;
    let kind = |name: &str| {
        manifest
            .schema
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.kind)
            .ok_or_else(|| VerifyError::Data(format!("the evaluation data has no column {name:?}")))
    };
    let mut columns = Vec::new();
    for input in &signature.inputs {
        columns.push((input.name.clone(), kind(&input.name)?));
    }
    columns.push((signature.label.clone(), kind(&signature.label)?));
    let mut table = Table::read_parquet(&data_dir.join("data.parquet"), &columns)
        .map_err(|e| VerifyError::Data(e.to_string()))?;
    if let Some(holdout) = holdout {
        table = table.take(&holdout.indices(table.rows()).map_err(VerifyError::Data)?);
    }
    let predicted = session.predict(&table)?;
    let label = &signature.label;
    let data_error = |e: TrainError| VerifyError::Data(e.to_string());
    if signature.task == Task::Regression {
        let y = label_values(&table, label).map_err(data_error)?;
        return Ok(metrics::regression(&predicted.values, &y));
    }
    let kind = columns.last().map_or(ColumnType::String, |(_, k)| *k);
    let names = label_names(&table, label, kind).map_err(data_error)?;
    let classes = &signature.classes;
    let mut y = Vec::with_capacity(names.len());
    for name in &names {
        y.push(classes.iter().position(|c| c == name).ok_or_else(|| {
            VerifyError::Data(format!(
                "the evaluation data's label {name:?} is not one of the model's classes {classes:?}"
            ))
        })?);
    }
    Ok(match signature.task {
        Task::Binary => {
            let pair: [String; 2] = classes.clone().try_into().map_err(|_| {
                VerifyError::Signature(format!("a binary model needs two classes, not {classes:?}"))
            })?;
            let y: Vec<f64> = y.iter().map(|&c| c as f64).collect();
            metrics::binary(&predicted.positive(), &y, &pair)
        }
        _ => metrics::multiclass(&predicted.probabilities, &y, classes),
    })
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("{0}")]
    Data(String),
    #[error("reading the model folder: {0}")]
    Io(#[from] std::io::Error),
    #[error("signature.json is unreadable: {0}")]
    Signature(String),
    #[error(transparent)]
    Inference(#[from] crate::model::session::InferenceError),
}

/// The code that trained a model: the binary's version and, when the build knew it,
/// its git commit.
pub fn code_version() -> String {
    match option_env!("SLUICE_GIT_COMMIT") {
        Some(commit) => format!("sluice {} ({commit})", env!("CARGO_PKG_VERSION")),
        None => format!("sluice {}", env!("CARGO_PKG_VERSION")),
    }
}

/// Trains on the dataset version in `data_dir` (`manifest.json` + `data.parquet`) and
/// writes the model folder `out_dir`. The task is the config's, or else inferred from
/// the label's type and distinct values in the data (see [`Task::infer`]).
pub fn train(
    config: &TrainingConfig,
    data_dir: &Path,
    out_dir: &Path,
) -> Result<TrainReport, TrainError> {
    if config.algorithm != crate::training::config::Algorithm::LogisticRegression {
        return Err(TrainError::NotReference(config.algorithm.as_str()));
    }
    let started_at = Utc::now();
    let manifest: Manifest =
        serde_json::from_slice(&std::fs::read(data_dir.join("manifest.json"))?)
            .map_err(|e| TrainError::Manifest(e.to_string()))?;
    let kind_of = |name: &str| {
        manifest
            .schema
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.kind)
    };
    let label_kind = kind_of(&config.label).ok_or_else(|| TrainError::Label {
        column: config.label.clone(),
        problem: "is not in the dataset".into(),
    })?;
    let task = match config.task() {
        Some(task) => task,
        None => {
            let distinct = manifest
                .profile
                .iter()
                .find(|p| p.name == config.label)
                .map(|p| p.distinct);
            Task::infer(label_kind, None, distinct).map_err(|problem| TrainError::Label {
                column: config.label.clone(),
                problem,
            })?
        }
    };
    // A config whose metric does not fit the task found is refused before any work.
    let mut resolved = config.clone();
    resolved.resolve_task(task)?;
    let features: Vec<String> = match &config.features {
        Some(f) => f.clone(),
        None => manifest
            .schema
            .iter()
            .map(|f| f.name.clone())
            .filter(|n| *n != config.label && !config.exclude.contains(n))
            .collect(),
    };
    let mut inputs = Vec::with_capacity(features.len());
    for name in &features {
        let kind = kind_of(name).ok_or_else(|| FeatureError::Missing(name.clone()))?;
        inputs.push((name.clone(), kind));
    }
    let mut columns = inputs.clone();
    columns.push((config.label.clone(), label_kind));
    let table = Table::read_parquet(&data_dir.join("data.parquet"), &columns)?;

    let target = Target::read(
        &table,
        &config.label,
        label_kind,
        task,
        config.positive.as_deref(),
    )?;
    let (train_rows, holdout_rows) = stratified_split(
        &target.strata(),
        config.hyperparameters.holdout,
        config.seed,
    );
    let train_table = table.take(&train_rows);
    let holdout_table = table.take(&holdout_rows);

    let h = &config.hyperparameters;
    let plan = FeaturePlan::fit(&train_table, &inputs, h.max_categories)?;
    let width = plan.width();
    let x_train = plan.encode(&train_table)?;
    let x_holdout = plan.encode(&holdout_table)?;
    let holdout_x = |r: usize| &x_holdout[r * width..(r + 1) * width];
    let fitting = std::time::Instant::now();
    let (model, metrics, holdout_predictions) = match &target {
        Target::Classes { y, classes } if task == Task::Binary => {
            let y_train: Vec<f64> = train_rows.iter().map(|&i| y[i] as f64).collect();
            let y_holdout: Vec<f64> = holdout_rows.iter().map(|&i| y[i] as f64).collect();
            let fitted = Logistic::fit(&x_train, width, &y_train, h.l2)?;
            let p: Vec<f64> = (0..holdout_rows.len())
                .map(|r| fitted.predict(holdout_x(r)))
                .collect();
            let pair = [classes[0].clone(), classes[1].clone()];
            let metrics = metrics::binary(&p, &y_holdout, &pair);
            let predictions = Predictions {
                probabilities: p.iter().map(|&q| vec![1.0 - q, q]).collect(),
                labels: p.iter().map(|&q| usize::from(q > 0.5)).collect(),
                values: vec![],
            };
            (LinearModel::from(fitted), metrics, predictions)
        }
        Target::Classes { y, classes } => {
            let y_train: Vec<usize> = train_rows.iter().map(|&i| y[i]).collect();
            let y_holdout: Vec<usize> = holdout_rows.iter().map(|&i| y[i]).collect();
            let fitted = linear::fit_softmax(&x_train, width, &y_train, classes.len(), h.l2)?;
            let p: Vec<Vec<f64>> = (0..holdout_rows.len())
                .map(|r| {
                    let mut z = fitted.scores(holdout_x(r));
                    linear::softmax(&mut z);
                    z
                })
                .collect();
            let metrics = metrics::multiclass(&p, &y_holdout, classes);
            let predictions = Predictions {
                labels: p.iter().map(|q| metrics::argmax(q)).collect(),
                probabilities: p,
                values: vec![],
            };
            (fitted, metrics, predictions)
        }
        Target::Values(y) => {
            let y_train: Vec<f64> = train_rows.iter().map(|&i| y[i]).collect();
            let y_holdout: Vec<f64> = holdout_rows.iter().map(|&i| y[i]).collect();
            let fitted = linear::fit_ridge(&x_train, width, &y_train, h.l2)?;
            let values: Vec<f64> = (0..holdout_rows.len())
                .map(|r| fitted.scores(holdout_x(r))[0])
                .collect();
            let metrics = metrics::regression(&values, &y_holdout);
            let predictions = Predictions {
                values,
                ..Predictions::default()
            };
            (fitted, metrics, predictions)
        }
    };
    tracing::info!(
        task = %task,
        features = width,
        rows = train_rows.len(),
        iterations = model.iterations,
        seconds = fitting.elapsed().as_secs_f64(),
        "fitted and scored the holdout"
    );
    let classes = match &target {
        Target::Classes { classes, .. } => classes.clone(),
        Target::Values(_) => vec![],
    };

    // Metadata identifies the model's inputs; no clock, so the bytes are reproducible.
    let onnx = plan.to_onnx(
        &model,
        task,
        config.model.as_str(),
        &[
            ("sluice.dataset", manifest.dataset.to_string()),
            ("sluice.dataset_version", manifest.version.to_string()),
            ("sluice.dataset_sha256", manifest.content_sha256.clone()),
            ("sluice.algorithm", config.algorithm_name(task).to_owned()),
            ("sluice.config_sha256", config.sha256()),
            ("sluice.seed", config.seed.to_string()),
        ],
    );
    std::fs::create_dir_all(out_dir)?;
    std::fs::write(out_dir.join(MODEL_FILE), &onnx)?;
    std::fs::write(
        out_dir.join(SIGNATURE_FILE),
        pretty(&plan.signature(task, &config.label, &classes)),
    )?;
    std::fs::write(out_dir.join(METRICS_FILE), pretty(&metrics))?;
    let lineage = TrainingLineage {
        dataset: manifest.dataset.to_string(),
        dataset_version: manifest.version,
        dataset_sha256: manifest.content_sha256.clone(),
        algorithm: config.algorithm_name(task).to_owned(),
        task,
        hyperparameters: h.clone(),
        seed: config.seed,
        config_sha256: config.sha256(),
        code_version: code_version(),
        features,
        train_rows: train_rows.len() as u64,
        holdout_rows: holdout_rows.len() as u64,
        started_at,
        finished_at: Utc::now(),
    };
    std::fs::write(out_dir.join(LINEAGE_FILE), pretty(&lineage))?;
    let mut kept: Vec<u64> = holdout_rows.iter().map(|&r| r as u64).collect();
    kept.sort_unstable();
    std::fs::write(
        out_dir.join(HOLDOUT_FILE),
        serde_json::to_vec(&Holdout { rows: kept }).expect("holdout serialises"),
    )?;
    Ok(TrainReport {
        metrics,
        model_sha256: hex::encode(Sha256::digest(&onnx)),
        lineage,
        holdout: holdout_table,
        holdout_predictions,
    })
}

fn pretty<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec_pretty(value).expect("model files serialise")
}

/// What a model learns to predict, read from the label column.
#[derive(Debug, PartialEq)]
pub enum Target {
    /// Class indices into `classes` (binary: `[negative, positive]`).
    Classes {
        y: Vec<usize>,
        classes: Vec<String>,
    },
    Values(Vec<f64>),
}

impl Target {
    /// Reads the label column for `task`. Classes are the label's values as text
    /// (numbers as written, booleans `false`/`true`), ordered by value; a binary model's
    /// positive class is `positive`, or else the second of the two. Rows with a null
    /// label cannot be learned from and are refused rather than guessed.
    pub fn read(
        table: &Table,
        label: &str,
        kind: ColumnType,
        task: Task,
        positive: Option<&str>,
    ) -> Result<Target, TrainError> {
        let fail = |problem: String| TrainError::Label {
            column: label.to_owned(),
            problem,
        };
        if task == Task::Regression {
            if !kind.is_numeric() {
                return Err(fail(format!(
                    "is {kind:?}, and a regression model predicts a number"
                )));
            }
            return Ok(Target::Values(label_values(table, label)?));
        }
        let names = label_names(table, label, kind)?;
        let mut classes: Vec<String> = names.clone();
        classes.sort();
        classes.dedup();
        if kind.is_numeric() {
            classes.sort_by(|a, b| {
                let (x, y) = (a.parse::<f64>(), b.parse::<f64>());
                x.unwrap_or(f64::NAN).total_cmp(&y.unwrap_or(f64::NAN))
            });
        }
        match classes.len() {
            0 => return Err(fail("holds no rows".into())),
            1 => return Err(fail(format!("holds only {:?}", classes[0]))),
            2 => {}
            n if task == Task::Binary => {
                return Err(fail(format!(
                    "has {n} classes ({}); a binary model needs two: set \"task\": \"multiclass\"",
                    classes.join(", ")
                )));
            }
            _ => {}
        }
        if task == Task::Binary
            && let Some(positive) = positive
        {
            let at = classes.iter().position(|c| c == positive).ok_or_else(|| {
                fail(format!(
                    "holds {:?} and {:?}, not the positive class {positive:?}",
                    classes[0], classes[1]
                ))
            })?;
            if at == 0 {
                classes.swap(0, 1);
            }
        }
        let y = names
            .iter()
            .map(|n| classes.iter().position(|c| c == n).unwrap_or_default())
            .collect();
        Ok(Target::Classes { y, classes })
    }

    /// The class of each row for a stratified split (one stratum for values).
    fn strata(&self) -> Vec<usize> {
        match self {
            Target::Classes { y, .. } => y.clone(),
            Target::Values(v) => vec![0; v.len()],
        }
    }
}

/// The label column as class names: text as it is, numbers as written (`3`, `2.5`),
/// booleans as `false`/`true`. A null label is an error naming its row.
pub fn label_names(
    table: &Table,
    label: &str,
    kind: ColumnType,
) -> Result<Vec<String>, TrainError> {
    let fail = |problem: String| TrainError::Label {
        column: label.to_owned(),
        problem,
    };
    let null = |row: usize| fail(format!("is null in row {}", row + 1));
    match table.column(label) {
        Some(Values::Text(values)) => values
            .iter()
            .enumerate()
            .map(|(r, v)| v.clone().ok_or_else(|| null(r)))
            .collect(),
        Some(Values::Numbers(values)) => values
            .iter()
            .enumerate()
            .map(|(r, &x)| match x {
                x if x.is_nan() => Err(null(r)),
                x if kind == ColumnType::Boolean => Ok((x != 0.0).to_string()),
                x => Ok(x.to_string()),
            })
            .collect(),
        None => Err(fail("is not in the data".into())),
    }
}

/// The label column as numbers (a regression target). A null is an error naming its row.
pub fn label_values(table: &Table, label: &str) -> Result<Vec<f64>, TrainError> {
    let fail = |problem: String| TrainError::Label {
        column: label.to_owned(),
        problem,
    };
    let Some(Values::Numbers(values)) = table.column(label) else {
        return Err(fail("must be a numeric column".into()));
    };
    if let Some(row) = values.iter().position(|x| x.is_nan()) {
        return Err(fail(format!("is null in row {}", row + 1)));
    }
    Ok(values.clone())
}

/// Row indices for training and holdout: each stratum (class) shuffled with `seed` and
/// split in the same proportion, both lists in ascending order.
pub fn stratified_split(strata: &[usize], holdout: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut train = Vec::new();
    let mut test = Vec::new();
    let mut rng = SplitMix64(seed);
    let count = strata.iter().max().map_or(0, |m| m + 1);
    for class in 0..count {
        let mut rows: Vec<usize> = (0..strata.len()).filter(|&i| strata[i] == class).collect();
        for i in (1..rows.len()).rev() {
            let j = (rng.next() % (i as u64 + 1)) as usize;
            rows.swap(i, j);
        }
        let cut = (rows.len() as f64 * holdout).round() as usize;
        test.extend_from_slice(&rows[..cut]);
        train.extend_from_slice(&rows[cut..]);
    }
    train.sort_unstable();
    test.sort_unstable();
    (train, test)
}

/// A tiny seeded generator, part of the reproducibility contract: its sequence never
/// changes with a dependency upgrade.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_split_is_stratified_and_seeded() {
        let y: Vec<usize> = (0..1000).map(|i| usize::from(i % 4 == 0)).collect();
        let (train, test) = stratified_split(&y, 0.2, 7);
        assert_eq!(train.len() + test.len(), 1000);
        assert_eq!(test.len(), 200);
        assert_eq!(test.iter().filter(|&&i| y[i] == 1).count(), 50);
        assert_eq!(stratified_split(&y, 0.2, 7), (train.clone(), test.clone()));
        assert_ne!(stratified_split(&y, 0.2, 8).1, test);
        let three: Vec<usize> = (0..300).map(|i| i % 3).collect();
        let (_, test) = stratified_split(&three, 0.2, 7);
        assert_eq!(test.iter().filter(|&&i| three[i] == 2).count(), 20);
    }

    fn text(v: &[Option<&str>]) -> Table {
        Table {
            columns: vec![(
                "y".into(),
                Values::Text(v.iter().map(|s| s.map(Into::into)).collect()),
            )],
        }
    }

    fn classes(
        t: &Table,
        kind: ColumnType,
        task: Task,
        positive: Option<&str>,
    ) -> Result<Target, TrainError> {
        Target::read(t, "y", kind, task, positive)
    }

    #[test]
    fn binary_labels_must_be_two_and_present() {
        let t = text(&[Some("a"), Some("b"), Some("a")]);
        let target = classes(&t, ColumnType::String, Task::Binary, Some("a")).unwrap();
        assert_eq!(
            target,
            Target::Classes {
                y: vec![1, 0, 1],
                classes: vec!["b".into(), "a".into()]
            }
        );
        let sorted = classes(&t, ColumnType::String, Task::Binary, None).unwrap();
        assert!(matches!(sorted, Target::Classes { classes, .. } if classes == ["a", "b"]));
        let three = text(&[Some("a"), Some("b"), Some("c")]);
        let e = classes(&three, ColumnType::String, Task::Binary, Some("b")).unwrap_err();
        assert!(e.to_string().contains("multiclass"), "{e}");
        let e = classes(
            &text(&[Some("a"), None]),
            ColumnType::String,
            Task::Binary,
            None,
        );
        assert!(e.unwrap_err().to_string().contains("row 2"));
        assert!(classes(&text(&[Some("b")]), ColumnType::String, Task::Binary, None).is_err());
        let e = classes(&t, ColumnType::String, Task::Binary, Some("z")).unwrap_err();
        assert!(e.to_string().contains("\"z\""), "{e}");
    }

    #[test]
    fn integer_and_boolean_labels_become_classes_in_numeric_order() {
        let numbers = |xs: &[f64]| Table {
            columns: vec![("y".into(), Values::Numbers(xs.to_vec()))],
        };
        let t = numbers(&[10.0, 2.0, 1.0, 2.0]);
        let target = classes(&t, ColumnType::Integer, Task::Multiclass, None).unwrap();
        assert_eq!(
            target,
            Target::Classes {
                y: vec![2, 1, 0, 1],
                classes: vec!["1".into(), "2".into(), "10".into()]
            }
        );
        let flags = numbers(&[1.0, 0.0]);
        let target = classes(&flags, ColumnType::Boolean, Task::Binary, None).unwrap();
        assert!(matches!(target, Target::Classes { classes, .. } if classes == ["false", "true"]));
        let values = classes(&t, ColumnType::Integer, Task::Regression, None).unwrap();
        assert_eq!(values, Target::Values(vec![10.0, 2.0, 1.0, 2.0]));
        let e = classes(
            &text(&[Some("a")]),
            ColumnType::String,
            Task::Regression,
            None,
        );
        assert!(e.unwrap_err().to_string().contains("predicts a number"));
    }
}
