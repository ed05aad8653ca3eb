//! `lakehose query` (one-shot) and `lakehose sql` (interactive): SQL against
//! the local data folder, or against a running server through the Athena
//! API.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use lakehose_catalog::CatalogRef;
use lakehose_query::sql_text::split_statements;
use lakehose_query::{EngineConfig, QueryEngine, QueryRequest};

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned table with a summary line.
    Table,
    /// CSV with a header line.
    Csv,
    /// One JSON object per line.
    Json,
    /// A Parquet file (needs --output).
    Parquet,
}

/// Where statements run.
#[derive(Debug, Clone, clap::Args)]
pub struct Target {
    /// The warehouse folder to query directly (ignored with --endpoint).
    #[arg(long, env = "LAKEHOSE_DATA_DIR", default_value = "./lakehose-data")]
    pub data_dir: PathBuf,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub storage: crate::storage_args::StorageArgs,

    /// A running lakehose (or Athena-compatible) endpoint, e.g.
    /// http://127.0.0.1:4570; statements then go through the Athena API,
    /// signed with AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
    /// AWS_SESSION_TOKEN (`lakehose admin keys create` makes a key).
    #[arg(long, env = "LAKEHOSE_ENDPOINT")]
    pub endpoint: Option<String>,

    /// The key to sign with, given by the program (the demo's own key)
    /// instead of the environment.
    #[arg(skip)]
    pub credentials: Option<(String, String)>,

    /// The current database.
    #[arg(long, short = 'd', default_value = "default")]
    pub database: String,

    /// Athena workgroup (with --endpoint).
    #[arg(long, default_value = "primary")]
    pub workgroup: String,

    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,

    /// Write results to this file instead of standard output.
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,

    /// Memory for joins, sorts and aggregations before they spill to disk,
    /// in MiB (local mode).
    #[arg(long, default_value_t = 4096)]
    pub memory_limit_mb: usize,

    /// MiB a result may take in memory: the CLI holds a whole result to
    /// print it; a larger one fails with an error saying so (use LIMIT, or
    /// a Postgres client, which streams).
    #[arg(long = "max-held-result-mb", env = "LAKEHOSE_MAX_HELD_RESULT_MB", default_value_t = (lakehose_query::stream::DEFAULT_MAX_HELD_RESULT_BYTES >> 20) as u64)]
    pub max_result_mb: u64,
}

impl Target {
    fn max_result_bytes(&self) -> usize {
        usize::try_from(self.max_result_mb.max(1))
            .unwrap_or(usize::MAX >> 20)
            .saturating_mul(1 << 20)
    }
}

/// `lakehose query`.
#[derive(Debug, clap::Args)]
pub struct QueryConfig {
    /// The SQL to run (several statements separated by `;` run in order).
    pub sql: Option<String>,

    /// Read the SQL from this file (`-` for standard input).
    #[arg(long, short = 'f', conflicts_with = "sql")]
    pub file: Option<PathBuf>,

    /// Where and how to run.
    #[command(flatten)]
    pub target: Target,
}

/// `lakehose sql`.
#[derive(Debug, clap::Args)]
pub struct SqlConfig {
    /// Where and how to run.
    #[command(flatten)]
    pub target: Target,
}

/// A statement's answer, whichever way it ran.
pub struct Answer {
    /// Columns.
    pub schema: SchemaRef,
    /// Rows.
    pub batches: Vec<RecordBatch>,
    /// Rows written by CTAS / INSERT / UNLOAD.
    pub update_count: Option<u64>,
    /// Bytes read.
    pub bytes_scanned: u64,
    /// Wall time.
    pub elapsed: Duration,
}

/// Runs statements locally or through the Athena API.
pub enum Backend {
    /// In-process over a data folder.
    Local(QueryEngine),
    /// A remote server.
    Remote {
        /// Athena client.
        client: aws_sdk_athena::Client,
        /// Workgroup.
        workgroup: String,
        /// Bytes of result rows held at most.
        max_result_bytes: usize,
    },
}

