//! Who may call: once a principal's key exists, every AWS API call and
//! NDJSON request must carry a valid SigV4 signature and Postgres logins
//! need the key's secret (SCRAM); the real SDKs with the right key work,
//! and a wrong secret, a tampered body, a stale date, a missing header or
//! an unknown or revoked key fail with AWS's errors and change nothing.
//! Listening beyond loopback without a key, or with half the admin
//! variables set, refuses to start. Policies decide what a signed call may
//! do, per action and resource: default deny, explicit deny wins.

use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use serde_json::{Value, json};

use std::ffi::OsStr;

use crate::util::{Server, cli_ok, record, rt, wait_until};

/// A key made with `lakehose admin keys create --json`.
pub(crate) struct NewKey {
    pub(crate) id: String,
    pub(crate) secret: String,
    pub(crate) token: Option<String>,
}

pub(crate) fn create_key(data_dir: &std::path::Path, principal: &str, extra: &[&str]) -> NewKey {
    let words = [
        "admin",
        "keys",
        "create",
        "--principal",
        principal,
        "--json",
        "--data-dir",
    ];
    let mut args: Vec<&OsStr> = words.iter().map(OsStr::new).collect();
    args.push(data_dir.as_os_str());
    args.extend(extra.iter().map(OsStr::new));
    let out = cli_ok(&args);
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON key");
    NewKey {
        id: v["AccessKeyId"].as_str().unwrap().to_string(),
        secret: v["SecretAccessKey"].as_str().unwrap().to_string(),
        token: v["SessionToken"].as_str().map(str::to_string),
    }
}

pub(crate) fn creds(
    id: &str,
    secret: &str,
    token: Option<&str>,
) -> aws_credential_types::Credentials {
    aws_credential_types::Credentials::new(id, secret, token.map(str::to_string), None, "e2e")
}

/// An SDK client of `$sdk` for the server, signing with `$creds`, without
/// retries (a refused call must fail at once).
macro_rules! client {
    ($sdk:ident, $endpoint:expr, $creds:expr) => {
        client!($sdk, $endpoint, $creds, |b| b)
    };
    // `$http` adjusts the config builder (an HTTP client of its own).
    ($sdk:ident, $endpoint:expr, $creds:expr, $http:expr) => {
        $sdk::Client::from_conf(
            ($http)(
                $sdk::Config::builder()
                    .behavior_version($sdk::config::BehaviorVersion::latest())
                    .endpoint_url($endpoint)
                    .region($sdk::config::Region::new("eu-west-1"))
                    .credentials_provider($creds)
                    .retry_config($sdk::config::retry::RetryConfig::disabled()),
            )
            .build(),
        )
    };
}

fn firehose(endpoint: &str, c: aws_credential_types::Credentials) -> aws_sdk_firehose::Client {
    client!(aws_sdk_firehose, endpoint, c)
}

fn glue(endpoint: &str, c: aws_credential_types::Credentials) -> aws_sdk_glue::Client {
    client!(aws_sdk_glue, endpoint, c)
}

pub(crate) fn athena(
    endpoint: &str,
    c: aws_credential_types::Credentials,
) -> aws_sdk_athena::Client {
    client!(aws_sdk_athena, endpoint, c)
}

/// The error code of a failed SDK call.
fn code<E, R>(r: Result<R, aws_sdk_firehose::error::SdkError<E>>) -> String
where
    E: aws_sdk_firehose::error::ProvideErrorMetadata + std::fmt::Debug,
    R: std::fmt::Debug,
{
    let err = r.expect_err("the call should have been refused");
    match err.as_service_error() {
        Some(e) => e.code().unwrap_or("<no code>").to_string(),
        None => format!("<not a service error: {err:?}>"),
    }
}

/// A request signed as the SDKs sign it, then sent with `body` (which may
/// differ from what was signed).
#[allow(clippy::too_many_arguments)]
fn signed(
    http: &reqwest::Client,
    endpoint: &str,
    path: &str,
    headers: &[(&str, &str)],
    service: &str,
    key: (&str, &str),
    time: SystemTime,
    signed_body: &[u8],
    sent_body: Vec<u8>,
) -> reqwest::RequestBuilder {
    let host = endpoint.trim_start_matches("http://");
    let identity = creds(key.0, key.1, None).into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name(service)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let mut all: Vec<(&str, &str)> = vec![("host", host)];
    all.extend_from_slice(headers);
    let url = format!("{endpoint}{path}");
    let request = SignableRequest::new(
        "POST",
        url.as_str(),
        all.iter().copied(),
        SignableBody::Bytes(signed_body),
    )
    .unwrap();
    let (instructions, _) = sign(request, &params).unwrap().into_parts();
    let mut builder = with_headers(http.post(&url).body(sent_body), headers);
    let (added, _) = instructions.into_parts();
    for h in added {
        builder = builder.header(h.name(), h.value());
    }
    builder
}

/// `request` with `headers` added.
fn with_headers(
    mut request: reqwest::RequestBuilder,
    headers: &[(&str, &str)],
) -> reqwest::RequestBuilder {
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    request
}

