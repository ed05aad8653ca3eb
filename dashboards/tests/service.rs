//! Dashboards over a real engine and warehouse folder: parameters bound as
//! values (injection attempts return the right rows and nothing else), the
//! cache's refresh and staleness, incremental refresh when the source gets
//! new files, and specs reloaded when their files change.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use lakehose_catalog::{CatalogRef, EmbeddedCatalog, Storage};
use lakehose_dashboards::data::{Selection, VisualData};
use lakehose_dashboards::{Dashboard, Dashboards};
use lakehose_query::{EngineConfig, QueryEngine, QueryRequest};

fn engine(dir: &Path) -> QueryEngine {
    let storage = Storage::local(dir).unwrap();
    let catalog: CatalogRef = Arc::new(EmbeddedCatalog::new(storage.clone()));
    QueryEngine::new(catalog, storage, EngineConfig::default()).unwrap()
}

async fn sql(engine: &QueryEngine, statement: &str) {
    engine
        .execute(QueryRequest::new(statement, Some("default")))
        .await
        .unwrap_or_else(|e| panic!("{statement}: {e}"));
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn kpi(data: &VisualData) -> Option<f64> {
    match data {
        VisualData::Chart(lakehose_dashboards::chart::ChartData::Kpi { value, .. }) => *value,
        other => panic!("not a KPI: {other:?}"),
    }
}

const PEOPLE: &str = r#"
title = "People"

[[parameters]]
name = "who"
type = "string"
default = "alice"

[[parameters]]
name = "min_age"
type = "integer"
default = 0

[datasets.one]
sql = "SELECT name, age FROM default.people WHERE name = $who AND age >= $min_age"
cache = "direct"

[datasets.all]
sql = "SELECT name, age FROM default.people"

[[filters]]
name = "name"
field = "name"
control = "dropdown"

[[filters]]
name = "has"
field = "name"
control = "text"

[[visuals]]
id = "found"
title = "Found"
type = "kpi"
dataset = "one"
y = "count(*)"

[[visuals]]
id = "everyone"
title = "Everyone"
type = "kpi"
dataset = "all"
y = "count(*)"
"#;

#[tokio::test]
async fn parameters_and_filters_are_values_never_sql() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path());
    sql(&engine, "CREATE TABLE people AS SELECT * FROM (VALUES ('alice', 30), ('bob', 40), ('o''brien', 50)) AS t(name, age)").await;
    let d = Dashboard::parse(Path::new("people.toml"), PEOPLE).unwrap();
    let dashboards = Dashboards::new(engine, Vec::new(), vec![d.clone()]);
    dashboards.validate(&d).await.unwrap();
    let count = |pairs: &[(&str, &str)], visual: &'static str| {
        let dashboards = dashboards.clone();
        let d = d.clone();
        let query: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        async move {
            let sel = Selection::parse(&d, &query, now_ms())?;
            let data = dashboards
                .visual(
                    &d,
                    visual,
                    &sel,
                    None,
                    &Default::default(),
                    &Default::default(),
                )
                .await?;
            Ok::<_, lakehose_dashboards::Error>(kpi(&data))
        }
    };
    assert_eq!(count(&[], "found").await.unwrap(), Some(1.0));
    assert_eq!(count(&[("who", "bob")], "found").await.unwrap(), Some(1.0));
    assert_eq!(
        count(&[("who", "o'brien")], "found").await.unwrap(),
        Some(1.0)
    );
    for hostile in [
        "x' OR '1'='1",
        "alice' --",
        "'; DROP TABLE people; --",
        "alice\u{0}",
    ] {
        assert_eq!(
            count(&[("who", hostile)], "found").await.unwrap(),
            Some(0.0),
            "{hostile:?}"
        );
        assert_eq!(
            count(&[("name", hostile)], "everyone").await.unwrap(),
            Some(0.0),
            "{hostile:?}"
        );
        assert_eq!(
            count(&[("has", hostile)], "everyone").await.unwrap(),
            Some(0.0),
            "{hostile:?}"
        );
    }
    assert_eq!(
        count(&[("has", "O'B")], "everyone").await.unwrap(),
        Some(1.0)
    );
    assert_eq!(
        count(&[("min_age", "35"), ("who", "bob")], "found")
            .await
            .unwrap(),
        Some(1.0)
    );
    let e = count(&[("min_age", "1 OR 1=1")], "found")
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("min_age") && e.to_string().contains("not an integer"),
        "{e}"
    );
    let long = "x".repeat(5000);
    let e = count(&[("who", long.as_str())], "found").await.unwrap_err();
    assert!(e.to_string().contains("longer than"), "{e}");
    // The table is still there.
    assert_eq!(count(&[], "everyone").await.unwrap(), Some(3.0));
}

const EVENTS: &str = r#"
title = "Events"

[datasets.recent]
sql = "SELECT kind, ts FROM default.events"
refresh_on_new_files = true
incremental = { column = "ts", lookback = "1h" }

