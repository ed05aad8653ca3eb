//! Table grants enforced while statements are planned: a caller without
//! SELECT on a table fails any statement that reads it (directly, in a
//! join, through a view, as the source of CTAS, INSERT or UNLOAD), cannot
//! see it listed (SHOW TABLES, `pg_catalog`, `information_schema`), and
//! needs the grant for each table, database or location it creates,
//! changes or writes.

use std::collections::HashSet;
use std::sync::Arc;

use lakehose_catalog::{CatalogRef, EmbeddedCatalog, Storage};
use lakehose_query::contract::{Privilege, Securable, TableAccess};
use lakehose_query::{Dialect, EngineConfig, ErrorCode, QueryEngine, QueryOutput, QueryRequest};

/// Grants as a set of `(privilege, "db.table" | "db" | "s3://...")`.
#[derive(Debug, Default)]
struct Grants(HashSet<(Privilege, String)>);

impl Grants {
    fn with(mut self, privilege: Privilege, on: &str) -> Self {
        self.0.insert((privilege, on.to_string()));
        self
    }
}

impl TableAccess for Grants {
    fn principal(&self) -> &str {
        "analyst"
    }

    fn allows(&self, privilege: Privilege, on: Securable<'_>) -> bool {
        let key = match on {
            Securable::Table { database, table } => format!("{database}.{table}"),
            Securable::Database(d) => d.to_string(),
            Securable::Location(l) => l.to_string(),
        };
        self.0.contains(&(privilege, key.clone()))
            || self
                .0
                .contains(&(privilege, format!("{}.*", key.split('.').next().unwrap())))
    }
}

struct Lake {
    _dir: tempfile::TempDir,
    engine: QueryEngine,
}

impl Lake {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::local(dir.path()).unwrap();
        let catalog: CatalogRef = Arc::new(EmbeddedCatalog::new(storage.clone()));
        let engine = QueryEngine::new(catalog, storage, EngineConfig::default()).unwrap();
        let lake = Self { _dir: dir, engine };
        for sql in [
            "CREATE TABLE open_t AS SELECT * FROM (VALUES (1, 'a'), (2, 'b')) AS t(id, name)",
            "CREATE TABLE secret_t AS SELECT * FROM (VALUES (1, 'x')) AS t(id, salary)",
            "CREATE VIEW open_v AS SELECT id FROM open_t",
            "CREATE VIEW secret_v AS SELECT id FROM secret_t",
        ] {
            lake.engine
                .execute(QueryRequest::new(sql, Some("default")))
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
        lake
    }

    async fn run_as(
        &self,
        grants: &Arc<dyn TableAccess>,
        sql: &str,
        dialect: Dialect,
    ) -> Result<QueryOutput, lakehose_query::QueryError> {
        let mut request = QueryRequest::new(sql, Some("default")).run_as(Some(Arc::clone(grants)));
        request.dialect = dialect;
        self.engine.execute(request).await
    }

    async fn rows(
        &self,
        grants: &Arc<dyn TableAccess>,
        sql: &str,
        dialect: Dialect,
    ) -> Vec<String> {
        let out = self
            .run_as(grants, sql, dialect)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        crate::engine::text_rows(&out)
    }

    async fn denied(&self, grants: &Arc<dyn TableAccess>, sql: &str, needs: &str) {
        match self.run_as(grants, sql, Dialect::Athena).await {
            Ok(_) => panic!("{sql} should be denied"),
            Err(e) => {
                assert_eq!(e.code, ErrorCode::PermissionDenied, "{sql}: {e}");
                assert_eq!(e.code.sqlstate(), "42501");
                assert!(
                    e.message.contains("analyst") && e.message.contains(needs),
                    "{sql}: {e}"
                );
            }
        }
    }
}

fn reader() -> Arc<dyn TableAccess> {
    Arc::new(
        Grants::default()
            .with(Privilege::Select, "default.open_t")
            .with(Privilege::Select, "default.open_v")
            .with(Privilege::Select, "default.secret_v"),
    )
}

