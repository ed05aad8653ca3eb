//! DynamoDB exports into Delta tables: golden exports with every attribute
//! type read back row by row through SQL, a full export followed by
//! incremental ones (inserts, updates, deletes, a key changed twice), exports
//! applied twice or out of order, and broken exports that must fail with a
//! clear message and leave the table as it was.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::common::{lake, rows_of, rt};
use crate::dynamodb_export::{ExportSpec, write_export};
use lakehose_query::QueryEngine;
use lakehose_transform::dynamodb::export::{Export, ExportKind, NoProgress};
use lakehose_transform::dynamodb::{ImportOptions, ImportReport, import, import_new};
use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;

const TABLE_ARN: &str = "arn:aws:dynamodb:us-east-1:123456789012:table/users";
const T0: i64 = 1_700_000_000_000;
const HOUR: i64 = 3_600_000;

fn options(keys: &[&str]) -> ImportOptions {
    ImportOptions {
        database: "app".into(),
        table: "users".into(),
        keys: keys.iter().map(|k| k.to_string()).collect(),
        location: None,
        keep_raw: false,
        workers: 2,
    }
}

/// Writes an export of `lines` under `<data>/exports/users/`.
fn export(
    data: &Path,
    id: &str,
    kind: ExportKind,
    from_ms: Option<i64>,
    as_of_ms: i64,
    lines: &[&str],
) -> PathBuf {
    let spec = ExportSpec {
        export_id: id.into(),
        table_arn: TABLE_ARN.into(),
        kind,
        as_of_ms,
        from_ms,
        lines_per_file: 2,
    };
    write_export(
        &data.join("exports/users"),
        "users",
        &spec,
        lines.iter().map(|l| l.to_string()),
    )
    .unwrap()
}

fn object_path(dir: &Path) -> ObjectPath {
    ObjectPath::from_absolute_path(dir).unwrap()
}

fn store() -> Arc<dyn ObjectStore> {
    Arc::new(LocalFileSystem::new())
}

async fn apply(
    engine: &QueryEngine,
    dir: &Path,
    opts: &ImportOptions,
) -> Result<ImportReport, lakehose_transform::Error> {
    let export = Export::open(store(), object_path(dir)).await?;
    import(engine, export, opts, Arc::new(NoProgress)).await
}

const GOLDEN: &[&str] = &[
    r#"{"Item":{"pk":{"S":"u1"},"name":{"S":"Ann"},"age":{"N":"41"},"balance":{"N":"12.50"},"big":{"N":"123456789012345678901234567890"},"active":{"BOOL":true},"avatar":{"B":"AAEC"},"tags":{"SS":["a","b"]},"scores":{"NS":["1","2.5"]},"keys":{"BS":["AA=="]},"address":{"M":{"city":{"S":"Oslo"},"zip":{"N":"150"}}},"history":{"L":[{"M":{"at":{"N":"1"},"what":{"S":"signup"}}}]},"mixed":{"L":[{"S":"x"},{"N":"1"}]},"note":{"S":""},"gone":{"NULL":true}}}"#,
    r#"{"Item":{"pk":{"S":"u2"},"name":{"S":"Bo \"B\" Li"},"age":{"N":"-3"},"balance":{"N":"0.125"},"big":{"N":"-1"},"active":{"BOOL":false},"address":{"M":{"city":{"S":"Rome"},"floor":{"N":"2"}}},"extra":{"S":"only here"}}}"#,
    r#"{"Item":{"pk":{"S":"u3"},"age":{"N":"7E+1"},"huge":{"N":"1E+100"},"address":{"S":"unknown"}}}"#,
];

