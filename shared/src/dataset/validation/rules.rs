//! The contract's rules, applied one value, one row and one file at a time.
//!
//! Each check records what it finds in a [`Violations`] and says whether the input
//! passed; what happens to a passing value (profiling, the Parquet snapshot) is the
//! scan's business. The value checks sit on the hot path of ingest, so they parse
//! numbers with exact fast paths and tell values from null tokens by length first.

use std::collections::{HashMap, HashSet};

use crate::dataset::contract::{ColumnType, Contract};
use crate::dataset::profile::hash64;

use super::{Rule, Violations};

/// A column's allowed values, looked up by their profile hash (a value is hashed once for
/// both the check and its category count) and numbered in contract order.
///
/// A string label column without an `allowed` list gets its label values the same way,
/// so a snapshot always has a closed set for it (a file whose labels break the rule gets
/// no snapshot). Its violations are reported as `label_values` only.
pub struct AllowedValues<'c> {
    by_hash: HashMap<u64, (u32, &'c str), foldhash::fast::RandomState>,
    /// The distinct values in contract order (repeats dropped, the first kept): code `n`
    /// is `values[n]`.
    pub values: Vec<&'c str>,
    /// Whether a value outside the set breaks the `allowed_values` rule.
    enforced: bool,
}

/// A checked value, as the scan should count and keep it.
#[derive(Debug, PartialEq)]
pub enum Value<'t> {
    /// Empty or a null token: counted as a null, kept as a null.
    Null,
    /// Broke the encoding or type rule: counted as a null, not kept.
    Unparsed,
    Integer(i64),
    Float(f64),
    Boolean(bool),
    /// A string (a label in its canonical spelling), its profile hash, and its code in
    /// the column's allowed values if it has them and the value is one of them.
    Text {
        text: &'t str,
        hash: u64,
        code: Option<u32>,
    },
}

/// The contract's rules, prepared for checking many values.
pub struct Rules<'c> {
    contract: &'c Contract,
    /// [`length_bit`]s of the null tokens.
    null_lengths: u64,
    allowed: Vec<Option<AllowedValues<'c>>>,
    /// The label column's index.
    label: Option<usize>,
}

impl<'c> Rules<'c> {
    pub fn new(contract: &'c Contract) -> Self {
        Self {
            contract,
            null_lengths: contract
                .csv
                .null_tokens
                .iter()
                .fold(0, |bits, t| bits | length_bit(t)),
            allowed: allowed_values(contract),
            label: contract
                .label
                .as_ref()
                .and_then(|l| contract.columns.iter().position(|c| c.name == l.column)),
        }
    }

