//! One streaming pass over an uploaded file: hash, parse, validate, profile, and write
//! the Parquet snapshot, in bounded memory and on every core.
//!
//! The pipeline has three stages joined by bounded channels:
//! 1. the reader (one thread) hashes the raw bytes and cuts them into blocks of about
//!    [`BLOCK_BYTES`] at record boundaries (a newline preceded by an even number of quote
//!    characters, which is exact for RFC 4180 files);
//! 2. workers (one per core) parse, validate and profile a block each, and encode its
//!    typed column batch as a Parquet row group;
//! 3. the caller's thread merges the blocks' profiles and violations in file order and
//!    writes their row groups while the file is still valid.
//!
//! At most a few blocks are in flight, so memory stays bounded whatever the file size.
//! Blocks are cut at the same places for the same bytes, so the output is deterministic.
//!
//! CSV is parsed record by record with the `csv` crate rather than polars' CSV reader:
//! the quarantine report must name the line and value of every broken rule, and polars
//! fails a whole batch on a ragged row or bad UTF-8 without saying where. Polars builds
//! the typed column batches and writes (and, for Parquet uploads, reads) the Parquet.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, mpsc};

use polars::prelude::*;
use polars_arrow::bitmap::MutableBitmap;
use polars_parquet::write::{
    CompressedPage, CompressionOptions, DynIter, DynStreamingIterator, Encoding,
    FallibleStreamingIterator, ParquetType, RowGroupIterColumns, StatisticsOptions, Version,
    WriteOptions, array_to_columns, compress, to_parquet_schema,
};
use sha2::{Digest, Sha256};

use super::contract::{ColumnType, Contract};
use super::profile::{ColumnAccumulator, ColumnProfile, hash64};
use super::validation::{Rule, ValidationResult, Violations};

/// Bytes per block: the unit of parallel work and one Parquet row group.
pub const BLOCK_BYTES: usize = 8 << 20;

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

/// The upload: read in blocks, hashed and counted as it goes.
struct Source<R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
}

impl<R: Read> Source<R> {
    /// Reads until `buf` grew by `want` bytes or the upload ended; false at the end.
    fn fill(&mut self, buf: &mut Vec<u8>, want: usize) -> std::io::Result<bool> {
        let start = buf.len();
        // `read_to_end` reads into spare capacity without zeroing it first.
        let n = (&mut self.inner).take(want as u64).read_to_end(buf)?;
        self.hasher.update(&buf[start..]);
        self.bytes += n as u64;
        Ok(n == want)
    }

    fn finish(self) -> (String, u64) {
        (hex::encode(self.hasher.finalize()), self.bytes)
    }
}

/// The end (exclusive) of the last complete record in `buf`, if any: just after a
/// newline with an even number of `quote` bytes before it (the buffer starts at a
/// record boundary).
fn last_record_end(buf: &[u8], quote: u8) -> Option<usize> {
    let total = memchr::memchr_iter(quote, buf).count();
    let mut after = 0;
    for pos in memchr::memrchr2_iter(b'\n', quote, buf) {
        if buf[pos] == quote {
            after += 1;
        } else if (total - after).is_multiple_of(2) {
            return Some(pos + 1);
        }
    }
    None
}

/// A block of whole records and the file line it starts on.
struct Block {
    index: usize,
    first_line: u64,
    /// Newlines in the block: an upper bound on its records, to size buffers once.
    lines: u64,
    bytes: Vec<u8>,
}

