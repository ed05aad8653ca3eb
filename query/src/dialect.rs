//! SQL-level rewrites for Presto/Trino syntax that DataFusion does not plan
//! itself. [`rewrite`] runs on the parsed statement before DataFusion plans it.
//!
//! | Presto                                  | Rewritten to                                        |
//! |-----------------------------------------|-----------------------------------------------------|
//! | `IF(c, a [, b])`                        | `CASE WHEN c THEN a [ELSE b] END` (lazy branches)   |
//! | `TRY(e)`                                | `try(e)` with every `CAST` in `e` a `TRY_CAST` and  |
//! |                                         | every `x / y`, `x % y` made `x / NULLIF(y, 0)`      |
//! | `t TABLESAMPLE BERNOULLI (p)` / `SYSTEM`| `(SELECT * FROM t WHERE random() * 100 < p) AS t`   |
//! | `approx_distinct(x, e)`                 | `approx_distinct(x)` once `e` is checked            |
//! | `ts AT TIME ZONE z`                     | `at_timezone(ts, z)`: the same instant shown in `z` |
//! | `UNNEST(a) WITH ORDINALITY AS t(x, n)`  | `UNNEST(a, range(1, cardinality(a) + 1)) AS t(x, n)`|
//! | `UNNEST(m) AS t(k, v)` (map)            | `UNNEST(unnest_part(m, 1), unnest_part(m, 2))`      |
//! | `UNNEST(rows) AS t(a, b)` (array(row))  | one `unnest_part(rows, i)` per field                |
//! | `a[1].f` (a field of a subscripted value)| `a[1]['f']`                                        |
//! | `t CROSS JOIN UNNEST(t.a) AS u(x)`      | `(SELECT t.*, unnest(t.a) AS x FROM t) AS t`, and   |
//! | (or `FROM t, UNNEST(t.a) AS u(x)`)      | `u.x` read as `t.x` in the rest of the query        |
//!
//! `SYSTEM` sampling is row-level like `BERNOULLI` (lakehose has no block
//! sampling).
//! Inside `TRY`, calls to lakehose's own scalar functions (`date_parse`,
//! `json_parse`, `regexp_extract`, `from_hex`, ...) go to their lenient
//! `try_` twins, whose failing rows yield NULL; `try` itself stays, and once
//! the query is planned every other function call under it (DataFusion's
//! built-ins: `to_date`, `make_date`, `decode`, ...) is made lenient too
//! (`functions::catch_errors`).

use std::ops::ControlFlow;

use sqlparser::ast::{
    BinaryOperator, CastKind, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Ident, Query,
    Select, SelectItem, SetExpr, Statement, TableFactor, TableSampleKind, TableSampleMethod,
    TableSampleUnit, VisitMut, VisitorMut, visit_expressions_mut,
};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;

/// Rewrites `statement` in place so DataFusion can plan it.
///
/// Returns a user-facing message when the statement uses Presto syntax in a
/// form lakehose cannot run (e.g. `TABLESAMPLE ... REPEATABLE (seed)`).
pub fn rewrite(statement: &mut Statement) -> Result<(), String> {
    match statement.visit(&mut Rewriter) {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(msg) => Err(msg),
    }
}

struct Rewriter;

/// Names a select item that is neither a column nor aliased
/// `_col<position>`, as Athena and Presto do: `SELECT service, count(*)`
/// gives the columns `service` and `_col1`.
fn name_unnamed_columns(select: &mut Select) {
    for (i, item) in select.projection.iter_mut().enumerate() {
        if let SelectItem::UnnamedExpr(e) = item
            && !matches!(e, Expr::Identifier(_) | Expr::CompoundIdentifier(_))
        {
            *item = SelectItem::ExprWithAlias {
                expr: e.clone(),
                alias: Ident::new(format!("_col{i}")),
            };
        }
    }
}

impl VisitorMut for Rewriter {
    type Break = String;

