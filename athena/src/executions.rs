//! Query executions: start, run in the bounded queue, stop, look up, list,
//! and read results back.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use bytes::Bytes;
use futures::{FutureExt, StreamExt};
use lakehose_catalog::Location;
use object_store::ObjectStoreExt;
use object_store::buffered::BufWriter;
use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use crate::error::ApiError;
use crate::input::{self, length, parse, required};
use crate::results::{self, ResultMetadata};
use crate::workgroups::{self, ENGINE_VERSION, ResultConfiguration};
use crate::{AthenaApi, now_ms, seconds};
use lakehose_query::contract::{
    QueryError, QueryErrorKind, QueryRequest, QueryStream, StatementType, TableAccess, panic_error,
};

/// Athena's limit on `QueryString`, in bytes.
pub const MAX_QUERY_BYTES: usize = 262_144;

/// An execution's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum QueryState {
    /// Waiting for a slot.
    Queued,
    /// Running.
    Running,
    /// Finished; results are written.
    Succeeded,
    /// Failed.
    Failed,
    /// Stopped by the user.
    Cancelled,
}

impl QueryState {
    /// Athena's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "QUEUED",
            Self::Running => "RUNNING",
            Self::Succeeded => "SUCCEEDED",
            Self::Failed => "FAILED",
            Self::Cancelled => "CANCELLED",
        }
    }

    /// Queued or running.
    pub fn is_active(self) -> bool {
        matches!(self, Self::Queued | Self::Running)
    }
}

/// `AthenaError` of a failed execution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct FailureInfo {
    /// 1 system, 2 user, 3 other.
    pub error_category: u8,
    /// Athena's error type number.
    pub error_type: u32,
    /// Whether running it again may succeed.
    pub retryable: bool,
    /// The message.
    pub error_message: String,
}

/// Athena error types used by lakehose (from Athena's error catalog).
mod error_type {
    /// Internal service error.
    pub const INTERNAL: u32 = 100;
    /// Failed to write query results to Amazon S3.
    pub const RESULT_WRITE: u32 = 401;
}

/// One execution, as persisted under `_lakehose/athena/executions/`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Execution {
    /// Id (a UUID).
    pub id: String,
    /// SQL text.
    pub query: String,
    /// Statement type (a guess from the text until the engine reports it).
    pub statement_type: StatementType,
    /// Finer statement name, once known.
    #[serde(default)]
    pub substatement_type: Option<String>,
    /// The output folder (`s3://bucket/prefix/`).
    pub output_folder: String,
    /// The result configuration as reported (client's or workgroup's).
    #[serde(default)]
    pub result_configuration: ResultConfiguration,
    /// Database of the context.
    #[serde(default)]
    pub database: Option<String>,
    /// Catalog of the context.
    #[serde(default)]
    pub catalog: Option<String>,
    /// Workgroup.
    pub workgroup: String,
    /// Values for `?` placeholders.
    #[serde(default)]
    pub parameters: Vec<String>,
    /// Idempotency token.
    #[serde(default)]
    pub client_request_token: Option<String>,
    /// The request's idempotent parameters, to compare a repeated token.
    pub fingerprint: String,
    /// Data usage control of the workgroup.
    #[serde(default)]
    pub bytes_scanned_cutoff: Option<u64>,
    /// Selected engine version.
    pub selected_engine_version: String,
    /// State.
    pub state: QueryState,
    /// Why it reached its state.
    #[serde(default)]
    pub state_change_reason: Option<String>,
    /// Failure details.
    #[serde(default)]
    pub failure: Option<FailureInfo>,
    /// Submission time, epoch ms.
    pub submitted_ms: i64,
    /// Start of running, epoch ms.
    #[serde(default)]
    pub started_ms: Option<i64>,
    /// Completion time, epoch ms.
    #[serde(default)]
    pub completed_ms: Option<i64>,
    /// Time in the engine.
    #[serde(default)]
    pub engine_ms: Option<i64>,
    /// Time writing results.
    #[serde(default)]
    pub service_ms: Option<i64>,
    /// Bytes the engine read.
    #[serde(default)]
    pub data_scanned: u64,
    /// CTAS / INSERT INTO row count.
    #[serde(default)]
    pub update_count: Option<u64>,
    /// The node that runs it, when several share the history.
    #[serde(default)]
    pub node: Option<String>,
}

impl Execution {
    /// The results file: `<folder><id>.csv` or `.txt`.
    pub fn result_file(&self) -> String {
        let ext = if results::is_text(self.statement_type) {
            "txt"
        } else {
            "csv"
        };
        format!("{}{}.{ext}", self.output_folder, self.id)
    }

    fn finish(&mut self, state: QueryState, reason: Option<String>, failure: Option<FailureInfo>) {
        self.state = state;
        self.state_change_reason = reason;
        self.failure = failure;
        self.completed_ms = Some(now_ms());
    }

    /// Marks an execution the process stopped during as failed.
    pub fn fail_interrupted(&mut self) {
        self.fail_retryable(
            "lakehose stopped before the query finished (it was queued or running); run it again"
                .to_string(),
        );
    }

