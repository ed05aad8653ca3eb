//! The dashboards a server or the CLI holds: their specs, loaded from
//! folders and reloaded when a file changes (a broken one keeps its error
//! and does not take the others down), their datasets' rows (cached or
//! direct, with row-level security), the refresh of cached datasets (on a
//! schedule, on demand, incrementally, when sources get new files), and
//! the visuals' data.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::{DataType, TimeUnit, TimestampMicrosecondType};
use datafusion::common::ScalarValue;
use lakehose_query::QueryEngine;

use crate::cache::{Cache, Freshness, MAX_CACHED_BYTES};
use crate::data::{self, Bound, Links, Rows, Selection, TableRequest, VisualData};
use crate::error::{Error, Result};
use crate::spec::{CacheMode, Dashboard, parse_span};

/// Refreshes run at once, over every dashboard.
pub const REFRESH_SLOTS: usize = 2;
/// How often sources are looked at for new files.
pub const SOURCE_POLL: Duration = Duration::from_secs(15);
/// Files listed per source table to notice new ones, at most.
pub const MAX_SOURCE_FILES: usize = 100_000;
/// Values a row-level security rule may allow a viewer, at most.
pub const MAX_RLS_VALUES: usize = 10_000;

/// Who looks at a dashboard (row-level security keys on it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Viewer {
    /// The principal.
    pub principal: String,
    /// Its groups.
    pub groups: Vec<String>,
}

/// A dashboard as loaded: its spec, or why it could not be.
#[derive(Debug, Clone)]
pub enum Loaded {
    /// Parsed and checked.
    Ready(Arc<Dashboard>),
    /// Broken: the error names the file and what is wrong.
    Broken(String),
}

/// One dashboard in a listing.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Its name.
    pub name: String,
    /// Its title (the name when broken).
    pub title: String,
    /// Why it is broken.
    pub error: Option<String>,
    /// Its cached datasets' freshness.
    pub datasets: Vec<(String, Freshness)>,
}

struct Specs {
    by_name: BTreeMap<String, (Loaded, Option<SystemTime>)>,
    checked: Instant,
}

struct Inner {
    engine: QueryEngine,
    cache: Cache,
    dirs: Vec<PathBuf>,
    fixed: Vec<Arc<Dashboard>>,
    specs: RwLock<Specs>,
    slots: tokio::sync::Semaphore,
    /// One refresh per dataset at a time.
    refreshing: Mutex<HashMap<DatasetKey, Arc<tokio::sync::Mutex<()>>>>,
    /// When each scheduled dataset last ran, by (dashboard, dataset).
    last_run: Mutex<HashMap<DatasetKey, i64>>,
}

/// A dataset of a dashboard: (dashboard, dataset).
type DatasetKey = (String, String);