#[tokio::test]
async fn reads_need_select_on_every_table_they_touch() {
    let lake = Lake::new().await;
    let g = reader();
    assert_eq!(
        lake.rows(
            &g,
            "SELECT id, name FROM open_t ORDER BY id",
            Dialect::Athena
        )
        .await,
        ["1|a", "2|b"]
    );
    assert_eq!(
        lake.rows(&g, "SELECT count(*) FROM open_v", Dialect::Athena)
            .await,
        ["2"]
    );
    let secret = "SELECT permission on awsdatacatalog.default.secret_t";
    lake.denied(&g, "SELECT * FROM secret_t", secret).await;
    lake.denied(&g, "select * from DEFAULT.Secret_T", secret)
        .await;
    lake.denied(
        &g,
        "SELECT o.id FROM open_t o JOIN secret_t s ON o.id = s.id",
        secret,
    )
    .await;
    lake.denied(
        &g,
        "SELECT id FROM open_t WHERE id IN (SELECT id FROM secret_t)",
        secret,
    )
    .await;
    lake.denied(
        &g,
        "WITH s AS (SELECT * FROM secret_t) SELECT count(*) FROM s",
        secret,
    )
    .await;
    lake.denied(&g, "EXPLAIN SELECT * FROM secret_t", secret)
        .await;
    // A view grants no more than its tables: SELECT on secret_v is not
    // enough without SELECT on secret_t.
    lake.denied(&g, "SELECT * FROM secret_v", secret).await;
    // Describing a table is reading it.
    lake.denied(&g, "DESCRIBE secret_t", secret).await;
    lake.denied(&g, "SHOW COLUMNS IN secret_t", secret).await;
    lake.denied(&g, "SHOW CREATE TABLE secret_t", secret).await;
    // A table that does not exist is still not found, not denied.
    let missing = lake
        .run_as(&g, "SELECT * FROM nowhere", Dialect::Athena)
        .await
        .unwrap_err();
    assert_eq!(missing.code, ErrorCode::TableNotFound, "{missing}");
}

#[tokio::test]
async fn listings_show_only_readable_tables() {
    let lake = Lake::new().await;
    let g = reader();
    assert_eq!(
        lake.rows(&g, "SHOW TABLES", Dialect::Athena).await,
        ["open_t", "open_v", "secret_v"]
    );
    assert_eq!(
        lake.rows(
            &g,
            "SELECT c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'default' ORDER BY 1",
            Dialect::Postgres,
        )
        .await,
        ["open_t", "open_v", "secret_v"]
    );
    assert_eq!(
        lake.rows(
            &g,
            "SELECT DISTINCT c.relname FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'default' ORDER BY 1",
            Dialect::Postgres,
        )
        .await,
        ["open_t", "open_v", "secret_v"]
    );
    assert_eq!(
        lake.rows(
            &g,
            "SELECT tablename FROM pg_catalog.pg_tables WHERE schemaname = 'default' ORDER BY 1",
            Dialect::Postgres,
        )
        .await,
        ["open_t", "open_v", "secret_v"]
    );
    assert_eq!(
        lake.rows(
            &g,
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'default' ORDER BY 1",
            Dialect::Postgres,
        )
        .await,
        ["open_t", "open_v", "secret_v"]
    );
    assert_eq!(
        lake.rows(
            &g,
            "SELECT count(*) FROM information_schema.columns WHERE table_name = 'secret_t'",
            Dialect::Postgres,
        )
        .await,
        ["0"]
    );
    // With every grant, everything is listed.
    let all = lake
        .engine
        .execute(QueryRequest::new("SHOW TABLES", Some("default")))
        .await
        .unwrap();
    assert_eq!(all.row_count(), 4);
}

#[tokio::test]
async fn writes_need_grants_on_their_targets() {
    let lake = Lake::new().await;
    let g = reader();
    // CTAS: CREATE_TABLE and INSERT on the new table, SELECT on the source.
    lake.denied(
        &g,
        "CREATE TABLE copy_t AS SELECT * FROM open_t",
        "CREATE_TABLE permission on awsdatacatalog.default.copy_t",
    )
    .await;
    let writer: Arc<dyn TableAccess> = Arc::new(
        Grants::default()
            .with(Privilege::Select, "default.open_t")
            .with(Privilege::CreateTable, "default.copy_t")
            .with(Privilege::Insert, "default.copy_t")
            .with(Privilege::Insert, "default.open_t"),
    );
    lake.denied(
        &writer,
        "CREATE TABLE copy_t AS SELECT * FROM secret_t",
        "SELECT permission on awsdatacatalog.default.secret_t",
    )
    .await;
    lake.denied(
        &writer,
        "CREATE TABLE copy_t WITH (external_location = 's3://lakehose-warehouse/elsewhere/') AS SELECT * FROM open_t",
        "DATA_LOCATION_ACCESS permission on location s3://lakehose-warehouse/elsewhere/",
    )
    .await;
    let out = lake
        .run_as(
            &writer,
            "CREATE TABLE copy_t AS SELECT * FROM open_t",
            Dialect::Athena,
        )
        .await
        .unwrap();
    assert_eq!(out.update_count, Some(2));
    // INSERT: INSERT on the target, SELECT on the source.
    lake.denied(
        &writer,
        "INSERT INTO secret_t SELECT 5, 'y'",
        "INSERT permission on awsdatacatalog.default.secret_t",
    )
    .await;
    lake.denied(
        &writer,
        "INSERT INTO open_t SELECT id, salary FROM secret_t",
        "SELECT permission on awsdatacatalog.default.secret_t",
    )
    .await;
    lake.run_as(
        &writer,
        "INSERT INTO open_t VALUES (3, 'c')",
        Dialect::Athena,
    )
    .await
    .unwrap();
    // UNLOAD: data location access on where it writes.
    lake.denied(
        &writer,
        "UNLOAD (SELECT * FROM open_t) TO 's3://lakehose-warehouse/exports/x/' WITH (format = 'JSON')",
        "DATA_LOCATION_ACCESS permission on location s3://lakehose-warehouse/exports/x/",
    )
    .await;
    let exporter: Arc<dyn TableAccess> = Arc::new(
        Grants::default()
            .with(Privilege::Select, "default.open_t")
            .with(
                Privilege::DataLocation,
                "s3://lakehose-warehouse/exports/x/",
            ),
    );
    lake.denied(
        &exporter,
        "UNLOAD (SELECT * FROM secret_t) TO 's3://lakehose-warehouse/exports/x/' WITH (format = 'JSON')",
        "SELECT permission on awsdatacatalog.default.secret_t",
    )
    .await;
    let out = lake
        .run_as(
            &exporter,
            "UNLOAD (SELECT * FROM open_t) TO 's3://lakehose-warehouse/exports/x/' WITH (format = 'JSON')",
            Dialect::Athena,
        )
        .await
        .unwrap();
    assert_eq!(out.update_count, Some(3));
}

