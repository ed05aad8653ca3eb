//! Crawler definitions, runs and metrics: what the Glue crawler API
//! (`CreateCrawler`, `StartCrawler`, `GetCrawlerMetrics`, ...) manages, and
//! the schedule that starts crawlers inside `lakehose serve`.
//!
//! Definitions and run history persist under `_lakehose/crawlers/`. A run
//! executes [`super::crawl`] in the background; `StopCrawler` cancels it.
//! Schedules use Glue's `cron(min hour day-of-month month day-of-week
//! year)` syntax, in UTC.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::Utc;
use futures::StreamExt;
use object_store::ObjectStoreExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    CrawlOptions, CrawlerConfiguration, DeleteBehavior, NoProgress, UpdateBehavior, crawl,
    target_level,
};
use crate::catalog::{CatalogError, CatalogRef, normalize_name};
use crate::schedule::{Schedule, sleep_before};
use crate::storage::{Location, Storage};

/// A crawler as Glue describes it (persisted with its history).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CrawlerDefinition {
    /// Name.
    pub name: String,
    /// Role (kept, not used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Targets (`S3Targets`: `Path`, `Exclusions`).
    #[serde(default)]
    pub targets: Value,
    /// Database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_name: Option<String>,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `cron(...)` expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// Table prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_prefix: Option<String>,
    /// `{UpdateBehavior, DeleteBehavior}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_change_policy: Option<Value>,
    /// `{RecrawlBehavior}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recrawl_policy: Option<Value>,
    /// Configuration JSON string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configuration: Option<String>,
    /// Created, epoch seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_time: Option<f64>,
    /// Last change, epoch seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_updated: Option<f64>,
    /// Definition version.
    #[serde(default)]
    pub version: i64,
    /// The last run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_crawl: Option<Value>,
    /// Metrics of the last run and the run times so far.
    #[serde(default)]
    pub history: RunHistory,
}

/// Run metrics kept for `GetCrawlerMetrics`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunHistory {
    /// Tables created by the last run.
    pub tables_created: usize,
    /// Tables updated by the last run.
    pub tables_updated: usize,
    /// Tables deleted or deprecated by the last run.
    pub tables_deleted: usize,
    /// Seconds of the last runs (at most 50).
    pub runtimes: Vec<f64>,
}

fn now() -> f64 {
    Utc::now().timestamp_millis() as f64 / 1000.0
}

/// Errors of crawler management, mapped onto Glue's exceptions.
#[derive(Debug, thiserror::Error)]
pub enum CrawlerError {
    /// `EntityNotFoundException`, `AlreadyExistsException`,
    /// `InvalidInputException`, ...
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// `CrawlerRunningException`.
    #[error("Crawler with name {0} is already running")]
    Running(String),
    /// `CrawlerNotRunningException`.
    #[error("Crawler with name {0} is not running")]
    NotRunning(String),
}

struct Running {
    task: tokio::task::JoinHandle<()>,
    started: f64,
}

/// Crawlers of one warehouse.
#[derive(Clone)]
pub struct CrawlerService {
    storage: Storage,
    catalog: CatalogRef,
    running: Arc<Mutex<HashMap<String, Running>>>,
    /// Woken when a definition is saved or deleted, so the scheduler reads
    /// the definitions again.
    changed: Arc<tokio::sync::Notify>,
}

impl std::fmt::Debug for CrawlerService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CrawlerService").finish_non_exhaustive()
    }
}

impl CrawlerService {
    /// Crawlers over `storage`, writing to `catalog`.
    pub fn new(storage: Storage, catalog: CatalogRef) -> Self {
        Self {
            storage,
            catalog,
            running: Arc::default(),
            changed: Arc::default(),
        }
    }

    fn path(&self, name: &str) -> object_store::path::Path {
        self.storage.system_path(&format!("crawlers/{name}.json"))
    }