    fn pre_visit_select(&mut self, select: &mut Select) -> ControlFlow<String> {
        name_unnamed_columns(select);
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<String> {
        if let Expr::CompoundFieldAccess { access_chain, .. } = expr {
            field_access_by_name(access_chain);
            return ControlFlow::Continue(());
        }
        if let Expr::AtTimeZone {
            timestamp,
            time_zone,
        } = expr
        {
            let call = format!("at_timezone({timestamp}, {time_zone})");
            match parse_expr(&call) {
                Ok(e) => *expr = e,
                Err(e) => return ControlFlow::Break(e),
            }
            return ControlFlow::Continue(());
        }
        let Expr::Function(f) = expr else {
            return ControlFlow::Continue(());
        };
        if f.name.0.len() != 1 {
            return ControlFlow::Continue(());
        }
        let name = f.name.to_string().to_ascii_lowercase();
        if name != "if" && name != "try" && name != "approx_distinct" {
            return ControlFlow::Continue(());
        }
        let args = match plain_args(&f.args) {
            Some(a) => a,
            None => return ControlFlow::Break(format!("{name}: unexpected argument syntax")),
        };
        match name.as_str() {
            "approx_distinct" => {
                if args.len() == 2 {
                    if let Err(e) = check_standard_error(&args[1]) {
                        return ControlFlow::Break(e);
                    }
                    if let FunctionArguments::List(l) = &mut f.args {
                        l.args.truncate(1);
                    }
                }
            }
            "if" => {
                if !(2..=3).contains(&args.len()) {
                    return ControlFlow::Break(format!(
                        "IF expects 2 or 3 arguments, got {}",
                        args.len()
                    ));
                }
                let mut case = match parse_expr("CASE WHEN NULL THEN NULL END") {
                    Ok(e) => e,
                    Err(e) => return ControlFlow::Break(e),
                };
                if let Expr::Case {
                    conditions,
                    else_result,
                    ..
                } = &mut case
                {
                    conditions[0].condition = args[0].clone();
                    conditions[0].result = args[1].clone();
                    *else_result = args.get(2).cloned().map(Box::new);
                }
                *expr = case;
            }
            _ => {
                if args.len() != 1 {
                    return ControlFlow::Break(format!(
                        "TRY expects 1 argument, got {}",
                        args.len()
                    ));
                }
                let mut inner = args[0].clone();
                if let ControlFlow::Break(e) = make_lenient(&mut inner) {
                    return ControlFlow::Break(e);
                }
                // `try` stays, as the marker of what the planned query
                // evaluates leniently (`functions::catch_errors`).
                if let FunctionArguments::List(l) = &mut f.args {
                    l.args = vec![FunctionArg::Unnamed(FunctionArgExpr::Expr(inner))];
                }
            }
        }
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, query: &mut Query) -> ControlFlow<String> {
        // Table factors are visited first, so UNNEST arguments are already
        // in their multi-argument form here.
        let renames = match query.body.as_mut() {
            SetExpr::Select(select) => match lateral_unnest(select) {
                Ok(r) => r,
                Err(e) => return ControlFlow::Break(e),
            },
            _ => Vec::new(),
        };
        if !renames.is_empty() {
            return rename_qualifiers(query, &renames);
        }
        ControlFlow::Continue(())
    }

    fn post_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<String> {
        if let TableFactor::UNNEST {
            alias,
            array_exprs,
            with_offset: false,
            with_ordinality,
            ..
        } = factor
            && let Err(e) = unnest(alias.as_ref(), array_exprs, with_ordinality)
        {
            return ControlFlow::Break(e);
        }
        if let TableFactor::Table { sample, .. } = factor
            && sample.is_some()
        {
            match sampled(factor) {
                Ok(t) => *factor = t,
                Err(e) => return ControlFlow::Break(e),
            }
        }
        ControlFlow::Continue(())
    }
}

/// `UNNEST(map) AS t(k, v)`, `UNNEST(array_of_rows) AS t(a, b, ...)` and
/// `WITH ORDINALITY`, as a multi-argument `UNNEST` DataFusion can plan.
fn unnest(
    alias: Option<&sqlparser::ast::TableAlias>,
    array_exprs: &mut Vec<Expr>,
    with_ordinality: &mut bool,
) -> Result<(), String> {
    let named = alias.map_or(0, |a| a.columns.len());
    let ordinality = usize::from(*with_ordinality);
    // One argument but several names: a map (key, value) or rows (fields).
    if array_exprs.len() == 1 && named > 1 + ordinality {
        let x = array_exprs[0].to_string();
        *array_exprs = (1..=named - ordinality)
            .map(|i| parse_expr(&format!("unnest_part({x}, {i})")))
            .collect::<Result<_, _>>()?;
    }
    if *with_ordinality {
        let lengths: Vec<String> = array_exprs
            .iter()
            .map(|e| format!("CAST(cardinality({e}) AS BIGINT)"))
            .collect();
        let longest = if lengths.len() == 1 {
            lengths[0].clone()
        } else {
            format!("greatest({})", lengths.join(", "))
        };
        array_exprs.push(parse_expr(&format!("range(1, {longest} + 1)"))?);
        *with_ordinality = false;
    }
    Ok(())
}

/// DataFusion cannot plan an `UNNEST` relation whose arguments refer to the
/// table it is joined with (a lateral reference). Folds each leading
/// `CROSS JOIN UNNEST(...) AS u(c, ...)` (or `, UNNEST(...)`) whose
/// arguments name columns into the relation before it, as a select-list
/// `unnest` (which DataFusion plans, zipping several arrays and dropping
/// rows whose arrays are NULL or empty, as Presto does). Returns the
/// qualifier renames (`u` → the relation's name) the rest of the query needs.
fn lateral_unnest(select: &mut Select) -> Result<Vec<(String, String)>, String> {
    let mut renames: Vec<(String, String)> = Vec::new();
    // `FROM t, UNNEST(t.a) AS u(x)`: the same as a CROSS JOIN.
    while select.from.len() >= 2
        && select.from[1].joins.is_empty()
        && lateral_columns(&select.from[1].relation).is_some()
    {
        let next = select.from.remove(1);
        select.from[0].joins.insert(
            0,
            sqlparser::ast::Join {
                relation: next.relation,
                global: false,
                join_operator: sqlparser::ast::JoinOperator::CrossJoin(
                    sqlparser::ast::JoinConstraint::None,
                ),
            },
        );
    }
    for from in &mut select.from {
        while let Some(join) = from.joins.first_mut() {
            if !matches!(
                join.join_operator,
                sqlparser::ast::JoinOperator::CrossJoin(sqlparser::ast::JoinConstraint::None)
            ) {
                break;
            }
            // Earlier folds renamed qualifiers the arguments may use.
            if let ControlFlow::Break(e) = rename_qualifiers(&mut join.relation, &renames) {
                return Err(e);
            }
            let Some((alias, columns)) = lateral_columns(&join.relation) else {
                break;
            };
            let Some(qualifier) = relation_name(&from.relation) else {
                break;
            };
            let TableFactor::UNNEST { array_exprs, .. } = &join.relation else {
                break;
            };
            if columns.len() != array_exprs.len() {
                return Err(format!(
                    "UNNEST AS {alias}(...) names {} columns for {} arrays",
                    columns.len(),
                    array_exprs.len()
                ));
            }
            let unnests: Vec<String> = array_exprs
                .iter()
                .zip(&columns)
                .map(|(e, c)| format!("unnest({e}) AS {c}"))
                .collect();
            let sql = format!(
                "SELECT * FROM (SELECT {qualifier}.*, {} FROM {}) AS {qualifier}",
                unnests.join(", "),
                from.relation
            );
            from.relation = parse_relation(&sql)?;
            from.joins.remove(0);
            renames.push((alias, qualifier.to_string()));
        }
    }
    Ok(renames)
}

/// The alias and column names of an `UNNEST` relation whose arguments refer
/// to columns (so it is lateral); `None` for anything else.
fn lateral_columns(factor: &TableFactor) -> Option<(String, Vec<String>)> {
    let TableFactor::UNNEST {
        alias: Some(alias),
        array_exprs,
        with_offset: false,
        with_ordinality: false,
        ..
    } = factor
    else {
        return None;
    };
    if alias.columns.is_empty() {
        return None;
    }
    let mut refers = false;
    let mut exprs = array_exprs.clone();
    let _ = visit_expressions_mut(&mut exprs, |e| {
        if matches!(e, Expr::Identifier(_) | Expr::CompoundIdentifier(_)) {
            refers = true;
        }
        ControlFlow::<()>::Continue(())
    });
    refers.then(|| {
        (
            alias.name.to_string(),
            alias.columns.iter().map(|c| c.name.to_string()).collect(),
        )
    })
}

/// The name a relation's columns are qualified with: its alias, or the last
/// part of its table name.
fn relation_name(factor: &TableFactor) -> Option<String> {
    match factor {
        TableFactor::Table {
            alias: Some(a),
            sample: None,
            ..
        }
        | TableFactor::Derived { alias: Some(a), .. } => Some(a.name.to_string()),
        TableFactor::Table {
            name, sample: None, ..
        } => name.0.last().map(|p| p.to_string()),
        _ => None,
    }
}

/// Rewrites `u.c` to `t.c` for every `(u, t)` in `renames`.
fn rename_qualifiers<V: VisitMut>(
    node: &mut V,
    renames: &[(String, String)],
) -> ControlFlow<String> {
    if renames.is_empty() {
        return ControlFlow::Continue(());
    }
    visit_expressions_mut(node, |e| {
        if let Expr::CompoundIdentifier(parts) = e
            && parts.len() >= 2
            && let Some((_, to)) = renames
                .iter()
                .rev()
                .find(|(from, _)| parts[0].value.eq_ignore_ascii_case(from.trim_matches('"')))
        {
            parts[0] = sqlparser::ast::Ident::new(to.trim_matches('"'));
        }
        ControlFlow::Continue(())
    })
}

/// Parses `SELECT * FROM <relation>` and returns the relation.
fn parse_relation(sql: &str) -> Result<TableFactor, String> {
    let mut stmts = Parser::parse_sql(&GenericDialect {}, sql).map_err(|e| e.to_string())?;
    let Some(Statement::Query(query)) = stmts.pop() else {
        return Err(format!("rewrite failed: {sql}"));
    };
    match *query.body {
        SetExpr::Select(select) => select
            .from
            .into_iter()
            .next()
            .map(|t| t.relation)
            .ok_or_else(|| format!("rewrite failed: {sql}")),
        _ => Err(format!("rewrite failed: {sql}")),
    }
}

/// Validates the `e` of `approx_distinct(x, e)`. lakehose's sketch has a
/// fixed standard error of about 0.4%, within every allowed `e`.
fn check_standard_error(e: &Expr) -> Result<(), String> {
    let text = e.to_string();
    match text.parse::<f64>() {
        Ok(v) if (0.0040625..=0.26).contains(&v) => Ok(()),
        Ok(v) => Err(format!(
            "approx_distinct: max standard error must be in [0.0040625, 0.26000], got {v}"
        )),
        Err(_) => Err("approx_distinct: max standard error must be a constant".into()),
    }
}

/// The arguments of a call when all are plain positional expressions.
fn plain_args(args: &FunctionArguments) -> Option<Vec<Expr>> {
    match args {
        FunctionArguments::List(l) if l.duplicate_treatment.is_none() && l.clauses.is_empty() => l
            .args
            .iter()
            .map(|a| match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e.clone()),
                _ => None,
            })
            .collect(),
        FunctionArguments::None => Some(Vec::new()),
        _ => None,
    }
}