impl Backend {
    /// Opens the backend the flags ask for.
    pub async fn open(target: &Target) -> anyhow::Result<Self> {
        if let Some(endpoint) = &target.endpoint {
            let (id, secret, token) = match &target.credentials {
                Some((id, secret)) => (id.clone(), secret.clone(), None),
                None => (
                    std::env::var("AWS_ACCESS_KEY_ID").unwrap_or_else(|_| "lakehose".into()),
                    std::env::var("AWS_SECRET_ACCESS_KEY").unwrap_or_else(|_| "lakehose".into()),
                    std::env::var("AWS_SESSION_TOKEN").ok(),
                ),
            };
            let creds =
                aws_credential_types::Credentials::new(id, secret, token, None, "lakehose-cli");
            let config = aws_sdk_athena::Config::builder()
                .behavior_version(aws_sdk_athena::config::BehaviorVersion::latest())
                .region(aws_sdk_athena::config::Region::new(
                    std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into()),
                ))
                .endpoint_url(endpoint)
                .credentials_provider(creds)
                .build();
            return Ok(Self::Remote {
                client: aws_sdk_athena::Client::from_conf(config),
                workgroup: target.workgroup.clone(),
                max_result_bytes: target.max_result_bytes(),
            });
        }
        let storage = target.storage.open(&target.data_dir).await?;
        let catalog: CatalogRef = target.storage.catalog(&storage).await?;
        let config = EngineConfig {
            memory_limit: target.memory_limit_mb.max(64) << 20,
            max_held_result_bytes: target.max_result_bytes(),
            ..Default::default()
        };
        Ok(Self::Local(QueryEngine::new(catalog, storage, config)?))
    }

    /// Runs one statement.
    pub async fn run(&self, sql: &str, database: &str) -> anyhow::Result<Answer> {
        let started = Instant::now();
        match self {
            Self::Local(engine) => {
                let out = engine
                    .execute(QueryRequest::new(sql, Some(database)))
                    .await?;
                Ok(Answer {
                    schema: out.schema,
                    batches: out.batches,
                    update_count: out.update_count,
                    bytes_scanned: out.bytes_scanned,
                    elapsed: started.elapsed(),
                })
            }
            Self::Remote {
                client,
                workgroup,
                max_result_bytes,
            } => remote(client, workgroup, sql, database, started, *max_result_bytes).await,
        }
    }

    /// Table and column names for completion.
    pub async fn names(&self, database: &str) -> Vec<String> {
        let Self::Local(engine) = self else {
            return Vec::new();
        };
        let mut out = Vec::new();
        if let Ok(dbs) = engine.catalog().list_databases().await {
            out.extend(dbs.into_iter().map(|d| d.name));
        }
        if let Ok(tables) = engine.catalog().list_tables(database).await {
            for t in tables {
                out.push(t.name.clone());
                for c in t
                    .storage_descriptor
                    .iter()
                    .flat_map(|sd| sd.columns.iter())
                    .chain(&t.partition_keys)
                {
                    out.push(c.name.clone());
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }
}

async fn remote(
    client: &aws_sdk_athena::Client,
    workgroup: &str,
    sql: &str,
    database: &str,
    started: Instant,
    max_result_bytes: usize,
) -> anyhow::Result<Answer> {
    use aws_sdk_athena::types::{QueryExecutionContext, QueryExecutionState};
    let id = client
        .start_query_execution()
        .query_string(sql)
        .work_group(workgroup)
        .query_execution_context(QueryExecutionContext::builder().database(database).build())
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{}", aws_sdk_athena::error::DisplayErrorContext(e)))?
        .query_execution_id
        .context("the server returned no query id")?;
    let mut delay = Duration::from_millis(5);
    let execution = loop {
        let exec = client
            .get_query_execution()
            .query_execution_id(&id)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("{}", aws_sdk_athena::error::DisplayErrorContext(e)))?
            .query_execution
            .context("no query execution in the answer")?;
        let state = exec.status.as_ref().and_then(|s| s.state.clone());
        match state {
            Some(QueryExecutionState::Succeeded) => break exec,
            Some(QueryExecutionState::Failed) | Some(QueryExecutionState::Cancelled) => {
                let reason = exec
                    .status
                    .as_ref()
                    .and_then(|s| s.state_change_reason.clone())
                    .unwrap_or_else(|| "no reason given".into());
                bail!("{reason}");
            }
            _ => {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_millis(200));
            }
        }
    };
    let bytes_scanned = execution
        .statistics
        .as_ref()
        .and_then(|s| s.data_scanned_in_bytes)
        .unwrap_or(0) as u64;
    let select = execution.statement_type == Some(aws_sdk_athena::types::StatementType::Dml)
        && execution.substatement_type.as_deref() == Some("SELECT");
    let mut names: Vec<String> = Vec::new();
    let mut rows: Vec<Vec<Option<String>>> = Vec::new();
    let mut update_count = None;
    let mut token: Option<String> = None;
    let mut first = true;
    let mut held = 0usize;
    loop {
        let page = client
            .get_query_results()
            .query_execution_id(&id)
            .max_results(1000)
            .set_next_token(token.clone())
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("{}", aws_sdk_athena::error::DisplayErrorContext(e)))?;
        if let Some(n) = page.update_count
            && !select
        {
            update_count = Some(n as u64);
        }
        if let Some(rs) = page.result_set {
            if names.is_empty()
                && let Some(meta) = &rs.result_set_metadata
            {
                names = meta.column_info().iter().map(|c| c.name.clone()).collect();
            }
            let mut page_rows = rs.rows.unwrap_or_default().into_iter();
            if first && select {
                page_rows.next();
            }
            for row in page_rows {
                held = held.saturating_add(
                    row.data()
                        .iter()
                        .map(|d| d.var_char_value.as_ref().map_or(0, String::len) + 24)
                        .sum::<usize>(),
                );
                if held > max_result_bytes {
                    bail!(
                        "the result is larger than the {} MiB the CLI holds to print it (--max-held-result-mb); add a LIMIT, or read it with a Postgres client, which streams it",
                        max_result_bytes >> 20
                    );
                }
                rows.push(
                    row.data
                        .unwrap_or_default()
                        .into_iter()
                        .map(|d| d.var_char_value)
                        .collect(),
                );
            }
        }
        first = false;
        token = page.next_token;
        if token.is_none() {
            break;
        }
    }
    let width = names.len().max(rows.first().map_or(0, Vec::len));
    if names.len() < width {
        names.extend((names.len()..width).map(|i| format!("_col{i}")));
    }
    let schema = Arc::new(Schema::new(
        names
            .iter()
            .map(|n| Field::new(n, DataType::Utf8, true))
            .collect::<Vec<_>>(),
    ));
    let columns: Vec<ArrayRef> = (0..width)
        .map(|i| {
            Arc::new(StringArray::from(
                rows.iter()
                    .map(|r| r.get(i).cloned().flatten())
                    .collect::<Vec<_>>(),
            )) as ArrayRef
        })
        .collect();
    let batches = if width == 0 {
        Vec::new()
    } else {
        vec![RecordBatch::try_new(Arc::clone(&schema), columns)?]
    };
    Ok(Answer {
        schema,
        batches,
        update_count,
        bytes_scanned,
        elapsed: started.elapsed(),
    })
}

