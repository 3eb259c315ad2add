//! Column profiles, built in one streaming pass with bounded memory.
//!
//! The profile is part of a version's manifest and is what drift checks compare later.
//! Every accumulator can be merged with another, so blocks of a file are profiled in
//! parallel and folded together in file order.
//! - Numbers arrive a block at a time: sums around a shift give means and variances
//!   (combined across blocks with Chan et al.'s formula), and each block's histogram
//!   uses the power-of-two bin width that fits its range in [`MAX_BINS`] bins; merged
//!   histograms widen to the coarser width, so no second pass over the file is needed.
//! - Distinct counts are exact up to [`DISTINCT_CAP`] values, then a HyperLogLog
//!   estimate (about 1% error) marked `distinct_exact: false`.
//!   Whole numbers in `[0, SMALL_INTS)` (ages, counts, codes) are counted exactly in a
//!   bitmap instead, which is cheaper than hashing them.
//! - Top values are exact while a column has at most [`CATEGORY_CAP`] distinct values.

use std::hash::BuildHasher;

use serde::{Deserialize, Serialize};

use super::contract::ColumnType;

pub const MAX_BINS: usize = 64;
pub const DISTINCT_CAP: usize = 100_000;
pub const CATEGORY_CAP: usize = 10_000;
pub const TOP_VALUES: usize = 20;
/// Whole numbers below this are counted in a bitmap of this many bits (8 KiB).
const SMALL_INTS: i64 = 1 << 16;

type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::FixedState>;
type FastSet<K> = std::collections::HashSet<K, foldhash::fast::FixedState>;

/// `x.floor() as i64` without a libm call (baseline x86-64 has no rounding instruction);
/// `x` is within ±1e15 here, so the conversion is exact.
fn floor_i64(x: f64) -> i64 {
    let i = x as i64;
    if (i as f64) > x { i - 1 } else { i }
}