    async fn load(&self, name: &str) -> Result<CrawlerDefinition, CrawlerError> {
        let name = normalize_name("crawler", name)?;
        match self.storage.store().get(&self.path(&name)).await {
            Ok(r) => {
                let bytes = r.bytes().await.map_err(CatalogError::from)?;
                serde_json::from_slice(&bytes).map_err(|source| {
                    CrawlerError::Catalog(CatalogError::Corrupt {
                        path: self.path(&name).to_string(),
                        source,
                    })
                })
            }
            Err(object_store::Error::NotFound { .. }) => {
                Err(CatalogError::NotFound(format!("Crawler {name}")).into())
            }
            Err(e) => Err(CatalogError::from(e).into()),
        }
    }

    async fn save(&self, def: &CrawlerDefinition) -> Result<(), CrawlerError> {
        let bytes = serde_json::to_vec_pretty(def).unwrap_or_default();
        self.storage
            .put_durable(&self.path(&def.name), bytes.into())
            .await
            .map_err(CatalogError::from)?;
        self.changed.notify_one();
        Ok(())
    }

    /// Checks a definition's targets, policies and schedule.
    fn validate(def: &CrawlerDefinition) -> Result<(), CrawlerError> {
        let invalid = |m: String| CrawlerError::Catalog(CatalogError::InvalidInput(m));
        let targets = s3_targets(&def.targets).map_err(invalid)?;
        if targets.is_empty() {
            return Err(invalid(
                "Targets must name at least one S3Targets path".into(),
            ));
        }
        if let Some(s) = &def.schedule
            && !s.is_empty()
        {
            Schedule::glue(s).map_err(invalid)?;
        }
        let options = options(def).map_err(invalid)?;
        if let Some(level) = options.configuration.table_level {
            for (target, _) in &targets {
                let root = target_level(target);
                if level < root {
                    return Err(invalid(format!(
                        "Crawler configuration not valid: Grouping.TableLevelConfiguration {level} is above the include path {target} (level {root}; the bucket is level 1)"
                    )));
                }
            }
        }
        if def
            .targets
            .get("S3Targets")
            .and_then(Value::as_array)
            .is_some_and(|t| t.iter().any(|t| t.get("EventQueueArn").is_some()))
        {
            return Err(invalid(
                "S3Targets EventQueueArn (event-mode crawls) is not supported".into(),
            ));
        }
        Ok(())
    }

    /// `CreateCrawler`.
    pub async fn create(&self, mut def: CrawlerDefinition) -> Result<(), CrawlerError> {
        def.name = normalize_name("crawler", &def.name)?;
        Self::validate(&def)?;
        if self.load(&def.name).await.is_ok() {
            return Err(CatalogError::AlreadyExists(format!("Crawler {}", def.name)).into());
        }
        def.creation_time = Some(now());
        def.last_updated = def.creation_time;
        def.version = 1;
        def.last_crawl = None;
        def.history = RunHistory::default();
        let created = self
            .storage
            .create_durable(
                &self.path(&def.name),
                serde_json::to_vec_pretty(&def).unwrap_or_default().into(),
            )
            .await
            .map_err(CatalogError::from)?;
        if !created {
            return Err(CatalogError::AlreadyExists(format!("Crawler {}", def.name)).into());
        }
        Ok(())
    }

    /// `UpdateCrawler`: changes the given members.
    pub async fn update(&self, changes: CrawlerDefinition) -> Result<(), CrawlerError> {
        let mut def = self.load(&changes.name).await?;
        if self.is_running(&def.name) {
            return Err(CrawlerError::Running(def.name));
        }
        if !changes.targets.is_null() {
            def.targets = changes.targets;
        }
        macro_rules! take {
            ($($f:ident),*) => { $( if changes.$f.is_some() { def.$f = changes.$f; } )* };
        }
        take!(
            role,
            database_name,
            description,
            schedule,
            table_prefix,
            schema_change_policy,
            recrawl_policy,
            configuration
        );
        Self::validate(&def)?;
        def.version += 1;
        def.last_updated = Some(now());
        self.save(&def).await
    }