/// Human-readable bytes.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// An answer as a text table, each value written as the Athena API writes
/// it (`2026-12-05 10:11:12.345` for a timestamp, `1.0E10` for a large
/// double), so the CLI shows what every other client shows.
fn text_table(answer: &Answer) -> anyhow::Result<comfy_table::Table> {
    let mut table = comfy_table::Table::new();
    table.load_preset("||--+-++|    ++++++");
    table.set_header(answer.schema.fields().iter().map(|f| f.name().as_str()));
    for batch in &answer.batches {
        let columns = batch
            .columns()
            .iter()
            .map(lakehose_query::values::column_text)
            .collect::<Result<Vec<_>, _>>()?;
        for row in 0..batch.num_rows() {
            table.add_row(
                columns
                    .iter()
                    .map(|c| c[row].as_deref().unwrap_or_default()),
            );
        }
    }
    Ok(table)
}

/// Writes an answer in a format.
pub fn render(answer: &Answer, format: Format, out: &mut dyn std::io::Write) -> anyhow::Result<()> {
    let rows: usize = answer.batches.iter().map(RecordBatch::num_rows).sum();
    match format {
        Format::Table => {
            if !answer.schema.fields().is_empty() && answer.update_count.is_none() {
                let table = text_table(answer)?;
                if answer.batches.is_empty() {
                    let names: Vec<&str> = answer
                        .schema
                        .fields()
                        .iter()
                        .map(|f| f.name().as_str())
                        .collect();
                    writeln!(out, "{}", names.join(" | "))?;
                } else {
                    writeln!(out, "{table}")?;
                }
            }
            let what = match answer.update_count {
                Some(n) => format!("{n} rows written"),
                None => format!("{rows} row{}", if rows == 1 { "" } else { "s" }),
            };
            writeln!(
                out,
                "({what} in {:.3} s, {} scanned)",
                answer.elapsed.as_secs_f64(),
                human_bytes(answer.bytes_scanned)
            )?;
        }
        Format::Csv => {
            let mut writer = datafusion::arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(out);
            if answer.batches.is_empty() {
                let names: Vec<&str> = answer
                    .schema
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect();
                writeln!(writer.into_inner(), "{}", names.join(","))?;
            } else {
                for b in &answer.batches {
                    writer.write(b)?;
                }
            }
        }
        Format::Json => {
            let mut writer = datafusion::arrow::json::LineDelimitedWriter::new(out);
            for b in &answer.batches {
                writer.write(b)?;
            }
            writer.finish()?;
        }
        Format::Parquet => {
            let props = lakehose_catalog::parquet_writer::default_writer_properties();
            let mut buffer = Vec::new();
            let mut writer = datafusion::parquet::arrow::ArrowWriter::try_new(
                &mut buffer,
                Arc::clone(&answer.schema),
                Some(props),
            )?;
            for b in &answer.batches {
                writer.write(b)?;
            }
            writer.close()?;
            out.write_all(&buffer)?;
        }
    }
    Ok(())
}