    /// Fails the execution with a system error worth retrying.
    fn fail_retryable(&mut self, message: String) {
        self.finish(
            QueryState::Failed,
            Some(message.clone()),
            Some(FailureInfo {
                error_category: 1,
                error_type: error_type::INTERNAL,
                retryable: true,
                error_message: message,
            }),
        );
    }

    /// Marks an execution whose node stopped saying it is alive as failed
    /// (as this node reports it; the record stays for that node to settle
    /// if it comes back).
    pub fn fail_node_stopped(&mut self, node: &str, lease: std::time::Duration) {
        self.fail_retryable(format!(
            "the node {node} that ran this query stopped before it finished (no sign of life for over {} s); run it again",
            lease.as_secs().max(1)
        ));
    }

    fn wire(&self) -> Value {
        let mut status = json!({
            "State": self.state.as_str(),
            "SubmissionDateTime": seconds(self.submitted_ms),
        });
        if let Some(r) = &self.state_change_reason {
            status["StateChangeReason"] = json!(r);
        }
        if let Some(c) = self.completed_ms {
            status["CompletionDateTime"] = json!(seconds(c));
        }
        if let Some(f) = &self.failure {
            status["AthenaError"] = json!(f);
        }
        let now = now_ms();
        let queue_end = self.started_ms.or(self.completed_ms).unwrap_or(now);
        let end = self.completed_ms.unwrap_or(now);
        let statistics = json!({
            "EngineExecutionTimeInMillis": self.engine_ms.unwrap_or(0),
            "DataScannedInBytes": self.data_scanned,
            "TotalExecutionTimeInMillis": (end - self.submitted_ms).max(0),
            "QueryQueueTimeInMillis": (queue_end - self.submitted_ms).max(0),
            "ServicePreProcessingTimeInMillis": 0,
            "QueryPlanningTimeInMillis": 0,
            "ServiceProcessingTimeInMillis": self.service_ms.unwrap_or(0),
            "ResultReuseInformation": {"ReusedPreviousResult": false},
        });
        let mut result_configuration = json!(self.result_configuration);
        result_configuration["OutputLocation"] = json!(self.result_file());
        let mut v = json!({
            "QueryExecutionId": self.id,
            "Query": self.query,
            "StatementType": self.statement_type.as_str(),
            "ResultConfiguration": result_configuration,
            "ResultReuseConfiguration": {"ResultReuseByAgeConfiguration": {"Enabled": false}},
            "Status": status,
            "Statistics": statistics,
            "WorkGroup": self.workgroup,
            "EngineVersion": {
                "SelectedEngineVersion": self.selected_engine_version,
                "EffectiveEngineVersion": ENGINE_VERSION,
            },
        });
        if self.database.is_some() || self.catalog.is_some() {
            let mut context = serde_json::Map::new();
            if let Some(d) = &self.database {
                context.insert("Database".into(), json!(d));
            }
            if let Some(c) = &self.catalog {
                context.insert("Catalog".into(), json!(c));
            }
            v["QueryExecutionContext"] = Value::Object(context);
        }
        if !self.parameters.is_empty() {
            v["ExecutionParameters"] = json!(self.parameters);
        }
        if let Some(s) = &self.substatement_type {
            v["SubstatementType"] = json!(s);
        }
        v
    }
}

/// Guesses Athena's statement type (and substatement) from the SQL text,
/// before the engine has run it.
pub fn classify(sql: &str) -> (StatementType, Option<&'static str>) {
    static CTAS: OnceLock<Regex> = OnceLock::new();
    let text = strip_leading_comments(sql);
    let keyword: String = text
        .chars()
        .skip_while(|c| *c == '(' || c.is_whitespace())
        .take_while(|c| c.is_ascii_alphabetic())
        .collect::<String>()
        .to_ascii_uppercase();
    match keyword.as_str() {
        "SELECT" | "WITH" | "VALUES" | "TABLE" => (StatementType::Dml, Some("SELECT")),
        "INSERT" => (StatementType::Dml, Some("INSERT")),
        "UNLOAD" => (StatementType::Dml, Some("UNLOAD")),
        "MERGE" | "UPDATE" | "DELETE" => (StatementType::Dml, None),
        "SHOW" | "DESCRIBE" | "DESC" | "EXPLAIN" => (StatementType::Utility, None),
        "CREATE" => {
            let ctas = CTAS.get_or_init(|| {
                Regex::new(r"(?is)^\s*create\s+table\b.*?\bas\s*\(?\s*(select|with|values)\b")
                    .expect("valid regex")
            });
            if ctas.is_match(text) {
                (StatementType::Dml, Some("CREATE_TABLE_AS_SELECT"))
            } else {
                (StatementType::Ddl, None)
            }
        }
        _ => (StatementType::Ddl, None),
    }
}

