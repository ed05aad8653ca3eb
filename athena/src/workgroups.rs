//! Workgroups: `CreateWorkGroup`, `GetWorkGroup`, `ListWorkGroups`,
//! `UpdateWorkGroup`, `DeleteWorkGroup`. `primary` always exists and cannot
//! be deleted. Each workgroup is persisted as
//! `_lakehose/athena/workgroups/<name>.json`.
//!
//! lakehose does not encrypt result files, so an `EncryptionConfiguration`
//! is refused rather than recorded and ignored.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use lakehose_catalog::Location;

use crate::error::ApiError;
use crate::input::{self, length, parse, required};
use crate::{AthenaApi, now_ms, seconds};

/// The default workgroup.
pub const PRIMARY: &str = "primary";
/// The one engine lakehose has, in Athena's spelling.
pub const ENGINE_VERSION: &str = "Athena engine version 3";
/// Athena's minimum data-usage control.
pub const MIN_BYTES_SCANNED_CUTOFF: i64 = 10_000_000;
/// Athena's limit of workgroups per Region.
pub const MAX_WORKGROUPS: usize = 1000;

/// Where and how results are written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ResultConfiguration {
    /// `s3://bucket/prefix/` for result files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_location: Option<String>,
    /// The account expected to own the output bucket (recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_bucket_owner: Option<String>,
    /// The canned ACL of result files (recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acl_configuration: Option<AclConfiguration>,
}

/// `AclConfiguration{S3AclOption}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct AclConfiguration {
    /// `BUCKET_OWNER_FULL_CONTROL`.
    #[serde(
        rename = "S3AclOption",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub s3_acl_option: Option<String>,
}

/// `EngineVersion{SelectedEngineVersion, EffectiveEngineVersion}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct EngineVersion {
    /// `AUTO` or `Athena engine version 3`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selected_engine_version: Option<String>,
    /// Always `Athena engine version 3` (read-only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_engine_version: Option<String>,
}

/// A workgroup's settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct WorkGroupConfiguration {
    /// Default (or enforced) result configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_configuration: Option<ResultConfiguration>,
    /// Whether the workgroup's settings override the client's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enforce_work_group_configuration: Option<bool>,
    /// Recorded; lakehose publishes no CloudWatch metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish_cloud_watch_metrics_enabled: Option<bool>,
    /// Fail queries that would scan more bytes than this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_scanned_cutoff_per_query: Option<i64>,
    /// Recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requester_pays_enabled: Option<bool>,
    /// Engine version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_version: Option<EngineVersion>,
}

/// A tag.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Tag {
    /// Key (1–128).
    #[serde(default)]
    pub key: Option<String>,
    /// Value (0–256).
    #[serde(default)]
    pub value: Option<String>,
}

/// A workgroup as persisted and returned by GetWorkGroup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WorkGroup {
    /// Name.
    pub name: String,
    /// `ENABLED` or `DISABLED`.
    pub state: String,
    /// Settings.
    pub configuration: WorkGroupConfiguration,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Creation time, epoch milliseconds.
    pub creation_time_ms: i64,
    /// Tags given at creation (kept, not served: lakehose has no tagging
    /// API).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
}

impl WorkGroup {
    /// A new enabled workgroup.
    pub fn new(name: &str, configuration: WorkGroupConfiguration) -> Self {
        Self {
            name: name.to_string(),
            state: "ENABLED".into(),
            configuration,
            description: None,
            creation_time_ms: now_ms(),
            tags: Vec::new(),
        }
    }

    /// The default `primary` workgroup.
    pub fn primary() -> Self {
        // Like Athena's primary workgroup, it does not override clients.
        let configuration = WorkGroupConfiguration {
            enforce_work_group_configuration: Some(false),
            ..Default::default()
        };
        let mut wg = Self::new(PRIMARY, normalized(configuration));
        wg.description = Some("The default workgroup".into());
        wg
    }

    /// Whether queries may run in it.
    pub fn enabled(&self) -> bool {
        self.state == "ENABLED"
    }

    /// The output location it sets, if any.
    pub fn output_location(&self) -> Option<&str> {
        self.configuration
            .result_configuration
            .as_ref()
            .and_then(|r| r.output_location.as_deref())
    }

    /// Whether it overrides client-side settings.
    pub fn enforced(&self) -> bool {
        self.configuration
            .enforce_work_group_configuration
            .unwrap_or(true)
    }

    /// Its data usage control.
    pub fn bytes_scanned_cutoff(&self) -> Option<u64> {
        self.configuration
            .bytes_scanned_cutoff_per_query
            .and_then(|v| u64::try_from(v).ok())
    }

