//! Binary classification metrics, computed the same way for the trainer's holdout and
//! for the evaluation gate, so a model's training metrics and its gate results compare.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub rows: u64,
    pub accuracy: f64,
    pub roc_auc: f64,
    pub log_loss: f64,
    /// Rows per class in the evaluated data, by class name.
    pub class_counts: Vec<ClassCount>,
    /// Share of rows predicted positive: a sanity check on the prediction distribution.
    pub positive_rate: f64,
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
            "accuracy" => Some(self.accuracy),
            "roc_auc" => Some(self.roc_auc),
            // Lower is better; callers that compare use `higher_is_better`.
            "log_loss" => Some(self.log_loss),
            _ => None,
        }
    }

    pub fn higher_is_better(name: &str) -> bool {
        name != "log_loss"
    }

    pub const NAMES: [&'static str; 3] = ["accuracy", "roc_auc", "log_loss"];
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
        rows,
        accuracy: correct as f64 / denom,
        roc_auc: roc_auc(p, y),
        log_loss: loss / denom,
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
        positive_rate: predicted_pos as f64 / denom,
    }
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
        assert!((m.accuracy - 0.5).abs() < 1e-12);
        let expected = -(0.9f64.ln() + 0.8f64.ln() + 0.4f64.ln() + 0.4f64.ln()) / 4.0;
        assert!((m.log_loss - expected).abs() < 1e-12);
        assert_eq!(m.class_counts[1].actual, 2);
        assert_eq!(m.class_counts[1].predicted, 2);
        assert_eq!(m.get("roc_auc"), Some(m.roc_auc));
        assert!(!Metrics::higher_is_better("log_loss"));
    }
}
