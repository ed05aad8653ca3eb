//! The Athena API in the REST-JSON protocol.
//!
//! Newer AWS SDKs (botocore 1.44 and later, so boto3 and the aws CLI) call
//! Athena with REST-JSON: each operation is a method and a path
//! (`GET /query-executions/{QueryExecutionId}`), some input members travel
//! in the path or the query string, the rest in a JSON body. Older SDKs
//! send AWS JSON 1.1 (`POST /` with `X-Amz-Target`). Both reach the same
//! handlers: [`operation`] turns a REST-JSON call into the operation name
//! and the JSON 1.1 body it stands for.

use serde_json::{Map, Value};

/// How one operation is bound to HTTP: its method, its path (`{Name}`
/// segments are input members), and its query-string members.
struct Route {
    method: &'static str,
    path: &'static [&'static str],
    operation: &'static str,
}

/// Query-string members that are numbers in the JSON body.
const NUMBERS: [&str; 1] = ["MaxResults"];

/// Query-string members that are booleans in the JSON body.
const BOOLEANS: [&str; 1] = ["RecursiveDeleteOption"];

/// Query-string members that are lists (the key repeated).
const LISTS: [&str; 1] = ["AttributesToGet"];

/// The first path segments of Athena's REST-JSON paths.
const ROOTS: [&str; 4] = [
    "query-executions",
    "batch-get-query-executions",
    "data-catalogs",
    "workgroups",
];

const ROUTES: &[Route] = &[
    Route {
        method: "POST",
        path: &["query-executions"],
        operation: "StartQueryExecution",
    },
    Route {
        method: "GET",
        path: &["query-executions"],
        operation: "ListQueryExecutions",
    },
    Route {
        method: "GET",
        path: &["query-executions", "{QueryExecutionId}"],
        operation: "GetQueryExecution",
    },
    Route {
        method: "GET",
        path: &["query-executions", "{QueryExecutionId}", "results"],
        operation: "GetQueryResults",
    },
    Route {
        method: "POST",
        path: &["query-executions", "{QueryExecutionId}", "stop"],
        operation: "StopQueryExecution",
    },
    Route {
        method: "POST",
        path: &["batch-get-query-executions"],
        operation: "BatchGetQueryExecution",
    },
    Route {
        method: "GET",
        path: &["data-catalogs"],
        operation: "ListDataCatalogs",
    },
    Route {
        method: "GET",
        path: &["data-catalogs", "{Name}"],
        operation: "GetDataCatalog",
    },
    Route {
        method: "GET",
        path: &["data-catalogs", "{CatalogName}", "databases"],
        operation: "ListDatabases",
    },
    Route {
        method: "GET",
        path: &[
            "data-catalogs",
            "{CatalogName}",
            "databases",
            "{DatabaseName}",
        ],
        operation: "GetDatabase",
    },
    Route {
        method: "GET",
        path: &[
            "data-catalogs",
            "{CatalogName}",
            "databases",
            "{DatabaseName}",
            "tables",
        ],
        operation: "ListTableMetadata",
    },
    Route {
        method: "GET",
        path: &[
            "data-catalogs",
            "{CatalogName}",
            "databases",
            "{DatabaseName}",
            "tables",
            "{TableName}",
        ],
        operation: "GetTableMetadata",
    },
    Route {
        method: "POST",
        path: &["workgroups"],
        operation: "CreateWorkGroup",
    },
    Route {
        method: "GET",
        path: &["workgroups"],
        operation: "ListWorkGroups",
    },
    Route {
        method: "GET",
        path: &["workgroups", "{WorkGroup}"],
        operation: "GetWorkGroup",
    },
    Route {
        method: "PATCH",
        path: &["workgroups", "{WorkGroup}"],
        operation: "UpdateWorkGroup",
    },
    Route {
        method: "DELETE",
        path: &["workgroups", "{WorkGroup}"],
        operation: "DeleteWorkGroup",
    },
];

/// Whether `path` is one of Athena's REST-JSON paths (by its first
/// segment).
pub fn is_rest_path(path: &str) -> bool {
    let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
    ROOTS.contains(&first)
}

/// The operation a REST-JSON call names and the JSON 1.1 body it stands
/// for (`body`'s members, plus those in the path and the query string).
/// `None` when `path` is not an Athena path; an error names what is wrong
/// with a call that is.
pub fn operation(
    method: &str,
    path: &str,
    query: Option<&str>,
    body: &[u8],
) -> Option<Result<(&'static str, Vec<u8>), String>> {
    if !is_rest_path(path) {
        return None;
    }
    Some(bind(method, path, query, body))
}