    /// The selected engine version.
    pub fn selected_engine_version(&self) -> String {
        self.configuration
            .engine_version
            .as_ref()
            .and_then(|e| e.selected_engine_version.clone())
            .unwrap_or_else(|| "AUTO".into())
    }

    fn wire(&self) -> Value {
        json!({
            "Name": self.name,
            "State": self.state,
            "Configuration": self.configuration,
            "Description": self.description,
            "CreationTime": seconds(self.creation_time_ms),
        })
    }

    fn summary(&self) -> Value {
        json!({
            "Name": self.name,
            "State": self.state,
            "Description": self.description,
            "CreationTime": seconds(self.creation_time_ms),
            "EngineVersion": self.configuration.engine_version,
        })
    }
}

/// Fills the defaults Athena reports for a new workgroup
/// (`EnforceWorkGroupConfiguration` true,
/// `PublishCloudWatchMetricsEnabled` true, `RequesterPaysEnabled` false, the
/// engine version).
fn normalized(mut c: WorkGroupConfiguration) -> WorkGroupConfiguration {
    c.enforce_work_group_configuration.get_or_insert(true);
    c.publish_cloud_watch_metrics_enabled.get_or_insert(true);
    c.requester_pays_enabled.get_or_insert(false);
    let engine = c.engine_version.get_or_insert_with(EngineVersion::default);
    engine
        .selected_engine_version
        .get_or_insert_with(|| "AUTO".into());
    engine.effective_engine_version = Some(ENGINE_VERSION.into());
    c
}

/// Checks a workgroup name: 1–128 of `[a-zA-Z0-9._-]`.
pub fn validate_name(name: &str, member: &str) -> Result<(), ApiError> {
    length(name, member, 1, 128)?;
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        || name == "."
        || name == ".."
    {
        return Err(ApiError::invalid(format!(
            "{member} {name:?} may only contain letters, digits, '.', '_' and '-'"
        )));
    }
    Ok(())
}

/// Checks an output location: an `s3://bucket/prefix` URL of at most 1024
/// characters.
pub fn validate_output_location(location: &str, member: &str) -> Result<(), ApiError> {
    length(location, member, 1, 1024)?;
    Location::parse(location).map_err(|e| ApiError::invalid(format!("{member}: {e}")))?;
    Ok(())
}

fn validate_result_configuration(r: &ResultConfiguration, member: &str) -> Result<(), ApiError> {
    if let Some(loc) = &r.output_location {
        validate_output_location(loc, &format!("{member}.OutputLocation"))?;
    }
    if let Some(owner) = &r.expected_bucket_owner {
        length(owner, &format!("{member}.ExpectedBucketOwner"), 1, 128)?;
    }
    if let Some(acl) = &r.acl_configuration {
        match acl.s3_acl_option.as_deref() {
            Some("BUCKET_OWNER_FULL_CONTROL") => {}
            other => {
                return Err(ApiError::invalid(format!(
                    "{member}.AclConfiguration.S3AclOption must be BUCKET_OWNER_FULL_CONTROL, got {other:?}"
                )));
            }
        }
    }
    Ok(())
}

fn validate_cutoff(v: i64, member: &str) -> Result<(), ApiError> {
    if v < MIN_BYTES_SCANNED_CUTOFF {
        return Err(ApiError::invalid(format!(
            "{member} must be at least {MIN_BYTES_SCANNED_CUTOFF}, got {v}"
        )));
    }
    Ok(())
}

fn validate_engine(e: &EngineVersion, member: &str) -> Result<(), ApiError> {
    match e.selected_engine_version.as_deref() {
        None | Some("AUTO") | Some(ENGINE_VERSION) => Ok(()),
        Some(other) => Err(ApiError::invalid(format!(
            "{member}.SelectedEngineVersion {other:?} is not available; lakehose runs {ENGINE_VERSION:?} (or say AUTO)"
        ))),
    }
}

fn validate_configuration(c: &WorkGroupConfiguration) -> Result<(), ApiError> {
    if let Some(r) = &c.result_configuration {
        validate_result_configuration(r, "Configuration.ResultConfiguration")?;
    }
    if let Some(v) = c.bytes_scanned_cutoff_per_query {
        validate_cutoff(v, "Configuration.BytesScannedCutoffPerQuery")?;
    }
    if let Some(e) = &c.engine_version {
        validate_engine(e, "Configuration.EngineVersion")?;
    }
    Ok(())
}

