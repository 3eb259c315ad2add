//! One block's values: checked against the contract's rules, profiled, and buffered as
//! typed columns that become the snapshot's row groups while the file is valid.

use polars::prelude::*;
use polars_parquet::write::RowGroupIterColumns;

use crate::dataset::contract::Contract;
use crate::dataset::profile::ColumnAccumulator;
use crate::dataset::validation::{Rules, Violations, rules::Value};

use super::ScanError;
use super::columns::ColumnBuffer;
use super::snapshot::RowGroupEncoder;

/// What one block contributes to the scan.
pub(super) struct BlockResult {
    pub accumulators: Vec<ColumnAccumulator>,
    pub violations: Violations,
    pub rows: u64,
    /// The block's rows, encoded as Parquet row groups; `None` once a rule was broken.
    pub row_groups: Option<Vec<RowGroupIterColumns<'static, PolarsError>>>,
}

pub(super) fn accumulators(contract: &Contract) -> Vec<ColumnAccumulator> {
    contract
        .columns
        .iter()
        .map(|c| ColumnAccumulator::new(&c.name, c.kind))
        .collect()
}

/// Checks one block's values against the contract, profiles them, and buffers them.
pub(super) struct BlockChecker<'a> {
    rules: &'a Rules<'a>,
    /// Each numeric column's values, profiled in one batch when the block ends. While
    /// the batch is being built its buffers hold them instead (one copy, not two).
    numbers: Vec<Vec<f64>>,
    pub accumulators: Vec<ColumnAccumulator>,
    pub violations: Violations,
    buffers: Option<Vec<ColumnBuffer>>,
    pub rows: u64,
}

impl<'a> BlockChecker<'a> {
    /// `types` are the snapshot's column types; `rows` is the expected number of rows,
    /// so buffers are sized once.
    pub fn new(rules: &'a Rules<'a>, types: &[DataType], rows: usize) -> Self {
        let contract = rules.contract();
        Self {
            rules,
            numbers: vec![Vec::new(); contract.columns.len()],
            accumulators: accumulators(contract),
            violations: Violations::default(),
            buffers: Some(
                contract
                    .columns
                    .iter()
                    .zip(types)
                    .map(|(c, dtype)| ColumnBuffer::new(&c.name, dtype, rows))
                    .collect(),
            ),
            rows: 0,
        }
    }

    /// Stops building the batch: a file that breaks a rule gets no snapshot.
    pub fn reject(&mut self) {
        if let Some(buffers) = self.buffers.take() {
            for (numbers, buffer) in self.numbers.iter_mut().zip(&buffers) {
                if let Some(xs) = buffer.numbers() {
                    numbers.extend_from_slice(&xs);
                }
            }
        }
    }

    pub fn check_header(&mut self, record: &csv::ByteRecord, line: u64) {
        if !self
            .rules
            .check_header(record.iter(), line, &mut self.violations)
        {
            self.reject();
        }
    }

    /// A row with the wrong number of fields: counted as a row, recorded, rejected.
    pub fn wrong_field_count(&mut self, found: usize, hint: &str, line: u64, raw: &str) {
        self.rows += 1;
        self.reject();
        self.rules
            .column_count(found, hint, line, raw, &mut self.violations);
    }

    /// Checks a CSV record. UTF-8 is validated once for the whole record; a field is
    /// then a slice of it (falling back to per-field checks to name the bad column).
    pub fn check_record(&mut self, record: &csv::ByteRecord, line: u64) {
        self.rows += 1;
        let whole = std::str::from_utf8(record.as_slice()).ok();
        for (i, raw) in record.iter().enumerate() {
            let text = whole
                .and_then(|w| w.get(record.range(i)?))
                .map_or_else(|| std::str::from_utf8(raw).map_err(|_| raw), Ok);
            if !self.check_value(i, text, line) {
                self.reject();
            }
        }
    }

    /// Checks a row of already-decoded values (Parquet input).
    pub fn check_fields<'f>(&mut self, fields: impl Iterator<Item = &'f str>, line: u64) {
        self.rows += 1;
        for (i, text) in fields.enumerate() {
            if !self.check_value(i, Ok(text), line) {
                self.reject();
            }
        }
    }

    /// Checks, profiles and buffers one value; false if it broke a rule.
    #[inline]
    fn check_value(&mut self, i: usize, text: Result<&str, &[u8]>, line: u64) -> bool {
        let (value, ok) = self.rules.check_value(i, text, line, &mut self.violations);
        let acc = &mut self.accumulators[i];
        let buffer = self.buffers.as_mut().map(|b| &mut b[i]);
        match value {
            Value::Null => {
                acc.add_null();
                if let Some(b) = buffer {
                    b.push_null();
                }
            }
            Value::Unparsed => acc.add_null(),
            // Numbers are profiled in one batch when the block ends (see `finish`).
            Value::Integer(n) => match buffer {
                Some(ColumnBuffer::Integer(b)) => b.push(n),
                _ => self.numbers[i].push(n as f64),
            },
            Value::Float(x) => match buffer {
                Some(ColumnBuffer::Float(b)) => b.push(x),
                _ => self.numbers[i].push(x),
            },
            Value::Boolean(v) => {
                if let Some(ColumnBuffer::Boolean(b)) = buffer {
                    b.append_value(v);
                }
                acc.add_category(if v { "true" } else { "false" });
            }
            Value::Text { text, hash, code } => {
                match (buffer, code) {
                    (Some(ColumnBuffer::String(b)), _) => b.append_value(text),
                    (Some(ColumnBuffer::Enum { codes, .. }), Some(code)) => codes.push(code),
                    _ => {}
                }
                acc.add_category_hashed(hash, text);
            }
        }
        ok
    }

    /// Profiles the block's numbers and, while the file is valid so far, encodes its
    /// rows as Parquet row groups here on the worker (the merger only writes bytes).
    pub fn finish(mut self, encoder: Option<&RowGroupEncoder>) -> Result<BlockResult, ScanError> {
        for (i, acc) in self.accumulators.iter_mut().enumerate() {
            match self.buffers.as_ref().and_then(|b| b[i].numbers()) {
                Some(buffered) => acc.add_numbers(&buffered),
                None => acc.add_numbers(&self.numbers[i]),
            }
        }
        let row_groups = match (self.buffers, encoder) {
            (Some(buffers), Some(encoder)) => {
                let columns: Vec<Column> = buffers.into_iter().map(ColumnBuffer::finish).collect();
                Some(encoder.encode(&DataFrame::new(self.rows as usize, columns)?)?)
            }
            _ => None,
        };
        Ok(BlockResult {
            accumulators: self.accumulators,
            violations: self.violations,
            rows: self.rows,
            row_groups,
        })
    }
}