fn output(target: &Target) -> anyhow::Result<Box<dyn std::io::Write>> {
    if target.format == Format::Parquet && target.output.is_none() {
        bail!("--format parquet needs --output FILE");
    }
    Ok(match &target.output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("could not create {}", path.display()))?,
        )),
        None => Box::new(std::io::stdout().lock()),
    })
}

/// `lakehose query`: runs the statements; exits non-zero on the first
/// failure, with the error on standard error.
pub fn run_query(config: QueryConfig) -> anyhow::Result<()> {
    let sql = match (&config.sql, &config.file) {
        (Some(sql), _) => sql.clone(),
        (None, Some(path)) if path.as_os_str() == "-" => {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)?;
            s
        }
        (None, Some(path)) => std::fs::read_to_string(path)
            .with_context(|| format!("could not read {}", path.display()))?,
        (None, None) => bail!("give the SQL as an argument or with -f FILE"),
    };
    let statements = split_statements(&sql);
    if statements.is_empty() {
        bail!("no SQL statement given");
    }
    let runtime = crate::server::runtime(None)?;
    runtime.block_on(async {
        let backend = Backend::open(&config.target).await?;
        let mut out = output(&config.target)?;
        let mut database = config.target.database.clone();
        for statement in statements {
            if let Some(db) = use_database(statement) {
                database = db;
                continue;
            }
            let answer = backend.run(statement, &database).await?;
            render(&answer, config.target.format, &mut out)?;
        }
        out.flush()?;
        Ok(())
    })
}

/// `USE db` switches the current database of the CLI session.
fn use_database(statement: &str) -> Option<String> {
    let mut words = statement.split_whitespace();
    match (words.next(), words.next(), words.next()) {
        (Some(u), Some(db), None) if u.eq_ignore_ascii_case("use") => Some(
            db.trim_matches(|c| c == '"' || c == '`')
                .to_ascii_lowercase(),
        ),
        _ => None,
    }
}

#[derive(rustyline::Helper, rustyline::Hinter, rustyline::Highlighter, rustyline::Validator)]
struct Completion {
    words: Vec<String>,
}

const KEYWORDS: &[&str] = &[
    "SELECT",
    "FROM",
    "WHERE",
    "GROUP",
    "BY",
    "ORDER",
    "LIMIT",
    "JOIN",
    "LEFT",
    "INNER",
    "ON",
    "AS",
    "AND",
    "OR",
    "NOT",
    "COUNT",
    "DISTINCT",
    "HAVING",
    "WITH",
    "SHOW",
    "TABLES",
    "DATABASES",
    "PARTITIONS",
    "DESCRIBE",
    "CREATE",
    "EXTERNAL",
    "TABLE",
    "VIEW",
    "INSERT",
    "INTO",
    "MSCK",
    "REPAIR",
    "UNLOAD",
    "EXPLAIN",
    "ANALYZE",
    "USE",
];

