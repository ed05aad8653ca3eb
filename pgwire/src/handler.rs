//! The simple and extended query protocols on top of a [`SqlRunner`].

use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::BytesMut;
use datafusion::arrow::array::{Array, ArrayRef};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use futures::stream::{self, BoxStream};
use futures::{FutureExt, Sink, SinkExt, StreamExt};
use pgwire::api::portal::{Format, Portal, PortalExecutionState};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler, send_execution_response};
use pgwire::api::results::{
    DescribePortalResponse, DescribeStatementResponse, FieldFormat, FieldInfo, QueryResponse,
    Response, Tag,
};
use pgwire::api::stmt::{QueryParser, StoredStatement};
use pgwire::api::store::{Entry, PortalStore};
use pgwire::api::{
    ClientInfo, ClientPortalStore, ConnectionHandle, DEFAULT_NAME, METADATA_APPLICATION_NAME,
    METADATA_DATABASE, METADATA_USER, PgWireConnectionState, Type,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::data::DataRow;
use pgwire::messages::extendedquery::Execute;
use pgwire::messages::response::EmptyQueryResponse;

use crate::StatementAudit;
use crate::encode::{encode_field, normalize};
use crate::params::{describe_literal, in_limit_clause, infer_types, literal};
use crate::session::{self, Local, LocalResult, Session};
use lakehose_query::contract::{
    QueryError, QueryOutput, QueryRequest, QueryStream, SqlRunner, StatementType, panic_error,
};
use lakehose_query::postgres::types::{arrow_type_for, pg_field_type};
use lakehose_query::sql_text::{
    MAX_PARAMETERS, first_keyword, placeholders, split_statements, substitute, trim_statement,
};

/// A statement's failure, boxed as it travels through `Result`s.
type Failure = Box<ErrorInfo>;

fn error(code: &str, message: impl Into<String>) -> Failure {
    Box::new(ErrorInfo::new(
        "ERROR".to_string(),
        code.to_string(),
        message.into(),
    ))
}

fn query_error(err: &QueryError) -> Failure {
    error(err.code.sqlstate(), err.message.clone())
}

/// Result rows as they arrive from the engine.
type Batches = BoxStream<'static, Result<RecordBatch, Failure>>;

/// What one statement produced.
enum Outcome {
    Rows(SchemaRef, Batches),
    Command(Tag),
    Begin(Tag),
    End(Tag),
}

/// Whether a statement returns rows, judged from its first keyword.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// SELECT, WITH, VALUES, TABLE, parenthesised queries.
    Query,
    /// SHOW, DESCRIBE, EXPLAIN: rows, and cheap enough to run to describe.
    Utility,
    /// DDL, INSERT, CTAS, ...: a command tag only.
    Command,
}

fn shape(sql: &str) -> Shape {
    match first_keyword(sql).as_str() {
        "select" | "with" | "values" | "table" | "(" => Shape::Query,
        "show" | "describe" | "desc" | "explain" => Shape::Utility,
        _ => Shape::Command,
    }
}

/// The command tag for a statement that returns no rows.
fn command_tag(output: &QueryStream, sql: &str) -> Tag {
    let sub = output.substatement_type.to_uppercase();
    if let Some(n) = output.update_count {
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        return match sub.as_str() {
            "INSERT" | "INSERT_INTO" => Tag::new("INSERT").with_oid(0).with_rows(n),
            "UPDATE" | "DELETE" | "MERGE" => Tag::new(&sub).with_rows(n),
            _ => Tag::new("SELECT").with_rows(n),
        };
    }
    if !sub.is_empty() {
        return Tag::new(&sub.replace('_', " "));
    }
    let words: Vec<String> = sql
        .split_whitespace()
        .take(2)
        .map(str::to_uppercase)
        .collect();
    match output.statement_type {
        StatementType::Ddl => Tag::new(&words.join(" ")),
        _ => Tag::new(words.first().map(String::as_str).unwrap_or("OK")),
    }
}

