//! The engine over a real catalog and a local warehouse folder: tables of
//! every format, partition pruning, DDL/DML round trips, errors.

use std::sync::Arc;

use datafusion::arrow::array::{Array, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::parquet::arrow::ArrowWriter;
use lakehose_catalog::{CatalogRef, EmbeddedCatalog, Storage};
use lakehose_query::{
    EngineConfig, QueryEngine, QueryErrorKind, QueryOutput, QueryRequest, StatementType,
};

struct Lake {
    dir: tempfile::TempDir,
    engine: QueryEngine,
}

impl Lake {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::local(dir.path()).unwrap();
        let catalog: CatalogRef = Arc::new(EmbeddedCatalog::new(storage.clone()));
        let engine = QueryEngine::new(catalog, storage, EngineConfig::default()).unwrap();
        Self { dir, engine }
    }

    async fn run(&self, sql: &str) -> QueryOutput {
        match self
            .engine
            .execute(QueryRequest::new(sql, Some("default")))
            .await
        {
            Ok(o) => o,
            Err(e) => panic!("{sql}\nfailed: {e}"),
        }
    }

    async fn fail(&self, sql: &str) -> lakehose_query::QueryError {
        match self
            .engine
            .execute(QueryRequest::new(sql, Some("default")))
            .await
        {
            Ok(_) => panic!("{sql} should fail"),
            Err(e) => e,
        }
    }

    /// Rows as text, `NULL` for nulls, columns joined with `|`.
    async fn rows(&self, sql: &str) -> Vec<String> {
        text_rows(&self.run(sql).await)
    }

    fn write(&self, rel: &str, bytes: &[u8]) {
        let path = self.dir.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
}

pub(crate) fn text_rows(out: &QueryOutput) -> Vec<String> {
    let options = FormatOptions::default().with_null("NULL");
    let mut rows = Vec::new();
    for b in &out.batches {
        let f: Vec<_> = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
            .collect();
        for r in 0..b.num_rows() {
            rows.push(
                f.iter()
                    .map(|f| f.value(r).to_string())
                    .collect::<Vec<_>>()
                    .join("|"),
            );
        }
    }
    rows
}

fn parquet(ids: std::ops::Range<i64>, service: &str) -> Vec<u8> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("path", DataType::Utf8, true),
    ]));
    let n = ids.end - ids.start;
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from_iter_values(ids.clone())),
            Arc::new(StringArray::from_iter_values(
                (0..n).map(|i| format!("/{service}/{}", i % 7)),
            )),
        ],
    )
    .unwrap();
    let mut buf = Vec::new();
    let mut w = ArrowWriter::try_new(&mut buf, schema, None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    buf
}

#[tokio::test]
async fn partitioned_parquet_prunes_before_listing() {
    let lake = Lake::new();
    for (i, svc) in ["api", "web", "auth"].iter().enumerate() {
        for day in 1..=3 {
            let start = (i as i64 * 3 + day) * 1000;
            lake.write(
                &format!("logs/app/service={svc}/dt=2024-01-0{day}/part-0.parquet"),
                &parquet(start..start + 1000, svc),
            );
        }
    }
    // A hidden file and an empty marker are ignored, as Athena does.
    lake.write("logs/app/service=api/dt=2024-01-01/_SUCCESS", b"");
    lake.write("logs/app/service=api/dt=2024-01-01/.tmp.parquet", b"junk");
    lake.run("CREATE DATABASE IF NOT EXISTS web").await;
    lake.run(
        "CREATE EXTERNAL TABLE web.requests (id bigint, path string)
         PARTITIONED BY (service string, dt date)
         STORED AS PARQUET LOCATION 's3://logs/app/'",
    )
    .await;
    assert_eq!(lake.rows("SELECT count(*) FROM web.requests").await, ["0"]);
    let repair = lake.run("MSCK REPAIR TABLE web.requests").await;
    assert_eq!(repair.statement_type, StatementType::Ddl);
    assert_eq!(
        text_rows(&repair)
            .iter()
            .filter(|l| l.starts_with("Repair"))
            .count(),
        9
    );
    // A second repair finds nothing new.
    assert!(text_rows(&lake.run("MSCK REPAIR TABLE web.requests").await).is_empty());

    let all = lake.run("SELECT count(*), sum(id) FROM web.requests").await;
    let one = lake
        .run("SELECT count(*), sum(id) FROM awsdatacatalog.web.requests WHERE service = 'web' AND dt = DATE '2024-01-02'")
        .await;
    assert_eq!(text_rows(&all), ["9000|49495500"]);
    assert_eq!(text_rows(&one), ["1000|5499500"]);
    assert!(one.bytes_scanned > 0);
    assert!(
        one.bytes_scanned * 5 < all.bytes_scanned,
        "pruned scan read {} bytes, full scan {}",
        one.bytes_scanned,
        all.bytes_scanned
    );
    // Partition columns are typed: a date range over them prunes too.
    assert_eq!(
        lake.rows("SELECT service, count(*) FROM web.requests WHERE dt >= DATE '2024-01-02' GROUP BY service ORDER BY service").await,
        ["api|2000", "auth|2000", "web|2000"]
    );
    assert_eq!(lake.rows("SHOW PARTITIONS web.requests").await.len(), 9);
    lake.run("ALTER TABLE web.requests DROP PARTITION (service='api', dt='2024-01-01')")
        .await;
    assert_eq!(
        lake.rows("SELECT count(*) FROM web.requests").await,
        ["8000"]
    );
    lake.run("ALTER TABLE web.requests ADD PARTITION (service='api', dt='2024-01-01') LOCATION 's3://logs/app/service=api/dt=2024-01-01/'").await;
    assert_eq!(
        lake.rows("SELECT count(*) FROM web.requests").await,
        ["9000"]
    );
    let e = lake
        .fail("ALTER TABLE web.requests ADD PARTITION (service='api', dt='2024-01-01')")
        .await;
    assert!(e.message.contains("could not be added"), "{e}");
    lake.run(
        "ALTER TABLE web.requests ADD IF NOT EXISTS PARTITION (service='api', dt='2024-01-01')",
    )
    .await;
}