/// Sends a request: its status and JSON body (null when not JSON).
async fn answer(request: reqwest::RequestBuilder) -> (u16, Value) {
    let resp = request.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[test]
fn signed_calls_work_and_everything_else_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let key = create_key(dir.path(), "loader", &["--group", "admins"]);
    let temp = create_key(
        dir.path(),
        "ci",
        &["--group", "admins", "--expires-in", "1h"],
    );
    let server = Server::start(dir.path(), &[]);
    let ep = server.endpoint.clone();
    let http = reqwest::Client::new();
    rt().block_on(async {
        // The right key through each SDK.
        let fh = firehose(&ep, creds(&key.id, &key.secret, None));
        fh.create_delivery_stream()
            .delivery_stream_name("signed")
            .extended_s3_destination_configuration(
                aws_sdk_firehose::types::ExtendedS3DestinationConfiguration::builder()
                    .bucket_arn("arn:aws:s3:::signed")
                    .role_arn("arn:aws:iam::123456789012:role/firehose")
                    .prefix("events/")
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .expect("CreateDeliveryStream with the right key");
        fh.put_record()
            .delivery_stream_name("signed")
            .record(record(b"{\"n\":1}\n\x00\xff binary".to_vec()))
            .send()
            .await
            .expect("PutRecord with the right key");
        fh.put_record_batch()
            .delivery_stream_name("signed")
            .records(record(b"{\"n\":2}\n".to_vec()))
            .records(record(vec![0u8, 1, 2, 255]))
            .send()
            .await
            .expect("PutRecordBatch with the right key");
        glue(&ep, creds(&key.id, &key.secret, None))
            .get_databases()
            .send()
            .await
            .expect("Glue GetDatabases with the right key");
        let started = athena(&ep, creds(&key.id, &key.secret, None))
            .start_query_execution()
            .query_string("SELECT 1")
            .send()
            .await
            .expect("Athena StartQueryExecution with the right key");
        assert!(started.query_execution_id.is_some());
        // A temporary key with its session token.
        firehose(&ep, creds(&temp.id, &temp.secret, temp.token.as_deref()))
            .list_delivery_streams()
            .send()
            .await
            .expect("a temporary key with its token");

        // Wrong secret, unknown key, a temporary key without its token.
        let wrong = firehose(&ep, creds(&key.id, "not-the-secret-0000000000000000000000000", None));
        assert_eq!(code(wrong.list_delivery_streams().send().await), "InvalidSignatureException");
        let unknown = firehose(&ep, creds("LKIAUNKNOWNUNKNOWN00", &key.secret, None));
        assert_eq!(code(unknown.list_delivery_streams().send().await), "UnrecognizedClientException");
        let tokenless = firehose(&ep, creds(&temp.id, &temp.secret, None));
        assert_eq!(code(tokenless.list_delivery_streams().send().await), "UnrecognizedClientException");
        wait_until(10, "the failed authentication in the audit log", || {
            audit_events(dir.path()).iter().any(|e| {
                e["event"] == "authentication_failed"
                    && e["code"] == "InvalidSignatureException"
                    && e["access_key_id"] == key.id.as_str()
            })
        });
        let glue_wrong = glue(&ep, creds(&key.id, "x", None));
        let err = glue_wrong.get_databases().send().await.unwrap_err();
        assert_eq!(err.into_service_error().meta().code(), Some("InvalidSignatureException"));

        // No signature: refused, and the stream is not made.
        let body = json!({
            "DeliveryStreamName": "unsigned",
            "ExtendedS3DestinationConfiguration": {"BucketARN": "arn:aws:s3:::x", "RoleARN": "arn:aws:iam::1:role/r"}
        })
        .to_string();
        let target = [
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-target", "Firehose_20150804.CreateDeliveryStream"),
        ];
        let unsigned = with_headers(http.post(&ep).body(body.clone()), &target);
        let (status, v) = answer(unsigned).await;
        assert_eq!((status, v["__type"].as_str()), (403, Some("MissingAuthenticationTokenException")));

        // Signed, then the body changed: refused, nothing made.
        let key_pair = (key.id.as_str(), key.secret.as_str());
        let tampered_body = body.replace("unsigned", "tampered");
        let now = SystemTime::now();
        let (status, v) = answer(signed(
            &http, &ep, "/", &target, "firehose", key_pair, now, body.as_bytes(), tampered_body.into_bytes(),
        ))
        .await;
        assert_eq!((status, v["__type"].as_str()), (403, Some("InvalidSignatureException")));

        // Correctly signed 20 minutes ago: stale.
        let old = now - Duration::from_secs(20 * 60);
        let (status, v) = answer(signed(
            &http, &ep, "/", &target, "firehose", key_pair, old, body.as_bytes(), body.clone().into_bytes(),
        ))
        .await;
        assert_eq!((status, v["__type"].as_str()), (403, Some("InvalidSignatureException")));
        assert!(v["message"].as_str().unwrap().starts_with("Signature expired"), "{v}");

        // Signed for another service than the target's.
        let (status, _) = answer(signed(
            &http, &ep, "/", &target, "glue", key_pair, now, body.as_bytes(), body.clone().into_bytes(),
        ))
        .await;
        assert_eq!(status, 403);

        // A malformed Authorization header.
        let bad = http.post(&ep).body(body.clone()).header("authorization", "AWS4-HMAC-SHA256 Credential=x");
        let (status, v) = answer(with_headers(bad, &target)).await;
        assert_eq!((status, v["__type"].as_str()), (400, Some("IncompleteSignatureException")));

        let names = fh.list_delivery_streams().send().await.unwrap().delivery_stream_names;
        assert_eq!(names, vec!["signed".to_string()], "a refused call made a stream");

        // NDJSON: signed for firehose works, unsigned does not.
        let lines = b"{\"n\":3}\n{\"n\":4}\n".to_vec();
        let resp = signed(
            &http, &ep, "/v1/streams/signed/records", &[("content-type", "application/x-ndjson")],
            "firehose", (&key.id, &key.secret), SystemTime::now(), &lines, lines.clone(),
        )
        .send()
        .await
        .unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{}", resp.text().await.unwrap());
        let resp = http
            .post(format!("{ep}/v1/streams/signed/records"))
            .body(lines.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 403);

        // /health stays open for probes.
        let resp = http.get(format!("{ep}/health")).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200);

        // Postgres: the key id and secret over SCRAM; anything else fails.
        let (host, port) = server.pg_addr.rsplit_once(':').unwrap();
        let conninfo = |user: &str, password: &str| {
            format!("host={host} port={port} user={user} password={password} dbname=default connect_timeout=10")
        };
        let (pg, conn) = tokio_postgres::connect(&conninfo(&key.id, &key.secret), tokio_postgres::NoTls)
            .await
            .expect("Postgres login with the key");
        tokio::spawn(conn);
        let row = pg.query_one("SELECT 41 + 1", &[]).await.unwrap();
        assert_eq!(row.get::<_, i64>(0), 42);
        pg.simple_query("CREATE DATABASE audited_over_pg").await.unwrap();
        wait_until(10, "the Postgres DDL in the audit log", || {
            audit_events(dir.path()).iter().any(|e| {
                e["event"] == "sql_statement"
                    && e["principal"] == "loader"
                    && e["query"] == "CREATE DATABASE audited_over_pg"
            })
        });
        assert!(
            !audit_events(dir.path()).iter().any(|e| e["query"] == "SELECT 41 + 1"),
            "a plain SELECT over Postgres is not a change"
        );
        for (user, password) in [(key.id.as_str(), "wrong"), ("analyst", "x"), (temp.id.as_str(), temp.secret.as_str())] {
            let err = tokio_postgres::connect(&conninfo(user, password), tokio_postgres::NoTls)
                .await
                .err()
                .unwrap_or_else(|| panic!("{user} logged in"));
            assert_eq!(err.code().map(|c| c.code()), Some("28P01"), "{err}");
        }

        // A revoked key stops working within seconds.
        cli_ok(&[
            OsStr::new("admin"),
            OsStr::new("keys"),
            OsStr::new("revoke"),
            OsStr::new(&key.id),
            OsStr::new("--data-dir"),
            dir.path().as_os_str(),
        ]);
    });
    let fh = firehose(&ep, creds(&key.id, &key.secret, None));
    wait_until(10, "the revoked key to be refused", || {
        rt().block_on(async {
            matches!(
                fh.list_delivery_streams().send().await,
                Err(e) if e.as_service_error().and_then(|s| aws_sdk_firehose::error::ProvideErrorMetadata::code(s)) == Some("UnrecognizedClientException")
            )
        })
    });
    // The secrets were never written to the key file or the log.
    let file = std::fs::read_to_string(dir.path().join("_lakehose/principals.json")).unwrap();
    assert!(!file.contains(&key.secret) && !file.contains(&temp.secret));
    server.terminate();
}

