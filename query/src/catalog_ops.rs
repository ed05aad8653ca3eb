//! Executing Athena's DDL and utility statements against the catalog.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use lakehose_catalog::CatalogError;
use lakehose_catalog::model::{Column, Database, SerDeInfo, StorageDescriptor, Table, formats};

use crate::contract::{
    Privilege, QueryError, QueryErrorKind, QueryOutput, Securable, StatementType, TableAccess,
    empty_output, require,
};
use crate::ddl::{AthenaStatement, ColumnDef, ExternalTable, Name};
use crate::engine::{QueryEngine, Run};
use crate::error::{ErrorCode, classify};
use crate::glue::{
    catalog_error, database_of, folder_location, get_table, partition, table_location,
};
use crate::stats::QueryStats;
use crate::table::{hive_partition_values, list_data_files};

fn semantic(message: impl Into<String>) -> QueryError {
    QueryError::new(QueryErrorKind::Semantic, message)
}

/// A result of one text column per line.
pub(crate) fn lines_output(
    kind: StatementType,
    substatement: &str,
    column: &str,
    lines: Vec<String>,
) -> QueryOutput {
    table_output(kind, substatement, &[column], vec![lines])
}

/// A result of text columns.
pub(crate) fn table_output(
    kind: StatementType,
    substatement: &str,
    columns: &[&str],
    values: Vec<Vec<String>>,
) -> QueryOutput {
    let schema = Arc::new(Schema::new(
        columns
            .iter()
            .map(|c| Field::new(*c, DataType::Utf8, true))
            .collect::<Vec<_>>(),
    ));
    let arrays: Vec<ArrayRef> = values
        .into_iter()
        .map(|v| Arc::new(StringArray::from(v)) as ArrayRef)
        .collect();
    let batch = RecordBatch::try_new(Arc::clone(&schema), arrays).expect("columns of equal length");
    QueryOutput {
        statement_type: kind,
        substatement_type: substatement.into(),
        schema,
        batches: vec![batch],
        update_count: None,
        bytes_scanned: 0,
    }
}

fn columns_of(defs: &[ColumnDef]) -> Vec<Column> {
    defs.iter()
        .map(|c| Column {
            name: c.name.clone(),
            data_type: Some(c.hive_type.clone()),
            comment: c.comment.clone(),
            ..Default::default()
        })
        .collect()
}

/// The grants a statement needs before it touches the catalog, checked
/// against the caller's (`None` has them all). The tables its query reads
/// are checked as the query is planned, CTAS's and `UNLOAD`'s targets
/// where they are resolved.
fn authorize(
    statement: &AthenaStatement,
    current: &str,
    access: Option<&Arc<dyn TableAccess>>,
) -> Result<(), QueryError> {
    let Some(access) = access else {
        return Ok(());
    };
    let table = |name: &Name| (database_of(name, current), name.name.to_ascii_lowercase());
    let on_table = |privilege: Privilege, name: &Name| {
        let (database, table) = table(name);
        require(
            Some(access),
            privilege,
            Securable::Table {
                database: &database,
                table: &table,
            },
        )
    };
    let on_location = |location: &str| {
        let folder = folder_location(location)?.to_string();
        require(
            Some(access),
            Privilege::DataLocation,
            Securable::Location(&folder),
        )
    };
    match statement {
        AthenaStatement::CreateDatabase { name, location, .. } => {
            require(
                Some(access),
                Privilege::CreateDatabase,
                Securable::Database(&name.to_ascii_lowercase()),
            )?;
            location.as_deref().map_or(Ok(()), on_location)
        }
        AthenaStatement::DropDatabase { name, .. } => require(
            Some(access),
            Privilege::DropDatabase,
            Securable::Database(&name.to_ascii_lowercase()),
        ),
        AthenaStatement::CreateExternalTable(spec) => {
            on_table(Privilege::CreateTable, &spec.name)?;
            spec.location.as_deref().map_or(Ok(()), on_location)
        }
        AthenaStatement::DropTable { name, .. } => on_table(Privilege::DropTable, name),
        AthenaStatement::MsckRepair { name } => on_table(Privilege::AddPartitions, name),
        AthenaStatement::AddPartitions {
            name, partitions, ..
        } => {
            on_table(Privilege::AddPartitions, name)?;
            partitions
                .iter()
                .filter_map(|(_, location)| location.as_deref())
                .try_for_each(on_location)
        }
        AthenaStatement::DropPartitions { name, .. } => on_table(Privilege::DropPartitions, name),
        AthenaStatement::SetProperties { name, .. } | AthenaStatement::AddColumns { name, .. } => {
            on_table(Privilege::AlterTable, name)
        }
        AthenaStatement::SetLocation { name, location } => {
            on_table(Privilege::AlterTable, name)?;
            on_location(location)
        }
        AthenaStatement::ShowPartitions { name }
        | AthenaStatement::ShowColumns { name }
        | AthenaStatement::ShowProperties { name }
        | AthenaStatement::ShowCreate { name, .. }
        | AthenaStatement::Describe { name } => on_table(Privilege::Select, name),
        AthenaStatement::CreateView { name, .. } => on_table(Privilege::CreateTable, name),
        // Listings show what the caller may read; CTAS, INSERT INTO and
        // UNLOAD check their targets as they resolve them.
        AthenaStatement::ShowDatabases { .. }
        | AthenaStatement::ShowTables { .. }
        | AthenaStatement::CreateTableAs { .. }
        | AthenaStatement::InsertInto { .. }
        | AthenaStatement::Unload { .. } => Ok(()),
    }
}

