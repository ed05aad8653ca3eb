//! Queries reach only the warehouse: statements that would write files
//! anywhere the process may (COPY ... TO, nested in EXPLAIN ANALYZE), or
//! read outside the buckets or lakehose's own state (`_lakehose/`) through
//! a crafted location, fail through the real Athena and Postgres clients
//! with a message naming what was refused; nothing is created; the server
//! stays healthy and answers the next query.

use std::path::{Path, PathBuf};

use aws_sdk_athena::types::QueryExecutionState;
use aws_sdk_glue::types::{Column, StorageDescriptor, TableInput};

use crate::athena::{athena_client, run, select};
use crate::util::{Server, glue_client, rt};

/// A data folder and, beside it, the folder the hostile statements aim at.
struct Folders {
    _dir: tempfile::TempDir,
    data: PathBuf,
    outside: PathBuf,
}

impl Folders {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("secret.txt"), "do not read\n").unwrap();
        Self {
            _dir: dir,
            data,
            outside,
        }
    }

    /// The statements, each with what its refusal must name. `{out}` is
    /// the folder beside the data folder, `{data}` the data folder.
    fn hostile(&self) -> Vec<(String, &'static str)> {
        let out = self.outside.display().to_string();
        let data = self.data.canonicalize().unwrap().display().to_string();
        [
            (
                "EXPLAIN ANALYZE COPY (SELECT 'x' AS k) TO '{out}/pwned.csv'",
                "COPY ... TO (it writes files) is not allowed inside EXPLAIN ANALYZE",
            ),
            (
                "COPY (SELECT 'x' AS k) TO 'file://{out}/pwned2.csv'",
                "COPY ... TO (it writes files) is not allowed",
            ),
            (
                "EXPLAIN ANALYZE COPY (SELECT 'x' AS k) TO '{out}/folder/' STORED AS CSV",
                "COPY ... TO (it writes files) is not allowed inside EXPLAIN ANALYZE",
            ),
            (
                "EXPLAIN COPY (SELECT 'x' AS k) TO '{data}/_lakehose/catalog/pwned.csv'",
                "COPY ... TO (it writes files) is not allowed inside EXPLAIN",
            ),
            (
                "EXPLAIN ANALYZE SELECT * FROM (SELECT 1 AS a) WHERE a IN (SELECT 1 INTO pwned)",
                "SELECT ... INTO (it creates a table) is not allowed inside EXPLAIN ANALYZE",
            ),
            (
                "CREATE EXTERNAL TABLE etc (line string) STORED AS TEXTFILE LOCATION 'file:///etc/'",
                "must start with s3://",
            ),
            (
                "CREATE EXTERNAL TABLE beside (line string) STORED AS TEXTFILE LOCATION '{out}/'",
                "must start with s3://",
            ),
            (
                "CREATE EXTERNAL TABLE sys (line string) STORED AS TEXTFILE LOCATION 's3://_lakehose/catalog/'",
                "bucket name \"_lakehose\"",
            ),
            (
                "CREATE EXTERNAL TABLE up (line string) STORED AS TEXTFILE LOCATION 's3://lake/%2e%2e/_lakehose/'",
                "percent-encoded '.' or '..' segment",
            ),
            (
                "CREATE TABLE c WITH (external_location = 'file://{out}/c/') AS SELECT 1 AS a",
                "must start with s3://",
            ),
            (
                "UNLOAD (SELECT 1 AS a) TO '{out}/unloaded/' WITH (format = 'JSON')",
                "must start with s3://",
            ),
            (
                "SET datafusion.runtime.temp_directory = '{out}'",
                "SET is not allowed",
            ),
        ]
        .into_iter()
        .map(|(sql, why)| (sql.replace("{out}", &out).replace("{data}", &data), why))
        .collect()
    }

    /// Only the planted file is beside the data folder; nothing was
    /// written under `_lakehose/` by a query.
    fn assert_untouched(&self) {
        let beside: Vec<_> = std::fs::read_dir(&self.outside)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(beside, ["secret.txt"], "written outside the data folder");
        let parent: Vec<_> = std::fs::read_dir(self.data.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        let mut parent = parent;
        parent.sort();
        assert_eq!(parent, ["data", "outside"]);
        assert!(!self.data.join("_lakehose/catalog/pwned.csv").exists());
        assert!(!self.data.join("pwned").exists());
        assert!(!Path::new("/etc/pwned.csv").exists());
    }
}

async fn healthy(server: &Server) {
    let health = reqwest::get(format!("{}/health", server.endpoint))
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);
}