    /// `DeleteCrawler`.
    pub async fn delete(&self, name: &str) -> Result<(), CrawlerError> {
        let def = self.load(name).await?;
        if self.is_running(&def.name) {
            return Err(CrawlerError::Running(def.name));
        }
        self.storage
            .store()
            .delete(&self.path(&def.name))
            .await
            .map_err(CatalogError::from)?;
        Ok(())
    }

    fn is_running(&self, name: &str) -> bool {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running.retain(|_, r| !r.task.is_finished());
        running.contains_key(name)
    }

    /// `GetCrawler`: the definition with its `State` and last run.
    pub async fn get(&self, name: &str) -> Result<Value, CrawlerError> {
        let def = self.load(name).await?;
        Ok(self.describe(def))
    }

    fn describe(&self, def: CrawlerDefinition) -> Value {
        let running = {
            let mut r = self.running.lock().unwrap_or_else(|e| e.into_inner());
            r.retain(|_, r| !r.task.is_finished());
            r.get(&def.name).map(|r| r.started)
        };
        let mut v = serde_json::to_value(&def).unwrap_or_default();
        if let Some(obj) = v.as_object_mut() {
            obj.remove("History");
            obj.insert(
                "State".into(),
                (if running.is_some() {
                    "RUNNING"
                } else {
                    "READY"
                })
                .into(),
            );
            if let Some(started) = running {
                obj.insert(
                    "CrawlElapsedTime".into(),
                    (((now() - started) * 1000.0) as i64).into(),
                );
            }
            if let Some(s) = &def.schedule {
                obj.insert(
                    "Schedule".into(),
                    serde_json::json!({"ScheduleExpression": s, "State": "SCHEDULED"}),
                );
            }
        }
        v
    }