/// Scans `source` against `contract`; writes the snapshot to `parquet_out` if it passes.
pub fn scan(
    source: impl Read + Send,
    contract: &Contract,
    parquet_out: &Path,
) -> Result<ScanOutput, ScanError> {
    let mut source = Source {
        inner: source,
        hasher: Sha256::new(),
        bytes: 0,
    };
    let mut head = Vec::with_capacity(BLOCK_BYTES);
    let more = source.fill(&mut head, BLOCK_BYTES)?;
    if head.starts_with(b"PAR1") {
        return scan_parquet(source, head, contract, parquet_out);
    }
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8);
    let quote = contract.csv.quote as u8;
    let allowed = &allowed_sets(contract)?;
    let (writer, encoder) = parquet_writer(contract, allowed, parquet_out)?;
    let (writer, encoder) = (&writer, &encoder);
    let mut merger = Merger::new(contract, writer);
    // Set once the file broke a rule: workers stop encoding row groups nobody writes.
    let invalid = &AtomicBool::new(false);
    // Columns whose merged distinct count went past the exact cap: later blocks skip
    // exact counting (see ColumnAccumulator::estimate_distinct).
    let estimating: &[AtomicBool] = &contract
        .columns
        .iter()
        .map(|_| AtomicBool::new(false))
        .collect::<Vec<_>>();
    let (block_tx, block_rx) = mpsc::sync_channel::<Block>(2 * workers);
    let (done_tx, done_rx) =
        mpsc::sync_channel::<(usize, Result<ChunkResult, ScanError>)>(2 * workers);
    let block_rx = Mutex::new(block_rx);
    let (read_result, merged) = std::thread::scope(|scope| {
        for _ in 0..workers {
            let (block_rx, done_tx) = (&block_rx, done_tx.clone());
            let worker = std::thread::Builder::new().name("sluice-scan".into());
            worker
                .spawn_scoped(scope, move || {
                    loop {
                        let next = block_rx.lock().expect("block queue").recv();
                        let Ok(block) = next else { break };
                        let encoder = (!invalid.load(Ordering::Relaxed)).then_some(encoder);
                        let result = check_block(contract, allowed, estimating, &block, encoder);
                        if done_tx.send((block.index, result)).is_err() {
                            break;
                        }
                    }
                })
                .expect("spawning a scan worker");
        }
        drop(done_tx);
        let reader = std::thread::Builder::new().name("sluice-read".into());
        let reader = reader
            .spawn_scoped(scope, move || -> std::io::Result<(String, u64)> {
                let mut buf = head;
                let mut more = more;
                if buf.starts_with(b"\xEF\xBB\xBF") {
                    buf.drain(..3);
                }
                let (mut index, mut line) = (0usize, 1u64);
                loop {
                    let cut = if more {
                        last_record_end(&buf, quote)
                    } else {
                        Some(buf.len())
                    };
                    match cut {
                        Some(end) if end > 0 => {
                            let rest = buf.split_off(end);
                            let lines = memchr::memchr_iter(b'\n', &buf).count() as u64;
                            if block_tx
                                .send(Block {
                                    index,
                                    first_line: line,
                                    lines,
                                    bytes: buf,
                                })
                                .is_err()
                            {
                                break;
                            }
                            index += 1;
                            line += lines;
                            buf = rest;
                            buf.reserve(BLOCK_BYTES);
                        }
                        // One record longer than a block (a huge quoted field): read on.
                        _ => {}
                    }
                    if !more && buf.is_empty() {
                        break;
                    }
                    if more {
                        more = source.fill(&mut buf, BLOCK_BYTES)?;
                    }
                }
                Ok(source.finish())
            })
            .expect("spawning the scan reader");
        // Merge in file order while blocks finish in any order.
        let mut pending: BTreeMap<usize, Result<ChunkResult, ScanError>> = BTreeMap::new();
        let mut next = 0;
        let mut outcome = Ok(());
        for (index, result) in done_rx {
            pending.insert(index, result);
            while let Some(result) = pending.remove(&next) {
                if outcome.is_ok() {
                    outcome = result.and_then(|r| merger.merge(r));
                    if !merger.writing {
                        invalid.store(true, Ordering::Relaxed);
                    }
                    for (acc, flag) in merger.accumulators.iter().zip(estimating) {
                        if acc.distinct_is_estimated() {
                            flag.store(true, Ordering::Relaxed);
                        }
                    }
                }
                next += 1;
            }
        }
        (reader.join().expect("reader thread"), outcome)
    });
    let (sha256, bytes) = read_result?;
    merged?;
    merger.finish(SourceFormat::Csv, sha256, bytes)
}

/// Parses, validates and profiles one block.
fn check_block(
    contract: &Contract,
    allowed: &AllowedSets<'_>,
    estimating: &[AtomicBool],
    block: &Block,
    encoder: Option<&RowGroupEncoder>,
) -> Result<ChunkResult, ScanError> {
    let mut checker = ChunkChecker::new(contract, allowed, block.lines as usize + 1);
    for (acc, flag) in checker.accumulators.iter_mut().zip(estimating) {
        if flag.load(Ordering::Relaxed) {
            acc.estimate_distinct();
        }
    }
    let mut rows = RowHandler {
        header_pending: contract.csv.has_header && block.index == 0,
        expected: contract.columns.len(),
        hint: None,
    };
    let mut record = csv::ByteRecord::new();
    let quote = contract.csv.quote as u8;
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(contract.csv.delimiter as u8)
        .quote(quote)
        .comment(contract.csv.comment.map(|c| c as u8))
        .from_reader(&block.bytes[..]);
    loop {
        match csv.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                let line = record_line(block, &record);
                checker.violations.add(
                    None,
                    Rule::Unreadable,
                    || "the file is not parseable CSV".into(),
                    line,
                    &e.to_string(),
                );
                checker.reject();
                break;
            }
        }
        let line = record_line(block, &record);
        rows.handle(&mut checker, contract, &record, line);
    }
    checker.finish(encoder)
}

/// The physical line a record starts on. The `csv` crate's `line()` is where its reader
/// stood when the record began, which is before the newlines it skips first (the LF of
/// a CRLF, blank lines): those are at the record's byte position, so count them there.
fn record_line(block: &Block, record: &csv::ByteRecord) -> u64 {
    let Some(position) = record.position() else {
        return block.first_line;
    };
    let skipped = block.bytes[(position.byte() as usize).min(block.bytes.len())..]
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .filter(|&&b| b == b'\n')
        .count() as u64;
    block.first_line + position.line() - 1 + skipped
}

/// What happens to each record of a block: the header check, the field count, the values.
struct RowHandler {
    header_pending: bool,
    expected: usize,
    hint: Option<String>,
}

