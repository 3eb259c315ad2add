//! One streaming pass over an uploaded file: hash, parse, validate, profile, and write
//! the Parquet snapshot, in bounded memory.
//!
//! CSV is parsed record by record with the `csv` crate rather than polars' CSV reader:
//! the quarantine report must name the line and value of every broken rule, and polars
//! fails a whole batch on a ragged row or bad UTF-8 without saying where. Polars builds
//! the typed column batches and writes (and, for Parquet uploads, reads) the Parquet.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, Write};
use std::path::Path;

use polars::prelude::*;
use sha2::{Digest, Sha256};

use super::contract::{ColumnType, Contract};
use super::profile::{ColumnAccumulator, ColumnProfile};
use super::validation::{Rule, ValidationResult, Violations};

/// Rows per Parquet row group (and per in-memory batch).
const BATCH_ROWS: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("reading the upload failed: {0}")]
    Read(#[from] std::io::Error),
    #[error("writing the Parquet snapshot failed: {0}")]
    Parquet(String),
}

impl From<PolarsError> for ScanError {
    fn from(e: PolarsError) -> Self {
        ScanError::Parquet(e.to_string())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceFormat {
    Csv,
    Parquet,
}

#[derive(Debug)]
pub struct ScanOutput {
    pub format: SourceFormat,
    /// SHA-256 of the raw bytes, hex.
    pub sha256: String,
    pub bytes: u64,
    /// Data rows (header excluded).
    pub rows: u64,
    pub profile: Vec<ColumnProfile>,
    pub validation: ValidationResult,
    /// Whether the Parquet snapshot was written (only when validation passed).
    pub parquet_written: bool,
}

/// Hashes and counts every byte read through it.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// Scans `source` against `contract`; writes the snapshot to `parquet_out` if it passes.
pub fn scan(
    source: impl Read,
    contract: &Contract,
    parquet_out: &Path,
) -> Result<ScanOutput, ScanError> {
    let mut reader = BufReader::with_capacity(
        1 << 20,
        Hashing {
            inner: source,
            hasher: Sha256::new(),
            bytes: 0,
        },
    );
    let head = reader.fill_buf()?;
    if head.starts_with(b"PAR1") {
        return scan_parquet(reader, contract, parquet_out);
    }
    if head.starts_with(b"\xEF\xBB\xBF") {
        reader.consume(3);
    }
    let mut checker = Checker::new(contract, parquet_out)?;
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(contract.csv.delimiter as u8)
        .quote(contract.csv.quote as u8)
        .buffer_capacity(1 << 20)
        .from_reader(&mut reader);
    let mut record = csv::ByteRecord::new();
    let mut header_pending = contract.csv.has_header;
    let expected = contract.columns.len();
    let mut hint: Option<String> = None;
    loop {
        match csv.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            // The csv crate reports I/O errors here; parse problems surface as odd records.
            Err(e) => match e.into_kind() {
                csv::ErrorKind::Io(io) => return Err(io.into()),
                other => {
                    let line = record.position().map_or(0, |p| p.line());
                    checker.violations.add(
                        None,
                        Rule::Unreadable,
                        || "the file is not parseable CSV".into(),
                        line,
                        &format!("{other:?}"),
                    );
                    break;
                }
            },
        }
        let line = record.position().map_or(0, |p| p.line());
        if header_pending {
            header_pending = false;
            checker.check_header(&record, line);
            continue;
        }
        if record.len() != expected {
            if hint.is_none() {
                hint = Some(delimiter_hint(&record, contract));
            }
            let raw = join_lossy(&record, contract.csv.delimiter);
            checker.row_rejected();
            checker.violations.add(
                None,
                Rule::ColumnCount,
                || {
                    format!(
                        "expected {expected} fields per row, found {}{}",
                        record.len(),
                        hint.as_deref().unwrap_or("")
                    )
                },
                line,
                &raw,
            );
            continue;
        }
        checker.check_row(record.iter(), line)?;
    }
    drop(csv);
    let Hashing { hasher, bytes, .. } = reader.into_inner();
    checker.finish(SourceFormat::Csv, hex::encode(hasher.finalize()), bytes)
}

fn join_lossy(record: &csv::ByteRecord, delimiter: char) -> String {
    let fields: Vec<_> = record.iter().map(String::from_utf8_lossy).collect();
    fields.join(&delimiter.to_string())
}

/// When a row has the wrong number of fields, says whether another delimiter fits better.
fn delimiter_hint(record: &csv::ByteRecord, contract: &Contract) -> String {
    let raw: Vec<u8> = record.iter().flat_map(|f| f.iter().copied()).collect();
    let expected = contract.columns.len();
    [b',', b';', b'\t', b'|']
        .into_iter()
        .filter(|&d| d != contract.csv.delimiter as u8)
        .find(|&d| raw.iter().filter(|&&b| b == d).count() + 1 == expected)
        .map(|d| {
            format!(
                " (the row splits into {expected} fields on {:?}: is the delimiter {:?} right?)",
                d as char, contract.csv.delimiter
            )
        })
        .unwrap_or_default()
}

fn scan_parquet<R: Read>(
    mut reader: BufReader<Hashing<R>>,
    contract: &Contract,
    parquet_out: &Path,
) -> Result<ScanOutput, ScanError> {
    // Parquet keeps its footer at the end, so the upload is spooled to disk (not memory).
    let mut spool = tempfile::tempfile()?;
    std::io::copy(&mut reader, &mut spool)?;
    spool.flush()?;
    spool.rewind()?;
    let Hashing { hasher, bytes, .. } = reader.into_inner();
    let sha256 = hex::encode(hasher.finalize());
    let mut checker = Checker::new(contract, parquet_out)?;
    let df = match ParquetReader::new(spool).finish() {
        Ok(df) => df,
        Err(e) => {
            checker.violations.add(
                None,
                Rule::Unreadable,
                || "the file starts like Parquet but cannot be read".into(),
                0,
                &e.to_string(),
            );
            return checker.finish(SourceFormat::Parquet, sha256, bytes);
        }
    };
    let mut columns = Vec::with_capacity(contract.columns.len());
    for spec in &contract.columns {
        match df.column(&spec.name) {
            Ok(c) => columns.push(c.cast(&DataType::String)?),
            Err(_) => {
                checker.violations.add_summary(
                    Some(&spec.name),
                    Rule::MissingColumn,
                    format!("the Parquet file has no column {:?}", spec.name),
                    df.height() as u64,
                );
                return checker.finish(SourceFormat::Parquet, sha256, bytes);
            }
        }
    }
    let strings: Vec<&StringChunked> = columns
        .iter()
        .map(|c| c.str())
        .collect::<PolarsResult<_>>()?;
    for row in 0..df.height() {
        let fields = strings
            .iter()
            .map(|s| s.get(row).map(str::as_bytes).unwrap_or_default());
        checker.check_row(fields, row as u64 + 1)?;
    }
    checker.finish(SourceFormat::Parquet, sha256, bytes)
}

/// A typed column being filled for the next Parquet row group.
enum ColumnBuffer {
    Integer(Vec<Option<i64>>),
    Float(Vec<Option<f64>>),
    String(Vec<Option<String>>),
    Boolean(Vec<Option<bool>>),
}

impl ColumnBuffer {
    fn new(kind: ColumnType) -> Self {
        match kind {
            ColumnType::Integer => ColumnBuffer::Integer(Vec::with_capacity(BATCH_ROWS)),
            ColumnType::Float => ColumnBuffer::Float(Vec::with_capacity(BATCH_ROWS)),
            ColumnType::String => ColumnBuffer::String(Vec::with_capacity(BATCH_ROWS)),
            ColumnType::Boolean => ColumnBuffer::Boolean(Vec::with_capacity(BATCH_ROWS)),
        }
    }

