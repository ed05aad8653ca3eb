//! SQL text without a parser: splitting a script or a query string into
//! statements, finding `$n` placeholders and replacing them, the first
//! keyword, all while respecting string literals (`'...'`, `E'...'`,
//! dollar quotes), quoted identifiers (`"..."`, `` `...` ``) and comments
//! (`--`, nested `/* */`). The one splitter of lakehose: `lakehose query -f`,
//! the SQL shell, ETL job files and Postgres query strings.

/// A `$n` placeholder in a statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placeholder {
    /// Byte offset of the `$`.
    pub start: usize,
    /// Byte offset just past the last digit.
    pub end: usize,
    /// The 1-based parameter number.
    pub number: usize,
}

/// The highest parameter number accepted (the protocol's own limit).
pub const MAX_PARAMETERS: usize = u16::MAX as usize;

/// What the scanner reports while walking a query string.
enum Event {
    Semicolon(usize),
    Placeholder(Placeholder),
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

/// Walks `sql`, reporting top-level semicolons and placeholders outside of
/// literals, quoted identifiers and comments.
fn scan(sql: &str, mut on_event: impl FnMut(Event)) {
    let bytes = sql.as_bytes();
    let len = bytes.len();
    let mut i = 0;
    while i < len {
        let b = bytes[i];
        let prev_is_ident = i > 0 && is_ident_byte(bytes[i - 1]);
        match b {
            b'\'' => {
                // E'...' strings allow backslash escapes.
                let escapes = i > 0
                    && matches!(bytes[i - 1], b'e' | b'E')
                    && !(i > 1 && is_ident_byte(bytes[i - 2]));
                i = skip_quoted(bytes, i + 1, b'\'', escapes);
            }
            b'"' | b'`' => i = skip_quoted(bytes, i + 1, b, false),
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < len && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => i = skip_block_comment(bytes, i),
            b'$' if !prev_is_ident => {
                let next = bytes.get(i + 1).copied();
                if next.is_some_and(|c| c.is_ascii_digit()) {
                    let mut j = i + 1;
                    let mut number = 0usize;
                    while j < len && bytes[j].is_ascii_digit() {
                        number = number
                            .saturating_mul(10)
                            .saturating_add(usize::from(bytes[j] - b'0'));
                        j += 1;
                    }
                    on_event(Event::Placeholder(Placeholder {
                        start: i,
                        end: j,
                        number,
                    }));
                    i = j;
                } else if let Some(tag_end) = dollar_tag_end(bytes, i) {
                    // $tag$ ... $tag$
                    let tag = &bytes[i..=tag_end];
                    let mut j = tag_end + 1;
                    let mut closed = None;
                    while j + tag.len() <= len {
                        if &bytes[j..j + tag.len()] == tag {
                            closed = Some(j + tag.len());
                            break;
                        }
                        j += 1;
                    }
                    i = closed.unwrap_or(len);
                } else {
                    i += 1;
                }
            }
            b';' => {
                on_event(Event::Semicolon(i));
                i += 1;
            }
            _ => i += 1,
        }
    }
}

/// Skips the block comment opening at `start` (`/*`; comments nest, as in
/// Postgres) to just past its end; an unterminated one runs to the end.
fn skip_block_comment(bytes: &[u8], start: usize) -> usize {
    let mut depth = 1usize;
    let mut i = start + 2;
    while i < bytes.len() && depth > 0 {
        if bytes[i] == b'/' && bytes.get(i + 1) == Some(&b'*') {
            depth += 1;
            i += 2;
        } else if bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/') {
            depth -= 1;
            i += 2;
        } else {
            i += 1;
        }
    }
    i.min(bytes.len())
}

/// Skips to just past the closing `quote` (a doubled quote is an escaped
/// one); unterminated literals run to the end.
fn skip_quoted(bytes: &[u8], mut i: usize, quote: u8, backslash_escapes: bool) -> usize {
    while i < bytes.len() {
        let b = bytes[i];
        if backslash_escapes && b == b'\\' {
            i += 2;
        } else if b == quote {
            if bytes.get(i + 1) == Some(&quote) {
                i += 2;
            } else {
                return i + 1;
            }
        } else {
            i += 1;
        }
    }
    bytes.len()
}