    pub fn contract(&self) -> &'c Contract {
        self.contract
    }

    /// Column `i`'s closed set of values, if it has one.
    pub fn allowed(&self, i: usize) -> Option<&AllowedValues<'c>> {
        self.allowed[i].as_ref()
    }

    /// Checks the value of column `i` on `line` (`Err` holds bytes that are not UTF-8);
    /// returns it parsed, and false if it broke a rule.
    #[inline]
    pub fn check_value<'t>(
        &self,
        i: usize,
        text: Result<&'t str, &[u8]>,
        line: u64,
        violations: &mut Violations,
    ) -> (Value<'t>, bool)
    where
        'c: 't,
    {
        let spec = &self.contract.columns[i];
        let col = Some(spec.name.as_str());
        let text = match text {
            Ok(text) => trim(text, self.contract.csv.trim),
            Err(raw) => {
                violations.add(
                    col,
                    Rule::Encoding,
                    || "values must be UTF-8 text".into(),
                    line,
                    &String::from_utf8_lossy(raw),
                );
                return (Value::Unparsed, false);
            }
        };
        if text.is_empty()
            || (self.null_lengths & length_bit(text) != 0
                && self.contract.csv.null_tokens.iter().any(|t| same(t, text)))
        {
            return (Value::Null, true);
        }
        let mut ok = true;
        let label = self
            .contract
            .label
            .as_ref()
            .filter(|_| self.label == Some(i));
        let text = label.map_or(text, |l| l.canonical(text));
        if let Some(label) = label
            && !label.values.iter().any(|v| same(v, text))
        {
            let values = label.values.join(", ");
            violations.add(
                col,
                Rule::LabelValues,
                || format!("labels must be one of: {values}"),
                line,
                text,
            );
            ok = false;
        }
        let number = match spec.kind {
            ColumnType::Integer => parse_i64(text).map(|n| (Value::Integer(n), n as f64)),
            ColumnType::Float => parse_f64(text)
                .filter(|x| x.is_finite())
                .map(|x| (Value::Float(x), x)),
            ColumnType::Boolean => {
                return match parse_bool(text) {
                    Some(v) => (Value::Boolean(v), ok),
                    None => {
                        violations.add(
                            col,
                            Rule::Type,
                            || "values must be true/false".into(),
                            line,
                            text,
                        );
                        (Value::Unparsed, false)
                    }
                };
            }
            ColumnType::String => {
                let hash = hash64(text.as_bytes());
                let allowed = self.allowed[i].as_ref();
                let code = allowed.and_then(|a| {
                    a.by_hash
                        .get(&hash)
                        .filter(|(_, v)| same(v, text))
                        .map(|(code, _)| *code)
                });
                if let Some(allowed) = allowed
                    && allowed.enforced
                    && code.is_none()
                {
                    let n = allowed.values.len();
                    violations.add(
                        col,
                        Rule::AllowedValues,
                        || format!("values must be one of the {n} allowed values"),
                        line,
                        text,
                    );
                    ok = false;
                }
                return (Value::Text { text, hash, code }, ok);
            }
        };
        let Some((value, x)) = number else {
            let expected = if spec.kind == ColumnType::Integer {
                "values must be integers"
            } else {
                "values must be finite numbers"
            };
            violations.add(col, Rule::Type, || expected.into(), line, text);
            return (Value::Unparsed, false);
        };
        if spec.min.is_some_and(|lo| x < lo) || spec.max.is_some_and(|hi| x > hi) {
            let (lo, hi) = (
                spec.min.unwrap_or(f64::NEG_INFINITY),
                spec.max.unwrap_or(f64::INFINITY),
            );
            violations.add(
                col,
                Rule::Range,
                || format!("values must lie in [{lo}, {hi}]"),
                line,
                text,
            );
            ok = false;
        }
        (value, ok)
    }

    /// The header row must name the contract's columns in order; false if it does not.
    pub fn check_header<'f>(
        &self,
        fields: impl Iterator<Item = &'f [u8]>,
        line: u64,
        violations: &mut Violations,
    ) -> bool {
        let found: Vec<String> = fields
            .map(|f| trim(&String::from_utf8_lossy(f), true).to_owned())
            .collect();
        if found == self.contract.column_names() {
            return true;
        }
        let expected = self.contract.column_names().join(",");
        violations.add(
            None,
            Rule::Header,
            || format!("the header must be {expected}"),
            line,
            &found.join(","),
        );
        false
    }

    /// Records a row with `found` fields instead of one per column. `hint` says whether
    /// another delimiter would fit (see [`Rules::delimiter_hint`]).
    pub fn column_count(
        &self,
        found: usize,
        hint: &str,
        line: u64,
        raw: &str,
        violations: &mut Violations,
    ) {
        let expected = self.contract.columns.len();
        violations.add(
            None,
            Rule::ColumnCount,
            || format!("expected {expected} fields per row, found {found}{hint}"),
            line,
            raw,
        );
    }

    /// When a row (its bytes without delimiters, `raw`) has the wrong number of fields,
    /// says whether another delimiter splits it into one field per column.
    pub fn delimiter_hint(&self, raw: &[u8]) -> String {
        let expected = self.contract.columns.len();
        let delimiter = self.contract.csv.delimiter;
        [b',', b';', b'\t', b'|']
            .into_iter()
            .filter(|&d| d != delimiter as u8)
            .find(|&d| raw.iter().filter(|&&b| b == d).count() + 1 == expected)
            .map(|d| {
                format!(
                    " (the row splits into {expected} fields on {:?}: is the delimiter {delimiter:?} right?)",
                    d as char
                )
            })
            .unwrap_or_default()
    }

    /// A Parquet upload must have every column the contract names.
    pub fn check_columns_present(
        &self,
        has: impl Fn(&str) -> bool,
        rows: u64,
        violations: &mut Violations,
    ) {
        for spec in &self.contract.columns {
            if !has(&spec.name) {
                violations.add_summary(
                    Some(&spec.name),
                    Rule::MissingColumn,
                    format!("the Parquet file has no column {:?}", spec.name),
                    rows,
                );
            }
        }
    }

    /// The rules about the file as a whole, once every row was checked: it is not empty,
    /// no column has more nulls than allowed (`nulls` per column, in contract order),
    /// and it has enough rows.
    pub fn check_file(
        &self,
        bytes: u64,
        rows: u64,
        nulls: impl Iterator<Item = u64>,
        violations: &mut Violations,
    ) {
        if bytes == 0 {
            violations.add_summary(None, Rule::EmptyFile, "the file is empty".into(), 0);
        }
        for (spec, nulls) in self.contract.columns.iter().zip(nulls) {
            if let Some(max) = spec.max_null_fraction
                && rows > 0
                && nulls as f64 / rows as f64 > max
            {
                let share = nulls as f64 / rows as f64;
                violations.add_summary(
                    Some(&spec.name),
                    Rule::MaxNullFraction,
                    format!(
                        "at most {:.2}% nulls allowed, found {:.2}%",
                        max * 100.0,
                        share * 100.0
                    ),
                    nulls,
                );
            }
        }
        // An unreadable file's row count means nothing; do not report it as too short.
        let min = self.contract.min_rows.max(1);
        if rows < min && bytes > 0 && !violations.has(Rule::Unreadable) {
            violations.add_summary(
                None,
                Rule::MinRows,
                format!("at least {min} data rows required, found {rows}"),
                rows,
            );
        }
    }
}

