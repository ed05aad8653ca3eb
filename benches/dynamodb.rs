//! DynamoDB export import: a full export of 5,000,000 users (the demo's
//! users table: strings, numbers, a boolean, a string set and a map per
//! item, 1,000 gzip'd data files... see `lakehose::usersgen`) imported into
//! a new Delta table, checksums verified, schema inferred, every item
//! decoded twice. Throughput is items per second; MiB/s of the gzip'd
//! export is printed too.
//!
//! The export is written once under `target/bench-data/` (or taken from
//! `LAKEHOSE_BENCH_DYNAMODB`, a folder holding `AWSDynamoDB/<id>/`);
//! `LAKEHOSE_BENCH_DYNAMODB_ITEMS` sets its size. Run with
//! `cargo bench --bench dynamodb`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use lakehose_catalog::{CatalogRef, EmbeddedCatalog, Storage};
use lakehose_query::{EngineConfig, QueryEngine};
use lakehose_transform::dynamodb::export::{Export, NoProgress};
use lakehose_transform::dynamodb::{ImportOptions, find_exports, import};
use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;

fn export_folder(items: u64) -> PathBuf {
    if let Ok(dir) = std::env::var("LAKEHOSE_BENCH_DYNAMODB") {
        return PathBuf::from(dir);
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target/bench-data")
        .join(format!("dynamodb-{items}"));
    if !dir.join("AWSDynamoDB").exists() {
        eprintln!(
            "writing a DynamoDB export of {items} items to {} ...",
            dir.display()
        );
        let per_file = (items / 1000).max(1) as usize;
        lakehose::usersgen::write_full(&dir, "users", items as u32, 1_700_000_000_000, 7, per_file)
            .expect("write the export");
    }
    dir
}

fn bench(c: &mut Criterion) {
    let items: u64 = std::env::var("LAKEHOSE_BENCH_DYNAMODB_ITEMS")
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(5_000_000);
    let folder = export_folder(items);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let store: Arc<dyn ObjectStore> = Arc::new(LocalFileSystem::new());
    let prefix = ObjectPath::from_absolute_path(&folder).expect("path");
    let dirs = runtime
        .block_on(find_exports(&store, &prefix))
        .expect("find the export");
    let export = runtime
        .block_on(Export::open(Arc::clone(&store), dirs[0].clone()))
        .expect("open the export");
    let bytes = runtime.block_on(export.data_bytes()).expect("sizes");

    let mut group = c.benchmark_group("dynamodb_import");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(60));
    group.throughput(Throughput::Elements(items));
    let mut last = Duration::ZERO;
    group.bench_function(format!("full_export/{items}"), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let lake = tempfile::tempdir().expect("temp dir");
                let storage = Storage::local(lake.path()).expect("storage");
                let catalog: CatalogRef = Arc::new(EmbeddedCatalog::new(storage.clone()));
                let engine =
                    QueryEngine::new(catalog, storage, EngineConfig::default()).expect("engine");
                let options = ImportOptions {
                    keys: vec!["user_id".into()],
                    ..ImportOptions::new("app", "users")
                };
                let started = Instant::now();
                let report = runtime
                    .block_on(import(
                        &engine,
                        export.clone(),
                        &options,
                        Arc::new(NoProgress),
                    ))
                    .expect("import");
                let took = started.elapsed();
                assert_eq!(report.records, items);
                total += took;
                last = took;
            }
            total
        })
    });
    group.finish();
    let secs = last.as_secs_f64();
    eprintln!(
        "dynamodb import: {items} items, {:.1} MiB gzip'd in {} files: last run {secs:.2} s = {:.0} items/s, {:.1} MiB/s",
        bytes as f64 / 1048576.0,
        export.files.len(),
        items as f64 / secs,
        bytes as f64 / 1048576.0 / secs
    );
}

criterion::criterion_group!(benches, bench);
criterion::criterion_main!(benches);