impl rustyline::completion::Completer for Completion {
    type Candidate = String;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &rustyline::Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        let start = line[..pos]
            .rfind(|c: char| !(c.is_alphanumeric() || c == '_'))
            .map(|i| i + 1)
            .unwrap_or(0);
        let prefix = &line[start..pos];
        if prefix.is_empty() {
            return Ok((start, Vec::new()));
        }
        let lower = prefix.to_ascii_lowercase();
        let mut candidates: Vec<String> = self
            .words
            .iter()
            .filter(|w| w.to_ascii_lowercase().starts_with(&lower))
            .cloned()
            .collect();
        candidates.extend(
            KEYWORDS
                .iter()
                .filter(|k| k.to_ascii_lowercase().starts_with(&lower))
                .map(|k| {
                    if prefix.chars().all(|c| c.is_ascii_lowercase()) {
                        k.to_ascii_lowercase()
                    } else {
                        k.to_string()
                    }
                }),
        );
        candidates.sort();
        candidates.dedup();
        Ok((start, candidates))
    }
}

/// `lakehose sql`: the interactive shell.
pub fn run_sql(config: SqlConfig) -> anyhow::Result<()> {
    let runtime = crate::server::runtime(None)?;
    runtime.block_on(async {
        let backend = Backend::open(&config.target).await?;
        let mut database = config.target.database.clone();
        let mut editor: rustyline::Editor<Completion, rustyline::history::DefaultHistory> =
            rustyline::Editor::new()?;
        editor.set_helper(Some(Completion {
            words: backend.names(&database).await,
        }));
        let history = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".lakehose_history"));
        if let Some(h) = &history {
            let _ = editor.load_history(h);
        }
        let where_ = match &config.target.endpoint {
            Some(e) => e.clone(),
            None => config.target.data_dir.display().to_string(),
        };
        println!("lakehose sql on {where_}. End statements with ';'. Ctrl-D or \\q to quit.");
        let mut buffer = String::new();
        loop {
            let prompt = if buffer.is_empty() {
                format!("{database}> ")
            } else {
                format!("{}-> ", " ".repeat(database.len().saturating_sub(1)))
            };
            let line = match editor.readline(&prompt) {
                Ok(l) => l,
                Err(rustyline::error::ReadlineError::Interrupted) => {
                    buffer.clear();
                    continue;
                }
                Err(rustyline::error::ReadlineError::Eof) => break,
                Err(e) => return Err(e.into()),
            };
            let trimmed = line.trim();
            if buffer.is_empty() && matches!(trimmed, "\\q" | "quit" | "exit") {
                break;
            }
            if buffer.is_empty() && trimmed.is_empty() {
                continue;
            }
            buffer.push_str(&line);
            buffer.push('\n');
            if !trimmed.ends_with(';') {
                continue;
            }
            let _ = editor.add_history_entry(buffer.trim());
            let text = std::mem::take(&mut buffer);
            for statement in split_statements(&text) {
                if let Some(db) = use_database(statement) {
                    database = db;
                    continue;
                }
                match backend.run(statement, &database).await {
                    Ok(answer) => {
                        let mut out: Box<dyn std::io::Write> = match &config.target.output {
                            Some(_) => output(&config.target)?,
                            None => Box::new(std::io::stdout().lock()),
                        };
                        if let Err(e) = render(&answer, config.target.format, &mut out) {
                            eprintln!("error: {e:#}");
                        }
                        let _ = out.flush();
                    }
                    Err(e) => eprintln!("error: {e:#}"),
                }
            }
            if let Some(helper) = editor.helper_mut() {
                helper.words = backend.names(&database).await;
            }
        }
        if let Some(h) = &history {
            let _ = editor.save_history(h);
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_split_on_semicolons_outside_quotes() {
        assert_eq!(
            split_statements("select 'a;b'; -- c;\nselect \"x;\" ;;"),
            vec!["select 'a;b'", "select \"x;\""]
        );
        assert_eq!(
            split_statements("SELECT 1 /* ; */; /* x */ select 2 /* a */ + /* b; */ 3"),
            vec!["SELECT 1", "select 2 /* a */ + /* b; */ 3"]
        );
        assert_eq!(
            split_statements("select 1 /* never closed ;"),
            vec!["select 1"]
        );
        assert_eq!(use_database("USE Logs"), Some("logs".into()));
        assert_eq!(use_database("user"), None);
    }
}