/// `a[1].name` (a field of a subscripted value) as `a[1]['name']`, which
/// DataFusion plans as a field access.
fn field_access_by_name(chain: &mut [sqlparser::ast::AccessExpr]) {
    use sqlparser::ast::{AccessExpr, Subscript, Value};
    for access in chain.iter_mut() {
        if let AccessExpr::Dot(Expr::Identifier(ident)) = access {
            let name = match ident.quote_style {
                Some(_) => ident.value.clone(),
                None => ident.value.to_ascii_lowercase(),
            };
            *access = AccessExpr::Subscript(Subscript::Index {
                index: Expr::value(Value::SingleQuotedString(name)),
            });
        }
    }
}

fn parse_expr(sql: &str) -> Result<Expr, String> {
    Parser::new(&GenericDialect {})
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_expr())
        .map_err(|e| e.to_string())
}

/// Makes the failures `TRY` is meant to catch yield NULL instead.
fn make_lenient(expr: &mut Expr) -> ControlFlow<String> {
    visit_expressions_mut(expr, |e| {
        match e {
            Expr::Cast { kind, .. }
                if *kind != CastKind::TryCast && *kind != CastKind::SafeCast =>
            {
                *kind = CastKind::TryCast;
            }
            Expr::Function(f) if f.name.0.len() == 1 => {
                if let Some(twin) = crate::functions::lenient_twin(&f.name.to_string()) {
                    f.name =
                        sqlparser::ast::ObjectName::from(vec![sqlparser::ast::Ident::new(twin)]);
                }
            }
            Expr::BinaryOp {
                op: BinaryOperator::Divide | BinaryOperator::Modulo,
                right,
                ..
            } => {
                let divisor =
                    std::mem::replace(right.as_mut(), Expr::value(sqlparser::ast::Value::Null));
                let mut nullif = match parse_expr("NULLIF(NULL, 0)") {
                    Ok(n) => n,
                    Err(e) => return ControlFlow::Break(e),
                };
                if let Expr::Function(f) = &mut nullif
                    && let FunctionArguments::List(l) = &mut f.args
                {
                    l.args[0] = FunctionArg::Unnamed(FunctionArgExpr::Expr(divisor));
                }
                **right = nullif;
            }
            _ => {}
        }
        ControlFlow::Continue(())
    })
}