fn allowed_values(contract: &Contract) -> Vec<Option<AllowedValues<'_>>> {
    contract
        .columns
        .iter()
        .map(|c| {
            let label_values = contract
                .label
                .as_ref()
                .filter(|l| l.column == c.name && c.kind == ColumnType::String)
                .map(|l| &l.values);
            let listed = c.allowed.as_ref().or(label_values)?;
            let mut seen = HashSet::with_capacity(listed.len());
            let values: Vec<&str> = listed
                .iter()
                .map(String::as_str)
                .filter(|v| seen.insert(*v))
                .collect();
            let by_hash = values
                .iter()
                .enumerate()
                .map(|(n, v)| (hash64(v.as_bytes()), (n as u32, *v)))
                .collect();
            Some(AllowedValues {
                by_hash,
                values,
                enforced: c.allowed.is_some(),
            })
        })
        .collect()
}

/// A bit for the length of `s` (lengths of 63 and more share the top bit), so most
/// values are told apart from the null tokens without comparing any bytes.
fn length_bit(s: &str) -> u64 {
    1 << s.len().min(63)
}

/// String equality without a `memcmp` call: the values compared are a few bytes long.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| x == y)
}

fn trim(s: &str, enabled: bool) -> &str {
    if enabled { s.trim_ascii() } else { s }
}

/// Parses a decimal integer; plain digits (the common case) skip the general parser.
fn parse_i64(s: &str) -> Option<i64> {
    let bytes = s.as_bytes();
    let (negative, digits) = match bytes {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        _ => (false, bytes),
    };
    if digits.is_empty() || digits.len() > 18 {
        // 19+ digits may overflow: let the standard parser decide.
        return s.parse().ok();
    }
    let mut value: i64 = 0;
    for &d in digits {
        let digit = d.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        value = value * 10 + i64::from(digit);
    }
    Some(if negative { -value } else { value })
}