/// Runs a statement of [`AthenaStatement`].
pub(crate) async fn execute(
    run: Run<'_>,
    statement: AthenaStatement,
) -> Result<QueryOutput, QueryError> {
    let Run {
        engine,
        current,
        access,
    } = run;
    authorize(&statement, current, access)?;
    let catalog = engine.catalog();
    match statement {
        AthenaStatement::CreateDatabase {
            name,
            if_not_exists,
            comment,
            location,
            properties,
        } => {
            if let Some(l) = &location {
                folder_location(l)?;
            }
            let db = Database {
                name: name.clone(),
                description: comment,
                location_uri: location,
                parameters: properties.into_iter().collect(),
                ..Default::default()
            };
            match catalog.create_database(db).await {
                Ok(()) => {}
                Err(CatalogError::AlreadyExists(_)) if if_not_exists => {}
                Err(CatalogError::AlreadyExists(_)) => {
                    return Err(semantic(format!("Database {name} already exists")));
                }
                Err(e) => return Err(catalog_error(e)),
            }
            Ok(empty_output(StatementType::Ddl, "CREATE_DATABASE"))
        }
        AthenaStatement::DropDatabase {
            name,
            if_exists,
            cascade,
        } => {
            match catalog.get_database(&name).await {
                Ok(_) => {}
                Err(CatalogError::NotFound(_)) if if_exists => {
                    return Ok(empty_output(StatementType::Ddl, "DROP_DATABASE"));
                }
                Err(CatalogError::NotFound(_)) => {
                    return Err(QueryError::named(
                        ErrorCode::SchemaNotFound,
                        format!("Database {name} does not exist"),
                    ));
                }
                Err(e) => return Err(catalog_error(e)),
            }
            if !cascade {
                let tables = catalog.list_tables(&name).await.map_err(catalog_error)?;
                if !tables.is_empty() {
                    return Err(semantic(format!(
                        "Database {name} is not empty ({} tables); use DROP DATABASE {name} CASCADE",
                        tables.len()
                    )));
                }
            }
            catalog
                .delete_database(&name)
                .await
                .map_err(catalog_error)?;
            Ok(empty_output(StatementType::Ddl, "DROP_DATABASE"))
        }
        AthenaStatement::CreateExternalTable(spec) => {
            create_external_table(engine, current, *spec).await
        }
        AthenaStatement::DropTable {
            name,
            if_exists,
            view,
        } => {
            let db = database_of(&name, current);
            let sub = if view { "DROP_VIEW" } else { "DROP_TABLE" };
            match catalog.get_table(&db, &name.name).await {
                Ok(t) => {
                    let is_view = t.is_view();
                    if view && !is_view {
                        return Err(semantic(format!(
                            "{db}.{} is a table, not a view; use DROP TABLE",
                            name.name
                        )));
                    }
                    if !view && is_view {
                        return Err(semantic(format!(
                            "{db}.{} is a view; use DROP VIEW",
                            name.name
                        )));
                    }
                }
                Err(CatalogError::NotFound(_)) if if_exists => {
                    return Ok(empty_output(StatementType::Ddl, sub));
                }
                Err(CatalogError::NotFound(_)) => {
                    return Err(QueryError::named(
                        ErrorCode::TableNotFound,
                        format!("Table 'awsdatacatalog.{db}.{}' does not exist", name.name),
                    ));
                }
                Err(e) => return Err(catalog_error(e)),
            }
            catalog
                .delete_table(&db, &name.name)
                .await
                .map_err(catalog_error)?;
            Ok(empty_output(StatementType::Ddl, sub))
        }
        AthenaStatement::MsckRepair { name } => msck_repair(engine, current, &name).await,
        AthenaStatement::AddPartitions {
            name,
            if_not_exists,
            partitions,
        } => {
            let db = database_of(&name, current);
            let table = get_table(engine, &db, &name.name).await?;
            let location = table_location(&table)?;
            let mut batch = Vec::new();
            for (spec, loc) in partitions {
                let values = spec_values(&table, &spec)?;
                let loc = match loc {
                    Some(l) => folder_location(&l)?.to_string(),
                    None => {
                        let suffix: String = table
                            .partition_keys
                            .iter()
                            .zip(&values)
                            .map(|(k, v)| format!("{}={v}/", k.name))
                            .collect();
                        format!("{location}{suffix}")
                    }
                };
                batch.push(partition(&table, values, loc));
            }
            let failures = catalog
                .create_partitions(&db, &name.name, batch)
                .await
                .map_err(catalog_error)?;
            for (values, e) in failures {
                if matches!(e, CatalogError::AlreadyExists(_)) && if_not_exists {
                    continue;
                }
                return Err(semantic(format!(
                    "Partition ({}) could not be added: {e}",
                    values.join(", ")
                )));
            }
            Ok(empty_output(
                StatementType::Ddl,
                "ALTER_TABLE_ADD_PARTITION",
            ))
        }
        AthenaStatement::DropPartitions {
            name,
            if_exists,
            partitions,
        } => {
            let db = database_of(&name, current);
            let table = get_table(engine, &db, &name.name).await?;
            let values = partitions
                .iter()
                .map(|spec| spec_values(&table, spec))
                .collect::<Result<Vec<_>, _>>()?;
            let failures = catalog
                .delete_partitions(&db, &name.name, values)
                .await
                .map_err(catalog_error)?;
            for (values, e) in failures {
                if matches!(e, CatalogError::NotFound(_)) && if_exists {
                    continue;
                }
                return Err(semantic(format!(
                    "Partition ({}) could not be dropped: {e}",
                    values.join(", ")
                )));
            }
            Ok(empty_output(
                StatementType::Ddl,
                "ALTER_TABLE_DROP_PARTITION",
            ))
        }
        AthenaStatement::SetProperties { name, properties } => {
            let db = database_of(&name, current);
            let mut table = get_table(engine, &db, &name.name).await?;
            table.parameters.extend(properties);
            update(engine, &db, table).await?;
            Ok(empty_output(
                StatementType::Ddl,
                "ALTER_TABLE_SET_TBLPROPERTIES",
            ))
        }
        AthenaStatement::AddColumns { name, columns } => {
            let db = database_of(&name, current);
            let mut table = get_table(engine, &db, &name.name).await?;
            let sd = table
                .storage_descriptor
                .get_or_insert_with(Default::default);
            for c in columns_of(&columns) {
                if sd.columns.iter().any(|e| e.name == c.name)
                    || table.partition_keys.iter().any(|e| e.name == c.name)
                {
                    return Err(semantic(format!(
                        "Column {} already exists in {db}.{}",
                        c.name, name.name
                    )));
                }
                sd.columns.push(c);
            }
            update(engine, &db, table).await?;
            Ok(empty_output(StatementType::Ddl, "ALTER_TABLE_ADD_COLUMNS"))
        }
        AthenaStatement::SetLocation { name, location } => {
            let db = database_of(&name, current);
            let location = folder_location(&location)?;
            let mut table = get_table(engine, &db, &name.name).await?;
            table
                .storage_descriptor
                .get_or_insert_with(Default::default)
                .location = Some(location.to_string());
            update(engine, &db, table).await?;
            Ok(empty_output(StatementType::Ddl, "ALTER_TABLE_SET_LOCATION"))
        }
        AthenaStatement::ShowDatabases { like } => {
            let pattern = like.as_deref().map(hive_pattern).transpose()?;
            let names = catalog
                .list_databases()
                .await
                .map_err(catalog_error)?
                .into_iter()
                .map(|d| d.name)
                .filter(|n| pattern.as_ref().is_none_or(|p| p.is_match(n)))
                .collect();
            Ok(lines_output(
                StatementType::Utility,
                "SHOW_DATABASES",
                "database_name",
                names,
            ))
        }
        AthenaStatement::ShowTables {
            database,
            pattern,
            views,
        } => {
            let db = database.unwrap_or_else(|| current.to_string());
            let pattern = pattern.as_deref().map(hive_pattern).transpose()?;
            let tables = catalog.list_tables(&db).await.map_err(|e| match e {
                CatalogError::NotFound(_) => QueryError::named(
                    ErrorCode::SchemaNotFound,
                    format!("Database {db} does not exist"),
                ),
                other => catalog_error(other),
            })?;
            let names = tables
                .into_iter()
                .filter(|t| !views || t.is_view())
                .filter(|t| {
                    access.is_none_or(|a| {
                        a.allows(
                            Privilege::Select,
                            Securable::Table {
                                database: &db,
                                table: &t.name,
                            },
                        )
                    })
                })
                .map(|t| t.name)
                .filter(|n| pattern.as_ref().is_none_or(|p| p.is_match(n)))
                .collect();
            let (sub, column) = if views {
                ("SHOW_VIEWS", "views")
            } else {
                ("SHOW_TABLES", "tab_name")
            };
            Ok(lines_output(StatementType::Utility, sub, column, names))
        }
        AthenaStatement::ShowPartitions { name } => {
            let db = database_of(&name, current);
            let table = get_table(engine, &db, &name.name).await?;
            if table.partition_keys.is_empty() {
                return Err(semantic(format!(
                    "Table {db}.{} is not partitioned",
                    name.name
                )));
            }
            let lines = catalog
                .get_partitions(&db, &name.name, None)
                .await
                .map_err(catalog_error)?
                .into_iter()
                .map(|p| {
                    table
                        .partition_keys
                        .iter()
                        .zip(&p.values)
                        .map(|(k, v)| format!("{}={v}", k.name))
                        .collect::<Vec<_>>()
                        .join("/")
                })
                .collect();
            Ok(lines_output(
                StatementType::Utility,
                "SHOW_PARTITIONS",
                "partition",
                lines,
            ))
        }
        AthenaStatement::ShowColumns { name } => {
            let db = database_of(&name, current);
            let table = get_table(engine, &db, &name.name).await?;
            let names = all_columns(&table).into_iter().map(|c| c.name).collect();
            Ok(lines_output(
                StatementType::Utility,
                "SHOW_COLUMNS",
                "field",
                names,
            ))
        }
        AthenaStatement::ShowProperties { name } => {
            let db = database_of(&name, current);
            let table = get_table(engine, &db, &name.name).await?;
            let (keys, values) = table.parameters.into_iter().unzip();
            Ok(table_output(
                StatementType::Utility,
                "SHOW_TBLPROPERTIES",
                &["prpt_name", "prpt_value"],
                vec![keys, values],
            ))
        }
        AthenaStatement::ShowCreate { name, view } => {
            let db = database_of(&name, current);
            let table = get_table(engine, &db, &name.name).await?;
            let is_view = table.is_view();
            if view != is_view {
                return Err(semantic(format!(
                    "{db}.{} is {}",
                    name.name,
                    if is_view {
                        "a view: use SHOW CREATE VIEW"
                    } else {
                        "not a view: use SHOW CREATE TABLE"
                    }
                )));
            }
            let text = if is_view {
                format!(
                    "CREATE VIEW {db}.{} AS\n{}",
                    table.name,
                    table.view_original_text.clone().unwrap_or_default()
                )
            } else {
                show_create_table(&db, &table)
            };
            let lines = text.lines().map(str::to_string).collect();
            let sub = if view {
                "SHOW_CREATE_VIEW"
            } else {
                "SHOW_CREATE_TABLE"
            };
            Ok(lines_output(
                StatementType::Ddl,
                sub,
                "createtab_stmt",
                lines,
            ))
        }
        AthenaStatement::Describe { name } => {
            let db = database_of(&name, current);
            let table = get_table(engine, &db, &name.name).await?;
            let mut cols = (Vec::new(), Vec::new(), Vec::new());
            let mut push = |a: &str, b: &str, c: &str| {
                cols.0.push(a.to_string());
                cols.1.push(b.to_string());
                cols.2.push(c.to_string());
            };
            let columns = if crate::delta::is_delta(&table) && data_columns(&table).is_empty() {
                delta_columns(engine, &db, &table).await?
            } else {
                data_columns(&table)
            };
            for c in columns.iter().chain(&table.partition_keys) {
                push(
                    &c.name,
                    c.data_type.as_deref().unwrap_or("string"),
                    c.comment.as_deref().unwrap_or(""),
                );
            }
            if !table.partition_keys.is_empty() {
                push("", "", "");
                push("# Partition Information", "", "");
                push("# col_name", "data_type", "comment");
                push("", "", "");
                for c in &table.partition_keys {
                    push(
                        &c.name,
                        c.data_type.as_deref().unwrap_or("string"),
                        c.comment.as_deref().unwrap_or(""),
                    );
                }
            }
            Ok(table_output(
                StatementType::Utility,
                "DESCRIBE_TABLE",
                &["col_name", "data_type", "comment"],
                vec![cols.0, cols.1, cols.2],
            ))
        }
        AthenaStatement::CreateView {
            name,
            or_replace,
            query,
        } => create_view(run, name, or_replace, query).await,
        AthenaStatement::CreateTableAs {
            name,
            if_not_exists,
            with,
            query,
            with_data,
        } => crate::write::create_table_as(run, name, if_not_exists, with, query, with_data).await,
        AthenaStatement::InsertInto {
            name,
            columns,
            query,
        } => crate::write::insert_into(run, name, columns, query).await,
        AthenaStatement::Unload {
            query,
            location,
            with,
        } => crate::write::unload(run, query, location, with).await,
    }
}

