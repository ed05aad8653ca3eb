//! Hostile column types: a type nested thousands of levels deep, or with
//! non-ASCII whitespace, sent through the real Glue and Athena clients is
//! refused naming the column, and the server stays up; a type like that
//! already stored in the catalog (written by an older version) does not stop
//! the server from starting, replaying its log or answering other queries.

use std::path::Path;

use aws_sdk_athena::types::QueryExecutionState;
use aws_sdk_glue::error::ProvideErrorMetadata;
use aws_sdk_glue::types::{Column, DatabaseInput, PartitionInput, StorageDescriptor, TableInput};

use crate::athena::{athena_client, run, select};
use crate::util::{
    Server, create_parquet_stream_with_table, error_docs, glue_client, parquet_rows, record, rt,
};

/// `struct<a:struct<a:...int...>>`, `depth` levels deep.
fn deep_type(depth: usize) -> String {
    format!("{}int{}", "struct<a:".repeat(depth), ">".repeat(depth))
}

fn column(name: &str, ty: &str) -> Column {
    Column::builder().name(name).r#type(ty).build().unwrap()
}

fn table_input(name: &str, columns: Vec<Column>) -> TableInput {
    TableInput::builder()
        .name(name)
        .storage_descriptor(
            StorageDescriptor::builder()
                .set_columns(Some(columns))
                .location(format!("s3://lake/{name}/"))
                .build(),
        )
        .build()
        .unwrap()
}

async fn healthy(endpoint: &str) {
    let health = reqwest::get(format!("{endpoint}/health")).await.unwrap();
    assert_eq!(health.status().as_u16(), 200);
}

/// A JSON-lines table `db.good` over two records in `<data>/lake/good/`.
async fn good_table(athena: &aws_sdk_athena::Client, data: &Path) {
    let folder = data.join("lake/good");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("part-0.json"), "{\"id\": 1}\n{\"id\": 2}\n").unwrap();
    let sql = "CREATE EXTERNAL TABLE db.good (id bigint) \
               ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe' \
               LOCATION 's3://lake/good/'";
    let (_, state, reason) = run(athena, sql, "db").await;
    assert_eq!(state, QueryExecutionState::Succeeded, "{reason:?}");
    let rows = select(athena, "SELECT sum(id) FROM db.good", "db").await;
    assert_eq!(rows, [[Some("3".to_string())]]);
}

#[test]
fn glue_refuses_hostile_column_types() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let glue = glue_client(&server.endpoint);
    let athena = athena_client(&server.endpoint);
    rt().block_on(async {
        glue.create_database()
            .database_input(DatabaseInput::builder().name("db").build().unwrap())
            .send()
            .await
            .unwrap();

        let deep = deep_type(5000);
        let err = glue
            .create_table()
            .database_name("db")
            .table_input(table_input(
                "deep",
                vec![column("id", "bigint"), column("nested", &deep)],
            ))
            .send()
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some("InvalidInputException"), "{err:?}");
        let message = err.message().unwrap_or_default();
        assert!(
            message.contains("\"nested\"") && message.contains("nested deeper than 64 levels"),
            "{message}"
        );
        assert!(
            message.len() < 1000,
            "the type is not echoed whole: {message}"
        );

        let err = glue
            .create_table()
            .database_name("db")
            .table_input(table_input(
                "spaced",
                vec![column("name", "string\u{3000}")],
            ))
            .send()
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some("InvalidInputException"), "{err:?}");
        let message = err.message().unwrap_or_default();
        assert!(
            message.contains("\"name\"") && message.contains("U+3000"),
            "{message}"
        );
        for name in ["deep", "spaced"] {
            let err = glue
                .get_table()
                .database_name("db")
                .name(name)
                .send()
                .await
                .unwrap_err();
            assert_eq!(err.code(), Some("EntityNotFoundException"), "{name}");
        }

        // A good table, then the same hostile types through UpdateTable
        // and partitions: refused, and the table is unchanged.
        glue.create_table()
            .database_name("db")
            .table_input(
                TableInput::builder()
                    .name("keyed")
                    .storage_descriptor(
                        StorageDescriptor::builder()
                            .columns(column("id", "bigint"))
                            .location("s3://lake/keyed/")
                            .build(),
                    )
                    .partition_keys(column("dt", "string"))
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        let err = glue
            .update_table()
            .database_name("db")
            .table_input(table_input("keyed", vec![column("id", &deep)]))
            .send()
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some("InvalidInputException"), "{err:?}");
        let partition = PartitionInput::builder()
            .values("2026-01-01")
            .storage_descriptor(
                StorageDescriptor::builder()
                    .columns(column("id", &deep))
                    .location("s3://lake/keyed/dt=2026-01-01/")
                    .build(),
            )
            .build();
        let out = glue
            .batch_create_partition()
            .database_name("db")
            .table_name("keyed")
            .partition_input_list(partition.clone())
            .send()
            .await
            .unwrap();
        let errors = out.errors();
        assert_eq!(errors.len(), 1, "{errors:?}");
        let detail = errors[0].error_detail().unwrap();
        assert_eq!(detail.error_code(), Some("InvalidInputException"));
        assert!(
            detail
                .error_message()
                .unwrap_or_default()
                .contains("nested deeper"),
            "{detail:?}"
        );
        let err = glue
            .create_partition()
            .database_name("db")
            .table_name("keyed")
            .partition_input(partition)
            .send()
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some("InvalidInputException"), "{err:?}");
        let stored = glue
            .get_table()
            .database_name("db")
            .name("keyed")
            .send()
            .await
            .unwrap();
        let stored = stored.table().unwrap();
        assert_eq!(stored.version_id(), Some("1"));
        assert_eq!(
            stored.storage_descriptor().unwrap().columns()[0].r#type(),
            Some("bigint")
        );

        healthy(&server.endpoint).await;
        good_table(&athena, dir.path()).await;
    });
}

