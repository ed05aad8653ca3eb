//! ETL job files.
//!
//! A job is one `.sql` file: a header of `-- field: value` comment lines,
//! then the SQL. The job's name is the file name without `.sql`.
//!
//! ```sql
//! -- Hourly request metrics per service, path and status.
//! -- target: curated.request_metrics_hourly
//! -- mode: incremental
//! -- source: logs.app_logs
//! -- partitioned_by: dt
//! -- schedule: */5 * * * *
//! SELECT service, path, status, dt, ... FROM logs.app_logs GROUP BY ...
//! ```
//!
//! The header is the run of `--` comment lines (and blank lines) at the top
//! of the file. In it, a line `-- name: value` whose name is a single word
//! is a field; every other comment line is free text. Fields:
//!
//! | field | meaning |
//! |---|---|
//! | `target` | `database.table` written (required) |
//! | `mode` | `overwrite`, `append`, `merge` or `incremental` (required) |
//! | `location` | `s3://bucket/prefix/` of the Delta table (default: `s3://<warehouse>/curated/<database>/<table>/`) |
//! | `partitioned_by` | comma-separated output columns the table is partitioned by |
//! | `overwrite` | `table` (default) or `partitions`: replace only the partitions the run produced (`overwrite` mode) |
//! | `keys` | comma-separated key columns (`merge`; `incremental` upserts on them when given) |
//! | `delete_when` | SQL condition on the SELECT's columns: matching target rows are deleted (`merge`) |
//! | `source` | `database.table` read incrementally (`incremental`, required there) |
//! | `database` | the current database for unqualified table names (default `default`) |
//! | `schedule` | a cron expression, 5 fields (`m h dom mon dow`) or 6 with seconds first |
//! | `file_size_mb` | target size of the Parquet files written (default 128) |
//! | `retries` | extra attempts after a failed run (default 0) |
//! | `retry_backoff_secs` | wait before the first retry, doubled each time (default 30) |
//! | `retain_hours` | table versions the server's maintenance keeps readable (VACUUM retention, default 168) |
//!
//! The SQL is one SELECT (or `WITH ... SELECT`), or several statements
//! separated by `;` of which the last is that SELECT; the earlier ones run
//! first, in order (e.g. `CREATE VIEW`).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lakehose_catalog::schedule::Schedule;
use sqlparser::ast::Statement;
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;

/// An error in a job file, with the line it is about when known.
#[derive(Debug, Clone, PartialEq)]
pub struct JobError {
    /// The job file.
    pub file: PathBuf,
    /// 1-based line in the file.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl JobError {
    /// An error at `line` of `file`.
    pub fn at(file: &Path, line: Option<usize>, message: impl Into<String>) -> Self {
        Self {
            file: file.to_path_buf(),
            line,
            message: message.into(),
        }
    }
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.file.display(), self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

impl std::error::Error for JobError {}

/// How a run's rows reach the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Replace the table, or only the partitions the run produced.
    Overwrite,
    /// Add the rows.
    Append,
    /// Upsert on key columns, deleting rows that match `delete_when`.
    Merge,
    /// Read only the source partitions with files new since the last
    /// successful run; replace the target partitions they produce (or
    /// upsert on `keys`).
    Incremental,
}

impl Mode {
    /// The name used in job files.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Overwrite => "overwrite",
            Self::Append => "append",
            Self::Merge => "merge",
            Self::Incremental => "incremental",
        }
    }
}

/// A `database.table` name, lower-cased.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TableName {
    /// The database.
    pub database: String,
    /// The table.
    pub table: String,
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.database, self.table)
    }
}

impl TableName {
    fn parse_qualified(text: &str) -> Result<Self, String> {
        let parts: Vec<&str> = text.trim().split('.').map(str::trim).collect();
        let valid = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        };
        match parts.as_slice() {
            [db, table] if valid(db) && valid(table) => Ok(Self {
                database: db.to_ascii_lowercase(),
                table: table.to_ascii_lowercase(),
            }),
            _ => Err(format!(
                "{text:?} is not a database.table name (letters, digits, _ and -)"
            )),
        }
    }
}