#[tokio::test]
async fn ddl_needs_its_grant() {
    let lake = Lake::new().await;
    let g = reader();
    for (sql, needs) in [
        (
            "DROP TABLE open_t",
            "DROP permission on awsdatacatalog.default.open_t",
        ),
        (
            "DROP VIEW open_v",
            "DROP permission on awsdatacatalog.default.open_v",
        ),
        (
            "ALTER TABLE open_t SET TBLPROPERTIES ('a' = 'b')",
            "ALTER permission on awsdatacatalog.default.open_t",
        ),
        (
            "ALTER TABLE open_t ADD COLUMNS (extra string)",
            "ALTER permission on awsdatacatalog.default.open_t",
        ),
        (
            "MSCK REPAIR TABLE open_t",
            "ADD_PARTITION permission on awsdatacatalog.default.open_t",
        ),
        (
            "CREATE EXTERNAL TABLE ext_t (id int) STORED AS PARQUET LOCATION 's3://lakehose-warehouse/default/secret_t/'",
            "CREATE_TABLE permission on awsdatacatalog.default.ext_t",
        ),
        (
            "CREATE VIEW new_v AS SELECT id FROM open_t",
            "CREATE_TABLE permission on awsdatacatalog.default.new_v",
        ),
        (
            "CREATE DATABASE sales",
            "CREATE_DATABASE permission on database sales",
        ),
        (
            "DROP DATABASE default CASCADE",
            "DROP_DATABASE permission on database default",
        ),
    ] {
        lake.denied(&g, sql, needs).await;
    }
    // A table over another table's files needs the location's grant too:
    // else it would read them past that table's grants.
    let creator: Arc<dyn TableAccess> = Arc::new(
        Grants::default()
            .with(Privilege::CreateTable, "default.ext_t")
            .with(Privilege::CreateTable, "default.new_v")
            .with(Privilege::Select, "default.open_t"),
    );
    lake.denied(
        &creator,
        "CREATE EXTERNAL TABLE ext_t (id int) STORED AS PARQUET LOCATION 's3://lakehose-warehouse/default/secret_t/'",
        "DATA_LOCATION_ACCESS permission on location s3://lakehose-warehouse/default/secret_t/",
    )
    .await;
    // A view is planned as its creator: none over a table it may not read.
    lake.denied(
        &creator,
        "CREATE VIEW new_v AS SELECT * FROM secret_t",
        "SELECT permission on awsdatacatalog.default.secret_t",
    )
    .await;
    lake.run_as(
        &creator,
        "CREATE VIEW new_v AS SELECT id FROM open_t",
        Dialect::Athena,
    )
    .await
    .unwrap();
    // Replacing it changes an existing view: ALTER as well.
    lake.denied(
        &creator,
        "CREATE OR REPLACE VIEW new_v AS SELECT id + 1 AS id FROM open_t",
        "ALTER permission on awsdatacatalog.default.new_v",
    )
    .await;
    // Nothing denied was done.
    let tables = lake
        .engine
        .execute(QueryRequest::new("SHOW TABLES", Some("default")))
        .await
        .unwrap();
    assert_eq!(
        tables.row_count(),
        5,
        "open_t, secret_t, open_v, secret_v, new_v"
    );
}
