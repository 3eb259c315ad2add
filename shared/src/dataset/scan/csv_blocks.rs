//! CSV: cutting the upload into blocks of whole records, and reading a block's records.

use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::SyncSender;

use polars::prelude::DataType;

use crate::dataset::validation::{Rule, Rules};

use super::block::{BlockChecker, BlockResult};
use super::snapshot::RowGroupEncoder;
use super::{BLOCK_BYTES, ScanError, Source};

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
pub(super) struct Block {
    /// Its place in the file (0 for the first block).
    pub index: usize,
    first_line: u64,
    /// Newlines in the block: an upper bound on its records, to size buffers once.
    lines: u64,
    bytes: Vec<u8>,
}

/// Reads the rest of the upload (`head` is what was read so far, `more` whether there
/// is more) and sends it on as blocks of whole records, in file order, until the
/// receiver hangs up. Returns the upload's SHA-256 and size.
pub(super) fn cut_blocks(
    mut source: Source<impl Read>,
    head: Vec<u8>,
    mut more: bool,
    quote: u8,
    blocks: SyncSender<Block>,
) -> std::io::Result<(String, u64)> {
    let mut buf = head;
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
                let block = Block {
                    index,
                    first_line: line,
                    lines,
                    bytes: buf,
                };
                if blocks.send(block).is_err() {
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
}

/// Parses, validates and profiles one block.
pub(super) fn check_block(
    rules: &Rules<'_>,
    types: &[DataType],
    estimating: &[AtomicBool],
    block: &Block,
    encoder: Option<&RowGroupEncoder>,
) -> Result<BlockResult, ScanError> {
    let contract = rules.contract();
    let mut checker = BlockChecker::new(rules, types, block.lines as usize + 1);
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
        rows.handle(&mut checker, rules, &record, line);
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
    /// Whether another delimiter would fit, worked out at the first short or long row.
    hint: Option<String>,
}

impl RowHandler {
    fn handle(
        &mut self,
        checker: &mut BlockChecker<'_>,
        rules: &Rules<'_>,
        record: &csv::ByteRecord,
        line: u64,
    ) {
        if self.header_pending {
            self.header_pending = false;
            checker.check_header(record, line);
            return;
        }
        if record.len() != self.expected {
            let hint = self.hint.get_or_insert_with(|| {
                let raw: Vec<u8> = record.iter().flatten().copied().collect();
                rules.delimiter_hint(&raw)
            });
            let fields: Vec<_> = record.iter().map(String::from_utf8_lossy).collect();
            let raw = fields.join(&rules.contract().csv.delimiter.to_string());
            checker.wrong_field_count(record.len(), hint, line, &raw);
            return;
        }
        checker.check_record(record, line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_end_after_a_newline_outside_quotes() {
        assert_eq!(last_record_end(b"a,b\nc,d\ne,f", b'"'), Some(8));
        assert_eq!(last_record_end(b"a,\"x\ny\"\nc,\"open\n", b'"'), Some(8));
        assert_eq!(last_record_end(b"a,\"x\ny", b'"'), None);
        assert_eq!(last_record_end(b"no newline", b'"'), None);
    }
}
