//! The reference trainer's other two fits, beside binary logistic regression
//! ([`super::logistic`]), and the one shape all three export as: scores
//! `bias + x · W`, one column per output.
//!
//! - Multinomial (softmax) logistic regression, L2-penalised, fitted by Newton's method
//!   with step halving. The first class is the reference (its scores are zero), so the
//!   Hessian is positive definite without penalising the biases.
//! - Ridge (L2) linear regression, solved exactly from its normal equations.
//!
//! Both run single-threaded in a fixed order, so the same data gives the same bits.

use super::logistic::{FitError, Logistic, solve_cholesky};

/// A fitted linear model: `outputs` scores per row, `bias[k] + Σ_i x_i · weights[i·outputs + k]`.
#[derive(Clone, Debug, PartialEq)]
pub struct LinearModel {
    /// Features × outputs, row-major.
    pub weights: Vec<f64>,
    pub bias: Vec<f64>,
    pub outputs: usize,
    pub iterations: u32,
}

impl LinearModel {
    /// The scores of one encoded row.
    pub fn scores(&self, row: &[f64]) -> Vec<f64> {
        let mut z = self.bias.clone();
        for (i, &x) in row.iter().enumerate() {
            if x != 0.0 {
                let w = &self.weights[i * self.outputs..(i + 1) * self.outputs];
                for (zk, wk) in z.iter_mut().zip(w) {
                    *zk += x * wk;
                }
            }
        }
        z
    }
}

impl From<Logistic> for LinearModel {
    fn from(m: Logistic) -> Self {
        Self {
            weights: m.weights,
            bias: vec![m.bias],
            outputs: 1,
            iterations: m.iterations,
        }
    }
}

/// Softmax of `z` in place, stable for large scores.
pub fn softmax(z: &mut [f64]) {
    let top = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut sum = 0.0;
    for v in z.iter_mut() {
        *v = (*v - top).exp();
        sum += *v;
    }
    for v in z.iter_mut() {
        *v /= sum;
    }
}

/// The penalised negative log-likelihood of class indices `y` under `beta`
/// (`(classes - 1) × (features + 1)`, the bias last in each block).
fn softmax_loss(
    x: &[f64],
    features: usize,
    y: &[usize],
    classes: usize,
    beta: &[f64],
    l2: f64,
) -> f64 {
    let n = features + 1;
    let mut loss = 0.0;
    let mut z = vec![0.0; classes];
    for (r, &target) in y.iter().enumerate() {
        let row = &x[r * features..(r + 1) * features];
        scores_into(row, beta, n, &mut z);
        let top = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let log_sum = top + z.iter().map(|v| (v - top).exp()).sum::<f64>().ln();
        loss += log_sum - z[target];
    }
    let penalty: f64 = beta
        .chunks(n)
        .map(|b| b[..features].iter().map(|w| w * w).sum::<f64>())
        .sum();
    loss + 0.5 * l2 * penalty
}

/// Scores of one row: zero for the reference class, then one per parameter block.
fn scores_into(row: &[f64], beta: &[f64], n: usize, z: &mut [f64]) {
    z[0] = 0.0;
    for (k, b) in beta.chunks(n).enumerate() {
        let mut s = b[n - 1];
        for (xi, wi) in row.iter().zip(b) {
            s += xi * wi;
        }
        z[k + 1] = s;
    }
}

/// Fits multinomial logistic regression on row-major `x` (`rows × features`) and class
/// indices `y` in `0..classes`. `l2` penalises the weights, not the biases.
pub fn fit_softmax(
    x: &[f64],
    features: usize,
    y: &[usize],
    classes: usize,
    l2: f64,
) -> Result<LinearModel, FitError> {
    let rows = y.len();
    if rows == 0 {
        return Err(FitError::Empty);
    }
    let mut counts = vec![0usize; classes];
    for &c in y {
        counts[c] += 1;
    }
    if counts.iter().filter(|&&c| c > 0).count() < 2 {
        return Err(FitError::OneClass);
    }
    let n = features + 1;
    let m = (classes - 1) * n;
    let mut beta = vec![0.0; m];
    // Start from the class priors (a class absent from the data starts very unlikely).
    let prior = |c: usize| (counts[c].max(1) as f64 / rows as f64).ln();
    for k in 1..classes {
        beta[(k - 1) * n + features] = prior(k) - prior(0);
    }
    let mut loss = softmax_loss(x, features, y, classes, &beta, l2);
    let mut iterations = 0;
    let mut z = vec![0.0; classes];
    let mut row = vec![0.0; n];
    row[features] = 1.0;
    let mut nonzero = Vec::with_capacity(n);
    for _ in 0..100 {
        iterations += 1;
        let mut hessian = vec![0.0; m * m];
        let mut gradient = vec![0.0; m];
        for (r, &target) in y.iter().enumerate() {
            row[..features].copy_from_slice(&x[r * features..(r + 1) * features]);
            scores_into(&row[..features], &beta, n, &mut z);
            softmax(&mut z);
            // One-hot rows are mostly zeros: only their non-zero features contribute.
            nonzero.clear();
            nonzero.extend((0..n).filter(|&i| row[i] != 0.0));
            for k in 1..classes {
                let residual = z[k] - f64::from(u8::from(target == k));
                for &i in &nonzero {
                    gradient[(k - 1) * n + i] += residual * row[i];
                }
                for l in 1..=k {
                    let w = z[k] * (f64::from(u8::from(k == l)) - z[l]);
                    for &i in &nonzero {
                        let a = (k - 1) * n + i;
                        let wi = w * row[i];
                        let h = &mut hessian[a * m..(a + 1) * m];
                        for &j in &nonzero {
                            let b = (l - 1) * n + j;
                            if b <= a {
                                h[b] += wi * row[j];
                            }
                        }
                    }
                }
            }
        }
        for k in 1..classes {
            for i in 0..features {
                let a = (k - 1) * n + i;
                gradient[a] += l2 * beta[a];
                hessian[a * m + a] += l2;
            }
        }
        let step = solve_cholesky(&mut hessian, &gradient, m).ok_or(FitError::Singular)?;
        // Newton's full step, halved while it does not lower the loss.
        let mut scale = 1.0;
        let mut next = beta.clone();
        let mut next_loss = loss;
        for _ in 0..30 {
            for ((b, s), old) in next.iter_mut().zip(&step).zip(&beta) {
                *b = old - scale * s;
            }
            next_loss = softmax_loss(x, features, y, classes, &next, l2);
            if next_loss <= loss {
                break;
            }
            scale /= 2.0;
        }
        let largest = step.iter().map(|s| (s * scale).abs()).fold(0.0, f64::max);
        if next_loss > loss {
            break; // no step lowers the loss: converged to rounding
        }
        beta = next;
        loss = next_loss;
        if largest < 1e-10 {
            break;
        }
    }
    let mut weights = vec![0.0; features * classes];
    let mut bias = vec![0.0; classes];
    for k in 1..classes {
        let b = &beta[(k - 1) * n..k * n];
        for i in 0..features {
            weights[i * classes + k] = b[i];
        }
        bias[k] = b[features];
    }
    Ok(LinearModel {
        weights,
        bias,
        outputs: classes,
        iterations,
    })
}

