//! DynamoDB exports end to end: `lakehose import dynamodb-export` on a full
//! and an incremental export of the users table (written in DynamoDB's
//! layout), then the imported table joined with a log table through the
//! Athena API (`aws-sdk-athena`), the Postgres wire protocol and
//! `lakehose query`.

use std::process::Command;

use crate::athena::{athena_client, run, select};
use crate::util::{Server, rt};

const HOUR: i64 = 3_600_000;
const T0: i64 = 1_763_000_000_000;

fn lakehose(data: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_lakehose"))
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .output()
        .expect("run lakehose");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `lakehose import dynamodb-export LOCATION --database app --table users`
/// plus `extra`.
fn import(data: &std::path::Path, location: &str, extra: &[&str]) -> (bool, String, String) {
    let mut args = vec![
        "import",
        "dynamodb-export",
        location,
        "--database",
        "app",
        "--table",
        "users",
    ];
    args.extend_from_slice(extra);
    lakehose(data, &args)
}

#[test]
fn dynamodb_export_imported_and_joined_through_every_client() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let prefix = data.join("exports").join("users");
    let full = lakehose::usersgen::write_full(&prefix, "users", 400, T0, 3, 150).unwrap();

    // The export's own folder, with the key named.
    let (ok, out, err) = import(
        data,
        &format!(
            "s3://exports/users/AWSDynamoDB/{}/",
            full.file_name().unwrap().to_str().unwrap()
        ),
        &["--key", "user_id"],
    );
    assert!(ok, "{out}\n{err}");
    assert!(
        out.contains("app.users: full export applied, 400 records from 3 files"),
        "{out}"
    );
    assert!(out.contains("keys: user_id"), "{out}");
    assert!(out.contains("credits decimal(38,2)"), "{out}");

    // Later changes picked up from the prefix; the full export is not
    // applied again.
    lakehose::usersgen::write_changes(&prefix, "users", 400, T0, T0 + HOUR, 3).unwrap();
    let (ok, out, err) = import(data, "s3://exports/users/", &[]);
    assert!(ok, "{out}\n{err}");
    // 16 upgrades (every 20th user but not every 50th), 8 closed accounts
    // (every 50th), 20 sign-ups.
    assert!(
        out.contains("incremental export applied, 44 records from 1 files")
            && out.contains("44 rows changed (8 deleted)"),
        "{out}"
    );
    let (ok, out, _) = import(data, "s3://exports/users/", &[]);
    assert!(ok && out.contains("no new export"), "{out}");

    // A bad location is a clear error.
    let (ok, _, err) = import(data, "s3://exports/nothing/", &[]);
    assert!(!ok && err.contains("no DynamoDB export"), "{err}");

    let server = Server::start(data, &[]);
    let expected_users = 400 - 8 + 20;
    rt().block_on(async {
        let athena = athena_client(&server.endpoint);
        run(&athena, "CREATE DATABASE web", "default").await;
        let (_, state, reason) = run(
            &athena,
            "CREATE TABLE web.requests WITH (format = 'PARQUET') AS \
             SELECT 'u-' || lpad(CAST(n % 450 + 1 AS VARCHAR), 5, '0') AS user_id, \
                    CASE WHEN n % 7 = 0 THEN 500 ELSE 200 END AS status \
             FROM UNNEST(sequence(0, 8999)) AS t(n)",
            "default",
        )
        .await;
        assert_eq!(
            state,
            aws_sdk_athena::types::QueryExecutionState::Succeeded,
            "{reason:?}"
        );
        let rows = select(&athena, "SELECT count(*), count(DISTINCT plan) FROM app.users", "app").await;
        assert_eq!(
            rows,
            vec![vec![Some(expected_users.to_string()), Some("3".to_string())]]
        );
        // Requests of known users per plan: every request of users
        // u-00001..u-00412 except the deleted ones.
        let rows = select(
            &athena,
            "SELECT u.plan, count(*) AS requests, count_if(r.status >= 500) AS errors \
             FROM web.requests r JOIN app.users u ON r.user_id = u.user_id \
             GROUP BY u.plan ORDER BY u.plan",
            "app",
        )
        .await;
        let joined: i64 = rows
            .iter()
            .map(|r| r[1].as_deref().unwrap().parse::<i64>().unwrap())
            .sum();
        let requests_per_user = 9000 / 450;
        assert_eq!(joined, (expected_users as i64) * requests_per_user, "{rows:?}");
        assert_eq!(rows.len(), 3, "{rows:?}");
        // A field of a map attribute, and arithmetic on a decimal one.
        let rows = select(
            &athena,
            "SELECT count_if(prefs.theme IN ('light', 'dark', 'system')), sum(credits) > 0 \
             FROM app.users",
            "app",
        )
        .await;
        assert_eq!(
            rows,
            vec![vec![
                Some(expected_users.to_string()),
                Some("true".to_string())
            ]]
        );

        // The same join over the Postgres wire protocol.
        let (host, port) = server.pg_addr.rsplit_once(':').unwrap();
        let (pg, connection) = tokio_postgres::connect(
            &format!("host={host} port={port} user=analyst dbname=app"),
            tokio_postgres::NoTls,
        )
        .await
        .unwrap();
        tokio::spawn(connection);
        let row = pg
            .query_one(
                "SELECT count(*) FROM web.requests r JOIN users u ON r.user_id = u.user_id WHERE u.plan = $1",
                &[&"free"],
            )
            .await
            .unwrap();
        let free_via_pg: i64 = row.get(0);
        let free_via_athena = select(
            &athena,
            "SELECT count(*) FROM web.requests r JOIN app.users u ON r.user_id = u.user_id WHERE u.plan = 'free'",
            "app",
        )
        .await;
        assert_eq!(
            free_via_athena[0][0].as_deref(),
            Some(free_via_pg.to_string().as_str())
        );
    });
    server.terminate();

    // And through `lakehose query` on the folder.
    let (ok, out, err) = lakehose(
        data,
        &[
            "query",
            "--format",
            "csv",
            "SELECT count(*) AS users FROM app.users WHERE user_id > 'u-00400'",
        ],
    );
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "users\n20");
}
