//! What a call asks to do, in IAM's terms: the action (`glue:GetTable`)
//! and the resources (ARNs) it touches, read from the operation and its
//! JSON body as AWS's authorization reference lists them.
//!
//! ARNs carry the region the request was signed for and the account
//! [`ACCOUNT`]. Calls that name no resource (listings) touch `*`, which
//! only a statement whose `Resource` is `*` matches, as in IAM. Glue table
//! calls touch the catalog, the database and the table, as in Glue.

use serde_json::Value;

/// The account id in lakehose's ARNs (one account per server).
pub const ACCOUNT: &str = "000000000000";

/// The action and resources of one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `service:Operation`.
    pub action: String,
    /// ARNs, or `*`.
    pub resources: Vec<String>,
}

/// The members of a call's body that name its resources (and the query
/// text the audit log keeps), whatever their JSON type.
#[derive(Default, serde::Deserialize, serde::Serialize)]
struct Fields {
    #[serde(rename = "DeliveryStreamName", skip_serializing_if = "Option::is_none")]
    delivery_stream_name: Option<Value>,
    #[serde(rename = "DatabaseName", skip_serializing_if = "Option::is_none")]
    database_name: Option<Value>,
    #[serde(rename = "Name", skip_serializing_if = "Option::is_none")]
    name: Option<Value>,
    #[serde(rename = "TableName", skip_serializing_if = "Option::is_none")]
    table_name: Option<Value>,
    #[serde(rename = "DatabaseInput", skip_serializing_if = "Option::is_none")]
    database_input: Option<Value>,
    #[serde(rename = "TableInput", skip_serializing_if = "Option::is_none")]
    table_input: Option<Value>,
    #[serde(rename = "QueryExecutionId", skip_serializing_if = "Option::is_none")]
    query_execution_id: Option<Value>,
    #[serde(rename = "QueryExecutionIds", skip_serializing_if = "Option::is_none")]
    query_execution_ids: Option<Value>,
    #[serde(rename = "WorkGroup", skip_serializing_if = "Option::is_none")]
    work_group: Option<Value>,
    #[serde(rename = "CatalogName", skip_serializing_if = "Option::is_none")]
    catalog_name: Option<Value>,
    #[serde(rename = "QueryString", skip_serializing_if = "Option::is_none")]
    query_string: Option<Value>,
}

/// The members of a JSON body that the functions here read. Only those
/// are built: the rest (a batch's records) is skipped without being
/// materialised, which keeps authorization cheap on large bodies. A body
/// the quick read refuses (a member given twice, say) is read whole, so
/// the members seen are always the ones the handler will see.
pub fn call_fields(body: &[u8]) -> Value {
    match serde_json::from_slice::<Fields>(body) {
        Ok(fields) => serde_json::to_value(fields).unwrap_or_default(),
        Err(_) => serde_json::from_slice(body).unwrap_or_default(),
    }
}

fn text<'a>(body: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut v = body;
    for key in path {
        v = v.get(*key)?;
    }
    v.as_str()
}

/// Firehose calls (`Firehose_20150804.<operation>`).
pub fn firehose(region: &str, operation: &str, body: &Value) -> Request {
    let resources = match text(body, &["DeliveryStreamName"]) {
        Some(name) if operation != "ListDeliveryStreams" => vec![stream_arn(region, name)],
        _ => vec!["*".into()],
    };
    Request {
        action: format!("firehose:{operation}"),
        resources,
    }
}

/// The ARN of a delivery stream.
pub fn stream_arn(region: &str, name: &str) -> String {
    format!("arn:aws:firehose:{region}:{ACCOUNT}:deliverystream/{name}")
}

/// NDJSON ingest into a stream: `firehose:PutRecordBatch` on the stream.
pub fn ndjson(region: &str, stream: &str) -> Request {
    Request {
        action: "firehose:PutRecordBatch".into(),
        resources: vec![stream_arn(region, stream)],
    }
}