/// A statement prepared with Parse.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    sql: String,
    parameter_types: Vec<Type>,
    /// The result columns announced by Describe: `Some(None)` for no rows.
    described: Arc<Mutex<Option<Option<SchemaRef>>>>,
}

impl Prepared {
    fn described(&self) -> Option<Option<SchemaRef>> {
        self.described.lock().map(|d| d.clone()).unwrap_or(None)
    }

    fn remember(&self, schema: Option<SchemaRef>) {
        if let Ok(mut d) = self.described.lock() {
            *d = Some(schema);
        }
    }
}

/// Parses statements for the extended protocol.
#[derive(Debug, Default)]
pub(crate) struct Parser;

#[async_trait]
impl QueryParser for Parser {
    type Statement = Prepared;

    async fn parse_sql<C>(
        &self,
        _client: &C,
        sql: &str,
        types: &[Option<Type>],
    ) -> PgWireResult<Option<Prepared>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let statements = split_statements(sql);
        if statements.len() > 1 {
            return Err(user_error(error(
                "42601",
                "cannot insert multiple commands into a prepared statement",
            )));
        }
        let Some(statement) = statements.first() else {
            return Ok(None);
        };
        let sql = trim_statement(statement).to_string();
        let placeholders = placeholders(&sql);
        let used = placeholders.iter().map(|p| p.number).max().unwrap_or(0);
        if used > MAX_PARAMETERS || placeholders.iter().any(|p| p.number == 0) {
            return Err(user_error(error("42P02", "invalid parameter number")));
        }
        let count = used.max(types.len());
        let inferred = infer_types(&sql, &placeholders, count);
        let parameter_types = inferred
            .into_iter()
            .enumerate()
            .map(|(i, guess)| match types.get(i) {
                Some(Some(t)) if *t != Type::UNKNOWN => t.clone(),
                _ => guess,
            })
            .collect();
        Ok(Some(Prepared {
            sql,
            parameter_types,
            described: Arc::new(Mutex::new(None)),
        }))
    }

    fn get_parameter_types(&self, stmt: &Prepared) -> PgWireResult<Vec<Type>> {
        Ok(stmt.parameter_types.clone())
    }

    fn get_result_schema(
        &self,
        _stmt: &Prepared,
        _column_format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        // Result columns come from running or planning the statement, which
        // the asynchronous describe handlers do.
        Ok(Vec::new())
    }
}

fn user_error(info: Failure) -> PgWireError {
    PgWireError::UserError(info)
}

fn format_at(format: &Format, idx: usize) -> FieldFormat {
    match format {
        Format::UnifiedText => FieldFormat::Text,
        Format::UnifiedBinary => FieldFormat::Binary,
        Format::Individual(codes) => codes
            .get(idx)
            .copied()
            .map(FieldFormat::from)
            .unwrap_or(FieldFormat::Text),
    }
}

fn fields(schema: &Schema, format: &Format) -> Vec<FieldInfo> {
    schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            FieldInfo::new(
                f.name().clone(),
                None,
                None,
                pg_field_type(f),
                format_at(format, i),
            )
        })
        .collect()
}

/// Streams the rows of `batches` as DataRows, batch by batch as they
/// arrive. An error (or a panic while encoding) ends the stream with an
/// ErrorResponse after the rows already sent.
fn row_stream(
    batches: Batches,
    schema: Arc<Vec<FieldInfo>>,
) -> impl futures::Stream<Item = PgWireResult<DataRow>> + Send + 'static {
    let rows = batches.flat_map(move |batch| {
        let batch = match batch {
            Ok(b) => b,
            Err(info) => return stream::iter(vec![Err(user_error(info))]).boxed(),
        };
        let columns: Result<Vec<ArrayRef>, _> = batch.columns().iter().map(normalize).collect();
        let schema = schema.clone();
        let (columns, failure) = match columns {
            Ok(c) => (c, None),
            Err(e) => (Vec::new(), Some(e)),
        };
        let n = if failure.is_some() {
            1
        } else {
            batch.num_rows()
        };
        let rows = (0..n).map(move |row| {
            if let Some(e) = &failure {
                return Err(user_error(error("XX000", e.to_string())));
            }
            let mut buf = BytesMut::with_capacity(64);
            for (col, field) in columns.iter().zip(schema.iter()) {
                encode_field(
                    col.as_ref(),
                    row,
                    field.datatype(),
                    field.format(),
                    &mut buf,
                );
            }
            Ok(DataRow::new(buf, columns.len() as i16))
        });
        stream::iter(rows).boxed()
    });
    std::panic::AssertUnwindSafe(rows)
        .catch_unwind()
        .map(|row| match row {
            Ok(row) => row,
            Err(payload) => Err(user_error(query_error(&panic_error(payload.as_ref())))),
        })
        .scan(false, |failed, row| {
            // Nothing after an error.
            if *failed {
                return futures::future::ready(None);
            }
            *failed = row.is_err();
            futures::future::ready(Some(row))
        })
}

