//! Postgres's system catalog (`pg_catalog`) over the lakehose catalog, for
//! the tools that read it: psql's `\d`, `\dt`, `\dn` and `\l`, and the
//! schema browsers of drivers and BI tools. Databases are listed as
//! schemas of the one database `awsdatacatalog`, tables and views as
//! relations with their columns.
//!
//! The tables (`pg_class`, `pg_namespace`, `pg_attribute`, `pg_type`, ...),
//! the functions those queries call (`pg_table_is_visible`, `format_type`,
//! `pg_get_userbyid`, ...) and the rewrites of Postgres-only syntax
//! (`OPERATOR(pg_catalog.~)`, `::regclass`, `COLLATE`) come from the
//! `datafusion-pg-catalog` crate; this module tells it what the lakehose
//! catalog holds and runs such statements apart from the Athena dialect.

use std::sync::{Arc, LazyLock};

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, StringArray, new_null_array};
use datafusion::arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion::catalog::SchemaProvider;
use datafusion::common::DataFusionError;
use datafusion::datasource::TableType;
use datafusion::logical_expr::ScalarUDF;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
use datafusion_pg_catalog::pg_catalog::catalog_info::CatalogInfo;
use datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_pg_catalog::pg_catalog::{
    PG_CATALOG_TABLES, PgCatalogSchemaProvider, PgCatalogStaticTables,
};
use datafusion_pg_catalog::setup_pg_catalog;
use datafusion_pg_catalog::sql::PostgresCompatibilityParser;
use lakehose_catalog::model::Table;
use lakehose_catalog::{CatalogError, CatalogRef};

use crate::contract::{CATALOG_NAME, QueryError, QueryErrorKind, TableAccess};
use crate::error::classify;
use crate::functions::Func;
use crate::table::arrow_fields;

mod attributes;
pub mod types;
mod visible;

/// The schema the catalog tables live in.
const PG_CATALOG: &str = "pg_catalog";

/// The SQL-standard catalog views, also answered from the lakehose
/// catalog (`schemata`, `tables`, `columns`, `views`).
const INFORMATION_SCHEMA: &str = "information_schema";

/// psql's `\d+` lists a table's storage options with its TOAST table's,
/// through an `ARRAY(subquery)` over `unnest` of an outer column, which
/// DataFusion cannot plan; lakehose tables have neither, so the options
/// are none.
const PSQL_TABLE_OPTIONS: &str = "pg_catalog.array_to_string(c.reloptions || array(select 'toast.' || x from pg_catalog.unnest(tc.reloptions) x), ', ')";

/// Whether `sql` reads Postgres's system catalog: it names `pg_catalog`,
/// one of its tables, or `information_schema`. Such statements are
/// Postgres SQL, not Athena's.
pub(crate) fn reads_pg_catalog(sql: &str) -> bool {
    names_any(sql, |word| {
        word == PG_CATALOG || word == INFORMATION_SCHEMA || PG_CATALOG_TABLES.contains(&word)
    })
}

/// Whether a word (an identifier or keyword, in lower case) of `sql`
/// satisfies `test`.
fn names_any(sql: &str, test: impl Fn(&str) -> bool) -> bool {
    let Ok(tokens) = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize() else {
        return false;
    };
    tokens.iter().any(|t| match t {
        Token::Word(w) => test(&w.value.to_ascii_lowercase()),
        _ => false,
    })
}

/// Parses one statement that reads Postgres's system catalog (Postgres
/// SQL) and checks that it only reads.
pub(crate) fn parse(sql: &str) -> Result<Statement, QueryError> {
    static PARSER: LazyLock<PostgresCompatibilityParser> =
        LazyLock::new(PostgresCompatibilityParser::new);
    let syntax =
        |e: &dyn std::fmt::Display| QueryError::named(crate::error::ErrorCode::SyntaxError, e);
    let sql = sql.replace(PSQL_TABLE_OPTIONS, "NULL");
    let mut statements = PARSER.parse(&sql).map_err(|e| syntax(&e))?;
    if statements.len() != 1 {
        return Err(syntax(&format!(
            "expected one statement, found {}",
            statements.len()
        )));
    }
    let statement = statements.remove(0);
    crate::plan::check_query_statement(&statement, "")?;
    Ok(statement)
}