impl RowHandler {
    fn handle(
        &mut self,
        checker: &mut ChunkChecker<'_>,
        contract: &Contract,
        record: &csv::ByteRecord,
        line: u64,
    ) {
        if self.header_pending {
            self.header_pending = false;
            checker.check_header(record, line);
            return;
        }
        if record.len() != self.expected {
            let expected = self.expected;
            let hint = self
                .hint
                .get_or_insert_with(|| delimiter_hint(record, contract));
            let raw = join_lossy(record, contract.csv.delimiter);
            checker.rows += 1;
            checker.reject();
            checker.violations.add(
                None,
                Rule::ColumnCount,
                || {
                    format!(
                        "expected {expected} fields per row, found {}{hint}",
                        record.len()
                    )
                },
                line,
                &raw,
            );
            return;
        }
        checker.check_record(record, line);
    }
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

fn scan_parquet(
    mut source: Source<impl Read>,
    head: Vec<u8>,
    contract: &Contract,
    parquet_out: &Path,
) -> Result<ScanOutput, ScanError> {
    // Parquet keeps its footer at the end, so the upload is spooled to disk (not memory).
    let mut spool = tempfile::tempfile()?;
    spool.write_all(&head)?;
    let mut buf = Vec::with_capacity(BLOCK_BYTES);
    loop {
        buf.clear();
        let more = source.fill(&mut buf, BLOCK_BYTES)?;
        spool.write_all(&buf)?;
        if !more {
            break;
        }
    }
    spool.flush()?;
    spool.rewind()?;
    let (sha256, bytes) = source.finish();
    let allowed = allowed_sets(contract)?;
    let (writer, encoder) = parquet_writer(contract, &allowed, parquet_out)?;
    let mut merger = Merger::new(contract, &writer);
    let unreadable = |merger: &mut Merger<'_>, e: PolarsError| {
        merger.violations.add(
            None,
            Rule::Unreadable,
            || "the file starts like Parquet but cannot be read".into(),
            0,
            &e.to_string(),
        );
    };
    // Read a slice of rows at a time (polars skips the row groups outside it), so a
    // Parquet upload larger than memory is checked in bounded memory too.
    let (schema, total) = match ParquetReader::new(spool.try_clone()?)
        .schema()
        .and_then(|schema| {
            let total = ParquetReader::new(spool.try_clone()?).num_rows()?;
            Ok((schema, total))
        }) {
        Ok(found) => found,
        Err(e) => {
            unreadable(&mut merger, e);
            return merger.finish(SourceFormat::Parquet, sha256, bytes);
        }
    };
    for spec in &contract.columns {
        if !schema.contains(spec.name.as_str()) {
            merger.violations.add_summary(
                Some(&spec.name),
                Rule::MissingColumn,
                format!("the Parquet file has no column {:?}", spec.name),
                total as u64,
            );
        }
    }
    if !merger.violations.is_empty() {
        merger.rows = total as u64;
        return merger.finish(SourceFormat::Parquet, sha256, bytes);
    }
    const SLICE_ROWS: usize = 64 * 1024;
    for offset in (0..total).step_by(SLICE_ROWS) {
        let df = match ParquetReader::new(spool.try_clone()?)
            .with_columns(Some(
                contract
                    .column_names()
                    .iter()
                    .map(|c| c.to_string())
                    .collect(),
            ))
            .with_slice(Some((offset, SLICE_ROWS)))
            .finish()
        {
            Ok(df) => df,
            Err(e) => {
                unreadable(&mut merger, e);
                break;
            }
        };
        let columns: Vec<Column> = contract
            .columns
            .iter()
            .map(|spec| df.column(&spec.name)?.cast(&DataType::String))
            .collect::<PolarsResult<_>>()?;
        let strings: Vec<&StringChunked> = columns
            .iter()
            .map(|c| c.str())
            .collect::<PolarsResult<_>>()?;
        let mut checker = ChunkChecker::new(contract, &allowed, df.height());
        for row in 0..df.height() {
            let fields = strings.iter().map(|s| s.get(row).unwrap_or_default());
            checker.check_fields(fields, (offset + row) as u64 + 1);
        }
        merger.merge(checker.finish(Some(&encoder))?)?;
    }
    merger.finish(SourceFormat::Parquet, sha256, bytes)
}

/// A typed column being filled for one block's batch. Numbers and codes go straight
/// into a `Vec` that becomes the array without a copy.
enum ColumnBuffer {
    Integer(Numbers<i64>),
    Float(Numbers<f64>),
    String(StringChunkedBuilder),
    Boolean(BooleanChunkedBuilder),
    /// A string column with allowed values: their codes, in contract order.
    Enum {
        codes: Numbers<u32>,
        dtype: DataType,
    },
}

impl ColumnBuffer {
    fn new(name: &str, kind: ColumnType, enum_dtype: Option<&DataType>, capacity: usize) -> Self {
        let name = PlSmallStr::from(name);
        if let Some(dtype) = enum_dtype {
            return ColumnBuffer::Enum {
                codes: Numbers::new(name, capacity),
                dtype: dtype.clone(),
            };
        }
        match kind {
            ColumnType::Integer => ColumnBuffer::Integer(Numbers::new(name, capacity)),
            ColumnType::Float => ColumnBuffer::Float(Numbers::new(name, capacity)),
            ColumnType::String => ColumnBuffer::String(StringChunkedBuilder::new(name, capacity)),
            ColumnType::Boolean => {
                ColumnBuffer::Boolean(BooleanChunkedBuilder::new(name, capacity))
            }
        }
    }

    fn push_null(&mut self) {
        match self {
            ColumnBuffer::Integer(b) => b.push_null(),
            ColumnBuffer::Float(b) => b.push_null(),
            ColumnBuffer::String(b) => b.append_null(),
            ColumnBuffer::Boolean(b) => b.append_null(),
            ColumnBuffer::Enum { codes, .. } => codes.push_null(),
        }
    }