/// `t TABLESAMPLE BERNOULLI (p)` as a filtered derived table.
fn sampled(factor: &TableFactor) -> Result<TableFactor, String> {
    let mut table = factor.clone();
    let TableFactor::Table {
        name,
        alias,
        sample,
        ..
    } = &mut table
    else {
        return Err("TABLESAMPLE: unexpected relation".into());
    };
    let s = match sample.take() {
        Some(TableSampleKind::BeforeTableAlias(s) | TableSampleKind::AfterTableAlias(s)) => s,
        None => return Err("TABLESAMPLE: missing sample".into()),
    };
    match s.name {
        Some(TableSampleMethod::Bernoulli | TableSampleMethod::System) | None => {}
        Some(other) => {
            return Err(format!(
                "TABLESAMPLE {other} is not supported; use BERNOULLI or SYSTEM"
            ));
        }
    }
    if s.seed.is_some() || s.bucket.is_some() || s.offset.is_some() {
        return Err("TABLESAMPLE supports only BERNOULLI (p) or SYSTEM (p)".into());
    }
    let Some(q) = s.quantity else {
        return Err("TABLESAMPLE needs a percentage".into());
    };
    if matches!(q.unit, Some(TableSampleUnit::Rows)) {
        return Err("TABLESAMPLE ... ROWS is not supported; give a percentage".into());
    }
    let alias_sql = match alias.take() {
        Some(mut a) => {
            a.explicit = true;
            a.to_string()
        }
        None => match name.0.last() {
            Some(part) => format!("AS {part}"),
            None => return Err("TABLESAMPLE: empty table name".into()),
        },
    };
    parse_relation(&format!(
        "SELECT * FROM (SELECT * FROM {table} WHERE random() * 100 < ({value})) {alias_sql}",
        value = q.value
    ))
}

