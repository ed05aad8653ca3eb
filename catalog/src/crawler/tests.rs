//! Crawls over hand-made folders: Hive and unnamed partitions, JSON (gzip'd
//! and nested), CSV, Parquet, mixed folders, bad files, re-crawls and
//! policies.

use std::io::Write;

use super::*;
use crate::catalog::EmbeddedCatalog;

fn write(root: &std::path::Path, rel: &str, data: &[u8]) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, data).unwrap();
}

fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn parquet_file() -> Vec<u8> {
    use arrow::array::{Float64Array, RecordBatch, StringArray};
    use std::sync::Arc;
    let batch = RecordBatch::try_from_iter([
        ("city", Arc::new(StringArray::from(vec!["a", "b"])) as _),
        ("temp", Arc::new(Float64Array::from(vec![1.5, 2.5])) as _),
    ])
    .unwrap();
    let mut buf = Vec::new();
    let mut w = parquet::arrow::ArrowWriter::try_new(&mut buf, batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    buf
}

fn cols(t: &Table) -> Vec<(String, String)> {
    t.storage_descriptor
        .as_ref()
        .unwrap()
        .columns
        .iter()
        .map(|c| (c.name.clone(), c.data_type.clone().unwrap()))
        .collect()
}

fn keys(t: &Table) -> Vec<String> {
    t.partition_keys.iter().map(|k| k.name.clone()).collect()
}

#[tokio::test]
async fn crawls_formats_partitions_and_policies() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    // Hive partitions, gzip'd nested JSON; a marker and a corrupt file.
    write(&lake, "sales/year=2025/month=01/p0.json.gz", &gz(b"{\"id\": 1, \"amount\": 10, \"customer\": {\"name\": \"ann\"}}\n{\"id\": 2, \"amount\": 12.5}\n"));
    write(
        &lake,
        "sales/year=2025/month=02/p0.json.gz",
        &gz(b"{\"id\": 3, \"amount\": 7, \"coupon\": \"X1\"}\n"),
    );
    write(
        &lake,
        "sales/year=2025/month=02/broken.json.gz",
        b"\x1f\x8b\x08garbage",
    );
    write(&lake, "sales/_SUCCESS", b"");
    // Unnamed partitions, CSV with a header.
    write(
        &lake,
        "events/2026/11/a.csv",
        b"ts,kind,value\n2026-11-01,click,3\n2026-11-02,view,4\n",
    );
    write(
        &lake,
        "events/2026/12/a.csv",
        b"ts,kind,value\n2026-12-01,click,5\n2026-12-02,view,6\n",
    );
    // Two unrelated datasets side by side: two tables.
    write(&lake, "mixed/weather/w.parquet", &parquet_file());
    write(
        &lake,
        "mixed/users/u.json",
        b"{\"user_id\": \"u1\", \"plan\": \"pro\"}\n",
    );
    write(&lake, "mixed/users/empty.json", b"");

    let storage = Storage::local(dir.path()).unwrap();
    let catalog = EmbeddedCatalog::new(storage.clone());
    let target = Location::parse("s3://lake/").unwrap();
    let options = CrawlOptions::new("nightly", "raw");
    let summary = crawl(
        &storage,
        &catalog,
        std::slice::from_ref(&target),
        &options,
        &NoProgress,
    )
    .await
    .unwrap();
    let mut created = summary.tables_created.clone();
    created.sort();
    assert_eq!(
        created,
        ["raw.events", "raw.sales", "raw.users", "raw.weather"],
        "{summary:?}"
    );
    assert_eq!(summary.skipped.len(), 2, "{:?}", summary.skipped);
    assert!(
        summary
            .skipped
            .iter()
            .any(|(p, why)| p.ends_with("broken.json.gz") && why.contains("gzip"))
    );
    assert!(
        summary
            .skipped
            .iter()
            .any(|(p, why)| p.ends_with("empty.json") && why.contains("empty"))
    );

    let sales = catalog.get_table("raw", "sales").await.unwrap();
    assert_eq!(keys(&sales), ["year", "month"]);
    assert_eq!(
        cols(&sales),
        [
            ("id".to_string(), "bigint".to_string()),
            ("amount".into(), "double".into()),
            ("customer".into(), "struct<name:string>".into()),
            ("coupon".into(), "string".into()),
        ]
    );
    let sd = sales.storage_descriptor.as_ref().unwrap();
    assert_eq!(sd.location.as_deref(), Some("s3://lake/sales/"));
    assert_eq!(
        sd.serde_info
            .as_ref()
            .unwrap()
            .serialization_library
            .as_deref(),
        Some("org.openx.data.jsonserde.JsonSerDe")
    );
    assert_eq!(sales.parameters["classification"], "json");
    assert_eq!(sales.parameters["compressionType"], "gzip");
    let parts = catalog.get_partitions("raw", "sales", None).await.unwrap();
    let values: Vec<Vec<String>> = parts.iter().map(|p| p.values.clone()).collect();
    assert_eq!(values, [vec!["2025", "01"], vec!["2025", "02"]]);
    assert_eq!(
        parts[1]
            .storage_descriptor
            .as_ref()
            .unwrap()
            .location
            .as_deref(),
        Some("s3://lake/sales/year=2025/month=02/")
    );

    let events = catalog.get_table("raw", "events").await.unwrap();
    assert_eq!(keys(&events), ["partition_0", "partition_1"]);
    assert_eq!(
        cols(&events),
        [
            ("ts".to_string(), "string".to_string()),
            ("kind".into(), "string".into()),
            ("value".into(), "bigint".into())
        ]
    );
    assert_eq!(events.parameters["skip.header.line.count"], "1");
    assert_eq!(events.parameters["classification"], "csv");

    let weather = catalog.get_table("raw", "weather").await.unwrap();
    assert_eq!(
        cols(&weather),
        [
            ("city".to_string(), "string".to_string()),
            ("temp".into(), "double".into())
        ]
    );
    assert_eq!(
        weather
            .storage_descriptor
            .as_ref()
            .unwrap()
            .location
            .as_deref(),
        Some("s3://lake/mixed/weather/")
    );
    assert!(keys(&weather).is_empty());
    let users = catalog.get_table("raw", "users").await.unwrap();
    assert_eq!(
        cols(&users),
        [
            ("user_id".to_string(), "string".to_string()),
            ("plan".into(), "string".into())
        ]
    );

    // Re-crawl after new data: a new partition, a new column; and the
    // events data is gone (deprecated by default).
    write(
        &lake,
        "sales/year=2026/month=01/p0.json.gz",
        &gz(b"{\"id\": 9, \"amount\": 1, \"channel\": \"web\"}\n"),
    );
    std::fs::remove_dir_all(lake.join("events")).unwrap();
    let summary = crawl(
        &storage,
        &catalog,
        std::slice::from_ref(&target),
        &options,
        &NoProgress,
    )
    .await
    .unwrap();
    assert!(summary.tables_created.is_empty());
    assert_eq!(summary.tables_updated, ["raw.sales"]);
    assert_eq!(summary.tables_deleted, ["raw.events"]);
    assert_eq!(summary.partitions_added, 1);
    let sales = catalog.get_table("raw", "sales").await.unwrap();
    assert_eq!(
        cols(&sales).last().unwrap(),
        &("channel".to_string(), "string".to_string())
    );
    assert_eq!(sales.version_id.as_deref(), Some("2"));
    let events = catalog.get_table("raw", "events").await.unwrap();
    assert!(events.parameters.contains_key("DEPRECATED_BY_CRAWLER"));

    // LOG leaves definitions alone (new partitions are still added);
    // DELETE_FROM_DATABASE removes tables whose data is gone.
    write(
        &lake,
        "sales/year=2026/month=02/p0.json.gz",
        &gz(b"{\"id\": 10, \"amount\": 3, \"refund\": true}\n"),
    );
    let mut log = options.clone();
    log.update = UpdateBehavior::Log;
    log.delete = DeleteBehavior::DeleteFromDatabase;
    let summary = crawl(
        &storage,
        &catalog,
        std::slice::from_ref(&target),
        &log,
        &NoProgress,
    )
    .await
    .unwrap();
    assert!(summary.tables_updated.is_empty());
    assert_eq!(summary.partitions_added, 1, "{summary:?}");
    assert_eq!(summary.tables_deleted, ["raw.events"]);
    assert!(
        !cols(&catalog.get_table("raw", "sales").await.unwrap())
            .iter()
            .any(|(n, _)| n == "refund")
    );
    assert!(catalog.get_table("raw", "events").await.is_err());
}

