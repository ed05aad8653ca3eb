//! SQL text to a plan: statement splitting and parsing, `?` parameters,
//! the read-only check and the Presto rewrites. Every plan lakehose makes
//! from SQL text comes from here; nothing here runs a plan.

use std::ops::ControlFlow;

use datafusion::execution::context::SQLOptions;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::{DFParser, Statement as DFStatement};
use datafusion::sql::sqlparser::ast::{Query, SetExpr, Statement, Visit, Visitor};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

use crate::error::{ErrorCode, QueryError, QueryErrorKind, classify};

/// Splits SQL text into its statements.
pub(crate) fn parse_statements(sql: &str) -> Result<Vec<DFStatement>, QueryError> {
    crate::nesting::check(sql)?;
    DFParser::parse_sql_with_dialect(sql, &GenericDialect {})
        .map(|s| s.into_iter().collect())
        .map_err(|e| QueryError::named(ErrorCode::SyntaxError, e))
}

/// Parses one query statement (SELECT, WITH, VALUES, EXPLAIN), checks
/// that it only reads (see [`check_read_only`]), applies the Presto
/// rewrites and plans it. Every plan lakehose makes from SQL text goes
/// through here (queries, views' bodies, the SELECT of CTAS, INSERT,
/// UNLOAD and ETL jobs).
pub async fn plan_query(ctx: &SessionContext, sql: &str) -> Result<LogicalPlan, QueryError> {
    let mut statements = parse_statements(sql)?;
    if statements.len() != 1 {
        return Err(QueryError::named(
            ErrorCode::SyntaxError,
            format!("expected one statement, found {}", statements.len()),
        ));
    }
    let mut statement = statements.remove(0);
    check_read_only(&statement)?;
    match &mut statement {
        DFStatement::Statement(s) => {
            crate::dialect::rewrite(s).map_err(|e| QueryError::new(QueryErrorKind::Semantic, e))?;
        }
        DFStatement::Explain(explain) => {
            if let DFStatement::Statement(s) = explain.statement.as_mut() {
                crate::dialect::rewrite(s)
                    .map_err(|e| QueryError::new(QueryErrorKind::Semantic, e))?;
            }
        }
        _ => unreachable!("check_read_only lets only queries and EXPLAIN through"),
    }
    let plan = plan_read_only(ctx, statement).await?;
    crate::functions::catch_errors(plan).map_err(classify)
}

/// Plans a statement [`check_read_only`] accepted, with DataFusion told to
/// refuse DDL, DML (COPY and INSERT included) and utility statements
/// anywhere in the plan: the second line of defence behind the check of
/// the syntax tree.
pub(crate) async fn plan_read_only(
    ctx: &SessionContext,
    statement: DFStatement,
) -> Result<LogicalPlan, QueryError> {
    let plan = ctx
        .state()
        .statement_to_plan(statement)
        .await
        .map_err(classify)?;
    read_only_options().verify_plan(&plan).map_err(|e| {
        QueryError::coded(
            ErrorCode::NotSupported,
            format!(
                "NOT_SUPPORTED: {}; {READ_ONLY}",
                e.find_root()
                    .to_string()
                    .trim_start_matches("Error during planning: ")
            ),
        )
    })?;
    Ok(plan)
}

/// What DataFusion may plan from SQL text: queries only. Everything that
/// writes or changes state is lakehose's own (Athena's DDL, CTAS, INSERT,
/// UNLOAD), implemented over lakehose's storage.
pub(crate) fn read_only_options() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

/// The tail of every refusal.
const READ_ONLY: &str = "the query engine only runs queries (SELECT, WITH, VALUES, EXPLAIN); \
     write with CREATE TABLE AS, INSERT INTO or UNLOAD to an s3:// location";

fn refused(what: &str, place: &str) -> QueryError {
    QueryError::named(
        ErrorCode::NotSupported,
        format!("{what} is not allowed{place}; {READ_ONLY}"),
    )
}

/// Checks that a statement only reads, at every level: the statement
/// itself, the statement EXPLAIN (ANALYZE) wraps, every CTE and subquery
/// (no data-modifying CTEs, no `SELECT ... INTO`). The allow-list is
/// queries and EXPLAIN of a query; everything else DataFusion's parser
/// knows (COPY, CREATE EXTERNAL TABLE, SET, PREPARE/EXECUTE, CREATE
/// FUNCTION, INSERT, ...) is refused, naming what was refused.
pub(crate) fn check_read_only(statement: &DFStatement) -> Result<(), QueryError> {
    check_read_only_at(statement, "")
}

fn check_read_only_at(statement: &DFStatement, place: &str) -> Result<(), QueryError> {
    match statement {
        DFStatement::Statement(s) => check_query_statement(s, place),
        DFStatement::Explain(explain) => {
            let place = if explain.options.analyze {
                " inside EXPLAIN ANALYZE"
            } else {
                " inside EXPLAIN"
            };
            check_read_only_at(&explain.statement, place)
        }
        DFStatement::CopyTo(_) => Err(refused("COPY ... TO (it writes files)", place)),
        DFStatement::CreateExternalTable(t) => Err(refused(
            &format!(
                "DataFusion's CREATE EXTERNAL TABLE (LOCATION '{}'; use Athena's CREATE EXTERNAL TABLE ... LOCATION 's3://...')",
                t.locations.join("', '")
            ),
            place,
        )),
        DFStatement::Reset(_) => Err(refused("RESET", place)),
    }
}

