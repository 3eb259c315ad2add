//! Model metrics per task, computed the same way for the trainer's holdout and for the
//! evaluation gate, so a model's training metrics and its gate results compare.

use serde::{Deserialize, Serialize};

use crate::model::task::{self, Task};

/// A model's metrics on some rows. Which fields are set follows the task; metrics
/// written before tasks existed (binary: `accuracy`, `roc_auc`, `log_loss`,
/// `class_counts`, `positive_rate`) read as they were.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    #[serde(default)]
    pub task: Task,
    pub rows: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roc_auc: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_loss: Option<f64>,
    /// The unweighted mean of each class's F1 (classes in the data or the predictions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub macro_f1: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rmse: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mae: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r2: Option<f64>,
    /// Rows per class in the evaluated data, by class name (classifiers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub class_counts: Vec<ClassCount>,
    /// Share of rows predicted positive (binary): a sanity check on the predictions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub positive_rate: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassCount {
    pub class: String,
    pub actual: u64,
    pub predicted: u64,
}

impl Metrics {
    /// A metric by the name a training config or promotion policy uses.
    pub fn get(&self, name: &str) -> Option<f64> {
        match name {
            "accuracy" => self.accuracy,
            "roc_auc" => self.roc_auc,
            "log_loss" => self.log_loss,
            "macro_f1" => self.macro_f1,
            "rmse" => self.rmse,
            "mae" => self.mae,
            "r2" => self.r2,
            _ => None,
        }
    }

    /// Whether a larger value of `name` is better; callers that compare use it.
    pub fn higher_is_better(name: &str) -> bool {
        task::higher_is_better(name)
    }

    /// One line for people: the task's metrics as `name value`.
    pub fn summary(&self) -> String {
        let parts: Vec<String> = self
            .task
            .metrics()
            .iter()
            .map(|m| format!("{m} {:.4}", self.get(m).unwrap_or(f64::NAN)))
            .collect();
        format!("{} ({} rows)", parts.join(", "), self.rows)
    }

    /// The one class every row was predicted as, if the model knows several: how the
    /// gate spots a degenerate classifier.
    pub fn single_predicted_class(&self) -> Option<&str> {
        let predicted: Vec<&ClassCount> = self
            .class_counts
            .iter()
            .filter(|c| c.predicted > 0)
            .collect();
        match predicted[..] {
            [only] if self.class_counts.len() > 1 => Some(&only.class),
            _ => None,
        }
    }
}

/// Metrics of positive-class probabilities `p` against 0/1 targets `y`.
/// `classes` is `[negative, positive]`.
pub fn binary(p: &[f64], y: &[f64], classes: &[String; 2]) -> Metrics {
    let n = y.len();
    let mut correct = 0u64;
    let mut loss = 0.0;
    let (mut actual_pos, mut predicted_pos) = (0u64, 0u64);
    for (&pi, &yi) in p.iter().zip(y) {
        let predicted = pi >= 0.5;
        let positive = yi > 0.5;
        correct += u64::from(predicted == positive);
        actual_pos += u64::from(positive);
        predicted_pos += u64::from(predicted);
        let q = pi.clamp(1e-15, 1.0 - 1e-15);
        loss -= if positive { q.ln() } else { (1.0 - q).ln() };
    }
    let rows = n as u64;
    let denom = n.max(1) as f64;
    Metrics {
        task: Task::Binary,
        rows,
        accuracy: Some(correct as f64 / denom),
        roc_auc: Some(roc_auc(p, y)),
        log_loss: Some(loss / denom),
        class_counts: vec![
            ClassCount {
                class: classes[0].clone(),
                actual: rows - actual_pos,
                predicted: rows - predicted_pos,
            },
            ClassCount {
                class: classes[1].clone(),
                actual: actual_pos,
                predicted: predicted_pos,
            },
        ],
        positive_rate: Some(predicted_pos as f64 / denom),
        ..Metrics::default()
    }
}

/// Metrics of class probabilities `p` (one row each, in `classes` order) against class
/// indices `y`; the predicted class is the most probable one.
pub fn multiclass(p: &[Vec<f64>], y: &[usize], classes: &[String]) -> Metrics {
    let k = classes.len();
    let n = y.len();
    let denom = n.max(1) as f64;
    let (mut actual, mut predicted, mut hits) = (vec![0u64; k], vec![0u64; k], vec![0u64; k]);
    let mut loss = 0.0;
    for (row, &truth) in p.iter().zip(y) {
        let guess = argmax(row);
        actual[truth] += 1;
        predicted[guess] += 1;
        hits[truth] += u64::from(guess == truth);
        let q = row
            .get(truth)
            .copied()
            .unwrap_or(0.0)
            .clamp(1e-15, 1.0 - 1e-15);
        loss -= q.ln();
    }
    // As scikit-learn does: the mean over the classes in the data or the predictions,
    // a class with no true positive counting 0.
    let f1: Vec<f64> = (0..k)
        .filter(|&c| actual[c] + predicted[c] > 0)
        .map(|c| 2.0 * hits[c] as f64 / (actual[c] + predicted[c]) as f64)
        .collect();
    Metrics {
        task: Task::Multiclass,
        rows: n as u64,
        accuracy: Some(hits.iter().sum::<u64>() as f64 / denom),
        log_loss: Some(loss / denom),
        macro_f1: Some(f1.iter().sum::<f64>() / f1.len().max(1) as f64),
        class_counts: classes
            .iter()
            .enumerate()
            .map(|(c, class)| ClassCount {
                class: class.clone(),
                actual: actual[c],
                predicted: predicted[c],
            })
            .collect(),
        ..Metrics::default()
    }
}

