//! `pg_catalog` as one caller sees it: the relations of `pg_class`, their
//! columns in `pg_attribute` and the rows of `pg_tables` are those of the
//! tables and views the caller may read (SELECT), so psql's `\dt` and a BI
//! tool's schema browser list nothing else. Postgres's own relations
//! (`pg_catalog`, `information_schema`) stay listed.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::BooleanArray;
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{SchemaProvider, Session, TableProvider};
use datafusion::datasource::{MemTable, TableType};
use datafusion::error::Result;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

use super::attributes::{ints, relations, rows, texts};
use super::{INFORMATION_SCHEMA, PG_CATALOG};
use crate::contract::{Privilege, Securable, TableAccess};

/// The shared `pg_catalog` schema, filtered for one caller.
#[derive(Debug)]
pub(crate) struct VisiblePgCatalog {
    pub(crate) inner: Arc<dyn SchemaProvider>,
    pub(crate) access: Arc<dyn TableAccess>,
}

/// How a `pg_catalog` table names the relation of a row.
#[derive(Debug, Clone, Copy)]
enum Names {
    /// By its oid, in this column (`pg_class.oid`, `pg_attribute.attrelid`).
    Oid(&'static str),
    /// By schema and relation name (`pg_tables`).
    Text(&'static str, &'static str),
}

/// Whether a relation of `schema` named `name` is shown to `access`.
pub(crate) fn shown(access: &dyn TableAccess, schema: &str, name: &str) -> bool {
    schema == PG_CATALOG
        || schema == INFORMATION_SCHEMA
        || access.allows(
            Privilege::Select,
            Securable::Table {
                database: schema,
                table: name,
            },
        )
}

#[async_trait]
impl SchemaProvider for VisiblePgCatalog {
    fn table_names(&self) -> Vec<String> {
        self.inner.table_names()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let Some(table) = self.inner.table(name).await? else {
            return Ok(None);
        };
        let names = match name.to_ascii_lowercase().as_str() {
            "pg_class" => Names::Oid("oid"),
            "pg_attribute" => Names::Oid("attrelid"),
            "pg_tables" => Names::Text("schemaname", "tablename"),
            _ => return Ok(Some(table)),
        };
        let (Some(class), Some(namespace)) = (
            self.inner.table("pg_class").await?,
            self.inner.table("pg_namespace").await?,
        ) else {
            return Ok(Some(table));
        };
        Ok(Some(Arc::new(VisibleRows {
            table,
            names,
            class,
            namespace,
            access: Arc::clone(&self.access),
        })))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.inner.table_exist(name)
    }
}

/// A `pg_catalog` table without the rows of relations the caller may not
/// read.
#[derive(Debug)]
struct VisibleRows {
    table: Arc<dyn TableProvider>,
    names: Names,
    class: Arc<dyn TableProvider>,
    namespace: Arc<dyn TableProvider>,
    access: Arc<dyn TableAccess>,
}

#[async_trait]
impl TableProvider for VisibleRows {
    fn schema(&self) -> SchemaRef {
        self.table.schema()
    }

    fn table_type(&self) -> TableType {
        self.table.table_type()
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let relations: HashMap<i64, (String, String)> = match self.names {
            Names::Oid(_) => relations(&self.class, &self.namespace, state).await?,
            Names::Text(..) => HashMap::new(),
        };
        let access = self.access.as_ref();
        let mut kept = Vec::new();
        for batch in rows(&self.table, state).await? {
            let mask: BooleanArray = match self.names {
                Names::Oid(column) => ints(&batch, column)?
                    .into_iter()
                    .map(|oid| {
                        // A row of no known relation names no lakehose table.
                        Some(
                            oid.and_then(|o| relations.get(&o))
                                .is_none_or(|(schema, name)| shown(access, schema, name)),
                        )
                    })
                    .collect(),
                Names::Text(schemas, names) => texts(&batch, schemas)?
                    .into_iter()
                    .zip(texts(&batch, names)?)
                    .map(|(schema, name)| {
                        Some(match (schema, name) {
                            (Some(schema), Some(name)) => shown(access, &schema, &name),
                            _ => true,
                        })
                    })
                    .collect(),
            };
            kept.push(filter_record_batch(&batch, &mask)?);
        }
        MemTable::try_new(self.schema(), vec![kept])?
            .scan(state, projection, filters, limit)
            .await
    }
}