    fn finish(self) -> Column {
        match self {
            ColumnBuffer::Integer(b) => {
                Int64Chunked::from_vec_validity(b.name, b.values, b.validity.map(Into::into))
                    .into_column()
            }
            ColumnBuffer::Float(b) => {
                Float64Chunked::from_vec_validity(b.name, b.values, b.validity.map(Into::into))
                    .into_column()
            }
            ColumnBuffer::String(b) => b.finish().into_column(),
            ColumnBuffer::Boolean(b) => b.finish().into_column(),
            ColumnBuffer::Enum { codes, dtype } => {
                // The physical width follows the number of categories (u8 up to 256, …).
                let physical = match &dtype {
                    DataType::Enum(categories, _) => categories.physical(),
                    _ => unreachable!("Enum buffers carry an Enum dtype"),
                };
                let Numbers {
                    name,
                    values,
                    validity,
                } = codes;
                let validity = validity.map(Into::into);
                match physical {
                    CategoricalPhysical::U8 => Categorical8Chunked::from_cats_and_dtype(
                        UInt8Chunked::from_vec_validity(
                            name,
                            values.into_iter().map(|c| c as u8).collect(),
                            validity,
                        ),
                        dtype,
                    )
                    .into_column(),
                    CategoricalPhysical::U16 => Categorical16Chunked::from_cats_and_dtype(
                        UInt16Chunked::from_vec_validity(
                            name,
                            values.into_iter().map(|c| c as u16).collect(),
                            validity,
                        ),
                        dtype,
                    )
                    .into_column(),
                    CategoricalPhysical::U32 => Categorical32Chunked::from_cats_and_dtype(
                        UInt32Chunked::from_vec_validity(name, values, validity),
                        dtype,
                    )
                    .into_column(),
                }
            }
        }
    }
}

/// Values and, once a null was seen, their validity bitmap.
struct Numbers<T> {
    name: PlSmallStr,
    values: Vec<T>,
    validity: Option<MutableBitmap>,
}

impl<T: Default> Numbers<T> {
    fn new(name: PlSmallStr, capacity: usize) -> Self {
        Self {
            name,
            values: Vec::with_capacity(capacity),
            validity: None,
        }
    }

    #[inline]
    fn push(&mut self, value: T) {
        self.values.push(value);
        if let Some(v) = &mut self.validity {
            v.push(true);
        }
    }

    fn push_null(&mut self) {
        let len = self.values.len();
        self.validity
            .get_or_insert_with(|| MutableBitmap::from_len_set(len))
            .push(false);
        self.values.push(T::default());
    }
}

impl ColumnBuffer {
    /// The non-null numbers buffered, as `f64` for profiling (borrowed when possible).
    fn numbers(&self) -> Option<std::borrow::Cow<'_, [f64]>> {
        use std::borrow::Cow;
        match self {
            ColumnBuffer::Float(b) => Some(match &b.validity {
                None => Cow::Borrowed(&b.values[..]),
                Some(valid) => Cow::Owned(
                    b.values
                        .iter()
                        .zip(valid.iter())
                        .filter_map(|(&x, ok)| ok.then_some(x))
                        .collect(),
                ),
            }),
            ColumnBuffer::Integer(b) => Some(match &b.validity {
                None => b.values.iter().map(|&n| n as f64).collect(),
                Some(valid) => b
                    .values
                    .iter()
                    .zip(valid.iter())
                    .filter_map(|(&n, ok)| ok.then_some(n as f64))
                    .collect(),
            }),
            _ => None,
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

fn accumulators(contract: &Contract) -> Vec<ColumnAccumulator> {
    contract
        .columns
        .iter()
        .map(|c| ColumnAccumulator::new(&c.name, c.kind))
        .collect()
}

/// What one block contributes.
struct ChunkResult {
    accumulators: Vec<ColumnAccumulator>,
    violations: Violations,
    rows: u64,
    /// The block's rows, encoded as Parquet row groups; `None` once a rule was broken.
    row_groups: Option<Vec<RowGroupIterColumns<'static, PolarsError>>>,
}

/// A column's allowed values: looked up by their profile hash (a value is hashed once
/// for both the check and its category count), numbered in contract order, and written
/// to Parquet as an `Enum` column of those codes, so the snapshot is dictionary-encoded
/// without a second pass over the strings.
///
/// A label column without an `allowed` list uses the label's values the same way: a
/// file whose labels break the rule gets no snapshot, so the set is closed whenever a
/// snapshot is written. Its violations are reported as `label_values` only.
struct AllowedValues<'a> {
    by_hash: std::collections::HashMap<u64, (u32, &'a str), foldhash::fast::RandomState>,
    dtype: DataType,
    /// Whether a value outside the set breaks the `allowed_values` rule.
    enforced: bool,
}

type AllowedSets<'a> = Vec<Option<AllowedValues<'a>>>;

fn allowed_sets(contract: &Contract) -> Result<AllowedSets<'_>, ScanError> {
    let mut sets = Vec::with_capacity(contract.columns.len());
    for c in &contract.columns {
        let label_values = contract
            .label
            .as_ref()
            .filter(|l| l.column == c.name && c.kind == ColumnType::String)
            .map(|l| &l.values);
        let Some(values) = c.allowed.as_ref().or(label_values) else {
            sets.push(None);
            continue;
        };
        // Repeats are dropped (an Enum needs unique categories), keeping the first.
        let mut seen = std::collections::HashSet::with_capacity(values.len());
        let unique: Vec<&str> = values
            .iter()
            .map(String::as_str)
            .filter(|v| seen.insert(*v))
            .collect();
        let by_hash = unique
            .iter()
            .enumerate()
            .map(|(n, v)| (hash64(v.as_bytes()), (n as u32, *v)))
            .collect();
        let dtype =
            DataType::from_frozen_categories(FrozenCategories::new(unique.iter().copied())?);
        sets.push(Some(AllowedValues {
            by_hash,
            dtype,
            enforced: c.allowed.is_some(),
        }));
    }
    Ok(sets)
}

/// A bit for the length of `s` (lengths of 63 and more share the top bit), so most
/// values are told apart from the null tokens without comparing any bytes.
fn length_bit(s: &str) -> u64 {
    1 << s.len().min(63)
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

/// String equality without a `memcmp` call: the values compared are a few bytes long.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| x == y)
}

/// Checks one block's values against the contract, profiles them, and buffers them.
struct ChunkChecker<'a> {
    contract: &'a Contract,
    /// [`length_bit`]s of the null tokens.
    null_lengths: u64,
    allowed: &'a AllowedSets<'a>,
    /// Each numeric column's values, profiled in one batch when the block ends. While
    /// the batch is being built its buffers hold them instead (one copy, not two).
    numbers: Vec<Vec<f64>>,
    label: Option<usize>,
    accumulators: Vec<ColumnAccumulator>,
    violations: Violations,
    buffers: Option<Vec<ColumnBuffer>>,
    rows: u64,
}

