//! Items into Arrow record batches, column by column, by the shapes the
//! schema inference chose.

use std::sync::Arc;

use base64::Engine;
use datafusion::arrow::array::builder::NullBufferBuilder;
use datafusion::arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Decimal128Builder, Float64Builder, Int64Builder,
    ListArray, StringBuilder, StructArray,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{Field, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;

use super::item::{Attr, Item, write_typed_pairs};
use super::schema::{Column, Shape, scaled_integer};

/// Builds one column (or nested field).
enum Builder {
    Bool(BooleanBuilder),
    Str(StringBuilder),
    Bin(BinaryBuilder),
    Int(Int64Builder),
    Decimal(Decimal128Builder, u32),
    Double(Float64Builder),
    NumText(StringBuilder),
    Text(StringBuilder),
    Json(StringBuilder, String),
    Struct {
        fields: Vec<(String, Field, Builder)>,
        nulls: NullBufferBuilder,
    },
    List {
        field: Arc<Field>,
        offsets: Vec<i32>,
        child: Box<Builder>,
        nulls: NullBufferBuilder,
    },
}

fn mismatch(shape: &str, attr: &Attr<'_>) -> String {
    let found = match attr {
        Attr::S(_) => "S",
        Attr::N(_) => "N",
        Attr::B(_) => "B",
        Attr::Bool(_) => "BOOL",
        Attr::Null => "NULL",
        Attr::M(_) => "M",
        Attr::L(_) => "L",
        Attr::Ss(_) => "SS",
        Attr::Ns(_) => "NS",
        Attr::Bs(_) => "BS",
    };
    format!(
        "a {found} value where the schema has {shape} (did the export change while it was read?)"
    )
}

impl Builder {
    fn new(shape: &Shape) -> Self {
        match shape {
            Shape::Bool => Builder::Bool(BooleanBuilder::new()),
            Shape::Str => Builder::Str(StringBuilder::new()),
            Shape::Bin => Builder::Bin(BinaryBuilder::new()),
            Shape::Int => Builder::Int(Int64Builder::new()),
            Shape::Decimal(s) => Builder::Decimal(
                Decimal128Builder::new()
                    .with_precision_and_scale(38, *s as i8)
                    .expect("precision 38 takes any scale up to 38"),
                *s,
            ),
            Shape::Double => Builder::Double(Float64Builder::new()),
            Shape::NumText => Builder::NumText(StringBuilder::new()),
            Shape::Text => Builder::Text(StringBuilder::new()),
            Shape::Json => Builder::Json(StringBuilder::new(), String::new()),
            Shape::Struct(fields) => Builder::Struct {
                fields: fields
                    .iter()
                    .map(|(attr, name, s)| {
                        (
                            attr.clone(),
                            Field::new(name, s.data_type(), true),
                            Builder::new(s),
                        )
                    })
                    .collect(),
                nulls: NullBufferBuilder::new(0),
            },
            Shape::List(elem) => Builder::List {
                field: Arc::new(Field::new("element", elem.data_type(), true)),
                offsets: vec![0],
                child: Box::new(Builder::new(elem)),
                nulls: NullBufferBuilder::new(0),
            },
        }
    }

    fn append_null(&mut self) {
        match self {
            Builder::Bool(b) => b.append_null(),
            Builder::Str(b) | Builder::NumText(b) | Builder::Text(b) | Builder::Json(b, _) => {
                b.append_null()
            }
            Builder::Bin(b) => b.append_null(),
            Builder::Int(b) => b.append_null(),
            Builder::Decimal(b, _) => b.append_null(),
            Builder::Double(b) => b.append_null(),
            Builder::Struct { fields, nulls } => {
                for (_, _, f) in fields {
                    f.append_null();
                }
                nulls.append_null();
            }
            Builder::List { offsets, nulls, .. } => {
                offsets.push(*offsets.last().unwrap_or(&0));
                nulls.append_null();
            }
        }
    }

    fn append(&mut self, attr: Option<&Attr<'_>>) -> Result<(), String> {
        let attr = match attr {
            None | Some(Attr::Null) => {
                self.append_null();
                return Ok(());
            }
            Some(a) => a,
        };
        match self {
            Builder::Bool(b) => match attr {
                Attr::Bool(v) => b.append_value(*v),
                other => return Err(mismatch("boolean", other)),
            },
            Builder::Str(b) => match attr {
                Attr::S(s) => b.append_value(s),
                other => return Err(mismatch("string", other)),
            },
            Builder::Bin(b) => match attr {
                Attr::B(v) => b.append_value(v),
                other => return Err(mismatch("binary", other)),
            },
            Builder::Int(b) => match attr {
                Attr::N(n) => {
                    let v = scaled_integer(n, 0)
                        .and_then(|v| i64::try_from(v).ok())
                        .ok_or_else(|| format!("number {n} does not fit the bigint column"))?;
                    b.append_value(v)
                }
                other => return Err(mismatch("bigint", other)),
            },
            Builder::Decimal(b, scale) => match attr {
                Attr::N(n) => {
                    let v = scaled_integer(n, *scale).ok_or_else(|| {
                        format!("number {n} does not fit the decimal(38, {scale}) column")
                    })?;
                    b.append_value(v)
                }
                other => return Err(mismatch("decimal", other)),
            },
            Builder::Double(b) => match attr {
                Attr::N(n) => b.append_value(
                    n.parse::<f64>()
                        .map_err(|_| format!("number {n} is not a double"))?,
                ),
                other => return Err(mismatch("double", other)),
            },
            Builder::NumText(b) => match attr {
                Attr::N(n) => b.append_value(n),
                other => return Err(mismatch("number", other)),
            },
            Builder::Text(b) => match attr {
                Attr::S(s) | Attr::N(s) => b.append_value(s),
                Attr::Bool(v) => b.append_value(if *v { "true" } else { "false" }),
                Attr::B(v) => b.append_value(base64::engine::general_purpose::STANDARD.encode(v)),
                other => return Err(mismatch("string", other)),
            },
            Builder::Json(b, scratch) => {
                scratch.clear();
                attr.write_json(scratch);
                b.append_value(scratch.as_str());
            }
            Builder::Struct { fields, nulls } => match attr {
                Attr::M(pairs) => {
                    for (name, _, f) in fields.iter_mut() {
                        let v = pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v);
                        f.append(v).map_err(|e| format!("key {name:?}: {e}"))?;
                    }
                    nulls.append_non_null();
                }
                other => return Err(mismatch("struct", other)),
            },
            Builder::List {
                offsets,
                child,
                nulls,
                ..
            } => {
                let added = match attr {
                    Attr::L(items) => {
                        for v in items {
                            child.append(Some(v))?;
                        }
                        items.len()
                    }
                    Attr::Ss(items) => {
                        for s in items {
                            child.append(Some(&Attr::S(s.as_ref().into())))?;
                        }
                        items.len()
                    }
                    Attr::Ns(items) => {
                        for n in items {
                            child.append(Some(&Attr::N(n.as_ref().into())))?;
                        }
                        items.len()
                    }
                    Attr::Bs(items) => {
                        for b in items {
                            child.append(Some(&Attr::B(b.clone())))?;
                        }
                        items.len()
                    }
                    other => return Err(mismatch("array", other)),
                };
                let last = *offsets.last().unwrap_or(&0);
                let next = i32::try_from(added)
                    .ok()
                    .and_then(|n| last.checked_add(n))
                    .ok_or("a list column holds more than 2^31 elements in one batch")?;
                offsets.push(next);
                nulls.append_non_null();
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Builder::Bool(b) => Arc::new(b.finish()),
            Builder::Str(b) | Builder::NumText(b) | Builder::Text(b) | Builder::Json(b, _) => {
                Arc::new(b.finish())
            }
            Builder::Bin(b) => Arc::new(b.finish()),
            Builder::Int(b) => Arc::new(b.finish()),
            Builder::Decimal(b, _) => Arc::new(b.finish()),
            Builder::Double(b) => Arc::new(b.finish()),
            Builder::Struct { fields, nulls } => {
                let arrays: Vec<ArrayRef> = fields.iter_mut().map(|(_, _, f)| f.finish()).collect();
                let defs: Vec<Field> = fields.iter().map(|(_, f, _)| f.clone()).collect();
                let nulls = nulls.finish();
                if defs.is_empty() {
                    let len = nulls.as_ref().map_or(0, |n| n.len());
                    return Arc::new(StructArray::new_empty_fields(len, nulls));
                }
                Arc::new(StructArray::new(defs.into(), arrays, nulls))
            }
            Builder::List {
                field,
                offsets,
                child,
                nulls,
            } => {
                let values = child.finish();
                let taken = std::mem::replace(offsets, vec![0]);
                Arc::new(ListArray::new(
                    Arc::clone(field),
                    OffsetBuffer::new(taken.into()),
                    values,
                    nulls.finish(),
                ))
            }
        }
    }
}

/// Builds record batches of items.
pub(crate) struct Converter {
    schema: SchemaRef,
    columns: Vec<(String, Builder)>,
    index: std::collections::HashMap<String, usize>,
    /// The column of the previous item's n-th attribute.
    hint: Vec<usize>,
    filled: Vec<bool>,
    raw: Option<(StringBuilder, String)>,
    deleted: Option<BooleanBuilder>,
    rows: usize,
}

/// The column marking incremental records that delete their item.
pub(crate) const DELETED_COLUMN: &str = "_lakehose_deleted";

impl Converter {
    /// A converter into `schema`, whose first fields are `columns`, then the
    /// raw item (when `raw` is set), then [`DELETED_COLUMN`] (when
    /// `deletes` is set).
    pub fn new(schema: SchemaRef, columns: &[Column], raw: bool, deletes: bool) -> Self {
        Self {
            schema,
            columns: columns
                .iter()
                .map(|c| (c.attr.clone(), Builder::new(&c.shape)))
                .collect(),
            index: columns
                .iter()
                .enumerate()
                .map(|(i, c)| (c.attr.clone(), i))
                .collect(),
            hint: Vec::new(),
            filled: vec![false; columns.len()],
            raw: raw.then(|| (StringBuilder::new(), String::new())),
            deleted: deletes.then(BooleanBuilder::new),
            rows: 0,
        }
    }

    /// Rows appended since the last [`Converter::finish`].
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Appends one item; `deleted` marks an incremental delete (only its
    /// keys are set).
    pub fn append(&mut self, item: &Item<'_>, deleted: bool) -> Result<(), String> {
        self.filled.fill(false);
        for (position, (name, value)) in item.0.iter().enumerate() {
            let Some(c) = self.column_of(name, position) else {
                continue;
            };
            if std::mem::replace(&mut self.filled[c], true) {
                continue;
            }
            let (attr, b) = &mut self.columns[c];
            b.append(Some(value))
                .map_err(|e| format!("attribute {attr:?}: {e}"))?;
        }
        for (c, (_, b)) in self.columns.iter_mut().enumerate() {
            if !self.filled[c] {
                b.append_null();
            }
        }
        if let Some((b, scratch)) = &mut self.raw {
            if deleted {
                b.append_null();
            } else {
                scratch.clear();
                write_typed_pairs(scratch, &item.0);
                b.append_value(scratch.as_str());
            }
        }
        if let Some(d) = &mut self.deleted {
            d.append_value(deleted);
        }
        self.rows += 1;
        Ok(())
    }

    /// The column of attribute `name`, the `position`-th of its item.
    fn column_of(&mut self, name: &str, position: usize) -> Option<usize> {
        if let Some(&c) = self.hint.get(position)
            && self.columns.get(c).is_some_and(|(a, _)| a == name)
        {
            return Some(c);
        }
        let c = *self.index.get(name)?;
        if position < self.hint.len() {
            self.hint[position] = c;
        } else if position == self.hint.len() {
            self.hint.push(c);
        }
        Some(c)
    }

    /// The rows appended so far as one batch.
    pub fn finish(&mut self) -> Result<RecordBatch, String> {
        let mut arrays: Vec<ArrayRef> = self.columns.iter_mut().map(|(_, b)| b.finish()).collect();
        if let Some((b, _)) = &mut self.raw {
            arrays.push(Arc::new(b.finish()));
        }
        if let Some(d) = &mut self.deleted {
            arrays.push(Arc::new(d.finish()));
        }
        self.rows = 0;
        RecordBatch::try_new(Arc::clone(&self.schema), arrays).map_err(|e| e.to_string())
    }
}
