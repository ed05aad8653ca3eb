//! psql's describe commands against a real server: `\dt`, `\dv`, `\dn`,
//! `\d TABLE`, `\d+ TABLE` and `\dt+` list lakehose's databases as
//! schemas and its tables and views with their columns, and a driver's
//! own catalog query over the extended protocol gets the same columns, as
//! does `information_schema`.

use std::process::Command;

use crate::util::{Server, rt};

/// Runs psql's `-c command` against the server's Postgres port in `db`
/// and returns what it printed; panics with psql's stderr on failure.
fn psql(server: &Server, db: &str, command: &str) -> String {
    let (host, port) = server.pg_addr.rsplit_once(':').unwrap();
    let out = Command::new("psql")
        .args(["-X", "-v", "ON_ERROR_STOP=1", "-c", command])
        .arg(format!(
            "host={host} port={port} user=analyst dbname={db} connect_timeout=10"
        ))
        .output()
        .unwrap_or_else(|e| {
            panic!("running psql ({e}); install postgresql-client, as .ci/run does")
        });
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success() && stderr.is_empty(),
        "psql -c '{command}' failed: {stderr}\n{stdout}"
    );
    stdout
}

/// The cells of psql's aligned table output, row by row (header first).
fn cells(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .filter(|l| l.contains('|'))
        .map(|l| l.split('|').map(|c| c.trim().to_string()).collect())
        .collect()
}

#[test]
fn psql_describe_commands_list_the_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    for sql in [
        "CREATE DATABASE shop",
        "CREATE TABLE shop.users WITH (format = 'PARQUET') AS \
         SELECT 1 AS id, 'ann' AS name, DATE '2024-01-01' AS signup, 2.5 AS score",
        "CREATE VIEW shop.active AS SELECT id, name FROM shop.users",
        "CREATE DATABASE web",
        "CREATE EXTERNAL TABLE web.hits (path string, status int) \
         PARTITIONED BY (dt string) STORED AS PARQUET LOCATION 's3://lake/hits/'",
    ] {
        psql(&server, "default", sql);
    }

    let tables = cells(&psql(&server, "shop", r"\dt"));
    assert_eq!(tables[0], ["Schema", "Name", "Type", "Owner"]);
    let listed: Vec<(&str, &str, &str)> = tables[1..]
        .iter()
        .map(|r| (r[0].as_str(), r[1].as_str(), r[2].as_str()))
        .collect();
    assert_eq!(
        listed,
        [("shop", "users", "table"), ("web", "hits", "table")],
        "{tables:?}"
    );

    let views = cells(&psql(&server, "shop", r"\dv"));
    assert_eq!(views[1][..3], ["shop", "active", "view"], "{views:?}");

    let schemas = cells(&psql(&server, "shop", r"\dn"));
    let names: Vec<&str> = schemas[1..].iter().map(|r| r[0].as_str()).collect();
    assert_eq!(names, ["default", "shop", "web"], "{schemas:?}");

    // Columns with their Postgres types, partition keys last.
    let users = psql(&server, "shop", r"\d shop.users");
    assert!(users.contains(r#"Table "shop.users""#), "{users}");
    let columns: Vec<(String, String)> = cells(&users)[1..]
        .iter()
        .map(|r| (r[0].clone(), r[1].clone()))
        .collect();
    let expected = [
        ("id", "bigint"),
        ("name", "text"),
        ("signup", "date"),
        ("score", "double precision"),
    ];
    assert_eq!(
        columns,
        expected.map(|(n, t)| (n.to_string(), t.to_string())),
        "{users}"
    );
    let hits = psql(&server, "web", r"\d hits");
    let columns: Vec<String> = cells(&hits)[1..].iter().map(|r| r[0].clone()).collect();
    assert_eq!(columns, ["path", "status", "dt"], "{hits}");
    let active = psql(&server, "shop", r"\d shop.active");
    assert!(active.contains(r#"View "shop.active""#), "{active}");

    // The verbose forms run too (sizes and comments unknown).
    let verbose = cells(&psql(&server, "shop", r"\d+ shop.users"));
    assert_eq!(verbose.len(), 5, "{verbose:?}");
    let verbose = cells(&psql(&server, "shop", r"\dt+"));
    assert_eq!(verbose.len(), 3, "{verbose:?}");

    // A driver listing columns over the extended protocol.
    let (host, port) = server.pg_addr.rsplit_once(':').unwrap();
    let rows = rt().block_on(async {
        let (pg, connection) = tokio_postgres::connect(
            &format!("host={host} port={port} user=analyst dbname=shop"),
            tokio_postgres::NoTls,
        )
        .await
        .expect("connect over the Postgres wire protocol");
        tokio::spawn(connection);
        pg.query(
            "SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod) \
             FROM pg_catalog.pg_attribute a \
             JOIN pg_catalog.pg_class c ON a.attrelid = c.oid \
             JOIN pg_catalog.pg_namespace n ON c.relnamespace = n.oid \
             WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 \
             ORDER BY a.attnum",
            &[&"web", &"hits"],
        )
        .await
        .expect("catalog query")
        .iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1)))
        .collect::<Vec<_>>()
    });
    let expected = [("path", "text"), ("status", "integer"), ("dt", "text")];
    assert_eq!(rows, expected.map(|(n, t)| (n.to_string(), t.to_string())));

    // information_schema, as BI tools read it.
    let tables = cells(&psql(
        &server,
        "shop",
        "SELECT table_schema, table_name, table_type FROM information_schema.tables \
         WHERE table_schema IN ('shop', 'web') ORDER BY 1, 2",
    ));
    assert_eq!(
        tables[1..],
        [
            ["shop", "active", "VIEW"],
            ["shop", "users", "BASE TABLE"],
            ["web", "hits", "BASE TABLE"]
        ],
        "{tables:?}"
    );
    let columns = rt().block_on(async {
        let (pg, connection) = tokio_postgres::connect(
            &format!("host={host} port={port} user=analyst dbname=shop"),
            tokio_postgres::NoTls,
        )
        .await
        .unwrap();
        tokio::spawn(connection);
        pg.query(
            "SELECT column_name, data_type FROM information_schema.columns \
             WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position",
            &[&"shop", &"users"],
        )
        .await
        .expect("information_schema.columns")
        .iter()
        .map(|r| format!("{} {}", r.get::<_, String>(0), r.get::<_, String>(1)))
        .collect::<Vec<_>>()
    });
    assert_eq!(
        columns,
        [
            "id bigint",
            "name text",
            "signup date",
            "score double precision"
        ]
    );
    server.terminate();
}