#[cfg(test)]
mod tests {
    use sqlparser::dialect::GenericDialect;
    use sqlparser::parser::Parser;

    use crate::functions::test_util::{ctx, err, one, run};

    fn rewritten(sql: &str) -> String {
        let mut s = Parser::parse_sql(&GenericDialect {}, sql)
            .unwrap()
            .remove(0);
        super::rewrite(&mut s).unwrap();
        s.to_string()
    }

    #[test]
    fn rewrites_as_text() {
        assert_eq!(
            rewritten("SELECT if(a > 1, 'x', 'y') FROM t"),
            "SELECT CASE WHEN a > 1 THEN 'x' ELSE 'y' END AS _col0 FROM t"
        );
        assert_eq!(
            rewritten("SELECT try(CAST(a AS INT) / b) FROM t"),
            "SELECT try(TRY_CAST(a AS INT) / NULLIF(b, 0)) AS _col0 FROM t"
        );
        // Unnamed expressions are named by position, as Athena names them.
        assert_eq!(
            rewritten("SELECT service, t.x, count(*), a + 1 AS y FROM t"),
            "SELECT service, t.x, count(*) AS _col2, a + 1 AS y FROM t"
        );
        assert_eq!(
            rewritten("SELECT * FROM db.t TABLESAMPLE BERNOULLI (10)"),
            "SELECT * FROM (SELECT * FROM db.t WHERE random() * 100 < (10)) AS t"
        );
    }

    #[tokio::test]
    async fn fields_of_subscripted_values() {
        let c = ctx();
        assert_eq!(
            one(
                &c,
                "SELECT a[2].Name FROM (SELECT [named_struct('name', 'x'), named_struct('name', 'y')] AS a)"
            )
            .await,
            "y"
        );
    }