/// Fits ridge regression on row-major `x` (`rows × features`) and targets `y`: the
/// least-squares fit with `l2 · |w|²` added, the intercept unpenalised (scikit-learn's
/// `Ridge(alpha = l2)`).
pub fn fit_ridge(x: &[f64], features: usize, y: &[f64], l2: f64) -> Result<LinearModel, FitError> {
    let rows = y.len();
    if rows == 0 {
        return Err(FitError::Empty);
    }
    let n = features + 1;
    let mut gram = vec![0.0; n * n];
    let mut xty = vec![0.0; n];
    let mut row = vec![0.0; n];
    row[features] = 1.0;
    for (r, &target) in y.iter().enumerate() {
        row[..features].copy_from_slice(&x[r * features..(r + 1) * features]);
        for i in 0..n {
            if row[i] == 0.0 {
                continue;
            }
            xty[i] += row[i] * target;
            let g = &mut gram[i * n..(i + 1) * n];
            for j in 0..=i {
                g[j] += row[i] * row[j];
            }
        }
    }
    for i in 0..features {
        gram[i * n + i] += l2;
    }
    let mut beta = solve_cholesky(&mut gram, &xty, n).ok_or(FitError::Singular)?;
    let bias = beta.pop().unwrap_or_default();
    Ok(LinearModel {
        weights: beta,
        bias: vec![bias],
        outputs: 1,
        iterations: 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A seeded stream of numbers in [0, 1).
    fn uniform(seed: u64) -> impl FnMut() -> f64 {
        let mut state = seed;
        move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    #[test]
    fn ridge_recovers_a_noiseless_line_and_shrinks_with_the_penalty() {
        let mut u = uniform(3);
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for _ in 0..200 {
            let (a, b) = (u() * 4.0 - 2.0, u() * 4.0 - 2.0);
            x.extend([a, b]);
            y.push(3.0 * a - 2.0 * b + 5.0);
        }
        let exact = fit_ridge(&x, 2, &y, 0.0).unwrap();
        assert!((exact.weights[0] - 3.0).abs() < 1e-9, "{exact:?}");
        assert!((exact.weights[1] + 2.0).abs() < 1e-9);
        assert!((exact.bias[0] - 5.0).abs() < 1e-9);
        let shrunk = fit_ridge(&x, 2, &y, 100.0).unwrap();
        assert!(shrunk.weights[0].abs() < 3.0 && shrunk.weights[0] > 0.0);
    }

    #[test]
    fn softmax_separates_three_clusters_and_its_probabilities_sum_to_one() {
        let mut u = uniform(9);
        let centres = [(0.0, 0.0), (3.0, 0.0), (0.0, 3.0)];
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for i in 0..600 {
            let c = i % 3;
            let (cx, cy) = centres[c];
            x.extend([cx + u() - 0.5, cy + u() - 0.5]);
            y.push(c);
        }
        let m = fit_softmax(&x, 2, &y, 3, 1.0).unwrap();
        assert_eq!(m.outputs, 3);
        assert_eq!(&m.weights[0..1], &[0.0], "the first class is the reference");
        let mut correct = 0;
        for (r, &c) in y.iter().enumerate() {
            let mut p = m.scores(&x[r * 2..r * 2 + 2]);
            softmax(&mut p);
            assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
            correct += usize::from(crate::training::metrics::argmax(&p) == c);
        }
        assert_eq!(correct, 600, "well-separated clusters are all classified");
        // The same data gives the same bits.
        assert_eq!(fit_softmax(&x, 2, &y, 3, 1.0).unwrap(), m);
        assert_eq!(fit_softmax(&[], 2, &[], 3, 1.0), Err(FitError::Empty));
        assert_eq!(
            fit_softmax(&x[..4], 2, &[1, 1], 3, 1.0),
            Err(FitError::OneClass)
        );
    }
}