fn bind(
    method: &str,
    path: &str,
    query: Option<&str>,
    body: &[u8],
) -> Result<(&'static str, Vec<u8>), String> {
    let segments = path
        .trim_start_matches('/')
        .trim_end_matches('/')
        .split('/')
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|s| s.into_owned())
                .map_err(|_| format!("the path segment {s:?} is not UTF-8"))
        })
        .collect::<Result<Vec<String>, String>>()?;
    let route = ROUTES
        .iter()
        .find(|r| {
            r.method.eq_ignore_ascii_case(method)
                && r.path.len() == segments.len()
                && r.path
                    .iter()
                    .zip(&segments)
                    .all(|(p, s)| p.starts_with('{') || p == s)
        })
        .ok_or_else(|| format!("no Athena operation is {method} {path}"))?;
    let mut members: Map<String, Value> = if body.iter().all(u8::is_ascii_whitespace) {
        Map::new()
    } else {
        match serde_json::from_slice(body) {
            Ok(Value::Object(m)) => m,
            Ok(_) => return Err("the request body must be a JSON object".into()),
            Err(e) => return Err(format!("the request body is not JSON: {e}")),
        }
    };
    for (pattern, value) in route.path.iter().zip(segments) {
        if let Some(name) = pattern.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            if value.is_empty() {
                return Err(format!("{name} is empty"));
            }
            members.insert(name.to_string(), Value::String(value));
        }
    }
    for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        let key = key.into_owned();
        let value = value.into_owned();
        if LISTS.contains(&key.as_str()) {
            match members
                .entry(key)
                .or_insert_with(|| Value::Array(Vec::new()))
            {
                Value::Array(items) => items.push(Value::String(value)),
                _ => return Err("a list member is given twice".into()),
            }
        } else if BOOLEANS.contains(&key.as_str()) {
            let b = match value.as_str() {
                "true" => true,
                "false" => false,
                _ => return Err(format!("{key} must be true or false, not {value:?}")),
            };
            members.insert(key, Value::Bool(b));
        } else if NUMBERS.contains(&key.as_str()) {
            let n: i64 = value
                .parse()
                .map_err(|_| format!("{key} must be a whole number, not {value:?}"))?;
            members.insert(key, Value::from(n));
        } else {
            members.insert(key, Value::String(value));
        }
    }
    let body = serde_json::to_vec(&Value::Object(members)).map_err(|e| e.to_string())?;
    Ok((route.operation, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(method: &str, path: &str, query: Option<&str>, body: &str) -> (String, Value) {
        let (op, body) = operation(method, path, query, body.as_bytes())
            .expect("an Athena path")
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        (op.to_string(), serde_json::from_slice(&body).unwrap())
    }

    #[test]
    fn rest_calls_become_json_calls() {
        let (op, body) = call(
            "POST",
            "/query-executions",
            None,
            r#"{"QueryString":"SELECT 1"}"#,
        );
        assert_eq!(op, "StartQueryExecution");
        assert_eq!(body["QueryString"], "SELECT 1");
        let (op, body) = call(
            "GET",
            "/query-executions/abc-123/results",
            Some("MaxResults=50&NextToken=t%2Bx"),
            "",
        );
        assert_eq!(op, "GetQueryResults");
        assert_eq!(body["QueryExecutionId"], "abc-123");
        assert_eq!(body["MaxResults"], 50);
        assert_eq!(body["NextToken"], "t+x");
        let (op, body) = call(
            "GET",
            "/data-catalogs/AwsDataCatalog/databases/my%20db/tables/t",
            Some("WorkGroup=primary"),
            "",
        );
        assert_eq!(op, "GetTableMetadata");
        assert_eq!(body["DatabaseName"], "my db");
        assert_eq!(body["TableName"], "t");
        let (op, body) = call(
            "GET",
            "/data-catalogs/c/databases",
            Some("AttributesToGet=a&AttributesToGet=b"),
            "",
        );
        assert_eq!(op, "ListDatabases");
        assert_eq!(body["AttributesToGet"], serde_json::json!(["a", "b"]));
        assert_eq!(
            call("DELETE", "/workgroups/w", None, "").0,
            "DeleteWorkGroup"
        );
        assert_eq!(
            call("PATCH", "/workgroups/w", None, "{}").0,
            "UpdateWorkGroup"
        );
        assert!(operation("GET", "/", None, b"").is_none());
        assert!(operation("POST", "/v1/streams/x", None, b"").is_none());
    }

    #[test]
    fn hostile_rest_calls_are_refused_with_the_reason() {
        let bad = |method: &str, path: &str, query: Option<&str>, body: &[u8]| {
            operation(method, path, query, body)
                .expect("an Athena path")
                .expect_err("refused")
        };
        assert!(bad("PUT", "/query-executions", None, b"").contains("no Athena operation"));
        assert!(bad("GET", "/query-executions/a/b/c/d", None, b"").contains("no Athena operation"));
        assert!(bad("GET", "/query-executions/%FF", None, b"").contains("UTF-8"));
        assert!(
            bad("GET", "/query-executions", Some("MaxResults=lots"), b"").contains("whole number")
        );
        assert!(
            bad(
                "DELETE",
                "/workgroups/w",
                Some("RecursiveDeleteOption=yes"),
                b""
            )
            .contains("true or false")
        );
        assert!(bad("POST", "/query-executions", None, b"[1,2]").contains("JSON object"));
        assert!(bad("POST", "/query-executions", None, b"{\"a\":").contains("not JSON"));
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(bad("POST", "/query-executions", None, deep.as_bytes()).contains("not JSON"));
        // The path's members win over the body's.
        let (_, body) = call(
            "GET",
            "/query-executions/from-path",
            None,
            r#"{"QueryExecutionId":"from-body"}"#,
        );
        assert_eq!(body["QueryExecutionId"], "from-path");
    }
}