/// Makes a query context answer Postgres's system catalog: `pg_catalog`
/// (the engine's shared schema, so oids stay the same between queries:
/// psql looks a table's oid up in one query and its columns in the next),
/// its functions, and `information_schema` when `sql` names it.
pub(crate) async fn install(
    ctx: &SessionContext,
    pg_catalog: Arc<dyn SchemaProvider>,
    source: Arc<dyn CatalogSource>,
    sql: &str,
    access: Option<Arc<dyn TableAccess>>,
) -> Result<(), QueryError> {
    setup_pg_catalog(ctx, CATALOG_NAME, EmptyContextProvider).map_err(|e| classify(*e))?;
    for f in functions() {
        ctx.register_udf(ScalarUDF::new_from_impl(f));
    }
    let catalog = ctx
        .catalog(CATALOG_NAME)
        .ok_or_else(|| QueryError::new(QueryErrorKind::Internal, "the catalog is missing"))?;
    // The crate registered a `pg_catalog` of its own; the shared one
    // replaces it, as the caller may see it.
    let pg_catalog: Arc<dyn SchemaProvider> = match &access {
        Some(access) => Arc::new(visible::VisiblePgCatalog {
            inner: pg_catalog,
            access: Arc::clone(access),
        }),
        None => pg_catalog,
    };
    catalog
        .register_schema(PG_CATALOG, pg_catalog)
        .map_err(classify)?;
    if names_any(sql, |word| word == INFORMATION_SCHEMA) {
        let info = information_schema(LakeCatalogInfo { source }, access.as_deref())
            .await
            .map_err(|e| QueryError::new(QueryErrorKind::Internal, e.to_string()))?;
        catalog
            .register_schema(INFORMATION_SCHEMA, info)
            .map_err(classify)?;
    }
    Ok(())
}