impl<'a> ChunkChecker<'a> {
    /// `rows` is the expected number of rows, so buffers are sized once.
    fn new(contract: &'a Contract, allowed: &'a AllowedSets<'a>, rows: usize) -> Self {
        Self {
            contract,
            null_lengths: contract
                .csv
                .null_tokens
                .iter()
                .fold(0, |bits, t| bits | length_bit(t)),
            allowed,
            numbers: vec![Vec::new(); contract.columns.len()],
            label: contract
                .label
                .as_ref()
                .and_then(|l| contract.columns.iter().position(|c| c.name == l.column)),
            accumulators: accumulators(contract),
            violations: Violations::default(),
            buffers: Some(
                contract
                    .columns
                    .iter()
                    .zip(allowed)
                    .map(|(c, a)| {
                        ColumnBuffer::new(&c.name, c.kind, a.as_ref().map(|a| &a.dtype), rows)
                    })
                    .collect(),
            ),
            rows: 0,
        }
    }

    /// Stops building the batch: a file that breaks a rule gets no snapshot.
    fn reject(&mut self) {
        if let Some(buffers) = self.buffers.take() {
            for (numbers, buffer) in self.numbers.iter_mut().zip(&buffers) {
                if let Some(xs) = buffer.numbers() {
                    numbers.extend_from_slice(&xs);
                }
            }
        }
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
            self.reject();
        }
    }

    /// Checks a CSV record. UTF-8 is validated once for the whole record; a field is
    /// then a slice of it (falling back to per-field checks to name the bad column).
    fn check_record(&mut self, record: &csv::ByteRecord, line: u64) {
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
    fn check_fields<'f>(&mut self, fields: impl Iterator<Item = &'f str>, line: u64) {
        self.rows += 1;
        for (i, text) in fields.enumerate() {
            if !self.check_value(i, Ok(text), line) {
                self.reject();
            }
        }
    }

    /// Checks, profiles and buffers one value; false if it broke a rule.
    fn check_value(&mut self, i: usize, text: Result<&str, &[u8]>, line: u64) -> bool {
        let spec = &self.contract.columns[i];
        let col = Some(spec.name.as_str());
        let acc = &mut self.accumulators[i];
        let mut buffer = self.buffers.as_mut().map(|b| &mut b[i]);
        let Ok(text) = text else {
            let raw = text.unwrap_err();
            self.violations.add(
                col,
                Rule::Encoding,
                || "values must be UTF-8 text".into(),
                line,
                &String::from_utf8_lossy(raw),
            );
            acc.add_null();
            return false;
        };
        let text = trim(text, self.contract.csv.trim);
        if text.is_empty()
            || (self.null_lengths & length_bit(text) != 0
                && self.contract.csv.null_tokens.iter().any(|t| same(t, text)))
        {
            acc.add_null();
            if let Some(b) = buffer.as_mut() {
                b.push_null();
            }
            return true;
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
            self.violations.add(
                col,
                Rule::LabelValues,
                || format!("labels must be one of: {values}"),
                line,
                text,
            );
            ok = false;
        }
        let number = match spec.kind {
            ColumnType::Integer => match parse_i64(text) {
                Some(n) => {
                    match buffer {
                        Some(ColumnBuffer::Integer(b)) => b.push(n),
                        _ => self.numbers[i].push(n as f64),
                    }
                    Some(n as f64)
                }
                None => {
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
            ColumnType::Float => match parse_f64(text) {
                Some(x) if x.is_finite() => {
                    match buffer {
                        Some(ColumnBuffer::Float(b)) => b.push(x),
                        _ => self.numbers[i].push(x),
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
                return match parse_bool(text) {
                    Some(v) => {
                        if let Some(ColumnBuffer::Boolean(b)) = buffer {
                            b.append_value(v);
                        }
                        acc.add_category(if v { "true" } else { "false" });
                        ok
                    }
                    None => {
                        self.violations.add(
                            col,
                            Rule::Type,
                            || "values must be true/false".into(),
                            line,
                            text,
                        );
                        false
                    }
                };
            }
            ColumnType::String => {
                let h = hash64(text.as_bytes());
                let code = self.allowed[i].as_ref().map(|allowed| {
                    allowed
                        .by_hash
                        .get(&h)
                        .filter(|(_, v)| same(v, text))
                        .map(|(code, _)| *code)
                });
                if let (Some(None), Some(allowed)) = (code, &self.allowed[i])
                    && allowed.enforced
                {
                    let n = allowed.by_hash.len();
                    self.violations.add(
                        col,
                        Rule::AllowedValues,
                        || format!("values must be one of the {n} allowed values"),
                        line,
                        text,
                    );
                    ok = false;
                }
                match (buffer, code) {
                    (Some(ColumnBuffer::String(b)), _) => b.append_value(text),
                    (Some(ColumnBuffer::Enum { codes, .. }), Some(Some(code))) => codes.push(code),
                    _ => {}
                }
                acc.add_category_hashed(h, text);
                return ok;
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
                    ok = false;
                }
                ok
            }
            None => {
                acc.add_null();
                false
            }
        }
    }

    /// Profiles the block's numbers and, while the file is valid so far, encodes its
    /// rows as Parquet row groups here on the worker (the merger only writes bytes).
    fn finish(mut self, encoder: Option<&RowGroupEncoder>) -> Result<ChunkResult, ScanError> {
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
        Ok(ChunkResult {
            accumulators: self.accumulators,
            violations: self.violations,
            rows: self.rows,
            row_groups,
        })
    }
}

/// Snapshot pages are LZ4 (raw): it compresses several times faster than zstd's
/// fastest level, and ingest speed matters more here than the last 20% of size.
/// Float columns are stored uncompressed: the mantissas of measured values are close
/// to random bytes, so compressing them costs time and saves almost nothing.
fn compression(kind: ColumnType) -> CompressionOptions {
    match kind {
        ColumnType::Float => CompressionOptions::Uncompressed,
        _ => CompressionOptions::Lz4Raw,
    }
}

/// The Parquet writer for the snapshot (it only writes bytes, on the merging thread)
/// and the encoder the scan workers turn their batches into row groups with.
fn parquet_writer(
    contract: &Contract,
    allowed: &AllowedSets<'_>,
    parquet_out: &Path,
) -> Result<(BatchedWriter<File>, RowGroupEncoder), ScanError> {
    let schema: Schema = contract
        .columns
        .iter()
        .zip(allowed)
        .map(|(c, a)| {
            let dtype = a
                .as_ref()
                .map_or_else(|| polars_type(c.kind), |a| a.dtype.clone());
            Field::new(c.name.as_str().into(), dtype)
        })
        .collect();
    let writer = ParquetWriter::new(File::create(parquet_out)?)
        .with_compression(ParquetCompression::Lz4Raw)
        .set_parallel(false)
        .batched(&schema)?;
    let codecs = contract
        .columns
        .iter()
        .map(|c| compression(c.kind))
        .collect();
    Ok((writer, RowGroupEncoder::new(&schema, codecs)?))
}

/// Encodes and compresses a batch as Parquet row groups on the calling thread.
/// Polars' `BatchedWriter::encode_and_compress` returns lazy page iterators, which would
/// leave all encoding and compression to the one thread that writes them. Each column
/// gets its own codec (Parquet records one per column chunk).
struct RowGroupEncoder {
    fields: Vec<ParquetType>,
    encodings: Vec<Vec<Encoding>>,
    codecs: Vec<CompressionOptions>,
    options: WriteOptions,
}

impl RowGroupEncoder {
    fn new(schema: &Schema, codecs: Vec<CompressionOptions>) -> Result<Self, ScanError> {
        let arrow = schema.to_arrow(CompatLevel::newest());
        Ok(Self {
            fields: to_parquet_schema(&arrow)?.fields().to_vec(),
            encodings: polars::io::parquet::write::get_encodings(&arrow).to_vec(),
            codecs,
            // What `ParquetWriter` writes by default; compression is per column.
            options: WriteOptions {
                statistics: StatisticsOptions::default(),
                version: Version::V1,
                compression: CompressionOptions::Uncompressed,
                data_page_size: None,
            },
        })
    }

    fn encode(
        &self,
        batch: &DataFrame,
    ) -> Result<Vec<RowGroupIterColumns<'static, PolarsError>>, ScanError> {
        let mut groups = Vec::new();
        for chunk in batch.iter_chunks(CompatLevel::newest(), false) {
            if chunk.is_empty() {
                continue;
            }
            let mut columns = Vec::with_capacity(self.fields.len());
            let arrays = chunk
                .columns()
                .iter()
                .zip(&self.fields)
                .zip(&self.encodings)
                .zip(&self.codecs);
            for (((array, field), encoding), &codec) in arrays {
                for pages in array_to_columns(array, field.clone(), self.options, encoding)? {
                    let compressed = pages
                        .map(|page| Ok(compress(page?, Vec::new(), codec)?))
                        .collect::<PolarsResult<Vec<CompressedPage>>>()?;
                    columns.push(compressed);
                }
            }
            groups.push(DynIter::new(columns.into_iter().map(|pages| {
                Ok(DynStreamingIterator::new(Pages {
                    pages: pages.into_iter(),
                    current: None,
                }))
            })));
        }
        Ok(groups)
    }
}

/// A column's finished pages, handed to the writer one by one.
struct Pages {
    pages: std::vec::IntoIter<CompressedPage>,
    current: Option<CompressedPage>,
}

impl FallibleStreamingIterator for Pages {
    type Item = CompressedPage;
    type Error = PolarsError;

    fn advance(&mut self) -> Result<(), PolarsError> {
        self.current = self.pages.next();
        Ok(())
    }

    fn get(&self) -> Option<&CompressedPage> {
        self.current.as_ref()
    }
}

/// Folds blocks together in file order and writes their row groups while the file is valid.
struct Merger<'a> {
    contract: &'a Contract,
    accumulators: Vec<ColumnAccumulator>,
    violations: Violations,
    rows: u64,
    writer: &'a BatchedWriter<File>,
    /// Cleared at the first broken rule: invalid files get no snapshot.
    writing: bool,
}

