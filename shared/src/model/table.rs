//! Rows of raw feature values, column by column: what the trainer fits on, what the
//! evaluation gate scores, and what a scoring request becomes before inference.

use std::path::Path;

use polars::prelude::*;

use crate::dataset::contract::ColumnType;

/// One column's values. Nulls are NaN in numbers and `None` in text.
#[derive(Clone, Debug, PartialEq)]
pub enum Values {
    Numbers(Vec<f64>),
    Text(Vec<Option<String>>),
}

impl Values {
    pub fn len(&self) -> usize {
        match self {
            Values::Numbers(v) => v.len(),
            Values::Text(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The rows at `indices`, in that order.
    pub fn take(&self, indices: &[usize]) -> Values {
        match self {
            Values::Numbers(v) => Values::Numbers(indices.iter().map(|&i| v[i]).collect()),
            Values::Text(v) => Values::Text(indices.iter().map(|&i| v[i].clone()).collect()),
        }
    }
}

/// Named columns of equal length.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Table {
    pub columns: Vec<(String, Values)>,
}

#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("reading {path}: {message}")]
    Read { path: String, message: String },
    #[error("column {0:?} is not in the data")]
    MissingColumn(String),
}

impl Table {
    pub fn rows(&self) -> usize {
        self.columns.first().map_or(0, |(_, v)| v.len())
    }

    pub fn column(&self, name: &str) -> Option<&Values> {
        self.columns.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// The rows of `tables` one after another (all with this table's columns, in order).
    pub fn concat(tables: &[&Table]) -> Table {
        let Some(first) = tables.first() else {
            return Table::default();
        };
        let rows = tables.iter().map(|t| t.rows()).sum();
        let mut columns: Vec<(String, Values)> = first
            .columns
            .iter()
            .map(|(n, v)| {
                let values = match v {
                    Values::Numbers(_) => Values::Numbers(Vec::with_capacity(rows)),
                    Values::Text(_) => Values::Text(Vec::with_capacity(rows)),
                };
                (n.clone(), values)
            })
            .collect();
        for t in tables {
            for ((_, into), (_, from)) in columns.iter_mut().zip(&t.columns) {
                match (into, from) {
                    (Values::Numbers(a), Values::Numbers(b)) => a.extend_from_slice(b),
                    (Values::Text(a), Values::Text(b)) => a.extend_from_slice(b),
                    _ => {}
                }
            }
        }
        Table { columns }
    }

    pub fn take(&self, indices: &[usize]) -> Table {
        Table {
            columns: self
                .columns
                .iter()
                .map(|(n, v)| (n.clone(), v.take(indices)))
                .collect(),
        }
    }

    /// Reads `columns` (name and kind) of a dataset version's Parquet snapshot:
    /// numbers and booleans as numbers, everything else as text.
    pub fn read_parquet(
        path: &Path,
        columns: &[(String, ColumnType)],
    ) -> Result<Table, TableError> {
        let fail = |e: &dyn std::fmt::Display| TableError::Read {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        let file = std::fs::File::open(path).map_err(|e| fail(&e))?;
        Self::read_parquet_file(file, columns).map_err(|e| match e {
            TableError::Read { message, .. } => fail(&message),
            other => other,
        })
    }

    /// [`read_parquet`](Self::read_parquet) from an open file.
    pub fn read_parquet_file(
        file: std::fs::File,
        columns: &[(String, ColumnType)],
    ) -> Result<Table, TableError> {
        let fail = |e: &dyn std::fmt::Display| TableError::Read {
            path: "(file)".into(),
            message: e.to_string(),
        };
        let frame = ParquetReader::new(file).finish().map_err(|e| fail(&e))?;
        let mut out = Table::default();
        for (name, kind) in columns {
            let column = frame
                .column(name)
                .map_err(|_| TableError::MissingColumn(name.clone()))?;
            let values = if kind.is_numeric() || *kind == ColumnType::Boolean {
                let cast = column.cast(&DataType::Float64).map_err(|e| fail(&e))?;
                let floats = cast.f64().map_err(|e| fail(&e))?;
                Values::Numbers(floats.iter().map(|v| v.unwrap_or(f64::NAN)).collect())
            } else {
                let cast = column.cast(&DataType::String).map_err(|e| fail(&e))?;
                let text = cast.str().map_err(|e| fail(&e))?;
                Values::Text(text.iter().map(|v| v.map(str::to_owned)).collect())
            };
            out.columns.push((name.clone(), values));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_concatenate_row_after_row() {
        let a = Table {
            columns: vec![
                ("x".into(), Values::Numbers(vec![1.0])),
                ("c".into(), Values::Text(vec![Some("a".into())])),
            ],
        };
        let b = Table {
            columns: vec![
                ("x".into(), Values::Numbers(vec![2.0, f64::NAN])),
                ("c".into(), Values::Text(vec![None, Some("b".into())])),
            ],
        };
        let both = Table::concat(&[&a, &b]);
        assert_eq!(both.rows(), 3);
        let Some(Values::Numbers(x)) = both.column("x") else {
            panic!()
        };
        assert_eq!(x[..2], [1.0, 2.0]);
        assert!(x[2].is_nan());
        assert_eq!(
            both.column("c"),
            Some(&Values::Text(vec![
                Some("a".into()),
                None,
                Some("b".into())
            ]))
        );
        assert_eq!(Table::concat(&[]), Table::default());
    }
}
