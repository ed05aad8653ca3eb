//! Table grants through every query path of a running server with keys:
//! the Athena API (SDK), the Postgres wire (tokio-postgres and psql's
//! `\dt`), the CLI's remote mode and scheduled ETL jobs. A principal reads
//! only the tables its policies grant `lakehose:Select` on (views are
//! checked against their tables), writes only where it holds
//! `lakehose:Insert`, creates only with `glue:CreateTable`, and sees only
//! readable tables listed; a changed policy applies without a restart.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

use serde_json::json;

use crate::auth::{NewKey, athena, audit_events, create_key, creds, outcome, put_policy};
use crate::util::{Server, cli_ok, rt, wait_until};

/// Runs `sql` through the Athena API and waits for it: the rows (header
/// first) or the failure's reason and error category.
async fn athena_run(
    client: &aws_sdk_athena::Client,
    sql: &str,
) -> Result<Vec<Vec<String>>, (String, i32)> {
    use aws_sdk_athena::types::QueryExecutionState as S;
    let id = client
        .start_query_execution()
        .query_string(sql)
        .send()
        .await
        .unwrap_or_else(|e| panic!("start {sql}: {e:?}"))
        .query_execution_id
        .unwrap();
    loop {
        let got = client
            .get_query_execution()
            .query_execution_id(&id)
            .send()
            .await
            .unwrap();
        let execution = got.query_execution.unwrap();
        let status = execution.status.unwrap();
        match status.state.unwrap() {
            S::Succeeded => break,
            S::Failed | S::Cancelled => {
                let category = status
                    .athena_error
                    .and_then(|e| e.error_category)
                    .unwrap_or_default();
                return Err((status.state_change_reason.unwrap_or_default(), category));
            }
            _ => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
        }
    }
    let results = client
        .get_query_results()
        .query_execution_id(&id)
        .send()
        .await
        .unwrap();
    Ok(results
        .result_set
        .unwrap()
        .rows
        .unwrap_or_default()
        .into_iter()
        .map(|r| {
            r.data
                .unwrap_or_default()
                .into_iter()
                .map(|d| d.var_char_value.unwrap_or_default())
                .collect()
        })
        .collect())
}

fn local_sql(data: &Path, sql: &str) {
    cli_ok(&[
        OsStr::new("query"),
        OsStr::new("--data-dir"),
        data.as_os_str(),
        OsStr::new(sql),
    ]);
}

fn denied(result: Result<Vec<Vec<String>>, (String, i32)>, table: &str) {
    match result {
        Ok(rows) => panic!("read {table}: {rows:?}"),
        Err((reason, category)) => {
            assert!(
                reason.starts_with("PERMISSION_DENIED")
                    && reason.contains(&format!("awsdatacatalog.{table}")),
                "{reason}"
            );
            assert_eq!(category, 2, "a user error");
        }
    }
}