    fn push_null(&mut self) {
        match self {
            ColumnBuffer::Integer(v) => v.push(None),
            ColumnBuffer::Float(v) => v.push(None),
            ColumnBuffer::String(v) => v.push(None),
            ColumnBuffer::Boolean(v) => v.push(None),
        }
    }

    fn take(&mut self, name: &str) -> Column {
        let name = PlSmallStr::from(name);
        match self {
            ColumnBuffer::Integer(v) => Column::new(name, std::mem::take(v)),
            ColumnBuffer::Float(v) => Column::new(name, std::mem::take(v)),
            ColumnBuffer::String(v) => Column::new(name, std::mem::take(v)),
            ColumnBuffer::Boolean(v) => Column::new(name, std::mem::take(v)),
        }
    }
}

fn polars_type(kind: ColumnType) -> DataType {
    match kind {
        ColumnType::Integer => DataType::Int64,
        ColumnType::Float => DataType::Float64,
        ColumnType::String => DataType::String,
        ColumnType::Boolean => DataType::Boolean,
    }
}

/// Writes row groups while the file is still valid; gives up at the first violation.
struct ParquetSink {
    writer: polars::prelude::BatchedWriter<File>,
    buffers: Vec<ColumnBuffer>,
    rows: usize,
}

/// Checks values against the contract, profiles them, and buffers them for Parquet.
struct Checker<'a> {
    contract: &'a Contract,
    label: Option<usize>,
    accumulators: Vec<ColumnAccumulator>,
    violations: Violations,
    sink: Option<ParquetSink>,
    rows: u64,
}

