//! Drift: how far a column's distribution moved from its reference — the dataset version a
//! model was trained on — judged per column with the statistic its kind calls for:
//! normalised Wasserstein distance for numbers (the distance in units of the reference's
//! standard deviation, as Evidently normalises it), Jensen–Shannon distance for
//! categories, each against a threshold (0.1 by default, Azure ML's and Evidently's), with
//! the population stability index reported beside them.
//!
//! Distributions are what a profile already holds: numbers as counts in the profile's
//! power-of-two bins (the bin [i·w, (i+1)·w) has index i), categories as the counts of the
//! top values plus the rest as one bucket. Both sides are compared at that resolution, so
//! two samples of the same distribution come out near zero, not at the bins' width.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::stats;
use crate::dataset::profile::ColumnProfile;

/// The default threshold of both statistics.
pub const DEFAULT_THRESHOLD: f64 = 0.1;

/// Below this the reference's standard deviation is taken as this (a constant column),
/// as Evidently does, so a shift still registers.
const MIN_SIGMA: f64 = 0.001;

/// The bucket of values outside the reference's listed categories.
pub const OTHER: &str = "(other)";

/// The statistic a column was judged by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Statistic {
    /// Wasserstein distance divided by the reference's standard deviation.
    NormalizedWasserstein,
    /// Jensen–Shannon distance (natural logarithm, SciPy's default base).
    JensenShannon,
    /// Azure ML's dataset monitor's drift coefficient (its `DatasetDriftDetected`).
    AzureMlDriftCoefficient,
}

/// One column's verdict.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ColumnDrift {
    pub column: String,
    pub statistic: Statistic,
    pub value: f64,
    pub threshold: f64,
    pub drifted: bool,
    /// The population stability index over the same buckets, for reference.
    pub psi: f64,
    /// Non-null values on each side.
    pub reference_count: u64,
    pub count: u64,
}

/// A column's distribution, as drift compares it.
#[derive(Clone, Debug, PartialEq)]
pub enum Distribution {
    /// Counts per bin of `width` (bin index → count), and the population standard
    /// deviation of the values (what normalises the distance when this is the reference).
    Numeric {
        width: f64,
        bins: BTreeMap<i64, f64>,
        sigma: f64,
    },
    /// Counts per category; values beyond the listed ones under [`OTHER`].
    Categorical { counts: BTreeMap<String, f64> },
}

impl Distribution {
    /// A profiled column's distribution; `None` when it holds no value to compare.
    pub fn of_profile(column: &ColumnProfile) -> Option<Self> {
        let present = column.count.saturating_sub(column.nulls);
        if present == 0 {
            return None;
        }
        if let Some(numeric) = &column.numeric {
            let first = numeric.histogram.first()?;
            let width = first.hi - first.lo;
            let bins = numeric
                .histogram
                .iter()
                .map(|b| ((b.lo / width).round() as i64, b.count as f64))
                .collect();
            let n = present as f64;
            // The profile keeps the sample deviation (n − 1); the distance is normalised
            // by the population's, as `numpy.std` gives it.
            let sigma = if present > 1 {
                numeric.std * ((n - 1.0) / n).sqrt()
            } else {
                0.0
            };
            return Some(Distribution::Numeric { width, bins, sigma });
        }
        let mut counts: BTreeMap<String, f64> = column
            .top_values
            .iter()
            .map(|v| (v.value.clone(), v.count as f64))
            .collect();
        let listed: u64 = column.top_values.iter().map(|v| v.count).sum();
        if present > listed {
            *counts.entry(OTHER.to_owned()).or_default() += (present - listed) as f64;
        }
        Some(Distribution::Categorical { counts })
    }

    fn count(&self) -> u64 {
        let sum: f64 = match self {
            Distribution::Numeric { bins, .. } => bins.values().sum(),
            Distribution::Categorical { counts } => counts.values().sum(),
        };
        sum.round() as u64
    }
}

/// Live values counted the way `reference` is: numbers into its bins, categories among
/// its listed values (the rest under [`OTHER`]).
#[derive(Clone, Debug)]
pub struct Tally {
    distribution: Distribution,
    listed: Option<std::collections::BTreeSet<String>>,
    pub nulls: u64,
}

impl Tally {
    pub fn like(reference: &Distribution) -> Self {
        match reference {
            Distribution::Numeric { width, .. } => Self {
                distribution: Distribution::Numeric {
                    width: *width,
                    bins: BTreeMap::new(),
                    sigma: 0.0,
                },
                listed: None,
                nulls: 0,
            },
            Distribution::Categorical { counts } => Self {
                distribution: Distribution::Categorical {
                    counts: BTreeMap::new(),
                },
                listed: Some(counts.keys().cloned().collect()),
                nulls: 0,
            },
        }
    }

