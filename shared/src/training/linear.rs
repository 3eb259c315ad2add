//! The reference trainer's other two fits, beside binary logistic regression
//! ([`super::logistic`]), and the one shape all three export as: scores
//! `bias + x · W`, one column per output.
//!
//! - Multinomial (softmax) logistic regression, L2-penalised, fitted by Newton's method
//!   with step halving; every class has weights (see [`Blocks`]) and the first class's
//!   bias is zero, so the Hessian is positive definite without penalising the biases.
//! - Ridge (L2) linear regression, solved exactly from its normal equations.
//!
//! Both run single-threaded in a fixed order, so the same data gives the same bits.

use std::ops::Range;

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

/// Where each class's parameters sit in the Newton vector: its weights (one per feature),
/// then its bias. The first class has no bias: moving every bias alike changes no
/// probability, so one is fixed at zero. Penalised, every class has weights, as in
/// scikit-learn's multinomial `LogisticRegression`: the penalty picks, of all the equal
/// fits, the one whose weights sum to zero over the classes, so both fit the same model
/// (a reference class with zero weights would be penalised differently, and differ on
/// small data). Unpenalised, that choice is left open, so the first class's weights
/// are fixed at zero too.
#[derive(Clone, Copy)]
struct Blocks {
    features: usize,
    classes: usize,
    first_has_weights: bool,
}

impl Blocks {
    /// Where class `k`'s block starts, and how many parameters it has.
    fn block(&self, k: usize) -> (usize, usize) {
        let first = if self.first_has_weights {
            self.features
        } else {
            0
        };
        match k {
            0 => (0, first),
            k => (first + (k - 1) * (self.features + 1), self.features + 1),
        }
    }

    fn size(&self) -> usize {
        let (start, len) = self.block(self.classes - 1);
        start + len
    }

    /// Scores of one row (`row` ends with the bias's 1; `nonzero` are the positions of
    /// its non-zero values, ascending).
    fn scores(&self, row: &[f64], nonzero: &[usize], beta: &[f64], z: &mut [f64]) {
        for (k, zk) in z.iter_mut().enumerate() {
            let (start, len) = self.block(k);
            let block = &beta[start..start + len];
            *zk = nonzero
                .iter()
                .take_while(|&&i| i < len)
                .map(|&i| block[i] * row[i])
                .sum();
        }
    }

    /// The penalised negative log-likelihood of class indices `y` under `beta` (its sum
    /// over the parts of the rows, in order).
    fn loss(&self, x: &[f64], y: &[usize], beta: &[f64], l2: f64) -> f64 {
        let mut sums = [0.0; PARTS];
        in_parts(&mut sums, |p, sum| {
            *sum = self.log_loss_sum(x, y, part(y.len(), p), beta)
        });
        sums.iter().sum::<f64>() + 0.5 * l2 * self.weights(beta).map(|w| w * w).sum::<f64>()
    }

    /// Calls `visit` with each of `rows`' index, its values with the bias's 1 appended,
    /// the positions of its non-zero values (ascending: one-hot rows are mostly zeros,
    /// and only those contribute; the bias is last), and its scores under `beta`.
    fn each_row(
        &self,
        x: &[f64],
        rows: Range<usize>,
        beta: &[f64],
        mut visit: impl FnMut(usize, &[f64], &[usize], &[f64]),
    ) {
        let features = self.features;
        let mut z = vec![0.0; self.classes];
        let mut row = vec![1.0; features + 1];
        let mut nonzero = Vec::with_capacity(features + 1);
        for r in rows {
            row[..features].copy_from_slice(&x[r * features..(r + 1) * features]);
            nonzero.clear();
            nonzero.extend((0..=features).filter(|&i| row[i] != 0.0));
            self.scores(&row, &nonzero, beta, &mut z);
            visit(r, &row, &nonzero, &z);
        }
    }

    fn log_loss_sum(&self, x: &[f64], y: &[usize], rows: Range<usize>, beta: &[f64]) -> f64 {
        let mut loss = 0.0;
        self.each_row(x, rows, beta, |r, _, _, z| {
            let top = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let log_sum = top + z.iter().map(|v| (v - top).exp()).sum::<f64>().ln();
            loss += log_sum - z[y[r]];
        });
        loss
    }

    /// Adds the gradient and the Hessian's lower triangle of the (unpenalised) loss over
    /// `rows` under `beta`.
    fn accumulate(
        &self,
        x: &[f64],
        y: &[usize],
        rows: Range<usize>,
        beta: &[f64],
        hessian: &mut [f64],
        gradient: &mut [f64],
    ) {
        let (features, m) = (self.features, self.size());
        let mut p = vec![0.0; self.classes];
        self.each_row(x, rows, beta, |r, row, nonzero, scores| {
            p.copy_from_slice(scores);
            softmax(&mut p);
            // A block of weights alone (no bias) takes all but the last position.
            let of = |len: usize| match len {
                0 => &nonzero[..0],
                len if len == features => &nonzero[..nonzero.len() - 1],
                _ => nonzero,
            };
            for k in 0..self.classes {
                let (start_k, len_k) = self.block(k);
                let residual = p[k] - f64::from(u8::from(y[r] == k));
                for &i in of(len_k) {
                    gradient[start_k + i] += residual * row[i];
                }
                // The lower triangle only (`solve_cholesky` reads no more): every earlier
                // block, and this block's own up to the diagonal.
                for l in 0..=k {
                    let (start_l, len_l) = self.block(l);
                    let w = p[k] * (f64::from(u8::from(k == l)) - p[l]);
                    let columns = of(len_l);
                    for (at, &i) in of(len_k).iter().enumerate() {
                        let a = start_k + i;
                        let wi = w * row[i];
                        let h = &mut hessian[a * m + start_l..a * m + start_l + len_l];
                        let columns = if l == k { &columns[..=at] } else { columns };
                        for &j in columns {
                            h[j] += wi * row[j];
                        }
                    }
                }
            }
        });
    }