impl<'a> Checker<'a> {
    fn new(contract: &'a Contract, parquet_out: &Path) -> Result<Self, ScanError> {
        let schema: Schema = contract
            .columns
            .iter()
            .map(|c| Field::new(c.name.as_str().into(), polars_type(c.kind)))
            .collect();
        let writer = ParquetWriter::new(File::create(parquet_out)?)
            .with_compression(ParquetCompression::Zstd(None))
            .with_row_group_size(Some(BATCH_ROWS))
            .batched(&schema)?;
        Ok(Self {
            contract,
            label: contract
                .label
                .as_ref()
                .and_then(|l| contract.columns.iter().position(|c| c.name == l.column)),
            accumulators: contract
                .columns
                .iter()
                .map(|c| ColumnAccumulator::new(&c.name, c.kind))
                .collect(),
            violations: Violations::default(),
            sink: Some(ParquetSink {
                writer,
                buffers: contract
                    .columns
                    .iter()
                    .map(|c| ColumnBuffer::new(c.kind))
                    .collect(),
                rows: 0,
            }),
            rows: 0,
        })
    }

    fn check_header(&mut self, record: &csv::ByteRecord, line: u64) {
        let found: Vec<String> = record
            .iter()
            .map(|f| trim(&String::from_utf8_lossy(f), true).to_owned())
            .collect();
        if found != self.contract.column_names() {
            let expected = self.contract.column_names().join(",");
            self.violations.add(
                None,
                Rule::Header,
                || format!("the header must be {expected}"),
                line,
                &found.join(","),
            );
        }
    }

    fn row_rejected(&mut self) {
        self.rows += 1;
        self.sink = None;
    }

