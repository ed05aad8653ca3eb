//! Athena's DDL and the statements DataFusion does not know: parsing.
//!
//! Hive-flavoured DDL (`CREATE EXTERNAL TABLE ... ROW FORMAT SERDE ...`),
//! `MSCK REPAIR TABLE`, `ALTER TABLE ... PARTITION`, `SHOW ...`,
//! `DESCRIBE`, views, CTAS, `INSERT INTO` and `UNLOAD` are recognised here;
//! their embedded queries are kept as text and planned by DataFusion.
//! Anything else returns `None` and goes to DataFusion as it is.

use datafusion::sql::sqlparser::dialect::HiveDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};

use crate::contract::{QueryError, QueryErrorKind};

/// A possibly qualified name (`db.t` or `t`), lowercased.
#[derive(Debug, Clone, PartialEq)]
pub struct Name {
    /// Database, when given.
    pub database: Option<String>,
    /// Table or view.
    pub name: String,
}

/// A column definition.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnDef {
    /// Name (lowercased).
    pub name: String,
    /// Hive type text.
    pub hive_type: String,
    /// Comment.
    pub comment: Option<String>,
}

/// A partition's `key = value` pairs and optional `LOCATION`.
pub(crate) type PartitionSpec = (Vec<(String, String)>, Option<String>);

/// A value in a CTAS/UNLOAD `WITH (...)` list.
#[derive(Debug, Clone, PartialEq)]
pub enum WithValue {
    /// `'text'` or a bare word/number.
    Text(String),
    /// `ARRAY['a', 'b']`.
    List(Vec<String>),
}

/// How the rows of an external table are stored.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RowFormat {
    /// SerDe library.
    pub serde: Option<String>,
    /// SerDe properties (including the DELIMITED clauses).
    pub serde_properties: Vec<(String, String)>,
    /// `STORED AS` keyword.
    pub stored_as: Option<String>,
    /// `INPUTFORMAT`.
    pub input_format: Option<String>,
    /// `OUTPUTFORMAT`.
    pub output_format: Option<String>,
}

/// `CREATE EXTERNAL TABLE`.
#[derive(Debug, Clone, PartialEq)]
pub struct ExternalTable {
    /// Name.
    pub name: Name,
    /// `IF NOT EXISTS`.
    pub if_not_exists: bool,
    /// Data columns.
    pub columns: Vec<ColumnDef>,
    /// Partition columns.
    pub partitioned_by: Vec<ColumnDef>,
    /// Table comment.
    pub comment: Option<String>,
    /// Row format and storage.
    pub format: RowFormat,
    /// `LOCATION`.
    pub location: Option<String>,
    /// `TBLPROPERTIES`.
    pub properties: Vec<(String, String)>,
}

/// A statement lakehose handles itself.
#[derive(Debug, Clone, PartialEq)]
pub enum AthenaStatement {
    /// `CREATE DATABASE|SCHEMA`.
    CreateDatabase {
        /// Name.
        name: String,
        /// `IF NOT EXISTS`.
        if_not_exists: bool,
        /// `COMMENT`.
        comment: Option<String>,
        /// `LOCATION`.
        location: Option<String>,
        /// `WITH DBPROPERTIES`.
        properties: Vec<(String, String)>,
    },
    /// `DROP DATABASE|SCHEMA`.
    DropDatabase {
        /// Name.
        name: String,
        /// `IF EXISTS`.
        if_exists: bool,
        /// `CASCADE`.
        cascade: bool,
    },
    /// `CREATE EXTERNAL TABLE`.
    CreateExternalTable(Box<ExternalTable>),
    /// `DROP TABLE|VIEW`.
    DropTable {
        /// Name.
        name: Name,
        /// `IF EXISTS`.
        if_exists: bool,
        /// `DROP VIEW`.
        view: bool,
    },
    /// `MSCK REPAIR TABLE`.
    MsckRepair {
        /// Table.
        name: Name,
    },
    /// `ALTER TABLE ... ADD PARTITION`.
    AddPartitions {
        /// Table.
        name: Name,
        /// `IF NOT EXISTS`.
        if_not_exists: bool,
        /// Key/value specs with optional locations.
        partitions: Vec<PartitionSpec>,
    },
    /// `ALTER TABLE ... DROP PARTITION`.
    DropPartitions {
        /// Table.
        name: Name,
        /// `IF EXISTS`.
        if_exists: bool,
        /// Key/value specs.
        partitions: Vec<Vec<(String, String)>>,
    },
    /// `ALTER TABLE ... SET TBLPROPERTIES`.
    SetProperties {
        /// Table.
        name: Name,
        /// Properties.
        properties: Vec<(String, String)>,
    },
    /// `ALTER TABLE ... ADD COLUMNS`.
    AddColumns {
        /// Table.
        name: Name,
        /// Columns.
        columns: Vec<ColumnDef>,
    },
    /// `ALTER TABLE ... SET LOCATION`.
    SetLocation {
        /// Table.
        name: Name,
        /// New location.
        location: String,
    },
    /// `SHOW DATABASES|SCHEMAS [LIKE 'p']`.
    ShowDatabases {
        /// Pattern.
        like: Option<String>,
    },
    /// `SHOW TABLES|VIEWS [IN db] ['p']`.
    ShowTables {
        /// Database.
        database: Option<String>,
        /// Pattern.
        pattern: Option<String>,
        /// Views only.
        views: bool,
    },
    /// `SHOW PARTITIONS t`.
    ShowPartitions {
        /// Table.
        name: Name,
    },
    /// `SHOW COLUMNS IN t`.
    ShowColumns {
        /// Table.
        name: Name,
    },
    /// `SHOW CREATE TABLE|VIEW t`.
    ShowCreate {
        /// Table.
        name: Name,
        /// A view.
        view: bool,
    },
    /// `SHOW TBLPROPERTIES t`.
    ShowProperties {
        /// Table.
        name: Name,
    },
    /// `DESCRIBE t`.
    Describe {
        /// Table.
        name: Name,
    },
    /// `CREATE [OR REPLACE] VIEW v AS ...`.
    CreateView {
        /// Name.
        name: Name,
        /// `OR REPLACE`.
        or_replace: bool,
        /// The query text.
        query: String,
    },
    /// `CREATE TABLE t [WITH (...)] AS ...`.
    CreateTableAs {
        /// Name.
        name: Name,
        /// `IF NOT EXISTS`.
        if_not_exists: bool,
        /// Table properties.
        with: Vec<(String, WithValue)>,
        /// The query text.
        query: String,
        /// `WITH NO DATA` makes it `false`.
        with_data: bool,
    },
    /// `INSERT INTO t [(cols)] ...`.
    InsertInto {
        /// Table.
        name: Name,
        /// Column list.
        columns: Vec<String>,
        /// The query text (a SELECT or VALUES).
        query: String,
    },
    /// `UNLOAD (...) TO '...' WITH (...)`.
    Unload {
        /// The query text.
        query: String,
        /// Destination.
        location: String,
        /// Options.
        with: Vec<(String, WithValue)>,
    },
}