#[test]
fn athena_refuses_statements_that_leave_the_warehouse() {
    let folders = Folders::new();
    let server = Server::start(&folders.data, &[]);
    rt().block_on(async {
        let athena = athena_client(&server.endpoint);
        for (sql, why) in folders.hostile() {
            let (_, state, reason) = run(&athena, &sql, "default").await;
            assert_eq!(state, QueryExecutionState::Failed, "{sql}: {reason:?}");
            let reason = reason.unwrap_or_default();
            assert!(
                reason.contains(why),
                "{sql}\nStateChangeReason {reason:?} should contain {why:?}"
            );
        }

        // Catalog entries written through Glue: a view whose body writes,
        // and tables whose location is outside the buckets.
        let glue = glue_client(&server.endpoint);
        let out = folders.outside.display().to_string();
        glue.create_table()
            .database_name("default")
            .table_input(
                TableInput::builder()
                    .name("copier")
                    .table_type("VIRTUAL_VIEW")
                    .view_original_text(format!(
                        "EXPLAIN ANALYZE COPY (SELECT 'x' AS k) TO '{out}/view.csv'"
                    ))
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        let (_, state, reason) = run(&athena, "SELECT * FROM copier", "default").await;
        assert_eq!(state, QueryExecutionState::Failed);
        let reason = reason.unwrap_or_default();
        assert!(
            reason.contains("COPY ... TO (it writes files) is not allowed inside EXPLAIN ANALYZE"),
            "{reason}"
        );
        for location in ["file:///etc/", "s3://_lakehose/catalog/", &format!("{out}/")] {
            let err = glue
                .create_table()
                .database_name("default")
                .table_input(
                    TableInput::builder()
                        .name("crafted")
                        .storage_descriptor(
                            StorageDescriptor::builder()
                                .location(location)
                                .columns(Column::builder().name("line").r#type("string").build().unwrap())
                                .build(),
                        )
                        .build()
                        .unwrap(),
                )
                .send()
                .await
                .expect_err(location);
            let text = format!("{err:?}");
            assert!(text.contains("invalid location"), "{location}: {text}");
        }

        folders.assert_untouched();
        healthy(&server).await;
        assert_eq!(
            select(&athena, "SELECT 40 + 2 AS answer", "default").await,
            [[Some("42".to_string())]]
        );
        // lakehose's own writes still land in its buckets.
        let (_, state, reason) = run(
            &athena,
            "CREATE TABLE made WITH (format = 'PARQUET', external_location = 's3://lake/made/') AS SELECT 7 AS a",
            "default",
        )
        .await;
        assert_eq!(state, QueryExecutionState::Succeeded, "{reason:?}");
        assert_eq!(
            select(&athena, "SELECT a FROM made", "default").await,
            [[Some("7".to_string())]]
        );
        folders.assert_untouched();
    });
}

#[test]
fn postgres_refuses_statements_that_leave_the_warehouse() {
    let folders = Folders::new();
    let server = Server::start(&folders.data, &[]);
    rt().block_on(async {
        let (host, port) = server.pg_addr.rsplit_once(':').unwrap();
        let (pg, connection) = tokio_postgres::connect(
            &format!("host={host} port={port} user=analyst dbname=default"),
            tokio_postgres::NoTls,
        )
        .await
        .unwrap();
        tokio::spawn(connection);
        let out = folders.outside.display().to_string();
        let mut hostile = folders.hostile();
        // SET is a session variable of the wire server (psql and drivers
        // send them), never a setting of the engine.
        hostile.retain(|(sql, _)| !sql.starts_with("SET "));
        // Reading pg_catalog routes to the Postgres dialect: checked too.
        hostile.push((
            format!("COPY (SELECT relname FROM pg_catalog.pg_class) TO '{out}/pg.csv'"),
            "not allowed",
        ));
        for (sql, why) in &hostile {
            // The simple protocol, then the extended one.
            let simple = pg.simple_query(sql).await.expect_err(sql);
            let message = simple
                .as_db_error()
                .map(|e| e.message().to_string())
                .unwrap_or_else(|| simple.to_string());
            assert!(
                message.contains(why),
                "{sql}\nsimple: {message:?} should contain {why:?}"
            );
            let extended = pg.query(sql.as_str(), &[]).await.expect_err(sql);
            let message = extended
                .as_db_error()
                .map(|e| e.message().to_string())
                .unwrap_or_else(|| extended.to_string());
            assert!(
                message.contains(why),
                "{sql}\nextended: {message:?} should contain {why:?}"
            );
        }
        folders.assert_untouched();
        healthy(&server).await;
        let rows = pg.query("SELECT 40 + 2 AS answer", &[]).await.unwrap();
        assert_eq!(rows[0].get::<_, i64>(0), 42);
    });
}