/// The dashboards of a server (cheap to clone).
#[derive(Clone)]
pub struct Dashboards {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Dashboards {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dashboards")
            .field("dirs", &self.inner.dirs)
            .finish_non_exhaustive()
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Dashboards {
    /// The dashboards of the `*.toml` files of `dirs` and `fixed` ones
    /// (built in), cached in the engine's storage.
    pub fn new(engine: QueryEngine, dirs: Vec<PathBuf>, fixed: Vec<Dashboard>) -> Self {
        let this = Self {
            inner: Arc::new(Inner {
                cache: Cache::new(engine.storage().clone()),
                engine,
                dirs,
                fixed: fixed.into_iter().map(Arc::new).collect(),
                specs: RwLock::new(Specs {
                    by_name: BTreeMap::new(),
                    checked: Instant::now() - Duration::from_secs(60),
                }),
                slots: tokio::sync::Semaphore::new(REFRESH_SLOTS),
                refreshing: Mutex::default(),
                last_run: Mutex::default(),
            }),
        };
        this.reload();
        this
    }

    /// The engine.
    pub fn engine(&self) -> &QueryEngine {
        &self.inner.engine
    }

    /// Reads the spec folders again (files whose modification time
    /// changed), at most once a second.
    pub fn reload(&self) {
        {
            let specs = self.inner.specs.read().unwrap_or_else(|e| e.into_inner());
            if specs.checked.elapsed() < Duration::from_secs(1) && !specs.by_name.is_empty() {
                return;
            }
        }
        let mut specs = self.inner.specs.write().unwrap_or_else(|e| e.into_inner());
        specs.checked = Instant::now();
        let mut seen = BTreeMap::new();
        for d in &self.inner.fixed {
            seen.insert(d.name.clone(), (Loaded::Ready(Arc::clone(d)), None));
        }
        for dir in &self.inner.dirs {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            let mut files: Vec<PathBuf> = entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "toml"))
                .collect();
            files.sort();
            for path in files.into_iter().take(1000) {
                let name = path
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .unwrap_or_default()
                    .to_string();
                let modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
                let loaded = match specs.by_name.get(&name) {
                    Some((loaded, at)) if *at == modified && modified.is_some() => loaded.clone(),
                    _ => {
                        self.inner.cache.evict(&name);
                        match Dashboard::load(&path) {
                            Ok(d) => {
                                tracing::info!(dashboard = %d.name, file = %path.display(), "Dashboard loaded");
                                Loaded::Ready(Arc::new(d))
                            }
                            Err(e) => {
                                tracing::warn!(file = %path.display(), error = %e, "Dashboard refused");
                                Loaded::Broken(e.to_string())
                            }
                        }
                    }
                };
                seen.insert(name, (loaded, modified));
            }
        }
        specs.by_name = seen;
    }

    /// The names of every dashboard (loaded or broken), sorted.
    pub fn names(&self) -> Vec<String> {
        self.reload();
        let specs = self.inner.specs.read().unwrap_or_else(|e| e.into_inner());
        specs.by_name.keys().cloned().collect()
    }

    /// Every dashboard, with its freshness.
    pub async fn list(&self) -> Vec<Summary> {
        self.reload();
        let loaded: Vec<(String, Loaded)> = {
            let specs = self.inner.specs.read().unwrap_or_else(|e| e.into_inner());
            specs
                .by_name
                .iter()
                .map(|(name, (loaded, _))| (name.clone(), loaded.clone()))
                .collect()
        };
        let mut out = Vec::with_capacity(loaded.len());
        for (name, loaded) in loaded {
            out.push(match loaded {
                Loaded::Ready(d) => Summary {
                    title: d.spec.title.clone(),
                    error: None,
                    datasets: self.freshness(&d).await,
                    name,
                },
                Loaded::Broken(e) => Summary {
                    title: name.clone(),
                    name,
                    error: Some(e),
                    datasets: Vec::new(),
                },
            });
        }
        out
    }

    /// A dashboard by name.
    pub fn get(&self, name: &str) -> Result<Arc<Dashboard>> {
        self.reload();
        let specs = self.inner.specs.read().unwrap_or_else(|e| e.into_inner());
        match specs.by_name.get(name) {
            Some((Loaded::Ready(d), _)) => Ok(Arc::clone(d)),
            Some((Loaded::Broken(e), _)) => Err(Error::Spec {
                path: PathBuf::from(format!("{name}.toml")),
                message: e.clone(),
            }),
            None => Err(Error::NotFound(format!("dashboard {name}"))),
        }
    }

    /// Each cached dataset's freshness.
    pub async fn freshness(&self, d: &Dashboard) -> Vec<(String, Freshness)> {
        let mut out = Vec::new();
        for (name, ds) in &d.spec.datasets {
            if ds.cache != CacheMode::Spice {
                continue;
            }
            let f = self
                .inner
                .cache
                .get(&d.name, name)
                .await
                .map(|e| e.freshness.clone())
                .unwrap_or_default();
            out.push((name.clone(), f));
        }
        out
    }

