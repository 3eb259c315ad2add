//! Parquet uploads: read a slice of rows at a time and checked like CSV.

use std::io::{Read, Seek, Write};
use std::path::Path;

use polars::prelude::*;

use crate::dataset::validation::{Rule, Rules};

use super::block::BlockChecker;
use super::snapshot::snapshot_writer;
use super::{BLOCK_BYTES, Merger, ScanError, ScanOutput, Source, SourceFormat};

/// Checks a Parquet upload (`head` is what was read of it so far) as [`super::scan`]
/// does a CSV one, one slice of rows at a time, and writes the snapshot if it passes.
pub(super) fn scan_parquet(
    mut source: Source<impl Read>,
    head: Vec<u8>,
    rules: &Rules<'_>,
    types: &[DataType],
    parquet_out: &Path,
) -> Result<ScanOutput, ScanError> {
    let contract = rules.contract();
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
    let (writer, encoder) = snapshot_writer(contract, types, parquet_out)?;
    let mut merger = Merger::new(rules, &writer);
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
    rules.check_columns_present(
        |name| schema.contains(name),
        total as u64,
        &mut merger.violations,
    );
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
        let mut checker = BlockChecker::new(rules, types, df.height());
        for row in 0..df.height() {
            let fields = strings.iter().map(|s| s.get(row).unwrap_or_default());
            checker.check_fields(fields, (offset + row) as u64 + 1);
        }
        merger.merge(checker.finish(Some(&encoder))?)?;
    }
    merger.finish(SourceFormat::Parquet, sha256, bytes)
}