[[visuals]]
id = "n"
title = "Events"
type = "kpi"
dataset = "recent"
y = "count(*)"
"#;

#[tokio::test]
async fn cached_datasets_refresh_incrementally_on_new_files_and_keep_rows_on_failure() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path());
    sql(
        &engine,
        "CREATE TABLE events WITH (format = 'PARQUET') AS SELECT * FROM (VALUES \
         ('old', CAST(current_timestamp - INTERVAL '3' HOUR AS TIMESTAMP)), \
         ('recent', CAST(current_timestamp - INTERVAL '10' MINUTE AS TIMESTAMP))) AS t(kind, ts)",
    )
    .await;
    let d = Dashboard::parse(Path::new("events.toml"), EVENTS).unwrap();
    let dashboards = Dashboards::new(engine.clone(), Vec::new(), vec![d.clone()]);
    let sel = Selection::parse(&d, &BTreeMap::new(), now_ms()).unwrap();
    let n = |dashboards: Dashboards, d: Dashboard, sel: Selection| async move {
        let data = dashboards
            .visual(
                &d,
                "n",
                &sel,
                None,
                &Default::default(),
                &Default::default(),
            )
            .await
            .unwrap();
        kpi(&data)
    };
    // The first view fills the cache.
    assert_eq!(
        n(dashboards.clone(), d.clone(), sel.clone()).await,
        Some(2.0)
    );
    let first = dashboards.freshness(&d).await[0].1.clone();
    assert_eq!(first.rows, 2);
    assert!(first.refreshed_ms.is_some() && !first.incremental && first.error.is_none());
    // New rows land: nothing changes until the sources are looked at.
    sql(
        &engine,
        "INSERT INTO events VALUES ('new', CAST(current_timestamp - INTERVAL '5' MINUTE AS TIMESTAMP))",
    )
    .await;
    assert_eq!(
        n(dashboards.clone(), d.clone(), sel.clone()).await,
        Some(2.0),
        "served from the cache"
    );
    dashboards.tick(true).await;
    let second = dashboards.freshness(&d).await[0].1.clone();
    assert!(second.incremental, "{second:?}");
    // The recent row was read again (not twice), the old one kept, the new one added.
    assert_eq!(second.rows, 3, "{second:?}");
    assert_eq!(
        n(dashboards.clone(), d.clone(), sel.clone()).await,
        Some(3.0)
    );
    // Nothing new: the next look does not refresh.
    dashboards.tick(true).await;
    assert_eq!(
        dashboards.freshness(&d).await[0].1.refreshed_ms,
        second.refreshed_ms
    );
    // The source goes away: the refresh fails, its error is kept, the rows stay.
    sql(&engine, "DROP TABLE events").await;
    let e = dashboards.refresh(&d, "recent", true).await.unwrap_err();
    assert!(e.to_string().contains("dataset recent"), "{e}");
    let stale = dashboards.freshness(&d).await[0].1.clone();
    assert!(stale.error.is_some() && stale.rows == 3, "{stale:?}");
    assert_eq!(
        n(dashboards.clone(), d.clone(), sel.clone()).await,
        Some(3.0)
    );
    // A restart reads the cache from its files.
    let again = Dashboards::new(engine, Vec::new(), vec![d.clone()]);
    assert_eq!(n(again, d, sel).await, Some(3.0));
}

#[tokio::test]
async fn spec_files_reload_and_a_broken_one_stands_alone() {
    let dir = tempfile::tempdir().unwrap();
    let specs = dir.path().join("specs");
    std::fs::create_dir_all(&specs).unwrap();
    let engine = engine(dir.path());
    sql(
        &engine,
        "CREATE TABLE people AS SELECT * FROM (VALUES ('alice', 30)) AS t(name, age)",
    )
    .await;
    std::fs::write(specs.join("people.toml"), PEOPLE).unwrap();
    std::fs::write(specs.join("broken.toml"), "title = \"x\"\n[datasets.a]\nsql = \"SELECT 1\"\n[[visuals]]\nid = \"v\"\ntitle = \"v\"\ntype = \"line\"\ndataset = \"zzz\"\n").unwrap();
    let dashboards = Dashboards::new(engine, vec![specs.clone()], Vec::new());
    let list = dashboards.list().await;
    assert_eq!(list.len(), 2);
    let broken = list.iter().find(|s| s.name == "broken").unwrap();
    let e = broken.error.as_deref().unwrap();
    assert!(
        e.contains("broken.toml") && e.contains("visual v") && e.contains("zzz"),
        "{e}"
    );
    assert!(dashboards.get("people").is_ok());
    // An edit is picked up (files are looked at again after a second).
    std::thread::sleep(std::time::Duration::from_millis(1100));
    std::fs::write(
        specs.join("people.toml"),
        PEOPLE.replace("title = \"People\"", "title = \"Staff\""),
    )
    .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(dashboards.get("people").unwrap().spec.title, "Staff");
    // A removed file is gone.
    std::fs::remove_file(specs.join("broken.toml")).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert!(dashboards.get("broken").is_err());
}