    /// Checks a dashboard against the catalog: every dataset plans (and
    /// its calculated fields), every visual's query plans over its
    /// dataset's columns. Nothing is read.
    pub async fn validate(&self, d: &Dashboard) -> Result<()> {
        let sel = Selection::parse(d, &BTreeMap::new(), now_ms())?;
        let mut empty: HashMap<String, Rows> = HashMap::new();
        for name in dataset_order(d) {
            let rows = self.plan_only(d, &name, &sel, &empty).await?;
            empty.insert(name, rows);
        }
        for v in &d.spec.visuals {
            let rows = &empty[&v.dataset];
            for field in
                v.x.iter()
                    .filter(|_| v.kind != crate::spec::VisualKind::Scatter)
                    .chain(&v.series)
                    .chain(&v.group_by)
            {
                if rows.schema.field_with_name(field).is_err() {
                    return Err(Error::Visual {
                        dashboard: d.name.clone(),
                        visual: v.id.clone(),
                        message: format!(
                            "field {field:?} is not a column of dataset {} ({})",
                            v.dataset,
                            rows.schema
                                .fields()
                                .iter()
                                .map(|f| f.name().as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    });
                }
            }
            data::visual(
                &self.inner.engine,
                d,
                v,
                rows,
                &sel,
                &Links::default(),
                &TableRequest::default(),
            )
            .await?;
        }
        for f in &d.spec.filters {
            if !empty
                .values()
                .any(|r| r.schema.field_with_name(&f.field).is_ok())
            {
                return Err(Error::Spec {
                    path: d.path.clone(),
                    message: format!("filter {}: no dataset has a field {:?}", f.name, f.field),
                });
            }
        }
        Ok(())
    }

    /// A dataset's columns with no rows (for validation).
    async fn plan_only(
        &self,
        d: &Dashboard,
        name: &str,
        sel: &Selection,
        known: &HashMap<String, Rows>,
    ) -> Result<Rows> {
        let ds = &d.spec.datasets[name];
        let parents: Vec<(&str, &Rows)> = ds
            .from
            .as_deref()
            .and_then(|p| known.get(p).map(|r| (p, r)))
            .into_iter()
            .collect();
        let fail = |message: String| Error::Dataset {
            dashboard: d.name.clone(),
            dataset: name.to_string(),
            message,
        };
        let ctx = data::context_with(&self.inner.engine, d.database(), &parents)
            .map_err(|e| fail(e.message))?;
        let mut bound = data::dataset_sql(d, name, None, &sel.params);
        bound.sql = format!("SELECT * FROM ({}) AS lh_v LIMIT 0", bound.sql);
        let rows = data::run(&self.inner.engine, &ctx, bound)
            .await
            .map_err(|e| fail(e.message))?;
        if ds.cache == CacheMode::Spice
            && let Some(p) = uses_parameters(&ds.sql, d)
        {
            return Err(fail(format!(
                "a cached dataset cannot read parameter ${p}: its rows are shared by every viewer; make it cache = \"direct\""
            )));
        }
        if let Some(inc) = &ds.incremental
            && rows.schema.field_with_name(&inc.column).is_err()
        {
            return Err(fail(format!(
                "incremental column {:?} is not a column",
                inc.column
            )));
        }
        if let Some(r) = &ds.rls
            && rows.schema.field_with_name(&r.column).is_err()
        {
            return Err(fail(format!("rls column {:?} is not a column", r.column)));
        }
        Ok(rows)
    }

    /// A dataset's rows for a viewer: cached (refreshed first when never
    /// refreshed) or run now, row-level security applied.
    pub async fn rows(
        &self,
        d: &Dashboard,
        name: &str,
        sel: &Selection,
        viewer: Option<&Viewer>,
    ) -> Result<Rows> {
        let rows = self.unfiltered(d, name, sel).await?;
        match &d.spec.datasets[name].rls {
            Some(rls) => self.secure(d, name, rls, rows, viewer).await,
            None => Ok(rows),
        }
    }

    fn unfiltered<'a>(
        &'a self,
        d: &'a Dashboard,
        name: &'a str,
        sel: &'a Selection,
    ) -> futures::future::BoxFuture<'a, Result<Rows>> {
        Box::pin(async move {
            let ds = d
                .spec
                .datasets
                .get(name)
                .ok_or_else(|| Error::NotFound(format!("dataset {name}")))?;
            if ds.cache == CacheMode::Spice {
                if let Some(rows) = self
                    .inner
                    .cache
                    .get(&d.name, name)
                    .await
                    .and_then(|e| e.rows.clone())
                {
                    return Ok(rows);
                }
                self.refresh(d, name, false).await?;
                return self
                    .inner
                    .cache
                    .get(&d.name, name)
                    .await
                    .and_then(|e| e.rows.clone())
                    .ok_or_else(|| Error::NotFound(format!("rows of dataset {name}")));
            }
            self.materialize(d, name, None, sel).await
        })
    }