    /// Every crawler, sorted by name.
    pub async fn list(&self) -> Result<Vec<CrawlerDefinition>, CrawlerError> {
        let prefix = self.storage.system_path("crawlers");
        let mut names = Vec::new();
        let mut listing = self.storage.store().list(Some(&prefix));
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(CatalogError::from)?;
            if let Some(n) = meta
                .location
                .filename()
                .and_then(|f| f.strip_suffix(".json"))
            {
                names.push(n.to_string());
            }
        }
        names.sort();
        let mut out = Vec::new();
        for n in names {
            match self.load(&n).await {
                Ok(def) => out.push(def),
                // One unreadable definition must not hide the others.
                Err(CrawlerError::Catalog(CatalogError::Corrupt { path, source })) => {
                    tracing::error!(file = %path, error = %source, "A crawler definition file is corrupt or truncated; that crawler is skipped.");
                }
                // Deleted between the listing and the read.
                Err(CrawlerError::Catalog(CatalogError::NotFound(_))) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// `GetCrawlers`: described crawlers.
    pub(crate) async fn describe_all(&self) -> Result<Vec<Value>, CrawlerError> {
        Ok(self
            .list()
            .await?
            .into_iter()
            .map(|d| self.describe(d))
            .collect())
    }

    /// `GetCrawlerMetrics` for one crawler.
    pub async fn metrics(&self, name: &str) -> Result<Value, CrawlerError> {
        let def = self.load(name).await?;
        let h = &def.history;
        let mut sorted = h.runtimes.clone();
        sorted.sort_by(f64::total_cmp);
        let median = sorted.get(sorted.len() / 2).copied().unwrap_or(0.0);
        Ok(serde_json::json!({
            "CrawlerName": def.name,
            "TimeLeftSeconds": 0.0,
            "StillEstimating": false,
            "LastRuntimeSeconds": h.runtimes.last().copied().unwrap_or(0.0),
            "MedianRuntimeSeconds": median,
            "TablesCreated": h.tables_created,
            "TablesUpdated": h.tables_updated,
            "TablesDeleted": h.tables_deleted,
        }))
    }

    /// `StartCrawler`: runs it in the background.
    pub async fn start(&self, name: &str) -> Result<(), CrawlerError> {
        let def = self.load(name).await?;
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running.retain(|_, r| !r.task.is_finished());
        if running.contains_key(&def.name) {
            return Err(CrawlerError::Running(def.name));
        }
        let service = self.clone();
        let name = def.name.clone();
        let task = tokio::spawn(async move { service.run(def).await });
        running.insert(
            name,
            Running {
                task,
                started: now(),
            },
        );
        Ok(())
    }

    /// `StopCrawler`: cancels a run.
    pub async fn stop(&self, name: &str) -> Result<(), CrawlerError> {
        let def = self.load(name).await?;
        let run = {
            let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
            running.retain(|_, r| !r.task.is_finished());
            running.remove(&def.name)
        };
        let Some(run) = run else {
            return Err(CrawlerError::NotRunning(def.name));
        };
        run.task.abort();
        let _ = run.task.await;
        let mut def = self.load(&def.name).await?;
        def.last_crawl = Some(serde_json::json!({
            "Status": "CANCELLED",
            "StartTime": run.started,
        }));
        self.save(&def).await
    }

    async fn run(&self, def: CrawlerDefinition) {
        let started = now();
        let clock = Instant::now();
        let result = match (s3_targets(&def.targets), options(&def)) {
            (Ok(targets), Ok(options)) => {
                let locations: Vec<Location> = targets.iter().map(|(l, _)| l.clone()).collect();
                let mut options = options;
                options.exclusions = targets.into_iter().flat_map(|(_, e)| e).collect();
                // S3Targets SampleSize: files read per leaf folder.
                if let Some(n) = def
                    .targets
                    .get("S3Targets")
                    .and_then(Value::as_array)
                    .and_then(|t| t.iter().filter_map(|t| t.get("SampleSize")?.as_u64()).max())
                {
                    options.sample_files = n.clamp(1, 249) as usize;
                }
                // A panic while crawling fails this run with its reason.
                crate::supervise::catch_panic(
                    "crawl",
                    crawl(
                        &self.storage,
                        self.catalog.as_ref(),
                        &locations,
                        &options,
                        &NoProgress,
                    ),
                )
                .await
                .map_err(|panic| format!("internal error: the crawl panicked ({panic})"))
                .and_then(|r| r.map_err(|e| e.to_string()))
            }
            (Err(e), _) | (_, Err(e)) => Err(e),
        };
        let seconds = clock.elapsed().as_secs_f64();
        let Ok(mut current) = self.load(&def.name).await else {
            return;
        };
        match &result {
            Ok(summary) => {
                current.history.tables_created = summary.tables_created.len();
                current.history.tables_updated = summary.tables_updated.len();
                current.history.tables_deleted = summary.tables_deleted.len();
                current.last_crawl = Some(serde_json::json!({
                    "Status": "SUCCEEDED",
                    "StartTime": started,
                    "MessagePrefix": format!("{} files, {} skipped", summary.files, summary.skipped.len()),
                }));
            }
            Err(e) => {
                tracing::warn!(crawler = %def.name, error = %e, "Crawler run failed.");
                current.last_crawl = Some(serde_json::json!({
                    "Status": "FAILED",
                    "ErrorMessage": e,
                    "StartTime": started,
                }));
            }
        }
        current.history.runtimes.push(seconds);
        if current.history.runtimes.len() > 50 {
            current.history.runtimes.remove(0);
        }
        if let Err(e) = self.save(&current).await {
            tracing::warn!(crawler = %def.name, error = %e, "Could not save the crawler's run.");
        }
    }

    /// Starts scheduled crawlers when their time comes; runs until the
    /// returned task is dropped or aborted.
    pub fn spawn_scheduler(&self) -> tokio::task::JoinHandle<()> {
        let service = self.clone();
        // A panic in a round is logged and the scheduler starts again.
        crate::supervise::spawn_supervised("crawler scheduler", move || {
            let service = service.clone();
            scheduler_loop(service)
        })
    }
}

/// Starts the crawlers whose schedule fired: reads the definitions,
/// sleeps until the earliest next firing (or until a definition changes),
/// then starts those due since it last looked.
async fn scheduler_loop(service: CrawlerService) {
    let mut last = Utc::now();
    loop {
        let schedules: Vec<(String, Schedule)> = match service.list().await {
            Ok(crawlers) => crawlers.iter().filter_map(schedule_of).collect(),
            Err(e) => {
                tracing::warn!(error = %e, "Crawler schedules could not be read.");
                Vec::new()
            }
        };
        let pause = sleep_before(
            last,
            schedules.iter().filter_map(|(_, s)| s.next_after(last)),
        );
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = service.changed.notified() => {}
        }
        let now = Utc::now();
        for (name, schedule) in &schedules {
            if schedule.fires_between(last, now) {
                match service.start(name).await {
                    Ok(()) => tracing::info!(crawler = %name, "Scheduled crawl started."),
                    Err(CrawlerError::Running(_)) => {}
                    Err(e) => {
                        tracing::warn!(crawler = %name, error = %e, "Scheduled crawl could not start.")
                    }
                }
            }
        }
        last = now;
    }
}

/// A crawler's name and schedule, when it has a usable one.
fn schedule_of(def: &CrawlerDefinition) -> Option<(String, Schedule)> {
    let text = def.schedule.as_deref().filter(|s| !s.is_empty())?;
    Some((def.name.clone(), Schedule::glue(text).ok()?))
}

/// `Targets.S3Targets` as locations with their exclusions.
fn s3_targets(targets: &Value) -> Result<Vec<(Location, Vec<String>)>, String> {
    let mut out = Vec::new();
    for t in targets
        .get("S3Targets")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let path = t
            .get("Path")
            .and_then(Value::as_str)
            .ok_or("each S3Targets entry needs a Path")?;
        let location = Location::parse(path).map_err(|e| e.to_string())?;
        let exclusions = t
            .get("Exclusions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|e| e.as_str().map(str::to_string))
            .collect();
        out.push((location, exclusions));
    }
    if [
        "JdbcTargets",
        "DynamoDBTargets",
        "MongoDBTargets",
        "CatalogTargets",
        "DeltaTargets",
        "IcebergTargets",
        "HudiTargets",
    ]
    .iter()
    .any(|k| {
        targets
            .get(k)
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty())
    }) {
        return Err("only S3Targets are supported".into());
    }
    Ok(out)
}