/// Glue calls (`AWSGlue.<operation>`).
pub fn glue(region: &str, operation: &str, body: &Value) -> Request {
    let catalog = catalog_arn(region);
    let database = |name: &str| database_arn(region, name);
    let table = |db: &str, t: &str| table_arn(region, db, t);
    let db = text(body, &["DatabaseName"]);
    let resources = match operation {
        "CreateDatabase" => match text(body, &["DatabaseInput", "Name"]) {
            Some(name) => vec![catalog, database(name)],
            None => vec![catalog],
        },
        "GetDatabase" | "DeleteDatabase" | "UpdateDatabase" => match text(body, &["Name"]) {
            Some(name) => vec![catalog, database(name)],
            None => vec![catalog],
        },
        "GetDatabases" => vec![catalog],
        "CreateTable" | "UpdateTable" => match (db, text(body, &["TableInput", "Name"])) {
            (Some(d), Some(t)) => vec![catalog, database(d), table(d, t)],
            (Some(d), None) => vec![catalog, database(d)],
            _ => vec![catalog],
        },
        "GetTable" | "DeleteTable" => match (db, text(body, &["Name"])) {
            (Some(d), Some(t)) => vec![catalog, database(d), table(d, t)],
            (Some(d), None) => vec![catalog, database(d)],
            _ => vec![catalog],
        },
        "GetTables" => match db {
            Some(d) => vec![catalog, database(d), table(d, "*")],
            None => vec![catalog],
        },
        "GetTableVersions"
        | "CreatePartition"
        | "BatchCreatePartition"
        | "GetPartition"
        | "GetPartitions"
        | "BatchDeletePartition"
        | "UpdatePartition"
        | "DeletePartition"
        | "BatchGetPartition" => match (db, text(body, &["TableName"])) {
            (Some(d), Some(t)) => vec![catalog, database(d), table(d, t)],
            (Some(d), None) => vec![catalog, database(d)],
            _ => vec![catalog],
        },
        "CreateCrawler" | "GetCrawler" | "UpdateCrawler" | "DeleteCrawler" | "StartCrawler"
        | "StopCrawler" => match text(body, &["Name"]) {
            Some(name) => vec![format!("arn:aws:glue:{region}:{ACCOUNT}:crawler/{name}")],
            None => vec!["*".into()],
        },
        _ => vec!["*".into()],
    };
    Request {
        action: format!("glue:{operation}"),
        resources,
    }
}

/// QuickSight's REST calls (`/accounts/{id}/...`): the action from the
/// method and path, the dashboard's, dataset's or ingestion's ARN.
pub fn quicksight(region: &str, method: &str, path: &str) -> Request {
    let arn = |kind: &str, id: &str| format!("arn:aws:quicksight:{region}:{ACCOUNT}:{kind}/{id}");
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (action, resource) = match (method, parts.as_slice()) {
        ("GET", ["accounts", _, "dashboards"]) => ("ListDashboards", "*".to_string()),
        ("GET", ["accounts", _, "dashboards", id]) => ("DescribeDashboard", arn("dashboard", id)),
        ("GET", ["accounts", _, "data-sets"]) => ("ListDataSets", "*".to_string()),
        ("GET", ["accounts", _, "data-sets", id]) => ("DescribeDataSet", arn("dataset", id)),
        ("PUT", ["accounts", _, "data-sets", id, "ingestions", i]) => (
            "CreateIngestion",
            arn("dataset", &format!("{id}/ingestion/{i}")),
        ),
        ("GET", ["accounts", _, "data-sets", id, "ingestions", i]) => (
            "DescribeIngestion",
            arn("dataset", &format!("{id}/ingestion/{i}")),
        ),
        _ => ("Unknown", "*".to_string()),
    };
    Request {
        action: format!("quicksight:{action}"),
        resources: vec![resource],
    }
}

/// The ARN of the Glue Data Catalog.
pub fn catalog_arn(region: &str) -> String {
    format!("arn:aws:glue:{region}:{ACCOUNT}:catalog")
}