/// Brings `batches` to the column types announced in `target`, so binary
/// values decode as the client expects (batch by batch, as they arrive).
fn conform(
    batches: Batches,
    schema: &SchemaRef,
    target: &SchemaRef,
) -> Result<(SchemaRef, Batches), Failure> {
    if schema.fields().len() != target.fields().len() {
        return Err(error(
            "0A000",
            "the statement's result columns changed since it was described",
        ));
    }
    let mut needs_cast = false;
    let mut new_fields = Vec::new();
    for (have, want) in schema.fields().iter().zip(target.fields().iter()) {
        let want_pg = pg_field_type(want);
        if pg_field_type(have) == want_pg {
            new_fields.push(have.as_ref().clone());
        } else {
            needs_cast = true;
            let to = arrow_type_for(&want_pg).unwrap_or_else(|| want.data_type().clone());
            new_fields.push(Field::new(have.name(), to, true));
        }
    }
    if !needs_cast {
        return Ok((schema.clone(), batches));
    }
    let new_schema = Arc::new(Schema::new(new_fields));
    let cast_to = new_schema.clone();
    let out = batches
        .map(move |batch| {
            let batch = batch?;
            let columns = batch
                .columns()
                .iter()
                .zip(cast_to.fields().iter())
                .map(|(c, f)| {
                    if c.data_type() == f.data_type() {
                        Ok(c.clone())
                    } else {
                        normalize(c).and_then(|c| cast(&c, f.data_type()))
                    }
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| error("22000", format!("cannot convert result column: {e}")))?;
            RecordBatch::try_new(cast_to.clone(), columns)
                .map_err(|e| error("XX000", e.to_string()))
        })
        .boxed();
    Ok((new_schema, out))
}

/// Runs a stream of rows to its end, counting them.
async fn drain(mut batches: Batches) -> Result<usize, Failure> {
    let mut n = 0;
    while let Some(batch) = batches.next().await {
        n += batch?.num_rows();
    }
    Ok(n)
}

/// Serves queries of every connection.
pub(crate) struct Queries {
    runner: Arc<dyn SqlRunner>,
    parser: Arc<Parser>,
    audit: Option<Arc<dyn StatementAudit>>,
    passwords: Option<Arc<dyn crate::Passwords>>,
}

impl std::fmt::Debug for Queries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queries")
            .field("runner", &self.runner)
            .field("audit", &self.audit)
            .finish_non_exhaustive()
    }
}

type SessionRef = Arc<Mutex<Session>>;

fn session_of<C: ClientInfo + ?Sized>(client: &C) -> SessionRef {
    let metadata = client.metadata();
    let database = metadata.get(METADATA_DATABASE).cloned();
    let application = metadata.get(METADATA_APPLICATION_NAME).cloned();
    let pid = client.pid_and_secret_key().0;
    let user = metadata.get(METADATA_USER).cloned().unwrap_or_default();
    let slot = client.session_extensions().get_or_insert_with(|| {
        let mut session = Session::new(database.as_deref(), application.as_deref(), pid);
        session.user = user;
        Arc::new(Mutex::new(session))
    });
    (*slot).clone()
}

fn user_of<C: ClientInfo + ?Sized>(client: &C) -> String {
    client
        .metadata()
        .get(METADATA_USER)
        .cloned()
        .unwrap_or_default()
}

