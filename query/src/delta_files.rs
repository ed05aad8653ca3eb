//! A Delta table version read as the plain list of its Parquet files.
//!
//! deltalake's own scan (`DeltaScanExec`) applies the Delta protocol file
//! by file, and it has no codec to travel in a plan: a query across
//! workers cannot send it. When a version needs nothing of that protocol
//! at read time (no deletion vectors, no column mapping, only data files
//! under the table's folder), its rows are exactly its data files' rows
//! plus each file's partition values. [`DeltaFiles`] reads it so, with
//! DataFusion's Parquet scan, which datafusion-distributed sends to
//! workers like any Parquet table's. Tables that need more keep
//! deltalake's scan, and their queries run on the coordinator.

use std::sync::Arc;

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::{FieldRef, Schema, SchemaRef};
use datafusion::catalog::Session;
use datafusion::common::ScalarValue;
use datafusion::datasource::TableProvider;
use datafusion::error::Result;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use deltalake::DeltaTable;
use lakehose_catalog::{Location, Storage};
use object_store::ObjectMeta;
use object_store::path::Path;

use crate::table::{
    ParquetColumns, is_partition_filter, parquet_plan, partition_scalar, passing, pushdown,
};

/// Reader features that change nothing about how a file's rows are read.
const PLAIN_READER_FEATURES: [&str; 3] = ["timestampNtz", "v2Checkpoint", "vacuumProtocolCheck"];

/// One version of a Delta table as its data files.
#[derive(Debug)]
pub(crate) struct DeltaFiles {
    storage: Storage,
    /// The table's columns in its own order.
    schema: SchemaRef,
    /// Data columns, then partition columns: the scan's column order.
    scan: ScanColumns,
    files: Vec<(ObjectMeta, Vec<Option<String>>)>,
}

#[derive(Debug)]
struct ScanColumns {
    schema: SchemaRef,
    file_schema: SchemaRef,
    partition_fields: Vec<FieldRef>,
    /// For each column of the table, its position in `schema`.
    position: Vec<usize>,
}

impl DeltaFiles {
    /// The files of `table`'s loaded version, or why that version cannot be
    /// read as plain files.
    pub(crate) fn new(
        storage: &Storage,
        location: &Location,
        table: &DeltaTable,
    ) -> std::result::Result<Self, String> {
        let state = table.snapshot().map_err(|e| e.to_string())?;
        if let Some(features) = state.protocol().reader_features() {
            for feature in features {
                let name = feature.to_string();
                if !PLAIN_READER_FEATURES.contains(&name.as_str()) {
                    return Err(format!("it uses the reader feature {name}"));
                }
            }
        }
        let config = state.metadata().configuration();
        if let Some(mode) = config.get("delta.columnMapping.mode")
            && !mode.eq_ignore_ascii_case("none")
        {
            return Err(format!("it maps columns by {mode}"));
        }
        let schema = state.snapshot().arrow_schema();
        let partitions: Vec<String> = state.metadata().partition_columns().to_vec();
        let mut data = Vec::new();
        let mut partition_fields = Vec::new();
        for name in &partitions {
            let field = schema
                .field_with_name(name)
                .map_err(|_| format!("its partition column {name} is not a column"))?;
            partition_fields.push(Arc::new(field.clone()));
        }
        for field in schema.fields() {
            if !partitions.contains(field.name()) {
                data.push(Arc::clone(field));
            }
        }
        let file_schema = Arc::new(Schema::new(data));
        let scan_schema = Arc::new(Schema::new(
            file_schema
                .fields()
                .iter()
                .cloned()
                .chain(partition_fields.iter().cloned())
                .collect::<Vec<_>>(),
        ));
        let position = schema
            .fields()
            .iter()
            .map(|f| scan_schema.index_of(f.name()))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        let root = location.key().trim_end_matches('/');
        let mut files = Vec::new();
        for file in state.log_data().iter() {
            let raw = file.path();
            // Only relative paths inside the table's folder are read here.
            if raw.contains("://") || raw.starts_with('/') || raw.split('/').any(|s| s == "..") {
                return Err(format!("its file {raw} is outside the table's folder"));
            }
            let key = if root.is_empty() {
                format!("{}/{raw}", location.bucket())
            } else {
                format!("{}/{root}/{raw}", location.bucket())
            };
            let location = Path::parse(&key).map_err(|e| format!("its file {raw}: {e}"))?;
            let values = file.partition_values_map();
            let values = partitions
                .iter()
                .map(|p| values.get(p).cloned().flatten())
                .collect();
            files.push((
                ObjectMeta {
                    location,
                    last_modified: file.modification_datetime().map_err(|e| e.to_string())?,
                    size: file.size().max(0) as u64,
                    e_tag: None,
                    version: None,
                },
                values,
            ));
        }
        Ok(Self {
            storage: storage.clone(),
            schema,
            scan: ScanColumns {
                schema: scan_schema,
                file_schema,
                partition_fields,
                position,
            },
            files,
        })
    }

