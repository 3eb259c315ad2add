//! The decoder's fast path: a records body (`{"data": [{…}, …]}`) read straight from its
//! bytes into the signature's columns, with no `serde_json::Value` tree in between.
//!
//! Why: for a 100-row request, building the tree and walking it cost more than
//! inference. The fast path only ever succeeds with the table [`super::decode`] would
//! build from the same body. On anything else it gives up and the caller falls back to
//! that decoder: the columns form, a duplicate key, a missing column, a bad value, too
//! many rows, or bytes that are not JSON. So every error message comes from one place,
//! and a test checks that the two agree on every fuzzed body.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::dataset::contract::ColumnType;
use crate::model::signature::TensorType;
use crate::model::{Signature, Table, Values};

/// Decodes `bytes` if they are a records body every value of which is valid; `None`
/// means "ask the full decoder".
pub fn decode_records(bytes: &[u8], signature: &Signature, max_rows: usize) -> Option<Table> {
    if signature.inputs.len() > 64 {
        return None; // the per-row bookkeeping below is a 64-bit mask
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let table = Body {
        signature,
        max_rows,
    }
    .deserialize(&mut de)
    .ok()?;
    de.end().ok()?;
    Some(table)
}

/// Gives up; the message is never shown (the full decoder speaks instead).
fn give_up<E: de::Error>() -> E {
    E::custom("not the fast path")
}

struct Body<'a> {
    signature: &'a Signature,
    max_rows: usize,
}

impl<'de> DeserializeSeed<'de> for Body<'_> {
    type Value = Table;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Table, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Body<'_> {
    type Value = Table;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a records body")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Table, A::Error> {
        let mut table = None;
        while let Some(Key(key)) = map.next_key()? {
            match &*key {
                "data" if table.is_none() => {
                    table = Some(map.next_value_seed(Rows {
                        signature: self.signature,
                        max_rows: self.max_rows,
                    })?);
                }
                "data" | "columns" => return Err(give_up()),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        table.ok_or_else(give_up)
    }
}

struct Rows<'a> {
    signature: &'a Signature,
    max_rows: usize,
}

impl<'de> DeserializeSeed<'de> for Rows<'_> {
    type Value = Table;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Table, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Rows<'_> {
    type Value = Table;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of rows")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Table, A::Error> {
        let capacity = seq.size_hint().unwrap_or(1).min(self.max_rows);
        let mut columns: Vec<(String, Values)> = self
            .signature
            .inputs
            .iter()
            .map(|i| {
                let values = match i.tensor {
                    TensorType::String => Values::Text(Vec::with_capacity(capacity)),
                    _ => Values::Numbers(Vec::with_capacity(capacity)),
                };
                (i.name.clone(), values)
            })
            .collect();
        let mut rows = 0;
        while seq
            .next_element_seed(Row {
                signature: self.signature,
                columns: &mut columns,
            })?
            .is_some()
        {
            rows += 1;
            if rows > self.max_rows {
                return Err(give_up());
            }
        }
        if rows == 0 {
            return Err(give_up());
        }
        Ok(Table { columns })
    }
}

struct Row<'a> {
    signature: &'a Signature,
    columns: &'a mut Vec<(String, Values)>,
}

impl<'de> DeserializeSeed<'de> for Row<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Row<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a row object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let inputs = &self.signature.inputs;
        let mut seen = 0u64;
        // Clients usually send the keys in one order, often the signature's: look from
        // just after the last match first.
        let mut next = 0;
        while let Some(Key(key)) = map.next_key()? {
            let found = (next..inputs.len())
                .chain(0..next)
                .find(|&i| inputs[i].name == *key);
            let Some(i) = found else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            next = i + 1;
            if seen & (1 << i) != 0 {
                return Err(give_up()); // a duplicate key: the full decoder keeps the last
            }
            seen |= 1 << i;
            let spec = &inputs[i];
            match &mut self.columns[i].1 {
                Values::Numbers(xs) => {
                    let x = match map.next_value::<Option<Cell<'de>>>()? {
                        None => f64::NAN,
                        Some(Cell::Number(x))
                            if x.is_finite()
                                && (spec.kind != ColumnType::Integer || x.fract() == 0.0) =>
                        {
                            x
                        }
                        Some(Cell::Bool(b)) if spec.kind == ColumnType::Boolean => {
                            f64::from(u8::from(b))
                        }
                        Some(_) => return Err(give_up()),
                    };
                    xs.push(x);
                }
                Values::Text(texts) => {
                    let text =
                        match map.next_value::<Option<Cell<'de>>>()? {
                            None => None,
                            Some(Cell::Text(s)) => {
                                let s = s.trim();
                                if spec.categories.as_ref().is_some_and(|c| {
                                    c.binary_search_by(|c| c.as_str().cmp(s)).is_err()
                                }) {
                                    return Err(give_up());
                                }
                                Some(s.to_owned())
                            }
                            Some(_) => return Err(give_up()),
                        };
                    texts.push(text);
                }
            }
        }
        // Every input exactly once, or the full decoder names the missing one.
        if seen.count_ones() as usize != inputs.len() {
            return Err(give_up());
        }
        Ok(())
    }
}

/// A key, borrowed from the body unless it holds escapes (serde's own `Cow<str>`
/// always copies).
struct Key<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match d.deserialize_str(CellVisitor)? {
            Cell::Text(key) => Ok(Key(key)),
            _ => Err(give_up()),
        }
    }
}

/// One value of a row, borrowed where the JSON allows.
enum Cell<'de> {
    Number(f64),
    Bool(bool),
    Text(Cow<'de, str>),
    Other,
}

impl<'de> de::Deserialize<'de> for Cell<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(CellVisitor)
    }
}

struct CellVisitor;

impl<'de> Visitor<'de> for CellVisitor {
    type Value = Cell<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Cell<'de>, E> {
        Ok(Cell::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Cell<'de>, E> {
        Ok(Cell::Number(v as f64))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Cell<'de>, E> {
        Ok(Cell::Number(v as f64))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Cell<'de>, E> {
        Ok(Cell::Number(v))
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Cell<'de>, E> {
        Ok(Cell::Text(v.into()))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Cell<'de>, E> {
        Ok(Cell::Text(v.to_owned().into()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Cell<'de>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Cell::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Cell<'de>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Cell::Other)
    }
}