#[test]
fn table_grants_hold_on_every_query_path() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for sql in [
        "CREATE DATABASE sales",
        "CREATE TABLE sales.orders AS SELECT * FROM (VALUES (1, 10.5), (2, 20.0)) AS t(id, amount)",
        "CREATE TABLE sales.salaries AS SELECT * FROM (VALUES (1, 90000)) AS t(id, salary)",
        "CREATE VIEW sales.big_orders AS SELECT id FROM sales.orders WHERE amount > 15",
        "CREATE VIEW sales.pay AS SELECT id FROM sales.salaries",
        "CREATE DATABASE curated",
    ] {
        local_sql(d, sql);
    }
    let jobs = d.join("jobs");
    std::fs::create_dir_all(&jobs).unwrap();
    for (name, source) in [
        ("order_ids", "sales.orders"),
        ("salary_ids", "sales.salaries"),
    ] {
        std::fs::write(
            jobs.join(format!("{name}.sql")),
            format!("-- target: curated.{name}\n-- mode: overwrite\n-- schedule: * * * * * *\nSELECT id FROM {source}\n"),
        )
        .unwrap();
    }
    let admin = create_key(d, "ops", &["--group", "admins"]);
    let analyst = create_key(d, "analyst", &["--group", "analysts"]);
    let analysts = |extra: serde_json::Value| {
        let mut statements = vec![
            json!({"Effect": "Allow", "Action": "athena:*", "Resource": ["arn:aws:athena:*:*:workgroup/primary", "arn:aws:athena:*:*:datacatalog/*"]}),
            json!({"Effect": "Allow", "Action": "lakehose:Select", "Resource": [
                "arn:aws:glue:*:*:table/sales/orders",
                "arn:aws:glue:*:*:table/sales/big_orders",
                "arn:aws:glue:*:*:table/sales/pay",
                "arn:aws:glue:*:*:table/scratch/*"
            ]}),
            json!({"Effect": "Allow", "Action": ["glue:CreateTable", "lakehose:Insert"], "Resource": [
                "arn:aws:glue:*:*:catalog", "arn:aws:glue:*:*:database/scratch", "arn:aws:glue:*:*:table/scratch/*"
            ]}),
        ];
        statements.push(extra);
        json!({ "Version": "2012-10-17", "Statement": statements })
    };
    put_policy(
        d,
        &["--group", "analysts"],
        analysts(
            json!({"Effect": "Deny", "Action": "lakehose:Select", "Resource": "arn:aws:glue:*:*:table/sales/salaries"}),
        ),
    );
    put_policy(
        d,
        &["--principal", "etl-bot"],
        json!({"Statement": [
            {"Effect": "Allow", "Action": "lakehose:Select", "Resource": "arn:aws:glue:*:*:table/sales/orders"},
            {"Effect": "Allow", "Action": ["lakehose:Insert", "glue:CreateTable"], "Resource": [
                "arn:aws:glue:*:*:catalog", "arn:aws:glue:*:*:database/curated", "arn:aws:glue:*:*:table/curated/*"
            ]}
        ]}),
    );
    local_sql(d, "CREATE DATABASE scratch");
    let server = Server::start(
        d,
        &[
            "--etl-jobs",
            jobs.to_str().unwrap(),
            "--etl-principal",
            "etl-bot",
        ],
    );
    let ep = server.endpoint.clone();
    let c = |k: &NewKey| creds(&k.id, &k.secret, None);
    rt().block_on(async {
        // The Athena API.
        let a = athena(&ep, c(&analyst));
        let rows = athena_run(&a, "SELECT id, amount FROM sales.orders ORDER BY id").await.unwrap();
        assert_eq!(rows[1..], [vec!["1", "10.5"], vec!["2", "20.0"]]);
        assert_eq!(athena_run(&a, "SELECT * FROM sales.big_orders").await.unwrap()[1..], [vec!["2"]]);
        denied(athena_run(&a, "SELECT * FROM sales.salaries").await, "sales.salaries");
        denied(
            athena_run(&a, "SELECT o.id FROM sales.orders o JOIN sales.salaries s ON o.id = s.id").await,
            "sales.salaries",
        );
        // SELECT on the view is not enough: its table is checked too.
        denied(athena_run(&a, "SELECT * FROM sales.pay").await, "sales.salaries");
        // CTAS: a new table where the analyst may create one, from what it may read.
        denied(
            athena_run(&a, "CREATE TABLE scratch.copy AS SELECT * FROM sales.salaries").await,
            "sales.salaries",
        );
        let (reason, _) = athena_run(&a, "CREATE TABLE sales.copy AS SELECT * FROM sales.orders").await.unwrap_err();
        assert!(reason.contains("CREATE_TABLE permission on awsdatacatalog.sales.copy"), "{reason}");
        let (reason, _) = athena_run(&a, "DROP TABLE sales.orders").await.unwrap_err();
        assert!(reason.contains("DROP permission on awsdatacatalog.sales.orders"), "{reason}");
        athena_run(&a, "CREATE TABLE scratch.copy AS SELECT * FROM sales.orders").await.unwrap();
        assert_eq!(athena_run(&a, "SELECT count(*) FROM scratch.copy").await.unwrap()[1..], [vec!["2"]]);
        let (reason, _) = athena_run(&a, "INSERT INTO sales.orders VALUES (3, 1.0)").await.unwrap_err();
        assert!(reason.contains("INSERT permission on awsdatacatalog.sales.orders"), "{reason}");
        // Listings: what the analyst may read.
        let shown: Vec<String> = athena_run(&a, "SHOW TABLES IN sales").await.unwrap().into_iter().map(|r| r[0].clone()).collect();
        assert_eq!(shown, ["big_orders", "orders", "pay"]);
        let listed = a
            .list_table_metadata()
            .catalog_name("AwsDataCatalog")
            .database_name("sales")
            .send()
            .await
            .unwrap();
        let mut names: Vec<String> = listed.table_metadata_list().iter().map(|t| t.name().to_string()).collect();
        names.sort();
        assert_eq!(names, ["big_orders", "orders", "pay"]);
        let (code, _) = outcome(
            a.get_table_metadata()
                .catalog_name("AwsDataCatalog")
                .database_name("sales")
                .table_name("salaries")
                .send()
                .await,
        );
        assert_eq!(code, "MetadataException");
        // The admin reads everything.
        let admin_athena = athena(&ep, c(&admin));
        assert_eq!(athena_run(&admin_athena, "SELECT salary FROM sales.salaries").await.unwrap()[1..], [vec!["90000"]]);

        // Postgres: the same principal, the same grants.
        let (host, port) = server.pg_addr.rsplit_once(':').unwrap();
        let (pg, conn) = tokio_postgres::connect(
            &format!("host={host} port={port} user={} password={} dbname=sales connect_timeout=10", analyst.id, analyst.secret),
            tokio_postgres::NoTls,
        )
        .await
        .expect("Postgres login");
        tokio::spawn(conn);
        let n: i64 = pg.query_one("SELECT count(*) FROM orders", &[]).await.unwrap().get(0);
        assert_eq!(n, 2);
        for sql in ["SELECT * FROM salaries", "SELECT * FROM pay", "SELECT * FROM orders, salaries"] {
            let err = pg.query(sql, &[]).await.expect_err(sql);
            let db = err.as_db_error().unwrap_or_else(|| panic!("{sql}: {err}"));
            assert_eq!(db.code().code(), "42501", "{sql}: {}", db.message());
            assert!(db.message().contains("sales.salaries"), "{}", db.message());
        }
        // The policy changes: the deny is lifted and salaries granted, and
        // the open session reads them within seconds; then denied again.
        for (effect, readable) in [("Allow", true), ("Deny", false)] {
            put_policy(
                d,
                &["--group", "analysts"],
                analysts(json!({"Effect": effect, "Action": "lakehose:Select", "Resource": "arn:aws:glue:*:*:table/sales/salaries"})),
            );
            let mut applied = false;
            for _ in 0..100 {
                if pg.query("SELECT * FROM salaries", &[]).await.is_ok() == readable {
                    applied = true;
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            assert!(applied, "the {effect} applies to the open session");
        }
    });

    // psql's \dt lists only the tables the login may read.
    let (host, port) = server.pg_addr.rsplit_once(':').unwrap();
    let psql = Command::new("psql")
        .args(["-X", "-v", "ON_ERROR_STOP=1", "-c", r"\dt sales.*"])
        .arg(format!(
            "host={host} port={port} user={} dbname=sales connect_timeout=10",
            analyst.id
        ))
        .env("PGPASSWORD", &analyst.secret)
        .output()
        .expect("psql (installed by .ci/run)");
    let listed = String::from_utf8_lossy(&psql.stdout);
    assert!(
        psql.status.success(),
        "{}",
        String::from_utf8_lossy(&psql.stderr)
    );
    assert!(listed.contains("orders"), "{listed}");
    assert!(!listed.contains("salaries"), "{listed}");

    // The CLI's remote mode signs as the analyst and gets the same answer.
    let remote = |sql: &str| {
        Command::new(env!("CARGO_BIN_EXE_lakehose"))
            .args(["query", "--endpoint", &ep, "-d", "sales", sql])
            .env("AWS_ACCESS_KEY_ID", &analyst.id)
            .env("AWS_SECRET_ACCESS_KEY", &analyst.secret)
            .env_remove("AWS_SESSION_TOKEN")
            .output()
            .unwrap()
    };
    let out = remote("SELECT count(*) FROM orders");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = remote("SELECT * FROM salaries");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("PERMISSION_DENIED") && stderr.contains("sales.salaries"),
        "{stderr}"
    );

    // Scheduled ETL jobs run as etl-bot: the job reading what it may read
    // lands, the other fails on its grant and writes nothing.
    let history = |job: &str| {
        let out = cli_ok(&[
            OsStr::new("etl"),
            OsStr::new("--data-dir"),
            d.as_os_str(),
            OsStr::new("--jobs"),
            jobs.as_os_str(),
            OsStr::new("history"),
            OsStr::new(job),
        ]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    wait_until(60, "the ETL jobs' runs", || {
        history("order_ids").contains("SUCCEEDED") && history("salary_ids").contains("FAILED")
    });
    let failed = history("salary_ids");
    assert!(
        failed.contains("PERMISSION_DENIED")
            && failed.contains("etl-bot")
            && failed.contains("sales.salaries"),
        "{failed}"
    );
    assert!(!history("salary_ids").contains("SUCCEEDED"));
    // Both are in the audit log as runs of etl-bot, with their outcome.
    let ran = |job: &str, state: &str| {
        audit_events(d).iter().any(|e| {
            e["event"] == "etl_run"
                && e["principal"] == "etl-bot"
                && e["job"] == job
                && e["state"] == state
                && e["target"] == format!("curated.{job}")
        })
    };
    wait_until(10, "the ETL runs in the audit log", || {
        ran("order_ids", "SUCCEEDED") && ran("salary_ids", "FAILED")
    });
    server.terminate();
}