    /// Runs a dataset's SQL (and its calculated fields); its parent's rows
    /// are read first.
    async fn materialize(
        &self,
        d: &Dashboard,
        name: &str,
        since: Option<(&str, ScalarValue)>,
        sel: &Selection,
    ) -> Result<Rows> {
        let ds = &d.spec.datasets[name];
        let fail = |message: String| Error::Dataset {
            dashboard: d.name.clone(),
            dataset: name.to_string(),
            message,
        };
        let parent = match &ds.from {
            Some(p) => Some((p.as_str(), self.unfiltered(d, p, sel).await?)),
            None => None,
        };
        let tables: Vec<(&str, &Rows)> = parent.iter().map(|(n, r)| (*n, r)).collect();
        let ctx = data::context_with(&self.inner.engine, d.database(), &tables)
            .map_err(|e| fail(e.message))?;
        let bound = data::dataset_sql(d, name, since, &sel.params);
        let rows = data::run(&self.inner.engine, &ctx, bound)
            .await
            .map_err(|e| fail(e.message))?;
        let max = ds.max_rows.unwrap_or(crate::spec::DEFAULT_MAX_ROWS);
        if rows.len() > max {
            return Err(fail(format!(
                "{} rows, over its max_rows of {max}",
                rows.len()
            )));
        }
        Ok(rows)
    }

    /// Refreshes a cached dataset now (incrementally when it says so and
    /// has rows; `full` forces a full refresh). One refresh per dataset
    /// runs at a time; a second waits for it and returns its outcome.
    pub async fn refresh(&self, d: &Dashboard, name: &str, full: bool) -> Result<Freshness> {
        let ds = d
            .spec
            .datasets
            .get(name)
            .ok_or_else(|| Error::NotFound(format!("dataset {name}")))?;
        if ds.cache != CacheMode::Spice {
            return Err(Error::Input {
                name: name.into(),
                message: "a direct dataset has no cache to refresh".into(),
            });
        }
        let lock = {
            let mut map = self
                .inner
                .refreshing
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            Arc::clone(map.entry((d.name.clone(), name.to_string())).or_default())
        };
        let started_ms = now_ms();
        let _one = lock.lock().await;
        if let Some(e) = self.inner.cache.get(&d.name, name).await
            && e.freshness.attempted_ms.is_some_and(|t| t >= started_ms)
        {
            return match &e.freshness.error {
                Some(err) => Err(Error::Dataset {
                    dashboard: d.name.clone(),
                    dataset: name.to_string(),
                    message: err.clone(),
                }),
                None => Ok(e.freshness.clone()),
            };
        }
        let _slot = self
            .inner
            .slots
            .acquire()
            .await
            .map_err(|_| Error::NotFound("the refresh service".into()))?;
        let started = Instant::now();
        let sources = self.sources_state(d, name).await;
        let previous = self
            .inner
            .cache
            .get(&d.name, name)
            .await
            .and_then(|e| e.rows.clone());
        let sel = Selection::parse(d, &BTreeMap::new(), started_ms)?;
        let outcome = match (&ds.incremental, previous, full) {
            (Some(inc), Some(old), false) if !old.is_empty() => self
                .incremental(d, name, inc, old, &sel)
                .await
                .map(|rows| (rows, true)),
            _ => self
                .materialize(d, name, None, &sel)
                .await
                .map(|rows| (rows, false)),
        };
        let checked = outcome.and_then(|(rows, incremental)| {
            let bytes: usize = rows
                .batches
                .iter()
                .map(RecordBatch::get_array_memory_size)
                .sum();
            if bytes > MAX_CACHED_BYTES {
                return Err(Error::Dataset {
                    dashboard: d.name.clone(),
                    dataset: name.to_string(),
                    message: format!(
                        "{bytes} bytes, over the cache's {MAX_CACHED_BYTES} per dataset"
                    ),
                });
            }
            let freshness = Freshness {
                refreshed_ms: Some(now_ms()),
                rows: rows.len(),
                bytes,
                duration_ms: started.elapsed().as_millis() as u64,
                incremental,
                error: None,
                attempted_ms: Some(now_ms()),
                sources: sources.clone(),
            };
            Ok((rows, freshness))
        });
        let outcome = match checked {
            Ok((rows, freshness)) => self
                .inner
                .cache
                .put(&d.name, name, rows, freshness.clone())
                .await
                .map(|()| freshness),
            Err(e) => Err(e),
        };
        match outcome {
            Ok(f) => {
                tracing::info!(dashboard = %d.name, dataset = name, rows = f.rows, ms = f.duration_ms, incremental = f.incremental, "Dataset refreshed");
                Ok(f)
            }
            Err(e) => {
                tracing::warn!(dashboard = %d.name, dataset = name, error = %e, "Dataset refresh failed");
                // Kept as the bare reason: it is reported again under the
                // dataset's name.
                let reason = match &e {
                    Error::Dataset { message, .. } => message.clone(),
                    other => other.to_string(),
                };
                self.inner
                    .cache
                    .failed(&d.name, name, reason, now_ms())
                    .await;
                Err(e)
            }
        }
    }

