//! Running one statement, the top of the engine: the request's checks
//! (catalog, parameters, nesting, the scan cutoff), its dialect, dispatch to
//! Athena's DDL and utility statements, to a query, or to Postgres's system
//! catalog, the timeout, and the retry of a query that ran out of memory.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::parser::Statement as DFStatement;

use crate::contract::{
    CATALOG_NAME, Dialect, QueryError, QueryErrorKind, QueryOutput, QueryRequest, QueryStream,
    SqlRunner, StatementType, TableAccess,
};
use crate::engine::QueryEngine;
use crate::error::{ErrorCode, classify};
use crate::plan::{bind_parameters, plan_query, plan_read_only};
use crate::stats::QueryStats;

/// The database a request runs in.
pub fn current_database(request: &QueryRequest) -> String {
    request
        .database
        .as_deref()
        .filter(|d| !d.is_empty())
        .unwrap_or("default")
        .to_ascii_lowercase()
}

async fn run(engine: QueryEngine, request: QueryRequest) -> Result<QueryOutput, QueryError> {
    if let Some(catalog) = request.catalog.as_deref()
        && !catalog.is_empty()
        && !catalog.eq_ignore_ascii_case(CATALOG_NAME)
    {
        return Err(QueryError::named(
            ErrorCode::CatalogNotFound,
            format!("Catalog '{catalog}' does not exist"),
        ));
    }
    let sql = bind_parameters(&request.sql, &request.parameters)?;
    crate::nesting::check(&sql)?;
    if sql.trim().trim_end_matches(';').trim().is_empty() {
        return Err(QueryError::named(
            ErrorCode::SyntaxError,
            "the query is empty",
        ));
    }
    for (key, value) in &request.settings {
        crate::check_session_setting(key, value)
            .map_err(|e| QueryError::new(QueryErrorKind::Semantic, e))?;
    }
    let database = current_database(&request);
    if database == "default" {
        engine.ensure_default_database().await?;
    }
    let access = request.access.clone();
    let output = if request.dialect == Dialect::Postgres && crate::postgres::reads_pg_catalog(&sql)
    {
        run_postgres(&engine, &database, &sql, access).await?
    } else if let Some(statement) = crate::ddl::parse(&sql)? {
        let run = crate::engine::Run {
            engine: &engine,
            current: &database,
            access: access.as_ref(),
        };
        crate::catalog_ops::execute(run, statement).await?
    } else {
        select(&engine, &database, &sql, access, &request.settings).await?
    };
    if let Some(cutoff) = request.bytes_scanned_cutoff
        && output.bytes_scanned > cutoff
    {
        return Err(QueryError::coded(
            ErrorCode::ExceededScanLimit,
            format!(
                "Query cancelled! : Bytes scanned limit was exceeded (scanned {} bytes, the workgroup allows {cutoff})",
                output.bytes_scanned
            ),
        ));
    }
    Ok(output)
}

/// Runs one statement that reads Postgres's system catalog, with
/// `database` as the current schema.
async fn run_postgres(
    engine: &QueryEngine,
    database: &str,
    sql: &str,
    access: Option<Arc<dyn TableAccess>>,
) -> Result<QueryOutput, QueryError> {
    let statement = crate::postgres::parse(sql)?;
    let stats = Arc::new(QueryStats::default());
    let ctx = engine
        .context_as(database, Arc::clone(&stats), access.clone())
        .map_err(classify)?;
    crate::postgres::install(
        &ctx,
        engine.pg_catalog_schema(),
        engine.catalog_source(),
        sql,
        access,
    )
    .await?;
    let plan = plan_read_only(&ctx, DFStatement::Statement(Box::new(statement))).await?;
    let (schema, batches, bytes_scanned) =
        engine.collect(&ctx, plan, &stats).await.map_err(classify)?;
    Ok(QueryOutput {
        statement_type: StatementType::Dml,
        substatement_type: "SELECT".into(),
        schema,
        batches,
        update_count: None,
        bytes_scanned,
    })
}

async fn select(
    engine: &QueryEngine,
    database: &str,
    sql: &str,
    access: Option<Arc<dyn TableAccess>>,
    settings: &[(String, String)],
) -> Result<QueryOutput, QueryError> {
    match select_with(engine, database, sql, false, access.clone(), settings).await {
        // Hash joins cannot spill; run again with joins that can.
        Err(e) if e.code == ErrorCode::ExceededMemoryLimit => {
            tracing::info!("query ran out of memory; re-running it with spilling sort-merge joins");
            select_with(engine, database, sql, true, access, settings).await
        }
        other => other,
    }
}

async fn select_with(
    engine: &QueryEngine,
    database: &str,
    sql: &str,
    low_memory: bool,
    access: Option<Arc<dyn TableAccess>>,
    settings: &[(String, String)],
) -> Result<QueryOutput, QueryError> {
    let stats = Arc::new(QueryStats::default());
    let ctx = if low_memory {
        engine.low_memory_context(database, Arc::clone(&stats), access)
    } else {
        engine.context_as(database, Arc::clone(&stats), access)
    }
    .map_err(classify)?;
    if !settings.is_empty() {
        let state = ctx.state_ref();
        let mut state = state.write();
        let options = state.config_mut().options_mut();
        for (key, value) in settings {
            options.set(key, value).map_err(classify)?;
        }
    }
    let plan = plan_query(&ctx, sql).await?;
    let (statement_type, substatement) = match &plan {
        LogicalPlan::Explain(_) | LogicalPlan::Analyze(_) => (StatementType::Utility, "EXPLAIN"),
        _ => (StatementType::Dml, "SELECT"),
    };
    let (schema, batches, bytes_scanned) =
        engine.collect(&ctx, plan, &stats).await.map_err(classify)?;
    Ok(QueryOutput {
        statement_type,
        substatement_type: substatement.into(),
        schema,
        batches,
        update_count: None,
        bytes_scanned,
    })
}

/// Runs one statement within the engine's timeout.
async fn run_limited(
    engine: QueryEngine,
    request: QueryRequest,
) -> Result<QueryOutput, QueryError> {
    let limit = engine.config().query_timeout;
    let statement = run(engine, request);
    match limit {
        Some(limit) => tokio::time::timeout(limit, statement)
            .await
            .unwrap_or_else(|_| {
                Err(QueryError::coded(
                    ErrorCode::ExceededTimeLimit,
                    format!(
                        "Query exhausted resources at this scale factor: it ran longer than the {} s timeout",
                        limit.as_secs()
                    ),
                ))
            }),
        None => statement.await,
    }
}

impl QueryEngine {
    /// Runs one statement on the engine's CPU runtime (see
    /// [`crate::executor`]). Dropping the future cancels it; a panic while
    /// running is an internal error, not a crash.
    pub async fn execute(&self, request: QueryRequest) -> Result<QueryOutput, QueryError> {
        let mut task = self.spawn(run_limited(self.clone(), request));
        crate::stream::joined(task.join().await)
    }

    /// Runs one statement as [`execute`](Self::execute) does, its rows
    /// streamed as they are produced (see [`crate::stream`]).
    pub(crate) async fn execute_stream(
        &self,
        request: QueryRequest,
    ) -> Result<QueryStream, QueryError> {
        crate::stream::streamed(self.cpu_runtime(), run_limited(self.clone(), request)).await
    }
}

#[async_trait]
impl SqlRunner for QueryEngine {
    async fn run(&self, request: QueryRequest) -> Result<QueryOutput, QueryError> {
        self.execute(request).await
    }

    async fn run_stream(&self, request: QueryRequest) -> Result<QueryStream, QueryError> {
        self.execute_stream(request).await
    }
}