fn validate_description(d: Option<&str>) -> Result<(), ApiError> {
    if let Some(d) = d {
        length(d, "Description", 0, 1024)?;
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct CreateInput {
    name: Option<String>,
    configuration: Option<WorkGroupConfiguration>,
    description: Option<String>,
    tags: Option<Vec<Tag>>,
}

pub(super) async fn create(api: &AthenaApi, body: &[u8]) -> Result<Value, ApiError> {
    let input: CreateInput = parse(body)?;
    let name = required(input.name, "Name")?;
    validate_name(&name, "Name")?;
    let configuration = input.configuration.unwrap_or_default();
    validate_configuration(&configuration)?;
    validate_description(input.description.as_deref())?;
    let tags = input.tags.unwrap_or_default();
    if tags.len() > 50 {
        return Err(ApiError::invalid("Tags may hold at most 50 tags"));
    }
    for tag in &tags {
        length(tag.key.as_deref().unwrap_or(""), "Tags.Key", 1, 128)?;
        length(tag.value.as_deref().unwrap_or(""), "Tags.Value", 0, 256)?;
    }
    let mut wg = WorkGroup::new(&name, normalized(configuration));
    wg.description = input.description;
    wg.tags = tags;
    {
        let mut state = api.state();
        if state.workgroups.contains_key(&name) {
            return Err(ApiError::invalid(format!(
                "WorkGroup {name} is already created"
            )));
        }
        if state.workgroups.len() >= MAX_WORKGROUPS {
            return Err(ApiError::invalid(format!(
                "the limit of {MAX_WORKGROUPS} workgroups is reached"
            )));
        }
        state.workgroups.insert(name.clone(), wg);
    }
    api.persist_workgroup(&name).await?;
    Ok(json!({}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct NameInput {
    work_group: Option<String>,
    recursive_delete_option: Option<bool>,
}

fn not_found(name: &str) -> ApiError {
    ApiError::invalid(format!("WorkGroup {name} is not found."))
}

pub(super) async fn get(api: &AthenaApi, body: &[u8]) -> Result<Value, ApiError> {
    let input: NameInput = parse(body)?;
    let name = required(input.work_group, "WorkGroup")?;
    validate_name(&name, "WorkGroup")?;
    let wg = api.workgroup(&name)?;
    Ok(json!({ "WorkGroup": wg.wire() }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct ListInput {
    next_token: Option<String>,
    max_results: Option<i64>,
}

pub(super) async fn list(api: &AthenaApi, body: &[u8]) -> Result<Value, ApiError> {
    let input: ListInput = parse(body)?;
    let max = input::max_results(input.max_results, 1, 50, 50)?;
    let token = input::next_token(input.next_token.as_deref())?;
    let all: Vec<WorkGroup> = api.state().workgroups.values().cloned().collect();
    let (page, next) = input::page_by_name(all, |w| &w.name, token, max);
    let summaries: Vec<Value> = page.iter().map(WorkGroup::summary).collect();
    Ok(json!({ "WorkGroups": summaries, "NextToken": next }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct ResultConfigurationUpdates {
    output_location: Option<String>,
    remove_output_location: Option<bool>,
    expected_bucket_owner: Option<String>,
    remove_expected_bucket_owner: Option<bool>,
    acl_configuration: Option<AclConfiguration>,
    remove_acl_configuration: Option<bool>,
    remove_encryption_configuration: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct ConfigurationUpdates {
    enforce_work_group_configuration: Option<bool>,
    result_configuration_updates: Option<ResultConfigurationUpdates>,
    publish_cloud_watch_metrics_enabled: Option<bool>,
    bytes_scanned_cutoff_per_query: Option<i64>,
    remove_bytes_scanned_cutoff_per_query: Option<bool>,
    requester_pays_enabled: Option<bool>,
    engine_version: Option<EngineVersion>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct UpdateInput {
    work_group: Option<String>,
    description: Option<String>,
    configuration_updates: Option<ConfigurationUpdates>,
    state: Option<String>,
}

pub(super) async fn update(api: &AthenaApi, body: &[u8]) -> Result<Value, ApiError> {
    let input: UpdateInput = parse(body)?;
    let name = required(input.work_group, "WorkGroup")?;
    validate_name(&name, "WorkGroup")?;
    validate_description(input.description.as_deref())?;
    if let Some(s) = &input.state
        && s != "ENABLED"
        && s != "DISABLED"
    {
        return Err(ApiError::invalid(format!(
            "State must be ENABLED or DISABLED, got {s:?}"
        )));
    }
    let updates = input.configuration_updates;
    if let Some(u) = &updates {
        if let Some(v) = u.bytes_scanned_cutoff_per_query {
            validate_cutoff(v, "ConfigurationUpdates.BytesScannedCutoffPerQuery")?;
        }
        if let Some(e) = &u.engine_version {
            validate_engine(e, "ConfigurationUpdates.EngineVersion")?;
        }
        if let Some(r) = &u.result_configuration_updates {
            let as_config = ResultConfiguration {
                output_location: r.output_location.clone(),
                expected_bucket_owner: r.expected_bucket_owner.clone(),
                acl_configuration: r.acl_configuration.clone(),
            };
            validate_result_configuration(
                &as_config,
                "ConfigurationUpdates.ResultConfigurationUpdates",
            )?;
        }
    }
    {
        let mut state = api.state();
        let wg = state
            .workgroups
            .get_mut(&name)
            .ok_or_else(|| not_found(&name))?;
        if let Some(d) = input.description {
            wg.description = Some(d);
        }
        if let Some(s) = input.state {
            wg.state = s;
        }
        if let Some(u) = updates {
            let c = &mut wg.configuration;
            if let Some(v) = u.enforce_work_group_configuration {
                c.enforce_work_group_configuration = Some(v);
            }
            if let Some(v) = u.publish_cloud_watch_metrics_enabled {
                c.publish_cloud_watch_metrics_enabled = Some(v);
            }
            if let Some(v) = u.requester_pays_enabled {
                c.requester_pays_enabled = Some(v);
            }
            if u.remove_bytes_scanned_cutoff_per_query == Some(true) {
                c.bytes_scanned_cutoff_per_query = None;
            }
            if let Some(v) = u.bytes_scanned_cutoff_per_query {
                c.bytes_scanned_cutoff_per_query = Some(v);
            }
            if let Some(e) = u.engine_version {
                c.engine_version = Some(e);
            }
            if let Some(r) = u.result_configuration_updates {
                let rc = c.result_configuration.get_or_insert_with(Default::default);
                if r.remove_output_location == Some(true) {
                    rc.output_location = None;
                }
                if let Some(v) = r.output_location {
                    rc.output_location = Some(v);
                }
                if r.remove_expected_bucket_owner == Some(true) {
                    rc.expected_bucket_owner = None;
                }
                if let Some(v) = r.expected_bucket_owner {
                    rc.expected_bucket_owner = Some(v);
                }
                if r.remove_acl_configuration == Some(true) {
                    rc.acl_configuration = None;
                }
                if let Some(v) = r.acl_configuration {
                    rc.acl_configuration = Some(v);
                }
                // Nothing to remove: lakehose never records encryption.
                let _ = r.remove_encryption_configuration;
                if *rc == ResultConfiguration::default() {
                    c.result_configuration = None;
                }
            }
            *c = normalized(std::mem::take(c));
        }
    }
    api.persist_workgroup(&name).await?;
    Ok(json!({}))
}

pub(super) async fn delete(api: &AthenaApi, body: &[u8]) -> Result<Value, ApiError> {
    let input: NameInput = parse(body)?;
    let name = required(input.work_group, "WorkGroup")?;
    validate_name(&name, "WorkGroup")?;
    // Named queries and prepared statements do not exist in lakehose, so
    // there is nothing for RecursiveDeleteOption to delete.
    let _ = input.recursive_delete_option;
    if name == PRIMARY {
        return Err(ApiError::invalid("The primary workgroup cannot be deleted"));
    }
    if api.state().workgroups.remove(&name).is_none() {
        return Err(not_found(&name));
    }
    api.persist_workgroup(&name).await?;
    Ok(json!({}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_configuration_are_validated() {
        assert!(validate_name("team-a.analytics_1", "Name").is_ok());
        assert!(validate_name("", "Name").is_err());
        assert!(validate_name("..", "Name").is_err());
        assert!(validate_name("a/b", "Name").is_err());
        assert!(validate_name(&"x".repeat(129), "Name").is_err());
        let low = WorkGroupConfiguration {
            bytes_scanned_cutoff_per_query: Some(9_999_999),
            ..Default::default()
        };
        let e = validate_configuration(&low).unwrap_err();
        assert!(
            e.message.contains("BytesScannedCutoffPerQuery"),
            "{}",
            e.message
        );
        let bad_loc = WorkGroupConfiguration {
            result_configuration: Some(ResultConfiguration {
                output_location: Some("http://x/y".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let e = validate_configuration(&bad_loc).unwrap_err();
        assert!(e.message.contains("OutputLocation"), "{}", e.message);
    }

    #[test]
    fn defaults_are_filled() {
        let c = normalized(WorkGroupConfiguration::default());
        assert_eq!(c.enforce_work_group_configuration, Some(true));
        assert_eq!(
            c.engine_version
                .unwrap()
                .effective_engine_version
                .as_deref(),
            Some(ENGINE_VERSION)
        );
    }
}
