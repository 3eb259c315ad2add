//! The snapshot: the version's `data.parquet`, written by the merging thread from row
//! groups the scan workers encode.

use std::fs::File;
use std::path::Path;

use polars::prelude::*;
use polars_parquet::write::{
    CompressedPage, CompressionOptions, DynIter, DynStreamingIterator, Encoding,
    FallibleStreamingIterator, ParquetType, RowGroupIterColumns, StatisticsOptions, Version,
    WriteOptions, array_to_columns, compress, to_parquet_schema,
};

use crate::dataset::contract::{ColumnType, Contract};

use super::ScanError;

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
/// and the encoder the scan workers turn their batches into row groups with. `types`
/// are the snapshot's column types (see [`super::columns::column_type`]).
pub(super) fn snapshot_writer(
    contract: &Contract,
    types: &[DataType],
    parquet_out: &Path,
) -> Result<(BatchedWriter<File>, RowGroupEncoder), ScanError> {
    let schema: Schema = contract
        .columns
        .iter()
        .zip(types)
        .map(|(c, dtype)| Field::new(c.name.as_str().into(), dtype.clone()))
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
pub(super) struct RowGroupEncoder {
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

    pub(super) fn encode(
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