/// Metrics of predicted values against true values.
pub fn regression(predicted: &[f64], y: &[f64]) -> Metrics {
    let n = y.len();
    let denom = n.max(1) as f64;
    let mean = y.iter().sum::<f64>() / denom;
    let (mut squared, mut absolute, mut total) = (0.0, 0.0, 0.0);
    for (&p, &t) in predicted.iter().zip(y) {
        squared += (p - t) * (p - t);
        absolute += (p - t).abs();
        total += (t - mean) * (t - mean);
    }
    // A constant target: R² is 1 for a perfect fit and 0 otherwise, as scikit-learn has it.
    let r2 = if total > 0.0 {
        1.0 - squared / total
    } else if squared == 0.0 {
        1.0
    } else {
        0.0
    };
    Metrics {
        task: Task::Regression,
        rows: n as u64,
        rmse: Some((squared / denom).sqrt()),
        mae: Some(absolute / denom),
        r2: Some(r2),
        ..Metrics::default()
    }
}

/// The index of the largest value (the first of equals).
pub fn argmax(row: &[f64]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

/// Area under the ROC curve by the rank-sum (Mann–Whitney) statistic; tied scores share
/// their average rank. 0.5 when one class is absent.
pub fn roc_auc(p: &[f64], y: &[f64]) -> f64 {
    let mut order: Vec<usize> = (0..p.len()).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let positives = y.iter().filter(|&&v| v > 0.5).count() as f64;
    let negatives = y.len() as f64 - positives;
    if positives == 0.0 || negatives == 0.0 {
        return 0.5;
    }
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && p[order[j + 1]] == p[order[i]] {
            j += 1;
        }
        let average_rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            if y[k] > 0.5 {
                rank_sum += average_rank;
            }
        }
        i = j + 1;
    }
    (rank_sum - positives * (positives + 1.0) / 2.0) / (positives * negatives)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classes() -> [String; 2] {
        ["no".into(), "yes".into()]
    }

    #[test]
    fn auc_counts_ordered_pairs() {
        // Pairs (pos, neg): (0.8,0.1) ok, (0.8,0.4) ok, (0.35,0.1) ok, (0.35,0.4) wrong.
        let auc = roc_auc(&[0.1, 0.4, 0.35, 0.8], &[0.0, 0.0, 1.0, 1.0]);
        assert!((auc - 0.75).abs() < 1e-12);
        // Ties count half.
        assert!((roc_auc(&[0.5, 0.5], &[0.0, 1.0]) - 0.5).abs() < 1e-12);
        assert_eq!(roc_auc(&[0.2, 0.3], &[1.0, 1.0]), 0.5);
    }

    #[test]
    fn accuracy_log_loss_and_counts() {
        let m = binary(&[0.9, 0.2, 0.6, 0.4], &[1.0, 0.0, 0.0, 1.0], &classes());
        assert_eq!(m.rows, 4);
        assert!((m.accuracy.unwrap() - 0.5).abs() < 1e-12);
        let expected = -(0.9f64.ln() + 0.8f64.ln() + 0.4f64.ln() + 0.4f64.ln()) / 4.0;
        assert!((m.log_loss.unwrap() - expected).abs() < 1e-12);
        assert_eq!(m.class_counts[1].actual, 2);
        assert_eq!(m.class_counts[1].predicted, 2);
        assert_eq!(m.get("roc_auc"), m.roc_auc);
        assert!(!Metrics::higher_is_better("log_loss"));
    }

    #[test]
    fn multiclass_metrics_match_hand_counts() {
        let classes: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        // Truth a, a, b, c; predicted a, b, b, b.
        let p = [
            vec![0.7, 0.2, 0.1],
            vec![0.3, 0.6, 0.1],
            vec![0.1, 0.8, 0.1],
            vec![0.2, 0.5, 0.3],
        ];
        let m = multiclass(&p, &[0, 0, 1, 2], &classes);
        assert_eq!(m.task, Task::Multiclass);
        assert!((m.accuracy.unwrap() - 0.5).abs() < 1e-12);
        // F1: a = 2·1/(2+1), b = 2·1/(1+3), c = 0.
        let f1 = (2.0 / 3.0 + 0.5 + 0.0) / 3.0;
        assert!((m.macro_f1.unwrap() - f1).abs() < 1e-12);
        let loss = -(0.7f64.ln() + 0.3f64.ln() + 0.8f64.ln() + 0.3f64.ln()) / 4.0;
        assert!((m.log_loss.unwrap() - loss).abs() < 1e-12);
        assert_eq!(m.class_counts[1].predicted, 3);
        assert_eq!(m.single_predicted_class(), None);
        let all_b = multiclass(&p[1..], &[0, 1, 2], &classes);
        assert_eq!(all_b.single_predicted_class(), Some("b"));
    }

    #[test]
    fn regression_metrics_match_hand_computation() {
        let m = regression(&[1.0, 2.0, 4.0], &[1.0, 3.0, 5.0]);
        assert!((m.rmse.unwrap() - (2.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert!((m.mae.unwrap() - 2.0 / 3.0).abs() < 1e-12);
        // Mean 3: total 4 + 0 + 4 = 8, residual 2.
        assert!((m.r2.unwrap() - 0.75).abs() < 1e-12);
        assert_eq!(m.get("accuracy"), None);
    }

    #[test]
    fn metrics_written_before_tasks_still_read() {
        let old = r#"{"rows": 4, "accuracy": 0.5, "roc_auc": 0.75, "log_loss": 0.6,
            "class_counts": [{"class": "no", "actual": 2, "predicted": 2}], "positive_rate": 0.5}"#;
        let m: Metrics = serde_json::from_str(old).unwrap();
        assert_eq!(m.task, Task::Binary);
        assert_eq!(m.get("roc_auc"), Some(0.75));
        assert_eq!(m.rmse, None);
    }
}