    fn check_row<'f>(
        &mut self,
        fields: impl Iterator<Item = &'f [u8]>,
        line: u64,
    ) -> Result<(), ScanError> {
        self.rows += 1;
        let had_violations = !self.violations.is_empty();
        for (i, raw) in fields.enumerate() {
            self.check_value(i, raw, line);
        }
        if had_violations || !self.violations.is_empty() {
            self.sink = None;
        } else if let Some(sink) = &mut self.sink {
            sink.rows += 1;
            if sink.rows == BATCH_ROWS {
                self.flush()?;
            }
        }
        Ok(())
    }

    fn check_value(&mut self, i: usize, raw: &[u8], line: u64) {
        let spec = &self.contract.columns[i];
        let col = Some(spec.name.as_str());
        let acc = &mut self.accumulators[i];
        let mut buffer = self.sink.as_mut().map(|s| &mut s.buffers[i]);
        let Ok(text) = std::str::from_utf8(raw) else {
            self.violations.add(
                col,
                Rule::Encoding,
                || "values must be UTF-8 text".into(),
                line,
                &String::from_utf8_lossy(raw),
            );
            acc.add_null();
            return;
        };
        let text = trim(text, self.contract.csv.trim);
        if text.is_empty() || self.contract.csv.null_tokens.iter().any(|t| t == text) {
            acc.add_null();
            if let Some(b) = buffer.as_mut() {
                b.push_null();
            }
            return;
        }
        if self.label == Some(i)
            && let Some(label) = &self.contract.label
            && !label.values.iter().any(|v| v == text)
        {
            let values = label.values.join(", ");
            self.violations.add(
                col,
                Rule::LabelValues,
                || format!("labels must be one of: {values}"),
                line,
                text,
            );
        }
        let number = match spec.kind {
            ColumnType::Integer => match text.parse::<i64>() {
                Ok(n) => {
                    if let Some(ColumnBuffer::Integer(v)) = buffer {
                        v.push(Some(n));
                    }
                    Some(n as f64)
                }
                Err(_) => {
                    self.violations.add(
                        col,
                        Rule::Type,
                        || "values must be integers".into(),
                        line,
                        text,
                    );
                    None
                }
            },
            ColumnType::Float => match text.parse::<f64>() {
                Ok(x) if x.is_finite() => {
                    if let Some(ColumnBuffer::Float(v)) = buffer {
                        v.push(Some(x));
                    }
                    Some(x)
                }
                _ => {
                    self.violations.add(
                        col,
                        Rule::Type,
                        || "values must be finite numbers".into(),
                        line,
                        text,
                    );
                    None
                }
            },
            ColumnType::Boolean => {
                match parse_bool(text) {
                    Some(b) => {
                        if let Some(ColumnBuffer::Boolean(v)) = buffer {
                            v.push(Some(b));
                        }
                        acc.add_category(if b { "true" } else { "false" });
                    }
                    None => self.violations.add(
                        col,
                        Rule::Type,
                        || "values must be true/false".into(),
                        line,
                        text,
                    ),
                }
                return;
            }
            ColumnType::String => {
                if let Some(allowed) = &spec.allowed
                    && !allowed.iter().any(|a| a == text)
                {
                    let n = allowed.len();
                    self.violations.add(
                        col,
                        Rule::AllowedValues,
                        || format!("values must be one of the {n} allowed values"),
                        line,
                        text,
                    );
                }
                if let Some(ColumnBuffer::String(v)) = buffer {
                    v.push(Some(text.to_owned()));
                }
                acc.add_category(text);
                return;
            }
        };
        match number {
            Some(x) => {
                if spec.min.is_some_and(|lo| x < lo) || spec.max.is_some_and(|hi| x > hi) {
                    let (lo, hi) = (
                        spec.min.unwrap_or(f64::NEG_INFINITY),
                        spec.max.unwrap_or(f64::INFINITY),
                    );
                    self.violations.add(
                        col,
                        Rule::Range,
                        || format!("values must lie in [{lo}, {hi}]"),
                        line,
                        text,
                    );
                }
                acc.add_number(x);
            }
            None => acc.add_null(),
        }
    }

    fn flush(&mut self) -> Result<(), ScanError> {
        if let Some(sink) = &mut self.sink {
            let columns: Vec<Column> = sink
                .buffers
                .iter_mut()
                .zip(&self.contract.columns)
                .map(|(b, spec)| b.take(&spec.name))
                .collect();
            let df = DataFrame::new(sink.rows, columns)?;
            sink.writer.write_batch(&df)?;
            sink.rows = 0;
        }
        Ok(())
    }

    fn finish(
        mut self,
        format: SourceFormat,
        sha256: String,
        bytes: u64,
    ) -> Result<ScanOutput, ScanError> {
        if bytes == 0 {
            self.violations
                .add_summary(None, Rule::EmptyFile, "the file is empty".into(), 0);
        }
        for (spec, acc) in self.contract.columns.iter().zip(&self.accumulators) {
            if let Some(max) = spec.max_null_fraction
                && self.rows > 0
                && acc.nulls() as f64 / self.rows as f64 > max
            {
                let share = acc.nulls() as f64 / self.rows as f64;
                self.violations.add_summary(
                    Some(&spec.name),
                    Rule::MaxNullFraction,
                    format!(
                        "at most {:.2}% nulls allowed, found {:.2}%",
                        max * 100.0,
                        share * 100.0
                    ),
                    acc.nulls(),
                );
            }
        }
        if self.rows < self.contract.min_rows.max(1) && bytes > 0 {
            let min = self.contract.min_rows.max(1);
            self.violations.add_summary(
                None,
                Rule::MinRows,
                format!("at least {min} data rows required, found {}", self.rows),
                self.rows,
            );
        }
        let passed = self.violations.is_empty();
        let mut parquet_written = false;
        if passed {
            self.flush()?;
            if let Some(sink) = self.sink.take() {
                sink.writer.finish()?;
                parquet_written = true;
            }
        }
        Ok(ScanOutput {
            format,
            sha256,
            bytes,
            rows: self.rows,
            profile: self
                .accumulators
                .iter()
                .map(ColumnAccumulator::finish)
                .collect(),
            validation: self.violations.finish(),
            parquet_written,
        })
    }
}

fn trim(s: &str, enabled: bool) -> &str {
    if enabled {
        s.trim_matches(|c: char| c.is_ascii_whitespace())
    } else {
        s
    }
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "t" | "yes" | "y" | "1" => Some(true),
        "false" | "f" | "no" | "n" | "0" => Some(false),
        _ => None,
    }
}
