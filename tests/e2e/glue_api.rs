//! The Glue Data Catalog API through the real `aws-sdk-glue` client:
//! databases, tables, versions, paging, typed errors, persistence, and two
//! processes writing one catalog at once.

use aws_sdk_glue::types::{Column, DatabaseInput, StorageDescriptor, TableInput};

use crate::util::*;

fn table_input(name: &str, columns: &[(&str, &str)]) -> TableInput {
    parquet_table_input(name, &format!("s3://lake/{name}/"), columns, &["dt"])
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
        // `default` exists from the start, as in an account that uses Athena.
        assert_eq!(names, ["app", "default", "sales", "web_logs"]);

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
        assert_eq!(names, ["default", "sales", "web_logs"]);
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

#[test]
fn partitions_in_batches_with_expressions_and_paging() {
    use aws_sdk_glue::types::{PartitionInput, PartitionValueList};
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let glue = glue_client(&server.endpoint);
    rt().block_on(async {
        glue.create_database()
            .database_input(DatabaseInput::builder().name("lake").build().unwrap())
            .send()
            .await
            .unwrap();
        let mut t = table_input("events", &[("x", "int")]);
        t.partition_keys = Some(vec![
            Column::builder()
                .name("year")
                .r#type("int")
                .build()
                .unwrap(),
            Column::builder()
                .name("service")
                .r#type("string")
                .build()
                .unwrap(),
        ]);
        glue.create_table()
            .database_name("lake")
            .table_input(t)
            .send()
            .await
            .unwrap();
        let input = |year: i32, service: &str| {
            PartitionInput::builder()
                .set_values(Some(vec![year.to_string(), service.to_string()]))
                .storage_descriptor(
                    StorageDescriptor::builder()
                        .location(format!("s3://lake/events/year={year}/service={service}/"))
                        .build(),
                )
                .build()
        };
        // 300 partitions in batches of 100.
        let services = ["web", "api", "auth"];
        for batch in 0..3 {
            let list: Vec<PartitionInput> = (0..100)
                .map(|i| input(1900 + batch * 100 + i / 3, services[(i % 3) as usize]))
                .collect();
            let out = glue
                .batch_create_partition()
                .database_name("lake")
                .table_name("events")
                .set_partition_input_list(Some(list))
                .send()
                .await
                .unwrap();
            assert!(out.errors().is_empty(), "{:?}", out.errors());
        }
        // A batch with a duplicate and a wrong value count reports both, adds the rest.
        let out = glue
            .batch_create_partition()
            .database_name("lake")
            .table_name("events")
            .partition_input_list(input(1900, "web"))
            .partition_input_list(PartitionInput::builder().values("1").build())
            .partition_input_list(input(2500, "web"))
            .send()
            .await
            .unwrap();
        let codes: Vec<&str> = out
            .errors()
            .iter()
            .map(|e| e.error_detail().unwrap().error_code().unwrap())
            .collect();
        assert_eq!(codes, ["AlreadyExistsException", "InvalidInputException"]);
        let err = glue
            .create_partition()
            .database_name("lake")
            .table_name("events")
            .partition_input(input(2500, "web"))
            .send()
            .await
            .unwrap_err();
        assert!(
            err.as_service_error()
                .unwrap()
                .is_already_exists_exception()
        );

        // Expressions filter on typed keys; paging walks every partition.
        let hits = glue
            .get_partitions()
            .database_name("lake")
            .table_name("events")
            .expression("year BETWEEN 1910 AND 1919 AND service IN ('web', 'api')")
            .send()
            .await
            .unwrap();
        assert_eq!(hits.partitions().len(), 20);
        assert!(hits.partitions().iter().all(|p| p.values()[1] != "auth"));
        let mut seen = 0;
        let mut token = None;
        loop {
            let page = glue
                .get_partitions()
                .database_name("lake")
                .table_name("events")
                .max_results(70)
                .set_next_token(token)
                .send()
                .await
                .unwrap();
            seen += page.partitions().len();
            token = page.next_token().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        assert_eq!(seen, 301);
        let err = glue
            .get_partitions()
            .database_name("lake")
            .table_name("events")
            .expression("colour = 'red'")
            .send()
            .await
            .unwrap_err();
        assert!(err.as_service_error().unwrap().is_invalid_input_exception());

        let p = glue
            .get_partition()
            .database_name("lake")
            .table_name("events")
            .partition_values("2500")
            .partition_values("web")
            .send()
            .await
            .unwrap();
        let p = p.partition().unwrap();
        assert_eq!(
            p.storage_descriptor().unwrap().location(),
            Some("s3://lake/events/year=2500/service=web/")
        );
        assert_eq!(p.table_name(), Some("events"));

        // UpdatePartition moves a partition; BatchUpdatePartition reports
        // the partitions it could not find.
        let moved = |location: &str| {
            PartitionInput::builder()
                .values("2500")
                .values("web")
                .storage_descriptor(StorageDescriptor::builder().location(location).build())
                .build()
        };
        glue.update_partition()
            .database_name("lake")
            .table_name("events")
            .partition_value_list("2500")
            .partition_value_list("web")
            .partition_input(moved(
                "s3://lake/events/year=2500/service=web/_compacted-1/",
            ))
            .send()
            .await
            .unwrap();
        let out = glue
            .batch_update_partition()
            .database_name("lake")
            .table_name("events")
            .entries(
                aws_sdk_glue::types::BatchUpdatePartitionRequestEntry::builder()
                    .partition_value_list("9999")
                    .partition_value_list("web")
                    .partition_input(moved("s3://lake/x/"))
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(out.errors().len(), 1);
        assert_eq!(out.errors()[0].partition_value_list(), ["9999", "web"]);
        let p = glue
            .get_partition()
            .database_name("lake")
            .table_name("events")
            .partition_values("2500")
            .partition_values("web")
            .send()
            .await
            .unwrap();
        assert_eq!(
            p.partition()
                .unwrap()
                .storage_descriptor()
                .unwrap()
                .location(),
            Some("s3://lake/events/year=2500/service=web/_compacted-1/")
        );

        let out = glue
            .batch_delete_partition()
            .database_name("lake")
            .table_name("events")
            .partitions_to_delete(
                PartitionValueList::builder()
                    .values("2500")
                    .values("web")
                    .build()
                    .unwrap(),
            )
            .partitions_to_delete(
                PartitionValueList::builder()
                    .values("3000")
                    .values("web")
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(out.errors().len(), 1);
        assert_eq!(
            out.errors()[0].error_detail().unwrap().error_code(),
            Some("EntityNotFoundException")
        );
    });
    server.terminate();
    // Partitions survive a restart.
    let server = Server::start(dir.path(), &[]);
    let glue = glue_client(&server.endpoint);
    rt().block_on(async {
        let all = glue
            .get_partitions()
            .database_name("lake")
            .table_name("events")
            .max_results(1000)
            .send()
            .await
            .unwrap();
        assert_eq!(all.partitions().len(), 300);
    });
    server.terminate();
}

#[test]
fn crawl_cli_catalogs_what_the_ingester_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let client = server.client();
    rt().block_on(async {
        create_parquet_stream(&client, "raw", "lake", 300).await;
        let records = (0..300)
            .map(|i| {
                let service = ["web", "api"][i % 2];
                record(format!(
                    "{{\"id\": {i}, \"service\": \"{service}\", \"latency_ms\": {}.5}}",
                    i % 7
                ))
            })
            .collect();
        client
            .put_record_batch()
            .delivery_stream_name("raw")
            .set_records(Some(records))
            .send()
            .await
            .unwrap();
    });
    server.terminate();
    // A hand-made CSV folder beside it, and a corrupt file.
    let csv = dir.path().join("lake/ref/plans");
    std::fs::create_dir_all(&csv).unwrap();
    std::fs::write(csv.join("plans.csv"), "plan,price\nfree,0\npro,20\n").unwrap();
    std::fs::write(csv.join("bad.parquet"), b"PAR1 not really PAR1").unwrap();

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lakehose"))
        .args([
            "crawl",
            "s3://lake/logs/",
            "s3://lake/ref/plans/",
            "--database",
            "Crawled",
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("tables created: 2"), "{stdout}");
    assert!(
        stdout.contains("bad.parquet"),
        "the corrupt file is reported: {stdout}"
    );

    let server = Server::start(dir.path(), &[]);
    let glue = glue_client(&server.endpoint);
    rt().block_on(async {
        let t = glue
            .get_table()
            .database_name("crawled")
            .name("logs")
            .send()
            .await
            .unwrap();
        let t = t.table().unwrap();
        let keys: Vec<&str> = t.partition_keys().iter().map(|c| c.name()).collect();
        assert_eq!(keys, ["service", "dt"]);
        let cols: Vec<(&str, &str)> = t
            .storage_descriptor()
            .unwrap()
            .columns()
            .iter()
            .map(|c| (c.name(), c.r#type().unwrap()))
            .collect();
        assert_eq!(cols, [("id", "bigint"), ("latency_ms", "double")]);
        assert_eq!(t.parameters().unwrap()["classification"], "parquet");
        let parts = glue
            .get_partitions()
            .database_name("crawled")
            .table_name("logs")
            .send()
            .await
            .unwrap();
        assert_eq!(parts.partitions().len(), 2);
        let plans = glue
            .get_table()
            .database_name("crawled")
            .name("plans")
            .send()
            .await
            .unwrap();
        let plans = plans.table().unwrap();
        assert_eq!(plans.parameters().unwrap()["classification"], "csv");
        let cols: Vec<(&str, &str)> = plans
            .storage_descriptor()
            .unwrap()
            .columns()
            .iter()
            .map(|c| (c.name(), c.r#type().unwrap()))
            .collect();
        assert_eq!(cols, [("plan", "string"), ("price", "bigint")]);
    });
    server.terminate();
}

#[test]
fn crawlers_through_the_glue_api() {
    use aws_sdk_glue::types::{CrawlerTargets, S3Target, SchemaChangePolicy, UpdateBehavior};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("lake/clicks");
    for day in ["2026-11-01", "2026-11-02"] {
        std::fs::create_dir_all(data.join(format!("day={day}"))).unwrap();
        std::fs::write(
            data.join(format!("day={day}/part.json")),
            format!("{{\"user\": \"u1\", \"n\": 1, \"day_seen\": \"{day}\"}}\n"),
        )
        .unwrap();
    }
    std::fs::create_dir_all(data.join("tmp")).unwrap();
    let server = Server::start(dir.path(), &[]);
    let glue = glue_client(&server.endpoint);
    rt().block_on(async {
        let targets = CrawlerTargets::builder()
            .s3_targets(
                S3Target::builder()
                    .path("s3://lake/clicks/")
                    .exclusions("tmp/**")
                    .build(),
            )
            .build();
        glue.create_crawler()
            .name("clicks")
            .role("arn:aws:iam::000000000000:role/crawler")
            .database_name("web")
            .targets(targets.clone())
            .schedule("cron(15 12 * * ? *)")
            .schema_change_policy(
                SchemaChangePolicy::builder()
                    .update_behavior(UpdateBehavior::UpdateInDatabase)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        let err = glue
            .create_crawler()
            .name("clicks")
            .role("r")
            .database_name("web")
            .targets(targets.clone())
            .send()
            .await
            .unwrap_err();
        assert!(
            err.as_service_error()
                .unwrap()
                .is_already_exists_exception()
        );
        let err = glue
            .create_crawler()
            .name("bad")
            .role("r")
            .database_name("web")
            .targets(
                CrawlerTargets::builder()
                    .s3_targets(S3Target::builder().path("http://nope").build())
                    .build(),
            )
            .send()
            .await
            .unwrap_err();
        assert!(
            err.as_service_error().unwrap().is_invalid_input_exception(),
            "{err:?}"
        );

        let c = glue.get_crawler().name("clicks").send().await.unwrap();
        let c = c.crawler().unwrap();
        assert_eq!(c.state().map(|s| s.as_str()), Some("READY"));
        assert_eq!(
            c.schedule().unwrap().schedule_expression(),
            Some("cron(15 12 * * ? *)")
        );
        let err = glue.stop_crawler().name("clicks").send().await.unwrap_err();
        assert!(
            err.as_service_error()
                .unwrap()
                .is_crawler_not_running_exception()
        );

        glue.start_crawler().name("clicks").send().await.unwrap();
        let mut status = None;
        for _ in 0..200 {
            let c = glue.get_crawler().name("clicks").send().await.unwrap();
            let c = c.crawler().unwrap().clone();
            if c.state().map(|s| s.as_str()) == Some("READY") && c.last_crawl().is_some() {
                status = c.last_crawl().and_then(|l| l.status().cloned());
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(
            status.map(|s| s.as_str().to_string()),
            Some("SUCCEEDED".to_string())
        );
        let t = glue
            .get_table()
            .database_name("web")
            .name("clicks")
            .send()
            .await
            .unwrap();
        let keys: Vec<&str> = t
            .table()
            .unwrap()
            .partition_keys()
            .iter()
            .map(|k| k.name())
            .collect();
        assert_eq!(keys, ["day"]);
        let parts = glue
            .get_partitions()
            .database_name("web")
            .table_name("clicks")
            .send()
            .await
            .unwrap();
        assert_eq!(parts.partitions().len(), 2);

        let m = glue
            .get_crawler_metrics()
            .crawler_name_list("clicks")
            .send()
            .await
            .unwrap();
        let m = &m.crawler_metrics_list()[0];
        assert_eq!(m.crawler_name(), Some("clicks"));
        assert_eq!(m.tables_created(), 1);

        glue.update_crawler()
            .name("clicks")
            .table_prefix("raw_")
            .send()
            .await
            .unwrap();
        let all = glue.get_crawlers().send().await.unwrap();
        assert_eq!(all.crawlers().len(), 1);
        assert_eq!(all.crawlers()[0].table_prefix(), Some("raw_"));
        assert_eq!(all.crawlers()[0].version(), 2);

        glue.delete_crawler().name("clicks").send().await.unwrap();
        let err = glue.get_crawler().name("clicks").send().await.unwrap_err();
        assert!(
            err.as_service_error()
                .unwrap()
                .is_entity_not_found_exception()
        );
    });
    server.terminate();
}

#[test]
fn a_stream_converts_with_a_catalog_tables_schema() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let glue = glue_client(&server.endpoint);
    let client = server.client();
    rt().block_on(async {
        glue.create_database()
            .database_input(DatabaseInput::builder().name("shop").build().unwrap())
            .send()
            .await
            .unwrap();
        // The user's table: three typed columns, partitioned by service.
        let mut t = table_input(
            "orders",
            &[
                ("id", "bigint"),
                ("msg", "string"),
                ("amount", "decimal(10,2)"),
            ],
        );
        t.partition_keys = Some(vec![
            Column::builder()
                .name("service")
                .r#type("string")
                .build()
                .unwrap(),
        ]);
        glue.create_table()
            .database_name("shop")
            .table_input(t)
            .send()
            .await
            .unwrap();
        let dest = lakehose::commands::demo::parquet_destination(
            "shoplake",
            "orders/service=!{partitionKeyFromQuery:service}/",
            "errors/!{firehose:error-output-type}/",
            "{service: .service}",
            300,
            Some(("shop", "orders")),
        )
        .unwrap();
        client
            .create_delivery_stream()
            .delivery_stream_name("orders")
            .extended_s3_destination_configuration(dest)
            .send()
            .await
            .unwrap();
        let records = vec![
            record(
                r#"{"id": 1, "msg": "ok", "amount": 9.5, "service": "web", "extra": "dropped"}"#,
            ),
            record(r#"{"id": 2, "service": "web"}"#),
            record(r#"{"id": 3, "msg": "bad", "amount": "not a number", "service": "web"}"#),
        ];
        client
            .put_record_batch()
            .delivery_stream_name("orders")
            .set_records(Some(records))
            .send()
            .await
            .unwrap();
    });
    server.terminate();
    let files = files(&dir.path().join("shoplake/orders"), ".parquet");
    assert_eq!(files.len(), 1);
    let batch = &read_parquet(&files[0])[0];
    let schema = batch.schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(
        names,
        ["id", "msg", "amount"],
        "exactly the table's columns"
    );
    assert_eq!(batch.num_rows(), 2);
    let docs = error_docs(&dir.path().join("shoplake/errors"));
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0]["errorCode"], "DataFormatConversion.MalformedData");
    assert_eq!(docs[0]["errorOutputType"], "format-conversion-failed");
    // The partition was registered in the user's table, which kept its schema.
    let server = Server::start(dir.path(), &[]);
    let glue = glue_client(&server.endpoint);
    rt().block_on(async {
        let parts = glue
            .get_partitions()
            .database_name("shop")
            .table_name("orders")
            .send()
            .await
            .unwrap();
        assert_eq!(parts.partitions().len(), 1);
        assert_eq!(parts.partitions()[0].values(), ["web"]);
        let t = glue
            .get_table()
            .database_name("shop")
            .name("orders")
            .send()
            .await
            .unwrap();
        assert_eq!(
            t.table()
                .unwrap()
                .storage_descriptor()
                .unwrap()
                .columns()
                .len(),
            3
        );
    });
    server.terminate();
}

/// Writes a small Parquet file.
fn parquet_bytes() -> Vec<u8> {
    use arrow::array::{Float64Array, Int64Array, RecordBatch, StringArray};
    use std::sync::Arc;
    let batch = RecordBatch::try_from_iter([
        (
            "station",
            Arc::new(StringArray::from(vec!["s1", "s2"])) as _,
        ),
        ("reading", Arc::new(Float64Array::from(vec![1.5, 2.5])) as _),
        ("seq", Arc::new(Int64Array::from(vec![1, 2])) as _),
    ])
    .unwrap();
    let mut buf = Vec::new();
    let mut w = parquet::arrow::ArrowWriter::try_new(&mut buf, batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    buf
}

#[test]
fn a_glue_crawler_catalogs_hand_made_folders() {
    use aws_sdk_glue::types::{CrawlerTargets, S3Target};
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let put = |rel: &str, data: &[u8]| {
        let p = dir.path().join("hand").join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    };
    let gz = |data: &[u8]| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    };
    // Nested, gzip'd JSON with mixed schemas in Hive partitions.
    put(
        "orders/region=eu/day=2026-11-01/o.json.gz",
        &gz(b"{\"id\": 1, \"total\": 10, \"customer\": {\"name\": \"ann\", \"tier\": \"gold\"}}\n"),
    );
    put(
        "orders/region=us/day=2026-11-01/o.json.gz",
        &gz(b"{\"id\": 2, \"total\": 12.5, \"items\": [{\"sku\": \"a\", \"qty\": 2}]}\n"),
    );
    // CSV in unnamed (date-like) partitions.
    put(
        "visits/2026/11/v.csv",
        b"page,visits,bounce\n/home,120,0.4\n/cart,30,0.1\n",
    );
    put(
        "visits/2026/12/v.csv",
        b"page,visits,bounce\n/home,99,0.3\n/help,5,0.9\n",
    );
    // Parquet, unpartitioned; a corrupt and an empty file beside it.
    put("weather/w.parquet", &parquet_bytes());
    put(
        "weather/corrupt.parquet",
        b"PAR1 definitely not parquet PAR1",
    );
    put("weather/empty.json", b"");

    let server = Server::start(dir.path(), &[]);
    let glue = glue_client(&server.endpoint);
    rt().block_on(async {
        let targets = CrawlerTargets::builder()
            .s3_targets(S3Target::builder().path("s3://hand/orders/").build())
            .s3_targets(S3Target::builder().path("s3://hand/visits/").build())
            .s3_targets(S3Target::builder().path("s3://hand/weather/").build())
            .build();
        glue.create_crawler()
            .name("hand")
            .role("r")
            .database_name("handmade")
            .targets(targets)
            .send()
            .await
            .unwrap();
        glue.start_crawler().name("hand").send().await.unwrap();
        let mut last = None;
        for _ in 0..200 {
            let c = glue
                .get_crawler()
                .name("hand")
                .send()
                .await
                .unwrap()
                .crawler()
                .unwrap()
                .clone();
            if c.state().map(|s| s.as_str()) == Some("READY") && c.last_crawl().is_some() {
                last = c.last_crawl().cloned();
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let last = last.expect("the crawl finished");
        assert_eq!(last.status().map(|s| s.as_str()), Some("SUCCEEDED"));
        assert!(
            last.message_prefix().unwrap().contains("2 skipped"),
            "{last:?}"
        );

        let columns = |t: &aws_sdk_glue::types::Table| -> Vec<(String, String)> {
            t.storage_descriptor()
                .unwrap()
                .columns()
                .iter()
                .map(|c| (c.name().to_string(), c.r#type().unwrap().to_string()))
                .collect()
        };
        let keys = |t: &aws_sdk_glue::types::Table| -> Vec<String> {
            t.partition_keys()
                .iter()
                .map(|k| k.name().to_string())
                .collect()
        };
        let orders = glue
            .get_table()
            .database_name("handmade")
            .name("orders")
            .send()
            .await
            .unwrap();
        let orders = orders.table().unwrap();
        assert_eq!(keys(orders), ["region", "day"]);
        assert_eq!(
            columns(orders),
            [
                ("id".to_string(), "bigint".to_string()),
                ("total".into(), "double".into()),
                ("customer".into(), "struct<name:string,tier:string>".into()),
                (
                    "items".into(),
                    "array<struct<sku:string,qty:bigint>>".into()
                ),
            ]
        );
        assert_eq!(orders.parameters().unwrap()["compressionType"], "gzip");
        let parts = glue
            .get_partitions()
            .database_name("handmade")
            .table_name("orders")
            .expression("region = 'us'")
            .send()
            .await
            .unwrap();
        assert_eq!(parts.partitions().len(), 1);

        let visits = glue
            .get_table()
            .database_name("handmade")
            .name("visits")
            .send()
            .await
            .unwrap();
        let visits = visits.table().unwrap();
        assert_eq!(keys(visits), ["partition_0", "partition_1"]);
        assert_eq!(
            columns(visits),
            [
                ("page".to_string(), "string".to_string()),
                ("visits".into(), "bigint".into()),
                ("bounce".into(), "double".into())
            ]
        );
        assert_eq!(visits.parameters().unwrap()["skip.header.line.count"], "1");

        let weather = glue
            .get_table()
            .database_name("handmade")
            .name("weather")
            .send()
            .await
            .unwrap();
        let weather = weather.table().unwrap();
        assert!(keys(weather).is_empty());
        assert_eq!(
            columns(weather),
            [
                ("station".to_string(), "string".to_string()),
                ("reading".into(), "double".into()),
                ("seq".into(), "bigint".into())
            ]
        );
        assert_eq!(weather.parameters().unwrap()["classification"], "parquet");

        let m = glue.get_crawler_metrics().send().await.unwrap();
        assert_eq!(m.crawler_metrics_list()[0].tables_created(), 3);
    });
    server.terminate();
}

/// Runs a crawler through the Glue API and waits for its run to end.
async fn crawl_once(glue: &aws_sdk_glue::Client, name: &str) -> aws_sdk_glue::types::LastCrawlInfo {
    glue.start_crawler().name(name).send().await.unwrap();
    for _ in 0..400 {
        let c = glue
            .get_crawler()
            .name(name)
            .send()
            .await
            .unwrap()
            .crawler()
            .unwrap()
            .clone();
        if c.state().map(|s| s.as_str()) == Some("READY")
            && let Some(last) = c.last_crawl()
        {
            return last.clone();
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("crawler {name} did not finish");
}

/// Every `Configuration` option Glue documents for S3 crawlers, through
/// aws-sdk-glue: grouping by compatible schemas, tables at a folder level,
/// merging only new columns, partitions inheriting the table's definition,
/// the table threshold and partition indexes (with the partition index API).
#[test]
fn crawler_configuration_options() {
    use aws_sdk_glue::types::{CrawlerTargets, PartitionIndex, S3Target};
    let dir = tempfile::tempdir().unwrap();
    let put = |rel: &str, data: &str| {
        let p = dir.path().join("conf").join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    };
    // Two folders of one format whose columns have little in common; the
    // second's two partitions have nothing in common either.
    put("data/a/x=1/f.json", "{\"id\": 1, \"name\": \"a\"}\n");
    put("data/a/x=2/f.json", "{\"q\": 1, \"r\": 2, \"s\": 3}\n");
    put("data/b/x=1/f.json", "{\"other\": true, \"z\": 1}\n");
    put("inh/x=1/f.json", "{\"id\": 1, \"v\": 1}\n");

    let server = Server::start(dir.path(), &[]);
    let glue = glue_client(&server.endpoint);
    rt().block_on(async {
        let create = |name: &str, path: &str, configuration: &str| {
            glue.create_crawler()
                .name(name)
                .role("r")
                .database_name(name)
                .targets(
                    CrawlerTargets::builder()
                        .s3_targets(S3Target::builder().path(path).build())
                        .build(),
                )
                .configuration(configuration)
                .send()
        };
        let tables = |db: &'static str| {
            let glue = glue.clone();
            async move {
                let mut names: Vec<String> = glue
                    .get_tables()
                    .database_name(db)
                    .send()
                    .await
                    .unwrap()
                    .table_list()
                    .iter()
                    .map(|t| t.name().to_string())
                    .collect();
                names.sort();
                names
            }
        };
        let keys = |t: &aws_sdk_glue::types::Table| -> Vec<String> {
            t.partition_keys().iter().map(|k| k.name().to_string()).collect()
        };
        let columns = |sd: Option<&aws_sdk_glue::types::StorageDescriptor>| -> Vec<(String, String)> {
            sd.unwrap()
                .columns()
                .iter()
                .map(|c| (c.name().to_string(), c.r#type().unwrap().to_string()))
                .collect()
        };

        // Without options: a folder per schema family.
        create("plain", "s3://conf/data/", r#"{"Version": 1.0}"#).await.unwrap();
        assert_eq!(crawl_once(&glue, "plain").await.status().unwrap().as_str(), "SUCCEEDED");
        assert_eq!(tables("plain").await, ["b", "x_1", "x_2"]);

        // CombineCompatibleSchemas: one table for the whole path, with a
        // partition index over its keys (CreatePartitionIndex's default).
        create(
            "combined",
            "s3://conf/data/",
            r#"{"Version": 1.0, "Grouping": {"TableGroupingPolicy": "CombineCompatibleSchemas"}}"#,
        )
        .await
        .unwrap();
        assert_eq!(crawl_once(&glue, "combined").await.status().unwrap().as_str(), "SUCCEEDED");
        assert_eq!(tables("combined").await, ["data"]);
        let data = glue.get_table().database_name("combined").name("data").send().await.unwrap();
        let data = data.table().unwrap();
        assert_eq!(keys(data), ["partition_0", "x"]);
        let names: Vec<String> = columns(data.storage_descriptor()).into_iter().map(|(n, _)| n).collect();
        for column in ["id", "name", "q", "other", "z"] {
            assert!(names.contains(&column.to_string()), "{names:?}");
        }
        let indexes = glue
            .get_partition_indexes()
            .database_name("combined")
            .table_name("data")
            .send()
            .await
            .unwrap();
        let list = indexes.partition_index_descriptor_list();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].index_name(), "crawler_partition_index");
        let index_keys: Vec<&str> = list[0].keys().iter().map(|k| k.name()).collect();
        assert_eq!(index_keys, ["partition_0", "x"]);
        assert_eq!(list[0].index_status().as_str(), "ACTIVE");

        // The partition index API.
        glue.create_partition_index()
            .database_name("combined")
            .table_name("data")
            .partition_index(PartitionIndex::builder().index_name("by_x").keys("x").build().unwrap())
            .send()
            .await
            .unwrap();
        let err = glue
            .create_partition_index()
            .database_name("combined")
            .table_name("data")
            .partition_index(PartitionIndex::builder().index_name("bad").keys("nope").build().unwrap())
            .send()
            .await
            .unwrap_err();
        assert!(format!("{err:?}").contains("InvalidInputException"), "{err:?}");
        let err = glue
            .create_partition_index()
            .database_name("combined")
            .table_name("data")
            .partition_index(PartitionIndex::builder().index_name("by_x").keys("x").build().unwrap())
            .send()
            .await
            .unwrap_err();
        assert!(format!("{err:?}").contains("AlreadyExistsException"), "{err:?}");
        let count = || async {
            glue.get_partition_indexes()
                .database_name("combined")
                .table_name("data")
                .send()
                .await
                .unwrap()
                .partition_index_descriptor_list()
                .len()
        };
        assert_eq!(count().await, 2);
        // An UpdateTable (whose TableInput has no indexes) keeps them.
        glue.update_table()
            .database_name("combined")
            .table_input(
                aws_sdk_glue::types::TableInput::builder()
                    .name("data")
                    .set_partition_keys(Some(data.partition_keys().to_vec()))
                    .set_storage_descriptor(data.storage_descriptor().cloned())
                    .description("kept")
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(count().await, 2);
        glue.delete_partition_index()
            .database_name("combined")
            .table_name("data")
            .index_name("by_x")
            .send()
            .await
            .unwrap();
        assert_eq!(count().await, 1);
        let err = glue
            .delete_partition_index()
            .database_name("combined")
            .table_name("data")
            .index_name("by_x")
            .send()
            .await
            .unwrap_err();
        assert!(format!("{err:?}").contains("EntityNotFoundException"), "{err:?}");

        // TableLevelConfiguration: a table for each folder at level 3
        // (s3://conf is 1, data/ is 2), however different its partitions;
        // no index when CreatePartitionIndex is false.
        create(
            "levels",
            "s3://conf/data/",
            r#"{"Version": 1.0, "Grouping": {"TableLevelConfiguration": 3}, "CreatePartitionIndex": false}"#,
        )
        .await
        .unwrap();
        assert_eq!(crawl_once(&glue, "levels").await.status().unwrap().as_str(), "SUCCEEDED");
        assert_eq!(tables("levels").await, ["a", "b"]);
        let a = glue.get_table().database_name("levels").name("a").send().await.unwrap();
        assert_eq!(keys(a.table().unwrap()), ["x"]);
        let a_parts = glue.get_partitions().database_name("levels").table_name("a").send().await.unwrap();
        assert_eq!(a_parts.partitions().len(), 2);
        let none = glue
            .get_partition_indexes()
            .database_name("levels")
            .table_name("a")
            .send()
            .await
            .unwrap();
        assert!(none.partition_index_descriptor_list().is_empty());
        // A level above the include path is refused.
        let err = create("above", "s3://conf/data/", r#"{"Version": 1.0, "Grouping": {"TableLevelConfiguration": 1}}"#)
            .await
            .unwrap_err();
        assert!(format!("{err:?}").contains("above the include path"), "{err:?}");

        // TableThreshold: a crawl that would make more tables fails and
        // changes nothing.
        create(
            "few",
            "s3://conf/data/",
            r#"{"Version": 1.0, "CrawlerOutput": {"Tables": {"TableThreshold": 2}}}"#,
        )
        .await
        .unwrap();
        let last = crawl_once(&glue, "few").await;
        assert_eq!(last.status().unwrap().as_str(), "FAILED");
        assert!(last.error_message().unwrap_or_default().contains("TableThreshold"), "{last:?}");
        let few = glue.get_tables().database_name("few").send().await;
        assert!(few.map(|o| o.table_list().is_empty()).unwrap_or(true));

        // MergeNewColumns and InheritFromTable: a recrawl adds the new
        // column without retyping `id` (now a double in a new file), and
        // every partition, old and new, takes the table's definition.
        create(
            "inherit",
            "s3://conf/inh/",
            r#"{"Version": 1.0, "CrawlerOutput": {"Tables": {"AddOrUpdateBehavior": "MergeNewColumns"}, "Partitions": {"AddOrUpdateBehavior": "InheritFromTable"}}}"#,
        )
        .await
        .unwrap();
        assert_eq!(crawl_once(&glue, "inherit").await.status().unwrap().as_str(), "SUCCEEDED");
        put("inh/x=2/f.json", "{\"id\": 1.5, \"w\": \"new\"}\n");
        assert_eq!(crawl_once(&glue, "inherit").await.status().unwrap().as_str(), "SUCCEEDED");
        let inh = glue.get_table().database_name("inherit").name("inh").send().await.unwrap();
        let table_columns = columns(inh.table().unwrap().storage_descriptor());
        assert_eq!(
            table_columns,
            [
                ("id".to_string(), "bigint".to_string()),
                ("v".to_string(), "bigint".to_string()),
                ("w".to_string(), "string".to_string())
            ]
        );
        let parts = glue.get_partitions().database_name("inherit").table_name("inh").send().await.unwrap();
        assert_eq!(parts.partitions().len(), 2);
        for p in parts.partitions() {
            assert_eq!(columns(p.storage_descriptor()), table_columns, "{:?}", p.values());
        }
    });
    server.terminate();
}