#[test]
fn unsafe_listeners_and_half_set_credentials_refuse_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let start = |args: &[&str], env: &[(&str, &str)]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_lakehose"));
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(dir.path())
            .args(args)
            .env_remove("LAKEHOSE_ACCESS_KEY_ID")
            .env_remove("LAKEHOSE_SECRET_ACCESS_KEY")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("run lakehose serve");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (ok, err) = start(
        &["--listen", "0.0.0.0:0", "--pg-listen", "127.0.0.1:0"],
        &[],
    );
    assert!(!ok);
    assert!(
        err.contains("refusing to listen on 0.0.0.0:0 without access keys"),
        "{err}"
    );
    let (ok, err) = start(
        &["--listen", "127.0.0.1:0", "--pg-listen", "0.0.0.0:0"],
        &[],
    );
    assert!(!ok);
    assert!(err.contains("refusing to listen"), "{err}");
    let (ok, err) = start(
        &["--listen", "127.0.0.1:0", "--pg-listen", "127.0.0.1:0"],
        &[("LAKEHOSE_ACCESS_KEY_ID", "admin")],
    );
    assert!(!ok);
    assert!(err.contains("LAKEHOSE_SECRET_ACCESS_KEY is not"), "{err}");
    let (ok, err) = start(
        &["--listen", "127.0.0.1:0", "--pg-listen", "127.0.0.1:0"],
        &[
            ("LAKEHOSE_ACCESS_KEY_ID", "admin"),
            ("LAKEHOSE_SECRET_ACCESS_KEY", ""),
        ],
    );
    assert!(!ok);
    assert!(err.contains("must both be non-empty"), "{err}");
}

#[test]
fn the_environment_admin_key_signs_for_everything() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_full(
        dir.path(),
        &[],
        Stdio::inherit(),
        &[
            ("LAKEHOSE_ACCESS_KEY_ID", "ADMINKEY"),
            ("LAKEHOSE_SECRET_ACCESS_KEY", "admin-secret"),
        ],
    );
    let ep = server.endpoint.clone();
    rt().block_on(async {
        firehose(&ep, creds("ADMINKEY", "admin-secret", None))
            .list_delivery_streams()
            .send()
            .await
            .expect("the admin key of the environment");
        let other = firehose(&ep, creds("OTHER", "admin-secret", None));
        assert_eq!(
            code(other.list_delivery_streams().send().await),
            "UnrecognizedClientException"
        );
    });
    server.terminate();
}

/// boto3 (from PyPI, as `.ci/run` installs it) and `curl --aws-sigv4` sign
/// with their own SigV4 code: both are accepted, and boto3 with a wrong
/// secret gets `InvalidSignatureException`.
#[test]
fn boto3_and_curl_signatures_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let key = create_key(dir.path(), "py", &["--group", "admins"]);
    let server = Server::start(dir.path(), &[]);
    let script = r#"
