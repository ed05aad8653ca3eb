//! Catalog benchmarks.
//!
//! - `crawl_10k_files_1k_partitions`: a fresh crawl of 10,000 small JSON
//!   files in 1,000 Hive partitions on the local store (listing, sampling
//!   three files per folder, creating the table and its partitions).
//! - `get_partitions_expression_100k`: `GetPartitions` with an expression
//!   over a table of 100,000 partitions (a warm catalog), and the same from
//!   a cold process (reading the partition log).
//!
//! Run with `cargo bench --bench catalog`.

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use lakehose_catalog::catalog::Catalog;
use lakehose_catalog::crawler::{CrawlOptions, NoProgress, crawl};
use lakehose_catalog::model::{Column, Database, Partition, StorageDescriptor, Table};
use lakehose_catalog::{EmbeddedCatalog, Location, Storage};

fn crawl_bench(c: &mut Criterion) {
    let rt = lakehose::server::runtime(None).expect("runtime");
    let data = tempfile::tempdir().expect("tempdir");
    for day in 0..1000 {
        let folder = data.path().join(format!("lake/events/day={day:04}"));
        std::fs::create_dir_all(&folder).expect("mkdir");
        for part in 0..10 {
            std::fs::write(
                folder.join(format!("part-{part}.json")),
                format!("{{\"id\": {part}, \"user\": \"u{day}\", \"value\": {day}.5}}\n{{\"id\": {}, \"user\": \"v\", \"value\": 1}}\n", part + 10),
            )
            .expect("write");
        }
    }
    let storage = Storage::local(data.path()).expect("storage");
    let target = Location::parse("s3://lake/events/").expect("target");
    let mut group = c.benchmark_group("catalog");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(30));
    group.throughput(Throughput::Elements(10_000));
    group.bench_function("crawl_10k_files_1k_partitions", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                // A fresh catalog each time: the crawl creates everything.
                let catalog_dir = tempfile::tempdir().expect("tempdir");
                let catalog =
                    EmbeddedCatalog::new(Storage::local(catalog_dir.path()).expect("storage"));
                let start = Instant::now();
                let summary = rt
                    .block_on(crawl(
                        &storage,
                        &catalog,
                        std::slice::from_ref(&target),
                        &CrawlOptions::new("bench", "bench"),
                        &NoProgress,
                    ))
                    .expect("crawl");
                total += start.elapsed();
                assert_eq!(summary.partitions_added, 1000);
            }
            total
        })
    });
    group.finish();
}

fn partitions_bench(c: &mut Criterion) {
    let rt = lakehose::server::runtime(None).expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = Storage::local(dir.path()).expect("storage");
    let catalog = EmbeddedCatalog::new(storage.clone());
    rt.block_on(async {
        catalog
            .create_database(Database {
                name: "db".into(),
                ..Default::default()
            })
            .await
            .expect("db");
        let key = |name: &str, t: &str| Column {
            name: name.into(),
            data_type: Some(t.into()),
            ..Default::default()
        };
        catalog
            .create_table(
                "db",
                Table {
                    name: "events".into(),
                    partition_keys: vec![key("dt", "string"), key("hour", "int")],
                    ..Default::default()
                },
            )
            .await
            .expect("table");
        let start = chrono::NaiveDate::from_ymd_opt(2015, 1, 1).expect("date");
        let all: Vec<Partition> = (0..100_000)
            .map(|i| {
                let dt = start + chrono::Duration::days(i / 24);
                let values = vec![dt.format("%Y-%m-%d").to_string(), (i % 24).to_string()];
                Partition {
                    storage_descriptor: Some(StorageDescriptor {
                        location: Some(format!(
                            "s3://lake/events/dt={}/hour={}/",
                            values[0], values[1]
                        )),
                        ..Default::default()
                    }),
                    values,
                    ..Default::default()
                }
            })
            .collect();
        let started = Instant::now();
        for chunk in all.chunks(1000) {
            let errors = catalog
                .create_partitions("db", "events", chunk.to_vec())
                .await
                .expect("add");
            assert!(errors.is_empty());
        }
        println!(
            "added 100,000 partitions in batches of 1,000 in {:.2} s",
            started.elapsed().as_secs_f64()
        );
    });
    let expr = "dt >= '2020-01-01' AND dt < '2020-02-01' AND hour BETWEEN 8 AND 17";
    let hits = rt
        .block_on(catalog.get_partitions("db", "events", Some(expr)))
        .expect("get");
    assert_eq!(hits.len(), 31 * 10);
    let mut group = c.benchmark_group("catalog");
    group.sample_size(20);
    group.bench_function("get_partitions_expression_100k_warm", |b| {
        b.iter(|| {
            rt.block_on(catalog.get_partitions("db", "events", Some(expr)))
                .expect("get")
        })
    });
    group.sample_size(10);
    group.bench_function("get_partitions_expression_100k_cold", |b| {
        b.iter(|| {
            let cold = EmbeddedCatalog::new(storage.clone());
            rt.block_on(cold.get_partitions("db", "events", Some(expr)))
                .expect("get")
        })
    });
    group.finish();
}

criterion_group!(benches, crawl_bench, partitions_bench);
criterion_main!(benches);