fn strip_leading_comments(mut s: &str) -> &str {
    loop {
        s = s.trim_start();
        if let Some(rest) = s.strip_prefix("--") {
            s = rest.split_once('\n').map_or("", |(_, r)| r);
        } else if let Some(rest) = s.strip_prefix("/*") {
            s = rest.split_once("*/").map_or("", |(_, r)| r);
        } else {
            return s;
        }
    }
}

/// The output folder for `location`: a bucket root stays as it is, any
/// other prefix gets a trailing `/`.
pub fn output_folder(location: &str) -> Result<String, ApiError> {
    let parsed = Location::parse(location)
        .map_err(|e| ApiError::invalid(format!("ResultConfiguration.OutputLocation: {e}")))?;
    let key = parsed.key();
    Ok(if key.is_empty() || key.ends_with('/') {
        format!("s3://{}/{}", parsed.bucket(), key)
    } else {
        format!("s3://{}/{}/", parsed.bucket(), key)
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct ContextInput {
    database: Option<String>,
    catalog: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct ReuseByAge {
    enabled: Option<bool>,
    max_age_in_minutes: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct ReuseConfiguration {
    result_reuse_by_age_configuration: Option<ReuseByAge>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct StartInput {
    query_string: Option<String>,
    client_request_token: Option<String>,
    query_execution_context: Option<ContextInput>,
    result_configuration: Option<ResultConfiguration>,
    work_group: Option<String>,
    execution_parameters: Option<Vec<String>>,
    result_reuse_configuration: Option<ReuseConfiguration>,
}

pub(super) async fn start(
    api: &AthenaApi,
    body: &[u8],
    access: Option<&Arc<dyn TableAccess>>,
) -> Result<Value, ApiError> {
    let input: StartInput = parse(body)?;
    let query = required(input.query_string, "QueryString")?;
    if query.is_empty() || query.len() > MAX_QUERY_BYTES {
        return Err(ApiError::invalid(format!(
            "QueryString must be 1 to {MAX_QUERY_BYTES} bytes long, got {}",
            query.len()
        )));
    }
    if let Some(t) = &input.client_request_token {
        length(t, "ClientRequestToken", 32, 128)?;
    }
    let (database, catalog) = match input.query_execution_context {
        Some(c) => (c.database, c.catalog),
        None => (None, None),
    };
    if let Some(d) = &database {
        length(d, "QueryExecutionContext.Database", 1, 255)?;
    }
    if let Some(c) = &catalog {
        length(c, "QueryExecutionContext.Catalog", 1, 256)?;
    }
    let parameters = input.execution_parameters.unwrap_or_default();
    for (i, p) in parameters.iter().enumerate() {
        length(p, &format!("ExecutionParameters[{i}]"), 1, 1024)?;
    }
    if let Some(reuse) = input
        .result_reuse_configuration
        .and_then(|r| r.result_reuse_by_age_configuration)
    {
        if let Some(m) = reuse.max_age_in_minutes
            && !(0..=10_080).contains(&m)
        {
            return Err(ApiError::invalid(
                "ResultReuseConfiguration.ResultReuseByAgeConfiguration.MaxAgeInMinutes must be 0 to 10080",
            ));
        }
        if reuse.enabled == Some(true) {
            return Err(ApiError::invalid(
                "ResultReuseConfiguration: lakehose does not reuse query results; set Enabled to false",
            ));
        }
    }
    let client_result = input.result_configuration.unwrap_or_default();
    if let Some(loc) = &client_result.output_location {
        workgroups::validate_output_location(loc, "ResultConfiguration.OutputLocation")?;
    }
    let workgroup_name = input
        .work_group
        .unwrap_or_else(|| workgroups::PRIMARY.into());
    workgroups::validate_name(&workgroup_name, "WorkGroup")?;
    let workgroup = api.workgroup(&workgroup_name)?;
    if !workgroup.enabled() {
        return Err(ApiError::invalid(format!(
            "WorkGroup {workgroup_name} is disabled."
        )));
    }
    let workgroup_result = workgroup
        .configuration
        .result_configuration
        .clone()
        .unwrap_or_default();
    let result_configuration = if workgroup.enforced() && workgroup.output_location().is_some() {
        workgroup_result
    } else if client_result.output_location.is_some() {
        client_result.clone()
    } else if workgroup.output_location().is_some() {
        workgroup_result
    } else {
        client_result.clone()
    };
    let folder = output_folder(
        result_configuration
            .output_location
            .as_deref()
            .unwrap_or(&api.inner.config.default_output_location),
    )?;
    let fingerprint = json!({
        "QueryString": query,
        "Database": database,
        "Catalog": catalog,
        "OutputLocation": client_result.output_location,
        "WorkGroup": workgroup_name,
        "ExecutionParameters": parameters,
    })
    .to_string();
    let (statement_type, substatement) = classify(&query);
    let id = uuid::Uuid::new_v4().to_string();
    let record = Execution {
        node: api.node_id().map(str::to_string),
        id: id.clone(),
        query,
        statement_type,
        substatement_type: substatement.map(str::to_string),
        output_folder: folder,
        result_configuration,
        database,
        catalog,
        workgroup: workgroup_name,
        parameters,
        client_request_token: input.client_request_token.clone(),
        fingerprint: fingerprint.clone(),
        bytes_scanned_cutoff: workgroup.bytes_scanned_cutoff(),
        selected_engine_version: workgroup.selected_engine_version(),
        state: QueryState::Queued,
        state_change_reason: None,
        failure: None,
        submitted_ms: now_ms(),
        started_ms: None,
        completed_ms: None,
        engine_ms: None,
        service_ms: None,
        data_scanned: 0,
        update_count: None,
    };
    {
        let mut state = api.state();
        if let Some(token) = &input.client_request_token
            && let Some(existing) = state.tokens.get(token)
        {
            let same = state
                .executions
                .get(existing)
                .is_some_and(|e| e.fingerprint == fingerprint);
            if same {
                return Ok(json!({ "QueryExecutionId": existing }));
            }
            return Err(ApiError::invalid_with(
                "IDEMPOTENT_PARAMETER_MISMATCH",
                "ClientRequestToken was already used for a query execution with different parameters",
            ));
        }
        let active = state
            .executions
            .values()
            .filter(|e| e.state.is_active())
            .count();
        if active >= api.inner.config.queue_limit {
            return Err(ApiError::too_many_queries(format!(
                "You have exceeded the limit of {} queries queued or running at once",
                api.inner.config.queue_limit
            )));
        }
        if let Some(token) = &input.client_request_token {
            state.tokens.insert(token.clone(), id.clone());
        }
        state.executions.insert(id.clone(), record);
    }
    if let Err(e) = api.persist_execution(&id).await {
        let mut state = api.state();
        state.executions.remove(&id);
        if let Some(token) = &input.client_request_token {
            state.tokens.remove(token);
        }
        return Err(ApiError::internal(
            "could not record the query execution",
            &e,
        ));
    }
    {
        let mut state = api.state();
        // A StopQueryExecution may already have cancelled it.
        if state
            .executions
            .get(&id)
            .is_some_and(|e| e.state == QueryState::Queued)
        {
            let task = tokio::spawn(run(api.clone(), id.clone(), access.cloned()));
            state.tasks.insert(id.clone(), task.abort_handle());
        }
    }
    Ok(json!({ "QueryExecutionId": id }))
}

/// The task of one execution: wait for a slot, run, write results, record
/// the outcome. Aborting it (StopQueryExecution) drops the engine's future.
/// A panic anywhere in it fails the execution with the panic as its reason
/// (and frees its slot), instead of leaving it RUNNING.
async fn run(api: AthenaApi, id: String, access: Option<Arc<dyn TableAccess>>) {
    let attempt = std::panic::AssertUnwindSafe(run_guarded(api.clone(), id.clone(), access));
    let Err(payload) = attempt.catch_unwind().await else {
        return;
    };
    let error = panic_error(payload.as_ref());
    {
        let mut state = api.state();
        state.tasks.remove(&id);
        let Some(e) = state.executions.get_mut(&id) else {
            return;
        };
        if !e.state.is_active() {
            return;
        }
        fail(e, &error);
    }
    if let Err(e) = api.persist_execution(&id).await {
        tracing::error!(query_execution_id = %id, error = %e, "Could not record a failed Athena query.");
    }
}

/// How an execution's run ended.
enum Ended {
    /// The rows are in the result file.
    Written {
        substatement_type: String,
        update_count: Option<u64>,
        bytes_scanned: u64,
        service_ms: i64,
    },
    /// The engine failed (before or while sending rows).
    Query(QueryError),
    /// The result file could not be written.
    Write { message: String, service_ms: i64 },
}

async fn run_guarded(api: AthenaApi, id: String, access: Option<Arc<dyn TableAccess>>) {
    let Ok(_permit) = api.inner.slots.clone().acquire_owned().await else {
        return;
    };
    let request = {
        let mut state = api.state();
        let Some(e) = state.executions.get_mut(&id) else {
            return;
        };
        if e.state != QueryState::Queued {
            return;
        }
        e.state = QueryState::Running;
        e.started_ms = Some(now_ms());
        QueryRequest {
            sql: e.query.clone(),
            database: e.database.clone(),
            catalog: e.catalog.clone(),
            parameters: e.parameters.clone(),
            bytes_scanned_cutoff: e.bytes_scanned_cutoff,
            dialect: lakehose_query::Dialect::Athena,
            access,
            // The Athena API has no session settings: the server's apply.
            settings: Vec::new(),
        }
    };
    // RUNNING is not written down: after a restart an execution recorded
    // as QUEUED or RUNNING is failed alike, so the write would only delay
    // the query.
    let started = Instant::now();
    let ended = match api.inner.runner.run_stream(request).await {
        Ok(output) => {
            let result_file = {
                let mut state = api.state();
                let Some(e) = state.executions.get_mut(&id) else {
                    return;
                };
                e.statement_type = output.statement_type;
                e.result_file()
            };
            write_results(&api, &result_file, output).await
        }
        Err(e) => Ended::Query(e),
    };
    let total_ms = started.elapsed().as_millis() as i64;
    let pruned = {
        let mut state = api.state();
        state.tasks.remove(&id);
        let Some(e) = state.executions.get_mut(&id) else {
            return;
        };
        if e.state != QueryState::Running {
            // Cancelled meanwhile.
            return;
        }
        match ended {
            Ended::Written {
                substatement_type,
                update_count,
                bytes_scanned,
                service_ms,
            } => {
                e.engine_ms = Some((total_ms - service_ms).max(0));
                e.service_ms = Some(service_ms);
                e.substatement_type = Some(substatement_type);
                e.data_scanned = bytes_scanned;
                e.update_count = update_count;
                e.finish(QueryState::Succeeded, None, None);
            }
            Ended::Write {
                message,
                service_ms,
            } => {
                e.engine_ms = Some((total_ms - service_ms).max(0));
                e.service_ms = Some(service_ms);
                e.finish(
                    QueryState::Failed,
                    Some(message.clone()),
                    Some(FailureInfo {
                        error_category: 1,
                        error_type: error_type::RESULT_WRITE,
                        retryable: true,
                        error_message: message,
                    }),
                );
            }
            Ended::Query(error) => {
                e.engine_ms = Some(total_ms);
                fail(e, &error);
            }
        }
        api.forget_excess(&mut state)
    };
    if let Err(e) = api.persist_execution(&id).await {
        tracing::error!(query_execution_id = %id, error = %e, "Could not record a finished Athena query.");
    }
    api.delete_records(pruned).await;
}

fn fail(e: &mut Execution, error: &QueryError) {
    if error.kind == QueryErrorKind::Cancelled {
        e.finish(QueryState::Cancelled, Some(error.message.clone()), None);
        return;
    }
    let error_type = error.code.athena_error_type();
    let retryable = error.kind == QueryErrorKind::Internal;
    e.finish(
        QueryState::Failed,
        Some(error.message.clone()),
        Some(FailureInfo {
            error_category: error.kind.athena_category(),
            error_type,
            retryable,
            error_message: error.message.clone(),
        }),
    );
}

/// Rendered bytes sent to the result file at a time.
const RESULT_CHUNK_BYTES: usize = 1 << 20;
/// The result file is written in parts of this size once it is larger.
const RESULT_PART_BYTES: usize = 8 << 20;

/// Writes the result file batch by batch as the rows arrive (parts of a
/// multipart upload past [`RESULT_PART_BYTES`]), then its metadata; a
/// write failure's message is the `StateChangeReason` (the cause goes to
/// the log).
async fn write_results(api: &AthenaApi, result_file: &str, mut output: QueryStream) -> Ended {
    let mut writer = results::ResultWriter::new(
        output.statement_type,
        &output.substatement_type,
        &output.schema,
        output.update_count,
    );
    let storage = &api.inner.storage;
    let location = match Location::parse(result_file) {
        Ok(l) => l,
        Err(e) => {
            return Ended::Write {
                message: format!("Unable to write query results to {result_file}: {e}"),
                service_ms: 0,
            };
        }
    };
    let write_failed = |e: &dyn std::fmt::Display, service_ms: i64| {
        tracing::error!(location = %result_file, error = %e, "Could not write Athena query results.");
        Ended::Write {
            message: format!("Unable to write query results to {result_file}"),
            service_ms,
        }
    };
    let mut file = BufWriter::with_capacity(
        std::sync::Arc::clone(storage.store()),
        location.object_path(),
        RESULT_PART_BYTES,
    )
    .with_max_concurrency(2);
    let mut service = std::time::Duration::ZERO;
    let ms = |d: std::time::Duration| d.as_millis() as i64;
    while let Some(batch) = output.batches.next().await {
        let batch = match batch {
            Ok(b) => b,
            Err(error) => {
                let _ = file.abort().await;
                return Ended::Query(error);
            }
        };
        let began = Instant::now();
        if let Err(e) = writer.push(&batch) {
            let _ = file.abort().await;
            tracing::error!(error = %e, "Could not format Athena query results.");
            return Ended::Write {
                message: format!("could not format the query results: {e}"),
                service_ms: ms(service + began.elapsed()),
            };
        }
        if writer.pending_bytes() >= RESULT_CHUNK_BYTES
            && let Err(e) = file.put(Bytes::from(writer.take())).await
        {
            let _ = file.abort().await;
            return write_failed(&e, ms(service + began.elapsed()));
        }
        service += began.elapsed();
    }
    let began = Instant::now();
    let rest = writer.take();
    if !rest.is_empty()
        && let Err(e) = file.put(Bytes::from(rest)).await
    {
        let _ = file.abort().await;
        return write_failed(&e, ms(service + began.elapsed()));
    }
    if let Err(e) = file.shutdown().await {
        return write_failed(&e, ms(service + began.elapsed()));
    }
    if let Err(e) = sync_local(storage, &location) {
        return write_failed(&e, ms(service + began.elapsed()));
    }
    let metadata = writer.finish();
    let metadata_bytes = serde_json::to_vec(&metadata).unwrap_or_default();
    let metadata_file = format!("{result_file}.metadata");
    let put = async {
        let loc = Location::parse(&metadata_file).map_err(|e| e.to_string())?;
        storage
            .put_durable(&loc.object_path(), Bytes::from(metadata_bytes))
            .await
            .map_err(|e| e.to_string())
    };
    if let Err(e) = put.await {
        return write_failed(&e, ms(service + began.elapsed()));
    }
    Ended::Written {
        substatement_type: output.substatement_type.clone(),
        update_count: output.update_count,
        bytes_scanned: output.bytes_scanned(),
        service_ms: ms(service + began.elapsed()),
    }
}

/// On a local folder, fsyncs a written object and its folder.
fn sync_local(storage: &lakehose_catalog::Storage, location: &Location) -> std::io::Result<()> {
    let Some(root) = storage.local_root() else {
        return Ok(());
    };
    let file = root.join(location.object_path().as_ref());
    std::fs::File::open(&file)?.sync_all()?;
    if let Some(dir) = file.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct IdInput {
    query_execution_id: Option<String>,
}

fn validate_id(id: &str) -> Result<(), ApiError> {
    length(id, "QueryExecutionId", 1, 128)?;
    if !id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(ApiError::invalid(format!(
            "QueryExecutionId {id:?} is not a valid query execution id"
        )));
    }
    Ok(())
}

fn not_found(id: &str) -> ApiError {
    ApiError::invalid(format!("QueryExecution {id} was not found"))
}

/// An execution by id: as this node knows it, or (started on another
/// node, or still running there) as the shared history has it now.
async fn lookup(api: &AthenaApi, id: &str) -> Result<Execution, ApiError> {
    validate_id(id)?;
    let known = api.state().executions.get(id).cloned();
    if let Some(e) = &known
        && !(e.state.is_active() && e.node.as_deref() != api.node_id())
    {
        return Ok(e.clone());
    }
    match api.load_execution(id).await {
        Some(mut e) => {
            if e.state.is_active()
                && let Some(node) = e.node.clone()
                && Some(node.as_str()) != api.node_id()
                && api.node_stopped(&node).await
            {
                e.fail_node_stopped(&node, api.node_lease());
            }
            Ok(e)
        }
        None => known.ok_or_else(|| not_found(id)),
    }
}

pub(super) async fn get(api: &AthenaApi, body: &[u8]) -> Result<Value, ApiError> {
    let input: IdInput = parse(body)?;
    let id = required(input.query_execution_id, "QueryExecutionId")?;
    let e = lookup(api, &id).await?;
    Ok(json!({ "QueryExecution": e.wire() }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct BatchInput {
    query_execution_ids: Option<Vec<String>>,
}

pub(super) async fn batch_get(api: &AthenaApi, body: &[u8]) -> Result<Value, ApiError> {
    let input: BatchInput = parse(body)?;
    let ids = required(input.query_execution_ids, "QueryExecutionIds")?;
    if ids.is_empty() || ids.len() > 50 {
        return Err(ApiError::invalid(format!(
            "QueryExecutionIds must hold 1 to 50 ids, got {}",
            ids.len()
        )));
    }
    let mut found = Vec::new();
    let mut unprocessed = Vec::new();
    for id in ids {
        match lookup(api, &id).await {
            Ok(e) => found.push(e.wire()),
            Err(err) => unprocessed.push(json!({
                "QueryExecutionId": id,
                "ErrorCode": "INVALID_INPUT",
                "ErrorMessage": err.message,
            })),
        }
    }
    Ok(json!({ "QueryExecutions": found, "UnprocessedQueryExecutionIds": unprocessed }))
}

pub(super) async fn stop(api: &AthenaApi, body: &[u8]) -> Result<Value, ApiError> {
    let input: IdInput = parse(body)?;
    let id = required(input.query_execution_id, "QueryExecutionId")?;
    validate_id(&id)?;
    let task = {
        let mut state = api.state();
        let e = state
            .executions
            .get_mut(&id)
            .ok_or_else(|| not_found(&id))?;
        if !e.state.is_active() {
            return Ok(json!({}));
        }
        e.finish(
            QueryState::Cancelled,
            Some("Query was cancelled by user".into()),
            None,
        );
        state.tasks.remove(&id)
    };
    if let Some(task) = task {
        task.abort();
    }
    api.persist_execution(&id)
        .await
        .map_err(|e| ApiError::internal("could not record the cancellation", &e))?;
    Ok(json!({}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct ListInput {
    next_token: Option<String>,
    max_results: Option<i64>,
    work_group: Option<String>,
}

pub(super) async fn list(api: &AthenaApi, body: &[u8]) -> Result<Value, ApiError> {
    let input: ListInput = parse(body)?;
    let max = match input.max_results {
        None | Some(0) => 50,
        Some(n) => input::max_results(Some(n), 0, 50, 50)?,
    };
    let token = input::next_token(input.next_token.as_deref())?;
    let after = match token {
        None => None,
        Some(t) => {
            let (ms, id) = t
                .split_once(':')
                .and_then(|(ms, id)| Some((ms.parse::<i64>().ok()?, id.to_string())))
                .ok_or_else(|| ApiError::invalid("NextToken is not valid"))?;
            Some((ms, id))
        }
    };
    let workgroup = input
        .work_group
        .unwrap_or_else(|| workgroups::PRIMARY.into());
    workgroups::validate_name(&workgroup, "WorkGroup")?;
    api.workgroup(&workgroup)?;
    let mut keys: Vec<(i64, String)> = api
        .state()
        .executions
        .values()
        .filter(|e| e.workgroup == workgroup)
        .map(|e| (e.submitted_ms, e.id.clone()))
        .collect();
    // Newest first.
    keys.sort_by(|a, b| b.cmp(a));
    let mut rest: Vec<(i64, String)> = keys
        .into_iter()
        .filter(|k| after.as_ref().is_none_or(|a| k < a))
        .collect();
    let more = rest.len() > max;
    rest.truncate(max);
    let next = more
        .then(|| rest.last().map(|(ms, id)| format!("{ms}:{id}")))
        .flatten();
    let ids: Vec<&String> = rest.iter().map(|(_, id)| id).collect();
    Ok(json!({ "QueryExecutionIds": ids, "NextToken": next }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct ResultsInput {
    query_execution_id: Option<String>,
    next_token: Option<String>,
    max_results: Option<i64>,
    query_result_type: Option<String>,
}

const TOKEN_PREFIX: &str = "row-";

pub(super) async fn results(
    api: &AthenaApi,
    body: &[u8],
) -> Result<axum::response::Response, ApiError> {
    let input: ResultsInput = parse(body)?;
    let id = required(input.query_execution_id, "QueryExecutionId")?;
    let max = input::max_results(input.max_results, 1, 1000, 1000)?;
    match input.query_result_type.as_deref() {
        None | Some("DATA_ROWS") => {}
        Some("DATA_MANIFEST") => {
            return Err(ApiError::invalid(
                "QueryResultType DATA_MANIFEST is not available: lakehose writes no data manifests",
            ));
        }
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "QueryResultType must be DATA_ROWS or DATA_MANIFEST, got {other:?}"
            )));
        }
    }
    let offset = match input::next_token(input.next_token.as_deref())? {
        None => 0,
        Some(t) => t
            .strip_prefix(TOKEN_PREFIX)
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| ApiError::invalid("NextToken is not valid"))?,
    };
    let e = lookup(api, &id).await?;
    match e.state {
        QueryState::Succeeded => {}
        QueryState::Queued | QueryState::Running => {
            return Err(ApiError::invalid_with(
                "INVALID_QUERY_EXECUTION_STATE",
                format!(
                    "Query has not yet finished. Current state: {}",
                    e.state.as_str()
                ),
            ));
        }
        QueryState::Failed | QueryState::Cancelled => {
            return Err(ApiError::invalid_with(
                "INVALID_QUERY_EXECUTION_STATE",
                format!(
                    "Query did not finish successfully. Final query state: {}",
                    e.state.as_str()
                ),
            ));
        }
    }
    let result_file = e.result_file();
    let metadata_bytes = read_object(api, &format!("{result_file}.metadata"), None).await?;
    let metadata: ResultMetadata = serde_json::from_slice(&metadata_bytes)
        .map_err(|err| ApiError::internal("the query's result metadata is unreadable", &err))?;
    let header = metadata.has_header();
    let total = metadata.row_count as usize + usize::from(header);
    if offset > total {
        return Err(ApiError::invalid("NextToken is not valid"));
    }
    // Display rows are the header (SELECT only) then the data rows.
    let with_header = header && offset == 0;
    let data_start = if header {
        offset.saturating_sub(1)
    } else {
        offset
    };
    let data_end = (data_start + max - usize::from(with_header)).min(metadata.row_count as usize);
    let mut rows: Vec<Vec<Option<String>>> = Vec::new();
    if with_header {
        rows.push(
            metadata
                .column_info
                .iter()
                .map(|c| Some(c.name.clone()))
                .collect(),
        );
    }
    rows.extend(read_rows(api, &result_file, &metadata, data_start, data_end).await?);
    let end = offset + rows.len();
    let next = (end < total).then(|| format!("{TOKEN_PREFIX}{end}"));
    // Serialized straight from the rows: a page is up to 1,000 rows, and
    // building a `serde_json::Value` tree for it first costs more than the
    // ranged read and the CSV parse together.
    let page = ResultsPage {
        update_count: metadata.update_count.unwrap_or(0),
        result_set: ResultSetPage {
            rows: rows.iter().map(|row| PageRow { data: row }).collect(),
            result_set_metadata: PageMetadata {
                column_info: &metadata.column_info,
            },
        },
        next_token: next,
    };
    Ok(crate::awsjson::ok_json(&page))
}

/// A GetQueryResults response.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ResultsPage<'a> {
    update_count: u64,
    result_set: ResultSetPage<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_token: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ResultSetPage<'a> {
    rows: Vec<PageRow<'a>>,
    result_set_metadata: PageMetadata<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct PageMetadata<'a> {
    column_info: &'a [crate::columns::ColumnInfo],
}

/// One row: `{"Data": [{"VarCharValue": "..."}, {}]}`, NULL as an empty
/// datum.
struct PageRow<'a> {
    data: &'a [Option<String>],
}

impl Serialize for PageRow<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry("Data", &Data(self.data))?;
        map.end()
    }
}

struct Data<'a>(&'a [Option<String>]);

impl Serialize for Data<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        struct Datum<'a>(Option<&'a str>);
        impl Serialize for Datum<'_> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut map = serializer.serialize_map(Some(usize::from(self.0.is_some())))?;
                if let Some(v) = self.0 {
                    map.serialize_entry("VarCharValue", v)?;
                }
                map.end()
            }
        }
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for v in self.0 {
            seq.serialize_element(&Datum(v.as_deref()))?;
        }
        seq.end()
    }
}