import os, sys, boto3, botocore
ep = os.environ["ENDPOINT"]
def client(service, secret=None):
    return boto3.client(service, endpoint_url=ep, region_name="eu-central-1",
        aws_access_key_id=os.environ["KEY_ID"],
        aws_secret_access_key=secret or os.environ["KEY_SECRET"],
        config=botocore.config.Config(retries={"max_attempts": 1}))
fh = client("firehose")
fh.create_delivery_stream(DeliveryStreamName="py",
    ExtendedS3DestinationConfiguration={"BucketARN": "arn:aws:s3:::pylake", "RoleARN": "arn:aws:iam::1:role/r", "Prefix": "raw/"})
out = fh.put_record_batch(DeliveryStreamName="py",
    Records=[{"Data": b"{\"n\": 1}\n"}, {"Data": bytes(range(256))}])
assert out["FailedPutCount"] == 0, out
assert "py" in fh.list_delivery_streams()["DeliveryStreamNames"]
client("glue").get_databases()
assert client("athena").start_query_execution(QueryString="SELECT 1")["QueryExecutionId"]
try:
    client("firehose", secret="wrong" * 8).list_delivery_streams()
    sys.exit("a wrong secret was accepted")
except botocore.exceptions.ClientError as e:
    assert e.response["Error"]["Code"] == "InvalidSignatureException", e.response
print("boto3 ok")
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .env("ENDPOINT", &server.endpoint)
        .env("KEY_ID", &key.id)
        .env("KEY_SECRET", &key.secret)
        .env_remove("AWS_PROFILE")
        .output()
        .expect("python3 (with boto3, which .ci/run installs)");
    assert!(
        out.status.success(),
        "boto3: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let curl = |user: &str| {
        Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
            .args(["--aws-sigv4", "aws:amz:us-east-1:firehose", "--user", user])
            .args(["-H", "content-type: application/x-ndjson"])
            .args(["--data-binary", "{\"n\":2}\n"])
            .arg(format!("{}/v1/streams/py/records", server.endpoint))
            .output()
            .expect("curl")
    };
    let ok = curl(&format!("{}:{}", key.id, key.secret));
    assert_eq!(String::from_utf8_lossy(&ok.stdout), "200");
    let wrong = curl(&format!("{}:wrong", key.id));
    assert_eq!(String::from_utf8_lossy(&wrong.stdout), "403");
    server.terminate();
}

pub(crate) fn put_policy(data_dir: &std::path::Path, who: &[&str], doc: Value) {
    let file = data_dir.join(format!("policy-{}.json", who.join("-").replace("--", "")));
    std::fs::write(&file, doc.to_string()).unwrap();
    let mut args: Vec<&OsStr> = ["admin", "policies", "put"]
        .iter()
        .map(OsStr::new)
        .collect();
    args.extend(who.iter().map(OsStr::new));
    args.extend([
        OsStr::new("--file"),
        file.as_os_str(),
        OsStr::new("--data-dir"),
        data_dir.as_os_str(),
    ]);
    cli_ok(&args);
}

/// Plain streams into `bucket`, one prefix each.
async fn create_streams(fh: &aws_sdk_firehose::Client, bucket: &str, names: &[&str]) {
    for name in names {
        fh.create_delivery_stream()
            .delivery_stream_name(*name)
            .extended_s3_destination_configuration(
                aws_sdk_firehose::types::ExtendedS3DestinationConfiguration::builder()
                    .bucket_arn(format!("arn:aws:s3:::{bucket}"))
                    .role_arn("arn:aws:iam::123456789012:role/firehose")
                    .prefix(format!("{name}/"))
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap_or_else(|e| panic!("create {name}: {e:?}"));
    }
}

/// Every event of the data folder's audit log.
pub(crate) fn audit_events(data_dir: &std::path::Path) -> Vec<Value> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(data_dir.join("_lakehose/audit")) else {
        return out;
    };
    for e in entries.flatten() {
        let text = std::fs::read_to_string(e.path()).unwrap_or_default();
        out.extend(text.lines().filter_map(|l| serde_json::from_str(l).ok()));
    }
    out
}

/// The code and message of a refused call, or "ok".
pub(crate) fn outcome<R, E: aws_sdk_firehose::error::ProvideErrorMetadata>(
    r: Result<R, aws_sdk_firehose::error::SdkError<E>>,
) -> (String, String) {
    match r {
        Ok(_) => ("ok".into(), String::new()),
        Err(e) => match e.as_service_error() {
            Some(s) => (
                s.code().unwrap_or_default().to_string(),
                s.message().unwrap_or_default().to_string(),
            ),
            None => ("<no service error>".into(), String::new()),
        },
    }
}

