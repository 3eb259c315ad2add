//! Column profiles, built in one streaming pass with bounded memory.
//!
//! The profile is part of a version's manifest and is what drift checks compare later.
//! Means and variances use Welford's update; the histogram uses power-of-two bin widths
//! that double (merging neighbours) whenever there would be more than [`MAX_BINS`]
//! bins, so it needs neither a second pass nor the range in advance. Distinct counts
//! and category counts are exact up to [`DISTINCT_CAP`] values, then marked inexact.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::contract::ColumnType;

pub const MAX_BINS: usize = 64;
pub const DISTINCT_CAP: usize = 100_000;
pub const TOP_VALUES: usize = 20;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ColumnProfile {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: ColumnType,
    /// Rows seen, nulls included.
    pub count: u64,
    pub nulls: u64,
    pub distinct: u64,
    /// False once more than [`DISTINCT_CAP`] distinct values were seen.
    pub distinct_exact: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numeric: Option<NumericProfile>,
    /// Most frequent values with their counts (categorical columns).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub top_values: Vec<ValueCount>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NumericProfile {
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    /// Sample standard deviation (n - 1), as pandas reports it.
    pub std: f64,
    pub histogram: Vec<Bin>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Bin {
    /// Inclusive lower edge.
    pub lo: f64,
    /// Exclusive upper edge.
    pub hi: f64,
    pub count: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ValueCount {
    pub value: String,
    pub count: u64,
}

/// A streaming histogram with power-of-two bin widths.
#[derive(Debug, Default)]
struct Histogram {
    /// log2 of the bin width.
    exp: i32,
    bins: BTreeMap<i64, u64>,
}

impl Histogram {
    fn add(&mut self, x: f64) {
        if self.bins.is_empty() && self.exp == 0 {
            // Start about 1/1024 of the first value's magnitude; doubling widens it.
            self.exp = if x == 0.0 {
                -10
            } else {
                x.abs().log2().floor() as i32 - 10
            };
        }
        while (x / self.width()).abs() > 1e15 {
            self.double();
        }
        *self
            .bins
            .entry((x / self.width()).floor() as i64)
            .or_default() += 1;
        while self.bins.len() > MAX_BINS {
            self.double();
        }
    }

    fn width(&self) -> f64 {
        2f64.powi(self.exp)
    }

    fn double(&mut self) {
        self.exp += 1;
        let old = std::mem::take(&mut self.bins);
        for (i, c) in old {
            // Arithmetic shift is floor division by two, negatives included.
            *self.bins.entry(i >> 1).or_default() += c;
        }
    }

    /// Adds another histogram's counts (both are brought to the wider bin width).
    fn merge(&mut self, mut other: Histogram) {
        if other.bins.is_empty() {
            return;
        }
        if self.bins.is_empty() {
            *self = other;
            return;
        }
        while self.exp < other.exp {
            self.double();
        }
        while other.exp < self.exp {
            other.double();
        }
        for (i, c) in other.bins {
            *self.bins.entry(i).or_default() += c;
        }
        while self.bins.len() > MAX_BINS {
            self.double();
        }
    }

    fn finish(&self) -> Vec<Bin> {
        let w = self.width();
        self.bins
            .iter()
            .map(|(&i, &count)| Bin {
                lo: i as f64 * w,
                hi: (i + 1) as f64 * w,
                count,
            })
            .collect()
    }
}

/// Accumulates one column's profile.
#[derive(Debug)]
pub struct ColumnAccumulator {
    name: String,
    kind: ColumnType,
    count: u64,
    nulls: u64,
    // numeric
    n: u64,
    mean: f64,
    m2: f64,
    min: f64,
    max: f64,
    histogram: Histogram,
    numeric_distinct: HashSet<u64>,
    // categorical
    categories: HashMap<String, u64>,
    distinct_exact: bool,
}

impl ColumnAccumulator {
    pub fn new(name: &str, kind: ColumnType) -> Self {
        Self {
            name: name.to_owned(),
            kind,
            count: 0,
            nulls: 0,
            n: 0,
            mean: 0.0,
            m2: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            histogram: Histogram::default(),
            numeric_distinct: HashSet::new(),
            categories: HashMap::new(),
            distinct_exact: true,
        }
    }

    pub fn add_null(&mut self) {
        self.count += 1;
        self.nulls += 1;
    }

    pub fn add_number(&mut self, x: f64) {
        self.count += 1;
        self.n += 1;
        let delta = x - self.mean;
        self.mean += delta / self.n as f64;
        self.m2 += delta * (x - self.mean);
        self.min = self.min.min(x);
        self.max = self.max.max(x);
        self.histogram.add(x);
        if self.numeric_distinct.len() < DISTINCT_CAP {
            // +0.0 and -0.0 are one value.
            self.numeric_distinct
                .insert(if x == 0.0 { 0 } else { x.to_bits() });
        } else if !self.numeric_distinct.contains(&x.to_bits()) {
            self.distinct_exact = false;
        }
    }

    pub fn add_category(&mut self, value: &str) {
        self.count += 1;
        if let Some(c) = self.categories.get_mut(value) {
            *c += 1;
        } else if self.categories.len() < DISTINCT_CAP {
            self.categories.insert(value.to_owned(), 1);
        } else {
            self.distinct_exact = false;
        }
    }

    /// Folds in the accumulator of a later part of the same column (parallel scans).
    pub fn merge(&mut self, other: ColumnAccumulator) {
        self.count += other.count;
        self.nulls += other.nulls;
        if other.n > 0 {
            // Chan et al.'s pairwise update of mean and M2.
            let n = (self.n + other.n) as f64;
            let delta = other.mean - self.mean;
            self.mean += delta * other.n as f64 / n;
            self.m2 += other.m2 + delta * delta * self.n as f64 * other.n as f64 / n;
            self.n += other.n;
            self.min = self.min.min(other.min);
            self.max = self.max.max(other.max);
        }
        self.histogram.merge(other.histogram);
        self.distinct_exact &= other.distinct_exact;
        for x in other.numeric_distinct {
            if self.numeric_distinct.len() < DISTINCT_CAP {
                self.numeric_distinct.insert(x);
            } else if !self.numeric_distinct.contains(&x) {
                self.distinct_exact = false;
            }
        }
        for (value, count) in other.categories {
            if let Some(c) = self.categories.get_mut(&value) {
                *c += count;
            } else if self.categories.len() < DISTINCT_CAP {
                self.categories.insert(value, count);
            } else {
                self.distinct_exact = false;
            }
        }
    }

    pub fn nulls(&self) -> u64 {
        self.nulls
    }

    pub fn finish(&self) -> ColumnProfile {
        let numeric = (self.kind.is_numeric() && self.n > 0).then(|| NumericProfile {
            min: self.min,
            max: self.max,
            mean: self.mean,
            std: if self.n > 1 {
                (self.m2 / (self.n - 1) as f64).sqrt()
            } else {
                0.0
            },
            histogram: self.histogram.finish(),
        });
        let mut top: Vec<ValueCount> = self
            .categories
            .iter()
            .map(|(v, &c)| ValueCount {
                value: v.clone(),
                count: c,
            })
            .collect();
        top.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
        top.truncate(TOP_VALUES);
        let distinct = if self.kind.is_numeric() {
            self.numeric_distinct.len()
        } else {
            self.categories.len()
        };
        ColumnProfile {
            name: self.name.clone(),
            kind: self.kind,
            count: self.count,
            nulls: self.nulls,
            distinct: distinct as u64,
            distinct_exact: self.distinct_exact,
            numeric,
            top_values: top,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_profile_matches_a_direct_computation() {
        let xs: Vec<f64> = (0..10_000)
            .map(|i| ((i * 7919) % 1000) as f64 - 250.5)
            .collect();
        let mut acc = ColumnAccumulator::new("x", ColumnType::Float);
        for &x in &xs {
            acc.add_number(x);
        }
        acc.add_null();
        let p = acc.finish();
        let n = xs.len() as f64;
        let mean = xs.iter().sum::<f64>() / n;
        let std = (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
        let num = p.numeric.unwrap();
        assert_eq!((p.count, p.nulls, p.distinct), (10_001, 1, 1000));
        assert!((num.mean - mean).abs() < 1e-9 && (num.std - std).abs() < 1e-9);
        assert_eq!((num.min, num.max), (-250.5, 748.5));
        assert!(num.histogram.len() <= MAX_BINS);
        assert_eq!(num.histogram.iter().map(|b| b.count).sum::<u64>(), 10_000);
        for b in &num.histogram {
            let inside = xs.iter().filter(|&&x| x >= b.lo && x < b.hi).count() as u64;
            assert_eq!(inside, b.count, "bin [{}, {})", b.lo, b.hi);
        }
    }

    #[test]
    fn merged_parts_profile_like_the_whole() {
        let xs: Vec<f64> = (0..5_000)
            .map(|i| ((i * 37) % 911) as f64 * 0.25 - 30.0)
            .collect();
        let mut whole = ColumnAccumulator::new("x", ColumnType::Float);
        xs.iter().for_each(|&x| whole.add_number(x));
        let mut merged = ColumnAccumulator::new("x", ColumnType::Float);
        for part in xs.chunks(777) {
            let mut acc = ColumnAccumulator::new("x", ColumnType::Float);
            part.iter().for_each(|&x| acc.add_number(x));
            acc.add_null();
            merged.merge(acc);
        }
        let (w, m) = (whole.finish(), merged.finish());
        let (wn, mn) = (w.numeric.unwrap(), m.numeric.unwrap());
        assert_eq!((m.count - m.nulls, m.distinct), (w.count, w.distinct));
        assert!((wn.mean - mn.mean).abs() < 1e-9 && (wn.std - mn.std).abs() < 1e-9);
        assert_eq!((wn.min, wn.max), (mn.min, mn.max));
        assert_eq!(mn.histogram.iter().map(|b| b.count).sum::<u64>(), 5_000);
        for b in &mn.histogram {
            assert_eq!(
                xs.iter().filter(|&&x| x >= b.lo && x < b.hi).count() as u64,
                b.count
            );
        }
    }

    #[test]
    fn categories_are_counted_and_ranked() {
        let mut acc = ColumnAccumulator::new("c", ColumnType::String);
        for v in ["b", "a", "b", "c", "b", "a"] {
            acc.add_category(v);
        }
        let p = acc.finish();
        assert_eq!(p.distinct, 3);
        let top: Vec<_> = p
            .top_values
            .iter()
            .map(|v| (v.value.as_str(), v.count))
            .collect();
        assert_eq!(top, [("b", 3), ("a", 2), ("c", 1)]);
        assert!(p.numeric.is_none());
    }
}
