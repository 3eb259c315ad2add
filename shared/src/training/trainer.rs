//! The reference trainer (`sluice train`): a dataset version's folder in, a model
//! folder out (`model.onnx`, `signature.json`, `metrics.json`, `lineage.json`) — the
//! same contract any custom training command must meet.

use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::dataset::Manifest;
use crate::model::table::{Table, TableError, Values};

use super::config::{Hyperparameters, TrainingConfig};
use super::features::{FeatureError, FeaturePlan};
use super::logistic::{FitError, Logistic};
use super::metrics::{self, Metrics};

/// The files a training run must leave in its output folder.
pub const MODEL_FILE: &str = "model.onnx";
pub const SIGNATURE_FILE: &str = "signature.json";
pub const METRICS_FILE: &str = "metrics.json";
pub const LINEAGE_FILE: &str = "lineage.json";

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
    /// The holdout rows (raw) and the trainer's own positive-class probabilities for
    /// them, so the exported model can be checked against the trainer.
    pub holdout: Table,
    pub holdout_predictions: Vec<f64>,
}

/// Scores the holdout with the exported `model.onnx` in ONNX Runtime and returns the
/// largest difference from the trainer's own probabilities.
pub fn verify_export(
    runtime: &crate::model::Runtime,
    out_dir: &Path,
    report: &TrainReport,
) -> Result<f64, VerifyError> {
    let onnx = std::fs::read(out_dir.join(MODEL_FILE))?;
    let signature = serde_json::from_slice(&std::fs::read(out_dir.join(SIGNATURE_FILE))?)
        .map_err(|e| VerifyError::Signature(e.to_string()))?;
    let session = crate::model::ModelSession::new(runtime, &onnx, signature)?;
    let predicted = session.predict(&report.holdout)?.positive();
    Ok(predicted
        .iter()
        .zip(&report.holdout_predictions)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max))
}

/// Scores `data` (a dataset version's folder) with `session` and measures it against
/// the data's labels: what the evaluation gate compares models on.
pub fn evaluate(
    session: &crate::model::ModelSession,
    data_dir: &Path,
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
    let table = Table::read_parquet(&data_dir.join("data.parquet"), &columns)
        .map_err(|e| VerifyError::Data(e.to_string()))?;
    let classes = &signature.classes;
    let positive = classes
        .last()
        .ok_or_else(|| VerifyError::Signature("the signature lists no classes".into()))?;
    let (y, found) = targets(&table, &signature.label, positive)
        .map_err(|e| VerifyError::Data(e.to_string()))?;
    if found[0] != classes[0] {
        return Err(VerifyError::Data(format!(
            "the evaluation data's classes {found:?} are not the model's {classes:?}"
        )));
    }
    let p = session.predict(&table)?.positive();
    Ok(metrics::binary(&p, &y, &found))
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
/// writes the model folder `out_dir`.
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

    let (y, classes) = targets(&table, &config.label, &config.positive)?;
    let (train_rows, holdout_rows) =
        stratified_split(&y, config.hyperparameters.holdout, config.seed);
    let train_table = table.take(&train_rows);
    let holdout_table = table.take(&holdout_rows);
    let pick = |rows: &[usize]| rows.iter().map(|&i| y[i]).collect::<Vec<f64>>();
    let (y_train, y_holdout) = (pick(&train_rows), pick(&holdout_rows));

    let h = &config.hyperparameters;
    let plan = FeaturePlan::fit(&train_table, &inputs, h.max_categories)?;
    let x_train = plan.encode(&train_table)?;
    let model = Logistic::fit(&x_train, plan.width(), &y_train, h.l2)?;
    let x_holdout = plan.encode(&holdout_table)?;
    let width = plan.width();
    let p: Vec<f64> = x_holdout
        .chunks(width.max(1))
        .map(|row| model.predict(row))
        .collect();
    let p = if width == 0 {
        vec![model.predict(&[]); y_holdout.len()]
    } else {
        p
    };
    let metrics = metrics::binary(&p, &y_holdout, &classes);

    // Metadata identifies the model's inputs; no clock, so the bytes are reproducible.
    let onnx = plan.to_onnx(
        &model,
        config.model.as_str(),
        &[
            ("sluice.dataset", manifest.dataset.to_string()),
            ("sluice.dataset_version", manifest.version.to_string()),
            ("sluice.dataset_sha256", manifest.content_sha256.clone()),
            ("sluice.algorithm", config.algorithm.as_str().to_owned()),
            ("sluice.config_sha256", config.sha256()),
            ("sluice.seed", config.seed.to_string()),
        ],
    );
    std::fs::create_dir_all(out_dir)?;
    std::fs::write(out_dir.join(MODEL_FILE), &onnx)?;
    std::fs::write(
        out_dir.join(SIGNATURE_FILE),
        pretty(&plan.signature(&config.label, &classes)),
    )?;
    std::fs::write(out_dir.join(METRICS_FILE), pretty(&metrics))?;
    let lineage = TrainingLineage {
        dataset: manifest.dataset.to_string(),
        dataset_version: manifest.version,
        dataset_sha256: manifest.content_sha256.clone(),
        algorithm: config.algorithm.as_str().to_owned(),
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
    Ok(TrainReport {
        metrics,
        model_sha256: hex::encode(Sha256::digest(&onnx)),
        lineage,
        holdout: holdout_table,
        holdout_predictions: p,
    })
}

fn pretty<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec_pretty(value).expect("model files serialise")
}