#[test]
fn policies_decide_per_action_and_resource() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let admin = create_key(d, "ops", &["--group", "admins"]);
    let loader = create_key(d, "loader", &["--group", "writers"]);
    let reader = create_key(d, "analyst", &["--group", "readers"]);
    let blocked = create_key(d, "contractor", &["--group", "readers"]);
    let nobody = create_key(d, "nobody", &[]);
    put_policy(
        d,
        &["--group", "writers"],
        json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "firehose:PutRecord*", "Resource": "arn:aws:firehose:*:*:deliverystream/app-*"},
            {"Effect": "Allow", "Action": ["firehose:ListDeliveryStreams"], "Resource": "*"}
        ]}),
    );
    put_policy(
        d,
        &["--group", "readers"],
        json!({"Statement": [
            {"Effect": "Allow", "Action": "glue:Get*", "Resource": "*"},
            {"Effect": "Allow", "Action": "athena:*", "Resource": "arn:aws:athena:*:*:workgroup/primary"}
        ]}),
    );
    put_policy(
        d,
        &["--principal", "contractor"],
        json!({"Statement": [
            {"Effect": "Deny", "Action": "glue:*", "Resource": "arn:aws:glue:*:*:table/secret/*"}
        ]}),
    );
    put_policy(
        d,
        &["--group", "admins"],
        json!({"Statement": [
            {"Effect": "Deny", "Action": "firehose:DeleteDeliveryStream", "Resource": "arn:aws:firehose:*:*:deliverystream/app-logs"}
        ]}),
    );
    // A policy with an element lakehose does not evaluate is refused.
    let file = d.join("bad.json");
    std::fs::write(&file, r#"{"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {"Bool": {"aws:SecureTransport": "true"}}}]}"#).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_lakehose"))
        .args(["admin", "policies", "put", "--group", "x", "--file"])
        .arg(&file)
        .arg("--data-dir")
        .arg(d)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Condition"));

    let server = Server::start(d, &[]);
    let ep = server.endpoint.clone();
    let c = |k: &NewKey| creds(&k.id, &k.secret, None);
    rt().block_on(async {
        // Admins set up: two streams, two databases with a table each, a workgroup.
        let fh_admin = firehose(&ep, c(&admin));
        create_streams(&fh_admin, "policies", &["app-logs", "billing"]).await;
        let glue_admin = glue(&ep, c(&admin));
        for db in ["open", "secret"] {
            glue_admin
                .create_database()
                .database_input(aws_sdk_glue::types::DatabaseInput::builder().name(db).build().unwrap())
                .send()
                .await
                .unwrap();
            glue_admin
                .create_table()
                .database_name(db)
                .table_input(crate::util::parquet_table_input("t", &format!("s3://policies/{db}/"), &[("a", "int")], &[]))
                .send()
                .await
                .unwrap();
        }
        let athena_admin = athena(&ep, c(&admin));
        athena_admin.create_work_group().name("other").send().await.unwrap();
        let other_exec = athena_admin
            .start_query_execution()
            .query_string("SELECT 1")
            .work_group("other")
            .send()
            .await
            .unwrap()
            .query_execution_id
            .unwrap();

        // Firehose: writers put into app-* only, and cannot delete.
        let fh = firehose(&ep, c(&loader));
        let put = |stream: &str| fh.put_record().delivery_stream_name(stream).record(record(b"{}\n".to_vec())).send();
        assert_eq!(outcome(put("app-logs").await).0, "ok");
        let (code, message) = outcome(put("billing").await);
        assert_eq!(code, "AccessDeniedException");
        assert!(
            message.contains("firehose:PutRecord on resource: arn:aws:firehose:eu-west-1:000000000000:deliverystream/billing"),
            "{message}"
        );
        assert_eq!(outcome(fh.list_delivery_streams().send().await).0, "ok");
        let (code, _) = outcome(fh.delete_delivery_stream().delivery_stream_name("app-logs").send().await);
        assert_eq!(code, "AccessDeniedException");
        // An explicit deny beats the admins' allow-everything.
        let (code, message) = outcome(fh_admin.delete_delivery_stream().delivery_stream_name("app-logs").send().await);
        assert_eq!(code, "AccessDeniedException");
        assert!(message.contains("explicit deny"), "{message}");
        // No policy at all: nothing is allowed.
        let (code, _) = outcome(firehose(&ep, c(&nobody)).list_delivery_streams().send().await);
        assert_eq!(code, "AccessDeniedException");

        // Glue: readers read, do not write; the contractor's deny on secret.*.
        let g = glue(&ep, c(&reader));
        assert_eq!(outcome(g.get_table().database_name("secret").name("t").send().await).0, "ok");
        let (code, _) = outcome(g.delete_table().database_name("open").name("t").send().await);
        assert_eq!(code, "AccessDeniedException");
        let gb = glue(&ep, c(&blocked));
        assert_eq!(outcome(gb.get_table().database_name("open").name("t").send().await).0, "ok");
        let (code, message) = outcome(gb.get_table().database_name("secret").name("t").send().await);
        assert_eq!(code, "AccessDeniedException");
        assert!(message.contains("table/secret/t"), "{message}");
        let (code, _) = outcome(gb.get_tables().database_name("secret").send().await);
        assert_eq!(code, "AccessDeniedException");

        // Athena: the primary workgroup only, also for executions by id.
        let a = athena(&ep, c(&reader));
        let mine = a.start_query_execution().query_string("SELECT 2").send().await;
        assert_eq!(outcome(mine).0, "ok");
        let (code, _) = outcome(a.start_query_execution().query_string("SELECT 3").work_group("other").send().await);
        assert_eq!(code, "AccessDeniedException");
        let (code, message) = outcome(a.get_query_execution().query_execution_id(&other_exec).send().await);
        assert_eq!(code, "AccessDeniedException");
        assert!(message.contains("workgroup/other"), "{message}");
        let (code, _) = outcome(a.delete_work_group().work_group("other").send().await);
        assert_eq!(code, "AccessDeniedException");
        assert_eq!(outcome(athena_admin.get_query_execution().query_execution_id(&other_exec).send().await).0, "ok");

        // NDJSON follows the stream's policy too.
        let http = reqwest::Client::new();
        let lines = b"{\"n\":1}\n".to_vec();
        for (stream, status) in [("app-logs", 200), ("billing", 400)] {
            let (got, v) = answer(signed(
                &http, &ep, &format!("/v1/streams/{stream}/records"), &[("content-type", "application/x-ndjson")],
                "firehose", (&loader.id, &loader.secret), SystemTime::now(), &lines, lines.clone(),
            ))
            .await;
            assert_eq!(got, status, "{stream}: {v}");
        }
    });
    // The audit log: who changed what, what was refused; never a secret.
    let has = |event: &str, check: &dyn Fn(&Value) -> bool| {
        audit_events(d)
            .iter()
            .any(|e| e["event"] == event && check(e))
    };
    wait_until(10, "the audit events", || {
        has("access_denied", &|e| {
            e["principal"] == "loader"
                && e["action"] == "firehose:PutRecord"
                && e["resource"]
                    .as_str()
                    .unwrap_or_default()
                    .ends_with("deliverystream/billing")
        }) && has("api_call", &|e| {
            e["principal"] == "ops" && e["action"] == "firehose:CreateDeliveryStream"
        }) && has("api_call", &|e| {
            e["action"] == "athena:StartQueryExecution" && e["query"] == "SELECT 2"
        })
    });
    assert!(has("key_created", &|e| e["principal"] == "loader"
        && e["by"]["via"] == "lakehose admin"));
    assert!(has("policy_put", &|e| e["of"] == "group writers"));
    let text: String = audit_events(d).iter().map(|e| e.to_string()).collect();
    for k in [&admin, &loader, &reader, &blocked, &nobody] {
        assert!(!text.contains(&k.secret), "a secret in the audit log");
    }
    server.terminate();
}