/// `information_schema.schemata`, `.tables`, `.columns` and `.views` as
/// they stand now in the lakehose catalog.
async fn information_schema(
    info: LakeCatalogInfo,
    access: Option<&dyn TableAccess>,
) -> Result<Arc<dyn SchemaProvider>, DataFusionError> {
    use datafusion::arrow::array::{Int32Array, RecordBatch};
    use datafusion::arrow::datatypes::Field;
    use datafusion::catalog::MemorySchemaProvider;
    use datafusion::datasource::MemTable;

    let mut schemata = Vec::new();
    let mut tables: Vec<[String; 3]> = Vec::new();
    let mut views: Vec<[String; 3]> = Vec::new();
    let mut columns: Vec<(String, String, String, i32, String)> = Vec::new();
    for schema in info.schema_names(CATALOG_NAME).await?.unwrap_or_default() {
        schemata.push(schema.clone());
        for table in info
            .table_names(CATALOG_NAME, &schema)
            .await?
            .unwrap_or_default()
        {
            if access.is_some_and(|a| !visible::shown(a, &schema, &table)) {
                continue;
            }
            let Some(found) = info.table(&schema, &table).await? else {
                // Dropped since it was listed.
                continue;
            };
            let kind = match type_of(&found) {
                TableType::View => {
                    let definition = found.view_original_text.clone().unwrap_or_default();
                    views.push([schema.clone(), table.clone(), definition]);
                    "VIEW"
                }
                _ => "BASE TABLE",
            };
            tables.push([schema.clone(), table.clone(), kind.to_string()]);
            let fields = info.schema_of(&schema, &found).await?;
            for (i, f) in fields.fields().iter().enumerate() {
                columns.push((
                    schema.clone(),
                    table.clone(),
                    f.name().clone(),
                    i as i32 + 1,
                    sql_type_name(f),
                ));
            }
        }
    }
    let text = |name: &str| Field::new(name, DataType::Utf8, true);
    let strings = |values: Vec<String>| -> ArrayRef { Arc::new(StringArray::from(values)) };
    let constant = |value: &str, n: usize| strings(vec![value.to_string(); n]);
    let mem = |fields: Vec<Field>,
               arrays: Vec<ArrayRef>|
     -> Result<Arc<dyn datafusion::catalog::TableProvider>, DataFusionError> {
        let schema = Arc::new(Schema::new(fields));
        let batch = RecordBatch::try_new(Arc::clone(&schema), arrays)?;
        Ok(Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))
    };
    let column =
        |rows: &[[String; 3]], i: usize| strings(rows.iter().map(|r| r[i].clone()).collect());

    let provider = MemorySchemaProvider::new();
    let n = schemata.len();
    provider.register_table(
        "schemata".into(),
        mem(
            vec![
                text("catalog_name"),
                text("schema_name"),
                text("schema_owner"),
            ],
            vec![
                constant(CATALOG_NAME, n),
                strings(schemata),
                constant("lakehose", n),
            ],
        )?,
    )?;
    // Tables of a table's catalog, schema and name plus one more text.
    let per_table = |name: &str, last: &str, rows: &[[String; 3]]| {
        let fields = ["table_catalog", "table_schema", "table_name", last].map(text);
        let arrays = vec![
            constant(CATALOG_NAME, rows.len()),
            column(rows, 0),
            column(rows, 1),
            column(rows, 2),
        ];
        provider.register_table(name.into(), mem(fields.to_vec(), arrays)?)
    };
    per_table("tables", "table_type", &tables)?;
    per_table("views", "view_definition", &views)?;
    let n = columns.len();
    provider.register_table(
        "columns".into(),
        mem(
            vec![
                text("table_catalog"),
                text("table_schema"),
                text("table_name"),
                text("column_name"),
                Field::new("ordinal_position", DataType::Int32, false),
                text("column_default"),
                text("is_nullable"),
                text("data_type"),
            ],
            vec![
                constant(CATALOG_NAME, n),
                strings(columns.iter().map(|c| c.0.clone()).collect()),
                strings(columns.iter().map(|c| c.1.clone()).collect()),
                strings(columns.iter().map(|c| c.2.clone()).collect()),
                Arc::new(Int32Array::from(
                    columns.iter().map(|c| c.3).collect::<Vec<_>>(),
                )),
                new_null_array(&DataType::Utf8, n),
                constant("YES", n),
                strings(columns.iter().map(|c| c.4.clone()).collect()),
            ],
        )?,
    )?;
    Ok(Arc::new(provider))
}

/// The SQL name of the Postgres type a column is sent as
/// (`information_schema.columns.data_type`).
fn sql_type_name(field: &datafusion::arrow::datatypes::Field) -> String {
    use pgwire::api::Type;
    let pg = types::pg_field_type(field);
    match pg {
        Type::BOOL => "boolean",
        Type::INT2 => "smallint",
        Type::INT4 => "integer",
        Type::INT8 => "bigint",
        Type::NUMERIC => "numeric",
        Type::FLOAT4 => "real",
        Type::FLOAT8 => "double precision",
        Type::TEXT => "text",
        Type::VARCHAR => "character varying",
        Type::BPCHAR => "character",
        Type::BYTEA => "bytea",
        Type::DATE => "date",
        Type::TIMESTAMP => "timestamp without time zone",
        Type::TIMESTAMPTZ => "timestamp with time zone",
        Type::TIME => "time without time zone",
        Type::INTERVAL => "interval",
        _ => "json",
    }
    .to_string()
}