impl Queries {
    pub(crate) fn new(
        runner: Arc<dyn SqlRunner>,
        audit: Option<Arc<dyn StatementAudit>>,
        passwords: Option<Arc<dyn crate::Passwords>>,
    ) -> Self {
        Self {
            runner,
            parser: Arc::new(Parser),
            audit,
            passwords,
        }
    }

    /// Tells the audit about a statement that changed something (DDL, and
    /// DML other than a plain SELECT).
    fn audit(&self, session: &SessionRef, kind: StatementType, substatement: &str, sql: &str) {
        let Some(audit) = &self.audit else {
            return;
        };
        let changes = match kind {
            StatementType::Ddl => true,
            StatementType::Dml => !substatement.eq_ignore_ascii_case("SELECT"),
            StatementType::Utility => false,
        };
        if changes {
            let user = session.lock().map(|s| s.user.clone()).unwrap_or_default();
            audit.statement(&user, substatement, sql);
        }
    }

    fn database(session: &SessionRef) -> Option<String> {
        session.lock().ok().and_then(|s| s.database.clone())
    }

    fn request(&self, session: &SessionRef, sql: &str) -> QueryRequest {
        let mut request = QueryRequest::new(sql, Self::database(session).as_deref());
        request.dialect = lakehose_query::Dialect::Postgres;
        request.settings = session
            .lock()
            .map(|s| s.query_settings())
            .unwrap_or_default();
        if let Some(passwords) = self.passwords.as_ref().filter(|p| p.required()) {
            let user = session.lock().map(|s| s.user.clone()).unwrap_or_default();
            request.access = passwords.access(&user);
        }
        tracing::debug!(database = ?request.database, "postgres statement");
        request
    }

    /// Runs a statement whose result is small (describing), held whole;
    /// a panic is an internal error.
    async fn engine(&self, session: &SessionRef, sql: &str) -> Result<QueryOutput, Failure> {
        let run = std::panic::AssertUnwindSafe(self.runner.run(self.request(session, sql)));
        let output = match run.catch_unwind().await {
            Ok(result) => result.map_err(|e| query_error(&e))?,
            Err(payload) => return Err(query_error(&panic_error(payload.as_ref()))),
        };
        self.audit(
            session,
            output.statement_type,
            &output.substatement_type,
            sql,
        );
        Ok(output)
    }

    /// Runs a statement, its rows streamed.
    async fn engine_stream(&self, session: &SessionRef, sql: &str) -> Result<QueryStream, Failure> {
        let stream = self
            .runner
            .run_stream(self.request(session, sql))
            .await
            .map_err(|e| query_error(&e))?;
        self.audit(
            session,
            stream.statement_type,
            &stream.substatement_type,
            sql,
        );
        Ok(stream)
    }

    fn local(command: &Local, session: &SessionRef, user: &str) -> Result<Outcome, Failure> {
        let mut guard = session
            .lock()
            .map_err(|_| error("XX000", "session state is unavailable"))?;
        match session::run(command, &mut guard, user) {
            Ok(LocalResult::Rows(schema, batch)) => {
                Ok(Outcome::Rows(schema, stream::iter([Ok(batch)]).boxed()))
            }
            Ok(LocalResult::Tag(tag)) => Ok(Outcome::Command(Tag::new(tag))),
            Ok(LocalResult::Begin(tag)) => Ok(Outcome::Begin(Tag::new(tag))),
            Ok(LocalResult::End(tag)) => Ok(Outcome::End(Tag::new(tag))),
            Err((code, message)) => Err(error(code, message)),
        }
    }

    /// Runs one statement (parameters already substituted); a panic while
    /// planning or running it is the statement's error (`XX000`), and the
    /// connection goes on.
    async fn run(&self, session: &SessionRef, user: &str, sql: &str) -> Result<Outcome, Failure> {
        match std::panic::AssertUnwindSafe(self.run_unguarded(session, user, sql))
            .catch_unwind()
            .await
        {
            Ok(outcome) => outcome,
            Err(payload) => Err(query_error(&panic_error(payload.as_ref()))),
        }
    }

