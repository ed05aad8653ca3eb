//! `pg_catalog.pg_attribute` with each column's exact Postgres type.
//!
//! The catalog tables come from `datafusion-pg-catalog`, which types a
//! column from its Arrow type alone: `decimal(10,2)` became plain
//! `numeric`, `varchar(20)` and `char(3)` became `text`, `tinyint` became
//! Postgres's one-byte `"char"`, and arrays were listed as Postgres arrays
//! although results send them as `json`. This wrapper reads the crate's
//! rows and sets `atttypid`/`atttypmod` from the column's Hive type in the
//! lakehose catalog, so psql's `\d` (`format_type(atttypid, atttypmod)`)
//! shows `numeric(10,2)`, `character varying(20)`, `character(3)`,
//! `smallint`, `timestamp without time zone` and `json`, matching what
//! result columns are sent as.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, AsArray, Int32Array, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type, SchemaRef};
use datafusion::catalog::{SchemaProvider, Session, TableProvider};
use datafusion::datasource::{MemTable, TableType};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::{ExecutionPlan, collect};
use lakehose_catalog::hive::HiveType;

use super::LakeCatalogInfo;

/// Postgres type oids lakehose columns are described with.
mod oid {
    pub const INT2: i32 = 21;
    pub const JSON: i32 = 114;
    pub const BPCHAR: i32 = 1042;
    pub const VARCHAR: i32 = 1043;
    pub const TIMESTAMP: i32 = 1114;
    pub const NUMERIC: i32 = 1700;
}

/// The Postgres type (oid, type modifier) a column of Hive type `hive` is
/// described as, where the Arrow type alone says less.
pub(crate) fn pg_attribute_type(hive: &str) -> Option<(i32, i32)> {
    Some(match HiveType::parse(hive).ok()? {
        HiveType::TinyInt => (oid::INT2, -1),
        HiveType::Decimal { precision, scale } => (
            oid::NUMERIC,
            ((i32::from(precision) << 16) | i32::from(scale)) + 4,
        ),
        HiveType::Varchar(n) => (oid::VARCHAR, n as i32 + 4),
        HiveType::Char(n) => (oid::BPCHAR, n as i32 + 4),
        HiveType::Timestamp => (oid::TIMESTAMP, -1),
        HiveType::Array(_) | HiveType::Map(..) | HiveType::Struct(_) => (oid::JSON, -1),
        _ => return None,
    })
}

/// The crate's `pg_catalog` schema with [`TypedAttributes`] as its
/// `pg_attribute`.
#[derive(Debug)]
pub(crate) struct TypedPgCatalog {
    pub(crate) inner: Arc<dyn SchemaProvider>,
    pub(crate) info: LakeCatalogInfo,
}

#[async_trait]
impl SchemaProvider for TypedPgCatalog {
    fn table_names(&self) -> Vec<String> {
        self.inner.table_names()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let Some(table) = self.inner.table(name).await? else {
            return Ok(None);
        };
        if !name.eq_ignore_ascii_case("pg_attribute") {
            return Ok(Some(table));
        }
        let (Some(class), Some(namespace)) = (
            self.inner.table("pg_class").await?,
            self.inner.table("pg_namespace").await?,
        ) else {
            return Ok(Some(table));
        };
        Ok(Some(Arc::new(TypedAttributes {
            attributes: table,
            class,
            namespace,
            info: self.info.clone(),
        })))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.inner.table_exist(name)
    }
}

/// `pg_attribute` with the types of lakehose columns set from their Hive
/// types.
#[derive(Debug)]
struct TypedAttributes {
    attributes: Arc<dyn TableProvider>,
    class: Arc<dyn TableProvider>,
    namespace: Arc<dyn TableProvider>,
    info: LakeCatalogInfo,
}

/// Relation oid → (schema name, relation name), from `pg_class` and
/// `pg_namespace`.
pub(super) async fn relations(
    class: &Arc<dyn TableProvider>,
    namespace: &Arc<dyn TableProvider>,
    state: &dyn Session,
) -> Result<HashMap<i64, (String, String)>> {
    let mut schemas: HashMap<i64, String> = HashMap::new();
    for b in rows(namespace, state).await? {
        for (oid, name) in ints(&b, "oid")?.into_iter().zip(texts(&b, "nspname")?) {
            if let (Some(oid), Some(name)) = (oid, name) {
                schemas.insert(oid, name);
            }
        }
    }
    let mut relations = HashMap::new();
    for b in rows(class, state).await? {
        let oids = ints(&b, "oid")?;
        let names = texts(&b, "relname")?;
        let spaces = ints(&b, "relnamespace")?;
        for ((oid, name), space) in oids.into_iter().zip(names).zip(spaces) {
            if let (Some(oid), Some(name), Some(schema)) =
                (oid, name, space.and_then(|s| schemas.get(&s)))
            {
                relations.insert(oid, (schema.clone(), name));
            }
        }
    }
    Ok(relations)
}