/// When a dollar-quote opening tag (`$$` or `$name$`) starts at `start`,
/// the offset of its closing `$`.
fn dollar_tag_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut j = start + 1;
    if bytes.get(j) == Some(&b'$') {
        return Some(j);
    }
    if !bytes
        .get(j)
        .is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_' || *c >= 0x80)
    {
        return None;
    }
    while j < bytes.len() {
        let c = bytes[j];
        if c == b'$' {
            return Some(j);
        }
        if !(c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80) {
            return None;
        }
        j += 1;
    }
    None
}

/// Splits a script or query string at top-level semicolons into its
/// statements, each without the whitespace and comments around it;
/// statements of nothing but whitespace and comments are dropped.
pub fn split_statements(sql: &str) -> Vec<&str> {
    let mut cuts = Vec::new();
    scan(sql, |event| {
        if let Event::Semicolon(at) = event {
            cuts.push(at);
        }
    });
    let mut statements = Vec::new();
    let mut begin = 0;
    for cut in cuts.into_iter().chain(std::iter::once(sql.len())) {
        let piece = &sql[begin..cut];
        if let Some(start) = first_token_offset(piece) {
            statements.push(trim_statement(&piece[start..]));
        }
        begin = (cut + 1).min(sql.len());
    }
    statements
}

/// Offset of the first byte that is not whitespace, `;` or a comment.
fn first_token_offset(sql: &str) -> Option<usize> {
    let bytes = sql.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b.is_ascii_whitespace() || b == b';' {
            i += 1;
        } else if b == b'-' && bytes.get(i + 1) == Some(&b'-') {
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
        } else if b == b'/' && bytes.get(i + 1) == Some(&b'*') {
            i = skip_block_comment(bytes, i);
        } else {
            return Some(i);
        }
    }
    None
}

/// The statement's first keyword, lower-cased (`select`, `with`, `show`,
/// ...); `(` for a parenthesised query; empty when there is none.
pub fn first_keyword(sql: &str) -> String {
    let Some(start) = first_token_offset(sql) else {
        return String::new();
    };
    let rest = &sql[start..];
    if rest.starts_with('(') {
        return "(".to_string();
    }
    rest.chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect::<String>()
        .to_lowercase()
}

/// The placeholders of `sql`, in text order.
pub fn placeholders(sql: &str) -> Vec<Placeholder> {
    let mut found = Vec::new();
    scan(sql, |event| {
        if let Event::Placeholder(p) = event {
            found.push(p);
        }
    });
    found
}

/// Replaces every placeholder with `replacement(placeholder)`.
pub fn substitute<E>(
    sql: &str,
    mut replacement: impl FnMut(&Placeholder) -> Result<String, E>,
) -> Result<String, E> {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut last = 0;
    for p in placeholders(sql) {
        out.push_str(&sql[last..p.start]);
        out.push_str(&replacement(&p)?);
        last = p.end;
    }
    out.push_str(&sql[last..]);
    Ok(out)
}

/// Removes trailing whitespace, semicolons and comments from a statement so
/// that it can be wrapped in a subquery.
pub fn trim_statement(sql: &str) -> &str {
    // The end of the last byte that is code (not whitespace, comment or `;`).
    let mut end = 0;
    let bytes = sql.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'\'' => {
                let escapes = i > 0
                    && matches!(bytes[i - 1], b'e' | b'E')
                    && !(i > 1 && is_ident_byte(bytes[i - 2]));
                i = skip_quoted(bytes, i + 1, b'\'', escapes);
                end = i;
            }
            b'"' | b'`' => {
                i = skip_quoted(bytes, i + 1, b, false);
                end = i;
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                let rest = &sql[i..];
                let skipped = first_token_offset(rest).unwrap_or(rest.len());
                // first_token_offset also skips whitespace and `;` after the
                // comment; that is harmless here.
                i += skipped.max(2);
            }
            b'$' if dollar_tag_end(bytes, i).is_some()
                && !(i > 0 && is_ident_byte(bytes[i - 1])) =>
            {
                let tag_end = dollar_tag_end(bytes, i).unwrap_or(i);
                let tag = &bytes[i..=tag_end];
                let mut j = tag_end + 1;
                let mut closed = bytes.len();
                while j + tag.len() <= bytes.len() {
                    if &bytes[j..j + tag.len()] == tag {
                        closed = j + tag.len();
                        break;
                    }
                    j += 1;
                }
                i = closed;
                end = i;
            }
            b';' => i += 1,
            c if c.is_ascii_whitespace() => i += 1,
            _ => {
                i += 1;
                end = i;
            }
        }
    }
    // `end` lands after an ASCII byte, a closing quote or the last
    // continuation byte of a character; stay on a boundary regardless.
    let mut cut = end.min(sql.len());
    while !sql.is_char_boundary(cut) {
        cut += 1;
    }
    sql[..cut].trim_start()
}

