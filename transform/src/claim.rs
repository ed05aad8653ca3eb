//! Once per schedule across nodes: before a scheduled run, a node claims
//! that occurrence by creating `_lakehose/schedule/claims/<kind>/<name>/
//! <occurrence>.json` with a conditional write. Exactly one node creates
//! it; the others see it exists and leave the run to that node. A job is
//! claimed whole; a maintenance round table by table, so nodes split a
//! round's tables between them. Claims older than a day are deleted by
//! the node that makes the next one.

use chrono::{DateTime, Utc};
use futures::StreamExt;
use lakehose_catalog::Storage;
use object_store::ObjectStoreExt;
use object_store::path::Path as ObjectPath;

/// How long claims are kept.
const KEEP: chrono::Duration = chrono::Duration::days(1);

/// Most old claims one claim deletes (the rest go with later ones).
const PRUNE_AT_MOST: usize = 1000;

/// What is claimed: a job's run, or a maintenance round.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    /// A scheduled ETL job.
    Job,
    /// The maintenance schedule.
    Maintenance,
}

impl Kind {
    fn folder(self) -> &'static str {
        match self {
            Kind::Job => "jobs",
            Kind::Maintenance => "maintenance",
        }
    }
}

/// The folder name of `name`: itself when it is a plain name, else its
/// bytes in hex (no name can reach another folder).
fn folder_name(name: &str) -> String {
    let plain = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'));
    if plain {
        name.to_string()
    } else {
        name.bytes().map(|b| format!("{b:02x}")).collect()
    }
}

fn folder(storage: &Storage, kind: Kind, name: &str) -> ObjectPath {
    storage.system_path(&format!(
        "schedule/claims/{}/{}",
        kind.folder(),
        folder_name(name)
    ))
}

/// Claims the occurrence of `name`'s schedule at `at`: `true` when this
/// node is the one to run it. A storage failure claims nothing (the run is
/// skipped with a warning: it could not have written its results either).
pub(crate) async fn claim(storage: &Storage, kind: Kind, name: &str, at: DateTime<Utc>) -> bool {
    let dir = folder(storage, kind, name);
    let path = dir.clone().join(format!("{}.json", at.timestamp_millis()));
    let body = serde_json::json!({
        "occurrence": at.to_rfc3339(),
        "claimed": Utc::now().to_rfc3339(),
        "process": std::process::id(),
    });
    match storage
        .create_durable(&path, body.to_string().into_bytes().into())
        .await
    {
        Ok(true) => {
            prune(storage, &dir, &path).await;
            true
        }
        Ok(false) => {
            tracing::debug!(name, occurrence = %at, "another node runs this occurrence");
            false
        }
        Err(e) => {
            tracing::warn!(name, occurrence = %at, error = %e, "could not claim a scheduled run; skipped");
            false
        }
    }
}

/// Deletes claims of `dir` older than [`KEEP`] but `made` (best effort).
async fn prune(storage: &Storage, dir: &ObjectPath, made: &ObjectPath) {
    let cutoff = (Utc::now() - KEEP).timestamp_millis();
    let store = storage.store();
    let mut old = Vec::new();
    let mut listing = store.list(Some(dir));
    while let Some(Ok(meta)) = listing.next().await {
        let ms = meta
            .location
            .filename()
            .and_then(|f| f.strip_suffix(".json"))
            .and_then(|t| t.parse::<i64>().ok());
        if ms.is_some_and(|ms| ms < cutoff) && &meta.location != made {
            old.push(meta.location);
            if old.len() >= PRUNE_AT_MOST {
                break;
            }
        }
    }
    for path in old {
        let _ = store.delete(&path).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_claim_per_occurrence_and_old_claims_go() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::local(dir.path()).unwrap();
        let at = Utc::now();
        assert!(claim(&storage, Kind::Job, "daily", at).await);
        assert!(!claim(&storage, Kind::Job, "daily", at).await);
        assert!(claim(&storage, Kind::Maintenance, "daily", at).await);
        let later = at + chrono::Duration::minutes(5);
        assert!(claim(&storage, Kind::Job, "daily", later).await);
        // A claim two days old (a run caught up) stays until the next claim.
        let old = at - chrono::Duration::days(2);
        assert!(claim(&storage, Kind::Job, "daily", old).await);
        assert!(!claim(&storage, Kind::Job, "daily", old).await);
        let next = later + chrono::Duration::minutes(5);
        assert!(claim(&storage, Kind::Job, "daily", next).await);
        assert!(
            claim(&storage, Kind::Job, "daily", old).await,
            "the old claim was pruned"
        );
    }

    #[test]
    fn names_never_leave_their_folder() {
        assert_eq!(folder_name("daily_report"), "daily_report");
        assert_eq!(folder_name("../etc"), "2e2e2f657463");
        assert_eq!(folder_name(""), "");
    }
}