#[test]
fn athena_ddl_refuses_deep_types() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let athena = athena_client(&server.endpoint);
    rt().block_on(async {
        let (_, state, reason) = run(&athena, "CREATE DATABASE db", "default").await;
        assert_eq!(state, QueryExecutionState::Succeeded, "{reason:?}");
        let sql = format!(
            "CREATE EXTERNAL TABLE db.deep (id bigint, nested {}) LOCATION 's3://lake/deep/'",
            deep_type(300)
        );
        let (_, state, reason) = run(&athena, &sql, "db").await;
        assert_eq!(state, QueryExecutionState::Failed);
        let reason = reason.unwrap_or_default();
        assert!(
            reason.contains("column nested") && reason.contains("nested deeper than 64 levels"),
            "{reason}"
        );
        assert!(
            reason.len() < 1000,
            "the type is not echoed whole: {reason}"
        );
        // Closing brackets spelled as `>>` tokens nest the same.
        let sql = format!(
            "CREATE EXTERNAL TABLE db.deep (id bigint, nested {}int{}) LOCATION 's3://lake/deep/'",
            "array<".repeat(300),
            ">>".repeat(150)
        );
        let (_, state, reason) = run(&athena, &sql, "db").await;
        assert_eq!(state, QueryExecutionState::Failed);
        let reason = reason.unwrap_or_default();
        assert!(reason.contains("nested deeper"), "{reason}");
        // Thousands of levels are refused from the statement's tokens,
        // before the DDL parser reads the type.
        let sql = format!(
            "CREATE EXTERNAL TABLE db.deep (id bigint, nested {}) LOCATION 's3://lake/deep/'",
            deep_type(5000)
        );
        let (_, state, reason) = run(&athena, &sql, "db").await;
        assert_eq!(state, QueryExecutionState::Failed);
        let reason = reason.unwrap_or_default();
        assert!(reason.contains("QUERY_TOO_COMPLEX"), "{reason}");

        let sql = "CREATE EXTERNAL TABLE db.spaced (id big\u{3000}int) LOCATION 's3://lake/s/'";
        let (_, state, reason) = run(&athena, sql, "db").await;
        assert_eq!(state, QueryExecutionState::Failed, "{reason:?}");
        let reason = reason.unwrap_or_default();
        assert!(reason.contains("Invalid type for column id"), "{reason}");

        healthy(&server.endpoint).await;
        good_table(&athena, dir.path()).await;
    });
}