    async fn run_unguarded(
        &self,
        session: &SessionRef,
        user: &str,
        sql: &str,
    ) -> Result<Outcome, Failure> {
        if let Some(command) = session::parse(sql) {
            return Self::local(&command, session, user);
        }
        let mut output = self.engine_stream(session, sql).await?;
        let returns_rows = output.update_count.is_none()
            && !output.schema.fields().is_empty()
            && shape(sql) != Shape::Command;
        let tag = (!returns_rows).then(|| command_tag(&output, sql));
        let batches = std::mem::replace(&mut output.batches, stream::empty().boxed())
            .map(|b| b.map_err(|e| query_error(&e)))
            .boxed();
        match tag {
            None => Ok(Outcome::Rows(output.schema, batches)),
            Some(tag) => {
                // Runs to its end: dropping the stream would cancel it.
                drain(batches).await?;
                Ok(Outcome::Command(tag))
            }
        }
    }

    /// The result columns of `sql` (parameters substituted), without running
    /// it when it is a query: the query is wrapped in `LIMIT 0`, which the
    /// engine plans without scanning. SHOW/DESCRIBE/EXPLAIN run as they are.
    async fn describe(
        &self,
        session: &SessionRef,
        user: &str,
        sql: &str,
    ) -> Result<Option<SchemaRef>, Failure> {
        if let Some(command) = session::parse(sql) {
            if !session::is_read_only(&command) {
                return Ok(None);
            }
            return match Self::local(&command, session, user)? {
                Outcome::Rows(schema, _) => Ok(Some(schema)),
                _ => Ok(None),
            };
        }
        let schema = match shape(sql) {
            Shape::Command => return Ok(None),
            Shape::Utility => self.engine(session, sql).await?.schema,
            Shape::Query => {
                let probe = format!("SELECT * FROM (\n{sql}\n) AS lakehose_describe LIMIT 0");
                match self.engine(session, &probe).await {
                    Ok(output) => output.schema,
                    // Some queries cannot be a subquery (duplicate column
                    // names); run them as they are.
                    Err(_) => self.engine(session, sql).await?.schema,
                }
            }
        };
        Ok((!schema.fields().is_empty()).then_some(schema))
    }

    fn describe_sql(stmt: &Prepared) -> String {
        substitute(&stmt.sql, |p| {
            let ty = stmt
                .parameter_types
                .get(p.number - 1)
                .cloned()
                .unwrap_or(Type::TEXT);
            Ok::<_, ()>(describe_literal(&ty, in_limit_clause(&stmt.sql, p)))
        })
        .unwrap_or_else(|_| stmt.sql.clone())
    }

    fn bind(stmt: &Prepared, portal: &Portal<Prepared>) -> Result<String, Failure> {
        let expected = stmt.parameter_types.len();
        if portal.parameters.len() != expected {
            return Err(error(
                "08P01",
                format!(
                    "bind message supplies {} parameters, but prepared statement requires {expected}",
                    portal.parameters.len()
                ),
            ));
        }
        if let Format::Individual(codes) = &portal.parameter_format
            && codes.len() != expected
        {
            return Err(error(
                "08P01",
                format!(
                    "bind message has {} parameter formats but {expected} parameters",
                    codes.len()
                ),
            ));
        }
        substitute(&stmt.sql, |p| {
            let idx = p.number - 1;
            let ty = &stmt.parameter_types[idx];
            let value = portal.parameters[idx].as_deref();
            literal(
                p.number,
                ty,
                format_at(&portal.parameter_format, idx),
                value,
            )
            .map_err(|e| error(e.code, e.message))
        })
    }

    fn respond(outcome: Outcome, format: &Format) -> Response {
        match outcome {
            Outcome::Rows(schema, batches) => {
                let fields = Arc::new(fields(&schema, format));
                Response::Query(QueryResponse::new(
                    fields.clone(),
                    row_stream(batches, fields),
                ))
            }
            Outcome::Command(tag) => Response::Execution(tag),
            Outcome::Begin(tag) => Response::TransactionStart(tag),
            Outcome::End(tag) => Response::TransactionEnd(tag),
        }
    }
}