/// JSON tables read values the way the OpenX SerDe (and Firehose's
/// conversion) does, with its key options, and a value that does not fit
/// its column fails the query naming the file, line and field.
#[tokio::test]
async fn json_tables_read_by_the_openx_rules() {
    let lake = Lake::new();
    lake.write(
        "raw/openx/a.json",
        br#"{"N": "42", "ts": 1796428800, "attrs": {"K": "1"}, "Dotted.Key": 3, "timestamp": "kw", "price": "1.005"}
{"n": 7, "ts": "2026-12-05 01:02:03.5"}
"#,
    );
    lake.run(
        "CREATE EXTERNAL TABLE o (n int, ts timestamp, attrs map<string,int>, dotted_key int,
           tsword string, price decimal(5,2))
         ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe'
         WITH SERDEPROPERTIES ('dots.in.keys'='true', 'mapping.tsword'='timestamp')
         LOCATION 's3://raw/openx/'",
    )
    .await;
    assert_eq!(
        lake.rows(
            "SELECT n, CAST(ts AS varchar), attrs['K'], dotted_key, tsword, price FROM o ORDER BY n"
        )
        .await,
        [
            "7|2026-12-05T01:02:03.500|NULL|NULL|NULL|NULL",
            "42|2026-12-05T00:00:00|1|3|kw|1.01",
        ]
    );
    lake.write("raw/openx/b.json", b"{\"n\": \"many\"}\n");
    let err = lake.fail("SELECT count(*) FROM o").await;
    assert!(
        err.message
            .contains("b.json: line 1: field \"n\": \"many\" is not a valid int"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn text_formats_json_csv_regex_and_gzip() {
    let lake = Lake::new();
    lake.write(
        "raw/json/a.json",
        b"{\"Id\": 1, \"Name\": \"x\", \"tags\": [\"a\",\"b\"], \"ts\": \"2024-01-02T03:04:05Z\"}\n{\"id\": 2, \"name\": null}\n\n",
    );
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, b"{\"id\": 3, \"name\": \"z\"}\n").unwrap();
    lake.write("raw/json/b.json.gz", &gz.finish().unwrap());
    lake.run(
        "CREATE EXTERNAL TABLE j (id bigint, name string, tags array<string>, ts timestamp)
         ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe' LOCATION 's3://raw/json/'",
    )
    .await;
    assert_eq!(
        lake.rows("SELECT id, name, cardinality(tags), ts FROM j ORDER BY id")
            .await,
        [
            "1|x|2|2024-01-02T03:04:05",
            "2|NULL|NULL|NULL",
            "3|z|NULL|NULL"
        ]
    );

    lake.write(
        "raw/csv/a.csv",
        b"id,city,amount\n1,\"Paris, FR\",2.5\n2,Oslo,x\n",
    );
    lake.run(
        "CREATE EXTERNAL TABLE c (id int, city string, amount double)
         ROW FORMAT SERDE 'org.apache.hadoop.hive.serde2.OpenCSVSerde'
         LOCATION 's3://raw/csv/' TBLPROPERTIES ('skip.header.line.count'='1')",
    )
    .await;
    assert_eq!(
        lake.rows("SELECT * FROM c ORDER BY id").await,
        ["1|Paris, FR|2.5", "2|Oslo|NULL"]
    );

    lake.write("raw/tsv/a.tsv", b"1\tred\t\\N\n2\tblue\t7\n");
    lake.run(
        "CREATE EXTERNAL TABLE t (id int, color string, n bigint)
         ROW FORMAT DELIMITED FIELDS TERMINATED BY '\\t' LOCATION 's3://raw/tsv/'",
    )
    .await;
    assert_eq!(
        lake.rows("SELECT * FROM t ORDER BY id").await,
        ["1|red|NULL", "2|blue|7"]
    );

    lake.write(
        "raw/access/a.log",
        b"10.0.0.1 - - [02/Jan/2024:03:04:05 +0000] \"GET /index.html HTTP/1.1\" 200 512\nnot a log line\n10.0.0.2 - - [02/Jan/2024:03:04:06 +0000] \"POST /api HTTP/1.1\" 500 17\n",
    );
    lake.run(
        r#"CREATE EXTERNAL TABLE access (ip string, ts string, method string, path string, status int, bytes bigint)
         ROW FORMAT SERDE 'org.apache.hadoop.hive.serde2.RegexSerDe'
         WITH SERDEPROPERTIES ('input.regex' = '(\\S+) \\S+ \\S+ \\[([^\\]]+)\\] "(\\S+) (\\S+) [^"]*" (\\d{3}) (\\d+)')
         LOCATION 's3://raw/access/'"#,
    )
    .await;
    assert_eq!(
        lake.rows("SELECT ip, method, path, status, bytes FROM access ORDER BY ip NULLS LAST")
            .await,
        [
            "10.0.0.1|GET|/index.html|200|512",
            "10.0.0.2|POST|/api|500|17",
            "NULL|NULL|NULL|NULL|NULL"
        ]
    );
    // Malformed JSON fails with the file and line, unless ignored.
    lake.write("raw/bad/a.json", b"{\"id\": 1}\n{oops\n");
    lake.run("CREATE EXTERNAL TABLE bad (id bigint) ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe' LOCATION 's3://raw/bad/'").await;
    let e = lake.fail("SELECT * FROM bad").await;
    assert!(
        e.message.contains("line 2") && e.message.contains("a.json"),
        "{e}"
    );
    lake.run("CREATE EXTERNAL TABLE bad2 (id bigint) ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe' WITH SERDEPROPERTIES ('ignore.malformed.json'='true') LOCATION 's3://raw/bad/'").await;
    assert_eq!(
        lake.rows("SELECT id FROM bad2 ORDER BY id").await,
        ["1", "NULL"]
    );
}

#[tokio::test]
async fn ctas_insert_unload_views_round_trip() {
    let lake = Lake::new();
    lake.run("CREATE DATABASE sales").await;
    let ctas = lake
        .run(
            "CREATE TABLE sales.orders WITH (format = 'PARQUET', partitioned_by = ARRAY['region'])
             AS SELECT * FROM (VALUES (1, 10.5, 'eu'), (2, 20.0, 'us'), (3, 5.25, 'eu')) AS t(id, amount, region)",
        )
        .await;
    assert_eq!(ctas.update_count, Some(3));
    assert_eq!(ctas.substatement_type, "CREATE_TABLE_AS_SELECT");
    assert_eq!(
        lake.rows("SHOW PARTITIONS sales.orders").await,
        ["region=eu", "region=us"]
    );
    let inserted = lake
        .run("INSERT INTO sales.orders VALUES (4, 1.0, 'ap'), (5, 2.0, 'eu')")
        .await;
    assert_eq!(inserted.update_count, Some(2));
    lake.run("INSERT INTO sales.orders (region, id) SELECT 'us', 6")
        .await;
    assert_eq!(
        lake.rows(
            "SELECT region, count(*), sum(amount) FROM sales.orders GROUP BY region ORDER BY region"
        )
        .await,
        ["ap|1|1.0", "eu|3|17.75", "us|2|20.0"]
    );
    assert_eq!(lake.rows("SHOW PARTITIONS sales.orders").await.len(), 3);

    lake.run("CREATE VIEW sales.big AS SELECT id, amount FROM sales.orders WHERE amount > 5")
        .await;
    assert_eq!(
        lake.rows("SELECT id FROM sales.big ORDER BY id").await,
        ["1", "2", "3"]
    );
    assert!(
        lake.rows("SHOW TABLES IN sales")
            .await
            .contains(&"big".to_string())
    );
    assert_eq!(lake.rows("SHOW VIEWS IN sales").await, ["big"]);
    let e = lake.fail("CREATE VIEW sales.big AS SELECT 1").await;
    assert!(e.message.contains("already exists"), "{e}");
    lake.run("CREATE OR REPLACE VIEW sales.big AS SELECT id FROM sales.orders WHERE amount > 15")
        .await;
    assert_eq!(lake.rows("SELECT * FROM sales.big").await, ["2"]);

    let unload = lake
        .run("UNLOAD (SELECT id, region FROM sales.orders WHERE region = 'eu') TO 's3://exports/eu/' WITH (format = 'JSON')")
        .await;
    assert_eq!(unload.update_count, Some(3));
    lake.run("CREATE EXTERNAL TABLE eu (id bigint, region string) ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe' LOCATION 's3://exports/eu/'").await;
    assert_eq!(
        lake.rows("SELECT id FROM eu ORDER BY id").await,
        ["1", "3", "5"]
    );
    let e = lake.fail("UNLOAD (SELECT 1) TO 's3://exports/eu/'").await;
    assert!(e.message.contains("not empty"), "{e}");

    let text = lake
        .run("CREATE TABLE csvish WITH (format='TEXTFILE', field_delimiter=',', external_location='s3://exports/csvish/') AS SELECT id, region FROM sales.orders WHERE id < 3")
        .await;
    assert_eq!(text.update_count, Some(2));
    assert_eq!(
        lake.rows("SELECT * FROM csvish ORDER BY id").await,
        ["1|eu", "2|us"]
    );

    let describe = lake.rows("DESCRIBE sales.orders").await;
    assert_eq!(describe[0], "id|bigint|");
    assert!(describe.contains(&"# Partition Information||".to_string()));
    let create = lake.rows("SHOW CREATE TABLE sales.orders").await.join("\n");
    assert!(create.contains("PARTITIONED BY"), "{create}");
    assert!(
        create.contains("s3://lakehose-warehouse/sales/orders/"),
        "{create}"
    );

    lake.run("DROP VIEW sales.big").await;
    let e = lake.fail("DROP DATABASE sales").await;
    assert!(e.message.contains("CASCADE"), "{e}");
    lake.run("DROP TABLE sales.orders").await;
    let e = lake.fail("SELECT * FROM sales.orders").await;
    assert_eq!(e.kind, QueryErrorKind::Semantic);
    assert!(e.message.contains("TABLE_NOT_FOUND"), "{e}");
    lake.run("DROP DATABASE sales CASCADE").await;
    assert!(
        !lake
            .rows("SHOW DATABASES")
            .await
            .contains(&"sales".to_string())
    );
}

#[tokio::test]
async fn errors_are_classified_and_name_the_problem() {
    let lake = Lake::new();
    lake.run("CREATE DATABASE IF NOT EXISTS default").await;
    let e = lake.fail("SELEC 1").await;
    assert_eq!(e.kind, QueryErrorKind::Syntax, "{e}");
    let e = lake.fail("SELECT * FROM nowhere").await;
    assert_eq!(e.kind, QueryErrorKind::Semantic);
    assert!(e.message.contains("nowhere"), "{e}");
    let e = lake.fail("SELECT nope FROM (SELECT 1 AS a)").await;
    assert_eq!(e.kind, QueryErrorKind::Semantic);
    assert!(e.message.contains("nope"), "{e}");
    let e = lake
        .fail("CREATE EXTERNAL TABLE x (a int) STORED AS ORC LOCATION 's3://bkt/x/'")
        .await;
    assert!(e.message.contains("ORC"), "{e}");
    let e = lake
        .fail("CREATE EXTERNAL TABLE x (a int) LOCATION 'hdfs://b/x/'")
        .await;
    assert!(e.message.contains("s3://"), "{e}");
    let e = lake
        .engine
        .execute(QueryRequest {
            sql: "SELECT 1".into(),
            catalog: Some("hive".into()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(e.message.contains("CATALOG_NOT_FOUND"), "{e}");
    let e = lake.fail("SELECT CAST('x' AS int)").await;
    assert_eq!(e.kind, QueryErrorKind::Data, "{e}");
}

#[tokio::test]
async fn a_bytes_scanned_cutoff_fails_the_query() {
    let lake = Lake::new();
    lake.write("data/t/a.parquet", &parquet(0..50_000, "x"));
    lake.run("CREATE EXTERNAL TABLE t (id bigint, path string) STORED AS PARQUET LOCATION 's3://data/t/'").await;
    let ok = lake.run("SELECT max(id) FROM t").await;
    assert!(ok.bytes_scanned > 1000);
    let e = lake
        .engine
        .execute(QueryRequest {
            sql: "SELECT max(id) FROM t".into(),
            database: Some("default".into()),
            bytes_scanned_cutoff: Some(1000),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.kind, QueryErrorKind::Limit);
    assert!(e.message.contains("Bytes scanned limit"), "{e}");
}

#[tokio::test]
async fn a_join_larger_than_memory_spills_instead_of_failing() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::local(dir.path()).unwrap();
    let catalog: CatalogRef = Arc::new(EmbeddedCatalog::new(storage.clone()));
    let engine = QueryEngine::new(
        catalog,
        storage,
        EngineConfig {
            memory_limit: 24 << 20,
            spill_dir: Some(dir.path().join("spill")),
            ..Default::default()
        },
    )
    .unwrap();
    let sql = "SELECT count(*), count(DISTINCT a.k) FROM
        (SELECT value % 400000 AS k, repeat('x', 40) AS pad FROM generate_series(1, 800000)) a
        JOIN (SELECT value % 400000 AS k FROM generate_series(1, 400000)) b ON a.k = b.k
        ORDER BY 1";
    let out = engine
        .execute(QueryRequest::new(
            format!("SELECT * FROM ({sql}) ORDER BY 1"),
            Some("default"),
        ))
        .await;
    let out = match out {
        Ok(o) => o,
        Err(e) => panic!("{e}"),
    };
    let rows = text_rows(&out);
    assert_eq!(rows, ["800000|400000"]);
    let _ = out.batches[0].column(0).len();
}

#[tokio::test]
async fn string_functions_take_dictionary_encoded_partition_columns() {
    let lake = Lake::new();
    lake.run(
        "CREATE TABLE days WITH (format = 'PARQUET', partitioned_by = ARRAY['dt']) AS \
         SELECT * FROM (VALUES (1, '2026-12-01'), (2, '2026-12-02')) AS t(n, dt)",
    )
    .await;
    assert_eq!(
        lake.rows(
            "SELECT n, date_parse(dt, '%Y-%m-%d'), upper(dt), length(dt) FROM days ORDER BY n"
        )
        .await,
        [
            "1|2026-12-01T00:00:00|2026-12-01|10",
            "2|2026-12-02T00:00:00|2026-12-02|10"
        ]
    );
}

#[tokio::test]
async fn a_requests_settings_switch_planner_rules_for_it_alone() {
    let lake = Lake::new();
    lake.write("data/t/a.parquet", &parquet(0..5_000, "x"));
    lake.run("CREATE EXTERNAL TABLE t (id bigint, path string) STORED AS PARQUET LOCATION 's3://data/t/'").await;
    let sql = "EXPLAIN WITH r AS (SELECT id % 7 AS k, count(*) AS n FROM t GROUP BY id % 7) \
               SELECT k FROM r WHERE n = (SELECT max(n) FROM r)";
    let explain = |settings: Vec<(String, String)>| {
        let engine = lake.engine.clone();
        async move {
            let out = engine
                .execute(QueryRequest {
                    sql: sql.into(),
                    database: Some("default".into()),
                    settings,
                    ..Default::default()
                })
                .await?;
            let text = datafusion::arrow::util::pretty::pretty_format_batches(&out.batches)
                .unwrap()
                .to_string();
            Ok::<_, lakehose_query::QueryError>(text)
        }
    };
    let off = || vec![("lakehose.share_subplans".to_string(), "false".to_string())];
    assert!(explain(vec![]).await.unwrap().contains("SharedExec"));
    assert!(!explain(off()).await.unwrap().contains("SharedExec"));
    // The engine's defaults are untouched by another request's settings.
    assert!(explain(vec![]).await.unwrap().contains("SharedExec"));
    // Only lakehose's switches, with values of their kind.
    for (key, value) in [
        ("datafusion.execution.target_partitions", "1000"),
        ("lakehose.share_subplans", "perhaps"),
        ("lakehose.no_such_rule", "true"),
    ] {
        let e = explain(vec![(key.to_string(), value.to_string())])
            .await
            .unwrap_err();
        assert!(e.message.contains(key), "{e}");
    }
}