    /// The rows of an incremental refresh: the cached rows older than the
    /// newest cached `column` value less the lookback, and the rows read
    /// again from there on.
    async fn incremental(
        &self,
        d: &Dashboard,
        name: &str,
        inc: &crate::spec::Incremental,
        old: Rows,
        sel: &Selection,
    ) -> Result<Rows> {
        let fail = |message: String| Error::Dataset {
            dashboard: d.name.clone(),
            dataset: name.to_string(),
            message,
        };
        let lookback = parse_span(&inc.lookback).map_err(fail)?.unwrap_or_default();
        let micros = |b: &RecordBatch| -> std::result::Result<Vec<Option<i64>>, String> {
            let col = b
                .column_by_name(&inc.column)
                .ok_or_else(|| format!("no column {}", inc.column))?;
            let t = datafusion::arrow::compute::cast(
                col,
                &DataType::Timestamp(TimeUnit::Microsecond, None),
            )
            .map_err(|e| e.to_string())?;
            Ok(t.as_primitive::<TimestampMicrosecondType>()
                .iter()
                .collect())
        };
        let mut newest = None;
        for b in old.batches.iter() {
            for v in micros(b).map_err(fail)?.into_iter().flatten() {
                newest = Some(newest.map_or(v, |n: i64| n.max(v)));
            }
        }
        let Some(newest) = newest else {
            return self.materialize(d, name, None, sel).await;
        };
        let cutoff = newest - lookback.as_micros() as i64;
        let fresh = self
            .materialize(
                d,
                name,
                Some((
                    &inc.column,
                    ScalarValue::TimestampMicrosecond(Some(cutoff), None),
                )),
                sel,
            )
            .await?;
        let mut kept = Vec::new();
        for b in old.batches.iter() {
            let keep: datafusion::arrow::array::BooleanArray = micros(b)
                .map_err(fail)?
                .into_iter()
                .map(|v| Some(v.is_some_and(|v| v < cutoff)))
                .collect();
            kept.push(
                datafusion::arrow::compute::filter_record_batch(b, &keep)
                    .map_err(|e| fail(e.to_string()))?,
            );
        }
        for b in fresh.batches.iter() {
            let cast = b
                .columns()
                .iter()
                .zip(old.schema.fields())
                .map(|(c, f)| datafusion::arrow::compute::cast(c, f.data_type()))
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| fail(format!("the new rows' columns changed: {e}")))?;
            kept.push(
                RecordBatch::try_new(Arc::clone(&old.schema), cast)
                    .map_err(|e| fail(e.to_string()))?,
            );
        }
        let one = concat_batches(&old.schema, &kept).map_err(|e| fail(e.to_string()))?;
        Ok(Rows {
            schema: Arc::clone(&old.schema),
            batches: Arc::new(vec![one]),
        })
    }

    /// Applies a dataset's row-level security for `viewer` (none: the
    /// data folder's owner sees every row).
    async fn secure(
        &self,
        d: &Dashboard,
        name: &str,
        rls: &crate::spec::RowLevelSecurity,
        rows: Rows,
        viewer: Option<&Viewer>,
    ) -> Result<Rows> {
        let Some(viewer) = viewer else {
            return Ok(rows);
        };
        let fail = |message: String| Error::Dataset {
            dashboard: d.name.clone(),
            dataset: name.to_string(),
            message: format!("row-level security: {message}"),
        };
        let ctx = data::context_with(&self.inner.engine, d.database(), &[])
            .map_err(|e| fail(e.message))?;
        let rules = data::run(
            &self.inner.engine,
            &ctx,
            Bound {
                sql: format!(
                    "SELECT CAST(user_name AS VARCHAR) AS u, CAST(group_name AS VARCHAR) AS g, CAST({} AS VARCHAR) AS v FROM ({}) AS lh_rules",
                    data::quoted(&rls.column),
                    rls.rules
                ),
                values: HashMap::new(),
            },
        )
        .await
        .map_err(|e| fail(e.message))?;
        let mut allowed: Vec<String> = Vec::new();
        let mut all = false;
        for b in rules.batches.iter() {
            let text = |i: usize| {
                datafusion::arrow::compute::cast(b.column(i), &DataType::Utf8)
                    .map_err(|e| fail(e.to_string()))
            };
            let (u, g, v) = (text(0)?, text(1)?, text(2)?);
            let (u, g, v) = (
                u.as_string::<i32>(),
                g.as_string::<i32>(),
                v.as_string::<i32>(),
            );
            for i in 0..b.num_rows() {
                let applies = (!u.is_null(i) && u.value(i) == viewer.principal)
                    || (!g.is_null(i) && viewer.groups.iter().any(|x| x == g.value(i)));
                if !applies {
                    continue;
                }
                if v.is_null(i) || v.value(i).trim().is_empty() {
                    all = true;
                } else {
                    allowed.extend(
                        v.value(i)
                            .split(',')
                            .map(|s| s.trim().to_string())
                            .filter(|s| !s.is_empty()),
                    );
                }
            }
        }
        if all {
            return Ok(rows);
        }
        allowed.sort();
        allowed.dedup();
        allowed.truncate(MAX_RLS_VALUES);
        let ctx = data::context_with(&self.inner.engine, d.database(), &[("lh_rows", &rows)])
            .map_err(|e| fail(e.message))?;
        let mut bound = Bound::default();
        let column = data::quoted(&rls.column);
        let sql = if allowed.is_empty() {
            "SELECT * FROM lh_rows WHERE false".to_string()
        } else {
            let list: Vec<String> = allowed
                .into_iter()
                .map(|v| bound_value(&mut bound, v))
                .collect();
            format!(
                "SELECT * FROM lh_rows WHERE CAST({column} AS VARCHAR) IN ({})",
                list.join(", ")
            )
        };
        bound.sql = sql;
        data::run(&self.inner.engine, &ctx, bound)
            .await
            .map_err(|e| fail(e.message))
    }

    /// A visual's data for a viewer.
    pub async fn visual(
        &self,
        d: &Dashboard,
        visual: &str,
        sel: &Selection,
        viewer: Option<&Viewer>,
        links: &Links,
        table: &TableRequest,
    ) -> Result<VisualData> {
        let v = d
            .visual(visual)
            .ok_or_else(|| Error::NotFound(format!("visual {visual}")))?;
        let rows = self.rows(d, &v.dataset, sel, viewer).await?;
        data::visual(&self.inner.engine, d, v, &rows, sel, links, table).await
    }

    /// The rows behind a mark of a visual.
    pub async fn drill(
        &self,
        d: &Dashboard,
        visual: &str,
        sel: &Selection,
        viewer: Option<&Viewer>,
        x: Option<&str>,
        series: Option<&str>,
    ) -> Result<Rows> {
        let v = d
            .visual(visual)
            .ok_or_else(|| Error::NotFound(format!("visual {visual}")))?;
        let rows = self.rows(d, &v.dataset, sel, viewer).await?;
        data::drill_rows(&self.inner.engine, d, v, &rows, sel, x, series).await
    }

    /// A dropdown's choices: the distinct values of its field in the first
    /// dataset that has it.
    pub async fn choices(
        &self,
        d: &Dashboard,
        field: &str,
        viewer: Option<&Viewer>,
    ) -> Vec<String> {
        let sel = Selection {
            now_ms: now_ms(),
            ..Default::default()
        };
        for (name, ds) in &d.spec.datasets {
            if ds.cache != CacheMode::Spice {
                continue;
            }
            if let Ok(rows) = self.rows(d, name, &sel, viewer).await
                && rows.schema.field_with_name(field).is_ok()
            {
                return data::distinct(&rows, field, 500);
            }
        }
        Vec::new()
    }

    /// The state of the tables a dataset reads (their files' count, size
    /// and newest change): a change means new data.
    async fn sources_state(&self, d: &Dashboard, name: &str) -> Option<String> {
        let ds = &d.spec.datasets[name];
        let tables = source_tables(&ds.sql, d.database());
        if tables.is_empty() {
            return None;
        }
        let catalog = self.inner.engine.catalog();
        let store = self.inner.engine.storage().store();
        let mut parts = Vec::new();
        for (db, t) in tables {
            let Ok(table) = catalog.get_table(&db, &t).await else {
                continue;
            };
            let Some(location) = table
                .storage_descriptor
                .as_ref()
                .and_then(|sd| sd.location.as_deref())
                .and_then(|l| lakehose_catalog::Location::parse(l).ok())
            else {
                continue;
            };
            use futures::StreamExt;
            let mut listing = store.list(Some(&location.object_path()));
            let (mut n, mut size, mut newest) = (0usize, 0u64, 0i64);
            while let Some(Ok(meta)) = listing.next().await {
                n += 1;
                size += meta.size;
                newest = newest.max(meta.last_modified.timestamp_millis());
                if n >= MAX_SOURCE_FILES {
                    break;
                }
            }
            parts.push(format!("{db}.{t}:{n}:{size}:{newest}"));
        }
        Some(parts.join(","))
    }

    /// Runs what is due: scheduled refreshes, and refreshes of datasets
    /// whose sources changed. Called every second by the scheduler.
    pub async fn tick(&self, poll_sources: bool) {
        let now = now_ms();
        let dashboards: Vec<Arc<Dashboard>> = {
            self.reload();
            let specs = self.inner.specs.read().unwrap_or_else(|e| e.into_inner());
            specs
                .by_name
                .values()
                .filter_map(|(l, _)| match l {
                    Loaded::Ready(d) => Some(Arc::clone(d)),
                    Loaded::Broken(_) => None,
                })
                .collect()
        };
        for d in dashboards {
            for name in dataset_order(&d) {
                let ds = &d.spec.datasets[&name];
                if ds.cache != CacheMode::Spice {
                    continue;
                }
                let key = (d.name.clone(), name.clone());
                let mut due = false;
                if let Some(cron) = &ds.refresh
                    && let Ok(schedule) = lakehose_catalog::schedule::Schedule::unix(cron)
                {
                    let last = {
                        let mut runs = self
                            .inner
                            .last_run
                            .lock()
                            .unwrap_or_else(|e| e.into_inner());
                        *runs.entry(key.clone()).or_insert(now)
                    };
                    let last_dt = chrono::DateTime::from_timestamp_millis(last).unwrap_or_default();
                    due = schedule
                        .next_after(last_dt)
                        .is_some_and(|next| next.timestamp_millis() <= now);
                }
                if !due && poll_sources && ds.refresh_on_new_files {
                    let cached = self
                        .inner
                        .cache
                        .get(&d.name, &name)
                        .await
                        .and_then(|e| e.freshness.sources.clone());
                    let state = self.sources_state(&d, &name).await;
                    // No source table yet: nothing to refresh from.
                    due = state.as_deref().is_some_and(|s| !s.is_empty()) && state != cached;
                }
                if due {
                    self.inner
                        .last_run
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(key, now);
                    let _ = self.refresh(&d, &name, false).await;
                }
            }
        }
    }

    /// Runs [`tick`](Self::tick) every second; abort the task to stop it
    /// (a refresh cut short leaves the previous cache whole).
    pub fn spawn_scheduler(&self) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let mut last_poll = Instant::now() - SOURCE_POLL;
            loop {
                let poll = last_poll.elapsed() >= SOURCE_POLL;
                if poll {
                    last_poll = Instant::now();
                }
                this.tick(poll).await;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    }
}