/// A hash of a number's bits: SplitMix64's finaliser, which mixes every input bit into
/// the high bits HyperLogLog reads, at a fraction of hashing a byte slice.
fn hash_u64(bits: u64) -> u64 {
    let mut z = bits ^ 0x9E37_79B9_7F4A_7C15;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A fixed-seed hash, so estimates are the same on every run and every block.
pub(crate) fn hash64(bytes: &[u8]) -> u64 {
    foldhash::fast::FixedState::with_seed(0x5_1u64).hash_one(bytes)
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ColumnProfile {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: ColumnType,
    /// Rows seen, nulls included.
    pub count: u64,
    pub nulls: u64,
    pub distinct: u64,
    /// False once more than [`DISTINCT_CAP`] distinct values were seen (then estimated).
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
    inv_width: f64,
    /// (bin index, count), sorted by index; at most MAX_BINS + 1 entries.
    bins: Vec<(i64, u64)>,
    started: bool,
}

impl Histogram {
    fn set_exp(&mut self, exp: i32) {
        self.exp = exp;
        self.inv_width = 2f64.powi(-exp);
    }

    fn add_count(&mut self, index: i64, count: u64) {
        match self.bins.binary_search_by_key(&index, |b| b.0) {
            Ok(i) => self.bins[i].1 += count,
            Err(i) => self.bins.insert(i, (index, count)),
        }
    }

    fn double(&mut self) {
        self.set_exp(self.exp + 1);
        let old = std::mem::take(&mut self.bins);
        for (i, c) in old {
            // Arithmetic shift is floor division by two, negatives included.
            let j = i >> 1;
            match self.bins.last_mut() {
                Some(last) if last.0 == j => last.1 += c,
                _ => self.bins.push((j, c)),
            }
        }
        if self.bins.len() > MAX_BINS {
            self.double();
        }
    }

    /// The bin width (log2) for values in `[lo, hi]`: the narrowest power of two that
    /// puts the range in at most [`MAX_BINS`] bins with indices a double holds exactly.
    /// A narrower range never gets a wider bin, so every block of a column is at most
    /// as coarse as the whole column's range asks, and the finished histogram (brought
    /// to the whole range's width) is the same however the file was cut into blocks.
    fn exp_for_range(lo: f64, hi: f64) -> i32 {
        let span = hi - lo;
        let mut exp = if span > 0.0 {
            (span / (MAX_BINS - 1) as f64).log2().floor() as i32
        } else if lo == 0.0 {
            // Any width holds one zero: the finest, so no other range is finer.
            -1000
        } else {
            // The finest width at which `lo`'s index stays within 1e15.
            (lo.abs() / 1e15).log2().floor() as i32
        };
        let fits = |exp: i32| {
            let inv = 2f64.powi(-exp);
            (lo * inv).abs() <= 1e15
                && (hi * inv).abs() <= 1e15
                && (hi * inv).floor() - (lo * inv).floor() < MAX_BINS as f64
        };
        while !fits(exp) {
            exp += 1;
        }
        exp
    }

    /// A histogram of a whole batch whose range is known: the bin width is chosen once,
    /// and each value is counted by direct indexing.
    fn of_batch(xs: &[f64], lo: f64, hi: f64) -> Self {
        let mut h = Histogram {
            started: true,
            ..Histogram::default()
        };
        h.set_exp(Self::exp_for_range(lo, hi));
        let base = (lo * h.inv_width).floor() as i64;
        let mut counts = [0u64; MAX_BINS];
        for &x in xs {
            counts[(floor_i64(x * h.inv_width) - base) as usize] += 1;
        }
        h.bins = counts
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0)
            .map(|(i, &c)| (base + i as i64, c))
            .collect();
        h
    }

    /// Adds another histogram's counts (both are brought to the wider bin width).
    fn merge(&mut self, mut other: Histogram) {
        if !other.started {
            return;
        }
        if !self.started {
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
            self.add_count(i, c);
        }
        if self.bins.len() > MAX_BINS {
            self.double();
        }
    }

    /// The bins at the width the whole range `[lo, hi]` asks for (see
    /// [`Histogram::exp_for_range`]).
    fn finish(&self, lo: f64, hi: f64) -> Vec<Bin> {
        let mut h = Histogram {
            exp: self.exp,
            inv_width: self.inv_width,
            bins: self.bins.clone(),
            started: self.started,
        };
        let exp = Self::exp_for_range(lo, hi);
        while h.exp < exp {
            h.double();
        }
        let w = 2f64.powi(h.exp);
        h.bins
            .iter()
            .map(|&(i, count)| Bin {
                lo: i as f64 * w,
                hi: (i + 1) as f64 * w,
                count,
            })
            .collect()
    }
}

/// HyperLogLog with 2^14 registers (about 0.8% standard error), for distinct counts
/// beyond what is worth counting exactly.
#[derive(Debug, Clone)]
struct HyperLogLog {
    registers: Vec<u8>,
}

impl HyperLogLog {
    const P: u32 = 14;

    fn new() -> Self {
        Self {
            registers: vec![0; 1 << Self::P],
        }
    }

    fn add(&mut self, hash: u64) {
        let index = (hash >> (64 - Self::P)) as usize;
        let rank = ((hash << Self::P) | (1 << (Self::P - 1))).leading_zeros() as u8 + 1;
        let r = &mut self.registers[index];
        *r = (*r).max(rank);
    }

    fn merge(&mut self, other: &HyperLogLog) {
        for (a, b) in self.registers.iter_mut().zip(&other.registers) {
            *a = (*a).max(*b);
        }
    }

    fn estimate(&self) -> u64 {
        let m = self.registers.len() as f64;
        let alpha = 0.7213 / (1.0 + 1.079 / m);
        let sum: f64 = self.registers.iter().map(|&r| 2f64.powi(-(r as i32))).sum();
        let raw = alpha * m * m / sum;
        let zeros = self.registers.iter().filter(|&&r| r == 0).count();
        // Linear counting is more accurate while many registers are still empty.
        let estimate = if raw <= 2.5 * m && zeros > 0 {
            m * (m / zeros as f64).ln()
        } else {
            raw
        };
        estimate.round() as u64
    }
}

/// Counts distinct values exactly (by 64-bit hash) until [`DISTINCT_CAP`], then estimates.
#[derive(Debug)]
enum Distinct {
    Exact(FastSet<u64>),
    Estimated(Box<HyperLogLog>),
}

impl Default for Distinct {
    fn default() -> Self {
        Distinct::Exact(FastSet::default())
    }
}

impl Distinct {
    fn add(&mut self, hash: u64) {
        match self {
            Distinct::Exact(set) => {
                if set.insert(hash) && set.len() > DISTINCT_CAP {
                    self.switch_to_estimate();
                }
            }
            Distinct::Estimated(hll) => hll.add(hash),
        }
    }

    fn switch_to_estimate(&mut self) {
        if let Distinct::Exact(set) = self {
            let mut hll = HyperLogLog::new();
            set.iter().for_each(|&h| hll.add(h));
            *self = Distinct::Estimated(Box::new(hll));
        }
    }

    fn merge(&mut self, other: Distinct) {
        match other {
            Distinct::Exact(theirs) => theirs.into_iter().for_each(|h| self.add(h)),
            Distinct::Estimated(theirs) => {
                self.switch_to_estimate();
                if let Distinct::Estimated(mine) = self {
                    mine.merge(&theirs);
                }
            }
        }
    }

    fn count(&self) -> (u64, bool) {
        match self {
            Distinct::Exact(set) => (set.len() as u64, true),
            Distinct::Estimated(hll) => (hll.estimate(), false),
        }
    }
}

/// Accumulates one column's profile.
#[derive(Debug)]
pub struct ColumnAccumulator {
    name: String,
    kind: ColumnType,
    count: u64,
    nulls: u64,
    // numeric: sums of (x - shift), which need no division per value and stay
    // accurate because the shift (the first value) is close to the data.
    n: u64,
    shift: f64,
    sum: f64,
    sum_sq: f64,
    min: f64,
    max: f64,
    histogram: Histogram,
    distinct: Distinct,
    /// Bitmap of the whole numbers in `[0, SMALL_INTS)` seen (allocated at the first).
    small_ints: Option<Box<[u64]>>,
    // categorical: counts by value hash (hashed once per value), names for the first
    // CATEGORY_CAP values.
    counts: FastMap<u64, u64>,
    names: FastMap<u64, String>,
}

impl ColumnAccumulator {
    pub fn new(name: &str, kind: ColumnType) -> Self {
        Self {
            name: name.to_owned(),
            kind,
            count: 0,
            nulls: 0,
            n: 0,
            shift: 0.0,
            sum: 0.0,
            sum_sq: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            histogram: Histogram::default(),
            distinct: Distinct::default(),
            small_ints: None,
            counts: FastMap::default(),
            names: FastMap::default(),
        }
    }

    /// Starts counting distinct values by estimate straight away: once the merged
    /// profile has gone past [`DISTINCT_CAP`], exact counting in later blocks is wasted
    /// work. The estimate is the same either way (it depends only on the value hashes).
    pub fn estimate_distinct(&mut self) {
        self.distinct.switch_to_estimate();
    }

    pub fn distinct_is_estimated(&self) -> bool {
        matches!(self.distinct, Distinct::Estimated(_))
    }

    pub fn add_null(&mut self) {
        self.count += 1;
        self.nulls += 1;
    }

    /// Adds a block's numbers in tight loops.
    pub fn add_numbers(&mut self, xs: &[f64]) {
        let Some(&first) = xs.first() else { return };
        let mut part = ColumnAccumulator::new("", self.kind);
        let (mut sum, mut sum_sq, mut lo, mut hi) = (0.0, 0.0, f64::INFINITY, f64::NEG_INFINITY);
        for &x in xs {
            let d = x - first;
            sum += d;
            sum_sq += d * d;
            lo = lo.min(x);
            hi = hi.max(x);
        }
        (
            part.count,
            part.n,
            part.shift,
            part.sum,
            part.sum_sq,
            part.min,
            part.max,
        ) = (xs.len() as u64, xs.len() as u64, first, sum, sum_sq, lo, hi);
        part.histogram = Histogram::of_batch(xs, lo, hi);
        for &x in xs {
            let i = x as i64;
            if i as f64 == x && (0..SMALL_INTS).contains(&i) {
                let bitmap = self
                    .small_ints
                    .get_or_insert_with(|| vec![0u64; SMALL_INTS as usize / 64].into());
                bitmap[i as usize / 64] |= 1 << (i % 64);
            } else {
                self.distinct.add(hash_u64(x.to_bits()));
            }
        }
        self.merge(part);
    }

    pub fn add_category(&mut self, value: &str) {
        self.add_category_hashed(hash64(value.as_bytes()), value);
    }

    /// [`add_category`](Self::add_category) when the caller already has `hash64(value)`.
    pub(crate) fn add_category_hashed(&mut self, h: u64, value: &str) {
        self.count += 1;
        // Every counted value is already in `distinct` (both merge alike), so the
        // common case, a value seen before, costs one lookup.
        if let Some(c) = self.counts.get_mut(&h) {
            *c += 1;
            return;
        }
        self.distinct.add(h);
        if self.names.len() < CATEGORY_CAP {
            self.counts.insert(h, 1);
            self.names.insert(h, value.to_owned());
        }
    }

    /// (mean, sum of squared deviations) of the numbers seen.
    fn moments(&self) -> (f64, f64) {
        if self.n == 0 {
            return (0.0, 0.0);
        }
        let n = self.n as f64;
        let mean_d = self.sum / n;
        (
            self.shift + mean_d,
            (self.sum_sq - self.sum * mean_d).max(0.0),
        )
    }

    /// Folds in the accumulator of a later part of the same column (parallel scans).
    pub fn merge(&mut self, other: ColumnAccumulator) {
        self.count += other.count;
        self.nulls += other.nulls;
        if other.n > 0 {
            // Chan et al.'s pairwise combination of means and squared deviations,
            // re-expressed as sums around this accumulator's shift.
            let (mean_a, m2_a) = self.moments();
            let (mean_b, m2_b) = other.moments();
            let (na, nb) = (self.n as f64, other.n as f64);
            let n = na + nb;
            let delta = mean_b - mean_a;
            let mean = mean_a + delta * nb / n;
            let m2 = m2_a + m2_b + delta * delta * na * nb / n;
            if self.n == 0 {
                self.shift = other.shift;
            }
            self.n += other.n;
            let mean_d = mean - self.shift;
            self.sum = mean_d * n;
            self.sum_sq = m2 + self.sum * mean_d;
            self.min = self.min.min(other.min);
            self.max = self.max.max(other.max);
        }
        self.histogram.merge(other.histogram);
        self.distinct.merge(other.distinct);
        match (&mut self.small_ints, other.small_ints) {
            (Some(mine), Some(theirs)) => mine
                .iter_mut()
                .zip(theirs.iter())
                .for_each(|(a, b)| *a |= b),
            (mine @ None, theirs) => *mine = theirs,
            (Some(_), None) => {}
        }
        let mut names = other.names;
        for (h, count) in other.counts {
            if let Some(c) = self.counts.get_mut(&h) {
                *c += count;
            } else if self.names.len() < CATEGORY_CAP
                && let Some(name) = names.remove(&h)
            {
                self.counts.insert(h, count);
                self.names.insert(h, name);
            }
        }
    }

    pub fn nulls(&self) -> u64 {
        self.nulls
    }

    pub fn finish(&self) -> ColumnProfile {
        let numeric = (self.kind.is_numeric() && self.n > 0).then(|| {
            let (mean, m2) = self.moments();
            NumericProfile {
                min: self.min,
                max: self.max,
                mean,
                std: if self.n > 1 {
                    (m2 / (self.n - 1) as f64).sqrt()
                } else {
                    0.0
                },
                histogram: self.histogram.finish(self.min, self.max),
            }
        });
        let mut top: Vec<ValueCount> = self
            .counts
            .iter()
            .filter_map(|(h, &count)| {
                Some(ValueCount {
                    value: self.names.get(h)?.clone(),
                    count,
                })
            })
            .collect();
        top.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
        top.truncate(TOP_VALUES);
        let (hashed, distinct_exact) = self.distinct.count();
        let small = self
            .small_ints
            .as_ref()
            .map_or(0, |b| b.iter().map(|w| u64::from(w.count_ones())).sum());
        let distinct = hashed + small;
        ColumnProfile {
            name: self.name.clone(),
            kind: self.kind,
            count: self.count,
            nulls: self.nulls,
            distinct,
            distinct_exact,
            numeric,
            top_values: top,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every bin counts exactly the values in [lo, hi), and the bins hold all values.
    fn assert_bins_cover(xs: &[f64], histogram: &[Bin]) {
        assert!(histogram.len() <= MAX_BINS);
        assert_eq!(
            histogram.iter().map(|b| b.count).sum::<u64>(),
            xs.len() as u64
        );
        for b in histogram {
            let inside = xs.iter().filter(|&&x| x >= b.lo && x < b.hi).count() as u64;
            assert_eq!(inside, b.count, "bin [{}, {})", b.lo, b.hi);
        }
    }

    #[test]
    fn numeric_profile_matches_a_direct_computation() {
        let xs: Vec<f64> = (0..10_000)
            .map(|i| ((i * 7919) % 1000) as f64 - 250.5)
            .collect();
        let mut acc = ColumnAccumulator::new("x", ColumnType::Float);
        acc.add_numbers(&xs);
        acc.add_null();
        let p = acc.finish();
        let n = xs.len() as f64;
        let mean = xs.iter().sum::<f64>() / n;
        let std = (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
        let num = p.numeric.unwrap();
        assert_eq!((p.count, p.nulls, p.distinct), (10_001, 1, 1000));
        assert!((num.mean - mean).abs() < 1e-9 && (num.std - std).abs() < 1e-9);
        assert_eq!((num.min, num.max), (-250.5, 748.5));
        assert_bins_cover(&xs, &num.histogram);
    }

    #[test]
    fn merged_parts_profile_like_the_whole() {
        let xs: Vec<f64> = (0..5_000)
            .map(|i| ((i * 37) % 911) as f64 * 0.25 - 30.0)
            .collect();
        let mut whole = ColumnAccumulator::new("x", ColumnType::Float);
        whole.add_numbers(&xs);
        let mut merged = ColumnAccumulator::new("x", ColumnType::Float);
        for part in xs.chunks(777) {
            let mut acc = ColumnAccumulator::new("x", ColumnType::Float);
            acc.add_numbers(part);
            acc.add_null();
            merged.merge(acc);
        }
        let (w, m) = (whole.finish(), merged.finish());
        let (wn, mn) = (w.numeric.unwrap(), m.numeric.unwrap());
        assert_eq!((m.count - m.nulls, m.distinct), (w.count, w.distinct));
        assert!((wn.mean - mn.mean).abs() < 1e-9 && (wn.std - mn.std).abs() < 1e-9);
        assert_eq!((wn.min, wn.max), (mn.min, mn.max));
        assert_bins_cover(&xs, &mn.histogram);
        assert_eq!(
            wn.histogram, mn.histogram,
            "the same bins however it was cut"
        );
        // A part that is one repeated value, or a narrow one, is no coarser than the
        // whole: the bins still come out as the whole range asks.
        let mut uneven = ColumnAccumulator::new("x", ColumnType::Float);
        for part in [&xs[..1], &[xs[0]; 50][..], &xs[1..3], &xs[3..]] {
            let mut acc = ColumnAccumulator::new("x", ColumnType::Float);
            acc.add_numbers(part);
            uneven.merge(acc);
        }
        let un = uneven.finish().numeric.unwrap();
        assert_bins_cover(&[xs.clone(), vec![xs[0]; 50]].concat(), &un.histogram);
        let edges = |h: &[Bin]| h.iter().map(|b| (b.lo, b.hi)).collect::<Vec<_>>();
        assert!(
            edges(&un.histogram)
                .iter()
                .all(|e| edges(&wn.histogram).contains(e))
        );
    }

    #[test]
    fn one_batch_profiles_like_many() {
        let xs: Vec<f64> = (0..20_000)
            .map(|i| ((i * 7919) % 4001) as f64 * 0.5 - 700.0)
            .collect();
        let mut one = ColumnAccumulator::new("x", ColumnType::Float);
        one.add_numbers(&xs);
        let mut batched = ColumnAccumulator::new("x", ColumnType::Float);
        xs.chunks(3000).for_each(|c| batched.add_numbers(c));
        let (a, b) = (one.finish(), batched.finish());
        let (an, bn) = (a.numeric.unwrap(), b.numeric.unwrap());
        assert_eq!(
            (a.count, a.distinct, an.min, an.max),
            (b.count, b.distinct, bn.min, bn.max)
        );
        assert!((an.mean - bn.mean).abs() < 1e-9 && (an.std - bn.std).abs() < 1e-9);
        assert_bins_cover(&xs, &an.histogram);
        assert_eq!(
            an.histogram, bn.histogram,
            "the same bins however it was cut"
        );
        let mut constant = ColumnAccumulator::new("c", ColumnType::Integer);
        constant.add_numbers(&[5.0; 10]);
        let c = constant.finish().numeric.unwrap();
        assert_eq!(
            (c.std, c.histogram.len(), c.histogram[0].count),
            (0.0, 1, 10)
        );
    }

    #[test]
    fn floor_matches_the_standard_floor() {
        for x in [
            0.0, -0.0, 0.5, -0.5, 1.0, -1.0, 2.999, -2.999, 1e15, -1e15, -1e-300, 12345.0,
        ] {
            assert_eq!(floor_i64(x), x.floor() as i64, "{x}");
        }
    }

    #[test]
    fn distinct_counts_switch_to_an_estimate_past_the_cap() {
        let mut acc = ColumnAccumulator::new("id", ColumnType::Integer);
        let n = 3 * DISTINCT_CAP as u64;
        acc.add_numbers(&(0..n / 2).map(|i| i as f64).collect::<Vec<_>>());
        let mut second = ColumnAccumulator::new("id", ColumnType::Integer);
        let repeated: Vec<f64> = (n / 2..n).flat_map(|i| [i as f64, i as f64]).collect();
        second.add_numbers(&repeated);
        acc.merge(second);
        let p = acc.finish();
        assert!(!p.distinct_exact);
        let error = (p.distinct as f64 - n as f64).abs() / n as f64;
        assert!(error < 0.03, "estimate {} for {n}", p.distinct);
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
