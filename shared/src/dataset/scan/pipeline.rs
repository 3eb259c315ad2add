//! The CSV pipeline: a reader cutting blocks, workers checking them, and the caller's
//! thread merging them in file order (see the [module docs](super)).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, mpsc};

use polars::prelude::DataType;

use crate::dataset::validation::Rules;

use super::block::BlockResult;
use super::csv_blocks::{Block, check_block, cut_blocks};
use super::snapshot::snapshot_writer;
use super::{Merger, ScanError, ScanOutput, Source, SourceFormat};

pub(super) fn scan_csv(
    source: Source<impl Read + Send>,
    head: Vec<u8>,
    more: bool,
    rules: &Rules<'_>,
    types: &[DataType],
    parquet_out: &Path,
) -> Result<ScanOutput, ScanError> {
    let contract = rules.contract();
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8);
    let quote = contract.csv.quote as u8;
    let (writer, encoder) = snapshot_writer(contract, types, parquet_out)?;
    let (writer, encoder) = (&writer, &encoder);
    let mut merger = Merger::new(rules, writer);
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
        mpsc::sync_channel::<(usize, Result<BlockResult, ScanError>)>(2 * workers);
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
                        let result = check_block(rules, types, estimating, &block, encoder);
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
            .spawn_scoped(scope, move || {
                cut_blocks(source, head, more, quote, block_tx)
            })
            .expect("spawning the scan reader");
        // Merge in file order while blocks finish in any order.
        let mut pending: BTreeMap<usize, Result<BlockResult, ScanError>> = BTreeMap::new();
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
