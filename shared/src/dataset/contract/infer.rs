//! Inferring a contract from a dataset's first upload, when it has none yet.

use std::io::Read;

use super::{ColumnSpec, ColumnType, Contract, CsvFormat};
use crate::dataset::DatasetName;

/// Rows read to infer a contract.
const INFER_ROWS: usize = 10_000;
const INFER_NULLS: [&str; 6] = ["", "NA", "N/A", "null", "NULL", "?"];

/// Infers a contract from a file's first rows: the delimiter (the candidate that splits
/// the first lines into equally many fields), whether the first row is a header, and
/// each column's narrowest type. It asserts no ranges, categories or label; values
/// later in the file that do not fit the inferred types quarantine the file.
pub fn infer(dataset: DatasetName, source: impl Read) -> std::io::Result<Contract> {
    let mut sample = Vec::new();
    source.take(4 << 20).read_to_end(&mut sample)?;
    let text = String::from_utf8_lossy(sample.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&sample))
        .into_owned();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(50)
        .collect();
    let delimiter = [',', '\t', ';', '|']
        .into_iter()
        .filter(|&d| lines.first().is_some_and(|l| l.contains(d)))
        .max_by_key(|&d| {
            let counts: Vec<usize> = lines.iter().map(|l| l.matches(d).count()).collect();
            let consistent = counts.iter().all(|&c| c == counts[0]);
            (consistent, counts[0])
        })
        .unwrap_or(',');
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter as u8)
        .from_reader(text.as_bytes());
    let rows: Vec<Vec<String>> = reader
        .records()
        .take(INFER_ROWS)
        .filter_map(Result::ok)
        .map(|r| r.iter().map(|f| f.trim().to_owned()).collect())
        .collect();
    let width = rows.first().map_or(1, Vec::len);
    let kind_of = |values: &mut dyn Iterator<Item = &str>| {
        let values: Vec<&str> = values.filter(|v| !INFER_NULLS.contains(v)).collect();
        if values.is_empty() {
            ColumnType::String
        } else if values.iter().all(|v| v.parse::<i64>().is_ok()) {
            ColumnType::Integer
        } else if values
            .iter()
            .all(|v| v.parse::<f64>().is_ok_and(f64::is_finite))
        {
            ColumnType::Float
        } else if values
            .iter()
            .all(|v| matches!(v.to_ascii_lowercase().as_str(), "true" | "false"))
        {
            ColumnType::Boolean
        } else {
            ColumnType::String
        }
    };
    let column = |i: usize, skip: usize| {
        let mut it = rows
            .iter()
            .skip(skip)
            .filter_map(move |r| r.get(i).map(String::as_str));
        kind_of(&mut it)
    };
    // A header: the first row is not of the type the rest of its column has, somewhere,
    // or every column is text and the first row's values never recur below it.
    let first = rows.first().cloned().unwrap_or_default();
    let has_header = rows.len() > 1
        && ((0..width)
            .any(|i| column(i, 1) != ColumnType::String && column(i, 0) == ColumnType::String)
            || (0..width).all(|i| {
                column(i, 1) == ColumnType::String
                    && !rows.iter().skip(1).any(|r| r.get(i) == first.get(i))
            }));
    let columns = (0..width)
        .map(|i| ColumnSpec {
            name: if has_header {
                first.get(i).cloned().unwrap_or_default()
            } else {
                format!("col_{}", i + 1)
            },
            kind: column(i, usize::from(has_header)),
            min: None,
            max: None,
            allowed: None,
            max_null_fraction: None,
        })
        .collect();
    Ok(Contract {
        dataset,
        version: 0,
        csv: CsvFormat {
            delimiter,
            has_header,
            null_tokens: INFER_NULLS
                .iter()
                .filter(|t| !t.is_empty())
                .map(|t| (*t).to_owned())
                .collect(),
            ..CsvFormat::default()
        },
        columns,
        label: None,
        min_rows: 1,
        inferred: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inference_finds_delimiter_header_and_types() {
        let csv = "id;score;name;ok\n1;0.5;ann;true\n2;?;bob;false\n3;2;cy;true\n";
        let c = infer(DatasetName::parse("t").unwrap(), csv.as_bytes()).unwrap();
        assert_eq!(c.csv.delimiter, ';');
        assert!(c.csv.has_header);
        let cols: Vec<_> = c
            .columns
            .iter()
            .map(|c| (c.name.as_str(), c.kind))
            .collect();
        assert_eq!(
            cols,
            [
                ("id", ColumnType::Integer),
                ("score", ColumnType::Float),
                ("name", ColumnType::String),
                ("ok", ColumnType::Boolean)
            ]
        );
        let headerless = "1,a\n2,b\n3,c\n";
        let c = infer(DatasetName::parse("t").unwrap(), headerless.as_bytes()).unwrap();
        assert!(!c.csv.has_header);
        assert_eq!(c.column_names(), ["col_1", "col_2"]);
    }
}