#[test]
fn dynamodb_full_export_every_type() {
    let (dir, engine) = lake();
    rt().block_on(async {
        let folder = export(
            dir.path(),
            "01700000000000-aaaa0001",
            ExportKind::Full,
            None,
            T0,
            GOLDEN,
        );
        let report = apply(&engine, &folder, &options(&["pk"])).await.unwrap();
        assert_eq!(report.records, 3);
        assert_eq!(report.files, 2);
        let types: Vec<(String, String)> = report.columns.clone();
        let expected = [
            ("pk", "string"),
            ("active", "boolean"),
            ("address", "string"),
            ("age", "bigint"),
            ("avatar", "binary"),
            ("balance", "decimal(38,3)"),
            ("big", "decimal(38,0)"),
            ("extra", "string"),
            ("gone", "string"),
            ("history", "array<struct<at:bigint,what:string>>"),
            ("huge", "double"),
            ("keys", "array<binary>"),
            ("mixed", "array<string>"),
            ("name", "string"),
            ("note", "string"),
            ("scores", "array<decimal(38,1)>"),
            ("tags", "array<string>"),
        ];
        assert_eq!(
            types,
            expected.map(|(n, t)| (n.to_string(), t.to_string())),
            "{types:?}"
        );
        let rows = rows_of(
            &engine,
            "SELECT pk, name, age, balance, big, active, to_hex(avatar), tags, scores, \
             address, history[1].what, mixed, note, gone, extra, huge, cardinality(keys) \
             FROM app.users ORDER BY pk",
        )
        .await;
        assert_eq!(
            rows,
            vec![
                vec![
                    "u1",
                    "Ann",
                    "41",
                    "12.500",
                    "123456789012345678901234567890",
                    "true",
                    "000102",
                    "[a, b]",
                    "[1.0, 2.5]",
                    r#"{"city":"Oslo","zip":150}"#,
                    "signup",
                    "[x, 1]",
                    "",
                    "NULL",
                    "NULL",
                    "NULL",
                    "1"
                ],
                vec![
                    "u2",
                    r#"Bo "B" Li"#,
                    "-3",
                    "0.125",
                    "-1",
                    "false",
                    "NULL",
                    "NULL",
                    "NULL",
                    r#"{"city":"Rome","floor":2}"#,
                    "NULL",
                    "NULL",
                    "NULL",
                    "NULL",
                    "only here",
                    "NULL",
                    "NULL"
                ],
                vec![
                    "u3",
                    "NULL",
                    "70",
                    "NULL",
                    "NULL",
                    "NULL",
                    "NULL",
                    "NULL",
                    "NULL",
                    r#""unknown""#,
                    "NULL",
                    "NULL",
                    "NULL",
                    "NULL",
                    "NULL",
                    "1e100",
                    "NULL"
                ],
            ]
        );
        // The same export again is skipped; the table is unchanged.
        let again = apply(&engine, &folder, &options(&[])).await.unwrap();
        assert!(again.skipped.is_some(), "{again}");
        assert_eq!(
            rows_of(&engine, "SELECT count(*) FROM app.users").await,
            [["3"]]
        );
    });
}

#[test]
fn dynamodb_raw_items_and_nested_maps() {
    let (dir, engine) = lake();
    rt().block_on(async {
        let lines = [
            r#"{"Item":{"id":{"N":"1"},"prefs":{"M":{"theme":{"S":"dark"},"langs":{"L":[{"S":"en"}]}}}}}"#,
            r#"{"Item":{"id":{"N":"2"},"prefs":{"M":{"theme":{"S":"light"},"size":{"N":"1.5"}}}}}"#,
        ];
        // Two files whose own schemas differ: the first's whole numbers are
        // widened to the decimals of the second.
        let scores = [
            r#"{"Item":{"id":{"N":"1"},"score":{"N":"1"}}}"#,
            r#"{"Item":{"id":{"N":"2"},"score":{"N":"7"}}}"#,
            r#"{"Item":{"id":{"N":"3"},"score":{"N":"1.25"}}}"#,
        ];
        let folder = export(dir.path(), "01700000000000-aaaa0003", ExportKind::Full, None, T0, &scores);
        let mut opts = options(&["id"]);
        opts.table = "scores".into();
        apply(&engine, &folder, &opts).await.unwrap();
        assert_eq!(
            rows_of(&engine, "SELECT id, score FROM app.scores ORDER BY id").await,
            vec![vec!["1", "1.00"], vec!["2", "7.00"], vec!["3", "1.25"]]
        );
        let folder = export(dir.path(), "01700000000000-aaaa0002", ExportKind::Full, None, T0, &lines);
        let mut opts = options(&["id"]);
        opts.keep_raw = true;
        apply(&engine, &folder, &opts).await.unwrap();
        let rows = rows_of(
            &engine,
            "SELECT id, prefs.theme, prefs.size, cardinality(prefs.langs), _item FROM app.users ORDER BY id",
        )
        .await;
        assert_eq!(
            rows,
            vec![
                vec![
                    "1",
                    "dark",
                    "NULL",
                    "1",
                    r#"{"id":{"N":"1"},"prefs":{"M":{"theme":{"S":"dark"},"langs":{"L":[{"S":"en"}]}}}}"#
                ],
                vec![
                    "2",
                    "light",
                    "1.5",
                    "NULL",
                    r#"{"id":{"N":"2"},"prefs":{"M":{"theme":{"S":"light"},"size":{"N":"1.5"}}}}"#
                ],
            ]
        );
    });
}