/// The ARN of a Glue database.
pub fn database_arn(region: &str, database: &str) -> String {
    format!("arn:aws:glue:{region}:{ACCOUNT}:database/{database}")
}

/// The ARN of a Glue table (or view).
pub fn table_arn(region: &str, database: &str, table: &str) -> String {
    format!("arn:aws:glue:{region}:{ACCOUNT}:table/{database}/{table}")
}

/// The ARN of an S3 location (`s3://bucket/prefix/` →
/// `arn:aws:s3:::bucket/prefix/`); `None` for anything else.
pub fn location_arn(location: &str) -> Option<String> {
    let path = location.strip_prefix("s3://")?;
    (!path.is_empty() && !path.starts_with('/')).then(|| format!("arn:aws:s3:::{path}"))
}

/// The ARN of an Athena workgroup.
pub fn workgroup_arn(region: &str, name: &str) -> String {
    format!("arn:aws:athena:{region}:{ACCOUNT}:workgroup/{name}")
}

/// Athena calls (`AmazonAthena.<operation>`); `workgroup_of` names the
/// workgroup of a query execution id (`None` for an unknown id, which
/// then touches `*`).
pub fn athena(
    region: &str,
    operation: &str,
    body: &Value,
    workgroup_of: &dyn Fn(&str) -> Option<String>,
) -> Request {
    let workgroup = |name: &str| workgroup_arn(region, name);
    let of_execution = |id: Option<&str>| match id.and_then(workgroup_of) {
        Some(wg) => workgroup(&wg),
        None => "*".to_string(),
    };
    let resources = match operation {
        "StartQueryExecution" | "ListQueryExecutions" => {
            vec![workgroup(text(body, &["WorkGroup"]).unwrap_or("primary"))]
        }
        "GetQueryExecution" | "GetQueryResults" | "StopQueryExecution" => {
            vec![of_execution(text(body, &["QueryExecutionId"]))]
        }
        "BatchGetQueryExecution" => {
            let ids: Vec<&str> = body
                .get("QueryExecutionIds")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).take(50).collect())
                .unwrap_or_default();
            if ids.is_empty() {
                vec!["*".into()]
            } else {
                let mut r: Vec<String> = ids.into_iter().map(|id| of_execution(Some(id))).collect();
                r.sort();
                r.dedup();
                r
            }
        }
        "CreateWorkGroup" | "DeleteWorkGroup" => {
            match text(body, &["Name"]).or(text(body, &["WorkGroup"])) {
                Some(name) => vec![workgroup(name)],
                None => vec!["*".into()],
            }
        }
        "GetWorkGroup" | "UpdateWorkGroup" => match text(body, &["WorkGroup"]) {
            Some(name) => vec![workgroup(name)],
            None => vec!["*".into()],
        },
        "GetDataCatalog" => match text(body, &["Name"]) {
            Some(name) => vec![format!(
                "arn:aws:athena:{region}:{ACCOUNT}:datacatalog/{name}"
            )],
            None => vec!["*".into()],
        },
        "ListDatabases" | "GetDatabase" | "ListTableMetadata" | "GetTableMetadata" => {
            match text(body, &["CatalogName"]) {
                Some(name) => vec![format!(
                    "arn:aws:athena:{region}:{ACCOUNT}:datacatalog/{name}"
                )],
                None => vec!["*".into()],
            }
        }
        _ => vec!["*".into()],
    };
    Request {
        action: format!("athena:{operation}"),
        resources,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn locations_become_s3_arns_and_nothing_else_does() {
        assert_eq!(
            location_arn("s3://lake/exports/x/").as_deref(),
            Some("arn:aws:s3:::lake/exports/x/")
        );
        for not_s3 in [
            "file:///etc/",
            "s3://",
            "s3:///abs",
            "/etc/passwd",
            "S3x://b/",
        ] {
            assert_eq!(location_arn(not_s3), None, "{not_s3}");
        }
        assert_eq!(
            table_arn("us-east-1", "sales", "orders"),
            "arn:aws:glue:us-east-1:000000000000:table/sales/orders"
        );
    }

    #[test]
    fn only_the_naming_members_are_read() {
        let body =
            br#"{"DeliveryStreamName": "s", "Records": [{"Data": "AAAA"}, {"Data": "BBBB"}]}"#;
        assert_eq!(call_fields(body), json!({"DeliveryStreamName": "s"}));
        // Other types are kept as they are, for the caller to ignore.
        assert_eq!(call_fields(br#"{"Name": 7}"#), json!({"Name": 7}));
        // A member given twice: the whole body is read (last one wins, as
        // in the handlers' reading).
        let twice = br#"{"WorkGroup": "primary", "WorkGroup": "secret"}"#;
        assert_eq!(call_fields(twice)["WorkGroup"], "secret");
        assert_eq!(call_fields(b"not json"), Value::Null);
        // Hostile bodies: nesting far past serde_json's recursion limit, in
        // a naming member and elsewhere, is refused, not a stack overflow.
        let deep = format!(
            "{{\"Name\": {}1{}}}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert_eq!(call_fields(deep.as_bytes()), Value::Null);
        let deep = format!(
            "{{\"Records\": {}{}, \"DeliveryStreamName\": \"s\"}}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        // Skipped, not built: the naming member is still found (the
        // handler's own reading refuses the body).
        assert_eq!(
            call_fields(deep.as_bytes()),
            json!({"DeliveryStreamName": "s"})
        );
    }

    #[test]
    fn resources_follow_the_body() {
        let r = firehose(
            "eu-west-1",
            "PutRecord",
            &json!({"DeliveryStreamName": "logs"}),
        );
        assert_eq!(r.action, "firehose:PutRecord");
        assert_eq!(
            r.resources,
            vec!["arn:aws:firehose:eu-west-1:000000000000:deliverystream/logs"]
        );
        assert_eq!(
            firehose("r", "ListDeliveryStreams", &json!({})).resources,
            vec!["*"]
        );
        let r = glue(
            "r",
            "GetTable",
            &json!({"DatabaseName": "raw", "Name": "events"}),
        );
        assert_eq!(
            r.resources,
            vec![
                "arn:aws:glue:r:000000000000:catalog",
                "arn:aws:glue:r:000000000000:database/raw",
                "arn:aws:glue:r:000000000000:table/raw/events"
            ]
        );
        let r = glue(
            "r",
            "CreateTable",
            &json!({"DatabaseName": "raw", "TableInput": {"Name": "t"}}),
        );
        assert_eq!(r.resources.len(), 3);
        let lookup = |id: &str| (id == "q1").then(|| "etl".to_string());
        let r = athena(
            "r",
            "GetQueryResults",
            &json!({"QueryExecutionId": "q1"}),
            &lookup,
        );
        assert_eq!(
            r.resources,
            vec!["arn:aws:athena:r:000000000000:workgroup/etl"]
        );
        let r = athena(
            "r",
            "GetQueryResults",
            &json!({"QueryExecutionId": "zz"}),
            &lookup,
        );
        assert_eq!(r.resources, vec!["*"]);
        let r = athena(
            "r",
            "StartQueryExecution",
            &json!({"QueryString": "SELECT 1"}),
            &lookup,
        );
        assert_eq!(
            r.resources,
            vec!["arn:aws:athena:r:000000000000:workgroup/primary"]
        );
        // A hostile body: wrong types and missing fields touch `*` or the
        // catalog only.
        assert_eq!(
            glue("r", "GetTable", &json!({"DatabaseName": 1}))
                .resources
                .len(),
            1
        );
        assert_eq!(
            athena(
                "r",
                "BatchGetQueryExecution",
                &json!({"QueryExecutionIds": "x"}),
                &lookup
            )
            .resources,
            vec!["*"]
        );
    }
}