impl<'a> Merger<'a> {
    fn new(contract: &'a Contract, writer: &'a BatchedWriter<File>) -> Self {
        Self {
            contract,
            accumulators: accumulators(contract),
            violations: Violations::default(),
            rows: 0,
            writer,
            writing: true,
        }
    }

    fn merge(&mut self, chunk: ChunkResult) -> Result<(), ScanError> {
        for (mine, theirs) in self.accumulators.iter_mut().zip(chunk.accumulators) {
            mine.merge(theirs);
        }
        self.violations.merge(chunk.violations);
        self.rows += chunk.rows;
        match chunk.row_groups {
            Some(groups) if self.writing && self.violations.is_empty() => {
                self.writer.write_row_groups(groups)?
            }
            _ => self.writing = false,
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
        // An unreadable file's row count means nothing; do not report it as too short.
        if self.rows < self.contract.min_rows.max(1)
            && bytes > 0
            && !self.violations.has(Rule::Unreadable)
        {
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
        if passed && self.writing {
            self.writer.finish()?;
            parquet_written = true;
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
    if enabled { s.trim_ascii() } else { s }
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

    #[test]
    fn blocks_end_after_a_newline_outside_quotes() {
        assert_eq!(last_record_end(b"a,b\nc,d\ne,f", b'"'), Some(8));
        assert_eq!(last_record_end(b"a,\"x\ny\"\nc,\"open\n", b'"'), Some(8));
        assert_eq!(last_record_end(b"a,\"x\ny", b'"'), None);
        assert_eq!(last_record_end(b"no newline", b'"'), None);
    }

    /// Several blocks, quoted fields with newlines across block ends, one bad value
    /// far in: rows, line numbers and the snapshot must come out as for one block.
    #[test]
    fn a_multi_block_file_reports_true_line_numbers() {
        let contract = Contract::from_json(
            br#"{"dataset":"m","csv":{"has_header":true},"columns":[{"name":"id","type":"integer"},{"name":"note","type":"string"}]}"#,
        )
        .unwrap();
        let mut csv = String::from("id,note\n");
        let mut line = 2u64;
        let mut bad_line = 0;
        let rows = 800_000u64;
        for i in 0..rows {
            if i % 1000 == 7 {
                csv.push_str(&format!("{i},\"two\nlines, with a comma\"\n"));
                line += 2;
            } else if i == rows - 3 {
                csv.push_str("oops,bad\n");
                bad_line = line;
                line += 1;
            } else {
                csv.push_str(&format!("{i},plain note number {i}\n"));
                line += 1;
            }
        }
        assert!(csv.len() > 2 * BLOCK_BYTES, "the test needs several blocks");
        let dir = tempfile::tempdir().unwrap();
        let out = scan(csv.as_bytes(), &contract, &dir.path().join("x.parquet")).unwrap();
        assert_eq!(out.rows, rows);
        assert_eq!(out.bytes, csv.len() as u64);
        let v = &out.validation.violations;
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(
            (v[0].rule, v[0].count, v[0].examples[0].row),
            (Rule::Type, 1, bad_line)
        );
        let notes = out.profile.iter().find(|p| p.name == "note").unwrap();
        assert_eq!(notes.top_values[0].value, "two\nlines, with a comma");
        assert_eq!(notes.top_values[0].count, rows / 1000);

        let good = csv.replace("oops,bad\n", "1,fixed\n");
        let out = scan(good.as_bytes(), &contract, &dir.path().join("y.parquet")).unwrap();
        assert!(out.validation.passed && out.parquet_written);
        let df = ParquetReader::new(File::open(dir.path().join("y.parquet")).unwrap())
            .finish()
            .unwrap();
        assert_eq!(df.height() as u64, rows);
        assert_eq!(
            df.column("note").unwrap().str().unwrap().get(7),
            Some("two\nlines, with a comma")
        );
    }

    #[test]
    fn parquet_uploads_are_checked_like_csv() {
        let contract = Contract::from_json(
            br#"{"dataset":"p","csv":{"has_header":true},"columns":[{"name":"id","type":"integer","max":100},{"name":"c","type":"string"}]}"#,
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let csv: String = std::iter::once("id,c\n".to_owned())
            .chain((0..100).map(|i| format!("{i},x{}\n", i % 3)))
            .collect();
        let from_csv = scan(csv.as_bytes(), &contract, &dir.path().join("a.parquet")).unwrap();
        assert!(from_csv.parquet_written);
        // The snapshot, uploaded as Parquet, passes with the same profile.
        let parquet = std::fs::read(dir.path().join("a.parquet")).unwrap();
        let from_parquet = scan(&parquet[..], &contract, &dir.path().join("b.parquet")).unwrap();
        assert_eq!(from_parquet.format, SourceFormat::Parquet);
        assert!(
            from_parquet.validation.passed,
            "{:?}",
            from_parquet.validation
        );
        assert_eq!(
            (from_parquet.rows, &from_parquet.profile),
            (from_csv.rows, &from_csv.profile)
        );
        // A stricter contract finds the row by number; a missing column is named.
        let strict = Contract::from_json(
            br#"{"dataset":"p","columns":[{"name":"id","type":"integer","max":98},{"name":"c","type":"string"}]}"#,
        )
        .unwrap();
        let out = scan(&parquet[..], &strict, &dir.path().join("c.parquet")).unwrap();
        let v = &out.validation.violations[0];
        assert_eq!((v.rule, v.count, v.examples[0].row), (Rule::Range, 1, 100));
        let missing =
            Contract::from_json(br#"{"dataset":"p","columns":[{"name":"zzz","type":"string"}]}"#)
                .unwrap();
        let out = scan(&parquet[..], &missing, &dir.path().join("d.parquet")).unwrap();
        assert_eq!(out.validation.violations[0].rule, Rule::MissingColumn);
        let out = scan(
            &b"PAR1 but not really"[..],
            &contract,
            &dir.path().join("e.parquet"),
        )
        .unwrap();
        assert_eq!(out.validation.violations[0].rule, Rule::Unreadable);
    }

    /// CRLF, blank lines and several blocks give the same rows, profile and line
    /// numbers as plain LF data.
    #[test]
    fn quote_free_blocks_split_like_the_csv_crate() {
        let contract = Contract::from_json(
            br#"{"dataset":"f","csv":{"has_header":true},"columns":[{"name":"id","type":"integer","max":1999999},{"name":"c","type":"string"}]}"#,
        )
        .unwrap();
        let rows = 1_500_000u64;
        let mut lf = String::from("id,c\n");
        for i in 0..rows {
            lf.push_str(&format!(
                "{},cat{}\n",
                if i == rows - 5 { 2_000_000 } else { i },
                i % 7
            ));
        }
        assert!(lf.len() > 2 * BLOCK_BYTES);
        let crlf = lf.replace('\n', "\r\n").replacen("\r\n1,", "\r\n\r\n1,", 1);
        let dir = tempfile::tempdir().unwrap();
        let a = scan(lf.as_bytes(), &contract, &dir.path().join("a.parquet")).unwrap();
        let b = scan(crlf.as_bytes(), &contract, &dir.path().join("b.parquet")).unwrap();
        assert_eq!((a.rows, b.rows), (rows, rows));
        // Blocks end elsewhere with CRLF, so sums merge in another order: compare the
        // standard deviation to rounding, everything else exactly.
        let without_std = |p: &[ColumnProfile]| -> (Vec<ColumnProfile>, Vec<f64>) {
            let mut p = p.to_vec();
            let stds = p
                .iter_mut()
                .filter_map(|c| c.numeric.as_mut().map(|n| std::mem::take(&mut n.std)))
                .collect();
            (p, stds)
        };
        let ((pa, sa), (pb, sb)) = (without_std(&a.profile), without_std(&b.profile));
        assert_eq!(pa, pb);
        assert!(
            sa.iter()
                .zip(&sb)
                .all(|(x, y)| (x - y).abs() <= 1e-9 * x.abs()),
            "{sa:?} vs {sb:?}"
        );
        let (va, vb) = (&a.validation.violations[0], &b.validation.violations[0]);
        assert_eq!(
            (va.rule, va.count, va.examples[0].row),
            (Rule::Range, 1, rows - 5 + 2)
        );
        assert_eq!(
            vb.examples[0].row,
            rows - 5 + 3,
            "the blank line counts as a line"
        );
    }

    /// Columns with allowed values are written as `Enum` columns of their codes; the
    /// snapshot reads back as the same strings and passes as a Parquet upload.
    #[test]
    fn allowed_values_become_enum_columns_in_the_snapshot() {
        let contract = Contract::from_json(
            br#"{"dataset":"e","csv":{"has_header":true,"null_tokens":["?"]},"columns":[{"name":"size","type":"string","allowed":["S","M","L","M"]},{"name":"n","type":"integer"}]}"#,
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let csv = "size,n\nM,1\nL,2\n?,3\nS,4\n";
        let out = scan(csv.as_bytes(), &contract, &dir.path().join("e.parquet")).unwrap();
        assert!(out.parquet_written, "{:?}", out.validation);
        let df = ParquetReader::new(File::open(dir.path().join("e.parquet")).unwrap())
            .finish()
            .unwrap();
        let size = df.column("size").unwrap();
        assert!(
            matches!(size.dtype(), DataType::Enum(..)),
            "{:?}",
            size.dtype()
        );
        let strings = size.cast(&DataType::String).unwrap();
        let values: Vec<Option<&str>> = strings.str().unwrap().iter().collect();
        assert_eq!(values, [Some("M"), Some("L"), None, Some("S")]);
        let parquet = std::fs::read(dir.path().join("e.parquet")).unwrap();
        let again = scan(&parquet[..], &contract, &dir.path().join("f.parquet")).unwrap();
        assert!(again.validation.passed, "{:?}", again.validation);
        assert_eq!(again.profile, out.profile);
    }

    #[test]
    fn labels_become_enum_columns_and_a_wrong_label_is_one_violation() {
        let contract = Contract::from_json(
            br#"{"dataset":"l","columns":[{"name":"x","type":"float"},{"name":"y","type":"string"}],"label":{"column":"y","values":["no","yes"]}}"#,
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let good = scan(
            &b"x,y
1.5,yes
,no
"[..],
            &contract,
            &dir.path().join("g.parquet"),
        )
        .unwrap();
        assert!(good.parquet_written, "{:?}", good.validation);
        let df = ParquetReader::new(File::open(dir.path().join("g.parquet")).unwrap())
            .finish()
            .unwrap();
        assert!(matches!(
            df.column("y").unwrap().dtype(),
            DataType::Enum(..)
        ));
        let x: Vec<Option<f64>> = df.column("x").unwrap().f64().unwrap().iter().collect();
        assert_eq!(x, [Some(1.5), None]);
        let bad = scan(
            &b"x,y
1,maybe
"[..],
            &contract,
            &dir.path().join("b.parquet"),
        )
        .unwrap();
        assert!(!bad.parquet_written);
        let rules: Vec<Rule> = bad.validation.violations.iter().map(|v| v.rule).collect();
        assert_eq!(rules, [Rule::LabelValues]);
    }
}