async fn update(engine: &QueryEngine, db: &str, table: Table) -> Result<(), QueryError> {
    engine
        .catalog()
        .update_table(db, table, None)
        .await
        .map_err(catalog_error)
}

fn data_columns(table: &Table) -> Vec<Column> {
    table
        .storage_descriptor
        .as_ref()
        .map(|sd| sd.columns.clone())
        .unwrap_or_default()
}

fn all_columns(table: &Table) -> Vec<Column> {
    let mut c = data_columns(table);
    c.extend(table.partition_keys.iter().cloned());
    c
}

async fn delta_columns(
    engine: &QueryEngine,
    db: &str,
    table: &Table,
) -> Result<Vec<Column>, QueryError> {
    let provider = crate::delta::provider(engine.storage(), table)
        .await
        .map_err(|e| semantic(format!("table {db}.{}: {e}", table.name)))?;
    provider
        .schema()
        .fields()
        .iter()
        .map(|f| {
            Ok(Column {
                name: f.name().clone(),
                data_type: Some(crate::types::arrow_to_hive(f.data_type()).map_err(semantic)?),
                ..Default::default()
            })
        })
        .collect()
}

fn spec_values(table: &Table, spec: &[(String, String)]) -> Result<Vec<String>, QueryError> {
    let keys: Vec<&str> = table
        .partition_keys
        .iter()
        .map(|k| k.name.as_str())
        .collect();
    if keys.is_empty() {
        return Err(semantic(format!("Table {} is not partitioned", table.name)));
    }
    let mut values = Vec::new();
    for key in &keys {
        let v = spec
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| {
                semantic(format!(
                    "The partition spec must give every partition key ({}); {key} is missing",
                    keys.join(", ")
                ))
            })?;
        values.push(v);
    }
    if let Some((k, _)) = spec.iter().find(|(k, _)| !keys.contains(&k.as_str())) {
        return Err(semantic(format!(
            "{k} is not a partition key of {} (keys: {})",
            table.name,
            keys.join(", ")
        )));
    }
    Ok(values)
}