/// Functions psql's `\d+`, `\dt+` and `\l+` call that the crate lacks:
/// the comments (`col_description`, `obj_description`,
/// `shobj_description`; no object has a Postgres comment), a view's
/// definition (`pg_get_viewdef`) and the sizes (`pg_table_size`, ...),
/// all unknown (NULL), and `pg_size_pretty`.
fn functions() -> Vec<Func> {
    fn none(args: &[ArrayRef], ret: &DataType) -> datafusion::common::Result<ArrayRef> {
        Ok(new_null_array(ret, args.first().map_or(1, |a| a.len())))
    }
    fn pretty(args: &[ArrayRef], _: &DataType) -> datafusion::common::Result<ArrayRef> {
        let sizes = datafusion::common::cast::as_int64_array(&args[0])?;
        let out: StringArray = sizes.iter().map(|n| n.map(size_pretty)).collect();
        Ok(Arc::new(out))
    }
    let same = |t: &[DataType]| Ok(t.to_vec());
    let text = |_: &[DataType]| Ok(DataType::Utf8);
    let mut out: Vec<Func> = [
        "col_description",
        "obj_description",
        "shobj_description",
        "pg_get_viewdef",
    ]
    .into_iter()
    .map(|name| Func::new(name, same, text, none))
    .collect();
    out.extend(
        ["pg_table_size", "pg_database_size", "pg_indexes_size"]
            .map(|name| Func::new(name, same, |_| Ok(DataType::Int64), none)),
    );
    out.push(Func::new(
        "pg_size_pretty",
        |t| Ok(vec![DataType::Int64; t.len()]),
        text,
        pretty,
    ));
    out
}

/// Postgres's `pg_size_pretty`: bytes below 10 kB, then the largest unit
/// keeping the number below 10,240, rounded half away from zero.
fn size_pretty(bytes: i64) -> String {
    const UNITS: [&str; 5] = ["kB", "MB", "GB", "TB", "PB"];
    if bytes.unsigned_abs() < 10 * 1024 {
        return format!("{bytes} bytes");
    }
    let mut size = bytes as f64;
    for (i, unit) in UNITS.iter().enumerate() {
        size /= 1024.0;
        if size.abs() < 10.0 * 1024.0 - 0.5 || i == UNITS.len() - 1 {
            return format!("{} {unit}", size.round() as i64);
        }
    }
    unreachable!("the last unit returns")
}

/// What Postgres's system catalog is made from: the lakehose catalog,
/// and the columns of a table the catalog lists none for (a Delta table
/// registered without them) as a query sees them. The engine provides it.
#[async_trait]
pub(crate) trait CatalogSource: Send + Sync + std::fmt::Debug {
    /// The lakehose catalog.
    fn catalog(&self) -> Result<CatalogRef, DataFusionError>;

    /// The columns a query of `database.table` sees.
    async fn query_schema(&self, database: &str, table: &str)
    -> Result<SchemaRef, DataFusionError>;
}

/// The `pg_catalog` schema over `source`'s catalog.
pub(crate) fn schema_provider(
    source: Arc<dyn CatalogSource>,
) -> Result<Arc<dyn SchemaProvider>, String> {
    let statics = PgCatalogStaticTables::try_new().map_err(|e| e.to_string())?;
    let info = LakeCatalogInfo { source };
    let provider =
        PgCatalogSchemaProvider::try_new(info.clone(), Arc::new(statics), EmptyContextProvider)
            .map_err(|e| e.to_string())?;
    Ok(Arc::new(attributes::TypedPgCatalog {
        inner: Arc::new(provider),
        info,
    }))
}

/// What `pg_catalog` lists: the lakehose catalog, in name order.
#[derive(Debug, Clone)]
pub(crate) struct LakeCatalogInfo {
    source: Arc<dyn CatalogSource>,
}

impl LakeCatalogInfo {
    fn catalog(&self) -> Result<CatalogRef, DataFusionError> {
        self.source.catalog()
    }