    pub fn add_number(&mut self, x: f64) {
        match &mut self.distribution {
            Distribution::Numeric { width, bins, .. } if x.is_finite() => {
                *bins.entry((x / *width).floor() as i64).or_default() += 1.0;
            }
            Distribution::Numeric { .. } => self.nulls += 1,
            // A number where categories are expected is compared as its text.
            Distribution::Categorical { .. } => self.add_text(&format_number(x)),
        }
    }

    pub fn add_text(&mut self, value: &str) {
        match &mut self.distribution {
            Distribution::Categorical { counts } => {
                let listed = self.listed.as_ref().expect("categorical tallies list");
                let bucket = if listed.contains(value) { value } else { OTHER };
                *counts.entry(bucket.to_owned()).or_default() += 1.0;
            }
            // Text where numbers are expected (a label of a numeric class) is parsed.
            Distribution::Numeric { .. } => match value.trim().parse::<f64>() {
                Ok(x) => self.add_number(x),
                Err(_) => self.nulls += 1,
            },
        }
    }

    pub fn add_null(&mut self) {
        self.nulls += 1;
    }

    pub fn finish(self) -> Distribution {
        self.distribution
    }
}

/// How integers print in a profile's top values (`3`, not `3.0`).
fn format_number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        x.to_string()
    }
}

/// Judges `current` against `reference` for `column`; `None` when they cannot be compared
/// (one side empty, or a number on one side and a category on the other: a schema
/// change, which is the contract's business).
pub fn compare(
    column: &str,
    reference: &Distribution,
    current: &Distribution,
    threshold: f64,
) -> Option<ColumnDrift> {
    let (statistic, value, psi) = match (reference, current) {
        (
            Distribution::Numeric {
                width,
                bins: r,
                sigma,
            },
            Distribution::Numeric {
                width: cw, bins: c, ..
            },
        ) => {
            let points = |bins: &BTreeMap<i64, f64>, w: f64| -> Vec<(f64, f64)> {
                bins.iter()
                    .map(|(&i, &n)| ((i as f64 + 0.5) * w, n))
                    .collect()
            };
            let distance = stats::wasserstein(&points(r, *width), &points(c, *cw))?;
            // PSI over the reference's bins: the current side's bins are re-bucketed at
            // the reference's width (its bin midpoints; exact when the widths agree).
            let mut rebinned: BTreeMap<i64, f64> = BTreeMap::new();
            for (&i, &n) in c {
                let mid = (i as f64 + 0.5) * cw;
                *rebinned.entry((mid / width).floor() as i64).or_default() += n;
            }
            let keys: std::collections::BTreeSet<i64> =
                r.keys().chain(rebinned.keys()).copied().collect();
            let expected: Vec<f64> = keys
                .iter()
                .map(|k| r.get(k).copied().unwrap_or(0.0))
                .collect();
            let actual: Vec<f64> = keys
                .iter()
                .map(|k| rebinned.get(k).copied().unwrap_or(0.0))
                .collect();
            (
                Statistic::NormalizedWasserstein,
                distance / sigma.max(MIN_SIGMA),
                stats::psi(&expected, &actual)?,
            )
        }
        (Distribution::Categorical { counts: r }, Distribution::Categorical { counts: c }) => {
            // The reference's categories, and everything else as one bucket.
            let mut keys: Vec<&str> = r.keys().map(String::as_str).collect();
            if !keys.contains(&OTHER) {
                keys.push(OTHER);
            }
            let mut actual = vec![0.0; keys.len()];
            for (k, n) in c {
                let bucket = if r.contains_key(k) { k.as_str() } else { OTHER };
                let at = keys.iter().position(|x| *x == bucket).expect("listed");
                actual[at] += n;
            }
            let expected: Vec<f64> = keys
                .iter()
                .map(|k| r.get(*k).copied().unwrap_or(0.0))
                .collect();
            (
                Statistic::JensenShannon,
                stats::jensen_shannon(&expected, &actual)?,
                stats::psi(&expected, &actual)?,
            )
        }
        _ => return None,
    };
    Some(ColumnDrift {
        column: column.to_owned(),
        statistic,
        value,
        threshold,
        drifted: value > threshold,
        psi,
        reference_count: reference.count(),
        count: current.count(),
    })
}