/// Every row of a catalog table.
pub(super) async fn rows(
    table: &Arc<dyn TableProvider>,
    state: &dyn Session,
) -> Result<Vec<RecordBatch>> {
    let plan: Arc<dyn ExecutionPlan> = table.scan(state, None, &[], None).await?;
    collect(plan, state.task_ctx()).await
}

/// A column of a batch by name, as 64-bit integers or text.
fn column(batch: &RecordBatch, name: &str) -> Result<ArrayRef> {
    batch
        .column_by_name(name)
        .cloned()
        .ok_or_else(|| DataFusionError::Internal(format!("pg_catalog has no column {name}")))
}

pub(super) fn ints(batch: &RecordBatch, name: &str) -> Result<Vec<Option<i64>>> {
    let c = cast(&column(batch, name)?, &DataType::Int64)?;
    Ok(c.as_primitive::<Int64Type>().iter().collect())
}

pub(super) fn texts(batch: &RecordBatch, name: &str) -> Result<Vec<Option<String>>> {
    let c = cast(&column(batch, name)?, &DataType::Utf8)?;
    Ok(c.as_string::<i32>()
        .iter()
        .map(|s| s.map(str::to_string))
        .collect())
}

#[async_trait]
impl TableProvider for TypedAttributes {
    fn schema(&self) -> SchemaRef {
        self.attributes.schema()
    }

    fn table_type(&self) -> TableType {
        self.attributes.table_type()
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let relations = relations(&self.class, &self.namespace, state).await?;
        // Each table's Hive column types, looked up once.
        let mut types: HashMap<i64, HashMap<String, String>> = HashMap::new();
        let mut patched = Vec::new();
        for batch in rows(&self.attributes, state).await? {
            let relids = ints(&batch, "attrelid")?;
            let names = texts(&batch, "attname")?;
            let mut typids: Vec<Option<i32>> = ints(&batch, "atttypid")?
                .into_iter()
                .map(|v| v.map(|v| v as i32))
                .collect();
            let mut typmods: Vec<Option<i32>> = ints(&batch, "atttypmod")?
                .into_iter()
                .map(|v| v.map(|v| v as i32))
                .collect();
            for (i, (relid, name)) in relids.iter().zip(&names).enumerate() {
                let (Some(relid), Some(name)) = (relid, name) else {
                    continue;
                };
                if !types.contains_key(relid) {
                    let columns = match relations.get(relid) {
                        Some((schema, table)) => self.hive_types(schema, table).await?,
                        None => HashMap::new(),
                    };
                    types.insert(*relid, columns);
                }
                if let Some((typid, typmod)) =
                    types[relid].get(name).and_then(|h| pg_attribute_type(h))
                {
                    typids[i] = Some(typid);
                    typmods[i] = Some(typmod);
                }
            }
            let schema = batch.schema();
            let mut columns = batch.columns().to_vec();
            for (name, values) in [("atttypid", typids), ("atttypmod", typmods)] {
                let (idx, field) = schema
                    .column_with_name(name)
                    .ok_or_else(|| DataFusionError::Internal(format!("no {name}")))?;
                columns[idx] = cast(&Int32Array::from(values), field.data_type())?;
            }
            patched.push(RecordBatch::try_new(Arc::clone(&schema), columns)?);
        }
        let table = MemTable::try_new(self.schema(), vec![patched])?;
        table.scan(state, projection, filters, limit).await
    }
}

impl TypedAttributes {
    /// Column name → Hive type of a lakehose table (none for views and
    /// tables that are gone).
    async fn hive_types(&self, schema: &str, table: &str) -> Result<HashMap<String, String>> {
        let Some(found) = self.info.table(schema, table).await? else {
            return Ok(HashMap::new());
        };
        let mut columns = found
            .storage_descriptor
            .map(|sd| sd.columns)
            .unwrap_or_default();
        columns.extend(found.partition_keys);
        Ok(columns
            .into_iter()
            .filter_map(|c| Some((c.name, c.data_type?)))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hive_types_describe_as_postgres_types() {
        assert_eq!(
            pg_attribute_type("decimal(10,2)"),
            Some((oid::NUMERIC, (10 << 16 | 2) + 4))
        );
        assert_eq!(pg_attribute_type("varchar(20)"), Some((oid::VARCHAR, 24)));
        assert_eq!(pg_attribute_type("char(3)"), Some((oid::BPCHAR, 7)));
        assert_eq!(pg_attribute_type("tinyint"), Some((oid::INT2, -1)));
        assert_eq!(pg_attribute_type("timestamp"), Some((oid::TIMESTAMP, -1)));
        assert_eq!(pg_attribute_type("array<int>"), Some((oid::JSON, -1)));
        assert_eq!(pg_attribute_type("map<string,int>"), Some((oid::JSON, -1)));
        assert_eq!(pg_attribute_type("bigint"), None);
        assert_eq!(pg_attribute_type("no such type"), None);
    }
}