#[async_trait]
impl SimpleQueryHandler for Queries {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let session = session_of(client);
        let user = user_of(client);
        let statements = split_statements(query);
        if statements.is_empty() {
            return Ok(vec![Response::EmptyQuery]);
        }
        let mut responses = Vec::with_capacity(statements.len());
        for statement in statements {
            match self.run(&session, &user, statement).await {
                Ok(outcome) => responses.push(Self::respond(outcome, &Format::UnifiedText)),
                Err(info) => {
                    // Like Postgres, the rest of the query string is skipped.
                    responses.push(Response::Error(info));
                    break;
                }
            }
        }
        Ok(responses)
    }
}

#[async_trait]
impl ExtendedQueryHandler for Queries {
    type Statement = Prepared;
    type QueryParser = Parser;

    fn query_parser(&self) -> Arc<Parser> {
        self.parser.clone()
    }

    async fn do_describe_statement<C>(
        &self,
        client: &mut C,
        target: &StoredStatement<Prepared>,
    ) -> PgWireResult<DescribeStatementResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Prepared>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let stmt = &target.statement;
        let session = session_of(client);
        let user = user_of(client);
        let schema = self
            .describe(&session, &user, &Self::describe_sql(stmt))
            .await
            .map_err(user_error)?;
        stmt.remember(schema.clone());
        let fields = schema
            .map(|s| fields(&s, &Format::UnifiedText))
            .unwrap_or_default();
        Ok(DescribeStatementResponse::new(
            stmt.parameter_types.clone(),
            fields,
        ))
    }

    async fn do_describe_portal<C>(
        &self,
        client: &mut C,
        portal: &Portal<Prepared>,
    ) -> PgWireResult<DescribePortalResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Prepared>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let stmt = &portal.statement.statement;
        let schema = match stmt.described() {
            Some(schema) => schema,
            None => {
                let session = session_of(client);
                let user = user_of(client);
                let sql = Self::bind(stmt, portal).map_err(user_error)?;
                let schema = self
                    .describe(&session, &user, &sql)
                    .await
                    .map_err(user_error)?;
                stmt.remember(schema.clone());
                schema
            }
        };
        let fields = schema
            .map(|s| fields(&s, &portal.result_column_format))
            .unwrap_or_default();
        Ok(DescribePortalResponse::new(fields))
    }

    /// An Execute without a row limit streams its rows as they come.
    /// (pgwire's own Execute gathers every row of such a portal into one
    /// vector before sending the first: a `SELECT *` of a large table would
    /// be held whole.) An Execute with a row limit, or one resuming a
    /// suspended portal, takes pgwire's way, which holds at most that many
    /// rows.
    async fn on_execute<C>(&self, client: &mut C, message: Execute) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if message.max_rows != 0 || !matches!(client.state(), PgWireConnectionState::ReadyForQuery)
        {
            return self._on_execute(client, message).await;
        }
        let name = message.name.as_deref().unwrap_or(DEFAULT_NAME);
        let portal = match client.portal_store().get_portal(name) {
            Some(Entry::Value(portal)) => portal,
            _ => return self._on_execute(client, message).await,
        };
        if !matches!(*portal.state().lock().await, PortalExecutionState::Initial) {
            return self._on_execute(client, message).await;
        }
        let mut transaction = client.transaction_status();
        client.set_state(PgWireConnectionState::QueryInProgress);
        let cancelled = match client.session_extensions().get::<Arc<ConnectionHandle>>() {
            Some(handle) => Some(handle.start_query().await),
            None => None,
        };
        let run = async {
            match ExtendedQueryHandler::do_query(self, client, portal.as_ref(), 0).await? {
                Response::Query(mut response) => {
                    let tag = response.command_tag().to_owned();
                    let mut rows = 0usize;
                    let data_rows = response.data_rows();
                    while let Some(row) = data_rows.next().await {
                        client.feed(PgWireBackendMessage::DataRow(row?)).await?;
                        rows += 1;
                    }
                    client
                        .send(PgWireBackendMessage::CommandComplete(
                            Tag::new(&tag).with_rows(rows).into(),
                        ))
                        .await?;
                }
                Response::EmptyQuery => {
                    client
                        .feed(PgWireBackendMessage::EmptyQueryResponse(
                            EmptyQueryResponse::new(),
                        ))
                        .await?;
                }
                Response::Execution(tag) => send_execution_response(client, tag).await?,
                Response::TransactionStart(tag) => {
                    send_execution_response(client, tag).await?;
                    transaction = transaction.to_in_transaction_state();
                }
                Response::TransactionEnd(tag) => {
                    send_execution_response(client, tag).await?;
                    transaction = transaction.to_idle_state();
                    client.portal_store().rm_portal(DEFAULT_NAME);
                }
                Response::Error(err) => {
                    client
                        .send(PgWireBackendMessage::ErrorResponse((*err).into()))
                        .await?;
                    transaction = transaction.to_error_state();
                }
                Response::CopyIn(_) | Response::CopyOut(_) | Response::CopyBoth(_) => {
                    return Err(user_error(error("0A000", "COPY is not supported")));
                }
            }
            Ok::<(), PgWireError>(())
        };
        match cancelled {
            Some(cancelled) => {
                tokio::pin!(run);
                match futures::future::select(run, cancelled).await {
                    futures::future::Either::Left((result, _)) => result?,
                    futures::future::Either::Right(_) => return Err(PgWireError::QueryCanceled),
                }
            }
            None => run.await?,
        }
        // Finished: a later Execute of this portal sends nothing more.
        *portal.state().lock().await = PortalExecutionState::Finished;
        client.set_state(PgWireConnectionState::ReadyForQuery);
        client.set_transaction_status(transaction);
        Ok(())
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Prepared>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Prepared>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let stmt = &portal.statement.statement;
        let session = session_of(client);
        let user = user_of(client);
        let sql = Self::bind(stmt, portal).map_err(user_error)?;
        let outcome = self.run(&session, &user, &sql).await.map_err(user_error)?;
        let outcome = match (outcome, stmt.described()) {
            // Described as returning nothing: report the row count only.
            (Outcome::Rows(_, batches), Some(None)) => {
                let n = drain(batches).await.map_err(user_error)?;
                Outcome::Command(Tag::new("SELECT").with_rows(n))
            }
            (Outcome::Rows(schema, batches), Some(Some(target))) => {
                let (schema, batches) = conform(batches, &schema, &target).map_err(user_error)?;
                Outcome::Rows(schema, batches)
            }
            (other, _) => other,
        };
        Ok(Self::respond(outcome, &portal.result_column_format))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pg_statement_shapes() {
        assert_eq!(shape("  select 1"), Shape::Query);
        assert_eq!(shape("WITH a AS (SELECT 1) SELECT * FROM a"), Shape::Query);
        assert_eq!(shape("SHOW TABLES"), Shape::Utility);
        assert_eq!(shape("CREATE TABLE t AS SELECT 1"), Shape::Command);
    }

    #[test]
    fn pg_bind_rejects_wrong_counts() {
        let stmt = Prepared {
            sql: "SELECT $1".into(),
            parameter_types: vec![Type::TEXT],
            described: Arc::new(Mutex::new(None)),
        };
        let bind = |parameters: Vec<Option<bytes::Bytes>>| {
            pgwire::messages::extendedquery::Bind::new(None, None, vec![], parameters, vec![])
        };
        let stored = Arc::new(StoredStatement::new("s".into(), stmt.clone(), vec![]));
        let portal = Portal::try_new(&bind(vec![]), stored.clone()).unwrap();
        assert_eq!(Queries::bind(&stmt, &portal).unwrap_err().code, "08P01");
        let portal = Portal::try_new(&bind(vec![Some("x'y".into())]), stored).unwrap();
        assert_eq!(Queries::bind(&stmt, &portal).unwrap(), "SELECT 'x''y'");
    }
}