/// A single-quoted SQL string literal for `value`. Backslashes are kept out
/// of the literal (spliced in with `chr(92)`) so the result means the same
/// whether or not the engine's dialect treats backslash as an escape.
pub fn quote_literal(value: &str) -> String {
    if value.contains('\\') {
        let parts: Vec<String> = value
            .split('\\')
            .map(|part| format!("'{}'", part.replace('\'', "''")))
            .collect();
        format!("({})", parts.join(" || chr(92) || "))
    } else {
        format!("'{}'", value.replace('\'', "''"))
    }
}

/// A lexical token of a session command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    /// An unquoted word, lower-cased.
    Word(String),
    /// A double-quoted identifier, as written.
    Quoted(String),
    /// A single-quoted string, unescaped.
    Str(String),
    /// A number as written.
    Number(String),
    /// Any other character.
    Punct(char),
}

impl Token {
    /// The token's text as a setting value (words keep their lower case).
    pub fn text(&self) -> String {
        match self {
            Token::Word(s) | Token::Quoted(s) | Token::Str(s) | Token::Number(s) => s.clone(),
            Token::Punct(c) => c.to_string(),
        }
    }

    /// Whether this is the unquoted keyword `kw` (lower case).
    pub fn is(&self, kw: &str) -> bool {
        matches!(self, Token::Word(w) if w == kw)
    }
}

/// Tokenizes a short command; `None` when it holds something the session
/// command parser does not handle (comments inside, unterminated quotes).
pub fn tokenize(sql: &str) -> Option<Vec<Token>> {
    let mut tokens = Vec::new();
    let chars: Vec<char> = sql.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '-' && chars.get(i + 1) == Some(&'-')
            || c == '/' && chars.get(i + 1) == Some(&'*')
        {
            return None;
        } else if c == '\'' || c == '"' {
            let mut value = String::new();
            i += 1;
            loop {
                let ch = *chars.get(i)?;
                if ch == c {
                    if chars.get(i + 1) == Some(&c) {
                        value.push(c);
                        i += 2;
                        continue;
                    }
                    i += 1;
                    break;
                }
                value.push(ch);
                i += 1;
            }
            tokens.push(if c == '\'' {
                Token::Str(value)
            } else {
                Token::Quoted(value)
            });
        } else if c.is_alphabetic() || c == '_' {
            let mut word = String::new();
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$')
            {
                word.push(chars[i]);
                i += 1;
            }
            tokens.push(Token::Word(word.to_lowercase()));
        } else if c.is_ascii_digit()
            || ((c == '-' || c == '+' || c == '.')
                && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()))
        {
            let mut number = String::new();
            number.push(c);
            i += 1;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                number.push(chars[i]);
                i += 1;
            }
            tokens.push(Token::Number(number));
        } else if c == ';' {
            i += 1;
        } else {
            tokens.push(Token::Punct(c));
            i += 1;
        }
    }
    Some(tokens)
}