/// Parses a decimal number. Plain `[-]digits[.digits]` with at most 15 digits takes
/// Clinger's exact fast path (an integer below 2^53 divided by an exact power of ten
/// rounds correctly); anything else goes to the standard parser.
fn parse_f64(s: &str) -> Option<f64> {
    const POW10: [f64; 16] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
    ];
    let bytes = s.as_bytes();
    let (negative, rest) = match bytes {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, bytes),
    };
    let (mut mantissa, mut digits, mut scale, mut seen_point) = (0u64, 0usize, 0usize, false);
    for &b in rest {
        match b {
            b'0'..=b'9' => {
                mantissa = mantissa * 10 + u64::from(b - b'0');
                digits += 1;
                scale += usize::from(seen_point);
            }
            b'.' if !seen_point => seen_point = true,
            _ => return s.parse().ok(),
        }
        if digits > 15 {
            return s.parse().ok();
        }
    }
    if digits == 0 {
        return s.parse().ok();
    }
    let value = mantissa as f64 / POW10[scale];
    Some(if negative { -value } else { value })
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "t" | "yes" | "y" | "1" => Some(true),
        "false" | "f" | "no" | "n" | "0" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_parse_like_the_standard_parser() {
        for s in [
            "0",
            "7",
            "-12",
            "+5",
            "123456789012345678",
            "9223372036854775807",
            "-9223372036854775808",
        ] {
            assert_eq!(parse_i64(s), s.parse().ok(), "{s}");
        }
        for s in [
            "",
            "-",
            "+",
            "1.5",
            "1e3",
            " 1",
            "12a",
            "9223372036854775808",
            "0x10",
            "--1",
        ] {
            assert_eq!(parse_i64(s), None, "{s}");
            assert!(s.parse::<i64>().is_err(), "{s}");
        }
    }

    #[test]
    fn floats_parse_exactly_like_the_standard_parser() {
        let cases = [
            "0",
            "-0",
            "1.5",
            "-250.5",
            "0.1",
            "0.3",
            "123456.789",
            "99999999999999.9",
            "1e10",
            "1.5e-3",
            ".5",
            "5.",
            "+2.5",
            "nan",
            "inf",
            "1234567890123456789",
            "0.000000000000000001",
        ];
        for s in cases {
            let expected: Option<f64> = s.parse().ok();
            assert_eq!(
                parse_f64(s).map(f64::to_bits),
                expected.map(f64::to_bits),
                "{s}"
            );
        }
        let mut state = 88172645463325252u64;
        for _ in 0..100_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let s = format!(
                "{}.{:0width$}",
                (state >> 40) % 1_000_000,
                state % 10_000_000,
                width = (state % 8) as usize
            );
            assert_eq!(
                parse_f64(&s).map(f64::to_bits),
                s.parse::<f64>().ok().map(f64::to_bits),
                "{s}"
            );
        }
        for s in ["", "-", ".", "1.2.3", "1,5", "abc"] {
            assert_eq!(parse_f64(s), None, "{s}");
        }
    }

    /// Each value rule, one value at a time: what comes back and what is recorded.
    #[test]
    fn values_are_parsed_and_each_broken_rule_is_recorded_once() {
        let contract = Contract::from_json(
            br#"{"dataset":"r","csv":{"null_tokens":["?"]},"columns":[
                {"name":"n","type":"integer","min":0,"max":10},
                {"name":"x","type":"float"},
                {"name":"b","type":"boolean"},
                {"name":"s","type":"string","allowed":["a","b","a"]},
                {"name":"y","type":"string"}],
              "label":{"column":"y","values":["no","yes"],"aliases":{"Y":"yes"}}}"#,
        )
        .unwrap();
        let rules = Rules::new(&contract);
        let mut v = Violations::default();
        let mut check = |i, text: &'static str| rules.check_value(i, Ok(text), 7, &mut v);
        assert_eq!(check(0, " 4 "), (Value::Integer(4), true));
        assert_eq!(check(0, "?"), (Value::Null, true));
        assert_eq!(check(0, ""), (Value::Null, true));
        assert_eq!(check(0, "11"), (Value::Integer(11), false));
        assert_eq!(check(0, "4.5"), (Value::Unparsed, false));
        assert_eq!(check(1, "inf"), (Value::Unparsed, false));
        assert_eq!(check(2, "Yes"), (Value::Boolean(true), true));
        assert_eq!(check(2, "maybe"), (Value::Unparsed, false));
        let text = |text, code| Value::Text {
            text,
            hash: hash64(text.as_bytes()),
            code,
        };
        assert_eq!(check(3, "b"), (text("b", Some(1)), true));
        assert_eq!(check(3, "c"), (text("c", None), false));
        assert_eq!(check(4, "Y"), (text("yes", Some(1)), true));
        assert_eq!(check(4, "maybe"), (text("maybe", None), false));
        let bad = rules.check_value(0, Err(b"\xff"), 8, &mut v);
        assert_eq!(bad, (Value::Unparsed, false));
        let found: Vec<_> = v
            .finish()
            .violations
            .into_iter()
            .map(|v| (v.column.unwrap(), v.rule, v.count))
            .collect();
        assert_eq!(
            found,
            [
                ("b".into(), Rule::Type, 1),
                ("n".into(), Rule::Encoding, 1),
                ("n".into(), Rule::Type, 1),
                ("n".into(), Rule::Range, 1),
                ("s".into(), Rule::AllowedValues, 1),
                ("x".into(), Rule::Type, 1),
                ("y".into(), Rule::LabelValues, 1),
            ]
        );
    }

    #[test]
    fn file_rules_count_nulls_rows_and_emptiness() {
        let contract = Contract::from_json(
            br#"{"dataset":"f","min_rows":3,"columns":[{"name":"a","type":"integer","max_null_fraction":0.5}]}"#,
        )
        .unwrap();
        let rules = Rules::new(&contract);
        let mut v = Violations::default();
        rules.check_file(10, 2, [2].into_iter(), &mut v);
        let found: Vec<_> = v
            .finish()
            .violations
            .into_iter()
            .map(|v| (v.rule, v.count))
            .collect();
        // File-level rules (no column) come first.
        assert_eq!(found, [(Rule::MinRows, 2), (Rule::MaxNullFraction, 2)]);
        let mut v = Violations::default();
        rules.check_file(0, 0, [0].into_iter(), &mut v);
        let found: Vec<_> = v.finish().violations.into_iter().map(|v| v.rule).collect();
        assert_eq!(found, [Rule::EmptyFile]);
    }
}
