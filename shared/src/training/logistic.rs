//! L2-regularised logistic regression fitted by Newton's method (IRLS).
//!
//! Newton's method converges in a handful of exact steps for the few hundred features a
//! tabular model has, needs no learning rate, and, run single-threaded in a fixed order,
//! gives the same bits for the same data: the reproducibility promise rests on that.

/// A fitted model: `p = sigmoid(bias + weights · x)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Logistic {
    pub weights: Vec<f64>,
    pub bias: f64,
    pub iterations: u32,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FitError {
    #[error("no training rows")]
    Empty,
    #[error("the training labels hold a single class; a classifier needs both")]
    OneClass,
    #[error("the Newton system is singular (a constant or duplicated feature with l2 = 0?)")]
    Singular,
}

pub fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

impl Logistic {
    /// Fits on row-major `x` (`rows × features`) and 0/1 `y`. `l2` penalises the weights,
    /// not the bias.
    pub fn fit(x: &[f64], features: usize, y: &[f64], l2: f64) -> Result<Self, FitError> {
        let rows = y.len();
        if rows == 0 {
            return Err(FitError::Empty);
        }
        let positives = y.iter().filter(|&&v| v > 0.5).count();
        if positives == 0 || positives == rows {
            return Err(FitError::OneClass);
        }
        // The bias is the last parameter, fed by a constant 1.
        let n = features + 1;
        let mut beta = vec![0.0; n];
        let prior = positives as f64 / rows as f64;
        beta[features] = (prior / (1.0 - prior)).ln();
        let mut iterations = 0;
        for _ in 0..100 {
            iterations += 1;
            let mut hessian = vec![0.0; n * n];
            let mut gradient = vec![0.0; n];
            let mut row = vec![0.0; n];
            row[features] = 1.0;
            for (r, &target) in y.iter().enumerate() {
                row[..features].copy_from_slice(&x[r * features..(r + 1) * features]);
                let z: f64 = row.iter().zip(&beta).map(|(a, b)| a * b).sum();
                let p = sigmoid(z);
                let w = (p * (1.0 - p)).max(1e-12);
                let residual = p - target;
                for i in 0..n {
                    if row[i] == 0.0 {
                        continue; // one-hot rows are mostly zeros
                    }
                    gradient[i] += residual * row[i];
                    let wi = w * row[i];
                    let h = &mut hessian[i * n..(i + 1) * n];
                    for j in 0..=i {
                        h[j] += wi * row[j];
                    }
                }
            }
            for i in 0..features {
                gradient[i] += l2 * beta[i];
                hessian[i * n + i] += l2;
            }
            let step = solve_cholesky(&mut hessian, &gradient, n).ok_or(FitError::Singular)?;
            let mut largest: f64 = 0.0;
            for (b, s) in beta.iter_mut().zip(&step) {
                *b -= s;
                largest = largest.max(s.abs());
            }
            if largest < 1e-10 {
                break;
            }
        }
        let bias = beta.pop().unwrap_or_default();
        Ok(Self {
            weights: beta,
            bias,
            iterations,
        })
    }

    pub fn predict(&self, row: &[f64]) -> f64 {
        let z: f64 = self.bias
            + row
                .iter()
                .zip(&self.weights)
                .map(|(a, b)| a * b)
                .sum::<f64>();
        sigmoid(z)
    }
}

/// Solves `a · s = b` for symmetric positive definite `a`, of which it reads (and
/// overwrites with its factor) only the lower triangle and diagonal: callers fill no more.
pub(crate) fn solve_cholesky(a: &mut [f64], b: &[f64], n: usize) -> Option<Vec<f64>> {
    for j in 0..n {
        let mut d = a[j * n + j];
        for k in 0..j {
            d -= a[j * n + k] * a[j * n + k];
        }
        if d <= 1e-300 || !d.is_finite() {
            return None;
        }
        let d = d.sqrt();
        a[j * n + j] = d;
        for i in j + 1..n {
            let mut s = a[i * n + j];
            for k in 0..j {
                s -= a[i * n + k] * a[j * n + k];
            }
            a[i * n + j] = s / d;
        }
    }
    let mut y = vec![0.0; n];
    for i in 0..n {
        let mut s = b[i];
        for k in 0..i {
            s -= a[i * n + k] * y[k];
        }
        y[i] = s / a[i * n + i];
    }
    let mut x = vec![0.0; n];
    for i in (0..n).rev() {
        let mut s = y[i];
        for k in i + 1..n {
            s -= a[k * n + i] * x[k];
        }
        x[i] = s / a[i * n + i];
    }
    Some(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_known_coefficients() {
        // y = 1 exactly when 2x - 1 + noise > 0, sampled densely: the fit's decision
        // boundary must sit near x = 0.5.
        let mut x = Vec::new();
        let mut y = Vec::new();
        let mut state = 7u64;
        for i in 0..4000 {
            let v = (i % 1000) as f64 / 1000.0;
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let noise = ((state >> 33) as f64 / (1u64 << 31) as f64) - 0.5;
            x.push(v);
            y.push(if 2.0 * v - 1.0 + noise * 0.5 > 0.0 {
                1.0
            } else {
                0.0
            });
        }
        let m = Logistic::fit(&x, 1, &y, 1e-6).unwrap();
        let boundary = -m.bias / m.weights[0];
        assert!((boundary - 0.5).abs() < 0.02, "boundary at {boundary}");
        assert!(m.weights[0] > 5.0);
        assert!(m.predict(&[0.9]) > 0.9 && m.predict(&[0.1]) < 0.1);
    }

    #[test]
    fn refuses_one_class_and_empty_data() {
        assert_eq!(Logistic::fit(&[], 1, &[], 1.0), Err(FitError::Empty));
        assert_eq!(
            Logistic::fit(&[1.0, 2.0], 1, &[1.0, 1.0], 1.0),
            Err(FitError::OneClass)
        );
    }

    #[test]
    fn sigmoid_is_stable_at_the_extremes() {
        assert_eq!(sigmoid(1000.0), 1.0);
        assert_eq!(sigmoid(-1000.0), 0.0);
        assert!((sigmoid(0.0) - 0.5).abs() < 1e-15);
    }
}