/// A parsed job file.
#[derive(Debug, Clone)]
pub struct Job {
    /// The file name without `.sql`.
    pub name: String,
    /// The file.
    pub path: PathBuf,
    /// The table written.
    pub target: TableName,
    /// How rows are written.
    pub mode: Mode,
    /// The Delta table's folder, when the header names one.
    pub location: Option<String>,
    /// Partition columns of the target.
    pub partitioned_by: Vec<String>,
    /// `overwrite: partitions`.
    pub overwrite_partitions: bool,
    /// Key columns for merges.
    pub keys: Vec<String>,
    /// Delete condition for merges.
    pub delete_when: Option<String>,
    /// The table read incrementally.
    pub source: Option<TableName>,
    /// The current database of the SQL.
    pub database: String,
    /// The schedule, as written and parsed.
    pub schedule: Option<Schedule>,
    /// Target size of written files, bytes.
    pub file_size: u64,
    /// Extra attempts after a failure.
    pub retries: u32,
    /// Wait before the first retry.
    pub retry_backoff: Duration,
    /// How long replaced versions stay readable before VACUUM deletes
    /// their files.
    pub retain: Duration,
    /// Free-text comment lines of the header.
    pub description: String,
    /// Statements run before the SELECT.
    pub setup: Vec<String>,
    /// The SELECT.
    pub select: String,
    /// 1-based line of the file where the SQL starts.
    pub sql_line: usize,
    /// Tables the SQL reads (qualified with `database` when unqualified).
    pub reads: Vec<TableName>,
    /// The whole file.
    pub text: String,
}

const FIELDS: &[&str] = &[
    "target",
    "mode",
    "location",
    "partitioned_by",
    "overwrite",
    "keys",
    "delete_when",
    "source",
    "database",
    "schedule",
    "file_size_mb",
    "retries",
    "retry_backoff_secs",
    "retain_hours",
];

fn list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect()
}