fn bound_value(bound: &mut Bound, v: String) -> String {
    let name = format!("lh_r{}", bound.values.len());
    bound
        .values
        .insert(name.clone(), ScalarValue::Utf8(Some(v)));
    format!("${name}")
}

/// A dashboard's datasets, each after the one it builds on.
pub fn dataset_order(d: &Dashboard) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut left: Vec<&String> = d.spec.datasets.keys().collect();
    while !left.is_empty() {
        let before = left.len();
        left.retain(|name| {
            let ready = d.spec.datasets[*name]
                .from
                .as_ref()
                .is_none_or(|p| out.contains(p));
            if ready {
                out.push((*name).clone());
            }
            !ready
        });
        if left.len() == before {
            // A cycle (refused when the spec is loaded): stop.
            out.extend(left.into_iter().cloned());
            break;
        }
    }
    out
}

/// The `$name` placeholders of a dashboard's parameters `sql` uses.
fn uses_parameters(sql: &str, d: &Dashboard) -> Option<String> {
    let tokens = sqlparser::tokenizer::Tokenizer::new(&sqlparser::dialect::GenericDialect {}, sql)
        .tokenize()
        .ok()?;
    tokens.iter().find_map(|t| match t {
        sqlparser::tokenizer::Token::Placeholder(p) => {
            let name = p.trim_start_matches('$');
            d.spec
                .parameters
                .iter()
                .any(|q| q.name == name)
                .then(|| name.to_string())
        }
        _ => None,
    })
}