    #[tokio::test]
    async fn conditional_and_try() {
        let c = ctx();
        assert_eq!(one(&c, "SELECT if(1 > 0, 'yes', 'no')").await, "yes");
        assert_eq!(one(&c, "SELECT if(1 < 0, 'yes')").await, "NULL");
        // Branches are lazy: the untaken division never runs.
        assert_eq!(
            one(&c, "SELECT if(x = 0, -1, 10 / x) FROM (VALUES (0)) t(x)").await,
            "-1"
        );
        assert_eq!(one(&c, "SELECT try(CAST('abc' AS INTEGER))").await, "NULL");
        assert_eq!(
            one(&c, "SELECT try(10 / x) FROM (VALUES (0)) t(x)").await,
            "NULL"
        );
        assert_eq!(
            one(&c, "SELECT coalesce(try(10 % x), 7) FROM (VALUES (0)) t(x)").await,
            "7"
        );
        assert_eq!(one(&c, "SELECT try(CAST('12' AS INTEGER)) + 1").await, "13");
        let rows = run(
            &c,
            "SELECT try(date_parse(s, '%Y-%m-%d')) IS NULL FROM (VALUES ('2024-01-02'), ('bad'), (NULL)) t(s)",
        )
        .await
        .unwrap();
        assert_eq!(rows, vec![vec!["false"], vec!["true"], vec!["true"]]);
        assert_eq!(one(&c, "SELECT try(json_parse('{oops'))").await, "NULL");
        assert_eq!(
            one(&c, "SELECT try(split_part('a,b', ',', 0))").await,
            "NULL"
        );
        assert!(
            err(&c, "SELECT if(true)")
                .await
                .contains("IF expects 2 or 3")
        );
        assert_eq!(
            one(
                &c,
                "SELECT approx_distinct(x, 0.01) FROM (VALUES (1), (2), (2)) t(x)"
            )
            .await,
            "2"
        );
        assert!(
            err(&c, "SELECT approx_distinct(1, 0.5)")
                .await
                .contains("max standard error")
        );
        assert!(err(&c, "SELECT try(1, 2)").await.contains("TRY expects 1"));
        // DataFusion's own functions under TRY: the failing rows are NULL,
        // the others keep their values.
        let e = err(&c, "SELECT to_date('bad')").await;
        assert!(e.contains("Date32"), "{e}");
        let rows = run(
            &c,
            "SELECT try(to_date(s)), try(make_date(2024, m, 1)) \
             FROM (VALUES ('2024-01-02', 1), ('bad', 13), (NULL, 2)) t(s, m)",
        )
        .await
        .unwrap();
        assert_eq!(
            rows,
            vec![
                vec!["2024-01-02", "2024-01-01"],
                vec!["NULL", "NULL"],
                vec!["NULL", "2024-02-01"]
            ]
        );
        assert_eq!(
            one(&c, "SELECT try(decode('%%', 'base64')) IS NULL").await,
            "true"
        );
        // Nested in other expressions and in a subquery.
        assert_eq!(
            one(
                &c,
                "SELECT coalesce(try(make_date(2024, 2, 30)), DATE '1970-01-01') \
                 FROM (SELECT 1 AS x) WHERE x IN (SELECT 1 WHERE try(to_date('x')) IS NULL)"
            )
            .await,
            "1970-01-01"
        );
    }