/// Athena types reach Postgres clients as the matching Postgres types: in
/// psql's `\d`, in result metadata, and in binary results (tokio-postgres
/// asks for binary), with `timestamp` a timestamp without time zone and
/// `timestamp with time zone` a `timestamptz`.
#[test]
fn athena_types_are_postgres_types() {
    use chrono::{NaiveDate, NaiveDateTime, TimeZone, Utc};
    use tokio_postgres::types::Type;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    for sql in [
        "CREATE DATABASE typed",
        "CREATE EXTERNAL TABLE typed.all_types (t tinyint, s smallint, i int, b bigint, \
         f float, d double, price decimal(10,2), ok boolean, msg string, code varchar(20), \
         flag char(3), raw binary, day date, at timestamp, tags array<int>, \
         attrs map<string,int>, req struct<a:int>) \
         STORED AS PARQUET LOCATION 's3://typed/all_types/'",
        "INSERT INTO typed.all_types SELECT CAST(1 AS tinyint), CAST(2 AS smallint), 3, 4, \
         CAST(1.5 AS real), 2.5, CAST(19.99 AS decimal(10,2)), true, 'hello', 'abc', 'xy', \
         from_hex('cafe'), DATE '2026-12-05', TIMESTAMP '2026-12-05 10:11:12.345678', \
         ARRAY[1, 2], MAP(ARRAY['k'], ARRAY[7]), named_struct('a', 5)",
    ] {
        psql(&server, "default", sql);
    }

    let described = psql(&server, "typed", r"\d all_types");
    let columns: Vec<(String, String)> = cells(&described)[1..]
        .iter()
        .map(|r| (r[0].clone(), r[1].clone()))
        .collect();
    let expected = [
        ("t", "smallint"),
        ("s", "smallint"),
        ("i", "integer"),
        ("b", "bigint"),
        ("f", "real"),
        ("d", "double precision"),
        ("price", "numeric(10,2)"),
        ("ok", "boolean"),
        ("msg", "text"),
        ("code", "character varying(20)"),
        ("flag", "character(3)"),
        ("raw", "bytea"),
        ("day", "date"),
        ("at", "timestamp without time zone"),
        ("tags", "json"),
        ("attrs", "json"),
        ("req", "json"),
    ];
    assert_eq!(
        columns,
        expected.map(|(n, t)| (n.to_string(), t.to_string())),
        "{described}"
    );

    rt().block_on(async {
        let pg = server.pg("typed").await;
        let row = pg
            .query_one(
                "SELECT t, s, i, b, f, d, price, ok, msg, code, raw, day, at, tags, \
                 from_iso8601_timestamp('2026-12-05T10:00:00Z') AS zoned FROM all_types",
                &[],
            )
            .await
            .unwrap();
        let types: Vec<Type> = row.columns().iter().map(|c| c.type_().clone()).collect();
        assert_eq!(
            types,
            [
                Type::INT2,
                Type::INT2,
                Type::INT4,
                Type::INT8,
                Type::FLOAT4,
                Type::FLOAT8,
                Type::NUMERIC,
                Type::BOOL,
                Type::TEXT,
                Type::VARCHAR,
                Type::BYTEA,
                Type::DATE,
                Type::TIMESTAMP,
                Type::JSON,
                Type::TIMESTAMPTZ,
            ]
        );
        assert_eq!(row.get::<_, i16>(0), 1);
        assert_eq!(row.get::<_, i32>(2), 3);
        assert_eq!(row.get::<_, f32>(4), 1.5);
        assert!(row.get::<_, bool>(7));
        assert_eq!(row.get::<_, &str>(9), "abc");
        assert_eq!(row.get::<_, Vec<u8>>(10), [0xca, 0xfe]);
        assert_eq!(
            row.get::<_, NaiveDate>(11),
            NaiveDate::from_ymd_opt(2026, 12, 5).unwrap()
        );
        let at: NaiveDateTime = row.get(12);
        assert_eq!(
            at.to_string(),
            "2026-12-05 10:11:12.345678",
            "a naive timestamp"
        );
        assert_eq!(
            row.get::<_, serde_json::Value>(13),
            serde_json::json!([1, 2])
        );
        assert_eq!(
            row.get::<_, chrono::DateTime<Utc>>(14),
            Utc.with_ymd_and_hms(2026, 12, 5, 10, 0, 0).unwrap()
        );
        // Text results: the decimal keeps its scale, the timestamp has no
        // zone, char(n) is padded; varchar(n) and char(n) columns are
        // described as such.
        let text = pg
            .simple_query("SELECT price, at, flag, code FROM all_types")
            .await
            .unwrap();
        let row = text
            .iter()
            .find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => Some(r),
                _ => None,
            })
            .unwrap();
        assert_eq!(row.get(0), Some("19.99"));
        assert_eq!(row.get(1), Some("2026-12-05 10:11:12.345678"));
        assert_eq!(row.get(2), Some("xy "));
        assert_eq!(row.get(3), Some("abc"));
        let described = pg
            .prepare("SELECT flag, code FROM all_types")
            .await
            .unwrap();
        let types: Vec<&Type> = described.columns().iter().map(|c| c.type_()).collect();
        assert_eq!(types, [&Type::BPCHAR, &Type::VARCHAR]);
        // Writing past a varchar(n) fails the statement, naming the column.
        let err = pg
            .simple_query("INSERT INTO all_types (code) VALUES ('this is far too long for twenty')")
            .await
            .unwrap_err();
        let message = err.as_db_error().map(|e| e.message().to_string());
        assert!(
            message
                .as_deref()
                .is_some_and(|m| m.contains("column code (varchar(20))")),
            "{err:?}"
        );
    });
}