/// Checks a statement of the SQL syntax tree (sqlparser's): the statement
/// and every statement and query nested in it.
pub(crate) fn check_query_statement(statement: &Statement, place: &str) -> Result<(), QueryError> {
    struct Guard<'a> {
        place: &'a str,
    }
    impl Visitor for Guard<'_> {
        type Break = QueryError;

        fn pre_visit_statement(&mut self, statement: &Statement) -> ControlFlow<QueryError> {
            match statement {
                Statement::Query(_) => ControlFlow::Continue(()),
                Statement::Explain { .. } => ControlFlow::Continue(()),
                other => ControlFlow::Break(refused(&statement_kind(other), self.place)),
            }
        }

        fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<QueryError> {
            match check_set_expr(&query.body, self.place) {
                Ok(()) => ControlFlow::Continue(()),
                Err(e) => ControlFlow::Break(e),
            }
        }
    }
    match statement.visit(&mut Guard { place }) {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(e) => Err(e),
    }
}

/// The parts of a query body that write: `SELECT ... INTO` and
/// data-modifying CTEs (`WITH x AS (INSERT ...)`).
fn check_set_expr(body: &SetExpr, place: &str) -> Result<(), QueryError> {
    match body {
        SetExpr::Select(select) if select.into.is_some() => {
            Err(refused("SELECT ... INTO (it creates a table)", place))
        }
        SetExpr::SetOperation { left, right, .. } => {
            check_set_expr(left, place)?;
            check_set_expr(right, place)
        }
        SetExpr::Insert(s) | SetExpr::Update(s) | SetExpr::Delete(s) | SetExpr::Merge(s) => {
            Err(refused(&statement_kind(s), place))
        }
        SetExpr::Select(_) | SetExpr::Query(_) | SetExpr::Values(_) | SetExpr::Table(_) => Ok(()),
    }
}

/// The leading keywords of a statement (`COPY`, `CREATE FUNCTION`,
/// `INSERT INTO`, ...) as sqlparser prints them (keywords in upper case),
/// for messages; never the whole text.
fn statement_kind(statement: &Statement) -> String {
    let text = statement.to_string();
    let keyword = |w: &&str| !w.is_empty() && w.chars().all(|c| c.is_ascii_uppercase() || c == '_');
    let words: Vec<&str> = text
        .split_whitespace()
        .take_while(keyword)
        .take(3)
        .collect();
    if words.is_empty() {
        "this statement".into()
    } else {
        words.join(" ")
    }
}

/// Replaces each `?` placeholder with the next parameter, which must be
/// one SQL literal (a number, a quoted string, `NULL`, `TRUE`, `FALSE`, or
/// a typed literal such as `DATE '2024-01-01'`).
pub(crate) fn bind_parameters(sql: &str, parameters: &[String]) -> Result<String, QueryError> {
    let dialect = GenericDialect {};
    let tokens = match Tokenizer::new(&dialect, sql).tokenize() {
        Ok(t) => t,
        Err(e) if parameters.is_empty() => {
            let _ = e;
            return Ok(sql.to_string());
        }
        Err(e) => {
            return Err(QueryError::named(ErrorCode::SyntaxError, e));
        }
    };
    let placeholders = tokens
        .iter()
        .filter(|t| matches!(t, Token::Placeholder(p) if p == "?"))
        .count();
    if placeholders == 0 && parameters.is_empty() {
        return Ok(sql.to_string());
    }
    if placeholders != parameters.len() {
        return Err(QueryError::new(
            QueryErrorKind::Semantic,
            format!(
                "The query has {placeholders} parameter placeholder(s) but {} execution parameter(s) were given",
                parameters.len()
            ),
        ));
    }
    for (i, p) in parameters.iter().enumerate() {
        validate_literal(p).map_err(|why| {
            QueryError::new(
                QueryErrorKind::Semantic,
                format!(
                    "Execution parameter {} ({p:?}) is not a SQL literal: {why}",
                    i + 1
                ),
            )
        })?;
    }
    let mut next = parameters.iter();
    let mut out = String::with_capacity(sql.len());
    for t in &tokens {
        match t {
            Token::Placeholder(p) if p == "?" => {
                out.push_str(next.next().expect("counted above"));
            }
            other => out.push_str(&other.to_string()),
        }
    }
    Ok(out)
}

fn validate_literal(value: &str) -> Result<(), String> {
    let dialect = GenericDialect {};
    let tokens: Vec<Token> = Tokenizer::new(&dialect, value)
        .tokenize()
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|t| !matches!(t, Token::Whitespace(_)))
        .collect();
    let word = |t: &Token, options: &[&str]| matches!(t, Token::Word(w) if w.quote_style.is_none() && options.iter().any(|o| w.value.eq_ignore_ascii_case(o)));
    let ok = match tokens.as_slice() {
        [Token::Number(..)] | [Token::SingleQuotedString(_)] => true,
        [Token::Minus, Token::Number(..)] => true,
        [t] => word(t, &["null", "true", "false"]),
        [t, Token::SingleQuotedString(_)] => word(t, &["date", "timestamp", "time", "decimal"]),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err("expected a number, a quoted string, NULL, TRUE, FALSE or a typed literal".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_bind_only_literals() {
        assert_eq!(
            bind_parameters(
                "SELECT * FROM t WHERE a = ? AND b = '?' AND c > ?",
                &["'x''y'".into(), "DATE '2024-01-01'".into()]
            )
            .unwrap(),
            "SELECT * FROM t WHERE a = 'x''y' AND b = '?' AND c > DATE '2024-01-01'"
        );
        let e = bind_parameters("SELECT ?", &["1; DROP TABLE t".into()]).unwrap_err();
        assert!(e.message.contains("not a SQL literal"), "{e}");
        let e = bind_parameters("SELECT ?, ?", &["1".into()]).unwrap_err();
        assert!(e.message.contains("2 parameter placeholder"), "{e}");
        assert_eq!(bind_parameters("SELECT 'a'", &[]).unwrap(), "SELECT 'a'");
    }
}