impl Job {
    /// Reads and parses a job file.
    pub fn load(path: &Path) -> Result<Self, JobError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| JobError::at(path, None, format!("could not read the job file: {e}")))?;
        Self::parse(path, &text)
    }

    /// Parses the text of a job file.
    pub fn parse(path: &Path, text: &str) -> Result<Self, JobError> {
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(JobError::at(
                path,
                None,
                "a job file name may hold only letters, digits, _ and - before .sql",
            ));
        }
        let err = |line: usize, m: String| JobError::at(path, Some(line), m);
        let mut fields: BTreeMap<&str, (usize, String)> = BTreeMap::new();
        let mut description = Vec::new();
        let mut sql_line = 0;
        for (i, line) in text.lines().enumerate() {
            let trimmed = line.trim();
            if trimmed.is_empty() {
                continue;
            }
            let Some(comment) = trimmed.strip_prefix("--") else {
                sql_line = i + 1;
                break;
            };
            let comment = comment.trim();
            let field = comment.split_once(':').and_then(|(k, v)| {
                let k = k.trim();
                (!k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
                    .then_some((k, v.trim()))
            });
            match field {
                Some((key, value)) => {
                    let key = key.to_ascii_lowercase();
                    let Some(known) = FIELDS.iter().find(|f| **f == key) else {
                        return Err(err(
                            i + 1,
                            format!(
                                "unknown header field {key:?} (known: {})",
                                FIELDS.join(", ")
                            ),
                        ));
                    };
                    if fields.insert(known, (i + 1, value.to_string())).is_some() {
                        return Err(err(i + 1, format!("header field {key:?} is given twice")));
                    }
                }
                None => description.push(comment.to_string()),
            }
        }
        if sql_line == 0 {
            return Err(JobError::at(
                path,
                None,
                "the job has no SQL after its header",
            ));
        }
        let field = |key: &str| fields.get(key).map(|(l, v)| (*l, v.as_str()));
        let required = |key: &str| {
            field(key)
                .ok_or_else(|| JobError::at(path, None, format!("the header has no {key:?} field")))
        };
        let (line, target) = required("target")?;
        let target =
            TableName::parse_qualified(target).map_err(|m| err(line, format!("target: {m}")))?;
        let (line, mode) = required("mode")?;
        let mode = match mode.to_ascii_lowercase().as_str() {
            "overwrite" => Mode::Overwrite,
            "append" => Mode::Append,
            "merge" => Mode::Merge,
            "incremental" => Mode::Incremental,
            other => {
                return Err(err(
                    line,
                    format!("mode {other:?} is not one of overwrite, append, merge, incremental"),
                ));
            }
        };
        let location = match field("location") {
            Some((line, v)) => {
                if !v.starts_with("s3://") {
                    return Err(err(line, format!("location {v:?} must be an s3:// URL")));
                }
                Some(if v.ends_with('/') {
                    v.to_string()
                } else {
                    format!("{v}/")
                })
            }
            None => None,
        };
        let partitioned_by = field("partitioned_by")
            .map(|(_, v)| list(v))
            .unwrap_or_default();
        let overwrite_partitions = match field("overwrite") {
            None => false,
            Some((line, v)) => {
                if mode != Mode::Overwrite {
                    return Err(err(
                        line,
                        "overwrite: applies to mode overwrite only".into(),
                    ));
                }
                match v.to_ascii_lowercase().as_str() {
                    "table" => false,
                    "partitions" => {
                        if partitioned_by.is_empty() {
                            return Err(err(
                                line,
                                "overwrite: partitions needs partitioned_by".into(),
                            ));
                        }
                        true
                    }
                    other => {
                        return Err(err(
                            line,
                            format!("overwrite {other:?} is not table or partitions"),
                        ));
                    }
                }
            }
        };
        let keys = field("keys").map(|(_, v)| list(v)).unwrap_or_default();
        if mode == Mode::Merge && keys.is_empty() {
            return Err(JobError::at(
                path,
                None,
                "mode merge needs a \"keys\" field naming the key columns",
            ));
        }
        let delete_when = match field("delete_when") {
            Some((line, _)) if mode != Mode::Merge => {
                return Err(err(line, "delete_when applies to mode merge only".into()));
            }
            Some((_, v)) => Some(v.to_string()),
            None => None,
        };
        let source = match field("source") {
            Some((line, v)) => {
                Some(TableName::parse_qualified(v).map_err(|m| err(line, format!("source: {m}")))?)
            }
            None => None,
        };
        if mode == Mode::Incremental && source.is_none() {
            return Err(JobError::at(
                path,
                None,
                "mode incremental needs a \"source\" field naming the table read incrementally",
            ));
        }
        let database = field("database")
            .map(|(_, v)| v.to_ascii_lowercase())
            .unwrap_or_else(|| "default".into());
        let schedule = match field("schedule") {
            Some((line, v)) => Some(Schedule::unix(v).map_err(|m| err(line, m))?),
            None => None,
        };
        let retries =
            match field("retries") {
                Some((line, v)) => v.parse::<u32>().ok().filter(|n| *n <= 10).ok_or_else(|| {
                    err(line, format!("retries {v:?} must be a number from 0 to 10"))
                })?,
                None => 0,
            };
        let file_size = match field("file_size_mb") {
            Some((line, v)) => v
                .parse::<u64>()
                .ok()
                .filter(|n| (1..=4096).contains(n))
                .ok_or_else(|| {
                    err(
                        line,
                        format!("file_size_mb {v:?} must be a number from 1 to 4096"),
                    )
                })?,
            None => 128,
        } << 20;
        let retry_backoff = match field("retry_backoff_secs") {
            Some((line, v)) => Duration::from_secs(v.parse::<u64>().map_err(|_| {
                err(
                    line,
                    format!("retry_backoff_secs {v:?} must be a whole number of seconds"),
                )
            })?),
            None => Duration::from_secs(30),
        };
        let retain = match field("retain_hours") {
            Some((line, v)) => Duration::from_secs(
                v.parse::<u64>()
                    .ok()
                    .filter(|h| *h <= 24 * 365 * 10)
                    .ok_or_else(|| {
                        err(
                            line,
                            format!("retain_hours {v:?} must be a whole number of hours"),
                        )
                    })?
                    * 3600,
            ),
            None => Duration::from_secs(168 * 3600),
        };
        let body: String = text
            .lines()
            .skip(sql_line - 1)
            .collect::<Vec<_>>()
            .join("\n");
        lakehose_query::nesting::check(&body).map_err(|e| err(sql_line, e.message))?;
        let statements = Parser::parse_sql(&GenericDialect {}, &body).map_err(|e| {
            err(
                sql_line,
                format!(
                    "the SQL does not parse: {}",
                    shift_lines(&e.to_string(), sql_line)
                ),
            )
        })?;
        let Some((last, setup)) = statements.split_last() else {
            return Err(err(sql_line, "the job has no SQL statement".into()));
        };
        if !matches!(last, Statement::Query(_)) {
            return Err(err(
                sql_line,
                "the last statement of a job must be a SELECT (or WITH ... SELECT)".into(),
            ));
        }
        let mut reads = Vec::new();
        for statement in &statements {
            collect_relations(statement, &database, &mut reads);
        }
        reads.sort();
        reads.dedup();
        // Split the text itself (the statements re-rendered by sqlparser
        // would lose Presto spellings the engine's dialect rewrites).
        let pieces: Vec<String> = lakehose_query::sql_text::split_statements(&body)
            .into_iter()
            .map(str::to_string)
            .collect();
        let (select, setup_text) = match pieces.split_last() {
            Some((last, rest)) if rest.len() == setup.len() => (last.clone(), rest.to_vec()),
            _ => (
                last.to_string(),
                setup.iter().map(ToString::to_string).collect(),
            ),
        };
        let job = Self {
            name,
            path: path.to_path_buf(),
            target,
            mode,
            location,
            partitioned_by,
            overwrite_partitions,
            keys,
            delete_when,
            source,
            database,
            schedule,
            file_size,
            retries,
            retry_backoff,
            retain,
            description: description.join("\n"),
            setup: setup_text,
            select,
            sql_line,
            reads,
            text: text.to_string(),
        };
        if let Some(source) = &job.source
            && !job.reads.contains(source)
        {
            return Err(JobError::at(
                path,
                field("source").map(|(l, _)| l),
                format!("source {source} is not read by the job's SQL"),
            ));
        }
        if job.mode == Mode::Incremental && job.keys.is_empty() && job.partitioned_by.is_empty() {
            return Err(JobError::at(
                path,
                None,
                "mode incremental needs partitioned_by (the partitions a run produces are replaced) or keys (rows are upserted)",
            ));
        }
        Ok(job)
    }

    /// The line of the file where `name` first appears in the SQL (for
    /// errors about a table or column).
    pub(crate) fn line_of(&self, name: &str) -> Option<usize> {
        let needle = name.to_ascii_lowercase();
        self.text
            .lines()
            .enumerate()
            .skip(self.sql_line - 1)
            .find(|(_, l)| l.to_ascii_lowercase().contains(&needle))
            .map(|(i, _)| i + 1)
    }
}