    /// The columns of `found` (in database `schema`): the catalog's, partition
    /// keys last, as queries see them; the table's own when the catalog has
    /// none usable (a Delta table registered without them, a view).
    async fn schema_of(&self, schema: &str, found: &Table) -> Result<SchemaRef, DataFusionError> {
        let table = found.name.as_str();
        let mut columns = found
            .storage_descriptor
            .as_ref()
            .map(|sd| sd.columns.clone())
            .unwrap_or_default();
        columns.extend(found.partition_keys.iter().cloned());
        if !columns.is_empty()
            && let Ok(fields) = arrow_fields(&columns, table)
        {
            return Ok(Arc::new(Schema::new(fields)));
        }
        match self.source.query_schema(schema, table).await {
            Ok(schema) => Ok(schema),
            Err(e) => {
                tracing::debug!(schema, table, error = %e, "pg_catalog: table has no readable schema");
                Ok(Arc::new(Schema::empty()))
            }
        }
    }

    pub(crate) async fn table(
        &self,
        schema: &str,
        table: &str,
    ) -> Result<Option<Table>, DataFusionError> {
        match self.catalog()?.get_table(schema, table).await {
            Ok(t) => Ok(Some(t)),
            Err(CatalogError::NotFound(_)) => Ok(None),
            Err(e) => Err(DataFusionError::External(Box::new(e))),
        }
    }
}

fn external(e: CatalogError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

#[async_trait]
impl CatalogInfo for LakeCatalogInfo {
    async fn catalog_names(&self) -> Result<Vec<String>, DataFusionError> {
        Ok(vec![CATALOG_NAME.to_string()])
    }

    async fn schema_names(&self, catalog: &str) -> Result<Option<Vec<String>>, DataFusionError> {
        if catalog != CATALOG_NAME {
            return Ok(None);
        }
        let databases = self.catalog()?.list_databases().await.map_err(external)?;
        let mut names: Vec<String> = databases.into_iter().map(|d| d.name).collect();
        names.sort();
        Ok(Some(names))
    }

    async fn table_names(
        &self,
        catalog: &str,
        schema: &str,
    ) -> Result<Option<Vec<String>>, DataFusionError> {
        if catalog != CATALOG_NAME {
            return Ok(None);
        }
        let tables = match self.catalog()?.list_tables(schema).await {
            Ok(t) => t,
            Err(CatalogError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(external(e)),
        };
        let mut names: Vec<String> = tables.into_iter().map(|t| t.name).collect();
        names.sort();
        Ok(Some(names))
    }

    async fn table_schema(
        &self,
        catalog: &str,
        schema: &str,
        table: &str,
    ) -> Result<Option<SchemaRef>, DataFusionError> {
        if catalog != CATALOG_NAME {
            return Ok(None);
        }
        match self.table(schema, table).await? {
            Some(found) => self.schema_of(schema, &found).await.map(Some),
            None => Ok(None),
        }
    }

    async fn table_type(
        &self,
        catalog: &str,
        schema: &str,
        table: &str,
    ) -> Result<Option<TableType>, DataFusionError> {
        if catalog != CATALOG_NAME {
            return Ok(None);
        }
        Ok(self.table(schema, table).await?.as_ref().map(type_of))
    }
}

/// A view or a table.
fn type_of(table: &Table) -> TableType {
    if table.is_view() {
        TableType::View
    } else {
        TableType::Base
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pg_catalog_queries_are_recognised() {
        assert!(reads_pg_catalog(
            "SELECT c.relname FROM pg_catalog.pg_class c WHERE c.relkind = 'r'"
        ));
        assert!(reads_pg_catalog("select nspname from PG_NAMESPACE"));
        assert!(!reads_pg_catalog("SELECT 'pg_class' AS s FROM logs"));
        assert!(!reads_pg_catalog("SELECT count(*) FROM logs"));
        // Athena syntax Postgres's tokenizer rejects is simply not a
        // catalog query.
        assert!(!reads_pg_catalog("SELECT \"unterminated FROM t"));
    }

    #[test]
    fn pg_size_pretty_units() {
        assert_eq!(size_pretty(0), "0 bytes");
        assert_eq!(size_pretty(10_239), "10239 bytes");
        assert_eq!(size_pretty(10_240), "10 kB");
        assert_eq!(size_pretty(1_572_864), "1536 kB");
        assert_eq!(size_pretty(10_485_760), "10 MB");
        assert_eq!(size_pretty(-20_480), "-20 kB");
    }
}