fn options(def: &CrawlerDefinition) -> Result<CrawlOptions, String> {
    let db = def
        .database_name
        .clone()
        .filter(|d| !d.is_empty())
        .ok_or("DatabaseName is required")?;
    let mut o = CrawlOptions::new(&def.name, &db);
    o.table_prefix = def.table_prefix.clone().unwrap_or_default();
    if let Some(p) = &def.schema_change_policy {
        o.update = match p.get("UpdateBehavior").and_then(Value::as_str) {
            None | Some("UPDATE_IN_DATABASE") => UpdateBehavior::UpdateInDatabase,
            Some("LOG") => UpdateBehavior::Log,
            Some(other) => {
                return Err(format!(
                    "UpdateBehavior {other:?} is not UPDATE_IN_DATABASE or LOG"
                ));
            }
        };
        o.delete = match p.get("DeleteBehavior").and_then(Value::as_str) {
            None | Some("DEPRECATE_IN_DATABASE") => DeleteBehavior::DeprecateInDatabase,
            Some("DELETE_FROM_DATABASE") => DeleteBehavior::DeleteFromDatabase,
            Some("LOG") => DeleteBehavior::Log,
            Some(other) => {
                return Err(format!(
                    "DeleteBehavior {other:?} is not DELETE_FROM_DATABASE, DEPRECATE_IN_DATABASE or LOG"
                ));
            }
        };
    }
    if let Some(text) = def
        .configuration
        .as_deref()
        .filter(|c| !c.trim().is_empty())
    {
        o.configuration = parse_configuration(text)?;
    }
    if let Some(r) = &def.recrawl_policy {
        match r.get("RecrawlBehavior").and_then(Value::as_str) {
            None | Some("CRAWL_EVERYTHING") => {}
            Some(other) => {
                return Err(format!(
                    "RecrawlBehavior {other:?} is not supported yet (CRAWL_EVERYTHING is)"
                ));
            }
        }
    }
    Ok(o)
}

