//! A bound on how deeply a statement can nest, checked on its tokens before
//! any parser builds a tree of it.
//!
//! SQL parsers recurse into parentheses, subqueries and prefix operators
//! with a recursion limit, but they build chains of infix operators
//! (`a + b + c ...`, `x::int::int ...`), set operations (`... UNION ...`)
//! and joins in a loop: a 250 KiB statement can become a tree thousands of
//! levels deep. Cloning, rewriting, planning, dropping and evaluating such a
//! tree recurses once per level, and a stack overflow is not a panic that can
//! be caught: it aborts the whole server. So the depth a statement can reach
//! is bounded from its tokens (which are read in a loop), and a statement
//! past [`MAX_SQL_NESTING`] is refused before anything recursive sees it.
//!
//! The estimate is an upper bound on the depth of the tree a parser builds
//! from the loops above: within one bracket level, every infix or postfix
//! operator since the last `,` or clause keyword, and every set operation
//! and join, can add a level, and every open bracket adds one. What the
//! parser nests by recursion (CASE inside CASE, NOT NOT ...) is bounded by
//! its own limit.

use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

use crate::contract::QueryError;

/// The deepest nesting a statement may reach: operators chained within one
/// expression plus bracket levels. Past it the statement is refused with
/// `QUERY_TOO_COMPLEX`. A thousand leaves room for generated queries (a
/// filter of hundreds of `OR` terms) while a tree that deep is still cloned,
/// planned, evaluated and dropped far inside the query threads' stacks.
pub const MAX_SQL_NESTING: usize = 1000;

/// Refuses `sql` when the trees parsed from it could nest deeper than
/// [`MAX_SQL_NESTING`]. Text that does not tokenize is left for the parser,
/// which reports the syntax error.
pub fn check(sql: &str) -> Result<(), QueryError> {
    let depth = estimate(sql);
    if depth > MAX_SQL_NESTING {
        return Err(QueryError::coded(
            crate::error::ErrorCode::QueryTooComplex,
            format!(
                "QUERY_TOO_COMPLEX: the statement nests about {depth} levels deep (chained operators, \
                 set operations, joins and brackets); lakehose allows at most {MAX_SQL_NESTING}: \
                 split long chains (e.g. a long OR of equalities into IN (...))"
            ),
        ));
    }
    Ok(())
}

/// The estimated nesting depth of the deepest statement in `sql` (0 when it
/// does not tokenize).
pub(crate) fn estimate(sql: &str) -> usize {
    let Ok(tokens) = Tokenizer::new(&GenericDialect {}, sql).tokenize() else {
        return 0;
    };
    // Per open bracket: operators chained since the last separator, and set
    // operations and joins chained at that level (which span the separators
    // of the queries and relations they join).
    let mut levels: Vec<Level> = vec![Level::default()];
    let mut chained = 0usize;
    let mut deepest = 0usize;
    for token in &tokens {
        match token {
            Token::LParen | Token::LBracket | Token::LBrace => levels.push(Level::default()),
            Token::RParen | Token::RBracket | Token::RBrace => {
                if levels.len() > 1
                    && let Some(level) = levels.pop()
                {
                    chained -= level.operators + level.sets;
                }
            }
            Token::Comma => reset_operators(&mut levels, &mut chained),
            Token::SemiColon => {
                levels.clear();
                levels.push(Level::default());
                chained = 0;
            }
            Token::Word(word) => {
                if joins(word.keyword) {
                    if let Some(top) = levels.last_mut() {
                        top.sets += 1;
                        chained += 1;
                    }
                } else if chains(word.keyword) {
                    bump(&mut levels, &mut chained);
                } else if separates(word.keyword) {
                    reset_operators(&mut levels, &mut chained);
                }
            }
            Token::EOF
            | Token::Number(..)
            | Token::Char(_)
            | Token::SingleQuotedString(_)
            | Token::DoubleQuotedString(_)
            | Token::TripleSingleQuotedString(_)
            | Token::TripleDoubleQuotedString(_)
            | Token::DollarQuotedString(_)
            | Token::SingleQuotedByteStringLiteral(_)
            | Token::DoubleQuotedByteStringLiteral(_)
            | Token::TripleSingleQuotedByteStringLiteral(_)
            | Token::TripleDoubleQuotedByteStringLiteral(_)
            | Token::SingleQuotedRawStringLiteral(_)
            | Token::DoubleQuotedRawStringLiteral(_)
            | Token::TripleSingleQuotedRawStringLiteral(_)
            | Token::TripleDoubleQuotedRawStringLiteral(_)
            | Token::NationalStringLiteral(_)
            | Token::QuoteDelimitedStringLiteral(_)
            | Token::NationalQuoteDelimitedStringLiteral(_)
            | Token::EscapedStringLiteral(_)
            | Token::UnicodeStringLiteral(_)
            | Token::HexStringLiteral(_)
            | Token::Whitespace(_)
            | Token::Period
            | Token::Placeholder(_)
            | Token::Colon => {}
            // Every other token is an operator the parser chains in a loop
            // (arithmetic, comparison, concatenation, casts, JSON access).
            _ => bump(&mut levels, &mut chained),
        }
        deepest = deepest.max(chained + levels.len());
    }
    deepest
}

