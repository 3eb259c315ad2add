//! One streaming pass over an uploaded file: hash, parse, validate, profile, and write
//! the Parquet snapshot, in bounded memory and on every core.
//!
//! The pipeline ([`pipeline`]) has three stages joined by bounded channels:
//! 1. the reader (one thread) hashes the raw bytes and cuts them into blocks of about
//!    [`BLOCK_BYTES`] at record boundaries (a newline preceded by an even number of quote
//!    characters, which is exact for RFC 4180 files) ([`csv_blocks`]);
//! 2. workers (one per core) parse a block each, check its values against the contract's
//!    rules ([`crate::dataset::validation::rules`]), profile them and buffer them as
//!    typed columns ([`block`], [`columns`]), and encode the batch as a Parquet row group;
//! 3. the caller's thread merges the blocks' profiles and violations in file order and
//!    writes their row groups while the file is still valid ([`Merger`]).
//!
//! At most a few blocks are in flight, so memory stays bounded whatever the file size.
//! Blocks are cut at the same places for the same bytes, so the output is deterministic.
//!
//! CSV is parsed record by record with the `csv` crate rather than polars' CSV reader:
//! the quarantine report must name the line and value of every broken rule, and polars
//! fails a whole batch on a ragged row or bad UTF-8 without saying where. Polars builds
//! the typed column batches and writes (and, for Parquet uploads, reads) the Parquet
//! ([`parquet`]).

use std::fs::File;
use std::io::Read;
use std::path::Path;

use polars::prelude::*;
use sha2::{Digest, Sha256};

use super::contract::Contract;
use super::profile::{ColumnAccumulator, ColumnProfile};
use super::validation::{Rules, ValidationResult, Violations};
use block::BlockResult;

mod block;
mod columns;
mod csv_blocks;
mod parquet_upload;
mod pipeline;
mod snapshot;

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

/// What a scan found. Also what the Spark job (`shared/spark/ingest.py`) writes as its
/// `scan.json`, so a delegated upload is finished from the same fields.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
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
    let rules = Rules::new(contract);
    let types = contract
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| columns::column_type(c.kind, rules.allowed(i)))
        .collect::<PolarsResult<Vec<_>>>()?;
    if head.starts_with(b"PAR1") {
        return parquet_upload::scan_parquet(source, head, &rules, &types, parquet_out);
    }
    pipeline::scan_csv(source, head, more, &rules, &types, parquet_out)
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

/// Folds blocks together in file order and writes their row groups while the file is valid.
struct Merger<'a> {
    rules: &'a Rules<'a>,
    accumulators: Vec<ColumnAccumulator>,
    violations: Violations,
    rows: u64,
    writer: &'a BatchedWriter<File>,
    /// Cleared at the first broken rule: invalid files get no snapshot.
    writing: bool,
}

impl<'a> Merger<'a> {
    fn new(rules: &'a Rules<'a>, writer: &'a BatchedWriter<File>) -> Self {
        Self {
            rules,
            accumulators: block::accumulators(rules.contract()),
            violations: Violations::default(),
            rows: 0,
            writer,
            writing: true,
        }
    }

    fn merge(&mut self, block: BlockResult) -> Result<(), ScanError> {
        for (mine, theirs) in self.accumulators.iter_mut().zip(block.accumulators) {
            mine.merge(theirs);
        }
        self.violations.merge(block.violations);
        self.rows += block.rows;
        match block.row_groups {
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
        let nulls = self.accumulators.iter().map(ColumnAccumulator::nulls);
        self.rules
            .check_file(bytes, self.rows, nulls, &mut self.violations);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::validation::Rule;

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