#[tokio::test]
async fn exclusions_and_table_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    write(&lake, "logs/a.json", b"{\"x\": 1}\n");
    write(&lake, "logs/tmp/skip.json", b"{\"y\": 1}\n");
    let storage = Storage::local(dir.path()).unwrap();
    let catalog = EmbeddedCatalog::new(storage.clone());
    let mut options = CrawlOptions::new("c", "db");
    options.table_prefix = "raw_".into();
    options.exclusions = vec!["tmp/**".into()];
    let summary = crawl(
        &storage,
        &catalog,
        &[Location::parse("s3://lake/logs/").unwrap()],
        &options,
        &NoProgress,
    )
    .await
    .unwrap();
    assert_eq!(summary.tables_created, ["db.raw_logs"]);
    assert_eq!(summary.files, 1);
}

#[tokio::test]
async fn new_folders_only_reads_just_new_folders() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    write(&lake, "t/day=1/a.json", b"{\"id\": 1, \"v\": 1}\n");
    write(&lake, "t/day=2/a.json", b"{\"id\": 2, \"v\": 2}\n");
    let storage = Storage::local(dir.path()).unwrap();
    let catalog = EmbeddedCatalog::new(storage.clone());
    let target = [Location::parse("s3://lake/t/").unwrap()];
    let mut options = CrawlOptions::new("inc", "db");
    crawl(&storage, &catalog, &target, &options, &NoProgress)
        .await
        .unwrap();

    // An old folder changes (a new column, and now unreadable), a new one appears.
    write(
        &lake,
        "t/day=1/b.json",
        b"{\"id\": 3, \"v\": 3, \"old_folder_col\": true}\n",
    );
    write(&lake, "t/day=2/broken.json", b"{oops\n{oops\n");
    write(
        &lake,
        "t/day=3/a.json",
        b"{\"id\": 4, \"v\": 4, \"new_col\": 1}\n",
    );
    options.new_folders_only = true;
    let summary = crawl(&storage, &catalog, &target, &options, &NoProgress)
        .await
        .unwrap();
    assert_eq!(summary.partitions_added, 1, "{summary:?}");
    assert!(
        summary.tables_updated.is_empty(),
        "definitions stay as they are: {summary:?}"
    );
    assert!(
        summary.skipped.is_empty(),
        "old folders are not read: {:?}",
        summary.skipped
    );
    let t = catalog.get_table("db", "t").await.unwrap();
    assert_eq!(
        cols(&t),
        [
            ("id".to_string(), "bigint".to_string()),
            ("v".into(), "bigint".into())
        ]
    );
    assert_eq!(
        catalog.get_partitions("db", "t", None).await.unwrap().len(),
        3
    );
}