    /// The penalised parameters (every weight, no bias), as positions in `beta`.
    fn weight_positions(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.classes).flat_map(move |k| {
            let (start, len) = self.block(k);
            start..start + len.min(self.features)
        })
    }

    fn weights<'a>(&'a self, beta: &'a [f64]) -> impl Iterator<Item = f64> + 'a {
        self.weight_positions().map(move |a| beta[a])
    }
}

/// How many parts the softmax fit cuts its rows into, whatever the number of cores: the
/// parts' sums are added in order, so the bits do not depend on how many threads ran them.
const PARTS: usize = 4;

/// Part `p` of `rows` rows.
fn part(rows: usize, p: usize) -> Range<usize> {
    rows * p / PARTS..rows * (p + 1) / PARTS
}

/// Runs `work` on each part's state (with the part's number), on up to as many threads
/// as there are cores.
fn in_parts<S: Send>(states: &mut [S], work: impl Fn(usize, &mut S) + Sync) {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(states.len()));
    let per_thread = states.len().div_ceil(threads);
    let work = &work;
    std::thread::scope(|scope| {
        for (t, chunk) in states.chunks_mut(per_thread).enumerate() {
            scope.spawn(move || {
                for (i, state) in chunk.iter_mut().enumerate() {
                    work(t * per_thread + i, state);
                }
            });
        }
    });
}

/// Fits multinomial logistic regression on row-major `x` (`rows × features`) and class
/// indices `y` in `0..classes`. `l2` penalises the weights, not the biases. Each Newton
/// iteration's sums run on up to [`PARTS`] threads.
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
    let blocks = Blocks {
        features,
        classes,
        first_has_weights: l2 > 0.0,
    };
    let m = blocks.size();
    let mut beta = vec![0.0; m];
    // Start from the class priors (a class absent from the data starts very unlikely).
    let prior = |c: usize| (counts[c].max(1) as f64 / rows as f64).ln();
    for k in 1..classes {
        let (start, _) = blocks.block(k);
        beta[start + features] = prior(k) - prior(0);
    }
    let mut loss = blocks.loss(x, y, &beta, l2);
    let mut iterations = 0;
    // Buffers are reused: zeroing pages for fresh ones each iteration cost a tenth of the
    // fit.
    let mut sums: Vec<(Vec<f64>, Vec<f64>)> = vec![(vec![0.0; m * m], vec![0.0; m]); PARTS];
    for _ in 0..100 {
        iterations += 1;
        in_parts(&mut sums, |p, (hessian, gradient)| {
            hessian.fill(0.0);
            gradient.fill(0.0);
            blocks.accumulate(x, y, part(rows, p), &beta, hessian, gradient);
        });
        let ((hessian, gradient), rest) = sums.split_first_mut().expect("parts");
        for (h, g) in rest.iter() {
            for (a, b) in hessian.iter_mut().zip(h) {
                *a += b;
            }
            for (a, b) in gradient.iter_mut().zip(g) {
                *a += b;
            }
        }
        for a in blocks.weight_positions() {
            gradient[a] += l2 * beta[a];
            hessian[a * m + a] += l2;
        }
        let step = solve_cholesky(hessian, gradient, m).ok_or(FitError::Singular)?;
        // Newton's full step, halved while it does not lower the loss.
        let mut scale = 1.0;
        let mut next = beta.clone();
        let mut next_loss = loss;
        for _ in 0..30 {
            for ((b, s), old) in next.iter_mut().zip(&step).zip(&beta) {
                *b = old - scale * s;
            }
            next_loss = blocks.loss(x, y, &next, l2);
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
    for k in 0..classes {
        let (start, len) = blocks.block(k);
        for i in 0..len.min(features) {
            weights[i * classes + k] = beta[start + i];
        }
        if len > features {
            bias[k] = beta[start + features];
        }
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
        assert_eq!(m.bias[0], 0.0, "the first class's bias is the fixed one");
        // Penalised, the weights of each feature sum to zero over the classes (the
        // fit scikit-learn makes); unpenalised, the first class's are zero.
        for feature in m.weights.chunks(3) {
            assert!(feature.iter().sum::<f64>().abs() < 1e-9, "{feature:?}");
        }
        // (Unpenalised, separable clusters have no finite fit: some labels are flipped.)
        let noisy: Vec<usize> = (0..600)
            .map(|i| (i % 3 + usize::from(i % 7 == 0)) % 3)
            .collect();
        let free = fit_softmax(&x, 2, &noisy, 3, 0.0).unwrap();
        assert_eq!((free.weights[0], free.weights[3]), (0.0, 0.0));
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