/// The newest version file of table `db.name` in the catalog.
fn latest_version_file(data: &Path, db: &str, name: &str) -> std::path::PathBuf {
    let folder = data.join("_lakehose/catalog/tables").join(db).join(name);
    let mut files: Vec<_> = std::fs::read_dir(&folder)
        .unwrap_or_else(|e| panic!("{}: {e}", folder.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files.pop().expect("a version file")
}

#[test]
fn a_stored_deep_type_does_not_stop_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let server = Server::start(data, &[]);
    let athena = athena_client(&server.endpoint);
    let firehose = server.client();
    rt().block_on(async {
        let (_, state, reason) = run(&athena, "CREATE DATABASE db", "default").await;
        assert_eq!(state, QueryExecutionState::Succeeded, "{reason:?}");
        good_table(&athena, data).await;
        let sql = "CREATE EXTERNAL TABLE db.events (id bigint, path string) \
                   PARTITIONED BY (service string, dt string) \
                   STORED AS PARQUET LOCATION 's3://events/logs/'";
        let (_, state, reason) = run(&athena, sql, "db").await;
        assert_eq!(state, QueryExecutionState::Succeeded, "{reason:?}");
        // A stream converting with that table's schema; its records stay in
        // the write-ahead log (a 15-minute buffer, then a kill).
        create_parquet_stream_with_table(
            &firehose,
            "events",
            "events",
            900,
            Some(("db", "events")),
        )
        .await;
        let records: Vec<_> = (0..10)
            .map(|i| record(format!(r#"{{"id": {i}, "service": "web", "path": "/p"}}"#)))
            .collect();
        let out = firehose
            .put_record_batch()
            .delivery_stream_name("events")
            .set_records(Some(records))
            .send()
            .await
            .unwrap();
        assert_eq!(out.failed_put_count(), 0);
    });
    server.kill();

    // An older version stored a type nested 5,000 levels deep.
    let file = latest_version_file(data, "db", "events");
    let mut version: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let columns = version["value"]["StorageDescriptor"]["Columns"]
        .as_array_mut()
        .expect("the version file has columns");
    columns[0]["Type"] = serde_json::Value::String(deep_type(5000));
    std::fs::write(&file, serde_json::to_vec(&version).unwrap()).unwrap();

    // It starts (replaying the stream's records, whose conversion reads
    // that table), and everything but that table works.
    let server = Server::start(data, &[]);
    let athena = athena_client(&server.endpoint);
    let glue = glue_client(&server.endpoint);
    rt().block_on(async {
        healthy(&server.endpoint).await;
        let rows = select(&athena, "SELECT sum(id) FROM db.good", "db").await;
        assert_eq!(rows, [[Some("3".to_string())]]);
        let (_, state, reason) = run(&athena, "SELECT * FROM db.events", "db").await;
        assert_eq!(state, QueryExecutionState::Failed);
        let reason = reason.unwrap_or_default();
        assert!(
            reason.contains("db.events")
                && reason.contains("column id")
                && reason.contains("nested deeper than 64 levels"),
            "{reason}"
        );
        // The catalog still answers for it, so it can be repaired.
        let stored = glue
            .get_table()
            .database_name("db")
            .name("events")
            .send()
            .await
            .unwrap();
        assert_eq!(stored.table().unwrap().name(), "events");

        // Postgres clients: listing tables works, reading that one fails
        // naming it.
        let (host, port) = server.pg_addr.rsplit_once(':').unwrap();
        let (pg, connection) = tokio_postgres::connect(
            &format!("host={host} port={port} user=analyst dbname=db"),
            tokio_postgres::NoTls,
        )
        .await
        .unwrap();
        tokio::spawn(connection);
        let tables = pg
            .query(
                "SELECT table_name FROM information_schema.tables \
                 WHERE table_schema = 'db' ORDER BY table_name",
                &[],
            )
            .await
            .unwrap();
        let names: Vec<String> = tables.iter().map(|r| r.get(0)).collect();
        assert_eq!(names, ["events", "good"]);
        let err = pg
            .simple_query("SELECT * FROM db.events")
            .await
            .unwrap_err();
        let message = err
            .as_db_error()
            .map(|e| e.message().to_string())
            .unwrap_or_default();
        assert!(message.contains("db.events"), "{err:?}");
        let rows = pg
            .simple_query("SELECT count(*) FROM db.good")
            .await
            .unwrap();
        assert!(!rows.is_empty());
        healthy(&server.endpoint).await;
    });
    // The replayed records are not converted with some other schema: they
    // go to the error prefix saying why.
    server.terminate();
    assert!(parquet_rows(&data.join("events/logs")).is_empty());
    let docs = error_docs(&data.join("events/errors"));
    assert_eq!(docs.len(), 10, "{docs:?}");
    for d in &docs {
        assert_eq!(d["errorOutputType"], "format-conversion-failed");
        let message = d["errorMessage"].as_str().unwrap();
        assert!(
            message.contains("db.events cannot be used") && message.contains("nested deeper"),
            "{message}"
        );
    }
}

/// GetTableVersions pages at most 100 versions at a time, and GetPartitions
/// expressions are bounded in length and nesting: each refusal is an
/// InvalidInputException saying why, and the server stays up.
#[test]
fn glue_lists_and_expressions_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let glue = glue_client(&server.endpoint);
    rt().block_on(async {
        glue.create_database()
            .database_input(DatabaseInput::builder().name("db").build().unwrap())
            .send()
            .await
            .unwrap();
        let keyed = || {
            TableInput::builder()
                .name("keyed")
                .storage_descriptor(
                    StorageDescriptor::builder()
                        .columns(column("id", "bigint"))
                        .location("s3://lake/keyed/")
                        .build(),
                )
                .partition_keys(column("dt", "string"))
                .build()
                .unwrap()
        };
        glue.create_table()
            .database_name("db")
            .table_input(keyed())
            .send()
            .await
            .unwrap();
        for _ in 0..4 {
            glue.update_table()
                .database_name("db")
                .table_input(keyed())
                .send()
                .await
                .unwrap();
        }
        let mut seen = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = glue
                .get_table_versions()
                .database_name("db")
                .table_name("keyed")
                .max_results(2)
                .set_next_token(token.clone())
                .send()
                .await
                .unwrap();
            assert!(page.table_versions().len() <= 2);
            seen.extend(
                page.table_versions()
                    .iter()
                    .map(|v| v.version_id().unwrap().to_string()),
            );
            token = page.next_token().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        assert_eq!(seen, ["5", "4", "3", "2", "1"]);
        let err = glue
            .get_table_versions()
            .database_name("db")
            .table_name("keyed")
            .max_results(101)
            .send()
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some("InvalidInputException"), "{err:?}");
        assert!(
            err.message()
                .unwrap_or_default()
                .contains("between 1 and 100")
        );

        glue.create_partition()
            .database_name("db")
            .table_name("keyed")
            .partition_input(
                PartitionInput::builder()
                    .values("2026-01-01")
                    .storage_descriptor(
                        StorageDescriptor::builder()
                            .location("s3://lake/keyed/dt=2026-01-01/")
                            .build(),
                    )
                    .build(),
            )
            .send()
            .await
            .unwrap();
        let deep = format!("{}dt = '2026-01-01'{}", "(".repeat(40), ")".repeat(40));
        let long = format!("{}dt = '2026-01-01'", "NOT ".repeat(600));
        let nots = format!("{}dt = '2026-01-01'", "NOT ".repeat(100));
        for (expression, why) in [
            (deep.as_str(), "deeper than 32 levels"),
            (nots.as_str(), "deeper than 32 levels"),
            (long.as_str(), "longer than 2048"),
            ("dt = '2026\u{3000}", "unterminated"),
            ("dt\u{3000}=\u{3000}'x' AND", "expected"),
        ] {
            let err = glue
                .get_partitions()
                .database_name("db")
                .table_name("keyed")
                .expression(expression)
                .send()
                .await
                .unwrap_err();
            assert_eq!(err.code(), Some("InvalidInputException"), "{err:?}");
            let message = err.message().unwrap_or_default();
            assert!(message.contains(why), "{expression}: {message}");
        }
        let found = glue
            .get_partitions()
            .database_name("db")
            .table_name("keyed")
            .expression("((dt\u{3000}=\u{3000}'2026-01-01'))")
            .send()
            .await
            .unwrap();
        assert_eq!(found.partitions().len(), 1);
        healthy(&server.endpoint).await;
    });
}