    /// The files whose partition values pass the partition filters, with
    /// those values typed.
    fn pruned(
        &self,
        state: &dyn Session,
        filters: &[Expr],
    ) -> Result<Vec<(ObjectMeta, Vec<ScalarValue>)>> {
        let fields = &self.scan.partition_fields;
        let typed = |values: &[Option<String>]| {
            values
                .iter()
                .zip(fields)
                .map(|(v, f)| partition_scalar(v.as_deref(), f))
                .collect::<Result<Vec<_>>>()
        };
        if fields.is_empty() || self.files.is_empty() {
            return self
                .files
                .iter()
                .map(|(meta, v)| Ok((meta.clone(), typed(v)?)))
                .collect();
        }
        let mut columns: Vec<ArrayRef> = Vec::new();
        for (i, field) in fields.iter().enumerate() {
            let values = self
                .files
                .iter()
                .map(|(_, v)| partition_scalar(v[i].as_deref(), field))
                .collect::<Result<Vec<_>>>()?;
            columns.push(ScalarValue::iter_to_array(values)?);
        }
        let filters: Vec<&Expr> = filters
            .iter()
            .filter(|f| is_partition_filter(f, fields))
            .collect();
        let (_, keep) = passing(state, fields, &filters, columns)?;
        self.files
            .iter()
            .zip(keep)
            .filter(|(_, keep)| *keep)
            .map(|((meta, v), _)| Ok((meta.clone(), typed(v)?)))
            .collect()
    }
}

#[async_trait::async_trait]
impl TableProvider for DeltaFiles {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(pushdown(filters, &self.scan.partition_fields))
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        // The table's column order, mapped onto the scan's.
        let columns: Vec<usize> = match projection {
            Some(p) => p.iter().map(|i| self.scan.position[*i]).collect(),
            None => self.scan.position.clone(),
        };
        let files = self.pruned(state, filters)?;
        if files.is_empty() {
            let projected = match projection {
                Some(p) => Arc::new(self.schema.project(p)?),
                None => Arc::clone(&self.schema),
            };
            return Ok(Arc::new(EmptyExec::new(projected)));
        }
        parquet_plan(
            state,
            Arc::clone(self.storage.store()),
            ParquetColumns {
                schema: &self.scan.schema,
                file_schema: &self.scan.file_schema,
                partition_fields: &self.scan.partition_fields,
            },
            files,
            Some(&columns),
            limit,
        )
        .await
    }
}

/// deltalake's scan of a Delta table that [`DeltaFiles`] cannot read: a
/// query over it runs on the coordinator, which can run that scan.
#[derive(Debug)]
pub(crate) struct CoordinatorOnly(pub(crate) Arc<dyn TableProvider>);

#[async_trait::async_trait]
impl TableProvider for CoordinatorOnly {
    fn schema(&self) -> SchemaRef {
        self.0.schema()
    }

    fn table_type(&self) -> TableType {
        self.0.table_type()
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        self.0.supports_filters_pushdown(filters)
    }

    fn statistics(&self) -> Option<datafusion::common::Statistics> {
        self.0.statistics()
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        crate::stats::keep_on_coordinator(state);
        self.0.scan(state, projection, filters, limit).await
    }
}