/// Data rows `start..end` of a result file, read with one ranged read
/// through the metadata's row index.
async fn read_rows(
    api: &AthenaApi,
    result_file: &str,
    metadata: &ResultMetadata,
    start: usize,
    end: usize,
) -> Result<Vec<Vec<Option<String>>>, ApiError> {
    if start >= end {
        return Ok(Vec::new());
    }
    let stride = results::INDEX_STRIDE as usize;
    let first_block = start / stride;
    let last_block = (end - 1) / stride;
    let index = &metadata.row_index;
    if last_block >= index.len() {
        return Err(ApiError::internal(
            "the query's result metadata is inconsistent",
            &format!("row index has {} entries, row {end} asked", index.len()),
        ));
    }
    let from = index[first_block];
    let to = index
        .get(last_block + 1)
        .copied()
        .unwrap_or(metadata.result_bytes);
    let data = read_object(api, result_file, Some(from..to)).await?;
    let text = String::from_utf8(data.to_vec())
        .map_err(|err| ApiError::internal("the query's result file is not UTF-8", &err))?;
    let rows = if metadata.is_text() {
        results::parse_text(&text)
    } else {
        results::parse_csv(&text)
            .map_err(|err| ApiError::internal("the query's result file is not valid CSV", &err))?
    };
    Ok(rows
        .into_iter()
        .skip(start - first_block * stride)
        .take(end - start)
        .collect())
}

