//! The distances drift is judged by, defined as SciPy defines them (`wasserstein_distance`,
//! `jensenshannon`), which is what Evidently and Azure ML's model monitoring use, plus the
//! population stability index reported beside them.
//!
//! Written here rather than taken from a crate: none of the maintained Rust statistics
//! crates (statrs, ndarray-stats) has these two distances, each is a few lines over data
//! Sluice already holds as histograms, and the suite checks them against SciPy on the
//! same samples to 1e-9.

/// The first Wasserstein distance between two weighted distributions on the real line,
/// each given as `(value, weight)` points (weights need not sum to one): the area between
/// their cumulative distribution functions, as `scipy.stats.wasserstein_distance`.
/// `None` when either side has no weight.
pub fn wasserstein(u: &[(f64, f64)], v: &[(f64, f64)]) -> Option<f64> {
    let (su, sv) = (total(u)?, total(v)?);
    let mut all: Vec<(f64, f64, f64)> = u
        .iter()
        .map(|&(x, w)| (x, w / su, 0.0))
        .chain(v.iter().map(|&(x, w)| (x, 0.0, w / sv)))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (mut cu, mut cv, mut area) = (0.0, 0.0, 0.0);
    for pair in all.windows(2) {
        cu += pair[0].1;
        cv += pair[0].2;
        area += (cu - cv).abs() * (pair[1].0 - pair[0].0);
    }
    Some(area)
}

/// The Jensen–Shannon distance between two discrete distributions over the same
/// categories (counts or shares, normalised here): the square root of the mean of each
/// side's Kullback–Leibler divergence from their midpoint, in nats, as
/// `scipy.spatial.distance.jensenshannon` with its default base. Between 0 and √ln 2.
pub fn jensen_shannon(p: &[f64], q: &[f64]) -> Option<f64> {
    debug_assert_eq!(p.len(), q.len());
    let (sp, sq) = (p.iter().sum::<f64>(), q.iter().sum::<f64>());
    if sp <= 0.0 || sq <= 0.0 {
        return None;
    }
    let mut divergence = 0.0;
    for (&a, &b) in p.iter().zip(q) {
        let (a, b) = (a / sp, b / sq);
        let m = (a + b) / 2.0;
        divergence += relative_entropy(a, m) + relative_entropy(b, m);
    }
    Some((divergence / 2.0).max(0.0).sqrt())
}

/// The population stability index of `actual` against `expected` over the same buckets:
/// Σ (a − e) · ln(a / e) over shares, each share floored at 0.0001 so an empty bucket
/// counts as rare rather than infinite (Evidently's convention).
pub fn psi(expected: &[f64], actual: &[f64]) -> Option<f64> {
    debug_assert_eq!(expected.len(), actual.len());
    let (se, sa) = (expected.iter().sum::<f64>(), actual.iter().sum::<f64>());
    if se <= 0.0 || sa <= 0.0 {
        return None;
    }
    Some(
        expected
            .iter()
            .zip(actual)
            .map(|(&e, &a)| {
                let (e, a) = ((e / se).max(PSI_FLOOR), (a / sa).max(PSI_FLOOR));
                (a - e) * (a / e).ln()
            })
            .sum(),
    )
}

const PSI_FLOOR: f64 = 1e-4;

fn total(points: &[(f64, f64)]) -> Option<f64> {
    let sum: f64 = points.iter().map(|p| p.1).sum();
    (sum > 0.0).then_some(sum)
}

/// `x · ln(x / y)`, with 0 · ln 0 = 0 (SciPy's `rel_entr`).
fn relative_entropy(x: f64, y: f64) -> f64 {
    if x > 0.0 { x * (x / y).ln() } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wasserstein_is_the_area_between_the_cdfs() {
        // Moving all mass by 3 costs 3; identical distributions cost nothing.
        let u = [(0.0, 1.0), (1.0, 1.0)];
        let v = [(3.0, 2.0), (4.0, 2.0)];
        assert!((wasserstein(&u, &v).unwrap() - 3.0).abs() < 1e-12);
        assert_eq!(wasserstein(&u, &u), Some(0.0));
        // Half the mass moved from 0 to 1: 0.5.
        let w = [(0.0, 1.0), (1.0, 1.0), (1.0, 0.0)];
        assert!((wasserstein(&[(0.0, 1.0)], &w).unwrap() - 0.5).abs() < 1e-12);
        assert_eq!(wasserstein(&[], &u), None);
    }

    #[test]
    fn jensen_shannon_is_bounded_and_symmetric() {
        assert_eq!(jensen_shannon(&[1.0, 2.0], &[2.0, 4.0]), Some(0.0));
        let disjoint = jensen_shannon(&[1.0, 0.0], &[0.0, 1.0]).unwrap();
        assert!((disjoint - std::f64::consts::LN_2.sqrt()).abs() < 1e-12);
        let (p, q) = ([0.5, 0.3, 0.2], [0.1, 0.6, 0.3]);
        assert_eq!(jensen_shannon(&p, &q), jensen_shannon(&q, &p));
    }

    #[test]
    fn psi_floors_empty_buckets() {
        assert_eq!(psi(&[1.0, 1.0], &[5.0, 5.0]), Some(0.0));
        let shifted = psi(&[1.0, 0.0], &[0.0, 1.0]).unwrap();
        assert!(shifted.is_finite() && shifted > 10.0, "{shifted}");
    }
}