#[derive(Default)]
struct Level {
    operators: usize,
    sets: usize,
}

fn bump(levels: &mut [Level], chained: &mut usize) {
    if let Some(top) = levels.last_mut() {
        top.operators += 1;
        *chained += 1;
    }
}

fn reset_operators(levels: &mut [Level], chained: &mut usize) {
    if let Some(top) = levels.last_mut() {
        *chained -= top.operators;
        top.operators = 0;
    }
}

/// Keywords that chain queries or relations: set operations and joins.
fn joins(keyword: Keyword) -> bool {
    matches!(
        keyword,
        Keyword::UNION
            | Keyword::INTERSECT
            | Keyword::EXCEPT
            | Keyword::MINUS
            | Keyword::JOIN
            | Keyword::APPLY
            | Keyword::PIVOT
            | Keyword::UNPIVOT
    )
}

/// Operator keywords a parser chains in a loop: boolean, comparison and
/// arithmetic ones.
fn chains(keyword: Keyword) -> bool {
    matches!(
        keyword,
        Keyword::AND
            | Keyword::OR
            | Keyword::XOR
            | Keyword::NOT
            | Keyword::IS
            | Keyword::LIKE
            | Keyword::ILIKE
            | Keyword::SIMILAR
            | Keyword::RLIKE
            | Keyword::REGEXP
            | Keyword::BETWEEN
            | Keyword::IN
            | Keyword::AT
            | Keyword::COLLATE
            | Keyword::DIV
            | Keyword::MOD
            | Keyword::OVERLAPS
            | Keyword::MEMBER
    )
}

/// Keywords that start a new, separate expression at the same bracket level.
fn separates(keyword: Keyword) -> bool {
    matches!(
        keyword,
        Keyword::SELECT
            | Keyword::FROM
            | Keyword::WHERE
            | Keyword::GROUP
            | Keyword::HAVING
            | Keyword::QUALIFY
            | Keyword::WINDOW
            | Keyword::ORDER
            | Keyword::LIMIT
            | Keyword::OFFSET
            | Keyword::FETCH
            | Keyword::ON
            | Keyword::USING
            | Keyword::WHEN
            | Keyword::THEN
            | Keyword::ELSE
            | Keyword::END
            | Keyword::VALUES
            | Keyword::SET
            | Keyword::RETURNING
            | Keyword::PARTITION
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(op: &str, n: usize) -> String {
        format!("SELECT {}", vec!["1"; n].join(op))
    }

    #[test]
    fn ordinary_queries_are_shallow() {
        for sql in [
            "SELECT a, b + c * d FROM t WHERE x = 1 AND y IN (1, 2, 3) GROUP BY 1 ORDER BY 2 LIMIT 10",
            "SELECT CASE WHEN a > 1 THEN 'x' ELSE 'y' END, count(*) FROM t JOIN u ON t.k = u.k",
            "WITH w AS (SELECT 1 AS x) SELECT * FROM w UNION ALL SELECT 2",
        ] {
            assert!(estimate(sql) < 12, "{sql}: {}", estimate(sql));
            check(sql).unwrap();
        }
    }

    #[test]
    fn the_estimate_bounds_every_looped_chain() {
        for op in [
            " + ",
            " || ",
            " OR ",
            " AND ",
            " = ",
            "::int",
            " UNION SELECT ",
        ] {
            let sql = chain(op, 2000);
            assert!(estimate(&sql) >= 1999, "{op}: {}", estimate(&sql));
            let err = check(&sql).unwrap_err();
            assert_eq!(err.code, crate::error::ErrorCode::QueryTooComplex, "{op}");
            assert!(err.message.contains("QUERY_TOO_COMPLEX"), "{}", err.message);
        }
        let joins = format!(
            "SELECT 1 FROM t0 {}",
            (1..2000)
                .map(|i| format!("JOIN t{i} ON true"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        assert!(estimate(&joins) >= 1999);
        assert!(check(&joins).is_err());
    }

    #[test]
    fn separators_reset_the_chain_but_brackets_add_up() {
        // Many short expressions side by side are fine.
        let wide = format!(
            "SELECT {}",
            (0..3000)
                .map(|i| format!("c{i} + 1"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        assert!(estimate(&wide) < 5);
        // A chain inside brackets counts with the chain around them.
        let nested = format!("SELECT 1 + ({})", vec!["1"; 1500].join(" + "));
        assert!(estimate(&nested) >= 1500);
        // Unbalanced closing brackets do not underflow.
        assert_eq!(estimate(") ) ) SELECT 1"), 1);
    }

    #[test]
    fn hostile_text_never_panics() {
        for sql in [
            "",
            "'unterminated",
            "/* unterminated",
            "\u{3000}SELECT\u{3000}1",
            &"(".repeat(100_000),
            &")".repeat(100_000),
            &"[".repeat(50_000),
        ] {
            let _ = estimate(sql);
            let _ = check(sql);
        }
        assert!(check(&"(".repeat(100_000)).is_err());
    }
}