/// Rewrites `Line: N` positions of a parser message (relative to the SQL)
/// into lines of the file.
fn shift_lines(message: &str, sql_line: usize) -> String {
    let Some(at) = message.find("Line: ") else {
        return message.to_string();
    };
    let rest = &message[at + 6..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    match digits.parse::<usize>() {
        Ok(n) => format!(
            "{}Line: {}{}",
            &message[..at],
            n + sql_line - 1,
            &rest[digits.len()..]
        ),
        Err(_) => message.to_string(),
    }
}

/// Adds the tables a statement reads (not CTE names) to `out`.
fn collect_relations(statement: &Statement, database: &str, out: &mut Vec<TableName>) {
    out.extend(
        lakehose_query::sql_text::tables_read(statement, database)
            .into_iter()
            .map(|(database, table)| TableName { database, table }),
    );
}

/// Every `*.sql` job of a folder, sorted by name. A file that does not
/// parse is an error naming it.
pub fn load_dir(dir: &Path) -> Result<Vec<Job>, JobError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| JobError::at(dir, None, format!("could not read the jobs folder: {e}")))?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .collect();
    paths.sort();
    let jobs = paths
        .iter()
        .map(|p| Job::load(p))
        .collect::<Result<Vec<_>, _>>()?;
    let mut targets: BTreeMap<&TableName, &Job> = BTreeMap::new();
    for job in &jobs {
        if let Some(other) = targets.insert(&job.target, job) {
            return Err(JobError::at(
                &job.path,
                None,
                format!(
                    "target {} is also written by {}",
                    job.target,
                    other.path.display()
                ),
            ));
        }
    }
    Ok(jobs)
}

