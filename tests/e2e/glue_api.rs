//! The Glue Data Catalog API through the real `aws-sdk-glue` client:
//! databases, tables, versions, paging, typed errors, persistence, and two
//! processes writing one catalog at once.

use aws_sdk_glue::types::{Column, DatabaseInput, SerDeInfo, StorageDescriptor, TableInput};

use crate::util::*;

fn table_input(name: &str, columns: &[(&str, &str)]) -> TableInput {
    let sd = StorageDescriptor::builder()
        .set_columns(Some(
            columns
                .iter()
                .map(|(n, t)| Column::builder().name(*n).r#type(*t).build().unwrap())
                .collect(),
        ))
        .location(format!("s3://lake/{name}/"))
        .input_format("org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat")
        .output_format("org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat")
        .serde_info(
            SerDeInfo::builder()
                .serialization_library(
                    "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe",
                )
                .build(),
        )
        .build();
    TableInput::builder()
        .name(name)
        .table_type("EXTERNAL_TABLE")
        .parameters("classification", "parquet")
        .partition_keys(
            Column::builder()
                .name("dt")
                .r#type("string")
                .build()
                .unwrap(),
        )
        .storage_descriptor(sd)
        .build()
        .unwrap()
}

#[test]
fn databases_tables_versions_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let glue = glue_client(&server.endpoint);
    let rt = rt();
    rt.block_on(async {
        for name in ["web_logs", "Sales", "app"] {
            glue.create_database()
                .database_input(
                    DatabaseInput::builder()
                        .name(name)
                        .description("d")
                        .build()
                        .unwrap(),
                )
                .send()
                .await
                .unwrap();
        }
        // Paging through databases.
        let mut names = Vec::new();
        let mut token = None;
        loop {
            let out = glue
                .get_databases()
                .max_results(2)
                .set_next_token(token)
                .send()
                .await
                .unwrap();
            names.extend(out.database_list().iter().map(|d| d.name().to_string()));
            token = out.next_token().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        assert_eq!(names, ["app", "sales", "web_logs"]);

        let err = glue
            .create_database()
            .database_input(DatabaseInput::builder().name("sales").build().unwrap())
            .send()
            .await
            .unwrap_err();
        assert!(
            err.as_service_error()
                .unwrap()
                .is_already_exists_exception(),
            "{err:?}"
        );
        let err = glue.get_database().name("nope").send().await.unwrap_err();
        assert!(
            err.as_service_error()
                .unwrap()
                .is_entity_not_found_exception(),
            "{err:?}"
        );
        let err = glue
            .create_database()
            .database_input(DatabaseInput::builder().name("a/b").build().unwrap())
            .send()
            .await
            .unwrap_err();
        assert!(
            err.as_service_error().unwrap().is_invalid_input_exception(),
            "{err:?}"
        );

        // Tables.
        glue.create_table()
            .database_name("web_logs")
            .table_input(table_input(
                "requests",
                &[("status", "bigint"), ("path", "string")],
            ))
            .send()
            .await
            .unwrap();
        for name in ["request_errors", "sessions", "users", "req_daily"] {
            glue.create_table()
                .database_name("web_logs")
                .table_input(table_input(name, &[("x", "int")]))
                .send()
                .await
                .unwrap();
        }
        let t = glue
            .get_table()
            .database_name("web_logs")
            .name("Requests")
            .send()
            .await
            .unwrap();
        let t = t.table().unwrap();
        assert_eq!(t.name(), "requests");
        assert_eq!(t.database_name(), Some("web_logs"));
        assert_eq!(t.version_id(), Some("1"));
        assert!(t.create_time().is_some());
        assert_eq!(t.parameters().unwrap()["classification"], "parquet");
        assert_eq!(t.partition_keys()[0].name(), "dt");
        let sd = t.storage_descriptor().unwrap();
        assert_eq!(sd.location(), Some("s3://lake/requests/"));
        let cols: Vec<(&str, Option<&str>)> = sd
            .columns()
            .iter()
            .map(|c| (c.name(), c.r#type()))
            .collect();
        assert_eq!(cols, [("status", Some("bigint")), ("path", Some("string"))]);

        // Expression (Hive pattern) and paging.
        let out = glue
            .get_tables()
            .database_name("web_logs")
            .expression("req*")
            .send()
            .await
            .unwrap();
        let names: Vec<&str> = out.table_list().iter().map(|t| t.name()).collect();
        assert_eq!(names, ["req_daily", "request_errors", "requests"]);
        let mut all = Vec::new();
        let mut token = None;
        loop {
            let out = glue
                .get_tables()
                .database_name("web_logs")
                .max_results(2)
                .set_next_token(token)
                .send()
                .await
                .unwrap();
            all.extend(out.table_list().iter().map(|t| t.name().to_string()));
            token = out.next_token().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        assert_eq!(all.len(), 5);

        // Updates are versions; a stale VersionId is refused.
        glue.update_table()
            .database_name("web_logs")
            .table_input(table_input(
                "requests",
                &[
                    ("status", "bigint"),
                    ("path", "string"),
                    ("latency_ms", "double"),
                ],
            ))
            .version_id("1")
            .send()
            .await
            .unwrap();
        let err = glue
            .update_table()
            .database_name("web_logs")
            .table_input(table_input("requests", &[]))
            .version_id("1")
            .send()
            .await
            .unwrap_err();
        assert!(
            err.as_service_error()
                .unwrap()
                .is_concurrent_modification_exception(),
            "{err:?}"
        );
        let versions = glue
            .get_table_versions()
            .database_name("web_logs")
            .table_name("requests")
            .send()
            .await
            .unwrap();
        let ids: Vec<&str> = versions
            .table_versions()
            .iter()
            .map(|v| v.version_id().unwrap())
            .collect();
        assert_eq!(ids, ["2", "1"]);
        let newest = versions.table_versions()[0].table().unwrap();
        assert_eq!(newest.storage_descriptor().unwrap().columns().len(), 3);

        let err = glue
            .create_table()
            .database_name("ghost")
            .table_input(table_input("t", &[]))
            .send()
            .await
            .unwrap_err();
        assert!(
            err.as_service_error()
                .unwrap()
                .is_entity_not_found_exception()
        );
        glue.delete_table()
            .database_name("web_logs")
            .name("users")
            .send()
            .await
            .unwrap();
        let err = glue
            .get_table()
            .database_name("web_logs")
            .name("users")
            .send()
            .await
            .unwrap_err();
        assert!(
            err.as_service_error()
                .unwrap()
                .is_entity_not_found_exception()
        );
        glue.delete_database().name("app").send().await.unwrap();
    });
    server.terminate();

    // Everything survives a restart.
    let server = Server::start(dir.path(), &[]);
    let glue = glue_client(&server.endpoint);
    rt.block_on(async {
        let dbs = glue.get_databases().send().await.unwrap();
        let names: Vec<&str> = dbs.database_list().iter().map(|d| d.name()).collect();
        assert_eq!(names, ["sales", "web_logs"]);
        let tables = glue
            .get_tables()
            .database_name("web_logs")
            .send()
            .await
            .unwrap();
        assert_eq!(tables.table_list().len(), 4);
        let t = glue
            .get_table()
            .database_name("web_logs")
            .name("requests")
            .send()
            .await
            .unwrap();
        assert_eq!(t.table().unwrap().version_id(), Some("2"));
    });
    server.terminate();
}

#[test]
fn two_processes_writing_one_catalog_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let wal_a = dir.path().join("wal-a");
    let wal_b = dir.path().join("wal-b");
    let a = Server::start(dir.path(), &["--wal-dir", wal_a.to_str().unwrap()]);
    let b = Server::start(dir.path(), &["--wal-dir", wal_b.to_str().unwrap()]);
    let (ga, gb) = (glue_client(&a.endpoint), glue_client(&b.endpoint));
    let rt = rt();
    rt.block_on(async {
        ga.create_database()
            .database_input(DatabaseInput::builder().name("shared").build().unwrap())
            .send()
            .await
            .unwrap();
        gb.create_table()
            .database_name("shared")
            .table_input(table_input("hot", &[]))
            .send()
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for (w, glue) in [ga.clone(), gb.clone()].into_iter().enumerate() {
            tasks.push(tokio::spawn(async move {
                for i in 0..15 {
                    glue.create_table()
                        .database_name("shared")
                        .table_input(table_input(&format!("t{w}_{i}"), &[]))
                        .send()
                        .await
                        .unwrap();
                    glue.update_table()
                        .database_name("shared")
                        .table_input(table_input("hot", &[(&format!("c{w}_{i}"), "int")]))
                        .send()
                        .await
                        .unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let tables = ga
            .get_tables()
            .database_name("shared")
            .send()
            .await
            .unwrap();
        assert_eq!(tables.table_list().len(), 31);
        let versions = gb
            .get_table_versions()
            .database_name("shared")
            .table_name("hot")
            .send()
            .await
            .unwrap();
        assert_eq!(
            versions.table_versions().len(),
            31,
            "1 create + 30 updates, none lost"
        );
    });
    a.terminate();
    b.terminate();
}