/// The tables `statement` reads, as `(database, table)` in lower case (a
/// bare name is in `database`; names of its CTEs are not tables), in the
/// order it names them.
pub fn tables_read(statement: &sqlparser::ast::Statement, database: &str) -> Vec<(String, String)> {
    use sqlparser::ast::Visit;
    struct Relations<'a> {
        database: &'a str,
        ctes: Vec<String>,
        out: Vec<(String, String)>,
    }
    impl sqlparser::ast::Visitor for Relations<'_> {
        type Break = ();
        fn pre_visit_query(&mut self, query: &sqlparser::ast::Query) -> std::ops::ControlFlow<()> {
            if let Some(with) = &query.with {
                for cte in &with.cte_tables {
                    self.ctes.push(cte.alias.name.value.to_ascii_lowercase());
                }
            }
            std::ops::ControlFlow::Continue(())
        }
        fn pre_visit_relation(
            &mut self,
            relation: &sqlparser::ast::ObjectName,
        ) -> std::ops::ControlFlow<()> {
            let parts: Vec<String> = relation
                .0
                .iter()
                .filter_map(|p| p.as_ident().map(|i| i.value.to_ascii_lowercase()))
                .collect();
            match parts.as_slice() {
                [table] if self.ctes.contains(table) => {}
                [table] => self.out.push((self.database.to_string(), table.clone())),
                [.., db, table] => self.out.push((db.clone(), table.clone())),
                [] => {}
            }
            std::ops::ControlFlow::Continue(())
        }
    }
    let mut visitor = Relations {
        database,
        ctes: Vec::new(),
        out: Vec::new(),
    };
    let _ = statement.visit(&mut visitor);
    visitor.out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pg_split_respects_literals_and_comments() {
        let sql = "SELECT ';' AS a; SELECT \"x;y\" FROM t -- c;\n; /* ; */ SELECT $$;$$;; SELECT 3";
        assert_eq!(
            split_statements(sql),
            vec![
                "SELECT ';' AS a",
                "SELECT \"x;y\" FROM t",
                "SELECT $$;$$",
                "SELECT 3"
            ]
        );
        // Athena's backquoted identifiers hold a `;` too.
        assert_eq!(
            split_statements("SELECT `a;b` FROM t; SELECT 2"),
            vec!["SELECT `a;b` FROM t", "SELECT 2"]
        );
        assert!(split_statements(" ; -- nothing\n ;").is_empty());
        assert_eq!(
            split_statements("SELECT E'a\\';b'"),
            vec!["SELECT E'a\\';b'"]
        );
    }

    #[test]
    fn pg_placeholders_skip_quoted_text() {
        let sql = "SELECT $1, '$2', \"$3\", a$4, $tag$ $5 $tag$, $12 -- $6\n";
        let found: Vec<usize> = placeholders(sql).iter().map(|p| p.number).collect();
        assert_eq!(found, vec![1, 12]);
        let out = substitute(sql, |p| Ok::<_, ()>(format!("<{}>", p.number))).unwrap();
        assert!(out.starts_with("SELECT <1>, '$2'"));
        assert!(out.contains(", <12> --"));
    }

    #[test]
    fn pg_literal_quoting() {
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_literal("a\\b"), "('a' || chr(92) || 'b')");
    }

    #[test]
    fn pg_trim_and_keywords() {
        assert_eq!(trim_statement("  SELECT 1 ; -- x\n ;"), "SELECT 1");
        assert_eq!(trim_statement("SELECT 'a;' /* c */"), "SELECT 'a;'");
        assert_eq!(trim_statement("SELECT 'é'"), "SELECT 'é'");
        assert_eq!(first_keyword(" -- c\n /* d */ Select 1"), "select");
        assert_eq!(first_keyword("(SELECT 1)"), "(");
    }

    #[test]
    fn pg_tokenize_set() {
        let tokens = tokenize("SET search_path TO \"My\", public").unwrap();
        assert_eq!(
            tokens,
            vec![
                Token::Word("set".into()),
                Token::Word("search_path".into()),
                Token::Word("to".into()),
                Token::Quoted("My".into()),
                Token::Punct(','),
                Token::Word("public".into()),
            ]
        );
        assert_eq!(
            tokenize("set extra_float_digits = -3").unwrap()[3],
            Token::Number("-3".into())
        );
        assert!(tokenize("SET x = 'unterminated").is_none());
    }
}