/// Bearer tokens on NDJSON ingest: ES256/RS256 against the JWKS file,
/// issuer, audience and times checked, `alg: none` refused, the token's
/// groups under policies, and keys rotated by rewriting the file.
#[test]
fn bearer_tokens_for_ndjson_ingest() {
    use base64::Engine;
    use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};

    let b64u = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let es256 = |kid: &str| {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let p = pair.public_key().as_ref();
        let jwk = json!({"kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256", "x": b64u(&p[1..33]), "y": b64u(&p[33..65])});
        (EncodingKey::from_ec_der(pkcs8.as_ref()), jwk)
    };
    let rsa_jwk = json!({"kty": "RSA", "kid": "rsa1", "alg": "RS256", "e": "AQAB",
        "n": include_str!("../../auth/testdata/rsa-test-key.n").trim()});
    let rsa = EncodingKey::from_rsa_der(include_bytes!("../../auth/testdata/rsa-test-key.der"));
    let now = chrono::Utc::now().timestamp();
    let token = |alg: Algorithm, kid: &str, key: &EncodingKey, extra: Value| {
        let mut claims = json!({"sub": "device-7", "iss": "https://idp.example", "aud": "ingest",
            "exp": now + 600, "cognito:groups": ["shippers"]});
        claims
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let mut h = Header::new(alg);
        h.kid = Some(kid.into());
        encode(&h, &claims, key).unwrap()
    };

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let admin = create_key(d, "ops", &["--group", "admins"]);
    put_policy(
        d,
        &["--group", "shippers"],
        json!({"Statement": [
            {"Effect": "Allow", "Action": "firehose:PutRecordBatch", "Resource": "arn:aws:firehose:*:*:deliverystream/app-logs"}
        ]}),
    );
    let (ec1, ec1_jwk) = es256("ec1");
    let jwks = d.join("jwks.json");
    std::fs::write(&jwks, json!({"keys": [ec1_jwk, rsa_jwk]}).to_string()).unwrap();
    let server = Server::start(
        d,
        &[
            "--jwt-jwks",
            jwks.to_str().unwrap(),
            "--jwt-issuer",
            "https://idp.example",
            "--jwt-audience",
            "ingest",
        ],
    );
    let ep = server.endpoint.clone();
    let http = reqwest::Client::new();
    rt().block_on(async {
        let fh_admin = firehose(&ep, creds(&admin.id, &admin.secret, None));
        create_streams(&fh_admin, "tokens", &["app-logs", "billing"]).await;
        let post = |stream: &str, token: &str| {
            http.post(format!("{ep}/v1/streams/{stream}/records"))
                .header("authorization", format!("Bearer {token}"))
                .body("{\"n\":1}\n")
        };
        let good = token(Algorithm::ES256, "ec1", &ec1, json!({}));
        assert_eq!(answer(post("app-logs", &good)).await.0, 200);
        assert_eq!(
            answer(post(
                "app-logs",
                &token(Algorithm::RS256, "rsa1", &rsa, json!({}))
            ))
            .await
            .0,
            200
        );
        // The token's groups are under policies: no PutRecordBatch on billing.
        let (status, v) = answer(post("billing", &good)).await;
        assert_eq!(
            (status, v["__type"].as_str()),
            (400, Some("AccessDeniedException"))
        );
        // Refused tokens: 401.
        let none = format!(
            "{}.{}.",
            b64u(br#"{"alg":"none"}"#),
            b64u(br#"{"sub":"x","iss":"https://idp.example","aud":"ingest","exp":9999999999}"#)
        );
        let hs = token(
            Algorithm::HS256,
            "rsa1",
            &EncodingKey::from_secret(b"guess"),
            json!({}),
        );
        for (what, bad) in [
            (
                "expired",
                token(Algorithm::ES256, "ec1", &ec1, json!({"exp": now - 3600})),
            ),
            (
                "not yet valid",
                token(Algorithm::ES256, "ec1", &ec1, json!({"nbf": now + 3600})),
            ),
            (
                "wrong audience",
                token(Algorithm::ES256, "ec1", &ec1, json!({"aud": "other"})),
            ),
            (
                "wrong issuer",
                token(
                    Algorithm::ES256,
                    "ec1",
                    &ec1,
                    json!({"iss": "https://evil"}),
                ),
            ),
            ("alg none", none),
            ("HMAC", hs),
            ("garbage", "x.y.z".to_string()),
        ] {
            let (status, v) = answer(post("app-logs", &bad)).await;
            assert_eq!(
                (status, v["__type"].as_str()),
                (401, Some("NotAuthorizedException")),
                "{what}: {v}"
            );
        }
        // Bearer tokens are for NDJSON only.
        let (status, _) = answer(
            http.post(&ep)
                .header("authorization", format!("Bearer {good}"))
                .header("x-amz-target", "Firehose_20150804.ListDeliveryStreams")
                .body("{}"),
        )
        .await;
        assert_eq!(status, 401);
    });
    // Key rotation: the set now holds ec2 only.
    let (ec2, ec2_jwk) = es256("ec2");
    std::fs::write(&jwks, json!({"keys": [ec2_jwk]}).to_string()).unwrap();
    let old = token(Algorithm::ES256, "ec1", &ec1, json!({}));
    let new = token(Algorithm::ES256, "ec2", &ec2, json!({}));
    let status_of = |t: &str| {
        rt().block_on(async {
            http.post(format!("{ep}/v1/streams/app-logs/records"))
                .header("authorization", format!("Bearer {t}"))
                .body("{\"n\":2}\n")
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    };
    wait_until(10, "the rotated key to be used", || status_of(&new) == 200);
    assert_eq!(status_of(&old), 401);
    server.terminate();
}

/// DNS rebinding: a request addressed by a host name the server was not
/// told about is refused, whatever its path; IPs, `localhost` and the
/// `--allowed-hosts` names work.
#[test]
fn requests_for_unknown_host_names_are_refused() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &["--allowed-hosts", "lake.internal,*.corp.example"],
    );
    let addr = server.endpoint.trim_start_matches("http://").to_string();
    let status = |host: &str| {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        write!(
            s,
            "GET /health HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out.split(' ').nth(1).unwrap_or_default().to_string()
    };
    for ok in [
        addr.as_str(),
        "localhost:4570",
        "lake.internal:4570",
        "x.corp.example",
    ] {
        assert_eq!(status(ok), "200", "{ok}");
    }
    for bad in [
        "rebind.attacker.example",
        "lake.internal.attacker.example:4570",
        "corp.example",
    ] {
        assert_eq!(status(bad), "403", "{bad}");
    }
    server.terminate();
}

/// TLS on both ports from a certificate file: HTTPS (curl and boto3
/// verifying against the test CA; plain HTTP gets no answer), Postgres
/// with `sslmode=verify-full`, and a renewed certificate used without a
/// restart.
#[test]
fn tls_on_both_ports_with_certificate_renewal() {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls");
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::copy(fixtures.join("server.pem"), &cert).unwrap();
    std::fs::copy(fixtures.join("server.key"), &key).unwrap();
    let ca = fixtures.join("ca.pem");
    let data = dir.path().join("data");
    let server = Server::start(
        &data,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    assert!(
        server.endpoint.starts_with("https://127.0.0.1:"),
        "{}",
        server.endpoint
    );
    let port = server.endpoint.rsplit(':').next().unwrap().to_string();
    let https = format!("https://localhost:{port}");
    let curl = |args: &[&str]| {
        let out = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    assert_eq!(
        curl(&["--cacert", ca.to_str().unwrap(), &format!("{https}/health")]),
        "200"
    );
    // Not trusted without the CA, and no answer in plain HTTP.
    assert_eq!(curl(&[&format!("{https}/health")]), "000");
    assert_eq!(curl(&[&format!("http://localhost:{port}/health")]), "000");
    // boto3 over HTTPS, verifying the certificate.
    let script = r#"
import os, boto3
fh = boto3.client("firehose", endpoint_url=os.environ["ENDPOINT"], region_name="us-east-1",
    aws_access_key_id="x", aws_secret_access_key="y", verify=os.environ["CA"])
print(fh.list_delivery_streams()["DeliveryStreamNames"])
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .env("ENDPOINT", &https)
        .env("CA", &ca)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "boto3 over https: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The Rust SDKs over HTTPS, trusting the test CA (and only it): they
    // work; without the CA they fail the handshake.
    let sdk_https = |trusted: bool| {
        use aws_smithy_http_client::tls;
        let mut store = tls::TrustStore::empty().with_native_roots(false);
        if trusted {
            store = store.with_pem_certificate(std::fs::read(&ca).unwrap());
        }
        aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::AwsLc,
            ))
            .tls_context(
                tls::TlsContext::builder()
                    .with_trust_store(store)
                    .build()
                    .unwrap(),
            )
            .build_https()
    };
    rt().block_on(async {
        for trusted in [true, false] {
            let athena = client!(
                aws_sdk_athena,
                &https,
                creds("AKIDEXAMPLE", "unused", None),
                |b: aws_sdk_athena::config::Builder| b.http_client(sdk_https(trusted))
            );
            let listed = athena.list_work_groups().send().await;
            let fh = client!(
                aws_sdk_firehose,
                &https,
                creds("AKIDEXAMPLE", "unused", None),
                |b: aws_sdk_firehose::config::Builder| b.http_client(sdk_https(trusted))
            );
            let streams = fh.list_delivery_streams().send().await;
            if trusted {
                listed.expect("Athena SDK over https");
                streams.expect("Firehose SDK over https");
            } else {
                let e = listed.expect_err("an untrusted certificate is refused");
                assert!(
                    matches!(e, aws_sdk_athena::error::SdkError::DispatchFailure(_)),
                    "{e:?}"
                );
                assert!(streams.is_err());
            }
        }
    });
    // Postgres: verify-full against the CA; a client that wants no TLS is
    // still served.
    let (_, pg_port) = server.pg_addr.rsplit_once(':').unwrap();
    for sslmode in ["verify-full", "disable"] {
        let out = Command::new("psql")
            .arg(format!(
                "host=localhost port={pg_port} dbname=default user=analyst sslmode={sslmode} sslrootcert={}",
                ca.display()
            ))
            .args(["-At", "-c", "SELECT 6 * 7"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "psql sslmode={sslmode}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "42");
    }
    // Renewal: new files, next handshake uses them.
    std::fs::copy(fixtures.join("server2.pem"), &cert).unwrap();
    std::fs::copy(fixtures.join("server2.key"), &key).unwrap();
    let renewed = std::fs::read_to_string(fixtures.join("server2.pem")).unwrap();
    let presented = || {
        let out = Command::new("python3")
            .args(["-c", "import ssl, sys; print(ssl.get_server_certificate(('127.0.0.1', int(sys.argv[1]))))", &port])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let body = |pem: &str| {
        pem.lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<String>()
    };
    wait_until(10, "the renewed certificate", || {
        body(&presented()) == body(&renewed)
    });
    assert_eq!(
        curl(&["--cacert", ca.to_str().unwrap(), &format!("{https}/health")]),
        "200"
    );
    server.terminate();
}

/// Per-principal caps: a burst past the request rate gets the service's
/// throttling error (another principal is not affected), and a principal
/// with as many queries running as it may gets TooManyRequestsException
/// until one ends.
#[test]
fn per_principal_request_rates_and_concurrent_queries() {
    let dir = tempfile::tempdir().unwrap();
    let busy = create_key(dir.path(), "busy", &["--group", "admins"]);
    let calm = create_key(dir.path(), "calm", &["--group", "admins"]);
    let server = Server::start(
        dir.path(),
        &[
            "--max-requests-per-principal-per-sec",
            "5",
            "--max-queries-per-principal",
            "1",
            "--pg-max-connections-per-principal",
            "2",
        ],
    );
    let busy_too = create_key(dir.path(), "busy", &["--group", "admins"]);
    let ep = server.endpoint.clone();
    rt().block_on(async {
        let g = glue(&ep, creds(&busy.id, &busy.secret, None));
        let mut codes = Vec::new();
        for _ in 0..30 {
            codes.push(outcome(g.get_databases().send().await).0);
        }
        assert!(codes.iter().filter(|c| *c == "ok").count() >= 10, "{codes:?}");
        assert!(codes.iter().any(|c| c == "ThrottlingException"), "{codes:?}");
        assert_eq!(outcome(glue(&ep, creds(&calm.id, &calm.secret, None)).get_databases().send().await).0, "ok");
        tokio::time::sleep(Duration::from_secs(2)).await;

        // One query at a time for `busy`.
        let a = athena(&ep, creds(&busy.id, &busy.secret, None));
        let long = "SELECT count(*) FROM unnest(sequence(1, 10000)) x CROSS JOIN unnest(sequence(1, 10000)) y CROSS JOIN unnest(sequence(1, 100)) z";
        let first = a.start_query_execution().query_string(long).send().await.unwrap();
        let first = first.query_execution_id.unwrap();
        let (code, _) = outcome(a.start_query_execution().query_string("SELECT 1").send().await);
        assert_eq!(code, "TooManyRequestsException");
        let other = athena(&ep, creds(&calm.id, &calm.secret, None));
        assert_eq!(outcome(other.start_query_execution().query_string("SELECT 2").send().await).0, "ok");
        a.stop_query_execution().query_execution_id(&first).send().await.unwrap();
        let mut started = false;
        for _ in 0..100 {
            if outcome(a.start_query_execution().query_string("SELECT 3").send().await).0 == "ok" {
                started = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(started, "the stopped query still counted");

        // Two Postgres connections per principal, whichever of its keys
        // they log in with; another principal is not held back.
        let (host, port) = server.pg_addr.rsplit_once(':').unwrap();
        let login = |k: &NewKey| {
            let conninfo = format!(
                "host={host} port={port} user={} password={} dbname=default connect_timeout=10",
                k.id, k.secret
            );
            async move {
                let (client, conn) = tokio_postgres::connect(&conninfo, tokio_postgres::NoTls).await?;
                let task = tokio::spawn(conn);
                Ok::<_, tokio_postgres::Error>((client, task))
            }
        };
        let one = login(&busy).await.expect("first connection");
        let _two = login(&busy_too).await.expect("second connection, another key");
        let Err(err) = login(&busy).await else {
            panic!("a third connection is let in");
        };
        assert_eq!(err.code().map(|c| c.code()), Some("53300"), "{err}");
        let message = err.as_db_error().map(|e| e.message().to_string()).unwrap_or_default();
        assert!(message.contains("too many connections for role"), "{message}");
        let (calm_pg, _) = login(&calm).await.expect("another principal");
        assert_eq!(calm_pg.query_one("SELECT 1", &[]).await.unwrap().get::<_, i64>(0), 1);
        // Closing one frees its place.
        drop(one);
        let mut admitted = false;
        for _ in 0..50 {
            if login(&busy).await.is_ok() {
                admitted = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(admitted, "a closed connection still counted");
    });
    server.terminate();
}