/// Every column two profiles share, judged (the dataset-to-dataset check a retrain
/// policy of `on: drift` makes), in the reference's column order.
pub fn compare_profiles(
    reference: &[ColumnProfile],
    current: &[ColumnProfile],
    threshold: f64,
) -> Vec<ColumnDrift> {
    reference
        .iter()
        .filter_map(|r| {
            let c = current.iter().find(|c| c.name == r.name)?;
            compare(
                &r.name,
                &Distribution::of_profile(r)?,
                &Distribution::of_profile(c)?,
                threshold,
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::contract::ColumnType;
    use crate::dataset::profile::ColumnAccumulator;

    fn numbers(name: &str, xs: &[f64]) -> ColumnProfile {
        let mut acc = ColumnAccumulator::new(name, ColumnType::Float);
        acc.add_numbers(xs);
        acc.finish()
    }

    fn texts(name: &str, xs: &[&str]) -> ColumnProfile {
        let mut acc = ColumnAccumulator::new(name, ColumnType::String);
        for x in xs {
            acc.add_category(x);
        }
        acc.finish()
    }

    #[test]
    fn the_same_distribution_does_not_drift_and_a_shift_does() {
        let xs: Vec<f64> = (0..10_000)
            .map(|i| ((i * 7919) % 1000) as f64 / 10.0)
            .collect();
        let half: Vec<f64> = xs.iter().step_by(2).copied().collect();
        let shifted: Vec<f64> = xs.iter().map(|x| x + 30.0).collect();
        let reference = [numbers("x", &xs)];
        let same = compare_profiles(&reference, &[numbers("x", &half)], DEFAULT_THRESHOLD);
        assert!(!same[0].drifted && same[0].value < 0.02, "{same:?}");
        let moved = compare_profiles(&reference, &[numbers("x", &shifted)], DEFAULT_THRESHOLD);
        assert_eq!(moved[0].statistic, Statistic::NormalizedWasserstein);
        // Every value moved by 30, about 1.04 standard deviations of U(0, 100).
        assert!((moved[0].value - 30.0 / 28.87).abs() < 0.05, "{moved:?}");
        assert!(moved[0].drifted && moved[0].psi > 0.2);
    }

    #[test]
    fn categories_compare_by_share_with_the_rest_in_one_bucket() {
        let a: Vec<&str> = (0..1000)
            .map(|i| if i % 4 == 0 { "x" } else { "y" })
            .collect();
        let b: Vec<&str> = (0..1000)
            .map(|i| if i % 2 == 0 { "x" } else { "y" })
            .collect();
        let reference = [texts("c", &a)];
        let same = compare_profiles(&reference, &[texts("c", &a)], DEFAULT_THRESHOLD);
        assert_eq!(same[0].value, 0.0);
        let moved = compare_profiles(&reference, &[texts("c", &b)], DEFAULT_THRESHOLD);
        assert_eq!(moved[0].statistic, Statistic::JensenShannon);
        let direct = stats::jensen_shannon(&[250.0, 750.0, 0.0], &[500.0, 500.0, 0.0]).unwrap();
        assert!((moved[0].value - direct).abs() < 1e-12);
        assert!(moved[0].drifted);
        // A value the reference never listed lands in the other bucket.
        let mut tally = Tally::like(&Distribution::of_profile(&reference[0]).unwrap());
        tally.add_text("z");
        tally.add_text("x");
        let Distribution::Categorical { counts } = tally.finish() else {
            panic!()
        };
        assert_eq!(counts[OTHER], 1.0);
        assert_eq!(counts["x"], 1.0);
    }

    #[test]
    fn live_numbers_fall_into_the_reference_bins() {
        let xs: Vec<f64> = (0..1000).map(f64::from).collect();
        let reference = Distribution::of_profile(&numbers("x", &xs)).unwrap();
        let mut tally = Tally::like(&reference);
        for x in &xs {
            tally.add_number(*x);
        }
        tally.add_null();
        tally.add_text("12");
        assert_eq!(tally.nulls, 1);
        let live = tally.finish();
        let verdict = compare("x", &reference, &live, DEFAULT_THRESHOLD).unwrap();
        assert!(verdict.value < 0.01, "{verdict:?}");
        assert_eq!((verdict.reference_count, verdict.count), (1000, 1001));
    }

    #[test]
    fn a_number_and_a_category_are_not_compared() {
        let n = Distribution::of_profile(&numbers("x", &[1.0, 2.0])).unwrap();
        let c = Distribution::of_profile(&texts("x", &["a"])).unwrap();
        assert_eq!(compare("x", &n, &c, 0.1), None);
    }
}