fn syntax(message: impl Into<String>) -> QueryError {
    QueryError::named(crate::error::ErrorCode::SyntaxError, message.into())
}

/// Parses `sql` when it is a statement lakehose handles itself.
pub fn parse(sql: &str) -> Result<Option<AthenaStatement>, QueryError> {
    let dialect = HiveDialect {};
    let Ok(tokens) = Tokenizer::new(&dialect, sql)
        .with_unescape(false)
        .tokenize_with_location()
    else {
        // Let DataFusion report tokenizer errors in its own words.
        return Ok(None);
    };
    let tokens: Vec<TokenWithSpan> = tokens
        .into_iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_)))
        .collect();
    let mut p = Parser {
        sql,
        tokens,
        pos: 0,
        line_starts: std::iter::once(0)
            .chain(sql.match_indices('\n').map(|(i, _)| i + 1))
            .collect(),
    };
    p.statement()
}

struct Parser<'a> {
    sql: &'a str,
    tokens: Vec<TokenWithSpan>,
    pos: usize,
    line_starts: Vec<usize>,
}

impl Parser<'_> {
    fn peek(&self) -> &Token {
        self.tokens
            .get(self.pos)
            .map(|t| &t.token)
            .unwrap_or(&Token::EOF)
    }

    fn peek_at(&self, n: usize) -> &Token {
        self.tokens
            .get(self.pos + n)
            .map(|t| &t.token)
            .unwrap_or(&Token::EOF)
    }

    fn is_word(t: &Token, w: &str) -> bool {
        matches!(t, Token::Word(word) if word.quote_style.is_none() && word.value.eq_ignore_ascii_case(w))
    }

    fn at(&self, w: &str) -> bool {
        Self::is_word(self.peek(), w)
    }

    fn at_seq(&self, words: &[&str]) -> bool {
        words
            .iter()
            .enumerate()
            .all(|(i, w)| Self::is_word(self.peek_at(i), w))
    }

    fn eat(&mut self, w: &str) -> bool {
        if self.at(w) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn eat_seq(&mut self, words: &[&str]) -> bool {
        if self.at_seq(words) {
            self.pos += words.len();
            true
        } else {
            false
        }
    }

    fn describe_here(&self) -> String {
        match self.peek() {
            Token::EOF => "the end of the statement".into(),
            t => format!("'{t}'"),
        }
    }

    fn expect(&mut self, w: &str) -> Result<(), QueryError> {
        if self.eat(w) {
            Ok(())
        } else {
            Err(syntax(format!(
                "expected {w} but found {}",
                self.describe_here()
            )))
        }
    }

    fn expect_token(&mut self, t: Token) -> Result<(), QueryError> {
        if *self.peek() == t {
            self.pos += 1;
            Ok(())
        } else {
            Err(syntax(format!(
                "expected '{t}' but found {}",
                self.describe_here()
            )))
        }
    }

    fn eat_token(&mut self, t: Token) -> bool {
        if *self.peek() == t {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn ident(&mut self, what: &str) -> Result<String, QueryError> {
        match self.peek().clone() {
            Token::Word(w) => {
                self.pos += 1;
                Ok(w.value.to_ascii_lowercase())
            }
            _ => Err(syntax(format!(
                "expected {what} but found {}",
                self.describe_here()
            ))),
        }
    }

    fn name(&mut self) -> Result<Name, QueryError> {
        let first = self.ident("a table name")?;
        if self.eat_token(Token::Period) {
            let second = self.ident("a table name")?;
            if self.eat_token(Token::Period) {
                // catalog.db.table: only the one catalog exists.
                let third = self.ident("a table name")?;
                if first != crate::contract::CATALOG_NAME {
                    return Err(QueryError::new(
                        QueryErrorKind::Semantic,
                        format!("Catalog '{first}' does not exist"),
                    ));
                }
                return Ok(Name {
                    database: Some(second),
                    name: third,
                });
            }
            Ok(Name {
                database: Some(first),
                name: second,
            })
        } else {
            Ok(Name {
                database: None,
                name: first,
            })
        }
    }

    fn string(&mut self, what: &str) -> Result<String, QueryError> {
        match self.peek().clone() {
            Token::SingleQuotedString(s) | Token::DoubleQuotedString(s) => {
                self.pos += 1;
                Ok(unescape_literal(&s))
            }
            _ => Err(syntax(format!(
                "expected {what} (a quoted string) but found {}",
                self.describe_here()
            ))),
        }
    }

    fn properties(&mut self) -> Result<Vec<(String, String)>, QueryError> {
        self.expect_token(Token::LParen)?;
        let mut out = Vec::new();
        loop {
            let key = self.string("a property name")?;
            self.expect_token(Token::Eq)?;
            let value = self.string("a property value")?;
            out.push((key, value));
            if !self.eat_token(Token::Comma) {
                break;
            }
        }
        self.expect_token(Token::RParen)?;
        Ok(out)
    }

    fn offset(&self, index: usize) -> usize {
        match self.tokens.get(index) {
            Some(t) => {
                let line = (t.span.start.line as usize).saturating_sub(1);
                let col = (t.span.start.column as usize).saturating_sub(1);
                let start = self.line_starts.get(line).copied().unwrap_or(0);
                self.sql[start..]
                    .char_indices()
                    .nth(col)
                    .map(|(i, _)| start + i)
                    .unwrap_or(self.sql.len())
            }
            None => self.sql.len(),
        }
    }

    /// The SQL text from the current token to the end (trailing `;`
    /// removed).
    fn rest(&mut self) -> String {
        let start = self.offset(self.pos);
        self.pos = self.tokens.len();
        self.sql[start..]
            .trim()
            .trim_end_matches(';')
            .trim()
            .to_string()
    }

    fn end(&self) -> Result<(), QueryError> {
        match self.peek() {
            Token::EOF => Ok(()),
            Token::SemiColon if matches!(self.peek_at(1), Token::EOF) => Ok(()),
            _ => Err(syntax(format!("unexpected {}", self.describe_here()))),
        }
    }

    /// A Hive type: tokens up to `,` or `)` or COMMENT at depth 0.
    fn hive_type(&mut self) -> Result<String, QueryError> {
        let mut depth = 0i32;
        let mut text = String::new();
        // Whitespace tokens are gone: two words in a row (`big int`) keep a
        // space between them, so they are not read as one (`bigint`).
        let mut after_word = false;
        loop {
            let t = self.peek().clone();
            match &t {
                Token::EOF => break,
                Token::Comma | Token::RParen if depth == 0 => break,
                Token::Word(w) if depth == 0 && w.value.eq_ignore_ascii_case("comment") => break,
                Token::Lt | Token::LParen => depth += 1,
                Token::Gt | Token::RParen => depth -= 1,
                Token::ShiftRight => depth -= 2,
                _ => {}
            }
            let is_word = matches!(t, Token::Word(_) | Token::Number(..));
            if is_word && after_word {
                text.push(' ');
            }
            after_word = is_word;
            text.push_str(&match &t {
                Token::Word(w) if w.quote_style == Some('`') => format!("`{}`", w.value),
                Token::Word(w) => w.value.to_ascii_lowercase(),
                other => other.to_string(),
            });
            self.pos += 1;
        }
        if text.is_empty() {
            return Err(syntax(format!(
                "expected a column type but found {}",
                self.describe_here()
            )));
        }
        Ok(text)
    }

    fn columns(&mut self) -> Result<Vec<ColumnDef>, QueryError> {
        self.expect_token(Token::LParen)?;
        let mut out = Vec::new();
        loop {
            let name = self.ident("a column name")?;
            let hive_type = self.hive_type()?;
            crate::types::hive_to_arrow(&hive_type).map_err(|e| {
                QueryError::new(
                    QueryErrorKind::Semantic,
                    format!("Invalid type for column {name}: {e}"),
                )
            })?;
            let comment = if self.eat("comment") {
                Some(self.string("a comment")?)
            } else {
                None
            };
            out.push(ColumnDef {
                name,
                hive_type,
                comment,
            });
            if !self.eat_token(Token::Comma) {
                break;
            }
        }
        self.expect_token(Token::RParen)?;
        Ok(out)
    }

    fn with_options(&mut self) -> Result<Vec<(String, WithValue)>, QueryError> {
        self.expect_token(Token::LParen)?;
        let mut out = Vec::new();
        loop {
            let key = self.ident("a property name")?;
            self.expect_token(Token::Eq)?;
            let value = if self.eat("array") {
                self.expect_token(Token::LBracket)?;
                let mut items = Vec::new();
                if !self.eat_token(Token::RBracket) {
                    loop {
                        items.push(self.string("an array item")?.to_ascii_lowercase());
                        if !self.eat_token(Token::Comma) {
                            break;
                        }
                    }
                    self.expect_token(Token::RBracket)?;
                }
                WithValue::List(items)
            } else {
                match self.peek().clone() {
                    Token::SingleQuotedString(s) => {
                        self.pos += 1;
                        WithValue::Text(unescape_literal(&s))
                    }
                    Token::Number(n, _) => {
                        self.pos += 1;
                        WithValue::Text(n)
                    }
                    Token::Word(w) => {
                        self.pos += 1;
                        WithValue::Text(w.value)
                    }
                    _ => {
                        return Err(syntax(format!(
                            "expected a value for {key} but found {}",
                            self.describe_here()
                        )));
                    }
                }
            };
            out.push((key, value));
            if !self.eat_token(Token::Comma) {
                break;
            }
        }
        self.expect_token(Token::RParen)?;
        Ok(out)
    }

    fn partition_spec(&mut self) -> Result<Vec<(String, String)>, QueryError> {
        self.expect_token(Token::LParen)?;
        let mut out = Vec::new();
        loop {
            let key = self.ident("a partition key")?;
            self.expect_token(Token::Eq)?;
            let value = match self.peek().clone() {
                Token::SingleQuotedString(s) | Token::DoubleQuotedString(s) => unescape_literal(&s),
                Token::Number(n, _) => n,
                Token::Word(w) => w.value,
                _ => {
                    return Err(syntax(format!(
                        "expected a value for partition key {key} but found {}",
                        self.describe_here()
                    )));
                }
            };
            self.pos += 1;
            out.push((key, value));
            if !self.eat_token(Token::Comma) {
                break;
            }
        }
        self.expect_token(Token::RParen)?;
        Ok(out)
    }

    fn statement(&mut self) -> Result<Option<AthenaStatement>, QueryError> {
        if self.at("create") {
            return self.create();
        }
        if self.at("drop") {
            return self.drop();
        }
        if self.eat_seq(&["msck", "repair", "table"]) {
            let name = self.name()?;
            self.end()?;
            return Ok(Some(AthenaStatement::MsckRepair { name }));
        }
        if self.eat_seq(&["alter", "table"]) {
            return self.alter().map(Some);
        }
        if self.at("show") {
            return self.show();
        }
        if self.at("describe") || self.at("desc") {
            self.pos += 1;
            self.eat("formatted");
            self.eat("extended");
            let name = self.name()?;
            self.end()?;
            return Ok(Some(AthenaStatement::Describe { name }));
        }
        if self.eat_seq(&["insert", "into"]) {
            self.eat("table");
            let name = self.name()?;
            let mut columns = Vec::new();
            // A column list, unless the parenthesis opens the query itself.
            if *self.peek() == Token::LParen
                && !Self::is_word(self.peek_at(1), "select")
                && !Self::is_word(self.peek_at(1), "with")
                && !Self::is_word(self.peek_at(1), "values")
            {
                self.expect_token(Token::LParen)?;
                loop {
                    columns.push(self.ident("a column name")?);
                    if !self.eat_token(Token::Comma) {
                        break;
                    }
                }
                self.expect_token(Token::RParen)?;
            }
            let query = self.rest();
            if query.is_empty() {
                return Err(syntax("INSERT INTO needs a SELECT or VALUES"));
            }
            return Ok(Some(AthenaStatement::InsertInto {
                name,
                columns,
                query,
            }));
        }
        if self.eat("unload") {
            self.expect_token(Token::LParen)?;
            let start = self.pos;
            let mut depth = 1;
            while depth > 0 {
                match self.peek() {
                    Token::LParen => depth += 1,
                    Token::RParen => depth -= 1,
                    Token::EOF => return Err(syntax("UNLOAD's query is missing its closing ')'")),
                    _ => {}
                }
                self.pos += 1;
            }
            let query = self.sql[self.offset(start)..self.offset(self.pos - 1)]
                .trim()
                .to_string();
            self.expect("to")?;
            let location = self.string("the UNLOAD location")?;
            let with = if self.eat("with") {
                self.with_options()?
            } else {
                Vec::new()
            };
            self.end()?;
            return Ok(Some(AthenaStatement::Unload {
                query,
                location,
                with,
            }));
        }
        Ok(None)
    }

    fn create(&mut self) -> Result<Option<AthenaStatement>, QueryError> {
        let start = self.pos;
        self.expect("create")?;
        if self.eat("database") || self.eat("schema") {
            let if_not_exists = self.eat_seq(&["if", "not", "exists"]);
            let name = self.ident("a database name")?;
            let mut comment = None;
            let mut location = None;
            let mut properties = Vec::new();
            loop {
                if self.eat("comment") {
                    comment = Some(self.string("a comment")?);
                } else if self.eat("location") {
                    location = Some(self.string("a location")?);
                } else if self.eat_seq(&["with", "dbproperties"]) {
                    properties = self.properties()?;
                } else {
                    break;
                }
            }
            self.end()?;
            return Ok(Some(AthenaStatement::CreateDatabase {
                name,
                if_not_exists,
                comment,
                location,
                properties,
            }));
        }
        let or_replace = self.eat_seq(&["or", "replace"]);
        if self.eat("view") {
            let name = self.name()?;
            self.expect("as")?;
            let query = self.rest();
            if query.is_empty() {
                return Err(syntax("CREATE VIEW needs a query after AS"));
            }
            return Ok(Some(AthenaStatement::CreateView {
                name,
                or_replace,
                query,
            }));
        }
        if or_replace {
            return Err(syntax("OR REPLACE is only supported with CREATE VIEW"));
        }
        let external = self.eat("external");
        if !self.eat("table") {
            // CREATE FUNCTION and the like: not ours.
            self.pos = start;
            return Ok(None);
        }
        let if_not_exists = self.eat_seq(&["if", "not", "exists"]);
        let name = self.name()?;
        if !external {
            let mut with = Vec::new();
            if self.eat("with") {
                with = self.with_options()?;
            }
            if self.eat("as") {
                let mut query = self.rest();
                let mut with_data = true;
                let lower = query.to_ascii_lowercase();
                for (suffix, data) in [("with no data", false), ("with data", true)] {
                    if lower.trim_end().ends_with(suffix) {
                        query.truncate(lower.trim_end().len() - suffix.len());
                        query = query.trim().to_string();
                        with_data = data;
                        break;
                    }
                }
                // `AS (SELECT ...)` is allowed.
                if query.starts_with('(') && query.ends_with(')') {
                    query = query[1..query.len() - 1].trim().to_string();
                }
                return Ok(Some(AthenaStatement::CreateTableAs {
                    name,
                    if_not_exists,
                    with,
                    query,
                    with_data,
                }));
            }
            return Err(QueryError::new(
                QueryErrorKind::Semantic,
                "Only external tables can be created with a column list: use CREATE EXTERNAL TABLE ... LOCATION 's3://...', or CREATE TABLE ... AS SELECT",
            ));
        }
        let columns = if *self.peek() == Token::LParen {
            self.columns()?
        } else {
            Vec::new()
        };
        let mut table = ExternalTable {
            name,
            if_not_exists,
            columns,
            partitioned_by: Vec::new(),
            comment: None,
            format: RowFormat::default(),
            location: None,
            properties: Vec::new(),
        };
        loop {
            if self.eat("comment") {
                table.comment = Some(self.string("a comment")?);
            } else if self.eat_seq(&["partitioned", "by"]) {
                table.partitioned_by = self.columns()?;
            } else if self.eat_seq(&["clustered", "by"]) {
                return Err(QueryError::new(
                    QueryErrorKind::Semantic,
                    "Bucketed tables (CLUSTERED BY) are not supported",
                ));
            } else if self.eat_seq(&["row", "format"]) {
                if self.eat("serde") {
                    table.format.serde = Some(self.string("a SerDe class")?);
                    if self.eat_seq(&["with", "serdeproperties"]) {
                        table.format.serde_properties.extend(self.properties()?);
                    }
                } else if self.eat("delimited") {
                    loop {
                        let (key, words): (&str, &[&str]) = if self.at("fields") {
                            ("field.delim", &["fields", "terminated", "by"])
                        } else if self.at("escaped") {
                            ("escape.delim", &["escaped", "by"])
                        } else if self.at("collection") {
                            (
                                "collection.delim",
                                &["collection", "items", "terminated", "by"],
                            )
                        } else if self.at("map") {
                            ("mapkey.delim", &["map", "keys", "terminated", "by"])
                        } else if self.at("lines") {
                            ("line.delim", &["lines", "terminated", "by"])
                        } else if self.at("null") {
                            ("serialization.null.format", &["null", "defined", "as"])
                        } else {
                            break;
                        };
                        for w in words {
                            self.expect(w)?;
                        }
                        let v = self.string(key)?;
                        if key == "field.delim" {
                            table
                                .format
                                .serde_properties
                                .push(("serialization.format".into(), v.clone()));
                        }
                        table.format.serde_properties.push((key.into(), v));
                    }
                } else {
                    return Err(syntax(format!(
                        "expected SERDE or DELIMITED after ROW FORMAT but found {}",
                        self.describe_here()
                    )));
                }
            } else if self.eat_seq(&["stored", "as"]) {
                if self.eat("inputformat") {
                    table.format.input_format = Some(self.string("an input format")?);
                    self.expect("outputformat")?;
                    table.format.output_format = Some(self.string("an output format")?);
                } else {
                    table.format.stored_as = Some(self.ident("a storage format")?);
                }
            } else if self.eat("location") {
                table.location = Some(self.string("a location")?);
            } else if self.eat("tblproperties") {
                table.properties = self.properties()?;
            } else {
                break;
            }
        }
        self.end()?;
        Ok(Some(AthenaStatement::CreateExternalTable(Box::new(table))))
    }

    fn drop(&mut self) -> Result<Option<AthenaStatement>, QueryError> {
        self.expect("drop")?;
        if self.eat("database") || self.eat("schema") {
            let if_exists = self.eat_seq(&["if", "exists"]);
            let name = self.ident("a database name")?;
            let cascade = self.eat("cascade");
            if !cascade {
                self.eat("restrict");
            }
            self.end()?;
            return Ok(Some(AthenaStatement::DropDatabase {
                name,
                if_exists,
                cascade,
            }));
        }
        let view = if self.eat("view") {
            true
        } else if self.eat("table") {
            false
        } else {
            return Ok(None);
        };
        let if_exists = self.eat_seq(&["if", "exists"]);
        let name = self.name()?;
        self.end()?;
        Ok(Some(AthenaStatement::DropTable {
            name,
            if_exists,
            view,
        }))
    }

    fn alter(&mut self) -> Result<AthenaStatement, QueryError> {
        let name = self.name()?;
        if self.eat("add") {
            if self.eat("columns") {
                let columns = self.columns()?;
                self.end()?;
                return Ok(AthenaStatement::AddColumns { name, columns });
            }
            let if_not_exists = self.eat_seq(&["if", "not", "exists"]);
            let mut partitions = Vec::new();
            while self.eat("partition") {
                let spec = self.partition_spec()?;
                let location = if self.eat("location") {
                    Some(self.string("a partition location")?)
                } else {
                    None
                };
                partitions.push((spec, location));
            }
            if partitions.is_empty() {
                return Err(syntax(format!(
                    "expected PARTITION or COLUMNS after ADD but found {}",
                    self.describe_here()
                )));
            }
            self.end()?;
            return Ok(AthenaStatement::AddPartitions {
                name,
                if_not_exists,
                partitions,
            });
        }
        if self.eat("drop") {
            let if_exists = self.eat_seq(&["if", "exists"]);
            let mut partitions = Vec::new();
            loop {
                self.expect("partition")?;
                partitions.push(self.partition_spec()?);
                if !self.eat_token(Token::Comma) {
                    break;
                }
            }
            self.end()?;
            return Ok(AthenaStatement::DropPartitions {
                name,
                if_exists,
                partitions,
            });
        }
        if self.eat_seq(&["set", "tblproperties"]) {
            let properties = self.properties()?;
            self.end()?;
            return Ok(AthenaStatement::SetProperties { name, properties });
        }
        if self.eat_seq(&["set", "location"]) {
            let location = self.string("a location")?;
            self.end()?;
            return Ok(AthenaStatement::SetLocation { name, location });
        }
        Err(syntax(format!(
            "ALTER TABLE supports ADD [IF NOT EXISTS] PARTITION, DROP [IF EXISTS] PARTITION, ADD COLUMNS, SET TBLPROPERTIES and SET LOCATION; found {}",
            self.describe_here()
        )))
    }

    fn show(&mut self) -> Result<Option<AthenaStatement>, QueryError> {
        self.expect("show")?;
        let statement = if self.eat("databases") || self.eat("schemas") {
            let like = if self.eat("like") || matches!(self.peek(), Token::SingleQuotedString(_)) {
                Some(self.string("a pattern")?)
            } else {
                None
            };
            AthenaStatement::ShowDatabases { like }
        } else if self.at("tables") || self.at("views") {
            let views = self.at("views");
            self.pos += 1;
            let database = if self.eat("in") || self.eat("from") {
                Some(self.ident("a database name")?)
            } else {
                None
            };
            self.eat("like");
            let pattern = if matches!(self.peek(), Token::SingleQuotedString(_)) {
                Some(self.string("a pattern")?)
            } else {
                None
            };
            AthenaStatement::ShowTables {
                database,
                pattern,
                views,
            }
        } else if self.eat("partitions") {
            AthenaStatement::ShowPartitions { name: self.name()? }
        } else if self.eat("columns") {
            if !(self.eat("in") || self.eat("from")) {
                return Err(syntax("expected SHOW COLUMNS IN table"));
            }
            let mut name = self.name()?;
            if self.eat("in") || self.eat("from") {
                name.database = Some(self.ident("a database name")?);
            }
            AthenaStatement::ShowColumns { name }
        } else if self.eat("create") {
            let view = if self.eat("view") {
                true
            } else {
                self.expect("table")?;
                false
            };
            AthenaStatement::ShowCreate {
                name: self.name()?,
                view,
            }
        } else if self.eat("tblproperties") {
            AthenaStatement::ShowProperties { name: self.name()? }
        } else {
            return Err(syntax(format!(
                "SHOW supports DATABASES, SCHEMAS, TABLES, VIEWS, PARTITIONS, COLUMNS, CREATE TABLE, CREATE VIEW and TBLPROPERTIES; found {}",
                self.describe_here()
            )));
        };
        self.end()?;
        Ok(Some(statement))
    }
}

/// Processes backslash escapes in a Hive string literal the way Hive does
/// for the common ones (`\\`, `\'`, `\"`, `\t`, `\n`, `\r`, `\0`, octal
/// `\001`), keeping other backslashes as they are so regular expressions
/// written with single backslashes (`\d`, `\s`) survive.
pub(crate) fn unescape_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' && i + 1 < chars.len() {
            let n = chars[i + 1];
            let octal: String = chars[i + 1..]
                .iter()
                .take(3)
                .take_while(|c| c.is_digit(8))
                .collect();
            if octal.len() == 3
                && let Some(ch) = u32::from_str_radix(&octal, 8).ok().and_then(char::from_u32)
            {
                out.push(ch);
                i += 4;
                continue;
            }
            let mapped = match n {
                '\\' => Some('\\'),
                '\'' => Some('\''),
                '"' => Some('"'),
                't' => Some('\t'),
                'n' => Some('\n'),
                'r' => Some('\r'),
                '0' => Some('\0'),
                _ => None,
            };
            match mapped {
                Some(m) => {
                    out.push(m);
                    i += 2;
                }
                None => {
                    out.push('\\');
                    i += 1;
                }
            }
            continue;
        }
        if c == '\'' && chars.get(i + 1) == Some(&'\'') {
            out.push('\'');
            i += 2;
            continue;
        }
        out.push(c);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(sql: &str) -> AthenaStatement {
        parse(sql).unwrap().unwrap()
    }

    #[test]
    fn column_types_are_checked_with_their_column() {
        let err = |sql: &str| parse(sql).unwrap_err().to_string();
        let e = err("CREATE EXTERNAL TABLE t (a big int) LOCATION 's3://x/t/'");
        assert!(e.contains("Invalid type for column a"), "{e}");
        let e = err("CREATE EXTERNAL TABLE t (a big\u{3000}int) LOCATION 's3://x/t/'");
        assert!(e.contains("column a"), "{e}");
        let deep = format!("{}int{}", "array<".repeat(5000), ">>".repeat(2500));
        let e = err(&format!(
            "CREATE EXTERNAL TABLE t (a int, b {deep}) LOCATION 's3://x/t/'"
        ));
        assert!(
            e.contains("column b") && e.contains("nested deeper than 64 levels"),
            "{e}"
        );
        assert!(e.len() < 1000, "{e}");
    }

    #[test]
    fn external_table_with_everything() {
        let s = p(r#"CREATE EXTERNAL TABLE IF NOT EXISTS logs.alb (
              `type` string COMMENT 'request type',
              time string,
              elb_status_code int,
              tags array<struct<k:string,v:decimal(10,2)>>,
              m map<string,bigint>)
            PARTITIONED BY (day string, hour int)
            ROW FORMAT SERDE 'org.apache.hadoop.hive.serde2.RegexSerDe'
            WITH SERDEPROPERTIES ('input.regex' = '([^ ]*) \\[(.*?)\\] ([0-9]+)')
            LOCATION 's3://logs/alb/'
            TBLPROPERTIES ('skip.header.line.count'='1', 'has_encrypted_data'='false');"#);
        let AthenaStatement::CreateExternalTable(t) = s else {
            panic!("{s:?}")
        };
        assert!(t.if_not_exists);
        assert_eq!(t.name.database.as_deref(), Some("logs"));
        assert_eq!(t.columns.len(), 5);
        assert_eq!(t.columns[0].name, "type");
        assert_eq!(t.columns[0].comment.as_deref(), Some("request type"));
        assert_eq!(
            t.columns[3].hive_type,
            "array<struct<k:string,v:decimal(10,2)>>"
        );
        assert_eq!(t.columns[4].hive_type, "map<string,bigint>");
        assert_eq!(t.partitioned_by[1].hive_type, "int");
        assert_eq!(
            t.format.serde_properties[0].1,
            r"([^ ]*) \[(.*?)\] ([0-9]+)"
        );
        assert_eq!(t.location.as_deref(), Some("s3://logs/alb/"));
        assert_eq!(t.properties.len(), 2);
    }

    #[test]
    fn delimited_and_stored_as() {
        let s = p(
            "create external table t (a int, b string) row format delimited fields terminated by '\\t' escaped by '\\\\' null defined as '' stored as textfile location 's3://b/t/'",
        );
        let AthenaStatement::CreateExternalTable(t) = s else {
            panic!()
        };
        assert!(
            t.format
                .serde_properties
                .contains(&("field.delim".into(), "\t".into()))
        );
        assert!(
            t.format
                .serde_properties
                .contains(&("escape.delim".into(), "\\".into()))
        );
        assert_eq!(t.format.stored_as.as_deref(), Some("textfile"));
    }

    #[test]
    fn ctas_insert_unload_and_views_keep_their_query_text() {
        match p(
            "CREATE TABLE x.y WITH (format = 'PARQUET', partitioned_by = ARRAY['dt'], external_location='s3://b/y/') AS SELECT a, \"B\" FROM t WHERE s = 'x;y'",
        ) {
            AthenaStatement::CreateTableAs {
                name,
                with,
                query,
                with_data,
                ..
            } => {
                assert_eq!(name.name, "y");
                assert_eq!(
                    with[1],
                    ("partitioned_by".into(), WithValue::List(vec!["dt".into()]))
                );
                assert_eq!(query, "SELECT a, \"B\" FROM t WHERE s = 'x;y'");
                assert!(with_data);
            }
            other => panic!("{other:?}"),
        }
        match p("create table t as select 1 with no data") {
            AthenaStatement::CreateTableAs {
                query, with_data, ..
            } => {
                assert_eq!(query, "select 1");
                assert!(!with_data);
            }
            other => panic!("{other:?}"),
        }
        match p("INSERT INTO t (a, b)\nSELECT 1, 2") {
            AthenaStatement::InsertInto { columns, query, .. } => {
                assert_eq!(columns, vec!["a", "b"]);
                assert_eq!(query, "SELECT 1, 2");
            }
            other => panic!("{other:?}"),
        }
        match p("insert into t (select 1)") {
            AthenaStatement::InsertInto { columns, query, .. } => {
                assert!(columns.is_empty());
                assert_eq!(query, "(select 1)");
            }
            other => panic!("{other:?}"),
        }
        match p("UNLOAD (SELECT * FROM t WHERE (a > 1)) TO 's3://b/out/' WITH (format = 'JSON')") {
            AthenaStatement::Unload {
                query,
                location,
                with,
            } => {
                assert_eq!(query, "SELECT * FROM t WHERE (a > 1)");
                assert_eq!(location, "s3://b/out/");
                assert_eq!(with[0].1, WithValue::Text("JSON".into()));
            }
            other => panic!("{other:?}"),
        }
        match p("create or replace view v as select * from t") {
            AthenaStatement::CreateView {
                or_replace, query, ..
            } => {
                assert!(or_replace);
                assert_eq!(query, "select * from t");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn partitions_show_describe() {
        match p(
            "ALTER TABLE t ADD IF NOT EXISTS PARTITION (dt='2024-01-01', h=3) LOCATION 's3://b/x/' PARTITION (dt='2024-01-02', h=4)",
        ) {
            AthenaStatement::AddPartitions {
                if_not_exists,
                partitions,
                ..
            } => {
                assert!(if_not_exists);
                assert_eq!(partitions.len(), 2);
                assert_eq!(partitions[0].0[1], ("h".into(), "3".into()));
                assert_eq!(partitions[0].1.as_deref(), Some("s3://b/x/"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            p("msck repair table db.t"),
            AthenaStatement::MsckRepair { .. }
        ));
        assert!(matches!(
            p("SHOW TABLES IN db 'a*'"),
            AthenaStatement::ShowTables {
                database: Some(_),
                pattern: Some(_),
                views: false
            }
        ));
        assert!(matches!(
            p("show schemas"),
            AthenaStatement::ShowDatabases { like: None }
        ));
        assert!(matches!(
            p("DESCRIBE db.t"),
            AthenaStatement::Describe { .. }
        ));
        assert!(
            matches!(p("show columns in t from db"), AthenaStatement::ShowColumns { name } if name.database.as_deref() == Some("db"))
        );
        assert!(matches!(
            p("DROP TABLE IF EXISTS awsdatacatalog.db.t"),
            AthenaStatement::DropTable {
                if_exists: true,
                view: false,
                ..
            }
        ));
    }

    #[test]
    fn other_statements_are_not_ours() {
        assert_eq!(parse("SELECT 1").unwrap(), None);
        assert_eq!(parse("explain select 1").unwrap(), None);
        assert_eq!(parse("with a as (select 1) select * from a").unwrap(), None);
    }

    #[test]
    fn errors_name_what_was_wrong() {
        let e = parse("CREATE EXTERNAL TABLE t (a bignum) LOCATION 's3://b/t/'").unwrap_err();
        assert!(e.message.contains("bignum"), "{e}");
        let e = parse("CREATE TABLE t (a int)").unwrap_err();
        assert!(e.message.contains("CREATE EXTERNAL TABLE"), "{e}");
        let e = parse("ALTER TABLE t RENAME TO u").unwrap_err();
        assert!(e.message.contains("ALTER TABLE supports"), "{e}");
        let e = parse("SHOW FUNCTIONS").unwrap_err();
        assert!(e.message.contains("SHOW supports"), "{e}");
    }

    #[test]
    fn literals_unescape_like_hive() {
        assert_eq!(unescape_literal(r"a\tb"), "a\tb");
        assert_eq!(unescape_literal(r"\001"), "\u{1}");
        assert_eq!(unescape_literal(r"\d+\s"), r"\d+\s");
        assert_eq!(unescape_literal(r"\\d"), r"\d");
        assert_eq!(unescape_literal("it''s"), "it's");
    }
}