async fn read_object(
    api: &AthenaApi,
    location: &str,
    range: Option<std::ops::Range<u64>>,
) -> Result<Bytes, ApiError> {
    let loc = Location::parse(location)
        .map_err(|e| ApiError::internal("a recorded result location is invalid", &e))?;
    let store = api.inner.storage.store();
    let path = loc.object_path();
    let read = match range {
        Some(range) => store.get_range(&path, range).await,
        None => match store.get(&path).await {
            Ok(r) => r.bytes().await,
            Err(e) => Err(e),
        },
    };
    match read {
        Ok(bytes) => Ok(bytes),
        Err(object_store::Error::NotFound { .. }) => Err(ApiError::invalid_with(
            "RESULT_NOT_FOUND",
            format!("Could not find results: {location} does not exist"),
        )),
        Err(e) => Err(ApiError::internal("could not read the query results", &e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_statements() {
        assert_eq!(classify("select 1").0, StatementType::Dml);
        assert_eq!(
            classify("  -- hi\n/* x */ WITH a AS (SELECT 1) SELECT * FROM a"),
            (StatementType::Dml, Some("SELECT"))
        );
        assert_eq!(classify("(SELECT 1)").1, Some("SELECT"));
        assert_eq!(classify("SHOW TABLES").0, StatementType::Utility);
        assert_eq!(classify("describe t").0, StatementType::Utility);
        assert_eq!(
            classify("CREATE EXTERNAL TABLE t (a int) LOCATION 's3://b/t/'").0,
            StatementType::Ddl
        );
        assert_eq!(
            classify("CREATE TABLE t WITH (format='PARQUET') AS SELECT * FROM u"),
            (StatementType::Dml, Some("CREATE_TABLE_AS_SELECT"))
        );
        assert_eq!(classify("INSERT INTO t SELECT 1").1, Some("INSERT"));
        assert_eq!(classify("MSCK REPAIR TABLE t").0, StatementType::Ddl);
    }

    #[test]
    fn output_folders_end_in_a_slash() {
        assert_eq!(
            output_folder("s3://b-1/results").unwrap(),
            "s3://b-1/results/"
        );
        assert_eq!(
            output_folder("s3://b-1/results/").unwrap(),
            "s3://b-1/results/"
        );
        assert_eq!(output_folder("s3://b-1").unwrap(), "s3://b-1/");
        assert!(output_folder("file:///tmp").is_err());
    }

    #[test]
    fn ids_are_validated() {
        assert!(validate_id("0b3c1f7e-1111-4a2b-9c3d-123456789abc").is_ok());
        assert!(validate_id("../x").is_err());
        assert!(validate_id("").is_err());
    }
}