/// A Hive `SHOW` pattern (`*` any, `|` alternatives, case-insensitive).
fn hive_pattern(p: &str) -> Result<regex::Regex, QueryError> {
    let alternatives: Vec<String> = p
        .split('|')
        .map(|a| {
            regex::escape(a.trim())
                .replace("\\*", ".*")
                .replace('%', ".*")
        })
        .collect();
    regex::RegexBuilder::new(&format!("^(?:{})$", alternatives.join("|")))
        .case_insensitive(true)
        .build()
        .map_err(|e| semantic(format!("bad pattern {p:?}: {e}")))
}

async fn create_external_table(
    engine: &QueryEngine,
    current: &str,
    spec: ExternalTable,
) -> Result<QueryOutput, QueryError> {
    let db = database_of(&spec.name, current);
    let location = spec
        .location
        .as_deref()
        .ok_or_else(|| semantic("CREATE EXTERNAL TABLE needs LOCATION 's3://bucket/folder/'"))?;
    let location = folder_location(location)?;
    let mut parameters: lakehose_catalog::model::Parameters = spec.properties.into_iter().collect();
    let is_delta = parameters
        .get("table_type")
        .is_some_and(|t| t.eq_ignore_ascii_case("delta"));
    if spec.columns.is_empty() && !is_delta {
        return Err(semantic(
            "CREATE EXTERNAL TABLE needs a column list (only Delta tables, with TBLPROPERTIES ('table_type'='DELTA'), take their columns from the data)",
        ));
    }
    for p in &spec.partitioned_by {
        if spec.columns.iter().any(|c| c.name == p.name) {
            return Err(semantic(format!(
                "Partition column {} duplicates a data column",
                p.name
            )));
        }
    }
    let mut seen = std::collections::HashSet::new();
    for c in spec.columns.iter().chain(&spec.partitioned_by) {
        if !seen.insert(&c.name) {
            return Err(semantic(format!("Column {} is defined twice", c.name)));
        }
    }
    let fmt = &spec.format;
    let stored = fmt.stored_as.as_deref().map(str::to_ascii_lowercase);
    let (serde, input, output, classification) = match stored.as_deref() {
        Some("parquet") => (
            fmt.serde
                .clone()
                .unwrap_or_else(|| formats::PARQUET_SERDE.into()),
            formats::PARQUET_INPUT.to_string(),
            formats::PARQUET_OUTPUT.to_string(),
            "parquet",
        ),
        Some("textfile") | None => {
            let serde = fmt
                .serde
                .clone()
                .unwrap_or_else(|| formats::LAZY_SIMPLE_SERDE.into());
            let class = if serde.to_ascii_lowercase().contains("json") {
                "json"
            } else if serde.to_ascii_lowercase().contains("csv") {
                "csv"
            } else {
                ""
            };
            let input = fmt
                .input_format
                .clone()
                .unwrap_or_else(|| formats::TEXT_INPUT.into());
            let output = fmt
                .output_format
                .clone()
                .unwrap_or_else(|| formats::TEXT_OUTPUT.into());
            (serde, input, output, class)
        }
        Some("json") => (
            fmt.serde
                .clone()
                .unwrap_or_else(|| formats::JSON_SERDE.into()),
            formats::TEXT_INPUT.to_string(),
            formats::TEXT_OUTPUT.to_string(),
            "json",
        ),
        Some(other) => {
            return Err(semantic(format!(
                "STORED AS {} is not supported; lakehose reads PARQUET, TEXTFILE and JSON tables",
                other.to_ascii_uppercase()
            )));
        }
    };
    if !classification.is_empty() {
        parameters
            .entry("classification".into())
            .or_insert_with(|| classification.into());
    }
    parameters.insert("EXTERNAL".into(), "TRUE".into());
    let table = Table {
        name: spec.name.name.clone(),
        description: spec.comment,
        storage_descriptor: Some(StorageDescriptor {
            columns: columns_of(&spec.columns),
            location: Some(location.to_string()),
            input_format: Some(input),
            output_format: Some(output),
            serde_info: Some(SerDeInfo {
                serialization_library: Some(serde),
                parameters: fmt.serde_properties.iter().cloned().collect(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        partition_keys: columns_of(&spec.partitioned_by),
        table_type: Some(lakehose_catalog::model::EXTERNAL_TABLE.into()),
        parameters,
        ..Default::default()
    };
    // Reject what the engine could not read, now rather than at query time.
    if !is_delta {
        crate::table::StorageFormat::of(&table).map_err(semantic)?;
    }
    match engine.catalog().create_table(&db, table).await {
        Ok(()) => {}
        Err(CatalogError::AlreadyExists(_)) if spec.if_not_exists => {}
        Err(CatalogError::AlreadyExists(_)) => {
            return Err(semantic(format!(
                "Table awsdatacatalog.{db}.{} already exists",
                spec.name.name
            )));
        }
        Err(CatalogError::NotFound(_)) => {
            return Err(QueryError::named(
                ErrorCode::SchemaNotFound,
                format!("Database {db} does not exist"),
            ));
        }
        Err(e) => return Err(catalog_error(e)),
    }
    Ok(empty_output(StatementType::Ddl, "CREATE_TABLE"))
}

async fn msck_repair(
    engine: &QueryEngine,
    current: &str,
    name: &Name,
) -> Result<QueryOutput, QueryError> {
    let db = database_of(name, current);
    let table = get_table(engine, &db, &name.name).await?;
    if table.partition_keys.is_empty() {
        return Err(semantic(format!(
            "Table {db}.{} is not partitioned",
            name.name
        )));
    }
    let location = table_location(&table)?;
    let files = list_data_files(engine.storage().store(), &location)
        .await
        .map_err(classify)?;
    let keys: Vec<String> = table
        .partition_keys
        .iter()
        .map(|k| k.name.clone())
        .collect();
    let found = hive_partition_values(&location, &keys, &files);
    let existing: std::collections::HashSet<Vec<String>> = engine
        .catalog()
        .get_partitions(&db, &name.name, None)
        .await
        .map_err(catalog_error)?
        .into_iter()
        .map(|p| p.values)
        .collect();
    let mut lines = Vec::new();
    let mut batch = Vec::new();
    for (values, folder) in found {
        if existing.contains(&values) {
            continue;
        }
        lines.push(format!(
            "Partitions not in metastore:\t{}:{folder}",
            name.name
        ));
        batch.push(partition(&table, values, format!("{location}{folder}/")));
    }
    let added: Vec<String> = batch
        .iter()
        .map(|p| {
            keys.iter()
                .zip(&p.values)
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("/")
        })
        .collect();
    for chunk in batch.chunks(1000) {
        engine
            .catalog()
            .create_partitions(&db, &name.name, chunk.to_vec())
            .await
            .map_err(catalog_error)?;
    }
    for a in added {
        lines.push(format!(
            "Repair: Added partition to metastore {}:{a}",
            name.name
        ));
    }
    Ok(lines_output(
        StatementType::Ddl,
        "MSCK_REPAIR_TABLE",
        "result",
        lines,
    ))
}

async fn create_view(
    run: Run<'_>,
    name: Name,
    or_replace: bool,
    query: String,
) -> Result<QueryOutput, QueryError> {
    let Run {
        engine,
        current,
        access,
    } = run;
    let db = database_of(&name, current);
    engine
        .catalog()
        .get_database(&db)
        .await
        .map_err(|e| match e {
            CatalogError::NotFound(_) => QueryError::named(
                ErrorCode::SchemaNotFound,
                format!("Database {db} does not exist"),
            ),
            other => catalog_error(other),
        })?;
    // The view's query is planned as its creator: a view cannot be made
    // over tables the creator may not read.
    let ctx = engine
        .context_as(&db, Arc::new(QueryStats::default()), access.cloned())
        .map_err(classify)?;
    let plan = crate::plan::plan_query(&ctx, &query).await?;
    let columns = plan
        .schema()
        .fields()
        .iter()
        .map(|f| {
            Ok(Column {
                name: f.name().to_ascii_lowercase(),
                data_type: Some(crate::types::arrow_to_hive(f.data_type()).map_err(semantic)?),
                ..Default::default()
            })
        })
        .collect::<Result<Vec<_>, QueryError>>()?;
    let table = Table {
        name: name.name.clone(),
        table_type: Some(lakehose_catalog::model::VIRTUAL_VIEW.into()),
        view_original_text: Some(query),
        view_expanded_text: Some("/* Presto View */".into()),
        storage_descriptor: Some(StorageDescriptor {
            columns,
            ..Default::default()
        }),
        parameters: [("presto_view".to_string(), "true".to_string())].into(),
        ..Default::default()
    };
    let catalog = engine.catalog();
    match catalog.create_table(&db, table.clone()).await {
        Ok(()) => {}
        Err(CatalogError::AlreadyExists(_)) if or_replace => {
            require(
                access,
                Privilege::AlterTable,
                Securable::Table {
                    database: &db,
                    table: &name.name,
                },
            )?;
            let existing = catalog
                .get_table(&db, &name.name)
                .await
                .map_err(catalog_error)?;
            if !existing.is_view() {
                return Err(semantic(format!(
                    "{db}.{} is a table, not a view",
                    name.name
                )));
            }
            catalog
                .update_table(&db, table, None)
                .await
                .map_err(catalog_error)?;
        }
        Err(CatalogError::AlreadyExists(_)) => {
            return Err(semantic(format!(
                "View awsdatacatalog.{db}.{} already exists (use CREATE OR REPLACE VIEW)",
                name.name
            )));
        }
        Err(e) => return Err(catalog_error(e)),
    }
    Ok(empty_output(StatementType::Ddl, "CREATE_VIEW"))
}

fn show_create_table(db: &str, table: &Table) -> String {
    let sd = table.storage_descriptor.clone().unwrap_or_default();
    let cols = |c: &[Column]| {
        c.iter()
            .map(|c| {
                let comment = c
                    .comment
                    .as_ref()
                    .map(|m| format!(" COMMENT '{}'", m.replace('\'', "\\'")))
                    .unwrap_or_default();
                format!(
                    "  `{}` {}{comment}",
                    c.name,
                    c.data_type.as_deref().unwrap_or("string")
                )
            })
            .collect::<Vec<_>>()
            .join(",\n")
    };
    let quote = |s: &str| s.replace('\\', "\\\\").replace('\'', "\\'");
    let mut out = format!(
        "CREATE EXTERNAL TABLE `{db}`.`{}`(\n{})",
        table.name,
        cols(&sd.columns)
    );
    if let Some(d) = &table.description {
        out.push_str(&format!("\nCOMMENT '{}'", quote(d)));
    }
    if !table.partition_keys.is_empty() {
        out.push_str(&format!(
            "\nPARTITIONED BY ( \n{})",
            cols(&table.partition_keys)
        ));
    }
    if let Some(serde) = &sd.serde_info {
        out.push_str(&format!(
            "\nROW FORMAT SERDE \n  '{}' ",
            serde
                .serialization_library
                .as_deref()
                .unwrap_or(formats::LAZY_SIMPLE_SERDE)
        ));
        if !serde.parameters.is_empty() {
            let props: Vec<String> = serde
                .parameters
                .iter()
                .map(|(k, v)| format!("  '{}'='{}'", quote(k), quote(v)))
                .collect();
            out.push_str(&format!(
                "\nWITH SERDEPROPERTIES ( \n{}) ",
                props.join(", \n")
            ));
        }
    }
    out.push_str(&format!(
        "\nSTORED AS INPUTFORMAT \n  '{}' \nOUTPUTFORMAT \n  '{}'",
        sd.input_format.as_deref().unwrap_or(formats::TEXT_INPUT),
        sd.output_format.as_deref().unwrap_or(formats::TEXT_OUTPUT)
    ));
    out.push_str(&format!(
        "\nLOCATION\n  '{}'",
        sd.location.as_deref().unwrap_or("")
    ));
    if !table.parameters.is_empty() {
        let props: Vec<String> = table
            .parameters
            .iter()
            .map(|(k, v)| format!("  '{}'='{}'", quote(k), quote(v)))
            .collect();
        out.push_str(&format!("\nTBLPROPERTIES (\n{})", props.join(", \n")));
    }
    out
}