/// The catalog tables `sql` reads (`db.table`, or `table` in `database`).
fn source_tables(sql: &str, database: &str) -> Vec<(String, String)> {
    let Ok(statements) =
        sqlparser::parser::Parser::parse_sql(&sqlparser::dialect::GenericDialect {}, sql)
    else {
        return Vec::new();
    };
    let mut out: Vec<(String, String)> = statements
        .iter()
        .flat_map(|s| lakehose_query::sql_text::tables_read(s, database))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The rows of `rows` as one text table (for the CLI and CSV).
pub fn to_csv(rows: &Rows) -> String {
    let mut out = String::new();
    let names: Vec<String> = rows
        .schema
        .fields()
        .iter()
        .map(|f| csv_cell(f.name()))
        .collect();
    out.push_str(&names.join(","));
    out.push('\n');
    for b in rows.batches.iter() {
        let texts: Vec<Vec<String>> = b.columns().iter().map(data::column_texts).collect();
        for i in 0..b.num_rows() {
            let cells: Vec<String> = texts.iter().map(|c| csv_cell(&c[i])).collect();
            out.push_str(&cells.join(","));
            out.push('\n');
        }
    }
    out
}

/// A CSV cell: quoted when needed, and a leading `= + - @` neutralised so a
/// spreadsheet does not run it as a formula.
pub fn csv_cell(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@']) && text.parse::<f64>().is_err() {
        format!("'{text}")
    } else {
        text.to_string()
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_tables_are_found() {
        assert_eq!(
            source_tables(
                "SELECT * FROM curated.a JOIN b ON a.x = b.x WHERE y IN (SELECT y FROM raw.c)",
                "demo"
            ),
            vec![
                ("curated".to_string(), "a".to_string()),
                ("demo".to_string(), "b".to_string()),
                ("raw".to_string(), "c".to_string())
            ]
        );
    }

    #[test]
    fn csv_cells_are_quoted_and_formulas_neutralised() {
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_cell("=cmd|' /C calc'!A0"), "'=cmd|' /C calc'!A0");
        assert_eq!(csv_cell("-12.5"), "-12.5");
    }
}