/// Orders jobs so each runs after the jobs whose targets it reads. A cycle
/// is an error naming the jobs in it.
pub fn dependency_order(jobs: &[Job]) -> Result<Vec<&Job>, JobError> {
    let by_target: BTreeMap<&TableName, usize> = jobs
        .iter()
        .enumerate()
        .map(|(i, j)| (&j.target, i))
        .collect();
    let deps: Vec<Vec<usize>> = jobs
        .iter()
        .enumerate()
        .map(|(i, j)| {
            let mut d: Vec<usize> = j
                .reads
                .iter()
                .filter_map(|t| by_target.get(t).copied())
                .filter(|d| *d != i)
                .collect();
            d.sort_unstable();
            d.dedup();
            d
        })
        .collect();
    // Depth-first, in name order: 0 = unvisited, 1 = on the stack, 2 = done.
    let mut mark = vec![0u8; jobs.len()];
    let mut order = Vec::with_capacity(jobs.len());
    let mut stack: Vec<usize> = Vec::new();
    fn visit(
        i: usize,
        jobs: &[Job],
        deps: &[Vec<usize>],
        mark: &mut [u8],
        stack: &mut Vec<usize>,
        order: &mut Vec<usize>,
    ) -> Result<(), JobError> {
        match mark[i] {
            2 => return Ok(()),
            1 => {
                let start = stack.iter().position(|s| *s == i).unwrap_or(0);
                let cycle: Vec<&str> = stack[start..]
                    .iter()
                    .chain(std::iter::once(&i))
                    .map(|s| jobs[*s].name.as_str())
                    .collect();
                return Err(JobError::at(
                    &jobs[i].path,
                    None,
                    format!(
                        "jobs read each other's targets in a cycle: {}",
                        cycle.join(" → ")
                    ),
                ));
            }
            _ => {}
        }
        mark[i] = 1;
        stack.push(i);
        for d in &deps[i] {
            visit(*d, jobs, deps, mark, stack, order)?;
        }
        stack.pop();
        mark[i] = 2;
        order.push(i);
        Ok(())
    }
    for i in 0..jobs.len() {
        visit(i, jobs, &deps, &mut mark, &mut stack, &mut order)?;
    }
    Ok(order.into_iter().map(|i| &jobs[i]).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Job, JobError> {
        Job::parse(Path::new("sql/etl/job.sql"), text)
    }

    #[test]
    fn header_fields_and_sql() {
        let job = parse(
            "-- Hourly metrics.\n-- target: Curated.Metrics\n-- mode: incremental\n-- source: logs.app\n-- partitioned_by: dt, hour\n-- schedule: */5 * * * *\n\nSELECT dt, hour, count(*) AS n FROM logs.app GROUP BY dt, hour\n",
        )
        .unwrap();
        assert_eq!(job.name, "job");
        assert_eq!(job.target.to_string(), "curated.metrics");
        assert_eq!(job.mode, Mode::Incremental);
        assert_eq!(job.partitioned_by, vec!["dt", "hour"]);
        assert_eq!(job.description, "Hourly metrics.");
        assert_eq!(job.sql_line, 8);
        assert_eq!(job.reads.len(), 1);
        assert!(job.schedule.is_some());
        assert!(job.select.starts_with("SELECT dt"));
    }

    #[test]
    fn setup_statements_run_first_and_ctes_are_not_tables() {
        let job = parse(
            "-- target: c.t\n-- mode: overwrite\nCREATE VIEW v AS SELECT 1 AS x;\nWITH w AS (SELECT * FROM raw.events) SELECT * FROM w JOIN dims d ON true",
        )
        .unwrap();
        assert_eq!(job.setup.len(), 1);
        assert!(job.select.starts_with("WITH w"));
        let reads: Vec<String> = job.reads.iter().map(ToString::to_string).collect();
        assert_eq!(reads, vec!["default.dims", "raw.events"]);
    }

    #[test]
    fn bad_headers_name_the_line() {
        let e = parse("-- target: c.t\n-- mdoe: append\nSELECT 1").unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(e.message.contains("unknown header field \"mdoe\""), "{e}");
        let e = parse("-- target: c.t\nSELECT 1").unwrap_err();
        assert!(e.message.contains("no \"mode\""), "{e}");
        let e = parse("-- target: c.t\n-- mode: merge\nSELECT 1").unwrap_err();
        assert!(e.message.contains("keys"), "{e}");
        let e = parse("-- target: c.t\n-- mode: append\n-- schedule: every hour\nSELECT 1")
            .unwrap_err();
        assert_eq!(e.line, Some(3));
        let e = parse("-- target: c.t\n-- mode: append\n\nSELEC 1 FROM").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("sql/etl/job.sql:4: the SQL does not parse"),
            "{e}"
        );
        let e = parse("-- target: c.t\n-- mode: append\nINSERT INTO x VALUES (1)").unwrap_err();
        assert!(e.message.contains("must be a SELECT"), "{e}");
        let e = parse("-- target: c.t\n-- mode: incremental\n-- source: a.b\n-- keys: k\nSELECT 1 AS k FROM a.c").unwrap_err();
        assert!(e.message.contains("not read by"), "{e}");
    }

    fn job(name: &str, target: &str, reads: &str) -> Job {
        Job::parse(
            Path::new(&format!("{name}.sql")),
            &format!("-- target: {target}\n-- mode: overwrite\nSELECT * FROM {reads}"),
        )
        .unwrap()
    }

    #[test]
    fn dependency_order_and_cycles() {
        let jobs = vec![
            job("a_report", "c.report", "c.daily"),
            job("b_daily", "c.daily", "raw.logs"),
            job("c_other", "c.other", "raw.logs"),
        ];
        let order: Vec<&str> = dependency_order(&jobs)
            .unwrap()
            .iter()
            .map(|j| j.name.as_str())
            .collect();
        assert_eq!(order, vec!["b_daily", "a_report", "c_other"]);
        let jobs = vec![job("x", "c.x", "c.y"), job("y", "c.y", "c.x")];
        let e = dependency_order(&jobs).unwrap_err();
        assert!(e.message.contains("cycle: x → y → x"), "{e}");
    }
}