    #[tokio::test]
    async fn unnest_forms() {
        let c = ctx();
        let rows = run(
            &c,
            "SELECT x, n FROM UNNEST(ARRAY['a', 'b']) WITH ORDINALITY AS t(x, n)",
        )
        .await
        .unwrap();
        assert_eq!(rows, vec![vec!["a", "1"], vec!["b", "2"]]);
        let rows = run(
            &c,
            "SELECT a, x, n FROM (VALUES (1), (2)) s(a) CROSS JOIN UNNEST(ARRAY['p', 'q']) WITH ORDINALITY AS t(x, n) ORDER BY a, n",
        )
        .await
        .unwrap();
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[3], ["2", "q", "2"]);
        let rows = run(
            &c,
            "SELECT k, v FROM UNNEST(MAP(ARRAY['a', 'b'], ARRAY[1, 2])) AS t(k, v) ORDER BY k",
        )
        .await
        .unwrap();
        assert_eq!(rows, vec![vec!["a", "1"], vec!["b", "2"]]);
        let rows = run(
            &c,
            "SELECT k, v, n FROM UNNEST(MAP(ARRAY['a'], ARRAY[1])) WITH ORDINALITY AS t(k, v, n)",
        )
        .await
        .unwrap();
        assert_eq!(rows, vec![vec!["a", "1", "1"]]);
        let rows = run(
            &c,
            "SELECT a, b FROM UNNEST(ARRAY[ROW(1, 'x'), ROW(2, 'y')]) AS t(a, b)",
        )
        .await
        .unwrap();
        assert_eq!(rows, vec![vec!["1", "x"], vec!["2", "y"]]);
        let e = err(&c, "SELECT * FROM UNNEST(ARRAY[1, 2]) AS t(a, b)").await;
        assert!(e.contains("one column"), "{e}");
    }

    #[tokio::test]
    async fn lateral_unnest() {
        let c = ctx();
        run(
            &c,
            "CREATE TABLE ev AS SELECT * FROM (VALUES (1, ARRAY['a', 'b'], ARRAY[10, 20, 30]), \
             (2, ARRAY['c'], ARRAY[40]), (3, CAST(NULL AS VARCHAR[]), ARRAY[50]), \
             (4, ARRAY[]::VARCHAR[], ARRAY[60])) AS s(id, tags, nums)",
        )
        .await
        .unwrap();
        // The arrays of the row it is joined with; NULL and empty arrays
        // give no rows.
        let rows = run(
            &c,
            "SELECT e.id, u.tag FROM ev e CROSS JOIN UNNEST(e.tags) AS u(tag) ORDER BY 1, 2",
        )
        .await
        .unwrap();
        assert_eq!(rows, vec![vec!["1", "a"], vec!["1", "b"], vec!["2", "c"]]);
        // Comma syntax, unqualified names, ordinality, WHERE and GROUP BY.
        let rows = run(
            &c,
            "SELECT id, count(*), max(n) FROM ev, UNNEST(nums) WITH ORDINALITY AS u(x, n) \
             WHERE u.x > 10 GROUP BY id ORDER BY id",
        )
        .await
        .unwrap();
        assert_eq!(
            rows,
            vec![
                vec!["1", "2", "3"],
                vec!["2", "1", "1"],
                vec!["3", "1", "1"],
                vec!["4", "1", "1"]
            ]
        );
        // Two arrays zip (the shorter padded with NULL); chained UNNESTs.
        let rows = run(
            &c,
            "SELECT ev.id, u.t, u.x FROM ev CROSS JOIN UNNEST(ev.tags, ev.nums) AS u(t, x) \
             WHERE ev.id = 1 ORDER BY u.x",
        )
        .await
        .unwrap();
        assert_eq!(
            rows,
            vec![
                vec!["1", "a", "10"],
                vec!["1", "b", "20"],
                vec!["1", "NULL", "30"]
            ]
        );
        let rows = run(
            &c,
            "SELECT count(*) FROM ev CROSS JOIN UNNEST(ev.tags) AS u(t) \
             CROSS JOIN UNNEST(ev.nums) AS v(x)",
        )
        .await
        .unwrap();
        assert_eq!(rows, vec![vec!["7"]]);
    }

    #[tokio::test]
    async fn at_time_zone() {
        let c = ctx();
        assert_eq!(
            one(
                &c,
                "SELECT to_iso8601(TIMESTAMP '2024-01-01 12:00:00' AT TIME ZONE 'Asia/Tokyo')"
            )
            .await,
            "2024-01-01T21:00:00.000+09:00"
        );
        assert_eq!(
            one(
                &c,
                "SELECT hour(from_unixtime(0) AT TIME ZONE 'America/Los_Angeles')"
            )
            .await,
            "16"
        );
        assert!(
            err(
                &c,
                "SELECT TIMESTAMP '2024-01-01 00:00:00' AT TIME ZONE 'Nowhere/Land'"
            )
            .await
            .contains("unknown time zone")
        );
    }

    #[tokio::test]
    async fn tablesample() {
        let c = ctx();
        c.sql("CREATE TABLE nums AS SELECT value AS v FROM generate_series(1, 2000)")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        assert_eq!(
            one(&c, "SELECT count(*) FROM nums TABLESAMPLE BERNOULLI (100)").await,
            "2000"
        );
        assert_eq!(
            one(&c, "SELECT count(*) FROM nums TABLESAMPLE SYSTEM (0)").await,
            "0"
        );
        let n: i64 = one(
            &c,
            "SELECT count(n.v) FROM nums AS n TABLESAMPLE BERNOULLI (50)",
        )
        .await
        .parse()
        .unwrap();
        assert!((700..1300).contains(&n), "{n}");
        let rows = run(
            &c,
            "SELECT count(*) FROM nums TABLESAMPLE BERNOULLI (10) REPEATABLE (1)",
        )
        .await;
        assert!(rows.unwrap_err().contains("TABLESAMPLE"));
    }
}