fn change(key: &str, micros: i64, new: Option<&str>) -> String {
    let keys = format!(r#"{{"pk":{{"S":"{key}"}}}}"#);
    let meta = format!(r#"{{"WriteTimestampMicros":{{"N":"{micros}"}}}}"#);
    match new {
        Some(image) => format!(
            r#"{{"Metadata":{meta},"Keys":{keys},"NewImage":{{"pk":{{"S":"{key}"}},{image}}},"OldImage":{{"pk":{{"S":"{key}"}}}}}}"#
        ),
        None => {
            format!(r#"{{"Metadata":{meta},"Keys":{keys},"OldImage":{{"pk":{{"S":"{key}"}}}}}}"#)
        }
    }
}

#[test]
fn dynamodb_full_then_incremental_exports() {
    let (dir, engine) = lake();
    rt().block_on(async {
        let full = export(
            dir.path(),
            "01700000000000-bbbb0001",
            ExportKind::Full,
            None,
            T0,
            &[
                r#"{"Item":{"pk":{"S":"a"},"plan":{"S":"free"},"visits":{"N":"1"}}}"#,
                r#"{"Item":{"pk":{"S":"b"},"plan":{"S":"pro"},"visits":{"N":"2"}}}"#,
                r#"{"Item":{"pk":{"S":"c"},"plan":{"S":"free"},"visits":{"N":"3"}}}"#,
            ],
        );
        // Hour 1: a upgraded, b deleted, d inserted, e inserted and deleted
        // (no record), a changed again later in the window.
        let inc1 = [
            change("a", 10, Some(r#""plan":{"S":"pro"},"visits":{"N":"5"}"#)),
            change("b", 11, None),
            change(
                "d",
                12,
                Some(r#""plan":{"S":"team"},"visits":{"N":"1"},"country":{"S":"NO"}"#),
            ),
            change("a", 13, Some(r#""plan":{"S":"team"},"visits":{"N":"6"}"#)),
        ];
        // Hour 2: c loses an attribute, d deleted, b comes back.
        let inc2 = [
            change("c", 20, Some(r#""plan":{"S":"free"}"#)),
            change("d", 21, None),
            change("b", 22, Some(r#""plan":{"S":"free"},"visits":{"N":"0"}"#)),
        ];
        let inc1_lines: Vec<&str> = inc1.iter().map(String::as_str).collect();
        let inc2_lines: Vec<&str> = inc2.iter().map(String::as_str).collect();
        let inc1_folder = export(
            dir.path(),
            "01700003600000-bbbb0002",
            ExportKind::Incremental,
            Some(T0),
            T0 + HOUR,
            &inc1_lines,
        );
        let inc2_folder = export(
            dir.path(),
            "01700007200000-bbbb0003",
            ExportKind::Incremental,
            Some(T0 + HOUR),
            T0 + 2 * HOUR,
            &inc2_lines,
        );

        // An incremental export before any full one is refused.
        let err = apply(&engine, &inc1_folder, &options(&[]))
            .await
            .unwrap_err();
        assert!(
            matches!(err, lakehose_transform::Error::Invalid(_)),
            "{err:?}"
        );
        assert!(!err.is_transient());
        assert!(err.to_string().contains("import a full export"), "{err}");
        apply(&engine, &full, &options(&[])).await.unwrap();
        // Out of order: hour 2 before hour 1 leaves a gap.
        let err = apply(&engine, &inc2_folder, &options(&[]))
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("apply the exports covering the time in between"),
            "{err}"
        );
        let r1 = apply(&engine, &inc1_folder, &options(&[])).await.unwrap();
        assert_eq!(r1.keys, ["pk"]);
        assert_eq!((r1.rows_written, r1.rows_deleted), (3, 1), "{r1}");
        let after1 = rows_of(
            &engine,
            "SELECT pk, plan, visits, country FROM app.users ORDER BY pk",
        )
        .await;
        assert_eq!(
            after1,
            vec![
                vec!["a", "team", "6", "NULL"],
                vec!["c", "free", "3", "NULL"],
                vec!["d", "team", "1", "NO"],
            ]
        );
        let r2 = apply(&engine, &inc2_folder, &options(&[])).await.unwrap();
        assert_eq!((r2.rows_written, r2.rows_deleted), (3, 1), "{r2}");
        // Applied twice: skipped, nothing changes.
        assert!(
            apply(&engine, &inc1_folder, &options(&[]))
                .await
                .unwrap()
                .skipped
                .is_some()
        );
        assert!(
            apply(&engine, &inc2_folder, &options(&[]))
                .await
                .unwrap()
                .skipped
                .is_some()
        );
        let expected = vec![
            vec!["a", "team", "6", "NULL"],
            vec!["b", "free", "0", "NULL"],
            vec!["c", "free", "NULL", "NULL"],
        ];
        let final_rows = rows_of(
            &engine,
            "SELECT pk, plan, visits, country FROM app.users ORDER BY pk",
        )
        .await;
        assert_eq!(final_rows, expected);
        let table = engine.catalog().get_table("app", "users").await.unwrap();
        assert_eq!(
            table.parameters.get("lakehose.dynamodb.as_of_ms"),
            Some(&(T0 + 2 * HOUR).to_string())
        );
        assert_eq!(
            table
                .parameters
                .get("lakehose.dynamodb.table_arn")
                .map(String::as_str),
            Some(TABLE_ARN)
        );

        // The same three exports picked up from their prefix into a new
        // table, in the right order, reach the same state; a second pass
        // finds nothing new.
        let prefix = object_path(&dir.path().join("exports/users"));
        let mut opts = options(&[]);
        opts.table = "users2".into();
        let reports = import_new(&engine, store(), &prefix, &opts, Arc::new(NoProgress))
            .await
            .unwrap();
        assert_eq!(reports.len(), 3);
        let again = import_new(&engine, store(), &prefix, &opts, Arc::new(NoProgress))
            .await
            .unwrap();
        assert!(again.is_empty());
        let rows = rows_of(
            &engine,
            "SELECT pk, plan, visits, country FROM app.users2 ORDER BY pk",
        )
        .await;
        assert_eq!(rows, expected);
    });
}

#[test]
fn dynamodb_broken_exports_fail_and_change_nothing() {
    let (dir, engine) = lake();
    rt().block_on(async {
        let good = export(
            dir.path(),
            "01700000000000-cccc0001",
            ExportKind::Full,
            None,
            T0,
            &[
                r#"{"Item":{"pk":{"S":"a"},"n":{"N":"1"}}}"#,
                r#"{"Item":{"pk":{"S":"b"},"n":{"N":"2"}}}"#,
            ],
        );
        apply(&engine, &good, &options(&["pk"])).await.unwrap();
        let before = rows_of(&engine, "SELECT pk, n FROM app.users ORDER BY pk").await;

        let mut n = 0;
        let mut broken = |lines: &[&str], damage: &dyn Fn(&Path)| {
            n += 1;
            let folder = export(
                dir.path(),
                &format!("01700003600000-dddd000{n}"),
                ExportKind::Full,
                None,
                T0 + HOUR * n,
                lines,
            );
            damage(&folder);
            folder
        };
        let first_data = |folder: &Path| -> PathBuf {
            let mut files: Vec<PathBuf> = std::fs::read_dir(folder.join("data"))
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            files.sort();
            files.remove(0)
        };
        let ok_lines = [
            r#"{"Item":{"pk":{"S":"x"},"n":{"N":"9"}}}"#,
            r#"{"Item":{"pk":{"S":"y"},"n":{"N":"8"}}}"#,
            r#"{"Item":{"pk":{"S":"z"},"n":{"N":"7"}}}"#,
        ];
        let cases: Vec<(PathBuf, &str)> = vec![
            (
                broken(&ok_lines, &|f| {
                    // Corrupt gzip with a matching checksum: the manifest
                    // is rewritten for the damaged bytes.
                    let file = first_data(f);
                    let mut bytes = std::fs::read(&file).unwrap();
                    let mid = bytes.len() / 2;
                    bytes[mid] ^= 0xff;
                    bytes[mid + 1] ^= 0xff;
                    std::fs::write(&file, &bytes).unwrap();
                    rewrite_md5(f, &file, &bytes);
                }),
                "is not valid gzip",
            ),
            (
                broken(&ok_lines, &|f| {
                    let file = first_data(f);
                    let bytes = std::fs::read(&file).unwrap();
                    std::fs::write(&file, &bytes[..bytes.len() - 7]).unwrap();
                }),
                "does not match its MD5 checksum",
            ),
            (
                broken(
                    &[
                        r#"{"Item":{"pk":{"S":"x"},"n":{"N":"9"}}}"#,
                        r#"{"Item":{"pk":{"S":"y"},"n":"#,
                    ],
                    &|_| {},
                ),
                "line 2",
            ),
            (
                broken(&[r#"{"Item":{"pk":{"S":"x"},"n":{"Q":"9"}}}"#], &|_| {}),
                "unknown type descriptor \"Q\"",
            ),
            (
                broken(&ok_lines, &|f| {
                    std::fs::remove_file(f.join("manifest-summary.json")).unwrap();
                }),
                "no manifest-summary.json",
            ),
            (
                broken(&ok_lines, &|f| {
                    let m = f.join("manifest-files.json");
                    let text = std::fs::read_to_string(&m).unwrap().replacen(
                        "\"itemCount\":2",
                        "\"itemCount\":5",
                        1,
                    );
                    std::fs::write(&m, &text).unwrap();
                    std::fs::remove_file(f.join("manifest-files.md5")).unwrap();
                }),
                "items but manifest-summary.json says 3",
            ),
            (
                broken(&ok_lines, &|f| {
                    let m = f.join("manifest-files.json");
                    let text = std::fs::read_to_string(&m).unwrap() + "\n";
                    std::fs::write(&m, text).unwrap();
                }),
                "does not match its checksum",
            ),
            (
                broken(&ok_lines, &|f| {
                    let file = first_data(f);
                    std::fs::remove_file(file).unwrap();
                }),
                "is missing",
            ),
            (
                broken(&[r#"{"Item":{"n":{"N":"9"}}}"#], &|_| {}),
                "has no key attribute \"pk\"",
            ),
            (
                broken(&ok_lines, &|f| {
                    let m = f.join("manifest-summary.json");
                    let text = std::fs::read_to_string(&m)
                        .unwrap()
                        .replace("\"DYNAMODB_JSON\"", "\"ION\"");
                    std::fs::write(&m, text).unwrap();
                    std::fs::remove_file(f.join("manifest-summary.md5")).unwrap();
                }),
                "unsupported format ION",
            ),
            (
                broken(&[r#"{"Item":{"pk":{"S":"x"},"n":{"N":"9"}}}"#], &|f| {
                    // Bytes that are not UTF-8 in a string, with a
                    // matching checksum.
                    let file = first_data(f);
                    let mut gz =
                        flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                    std::io::Write::write_all(&mut gz, b"{\"Item\":{\"pk\":{\"S\":\"\xff\"}}}\n")
                        .unwrap();
                    let bytes = gz.finish().unwrap();
                    std::fs::write(&file, &bytes).unwrap();
                    rewrite_md5(f, &file, &bytes);
                }),
                "line 1: is not valid UTF-8",
            ),
        ];
        for (folder, expected) in cases {
            let err = apply(&engine, &folder, &options(&[])).await.unwrap_err();
            assert!(
                matches!(err.root(), lakehose_transform::Error::Export { .. }),
                "{}: {err:?}",
                folder.display()
            );
            assert!(
                err.to_string().contains(expected),
                "{}: {err}",
                folder.display()
            );
            assert_eq!(
                rows_of(&engine, "SELECT pk, n FROM app.users ORDER BY pk").await,
                before,
                "{expected}"
            );
        }
    });
}

/// Puts the MD5 of `bytes` for `file` into the export's file manifest.
fn rewrite_md5(folder: &Path, file: &Path, bytes: &[u8]) {
    use base64::Engine;
    use md5::Digest;
    let name = file.file_name().unwrap().to_str().unwrap();
    let manifest = folder.join("manifest-files.json");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let fixed: Vec<String> = text
        .lines()
        .map(|l| {
            if !l.contains(name) {
                return l.to_string();
            }
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["md5Checksum"] = base64::engine::general_purpose::STANDARD
                .encode(md5::Md5::digest(bytes))
                .into();
            v.to_string()
        })
        .collect();
    std::fs::write(&manifest, fixed.join("\n") + "\n").unwrap();
    std::fs::remove_file(folder.join("manifest-files.md5")).unwrap();
}