/// Reads a crawler's `Configuration` document (Glue's version 1.0 options
/// for S3 crawlers); an unknown option or value is refused, naming it.
pub(crate) fn parse_configuration(text: &str) -> Result<CrawlerConfiguration, String> {
    let bad = |m: String| format!("Crawler configuration not valid: {m}");
    let v: Value = serde_json::from_str(text)
        .map_err(|e| bad(format!("the Configuration is not valid JSON: {e}")))?;
    let Some(top) = v.as_object() else {
        return Err(bad("the Configuration must be a JSON object".into()));
    };
    let object = |v: &Value, at: &str| -> Result<serde_json::Map<String, Value>, String> {
        v.as_object()
            .cloned()
            .ok_or_else(|| bad(format!("{at} must be an object")))
    };
    let only = |o: &serde_json::Map<String, Value>, at: &str, known: &[&str]| match o
        .keys()
        .find(|k| !known.contains(&k.as_str()))
    {
        Some(k) => Err(bad(format!(
            "unknown option {at}{k}; the options are {}",
            known
                .iter()
                .map(|n| format!("{at}{n}"))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
        None => Ok(()),
    };
    only(
        top,
        "",
        &[
            "Version",
            "CrawlerOutput",
            "Grouping",
            "CreatePartitionIndex",
        ],
    )?;
    match top.get("Version") {
        Some(Value::Number(n)) if n.as_f64() == Some(1.0) => {}
        Some(other) => return Err(bad(format!("Version must be 1.0, got {other}"))),
        None => return Err(bad("Version (1.0) is required".into())),
    }
    let mut config = CrawlerConfiguration::default();
    let behavior = |o: &serde_json::Map<String, Value>, at: &str, allowed: &str| match o
        .get("AddOrUpdateBehavior")
    {
        None => Ok(false),
        Some(Value::String(s)) if s == allowed => Ok(true),
        Some(other) => Err(bad(format!(
            "{at}.AddOrUpdateBehavior must be \"{allowed}\", got {other}"
        ))),
    };
    if let Some(output) = top.get("CrawlerOutput") {
        let output = object(output, "CrawlerOutput")?;
        only(&output, "CrawlerOutput.", &["Partitions", "Tables"])?;
        if let Some(p) = output.get("Partitions") {
            let p = object(p, "CrawlerOutput.Partitions")?;
            only(&p, "CrawlerOutput.Partitions.", &["AddOrUpdateBehavior"])?;
            config.inherit_from_table =
                behavior(&p, "CrawlerOutput.Partitions", "InheritFromTable")?;
        }
        if let Some(t) = output.get("Tables") {
            let t = object(t, "CrawlerOutput.Tables")?;
            only(
                &t,
                "CrawlerOutput.Tables.",
                &["AddOrUpdateBehavior", "TableThreshold"],
            )?;
            config.merge_new_columns = behavior(&t, "CrawlerOutput.Tables", "MergeNewColumns")?;
            if let Some(n) = t.get("TableThreshold") {
                let n = n
                    .as_u64()
                    .filter(|n| (1..=MAX_TABLE_THRESHOLD).contains(n))
                    .ok_or_else(|| {
                        bad(format!(
                            "CrawlerOutput.Tables.TableThreshold must be a whole number from 1 to {MAX_TABLE_THRESHOLD}, got {n}"
                        ))
                    })?;
                config.table_threshold = Some(n as usize);
            }
        }
    }
    if let Some(grouping) = top.get("Grouping") {
        let grouping = object(grouping, "Grouping")?;
        only(
            &grouping,
            "Grouping.",
            &["TableGroupingPolicy", "TableLevelConfiguration"],
        )?;
        match grouping.get("TableGroupingPolicy") {
            None => {}
            Some(Value::String(s)) if s == "CombineCompatibleSchemas" => {
                config.combine_compatible_schemas = true;
            }
            Some(other) => {
                return Err(bad(format!(
                    "Grouping.TableGroupingPolicy must be \"CombineCompatibleSchemas\", got {other}"
                )));
            }
        }
        if let Some(level) = grouping.get("TableLevelConfiguration") {
            let level = level
                .as_u64()
                .filter(|n| (1..=MAX_TABLE_LEVEL).contains(n))
                .ok_or_else(|| {
                    bad(format!(
                        "Grouping.TableLevelConfiguration must be a whole number from 1 to {MAX_TABLE_LEVEL}, got {level}"
                    ))
                })?;
            config.table_level = Some(level as usize);
        }
    }
    config.create_partition_index = match top.get("CreatePartitionIndex") {
        None => true,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(bad(format!(
                "CreatePartitionIndex must be true or false, got {other}"
            )));
        }
    };
    Ok(config)
}

/// The deepest `Grouping.TableLevelConfiguration` accepted.
const MAX_TABLE_LEVEL: u64 = 64;
/// The largest `CrawlerOutput.Tables.TableThreshold` accepted.
const MAX_TABLE_THRESHOLD: u64 = 100_000;

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn crawler_configurations() {
        let c = parse_configuration(
            r#"{"Version":1.0,"CrawlerOutput":{"Partitions":{"AddOrUpdateBehavior":"InheritFromTable"},"Tables":{"AddOrUpdateBehavior":"MergeNewColumns","TableThreshold":5}},"Grouping":{"TableGroupingPolicy":"CombineCompatibleSchemas","TableLevelConfiguration":3},"CreatePartitionIndex":false}"#,
        )
        .unwrap();
        assert_eq!(
            c,
            CrawlerConfiguration {
                merge_new_columns: true,
                inherit_from_table: true,
                combine_compatible_schemas: true,
                table_level: Some(3),
                table_threshold: Some(5),
                create_partition_index: false,
            }
        );
        let d = parse_configuration(r#"{"Version": 1}"#).unwrap();
        assert!(d.create_partition_index && !d.merge_new_columns && d.table_level.is_none());
        for (bad, says) in [
            (r#"{"Version":1.0,"Nope":1}"#, "unknown option Nope"),
            (
                r#"{"Version":1.0,"CrawlerOutput":{"Tables":{"X":1}}}"#,
                "CrawlerOutput.Tables.X",
            ),
            (
                r#"{"Version":1.0,"CrawlerOutput":{"Partitions":{"AddOrUpdateBehavior":"Other"}}}"#,
                "InheritFromTable",
            ),
            (
                r#"{"Version":1.0,"Grouping":{"TableLevelConfiguration":0}}"#,
                "TableLevelConfiguration",
            ),
            (r#"{"Version":2.0}"#, "Version must be 1.0"),
            (
                r#"{"CreatePartitionIndex":true}"#,
                "Version (1.0) is required",
            ),
            (
                r#"{"Version":1.0,"CreatePartitionIndex":"yes"}"#,
                "true or false",
            ),
            ("[1]", "JSON object"),
            ("{", "not valid JSON"),
        ] {
            let err = parse_configuration(bad).unwrap_err();
            assert!(err.starts_with("Crawler configuration not valid"), "{err}");
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn crawlers_with_a_schedule_are_scheduled() {
        let def = |schedule: Option<&str>| CrawlerDefinition {
            name: "c".into(),
            schedule: schedule.map(str::to_string),
            ..Default::default()
        };
        let (name, schedule) = schedule_of(&def(Some("cron(0/5 * * * ? *)"))).unwrap();
        assert_eq!(name, "c");
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 10, 4, 59).unwrap();
        assert!(schedule.fires_between(t, t + chrono::Duration::seconds(2)));
        assert!(schedule_of(&def(None)).is_none());
        assert!(schedule_of(&def(Some(""))).is_none());
    }
}
