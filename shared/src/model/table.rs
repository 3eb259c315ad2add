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

    /// The column `name`, looked for at position `at` first: a table decoded against a
    /// signature holds its columns in the signature's order, so scoring finds each one
    /// with one comparison instead of a scan.
    pub fn column_near(&self, at: usize, name: &str) -> Option<&Values> {
        match self.columns.get(at) {
            Some((n, values)) if n == name => Some(values),
            _ => self.column(name),
        }
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
        let read = |path: &Path| {
            let file = std::fs::File::open(path).map_err(|e| fail(&e))?;
            ParquetReader::new(file).finish().map_err(|e| fail(&e))
        };
        let frame = if path.is_dir() {
            // A snapshot in parts (a distributed scan's): the parts in order, as one.
            let mut frame: Option<DataFrame> = None;
            for (_, part) in crate::dataset::snapshot_parts(path).map_err(|e| fail(&e))? {
                let next = read(&part)?;
                match &mut frame {
                    None => frame = Some(next),
                    Some(frame) => {
                        frame.vstack_mut(&next).map_err(|e| fail(&e))?;
                    }
                }
            }
            frame.ok_or_else(|| fail(&"the snapshot folder holds no Parquet parts"))?
        } else {
            read(path)?
        };
        Self::from_frame(&frame, columns).map_err(|e| match e {
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
        Self::from_frame(&frame, columns)
    }

    /// `columns` of a frame read from a snapshot.
    fn from_frame(
        frame: &DataFrame,
        columns: &[(String, ColumnType)],
    ) -> Result<Table, TableError> {
        let fail = |e: &dyn std::fmt::Display| TableError::Read {
            path: "(file)".into(),
            message: e.to_string(),
        };
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
    fn a_column_is_found_at_its_position_or_else_by_name() {
        let table = Table {
            columns: vec![
                ("a".into(), Values::Numbers(vec![1.0])),
                ("b".into(), Values::Text(vec![Some("x".into())])),
            ],
        };
        assert_eq!(table.column_near(0, "a"), Some(&Values::Numbers(vec![1.0])));
        assert_eq!(
            table.column_near(0, "b"),
            Some(&Values::Text(vec![Some("x".into())]))
        );
        assert_eq!(table.column_near(7, "a"), Some(&Values::Numbers(vec![1.0])));
        assert_eq!(table.column_near(1, "c"), None);
    }
}