/// `SET lakehose.<rule>` turns a planner rule off for that connection's
/// queries alone; a bad value fails the `SET`.
#[test]
fn a_connection_switches_planner_rules_with_set() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    rt().block_on(async {
        let a = server.pg("default").await;
        let b = server.pg("default").await;
        a.batch_execute(
            "CREATE TABLE t WITH (format = 'PARQUET', external_location = 's3://rules/t/') \
             AS SELECT x AS id, x % 7 AS k FROM unnest(sequence(1, 2000)) AS s(x)",
        )
        .await
        .expect("CTAS");
        let explain = "EXPLAIN WITH r AS (SELECT k, count(*) AS n FROM t GROUP BY k) \
                       SELECT k FROM r WHERE n = (SELECT max(n) FROM r)";
        async fn plan(pg: &tokio_postgres::Client, sql: &str) -> String {
            pg.simple_query(sql)
                .await
                .expect("EXPLAIN")
                .iter()
                .filter_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(r) => r.get(1).map(str::to_string),
                    _ => None,
                })
                .collect::<Vec<_>>()
                .join("\n")
        }
        assert!(plan(&a, explain).await.contains("SharedExec"));
        a.batch_execute("SET lakehose.share_subplans = false")
            .await
            .unwrap();
        assert!(!plan(&a, explain).await.contains("SharedExec"));
        // The other connection keeps the defaults.
        assert!(plan(&b, explain).await.contains("SharedExec"));
        let e = a
            .batch_execute("SET lakehose.share_subplans = perhaps")
            .await
            .unwrap_err();
        let db = e.as_db_error().expect("an error from the server");
        assert_eq!(
            db.code(),
            &tokio_postgres::error::SqlState::INVALID_PARAMETER_VALUE
        );
        assert!(db.message().contains("perhaps"), "{db:?}");
        a.batch_execute("RESET lakehose.share_subplans")
            .await
            .unwrap();
        assert!(plan(&a, explain).await.contains("SharedExec"));
        // The same answer either way.
        let sql = "SELECT k, count(*) FROM t GROUP BY k ORDER BY k";
        async fn counts(pg: &tokio_postgres::Client, sql: &str) -> Vec<(i64, i64)> {
            let rows = pg.query(sql, &[]).await.unwrap();
            rows.iter().map(|r| (r.get(0), r.get(1))).collect()
        }
        let on = counts(&a, sql).await;
        b.batch_execute("SET lakehose.runtime_filters = false")
            .await
            .unwrap();
        let off = counts(&b, sql).await;
        assert_eq!(on, off);
        assert_eq!(on.len(), 7);
    });
}
