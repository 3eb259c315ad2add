//! Typed column buffers: one block's values, built into the polars columns that become
//! one Parquet row group of the snapshot.

use polars::prelude::*;
use polars_arrow::bitmap::MutableBitmap;

use crate::dataset::contract::ColumnType;
use crate::dataset::validation::rules::AllowedValues;

/// A typed column being filled for one block's batch. Numbers and codes go straight
/// into a `Vec` that becomes the array without a copy.
pub(super) enum ColumnBuffer {
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
    /// An empty buffer for a column of the snapshot's type `dtype` (see [`column_type`]).
    pub(super) fn new(name: &str, dtype: &DataType, capacity: usize) -> Self {
        let name = PlSmallStr::from(name);
        match dtype {
            DataType::Int64 => ColumnBuffer::Integer(Numbers::new(name, capacity)),
            DataType::Float64 => ColumnBuffer::Float(Numbers::new(name, capacity)),
            DataType::Boolean => ColumnBuffer::Boolean(BooleanChunkedBuilder::new(name, capacity)),
            DataType::Enum(..) => ColumnBuffer::Enum {
                codes: Numbers::new(name, capacity),
                dtype: dtype.clone(),
            },
            _ => ColumnBuffer::String(StringChunkedBuilder::new(name, capacity)),
        }
    }

    pub(super) fn push_null(&mut self) {
        match self {
            ColumnBuffer::Integer(b) => b.push_null(),
            ColumnBuffer::Float(b) => b.push_null(),
            ColumnBuffer::String(b) => b.append_null(),
            ColumnBuffer::Boolean(b) => b.append_null(),
            ColumnBuffer::Enum { codes, .. } => codes.push_null(),
        }
    }

    pub(super) fn finish(self) -> Column {
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
pub(super) struct Numbers<T> {
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
    pub(super) fn push(&mut self, value: T) {
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
    pub(super) fn numbers(&self) -> Option<std::borrow::Cow<'_, [f64]>> {
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

/// The snapshot's type for a column: its contract type, or an `Enum` of its allowed
/// values, so the snapshot is dictionary-encoded without a second pass over the strings.
pub(super) fn column_type(
    kind: ColumnType,
    allowed: Option<&AllowedValues<'_>>,
) -> PolarsResult<DataType> {
    if let Some(allowed) = allowed {
        let categories = FrozenCategories::new(allowed.values.iter().copied())?;
        return Ok(DataType::from_frozen_categories(categories));
    }
    Ok(polars_type(kind))
}

fn polars_type(kind: ColumnType) -> DataType {
    match kind {
        ColumnType::Integer => DataType::Int64,
        ColumnType::Float => DataType::Float64,
        ColumnType::String => DataType::String,
        ColumnType::Boolean => DataType::Boolean,
    }
}