/// 0/1 targets and the class names `[negative, positive]`. Rows with a null label
/// cannot be learned from and are refused rather than guessed.
pub fn targets(
    table: &Table,
    label: &str,
    positive: &str,
) -> Result<(Vec<f64>, [String; 2]), TrainError> {
    let fail = |problem: String| TrainError::Label {
        column: label.to_owned(),
        problem,
    };
    let Some(Values::Text(values)) = table.column(label) else {
        return Err(fail("must be a string column".into()));
    };
    let mut negative: Option<&str> = None;
    let mut y = Vec::with_capacity(values.len());
    for (row, v) in values.iter().enumerate() {
        let v = v
            .as_deref()
            .ok_or_else(|| fail(format!("is null in row {}", row + 1)))?;
        if v == positive {
            y.push(1.0);
            continue;
        }
        match negative {
            None => negative = Some(v),
            Some(n) if n != v => {
                return Err(fail(format!(
                    "has more than two classes ({n:?}, {v:?} and {positive:?}); the reference trainer is binary"
                )));
            }
            _ => {}
        }
        y.push(0.0);
    }
    let negative = negative.ok_or_else(|| fail(format!("holds only {positive:?}")))?;
    Ok((y, [negative.to_owned(), positive.to_owned()]))
}

/// Row indices for training and holdout: each class shuffled with `seed` and split in
/// the same proportion, both lists in ascending order.
pub fn stratified_split(y: &[f64], holdout: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut train = Vec::new();
    let mut test = Vec::new();
    let mut rng = SplitMix64(seed);
    for class in [0.0, 1.0] {
        let mut rows: Vec<usize> = (0..y.len()).filter(|&i| y[i] == class).collect();
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
        let y: Vec<f64> = (0..1000)
            .map(|i| if i % 4 == 0 { 1.0 } else { 0.0 })
            .collect();
        let (train, test) = stratified_split(&y, 0.2, 7);
        assert_eq!(train.len() + test.len(), 1000);
        assert_eq!(test.len(), 200);
        assert_eq!(test.iter().filter(|&&i| y[i] == 1.0).count(), 50);
        assert_eq!(stratified_split(&y, 0.2, 7), (train.clone(), test.clone()));
        assert_ne!(stratified_split(&y, 0.2, 8).1, test);
    }

    #[test]
    fn labels_must_be_binary_and_present() {
        let t = |v: &[Option<&str>]| Table {
            columns: vec![(
                "y".into(),
                Values::Text(v.iter().map(|s| s.map(Into::into)).collect()),
            )],
        };
        let (y, classes) = targets(&t(&[Some("a"), Some("b"), Some("a")]), "y", "b").unwrap();
        assert_eq!(y, [0.0, 1.0, 0.0]);
        assert_eq!(classes, ["a".to_owned(), "b".to_owned()]);
        assert!(targets(&t(&[Some("a"), Some("b"), Some("c")]), "y", "b").is_err());
        assert!(
            targets(&t(&[Some("a"), None]), "y", "b")
                .unwrap_err()
                .to_string()
                .contains("row 2")
        );
        assert!(targets(&t(&[Some("b")]), "y", "b").is_err());
    }
}
